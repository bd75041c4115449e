//! Configuration: defaults in code, then a TOML file, then `EVA__SECTION__KEY`
//! environment variables. Unknown keys and bad values fail at start with one
//! line naming the key.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::telemetry::TelemetryConfig;

/// Everything an EVA process can be told. One file serves the all-in-one
/// `eva up` and a single service started with `eva serve <service>`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the all-in-one keeps its SQLite files, the local NATS store and
    /// the generated key-encryption key.
    pub data_dir: PathBuf,
    pub telemetry: TelemetryConfig,
    pub metrics: MetricsConfig,
    pub bus: BusConfig,
    pub auth: AuthConfig,
    pub keys: KeysConfig,
    pub identity: ServiceConfig,
    pub diagnostics: DiagnosticsConfig,
    pub referrals: ReferralsConfig,
    pub community: ServiceConfig,
    pub statistics: StatisticsConfig,
    pub gateway: GatewayConfig,
    pub federation: FederationConfig,
}

/// This server's place in the federation of association boxes (see
/// [`crate::federation`]).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct FederationConfig {
    /// `off`, `hub` (the département) or `box` (an association).
    pub role: FederationRole,
    /// This server's JetStream domain (`jetstream.domain` of its nats-server).
    pub domain: String,
    /// The hub's JetStream domain (a box's setting).
    pub hub_domain: String,
    /// The boxes' JetStream domains whose partner and statistics events the hub gathers
    /// (the hub's).
    pub boxes: Vec<String>,
    /// Ids of the structures this box hosts, whose referrals from other boxes it
    /// receives (a box's).
    pub structures: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FederationRole {
    #[default]
    Off,
    Hub,
    Box,
}

impl Default for FederationConfig {
    fn default() -> Self {
        Self {
            role: FederationRole::Off,
            domain: String::new(),
            hub_domain: "hub".into(),
            boxes: Vec::new(),
            structures: Vec::new(),
        }
    }
}

