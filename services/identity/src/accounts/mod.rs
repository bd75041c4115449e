//! Accounts: who logs in (professionals of the structures and operators), their
//! roles, sessions and invitations.
//!
//! - An account's e-mail and display name are sealed with the KEK, bound to the
//!   account and the field (`user:<id>:email`); the e-mail is found through its
//!   keyed blind index. Neither is ever logged, nor are passwords, codes or tokens.
//! - Roles are rows of `memberships`: a role in a structure carries its id; the
//!   platform-wide `operator` role carries an empty structure id.
//! - New accounts are `invited` until their one-time code is accepted with a
//!   password; an account left with no membership is `disabled` (kept, since
//!   access logs name it).
//! - Authorisation on a structure's members: the token's claims must allow it
//!   (operator, or the role and the structure); and when the caller is an account
//!   of this service, its memberships now must allow it too. Claims list roles and
//!   structures separately, so a counselor of A who administers B carries both
//!   `structure_admin` and `A`: the membership check keeps them from administering
//!   A, and makes a removal take effect before the access token expires.
//! - A structure the caller may not manage answers PERMISSION_DENIED (structures
//!   are a public directory: nothing is revealed); an account that is not a member
//!   of a structure the caller may manage answers NOT_FOUND.

pub mod api;
pub mod invite;
pub mod members;
pub mod password;
pub mod session;
pub mod store;

use std::time::Duration;

use eva_platform::auth::{Principal, Role, TokenSigner};
use eva_platform::config::AuthConfig;
use eva_platform::crypto::{BlindIndex, Kek};
use eva_platform::db::{now_us, to_timestamp};
use eva_proto::identity::v1 as pb;
use tonic::Status;
use uuid::Uuid;

use crate::IdentityError;
use crate::store::Store;
use crate::structure::FieldError;
use store::{MembershipRow, UserRow};

pub use invite::{OperatorInvitation, OperatorInviteError, invite_operator};

/// Longest display name, in characters.
pub const MAX_DISPLAY_NAME: usize = 100;

/// What the account services share.
pub struct Accounts {
    pub(crate) store: Store,
    pub(crate) kek: Kek,
    pub(crate) index: BlindIndex,
    pub(crate) signer: TokenSigner,
    pub(crate) issuer: String,
    pub(crate) audience: String,
    pub(crate) access_ttl: Duration,
}

impl Accounts {
    pub fn new(store: Store, kek: Kek, signer: TokenSigner, auth: &AuthConfig) -> Self {
        password::warm_up();
        Self {
            store,
            index: kek.blind_index(),
            kek,
            signer,
            issuer: auth.issuer.clone(),
            audience: auth.audience.clone(),
            access_ttl: Duration::from_secs(auth.access_token_ttl_secs),
        }
    }

    /// Seals an account's field with the KEK, bound to the account and field.
    pub fn seal(&self, user_id: &str, field: &str, value: &str) -> Vec<u8> {
        self.kek.seal(value.as_bytes(), &aad(user_id, field))
    }

    pub fn open(&self, user_id: &str, field: &str, sealed: &[u8]) -> Result<String, IdentityError> {
        let raw = self
            .kek
            .open(sealed, &aad(user_id, field))
            .map_err(|_| IdentityError::Keys(format!("account {field} cannot be unsealed")))?;
        String::from_utf8(raw)
            .map_err(|_| IdentityError::Keys(format!("account {field} is damaged")))
    }

    pub fn email_index(&self, email: &str) -> String {
        self.index.index("email", email)
    }

    /// An account as the API shows it; `memberships` may be a subset.
    pub fn user(
        &self,
        row: &UserRow,
        memberships: &[MembershipRow],
    ) -> Result<pb::User, IdentityError> {
        Ok(pb::User {
            user_id: row.user_id.clone(),
            email: self.open(&row.user_id, "email", &row.email_sealed)?,
            display_name: self.open(&row.user_id, "display_name", &row.display_name_sealed)?,
            memberships: memberships.iter().map(membership).collect(),
            person_id: row.person_id.clone().unwrap_or_default(),
            status: status(row, now_us()) as i32,
            created_at: Some(to_timestamp(row.created_at_us)),
        })
    }

    /// Refuses unless the caller may act on `structure_id`'s members with one
    /// of `roles` (operators always may): by the token's claims, then, for
    /// an account of this service, by its memberships now.
    pub async fn authorise(
        &self,
        caller: &Principal,
        structure_id: &str,
        roles: &[Role],
    ) -> Result<(), Status> {
        let by_claims = caller.has_role(Role::Operator)
            || (caller.has_any_role(roles) && caller.belongs_to(structure_id));
        if !by_claims {
            return Err(denied());
        }
        if Uuid::parse_str(&caller.user_id).is_err() {
            return Ok(());
        }
        let mut h = self
            .store
            .db()
            .acquire()
            .await
            .map_err(IdentityError::from)?;
        let Some(user) = self
            .store
            .user_by_id(h.conn(), &caller.user_id)
            .await
            .map_err(IdentityError::from)?
        else {
            // A token minted for a name that is no account (`eva token`, tests).
            return Ok(());
        };
        let held = self
            .store
            .memberships_of(h.conn(), &user.user_id)
            .await
            .map_err(IdentityError::from)?;
        let by_memberships = user.status == "active"
            && held.iter().any(|m| {
                m.role == Role::Operator.as_str()
                    || (m.structure_id == structure_id
                        && roles.iter().any(|r| r.as_str() == m.role))
            });
        if by_memberships {
            Ok(())
        } else {
            Err(denied())
        }
    }
}

fn aad(user_id: &str, field: &str) -> Vec<u8> {
    format!("user:{user_id}:{field}").into_bytes()
}

