//! A projection for fault tests: counts how many times each event was
//! applied, so "exactly once" can be checked row by row.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use eva_platform::bus::StreamSpec;
use eva_platform::consumer::{ApplyError, Envelope, Projection};
use eva_platform::db::{Db, Migrations, Tx};
use eva_platform::on_backend;
use eva_platform::outbox::{self, Event};
use eva_proto::identity::v1::StructureCreated;
use sqlx::migrate::Migrator;

static SQLITE: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES: Migrator = sqlx::migrate!("migrations/postgres");

pub const MIGRATIONS: Migrations = Migrations {
    sqlite: &SQLITE,
    postgres: &POSTGRES,
};

/// A stream only tests write to.
pub const TEST_STREAM: StreamSpec = StreamSpec {
    name: "EVA_TEST",
    subjects: &["evatest.>"],
    description: "fault tests",
};

/// Applies `seen` rows; fails transiently on the first `fail_first`
/// attempts, to force redeliveries.
#[derive(Clone, Default)]
pub struct Counting {
    pub fail_first: Arc<AtomicU32>,
}

impl Projection for Counting {
    async fn apply(&self, tx: &mut Tx, event: &Envelope) -> Result<(), ApplyError> {
        if self
            .fail_first
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(ApplyError::Transient("forced failure".into()));
        }
        let e: StructureCreated = event.decode()?;
        on_backend!(tx.conn(), c => sqlx::query(
            "INSERT INTO seen (event_id, marker, applied) VALUES ($1, $2, 1) \
             ON CONFLICT (event_id) DO UPDATE SET applied = seen.applied + 1",
        )
        .bind(event.id.to_string())
        .bind(e.structure_id)
        .execute(&mut *c)
        .await
        .map(|_| ()))?;
        Ok(())
    }
}

/// A test event carrying `marker`.
pub fn event(marker: &str) -> Event {
    Event::new(
        "tests",
        "evatest.thing.happened",
        Some(marker.to_owned()),
        &StructureCreated {
            structure_id: marker.to_owned(),
            ..Default::default()
        },
    )
}

/// Writes `n` events to the outbox, `per_tx` per transaction.
pub async fn enqueue(db: &Db, prefix: &str, n: usize, per_tx: usize) -> anyhow::Result<()> {
    let mut i = 0;
    while i < n {
        let mut tx = db.begin().await?;
        for _ in 0..per_tx.min(n - i) {
            outbox::enqueue(&mut tx, &event(&format!("{prefix}-{i}"))).await?;
            i += 1;
        }
        tx.commit().await?;
    }
    Ok(())
}

/// (distinct events applied, the largest number of applications of one).
pub async fn applied(db: &Db) -> anyhow::Result<(i64, i64)> {
    let mut h = db.acquire().await?;
    let row: (i64, Option<i64>) = on_backend!(h.conn(), c => sqlx::query_as(
        "SELECT COUNT(*), MAX(applied) FROM seen",
    )
    .fetch_one(&mut *c)
    .await)?;
    Ok((row.0, row.1.unwrap_or(0)))
}
