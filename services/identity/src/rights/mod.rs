//! The person's GDPR rights: export (art. 15 and 20), erasure (art. 17) and
//! objection to statistics (art. 21).
//!
//! Who may do what:
//! - **Export**: the person, or a counselor of a structure that follows them
//!   (who often does it with the person, at their desk). Identity gathers its
//!   own part in-process and asks every other service for its part through
//!   `PersonDataService/ExportPersonData`, forwarding the caller's token, so
//!   each service decides for itself. Logged as an `export` access.
//! - **Erasure**: the person, or a structure admin of a structure that
//!   follows them (a counselor may not: it cannot be undone, so it takes the
//!   person or whoever answers for the structure). One transaction deletes
//!   the person's wrapped data key and every row about them (person,
//!   accompaniments, consents with their receipts, access-log entries,
//!   objection, and the person's own account when they erase themself), keeps
//!   a tombstone in `erased_people` and publishes `eva.identity.person.erased`
//!   so every service erases its part. After the commit SQLite's WAL is
//!   checkpointed and the file vacuumed, PostgreSQL's tables vacuumed, so no
//!   deleted page keeps the person's bytes. No access-log entry is written:
//!   it would be about a person whose log was just deleted.
//! - **Objection to statistics**: the person, or a counselor of a following
//!   structure on their behalf; published as
//!   `eva.identity.person.statistics_objection_changed`.
//!
//! Anyone else gets NOT_FOUND, whether the person exists or not (BOLA); a
//! member of a following structure without the role gets PERMISSION_DENIED.

pub mod api;

use eva_platform::auth::{Principal, Role};
use eva_platform::consent::today;
use eva_platform::crypto::Kek;
use eva_platform::db::{Backend, Conn, Db, DbError, Tx};
use eva_platform::on_backend;
use serde_json::{Value, json};
use tonic::Status;

use crate::access_log::{self, rfc3339};
use crate::accounts::Accounts;
use crate::consent::store::ConsentRow;
use crate::people::api::{internal, unreadable};
use crate::people::person_not_found;
use crate::people::store::{AccompanimentRow, PeopleStore};

/// The purpose recorded for accesses made while exercising the person's rights.
pub const PURPOSE: &str = "droits_de_la_personne";

/// How the caller stands towards the person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    /// The person, with their own account.
    Themself,
    /// A member of a structure that follows the person, holding the role.
    For { structure_id: String },
}

impl Who {
    pub fn structure_id(&self) -> Option<&str> {
        match self {
            Who::Themself => None,
            Who::For { structure_id } => Some(structure_id),
        }
    }
}

/// May `caller` act on `person_id`: the person themself, or a member of a
/// structure following them who holds one of `structure_roles` there (by
/// the token's claims and, for an account of this service, its memberships
/// now). NOT_FOUND for an unknown or erased person and for anyone unrelated.
pub async fn authorise(
    db: &Db,
    accounts: &Accounts,
    caller: &Principal,
    person_id: &str,
    structure_roles: &[Role],
) -> Result<Who, Status> {
    let store = PeopleStore;
    let following = {
        let mut h = db.acquire().await.map_err(internal)?;
        if !store.exists(h.conn(), person_id).await.map_err(internal)? {
            return Err(person_not_found());
        }
        if caller.has_role(Role::Person) && caller.person_id.as_deref() == Some(person_id) {
            return Ok(Who::Themself);
        }
        if !caller.has_any_role(structure_roles) {
            return Err(person_not_found());
        }
        store
            .following(h.conn(), person_id, &today())
            .await
            .map_err(internal)?
    };
    let shared: Vec<&String> = caller
        .structures
        .iter()
        .filter(|s| following.contains(s))
        .collect();
    if shared.is_empty() {
        return Err(person_not_found());
    }
    for s in shared {
        if accounts.authorise(caller, s, structure_roles).await.is_ok() {
            return Ok(Who::For {
                structure_id: s.clone(),
            });
        }
    }
    Err(Status::permission_denied(
        "accès refusé : votre rôle dans cette structure ne le permet pas / access denied: your role in this structure does not allow it",
    ))
}

const CONSENT_COLUMNS: &str = "consent_id, person_id, structure_id, domains, purposes, valid_from, valid_until, \
     status, recorded_by_user_id, collection, granted_at_us, withdrawn_at_us, expired_at_us, \
     receipt_id, receipt_json, receipt_signature";

async fn accompaniments_of(
    conn: Conn<'_>,
    person_id: &str,
) -> Result<Vec<AccompanimentRow>, DbError> {
    Ok(
        on_backend!(conn, c => sqlx::query_as::<_, AccompanimentRow>(
        "SELECT accompaniment_id, person_id, structure_id, referent_user_id, started_on, ended_on, \
         end_reason, referral_id, created_at_us FROM accompaniments WHERE person_id = $1 \
         ORDER BY accompaniment_id",
    )
    .bind(person_id)
    .fetch_all(&mut *c)
    .await)?,
    )
}

