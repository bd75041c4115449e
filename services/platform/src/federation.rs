//! Federation of association boxes through the département's hub, with JetStream
//! stream *sourcing* across domains (leaf nodes): no EVA code moves the events.
//!
//! - Each box's referrals service already writes every referral event concerning a
//!   partner structure to `EVA_PARTNERS` (`eva.partners.<structure_id>.referrals.…`).
//! - The hub's `EVA_FEDERATION` sources the `EVA_PARTNERS` of every box (through the
//!   box's JetStream API, `$JS.<box domain>.API`, across its leaf link).
//! - Each box's `EVA_FEDERATION_IN` sources the hub's `EVA_FEDERATION`, filtered on the
//!   box's own structures (`eva.partners.<id>.>`).
//!
//! - The hub's `EVA_FED_IDENTITY`, `EVA_FED_DIAGNOSTICS`, `EVA_FED_REFERRALS` and
//!   `EVA_FED_COMMUNITY` source, from every box, the subjects its statistics service
//!   reads ([`statistics`]), which the hub's statistics then reads a second time.
//!
//! A source is a consumer that JetStream itself drives and resumes from its last
//! sequence after a cut link, so events arrive in order, each once, even when a box
//! was cut off for days (its own streams keep them meanwhile: a box is autonomous).

pub mod statistics;

use std::time::Duration;

use async_nats::jetstream::stream::{self, External, Source, SubjectTransform};

use crate::bus::{Bus, BusError, streams};
use crate::config::{FederationConfig, FederationRole};

pub use statistics::{STATISTICS_FEEDS, StatisticsFeed};

/// On the hub: every box's partner events.
pub const HUB_STREAM: &str = "EVA_FEDERATION";
/// On a box: the hub's events for the box's own structures.
pub const BOX_STREAM: &str = "EVA_FEDERATION_IN";

/// The JetStream API prefix of `domain`, as seen across leaf nodes.
fn api(domain: &str) -> External {
    External {
        api_prefix: format!("$JS.{domain}.API"),
        delivery_prefix: None,
    }
}

/// Mirrors `subjects` unchanged: a source's filters (several in one source keep a
/// single ordered feed per box).
fn filters(subjects: impl IntoIterator<Item = String>) -> Vec<SubjectTransform> {
    subjects
        .into_iter()
        .map(|s| SubjectTransform {
            source: s.clone(),
            destination: s,
        })
        .collect()
}

/// A stream without subjects of its own: it only holds what it sources.
fn sourcing(
    name: &str,
    description: &str,
    sources: Vec<Source>,
    replicas: usize,
) -> stream::Config {
    stream::Config {
        name: name.into(),
        description: Some(description.into()),
        subjects: Vec::new(),
        sources: Some(sources),
        storage: stream::StorageType::File,
        num_replicas: replicas,
        retention: stream::RetentionPolicy::Limits,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    }
}

/// The streams this server holds in the federation: none when it is off.
pub fn stream_configs(cfg: &FederationConfig, replicas: usize) -> Vec<stream::Config> {
    match cfg.role {
        FederationRole::Off => Vec::new(),
        FederationRole::Hub => {
            let partners = cfg
                .boxes
                .iter()
                .map(|domain| Source {
                    name: streams::PARTNERS.name.into(),
                    external: Some(api(domain)),
                    ..Default::default()
                })
                .collect();
            let mut configs = vec![sourcing(
                HUB_STREAM,
                "referral events of every association box, sourced from their EVA_PARTNERS",
                partners,
                replicas,
            )];
            for (copy, of, subjects) in statistics::copies() {
                let sources = cfg
                    .boxes
                    .iter()
                    .map(|domain| Source {
                        name: of.name.into(),
                        external: Some(api(domain)),
                        subject_transforms: filters(subjects.iter().map(|s| s.to_string())),
                        ..Default::default()
                    })
                    .collect();
                configs.push(sourcing(copy.name, copy.description, sources, replicas));
            }
            configs
        }
        FederationRole::Box => vec![sourcing(
            BOX_STREAM,
            "referral events from other boxes for this box's structures, sourced from the hub",
            vec![Source {
                name: HUB_STREAM.into(),
                external: Some(api(&cfg.hub_domain)),
                subject_transforms: filters(
                    cfg.structures
                        .iter()
                        .map(|id| format!("eva.partners.{id}.>")),
                ),
                ..Default::default()
            }],
            replicas,
        )],
    }
}