impl FederationConfig {
    /// Domains are NATS subject tokens (`$JS.<domain>.API`); structure ids UUIDs.
    fn validate(&self) -> Result<(), (String, String)> {
        let domain = |key: &str, value: &str| {
            let ok = !value.is_empty()
                && value.len() <= 64
                && value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if ok {
                Ok(())
            } else {
                Err((
                    key.to_owned(),
                    format!(
                        "`{value}` : lettres, chiffres, - et _ seulement (1 à 64) / letters, digits, - and _ only (1 to 64)"
                    ),
                ))
            }
        };
        match self.role {
            FederationRole::Off => return Ok(()),
            FederationRole::Hub => {
                domain("federation.domain", &self.domain)?;
                if self.boxes.is_empty() {
                    return Err((
                        "federation.boxes".into(),
                        "au moins un domaine de box / at least one box domain".into(),
                    ));
                }
                let mut seen = std::collections::HashSet::new();
                for b in &self.boxes {
                    domain("federation.boxes", b)?;
                    if b == &self.domain || !seen.insert(b) {
                        return Err((
                            "federation.boxes".into(),
                            format!(
                                "`{b}` : en double ou égal à federation.domain / duplicate or equal to federation.domain"
                            ),
                        ));
                    }
                }
            }
            FederationRole::Box => {
                domain("federation.domain", &self.domain)?;
                domain("federation.hub_domain", &self.hub_domain)?;
                if self.domain == self.hub_domain {
                    return Err((
                        "federation.domain".into(),
                        "doit différer de federation.hub_domain / must differ from federation.hub_domain".into(),
                    ));
                }
                if self.structures.is_empty() {
                    return Err((
                        "federation.structures".into(),
                        "au moins une structure de la box / at least one of the box's structures"
                            .into(),
                    ));
                }
                for id in &self.structures {
                    if uuid::Uuid::parse_str(id).is_err() {
                        return Err((
                            "federation.structures".into(),
                            format!("`{id}` n'est pas un UUID / is not a UUID"),
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

/// Prometheus scrape endpoint of the process.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Serve `GET /metrics` at all.
    pub enabled: bool,
    /// Address of `GET /metrics`.
    pub listen: SocketAddr,
}

impl MetricsConfig {
    /// Where to serve metrics, if anywhere.
    pub fn address(&self) -> Option<SocketAddr> {
        self.enabled.then_some(self.listen)
    }
}

/// NATS JetStream connection and the outbox relay.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BusConfig {
    /// `nats://host:port` (comma-separated for a cluster). Absent: `eva up`
    /// starts a local nats-server with its store under `data_dir/nats`.
    pub url: Option<String>,
    /// nats-server binary `eva up` starts when no `url` is set; absent:
    /// `$EVA_NATS_SERVER`, then `.tools/bin/nats-server`, then `PATH`.
    pub nats_server: Option<PathBuf>,
    /// NATS credentials file (central deployments, partners).
    pub credentials: Option<PathBuf>,
    /// Stream replicas: 1 on a box, 3 on the département's cluster.
    pub replicas: usize,
    /// How long to wait for NATS at start before giving up.
    pub connect_timeout_ms: u64,
    /// Outbox rows published per batch.
    pub outbox_batch: usize,
    /// Fallback poll of the outbox when no local commit woke the relay
    /// (another process wrote it, or the relay restarted).
    pub outbox_poll_ms: u64,
}

/// Tokens: who issues them and for whom.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// `iss` of EVA's access tokens.
    pub issuer: String,
    /// `aud` of EVA's access tokens.
    pub audience: String,
    /// Lifetime of an access token, in seconds.
    pub access_token_ttl_secs: u64,
}

/// The key-encryption key that wraps every per-person data key.
#[derive(Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeysConfig {
    /// Base64 of 32 random bytes. Prefer `kek_file` or the
    /// `EVA__KEYS__KEK` variable from a secret store.
    pub kek: Option<String>,
    /// File holding the base64 key. Absent with `kek` absent: `eva up`
    /// generates `data_dir/kek.key` on first start.
    pub kek_file: Option<PathBuf>,
}

impl std::fmt::Debug for KeysConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeysConfig")
            .field("kek", &self.kek.as_ref().map(|_| "<hidden>"))
            .field("kek_file", &self.kek_file)
            .finish()
    }
}

/// One gRPC service: where it listens, where others reach it, its database.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// Address the gRPC server binds.
    pub listen: SocketAddr,
    /// How the gateway and other services reach it (`http://host:port`).
    pub endpoint: String,
    /// `sqlite://path` or `postgres://…`. Absent: `data_dir/<service>.db`.
    pub database_url: Option<String>,
    /// Database pool size.
    #[serde(default = "default_pool")]
    pub max_connections: u32,
}

/// The diagnostics service: a service like the others, plus where to find
/// référentiel versions added or replaced by the operator.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DiagnosticsConfig {
    /// Address the gRPC server binds.
    pub listen: SocketAddr,
    /// How the gateway and other services reach it (`http://host:port`).
    pub endpoint: String,
    /// `sqlite://path` or `postgres://…`. Absent: `data_dir/diagnostics.db`.
    pub database_url: Option<String>,
    /// Database pool size.
    #[serde(default = "default_pool")]
    pub max_connections: u32,
    /// Folder of référentiel files (`*.toml`) read at start, beside the
    /// versions built into EVA; a file with the version label of a built-in
    /// one replaces it. Absent: the built-in versions only.
    #[serde(default)]
    pub referentiel_dir: Option<PathBuf>,
}

impl DiagnosticsConfig {
    /// Loopback defaults of the all-in-one box.
    pub fn local(port: u16) -> Self {
        let svc = ServiceConfig::local(port);
        Self {
            listen: svc.listen,
            endpoint: svc.endpoint,
            database_url: svc.database_url,
            max_connections: svc.max_connections,
            referentiel_dir: None,
        }
    }

    /// Its listening, endpoint and database settings, as for every service.
    pub fn service(&self) -> ServiceConfig {
        ServiceConfig {
            listen: self.listen,
            endpoint: self.endpoint.clone(),
            database_url: self.database_url.clone(),
            max_connections: self.max_connections,
        }
    }
}

impl std::fmt::Debug for DiagnosticsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiagnosticsConfig")
            .field("listen", &self.listen)
            .field("endpoint", &self.endpoint)
            .field(
                "database_url",
                &self.database_url.as_deref().map(crate::db::redact),
            )
            .field("max_connections", &self.max_connections)
            .field("referentiel_dir", &self.referentiel_dir)
            .finish()
    }
}

