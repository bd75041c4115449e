//! Reading referrals, their history, their thread and the diagnostic that
//! travelled; posting in the thread. Lists open nothing sealed (they show
//! states and dates) unless asked for the people's names
//! (`include_person_name`), opened per referral as a single read opens them
//! (each its own batch and access entry, all in one identity call);
//! a single referral, its history and its thread open their sealed parts in
//! one identity call each.

use eva_platform::auth::{Role, require_role};
use eva_platform::db::to_timestamp;
use eva_platform::grpc::invalid_field;
use eva_platform::pagination::Page;
use eva_platform::sealing::{OpenItem, Opened, Sealed};
use eva_proto::referrals::v1::{
    self as pb, ReferralDirection, ReferralStatus, referral_service_server::ReferralService,
};
use tonic::{Request, Response, Status};

use super::state::{self, Side};
use super::store::{Filter, MessageRow, ReferralStore, TransitionRow};
use super::{
    CALLERS, RECEIVERS, ReferralApi, SENDERS, check_id, context, events, internal, not_found, seat,
};

/// Longest message, in characters.
pub const MAX_MESSAGE: usize = 4_000;

pub fn transition_proto(t: &TransitionRow) -> pb::ReferralTransition {
    pb::ReferralTransition {
        transition_id: t.transition_id.clone(),
        referral_id: t.referral_id.clone(),
        from_status: state::parse(&t.from_status).unwrap_or_default() as i32,
        to_status: state::parse(&t.to_status).unwrap_or_default() as i32,
        actor_user_id: t.actor_user_id.clone(),
        actor_structure_id: t.actor_structure_id.clone(),
        refusal_reason: state::parse_reason(&t.refusal_reason).unwrap_or_default() as i32,
        note: String::new(),
        occurred_at: Some(to_timestamp(t.occurred_at_us)),
    }
}

fn message_proto(m: &MessageRow, body: String) -> pb::ReferralMessage {
    pb::ReferralMessage {
        message_id: m.message_id.clone(),
        referral_id: m.referral_id.clone(),
        author_user_id: m.author_user_id.clone(),
        author_structure_id: m.author_structure_id.clone(),
        body,
        posted_at: Some(to_timestamp(m.posted_at_us)),
    }
}

