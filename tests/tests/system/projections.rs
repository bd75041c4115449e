//! Statistics' projections converge whatever order events arrive in, on
//! both backends.

use anyhow::Result;
use eva_platform::consumer::{self, Envelope, Outcome};
use eva_platform::db::Db;
use eva_proto::identity::v1::{StructureCreated, StructureKind, StructureUpdated};
use eva_statistics::feed::Live;
use eva_statistics::model::{Dim, Figure, Query};
use eva_statistics::store::{MIGRATIONS, Store};
use eva_statistics::structures::{self, StructuresFeed};
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
    let projection = Live(std::sync::Arc::new(StructuresFeed));
    let query = |group_by: Vec<Dim>, to_month: &str| Query {
        generation: 1,
        from_month: "2000-01".into(),
        to_month: to_month.into(),
        territory: None,
        group_by,
    };
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

    let by_commune = structures::figures(&store, &query(vec![Dim::Commune], "2100-12")).await?;
    assert_eq!(by_commune, vec![Figure::count(vec!["76540".into()], 1)]);
    // Registered in the creation's month (November 2023), not the update's
    // (which the creation's earlier time replaced).
    let by_month = structures::figures(&store, &query(vec![Dim::Month], "2100-12")).await?;
    assert_eq!(by_month, vec![Figure::count(vec!["2023-11".into()], 1)]);
    assert!(
        structures::figures(&store, &query(vec![], "2023-10"))
            .await?
            .is_empty()
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
