//! Consent the person controls, through the gateway against the real system:
//! a grant, the authoritative check, a signed receipt with no name in it,
//! withdrawal taking effect at once in identity and within the bus lag in a
//! service's local projection, the default domains, expiry, and bad input
//! refused by name with nothing stored.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use eva_platform::auth::{Jwk, Role, Verifier};
use eva_platform::bus::Bus;
use eva_platform::config::BusConfig;
use eva_platform::consent::{self, Consents, Purpose, Reason};
use eva_platform::db::Db;
use eva_platform::{Shutdown, consumer};
use eva_proto::identity::v1::{ConsentExpired, ConsentGranted, ConsentWithdrawn};
use eva_tests::api::{get, person_token, post, send, structure, until};
use eva_tests::sandbox::{Backend, Sandbox};
use prost::Message;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const SIRET_A: &str = "41735218600007";
const SIRET_B: &str = "51734218700005";

struct World {
    sb: Sandbox,
    a: String,
    b: String,
    counselor_a: String,
    counselor_b: String,
    person: String,
    person_token: String,
}

/// Structures A and B, a counselor in each, and Ana registered by A (so A
/// follows her, B does not), with her own account's token.
async fn world(backend: Backend) -> Result<World> {
    let sb = Sandbox::start(backend).await?;
    let operator = sb.token("ops-1", vec![Role::Operator], vec![]).await?;
    let a = structure(&sb, &operator, "Chantier A", SIRET_A, "association").await?;
    let b = structure(&sb, &operator, "Association B", SIRET_B, "association").await?;
    let counselor_a = sb
        .token("counselor-a", vec![Role::Counselor], vec![a.clone()])
        .await?;
    let counselor_b = sb
        .token("counselor-b", vec![Role::Counselor], vec![b.clone()])
        .await?;
    let ana = json!({
        "structure_id": a, "first_name": "Ana", "last_name": "Zabalveytia",
        "birth_date": "1985-05-20", "commune_insee": "27229", "email": "ana.z@exemple.fr",
    });
    let (status, created) = send(
        &sb,
        Method::POST,
        "/api/v1/people",
        &counselor_a,
        Some(&ana),
    )
    .await?;
    assert_eq!(status, 201, "{created}");
    let person = created["id"].as_str().context("person id")?.to_owned();
    let person_token = person_token(&sb, &person).await?;
    Ok(World {
        sb,
        a,
        b,
        counselor_a,
        counselor_b,
        person,
        person_token,
    })
}

impl World {
    async fn grant(&self, token: &str, body: Value) -> Result<(StatusCode, Value)> {
        send(
            &self.sb,
            Method::POST,
            &format!("/api/v1/people/{}/consents", self.person),
            token,
            Some(&body),
        )
        .await
    }

