//! Database: SQLite (WAL, one file per service) or PostgreSQL, picked by URL.
//!
//! The storage pattern a service copies: a `Store` struct wrapping [`Db`],
//! one method per question or change, each written once with `$1`-style
//! placeholders (both backends accept them) inside [`on_backend!`], and a
//! backend-specific query only where the SQL dialects differ. Writes take a
//! [`Tx`] so the outbox row and the access-log event commit with the change.
//! Times are `i64` microseconds since the epoch, ids are UUIDv7 text, so rows
//! read the same on both backends. Migrations live per backend in the
//! service's `migrations/sqlite` and `migrations/postgres`.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgConnection, PgPool, Postgres, Sqlite, SqliteConnection, SqlitePool, Transaction};
use tokio::sync::Notify;

static PLATFORM_SQLITE: Migrator = sqlx::migrate!("migrations/sqlite");
static PLATFORM_POSTGRES: Migrator = sqlx::migrate!("migrations/postgres");

/// A service's migrations, one set per backend.
pub struct Migrations {
    pub sqlite: &'static Migrator,
    pub postgres: &'static Migrator,
}

/// Which database engine a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database url `{0}`: must start with sqlite:// or postgres://")]
    Scheme(String),
    #[error("database: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("database migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(
        "la base est au schéma {found}{part_fr}, plus récent que ce programme ({known}) : installez la version d'EVA qui l'a écrite / database schema {found}{part_en} is newer than this program's {known}: install the EVA version that wrote it"
    )]
    NewerSchema {
        found: i64,
        known: i64,
        part_fr: &'static str,
        part_en: &'static str,
    },
}

#[derive(Clone, Debug)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// A service's database. Cloning is cheap.
#[derive(Clone, Debug)]
pub struct Db {
    pool: Pool,
    /// Woken when a transaction that wrote outbox rows commits.
    outbox_signal: Arc<Notify>,
}

/// A connection borrowed from a transaction or the pool, for one query.
pub enum Conn<'a> {
    Sqlite(&'a mut SqliteConnection),
    Postgres(&'a mut PgConnection),
}

/// Runs the same body on whichever backend the connection is; the body sees
/// `$c` as `&mut SqliteConnection` or `&mut PgConnection`.
#[macro_export]
macro_rules! on_backend {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            $crate::db::Conn::Sqlite($c) => $body,
            $crate::db::Conn::Postgres($c) => $body,
        }
    };
}

