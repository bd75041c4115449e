//! The referral state machine: who may move a referral from which state to
//! which, as codes (`envoyee`, `a_l_etude`…) and proto enums.
//!
//! ```text
//! envoyee ─┬─> a_l_etude ─┬─> acceptee ──> en_cours ─┬─> terminee
//!          │              ├─> refusee                └─> abandonnee
//!          │              └─> expiree (scheduler)
//!          ├─> acceptee | refusee | expiree
//!          └─> annulee (sender) | declinee_par_la_personne (before en_cours)
//! ```

use eva_proto::referrals::v1::{ReferralStatus, RefusalReason};

/// Who moves a referral.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// A member of the sending structure.
    Sender,
    /// A member of the target structure (association or partner).
    Receiver,
    /// The person themself.
    Person,
    /// The scheduler (expiry).
    Scheduler,
}

/// Every state, in the order of the proto enum.
pub const ALL: &[ReferralStatus] = &[
    ReferralStatus::Envoyee,
    ReferralStatus::ALEtude,
    ReferralStatus::Acceptee,
    ReferralStatus::Refusee,
    ReferralStatus::Expiree,
    ReferralStatus::EnCours,
    ReferralStatus::Terminee,
    ReferralStatus::Abandonnee,
    ReferralStatus::Annulee,
    ReferralStatus::DeclineeParLaPersonne,
];

/// The code stored and shown (`envoyee`…).
pub fn code(s: ReferralStatus) -> &'static str {
    match s {
        ReferralStatus::Unspecified => "",
        ReferralStatus::Envoyee => "envoyee",
        ReferralStatus::ALEtude => "a_l_etude",
        ReferralStatus::Acceptee => "acceptee",
        ReferralStatus::Refusee => "refusee",
        ReferralStatus::Expiree => "expiree",
        ReferralStatus::EnCours => "en_cours",
        ReferralStatus::Terminee => "terminee",
        ReferralStatus::Abandonnee => "abandonnee",
        ReferralStatus::Annulee => "annulee",
        ReferralStatus::DeclineeParLaPersonne => "declinee_par_la_personne",
    }
}

pub fn parse(code_: &str) -> Option<ReferralStatus> {
    ALL.iter().copied().find(|s| code(*s) == code_)
}

/// The event name of a move to `s`: `eva.referrals.referral.<name>` and
/// `eva.partners.<id>.referrals.<name>`.
pub fn event_name(s: ReferralStatus) -> &'static str {
    match s {
        ReferralStatus::Unspecified | ReferralStatus::Envoyee => "sent",
        ReferralStatus::ALEtude => "under_review",
        ReferralStatus::Acceptee => "accepted",
        ReferralStatus::Refusee => "refused",
        ReferralStatus::Expiree => "expired",
        ReferralStatus::EnCours => "started",
        ReferralStatus::Terminee => "completed",
        ReferralStatus::Abandonnee => "abandoned",
        ReferralStatus::Annulee => "cancelled",
        ReferralStatus::DeclineeParLaPersonne => "declined",
    }
}

/// No move leaves these.
pub fn is_final(s: ReferralStatus) -> bool {
    matches!(
        s,
        ReferralStatus::Refusee
            | ReferralStatus::Expiree
            | ReferralStatus::Terminee
            | ReferralStatus::Abandonnee
            | ReferralStatus::Annulee
            | ReferralStatus::DeclineeParLaPersonne
    )
}

/// A move the receiver makes that counts as its first answer.
pub fn is_answer(s: ReferralStatus) -> bool {
    matches!(
        s,
        ReferralStatus::ALEtude | ReferralStatus::Acceptee | ReferralStatus::Refusee
    )
}

/// Still waiting for the receiver's decision: the expiry applies.
pub fn awaits_decision(s: ReferralStatus) -> bool {
    matches!(s, ReferralStatus::Envoyee | ReferralStatus::ALEtude)
}

