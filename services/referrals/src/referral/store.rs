//! Referrals' tables: the referral, its history, its thread and the
//! domains of the diagnostic that travelled. Sealed columns hold what
//! identity sealed with the person's key; nothing here is in clear.

use eva_platform::db::{Db, DbError, Tx};
use eva_platform::on_backend;

pub const COLUMNS: &str = "referral_id, person_id, sender_structure_id, sender_user_id, \
    target_structure_id, target_service_id, status, domains, diagnostic_id, referentiel_version, \
    refusal_reason, details, details_key, sent_at_us, first_answered_at_us, remind_at_us, \
    reminded_at_us, expires_at_us, closed_at_us, updated_at_us";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ReferralRow {
    pub referral_id: String,
    pub person_id: String,
    pub sender_structure_id: String,
    pub sender_user_id: String,
    pub target_structure_id: String,
    pub target_service_id: String,
    pub status: String,
    /// Comma-separated domain ids.
    pub domains: String,
    pub diagnostic_id: String,
    pub referentiel_version: String,
    pub refusal_reason: String,
    /// Sealed JSON: the reason and the person's contact.
    pub details: Vec<u8>,
    pub details_key: String,
    pub sent_at_us: i64,
    pub first_answered_at_us: Option<i64>,
    pub remind_at_us: i64,
    pub reminded_at_us: Option<i64>,
    pub expires_at_us: i64,
    pub closed_at_us: Option<i64>,
    pub updated_at_us: i64,
}

