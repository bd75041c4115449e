use eva_platform::Config;
use std::io::Write;
fn tryit(toml: &str, env: &[(&str, &str)]) {
    let p = std::env::temp_dir().join(format!("exp-{}.toml", std::process::id()));
    std::fs::File::create(&p)
        .unwrap()
        .write_all(toml.as_bytes())
        .unwrap();
    let r = Config::load_from(
        Some(&p),
        env.iter().map(|(a, b)| (a.to_string(), b.to_string())),
    );
    println!(
        "{toml:?} {env:?} => {:?}",
        r.map(|c| format!("{:?}", c.metrics))
            .map_err(|e| e.to_string())
    );
}
#[test]
fn exp() {
    tryit("[bus]\nurll = \"x\"\n", &[]);
    tryit("bogus = 1\n", &[]);
    tryit("[bogus]\nx = 1\n", &[]);
    tryit("", &[("EVA__BUS__BOGUS", "1")]);
    tryit("", &[("EVA__BOGUS", "1")]);
    tryit("[bus]\nreplicas = \"many\"\n", &[]);
    tryit("[metrics]\nlisten = \"\"\n", &[]);
    tryit("[metrics]\n", &[]);
    tryit("", &[("EVA__METRICS__LISTEN", "")]);
    tryit("[identity]\nlisten = \"nope\"\n", &[]);
    tryit("[telemetry]\nsample_ratio = 2.0\n", &[]);
    tryit("[telemetry]\nlog_format = \"xml\"\n", &[]);
    tryit("", &[("EVA__BUS__URL", "http://x:1")]);
    tryit("", &[("EVA__BUS__URL", "nats://a:1,nats://b:2")]);
    tryit("", &[("EVA__IDENTITY__DATABASE_URL", "mysql://x")]);
    tryit("", &[("EVA__BUS__REPLICAS", "3")]);
    tryit("[keys]\n", &[]);
}
