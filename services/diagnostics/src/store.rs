//! Diagnostics' storage, on SQLite or PostgreSQL (see `eva_platform::db`).

use eva_platform::db::{Db, DbError, Migrations, Tx, now_us};
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

/// A diagnostic's row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DiagnosticRow {
    pub diagnostic_id: String,
    pub person_id: String,
    pub structure_id: String,
    pub counselor_user_id: String,
    pub referentiel_version: String,
    /// `brouillon`, `partage` or `remplace`.
    pub status: String,
    pub previous_diagnostic_id: String,
    pub superseded_by: String,
    pub created_at_us: i64,
    pub updated_at_us: i64,
    pub shared_at_us: Option<i64>,
    pub superseded_at_us: Option<i64>,
}

/// The two ratings of one item; levels are référentiel codes, `''` unrated.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RatingRow {
    pub item_id: String,
    pub domain_id: String,
    pub counselor_level: String,
    pub person_level: String,
    pub counselor_rated_at_us: Option<i64>,
    pub person_rated_at_us: Option<i64>,
}

/// The sealed notes of one domain by one author.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct NotesRow {
    pub domain_id: String,
    /// `counselor` or `person`.
    pub author: String,
    pub ciphertext: Vec<u8>,
    pub key_id: String,
}

/// Which author a rating or note belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Author {
    Counselor,
    Person,
}

impl Author {
    pub fn code(self) -> &'static str {
        match self {
            Author::Counselor => "counselor",
            Author::Person => "person",
        }
    }
}

const DIAGNOSTIC_COLUMNS: &str = "diagnostic_id, person_id, structure_id, counselor_user_id, \
     referentiel_version, status, previous_diagnostic_id, superseded_by, created_at_us, \
     updated_at_us, shared_at_us, superseded_at_us";

