//! The deployment files in `deploy/`: each test fails if a property EVA relies on is broken.
//! Kubernetes manifests pass `kubernetes-validate --strict` (the 1.37 schemas) and keep
//! their shape (probes, resources, disruption budgets, autoscalers, only the gateway public,
//! default-deny, NATS R3 with fsync); their EVA configuration loads with EVA's own loader;
//! nats-server accepts the NATS configurations; systemd accepts the box's units; the
//! Dockerfile stays multi-stage, non-root and binary-only.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail, ensure};
use serde_json::Value;

const SERVICES: [(&str, u16); 5] = [
    ("identity", 50051),
    ("diagnostics", 50052),
    ("referrals", 50053),
    ("community", 50054),
    ("statistics", 50055),
];

fn repo() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_owned()
}

/// `$var`, else `<repo>/.tools/bin/<name>`; missing is a failure, never a skip.
fn tool(var: &str, name: &str) -> Result<PathBuf> {
    let default = repo().join(".tools/bin").join(name);
    let path = std::env::var_os(var).map_or(default, PathBuf::from);
    ensure!(
        path.is_file(),
        "{name} not found at {}: run scripts/ensure-tools.sh (or set {var})",
        path.display()
    );
    Ok(path)
}

fn run(cmd: &mut Command) -> Result<(String, String)> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    ensure!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{stdout}{stderr}",
        out.status
    );
    Ok((stdout, stderr))
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            yaml_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
    out.sort();
    Ok(())
}

fn k8s_files() -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    yaml_files(&repo().join("deploy/k8s"), &mut files)?;
    ensure!(!files.is_empty(), "no manifest under deploy/k8s");
    Ok(files)
}

/// YAML to JSON with the venv's PyYAML (kubernetes-validate's own dependency), refusing
/// duplicate keys: PyYAML keeps the last one silently, which once hid a whole manifest.
const YAML_TO_JSON: &str = r#"
import json, sys, yaml
class Strict(yaml.SafeLoader):
    pass
def mapping(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, "duplicate key %r" % (key,), key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep)
Strict.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
docs = []
for path in sys.argv[1:]:
    with open(path) as f:
        for doc in yaml.load_all(f, Loader=Strict):
            if doc is not None:
                docs.append({"file": path, "doc": doc})
json.dump(docs, sys.stdout)
"#;

/// One manifest: the file (relative to deploy/k8s) and the document.
struct Doc {
    file: String,
    doc: Value,
}

impl Doc {
    fn kind(&self) -> &str {
        self.doc["kind"].as_str().unwrap_or_default()
    }
    fn name(&self) -> &str {
        self.doc["metadata"]["name"].as_str().unwrap_or_default()
    }
}

fn load() -> Result<Vec<Doc>> {
    let validator = tool("EVA_KUBERNETES_VALIDATE", "kubernetes-validate")?;
    let python = validator.with_file_name("python3");
    let files = k8s_files()?;
    let (json, _) = run(Command::new(&python)
        .arg("-c")
        .arg(YAML_TO_JSON)
        .args(&files))?;
    let base = repo().join("deploy/k8s");
    let docs: Vec<Value> = serde_json::from_str(&json)?;
    docs.into_iter()
        .map(|d| {
            let file = Path::new(d["file"].as_str().unwrap_or_default());
            let file = file.strip_prefix(&base).unwrap_or(file);
            let doc = Doc {
                file: file.display().to_string(),
                doc: d["doc"].clone(),
            };
            ensure!(
                doc.kind() == "Namespace" || doc.doc["metadata"]["namespace"] == "eva",
                "{}: {} {} is not in namespace eva",
                doc.file,
                doc.kind(),
                doc.name()
            );
            Ok(doc)
        })
        .collect()
}

fn find<'a>(docs: &'a [Doc], kind: &str, name: &str) -> Result<&'a Doc> {
    docs.iter()
        .find(|d| d.kind() == kind && d.name() == name)
        .with_context(|| format!("no {kind} named {name} in deploy/k8s"))
}

