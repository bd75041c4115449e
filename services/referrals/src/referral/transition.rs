//! Moving a referral along its state machine: by its sender, its receiver,
//! the person, or the scheduler (expiry). Every move is a history entry and
//! an event, written in one transaction; a move that lost a race with
//! another (the state changed meanwhile) is refused, not applied twice.

use eva_platform::auth::{Principal, require_role};
use eva_platform::db::to_timestamp;
use eva_platform::grpc::invalid_field;
use eva_proto::audit::v1::AccessAction;
use eva_proto::identity::v1 as idpb;
use eva_proto::referrals::v1::{self as pb, ReferralStatus, RefusalReason};
use tonic::{Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

use super::create::record;
use super::state::{self, Side, code};
use super::store::{Move, ReferralRow, ReferralStore, TransitionRow};
use super::{CALLERS, ReferralApi, check_id, context, events, internal, not_found, seat};

/// Longest note, in characters.
pub const MAX_NOTE: usize = 4_000;

/// Who moves the referral: a caller on one side, or the scheduler.
pub enum Mover<'a> {
    Caller {
        caller: &'a Principal,
        side: Side,
        structure_id: Option<String>,
    },
    Scheduler,
}

impl ReferralApi {
    pub(super) async fn transition(
        &self,
        req: Request<pb::TransitionReferralRequest>,
    ) -> Result<Response<pb::TransitionReferralResponse>, Status> {
        let caller = require_role(&req, CALLERS)?.clone();
        let md = req.metadata().clone();
        let r = req.into_inner();
        check_id("referral_id", &r.referral_id)?;
        let to = ReferralStatus::try_from(r.to_status)
            .ok()
            .filter(|s| *s != ReferralStatus::Unspecified && *s != ReferralStatus::Envoyee)
            .ok_or_else(|| {
                invalid_field(
                    "to_status",
                    &format!(
                        "état inconnu ; états possibles : {} / unknown state",
                        state::list(&state::ALL[1..])
                    ),
                )
            })?;
        let reason = RefusalReason::try_from(r.refusal_reason).map_err(|_| {
            invalid_field(
                "refusal_reason",
                "motif de refus inconnu / unknown refusal reason",
            )
        })?;
        let note = r.note.trim().to_owned();
        if note.chars().count() > MAX_NOTE {
            return Err(invalid_field(
                "note",
                &format!("{MAX_NOTE} caractères au plus / at most {MAX_NOTE} characters"),
            ));
        }
        if to == ReferralStatus::Refusee {
            if reason == RefusalReason::Unspecified {
                return Err(invalid_field(
                    "refusal_reason",
                    &format!(
                        "un refus a un motif : {} / a refusal needs a reason",
                        state::REASONS
                            .iter()
                            .map(|r| state::reason_code(*r))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
            if reason == RefusalReason::Autre && note.is_empty() {
                return Err(invalid_field(
                    "note",
                    "expliquez le motif « autre » / explain the reason `autre`",
                ));
            }
        } else if reason != RefusalReason::Unspecified {
            return Err(invalid_field(
                "refusal_reason",
                "un motif ne s'indique que pour un refus / a reason goes with a refusal only",
            ));
        }
        let row = self
            .referrals
            .get(&r.referral_id)
            .await
            .map_err(internal)?
            .ok_or_else(not_found)?;
        let seat = seat(&caller, &row)?;
        let mover = Mover::Caller {
            caller: &caller,
            side: seat.side,
            structure_id: seat.structure_id.clone(),
        };
        let sealed_note = if note.is_empty() {
            None
        } else {
            // Sealed before the move, so the transaction holds no network call.
            let transition_id = uuid::Uuid::now_v7().to_string();
            let sealed = self
                .sealer
                .seal(
                    &md,
                    &row.person_id,
                    context(&row.referral_id, &format!("transition:{transition_id}")),
                    note.clone().into_bytes(),
                )
                .await?;
            Some((transition_id, sealed))
        };
        let (row, transition) = self.apply(row, to, reason, sealed_note, mover).await?;
        let mut transition = super::read::transition_proto(&transition);
        transition.note = note;
        Ok(Response::new(pb::TransitionReferralResponse {
            referral: Some(Self::to_proto(&row, None)),
            transition: Some(transition),
        }))
    }

    /// Checks and applies one move; answers the referral after it and the
    /// history entry written.
    pub async fn apply(
        &self,
        row: ReferralRow,
        to: ReferralStatus,
        reason: RefusalReason,
        sealed_note: Option<(String, eva_platform::sealing::Sealed)>,
        mover: Mover<'_>,
    ) -> Result<(ReferralRow, TransitionRow), Status> {
        let from = state::parse(&row.status).ok_or_else(|| internal("unknown stored status"))?;
        let side = match &mover {
            Mover::Caller { side, .. } => *side,
            Mover::Scheduler => Side::Scheduler,
        };
        let allowed = state::allowed(from, side);
        if !allowed.contains(&to) {
            return Err(refused(from, to, &allowed));
        }
        let now = self.clock.now_us();
        let (transition_id, note, note_key) = match sealed_note {
            Some((id, s)) => (id, Some(s.ciphertext), Some(s.key_id)),
            None => (uuid::Uuid::now_v7().to_string(), None, None),
        };
        let (actor_user_id, actor_structure_id) = match &mover {
            Mover::Caller {
                caller,
                structure_id,
                ..
            } => (
                caller.user_id.clone(),
                structure_id.clone().unwrap_or_default(),
            ),
            Mover::Scheduler => (String::new(), String::new()),
        };
        let t = TransitionRow {
            transition_id,
            referral_id: row.referral_id.clone(),
            from_status: row.status.clone(),
            to_status: code(to).into(),
            actor_user_id,
            actor_structure_id: actor_structure_id.clone(),
            refusal_reason: state::reason_code(reason).into(),
            note,
            note_key,
            occurred_at_us: now,
        };
        let first_answer = side == Side::Receiver && state::is_answer(to);
        let closes = state::is_final(to);
        let mut tx = self.referrals.db().begin().await.map_err(internal)?;
        let moved = ReferralStore::apply_move(
            &mut tx,
            &Move {
                referral_id: &row.referral_id,
                from: &row.status,
                to: code(to),
                refusal_reason: &t.refusal_reason,
                first_answer,
                closes,
                at_us: now,
            },
        )
        .await
        .map_err(internal)?;
        if !moved {
            return Err(Status::aborted(
                "l'orientation a changé entre-temps ; rechargez-la / the referral changed meanwhile; reload it",
            ));
        }
        ReferralStore::insert_transition(&mut tx, &t)
            .await
            .map_err(internal)?;
        if let Mover::Caller { caller, .. } = &mover {
            record(&mut tx, caller, &row, AccessAction::Write, Vec::new()).await?;
        }
        let event = pb::ReferralStatusChanged {
            referral_id: row.referral_id.clone(),
            transition_id: t.transition_id.clone(),
            person_id: row.person_id.clone(),
            sender_structure_id: row.sender_structure_id.clone(),
            target_structure_id: row.target_structure_id.clone(),
            target_service_id: row.target_service_id.clone(),
            from_status: from as i32,
            to_status: to as i32,
            refusal_reason: reason as i32,
            actor_structure_id,
            sent_at: Some(to_timestamp(row.sent_at_us)),
            occurred_at: Some(to_timestamp(now)),
            sealed_note: t.note.as_ref().map(|n| idpb::SealedPayload {
                ciphertext: n.clone(),
                key_id: t.note_key.clone().unwrap_or_default(),
            }),
        };
        events::publish(
            &mut tx,
            &format!("eva.referrals.referral.{}", state::event_name(to)),
            &row.referral_id,
            &row.target_structure_id,
            &event,
            now,
        )
        .await
        .map_err(internal)?;
        let after = ReferralStore::get_in(&mut tx, &row.referral_id)
            .await
            .map_err(internal)?
            .ok_or_else(not_found)?;
        tx.commit().await.map_err(internal)?;
        // Webhook deliveries written in the transaction can go now.
        crate::partners::wake();
        tracing::info!(referral_id = %row.referral_id, from = code(from), to = code(to), "referral moved");
        Ok((after, t))
    }
}

/// FAILED_PRECONDITION naming the allowed moves, with `to_status` as the
/// field at fault.
fn refused(from: ReferralStatus, to: ReferralStatus, allowed: &[ReferralStatus]) -> Status {
    let message = format!(
        "passage de « {} » à « {} » impossible ; possibles pour vous : {} / cannot move from `{}` to `{}`; allowed for you: {}",
        code(from),
        code(to),
        state::list(allowed),
        code(from),
        code(to),
        state::list(allowed),
    );
    Status::with_error_details(
        tonic::Code::FailedPrecondition,
        message.clone(),
        ErrorDetails::with_bad_request_violation("to_status", message),
    )
}
