//! `eva.identity.v1.SealingService`: seal data about a person with the
//! person's key, and open it again for a caller the person allows.
//! Service-to-service: another service calls it with the user's token it
//! received (the gateway exposes no route for it).

use eva_platform::audit::{self, Access};
use eva_platform::auth::{Principal, Role, require_role};
use eva_platform::consent::{Purpose, today};
use eva_platform::crypto::{Kek, WrappedKey};
use eva_platform::db::{Db, DbError};
use eva_platform::grpc::invalid_field;
use eva_platform::on_backend;
use eva_proto::audit::v1::AccessAction;
use eva_proto::identity::v1 as pb;
use eva_proto::identity::v1::sealing_service_server::SealingServiceServer;
use tonic::{Request, Response, Status};

use super::{aad, check_context, check_domains, check_plaintext, decide_all, key_id, reason_text};
use crate::SERVICE;
use crate::consent::store::ConsentStore;
use crate::people::api::{FOLLOWERS, PERSON_READERS, PURPOSE, field, internal, relation_of};
use crate::people::store::{PeopleStore, PersonRow};
use crate::people::{check_id, person_not_found};

/// Roles that may open a sealed payload, given the right structure and consent.
pub const OPENERS: &[Role] = &[
    Role::Person,
    Role::Counselor,
    Role::StructureAdmin,
    Role::Partner,
];

/// The access log's resource type for sealed payloads.
const RESOURCE: &str = "sealed";

/// The state behind `SealingService`.
#[derive(Clone)]
pub struct SealingApi {
    db: Db,
    kek: Kek,
}

/// `SealingService`, ready for `GrpcServer::add_service`.
pub fn server(db: Db, kek: Kek) -> SealingServiceServer<SealingApi> {
    SealingServiceServer::new(SealingApi { db, kek })
}

fn erased() -> Status {
    Status::failed_precondition(
        "données effacées : la clé de la personne a été détruite / data erased: the person's key was destroyed",
    )
}

fn erased_or_unknown() -> Status {
    Status::not_found("personne introuvable ou données effacées / person not found or data erased")
}

fn tampered() -> Status {
    invalid_field(
        "sealed",
        "données scellées altérées, ou scellées pour une autre personne ou un autre contexte / \
         sealed data tampered with, or sealed for another person or context",
    )
}

impl SealingApi {
    async fn person(&self, person_id: &str) -> Result<Option<PersonRow>, Status> {
        let mut h = self.db.acquire().await.map_err(internal)?;
        PeopleStore
            .person(h.conn(), person_id)
            .await
            .map_err(internal)
    }

    /// Was the person erased? Erasure deletes the person's key and rows and
    /// keeps only a tombstone (`erased_people`, see `crate::rights`).
    async fn erased(&self, person_id: &str) -> Result<bool, Status> {
        let mut h = self.db.acquire().await.map_err(internal)?;
        let row: Option<(String,)> = on_backend!(h.conn(), c => sqlx::query_as(
            "SELECT person_id FROM erased_people WHERE person_id = $1",
        )
        .bind(person_id)
        .fetch_optional(&mut *c)
        .await)
        .map_err(|e| internal(DbError::from(e)))?;
        Ok(row.is_some())
    }

    /// Records an access, committed before the answer.
    async fn record(&self, access: Access<'_>) -> Result<(), Status> {
        let mut tx = self.db.begin().await.map_err(internal)?;
        audit::record(&mut tx, SERVICE, access)
            .await
            .map_err(internal)?;
        tx.commit().await.map_err(internal)
    }