/// `selector.matchLabels` picks the pods whose labels are `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    selector["matchLabels"]
        .as_object()
        .is_some_and(|m| !m.is_empty() && m.iter().all(|(k, v)| labels[k] == *v))
}

#[test]
fn kubernetes_manifests_pass_the_schema_checker() -> Result<()> {
    let validator = tool("EVA_KUBERNETES_VALIDATE", "kubernetes-validate")?;
    let files = k8s_files()?;
    let (stdout, stderr) = run(Command::new(&validator).arg("--strict").args(&files))?;
    // A kind without a schema is only a warning: refuse it too, nothing goes unchecked.
    let output = format!("{stdout}{stderr}");
    ensure!(
        !output.contains("WARN") && !output.contains("ERROR"),
        "kubernetes-validate:\n{output}"
    );
    let passed = output.lines().filter(|l| l.contains(" passed ")).count();
    let resources = load()?.len();
    ensure!(
        passed == resources,
        "kubernetes-validate checked {passed} resources, the files hold {resources}:\n{output}"
    );
    Ok(())
}

#[test]
fn every_eva_deployment_has_probes_resources_a_pdb_and_an_hpa() -> Result<()> {
    let docs = load()?;
    let parts = SERVICES
        .iter()
        .copied()
        .chain([("gateway", 8080)])
        .collect::<Vec<_>>();
    for (name, port) in parts {
        let deployment = find(&docs, "Deployment", name)?;
        let pod = &deployment.doc["spec"]["template"];
        let labels = &pod["metadata"]["labels"];
        let c = &pod["spec"]["containers"][0];
        let at = format!("{}: Deployment {name}", deployment.file);
        ensure!(
            c["args"] == serde_json::json!(["serve", name]),
            "{at}: args must be [serve, {name}], got {}",
            c["args"]
        );
        for probe in ["readinessProbe", "livenessProbe"] {
            let p = &c[probe];
            if name == "gateway" {
                ensure!(
                    p["httpGet"]["path"].is_string(),
                    "{at}: {probe} must be an httpGet"
                );
            } else {
                ensure!(
                    p["grpc"]["port"] == port,
                    "{at}: {probe} must be grpc on port {port} (grpc.health.v1), got {p}"
                );
            }
        }
        ensure!(
            c["ports"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["containerPort"] == port)),
            "{at}: container port {port} missing"
        );
        for r in ["cpu", "memory"] {
            ensure!(
                c["resources"]["requests"][r].is_string(),
                "{at}: resources.requests.{r} missing"
            );
        }
        ensure!(
            c["resources"]["limits"]["memory"].is_string(),
            "{at}: resources.limits.memory missing"
        );
        ensure!(
            pod["spec"]["securityContext"]["runAsNonRoot"] == true,
            "{at}: runAsNonRoot"
        );
        let sc = &c["securityContext"];
        ensure!(
            sc["readOnlyRootFilesystem"] == true && sc["allowPrivilegeEscalation"] == false,
            "{at}: readOnlyRootFilesystem and no privilege escalation"
        );
        ensure!(
            sc["capabilities"]["drop"]
                .as_array()
                .is_some_and(|d| d.contains(&"ALL".into())),
            "{at}: capabilities must drop ALL"
        );
        ensure!(
            docs.iter().any(|d| d.kind() == "Service"
                && d.doc["spec"]["selector"]
                    .as_object()
                    .is_some_and(|s| s.iter().all(|(k, v)| labels[k] == *v))
                && d.doc["spec"]["ports"]
                    .as_array()
                    .is_some_and(|ps| ps.iter().any(|p| p["port"] == port))),
            "{at}: no Service on port {port} selects it"
        );
        ensure!(
            docs.iter().any(|d| d.kind() == "PodDisruptionBudget"
                && d.doc["apiVersion"] == "policy/v1"
                && selects(&d.doc["spec"]["selector"], labels)),
            "{at}: no PodDisruptionBudget selects it"
        );
        ensure!(
            docs.iter().any(|d| d.kind() == "HorizontalPodAutoscaler"
                && d.doc["apiVersion"] == "autoscaling/v2"
                && d.doc["spec"]["scaleTargetRef"]["kind"] == "Deployment"
                && d.doc["spec"]["scaleTargetRef"]["name"] == name
                && d.doc["spec"]["minReplicas"].as_u64() >= Some(2)),
            "{at}: no autoscaling/v2 HorizontalPodAutoscaler (minReplicas >= 2) targets it"
        );
    }
    Ok(())
}

