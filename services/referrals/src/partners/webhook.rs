//! The webhook delivery worker: POSTs each queued delivery to its partner's
//! endpoint, signed, and retries with a growing delay.
//!
//! The call:
//! - `POST <url>` with the body rendered when the event was written (the
//!   protobuf message of `eva/referrals/v1/events.proto`, or its canonical
//!   JSON), `content-type: application/protobuf` or `application/json`;
//! - CloudEvents 1.0 HTTP binary-mode headers: `ce-specversion: 1.0`,
//!   `ce-id` (the event's UUIDv7: receivers drop what they already have,
//!   since delivery is at least once), `ce-type` (e.g.
//!   `eva.referrals.referral.sent`), `ce-source: /eva/referrals`, `ce-time`
//!   (when the event occurred, RFC 3339);
//! - `eva-signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret,
//!   "<t>.<body>")>` (see [`super::signature`]): receivers check that `t` is
//!   within 5 minutes of their clock and compare the MAC in constant time.
//!
//! Outcome: a 2xx answer marks the delivery `delivered`. Anything else (other
//! status, timeout after `webhook_timeout_ms`, connection or TLS error)
//! counts an attempt and schedules the next one
//! `min(webhook_backoff_ms × 2^(attempts−1), webhook_max_backoff_ms)` later,
//! plus up to 10 % of random jitter, in state `retrying`; after
//! `webhook_max_attempts` attempts the delivery is `failed`. Redirects are
//! not followed.
//!
//! Order: each webhook gets its events in the order they were queued. Only
//! the oldest delivery of a webhook that is neither delivered nor failed is
//! ever attempted, so while it is retrying the next ones wait behind it
//! (nothing is lost, nothing overtakes). A `failed` delivery no longer holds
//! the line.
//!
//! Pause: a paused webhook's deliveries are not attempted (they stay
//! `pending`, or `retrying` with their next attempt as it was); its partner
//! resuming it wakes the worker, which sends them in order.
//!
//! Robustness: every state is in the database, so a restarted worker
//! carries on where the last one stopped. Before calling, the worker claims
//! the delivery by moving its next attempt past the call's deadline (a
//! lease): another replica does not pick it meanwhile, and if the process
//! dies during the call, the delivery is due again once the lease is over.
//! Rows are updated in short statements; no transaction is held during the
//! HTTP call. All times come from the referrals [`Clock`], so tests move
//! time forward. Bodies and secrets are never logged.
//!
//! Metrics: `eva_webhook_attempts_total{outcome=delivered|retrying|failed}`
//! and `eva_webhook_call_seconds`.
//!
//! Retention: a delivery is forgotten [`RETENTION_DAYS`] days after it was
//! delivered or given up (checked hourly); deleting a webhook drops its
//! deliveries at once.

use std::sync::LazyLock;
use std::time::Duration;

use eva_platform::config::ReferralsConfig;
use eva_platform::crypto::Kek;
use eva_platform::db::{Db, DbError, to_timestamp};
use eva_platform::service::StartError;
use eva_platform::{Clock, Shutdown};
use futures::StreamExt;
use rand::Rng;
use tokio::sync::Notify;

use super::signature;
use super::store::{self, Attempt, DueDelivery};
use crate::store::Store;

/// `ce-source` of every call.
pub const CE_SOURCE: &str = "/eva/referrals";
/// Deliveries read per pass.
const BATCH: i64 = 64;
/// Calls in flight at once (to different webhooks).
const CONCURRENCY: usize = 16;
/// How long a claimed delivery stays out of the others' reach beyond the
/// call's own deadline.
const LEASE_MARGIN_US: i64 = 30_000_000;
/// After a wake-up, time given to the waking transaction to commit.
const WAKE_DELAY: Duration = Duration::from_millis(30);
/// ... and when that was too early, a second look.
const RECHECK_DELAY: Duration = Duration::from_millis(300);
/// Days a delivered or failed delivery stays listed (its body holds ids and
/// sealed data of a person: kept no longer than needed).
pub const RETENTION_DAYS: i64 = 30;
/// How often old deliveries are pruned.
const PRUNE_EVERY_US: i64 = 3_600_000_000;
/// Longest error text kept on a delivery.
const MAX_ERROR_LEN: usize = 200;

/// Wakes the workers of this process when deliveries were queued.
static WAKE: LazyLock<Notify> = LazyLock::new(Notify::new);

/// Tells the worker that deliveries were queued (it otherwise finds them at
/// its next poll). Called by [`super::enqueue_deliveries`]; callers may call
/// it again once their transaction committed.
pub fn wake() {
    WAKE.notify_one();
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("webhook http client: {0}")]
    Client(String),
}

impl From<WorkerError> for StartError {
    fn from(e: WorkerError) -> Self {
        StartError::Other {
            service: crate::SERVICE,
            reason: e.to_string(),
        }
    }
}

