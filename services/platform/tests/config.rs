//! `eva_platform::Config` as an operator meets it: `deploy/eva.example.toml`
//! loads and gives the defaults, `EVA__…` variables override the file, and
//! unknown keys or bad values fail with one line naming the key.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use eva_platform::Config;
use eva_platform::config::ConfigError;
use eva_platform::telemetry::LogFormat;

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/eva.example.toml")
}

fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
    vars.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A TOML file removed when dropped.
struct TempToml(PathBuf);

impl TempToml {
    fn new(content: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "eva-config-test-{}-{}.toml",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::write(&path, content).expect("write the temporary config file");
        Self(path)
    }
}

impl Drop for TempToml {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The error of loading `toml` (if any) with `vars`; panics if it loads.
fn load_error(toml: Option<&str>, vars: &[(&str, &str)]) -> String {
    let file = toml.map(TempToml::new);
    match Config::load_from(file.as_ref().map(|f| f.0.as_path()), env(vars)) {
        Ok(cfg) => panic!("{toml:?} with {vars:?} loaded: {cfg:?}"),
        Err(e) => {
            let line = e.to_string();
            assert!(!line.contains('\n'), "not one line: {line:?}");
            line
        }
    }
}

#[test]
fn the_example_file_loads_and_gives_the_defaults() {
    let cfg = Config::load_from(Some(&example()), env(&[])).expect("the example loads");
    let defaults = Config::default();

    assert_eq!(cfg.data_dir, defaults.data_dir);
    assert_eq!(cfg.telemetry.log_format, LogFormat::Pretty);
    assert_eq!(cfg.telemetry.log_filter, defaults.telemetry.log_filter);
    assert_eq!(cfg.telemetry.otlp_endpoint, None);
    assert_eq!(cfg.metrics.listen, defaults.metrics.listen);
    assert_eq!(cfg.metrics.enabled, defaults.metrics.enabled);
    assert_eq!(cfg.bus.url, None);
    assert_eq!(cfg.bus.replicas, 1);
    assert_eq!(cfg.bus.outbox_batch, defaults.bus.outbox_batch);
    assert_eq!(cfg.auth.access_token_ttl_secs, 900);
    assert!(cfg.keys.kek.is_none() && cfg.keys.kek_file.is_none());
    assert_eq!(cfg.identity.listen, defaults.identity.listen);
    assert_eq!(cfg.identity.endpoint, defaults.identity.endpoint);
    assert_eq!(cfg.identity.database_url, None);
    assert_eq!(cfg.statistics.endpoint, defaults.statistics.endpoint);
    assert_eq!(cfg.diagnostics.endpoint, defaults.diagnostics.endpoint);
    assert_eq!(cfg.diagnostics.referentiel_dir, None);
    assert_eq!(cfg.gateway.listen, defaults.gateway.listen);
    assert_eq!(
        cfg.gateway.request_timeout_ms,
        defaults.gateway.request_timeout_ms
    );

    // Every value the file sets is the default: the whole configuration is.
    assert_eq!(
        serde_json::to_value(&cfg).expect("serialise"),
        serde_json::to_value(&defaults).expect("serialise"),
        "deploy/eva.example.toml no longer gives the defaults"
    );
}

/// `(section, key)` of every setting, `""` for top-level ones.
fn keys_of(value: &serde_json::Value) -> BTreeSet<(String, String)> {
    let mut keys = BTreeSet::new();
    for (name, v) in value.as_object().into_iter().flatten() {
        match v.as_object() {
            Some(section) => {
                for key in section.keys() {
                    keys.insert((name.clone(), key.clone()));
                }
            }
            None => {
                keys.insert((String::new(), name.clone()));
            }
        }
    }
    keys
}

#[test]
fn the_example_file_shows_every_key() {
    let text = std::fs::read_to_string(example()).expect("read the example");
    let mut section = String::new();
    let mut shown = BTreeSet::new();
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim().to_owned();
            continue;
        }
        // Set (`key = …`) or shown commented out (`# key = …`).
        let setting = line.trim_start_matches('#').trim_start();
        if let Some((key, _)) = setting.split_once('=') {
            let key = key.trim();
            if !key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                shown.insert((section.clone(), key.to_owned()));
            }
        }
    }
    let all = keys_of(&serde_json::to_value(Config::default()).expect("serialise"));
    let missing: Vec<_> = all.difference(&shown).collect();
    assert!(
        missing.is_empty(),
        "keys of Config missing from deploy/eva.example.toml: {missing:?}"
    );
}