fn text(p: Option<Vec<u8>>) -> String {
    p.map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

#[tonic::async_trait]
impl ReferralService for ReferralApi {
    async fn create_referral(
        &self,
        req: Request<pb::CreateReferralRequest>,
    ) -> Result<Response<pb::CreateReferralResponse>, Status> {
        self.create(req).await
    }

    async fn get_referral(
        &self,
        req: Request<pb::GetReferralRequest>,
    ) -> Result<Response<pb::GetReferralResponse>, Status> {
        let caller = require_role(&req, CALLERS)?.clone();
        let md = req.metadata().clone();
        let id = req.into_inner().referral_id;
        check_id("referral_id", &id)?;
        let row = self
            .referrals
            .get(&id)
            .await
            .map_err(internal)?
            .ok_or_else(not_found)?;
        let seat = seat(&caller, &row)?;
        let referral = self.detailed(&md, &row, &seat).await?;
        Ok(Response::new(pb::GetReferralResponse {
            referral: Some(referral),
        }))
    }

    async fn list_referrals(
        &self,
        req: Request<pb::ListReferralsRequest>,
    ) -> Result<Response<pb::ListReferralsResponse>, Status> {
        let caller = require_role(&req, CALLERS)?.clone();
        let md = req.metadata().clone();
        let r = req.into_inner();
        let page = Page::parse(r.page_size, &r.page_token)?;
        let status = ReferralStatus::try_from(r.status)
            .map_err(|_| invalid_field("status", "état inconnu / unknown state"))?;
        let direction = ReferralDirection::try_from(r.direction)
            .map_err(|_| invalid_field("direction", "sens inconnu / unknown direction"))?;
        if !r.person_id.is_empty() {
            check_id("person_id", &r.person_id)?;
        }
        let structure = if r.structure_id.is_empty() {
            // Without a structure: the person's own timeline only.
            if !(caller.has_role(Role::Person)
                && !r.person_id.is_empty()
                && caller.person_id.as_deref() == Some(r.person_id.as_str()))
            {
                return Err(invalid_field(
                    "structure_id",
                    "indiquez la structure dont vous listez les orientations / give the structure whose referrals you list",
                ));
            }
            None
        } else {
            check_id("structure_id", &r.structure_id)?;
            let may = caller.belongs_to(&r.structure_id)
                && (caller.has_any_role(SENDERS) || caller.has_any_role(RECEIVERS));
            if !may {
                return Err(Status::permission_denied(
                    "vous n'agissez pas pour cette structure / you do not act for this structure",
                ));
            }
            Some(r.structure_id.as_str())
        };
        let rows = self
            .referrals
            .list(&Filter {
                structure_id: structure,
                sent: direction == ReferralDirection::Sent,
                received: direction == ReferralDirection::Received,
                status: (status != ReferralStatus::Unspecified).then(|| state::code(status)),
                person_id: (!r.person_id.is_empty()).then_some(r.person_id.as_str()),
                before: page.after.as_deref(),
                limit: page.fetch_limit(),
            })
            .await
            .map_err(internal)?;
        let (rows, next_page_token) = page.finish(rows, |r| r.referral_id.clone());
        let referrals = if r.include_person_name {
            self.named(&md, &caller, &rows).await?
        } else {
            rows.iter().map(|r| Self::to_proto(r, None)).collect()
        };
        Ok(Response::new(pb::ListReferralsResponse {
            referrals,
            next_page_token,
        }))
    }

    async fn transition_referral(
        &self,
        req: Request<pb::TransitionReferralRequest>,
    ) -> Result<Response<pb::TransitionReferralResponse>, Status> {
        self.transition(req).await
    }

    async fn list_referral_transitions(
        &self,
        req: Request<pb::ListReferralTransitionsRequest>,
    ) -> Result<Response<pb::ListReferralTransitionsResponse>, Status> {
        let caller = require_role(&req, CALLERS)?.clone();
        let md = req.metadata().clone();
        let r = req.into_inner();
        check_id("referral_id", &r.referral_id)?;
        let page = Page::parse(r.page_size, &r.page_token)?;
        let row = self
            .referrals
            .get(&r.referral_id)
            .await
            .map_err(internal)?
            .ok_or_else(not_found)?;
        let seat = seat(&caller, &row)?;
        let rows = self
            .referrals
            .transitions(&r.referral_id, page.after.as_deref(), page.fetch_limit())
            .await
            .map_err(internal)?;
        let (rows, next_page_token) = page.finish(rows, |t| t.transition_id.clone());
        let sealed: Vec<(usize, (String, Sealed))> = rows
            .iter()
            .enumerate()
            .filter_map(|(i, t)| {
                let (n, k) = (t.note.clone()?, t.note_key.clone()?);
                Some((
                    i,
                    (
                        context(&t.referral_id, &format!("transition:{}", t.transition_id)),
                        Sealed {
                            ciphertext: n,
                            key_id: k,
                        },
                    ),
                ))
            })
            .collect();
        let (at, parts): (Vec<usize>, Vec<_>) = sealed.into_iter().unzip();
        let opened = self.open(&md, &row, &seat, parts).await?;
        let mut transitions: Vec<pb::ReferralTransition> =
            rows.iter().map(transition_proto).collect();
        for (i, o) in at.into_iter().zip(opened) {
            transitions[i].note = text(o);
        }
        Ok(Response::new(pb::ListReferralTransitionsResponse {
            transitions,
            next_page_token,
        }))
    }

    async fn post_referral_message(
        &self,
        req: Request<pb::PostReferralMessageRequest>,
    ) -> Result<Response<pb::PostReferralMessageResponse>, Status> {
        let caller = require_role(
            &req,
            &[Role::Counselor, Role::StructureAdmin, Role::Partner],
        )?
        .clone();
        let md = req.metadata().clone();
        let r = req.into_inner();
        check_id("referral_id", &r.referral_id)?;
        let body = r.body.trim().to_owned();
        if body.is_empty() {
            return Err(invalid_field("body", "message vide / empty message"));
        }
        if body.chars().count() > MAX_MESSAGE {
            return Err(invalid_field(
                "body",
                &format!("{MAX_MESSAGE} caractères au plus / at most {MAX_MESSAGE} characters"),
            ));
        }
        let row = self
            .referrals
            .get(&r.referral_id)
            .await
            .map_err(internal)?
            .ok_or_else(not_found)?;
        let seat = seat(&caller, &row)?;
        let (author_structure, recipient) = match (seat.side, seat.structure_id) {
            (Side::Sender, Some(s)) => (s, row.target_structure_id.clone()),
            (Side::Receiver, Some(s)) => (s, row.sender_structure_id.clone()),
            _ => return Err(not_found()),
        };
        let message_id = uuid::Uuid::now_v7().to_string();
        let sealed = self
            .sealer
            .seal(
                &md,
                &row.person_id,
                context(&row.referral_id, &format!("message:{message_id}")),
                body.clone().into_bytes(),
            )
            .await?;
        let now = self.clock.now_us();
        let m = MessageRow {
            message_id: message_id.clone(),
            referral_id: row.referral_id.clone(),
            author_user_id: caller.user_id.clone(),
            author_structure_id: author_structure.clone(),
            body: sealed.ciphertext,
            body_key: sealed.key_id,
            posted_at_us: now,
        };
        let mut tx = self.referrals.db().begin().await.map_err(internal)?;
        ReferralStore::insert_message(&mut tx, &m)
            .await
            .map_err(internal)?;
        ReferralStore::touch(&mut tx, &row.referral_id, now)
            .await
            .map_err(internal)?;
        super::create::record(
            &mut tx,
            &caller,
            &row,
            eva_proto::audit::v1::AccessAction::Write,
            Vec::new(),
        )
        .await?;
        events::publish(
            &mut tx,
            "eva.referrals.message.posted",
            &row.referral_id,
            &row.target_structure_id,
            &pb::ReferralMessagePosted {
                message_id,
                referral_id: row.referral_id.clone(),
                author_structure_id: author_structure,
                recipient_structure_id: recipient,
                posted_at: Some(to_timestamp(now)),
            },
            now,
        )
        .await
        .map_err(internal)?;
        tx.commit().await.map_err(internal)?;
        // Webhook deliveries written in the transaction can go now.
        crate::partners::wake();
        Ok(Response::new(pb::PostReferralMessageResponse {
            message: Some(message_proto(&m, body)),
        }))
    }

    async fn list_referral_messages(
        &self,
        req: Request<pb::ListReferralMessagesRequest>,
    ) -> Result<Response<pb::ListReferralMessagesResponse>, Status> {
        let caller = require_role(&req, CALLERS)?.clone();
        let md = req.metadata().clone();
        let r = req.into_inner();
        check_id("referral_id", &r.referral_id)?;
        let page = Page::parse(r.page_size, &r.page_token)?;
        let row = self
            .referrals
            .get(&r.referral_id)
            .await
            .map_err(internal)?
            .ok_or_else(not_found)?;
        let seat = seat(&caller, &row)?;
        let rows = self
            .referrals
            .messages(&r.referral_id, page.after.as_deref(), page.fetch_limit())
            .await
            .map_err(internal)?;
        let (rows, next_page_token) = page.finish(rows, |m| m.message_id.clone());
        let parts = rows
            .iter()
            .map(|m| {
                (
                    context(&m.referral_id, &format!("message:{}", m.message_id)),
                    Sealed {
                        ciphertext: m.body.clone(),
                        key_id: m.body_key.clone(),
                    },
                )
            })
            .collect();
        let opened = self.open(&md, &row, &seat, parts).await?;
        Ok(Response::new(pb::ListReferralMessagesResponse {
            messages: rows
                .iter()
                .zip(opened)
                .map(|(m, o)| message_proto(m, text(o)))
                .collect(),
            next_page_token,
        }))
    }

    async fn get_referral_diagnostic(
        &self,
        req: Request<pb::GetReferralDiagnosticRequest>,
    ) -> Result<Response<pb::GetReferralDiagnosticResponse>, Status> {
        let caller = require_role(&req, CALLERS)?.clone();
        let md = req.metadata().clone();
        let id = req.into_inner().referral_id;
        check_id("referral_id", &id)?;
        let row = self
            .referrals
            .get(&id)
            .await
            .map_err(internal)?
            .ok_or_else(not_found)?;
        let seat = seat(&caller, &row)?;
        if row.diagnostic_id.is_empty() {
            return Err(Status::not_found(
                "aucun diagnostic n'accompagne cette orientation / no diagnostic travelled with this referral",
            ));
        }
        let domains = self.referrals.domains(&id).await.map_err(internal)?;
        let items: Vec<OpenItem> = domains
            .iter()
            .map(|d| OpenItem {
                context: context(&id, &format!("diagnostic:{}", d.domain)),
                sealed: Sealed {
                    ciphertext: d.sealed.clone(),
                    key_id: d.key_id.clone(),
                },
                // Each domain on its own: a withdrawal hides that domain only.
                domains: vec![d.domain.clone()],
            })
            .collect();
        let opened = if items.is_empty() {
            Vec::new()
        } else {
            self.sealer
                .open_batch(&md, &self.reading(&row, &seat), items)
                .await?
        };
        let out = domains
            .iter()
            .zip(opened)
            .map(|(d, o)| match o {
                Opened::Plain(p) => pb::ReferralDiagnosticDomain {
                    domain: d.domain.clone(),
                    access: "visible".into(),
                    content_json: String::from_utf8_lossy(&p).into_owned(),
                    message: String::new(),
                },
                Opened::Withheld { message } => pb::ReferralDiagnosticDomain {
                    domain: d.domain.clone(),
                    access: "withheld".into(),
                    content_json: String::new(),
                    message,
                },
            })
            .collect();
        Ok(Response::new(pb::GetReferralDiagnosticResponse {
            diagnostic_id: row.diagnostic_id.clone(),
            referentiel_version: row.referentiel_version.clone(),
            domains: out,
            taken_at: Some(to_timestamp(row.sent_at_us)),
        }))
    }
}
