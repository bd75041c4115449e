//! The local nats-server of an all-in-one box: started by `eva up` when no
//! bus URL is configured, JetStream store under the data directory, stopped
//! after the services drained.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

pub struct LocalNats {
    child: Child,
    pub url: String,
}

/// The nats-server binary: configured, `$EVA_NATS_SERVER`, the repository's
/// `.tools/bin/nats-server`, then `PATH`.
pub fn find_binary(configured: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = configured {
        return Ok(p.to_owned());
    }
    if let Ok(p) = std::env::var("EVA_NATS_SERVER") {
        return Ok(PathBuf::from(p));
    }
    let local = PathBuf::from(".tools/bin/nats-server");
    if local.exists() {
        return Ok(local);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join("nats-server");
            if candidate.exists() {
                return Ok(candidate);
            }
        }
    }
    bail!(
        "nats-server not found: set bus.nats_server or EVA_NATS_SERVER, or run scripts/ensure-tools.sh"
    )
}

impl LocalNats {
    /// Starts nats-server on `listen` with its store in `data_dir/nats`
    /// (fsync on every write: a box holds people's data and may lose power).
    pub async fn start(binary: &Path, data_dir: &Path, listen: SocketAddr) -> anyhow::Result<Self> {
        let dir = data_dir.join("nats");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let conf = dir.join("nats.conf");
        std::fs::write(
            &conf,
            format!(
                "# written by eva up at each start\nserver_name: eva-local\nhost: {}\nport: {}\njetstream {{\n  store_dir: \"{}\"\n  sync_interval: always\n}}\n",
                listen.ip(),
                listen.port(),
                dir.join("store").display()
            ),
        )?;
        let log = std::fs::File::create(dir.join("nats-server.log"))?;
        let child = Command::new(binary)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let url = format!("nats://{listen}");
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut this = Self { child, url };
        loop {
            if let Some(status) = this.child.try_wait()? {
                bail!(
                    "nats-server exited at start ({status}); see {}",
                    dir.join("nats-server.log").display()
                );
            }
            if tokio::net::TcpStream::connect(listen).await.is_ok() {
                return Ok(this);
            }
            if Instant::now() > deadline {
                bail!("nats-server did not listen on {listen} within 15 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Graceful stop: SIGTERM lets JetStream flush; SIGKILL after 10 s.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
                .await
                .is_ok()
            {
                return;
            }
        }
        let _ = self.child.kill().await;
    }
}
