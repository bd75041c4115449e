//! The services on the département's 3-node JetStream cluster (streams R3, started from
//! the committed `deploy/nats/cluster/node.conf`): while people are created at a steady
//! rate through the HTTP API, the node leading `EVA_IDENTITY` is killed with SIGKILL,
//! writes go on, and it is restarted. Then every event committed is in the stream once
//! and applied once by each projection.
//!
//! Why the counts prove "nothing lost, nothing duplicated":
//! - each `201 Created` of `POST /people` is one committed accompaniment, with its
//!   `eva.identity.accompaniment.started` event in identity's outbox in the same
//!   transaction; identity's `accompaniments` table holds exactly that many rows (no
//!   write answered with an error committed behind the test's back);
//! - once identity's outbox is empty, every one of those events was acknowledged by the
//!   stream (the relay deletes a row only after JetStream's ack, which with R3 means a
//!   quorum wrote it, `sync_interval: always`). The stream holds exactly as many
//!   accompaniment events as writes, and as many distinct `Nats-Msg-Id`s (= `ce-id`) as
//!   messages: a publish retried across the election was deduplicated, not stored twice;
//! - each consumer records the `ce-id` of every event it applies in `eva_inbox`, in the
//!   transaction that changes its projection: as many inbox rows as events, and as many
//!   projection rows (keyed by accompaniment) as writes, with nothing left pending on its
//!   durable consumer, means each event was applied, and once.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use async_nats::jetstream;
use eva_platform::auth::Role;
use eva_platform::{Db, on_backend};
use eva_tests::api::siret;
use eva_tests::cluster::{NatsCluster, stream_ids};
use eva_tests::sandbox::{Backend, Sandbox};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::time::{Instant, sleep};

/// The slowest a loaded 2-core machine may take for the cluster and projections to
/// settle.
const SETTLE: Duration = Duration::from_secs(90);
/// Writes committed before the kill, while the node is down, and after its restart.
const PER_PHASE: u64 = 25;

/// The consumers of accompaniment events and the database holding their inbox and
/// projection: (service, durable, projection table).
const CONSUMERS: &[(&str, &str, &str)] = &[
    (
        "diagnostics",
        "diagnostics-follows-accompaniments",
        "eva_accompaniments",
    ),
    (
        "referrals",
        "referrals-follows-accompaniments",
        "eva_accompaniments",
    ),
    ("statistics", "statistics-people", "accompaniments"),
];

