//! Delivery of the events addressed to partners. (Being built.)

use eva_platform::db::{DbError, Tx};

/// Queues one delivery of an event addressed to `partner_structure_id` to
/// each of its webhooks, in the transaction that wrote the event.
pub async fn enqueue_deliveries(
    _tx: &mut Tx,
    _partner_structure_id: &str,
    _event_id: &str,
    _event_type: &str,
    _proto_payload: &[u8],
    _occurred_at_us: i64,
) -> Result<(), DbError> {
    Ok(())
}