/// The delivery settings, from `[referrals]`.
#[derive(Debug, Clone)]
pub struct Settings {
    pub poll: Duration,
    pub timeout: Duration,
    pub max_attempts: i64,
    pub backoff_ms: u64,
    pub max_backoff_ms: u64,
}

impl From<&ReferralsConfig> for Settings {
    fn from(c: &ReferralsConfig) -> Self {
        Self {
            poll: Duration::from_millis(c.scheduler_poll_ms.max(1)),
            timeout: Duration::from_millis(c.webhook_timeout_ms.max(1)),
            max_attempts: i64::from(c.webhook_max_attempts.max(1)),
            backoff_ms: c.webhook_backoff_ms,
            max_backoff_ms: c.webhook_max_backoff_ms,
        }
    }
}

impl Settings {
    /// Wait before the attempt that follows attempt number `attempts`
    /// (1-based), without jitter.
    pub fn backoff(&self, attempts: i64) -> Duration {
        let exp = u32::try_from(attempts.saturating_sub(1).max(0)).unwrap_or(u32::MAX);
        let factor = 2u64.checked_pow(exp).unwrap_or(u64::MAX);
        Duration::from_millis(
            self.backoff_ms
                .saturating_mul(factor)
                .min(self.max_backoff_ms),
        )
    }
}

/// Starts the worker on `shutdown`'s tracker; it stops with it.
pub fn spawn_worker(
    db: Db,
    kek: Kek,
    config: &ReferralsConfig,
    clock: Clock,
    shutdown: Shutdown,
) -> Result<tokio::task::JoinHandle<()>, WorkerError> {
    let worker = Worker::new(db, kek, Settings::from(config), clock)?;
    let stop = shutdown.clone();
    Ok(shutdown.spawn(worker.run(stop)))
}

/// Delivers queued webhook calls.
pub struct Worker {
    store: Store,
    kek: Kek,
    settings: Settings,
    clock: Clock,
    http: reqwest::Client,
}

