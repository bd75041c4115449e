//! `eva_platform::telemetry`: trace propagation, OTLP export, gRPC layer metrics, configuration.
//!
//! nextest runs every test in its own process, so each may install the global subscriber.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use eva_platform::telemetry::grpc::GrpcTelemetryLayer;
use eva_platform::telemetry::{self, LogFormat, TelemetryConfig, propagation};
use opentelemetry::trace::{SpanId, TraceContextExt, TraceId, TracerProvider as _};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span as OtlpSpan;
use tokio::sync::oneshot;
use tonic::transport::server::TcpIncoming;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;

const REMOTE_TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// A subscriber with the OpenTelemetry layer but no exporter: spans get real trace context.
fn tracing_with_trace_context() -> impl tracing::Subscriber + Send + Sync {
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")))
}

fn trace_id_of(context: &opentelemetry::Context) -> TraceId {
    context.span().span_context().trace_id()
}

#[test]
fn trace_context_round_trips_through_nats_http_grpc_and_traceparent() {
    let _guard = telemetry::init(&TelemetryConfig::default(), "propagation-test").expect("init");
    tracing::subscriber::with_default(tracing_with_trace_context(), || {
        let span = tracing::info_span!("publish");
        let _entered = span.enter();
        let trace_id = trace_id_of(&span.context());
        let span_id = span.context().span().span_context().span_id();
        assert_ne!(trace_id, TraceId::INVALID);

        let mut nats = async_nats::HeaderMap::new();
        propagation::inject_nats(&mut nats);
        assert!(
            nats.get("traceparent").is_some(),
            "no traceparent in {nats:?}"
        );
        let extracted = propagation::extract_nats(&nats);
        assert_eq!(trace_id_of(&extracted), trace_id);
        assert!(extracted.span().span_context().is_remote());

        let mut headers = http::HeaderMap::new();
        propagation::inject_http(&mut headers);
        assert_eq!(trace_id_of(&propagation::extract_http(&headers)), trace_id);

        let mut metadata = tonic::metadata::MetadataMap::new();
        propagation::inject_grpc(&mut metadata);
        assert_eq!(trace_id_of(&propagation::extract_grpc(&metadata)), trace_id);
        // What a server sees: the metadata travels as HTTP/2 headers.
        assert_eq!(
            trace_id_of(&propagation::extract_http(&metadata.into_headers())),
            trace_id
        );

        let traceparent = propagation::current_traceparent().expect("traceparent in a span");
        assert_eq!(traceparent, format!("00-{trace_id}-{span_id}-01"));
        let restored = propagation::context_from_traceparent(&traceparent);
        assert_eq!(trace_id_of(&restored), trace_id);
        assert_eq!(restored.span().span_context().span_id(), span_id);
    });
}

