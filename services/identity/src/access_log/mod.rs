//! The access log the person reads: every `eva.audit.<service>.access` event
//! of every service (ADR 0004), kept by identity in `access_log`.
//!
//! - The projection stores ids and codes only, as the events carry them. The
//!   actor's structure name and display name are looked up when the log is
//!   read, so erasing a person deletes their rows and nothing else names them.
//! - Events about an erased person (published before the erasure, delivered
//!   after it) are dropped: the log of an erased person stays empty.
//! - Who reads a log: the person themself, and the structure admins of a
//!   structure that follows the person (they answer for what their structure
//!   does with the file). Counselors do not: the log is a check on them.
//!   Anyone else gets NOT_FOUND, whether the person exists or not (BOLA).
//! - Reading the log is not itself logged: a read of the log would add an
//!   entry to the log, whose next read adds another, without end. What the
//!   log shows are the ids and codes the person already holds.

pub mod api;
pub mod summary;

use eva_platform::consent::paris_midnight;
use eva_platform::consumer::{ApplyError, Envelope, Projection};
use eva_platform::db::{Conn, DbError, Tx, from_us, timestamp_us};
use eva_platform::on_backend;
use eva_platform::pagination::Page;
use eva_proto::audit::v1::{AccessAction, AccessRecorded};

pub use api::AccessLogApi;

/// Durable consumer of every service's access events.
pub const CONSUMER: &str = "identity-access-log";

/// One access as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AccessRow {
    pub access_id: String,
    pub person_id: String,
    pub actor_user_id: String,
    pub actor_structure_id: String,
    pub actor_role: String,
    /// `read`, `write`, `export`, `erase`.
    pub action: String,
    pub resource_type: String,
    pub resource_id: String,
    /// Comma-separated domain ids.
    pub domains: String,
    pub purpose: String,
    pub service: String,
    pub occurred_at_us: i64,
}

/// Storage code of an action: `read`, `write`, `export`, `erase`.
pub fn action_code(a: AccessAction) -> String {
    a.as_str_name()
        .trim_start_matches("ACCESS_ACTION_")
        .to_lowercase()
}

/// Back from the storage code.
pub fn action_from_code(code: &str) -> AccessAction {
    AccessAction::from_str_name(&format!("ACCESS_ACTION_{}", code.to_uppercase()))
        .unwrap_or(AccessAction::Unspecified)
}

impl AccessRow {
    /// From the event; `None` for an event no log can show.
    pub fn from_event(e: AccessRecorded, fallback_us: i64) -> Option<Self> {
        if e.access_id.is_empty() || e.person_id.is_empty() {
            return None;
        }
        let action = AccessAction::try_from(e.action).unwrap_or(AccessAction::Unspecified);
        let occurred_at_us = e
            .occurred_at
            .map(|t| timestamp_us(&t))
            .unwrap_or(fallback_us);
        Some(Self {
            access_id: e.access_id,
            person_id: e.person_id,
            actor_user_id: e.actor_user_id,
            actor_structure_id: e.actor_structure_id,
            actor_role: e.actor_role,
            action: action_code(action),
            resource_type: e.resource_type,
            resource_id: e.resource_id,
            domains: e.domains.join(","),
            purpose: e.purpose,
            service: e.service,
            occurred_at_us,
        })
    }

    pub fn domain_list(&self) -> Vec<String> {
        self.domains
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

const COLUMNS: &str = "access_id, person_id, actor_user_id, actor_structure_id, actor_role, action, \
     resource_type, resource_id, domains, purpose, service, occurred_at_us";

/// Stores an access once (a redelivery changes nothing).
pub async fn insert(conn: Conn<'_>, row: &AccessRow) -> Result<(), DbError> {
    on_backend!(conn, c => sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO access_log ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
         ON CONFLICT (access_id) DO NOTHING"
    )))
    .bind(&row.access_id)
    .bind(&row.person_id)
    .bind(&row.actor_user_id)
    .bind(&row.actor_structure_id)
    .bind(&row.actor_role)
    .bind(&row.action)
    .bind(&row.resource_type)
    .bind(&row.resource_id)
    .bind(&row.domains)
    .bind(&row.purpose)
    .bind(&row.service)
    .bind(row.occurred_at_us)
    .execute(&mut *c)
    .await
    .map(|_| ()))?;
    Ok(())
}

