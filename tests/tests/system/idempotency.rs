//! `Idempotency-Key` through the gateway against the real system (NATS's
//! key-value bucket, SQLite): a retried creation gives back the first answer
//! and creates nothing more; the same key on another request, a bad key,
//! another caller, a refused first try and two copies racing each other;
//! and what the bucket holds names nobody.

use anyhow::{Context, Result};
use eva_platform::auth::Role;
use eva_tests::api::{get, siret, structure};
use eva_tests::sandbox::{Backend, Sandbox};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

const BUCKET: &str = "EVA_IDEMPOTENCY";

/// POSTs `body` to `path` with `key`: status, `Idempotent-Replayed`, body.
async fn post_keyed(
    sb: &Sandbox,
    path: &str,
    token: &str,
    key: &str,
    body: &Value,
) -> Result<(StatusCode, bool, Value)> {
    let r = sb
        .http
        .post(sb.url(path))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await?;
    let status = r.status();
    let replayed = r
        .headers()
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true");
    let text = r.text().await?;
    Ok((
        status,
        replayed,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

fn person(structure_id: &str, last_name: &str) -> Value {
    json!({
        "structure_id": structure_id,
        "first_name": "Ana",
        "last_name": last_name,
        "birth_date": "1985-05-20",
        "commune_insee": "27229",
    })
}

/// How many people the structure follows.
async fn followed(sb: &Sandbox, token: &str, structure_id: &str) -> Result<usize> {
    let (s, v) = get(
        sb,
        &format!("/api/v1/people?structure_id={structure_id}&page_size=500"),
        token,
    )
    .await?;
    anyhow::ensure!(s == StatusCode::OK, "{s} {v}");
    Ok(v["items"].as_array().context("items")?.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retried_write_is_done_once() -> Result<()> {
    let sb = Sandbox::start(Backend::Sqlite).await?;
    let operator = sb.token("op", vec![Role::Operator], vec![]).await?;
    let a = structure(&sb, &operator, "Asso Évreux", &siret(61), "association").await?;
    let counselor = sb
        .token("counselor-a", vec![Role::Counselor], vec![a.clone()])
        .await?;
    let other = sb
        .token("counselor-a2", vec![Role::Counselor], vec![a.clone()])
        .await?;

    // The first try is done; the retry gets the same answer, marked.
    let body = person(&a, "Zabalveytia");
    let (s1, r1, v1) = post_keyed(&sb, "/api/v1/people", &counselor, "k-1", &body).await?;
    assert_eq!(s1, StatusCode::CREATED, "{v1}");
    assert!(!r1);
    let (s2, r2, v2) = post_keyed(&sb, "/api/v1/people", &counselor, "k-1", &body).await?;
    assert_eq!((s2, r2), (StatusCode::CREATED, true), "{v2}");
    assert_eq!(v2, v1);
    assert_eq!(followed(&sb, &counselor, &a).await?, 1);

    // The same key on another request: refused, naming the header.
    let (s, _, v) = post_keyed(
        &sb,
        "/api/v1/people",
        &counselor,
        "k-1",
        &person(&a, "Autre"),
    )
    .await?;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["errors"][0]["field"], "Idempotency-Key", "{v}");
    assert_eq!(followed(&sb, &counselor, &a).await?, 1);

    // A key that is not one.
    for bad in ["", &"x".repeat(256)] {
        let (s, _, v) = post_keyed(&sb, "/api/v1/people", &counselor, bad, &body).await?;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert_eq!(v["errors"][0]["field"], "Idempotency-Key", "{v}");
    }

    // Another caller's key is theirs: same key, their own person.
    let (s, r, v) = post_keyed(&sb, "/api/v1/people", &other, "k-1", &body).await?;
    assert_eq!((s, r), (StatusCode::CREATED, false), "{v}");
    assert_ne!(v["id"], v1["id"]);
    assert_eq!(followed(&sb, &counselor, &a).await?, 2);

    // A refusal is an answer too: given again, and nothing created.
    let bad = json!({ "structure_id": a, "first_name": "Ana" });
    let (s, _, v) = post_keyed(&sb, "/api/v1/people", &counselor, "k-2", &bad).await?;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, r, again) = post_keyed(&sb, "/api/v1/people", &counselor, "k-2", &bad).await?;
    assert_eq!((s, r), (StatusCode::BAD_REQUEST, true));
    assert_eq!(again, v);

    // Two copies at once: one creates, the other waits for it (409, Retry-After) or
    // gets its answer; never two people.
    let body = person(&a, "Concurrente");
    let (x, y) = tokio::join!(
        post_keyed(&sb, "/api/v1/people", &counselor, "k-3", &body),
        post_keyed(&sb, "/api/v1/people", &counselor, "k-3", &body),
    );
    let mut statuses = [x?.0, y?.0];
    statuses.sort();
    assert!(
        statuses == [StatusCode::CREATED, StatusCode::CREATED]
            || statuses == [StatusCode::CREATED, StatusCode::CONFLICT],
        "{statuses:?}"
    );
    let (s, r, _) = post_keyed(&sb, "/api/v1/people", &counselor, "k-3", &body).await?;
    assert_eq!((s, r), (StatusCode::CREATED, true));
    assert_eq!(followed(&sb, &counselor, &a).await?, 3);

    // Without a key, nothing changes: two calls, two people.
    for _ in 0..2 {
        let r = sb
            .http
            .post(sb.url("/api/v1/people"))
            .bearer_auth(&counselor)
            .json(&person(&a, "Sanscle"))
            .send()
            .await?;
        assert_eq!(r.status(), StatusCode::CREATED);
        assert!(r.headers().get("idempotent-replayed").is_none());
    }
    assert_eq!(followed(&sb, &counselor, &a).await?, 5);

    // What the bucket holds: hashed names, sealed answers, kept 24 h.
    let js = async_nats::jetstream::new(sb.nats.connect().await?);
    let kv = js.get_key_value(BUCKET).await?;
    let mut stream = js.get_stream(format!("KV_{BUCKET}")).await?;
    assert_eq!(
        stream.info().await?.config.max_age,
        std::time::Duration::from_secs(24 * 3600)
    );
    let mut keys = kv.keys().await?;
    let mut n = 0;
    while let Some(name) = keys.next().await {
        let name = name?;
        assert!(
            name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()),
            "{name}"
        );
        let value = kv.get(&name).await?.context("entry")?;
        let text = String::from_utf8_lossy(&value);
        for clear in ["Zabalveytia", "Concurrente", "k-1", &a] {
            assert!(!text.contains(clear), "{clear} in clear: {text}");
        }
        n += 1;
    }
    // k-1 twice (two callers), k-2, k-3.
    assert_eq!(n, 4);
    Ok(())
}
