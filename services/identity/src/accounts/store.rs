//! Storage of accounts, memberships, refresh tokens and invitations: more
//! methods of identity's [`Store`]. Each takes a [`Conn`], so the same query
//! serves inside a transaction (`tx.conn()`) and outside (`handle.conn()`).

use eva_platform::db::{Conn, DbError};
use eva_platform::on_backend;
use eva_platform::pagination::Page;

use crate::store::Store;

/// An account as stored; e-mail and name sealed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    pub user_id: String,
    pub email_sealed: Vec<u8>,
    pub display_name_sealed: Vec<u8>,
    pub password_hash: Option<String>,
    pub status: String,
    pub failed_logins: i32,
    pub locked_until_us: Option<i64>,
    pub created_at_us: i64,
    /// For a `person` account: the person it belongs to.
    pub person_id: Option<String>,
}

/// A new account, sealed.
#[derive(Debug, Clone)]
pub struct NewUser<'a> {
    pub user_id: &'a str,
    pub email_bidx: &'a str,
    pub email_sealed: &'a [u8],
    pub display_name_sealed: &'a [u8],
    pub status: &'a str,
    pub created_at_us: i64,
}

/// A role held, with the structure's name when there is one.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MembershipRow {
    pub user_id: String,
    pub structure_id: String,
    pub structure_name: Option<String>,
    pub role: String,
    pub created_at_us: i64,
}

/// An invitation as stored; the code itself is never stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InvitationRow {
    pub code_hash: String,
    pub invitation_id: String,
    pub user_id: String,
    pub structure_id: String,
    pub role: String,
    pub expires_at_us: i64,
    pub used_at_us: Option<i64>,
    pub created_by: String,
    pub created_at_us: i64,
}

/// A refresh token as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RefreshRow {
    pub token_hash: String,
    pub session_id: String,
    pub user_id: String,
    pub expires_at_us: i64,
    pub revoked_at_us: Option<i64>,
    pub replaced_by: Option<String>,
}

const USER_COLUMNS: &str = "user_id, email_sealed, display_name_sealed, password_hash, status, \
     failed_logins, locked_until_us, created_at_us, person_id";

impl Store {
    pub async fn user_by_email(
        &self,
        conn: Conn<'_>,
        email_bidx: &str,
    ) -> Result<Option<UserRow>, DbError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE email_bidx = $1");
        Ok(
            on_backend!(conn, c => sqlx::query_as::<_, UserRow>(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(email_bidx)
            .fetch_optional(&mut *c)
            .await)?,
        )
    }

    pub async fn user_by_id(
        &self,
        conn: Conn<'_>,
        user_id: &str,
    ) -> Result<Option<UserRow>, DbError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE user_id = $1");
        Ok(
            on_backend!(conn, c => sqlx::query_as::<_, UserRow>(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(user_id)
            .fetch_optional(&mut *c)
            .await)?,
        )
    }

