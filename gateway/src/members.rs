//! `/structures/{id}/members`: a structure's accounts. Adding a member creates
//! the account (or gives an existing one the role) and answers its one-time
//! invitation code.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use eva_proto::identity::v1 as pb;
use eva_proto::identity::v1::member_service_client::MemberServiceClient;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{no_store, role_from_json, role_to_json, status_to_json};
use crate::json::{PageQuery, non_empty, when};
use crate::structures::Page;
use crate::{AppState, Problem};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, add))
        .routes(routes!(remove, set_roles))
}

const TAG: &str = "Membres";

const STRUCTURE: &str = "La structure (UUIDv7) / the structure";

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMemberBody {
    pub email: String,
    #[serde(default)]
    pub display_name: String,
    /// `counselor`, `structure_admin`, `partner`, `analyst`
    pub role: String,
}

/// The roles a member holds in the structure afterwards.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberRolesBody {
    /// At least one; each allowed for the structure's kind: `counselor` or
    /// `structure_admin` (associations), `partner` or `structure_admin` (partners),
    /// `analyst` or `structure_admin` (département).
    pub roles: Vec<String>,
}

/// A member of a structure, with the roles held there.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberJson {
    pub user_id: String,
    pub email: String,
    pub display_name: String,
    /// `invited`, `active`, `locked`, `disabled`
    pub status: String,
    /// `counselor`, `structure_admin`, `partner`, `analyst`
    pub roles: Vec<String>,
    /// When the member got their first role here.
    pub since: Option<String>,
}

/// An invitation as created: its code is shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationJson {
    pub invitation_id: String,
    /// The one-time code, for `POST /auth/invitations/accept`.
    pub code: String,
    pub structure_id: String,
    /// `counselor`, `structure_admin`, `partner`, `analyst`
    pub role: String,
    pub expires_at: Option<String>,
}

/// The member and their invitation.
#[derive(Debug, Serialize, ToSchema)]
pub struct AddedMember {
    pub member: MemberJson,
    pub invitation: InvitationJson,
}

impl From<pb::User> for MemberJson {
    fn from(u: pb::User) -> Self {
        let since = u
            .memberships
            .iter()
            .filter_map(|m| m.since)
            .min_by_key(|t| (t.seconds, t.nanos));
        Self {
            user_id: u.user_id,
            email: u.email,
            display_name: u.display_name,
            status: status_to_json(u.status),
            roles: u.memberships.iter().map(|m| role_to_json(m.role)).collect(),
            since: when(since),
        }
    }
}

fn client(state: &AppState) -> MemberServiceClient<tonic::transport::Channel> {
    MemberServiceClient::new(state.upstreams.identity.clone())
}

/// Les membres d'une structure / A structure's members
#[utoipa::path(get, path = "/structures/{id}/members", tag = TAG,
    params(("id" = String, Path, description = STRUCTURE), PageQuery),
    responses((status = 200, description = "Une page / One page", body = Page<MemberJson>)))]
async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<Page<MemberJson>>, Problem> {
    let Query(q) = query?;
    let req = state.upstreams.request(
        &headers,
        pb::ListMembersRequest {
            page_size: q.page_size,
            page_token: q.page_token,
            structure_id: id,
        },
    );
    let r = client(&state).list_members(req).await?.into_inner();
    Ok(Json(Page {
        items: r.members.into_iter().map(Into::into).collect(),
        next_page_token: non_empty(r.next_page_token),
    }))
}

/// Ajouter un membre / Add a member
///
/// Crée le compte (ou donne le rôle à un compte existant) et répond le code
/// d'invitation, montré cette seule fois (`Cache-Control: no-store`). / Creates the
/// account (or gives an existing one the role) and answers the invitation code, shown
/// this once (`Cache-Control: no-store`).
#[utoipa::path(post, path = "/structures/{id}/members", tag = TAG,
    params(("id" = String, Path, description = STRUCTURE)),
    request_body = AddMemberBody,
    responses((status = 201, description = "Le membre et son invitation / The member and their invitation", body = AddedMember),
        (status = 409, description = "Cette adresse a déjà ce rôle ici / This e-mail already holds this role here", body = Problem, content_type = "application/problem+json")))]
