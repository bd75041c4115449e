//! A structure starts following a person by accepting a referral addressed
//! to it: this consumer of `eva.referrals.referral.accepted` starts the
//! accompaniment, through the same store code as the API
//! ([`PeopleStore::start_accompaniment`]), so the row and its
//! `eva.identity.accompaniment.started` event commit with the inbox row.
//!
//! - The accompaniment starts on the Paris day the referral was accepted,
//!   with no referent counselor yet, and records the referral it comes from.
//! - Nothing happens when the structure already follows the person, or when
//!   an accompaniment already came from this referral (a redelivery, or the
//!   same acceptance published again under another event id).
//! - A person unknown here or erased is skipped: an acceptance published
//!   before an erasure may be delivered after it.
//! - Only a structure that accompanies people starts following one: a
//!   partner (or the département) accepting a referral sees the referral
//!   and what travels with it, never the person's file.
//! - The person's access log shows the structure's write of the
//!   accompaniment, as a system action (no user: the acceptance itself is in
//!   the log through the referrals service).

use eva_platform::audit::{self, Access};
use eva_platform::auth::{Principal, Role};
use eva_platform::consent::{DATE_FORMAT, paris_date};
use eva_platform::consumer::{ApplyError, Envelope, Projection};
use eva_platform::db::{Conn, DbError, Tx, now_us};
use eva_platform::on_backend;
use eva_proto::audit::v1::AccessAction;
use eva_proto::referrals::v1::ReferralStatusChanged;
use time::OffsetDateTime;
use uuid::Uuid;

use super::store::AccompanimentStore;
use crate::SERVICE;
use crate::access_log::is_erased;
use crate::people::api::PURPOSE;
use crate::people::store::{AccompanimentRow, PeopleStore};

/// Durable consumer of accepted referrals.
pub const CONSUMER: &str = "identity-referral-accompaniments";
/// The event it applies.
pub const ACCEPTED: &str = "eva.referrals.referral.accepted";

/// Starts an accompaniment when a referral is accepted.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReferralAcceptances;

impl Projection for ReferralAcceptances {
    async fn apply(&self, tx: &mut Tx, event: &Envelope) -> Result<(), ApplyError> {
        if event.event_type != ACCEPTED {
            return Ok(());
        }
        let e: ReferralStatusChanged = event.decode()?;
        for (field, id) in [
            ("referral_id", &e.referral_id),
            ("person_id", &e.person_id),
            ("target_structure_id", &e.target_structure_id),
        ] {
            if Uuid::parse_str(id).is_err() {
                return Err(ApplyError::Permanent(format!(
                    "{ACCEPTED}: {field} is not a valid id"
                )));
            }
        }
        let accepted_at = match e.occurred_at {
            Some(t) => {
                OffsetDateTime::from_unix_timestamp(t.seconds).map_err(|_| {
                    ApplyError::Permanent(format!("{ACCEPTED}: occurred_at out of range"))
                })? + time::Duration::nanoseconds(i64::from(t.nanos))
            }
            None => event.time,
        };
        start(tx, &e, accepted_at).await
    }
}

async fn start(
    tx: &mut Tx,
    e: &ReferralStatusChanged,
    accepted_at: OffsetDateTime,
) -> Result<(), ApplyError> {
    let people = PeopleStore;
    let (referral_id, structure_id) = (e.referral_id.as_str(), e.target_structure_id.as_str());
    if !people.exists(tx.conn(), &e.person_id).await? {
        let why = if is_erased(tx.conn(), &e.person_id).await? {
            "person erased"
        } else {
            "person unknown"
        };
        tracing::info!(
            referral_id,
            structure_id,
            reason = why,
            "referral accepted; no accompaniment started"
        );
        return Ok(());
    }
    match structure_kind(tx.conn(), structure_id).await? {
        Some(kind) if crate::accounts::roles_for_kind(&kind).contains(&Role::Counselor) => {}
        Some(_) => {
            tracing::info!(
                referral_id,
                structure_id,
                reason = "structure does not accompany people",
                "referral accepted; no accompaniment started"
            );
            return Ok(());
        }
        None => {
            tracing::info!(
                referral_id,
                structure_id,
                reason = "structure unknown",
                "referral accepted; no accompaniment started"
            );
            return Ok(());
        }
    }
    if AccompanimentStore
        .is_open(tx.conn(), &e.person_id, structure_id)
        .await?
        || started_by(tx.conn(), &e.person_id, referral_id).await?
    {
        tracing::debug!(
            referral_id,
            structure_id,
            "referral accepted: accompaniment already there"
        );
        return Ok(());
    }
    let started_on = paris_date(accepted_at)
        .format(DATE_FORMAT)
        .map_err(|err| ApplyError::Permanent(format!("{ACCEPTED}: start date: {err}")))?;
    let accompaniment = AccompanimentRow {
        accompaniment_id: Uuid::now_v7().to_string(),
        person_id: e.person_id.clone(),
        structure_id: structure_id.to_owned(),
        referent_user_id: String::new(),
        started_on,
        ended_on: None,
        end_reason: None,
        referral_id: referral_id.to_owned(),
        created_at_us: now_us(),
    };
    people.start_accompaniment(tx, &accompaniment).await?;
    // No user acted here: the structure's system action.
    let actor = Principal {
        user_id: String::new(),
        roles: Vec::new(),
        structures: vec![structure_id.to_owned()],
        person_id: None,
        token_id: String::new(),
    };
    audit::record(
        tx,
        SERVICE,
        Access {
            person_id: &e.person_id,
            actor: &actor,
            structure_id: Some(structure_id),
            action: AccessAction::Write,
            resource_type: "accompaniment",
            resource_id: &accompaniment.accompaniment_id,
            domains: Vec::new(),
            purpose: PURPOSE,
        },
    )
    .await?;
    tracing::info!(
        referral_id,
        structure_id,
        accompaniment_id = %accompaniment.accompaniment_id,
        "referral accepted: accompaniment started"
    );
    Ok(())
}

/// The kind of a structure (`association`, `partner`…); `None` when unknown.
async fn structure_kind(conn: Conn<'_>, structure_id: &str) -> Result<Option<String>, DbError> {
    let row: Option<(String,)> = on_backend!(conn, c => sqlx::query_as(
        "SELECT kind FROM structures WHERE structure_id = $1",
    )
    .bind(structure_id)
    .fetch_optional(&mut *c)
    .await)?;
    Ok(row.map(|(k,)| k))
}

/// Whether an accompaniment of the person already came from this referral.
async fn started_by(conn: Conn<'_>, person_id: &str, referral_id: &str) -> Result<bool, DbError> {
    let row: Option<(String,)> = on_backend!(conn, c => sqlx::query_as(
        "SELECT accompaniment_id FROM accompaniments WHERE person_id = $1 AND referral_id = $2 \
         LIMIT 1",
    )
    .bind(person_id)
    .bind(referral_id)
    .fetch_optional(&mut *c)
    .await)?;
    Ok(row.is_some())
}
