//! Storage of consents: the authoritative table behind `ConsentService` and
//! the `eva.consent.grant.*` events.

use eva_platform::consent::{GrantView, Purpose};
use eva_platform::db::{Conn, DbError, to_timestamp};
use eva_platform::on_backend;
use eva_platform::pagination::Page;
use eva_proto::identity::v1 as pb;

use super::{purpose_to_proto, status_from_code};

/// A consent as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ConsentRow {
    pub consent_id: String,
    pub person_id: String,
    /// The grantee.
    pub structure_id: String,
    /// Comma-separated domain ids.
    pub domains: String,
    /// Comma-separated purpose codes.
    pub purposes: String,
    pub valid_from: String,
    pub valid_until: String,
    /// `active`, `withdrawn` or `expired`.
    pub status: String,
    pub recorded_by_user_id: String,
    /// `espace_personnel` or `au_bureau`.
    pub collection: String,
    pub granted_at_us: i64,
    pub withdrawn_at_us: Option<i64>,
    pub expired_at_us: Option<i64>,
    pub receipt_id: String,
    pub receipt_json: String,
    pub receipt_signature: String,
}

fn split(csv: &str) -> impl Iterator<Item = &str> {
    csv.split(',').filter(|s| !s.is_empty())
}

impl ConsentRow {
    pub fn domain_list(&self) -> Vec<String> {
        split(&self.domains).map(str::to_owned).collect()
    }

    pub fn purpose_list(&self) -> Vec<pb::ConsentPurpose> {
        split(&self.purposes)
            .filter_map(Purpose::parse)
            .map(purpose_to_proto)
            .collect()
    }

    pub fn to_proto(&self) -> pb::Consent {
        pb::Consent {
            consent_id: self.consent_id.clone(),
            person_id: self.person_id.clone(),
            grantee_structure_id: self.structure_id.clone(),
            domains: self.domain_list(),
            purposes: self.purpose_list().into_iter().map(|p| p as i32).collect(),
            valid_from: self.valid_from.clone(),
            valid_until: self.valid_until.clone(),
            status: status_from_code(&self.status) as i32,
            recorded_by_user_id: self.recorded_by_user_id.clone(),
            granted_at: Some(to_timestamp(self.granted_at_us)),
            withdrawn_at: self.withdrawn_at_us.map(to_timestamp),
            collection: self.collection.clone(),
        }
    }

    pub fn receipt(&self) -> pb::ConsentReceipt {
        pb::ConsentReceipt {
            receipt_id: self.receipt_id.clone(),
            consent_id: self.consent_id.clone(),
            json: self.receipt_json.clone(),
            signature: self.receipt_signature.clone(),
            issued_at: Some(to_timestamp(self.granted_at_us)),
        }
    }
}

const COLUMNS: &str = "consent_id, person_id, structure_id, domains, purposes, valid_from, valid_until, \
     status, recorded_by_user_id, collection, granted_at_us, withdrawn_at_us, expired_at_us, \
     receipt_id, receipt_json, receipt_signature";

/// Consents. Every method takes the connection to run on: a transaction's
/// (`tx.conn()`) or a pooled one (`handle.conn()`).
#[derive(Clone, Copy, Debug, Default)]
pub struct ConsentStore;

