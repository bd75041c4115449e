//! `eva backup` / `eva restore` of an association's box: every service's
//! SQLite database and EVA's JetStream streams, taken while the services keep
//! writing, restorable on a new box.
//!
//! # Why the copy is consistent
//!
//! The databases and the streams cannot be frozen together, so the backup
//! takes them in an order where each part is known to hold what the next one
//! needs, and leaves out what no database copy holds:
//!
//! 1. **Ack floors first.** For every durable consumer of every EVA stream,
//!    its ack floor (a stream sequence). A consumer acknowledges an event
//!    only after the transaction applying it committed, so its database,
//!    copied later, holds everything at or below that floor.
//! 2. **Each database**, `VACUUM INTO` a file (SQLite's consistent online
//!    snapshot, of the database as it was when the statement started; all
//!    five are started at once so their snapshots are moments apart). From
//!    the copy, the outbox high-water mark: the last `eva_outbox.seq` given
//!    out (`sqlite_sequence`, the column is AUTOINCREMENT and rows are
//!    deleted once relayed), 0 if none.
//! 3. **Each stream**, every message in order up to its last sequence read
//!    after (2). The relay stamps each message with `Eva-Outbox-Seq`
//!    ([`crate::outbox::OUTBOX_SEQ_HEADER`]) and its service in `ce-source`:
//!    a message above that service's high-water mark comes from a write made
//!    after the copy, which the restored databases will not hold, so it is
//!    left out. Messages without the header (older, or from other tools)
//!    are kept.
//! 4. **Check.** Services consume each other's events in a cycle (identity
//!    reads everyone's access-log events and the others read identity's), so
//!    moments apart are not nothing: if a consumer's copy already applied a
//!    message left out in (3) (its ce-id is in that copy's `eva_inbox`), the
//!    cut is not consistent and the whole backup is taken again, up to
//!    [`ATTEMPTS`] times.
//!
//! Restore copies the databases (after checking their sha256), creates the
//! streams as the services do ([`crate::bus::Bus::ensure_stream`]),
//! republishes the messages in order with their headers (`Nats-Msg-Id`
//! included), mapping old sequences to new ones, then creates every durable
//! consumer with its recorded settings, starting right after its ack floor.
//! The services find these consumers when they start and resume there;
//! events between the floor and what their database applied are skipped by
//! the inbox (by ce-id), and outbox rows still in a restored database are
//! published again and skipped the same way.
//!
//! # Layout
//!
//! `manifest.json` ([`Manifest`]), `db/<service>.sqlite`, and
//! `streams/<STREAM>.jsonl`: one JSON object a line, in stream order,
//! `{"seq": <original sequence>, "subject": "…", "headers": {"name":
//! ["value", …]}, "payload": "<base64>"}`.
//!
//! The key-encryption key is not in the backup, so a stolen backup stays
//! sealed; the manifest holds a probe sealed with it, and restore refuses a
//! key that does not open it.

mod manifest;
mod progress;
mod sqlite;
mod streams;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub use manifest::{DurableEntry, FORMAT_VERSION, Manifest, ServiceEntry, StreamEntry};
pub use progress::Progress;

use crate::bus::{Bus, streams as specs};
use crate::crypto::Kek;
use crate::db::Migrations;

/// Whole backups taken before giving up on a box that writes too fast.
pub const ATTEMPTS: usize = 5;

/// One service's database, as the configuration names it.
pub struct ServiceDb {
    pub name: &'static str,
    /// `database_url` of the service (`sqlite://…`).
    pub url: String,
    pub migrations: &'static Migrations,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The operator must do something first; the message says what.
    #[error("{0}")]
    Refused(String),
    #[error("{path}: {reason}")]
    Io { path: String, reason: String },
    #[error("base {service} / database {service}: {reason}")]
    Db { service: String, reason: String },
    #[error("flux / stream {stream}: {reason}")]
    Bus { stream: String, reason: String },
}

