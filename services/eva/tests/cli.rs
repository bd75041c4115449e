//! The `eva` binary as an operator meets it: `eva up` on a fresh data
//! directory answers ready, stops cleanly on SIGTERM and starts again on the
//! same data; bad configuration fails fast with one line naming the problem.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const EVA: &str = env!("CARGO_BIN_EXE_eva");

/// A port `eva` can bind a moment later. `bind(0)` hands out ephemeral
/// ports that a parallel test process may be handed too before `eva` binds
/// them; instead each test process takes ports from its own slice of
/// 20000–31999, below Linux's ephemeral range, and checks they are free.
fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = 20_000 + (std::process::id() % 600) as u16 * 20;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = base + n % 20;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
        assert!(n < 200, "no free port in {base}..{}", base + 20);
    }
}

fn nats_server() -> String {
    std::env::var("EVA_NATS_SERVER").unwrap_or_else(|_| {
        format!(
            "{}/../../.tools/bin/nats-server",
            env!("CARGO_MANIFEST_DIR")
        )
    })
}

/// `eva` with a clean environment: only what the test sets.
fn eva(dir: &Path) -> Command {
    let mut c = Command::new(EVA);
    c.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("EVA_NATS_SERVER", nats_server());
    c
}

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().expect("eva runs")
}

/// Status line and body of a GET.
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let code = out.split_whitespace().nth(1)?.parse().ok()?;
    let body = out.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    Some((code, body))
}

struct Up {
    child: Child,
    gateway: u16,
}

fn up(dir: &Path) -> Up {
    let (mut cmd, gateway) = up_command(dir);
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("eva up starts");
    Up { child, gateway }
}

/// `eva up` on free ports, and the gateway's port.
fn up_command(dir: &Path) -> (Command, u16) {
    let (gateway, identity, diagnostics, referrals, community, statistics, nats, metrics) = (
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
    );
    let mut cmd = eva(dir);
    cmd.args(["up", "--nats-listen", &format!("127.0.0.1:{nats}")])
        .env("EVA__GATEWAY__LISTEN", format!("127.0.0.1:{gateway}"))
        .env("EVA__IDENTITY__LISTEN", format!("127.0.0.1:{identity}"))
        .env(
            "EVA__IDENTITY__ENDPOINT",
            format!("http://127.0.0.1:{identity}"),
        )
        .env(
            "EVA__DIAGNOSTICS__LISTEN",
            format!("127.0.0.1:{diagnostics}"),
        )
        .env(
            "EVA__DIAGNOSTICS__ENDPOINT",
            format!("http://127.0.0.1:{diagnostics}"),
        )
        .env("EVA__REFERRALS__LISTEN", format!("127.0.0.1:{referrals}"))
        .env(
            "EVA__REFERRALS__ENDPOINT",
            format!("http://127.0.0.1:{referrals}"),
        )
        .env("EVA__COMMUNITY__LISTEN", format!("127.0.0.1:{community}"))
        .env(
            "EVA__COMMUNITY__ENDPOINT",
            format!("http://127.0.0.1:{community}"),
        )
        .env("EVA__STATISTICS__LISTEN", format!("127.0.0.1:{statistics}"))
        .env(
            "EVA__STATISTICS__ENDPOINT",
            format!("http://127.0.0.1:{statistics}"),
        )
        .env("EVA__METRICS__LISTEN", format!("127.0.0.1:{metrics}"));
    (cmd, gateway)
}

