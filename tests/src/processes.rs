//! The central deployment's shape on loopback: the real `eva` binary as one
//! OS process per service (`eva serve identity`, …, `eva serve gateway`),
//! configured only by `EVA__…` variables, sharing a data directory (one
//! SQLite file per service) and a real nats-server. Any process can be
//! killed with SIGKILL, frozen with SIGSTOP and restarted on its address and
//! data; each one's stderr goes to a log file whose tail [`Processes::logs`]
//! gives for failure messages.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use eva_platform::Config;
use eva_platform::auth::Role;
use eva_platform::bus::CloudEvent;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::time::{Instant, sleep, timeout};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::nats::{NatsServer, log_tail};
use crate::ports::free_port;

/// The gRPC services, in the order they start; the gateway starts last.
pub const SERVICES: [&str; 5] = [
    "identity",
    "diagnostics",
    "referrals",
    "community",
    "statistics",
];
pub const GATEWAY: &str = "gateway";

/// How long one process has to answer its health check after a (re)start.
const READY_DEADLINE: Duration = Duration::from_secs(60);
/// Attempts at starting the whole set when a port handed out by
/// [`free_port`] was taken meanwhile by another test process.
const START_ATTEMPTS: usize = 3;

/// Every service and the gateway as separate `eva` processes.
pub struct Processes {
    binary: PathBuf,
    pub nats: NatsServer,
    /// The configuration every process reads from its environment, parsed
    /// here the same way: for tokens, addresses and database paths.
    pub config: Config,
    /// `http://127.0.0.1:<port>` of the gateway.
    pub gateway: String,
    pub http: reqwest::Client,
    env: Vec<(String, String)>,
    children: BTreeMap<&'static str, Child>,
    dir: tempfile::TempDir,
}

impl Processes {
    /// Starts a nats-server, then every service, then the gateway, and waits
    /// until the gateway's `/readyz` answers 200.
    pub async fn start(binary: impl Into<PathBuf>) -> Result<Self> {
        Self::start_with(binary, &[]).await
    }

    /// As [`Processes::start`], with extra `EVA__…` variables given to every
    /// process (e.g. `EVA__GATEWAY__REQUEST_TIMEOUT_MS`).
    pub async fn start_with(binary: impl Into<PathBuf>, extra: &[(&str, &str)]) -> Result<Self> {
        let binary = binary.into();
        let nats = NatsServer::start().await?;
        let mut nats = Some(nats);
        let mut attempt = 1;
        loop {
            let mut p = Self::prepare(&binary, nats.take().context("nats-server")?, extra)?;
            match p.start_all().await {
                Ok(()) => return Ok(p),
                Err(e) if attempt < START_ATTEMPTS && p.port_was_taken() => {
                    tracing::warn!(error = %e, "a port was taken, starting again on new ports");
                    p.kill_all().await;
                    nats = Some(p.nats);
                    attempt += 1;
                }
                Err(e) => return Err(e.context(p.logs())),
            }
        }
    }

