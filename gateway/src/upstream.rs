//! gRPC clients of the services, and what every call carries: the caller's
//! token, the trace context, the request id and a deadline.

use std::time::Duration;

use axum::http::HeaderMap;
use eva_platform::Config;
use tonic::transport::{Channel, Endpoint};

/// One lazily connected channel per service, so the gateway starts before
/// the services listen and reconnects when they restart.
#[derive(Clone)]
pub struct Upstreams {
    pub identity: Channel,
    pub diagnostics: Channel,
    pub referrals: Channel,
    pub community: Channel,
    pub statistics: Channel,
    pub timeout: Duration,
}

impl Upstreams {
    pub fn connect(config: &Config) -> Result<Self, String> {
        let channel = |name: &str, url: &str| -> Result<Channel, String> {
            Ok(Endpoint::from_shared(url.to_owned())
                .map_err(|e| format!("{name}.endpoint `{url}`: {e}"))?
                .connect_timeout(Duration::from_secs(2))
                .tcp_nodelay(true)
                .connect_lazy())
        };
        Ok(Self {
            identity: channel("identity", &config.identity.endpoint)?,
            diagnostics: channel("diagnostics", &config.diagnostics.endpoint)?,
            referrals: channel("referrals", &config.referrals.endpoint)?,
            community: channel("community", &config.community.endpoint)?,
            statistics: channel("statistics", &config.statistics.endpoint)?,
            timeout: Duration::from_millis(config.gateway.request_timeout_ms),
        })
    }

    /// Every service, by name, for readiness.
    pub fn all(&self) -> [(&'static str, Channel); 5] {
        [
            ("identity", self.identity.clone()),
            ("diagnostics", self.diagnostics.clone()),
            ("referrals", self.referrals.clone()),
            ("community", self.community.clone()),
            ("statistics", self.statistics.clone()),
        ]
    }

    /// A gRPC request carrying what the HTTP request brought.
    pub fn request<T>(&self, headers: &HeaderMap, message: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(message);
        req.set_timeout(self.timeout);
        let md = req.metadata_mut();
        for name in ["authorization", "x-request-id"] {
            if let Some(v) = headers.get(name).and_then(|v| v.to_str().ok())
                && let Ok(v) = v.parse()
            {
                md.insert(name, v);
            }
        }
        eva_platform::telemetry::propagation::inject_grpc(md);
        req
    }
}
