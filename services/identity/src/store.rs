//! Identity's storage, on SQLite or PostgreSQL (see `eva_platform::db`).

use eva_platform::db::{Db, DbError, Migrations, Tx, now_us};
use eva_platform::on_backend;
use eva_platform::pagination::Page;
use sqlx::migrate::Migrator;

use crate::structure::{NewStructure, Structure, StructureChange, kind_code};

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

/// A stored signing key, its secret sealed with the KEK.
#[derive(Debug, sqlx::FromRow)]
pub struct SealedKey {
    pub kid: String,
    pub sealed_secret: Vec<u8>,
}

impl Store {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Inserts a structure; `Ok(None)` when its SIRET is already known.
    pub async fn insert_structure(
        &self,
        tx: &mut Tx,
        id: &str,
        s: &NewStructure,
    ) -> Result<Option<Structure>, DbError> {
        let row = Structure {
            structure_id: id.to_owned(),
            name: s.name.clone(),
            siret: s.siret.clone(),
            kind: kind_code(s.kind).to_owned(),
            commune_insee: s.commune_insee.clone(),
            epci: s.epci.clone(),
            created_at_us: now_us(),
        };
        let inserted = on_backend!(tx.conn(), c => sqlx::query(
            "INSERT INTO structures (structure_id, name, siret, kind, commune_insee, epci, created_at_us) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (siret) DO NOTHING",
        )
        .bind(&row.structure_id)
        .bind(&row.name)
        .bind(&row.siret)
        .bind(&row.kind)
        .bind(&row.commune_insee)
        .bind(&row.epci)
        .bind(row.created_at_us)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
        Ok((inserted == 1).then_some(row))
    }

    /// Changes name and territory; `Ok(None)` when there is no such structure.
    pub async fn update_structure(
        &self,
        tx: &mut Tx,
        id: &str,
        change: &StructureChange,
    ) -> Result<Option<Structure>, DbError> {
        let row = on_backend!(tx.conn(), c => sqlx::query_as::<_, Structure>(
            "UPDATE structures SET name = COALESCE($2, name), commune_insee = COALESCE($3, commune_insee), \
             epci = COALESCE($4, epci) WHERE structure_id = $1 \
             RETURNING structure_id, name, siret, kind, commune_insee, epci, created_at_us",
        )
        .bind(id)
        .bind(&change.name)
        .bind(&change.commune_insee)
        .bind(&change.epci)
        .fetch_optional(&mut *c)
        .await)?;
        Ok(row)
    }

    pub async fn structure(&self, id: &str) -> Result<Option<Structure>, DbError> {
        let mut h = self.db.acquire().await?;
        Ok(on_backend!(h.conn(), c => sqlx::query_as::<_, Structure>(
            "SELECT structure_id, name, siret, kind, commune_insee, epci, created_at_us \
             FROM structures WHERE structure_id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *c)
        .await)?)
    }

    /// Structures in creation order, optionally of one kind.
    pub async fn structures(
        &self,
        kind: Option<&str>,
        page: &Page,
    ) -> Result<(Vec<Structure>, String), DbError> {
        let mut h = self.db.acquire().await?;
        let rows = on_backend!(h.conn(), c => sqlx::query_as::<_, Structure>(
            "SELECT structure_id, name, siret, kind, commune_insee, epci, created_at_us FROM structures \
             WHERE ($1 IS NULL OR kind = $1) AND ($2 IS NULL OR structure_id > $2) \
             ORDER BY structure_id LIMIT $3",
        )
        .bind(kind)
        .bind(page.after.as_deref())
        .bind(page.fetch_limit())
        .fetch_all(&mut *c)
        .await)?;
        Ok(page.finish(rows, |s| s.structure_id.clone()))
    }

    /// The current signing key, if one was created.
    pub async fn current_key(&self) -> Result<Option<SealedKey>, DbError> {
        let mut h = self.db.acquire().await?;
        Ok(on_backend!(h.conn(), c => sqlx::query_as::<_, SealedKey>(
            "SELECT kid, sealed_secret FROM signing_keys WHERE retired_at_us IS NULL \
             ORDER BY created_at_us DESC LIMIT 1",
        )
        .fetch_optional(&mut *c)
        .await)?)
    }

    /// Every key whose tokens may still be valid: for the JWKS.
    pub async fn published_keys(&self, since_us: i64) -> Result<Vec<SealedKey>, DbError> {
        let mut h = self.db.acquire().await?;
        Ok(on_backend!(h.conn(), c => sqlx::query_as::<_, SealedKey>(
            "SELECT kid, sealed_secret FROM signing_keys \
             WHERE retired_at_us IS NULL OR retired_at_us > $1 ORDER BY created_at_us",
        )
        .bind(since_us)
        .fetch_all(&mut *c)
        .await)?)
    }

    pub async fn insert_key(&self, kid: &str, sealed: &[u8]) -> Result<(), DbError> {
        let mut tx = self.db.begin().await?;
        on_backend!(tx.conn(), c => sqlx::query(
            "INSERT INTO signing_keys (kid, sealed_secret, created_at_us) VALUES ($1, $2, $3)",
        )
        .bind(kid)
        .bind(sealed)
        .bind(now_us())
        .execute(&mut *c)
        .await
        .map(|_| ()))?;
        tx.commit().await
    }
}
