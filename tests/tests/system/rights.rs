//! The person's GDPR rights through the gateway against the real system:
//! export (every service's part), erasure by crypto-shredding proven by
//! scanning every byte left on disk (SQLite files, JetStream store,
//! `pg_dump`), objection to statistics, and who may do each.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use eva_platform::auth::Role;
use eva_platform::bus::Bus;
use eva_platform::config::BusConfig;
use eva_platform::consent::{self, Consents, Purpose, Reason};
use eva_platform::consumer;
use eva_platform::{Db, Shutdown};
use eva_proto::identity::v1::{PersonErased, StatisticsObjectionChanged};
use eva_tests::api::{consent, get, person_token, post, request, send, structure};
use eva_tests::nats::NatsServer;
use eva_tests::sandbox::{Backend, Sandbox};
use prost::Message;
use reqwest::Method;
use serde_json::{Value, json};

const SIRET_A: &str = "41735218600007";
const SIRET_B: &str = "51734218700005";

/// Values that cannot appear by chance in any file.
const LAST: &str = "Zyxwvutsrq";
const FIRST: &str = "Qwertyuiop";
const EMAIL: &str = "zyx.qwe@example.org";
const PHONE: &str = "+33 7 91 82 73 64";
const BIRTH: &str = "1987-03-14";
const DISTINCTIVE: [&str; 5] = [LAST, FIRST, EMAIL, PHONE, BIRTH];

/// Two structures, a counselor and an admin of each.
struct World {
    sb: Sandbox,
    a: String,
    b: String,
    counselor_a: String,
    counselor_b: String,
    admin_a: String,
    admin_b: String,
}

async fn world(backend: Backend) -> Result<World> {
    let sb = Sandbox::start(backend).await?;
    let operator = sb.token("ops-1", vec![Role::Operator], vec![]).await?;
    let a = structure(&sb, &operator, "Association Alpha", SIRET_A, "association").await?;
    let b = structure(&sb, &operator, "Association Beta", SIRET_B, "association").await?;
    let counselor_a = sb
        .token("counselor-a", vec![Role::Counselor], vec![a.clone()])
        .await?;
    let counselor_b = sb
        .token("counselor-b", vec![Role::Counselor], vec![b.clone()])
        .await?;
    let admin_a = sb
        .token("admin-a", vec![Role::StructureAdmin], vec![a.clone()])
        .await?;
    let admin_b = sb
        .token("admin-b", vec![Role::StructureAdmin], vec![b.clone()])
        .await?;
    Ok(World {
        sb,
        a,
        b,
        counselor_a,
        counselor_b,
        admin_a,
        admin_b,
    })
}

impl World {
    /// A person registered by A.
    // Not `api::person`: erasure stories register people with their own e-mail, phone, birth date.
    async fn person(&self, body: Value) -> Result<String> {
        let (status, v) = send(
            &self.sb,
            Method::POST,
            "/api/v1/people",
            &self.counselor_a,
            Some(&body),
        )
        .await?;
        assert_eq!(status, 201, "{v}");
        Ok(v["id"].as_str().context("person id")?.to_owned())
    }

    async fn plain_person(&self) -> Result<String> {
        self.person(json!({
            "structure_id": self.a, "first_name": "Léa", "last_name": "Martin",
            "birth_date": "1990-01-01", "commune_insee": "27229",
        }))
        .await
    }

    async fn distinctive_person(&self) -> Result<String> {
        self.person(json!({
            "structure_id": self.a, "first_name": FIRST, "last_name": LAST,
            "birth_date": BIRTH, "email": EMAIL, "phone": PHONE, "commune_insee": "27229",
        }))
        .await
    }

    async fn grant(&self, person: &str) -> Result<()> {
        let counselor = &self.counselor_a;
        consent(
            &self.sb,
            counselor,
            person,
            &self.b,
            &["mobilite"],
            &["accompagnement"],
        )
        .await?;
        Ok(())
    }

