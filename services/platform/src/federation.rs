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
//! A source is a consumer that JetStream itself drives and resumes from its last
//! sequence after a cut link, so events arrive in order, each once, even when a box
//! was cut off for days (its own streams keep them meanwhile: a box is autonomous).

use std::time::Duration;

use async_nats::jetstream::stream::{self, External, Source, SubjectTransform};

use crate::bus::{Bus, BusError, streams};
use crate::config::{FederationConfig, FederationRole};

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

/// The stream this server holds in the federation, if any.
pub fn stream_config(cfg: &FederationConfig, replicas: usize) -> Option<stream::Config> {
    let (name, description, sources) = match cfg.role {
        FederationRole::Off => return None,
        FederationRole::Hub => (
            HUB_STREAM,
            "referral events of every association box, sourced from their EVA_PARTNERS",
            cfg.boxes
                .iter()
                .map(|domain| Source {
                    name: streams::PARTNERS.name.into(),
                    external: Some(api(domain)),
                    ..Default::default()
                })
                .collect(),
        ),
        FederationRole::Box => (
            BOX_STREAM,
            "referral events from other boxes for this box's structures, sourced from the hub",
            vec![Source {
                name: HUB_STREAM.into(),
                external: Some(api(&cfg.hub_domain)),
                // One source with one filter per structure: a single ordered feed.
                subject_transforms: cfg
                    .structures
                    .iter()
                    .map(|id| SubjectTransform {
                        source: format!("eva.partners.{id}.>"),
                        destination: format!("eva.partners.{id}.>"),
                    })
                    .collect(),
                ..Default::default()
            }],
        ),
    };
    Some(stream::Config {
        name: name.into(),
        description: Some(description.into()),
        // No subjects of its own: it only holds what it sources.
        subjects: Vec::new(),
        sources: Some(sources),
        storage: stream::StorageType::File,
        num_replicas: replicas,
        retention: stream::RetentionPolicy::Limits,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    })
}

/// Creates this server's federation stream, or updates its sources (a box added to
/// the hub, a structure to a box). Nothing when federation is off. Idempotent: every
/// service of the process may call it at start.
pub async fn setup(bus: &Bus, cfg: &FederationConfig, replicas: usize) -> Result<(), BusError> {
    let Some(config) = stream_config(cfg, replicas) else {
        return Ok(());
    };
    let name = config.name.clone();
    bus.jetstream()
        .create_or_update_stream(config)
        .await
        .map_err(|e| BusError::Stream {
            stream: name.clone(),
            reason: format!("federation: {e}"),
        })?;
    tracing::info!(stream = %name, role = ?cfg.role, "federation stream ready");
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
        let c = stream_config(&hub, 3).expect("hub stream");
        let apis: Vec<String> = c
            .sources
            .unwrap_or_default()
            .into_iter()
            .map(|s| s.external.map(|e| e.api_prefix).unwrap_or_default())
            .collect();
        assert_eq!(apis, ["$JS.box-a.API", "$JS.box-b.API"]);
        assert_eq!(c.num_replicas, 3);

        let id = "0192f0c1-8d2e-7c3a-9b1f-2a3b4c5d6e7f";
        let b = FederationConfig {
            role: FederationRole::Box,
            domain: "box-b".into(),
            structures: vec![id.into()],
            ..Default::default()
        };
        let c = stream_config(&b, 1).expect("box stream");
        let source = &c.sources.unwrap_or_default()[0];
        assert_eq!(source.name, HUB_STREAM);
        assert_eq!(
            source.subject_transforms[0].source,
            format!("eva.partners.{id}.>")
        );
        assert!(stream_config(&FederationConfig::default(), 1).is_none());
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