pub(crate) fn io(path: &Path) -> impl Fn(std::io::Error) -> BackupError + '_ {
    move |e| BackupError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// Refuses PostgreSQL: its databases are saved with `pg_dump`.
fn sqlite_only(services: &[ServiceDb]) -> Result<(), BackupError> {
    match services.iter().find(|s| !s.url.starts_with("sqlite:")) {
        None => Ok(()),
        Some(s) => Err(BackupError::Refused(format!(
            "la base {name} n'est pas SQLite : sauvegardez chaque base PostgreSQL avec pg_dump (deploy/README.md) / the {name} database is not SQLite: back up each PostgreSQL database with pg_dump (deploy/README.md)",
            name = s.name
        ))),
    }
}

/// Takes a backup into `dir` (created; refused when not empty).
pub async fn backup(
    bus: &Bus,
    services: &[ServiceDb],
    kek: &Kek,
    dir: &Path,
    progress: &mut Progress,
) -> Result<Manifest, BackupError> {
    sqlite_only(services)?;
    if dir.exists() && std::fs::read_dir(dir).map_err(io(dir))?.next().is_some() {
        return Err(BackupError::Refused(format!(
            "{} n'est pas vide : choisissez un nouveau dossier / {} is not empty: choose a new directory",
            dir.display(),
            dir.display()
        )));
    }
    progress.set_total(services.len() + specs::ALL.len() + 3);
    for attempt in 1..=ATTEMPTS {
        for sub in ["db", "streams"] {
            let d = dir.join(sub);
            if d.exists() {
                std::fs::remove_dir_all(&d).map_err(io(&d))?;
            }
            std::fs::create_dir_all(&d).map_err(io(&d))?;
        }
        progress.restart();
        match take(bus, services, kek, dir, progress).await? {
            Some(mut manifest) => {
                manifest.attempts = attempt;
                let path = dir.join("manifest.json");
                manifest.write(&path)?;
                progress.finish();
                return Ok(manifest);
            }
            None => progress.note(&format!(
                "écritures pendant la copie, nouvel essai ({attempt}/{ATTEMPTS}) / writes during the copy, trying again"
            )),
        }
    }
    Err(BackupError::Refused(format!(
        "pas de copie cohérente en {ATTEMPTS} essais : réessayez quand EVA écrit moins / no consistent copy in {ATTEMPTS} attempts: try again when EVA writes less"
    )))
}

/// One attempt; `None` when a consumer's copy holds a left-out message.
async fn take(
    bus: &Bus,
    services: &[ServiceDb],
    kek: &Kek,
    dir: &Path,
    progress: &mut Progress,
) -> Result<Option<Manifest>, BackupError> {
    progress.step("consumers");
    let durables = streams::durables(bus).await?;
    // Connections first, then every copy started at once: their snapshots
    // are taken within moments of each other, whatever each copy lasts.
    let mut live = Vec::new();
    for s in services {
        live.push(sqlite::open_live(s).await?);
    }
    progress.step("db");
    let files: Vec<String> = services
        .iter()
        .map(|s| format!("db/{}.sqlite", s.name))
        .collect();
    futures::future::try_join_all(
        services
            .iter()
            .zip(live)
            .zip(&files)
            .map(|((s, c), file)| sqlite::snapshot(s.name, c, dir.join(file))),
    )
    .await?;
    let mut entries = Vec::new();
    let mut high_water = HashMap::new();
    for (s, file) in services.iter().zip(files) {
        progress.step(&format!("db/{}", s.name));
        let path = dir.join(&file);
        let facts = sqlite::facts(s.name, &path).await?;
        high_water.insert(format!("/eva/{}", s.name), facts.outbox_high_water);
        entries.push(ServiceEntry {
            name: s.name.to_owned(),
            file,
            sha256: String::new(),
            bytes: 0,
            schema_version: facts.schema_version,
            platform_schema_version: facts.platform_schema_version,
            outbox_high_water: facts.outbox_high_water,
        });
    }
    let mut stream_entries = Vec::new();
    let mut left_out = Vec::new();
    for spec in specs::ALL {
        progress.step(&format!("streams/{}", spec.name));
        let file = format!("streams/{}.jsonl", spec.name);
        let (entry, ids) = streams::dump(bus, spec, &high_water, &file, dir).await?;
        stream_entries.push(entry);
        left_out.extend(ids);
    }
    progress.step("check");
    for (s, e) in services.iter().zip(&entries) {
        if sqlite::applied_any(s.name, &dir.join(&e.file), &left_out).await? {
            return Ok(None);
        }
    }
    for e in &mut entries {
        let path = dir.join(&e.file);
        (e.sha256, e.bytes) = manifest::sha256_file(&path)?;
    }
    for e in &mut stream_entries {
        (e.sha256, _) = manifest::sha256_file(&dir.join(&e.file))?;
    }
    Ok(Some(Manifest::new(kek, entries, stream_entries, durables)))
}