/// The statistics service: a service like the others, plus its disclosure
/// rule.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StatisticsConfig {
    /// Address the gRPC server binds.
    pub listen: SocketAddr,
    /// How the gateway and other services reach it (`http://host:port`).
    pub endpoint: String,
    /// `sqlite://path` or `postgres://…`. Absent: `data_dir/statistics.db`.
    pub database_url: Option<String>,
    /// Database pool size.
    #[serde(default = "default_pool")]
    pub max_connections: u32,
    /// Smallest count published; cells under it are suppressed, with
    /// complementary cells so that totals do not reveal them.
    pub disclosure_threshold: i64,
}

impl StatisticsConfig {
    /// Loopback defaults of the all-in-one box.
    pub fn local(port: u16) -> Self {
        let svc = ServiceConfig::local(port);
        Self {
            listen: svc.listen,
            endpoint: svc.endpoint,
            database_url: svc.database_url,
            max_connections: svc.max_connections,
            disclosure_threshold: 11,
        }
    }

    /// Its listening, endpoint and database settings, as for every service.
    pub fn service(&self) -> ServiceConfig {
        ServiceConfig {
            listen: self.listen,
            endpoint: self.endpoint.clone(),
            database_url: self.database_url.clone(),
            max_connections: self.max_connections,
        }
    }
}

impl std::fmt::Debug for StatisticsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatisticsConfig")
            .field("listen", &self.listen)
            .field("endpoint", &self.endpoint)
            .field(
                "database_url",
                &self.database_url.as_deref().map(crate::db::redact),
            )
            .field("max_connections", &self.max_connections)
            .field("disclosure_threshold", &self.disclosure_threshold)
            .finish()
    }
}

/// The referrals service: a service like the others, plus its deadlines and
/// how it calls partners' webhooks.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReferralsConfig {
    /// Address the gRPC server binds.
    pub listen: SocketAddr,
    /// How the gateway and other services reach it (`http://host:port`).
    pub endpoint: String,
    /// `sqlite://path` or `postgres://…`. Absent: `data_dir/referrals.db`.
    pub database_url: Option<String>,
    /// Database pool size.
    #[serde(default = "default_pool")]
    pub max_connections: u32,
    /// Days without an answer before the receiver is reminded.
    pub reminder_after_days: u32,
    /// Days without an answer before the referral expires.
    pub expiry_after_days: u32,
    /// How often the scheduler looks for due reminders, expiries and webhook
    /// deliveries, in milliseconds.
    pub scheduler_poll_ms: u64,
    /// Deadline of one webhook call, in milliseconds.
    pub webhook_timeout_ms: u64,
    /// Attempts of one webhook delivery before it is marked failed.
    pub webhook_max_attempts: u32,
    /// Wait before the first retry, in milliseconds; doubled at each retry.
    pub webhook_backoff_ms: u64,
    /// Longest wait between two retries, in milliseconds.
    pub webhook_max_backoff_ms: u64,
}

impl ReferralsConfig {
    /// Loopback defaults of the all-in-one box.
    pub fn local(port: u16) -> Self {
        let svc = ServiceConfig::local(port);
        Self {
            listen: svc.listen,
            endpoint: svc.endpoint,
            database_url: svc.database_url,
            max_connections: svc.max_connections,
            reminder_after_days: 10,
            expiry_after_days: 30,
            scheduler_poll_ms: 5_000,
            webhook_timeout_ms: 10_000,
            webhook_max_attempts: 8,
            webhook_backoff_ms: 30_000,
            webhook_max_backoff_ms: 6 * 3_600_000,
        }
    }

    /// Its listening, endpoint and database settings, as for every service.
    pub fn service(&self) -> ServiceConfig {
        ServiceConfig {
            listen: self.listen,
            endpoint: self.endpoint.clone(),
            database_url: self.database_url.clone(),
            max_connections: self.max_connections,
        }
    }
}

impl std::fmt::Debug for ReferralsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReferralsConfig")
            .field("listen", &self.listen)
            .field("endpoint", &self.endpoint)
            .field(
                "database_url",
                &self.database_url.as_deref().map(crate::db::redact),
            )
            .field("max_connections", &self.max_connections)
            .field("reminder_after_days", &self.reminder_after_days)
            .field("expiry_after_days", &self.expiry_after_days)
            .field("scheduler_poll_ms", &self.scheduler_poll_ms)
            .field("webhook_timeout_ms", &self.webhook_timeout_ms)
            .field("webhook_max_attempts", &self.webhook_max_attempts)
            .field("webhook_backoff_ms", &self.webhook_backoff_ms)
            .field("webhook_max_backoff_ms", &self.webhook_max_backoff_ms)
            .finish()
    }
}