    /// The environment of every process, on fresh ports, and the
    /// configuration it gives.
    fn prepare(binary: &Path, nats: NatsServer, extra: &[(&str, &str)]) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("eva-processes-")
            .tempdir()?;
        std::fs::create_dir_all(dir.path().join("logs"))?;
        let mut env: Vec<(String, String)> = vec![
            (
                "EVA__DATA_DIR".into(),
                dir.path().join("data").display().to_string(),
            ),
            ("EVA__BUS__URL".into(), nats.url()),
            (
                "EVA__KEYS__KEK".into(),
                eva_platform::crypto::Kek::generate_base64(),
            ),
            ("EVA__METRICS__ENABLED".into(), "false".into()),
            ("EVA__TELEMETRY__LOG_FORMAT".into(), "json".into()),
            (
                "EVA__GATEWAY__LISTEN".into(),
                format!("127.0.0.1:{}", free_port()),
            ),
        ];
        for name in SERVICES {
            let port = free_port();
            let key = name.to_uppercase();
            env.push((format!("EVA__{key}__LISTEN"), format!("127.0.0.1:{port}")));
            env.push((
                format!("EVA__{key}__ENDPOINT"),
                format!("http://127.0.0.1:{port}"),
            ));
        }
        for (k, v) in extra {
            env.retain(|(key, _)| key != k);
            env.push(((*k).to_owned(), (*v).to_owned()));
        }
        let config = Config::load_from(None, env.clone())
            .context("the processes' configuration is invalid")?;
        Ok(Self {
            binary: binary.to_owned(),
            nats,
            gateway: format!("http://{}", config.gateway.listen),
            config,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
            env,
            children: BTreeMap::new(),
            dir,
        })
    }

    async fn start_all(&mut self) -> Result<()> {
        for name in SERVICES {
            self.spawn(name)?;
            // Identity first: the others fetch its token keys.
            if name == "identity" {
                self.wait_serving(name).await?;
            }
        }
        for name in &SERVICES[1..] {
            self.wait_serving(name).await?;
        }
        self.spawn(GATEWAY)?;
        self.wait_serving(GATEWAY).await?;
        self.wait_ready(READY_DEADLINE).await
    }

    fn spawn(&mut self, name: &'static str) -> Result<()> {
        let log_path = self.log_path(name);
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("opening {}", log_path.display()))?;
        let child = Command::new(&self.binary)
            .args(["serve", name])
            .current_dir(self.dir.path())
            .env_clear()
            .envs(self.env.iter().cloned())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("spawning {} serve {name}", self.binary.display()))?;
        self.children.insert(name, child);
        Ok(())
    }

    /// Waits until `name` answers: gRPC health SERVING for a service, `/healthz`
    /// for the gateway. Fails at once if the process exited.
    pub async fn wait_serving(&mut self, name: &str) -> Result<()> {
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            let child = self
                .children
                .get_mut(name)
                .with_context(|| format!("{name} is not running"))?;
            if let Some(status) = child.try_wait()? {
                bail!(
                    "{name} exited while starting ({status}); log:\n{}",
                    log_tail(&self.log_path(name))
                );
            }
            if self.answers(name).await {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{name} not serving within {READY_DEADLINE:?}; log:\n{}",
                    log_tail(&self.log_path(name))
                );
            }
            sleep(Duration::from_millis(100)).await;
        }
    }

    async fn answers(&self, name: &str) -> bool {
        if name == GATEWAY {
            return matches!(
                timeout(Duration::from_secs(2), self.http.get(self.url("/healthz")).send()).await,
                Ok(Ok(r)) if r.status().is_success()
            );
        }
        let Some(endpoint) = self.endpoint(name) else {
            return false;
        };
        let probe = async {
            let channel = tonic::transport::Endpoint::from_shared(endpoint)?
                .connect_timeout(Duration::from_secs(1))
                .connect()
                .await?;
            let r = HealthClient::new(channel)
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await?;
            anyhow::Ok(r.get_ref().status == ServingStatus::Serving as i32)
        };
        matches!(timeout(Duration::from_secs(3), probe).await, Ok(Ok(true)))
    }

    /// Polls the gateway's `/readyz` (NATS and every service) until it answers 200.
    pub async fn wait_ready(&self, within: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        loop {
            let last = match self.http.get(self.url("/readyz")).send().await {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) => r.text().await.unwrap_or_default(),
                Err(e) => e.to_string(),
            };
            if Instant::now() > deadline {
                bail!("not ready within {within:?}: {last}");
            }
            sleep(Duration::from_millis(100)).await;
        }
    }

    /// Kills `name` with SIGKILL, as a crash would, and waits until it is gone.
    pub async fn kill(&mut self, name: &str) -> Result<()> {
        let mut child = self
            .children
            .remove(name)
            .with_context(|| format!("{name} is not running"))?;
        signal_child(&child, Signal::SIGKILL)?;
        timeout(Duration::from_secs(10), child.wait())
            .await
            .with_context(|| format!("{name} still running 10 s after SIGKILL"))??;
        Ok(())
    }

    /// Sends `signal` to `name` (SIGSTOP freezes it: its socket still accepts
    /// connections, nothing answers; SIGCONT wakes it).
    pub fn signal(&self, name: &str, signal: Signal) -> Result<()> {
        let child = self
            .children
            .get(name)
            .with_context(|| format!("{name} is not running"))?;
        signal_child(child, signal)
    }

    /// Sends `signal` to the nats-server (SIGSTOP: the services commit, their
    /// relays cannot publish; SIGCONT wakes it).
    pub fn signal_nats(&self, signal: Signal) -> Result<()> {
        let pid = self.nats.pid().context("nats-server is not running")?;
        let pid = i32::try_from(pid).context("pid out of range")?;
        kill(Pid::from_raw(pid), signal).with_context(|| format!("sending {signal} to nats-server"))
    }

    /// Starts `name` again on its address and data (after [`Processes::kill`])
    /// and waits until it answers its health check. Retries while its port is
    /// still held (connections of the killed process closing).
    pub async fn restart(&mut self, name: &str) -> Result<()> {
        let name = SERVICES
            .iter()
            .chain(std::iter::once(&GATEWAY))
            .copied()
            .find(|n| *n == name)
            .with_context(|| format!("no process named {name}"))?;
        if self.children.contains_key(name) {
            bail!("{name} is still running: kill it first");
        }
        let mut attempt = 1;
        loop {
            let log_len = std::fs::metadata(self.log_path(name)).map_or(0, |m| m.len());
            self.spawn(name)?;
            match self.wait_serving(name).await {
                Ok(()) => return Ok(()),
                Err(e)
                    if attempt < START_ATTEMPTS
                        && self.log_since(name, log_len).contains("cannot listen") =>
                {
                    tracing::warn!(error = %e, "{name}: port still held, retrying");
                    self.children.remove(name);
                    attempt += 1;
                    sleep(Duration::from_secs(1)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// A token for `roles`, signed with identity's key (read from its
    /// database with the KEK, as `eva token` does), valid 30 minutes.
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
            Duration::from_secs(1800),
        )
        .await
        .context("issuing a test token")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.gateway, path)
    }

    /// `http://127.0.0.1:<port>` of a gRPC service.
    pub fn endpoint(&self, name: &str) -> Option<String> {
        let key = format!("EVA__{}__ENDPOINT", name.to_uppercase());
        self.env
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.clone())
    }

    /// The SQLite file of a service.
    pub fn db_path(&self, service: &str) -> PathBuf {
        self.config.data_dir.join(format!("{service}.db"))
    }

    /// Answers of `sql` on a service's database, first column as text (a
    /// count comes back as its decimal digits). Read-only; the service may be
    /// running (WAL) or dead.
    pub async fn query(&self, service: &str, sql: &str) -> Result<Vec<String>> {
        use sqlx::Row;
        let url = format!("sqlite://{}?mode=ro", self.db_path(service).display());
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await
            .with_context(|| format!("opening {url}"))?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_all(&pool)
            .await
            .with_context(|| format!("{service}: {sql}"))?;
        pool.close().await;
        rows.iter()
            .map(|r| {
                r.try_get::<String, _>(0)
                    .or_else(|_| r.try_get::<i64, _>(0).map(|n| n.to_string()))
                    .with_context(|| format!("{service}: {sql}: first column"))
            })
            .collect()
    }

    /// Every message of `stream` with its subject and CloudEvents attributes.
    pub async fn stream_events(&self, stream: &str) -> Result<Vec<(String, CloudEvent)>> {
        let js = async_nats::jetstream::new(self.nats.connect().await?);
        let mut s = js.get_stream(stream).await?;
        let state = s.info().await?.state.clone();
        let mut out = Vec::new();
        for seq in state.first_sequence.max(1)..=state.last_sequence {
            let m = s
                .get_raw_message(seq)
                .await
                .with_context(|| format!("{stream} message {seq}"))?;
            let ce = CloudEvent::from_headers(&m.headers)
                .with_context(|| format!("{stream} message {seq} has no CloudEvents headers"))?;
            out.push((m.subject.to_string(), ce));
        }
        Ok(out)
    }

    /// The log file of a process (its stdout and stderr, across restarts).
    pub fn log_path(&self, name: &str) -> PathBuf {
        self.dir.path().join("logs").join(format!("{name}.log"))
    }

    fn log_since(&self, name: &str, offset: u64) -> String {
        let text = std::fs::read(self.log_path(name)).unwrap_or_default();
        let start = usize::try_from(offset).unwrap_or(0).min(text.len());
        String::from_utf8_lossy(&text[start..]).into_owned()
    }

    /// The last lines of every process's log, to show with a failure.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for name in SERVICES.iter().chain(std::iter::once(&GATEWAY)) {
            let path = self.log_path(name);
            if path.exists() {
                out.push_str(&format!(
                    "--- {name} ({}) ---\n{}\n",
                    path.display(),
                    log_tail(&path)
                ));
            }
        }
        out
    }

    fn port_was_taken(&self) -> bool {
        SERVICES
            .iter()
            .chain(std::iter::once(&GATEWAY))
            .any(|n| self.log_since(n, 0).contains("cannot listen"))
    }

    async fn kill_all(&mut self) {
        for (_, mut child) in std::mem::take(&mut self.children) {
            let _ = child.kill().await;
        }
    }

    /// Stops every process with SIGTERM (the gateway first) and checks each
    /// exits cleanly within 20 s.
    pub async fn stop(mut self) -> Result<()> {
        let _ = self.signal_nats(Signal::SIGCONT);
        let mut order = vec![GATEWAY];
        order.extend(SERVICES.iter().rev());
        let mut failures = Vec::new();
        for name in order {
            let Some(mut child) = self.children.remove(name) else {
                continue;
            };
            // Woken first in case a test left it frozen.
            let _ = signal_child(&child, Signal::SIGCONT);
            signal_child(&child, Signal::SIGTERM)?;
            match timeout(Duration::from_secs(20), child.wait()).await {
                Ok(Ok(s)) if s.success() => {}
                Ok(Ok(s)) => failures.push(format!("{name} exited with {s}")),
                Ok(Err(e)) => failures.push(format!("{name}: {e}")),
                Err(_) => {
                    let _ = child.kill().await;
                    failures.push(format!("{name} did not stop within 20 s of SIGTERM"));
                }
            }
        }
        if !failures.is_empty() {
            bail!("{}\n{}", failures.join("; "), self.logs());
        }
        Ok(())
    }
}

fn signal_child(child: &Child, signal: Signal) -> Result<()> {
    let pid = child.id().context("the process has already exited")?;
    let pid = i32::try_from(pid).context("pid out of range")?;
    kill(Pid::from_raw(pid), signal).with_context(|| format!("sending {signal} to {pid}"))
}