#[test]
fn environment_variables_override_the_file() {
    let example = example();
    let cfg = Config::load_from(
        Some(&example),
        env(&[
            ("EVA__BUS__URL", "nats://10.0.0.1:4222,nats://10.0.0.2:4222"),
            ("EVA__BUS__REPLICAS", "3"),
            (
                "EVA__IDENTITY__DATABASE_URL",
                "postgres://eva@db.example.org/eva_identity",
            ),
            // Not EVA's: ignored.
            ("EVA_CONFIG", "elsewhere.toml"),
            ("PATH", "/usr/bin"),
        ]),
    )
    .expect("loads");
    assert_eq!(
        cfg.bus.url.as_deref(),
        Some("nats://10.0.0.1:4222,nats://10.0.0.2:4222")
    );
    assert_eq!(cfg.bus.replicas, 3);
    assert_eq!(
        cfg.identity.database_url.as_deref(),
        Some("postgres://eva@db.example.org/eva_identity")
    );
    assert_eq!(cfg.statistics.database_url, None);

    // A value the file sets is replaced too.
    let file = TempToml::new("[bus]\nurl = \"nats://from-the-file:4222\"\nreplicas = 2\n");
    let cfg = Config::load_from(
        Some(&file.0),
        env(&[("EVA__BUS__URL", "nats://from-the-environment:4222")]),
    )
    .expect("loads");
    assert_eq!(
        cfg.bus.url.as_deref(),
        Some("nats://from-the-environment:4222")
    );
    assert_eq!(cfg.bus.replicas, 2, "the file's other keys stay");
}

#[test]
fn unknown_keys_fail_naming_the_key() {
    for (toml, vars, named) in [
        (Some("[bus]\nurll = \"nats://x:4222\"\n"), &[][..], "urll"),
        (Some("verbose = true\n"), &[], "verbose"),
        (
            Some("[gatway]\nlisten = \"127.0.0.1:8080\"\n"),
            &[],
            "gatway",
        ),
        (None, &[("EVA__BUS__BOGUS", "1")][..], "bogus"),
        (None, &[("EVA__GATEWAY__LISTN", "127.0.0.1:1")], "listn"),
        (None, &[("EVA__FORUM__LISTEN", "127.0.0.1:1")], "forum"),
        (
            Some("[diagnostics]\nreferentiel_directory = \"/tmp\"\n"),
            &[],
            "referentiel_directory",
        ),
    ] {
        let line = load_error(toml, vars);
        assert!(
            line.contains(&format!("`{named}`")),
            "{toml:?} {vars:?}: {line}"
        );
    }
    // A nested key also names its section.
    let line = load_error(None, &[("EVA__BUS__BOGUS", "1")]);
    assert!(line.contains("`bus`"), "{line}");
}

