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
use eva_platform::grpc::GrpcServer;
use eva_platform::sealing::Sealer;
use eva_platform::service::{ServiceContext, StartError};
use eva_platform::{Clock, Config, Shutdown};
use tokio::net::TcpListener;

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
    ctx.spawn_consumer(
        Subscription::new(
            streams::IDENTITY,
            projection::ACCOMPANIMENTS_CONSUMER,
            &["eva.identity.accompaniment.>"],
        ),
        projection::Accompaniments,
    );
    ctx.spawn_consumer(
        Subscription::new(
            streams::IDENTITY,
            projection::STRUCTURES_CONSUMER,
            &["eva.identity.structure.>"],
        ),
        projection::Structures,
    );
    let consents = Consents::spawn(&ctx);
    let sealer = Sealer::connect(&config, SERVICE)?;
    let _ = (&store, &consents, &sealer, &clock);
    let server = GrpcServer::new(SERVICE)
        // Each part registers its gRPC services here, one line each.
        .auth(ctx.verifier()?);
    ctx.serve(server, listener).await
}
