//! A real `nats-server` with JetStream, on a free loopback port, with its store in a
//! temporary directory. It can be stopped, crashed and restarted on the same port and store.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tempfile::TempDir;
use tokio::process::{Child, Command};
use tokio::time::{Instant, sleep, timeout};

use crate::ports::free_port;

/// Environment variable naming the `nats-server` binary (set by `scripts/test.sh`).
pub const NATS_SERVER_ENV: &str = "EVA_NATS_SERVER";

const READY_DEADLINE: Duration = Duration::from_secs(10);
const STOP_GRACE: Duration = Duration::from_secs(5);
const START_ATTEMPTS: usize = 3;
/// What nats-server logs once a SIGHUP reload took effect, or was refused.
const RELOADED: &str = "Reloaded server configuration";
const RELOAD_FAILED: &str = "Failed to reload server configuration";

/// A running `nats-server -js`; killed when dropped.
pub struct NatsServer {
    binary: PathBuf,
    port: u16,
    dir: TempDir,
    child: Option<Child>,
    config: Option<ServerConfig>,
    file: Option<FileConfig>,
}

/// A server started from a committed configuration file ([`NatsServer::start_from_file`]).
struct FileConfig {
    path: PathBuf,
    /// `$VARIABLE`s of the file beside those the harness sets.
    env: Vec<(String, String)>,
    /// Wait for JetStream answers (a lone server), or only for the client port (a
    /// cluster node, whose JetStream needs a quorum first).
    jetstream_ready: bool,
}

/// A server started from a configuration file ([`NatsServer::start_with_config`]).
struct ServerConfig {
    /// Accounts, authorization and other blocks, appended to the generated file.
    fragment: String,
    /// The user the readiness check connects as.
    probe_user: String,
    probe_password: String,
}

impl NatsServer {
    /// Starts a server on a free port and waits until JetStream answers.
    pub async fn start() -> Result<Self> {
        Self::start_from(None).await
    }

    /// Starts a server from a configuration file (`-c`): listen address, server name and
    /// JetStream store are written by the harness, followed by `fragment` (an `accounts`
    /// or `authorization` block, say). With authentication on, the readiness check
    /// connects as `probe_user`, who must have JetStream in its account.
    pub async fn start_with_config(
        fragment: &str,
        probe_user: &str,
        probe_password: &str,
    ) -> Result<Self> {
        Self::start_from(Some(ServerConfig {
            fragment: fragment.to_owned(),
            probe_user: probe_user.to_owned(),
            probe_password: probe_password.to_owned(),
        }))
        .await
    }