    /// Inserts an account; `false` when its e-mail is already known.
    pub async fn insert_user(&self, conn: Conn<'_>, u: &NewUser<'_>) -> Result<bool, DbError> {
        let n = on_backend!(conn, c => sqlx::query(
            "INSERT INTO users (user_id, email_bidx, email_sealed, display_name_sealed, status, created_at_us) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (email_bidx) DO NOTHING",
        )
        .bind(u.user_id)
        .bind(u.email_bidx)
        .bind(u.email_sealed)
        .bind(u.display_name_sealed)
        .bind(u.status)
        .bind(u.created_at_us)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// The account of a person supported, if they have one.
    pub async fn user_by_person(
        &self,
        conn: Conn<'_>,
        person_id: &str,
    ) -> Result<Option<UserRow>, DbError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE person_id = $1");
        Ok(
            on_backend!(conn, c => sqlx::query_as::<_, UserRow>(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(person_id)
            .fetch_optional(&mut *c)
            .await)?,
        )
    }

    /// Links an account to the person it belongs to.
    pub async fn set_user_person(
        &self,
        conn: Conn<'_>,
        user_id: &str,
        person_id: &str,
    ) -> Result<(), DbError> {
        on_backend!(conn, c => sqlx::query("UPDATE users SET person_id = $2 WHERE user_id = $1")
            .bind(user_id)
            .bind(person_id)
            .execute(&mut *c)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// A disabled account invited again: it sets a new password.
    pub async fn reinvite_user(&self, conn: Conn<'_>, user_id: &str) -> Result<(), DbError> {
        on_backend!(conn, c => sqlx::query(
            "UPDATE users SET status = 'invited', password_hash = NULL, failed_logins = 0, \
             locked_until_us = NULL WHERE user_id = $1",
        )
        .bind(user_id)
        .execute(&mut *c)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// Sets the first password and activates the account.
    pub async fn activate_user(
        &self,
        conn: Conn<'_>,
        user_id: &str,
        password_hash: &str,
        display_name_sealed: Option<&[u8]>,
    ) -> Result<(), DbError> {
        on_backend!(conn, c => sqlx::query(
            "UPDATE users SET status = 'active', password_hash = $2, \
             display_name_sealed = COALESCE($3, display_name_sealed), failed_logins = 0, \
             locked_until_us = NULL WHERE user_id = $1",
        )
        .bind(user_id)
        .bind(password_hash)
        .bind(display_name_sealed)
        .execute(&mut *c)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    pub async fn set_password_hash(
        &self,
        conn: Conn<'_>,
        user_id: &str,
        password_hash: &str,
    ) -> Result<(), DbError> {
        on_backend!(conn, c => sqlx::query("UPDATE users SET password_hash = $2 WHERE user_id = $1")
            .bind(user_id)
            .bind(password_hash)
            .execute(&mut *c)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    pub async fn set_status(
        &self,
        conn: Conn<'_>,
        user_id: &str,
        status: &str,
    ) -> Result<(), DbError> {
        on_backend!(conn, c => sqlx::query("UPDATE users SET status = $2 WHERE user_id = $1")
            .bind(user_id)
            .bind(status)
            .execute(&mut *c)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Counts one more failed login; returns the consecutive failures.
    pub async fn count_login_failure(&self, conn: Conn<'_>, user_id: &str) -> Result<i32, DbError> {
        let n: (i32,) = on_backend!(conn, c => sqlx::query_as(
            "UPDATE users SET failed_logins = failed_logins + 1 WHERE user_id = $1 RETURNING failed_logins",
        )
        .bind(user_id)
        .fetch_one(&mut *c)
        .await)?;
        Ok(n.0)
    }

    pub async fn lock_user(
        &self,
        conn: Conn<'_>,
        user_id: &str,
        until_us: i64,
    ) -> Result<(), DbError> {
        on_backend!(conn, c => sqlx::query("UPDATE users SET locked_until_us = $2 WHERE user_id = $1")
            .bind(user_id)
            .bind(until_us)
            .execute(&mut *c)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    pub async fn reset_login_failures(&self, conn: Conn<'_>, user_id: &str) -> Result<(), DbError> {
        on_backend!(conn, c => sqlx::query(
            "UPDATE users SET failed_logins = 0, locked_until_us = NULL \
             WHERE user_id = $1 AND (failed_logins <> 0 OR locked_until_us IS NOT NULL)",
        )
        .bind(user_id)
        .execute(&mut *c)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// Every role the account holds, with structure names.
    pub async fn memberships_of(
        &self,
        conn: Conn<'_>,
        user_id: &str,
    ) -> Result<Vec<MembershipRow>, DbError> {
        Ok(on_backend!(conn, c => sqlx::query_as::<_, MembershipRow>(
            "SELECT m.user_id, m.structure_id, s.name AS structure_name, m.role, m.created_at_us \
             FROM memberships m LEFT JOIN structures s ON s.structure_id = m.structure_id \
             WHERE m.user_id = $1 ORDER BY m.structure_id, m.role",
        )
        .bind(user_id)
        .fetch_all(&mut *c)
        .await)?)
    }

    /// Gives a role; `false` when the account already held it.
    pub async fn insert_membership(
        &self,
        conn: Conn<'_>,
        user_id: &str,
        structure_id: &str,
        role: &str,
        now_us: i64,
    ) -> Result<bool, DbError> {
        let n = on_backend!(conn, c => sqlx::query(
            "INSERT INTO memberships (user_id, structure_id, role, created_at_us) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (user_id, structure_id, role) DO NOTHING",
        )
        .bind(user_id)
        .bind(structure_id)
        .bind(role)
        .bind(now_us)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// The roles an account holds in one structure.
    pub async fn roles_in(
        &self,
        conn: Conn<'_>,
        user_id: &str,
        structure_id: &str,
    ) -> Result<Vec<String>, DbError> {
        let rows: Vec<(String,)> = on_backend!(conn, c => sqlx::query_as(
            "SELECT role FROM memberships WHERE user_id = $1 AND structure_id = $2 ORDER BY role",
        )
        .bind(user_id)
        .bind(structure_id)
        .fetch_all(&mut *c)
        .await)?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// Removes every role of the account in the structure.
    pub async fn delete_memberships(
        &self,
        conn: Conn<'_>,
        user_id: &str,
        structure_id: &str,
    ) -> Result<u64, DbError> {
        Ok(on_backend!(conn, c => sqlx::query(
            "DELETE FROM memberships WHERE user_id = $1 AND structure_id = $2",
        )
        .bind(user_id)
        .bind(structure_id)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?)
    }

    /// Takes one role of the account in the structure away.
    pub async fn delete_membership(
        &self,
        conn: Conn<'_>,
        user_id: &str,
        structure_id: &str,
        role: &str,
    ) -> Result<u64, DbError> {
        Ok(on_backend!(conn, c => sqlx::query(
            "DELETE FROM memberships WHERE user_id = $1 AND structure_id = $2 AND role = $3",
        )
        .bind(user_id)
        .bind(structure_id)
        .bind(role)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?)
    }

    /// Accounts holding `role` in the structure.
    pub async fn count_role(
        &self,
        conn: Conn<'_>,
        structure_id: &str,
        role: &str,
    ) -> Result<i64, DbError> {
        let n: (i64,) = on_backend!(conn, c => sqlx::query_as(
            "SELECT COUNT(*) FROM memberships WHERE structure_id = $1 AND role = $2",
        )
        .bind(structure_id)
        .bind(role)
        .fetch_one(&mut *c)
        .await)?;
        Ok(n.0)
    }

    pub async fn count_memberships(&self, conn: Conn<'_>, user_id: &str) -> Result<i64, DbError> {
        let n: (i64,) = on_backend!(conn, c => sqlx::query_as(
            "SELECT COUNT(*) FROM memberships WHERE user_id = $1",
        )
        .bind(user_id)
        .fetch_one(&mut *c)
        .await)?;
        Ok(n.0)
    }

    /// A page of a structure's members in id order: each account with its
    /// roles there, and the next page's token.
    pub async fn members_page(
        &self,
        conn: Conn<'_>,
        structure_id: &str,
        page: &Page,
    ) -> Result<(Vec<(UserRow, Vec<MembershipRow>)>, String), DbError> {
        let (users, roles) = on_backend!(conn, c => {
            let ids: Vec<(String,)> = sqlx::query_as(
                "SELECT DISTINCT user_id FROM memberships WHERE structure_id = $1 \
                 AND ($2 IS NULL OR user_id > $2) ORDER BY user_id LIMIT $3",
            )
            .bind(structure_id)
            .bind(page.after.as_deref())
            .bind(page.fetch_limit())
            .fetch_all(&mut *c)
            .await?;
            match (ids.first(), ids.last()) {
                // The page's members are exactly those between its first and last id.
                (Some((first,)), Some((last,))) => {
                    let users = sqlx::query_as::<_, UserRow>(sqlx::AssertSqlSafe(format!(
                        "SELECT {USER_COLUMNS} FROM users WHERE user_id IN \
                         (SELECT user_id FROM memberships WHERE structure_id = $1) \
                         AND user_id >= $2 AND user_id <= $3 ORDER BY user_id"
                    )))
                    .bind(structure_id)
                    .bind(first)
                    .bind(last)
                    .fetch_all(&mut *c)
                    .await?;
                    let roles = sqlx::query_as::<_, MembershipRow>(
                        "SELECT m.user_id, m.structure_id, s.name AS structure_name, m.role, \
                         m.created_at_us FROM memberships m \
                         LEFT JOIN structures s ON s.structure_id = m.structure_id \
                         WHERE m.structure_id = $1 AND m.user_id >= $2 AND m.user_id <= $3 \
                         ORDER BY m.user_id, m.role",
                    )
                    .bind(structure_id)
                    .bind(first)
                    .bind(last)
                    .fetch_all(&mut *c)
                    .await?;
                    (users, roles)
                }
                _ => (Vec::new(), Vec::new()),
            }
        });
        let mut out: Vec<(UserRow, Vec<MembershipRow>)> =
            users.into_iter().map(|u| (u, Vec::new())).collect();
        for r in roles {
            if let Some((_, list)) = out.iter_mut().find(|(u, _)| u.user_id == r.user_id) {
                list.push(r);
            }
        }
        Ok(page.finish(out, |(u, _)| u.user_id.clone()))
    }

    pub async fn insert_invitation(
        &self,
        conn: Conn<'_>,
        i: &InvitationRow,
    ) -> Result<(), DbError> {
        on_backend!(conn, c => sqlx::query(
            "INSERT INTO invitations (code_hash, invitation_id, user_id, structure_id, role, \
             expires_at_us, used_at_us, created_by, created_at_us) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&i.code_hash)
        .bind(&i.invitation_id)
        .bind(&i.user_id)
        .bind(&i.structure_id)
        .bind(&i.role)
        .bind(i.expires_at_us)
        .bind(i.used_at_us)
        .bind(&i.created_by)
        .bind(i.created_at_us)
        .execute(&mut *c)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// The invitation of a code, if it is unused and not expired.
    pub async fn pending_invitation(
        &self,
        conn: Conn<'_>,
        code_hash: &str,
        now_us: i64,
    ) -> Result<Option<InvitationRow>, DbError> {
        Ok(on_backend!(conn, c => sqlx::query_as::<_, InvitationRow>(
            "SELECT code_hash, invitation_id, user_id, structure_id, role, expires_at_us, used_at_us, \
             created_by, created_at_us FROM invitations \
             WHERE code_hash = $1 AND used_at_us IS NULL AND expires_at_us > $2",
        )
        .bind(code_hash)
        .bind(now_us)
        .fetch_optional(&mut *c)
        .await)?)
    }

    /// Marks a pending code used; `false` when it was not pending any more.
    pub async fn use_invitation(
        &self,
        conn: Conn<'_>,
        code_hash: &str,
        now_us: i64,
    ) -> Result<bool, DbError> {
        let n = on_backend!(conn, c => sqlx::query(
            "UPDATE invitations SET used_at_us = $2 \
             WHERE code_hash = $1 AND used_at_us IS NULL AND expires_at_us > $2",
        )
        .bind(code_hash)
        .bind(now_us)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// Ends the pending codes of an account in a structure.
    pub async fn expire_invitations(
        &self,
        conn: Conn<'_>,
        user_id: &str,
        structure_id: &str,
        now_us: i64,
    ) -> Result<(), DbError> {
        on_backend!(conn, c => sqlx::query(
            "UPDATE invitations SET expires_at_us = $3 \
             WHERE user_id = $1 AND structure_id = $2 AND used_at_us IS NULL AND expires_at_us > $3",
        )
        .bind(user_id)
        .bind(structure_id)
        .bind(now_us)
        .execute(&mut *c)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// Points the account's pending invitations to the structure at `role`
    /// (what the invitation page tells): the code stays the same.
    pub async fn retarget_invitations(
        &self,
        conn: Conn<'_>,
        user_id: &str,
        structure_id: &str,
        role: &str,
        now_us: i64,
    ) -> Result<(), DbError> {
        on_backend!(conn, c => sqlx::query(
            "UPDATE invitations SET role = $3 \
             WHERE user_id = $1 AND structure_id = $2 AND used_at_us IS NULL AND expires_at_us > $4",
        )
        .bind(user_id)
        .bind(structure_id)
        .bind(role)
        .bind(now_us)
        .execute(&mut *c)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// Stores a new refresh token, and drops the account's expired ones.
    pub async fn insert_refresh(
        &self,
        conn: Conn<'_>,
        r: &RefreshRow,
        now_us: i64,
    ) -> Result<(), DbError> {
        on_backend!(conn, c => {
            sqlx::query("DELETE FROM refresh_tokens WHERE user_id = $1 AND expires_at_us < $2")
                .bind(&r.user_id)
                .bind(now_us)
                .execute(&mut *c)
                .await?;
            sqlx::query(
                "INSERT INTO refresh_tokens (token_hash, session_id, user_id, expires_at_us, created_at_us) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&r.token_hash)
            .bind(&r.session_id)
            .bind(&r.user_id)
            .bind(r.expires_at_us)
            .bind(now_us)
            .execute(&mut *c)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }

    pub async fn refresh_token(
        &self,
        conn: Conn<'_>,
        token_hash: &str,
    ) -> Result<Option<RefreshRow>, DbError> {
        Ok(on_backend!(conn, c => sqlx::query_as::<_, RefreshRow>(
            "SELECT token_hash, session_id, user_id, expires_at_us, revoked_at_us, replaced_by \
             FROM refresh_tokens WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&mut *c)
        .await)?)
    }

    /// Revokes a live token in favour of its successor; `false` when it was
    /// no longer live (someone else rotated it first).
    pub async fn rotate_refresh(
        &self,
        conn: Conn<'_>,
        old_hash: &str,
        new_hash: &str,
        now_us: i64,
    ) -> Result<bool, DbError> {
        let n = on_backend!(conn, c => sqlx::query(
            "UPDATE refresh_tokens SET revoked_at_us = $3, replaced_by = $2 \
             WHERE token_hash = $1 AND revoked_at_us IS NULL",
        )
        .bind(old_hash)
        .bind(new_hash)
        .bind(now_us)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// Revokes every live token of a session.
    pub async fn revoke_session(
        &self,
        conn: Conn<'_>,
        session_id: &str,
        now_us: i64,
    ) -> Result<u64, DbError> {
        Ok(on_backend!(conn, c => sqlx::query(
            "UPDATE refresh_tokens SET revoked_at_us = $2 WHERE session_id = $1 AND revoked_at_us IS NULL",
        )
        .bind(session_id)
        .bind(now_us)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?)
    }

    /// Revokes every live token of an account: all its sessions end.
    pub async fn revoke_user_sessions(
        &self,
        conn: Conn<'_>,
        user_id: &str,
        now_us: i64,
    ) -> Result<u64, DbError> {
        Ok(on_backend!(conn, c => sqlx::query(
            "UPDATE refresh_tokens SET revoked_at_us = $2 WHERE user_id = $1 AND revoked_at_us IS NULL",
        )
        .bind(user_id)
        .bind(now_us)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?)
    }
}
