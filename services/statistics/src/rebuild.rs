//! Full rebuilds of the projections from the streams, while the current
//! figures keep answering.
//!
//! A rebuild opens a new generation in state `building`. From that moment
//! the live consumers apply every event to it as well as to the current
//! one; the rebuild reads each feed's stream from its first event up to the
//! last one stored when it began, into the new generation only. Events are
//! idempotent per generation, so those both paths apply are counted once.
//! When every feed has caught up, one transaction makes the new generation
//! current; the old one's rows are then deleted. A rebuild cut short by a
//! stop is abandoned at the next start.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use eva_platform::auth::{Role, require_role};
use eva_platform::bus::Bus;
use eva_platform::consumer::{ApplyError, Envelope, envelope};
use eva_platform::db::{DbError, Tx, now_us, to_timestamp};
use eva_platform::grpc::invalid_field;
use eva_platform::on_backend;
use eva_platform::outbox::{self, Event};
use eva_platform::shutdown::Shutdown;
use eva_proto::statistics::v1 as pb;
use futures::StreamExt;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::SERVICE;
use crate::feed::Feed;
use crate::store::Store;

/// Events applied per transaction by a rebuild.
const BATCH: usize = 512;

/// Every table that holds a generation's rows.
pub fn tables() -> Vec<&'static str> {
    let mut t = vec![];
    t.extend_from_slice(crate::store::TABLES);
    t.extend_from_slice(crate::structures::TABLES);
    t.extend_from_slice(crate::diagnostics::TABLES);
    t.extend_from_slice(crate::people::TABLES);
    t.extend_from_slice(crate::referrals::TABLES);
    t.extend_from_slice(crate::community::TABLES);
    t
}

/// A generation's row in `generations`.
#[derive(Debug, Clone, sqlx::FromRow)]
struct Generation {
    generation: i64,
    state: String,
    rebuild_id: String,
    started_at_us: i64,
    completed_at_us: Option<i64>,
    events_applied: i64,
}

impl Generation {
    fn to_proto(&self) -> pb::Rebuild {
        let state = match (self.state.as_str(), self.completed_at_us) {
            ("building", _) => "running",
            (_, Some(_)) => "completed",
            _ => "abandoned",
        };
        pb::Rebuild {
            rebuild_id: self.rebuild_id.clone(),
            state: state.into(),
            events_applied: self.events_applied,
            started_at: Some(to_timestamp(self.started_at_us)),
            completed_at: self.completed_at_us.map(to_timestamp),
        }
    }
}

const SELECT: &str = "SELECT gen AS generation, state, rebuild_id, started_at_us, completed_at_us, events_applied FROM generations";

/// Rebuilds: starts them, runs them, answers about them.
#[derive(Clone)]
pub struct Rebuilds {
    store: Store,
    bus: Bus,
    feeds: Arc<Vec<Arc<dyn Feed>>>,
    shutdown: Shutdown,
}

impl Rebuilds {
    pub fn new(store: Store, bus: Bus, feeds: Vec<Arc<dyn Feed>>, shutdown: Shutdown) -> Self {
        Self {
            store,
            bus,
            feeds: Arc::new(feeds),
            shutdown,
        }
    }

    /// At start: a generation left `building` by a stop is abandoned, and
    /// rows of retired generations still present are deleted.
    pub async fn recover(&self) -> Result<(), DbError> {
        let mut tx = self.store.db().begin().await?;
        let abandoned = on_backend!(tx.conn(), c => sqlx::query(
            "UPDATE generations SET state = 'retired' WHERE state = 'building'",
        )
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
        tx.commit().await?;
        if abandoned > 0 {
            tracing::warn!(
                generations = abandoned,
                "unfinished rebuild abandoned; start a new one"
            );
        }
        self.purge_retired().await
    }

    /// Starts a rebuild in the background and returns it.
    pub async fn start(&self) -> Result<pb::Rebuild, Status> {
        let mut tx = self.store.db().begin().await.map_err(internal)?;
        let running = on_backend!(tx.conn(), c => sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM generations WHERE state = 'building'",
        )
        .fetch_one(&mut *c)
        .await)
        .map_err(internal)?;
        if running > 0 {
            return Err(Status::failed_precondition(
                "une reconstruction est déjà en cours / a rebuild is already running",
            ));
        }
        let generation = on_backend!(tx.conn(), c => sqlx::query_scalar::<_, i64>(
            "SELECT COALESCE(MAX(gen), 0) + 1 FROM generations",
        )
        .fetch_one(&mut *c)
        .await)
        .map_err(internal)?;
        let row = Generation {
            generation,
            state: "building".into(),
            rebuild_id: Uuid::now_v7().to_string(),
            started_at_us: now_us(),
            completed_at_us: None,
            events_applied: 0,
        };
        on_backend!(tx.conn(), c => sqlx::query(
            "INSERT INTO generations (gen, state, rebuild_id, started_at_us) VALUES ($1, 'building', $2, $3)",
        )
        .bind(row.generation)
        .bind(&row.rebuild_id)
        .bind(row.started_at_us)
        .execute(&mut *c)
        .await
        .map(|_| ()))
        .map_err(internal)?;
        tx.commit().await.map_err(internal)?;
        tracing::info!(rebuild_id = %row.rebuild_id, generation, "rebuild started");
        let this = self.clone();
        let rebuild_id = row.rebuild_id.clone();
        self.shutdown.spawn(async move {
            match this.run(generation).await {
                Ok(Some(events)) => {
                    tracing::info!(%rebuild_id, events, "rebuild completed");
                }
                Ok(None) => tracing::info!(%rebuild_id, "rebuild stopped by shutdown"),
                Err(e) => tracing::error!(%rebuild_id, error = %e, "rebuild failed"),
            }
        });
        Ok(row.to_proto())
    }

