//! Two association boxes and the département's hub, each a nats-server started from the
//! committed `deploy/nats/federation/{hub,box}.conf`; boxes A and B are leaf nodes of the
//! hub, A's link through a TCP proxy the test cuts. The services run on box A; a
//! partner structure registered in A is B's (B's `[federation] structures`). The hub's
//! `EVA_FEDERATION` sources A's and B's `EVA_PARTNERS`, B's `EVA_FEDERATION_IN` sources
//! the hub's on B's structure: streams `eva_platform::federation::setup` creates.
//!
//! A referral from A to B's structure arrives in B. The link is cut; referrals go on
//! being created in A (A works alone); the link comes back: B holds exactly A's events
//! for its structure, in A's order, none lost, none twice.
//!
//! Statistics: the hub's own services (`[federation] role = "hub"`) gather box A's
//! structures, accompaniments and shared diagnostics in the hub's `EVA_FED_…` copies
//! and show them in the hub's figures; what A records while cut off shows once the link
//! is back, once; a rebuild on the hub finds them again; the hub's own streams hold
//! none of A's events.
//!
//! Not covered here: B's referrals service reading `EVA_FEDERATION_IN` (no such code
//! yet).

use std::collections::HashSet;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use async_nats::jetstream;
use eva_platform::auth::Role;
use eva_platform::bus::{Bus, streams};
use eva_platform::config::{BusConfig, FederationConfig, FederationRole};
use eva_platform::federation::{self, BOX_STREAM, HUB_STREAM};
use eva_tests::api::{consent, get, person, person_token, post, structure, until};
use eva_tests::cluster::{TcpProxy, deploy_nats, stream_ids};
use eva_tests::nats::NatsServer;
use eva_tests::ports::free_port;
use eva_tests::sandbox::{Backend, Sandbox};
use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::time::{Instant, sleep};

use crate::statistics::{cells, shared_diagnostic};

/// The slowest a loaded 2-core machine, and a source resuming after a cut, may take.
const ARRIVAL: Duration = Duration::from_secs(120);
/// Referrals created while the link is cut.
const WHILE_CUT: usize = 4;

async fn start_box(domain: &str, hub_leaf_url: &str) -> Result<NatsServer> {
    NatsServer::start_from_file(
        &deploy_nats("federation/box.conf"),
        &[
            ("EVA_BOX_DOMAIN", domain),
            ("EVA_HUB_LEAF_URL", hub_leaf_url),
        ],
        true,
    )
    .await
}

/// The hub, and the address of its leaf-node port.
async fn start_hub() -> Result<(NatsServer, String)> {
    let mut attempt = 1;
    loop {
        let leaf_listen = format!("127.0.0.1:{}", free_port());
        let hub = NatsServer::start_from_file(
            &deploy_nats("federation/hub.conf"),
            &[("EVA_NATS_LEAF_LISTEN", leaf_listen.as_str())],
            true,
        )
        .await;
        match hub {
            Ok(hub) => return Ok((hub, leaf_listen)),
            // The leaf-node port, free a moment ago, was taken meanwhile.
            Err(error) if attempt < 3 => {
                tracing::warn!(%error, "the hub did not start, retrying");
                attempt += 1;
            }
            Err(error) => return Err(error),
        }
    }
}

/// A person followed by `sender`, consenting to `target`, referred to it; answers the
/// referral's id.
async fn refer(
    sb: &Sandbox,
    counselor: &str,
    sender: &str,
    target: &str,
    n: usize,
) -> Result<String> {
    let last_name = format!("Essai{}", char::from(b'a' + n as u8));
    let ana = person(sb, counselor, sender, "Ana", &last_name).await?;
    let ana_token = person_token(sb, &ana).await?;
    consent(
        sb,
        &ana_token,
        &ana,
        target,
        &["mobilite"],
        &["orientation"],
    )
    .await?;
    let r = until(
        sb,
        Method::POST,
        "/api/v1/referrals",
        counselor,
        Some(json!({
            "person_id": ana,
            "sender_structure_id": sender,
            "target_structure_id": target,
            "domains": ["mobilite"],
            "reason": "Besoin d'un accompagnement mobilité.",
        })),
        |s, _| s == StatusCode::CREATED,
    )
    .await?;
    Ok(r["id"].as_str().context("referral id")?.to_owned())
}

