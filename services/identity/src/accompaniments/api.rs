//! `eva.identity.v1.AccompanimentService`: the history of who follows a
//! person, ending an accompaniment, and share codes. See the module docs for
//! who may do what.

use eva_platform::audit::{self, Access};
use eva_platform::auth::{Principal, Role, require_role};
use eva_platform::crypto::{BlindIndex, Kek};
use eva_platform::db::{Db, now_us, to_timestamp};
use eva_platform::grpc::invalid_field;
use eva_platform::outbox::{self, Event};
use eva_platform::pagination::Page;
use eva_proto::audit::v1::AccessAction;
use eva_proto::identity::v1 as pb;
use eva_proto::identity::v1::accompaniment_service_server::AccompanimentServiceServer;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::store::{AccompanimentStore, AttemptsRow, NamedAccompaniment, ShareCodeRow};
use super::{
    MAX_ACTIVE_SHARE_CODES, REDEEM_FAILURES_ALLOWED, REDEEM_WINDOW, SHARE_CODE_TTL, end_reason,
    new_share_code, parse_share_code,
};
use crate::SERVICE;
use crate::people::api::{
    FOLLOWERS, PERSON_READERS, PURPOSE, field, internal, person_access, today_date, unreadable,
};
use crate::people::store::{AccompanimentRow, PeopleStore, end_reason_code};
use crate::people::{check_id, check_referent, parse_date, person_not_found};

/// The state behind `AccompanimentService`.
#[derive(Clone)]
pub struct AccompanimentApi {
    db: Db,
    kek: Kek,
    index: BlindIndex,
    store: AccompanimentStore,
    people: PeopleStore,
}

/// `AccompanimentService`, ready for `GrpcServer::add_service`.
pub fn server(db: Db, kek: Kek) -> AccompanimentServiceServer<AccompanimentApi> {
    AccompanimentServiceServer::new(AccompanimentApi {
        db,
        index: kek.blind_index(),
        kek,
        store: AccompanimentStore,
        people: PeopleStore,
    })
}

fn accompaniment_access<'a>(
    caller: &'a Principal,
    person_id: &'a str,
    structure_id: Option<&'a str>,
    action: AccessAction,
    resource_id: &'a str,
) -> Access<'a> {
    Access {
        person_id,
        actor: caller,
        structure_id,
        action,
        resource_type: "accompaniment",
        resource_id,
        domains: Vec::new(),
        purpose: PURPOSE,
    }
}

fn to_proto(a: NamedAccompaniment) -> pb::Accompaniment {
    pb::Accompaniment {
        structure_name: a.structure_name.unwrap_or_default(),
        ..a.row.into()
    }
}

fn accompaniment_not_found() -> Status {
    Status::not_found("accompagnement introuvable / accompaniment not found")
}

fn share_code_not_found() -> Status {
    Status::not_found(
        "code inconnu, expiré ou déjà utilisé : demandez à la personne un nouveau code / unknown, expired or already used code: ask the person for a new one",
    )
}

fn too_many_failures(remaining_us: i64) -> Status {
    let secs = (remaining_us.max(1) + 999_999) / 1_000_000;
    let mut s = Status::resource_exhausted(format!(
        "trop de codes erronés pour cette structure : réessayez dans {secs} s / too many wrong codes for this structure: try again in {secs} s"
    ));
    s.metadata_mut().insert("retry-after", secs.into());
    s
}

fn not_member() -> Status {
    Status::permission_denied(
        "accès refusé : vous n'êtes pas membre de cette structure / access denied: you are not a member of this structure",
    )
}

impl AccompanimentApi {
    /// Refuses while the structure is braked; otherwise `Ok`.
    async fn check_brake(&self, structure_id: &str, now: i64) -> Result<(), Status> {
        let mut h = self.db.acquire().await.map_err(internal)?;
        let attempts = self
            .store
            .attempts(h.conn(), structure_id)
            .await
            .map_err(internal)?;
        match attempts.and_then(|a| a.locked_until_us) {
            Some(until) if until > now => Err(too_many_failures(until - now)),
            _ => Ok(()),
        }
    }

