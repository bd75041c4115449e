//! `manifest.json`: what a backup holds and how to check it.

use std::io::Read;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{BackupError, io};
use crate::crypto::Kek;

/// Bumped when the layout changes; a restore refuses a newer one.
pub const FORMAT_VERSION: u32 = 1;

/// Sealed with the key-encryption key; only the same key opens it.
const PROBE: &[u8] = b"eva backup key probe";
const PROBE_AAD: &[u8] = b"eva-backup";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    pub eva_version: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// [`PROBE`] sealed with the key-encryption key, base64.
    pub key_probe: String,
    pub services: Vec<ServiceEntry>,
    pub streams: Vec<StreamEntry>,
    pub durables: Vec<DurableEntry>,
    /// Whole copies taken until one was consistent (see the recipe).
    #[serde(default)]
    pub attempts: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceEntry {
    pub name: String,
    /// Relative to the backup directory: `db/<service>.sqlite`.
    pub file: String,
    pub sha256: String,
    pub bytes: u64,
    /// Highest applied migration of the service's own schema.
    pub schema_version: i64,
    /// Highest applied migration of the platform's tables.
    pub platform_schema_version: i64,
    /// Last `eva_outbox.seq` given out when the copy was taken.
    pub outbox_high_water: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StreamEntry {
    pub name: String,
    /// `streams/<STREAM>.jsonl`.
    pub file: String,
    pub sha256: String,
    /// Messages written to the file.
    pub messages: u64,
    /// Original sequences of the first and last messages kept (0 when none).
    pub first_seq: u64,
    pub last_seq: u64,
    /// Messages left out: written after their service's database copy.
    pub left_out: u64,
}

/// A durable consumer, enough to create it again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DurableEntry {
    pub stream: String,
    pub name: String,
    pub filter_subjects: Vec<String>,
    pub ack_wait_ms: u64,
    pub max_deliver: i64,
    pub max_ack_pending: i64,
    /// Stream sequence at or below which everything was applied.
    pub ack_floor: u64,
}

impl Manifest {
    pub(super) fn new(
        kek: &Kek,
        services: Vec<ServiceEntry>,
        streams: Vec<StreamEntry>,
        durables: Vec<DurableEntry>,
    ) -> Self {
        Self {
            format_version: FORMAT_VERSION,
            eva_version: env!("CARGO_PKG_VERSION").to_owned(),
            created_at: OffsetDateTime::now_utc()
                .format(&Rfc3339)
                .unwrap_or_default(),
            key_probe: STANDARD.encode(kek.seal(PROBE, PROBE_AAD)),
            services,
            streams,
            durables,
            attempts: 1,
        }
    }

    pub(super) fn write(&self, path: &Path) -> Result<(), BackupError> {
        let text = serde_json::to_string_pretty(self).map_err(|e| BackupError::Io {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        std::fs::write(path, text).map_err(io(path))
    }

    pub fn read(path: &Path) -> Result<Self, BackupError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            BackupError::Refused(format!(
                "{} illisible, est-ce une sauvegarde d'EVA ? / {} unreadable, is this an EVA backup? ({e})",
                path.display(),
                path.display()
            ))
        })?;
        let m: Self = serde_json::from_str(&text).map_err(|e| {
            BackupError::Refused(format!(
                "{} invalide / {} is invalid: {e}",
                path.display(),
                path.display()
            ))
        })?;
        if m.format_version > FORMAT_VERSION {
            return Err(BackupError::Refused(format!(
                "sauvegarde au format {0}, plus récent que ce programme ({FORMAT_VERSION}) : installez EVA {1} / backup format {0} is newer than this program's {FORMAT_VERSION}: install EVA {1}",
                m.format_version, m.eva_version
            )));
        }
        Ok(m)
    }

    /// Refuses a key that is not the one the backup's data is sealed with.
    pub fn check_key(&self, kek: &Kek) -> Result<(), BackupError> {
        let opened = STANDARD
            .decode(&self.key_probe)
            .ok()
            .and_then(|sealed| kek.open(&sealed, PROBE_AAD).ok());
        if opened.as_deref() == Some(PROBE) {
            Ok(())
        } else {
            Err(BackupError::Refused(
                "la clé de chiffrement configurée n'est pas celle de la sauvegarde : copiez l'ancien kek.key (ou keys.kek) avant de restaurer / the configured key-encryption key is not the backup's: copy the old kek.key (or keys.kek) before restoring".into(),
            ))
        }
    }
}

/// Hex sha256 and size of a file.
pub(super) fn sha256_file(path: &Path) -> Result<(String, u64), BackupError> {
    let mut f = std::fs::File::open(path).map_err(io(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut bytes = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        bytes += n as u64;
    }
    let hex = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok((hex, bytes))
}

/// Refuses a file whose sha256 is not the manifest's.
pub(super) fn verify(dir: &Path, file: &str, expected: &str) -> Result<(), BackupError> {
    let path = dir.join(file);
    let (got, _) = sha256_file(&path)?;
    if got == expected {
        Ok(())
    } else {
        Err(BackupError::Refused(format!(
            "{file} est abîmé (sha256 {got}, attendu {expected}) : la sauvegarde ne peut pas être restaurée / {file} is corrupted (sha256 {got}, expected {expected}): the backup cannot be restored"
        )))
    }
}
