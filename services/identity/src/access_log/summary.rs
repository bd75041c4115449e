//! `AccessLogService.SummarizeAccessLog`: the person's access log grouped by
//! day, actor, action, kind of resource and purpose, so that a counselor who
//! opens the file ten times a day makes one line, and the one access that
//! matters stands out.
//!
//! - Days are Europe/Paris calendar days, cut as `ListAccessLog`'s `from`
//!   and `to` cut them ([`super::day_bounds`]), so a day of the summary is
//!   the day its entries show under that filter, and the day the person lived
//!   them (a read at 00:30 in Paris is on that day, not the day before).
//! - Newest day first; within a day, the group accessed last first, then the
//!   group whose newest access id is higher (unique: an access is in one
//!   group). Pages are keyset: the token carries the last group's
//!   `(day, last access, newest id)`, so an access recorded while the person
//!   pages only moves groups already shown, and none is shown twice.
//! - Same readers as the list, and not logged either (see the module above).

use eva_platform::auth::{Role, require_role};
use eva_platform::consent::paris_day_sql;
use eva_platform::db::{self, Conn, DbError, to_timestamp};
use eva_platform::on_backend;
use eva_platform::pagination::{Page, PageError};
use eva_proto::identity::v1 as pb;
use tonic::{Request, Status};

use super::action_from_code;
use super::api::{AccessLogApi, LOG_READERS, Names, may_read, period};
use crate::accounts::role_to_pb;
use crate::people::api::internal;
use crate::people::check_id;

/// One group as the database sums it up.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct GroupRow {
    /// Paris calendar days since 1970-01-01.
    pub day_n: i64,
    pub actor_user_id: String,
    pub actor_structure_id: String,
    pub actor_role: String,
    pub action: String,
    pub resource_type: String,
    pub purpose: String,
    /// The distinct `domains` of its rows, comma-joined (each comma-separated).
    pub domains: Option<String>,
    pub n: i64,
    pub first_us: i64,
    pub last_us: i64,
    /// The highest access id of the group: unique, the last tie-break.
    pub last_id: String,
}

impl GroupRow {
    /// Every domain of the group once, sorted.
    pub fn domain_list(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .domains
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// `YYYY-MM-DD`.
    pub fn day(&self) -> String {
        time::OffsetDateTime::from_unix_timestamp(self.day_n.saturating_mul(86_400))
            .map(|t| t.date().to_string())
            .unwrap_or_default()
    }

    fn key(&self) -> String {
        format!("{}:{}:{}", self.day_n, self.last_us, self.last_id)
    }
}

/// Where a page starts: after the group `(day, last_us, last_id)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct After {
    pub day_n: i64,
    pub last_us: i64,
    pub last_id: String,
}

/// The position a page token carries; a token of another list is refused.
pub fn after(page: &Page) -> Result<Option<After>, PageError> {
    let Some(key) = page.after.as_deref() else {
        return Ok(None);
    };
    let mut parts = key.splitn(3, ':');
    let (Some(day), Some(last), Some(id)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(PageError::Token);
    };
    match (day.parse(), last.parse()) {
        (Ok(day_n), Ok(last_us)) if !id.is_empty() => Ok(Some(After {
            day_n,
            last_us,
            last_id: id.to_owned(),
        })),
        _ => Err(PageError::Token),
    }
}

/// The years a person's log spans (its Paris days are exact over them).
pub async fn years_of(
    conn: Conn<'_>,
    person_id: &str,
) -> Result<std::ops::RangeInclusive<i32>, DbError> {
    let (first, last) = on_backend!(conn, c => sqlx::query_as::<_, (Option<i64>, Option<i64>)>(
        "SELECT MIN(occurred_at_us), MAX(occurred_at_us) FROM access_log WHERE person_id = $1",
    )
    .bind(person_id)
    .fetch_one(&mut *c)
    .await)?;
    let year = |us: Option<i64>| db::from_us(us.unwrap_or_default()).year();
    Ok(year(first)..=year(last))
}

