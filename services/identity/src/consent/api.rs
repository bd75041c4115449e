//! `eva.identity.v1.ConsentService`: grant, read, withdraw, receipts, and
//! the authoritative access check.

use eva_platform::audit::{self, Access};
use eva_platform::auth::{Principal, Role, require_role};
use eva_platform::consent::{self, Purpose, today};
use eva_platform::crypto::Kek;
use eva_platform::db::{Db, from_us, now_us, to_timestamp};
use eva_platform::grpc::invalid_field;
use eva_platform::outbox::{self, Event};
use eva_platform::pagination::Page;
use eva_proto::audit::v1::AccessAction;
use eva_proto::identity::v1 as pb;
use eva_proto::identity::v1::consent_service_server::ConsentServiceServer;
use serde_json::json;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::receipt::{self, ReceiptFacts};
use super::store::{ConsentRow, ConsentStore};
use super::{Collection, NewConsent, purpose_to_proto, reason_to_proto, status_code};
use crate::people::api::{PERSON_READERS, PURPOSE, field, internal, relation_of, today_date};
use crate::people::{Relation, check_id, person_not_found};
use crate::structure::Structure;
use crate::{SERVICE, keys};

/// Roles that may ask `CheckAccess`, for a structure they belong to
/// (operators for any).
pub const CHECKERS: &[Role] = &[
    Role::Counselor,
    Role::StructureAdmin,
    Role::Partner,
    Role::Operator,
];

/// The state behind `ConsentService`.
#[derive(Clone)]
pub struct ConsentApi {
    db: Db,
    kek: Kek,
    store: ConsentStore,
}

/// `ConsentService`, ready for `GrpcServer::add_service`.
pub fn server(db: Db, kek: Kek) -> ConsentServiceServer<ConsentApi> {
    ConsentServiceServer::new(ConsentApi {
        db,
        kek,
        store: ConsentStore,
    })
}

fn consent_not_found() -> Status {
    Status::not_found("consentement introuvable / consent not found")
}

fn consent_access<'a>(
    caller: &'a Principal,
    row: &'a ConsentRow,
    rel: &'a Relation,
    action: AccessAction,
) -> Access<'a> {
    Access {
        person_id: &row.person_id,
        actor: caller,
        structure_id: rel.structure_id(),
        action,
        resource_type: "consent",
        resource_id: &row.consent_id,
        domains: row.domain_list(),
        purpose: PURPOSE,
    }
}

impl ConsentApi {
    /// The consent and the caller's relation to its person; NOT_FOUND alike
    /// for an unknown consent and one the caller may not see.
    async fn visible(
        &self,
        caller: &Principal,
        consent_id: &str,
    ) -> Result<(ConsentRow, Relation), Status> {
        check_id("consent_id", consent_id)?;
        let row = {
            let mut h = self.db.acquire().await.map_err(internal)?;
            self.store
                .get(h.conn(), consent_id)
                .await
                .map_err(internal)?
                .ok_or_else(consent_not_found)?
        };
        let rel = relation_of(&self.db, caller, &row.person_id)
            .await?
            .ok_or_else(consent_not_found)?;
        Ok((row, rel))
    }

    /// Records that `caller` read `rows`, committed before the answer.
    async fn record_reads(
        &self,
        caller: &Principal,
        rel: &Relation,
        rows: &[&ConsentRow],
    ) -> Result<(), Status> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut tx = self.db.begin().await.map_err(internal)?;
        for row in rows {
            audit::record(
                &mut tx,
                SERVICE,
                consent_access(caller, row, rel, AccessAction::Read),
            )
            .await
            .map_err(internal)?;
        }
        tx.commit().await.map_err(internal)
    }
}

fn collection_of(rel: &Relation) -> Collection {
    match rel {
        Relation::Themself => Collection::EspacePersonnel,
        Relation::Following { .. } => Collection::AuBureau,
    }
}

