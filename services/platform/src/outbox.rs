//! Transactional outbox: a service writes its event in the transaction that
//! changes its state ([`enqueue`]); the [`Relay`] publishes committed rows in
//! batches with `Nats-Msg-Id` = event id and deletes them once JetStream
//! acknowledged them. A crash anywhere re-publishes at worst, and JetStream's
//! duplicate window plus the consumers' inbox absorb the repeat.

use std::time::Duration;

use async_nats::jetstream::message::PublishMessage;
use bytes::Bytes;
use futures::future::join_all;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::bus::{Bus, CloudEvent};
use crate::db::{Db, DbError, Tx, from_us, now_us};
use crate::on_backend;
use crate::shutdown::Shutdown;

/// An event about to be published.
#[derive(Debug, Clone)]
pub struct Event {
    /// UUIDv7: `ce-id` and `Nats-Msg-Id`.
    pub id: Uuid,
    /// NATS subject, `eva.<service>.<aggregate>.<event>` or a partner's.
    pub subject: String,
    /// `ce-type`; the subject without any routing part.
    pub event_type: String,
    /// `ce-source`, e.g. `/eva/identity`.
    pub source: String,
    /// `ce-subject`: the aggregate's id.
    pub aggregate_id: Option<String>,
    /// Protobuf body from `proto/eva/<service>/v1/events.proto`.
    pub payload: Vec<u8>,
}

impl Event {
    /// An event whose type is its subject, from `service`.
    pub fn new(
        service: &str,
        subject: impl Into<String>,
        aggregate_id: impl Into<Option<String>>,
        message: &impl prost::Message,
    ) -> Self {
        let subject = subject.into();
        Self {
            id: Uuid::now_v7(),
            event_type: subject.clone(),
            subject,
            source: format!("/eva/{service}"),
            aggregate_id: aggregate_id.into(),
            payload: message.encode_to_vec(),
        }
    }
}

/// Writes `event` in `tx`; it is published once `tx` commits.
pub async fn enqueue(tx: &mut Tx, event: &Event) -> Result<(), DbError> {
    let traceparent = crate::telemetry::propagation::current_traceparent();
    on_backend!(tx.conn(), c => sqlx::query(
        "INSERT INTO eva_outbox (event_id, subject, event_type, source, ce_subject, occurred_at_us, traceparent, payload) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(event.id.to_string())
    .bind(&event.subject)
    .bind(&event.event_type)
    .bind(&event.source)
    .bind(&event.aggregate_id)
    .bind(now_us())
    .bind(&traceparent)
    .bind(&event.payload)
    .execute(&mut *c)
    .await
    .map(|_| ()))?;
    tx.wrote_outbox();
    Ok(())
}

#[derive(sqlx::FromRow)]
struct Row {
    seq: i64,
    event_id: String,
    subject: String,
    event_type: String,
    source: String,
    ce_subject: Option<String>,
    occurred_at_us: i64,
    traceparent: Option<String>,
    payload: Vec<u8>,
}

/// Publishes a service's outbox.
pub struct Relay {
    db: Db,
    bus: Bus,
    batch: usize,
    poll: Duration,
}

/// What one pass over the outbox did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    pub published: usize,
    pub failed: usize,
}

impl Relay {
    pub fn new(db: Db, bus: Bus, batch: usize, poll: Duration) -> Self {
        Self {
            db,
            bus,
            batch,
            poll,
        }
    }

