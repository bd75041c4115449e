//! `eva.identity.v1.SealingService`: seal data about a person with the
//! person's key, and open it again for a caller the person allows.
//! Service-to-service: another service calls it with the user's token it
//! received (the gateway exposes no route for it).

use eva_platform::audit::{self, Access};
use eva_platform::auth::{Principal, Role, require_role};
use eva_platform::consent::{GrantView, Purpose, Reason, today};
use eva_platform::crypto::{DataKey, Kek, WrappedKey};
use eva_platform::db::{Db, DbError};
use eva_platform::grpc::invalid_field;
use eva_platform::on_backend;
use eva_proto::audit::v1::AccessAction;
use eva_proto::identity::v1 as pb;
use eva_proto::identity::v1::sealing_service_server::SealingServiceServer;
use tonic::{Request, Response, Status};

use super::{
    MAX_BATCH_CIPHERTEXT, MAX_BATCH_ITEMS, MAX_BATCHES, MAX_BATCHES_CIPHERTEXT, aad, check_context,
    check_domains, check_plaintext, check_resource_type, decide_all, key_id, reason_text,
};
use crate::SERVICE;
use crate::consent::store::ConsentStore;
use crate::people::api::{FOLLOWERS, PURPOSE, field, internal, relation_of};
use crate::people::store::{PeopleStore, PersonRow};
use crate::people::{check_id, person_not_found};
use crate::structure::FieldError;

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

const TAMPERED: &str = "données scellées altérées, ou scellées pour une autre personne ou un autre contexte / \
     sealed data tampered with, or sealed for another person or context";

const OTHER_KEY: &str = "scellé avec une autre clé que celle de cette personne / sealed with another key than this person's";

/// Largest ciphertext of one payload: the largest plaintext and the AEAD's
/// nonce and tag.
const MAX_CIPHERTEXT: usize = super::MAX_PLAINTEXT + 64;

fn tampered() -> Status {
    invalid_field("sealed", TAMPERED)
}

/// How a caller, once authorised for a person and a structure, may open
/// payloads: freely (the person themself, or a follower), or per domain as
/// the person's consent to the structure allows.
enum Opener {
    Free,
    Consent {
        grants: Vec<GrantView>,
        today: String,
    },
}

/// Why one payload is not opened.
enum Refusal {
    /// The consent does not cover `domain` for the purpose.
    Consent {
        domain: &'static str,
        reason: Reason,
    },
    /// Only a consent could allow it, and the payload names no domain.
    DomainsRequired,
    /// Tampered bytes, or sealed for another person, context or key.
    Sealed(&'static str),
}

const DOMAINS_REQUIRED: &str = "indiquez les domaines que couvrent les données, pour vérifier le consentement / \
     list the domains the data covers, for the consent check";

impl Opener {
    /// May the payload covering `domains` be opened for `purpose`? One
    /// decision for OpenSealed and for each item of OpenSealedBatch.
    fn decide(&self, domains: &[&'static str], purpose: Purpose) -> Result<(), Refusal> {
        let Opener::Consent { grants, today } = self else {
            return Ok(());
        };
        if domains.is_empty() {
            return Err(Refusal::DomainsRequired);
        }
        decide_all(grants, domains, purpose, today).map_err(|(domain, d)| Refusal::Consent {
            domain,
            reason: d.reason,
        })
    }
}

impl Refusal {
    fn message(&self, purpose: Purpose) -> String {
        match self {
            Refusal::Consent { domain, reason } => format!(
                "accès refusé ({domain}, {purpose}) : {} / access denied",
                reason_text(*reason)
            ),
            Refusal::DomainsRequired => DOMAINS_REQUIRED.to_owned(),
            Refusal::Sealed(m) => (*m).to_owned(),
        }
    }

