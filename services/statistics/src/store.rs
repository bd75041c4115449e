//! Statistics' storage, on SQLite or PostgreSQL (see `eva_platform::db`):
//! generations, territories seen, exclusions. Each source keeps its own
//! tables in its module.

use eva_platform::db::{Db, DbError, Migrations, Tx};
use eva_platform::on_backend;
use sqlx::migrate::Migrator;

use crate::model::TerritoryLevel;

static SQLITE: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES: Migrator = sqlx::migrate!("migrations/postgres");

pub const MIGRATIONS: Migrations = Migrations {
    sqlite: &SQLITE,
    postgres: &POSTGRES,
};

/// Tables of this module holding a generation's rows.
pub const TABLES: &[&str] = &["exclusions"];

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

    /// Generations events are applied to: the current one and the one a
    /// rebuild is filling, if any.
    pub async fn live_gens(tx: &mut Tx) -> Result<Vec<i64>, DbError> {
        let gens = on_backend!(tx.conn(), c => sqlx::query_scalar::<_, i64>(
            "SELECT gen FROM generations WHERE state IN ('current', 'building') ORDER BY gen",
        )
        .fetch_all(&mut *c)
        .await)?;
        Ok(gens)
    }

    /// The generation that answers queries.
    pub async fn current_gen(&self) -> Result<i64, DbError> {
        let mut h = self.db.acquire().await?;
        let generation = on_backend!(h.conn(), c => sqlx::query_scalar::<_, i64>(
            "SELECT gen FROM generations WHERE state = 'current'",
        )
        .fetch_one(&mut *c)
        .await)?;
        Ok(generation)
    }

    /// Records the territory codes of a structure or recording context, so
    /// that queries may name them.
    pub async fn note_territories(
        tx: &mut Tx,
        commune: &str,
        epci: &str,
        departement: &str,
    ) -> Result<(), DbError> {
        for (code, level) in [
            (commune, TerritoryLevel::Commune),
            (epci, TerritoryLevel::Epci),
            (departement, TerritoryLevel::Departement),
        ] {
            if code.is_empty() {
                continue;
            }
            on_backend!(tx.conn(), c => sqlx::query(
                "INSERT INTO territories (code, level) VALUES ($1, $2) ON CONFLICT (code) DO NOTHING",
            )
            .bind(code)
            .bind(level.name())
            .execute(&mut *c)
            .await
            .map(|_| ()))?;
        }
        Ok(())
    }

    /// The level of a territory code seen in events, if any.
    pub async fn territory_level(&self, code: &str) -> Result<Option<TerritoryLevel>, DbError> {
        let mut h = self.db.acquire().await?;
        let level = on_backend!(h.conn(), c => sqlx::query_scalar::<_, String>(
            "SELECT level FROM territories WHERE code = $1",
        )
        .bind(code)
        .fetch_optional(&mut *c)
        .await)?;
        Ok(level.as_deref().and_then(TerritoryLevel::parse))
    }

    /// Records a pseudonym's choice about statistics as of `at_us`; an older
    /// choice than the one stored is ignored. Returns the new state when it
    /// changed (the caller then adds or removes the pseudonym's facts).
    pub async fn set_exclusion(
        tx: &mut Tx,
        generation: i64,
        pseudonym: &str,
        excluded: bool,
        at_us: i64,
    ) -> Result<Option<bool>, DbError> {
        let before = Self::is_excluded(tx, generation, pseudonym).await?;
        on_backend!(tx.conn(), c => sqlx::query(
            "INSERT INTO exclusions (gen, pseudonym, excluded, changed_at_us) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (gen, pseudonym) DO UPDATE SET \
             excluded = CASE WHEN excluded.changed_at_us >= exclusions.changed_at_us THEN excluded.excluded ELSE exclusions.excluded END, \
             changed_at_us = CASE WHEN excluded.changed_at_us >= exclusions.changed_at_us THEN excluded.changed_at_us ELSE exclusions.changed_at_us END",
        )
        .bind(generation)
        .bind(pseudonym)
        .bind(excluded)
        .bind(at_us)
        .execute(&mut *c)
        .await
        .map(|_| ()))?;
        let after = Self::is_excluded(tx, generation, pseudonym).await?;
        Ok((before != after).then_some(after))
    }

    /// Whether the pseudonym's owner currently objects to statistics.
    pub async fn is_excluded(
        tx: &mut Tx,
        generation: i64,
        pseudonym: &str,
    ) -> Result<bool, DbError> {
        let excluded = on_backend!(tx.conn(), c => sqlx::query_scalar::<_, bool>(
            "SELECT excluded FROM exclusions WHERE gen = $1 AND pseudonym = $2",
        )
        .bind(generation)
        .bind(pseudonym)
        .fetch_optional(&mut *c)
        .await)?;
        Ok(excluded.unwrap_or(false))
    }
}

/// The département of a commune: 2 characters, 3 overseas (97x, 98x).
pub fn departement_of(commune_insee: &str) -> String {
    let n = if commune_insee.starts_with("97") || commune_insee.starts_with("98") {
        3
    } else {
        2
    };
    commune_insee.chars().take(n).collect()
}