    /// `CheckAccess` as a counselor of B.
    async fn check(&self, domain: &str, purpose: &str) -> Result<Value> {
        let path = format!(
            "/api/v1/consents/check?structure_id={}&person_id={}&domain={domain}&purpose={purpose}",
            self.b, self.person
        );
        let (status, v) = get(&self.sb, &path, &self.counselor_b).await?;
        assert_eq!(status, 200, "{v}");
        Ok(v)
    }
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

async fn wait_projection(c: &Consents, w: &World, want: Reason) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let d = c
            .check(
                &w.b,
                &w.person,
                "mobilite",
                Purpose::Accompagnement,
                &consent::today(),
            )
            .await?;
        if d.reason == want {
            assert_eq!(d.allowed, want == Reason::ConsentActive);
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("projection says {d:?}, expected {want:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Messages of EVA_CONSENT on `subject`, waiting until there are `n`.
async fn consent_events(sb: &Sandbox, subject: &str, n: usize) -> Result<Vec<Vec<u8>>> {
    let js = async_nats::jetstream::new(sb.nats.connect().await?);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let mut stream = js.get_stream("EVA_CONSENT").await?;
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

/// Verifies a downloaded receipt with the keys the gateway publishes.
async fn verify_receipt(sb: &Sandbox, file: &Value) -> Result<(), eva_platform::auth::AuthError> {
    let jwks: Value = sb
        .http
        .get(sb.url("/.well-known/jwks.json"))
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| eva_platform::auth::AuthError::Keys(e.to_string()))?
        .json()
        .await
        .map_err(|e| eva_platform::auth::AuthError::Keys(e.to_string()))?;
    let keys: Vec<Jwk> = serde_json::from_value(jwks["keys"].clone())
        .map_err(|e| eva_platform::auth::AuthError::Keys(e.to_string()))?;
    let verifier = Verifier::new(
        &sb.config.auth.issuer,
        &sb.config.auth.audience,
        Arc::new(move || {
            let keys = keys.clone();
            Box::pin(async move { Ok(keys) })
        }),
    );
    // The signature covers the receipt as compact JSON with sorted keys.
    let signed = file["receipt"].to_string();
    verifier
        .verify_detached(
            file["signature"].as_str().unwrap_or_default(),
            signed.as_bytes(),
        )
        .await
}

async fn consent_story(backend: Backend) -> Result<()> {
    let w = world(backend).await?;
    let sb = &w.sb;
    let dir = tempfile::tempdir()?;
    let shutdown = Shutdown::new();
    let local = projection(sb, &dir, &shutdown).await?;

    // Ana, in her own space, lets B see her mobility for her accompaniment.
    let (status, c) = w
        .grant(
            &w.person_token,
            json!({ "grantee_structure_id": w.b, "domains": ["mobilite"], "purposes": ["accompagnement"] }),
        )
        .await?;
    assert_eq!(status, 201, "{c}");
    let id = c["id"].as_str().context("consent id")?.to_owned();
    assert_eq!(c["status"], "active");
    assert_eq!(c["domains"], json!(["mobilite"]));
    assert_eq!(c["purposes"], json!(["accompagnement"]));
    assert_eq!(c["collection"], "espace_personnel");
    assert_eq!(c["grantee_structure_id"], w.b.as_str());
    assert_eq!(c["valid_from"], consent::today());

    // Identity's authoritative answer.
    let d = w.check("mobilite", "accompagnement").await?;
    assert_eq!(d["allowed"], true, "{d}");
    assert_eq!(d["reason"], "consent_active");
    assert_eq!(d["consent_id"], id.as_str());
    let d = w.check("sante", "accompagnement").await?;
    assert_eq!(
        (d["allowed"].clone(), d["reason"].clone()),
        (json!(false), json!("domain_not_covered"))
    );
    let d = w.check("mobilite", "orientation").await?;
    assert_eq!(
        (d["allowed"].clone(), d["reason"].clone()),
        (json!(false), json!("purpose_not_covered"))
    );

    // The receipt downloads as a file, verifies with the JWKS, and names no one.
    let r = sb
        .http
        .get(sb.url(&format!("/api/v1/consents/{id}/receipt")))
        .bearer_auth(&w.person_token)
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
    let text = r.text().await?;
    for name in ["Zabalveytia", "Ana", "ana.z@", "1985-05-20"] {
        assert!(!text.contains(name), "the receipt holds {name}");
    }
    let file: Value = serde_json::from_str(&text)?;
    let receipt = &file["receipt"];
    assert_eq!(receipt["jurisdiction"], "FR");
    assert_eq!(receipt["language"], "fr");
    assert_eq!(receipt["pii_principal_id"], w.person.as_str());
    assert_eq!(receipt["consent_id"], id.as_str());
    assert_eq!(receipt["collection_method"], "espace_personnel");
    assert_eq!(
        receipt["pii_controllers"][0]["pii_controller"],
        "Association B"
    );
    assert_eq!(receipt["pii_controllers"][0]["siret"], SIRET_B);
    assert_eq!(receipt["pii_categories"][0]["label"], "Mobilité");
    assert_eq!(receipt["sensitive"], false);
    assert_eq!(receipt["termination"], c["valid_until"]);
    assert!(
        receipt["withdrawal"]
            .as_str()
            .is_some_and(|s| s.contains("retirer"))
    );
    verify_receipt(sb, &file)
        .await
        .context("the receipt's signature")?;
    let mut forged = file.clone();
    forged["receipt"]["pii_categories"][0]["id"] = json!("sante");
    assert!(
        verify_receipt(sb, &forged).await.is_err(),
        "a changed receipt must not verify"
    );

    // The bus carries the grant to the service's projection.
    wait_projection(&local, &w, Reason::ConsentActive).await?;

    // One action withdraws it, at once.
    let path = format!("/api/v1/consents/{id}/withdraw");
    let (status, withdrawn) = send(sb, Method::POST, &path, &w.person_token, None).await?;
    assert_eq!(status, 200, "{withdrawn}");
    assert_eq!(withdrawn["status"], "withdrawn");
    assert!(withdrawn["withdrawn_at"].is_string());
    let d = w.check("mobilite", "accompagnement").await?;
    assert_eq!(
        (d["allowed"].clone(), d["reason"].clone()),
        (json!(false), json!("consent_withdrawn"))
    );
    // Twice is the same as once.
    let (status, again) = send(sb, Method::POST, &path, &w.person_token, None).await?;
    assert_eq!(status, 200);
    assert_eq!(again["withdrawn_at"], withdrawn["withdrawn_at"]);
    assert_eq!(again["status"], "withdrawn");
    // The local projection follows within the bus lag.
    wait_projection(&local, &w, Reason::ConsentWithdrawn).await?;

    // The person's list, by status; counselor A (following) sees it too.
    let list = |status: &str| format!("/api/v1/people/{}/consents?status={status}", w.person);
    let (_, active) = get(sb, &list("active"), &w.person_token).await?;
    assert_eq!(
        active["items"].as_array().map(Vec::len),
        Some(0),
        "{active}"
    );
    let (_, ended) = get(sb, &list("withdrawn"), &w.counselor_a).await?;
    assert_eq!(ended["items"][0]["id"], id.as_str());
    let (status, p) = get(sb, &list("paused"), &w.person_token).await?;
    assert_eq!(status, 400);
    assert_eq!(p["errors"][0]["field"], "status");

    // One granted and one withdrawn event, with ids only.
    let granted = consent_events(sb, "eva.consent.grant.granted", 1).await?;
    let g = ConsentGranted::decode(granted[0].as_slice())?;
    assert_eq!(
        (g.consent_id.as_str(), g.grantee_structure_id.as_str()),
        (id.as_str(), w.b.as_str())
    );
    assert_eq!(g.domains, vec!["mobilite".to_owned()]);
    let withdrawals = consent_events(sb, "eva.consent.grant.withdrawn", 1).await?;
    assert_eq!(withdrawals.len(), 1, "withdrawing twice publishes once");
    assert_eq!(
        ConsentWithdrawn::decode(withdrawals[0].as_slice())?.consent_id,
        id
    );
    shutdown.trigger();
    w.sb.stop().await
}

#[tokio::test]
async fn consent_story_on_sqlite() -> Result<()> {
    consent_story(Backend::Sqlite).await
}

#[tokio::test]
async fn consent_story_on_postgres() -> Result<()> {
    consent_story(Backend::Postgres).await
}

/// No domain listed: every domain but `sante` and
/// `difficultes-administratives-ou-juridiques`. Recorded at A's desk.
#[tokio::test]
async fn an_empty_domain_list_covers_only_the_non_sensitive_domains() -> Result<()> {
    let w = world(Backend::Sqlite).await?;
    let (status, c) = w
        .grant(
            &w.counselor_a,
            json!({ "grantee_structure_id": w.b, "purposes": ["accompagnement"] }),
        )
        .await?;
    assert_eq!(status, 201, "{c}");
    assert_eq!(c["collection"], "au_bureau");
    assert_eq!(c["recorded_by_user_id"], "counselor-a");
    let domains: Vec<&str> = c["domains"]
        .as_array()
        .context("domains")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let expected: Vec<&str> = consent::DOMAINS
        .iter()
        .filter(|d| !d.sensitive)
        .map(|d| d.id)
        .collect();
    assert_eq!(domains, expected);
    assert_eq!(domains.len(), 9);
    for d in consent::DOMAINS {
        let answer = w.check(d.id, "accompagnement").await?;
        if d.sensitive {
            assert_eq!(answer["reason"], "domain_not_covered", "{}", d.id);
        } else {
            assert_eq!(answer["allowed"], true, "{}: {answer}", d.id);
        }
    }
    // Listed explicitly, `sante` is covered and the receipt says it is sensitive.
    let (status, c) = w
        .grant(
            &w.person_token,
            json!({ "grantee_structure_id": w.b, "domains": ["sante"], "purposes": ["orientation"] }),
        )
        .await?;
    assert_eq!(status, 201, "{c}");
    let answer = w.check("sante", "orientation").await?;
    assert_eq!(answer["allowed"], true, "{answer}");
    let (_, file) = get(
        &w.sb,
        &format!(
            "/api/v1/consents/{}/receipt",
            c["id"].as_str().unwrap_or_default()
        ),
        &w.person_token,
    )
    .await?;
    assert_eq!(file["receipt"]["sensitive"], true);
    assert!(
        file["receipt"]["spi_cat"][0]
            .as_str()
            .is_some_and(|s| s.contains("Santé"))
    );
    w.sb.stop().await
}

/// An active consent whose last day was yesterday is expired by the expiry
/// pass, which publishes `eva.consent.grant.expired`; a second pass does
/// nothing more.
#[tokio::test]
async fn a_consent_past_its_last_day_expires() -> Result<()> {
    let w = world(Backend::Sqlite).await?;
    let sb = &w.sb;
    let dir = tempfile::tempdir()?;
    let shutdown = Shutdown::new();
    let local = projection(sb, &dir, &shutdown).await?;
    let (status, c) = w
        .grant(&w.person_token, json!({ "grantee_structure_id": w.b, "domains": ["mobilite"], "purposes": ["accompagnement"] }))
        .await?;
    assert_eq!(status, 201, "{c}");
    let id = c["id"].as_str().context("consent id")?.to_owned();
    wait_projection(&local, &w, Reason::ConsentActive).await?;

    // Craft the row: it ended yesterday and is still marked active.
    let today = consent::today();
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    let yesterday = (time::Date::parse(&today, fmt)? - time::Duration::days(1)).format(fmt)?;
    let db = Db::connect(
        &sb.config
            .identity
            .database_url(&sb.config.data_dir, "identity"),
        2,
    )
    .await?;
    let mut h = db.acquire().await?;
    eva_platform::on_backend!(h.conn(), c => sqlx::query(
        "UPDATE consents SET valid_from = '2024-01-01', valid_until = $1 WHERE consent_id = $2",
    )
    .bind(&yesterday)
    .bind(&id)
    .execute(&mut *c)
    .await
    .map(|_| ()))?;
    drop(h);
    // Identity decides from its table: past the last day, no more access.
    let d = w.check("mobilite", "accompagnement").await?;
    assert_eq!(d["reason"], "consent_expired", "{d}");

    let n = eva_identity::consent::expiry::expire_due(&db, &today).await?;
    assert!(n <= 1, "{n}");
    let (status, got) = get(sb, &format!("/api/v1/consents/{id}"), &w.person_token).await?;
    assert_eq!(status, 200);
    assert_eq!(got["status"], "expired", "{got}");
    assert_eq!(
        eva_identity::consent::expiry::expire_due(&db, &today).await?,
        0
    );
    let expired = consent_events(sb, "eva.consent.grant.expired", 1).await?;
    assert_eq!(expired.len(), 1);
    let e = ConsentExpired::decode(expired[0].as_slice())?;
    assert_eq!(
        (e.consent_id.as_str(), e.person_id.as_str()),
        (id.as_str(), w.person.as_str())
    );
    wait_projection(&local, &w, Reason::ConsentExpired).await?;
    // An expired consent is not withdrawn, nor revived, by a late withdrawal.
    let (status, after) = send(
        sb,
        Method::POST,
        &format!("/api/v1/consents/{id}/withdraw"),
        &w.person_token,
        None,
    )
    .await?;
    assert_eq!(status, 200);
    assert_eq!(after["status"], "expired");
    db.close().await;
    shutdown.trigger();
    w.sb.stop().await
}

/// Bad input → 400 problem+json naming the field, and nothing stored changes.
#[tokio::test]
async fn bad_input_is_refused_by_name_and_changes_nothing() -> Result<()> {
    let w = world(Backend::Sqlite).await?;
    let sb = &w.sb;
    let person = |changes: Value| {
        let mut p = json!({
            "structure_id": w.a, "first_name": "Bruno", "last_name": "Martin",
            "birth_date": "1990-01-01", "commune_insee": "27229",
        });
        if let (Some(p), Some(c)) = (p.as_object_mut(), changes.as_object()) {
            p.extend(c.clone());
        }
        p
    };
    let grant = |changes: Value| {
        let mut g = json!({ "grantee_structure_id": w.b, "domains": ["mobilite"], "purposes": ["accompagnement"] });
        if let (Some(g), Some(c)) = (g.as_object_mut(), changes.as_object()) {
            g.extend(c.clone());
        }
        g
    };
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    let in_days = |n: i64| -> Result<String> {
        Ok((time::Date::parse(&consent::today(), fmt)? + time::Duration::days(n)).format(fmt)?)
    };
    let consents = format!("/api/v1/people/{}/consents", w.person);
    let me = format!("/api/v1/people/{}", w.person);
    let cases: Vec<(Method, String, Value, &str)> = vec![
        (
            Method::POST,
            "/api/v1/people".into(),
            person(json!({ "nir": "185057800608492" })),
            "nir",
        ),
        (
            Method::POST,
            "/api/v1/people".into(),
            person(json!({ "birth_date": "2999-01-01" })),
            "birth_date",
        ),
        (
            Method::POST,
            "/api/v1/people".into(),
            person(json!({ "birth_date": "1990-02-30" })),
            "birth_date",
        ),
        (
            Method::POST,
            "/api/v1/people".into(),
            person(json!({ "last_name": "M".repeat(101) })),
            "last_name",
        ),
        (
            Method::POST,
            "/api/v1/people".into(),
            person(json!({ "email": "bruno@" })),
            "email",
        ),
        (
            Method::POST,
            "/api/v1/people".into(),
            person(json!({ "phone": "06-12" })),
            "phone",
        ),
        (
            Method::POST,
            "/api/v1/people".into(),
            person(json!({ "commune_insee": "ABCDE" })),
            "commune_insee",
        ),
        (
            Method::POST,
            "/api/v1/people".into(),
            person(json!({ "referent_user_id": "bob" })),
            "referent_user_id",
        ),
        (
            Method::POST,
            "/api/v1/people".into(),
            person(json!({ "shoe_size": 42 })),
            "body",
        ),
        (
            Method::PATCH,
            me.clone(),
            json!({ "nir": "185057800608492" }),
            "nir",
        ),
        (
            Method::PATCH,
            me.clone(),
            json!({ "last_name": "" }),
            "last_name",
        ),
        (Method::PATCH, me.clone(), json!({}), "body"),
        (
            Method::POST,
            consents.clone(),
            grant(json!({ "domains": ["mobilite", "astrologie"] })),
            "domains",
        ),
        (
            Method::POST,
            consents.clone(),
            grant(json!({ "valid_from": in_days(10)?, "valid_until": in_days(9)? })),
            "valid_until",
        ),
        (
            Method::POST,
            consents.clone(),
            grant(json!({ "valid_until": "2099-01-01" })),
            "valid_until",
        ),
        (
            Method::POST,
            consents.clone(),
            grant(json!({ "valid_from": "2001-01-01" })),
            "valid_from",
        ),
        (
            Method::POST,
            consents.clone(),
            grant(json!({ "purposes": ["marketing"] })),
            "purposes",
        ),
        (
            Method::POST,
            consents.clone(),
            grant(json!({ "purposes": [] })),
            "purposes",
        ),
        (
            Method::POST,
            consents.clone(),
            grant(json!({ "grantee_structure_id": uuid::Uuid::now_v7().to_string() })),
            "grantee_structure_id",
        ),
    ];
    for (method, path, body, field) in cases {
        // A counselor of A for registrations, Ana herself for her own file.
        let token = if path == "/api/v1/people" {
            &w.counselor_a
        } else {
            &w.person_token
        };
        let r = sb
            .http
            .request(method.clone(), sb.url(&path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await?;
        assert_eq!(r.status(), 400, "{method} {path} {body}");
        assert_eq!(
            r.headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/problem+json")
        );
        let p: Value = r.json().await?;
        assert_eq!(
            p["errors"][0]["field"], field,
            "{method} {path} {body}: {p}"
        );
        // The services answer French then English (a malformed body is
        // described by the JSON parser).
        assert!(
            field == "body"
                || p["errors"][0]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains(" / ")),
            "French / English: {p}"
        );
    }
    // Check: unknown domain or purpose.
    for (q, field) in [
        ("domain=astrologie&purpose=accompagnement", "domain"),
        ("domain=mobilite&purpose=marketing", "purpose"),
    ] {
        let path = format!(
            "/api/v1/consents/check?structure_id={}&person_id={}&{q}",
            w.b, w.person
        );
        let (status, p) = get(sb, &path, &w.counselor_b).await?;
        assert_eq!(status, 400, "{q}");
        assert_eq!(p["errors"][0]["field"], field);
    }
    // Nothing changed: A still follows Ana alone, unchanged, with no consent.
    let (_, page) = get(
        sb,
        &format!("/api/v1/people?structure_id={}", w.a),
        &w.counselor_a,
    )
    .await?;
    assert_eq!(page["items"].as_array().map(Vec::len), Some(1), "{page}");
    assert_eq!(page["items"][0]["last_name"], "Zabalveytia");
    assert!(page["items"][0]["nir"].is_null());
    let (_, list) = get(sb, &consents, &w.person_token).await?;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(0), "{list}");
    w.sb.stop().await
}

/// The domain `id` of a diagnostic as the gateway shows it.
fn diagnostic_domain<'a>(d: &'a Value, id: &str) -> &'a Value {
    d["domains"]
        .as_array()
        .and_then(|ds| ds.iter().find(|x| x["domain_id"] == id))
        .unwrap_or(&Value::Null)
}

/// Ana withdraws ONE domain of her consent to B, in one call: identity
/// withdraws the consent and grants the remaining domains in the same
/// transaction (linked, with its own signed receipt); B no longer sees that
/// domain of A's diagnostic and still sees the others; the events, the lists
/// and the access log agree. An unknown or uncovered domain is refused by name.
#[tokio::test]
async fn withdrawing_one_domain_keeps_the_others() -> Result<()> {
    let w = world(Backend::Sqlite).await?;
    let sb = &w.sb;
    let (ana, person) = (&w.person_token, &w.person);

    // A records a diagnostic of Ana and shares it.
    let list_path = format!("/api/v1/people/{person}/diagnostics");
    let d = until(
        sb,
        Method::POST,
        &list_path,
        &w.counselor_a,
        Some(json!({ "structure_id": w.a })),
        |s, _| s == StatusCode::CREATED,
    )
    .await?;
    let d_path = format!("/api/v1/diagnostics/{}", d["id"].as_str().context("id")?);
    let (s, v) = send(
        sb,
        Method::PATCH,
        &d_path,
        &w.counselor_a,
        Some(&json!({ "ratings": [{ "item_id": "mobilite.permis", "level": "frein" }] })),
    )
    .await?;
    assert_eq!(s, 200, "{v}");
    let (s, v) = post(sb, &format!("{d_path}/share"), &w.counselor_a, json!({})).await?;
    assert_eq!(s, 200, "{v}");

    // B follows Ana (share code) and gets mobility, family and housing.
    let (s, v) = post(sb, "/api/v1/me/share-codes", ana, json!({})).await?;
    assert_eq!(s, 201, "{v}");
    let (s, v) = post(
        sb,
        "/api/v1/share-codes/redeem",
        &w.counselor_b,
        json!({ "code": v["code"], "structure_id": w.b }),
    )
    .await?;
    assert_eq!(s, 201, "{v}");
    let (s, c) = w
        .grant(
            ana,
            json!({ "grantee_structure_id": w.b, "domains": ["mobilite", "famille", "logement-hebergement"], "purposes": ["accompagnement", "orientation"] }),
        )
        .await?;
    assert_eq!(s, 201, "{c}");
    let old = c["id"].as_str().context("consent id")?.to_owned();
    let seen = until(sb, Method::GET, &d_path, &w.counselor_b, None, |s, v| {
        s == StatusCode::OK
            && diagnostic_domain(v, "mobilite")["access"] == "visible"
            && diagnostic_domain(v, "famille")["access"] == "visible"
    })
    .await?;
    assert_eq!(diagnostic_domain(&seen, "sante")["access"], "withheld");

    // An unknown domain, or one the consent does not cover: 400 naming it, nothing changes.
    let withdraw = format!("/api/v1/consents/{old}/withdraw");
    for bad in ["astrologie", "sante"] {
        let (s, p) = post(sb, &withdraw, ana, json!({ "domains": ["famille", bad] })).await?;
        assert_eq!(s, 400, "{p}");
        assert_eq!(p["errors"][0]["field"], "domains", "{p}");
        assert!(p.to_string().contains(bad), "the problem names {bad}: {p}");
    }
    let (s, p) = post(sb, &withdraw, ana, json!({ "domaines": ["famille"] })).await?;
    assert_eq!(s, 400, "{p}");
    let (_, active) = get(
        sb,
        &format!("/api/v1/people/{person}/consents?status=active"),
        ana,
    )
    .await?;
    assert_eq!(
        active["items"].as_array().map(Vec::len),
        Some(1),
        "{active}"
    );
    assert_eq!(active["items"][0]["id"], old.as_str());

    // Ana withdraws mobility only: one call.
    let (s, r) = post(sb, &withdraw, ana, json!({ "domains": ["mobilite"] })).await?;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["id"], old.as_str());
    assert_eq!(r["status"], "withdrawn");
    assert_eq!(
        r["domains"],
        json!(["mobilite", "logement-hebergement", "famille"])
    );
    let rest = &r["remaining"];
    let new = rest["id"].as_str().context("remaining consent")?.to_owned();
    assert_ne!(new, old);
    assert_eq!(rest["status"], "active", "{r}");
    assert_eq!(rest["domains"], json!(["logement-hebergement", "famille"]));
    assert_eq!(rest["purposes"], c["purposes"]);
    assert_eq!(rest["grantee_structure_id"], w.b.as_str());
    assert_eq!(
        (&rest["valid_from"], &rest["valid_until"]),
        (&c["valid_from"], &c["valid_until"])
    );
    assert_eq!(rest["collection"], "espace_personnel");