    /// Waits until the person's access log holds `n` entries.
    async fn wait_log(&self, person: &str, n: usize) -> Result<()> {
        let token = person_token(&self.sb, person).await?;
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let (status, v) = get(
                &self.sb,
                &format!("/api/v1/people/{person}/access-log?page_size=500"),
                &token,
            )
            .await?;
            assert_eq!(status, 200, "{v}");
            let len = v["items"].as_array().map_or(0, Vec::len);
            if len >= n {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{len} access-log entries, expected {n}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test]
async fn the_export_gathers_every_services_part() -> Result<()> {
    let w = world(Backend::Sqlite).await?;
    let person = w.distinctive_person().await?;
    w.grant(&person).await?;
    // Created (write) and consent granted (write).
    w.wait_log(&person, 2).await?;
    let me = person_token(&w.sb, &person).await?;
    let r =
        w.sb.http
            .post(w.sb.url(&format!("/api/v1/people/{person}/export")))
            .bearer_auth(&me)
            .send()
            .await?;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    let disposition = r
        .headers()
        .get("content-disposition")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(disposition.starts_with("attachment"), "{disposition}");
    let doc: Value = r.json().await?;
    assert_eq!(doc["person_id"], person.as_str());
    let identity = &doc["services"]["identity"];
    assert_eq!(identity["person"]["last_name"], LAST);
    assert_eq!(identity["person"]["first_name"], FIRST);
    assert_eq!(identity["person"]["birth_date"], BIRTH);
    assert_eq!(identity["person"]["email"], EMAIL);
    let accompaniments = identity["accompaniments"]
        .as_array()
        .context("accompaniments")?;
    assert_eq!(accompaniments.len(), 1);
    assert_eq!(accompaniments[0]["structure_id"], w.a.as_str());
    assert_eq!(accompaniments[0]["structure_name"], "Association Alpha");
    let consents = identity["consents"].as_array().context("consents")?;
    assert_eq!(consents.len(), 1);
    assert_eq!(consents[0]["grantee_structure_id"], w.b.as_str());
    assert!(consents[0]["receipt"]["document"].is_object(), "{doc}");
    assert!(consents[0]["receipt"]["signature"].is_string());
    let log = identity["access_log"].as_array().context("access log")?;
    assert!(log.len() >= 2, "{doc}");
    assert!(log.iter().all(|e| e["actor_role"] == "counselor"));
    assert_eq!(identity["statistics_objection"]["objected"], false);
    let statistics = &doc["services"]["statistics"];
    assert_eq!(statistics["service"], "statistics");
    // Statistics keeps accompaniments under a keyed pseudonym, found again
    // from the id: listed once its consumer has read them, never the name.
    assert!(statistics["personal_data"].is_boolean(), "{statistics}");
    assert!(
        statistics["explanation_fr"]
            .as_str()
            .is_some_and(|s| s.contains("pseudonyme")),
        "{statistics}"
    );
    assert!(!statistics.to_string().contains(LAST), "{statistics}");
    let referrals = &doc["services"]["referrals"];
    assert_eq!(referrals["service"], "referrals", "{doc}");
    assert_eq!(referrals["data"], serde_json::json!([]), "{referrals}");
    assert_eq!(
        doc["services"]["community"]["personal_data"], false,
        "{doc}"
    );

    // The export is in the log, as an export for the person's rights.
    w.wait_log(&person, 3).await?;
    let (_, v) = get(&w.sb, &format!("/api/v1/people/{person}/access-log"), &me).await?;
    assert_eq!(v["items"][0]["action"], "export", "{v}");
    assert_eq!(v["items"][0]["actor_role"], "person");
    assert_eq!(v["items"][0]["purpose"], "droits_de_la_personne");

    // A counselor of the following structure exports for the person.
    let (status, doc) = send(
        &w.sb,
        Method::POST,
        &format!("/api/v1/people/{person}/export"),
        &w.counselor_a,
        None,
    )
    .await?;
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["services"]["identity"]["person"]["last_name"], LAST);
    w.sb.stop().await
}

#[tokio::test]
async fn an_objection_to_statistics_is_recorded_and_published() -> Result<()> {
    let w = world(Backend::Sqlite).await?;
    let person = w.plain_person().await?;
    let me = person_token(&w.sb, &person).await?;
    let path = format!("/api/v1/people/{person}/statistics-objection");
    let (status, v) = send(
        &w.sb,
        Method::PUT,
        &path,
        &me,
        Some(&json!({ "objected": true })),
    )
    .await?;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["objected"], true);
    // The counselor lifts it on the person's behalf.
    let (status, v) = send(
        &w.sb,
        Method::PUT,
        &path,
        &w.counselor_a,
        Some(&json!({ "objected": false })),
    )
    .await?;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["objected"], false);
    let events =
        identity_events(&w.sb, "eva.identity.person.statistics_objection_changed", 2).await?;
    let decoded: Vec<StatisticsObjectionChanged> = events
        .iter()
        .map(|p| StatisticsObjectionChanged::decode(p.as_slice()))
        .collect::<Result<_, _>>()?;
    assert_eq!(decoded[0].person_id, person);
    assert!(decoded[0].objected);
    assert_eq!(decoded[1].person_id, person);
    assert!(!decoded[1].objected);
    // Bad bodies are refused by name.
    let (status, v) = send(
        &w.sb,
        Method::PUT,
        &path,
        &me,
        Some(&json!({ "objected": "yes" })),
    )
    .await?;
    assert_eq!(status, 400, "{v}");
    let (status, v) = send(
        &w.sb,
        Method::PUT,
        "/api/v1/people/not-an-id/statistics-objection",
        &me,
        Some(&json!({ "objected": true })),
    )
    .await?;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["errors"][0]["field"], "person_id");
    w.sb.stop().await
}

