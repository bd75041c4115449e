//! Diagnostics, from `eva.diagnostics.*`: diagnostics shared, barrier
//! prevalence, rating gap and barrier resolution, by month, territory and
//! type of the recording structure.
//!
//! Each event is kept as a compact fact (so that a person's objection can
//! take it away later) and added to counters: diagnostics shared per month
//! and recording context, and per measure a vector of counters indexed by
//! référentiel entry. Queries read only the counters.

pub mod contributions;
mod ingest;
mod query;
mod wire;

pub use ingest::{DiagnosticsFeed, EXCLUSION_CHANGED, SHARED, SUPERSEDED};
pub use query::figures;

/// Tables holding a generation's rows (`diagnostic_dictionary` has none:
/// its codes are shared by every generation).
pub const TABLES: &[&str] = &[
    "diagnostic_facts",
    "diagnostic_counts",
    "diagnostic_item_counts",
];