    /// Counts a failed redemption; the structure is braked once it has failed
    /// too often within the window.
    async fn count_failure(&self, structure_id: &str, now: i64) -> Result<(), Status> {
        let window = REDEEM_WINDOW.as_micros() as i64;
        let mut tx = self.db.begin().await.map_err(internal)?;
        let previous = self
            .store
            .attempts(tx.conn(), structure_id)
            .await
            .map_err(internal)?;
        let mut a = match previous {
            Some(a) if a.window_started_at_us + window > now => a,
            _ => AttemptsRow {
                failures: 0,
                window_started_at_us: now,
                locked_until_us: None,
            },
        };
        a.failures += 1;
        if a.failures >= REDEEM_FAILURES_ALLOWED {
            a.locked_until_us = Some(a.window_started_at_us + window);
            tracing::warn!(
                structure_id,
                failures = a.failures,
                "share-code redemptions braked"
            );
        }
        self.store
            .save_attempts(tx.conn(), structure_id, &a)
            .await
            .map_err(internal)?;
        tx.commit().await.map_err(internal)
    }
}

#[tonic::async_trait]
impl pb::accompaniment_service_server::AccompanimentService for AccompanimentApi {
    async fn list_accompaniments(
        &self,
        req: Request<pb::ListAccompanimentsRequest>,
    ) -> Result<Response<pb::ListAccompanimentsResponse>, Status> {
        let caller = require_role(&req, PERSON_READERS)?.clone();
        let r = req.into_inner();
        check_id("person_id", &r.person_id)?;
        let page = Page::parse(r.page_size, &r.page_token)?;
        let (_, today) = today_date()?;
        let mut h = self.db.acquire().await.map_err(internal)?;
        if !self
            .people
            .exists(h.conn(), &r.person_id)
            .await
            .map_err(internal)?
        {
            return Err(person_not_found());
        }
        let themself = caller.has_role(Role::Person)
            && caller.person_id.as_deref() == Some(r.person_id.as_str());
        // (rows filter, the structure the caller acts for)
        let (only, acting_for): (Option<Vec<String>>, Option<String>) = if themself {
            (None, None)
        } else if caller.has_any_role(FOLLOWERS) {
            let following = self
                .people
                .following(h.conn(), &r.person_id, &today)
                .await
                .map_err(internal)?;
            if let Some(s) = caller.structures.iter().find(|s| following.contains(s)) {
                (None, Some(s.clone()))
            } else {
                let past: Vec<String> = self
                    .store
                    .structures_of(h.conn(), &r.person_id)
                    .await
                    .map_err(internal)?
                    .into_iter()
                    .filter(|s| caller.belongs_to(s))
                    .collect();
                let Some(first) = past.first().cloned() else {
                    return Err(person_not_found());
                };
                (Some(past), Some(first))
            }
        } else {
            return Err(person_not_found());
        };
        let (rows, next) = self
            .store
            .of_person(h.conn(), &r.person_id, only.as_deref(), &page)
            .await
            .map_err(internal)?;
        drop(h);
        let mut tx = self.db.begin().await.map_err(internal)?;
        audit::record(
            &mut tx,
            SERVICE,
            accompaniment_access(
                &caller,
                &r.person_id,
                acting_for.as_deref(),
                AccessAction::Read,
                &r.person_id,
            ),
        )
        .await
        .map_err(internal)?;
        tx.commit().await.map_err(internal)?;
        Ok(Response::new(pb::ListAccompanimentsResponse {
            accompaniments: rows.into_iter().map(to_proto).collect(),
            next_page_token: next,
        }))
    }