// Passwords in URLs never reach logs or `eva check-config`.
impl std::fmt::Debug for BusConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BusConfig")
            .field("url", &self.url.as_deref().map(redact_list))
            .field("nats_server", &self.nats_server)
            .field("credentials", &self.credentials)
            .field("replicas", &self.replicas)
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .field("outbox_batch", &self.outbox_batch)
            .field("outbox_poll_ms", &self.outbox_poll_ms)
            .finish()
    }
}

impl std::fmt::Debug for ServiceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceConfig")
            .field("listen", &self.listen)
            .field("endpoint", &self.endpoint)
            .field(
                "database_url",
                &self.database_url.as_deref().map(crate::db::redact),
            )
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

/// Comma-separated URLs with their passwords hidden.
pub fn redact_list(urls: &str) -> String {
    urls.split(',')
        .map(|u| crate::db::redact(u.trim()))
        .collect::<Vec<_>>()
        .join(",")
}

fn default_pool() -> u32 {
    8
}

/// The HTTP gateway.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// Address of the public HTTP API.
    pub listen: SocketAddr,
    /// Deadline of one call from the gateway to a service, in milliseconds.
    pub request_timeout_ms: u64,
    /// Steady rate of requests from one client IP address, per minute (a
    /// token bucket); 0: no per-address limit.
    pub rate_limit_ip_per_minute: u32,
    /// Requests one client IP address may make at once above the steady rate.
    pub rate_limit_ip_burst: u32,
    /// Steady rate of requests with one `Authorization` value, per minute; 0:
    /// no per-user limit.
    pub rate_limit_user_per_minute: u32,
    /// Requests with one `Authorization` value at once above the steady rate.
    pub rate_limit_user_burst: u32,
    /// Reverse proxies (addresses or CIDR blocks) whose `X-Forwarded-For` the
    /// gateway believes to find the client's address.
    pub trusted_proxies: Vec<String>,
    /// Browser origins (`scheme://host[:port]`) allowed to call the API
    /// (CORS); empty: no CORS headers at all.
    pub cors_allowed_origins: Vec<String>,
}

/// An IP address or a CIDR block (`10.0.0.0/8`, `fd00::/8`, `192.0.2.7`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    pub fn parse(value: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "`{value}` : une adresse IP ou un bloc CIDR (10.0.0.0/8) / an IP address or a CIDR block (10.0.0.0/8)"
            )
        };
        let (addr, prefix) = match value.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (value.trim(), None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let addr = addr.to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
            None => max,
        };
        Ok(Self { addr, prefix })
    }

    /// Whether `ip` (an IPv4-mapped IPv6 address counts as IPv4) is in the block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Largest rate or burst of a rate limit.
const RATE_LIMIT_MAX: u32 = 1_000_000;

impl GatewayConfig {
    /// The trusted proxies, parsed (valid once [`Config::validate`] passed).
    pub fn trusted_proxy_nets(&self) -> Result<Vec<IpNet>, (String, String)> {
        self.trusted_proxies
            .iter()
            .map(|p| IpNet::parse(p).map_err(|m| ("gateway.trusted_proxies".to_owned(), m)))
            .collect()
    }

    fn validate(&self) -> Result<(), (String, String)> {
        for (rate_key, rate, burst_key, burst) in [
            (
                "gateway.rate_limit_ip_per_minute",
                self.rate_limit_ip_per_minute,
                "gateway.rate_limit_ip_burst",
                self.rate_limit_ip_burst,
            ),
            (
                "gateway.rate_limit_user_per_minute",
                self.rate_limit_user_per_minute,
                "gateway.rate_limit_user_burst",
                self.rate_limit_user_burst,
            ),
        ] {
            if rate > RATE_LIMIT_MAX {
                return Err((
                    rate_key.into(),
                    format!(
                        "au plus {RATE_LIMIT_MAX} (0 : sans limite) / at most {RATE_LIMIT_MAX} (0: no limit)"
                    ),
                ));
            }
            if rate > 0 && !(1..=RATE_LIMIT_MAX).contains(&burst) {
                return Err((
                    burst_key.into(),
                    format!(
                        "entre 1 et {RATE_LIMIT_MAX} quand {rate_key} est défini / between 1 and {RATE_LIMIT_MAX} when {rate_key} is set"
                    ),
                ));
            }
        }
        self.trusted_proxy_nets()?;
        for origin in &self.cors_allowed_origins {
            check_origin(origin).map_err(|m| ("gateway.cors_allowed_origins".to_owned(), m))?;
        }
        Ok(())
    }
}

