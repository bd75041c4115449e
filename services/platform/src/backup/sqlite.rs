//! The SQLite side: online snapshots, what a copy says about itself, and
//! putting a copy in place.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, SqliteConnection};

use super::{BackupError, ServiceDb, ServiceEntry, io};
use crate::db::{Backend, PLATFORM_TABLE, latest, platform_latest};

fn db_err(service: &str) -> impl Fn(sqlx::Error) -> BackupError + '_ {
    move |e| BackupError::Db {
        service: service.to_owned(),
        reason: e.to_string(),
    }
}

/// The file a `sqlite:` URL names.
pub(super) fn path_of(s: &ServiceDb) -> Result<PathBuf, BackupError> {
    let opts = SqliteConnectOptions::from_str(&s.url).map_err(db_err(s.name))?;
    let path = opts.get_filename();
    if path.as_os_str().is_empty() || path.to_string_lossy().contains(":memory:") {
        return Err(BackupError::Refused(format!(
            "la base {0} est en mémoire : rien à sauvegarder / the {0} database is in memory: nothing to back up",
            s.name
        )));
    }
    Ok(path.to_owned())
}

/// A connection to a service's live database, for [`snapshot`].
pub(super) async fn open_live(s: &ServiceDb) -> Result<SqliteConnection, BackupError> {
    let path = path_of(s)?;
    if !path.exists() {
        return Err(BackupError::Refused(format!(
            "la base {0} n'existe pas ({1}) : EVA a-t-il déjà démarré avec cette configuration ? / the {0} database does not exist ({1}): has EVA run with this configuration?",
            s.name,
            path.display()
        )));
    }
    SqliteConnectOptions::new()
        .filename(&path)
        .busy_timeout(Duration::from_secs(30))
        .connect()
        .await
        .map_err(db_err(s.name))
}

/// `VACUUM INTO`: a consistent copy while the service keeps writing, of
/// the database as it was when the statement started.
pub(super) async fn snapshot(
    service: &str,
    mut c: SqliteConnection,
    into: PathBuf,
) -> Result<(), BackupError> {
    sqlx::query("VACUUM INTO $1")
        .bind(into.to_string_lossy().into_owned())
        .execute(&mut c)
        .await
        .map_err(db_err(service))?;
    c.close().await.map_err(db_err(service))
}

/// What a copy says about itself.
pub(super) struct Facts {
    pub schema_version: i64,
    pub platform_schema_version: i64,
    pub outbox_high_water: i64,
}

async fn open(path: &Path, service: &str) -> Result<SqliteConnection, BackupError> {
    SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .connect()
        .await
        .map_err(db_err(service))
}

async fn scalar(c: &mut SqliteConnection, service: &str, sql: &str) -> Result<i64, BackupError> {
    // The statements are constants of this file.
    let v: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_optional(&mut *c)
        .await
        .map_err(db_err(service))?
        .flatten();
    Ok(v.unwrap_or(0))
}

pub(super) async fn facts(service: &str, path: &Path) -> Result<Facts, BackupError> {
    let mut c = open(path, service).await?;
    let facts = Facts {
        schema_version: scalar(&mut c, service, "SELECT MAX(version) FROM _sqlx_migrations")
            .await?,
        platform_schema_version: scalar(
            &mut c,
            service,
            &format!("SELECT MAX(version) FROM {PLATFORM_TABLE}"),
        )
        .await?,
        outbox_high_water: scalar(
            &mut c,
            service,
            "SELECT seq FROM sqlite_sequence WHERE name = 'eva_outbox'",
        )
        .await?,
    };
    c.close().await.map_err(db_err(service))?;
    Ok(facts)
}

/// True when the copy's inbox holds one of `event_ids`: one of its
/// consumers applied an event the backup leaves out.
pub(super) async fn applied_any(
    service: &str,
    path: &Path,
    event_ids: &[String],
) -> Result<bool, BackupError> {
    if event_ids.is_empty() {
        return Ok(false);
    }
    let mut c = open(path, service).await?;
    for chunk in event_ids.chunks(500) {
        let marks = vec!["?"; chunk.len()].join(", ");
        let sql = format!("SELECT COUNT(*) FROM eva_inbox WHERE event_id IN ({marks})");
        let mut q = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql));
        for id in chunk {
            q = q.bind(id);
        }
        if q.fetch_one(&mut c).await.map_err(db_err(service))? > 0 {
            return Ok(true);
        }
    }
    c.close().await.map_err(db_err(service))?;
    Ok(false)
}

/// Refuses a copy written by a newer EVA than this program.
pub(super) fn check_schema(s: &ServiceDb, e: &ServiceEntry) -> Result<(), BackupError> {
    for (found, known) in [
        (e.schema_version, latest(s.migrations.sqlite)),
        (e.platform_schema_version, platform_latest(Backend::Sqlite)),
    ] {
        if found > known {
            return Err(BackupError::Refused(format!(
                "la base {0} de la sauvegarde est au schéma {found}, plus récent que ce programme ({known}) : installez la version d'EVA qui l'a écrite / the backup's {0} database schema {found} is newer than this program's {known}: install the EVA version that wrote it",
                s.name
            )));
        }
    }
    Ok(())
}

/// Refuses to write over an existing database.
pub(super) fn check_absent(service: &str, target: &Path) -> Result<(), BackupError> {
    let wal = PathBuf::from(format!("{}-wal", target.display()));
    if target.exists() || wal.exists() {
        return Err(BackupError::Refused(format!(
            "la base {service} existe déjà ({}) : restaurez dans un data_dir vide / the {service} database already exists ({}): restore into an empty data_dir",
            target.display(),
            target.display()
        )));
    }
    Ok(())
}

/// Copies the backup's file to `target` through a temporary name, so a
/// half-written file never looks like a database.
pub(super) fn install(from: &Path, target: &Path) -> Result<(), BackupError> {
    if let Some(dir) = target.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let tmp = PathBuf::from(format!("{}.restoring", target.display()));
    std::fs::copy(from, &tmp).map_err(io(&tmp))?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(io(&tmp))?;
    std::fs::rename(&tmp, target).map_err(io(target))
}
