//! Projections of identity's events, through the platform's idempotent
//! consumers: objections to statistics, and erasure. Who follows whom and
//! the recording structures' type and territory are the platform's
//! (`eva_platform::follows`).

use eva_platform::consumer::{ApplyError, Envelope, Projection, micros};
use eva_platform::db::{Tx, to_timestamp};
use eva_platform::follows::Follows;
use eva_platform::outbox::{self, Event};
use eva_proto::diagnostics::v1::StatisticsExclusionChanged;
use eva_proto::identity::v1::{PersonErased, StatisticsObjectionChanged};

use crate::SERVICE;
use crate::store::Store;

/// Durable consumer of `eva.identity.person.statistics_objection_changed`.
pub const OBJECTIONS_CONSUMER: &str = "diagnostics-statistics-objections";
/// Durable consumer of `eva.identity.person.erased`.
pub const ERASURE_CONSUMER: &str = "diagnostics-erasure";

/// Subject of the exclusion event statistics reads.
pub const EXCLUSION_CHANGED: &str = "eva.diagnostics.pseudonym.exclusion_changed";

/// Objections to statistics: while a person objects, their diagnostics
/// publish no statistics event; and statistics is told to drop (or count
/// again) what was already published under the person's pseudonym.
pub struct Objections;

impl Projection for Objections {
    async fn apply(&self, tx: &mut Tx, event: &Envelope) -> Result<(), ApplyError> {
        if event.event_type == "eva.identity.person.statistics_objection_changed" {
            let e: StatisticsObjectionChanged = event.decode()?;
            let at = micros(e.changed_at, event);
            Store::set_objection(tx, &e.person_id, e.objected, at).await?;
            // Only a person with shared diagnostics has a pseudonym. The
            // choice's own time travels: statistics keeps the latest, in
            // whatever order choices arrive.
            if let Some(pseudonym) = Store::existing_pseudonym_in(tx, &e.person_id).await? {
                let changed = StatisticsExclusionChanged {
                    statistics_pseudonym: pseudonym,
                    excluded: e.objected,
                    changed_at: Some(e.changed_at.unwrap_or_else(|| to_timestamp(at))),
                };
                // No person id travels: ce-subject stays empty.
                outbox::enqueue(tx, &Event::new(SERVICE, EXCLUSION_CHANGED, None, &changed))
                    .await?;
            }
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

#[cfg(test)]
mod tests {
    use eva_platform::db::Db;
    use eva_platform::on_backend;
    use prost::Message;

    use super::*;
    use crate::store::MIGRATIONS;

    type R<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

    fn objection(person_id: &str, objected: bool, seconds: i64) -> Envelope {
        let e = StatisticsObjectionChanged {
            person_id: person_id.into(),
            objected,
            changed_at: Some(prost_types::Timestamp { seconds, nanos: 0 }),
        };
        Envelope {
            id: uuid::Uuid::now_v7(),
            nats_subject: "eva.identity.person.statistics_objection_changed".into(),
            event_type: "eva.identity.person.statistics_objection_changed".into(),
            source: "/eva/identity".into(),
            aggregate_id: Some(person_id.into()),
            time: time::OffsetDateTime::now_utc(),
            payload: e.encode_to_vec().into(),
            stream_sequence: 1,
            delivered: 1,
        }
    }

    /// (subject, ce-subject, payload) of every outbox row.
    async fn outbox(db: &Db) -> R<Vec<(String, Option<String>, Vec<u8>)>> {
        let mut h = db.acquire().await?;
        Ok(on_backend!(h.conn(), c => sqlx::query_as(
            "SELECT subject, ce_subject, payload FROM eva_outbox ORDER BY seq",
        )
        .fetch_all(&mut *c)
        .await)?)
    }

    #[tokio::test]
    async fn an_objection_tells_statistics_to_exclude_the_pseudonym() -> R<()> {
        let db = Db::connect("sqlite::memory:", 1).await?;
        db.migrate(&MIGRATIONS).await?;
        let (shared, never) = (
            "0190a000-0000-7000-8000-000000000001",
            "0190a000-0000-7000-8000-000000000002",
        );
        let mut tx = db.begin().await?;
        let pseudonym = Store::pseudonym_in(&mut tx, shared).await?;
        tx.commit().await?;

        for (person, objected, at) in [
            (shared, true, 100),
            (never, true, 100),
            (shared, false, 200),
        ] {
            let mut tx = db.begin().await?;
            Objections
                .apply(&mut tx, &objection(person, objected, at))
                .await?;
            tx.commit().await?;
        }
        let rows = outbox(&db).await?;
        // Nothing for the person who never shared a diagnostic, and no
        // pseudonym created for them.
        assert_eq!(rows.len(), 2);
        let mut tx = db.begin().await?;
        assert_eq!(Store::existing_pseudonym_in(&mut tx, never).await?, None);
        drop(tx);
        for ((subject, ce_subject, payload), (excluded, at)) in
            rows.iter().zip([(true, 100), (false, 200)])
        {
            assert_eq!(subject, EXCLUSION_CHANGED);
            assert_eq!(ce_subject, &None);
            let e = StatisticsExclusionChanged::decode(payload.as_slice())?;
            assert_eq!(e.statistics_pseudonym, pseudonym);
            assert_eq!(e.excluded, excluded);
            assert_eq!(e.changed_at.map(|t| t.seconds), Some(at));
        }
        Ok(())
    }
}
