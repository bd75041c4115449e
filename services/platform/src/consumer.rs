//! Idempotent consumers: a durable JetStream pull consumer whose every event
//! is applied by a [`Projection`] inside one transaction that also records
//! "this consumer applied this event" (the inbox). A redelivery finds the
//! inbox row and is only acknowledged; nothing is applied twice.
//!
//! Events already waiting are applied in batches (one transaction for up to
//! [`BATCH`] events), so a consumer catching up commits once per batch; a
//! batch that fails is rolled back and its events applied one by one, so a
//! single bad event is dead-lettered alone.

use std::future::Future;
use std::time::Duration;

use async_nats::jetstream::consumer::{self, AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::{AckKind, Message};
use bytes::Bytes;
use futures::StreamExt;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use uuid::Uuid;

use crate::bus::{Bus, BusError, CloudEvent, StreamSpec};
use crate::db::{Db, DbError, Params, Tx, now_us};
use crate::on_backend;
use crate::shutdown::Shutdown;

/// An event as a consumer sees it.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub id: Uuid,
    pub nats_subject: String,
    pub event_type: String,
    pub source: String,
    pub aggregate_id: Option<String>,
    pub time: OffsetDateTime,
    pub payload: Bytes,
    /// Position in the stream, for ordering-sensitive projections.
    pub stream_sequence: u64,
    /// How many times JetStream delivered it (1 the first time).
    pub delivered: i64,
}

impl Envelope {
    /// Decodes the protobuf body; a body that does not decode is permanent.
    pub fn decode<M: prost::Message + Default>(&self) -> Result<M, ApplyError> {
        M::decode(self.payload.clone()).map_err(|e| {
            ApplyError::Permanent(format!("{}: undecodable body: {e}", self.event_type))
        })
    }
}

/// Why a projection could not apply an event.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The event can never be applied: it is kept as a dead letter.
    #[error("permanent: {0}")]
    Permanent(String),
    /// Try again later (database busy, a dependency down).
    #[error("transient: {0}")]
    Transient(String),
}

impl From<DbError> for ApplyError {
    fn from(e: DbError) -> Self {
        ApplyError::Transient(e.to_string())
    }
}

impl From<sqlx::Error> for ApplyError {
    fn from(e: sqlx::Error) -> Self {
        ApplyError::Transient(e.to_string())
    }
}

/// A service's read model fed by events. `apply` runs inside the
/// transaction that records the inbox row; it must not commit.
pub trait Projection: Send + Sync + 'static {
    fn apply<'a>(
        &'a self,
        tx: &'a mut Tx,
        event: &'a Envelope,
    ) -> impl Future<Output = Result<(), ApplyError>> + Send + 'a;

    /// Applies events not seen before, in stream order, in one transaction.
    /// Projections that can merge work across events (counters) override it.
    fn apply_batch<'a>(
        &'a self,
        tx: &'a mut Tx,
        events: &'a [Envelope],
    ) -> impl Future<Output = Result<(), ApplyError>> + Send + 'a {
        async move {
            for event in events {
                self.apply(tx, event).await?;
            }
            Ok(())
        }
    }
}

/// Most events applied in one transaction.
pub const BATCH: usize = 256;
/// Messages asked of the server per pull request.
const PULL: usize = 4 * BATCH;

/// Which events a consumer reads, under which durable name.
#[derive(Debug, Clone)]
pub struct Subscription {
    pub stream: StreamSpec,
    /// `<consuming-service>-<purpose>`.
    pub durable: String,
    pub filter_subjects: Vec<String>,
    pub max_deliver: i64,
    pub ack_wait: Duration,
}

impl Subscription {
    pub fn new(stream: StreamSpec, durable: impl Into<String>, filters: &[&str]) -> Self {
        Self {
            stream,
            durable: durable.into(),
            filter_subjects: filters.iter().map(|s| s.to_string()).collect(),
            max_deliver: 20,
            ack_wait: Duration::from_secs(30),
        }
    }
}

/// What happened to one delivered message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    Duplicate,
    DeadLettered,
    Retry,
}