#[test]
fn a_span_continues_the_trace_it_received() {
    let _guard = telemetry::init(&TelemetryConfig::default(), "propagation-test").expect("init");
    tracing::subscriber::with_default(tracing_with_trace_context(), || {
        let mut headers = http::HeaderMap::new();
        headers.insert("traceparent", REMOTE_TRACEPARENT.parse().expect("header"));
        let span = tracing::info_span!("handle");
        span.set_parent(propagation::extract_http(&headers))
            .expect("parent set before the span starts");
        let traceparent = span
            .in_scope(propagation::current_traceparent)
            .expect("traceparent");
        assert!(traceparent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(
            !traceparent.contains("00f067aa0ba902b7"),
            "the span has its own id"
        );

        let malformed = propagation::context_from_traceparent("not-a-traceparent");
        assert!(!malformed.span().span_context().is_valid());
    });
}

#[test]
fn without_an_endpoint_context_still_propagates_and_a_second_init_is_harmless() {
    let guard = telemetry::init(&TelemetryConfig::default(), "first").expect("first init");
    assert!(!guard.is_exporting());
    let again = telemetry::init(&TelemetryConfig::default(), "second").expect("second init");
    assert!(!again.is_exporting());

    // Nothing is exported, but a request's trace still travels through the
    // outbox and the bus, so logs of one request can be joined.
    let span = tracing::info_span!("work");
    let _entered = span.enter();
    let traceparent = propagation::current_traceparent().expect("a traceparent");
    let mut nats = async_nats::HeaderMap::new();
    propagation::inject_nats(&mut nats);
    assert_eq!(
        nats.get("traceparent").map(|v| v.as_str().to_owned()),
        Some(traceparent)
    );
}

/// An in-process OTLP/gRPC trace collector.
#[derive(Clone, Default)]
struct Collector {
    received: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.received
            .lock()
            .expect("collector lock")
            .push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

impl Collector {
    /// Every span received, with the `service.name` of its resource.
    fn spans(&self) -> Vec<(String, OtlpSpan)> {
        let received = self.received.lock().expect("collector lock");
        let mut spans = Vec::new();
        for resource_spans in received.iter().flat_map(|r| &r.resource_spans) {
            let service_name = resource_spans
                .resource
                .iter()
                .flat_map(|resource| &resource.attributes)
                .find(|attribute| attribute.key == "service.name")
                .and_then(|attribute| attribute.value.as_ref()?.value.as_ref())
                .and_then(|value| match value {
                    Value::StringValue(name) => Some(name.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for scope_spans in &resource_spans.scope_spans {
                for span in &scope_spans.spans {
                    spans.push((service_name.clone(), span.clone()));
                }
            }
        }
        spans
    }
}

async fn start_collector() -> (Collector, SocketAddr, oneshot::Sender<()>) {
    let collector = Collector::default();
    let incoming = TcpIncoming::bind(([127, 0, 0, 1], 0).into()).expect("bind collector");
    let addr = incoming.local_addr().expect("collector address");
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tonic::transport::Server::builder()
        .add_service(TraceServiceServer::new(collector.clone()))
        .serve_with_incoming_shutdown(incoming, async {
            let _ = stopped.await;
        });
    tokio::spawn(server);
    (collector, addr, stop)
}

/// A tonic server with grpc.health.v1 behind the telemetry layer.
async fn start_health_server() -> (SocketAddr, oneshot::Sender<()>) {
    let (_reporter, health) = tonic_health::server::health_reporter();
    let incoming = TcpIncoming::bind(([127, 0, 0, 1], 0).into()).expect("bind server");
    let addr = incoming.local_addr().expect("server address");
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tonic::transport::Server::builder()
        .layer(GrpcTelemetryLayer::new("identity"))
        .add_service(health)
        .serve_with_incoming_shutdown(incoming, async {
            let _ = stopped.await;
        });
    tokio::spawn(server);
    (addr, stop)
}

async fn connect(addr: SocketAddr) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_the_otlp_collector_with_the_callers_trace() {
    let (collector, collector_addr, stop_collector) = start_collector().await;
    let cfg = TelemetryConfig {
        otlp_endpoint: Some(format!("http://{collector_addr}")),
        log_filter: "info".into(),
        ..TelemetryConfig::default()
    };
    let guard = telemetry::init(&cfg, "eva-telemetry-test").expect("init");
    assert!(guard.is_exporting());
    let (server_addr, stop_server) = start_health_server().await;
    let mut client = HealthClient::new(connect(server_addr).await);

    let client_span = tracing::info_span!("test.client_call");
    let (trace_id, client_span_id) = {
        let context = client_span.context();
        let span_context = context.span().span_context().clone();
        (span_context.trace_id(), span_context.span_id())
    };
    async {
        let mut request = tonic::Request::new(HealthCheckRequest {
            service: String::new(),
        });
        propagation::inject_grpc(request.metadata_mut());
        tracing::info!("checking health");
        client.check(request).await.expect("health check");
    }
    .instrument(client_span)
    .await;

    drop(guard); // flushes the batch
    let spans = collector.spans();
    let _ = stop_server.send(());
    let _ = stop_collector.send(());

    let (service_name, client) = spans
        .iter()
        .find(|(_, span)| span.name == "test.client_call")
        .expect("client span exported");
    assert_eq!(service_name, "eva-telemetry-test");
    assert_eq!(client.trace_id, trace_id.to_bytes().to_vec());
    let (_, server) = spans
        .iter()
        .find(|(_, span)| span.name == "grpc.health.v1.Health/Check")
        .unwrap_or_else(|| panic!("server span exported, got {spans:?}"));
    assert_eq!(server.trace_id, trace_id.to_bytes().to_vec());
    assert_eq!(server.parent_span_id, client_span_id.to_bytes().to_vec());
    assert_ne!(server.span_id, SpanId::INVALID.to_bytes().to_vec());
    let grpc_status = server
        .attributes
        .iter()
        .find(|attribute| attribute.key == "grpc.status")
        .and_then(|attribute| attribute.value.as_ref()?.value.clone());
    assert_eq!(grpc_status, Some(Value::StringValue("OK".into())));
}

/// The application runtime is single-threaded and the guard is dropped on it: the export must
/// still complete (the OTLP client runs on its own thread, not on the caller's runtime).
#[tokio::test(flavor = "current_thread")]
async fn dropping_the_guard_on_a_current_thread_runtime_flushes_without_deadlock() {
    // The collector stands for a remote process: its own runtime on its own thread.
    let (ready, collector) = std::sync::mpsc::channel();
    let (stop_collector, stopped) = oneshot::channel::<()>();
    let collector_thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().expect("collector runtime");
        runtime.block_on(async {
            let (collector, addr, stop) = start_collector().await;
            ready
                .send((collector, addr))
                .expect("hand over the collector");
            let _ = stopped.await;
            let _ = stop.send(());
        });
    });
    let (collector, addr) = collector.recv().expect("collector started");

    let cfg = TelemetryConfig {
        otlp_endpoint: Some(format!("http://{addr}")),
        ..TelemetryConfig::default()
    };
    let guard = telemetry::init(&cfg, "eva-current-thread").expect("init");
    async {
        tracing::info!(items = 3, "batch relayed");
    }
    .instrument(tracing::info_span!("test.relay"))
    .await;
    drop(guard);

    let spans = collector.spans();
    let _ = stop_collector.send(());
    collector_thread.join().expect("collector thread");
    assert!(
        spans
            .iter()
            .any(|(service, span)| service == "eva-current-thread" && span.name == "test.relay"),
        "span not exported: {spans:?}"
    );
}

#[tokio::test]
async fn the_grpc_layer_counts_requests_by_method_and_code() {
    let (addr, stop) = start_health_server().await;
    let channel = connect(addr).await;
    let mut client = HealthClient::new(channel.clone());

    // Success: tonic sends grpc-status in the trailers.
    client
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health check");
    // Error: tonic answers trailers-only, grpc-status in the headers.
    let missing = client
        .check(HealthCheckRequest {
            service: "eva.nope.v1.Nope".into(),
        })
        .await
        .expect_err("unknown service");
    assert_eq!(missing.code(), tonic::Code::NotFound);
    // An unknown method must not create a metric series of its own.
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    let unknown = grpc
        .unary::<_, HealthCheckResponse, _>(
            tonic::Request::new(HealthCheckRequest::default()),
            "/eva.nope.v1.Nope/Guess".parse().expect("path"),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .expect_err("unknown method");
    assert_eq!(unknown.code(), tonic::Code::Unimplemented);
    let _ = stop.send(());

    let rendered = telemetry::metrics().render();
    for expected in [
        r#"eva_grpc_requests_total{service="identity",method="grpc.health.v1.Health/Check",code="OK"} 1"#,
        r#"eva_grpc_requests_total{service="identity",method="grpc.health.v1.Health/Check",code="NOT_FOUND"} 1"#,
        r#"eva_grpc_requests_total{service="identity",method="unknown",code="UNIMPLEMENTED"} 1"#,
        r#"eva_grpc_request_duration_seconds_count{service="identity",method="grpc.health.v1.Health/Check"} 2"#,
        r#"eva_grpc_request_duration_seconds_bucket{service="identity",method="grpc.health.v1.Health/Check",le="10"} 2"#,
    ] {
        assert!(
            rendered.contains(expected),
            "missing {expected} in\n{rendered}"
        );
    }
    assert!(
        !rendered.contains("Guess"),
        "unknown method leaked into\n{rendered}"
    );
}

#[tokio::test]
async fn metrics_route_serves_the_text_exposition_format() {
    use tower::ServiceExt as _;

    let response = telemetry::metrics_router()
        .oneshot(
            http::Request::get("/metrics")
                .body(axum::body::Body::empty())
                .expect("request"),
        )
        .await
        .expect("response");
    assert_eq!(response.status(), http::StatusCode::OK);
    let content_type = response.headers()[http::header::CONTENT_TYPE]
        .to_str()
        .expect("content type")
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    let body = String::from_utf8(body.to_vec()).expect("utf-8");
    assert!(body.contains("# TYPE eva_build_info gauge"), "{body}");
    assert!(
        body.contains(&format!(
            r#"eva_build_info{{version="{}"}} 1"#,
            env!("CARGO_PKG_VERSION")
        )),
        "{body}"
    );
}

#[test]
fn validate_names_the_bad_key() {
    assert!(TelemetryConfig::default().validate().is_ok());

    let ratio = TelemetryConfig {
        sample_ratio: 2.0,
        ..TelemetryConfig::default()
    };
    let message = ratio.validate().expect_err("ratio 2 rejected");
    assert_eq!(
        message,
        "telemetry.sample_ratio must be between 0 and 1, got 2"
    );
    let nan = TelemetryConfig {
        sample_ratio: f64::NAN,
        ..TelemetryConfig::default()
    };
    assert!(nan.validate().is_err());

    for endpoint in ["not a url", "127.0.0.1:4317", "ftp://collector:4317"] {
        let cfg = TelemetryConfig {
            otlp_endpoint: Some(endpoint.into()),
            ..TelemetryConfig::default()
        };
        let message = cfg.validate().expect_err(endpoint);
        assert!(message.starts_with("telemetry.otlp_endpoint "), "{message}");
        assert!(message.contains(endpoint), "{message}");
    }
    let ok = TelemetryConfig {
        otlp_endpoint: Some("http://otel-collector:4317".into()),
        log_format: LogFormat::Json,
        ..TelemetryConfig::default()
    };
    assert!(ok.validate().is_ok());

    let filter = TelemetryConfig {
        log_filter: "info,eva=loud".into(),
        ..TelemetryConfig::default()
    };
    let message = filter.validate().expect_err("bad filter rejected");
    assert!(message.starts_with("telemetry.log_filter "), "{message}");
    // `init` refuses what `validate` refuses.
    let error = telemetry::init(&ratio, "bad").expect_err("init validates");
    assert!(
        error.to_string().contains("telemetry.sample_ratio"),
        "{error}"
    );
}

#[test]
fn config_reads_lowercase_formats_and_rejects_unknown_keys() {
    let cfg: TelemetryConfig =
        serde_json::from_str(r#"{"log_format":"json","sample_ratio":0.25}"#).expect("parse");
    assert_eq!(cfg.log_format, LogFormat::Json);
    assert_eq!(cfg.log_filter, TelemetryConfig::default().log_filter);
    assert_eq!(cfg.otlp_endpoint, None);
    let unknown =
        serde_json::from_str::<TelemetryConfig>(r#"{"sample_rate":0.5}"#).expect_err("unknown key");
    assert!(unknown.to_string().contains("sample_rate"), "{unknown}");
}
