//! Section `referrals`: referrals per second through the whole path, gateway
//! → referrals service (identity calls, consent check, one transaction with
//! the outbox rows) → outbox relay → JetStream (`EVA_PARTNERS`) → a partner's
//! pull subscriber, and the end-to-end latency of each referral from the
//! client's send to the partner's receipt. Baseline: the axum hello-world
//! loaded by the same machinery at the same concurrency, in the same run.
//!
//! Every referral the load created must reach the partner exactly once (one
//! stream message per referral id); a lost or duplicated one is a problem
//! and the bench exits non-zero.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use async_nats::jetstream;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use eva_platform::auth::Role;
use eva_platform::bus::streams;
use eva_platform::sealing::Sealer;
use eva_proto::identity::v1 as idpb;
use eva_proto::identity::v1::person_service_client::PersonServiceClient;
use eva_proto::referrals::v1::ReferralSent;
use eva_tests::api::{consent, patch, person, person_token, post, structure, until};
use eva_tests::sandbox::{Backend as SandboxBackend, Sandbox};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use prost::Message;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tonic::metadata::MetadataMap;

use super::{Args, Backend, Load, Spread, hello_server, load_apart, ms, print_load, row, spread};

const REASON: &str = "Orientation mobilité : accompagnement vers le permis B (bench).";
const NOTE: &str = "Code obtenu en mars, conduite à reprendre.";
const FIRST: [&str; 5] = ["Ana", "Bruno", "Chloé", "Djamel", "Élise"];
const LAST: [&str; 10] = [
    "Zabalveytia",
    "Martin",
    "Nguyen",
    "Diallo",
    "Lefèvre",
    "Moreau",
    "Bernard",
    "Petit",
    "Roux",
    "Garcia",
];
/// How long the partner may take to receive the last referral of a load.
const DRAIN: Duration = Duration::from_secs(60);
/// Sequential calls of each single-step probe (identity calls, raw JetStream).
const PROBES: usize = 300;
/// Length of the one-client load that shows the path's latency without queueing.
const ALONE: Duration = Duration::from_secs(3);

/// With or without a diagnostic travelling with the referral.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    Plain,
    Diagnostic,
}

impl Variant {
    fn label(self) -> &'static str {
        match self {
            Variant::Plain => "referral",
            Variant::Diagnostic => "ref+diag",
        }
    }
}

/// What the partner's subscriber saw, per referral id.
#[derive(Default)]
struct Receipts {
    /// Receipt instant and stream sequence of every delivery.
    by_id: HashMap<String, Vec<(Instant, u64)>>,
    /// Deliveries JetStream made more than once (same stream sequence).
    redelivered: usize,
    /// Messages whose body is not a `ReferralSent`.
    undecodable: usize,
}

/// The partner's pull subscriber, on a thread and a runtime of its own (a
/// partner is another process).
struct Partner {
    receipts: Arc<Mutex<Receipts>>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<()>>,
}

/// One referral the load created.
struct Sent {
    id: String,
    /// Before the request was sent.
    at: Instant,
    /// When the answer's body was read.
    answered: Instant,
    /// Sent and answered within the measured window.
    measured: bool,
}

/// One closed-loop POST load.
struct Posted {
    from: Instant,
    until: Instant,
    sent: Vec<Sent>,
    errors: usize,
    first_error: Option<String>,
}

impl Posted {
    fn window(&self) -> Duration {
        self.until - self.from
    }

    fn http(&self) -> Load {
        let samples: Vec<Duration> = self
            .sent
            .iter()
            .filter(|s| s.measured)
            .map(|s| s.answered - s.at)
            .collect();
        Load {
            count: samples.len(),
            window: self.window(),
            errors: self.errors,
            first_error: self.first_error.clone(),
            latency: spread(samples),
        }
    }
}

/// One load at one concurrency, and its hello-world baseline.
struct Run {
    variant: Variant,
    clients: usize,
    hello: Option<Load>,
    http: Load,
    /// Receipts by the partner within the measured window, per second.
    received_rate: f64,
    /// Client send → partner receipt, referrals sent and answered in the window.
    end_to_end: Spread,
    /// Client's answer → partner receipt (0 when the event came first).
    after_answer: Spread,
    created: usize,
    reached_once: usize,
    lost: usize,
    duplicated: usize,
}

