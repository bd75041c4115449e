//! `eva-bench`: the figures `docs/PERFORMANCE.md` reports, measured against a
//! real nats-server and real databases, with the baseline measured in the
//! same process.
//!
//! 1. Outbox relay throughput vs raw JetStream publish of the same messages
//!    (same payloads, same CloudEvents headers and `Nats-Msg-Id`, same stream
//!    settings, a fresh nats-server each). The raw publisher keeps as many
//!    acks in flight as the relay's batch. The relay drains rows already
//!    committed in the outbox; filling it is timed apart ("outbox write").
//! 2. End-to-end latency from the producer's commit to the projection's
//!    apply, at a steady offered rate, with `Relay::run` and `consumer::run`
//!    running as in a service.
//! 3. Token verification per second per core: `auth::Verifier` (keys fetched
//!    once) on one thread and on every core, against a raw Ed25519 verify of
//!    the same signing input.
//! 4. Consent check latency from the local projection (`Consents::check`)
//!    over a filled projection, against a bare `SELECT 1` through the same pool.
//! 5. Withdrawal → denial lag: outbox, relay, nats-server, `consumer::run`
//!    into `Consents`; from the withdrawal's commit until `check` denies,
//!    against the same pipeline's commit → allowed lag for a grant.
//! 6. Read of a full diagnostic through the gateway (`GET
//!    /api/v1/diagnostics/{id}`, the whole system started in-process by the
//!    sandbox) by concurrent keep-alive clients, against an axum hello-world
//!    loaded by the same client code in the same run.
//! 7. Referrals through the whole path (`referrals.rs`): `POST
//!    /api/v1/referrals` by concurrent clients, through the referrals
//!    service, its outbox and relay, to a partner's JetStream pull subscriber
//!    on `eva.partners.<id>.referrals.sent`; referrals per second and the
//!    end-to-end latency of each, against an axum hello-world at the same
//!    concurrency, and every referral checked to arrive exactly once.
//! 8. Community's French full-text search (`community.rs`): latency of
//!    `search::run` as `SearchService.Search` calls it, over 100,000 posts
//!    indexed through `search::index`, against a `SELECT 1` and a
//!    primary-key lookup on the same database.
//! 9. Statistics (`statistics.rs`): 1,000,000 diagnostic events ingested by
//!    the statistics service's `DiagnosticsFeed` through `consumer::run`,
//!    against a raw JetStream consumer acking the same stream; dashboard
//!    query latency over that data against a `SELECT 1`; a full rebuild,
//!    with the figures checked identical before and after.
//!
//! 10. `Idempotency-Key` (`idempotency.rs`): `POST /api/v1/people` through
//!     the gateway without the header, with a fresh key per request, and
//!     replayed under a key already answered, in the same run.
//!
//! `--only tokens,consent` runs some sections; the default runs them all.
//! Run it with `bash scripts/bench.sh [flags]`. It prints figures and asserts
//! no timing; it exits non-zero only when events were lost or duplicated.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use async_nats::jetstream::message::PublishMessage;
use clap::{Parser, ValueEnum};
use eva_platform::Shutdown;
use eva_platform::auth::{Role, TokenSigner};
use eva_platform::bus::{Bus, CloudEvent};
use eva_platform::config::BusConfig;
use eva_platform::consumer::{self, ApplyError, Envelope, Projection, Subscription};
use eva_platform::db::{Db, Tx, from_us, now_us};
use eva_platform::on_backend;
use eva_platform::outbox::{self, Event, Relay};
use eva_tests::counting::{self, Counting, MIGRATIONS, TEST_STREAM};
use eva_tests::nats::NatsServer;
use eva_tests::postgres::PgCluster;
use eva_tests::sandbox::{Backend as SandboxBackend, Sandbox};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use reqwest::{Method, StatusCode};
use serde_json::json;
use time::format_description::well_known::Rfc3339;
use tokio::time::MissedTickBehavior;

mod community;
mod idempotency;
mod referrals;
mod statistics;

/// Pool size of a service's database (the configuration's default).
const POOL: u32 = 8;
/// Events sent and applied before the latency run, to open every connection.
const WARMUP: usize = 200;
/// How long the latency run may take to apply its last events.
const SETTLE: Duration = Duration::from_secs(30);

#[derive(Parser, Debug, Clone)]
#[command(
    name = "eva-bench",
    about = "EVA's performance figures (outbox relay, event latency, tokens, consent, diagnostic \
             reads, referrals to a partner, community search, statistics ingestion and queries), \
             each against a baseline measured in the same run"
)]
struct Args {
    /// Messages in the throughput comparison.
    #[arg(long, default_value_t = 50_000)]
    messages: usize,
    /// Relay batch; also the raw publisher's window of in-flight acks.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Rounds of the throughput comparison; the summary gives the median.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Outbox rows per transaction when filling the outbox.
    #[arg(long, default_value_t = 100)]
    per_tx: usize,
    /// Offered rate of the latency run, events per second (one per transaction).
    #[arg(long, default_value_t = 1_000)]
    rate: u32,
    /// Length of the latency run, in seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u32,
    /// Database of the outbox and the projection.
    #[arg(long, value_enum, default_value_t = Backend::Sqlite)]
    db: Backend,
    /// Sections to run, comma-separated; all when not given.
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Section>,
    /// Length of each token-verification measurement, in seconds.
    #[arg(long, default_value_t = 3)]
    token_seconds: u32,
    /// People in the consent projection; each has a grant to 3 structures.
    #[arg(long, default_value_t = 10_000)]
    consent_people: usize,
    /// Random consent checks timed (and as many `SELECT 1`).
    #[arg(long, default_value_t = 20_000)]
    checks: usize,
    /// Consents granted, then withdrawn, in the withdrawal-lag run.
    #[arg(long, default_value_t = 1_000)]
    withdrawals: usize,
    /// Length of each load (hello-world, then diagnostic read), in seconds,
    /// after one second of warm-up.
    #[arg(long, default_value_t = 10)]
    diagnostic_seconds: u32,
    /// Concurrent keep-alive HTTP clients of the diagnostic-read load.
    #[arg(long, default_value_t = 16)]
    diagnostic_clients: usize,
    /// Length of each referral load (and of its hello-world baseline), in
    /// seconds, after one second of warm-up.
    #[arg(long, default_value_t = 15)]
    referral_seconds: u32,
    /// Concurrent keep-alive HTTP clients of the referral loads, comma-separated:
    /// one hello-world and one referral load per value.
    #[arg(long, value_delimiter = ',', default_values_t = [8usize, 32])]
    referral_clients: Vec<usize>,
    /// People followed by the sending association, each consenting to the partner.
    #[arg(long, default_value_t = 50)]
    referral_people: usize,
    /// Skip the second referral load, with a shared diagnostic travelling.
    #[arg(long)]
    referral_skip_diagnostic: bool,
    /// Posts indexed for the community search (questions, answers, solutions).
    #[arg(long, default_value_t = 100_000)]
    community_posts: usize,
    /// Search queries timed per caller (and as many `SELECT 1` and key lookups).
    #[arg(long, default_value_t = 1_000)]
    community_queries: usize,
    /// Diagnostic events published, then ingested by statistics (80 % shared,
    /// 20 % superseded).
    #[arg(long, default_value_t = 1_000_000)]
    statistics_events: usize,
    /// Rounds of the dashboard query mix timed (and as many `SELECT 1` per query).
    #[arg(long, default_value_t = 200)]
    statistics_rounds: usize,
    /// Concurrent keep-alive clients of each `Idempotency-Key` write load.
    #[arg(long, default_value_t = 8)]
    idempotency_clients: usize,
    /// Length of each `Idempotency-Key` write load, in seconds, after one of warm-up.
    #[arg(long, default_value_t = 10)]
    idempotency_seconds: u32,
}

/// A part of the bench.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Section {
    /// Outbox relay vs raw JetStream publish.
    Throughput,
    /// Commit → projection latency at a steady rate.
    Latency,
    /// Token verification per second per core.
    Tokens,
    /// Consent check latency from the local projection.
    Consent,
    /// Consent withdrawal commit → denial lag.
    Withdrawal,
    /// Read of a full diagnostic through the gateway vs an axum hello-world.
    Diagnostic,
    /// Referrals gateway → service → outbox → partner subscriber vs an axum hello-world.
    Referrals,
    /// Community French full-text search latency vs `SELECT 1` and a key lookup.
    Community,
    /// Statistics: diagnostic events ingested vs raw JetStream consumption,
    /// dashboard queries vs `SELECT 1`, rebuild.
    Statistics,
    /// Writes with and without `Idempotency-Key`, and replays, through the gateway.
    Idempotency,
}