    // Identity's decision at once: mobility withdrawn, family allowed by the new consent.
    let d = w.check("mobilite", "accompagnement").await?;
    assert_eq!(
        (d["allowed"].clone(), d["reason"].clone()),
        (json!(false), json!("consent_withdrawn"))
    );
    let d = w.check("famille", "orientation").await?;
    assert_eq!(d["allowed"], true, "{d}");
    assert_eq!(d["consent_id"], new.as_str());

    // B, through diagnostics' own projection: mobility withheld, family still visible.
    let seen = until(sb, Method::GET, &d_path, &w.counselor_b, None, |s, v| {
        s == StatusCode::OK && diagnostic_domain(v, "mobilite")["access"] == "withheld"
    })
    .await?;
    assert!(diagnostic_domain(&seen, "mobilite").get("items").is_none());
    assert_eq!(
        diagnostic_domain(&seen, "famille")["access"],
        "visible",
        "{seen}"
    );
    assert_eq!(
        diagnostic_domain(&seen, "logement-hebergement")["access"],
        "visible"
    );

    // The lists: the new consent active, the old one withdrawn.
    let (_, active) = get(
        sb,
        &format!("/api/v1/people/{person}/consents?status=active"),
        ana,
    )
    .await?;
    assert_eq!(
        active["items"].as_array().map(Vec::len),
        Some(1),
        "{active}"
    );
    assert_eq!(active["items"][0]["id"], new.as_str());
    let (_, ended) = get(
        sb,
        &format!("/api/v1/people/{person}/consents?status=withdrawn"),
        ana,
    )
    .await?;
    assert_eq!(ended["items"][0]["id"], old.as_str());