impl ReferralRow {
    pub fn domain_list(&self) -> Vec<String> {
        self.domains
            .split(',')
            .filter(|d| !d.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TransitionRow {
    pub transition_id: String,
    pub referral_id: String,
    pub from_status: String,
    pub to_status: String,
    pub actor_user_id: String,
    pub actor_structure_id: String,
    pub refusal_reason: String,
    pub note: Option<Vec<u8>>,
    pub note_key: Option<String>,
    pub occurred_at_us: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MessageRow {
    pub message_id: String,
    pub referral_id: String,
    pub author_user_id: String,
    pub author_structure_id: String,
    pub body: Vec<u8>,
    pub body_key: String,
    pub posted_at_us: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DomainRow {
    pub domain: String,
    pub sealed: Vec<u8>,
    pub key_id: String,
}

/// Which referrals a list shows.
#[derive(Debug, Default)]
pub struct Filter<'a> {
    /// With `sent`/`received`: that side only; both when neither is set.
    pub structure_id: Option<&'a str>,
    pub sent: bool,
    pub received: bool,
    pub status: Option<&'a str>,
    pub person_id: Option<&'a str>,
    /// Keyset: ids strictly before this one (newest first).
    pub before: Option<&'a str>,
    pub limit: i64,
}

/// A status change, applied only if the referral is still in `from`.
pub struct Move<'a> {
    pub referral_id: &'a str,
    pub from: &'a str,
    pub to: &'a str,
    pub refusal_reason: &'a str,
    pub first_answer: bool,
    pub closes: bool,
    pub at_us: i64,
}

#[derive(Clone)]
pub struct ReferralStore {
    db: Db,
}

impl ReferralStore {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub async fn insert(tx: &mut Tx, r: &ReferralRow) -> Result<(), DbError> {
        let sql = format!(
            "INSERT INTO referrals ({COLUMNS}) VALUES \
             ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)"
        );
        on_backend!(tx.conn(), c => sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(&r.referral_id)
            .bind(&r.person_id)
            .bind(&r.sender_structure_id)
            .bind(&r.sender_user_id)
            .bind(&r.target_structure_id)
            .bind(&r.target_service_id)
            .bind(&r.status)
            .bind(&r.domains)
            .bind(&r.diagnostic_id)
            .bind(&r.referentiel_version)
            .bind(&r.refusal_reason)
            .bind(&r.details)
            .bind(&r.details_key)
            .bind(r.sent_at_us)
            .bind(r.first_answered_at_us)
            .bind(r.remind_at_us)
            .bind(r.reminded_at_us)
            .bind(r.expires_at_us)
            .bind(r.closed_at_us)
            .bind(r.updated_at_us)
            .execute(&mut *c)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    pub async fn insert_domain(
        tx: &mut Tx,
        referral_id: &str,
        domain: &str,
        sealed: &[u8],
        key_id: &str,
    ) -> Result<(), DbError> {
        on_backend!(tx.conn(), c => sqlx::query(
            "INSERT INTO referral_diagnostic_domains (referral_id, domain, sealed, key_id) VALUES ($1, $2, $3, $4)",
        )
        .bind(referral_id)
        .bind(domain)
        .bind(sealed)
        .bind(key_id)
        .execute(&mut *c)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    pub async fn insert_transition(tx: &mut Tx, t: &TransitionRow) -> Result<(), DbError> {
        on_backend!(tx.conn(), c => sqlx::query(
            "INSERT INTO referral_transitions (transition_id, referral_id, from_status, to_status, \
             actor_user_id, actor_structure_id, refusal_reason, note, note_key, occurred_at_us) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&t.transition_id)
        .bind(&t.referral_id)
        .bind(&t.from_status)
        .bind(&t.to_status)
        .bind(&t.actor_user_id)
        .bind(&t.actor_structure_id)
        .bind(&t.refusal_reason)
        .bind(&t.note)
        .bind(&t.note_key)
        .bind(t.occurred_at_us)
        .execute(&mut *c)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    pub async fn insert_message(tx: &mut Tx, m: &MessageRow) -> Result<(), DbError> {
        on_backend!(tx.conn(), c => sqlx::query(
            "INSERT INTO referral_messages (message_id, referral_id, author_user_id, author_structure_id, \
             body, body_key, posted_at_us) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&m.message_id)
        .bind(&m.referral_id)
        .bind(&m.author_user_id)
        .bind(&m.author_structure_id)
        .bind(&m.body)
        .bind(&m.body_key)
        .bind(m.posted_at_us)
        .execute(&mut *c)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// Applies `m` if the referral is still in `m.from`; false if another
    /// move got there first.
    pub async fn apply_move(tx: &mut Tx, m: &Move<'_>) -> Result<bool, DbError> {
        let done = on_backend!(tx.conn(), c => sqlx::query(
            "UPDATE referrals SET status = $1, refusal_reason = $2, updated_at_us = $3, \
             first_answered_at_us = CASE WHEN $4 AND first_answered_at_us IS NULL THEN $3 ELSE first_answered_at_us END, \
             closed_at_us = CASE WHEN $5 THEN $3 ELSE closed_at_us END \
             WHERE referral_id = $6 AND status = $7",
        )
        .bind(m.to)
        .bind(m.refusal_reason)
        .bind(m.at_us)
        .bind(m.first_answer)
        .bind(m.closes)
        .bind(m.referral_id)
        .bind(m.from)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(done == 1)
    }

    /// Marks the reminder sent, if it was not already.
    pub async fn mark_reminded(
        tx: &mut Tx,
        referral_id: &str,
        at_us: i64,
    ) -> Result<bool, DbError> {
        let done = on_backend!(tx.conn(), c => sqlx::query(
            "UPDATE referrals SET reminded_at_us = $1, updated_at_us = $1 \
             WHERE referral_id = $2 AND reminded_at_us IS NULL AND status = 'envoyee'",
        )
        .bind(at_us)
        .bind(referral_id)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(done == 1)
    }

    pub async fn touch(tx: &mut Tx, referral_id: &str, at_us: i64) -> Result<(), DbError> {
        on_backend!(tx.conn(), c => sqlx::query(
            "UPDATE referrals SET updated_at_us = $1 WHERE referral_id = $2",
        )
        .bind(at_us)
        .bind(referral_id)
        .execute(&mut *c)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    pub async fn get(&self, referral_id: &str) -> Result<Option<ReferralRow>, DbError> {
        let sql = format!("SELECT {COLUMNS} FROM referrals WHERE referral_id = $1");
        let mut h = self.db.acquire().await?;
        Ok(
            on_backend!(h.conn(), c => sqlx::query_as::<_, ReferralRow>(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(referral_id)
            .fetch_optional(&mut *c)
            .await)?,
        )
    }

    pub async fn get_in(tx: &mut Tx, referral_id: &str) -> Result<Option<ReferralRow>, DbError> {
        let sql = format!("SELECT {COLUMNS} FROM referrals WHERE referral_id = $1");
        Ok(
            on_backend!(tx.conn(), c => sqlx::query_as::<_, ReferralRow>(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(referral_id)
            .fetch_optional(&mut *c)
            .await)?,
        )
    }

    /// Newest first.
    pub async fn list(&self, f: &Filter<'_>) -> Result<Vec<ReferralRow>, DbError> {
        let mut clauses: Vec<String> = Vec::new();
        let mut binds: Vec<&str> = Vec::new();
        if let Some(s) = f.structure_id {
            binds.push(s);
            let n = binds.len();
            clauses.push(match (f.sent, f.received) {
                (true, false) => format!("sender_structure_id = ${n}"),
                (false, true) => format!("target_structure_id = ${n}"),
                _ => format!("(sender_structure_id = ${n} OR target_structure_id = ${n})"),
            });
        }
        for (column, value) in [
            ("status =", f.status),
            ("person_id =", f.person_id),
            ("referral_id <", f.before),
        ] {
            if let Some(v) = value {
                binds.push(v);
                clauses.push(format!("{column} ${}", binds.len()));
            }
        }
        let filter = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        };
        let sql = format!(
            "SELECT {COLUMNS} FROM referrals {filter} ORDER BY referral_id DESC LIMIT {}",
            f.limit
        );
        let mut h = self.db.acquire().await?;
        Ok(on_backend!(h.conn(), c => {
            let mut q = sqlx::query_as::<_, ReferralRow>(sqlx::AssertSqlSafe(sql.as_str()));
            for b in &binds {
                q = q.bind(*b);
            }
            q.fetch_all(&mut *c).await
        })?)
    }

    /// Oldest first, after `after`.
    pub async fn transitions(
        &self,
        referral_id: &str,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<TransitionRow>, DbError> {
        let mut h = self.db.acquire().await?;
        Ok(
            on_backend!(h.conn(), c => sqlx::query_as::<_, TransitionRow>(
            "SELECT transition_id, referral_id, from_status, to_status, actor_user_id, actor_structure_id, \
             refusal_reason, note, note_key, occurred_at_us FROM referral_transitions \
             WHERE referral_id = $1 AND transition_id > $2 ORDER BY transition_id LIMIT $3",
        )
        .bind(referral_id)
        .bind(after.unwrap_or(""))
        .bind(limit)
        .fetch_all(&mut *c)
        .await)?,
        )
    }

    /// Oldest first, after `after`.
    pub async fn messages(
        &self,
        referral_id: &str,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<MessageRow>, DbError> {
        let mut h = self.db.acquire().await?;
        Ok(on_backend!(h.conn(), c => sqlx::query_as::<_, MessageRow>(
            "SELECT message_id, referral_id, author_user_id, author_structure_id, body, body_key, posted_at_us \
             FROM referral_messages WHERE referral_id = $1 AND message_id > $2 ORDER BY message_id LIMIT $3",
        )
        .bind(referral_id)
        .bind(after.unwrap_or(""))
        .bind(limit)
        .fetch_all(&mut *c)
        .await)?)
    }

    pub async fn domains(&self, referral_id: &str) -> Result<Vec<DomainRow>, DbError> {
        let mut h = self.db.acquire().await?;
        Ok(on_backend!(h.conn(), c => sqlx::query_as::<_, DomainRow>(
            "SELECT domain, sealed, key_id FROM referral_diagnostic_domains WHERE referral_id = $1 ORDER BY domain",
        )
        .bind(referral_id)
        .fetch_all(&mut *c)
        .await)?)
    }

    /// Referrals whose reminder is due (sent, no answer, not reminded yet).
    pub async fn due_reminders(&self, now_us: i64, limit: i64) -> Result<Vec<String>, DbError> {
        let mut h = self.db.acquire().await?;
        let rows: Vec<(String,)> = on_backend!(h.conn(), c => sqlx::query_as(
            "SELECT referral_id FROM referrals WHERE status = 'envoyee' AND reminded_at_us IS NULL \
             AND remind_at_us <= $1 ORDER BY remind_at_us LIMIT $2",
        )
        .bind(now_us)
        .bind(limit)
        .fetch_all(&mut *c)
        .await)?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// Referrals past their expiry without a decision.
    pub async fn due_expiries(&self, now_us: i64, limit: i64) -> Result<Vec<String>, DbError> {
        let mut h = self.db.acquire().await?;
        let rows: Vec<(String,)> = on_backend!(h.conn(), c => sqlx::query_as(
            "SELECT referral_id FROM referrals WHERE status IN ('envoyee', 'a_l_etude') \
             AND expires_at_us <= $1 ORDER BY expires_at_us LIMIT $2",
        )
        .bind(now_us)
        .bind(limit)
        .fetch_all(&mut *c)
        .await)?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// Does the directory hold `service_id`, for which structure, and is it
    /// archived?
    pub async fn service_structure(
        &self,
        service_id: &str,
    ) -> Result<Option<(String, bool)>, DbError> {
        let mut h = self.db.acquire().await?;
        let row: Option<(String, Option<i64>)> = on_backend!(h.conn(), c => sqlx::query_as(
            "SELECT structure_id, archived_at_us FROM services WHERE service_id = $1",
        )
        .bind(service_id)
        .fetch_optional(&mut *c)
        .await)?;
        Ok(row.map(|r| (r.0, r.1.is_some())))
    }

    /// Removes every referral of an erased person and what hangs on them.
    pub async fn erase_person(tx: &mut Tx, person_id: &str) -> Result<u64, DbError> {
        let mut removed = 0;
        for sql in [
            "DELETE FROM referral_diagnostic_domains WHERE referral_id IN (SELECT referral_id FROM referrals WHERE person_id = $1)",
            "DELETE FROM referral_transitions WHERE referral_id IN (SELECT referral_id FROM referrals WHERE person_id = $1)",
            "DELETE FROM referral_messages WHERE referral_id IN (SELECT referral_id FROM referrals WHERE person_id = $1)",
            "DELETE FROM referrals WHERE person_id = $1",
        ] {
            removed = on_backend!(tx.conn(), c => sqlx::query(sql)
                .bind(person_id)
                .execute(&mut *c)
                .await
                .map(|r| r.rows_affected()))?;
        }
        Ok(removed)
    }
}
