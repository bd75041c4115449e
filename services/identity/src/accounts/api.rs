//! `SessionService`: login, refresh, logout, the caller, invitations; and the
//! helpers `members` shares. Errors never say whether an e-mail has an account.

use std::time::Duration;

use eva_platform::auth::{Role, require_role};
use eva_platform::db::{now_us, to_timestamp};
use eva_platform::grpc::invalid_field;
use eva_proto::identity::v1 as pb;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::invite::normalise_code;
use super::session::{digest, refused};
use super::store::{InvitationRow, MembershipRow, UserRow};
use super::{Accounts, parse_display_name, parse_email, password, role_to_pb};
use crate::IdentityError;
use crate::structure::FieldError;

/// Every role: what a signed-in caller may hold.
const EVERYONE: &[Role] = &[
    Role::Person,
    Role::Counselor,
    Role::StructureAdmin,
    Role::Partner,
    Role::Analyst,
    Role::Operator,
];

/// Consecutive failures before the account locks.
pub const LOCK_AFTER: i32 = 5;

/// How long the account stays locked after `failures` consecutive failed
/// logins: 30 s at the fifth, doubling with each further one, 15 min at most.
pub fn lock_for(failures: i32) -> Option<Duration> {
    if failures < LOCK_AFTER {
        return None;
    }
    let doublings = (failures - LOCK_AFTER).min(10) as u32;
    Some(Duration::from_secs((30u64 << doublings).min(15 * 60)))
}

pub(super) fn internal(e: impl Into<IdentityError>) -> Status {
    Status::from(e.into())
}

pub(super) fn field(e: FieldError) -> Status {
    invalid_field(e.field, &e.message)
}

fn bad_credentials() -> Status {
    Status::unauthenticated(
        "adresse e-mail ou mot de passe incorrect / wrong e-mail address or password",
    )
}

/// RESOURCE_EXHAUSTED stating the wait, with `retry-after` (seconds) in the
/// metadata for the gateway's `Retry-After` header.
fn locked(remaining_us: i64) -> Status {
    let secs = (remaining_us.max(1) + 999_999) / 1_000_000;
    let mut s = Status::resource_exhausted(format!(
        "trop d'échecs de connexion : compte verrouillé, réessayez dans {secs} s / too many failed logins: account locked, try again in {secs} s"
    ));
    s.metadata_mut().insert("retry-after", secs.into());
    s
}

fn invitation_gone() -> Status {
    Status::not_found(
        "invitation introuvable, expirée ou déjà utilisée : demandez-en une nouvelle / invitation not found, expired or already used: ask for a new one",
    )
}

pub(super) fn check_id(field_name: &'static str, id: &str) -> Result<(), Status> {
    Uuid::parse_str(id)
        .map(|_| ())
        .map_err(|_| invalid_field(field_name, "identifiant invalide / not a valid id"))
}

/// A code as sent: not empty nor absurdly long, then normalised.
fn check_code(code: &str) -> Result<String, Status> {
    if code.trim().is_empty() {
        return Err(invalid_field(
            "code",
            "le code d'invitation est obligatoire / invitation code is required",
        ));
    }
    if code.len() > 64 {
        return Err(invitation_gone());
    }
    Ok(normalise_code(code))
}

fn required(field_name: &'static str, value: &str) -> Result<(), Status> {
    if value.is_empty() {
        return Err(invalid_field(field_name, "obligatoire / required"));
    }
    if value.len() > 1024 {
        return Err(invalid_field(field_name, "trop long / too long"));
    }
    Ok(())
}

impl Accounts {
    pub(crate) fn invitation(
        &self,
        row: &InvitationRow,
        email: String,
        code: String,
    ) -> pb::Invitation {
        pb::Invitation {
            invitation_id: row.invitation_id.clone(),
            kind: if row.role == Role::Person.as_str() {
                pb::InvitationKind::Person
            } else {
                pb::InvitationKind::Member
            } as i32,
            structure_id: row.structure_id.clone(),
            role: Role::parse(&row.role).map_or(pb::Role::Unspecified, role_to_pb) as i32,
            person_id: String::new(),
            email,
            code,
            expires_at: Some(to_timestamp(row.expires_at_us)),
            accepted_at: row.used_at_us.map(to_timestamp),
            created_at: Some(to_timestamp(row.created_at_us)),
        }
    }

    /// Counts a failed password; locks the account when it is one too many.
    async fn count_failure(&self, user_id: &str, now: i64) -> Result<(), Status> {
        let mut tx = self.store.db().begin().await.map_err(internal)?;
        let failures = self
            .store
            .count_login_failure(tx.conn(), user_id)
            .await
            .map_err(internal)?;
        if let Some(lock) = lock_for(failures) {
            self.store
                .lock_user(tx.conn(), user_id, now + lock.as_micros() as i64)
                .await
                .map_err(internal)?;
            tracing::warn!(
                user_id,
                failures,
                lock_secs = lock.as_secs(),
                "account locked after failed logins"
            );
        } else {
            tracing::info!(user_id, failures, "login refused");
        }
        tx.commit().await.map_err(internal)
    }

