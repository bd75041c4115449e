//! Deleted accounts (`eva.identity.user.deleted`, durable
//! `community-users`): the posts stay for the others who learnt from them,
//! with their author blanked (`author_user_id = ''`, and the author's
//! structure too). Votes and "I used it" feedback of the user are deleted
//! and the counts they made are lost with them (a vote is the voter's act;
//! keeping it under a blank voter would break one vote per user). Their
//! follows, space memberships, reports, preferences, followed domains,
//! notifications and check-in months go; in the moderation log the actor is
//! blanked, the entry stays.

use eva_platform::consumer::{ApplyError, Envelope, Projection};
use eva_platform::db::Tx;
use eva_platform::on_backend;

/// Durable consumer of `eva.identity.user.deleted`.
pub const USERS_CONSUMER: &str = "community-users";
/// The subject it reads.
pub const USER_DELETED: &str = "eva.identity.user.deleted";

/// Anonymises a deleted account's traces.
#[derive(Clone, Copy, Debug, Default)]
pub struct AccountDeletion;

const STATEMENTS: &[&str] = &[
    "UPDATE questions SET author_user_id = '', author_structure_id = '' WHERE author_user_id = $1",
    "UPDATE answers SET author_user_id = '', author_structure_id = '' WHERE author_user_id = $1",
    "UPDATE solutions SET author_user_id = '', author_structure_id = '' WHERE author_user_id = $1",
    "UPDATE moderation_log SET actor_user_id = '' WHERE actor_user_id = $1",
    "DELETE FROM votes WHERE user_id = $1",
    "DELETE FROM solution_feedback WHERE user_id = $1",
    "DELETE FROM question_follows WHERE user_id = $1",
    "DELETE FROM space_members WHERE user_id = $1",
    "DELETE FROM reports WHERE reporter_user_id = $1",
    "DELETE FROM notification_preferences WHERE user_id = $1",
    "DELETE FROM notification_domains WHERE user_id = $1",
    "DELETE FROM notifications WHERE user_id = $1",
    "DELETE FROM checkin_months WHERE user_id = $1",
];

impl Projection for AccountDeletion {
    async fn apply(&self, tx: &mut Tx, event: &Envelope) -> Result<(), ApplyError> {
        if event.event_type != USER_DELETED {
            return Ok(());
        }
        let e: eva_proto::identity::v1::UserDeleted = event.decode()?;
        if e.user_id.is_empty() {
            return Err(ApplyError::Permanent("user.deleted without user_id".into()));
        }
        for sql in STATEMENTS {
            on_backend!(tx.conn(), c => sqlx::query(*sql)
                .bind(&e.user_id)
                .execute(&mut *c)
                .await.map(|r| r.rows_affected()))?;
        }
        tracing::info!(user_id = %e.user_id, "community: account anonymised");
        Ok(())
    }
}
