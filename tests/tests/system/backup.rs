//! Backup and restore of an association's box (SQLite, a local nats-server),
//! through `eva_platform::backup`, the library `eva backup` / `eva restore`
//! call. A box with structures, a person, a shared diagnostic, a consent and
//! a referral is backed up while structures keep being created; it is
//! restored on a fresh nats-server and data directory, and the system started
//! on it answers the same through the API: what was written before the
//! backup is there, identical; nothing written after it is; the statistics
//! and the partner's view agree with identity and referrals (nothing lost,
//! nothing duplicated); and the restored box keeps working. Restores into a
//! used data directory, onto a used bus, or from a corrupted file are
//! refused by name. A database written by a newer EVA is refused at start.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use eva_platform::auth::Role;
use eva_platform::backup::{self, BackupError, Progress, Restore, ServiceDb};
use eva_platform::bus::Bus;
use eva_platform::crypto::Kek;
use eva_platform::db::{Db, DbError};
use eva_platform::{Config, service::load_kek};
use eva_tests::api::{consent, get, patch, person, person_token, post, siret, structure, until};
use eva_tests::nats::NatsServer;
use eva_tests::postgres::PgCluster;
use eva_tests::sandbox::{Backend, Sandbox};
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The services' databases as the `eva` binary lists them (consumers first).
fn services(config: &Config) -> Vec<ServiceDb> {
    let dir = &config.data_dir;
    vec![
        ServiceDb {
            name: "statistics",
            url: config.statistics.service().database_url(dir, "statistics"),
            migrations: &eva_statistics::store::MIGRATIONS,
        },
        ServiceDb {
            name: "community",
            url: config.community.database_url(dir, "community"),
            migrations: &eva_community::store::MIGRATIONS,
        },
        ServiceDb {
            name: "referrals",
            url: config.referrals.service().database_url(dir, "referrals"),
            migrations: &eva_referrals::store::MIGRATIONS,
        },
        ServiceDb {
            name: "diagnostics",
            url: config
                .diagnostics
                .service()
                .database_url(dir, "diagnostics"),
            migrations: &eva_diagnostics::store::MIGRATIONS,
        },
        ServiceDb {
            name: "identity",
            url: config.identity.database_url(dir, "identity"),
            migrations: &eva_identity::store::MIGRATIONS,
        },
    ]
}

/// Every structure identity lists, by id.
async fn structures(sb: &Sandbox, operator: &str) -> Result<Vec<Value>> {
    let (s, v) = get(sb, "/api/v1/structures?page_size=500", operator).await?;
    ensure!(s == StatusCode::OK, "listing structures: {s} {v}");
    ensure!(v["next_page_token"].is_null(), "more than one page: {v}");
    let mut items = v["items"].as_array().cloned().unwrap_or_default();
    items.sort_by_key(|x| x["id"].as_str().unwrap_or_default().to_owned());
    Ok(items)
}

/// Waits until the statistics total of structures is `want`.
async fn statistics_total(sb: &Sandbox, analyst: &str, want: usize) -> Result<()> {
    until(
        sb,
        Method::GET,
        "/api/v1/statistics/indicators/structures",
        analyst,
        None,
        |s, v| s == StatusCode::OK && v["cells"][0]["count"] == json!(want),
    )
    .await
    .map(|_| ())
}

/// Distinct ce-ids of `eva.identity.structure.created` events on the bus.
async fn created_events(sb: &Sandbox) -> Result<(usize, usize)> {
    let js = async_nats::jetstream::new(sb.nats.connect().await?);
    let stream = js.get_stream("EVA_IDENTITY").await?;
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            filter_subject: "eva.identity.structure.created".into(),
            ..Default::default()
        })
        .await?;
    let mut ids = Vec::new();
    let mut batch = consumer
        .fetch()
        .max_messages(5_000)
        .expires(Duration::from_secs(1))
        .messages()
        .await?;
    while let Some(m) = batch.next().await {
        let m = m.map_err(|e| anyhow::anyhow!("{e}"))?;
        let id = m
            .headers
            .as_ref()
            .and_then(|h| h.get("ce-id"))
            .map(|v| v.as_str().to_owned())
            .context("event without ce-id")?;
        ids.push(id);
    }
    let all = ids.len();
    ids.sort();
    ids.dedup();
    Ok((all, ids.len()))
}