    /// The caller as the token tells it, for a token that names no account
    /// (`eva token`, tests): roles × structures of the claims.
    async fn me_from_claims(
        &self,
        caller: &eva_platform::auth::Principal,
    ) -> Result<pb::User, Status> {
        let mut memberships = Vec::new();
        for role in &caller.roles {
            let in_structure = !matches!(role, Role::Operator | Role::Person);
            let structures: Vec<&str> = if in_structure {
                caller.structures.iter().map(String::as_str).collect()
            } else {
                vec![""]
            };
            for s in structures {
                let name = if s.is_empty() {
                    None
                } else {
                    self.store
                        .structure(s)
                        .await
                        .map_err(internal)?
                        .map(|s| s.name)
                };
                memberships.push(super::membership(&MembershipRow {
                    user_id: caller.user_id.clone(),
                    structure_id: s.to_owned(),
                    structure_name: name,
                    role: role.as_str().to_owned(),
                    created_at_us: 0,
                }));
            }
        }
        Ok(pb::User {
            user_id: caller.user_id.clone(),
            memberships,
            person_id: caller.person_id.clone().unwrap_or_default(),
            status: pb::UserStatus::Active as i32,
            ..Default::default()
        })
    }
}

#[tonic::async_trait]
impl pb::session_service_server::SessionService for Accounts {
    async fn login(
        &self,
        req: Request<pb::LoginRequest>,
    ) -> Result<Response<pb::LoginResponse>, Status> {
        // Public: the caller has no token yet.
        let r = req.into_inner();
        let email = parse_email("email", &r.email).map_err(field)?;
        required("password", &r.password)?;
        let now = now_us();
        let user = {
            let mut h = self.store.db().acquire().await.map_err(internal)?;
            self.store
                .user_by_email(h.conn(), &self.email_index(&email))
                .await
                .map_err(internal)?
        };
        if let Some(until) = user.as_ref().and_then(|u| u.locked_until_us)
            && until > now
        {
            return Err(locked(until - now));
        }
        let stored = user.as_ref().and_then(|u| u.password_hash.clone());
        let verified = password::verify(r.password.clone(), stored).await?;
        let Some(user) = user else {
            return Err(bad_credentials());
        };
        if !verified.matches {
            self.count_failure(&user.user_id, now).await?;
            return Err(bad_credentials());
        }
        if user.status != "active" {
            return Err(Status::unauthenticated(
                "compte désactivé : adressez-vous à l'administrateur de votre structure / account disabled: ask your structure's administrator",
            ));
        }
        let rehash = if verified.needs_rehash {
            Some(password::hash(r.password).await?)
        } else {
            None
        };
        let mut tx = self.store.db().begin().await.map_err(internal)?;
        self.store
            .reset_login_failures(tx.conn(), &user.user_id)
            .await
            .map_err(internal)?;
        if let Some(h) = rehash {
            self.store
                .set_password_hash(tx.conn(), &user.user_id, &h)
                .await
                .map_err(internal)?;
        }
        let memberships = self
            .store
            .memberships_of(tx.conn(), &user.user_id)
            .await
            .map_err(internal)?;
        let (token, refresh) = self.new_refresh(&mut tx, &user.user_id, None, now).await?;
        tx.commit().await.map_err(internal)?;
        tracing::info!(user_id = %user.user_id, session_id = %refresh.session_id, "logged in");
        let user_row = UserRow {
            locked_until_us: None,
            ..user
        };
        Ok(Response::new(pb::LoginResponse {
            session: Some(self.session(
                &user_row.user_id,
                user_row.person_id.as_deref(),
                &memberships,
                token,
                &refresh,
            )),
            user: Some(self.user(&user_row, &memberships)?),
        }))
    }

