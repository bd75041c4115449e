//! The OpenAPI 3.1 document: generated from the handlers, served with its
//! documentation page, and true to the router — every documented operation
//! exists, and no route escapes the document.

use std::time::Duration;

use anyhow::{Context, Result};
use eva_tests::sandbox::{Backend, Sandbox};
use reqwest::Method;
use serde_json::Value;

const FALLBACK: &str = "aucune ressource à cette adresse";

#[tokio::test(flavor = "multi_thread")]
async fn the_document_matches_the_router() -> Result<()> {
    let sb = Sandbox::start(Backend::Sqlite).await?;
    let r = sb.http.get(sb.url("/api/v1/openapi.json")).send().await?;
    assert_eq!(r.status(), 200);
    let doc: Value = r.json().await?;
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["servers"][0]["url"], "/api/v1");
    assert!(doc["components"]["schemas"]["Problem"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    let paths = doc["paths"].as_object().context("paths")?;
    let mut wrong = Vec::new();
    let mut operations = 0;
    for (path, item) in paths {
        for (method, op) in item.as_object().context("path item")? {
            let Ok(method) = method.to_uppercase().parse::<Method>() else {
                continue;
            };
            operations += 1;
            let public = op["security"] == serde_json::json!([{}]);
            if op["responses"]["400"].is_null() || op["responses"]["401"].is_null() != public {
                wrong.push(format!(
                    "{method} {path}: the shared problem answers are wrong"
                ));
            }
            if op["summary"].as_str().unwrap_or_default().is_empty() {
                wrong.push(format!("{method} {path}: no summary"));
            }
            // Placeholders become a well-formed id: the route must exist (a
            // service may still say 401, 400 or 404 — not the router's fallback).
            let concrete = path
                .split('/')
                .map(|s| {
                    if s.starts_with('{') {
                        "0190a0b0-0000-7000-8000-000000000000"
                    } else {
                        s
                    }
                })
                .collect::<Vec<_>>()
                .join("/");
            let answer = tokio::time::timeout(
                Duration::from_secs(10),
                sb.http
                    .request(method.clone(), sb.url(&format!("/api/v1{concrete}")))
                    .header("content-type", "application/json")
                    .body("{}")
                    .send(),
            )
            .await
            .with_context(|| format!("{method} {path}: no answer"))??;
            let status = answer.status();
            if status == 405 {
                wrong.push(format!(
                    "{method} {path}: 405, the router has no such method"
                ));
            } else if status == 404 {
                let body = answer.text().await.unwrap_or_default();
                if body.contains(FALLBACK) {
                    wrong.push(format!("{method} {path}: the router does not know it"));
                }
            }
        }
    }
    assert!(operations > 0, "no operation documented");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    let page = sb.http.get(sb.url("/api/v1/docs")).send().await?;
    assert_eq!(page.status(), 200);
    assert!(page.text().await?.contains("/api/v1/openapi.json"));
    sb.stop().await
}

/// Every route of `/api/v1` is registered through `utoipa_axum::routes!`, so
/// it has its description: no module may add a route with plain axum.
#[test]
fn no_route_escapes_the_document() -> Result<()> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../gateway/src");
    let mut plain = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        // lib.rs holds the routes outside /api/v1 (/, /healthz, /readyz, JWKS);
        // openapi.rs serves the document itself.
        if !name.ends_with(".rs") || name == "lib.rs" || name == "openapi.rs" {
            continue;
        }
        let text = std::fs::read_to_string(&path)?.replace("OpenApiRouter::new()", "");
        if text.contains(".route(") || text.contains("Router::new()") {
            plain.push(name);
        }
    }
    plain.sort();
    assert!(
        plain.is_empty(),
        "routes outside the OpenAPI document in: {plain:?}"
    );
    Ok(())
}