    // The new consent's receipt: signed, the remaining domains, linked to the old one.
    let r = sb
        .http
        .get(sb.url(&format!("/api/v1/consents/{new}/receipt")))
        .bearer_auth(ana)
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    let file: Value = r.json().await?;
    verify_receipt(sb, &file)
        .await
        .context("the new receipt's signature")?;
    assert_eq!(file["receipt"]["consent_id"], new.as_str());
    assert_eq!(file["receipt"]["replaces_consent_id"], old.as_str());
    let ids: Vec<&str> = file["receipt"]["pii_categories"]
        .as_array()
        .map(|a| a.iter().filter_map(|c| c["id"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(ids, ["logement-hebergement", "famille"]);

    // The events: the withdrawal, and the grant that replaces it.
    let withdrawals = consent_events(sb, "eva.consent.grant.withdrawn", 1).await?;
    assert_eq!(
        ConsentWithdrawn::decode(withdrawals[0].as_slice())?.consent_id,
        old
    );
    let grants = consent_events(sb, "eva.consent.grant.granted", 2).await?;
    let g = ConsentGranted::decode(grants[1].as_slice())?;
    assert_eq!(g.consent_id, new);
    assert_eq!(g.replaces_consent_id, old);
    assert_eq!(g.domains, ["logement-hebergement", "famille"]);
    assert!(
        ConsentGranted::decode(grants[0].as_slice())?
            .replaces_consent_id
            .is_empty()
    );

    // Ana's access log shows her change to both consents.
    let log_path = format!("/api/v1/people/{person}/access-log?page_size=500");
    let log = until(sb, Method::GET, &log_path, ana, None, |s, v| {
        s == StatusCode::OK
            && v["items"].as_array().is_some_and(|a| {
                a.iter()
                    .any(|x| x["resource_id"] == new.as_str() && x["action"] == "write")
                    && a.iter()
                        .any(|x| x["resource_id"] == old.as_str() && x["action"] == "write")
            })
    })
    .await?;
    assert!(log["items"].as_array().is_some_and(|a| !a.is_empty()));

    // Withdrawing every remaining domain withdraws the consent: nothing remains.
    let (s, r) = post(
        sb,
        &format!("/api/v1/consents/{new}/withdraw"),
        ana,
        json!({ "domains": ["famille", "logement-hebergement"] }),
    )
    .await?;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["status"], "withdrawn");
    assert!(r["remaining"].is_null(), "{r}");
    let d = w.check("famille", "accompagnement").await?;
    assert_eq!(d["reason"], "consent_withdrawn", "{d}");
    let (_, active) = get(
        sb,
        &format!("/api/v1/people/{person}/consents?status=active"),
        ana,
    )
    .await?;
    assert_eq!(
        active["items"].as_array().map(Vec::len),
        Some(0),
        "{active}"
    );
    w.sb.stop().await
}