    /// A rebuild by id.
    pub async fn get(&self, rebuild_id: &str) -> Result<Option<pb::Rebuild>, DbError> {
        let mut h = self.store.db().acquire().await?;
        let sql = format!("{SELECT} WHERE rebuild_id = $1");
        let row = on_backend!(h.conn(), c => sqlx::query_as::<_, Generation>(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(rebuild_id)
            .fetch_optional(&mut *c)
            .await)?;
        Ok(row.map(|g| g.to_proto()))
    }

    /// Reads every feed into `generation`, then makes it current. `None`
    /// when shutdown came first (the generation is abandoned at next start).
    async fn run(&self, generation: i64) -> Result<Option<i64>, RebuildError> {
        let mut applied = 0i64;
        for feed in self.feeds.iter() {
            match self.replay(feed.as_ref(), generation, &mut applied).await? {
                true => {}
                false => return Ok(None),
            }
        }
        self.complete(generation, applied).await?;
        self.purge_retired().await?;
        Ok(Some(applied))
    }

    /// Applies one feed's stream, from its first event to the last stored
    /// now, to `generation`. False when shutdown came first.
    async fn replay(
        &self,
        feed: &dyn Feed,
        generation: i64,
        applied: &mut i64,
    ) -> Result<bool, RebuildError> {
        let stream = self
            .bus
            .ensure_stream(&feed.stream())
            .await
            .map_err(|e| RebuildError::Bus(e.to_string()))?;
        let last = stream
            .get_info()
            .await
            .map_err(|e| RebuildError::Bus(e.to_string()))?
            .state
            .last_sequence;
        if last == 0 {
            return Ok(true);
        }
        // An ephemeral consumer without acks: the rebuild only reads.
        let mut consumer = stream
            .create_consumer(pull::Config {
                filter_subjects: feed.subjects().iter().map(|s| s.to_string()).collect(),
                deliver_policy: DeliverPolicy::All,
                ack_policy: AckPolicy::None,
                inactive_threshold: Duration::from_secs(120),
                ..Default::default()
            })
            .await
            .map_err(|e| RebuildError::Bus(e.to_string()))?;
        let pending = consumer
            .info()
            .await
            .map_err(|e| RebuildError::Bus(e.to_string()))?
            .num_pending;
        if pending == 0 {
            return Ok(true);
        }
        let messages = consumer
            .messages()
            .await
            .map_err(|e| RebuildError::Bus(e.to_string()))?;
        let mut chunks = messages.ready_chunks(BATCH);
        loop {
            let next = tokio::select! {
                _ = self.shutdown.cancelled() => return Ok(false),
                n = chunks.next() => n,
            };
            let Some(chunk) = next else {
                return Err(RebuildError::Bus("stream closed".into()));
            };
            let mut batch = Vec::with_capacity(chunk.len());
            let mut reached = false;
            for msg in chunk {
                let msg = msg.map_err(|e| RebuildError::Bus(e.to_string()))?;
                let Ok(info) = msg.info() else { continue };
                // Later events reach the new generation through the live
                // consumers already.
                if info.stream_sequence > last {
                    reached = true;
                    break;
                }
                reached |= info.stream_sequence == last || info.pending == 0;
                match envelope(&msg) {
                    Ok(e) => batch.push(e),
                    Err(reason) => tracing::warn!(reason, "event skipped by the rebuild"),
                }
            }
            *applied += self.apply(feed, generation, &batch).await? as i64;
            self.progress(generation, *applied).await?;
            if reached {
                return Ok(true);
            }
        }
    }

    /// Applies a batch to `generation` in one transaction; a batch that
    /// fails is applied event by event, skipping events that can never be
    /// applied (the live consumer dead-letters them the same way).
    async fn apply(
        &self,
        feed: &dyn Feed,
        generation: i64,
        batch: &[Envelope],
    ) -> Result<usize, RebuildError> {
        if batch.is_empty() {
            return Ok(0);
        }
        if self.apply_in_tx(feed, generation, batch).await.is_ok() {
            return Ok(batch.len());
        }
        let mut n = 0;
        for event in batch {
            let mut attempt = 0u32;
            loop {
                match self
                    .apply_in_tx(feed, generation, std::slice::from_ref(event))
                    .await
                {
                    Ok(()) => {
                        n += 1;
                        break;
                    }
                    Err(ApplyError::Permanent(reason)) => {
                        tracing::warn!(event_id = %event.id, reason, "event skipped by the rebuild");
                        break;
                    }
                    Err(ApplyError::Transient(reason)) if attempt < 20 => {
                        attempt += 1;
                        tracing::debug!(reason, "rebuild retrying an event");
                        tokio::time::sleep(Duration::from_millis(100 << attempt.min(5))).await;
                    }
                    Err(ApplyError::Transient(reason)) => {
                        return Err(RebuildError::Db(reason));
                    }
                }
            }
        }
        Ok(n)
    }

    async fn apply_in_tx(
        &self,
        feed: &dyn Feed,
        generation: i64,
        batch: &[Envelope],
    ) -> Result<(), ApplyError> {
        let mut tx = self.store.db().begin().await?;
        feed.apply(&mut tx, &[generation], batch).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn progress(&self, generation: i64, applied: i64) -> Result<(), DbError> {
        let mut tx = self.store.db().begin().await?;
        set_applied(&mut tx, generation, applied).await?;
        tx.commit().await
    }

    /// Makes `generation` current and says so on the bus, in one transaction.
    async fn complete(&self, generation: i64, applied: i64) -> Result<(), DbError> {
        let mut tx = self.store.db().begin().await?;
        let now = now_us();
        set_applied(&mut tx, generation, applied).await?;
        on_backend!(tx.conn(), c => {
            sqlx::query("UPDATE generations SET state = 'retired' WHERE state = 'current'")
                .execute(&mut *c)
                .await?;
            sqlx::query("UPDATE generations SET state = 'current', completed_at_us = $2 WHERE gen = $1")
                .bind(generation)
                .bind(now)
                .execute(&mut *c)
                .await
                .map(|_| ())
        })?;
        let sql = format!("{SELECT} WHERE gen = $1");
        let row = on_backend!(tx.conn(), c => sqlx::query_as::<_, Generation>(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(generation)
            .fetch_one(&mut *c)
            .await)?;
        let event = pb::ProjectionRebuilt {
            rebuild_id: row.rebuild_id.clone(),
            events_applied: applied,
            started_at: Some(to_timestamp(row.started_at_us)),
            completed_at: Some(to_timestamp(now)),
        };
        outbox::enqueue(
            &mut tx,
            &Event::new(SERVICE, "eva.statistics.projection.rebuilt", None, &event),
        )
        .await?;
        tx.commit().await
    }

    /// Deletes the rows of retired generations, table by table.
    async fn purge_retired(&self) -> Result<(), DbError> {
        for table in tables() {
            let sql = format!(
                "DELETE FROM {table} WHERE gen IN (SELECT gen FROM generations WHERE state = 'retired')"
            );
            let mut tx = self.store.db().begin().await?;
            on_backend!(tx.conn(), c => sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .execute(&mut *c)
                .await
                .map(|_| ()))?;
            tx.commit().await?;
        }
        Ok(())
    }
}

async fn set_applied(tx: &mut Tx, generation: i64, applied: i64) -> Result<(), DbError> {
    on_backend!(tx.conn(), c => sqlx::query("UPDATE generations SET events_applied = $2 WHERE gen = $1")
        .bind(generation)
        .bind(applied)
        .execute(&mut *c)
        .await
        .map(|_| ()))?;
    Ok(())
}

#[derive(Debug, thiserror::Error)]
enum RebuildError {
    #[error("bus: {0}")]
    Bus(String),
    #[error("database: {0}")]
    Db(String),
}

impl From<DbError> for RebuildError {
    fn from(e: DbError) -> Self {
        RebuildError::Db(e.to_string())
    }
}

fn internal(e: impl std::fmt::Display) -> Status {
    tracing::error!(error = %e, "rebuild");
    Status::internal("erreur interne / internal error")
}

/// Rebuilds are for operators.
const OPERATORS: &[Role] = &[Role::Operator];

#[tonic::async_trait]
impl pb::projection_service_server::ProjectionService for Rebuilds {
    async fn start_rebuild(
        &self,
        req: Request<pb::StartRebuildRequest>,
    ) -> Result<Response<pb::StartRebuildResponse>, Status> {
        require_role(&req, OPERATORS)?;
        let rebuild = self.start().await?;
        Ok(Response::new(pb::StartRebuildResponse {
            rebuild: Some(rebuild),
        }))
    }

    async fn get_rebuild(
        &self,
        req: Request<pb::GetRebuildRequest>,
    ) -> Result<Response<pb::GetRebuildResponse>, Status> {
        require_role(&req, OPERATORS)?;
        let id = req.into_inner().rebuild_id;
        if Uuid::parse_str(&id).is_err() {
            return Err(invalid_field(
                "rebuild_id",
                "identifiant invalide / not a valid id",
            ));
        }
        let rebuild = self.get(&id).await.map_err(internal)?.ok_or_else(|| {
            Status::not_found("rebuild_id: reconstruction inconnue / unknown rebuild")
        })?;
        Ok(Response::new(pb::GetRebuildResponse {
            rebuild: Some(rebuild),
        }))
    }
}
