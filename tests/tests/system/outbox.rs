//! Fault tests of the outbox relay and the idempotent consumer, against a
//! real nats-server and real databases.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use eva_platform::Shutdown;
use eva_platform::bus::{Bus, CloudEvent};
use eva_platform::config::BusConfig;
use eva_platform::consumer::{self, Envelope, Outcome, Subscription};
use eva_platform::db::Db;
use eva_platform::outbox::{self, Relay};
use eva_tests::counting::{self, Counting, MIGRATIONS, TEST_STREAM};
use eva_tests::nats::NatsServer;
use eva_tests::postgres::PgCluster;

struct Rig {
    nats: NatsServer,
    db: Db,
    bus: Bus,
    _pg: Option<PgCluster>,
    _dir: tempfile::TempDir,
}

async fn rig(postgres: bool) -> Result<Rig> {
    let nats = NatsServer::start().await?;
    let dir = tempfile::tempdir()?;
    let (url, pg) = if postgres {
        let pg = PgCluster::start().await?;
        (pg.create_database("outbox").await?, Some(pg))
    } else {
        (
            format!("sqlite://{}/outbox.db?mode=rwc", dir.path().display()),
            None,
        )
    };
    let db = Db::connect(&url, 4).await?;
    db.migrate(&MIGRATIONS).await?;
    let bus = Bus::connect(&BusConfig::default(), &nats.url(), "tests").await?;
    bus.ensure_stream(&TEST_STREAM).await?;
    Ok(Rig {
        nats,
        db,
        bus,
        _pg: pg,
        _dir: dir,
    })
}

fn relay(r: &Rig, batch: usize) -> Relay {
    Relay::new(
        r.db.clone(),
        r.bus.clone(),
        batch,
        Duration::from_millis(20),
    )
}

async fn stream_messages(bus: &Bus) -> Result<u64> {
    let mut stream = bus.jetstream().get_stream(TEST_STREAM.name).await?;
    Ok(stream.info().await?.state.messages)
}