/// Creates (or finds) the durable consumer, then applies events until
/// shutdown. Returns an error only when the consumer cannot be set up.
pub async fn run<P: Projection>(
    bus: Bus,
    db: Db,
    sub: Subscription,
    projection: P,
    shutdown: Shutdown,
) -> Result<(), BusError> {
    let consumer = ensure(&bus, &sub).await?;
    tracing::info!(consumer = %sub.durable, "consumer started");
    loop {
        let messages = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            // Pull ahead: while one batch is applied, the next ones are
            // already on their way and buffered by the client.
            m = consumer
                .stream()
                .max_messages_per_batch(PULL)
                .heartbeat(Duration::from_secs(15))
                .messages() => match m {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(consumer = %sub.durable, error = %e, "consumer stream failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            },
        };
        let mut chunks = messages.ready_chunks(BATCH);
        'pull: loop {
            let next = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                n = chunks.next() => n,
            };
            let Some(chunk) = next else { break };
            let mut batch = Vec::with_capacity(chunk.len());
            let mut failed = false;
            for item in chunk {
                match item {
                    Ok(msg) => batch.push(msg),
                    Err(e) => {
                        tracing::warn!(consumer = %sub.durable, error = %e, "consumer message error");
                        failed = true;
                    }
                }
            }
            handle_batch(&db, &sub, &projection, batch).await;
            // Heartbeat loss after a server restart: open a new pull.
            if failed {
                break 'pull;
            }
        }
        if shutdown.is_triggered() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn ensure(
    bus: &Bus,
    sub: &Subscription,
) -> Result<consumer::Consumer<pull::Config>, BusError> {
    let stream = bus.ensure_stream(&sub.stream).await?;
    stream
        .get_or_create_consumer(
            &sub.durable,
            pull::Config {
                durable_name: Some(sub.durable.clone()),
                filter_subjects: sub.filter_subjects.clone(),
                deliver_policy: DeliverPolicy::All,
                ack_policy: AckPolicy::Explicit,
                ack_wait: sub.ack_wait,
                max_deliver: sub.max_deliver,
                max_ack_pending: 4 * PULL as i64,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| BusError::Consumer {
            consumer: sub.durable.clone(),
            reason: e.to_string(),
        })
}

/// Applies a batch in one transaction; on any failure, one by one.
async fn handle_batch<P: Projection>(
    db: &Db,
    sub: &Subscription,
    projection: &P,
    batch: Vec<Message>,
) {
    if batch.len() <= 1 {
        for msg in batch {
            handle(db, sub, projection, msg).await;
        }
        return;
    }
    let consumer = sub.durable.as_str();
    let envelopes: Option<Vec<Envelope>> = batch.iter().map(|m| envelope(m).ok()).collect();
    let applied = match &envelopes {
        Some(envelopes) => {
            let span = tracing::info_span!("event.apply_batch", consumer, events = envelopes.len());
            try_apply_batch(db, consumer, projection, envelopes)
                .instrument(span)
                .await
        }
        None => Err(ApplyError::Permanent(
            "event without CloudEvents headers".into(),
        )),
    };
    match applied {
        Ok(fresh) => {
            // Acks go out together; one not sent only means a redelivery
            // that the inbox absorbs.
            let acks = futures::future::join_all(batch.iter().map(|m| m.ack())).await;
            if let Some(Err(e)) = acks.into_iter().find(Result::is_err) {
                tracing::debug!(consumer, error = %e, "ack not sent");
            }
            let duplicates = (batch.len() - fresh) as u64;
            metrics::counter!("eva_consumer_events_total", "consumer" => consumer.to_owned(), "outcome" => "applied").increment(fresh as u64);
            metrics::counter!("eva_consumer_events_total", "consumer" => consumer.to_owned(), "outcome" => "duplicate").increment(duplicates);
        }
        Err(e) => {
            tracing::debug!(consumer, error = %e, "batch not applied; applying its events one by one");
            for msg in batch {
                handle(db, sub, projection, msg).await;
            }
        }
    }
}

/// Records the inbox rows of `envelopes` and applies the new ones, in one
/// transaction. Returns how many were new.
async fn try_apply_batch<P: Projection>(
    db: &Db,
    consumer: &str,
    projection: &P,
    envelopes: &[Envelope],
) -> Result<usize, ApplyError> {
    let mut tx = db.begin().await?;
    // One statement records the whole batch and says which events are new
    // (an event delivered twice in one batch is recorded once).
    let mut unique = std::collections::HashSet::new();
    let ids: Vec<String> = envelopes
        .iter()
        .filter(|e| unique.insert(e.id))
        .map(|e| e.id.to_string())
        .collect();
    let sql = format!(
        "INSERT INTO eva_inbox (consumer, event_id, applied_at_us) VALUES {} \
         ON CONFLICT (consumer, event_id) DO NOTHING RETURNING event_id",
        Params::of(tx.backend()).values(ids.len(), 3, 0)
    );
    let now = now_us();
    let inserted: std::collections::HashSet<String> = on_backend!(tx.conn(), c => {
        let mut q = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql.as_str()));
        for id in &ids {
            q = q.bind(consumer).bind(id.as_str()).bind(now);
        }
        q.fetch_all(&mut *c).await
    })?
    .into_iter()
    .collect();
    let mut seen = std::collections::HashSet::new();
    let fresh: Vec<Envelope> = envelopes
        .iter()
        .filter(|e| seen.insert(e.id) && inserted.contains(&e.id.to_string()))
        .cloned()
        .collect();
    projection.apply_batch(&mut tx, &fresh).await?;
    tx.commit().await?;
    Ok(fresh.len())
}

