//! A real, throw-away PostgreSQL cluster: `initdb` in a temporary directory, started on a free
//! loopback port, stopped and removed when dropped.
//!
//! PostgreSQL refuses to run as root. When the tests run as root (CI does), the cluster's
//! directory is given to the `postgres` system user and every PostgreSQL binary is run through
//! `runuser -u postgres --`.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use sqlx::{Connection, PgConnection};
use tempfile::TempDir;
use tokio::time::{Instant, sleep};

use crate::nats::log_tail;
use crate::ports::free_port;

/// Environment variable naming the directory of `initdb` and `pg_ctl` (set by `scripts/test.sh`).
pub const PG_BINDIR_ENV: &str = "EVA_PG_BINDIR";

/// The superuser created by `initdb`; connections are trusted, without password.
const SUPERUSER: &str = "eva";
const READY_DEADLINE: Duration = Duration::from_secs(20);
const START_ATTEMPTS: usize = 3;

/// A running PostgreSQL cluster; stopped (`pg_ctl stop -m immediate`) and deleted when dropped.
pub struct PgCluster {
    bindir: PathBuf,
    dir: TempDir,
    port: u16,
    as_postgres_user: bool,
    started: bool,
}

impl PgCluster {
    /// Creates a cluster in a temporary directory, starts it on a free port and waits until
    /// it accepts connections.
    pub async fn start() -> Result<Self> {
        let bindir = bindir()?;
        let dir = tempfile::Builder::new().prefix("eva-pg-").tempdir()?;
        let as_postgres_user = nix::unistd::geteuid().is_root();
        if as_postgres_user {
            let user = nix::unistd::User::from_name("postgres")
                .context("looking up the postgres user")?
                .context(
                    "running as root, PostgreSQL needs the `postgres` system user: \
                     run scripts/ensure-tools.sh",
                )?;
            std::os::unix::fs::chown(dir.path(), Some(user.uid.as_raw()), Some(user.gid.as_raw()))
                .with_context(|| format!("giving {} to postgres", dir.path().display()))?;
        }
        let mut cluster = Self {
            bindir,
            dir,
            port: free_port(),
            as_postgres_user,
            started: false,
        };
        cluster.init().await?;
        let mut attempt = 1;
        loop {
            match cluster.launch().await {
                Ok(()) => break,
                Err(error) if attempt < START_ATTEMPTS && cluster.port_was_taken() => {
                    tracing::warn!(port = cluster.port, %error, "postgres port taken, retrying");
                    cluster.port = free_port();
                    attempt += 1;
                }
                Err(error) => return Err(error),
            }
        }
        cluster.wait_ready().await?;
        Ok(cluster)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of database `db` on this cluster, as the superuser `eva`.
    pub fn url_for(&self, db: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates database `name` (lowercase letters, digits and `_`) and returns its URL.
    pub async fn create_database(&self, name: &str) -> Result<String> {
        let valid = !name.is_empty()
            && name.len() <= 63
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            bail!("database name {name:?} must be 1-63 lowercase letters, digits or '_'");
        }
        let mut conn = PgConnection::connect(&self.url_for("postgres")).await?;
        // The name was checked above: only [a-z0-9_], so quoting it is enough.
        let sql = format!("CREATE DATABASE \"{name}\"");
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
            .with_context(|| format!("creating database {name}"))?;
        conn.close().await?;
        Ok(self.url_for(name))
    }

    /// The server's log.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    async fn init(&self) -> Result<()> {
        let data_dir = self.data_dir();
        self.run(
            "initdb",
            [
                OsStr::new("-D"),
                data_dir.as_os_str(),
                OsStr::new("-A"),
                OsStr::new("trust"),
                OsStr::new("-U"),
                OsStr::new(SUPERUSER),
                OsStr::new("-E"),
                OsStr::new("UTF8"),
                OsStr::new("--locale=C.UTF-8"),
                OsStr::new("--no-sync"),
            ],
        )
        .await?;
        // Settings for a disposable test cluster; the port is given on the command line.
        let mut settings = String::from("\n# eva-tests harness\n");
        for line in [
            "listen_addresses = '127.0.0.1'".to_owned(),
            format!("unix_socket_directories = '{}'", self.dir.path().display()),
            "fsync = off".to_owned(),
            "synchronous_commit = off".to_owned(),
            "full_page_writes = off".to_owned(),
            "max_connections = 200".to_owned(),
        ] {
            writeln!(settings, "{line}")?;
        }
        let conf = data_dir.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf)
            .with_context(|| format!("reading {}", conf.display()))?;
        text.push_str(&settings);
        std::fs::write(&conf, text).with_context(|| format!("writing {}", conf.display()))
    }

    async fn launch(&mut self) -> Result<()> {
        let data_dir = self.data_dir();
        let log_path = self.log_path();
        let port_option = format!("-p {}", self.port);
        self.started = true;
        let result = self
            .run(
                "pg_ctl",
                [
                    OsStr::new("start"),
                    OsStr::new("-D"),
                    data_dir.as_os_str(),
                    OsStr::new("-l"),
                    log_path.as_os_str(),
                    OsStr::new("-o"),
                    OsStr::new(&port_option),
                    OsStr::new("-w"),
                    OsStr::new("-t"),
                    OsStr::new("20"),
                ],
            )
            .await;
        if let Err(error) = result {
            self.stop_now();
            return Err(error.context(format!(
                "postgres on port {} did not start; log: {}\n{}",
                self.port,
                log_path.display(),
                log_tail(&log_path)
            )));
        }
        Ok(())
    }

    /// Waits until the cluster accepts a connection to the `postgres` database.
    async fn wait_ready(&self) -> Result<()> {
        let deadline = Instant::now() + READY_DEADLINE;
        let url = self.url_for("postgres");
        loop {
            match PgConnection::connect(&url).await {
                Ok(conn) => {
                    conn.close().await?;
                    return Ok(());
                }
                Err(error) if Instant::now() >= deadline => {
                    return Err(anyhow::Error::new(error).context(format!(
                        "postgres on port {} not accepting connections after {}s; log: {}",
                        self.port,
                        READY_DEADLINE.as_secs(),
                        self.log_path().display()
                    )));
                }
                Err(_) => sleep(Duration::from_millis(50)).await,
            }
        }
    }

    fn port_was_taken(&self) -> bool {
        std::fs::read_to_string(self.log_path())
            .map(|log| log.contains("could not bind IPv4 address"))
            .unwrap_or(false)
    }

    /// `<bindir>/<program>`, through `runuser -u postgres --` when running as root.
    fn command(&self, program: &str) -> std::process::Command {
        let path = self.bindir.join(program);
        let mut command = if self.as_postgres_user {
            let mut command = std::process::Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            std::process::Command::new(path)
        };
        command.current_dir(self.dir.path()).stdin(Stdio::null());
        command
    }

    async fn run<'a>(
        &self,
        program: &str,
        args: impl IntoIterator<Item = &'a OsStr>,
    ) -> Result<()> {
        let mut command = tokio::process::Command::from(self.command(program));
        command.args(args).kill_on_drop(true);
        let output = command
            .output()
            .await
            .with_context(|| format!("running {program} from {}", self.bindir.display()))?;
        if !output.status.success() {
            bail!(
                "{program} failed ({}): {}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout).trim(),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(())
    }

    /// `pg_ctl stop -m immediate`, blocking; errors are ignored (the server may be down).
    fn stop_now(&mut self) {
        if !self.started {
            return;
        }
        self.started = false;
        let _ = self
            .command("pg_ctl")
            .arg("stop")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-m", "immediate", "-w"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// `$EVA_PG_BINDIR`, else the newest `/usr/lib/postgresql/<version>/bin` that has `initdb`.
fn bindir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os(PG_BINDIR_ENV) {
        let dir = PathBuf::from(dir);
        if dir.join("initdb").is_file() {
            return Ok(dir);
        }
        bail!(
            "{PG_BINDIR_ENV}={} has no initdb: run scripts/ensure-tools.sh",
            dir.display()
        );
    }
    let root = Path::new("/usr/lib/postgresql");
    let newest = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .max_by_key(|(version, _)| *version);
    match newest {
        Some((_, bin)) => Ok(bin),
        None => bail!(
            "PostgreSQL server binaries not found ({PG_BINDIR_ENV} unset, no {}/*/bin/initdb): \
             run scripts/ensure-tools.sh",
            root.display()
        ),
    }
}