pub(super) struct Referrals {
    backend: Backend,
    people: usize,
    seconds: u32,
    runs: Vec<Run>,
    alone: Run,
    seal: Spread,
    get_person: Spread,
    raw_nats: Spread,
    redelivered: usize,
    unexpected: usize,
}

pub(super) async fn referrals(args: &Args, problems: &mut Vec<String>) -> Result<Referrals> {
    let backend = match args.db {
        Backend::Sqlite => SandboxBackend::Sqlite,
        Backend::Postgres => SandboxBackend::Postgres,
    };
    let sb = Sandbox::start(backend).await?;
    let setup = Instant::now();
    let fx = fixtures(&sb, args.referral_people, !args.referral_skip_diagnostic).await?;
    println!(
        "  setup: association A, partner P, {} people consenting mobilite/orientation to P{}, in {:.1} s",
        fx.people.len(),
        if fx.diagnostics.is_empty() {
            ""
        } else {
            ", each with a shared diagnostic"
        },
        setup.elapsed().as_secs_f64()
    );

    let partner = subscribe(&sb, &fx.partner).await?;
    // Referrals the bench created, all variants, for the exactly-once check.
    let mut expected: BTreeSet<String> = fx.ready.iter().cloned().collect();
    wait_received(&partner, &expected).await?;

    let url = sb.url("/api/v1/referrals");
    let plain = bodies(&fx, Variant::Plain);
    let run = Duration::from_secs(u64::from(args.referral_seconds));

    // The path alone: one client, no queueing.
    let alone = load_posts(url.clone(), fx.counselor.clone(), plain.clone(), 1, ALONE).await?;
    let alone = settle(Variant::Plain, 1, None, alone, &partner, &mut expected).await?;
    print_run(&alone);
    let (seal, get_person) = identity_calls(&sb, &fx).await?;
    println!(
        "  identity alone, {PROBES} sequential calls each: SealForPerson p50 {} p99 {} ms; \
         GetPerson p50 {} p99 {} ms",
        ms(seal.p50),
        ms(seal.p99),
        ms(get_person.p50),
        ms(get_person.p99)
    );

    let (hello_url, stop_hello, hello_task) = hello_server().await?;
    let mut runs = Vec::new();
    let mut variants = vec![Variant::Plain];
    if !fx.diagnostics.is_empty() {
        variants.push(Variant::Diagnostic);
    }
    for variant in variants {
        let b = bodies(&fx, variant);
        for &clients in &args.referral_clients {
            let hello = if variant == Variant::Plain {
                let h = load_apart(hello_url.clone(), None, clients, run).await?;
                print_load(&format!("hello-world, {clients} clients"), &h);
                Some(h)
            } else {
                None
            };
            let posted =
                load_posts(url.clone(), fx.counselor.clone(), b.clone(), clients, run).await?;
            let r = settle(variant, clients, hello, posted, &partner, &mut expected).await?;
            print_run(&r);
            runs.push(r);
        }
    }
    let _ = stop_hello.send(());
    let _ = tokio::time::timeout(Duration::from_secs(5), hello_task).await;

    let raw_nats = raw_jetstream(&sb).await?;
    println!(
        "  raw JetStream publish → pull consume, one message at a time ({PROBES}): p50 {} p99 {} max {} ms",
        ms(raw_nats.p50),
        ms(raw_nats.p99),
        ms(raw_nats.max)
    );

    let _ = partner.stop.send(());
    partner
        .task
        .await
        .context("partner subscriber panicked")?
        .context("partner subscriber")?;
    let (unexpected, undecodable, redelivered) = {
        let r = partner
            .receipts
            .lock()
            .map_err(|_| anyhow!("receipts poisoned"))?;
        let unexpected = r.by_id.keys().filter(|id| !expected.contains(*id)).count();
        (unexpected, r.undecodable, r.redelivered)
    };
    for r in std::iter::once(&alone).chain(&runs) {
        let name = format!("{}, {} clients", r.variant.label(), r.clients);
        if r.lost > 0 || r.duplicated > 0 {
            problems.push(format!(
                "{name}: {} created, {} never reached the partner, {} reached it more than once",
                r.created, r.lost, r.duplicated
            ));
        }
        if r.http.errors > 0 {
            problems.push(format!(
                "{name}: {} failed requests (first: {})",
                r.http.errors,
                r.http.first_error.as_deref().unwrap_or("?")
            ));
        }
    }
    if let Some(h) = runs
        .iter()
        .filter_map(|r| r.hello.as_ref())
        .find(|h| h.errors > 0)
    {
        problems.push(format!(
            "hello-world: {} failed requests (first: {})",
            h.errors,
            h.first_error.as_deref().unwrap_or("?")
        ));
    }
    if unexpected > 0 || undecodable > 0 {
        problems.push(format!(
            "partner received {unexpected} referrals the bench did not create and {undecodable} \
             undecodable bodies"
        ));
    }
    sb.stop().await?;
    Ok(Referrals {
        backend: args.db,
        people: fx.people.len(),
        seconds: args.referral_seconds,
        runs,
        alone,
        seal,
        get_person,
        raw_nats,
        redelivered,
        unexpected,
    })
}

