//! Access-log events: every read or write of a person's data publishes an
//! `eva.audit.<service>.access` event, through the outbox and in the same
//! transaction as the write, so the person's access log misses nothing.
//! Identity consumes them into the log the person reads.

use eva_proto::audit::v1::{AccessAction, AccessRecorded};
use uuid::Uuid;

use crate::auth::Principal;
use crate::db::{DbError, Tx, now_us, to_timestamp};
use crate::outbox::{self, Event};

/// One access to a person's data.
#[derive(Debug, Clone)]
pub struct Access<'a> {
    /// The person whose data was seen or changed.
    pub person_id: &'a str,
    pub actor: &'a Principal,
    /// The structure the actor acted for, when they belong to several.
    pub structure_id: Option<&'a str>,
    pub action: AccessAction,
    /// e.g. `diagnostic`, `person`, `referral`.
    pub resource_type: &'a str,
    pub resource_id: &'a str,
    /// Diagnostic domains concerned, empty when none.
    pub domains: Vec<String>,
    /// `accompagnement`, `orientation`, `statistiques`.
    pub purpose: &'a str,
}

/// Records `access` in `tx`.
pub async fn record(tx: &mut Tx, service: &str, access: Access<'_>) -> Result<(), DbError> {
    let structure = access
        .structure_id
        .map(str::to_owned)
        .or_else(|| access.actor.structures.first().cloned())
        .unwrap_or_default();
    let access_id = Uuid::now_v7();
    let message = AccessRecorded {
        access_id: access_id.to_string(),
        person_id: access.person_id.to_owned(),
        actor_user_id: access.actor.user_id.clone(),
        actor_structure_id: structure,
        actor_role: access.actor.main_role().to_owned(),
        action: access.action as i32,
        resource_type: access.resource_type.to_owned(),
        resource_id: access.resource_id.to_owned(),
        domains: access.domains,
        purpose: access.purpose.to_owned(),
        service: service.to_owned(),
        occurred_at: Some(to_timestamp(now_us())),
    };
    // The access id is the event id: the access log dedups on it.
    let event = Event {
        id: access_id,
        ..Event::new(
            service,
            format!("eva.audit.{service}.access"),
            Some(access.person_id.to_owned()),
            &message,
        )
    };
    outbox::enqueue(tx, &event).await
}
