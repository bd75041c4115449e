//! Projections of identity's events, through the platform's idempotent
//! consumers: objections to statistics, and erasure. Who follows whom and
//! the recording structures' type and territory are the platform's
//! (`eva_platform::follows`).

use eva_platform::consumer::{ApplyError, Envelope, Projection};
use eva_platform::db::Tx;
use eva_platform::follows::Follows;
use eva_proto::identity::v1::{PersonErased, StatisticsObjectionChanged};

use crate::store::Store;

/// Durable consumer of `eva.identity.person.statistics_objection_changed`.
pub const OBJECTIONS_CONSUMER: &str = "diagnostics-statistics-objections";
/// Durable consumer of `eva.identity.person.erased`.
pub const ERASURE_CONSUMER: &str = "diagnostics-erasure";

fn micros(t: Option<prost_types::Timestamp>, event: &Envelope) -> i64 {
    t.map(|t| t.seconds * 1_000_000 + i64::from(t.nanos) / 1_000)
        .unwrap_or_else(|| (event.time.unix_timestamp_nanos() / 1_000) as i64)
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
            Follows::erase_person(tx, &e.person_id).await?;
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