/// A browser origin exactly as browsers send it: `scheme://host[:port]`.
fn check_origin(value: &str) -> Result<(), String> {
    let bad = |why: &str| {
        format!(
            "`{value}` : {why} ; une origine est schéma://hôte[:port], ex. https://eva.example.org / an origin is scheme://host[:port], e.g. https://eva.example.org"
        )
    };
    if value.contains('*') {
        return Err(bad("pas de joker * / no * wildcard"));
    }
    let url = url::Url::parse(value).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("schéma http ou https / scheme http or https"));
    }
    let origin = url.origin().ascii_serialization();
    if origin != value {
        return Err(bad(&format!(
            "sans chemin ni barre finale, en minuscules : `{origin}` / no path nor trailing slash, lower case: `{origin}`"
        )));
    }
    Ok(())
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("data"),
            telemetry: TelemetryConfig::default(),
            metrics: MetricsConfig::default(),
            bus: BusConfig::default(),
            auth: AuthConfig::default(),
            keys: KeysConfig::default(),
            identity: ServiceConfig::local(50051),
            diagnostics: DiagnosticsConfig::local(50052),
            referrals: ReferralsConfig::local(50053),
            community: ServiceConfig::local(50054),
            statistics: StatisticsConfig::local(50055),
            gateway: GatewayConfig::default(),
            federation: FederationConfig::default(),
        }
    }
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 9464)),
        }
    }
}

impl Default for BusConfig {
    fn default() -> Self {
        Self {
            url: None,
            nats_server: None,
            credentials: None,
            replicas: 1,
            connect_timeout_ms: 5_000,
            outbox_batch: 256,
            outbox_poll_ms: 500,
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            issuer: "eva".into(),
            audience: "eva".into(),
            access_token_ttl_secs: 900,
        }
    }
}

impl ServiceConfig {
    /// Loopback defaults of the all-in-one box.
    pub fn local(port: u16) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], port)),
            endpoint: format!("http://127.0.0.1:{port}"),
            database_url: None,
            max_connections: default_pool(),
        }
    }

    /// The database URL, defaulting to a SQLite file in the data directory.
    pub fn database_url(&self, data_dir: &Path, service: &str) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!(
                "sqlite://{}?mode=rwc",
                data_dir.join(format!("{service}.db")).display()
            ),
        }
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            request_timeout_ms: 10_000,
            rate_limit_ip_per_minute: 1_200,
            rate_limit_ip_burst: 300,
            rate_limit_user_per_minute: 600,
            rate_limit_user_burst: 200,
            trusted_proxies: Vec::new(),
            cors_allowed_origins: Vec::new(),
        }
    }
}

/// A configuration that cannot be used; the message names the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(String),
    #[error("configuration: `{key}`: {message}")]
    Invalid { key: String, message: String },
}

