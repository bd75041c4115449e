//! Statistics: anonymous indicators for the département and funders,
//! computed only from events, never from another service's data, never
//! knowing who anyone is.
//!
//! Sources ([`feed::Feed`]) turn events into facts and counters, per
//! generation ([`rebuild`]); the [`catalogue`] says which source computes
//! each indicator; [`disclosure`] suppresses small cells before anything
//! leaves; [`api`] and [`export`] answer.

pub mod api;
pub mod catalogue;
pub mod community;
pub mod diagnostics;
pub mod disclosure;
pub mod export;
pub mod feed;
pub mod model;
pub mod people;
pub mod person_data;
pub mod rebuild;
pub mod referrals;
pub mod store;
pub mod structures;

use std::sync::Arc;

use eva_platform::bus::streams;
use eva_platform::config::FederationRole;
use eva_platform::db::DbError;
use eva_platform::grpc::GrpcServer;
use eva_platform::service::{ServiceContext, StartError};
use eva_platform::{Config, Shutdown};
use eva_proto::statistics::v1::export_service_server::ExportServiceServer;
use eva_proto::statistics::v1::indicator_service_server::IndicatorServiceServer;
use eva_proto::statistics::v1::projection_service_server::ProjectionServiceServer;
use tokio::net::TcpListener;

use crate::feed::{Federated, Feed, Live};

pub const SERVICE: &str = "statistics";

/// Every source of statistics, in the order a rebuild reads them; on the
/// département's hub, each a second time on the boxes' copy of its stream.
pub async fn feeds(
    store: &store::Store,
    federation: FederationRole,
) -> Result<Vec<Arc<dyn Feed>>, DbError> {
    let pseudonyms = people::Pseudonyms::load(store).await?;
    let mut feeds: Vec<Arc<dyn Feed>> = vec![
        Arc::new(structures::StructuresFeed),
        Arc::new(people::PeopleFeed {
            pseudonyms: pseudonyms.clone(),
        }),
        Arc::new(diagnostics::DiagnosticsFeed),
        Arc::new(referrals::ReferralsFeed { pseudonyms }),
        Arc::new(community::CommunityFeed),
    ];
    if federation == FederationRole::Hub {
        let boxes: Vec<Arc<dyn Feed>> = feeds
            .iter()
            .map(|f| Arc::new(Federated(f.clone())) as Arc<dyn Feed>)
            .collect();
        feeds.extend(boxes);
    }
    Ok(feeds)
}

/// Runs statistics on `listener` until `shutdown`.
pub async fn run(
    config: Arc<Config>,
    listener: TcpListener,
    shutdown: Shutdown,
) -> Result<(), StartError> {
    let ctx = ServiceContext::start(
        SERVICE,
        config.clone(),
        &config.statistics.service(),
        &store::MIGRATIONS,
        &[streams::STATISTICS],
        shutdown,
    )
    .await?;
    let store = store::Store::new(ctx.db.clone());
    let feeds = feeds(&store, config.federation.role)
        .await
        .map_err(|e| StartError::Other {
            service: SERVICE,
            reason: e.to_string(),
        })?;
    // A rebuild cut short by a stop is abandoned before any consumer could
    // write into its generation again.
    let rebuilds = rebuild::Rebuilds::new(
        store.clone(),
        ctx.bus.clone(),
        feeds.clone(),
        ctx.shutdown.clone(),
    );
    rebuilds.recover().await.map_err(|e| StartError::Other {
        service: SERVICE,
        reason: e.to_string(),
    })?;
    for feed in &feeds {
        ctx.spawn_consumer(feed.subscription(), Live(feed.clone()));
    }
    let rule = disclosure::Rule {
        threshold: config.statistics.disclosure_threshold,
    };
    // A person's export lists what statistics holds under their pseudonym.
    let pseudonyms = people::Pseudonyms::load(&store)
        .await
        .map_err(|e| StartError::Other {
            service: SERVICE,
            reason: e.to_string(),
        })?;
    let person_data = person_data::server(store.clone(), pseudonyms);
    let server = GrpcServer::new(SERVICE)
        .add_service(IndicatorServiceServer::new(api::Api {
            store: store.clone(),
            rule,
        }))
        .add_service(ExportServiceServer::new(api::Api { store, rule }))
        .add_service(ProjectionServiceServer::new(rebuilds))
        .add_service(person_data)
        .auth(ctx.verifier()?);
    ctx.serve(server, listener).await
}