impl Worker {
    pub fn new(db: Db, kek: Kek, settings: Settings, clock: Clock) -> Result<Self, WorkerError> {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(std::sync::Arc::new(super::public_dns::PublicOnly))
            .user_agent(concat!("eva-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| WorkerError::Client(e.to_string()))?;
        Ok(Self {
            store: Store::new(db),
            kek,
            settings,
            clock,
            http,
        })
    }

    /// Runs until shutdown: a pass every `scheduler_poll_ms`, or soon after
    /// [`wake`], and at once again after a pass that attempted something.
    pub async fn run(self, shutdown: Shutdown) {
        tracing::info!("webhook worker started");
        // After a wake-up, one more look a little later in case the waking
        // transaction had not committed yet.
        let mut recheck = false;
        let mut next_prune_us = 0;
        loop {
            if shutdown.is_triggered() {
                break;
            }
            if self.clock.now_us() >= next_prune_us {
                if let Err(e) = self.prune().await {
                    tracing::warn!(error = %e, "pruning webhook deliveries failed");
                }
                next_prune_us = self.clock.now_us().saturating_add(PRUNE_EVERY_US);
            }
            let attempted = match self.run_once().await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "webhook pass failed");
                    0
                }
            };
            if attempted > 0 {
                continue;
            }
            if std::mem::take(&mut recheck) {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(RECHECK_DELAY) => {}
                }
                continue;
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(self.settings.poll) => {}
                _ = WAKE.notified() => {
                    recheck = true;
                    tokio::time::sleep(WAKE_DELAY).await;
                }
            }
        }
        tracing::info!("webhook worker stopped");
    }

    /// Forgets the deliveries done (delivered or failed) more than
    /// [`RETENTION_DAYS`] ago.
    pub async fn prune(&self) -> Result<u64, DbError> {
        let before = self
            .clock
            .now_us()
            .saturating_sub(RETENTION_DAYS * 86_400 * 1_000_000);
        let n = self.store.prune_deliveries(before).await?;
        if n > 0 {
            tracing::info!(deliveries = n, "old webhook deliveries forgotten");
        }
        Ok(n)
    }

    /// One pass: attempts every delivery due now (at most one per webhook).
    /// Answers how many were attempted.
    pub async fn run_once(&self) -> Result<usize, DbError> {
        let due = self
            .store
            .due_deliveries(self.clock.now_us(), BATCH)
            .await?;
        let results: Vec<Result<bool, DbError>> = futures::stream::iter(due)
            .map(|d| self.attempt(d))
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let mut attempted = 0;
        for r in results {
            if r? {
                attempted += 1;
            }
        }
        Ok(attempted)
    }

    /// One attempt of one delivery; false if another worker had it.
    async fn attempt(&self, d: DueDelivery) -> Result<bool, DbError> {
        let timeout_us = i64::try_from(self.settings.timeout.as_micros()).unwrap_or(i64::MAX);
        let lease_until = self
            .clock
            .now_us()
            .saturating_add(timeout_us)
            .saturating_add(LEASE_MARGIN_US);
        if !self
            .store
            .claim_delivery(&d.delivery_id, d.next_attempt_at_us, lease_until)
            .await?
        {
            return Ok(false);
        }
        let started = self.clock.now_us();
        let timer = std::time::Instant::now();
        let outcome = match super::open_secret(&self.kek, &d.webhook_id, &d.secret_sealed) {
            Ok(secret) => self.call(&d, &secret, started).await,
            Err(_) => Err("secret illisible / secret unreadable".to_owned()),
        };
        let attempts = d.attempts + 1;
        let (status, http_status, error) = match &outcome {
            Ok(code) if (200..300).contains(code) => (store::DELIVERED, *code, String::new()),
            Ok(code) => {
                let s = if attempts >= self.settings.max_attempts {
                    store::FAILED
                } else {
                    store::RETRYING
                };
                (s, *code, format!("HTTP {code}"))
            }
            Err(e) if attempts >= self.settings.max_attempts => (store::FAILED, 0, e.clone()),
            Err(e) => (store::RETRYING, 0, e.clone()),
        };
        let next = (status == store::RETRYING).then(|| {
            let wait = self.settings.backoff(attempts);
            let wait_us = i64::try_from(wait.as_micros()).unwrap_or(i64::MAX);
            let jitter_us = if wait_us >= 10 {
                rand::thread_rng().gen_range(0..=wait_us / 10)
            } else {
                0
            };
            self.clock
                .now_us()
                .saturating_add(wait_us)
                .saturating_add(jitter_us)
        });
        let recorded = self
            .store
            .record_attempt(
                &d.delivery_id,
                lease_until,
                &Attempt {
                    status,
                    attempts,
                    next_attempt_at_us: next,
                    last_attempt_at_us: started,
                    last_http_status: http_status,
                    last_error: &error,
                },
            )
            .await?;
        metrics::counter!("eva_webhook_attempts_total", "outcome" => status).increment(1);
        metrics::histogram!("eva_webhook_call_seconds").record(timer.elapsed().as_secs_f64());
        if !recorded {
            tracing::info!(delivery_id = %d.delivery_id, webhook_id = %d.webhook_id, "delivery removed during its attempt");
        } else if status == store::DELIVERED {
            tracing::info!(delivery_id = %d.delivery_id, webhook_id = %d.webhook_id,
                event_type = %d.event_type, attempts, http_status, "webhook delivered");
        } else {
            tracing::warn!(delivery_id = %d.delivery_id, webhook_id = %d.webhook_id,
                event_type = %d.event_type, attempts, http_status, error = %error, status,
                "webhook attempt failed");
        }
        Ok(true)
    }

    /// The HTTP call: the answer's status, or why there was none.
    async fn call(&self, d: &DueDelivery, secret: &str, now_us: i64) -> Result<i64, String> {
        let t = now_us.div_euclid(1_000_000);
        let ce_time = crate::events_json::rfc3339(&to_timestamp(d.occurred_at_us))?;
        let response = self
            .http
            .post(&d.url)
            .header(reqwest::header::CONTENT_TYPE, &d.content_type)
            .header("ce-specversion", "1.0")
            .header("ce-id", &d.event_id)
            .header("ce-type", &d.event_type)
            .header("ce-source", CE_SOURCE)
            .header("ce-time", ce_time)
            .header(signature::HEADER, signature::sign(secret, t, &d.body))
            .body(d.body.clone())
            .send()
            .await
            .map_err(|e| describe(&e))?;
        Ok(i64::from(response.status().as_u16()))
    }
}

/// A short description of a failed call, without the URL (it may carry a
/// partner's token).
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "délai dépassé / timeout"
    } else if e.is_connect() {
        "connexion impossible / connection failed"
    } else {
        "échec de l'appel / request failed"
    };
    // The innermost cause says what happened (refused, TLS, DNS…).
    let mut cause: Option<&dyn std::error::Error> = std::error::Error::source(e);
    let mut last = None;
    while let Some(c) = cause {
        last = Some(c.to_string());
        cause = c.source();
    }
    let mut s = match last {
        Some(c) => format!("{kind}: {c}"),
        None => kind.to_owned(),
    };
    if s.len() > MAX_ERROR_LEN {
        let mut cut = MAX_ERROR_LEN;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_ceiling() {
        let s = Settings {
            poll: Duration::from_millis(10),
            timeout: Duration::from_millis(10),
            max_attempts: 8,
            backoff_ms: 30_000,
            max_backoff_ms: 100_000,
        };
        assert_eq!(s.backoff(1), Duration::from_secs(30));
        assert_eq!(s.backoff(2), Duration::from_secs(60));
        assert_eq!(s.backoff(3), Duration::from_secs(100));
        assert_eq!(s.backoff(70), Duration::from_secs(100));
        assert_eq!(s.backoff(0), Duration::from_secs(30));
    }
}