async fn consents_of(conn: Conn<'_>, person_id: &str) -> Result<Vec<ConsentRow>, DbError> {
    Ok(
        on_backend!(conn, c => sqlx::query_as::<_, ConsentRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {CONSENT_COLUMNS} FROM consents WHERE person_id = $1 ORDER BY consent_id"
    )))
    .bind(person_id)
    .fetch_all(&mut *c)
    .await)?,
    )
}

/// The person's objection to statistics: `(objected, updated_at_us)`.
pub async fn objection_of(conn: Conn<'_>, person_id: &str) -> Result<Option<(i64, i64)>, DbError> {
    Ok(on_backend!(conn, c => sqlx::query_as::<_, (i64, i64)>(
        "SELECT objected, updated_at_us FROM statistics_objections WHERE person_id = $1",
    )
    .bind(person_id)
    .fetch_optional(&mut *c)
    .await)?)
}

/// Records the person's choice.
pub async fn set_objection(
    tx: &mut Tx,
    person_id: &str,
    objected: bool,
    now_us: i64,
) -> Result<(), DbError> {
    on_backend!(tx.conn(), c => sqlx::query(
        "INSERT INTO statistics_objections (person_id, objected, updated_at_us) VALUES ($1, $2, $3) \
         ON CONFLICT (person_id) DO UPDATE SET objected = excluded.objected, \
         updated_at_us = excluded.updated_at_us",
    )
    .bind(person_id)
    .bind(i64::from(objected))
    .bind(now_us)
    .execute(&mut *c)
    .await
    .map(|_| ()))?;
    Ok(())
}

/// Identity's part of a person's export: their identity fields in clear,
/// accompaniments, consents with their signed receipts, objection to
/// statistics and access log. Personal data.
pub async fn identity_part(
    db: &Db,
    kek: &Kek,
    accounts: &Accounts,
    person_id: &str,
) -> Result<Value, Status> {
    let store = PeopleStore;
    let (row, accompaniments, consents, objection, accesses) = {
        let mut h = db.acquire().await.map_err(internal)?;
        let row = store
            .person(h.conn(), person_id)
            .await
            .map_err(internal)?
            .ok_or_else(person_not_found)?;
        let accompaniments = accompaniments_of(h.conn(), person_id)
            .await
            .map_err(internal)?;
        let consents = consents_of(h.conn(), person_id).await.map_err(internal)?;
        let objection = objection_of(h.conn(), person_id).await.map_err(internal)?;
        let accesses = access_log::all_of(h.conn(), person_id)
            .await
            .map_err(internal)?;
        (row, accompaniments, consents, objection, accesses)
    };
    let f = row.open(kek).map_err(unreadable)?;
    let structures = crate::store::Store::new(db.clone());
    let mut accompaniments_json = Vec::new();
    for a in accompaniments {
        let name = structures
            .structure(&a.structure_id)
            .await
            .map_err(internal)?
            .map(|s| s.name)
            .unwrap_or_default();
        accompaniments_json.push(json!({
            "id": a.accompaniment_id,
            "structure_id": a.structure_id,
            "structure_name": name,
            "referent_user_id": a.referent_user_id,
            "start_date": a.started_on,
            "end_date": a.ended_on,
            "end_reason": a.end_reason,
            "referral_id": a.referral_id,
        }));
    }
    let consents_json: Vec<Value> = consents
        .iter()
        .map(|c| {
            json!({
                "id": c.consent_id,
                "grantee_structure_id": c.structure_id,
                "domains": c.domain_list(),
                "purposes": c.purposes.split(',').filter(|p| !p.is_empty()).collect::<Vec<_>>(),
                "valid_from": c.valid_from,
                "valid_until": c.valid_until,
                "status": c.status,
                "collection": c.collection,
                "granted_at": rfc3339(c.granted_at_us),
                "withdrawn_at": c.withdrawn_at_us.map(rfc3339),
                "expired_at": c.expired_at_us.map(rfc3339),
                "receipt": {
                    "id": c.receipt_id,
                    "document": serde_json::from_str::<Value>(&c.receipt_json)
                        .unwrap_or_else(|_| Value::String(c.receipt_json.clone())),
                    "signature": c.receipt_signature,
                },
            })
        })
        .collect();
    let entries = access_log::api::entries(db, accounts, accesses).await?;
    let log_json: Vec<Value> = entries
        .into_iter()
        .map(|e| {
            let role = eva_proto::identity::v1::Role::try_from(e.actor_role)
                .map(|r| r.as_str_name().trim_start_matches("ROLE_").to_lowercase())
                .unwrap_or_default();
            let action = eva_proto::audit::v1::AccessAction::try_from(e.action)
                .map(access_log::action_code)
                .unwrap_or_default();
            json!({
                "id": e.access_id,
                "occurred_at": e.occurred_at.map(|t| rfc3339(eva_platform::db::timestamp_us(&t))),
                "actor_user_id": e.actor_user_id,
                "actor_display_name": e.actor_display_name,
                "actor_structure_id": e.actor_structure_id,
                "actor_structure_name": e.actor_structure_name,
                "actor_role": role,
                "action": action,
                "resource_type": e.resource_type,
                "resource_id": e.resource_id,
                "domains": e.domains,
                "purpose": e.purpose,
                "service": e.service,
            })
        })
        .collect();
    Ok(json!({
        "service": crate::SERVICE,
        "description": "Votre identité, les structures qui vous accompagnent, vos consentements avec leurs reçus, \
                        votre choix sur les statistiques et le journal des accès à votre dossier / \
                        Your identity, accompaniments, consents with receipts, statistics objection and access log",
        "person": {
            "id": row.person_id,
            "first_name": f.first_name,
            "last_name": f.last_name,
            "birth_date": f.birth_date,
            "email": f.email,
            "phone": f.phone,
            "nir": f.nir,
            "commune_insee": f.commune_insee,
            "created_at": rfc3339(row.created_at_us),
            "updated_at": rfc3339(row.updated_at_us),
        },
        "accompaniments": accompaniments_json,
        "consents": consents_json,
        "statistics_objection": {
            "objected": objection.is_some_and(|(o, _)| o != 0),
            "updated_at": objection.map(|(_, at)| rfc3339(at)),
        },
        "access_log": log_json,
    }))
}

