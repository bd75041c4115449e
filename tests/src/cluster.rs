//! The département's 3-node JetStream cluster, started from the committed
//! `deploy/nats/cluster/node.conf` unchanged (only its `$VARIABLE`s differ per node), and
//! a TCP proxy that can cut a link (a leaf node's, in the federation tests).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use async_nats::jetstream;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, timeout};

use crate::nats::NatsServer;
use crate::ports::free_port;

const NODES: usize = 3;
const START_ATTEMPTS: usize = 3;

/// A committed configuration file of `deploy/nats/`, e.g. `cluster/node.conf`.
pub fn deploy_nats(file: &str) -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .unwrap_or(manifest_dir)
        .join("deploy/nats")
        .join(file)
}

/// Three nats-server processes routed to each other; every node is killed when dropped.
pub struct NatsCluster {
    nodes: Vec<NatsServer>,
}

impl NatsCluster {
    /// Starts the three nodes and waits until JetStream answers on each (a meta leader
    /// is elected).
    pub async fn start() -> Result<Self> {
        let mut attempt = 1;
        loop {
            match Self::try_start().await {
                Ok(cluster) => return Ok(cluster),
                // A route port taken between `free_port` and the bind: new ports.
                Err(error) if attempt < START_ATTEMPTS => {
                    tracing::warn!(%error, "nats cluster did not start, retrying");
                    attempt += 1;
                }
                Err(error) => return Err(error),
            }
        }
    }

