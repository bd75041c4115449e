//! Referrals: the directory of services (offres, data·inclusion schema v1),
//! the referrals (orientations) of a person from one structure to another
//! structure or a partner, with their state machine, history, message
//! thread, reminders and expiry, and the delivery of the events addressed to
//! partners (their NATS subjects, their webhooks).
//!
//! What it keeps about a person (the counselor's reason, the contact, notes,
//! messages, the travelling diagnostic) is sealed with the person's key by
//! identity; events carry ids, codes and sealed payloads only.

pub mod directory;
pub mod events_json;
pub mod partners;
pub mod person_data;
pub mod projection;
pub mod referral;
pub mod store;

use std::sync::Arc;

use eva_platform::bus::streams;
use eva_platform::consent::Consents;
use eva_platform::consumer::Subscription;
use eva_platform::follows::Follows;
use eva_platform::grpc::GrpcServer;
use eva_platform::sealing::Sealer;
use eva_platform::service::{ServiceContext, StartError};
use eva_platform::{Clock, Config, Shutdown};
use std::time::Duration;
use tokio::net::TcpListener;
use tonic::transport::{Channel, Endpoint};

pub const SERVICE: &str = "referrals";

/// Runs referrals on `listener` until `shutdown`, on the system clock.
pub async fn run(
    config: Arc<Config>,
    listener: TcpListener,
    shutdown: Shutdown,
) -> Result<(), StartError> {
    run_with_clock(config, listener, shutdown, Clock::system()).await
}

/// As [`run`], with the clock the scheduler and the deadlines use (tests
/// move it forward to make days pass).
pub async fn run_with_clock(
    config: Arc<Config>,
    listener: TcpListener,
    shutdown: Shutdown,
    clock: Clock,
) -> Result<(), StartError> {
    let ctx = ServiceContext::start(
        SERVICE,
        config.clone(),
        &config.referrals.service(),
        &store::MIGRATIONS,
        &[streams::REFERRALS, streams::PARTNERS],
        shutdown,
    )
    .await?;
    let store = store::Store::new(ctx.db.clone());
    let follows = Follows::spawn(&ctx);
    ctx.spawn_consumer(
        Subscription::new(
            streams::IDENTITY,
            projection::ERASURE_CONSUMER,
            &["eva.identity.person.erased"],
        ),
        projection::Erasure,
    );
    let consents = Consents::spawn(&ctx);
    let sealer = Sealer::connect(&config, SERVICE)?;
    let referrals = referral::ReferralApi {
        store: store.clone(),
        referrals: referral::store::ReferralStore::new(ctx.db.clone()),
        consents,
        follows: follows.clone(),
        sealer,
        identity: channel("identity", &config.identity.endpoint)?,
        diagnostics: channel("diagnostics", &config.diagnostics.endpoint)?,
        clock: clock.clone(),
        config: config.referrals.clone(),
    };
    referral::scheduler::spawn(referrals.clone(), ctx.shutdown.clone());
    partners::spawn_worker(
        ctx.db.clone(),
        ctx.kek()?,
        &config.referrals,
        clock.clone(),
        ctx.shutdown.clone(),
    )?;
    let server = GrpcServer::new(SERVICE)
        // Each part registers its gRPC services here, one line each.
        .add_service(directory::server(store.clone(), follows, &config)?)
        .add_service(partners::server(ctx.db.clone(), ctx.kek()?, clock.clone()))
        .add_service(referral::server(referrals.clone()))
        .add_service(person_data::server(referrals))
        .auth(ctx.verifier()?);
    ctx.serve(server, listener).await
}

/// A lazily connected channel to another service.
fn channel(name: &str, url: &str) -> Result<Channel, StartError> {
    Endpoint::from_shared(url.to_owned())
        .map(|e| {
            e.connect_timeout(Duration::from_secs(3))
                .tcp_nodelay(true)
                .connect_lazy()
        })
        .map_err(|e| StartError::Other {
            service: SERVICE,
            reason: format!("{name}.endpoint `{url}`: {e}"),
        })
}