/// Every variable a pod gets: the ConfigMap's values, then its own (secrets as fake but
/// well-formed values).
fn pod_env(docs: &[Doc], deployment: &Doc) -> Result<BTreeMap<String, String>> {
    let c = &deployment.doc["spec"]["template"]["spec"]["containers"][0];
    let mut env = BTreeMap::new();
    for from in c["envFrom"].as_array().into_iter().flatten() {
        let name = from["configMapRef"]["name"].as_str().unwrap_or_default();
        let cm = find(docs, "ConfigMap", name)?;
        for (k, v) in cm.doc["data"].as_object().into_iter().flatten() {
            env.insert(k.clone(), v.as_str().unwrap_or_default().to_owned());
        }
    }
    for var in c["env"].as_array().into_iter().flatten() {
        let name = var["name"].as_str().unwrap_or_default().to_owned();
        let value = if let Some(v) = var["value"].as_str() {
            v.to_owned()
        } else if let Some(secret) = var["valueFrom"]["secretKeyRef"].as_object() {
            let (secret, key) = (&secret["name"], &secret["key"]);
            match (secret.as_str(), key.as_str()) {
                (Some("eva-keys"), Some("kek")) => eva_platform::crypto::Kek::generate_base64(),
                (Some("eva-nats"), Some("url")) => "nats://eva-services:pw@nats-0:4222".into(),
                (Some("eva-databases"), Some(svc)) => format!("postgres://u:pw@db/{svc}"),
                other => bail!(
                    "{}: {name} from an unknown secret {other:?}",
                    deployment.file
                ),
            }
        } else {
            continue;
        };
        env.insert(name, value);
    }
    Ok(env)
}

#[test]
fn each_pod_configuration_loads_with_evas_own_loader() -> Result<()> {
    let docs = load()?;
    for (name, port) in SERVICES.iter().copied().chain([("gateway", 8080)]) {
        let deployment = find(&docs, "Deployment", name)?;
        let env = pod_env(&docs, deployment)?;
        let config = eva_platform::Config::load_from(None, env.clone())
            .with_context(|| format!("{}: {name}'s environment", deployment.file))?;
        ensure!(config.bus.replicas == 3, "{name}: bus.replicas must be 3");
        ensure!(config.bus.url.is_some(), "{name}: bus.url from the Secret");
        let endpoints = [
            ("identity", &config.identity.endpoint),
            ("diagnostics", &config.diagnostics.endpoint),
            ("referrals", &config.referrals.endpoint),
            ("community", &config.community.endpoint),
            ("statistics", &config.statistics.endpoint),
        ];
        for (svc, endpoint) in endpoints {
            let port = SERVICES.iter().find(|s| s.0 == svc).map(|s| s.1);
            let want = format!("http://{svc}.eva.svc.cluster.local:{}", port.unwrap_or(0));
            ensure!(
                *endpoint == want,
                "{name}: {svc}.endpoint is {endpoint}, want {want}"
            );
        }
        if name == "gateway" {
            ensure!(config.gateway.listen.port() == port, "gateway.listen");
            continue;
        }
        let key = format!("EVA__{}__DATABASE_URL", name.to_uppercase());
        ensure!(
            env.contains_key(&key),
            "{name}: {key} must come from Secret eva-databases"
        );
        // identity seals people's keys and the signing key, referrals the webhook secrets.
        let needs_kek = matches!(name, "identity" | "referrals");
        ensure!(
            env.contains_key("EVA__KEYS__KEK") == needs_kek,
            "{name}: EVA__KEYS__KEK from Secret eva-keys exactly where the KEK is used"
        );
    }
    Ok(())
}