#[test]
fn bad_values_fail_naming_the_key() {
    let cases: &[(&str, &str, &str)] = &[
        ("EVA__BUS__URL", "http://127.0.0.1:4222", "bus.url"),
        ("EVA__BUS__URL", "nats://a:4222,not a url", "bus.url"),
        ("EVA__BUS__REPLICAS", "0", "bus.replicas"),
        ("EVA__BUS__REPLICAS", "7", "bus.replicas"),
        ("EVA__BUS__REPLICAS", "many", "bus.replicas"),
        ("EVA__BUS__OUTBOX_BATCH", "0", "bus.outbox_batch"),
        ("EVA__BUS__OUTBOX_BATCH", "10001", "bus.outbox_batch"),
        (
            "EVA__AUTH__ACCESS_TOKEN_TTL_SECS",
            "5",
            "auth.access_token_ttl_secs",
        ),
        (
            "EVA__AUTH__ACCESS_TOKEN_TTL_SECS",
            "100000",
            "auth.access_token_ttl_secs",
        ),
        ("EVA__KEYS__KEK", "too-short", "keys.kek"),
        (
            "EVA__IDENTITY__ENDPOINT",
            "identity:50051",
            "identity.endpoint",
        ),
        (
            "EVA__STATISTICS__ENDPOINT",
            "nats://127.0.0.1:50055",
            "statistics.endpoint",
        ),
        (
            "EVA__DIAGNOSTICS__DATABASE_URL",
            "mysql://db/eva",
            "diagnostics.database_url",
        ),
        (
            "EVA__DIAGNOSTICS__MAX_CONNECTIONS",
            "0",
            "diagnostics.max_connections",
        ),
        (
            "EVA__IDENTITY__DATABASE_URL",
            "mysql://db/identity",
            "identity.database_url",
        ),
        (
            "EVA__STATISTICS__MAX_CONNECTIONS",
            "0",
            "statistics.max_connections",
        ),
        ("EVA__GATEWAY__LISTEN", "localhost", "gateway.listen"),
        ("EVA__METRICS__LISTEN", "9464", "metrics.listen"),
        (
            "EVA__TELEMETRY__SAMPLE_RATIO",
            "1.5",
            "telemetry.sample_ratio",
        ),
        ("EVA__TELEMETRY__LOG_FORMAT", "xml", "telemetry.log_format"),
        (
            "EVA__TELEMETRY__OTLP_ENDPOINT",
            "https://collector:4317",
            "telemetry.otlp_endpoint",
        ),
    ];
    for (var, value, key) in cases {
        let line = load_error(None, &[(var, value)]);
        assert!(line.contains(key), "{var}={value:?}: {line}");
    }

    // In the file as in the environment.
    let line = load_error(Some("[bus]\nreplicas = 9\n"), &[]);
    assert!(line.contains("bus.replicas"), "{line}");

    // Both ways of giving the key-encryption key at once.
    let file = TempToml::new("not used");
    let kek_file = file.0.display().to_string();
    let line = load_error(
        None,
        &[
            (
                "EVA__KEYS__KEK",
                "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            ),
            ("EVA__KEYS__KEK_FILE", kek_file.as_str()),
        ],
    );
    assert!(line.contains("keys.kek_file"), "{line}");
}

#[test]
fn validation_errors_carry_the_key_apart() {
    let file = TempToml::new("[auth]\naccess_token_ttl_secs = 1\n");
    match Config::load_from(Some(&file.0), env(&[])) {
        Err(ConfigError::Invalid { key, .. }) => assert_eq!(key, "auth.access_token_ttl_secs"),
        other => panic!("expected an invalid auth.access_token_ttl_secs, got {other:?}"),
    }
}

#[test]
fn a_missing_file_is_named() {
    let path = Path::new("/nonexistent/eva.toml");
    let line = match Config::load_from(Some(path), env(&[])) {
        Ok(cfg) => panic!("loaded {cfg:?}"),
        Err(e) => e.to_string(),
    };
    assert!(line.contains("/nonexistent/eva.toml"), "{line}");
}

#[test]
fn the_key_encryption_key_is_never_printed() {
    let kek = eva_platform::crypto::Kek::generate_base64();
    let cfg = Config::load_from(Some(&example()), env(&[("EVA__KEYS__KEK", kek.as_str())]))
        .expect("loads");
    assert_eq!(cfg.keys.kek.as_deref(), Some(kek.as_str()));
    let printed = format!("{cfg:?}");
    assert!(!printed.contains(&kek), "the KEK shows in {printed}");
}

#[test]
fn passwords_in_urls_never_show_in_debug_output() {
    let env = [
        (
            "EVA__IDENTITY__DATABASE_URL".to_owned(),
            "postgres://eva:s3cret-db@db:5432/identity".to_owned(),
        ),
        (
            "EVA__BUS__URL".to_owned(),
            "nats://user:s3cret-bus@nats1:4222,nats://user:s3cret-bus@nats2:4222".to_owned(),
        ),
    ];
    let cfg = Config::load_from(None, env).expect("valid config");
    let shown = format!("{cfg:?}");
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(shown.contains("nats2"), "{shown}");
}

#[test]
fn gateway_rate_limits_and_origins_are_checked() {
    let cases: &[(&str, &str)] = &[
        (
            "rate_limit_ip_per_minute = 2000000",
            "gateway.rate_limit_ip_per_minute",
        ),
        (
            "rate_limit_ip_per_minute = 60\nrate_limit_ip_burst = 0",
            "gateway.rate_limit_ip_burst",
        ),
        (
            "rate_limit_user_per_minute = 60\nrate_limit_user_burst = 0",
            "gateway.rate_limit_user_burst",
        ),
        (
            "trusted_proxies = [\"10.0.0.0/33\"]",
            "gateway.trusted_proxies",
        ),
        ("trusted_proxies = [\"proxy\"]", "gateway.trusted_proxies"),
        (
            "cors_allowed_origins = [\"*\"]",
            "gateway.cors_allowed_origins",
        ),
        (
            "cors_allowed_origins = [\"https://*.example.org\"]",
            "gateway.cors_allowed_origins",
        ),
        (
            "cors_allowed_origins = [\"https://eva.example.org/app\"]",
            "gateway.cors_allowed_origins",
        ),
        (
            "cors_allowed_origins = [\"https://eva.example.org/\"]",
            "gateway.cors_allowed_origins",
        ),
        (
            "cors_allowed_origins = [\"eva.example.org\"]",
            "gateway.cors_allowed_origins",
        ),
        (
            "cors_allowed_origins = [\"ftp://eva.example.org\"]",
            "gateway.cors_allowed_origins",
        ),
    ];
    for (lines, key) in cases {
        let line = load_error(Some(&format!("[gateway]\n{lines}\n")), &[]);
        assert!(line.contains(key), "{lines}: {line}");
    }
    // The canonical form is suggested.
    let line = load_error(
        Some("[gateway]\ncors_allowed_origins = [\"https://EVA.example.org:443\"]\n"),
        &[],
    );
    assert!(line.contains("`https://eva.example.org`"), "{line}");

    // 0 switches a limit off, whatever its burst; good values load.
    let file = TempToml::new(
        "[gateway]\nrate_limit_ip_per_minute = 0\nrate_limit_ip_burst = 0\n\
         trusted_proxies = [\"127.0.0.1\", \"10.0.0.0/8\", \"fd00::/8\"]\n\
         cors_allowed_origins = [\"https://eva.example.org\", \"http://localhost:5173\"]\n",
    );
    let cfg = Config::load_from(Some(&file.0), env(&[])).expect("loads");
    assert_eq!(cfg.gateway.rate_limit_ip_per_minute, 0);
    assert_eq!(cfg.gateway.cors_allowed_origins.len(), 2);
}

#[test]
fn trusted_proxies_are_addresses_or_blocks() {
    use eva_platform::config::IpNet;
    use std::net::IpAddr;
    let ip = |s: &str| s.parse::<IpAddr>().expect("an address");
    let net = IpNet::parse("10.0.0.0/8").expect("a block");
    assert!(net.contains(ip("10.200.3.4")));
    assert!(net.contains(ip("::ffff:10.1.1.1")));
    assert!(!net.contains(ip("11.0.0.1")));
    assert!(!net.contains(ip("::1")));
    let one = IpNet::parse("192.0.2.7").expect("an address");
    assert!(one.contains(ip("192.0.2.7")) && !one.contains(ip("192.0.2.8")));
    let all = IpNet::parse("0.0.0.0/0").expect("every IPv4 address");
    assert!(all.contains(ip("203.0.113.1")));
    let v6 = IpNet::parse("fd00::/8").expect("a block");
    assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
    for bad in [
        "",
        "10.0.0.0/",
        "10.0.0.0/33",
        "::/129",
        "host",
        "10.0.0.0/-1",
    ] {
        assert!(IpNet::parse(bad).is_err(), "{bad:?}");
    }
}
