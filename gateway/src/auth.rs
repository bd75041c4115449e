//! `/auth/login`, `/auth/refresh`, `/auth/logout`, `/me`, `/invitations/{code}`
//! and `/auth/invitations/accept`: sessions and invitations. Every answer that
//! carries a token or a code is marked `Cache-Control: no-store`.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use eva_proto::identity::v1 as pb;
use eva_proto::identity::v1::session_service_client::SessionServiceClient;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::statistics::rfc3339;
use crate::{AppState, Problem};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(me))
        .routes(routes!(invitation))
        .routes(routes!(accept))
}

const TAG: &str = "Sessions";

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    pub email: String,
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshBody {
    pub refresh_token: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptBody {
    /// The invitation's one-time code.
    pub code: String,
    /// A new account's password: 12 to 128 characters, not one character
    /// repeated, not the e-mail. For an existing account (`password_required`
    /// false), its current password.
    pub password: String,
    /// The name shown to others; required when the inviter gave none.
    #[serde(default)]
    pub display_name: Option<String>,
}

/// A structure the caller belongs to, with the roles held there.
#[derive(Debug, Serialize, ToSchema)]
pub struct StructureRoles {
    pub id: String,
    pub name: String,
    /// `counselor`, `structure_admin`, `partner`, `analyst`
    pub roles: Vec<String>,
}

/// The caller: `GET /me`, and the `user` of every session.
#[derive(Debug, Serialize, ToSchema)]
pub struct MeJson {
    pub user_id: String,
    pub email: String,
    pub display_name: String,
    /// `invited`, `active`, `locked`, `disabled`
    pub status: String,
    /// Every role held, once each: `person`, `counselor`, `structure_admin`,
    /// `partner`, `analyst`, `operator`.
    pub roles: Vec<String>,
    pub structures: Vec<StructureRoles>,
    /// The person's own file, for an account with the role `person`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub person_id: Option<String>,
}

/// A session: OAuth 2-like token answer plus the caller.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionJson {
    /// JWT, sent as `Authorization: Bearer …`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds the access token stays valid.
    pub expires_in: i64,
    /// For `POST /auth/refresh` and `POST /auth/logout`.
    pub refresh_token: String,
    pub refresh_token_expires_at: Option<String>,
    pub user: MeJson,
}

/// What an invitation code is for.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationInfo {
    pub invitation_id: String,
    /// Absent for an operator's invitation.
    pub structure: Option<StructureRef>,
    /// `person`, `counselor`, `structure_admin`, `partner`, `analyst`, `operator`
    pub role: String,
    pub email: String,
    pub expires_at: Option<String>,
    /// True: accepting sets the first password; false: the account exists and
    /// accepting asks for its password.
    pub password_required: bool,
}

/// A structure named.
#[derive(Debug, Serialize, ToSchema)]
pub struct StructureRef {
    pub id: String,
    pub name: String,
}

/// The request path as logs may show it: an invitation code is a secret, so
/// `/invitations/<code>` is logged as `/invitations/{code}`.
pub fn loggable_path(path: &str) -> &str {
    match path.strip_prefix("/api/v1/invitations/") {
        Some(code) if !code.is_empty() => "/api/v1/invitations/{code}",
        _ => path,
    }
}

/// `counselor`, `structure_admin`, …
pub fn role_to_json(role: i32) -> String {
    pb::Role::try_from(role)
        .map(|r| r.as_str_name().trim_start_matches("ROLE_").to_lowercase())
        .unwrap_or_else(|_| "unspecified".into())
}

pub fn role_from_json(field: &str, s: &str) -> Result<pb::Role, Problem> {
    pb::Role::from_str_name(&format!("ROLE_{}", s.trim().to_uppercase()))
        .filter(|r| *r != pb::Role::Unspecified)
        .ok_or_else(|| {
            Problem::invalid(
                field,
                format!(
                    "rôle inconnu « {s} » ; attendu : counselor, structure_admin, partner, analyst / unknown role"
                ),
            )
        })
}