enum TxInner {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

/// A database transaction. Commit it; dropping it rolls back.
pub struct Tx {
    inner: TxInner,
    wrote_outbox: bool,
    outbox_signal: Arc<Notify>,
}

/// A pooled connection for reads outside a transaction.
pub enum Handle {
    Sqlite(PoolConnection<Sqlite>),
    Postgres(PoolConnection<Postgres>),
}

impl Db {
    /// Opens the pool the URL names. SQLite files get WAL and a busy
    /// timeout so writers queue instead of failing.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, DbError> {
        let pool = if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10));
            let pool = SqlitePoolOptions::new()
                .max_connections(max_connections)
                .connect_with(opts)
                .await?;
            Pool::Sqlite(pool)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let opts = PgConnectOptions::from_str(url)?;
            let pool = PgPoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(opts)
                .await?;
            Pool::Postgres(pool)
        } else {
            return Err(DbError::Scheme(redact(url)));
        };
        Ok(Self {
            pool,
            outbox_signal: Arc::new(Notify::new()),
        })
    }

    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// Runs the platform's tables (outbox, inbox) then the service's own.
    /// The platform keeps its own migrations table so the two histories
    /// never mix. A database written by a newer EVA is refused before
    /// anything runs: sqlx alone would only say, in English, that a
    /// migration "was previously applied but is missing".
    pub async fn migrate(&self, service: &Migrations) -> Result<(), DbError> {
        let (platform, own) = match self.backend() {
            Backend::Sqlite => (&PLATFORM_SQLITE, service.sqlite),
            Backend::Postgres => (&PLATFORM_POSTGRES, service.postgres),
        };
        for (table, migrator, part_fr, part_en) in [
            (
                PLATFORM_TABLE,
                platform,
                " (tables de la plateforme)",
                " (platform tables)",
            ),
            (own.table_name.as_ref(), own, "", ""),
        ] {
            let known = latest(migrator);
            if let Some(found) = self.applied_version(table).await?
                && found > known
            {
                return Err(DbError::NewerSchema {
                    found,
                    known,
                    part_fr,
                    part_en,
                });
            }
        }
        match &self.pool {
            Pool::Sqlite(p) => {
                platform_migrator(&PLATFORM_SQLITE).run(p).await?;
                service.sqlite.run(p).await?;
            }
            Pool::Postgres(p) => {
                platform_migrator(&PLATFORM_POSTGRES).run(p).await?;
                service.postgres.run(p).await?;
            }
        }
        Ok(())
    }

    /// The highest migration version recorded in `table`; `None` when the
    /// table does not exist yet (a new database).
    pub async fn applied_version(&self, table: &str) -> Result<Option<i64>, DbError> {
        let mut h = self.acquire().await?;
        let exists: bool = match h.conn() {
            Conn::Sqlite(c) => {
                sqlx::query_scalar::<_, i64>(
                    "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = $1",
                )
                .bind(table)
                .fetch_one(&mut *c)
                .await?
                    > 0
            }
            Conn::Postgres(c) => {
                sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
                    .bind(table)
                    .fetch_one(&mut *c)
                    .await?
            }
        };
        if !exists {
            return Ok(None);
        }
        // The name is a migrator's table name, never input: safe to inline.
        let sql = format!("SELECT MAX(version) FROM {table}");
        let version: Option<i64> = on_backend!(h.conn(), c => sqlx::query_scalar(sqlx::AssertSqlSafe(sql.as_str()))
            .fetch_one(&mut *c)
            .await)?;
        Ok(version)
    }

    pub async fn begin(&self) -> Result<Tx, DbError> {
        let inner = match &self.pool {
            // IMMEDIATE takes SQLite's write lock at BEGIN: a transaction that
            // reads then writes would otherwise fail with SQLITE_BUSY (no
            // wait) when another connection wrote in between.
            Pool::Sqlite(p) => TxInner::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?),
            Pool::Postgres(p) => TxInner::Postgres(p.begin().await?),
        };
        Ok(Tx {
            inner,
            wrote_outbox: false,
            outbox_signal: self.outbox_signal.clone(),
        })
    }

    pub async fn acquire(&self) -> Result<Handle, DbError> {
        Ok(match &self.pool {
            Pool::Sqlite(p) => Handle::Sqlite(p.acquire().await?),
            Pool::Postgres(p) => Handle::Postgres(p.acquire().await?),
        })
    }

    /// Woken when a local transaction committed outbox rows.
    pub(crate) fn outbox_signal(&self) -> Arc<Notify> {
        self.outbox_signal.clone()
    }

    /// Answers a trivial query: for readiness checks.
    pub async fn ping(&self) -> Result<(), DbError> {
        let mut h = self.acquire().await?;
        on_backend!(h.conn(), c => sqlx::query("SELECT 1").execute(&mut *c).await.map(|_| ()))?;
        Ok(())
    }

    pub async fn close(&self) {
        match &self.pool {
            Pool::Sqlite(p) => p.close().await,
            Pool::Postgres(p) => p.close().await,
        }
    }
}

/// Where the platform's own migrations are recorded.
pub const PLATFORM_TABLE: &str = "_eva_platform_migrations";

/// The latest version a migrator knows (0 when it has none).
pub fn latest(migrator: &Migrator) -> i64 {
    migrator
        .migrations
        .iter()
        .map(|m| m.version)
        .max()
        .unwrap_or(0)
}

/// The latest version of the platform's own migrations for `backend`.
pub fn platform_latest(backend: Backend) -> i64 {
    match backend {
        Backend::Sqlite => latest(&PLATFORM_SQLITE),
        Backend::Postgres => latest(&PLATFORM_POSTGRES),
    }
}

