//! Transactional outbox: a service writes its event in the transaction that
//! changes its state ([`enqueue`]); the [`Relay`] publishes committed rows in
//! batches with `Nats-Msg-Id` = event id and deletes them once JetStream
//! acknowledged them. A crash anywhere re-publishes at worst, and JetStream's
//! duplicate window plus the consumers' inbox absorb the repeat.
//!
//! Every published message carries its row's seq in [`OUTBOX_SEQ_HEADER`]:
//! a backup tells by it which messages come from writes its database copy
//! holds (see [`crate::backup`]).

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

/// Header carrying the outbox row's seq (`eva_outbox.seq`, increasing per
/// service database) on every message the relay publishes.
pub const OUTBOX_SEQ_HEADER: &str = "Eva-Outbox-Seq";

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
    /// Protobuf body from `proto/eva/<service>/v1/events.proto`, or its JSON
    /// form for a partner who chose JSON.
    pub payload: Vec<u8>,
    /// `content-type` when the body is not protobuf.
    pub content_type: Option<String>,
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
            content_type: None,
        }
    }
}

/// Writes `event` in `tx`; it is published once `tx` commits.
pub async fn enqueue(tx: &mut Tx, event: &Event) -> Result<(), DbError> {
    let traceparent = crate::telemetry::propagation::current_traceparent();
    on_backend!(tx.conn(), c => sqlx::query(
        "INSERT INTO eva_outbox (event_id, subject, event_type, source, ce_subject, occurred_at_us, traceparent, payload, content_type) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(event.id.to_string())
    .bind(&event.subject)
    .bind(&event.event_type)
    .bind(&event.source)
    .bind(&event.aggregate_id)
    .bind(now_us())
    .bind(&traceparent)
    .bind(&event.payload)
    .bind(&event.content_type)
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
    content_type: Option<String>,
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
    /// empty or a batch is not fully acknowledged. Pipelined: while JetStream
    /// acknowledges batch k, batch k+1 is read, and batch k's rows are
    /// deleted while batch k+1 is sent. Rows are deleted only once acked.
    pub async fn drain(&self) -> Result<Pass, DbError> {
        let mut total = Pass::default();
        let mut rows = self.read_after(0).await?;
        let mut deleting: Option<tokio::task::JoinHandle<Result<(), DbError>>> = None;
        while !rows.is_empty() {
            let started = std::time::Instant::now();
            let full = rows.len() == self.batch;
            let last = rows.last().map(|r| r.seq).unwrap_or_default();
            let count = rows.len();
            let acks = self.send(rows).await;
            let (acked, next) = tokio::join!(join_all(acks), async {
                if full {
                    self.read_after(last).await
                } else {
                    Ok(Vec::new())
                }
            });
            let acked: Vec<i64> = acked.into_iter().flatten().collect();
            let failed = count - acked.len();
            if let Some(previous) = deleting.take() {
                previous.await.unwrap_or(Ok(()))?;
            }
            metrics::counter!("eva_outbox_published_total").increment(acked.len() as u64);
            metrics::histogram!("eva_outbox_batch_seconds").record(started.elapsed().as_secs_f64());
            total.published += acked.len();
            total.failed += failed;
            let db = self.db.clone();
            deleting = Some(tokio::spawn(async move { delete(&db, &acked).await }));
            if failed > 0 {
                break;
            }
            rows = next?;
        }
        if let Some(last) = deleting {
            last.await.unwrap_or(Ok(()))?;
        }
        Ok(total)
    }

    async fn read_after(&self, after: i64) -> Result<Vec<Row>, DbError> {
        let mut handle = self.db.acquire().await?;
        Ok(on_backend!(handle.conn(), c => sqlx::query_as::<_, Row>(
            "SELECT seq, event_id, subject, event_type, source, ce_subject, occurred_at_us, traceparent, payload, content_type \
             FROM eva_outbox WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(after)
        .bind(self.batch as i64)
        .fetch_all(&mut *c)
        .await)?)
    }

    /// Sends a batch; each future resolves to the row's seq once acked.
    /// Stops sending at the first refusal (the rest is retried later).
    async fn send(
        &self,
        rows: Vec<Row>,
    ) -> Vec<impl std::future::Future<Output = Option<i64>> + use<>> {
        let mut pending = Vec::with_capacity(rows.len());
        for row in rows {
            let ce = CloudEvent {
                id: row.event_id,
                source: row.source,
                event_type: row.event_type,
                time: from_us(row.occurred_at_us)
                    .format(&Rfc3339)
                    .unwrap_or_default(),
                subject: row.ce_subject,
            };
            let mut headers = ce.to_headers(row.traceparent.as_deref());
            if let Some(ct) = &row.content_type {
                headers.insert("content-type", ct.as_str());
            }
            headers.insert(OUTBOX_SEQ_HEADER, row.seq.to_string().as_str());
            let publish = PublishMessage::build()
                .headers(headers)
                .payload(Bytes::from(row.payload));
            match self
                .bus
                .jetstream()
                .send_publish(row.subject, publish)
                .await
            {
                Ok(ack) => {
                    let seq = row.seq;
                    pending.push(async move { ack.await.ok().map(|_| seq) });
                }
                Err(e) => {
                    tracing::debug!(error = %e, "outbox publish not sent");
                    break;
                }
            }
        }
        pending
    }
}

async fn delete(db: &Db, seqs: &[i64]) -> Result<(), DbError> {
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
    let mut handle = db.acquire().await?;
    on_backend!(handle.conn(), c => sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).execute(&mut *c).await.map(|_| ()))?;
    Ok(())
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
