//! The `[telemetry]` section of a service's configuration.

use serde::{Deserialize, Serialize};
use tracing_subscriber::EnvFilter;

/// How log lines are written to standard output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines, coloured when standard output is a terminal (development).
    Pretty,
    /// One JSON object per line, for log collectors (production).
    Json,
}

/// Logging, tracing and trace-export settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// `pretty` (development) or `json` (production)
    pub log_format: LogFormat,
    /// tracing EnvFilter directives, e.g. "info,eva=debug"; RUST_LOG overrides when set
    pub log_filter: String,
    /// OTLP/gRPC collector endpoint (e.g. http://127.0.0.1:4317); traces are exported only when
    /// set (an empty string counts as unset)
    pub otlp_endpoint: Option<String>,
    /// share of traces kept, 0.0–1.0
    pub sample_ratio: f64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            log_format: LogFormat::Pretty,
            log_filter: "info,opentelemetry=warn,opentelemetry_sdk=warn".to_owned(),
            otlp_endpoint: None,
            sample_ratio: 1.0,
        }
    }
}

impl TelemetryConfig {
    /// Checks every field; the message names the offending key, e.g.
    /// `telemetry.sample_ratio must be between 0 and 1, got 2`.
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            return Err(format!(
                "telemetry.sample_ratio must be between 0 and 1, got {}",
                self.sample_ratio
            ));
        }
        if self.log_filter.trim().is_empty() {
            return Err("telemetry.log_filter must not be empty (e.g. \"info\" or \"off\")".into());
        }
        if let Err(error) = EnvFilter::builder().parse(&self.log_filter) {
            return Err(format!(
                "telemetry.log_filter is not a valid filter ({error}), got {:?}",
                self.log_filter
            ));
        }
        if let Some(endpoint) = self.endpoint() {
            validate_endpoint(endpoint)?;
        }
        Ok(())
    }

    /// The OTLP endpoint when one is configured (blank counts as unset).
    pub(crate) fn endpoint(&self) -> Option<&str> {
        self.otlp_endpoint
            .as_deref()
            .map(str::trim)
            .filter(|endpoint| !endpoint.is_empty())
    }
}

fn validate_endpoint(endpoint: &str) -> Result<(), String> {
    let invalid = |why: &str| {
        format!(
            "telemetry.otlp_endpoint must be an http URL such as http://127.0.0.1:4317 ({why}), got {endpoint:?}"
        )
    };
    let url = url::Url::parse(endpoint).map_err(|error| invalid(&error.to_string()))?;
    match url.scheme() {
        "http" => {}
        // The OTLP exporter is built without a TLS stack: it would refuse the endpoint at start-up.
        "https" => {
            return Err(invalid(
                "https is not supported by this build; send to a local collector over http",
            ));
        }
        other => return Err(invalid(&format!("unsupported scheme {other:?}"))),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("no host"));
    }
    Ok(())
}