/// Before / during / after the backup, as a background writer sees it.
const BEFORE: u8 = 0;
const DURING: u8 = 1;
const AFTER: u8 = 2;

/// Creates structures until `phase` passes AFTER and a few more were made;
/// answers (id, phase when sent, phase when answered).
async fn writer(
    http: reqwest::Client,
    url: String,
    operator: String,
    phase: Arc<AtomicU8>,
) -> Result<Vec<(String, u8, u8)>> {
    let mut made = Vec::new();
    let mut after = 0;
    for n in 0u64.. {
        let sent = phase.load(Ordering::SeqCst);
        let r = http
            .post(&url)
            .bearer_auth(&operator)
            .json(
                &json!({ "name": format!("Atelier {n}"), "siret": siret(5_000 + n),
                "kind": "association", "commune_insee": "27229" }),
            )
            .send()
            .await?;
        let status = r.status();
        let v: Value = r.json().await?;
        ensure!(
            status == StatusCode::CREATED,
            "creating Atelier {n}: {status} {v}"
        );
        let answered = phase.load(Ordering::SeqCst);
        made.push((v["id"].as_str().context("id")?.to_owned(), sent, answered));
        if sent == AFTER {
            after += 1;
            if after == 3 {
                break;
            }
        }
    }
    Ok(made)
}

/// Reads `url` until `phase` is AFTER; answers how many reads.
async fn reader(
    http: reqwest::Client,
    url: String,
    token: String,
    phase: Arc<AtomicU8>,
) -> Result<usize> {
    let mut n = 0;
    while phase.load(Ordering::SeqCst) != AFTER {
        let r = http.get(&url).bearer_auth(&token).send().await?;
        ensure!(
            r.status() == StatusCode::OK,
            "reading {url}: {}",
            r.status()
        );
        n += 1;
    }
    Ok(n)
}

