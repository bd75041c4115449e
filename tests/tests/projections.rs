//! Statistics' projections converge whatever order events arrive in, on
//! both backends.

use anyhow::Result;
use eva_platform::consumer::{self, Envelope, Outcome};
use eva_platform::db::Db;
use eva_proto::identity::v1::{StructureCreated, StructureKind, StructureUpdated};
use eva_statistics::projection::Structures;
use eva_statistics::store::{Count, MIGRATIONS, Store, StructureDim, StructureFilter};
use eva_tests::postgres::PgCluster;
use prost_types::Timestamp;

fn envelope(event_type: &str, payload: Vec<u8>) -> Envelope {
    Envelope {
        id: uuid::Uuid::now_v7(),
        nats_subject: event_type.into(),
        event_type: event_type.into(),
        source: "/eva/identity".into(),
        aggregate_id: None,
        time: time::OffsetDateTime::now_utc(),
        payload: payload.into(),
        stream_sequence: 0,
        delivered: 1,
    }
}

async fn out_of_order(db: Db) -> Result<()> {
    db.migrate(&MIGRATIONS).await?;
    let store = Store::new(db.clone());
    let projection = Structures::new(store.clone());
    let id = uuid::Uuid::now_v7().to_string();
    let created = StructureCreated {
        structure_id: id.clone(),
        kind: StructureKind::Aci as i32,
        commune_insee: "27229".into(),
        epci: "200089456".into(),
        created_at: Some(Timestamp {
            seconds: 1_700_000_000,
            nanos: 0,
        }),
    };
    let moved = StructureUpdated {
        structure_id: id.clone(),
        kind: StructureKind::Aci as i32,
        commune_insee: "76540".into(),
        epci: "200023414".into(),
        updated_at: Some(Timestamp {
            seconds: 1_700_000_100,
            nanos: 0,
        }),
    };
    // The update arrives first, then the creation.
    let update = envelope(
        "eva.identity.structure.updated",
        prost::Message::encode_to_vec(&moved),
    );
    let create = envelope(
        "eva.identity.structure.created",
        prost::Message::encode_to_vec(&created),
    );
    assert_eq!(
        consumer::apply_once(&db, "t", &projection, &update).await,
        Outcome::Applied
    );
    assert_eq!(
        consumer::apply_once(&db, "t", &projection, &create).await,
        Outcome::Applied
    );
    assert_eq!(
        consumer::apply_once(&db, "t", &projection, &create).await,
        Outcome::Duplicate
    );

    let by_commune = store
        .count_structures(&[StructureDim::Commune], &StructureFilter::default())
        .await?;
    assert_eq!(
        by_commune,
        vec![Count {
            keys: vec!["76540".into()],
            count: 1
        }]
    );
    // Registered at the creation's time, not the update's.
    let before_update = StructureFilter {
        to_us: Some(1_700_000_050_000_000),
        ..Default::default()
    };
    assert_eq!(
        store.count_structures(&[], &before_update).await?,
        vec![Count {
            keys: vec![],
            count: 1
        }]
    );

    // An undecodable event is kept as a dead letter, not retried forever.
    let junk = envelope("eva.identity.structure.created", vec![0xff, 0xff, 0xff]);
    assert_eq!(
        consumer::apply_once(&db, "t", &projection, &junk).await,
        Outcome::DeadLettered
    );
    assert_eq!(
        consumer::apply_once(&db, "t", &projection, &junk).await,
        Outcome::Duplicate
    );
    Ok(())
}

#[tokio::test]
async fn structures_projection_converges_out_of_order_on_sqlite() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = Db::connect(
        &format!("sqlite://{}/s.db?mode=rwc", dir.path().display()),
        2,
    )
    .await?;
    out_of_order(db).await
}

#[tokio::test]
async fn structures_projection_converges_out_of_order_on_postgres() -> Result<()> {
    let pg = PgCluster::start().await?;
    let db = Db::connect(&pg.create_database("statistics").await?, 2).await?;
    out_of_order(db).await
}