    /// Publishes until shutdown; wakes on local commits, else polls.
    pub async fn run(self, shutdown: Shutdown) {
        let signal = self.db.outbox_signal();
        let mut failures = 0u32;
        loop {
            // Register before draining so a commit during the pass is not missed.
            let notified = signal.notified();
            let pass = self.drain().await;
            let wait = match pass {
                Ok(p) if p.failed == 0 => {
                    failures = 0;
                    self.poll
                }
                Ok(p) => {
                    failures += 1;
                    tracing::warn!(
                        failed = p.failed,
                        "outbox relay: some events not acknowledged"
                    );
                    backoff(failures)
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(error = %e, "outbox relay: database error");
                    backoff(failures)
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = notified, if failures == 0 => {},
                _ = tokio::time::sleep(wait) => {},
            }
        }
        // Last pass so events of the final requests leave before the process.
        let _ = tokio::time::timeout(Duration::from_secs(5), self.drain()).await;
    }

    /// Publishes every committed row, batch after batch, until the outbox is
    /// empty or a batch is not fully acknowledged.
    pub async fn drain(&self) -> Result<Pass, DbError> {
        let mut total = Pass::default();
        loop {
            let pass = self.publish_batch().await?;
            total.published += pass.published;
            total.failed += pass.failed;
            if pass.failed > 0 || pass.published < self.batch {
                return Ok(total);
            }
        }
    }

    async fn publish_batch(&self) -> Result<Pass, DbError> {
        let mut handle = self.db.acquire().await?;
        let rows: Vec<Row> = on_backend!(handle.conn(), c => sqlx::query_as::<_, Row>(
            "SELECT seq, event_id, subject, event_type, source, ce_subject, occurred_at_us, traceparent, payload \
             FROM eva_outbox ORDER BY seq LIMIT $1",
        )
        .bind(self.batch as i64)
        .fetch_all(&mut *c)
        .await)?;
        drop(handle);
        if rows.is_empty() {
            return Ok(Pass::default());
        }
        let started = std::time::Instant::now();
        // Send the whole batch, then wait for the acks: one round trip
        // (and, with `sync_interval: always`, one fsync) per batch.
        let mut pending = Vec::with_capacity(rows.len());
        for row in &rows {
            let ce = CloudEvent {
                id: row.event_id.clone(),
                source: row.source.clone(),
                event_type: row.event_type.clone(),
                time: from_us(row.occurred_at_us)
                    .format(&Rfc3339)
                    .unwrap_or_default(),
                subject: row.ce_subject.clone(),
            };
            let publish = PublishMessage::build()
                .payload(Bytes::from(row.payload.clone()))
                .headers(ce.to_headers(row.traceparent.as_deref()));
            match self
                .bus
                .jetstream()
                .send_publish(row.subject.clone(), publish)
                .await
            {
                Ok(ack) => pending.push(Some((row.seq, ack))),
                Err(e) => {
                    tracing::debug!(error = %e, "outbox publish not sent");
                    pending.push(None);
                    break;
                }
            }
        }
        let acks =
            join_all(pending.into_iter().flatten().map(|(seq, ack)| async move {
                ack.await.map(|_| seq).map_err(|e| e.to_string())
            }))
            .await;
        let acked: Vec<i64> = acks
            .iter()
            .filter_map(|r| r.as_ref().ok().copied())
            .collect();
        let failed = rows.len() - acked.len();
        self.delete(&acked).await?;
        metrics::counter!("eva_outbox_published_total").increment(acked.len() as u64);
        metrics::histogram!("eva_outbox_batch_seconds").record(started.elapsed().as_secs_f64());
        Ok(Pass {
            published: acked.len(),
            failed,
        })
    }

    async fn delete(&self, seqs: &[i64]) -> Result<(), DbError> {
        if seqs.is_empty() {
            return Ok(());
        }
        let list = seqs
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        // The seqs are integers we read ourselves: safe to inline.
        let sql = format!("DELETE FROM eva_outbox WHERE seq IN ({list})");
        let mut handle = self.db.acquire().await?;
        on_backend!(handle.conn(), c => sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).execute(&mut *c).await.map(|_| ()))?;
        Ok(())
    }
}

/// Rows still waiting in the outbox: for tests, metrics and readiness.
pub async fn pending(db: &Db) -> Result<i64, DbError> {
    let mut h = db.acquire().await?;
    let n: (i64,) = on_backend!(h.conn(), c => sqlx::query_as("SELECT COUNT(*) FROM eva_outbox")
        .fetch_one(&mut *c)
        .await)?;
    Ok(n.0)
}

fn backoff(failures: u32) -> Duration {
    let ms = 100u64.saturating_mul(1 << failures.min(6));
    Duration::from_millis(ms.min(5_000))
}