/// A person's accesses, newest first (UUIDv7 ids sort by time), between
/// two instants (microseconds, inclusive) when given.
pub async fn page_of(
    conn: Conn<'_>,
    person_id: &str,
    from_us: Option<i64>,
    to_us: Option<i64>,
    page: &Page,
) -> Result<(Vec<AccessRow>, String), DbError> {
    let rows = on_backend!(conn, c => sqlx::query_as::<_, AccessRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM access_log WHERE person_id = $1 \
         AND ($2 IS NULL OR occurred_at_us >= $2) AND ($3 IS NULL OR occurred_at_us <= $3) \
         AND ($4 IS NULL OR access_id < $4) ORDER BY access_id DESC LIMIT $5"
    )))
    .bind(person_id)
    .bind(from_us)
    .bind(to_us)
    .bind(page.after.as_deref())
    .bind(page.fetch_limit())
    .fetch_all(&mut *c)
    .await)?;
    Ok(page.finish(rows, |r| r.access_id.clone()))
}

/// Every access of a person, newest first: for the export.
pub async fn all_of(conn: Conn<'_>, person_id: &str) -> Result<Vec<AccessRow>, DbError> {
    Ok(
        on_backend!(conn, c => sqlx::query_as::<_, AccessRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM access_log WHERE person_id = $1 ORDER BY access_id DESC"
    )))
    .bind(person_id)
    .fetch_all(&mut *c)
    .await)?,
    )
}

/// Was this person erased?
pub async fn is_erased(conn: Conn<'_>, person_id: &str) -> Result<bool, DbError> {
    let row: Option<(String,)> = on_backend!(conn, c => sqlx::query_as(
        "SELECT person_id FROM erased_people WHERE person_id = $1",
    )
    .bind(person_id)
    .fetch_optional(&mut *c)
    .await)?;
    Ok(row.is_some())
}

/// Feeds `access_log` from `eva.audit.>`.
#[derive(Clone, Copy, Debug, Default)]
pub struct AccessLogProjection;

impl Projection for AccessLogProjection {
    async fn apply(&self, tx: &mut Tx, event: &Envelope) -> Result<(), ApplyError> {
        if !(event.event_type.starts_with("eva.audit.") && event.event_type.ends_with(".access")) {
            return Ok(());
        }
        let e: AccessRecorded = event.decode()?;
        let fallback = event.time.unix_timestamp_nanos() / 1_000;
        let Some(row) = AccessRow::from_event(e, fallback as i64) else {
            return Err(ApplyError::Permanent(format!(
                "{}: access without id or person",
                event.event_type
            )));
        };
        // An access published before the person's erasure, delivered after.
        if is_erased(tx.conn(), &row.person_id).await? {
            return Ok(());
        }
        insert(tx.conn(), &row).await?;
        Ok(())
    }
}

/// `YYYY-MM-DD` as the first and last microsecond of that day in the
/// Europe/Paris calendar (23 or 25 hours on the days the clocks change).
pub fn day_bounds(day: time::Date) -> (i64, i64) {
    let us = |t: time::OffsetDateTime| (t.unix_timestamp_nanos() / 1_000) as i64;
    let start = us(paris_midnight(day));
    let end = day
        .next_day()
        .map(|d| us(paris_midnight(d)) - 1)
        .unwrap_or(i64::MAX);
    (start, end)
}

/// When an access happened, RFC 3339, for the export.
pub fn rfc3339(us: i64) -> String {
    from_us(us)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_round_trip_through_their_codes() {
        for a in [
            AccessAction::Read,
            AccessAction::Write,
            AccessAction::Export,
            AccessAction::Erase,
        ] {
            assert_eq!(action_from_code(&action_code(a)), a);
        }
        assert_eq!(action_code(AccessAction::Export), "export");
        assert_eq!(action_from_code("nonsense"), AccessAction::Unspecified);
    }

    #[test]
    fn days_are_paris_days() {
        let hour = 3_600_000_000;
        let day = |m, d| time::Date::from_calendar_date(2026, m, d).unwrap();
        let (a, b) = day_bounds(day(time::Month::March, 1));
        assert_eq!(b - a + 1, 24 * hour);
        // 1 March 2026 begins at 23:00 UTC the day before (UTC+1).
        assert_eq!(a, 1_772_319_600_000_000);
        // The clocks go forward on 29 March and back on 25 October.
        let (a, b) = day_bounds(day(time::Month::March, 29));
        assert_eq!(b - a + 1, 23 * hour);
        let (a, b) = day_bounds(day(time::Month::October, 25));
        assert_eq!(b - a + 1, 25 * hour);
    }
}