async fn wait_applied(db: &Db, n: i64, within: Duration) -> Result<(i64, i64)> {
    let deadline = Instant::now() + within;
    loop {
        let got = counting::applied(db).await?;
        if got.0 >= n {
            return Ok(got);
        }
        if Instant::now() > deadline {
            bail!("applied {} of {n} events", got.0);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn spawn_consumer(r: &Rig, durable: &str, projection: Counting, shutdown: &Shutdown) {
    let sub = Subscription {
        ack_wait: Duration::from_secs(2),
        ..Subscription::new(TEST_STREAM, durable, &["evatest.>"])
    };
    let (bus, db, sd) = (r.bus.clone(), r.db.clone(), shutdown.clone());
    tokio::spawn(async move { consumer::run(bus, db, sub, projection, sd).await });
}

/// The relay is killed again and again in the middle of its batches; once it
/// runs to the end, every event is in the stream exactly once and applied
/// exactly once.
#[tokio::test]
async fn relay_killed_mid_batch_loses_nothing() -> Result<()> {
    let r = rig(false).await?;
    const N: usize = 3_000;
    counting::enqueue(&r.db, "kill", N, 100).await?;
    for round in 0..8u64 {
        let task = tokio::spawn(relay(&r, 256).run(Shutdown::new()));
        tokio::time::sleep(Duration::from_millis(3 + round * 4)).await;
        task.abort();
        let _ = task.await;
    }
    let left_after_kills = outbox::pending(&r.db).await?;
    assert!(
        left_after_kills > 0,
        "the kills came too late to interrupt anything"
    );
    let pass = relay(&r, 256).drain().await?;
    assert_eq!(pass.failed, 0);
    assert_eq!(outbox::pending(&r.db).await?, 0);
    assert_eq!(
        stream_messages(&r.bus).await?,
        N as u64,
        "duplicates or losses in the stream"
    );

    let shutdown = Shutdown::new();
    spawn_consumer(&r, "tests-kill", Counting::default(), &shutdown);
    let (distinct, max) = wait_applied(&r.db, N as i64, Duration::from_secs(30)).await?;
    assert_eq!((distinct, max), (N as i64, 1));
    shutdown.trigger();
    Ok(())
}

async fn redelivered_applied_once(postgres: bool) -> Result<()> {
    let r = rig(postgres).await?;
    let projection = Counting::default();
    // The first five attempts fail: those events are NAKed and redelivered.
    projection.fail_first.store(5, Ordering::SeqCst);
    let shutdown = Shutdown::new();
    spawn_consumer(&r, "tests-redeliver", projection.clone(), &shutdown);
    counting::enqueue(&r.db, "redo", 50, 10).await?;
    relay(&r, 64).drain().await?;

    // The same event published again past JetStream's duplicate window
    // (a new Nats-Msg-Id, the same ce-id): the inbox absorbs it.
    let ev = counting::event("redo-0");
    wait_applied(&r.db, 50, Duration::from_secs(30)).await?;
    let original = {
        let mut h = r.db.acquire().await?;
        let row: (String,) = eva_platform::on_backend!(h.conn(), c => sqlx::query_as(
            "SELECT event_id FROM seen WHERE marker = 'redo-7'",
        ).fetch_one(&mut *c).await)?;
        row.0
    };
    let ce = CloudEvent {
        id: original.clone(),
        source: "/eva/tests".into(),
        event_type: "evatest.thing.happened".into(),
        time: "2026-11-28T12:00:00Z".into(),
        subject: None,
    };
    let mut headers = ce.to_headers(None);
    headers.insert("Nats-Msg-Id", format!("{original}-again").as_str());
    r.bus
        .jetstream()
        .publish_with_headers("evatest.thing.happened", headers, ev.payload.clone().into())
        .await?
        .await?;
    // Give the consumer time to see it, then check nothing moved.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let info = r
            .bus
            .jetstream()
            .get_stream(TEST_STREAM.name)
            .await?
            .consumer_info("tests-redeliver")
            .await?;
        if info.num_pending == 0 && info.num_ack_pending == 0 {
            break;
        }
        if Instant::now() > deadline {
            bail!("consumer did not catch up: {info:?}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(counting::applied(&r.db).await?, (50, 1));
    assert_eq!(
        projection.fail_first.load(Ordering::SeqCst),
        0,
        "the forced failures did not happen"
    );

    // Applying a seen envelope directly is a duplicate too.
    let envelope = Envelope {
        id: original.parse()?,
        nats_subject: "evatest.thing.happened".into(),
        event_type: "evatest.thing.happened".into(),
        source: "/eva/tests".into(),
        aggregate_id: None,
        time: time::OffsetDateTime::now_utc(),
        payload: ev.payload.clone().into(),
        stream_sequence: 0,
        delivered: 1,
    };
    let outcome = consumer::apply_once(&r.db, "tests-redeliver", &projection, &envelope).await;
    assert_eq!(outcome, Outcome::Duplicate);
    assert_eq!(counting::applied(&r.db).await?, (50, 1));
    shutdown.trigger();
    Ok(())
}

#[tokio::test]
async fn redelivered_event_is_applied_once_on_sqlite() -> Result<()> {
    redelivered_applied_once(false).await
}

#[tokio::test]
async fn redelivered_event_is_applied_once_on_postgres() -> Result<()> {
    redelivered_applied_once(true).await
}

/// nats-server crashes and comes back while events keep being committed:
/// the relay and the consumer resume by themselves and nothing is lost or
/// applied twice.
#[tokio::test]
async fn nats_server_restart_is_survived() -> Result<()> {
    let mut r = rig(false).await?;
    let shutdown = Shutdown::new();
    tokio::spawn(relay(&r, 128).run(shutdown.clone()));
    spawn_consumer(&r, "tests-restart", Counting::default(), &shutdown);
    counting::enqueue(&r.db, "before", 300, 10).await?;
    wait_applied(&r.db, 300, Duration::from_secs(20)).await?;

    r.nats.kill().await?;
    // Commits go on while the bus is down: they wait in the outbox.
    counting::enqueue(&r.db, "during", 200, 10).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    r.nats.restart().await?;
    counting::enqueue(&r.db, "after", 300, 10).await?;

    let (distinct, max) = wait_applied(&r.db, 800, Duration::from_secs(60)).await?;
    assert_eq!((distinct, max), (800, 1));
    assert_eq!(stream_messages(&r.bus).await?, 800);
    shutdown.trigger();
    Ok(())
}

/// An access to a person's data leaves an `eva.audit.<service>.access`
/// event, committed with the transaction that read or wrote the data.
#[tokio::test]
async fn access_log_events_reach_the_audit_stream() -> Result<()> {
    use eva_platform::audit::{self, Access};
    use eva_platform::auth::{Principal, Role};
    use eva_proto::audit::v1::{AccessAction, AccessRecorded};

    let r = rig(false).await?;
    r.bus
        .ensure_stream(&eva_platform::bus::streams::AUDIT)
        .await?;
    let counselor = Principal {
        user_id: "u-1".into(),
        roles: vec![Role::Counselor],
        structures: vec!["s-1".into()],
        person_id: None,
        token_id: "t-1".into(),
    };
    let mut tx = r.db.begin().await?;
    audit::record(
        &mut tx,
        "tests",
        Access {
            person_id: "p-1",
            actor: &counselor,
            structure_id: None,
            action: AccessAction::Read,
            resource_type: "diagnostic",
            resource_id: "d-1",
            domains: vec!["mobilite".into()],
            purpose: "accompagnement",
        },
    )
    .await?;
    // Rolled back: nothing is logged for an access that did not happen.
    drop(tx);
    assert_eq!(outbox::pending(&r.db).await?, 0);

    let mut tx = r.db.begin().await?;
    audit::record(
        &mut tx,
        "tests",
        Access {
            person_id: "p-1",
            actor: &counselor,
            structure_id: None,
            action: AccessAction::Read,
            resource_type: "diagnostic",
            resource_id: "d-1",
            domains: vec!["mobilite".into()],
            purpose: "accompagnement",
        },
    )
    .await?;
    tx.commit().await?;
    relay(&r, 16).drain().await?;
    let stream = r.bus.jetstream().get_stream("EVA_AUDIT").await?;
    let msg = stream
        .get_last_raw_message_by_subject("eva.audit.tests.access")
        .await?;
    let e: AccessRecorded = prost::Message::decode(msg.payload)?;
    assert_eq!(
        (
            e.person_id.as_str(),
            e.actor_user_id.as_str(),
            e.actor_structure_id.as_str(),
            e.actor_role.as_str()
        ),
        ("p-1", "u-1", "s-1", "counselor")
    );
    assert_eq!(e.action, AccessAction::Read as i32);
    assert_eq!(e.purpose, "accompagnement");
    assert_eq!(e.domains, vec!["mobilite".to_owned()]);
    let ce_id = msg.headers.get("ce-id").map(|v| v.as_str().to_owned());
    assert_eq!(ce_id.as_deref(), Some(e.access_id.as_str()));
    Ok(())
}

/// An event that keeps failing is kept as a dead letter once JetStream's
/// delivery budget is spent, never silently dropped.
#[tokio::test]
async fn an_event_failing_every_delivery_becomes_a_dead_letter() -> Result<()> {
    let r = rig(false).await?;
    let projection = Counting::default();
    projection.fail_first.store(u32::MAX, Ordering::SeqCst);
    let shutdown = Shutdown::new();
    let sub = Subscription {
        max_deliver: 3,
        ack_wait: Duration::from_secs(2),
        ..Subscription::new(TEST_STREAM, "tests-dead", &["evatest.>"])
    };
    let (bus, db, sd) = (r.bus.clone(), r.db.clone(), shutdown.clone());
    tokio::spawn(async move { consumer::run(bus, db, sub, projection, sd).await });
    counting::enqueue(&r.db, "doomed", 1, 1).await?;
    relay(&r, 8).drain().await?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut h = r.db.acquire().await?;
        let n: (i64,) = eva_platform::on_backend!(h.conn(), c => sqlx::query_as(
            "SELECT COUNT(*) FROM eva_dead_letters WHERE consumer = 'tests-dead'",
        ).fetch_one(&mut *c).await)?;
        if n.0 == 1 {
            break;
        }
        if Instant::now() > deadline {
            bail!("no dead letter after the delivery budget");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(counting::applied(&r.db).await?, (0, 0));
    shutdown.trigger();
    Ok(())
}
