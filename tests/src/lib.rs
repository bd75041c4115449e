//! Test harness for EVA's end-to-end and fault tests: it runs the real system, never mocks.
//!
//! A real `nats-server` with JetStream ([`nats::NatsServer`]) and a real PostgreSQL cluster
//! ([`postgres::PgCluster`]), each in a temporary directory on a free loopback port, and torn
//! down when dropped. `scripts/ensure-tools.sh` installs the binaries they need.

pub mod api;
pub mod cluster;
pub mod counting;
pub mod events;
pub mod nats;
pub mod partners;
pub mod ports;
pub mod postgres;
pub mod processes;
pub mod sandbox;
pub mod sse;
