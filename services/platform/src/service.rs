//! What every service does at start, in one place: open and migrate its
//! database, connect to the bus, declare its streams, start its outbox relay
//! and consumers, and serve gRPC until shutdown.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::auth::Verifier;
use crate::bus::{Bus, BusError, StreamSpec, streams};
use crate::config::{Config, ServiceConfig};
use crate::consumer::{self, Projection, Subscription};
use crate::crypto::{CryptoError, Kek};
use crate::db::{Db, DbError, Migrations};
use crate::grpc::{GrpcError, GrpcServer};
use crate::outbox::Relay;
use crate::shutdown::Shutdown;

/// Why a service could not start; one line, naming the part.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{service}: bus.url is not set (eva up sets it; eva serve needs it)")]
    NoBus { service: &'static str },
    #[error("{service}: {cause}")]
    Db {
        service: &'static str,
        cause: DbError,
    },
    #[error("{service}: {cause}")]
    Bus {
        service: &'static str,
        cause: BusError,
    },
    #[error("{service}: {cause}")]
    Grpc {
        service: &'static str,
        cause: GrpcError,
    },
    #[error("{service}: cannot listen on {addr}: {reason}")]
    Listen {
        service: &'static str,
        addr: String,
        reason: String,
    },
    #[error("{service}: key-encryption key: {cause}")]
    Keys {
        service: &'static str,
        cause: CryptoError,
    },
    #[error("{service}: {reason}")]
    Other {
        service: &'static str,
        reason: String,
    },
}

/// A started service's shared handles.
#[derive(Clone)]
pub struct ServiceContext {
    pub name: &'static str,
    pub config: Arc<Config>,
    pub db: Db,
    pub bus: Bus,
    pub shutdown: Shutdown,
}

impl ServiceContext {
    /// Opens the database (migrated), the bus and the streams the service
    /// publishes to, and starts its outbox relay.
    pub async fn start(
        name: &'static str,
        config: Arc<Config>,
        svc: &ServiceConfig,
        migrations: &Migrations,
        publishes: &[StreamSpec],
        shutdown: Shutdown,
    ) -> Result<Self, StartError> {
        let url = svc.database_url(&config.data_dir, name);
        if url.starts_with("sqlite:") {
            std::fs::create_dir_all(&config.data_dir).map_err(|e| StartError::Other {
                service: name,
                reason: format!("data_dir {}: {e}", config.data_dir.display()),
            })?;
        }
        let db = Db::connect(&url, svc.max_connections)
            .await
            .map_err(|cause| StartError::Db {
                service: name,
                cause,
            })?;
        db.migrate(migrations)
            .await
            .map_err(|cause| StartError::Db {
                service: name,
                cause,
            })?;
        let bus_url = config
            .bus
            .url
            .clone()
            .ok_or(StartError::NoBus { service: name })?;
        let bus = Bus::connect(&config.bus, &bus_url, name)
            .await
            .map_err(|cause| StartError::Bus {
                service: name,
                cause,
            })?;
        // Every service may record accesses to a person's data.
        for spec in publishes.iter().chain(std::iter::once(&streams::AUDIT)) {
            bus.ensure_stream(spec)
                .await
                .map_err(|cause| StartError::Bus {
                    service: name,
                    cause,
                })?;
        }
        crate::federation::setup(&bus, &config.federation, config.bus.replicas)
            .await
            .map_err(|cause| StartError::Bus {
                service: name,
                cause,
            })?;
        let relay = Relay::new(
            db.clone(),
            bus.clone(),
            config.bus.outbox_batch,
            Duration::from_millis(config.bus.outbox_poll_ms),
        );
        shutdown.spawn(relay.run(shutdown.clone()));
        shutdown.spawn(consumer::prune_inbox(db.clone(), shutdown.clone()));
        Ok(Self {
            name,
            config,
            db,
            bus,
            shutdown,
        })
    }

    /// Starts a durable consumer feeding `projection`; fails if it cannot be
    /// created, then runs until shutdown.
    pub fn spawn_consumer<P: Projection>(&self, sub: Subscription, projection: P) {
        let (bus, db, shutdown) = (self.bus.clone(), self.db.clone(), self.shutdown.clone());
        self.shutdown.spawn(async move {
            let durable = sub.durable.clone();
            if let Err(e) = consumer::run(bus, db, sub, projection, shutdown).await {
                tracing::error!(consumer = %durable, error = %e, "consumer stopped");
            }
        });
    }

    /// Verifies tokens with identity's published keys.
    pub fn verifier(&self) -> Result<Verifier, StartError> {
        Verifier::from_identity(
            &self.config.auth.issuer,
            &self.config.auth.audience,
            &self.config.identity.endpoint,
        )
        .map_err(|reason| StartError::Other {
            service: self.name,
            reason,
        })
    }

    /// The key-encryption key from `keys.kek` or `keys.kek_file`, else the
    /// data directory's generated one.
    pub fn kek(&self) -> Result<Kek, StartError> {
        load_kek(&self.config).map_err(|cause| StartError::Keys {
            service: self.name,
            cause,
        })
    }

    /// Serves gRPC on `listener` until shutdown.
    pub async fn serve(&self, server: GrpcServer, listener: TcpListener) -> Result<(), StartError> {
        server
            .serve(listener, self.shutdown.clone())
            .await
            .map_err(|cause| StartError::Grpc {
                service: self.name,
                cause,
            })
    }
}

/// Binds a service's configured address, naming it on failure.
pub async fn bind(service: &'static str, svc: &ServiceConfig) -> Result<TcpListener, StartError> {
    TcpListener::bind(svc.listen)
        .await
        .map_err(|e| StartError::Listen {
            service,
            addr: svc.listen.to_string(),
            reason: e.to_string(),
        })
}

/// The KEK the configuration names.
pub fn load_kek(config: &Config) -> Result<Kek, CryptoError> {
    if let Some(b64) = &config.keys.kek {
        return Kek::from_base64(b64);
    }
    match &config.keys.kek_file {
        Some(path) => Kek::from_file(path, false),
        None => Kek::from_file(&config.data_dir.join("kek.key"), true),
    }
}
