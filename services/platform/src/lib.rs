//! EVA's shared platform: the one place for the mechanisms every service uses.
//!
//! A service is a library with `run(config, shutdown)`; it gets from here its
//! configuration ([`config`]), the consent check ([`consent`]), telemetry ([`telemetry`]), database and
//! migrations ([`db`]), bus connection and streams ([`bus`]), transactional
//! outbox ([`outbox`]), idempotent consumers ([`consumer`]), access-log events
//! ([`audit`]), gRPC server bootstrap with health and reflection ([`grpc`]),
//! JWT authentication ([`auth`]), personal-data encryption ([`crypto`]),
//! backup and restore of a box ([`backup`]) and graceful shutdown
//! ([`shutdown`]). Services never re-implement these.

pub mod audit;
pub mod auth;
pub mod backup;
pub mod bus;
pub mod clock;
pub mod config;
pub mod consent;
pub mod consumer;
pub mod crypto;
pub mod db;
pub mod federation;
pub mod follows;
pub mod grpc;
pub mod nats_auth;
pub mod outbox;
pub mod pagination;
pub mod sealing;
pub mod service;
pub mod shutdown;
pub mod telemetry;

pub use clock::Clock;
pub use config::Config;
pub use db::{Db, Tx};
pub use shutdown::Shutdown;
