//! `eva.identity.v1.PersonDataService` for referrals: the person's referrals
//! for a GDPR export, each with its history and thread, opened through
//! identity for the caller (the person, or a counselor exporting for them).
//! A referral the caller has no seat on is listed without its sealed parts.

use eva_platform::auth::{Role, require_role};
use eva_platform::db::{now_us, to_timestamp};
use eva_platform::grpc::invalid_field;
use eva_platform::sealing::{OpenItem, Opened, Sealed};
use eva_proto::identity::v1 as idpb;
use eva_proto::identity::v1::person_data_service_server::PersonDataServiceServer;
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;
use tonic::{Request, Response, Status};

use crate::SERVICE;
use crate::referral::store::{Filter, ReferralRow};
use crate::referral::{Details, ReferralApi, context, internal, seat};

pub const EXPORTERS: &[Role] = &[Role::Person, Role::Counselor];

pub fn server(api: ReferralApi) -> PersonDataServiceServer<PersonData> {
    PersonDataServiceServer::new(PersonData { api })
}

#[derive(Clone)]
pub struct PersonData {
    api: ReferralApi,
}

fn time(us: Option<i64>) -> Value {
    us.and_then(|us| eva_platform::db::from_us(us).format(&Rfc3339).ok())
        .map(Value::String)
        .unwrap_or(Value::Null)
}

impl PersonData {
    async fn referral_json(
        &self,
        md: &tonic::metadata::MetadataMap,
        caller: &eva_platform::auth::Principal,
        r: &ReferralRow,
    ) -> Result<Value, Status> {
        let transitions = self
            .api
            .referrals
            .transitions(&r.referral_id, None, 10_000)
            .await
            .map_err(internal)?;
        let messages = self
            .api
            .referrals
            .messages(&r.referral_id, None, 10_000)
            .await
            .map_err(internal)?;
        // Details, notes and messages in one identity call.
        let mut items = vec![(
            context(&r.referral_id, "details"),
            Sealed {
                ciphertext: r.details.clone(),
                key_id: r.details_key.clone(),
            },
        )];
        let mut note_at = Vec::new();
        for (i, t) in transitions.iter().enumerate() {
            if let (Some(n), Some(k)) = (&t.note, &t.note_key) {
                note_at.push(i);
                items.push((
                    context(&r.referral_id, &format!("transition:{}", t.transition_id)),
                    Sealed {
                        ciphertext: n.clone(),
                        key_id: k.clone(),
                    },
                ));
            }
        }
        for m in &messages {
            items.push((
                context(&r.referral_id, &format!("message:{}", m.message_id)),
                Sealed {
                    ciphertext: m.body.clone(),
                    key_id: m.body_key.clone(),
                },
            ));
        }
        let mut opened: Vec<Option<String>> = vec![None; items.len()];
        if let Ok(seat) = seat(caller, r) {
            let domains = r.domain_list();
            let reading = eva_platform::sealing::Reading {
                person_id: &r.person_id,
                structure_id: seat.structure_id.as_deref().unwrap_or(""),
                purpose: eva_platform::consent::Purpose::Accompagnement,
                resource_type: crate::referral::RESOURCE,
                resource_id: &r.referral_id,
            };
            let batch = items
                .into_iter()
                .map(|(context, sealed)| OpenItem {
                    context,
                    sealed,
                    domains: domains.clone(),
                })
                .collect();
            for (slot, o) in opened
                .iter_mut()
                .zip(self.api.sealer.open_batch(md, &reading, batch).await?)
            {
                if let Opened::Plain(p) = o {
                    *slot = Some(String::from_utf8_lossy(&p).into_owned());
                }
            }
        }
        let details: Option<Details> = opened[0]
            .as_deref()
            .and_then(|d| serde_json::from_str(d).ok());
        let notes = &opened[1..1 + note_at.len()];
        let bodies = &opened[1 + note_at.len()..];
        Ok(json!({
            "id": r.referral_id,
            "status": r.status,
            "sender_structure_id": r.sender_structure_id,
            "target_structure_id": r.target_structure_id,
            "target_service_id": r.target_service_id,
            "domains": r.domain_list(),
            "diagnostic_id": r.diagnostic_id,
            "reason": details.as_ref().map(|d| d.reason.clone()),
            "contact_sent": details.as_ref().map(|d| json!({
                "first_name": d.contact.first_name,
                "last_name": d.contact.last_name,
                "phone": d.contact.phone,
                "email": d.contact.email,
            })),
            "refusal_reason": r.refusal_reason,
            "sent_at": time(Some(r.sent_at_us)),
            "first_answered_at": time(r.first_answered_at_us),
            "expires_at": time(Some(r.expires_at_us)),
            "closed_at": time(r.closed_at_us),
            "history": transitions.iter().enumerate().map(|(i, t)| json!({
                "from": t.from_status,
                "to": t.to_status,
                "by_structure_id": t.actor_structure_id,
                "refusal_reason": t.refusal_reason,
                "note": note_at.iter().position(|j| *j == i).and_then(|k| notes[k].clone()),
                "at": time(Some(t.occurred_at_us)),
            })).collect::<Vec<_>>(),
            "messages": messages.iter().zip(bodies).map(|(m, b)| json!({
                "author_structure_id": m.author_structure_id,
                "body": b,
                "at": time(Some(m.posted_at_us)),
            })).collect::<Vec<_>>(),
        }))
    }
}

#[tonic::async_trait]
impl idpb::person_data_service_server::PersonDataService for PersonData {
    async fn export_person_data(
        &self,
        req: Request<idpb::ExportPersonDataRequest>,
    ) -> Result<Response<idpb::ExportPersonDataResponse>, Status> {
        let caller = require_role(&req, EXPORTERS)?.clone();
        let md = req.metadata().clone();
        let person_id = req.into_inner().person_id;
        if uuid::Uuid::parse_str(&person_id).is_err() {
            return Err(invalid_field(
                "person_id",
                "identifiant invalide / not a valid id",
            ));
        }
        if caller.has_role(Role::Person) && caller.person_id.as_deref() != Some(&person_id) {
            return Err(Status::permission_denied(
                "vous ne pouvez exporter que vos propres données / you may export only your own data",
            ));
        }
        let mut data = Vec::new();
        let mut before: Option<String> = None;
        loop {
            let rows = self
                .api
                .referrals
                .list(&Filter {
                    person_id: Some(&person_id),
                    before: before.as_deref(),
                    limit: 200,
                    ..Filter::default()
                })
                .await
                .map_err(internal)?;
            let Some(last) = rows.last() else { break };
            before = Some(last.referral_id.clone());
            for r in &rows {
                data.push(self.referral_json(&md, &caller, r).await?);
            }
        }
        let doc = json!({
            "service": SERVICE,
            "person_id": person_id,
            "personal_data": !data.is_empty(),
            "explanation_fr": "Vos orientations vers d'autres structures ou partenaires : \
                leur état, leur historique et les messages échangés à votre sujet.",
            "explanation_en": "Your referrals to other structures or partners: their state, \
                their history and the messages exchanged about you.",
            "data": data,
        });
        Ok(Response::new(idpb::ExportPersonDataResponse {
            service: SERVICE.into(),
            media_type: "application/json".into(),
            content: serde_json::to_vec(&doc).map_err(internal)?,
            generated_at: Some(to_timestamp(now_us())),
        }))
    }
}
