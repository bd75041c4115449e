//! Storage of accompaniments (beyond registration, in `people::store`), share
//! codes and the brake on failed redemptions.

use eva_platform::db::{Conn, DbError};
use eva_platform::on_backend;
use eva_platform::pagination::Page;

use crate::people::store::AccompanimentRow;

/// An accompaniment with its structure's name.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct NamedAccompaniment {
    #[sqlx(flatten)]
    pub row: AccompanimentRow,
    pub structure_name: Option<String>,
}

/// A share code as stored: its keyed hash, never the code.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ShareCodeRow {
    pub code_hash: String,
    pub person_id: String,
    pub expires_at_us: i64,
}

/// A structure's failed redemptions.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AttemptsRow {
    pub failures: i32,
    pub window_started_at_us: i64,
    pub locked_until_us: Option<i64>,
}

const COLUMNS: &str = "a.accompaniment_id, a.person_id, a.structure_id, a.referent_user_id, \
     a.started_on, a.ended_on, a.end_reason, a.referral_id, a.created_at_us";

/// Accompaniments and share codes; every method takes the connection to run on.
#[derive(Clone, Copy, Debug, Default)]
pub struct AccompanimentStore;

impl AccompanimentStore {
    /// A page of the person's accompaniments, most recent first; only those of
    /// `structures` when given.
    pub async fn of_person(
        &self,
        conn: Conn<'_>,
        person_id: &str,
        structures: Option<&[String]>,
        page: &Page,
    ) -> Result<(Vec<NamedAccompaniment>, String), DbError> {
        // The structure filter is a short list of ids: one placeholder each.
        let filter = match structures {
            Some(list) => format!(
                "AND a.structure_id IN ({})",
                eva_platform::db::placeholders(4, list.len())
            ),
            None => String::new(),
        };
        let sql = format!(
            "SELECT {COLUMNS}, s.name AS structure_name FROM accompaniments a \
             LEFT JOIN structures s ON s.structure_id = a.structure_id \
             WHERE a.person_id = $1 AND ($2 IS NULL OR a.accompaniment_id < $2) {filter} \
             ORDER BY a.accompaniment_id DESC LIMIT $3"
        );
        let rows = on_backend!(conn, c => {
            let mut q = sqlx::query_as::<_, NamedAccompaniment>(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(person_id)
                .bind(page.after.as_deref())
                .bind(page.fetch_limit());
            for s in structures.unwrap_or_default() {
                q = q.bind(s);
            }
            q.fetch_all(&mut *c).await
        })?;
        Ok(page.finish(rows, |a| a.row.accompaniment_id.clone()))
    }

    /// Structures that ever followed the person (ended or not).
    pub async fn structures_of(
        &self,
        conn: Conn<'_>,
        person_id: &str,
    ) -> Result<Vec<String>, DbError> {
        let rows: Vec<(String,)> = on_backend!(conn, c => sqlx::query_as(
            "SELECT DISTINCT structure_id FROM accompaniments WHERE person_id = $1",
        )
        .bind(person_id)
        .fetch_all(&mut *c)
        .await)?;
        Ok(rows.into_iter().map(|(s,)| s).collect())
    }

    pub async fn accompaniment(
        &self,
        conn: Conn<'_>,
        accompaniment_id: &str,
    ) -> Result<Option<NamedAccompaniment>, DbError> {
        let sql = format!(
            "SELECT {COLUMNS}, s.name AS structure_name FROM accompaniments a \
             LEFT JOIN structures s ON s.structure_id = a.structure_id \
             WHERE a.accompaniment_id = $1"
        );
        Ok(
            on_backend!(conn, c => sqlx::query_as::<_, NamedAccompaniment>(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(accompaniment_id)
            .fetch_optional(&mut *c)
            .await)?,
        )
    }

    /// Ends an accompaniment that goes on; `false` when it had already ended.
    pub async fn end(
        &self,
        conn: Conn<'_>,
        accompaniment_id: &str,
        ended_on: &str,
        reason: &str,
    ) -> Result<bool, DbError> {
        let n = on_backend!(conn, c => sqlx::query(
            "UPDATE accompaniments SET ended_on = $2, end_reason = $3 \
             WHERE accompaniment_id = $1 AND ended_on IS NULL",
        )
        .bind(accompaniment_id)
        .bind(ended_on)
        .bind(reason)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// Whether `structure_id` has an accompaniment of the person that has not ended.
    pub async fn is_open(
        &self,
        conn: Conn<'_>,
        person_id: &str,
        structure_id: &str,
    ) -> Result<bool, DbError> {
        let row: Option<(String,)> = on_backend!(conn, c => sqlx::query_as(
            "SELECT accompaniment_id FROM accompaniments \
             WHERE person_id = $1 AND structure_id = $2 AND ended_on IS NULL",
        )
        .bind(person_id)
        .bind(structure_id)
        .fetch_optional(&mut *c)
        .await)?;
        Ok(row.is_some())
    }

    /// Codes of the person still usable at `now_us`.
    pub async fn active_share_codes(
        &self,
        conn: Conn<'_>,
        person_id: &str,
        now_us: i64,
    ) -> Result<i64, DbError> {
        let n: (i64,) = on_backend!(conn, c => sqlx::query_as(
            "SELECT COUNT(*) FROM share_codes \
             WHERE person_id = $1 AND used_at_us IS NULL AND expires_at_us > $2",
        )
        .bind(person_id)
        .bind(now_us)
        .fetch_one(&mut *c)
        .await)?;
        Ok(n.0)
    }

    /// Stores a new code, and drops the person's codes that expired.
    pub async fn insert_share_code(
        &self,
        conn: Conn<'_>,
        code: &ShareCodeRow,
        now_us: i64,
    ) -> Result<(), DbError> {
        on_backend!(conn, c => {
            sqlx::query("DELETE FROM share_codes WHERE person_id = $1 AND expires_at_us <= $2")
                .bind(&code.person_id)
                .bind(now_us)
                .execute(&mut *c)
                .await?;
            sqlx::query(
                "INSERT INTO share_codes (code_hash, person_id, expires_at_us, created_at_us) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(&code.code_hash)
            .bind(&code.person_id)
            .bind(code.expires_at_us)
            .bind(now_us)
            .execute(&mut *c)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }

    /// Uses up a code still usable at `now_us`; the person it was for, or
    /// `None` when it is unknown, expired or already used.
    pub async fn use_share_code(
        &self,
        conn: Conn<'_>,
        code_hash: &str,
        structure_id: &str,
        now_us: i64,
    ) -> Result<Option<String>, DbError> {
        let row: Option<(String,)> = on_backend!(conn, c => sqlx::query_as(
            "UPDATE share_codes SET used_at_us = $3, used_by_structure_id = $2 \
             WHERE code_hash = $1 AND used_at_us IS NULL AND expires_at_us > $3 \
             RETURNING person_id",
        )
        .bind(code_hash)
        .bind(structure_id)
        .bind(now_us)
        .fetch_optional(&mut *c)
        .await)?;
        Ok(row.map(|(p,)| p))
    }

    pub async fn attempts(
        &self,
        conn: Conn<'_>,
        structure_id: &str,
    ) -> Result<Option<AttemptsRow>, DbError> {
        Ok(on_backend!(conn, c => sqlx::query_as::<_, AttemptsRow>(
            "SELECT failures, window_started_at_us, locked_until_us FROM share_code_attempts \
             WHERE structure_id = $1",
        )
        .bind(structure_id)
        .fetch_optional(&mut *c)
        .await)?)
    }

    /// Saves a structure's failed redemptions.
    pub async fn save_attempts(
        &self,
        conn: Conn<'_>,
        structure_id: &str,
        a: &AttemptsRow,
    ) -> Result<(), DbError> {
        on_backend!(conn, c => sqlx::query(
            "INSERT INTO share_code_attempts (structure_id, failures, window_started_at_us, locked_until_us) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (structure_id) DO UPDATE SET \
             failures = excluded.failures, window_started_at_us = excluded.window_started_at_us, \
             locked_until_us = excluded.locked_until_us",
        )
        .bind(structure_id)
        .bind(a.failures)
        .bind(a.window_started_at_us)
        .bind(a.locked_until_us)
        .execute(&mut *c)
        .await
        .map(|_| ()))?;
        Ok(())
    }
}