impl Config {
    /// Loads defaults, then `file` (if given), then `EVA__…` variables, and
    /// validates the result.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(file, std::env::vars())
    }

    /// As [`Config::load`], with the environment given (tests).
    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let defaults = config::Config::try_from(&Config::default())
            .map_err(|e| ConfigError::Load(e.to_string()))?;
        let mut builder = config::Config::builder().add_source(defaults);
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError::Load(format!(
                    "file {} does not exist",
                    path.display()
                )));
            }
            builder = builder.add_source(
                config::File::from(path)
                    .format(config::FileFormat::Toml)
                    .required(true),
            );
        }
        let env: config::Map<String, String> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with("EVA__"))
            .collect();
        builder = builder.add_source(
            config::Environment::with_prefix("EVA")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .source(Some(env)),
        );
        let cfg: Config = builder
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| ConfigError::Load(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks what serde cannot: URL schemes, ranges, coherence.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, message: String| ConfigError::Invalid {
            key: key.into(),
            message,
        };
        self.telemetry.validate().map_err(|m| bad("telemetry", m))?;
        if let Some(url) = &self.bus.url {
            for part in url.split(',') {
                check_url(part.trim(), &["nats", "tls", "ws", "wss"])
                    .map_err(|m| bad("bus.url", m))?;
            }
        }
        if !(1..=5).contains(&self.bus.replicas) {
            return Err(bad(
                "bus.replicas",
                format!("must be between 1 and 5, got {}", self.bus.replicas),
            ));
        }
        if self.bus.outbox_batch == 0 || self.bus.outbox_batch > 10_000 {
            return Err(bad(
                "bus.outbox_batch",
                format!("must be between 1 and 10000, got {}", self.bus.outbox_batch),
            ));
        }
        if self.auth.access_token_ttl_secs < 30 || self.auth.access_token_ttl_secs > 86_400 {
            return Err(bad(
                "auth.access_token_ttl_secs",
                "must be between 30 and 86400 seconds".into(),
            ));
        }
        if self.keys.kek.is_some() && self.keys.kek_file.is_some() {
            return Err(bad(
                "keys",
                "set either keys.kek or keys.kek_file, not both".into(),
            ));
        }
        if let Some(kek) = &self.keys.kek {
            crate::crypto::Kek::from_base64(kek).map_err(|e| bad("keys.kek", e.to_string()))?;
        }
        if !(2..=1_000).contains(&self.statistics.disclosure_threshold) {
            return Err(bad(
                "statistics.disclosure_threshold",
                "must be between 2 and 1000".into(),
            ));
        }
        let r = &self.referrals;
        if r.reminder_after_days == 0 || r.reminder_after_days >= r.expiry_after_days {
            return Err(bad(
                "referrals.reminder_after_days",
                format!(
                    "must be at least 1 and less than referrals.expiry_after_days ({})",
                    r.expiry_after_days
                ),
            ));
        }
        if r.expiry_after_days > 365 {
            return Err(bad(
                "referrals.expiry_after_days",
                "must be at most 365".into(),
            ));
        }
        if r.scheduler_poll_ms < 10 || r.scheduler_poll_ms > 3_600_000 {
            return Err(bad(
                "referrals.scheduler_poll_ms",
                "must be between 10 and 3600000".into(),
            ));
        }
        if r.webhook_timeout_ms < 100 || r.webhook_timeout_ms > 120_000 {
            return Err(bad(
                "referrals.webhook_timeout_ms",
                "must be between 100 and 120000".into(),
            ));
        }
        if r.webhook_max_attempts == 0 || r.webhook_max_attempts > 50 {
            return Err(bad(
                "referrals.webhook_max_attempts",
                "must be between 1 and 50".into(),
            ));
        }
        if r.webhook_backoff_ms == 0 || r.webhook_backoff_ms > r.webhook_max_backoff_ms {
            return Err(bad(
                "referrals.webhook_backoff_ms",
                "must be at least 1 and at most referrals.webhook_max_backoff_ms".into(),
            ));
        }
        self.federation
            .validate()
            .map_err(|(key, message)| bad(&key, message))?;
        self.gateway
            .validate()
            .map_err(|(key, message)| bad(&key, message))?;
        let diagnostics = self.diagnostics.service();
        let referrals = self.referrals.service();
        let statistics = self.statistics.service();
        for (name, svc) in [
            ("identity", &self.identity),
            ("diagnostics", &diagnostics),
            ("referrals", &referrals),
            ("community", &self.community),
            ("statistics", &statistics),
        ] {
            check_url(&svc.endpoint, &["http", "https"])
                .map_err(|m| bad(&format!("{name}.endpoint"), m))?;
            if let Some(url) = &svc.database_url {
                check_url(url, &["sqlite", "postgres", "postgresql"])
                    .map_err(|m| bad(&format!("{name}.database_url"), m))?;
            }
            if svc.max_connections == 0 {
                return Err(bad(
                    &format!("{name}.max_connections"),
                    "must be at least 1".into(),
                ));
            }
        }
        Ok(())
    }
}

fn check_url(value: &str, schemes: &[&str]) -> Result<(), String> {
    let url = url::Url::parse(value).map_err(|e| format!("`{value}` is not a URL ({e})"))?;
    if !schemes.contains(&url.scheme()) {
        return Err(format!(
            "`{value}`: scheme must be one of {}",
            schemes.join(", ")
        ));
    }
    Ok(())
}
