//! EVA's contracts: the gRPC services and the event messages of every EVA service,
//! generated from the `.proto` files under `proto/eva/` by `build.rs`.
//!
//! Layout: one protobuf package per service and version, one Rust module per package.
//!
//! | module | package | files |
//! |---|---|---|
//! | [`identity::v1`] | `eva.identity.v1` | `eva/identity/v1/identity.proto` (structures, accounts, people, accompaniments, consent, access log, keys, GDPR rights; the `PersonDataService` every service implements), `events.proto` (including the consent events published on `eva.consent.grant.*`) |
//! | [`diagnostics::v1`] | `eva.diagnostics.v1` | `diagnostics.proto` (référentiel, diagnostics, ratings, action plan), `events.proto` |
//! | [`referrals::v1`] | `eva.referrals.v1` | `referrals.proto` (directory of services, referrals, webhooks), `events.proto` (also republished to partners) |
//! | [`community::v1`] | `eva.community.v1` | `community.proto` (spaces, questions, answers, solutions, notifications, check-ins), `events.proto` |
//! | [`statistics::v1`] | `eva.statistics.v1` | `statistics.proto` (indicators, disclosure rule, exports), `events.proto` |
//! | [`audit::v1`] | `eva.audit.v1` | `audit.proto` (the access-log event every service publishes on `eva.audit.<service>.access`) |
//!
//! Each module holds the messages, the enumerations, and for each gRPC service a
//! `<service>_client` and a `<service>_server` module (tonic). Event messages are the
//! bodies of NATS messages; the subject of each is written in its documentation.
//!
//! [`FILE_DESCRIPTOR_SET`] holds the descriptors of every file, for gRPC reflection.

/// The encoded `google.protobuf.FileDescriptorSet` of every EVA `.proto` file (with
/// their imports), for `tonic-reflection`.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/eva_descriptor.bin"));

/// Identity and consent (`eva.identity.v1`).
pub mod identity {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("eva.identity.v1");
    }
}

/// The shared diagnostic on the référentiel commun (`eva.diagnostics.v1`).
pub mod diagnostics {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("eva.diagnostics.v1");
    }
}

/// Directory of services and referrals (`eva.referrals.v1`).
pub mod referrals {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("eva.referrals.v1");
    }
}

/// Counselors' community (`eva.community.v1`).
pub mod community {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("eva.community.v1");
    }
}

/// Anonymous statistics (`eva.statistics.v1`).
pub mod statistics {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("eva.statistics.v1");
    }
}

/// The access-log event (`eva.audit.v1`).
pub mod audit {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("eva.audit.v1");
    }
}
