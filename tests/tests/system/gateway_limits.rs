//! The gateway's rate limits (a token bucket per client address and one per
//! `Authorization` value: 429 with `Retry-After`, probes and the web client's files exempt) and its CORS
//! headers (none by default; the configured origins only).

use std::time::Duration;

use anyhow::{Result, ensure};
use eva_platform::auth::Role;
use eva_tests::sandbox::{Backend, Sandbox};
use reqwest::{Method, Response, StatusCode};
use serde_json::Value;

const ALLOWED: &str = "https://eva.example.org";
const OTHER: &str = "https://evil.example.net";

/// `Retry-After` of a 429, checked to be a problem naming `limit`.
async fn too_many(r: Response, limit: &str) -> Result<u64> {
    ensure!(
        r.status() == StatusCode::TOO_MANY_REQUESTS,
        "{}",
        r.status()
    );
    let retry_after: u64 = r.headers()["retry-after"].to_str()?.parse()?;
    ensure!(retry_after >= 1, "Retry-After {retry_after}");
    ensure!(r.headers()["content-type"] == "application/problem+json");
    let p: Value = r.json().await?;
    ensure!(p["type"] == "urn:eva:problem:too-many-requests", "{p}");
    ensure!(p["status"] == 429, "{p}");
    let detail = p["detail"].as_str().unwrap_or_default();
    ensure!(detail.contains(limit), "{limit} not named: {p}");
    Ok(retry_after)
}

#[tokio::test]
async fn a_user_over_the_limit_waits_retry_after_and_others_pass() -> Result<()> {
    let sb = Sandbox::start_with(Backend::Sqlite, |c| {
        // One request a second, three at once; the address's limit stays high.
        c.gateway.rate_limit_user_per_minute = 60;
        c.gateway.rate_limit_user_burst = 3;
    })
    .await?;
    let alice = sb.token("alice", vec![Role::Operator], vec![]).await?;
    let bob = sb.token("bob", vec![Role::Operator], vec![]).await?;
    let list = |token: &str| {
        sb.http
            .get(sb.url("/api/v1/structures"))
            .bearer_auth(token)
            .send()
    };
    for _ in 0..3 {
        assert_eq!(list(&alice).await?.status(), 200);
    }
    let r = list(&alice).await?;
    let wait = too_many(r, "per user").await?;
    // Bob, from the same address, has a bucket of his own.
    assert_eq!(list(&bob).await?.status(), 200);
    // Anonymous requests have no user bucket.
    assert_ne!(sb.http.get(sb.url("/")).send().await?.status(), 429);
    // Once Retry-After has passed, Alice's call passes again.
    tokio::time::sleep(Duration::from_secs(wait)).await;
    assert_eq!(list(&alice).await?.status(), 200);

    // No CORS origin configured (the default): no CORS header at all.
    let r = sb
        .http
        .request(Method::OPTIONS, sb.url("/api/v1/structures"))
        .header("origin", ALLOWED)
        .header("access-control-request-method", "GET")
        .send()
        .await?;
    assert!(
        !r.headers()
            .keys()
            .any(|k| k.as_str().starts_with("access-control-")),
        "{:?}",
        r.headers()
    );
    let r = sb
        .http
        .get(sb.url("/api/v1/structures"))
        .bearer_auth(&bob)
        .header("origin", ALLOWED)
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("access-control-allow-origin").is_none());
    sb.stop().await
}

#[tokio::test]
async fn an_address_flood_is_limited_probes_never_and_cors_holds() -> Result<()> {
    let sb = Sandbox::start_with(Backend::Sqlite, |c| {
        c.gateway.rate_limit_ip_per_minute = 60;
        c.gateway.rate_limit_ip_burst = 10;
        c.gateway.cors_allowed_origins = vec![ALLOWED.into()];
    })
    .await?;

    // A preflight from the allowed origin gets the allow headers (and takes
    // no token); one from another origin gets none.
    let preflight = |origin: &'static str| {
        sb.http
            .request(Method::OPTIONS, sb.url("/api/v1/structures"))
            .header("origin", origin)
            .header("access-control-request-method", "PATCH")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .send()
    };
    let r = preflight(ALLOWED).await?;
    assert!(r.status().is_success(), "{}", r.status());
    let h = r.headers();
    assert_eq!(h["access-control-allow-origin"], ALLOWED);
    let methods = h["access-control-allow-methods"].to_str()?.to_owned();
    for m in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
        assert!(methods.contains(m), "{methods}");
    }
    let headers = h["access-control-allow-headers"].to_str()?.to_lowercase();
    for name in [
        "authorization",
        "content-type",
        "x-request-id",
        "idempotency-key",
    ] {
        assert!(headers.contains(name), "{headers}");
    }
    assert_eq!(h["access-control-max-age"], "3600");
    assert!(h.get("access-control-allow-credentials").is_none());
    let r = preflight(OTHER).await?;
    assert!(r.headers().get("access-control-allow-origin").is_none());

    // A request from the allowed origin can read the headers it needs; one
    // from another origin gets no CORS header.
    let r = sb
        .http
        .get(sb.url("/"))
        .header("origin", ALLOWED)
        .send()
        .await?;
    assert_eq!(r.headers()["access-control-allow-origin"], ALLOWED);
    let exposed = r.headers()["access-control-expose-headers"]
        .to_str()?
        .to_lowercase();
    for name in [
        "retry-after",
        "x-request-id",
        "location",
        "idempotent-replayed",
    ] {
        assert!(exposed.contains(name), "{exposed}");
    }
    let r = sb
        .http
        .get(sb.url("/"))
        .header("origin", OTHER)
        .send()
        .await?;
    assert!(r.headers().get("access-control-allow-origin").is_none());

    // A flood of anonymous requests from one address: the burst passes, then 429.
    let mut passed = 0;
    let limited = loop {
        let r = sb
            .http
            .get(sb.url("/api/v1/openapi.json"))
            .header("origin", ALLOWED)
            .send()
            .await?;
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            break r;
        }
        passed += 1;
        assert!(passed < 50, "never limited");
    };
    // The 429 carries the CORS headers: the browser can read Retry-After.
    assert_eq!(limited.headers()["access-control-allow-origin"], ALLOWED);
    too_many(limited, "per IP address").await?;
    // A token does not get past the address's limit.
    let token = sb.token("alice", vec![Role::Operator], vec![]).await?;
    let r = sb
        .http
        .get(sb.url("/api/v1/structures"))
        .bearer_auth(&token)
        .send()
        .await?;
    too_many(r, "per IP address").await?;
    // The probes and the web client's files are never limited.
    for _ in 0..30 {
        assert_eq!(sb.http.get(sb.url("/healthz")).send().await?.status(), 200);
        assert_eq!(sb.http.get(sb.url("/readyz")).send().await?.status(), 200);
        assert_eq!(sb.http.get(sb.url("/")).send().await?.status(), 200);
        assert_eq!(
            sb.http.get(sb.url("/web/app.js")).send().await?.status(),
            200
        );
    }
    sb.stop().await
}