    async fn end_accompaniment(
        &self,
        req: Request<pb::EndAccompanimentRequest>,
    ) -> Result<Response<pb::EndAccompanimentResponse>, Status> {
        let caller = require_role(&req, FOLLOWERS)?.clone();
        let r = req.into_inner();
        check_id("accompaniment_id", &r.accompaniment_id)?;
        let existing = {
            let mut h = self.db.acquire().await.map_err(internal)?;
            self.store
                .accompaniment(h.conn(), &r.accompaniment_id)
                .await
                .map_err(internal)?
        };
        // Another structure's accompaniment is not there for this caller.
        let existing = existing
            .filter(|a| caller.belongs_to(&a.row.structure_id))
            .ok_or_else(accompaniment_not_found)?;
        let (today, today_s) = today_date()?;
        let end = parse_date(r.end_date.trim()).ok_or_else(|| {
            invalid_field(
                "end_date",
                "date de fin attendue au format AAAA-MM-JJ, ex. 2026-03-31 / end date must be a real date YYYY-MM-DD",
            )
        })?;
        let start = parse_date(&existing.row.started_on).unwrap_or(end);
        if end < start {
            return Err(invalid_field(
                "end_date",
                &format!(
                    "la date de fin ne peut pas précéder le début de l'accompagnement ({}) / end date cannot be before the start ({})",
                    existing.row.started_on, existing.row.started_on
                ),
            ));
        }
        if end > today {
            return Err(invalid_field(
                "end_date",
                &format!(
                    "la date de fin ne peut pas être dans le futur (aujourd'hui : {today_s}) / end date cannot be in the future (today: {today_s})"
                ),
            ));
        }
        let reason = end_reason(r.end_reason).ok_or_else(|| {
            invalid_field(
                "end_reason",
                "motif de fin obligatoire : emploi_formation, reorientation, choix_de_la_personne, sans_nouvelles, demenagement ou autre / end reason required",
            )
        })?;
        let end_s = r.end_date.trim().to_owned();
        let mut tx = self.db.begin().await.map_err(internal)?;
        if !self
            .store
            .end(
                tx.conn(),
                &r.accompaniment_id,
                &end_s,
                end_reason_code(reason),
            )
            .await
            .map_err(internal)?
        {
            return Err(Status::failed_precondition(
                "cet accompagnement est déjà terminé / this accompaniment has already ended",
            ));
        }
        let row = &existing.row;
        let ended = pb::AccompanimentEnded {
            accompaniment_id: row.accompaniment_id.clone(),
            person_id: row.person_id.clone(),
            structure_id: row.structure_id.clone(),
            end_date: end_s.clone(),
            end_reason: reason as i32,
            occurred_at: Some(to_timestamp(now_us())),
        };
        outbox::enqueue(
            &mut tx,
            &Event::new(
                SERVICE,
                "eva.identity.accompaniment.ended",
                Some(row.accompaniment_id.clone()),
                &ended,
            ),
        )
        .await
        .map_err(internal)?;
        audit::record(
            &mut tx,
            SERVICE,
            accompaniment_access(
                &caller,
                &row.person_id,
                Some(&row.structure_id),
                AccessAction::Write,
                &row.accompaniment_id,
            ),
        )
        .await
        .map_err(internal)?;
        tx.commit().await.map_err(internal)?;
        tracing::info!(accompaniment_id = %row.accompaniment_id, structure_id = %row.structure_id, reason = end_reason_code(reason), "accompaniment ended");
        let mut done = existing;
        done.row.ended_on = Some(end_s);
        done.row.end_reason = Some(end_reason_code(reason).to_owned());
        Ok(Response::new(pb::EndAccompanimentResponse {
            accompaniment: Some(to_proto(done)),
        }))
    }

    async fn create_share_code(
        &self,
        req: Request<pb::CreateShareCodeRequest>,
    ) -> Result<Response<pb::CreateShareCodeResponse>, Status> {
        let caller = require_role(&req, &[Role::Person])?.clone();
        let Some(person_id) = caller.person_id.clone() else {
            return Err(Status::permission_denied(
                "seule la personne peut créer un code de partage, depuis son propre compte / only the person can create a share code, from their own account",
            ));
        };
        let now = now_us();
        let mut tx = self.db.begin().await.map_err(internal)?;
        if !self
            .people
            .exists(tx.conn(), &person_id)
            .await
            .map_err(internal)?
        {
            return Err(person_not_found());
        }
        let active = self
            .store
            .active_share_codes(tx.conn(), &person_id, now)
            .await
            .map_err(internal)?;
        if active >= MAX_ACTIVE_SHARE_CODES {
            return Err(Status::failed_precondition(format!(
                "vous avez déjà {MAX_ACTIVE_SHARE_CODES} codes en cours : attendez qu'un code soit utilisé ou expire (24 h) / you already have {MAX_ACTIVE_SHARE_CODES} codes in use: wait until one is used or expires (24 h)"
            )));
        }
        let code = new_share_code();
        let row = ShareCodeRow {
            code_hash: self.index.index("share_code", &code),
            person_id: person_id.clone(),
            expires_at_us: now + SHARE_CODE_TTL.as_micros() as i64,
        };
        self.store
            .insert_share_code(tx.conn(), &row, now)
            .await
            .map_err(internal)?;
        audit::record(
            &mut tx,
            SERVICE,
            Access {
                resource_type: "share_code",
                ..person_access(&caller, &person_id, None, AccessAction::Write)
            },
        )
        .await
        .map_err(internal)?;
        tx.commit().await.map_err(internal)?;
        tracing::info!(person_id = %person_id, "share code created");
        Ok(Response::new(pb::CreateShareCodeResponse {
            share_code: Some(pb::ShareCode {
                code,
                expires_at: Some(to_timestamp(row.expires_at_us)),
            }),
        }))
    }