    async fn refresh_session(
        &self,
        req: Request<pb::RefreshSessionRequest>,
    ) -> Result<Response<pb::RefreshSessionResponse>, Status> {
        // Public: the refresh token is the credential.
        let r = req.into_inner();
        required("refresh_token", &r.refresh_token)?;
        let now = now_us();
        let old_hash = digest(&r.refresh_token);
        let mut tx = self.store.db().begin().await.map_err(internal)?;
        let Some(old) = self
            .store
            .refresh_token(tx.conn(), &old_hash)
            .await
            .map_err(internal)?
        else {
            return Err(refused());
        };
        if old.revoked_at_us.is_some() {
            if old.replaced_by.is_some() {
                // Already exchanged once: a copy is in someone else's hands.
                let n = self
                    .store
                    .revoke_session(tx.conn(), &old.session_id, now)
                    .await
                    .map_err(internal)?;
                tx.commit().await.map_err(internal)?;
                tracing::warn!(user_id = %old.user_id, session_id = %old.session_id, revoked = n, "rotated refresh token presented again: session revoked");
            }
            return Err(refused());
        }
        if old.expires_at_us <= now {
            return Err(refused());
        }
        let user = self
            .store
            .user_by_id(tx.conn(), &old.user_id)
            .await
            .map_err(internal)?;
        let Some(user) = user.filter(|u| u.status == "active") else {
            self.store
                .revoke_session(tx.conn(), &old.session_id, now)
                .await
                .map_err(internal)?;
            tx.commit().await.map_err(internal)?;
            return Err(refused());
        };
        let (token, refresh) = self
            .new_refresh(&mut tx, &user.user_id, Some(&old.session_id), now)
            .await?;
        let rotated = self
            .store
            .rotate_refresh(tx.conn(), &old_hash, &refresh.token_hash, now)
            .await
            .map_err(internal)?;
        if !rotated {
            // Another request exchanged it first: treat as reuse.
            drop(tx);
            let mut tx = self.store.db().begin().await.map_err(internal)?;
            self.store
                .revoke_session(tx.conn(), &old.session_id, now)
                .await
                .map_err(internal)?;
            tx.commit().await.map_err(internal)?;
            tracing::warn!(user_id = %old.user_id, session_id = %old.session_id, "refresh token used twice at once: session revoked");
            return Err(refused());
        }
        let memberships = self
            .store
            .memberships_of(tx.conn(), &user.user_id)
            .await
            .map_err(internal)?;
        tx.commit().await.map_err(internal)?;
        Ok(Response::new(pb::RefreshSessionResponse {
            session: Some(self.session(
                &user.user_id,
                user.person_id.as_deref(),
                &memberships,
                token,
                &refresh,
            )),
            user: Some(self.user(&user, &memberships)?),
        }))
    }

    async fn logout(
        &self,
        req: Request<pb::LogoutRequest>,
    ) -> Result<Response<pb::LogoutResponse>, Status> {
        // Public: the refresh token is the credential. An unknown token is
        // not an error: the session is over either way.
        let r = req.into_inner();
        required("refresh_token", &r.refresh_token)?;
        let now = now_us();
        let mut tx = self.store.db().begin().await.map_err(internal)?;
        if let Some(row) = self
            .store
            .refresh_token(tx.conn(), &digest(&r.refresh_token))
            .await
            .map_err(internal)?
        {
            self.store
                .revoke_session(tx.conn(), &row.session_id, now)
                .await
                .map_err(internal)?;
            tracing::info!(user_id = %row.user_id, session_id = %row.session_id, "logged out");
        }
        tx.commit().await.map_err(internal)?;
        Ok(Response::new(pb::LogoutResponse {}))
    }

    async fn get_me(
        &self,
        req: Request<pb::GetMeRequest>,
    ) -> Result<Response<pb::GetMeResponse>, Status> {
        let caller = require_role(&req, EVERYONE)?.clone();
        let account = if Uuid::parse_str(&caller.user_id).is_ok() {
            let mut h = self.store.db().acquire().await.map_err(internal)?;
            match self
                .store
                .user_by_id(h.conn(), &caller.user_id)
                .await
                .map_err(internal)?
            {
                Some(u) => {
                    let m = self
                        .store
                        .memberships_of(h.conn(), &u.user_id)
                        .await
                        .map_err(internal)?;
                    Some(self.user(&u, &m)?)
                }
                None => None,
            }
        } else {
            None
        };
        let user = match account {
            Some(u) => u,
            None => self.me_from_claims(&caller).await?,
        };
        Ok(Response::new(pb::GetMeResponse { user: Some(user) }))
    }

    async fn get_invitation(
        &self,
        req: Request<pb::GetInvitationRequest>,
    ) -> Result<Response<pb::GetInvitationResponse>, Status> {
        // Public: the code is the credential.
        let code = check_code(&req.into_inner().code)?;
        let mut h = self.store.db().acquire().await.map_err(internal)?;
        let inv = self
            .store
            .pending_invitation(h.conn(), &digest(&code), now_us())
            .await
            .map_err(internal)?
            .ok_or_else(invitation_gone)?;
        let user = self
            .store
            .user_by_id(h.conn(), &inv.user_id)
            .await
            .map_err(internal)?
            .filter(|u| u.status != "disabled")
            .ok_or_else(invitation_gone)?;
        drop(h);
        let structure_name = if inv.structure_id.is_empty() {
            String::new()
        } else {
            self.store
                .structure(&inv.structure_id)
                .await
                .map_err(internal)?
                .map(|s| s.name)
                .unwrap_or_default()
        };
        let email = self.open(&user.user_id, "email", &user.email_sealed)?;
        let mut invitation = self.invitation(&inv, email, String::new());
        invitation.person_id = user.person_id.clone().unwrap_or_default();
        Ok(Response::new(pb::GetInvitationResponse {
            invitation: Some(invitation),
            structure_name,
            password_required: user.status != "active",
        }))
    }