impl Args {
    fn wants(&self, section: Section) -> bool {
        self.only.is_empty() || self.only.contains(&section)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn label(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite (WAL, synchronous=NORMAL)",
            Backend::Postgres => "PostgreSQL (test cluster: fsync and synchronous_commit off)",
        }
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    if [
        args.messages,
        args.batch,
        args.per_tx,
        args.rounds,
        args.consent_people,
        args.checks,
        args.withdrawals,
        args.diagnostic_clients,
        args.referral_people,
        args.community_posts,
        args.community_queries,
        args.statistics_events,
        args.statistics_rounds,
        args.idempotency_clients,
    ]
    .contains(&0)
        || args.rate == 0
        || args.token_seconds == 0
        || args.diagnostic_seconds == 0
        || args.referral_seconds == 0
        || args.referral_clients.is_empty()
        || args.referral_clients.contains(&0)
        || args.idempotency_seconds == 0
    {
        bail!(
            "--messages, --batch, --per-tx, --rounds, --rate, --token-seconds, --consent-people, \
             --checks, --withdrawals, --diagnostic-seconds, --diagnostic-clients, \
             --referral-seconds, --referral-clients, --referral-people, --community-posts, \
             --community-queries, --statistics-events, --statistics-rounds, --idempotency-clients \
             and --idempotency-seconds must be at least 1"
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("building the tokio runtime")?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> Result<()> {
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("eva-bench: {command}");
    println!(
        "machine: {workers} cores ({}), tokio multi-thread runtime; database: {}",
        cpu_model(),
        args.db.label()
    );
    // The diagnostic section starts its own databases (in the sandbox): no
    // PostgreSQL cluster of ours when it runs alone.
    let own_dbs = [
        Section::Throughput,
        Section::Latency,
        Section::Consent,
        Section::Withdrawal,
        Section::Community,
        Section::Statistics,
    ]
    .into_iter()
    .any(|s| args.wants(s));
    let dbs = Databases::new(if own_dbs { args.db } else { Backend::Sqlite }).await?;
    let mut problems = Vec::new();
    let mut summary: Vec<Box<dyn Fn()>> = Vec::new();

    if args.wants(Section::Throughput) {
        let t = throughput(&dbs, &args, &mut problems).await?;
        let a = args.clone();
        summary.push(Box::new(move || print_throughput(&t, &a)));
    }
    if args.wants(Section::Latency) {
        let n = (args.rate as usize) * (args.seconds as usize);
        println!(
            "\n[latency] {n} events at {}/s, one per transaction, relay + consumer running",
            args.rate
        );

        let latency = latency(&dbs, &args, n).await?;
        problems.extend(latency.problems.iter().cloned());
        let a = args.clone();
        summary.push(Box::new(move || print_latency(&latency, &a, n)));
    }

    if args.wants(Section::Tokens) {
        let threads = workers;
        let secs = args.token_seconds;
        println!(
            "\n[tokens] auth::Verifier vs raw Ed25519 verify, {secs} s each, 1 thread then {threads}"
        );
        let t = tokio::task::spawn_blocking(move || tokens(secs, threads)).await??;
        summary.push(Box::new(move || print_tokens(&t)));
    }
    if args.wants(Section::Consent) {
        println!(
            "\n[consent] Consents::check over {} people x 3 structures, {} random checks",
            args.consent_people, args.checks
        );
        let c = consent_checks(&dbs, &args).await?;
        summary.push(Box::new(move || print_consent(&c)));
    }
    if args.wants(Section::Withdrawal) {
        println!(
            "\n[withdrawal] {} consents granted then withdrawn through outbox, relay, NATS, consumer",
            args.withdrawals
        );
        let w = withdrawal_lag(&dbs, &args).await?;
        summary.push(Box::new(move || print_withdrawal(&w)));
    }
    if args.wants(Section::Diagnostic) {
        println!(
            "\n[diagnostic] GET /api/v1/diagnostics/{{id}} through the gateway vs axum hello-world, \
             {} clients, {} s each",
            args.diagnostic_clients, args.diagnostic_seconds
        );
        let d = diagnostic_read(&args, &mut problems).await?;
        summary.push(Box::new(move || print_diagnostic(&d)));
    }
    if args.wants(Section::Referrals) {
        println!(
            "\n[referrals] POST /api/v1/referrals → referrals → outbox → partner's JetStream \
             subscriber vs axum hello-world, {:?} clients, {} s each",
            args.referral_clients, args.referral_seconds
        );
        let r = referrals::referrals(&args, &mut problems).await?;
        summary.push(Box::new(move || referrals::print_referrals(&r)));
    }
    if args.wants(Section::Community) {
        println!(
            "\n[community] French full-text search over {} posts, {} queries per caller, one at a time",
            args.community_posts, args.community_queries
        );
        let c = community::community(&dbs, &args, &mut problems).await?;
        summary.push(Box::new(move || community::print_community(&c)));
    }
    if args.wants(Section::Statistics) {
        println!(
            "\n[statistics] {} diagnostic events: publish, raw JetStream consumption vs \
             DiagnosticsFeed ingestion, {} rounds of dashboard queries, rebuild",
            args.statistics_events, args.statistics_rounds
        );
        let s = statistics::statistics(&dbs, &args, &mut problems).await?;
        summary.push(Box::new(move || statistics::print_statistics(&s)));
    }
    if args.wants(Section::Idempotency) {
        println!(
            "\n[idempotency] POST /api/v1/people without Idempotency-Key, with a fresh key, \
             and replayed under an answered key, {} clients, {} s each",
            args.idempotency_clients, args.idempotency_seconds
        );
        let f = idempotency::idempotency(&args, &mut problems).await?;
        summary.push(Box::new(move || idempotency::print_figures(&f)));
    }

    println!(
        "\n== summary (throughput: median of {} rounds) ==",
        args.rounds
    );
    println!("{:<46} {:>14} {:>12}", "measure", "value", "target");
    for print in &summary {
        print();
    }
    println!("\ncommand: {command}");
    println!("(via the repository: bash scripts/bench.sh [flags])");

    if problems.is_empty() {
        Ok(())
    } else {
        for p in &problems {
            eprintln!("eva-bench: FAILED: {p}");
        }
        bail!(
            "{} problem(s): events lost or duplicated, or reads failed",
            problems.len()
        )
    }
}

/// Medians of the throughput comparison.
struct Throughput {
    raw_rate: f64,
    lockstep_rate: f64,
    relay_rate: f64,
    write_rate: f64,
    sql_rate: f64,
    ratio: f64,
    worst: f64,
}

async fn throughput(
    dbs: &Databases,
    args: &Args,
    problems: &mut Vec<String>,
) -> Result<Throughput> {
    println!(
        "\n[throughput] {} messages, batch/window {}, {} rounds (fresh nats-server each)",
        args.messages, args.batch, args.rounds
    );
    let events: Vec<Event> = (0..args.messages)
        .map(|i| counting::event(&format!("bench-{i:06}")))
        .collect();
    let mut rounds = Vec::with_capacity(args.rounds);
    for r in 0..args.rounds {
        // Alternate the order so neither side always runs on a warmer machine.
        let (raw, lockstep, relayed) = if r % 2 == 0 {
            let raw = raw_publish(&events, args.batch, false).await?;
            let lockstep = raw_publish(&events, args.batch, true).await?;
            let relayed = relay_drain(dbs, r, &events, args.batch, args.per_tx).await?;
            (raw, lockstep, relayed)
        } else {
            let relayed = relay_drain(dbs, r, &events, args.batch, args.per_tx).await?;
            let lockstep = raw_publish(&events, args.batch, true).await?;
            let raw = raw_publish(&events, args.batch, false).await?;
            (raw, lockstep, relayed)
        };
        println!(
            "  round {}: raw {:>6.0} msg/s, raw in lockstep {:>6.0} msg/s, relay {:>6.0} msg/s \
             ({:.2}x raw); outbox write {:>6.0} rows/s, relay SQL alone {:>6.0} rows/s",
            r + 1,
            raw.rate(),
            lockstep.rate(),
            relayed.relay.rate(),
            relayed.relay.rate() / raw.rate(),
            relayed.write.rate(),
            relayed.sql_only.rate()
        );
        problems.extend(lockstep.problems.iter().cloned());
        problems.extend(raw.problems.iter().cloned());
        problems.extend(relayed.problems.iter().cloned());
        rounds.push((raw, lockstep, relayed));
    }
    let raw_rate = median(rounds.iter().map(|(raw, _, _)| raw.rate()));
    let lockstep_rate = median(rounds.iter().map(|(_, lock, _)| lock.rate()));
    let relay_rate = median(rounds.iter().map(|(_, _, rel)| rel.relay.rate()));
    let write_rate = median(rounds.iter().map(|(_, _, rel)| rel.write.rate()));
    let sql_rate = median(rounds.iter().map(|(_, _, rel)| rel.sql_only.rate()));
    let ratios: Vec<f64> = rounds
        .iter()
        .map(|(raw, _, rel)| rel.relay.rate() / raw.rate())
        .collect();
    let ratio = median(ratios.iter().copied());
    let worst = ratios.iter().copied().fold(f64::INFINITY, f64::min);

    Ok(Throughput {
        raw_rate,
        lockstep_rate,
        relay_rate,
        write_rate,
        sql_rate,
        ratio,
        worst,
    })
}

fn print_throughput(t: &Throughput, args: &Args) {
    let Throughput {
        raw_rate,
        lockstep_rate,
        relay_rate,
        write_rate,
        sql_rate,
        ratio,
        worst,
    } = *t;
    row(
        "raw JetStream publish (msg/s)",
        &format!("{raw_rate:.0}"),
        "",
    );
    row(
        "raw publish in lockstep batches (msg/s)",
        &format!("{lockstep_rate:.0}"),
        "",
    );
    row(
        "outbox relay drain (msg/s)",
        &format!("{relay_rate:.0}"),
        "",
    );
    row(
        "relay / raw (median; worst round)",
        &format!("{ratio:.2}x; {worst:.2}x"),
        &format!("≥ 0.50x {}", verdict(ratio >= 0.5)),
    );
    row(
        &format!("outbox write (rows/s, {} rows/tx)", args.per_tx),
        &format!("{write_rate:.0}"),
        "",
    );
    row(
        "outbox read+delete only (rows/s)",
        &format!("{sql_rate:.0}"),
        "",
    );
}

fn print_latency(latency: &Latency, args: &Args, n: usize) {
    row(
        "latency: offered / achieved (events/s)",
        &format!("{} / {:.0}", args.rate, latency.achieved),
        "",
    );
    row(
        "latency: events applied exactly once",
        &format!("{} / {n}", latency.exactly_once),
        verdict(latency.exactly_once == n),
    );
    let e2e = &latency.end_to_end;
    row("commit → projection p50 (ms)", &ms(e2e.p50), "");
    row("commit → projection p90 (ms)", &ms(e2e.p90), "");
    row(
        "commit → projection p99 (ms)",
        &ms(e2e.p99),
        &format!("< 20 ms {}", verdict(e2e.p99 < Duration::from_millis(20))),
    );
    row("commit → projection max (ms)", &ms(e2e.max), "");
    row(
        "commit → on the bus p50 / p99 (ms)",
        &format!("{} / {}", ms(latency.to_bus.p50), ms(latency.to_bus.p99)),
        "",
    );
    row(
        "producer commit p50 / p99 (ms)",
        &format!("{} / {}", ms(latency.commit.p50), ms(latency.commit.p99)),
        "",
    );
}

fn row(name: &str, value: &str, target: &str) {
    println!("{name:<46} {value:>14} {target:>12}");
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// Where the bench's databases live: SQLite files in a temporary directory,
/// or databases of one temporary PostgreSQL cluster.
struct Databases {
    dir: tempfile::TempDir,
    pg: Option<PgCluster>,
}

impl Databases {
    async fn new(backend: Backend) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("eva-bench-").tempdir()?;
        let pg = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(PgCluster::start().await?),
        };
        Ok(Self { dir, pg })
    }

    async fn open(&self, name: &str) -> Result<Db> {
        let url = match &self.pg {
            Some(pg) => pg.create_database(name).await?,
            None => format!("sqlite://{}/{name}.db?mode=rwc", self.dir.path().display()),
        };
        let db = Db::connect(&url, POOL).await?;
        db.migrate(&MIGRATIONS).await?;
        Ok(db)
    }
}

/// A count done in a time.
#[derive(Debug, Clone, Copy)]
struct Timed {
    count: usize,
    elapsed: Duration,
}

impl Timed {
    fn rate(&self) -> f64 {
        self.count as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

struct Raw {
    count: usize,
    elapsed: Duration,
    problems: Vec<String>,
}

impl Raw {
    fn rate(&self) -> f64 {
        Timed {
            count: self.count,
            elapsed: self.elapsed,
        }
        .rate()
    }
}

async fn connect(nats: &NatsServer, name: &str) -> Result<Bus> {
    let bus = Bus::connect(&BusConfig::default(), &nats.url(), name).await?;
    bus.ensure_stream(&TEST_STREAM).await?;
    Ok(bus)
}

async fn stream_messages(bus: &Bus) -> Result<u64> {
    let mut stream = bus.jetstream().get_stream(TEST_STREAM.name).await?;
    Ok(stream.info().await?.state.messages)
}

/// The message the relay would send for `event`, built the same way.
fn publish_message(event: &Event) -> PublishMessage {
    let ce = CloudEvent {
        id: event.id.to_string(),
        source: event.source.clone(),
        event_type: event.event_type.clone(),
        time: from_us(now_us()).format(&Rfc3339).unwrap_or_default(),
        subject: event.aggregate_id.clone(),
    };
    PublishMessage::build()
        .payload(event.payload.clone().into())
        .headers(ce.to_headers(None))
}

/// Publishes `events` straight to JetStream, `window` acks in flight: a
/// sliding window, or in `lockstep` (send `window`, await them all, as the
/// relay does with its batch).
async fn raw_publish(events: &[Event], window: usize, lockstep: bool) -> Result<Raw> {
    let nats = NatsServer::start().await?;
    let bus = connect(&nats, "bench-raw").await?;
    let js = bus.jetstream();
    let mut in_flight = FuturesUnordered::new();
    let mut failed = 0usize;
    let started = Instant::now();
    for event in events {
        let ack = js
            .send_publish(event.subject.clone(), publish_message(event))
            .await
            .context("raw publish")?;
        in_flight.push(async move { ack.await });
        if in_flight.len() >= window {
            let wait_for = if lockstep { in_flight.len() } else { 1 };
            for _ in 0..wait_for {
                if let Some(Err(_)) = in_flight.next().await {
                    failed += 1;
                }
            }
        }
    }
    while let Some(ack) = in_flight.next().await {
        if ack.is_err() {
            failed += 1;
        }
    }
    let elapsed = started.elapsed();
    let stored = stream_messages(&bus).await?;
    let mut problems = Vec::new();
    if failed > 0 || stored != events.len() as u64 {
        problems.push(format!(
            "raw publish: {failed} acks failed, {stored} of {} messages in the stream",
            events.len()
        ));
    }
    Ok(Raw {
        count: events.len() - failed,
        elapsed,
        problems,
    })
}

struct Relayed {
    write: Timed,
    relay: Timed,
    sql_only: Timed,
    problems: Vec<String>,
}

async fn fill_outbox(db: &Db, events: &[Event], per_tx: usize) -> Result<Timed> {
    let started = Instant::now();
    for chunk in events.chunks(per_tx) {
        let mut tx = db.begin().await?;
        for event in chunk {
            outbox::enqueue(&mut tx, event).await?;
        }
        tx.commit().await?;
    }
    Ok(Timed {
        count: events.len(),
        elapsed: started.elapsed(),
    })
}

/// Fills an outbox with `events`, then times `Relay::drain` until it is empty.
async fn relay_drain(
    dbs: &Databases,
    round: usize,
    events: &[Event],
    batch: usize,
    per_tx: usize,
) -> Result<Relayed> {
    let nats = NatsServer::start().await?;
    let bus = connect(&nats, "bench-relay").await?;
    let db = dbs.open(&format!("relay{round}")).await?;
    let write = fill_outbox(&db, events, per_tx).await?;

    let relay = Relay::new(db.clone(), bus.clone(), batch, Duration::from_millis(500));
    let mut published = 0usize;
    let mut failed = 0usize;
    let started = Instant::now();
    for _ in 0..5 {
        let pass = relay.drain().await?;
        published += pass.published;
        failed += pass.failed;
        if pass.failed == 0 {
            break;
        }
    }
    let elapsed = started.elapsed();
    let left = outbox::pending(&db).await?;
    let stored = stream_messages(&bus).await?;
    let mut problems = Vec::new();
    if left != 0 || stored != events.len() as u64 || published != events.len() {
        problems.push(format!(
            "relay: published {published} ({failed} unacknowledged), {left} rows left, \
             {stored} of {} messages in the stream",
            events.len()
        ));
    }

    // The relay's database work alone, on the same rows: what is left of
    // its cost once the bus is taken out.
    fill_outbox(&db, events, per_tx).await?;
    let sql_only = read_and_delete(&db, batch).await?;
    db.close().await;
    Ok(Relayed {
        write,
        relay: Timed {
            count: published,
            elapsed,
        },
        sql_only,
        problems,
    })
}

type OutboxRow = (
    i64,
    String,
    String,
    String,
    String,
    Option<String>,
    i64,
    Option<String>,
    Vec<u8>,
);

/// Reads and deletes the outbox batch by batch with the relay's queries.
async fn read_and_delete(db: &Db, batch: usize) -> Result<Timed> {
    let mut count = 0usize;
    let started = Instant::now();
    loop {
        let mut h = db.acquire().await?;
        let rows: Vec<OutboxRow> = on_backend!(h.conn(), c => sqlx::query_as(
            "SELECT seq, event_id, subject, event_type, source, ce_subject, occurred_at_us, traceparent, payload \
             FROM eva_outbox ORDER BY seq LIMIT $1",
        )
        .bind(batch as i64)
        .fetch_all(&mut *c)
        .await)?;
        drop(h);
        if rows.is_empty() {
            break;
        }
        count += rows.len();
        let list = rows
            .iter()
            .map(|r| r.0.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let sql = format!("DELETE FROM eva_outbox WHERE seq IN ({list})");
        let mut h = db.acquire().await?;
        on_backend!(h.conn(), c => sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).execute(&mut *c).await.map(|_| ()))?;
    }
    Ok(Timed {
        count,
        elapsed: started.elapsed(),
    })
}

/// When each event of the latency run reached a point of the pipeline.
struct Marks {
    /// Index → when the projection applied it (inside its transaction).
    applied: Mutex<Vec<Option<Instant>>>,
    /// Index → when a plain NATS subscriber saw it on the stream's subject.
    on_bus: Mutex<Vec<Option<Instant>>>,
    applied_count: AtomicUsize,
    warm_applied: AtomicUsize,
    reapplied: AtomicUsize,
}

impl Marks {
    fn new(n: usize) -> Self {
        Self {
            applied: Mutex::new(vec![None; n]),
            on_bus: Mutex::new(vec![None; n]),
            applied_count: AtomicUsize::new(0),
            warm_applied: AtomicUsize::new(0),
            reapplied: AtomicUsize::new(0),
        }
    }
}

fn marker_index(marker: &str) -> Option<usize> {
    marker.strip_prefix("lat-")?.parse().ok()
}

/// The counting projection (one `seen` row per event, so "exactly once" is
/// checked in the database), recording when it applied each event.
struct Stamping {
    inner: Counting,
    marks: Arc<Marks>,
}

impl Projection for Stamping {
    async fn apply(&self, tx: &mut Tx, event: &Envelope) -> Result<(), ApplyError> {
        self.inner.apply(tx, event).await?;
        let now = Instant::now();
        let marker = event.aggregate_id.as_deref().unwrap_or_default();
        if let Some(i) = marker_index(marker) {
            let mut applied = self.marks.applied.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(slot) = applied.get_mut(i) {
                // The last apply is the one whose transaction committed.
                if slot.replace(now).is_some() {
                    self.marks.reapplied.fetch_add(1, Ordering::Relaxed);
                } else {
                    self.marks.applied_count.fetch_add(1, Ordering::Relaxed);
                }
            }
        } else {
            self.marks.warm_applied.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// Percentiles of a set of durations (nearest rank).
#[derive(Debug, Default, Clone, Copy)]
struct Spread {
    p50: Duration,
    p90: Duration,
    p99: Duration,
    max: Duration,
}

fn spread(mut samples: Vec<Duration>) -> Spread {
    if samples.is_empty() {
        return Spread::default();
    }
    samples.sort_unstable();
    let at = |q: f64| {
        let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
        samples[rank - 1]
    };
    Spread {
        p50: at(0.50),
        p90: at(0.90),
        p99: at(0.99),
        max: samples[samples.len() - 1],
    }
}

struct Latency {
    achieved: f64,
    exactly_once: usize,
    end_to_end: Spread,
    to_bus: Spread,
    commit: Spread,
    problems: Vec<String>,
}

async fn wait_until(what: &str, within: Duration, done: impl Fn() -> bool) -> Result<()> {
    let deadline = Instant::now() + within;
    while !done() {
        if Instant::now() > deadline {
            bail!("{what}: not done within {} s", within.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// Measured events whose `seen` row says they were applied exactly once.
async fn applied_exactly_once(db: &Db) -> Result<usize> {
    let mut h = db.acquire().await?;
    let n: (i64,) = on_backend!(h.conn(), c => sqlx::query_as(
        "SELECT COUNT(*) FROM seen WHERE marker LIKE 'lat-%' AND applied = 1",
    )
    .fetch_one(&mut *c)
    .await)?;
    Ok(usize::try_from(n.0).unwrap_or(0))
}

/// Commits one event per transaction at a steady rate while a relay and a
/// consumer run, and times each from the commit to its projection.
async fn latency(dbs: &Databases, args: &Args, n: usize) -> Result<Latency> {
    let nats = NatsServer::start().await?;
    // Two services, as in the skeleton: the producer's database holds the
    // outbox, the consumer's the inbox and the projection.
    let producer_db = dbs.open("producer").await?;
    let consumer_db = dbs.open("consumer").await?;
    let producer_bus = connect(&nats, "bench-producer").await?;
    let consumer_bus = connect(&nats, "bench-consumer").await?;
    let shutdown = Shutdown::new();
    let marks = Arc::new(Marks::new(n));

    let poll = Duration::from_millis(BusConfig::default().outbox_poll_ms);
    let relay = Relay::new(producer_db.clone(), producer_bus.clone(), args.batch, poll);
    let relay_task = tokio::spawn(relay.run(shutdown.clone()));
    let projection = Stamping {
        inner: Counting::default(),
        marks: marks.clone(),
    };
    let sub = Subscription::new(TEST_STREAM, "bench-latency", &["evatest.>"]);
    let consumer_task = tokio::spawn(consumer::run(
        consumer_bus,
        consumer_db.clone(),
        sub,
        projection,
        shutdown.clone(),
    ));
    let watcher_task = {
        let mut subscriber = nats.connect().await?.subscribe("evatest.>").await?;
        let marks = marks.clone();
        tokio::spawn(async move {
            while let Some(msg) = subscriber.next().await {
                let now = Instant::now();
                let index = msg
                    .headers
                    .as_ref()
                    .and_then(|h| h.get("ce-subject"))
                    .and_then(|v| marker_index(v.as_str()));
                if let Some(i) = index {
                    let mut on_bus = marks.on_bus.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some(slot) = on_bus.get_mut(i) {
                        slot.get_or_insert(now);
                    }
                }
            }
        })
    };

    // Warm-up: every connection open, the consumer's pull under way.
    for i in 0..WARMUP {
        let mut tx = producer_db.begin().await?;
        outbox::enqueue(&mut tx, &counting::event(&format!("warm-{i}"))).await?;
        tx.commit().await?;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    wait_until("warm-up", SETTLE, || {
        marks.warm_applied.load(Ordering::Relaxed) >= WARMUP
    })
    .await?;

    let period = Duration::from_secs_f64(1.0 / f64::from(args.rate));
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut committed = Vec::with_capacity(n);
    let mut commit_times = Vec::with_capacity(n);
    let started = Instant::now();
    for i in 0..n {
        ticker.tick().await;
        let event = counting::event(&format!("lat-{i}"));
        let before = Instant::now();
        let mut tx = producer_db.begin().await?;
        outbox::enqueue(&mut tx, &event).await?;
        tx.commit().await?;
        let at = Instant::now();
        committed.push(at);
        commit_times.push(at - before);
    }
    let produced_in = started.elapsed();
    let achieved = n as f64 / produced_in.as_secs_f64();
    println!(
        "  produced {n} events in {:.2} s ({achieved:.0}/s); waiting for the projection",
        produced_in.as_secs_f64()
    );
    let settled = wait_until("latency run", SETTLE, || {
        marks.applied_count.load(Ordering::Relaxed) >= n
    })
    .await;
    // Let a late duplicate show itself before counting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    shutdown.trigger();
    let _ = tokio::time::timeout(Duration::from_secs(10), relay_task).await;
    let _ = tokio::time::timeout(Duration::from_secs(10), consumer_task).await;
    watcher_task.abort();

    let mut problems = Vec::new();
    if let Err(e) = settled {
        problems.push(e.to_string());
    }
    let (distinct, most) = counting::applied(&consumer_db).await?;
    let in_stream = stream_messages(&producer_bus).await?;
    let expected = (n + WARMUP) as i64;
    let applied = marks
        .applied
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let on_bus = marks
        .on_bus
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let applied_once = applied.iter().filter(|a| a.is_some()).count();
    let exactly_once = applied_exactly_once(&consumer_db).await?;
    if distinct != expected || most != 1 || in_stream != expected as u64 {
        problems.push(format!(
            "latency run: {distinct} of {expected} events applied, at most {most} times each, \
             {in_stream} in the stream"
        ));
    }
    let reapplied = marks.reapplied.load(Ordering::Relaxed);
    if reapplied > 0 {
        println!("  note: {reapplied} applies were retried (a transaction failed and ran again)");
    }

    let since =
        |at: &Option<Instant>, from: &Instant| at.map(|t| t.saturating_duration_since(*from));
    let end_to_end: Vec<Duration> = applied
        .iter()
        .zip(&committed)
        .filter_map(|(a, c)| since(a, c))
        .collect();
    let to_bus: Vec<Duration> = on_bus
        .iter()
        .zip(&committed)
        .filter_map(|(b, c)| since(b, c))
        .collect();
    let slow_commits = commit_times
        .iter()
        .filter(|d| **d > Duration::from_millis(5))
        .count();
    let result = Latency {
        achieved,
        exactly_once,
        end_to_end: spread(end_to_end),
        to_bus: spread(to_bus),
        commit: spread(commit_times),
        problems,
    };
    let e = &result.end_to_end;
    println!(
        "  commit → projection: n={applied_once} p50 {} p90 {} p99 {} max {} ms",
        ms(e.p50),
        ms(e.p90),
        ms(e.p99),
        ms(e.max)
    );
    println!(
        "  commit → on the bus: p50 {} p99 {} ms; producer commit p50 {} p99 {} ms ({slow_commits} over 5 ms)",
        ms(result.to_bus.p50),
        ms(result.to_bus.p99),
        ms(result.commit.p50),
        ms(result.commit.p99)
    );
    producer_db.close().await;
    consumer_db.close().await;
    Ok(result)
}

// ---------------------------------------------------------------------------
// Token verification per second per core
// ---------------------------------------------------------------------------

struct TokenFigures {
    threads: usize,
    token_len: usize,
    verifier_one: f64,
    raw_one: f64,
    verifier_all: f64,
    raw_all: f64,
}

/// Runs `work` (one verification, `false` on failure) on `threads` threads
/// for `seconds`; the total rate, verifications per second.
fn rate_on_threads(
    threads: usize,
    seconds: u32,
    work: Arc<dyn Fn() -> bool + Send + Sync>,
) -> Result<f64> {
    let run_for = Duration::from_secs(u64::from(seconds));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let work = work.clone();
            std::thread::spawn(move || {
                let started = Instant::now();
                let mut count = 0u64;
                let mut failed = 0u64;
                while started.elapsed() < run_for {
                    for _ in 0..64 {
                        if work() {
                            count += 1;
                        } else {
                            failed += 1;
                        }
                    }
                }
                (count, failed, started.elapsed())
            })
        })
        .collect();
    let mut total = 0.0;
    for h in handles {
        let (count, failed, elapsed) = h
            .join()
            .map_err(|_| anyhow::anyhow!("a verification thread panicked"))?;
        if failed > 0 {
            bail!("{failed} verifications failed");
        }
        total += count as f64 / elapsed.as_secs_f64().max(1e-9);
    }
    Ok(total)
}

/// A counselor's access token as identity issues it, verified by
/// `auth::Verifier` (keys fetched once, then cached) and, as the baseline,
/// by a bare Ed25519 verify of the same signing input and signature.
fn tokens(seconds: u32, threads: usize) -> Result<TokenFigures> {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use eva_platform::auth::{Role, TokenSigner, Verifier};

    let config = eva_platform::Config::default();
    let (issuer, audience) = (config.auth.issuer.clone(), config.auth.audience.clone());
    let signer = TokenSigner::generate();
    let claims = TokenSigner::claims(
        &issuer,
        &audience,
        &uuid::Uuid::now_v7().to_string(),
        vec![Role::Counselor],
        vec![
            uuid::Uuid::now_v7().to_string(),
            uuid::Uuid::now_v7().to_string(),
        ],
        Duration::from_secs(900),
    );
    let token = signer.sign(&claims);
    let jwk = signer.jwk();
    let fetches = Arc::new(AtomicUsize::new(0));
    let verifier = {
        let (jwk, fetches) = (jwk.clone(), fetches.clone());
        Verifier::new(
            &issuer,
            &audience,
            Arc::new(move || {
                fetches.fetch_add(1, Ordering::Relaxed);
                let jwk = jwk.clone();
                Box::pin(async move { Ok(vec![jwk]) })
            }),
        )
    };
    futures::executor::block_on(verifier.verify(&token)).context("first verification")?;

    let (input, sig) = token.rsplit_once('.').context("token has a signature")?;
    let sig = ed25519_dalek::Signature::from_slice(&URL_SAFE_NO_PAD.decode(sig)?)?;
    let x: [u8; 32] = URL_SAFE_NO_PAD
        .decode(&jwk.x)?
        .as_slice()
        .try_into()
        .context("32-byte key")?;
    let key = ed25519_dalek::VerifyingKey::from_bytes(&x)?;
    let input = input.as_bytes().to_vec();

    let through_verifier: Arc<dyn Fn() -> bool + Send + Sync> = {
        let (verifier, token) = (verifier.clone(), token.clone());
        Arc::new(move || futures::executor::block_on(verifier.verify(&token)).is_ok())
    };
    let raw: Arc<dyn Fn() -> bool + Send + Sync> = Arc::new(move || {
        use ed25519_dalek::Verifier as _;
        key.verify(&input, &sig).is_ok()
    });
    let verifier_one = rate_on_threads(1, seconds, through_verifier.clone())?;
    let raw_one = rate_on_threads(1, seconds, raw.clone())?;
    let verifier_all = rate_on_threads(threads, seconds, through_verifier)?;
    let raw_all = rate_on_threads(threads, seconds, raw)?;
    if fetches.load(Ordering::Relaxed) != 1 {
        bail!("the verifier fetched its keys more than once");
    }
    println!(
        "  token of {} bytes; 1 thread: verifier {verifier_one:.0}/s, raw Ed25519 {raw_one:.0}/s; \
         {threads} threads: verifier {verifier_all:.0}/s, raw {raw_all:.0}/s",
        token.len()
    );
    Ok(TokenFigures {
        threads,
        token_len: token.len(),
        verifier_one,
        raw_one,
        verifier_all,
        raw_all,
    })
}

fn print_tokens(t: &TokenFigures) {
    row(
        &format!("token verify, 1 thread ({} B token) (/s)", t.token_len),
        &format!("{:.0}", t.verifier_one),
        "",
    );
    row(
        "raw Ed25519 verify, 1 thread (/s)",
        &format!("{:.0}", t.raw_one),
        "",
    );
    row(
        "verifier / raw Ed25519, 1 thread",
        &format!("{:.2}x", t.verifier_one / t.raw_one.max(1e-9)),
        "",
    );
    row(
        &format!("token verify, {} threads, total (/s)", t.threads),
        &format!("{:.0}", t.verifier_all),
        "",
    );
    row(
        "token verify per core (/s)",
        &format!("{:.0}", t.verifier_all / t.threads as f64),
        "",
    );
    row(
        &format!("raw Ed25519, {} threads, total (/s)", t.threads),
        &format!("{:.0}", t.raw_all),
        "",
    );
}

// ---------------------------------------------------------------------------
// Consent check latency from the local projection
// ---------------------------------------------------------------------------

/// A small deterministic generator (xorshift64*): the same lookups each run.
struct Lookups(u64);

impl Lookups {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn pick(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// An event as the consumer would hand it to the projection.
fn envelope(subject: &str, aggregate: &str, message: &impl prost::Message) -> Envelope {
    Envelope {
        id: uuid::Uuid::now_v7(),
        nats_subject: subject.to_owned(),
        event_type: subject.to_owned(),
        source: "/eva/identity".into(),
        aggregate_id: Some(aggregate.to_owned()),
        time: time::OffsetDateTime::now_utc(),
        payload: message.encode_to_vec().into(),
        stream_sequence: 0,
        delivered: 1,
    }
}

fn granted(
    consent_id: &str,
    person_id: &str,
    structure_id: &str,
    purposes: &[eva_proto::identity::v1::ConsentPurpose],
) -> eva_proto::identity::v1::ConsentGranted {
    eva_proto::identity::v1::ConsentGranted {
        consent_id: consent_id.to_owned(),
        person_id: person_id.to_owned(),
        grantee_structure_id: structure_id.to_owned(),
        domains: eva_platform::consent::default_domains()
            .map(|d| d.id.to_owned())
            .collect(),
        purposes: purposes.iter().map(|p| *p as i32).collect(),
        valid_from: "2026-01-01".into(),
        valid_until: "2099-12-31".into(),
        granted_at: None,
        replaces_consent_id: String::new(),
    }
}

struct ConsentFigures {
    grants: usize,
    fill: Timed,
    check_seq: Spread,
    check_seq_rate: f64,
    check_par_rate: f64,
    select_seq: Spread,
    select_seq_rate: f64,
    select_par_rate: f64,
    allowed_share: f64,
}

/// Times `n` sequential calls of `one`; their spread and rate.
async fn timed_calls<F, Fut>(n: usize, mut one: F) -> Result<(Spread, f64)>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let mut samples = Vec::with_capacity(n);
    let started = Instant::now();
    for i in 0..n {
        let t = Instant::now();
        one(i).await?;
        samples.push(t.elapsed());
    }
    let rate = n as f64 / started.elapsed().as_secs_f64().max(1e-9);
    Ok((spread(samples), rate))
}

/// One round trip doing nothing: the baseline of database timings. The cast
/// makes the type the same on both backends (PostgreSQL's `1` is INT4).
async fn select_one(db: &Db) -> Result<()> {
    let mut h = db.acquire().await?;
    let _: (i64,) = on_backend!(h.conn(), c => sqlx::query_as("SELECT CAST(1 AS BIGINT)")
        .fetch_one(&mut *c)
        .await)?;
    Ok(())
}

async fn consent_checks(dbs: &Databases, args: &Args) -> Result<ConsentFigures> {
    use eva_platform::consent::{Consents, DOMAINS, Purpose, today};
    use eva_proto::identity::v1::{ConsentPurpose, ConsentWithdrawn};

    let db = dbs.open("consents").await?;
    let consents = Consents::new(db.clone());
    let structures: Vec<String> = (0..3).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    let people: Vec<String> = (0..args.consent_people)
        .map(|_| uuid::Uuid::now_v7().to_string())
        .collect();
    // Structure 0 for accompaniment, 1 for orientation, 2 for both; one
    // person in 10 withdrew the consent to structure 0.
    let purposes: [&[ConsentPurpose]; 3] = [
        &[ConsentPurpose::Accompagnement],
        &[ConsentPurpose::Orientation],
        &[ConsentPurpose::Accompagnement, ConsentPurpose::Orientation],
    ];
    let started = Instant::now();
    let mut grants = 0usize;
    for (chunk_no, chunk) in people.chunks(500).enumerate() {
        let mut tx = db.begin().await?;
        for (i, person) in chunk.iter().enumerate() {
            for (s, structure) in structures.iter().enumerate() {
                let consent_id = uuid::Uuid::now_v7().to_string();
                let g = granted(&consent_id, person, structure, purposes[s]);
                let e = envelope("eva.consent.grant.granted", &consent_id, &g);
                consents.apply(&mut tx, &e).await?;
                grants += 1;
                if s == 0 && (chunk_no * 500 + i) % 10 == 0 {
                    let w = ConsentWithdrawn {
                        consent_id: consent_id.clone(),
                        person_id: person.clone(),
                        grantee_structure_id: structure.clone(),
                        withdrawn_at: None,
                    };
                    let e = envelope("eva.consent.grant.withdrawn", &consent_id, &w);
                    consents.apply(&mut tx, &e).await?;
                }
            }
        }
        tx.commit().await?;
    }
    let fill = Timed {
        count: grants,
        elapsed: started.elapsed(),
    };
    println!(
        "  filled {grants} grants in {:.2} s ({:.0} grants/s, through Projection::apply, 500 people a transaction)",
        fill.elapsed.as_secs_f64(),
        fill.rate()
    );

    let day = today();
    // A fourth structure nobody consented to: the "no consent" path too.
    let mut grantees = structures.clone();
    grantees.push(uuid::Uuid::now_v7().to_string());
    let lookups: Vec<(usize, usize, usize, Purpose)> = {
        let mut rng = Lookups(0x9e37_79b9_7f4a_7c15);
        (0..args.checks)
            .map(|_| {
                let purpose = if rng.pick(2) == 0 {
                    Purpose::Accompagnement
                } else {
                    Purpose::Orientation
                };
                (
                    rng.pick(people.len()),
                    rng.pick(grantees.len()),
                    rng.pick(DOMAINS.len()),
                    purpose,
                )
            })
            .collect()
    };
    let allowed = Arc::new(AtomicUsize::new(0));
    let check = |i: usize| {
        let (p, s, d, purpose) = lookups[i % lookups.len()];
        let (consents, people, grantees, day, allowed) =
            (&consents, &people, &grantees, &day, allowed.clone());
        async move {
            let decision = consents
                .check(&grantees[s], &people[p], DOMAINS[d].id, purpose, day)
                .await?;
            if decision.allowed {
                allowed.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        }
    };
    // Warm-up: every pooled connection open, pages in cache.
    for i in 0..1_000 {
        check(i).await?;
        select_one(&db).await?;
    }
    allowed.store(0, Ordering::Relaxed);
    let (check_seq, check_seq_rate) = timed_calls(args.checks, check).await?;
    let allowed_share = allowed.load(Ordering::Relaxed) as f64 / args.checks as f64;
    let (select_seq, select_seq_rate) = timed_calls(args.checks, |_| select_one(&db)).await?;

    // Many callers at once, as a busy service: one task per pooled connection.
    let tasks = POOL as usize;
    let per_task = args.checks.div_ceil(tasks);
    let started = Instant::now();
    let mut running = Vec::new();
    for t in 0..tasks {
        let (consents, people, grantees, day, lookups) = (
            consents.clone(),
            people.clone(),
            grantees.clone(),
            day.clone(),
            lookups.clone(),
        );
        running.push(tokio::spawn(async move {
            for i in 0..per_task {
                let (p, s, d, purpose) = lookups[(t * per_task + i) % lookups.len()];
                consents
                    .check(&grantees[s], &people[p], DOMAINS[d].id, purpose, &day)
                    .await?;
            }
            anyhow::Ok(())
        }));
    }
    for r in running {
        r.await??;
    }
    let check_par_rate = (tasks * per_task) as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut running = Vec::new();
    for _ in 0..tasks {
        let db = db.clone();
        running.push(tokio::spawn(async move {
            for _ in 0..per_task {
                select_one(&db).await?;
            }
            anyhow::Ok(())
        }));
    }
    for r in running {
        r.await??;
    }
    let select_par_rate = (tasks * per_task) as f64 / started.elapsed().as_secs_f64();
    println!(
        "  check: p50 {:.1} p99 {:.1} max {:.1} µs, {check_seq_rate:.0}/s sequential, {check_par_rate:.0}/s with {tasks} tasks ({:.0} % allowed)",
        us(check_seq.p50),
        us(check_seq.p99),
        us(check_seq.max),
        allowed_share * 100.0
    );
    println!(
        "  SELECT 1: p50 {:.1} p99 {:.1} max {:.1} µs, {select_seq_rate:.0}/s sequential, {select_par_rate:.0}/s with {tasks} tasks",
        us(select_seq.p50),
        us(select_seq.p99),
        us(select_seq.max)
    );
    db.close().await;
    Ok(ConsentFigures {
        grants,
        fill,
        check_seq,
        check_seq_rate,
        check_par_rate,
        select_seq,
        select_seq_rate,
        select_par_rate,
        allowed_share,
    })
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn print_consent(c: &ConsentFigures) {
    row(
        &format!("consent projection fill, {} grants (/s)", c.grants),
        &format!("{:.0}", c.fill.rate()),
        "",
    );
    row(
        "consent check p50 / p99 (µs)",
        &format!("{:.0} / {:.0}", us(c.check_seq.p50), us(c.check_seq.p99)),
        "",
    );
    row(
        "consent checks/s: sequential / 8 tasks",
        &format!("{:.0} / {:.0}", c.check_seq_rate, c.check_par_rate),
        "",
    );
    row(
        "baseline SELECT 1 p50 / p99 (µs)",
        &format!("{:.0} / {:.0}", us(c.select_seq.p50), us(c.select_seq.p99)),
        "",
    );
    row(
        "baseline SELECT 1/s: sequential / 8 tasks",
        &format!("{:.0} / {:.0}", c.select_seq_rate, c.select_par_rate),
        "",
    );
    row(
        "consent checks allowed (share)",
        &format!("{:.0} %", c.allowed_share * 100.0),
        "",
    );
}

// ---------------------------------------------------------------------------
// Withdrawal commit → denial lag
// ---------------------------------------------------------------------------

struct WithdrawalFigures {
    withdrawal: Spread,
    grant: Spread,
    polls_per_denial: f64,
}

/// Polls `check` until `done` holds, a short pause between polls; returns
/// when it did, and after how many checks.
async fn poll_until(
    consents: &eva_platform::consent::Consents,
    structure: &str,
    person: &str,
    day: &str,
    done: impl Fn(&eva_platform::consent::Decision) -> bool,
) -> Result<(Instant, usize)> {
    use eva_platform::consent::Purpose;
    let deadline = Instant::now() + SETTLE;
    let mut polls = 0usize;
    loop {
        let d = consents
            .check(structure, person, "mobilite", Purpose::Orientation, day)
            .await?;
        polls += 1;
        if done(&d) {
            return Ok((Instant::now(), polls));
        }
        if Instant::now() > deadline {
            bail!("the projection did not reach the expected decision: {d:?}");
        }
        // tokio's timer has a 1 ms grain: pause 200 µs on a blocking thread.
        tokio::task::spawn_blocking(|| std::thread::sleep(Duration::from_micros(200))).await?;
    }
}

async fn commit_event(
    db: &Db,
    subject: &str,
    aggregate: &str,
    msg: &impl prost::Message,
) -> Result<Instant> {
    let mut tx = db.begin().await?;
    outbox::enqueue(
        &mut tx,
        &Event::new("identity", subject, Some(aggregate.to_owned()), msg),
    )
    .await?;
    tx.commit().await?;
    Ok(Instant::now())
}

async fn withdrawal_lag(dbs: &Databases, args: &Args) -> Result<WithdrawalFigures> {
    use eva_platform::bus::streams;
    use eva_platform::consent::{self, Consents, Reason};
    use eva_proto::identity::v1::{ConsentPurpose, ConsentWithdrawn};

    let nats = NatsServer::start().await?;
    let producer_bus = Bus::connect(&BusConfig::default(), &nats.url(), "bench-identity").await?;
    for s in [streams::CONSENT, streams::IDENTITY] {
        producer_bus.ensure_stream(&s).await?;
    }
    let consumer_bus = Bus::connect(&BusConfig::default(), &nats.url(), "bench-service").await?;
    // Identity's database holds the outbox; the service's the projection.
    let identity_db = dbs.open("identity").await?;
    let service_db = dbs.open("service").await?;
    let consents = Consents::new(service_db.clone());
    let shutdown = Shutdown::new();
    let poll = Duration::from_millis(BusConfig::default().outbox_poll_ms);
    let mut tasks = Vec::new();
    let relay = Relay::new(identity_db.clone(), producer_bus, args.batch, poll);
    let relay_task = tokio::spawn(relay.run(shutdown.clone()));
    for sub in consent::subscriptions("bench") {
        let (bus, db, c, sd) = (
            consumer_bus.clone(),
            service_db.clone(),
            consents.clone(),
            shutdown.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let _ = consumer::run(bus, db, sub, c, sd).await;
        }));
    }
    let structure = uuid::Uuid::now_v7().to_string();
    let day = consent::today();
    let orientation = [ConsentPurpose::Orientation];

    let mut grant_lags = Vec::with_capacity(args.withdrawals);
    let mut withdrawal_lags = Vec::with_capacity(args.withdrawals);
    let mut polls = 0usize;
    let warmup = 20;
    for i in 0..warmup + args.withdrawals {
        let person = uuid::Uuid::now_v7().to_string();
        let consent_id = uuid::Uuid::now_v7().to_string();
        let g = granted(&consent_id, &person, &structure, &orientation);
        let committed =
            commit_event(&identity_db, "eva.consent.grant.granted", &consent_id, &g).await?;
        let (allowed_at, _) =
            poll_until(&consents, &structure, &person, &day, |d| d.allowed).await?;
        let w = ConsentWithdrawn {
            consent_id: consent_id.clone(),
            person_id: person.clone(),
            grantee_structure_id: structure.clone(),
            withdrawn_at: None,
        };
        let withdrawn =
            commit_event(&identity_db, "eva.consent.grant.withdrawn", &consent_id, &w).await?;
        let (denied_at, n) = poll_until(&consents, &structure, &person, &day, |d| {
            d.reason == Reason::ConsentWithdrawn
        })
        .await?;
        if i >= warmup {
            grant_lags.push(allowed_at - committed);
            withdrawal_lags.push(denied_at - withdrawn);
            polls += n;
        }
    }
    shutdown.trigger();
    let _ = tokio::time::timeout(Duration::from_secs(10), relay_task).await;
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
    }
    identity_db.close().await;
    service_db.close().await;
    let figures = WithdrawalFigures {
        withdrawal: spread(withdrawal_lags),
        grant: spread(grant_lags),
        polls_per_denial: polls as f64 / args.withdrawals as f64,
    };
    let (w, g) = (&figures.withdrawal, &figures.grant);
    println!(
        "  withdrawal commit → denied: p50 {} p90 {} p99 {} max {} ms ({:.1} checks per denial)",
        ms(w.p50),
        ms(w.p90),
        ms(w.p99),
        ms(w.max),
        figures.polls_per_denial
    );
    println!(
        "  grant commit → allowed (baseline): p50 {} p90 {} p99 {} max {} ms",
        ms(g.p50),
        ms(g.p90),
        ms(g.p99),
        ms(g.max)
    );
    Ok(figures)
}

fn print_withdrawal(f: &WithdrawalFigures) {
    let (w, g) = (&f.withdrawal, &f.grant);
    row(
        "withdrawal → denial p50 / p90 (ms)",
        &format!("{} / {}", ms(w.p50), ms(w.p90)),
        "",
    );
    row(
        "withdrawal → denial p99 / max (ms)",
        &format!("{} / {}", ms(w.p99), ms(w.max)),
        "",
    );
    row(
        "baseline grant → allowed p50 / p99 (ms)",
        &format!("{} / {}", ms(g.p50), ms(g.p99)),
        "",
    );
}

/// Reads of one full diagnostic through the gateway, and the hello-world
/// baseline loaded by the same client code in the same run.
struct DiagnosticRead {
    backend: Backend,
    clients: usize,
    /// Domains visible to the reader (all of them: the recording counselor).
    domains: usize,
    /// Sealed note blobs (domain × author) opened through identity per read.
    sealed: usize,
    /// Size of one answer's JSON body.
    body_bytes: usize,
    hello: Load,
    read: Load,
}

/// One closed-loop load: completions within the measured window.
struct Load {
    count: usize,
    window: Duration,
    errors: usize,
    first_error: Option<String>,
    latency: Spread,
}

impl Load {
    fn rate(&self) -> f64 {
        self.count as f64 / self.window.as_secs_f64()
    }
}

const LEVELS: [&str; 4] = ["frein_majeur", "frein", "sans_impact", "point_d_appui"];
/// Domains where the person adds a note to their self-rating.
const PERSON_NOTED_DOMAINS: usize = 3;

async fn diagnostic_read(args: &Args, problems: &mut Vec<String>) -> Result<DiagnosticRead> {
    let backend = match args.db {
        Backend::Sqlite => SandboxBackend::Sqlite,
        Backend::Postgres => SandboxBackend::Postgres,
    };
    let sb = Sandbox::start(backend).await?;
    let (path, token, sealed) = full_diagnostic(&sb).await?;
    let url = sb.url(&path);

    // One read to check what the load will fetch.
    let r = sb.http.get(&url).bearer_auth(&token).send().await?;
    let status = r.status();
    let body = r.bytes().await?;
    if status != reqwest::StatusCode::OK {
        bail!("GET {path}: {status} {}", String::from_utf8_lossy(&body));
    }
    let seen: serde_json::Value = serde_json::from_slice(&body)?;
    let domains = seen["domains"].as_array().map_or(0, |ds| {
        ds.iter().filter(|d| d["access"] == "visible").count()
    });
    println!(
        "  diagnostic: {domains} visible domains, {sealed} sealed note blobs, {} bytes of JSON",
        body.len()
    );

    let (hello_url, stop_hello, hello_task) = hello_server().await?;
    let run = Duration::from_secs(u64::from(args.diagnostic_seconds));
    let clients = args.diagnostic_clients;
    let hello = load_apart(hello_url, None, clients, run).await?;
    print_load("hello-world", &hello);
    let read = load_apart(url, Some(token), clients, run).await?;
    print_load("diagnostic read", &read);
    let _ = stop_hello.send(());
    let _ = tokio::time::timeout(Duration::from_secs(5), hello_task).await;
    for (name, l) in [("hello-world", &hello), ("diagnostic read", &read)] {
        if l.errors > 0 {
            problems.push(format!(
                "{name}: {} failed requests (first: {})",
                l.errors,
                l.first_error.as_deref().unwrap_or("?")
            ));
        }
    }
    println!(
        "  diagnostic / hello: throughput {:.3}x, p99 {:.1}x",
        read.rate() / hello.rate(),
        read.latency.p99.as_secs_f64() / hello.latency.p99.as_secs_f64()
    );
    sb.stop().await?;
    Ok(DiagnosticRead {
        backend: args.db,
        clients,
        domains,
        sealed,
        body_bytes: body.len(),
        hello,
        read,
    })
}

/// Creates through the gateway a structure, its counselor, a person and one
/// full diagnostic (every item rated by the counselor with a note in every
/// domain, every item self-rated by the person with notes in a few domains),
/// shared. Returns its path, the counselor's token and how many sealed note
/// blobs a read opens.
async fn full_diagnostic(sb: &Sandbox) -> Result<(String, String, usize)> {
    let operator = sb.token("ops-bench", vec![Role::Operator], vec![]).await?;
    let (s, v) = call(
        sb,
        Method::POST,
        "/api/v1/structures",
        &operator,
        Some(json!({ "name": "Chantier bench", "siret": "41735218600007", "kind": "association", "commune_insee": "27229" })),
    )
    .await?;
    if s != StatusCode::CREATED {
        bail!("creating the structure: {s} {v}");
    }
    let structure = v["id"].as_str().context("structure id")?.to_owned();
    let counselor = sb
        .token(
            "counselor-bench",
            vec![Role::Counselor],
            vec![structure.clone()],
        )
        .await?;
    let (s, v) = call(
        sb,
        Method::POST,
        "/api/v1/people",
        &counselor,
        Some(json!({
            "structure_id": structure,
            "first_name": "Ana",
            "last_name": "Zabalveytia",
            "birth_date": "1985-05-20",
            "commune_insee": "27229",
        })),
    )
    .await?;
    if s != StatusCode::CREATED {
        bail!("creating the person: {s} {v}");
    }
    let person = v["id"].as_str().context("person id")?.to_owned();
    let mut claims = TokenSigner::claims(
        &sb.config.auth.issuer,
        &sb.config.auth.audience,
        &uuid::Uuid::now_v7().to_string(),
        vec![Role::Person],
        vec![],
        Duration::from_secs(600),
    );
    claims.person_id = Some(person.clone());
    let person_token = eva_identity::sign_claims(&sb.config, &claims).await?;

    let (s, referentiel) = call(sb, Method::GET, "/api/v1/referentiel", &counselor, None).await?;
    if s != StatusCode::OK {
        bail!("reading the référentiel: {s} {referentiel}");
    }
    let domains: Vec<(String, Vec<String>)> = referentiel["domains"]
        .as_array()
        .context("référentiel domains")?
        .iter()
        .map(|d| {
            let items = d["items"]
                .as_array()
                .map(|is| {
                    is.iter()
                        .filter_map(|i| i["id"].as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            (d["id"].as_str().unwrap_or_default().to_owned(), items)
        })
        .collect();

    // The draft, once diagnostics' accompaniments projection has caught up.
    let deadline = Instant::now() + Duration::from_secs(15);
    let draft = loop {
        let (s, v) = call(
            sb,
            Method::POST,
            &format!("/api/v1/people/{person}/diagnostics"),
            &counselor,
            Some(json!({ "structure_id": structure })),
        )
        .await?;
        if s == StatusCode::CREATED {
            break v;
        }
        if Instant::now() > deadline {
            bail!("opening the diagnostic: {s} {v}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let path = format!(
        "/api/v1/diagnostics/{}",
        draft["id"].as_str().context("diagnostic id")?
    );

    let mut counselor_ratings = Vec::new();
    let mut person_ratings = Vec::new();
    let mut sealed = 0;
    for (d, (domain, items)) in domains.iter().enumerate() {
        for (i, item) in items.iter().enumerate() {
            let mut c = json!({ "item_id": item, "level": LEVELS[(d + i) % LEVELS.len()] });
            if i == 0 {
                c["note"] = json!(format!(
                    "Point fait en entretien sur {domain} : démarches engagées, à revoir dans un mois"
                ));
            }
            counselor_ratings.push(c);
            let mut p = json!({ "item_id": item, "level": LEVELS[(d + i + 1) % LEVELS.len()] });
            if i == 0 && d < PERSON_NOTED_DOMAINS {
                p["note"] = json!(format!("Ce que j'en pense pour {domain}"));
            }
            person_ratings.push(p);
        }
        if !items.is_empty() {
            sealed += 1 + usize::from(d < PERSON_NOTED_DOMAINS);
        }
    }
    let (s, v) = call(
        sb,
        Method::PATCH,
        &path,
        &counselor,
        Some(json!({ "ratings": counselor_ratings })),
    )
    .await?;
    if s != StatusCode::OK {
        bail!("rating the diagnostic: {s} {v}");
    }
    let (s, v) = call(
        sb,
        Method::POST,
        &format!("{path}/self-rating"),
        &person_token,
        Some(json!({ "ratings": person_ratings })),
    )
    .await?;
    if s != StatusCode::OK {
        bail!("self-rating: {s} {v}");
    }
    let (s, v) = call(
        sb,
        Method::POST,
        &format!("{path}/share"),
        &counselor,
        Some(json!({})),
    )
    .await?;
    if s != StatusCode::OK {
        bail!("sharing the diagnostic: {s} {v}");
    }
    Ok((path, counselor, sealed))
}

async fn call(
    sb: &Sandbox,
    method: Method,
    path: &str,
    token: &str,
    body: Option<serde_json::Value>,
) -> Result<(StatusCode, serde_json::Value)> {
    let mut req = sb.http.request(method, sb.url(path)).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await?;
    let status = r.status();
    let text = r.text().await?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    ))
}

/// An axum hello-world on `127.0.0.1:0` with `TCP_NODELAY`, on the same
/// runtime as the sandbox's services.
async fn hello_server() -> Result<(
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
)> {
    use axum::serve::ListenerExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let app = axum::Router::new().route("/", axum::routing::get(|| async { "Hello, World!" }));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
    });
    Ok((format!("http://{addr}/"), stop, task))
}

/// Runs [`load`] on a thread and a current-thread runtime of its own, so the
/// load generator gets at most one core and the servers keep the runtime.
async fn load_apart(
    url: String,
    token: Option<String>,
    clients: usize,
    run: Duration,
) -> Result<Load> {
    tokio::task::spawn_blocking(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("building the load runtime")?
            .block_on(load(url, token, clients, run))
    })
    .await?
}

/// `clients` closed loops of `GET url` on one keep-alive reqwest client for
/// one second of warm-up then `run`; counts and times the requests that
/// start and finish within `run`.
async fn load(url: String, token: Option<String>, clients: usize, run: Duration) -> Result<Load> {
    let http = reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(clients)
        .build()?;
    let from = Instant::now() + Duration::from_secs(1);
    let until = from + run;
    let mut loops: FuturesUnordered<_> = (0..clients)
        .map(|_| {
            let (http, url, token) = (&http, &url, &token);
            async move {
                let mut samples = Vec::new();
                let mut errors = 0usize;
                let mut first_error = None;
                loop {
                    let t0 = Instant::now();
                    if t0 >= until {
                        break;
                    }
                    let mut req = http.get(url);
                    if let Some(t) = token {
                        req = req.bearer_auth(t);
                    }
                    let outcome = match req.send().await {
                        Ok(r) if r.status().is_success() => {
                            r.bytes().await.map(|_| ()).map_err(|e| e.to_string())
                        }
                        Ok(r) => Err(format!(
                            "{} {}",
                            r.status(),
                            r.text().await.unwrap_or_default()
                        )),
                        Err(e) => Err(e.to_string()),
                    };
                    let t1 = Instant::now();
                    match outcome {
                        Ok(()) if t0 >= from && t1 <= until => samples.push(t1 - t0),
                        Ok(()) => {}
                        Err(e) => {
                            errors += 1;
                            first_error.get_or_insert(e);
                        }
                    }
                }
                (samples, errors, first_error)
            }
        })
        .collect();
    let mut samples = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    while let Some((s, e, f)) = loops.next().await {
        samples.extend(s);
        errors += e;
        if first_error.is_none() {
            first_error = f;
        }
    }
    Ok(Load {
        count: samples.len(),
        window: run,
        errors,
        first_error,
        latency: spread(samples),
    })
}

fn print_load(name: &str, l: &Load) {
    let s = &l.latency;
    println!(
        "  {name}: {:.0} req/s; p50 {} p90 {} p99 {} max {} ms; {} errors",
        l.rate(),
        ms(s.p50),
        ms(s.p90),
        ms(s.p99),
        ms(s.max),
        l.errors
    );
}

fn print_diagnostic(d: &DiagnosticRead) {
    println!(
        "diagnostic read: {}; {} clients; {} domains, {} sealed blobs, {} B",
        d.backend.label(),
        d.clients,
        d.domains,
        d.sealed,
        d.body_bytes
    );
    let (h, r) = (&d.hello, &d.read);
    row("axum hello-world (req/s)", &format!("{:.0}", h.rate()), "");
    row(
        "axum hello-world p50 / p99 (ms)",
        &format!("{} / {}", ms(h.latency.p50), ms(h.latency.p99)),
        "",
    );
    row("diagnostic read (req/s)", &format!("{:.0}", r.rate()), "");
    row(
        "diagnostic read p50 / p90 (ms)",
        &format!("{} / {}", ms(r.latency.p50), ms(r.latency.p90)),
        "",
    );
    row(
        "diagnostic read p99 / max (ms)",
        &format!("{} / {}", ms(r.latency.p99), ms(r.latency.max)),
        "",
    );
    row(
        "diagnostic / hello throughput",
        &format!("{:.3}x", r.rate() / h.rate()),
        "",
    );
    row(
        "diagnostic / hello p99",
        &format!(
            "{:.1}x",
            r.latency.p99.as_secs_f64() / h.latency.p99.as_secs_f64()
        ),
        "",
    );
}
