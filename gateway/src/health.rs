//! Liveness and readiness.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use serde_json::{Map, Value, json};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::AppState;

/// The process answers.
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready when NATS is connected and every service reports SERVING.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let (ready, checks) = checks(&state).await;
    let body = json!({ "status": if ready { "ready" } else { "not ready" }, "checks": checks });
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

/// `/status`: is this EVA up, and where to go next.
pub async fn status(State(state): State<AppState>) -> Html<String> {
    let (ready, checks) = checks(&state).await;
    let rows: String = checks
        .iter()
        .map(|(name, status)| {
            let status = status.as_str().unwrap_or_default();
            let mark = if status == "ok" { "✅" } else { "⚠️" };
            format!(
                "<tr><th scope=\"row\">{}</th><td>{mark} {}</td></tr>",
                escape(name),
                escape(status)
            )
        })
        .collect();
    let headline = if ready {
        "EVA fonctionne. / EVA is up."
    } else {
        "EVA démarre ou une partie ne répond pas. / EVA is starting or a part is not answering."
    };
    Html(format!(
        r#"<!doctype html>
<html lang="fr"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>EVA — état du système</title>
<style>body{{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;line-height:1.5;color:#1b1b1b}}
table{{border-collapse:collapse}}th,td{{text-align:left;padding:.25rem 1rem .25rem 0}}a{{color:#0b57d0}}</style></head>
<body><main><h1>EVA</h1><p>Diagnostic partagé de l'insertion socioprofessionnelle.</p>
<p><strong>{headline}</strong></p>
<table><caption>État des composants / Components</caption>{rows}</table>
<h2>Pour aller plus loin / Next</h2><ul>
<li><a href="/">L'application / the web client</a></li>
<li><a href="/readyz">/readyz</a> — état en JSON / readiness as JSON</li>
<li><a href="/api/v1/structures">/api/v1</a> — l'API (jeton requis) / the API (token required)</li>
<li><a href="/.well-known/jwks.json">/.well-known/jwks.json</a> — clés publiques des jetons / token public keys</li>
</ul></main></body></html>"#
    ))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Every dependency's state, and whether all are fine.
async fn checks(state: &AppState) -> (bool, Map<String, Value>) {
    let mut checks = Map::new();
    let mut ready = true;
    let nats = match &state.bus {
        Some(bus) if bus.is_connected() => "ok".to_owned(),
        Some(_) => "disconnected".to_owned(),
        None => "not configured".to_owned(),
    };
    ready &= nats == "ok";
    checks.insert("nats".into(), Value::String(nats));
    let probes = state.upstreams.all().map(|(name, channel)| async move {
        let mut client = HealthClient::new(channel);
        let mut req = tonic::Request::new(HealthCheckRequest {
            service: String::new(),
        });
        req.set_timeout(std::time::Duration::from_secs(2));
        let status = match client.check(req).await {
            Ok(r) if r.get_ref().status == ServingStatus::Serving as i32 => "ok".to_owned(),
            Ok(_) => "not serving".to_owned(),
            Err(e) => format!("unreachable: {}", e.code()),
        };
        (name, status)
    });
    for (name, status) in futures::future::join_all(probes).await {
        ready &= status == "ok";
        checks.insert(name.into(), Value::String(status));
    }
    (ready, checks)
}
