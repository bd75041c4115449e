//! The one place for EVA's tracing, trace propagation and metrics.
//!
//! - [`init`] installs the `tracing` subscriber (EnvFilter + pretty or JSON logs, plus the
//!   OpenTelemetry layer exporting over OTLP/gRPC when an endpoint is configured) and the global
//!   W3C trace-context propagator; it returns a [`TelemetryGuard`] that flushes traces on drop.
//! - [`metrics`] / [`metrics_router`]: the Prometheus recorder and its `GET /metrics` route.
//! - [`propagation`]: trace context through NATS headers, HTTP headers and gRPC metadata.
//! - [`grpc`]: a tower layer giving every tonic server request a span and metrics.

mod config;
pub mod grpc;
mod prometheus;
pub mod propagation;

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

pub use config::{LogFormat, TelemetryConfig};
pub use prometheus::{metrics, metrics_router};

/// How long an OTLP export may take before it is abandoned.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the guard waits, at shutdown, for the last spans to reach the collector.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// Crates on the export path: their own spans must not be exported (each export would trace
/// itself, and that trace would be exported in turn).
const EXPORT_PATH_TARGETS: &[&str] = &[
    "h2",
    "hyper",
    "hyper_util",
    "tonic",
    "tower",
    "opentelemetry",
    "opentelemetry_sdk",
    "opentelemetry_otlp",
];

static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// A configuration value is out of range; the message names the key.
    #[error("{0}")]
    Config(String),
    /// `RUST_LOG` holds directives that do not parse.
    #[error("RUST_LOG is not a valid filter: {0}")]
    RustLog(#[from] tracing_subscriber::filter::ParseError),
    /// The OTLP exporter rejected the endpoint.
    #[error("telemetry.otlp_endpoint: cannot build the OTLP exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    /// The background thread that talks to the collector could not start.
    #[error("cannot start the OTLP export thread: {0}")]
    ExportThread(#[from] std::io::Error),
}

/// Installs logging, tracing and trace propagation for this process.
///
/// Sets the global W3C `TraceContextPropagator`, then a `tracing` subscriber: an `EnvFilter`
/// (`RUST_LOG` when set, else `cfg.log_filter`), pretty or JSON log lines on standard output,
/// and — only when `cfg.otlp_endpoint` is set — the OpenTelemetry layer exporting spans in
/// batches over OTLP/gRPC with resource `service.name = service_name`.
///
/// Works inside or outside a tokio runtime. Only the first call in a process installs
/// anything: later calls (several services started in one process, tests) return a guard that
/// does nothing, as does a call made after some other code installed a global subscriber.
pub fn init(cfg: &TelemetryConfig, service_name: &str) -> Result<TelemetryGuard, TelemetryError> {
    cfg.validate().map_err(TelemetryError::Config)?;
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    if INSTALLED.load(Ordering::SeqCst) {
        tracing::debug!(
            service = service_name,
            "telemetry already installed in this process"
        );
        return Ok(TelemetryGuard { export: None });
    }

    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => {
            EnvFilter::builder().parse(directives)?
        }
        _ => EnvFilter::builder().parse(&cfg.log_filter)?,
    };
    let log_layer = match cfg.log_format {
        LogFormat::Pretty => tracing_subscriber::fmt::layer()
            .with_ansi(std::io::stdout().is_terminal())
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
    };
    let export = match cfg.endpoint() {
        Some(endpoint) => Some(Export::start(endpoint, cfg.sample_ratio, service_name)?),
        None => None,
    };
    // Spans always carry OpenTelemetry contexts so trace ids are propagated
    // through gRPC and NATS even when nothing is exported.
    let provider = match &export {
        Some(export) => export.provider.clone(),
        None => SdkTracerProvider::builder()
            .with_resource(resource(service_name))
            .with_sampler(sampler(cfg.sample_ratio))
            .build(),
    };
    let otel_layer = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("eva"))
        // Its own filter, independent of the log level: a quiet log must
        // not break trace propagation.
        .with_filter(tracing_subscriber::filter::filter_fn(|metadata| {
            *metadata.level() <= tracing::Level::INFO && !is_export_path(metadata.target())
        }));

    if INSTALLED.swap(true, Ordering::SeqCst) {
        // Lost a race with a concurrent first call.
        drop(otel_layer);
        if let Some(export) = export {
            export.shutdown();
        }
        return Ok(TelemetryGuard { export: None });
    }
    let installed = tracing_subscriber::registry()
        .with(log_layer.with_filter(filter))
        .with(otel_layer)
        .try_init();
    if let Err(error) = installed {
        // Someone else owns the global subscriber: keep theirs, export nothing.
        tracing::warn!(%error, "a tracing subscriber is already installed; keeping it");
        if let Some(export) = export {
            export.shutdown();
        }
        return Ok(TelemetryGuard { export: None });
    }
    opentelemetry::global::set_tracer_provider(provider);
    tracing::info!(
        service = service_name,
        log_format = match cfg.log_format {
            LogFormat::Pretty => "pretty",
            LogFormat::Json => "json",
        },
        otlp_endpoint = cfg.endpoint().unwrap_or("none"),
        sample_ratio = cfg.sample_ratio,
        "telemetry installed"
    );
    Ok(TelemetryGuard { export })
}

