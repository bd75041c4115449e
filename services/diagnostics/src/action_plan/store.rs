//! The action plan's rows (migration `0003_action_plan.sql`).

use eva_platform::db::{DbError, Tx};
use eva_platform::on_backend;

use crate::store::Store;

/// An objective's row; the title is sealed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ObjectiveRow {
    pub objective_id: String,
    pub diagnostic_id: String,
    pub person_id: String,
    pub domain_id: String,
    pub title_ciphertext: Vec<u8>,
    pub title_key_id: String,
    pub status: String,
    pub start_date: String,
    pub target_date: String,
    pub end_date: String,
    pub owner_structure_id: String,
    pub owner_user_id: String,
    pub created_at_us: i64,
    pub updated_at_us: i64,
}

/// An action's row; the title is sealed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ActionRow {
    pub action_id: String,
    pub objective_id: String,
    pub diagnostic_id: String,
    pub person_id: String,
    pub title_ciphertext: Vec<u8>,
    pub title_key_id: String,
    pub status: String,
    pub planned_date: String,
    pub end_date: String,
    pub owner_structure_id: String,
    pub owner_user_id: String,
    pub referral_id: String,
    pub created_at_us: i64,
    pub updated_at_us: i64,
}

const OBJECTIVE_COLUMNS: &str = "objective_id, diagnostic_id, person_id, domain_id, \
     title_ciphertext, title_key_id, status, start_date, target_date, end_date, \
     owner_structure_id, owner_user_id, created_at_us, updated_at_us";

const ACTION_COLUMNS: &str = "action_id, objective_id, diagnostic_id, person_id, \
     title_ciphertext, title_key_id, status, planned_date, end_date, owner_structure_id, \
     owner_user_id, referral_id, created_at_us, updated_at_us";

impl Store {
    pub async fn objectives_of(&self, diagnostic_id: &str) -> Result<Vec<ObjectiveRow>, DbError> {
        let mut h = self.db().acquire().await?;
        let sql = format!(
            "SELECT {OBJECTIVE_COLUMNS} FROM plan_objectives WHERE diagnostic_id = $1 ORDER BY objective_id"
        );
        Ok(
            on_backend!(h.conn(), c => sqlx::query_as::<_, ObjectiveRow>(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(diagnostic_id)
            .fetch_all(&mut *c)
            .await)?,
        )
    }

    pub async fn actions_of_diagnostic(
        &self,
        diagnostic_id: &str,
    ) -> Result<Vec<ActionRow>, DbError> {
        let mut h = self.db().acquire().await?;
        let sql = format!(
            "SELECT {ACTION_COLUMNS} FROM plan_actions WHERE diagnostic_id = $1 ORDER BY action_id"
        );
        Ok(
            on_backend!(h.conn(), c => sqlx::query_as::<_, ActionRow>(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(diagnostic_id)
            .fetch_all(&mut *c)
            .await)?,
        )
    }

    pub async fn objective(&self, objective_id: &str) -> Result<Option<ObjectiveRow>, DbError> {
        let mut h = self.db().acquire().await?;
        let sql =
            format!("SELECT {OBJECTIVE_COLUMNS} FROM plan_objectives WHERE objective_id = $1");
        Ok(
            on_backend!(h.conn(), c => sqlx::query_as::<_, ObjectiveRow>(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(objective_id)
            .fetch_optional(&mut *c)
            .await)?,
        )
    }

    pub async fn action(&self, action_id: &str) -> Result<Option<ActionRow>, DbError> {
        let mut h = self.db().acquire().await?;
        let sql = format!("SELECT {ACTION_COLUMNS} FROM plan_actions WHERE action_id = $1");
        Ok(
            on_backend!(h.conn(), c => sqlx::query_as::<_, ActionRow>(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(action_id)
            .fetch_optional(&mut *c)
            .await)?,
        )
    }

    pub async fn insert_objective(tx: &mut Tx, o: &ObjectiveRow) -> Result<(), DbError> {
        let sql = format!(
            "INSERT INTO plan_objectives ({OBJECTIVE_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
        );
        on_backend!(tx.conn(), c => sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(&o.objective_id)
            .bind(&o.diagnostic_id)
            .bind(&o.person_id)
            .bind(&o.domain_id)
            .bind(&o.title_ciphertext)
            .bind(&o.title_key_id)
            .bind(&o.status)
            .bind(&o.start_date)
            .bind(&o.target_date)
            .bind(&o.end_date)
            .bind(&o.owner_structure_id)
            .bind(&o.owner_user_id)
            .bind(o.created_at_us)
            .bind(o.updated_at_us)
            .execute(&mut *c)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Writes `o` over the row last seen at `seen_at_us`; false when the row
    /// changed in between (or is gone).
    pub async fn update_objective(
        tx: &mut Tx,
        o: &ObjectiveRow,
        seen_at_us: i64,
    ) -> Result<bool, DbError> {
        let n = on_backend!(tx.conn(), c => sqlx::query(
            "UPDATE plan_objectives SET title_ciphertext = $2, title_key_id = $3, status = $4, \
             target_date = $5, end_date = $6, owner_user_id = $7, updated_at_us = $8 \
             WHERE objective_id = $1 AND updated_at_us = $9",
        )
        .bind(&o.objective_id)
        .bind(&o.title_ciphertext)
        .bind(&o.title_key_id)
        .bind(&o.status)
        .bind(&o.target_date)
        .bind(&o.end_date)
        .bind(&o.owner_user_id)
        .bind(o.updated_at_us)
        .bind(seen_at_us)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// Adds `a` if its objective is still `en_cours`; false otherwise.
    pub async fn insert_action(tx: &mut Tx, a: &ActionRow) -> Result<bool, DbError> {
        let sql = format!(
            "INSERT INTO plan_actions ({ACTION_COLUMNS}) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14 \
             WHERE EXISTS (SELECT 1 FROM plan_objectives WHERE objective_id = $2 AND status = 'en_cours')"
        );
        let n = on_backend!(tx.conn(), c => sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(&a.action_id)
            .bind(&a.objective_id)
            .bind(&a.diagnostic_id)
            .bind(&a.person_id)
            .bind(&a.title_ciphertext)
            .bind(&a.title_key_id)
            .bind(&a.status)
            .bind(&a.planned_date)
            .bind(&a.end_date)
            .bind(&a.owner_structure_id)
            .bind(&a.owner_user_id)
            .bind(&a.referral_id)
            .bind(a.created_at_us)
            .bind(a.updated_at_us)
            .execute(&mut *c)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// Writes `a` over the row last seen at `seen_at_us`; false when the row
    /// changed in between (or is gone).
    pub async fn update_action(
        tx: &mut Tx,
        a: &ActionRow,
        seen_at_us: i64,
    ) -> Result<bool, DbError> {
        let n = on_backend!(tx.conn(), c => sqlx::query(
            "UPDATE plan_actions SET title_ciphertext = $2, title_key_id = $3, status = $4, \
             planned_date = $5, end_date = $6, owner_structure_id = $7, owner_user_id = $8, \
             referral_id = $9, updated_at_us = $10 WHERE action_id = $1 AND updated_at_us = $11",
        )
        .bind(&a.action_id)
        .bind(&a.title_ciphertext)
        .bind(&a.title_key_id)
        .bind(&a.status)
        .bind(&a.planned_date)
        .bind(&a.end_date)
        .bind(&a.owner_structure_id)
        .bind(&a.owner_user_id)
        .bind(&a.referral_id)
        .bind(a.updated_at_us)
        .bind(seen_at_us)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }
}
