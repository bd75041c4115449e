//! Telemetry for tonic servers: one span and two metrics per gRPC request.
//!
//! ```ignore
//! tonic::transport::Server::builder()
//!     .layer(GrpcTelemetryLayer::new("identity"))
//!     .add_service(health)
//! ```
//!
//! For each request the layer continues the caller's trace (W3C `traceparent` header), opens a
//! `grpc.request` span (`rpc.service`, `rpc.method`, `otel.kind = "server"`, `grpc.status`) and
//! records `eva_grpc_requests_total{service,method,code}` and
//! `eva_grpc_request_duration_seconds{service,method}`. The status is read from the response
//! headers (errors: tonic answers "trailers-only") or else from the trailers at the end of the
//! body, so streaming responses are timed until their last message.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http_body::{Body, Frame, SizeHint};
use opentelemetry::trace::TraceContextExt;
use tonic::Code;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::prometheus::{GRPC_REQUEST_DURATION_SECONDS, GRPC_REQUESTS_TOTAL};
use super::propagation;

/// Method label used when the server does not know the method (UNIMPLEMENTED), so that
/// arbitrary request paths cannot create unbounded metric series.
const UNKNOWN_METHOD: &str = "unknown";

/// Tower layer adding tracing and metrics to a tonic server; see the module documentation.
#[derive(Debug, Clone)]
pub struct GrpcTelemetryLayer {
    service: Arc<str>,
}

impl GrpcTelemetryLayer {
    /// `service` is the EVA service name (`identity`, `statistics`, …), the `service` label of
    /// the metrics. Installs the Prometheus recorder if it is not yet installed.
    pub fn new(service: impl Into<Arc<str>>) -> Self {
        super::metrics();
        Self {
            service: service.into(),
        }
    }
}

impl<S> tower::Layer<S> for GrpcTelemetryLayer {
    type Service = GrpcTelemetryService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcTelemetryService {
            inner,
            service: Arc::clone(&self.service),
        }
    }
}

/// The service made by [`GrpcTelemetryLayer`].
#[derive(Debug, Clone)]
pub struct GrpcTelemetryService<S> {
    inner: S,
    service: Arc<str>,
}

impl<S, B, ResBody> tower::Service<http::Request<B>> for GrpcTelemetryService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<ResBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    ResBody: Body + Unpin,
{
    type Response = http::Response<GrpcResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let path = request.uri().path();
        let (rpc_service, rpc_method) = split_path(path);
        let span = tracing::info_span!(
            "grpc.request",
            otel.name = %path.trim_start_matches('/'),
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            rpc.system = "grpc",
            rpc.service = %rpc_service,
            rpc.method = %rpc_method,
            grpc.status = tracing::field::Empty,
            eva.service = %self.service,
        );
        let parent = propagation::extract_http(request.headers());
        if parent.span().span_context().is_valid() {
            // Fails only without the OpenTelemetry layer, when there is no trace to continue.
            let _ = span.set_parent(parent);
        }
        let mut observation = Observation {
            service: Arc::clone(&self.service),
            method: Arc::from(format!("{rpc_service}/{rpc_method}")),
            started: Instant::now(),
            span: span.clone(),
            finished: false,
        };

        // Call the clone that was driven to readiness, keep a fresh one for the next request.
        let fresh = self.inner.clone();
        let mut ready = std::mem::replace(&mut self.inner, fresh);
        let response = span.in_scope(|| ready.call(request));
        Box::pin(
            async move {
                match response.await {
                    Ok(response) => {
                        let (parts, body) = response.into_parts();
                        let observation = match grpc_status(&parts.headers) {
                            Some(code) => {
                                observation.finish(code);
                                None
                            }
                            None => Some(observation),
                        };
                        let body = GrpcResponseBody {
                            inner: body,
                            observation,
                        };
                        Ok(http::Response::from_parts(parts, body))
                    }
                    Err(error) => {
                        observation.finish(Code::Unknown);
                        Err(error)
                    }
                }
            }
            .instrument(span),
        )
    }
}

/// Response body that reads `grpc-status` from the trailers and closes the request's
/// observation when the body ends (or is dropped: the client went away).
#[derive(Debug)]
pub struct GrpcResponseBody<B> {
    inner: B,
    observation: Option<Observation>,
}

impl<B: Body + Unpin> Body for GrpcResponseBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Some(observation) = this.observation.as_mut() {
            match &polled {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Some(code) = frame.trailers_ref().and_then(grpc_status) {
                        observation.finish(code);
                    }
                }
                Poll::Ready(Some(Err(_))) => observation.finish(Code::Internal),
                Poll::Ready(None) => observation.finish(Code::Unknown),
                Poll::Pending => {}
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// One request in flight: its span and what its metrics need.
#[derive(Debug)]
struct Observation {
    service: Arc<str>,
    method: Arc<str>,
    started: Instant,
    span: tracing::Span,
    finished: bool,
}

impl Observation {
    fn finish(&mut self, code: Code) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        let elapsed = self.started.elapsed();
        let code_name = code_name(code);
        let method = if code == Code::Unimplemented {
            Arc::from(UNKNOWN_METHOD)
        } else {
            Arc::clone(&self.method)
        };
        metrics::counter!(
            GRPC_REQUESTS_TOTAL,
            "service" => Arc::clone(&self.service),
            "method" => Arc::clone(&method),
            "code" => code_name,
        )
        .increment(1);
        metrics::histogram!(
            GRPC_REQUEST_DURATION_SECONDS,
            "service" => Arc::clone(&self.service),
            "method" => method,
        )
        .record(elapsed.as_secs_f64());

        self.span.record("grpc.status", code_name);
        if is_server_error(code) {
            self.span.record("otel.status_code", "ERROR");
        }
        self.span.in_scope(|| {
            tracing::debug!(
                code = code_name,
                elapsed_ms = elapsed.as_secs_f64() * 1000.0,
                "grpc request finished"
            );
        });
    }
}

impl Drop for Observation {
    fn drop(&mut self) {
        // The body was dropped before its trailers: the client cancelled or the connection broke.
        self.finish(Code::Cancelled);
    }
}

/// `/eva.identity.v1.StructureService/GetStructure` → (`eva.identity.v1.StructureService`, `GetStructure`).
fn split_path(path: &str) -> (&str, &str) {
    let path = path.trim_start_matches('/');
    path.rsplit_once('/').unwrap_or((path, ""))
}

fn grpc_status(headers: &http::HeaderMap) -> Option<Code> {
    headers
        .get("grpc-status")
        .map(|value| Code::from_bytes(value.as_bytes()))
}

/// The OpenTelemetry semantic conventions count these as server errors on a server span.
fn is_server_error(code: Code) -> bool {
    matches!(
        code,
        Code::Unknown
            | Code::DeadlineExceeded
            | Code::Unimplemented
            | Code::Internal
            | Code::Unavailable
            | Code::DataLoss
    )
}

/// The status code's name as the gRPC specification writes it (`OK`, `NOT_FOUND`, …).
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}