impl ConsentApi {
    /// A consent ready to insert, its receipt signed, and its
    /// `eva.consent.grant.granted` event; `replaces` links it to the consent
    /// it replaces after a withdrawal of some domains.
    async fn prepare(
        &self,
        caller: &Principal,
        person_id: &str,
        grantee: &Structure,
        new: &NewConsent,
        collection: Collection,
        replaces: Option<&str>,
    ) -> Result<(ConsentRow, pb::ConsentGranted), Status> {
        let structures = crate::store::Store::new(self.db.clone());
        let signer = keys::current_signer(&structures, &self.kek).await?;
        let consent_id = Uuid::now_v7().to_string();
        let receipt_id = Uuid::now_v7().to_string();
        let now = now_us();
        let mut doc = receipt::document(&ReceiptFacts {
            receipt_id: &receipt_id,
            consent_id: &consent_id,
            person_id,
            grantee,
            domains: &new.domains,
            purposes: &new.purposes,
            valid_from: &new.valid_from,
            valid_until: &new.valid_until,
            collection,
            granted_at: from_us(now),
        });
        if let (Some(old), Some(map)) = (replaces, doc.as_object_mut()) {
            map.insert("replaces_consent_id".into(), json!(old));
            map.insert("replaces_label".into(), json!(receipt::REPLACES_FR));
        }
        let receipt_json = receipt::canonical(&doc);
        let receipt_signature = signer.sign_detached(receipt_json.as_bytes());
        let row = ConsentRow {
            consent_id: consent_id.clone(),
            person_id: person_id.to_owned(),
            structure_id: grantee.structure_id.clone(),
            domains: new.domains_csv(),
            purposes: new.purposes_csv(),
            valid_from: new.valid_from.clone(),
            valid_until: new.valid_until.clone(),
            status: "active".into(),
            recorded_by_user_id: caller.user_id.clone(),
            collection: collection.code().into(),
            granted_at_us: now,
            withdrawn_at_us: None,
            expired_at_us: None,
            receipt_id,
            receipt_json,
            receipt_signature,
        };
        let granted = pb::ConsentGranted {
            consent_id,
            person_id: row.person_id.clone(),
            grantee_structure_id: row.structure_id.clone(),
            domains: row.domain_list(),
            purposes: new
                .purposes
                .iter()
                .map(|p| purpose_to_proto(*p) as i32)
                .collect(),
            valid_from: row.valid_from.clone(),
            valid_until: row.valid_until.clone(),
            granted_at: Some(to_timestamp(now)),
            replaces_consent_id: replaces.unwrap_or_default().to_owned(),
        };
        Ok((row, granted))
    }
}

/// The domains to withdraw from `current`, checked: each one known and
/// covered by the consent; the error names the first that is not.
fn domains_to_withdraw(current: &ConsentRow, asked: &[String]) -> Result<Vec<String>, Status> {
    let covered = current.domain_list();
    let mut out: Vec<String> = Vec::new();
    for d in asked {
        let id = d.trim();
        let shown: String = id.chars().take(60).collect();
        if consent::domain(id).is_none() {
            return Err(invalid_field(
                "domains",
                &format!("domaine inconnu « {shown} » / unknown domain « {shown} »"),
            ));
        }
        if !covered.iter().any(|c| c == id) {
            return Err(invalid_field(
                "domains",
                &format!(
                    "ce consentement ne couvre pas le domaine « {shown} » ; il couvre : {} / this consent does not cover « {shown} »",
                    covered.join(", ")
                ),
            ));
        }
        if !out.iter().any(|o| o == id) {
            out.push(id.to_owned());
        }
    }
    Ok(out)
}

#[tonic::async_trait]
impl pb::consent_service_server::ConsentService for ConsentApi {
    async fn grant_consent(
        &self,
        req: Request<pb::GrantConsentRequest>,
    ) -> Result<Response<pb::GrantConsentResponse>, Status> {
        let caller = require_role(&req, PERSON_READERS)?.clone();
        let r = req.into_inner();
        check_id("person_id", &r.person_id)?;
        let rel = relation_of(&self.db, &caller, &r.person_id)
            .await?
            .ok_or_else(person_not_found)?;
        check_id("grantee_structure_id", &r.grantee_structure_id)?;
        let (today, _) = today_date()?;
        let new = NewConsent::parse(&r, today).map_err(field)?;
        let structures = crate::store::Store::new(self.db.clone());
        let grantee = structures
            .structure(&r.grantee_structure_id)
            .await
            .map_err(internal)?
            .ok_or_else(|| {
                invalid_field(
                    "grantee_structure_id",
                    "structure inconnue / unknown structure",
                )
            })?;
        let collection = collection_of(&rel);
        let (row, granted) = self
            .prepare(&caller, &r.person_id, &grantee, &new, collection, None)
            .await?;
        let consent_id = row.consent_id.clone();
        let mut tx = self.db.begin().await.map_err(internal)?;
        self.store.insert(tx.conn(), &row).await.map_err(internal)?;
        outbox::enqueue(
            &mut tx,
            &Event::new(
                SERVICE,
                "eva.consent.grant.granted",
                Some(consent_id.clone()),
                &granted,
            ),
        )
        .await
        .map_err(internal)?;
        audit::record(
            &mut tx,
            SERVICE,
            consent_access(&caller, &row, &rel, AccessAction::Write),
        )
        .await
        .map_err(internal)?;
        tx.commit().await.map_err(internal)?;
        tracing::info!(
            consent_id = %consent_id,
            person_id = %row.person_id,
            grantee_structure_id = %row.structure_id,
            collection = collection.code(),
            "consent granted"
        );
        Ok(Response::new(pb::GrantConsentResponse {
            consent: Some(row.to_proto()),
            receipt: Some(row.receipt()),
        }))
    }

