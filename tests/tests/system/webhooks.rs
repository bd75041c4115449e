//! A partner registers its webhooks and chooses its event format through the
//! gateway: who may, what is refused and how; then the referrals addressed
//! to it reach its webhook, signed (retries, order and restarts are tested
//! in `services/referrals/tests/webhooks.rs`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use eva_platform::auth::Role;
use eva_referrals::partners::signature;
use eva_tests::api::{self, delete, field_of, get, patch, post};
use eva_tests::sandbox::{Backend, Sandbox};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn a_partner_manages_its_webhooks(backend: Backend) -> Result<()> {
    let sb = Sandbox::start(backend).await?;
    let operator = sb.token("operator", vec![Role::Operator], vec![]).await?;
    let partner_id =
        api::structure(&sb, &operator, "Partenaire P", "61737218800004", "partner").await?;
    let association_id = api::structure(
        &sb,
        &operator,
        "Association B",
        "51734218700005",
        "association",
    )
    .await?;
    let partner = sb
        .token(
            "partner-user",
            vec![Role::Partner],
            vec![partner_id.clone()],
        )
        .await?;
    let admin = sb
        .token(
            "assoc-admin",
            vec![Role::StructureAdmin],
            vec![association_id.clone()],
        )
        .await?;
    let counselor = sb
        .token(
            "assoc-counselor",
            vec![Role::Counselor],
            vec![association_id.clone()],
        )
        .await?;
    let hooks = format!("/api/v1/structures/{partner_id}/webhooks");
    let settings = format!("/api/v1/structures/{partner_id}/partner-settings");

    // Registering: once the referrals service knows the structure is a
    // partner (its projection of identity's events catches up).
    let body = json!({ "url": "https://partner.example/eva/events", "format": "json" });
    let created = api::until(&sb, Method::POST, &hooks, &partner, Some(body), |s, _| {
        s == StatusCode::CREATED
    })
    .await?;
    let webhook_id = created["id"].as_str().unwrap_or_default().to_owned();
    assert!(!webhook_id.is_empty(), "{created}");
    assert_eq!(created["structure_id"], partner_id.as_str());
    assert_eq!(created["url"], "https://partner.example/eva/events");
    assert_eq!(created["format"], "json");
    let secret = created["secret"].as_str().unwrap_or_default();
    assert_eq!(secret.len(), 43, "{created}");

    // The secret is shown once: never in the list.
    let (s, list) = get(&sb, &hooks, &partner).await?;
    assert_eq!(s, StatusCode::OK, "{list}");
    let items = list["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 1, "{list}");
    assert_eq!(items[0]["id"], webhook_id.as_str());
    assert!(items[0].get("secret").is_none(), "{list}");
    assert!(!list.to_string().contains(secret));
    assert!(list["next_page_token"].is_null());

    // A second one, protobuf by default; http only to a loopback address.
    let (s, v) = post(
        &sb,
        &hooks,
        &partner,
        json!({ "url": "http://127.0.0.1:9/hook" }),
    )
    .await?;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["format"], "protobuf");
    let second = v["id"].as_str().unwrap_or_default().to_owned();

    // Bad input, named.
    for (body, field) in [
        (json!({ "url": "http://partner.example/eva" }), "url"),
        (json!({ "url": "not a url" }), "url"),
        (json!({ "url": "" }), "url"),
        (
            json!({ "url": "https://partner.example/eva", "format": "xml" }),
            "format",
        ),
    ] {
        let (s, v) = post(&sb, &hooks, &partner, body.clone()).await?;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert_eq!(field_of(&v), field, "{body}: {v}");
    }

    // Up to 5 per structure.
    for _ in 0..3 {
        let (s, v) = post(
            &sb,
            &hooks,
            &partner,
            json!({ "url": "https://p.example/h" }),
        )
        .await?;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    let (s, v) = post(
        &sb,
        &hooks,
        &partner,
        json!({ "url": "https://p.example/h" }),
    )
    .await?;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");

    // Nobody else: a counselor or an admin of another structure, an operator.
    for (who, token) in [
        ("counselor", &counselor),
        ("other admin", &admin),
        ("operator", &operator),
    ] {
        let (s, v) = get(&sb, &hooks, token).await?;
        assert_eq!(s, StatusCode::FORBIDDEN, "{who}: {v}");
        let (s, v) = post(
            &sb,
            &hooks,
            token,
            json!({ "url": "https://evil.example/h" }),
        )
        .await?;
        assert_eq!(s, StatusCode::FORBIDDEN, "{who}: {v}");
        let (s, v) = get(&sb, &settings, token).await?;
        assert_eq!(s, StatusCode::FORBIDDEN, "{who}: {v}");
        let (s, v) = delete(&sb, &format!("{hooks}/{webhook_id}"), token).await?;
        assert_eq!(s, StatusCode::FORBIDDEN, "{who}: {v}");
        let (s, v) = get(&sb, &format!("{hooks}/{webhook_id}/deliveries"), token).await?;
        assert_eq!(s, StatusCode::FORBIDDEN, "{who}: {v}");
    }
    // An association's own admin may not register webhooks: not a partner.
    let (s, v) = post(
        &sb,
        &format!("/api/v1/structures/{association_id}/webhooks"),
        &admin,
        json!({ "url": "https://assoc.example/h" }),
    )
    .await?;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");

    // Settings: protobuf by default, then JSON; anything else is refused.
    let (s, v) = get(&sb, &settings, &partner).await?;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["event_format"], "protobuf");
    assert!(v["updated_at"].is_null());
    let (s, v) = patch(&sb, &settings, &partner, json!({ "event_format": "xml" })).await?;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(field_of(&v), "event_format", "{v}");
    let (s, v) = patch(&sb, &settings, &partner, json!({ "event_format": "json" })).await?;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["event_format"], "json");
    let (_, v) = get(&sb, &settings, &partner).await?;
    assert_eq!(v["event_format"], "json");
    assert!(v["updated_at"].is_string(), "{v}");

    // Deliveries: none yet; a bad state filter is named.
    let deliveries = format!("{hooks}/{webhook_id}/deliveries");
    let (s, v) = get(&sb, &deliveries, &partner).await?;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["items"], json!([]));
    let (s, v) = get(&sb, &format!("{deliveries}?status=failed"), &partner).await?;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = get(&sb, &format!("{deliveries}?status=lost"), &partner).await?;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(field_of(&v), "status", "{v}");
    // A webhook named under another structure's path is not found there.
    let (s, v) = get(
        &sb,
        &format!("/api/v1/structures/{association_id}/webhooks/{webhook_id}/deliveries"),
        &admin,
    )
    .await?;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");

    // Deleting.
    let (s, v) = delete(&sb, &format!("{hooks}/{second}"), &partner).await?;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let (s, v) = delete(&sb, &format!("{hooks}/{second}"), &partner).await?;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    let (_, list) = get(&sb, &hooks, &partner).await?;
    let ids: Vec<&str> = list["items"]
        .as_array()
        .map(|a| a.iter().filter_map(|w| w["id"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(ids.len(), 4, "{list}");
    assert!(!ids.contains(&second.as_str()));
    let (s, v) = delete(&sb, &format!("{hooks}/not-an-id"), &partner).await?;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");

    sb.stop().await
}

#[tokio::test]
async fn a_partner_manages_its_webhooks_on_sqlite() -> Result<()> {
    a_partner_manages_its_webhooks(Backend::Sqlite).await
}

#[tokio::test]
async fn a_partner_manages_its_webhooks_on_postgres() -> Result<()> {
    a_partner_manages_its_webhooks(Backend::Postgres).await
}

/// What the partner's endpoint received: headers and body of each call.
type Received = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

async fn receive(State(calls): State<Received>, headers: HeaderMap, body: Bytes) -> StatusCode {
    calls
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((headers, body));
    StatusCode::NO_CONTENT
}

/// A partner's HTTP endpoint on a free loopback port, named `localhost` so
/// that each call goes through the webhooks' resolver (public addresses only,
/// loopback for `localhost`).
async fn partner_endpoint() -> Result<(Received, String)> {
    let calls = Received::default();
    let app = axum::Router::new()
        .route("/eva", axum::routing::post(receive))
        .with_state(calls.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://localhost:{}/eva", l.local_addr()?.port());
    tokio::spawn(async move { axum::serve(l, app).await });
    Ok((calls, url))
}

/// Waits until the endpoint holds `n` calls.
async fn calls(received: &Received, n: usize) -> Result<Vec<(HeaderMap, Bytes)>> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let c = received.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if c.len() >= n {
            return Ok(c);
        }
        if Instant::now() > deadline {
            bail!("{} calls received, {n} expected", c.len());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

#[tokio::test]
async fn referrals_addressed_to_a_partner_reach_its_webhook_signed() -> Result<()> {
    let sb = Sandbox::start(Backend::Sqlite).await?;
    let operator = sb.token("operator", vec![Role::Operator], vec![]).await?;
    let a = api::structure(
        &sb,
        &operator,
        "Chantier A",
        "41735218600007",
        "association",
    )
    .await?;
    let p = api::structure(&sb, &operator, "Partenaire P", "61737218800004", "partner").await?;
    let counselor = sb
        .token("counselor-a", vec![Role::Counselor], vec![a.clone()])
        .await?;
    let partner = sb
        .token("partner-p", vec![Role::Partner], vec![p.clone()])
        .await?;

    let (received, url) = partner_endpoint().await?;
    let hook = api::until(
        &sb,
        Method::POST,
        &format!("/api/v1/structures/{p}/webhooks"),
        &partner,
        Some(json!({ "url": url, "format": "json" })),
        |s, _| s == StatusCode::CREATED,
    )
    .await?;
    let secret = hook["secret"].as_str().context("secret")?.to_owned();
    let hook_id = hook["id"].as_str().context("webhook id")?.to_owned();

    let ana_id = api::person(&sb, &counselor, &a, "Ana", "Zabalveytia").await?;
    let ana = api::person_token(&sb, &ana_id).await?;
    api::consent(&sb, &ana, &ana_id, &p, &["mobilite"], &["orientation"]).await?;
    let referral = api::until(
        &sb,
        Method::POST,
        "/api/v1/referrals",
        &counselor,
        Some(json!({
            "person_id": ana_id, "sender_structure_id": a, "target_structure_id": p,
            "domains": ["mobilite"], "reason": "Ana prépare le permis B.",
        })),
        |s, _| s == StatusCode::CREATED,
    )
    .await?;
    let referral_id = referral["id"].as_str().context("referral id")?.to_owned();

    // The partner accepts it.
    let (s, v) = post(
        &sb,
        &format!("/api/v1/referrals/{referral_id}/transitions"),
        &partner,
        json!({ "to_status": "acceptee" }),
    )
    .await?;
    assert_eq!(s, StatusCode::OK, "{v}");

    // Both events reached the webhook, in order, in JSON, signed.
    let got = calls(&received, 2).await?;
    assert_eq!(got.len(), 2);
    let now = sb.clock.now_us() / 1_000_000;
    let mut types = Vec::new();
    for (headers, body) in &got {
        assert_eq!(header(headers, "content-type"), "application/json");
        assert_eq!(header(headers, "ce-specversion"), "1.0");
        assert_eq!(header(headers, "ce-source"), "/eva/referrals");
        assert!(!header(headers, "ce-id").is_empty());
        assert_eq!(
            signature::verify(&secret, header(headers, "eva-signature"), body, now),
            Ok(())
        );
        let text = String::from_utf8_lossy(body);
        assert!(
            !text.contains("Zabalveytia") && !text.contains("permis"),
            "{text}"
        );
        let v: Value = serde_json::from_slice(body)?;
        assert_eq!(v["referralId"], referral_id.as_str(), "{v}");
        assert_eq!(v["targetStructureId"], p.as_str(), "{v}");
        types.push(header(headers, "ce-type").to_owned());
    }
    assert_eq!(
        types,
        [
            "eva.referrals.referral.sent",
            "eva.referrals.referral.accepted"
        ]
    );
    let sent: Value = serde_json::from_slice(&got[0].1)?;
    assert_eq!(sent["personId"], ana_id.as_str());
    assert_eq!(sent["domains"], json!(["mobilite"]));
    assert!(sent["sealedDetails"]["ciphertext"].is_string(), "{sent}");
    let accepted: Value = serde_json::from_slice(&got[1].1)?;
    assert_eq!(
        accepted["toStatus"], "REFERRAL_STATUS_ACCEPTEE",
        "{accepted}"
    );

    // The partner sees both delivered.
    let v = api::until(
        &sb,
        Method::GET,
        &format!("/api/v1/structures/{p}/webhooks/{hook_id}/deliveries?status=delivered"),
        &partner,
        None,
        |s, v| s == StatusCode::OK && v["items"].as_array().is_some_and(|a| a.len() == 2),
    )
    .await?;
    let items = v["items"].as_array().context("items")?;
    assert_eq!(items[0]["event_type"], "eva.referrals.referral.accepted");
    assert_eq!(items[0]["attempts"], 1);
    assert_eq!(items[0]["last_http_status"], 204);
    assert!(items[0]["next_attempt_at"].is_null());
    assert_eq!(items[1]["event_type"], "eva.referrals.referral.sent");

    sb.stop().await
}

/// A paused webhook keeps its URL and secret and receives nothing; the events
/// of the pause are kept (`pending`) and sent in order, signed with the same
/// secret, once it resumes. A second, active webhook of the same partner gets
/// them meanwhile: the pause is per webhook.
#[tokio::test]
async fn a_paused_webhook_keeps_its_events_until_it_resumes() -> Result<()> {
    let sb = Sandbox::start(Backend::Sqlite).await?;
    let operator = sb.token("operator", vec![Role::Operator], vec![]).await?;
    let a = api::structure(
        &sb,
        &operator,
        "Chantier A",
        "41735218600007",
        "association",
    )
    .await?;
    let p = api::structure(&sb, &operator, "Partenaire P", "61737218800004", "partner").await?;
    let counselor = sb
        .token("counselor-a", vec![Role::Counselor], vec![a.clone()])
        .await?;
    let partner = sb
        .token("partner-p", vec![Role::Partner], vec![p.clone()])
        .await?;
    let admin_a = sb
        .token("admin-a", vec![Role::StructureAdmin], vec![a.clone()])
        .await?;
    let hooks = format!("/api/v1/structures/{p}/webhooks");

    let (paused_calls, paused_url) = partner_endpoint().await?;
    let (active_calls, active_url) = partner_endpoint().await?;
    let hook = api::until(
        &sb,
        Method::POST,
        &hooks,
        &partner,
        Some(json!({ "url": paused_url, "format": "json" })),
        |s, _| s == StatusCode::CREATED,
    )
    .await?;
    let secret = hook["secret"].as_str().context("secret")?.to_owned();
    let hook_id = hook["id"].as_str().context("webhook id")?.to_owned();
    assert_eq!(hook["status"], "active", "{hook}");
    let (s, v) = post(&sb, &hooks, &partner, json!({ "url": active_url })).await?;
    assert_eq!(s, StatusCode::CREATED, "{v}");

    // Only the partner's own members pause it, under its own path.
    let pause = format!("{hooks}/{hook_id}/pause");
    let resume = format!("{hooks}/{hook_id}/resume");
    for (who, token) in [
        ("counselor", &counselor),
        ("other admin", &admin_a),
        ("operator", &operator),
    ] {
        let (s, v) = post(&sb, &pause, token, json!({})).await?;
        assert_eq!(s, StatusCode::FORBIDDEN, "{who}: {v}");
    }
    let (s, v) = post(
        &sb,
        &format!("/api/v1/structures/{a}/webhooks/{hook_id}/pause"),
        &admin_a,
        json!({}),
    )
    .await?;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    let (s, v) = post(
        &sb,
        &format!("{hooks}/not-an-id/pause"),
        &partner,
        json!({}),
    )
    .await?;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");

    let (s, v) = post(&sb, &pause, &partner, json!({})).await?;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "paused", "{v}");
    assert!(v["paused_at"].is_string(), "{v}");
    assert!(v.get("secret").is_none(), "{v}");
    let (s, again) = post(&sb, &pause, &partner, json!({})).await?;
    assert_eq!(s, StatusCode::OK, "pausing twice is harmless: {again}");
    assert_eq!(again["paused_at"], v["paused_at"]);
    let (_, list) = get(&sb, &hooks, &partner).await?;
    let listed = list["items"]
        .as_array()
        .and_then(|a| a.iter().find(|w| w["id"] == hook_id.as_str()).cloned())
        .context("listed")?;
    assert_eq!(listed["status"], "paused", "{list}");

    // A referral sent and accepted during the pause.
    let ana_id = api::person(&sb, &counselor, &a, "Ana", "Zabalveytia").await?;
    let ana = api::person_token(&sb, &ana_id).await?;
    api::consent(&sb, &ana, &ana_id, &p, &["mobilite"], &["orientation"]).await?;
    let referral = api::until(
        &sb,
        Method::POST,
        "/api/v1/referrals",
        &counselor,
        Some(json!({
            "person_id": ana_id, "sender_structure_id": a, "target_structure_id": p,
            "domains": ["mobilite"], "reason": "Ana prépare le permis B.",
        })),
        |s, _| s == StatusCode::CREATED,
    )
    .await?;
    let referral_id = referral["id"].as_str().context("referral id")?.to_owned();
    let (s, v) = post(
        &sb,
        &format!("/api/v1/referrals/{referral_id}/transitions"),
        &partner,
        json!({ "to_status": "acceptee" }),
    )
    .await?;
    assert_eq!(s, StatusCode::OK, "{v}");

    // The active webhook got both; the paused one nothing, both kept for it.
    calls(&active_calls, 2).await?;
    let deliveries = format!("{hooks}/{hook_id}/deliveries");
    let v = api::until(&sb, Method::GET, &deliveries, &partner, None, |s, v| {
        s == StatusCode::OK && v["items"].as_array().is_some_and(|a| a.len() == 2)
    })
    .await?;
    for d in v["items"].as_array().context("items")? {
        assert_eq!(d["status"], "pending", "{v}");
        assert_eq!(d["attempts"], 0, "{v}");
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(
        paused_calls.lock().unwrap_or_else(|e| e.into_inner()).len(),
        0,
        "a paused webhook is not called"
    );

    // Resumed: the two events arrive in order, signed with the same secret.
    let (s, v) = post(&sb, &resume, &partner, json!({})).await?;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "active", "{v}");
    assert!(v.get("paused_at").is_none_or(Value::is_null), "{v}");
    let got = calls(&paused_calls, 2).await?;
    let now = sb.clock.now_us() / 1_000_000;
    let types: Vec<&str> = got.iter().map(|(h, _)| header(h, "ce-type")).collect();
    assert_eq!(
        types,
        [
            "eva.referrals.referral.sent",
            "eva.referrals.referral.accepted"
        ]
    );
    for (headers, body) in &got {
        assert_eq!(
            signature::verify(&secret, header(headers, "eva-signature"), body, now),
            Ok(())
        );
    }
    api::until(
        &sb,
        Method::GET,
        &format!("{deliveries}?status=delivered"),
        &partner,
        None,
        |s, v| s == StatusCode::OK && v["items"].as_array().is_some_and(|a| a.len() == 2),
    )
    .await?;
    sb.stop().await
}