impl Store {
    pub async fn diagnostic(&self, id: &str) -> Result<Option<DiagnosticRow>, DbError> {
        let mut h = self.db.acquire().await?;
        let sql = format!("SELECT {DIAGNOSTIC_COLUMNS} FROM diagnostics WHERE diagnostic_id = $1");
        Ok(
            on_backend!(h.conn(), c => sqlx::query_as::<_, DiagnosticRow>(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(id)
            .fetch_optional(&mut *c)
            .await)?,
        )
    }

    /// A person's diagnostics, newest first, after the key `after`; drafts
    /// only of the structure `drafts_of` (`*`: every draft).
    pub async fn diagnostics_of(
        &self,
        person_id: &str,
        status: Option<&str>,
        after: Option<&str>,
        drafts_of: &str,
        limit: i64,
    ) -> Result<Vec<DiagnosticRow>, DbError> {
        let mut h = self.db.acquire().await?;
        let sql = format!(
            "SELECT {DIAGNOSTIC_COLUMNS} FROM diagnostics WHERE person_id = $1 \
             AND ($2 = '' OR status = $2) AND ($3 = '' OR diagnostic_id < $3) \
             AND (status <> 'brouillon' OR $4 = '*' OR structure_id = $4) \
             ORDER BY diagnostic_id DESC LIMIT $5"
        );
        Ok(
            on_backend!(h.conn(), c => sqlx::query_as::<_, DiagnosticRow>(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(person_id)
            .bind(status.unwrap_or(""))
            .bind(after.unwrap_or(""))
            .bind(drafts_of)
            .bind(limit)
            .fetch_all(&mut *c)
            .await)?,
        )
    }

    /// The diagnostics of `person_ids` that `structure_id` may know of
    /// (every shared or superseded one, and its own drafts), newest first
    /// for each person. One placeholder per id: keep the list short (a page).
    pub async fn diagnostics_of_people(
        &self,
        structure_id: &str,
        person_ids: &[String],
    ) -> Result<Vec<DiagnosticRow>, DbError> {
        if person_ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {DIAGNOSTIC_COLUMNS} FROM diagnostics WHERE person_id IN ({}) \
             AND (status <> 'brouillon' OR structure_id = $1) \
             ORDER BY person_id, diagnostic_id DESC",
            eva_platform::db::placeholders(2, person_ids.len())
        );
        let mut h = self.db.acquire().await?;
        Ok(on_backend!(h.conn(), c => {
            let mut q = sqlx::query_as::<_, DiagnosticRow>(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(structure_id);
            for p in person_ids {
                q = q.bind(p);
            }
            q.fetch_all(&mut *c).await
        })?)
    }

    pub async fn ratings(&self, diagnostic_id: &str) -> Result<Vec<RatingRow>, DbError> {
        let mut h = self.db.acquire().await?;
        Ok(on_backend!(h.conn(), c => sqlx::query_as::<_, RatingRow>(
            "SELECT item_id, domain_id, counselor_level, person_level, counselor_rated_at_us, \
             person_rated_at_us FROM ratings WHERE diagnostic_id = $1",
        )
        .bind(diagnostic_id)
        .fetch_all(&mut *c)
        .await)?)
    }

    pub async fn notes(&self, diagnostic_id: &str) -> Result<Vec<NotesRow>, DbError> {
        let mut h = self.db.acquire().await?;
        Ok(on_backend!(h.conn(), c => sqlx::query_as::<_, NotesRow>(
            "SELECT domain_id, author, ciphertext, key_id FROM domain_notes WHERE diagnostic_id = $1",
        )
        .bind(diagnostic_id)
        .fetch_all(&mut *c)
        .await)?)
    }

    pub async fn insert_diagnostic(tx: &mut Tx, d: &DiagnosticRow) -> Result<(), DbError> {
        let sql = format!(
            "INSERT INTO diagnostics ({DIAGNOSTIC_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        );
        on_backend!(tx.conn(), c => sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(&d.diagnostic_id)
            .bind(&d.person_id)
            .bind(&d.structure_id)
            .bind(&d.counselor_user_id)
            .bind(&d.referentiel_version)
            .bind(&d.status)
            .bind(&d.previous_diagnostic_id)
            .bind(&d.superseded_by)
            .bind(d.created_at_us)
            .bind(d.updated_at_us)
            .bind(d.shared_at_us)
            .bind(d.superseded_at_us)
            .execute(&mut *c)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// The diagnostic as it stands inside `tx` (to re-check its status).
    pub async fn diagnostic_in(tx: &mut Tx, id: &str) -> Result<Option<DiagnosticRow>, DbError> {
        let sql = format!("SELECT {DIAGNOSTIC_COLUMNS} FROM diagnostics WHERE diagnostic_id = $1");
        Ok(
            on_backend!(tx.conn(), c => sqlx::query_as::<_, DiagnosticRow>(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(id)
            .fetch_optional(&mut *c)
            .await)?,
        )
    }

    /// The person's current shared diagnostic, inside `tx`.
    pub async fn shared_of(tx: &mut Tx, person_id: &str) -> Result<Option<DiagnosticRow>, DbError> {
        let sql = format!(
            "SELECT {DIAGNOSTIC_COLUMNS} FROM diagnostics WHERE person_id = $1 AND status = 'partage' \
             ORDER BY diagnostic_id DESC LIMIT 1"
        );
        Ok(
            on_backend!(tx.conn(), c => sqlx::query_as::<_, DiagnosticRow>(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(person_id)
            .fetch_optional(&mut *c)
            .await)?,
        )
    }

    pub async fn ratings_in(tx: &mut Tx, diagnostic_id: &str) -> Result<Vec<RatingRow>, DbError> {
        Ok(on_backend!(tx.conn(), c => sqlx::query_as::<_, RatingRow>(
            "SELECT item_id, domain_id, counselor_level, person_level, counselor_rated_at_us, \
             person_rated_at_us FROM ratings WHERE diagnostic_id = $1",
        )
        .bind(diagnostic_id)
        .fetch_all(&mut *c)
        .await)?)
    }

    /// Sets one author's level of one item.
    pub async fn rate(
        tx: &mut Tx,
        diagnostic_id: &str,
        domain_id: &str,
        item_id: &str,
        author: Author,
        level: &str,
        at_us: i64,
    ) -> Result<(), DbError> {
        let sql = match author {
            Author::Counselor => {
                "INSERT INTO ratings (diagnostic_id, item_id, domain_id, counselor_level, counselor_rated_at_us) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (diagnostic_id, item_id) DO UPDATE SET \
                 counselor_level = excluded.counselor_level, counselor_rated_at_us = excluded.counselor_rated_at_us"
            }
            Author::Person => {
                "INSERT INTO ratings (diagnostic_id, item_id, domain_id, person_level, person_rated_at_us) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (diagnostic_id, item_id) DO UPDATE SET \
                 person_level = excluded.person_level, person_rated_at_us = excluded.person_rated_at_us"
            }
        };
        on_backend!(tx.conn(), c => sqlx::query(sql)
            .bind(diagnostic_id)
            .bind(item_id)
            .bind(domain_id)
            .bind(level)
            .bind(at_us)
            .execute(&mut *c)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Replaces one author's sealed notes of one domain; `None` deletes them.
    pub async fn put_notes(
        tx: &mut Tx,
        diagnostic_id: &str,
        domain_id: &str,
        author: Author,
        sealed: Option<(&[u8], &str)>,
        at_us: i64,
    ) -> Result<(), DbError> {
        match sealed {
            Some((ciphertext, key_id)) => on_backend!(tx.conn(), c => sqlx::query(
                "INSERT INTO domain_notes (diagnostic_id, domain_id, author, ciphertext, key_id, updated_at_us) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (diagnostic_id, domain_id, author) DO UPDATE SET \
                 ciphertext = excluded.ciphertext, key_id = excluded.key_id, updated_at_us = excluded.updated_at_us",
            )
            .bind(diagnostic_id)
            .bind(domain_id)
            .bind(author.code())
            .bind(ciphertext)
            .bind(key_id)
            .bind(at_us)
            .execute(&mut *c)
            .await
            .map(|_| ()))?,
            None => on_backend!(tx.conn(), c => sqlx::query(
                "DELETE FROM domain_notes WHERE diagnostic_id = $1 AND domain_id = $2 AND author = $3",
            )
            .bind(diagnostic_id)
            .bind(domain_id)
            .bind(author.code())
            .execute(&mut *c)
            .await
            .map(|_| ()))?,
        }
        Ok(())
    }

    /// Moves a diagnostic to `status` and stamps the matching times.
    pub async fn set_status(
        tx: &mut Tx,
        diagnostic_id: &str,
        status: &str,
        superseded_by: &str,
        at_us: i64,
    ) -> Result<(), DbError> {
        let sql = match status {
            "partage" => {
                "UPDATE diagnostics SET status = $2, shared_at_us = $3, updated_at_us = $3 \
                 WHERE diagnostic_id = $1 AND superseded_by = $4"
            }
            _ => {
                "UPDATE diagnostics SET status = $2, superseded_at_us = $3, updated_at_us = $3, \
                 superseded_by = $4 WHERE diagnostic_id = $1"
            }
        };
        on_backend!(tx.conn(), c => sqlx::query(sql)
            .bind(diagnostic_id)
            .bind(status)
            .bind(at_us)
            .bind(superseded_by)
            .execute(&mut *c)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    pub async fn touch(tx: &mut Tx, diagnostic_id: &str, at_us: i64) -> Result<(), DbError> {
        on_backend!(tx.conn(), c => sqlx::query(
            "UPDATE diagnostics SET updated_at_us = $2 WHERE diagnostic_id = $1",
        )
        .bind(diagnostic_id)
        .bind(at_us)
        .execute(&mut *c)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// Projection: the person's objection to statistics; the latest wins.
    pub async fn set_objection(
        tx: &mut Tx,
        person_id: &str,
        objected: bool,
        at_us: i64,
    ) -> Result<(), DbError> {
        on_backend!(tx.conn(), c => sqlx::query(
            "INSERT INTO statistics_objections (person_id, objected, changed_at_us) VALUES ($1, $2, $3) \
             ON CONFLICT (person_id) DO UPDATE SET objected = excluded.objected, \
             changed_at_us = excluded.changed_at_us \
             WHERE statistics_objections.changed_at_us <= excluded.changed_at_us",
        )
        .bind(person_id)
        .bind(objected)
        .bind(at_us)
        .execute(&mut *c)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// The person's statistics pseudonym if they have one already (never
    /// creates it: a person who never shared a diagnostic has nothing in
    /// statistics to exclude).
    pub async fn existing_pseudonym_in(
        tx: &mut Tx,
        person_id: &str,
    ) -> Result<Option<String>, DbError> {
        Ok(on_backend!(tx.conn(), c => sqlx::query_scalar::<_, String>(
            "SELECT pseudonym FROM statistics_pseudonyms WHERE person_id = $1",
        )
        .bind(person_id)
        .fetch_optional(&mut *c)
        .await)?)
    }

    /// The person's statistics pseudonym, created (random) the first time.
    pub async fn pseudonym_in(tx: &mut Tx, person_id: &str) -> Result<String, DbError> {
        let existing: Option<(String,)> = on_backend!(tx.conn(), c => sqlx::query_as(
            "SELECT pseudonym FROM statistics_pseudonyms WHERE person_id = $1",
        )
        .bind(person_id)
        .fetch_optional(&mut *c)
        .await)?;
        if let Some((p,)) = existing {
            return Ok(p);
        }
        let mut raw = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut raw);
        let pseudonym: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        on_backend!(tx.conn(), c => sqlx::query(
            "INSERT INTO statistics_pseudonyms (person_id, pseudonym, created_at_us) VALUES ($1, $2, $3)",
        )
        .bind(person_id)
        .bind(&pseudonym)
        .bind(eva_platform::db::now_us())
        .execute(&mut *c)
        .await
        .map(|_| ()))?;
        Ok(pseudonym)
    }

    /// Does the person object to statistics now?
    pub async fn objects_in(tx: &mut Tx, person_id: &str) -> Result<bool, DbError> {
        let row: Option<(bool,)> = on_backend!(tx.conn(), c => sqlx::query_as(
            "SELECT objected FROM statistics_objections WHERE person_id = $1",
        )
        .bind(person_id)
        .fetch_optional(&mut *c)
        .await)?;
        Ok(row.is_some_and(|r| r.0))
    }

    /// Are any of the person's diagnostics left?
    pub async fn has_diagnostics(&self, person_id: &str) -> Result<bool, DbError> {
        let mut h = self.db.acquire().await?;
        let row: Option<(String,)> = on_backend!(h.conn(), c => sqlx::query_as(
            "SELECT diagnostic_id FROM diagnostics WHERE person_id = $1 LIMIT 1",
        )
        .bind(person_id)
        .fetch_optional(&mut *c)
        .await)?;
        Ok(row.is_some())
    }

    /// After an erasure committed: no freed page keeps the person's rows.
    /// SQLite: WAL checkpointed and truncated around a `VACUUM`;
    /// PostgreSQL: the touched tables vacuumed (see identity's `scrub`).
    pub async fn scrub(&self) -> Result<(), DbError> {
        let mut h = self.db.acquire().await?;
        match h.conn() {
            eva_platform::db::Conn::Sqlite(c) => {
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
            eva_platform::db::Conn::Postgres(c) => {
                sqlx::raw_sql(sqlx::AssertSqlSafe(
                    "VACUUM diagnostics, ratings, domain_notes, plan_actions, plan_objectives, eva_accompaniments, statistics_objections, statistics_pseudonyms",
                ))
                .execute(&mut *c)
                .await?;
            }
        }
        Ok(())
    }

    /// Erasure: every row about the person (their accompaniments are the
    /// platform's: `eva_platform::follows::Follows::erase_person`).
    pub async fn erase_person(tx: &mut Tx, person_id: &str) -> Result<(), DbError> {
        for sql in [
            "DELETE FROM plan_actions WHERE person_id = $1",
            "DELETE FROM plan_objectives WHERE person_id = $1",
            "DELETE FROM domain_notes WHERE diagnostic_id IN (SELECT diagnostic_id FROM diagnostics WHERE person_id = $1)",
            "DELETE FROM ratings WHERE diagnostic_id IN (SELECT diagnostic_id FROM diagnostics WHERE person_id = $1)",
            "DELETE FROM diagnostics WHERE person_id = $1",
            "DELETE FROM statistics_objections WHERE person_id = $1",
            // Without it, statistics can no longer link this person's diagnostics.
            "DELETE FROM statistics_pseudonyms WHERE person_id = $1",
        ] {
            on_backend!(tx.conn(), c => sqlx::query(sql)
                .bind(person_id)
                .execute(&mut *c)
                .await
                .map(|_| ()))?;
        }
        Ok(())
    }
}