    async fn list_consents(
        &self,
        req: Request<pb::ListConsentsRequest>,
    ) -> Result<Response<pb::ListConsentsResponse>, Status> {
        let caller = require_role(&req, PERSON_READERS)?.clone();
        let r = req.into_inner();
        check_id("person_id", &r.person_id)?;
        let rel = relation_of(&self.db, &caller, &r.person_id)
            .await?
            .ok_or_else(person_not_found)?;
        let page = Page::parse(r.page_size, &r.page_token)?;
        let status = pb::ConsentStatus::try_from(r.status).map_err(|_| {
            invalid_field(
                "status",
                "statut inconnu : active, withdrawn ou expired / unknown status",
            )
        })?;
        let (rows, next) = {
            let mut h = self.db.acquire().await.map_err(internal)?;
            self.store
                .of_person(h.conn(), &r.person_id, status_code(status), &page)
                .await
                .map_err(internal)?
        };
        self.record_reads(&caller, &rel, &rows.iter().collect::<Vec<_>>())
            .await?;
        Ok(Response::new(pb::ListConsentsResponse {
            consents: rows.iter().map(ConsentRow::to_proto).collect(),
            next_page_token: next,
        }))
    }

    async fn get_consent(
        &self,
        req: Request<pb::GetConsentRequest>,
    ) -> Result<Response<pb::GetConsentResponse>, Status> {
        let caller = require_role(&req, PERSON_READERS)?.clone();
        let id = req.into_inner().consent_id;
        let (row, rel) = self.visible(&caller, &id).await?;
        self.record_reads(&caller, &rel, &[&row]).await?;
        Ok(Response::new(pb::GetConsentResponse {
            consent: Some(row.to_proto()),
        }))
    }

    async fn withdraw_consent(
        &self,
        req: Request<pb::WithdrawConsentRequest>,
    ) -> Result<Response<pb::WithdrawConsentResponse>, Status> {
        let caller = require_role(&req, PERSON_READERS)?.clone();
        let r = req.into_inner();
        let id = r.consent_id;
        let (current, rel) = self.visible(&caller, &id).await?;
        let asked = domains_to_withdraw(&current, &r.domains)?;
        if current.status != "active" {
            // Already withdrawn or expired: nothing to do, nothing changes.
            return Ok(Response::new(pb::WithdrawConsentResponse {
                consent: Some(current.to_proto()),
                remaining: None,
            }));
        }
        // Some domains only: the rest is granted again, in the same
        // transaction, as a consent that replaces this one.
        let rest: Vec<&'static consent::Domain> = current
            .domain_list()
            .iter()
            .filter(|d| !asked.contains(d))
            .filter_map(|d| consent::domain(d))
            .collect();
        let replacement = if asked.is_empty() || rest.is_empty() {
            None
        } else {
            let structures = crate::store::Store::new(self.db.clone());
            let grantee = structures
                .structure(&current.structure_id)
                .await
                .map_err(internal)?
                .ok_or_else(consent_not_found)?;
            let new = NewConsent {
                domains: rest,
                purposes: current
                    .purposes
                    .split(',')
                    .filter_map(Purpose::parse)
                    .collect(),
                valid_from: current.valid_from.clone(),
                valid_until: current.valid_until.clone(),
            };
            Some(
                self.prepare(
                    &caller,
                    &current.person_id,
                    &grantee,
                    &new,
                    collection_of(&rel),
                    Some(&current.consent_id),
                )
                .await?,
            )
        };
        let now = now_us();
        let mut tx = self.db.begin().await.map_err(internal)?;
        let Some(row) = self
            .store
            .withdraw(tx.conn(), &id, now)
            .await
            .map_err(internal)?
        else {
            // Withdrawn or expired meanwhile.
            drop(tx);
            let mut h = self.db.acquire().await.map_err(internal)?;
            let row = self
                .store
                .get(h.conn(), &id)
                .await
                .map_err(internal)?
                .ok_or_else(consent_not_found)?;
            return Ok(Response::new(pb::WithdrawConsentResponse {
                consent: Some(row.to_proto()),
                remaining: None,
            }));
        };
        let withdrawn = pb::ConsentWithdrawn {
            consent_id: row.consent_id.clone(),
            person_id: row.person_id.clone(),
            grantee_structure_id: row.structure_id.clone(),
            withdrawn_at: Some(to_timestamp(now)),
        };
        // The withdrawal is published first: a projection never sees the
        // withdrawn domains allowed by the replacement, at worst the remaining
        // ones denied for an instant.
        outbox::enqueue(
            &mut tx,
            &Event::new(
                SERVICE,
                "eva.consent.grant.withdrawn",
                Some(row.consent_id.clone()),
                &withdrawn,
            ),
        )
        .await
        .map_err(internal)?;
        audit::record(
            &mut tx,
            SERVICE,
            consent_access(&caller, &row, &rel, AccessAction::Write),
        )
        .await
        .map_err(internal)?;
        if let Some((new_row, granted)) = &replacement {
            self.store
                .insert(tx.conn(), new_row)
                .await
                .map_err(internal)?;
            outbox::enqueue(
                &mut tx,
                &Event::new(
                    SERVICE,
                    "eva.consent.grant.granted",
                    Some(new_row.consent_id.clone()),
                    granted,
                ),
            )
            .await
            .map_err(internal)?;
            audit::record(
                &mut tx,
                SERVICE,
                consent_access(&caller, new_row, &rel, AccessAction::Write),
            )
            .await
            .map_err(internal)?;
        }
        tx.commit().await.map_err(internal)?;
        tracing::info!(
            consent_id = %row.consent_id,
            person_id = %row.person_id,
            withdrawn_domains = asked.len(),
            replaced_by = replacement.as_ref().map(|(r, _)| r.consent_id.as_str()).unwrap_or(""),
            "consent withdrawn"
        );
        Ok(Response::new(pb::WithdrawConsentResponse {
            consent: Some(row.to_proto()),
            remaining: replacement.map(|(r, _)| r.to_proto()),
        }))
    }