/// A person's groups between two instants (microseconds, inclusive), one
/// page; days are Paris days, exact over `years`.
#[allow(clippy::too_many_arguments)]
pub async fn groups_of(
    conn: Conn<'_>,
    years: std::ops::RangeInclusive<i32>,
    person_id: &str,
    from_us: Option<i64>,
    to_us: Option<i64>,
    page: &Page,
    after: Option<&After>,
) -> Result<(Vec<GroupRow>, String), DbError> {
    // The one difference between the backends: how distinct texts are joined.
    let domains = match conn {
        Conn::Sqlite(_) => "group_concat(DISTINCT domains)",
        Conn::Postgres(_) => "string_agg(DISTINCT domains, ',')",
    };
    let day = paris_day_sql("occurred_at_us", years);
    let sql = format!(
        "SELECT day_n, actor_user_id, actor_structure_id, actor_role, action, resource_type, \
         purpose, domains, n, first_us, last_us, last_id FROM ( \
           SELECT {day} AS day_n, actor_user_id, actor_structure_id, \
           actor_role, action, resource_type, purpose, {domains} AS domains, COUNT(*) AS n, \
           MIN(occurred_at_us) AS first_us, MAX(occurred_at_us) AS last_us, \
           MAX(access_id) AS last_id \
           FROM access_log WHERE person_id = $1 \
           AND ($2 IS NULL OR occurred_at_us >= $2) AND ($3 IS NULL OR occurred_at_us <= $3) \
           GROUP BY {day}, actor_user_id, actor_structure_id, actor_role, \
           action, resource_type, purpose \
         ) g WHERE ($4 IS NULL OR day_n < $4 OR (day_n = $4 AND (last_us < $5 \
           OR (last_us = $5 AND last_id < $6)))) \
         ORDER BY day_n DESC, last_us DESC, last_id DESC LIMIT $7"
    );
    let rows = on_backend!(conn, c => sqlx::query_as::<_, GroupRow>(sqlx::AssertSqlSafe(sql))
        .bind(person_id)
        .bind(from_us)
        .bind(to_us)
        .bind(after.map(|a| a.day_n))
        .bind(after.map(|a| a.last_us))
        .bind(after.map(|a| a.last_id.as_str()))
        .bind(page.fetch_limit())
        .fetch_all(&mut *c)
        .await)?;
    Ok(page.finish(rows, GroupRow::key))
}

/// The RPC: checked as `ListAccessLog`, in the same order, then summed up.
pub async fn summarize(
    api: &AccessLogApi,
    req: Request<pb::SummarizeAccessLogRequest>,
) -> Result<pb::SummarizeAccessLogResponse, Status> {
    let caller = require_role(&req, LOG_READERS)?.clone();
    let r = req.into_inner();
    check_id("person_id", &r.person_id)?;
    let page = Page::parse(r.page_size, &r.page_token)?;
    let start = after(&page)?;
    let (from_us, to_us) = period(&r.from, &r.to)?;
    may_read(api, &caller, &r.person_id).await?;
    // Not logged: see the module's documentation.
    let (rows, next) = {
        let mut h = api.db.acquire().await.map_err(internal)?;
        let years = years_of(h.conn(), &r.person_id).await.map_err(internal)?;
        groups_of(
            h.conn(),
            years,
            &r.person_id,
            from_us,
            to_us,
            &page,
            start.as_ref(),
        )
        .await
        .map_err(internal)?
    };
    let mut names = Names::new(&api.db, &api.accounts);
    let mut groups = Vec::with_capacity(rows.len());
    for row in rows {
        let role = Role::parse(&row.actor_role).map_or(pb::Role::Unspecified, role_to_pb);
        groups.push(pb::AccessLogGroup {
            day: row.day(),
            actor_display_name: names.actor(&row.actor_user_id).await?,
            actor_structure_name: names.structure(&row.actor_structure_id).await?,
            actor_role: role as i32,
            action: action_from_code(&row.action) as i32,
            domains: row.domain_list(),
            count: row.n,
            first_at: Some(to_timestamp(row.first_us)),
            last_at: Some(to_timestamp(row.last_us)),
            actor_user_id: row.actor_user_id,
            actor_structure_id: row.actor_structure_id,
            resource_type: row.resource_type,
            purpose: row.purpose,
        });
    }
    Ok(pb::SummarizeAccessLogResponse {
        groups,
        next_page_token: next,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY_US: i64 = 86_400 * 1_000_000;

    fn row(day_n: i64, domains: Option<&str>) -> GroupRow {
        GroupRow {
            day_n,
            actor_user_id: String::new(),
            actor_structure_id: String::new(),
            actor_role: "counselor".into(),
            action: "read".into(),
            resource_type: "diagnostic".into(),
            purpose: "accompagnement".into(),
            domains: domains.map(str::to_owned),
            n: 1,
            first_us: day_n * DAY_US,
            last_us: day_n * DAY_US + 5,
            last_id: "0190-x".into(),
        }
    }

    #[test]
    fn domains_are_a_sorted_union() {
        assert_eq!(
            row(0, Some("mobilite,famille,,logement,mobilite")).domain_list(),
            vec!["famille", "logement", "mobilite"]
        );
        assert!(row(0, Some(",")).domain_list().is_empty());
        assert!(row(0, None).domain_list().is_empty());
    }

    #[test]
    fn days_are_calendar_days() {
        // 2026-03-12 is day 20524 since 1970-01-01.
        assert_eq!(row(20524, None).day(), "2026-03-12");
    }

    #[test]
    fn tokens_carry_the_last_group() {
        let p = Page::parse(1, "").unwrap();
        let (_, next) = p.finish(vec![row(3, None), row(2, None)], GroupRow::key);
        let p2 = Page::parse(1, &next).unwrap();
        assert_eq!(
            after(&p2),
            Ok(Some(After {
                day_n: 3,
                last_us: 3 * DAY_US + 5,
                last_id: "0190-x".into()
            }))
        );
        for bad in ["x", "1:2", "a:2:id", "1:b:id", "1:2:"] {
            let p = Page {
                size: 1,
                after: Some(bad.into()),
            };
            assert_eq!(after(&p), Err(PageError::Token), "{bad}");
        }
    }
}
