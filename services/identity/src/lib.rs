//! Identity and consent: structures, accounts, people supported, consent and
//! the access log; the issuer of EVA's access tokens.
//!
//! Built so far: structures (the directory of associations, partners and the
//! département) and the token signing keys with their published JWKS.

mod api;
pub mod keys;
pub mod store;
pub mod structure;

use std::sync::Arc;
use std::time::Duration;

use eva_platform::auth::{Role, TokenSigner, Verifier};
use eva_platform::bus::streams;
use eva_platform::grpc::GrpcServer;
use eva_platform::service::{ServiceContext, StartError};
use eva_platform::{Config, Db, Shutdown};
use eva_proto::identity::v1::key_service_server::KeyServiceServer;
use eva_proto::identity::v1::structure_service_server::StructureServiceServer;
use tokio::net::TcpListener;

pub const SERVICE: &str = "identity";

/// Errors of identity, mapped once to gRPC statuses in `api`.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error(transparent)]
    Db(#[from] eva_platform::db::DbError),
    #[error("keys: {0}")]
    Keys(String),
}

/// Runs identity on `listener` until `shutdown`.
pub async fn run(
    config: Arc<Config>,
    listener: TcpListener,
    shutdown: Shutdown,
) -> Result<(), StartError> {
    let ctx = ServiceContext::start(
        SERVICE,
        config.clone(),
        &config.identity,
        &store::MIGRATIONS,
        &[streams::IDENTITY, streams::CONSENT],
        shutdown,
    )
    .await?;
    let kek = ctx.kek()?;
    let store = store::Store::new(ctx.db.clone());
    let signer = keys::current_signer(&store, &kek)
        .await
        .map_err(|e| StartError::Other {
            service: SERVICE,
            reason: e.to_string(),
        })?;
    let ttl = Duration::from_secs(config.auth.access_token_ttl_secs);
    let state = Arc::new(api::State {
        store: store.clone(),
        kek: kek.clone(),
        token_ttl: ttl,
    });
    // Identity verifies tokens with its own keys, straight from its database.
    let verifier = Verifier::new(
        &config.auth.issuer,
        &config.auth.audience,
        Arc::new(move || {
            let (store, kek) = (store.clone(), kek.clone());
            Box::pin(async move {
                keys::published(&store, &kek, ttl)
                    .await
                    .map_err(|e| e.to_string())
            })
        }),
    );
    let server = GrpcServer::new(SERVICE)
        .add_service(StructureServiceServer::from_arc(state.clone()))
        .add_service(KeyServiceServer::from_arc(state))
        .public(&["/eva.identity.v1.KeyService/GetJwks"])
        .auth(verifier);
    tracing::info!(kid = signer.kid(), "identity ready");
    ctx.serve(server, listener).await
}

/// Issues a token with identity's current key, reading the key from the
/// database with the KEK: how the first operator of a new installation gets
/// in (`eva token`), and how tests act as any role. Whoever can run it
/// already holds the database and the KEK.
pub async fn issue_token(
    config: &Config,
    subject: &str,
    roles: Vec<Role>,
    structures: Vec<String>,
    ttl: Duration,
) -> Result<String, StartError> {
    let url = config.identity.database_url(&config.data_dir, SERVICE);
    let other = |reason: String| StartError::Other {
        service: SERVICE,
        reason,
    };
    let db = Db::connect(&url, 1).await.map_err(|cause| StartError::Db {
        service: SERVICE,
        cause,
    })?;
    db.migrate(&store::MIGRATIONS)
        .await
        .map_err(|cause| StartError::Db {
            service: SERVICE,
            cause,
        })?;
    let kek = eva_platform::service::load_kek(config).map_err(|cause| StartError::Keys {
        service: SERVICE,
        cause,
    })?;
    let signer = keys::current_signer(&store::Store::new(db.clone()), &kek)
        .await
        .map_err(|e| other(e.to_string()))?;
    db.close().await;
    let claims = TokenSigner::claims(
        &config.auth.issuer,
        &config.auth.audience,
        subject,
        roles,
        structures,
        ttl,
    );
    Ok(signer.sign(&claims))
}
