//! Projections of identity's events, through the platform's idempotent
//! consumers: erasure. Who follows whom (only a structure that follows a
//! person may refer them) and structures' kind and territory (to know
//! partners and territories) are the platform's (`eva_platform::follows`).

use eva_platform::consumer::{ApplyError, Envelope, Projection};
use eva_platform::db::Tx;
use eva_platform::follows::Follows;

/// Durable consumer of `eva.identity.person.erased`.
pub const ERASURE_CONSUMER: &str = "referrals-erasure";

/// Erasure: the person's referrals and everything hanging on them go. What
/// was sealed with the person's key is unreadable already (identity
/// shredded the key); this removes the rows too.
pub struct Erasure;

impl Projection for Erasure {
    async fn apply(&self, tx: &mut Tx, event: &Envelope) -> Result<(), ApplyError> {
        if event.event_type == "eva.identity.person.erased" {
            let e: eva_proto::identity::v1::PersonErased = event.decode()?;
            crate::referral::store::ReferralStore::erase_person(tx, &e.person_id).await?;
            Follows::erase_person(tx, &e.person_id).await?;
        }
        Ok(())
    }
}