fn resource(service_name: &str) -> Resource {
    Resource::builder()
        .with_service_name(service_name.to_owned())
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build()
}

fn sampler(ratio: f64) -> Sampler {
    Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio)))
}

fn is_export_path(target: &str) -> bool {
    EXPORT_PATH_TARGETS.iter().any(|krate| {
        target
            .strip_prefix(krate)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
    })
}

/// Keeps trace export alive; dropping it flushes the last spans and shuts the exporter down.
///
/// Hold it in `main` (or the test) until the process is about to end. Dropping it may block the
/// current thread for up to a few seconds while the last batch is sent; inside a multi-threaded
/// tokio runtime the wait is made with `block_in_place`.
#[must_use = "dropping the guard stops trace export"]
pub struct TelemetryGuard {
    export: Option<Export>,
}

impl TelemetryGuard {
    /// Whether this guard owns the process's trace export (false when no endpoint is set and
    /// for every `init` after the first).
    pub fn is_exporting(&self) -> bool {
        self.export.is_some()
    }
}

impl std::fmt::Debug for TelemetryGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelemetryGuard")
            .field("exporting", &self.is_exporting())
            .finish()
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        let Some(export) = self.export.take() else {
            return;
        };
        let in_multi_thread_runtime = tokio::runtime::Handle::try_current().is_ok_and(|handle| {
            handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
        });
        if in_multi_thread_runtime {
            tokio::task::block_in_place(|| export.shutdown());
        } else {
            export.shutdown();
        }
    }
}

/// The tracer provider and the small runtime its OTLP client runs on.
///
/// The tonic channel lives on a dedicated single-threaded runtime, not on the application's:
/// the SDK's batch processor exports from its own thread and its shutdown blocks the caller, so
/// a channel driven by the application's runtime would deadlock a current-thread runtime (and
/// `init` would need to run inside one).
struct Export {
    provider: SdkTracerProvider,
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Export {
    fn start(
        endpoint: &str,
        sample_ratio: f64,
        service_name: &str,
    ) -> Result<Self, TelemetryError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let exporter = {
            let _entered = runtime.enter();
            opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .with_timeout(EXPORT_TIMEOUT)
                .build()?
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("eva-otlp-export".into())
            .spawn(move || {
                runtime.block_on(async {
                    let _ = stopped.await;
                });
                runtime.shutdown_timeout(Duration::from_millis(100));
            })?;
        let provider = SdkTracerProvider::builder()
            .with_resource(resource(service_name))
            .with_sampler(sampler(sample_ratio))
            .with_batch_exporter(exporter)
            .build();
        Ok(Self {
            provider,
            stop,
            thread,
        })
    }

    fn shutdown(self) {
        if let Err(error) = self.provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT) {
            tracing::warn!(%error, "trace export did not shut down cleanly");
        }
        let _ = self.stop.send(());
        if self.thread.join().is_err() {
            tracing::warn!("the otlp export thread panicked");
        }
    }
}
