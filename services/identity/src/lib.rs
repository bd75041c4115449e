//! Identity and consent: structures, accounts, people supported, consent and
//! the access log; the issuer of EVA's access tokens.
//!
//! Modules: structures (the directory of associations, partners and the
//! département); [`accounts`] (members, operators and people's own accounts:
//! invitations, password login, rotating refresh tokens); [`people`] (identity
//! fields sealed with each person's key, blind-index search);
//! [`accompaniments`] (who follows whom, share codes); [`consent`] (grants,
//! receipts, withdrawal, expiry, `CheckAccess`); [`access_log`]; [`rights`]
//! (export, erasure, objection); [`sealing`]; the signing keys and their JWKS.

pub mod access_log;
pub mod accompaniments;
pub mod accounts;
mod api;
pub mod consent;
pub mod keys;
pub mod people;
pub mod rights;
pub mod sealing;
pub mod store;
pub mod structure;

use std::sync::Arc;
use std::time::Duration;

use eva_platform::auth::{Claims, Role, TokenSigner, Verifier};
use eva_platform::bus::streams;
use eva_platform::consumer::Subscription;
use eva_platform::grpc::GrpcServer;
use eva_platform::service::{ServiceContext, StartError};
use eva_platform::{Config, Db, Shutdown};
use eva_proto::identity::v1::key_service_server::KeyServiceServer;
use eva_proto::identity::v1::member_service_server::MemberServiceServer;
use eva_proto::identity::v1::session_service_server::SessionServiceServer;
use eva_proto::identity::v1::structure_service_server::StructureServiceServer;
use tokio::net::TcpListener;

pub const SERVICE: &str = "identity";

/// Methods callable without a token: the keys, and what a caller does before
/// holding a token (its credential is in the request).
pub const PUBLIC_METHODS: &[&str] = &[
    "/eva.identity.v1.KeyService/GetJwks",
    "/eva.identity.v1.SessionService/Login",
    "/eva.identity.v1.SessionService/RefreshSession",
    "/eva.identity.v1.SessionService/Logout",
    "/eva.identity.v1.SessionService/GetInvitation",
    "/eva.identity.v1.SessionService/AcceptInvitation",
];

pub use accounts::{OperatorInvitation, OperatorInviteError, invite_operator};

/// Errors of identity, mapped once to gRPC statuses in `api`.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error(transparent)]
    Db(#[from] eva_platform::db::DbError),
    #[error("keys: {0}")]
    Keys(String),
    #[error("password hashing: {0}")]
    Hashing(String),
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
    let accounts = Arc::new(accounts::Accounts::new(
        store.clone(),
        kek.clone(),
        signer.clone(),
        &config.auth,
    ));
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
    let rights = rights::api::RightsApi::new(
        ctx.db.clone(),
        state.kek.clone(),
        accounts.clone(),
        rights::api::sources(&config)?,
    );
    ctx.spawn_consumer(
        Subscription::new(streams::AUDIT, access_log::CONSUMER, &["eva.audit.>"]),
        access_log::AccessLogProjection,
    );
    ctx.spawn_consumer(
        Subscription::new(
            streams::REFERRALS,
            accompaniments::referrals::CONSUMER,
            &[accompaniments::referrals::ACCEPTED],
        ),
        accompaniments::referrals::ReferralAcceptances,
    );
    let server = GrpcServer::new(SERVICE)
        .add_service(access_log::api::server(ctx.db.clone(), accounts.clone()))
        .add_service(rights.clone().rights_server())
        .add_service(rights.person_data_server())
        .add_service(people::api::server(ctx.db.clone(), state.kek.clone()))
        .add_service(consent::api::server(ctx.db.clone(), state.kek.clone()))
        .add_service(accompaniments::api::server(
            ctx.db.clone(),
            state.kek.clone(),
        ))
        .add_service(accompaniments::person_account::server(
            ctx.db.clone(),
            state.kek.clone(),
            accounts.clone(),
        ))
        .add_service(sealing::api::server(ctx.db.clone(), state.kek.clone()))
        .add_service(StructureServiceServer::from_arc(state.clone()))
        .add_service(KeyServiceServer::from_arc(state))
        .add_service(SessionServiceServer::from_arc(accounts.clone()))
        .add_service(MemberServiceServer::from_arc(accounts))
        .public(PUBLIC_METHODS)
        .auth(verifier);
    consent::expiry::spawn(&ctx);
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
    let claims = TokenSigner::claims(
        &config.auth.issuer,
        &config.auth.audience,
        subject,
        roles,
        structures,
        ttl,
    );
    sign_claims(config, &claims).await
}

/// Signs any claims with identity's current key, as [`issue_token`] does:
/// for tests that need an expired token or one for another audience.
pub async fn sign_claims(config: &Config, claims: &Claims) -> Result<String, StartError> {
    let (db, accounts) = open_offline(config).await?;
    db.close().await;
    Ok(accounts.signer.sign(claims))
}

/// Identity's database (migrated), the KEK and the signing key, opened by a
/// command rather than the running service.
pub(crate) async fn open_offline(config: &Config) -> Result<(Db, accounts::Accounts), StartError> {
    let url = config.identity.database_url(&config.data_dir, SERVICE);
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
    let store = store::Store::new(db.clone());
    let signer = keys::current_signer(&store, &kek)
        .await
        .map_err(|e| StartError::Other {
            service: SERVICE,
            reason: e.to_string(),
        })?;
    let accounts = accounts::Accounts::new(store, kek, signer, &config.auth);
    Ok((db, accounts))
}
