//! Section `idempotency`: what `Idempotency-Key` costs a write, and what a
//! replay costs. `POST /api/v1/people` (identity: a new person's key, sealed
//! fields, blind indexes, the access log) by concurrent keep-alive clients,
//! three ways in the same run: without the header (the baseline), with a
//! fresh key per request (the gateway claims it in the NATS key-value bucket,
//! then seals and keeps the answer), and the same request again under a key
//! already answered (the kept answer opened and given back, nothing done).
//!
//! Every replay must give back the first answer and create nobody: the people
//! registered must be exactly the fresh writes; otherwise it is a problem and
//! the bench exits non-zero.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use eva_platform::auth::Role;
use eva_tests::api::{siret, structure};
use eva_tests::sandbox::{Backend as SandboxBackend, Sandbox};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{Args, Load, ms, spread};

/// One way of sending the write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Way {
    /// No `Idempotency-Key`.
    Plain,
    /// A fresh key per request.
    Fresh,
    /// A key already answered, sent again.
    Replay,
}

impl Way {
    fn label(self) -> &'static str {
        match self {
            Way::Plain => "without Idempotency-Key (baseline)",
            Way::Fresh => "with a fresh Idempotency-Key",
            Way::Replay => "replayed under an answered key",
        }
    }
}

pub struct Figures {
    clients: usize,
    loads: Vec<(Way, Load)>,
    created: usize,
    expected: usize,
}

pub async fn idempotency(args: &Args, problems: &mut Vec<String>) -> Result<Figures> {
    let sb = Sandbox::start(SandboxBackend::Sqlite).await?;
    let operator = sb.token("bench-op", vec![Role::Operator], vec![]).await?;
    let a = structure(&sb, &operator, "Asso bench", &siret(71), "association").await?;
    let counselor = sb
        .token("bench-counselor", vec![Role::Counselor], vec![a.clone()])
        .await?;
    let run = Duration::from_secs(u64::from(args.idempotency_seconds));
    let clients = args.idempotency_clients;
    let mut loads = Vec::new();
    let mut expected = 0;
    for way in [Way::Plain, Way::Fresh, Way::Replay] {
        let (load, created) = write_load(&sb, &counselor, &a, way, clients, run).await?;
        println!("  {}:", way.label());
        print(&load);
        expected += created;
        loads.push((way, load));
    }
    let created = people(&sb, &counselor, &a).await?;
    if created != expected {
        problems.push(format!(
            "idempotency: {created} people registered for {expected} writes done (replays must create nobody)"
        ));
    }
    Ok(Figures {
        clients,
        loads,
        created,
        expected,
    })
}

fn body(structure_id: &str, client: usize, n: usize) -> Value {
    json!({
        "structure_id": structure_id,
        "first_name": "Ana",
        "last_name": format!("Bench{client}x{n}"),
        "birth_date": "1985-05-20",
        "commune_insee": "27229",
    })
}