/// What the loads need: A, P, a counselor of A, the people (and their shared
/// diagnostics), and the referrals sent while waiting for the projections.
struct Fixtures {
    association: String,
    partner: String,
    counselor: String,
    people: Vec<String>,
    /// One shared diagnostic per person (same order), when asked for.
    diagnostics: Vec<String>,
    ready: Vec<String>,
}

async fn fixtures(sb: &Sandbox, n: usize, with_diagnostics: bool) -> Result<Fixtures> {
    let operator = sb.token("ops-bench", vec![Role::Operator], vec![]).await?;
    let a = structure(
        sb,
        &operator,
        "Chantier bench A",
        "41735218600007",
        "association",
    )
    .await?;
    let p = structure(
        sb,
        &operator,
        "Auto-école solidaire bench P",
        "51734218700005",
        "partner",
    )
    .await?;
    let counselor = sb
        .token("c", vec![Role::Counselor], vec![a.clone()])
        .await?;
    let mut people = Vec::with_capacity(n);
    for i in 0..n {
        let id = person(
            sb,
            &counselor,
            &a,
            FIRST[i % FIRST.len()],
            LAST[(i / FIRST.len()) % LAST.len()],
        )
        .await?;
        let token = person_token(sb, &id).await?;
        consent(sb, &token, &id, &p, &["mobilite"], &["orientation"]).await?;
        people.push(id);
    }
    let mut diagnostics = Vec::new();
    if with_diagnostics {
        for id in &people {
            diagnostics.push(shared_diagnostic(sb, &counselor, &a, id).await?);
        }
    }
    // Once per person: the referrals service's projections (accompaniment,
    // structures, consent) have caught up when the referral is created.
    let mut ready = Vec::with_capacity(n);
    for id in &people {
        let v = until(
            sb,
            Method::POST,
            "/api/v1/referrals",
            &counselor,
            Some(body(&a, &p, id, None)),
            |s, _| s == StatusCode::CREATED,
        )
        .await?;
        ready.push(v["id"].as_str().context("referral id")?.to_owned());
    }
    Ok(Fixtures {
        association: a,
        partner: p,
        counselor,
        people,
        diagnostics,
        ready,
    })
}