#[test]
fn only_the_gateway_is_public_and_ingress_is_denied_by_default() -> Result<()> {
    let docs = load()?;
    for ingress in docs.iter().filter(|d| d.kind() == "Ingress") {
        let backends = ingress.doc["spec"]["rules"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|r| r["http"]["paths"].as_array().into_iter().flatten())
            .map(|p| p["backend"]["service"]["name"].clone());
        for b in backends.chain([ingress.doc["spec"]["defaultBackend"]["service"]["name"].clone()])
        {
            ensure!(
                b.is_null() || b == "gateway",
                "{}: Ingress {} exposes {b}",
                ingress.file,
                ingress.name()
            );
        }
    }
    for svc in docs.iter().filter(|d| d.kind() == "Service") {
        let kind = svc.doc["spec"]["type"].as_str().unwrap_or("ClusterIP");
        if kind == "ClusterIP" {
            continue;
        }
        let selector = &svc.doc["spec"]["selector"]["app.kubernetes.io/name"];
        // The one other opening: partners and boxes reaching NATS, applied on its own.
        let partners = svc.file.starts_with("partners/")
            && *selector == "nats"
            && svc.doc["spec"]["ports"]
                .as_array()
                .is_some_and(|ps| ps.iter().all(|p| p["port"] == 4222 || p["port"] == 7422));
        ensure!(
            *selector == "gateway" || partners,
            "{}: Service {} of type {kind} exposes {selector}",
            svc.file,
            svc.name()
        );
    }
    let policies: Vec<&Doc> = docs
        .iter()
        .filter(|d| d.kind() == "NetworkPolicy")
        .collect();
    ensure!(
        policies.iter().any(|p| {
            let s = &p.doc["spec"];
            s["podSelector"].as_object().is_some_and(|o| o.is_empty())
                && s["policyTypes"]
                    .as_array()
                    .is_some_and(|t| t.contains(&"Ingress".into()))
                && s["ingress"].as_array().is_none_or(|i| i.is_empty())
        }),
        "no default-deny ingress NetworkPolicy (podSelector {{}}, no ingress rule)"
    );
    // Each service's gRPC port is open to exactly its callers in the code (the gateway,
    // and the `<service>.endpoint` clients listed in network-policies.yaml), never to a
    // namespace or an address range.
    let callers: [(&str, &[&str]); 5] = [
        (
            "identity",
            &[
                "gateway",
                "diagnostics",
                "referrals",
                "community",
                "statistics",
            ],
        ),
        ("diagnostics", &["gateway", "identity", "referrals"]),
        ("referrals", &["gateway", "identity"]),
        ("community", &["gateway", "identity"]),
        ("statistics", &["gateway", "identity"]),
    ];
    for (name, want) in callers {
        let port = SERVICES.iter().find(|s| s.0 == name).map_or(0, |s| s.1);
        let labels =
            &find(&docs, "Deployment", name)?.doc["spec"]["template"]["metadata"]["labels"];
        let mut peers = BTreeSet::new();
        for p in policies
            .iter()
            .filter(|p| selects(&p.doc["spec"]["podSelector"], labels))
        {
            for rule in p.doc["spec"]["ingress"].as_array().into_iter().flatten() {
                let ports: BTreeSet<u64> = rule["ports"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|p| p["port"].as_u64())
                    .collect();
                if !ports.is_empty() && !ports.contains(&u64::from(port)) {
                    continue;
                }
                for peer in rule["from"].as_array().into_iter().flatten() {
                    let pod = peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"].as_str();
                    match pod {
                        Some(pod) if peer.get("namespaceSelector").is_none() => {
                            peers.insert(pod.to_owned());
                        }
                        _ => bail!(
                            "{}: NetworkPolicy {} opens {name}'s gRPC port to {peer}",
                            p.file,
                            p.name()
                        ),
                    }
                }
            }
        }
        let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
        ensure!(
            peers == want,
            "{name}'s gRPC port is open to {peers:?}; its callers are {want:?}"
        );
    }
    Ok(())
}

