//! Projections fed by events through the platform's idempotent consumers.

use eva_platform::consumer::{ApplyError, Envelope, Projection};
use eva_platform::db::Tx;
use eva_proto::identity::v1::{StructureCreated, StructureKind, StructureUpdated};

use crate::store::{Store, StructureRow, departement_of};

/// Structures by type and territory, from `eva.identity.structure.*`.
pub struct Structures {
    store: Store,
}

impl Structures {
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

fn kind_code(kind: i32) -> Result<String, ApplyError> {
    StructureKind::try_from(kind)
        .ok()
        .filter(|k| *k != StructureKind::Unspecified)
        .map(|k| {
            k.as_str_name()
                .trim_start_matches("STRUCTURE_KIND_")
                .to_lowercase()
        })
        .ok_or_else(|| ApplyError::Permanent(format!("unknown structure kind {kind}")))
}

fn micros(t: Option<prost_types::Timestamp>, event: &Envelope) -> i64 {
    t.map(|t| t.seconds * 1_000_000 + i64::from(t.nanos) / 1_000)
        .unwrap_or_else(|| (event.time.unix_timestamp_nanos() / 1_000) as i64)
}

impl Projection for Structures {
    async fn apply(&self, tx: &mut Tx, event: &Envelope) -> Result<(), ApplyError> {
        let row = match event.event_type.as_str() {
            "eva.identity.structure.created" => {
                let e: StructureCreated = event.decode()?;
                let at = micros(e.created_at, event);
                StructureRow {
                    kind: kind_code(e.kind)?,
                    departement: departement_of(&e.commune_insee),
                    created_at_us: at,
                    changed_at_us: at,
                    structure_id: e.structure_id,
                    commune_insee: e.commune_insee,
                    epci: e.epci,
                }
            }
            // Until the creation is seen, the update's time stands in for
            // the registration date; the earliest wins.
            "eva.identity.structure.updated" => {
                let e: StructureUpdated = event.decode()?;
                let at = micros(e.updated_at, event);
                StructureRow {
                    kind: kind_code(e.kind)?,
                    departement: departement_of(&e.commune_insee),
                    created_at_us: at,
                    changed_at_us: at,
                    structure_id: e.structure_id,
                    commune_insee: e.commune_insee,
                    epci: e.epci,
                }
            }
            // Other structure events do not change these figures.
            _ => return Ok(()),
        };
        self.store.upsert_structure(tx, &row).await?;
        Ok(())
    }
}
