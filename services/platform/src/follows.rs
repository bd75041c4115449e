//! Who follows whom, and what kind of structure: every service that needs
//! to know which structures accompany a person today, or a structure's kind
//! and territory, keeps this local projection of identity's
//! `eva.identity.accompaniment.{started,ended}` and
//! `eva.identity.structure.{created,updated}` events (tables
//! `eva_accompaniments` and `eva_structures`, in the platform's migrations),
//! fed through the idempotent consumers `<service>-follows-accompaniments`
//! and `<service>-follows-structures`.

use eva_proto::identity::v1::{
    AccompanimentEnded, AccompanimentStarted, StructureCreated, StructureUpdated,
};

use crate::bus::streams;
use crate::consumer::{ApplyError, Envelope, Projection, Subscription, micros};
use crate::db::{Db, DbError, Tx};
use crate::on_backend;
use crate::service::ServiceContext;

/// A structure as the projection knows it: its kind and territory.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct StructureRow {
    pub structure_id: String,
    /// `eva.identity.v1.StructureKind` number.
    pub kind: i32,
    /// INSEE code of the commune, `''` when unknown.
    pub commune_insee: String,
    /// SIREN of the EPCI, `''` when unknown.
    pub epci: String,
    /// Département code, derived from the commune.
    pub departement: String,
}

/// The département of a commune: its INSEE code's first 2 characters (3
/// overseas).
pub fn departement_of(commune_insee: &str) -> String {
    let n = if commune_insee.starts_with("97") || commune_insee.starts_with("98") {
        3
    } else {
        2
    };
    commune_insee.chars().take(n).collect()
}

/// Durable consumer names: `<service>-follows-accompaniments` and
/// `<service>-follows-structures`.
pub fn subscriptions(service: &str) -> [Subscription; 2] {
    [
        Subscription::new(
            streams::IDENTITY,
            format!("{service}-follows-accompaniments"),
            &["eva.identity.accompaniment.>"],
        ),
        Subscription::new(
            streams::IDENTITY,
            format!("{service}-follows-structures"),
            &["eva.identity.structure.>"],
        ),
    ]
}

/// A service's local projection of accompaniments and structures. Cloning
/// is cheap.
#[derive(Clone, Debug)]
pub struct Follows {
    db: Db,
}

impl Follows {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Keeps the projection up to date from the bus until shutdown.
    pub fn spawn(ctx: &ServiceContext) -> Self {
        let follows = Self::new(ctx.db.clone());
        for sub in subscriptions(ctx.name) {
            ctx.spawn_consumer(sub, follows.clone());
        }
        follows
    }