    /// Logs a consent denial (never the payload).
    fn log(&self, person_id: &str, structure_id: &str, purpose: Purpose) {
        if let Refusal::Consent { domain, reason } = self {
            tracing::info!(
                person_id = %person_id,
                structure_id = %structure_id,
                domain,
                purpose = purpose.code(),
                reason = ?reason,
                "sealed payload not opened: consent denies"
            );
        }
    }

    /// The refusal as OpenSealed answers it.
    fn status(&self, purpose: Purpose) -> Status {
        match self {
            Refusal::Consent { .. } => Status::permission_denied(self.message(purpose)),
            Refusal::DomainsRequired => invalid_field("domains", DOMAINS_REQUIRED),
            Refusal::Sealed(m) => invalid_field("sealed", m),
        }
    }

    /// The refusal as one item of OpenSealedBatch answers it.
    fn item(&self, purpose: Purpose) -> pb::OpenSealedItemResult {
        let (refusal, domain) = match self {
            Refusal::Consent { domain, .. } => (pb::OpenRefusal::Consent, (*domain).to_owned()),
            Refusal::DomainsRequired => (pb::OpenRefusal::DomainsRequired, String::new()),
            Refusal::Sealed(_) => (pb::OpenRefusal::Sealed, String::new()),
        };
        pb::OpenSealedItemResult {
            plaintext: Vec::new(),
            refusal: refusal as i32,
            message: self.message(purpose),
            domain,
        }
    }
}

/// Opens one payload with the person's key, checking it was sealed with
/// that key, for that person and in that context.
fn open_with(
    key: &DataKey,
    key_id_now: &str,
    person_id: &str,
    context: &str,
    sealed: &pb::SealedPayload,
) -> Result<Vec<u8>, Refusal> {
    if sealed.ciphertext.is_empty() || sealed.ciphertext.len() > MAX_CIPHERTEXT {
        return Err(Refusal::Sealed(TAMPERED));
    }
    if sealed.key_id != key_id_now {
        return Err(Refusal::Sealed(OTHER_KEY));
    }
    key.open(&sealed.ciphertext, &aad(person_id, context))
        .map_err(|_| Refusal::Sealed(TAMPERED))
}

fn purpose_of(raw: i32) -> Result<Purpose, Status> {
    Purpose::from_proto(raw).ok_or_else(|| {
        invalid_field(
            "purpose",
            "finalité inconnue : accompagnement, orientation ou statistiques / unknown purpose",
        )
    })
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

    /// May `caller`, acting for `structure_id`, read the person's data at
    /// all, and how? The person themself may; a counselor or admin of a
    /// structure following the person may; anyone else needs the person's
    /// consent to that structure for every domain and the purpose, decided
    /// per payload by [`Opener::decide`].
    async fn authorise(
        &self,
        caller: &Principal,
        person_id: &str,
        structure_id: &str,
    ) -> Result<Opener, Status> {
        if caller.has_role(Role::Person) && caller.person_id.as_deref() == Some(person_id) {
            return Ok(Opener::Free);
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
            return Ok(Opener::Free);
        }
        Ok(Opener::Consent { grants, today })
    }

    /// The person's data key and its id, or why there is none.
    async fn key_of(&self, person_id: &str) -> Result<(DataKey, String), Status> {
        let Some(row) = self.person(person_id).await? else {
            return Err(if self.erased(person_id).await? {
                erased()
            } else {
                erased_or_unknown()
            });
        };
        if row.wrapped_key.is_empty() {
            return Err(erased());
        }
        let key = self
            .kek
            .unwrap_data_key(person_id, &WrappedKey(row.wrapped_key.clone()))
            .map_err(crate::people::api::unreadable)?;
        Ok((key, key_id(&row.wrapped_key)))
    }
}

impl SealingApi {
    /// Who may seal data into a person's file: the person, a structure
    /// that follows them, or a structure the person consented to (a
    /// partner answering a referral writes its notes and messages sealed
    /// with the person's key). Sealing reveals nothing; it is a write, and
    /// is logged as one. Answers the structure the caller writes for.
    async fn sealer_structure(
        &self,
        caller: &Principal,
        person_id: &str,
    ) -> Result<Option<String>, Status> {
        if let Some(rel) = relation_of(&self.db, caller, person_id).await? {
            return Ok(rel.structure_id().map(str::to_owned));
        }
        if caller.has_role(Role::Person) {
            return Err(person_not_found());
        }
        let today = today();
        let mut h = self.db.acquire().await.map_err(internal)?;
        for s in &caller.structures {
            let grants = ConsentStore
                .grants(h.conn(), person_id, s)
                .await
                .map_err(internal)?;
            let in_force = grants.iter().any(|g| {
                g.status == "active"
                    && g.valid_from.as_str() <= today.as_str()
                    && (g.valid_until.is_empty() || g.valid_until.as_str() >= today.as_str())
            });
            if in_force {
                return Ok(Some(s.clone()));
            }
        }
        Err(person_not_found())
    }

