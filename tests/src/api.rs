//! Calls to the gateway's HTTP API and the fixtures most stories need
//! (a structure, a person followed by it, a person's own token), so each
//! test file says only what its story is.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use eva_platform::auth::{Role, TokenSigner};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::sandbox::Sandbox;

/// Sends `body` (if any) with `token`; answers the status and the JSON body
/// (a string when the body is not JSON).
pub async fn send(
    sb: &Sandbox,
    method: Method,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> Result<(StatusCode, Value)> {
    request(sb, method, path, Some(token), body).await
}

/// As [`send`], with no `Authorization` header at all when `token` is
/// `None` (authorisation matrices call as nobody).
pub async fn request(
    sb: &Sandbox,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Result<(StatusCode, Value)> {
    let mut req = sb.http.request(method, sb.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    let r = req.send().await?;
    let status = r.status();
    let text = r.text().await?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

pub async fn get(sb: &Sandbox, path: &str, token: &str) -> Result<(StatusCode, Value)> {
    send(sb, Method::GET, path, token, None).await
}

pub async fn post(
    sb: &Sandbox,
    path: &str,
    token: &str,
    body: Value,
) -> Result<(StatusCode, Value)> {
    send(sb, Method::POST, path, token, Some(&body)).await
}

pub async fn patch(
    sb: &Sandbox,
    path: &str,
    token: &str,
    body: Value,
) -> Result<(StatusCode, Value)> {
    send(sb, Method::PATCH, path, token, Some(&body)).await
}

pub async fn delete(sb: &Sandbox, path: &str, token: &str) -> Result<(StatusCode, Value)> {
    send(sb, Method::DELETE, path, token, None).await
}

/// The first field a problem+json answer names.
pub fn field_of(body: &Value) -> &str {
    body["errors"][0]["field"].as_str().unwrap_or("")
}

/// Retries the call until `check` holds on the answer (projections catch
/// up), for at most 15 s.
pub async fn until(
    sb: &Sandbox,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
    check: impl Fn(StatusCode, &Value) -> bool,
) -> Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (s, v) = send(sb, method.clone(), path, token, body.as_ref()).await?;
        if check(s, &v) {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("{method} {path}: {s} {v}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A SIRET with a valid Luhn key, distinct for each `n`.
pub fn siret(n: u64) -> String {
    let base = format!("7{n:012}");
    (0..10)
        .map(|d| format!("{base}{d}"))
        .find(|s| eva_identity::structure::siret_is_valid(s))
        .unwrap_or_default()
}

/// Creates a structure as the operator; `kind` as in the API (`association`,
/// `partner`, `departement`…). Answers its id.
pub async fn structure(
    sb: &Sandbox,
    operator: &str,
    name: &str,
    siret: &str,
    kind: &str,
) -> Result<String> {
    let (s, v) = post(
        sb,
        "/api/v1/structures",
        operator,
        json!({ "name": name, "siret": siret, "kind": kind, "commune_insee": "27229" }),
    )
    .await?;
    if s != StatusCode::CREATED {
        bail!("creating structure {name}: {s} {v}");
    }
    Ok(v["id"].as_str().context("structure id")?.to_owned())
}

/// Creates a person followed by `structure_id` (as its counselor); answers
/// the person's id.
pub async fn person(
    sb: &Sandbox,
    counselor: &str,
    structure_id: &str,
    first_name: &str,
    last_name: &str,
) -> Result<String> {
    let (s, v) = post(
        sb,
        "/api/v1/people",
        counselor,
        json!({
            "structure_id": structure_id,
            "first_name": first_name,
            "last_name": last_name,
            "birth_date": "1985-05-20",
            "commune_insee": "27229",
        }),
    )
    .await?;
    if s != StatusCode::CREATED {
        bail!("creating person: {s} {v}");
    }
    Ok(v["id"].as_str().context("person id")?.to_owned())
}

/// A token for the person themself.
pub async fn person_token(sb: &Sandbox, person_id: &str) -> Result<String> {
    let mut claims = TokenSigner::claims(
        &sb.config.auth.issuer,
        &sb.config.auth.audience,
        &uuid::Uuid::now_v7().to_string(),
        vec![Role::Person],
        vec![],
        Duration::from_secs(600),
    );
    claims.person_id = Some(person_id.to_owned());
    Ok(eva_identity::sign_claims(&sb.config, &claims).await?)
}

/// The person grants `structure_id` consent for `purposes` on `domains`
/// (empty: every non-sensitive domain); answers the consent id.
pub async fn consent(
    sb: &Sandbox,
    person_token: &str,
    person_id: &str,
    structure_id: &str,
    domains: &[&str],
    purposes: &[&str],
) -> Result<String> {
    let (s, v) = post(
        sb,
        &format!("/api/v1/people/{person_id}/consents"),
        person_token,
        json!({ "grantee_structure_id": structure_id, "domains": domains, "purposes": purposes }),
    )
    .await?;
    if s != StatusCode::CREATED {
        bail!("granting consent: {s} {v}");
    }
    Ok(v["id"].as_str().context("consent id")?.to_owned())
}