/// `clients` closed loops of one way for one second of warm-up then `run`;
/// answers the load and how many people it registered (warm-up included).
async fn write_load(
    sb: &Sandbox,
    token: &str,
    structure_id: &str,
    way: Way,
    clients: usize,
    run: Duration,
) -> Result<(Load, usize)> {
    let url = sb.url("/api/v1/people");
    let http = reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(clients)
        .build()?;
    let from = Instant::now() + Duration::from_secs(1);
    let until = from + run;
    let mut loops: FuturesUnordered<_> = (0..clients)
        .map(|client| {
            let (http, url) = (&http, &url);
            async move {
                let mut samples = Vec::new();
                let (mut errors, mut created) = (0usize, 0usize);
                let mut first_error = None;
                // A replay sends again the first request of its client.
                let replayed = (
                    format!("{way:?}-{client}-{}", uuid::Uuid::now_v7()),
                    body(structure_id, client, 0),
                );
                let mut first_answer: Option<Value> = None;
                for n in 0.. {
                    let t0 = Instant::now();
                    if t0 >= until {
                        break;
                    }
                    let (key, body) = match way {
                        Way::Plain => (None, body(structure_id, client, n)),
                        Way::Fresh => (
                            Some(uuid::Uuid::now_v7().to_string()),
                            body(structure_id, client, n),
                        ),
                        Way::Replay => (Some(replayed.0.clone()), replayed.1.clone()),
                    };
                    let mut req = http.post(url).bearer_auth(token).json(&body);
                    if let Some(k) = &key {
                        req = req.header("Idempotency-Key", k);
                    }
                    let outcome = match req.send().await {
                        Ok(r) if r.status() == StatusCode::CREATED => {
                            let again = r.headers().contains_key("idempotent-replayed");
                            r.json::<Value>()
                                .await
                                .map(|v| (v, again))
                                .map_err(|e| e.to_string())
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
                        Ok((v, again)) => {
                            if !again {
                                created += 1;
                            }
                            if way == Way::Replay {
                                match &first_answer {
                                    None => first_answer = Some(v),
                                    Some(first) if *first != v => {
                                        errors += 1;
                                        first_error.get_or_insert_with(|| {
                                            "a replay gave another answer".to_owned()
                                        });
                                    }
                                    Some(_) => {}
                                }
                            }
                            if t0 >= from && t1 <= until {
                                samples.push(t1 - t0);
                            }
                        }
                        Err(e) => {
                            errors += 1;
                            first_error.get_or_insert(e);
                        }
                    }
                }
                (samples, errors, first_error, created)
            }
        })
        .collect();
    let mut samples = Vec::new();
    let (mut errors, mut created) = (0, 0);
    let mut first_error = None;
    while let Some((s, e, f, c)) = loops.next().await {
        samples.extend(s);
        errors += e;
        created += c;
        if first_error.is_none() {
            first_error = f;
        }
    }
    Ok((
        Load {
            count: samples.len(),
            window: run,
            errors,
            first_error,
            latency: spread(samples),
        },
        created,
    ))
}

/// How many people the structure follows.
async fn people(sb: &Sandbox, token: &str, structure_id: &str) -> Result<usize> {
    let mut total = 0;
    let mut next = String::new();
    loop {
        let r = sb
            .http
            .get(sb.url(&format!(
                "/api/v1/people?structure_id={structure_id}&page_size=500&page_token={next}"
            )))
            .bearer_auth(token)
            .send()
            .await?;
        let v: Value = r.json().await?;
        total += v["items"].as_array().context("items")?.len();
        match v["next_page_token"].as_str() {
            Some(t) if !t.is_empty() => next = t.to_owned(),
            _ => return Ok(total),
        }
    }
}

fn print(l: &Load) {
    let s = &l.latency;
    println!(
        "    {:.0} writes/s; p50 {} p90 {} p99 {} max {} ms; {} errors{}",
        l.rate(),
        ms(s.p50),
        ms(s.p90),
        ms(s.p99),
        ms(s.max),
        l.errors,
        l.first_error
            .as_ref()
            .map(|e| format!(" (first: {e})"))
            .unwrap_or_default()
    );
}

pub fn print_figures(f: &Figures) {
    let base = f
        .loads
        .iter()
        .find(|(w, _)| *w == Way::Plain)
        .map(|(_, l)| l);
    println!(
        "idempotency: POST /api/v1/people, {} clients, SQLite; people registered {} for {} writes done",
        f.clients, f.created, f.expected
    );
    for (way, load) in &f.loads {
        let ratio = base
            .map(|b| format!("{:.2}× the baseline's rate", load.rate() / b.rate()))
            .unwrap_or_default();
        println!(
            "  {}: {:.0} writes/s, p50 {} ms, p99 {} ms; {ratio}",
            way.label(),
            load.rate(),
            ms(load.latency.p50),
            ms(load.latency.p99)
        );
    }
}