/// Waits until `stream` on `js` holds `n` messages on `filter`; answers them.
async fn until_holds(
    js: &jetstream::Context,
    stream: &str,
    filter: &str,
    n: usize,
) -> Result<Vec<(String, String)>> {
    let deadline = Instant::now() + ARRIVAL;
    loop {
        let held = match js.get_stream(stream).await {
            Ok(_) => stream_ids(js, stream, Some(filter)).await?,
            Err(_) => Vec::new(),
        };
        if held.len() == n {
            return Ok(held);
        }
        if held.len() > n || Instant::now() > deadline {
            bail!(
                "{stream} holds {} messages on {filter}, expected {n}",
                held.len()
            );
        }
        sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until the hub no longer reaches A's JetStream (the leaf link is down).
async fn until_cut_off(hub: &async_nats::Client) -> Result<()> {
    let deadline = Instant::now() + ARRIVAL;
    let a = jetstream::with_domain(hub.clone(), "box-a");
    loop {
        let answer = tokio::time::timeout(Duration::from_secs(2), a.query_account()).await;
        if !matches!(answer, Ok(Ok(_))) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the hub still reaches box A after the cut");
        }
        sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn referrals_cross_the_hub_in_order_through_a_cut_link() -> Result<()> {
    let (hub, leaf_listen) = start_hub().await?;
    let proxy = TcpProxy::start(leaf_listen.clone()).await?;
    let box_a = start_box("box-a", &format!("nats-leaf://{}", proxy.address())).await?;
    let box_b = start_box("box-b", &format!("nats-leaf://{leaf_listen}")).await?;

    // Box A: its services (a box of the federation: they create A's own
    // `EVA_FEDERATION_IN` at start), a structure, and a partner structure that lives in
    // box B.
    let url_a = box_a.url();
    let hosted_by_a = uuid::Uuid::now_v7().to_string();
    let a_cfg = FederationConfig {
        role: FederationRole::Box,
        domain: "box-a".into(),
        structures: vec![hosted_by_a],
        ..Default::default()
    };
    let sb = Sandbox::start_configured(box_a, url_a, Backend::Sqlite, |c| {
        c.federation = a_cfg;
    })
    .await?;
    let operator = sb.token("ops-a", vec![Role::Operator], vec![]).await?;
    let a = structure(
        &sb,
        &operator,
        "Chantier A",
        "41735218600007",
        "association",
    )
    .await?;
    let b = structure(
        &sb,
        &operator,
        "Garage solidaire B",
        "51734218700005",
        "partner",
    )
    .await?;
    let counselor = sb
        .token("counselor-a", vec![Role::Counselor], vec![a.clone()])
        .await?;

    // The federation streams, as the hub's and B's services create them at start.
    let bus = BusConfig::default();
    let hub_bus = Bus::connect(&bus, &hub.url(), "tests-hub").await?;
    let hub_cfg = FederationConfig {
        role: FederationRole::Hub,
        domain: "hub".into(),
        boxes: vec!["box-a".into(), "box-b".into()],
        ..Default::default()
    };
    federation::setup(&hub_bus, &hub_cfg, 1).await?;
    let b_bus = Bus::connect(&bus, &box_b.url(), "tests-box-b").await?;
    let b_cfg = FederationConfig {
        role: FederationRole::Box,
        domain: "box-b".into(),
        structures: vec![b.clone()],
        ..Default::default()
    };
    federation::setup(&b_bus, &b_cfg, 1).await?;
    // The hub's and B's own EVA streams, as their services create them: same subjects
    // as A's, and they must capture nothing of A's.
    for spec in streams::ALL {
        hub_bus.ensure_stream(spec).await?;
        b_bus.ensure_stream(spec).await?;
    }

    let for_b = format!("eva.partners.{b}.>");
    let a_js = jetstream::new(sb.nats.connect().await?);
    let (hub_js, b_js) = (hub_bus.jetstream(), b_bus.jetstream());

    // One referral arrives in B, through the hub.
    let mut referrals = vec![refer(&sb, &counselor, &a, &b, 0).await?];
    let arrived = until_holds(b_js, BOX_STREAM, &for_b, 1).await?;
    ensure!(
        arrived[0].0 == format!("eva.partners.{b}.referrals.sent"),
        "{arrived:?}"
    );

    // The link is cut: A keeps working, its events wait in its own stream.
    proxy.cut();
    until_cut_off(hub_bus.client()).await?;
    for n in 1..=WHILE_CUT {
        referrals.push(refer(&sb, &counselor, &a, &b, n).await?);
    }
    let in_a = until_holds(&a_js, "EVA_PARTNERS", &for_b, 1 + WHILE_CUT).await?;
    let in_b = stream_ids(b_js, BOX_STREAM, Some(&for_b)).await?;
    ensure!(in_b.len() == 1, "B got {in_b:?} while A was cut off");
    // Still cut: A did not find another way to the hub (the hub advertises none).
    let a_api = jetstream::with_domain(hub_bus.client().clone(), "box-a");
    let through = tokio::time::timeout(Duration::from_secs(2), a_api.query_account()).await;
    ensure!(
        !matches!(through, Ok(Ok(_))),
        "the hub reaches A during the cut"
    );

    // The link comes back: B gets exactly A's events for its structure, in A's order.
    proxy.restore();
    let restored = Instant::now();
    let at_hub = until_holds(hub_js, HUB_STREAM, &for_b, 1 + WHILE_CUT).await?;
    let in_b = until_holds(b_js, BOX_STREAM, &for_b, 1 + WHILE_CUT).await?;
    tracing::info!(after = ?restored.elapsed(), "the events made while cut reached B");
    ensure!(at_hub == in_a, "the hub holds {at_hub:?}, A {in_a:?}");
    ensure!(in_b == in_a, "B holds {in_b:?}, A {in_a:?}");
    let distinct: HashSet<&str> = in_b.iter().map(|(_, id)| id.as_str()).collect();
    ensure!(
        distinct.len() == in_b.len() && !distinct.contains(""),
        "{in_b:?}"
    );

    // And in the order the referrals were created: each event names its referral.
    let mut b_consumer = b_js
        .get_stream(BOX_STREAM)
        .await?
        .create_consumer(jetstream::consumer::pull::OrderedConfig {
            filter_subject: for_b.clone(),
            ..Default::default()
        })
        .await?;
    ensure!(b_consumer.info().await?.num_pending == referrals.len() as u64);
    let mut messages = b_consumer.messages().await?;
    for id in &referrals {
        use futures::StreamExt;
        let m = tokio::time::timeout(Duration::from_secs(30), messages.next())
            .await
            .context("reading B's stream")?
            .context("B's stream ended")??;
        let ce_subject = m
            .headers
            .as_ref()
            .and_then(|h| h.get("ce-subject"))
            .map(|v| v.as_str().to_owned());
        ensure!(ce_subject.as_deref() == Some(id.as_str()), "{m:?} for {id}");
    }
    // A's own inbound stream, made by its services, holds nothing: no box wrote to
    // A's structure.
    let a_in = stream_ids(&a_js, BOX_STREAM, None).await?;
    ensure!(a_in.is_empty(), "A's {BOX_STREAM} holds {a_in:?}");

    // Nothing of A's crossed the links as plain NATS into the others' streams.
    for spec in streams::ALL {
        for (server, js) in [("hub", hub_js), ("B", b_js)] {
            let held = js.get_stream(spec.name).await?.info().await?.state.messages;
            ensure!(
                held == 0,
                "{server}'s {} holds {held} messages of A's",
                spec.name
            );
        }
    }
    drop(box_b);
    drop(hub);
    sb.stop().await
}

/// Waits until the hub's figures show `n` shared diagnostics and `n` people accompanied
/// by an association (box A's structure, known to the hub by its `structure.created`).
async fn until_hub_shows(hub: &Sandbox, analyst: &str, n: i64) -> Result<()> {
    let deadline = Instant::now() + ARRIVAL;
    loop {
        let shared = cells(hub, analyst, "diagnostics_shared").await?;
        let people = cells(hub, analyst, "people_accompanied?group_by=structure_kind").await?;
        let count = |cells: &[serde_json::Value]| {
            cells
                .iter()
                .filter(|c| c.get("structure_kind").is_none_or(|k| k == "association"))
                .filter_map(|c| c["count"].as_i64())
                .sum::<i64>()
        };
        let (d, p) = (count(&shared), count(&people));
        if d == n && p == n {
            return Ok(());
        }
        if d > n || p > n || Instant::now() > deadline {
            bail!(
                "the hub shows {d} shared diagnostics and {p} people, expected {n}: {shared:?} {people:?}"
            );
        }
        sleep(Duration::from_millis(500)).await;
    }
}

/// Does `subject` match the NATS filter `pattern` (`>` last, no `*`)?
fn matches(pattern: &str, subject: &str) -> bool {
    match pattern.strip_suffix('>') {
        Some(prefix) => subject.starts_with(prefix),
        None => subject == pattern,
    }
}

/// A person in `a`, followed by its counselor, with a shared diagnostic.
async fn followed_and_diagnosed(sb: &Sandbox, counselor: &str, a: &str, n: usize) -> Result<()> {
    let last_name = format!("Essai{}", char::from(b'a' + n as u8));
    let p = person(sb, counselor, a, "Ana", &last_name).await?;
    shared_diagnostic(sb, counselor, a, &p).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_boxs_statistics_reach_the_hub_once_through_a_cut_link() -> Result<()> {
    let (hub, leaf_listen) = start_hub().await?;
    let proxy = TcpProxy::start(leaf_listen).await?;
    let box_a = start_box("box-a", &format!("nats-leaf://{}", proxy.address())).await?;

    // Box A's services first (its streams exist when the hub's copies source them),
    // then the hub's, a federation hub with a low disclosure threshold.
    let url_a = box_a.url();
    let a_cfg = FederationConfig {
        role: FederationRole::Box,
        domain: "box-a".into(),
        structures: vec![uuid::Uuid::now_v7().to_string()],
        ..Default::default()
    };
    let sb = Sandbox::start_configured(box_a, url_a, Backend::Sqlite, |c| {
        c.federation = a_cfg;
    })
    .await?;
    let hub_url = hub.url();
    let hub_sb = Sandbox::start_configured(hub, hub_url, Backend::Sqlite, |c| {
        c.federation = FederationConfig {
            role: FederationRole::Hub,
            domain: "hub".into(),
            boxes: vec!["box-a".into()],
            ..Default::default()
        };
        c.statistics.disclosure_threshold = 2;
    })
    .await?;
    let analyst = hub_sb
        .token("analyst-hub", vec![Role::Analyst], vec![])
        .await?;
    let hub_operator = hub_sb
        .token("ops-hub", vec![Role::Operator], vec![])
        .await?;

    // In A: an association, two people it follows, each with a shared diagnostic.
    let operator = sb.token("ops-a", vec![Role::Operator], vec![]).await?;
    let a = structure(
        &sb,
        &operator,
        "Chantier A",
        "41735218600007",
        "association",
    )
    .await?;
    let counselor = sb
        .token("counselor-a", vec![Role::Counselor], vec![a.clone()])
        .await?;
    for n in 0..2 {
        followed_and_diagnosed(&sb, &counselor, &a, n).await?;
    }
    until_hub_shows(&hub_sb, &analyst, 2).await?;

    // The link is cut: A goes on recording; the hub sees none of it meanwhile.
    let hub_client = hub_sb.nats.connect().await?;
    proxy.cut();
    until_cut_off(&hub_client).await?;
    for n in 2..4 {
        followed_and_diagnosed(&sb, &counselor, &a, n).await?;
    }
    let shared = "eva.diagnostics.diagnostic.shared";
    let a_js = jetstream::new(sb.nats.connect().await?);
    let hub_js = jetstream::new(hub_client);
    until_holds(&a_js, "EVA_DIAGNOSTICS", shared, 4).await?;
    let at_hub = stream_ids(&hub_js, "EVA_FED_DIAGNOSTICS", Some(shared)).await?;
    ensure!(
        at_hub.len() == 2,
        "the hub got {at_hub:?} while A was cut off"
    );

    // The link comes back: the hub shows all of A's figures, each event once.
    proxy.restore();
    until_hub_shows(&hub_sb, &analyst, 4).await?;
    let mut a_ids = HashSet::new();
    let mut copied = 0;
    for (copy, of, subjects) in federation::statistics::copies() {
        let in_a: Vec<_> = stream_ids(&a_js, of.name, None)
            .await?
            .into_iter()
            .filter(|(subject, _)| subjects.iter().any(|p| matches(p, subject)))
            .collect();
        let at_hub = stream_ids(&hub_js, copy.name, None).await?;
        ensure!(
            at_hub == in_a,
            "{}: the hub holds {at_hub:?}, A {in_a:?}",
            copy.name
        );
        copied += at_hub.len();
        a_ids.extend(
            stream_ids(&a_js, of.name, None)
                .await?
                .into_iter()
                .map(|(_, id)| id),
        );
    }
    // A's kept answers (`Idempotency-Key`) stay in A: the hub's bucket holds none.
    let r = sb
        .http
        .post(sb.url("/api/v1/people"))
        .bearer_auth(&counselor)
        .header("Idempotency-Key", "federation-1")
        .json(
            &json!({ "structure_id": a, "first_name": "Ana", "last_name": "Gardee",
            "birth_date": "1985-05-20", "commune_insee": "27229" }),
        )
        .send()
        .await?;
    ensure!(r.status() == StatusCode::CREATED, "{}", r.status());
    let kept = |js: jetstream::Context| async move {
        Ok::<_, anyhow::Error>(
            js.get_stream("KV_EVA_IDEMPOTENCY")
                .await?
                .info()
                .await?
                .state
                .messages,
        )
    };
    ensure!(kept(a_js.clone()).await? == 1, "A keeps its answer");
    // Forwarding across the link would be immediate: watch the hub for a moment.
    let watch = Instant::now() + Duration::from_secs(2);
    while Instant::now() < watch {
        ensure!(
            kept(hub_js.clone()).await? == 0,
            "the hub's bucket holds A's answer"
        );
        sleep(Duration::from_millis(100)).await;
    }

    // The hub's own streams, which its own services read, captured none of A's events.
    for spec in streams::ALL {
        let captured: Vec<_> = stream_ids(&hub_js, spec.name, None)
            .await?
            .into_iter()
            .filter(|(_, id)| a_ids.contains(id))
            .collect();
        ensure!(
            captured.is_empty(),
            "the hub's {} holds A's {captured:?}",
            spec.name
        );
    }

    // A rebuild on the hub reads the copies again: same figures.
    let before = (
        cells(&hub_sb, &analyst, "diagnostics_shared").await?,
        cells(
            &hub_sb,
            &analyst,
            "people_accompanied?group_by=structure_kind",
        )
        .await?,
    );
    let (s, v) = post(
        &hub_sb,
        "/api/v1/statistics/rebuilds",
        &hub_operator,
        json!({}),
    )
    .await?;
    ensure!(s == StatusCode::ACCEPTED, "{s} {v}");
    let id = v["rebuild_id"].as_str().context("rebuild id")?.to_owned();
    let deadline = Instant::now() + ARRIVAL;
    loop {
        let (s, v) = get(
            &hub_sb,
            &format!("/api/v1/statistics/rebuilds/{id}"),
            &hub_operator,
        )
        .await?;
        ensure!(s == StatusCode::OK, "{s} {v}");
        if v["state"] == "completed" {
            let applied = v["events_applied"].as_i64().unwrap_or(0);
            ensure!(
                applied >= copied as i64,
                "the rebuild applied {applied} of {copied}: {v}"
            );
            break;
        }
        if Instant::now() > deadline {
            bail!("the hub's rebuild did not complete: {v}");
        }
        sleep(Duration::from_millis(200)).await;
    }
    let after = (
        cells(&hub_sb, &analyst, "diagnostics_shared").await?,
        cells(
            &hub_sb,
            &analyst,
            "people_accompanied?group_by=structure_kind",
        )
        .await?,
    );
    ensure!(
        after == before,
        "the rebuild changed the hub's figures: {before:?} → {after:?}"
    );
    hub_sb.stop().await?;
    sb.stop().await
}