    async fn accept_invitation(
        &self,
        req: Request<pb::AcceptInvitationRequest>,
    ) -> Result<Response<pb::AcceptInvitationResponse>, Status> {
        // Public: the code is the credential.
        let r = req.into_inner();
        let code = check_code(&r.code)?;
        let code_hash = digest(&code);
        let now = now_us();
        let (inv, user) = {
            let mut h = self.store.db().acquire().await.map_err(internal)?;
            let inv = self
                .store
                .pending_invitation(h.conn(), &code_hash, now)
                .await
                .map_err(internal)?
                .ok_or_else(invitation_gone)?;
            let user = self
                .store
                .user_by_id(h.conn(), &inv.user_id)
                .await
                .map_err(internal)?
                .filter(|u| u.status != "disabled")
                .ok_or_else(invitation_gone)?;
            (inv, user)
        };
        let new_password = if user.status == "active" {
            // An existing account confirms the new role with its password.
            required("password", &r.password)?;
            if let Some(until) = user.locked_until_us.filter(|t| *t > now) {
                return Err(locked(until - now));
            }
            let v = password::verify(r.password, user.password_hash.clone()).await?;
            if !v.matches {
                self.count_failure(&user.user_id, now).await?;
                return Err(Status::unauthenticated(
                    "mot de passe incorrect : indiquez le mot de passe de votre compte / wrong password: enter your account's password",
                ));
            }
            None
        } else {
            let email = self.open(&user.user_id, "email", &user.email_sealed)?;
            password::check_new(&r.password, &email).map_err(field)?;
            let given = match &r.display_name {
                Some(d) => parse_display_name(d).map_err(field)?,
                None => String::new(),
            };
            let current = self.open(&user.user_id, "display_name", &user.display_name_sealed)?;
            if given.is_empty() && current.is_empty() {
                return Err(invalid_field(
                    "display_name",
                    "indiquez le nom que verront les autres / give the name others will see",
                ));
            }
            let name =
                (!given.is_empty()).then(|| self.seal(&user.user_id, "display_name", &given));
            Some((password::hash(r.password).await?, name))
        };
        let mut tx = self.store.db().begin().await.map_err(internal)?;
        if !self
            .store
            .use_invitation(tx.conn(), &code_hash, now)
            .await
            .map_err(internal)?
        {
            return Err(invitation_gone());
        }
        match &new_password {
            Some((hash, name)) => self
                .store
                .activate_user(tx.conn(), &user.user_id, hash, name.as_deref())
                .await
                .map_err(internal)?,
            None => self
                .store
                .reset_login_failures(tx.conn(), &user.user_id)
                .await
                .map_err(internal)?,
        }
        let user = self
            .store
            .user_by_id(tx.conn(), &user.user_id)
            .await
            .map_err(internal)?
            .ok_or_else(invitation_gone)?;
        let memberships = self
            .store
            .memberships_of(tx.conn(), &user.user_id)
            .await
            .map_err(internal)?;
        let (token, refresh) = self.new_refresh(&mut tx, &user.user_id, None, now).await?;
        tx.commit().await.map_err(internal)?;
        tracing::info!(user_id = %user.user_id, invitation_id = %inv.invitation_id, "invitation accepted");
        Ok(Response::new(pb::AcceptInvitationResponse {
            session: Some(self.session(
                &user.user_id,
                user.person_id.as_deref(),
                &memberships,
                token,
                &refresh,
            )),
            user: Some(self.user(&user, &memberships)?),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_start_at_the_fifth_failure_and_double_up_to_15_minutes() {
        assert_eq!(lock_for(4), None);
        assert_eq!(lock_for(5), Some(Duration::from_secs(30)));
        assert_eq!(lock_for(6), Some(Duration::from_secs(60)));
        assert_eq!(lock_for(9), Some(Duration::from_secs(480)));
        assert_eq!(lock_for(10), Some(Duration::from_secs(900)));
        assert_eq!(lock_for(1000), Some(Duration::from_secs(900)));
    }

    #[test]
    fn a_lock_states_its_wait_in_the_metadata() {
        let s = locked(29_500_000);
        assert_eq!(s.code(), tonic::Code::ResourceExhausted);
        assert!(s.message().contains("30 s"), "{}", s.message());
        assert_eq!(
            s.metadata()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()),
            Some("30")
        );
    }
}
