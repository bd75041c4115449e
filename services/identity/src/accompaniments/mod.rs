//! Accompaniments (which structures follow a person, and how a new one starts
//! following them), share codes and the person's own account.
//!
//! - **Who sees the history** (`ListAccompaniments`): the person sees every
//!   row; a counselor or admin of a structure that follows the person now sees
//!   every row too (which structures followed them, when and why it ended:
//!   never what they recorded); a structure whose accompaniments have all
//!   ended sees only its own rows; anyone else gets NOT_FOUND.
//! - **Ending** (`EndAccompaniment`): a counselor or admin of that structure;
//!   the end date is neither before the start nor in the future, and the end
//!   takes effect at once: the structure no longer follows the person.
//! - **Share codes**: the person (their own account) creates a code of 8
//!   characters from an alphabet without 0/O/1/I, valid 24 hours, at most 5
//!   unused at a time. Only its keyed hash (blind index) is stored: 40 bits are
//!   few enough that a plain hash could be reversed offline. A structure that
//!   fails 10 redemptions in 15 minutes waits out the rest of those 15 minutes.
//! - **Person accounts** (`InvitePerson`): a `person` account linked to the
//!   person (`users.person_id`), role `person` with no structure, and the usual
//!   invitation code (7 days). Its tokens carry `person_id`.
//!
//! - **Referrals** ([`referrals`]): accepting a referral starts the target
//!   structure's accompaniment, from the `eva.referrals.referral.accepted`
//!   event.
//!
//! Every read and write of a person's data here is in the access log.

pub mod api;
pub mod person_account;
pub mod referrals;
pub mod store;

use std::time::Duration;

use eva_proto::identity::v1 as pb;
use rand::Rng;

pub use api::AccompanimentApi;
pub use person_account::PersonAccounts;

/// How long a share code works.
pub const SHARE_CODE_TTL: Duration = Duration::from_secs(24 * 3600);
/// Unused, unexpired codes a person may hold at once.
pub const MAX_ACTIVE_SHARE_CODES: i64 = 5;
/// Failed redemptions a structure may make in one window…
pub const REDEEM_FAILURES_ALLOWED: i32 = 10;
/// …of this length; then it waits until the window ends.
pub const REDEEM_WINDOW: Duration = Duration::from_secs(15 * 60);

/// Share-code characters: digits and capitals without 0, O, 1 and I, which
/// are mistaken for one another when read aloud or copied by hand.
pub const SHARE_ALPHABET: &[u8; 32] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";
/// Characters in a share code.
pub const SHARE_CODE_LEN: usize = 8;

/// A new random share code (40 bits).
pub fn new_share_code() -> String {
    let mut rng = rand::rngs::OsRng;
    (0..SHARE_CODE_LEN)
        .map(|_| char::from(SHARE_ALPHABET[rng.gen_range(0..SHARE_ALPHABET.len())]))
        .collect()
}

/// A share code as typed (spaces and dashes dropped, upper case), or `None`
/// when it cannot be one.
pub fn parse_share_code(raw: &str) -> Option<String> {
    if raw.len() > 64 {
        return None;
    }
    let code: String = raw
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(char::to_uppercase)
        .collect();
    (code.len() == SHARE_CODE_LEN && code.bytes().all(|b| SHARE_ALPHABET.contains(&b)))
        .then_some(code)
}

/// The reason an accompaniment ends, as stored; `None` when unset or unknown.
pub fn end_reason(raw: i32) -> Option<pb::AccompanimentEndReason> {
    pb::AccompanimentEndReason::try_from(raw)
        .ok()
        .filter(|r| *r != pb::AccompanimentEndReason::Unspecified)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_codes_are_easy_to_read_aloud() {
        for _ in 0..200 {
            let c = new_share_code();
            assert_eq!(c.len(), 8);
            assert!(!c.contains(['0', 'O', '1', 'I']), "{c}");
            assert_eq!(parse_share_code(&c).as_deref(), Some(c.as_str()));
        }
        assert_ne!(new_share_code(), new_share_code());
        assert_eq!(parse_share_code(" k7qm-3xwp ").as_deref(), Some("K7QM3XWP"));
        for bad in [
            "",
            "K7QM3XW",
            "K7QM3XWPZ",
            "K7QM3XW0",
            "K7QM3XWI",
            "K7QM3XWÉ",
        ] {
            assert_eq!(parse_share_code(bad), None, "{bad}");
        }
    }

    #[test]
    fn an_end_needs_a_known_reason() {
        assert_eq!(end_reason(0), None);
        assert_eq!(end_reason(99), None);
        assert_eq!(end_reason(6), Some(pb::AccompanimentEndReason::Autre));
    }
}
