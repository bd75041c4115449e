//! How events reach the projections. Each source is a [`Feed`]: the live
//! durable consumer applies its events to every live generation (the
//! current one and, during a rebuild, the one being built); a rebuild reads
//! the same feeds from the start of their streams into the new generation.

use std::sync::Arc;

use async_trait::async_trait;
use eva_platform::bus::StreamSpec;
pub use eva_platform::consumer::micros;
use eva_platform::consumer::{ApplyError, Envelope, Projection, Subscription};
use eva_platform::db::Tx;
use eva_platform::federation::StatisticsFeed;

use crate::store::Store;

/// A source of statistics events.
#[async_trait]
pub trait Feed: Send + Sync + 'static {
    /// What it reads: an entry of the platform's table, which the hub's federation
    /// also copies from the boxes ([`eva_platform::federation::statistics`]).
    fn source(&self) -> StatisticsFeed;
    /// The stream it reads.
    fn stream(&self) -> StreamSpec {
        self.source().stream
    }
    /// Its durable consumer, `statistics-<purpose>`.
    fn durable(&self) -> String {
        format!("statistics-{}", self.source().purpose)
    }
    /// The subjects it reads.
    fn subjects(&self) -> &'static [&'static str] {
        self.source().subjects
    }
    /// Applies `events`, in stream order, to each generation of `gens`.
    /// Applying an event twice to a generation changes nothing (facts are
    /// keyed by their own ids), so a rebuild and the live consumer may both
    /// feed the generation being built.
    async fn apply(&self, tx: &mut Tx, gens: &[i64], events: &[Envelope])
    -> Result<(), ApplyError>;

    /// The durable consumer's subscription.
    fn subscription(&self) -> Subscription {
        Subscription::new(self.stream(), self.durable(), self.subjects())
    }
}

/// On the hub, a feed read a second time from the boxes' copy of its stream
/// (`EVA_FED_…`), under its own durable consumer. The boxes' facts are keyed by
/// their own ids (UUIDv7), so they add to the hub's without colliding.
pub struct Federated(pub Arc<dyn Feed>);

#[async_trait]
impl Feed for Federated {
    fn source(&self) -> StatisticsFeed {
        self.0.source()
    }

    /// The hub's copy of the boxes' stream, not the stream itself.
    fn stream(&self) -> StreamSpec {
        let source = self.0.source();
        source.federated
    }

    fn durable(&self) -> String {
        format!("{}-fed", self.0.durable())
    }

    async fn apply(
        &self,
        tx: &mut Tx,
        gens: &[i64],
        events: &[Envelope],
    ) -> Result<(), ApplyError> {
        self.0.apply(tx, gens, events).await
    }
}

/// A feed applied live, through the platform's idempotent consumer.
pub struct Live(pub Arc<dyn Feed>);

impl Projection for Live {
    async fn apply(&self, tx: &mut Tx, event: &Envelope) -> Result<(), ApplyError> {
        let gens = Store::live_gens(tx).await?;
        self.0.apply(tx, &gens, std::slice::from_ref(event)).await
    }

    async fn apply_batch(&self, tx: &mut Tx, events: &[Envelope]) -> Result<(), ApplyError> {
        if events.is_empty() {
            return Ok(());
        }
        let gens = Store::live_gens(tx).await?;
        self.0.apply(tx, &gens, events).await
    }
}

/// A proto enum's value as a lowercase code without its prefix
/// (`STRUCTURE_KIND_ACI` → `aci`); `None` for unspecified or unknown.
pub fn enum_code(name: Option<&str>, prefix: &str) -> Option<String> {
    name.map(|n| n.trim_start_matches(prefix).to_lowercase())
        .filter(|c| c != "unspecified")
}