    async fn redeem_share_code(
        &self,
        req: Request<pb::RedeemShareCodeRequest>,
    ) -> Result<Response<pb::RedeemShareCodeResponse>, Status> {
        let caller = require_role(&req, FOLLOWERS)?.clone();
        let r = req.into_inner();
        check_id("structure_id", &r.structure_id)?;
        if !caller.belongs_to(&r.structure_id) {
            return Err(not_member());
        }
        if r.code.trim().is_empty() {
            return Err(invalid_field(
                "code",
                "le code de partage est obligatoire / share code is required",
            ));
        }
        let code = parse_share_code(&r.code).ok_or_else(|| {
            invalid_field(
                "code",
                "un code de partage compte 8 caractères (lettres et chiffres, sans 0, O, 1 ni I) / a share code is 8 characters (letters and digits, no 0, O, 1 or I)",
            )
        })?;
        let referent = check_referent(&r.referent_user_id).map_err(field)?;
        let structure = crate::store::Store::new(self.db.clone())
            .structure(&r.structure_id)
            .await
            .map_err(internal)?
            .ok_or_else(|| {
                invalid_field("structure_id", "structure inconnue / unknown structure")
            })?;
        if !crate::accounts::roles_for_kind(&structure.kind).contains(&Role::Counselor) {
            return Err(invalid_field(
                "structure_id",
                "seule une structure d'accompagnement peut suivre une personne / only a structure that accompanies people can follow a person",
            ));
        }
        let now = now_us();
        self.check_brake(&r.structure_id, now).await?;
        let (_, today) = today_date()?;
        let mut tx = self.db.begin().await.map_err(internal)?;
        let hash = self.index.index("share_code", &code);
        let Some(person_id) = self
            .store
            .use_share_code(tx.conn(), &hash, &r.structure_id, now)
            .await
            .map_err(internal)?
        else {
            drop(tx);
            self.count_failure(&r.structure_id, now).await?;
            return Err(share_code_not_found());
        };
        if self
            .store
            .is_open(tx.conn(), &person_id, &r.structure_id)
            .await
            .map_err(internal)?
        {
            // The code stays usable (the transaction rolls back).
            return Err(Status::already_exists(
                "votre structure accompagne déjà cette personne / your structure already follows this person",
            ));
        }
        let accompaniment = AccompanimentRow {
            accompaniment_id: Uuid::now_v7().to_string(),
            person_id: person_id.clone(),
            structure_id: r.structure_id.clone(),
            referent_user_id: referent,
            started_on: today,
            ended_on: None,
            end_reason: None,
            referral_id: String::new(),
            created_at_us: now,
        };
        self.people
            .start_accompaniment(&mut tx, &accompaniment)
            .await
            .map_err(internal)?;
        audit::record(
            &mut tx,
            SERVICE,
            accompaniment_access(
                &caller,
                &person_id,
                Some(&r.structure_id),
                AccessAction::Write,
                &accompaniment.accompaniment_id,
            ),
        )
        .await
        .map_err(internal)?;
        audit::record(
            &mut tx,
            SERVICE,
            person_access(
                &caller,
                &person_id,
                Some(&r.structure_id),
                AccessAction::Read,
            ),
        )
        .await
        .map_err(internal)?;
        let person = self
            .people
            .person(tx.conn(), &person_id)
            .await
            .map_err(internal)?
            .ok_or_else(share_code_not_found)?
            .to_proto(&self.kek)
            .map_err(unreadable)?;
        tx.commit().await.map_err(internal)?;
        tracing::info!(person_id = %person_id, structure_id = %r.structure_id, accompaniment_id = %accompaniment.accompaniment_id, "share code redeemed");
        Ok(Response::new(pb::RedeemShareCodeResponse {
            person: Some(person),
            accompaniment: Some(pb::Accompaniment {
                structure_name: structure.name,
                ..accompaniment.into()
            }),
        }))
    }
}
