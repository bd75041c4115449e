//! Diagnostics' storage, on SQLite or PostgreSQL (see `eva_platform::db`).

use eva_platform::db::{Db, DbError, Migrations, now_us};
use eva_platform::on_backend;
use sqlx::migrate::Migrator;

static SQLITE: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES: Migrator = sqlx::migrate!("migrations/postgres");

pub const MIGRATIONS: Migrations = Migrations {
    sqlite: &SQLITE,
    postgres: &POSTGRES,
};

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

    /// Records that `version` was loaded with content `sha256`; returns the
    /// digest stored before, if it was different (the content changed under
    /// the same label).
    pub async fn record_referentiel_version(
        &self,
        version: &str,
        published_on: &str,
        sha256: &str,
    ) -> Result<Option<String>, DbError> {
        let now = now_us();
        let mut tx = self.db.begin().await?;
        let before: Option<String> = on_backend!(tx.conn(), c => sqlx::query_scalar(
            "SELECT content_sha256 FROM referentiel_versions WHERE version = $1",
        )
        .bind(version)
        .fetch_optional(&mut *c)
        .await)?;
        on_backend!(tx.conn(), c => sqlx::query(
            "INSERT INTO referentiel_versions (version, published_on, content_sha256, first_loaded_at_us, last_loaded_at_us) \
             VALUES ($1, $2, $3, $4, $4) ON CONFLICT (version) DO UPDATE SET \
             published_on = excluded.published_on, content_sha256 = excluded.content_sha256, \
             last_loaded_at_us = excluded.last_loaded_at_us",
        )
        .bind(version)
        .bind(published_on)
        .bind(sha256)
        .bind(now)
        .execute(&mut *c)
        .await
        .map(|_| ()))?;
        tx.commit().await?;
        Ok(before.filter(|b| b != sha256))
    }
}
