//! Sending a referral: checks, the person's contact from identity, the
//! consented part of the diagnostic sealed domain by domain, then one
//! transaction for the referral, its first history entry, the access log
//! and the events.

use std::collections::BTreeSet;

use eva_platform::audit::{self, Access};
use eva_platform::auth::{Principal, require_role};
use eva_platform::consent::{self, Purpose};
use eva_platform::grpc::invalid_field;
use eva_platform::sealing::Sealer;
use eva_proto::audit::v1::AccessAction;
use eva_proto::diagnostics::v1 as dpb;
use eva_proto::diagnostics::v1::diagnostic_service_client::DiagnosticServiceClient;
use eva_proto::identity::v1 as idpb;
use eva_proto::identity::v1::person_service_client::PersonServiceClient;
use eva_proto::referrals::v1 as pb;
use serde_json::json;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

use super::state::code;
use super::store::{ReferralRow, ReferralStore, TransitionRow};
use super::{
    Contact, Details, RESOURCE, ReferralApi, SENDERS, check_id, context, events, internal,
};
use crate::SERVICE;

/// Longest reason, in characters.
pub const MAX_REASON: usize = 4_000;
const DAY_US: i64 = 86_400 * 1_000_000;

/// A domain of the diagnostic, sealed for the referral.
struct TravellingDomain {
    domain: String,
    sealed: eva_platform::sealing::Sealed,
}

