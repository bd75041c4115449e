//! Sessions: a short-lived signed access token, and a refresh token that is
//! random, stored hashed, single use (each refresh rotates it) and revocable.
//! Presenting a refresh token that was already rotated means it was copied:
//! the whole session is revoked.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use eva_platform::auth::{Role, TokenSigner};
use eva_platform::db::{Tx, to_timestamp};
use eva_proto::identity::v1 as pb;
use rand::RngCore;
use sha2::{Digest, Sha256};
use tonic::Status;
use uuid::Uuid;

use super::Accounts;
use super::store::{MembershipRow, RefreshRow};
use crate::IdentityError;

/// How long a refresh token stays usable if it is not used.
pub const REFRESH_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// SHA-256 hex: how refresh tokens and invitation codes are stored.
pub fn digest(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// 32 random bytes, base64url.
pub fn new_refresh_token() -> String {
    let mut raw = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    URL_SAFE_NO_PAD.encode(raw)
}

/// Roles and structures for the token's claims, from the account's memberships.
pub fn claims_of(memberships: &[MembershipRow]) -> (Vec<Role>, Vec<String>) {
    let mut roles: Vec<Role> = Vec::new();
    let mut structures: Vec<String> = Vec::new();
    for m in memberships {
        if let Some(r) = Role::parse(&m.role)
            && !roles.contains(&r)
        {
            roles.push(r);
        }
        if !m.structure_id.is_empty() && !structures.contains(&m.structure_id) {
            structures.push(m.structure_id.clone());
        }
    }
    (roles, structures)
}

/// Why a refresh token was refused; every case answers the same to the caller.
pub fn refused() -> Status {
    Status::unauthenticated(
        "session expirée ou révoquée : reconnectez-vous / session expired or revoked: please log in again",
    )
}

impl Accounts {
    /// A signed access token for the account, and its lifetime; a person's
    /// own account carries its `person_id`.
    pub fn access_token(
        &self,
        user_id: &str,
        person_id: Option<&str>,
        memberships: &[MembershipRow],
    ) -> (String, i64) {
        let (roles, structures) = claims_of(memberships);
        let mut claims = TokenSigner::claims(
            &self.issuer,
            &self.audience,
            user_id,
            roles,
            structures,
            self.access_ttl,
        );
        claims.person_id = person_id.map(str::to_owned);
        (self.signer.sign(&claims), claims.exp)
    }

    /// Stores a new refresh token in `session_id` (a new session when
    /// `None`), in `tx`; returns the token and its row.
    pub async fn new_refresh(
        &self,
        tx: &mut Tx,
        user_id: &str,
        session_id: Option<&str>,
        now_us: i64,
    ) -> Result<(String, RefreshRow), IdentityError> {
        let token = new_refresh_token();
        let row = RefreshRow {
            token_hash: digest(&token),
            session_id: session_id
                .map(str::to_owned)
                .unwrap_or_else(|| Uuid::now_v7().to_string()),
            user_id: user_id.to_owned(),
            expires_at_us: now_us + REFRESH_TTL.as_micros() as i64,
            revoked_at_us: None,
            replaced_by: None,
        };
        self.store.insert_refresh(tx.conn(), &row, now_us).await?;
        Ok((token, row))
    }

    /// The session answer: a fresh access token beside the refresh token.
    pub fn session(
        &self,
        user_id: &str,
        person_id: Option<&str>,
        memberships: &[MembershipRow],
        refresh_token: String,
        refresh: &RefreshRow,
    ) -> pb::Session {
        let (access_token, exp) = self.access_token(user_id, person_id, memberships);
        pb::Session {
            access_token,
            access_token_expires_at: Some(prost_types::Timestamp {
                seconds: exp,
                nanos: 0,
            }),
            refresh_token,
            refresh_token_expires_at: Some(to_timestamp(refresh.expires_at_us)),
            expires_in: self.access_ttl.as_secs() as i64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_stored_as_digests() {
        let a = new_refresh_token();
        assert_eq!(a.len(), 43);
        assert_ne!(a, new_refresh_token());
        assert_eq!(
            digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn claims_list_each_role_and_structure_once() {
        let m = |s: &str, r: &str| MembershipRow {
            user_id: "u".into(),
            structure_id: s.into(),
            structure_name: None,
            role: r.into(),
            created_at_us: 0,
        };
        let (roles, structures) = claims_of(&[
            m("", "operator"),
            m("a", "counselor"),
            m("a", "structure_admin"),
            m("b", "counselor"),
        ]);
        assert_eq!(
            roles,
            vec![Role::Operator, Role::Counselor, Role::StructureAdmin]
        );
        assert_eq!(structures, vec!["a".to_owned(), "b".to_owned()]);
    }
}
