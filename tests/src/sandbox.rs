//! The whole system in one test process: a real nats-server, real databases
//! (SQLite files or a real PostgreSQL cluster), every service on a port-0
//! gRPC listener and the gateway on a port-0 HTTP listener.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use eva_platform::auth::Role;
use eva_platform::{Clock, Config, Shutdown};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::nats::NatsServer;
use crate::partners::NatsAccounts;
use crate::postgres::PgCluster;

/// Which database every service uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// `N` is what carries the bus: one [`NatsServer`], or a
/// [`crate::cluster::NatsCluster`] (whose nodes the test kills and restarts).
pub struct Sandbox<N = NatsServer> {
    pub nats: N,
    pub pg: Option<PgCluster>,
    pub config: Arc<Config>,
    /// `http://127.0.0.1:<port>` of the gateway.
    pub gateway: String,
    pub http: reqwest::Client,
    /// The clock the referrals scheduler runs on; `advance` makes days pass.
    pub clock: Clock,
    shutdown: Shutdown,
    /// Stops the referrals service alone (see [`Sandbox::restart_referrals`]).
    referrals_shutdown: Shutdown,
    tasks: Vec<(&'static str, JoinHandle<Result<()>>)>,
    _dir: tempfile::TempDir,
}

async fn local() -> Result<(TcpListener, String)> {
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    Ok((l, addr.to_string()))
}

impl Sandbox {
    pub async fn start(backend: Backend) -> Result<Self> {
        let nats = NatsServer::start().await?;
        Self::start_on(nats, backend).await
    }

    /// Starts the services against an already running nats-server.
    pub async fn start_on(nats: NatsServer, backend: Backend) -> Result<Self> {
        let bus_url = nats.url();
        Self::start_on_url(nats, bus_url, backend).await
    }

    /// Starts the services on a nats-server with authentication, from accounts that
    /// hold the services' user alone (bcrypt cost 4); the services connect as that user
    /// (credentials in `bus.url`). Partners get their users later with
    /// [`NatsAccounts::add_partners`] on `sandbox.nats`, which reloads the server.
    pub async fn start_with_accounts(backend: Backend) -> Result<(Self, NatsAccounts)> {
        let accounts = NatsAccounts::new()?;
        let nats = accounts.start_server().await?;
        let bus_url =
            nats.url_with_credentials(accounts.services_user(), accounts.services_password());
        let sandbox = Self::start_on_url(nats, bus_url, backend).await?;
        Ok((sandbox, accounts))
    }

    /// Starts a nats-server and the services with `configure` applied to
    /// their configuration last (a lower disclosure threshold, say).
    pub async fn start_with(backend: Backend, configure: impl FnOnce(&mut Config)) -> Result<Self> {
        let nats = NatsServer::start().await?;
        let bus_url = nats.url();
        Self::start_configured(nats, bus_url, backend, configure).await
    }