    /// One batch of OpenSealedBatch, for `caller`: its results, or why the
    /// whole batch is refused.
    async fn batch(
        &self,
        caller: &Principal,
        r: pb::OpenSealedBatchRequest,
    ) -> Result<Vec<pb::OpenSealedItemResult>, Status> {
        check_id("person_id", &r.person_id)?;
        let purpose = purpose_of(r.purpose)?;
        let resource_type = check_resource_type(&r.resource_type).map_err(field)?;
        let resource_id = check_context(&r.resource_id).map_err(|e| {
            field(FieldError {
                field: "resource_id",
                message: e.message,
            })
        })?;
        if r.items.is_empty() || r.items.len() > MAX_BATCH_ITEMS {
            return Err(invalid_field(
                "items",
                "de 1 à 64 éléments à ouvrir par appel / 1 to 64 items per call",
            ));
        }
        let total: usize = r
            .items
            .iter()
            .map(|i| i.sealed.as_ref().map_or(0, |s| s.ciphertext.len()))
            .sum();
        if total > MAX_BATCH_CIPHERTEXT {
            return Err(invalid_field(
                "items",
                "trop de données à ouvrir : 2 Mio au plus par appel / too much to open: at most 2 MiB per call",
            ));
        }
        // Every item well formed, or the whole batch is a bad request.
        let mut items = Vec::with_capacity(r.items.len());
        for item in &r.items {
            let sealed = item.sealed.as_ref().ok_or_else(|| {
                invalid_field(
                    "items.sealed",
                    "données scellées manquantes / sealed payload missing",
                )
            })?;
            let context = check_context(&item.context)
                .map_err(|e| invalid_field("items.context", &e.message))?;
            let domains = check_domains(&item.domains)
                .map_err(|e| invalid_field("items.domains", &e.message))?;
            items.push((sealed, context, domains));
        }
        let structure_id = r.structure_id.trim();
        let opener = self.authorise(caller, &r.person_id, structure_id).await?;
        let (key, key_id_now) = self.key_of(&r.person_id).await?;
        let mut opened_domains: Vec<String> = Vec::new();
        let mut results = Vec::with_capacity(items.len());
        let mut opened = 0usize;
        for (sealed, context, domains) in &items {
            let outcome = opener
                .decide(domains, purpose)
                .and_then(|()| open_with(&key, &key_id_now, &r.person_id, context, sealed));
            match outcome {
                Ok(plaintext) => {
                    opened += 1;
                    for d in domains {
                        if !opened_domains.iter().any(|x| x == d) {
                            opened_domains.push((*d).to_owned());
                        }
                    }
                    results.push(pb::OpenSealedItemResult {
                        plaintext,
                        ..Default::default()
                    });
                }
                Err(e) => {
                    e.log(&r.person_id, structure_id, purpose);
                    results.push(e.item(purpose));
                }
            }
        }
        if opened > 0 {
            self.record(Access {
                person_id: &r.person_id,
                actor: caller,
                structure_id: (!structure_id.is_empty()).then_some(structure_id),
                action: AccessAction::Read,
                resource_type: &resource_type,
                resource_id: &resource_id,
                domains: opened_domains,
                purpose: purpose.code(),
            })
            .await?;
        }
        tracing::info!(
            person_id = %r.person_id,
            structure_id = %structure_id,
            purpose = purpose.code(),
            items = items.len(),
            opened,
            "sealed payloads opened"
        );
        Ok(results)
    }
}

#[tonic::async_trait]
impl pb::sealing_service_server::SealingService for SealingApi {
    async fn seal_for_person(
        &self,
        req: Request<pb::SealForPersonRequest>,
    ) -> Result<Response<pb::SealForPersonResponse>, Status> {
        let caller = require_role(&req, OPENERS)?.clone();
        let r = req.into_inner();
        check_id("person_id", &r.person_id)?;
        let context = check_context(&r.context).map_err(field)?;
        check_plaintext(&r.plaintext).map_err(field)?;
        let structure_id = self.sealer_structure(&caller, &r.person_id).await?;
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
            structure_id: structure_id.as_deref(),
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
        if sealed.ciphertext.is_empty() || sealed.ciphertext.len() > MAX_CIPHERTEXT {
            return Err(tampered());
        }
        let purpose = purpose_of(r.purpose)?;
        let domains = check_domains(&r.domains).map_err(field)?;
        let structure_id = r.structure_id.trim();
        let opener = self.authorise(&caller, &r.person_id, structure_id).await?;
        opener.decide(&domains, purpose).map_err(|e| {
            e.log(&r.person_id, structure_id, purpose);
            e.status(purpose)
        })?;
        let (key, key_id_now) = self.key_of(&r.person_id).await?;
        let plaintext = open_with(&key, &key_id_now, &r.person_id, &context, sealed)
            .map_err(|e| e.status(purpose))?;
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

    async fn open_sealed_batch(
        &self,
        req: Request<pb::OpenSealedBatchRequest>,
    ) -> Result<Response<pb::OpenSealedBatchResponse>, Status> {
        let caller = require_role(&req, OPENERS)?.clone();
        let results = self.batch(&caller, req.into_inner()).await?;
        Ok(Response::new(pb::OpenSealedBatchResponse { results }))
    }

    async fn open_sealed_batches(
        &self,
        req: Request<pb::OpenSealedBatchesRequest>,
    ) -> Result<Response<pb::OpenSealedBatchesResponse>, Status> {
        use futures::StreamExt;
        /// Batches opened at once (each reads consent and writes its access).
        const AT_ONCE: usize = 8;
        let caller = require_role(&req, OPENERS)?.clone();
        let r = req.into_inner();
        if r.batches.is_empty() || r.batches.len() > MAX_BATCHES {
            return Err(invalid_field(
                "batches",
                "de 1 à 64 lots à ouvrir par appel / 1 to 64 batches per call",
            ));
        }
        let total: usize = r
            .batches
            .iter()
            .flat_map(|b| &b.items)
            .map(|i| i.sealed.as_ref().map_or(0, |s| s.ciphertext.len()))
            .sum();
        if total > MAX_BATCHES_CIPHERTEXT {
            return Err(invalid_field(
                "batches",
                "trop de données à ouvrir : 8 Mio au plus par appel / too much to open: at most 8 MiB per call",
            ));
        }
        let caller = &caller;
        let outcomes = futures::stream::iter(r.batches)
            .map(|b| async move {
                match self.batch(caller, b).await {
                    Ok(results) => pb::OpenSealedBatchOutcome {
                        results,
                        ..Default::default()
                    },
                    Err(s) => pb::OpenSealedBatchOutcome {
                        results: Vec::new(),
                        code: s.code() as i32,
                        message: s.message().to_owned(),
                    },
                }
            })
            .buffered(AT_ONCE)
            .collect()
            .await;
        Ok(Response::new(pb::OpenSealedBatchesResponse { outcomes }))
    }
}
