//! Diagnostics: the shared diagnostic on the référentiel commun.
//!
//! The référentiel as versioned data (`referentiel/*.toml`, embedded, plus an
//! optional folder from `diagnostics.referentiel_dir`), loaded and checked at
//! start, and served by `ReferentielService`; the diagnostics themselves
//! (`DiagnosticService`, see [`diagnostic`]), fed by projections of
//! identity's accompaniments and structures, with notes sealed by identity
//! with the person's key; the action plan ([`action_plan`]); the person's
//! export part (`PersonDataService`) and erasure.

pub mod action_plan;
mod api;
pub mod diagnostic;
pub mod notes;
pub mod person_data;
pub mod projection;
pub mod referentiel;
pub mod store;

use std::sync::Arc;

use eva_platform::bus::streams;
use eva_platform::consent::Consents;
use eva_platform::consumer::Subscription;
use eva_platform::follows::Follows;
use eva_platform::grpc::GrpcServer;
use eva_platform::sealing::Sealer;
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
    let follows = Follows::spawn(&ctx);
    ctx.spawn_consumer(
        Subscription::new(
            streams::IDENTITY,
            projection::OBJECTIONS_CONSUMER,
            &["eva.identity.person.statistics_objection_changed"],
        ),
        projection::Objections,
    );
    ctx.spawn_consumer(
        Subscription::new(
            streams::IDENTITY,
            projection::ERASURE_CONSUMER,
            &["eva.identity.person.erased"],
        ),
        projection::Erasure {
            store: store.clone(),
        },
    );
    let consents = Consents::spawn(&ctx);
    let referentiels = Arc::new(referentiels);
    let diagnostics = diagnostic::DiagnosticApi {
        store: store.clone(),
        referentiels: referentiels.clone(),
        consents,
        follows,
        sealer: Sealer::connect(&config, SERVICE)?,
    };
    let server = GrpcServer::new(SERVICE)
        .add_service(ReferentielServiceServer::new(api::ReferentielApi {
            referentiels,
        }))
        .add_service(diagnostic::server(diagnostics.clone()))
        .add_service(action_plan::server(diagnostics.clone()))
        .add_service(person_data::server(diagnostics))
        .auth(ctx.verifier()?);
    ctx.serve(server, listener).await
}