fn platform_migrator(base: &'static Migrator) -> Migrator {
    let mut m = Migrator {
        migrations: base.migrations.clone(),
        ignore_missing: false,
        locking: base.locking,
        no_tx: base.no_tx,
        table_name: base.table_name.clone(),
        create_schemas: base.create_schemas.clone(),
    };
    m.dangerous_set_table_name(PLATFORM_TABLE);
    m
}

impl Tx {
    pub fn conn(&mut self) -> Conn<'_> {
        match &mut self.inner {
            TxInner::Sqlite(t) => Conn::Sqlite(t),
            TxInner::Postgres(t) => Conn::Postgres(t),
        }
    }

    pub fn backend(&self) -> Backend {
        match self.inner {
            TxInner::Sqlite(_) => Backend::Sqlite,
            TxInner::Postgres(_) => Backend::Postgres,
        }
    }

    /// Marks that this transaction wrote outbox rows: commit wakes the relay.
    pub(crate) fn wrote_outbox(&mut self) {
        self.wrote_outbox = true;
    }

    pub async fn commit(self) -> Result<(), DbError> {
        match self.inner {
            TxInner::Sqlite(t) => t.commit().await?,
            TxInner::Postgres(t) => t.commit().await?,
        }
        if self.wrote_outbox {
            self.outbox_signal.notify_one();
        }
        Ok(())
    }
}

impl Handle {
    pub fn conn(&mut self) -> Conn<'_> {
        match self {
            Handle::Sqlite(c) => Conn::Sqlite(c),
            Handle::Postgres(c) => Conn::Postgres(c),
        }
    }
}

/// Microseconds since the epoch: how every time is stored.
/// `$first, $first+1, …` for `n` values: an `IN (…)` list of one placeholder per
/// value (short lists only, such as a page of ids).
pub fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn now_us() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    (now.unix_timestamp_nanos() / 1_000) as i64
}

/// Back from stored microseconds.
pub fn from_us(us: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

/// Stored microseconds as a protobuf timestamp.
pub fn to_timestamp(us: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: us.div_euclid(1_000_000),
        nanos: (us.rem_euclid(1_000_000) * 1_000) as i32,
    }
}

/// A protobuf timestamp as microseconds since the epoch (what is stored).
pub fn timestamp_us(t: &prost_types::Timestamp) -> i64 {
    t.seconds * 1_000_000 + i64::from(t.nanos) / 1_000
}

/// A URL safe to print: the password is replaced.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "<unparseable url>".into(),
    }
}

/// Placeholders of a statement with many parameters. SQLite gets plain `?`:
/// it looks numbered and named parameters up by a linear scan, which makes
/// binding a few thousand of them quadratic (a quarter of a
/// statistics ingestion); PostgreSQL gets `$n`.
#[derive(Clone, Copy)]
pub struct Params {
    backend: Backend,
}

impl Params {
    pub fn of(backend: Backend) -> Self {
        Self { backend }
    }

    pub fn one(self, n: usize) -> String {
        match self.backend {
            Backend::Sqlite => "?".into(),
            Backend::Postgres => format!("${n}"),
        }
    }

    /// `$from, …, $from + n − 1` in parentheses.
    pub fn tuple(self, from: usize, n: usize) -> String {
        let list: Vec<String> = (from..from + n).map(|i| self.one(i)).collect();
        format!("({})", list.join(", "))
    }

    /// `(…), (…)` for `rows` rows of `cols` parameters, after `skip` others.
    pub fn values(self, rows: usize, cols: usize, skip: usize) -> String {
        (0..rows)
            .map(|r| self.tuple(skip + 1 + r * cols, cols))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod placeholder_tests {
    #[test]
    fn placeholders_number_from_first() {
        assert_eq!(super::placeholders(2, 3), "$2, $3, $4");
        assert_eq!(super::placeholders(1, 0), "");
    }
}
