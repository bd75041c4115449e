//! The harness itself: real nats-server and PostgreSQL start, keep data, and stay apart.

use anyhow::{Context, Result, ensure};
use async_nats::jetstream::{self, stream};
use eva_tests::nats::NatsServer;
use eva_tests::postgres::PgCluster;
use sqlx::{Connection, PgConnection, Row};

const STREAM: &str = "HARNESS";

async fn create_stream(js: &jetstream::Context) -> Result<stream::Stream> {
    js.get_or_create_stream(stream::Config {
        name: STREAM.to_owned(),
        subjects: vec!["harness.>".to_owned()],
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await
    .context("creating the stream")
}

async fn publish(js: &jetstream::Context, bodies: &[&str]) -> Result<()> {
    for body in bodies {
        js.publish("harness.event", body.as_bytes().to_vec().into())
            .await?
            .await
            .context("awaiting the publish ack")?;
    }
    Ok(())
}

/// The bodies of every message in the stream, in order.
async fn read_all(js: &jetstream::Context) -> Result<Vec<String>> {
    let mut stream = js.get_stream(STREAM).await?;
    let (first, last) = {
        let state = &stream.info().await?.state;
        (state.first_sequence, state.last_sequence)
    };
    let mut bodies = Vec::new();
    for sequence in first..=last {
        let message = stream.get_raw_message(sequence).await?;
        bodies.push(String::from_utf8(message.payload.to_vec())?);
    }
    Ok(bodies)
}

#[tokio::test]
async fn nats_jetstream_round_trip_survives_restart() -> Result<()> {
    let mut server = NatsServer::start().await?;
    let url = server.url();
    let js = jetstream::new(server.connect().await?);
    create_stream(&js).await?;
    publish(&js, &["one", "two", "three"]).await?;
    assert_eq!(read_all(&js).await?, ["one", "two", "three"]);

    server.restart().await?;
    assert_eq!(server.url(), url, "a restart keeps the port");
    let js = jetstream::new(server.connect().await?);
    assert_eq!(read_all(&js).await?, ["one", "two", "three"]);
    publish(&js, &["four"]).await?;
    assert_eq!(read_all(&js).await?, ["one", "two", "three", "four"]);
    Ok(())
}

#[tokio::test]
async fn nats_acknowledged_messages_survive_a_crash() -> Result<()> {
    let mut server = NatsServer::start().await?;
    let js = jetstream::new(server.connect().await?);
    create_stream(&js).await?;
    publish(&js, &["before crash"]).await?;

    server.kill().await?;
    ensure!(
        server.connect().await.is_err(),
        "a killed server must refuse connections"
    );
    server.restart().await?;
    let js = jetstream::new(server.connect().await?);
    assert_eq!(read_all(&js).await?, ["before crash"]);
    Ok(())
}

async fn select_one(url: &str) -> Result<(i32, String)> {
    let mut conn = PgConnection::connect(url).await?;
    let row = sqlx::query("select 1 as one, current_database() as db")
        .fetch_one(&mut conn)
        .await?;
    let result = (row.try_get("one")?, row.try_get("db")?);
    conn.close().await?;
    Ok(result)
}

#[tokio::test]
async fn pg_cluster_creates_databases() -> Result<()> {
    let cluster = PgCluster::start().await?;
    let alpha = cluster.create_database("alpha").await?;
    let beta = cluster.create_database("beta").await?;
    assert_eq!(alpha, cluster.url_for("alpha"));
    assert_eq!(select_one(&alpha).await?, (1, "alpha".to_owned()));
    assert_eq!(select_one(&beta).await?, (1, "beta".to_owned()));
    ensure!(
        cluster.create_database("alpha").await.is_err(),
        "creating an existing database must fail"
    );
    ensure!(
        cluster.create_database("bad\"name").await.is_err(),
        "a database name that needs quoting is refused"
    );
    Ok(())
}

#[tokio::test]
async fn two_pg_clusters_do_not_collide() -> Result<()> {
    let (first, second) = tokio::try_join!(PgCluster::start(), PgCluster::start())?;
    assert_ne!(first.port(), second.port());
    let first_url = first.create_database("shared").await?;
    let second_url = second.create_database("shared").await?;
    assert_ne!(first_url, second_url);

    let mut conn = PgConnection::connect(&first_url).await?;
    sqlx::raw_sql("create table only_in_first (id int); insert into only_in_first values (7)")
        .execute(&mut conn)
        .await?;
    conn.close().await?;

    let mut conn = PgConnection::connect(&second_url).await?;
    let tables: i64 =
        sqlx::query_scalar("select count(*) from pg_tables where tablename = 'only_in_first'")
            .fetch_one(&mut conn)
            .await?;
    conn.close().await?;
    assert_eq!(
        tables, 0,
        "the second cluster must not see the first one's table"
    );

    drop(first);
    assert_eq!(select_one(&second_url).await?, (1, "shared".to_owned()));
    Ok(())
}
