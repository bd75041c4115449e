//! Publishing a referral event: the event on `eva.referrals.…` through the
//! outbox and, when the target is a partner, the same event on the partner's
//! own subject (in the body format it chose) and to its webhooks — all in
//! the transaction that made the change, so none is lost or half-sent.

use eva_platform::db::{DbError, Tx};
use eva_platform::follows::Follows;
use eva_platform::outbox::{self, Event};
use eva_proto::referrals::v1::EventFormat;

use crate::{SERVICE, events_json, partners};

/// `eva.identity.v1.StructureKind::Partner`.
const PARTNER_KIND: i32 = 8;

/// Writes `message` as the event `event_type` (`eva.referrals.referral.sent`,
/// `eva.referrals.message.posted`…) about `referral_id`, and fans it out to
/// `target_structure_id` if it is a partner.
pub async fn publish(
    tx: &mut Tx,
    event_type: &str,
    referral_id: &str,
    target_structure_id: &str,
    message: &impl prost::Message,
    at_us: i64,
) -> Result<(), DbError> {
    let event = Event::new(SERVICE, event_type, Some(referral_id.to_owned()), message);
    outbox::enqueue(tx, &event).await?;
    let is_partner = Follows::structure_in(tx, target_structure_id)
        .await?
        .is_some_and(|s| s.kind == PARTNER_KIND);
    if !is_partner {
        return Ok(());
    }
    let name = partner_event_name(event_type);
    let format = partners::event_format(tx, target_structure_id).await?;
    let mut partner_event = Event::new(
        SERVICE,
        format!("eva.partners.{target_structure_id}.referrals.{name}"),
        Some(referral_id.to_owned()),
        message,
    );
    partner_event.event_type = event_type.to_owned();
    if format == EventFormat::Json {
        match events_json::to_json(event_type, &event.payload) {
            Ok(json) => {
                partner_event.payload = json;
                partner_event.content_type = Some("application/json".into());
            }
            // Our own message always maps; if it did not, protobuf still
            // reaches the partner rather than nothing.
            Err(e) => tracing::error!(event_type, error = %e, "partner event not mapped to JSON"),
        }
    }
    outbox::enqueue(tx, &partner_event).await?;
    partners::enqueue_deliveries(
        tx,
        target_structure_id,
        &event.id.to_string(),
        event_type,
        &event.payload,
        at_us,
    )
    .await
}

/// `eva.referrals.referral.sent` → `sent`; `eva.referrals.message.posted`
/// → `message_posted`.
pub fn partner_event_name(event_type: &str) -> String {
    match event_type.strip_prefix("eva.referrals.referral.") {
        Some(name) => name.to_owned(),
        None => event_type
            .strip_prefix("eva.referrals.")
            .unwrap_or(event_type)
            .replace('.', "_"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn partner_names() {
        assert_eq!(
            super::partner_event_name("eva.referrals.referral.accepted"),
            "accepted"
        );
        assert_eq!(
            super::partner_event_name("eva.referrals.message.posted"),
            "message_posted"
        );
    }
}