async fn handle<P: Projection>(
    db: &Db,
    sub: &Subscription,
    projection: &P,
    msg: Message,
) -> Outcome {
    let consumer = sub.durable.as_str();
    let envelope = match envelope(&msg) {
        Ok(e) => e,
        Err(reason) => {
            tracing::warn!(consumer, subject = %msg.subject, reason, "event without CloudEvents headers; terminated");
            let _ = msg.ack_with(AckKind::Term).await;
            return Outcome::DeadLettered;
        }
    };
    let span = tracing::info_span!("event.apply", consumer, event_type = %envelope.event_type, event_id = %envelope.id);
    if let Some(h) = &msg.headers {
        let _ = span.set_parent(crate::telemetry::propagation::extract_nats(h));
    }
    let mut outcome = apply_once(db, consumer, projection, &envelope)
        .instrument(span)
        .await;
    // JetStream stops delivering after `max_deliver`: keep the event as a
    // dead letter rather than losing it silently.
    if outcome == Outcome::Retry && envelope.delivered >= sub.max_deliver {
        let reason = format!("still failing after {} deliveries", envelope.delivered);
        tracing::error!(consumer, event_id = %envelope.id, "event given up; kept as dead letter");
        if dead_letter(db, consumer, &envelope, &reason).await.is_ok() {
            outcome = Outcome::DeadLettered;
        }
    }
    let ack = match outcome {
        Outcome::Applied | Outcome::Duplicate | Outcome::DeadLettered => AckKind::Ack,
        Outcome::Retry => AckKind::Nak(Some(retry_delay(envelope.delivered))),
    };
    if let Err(e) = msg.ack_with(ack).await {
        // Not fatal: the event comes back and the inbox absorbs it.
        tracing::debug!(consumer, error = %e, "ack not sent");
    }
    metrics::counter!("eva_consumer_events_total", "consumer" => consumer.to_owned(), "outcome" => outcome_label(outcome)).increment(1);
    outcome
}

/// µs since the epoch of an event's own time, else of its CloudEvents time.
pub fn micros(t: Option<prost_types::Timestamp>, event: &Envelope) -> i64 {
    t.map(|t| crate::db::timestamp_us(&t))
        .unwrap_or_else(|| (event.time.unix_timestamp_nanos() / 1_000) as i64)
}

/// Applies `envelope` unless this consumer already did, in one transaction.
pub async fn apply_once<P: Projection>(
    db: &Db,
    consumer: &str,
    projection: &P,
    envelope: &Envelope,
) -> Outcome {
    match try_apply(db, consumer, projection, envelope).await {
        Ok(o) => o,
        Err(ApplyError::Transient(reason)) => {
            tracing::warn!(consumer, event_id = %envelope.id, reason, "event not applied; will retry");
            Outcome::Retry
        }
        Err(ApplyError::Permanent(reason)) => {
            tracing::error!(consumer, event_id = %envelope.id, reason, "event can never be applied; kept as dead letter");
            match dead_letter(db, consumer, envelope, &reason).await {
                Ok(()) => Outcome::DeadLettered,
                Err(_) => Outcome::Retry,
            }
        }
    }
}

