//! Projections of identity's events, through the platform's idempotent
//! consumers: structures (to know partners and territories) and who follows
//! whom (only a structure that follows a person may refer them).

use eva_platform::consumer::{ApplyError, Envelope, Projection};
use eva_platform::db::Tx;
use eva_proto::identity::v1::{
    AccompanimentEnded, AccompanimentStarted, StructureCreated, StructureUpdated,
};

use crate::store::{Store, StructureRow};

/// Durable consumer of `eva.identity.accompaniment.*`.
pub const ACCOMPANIMENTS_CONSUMER: &str = "referrals-accompaniments";
/// Durable consumer of `eva.identity.structure.*`.
pub const STRUCTURES_CONSUMER: &str = "referrals-structures";
/// Durable consumer of `eva.identity.person.erased`.
pub const ERASURE_CONSUMER: &str = "referrals-erasure";

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

/// Structures' kind and territory.
pub struct Structures;

impl Projection for Structures {
    async fn apply(&self, tx: &mut Tx, event: &Envelope) -> Result<(), ApplyError> {
        let (row, at) = match event.event_type.as_str() {
            "eva.identity.structure.created" => {
                let e: StructureCreated = event.decode()?;
                let at = micros(e.created_at, event);
                (row(e.structure_id, e.kind, e.commune_insee, e.epci), at)
            }
            "eva.identity.structure.updated" => {
                let e: StructureUpdated = event.decode()?;
                let at = micros(e.updated_at, event);
                (row(e.structure_id, e.kind, e.commune_insee, e.epci), at)
            }
            _ => return Ok(()),
        };
        Store::upsert_structure(tx, &row, at).await?;
        Ok(())
    }
}

fn row(structure_id: String, kind: i32, commune_insee: String, epci: String) -> StructureRow {
    StructureRow {
        structure_id,
        kind,
        departement: departement_of(&commune_insee),
        commune_insee,
        epci,
    }
}
