//! The gateway: EVA's one public door. HTTP/JSON under `/api/v1` in front of
//! the gRPC services; no business rules and no database. The caller's token
//! and trace context travel with every call, and each service authorises.

mod accompaniments;
mod action_plan;
mod asyncapi;
mod auth;
mod community;
mod community_live;
mod community_search;
mod consents;
mod cors;
mod diagnostics;
mod directory;
mod health;
mod idempotency;
mod json;
mod limits;
mod members;
mod openapi;
mod partners;
mod people;
mod problem;
mod referentiel;
mod referrals;
mod rights;
mod statistics;
mod structures;
mod upstream;
mod versions;
mod web;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use axum::serve::ListenerExt;
use eva_platform::bus::Bus;
use eva_platform::{Config, Shutdown};
use tokio::net::TcpListener;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;

pub use problem::{FieldProblem, Problem};
pub use upstream::Upstreams;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub upstreams: Upstreams,
    pub bus: Option<Bus>,
    /// Answers kept for `Idempotency-Key` (with the bus).
    pub idempotency: Option<async_nats::jetstream::kv::Store>,
    /// `[gateway]`: rate limits and CORS origins.
    pub gateway: Arc<eva_platform::config::GatewayConfig>,
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("gateway: {0}")]
    Setup(String),
    #[error("gateway: serve: {0}")]
    Serve(String),
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    let limiter = limits::Limiter::new(&state.gateway)
        .map(|l| axum::middleware::from_fn_with_state(l, limits::middleware));
    let cors = cors::layer(&state.gateway);
    let (api, doc) = OpenApiRouter::with_openapi(openapi::base())
        .merge(structures::routes())
        .merge(statistics::routes())
        .merge(referentiel::routes())
        .merge(auth::routes())
        .merge(members::routes())
        .merge(people::routes())
        .merge(consents::routes())
        .merge(rights::routes())
        .merge(accompaniments::routes())
        .merge(diagnostics::routes())
        .merge(action_plan::routes())
        .merge(asyncapi::routes())
        .merge(partners::routes())
        .merge(directory::routes())
        .merge(referrals::routes())
        .merge(community::routes())
        .merge(community_live::routes())
        .merge(community_search::routes())
        .split_for_parts();
    let api = api
        .merge(openapi::routes(openapi::document(doc)))
        .fallback(|| async {
            Problem::not_found("aucune ressource à cette adresse / no resource at this path")
        })
        .layer(axum::middleware::from_fn_with_state(
            state.idempotency.clone(),
            idempotency::middleware,
        ));
    Router::new()
        // The web client, and the system's state for people.
        .route("/", get(web::index))
        .route("/web/{file}", get(web::asset))
        .route("/status", get(health::status))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/.well-known/jwks.json", get(structures::jwks))
        .nest("/api/v1", api)
        .fallback(|| async { Problem::not_found("aucune ressource à cette adresse / no resource at this path") })
        .with_state(state)
        // Inside CORS: a 429 carries the CORS headers, and a preflight takes no token.
        .layer(tower::util::option_layer(limiter))
        .layer(tower::util::option_layer(cors))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(TraceLayer::new_for_http().make_span_with(|req: &http::Request<_>| {
            let request_id = req
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            let path = auth::loggable_path(req.uri().path());
            let span = tracing::info_span!("http.request", method = %req.method(), path = %path, request_id);
            use tracing_opentelemetry::OpenTelemetrySpanExt;
            let _ = span.set_parent(eva_platform::telemetry::propagation::extract_http(req.headers()));
            span
        }))
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

/// Serves the gateway on `listener` until shutdown.
pub async fn run(
    config: Arc<Config>,
    listener: TcpListener,
    shutdown: Shutdown,
) -> Result<(), GatewayError> {
    let upstreams = Upstreams::connect(&config).map_err(GatewayError::Setup)?;
    let bus = match &config.bus.url {
        Some(url) => Some(
            Bus::connect(&config.bus, url, "gateway")
                .await
                .map_err(|e| GatewayError::Setup(e.to_string()))?,
        ),
        None => None,
    };
    let idempotency = match &bus {
        Some(bus) => Some(
            idempotency::bucket(bus, config.bus.replicas)
                .await
                .map_err(|e| GatewayError::Setup(e.to_string()))?,
        ),
        None => None,
    };
    let app = router(AppState {
        upstreams,
        bus,
        idempotency,
        gateway: Arc::new(config.gateway.clone()),
    });
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    tracing::info!(?addr, "gateway listening");
    // Without TCP_NODELAY small JSON answers wait on Nagle's algorithm.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    // The peer's address is the client's, for the per-address rate limit.
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown.cancelled())
    .await
    .map_err(|e| GatewayError::Serve(e.to_string()))
}

/// Default deadline of one upstream call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