/// Creates people, one after the other, until `stop`; counts the `201`s. A failed
/// write (a `5xx` while the cluster elects, a refused connection) is retried, and
/// counted once it succeeds.
fn spawn_writer(
    sb: &Sandbox<NatsCluster>,
    token: String,
    structure: String,
    committed: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Result<()>> {
    let (http, url) = (sb.http.clone(), sb.url("/api/v1/people"));
    tokio::spawn(async move {
        let mut n = 0u64;
        while !stop.load(Ordering::SeqCst) {
            n += 1;
            let body = json!({
                "structure_id": structure,
                "first_name": "Ana",
                "last_name": letters(n),
                "birth_date": "1985-05-20",
                "commune_insee": "27229",
            });
            let sent = http
                .post(&url)
                .bearer_auth(&token)
                .json(&body)
                .timeout(Duration::from_secs(30))
                .send()
                .await;
            match sent.map(|r| r.status()) {
                Ok(StatusCode::CREATED) => {
                    committed.fetch_add(1, Ordering::SeqCst);
                }
                Ok(s) if s.is_server_error() => {
                    failed.fetch_add(1, Ordering::SeqCst);
                }
                Err(_) => {
                    failed.fetch_add(1, Ordering::SeqCst);
                }
                Ok(s) => bail!("creating a person: {s}"),
            }
            sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    })
}

/// `n` in letters (`Essai-b-c…`): names take no digits.
fn letters(mut n: u64) -> String {
    let mut name = String::from("Essai");
    while n > 0 {
        name.push(char::from(b'a' + (n % 26) as u8));
        n /= 26;
    }
    name
}

/// Waits until `committed` grew by `more` (the writer is alive and committing).
async fn committed_more(committed: &AtomicU64, more: u64) -> Result<u64> {
    let target = committed.load(Ordering::SeqCst) + more;
    let deadline = Instant::now() + SETTLE;
    loop {
        let now = committed.load(Ordering::SeqCst);
        if now >= target {
            return Ok(now);
        }
        if Instant::now() > deadline {
            bail!("only {now} writes committed, waiting for {target}");
        }
        sleep(Duration::from_millis(50)).await;
    }
}

async fn count(db: &Db, sql: &str) -> Result<i64> {
    let mut h = db.acquire().await?;
    let n: i64 = on_backend!(h.conn(), c => sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(&mut *c)
        .await)?;
    Ok(n)
}

async fn service_db(sb: &Sandbox<NatsCluster>, service: &str) -> Result<Db> {
    let url = match service {
        "identity" => sb
            .config
            .identity
            .database_url(&sb.config.data_dir, service),
        "diagnostics" => sb
            .config
            .diagnostics
            .service()
            .database_url(&sb.config.data_dir, service),
        "referrals" => sb
            .config
            .referrals
            .service()
            .database_url(&sb.config.data_dir, service),
        "statistics" => sb
            .config
            .statistics
            .service()
            .database_url(&sb.config.data_dir, service),
        other => bail!("no database for {other}"),
    };
    Ok(Db::connect(&url, 1).await?)
}

/// Polls `sql` until it answers `want`.
async fn until_count(db: &Db, sql: &str, want: i64) -> Result<()> {
    let deadline = Instant::now() + SETTLE;
    loop {
        let got = count(db, sql).await?;
        if got == want {
            return Ok(());
        }
        if got > want || Instant::now() > deadline {
            bail!("{sql}: {got}, expected {want}");
        }
        sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `sql` counts 0: an outbox drains, so rows still in flight
/// are waited for (unlike a projection, which only grows).
async fn until_drained(db: &Db, sql: &str) -> Result<()> {
    let deadline = Instant::now() + SETTLE;
    loop {
        let got = count(db, sql).await?;
        if got == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{sql}: {got} left after {SETTLE:?}, expected 0");
        }
        sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_killed_during_writes_loses_and_duplicates_nothing() -> Result<()> {
    let cluster = NatsCluster::start().await?;
    let url = cluster.url();
    let mut sb = Sandbox::start_configured(cluster, url, Backend::Sqlite, |c| {
        c.bus.replicas = 3;
    })
    .await?;

    let operator = sb.token("ops-1", vec![Role::Operator], vec![]).await?;
    let (s, v): (StatusCode, Value) = {
        let r = sb
            .http
            .post(sb.url("/api/v1/structures"))
            .bearer_auth(&operator)
            .json(&json!({ "name": "Chantier A", "siret": siret(81), "kind": "association", "commune_insee": "27229" }))
            .send()
            .await?;
        (r.status(), r.json().await?)
    };
    ensure!(s == StatusCode::CREATED, "creating the structure: {s} {v}");
    let structure = v["id"].as_str().context("structure id")?.to_owned();
    let counselor = sb
        .token(
            "counselor-a",
            vec![Role::Counselor],
            vec![structure.clone()],
        )
        .await?;

    let (committed, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = spawn_writer(
        &sb,
        counselor,
        structure,
        committed.clone(),
        failed.clone(),
        stop.clone(),
    );

    // Kill the node leading EVA_IDENTITY, where the writes' events are stored: its
    // stream must elect a new leader while the relay keeps publishing.
    committed_more(&committed, PER_PHASE).await?;
    let leader = sb
        .nats
        .wait_stream_current(0, "EVA_IDENTITY", SETTLE)
        .await?;
    let victim = (0..3)
        .find(|&i| sb.nats.name(i) == leader)
        .with_context(|| format!("leader {leader} is none of the nodes"))?;
    sb.nats.kill(victim).await?;
    let at_kill = committed.load(Ordering::SeqCst);
    let alive = (victim + 1) % 3;
    let new_leader = sb
        .nats
        .wait_new_stream_leader(alive, "EVA_IDENTITY", &leader, SETTLE)
        .await?;
    tracing::info!(%leader, %new_leader, "EVA_IDENTITY re-elected its leader");
    committed_more(&committed, PER_PHASE).await?;
    sb.nats.restart(victim).await?;
    committed_more(&committed, PER_PHASE).await?;
    stop.store(true, Ordering::SeqCst);
    writer.await??;
    let total = committed.load(Ordering::SeqCst);
    ensure!(total > at_kill, "no write while the node was down");

    // Every write committed, and only those.
    let identity = service_db(&sb, "identity").await?;
    ensure!(
        count(&identity, "SELECT COUNT(*) FROM accompaniments").await? == total as i64,
        "identity holds another number of accompaniments than the {total} writes"
    );
    // Every event left identity's outbox (acknowledged by the stream).
    until_drained(&identity, "SELECT COUNT(*) FROM eva_outbox").await?;

    // The restarted node caught up; the stream holds each event once.
    sb.nats
        .wait_stream_current(victim, "EVA_IDENTITY", SETTLE)
        .await?;
    let js = jetstream::new(sb.nats.node(victim).connect().await?);
    let all = stream_ids(&js, "EVA_IDENTITY", None).await?;
    let distinct: HashSet<&str> = all.iter().map(|(_, id)| id.as_str()).collect();
    ensure!(
        distinct.len() == all.len() && !distinct.contains(""),
        "EVA_IDENTITY holds {} messages but {} distinct ce-ids",
        all.len(),
        distinct.len()
    );
    let started = all
        .iter()
        .filter(|(subject, _)| subject == "eva.identity.accompaniment.started")
        .count();
    ensure!(
        started as u64 == total,
        "{started} accompaniment events in the stream for {total} writes"
    );
    let feeds_people = all
        .iter()
        .filter(|(s, _)| {
            s.starts_with("eva.identity.accompaniment.") || s.starts_with("eva.identity.person.")
        })
        .count();

    // Each projection applied each event once.
    for &(service, durable, table) in CONSUMERS {
        let db = service_db(&sb, service).await?;
        let events = if durable == "statistics-people" {
            feeds_people
        } else {
            started
        };
        until_count(
            &db,
            &format!("SELECT COUNT(*) FROM eva_inbox WHERE consumer = '{durable}'"),
            events as i64,
        )
        .await
        .with_context(|| format!("{durable}'s inbox"))?;
        until_count(
            &db,
            &format!("SELECT COUNT(DISTINCT accompaniment_id) FROM {table}"),
            total as i64,
        )
        .await
        .with_context(|| format!("{service}'s {table}"))?;
        let mut consumer = js
            .get_stream("EVA_IDENTITY")
            .await?
            .get_consumer::<jetstream::consumer::pull::Config>(durable)
            .await
            .map_err(|e| anyhow::anyhow!("consumer {durable}: {e}"))?;
        let info = consumer.info().await?;
        ensure!(
            info.num_pending == 0,
            "{durable}: {} events never delivered",
            info.num_pending
        );
        db.close().await;
    }
    identity.close().await;
    tracing::info!(
        total,
        at_kill,
        failed = failed.load(Ordering::SeqCst),
        "cluster writes"
    );
    sb.stop().await
}