fn denied() -> Status {
    Status::permission_denied(
        "accès refusé : il faut administrer cette structure (ou en être membre pour la liste) / access denied: you do not hold the required role in this structure",
    )
}

/// The state shown for an account; an active account inside a lock is `LOCKED`.
pub fn status(row: &UserRow, now_us: i64) -> pb::UserStatus {
    match row.status.as_str() {
        "invited" => pb::UserStatus::Invited,
        "active" if row.locked_until_us.is_some_and(|t| t > now_us) => pb::UserStatus::Locked,
        "active" => pb::UserStatus::Active,
        "disabled" => pb::UserStatus::Disabled,
        _ => pb::UserStatus::Unspecified,
    }
}

pub fn membership(m: &MembershipRow) -> pb::Membership {
    pb::Membership {
        structure_id: m.structure_id.clone(),
        role: Role::parse(&m.role).map_or(pb::Role::Unspecified, role_to_pb) as i32,
        since: Some(to_timestamp(m.created_at_us)),
        structure_name: m.structure_name.clone().unwrap_or_default(),
    }
}

pub fn role_to_pb(r: Role) -> pb::Role {
    match r {
        Role::Person => pb::Role::Person,
        Role::Counselor => pb::Role::Counselor,
        Role::StructureAdmin => pb::Role::StructureAdmin,
        Role::Partner => pb::Role::Partner,
        Role::Analyst => pb::Role::Analyst,
        Role::Operator => pb::Role::Operator,
    }
}

pub fn role_from_pb(r: pb::Role) -> Option<Role> {
    Some(match r {
        pb::Role::Unspecified => return None,
        pb::Role::Person => Role::Person,
        pb::Role::Counselor => Role::Counselor,
        pb::Role::StructureAdmin => Role::StructureAdmin,
        pb::Role::Partner => Role::Partner,
        pb::Role::Analyst => Role::Analyst,
        pb::Role::Operator => Role::Operator,
    })
}

/// The roles a structure of this kind gives its members.
pub fn roles_for_kind(kind: &str) -> &'static [Role] {
    match kind {
        "aci" | "ei" | "ai" | "etti" | "eiti" | "association" | "ccas" => {
            &[Role::Counselor, Role::StructureAdmin]
        }
        "partner" => &[Role::Partner, Role::StructureAdmin],
        "departement" => &[Role::Analyst, Role::StructureAdmin],
        _ => &[],
    }
}

fn bad(field: &'static str, message: &str) -> FieldError {
    FieldError {
        field,
        message: message.to_owned(),
    }
}

/// An e-mail address, trimmed and lowercased; the error names `field`.
pub fn parse_email(field: &'static str, raw: &str) -> Result<String, FieldError> {
    let email = raw.trim().to_lowercase();
    let invalid = || {
        bad(
            field,
            "adresse e-mail invalide (ex. prenom.nom@exemple.fr) / not a valid e-mail address",
        )
    };
    if email.is_empty() {
        return Err(bad(
            field,
            "l'adresse e-mail est obligatoire / e-mail address is required",
        ));
    }
    if email.chars().count() > 254 {
        return Err(bad(
            field,
            "adresse e-mail trop longue (254 caractères au plus) / e-mail address too long (at most 254 characters)",
        ));
    }
    let Some((local, domain)) = email.split_once('@') else {
        return Err(invalid());
    };
    let local_ok = !local.is_empty()
        && local.chars().count() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.chars().count() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.chars().count() >= 2 && tld.chars().all(char::is_alphabetic));
    if local_ok && domain_ok {
        Ok(email)
    } else {
        Err(invalid())
    }
}

/// A display name, trimmed; empty is allowed here (the caller decides).
pub fn parse_display_name(raw: &str) -> Result<String, FieldError> {
    let name = raw.trim();
    if name.chars().count() > MAX_DISPLAY_NAME {
        return Err(bad(
            "display_name",
            "le nom affiché compte 100 caractères au plus / display name is at most 100 characters",
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(bad(
            "display_name",
            "le nom affiché ne peut pas contenir de caractères de contrôle / display name cannot contain control characters",
        ));
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_checked_and_normalised() {
        assert_eq!(
            parse_email("email", "  Camille.Martin@Example.ORG ").unwrap(),
            "camille.martin@example.org"
        );
        assert!(parse_email("email", "élodie@exemple.fr").is_ok());
        for bad in [
            "",
            "camille",
            "camille@",
            "@example.org",
            "camille@example",
            "camille@@example.org",
            "cam ille@example.org",
            "camille@exa_mple.org",
            "camille@example.o",
            ".camille@example.org",
            "camille@-example.org",
        ] {
            assert_eq!(
                parse_email("email", bad).unwrap_err().field,
                "email",
                "{bad}"
            );
        }
    }

    #[test]
    fn display_names_are_bounded() {
        assert_eq!(parse_display_name(" Camille ").unwrap(), "Camille");
        assert!(parse_display_name(&"é".repeat(100)).is_ok());
        assert_eq!(
            parse_display_name(&"é".repeat(101)).unwrap_err().field,
            "display_name"
        );
        assert!(parse_display_name("a\u{7}b").is_err());
    }

    #[test]
    fn each_kind_gives_its_roles() {
        assert_eq!(
            roles_for_kind("aci"),
            &[Role::Counselor, Role::StructureAdmin]
        );
        assert_eq!(
            roles_for_kind("partner"),
            &[Role::Partner, Role::StructureAdmin]
        );
        assert_eq!(
            roles_for_kind("departement"),
            &[Role::Analyst, Role::StructureAdmin]
        );
        assert!(roles_for_kind("unspecified").is_empty());
    }
}