impl ConsentStore {
    pub async fn insert(&self, conn: Conn<'_>, row: &ConsentRow) -> Result<(), DbError> {
        on_backend!(conn, c => sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO consents ({COLUMNS}) VALUES \
             ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
        )))
        .bind(&row.consent_id)
        .bind(&row.person_id)
        .bind(&row.structure_id)
        .bind(&row.domains)
        .bind(&row.purposes)
        .bind(&row.valid_from)
        .bind(&row.valid_until)
        .bind(&row.status)
        .bind(&row.recorded_by_user_id)
        .bind(&row.collection)
        .bind(row.granted_at_us)
        .bind(row.withdrawn_at_us)
        .bind(row.expired_at_us)
        .bind(&row.receipt_id)
        .bind(&row.receipt_json)
        .bind(&row.receipt_signature)
        .execute(&mut *c)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    pub async fn get(
        &self,
        conn: Conn<'_>,
        consent_id: &str,
    ) -> Result<Option<ConsentRow>, DbError> {
        Ok(
            on_backend!(conn, c => sqlx::query_as::<_, ConsentRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM consents WHERE consent_id = $1"
        )))
        .bind(consent_id)
        .fetch_optional(&mut *c)
        .await)?,
        )
    }

    /// A person's consents, newest first, optionally of one status.
    pub async fn of_person(
        &self,
        conn: Conn<'_>,
        person_id: &str,
        status: Option<&str>,
        page: &Page,
    ) -> Result<(Vec<ConsentRow>, String), DbError> {
        let rows = on_backend!(conn, c => sqlx::query_as::<_, ConsentRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM consents WHERE person_id = $1 AND ($2 IS NULL OR status = $2) \
             AND ($3 IS NULL OR consent_id < $3) ORDER BY consent_id DESC LIMIT $4"
        )))
        .bind(person_id)
        .bind(status)
        .bind(page.after.as_deref())
        .bind(page.fetch_limit())
        .fetch_all(&mut *c)
        .await)?;
        Ok(page.finish(rows, |r| r.consent_id.clone()))
    }

    /// What the decision needs about a person's consents to one structure.
    pub async fn grants(
        &self,
        conn: Conn<'_>,
        person_id: &str,
        structure_id: &str,
    ) -> Result<Vec<GrantView>, DbError> {
        Ok(on_backend!(conn, c => sqlx::query_as::<_, GrantView>(
            "SELECT consent_id, domains, purposes, valid_from, valid_until, status \
             FROM consents WHERE person_id = $1 AND structure_id = $2",
        )
        .bind(person_id)
        .bind(structure_id)
        .fetch_all(&mut *c)
        .await)?)
    }

    /// Withdraws an active consent; `None` when it was not active (already
    /// withdrawn or expired: nothing changes).
    pub async fn withdraw(
        &self,
        conn: Conn<'_>,
        consent_id: &str,
        now_us: i64,
    ) -> Result<Option<ConsentRow>, DbError> {
        Ok(
            on_backend!(conn, c => sqlx::query_as::<_, ConsentRow>(sqlx::AssertSqlSafe(format!(
            "UPDATE consents SET status = 'withdrawn', withdrawn_at_us = $2 \
             WHERE consent_id = $1 AND status = 'active' RETURNING {COLUMNS}"
        )))
        .bind(consent_id)
        .bind(now_us)
        .fetch_optional(&mut *c)
        .await)?,
        )
    }

    /// Active consents whose last day is before `today`.
    pub async fn due(
        &self,
        conn: Conn<'_>,
        today: &str,
        limit: i64,
    ) -> Result<Vec<String>, DbError> {
        let rows: Vec<(String,)> = on_backend!(conn, c => sqlx::query_as(
            "SELECT consent_id FROM consents WHERE status = 'active' AND valid_until < $1 \
             ORDER BY valid_until, consent_id LIMIT $2",
        )
        .bind(today)
        .bind(limit)
        .fetch_all(&mut *c)
        .await)?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    /// Marks a consent expired if it is still active and past its last day.
    pub async fn expire(
        &self,
        conn: Conn<'_>,
        consent_id: &str,
        today: &str,
        now_us: i64,
    ) -> Result<Option<ConsentRow>, DbError> {
        Ok(
            on_backend!(conn, c => sqlx::query_as::<_, ConsentRow>(sqlx::AssertSqlSafe(format!(
            "UPDATE consents SET status = 'expired', expired_at_us = $3 \
             WHERE consent_id = $1 AND status = 'active' AND valid_until < $2 RETURNING {COLUMNS}"
        )))
        .bind(consent_id)
        .bind(today)
        .bind(now_us)
        .fetch_optional(&mut *c)
        .await)?,
        )
    }
}
