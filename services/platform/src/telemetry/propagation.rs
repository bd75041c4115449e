//! W3C trace context (`traceparent`, `tracestate`) in and out of NATS headers, HTTP headers and
//! gRPC metadata.
//!
//! Injection reads the OpenTelemetry context of the current `tracing` span; extraction returns a
//! context to hand to `tracing_opentelemetry::OpenTelemetrySpanExt::set_parent`. Both go through
//! the global propagator that [`super::init`] sets. Without the OpenTelemetry layer (no OTLP
//! endpoint configured) spans carry no trace context, so injection writes nothing.

use std::collections::HashMap;

use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::TraceContextExt;
use tracing_opentelemetry::OpenTelemetrySpanExt;

const TRACEPARENT: &str = "traceparent";

/// Writes the current span's trace context into NATS message headers.
pub fn inject_nats(headers: &mut async_nats::HeaderMap) {
    inject(&mut NatsHeaders(headers));
}

/// Reads the trace context carried by NATS message headers.
pub fn extract_nats(headers: &async_nats::HeaderMap) -> Context {
    extract(&NatsHeadersRef(headers))
}

/// Writes the current span's trace context into HTTP headers (outgoing request).
pub fn inject_http(headers: &mut http::HeaderMap) {
    inject(&mut HttpHeaders(headers));
}

/// Reads the trace context carried by HTTP headers (incoming request).
pub fn extract_http(headers: &http::HeaderMap) -> Context {
    extract(&HttpHeadersRef(headers))
}

/// Writes the current span's trace context into gRPC request metadata (tonic client).
pub fn inject_grpc(metadata: &mut tonic::metadata::MetadataMap) {
    inject(&mut GrpcMetadata(metadata));
}

/// Reads the trace context carried by gRPC request metadata.
pub fn extract_grpc(metadata: &tonic::metadata::MetadataMap) -> Context {
    extract(&GrpcMetadataRef(metadata))
}

/// The `traceparent` of the current span, to store with an outbox row and restore with
/// [`context_from_traceparent`] when the row is published. `None` when the span has no trace.
pub fn current_traceparent() -> Option<String> {
    let mut carrier: HashMap<String, String> = HashMap::new();
    inject(&mut carrier);
    carrier.remove(TRACEPARENT)
}

/// The trace context described by a stored `traceparent` (an empty context when it is malformed).
pub fn context_from_traceparent(traceparent: &str) -> Context {
    let carrier = HashMap::from([(TRACEPARENT.to_owned(), traceparent.to_owned())]);
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract_with_context(&Context::new(), &carrier)
    })
}

fn inject(carrier: &mut dyn Injector) {
    let context = tracing::Span::current().context();
    if !context.span().span_context().is_valid() {
        return;
    }
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, carrier);
    });
}

fn extract(carrier: &dyn Extractor) -> Context {
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract_with_context(&Context::new(), carrier)
    })
}

struct NatsHeaders<'a>(&'a mut async_nats::HeaderMap);

impl Injector for NatsHeaders<'_> {
    fn set(&mut self, key: &str, value: String) {
        // async-nats panics on a name or value it cannot carry; skip those instead.
        let Ok(name) = key.parse::<async_nats::HeaderName>() else {
            return;
        };
        if !value.contains(['\r', '\n']) {
            self.0.insert(name, value);
        }
    }
}

struct NatsHeadersRef<'a>(&'a async_nats::HeaderMap);

impl Extractor for NatsHeadersRef<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        let name = key.parse::<async_nats::HeaderName>().ok()?;
        self.0.get(name).map(async_nats::HeaderValue::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(name, _)| name.as_ref()).collect()
    }
}

struct HttpHeaders<'a>(&'a mut http::HeaderMap);

impl Injector for HttpHeaders<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

struct HttpHeadersRef<'a>(&'a http::HeaderMap);

impl Extractor for HttpHeadersRef<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct GrpcMetadata<'a>(&'a mut tonic::metadata::MetadataMap);

impl Injector for GrpcMetadata<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            tonic::metadata::MetadataValue::try_from(value.as_str()),
        ) {
            self.0.insert(name, value);
        }
    }
}

struct GrpcMetadataRef<'a>(&'a tonic::metadata::MetadataMap);

impl Extractor for GrpcMetadataRef<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .keys()
            .filter_map(|key| match key {
                tonic::metadata::KeyRef::Ascii(key) => Some(key.as_str()),
                tonic::metadata::KeyRef::Binary(_) => None,
            })
            .collect()
    }
}
