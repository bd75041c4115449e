//! The platform's projection of who follows whom and of structures
//! (`eva_platform::follows`): duplicates and replays change nothing, a late
//! start does not reopen an ended accompaniment, the latest structure change
//! wins, and an erased person does not come back; on both backends.

use anyhow::Result;
use eva_platform::consent::Consents;
use eva_platform::consumer::{self, Envelope, Outcome};
use eva_platform::db::Db;
use eva_platform::follows::{Follows, StructureRow};
use eva_proto::identity::v1::{
    AccompanimentEnded, AccompanimentStarted, PersonErased, StructureCreated, StructureKind,
    StructureUpdated,
};
use eva_tests::postgres::PgCluster;
use prost_types::Timestamp;

fn envelope(event_type: &str, message: &impl prost::Message) -> Envelope {
    Envelope {
        id: uuid::Uuid::now_v7(),
        nats_subject: event_type.into(),
        event_type: event_type.into(),
        source: "/eva/identity".into(),
        aggregate_id: None,
        time: time::OffsetDateTime::now_utc(),
        payload: message.encode_to_vec().into(),
        stream_sequence: 0,
        delivered: 1,
    }
}

fn at(seconds: i64) -> Option<Timestamp> {
    Some(Timestamp { seconds, nanos: 0 })
}

fn id() -> String {
    uuid::Uuid::now_v7().to_string()
}

async fn replays(db: Db) -> Result<()> {
    // A service's migrations run the platform's first (eva_* tables).
    db.migrate(&eva_diagnostics::store::MIGRATIONS).await?;
    let follows = Follows::new(db.clone());
    let (person, alpha, beta) = (id(), id(), id());
    let (with_alpha, with_beta) = (id(), id());

    let events = [
        envelope(
            "eva.identity.structure.created",
            &StructureCreated {
                structure_id: alpha.clone(),
                kind: StructureKind::Aci as i32,
                commune_insee: "27229".into(),
                epci: "200089456".into(),
                created_at: at(1_700_000_000),
            },
        ),
        envelope(
            "eva.identity.accompaniment.started",
            &AccompanimentStarted {
                accompaniment_id: with_alpha.clone(),
                person_id: person.clone(),
                structure_id: alpha.clone(),
                start_date: "2026-01-05".into(),
                occurred_at: at(1_700_000_010),
                ..Default::default()
            },
        ),
        envelope(
            "eva.identity.accompaniment.started",
            &AccompanimentStarted {
                accompaniment_id: with_beta.clone(),
                person_id: person.clone(),
                structure_id: beta.clone(),
                start_date: "2026-01-06".into(),
                occurred_at: at(1_700_000_020),
                ..Default::default()
            },
        ),
        envelope(
            "eva.identity.accompaniment.ended",
            &AccompanimentEnded {
                accompaniment_id: with_beta.clone(),
                person_id: person.clone(),
                structure_id: beta.clone(),
                end_date: "2026-02-01".into(),
                occurred_at: at(1_700_000_030),
                ..Default::default()
            },
        ),
        envelope(
            "eva.identity.structure.updated",
            &StructureUpdated {
                structure_id: alpha.clone(),
                kind: StructureKind::Aci as i32,
                commune_insee: "97411".into(),
                epci: "249740119".into(),
                updated_at: at(1_700_000_100),
            },
        ),
    ];
    let expected_alpha = StructureRow {
        structure_id: alpha.clone(),
        kind: StructureKind::Aci as i32,
        commune_insee: "97411".into(),
        epci: "249740119".into(),
        departement: "974".into(),
    };

    for e in &events {
        assert_eq!(
            consumer::apply_once(&db, "t-follows", &follows, e).await,
            Outcome::Applied
        );
    }
    assert_eq!(follows.following(&person).await?, vec![alpha.clone()]);
    assert_eq!(
        follows.structure(&alpha).await?,
        Some(expected_alpha.clone())
    );
    assert_eq!(follows.structure(&beta).await?, None);

    // Redelivered: the inbox absorbs every event.
    for e in &events {
        assert_eq!(
            consumer::apply_once(&db, "t-follows", &follows, e).await,
            Outcome::Duplicate
        );
    }
    // Replayed from the start under a new durable name, in reverse order:
    // applied again, and the projection is the same.
    for e in events.iter().rev() {
        assert_eq!(
            consumer::apply_once(&db, "t-follows-replay", &follows, e).await,
            Outcome::Applied
        );
    }
    assert_eq!(follows.following(&person).await?, vec![alpha.clone()]);
    assert_eq!(
        follows.structure(&alpha).await?,
        Some(expected_alpha.clone())
    );
    let mut tx = db.begin().await?;
    assert_eq!(
        Follows::structure_in(&mut tx, &alpha).await?,
        Some(expected_alpha)
    );
    tx.commit().await?;

    // Erasure: the accompaniments go, and a replayed start (the consent
    // projection knows the person was erased) does not bring them back.
    let consents = Consents::new(db.clone());
    let erased = envelope(
        "eva.identity.person.erased",
        &PersonErased {
            person_id: person.clone(),
            erased_at: at(1_700_000_200),
        },
    );
    assert_eq!(
        consumer::apply_once(&db, "t-consent-erasure", &consents, &erased).await,
        Outcome::Applied
    );
    let mut tx = db.begin().await?;
    Follows::erase_person(&mut tx, &person).await?;
    tx.commit().await?;
    assert!(follows.following(&person).await?.is_empty());
    assert_eq!(
        consumer::apply_once(&db, "t-follows-late", &follows, &events[1]).await,
        Outcome::Applied
    );
    assert!(follows.following(&person).await?.is_empty());

    // An undecodable event is a dead letter, not retried forever.
    let mut junk = envelope("eva.identity.structure.created", &PersonErased::default());
    junk.payload = vec![0xff, 0xff, 0xff].into();
    assert_eq!(
        consumer::apply_once(&db, "t-follows", &follows, &junk).await,
        Outcome::DeadLettered
    );
    Ok(())
}

#[tokio::test]
async fn follows_projection_is_idempotent_under_replay_on_sqlite() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = Db::connect(
        &format!("sqlite://{}/d.db?mode=rwc", dir.path().display()),
        2,
    )
    .await?;
    replays(db).await
}

#[tokio::test]
async fn follows_projection_is_idempotent_under_replay_on_postgres() -> Result<()> {
    let pg = PgCluster::start().await?;
    let db = Db::connect(&pg.create_database("diagnostics").await?, 2).await?;
    replays(db).await
}