/// A diagnostic of `person` by `structure`: mobilite (with a note) and
/// logement rated, shared. Only mobilite is consented, so only it travels.
async fn shared_diagnostic(
    sb: &Sandbox,
    counselor: &str,
    structure: &str,
    person: &str,
) -> Result<String> {
    let d = until(
        sb,
        Method::POST,
        &format!("/api/v1/people/{person}/diagnostics"),
        counselor,
        Some(json!({ "structure_id": structure })),
        |s, _| s == StatusCode::CREATED,
    )
    .await?;
    let id = d["id"].as_str().context("diagnostic id")?.to_owned();
    let (s, v) = patch(
        sb,
        &format!("/api/v1/diagnostics/{id}"),
        counselor,
        json!({ "ratings": [
            { "item_id": "mobilite.permis", "level": "frein", "note": NOTE },
            { "item_id": "logement-hebergement.logement_stable", "level": "frein_majeur" },
        ] }),
    )
    .await?;
    if s != StatusCode::OK {
        bail!("rating the diagnostic: {s} {v}");
    }
    let (s, v) = post(
        sb,
        &format!("/api/v1/diagnostics/{id}/share"),
        counselor,
        json!({}),
    )
    .await?;
    if s != StatusCode::OK {
        bail!("sharing the diagnostic: {s} {v}");
    }
    Ok(id)
}

fn body(a: &str, p: &str, person: &str, diagnostic: Option<&str>) -> Value {
    let mut b = json!({
        "person_id": person,
        "sender_structure_id": a,
        "target_structure_id": p,
        "domains": ["mobilite"],
        "reason": REASON,
    });
    if let Some(d) = diagnostic {
        b["diagnostic_id"] = json!(d);
    }
    b
}

/// The request bodies of a load, one per person, serialised once.
fn bodies(fx: &Fixtures, variant: Variant) -> Arc<Vec<Vec<u8>>> {
    Arc::new(
        fx.people
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let d = match variant {
                    Variant::Plain => None,
                    Variant::Diagnostic => fx.diagnostics.get(i).map(String::as_str),
                };
                body(&fx.association, &fx.partner, id, d)
                    .to_string()
                    .into_bytes()
            })
            .collect(),
    )
}

/// Starts the partner's pull consumer on `eva.partners.<P>.referrals.sent`
/// and returns once it is pulling.
async fn subscribe(sb: &Sandbox, partner: &str) -> Result<Partner> {
    let url = sb.nats.url();
    let subject = format!("eva.partners.{partner}.referrals.sent");
    let receipts = Arc::new(Mutex::new(Receipts::default()));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (ready, pulling) = tokio::sync::oneshot::channel::<()>();
    let r = receipts.clone();
    let task = tokio::task::spawn_blocking(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("building the partner's runtime")?
            .block_on(pull_referrals(url, subject, r, ready, stopped))
    });
    pulling
        .await
        .map_err(|_| anyhow!("the partner subscriber did not start"))?;
    Ok(Partner {
        receipts,
        stop,
        task,
    })
}