async fn try_apply<P: Projection>(
    db: &Db,
    consumer: &str,
    projection: &P,
    envelope: &Envelope,
) -> Result<Outcome, ApplyError> {
    let mut tx = db.begin().await?;
    let inserted = on_backend!(tx.conn(), c => sqlx::query(
        "INSERT INTO eva_inbox (consumer, event_id, applied_at_us) VALUES ($1, $2, $3) \
         ON CONFLICT (consumer, event_id) DO NOTHING",
    )
    .bind(consumer)
    .bind(envelope.id.to_string())
    .bind(now_us())
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    if inserted == 0 {
        return Ok(Outcome::Duplicate);
    }
    projection.apply(&mut tx, envelope).await?;
    tx.commit().await?;
    Ok(Outcome::Applied)
}

async fn dead_letter(
    db: &Db,
    consumer: &str,
    envelope: &Envelope,
    reason: &str,
) -> Result<(), DbError> {
    let mut tx = db.begin().await?;
    let id = envelope.id.to_string();
    on_backend!(tx.conn(), c => {
        sqlx::query(
            "INSERT INTO eva_dead_letters (consumer, event_id, subject, error, payload, recorded_at_us) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (consumer, event_id) DO NOTHING",
        )
        .bind(consumer)
        .bind(&id)
        .bind(&envelope.nats_subject)
        .bind(reason)
        .bind(envelope.payload.to_vec())
        .bind(now_us())
        .execute(&mut *c)
        .await?;
        sqlx::query(
            "INSERT INTO eva_inbox (consumer, event_id, applied_at_us) VALUES ($1, $2, $3) \
             ON CONFLICT (consumer, event_id) DO NOTHING",
        )
        .bind(consumer)
        .bind(&id)
        .bind(now_us())
        .execute(&mut *c)
        .await
        .map(|_| ())
    })?;
    tx.commit().await
}

/// The envelope of a JetStream message: its CloudEvents headers and body.
pub fn envelope(msg: &Message) -> Result<Envelope, &'static str> {
    let headers = msg.headers.as_ref().ok_or("no headers")?;
    let ce = CloudEvent::from_headers(headers).ok_or("missing ce-* headers")?;
    let id = Uuid::parse_str(&ce.id).map_err(|_| "ce-id is not a UUID")?;
    let time =
        OffsetDateTime::parse(&ce.time, &Rfc3339).unwrap_or_else(|_| OffsetDateTime::now_utc());
    let (stream_sequence, delivered) = msg
        .info()
        .map(|i| (i.stream_sequence, i.delivered))
        .unwrap_or((0, 1));
    Ok(Envelope {
        id,
        nats_subject: msg.subject.to_string(),
        event_type: ce.event_type,
        source: ce.source,
        aggregate_id: ce.subject,
        time,
        payload: msg.payload.clone(),
        stream_sequence,
        delivered,
    })
}

/// How long "this event was applied" rows are kept. Redeliveries and relay
/// re-publications arrive within minutes; a week is a wide margin.
pub const INBOX_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Deletes inbox rows older than [`INBOX_RETENTION`], hourly, until shutdown.
pub async fn prune_inbox(db: Db, shutdown: Shutdown) {
    let mut every = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        let cutoff = now_us() - INBOX_RETENTION.as_micros() as i64;
        let pruned = async {
            let mut h = db.acquire().await?;
            on_backend!(h.conn(), c => sqlx::query("DELETE FROM eva_inbox WHERE applied_at_us < $1")
                .bind(cutoff)
                .execute(&mut *c)
                .await
                .map(|r| r.rows_affected()))
            .map_err(DbError::from)
        }
        .await;
        match pruned {
            Ok(n) if n > 0 => tracing::info!(rows = n, "pruned old inbox rows"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "inbox pruning failed"),
        }
    }
}

fn retry_delay(delivered: i64) -> Duration {
    let exp = delivered.clamp(1, 8) as u32;
    Duration::from_millis((250u64 << exp).min(30_000))
}

fn outcome_label(o: Outcome) -> &'static str {
    match o {
        Outcome::Applied => "applied",
        Outcome::Duplicate => "duplicate",
        Outcome::DeadLettered => "dead_letter",
        Outcome::Retry => "retry",
    }
}