    async fn try_start() -> Result<Self> {
        let config = deploy_nats("cluster/node.conf");
        let route_ports: Vec<u16> = (0..NODES).map(|_| free_port()).collect();
        let routes = format!(
            "[{}]",
            route_ports
                .iter()
                .map(|p| format!("nats-route://127.0.0.1:{p}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut nodes = Vec::with_capacity(NODES);
        for port in &route_ports {
            let listen = format!("127.0.0.1:{port}");
            let env = [
                ("EVA_NATS_CLUSTER", "eva-test"),
                ("EVA_NATS_CLUSTER_LISTEN", listen.as_str()),
                ("EVA_NATS_ROUTES", routes.as_str()),
            ];
            nodes.push(NatsServer::start_from_file(&config, &env, false).await?);
        }
        let cluster = Self { nodes };
        for i in 0..NODES {
            cluster.wait_jetstream(i, Duration::from_secs(30)).await?;
        }
        Ok(cluster)
    }

    /// Every node's client URL, comma-separated, as `bus.url` takes them.
    pub fn url(&self) -> String {
        self.nodes
            .iter()
            .map(NatsServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn node(&self, i: usize) -> &NatsServer {
        &self.nodes[i]
    }

    /// The node's server name (`eva-test-<port>`), as stream leaders are reported.
    pub fn name(&self, i: usize) -> String {
        format!("eva-test-{}", self.nodes[i].port())
    }

    /// Kills node `i` with SIGKILL, as a crash or a power cut would.
    pub async fn kill(&mut self, i: usize) -> Result<()> {
        self.nodes[i].kill().await
    }

    /// Starts node `i` again on the same ports and store, and waits until it answers.
    pub async fn restart(&mut self, i: usize) -> Result<()> {
        self.nodes[i].restart().await?;
        self.wait_jetstream(i, Duration::from_secs(60)).await
    }

    /// Waits until node `i` answers JetStream requests (it knows the meta leader).
    pub async fn wait_jetstream(&self, i: usize, within: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        loop {
            let answer = async {
                let client = self.nodes[i].connect().await?;
                jetstream::new(client).query_account().await?;
                anyhow::Ok(())
            };
            match timeout(Duration::from_secs(5), answer).await {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(error)) if Instant::now() >= deadline => {
                    return Err(error.context(self.no_answer(i, within)));
                }
                Err(_) if Instant::now() >= deadline => bail!(self.no_answer(i, within)),
                _ => sleep(Duration::from_millis(100)).await,
            }
        }
    }

    fn no_answer(&self, i: usize, within: Duration) -> String {
        let log = self.nodes[i].log_path();
        format!(
            "node {i} has no JetStream within {within:?}; log {}:\n{}",
            log.display(),
            crate::nats::log_tail(&log)
        )
    }

    /// Waits until `stream` has a leader and every replica is current (caught up),
    /// asking node `via`; answers the leader's name.
    pub async fn wait_stream_current(
        &self,
        via: usize,
        stream: &str,
        within: Duration,
    ) -> Result<String> {
        let deadline = Instant::now() + within;
        let mut last = String::from("no answer");
        loop {
            let info = async {
                let js = jetstream::new(self.nodes[via].connect().await?);
                let mut s = js.get_stream(stream).await?;
                anyhow::Ok(s.info().await?.clone())
            };
            if let Ok(Ok(info)) = timeout(Duration::from_secs(5), info).await
                && let Some(cluster) = &info.cluster
            {
                let all_current = cluster.replicas.len() == NODES - 1
                    && cluster.replicas.iter().all(|r| r.current && !r.offline);
                if let (Some(leader), true) = (&cluster.leader, all_current) {
                    return Ok(leader.clone());
                }
                last = format!("{cluster:?}");
            }
            if Instant::now() >= deadline {
                bail!("stream {stream} not current on every node within {within:?}: {last}");
            }
            sleep(Duration::from_millis(200)).await;
        }
    }
}

impl NatsCluster {
    /// Waits until `stream` has a leader other than `old` (dead), asking node `via`;
    /// answers its name.
    pub async fn wait_new_stream_leader(
        &self,
        via: usize,
        stream: &str,
        old: &str,
        within: Duration,
    ) -> Result<String> {
        let deadline = Instant::now() + within;
        loop {
            let info = async {
                let js = jetstream::new(self.nodes[via].connect().await?);
                let mut s = js.get_stream(stream).await?;
                anyhow::Ok(s.info().await?.clone())
            };
            if let Ok(Ok(info)) = timeout(Duration::from_secs(5), info).await
                && let Some(leader) = info.cluster.and_then(|c| c.leader)
                && leader != old
            {
                return Ok(leader);
            }
            if Instant::now() >= deadline {
                bail!("stream {stream}: no leader other than {old} within {within:?}");
            }
            sleep(Duration::from_millis(200)).await;
        }
    }
}

/// A TCP proxy on a free loopback port to `target`; [`TcpProxy::cut`] closes every
/// connection through it and refuses new ones until [`TcpProxy::restore`], as a cut
/// network link would.
pub struct TcpProxy {
    port: u16,
    open: Arc<watch::Sender<bool>>,
    task: JoinHandle<()>,
}

impl TcpProxy {
    pub async fn start(target: String) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let open = Arc::new(watch::Sender::new(true));
        let task = tokio::spawn(accept(listener, target, open.clone()));
        Ok(Self { port, open, task })
    }

    /// `127.0.0.1:<port>`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Closes the connections through the proxy and refuses new ones.
    pub fn cut(&self) {
        self.open.send_replace(false);
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.open.send_replace(true);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.cut();
        self.task.abort();
    }
}

async fn accept(listener: TcpListener, target: String, open: Arc<watch::Sender<bool>>) {
    loop {
        let Ok((inbound, _)) = listener.accept().await else {
            continue;
        };
        if !*open.borrow() {
            drop(inbound); // refused: the peer sees the connection closed at once
            continue;
        }
        let target = target.clone();
        let mut closed = open.subscribe();
        tokio::spawn(async move {
            let Ok(outbound) = TcpStream::connect(&target).await else {
                return;
            };
            let (mut a, mut b) = (inbound, outbound);
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut a, &mut b) => {}
                _ = closed.wait_for(|open| !*open) => {}
            }
        });
    }
}

/// The subjects and `Nats-Msg-Id`s of `stream`'s messages (those on `filter`, if
/// given), in stream order, read with an ordered consumer.
pub async fn stream_ids(
    js: &jetstream::Context,
    stream: &str,
    filter: Option<&str>,
) -> Result<Vec<(String, String)>> {
    use futures::StreamExt;
    let s = js
        .get_stream(stream)
        .await
        .with_context(|| format!("stream {stream}"))?;
    let mut consumer = s
        .create_consumer(jetstream::consumer::pull::OrderedConfig {
            filter_subject: filter.unwrap_or_default().to_owned(),
            ..Default::default()
        })
        .await?;
    let mut out = Vec::new();
    let pending = consumer.info().await?.num_pending;
    let mut messages = consumer.messages().await?;
    while (out.len() as u64) < pending {
        let message = timeout(Duration::from_secs(30), messages.next())
            .await
            .with_context(|| format!("reading {stream}: {} of {pending}", out.len()))?
            .context("stream ended")??;
        let id = message
            .headers
            .as_ref()
            .and_then(|h| h.get("Nats-Msg-Id"))
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default();
        out.push((message.subject.to_string(), id));
    }
    Ok(out)
}