/// A backup checked and ready to restore: see [`Restore::open`].
pub struct Restore {
    dir: PathBuf,
    manifest: Manifest,
    /// Where each service's database goes, in manifest order.
    targets: Vec<PathBuf>,
}

/// What a restore did.
#[derive(Debug, Clone, Copy, Default)]
pub struct Restored {
    pub databases: usize,
    pub streams: usize,
    pub messages: u64,
    pub consumers: usize,
}

impl Restore {
    /// Reads and checks everything before any change: the manifest, the
    /// key, every file's sha256, the schema versions, and that no database
    /// exists where one would be written.
    pub fn open(dir: &Path, services: &[ServiceDb], kek: &Kek) -> Result<Self, BackupError> {
        sqlite_only(services)?;
        let manifest = Manifest::read(&dir.join("manifest.json"))?;
        manifest.check_key(kek)?;
        let mut targets = Vec::new();
        for e in &manifest.services {
            let s = services.iter().find(|s| s.name == e.name).ok_or_else(|| {
                BackupError::Refused(format!(
                    "la sauvegarde contient la base {0}, inconnue de ce programme / the backup holds database {0}, unknown to this program",
                    e.name
                ))
            })?;
            sqlite::check_schema(s, e)?;
            let target = sqlite::path_of(s)?;
            sqlite::check_absent(s.name, &target)?;
            manifest::verify(dir, &e.file, &e.sha256)?;
            targets.push(target);
        }
        for e in &manifest.streams {
            manifest::verify(dir, &e.file, &e.sha256)?;
        }
        Ok(Self {
            dir: dir.to_owned(),
            manifest,
            targets,
        })
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Copies the databases, then refills the streams and creates the
    /// consumers. Refuses when an EVA stream already holds messages.
    pub async fn run(self, bus: &Bus, progress: &mut Progress) -> Result<Restored, BackupError> {
        streams::check_empty(bus, &self.manifest.streams).await?;
        progress.set_total(self.targets.len() + self.manifest.streams.len() + 1);
        let mut done = Restored::default();
        for (e, target) in self.manifest.services.iter().zip(&self.targets) {
            progress.step(&format!("db/{}", e.name));
            sqlite::install(&self.dir.join(&e.file), target)?;
            done.databases += 1;
        }
        let mut maps = HashMap::new();
        for e in &self.manifest.streams {
            progress.step(&format!("streams/{}", e.name));
            let map = streams::republish(bus, e, &self.dir).await?;
            done.messages += map.len() as u64;
            done.streams += 1;
            maps.insert(e.name.clone(), map);
        }
        progress.step("consumers");
        for d in &self.manifest.durables {
            let empty = Vec::new();
            let map = maps.get(&d.stream).unwrap_or(&empty);
            streams::create_durable(bus, d, map).await?;
            done.consumers += 1;
        }
        progress.finish();
        Ok(done)
    }
}