    /// Starts a server from a committed configuration file (`deploy/nats/…`), unchanged:
    /// the harness sets `EVA_NATS_NAME` (`eva-test-<port>`), `EVA_NATS_LISTEN`
    /// (`127.0.0.1:<free port>`) and `EVA_NATS_STORE_DIR`, and `env` the file's other
    /// variables. With `jetstream_ready` it waits until JetStream answers, else only
    /// until the server accepts clients (a cluster node alone has no JetStream yet).
    pub async fn start_from_file(
        path: &Path,
        env: &[(&str, &str)],
        jetstream_ready: bool,
    ) -> Result<Self> {
        let file = FileConfig {
            path: path.to_owned(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            jetstream_ready,
        };
        Self::start_inner(None, Some(file)).await
    }

    async fn start_from(config: Option<ServerConfig>) -> Result<Self> {
        Self::start_inner(config, None).await
    }

    async fn start_inner(config: Option<ServerConfig>, file: Option<FileConfig>) -> Result<Self> {
        let binary = binary_path()?;
        let dir = tempfile::Builder::new().prefix("eva-nats-").tempdir()?;
        let mut server = Self {
            binary,
            port: free_port(),
            dir,
            child: None,
            config,
            file,
        };
        let mut attempt = 1;
        loop {
            match server.spawn().await {
                Ok(()) => return Ok(server),
                Err(error) if attempt < START_ATTEMPTS && server.port_was_taken() => {
                    tracing::warn!(port = server.port, %error, "nats-server port taken, retrying");
                    server.port = free_port();
                    attempt += 1;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// `nats://<user>:<password>@127.0.0.1:<port>`, for [`NatsServer::connect_as`] and
    /// for configurations that take a URL with credentials.
    pub fn url_with_credentials(&self, user: &str, password: &str) -> String {
        format!("nats://{user}:{password}@127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's process id while it runs (to freeze it with SIGSTOP, say).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// The configuration file of a server started with
    /// [`NatsServer::start_with_config`].
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("nats-server.conf")
    }

    /// The JetStream store directory (`-sd`), kept across restarts.
    pub fn store_dir(&self) -> PathBuf {
        self.dir.path().join("jetstream")
    }

    /// The server's log (its stderr), appended to across restarts.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("nats-server.log")
    }

    /// A new client connected to this server.
    pub async fn connect(&self) -> Result<async_nats::Client> {
        async_nats::connect(self.url())
            .await
            .with_context(|| format!("connecting to nats-server at {}", self.url()))
    }

    /// A new client connected as `user` with `password`, with the given options (an
    /// inbox prefix, an event callback).
    pub async fn connect_as(
        &self,
        user: &str,
        password: &str,
        options: async_nats::ConnectOptions,
    ) -> Result<async_nats::Client> {
        options
            .user_and_password(user.to_owned(), password.to_owned())
            .connect(self.url())
            .await
            .with_context(|| format!("connecting to nats-server at {} as {user}", self.url()))
    }

    /// Stops the server gracefully: SIGTERM, then SIGKILL if it is still running after 5 s.
    pub async fn stop(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        if let Some(pid) = child.id() {
            let pid = i32::try_from(pid).context("nats-server pid out of range")?;
            // The process may have exited already: then there is nothing to signal.
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        match timeout(STOP_GRACE, child.wait()).await {
            Ok(status) => {
                status.context("waiting for nats-server to stop")?;
            }
            Err(_) => {
                tracing::warn!(port = self.port, "nats-server ignored SIGTERM, killing it");
                child.kill().await.context("killing nats-server")?;
            }
        }
        Ok(())
    }

    /// Kills the server with SIGKILL, as a crash would, and waits until it is gone.
    pub async fn kill(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().await.context("killing nats-server")?;
        }
        Ok(())
    }

    /// Starts the server again on the same port with the same store, stopping it first
    /// (gracefully) if it is running.
    pub async fn restart(&mut self) -> Result<()> {
        self.stop().await?;
        self.spawn().await
    }

    async fn spawn(&mut self) -> Result<()> {
        let log_path = self.log_path();
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("opening {}", log_path.display()))?;
        let mut command = Command::new(&self.binary);
        match (&self.config, &self.file) {
            (None, Some(file)) => {
                command
                    .arg("-c")
                    .arg(&file.path)
                    .env("EVA_NATS_NAME", format!("eva-test-{}", self.port))
                    .env("EVA_NATS_LISTEN", format!("127.0.0.1:{}", self.port))
                    .env("EVA_NATS_STORE_DIR", self.store_dir())
                    .envs(file.env.iter().map(|(k, v)| (k, v)));
            }
            (None, None) => {
                command
                    .arg("-js")
                    .args(["-a", "127.0.0.1"])
                    .args(["-p", &self.port.to_string()])
                    .arg("-sd")
                    .arg(self.store_dir())
                    .args(["-n", &format!("eva-test-{}", self.port)]);
            }
            (Some(config), _) => {
                let path = self.write_config(&config.fragment)?;
                command.arg("-c").arg(&path);
            }
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("spawning {}", self.binary.display()))?;
        self.child = Some(child);
        match self.wait_ready().await {
            Ok(()) => Ok(()),
            Err(error) => {
                let _ = self.kill().await;
                Err(error.context(format!(
                    "nats-server on port {} did not start; log: {}\n{}",
                    self.port,
                    log_path.display(),
                    log_tail(&log_path)
                )))
            }
        }
    }

    /// Writes the configuration file of a server started with
    /// [`NatsServer::start_with_config`]: listen address, server name and JetStream store,
    /// then `fragment`. Answers its path.
    fn write_config(&self, fragment: &str) -> Result<PathBuf> {
        let path = self.config_path();
        let text = format!(
            "server_name: \"eva-test-{port}\"\nlisten: \"127.0.0.1:{port}\"\njetstream {{\n  store_dir: \"{store}\"\n}}\n\n{fragment}\n",
            port = self.port,
            store = self.store_dir().display(),
        );
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }

    /// Replaces the fragment of a server started with [`NatsServer::start_with_config`]
    /// (new accounts, say: what an operator does after `eva nats accounts`), rewrites
    /// the configuration file and sends SIGHUP; answers once the server logged that it
    /// reloaded and the probe user still gets JetStream answers. A configuration the
    /// server refuses is an error, with the server's reason (the server keeps running
    /// on the previous one). The probe credentials stay those given at start.
    pub async fn reload(&mut self, fragment: &str) -> Result<()> {
        let Some(config) = self.config.as_mut() else {
            bail!("reload needs a server started with start_with_config");
        };
        config.fragment = fragment.to_owned();
        let probe = (config.probe_user.clone(), config.probe_password.clone());
        self.write_config(fragment)?;
        let pid = self
            .child
            .as_ref()
            .and_then(Child::id)
            .context("nats-server is not running")?;
        let pid = i32::try_from(pid).context("nats-server pid out of range")?;
        let log_path = self.log_path();
        let count = |needle: &str| {
            std::fs::read_to_string(&log_path)
                .map(|log| log.matches(needle).count())
                .unwrap_or(0)
        };
        let (reloaded, failed) = (count(RELOADED), count(RELOAD_FAILED));
        kill(Pid::from_raw(pid), Signal::SIGHUP).context("sending SIGHUP to nats-server")?;
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            if count(RELOAD_FAILED) > failed {
                bail!(
                    "nats-server refused the new configuration; log: {}\n{}",
                    log_path.display(),
                    log_tail(&log_path)
                );
            }
            if count(RELOADED) > reloaded {
                break;
            }
            if Instant::now() >= deadline {
                bail!(
                    "nats-server did not reload within {}s; log: {}\n{}",
                    READY_DEADLINE.as_secs(),
                    log_path.display(),
                    log_tail(&log_path)
                );
            }
            sleep(Duration::from_millis(20)).await;
        }
        jetstream_answers(&self.url(), Some(&probe))
            .await
            .context("the probe user after the reload")
    }

    /// Waits until the server accepts clients and JetStream answers an account query.
    async fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + READY_DEADLINE;
        let url = self.url();
        let probe = self
            .config
            .as_ref()
            .map(|c| (c.probe_user.clone(), c.probe_password.clone()));
        let jetstream = self.file.as_ref().is_none_or(|f| f.jetstream_ready);
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                bail!("nats-server exited early: {status}");
            }
            let answer = if jetstream {
                jetstream_answers(&url, probe.as_ref()).await
            } else {
                accepts_clients(&url).await
            };
            let last_error = match answer {
                Ok(()) => return Ok(()),
                Err(error) => error,
            };
            if Instant::now() >= deadline {
                return Err(last_error.context(format!(
                    "jetstream not ready after {}s",
                    READY_DEADLINE.as_secs()
                )));
            }
            sleep(Duration::from_millis(50)).await;
        }
    }