pub fn status_to_json(status: i32) -> String {
    pb::UserStatus::try_from(status)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("USER_STATUS_")
                .to_lowercase()
        })
        .unwrap_or_else(|_| "unspecified".into())
}

impl From<pb::User> for MeJson {
    fn from(u: pb::User) -> Self {
        let mut roles: Vec<String> = Vec::new();
        let mut structures: Vec<StructureRoles> = Vec::new();
        for m in u.memberships {
            let role = role_to_json(m.role);
            if !roles.contains(&role) {
                roles.push(role.clone());
            }
            if m.structure_id.is_empty() {
                continue;
            }
            match structures.iter_mut().find(|s| s.id == m.structure_id) {
                Some(s) => s.roles.push(role),
                None => structures.push(StructureRoles {
                    id: m.structure_id,
                    name: m.structure_name,
                    roles: vec![role],
                }),
            }
        }
        Self {
            user_id: u.user_id,
            email: u.email,
            display_name: u.display_name,
            status: status_to_json(u.status),
            roles,
            structures,
            person_id: Some(u.person_id).filter(|p| !p.is_empty()),
        }
    }
}

fn session_json(
    session: Option<pb::Session>,
    user: Option<pb::User>,
) -> Result<SessionJson, Problem> {
    let (Some(s), Some(u)) = (session, user) else {
        return Err(crate::json::empty_answer());
    };
    Ok(SessionJson {
        access_token: s.access_token,
        token_type: "Bearer",
        expires_in: s.expires_in,
        refresh_token: s.refresh_token,
        refresh_token_expires_at: s.refresh_token_expires_at.as_ref().map(rfc3339),
        user: u.into(),
    })
}

/// A JSON answer no cache may keep: it holds a token or a code.
pub fn no_store<T: Serialize>(status: StatusCode, body: T) -> Response {
    let mut res = (status, Json(body)).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

fn client(state: &AppState) -> SessionServiceClient<tonic::transport::Channel> {
    SessionServiceClient::new(state.upstreams.identity.clone())
}

/// Se connecter / Log in
///
/// Répond le jeton d'accès, le jeton de renouvellement et l'appelant
/// (`Cache-Control: no-store`). / Answers the access token, the refresh token and
/// the caller (`Cache-Control: no-store`).
#[utoipa::path(post, path = "/auth/login", tag = TAG, security(()), request_body = LoginBody,
    responses((status = 200, description = "La session / The session", body = SessionJson)))]
async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<LoginBody>, JsonRejection>,
) -> Result<Response, Problem> {
    let Json(body) = body?;
    let req = state.upstreams.request(
        &headers,
        pb::LoginRequest {
            email: body.email,
            password: body.password,
        },
    );
    let r = client(&state).login(req).await?.into_inner();
    Ok(no_store(StatusCode::OK, session_json(r.session, r.user)?))
}

/// Renouveler la session / Refresh the session
///
/// Le jeton de renouvellement sert une fois : la réponse en donne un nouveau. / The
/// refresh token is used once: the answer carries a new one.
#[utoipa::path(post, path = "/auth/refresh", tag = TAG, security(()), request_body = RefreshBody,
    responses((status = 200, description = "La nouvelle session / The new session", body = SessionJson)))]
async fn refresh(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<RefreshBody>, JsonRejection>,
) -> Result<Response, Problem> {
    let Json(body) = body?;
    let req = state.upstreams.request(
        &headers,
        pb::RefreshSessionRequest {
            refresh_token: body.refresh_token,
        },
    );
    let r = client(&state).refresh_session(req).await?.into_inner();
    Ok(no_store(StatusCode::OK, session_json(r.session, r.user)?))
}