    /// Starts the services against an already running nats-server, reached at
    /// `bus_url` (which may carry a user and password).
    pub async fn start_on_url(nats: NatsServer, bus_url: String, backend: Backend) -> Result<Self> {
        Self::start_configured(nats, bus_url, backend, |_| {}).await
    }
}

impl<N> Sandbox<N> {
    /// Starts the services on a bus `nats` carries (a server, a cluster), reached at
    /// `bus_url`, with `configure` applied to their configuration last.
    pub async fn start_configured(
        nats: N,
        bus_url: String,
        backend: Backend,
        configure: impl FnOnce(&mut Config),
    ) -> Result<Self> {
        init_test_logs();
        let dir = tempfile::tempdir()?;
        let mut config = Config {
            data_dir: dir.path().to_owned(),
            ..Config::default()
        };
        config.metrics.enabled = false;
        config.bus.url = Some(bus_url);
        config.keys.kek = Some(eva_platform::crypto::Kek::generate_base64());
        // Days pass by `clock.advance`; the scheduler must notice quickly.
        config.referrals.scheduler_poll_ms = 100;
        let pg = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => {
                let pg = PgCluster::start().await?;
                config.identity.database_url = Some(pg.create_database("identity").await?);
                config.statistics.database_url = Some(pg.create_database("statistics").await?);
                config.diagnostics.database_url = Some(pg.create_database("diagnostics").await?);
                config.referrals.database_url = Some(pg.create_database("referrals").await?);
                config.community.database_url = Some(pg.create_database("community").await?);
                Some(pg)
            }
        };
        let (identity_l, identity_addr) = local().await?;
        let (statistics_l, statistics_addr) = local().await?;
        let (diagnostics_l, diagnostics_addr) = local().await?;
        let (referrals_l, referrals_addr) = local().await?;
        let (community_l, community_addr) = local().await?;
        let (gateway_l, gateway_addr) = local().await?;
        config.identity.listen = identity_addr.parse()?;
        config.identity.endpoint = format!("http://{identity_addr}");
        config.statistics.listen = statistics_addr.parse()?;
        config.statistics.endpoint = format!("http://{statistics_addr}");
        config.diagnostics.listen = diagnostics_addr.parse()?;
        config.diagnostics.endpoint = format!("http://{diagnostics_addr}");
        config.referrals.listen = referrals_addr.parse()?;
        config.referrals.endpoint = format!("http://{referrals_addr}");
        config.community.listen = community_addr.parse()?;
        config.community.endpoint = format!("http://{community_addr}");
        config.gateway.listen = gateway_addr.parse()?;
        // Tests and benchmarks send bursts from one address as one user: no rate
        // limit unless a test sets one (tests/tests/system/gateway_limits.rs).
        config.gateway.rate_limit_ip_per_minute = 0;
        config.gateway.rate_limit_user_per_minute = 0;
        configure(&mut config);
        config.validate()?;
        let config = Arc::new(config);
        let shutdown = Shutdown::new();
        let clock = Clock::system();
        let mut tasks: Vec<(&'static str, JoinHandle<Result<()>>)> = Vec::new();
        let (c, s) = (config.clone(), shutdown.clone());
        tasks.push((
            "identity",
            tokio::spawn(async move { Ok(eva_identity::run(c, identity_l, s).await?) }),
        ));
        let (c, s) = (config.clone(), shutdown.clone());
        tasks.push((
            "statistics",
            tokio::spawn(async move { Ok(eva_statistics::run(c, statistics_l, s).await?) }),
        ));
        let (c, s) = (config.clone(), shutdown.clone());
        tasks.push((
            "diagnostics",
            tokio::spawn(async move { Ok(eva_diagnostics::run(c, diagnostics_l, s).await?) }),
        ));
        let referrals_shutdown = shutdown.child();
        let (c, s, k) = (config.clone(), referrals_shutdown.clone(), clock.clone());
        tasks.push((
            "referrals",
            tokio::spawn(
                async move { Ok(eva_referrals::run_with_clock(c, referrals_l, s, k).await?) },
            ),
        ));
        let (c, s) = (config.clone(), shutdown.clone());
        tasks.push((
            "community",
            tokio::spawn(async move { Ok(eva_community::run(c, community_l, s).await?) }),
        ));
        let (c, s) = (config.clone(), shutdown.clone());
        tasks.push((
            "gateway",
            tokio::spawn(async move { Ok(eva_gateway::run(c, gateway_l, s).await?) }),
        ));
        let sandbox = Self {
            nats,
            pg,
            config,
            gateway: format!("http://{gateway_addr}"),
            http: reqwest::Client::new(),
            clock,
            shutdown,
            referrals_shutdown,
            tasks,
            _dir: dir,
        };
        // A first start on a cluster creates replicated streams, slow on a loaded machine.
        if let Err(error) = sandbox.wait_ready(Duration::from_secs(60)).await {
            return Err(sandbox.why_stopped(error).await);
        }
        Ok(sandbox)
    }

