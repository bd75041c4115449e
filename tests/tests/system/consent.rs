//! The shared consent check, fed by real consent events through NATS into a
//! service's local projection, on SQLite and PostgreSQL.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use eva_platform::Shutdown;
use eva_platform::bus::{Bus, streams};
use eva_platform::config::BusConfig;
use eva_platform::consent::{self, Consents, Purpose, Reason};
use eva_platform::consumer;
use eva_platform::db::Db;
use eva_platform::outbox::{self, Event, Relay};
use eva_proto::identity::v1::{
    ConsentExpired, ConsentGranted, ConsentPurpose, ConsentWithdrawn, PersonErased,
};
use eva_tests::nats::NatsServer;
use eva_tests::postgres::PgCluster;

const DAY: &str = "2026-06-01";

async fn publish(db: &Db, bus: &Bus, subject: &str, msg: &impl prost::Message) -> Result<()> {
    let mut tx = db.begin().await?;
    outbox::enqueue(&mut tx, &Event::new("identity", subject, None, msg)).await?;
    tx.commit().await?;
    Relay::new(db.clone(), bus.clone(), 16, Duration::from_millis(20))
        .drain()
        .await?;
    Ok(())
}

/// Polls the check until it gives `want` (the projection lags the bus a little).
async fn wait_reason(
    c: &Consents,
    s: &str,
    p: &str,
    domain: &str,
    purpose: Purpose,
    want: Reason,
) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let d = c.check(s, p, domain, purpose, DAY).await?;
        if d.reason == want {
            assert_eq!(d.allowed, want == Reason::ConsentActive);
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{domain}/{purpose}: got {d:?}, expected {want:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn story(url: String) -> Result<()> {
    let nats = NatsServer::start().await?;
    let bus = Bus::connect(&BusConfig::default(), &nats.url(), "tests").await?;
    for s in [streams::CONSENT, streams::IDENTITY] {
        bus.ensure_stream(&s).await?;
    }
    // The publisher (identity's role) and the consumer (any service) each
    // have their own database.
    let dir = tempfile::tempdir()?;
    let publisher = Db::connect(
        &format!("sqlite://{}/identity.db?mode=rwc", dir.path().display()),
        2,
    )
    .await?;
    publisher.migrate(&eva_tests::counting::MIGRATIONS).await?;
    let db = Db::connect(&url, 4).await?;
    db.migrate(&eva_tests::counting::MIGRATIONS).await?;
    let consents = Consents::new(db.clone());
    let shutdown = Shutdown::new();
    for sub in consent::subscriptions("tests") {
        let (bus, db, c, sd) = (bus.clone(), db.clone(), consents.clone(), shutdown.clone());
        tokio::spawn(async move { consumer::run(bus, db, sub, c, sd).await });
    }

    let (person, structure, other) = ("p-1", "s-1", "s-2");
    assert_eq!(
        consents
            .check(structure, person, "mobilite", Purpose::Accompagnement, DAY)
            .await?
            .reason,
        Reason::NoConsent
    );
    let granted = ConsentGranted {
        consent_id: "c-1".into(),
        person_id: person.into(),
        grantee_structure_id: structure.into(),
        domains: vec!["mobilite".into(), "famille".into()],
        purposes: vec![ConsentPurpose::Accompagnement as i32],
        valid_from: "2026-01-01".into(),
        valid_until: "2026-12-31".into(),
        granted_at: None,
        replaces_consent_id: String::new(),
    };
    publish(&publisher, &bus, "eva.consent.grant.granted", &granted).await?;
    wait_reason(
        &consents,
        structure,
        person,
        "mobilite",
        Purpose::Accompagnement,
        Reason::ConsentActive,
    )
    .await?;
    // `sante` was not chosen; orientation was not a purpose; another structure has nothing.
    wait_reason(
        &consents,
        structure,
        person,
        "sante",
        Purpose::Accompagnement,
        Reason::DomainNotCovered,
    )
    .await?;
    wait_reason(
        &consents,
        structure,
        person,
        "mobilite",
        Purpose::Orientation,
        Reason::PurposeNotCovered,
    )
    .await?;
    wait_reason(
        &consents,
        other,
        person,
        "mobilite",
        Purpose::Accompagnement,
        Reason::NoConsent,
    )
    .await?;
    assert_eq!(
        consents
            .check(
                structure,
                person,
                "mobilite",
                Purpose::Accompagnement,
                "2027-01-01"
            )
            .await?
            .reason,
        Reason::ConsentExpired
    );

    // Withdrawal: denied from then on.
    publish(
        &publisher,
        &bus,
        "eva.consent.grant.withdrawn",
        &ConsentWithdrawn {
            consent_id: "c-1".into(),
            person_id: person.into(),
            grantee_structure_id: structure.into(),
            withdrawn_at: None,
        },
    )
    .await?;
    wait_reason(
        &consents,
        structure,
        person,
        "mobilite",
        Purpose::Accompagnement,
        Reason::ConsentWithdrawn,
    )
    .await?;
    // A late expiry does not turn a withdrawal into something else, and a
    // replayed grant does not revive it.
    publish(
        &publisher,
        &bus,
        "eva.consent.grant.expired",
        &ConsentExpired {
            consent_id: "c-1".into(),
            person_id: person.into(),
            grantee_structure_id: structure.into(),
            expired_at: None,
        },
    )
    .await?;
    publish(&publisher, &bus, "eva.consent.grant.granted", &granted).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    wait_reason(
        &consents,
        structure,
        person,
        "mobilite",
        Purpose::Accompagnement,
        Reason::ConsentWithdrawn,
    )
    .await?;

    // A new consent, then erasure: every decision about the person is a denial.
    publish(
        &publisher,
        &bus,
        "eva.consent.grant.granted",
        &ConsentGranted {
            consent_id: "c-2".into(),
            ..granted.clone()
        },
    )
    .await?;
    wait_reason(
        &consents,
        structure,
        person,
        "famille",
        Purpose::Accompagnement,
        Reason::ConsentActive,
    )
    .await?;
    publish(
        &publisher,
        &bus,
        "eva.identity.person.erased",
        &PersonErased {
            person_id: person.into(),
            erased_at: None,
        },
    )
    .await?;
    wait_reason(
        &consents,
        structure,
        person,
        "famille",
        Purpose::Accompagnement,
        Reason::PersonErased,
    )
    .await?;
    shutdown.trigger();
    Ok(())
}

#[tokio::test]
async fn consent_projection_on_sqlite() -> Result<()> {
    let dir = tempfile::tempdir()?;
    story(format!("sqlite://{}/svc.db?mode=rwc", dir.path().display())).await
}

#[tokio::test]
async fn consent_projection_on_postgres() -> Result<()> {
    let pg = PgCluster::start().await?;
    story(pg.create_database("svc").await?).await
}