/// Waits until `made` holds at least `n` structures (the writer's progress,
/// read through the API).
async fn wait_structures(sb: &Sandbox, operator: &str, n: usize) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while structures(sb, operator).await?.len() < n {
        if Instant::now() > deadline {
            bail!("fewer than {n} structures after 60 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

fn refused(r: Result<impl std::fmt::Debug, BackupError>, words: &[&str]) -> Result<String> {
    match r {
        Err(BackupError::Refused(m)) => {
            for w in words {
                ensure!(m.contains(w), "refusal without `{w}`: {m}");
            }
            Ok(m)
        }
        other => bail!("expected a refusal naming {words:?}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn backup_taken_while_writing_restores_the_same_data() -> Result<()> {
    let sb =
        Sandbox::start_with(Backend::Sqlite, |c| c.statistics.disclosure_threshold = 2).await?;
    let kek_b64 = sb.config.keys.kek.clone().context("sandbox key")?;
    let kek = load_kek(&sb.config)?;
    let operator = sb.token("ops-1", vec![Role::Operator], vec![]).await?;
    let analyst = sb.token("analyst-1", vec![Role::Analyst], vec![]).await?;
    let a = structure(
        &sb,
        &operator,
        "Chantier A",
        "41735218600007",
        "association",
    )
    .await?;
    let p = structure(&sb, &operator, "Auto-école P", "51734218700005", "partner").await?;
    let counselor_a = sb
        .token("counselor-a", vec![Role::Counselor], vec![a.clone()])
        .await?;
    let partner_p = sb
        .token("partner-p", vec![Role::Partner], vec![p.clone()])
        .await?;
    let ana_id = person(&sb, &counselor_a, &a, "Ana", "Zabalveytia").await?;
    let ana = person_token(&sb, &ana_id).await?;
    let d = until(
        &sb,
        Method::POST,
        &format!("/api/v1/people/{ana_id}/diagnostics"),
        &counselor_a,
        Some(json!({ "structure_id": a })),
        |s, _| s == StatusCode::CREATED,
    )
    .await?;
    let d_id = d["id"].as_str().context("diagnostic id")?.to_owned();
    let (s, v) = patch(
        &sb,
        &format!("/api/v1/diagnostics/{d_id}"),
        &counselor_a,
        json!({ "ratings": [{ "item_id": "mobilite.permis", "level": "frein",
            "note": "Code obtenu en mars." }] }),
    )
    .await?;
    ensure!(s == StatusCode::OK, "{v}");
    let (s, v) = post(
        &sb,
        &format!("/api/v1/diagnostics/{d_id}/share"),
        &counselor_a,
        json!({}),
    )
    .await?;
    ensure!(s == StatusCode::OK, "{v}");
    consent(&sb, &ana, &ana_id, &p, &["mobilite"], &["orientation"]).await?;
    let r = until(
        &sb,
        Method::POST,
        "/api/v1/referrals",
        &counselor_a,
        Some(
            json!({ "person_id": ana_id, "sender_structure_id": a, "target_structure_id": p,
            "domains": ["mobilite"], "reason": "Permis B, accompagnement mobilité.",
            "diagnostic_id": d_id }),
        ),
        |s, _| s == StatusCode::CREATED,
    )
    .await?;
    let r_id = r["id"].as_str().context("referral id")?.to_owned();
    let inbox_path = format!("/api/v1/referrals?structure_id={p}&direction=received");
    let travelling = format!("/api/v1/referrals/{r_id}/diagnostic");
    // What the API answers before the backup; reads are compared field by field later.
    let reads = [
        (format!("/api/v1/people/{ana_id}"), counselor_a.clone()),
        (format!("/api/v1/diagnostics/{d_id}"), counselor_a.clone()),
        (format!("/api/v1/referrals/{r_id}"), partner_p.clone()),
        (inbox_path.clone(), partner_p.clone()),
        (travelling.clone(), partner_p.clone()),
    ];
    let mut before = Vec::new();
    for (path, token) in &reads {
        // The second answer: a first read may change what later ones show.
        get(&sb, path, token).await?;
        let (s, v) = get(&sb, path, token).await?;
        ensure!(s == StatusCode::OK, "{path}: {s} {v}");
        before.push(v);
    }
    statistics_total(&sb, &analyst, 2).await?;

    // Structures keep being created while the backup runs.
    let phase = Arc::new(AtomicU8::new(BEFORE));
    let writing = tokio::spawn(writer(
        sb.http.clone(),
        sb.url("/api/v1/structures"),
        operator.clone(),
        phase.clone(),
    ));
    // And Ana's diagnostic keeps being read: each read is an access-log
    // event from diagnostics that identity applies (consumers in a cycle).
    let reading = tokio::spawn(reader(
        sb.http.clone(),
        sb.url(&format!("/api/v1/diagnostics/{d_id}")),
        counselor_a.clone(),
        phase.clone(),
    ));
    wait_structures(&sb, &operator, 5).await?;
    let dir = tempfile::tempdir()?;
    let backup_dir = dir.path().join("backup");
    let bus = Bus::connect(&sb.config.bus, &sb.nats.url(), "backup").await?;
    phase.store(DURING, Ordering::SeqCst);
    let started = Instant::now();
    let manifest = backup::backup(
        &bus,
        &services(&sb.config),
        &kek,
        &backup_dir,
        &mut Progress::stderr(),
    )
    .await?;
    let took = started.elapsed();
    phase.store(AFTER, Ordering::SeqCst);
    let made = writing.await??;
    let read = reading.await??;
    let count = |p: u8| made.iter().filter(|m| m.1 == p || m.2 == p).count();
    eprintln!(
        "backup in {took:?}; made before / during / after it: {} / {} / {}; {read} reads; left out: {}; attempts: {}",
        count(BEFORE),
        count(DURING),
        count(AFTER),
        manifest.streams.iter().map(|s| s.left_out).sum::<u64>(),
        manifest.attempts
    );
    ensure!(manifest.services.len() == 5, "{manifest:?}");
    ensure!(
        manifest.durables.iter().any(|d| d.ack_floor > 0),
        "no consumer had acknowledged anything: {manifest:?}"
    );
    let all_before = structures(&sb, &operator).await?;
    ensure!(
        all_before.len() == 2 + made.len(),
        "{} structures",
        all_before.len()
    );

    // A second backup into the same directory is refused.
    refused(
        backup::backup(
            &bus,
            &services(&sb.config),
            &kek,
            &backup_dir,
            &mut Progress::hidden(),
        )
        .await,
        &["n'est pas vide", "not empty"],
    )?;
    sb.stop().await?;

    // Restore on a fresh nats-server and data directory.
    let nats = NatsServer::start().await?;
    let data = dir.path().join("restored");
    let restored_config = Config {
        data_dir: data.clone(),
        ..Config::default()
    };
    let plan = Restore::open(&backup_dir, &services(&restored_config), &kek)?;
    let bus = Bus::connect(&restored_config.bus, &nats.url(), "restore").await?;
    let started = Instant::now();
    let done = plan.run(&bus, &mut Progress::stderr()).await?;
    eprintln!("restore in {:?}: {done:?}", started.elapsed());
    ensure!(
        done.databases == 5 && done.consumers == manifest.durables.len(),
        "{done:?}"
    );

    let url = nats.url();
    let sb = Sandbox::start_configured(nats, url, Backend::Sqlite, |c| {
        c.data_dir = data.clone();
        c.keys.kek = Some(kek_b64.clone());
        c.statistics.disclosure_threshold = 2;
    })
    .await?;
    // Identity holds every structure made before the backup, each identical,
    // and none asked for after it.
    let restored = structures(&sb, &operator).await?;
    for x in &restored {
        ensure!(
            all_before.contains(x),
            "restored structure not as before: {x}"
        );
    }
    let ids: Vec<&str> = restored.iter().filter_map(|x| x["id"].as_str()).collect();
    for (id, sent, answered) in &made {
        if *answered == BEFORE {
            ensure!(
                ids.contains(&id.as_str()),
                "structure {id}, made before the backup, lost"
            );
        }
        if *sent == AFTER {
            ensure!(
                !ids.contains(&id.as_str()),
                "structure {id}, made after the backup, restored"
            );
        }
    }
    ensure!(ids.contains(&a.as_str()) && ids.contains(&p.as_str()));
    // The statistics count each of them once; the bus holds each event once.
    statistics_total(&sb, &analyst, restored.len()).await?;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (all, distinct) = created_events(&sb).await?;
        if distinct == restored.len() {
            ensure!(
                all == distinct,
                "{all} created events for {distinct} structures"
            );
            break;
        }
        if Instant::now() > deadline {
            bail!("{distinct} created events, {} structures", restored.len());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The person, the diagnostic, the referral, the partner's inbox and the
    // part of the diagnostic the consent lets travel: as before.
    for ((path, token), was) in reads.iter().zip(&before) {
        let (s, v) = get(&sb, path, token).await?;
        ensure!(s == StatusCode::OK, "{path}: {s} {v}");
        ensure!(&v == was, "{path} differs after restore:\n{v}\nwas\n{was}");
    }
    // The restored box keeps working: a new structure reaches the statistics.
    structure(
        &sb,
        &operator,
        "Après restauration",
        &siret(9_999),
        "association",
    )
    .await?;
    statistics_total(&sb, &analyst, restored.len() + 1).await?;

    // The same backup onto this used box: refused, nothing touched.
    refused(
        Restore::open(&backup_dir, &services(&sb.config), &kek).map(|_| ()),
        &[
            "existe déjà",
            "already exists",
            "restaurez dans un data_dir vide",
        ],
    )?;
    // Onto its bus from an empty data directory: refused by the streams.
    let empty = dir.path().join("empty");
    let plan = Restore::open(
        &backup_dir,
        &services(&Config {
            data_dir: empty.clone(),
            ..Config::default()
        }),
        &kek,
    )?;
    let bus = Bus::connect(&sb.config.bus, &sb.nats.url(), "restore").await?;
    refused(
        plan.run(&bus, &mut Progress::hidden()).await,
        &["contient déjà", "already holds"],
    )?;
    ensure!(
        !empty.join("identity.db").exists(),
        "a refused restore wrote a database"
    );
    sb.stop().await?;
    Ok(())
}

#[tokio::test]
async fn corrupted_backup_or_other_key_is_refused() -> Result<()> {
    let sb = Sandbox::start(Backend::Sqlite).await?;
    let kek = load_kek(&sb.config)?;
    let operator = sb.token("ops-1", vec![Role::Operator], vec![]).await?;
    structure(
        &sb,
        &operator,
        "Chantier A",
        "41735218600007",
        "association",
    )
    .await?;
    let dir = tempfile::tempdir()?;
    let backup_dir = dir.path().join("backup");
    let bus = Bus::connect(&sb.config.bus, &sb.nats.url(), "backup").await?;
    backup::backup(
        &bus,
        &services(&sb.config),
        &kek,
        &backup_dir,
        &mut Progress::hidden(),
    )
    .await?;
    sb.stop().await?;
    let target = Config {
        data_dir: dir.path().join("restored"),
        ..Config::default()
    };

    // Another key-encryption key cannot open the data: refused.
    let other = Kek::from_base64(&Kek::generate_base64())?;
    refused(
        Restore::open(&backup_dir, &services(&target), &other).map(|_| ()),
        &["clé de chiffrement", "key-encryption key"],
    )?;
    // One byte changed in a database copy: refused, naming the file.
    let file = backup_dir.join("db/identity.sqlite");
    flip_last_byte(&file)?;
    refused(
        Restore::open(&backup_dir, &services(&target), &kek).map(|_| ()),
        &["db/identity.sqlite", "abîmé", "corrupted"],
    )?;
    flip_last_byte(&file)?;
    Restore::open(&backup_dir, &services(&target), &kek)?;
    // The same in a stream file.
    let file = backup_dir.join("streams/EVA_IDENTITY.jsonl");
    flip_last_byte(&file)?;
    refused(
        Restore::open(&backup_dir, &services(&target), &kek).map(|_| ()),
        &["streams/EVA_IDENTITY.jsonl", "corrupted"],
    )?;
    ensure!(!target.data_dir.join("identity.db").exists());
    // PostgreSQL databases are saved with pg_dump, not here.
    let pg = [ServiceDb {
        name: "identity",
        url: "postgres://eva@127.0.0.1/identity".into(),
        migrations: &eva_identity::store::MIGRATIONS,
    }];
    refused(
        Restore::open(&backup_dir, &pg, &kek).map(|_| ()),
        &["pg_dump", "PostgreSQL"],
    )?;
    Ok(())
}

fn flip_last_byte(path: &Path) -> Result<()> {
    let mut bytes = std::fs::read(path)?;
    let last = bytes.last_mut().context("empty file")?;
    *last ^= 0x01;
    std::fs::write(path, bytes)?;
    Ok(())
}

/// Marks the service's schema as one migration ahead of this program.
async fn from_the_future(db: &Db) -> Result<i64> {
    let m = &eva_statistics::store::MIGRATIONS;
    let next = eva_platform::db::latest(match db.backend() {
        eva_platform::db::Backend::Sqlite => m.sqlite,
        eva_platform::db::Backend::Postgres => m.postgres,
    }) + 1;
    let mut h = db.acquire().await?;
    eva_platform::on_backend!(h.conn(), c => sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES ($1, 'from a newer EVA', TRUE, $2, 0)",
    )
    .bind(next)
    .bind(vec![0u8; 48])
    .execute(&mut *c)
    .await
    .map(|_| ()))?;
    Ok(next)
}

async fn newer_schema_is_refused(db: Db) -> Result<()> {
    db.migrate(&eva_statistics::store::MIGRATIONS).await?;
    let next = from_the_future(&db).await?;
    match db.migrate(&eva_statistics::store::MIGRATIONS).await {
        Err(e @ DbError::NewerSchema { .. }) => {
            let m = e.to_string();
            ensure!(
                m.contains(&format!(
                    "schéma {next}, plus récent que ce programme ({})",
                    next - 1
                )) && m.contains("newer than this program"),
                "{m}"
            );
        }
        other => bail!("a newer schema was not refused: {other:?}"),
    }
    db.close().await;
    Ok(())
}

#[tokio::test]
async fn newer_schema_is_refused_on_sqlite() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("statistics.db").display()
    );
    newer_schema_is_refused(Db::connect(&url, 1).await?).await
}

#[tokio::test]
async fn newer_schema_is_refused_on_postgres() -> Result<()> {
    let pg = PgCluster::start().await?;
    let url = pg.create_database("statistics").await?;
    newer_schema_is_refused(Db::connect(&url, 1).await?).await
}