    async fn get_consent_receipt(
        &self,
        req: Request<pb::GetConsentReceiptRequest>,
    ) -> Result<Response<pb::GetConsentReceiptResponse>, Status> {
        let caller = require_role(&req, PERSON_READERS)?.clone();
        let id = req.into_inner().consent_id;
        let (row, rel) = self.visible(&caller, &id).await?;
        self.record_reads(&caller, &rel, &[&row]).await?;
        Ok(Response::new(pb::GetConsentReceiptResponse {
            receipt: Some(row.receipt()),
        }))
    }

    async fn check_access(
        &self,
        req: Request<pb::CheckAccessRequest>,
    ) -> Result<Response<pb::CheckAccessResponse>, Status> {
        let caller = require_role(&req, CHECKERS)?.clone();
        let r = req.into_inner();
        check_id("structure_id", &r.structure_id)?;
        if !caller.has_role(Role::Operator) && !caller.belongs_to(&r.structure_id) {
            return Err(Status::permission_denied(
                "accès refusé : vous n'agissez pas pour cette structure / access denied: you do not act for this structure",
            ));
        }
        check_id("person_id", &r.person_id)?;
        let domain = consent::domain(r.domain.trim()).ok_or_else(|| {
            invalid_field(
                "domain",
                "domaine inconnu du référentiel / unknown référentiel domain",
            )
        })?;
        let purpose = Purpose::from_proto(r.purpose).ok_or_else(|| {
            invalid_field(
                "purpose",
                "finalité inconnue : accompagnement, orientation ou statistiques / unknown purpose",
            )
        })?;
        let (erased, grants) = {
            let mut h = self.db.acquire().await.map_err(internal)?;
            let erased = crate::access_log::is_erased(h.conn(), &r.person_id)
                .await
                .map_err(internal)?;
            let grants = self
                .store
                .grants(h.conn(), &r.person_id, &r.structure_id)
                .await
                .map_err(internal)?;
            (erased, grants)
        };
        // An unknown person has no consent: denied `no_consent`; an erased
        // one (tombstone in `erased_people`) is denied `person_erased`.
        let decision = if erased {
            consent::Decision::deny(consent::Reason::PersonErased)
        } else {
            consent::decide(&grants, domain.id, purpose, &today())
        };
        Ok(Response::new(pb::CheckAccessResponse {
            allowed: decision.allowed,
            reason: reason_to_proto(decision.reason) as i32,
            consent_id: decision.consent_id.unwrap_or_default(),
        }))
    }
}