/// Messages of EVA_IDENTITY on `subject`, waiting until there are `n`.
async fn identity_events(sb: &Sandbox, subject: &str, n: usize) -> Result<Vec<Vec<u8>>> {
    let js = async_nats::jetstream::new(sb.nats.connect().await?);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let mut stream = js.get_stream("EVA_IDENTITY").await?;
        let last = stream.info().await?.state.last_sequence;
        let mut found = Vec::new();
        for seq in 1..=last {
            if let Ok(m) = stream.get_raw_message(seq).await
                && m.subject.as_str() == subject
            {
                found.push(m.payload.to_vec());
            }
        }
        if found.len() >= n {
            return Ok(found);
        }
        if Instant::now() > deadline {
            bail!("{} events on {subject}, expected {n}", found.len());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every regular file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.is_file() {
                out.push(p);
            }
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Which of `needles` appear in which files under `dir` (name: needle).
fn scan(dir: &Path, needles: &[&[u8]]) -> Result<Vec<String>> {
    let mut hits = Vec::new();
    for f in files_under(dir) {
        let bytes = std::fs::read(&f).with_context(|| format!("reading {}", f.display()))?;
        for n in needles {
            if contains(&bytes, n) {
                hits.push(format!("{}: {}", f.display(), String::from_utf8_lossy(n)));
            }
        }
    }
    Ok(hits)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The person's wrapped data key, read straight from identity's database.
async fn wrapped_key(sb: &Sandbox, person: &str) -> Result<Vec<u8>> {
    let url = sb
        .config
        .identity
        .database_url(&sb.config.data_dir, "identity");
    let db = Db::connect(&url, 1).await?;
    let mut h = db.acquire().await?;
    let row: Option<(Vec<u8>,)> = eva_platform::on_backend!(h.conn(), c => sqlx::query_as(
        "SELECT wrapped_key FROM people WHERE person_id = $1",
    )
    .bind(person)
    .fetch_optional(&mut *c)
    .await)?;
    drop(h);
    db.close().await;
    Ok(row.context("the person's row")?.0)
}

/// `pg_dump` of identity's database, as the harness runs PostgreSQL's tools.
fn pg_dump(sb: &Sandbox) -> Result<Vec<u8>> {
    let pg = sb.pg.as_ref().context("a PostgreSQL sandbox")?;
    let bindir = match std::env::var_os(eva_tests::postgres::PG_BINDIR_ENV) {
        Some(d) => PathBuf::from(d),
        None => {
            let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")?
                .flatten()
                .filter_map(|e| {
                    let v = e.file_name().to_str()?.parse::<u32>().ok()?;
                    let bin = e.path().join("bin");
                    bin.join("pg_dump").is_file().then_some((v, bin))
                })
                .collect();
            versions.sort();
            versions
                .pop()
                .context("no pg_dump under /usr/lib/postgresql")?
                .1
        }
    };
    let program = bindir.join("pg_dump");
    let mut cmd = if nix::unistd::geteuid().is_root() {
        let mut c = std::process::Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(&program);
        c
    } else {
        std::process::Command::new(&program)
    };
    let out = cmd
        .arg("--dbname")
        .arg(pg.url_for("identity"))
        .current_dir("/")
        .output()
        .with_context(|| format!("running {}", program.display()))?;
    if !out.status.success() {
        bail!("pg_dump failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(out.stdout)
}

/// A service's own consent projection, fed by the bus.
async fn projection(
    sb: &Sandbox,
    dir: &tempfile::TempDir,
    shutdown: &Shutdown,
) -> Result<Consents> {
    let db = Db::connect(
        &format!("sqlite://{}/svc.db?mode=rwc", dir.path().display()),
        4,
    )
    .await?;
    db.migrate(&eva_tests::counting::MIGRATIONS).await?;
    let bus = Bus::connect(&BusConfig::default(), &sb.nats.url(), "tests").await?;
    let consents = Consents::new(db.clone());
    for sub in consent::subscriptions("tests") {
        let (bus, db, c, sd) = (bus.clone(), db.clone(), consents.clone(), shutdown.clone());
        tokio::spawn(async move { consumer::run(bus, db, sub, c, sd).await });
    }
    Ok(consents)
}

async fn erasure_story(backend: Backend) -> Result<()> {
    let w = world(backend).await?;
    let sb = &w.sb;
    let person = w.distinctive_person().await?;
    let me = person_token(sb, &person).await?;
    // Through every table and stream: read, consent, objection, export, log.
    let (status, got) = get(sb, &format!("/api/v1/people/{person}"), &w.counselor_a).await?;
    assert_eq!(status, 200, "{got}");
    w.grant(&person).await?;
    let (status, _) = send(
        sb,
        Method::PUT,
        &format!("/api/v1/people/{person}/statistics-objection"),
        &me,
        Some(&json!({ "objected": true })),
    )
    .await?;
    assert_eq!(status, 200);
    let (status, _) = send(
        sb,
        Method::POST,
        &format!("/api/v1/people/{person}/export"),
        &me,
        None,
    )
    .await?;
    assert_eq!(status, 200);
    w.wait_log(&person, 5).await?;

    // Before erasure: the API gives the values back...
    let (status, got) = get(sb, &format!("/api/v1/people/{person}"), &me).await?;
    assert_eq!(status, 200, "{got}");
    for (field, value) in [
        ("last_name", LAST),
        ("first_name", FIRST),
        ("email", EMAIL),
        ("phone", PHONE),
        ("birth_date", BIRTH),
    ] {
        assert_eq!(got[field], value);
    }
    // ...the files hold them sealed only (encryption at rest), while the
    // person's wrapped key is there to be found.
    let needles: Vec<&[u8]> = DISTINCTIVE.iter().map(|s| s.as_bytes()).collect();
    let key = wrapped_key(sb, &person).await?;
    let key_hex = hex(&key);
    let nats_store = sb.nats.store_dir();
    assert!(
        !files_under(&nats_store).is_empty(),
        "the JetStream store has files"
    );
    let hits = scan(&nats_store, &needles)?;
    assert!(
        hits.is_empty(),
        "plaintext in the JetStream store: {hits:?}"
    );
    let hits = scan(&sb.config.data_dir, &needles)?;
    assert!(hits.is_empty(), "plaintext in the data directory: {hits:?}");
    match backend {
        Backend::Sqlite => {
            let files = files_under(&sb.config.data_dir);
            assert!(
                files.iter().any(|f| f.ends_with("identity.db")),
                "{files:?}"
            );
            let found = scan(&sb.config.data_dir, &[key.as_slice()])?;
            assert!(
                !found.is_empty(),
                "the scan finds the wrapped key before erasure"
            );
        }
        Backend::Postgres => {
            let dump = pg_dump(sb)?;
            assert!(
                contains(&dump, key_hex.as_bytes()),
                "the dump holds the wrapped key before erasure"
            );
            for n in &needles {
                assert!(
                    !contains(&dump, n),
                    "plaintext {} in pg_dump",
                    String::from_utf8_lossy(n)
                );
            }
        }
    }

    // Erasure needs an explicit confirmation.
    let erase = format!("/api/v1/people/{person}/erase");
    for body in [None, Some(json!({})), Some(json!({ "confirm": false }))] {
        let (status, v) = send(sb, Method::POST, &erase, &me, body.as_ref()).await?;
        assert_eq!(status, 400, "{v}");
        assert_eq!(v["errors"][0]["field"], "confirm", "{v}");
    }
    let (status, v) = post(sb, &erase, &me, json!({ "confirm": true })).await?;
    assert_eq!(status, 200, "{v}");
    assert!(v["erased_at"].is_string());

    // Afterwards: not found, erased for the consent check, and for every
    // service's projection.
    for (method, path, token) in [
        (
            Method::GET,
            format!("/api/v1/people/{person}"),
            &w.counselor_a,
        ),
        (Method::GET, format!("/api/v1/people/{person}"), &me),
        (
            Method::GET,
            format!("/api/v1/people/{person}/access-log"),
            &me,
        ),
        (Method::POST, format!("/api/v1/people/{person}/export"), &me),
    ] {
        let (status, v) = send(sb, method, &path, token, None).await?;
        assert_eq!(status, 404, "{path}: {v}");
    }
    let (status, v) = post(sb, &erase, &me, json!({ "confirm": true })).await?;
    assert_eq!(status, 404, "erased twice: {v}");
    let check = format!(
        "/api/v1/consents/check?structure_id={}&person_id={person}&domain=mobilite&purpose=accompagnement",
        w.b
    );
    let (status, v) = get(sb, &check, &w.counselor_b).await?;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["allowed"], false);
    assert_eq!(v["reason"], "person_erased");
    let erased = identity_events(sb, "eva.identity.person.erased", 1).await?;
    assert_eq!(
        PersonErased::decode(erased[0].as_slice())?.person_id,
        person
    );
    let dir = tempfile::tempdir()?;
    let shutdown = Shutdown::new();
    let consents = projection(sb, &dir, &shutdown).await?;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let d = consents
            .check(
                &w.b,
                &person,
                "mobilite",
                Purpose::Accompagnement,
                &consent::today(),
            )
            .await?;
        if d.reason == Reason::PersonErased {
            assert!(!d.allowed);
            break;
        }
        if Instant::now() > deadline {
            bail!("the projection says {d:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.trigger();

    if backend == Backend::Postgres {
        let dump = pg_dump(sb)?;
        assert!(
            !contains(&dump, key_hex.as_bytes()),
            "the wrapped key is gone from pg_dump"
        );
        for n in &needles {
            assert!(
                !contains(&dump, n),
                "plaintext {} in pg_dump after erasure",
                String::from_utf8_lossy(n)
            );
        }
    }

    // Stop everything, draining, and keep the files: the database files are
    // hard-linked (the sandbox deletes its directory when dropped), and the
    // nats-server is taken out of the sandbox to be stopped cleanly.
    let World { mut sb, .. } = w;
    let kept = tempfile::tempdir_in(sb.config.data_dir.parent().context("data dir parent")?)?;
    for f in files_under(&sb.config.data_dir) {
        let rel = f.strip_prefix(&sb.config.data_dir)?;
        let to = kept.path().join(rel);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::hard_link(&f, &to)?;
    }
    let mut nats = std::mem::replace(&mut sb.nats, NatsServer::start().await?);
    sb.stop().await?;
    nats.stop().await?;

    if backend == Backend::Sqlite {
        let kept_files = files_under(kept.path());
        assert!(
            kept_files.iter().any(|f| f.ends_with("identity.db")),
            "{kept_files:?}"
        );
    }
    let hits = scan(kept.path(), &needles)?;
    assert!(hits.is_empty(), "plaintext left on disk: {hits:?}");
    let found = scan(kept.path(), &[key.as_slice()])?;
    assert!(
        found.is_empty(),
        "the wrapped key is still on disk: {found:?}"
    );
    let hits = scan(&nats.store_dir(), &needles)?;
    assert!(
        hits.is_empty(),
        "plaintext in the JetStream store: {hits:?}"
    );
    Ok(())
}

#[tokio::test]
async fn erasure_leaves_no_plaintext_on_sqlite() -> Result<()> {
    erasure_story(Backend::Sqlite).await
}

#[tokio::test]
async fn erasure_leaves_no_plaintext_on_postgres() -> Result<()> {
    erasure_story(Backend::Postgres).await
}

/// Who calls.
#[derive(Debug, Clone, Copy)]
enum Caller {
    Nobody,
    PersonSelf,
    PersonOther,
    CounselorFollowing,
    CounselorOther,
    AdminFollowing,
    AdminOther,
    Partner,
    Analyst,
    Operator,
}

impl World {
    async fn token_of(&self, caller: Caller, person: &str) -> Result<Option<String>> {
        let sb = &self.sb;
        Ok(match caller {
            Caller::Nobody => None,
            Caller::PersonSelf => Some(person_token(sb, person).await?),
            Caller::PersonOther => Some(person_token(sb, &uuid::Uuid::now_v7().to_string()).await?),
            Caller::CounselorFollowing => Some(self.counselor_a.clone()),
            Caller::CounselorOther => Some(self.counselor_b.clone()),
            Caller::AdminFollowing => Some(self.admin_a.clone()),
            Caller::AdminOther => Some(self.admin_b.clone()),
            Caller::Partner => Some(
                sb.token("partner-a", vec![Role::Partner], vec![self.a.clone()])
                    .await?,
            ),
            Caller::Analyst => Some(sb.token("analyst", vec![Role::Analyst], vec![]).await?),
            Caller::Operator => Some(sb.token("ops-2", vec![Role::Operator], vec![]).await?),
        })
    }
}

#[tokio::test]
async fn who_may_exercise_which_right() -> Result<()> {
    use Caller::*;
    let w = world(Backend::Sqlite).await?;
    let person = w.plain_person().await?;
    // caller, access log, export, objection, erasure
    let matrix: [(Caller, u16, u16, u16, u16); 10] = [
        (Nobody, 401, 401, 401, 401),
        (PersonSelf, 200, 200, 200, 200),
        (PersonOther, 404, 404, 404, 404),
        (CounselorFollowing, 403, 200, 200, 403),
        (CounselorOther, 403, 404, 404, 403),
        (AdminFollowing, 200, 403, 403, 200),
        (AdminOther, 404, 403, 403, 404),
        (Partner, 403, 403, 403, 403),
        (Analyst, 403, 403, 403, 403),
        (Operator, 403, 403, 403, 403),
    ];
    for (caller, log, export, objection, erase) in matrix {
        let token = w.token_of(caller, &person).await?;
        let t = token.as_deref();
        let (status, v) = request(
            &w.sb,
            Method::GET,
            &format!("/api/v1/people/{person}/access-log"),
            t,
            None,
        )
        .await?;
        assert_eq!(status.as_u16(), log, "{caller:?} reads the log: {v}");
        let (status, v) = request(
            &w.sb,
            Method::POST,
            &format!("/api/v1/people/{person}/export"),
            t,
            None,
        )
        .await?;
        assert_eq!(status.as_u16(), export, "{caller:?} exports: {v}");
        let (status, v) = request(
            &w.sb,
            Method::PUT,
            &format!("/api/v1/people/{person}/statistics-objection"),
            t,
            Some(&json!({ "objected": true })),
        )
        .await?;
        assert_eq!(status.as_u16(), objection, "{caller:?} objects: {v}");
        // Each erasure on a person of its own, so allowed ones do not end the
        // matrix.
        let target = w.plain_person().await?;
        let token = w.token_of(caller, &target).await?;
        let (status, v) = request(
            &w.sb,
            Method::POST,
            &format!("/api/v1/people/{target}/erase"),
            token.as_deref(),
            Some(&json!({ "confirm": true })),
        )
        .await?;
        assert_eq!(status.as_u16(), erase, "{caller:?} erases: {v}");
        let still_there = get(&w.sb, &format!("/api/v1/people/{target}"), &w.counselor_a)
            .await?
            .0;
        assert_eq!(
            still_there.as_u16(),
            if erase == 200 { 404 } else { 200 },
            "{caller:?}: the person is erased only when allowed"
        );
    }
    // No id of a missing person tells anything more.
    let (status, _) = send(
        &w.sb,
        Method::POST,
        &format!("/api/v1/people/{}/export", uuid::Uuid::now_v7()),
        &w.counselor_a,
        None,
    )
    .await?;
    assert_eq!(status, 404);
    w.sb.stop().await
}