    fn port_was_taken(&self) -> bool {
        std::fs::read_to_string(self.log_path())
            .map(|log| log.contains("address already in use"))
            .unwrap_or(false)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let Some(child) = self.child.as_mut() else {
            return;
        };
        let _ = child.start_kill();
        // Give the process a moment to die before the temporary directory is removed.
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while matches!(child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

async fn jetstream_answers(url: &str, user: Option<&(String, String)>) -> Result<()> {
    let attempt = async {
        let mut options =
            async_nats::ConnectOptions::new().connection_timeout(Duration::from_secs(1));
        if let Some((user, password)) = user {
            options = options.user_and_password(user.clone(), password.clone());
        }
        let client = options.connect(url).await?;
        async_nats::jetstream::new(client).query_account().await?;
        anyhow::Ok(())
    };
    timeout(Duration::from_secs(2), attempt)
        .await
        .context("jetstream account query timed out")?
}

async fn accepts_clients(url: &str) -> Result<()> {
    let attempt = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(1))
        .connect(url);
    let client = timeout(Duration::from_secs(2), attempt)
        .await
        .context("connection timed out")??;
    client.flush().await?;
    Ok(())
}

/// `$EVA_NATS_SERVER`, else `<workspace>/.tools/bin/nats-server`.
fn binary_path() -> Result<PathBuf> {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace_root = manifest_dir.parent().unwrap_or(manifest_dir);
    let default = workspace_root.join(".tools/bin/nats-server");
    let from_env = std::env::var_os(NATS_SERVER_ENV).map(PathBuf::from);
    let candidate = from_env.clone().unwrap_or_else(|| default.clone());
    if candidate.is_file() {
        return Ok(candidate);
    }
    let env_text = match &from_env {
        Some(path) => format!("{NATS_SERVER_ENV}={}", path.display()),
        None => format!("{NATS_SERVER_ENV} unset"),
    };
    bail!(
        "nats-server not found: run scripts/ensure-tools.sh ({env_text}; default {})",
        default.display()
    )
}

/// The last lines of a log file, for error messages.
pub(crate) fn log_tail(path: &Path) -> String {
    const LINES: usize = 20;
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(LINES)..].join("\n")
        }
        Err(error) => format!("(could not read the log: {error})"),
    }
}