/// `$EVA_NATS_SERVER`, else `<repo>/.tools/bin/nats-server` (as the harness finds it).
fn nats_server() -> Result<PathBuf> {
    tool("EVA_NATS_SERVER", "nats-server")
}

#[test]
fn nats_cluster_is_three_nodes_with_jetstream_fsync_and_a_valid_config() -> Result<()> {
    let docs = load()?;
    let sts = find(&docs, "StatefulSet", "nats")?;
    ensure!(
        sts.doc["spec"]["replicas"] == 3,
        "NATS StatefulSet must have 3 replicas"
    );
    ensure!(
        sts.doc["spec"]["volumeClaimTemplates"][0]["metadata"]["name"].is_string(),
        "NATS StatefulSet must keep JetStream on a PersistentVolumeClaim"
    );
    let labels = &sts.doc["spec"]["template"]["metadata"]["labels"];
    ensure!(
        docs.iter().any(|d| d.kind() == "PodDisruptionBudget"
            && d.doc["spec"]["maxUnavailable"] == 1
            && selects(&d.doc["spec"]["selector"], labels)),
        "NATS needs a PodDisruptionBudget with maxUnavailable 1"
    );
    let conf = find(&docs, "ConfigMap", "nats-config")?.doc["data"]["nats.conf"]
        .as_str()
        .context("nats-config has no nats.conf")?
        .to_owned();
    for want in ["jetstream {", "sync_interval: always", "cluster {"] {
        ensure!(conf.contains(want), "nats.conf lacks `{want}`");
    }
    let routes = conf
        .lines()
        .filter(|l| l.trim().starts_with("nats://nats-"))
        .count();
    ensure!(
        routes == 3,
        "nats.conf must route to the 3 nodes, has {routes}"
    );

    // nats-server itself parses it, laid out as the pod mounts it.
    let dir = tempfile::tempdir()?;
    std::fs::create_dir_all(dir.path().join("config"))?;
    std::fs::create_dir_all(dir.path().join("accounts"))?;
    std::fs::write(dir.path().join("config/nats.conf"), &conf)?;
    std::fs::copy(
        repo().join("deploy/nats/eva-accounts.conf"),
        dir.path().join("accounts/eva-accounts.conf"),
    )?;
    run(Command::new(nats_server()?)
        .args(["-t", "-c"])
        .arg(dir.path().join("config/nats.conf"))
        .env("POD_NAME", "nats-0"))?;
    Ok(())
}

#[test]
fn box_nats_config_is_loopback_jetstream_with_fsync_and_valid() -> Result<()> {
    let path = repo().join("deploy/box/nats.conf");
    let conf = std::fs::read_to_string(&path)?;
    for want in [
        "host: 127.0.0.1",
        "http: 127.0.0.1:",
        "store_dir: \"/var/lib/eva/nats\"",
        "sync_interval: always",
    ] {
        ensure!(
            conf.lines()
                .any(|l| l.trim() == want || l.trim().starts_with(want)),
            "deploy/box/nats.conf lacks `{want}`"
        );
    }
    run(Command::new(nats_server()?).args(["-t", "-c"]).arg(&path))?;
    Ok(())
}

