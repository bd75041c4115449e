//! Reminders and expiry. The deadlines live in the referrals table, so the
//! scheduler holds no state of its own: after a restart it finds what fell
//! due meanwhile and does it. Each reminder and each expiry is a guarded
//! update (only if the referral is still waiting), so two schedulers — two
//! replicas, or one restarted mid-pass — never remind or expire twice.

use std::time::Duration;

use eva_platform::Shutdown;
use eva_platform::db::to_timestamp;
use eva_proto::referrals::v1::{self as pb, ReferralStatus, RefusalReason};

use super::store::ReferralStore;
use super::transition::Mover;
use super::{ReferralApi, events};

/// Referrals handled per pass and kind.
const BATCH: i64 = 200;

/// Runs passes every `referrals.scheduler_poll_ms` until shutdown.
pub fn spawn(api: ReferralApi, shutdown: Shutdown) {
    let every = Duration::from_millis(api.config.scheduler_poll_ms);
    tokio::spawn(async move {
        loop {
            match pass(&api).await {
                Ok((0, 0)) => {}
                Ok((reminded, expired)) => {
                    tracing::info!(reminded, expired, "referral deadlines handled")
                }
                Err(e) => tracing::warn!(error = %e, "referral scheduler pass failed; retrying"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(every) => {}
            }
        }
    });
}

/// One pass: every due reminder, then every due expiry. Answers how many of
/// each were done.
pub async fn pass(api: &ReferralApi) -> Result<(usize, usize), tonic::Status> {
    let now = api.clock.now_us();
    let mut reminded = 0;
    loop {
        let due = api
            .referrals
            .due_reminders(now, BATCH)
            .await
            .map_err(super::internal)?;
        let n = due.len();
        for id in due {
            if remind(api, &id, now).await? {
                reminded += 1;
            }
        }
        if (n as i64) < BATCH {
            break;
        }
    }
    let mut expired = 0;
    loop {
        let due = api
            .referrals
            .due_expiries(now, BATCH)
            .await
            .map_err(super::internal)?;
        let n = due.len();
        for id in due {
            let Some(row) = api.referrals.get(&id).await.map_err(super::internal)? else {
                continue;
            };
            match api
                .apply(
                    row,
                    ReferralStatus::Expiree,
                    RefusalReason::Unspecified,
                    None,
                    Mover::Scheduler,
                )
                .await
            {
                Ok(_) => expired += 1,
                // Answered or expired by someone else meanwhile.
                Err(s) if s.code() == tonic::Code::Aborted => {}
                Err(s) if s.code() == tonic::Code::FailedPrecondition => {}
                Err(s) => return Err(s),
            }
        }
        if (n as i64) < BATCH {
            break;
        }
    }
    Ok((reminded, expired))
}

async fn remind(api: &ReferralApi, id: &str, now: i64) -> Result<bool, tonic::Status> {
    let Some(row) = api.referrals.get(id).await.map_err(super::internal)? else {
        return Ok(false);
    };
    let mut tx = api.referrals.db().begin().await.map_err(super::internal)?;
    if !ReferralStore::mark_reminded(&mut tx, id, now)
        .await
        .map_err(super::internal)?
    {
        return Ok(false);
    }
    events::publish(
        &mut tx,
        "eva.referrals.referral.reminded",
        id,
        &row.target_structure_id,
        &pb::ReferralReminded {
            referral_id: id.to_owned(),
            sender_structure_id: row.sender_structure_id.clone(),
            target_structure_id: row.target_structure_id.clone(),
            sent_at: Some(to_timestamp(row.sent_at_us)),
            expires_at: Some(to_timestamp(row.expires_at_us)),
        },
        now,
    )
    .await
    .map_err(super::internal)?;
    tx.commit().await.map_err(super::internal)?;
    crate::partners::wake();
    Ok(true)
}