impl Up {
    fn wait_ready(&mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some((200, body)) = get(self.gateway, "/readyz") {
                return body;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("eva up exited before ready: {status}");
            }
            assert!(Instant::now() < deadline, "eva up not ready within 30 s");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM, then the exit status within 30 s.
    fn stop(mut self) -> std::process::ExitStatus {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("signal");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("eva up did not stop within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn eva_up_answers_ready_stops_cleanly_and_restarts_on_its_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut first = up(dir.path());
    let body = first.wait_ready();
    assert!(body.contains("\"status\":\"ready\""), "{body}");
    assert!(body.contains("\"diagnostics\":\"ok\""), "{body}");
    let (code, page) = get(first.gateway, "/").expect("home page");
    assert_eq!(code, 200);
    assert!(page.contains("EVA"), "{page}");
    assert!(first.stop().success(), "eva up did not exit cleanly");
    for f in [
        "identity.db",
        "diagnostics.db",
        "statistics.db",
        "kek.key",
        "nats/store",
    ] {
        assert!(dir.path().join("data").join(f).exists(), "data/{f} missing");
    }
    // The same box starts again on its own data and keys.
    let mut second = up(dir.path());
    second.wait_ready();
    assert!(second.stop().success());
}

#[test]
fn a_bad_referentiel_file_stops_eva_up_naming_the_file_line_and_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let folder = dir.path().join("referentiel");
    std::fs::create_dir(&folder).expect("mkdir");
    let shipped = include_str!("../../diagnostics/referentiel/2026.1.toml");
    let bad = shipped.replacen("code = \"frein\"\n", "code = \"bof\"\n", 1);
    let line = bad[..bad.find("code = \"bof\"").expect("edited")]
        .matches('\n')
        .count()
        + 1;
    std::fs::write(folder.join("2026.1.toml"), bad).expect("write");
    let (mut cmd, _) = up_command(dir.path());
    let mut child = cmd
        .env("EVA__DIAGNOSTICS__REFERENTIEL_DIR", &folder)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("eva up starts");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("eva up did not stop on a bad référentiel");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    let last = stderr.trim().lines().last().unwrap_or_default().to_owned();
    assert!(
        last.contains("diagnostics")
            && last.contains(&format!("2026.1.toml:{line}:"))
            && last.contains("`code`")
            && last.contains("bof"),
        "{stderr}"
    );
}

fn one_line_error(out: &Output) -> String {
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    assert_eq!(
        stderr.lines().count(),
        1,
        "expected one line, got: {stderr}"
    );
    stderr
}

#[test]
fn unknown_key_fails_fast_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run(eva(dir.path())
        .arg("check-config")
        .env("EVA__GATEWAY__LISTN", "127.0.0.1:1"));
    assert_eq!(out.status.code(), Some(2));
    let line = one_line_error(&out);
    assert!(line.contains("listn") && line.contains("gateway"), "{line}");

    std::fs::write(
        dir.path().join("eva.toml"),
        "[bus]\nurl = \"nats://127.0.0.1:4222\"\nreplica = 3\n",
    )
    .expect("write config");
    let out = run(eva(dir.path()).args(["--config", "eva.toml", "check-config"]));
    let line = one_line_error(&out);
    assert!(line.contains("replica") && line.contains("bus"), "{line}");
}

#[test]
fn bad_urls_and_values_fail_fast_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (key, value, named) in [
        ("EVA__BUS__URL", "http://nats.example", "bus.url"),
        (
            "EVA__IDENTITY__DATABASE_URL",
            "mysql://x/y",
            "identity.database_url",
        ),
        (
            "EVA__STATISTICS__ENDPOINT",
            "not a url",
            "statistics.endpoint",
        ),
        ("EVA__GATEWAY__LISTEN", "everywhere", "gateway.listen"),
        ("EVA__BUS__REPLICAS", "7", "bus.replicas"),
        ("EVA__KEYS__KEK", "too-short", "keys.kek"),
        ("EVA__TELEMETRY__SAMPLE_RATIO", "2", "sample_ratio"),
    ] {
        let out = run(eva(dir.path()).arg("check-config").env(key, value));
        assert_eq!(out.status.code(), Some(2), "{key}={value}");
        let line = one_line_error(&out);
        assert!(line.contains(named), "{key}={value}: {line}");
    }
    let out = run(eva(dir.path()).args(["--config", "missing.toml", "check-config"]));
    assert!(one_line_error(&out).contains("missing.toml"));
}

#[test]
fn unreachable_nats_fails_fast() {
    let dir = tempfile::tempdir().expect("tempdir");
    let closed = free_port();
    let started = Instant::now();
    let out = run(eva(dir.path())
        .args(["serve", "identity"])
        .env("EVA__BUS__URL", format!("nats://127.0.0.1:{closed}"))
        .env("EVA__METRICS__LISTEN", format!("127.0.0.1:{}", free_port()))
        .env(
            "EVA__IDENTITY__LISTEN",
            format!("127.0.0.1:{}", free_port()),
        ));
    let line = one_line_error(&out);
    assert!(
        line.contains("cannot reach NATS") && line.contains(&closed.to_string()),
        "{line}"
    );
    assert!(started.elapsed() < Duration::from_secs(15));
}

#[test]
fn migrate_creates_every_database_and_is_repeatable() {
    let dir = tempfile::tempdir().expect("tempdir");
    for _ in 0..2 {
        let out = run(eva(dir.path()).arg("migrate"));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("identity")
                && stdout.contains("diagnostics")
                && stdout.contains("statistics"),
            "{stdout}"
        );
    }
    assert!(dir.path().join("data/identity.db").exists());
    assert!(dir.path().join("data/statistics.db").exists());
    assert!(dir.path().join("data/diagnostics.db").exists());
    let out = run(eva(dir.path()).args(["migrate", "identity"]));
    assert!(out.status.success());
}