    /// The structures following `person_id` now (open accompaniments).
    pub async fn following(&self, person_id: &str) -> Result<Vec<String>, DbError> {
        let mut h = self.db.acquire().await?;
        let rows: Vec<(String,)> = on_backend!(h.conn(), c => sqlx::query_as(
            "SELECT DISTINCT structure_id FROM eva_accompaniments WHERE person_id = $1 AND end_date = ''",
        )
        .bind(person_id)
        .fetch_all(&mut *c)
        .await)?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// Those of `person_ids` that `structure_id` follows now (open
    /// accompaniments). One placeholder per id: keep the list short (a page).
    pub async fn followed_among(
        &self,
        structure_id: &str,
        person_ids: &[String],
    ) -> Result<Vec<String>, DbError> {
        if person_ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT DISTINCT person_id FROM eva_accompaniments WHERE structure_id = $1 \
             AND end_date = '' AND person_id IN ({})",
            crate::db::placeholders(2, person_ids.len())
        );
        let mut h = self.db.acquire().await?;
        let rows: Vec<(String,)> = on_backend!(h.conn(), c => {
            let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(structure_id);
            for p in person_ids {
                q = q.bind(p);
            }
            q.fetch_all(&mut *c).await
        })?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// The structure's kind and territory, if identity announced it.
    pub async fn structure(&self, structure_id: &str) -> Result<Option<StructureRow>, DbError> {
        let mut h = self.db.acquire().await?;
        Ok(
            on_backend!(h.conn(), c => sqlx::query_as::<_, StructureRow>(STRUCTURE_BY_ID)
            .bind(structure_id)
            .fetch_optional(&mut *c)
            .await)?,
        )
    }

    /// As [`Follows::structure`], inside a transaction.
    pub async fn structure_in(
        tx: &mut Tx,
        structure_id: &str,
    ) -> Result<Option<StructureRow>, DbError> {
        Ok(
            on_backend!(tx.conn(), c => sqlx::query_as::<_, StructureRow>(STRUCTURE_BY_ID)
            .bind(structure_id)
            .fetch_optional(&mut *c)
            .await)?,
        )
    }

    /// Erasure: the person's accompaniments go with them.
    pub async fn erase_person(tx: &mut Tx, person_id: &str) -> Result<(), DbError> {
        on_backend!(tx.conn(), c => sqlx::query("DELETE FROM eva_accompaniments WHERE person_id = $1")
            .bind(person_id)
            .execute(&mut *c)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// An accompaniment started (`end_date` empty) or ended (`start_date`
    /// empty). An end, once seen, stays: a late `started` does not reopen it.
    pub async fn upsert_accompaniment(
        tx: &mut Tx,
        accompaniment_id: &str,
        person_id: &str,
        structure_id: &str,
        start_date: &str,
        end_date: &str,
        at_us: i64,
    ) -> Result<(), DbError> {
        on_backend!(tx.conn(), c => sqlx::query(
            "INSERT INTO eva_accompaniments (accompaniment_id, person_id, structure_id, start_date, end_date, changed_at_us) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (accompaniment_id) DO UPDATE SET \
             start_date = CASE WHEN excluded.start_date = '' THEN eva_accompaniments.start_date ELSE excluded.start_date END, \
             end_date = CASE WHEN eva_accompaniments.end_date <> '' THEN eva_accompaniments.end_date ELSE excluded.end_date END, \
             changed_at_us = excluded.changed_at_us",
        )
        .bind(accompaniment_id)
        .bind(person_id)
        .bind(structure_id)
        .bind(start_date)
        .bind(end_date)
        .bind(at_us)
        .execute(&mut *c)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// A structure's kind and territory; the latest change wins.
    pub async fn upsert_structure(
        tx: &mut Tx,
        s: &StructureRow,
        at_us: i64,
    ) -> Result<(), DbError> {
        on_backend!(tx.conn(), c => sqlx::query(
            "INSERT INTO eva_structures (structure_id, kind, commune_insee, epci, departement, changed_at_us) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (structure_id) DO UPDATE SET \
             kind = excluded.kind, commune_insee = excluded.commune_insee, epci = excluded.epci, \
             departement = excluded.departement, changed_at_us = excluded.changed_at_us \
             WHERE eva_structures.changed_at_us <= excluded.changed_at_us",
        )
        .bind(&s.structure_id)
        .bind(s.kind)
        .bind(&s.commune_insee)
        .bind(&s.epci)
        .bind(&s.departement)
        .bind(at_us)
        .execute(&mut *c)
        .await
        .map(|_| ()))?;
        Ok(())
    }
}

const STRUCTURE_BY_ID: &str = "SELECT structure_id, kind, commune_insee, epci, departement \
     FROM eva_structures WHERE structure_id = $1";

fn structure_row(
    structure_id: String,
    kind: i32,
    commune_insee: String,
    epci: String,
) -> StructureRow {
    StructureRow {
        structure_id,
        kind,
        departement: departement_of(&commune_insee),
        commune_insee,
        epci,
    }
}

/// Was the person erased? The consent projection keeps the tombstones
/// (`eva_consent_erased`): an accompaniment event replayed or reordered after
/// the erasure must not bring the person back.
async fn erased(tx: &mut Tx, person_id: &str) -> Result<bool, DbError> {
    let row: Option<(String,)> = on_backend!(tx.conn(), c => sqlx::query_as(
        "SELECT person_id FROM eva_consent_erased WHERE person_id = $1",
    )
    .bind(person_id)
    .fetch_optional(&mut *c)
    .await)?;
    Ok(row.is_some())
}

impl Projection for Follows {
    async fn apply(&self, tx: &mut Tx, event: &Envelope) -> Result<(), ApplyError> {
        match event.event_type.as_str() {
            "eva.identity.accompaniment.started" => {
                let e: AccompanimentStarted = event.decode()?;
                if erased(tx, &e.person_id).await? {
                    return Ok(());
                }
                Self::upsert_accompaniment(
                    tx,
                    &e.accompaniment_id,
                    &e.person_id,
                    &e.structure_id,
                    &e.start_date,
                    "",
                    micros(e.occurred_at, event),
                )
                .await?;
            }
            "eva.identity.accompaniment.ended" => {
                let e: AccompanimentEnded = event.decode()?;
                if erased(tx, &e.person_id).await? {
                    return Ok(());
                }
                let end = if e.end_date.is_empty() {
                    crate::consent::today()
                } else {
                    e.end_date
                };
                Self::upsert_accompaniment(
                    tx,
                    &e.accompaniment_id,
                    &e.person_id,
                    &e.structure_id,
                    "",
                    &end,
                    micros(e.occurred_at, event),
                )
                .await?;
            }
            "eva.identity.structure.created" => {
                let e: StructureCreated = event.decode()?;
                let at = micros(e.created_at, event);
                let row = structure_row(e.structure_id, e.kind, e.commune_insee, e.epci);
                Self::upsert_structure(tx, &row, at).await?;
            }
            "eva.identity.structure.updated" => {
                let e: StructureUpdated = event.decode()?;
                let at = micros(e.updated_at, event);
                let row = structure_row(e.structure_id, e.kind, e.commune_insee, e.epci);
                Self::upsert_structure(tx, &row, at).await?;
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn departements_of_communes() {
        assert_eq!(departement_of("27229"), "27");
        assert_eq!(departement_of("97411"), "974");
        assert_eq!(departement_of("2A004"), "2A");
        assert_eq!(departement_of(""), "");
    }

    #[test]
    fn durable_names_are_per_service() {
        let [a, s] = subscriptions("referrals");
        assert_eq!(a.durable, "referrals-follows-accompaniments");
        assert_eq!(s.durable, "referrals-follows-structures");
        assert_eq!(a.filter_subjects, ["eva.identity.accompaniment.>"]);
        assert_eq!(s.filter_subjects, ["eva.identity.structure.>"]);
    }
}
