//! Liveness and readiness.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
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
        let mut req = tonic::Request::new(HealthCheckRequest { service: String::new() });
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
    let body = json!({ "status": if ready { "ready" } else { "not ready" }, "checks": checks });
    let code = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(body)).into_response()
}