/// Creates this server's federation streams, or updates their sources (a box added to
/// the hub, a structure to a box). Nothing when federation is off. Idempotent: every
/// service of the process may call it at start.
pub async fn setup(bus: &Bus, cfg: &FederationConfig, replicas: usize) -> Result<(), BusError> {
    for config in stream_configs(cfg, replicas) {
        let name = config.name.clone();
        bus.jetstream()
            .create_or_update_stream(config)
            .await
            .map_err(|e| BusError::Stream {
                stream: name.clone(),
                reason: format!("federation: {e}"),
            })?;
        tracing::info!(stream = %name, role = ?cfg.role, "federation stream ready");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_sources_each_box_and_a_box_its_structures() {
        let hub = FederationConfig {
            role: FederationRole::Hub,
            domain: "hub".into(),
            boxes: vec!["box-a".into(), "box-b".into()],
            ..Default::default()
        };
        let configs = stream_configs(&hub, 3);
        let names: Vec<&str> = configs.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                HUB_STREAM,
                "EVA_FED_IDENTITY",
                "EVA_FED_DIAGNOSTICS",
                "EVA_FED_REFERRALS",
                "EVA_FED_COMMUNITY"
            ]
        );
        for c in &configs {
            let sources = c.sources.clone().unwrap_or_default();
            let apis: Vec<String> = sources
                .iter()
                .map(|s| s.external.clone().map(|e| e.api_prefix).unwrap_or_default())
                .collect();
            assert_eq!(apis, ["$JS.box-a.API", "$JS.box-b.API"], "{}", c.name);
            assert!(c.subjects.is_empty(), "{} has subjects", c.name);
            assert_eq!(c.num_replicas, 3);
        }
        // The identity copy takes, from each box, exactly what the structures and
        // people feeds read.
        let identity = configs[1].sources.clone().unwrap_or_default();
        let filters: Vec<&str> = identity[0]
            .subject_transforms
            .iter()
            .map(|t| t.source.as_str())
            .collect();
        assert_eq!(identity[0].name, "EVA_IDENTITY");
        assert_eq!(
            filters,
            [
                "eva.identity.structure.>",
                "eva.identity.accompaniment.>",
                "eva.identity.person.>"
            ]
        );

        let id = "0192f0c1-8d2e-7c3a-9b1f-2a3b4c5d6e7f";
        let b = FederationConfig {
            role: FederationRole::Box,
            domain: "box-b".into(),
            structures: vec![id.into()],
            ..Default::default()
        };
        let c = &stream_configs(&b, 1)[0];
        let source = &c.sources.clone().unwrap_or_default()[0];
        assert_eq!(source.name, HUB_STREAM);
        assert_eq!(
            source.subject_transforms[0].source,
            format!("eva.partners.{id}.>")
        );
        assert!(stream_configs(&FederationConfig::default(), 1).is_empty());
    }

    #[test]
    fn bad_federation_settings_are_refused_naming_the_key() {
        let check = |f: FederationConfig| {
            let config = crate::Config {
                federation: f,
                ..Default::default()
            };
            config.validate().map_err(|e| e.to_string())
        };
        let hub = |boxes: &[&str]| FederationConfig {
            role: FederationRole::Hub,
            domain: "hub".into(),
            boxes: boxes.iter().map(|b| (*b).to_owned()).collect(),
            ..Default::default()
        };
        assert!(check(hub(&["box-a"])).is_ok());
        for (boxes, key) in [
            (&[][..], "federation.boxes"),
            (&["box.a"][..], "federation.boxes"),
            (&["box-a", "box-a"][..], "federation.boxes"),
            (&["hub"][..], "federation.boxes"),
        ] {
            let error = check(hub(boxes)).expect_err("refused");
            assert!(error.contains(key), "{boxes:?}: {error}");
        }
        let a_box = |domain: &str, structures: &[&str]| FederationConfig {
            role: FederationRole::Box,
            domain: domain.into(),
            structures: structures.iter().map(|s| (*s).to_owned()).collect(),
            ..Default::default()
        };
        let id = "0192f0c1-8d2e-7c3a-9b1f-2a3b4c5d6e7f";
        assert!(check(a_box("box-b", &[id])).is_ok());
        for (f, key) in [
            (a_box("", &[id]), "federation.domain"),
            (a_box("hub", &[id]), "federation.domain"),
            (a_box("box b", &[id]), "federation.domain"),
            (a_box("box-b", &[]), "federation.structures"),
            (a_box("box-b", &["not-a-uuid"]), "federation.structures"),
        ] {
            let error = check(f.clone()).expect_err("refused");
            assert!(error.contains(key), "{f:?}: {error}");
        }
    }
}
