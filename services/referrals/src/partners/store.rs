//! Partners' settings, webhooks and deliveries (migration
//! `0003_webhooks.sql`, and `partner_settings` of `0001`).

use eva_platform::db::{DbError, Tx};
use eva_platform::on_backend;

use crate::store::Store;

/// `format` and `event_format` values.
pub const PROTOBUF: &str = "protobuf";
pub const JSON: &str = "json";

/// Delivery states.
pub const PENDING: &str = "pending";
pub const DELIVERED: &str = "delivered";
pub const RETRYING: &str = "retrying";
pub const FAILED: &str = "failed";

/// A webhook's row; the secret is sealed with the KEK.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WebhookRow {
    pub webhook_id: String,
    pub structure_id: String,
    pub url: String,
    pub format: String,
    pub secret_sealed: Vec<u8>,
    pub created_at_us: i64,
    /// Since when it is paused (migration `0005`); `None` while active.
    pub paused_at_us: Option<i64>,
}

/// A delivery as listed (without its body).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DeliveryRow {
    pub delivery_id: String,
    pub webhook_id: String,
    pub event_id: String,
    pub event_type: String,
    pub occurred_at_us: i64,
    pub content_type: String,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at_us: Option<i64>,
    pub last_attempt_at_us: Option<i64>,
    pub last_http_status: i64,
    pub last_error: String,
    pub created_at_us: i64,
}

/// A delivery due now, with what the call needs.
#[derive(Clone, sqlx::FromRow)]
pub struct DueDelivery {
    pub delivery_id: String,
    pub webhook_id: String,
    pub event_id: String,
    pub event_type: String,
    pub occurred_at_us: i64,
    pub body: Vec<u8>,
    pub content_type: String,
    pub attempts: i64,
    pub next_attempt_at_us: i64,
    pub url: String,
    pub secret_sealed: Vec<u8>,
}

/// A new delivery.
pub struct NewDelivery<'a> {
    pub delivery_id: &'a str,
    pub webhook_id: &'a str,
    pub event_id: &'a str,
    pub event_type: &'a str,
    pub occurred_at_us: i64,
    pub body: &'a [u8],
    pub content_type: &'a str,
    /// `pending`, or `failed` when the body could not be rendered.
    pub status: &'a str,
    pub next_attempt_at_us: Option<i64>,
    pub last_error: &'a str,
    pub created_at_us: i64,
}

/// The outcome of one attempt, to record.
pub struct Attempt<'a> {
    pub status: &'a str,
    pub attempts: i64,
    pub next_attempt_at_us: Option<i64>,
    pub last_attempt_at_us: i64,
    pub last_http_status: i64,
    pub last_error: &'a str,
}

const WEBHOOK_COLUMNS: &str =
    "webhook_id, structure_id, url, format, secret_sealed, created_at_us, paused_at_us";

const DELIVERY_COLUMNS: &str = "delivery_id, webhook_id, event_id, event_type, occurred_at_us, \
     content_type, status, attempts, next_attempt_at_us, last_attempt_at_us, last_http_status, \
     last_error, created_at_us";

impl Store {
    /// A partner's chosen event format and when it was set, if ever.
    pub async fn partner_settings(
        &self,
        structure_id: &str,
    ) -> Result<Option<(String, i64)>, DbError> {
        let mut h = self.db().acquire().await?;
        Ok(on_backend!(h.conn(), c => sqlx::query_as(
            "SELECT event_format, updated_at_us FROM partner_settings WHERE structure_id = $1",
        )
        .bind(structure_id)
        .fetch_optional(&mut *c)
        .await)?)
    }

    /// As [`Store::partner_settings`], inside a transaction.
    pub async fn partner_event_format_in(
        tx: &mut Tx,
        structure_id: &str,
    ) -> Result<Option<String>, DbError> {
        let row: Option<(String,)> = on_backend!(tx.conn(), c => sqlx::query_as(
            "SELECT event_format FROM partner_settings WHERE structure_id = $1",
        )
        .bind(structure_id)
        .fetch_optional(&mut *c)
        .await)?;
        Ok(row.map(|r| r.0))
    }