/// Se déconnecter / Log out
#[utoipa::path(post, path = "/auth/logout", tag = TAG, security(()), request_body = RefreshBody,
    responses((status = 204, description = "Session fermée / Session ended")))]
async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<RefreshBody>, JsonRejection>,
) -> Result<StatusCode, Problem> {
    let Json(body) = body?;
    let req = state.upstreams.request(
        &headers,
        pb::LogoutRequest {
            refresh_token: body.refresh_token,
        },
    );
    client(&state).logout(req).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// L'appelant / The caller
///
/// Son compte, ses rôles et ses structures. / Their account, roles and structures.
#[utoipa::path(get, path = "/me", tag = TAG,
    responses((status = 200, description = "L'appelant / The caller", body = MeJson)))]
async fn me(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<MeJson>, Problem> {
    let req = state.upstreams.request(&headers, pb::GetMeRequest {});
    let r = client(&state).get_me(req).await?.into_inner();
    r.user
        .map(|u| Json(u.into()))
        .ok_or_else(crate::json::empty_answer)
}

/// Lire une invitation / Read an invitation
///
/// Pour quoi vaut un code d'invitation, avant de l'accepter. / What an invitation code
/// is for, before accepting it.
#[utoipa::path(get, path = "/invitations/{code}", tag = TAG, security(()),
    params(("code" = String, Path, description = "Le code d'invitation / the invitation code")),
    responses((status = 200, description = "L'invitation / The invitation", body = InvitationInfo)))]
async fn invitation(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(code): Path<String>,
) -> Result<Response, Problem> {
    let req = state
        .upstreams
        .request(&headers, pb::GetInvitationRequest { code });
    let r = client(&state).get_invitation(req).await?.into_inner();
    let inv = r.invitation.ok_or_else(crate::json::empty_answer)?;
    let structure = (!inv.structure_id.is_empty()).then(|| StructureRef {
        id: inv.structure_id.clone(),
        name: r.structure_name,
    });
    Ok(no_store(
        StatusCode::OK,
        InvitationInfo {
            invitation_id: inv.invitation_id,
            structure,
            role: role_to_json(inv.role),
            email: inv.email,
            expires_at: inv.expires_at.as_ref().map(rfc3339),
            password_required: r.password_required,
        },
    ))
}

/// Accepter une invitation / Accept an invitation
///
/// Fixe le mot de passe d'un nouveau compte (ou demande celui du compte existant) et
/// ouvre une session. / Sets a new account's password (or asks for the existing
/// account's) and opens a session.
#[utoipa::path(post, path = "/auth/invitations/accept", tag = TAG, security(()), request_body = AcceptBody,
    responses((status = 200, description = "La session / The session", body = SessionJson)))]
async fn accept(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<AcceptBody>, JsonRejection>,
) -> Result<Response, Problem> {
    let Json(body) = body?;
    let req = state.upstreams.request(
        &headers,
        pb::AcceptInvitationRequest {
            code: body.code,
            password: body.password,
            display_name: body.display_name,
        },
    );
    let r = client(&state).accept_invitation(req).await?.into_inner();
    Ok(no_store(StatusCode::OK, session_json(r.session, r.user)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invitation_codes_stay_out_of_logged_paths() {
        assert_eq!(
            loggable_path("/api/v1/invitations/ABCDEFGH"),
            "/api/v1/invitations/{code}"
        );
        assert_eq!(loggable_path("/api/v1/me"), "/api/v1/me");
    }

    #[test]
    fn roles_and_statuses_read_as_lowercase_words() {
        assert_eq!(
            role_to_json(pb::Role::StructureAdmin as i32),
            "structure_admin"
        );
        assert_eq!(
            role_from_json("role", "counselor").ok(),
            Some(pb::Role::Counselor)
        );
        assert!(role_from_json("role", "unspecified").is_err());
        assert!(role_from_json("role", "martian").is_err());
        assert_eq!(status_to_json(pb::UserStatus::Invited as i32), "invited");
    }
}
