//! Projections of identity's events, through the platform's idempotent
//! consumers: who follows whom, the recording structures' type and
//! territory, and erasure.

use eva_platform::consumer::{ApplyError, Envelope, Projection};
use eva_platform::db::Tx;
use eva_proto::identity::v1::{
    AccompanimentEnded, AccompanimentStarted, PersonErased, StatisticsObjectionChanged,
    StructureCreated, StructureUpdated,
};

use crate::store::{Store, StructureRow};

/// Durable consumer of `eva.identity.accompaniment.*`.
pub const ACCOMPANIMENTS_CONSUMER: &str = "diagnostics-accompaniments";
/// Durable consumer of `eva.identity.structure.*`.
pub const STRUCTURES_CONSUMER: &str = "diagnostics-structures";
/// Durable consumer of `eva.identity.person.statistics_objection_changed`.
pub const OBJECTIONS_CONSUMER: &str = "diagnostics-statistics-objections";
/// Durable consumer of `eva.identity.person.erased`.
pub const ERASURE_CONSUMER: &str = "diagnostics-erasure";

fn micros(t: Option<prost_types::Timestamp>, event: &Envelope) -> i64 {
    t.map(|t| t.seconds * 1_000_000 + i64::from(t.nanos) / 1_000)
        .unwrap_or_else(|| (event.time.unix_timestamp_nanos() / 1_000) as i64)
}

/// Which structure follows which person.
pub struct Accompaniments;

impl Projection for Accompaniments {
    async fn apply(&self, tx: &mut Tx, event: &Envelope) -> Result<(), ApplyError> {
        match event.event_type.as_str() {
            "eva.identity.accompaniment.started" => {
                let e: AccompanimentStarted = event.decode()?;
                Store::upsert_accompaniment(
                    tx,
                    &e.accompaniment_id,
                    &e.person_id,
                    &e.structure_id,
                    &e.start_date,
                    "",
                    micros(e.occurred_at, event),
                )
                .await?;
            }
            "eva.identity.accompaniment.ended" => {
                let e: AccompanimentEnded = event.decode()?;
                let end = if e.end_date.is_empty() {
                    eva_platform::consent::today()
                } else {
                    e.end_date
                };
                Store::upsert_accompaniment(
                    tx,
                    &e.accompaniment_id,
                    &e.person_id,
                    &e.structure_id,
                    "",
                    &end,
                    micros(e.occurred_at, event),
                )
                .await?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// The département of a commune: its INSEE code's first 2 characters (3
/// overseas).
pub fn departement_of(commune_insee: &str) -> String {
    let n = if commune_insee.starts_with("97") || commune_insee.starts_with("98") {
        3
    } else {
        2
    };
    commune_insee.chars().take(n).collect()
}

/// Structures' type and territory, for the statistics events.
pub struct Structures;

impl Projection for Structures {
    async fn apply(&self, tx: &mut Tx, event: &Envelope) -> Result<(), ApplyError> {
        let (id, row, at) = match event.event_type.as_str() {
            "eva.identity.structure.created" => {
                let e: StructureCreated = event.decode()?;
                let at = micros(e.created_at, event);
                let row = StructureRow {
                    kind: e.kind,
                    departement: departement_of(&e.commune_insee),
                    commune_insee: e.commune_insee,
                    epci: e.epci,
                };
                (e.structure_id, row, at)
            }
            "eva.identity.structure.updated" => {
                let e: StructureUpdated = event.decode()?;
                let at = micros(e.updated_at, event);
                let row = StructureRow {
                    kind: e.kind,
                    departement: departement_of(&e.commune_insee),
                    commune_insee: e.commune_insee,
                    epci: e.epci,
                };
                (e.structure_id, row, at)
            }
            _ => return Ok(()),
        };
        Store::upsert_structure(tx, &id, &row, at).await?;
        Ok(())
    }
}

/// Objections to statistics: while a person objects, their diagnostics
/// publish no statistics event.
pub struct Objections;

impl Projection for Objections {
    async fn apply(&self, tx: &mut Tx, event: &Envelope) -> Result<(), ApplyError> {
        if event.event_type == "eva.identity.person.statistics_objection_changed" {
            let e: StatisticsObjectionChanged = event.decode()?;
            let at = micros(e.changed_at, event);
            Store::set_objection(tx, &e.person_id, e.objected, at).await?;
        }
        Ok(())
    }
}

/// A person erased in identity: their diagnostics, ratings and sealed notes
/// go (the notes were unreadable already: their key is destroyed); once the
/// deletion has committed, the freed pages are scrubbed.
pub struct Erasure {
    pub store: Store,
}

impl Projection for Erasure {
    async fn apply(&self, tx: &mut Tx, event: &Envelope) -> Result<(), ApplyError> {
        if event.event_type == "eva.identity.person.erased" {
            let e: PersonErased = event.decode()?;
            Store::erase_person(tx, &e.person_id).await?;
            // The projection may not commit: wait for the consumer's commit
            // to be visible, then scrub.
            let store = self.store.clone();
            tokio::spawn(async move {
                for _ in 0..100 {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    if let Ok(false) = store.has_diagnostics(&e.person_id).await {
                        if let Err(err) = store.scrub().await {
                            tracing::warn!(error = %err, "erased pages not scrubbed yet");
                        }
                        return;
                    }
                }
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::departement_of;

    #[test]
    fn departements_of_communes() {
        assert_eq!(departement_of("27229"), "27");
        assert_eq!(departement_of("97411"), "974");
        assert_eq!(departement_of("2A004"), "2A");
    }
}