    /// `error`, with the error of every service that stopped.
    async fn why_stopped(mut self, mut error: anyhow::Error) -> anyhow::Error {
        for (name, task) in self.tasks.drain(..) {
            if task.is_finished() {
                let why = match task.await {
                    Ok(Ok(())) => "stopped without an error".to_owned(),
                    Ok(Err(e)) => format!("{e:#}"),
                    Err(e) => format!("panicked: {e}"),
                };
                error = error.context(format!("{name}: {why}"));
            }
        }
        error
    }

    /// Polls `/readyz` until it answers 200.
    pub async fn wait_ready(&self, within: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        loop {
            for (name, task) in &self.tasks {
                if task.is_finished() {
                    bail!("{name} stopped during start-up");
                }
            }
            if let Ok(r) = self
                .http
                .get(format!("{}/readyz", self.gateway))
                .send()
                .await
                && r.status().is_success()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                let body = match self
                    .http
                    .get(format!("{}/readyz", self.gateway))
                    .send()
                    .await
                {
                    Ok(r) => r.text().await.unwrap_or_default(),
                    Err(e) => e.to_string(),
                };
                bail!("not ready within {within:?}: {body}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the referrals service, waits for it to drain, and starts it
    /// again on the same address, database and clock: what a restart of
    /// that process does.
    pub async fn restart_referrals(&mut self) -> Result<()> {
        self.referrals_shutdown.trigger();
        let i = self
            .tasks
            .iter()
            .position(|(n, _)| *n == "referrals")
            .context("referrals is not running")?;
        let (_, task) = self.tasks.remove(i);
        match tokio::time::timeout(Duration::from_secs(20), task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => bail!("referrals stopped with an error: {e:#}"),
            Ok(Err(e)) => bail!("referrals panicked: {e}"),
            Err(_) => bail!("referrals did not stop within 20 s"),
        }
        let addr = self.config.referrals.listen;
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match TcpListener::bind(addr).await {
                Ok(l) => break l,
                Err(e) if Instant::now() < deadline => {
                    tracing::debug!(error = %e, "referrals port not free yet");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => bail!("cannot listen again on {addr}: {e}"),
            }
        };
        self.referrals_shutdown = self.shutdown.child();
        let (c, s, k) = (
            self.config.clone(),
            self.referrals_shutdown.clone(),
            self.clock.clone(),
        );
        self.tasks.push((
            "referrals",
            tokio::spawn(
                async move { Ok(eva_referrals::run_with_clock(c, listener, s, k).await?) },
            ),
        ));
        self.wait_ready(Duration::from_secs(30)).await
    }

    /// A token for `roles`, signed with identity's key.
    pub async fn token(
        &self,
        subject: &str,
        roles: Vec<Role>,
        structures: Vec<String>,
    ) -> Result<String> {
        eva_identity::issue_token(
            &self.config,
            subject,
            roles,
            structures,
            Duration::from_secs(600),
        )
        .await
        .context("issuing a test token")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.gateway, path)
    }

    /// Stops every service and waits for them to drain.
    pub async fn stop(mut self) -> Result<()> {
        self.shutdown.trigger();
        for (name, task) in self.tasks.drain(..) {
            match tokio::time::timeout(Duration::from_secs(20), task).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => bail!("{name} stopped with an error: {e:#}"),
                Ok(Err(e)) => bail!("{name} panicked: {e}"),
                Err(_) => bail!("{name} did not stop within 20 s"),
            }
        }
        self.shutdown.drain(Duration::from_secs(10)).await;
        Ok(())
    }
}

impl<N> Drop for Sandbox<N> {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

/// Telemetry as in production (trace context included); logs stay silent
/// unless `EVA_TEST_LOG` holds a filter (e.g. `debug`).
pub fn init_test_logs() {
    let cfg = eva_platform::telemetry::TelemetryConfig {
        log_filter: std::env::var("EVA_TEST_LOG").unwrap_or_else(|_| "off".into()),
        ..Default::default()
    };
    // A second sandbox in one process keeps the first subscriber.
    std::mem::forget(eva_platform::telemetry::init(&cfg, "tests"));
}