#[test]
fn box_units_pass_systemd_analyze_and_keep_their_hardening() -> Result<()> {
    let analyze = match std::env::var_os("EVA_SYSTEMD_ANALYZE") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from("systemd-analyze"),
    };
    let units = [
        "eva-nats.service",
        "eva.service",
        "eva-backup.service",
        "eva-backup.timer",
    ];
    // `verify` checks that each ExecStart exists; on this machine the binaries are not
    // installed, so the copies point at /bin/true. Every directive is checked as written.
    let dir = tempfile::tempdir()?;
    let mut texts = BTreeMap::new();
    for unit in units {
        let text = std::fs::read_to_string(repo().join("deploy/box").join(unit))?;
        let runnable = text
            .replace("/usr/local/bin/nats-server", "/bin/true")
            .replace("/usr/local/bin/eva", "/bin/true")
            .replace("/usr/local/lib/eva/eva-backup.sh", "/bin/true");
        std::fs::write(dir.path().join(unit), runnable)?;
        texts.insert(unit, text);
    }
    let (stdout, stderr) = run(Command::new(&analyze)
        .args(["verify", "--man=no"])
        .args(units.iter().map(|u| dir.path().join(u))))
    .context("systemd-analyze (apt-get install systemd, or scripts/ensure-tools.sh)")?;
    // It reports bad directives on stderr and still exits 0.
    ensure!(
        stdout.trim().is_empty() && stderr.trim().is_empty(),
        "systemd-analyze verify:\n{stdout}{stderr}"
    );
    for unit in ["eva-nats.service", "eva.service", "eva-backup.service"] {
        for want in [
            "User=eva",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "PrivateTmp=yes",
            "CapabilityBoundingSet=",
        ] {
            ensure!(
                texts[unit].lines().any(|l| l == want),
                "{unit} lacks `{want}`"
            );
        }
    }
    for unit in ["eva-nats.service", "eva.service"] {
        for want in ["Restart=on-failure", "LimitNOFILE=65536"] {
            ensure!(
                texts[unit].lines().any(|l| l == want),
                "{unit} lacks `{want}`"
            );
        }
    }
    ensure!(
        texts["eva.service"]
            .lines()
            .any(|l| l == "Environment=EVA_CONFIG=/etc/eva/eva.toml")
            && texts["eva.service"].contains("ExecStart=/usr/local/bin/eva up"),
        "eva.service must run `eva up` with EVA_CONFIG=/etc/eva/eva.toml"
    );
    ensure!(
        texts["eva-backup.timer"].contains("OnCalendar=")
            && texts["eva-backup.timer"].contains("Persistent=true"),
        "eva-backup.timer must be a persistent calendar timer"
    );
    for script in ["install.sh", "eva-backup.sh"] {
        run(Command::new("bash")
            .arg("-n")
            .arg(repo().join("deploy/box").join(script)))?;
    }
    Ok(())
}

/// The configuration install.sh writes: deploy/eva.example.toml with the same four lines
/// changed (keep in step with its `sed`), loaded by EVA's own loader.
#[test]
fn box_configuration_from_the_example_loads() -> Result<()> {
    let example = std::fs::read_to_string(repo().join("deploy/eva.example.toml"))?;
    let dir = tempfile::tempdir()?;
    let kek = dir.path().join("kek.key");
    std::fs::write(&kek, eva_platform::crypto::Kek::generate_base64())?;
    let edits = [
        ("data_dir = \"data\"", "data_dir = \"/var/lib/eva\""),
        ("log_format = \"pretty\"", "log_format = \"json\""),
        (
            "# url = \"nats://127.0.0.1:4222\"",
            "url = \"nats://127.0.0.1:4222\"",
        ),
        (
            "# kek_file = \"/etc/eva/kek.key\"",
            "kek_file = \"/etc/eva/kek.key\"",
        ),
    ];
    let mut lines: Vec<String> = example.lines().map(str::to_owned).collect();
    for (from, to) in edits {
        let n = lines.iter().filter(|l| *l == from).count();
        ensure!(
            n == 1,
            "deploy/eva.example.toml has {n} lines `{from}`; install.sh edits exactly one"
        );
        for l in lines.iter_mut().filter(|l| *l == from) {
            // The test's own paths, where install.sh writes /etc/eva and /var/lib/eva.
            *l = to
                .replace("/etc/eva/kek.key", &kek.display().to_string())
                .replace("/var/lib/eva", &dir.path().display().to_string());
        }
    }
    let file = dir.path().join("eva.toml");
    std::fs::write(&file, lines.join("\n"))?;
    let config = eva_platform::Config::load_from(Some(&file), Vec::new())?;
    ensure!(config.bus.url.as_deref() == Some("nats://127.0.0.1:4222"));
    ensure!(config.keys.kek_file.as_deref() == Some(kek.as_path()));
    eva_platform::service::load_kek(&config)?;
    Ok(())
}