/// Deletes every row about the person and keeps the tombstone; `false` when
/// there is no such person (unknown, or erased meanwhile). The person's own
/// account goes too (memberships, sessions and invitations follow it by
/// `ON DELETE CASCADE`, share codes follow the person the same way).
pub async fn erase_rows(
    tx: &mut Tx,
    person_id: &str,
    own_account: Option<&str>,
    reason: &str,
    now_us: i64,
) -> Result<bool, DbError> {
    // Takes the person's row lock first; on SQLite BEGIN IMMEDIATE holds the
    // write lock already.
    if !PeopleStore.touch(tx.conn(), person_id, now_us).await? {
        return Ok(false);
    }
    for table in [
        "consents",
        "accompaniments",
        "access_log",
        "statistics_objections",
        "people",
    ] {
        let sql = format!("DELETE FROM {table} WHERE person_id = $1");
        on_backend!(tx.conn(), c => sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(person_id)
            .execute(&mut *c)
            .await
            .map(|_| ()))?;
    }
    // The person's own account (`users.person_id`, migration 0005), and the
    // caller's account when the person erases themself.
    on_backend!(tx.conn(), c => sqlx::query(
        "DELETE FROM users WHERE person_id = $1 OR user_id = $2",
    )
    .bind(person_id)
    .bind(own_account.unwrap_or_default())
    .execute(&mut *c)
    .await
    .map(|_| ()))?;
    on_backend!(tx.conn(), c => sqlx::query(
        "INSERT INTO erased_people (person_id, erased_at_us, reason) VALUES ($1, $2, $3) \
         ON CONFLICT (person_id) DO NOTHING",
    )
    .bind(person_id)
    .bind(now_us)
    .bind(reason)
    .execute(&mut *c)
    .await
    .map(|_| ()))?;
    Ok(true)
}

/// After an erasure committed: no deleted page may keep the person's bytes.
/// SQLite: the WAL is checkpointed and truncated, the file rebuilt by
/// `VACUUM` (which drops free pages), and the WAL truncated again.
/// PostgreSQL: the touched tables are vacuumed, so dead tuples are reclaimed
/// (they never appear in `pg_dump`; `VACUUM FULL` would also rewrite the
/// files, at the cost of an exclusive lock, and is left to the operator).
pub async fn scrub(db: &Db) -> Result<(), DbError> {
    let mut h = db.acquire().await?;
    match (db.backend(), h.conn()) {
        (Backend::Sqlite, Conn::Sqlite(c)) => {
            for sql in [
                "PRAGMA wal_checkpoint(TRUNCATE)",
                "VACUUM",
                "PRAGMA wal_checkpoint(TRUNCATE)",
            ] {
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(&mut *c)
                    .await?;
            }
        }
        (_, Conn::Postgres(c)) => {
            sqlx::raw_sql(sqlx::AssertSqlSafe(
                "VACUUM people, accompaniments, consents, access_log, statistics_objections, users, share_codes",
            ))
            .execute(&mut *c)
            .await?;
        }
        _ => {}
    }
    Ok(())
}

/// The reason kept with an erasure: a short code, `demande_de_la_personne`
/// when none is given.
pub fn erasure_reason(raw: &str) -> Option<String> {
    let v = raw.trim();
    if v.is_empty() {
        return Some("demande_de_la_personne".into());
    }
    let ok = v.len() <= 64
        && v.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    ok.then(|| v.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erasure_reasons_are_codes() {
        assert_eq!(
            erasure_reason("").as_deref(),
            Some("demande_de_la_personne")
        );
        assert_eq!(
            erasure_reason("fin_de_conservation").as_deref(),
            Some("fin_de_conservation")
        );
        assert!(erasure_reason("Marie Dupont a demandé").is_none());
        assert!(erasure_reason(&"a".repeat(65)).is_none());
    }
}
