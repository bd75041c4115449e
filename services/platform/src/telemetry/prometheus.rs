//! The process-wide Prometheus recorder behind the `metrics` facade, and its `/metrics` route.

use std::sync::OnceLock;
use std::time::Duration;

use axum::http::header;
use axum::response::IntoResponse;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Name of the gRPC request counter recorded by [`super::grpc::GrpcTelemetryLayer`].
pub(crate) const GRPC_REQUESTS_TOTAL: &str = "eva_grpc_requests_total";
/// Name of the gRPC latency histogram recorded by [`super::grpc::GrpcTelemetryLayer`].
pub(crate) const GRPC_REQUEST_DURATION_SECONDS: &str = "eva_grpc_request_duration_seconds";

/// Upper bounds (seconds) of the buckets of every histogram whose name ends in `_seconds`.
const LATENCY_BUCKETS: &[f64] = &[
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// How often histogram samples are folded into their buckets when nobody scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process-wide Prometheus recorder, installed on first use.
///
/// Every `metrics::counter!`/`gauge!`/`histogram!` in the process lands here. Process-wide
/// metrics (`eva_build_info`) are set when it is installed.
pub fn metrics() -> &'static PrometheusHandle {
    HANDLE.get_or_init(install)
}

/// An axum router serving `GET /metrics` in the Prometheus text exposition format.
pub fn metrics_router() -> axum::Router {
    axum::Router::new().route("/metrics", axum::routing::get(render))
}

async fn render() -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics().render(),
    )
}

fn install() -> PrometheusHandle {
    let handle = match builder().install_recorder() {
        Ok(handle) => handle,
        Err(error) => {
            // Another recorder owns the `metrics` facade: serve an empty registry rather than fail.
            tracing::warn!(%error, "a metrics recorder is already installed; /metrics stays empty");
            builder().build_recorder().handle()
        }
    };
    spawn_upkeep(handle.clone());
    describe();
    metrics::gauge!("eva_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    handle
}

fn builder() -> PrometheusBuilder {
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
        // Only fails on an empty bucket list, which LATENCY_BUCKETS is not.
        .unwrap_or_else(|error| {
            tracing::warn!(%error, "latency buckets rejected; histograms render as summaries");
            PrometheusBuilder::new()
        })
}

fn describe() {
    metrics::describe_gauge!(
        "eva_build_info",
        "always 1; the labels say which EVA build runs in this process"
    );
    metrics::describe_counter!(
        GRPC_REQUESTS_TOTAL,
        "gRPC requests served, by EVA service, method and status code"
    );
    metrics::describe_histogram!(
        GRPC_REQUEST_DURATION_SECONDS,
        metrics::Unit::Seconds,
        "time from request received to response finished, by EVA service and method"
    );
}

/// Histograms keep raw samples until upkeep folds them in; do it on a small thread so memory
/// stays bounded even when nobody scrapes, whatever runtime (if any) the process uses.
fn spawn_upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new()
        .name("eva-metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_INTERVAL);
                handle.run_upkeep();
            }
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "cannot start the metrics upkeep thread; histograms drain on scrape only");
    }
}
