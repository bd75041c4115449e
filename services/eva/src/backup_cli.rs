//! `eva backup <DIR>` and `eva restore <DIR>` of an association's box (SQLite
//! and a local nats-server); the how and why is in `eva_platform::backup`.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context;
use eva_platform::Config;
use eva_platform::backup::{self, Progress, Restore, ServiceDb};
use eva_platform::bus::Bus;
use eva_platform::crypto::Kek;

use crate::local_nats;

/// Every service's database, consumers before producers: statistics reads
/// everyone, identity is read by everyone (see the backup's recipe).
pub fn services(config: &Config) -> Vec<ServiceDb> {
    let dir = &config.data_dir;
    vec![
        ServiceDb {
            name: "statistics",
            url: config.statistics.service().database_url(dir, "statistics"),
            migrations: &eva_statistics::store::MIGRATIONS,
        },
        ServiceDb {
            name: "community",
            url: config.community.database_url(dir, "community"),
            migrations: &eva_community::store::MIGRATIONS,
        },
        ServiceDb {
            name: "referrals",
            url: config.referrals.service().database_url(dir, "referrals"),
            migrations: &eva_referrals::store::MIGRATIONS,
        },
        ServiceDb {
            name: "diagnostics",
            url: config
                .diagnostics
                .service()
                .database_url(dir, "diagnostics"),
            migrations: &eva_diagnostics::store::MIGRATIONS,
        },
        ServiceDb {
            name: "identity",
            url: config.identity.database_url(dir, "identity"),
            migrations: &eva_identity::store::MIGRATIONS,
        },
    ]
}

/// The key-encryption key the configuration names, never a new one: data
/// sealed with a lost key cannot be read.
fn existing_kek(config: &Config) -> anyhow::Result<Kek> {
    if let Some(b64) = &config.keys.kek {
        return Ok(Kek::from_base64(b64)?);
    }
    let path = config
        .keys
        .kek_file
        .clone()
        .unwrap_or_else(|| config.data_dir.join("kek.key"));
    anyhow::ensure!(
        path.exists(),
        "clé de chiffrement absente ({0}) : copiez le kek.key de la machine sauvegardée (il n'est pas dans la sauvegarde) / key-encryption key missing ({0}): copy kek.key from the backed-up machine (it is not in the backup)",
        path.display()
    );
    Ok(Kek::from_file(&path, false)?)
}

/// Backs up the running box; its nats-server is `bus.url`, else the one
/// `eva up` started at `nats_url`.
pub async fn backup(config: &Config, dir: &Path, nats_url: &str) -> anyhow::Result<()> {
    let kek = existing_kek(config)?;
    let url = config.bus.url.as_deref().unwrap_or(nats_url);
    let bus = Bus::connect(&config.bus, url, "backup")
        .await
        .context("EVA doit tourner pendant la sauvegarde / EVA must be running during a backup")?;
    let mut progress = Progress::stderr();
    let m = backup::backup(&bus, &services(config), &kek, dir, &mut progress).await?;
    let messages: u64 = m.streams.iter().map(|s| s.messages).sum();
    let left_out: u64 = m.streams.iter().map(|s| s.left_out).sum();
    let bytes: u64 = m.services.iter().map(|s| s.bytes).sum();
    eprintln!(
        "Sauvegarde terminée dans {d} : {n} bases ({kb} Kio), {s} flux, {messages} messages, {c} consommateurs ; {left_out} messages écrits après la copie des bases laissés de côté. La clé de chiffrement n'est pas dans la sauvegarde : gardez kek.key à part.",
        d = dir.display(),
        n = m.services.len(),
        kb = bytes / 1024,
        s = m.streams.len(),
        c = m.durables.len(),
    );
    eprintln!(
        "Backup done in {d}: {n} databases ({kb} KiB), {s} streams, {messages} messages, {c} consumers; {left_out} messages written after the database copy left out. The key-encryption key is not in the backup: keep kek.key apart.",
        d = dir.display(),
        n = m.services.len(),
        kb = bytes / 1024,
        s = m.streams.len(),
        c = m.durables.len(),
    );
    Ok(())
}

/// Restores into the configured `data_dir` and bus (`bus.url`, else a local
/// nats-server started as `eva up` does, stopped at the end).
pub async fn restore(config: &Config, dir: &Path, nats_listen: SocketAddr) -> anyhow::Result<()> {
    let kek = existing_kek(config)?;
    // Every check before anything is written or started.
    let plan = Restore::open(dir, &services(config), &kek)?;
    let nats = match &config.bus.url {
        Some(_) => None,
        None => {
            let binary = local_nats::find_binary(config.bus.nats_server.as_deref())?;
            Some(
                local_nats::LocalNats::start(&binary, &config.data_dir, nats_listen)
                    .await
                    .context("local nats-server")?,
            )
        }
    };
    let url = config
        .bus
        .url
        .clone()
        .or_else(|| nats.as_ref().map(|n| n.url.clone()))
        .unwrap_or_default();
    let created = plan.manifest().created_at.clone();
    let result = async {
        let bus = Bus::connect(&config.bus, &url, "restore").await?;
        let mut progress = Progress::stderr();
        anyhow::Ok(plan.run(&bus, &mut progress).await?)
    }
    .await;
    if let Some(n) = nats {
        n.stop().await;
    }
    let done = result?;
    eprintln!(
        "Restauration terminée (sauvegarde du {created}) : {} bases, {} flux, {} messages, {} consommateurs. Démarrez EVA : eva up",
        done.databases, done.streams, done.messages, done.consumers
    );
    eprintln!(
        "Restore done (backup of {created}): {} databases, {} streams, {} messages, {} consumers. Start EVA: eva up",
        done.databases, done.streams, done.messages, done.consumers
    );
    Ok(())
}
