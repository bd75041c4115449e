//! Community: counselors help each other. Spaces (by territory, by theme,
//! private per structure), questions and answers with votes and an accepted
//! and a certified answer, a library of solution sheets tied to the
//! diagnostic's domains, French full-text search, moderation, notifications,
//! and anonymous quality-of-work-life check-ins. No personal data of the
//! people supported belongs here: posts are screened before they are stored.

pub mod checkins;
pub mod content;
pub mod moderation;
pub mod notifications;
pub mod person_data;
pub mod screening;
pub mod search;
pub mod store;
pub mod users;

use std::sync::Arc;

use eva_platform::bus::streams;
use eva_platform::grpc::GrpcServer;
use eva_platform::service::{ServiceContext, StartError};
use eva_platform::{Config, Shutdown};
use tokio::net::TcpListener;

pub const SERVICE: &str = "community";

/// Runs community on `listener` until `shutdown`.
pub async fn run(
    config: Arc<Config>,
    listener: TcpListener,
    shutdown: Shutdown,
) -> Result<(), StartError> {
    let ctx = ServiceContext::start(
        SERVICE,
        config.clone(),
        &config.community,
        &store::MIGRATIONS,
        &[streams::COMMUNITY],
        shutdown,
    )
    .await?;
    // Moderation, notifications, check-ins, deleted accounts.
    // Structures' territory, for the check-ins' département.
    eva_platform::follows::Follows::spawn(&ctx);
    ctx.spawn_consumer(
        notifications::subscription(),
        notifications::NotificationFeed,
    );
    ctx.spawn_consumer(
        eva_platform::consumer::Subscription::new(
            streams::IDENTITY,
            users::USERS_CONSUMER,
            &[users::USER_DELETED],
        ),
        users::AccountDeletion,
    );
    // Content: spaces, questions and answers, solutions.
    let content = content::ContentApi::new(
        ctx.db.clone(),
        screening::Screening::connect(&config, ctx.db.clone(), SERVICE)?,
    );
    let server = GrpcServer::new(SERVICE)
        // Each part registers its gRPC services here, one line each.
        .add_service(content::space_server(content.clone()))
        .add_service(content::question_server(content.clone()))
        .add_service(content::solution_server(content))
        .add_service(moderation::server(ctx.db.clone()))
        .add_service(notifications::server(
            ctx.db.clone(),
            &ctx.bus,
            ctx.shutdown.clone(),
        ))
        .add_service(checkins::server(ctx.db.clone()))
        .add_service(person_data::server())
        .add_service(search::server(
            ctx.db.clone(),
            screening::Screening::connect(&config, ctx.db.clone(), SERVICE)?,
        ))
        .auth(ctx.verifier()?);
    ctx.serve(server, listener).await
}