impl ReferralApi {
    pub(super) async fn create(
        &self,
        req: Request<pb::CreateReferralRequest>,
    ) -> Result<Response<pb::CreateReferralResponse>, Status> {
        let caller = require_role(&req, SENDERS)?.clone();
        let md = req.metadata().clone();
        let r = req.into_inner();
        check_id("person_id", &r.person_id)?;
        check_id("sender_structure_id", &r.sender_structure_id)?;
        check_id("target_structure_id", &r.target_structure_id)?;
        if !caller.belongs_to(&r.sender_structure_id) {
            return Err(Status::permission_denied(
                "vous n'agissez pas pour la structure qui oriente / you do not act for the sending structure",
            ));
        }
        if r.target_structure_id == r.sender_structure_id {
            return Err(invalid_field(
                "target_structure_id",
                "une structure ne s'oriente pas une personne à elle-même / a structure cannot refer to itself",
            ));
        }
        if self
            .follows
            .structure(&r.target_structure_id)
            .await
            .map_err(internal)?
            .is_none()
        {
            return Err(invalid_field(
                "target_structure_id",
                "structure inconnue / unknown structure",
            ));
        }
        if !r.target_service_id.is_empty() {
            check_id("target_service_id", &r.target_service_id)?;
            let owner = self
                .referrals
                .service_structure(&r.target_service_id)
                .await
                .map_err(internal)?;
            let Some((_, archived)) = owner.filter(|(o, _)| *o == r.target_structure_id) else {
                return Err(invalid_field(
                    "target_service_id",
                    "ce service n'est pas un service de la structure visée / not a service of the target structure",
                ));
            };
            if archived {
                return Err(invalid_field(
                    "target_service_id",
                    "ce service est fermé (archivé) : choisissez-en un autre ou orientez vers la structure sans service / this service is closed (archived)",
                ));
            }
        }
        let domains = check_domains(&r.domains)?;
        let reason = r.reason.trim().to_owned();
        if reason.is_empty() {
            return Err(invalid_field(
                "reason",
                "dites pourquoi vous orientez la personne / give the reason for the referral",
            ));
        }
        if reason.chars().count() > MAX_REASON {
            return Err(invalid_field(
                "reason",
                &format!("{MAX_REASON} caractères au plus / at most {MAX_REASON} characters"),
            ));
        }
        let following = self
            .follows
            .following(&r.person_id)
            .await
            .map_err(internal)?;
        if !following.contains(&r.sender_structure_id) {
            return Err(Status::failed_precondition(
                "votre structure n'accompagne pas cette personne / your structure does not follow this person",
            ));
        }
        let today = self.clock.today();
        let mut missing = Vec::new();
        for d in &domains {
            let decision = self
                .consents
                .check(
                    &r.target_structure_id,
                    &r.person_id,
                    d,
                    Purpose::Orientation,
                    &today,
                )
                .await
                .map_err(internal)?;
            if !decision.allowed {
                missing.push(d.clone());
            }
        }
        if !missing.is_empty() {
            return Err(Status::failed_precondition(format!(
                "la personne n'a pas donné son accord pour être orientée vers cette structure pour : {m} ; \
                 recueillez son consentement (finalité orientation) d'abord / the person has not consented \
                 to a referral to this structure for: {m}; record their consent (purpose orientation) first",
                m = missing.join(", ")
            )));
        }

        let referral_id = uuid::Uuid::now_v7().to_string();
        let contact = self.contact(&md, &r.person_id).await?;
        let details = serde_json::to_vec(&Details { reason, contact }).map_err(internal)?;
        let sealed_details = self
            .sealer
            .seal(&md, &r.person_id, context(&referral_id, "details"), details)
            .await?;
        let (version, travelling) = if r.diagnostic_id.is_empty() {
            (String::new(), Vec::new())
        } else {
            check_id("diagnostic_id", &r.diagnostic_id)?;
            self.snapshot(&md, &referral_id, &r, &today).await?
        };

        let now = self.clock.now_us();
        let row = ReferralRow {
            referral_id: referral_id.clone(),
            person_id: r.person_id.clone(),
            sender_structure_id: r.sender_structure_id.clone(),
            sender_user_id: caller.user_id.clone(),
            target_structure_id: r.target_structure_id.clone(),
            target_service_id: r.target_service_id.clone(),
            status: code(pb::ReferralStatus::Envoyee).into(),
            domains: domains.join(","),
            diagnostic_id: r.diagnostic_id.clone(),
            referentiel_version: version,
            refusal_reason: String::new(),
            details: sealed_details.ciphertext.clone(),
            details_key: sealed_details.key_id.clone(),
            sent_at_us: now,
            first_answered_at_us: None,
            remind_at_us: now + i64::from(self.config.reminder_after_days) * DAY_US,
            reminded_at_us: None,
            expires_at_us: now + i64::from(self.config.expiry_after_days) * DAY_US,
            closed_at_us: None,
            updated_at_us: now,
        };
        let event = pb::ReferralSent {
            referral_id: referral_id.clone(),
            person_id: row.person_id.clone(),
            sender_structure_id: row.sender_structure_id.clone(),
            target_structure_id: row.target_structure_id.clone(),
            target_service_id: row.target_service_id.clone(),
            domains: domains.clone(),
            diagnostic_id: row.diagnostic_id.clone(),
            sent_at: Some(eva_platform::db::to_timestamp(now)),
            expires_at: Some(eva_platform::db::to_timestamp(row.expires_at_us)),
            sealed_details: Some(idpb::SealedPayload {
                ciphertext: sealed_details.ciphertext,
                key_id: sealed_details.key_id,
            }),
            sealed_diagnostic: travelling
                .iter()
                .map(|t| pb::SealedDomain {
                    domain: t.domain.clone(),
                    sealed: Some(idpb::SealedPayload {
                        ciphertext: t.sealed.ciphertext.clone(),
                        key_id: t.sealed.key_id.clone(),
                    }),
                })
                .collect(),
        };
        let mut tx = self.referrals.db().begin().await.map_err(internal)?;
        ReferralStore::insert(&mut tx, &row)
            .await
            .map_err(internal)?;
        for t in &travelling {
            ReferralStore::insert_domain(
                &mut tx,
                &referral_id,
                &t.domain,
                &t.sealed.ciphertext,
                &t.sealed.key_id,
            )
            .await
            .map_err(internal)?;
        }
        ReferralStore::insert_transition(
            &mut tx,
            &TransitionRow {
                transition_id: uuid::Uuid::now_v7().to_string(),
                referral_id: referral_id.clone(),
                from_status: String::new(),
                to_status: row.status.clone(),
                actor_user_id: caller.user_id.clone(),
                actor_structure_id: row.sender_structure_id.clone(),
                refusal_reason: String::new(),
                note: None,
                note_key: None,
                occurred_at_us: now,
            },
        )
        .await
        .map_err(internal)?;
        record(&mut tx, &caller, &row, AccessAction::Write, domains.clone()).await?;
        if !travelling.is_empty() {
            // The diagnostic leaves the sender's hands: an export in the log.
            let shared = travelling.iter().map(|t| t.domain.clone()).collect();
            record(&mut tx, &caller, &row, AccessAction::Export, shared).await?;
        }
        events::publish(
            &mut tx,
            "eva.referrals.referral.sent",
            &referral_id,
            &row.target_structure_id,
            &event,
            now,
        )
        .await
        .map_err(internal)?;
        tx.commit().await.map_err(internal)?;
        // Webhook deliveries written in the transaction can go now.
        crate::partners::wake();
        tracing::info!(referral_id = %referral_id, domains = domains.len(), travelling = travelling.len(), "referral sent");
        let details = Details {
            reason: r.reason.trim().to_owned(),
            contact: Contact::default(),
        };
        Ok(Response::new(pb::CreateReferralResponse {
            referral: Some(Self::to_proto(&row, Some(details))),
        }))
    }

    /// The person's contact, read from identity with the caller's token.
    async fn contact(&self, md: &MetadataMap, person_id: &str) -> Result<Contact, Status> {
        let mut client = PersonServiceClient::new(self.identity.clone());
        let person = client
            .get_person(Sealer::request(
                md,
                idpb::GetPersonRequest {
                    person_id: person_id.to_owned(),
                },
            ))
            .await?
            .into_inner()
            .person
            .ok_or_else(|| internal("identity: empty person"))?;
        Ok(Contact {
            first_name: person.first_name,
            last_name: person.last_name,
            phone: person.phone,
            email: person.email,
        })
    }