    pub async fn set_partner_settings(
        tx: &mut Tx,
        structure_id: &str,
        event_format: &str,
        at_us: i64,
    ) -> Result<(), DbError> {
        on_backend!(tx.conn(), c => sqlx::query(
            "INSERT INTO partner_settings (structure_id, event_format, updated_at_us) VALUES ($1, $2, $3) \
             ON CONFLICT (structure_id) DO UPDATE SET event_format = excluded.event_format, \
             updated_at_us = excluded.updated_at_us",
        )
        .bind(structure_id)
        .bind(event_format)
        .bind(at_us)
        .execute(&mut *c)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// The kind (`StructureKind` number) of a structure, inside a transaction.
    pub async fn structure_kind_in(
        tx: &mut Tx,
        structure_id: &str,
    ) -> Result<Option<i32>, DbError> {
        Ok(
            eva_platform::follows::Follows::structure_in(tx, structure_id)
                .await?
                .map(|s| s.kind),
        )
    }

    pub async fn count_webhooks_in(tx: &mut Tx, structure_id: &str) -> Result<i64, DbError> {
        let (n,): (i64,) = on_backend!(tx.conn(), c => sqlx::query_as(
            "SELECT COUNT(*) FROM webhooks WHERE structure_id = $1",
        )
        .bind(structure_id)
        .fetch_one(&mut *c)
        .await)?;
        Ok(n)
    }

    pub async fn insert_webhook(tx: &mut Tx, w: &WebhookRow) -> Result<(), DbError> {
        on_backend!(tx.conn(), c => sqlx::query(
            "INSERT INTO webhooks (webhook_id, structure_id, url, format, secret_sealed, created_at_us) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&w.webhook_id)
        .bind(&w.structure_id)
        .bind(&w.url)
        .bind(&w.format)
        .bind(&w.secret_sealed)
        .bind(w.created_at_us)
        .execute(&mut *c)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    pub async fn webhook(&self, webhook_id: &str) -> Result<Option<WebhookRow>, DbError> {
        let mut h = self.db().acquire().await?;
        let sql = format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE webhook_id = $1");
        Ok(
            on_backend!(h.conn(), c => sqlx::query_as::<_, WebhookRow>(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(webhook_id)
            .fetch_optional(&mut *c)
            .await)?,
        )
    }

    /// A structure's webhooks in creation order, after `after`.
    pub async fn webhooks_of(
        &self,
        structure_id: &str,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<WebhookRow>, DbError> {
        let mut h = self.db().acquire().await?;
        let sql = format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE structure_id = $1 AND webhook_id > $2 \
             ORDER BY webhook_id LIMIT $3"
        );
        Ok(
            on_backend!(h.conn(), c => sqlx::query_as::<_, WebhookRow>(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(structure_id)
            .bind(after.unwrap_or(""))
            .bind(limit)
            .fetch_all(&mut *c)
            .await)?,
        )
    }

    /// Every webhook of a structure (at most a few), inside a transaction:
    /// `(webhook_id, format)`.
    pub async fn webhook_formats_in(
        tx: &mut Tx,
        structure_id: &str,
    ) -> Result<Vec<(String, String)>, DbError> {
        Ok(on_backend!(tx.conn(), c => sqlx::query_as(
            "SELECT webhook_id, format FROM webhooks WHERE structure_id = $1 ORDER BY webhook_id",
        )
        .bind(structure_id)
        .fetch_all(&mut *c)
        .await)?)
    }

    /// Pauses (`Some(time)`) or resumes (`None`) a webhook; its deliveries
    /// stay queued. False if it does not exist.
    pub async fn set_webhook_paused(
        tx: &mut Tx,
        webhook_id: &str,
        paused_at_us: Option<i64>,
    ) -> Result<bool, DbError> {
        let n = on_backend!(tx.conn(), c => sqlx::query(
            "UPDATE webhooks SET paused_at_us = $2 WHERE webhook_id = $1",
        )
        .bind(webhook_id)
        .bind(paused_at_us)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// Removes a webhook and all its deliveries; false if it did not exist.
    pub async fn delete_webhook(tx: &mut Tx, webhook_id: &str) -> Result<bool, DbError> {
        on_backend!(tx.conn(), c => sqlx::query(
            "DELETE FROM webhook_deliveries WHERE webhook_id = $1",
        )
        .bind(webhook_id)
        .execute(&mut *c)
        .await
        .map(|_| ()))?;
        let n = on_backend!(tx.conn(), c => sqlx::query(
            "DELETE FROM webhooks WHERE webhook_id = $1",
        )
        .bind(webhook_id)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }

    /// Queues a delivery; a second one of the same event to the same webhook
    /// is ignored. True if a row was written.
    pub async fn insert_delivery(tx: &mut Tx, d: &NewDelivery<'_>) -> Result<bool, DbError> {
        let n = on_backend!(tx.conn(), c => sqlx::query(
            "INSERT INTO webhook_deliveries (delivery_id, webhook_id, event_id, event_type, \
             occurred_at_us, body, content_type, status, attempts, next_attempt_at_us, \
             last_attempt_at_us, last_http_status, last_error, created_at_us) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9, NULL, 0, $10, $11) \
             ON CONFLICT (webhook_id, event_id) DO NOTHING",
        )
        .bind(d.delivery_id)
        .bind(d.webhook_id)
        .bind(d.event_id)
        .bind(d.event_type)
        .bind(d.occurred_at_us)
        .bind(d.body)
        .bind(d.content_type)
        .bind(d.status)
        .bind(d.next_attempt_at_us)
        .bind(d.last_error)
        .bind(d.created_at_us)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }

    /// A webhook's deliveries, newest first, before `before`, optionally in
    /// one state.
    pub async fn deliveries_of(
        &self,
        webhook_id: &str,
        status: Option<&str>,
        before: Option<&str>,
        limit: i64,
    ) -> Result<Vec<DeliveryRow>, DbError> {
        let mut h = self.db().acquire().await?;
        let mut sql =
            format!("SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE webhook_id = $1");
        sql.push_str(if before.is_some() {
            " AND delivery_id < $2"
        } else {
            " AND $2 = ''"
        });
        sql.push_str(if status.is_some() {
            " AND status = $3"
        } else {
            " AND $3 = ''"
        });
        sql.push_str(" ORDER BY delivery_id DESC LIMIT $4");
        Ok(
            on_backend!(h.conn(), c => sqlx::query_as::<_, DeliveryRow>(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(webhook_id)
            .bind(before.unwrap_or(""))
            .bind(status.unwrap_or(""))
            .bind(limit)
            .fetch_all(&mut *c)
            .await)?,
        )
    }

    /// Deliveries due at `now_us`, at most one per webhook that is not
    /// paused: the oldest one not yet delivered nor failed (so each webhook
    /// gets its events in order), provided its attempt is due.
    pub async fn due_deliveries(
        &self,
        now_us: i64,
        limit: i64,
    ) -> Result<Vec<DueDelivery>, DbError> {
        let mut h = self.db().acquire().await?;
        Ok(on_backend!(h.conn(), c => sqlx::query_as::<_, DueDelivery>(
            "SELECT d.delivery_id, d.webhook_id, d.event_id, d.event_type, d.occurred_at_us, d.body, \
             d.content_type, d.attempts, d.next_attempt_at_us, w.url, w.secret_sealed \
             FROM webhook_deliveries d JOIN webhooks w ON w.webhook_id = d.webhook_id \
             WHERE d.status IN ('pending', 'retrying') AND d.next_attempt_at_us <= $1 \
             AND w.paused_at_us IS NULL \
             AND NOT EXISTS (SELECT 1 FROM webhook_deliveries e WHERE e.webhook_id = d.webhook_id \
               AND e.status IN ('pending', 'retrying') AND e.delivery_id < d.delivery_id) \
             ORDER BY d.next_attempt_at_us, d.delivery_id LIMIT $2",
        )
        .bind(now_us)
        .bind(limit)
        .fetch_all(&mut *c)
        .await)?)
    }

    /// Takes a due delivery for one attempt: moves its next attempt to
    /// `lease_until_us`, so that another worker (or this one after a crash)
    /// retries it only once the lease is over. False if someone else took it
    /// or it changed meanwhile.
    pub async fn claim_delivery(
        &self,
        delivery_id: &str,
        expected_next_us: i64,
        lease_until_us: i64,
    ) -> Result<bool, DbError> {
        let mut h = self.db().acquire().await?;
        let n = on_backend!(h.conn(), c => sqlx::query(
            "UPDATE webhook_deliveries SET next_attempt_at_us = $3 \
             WHERE delivery_id = $1 AND next_attempt_at_us = $2 AND status IN ('pending', 'retrying')",
        )
        .bind(delivery_id)
        .bind(expected_next_us)
        .bind(lease_until_us)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// Records an attempt on a claimed delivery (`attempts` is the new
    /// count). False if it was removed meanwhile (webhook deleted).
    pub async fn record_attempt(
        &self,
        delivery_id: &str,
        lease_until_us: i64,
        a: &Attempt<'_>,
    ) -> Result<bool, DbError> {
        let mut h = self.db().acquire().await?;
        let n = on_backend!(h.conn(), c => sqlx::query(
            "UPDATE webhook_deliveries SET status = $3, attempts = $4, next_attempt_at_us = $5, \
             last_attempt_at_us = $6, last_http_status = $7, last_error = $8 \
             WHERE delivery_id = $1 AND next_attempt_at_us = $2 AND status IN ('pending', 'retrying')",
        )
        .bind(delivery_id)
        .bind(lease_until_us)
        .bind(a.status)
        .bind(a.attempts)
        .bind(a.next_attempt_at_us)
        .bind(a.last_attempt_at_us)
        .bind(a.last_http_status)
        .bind(a.last_error)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// Forgets delivered and failed deliveries whose last attempt (or
    /// creation) is before `before_us`. Answers how many.
    pub async fn prune_deliveries(&self, before_us: i64) -> Result<u64, DbError> {
        let mut h = self.db().acquire().await?;
        Ok(on_backend!(h.conn(), c => sqlx::query(
            "DELETE FROM webhook_deliveries WHERE status IN ('delivered', 'failed') \
             AND COALESCE(last_attempt_at_us, created_at_us) < $1",
        )
        .bind(before_us)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?)
    }
}
