//! Consents end on their own: once a day has passed their `valid_until`,
//! an active consent becomes `expired` and `eva.consent.grant.expired` is
//! published, one transaction per consent. The pass works from the table,
//! so a restart loses nothing; it runs at start and every minute.

use std::time::Duration;

use eva_platform::consent::today;
use eva_platform::db::{Db, now_us, to_timestamp};
use eva_platform::outbox::{self, Event};
use eva_platform::service::ServiceContext;
use eva_proto::identity::v1 as pb;

use super::store::ConsentStore;
use crate::{IdentityError, SERVICE};

/// Time between two passes.
pub const EVERY: Duration = Duration::from_secs(60);
/// Consents read per query within one pass.
const BATCH: i64 = 200;

/// Runs [`expire_due`] at start then every [`EVERY`] until shutdown.
pub fn spawn(ctx: &ServiceContext) {
    let (db, shutdown) = (ctx.db.clone(), ctx.shutdown.clone());
    ctx.shutdown.spawn(async move {
        loop {
            match expire_due(&db, &today()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(expired = n, "consents expired"),
                Err(e) => tracing::warn!(error = %e, "consent expiry pass failed; retrying later"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(EVERY) => {}
            }
        }
    });
}

/// Expires every active consent whose last day is before `today`
/// (`YYYY-MM-DD`), each with its event in one transaction. Returns how many
/// this pass expired; a consent withdrawn or expired meanwhile is left alone.
pub async fn expire_due(db: &Db, today: &str) -> Result<usize, IdentityError> {
    let store = ConsentStore;
    let mut expired = 0;
    loop {
        let due = {
            let mut h = db.acquire().await?;
            store.due(h.conn(), today, BATCH).await?
        };
        let mut progressed = false;
        for consent_id in &due {
            let now = now_us();
            let mut tx = db.begin().await?;
            let Some(row) = store.expire(tx.conn(), consent_id, today, now).await? else {
                continue;
            };
            let event = pb::ConsentExpired {
                consent_id: row.consent_id.clone(),
                person_id: row.person_id.clone(),
                grantee_structure_id: row.structure_id.clone(),
                expired_at: Some(to_timestamp(now)),
            };
            outbox::enqueue(
                &mut tx,
                &Event::new(
                    SERVICE,
                    "eva.consent.grant.expired",
                    Some(row.consent_id.clone()),
                    &event,
                ),
            )
            .await?;
            tx.commit().await?;
            tracing::debug!(consent_id = %row.consent_id, "consent expired");
            expired += 1;
            progressed = true;
        }
        if (due.len() as i64) < BATCH || !progressed {
            return Ok(expired);
        }
    }
}
