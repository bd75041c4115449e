//! Invitations: a one-time code that lets a new account set its password (or
//! an existing account confirm a new role). The code is shown once, stored
//! as its SHA-256, and works for 7 days.

use std::time::Duration;

use eva_platform::auth::Role;
use eva_platform::db::{Tx, now_us};
use eva_platform::service::StartError;
use eva_platform::{Config, Db};
use rand::RngCore;
use uuid::Uuid;

use super::Accounts;
use super::session::digest;
use super::store::{InvitationRow, NewUser, UserRow};
use crate::IdentityError;
use crate::structure::FieldError;

/// How long an invitation code works.
pub const INVITATION_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// RFC 4648 base32: no look-alike lowercase, easy to type.
const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// 16 random bytes as 26 base32 characters.
pub fn new_code() -> String {
    let mut raw = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    let mut out = String::with_capacity(26);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for byte in raw {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(BASE32[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(BASE32[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// A code as typed: spaces and dashes dropped, upper case.
pub fn normalise_code(code: &str) -> String {
    code.chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(char::to_uppercase)
        .collect()
}

/// Who to invite, validated.
#[derive(Debug, Clone)]
pub struct NewInvitation<'a> {
    /// Normalised e-mail.
    pub email: &'a str,
    /// May be empty: the invitee gives it when accepting.
    pub display_name: &'a str,
    /// Empty for an operator.
    pub structure_id: &'a str,
    pub role: Role,
    /// The inviting account (or `eva-cli`).
    pub created_by: &'a str,
}

/// The account invited and its code, shown once.
#[derive(Debug, Clone)]
pub struct Invited {
    pub user: UserRow,
    pub invitation: InvitationRow,
    pub code: String,
}

#[derive(Debug, thiserror::Error)]
pub enum InviteError {
    #[error(
        "cette adresse a déjà ce rôle dans cette structure / this e-mail already holds this role here"
    )]
    AlreadyMember,
    #[error(
        "une autre invitation pour cette adresse vient d'être créée : réessayez / another invitation for this e-mail was just created: try again"
    )]
    Conflict,
    #[error(transparent)]
    Internal(#[from] IdentityError),
}

impl From<eva_platform::db::DbError> for InviteError {
    fn from(e: eva_platform::db::DbError) -> Self {
        InviteError::Internal(e.into())
    }
}

impl Accounts {
    /// Gives the role to the e-mail's account (created `invited` if there is
    /// none; a disabled one is invited again) and creates a code, in `tx`.
    /// Inviting again an account that has not accepted yet replaces its
    /// pending code for that structure.
    pub async fn invite(&self, tx: &mut Tx, n: &NewInvitation<'_>) -> Result<Invited, InviteError> {
        let now = now_us();
        let bidx = self.email_index(n.email);
        let role = n.role.as_str();
        let user_id = match self.store.user_by_email(tx.conn(), &bidx).await? {
            Some(u) => {
                if u.status == "disabled" {
                    self.store.reinvite_user(tx.conn(), &u.user_id).await?;
                }
                let added = self
                    .store
                    .insert_membership(tx.conn(), &u.user_id, n.structure_id, role, now)
                    .await?;
                if !added {
                    if u.status == "active" {
                        return Err(InviteError::AlreadyMember);
                    }
                    self.store
                        .expire_invitations(tx.conn(), &u.user_id, n.structure_id, now)
                        .await?;
                }
                u.user_id
            }
            None => {
                let id = Uuid::now_v7().to_string();
                let created = self
                    .store
                    .insert_user(
                        tx.conn(),
                        &NewUser {
                            user_id: &id,
                            email_bidx: &bidx,
                            email_sealed: &self.seal(&id, "email", n.email),
                            display_name_sealed: &self.seal(&id, "display_name", n.display_name),
                            status: "invited",
                            created_at_us: now,
                        },
                    )
                    .await?;
                if !created {
                    return Err(InviteError::Conflict);
                }
                self.store
                    .insert_membership(tx.conn(), &id, n.structure_id, role, now)
                    .await?;
                id
            }
        };
        let user = self
            .store
            .user_by_id(tx.conn(), &user_id)
            .await?
            .ok_or_else(|| IdentityError::Keys("invited account vanished".into()))?;
        let code = new_code();
        let invitation = InvitationRow {
            code_hash: digest(&code),
            invitation_id: Uuid::now_v7().to_string(),
            user_id,
            structure_id: n.structure_id.to_owned(),
            role: role.to_owned(),
            expires_at_us: now + INVITATION_TTL.as_micros() as i64,
            used_at_us: None,
            created_by: n.created_by.to_owned(),
            created_at_us: now,
        };
        self.store.insert_invitation(tx.conn(), &invitation).await?;
        Ok(Invited {
            user,
            invitation,
            code,
        })
    }
}

/// An operator's invitation made by `eva operator invite`.
#[derive(Debug, Clone)]
pub struct OperatorInvitation {
    pub user_id: String,
    /// Shown once; the operator accepts it with a password.
    pub code: String,
    pub expires_at: time::OffsetDateTime,
}

#[derive(Debug, thiserror::Error)]
pub enum OperatorInviteError {
    #[error(transparent)]
    Start(#[from] StartError),
    #[error(transparent)]
    Invalid(#[from] FieldError),
    #[error(transparent)]
    Invite(#[from] InviteError),
}

/// Creates an operator account (or gives the operator role to an existing
/// account) and its invitation code, straight in identity's database with
/// the KEK: how the first operator of an installation gets a password.
pub async fn invite_operator(
    config: &Config,
    email: &str,
    display_name: &str,
) -> Result<OperatorInvitation, OperatorInviteError> {
    let email = super::parse_email("email", email)?;
    let display_name = super::parse_display_name(display_name)?;
    let (db, accounts) = crate::open_offline(config).await?;
    let result = invite_in(&db, &accounts, &email, &display_name).await;
    db.close().await;
    let invited = result?;
    tracing::info!(user_id = %invited.user.user_id, "operator invited");
    Ok(OperatorInvitation {
        user_id: invited.user.user_id,
        code: invited.code,
        expires_at: eva_platform::db::from_us(invited.invitation.expires_at_us),
    })
}

async fn invite_in(
    db: &Db,
    accounts: &Accounts,
    email: &str,
    display_name: &str,
) -> Result<Invited, InviteError> {
    let mut tx = db.begin().await?;
    let invited = accounts
        .invite(
            &mut tx,
            &NewInvitation {
                email,
                display_name,
                structure_id: "",
                role: Role::Operator,
                created_by: "eva-cli",
            },
        )
        .await?;
    tx.commit().await?;
    Ok(invited)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_base32_and_normalised_as_typed() {
        let c = new_code();
        assert_eq!(c.len(), 26);
        assert!(c.bytes().all(|b| BASE32.contains(&b)));
        assert_ne!(c, new_code());
        let typed = format!(" {}-{} ", &c[..13].to_lowercase(), &c[13..]);
        assert_eq!(normalise_code(&typed), c);
    }
}
