//! Faults of the central deployment's shape: every service is its own `eva
//! serve` process (eva_tests::processes). A service killed with SIGKILL in
//! the middle of writes restarts, its outbox drains and every committed write
//! reaches the consuming service exactly once; while a service is down the
//! gateway answers 503 with `Retry-After` at once, and while it is frozen
//! (SIGSTOP: the socket accepts, nothing answers) within its request deadline.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use eva_platform::auth::Role;
use eva_tests::api::siret;
use eva_tests::processes::Processes;
use nix::sys::signal::Signal;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::time::{Instant, sleep};

const EVA: &str = env!("CARGO_BIN_EXE_eva");
/// "Never hangs": an answer about a missing service comes well within this.
/// Not a performance figure: far above what loopback takes on a loaded machine.
const CEILING: Duration = Duration::from_secs(10);
/// Projections and the outbox catch up within this.
const CATCH_UP: Duration = Duration::from_secs(60);

/// Runs `story`, showing every process's log tail when it fails, then stops
/// the processes (each must exit cleanly on SIGTERM).
async fn with_processes(
    mut p: Processes,
    story: impl AsyncFnOnce(&mut Processes) -> Result<()>,
) -> Result<()> {
    if let Err(e) = story(&mut p).await {
        return Err(e.context(p.logs()));
    }
    p.stop().await
}

/// One answer (or its absence) through the gateway.
#[derive(Debug, Clone)]
struct Answer {
    status: Option<StatusCode>,
    content_type: String,
    retry_after: Option<String>,
    body: Value,
    took: Duration,
}

impl Answer {
    /// A 503 problem+json with `Retry-After` a positive number of seconds.
    fn is_unavailable_with_retry_after(&self) -> bool {
        self.status == Some(StatusCode::SERVICE_UNAVAILABLE)
            && self.content_type == "application/problem+json"
            && self.body["type"] == "urn:eva:problem:unavailable"
            && self
                .retry_after
                .as_deref()
                .and_then(|v| v.parse::<u64>().ok())
                .is_some_and(|s| s > 0)
    }
}

async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: &str,
    body: Option<&Value>,
) -> Answer {
    let started = Instant::now();
    let mut req = http
        .request(method, url)
        .bearer_auth(token)
        .timeout(CEILING * 3);
    if let Some(b) = body {
        req = req.json(b);
    }
    match req.send().await {
        Ok(r) => {
            let status = r.status();
            let header = |name| {
                r.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            let content_type = header(reqwest::header::CONTENT_TYPE).unwrap_or_default();
            let retry_after = header(reqwest::header::RETRY_AFTER);
            let text = r.text().await.unwrap_or_default();
            Answer {
                status: Some(status),
                content_type,
                retry_after,
                body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
                took: started.elapsed(),
            }
        }
        Err(e) => Answer {
            status: None,
            content_type: String::new(),
            retry_after: None,
            // No answer at all: transport failure or client timeout.
            body: Value::String(format!("no answer: {e}")),
            took: started.elapsed(),
        },
    }
}

/// One structure creation by the writers.
#[derive(Debug, Clone)]
struct Write {
    siret: String,
    started: Instant,
    finished: Instant,
    answer: Answer,
}

impl Write {
    fn created_id(&self) -> Option<&str> {
        (self.answer.status == Some(StatusCode::CREATED))
            .then(|| self.answer.body["id"].as_str())
            .flatten()
    }
}

/// Writers creating structures through the gateway at a steady pace: each
/// creation is an `eva.identity.structure.created` event in identity's
/// outbox, which statistics consumes.
struct Writers {
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<Write>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Writers {
    fn start(url: String, token: String, workers: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let next = Arc::new(AtomicU64::new(1));
        let http = reqwest::Client::new();
        let tasks = (0..workers)
            .map(|_| {
                let (stop, log, next) = (stop.clone(), log.clone(), next.clone());
                let (http, url, token) = (http.clone(), url.clone(), token.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        let siret = siret(n);
                        let body = json!({
                            "name": format!("Structure {n}"),
                            "siret": siret,
                            "kind": "association",
                            "commune_insee": "27229",
                        });
                        let started = Instant::now();
                        let answer =
                            call(&http, reqwest::Method::POST, &url, &token, Some(&body)).await;
                        let write = Write {
                            siret,
                            started,
                            finished: Instant::now(),
                            answer,
                        };
                        log.lock().expect("writes log").push(write);
                        sleep(Duration::from_millis(20)).await;
                    }
                })
            })
            .collect();
        Self { stop, log, tasks }
    }

    fn snapshot(&self) -> Vec<Write> {
        self.log.lock().expect("writes log").clone()
    }

    /// Waits until `pred` holds on the writes so far.
    async fn until(&self, what: &str, pred: impl Fn(&[Write]) -> bool) -> Result<()> {
        let deadline = Instant::now() + CATCH_UP;
        loop {
            let writes = self.snapshot();
            if pred(&writes) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{what}: not within {CATCH_UP:?}; {} writes", writes.len());
            }
            sleep(Duration::from_millis(50)).await;
        }
    }

    async fn finish(self) -> Result<Vec<Write>> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.context("a writer panicked")?;
        }
        Ok(self.log.lock().expect("writes log").clone())
    }
}

