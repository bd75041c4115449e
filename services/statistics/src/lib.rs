//! Statistics: anonymous indicators for the département and funders,
//! computed only from events, never from another service's data.
//!
//! Built so far: the structures projection (from identity's events) and the
//! `structures` indicator.

mod api;
pub mod indicators;
pub mod person_data;
pub mod projection;
pub mod store;

use std::sync::Arc;

use eva_platform::bus::streams;
use eva_platform::consumer::Subscription;
use eva_platform::grpc::GrpcServer;
use eva_platform::service::{ServiceContext, StartError};
use eva_platform::{Config, Shutdown};
use eva_proto::statistics::v1::indicator_service_server::IndicatorServiceServer;
use tokio::net::TcpListener;

pub const SERVICE: &str = "statistics";

/// Durable consumer of identity's structure events.
pub const STRUCTURES_CONSUMER: &str = "statistics-structures";

/// Runs statistics on `listener` until `shutdown`.
pub async fn run(
    config: Arc<Config>,
    listener: TcpListener,
    shutdown: Shutdown,
) -> Result<(), StartError> {
    let ctx = ServiceContext::start(
        SERVICE,
        config.clone(),
        &config.statistics,
        &store::MIGRATIONS,
        &[streams::STATISTICS],
        shutdown,
    )
    .await?;
    let store = store::Store::new(ctx.db.clone());
    ctx.spawn_consumer(
        Subscription::new(
            streams::IDENTITY,
            STRUCTURES_CONSUMER,
            &["eva.identity.structure.>"],
        ),
        projection::Structures::new(store.clone()),
    );
    let server = GrpcServer::new(SERVICE)
        .add_service(IndicatorServiceServer::new(api::Api { store }))
        .add_service(person_data::server())
        .auth(ctx.verifier()?);
    ctx.serve(server, listener).await
}