async fn add(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<AddMemberBody>, JsonRejection>,
) -> Result<Response, Problem> {
    let Json(body) = body?;
    let role = role_from_json("role", &body.role)?;
    let req = state.upstreams.request(
        &headers,
        pb::AddMemberRequest {
            structure_id: id,
            email: body.email,
            display_name: body.display_name,
            role: role as i32,
        },
    );
    let r = client(&state).add_member(req).await?.into_inner();
    let (Some(user), Some(inv)) = (r.user, r.invitation) else {
        return Err(crate::json::empty_answer());
    };
    Ok(no_store(
        StatusCode::CREATED,
        AddedMember {
            member: user.into(),
            invitation: InvitationJson {
                invitation_id: inv.invitation_id,
                code: inv.code,
                structure_id: inv.structure_id,
                role: role_to_json(inv.role),
                expires_at: when(inv.expires_at),
            },
        },
    ))
}

/// Retirer un membre / Remove a member
///
/// Ses sessions prennent fin ; un compte sans plus aucune structure est désactivé. /
/// Their sessions end; an account left with no structure is disabled.
#[utoipa::path(delete, path = "/structures/{id}/members/{user_id}", tag = TAG,
    params(("id" = String, Path, description = STRUCTURE),
        ("user_id" = String, Path, description = "Le compte (UUIDv7) / the account")),
    responses((status = 204, description = "Retiré / Removed"),
        (status = 409, description = "Le dernier administrateur ne peut partir / The last administrator cannot leave", body = Problem, content_type = "application/problem+json")))]
async fn remove(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, user_id)): Path<(String, String)>,
) -> Result<StatusCode, Problem> {
    let req = state.upstreams.request(
        &headers,
        pb::RemoveMemberRequest {
            structure_id: id,
            user_id,
        },
    );
    client(&state).remove_member(req).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Changer les rôles d'un membre / Change a member's roles
///
/// Remplace les rôles du membre dans la structure ; son compte, son mot de passe et
/// son appartenance restent. Un rôle retiré met fin à ses sessions (il se reconnecte
/// avec le même mot de passe). Le dernier administrateur garde son rôle (409). Réservé
/// aux administrateurs de la structure et aux opérateurs. / Replaces the member's roles
/// in the structure; the account, its password and the membership stay. A role taken
/// away ends the member's sessions (they log in again with the same password). The last
/// administrator keeps the role (409). Structure admins and operators only.
#[utoipa::path(patch, path = "/structures/{id}/members/{user_id}", tag = TAG,
    params(("id" = String, Path, description = STRUCTURE),
        ("user_id" = String, Path, description = "Le compte (UUIDv7) / the account")),
    request_body = MemberRolesBody,
    responses((status = 200, description = "Le membre et ses rôles ici / The member and their roles here", body = MemberJson),
        (status = 409, description = "Le dernier administrateur garde son rôle / The last administrator keeps the role", body = Problem, content_type = "application/problem+json")))]
async fn set_roles(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, user_id)): Path<(String, String)>,
    body: Result<Json<MemberRolesBody>, JsonRejection>,
) -> Result<Json<MemberJson>, Problem> {
    let Json(body) = body?;
    let roles = body
        .roles
        .iter()
        .map(|r| role_from_json("roles", r).map(|r| r as i32))
        .collect::<Result<Vec<_>, _>>()?;
    let req = state.upstreams.request(
        &headers,
        pb::SetMemberRolesRequest {
            structure_id: id,
            user_id,
            roles,
        },
    );
    let r = client(&state).set_member_roles(req).await?.into_inner();
    let user = r.user.ok_or_else(crate::json::empty_answer)?;
    Ok(Json(user.into()))
}