/// Polls `probe` until it answers `Ok(true)`, for at most [`CATCH_UP`].
async fn eventually<Fut>(what: &str, mut probe: impl FnMut() -> Fut) -> Result<()>
where
    Fut: Future<Output = Result<bool>>,
{
    let deadline = Instant::now() + CATCH_UP;
    loop {
        let last = probe().await;
        if matches!(last, Ok(true)) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{what}: not within {CATCH_UP:?} (last: {last:?})");
        }
        sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn identity_killed_mid_writes_restarts_drains_its_outbox_and_loses_nothing() -> Result<()> {
    let p = Processes::start(EVA).await?;
    with_processes(p, async |p| {
        let token = p.token("ops-faults", vec![Role::Operator], vec![]).await?;
        let writers = Writers::start(p.url("/api/v1/structures"), token, 3);
        let created = |ws: &[Write], after: Instant| {
            ws.iter()
                .filter(|w| w.started > after && w.created_id().is_some())
                .count()
        };
        let t0 = Instant::now();
        writers
            .until("20 writes before the kill", |ws| created(ws, t0) >= 20)
            .await?;

        // NATS frozen: identity keeps committing, its relay cannot get the
        // acknowledgements, so the kill leaves rows in its outbox (some perhaps
        // already sent, to be sent again: JetStream drops the repeat by id).
        p.signal_nats(Signal::SIGSTOP)?;
        let frozen_at = Instant::now();
        let frozen = writers
            .until("10 writes while NATS is frozen", |ws| {
                created(ws, frozen_at) >= 10
            })
            .await;
        let killed_at = Instant::now();
        let killed = p.kill("identity").await;
        let dead_at = Instant::now();
        p.signal_nats(Signal::SIGCONT)?;
        frozen?;
        killed?;
        let pending: u64 = p
            .query("identity", "SELECT COUNT(*) FROM eva_outbox")
            .await?
            .concat()
            .parse()?;
        ensure!(pending > 0, "the kill left identity's outbox empty");
        writers
            .until("10 writes while identity is down", |ws| {
                ws.iter().filter(|w| w.started > dead_at).count() >= 10
            })
            .await?;

        let restart_at = Instant::now();
        p.restart("identity").await?;
        let back_at = Instant::now();
        writers
            .until("20 writes after the restart", |ws| {
                created(ws, back_at) >= 20
            })
            .await?;
        let writes = writers.finish().await?;

        // Answers. A write in flight when the process died (started before it
        // was gone, answered after the kill) may fail any way and may or may
        // not be committed; every other one is either created or refused
        // with 503 + Retry-After, and those made while identity was down are
        // all refused, each well before the ceiling.
        let in_flight = |w: &Write| w.started < dead_at && w.finished > killed_at;
        let mut down = 0;
        for w in &writes {
            ensure!(w.answer.took < CEILING, "write hung: {w:?}");
            if in_flight(w) {
                continue;
            }
            let ok = w.created_id().is_some() || w.answer.is_unavailable_with_retry_after();
            ensure!(ok, "unexpected answer: {w:?}");
            if w.finished < killed_at {
                ensure!(w.created_id().is_some(), "refused before the kill: {w:?}");
            }
            if w.started > dead_at && w.finished < restart_at {
                ensure!(
                    w.answer.is_unavailable_with_retry_after(),
                    "while down: {w:?}"
                );
                down += 1;
            }
        }
        ensure!(
            down >= 10,
            "only {down} writes answered while identity was down"
        );

        // Identity's outbox drains once it is back.
        eventually("identity's outbox drained", || async {
            Ok(p.query("identity", "SELECT COUNT(*) FROM eva_outbox")
                .await?
                == ["0"])
        })
        .await?;

        // What identity committed: every created write, plus perhaps some of
        // those in flight at the kill (committed, answer lost) and nothing else.
        let committed: BTreeMap<String, String> = p
            .query(
                "identity",
                "SELECT siret || ' ' || structure_id FROM structures",
            )
            .await?
            .iter()
            .filter_map(|l| l.split_once(' '))
            .map(|(s, id)| (s.to_owned(), id.to_owned()))
            .collect();
        let by_siret: BTreeMap<&str, &Write> =
            writes.iter().map(|w| (w.siret.as_str(), w)).collect();
        let mut created_count = 0;
        for w in &writes {
            if let Some(id) = w.created_id() {
                created_count += 1;
                ensure!(
                    committed.get(&w.siret).map(String::as_str) == Some(id),
                    "created {id} ({}) missing from identity's database",
                    w.siret
                );
            }
        }
        for siret in committed.keys() {
            let w = by_siret
                .get(siret.as_str())
                .with_context(|| format!("identity holds a structure no writer sent: {siret}"))?;
            ensure!(
                w.created_id().is_some() || in_flight(w),
                "committed though refused: {w:?}"
            );
        }
        let ids: BTreeSet<&str> = committed.values().map(String::as_str).collect();

        // The stream holds exactly one event per committed structure.
        let events: Vec<_> = p
            .stream_events("EVA_IDENTITY")
            .await?
            .into_iter()
            .filter(|(_, ce)| ce.event_type == "eva.identity.structure.created")
            .map(|(_, ce)| ce)
            .collect();
        let event_ids: BTreeSet<&str> = events.iter().map(|ce| ce.id.as_str()).collect();
        let subjects: Vec<&str> = events
            .iter()
            .filter_map(|ce| ce.subject.as_deref())
            .collect();
        let distinct_subjects: BTreeSet<&str> = subjects.iter().copied().collect();
        ensure!(
            events.len() == ids.len() && event_ids.len() == events.len(),
            "{} events ({} distinct ids) for {} committed structures",
            events.len(),
            event_ids.len(),
            ids.len()
        );
        ensure!(
            subjects.len() == events.len() && distinct_subjects == ids,
            "the events' structures differ from identity's"
        );

        // Statistics applied each of them once (its inbox keeps one row per
        // applied event) and its projection holds every committed structure.
        eventually("statistics applied every structure event", || async {
            let applied = p
                .query(
                    "statistics",
                    "SELECT event_id FROM eva_inbox WHERE consumer = 'statistics-structures'",
                )
                .await?;
            let projected = p
                .query(
                    "statistics",
                    "SELECT structure_id FROM structures \
                     WHERE gen = (SELECT gen FROM generations WHERE state = 'current')",
                )
                .await?;
            let applied: BTreeSet<&str> = applied.iter().map(String::as_str).collect();
            let projected: BTreeSet<&str> = projected.iter().map(String::as_str).collect();
            Ok(applied == event_ids && projected == ids)
        })
        .await?;
        let in_flight: Vec<_> = writes
            .iter()
            .filter(|w| in_flight(w))
            .map(|w| (w.answer.status.map(|s| s.as_u16()), w.answer.took))
            .collect();
        eprintln!(
            "outbox rows left by the kill: {pending}; writes: {} sent, {created_count} created, \
             {down} refused while down, {} committed; in flight at the kill (status, time): \
             {in_flight:?}",
            writes.len(),
            ids.len(),
        );
        Ok(())
    })
    .await
}

/// A statistics route, an identity route and a diagnostics route, as an operator.
const STATISTICS: &str = "/api/v1/statistics/indicators";
const IDENTITY: &str = "/api/v1/structures";
const DIAGNOSTICS: &str = "/api/v1/referentiel";

async fn get(p: &Processes, path: &str, token: &str) -> Answer {
    call(&p.http, reqwest::Method::GET, &p.url(path), token, None).await
}

/// Waits until `path` answers 200.
async fn until_ok(p: &Processes, path: &str, token: &str) -> Result<()> {
    eventually(&format!("GET {path} answers 200"), || async {
        Ok(get(p, path, token).await.status == Some(StatusCode::OK))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_service_is_answered_503_with_retry_after_at_once_and_others_keep_serving()
-> Result<()> {
    let p = Processes::start(EVA).await?;
    with_processes(p, async |p| {
        let token = p.token("ops-faults", vec![Role::Operator], vec![]).await?;
        for path in [STATISTICS, IDENTITY, DIAGNOSTICS] {
            let a = get(p, path, &token).await;
            ensure!(a.status == Some(StatusCode::OK), "GET {path} before: {a:?}");
        }
        p.kill("statistics").await?;
        for _ in 0..5 {
            let a = get(p, STATISTICS, &token).await;
            ensure!(
                a.took < CEILING,
                "statistics down: answered after {:?}",
                a.took
            );
            ensure!(
                a.is_unavailable_with_retry_after(),
                "statistics down: {a:?}"
            );
            for path in [IDENTITY, DIAGNOSTICS] {
                let a = get(p, path, &token).await;
                ensure!(
                    a.status == Some(StatusCode::OK),
                    "GET {path} while down: {a:?}"
                );
            }
        }
        let ready = get(p, "/readyz", &token).await;
        ensure!(
            ready.status == Some(StatusCode::SERVICE_UNAVAILABLE)
                && ready.body["checks"]["statistics"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("unreachable"))
                && ready.body["checks"]["identity"] == "ok",
            "readyz while statistics is down: {ready:?}"
        );
        p.restart("statistics").await?;
        until_ok(p, STATISTICS, &token).await?;
        p.wait_ready(CATCH_UP).await
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_frozen_service_is_answered_within_the_gateway_deadline() -> Result<()> {
    // A short deadline keeps the test short; the default is 10 s.
    let p = Processes::start_with(EVA, &[("EVA__GATEWAY__REQUEST_TIMEOUT_MS", "2000")]).await?;
    with_processes(p, async |p| {
        let token = p.token("ops-faults", vec![Role::Operator], vec![]).await?;
        // The gateway holds an open HTTP/2 connection to statistics.
        until_ok(p, STATISTICS, &token).await?;
        p.signal("statistics", Signal::SIGSTOP)?;
        let frozen = async {
            for _ in 0..3 {
                let a = get(p, STATISTICS, &token).await;
                ensure!(
                    a.took < CEILING,
                    "statistics frozen: answered after {:?}",
                    a.took
                );
                ensure!(
                    a.status == Some(StatusCode::GATEWAY_TIMEOUT)
                        && a.content_type == "application/problem+json"
                        && a.body["type"] == "urn:eva:problem:timeout",
                    "statistics frozen: {a:?}"
                );
                let a = get(p, IDENTITY, &token).await;
                ensure!(
                    a.status == Some(StatusCode::OK),
                    "identity while statistics is frozen: {a:?}"
                );
            }
            // Readiness probes have their own deadline: not ready, not hung.
            let ready = get(p, "/readyz", &token).await;
            ensure!(
                ready.took < CEILING
                    && ready.status == Some(StatusCode::SERVICE_UNAVAILABLE)
                    && ready.body["checks"]["statistics"] != "ok",
                "readyz while statistics is frozen: {ready:?}"
            );
            anyhow::Ok(())
        }
        .await;
        p.signal("statistics", Signal::SIGCONT)?;
        frozen?;
        until_ok(p, STATISTICS, &token).await
    })
    .await
}