async fn pull_referrals(
    url: String,
    subject: String,
    receipts: Arc<Mutex<Receipts>>,
    ready: tokio::sync::oneshot::Sender<()>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) -> Result<()> {
    let client = async_nats::connect(&url)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    let js = jetstream::new(client);
    let stream = js.get_stream(streams::PARTNERS.name).await?;
    let consumer = stream
        .create_consumer(pull::Config {
            durable_name: Some("partner-bench".into()),
            filter_subject: subject,
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::Explicit,
            max_ack_pending: 10_000,
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    let _ = ready.send(());
    loop {
        let m = tokio::select! {
            _ = &mut stopped => return Ok(()),
            m = messages.next() => m,
        };
        let at = Instant::now();
        let m = match m {
            Some(Ok(m)) => m,
            Some(Err(e)) => bail!("partner pull: {e}"),
            None => bail!("partner pull ended"),
        };
        let seq = m.info().map(|i| i.stream_sequence).unwrap_or(0);
        {
            let mut r = receipts.lock().map_err(|_| anyhow!("receipts poisoned"))?;
            match ReferralSent::decode(m.payload.as_ref()) {
                Ok(e) => {
                    let seen = r.by_id.entry(e.referral_id).or_default();
                    if seen.iter().any(|(_, s)| *s == seq) {
                        r.redelivered += 1;
                    } else {
                        seen.push((at, seq));
                    }
                }
                Err(_) => r.undecodable += 1,
            }
        }
        m.ack().await.map_err(|e| anyhow!("ack: {e}"))?;
    }
}

/// Waits until the partner holds every id of `expected` (or [`DRAIN`]).
async fn wait_received(partner: &Partner, expected: &BTreeSet<String>) -> Result<()> {
    let deadline = Instant::now() + DRAIN;
    loop {
        let missing = {
            let r = partner
                .receipts
                .lock()
                .map_err(|_| anyhow!("receipts poisoned"))?;
            expected
                .iter()
                .filter(|id| !r.by_id.contains_key(*id))
                .count()
        };
        if missing == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            println!(
                "  partner: {missing} referrals still missing after {} s",
                DRAIN.as_secs()
            );
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits for the load's referrals to reach the partner, then joins sends
/// and receipts.
async fn settle(
    variant: Variant,
    clients: usize,
    hello: Option<Load>,
    posted: Posted,
    partner: &Partner,
    expected: &mut BTreeSet<String>,
) -> Result<Run> {
    let ids: BTreeSet<String> = posted.sent.iter().map(|s| s.id.clone()).collect();
    wait_received(partner, &ids).await?;
    expected.extend(ids.iter().cloned());
    let r = partner
        .receipts
        .lock()
        .map_err(|_| anyhow!("receipts poisoned"))?;
    let mut end_to_end = Vec::new();
    let mut after_answer = Vec::new();
    let (mut reached_once, mut lost, mut duplicated) = (0, 0, 0);
    for s in &posted.sent {
        let got = r.by_id.get(&s.id).map_or(&[][..], Vec::as_slice);
        match got.len() {
            0 => lost += 1,
            1 => reached_once += 1,
            _ => duplicated += 1,
        }
        if let (true, Some((at, _))) = (s.measured, got.first()) {
            end_to_end.push(at.saturating_duration_since(s.at));
            after_answer.push(at.saturating_duration_since(s.answered));
        }
    }
    let received = r
        .by_id
        .iter()
        .filter(|(id, _)| ids.contains(*id))
        .filter_map(|(_, v)| v.first())
        .filter(|(at, _)| *at >= posted.from && *at <= posted.until)
        .count();
    drop(r);
    Ok(Run {
        variant,
        clients,
        hello,
        http: posted.http(),
        received_rate: received as f64 / posted.window().as_secs_f64(),
        end_to_end: spread(end_to_end),
        after_answer: spread(after_answer),
        created: posted.sent.len(),
        reached_once,
        lost,
        duplicated,
    })
}

/// [`post_referrals`] on a thread and a current-thread runtime of its own,
/// as the GET loads: the load generator gets at most one core.
async fn load_posts(
    url: String,
    token: String,
    bodies: Arc<Vec<Vec<u8>>>,
    clients: usize,
    run: Duration,
) -> Result<Posted> {
    tokio::task::spawn_blocking(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("building the load runtime")?
            .block_on(post_referrals(url, token, bodies, clients, run))
    })
    .await?
}

/// `clients` closed loops of `POST url` on one keep-alive reqwest client,
/// for one second of warm-up then `run`; client `c` sends its `k`-th
/// referral for person `(c + k × clients) mod n`. Every created referral is
/// kept (warm-up included) for the exactly-once check.
async fn post_referrals(
    url: String,
    token: String,
    bodies: Arc<Vec<Vec<u8>>>,
    clients: usize,
    run: Duration,
) -> Result<Posted> {
    let http = reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(clients)
        .build()?;
    let from = Instant::now() + Duration::from_secs(1);
    let until = from + run;
    let mut loops: FuturesUnordered<_> = (0..clients)
        .map(|c| {
            let (http, url, token, bodies) = (&http, &url, &token, &bodies);
            async move {
                let mut sent = Vec::new();
                let mut errors = 0usize;
                let mut first_error = None;
                for k in 0.. {
                    let at = Instant::now();
                    if at >= until {
                        break;
                    }
                    let b = bodies[(c + k * clients) % bodies.len()].clone();
                    let outcome = match http
                        .post(url)
                        .bearer_auth(token)
                        .header(reqwest::header::CONTENT_TYPE, "application/json")
                        .body(b)
                        .send()
                        .await
                    {
                        Ok(r) if r.status() == StatusCode::CREATED => match r.bytes().await {
                            Ok(body) => serde_json::from_slice::<Value>(&body)
                                .ok()
                                .and_then(|v| v["id"].as_str().map(str::to_owned))
                                .ok_or_else(|| "201 without an id".to_owned()),
                            Err(e) => Err(e.to_string()),
                        },
                        Ok(r) => Err(format!(
                            "{} {}",
                            r.status(),
                            r.text().await.unwrap_or_default()
                        )),
                        Err(e) => Err(e.to_string()),
                    };
                    let answered = Instant::now();
                    match outcome {
                        Ok(id) => sent.push(Sent {
                            id,
                            at,
                            answered,
                            measured: at >= from && answered <= until,
                        }),
                        Err(e) => {
                            errors += 1;
                            first_error.get_or_insert(e);
                        }
                    }
                }
                (sent, errors, first_error)
            }
        })
        .collect();
    let mut sent = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    while let Some((s, e, f)) = loops.next().await {
        sent.extend(s);
        errors += e;
        if first_error.is_none() {
            first_error = f;
        }
    }
    Ok(Posted {
        from,
        until,
        sent,
        errors,
        first_error,
    })
}

/// The two identity calls on a referral's path, alone and one at a time,
/// as the referrals service makes them (the counselor's token forwarded).
async fn identity_calls(sb: &Sandbox, fx: &Fixtures) -> Result<(Spread, Spread)> {
    let mut md = MetadataMap::new();
    md.insert(
        "authorization",
        format!("Bearer {}", fx.counselor)
            .parse()
            .context("authorization header")?,
    );
    let sealer = Sealer::connect(&sb.config, "referrals")?;
    let mut seal = Vec::with_capacity(PROBES);
    for i in 0..PROBES {
        let person = &fx.people[i % fx.people.len()];
        let plaintext = format!("{{\"reason\":\"{REASON}\"}}").into_bytes();
        let t0 = Instant::now();
        sealer
            .seal(
                &md,
                person,
                format!("referral:{}:details", uuid::Uuid::now_v7()),
                plaintext,
            )
            .await
            .context("SealForPerson")?;
        seal.push(t0.elapsed());
    }
    let channel = tonic::transport::Endpoint::from_shared(sb.config.identity.endpoint.clone())?
        .tcp_nodelay(true)
        .connect()
        .await?;
    let mut client = PersonServiceClient::new(channel);
    let mut get = Vec::with_capacity(PROBES);
    for i in 0..PROBES {
        let person_id = fx.people[i % fx.people.len()].clone();
        let t0 = Instant::now();
        client
            .get_person(Sealer::request(&md, idpb::GetPersonRequest { person_id }))
            .await
            .context("GetPerson")?;
        get.push(t0.elapsed());
    }
    Ok((spread(seal), spread(get)))
}

/// Publish → pull-consume latency of one message at a time on the
/// sandbox's nats-server, in a stream of its own (file storage, as the
/// EVA streams), with the publish ack awaited after the receipt.
async fn raw_jetstream(sb: &Sandbox) -> Result<Spread> {
    let js = jetstream::new(sb.nats.connect().await?);
    let stream = js
        .get_or_create_stream(jetstream::stream::Config {
            name: "BENCH_PING".into(),
            subjects: vec!["bench.ping".into()],
            ..Default::default()
        })
        .await?;
    let consumer = stream
        .create_consumer(pull::Config {
            durable_name: Some("bench-ping".into()),
            ack_policy: AckPolicy::Explicit,
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    let payload = ReferralSent::default().encode_to_vec();
    let mut samples = Vec::with_capacity(PROBES);
    for _ in 0..PROBES {
        let t0 = Instant::now();
        let ack = js.publish("bench.ping", payload.clone().into()).await?;
        let m = messages
            .next()
            .await
            .context("ping stream ended")?
            .map_err(|e| anyhow!("ping pull: {e}"))?;
        samples.push(t0.elapsed());
        ack.await?;
        m.ack().await.map_err(|e| anyhow!("ack: {e}"))?;
    }
    Ok(spread(samples))
}

fn print_run(r: &Run) {
    let (h, e) = (&r.http, &r.end_to_end);
    println!(
        "  {}, {} clients: {:.0} accepted/s, {:.0} received/s; HTTP p50 {} p99 {} ms; \
         end-to-end p50 {} p90 {} p99 {} max {} ms; answer → partner p50 {} p99 {} ms; \
         {} created, {} reached once, {} lost, {} duplicated; {} errors",
        r.variant.label(),
        r.clients,
        h.rate(),
        r.received_rate,
        ms(h.latency.p50),
        ms(h.latency.p99),
        ms(e.p50),
        ms(e.p90),
        ms(e.p99),
        ms(e.max),
        ms(r.after_answer.p50),
        ms(r.after_answer.p99),
        r.created,
        r.reached_once,
        r.lost,
        r.duplicated,
        h.errors
    );
}

pub(super) fn print_referrals(f: &Referrals) {
    println!(
        "referrals → partner: {}; {} people; {} s per load",
        f.backend.label(),
        f.people,
        f.seconds
    );
    let a = &f.alone;
    row(
        "1 client: referrals/s",
        &format!("{:.0}", a.http.rate()),
        "",
    );
    row(
        "1 client: HTTP p50 / end-to-end p50 (ms)",
        &format!("{} / {}", ms(a.http.latency.p50), ms(a.end_to_end.p50)),
        "",
    );
    row(
        "1 client: answer → partner p50 / p99 (ms)",
        &format!("{} / {}", ms(a.after_answer.p50), ms(a.after_answer.p99)),
        "",
    );
    row(
        "identity SealForPerson p50 / p99 (ms)",
        &format!("{} / {}", ms(f.seal.p50), ms(f.seal.p99)),
        "",
    );
    row(
        "identity GetPerson p50 / p99 (ms)",
        &format!("{} / {}", ms(f.get_person.p50), ms(f.get_person.p99)),
        "",
    );
    row(
        "raw JetStream pub → consume p50 / p99 (ms)",
        &format!("{} / {}", ms(f.raw_nats.p50), ms(f.raw_nats.p99)),
        "",
    );
    for r in &f.runs {
        let c = r.clients;
        let name = r.variant.label();
        if let Some(h) = &r.hello {
            row(
                &format!("hello-world, {c} clients (req/s)"),
                &format!("{:.0}", h.rate()),
                "",
            );
        }
        row(
            &format!("{name}, {c} cl.: accepted/s"),
            &format!("{:.0}", r.http.rate()),
            "",
        );
        row(
            &format!("{name}, {c} cl.: received/s"),
            &format!("{:.0}", r.received_rate),
            "",
        );
        row(
            &format!("{name}, {c} cl.: HTTP p50 / p99 (ms)"),
            &format!("{} / {}", ms(r.http.latency.p50), ms(r.http.latency.p99)),
            "",
        );
        row(
            &format!("{name}, {c} cl.: e2e p50 / p90 (ms)"),
            &format!("{} / {}", ms(r.end_to_end.p50), ms(r.end_to_end.p90)),
            "",
        );
        row(
            &format!("{name}, {c} cl.: e2e p99 / max (ms)"),
            &format!("{} / {}", ms(r.end_to_end.p99), ms(r.end_to_end.max)),
            "",
        );
        row(
            &format!("{name}, {c} cl.: answer → partner p99"),
            &ms(r.after_answer.p99),
            "",
        );
        row(
            &format!("{name}, {c} cl.: reached once / created"),
            &format!("{} / {}", r.reached_once, r.created),
            "",
        );
        let hello = f
            .runs
            .iter()
            .find(|x| x.clients == c)
            .and_then(|x| x.hello.as_ref());
        if let Some(h) = hello {
            row(
                &format!("{name}, {c} cl. / hello throughput"),
                &format!("{:.4}x", r.http.rate() / h.rate()),
                "",
            );
        }
    }
    row(
        "redeliveries / unexpected referrals",
        &format!("{} / {}", f.redelivered, f.unexpected),
        "",
    );
}
