//! Diagnostics: the shared diagnostic on the référentiel commun.
//!
//! Built so far: the référentiel as versioned data (`referentiel/*.toml`,
//! embedded, plus an optional folder from `diagnostics.referentiel_dir`),
//! loaded and checked at start, and served by `ReferentielService`.

mod api;
pub mod referentiel;
pub mod store;

use std::sync::Arc;

use eva_platform::bus::streams;
use eva_platform::grpc::GrpcServer;
use eva_platform::service::{ServiceContext, StartError};
use eva_platform::{Config, Shutdown};
use eva_proto::diagnostics::v1::referentiel_service_server::ReferentielServiceServer;
use tokio::net::TcpListener;

pub const SERVICE: &str = "diagnostics";

/// Reads and checks the référentiel versions: the built-in files, then those
/// of `diagnostics.referentiel_dir`. One line names the file, the line and
/// the key of the first mistake.
pub async fn load_referentiels(
    config: &Config,
) -> Result<referentiel::Referentiels, referentiel::LoadError> {
    let dir = config.diagnostics.referentiel_dir.clone();
    let loaded = tokio::task::spawn_blocking(move || {
        let extra = match &dir {
            Some(dir) => referentiel::load_dir(dir)?,
            None => Vec::new(),
        };
        referentiel::load(&referentiel::built_in(), &extra, referentiel::today())
    })
    .await;
    match loaded {
        Ok(r) => r,
        Err(e) => Err(referentiel::LoadError::File {
            file: "referentiel".into(),
            message: e.to_string(),
        }),
    }
}

/// Runs diagnostics on `listener` until `shutdown`.
pub async fn run(
    config: Arc<Config>,
    listener: TcpListener,
    shutdown: Shutdown,
) -> Result<(), StartError> {
    // A bad référentiel stops the service before anything else starts.
    let referentiels = load_referentiels(&config)
        .await
        .map_err(|e| StartError::Other {
            service: SERVICE,
            reason: e.to_string(),
        })?;
    let ctx = ServiceContext::start(
        SERVICE,
        config.clone(),
        &config.diagnostics.service(),
        &store::MIGRATIONS,
        &[streams::DIAGNOSTICS],
        shutdown,
    )
    .await?;
    let store = store::Store::new(ctx.db.clone());
    for r in referentiels.newest_first() {
        let published_on = r
            .valid_from
            .format(eva_platform::consent::DATE_FORMAT)
            .unwrap_or_default();
        match store
            .record_referentiel_version(&r.version, &published_on, &r.sha256)
            .await
        {
            Ok(Some(_)) => tracing::warn!(
                version = %r.version,
                source = %r.source,
                "référentiel version content changed since it was last loaded"
            ),
            Ok(None) => {}
            Err(cause) => {
                return Err(StartError::Db {
                    service: SERVICE,
                    cause,
                });
            }
        }
    }
    if let Some(current) = referentiels.current(referentiel::today()) {
        tracing::info!(
            versions = referentiels.len(),
            current = %current.version,
            "référentiel loaded"
        );
    }
    let server = GrpcServer::new(SERVICE)
        .add_service(ReferentielServiceServer::new(api::ReferentielApi {
            referentiels: Arc::new(referentiels),
        }))
        .auth(ctx.verifier()?);
    ctx.serve(server, listener).await
}