    /// The domains of the diagnostic that may travel to the target: visible
    /// to the sender and covered by the person's consent to the target for
    /// purpose `orientation`; each sealed on its own.
    async fn snapshot(
        &self,
        md: &MetadataMap,
        referral_id: &str,
        r: &pb::CreateReferralRequest,
        today: &str,
    ) -> Result<(String, Vec<TravellingDomain>), Status> {
        let mut client = DiagnosticServiceClient::new(self.diagnostics.clone());
        let diagnostic = client
            .get_diagnostic(Sealer::request(
                md,
                dpb::GetDiagnosticRequest {
                    diagnostic_id: r.diagnostic_id.clone(),
                    purpose: idpb::ConsentPurpose::Accompagnement as i32,
                },
            ))
            .await
            .map_err(|s| match s.code() {
                tonic::Code::NotFound | tonic::Code::PermissionDenied => invalid_field(
                    "diagnostic_id",
                    "diagnostic introuvable pour vous / diagnostic not found for you",
                ),
                _ => s,
            })?
            .into_inner()
            .diagnostic
            .ok_or_else(|| internal("diagnostics: empty diagnostic"))?;
        if diagnostic.person_id != r.person_id {
            return Err(invalid_field(
                "diagnostic_id",
                "ce diagnostic n'est pas celui de cette personne / this diagnostic is not this person's",
            ));
        }
        let mut out = Vec::new();
        for d in diagnostic.domains {
            if d.access != dpb::DomainAccess::Visible as i32 {
                continue;
            }
            let allowed = self
                .consents
                .check(
                    &r.target_structure_id,
                    &r.person_id,
                    &d.domain_id,
                    Purpose::Orientation,
                    today,
                )
                .await
                .map_err(internal)?
                .allowed;
            if !allowed {
                continue;
            }
            let content = domain_json(&d);
            let sealed = self
                .sealer
                .seal(
                    md,
                    &r.person_id,
                    context(referral_id, &format!("diagnostic:{}", d.domain_id)),
                    serde_json::to_vec(&content).map_err(internal)?,
                )
                .await?;
            out.push(TravellingDomain {
                domain: d.domain_id,
                sealed,
            });
        }
        Ok((diagnostic.referentiel_version, out))
    }
}

/// One domain's ratings and notes, as they travel.
fn domain_json(d: &dpb::DomainAssessment) -> serde_json::Value {
    let level = |l: i32| {
        dpb::Level::try_from(l)
            .ok()
            .filter(|l| *l != dpb::Level::Unspecified)
            .map(|l| l.as_str_name().trim_start_matches("LEVEL_").to_lowercase())
    };
    json!({
        "domain_id": d.domain_id,
        "items": d.items.iter().map(|i| json!({
            "item_id": i.item_id,
            "counselor_level": level(i.counselor_level),
            "person_level": level(i.person_level),
            "counselor_note": i.counselor_note,
            "person_note": i.person_note,
        })).collect::<Vec<_>>(),
    })
}

/// Known référentiel domains, once each, in the order given.
pub fn check_domains(domains: &[String]) -> Result<Vec<String>, Status> {
    if domains.is_empty() {
        return Err(invalid_field(
            "domains",
            "indiquez au moins un domaine / give at least one domain",
        ));
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for d in domains {
        let d = d.trim();
        if consent::domain(d).is_none() {
            return Err(invalid_field(
                "domains",
                &format!("domaine inconnu : « {d} » / unknown domain"),
            ));
        }
        if seen.insert(d.to_owned()) {
            out.push(d.to_owned());
        }
    }
    Ok(out)
}

/// Writes an access-log entry for `row`.
pub async fn record(
    tx: &mut eva_platform::db::Tx,
    caller: &Principal,
    row: &ReferralRow,
    action: AccessAction,
    domains: Vec<String>,
) -> Result<(), Status> {
    let structure = if caller.has_role(eva_platform::auth::Role::Person) {
        None
    } else if caller.belongs_to(&row.target_structure_id) {
        Some(row.target_structure_id.as_str())
    } else {
        Some(row.sender_structure_id.as_str())
    };
    let purpose = if structure == Some(row.target_structure_id.as_str()) {
        Purpose::Orientation
    } else {
        Purpose::Accompagnement
    };
    audit::record(
        tx,
        SERVICE,
        Access {
            person_id: &row.person_id,
            actor: caller,
            structure_id: structure,
            action,
            resource_type: RESOURCE,
            resource_id: &row.referral_id,
            domains,
            purpose: purpose.code(),
        },
    )
    .await
    .map_err(internal)
}