/// The states `side` may move a referral to from `from`.
pub fn allowed(from: ReferralStatus, side: Side) -> Vec<ReferralStatus> {
    use ReferralStatus as S;
    let before_start = matches!(from, S::Envoyee | S::ALEtude | S::Acceptee);
    let mut out = Vec::new();
    match side {
        Side::Receiver => {
            match from {
                S::Envoyee => out.extend([S::ALEtude, S::Acceptee, S::Refusee]),
                S::ALEtude => out.extend([S::Acceptee, S::Refusee]),
                S::Acceptee => out.push(S::EnCours),
                S::EnCours => out.extend([S::Terminee, S::Abandonnee]),
                _ => {}
            }
            // The receiver may record that the person declined.
            if before_start {
                out.push(S::DeclineeParLaPersonne);
            }
        }
        Side::Sender => {
            if before_start {
                out.extend([S::Annulee, S::DeclineeParLaPersonne]);
            }
        }
        Side::Person => {
            if before_start {
                out.push(S::DeclineeParLaPersonne);
            }
        }
        Side::Scheduler => {
            if awaits_decision(from) {
                out.push(S::Expiree);
            }
        }
    }
    out
}

/// Refusal reason codes, as in the API.
pub fn reason_code(r: RefusalReason) -> &'static str {
    match r {
        RefusalReason::Unspecified => "",
        RefusalReason::BeneficiaireInjoignable => "beneficiaire_injoignable",
        RefusalReason::FreinsPeripheriques => "freins_peripheriques",
        RefusalReason::SessionComplete => "session_complete",
        RefusalReason::Doublon => "doublon",
        RefusalReason::HorsCriteres => "hors_criteres",
        RefusalReason::Autre => "autre",
    }
}

pub const REASONS: &[RefusalReason] = &[
    RefusalReason::BeneficiaireInjoignable,
    RefusalReason::FreinsPeripheriques,
    RefusalReason::SessionComplete,
    RefusalReason::Doublon,
    RefusalReason::HorsCriteres,
    RefusalReason::Autre,
];

pub fn parse_reason(code_: &str) -> Option<RefusalReason> {
    REASONS.iter().copied().find(|r| reason_code(*r) == code_)
}

/// `a, b, c` of the codes, for messages.
pub fn list(states: &[ReferralStatus]) -> String {
    if states.is_empty() {
        return "aucun / none".into();
    }
    states
        .iter()
        .map(|s| code(*s))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for s in ALL {
            assert_eq!(parse(code(*s)), Some(*s));
        }
        for r in REASONS {
            assert_eq!(parse_reason(reason_code(*r)), Some(*r));
        }
        assert_eq!(parse("inconnu"), None);
    }

    #[test]
    fn final_states_allow_nothing() {
        for s in ALL.iter().copied().filter(|s| is_final(*s)) {
            for side in [Side::Sender, Side::Receiver, Side::Person, Side::Scheduler] {
                assert!(allowed(s, side).is_empty(), "{s:?} {side:?}");
            }
        }
    }

    #[test]
    fn main_path() {
        use ReferralStatus as S;
        assert!(allowed(S::Envoyee, Side::Receiver).contains(&S::Acceptee));
        assert!(allowed(S::ALEtude, Side::Receiver).contains(&S::Refusee));
        assert!(allowed(S::Acceptee, Side::Receiver).contains(&S::EnCours));
        assert!(allowed(S::EnCours, Side::Receiver).contains(&S::Terminee));
        assert!(!allowed(S::Envoyee, Side::Receiver).contains(&S::Terminee));
        assert!(!allowed(S::Envoyee, Side::Sender).contains(&S::Acceptee));
        assert!(allowed(S::Envoyee, Side::Sender).contains(&S::Annulee));
        assert!(!allowed(S::EnCours, Side::Sender).contains(&S::Annulee));
        assert_eq!(allowed(S::ALEtude, Side::Scheduler), vec![S::Expiree]);
        assert!(allowed(S::Acceptee, Side::Scheduler).is_empty());
    }
}
