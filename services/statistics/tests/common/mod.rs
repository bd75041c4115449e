//! What the statistics integration tests share: a store on a fresh, migrated
//! database (SQLite in a temporary directory or a PostgreSQL cluster of its
//! own), feeds applied in one transaction, and events built by hand.

// Each test file uses part of it (diagnostics stamps its events with the
// current time and so has no use for `ts` and `time_of`).
#![allow(dead_code)]

use eva_platform::consumer::{ApplyError, Envelope};
use eva_platform::db::Db;
use eva_statistics::feed::Feed;
use eva_statistics::store::{MIGRATIONS, Store};
use eva_tests::postgres::PgCluster;
use eva_tests::sandbox::Backend;
use time::OffsetDateTime;

pub type R<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// A store on its own database, which lives as long as the fixture.
pub struct Fixture {
    pub store: Store,
    pub _dir: tempfile::TempDir,
    _pg: Option<PgCluster>,
}

/// A fresh database on `backend`, migrated.
pub async fn open(backend: Backend) -> R<Fixture> {
    let dir = tempfile::tempdir()?;
    let (url, pg) = match backend {
        Backend::Sqlite => (
            format!("sqlite://{}/statistics.db", dir.path().display()),
            None,
        ),
        Backend::Postgres => {
            let pg = PgCluster::start().await?;
            (pg.create_database("statistics").await?, Some(pg))
        }
    };
    let db = Db::connect(&url, 4).await?;
    db.migrate(&MIGRATIONS).await?;
    Ok(Fixture {
        store: Store::new(db),
        _dir: dir,
        _pg: pg,
    })
}

/// Applies `events` through `feed` to each generation of `gens`, in one
/// transaction, as the consumer and a rebuild do.
pub async fn apply(
    store: &Store,
    feed: &dyn Feed,
    gens: &[i64],
    events: &[Envelope],
) -> Result<(), ApplyError> {
    let mut tx = store.db().begin().await?;
    feed.apply(&mut tx, gens, events).await?;
    tx.commit().await?;
    Ok(())
}

/// The protobuf timestamp of `us` µs since the epoch.
pub fn ts(us: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: us.div_euclid(1_000_000),
        nanos: (us.rem_euclid(1_000_000) * 1_000) as i32,
    }
}

/// The time `us` µs after the epoch.
pub fn time_of(us: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1_000).expect("time")
}

/// An event as the bus delivers it the first time: `subject` (its type
/// too) published by `source` at `time`, `message` its body.
pub fn envelope(
    source: &str,
    subject: &str,
    time: OffsetDateTime,
    message: &impl prost::Message,
) -> Envelope {
    Envelope {
        id: uuid::Uuid::now_v7(),
        nats_subject: subject.to_owned(),
        event_type: subject.to_owned(),
        source: source.to_owned(),
        aggregate_id: None,
        time,
        payload: message.encode_to_vec().into(),
        stream_sequence: 0,
        delivered: 1,
    }
}