    /// May `caller`, acting for `structure_id`, read `domains` of the person
    /// for `purpose`? The person themself may; a counselor or admin of a
    /// structure following the person may; anyone else needs the person's
    /// consent to that structure for every domain and the purpose.
    async fn authorise_open(
        &self,
        caller: &Principal,
        person_id: &str,
        structure_id: &str,
        domains: &[&'static str],
        purpose: Purpose,
    ) -> Result<(), Status> {
        if caller.has_role(Role::Person) && caller.person_id.as_deref() == Some(person_id) {
            return Ok(());
        }
        if structure_id.is_empty() {
            return Err(invalid_field(
                "structure_id",
                "indiquez la structure pour laquelle vous lisez / give the structure you read for",
            ));
        }
        check_id("structure_id", structure_id)?;
        if !caller.belongs_to(structure_id) {
            return Err(Status::permission_denied(
                "accès refusé : vous n'agissez pas pour cette structure / access denied: you do not act for this structure",
            ));
        }
        // The caller acts for the structure and holds a payload about the
        // person: telling them the data is gone reveals nothing more.
        if self.erased(person_id).await? {
            return Err(erased());
        }
        let today = today();
        let (following, grants) = {
            let mut h = self.db.acquire().await.map_err(internal)?;
            let following = PeopleStore
                .following(h.conn(), person_id, &today)
                .await
                .map_err(internal)?;
            let grants = ConsentStore
                .grants(h.conn(), person_id, structure_id)
                .await
                .map_err(internal)?;
            (following, grants)
        };
        if caller.has_any_role(FOLLOWERS) && following.iter().any(|s| s == structure_id) {
            return Ok(());
        }
        if domains.is_empty() {
            return Err(invalid_field(
                "domains",
                "indiquez les domaines que couvrent les données, pour vérifier le consentement / \
                 list the domains the data covers, for the consent check",
            ));
        }
        decide_all(&grants, domains, purpose, &today).map_err(|(domain, d)| {
            tracing::info!(
                person_id = %person_id,
                structure_id = %structure_id,
                domain,
                purpose = purpose.code(),
                reason = ?d.reason,
                "sealed payload not opened: consent denies"
            );
            Status::permission_denied(format!(
                "accès refusé ({domain}, {purpose}) : {} / access denied",
                reason_text(d.reason)
            ))
        })
    }
}

#[tonic::async_trait]
impl pb::sealing_service_server::SealingService for SealingApi {
    async fn seal_for_person(
        &self,
        req: Request<pb::SealForPersonRequest>,
    ) -> Result<Response<pb::SealForPersonResponse>, Status> {
        let caller = require_role(&req, PERSON_READERS)?.clone();
        let r = req.into_inner();
        check_id("person_id", &r.person_id)?;
        let context = check_context(&r.context).map_err(field)?;
        check_plaintext(&r.plaintext).map_err(field)?;
        let rel = relation_of(&self.db, &caller, &r.person_id)
            .await?
            .ok_or_else(person_not_found)?;
        let row = self
            .person(&r.person_id)
            .await?
            .ok_or_else(person_not_found)?;
        if row.wrapped_key.is_empty() {
            return Err(erased());
        }
        let key = self
            .kek
            .unwrap_data_key(&r.person_id, &WrappedKey(row.wrapped_key.clone()))
            .map_err(crate::people::api::unreadable)?;
        let ciphertext = key.seal(&r.plaintext, &aad(&r.person_id, &context));
        self.record(Access {
            person_id: &r.person_id,
            actor: &caller,
            structure_id: rel.structure_id(),
            action: AccessAction::Write,
            resource_type: RESOURCE,
            resource_id: &context,
            domains: Vec::new(),
            purpose: PURPOSE,
        })
        .await?;
        tracing::info!(person_id = %r.person_id, bytes = r.plaintext.len(), "sealed for person");
        Ok(Response::new(pb::SealForPersonResponse {
            sealed: Some(pb::SealedPayload {
                ciphertext,
                key_id: key_id(&row.wrapped_key),
            }),
        }))
    }

    async fn open_sealed(
        &self,
        req: Request<pb::OpenSealedRequest>,
    ) -> Result<Response<pb::OpenSealedResponse>, Status> {
        let caller = require_role(&req, OPENERS)?.clone();
        let r = req.into_inner();
        check_id("person_id", &r.person_id)?;
        let context = check_context(&r.context).map_err(field)?;
        let sealed = r.sealed.as_ref().ok_or_else(|| {
            invalid_field(
                "sealed",
                "données scellées manquantes / sealed payload missing",
            )
        })?;
        if sealed.ciphertext.is_empty() || sealed.ciphertext.len() > super::MAX_PLAINTEXT + 64 {
            return Err(tampered());
        }
        let purpose = Purpose::from_proto(r.purpose).ok_or_else(|| {
            invalid_field(
                "purpose",
                "finalité inconnue : accompagnement, orientation ou statistiques / unknown purpose",
            )
        })?;
        let domains = check_domains(&r.domains).map_err(field)?;
        let structure_id = r.structure_id.trim();
        self.authorise_open(&caller, &r.person_id, structure_id, &domains, purpose)
            .await?;
        let Some(row) = self.person(&r.person_id).await? else {
            return Err(if self.erased(&r.person_id).await? {
                erased()
            } else {
                erased_or_unknown()
            });
        };
        if row.wrapped_key.is_empty() {
            return Err(erased());
        }
        if sealed.key_id != key_id(&row.wrapped_key) {
            return Err(invalid_field(
                "sealed",
                "scellé avec une autre clé que celle de cette personne / sealed with another key than this person's",
            ));
        }
        let key = self
            .kek
            .unwrap_data_key(&r.person_id, &WrappedKey(row.wrapped_key.clone()))
            .map_err(crate::people::api::unreadable)?;
        let plaintext = key
            .open(&sealed.ciphertext, &aad(&r.person_id, &context))
            .map_err(|_| tampered())?;
        self.record(Access {
            person_id: &r.person_id,
            actor: &caller,
            structure_id: (!structure_id.is_empty()).then_some(structure_id),
            action: AccessAction::Read,
            resource_type: RESOURCE,
            resource_id: &context,
            domains: domains.iter().map(|d| (*d).to_owned()).collect(),
            purpose: purpose.code(),
        })
        .await?;
        tracing::info!(
            person_id = %r.person_id,
            structure_id = %structure_id,
            purpose = purpose.code(),
            "sealed payload opened"
        );
        Ok(Response::new(pb::OpenSealedResponse { plaintext }))
    }
}