/// Instruction lines of a Dockerfile, continuation lines joined, comments dropped.
fn instructions(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') || (t.is_empty() && current.is_empty()) {
            continue;
        }
        match t.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(t);
                out.push(std::mem::take(&mut current));
            }
        }
    }
    out
}

#[test]
fn dockerfile_is_multi_stage_non_root_and_ships_only_the_binary() -> Result<()> {
    let text = std::fs::read_to_string(repo().join("deploy/docker/Dockerfile"))?;
    let lines = instructions(&text);
    let word = |l: &String| {
        l.split_whitespace()
            .next()
            .unwrap_or_default()
            .to_uppercase()
    };
    let froms: Vec<usize> = (0..lines.len())
        .filter(|&i| word(&lines[i]) == "FROM")
        .collect();
    ensure!(froms.len() >= 2, "the Dockerfile must be multi-stage");
    let first: Vec<&str> = lines[froms[0]].split_whitespace().collect();
    ensure!(
        first.len() == 4 && first[2].eq_ignore_ascii_case("AS"),
        "the first stage must be named (FROM … AS builder): {}",
        lines[froms[0]]
    );
    let builder = first[3];
    let last = &lines[*froms.last().unwrap_or(&0)..];
    for l in &lines {
        ensure!(
            !(word(l) == "ADD" && (l.contains("http://") || l.contains("https://"))),
            "no ADD from a URL (unchecked downloads): {l}"
        );
    }
    let copies: Vec<&String> = last.iter().filter(|l| word(l) == "COPY").collect();
    ensure!(
        copies
            .iter()
            .any(|l| l.contains(&format!("--from={builder}"))
                && l.split_whitespace()
                    .nth(2)
                    .is_some_and(|src| src.ends_with("/eva"))),
        "the runtime stage must COPY --from={builder} the eva binary"
    );
    ensure!(
        copies.iter().all(|l| l.contains("--from=")),
        "the runtime stage copies from the builder only, never the build context: {copies:?}"
    );
    let user = last
        .iter()
        .rfind(|l| word(l) == "USER")
        .context("the runtime stage has no USER")?;
    let uid = user.split_whitespace().nth(1).unwrap_or_default();
    let uid = uid.split(':').next().unwrap_or_default();
    ensure!(
        uid.parse::<u32>().is_ok_and(|u| u != 0),
        "USER must be a numeric non-root uid (runAsNonRoot checks it): {user}"
    );
    ensure!(
        last.iter().any(|l| l == "ENTRYPOINT [\"eva\"]"),
        "ENTRYPOINT [\"eva\"] missing"
    );
    ensure!(
        last.iter()
            .any(|l| word(l) == "CMD" && l.contains("\"serve\"")),
        "CMD must default to a `serve <service>`"
    );
    let ignore = std::fs::read_to_string(repo().join(".dockerignore"))?;
    for want in ["target", ".git", ".tools", "data"] {
        ensure!(
            ignore.lines().any(|l| l.trim() == want),
            ".dockerignore must leave out {want}"
        );
    }
    Ok(())
}
