//! Referrals' storage, on SQLite or PostgreSQL (see `eva_platform::db`).
//! Each part of the service keeps its queries beside it (`referral/store.rs`,
//! `directory/store.rs`, `partners/store.rs`); this file holds the
//! migrations and the projections of identity's events.

use eva_platform::db::{Db, DbError, Migrations, Tx};
use eva_platform::on_backend;
use sqlx::migrate::Migrator;

static SQLITE: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES: Migrator = sqlx::migrate!("migrations/postgres");

pub const MIGRATIONS: Migrations = Migrations {
    sqlite: &SQLITE,
    postgres: &POSTGRES,
};

/// A structure as the projection knows it.
#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub struct StructureRow {
    pub structure_id: String,
    /// `eva.identity.v1.StructureKind` number.
    pub kind: i32,
    pub commune_insee: String,
    pub epci: String,
    pub departement: String,
}

#[derive(Clone)]
pub struct Store {
    db: Db,
}

impl Store {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Structures that follow the person today.
    pub async fn following(&self, person_id: &str) -> Result<Vec<String>, DbError> {
        let mut h = self.db.acquire().await?;
        let rows: Vec<(String,)> = on_backend!(h.conn(), c => sqlx::query_as(
            "SELECT DISTINCT structure_id FROM accompaniments WHERE person_id = $1 AND end_date = ''",
        )
        .bind(person_id)
        .fetch_all(&mut *c)
        .await)?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    pub async fn structure(&self, structure_id: &str) -> Result<Option<StructureRow>, DbError> {
        let mut h = self.db.acquire().await?;
        Ok(
            on_backend!(h.conn(), c => sqlx::query_as::<_, StructureRow>(
            "SELECT structure_id, kind, commune_insee, epci, departement FROM structures WHERE structure_id = $1",
        )
        .bind(structure_id)
        .fetch_optional(&mut *c)
        .await)?,
        )
    }

    /// Projection: who follows whom. An end, once seen, stays.
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
            "INSERT INTO accompaniments (accompaniment_id, person_id, structure_id, start_date, end_date, changed_at_us) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (accompaniment_id) DO UPDATE SET \
             start_date = CASE WHEN excluded.start_date = '' THEN accompaniments.start_date ELSE excluded.start_date END, \
             end_date = CASE WHEN accompaniments.end_date <> '' THEN accompaniments.end_date ELSE excluded.end_date END, \
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

    /// Projection: a structure's kind and territory; the latest change wins.
    pub async fn upsert_structure(
        tx: &mut Tx,
        s: &StructureRow,
        at_us: i64,
    ) -> Result<(), DbError> {
        on_backend!(tx.conn(), c => sqlx::query(
            "INSERT INTO structures (structure_id, kind, commune_insee, epci, departement, changed_at_us) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (structure_id) DO UPDATE SET \
             kind = excluded.kind, commune_insee = excluded.commune_insee, epci = excluded.epci, \
             departement = excluded.departement, changed_at_us = excluded.changed_at_us \
             WHERE structures.changed_at_us <= excluded.changed_at_us",
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
