//! The system tests, in one binary: each module starts real servers (nats-server, SQLite,
//! PostgreSQL, the services, the gateway). One binary links once, where thirty took
//! minutes and gigabytes.

mod access_log;
mod access_log_summary;
mod accompaniments;
mod accounts;
mod action_plan;
mod asyncapi;
mod backup;
mod cluster;
mod community;
mod community_live;
mod community_members;
mod community_search;
mod community_story;
mod consent;
mod consents;
mod deploy_manifests;
mod diagnostics;
mod directory;
mod federation;
mod follows;
mod gateway_limits;
mod grpc;
mod harness;
mod idempotency;
mod openapi;
mod outbox;
mod partner_nats;
mod people;
mod projections;
mod referentiel;
mod referral_accepted;
mod referrals;
mod referrals_partner_nats;
mod rights;
mod sealing;
mod service_versions;
mod skeleton;
mod statistics;
mod statistics_api;
mod structures;
mod web;
mod webhooks;
