//! `/community/spaces` (and joining, leaving, member roles),
//! `/community/questions` (asking, following, answering),
//! `/community/answers/{id}` (editing, votes, accepting, certifying) and
//! `/community/solutions` (the solution library and its feedback). Codes:
//! space kinds `territory`, `theme`, `structure`; roles `member`,
//! `moderator`; statuses `published`, `hidden`.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use eva_proto::community::v1 as pb;
use eva_proto::community::v1::question_service_client::QuestionServiceClient;
use eva_proto::community::v1::solution_service_client::SolutionServiceClient;
use eva_proto::community::v1::space_service_client::SpaceServiceClient;
use serde::{Deserialize, Serialize};
use tonic::transport::Channel;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::json::{PageQuery, code, empty_answer, non_empty, when};
use crate::structures::Page;
use crate::{AppState, Problem};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_spaces, create_space))
        .routes(routes!(get_space))
        .routes(routes!(join_space))
        .routes(routes!(leave_space))
        .routes(routes!(set_space_role))
        .routes(routes!(list_space_members))
        .routes(routes!(list_questions, create_question))
        .routes(routes!(get_question, update_question))
        .routes(routes!(follow_question, unfollow_question))
        .routes(routes!(list_answers, create_answer))
        .routes(routes!(update_answer))
        .routes(routes!(vote_answer))
        .routes(routes!(accept_answer))
        .routes(routes!(certify_answer))
        .routes(routes!(list_solutions, create_solution))
        .routes(routes!(get_solution, update_solution))
        .routes(routes!(solution_feedback))
}

const SPACES: &str = "Espaces";
const QUESTIONS: &str = "Questions";
const SOLUTIONS: &str = "Solutions";

/// The 409 of every post screened before it is stored.
const SCREENED: &str = "Le texte semble contenir des données personnelles d'une personne \
    accompagnée ; `errors` nomme le champ, anonymisez-le / The text seems to contain personal \
    data of a person supported; `errors` names the field, anonymise it";

fn spaces(state: &AppState) -> SpaceServiceClient<Channel> {
    SpaceServiceClient::new(state.upstreams.community.clone())
}

fn questions(state: &AppState) -> QuestionServiceClient<Channel> {
    QuestionServiceClient::new(state.upstreams.community.clone())
}

fn solutions(state: &AppState) -> SolutionServiceClient<Channel> {
    SolutionServiceClient::new(state.upstreams.community.clone())
}

// ---------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------

#[derive(Debug, Serialize, ToSchema)]
pub struct SpaceJson {
    pub id: String,
    /// `territory`, `theme` or `structure`.
    pub kind: Option<String>,
    pub name: String,
    pub description: Option<String>,
    /// A territory space's commune, département or EPCI code.
    pub territory_code: Option<String>,
    /// A theme space's domain of the référentiel.
    pub domain_id: Option<String>,
    /// A structure's private space: the structure.
    pub structure_id: Option<String>,
    /// The caller's role, `member` or `moderator`; absent when not a member.
    pub my_role: Option<String>,
    pub created_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QuestionJson {
    pub id: String,
    pub space_id: String,
    /// Absent once the author's account is deleted.
    pub author_user_id: Option<String>,
    pub title: String,
    pub body: String,
    pub domains: Vec<String>,
    pub territory_code: Option<String>,
    pub accepted_answer_id: Option<String>,
    pub answer_count: i32,
    /// Whether the caller follows it.
    pub followed: bool,
    /// `published` or `hidden`.
    pub status: Option<String>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AnswerJson {
    pub id: String,
    pub question_id: String,
    /// Absent once the author's account is deleted.
    pub author_user_id: Option<String>,
    pub body: String,
    pub vote_count: i32,
    /// Whether the caller voted for it.
    pub voted: bool,
    /// Accepted by the question's author.
    pub accepted: bool,
    /// Certified by a moderator of the space.
    pub certified: bool,
    /// `published` or `hidden`.
    pub status: Option<String>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VoteJson {
    pub answer_id: String,
    pub user_id: String,
    pub created_at: Option<String>,
    /// The answer's votes, this one included.
    pub vote_count: i32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SolutionJson {
    pub id: String,
    /// Absent once the author's account is deleted.
    pub author_user_id: Option<String>,
    pub title: String,
    pub body: String,
    pub domains: Vec<String>,
    pub item_ids: Vec<String>,
    pub territory_codes: Vec<String>,
    /// `YYYY-MM-DD`.
    pub valid_from: Option<String>,
    /// `YYYY-MM-DD`.
    pub valid_until: Option<String>,
    /// A service of the directory it points to.
    pub directory_service_id: Option<String>,
    /// Counselors who said they used it.
    pub used_count: i32,
    /// Counselors who said it worked.
    pub worked_count: i32,
    /// `published` or `hidden`.
    pub status: Option<String>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RoleJson {
    /// `member` or `moderator`.
    pub role: Option<String>,
}

/// A member of a space, as the space's members see them.
#[derive(Debug, Serialize, ToSchema)]
pub struct SpaceMemberJson {
    pub user_id: String,
    /// The member's name; absent while not known yet.
    pub display_name: Option<String>,
    /// The structure they take part for.
    pub structure_id: Option<String>,
    pub structure_name: Option<String>,
    /// `member` or `moderator`.
    pub role: Option<String>,
    pub joined_at: Option<String>,
}

impl From<pb::SpaceMember> for SpaceMemberJson {
    fn from(m: pb::SpaceMember) -> Self {
        Self {
            user_id: m.user_id,
            display_name: non_empty(m.display_name),
            structure_id: non_empty(m.structure_id),
            structure_name: non_empty(m.structure_name),
            role: space_role(m.role),
            joined_at: when(m.joined_at),
        }
    }
}

fn space_kind(k: i32) -> Option<String> {
    pb::SpaceKind::try_from(k)
        .ok()
        .and_then(|k| code(k.as_str_name(), "SPACE_KIND_"))
}

fn space_role(r: i32) -> Option<String> {
    pb::SpaceRole::try_from(r)
        .ok()
        .and_then(|r| code(r.as_str_name(), "SPACE_ROLE_"))
}

fn status(s: i32) -> Option<String> {
    pb::ContentStatus::try_from(s)
        .ok()
        .and_then(|s| code(s.as_str_name(), "CONTENT_STATUS_"))
}

fn kind_from_json(s: &str) -> Result<pb::SpaceKind, Problem> {
    pb::SpaceKind::from_str_name(&format!("SPACE_KIND_{}", s.trim().to_uppercase()))
        .filter(|k| *k != pb::SpaceKind::Unspecified)
        .ok_or_else(|| {
            Problem::invalid(
                "kind",
                format!(
                    "type d'espace inconnu « {s} » : territory, theme ou structure / unknown space kind"
                ),
            )
        })
}

fn role_from_json(s: &str) -> Result<pb::SpaceRole, Problem> {
    pb::SpaceRole::from_str_name(&format!("SPACE_ROLE_{}", s.trim().to_uppercase()))
        .filter(|r| *r != pb::SpaceRole::Unspecified)
        .ok_or_else(|| {
            Problem::invalid(
                "role",
                format!("rôle inconnu « {s} » : member ou moderator / unknown role"),
            )
        })
}

impl From<pb::Space> for SpaceJson {
    fn from(s: pb::Space) -> Self {
        Self {
            id: s.space_id,
            kind: space_kind(s.kind),
            name: s.name,
            description: non_empty(s.description),
            territory_code: non_empty(s.territory_code),
            domain_id: non_empty(s.domain_id),
            structure_id: non_empty(s.structure_id),
            my_role: space_role(s.my_role),
            created_at: when(s.created_at),
        }
    }
}

impl From<pb::Question> for QuestionJson {
    fn from(q: pb::Question) -> Self {
        Self {
            id: q.question_id,
            space_id: q.space_id,
            author_user_id: non_empty(q.author_user_id),
            title: q.title,
            body: q.body,
            domains: q.domains,
            territory_code: non_empty(q.territory_code),
            accepted_answer_id: non_empty(q.accepted_answer_id),
            answer_count: q.answer_count,
            followed: q.followed,
            status: status(q.status),
            created_at: when(q.created_at),
            updated_at: when(q.updated_at),
        }
    }
}

impl From<pb::Answer> for AnswerJson {
    fn from(a: pb::Answer) -> Self {
        Self {
            id: a.answer_id,
            question_id: a.question_id,
            author_user_id: non_empty(a.author_user_id),
            body: a.body,
            vote_count: a.vote_count,
            voted: a.voted,
            accepted: a.accepted,
            certified: a.certified,
            status: status(a.status),
            created_at: when(a.created_at),
            updated_at: when(a.updated_at),
        }
    }
}

impl From<pb::Solution> for SolutionJson {
    fn from(s: pb::Solution) -> Self {
        Self {
            id: s.solution_id,
            author_user_id: non_empty(s.author_user_id),
            title: s.title,
            body: s.body,
            domains: s.domains,
            item_ids: s.item_ids,
            territory_codes: s.territory_codes,
            valid_from: non_empty(s.valid_from),
            valid_until: non_empty(s.valid_until),
            directory_service_id: non_empty(s.directory_service_id),
            used_count: s.used_count,
            worked_count: s.worked_count,
            status: status(s.status),
            created_at: when(s.created_at),
            updated_at: when(s.updated_at),
        }
    }
}

// ---------------------------------------------------------------------------
// Bodies and queries
// ---------------------------------------------------------------------------

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SpaceQuery {
    /// Éléments par page : par défaut 50, au plus 500 / items per page: 50 by default, at most 500.
    #[serde(default)]
    pub page_size: i32,
    /// `next_page_token` de la page précédente / the previous page's `next_page_token`.
    #[serde(default)]
    pub page_token: String,
    /// `territory`, `theme` or `structure`.
    #[serde(default)]
    pub kind: Option<String>,
    /// Only the spaces the caller is a member of.
    #[serde(default)]
    pub joined_only: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSpace {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// `territory`, `theme` or `structure`.
    pub kind: String,
    /// For a `territory` space: a commune, département or EPCI code.
    #[serde(default)]
    pub territory_code: Option<String>,
    /// For a `theme` space: a domain of the référentiel.
    #[serde(default)]
    pub domain_id: Option<String>,
    /// For a `structure` space: the structure.
    #[serde(default)]
    pub structure_id: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRole {
    /// `member` or `moderator`.
    pub role: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct QuestionQuery {
    /// Éléments par page : par défaut 50, au plus 500 / items per page: 50 by default, at most 500.
    #[serde(default)]
    pub page_size: i32,
    /// `next_page_token` de la page précédente / the previous page's `next_page_token`.
    #[serde(default)]
    pub page_token: String,
    #[serde(default)]
    pub space_id: Option<String>,
    /// One domain, or several separated by commas.
    #[serde(default)]
    pub domain: Option<String>,
    #[serde(default)]
    pub territory_code: Option<String>,
    /// Only the questions without an answer.
    #[serde(default)]
    pub unanswered: bool,
    /// Only the questions the caller follows.
    #[serde(default)]
    pub followed: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewQuestion {
    pub space_id: String,
    pub title: String,
    pub body: String,
    #[serde(default)]
    pub domains: Vec<String>,
    #[serde(default)]
    pub territory_code: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuestionChange {
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub body: Option<String>,
    /// Replaces the list when present.
    #[serde(default)]
    pub domains: Option<Vec<String>>,
    #[serde(default)]
    pub territory_code: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAnswer {
    pub body: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Certification {
    /// `false` withdraws the certification.
    #[serde(default = "yes")]
    pub certified: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SolutionQuery {
    /// Éléments par page : par défaut 50, au plus 500 / items per page: 50 by default, at most 500.
    #[serde(default)]
    pub page_size: i32,
    /// `next_page_token` de la page précédente / the previous page's `next_page_token`.
    #[serde(default)]
    pub page_token: String,
    /// One domain, or several separated by commas.
    #[serde(default)]
    pub domain: Option<String>,
    /// One item, or several separated by commas.
    #[serde(default)]
    pub item_id: Option<String>,
    #[serde(default)]
    pub territory_code: Option<String>,
    /// Also the sheets whose `valid_until` has passed.
    #[serde(default)]
    pub include_expired: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SolutionBody {
    pub title: String,
    pub body: String,
    #[serde(default)]
    pub domains: Vec<String>,
    #[serde(default)]
    pub item_ids: Vec<String>,
    #[serde(default)]
    pub territory_codes: Vec<String>,
    /// `YYYY-MM-DD`.
    #[serde(default)]
    pub valid_from: Option<String>,
    /// `YYYY-MM-DD`.
    #[serde(default)]
    pub valid_until: Option<String>,
    /// A service of the directory it points to.
    #[serde(default)]
    pub directory_service_id: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Feedback {
    /// Whether it worked; it counts as used either way.
    pub worked: bool,
}

fn list_of(s: Option<String>) -> Vec<String> {
    s.unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

// ---------------------------------------------------------------------------
// Spaces
// ---------------------------------------------------------------------------

/// Espaces de la communauté / Community spaces
///
/// Par territoire, par thème (un domaine du référentiel) ou privés à une structure. / By
/// territory, by theme (a domain of the référentiel) or private to a structure.
#[utoipa::path(get, path = "/community/spaces", tag = SPACES, params(SpaceQuery),
    responses((status = 200, description = "Une page / One page", body = Page<SpaceJson>)))]
async fn list_spaces(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<SpaceQuery>, QueryRejection>,
) -> Result<Json<Page<SpaceJson>>, Problem> {
    let Query(q) = query?;
    let kind = match q.kind.as_deref().map(str::trim) {
        None | Some("") => pb::SpaceKind::Unspecified,
        Some(k) => kind_from_json(k)?,
    };
    let req = state.upstreams.request(
        &headers,
        pb::ListSpacesRequest {
            page_size: q.page_size,
            page_token: q.page_token,
            kind: kind as i32,
            joined_only: q.joined_only,
        },
    );
    let r = spaces(&state).list_spaces(req).await?.into_inner();
    Ok(Json(Page {
        items: r.spaces.into_iter().map(Into::into).collect(),
        next_page_token: non_empty(r.next_page_token),
    }))
}

/// Créer un espace / Create a space
#[utoipa::path(post, path = "/community/spaces", tag = SPACES, request_body = NewSpace,
    responses((status = 201, description = "Créé / Created", body = SpaceJson)))]
async fn create_space(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<NewSpace>, JsonRejection>,
) -> Result<(StatusCode, Json<SpaceJson>), Problem> {
    let Json(b) = body?;
    let kind = kind_from_json(&b.kind)?;
    let req = state.upstreams.request(
        &headers,
        pb::CreateSpaceRequest {
            name: b.name,
            description: b.description.unwrap_or_default(),
            kind: kind as i32,
            territory_code: b.territory_code.unwrap_or_default(),
            domain_id: b.domain_id.unwrap_or_default(),
            structure_id: b.structure_id.unwrap_or_default(),
        },
    );
    let r = spaces(&state).create_space(req).await?.into_inner();
    Ok((
        StatusCode::CREATED,
        Json(r.space.ok_or_else(empty_answer)?.into()),
    ))
}

/// Un espace / One space
#[utoipa::path(get, path = "/community/spaces/{id}", tag = SPACES, params(("id" = String, Path, description = "L'espace (UUIDv7) / the space")),
    responses((status = 200, description = "L'espace / The space", body = SpaceJson)))]
async fn get_space(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<SpaceJson>, Problem> {
    let req = state
        .upstreams
        .request(&headers, pb::GetSpaceRequest { space_id: id });
    let r = spaces(&state).get_space(req).await?.into_inner();
    Ok(Json(r.space.ok_or_else(empty_answer)?.into()))
}

/// Rejoindre un espace / Join a space
#[utoipa::path(post, path = "/community/spaces/{id}/join", tag = SPACES, params(("id" = String, Path, description = "L'espace (UUIDv7) / the space")),
    responses((status = 200, description = "L'espace, avec votre rôle / The space, with your role", body = SpaceJson)))]
async fn join_space(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<SpaceJson>, Problem> {
    let req = state
        .upstreams
        .request(&headers, pb::JoinSpaceRequest { space_id: id });
    let r = spaces(&state).join_space(req).await?.into_inner();
    Ok(Json(r.space.ok_or_else(empty_answer)?.into()))
}

/// Quitter un espace / Leave a space
#[utoipa::path(post, path = "/community/spaces/{id}/leave", tag = SPACES, params(("id" = String, Path, description = "L'espace (UUIDv7) / the space")),
    responses((status = 204, description = "Quitté / Left"),
        (status = 409, description = "Le dernier modérateur de l'espace : en nommer un autre d'abord / The space's last moderator: appoint another first", body = Problem, content_type = "application/problem+json")))]
async fn leave_space(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    let req = state
        .upstreams
        .request(&headers, pb::LeaveSpaceRequest { space_id: id });
    spaces(&state).leave_space(req).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Les membres d'un espace / A space's members
///
/// Les modérateurs d'abord, puis par nom. Réservé aux membres de l'espace (et à qui gère
/// ses rôles) ; un espace que l'on ne voit pas répond 404. / Moderators first, then by
/// name. For the space's members (and those who manage its roles); a space the caller
/// cannot see answers 404.
#[utoipa::path(get, path = "/community/spaces/{id}/members", tag = SPACES,
    params(("id" = String, Path, description = "L'espace (UUIDv7) / the space"), PageQuery),
    responses((status = 200, description = "Une page / One page", body = Page<SpaceMemberJson>),
        (status = 403, description = "Pas membre de l'espace / Not a member of the space", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Espace introuvable / Space not found", body = Problem, content_type = "application/problem+json")))]
async fn list_space_members(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<Page<SpaceMemberJson>>, Problem> {
    let Query(q) = query?;
    let req = state.upstreams.request(
        &headers,
        pb::ListSpaceMembersRequest {
            page_size: q.page_size,
            page_token: q.page_token,
            space_id: id,
        },
    );
    let r = spaces(&state).list_space_members(req).await?.into_inner();
    Ok(Json(Page {
        items: r.members.into_iter().map(Into::into).collect(),
        next_page_token: non_empty(r.next_page_token),
    }))
}

/// Changer le rôle d'un membre / Change a member's role
///
/// Réservé aux modérateurs de l'espace. Le dernier modérateur le reste (409) : nommez-en
/// d'abord un autre. / For the space's moderators. The last moderator stays one (409):
/// appoint another first.
#[utoipa::path(patch, path = "/community/spaces/{id}/members/{user_id}", tag = SPACES,
    params(("id" = String, Path, description = "L'espace (UUIDv7) / the space"), ("user_id" = String, Path, description = "Le membre / the member")),
    request_body = NewRole,
    responses((status = 200, description = "Le nouveau rôle / The new role", body = RoleJson),
        (status = 409, description = "Le dernier modérateur de l'espace / The space's last moderator", body = Problem, content_type = "application/problem+json")))]
async fn set_space_role(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, user_id)): Path<(String, String)>,
    body: Result<Json<NewRole>, JsonRejection>,
) -> Result<Json<RoleJson>, Problem> {
    let Json(b) = body?;
    let role = role_from_json(&b.role)?;
    let req = state.upstreams.request(
        &headers,
        pb::SetSpaceRoleRequest {
            space_id: id,
            user_id,
            role: role as i32,
        },
    );
    let r = spaces(&state).set_space_role(req).await?.into_inner();
    Ok(Json(RoleJson {
        role: space_role(r.role),
    }))
}

// ---------------------------------------------------------------------------
// Questions and answers
// ---------------------------------------------------------------------------

/// Questions des espaces / Questions of the spaces
///
/// Les plus récentes d'abord. / Newest first.
#[utoipa::path(get, path = "/community/questions", tag = QUESTIONS, params(QuestionQuery),
    responses((status = 200, description = "Une page / One page", body = Page<QuestionJson>)))]
async fn list_questions(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<QuestionQuery>, QueryRejection>,
) -> Result<Json<Page<QuestionJson>>, Problem> {
    let Query(q) = query?;
    let req = state.upstreams.request(
        &headers,
        pb::ListQuestionsRequest {
            page_size: q.page_size,
            page_token: q.page_token,
            space_id: q.space_id.unwrap_or_default(),
            domains: list_of(q.domain),
            territory_code: q.territory_code.unwrap_or_default(),
            unanswered_only: q.unanswered,
            followed_only: q.followed,
        },
    );
    let r = questions(&state).list_questions(req).await?.into_inner();
    Ok(Json(Page {
        items: r.questions.into_iter().map(Into::into).collect(),
        next_page_token: non_empty(r.next_page_token),
    }))
}

/// Poser une question / Ask a question
///
/// Le texte est relu avant d'être enregistré : un NIR, un téléphone, un e-mail ou le nom d'une
/// personne suivie par votre structure le fait refuser (409). / The text is screened before it
/// is stored: a NIR, a phone number, an e-mail or the name of a person your structure follows
/// gets it refused (409).
#[utoipa::path(post, path = "/community/questions", tag = QUESTIONS, request_body = NewQuestion,
    responses((status = 201, description = "Publiée / Posted", body = QuestionJson),
        (status = 409, description = SCREENED, body = Problem, content_type = "application/problem+json")))]
async fn create_question(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<NewQuestion>, JsonRejection>,
) -> Result<(StatusCode, Json<QuestionJson>), Problem> {
    let Json(b) = body?;
    let req = state.upstreams.request(
        &headers,
        pb::CreateQuestionRequest {
            space_id: b.space_id,
            title: b.title,
            body: b.body,
            domains: b.domains,
            territory_code: b.territory_code.unwrap_or_default(),
        },
    );
    let r = questions(&state).create_question(req).await?.into_inner();
    Ok((
        StatusCode::CREATED,
        Json(r.question.ok_or_else(empty_answer)?.into()),
    ))
}

/// Une question / One question
#[utoipa::path(get, path = "/community/questions/{id}", tag = QUESTIONS, params(("id" = String, Path, description = "La question (UUIDv7) / the question")),
    responses((status = 200, description = "La question / The question", body = QuestionJson)))]
async fn get_question(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<QuestionJson>, Problem> {
    let req = state
        .upstreams
        .request(&headers, pb::GetQuestionRequest { question_id: id });
    let r = questions(&state).get_question(req).await?.into_inner();
    Ok(Json(r.question.ok_or_else(empty_answer)?.into()))
}

/// Modifier une question / Edit a question
///
/// Seuls les champs présents changent ; le texte est relu comme à la création. / Only the
/// fields present change; the text is screened as on creation.
#[utoipa::path(patch, path = "/community/questions/{id}", tag = QUESTIONS, params(("id" = String, Path, description = "La question (UUIDv7) / the question")),
    request_body = QuestionChange,
    responses((status = 200, description = "La question / The question", body = QuestionJson),
        (status = 409, description = SCREENED, body = Problem, content_type = "application/problem+json")))]
async fn update_question(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<QuestionChange>, JsonRejection>,
) -> Result<Json<QuestionJson>, Problem> {
    let Json(b) = body?;
    let replace_domains = b.domains.is_some();
    let req = state.upstreams.request(
        &headers,
        pb::UpdateQuestionRequest {
            question_id: id,
            title: b.title,
            body: b.body,
            domains: b.domains.unwrap_or_default(),
            replace_domains,
            territory_code: b.territory_code,
        },
    );
    let r = questions(&state).update_question(req).await?.into_inner();
    Ok(Json(r.question.ok_or_else(empty_answer)?.into()))
}

async fn follow(
    state: &AppState,
    headers: &HeaderMap,
    id: String,
    on: bool,
) -> Result<Json<QuestionJson>, Problem> {
    let req = state.upstreams.request(
        headers,
        pb::FollowQuestionRequest {
            question_id: id,
            follow: on,
        },
    );
    let r = questions(state).follow_question(req).await?.into_inner();
    Ok(Json(r.question.ok_or_else(empty_answer)?.into()))
}

/// Suivre une question / Follow a question
#[utoipa::path(post, path = "/community/questions/{id}/follow", tag = QUESTIONS, params(("id" = String, Path, description = "La question (UUIDv7) / the question")),
    responses((status = 200, description = "La question, suivie / The question, followed", body = QuestionJson)))]
async fn follow_question(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<QuestionJson>, Problem> {
    follow(&state, &headers, id, true).await
}

/// Ne plus suivre une question / Unfollow a question
#[utoipa::path(delete, path = "/community/questions/{id}/follow", tag = QUESTIONS, params(("id" = String, Path, description = "La question (UUIDv7) / the question")),
    responses((status = 200, description = "La question, plus suivie / The question, no longer followed", body = QuestionJson)))]
async fn unfollow_question(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<QuestionJson>, Problem> {
    follow(&state, &headers, id, false).await
}

/// Réponses à une question / Answers to a question
///
/// L'acceptée d'abord, puis la certifiée, puis par votes. / The accepted one first, then the
/// certified one, then by votes.
#[utoipa::path(get, path = "/community/questions/{id}/answers", tag = QUESTIONS, params(("id" = String, Path, description = "La question (UUIDv7) / the question"), PageQuery),
    responses((status = 200, description = "Une page / One page", body = Page<AnswerJson>)))]
async fn list_answers(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<Page<AnswerJson>>, Problem> {
    let Query(q) = query?;
    let req = state.upstreams.request(
        &headers,
        pb::ListAnswersRequest {
            page_size: q.page_size,
            page_token: q.page_token,
            question_id: id,
        },
    );
    let r = questions(&state).list_answers(req).await?.into_inner();
    Ok(Json(Page {
        items: r.answers.into_iter().map(Into::into).collect(),
        next_page_token: non_empty(r.next_page_token),
    }))
}

/// Répondre à une question / Answer a question
///
/// Le texte est relu avant d'être enregistré. / The text is screened before it is stored.
#[utoipa::path(post, path = "/community/questions/{id}/answers", tag = QUESTIONS, params(("id" = String, Path, description = "La question (UUIDv7) / the question")),
    request_body = NewAnswer,
    responses((status = 201, description = "Publiée / Posted", body = AnswerJson),
        (status = 409, description = "Données personnelles dans le texte (`errors` nomme le champ), ou question masquée / Personal data in the text (`errors` names the field), or the question is hidden", body = Problem, content_type = "application/problem+json")))]
async fn create_answer(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<NewAnswer>, JsonRejection>,
) -> Result<(StatusCode, Json<AnswerJson>), Problem> {
    let Json(b) = body?;
    let req = state.upstreams.request(
        &headers,
        pb::CreateAnswerRequest {
            question_id: id,
            body: b.body,
        },
    );
    let r = questions(&state).create_answer(req).await?.into_inner();
    Ok((
        StatusCode::CREATED,
        Json(r.answer.ok_or_else(empty_answer)?.into()),
    ))
}

/// Modifier une réponse / Edit an answer
#[utoipa::path(patch, path = "/community/answers/{id}", tag = QUESTIONS, params(("id" = String, Path, description = "La réponse (UUIDv7) / the answer")),
    request_body = NewAnswer,
    responses((status = 200, description = "La réponse / The answer", body = AnswerJson),
        (status = 409, description = SCREENED, body = Problem, content_type = "application/problem+json")))]
async fn update_answer(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<NewAnswer>, JsonRejection>,
) -> Result<Json<AnswerJson>, Problem> {
    let Json(b) = body?;
    let req = state.upstreams.request(
        &headers,
        pb::UpdateAnswerRequest {
            answer_id: id,
            body: b.body,
        },
    );
    let r = questions(&state).update_answer(req).await?.into_inner();
    Ok(Json(r.answer.ok_or_else(empty_answer)?.into()))
}

/// Voter pour une réponse / Vote for an answer
///
/// Un vote par conseiller. / One vote per counselor.
#[utoipa::path(post, path = "/community/answers/{id}/votes", tag = QUESTIONS, params(("id" = String, Path, description = "La réponse (UUIDv7) / the answer")),
    responses((status = 201, description = "Le vote / The vote", body = VoteJson),
        (status = 409, description = "Vous avez déjà voté / You already voted", body = Problem, content_type = "application/problem+json")))]
async fn vote_answer(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<VoteJson>), Problem> {
    let req = state
        .upstreams
        .request(&headers, pb::VoteAnswerRequest { answer_id: id });
    let r = questions(&state).vote_answer(req).await?.into_inner();
    let v = r.vote.ok_or_else(empty_answer)?;
    Ok((
        StatusCode::CREATED,
        Json(VoteJson {
            answer_id: v.answer_id,
            user_id: v.user_id,
            created_at: when(v.created_at),
            vote_count: r.vote_count,
        }),
    ))
}

/// Accepter une réponse / Accept an answer
///
/// Par l'auteur de la question. / By the question's author.
#[utoipa::path(post, path = "/community/answers/{id}/accept", tag = QUESTIONS, params(("id" = String, Path, description = "La réponse (UUIDv7) / the answer")),
    responses((status = 200, description = "La question, avec sa réponse acceptée / The question, with its accepted answer", body = QuestionJson)))]
async fn accept_answer(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<QuestionJson>, Problem> {
    let req = state.upstreams.request(
        &headers,
        pb::AcceptAnswerRequest {
            question_id: String::new(),
            answer_id: id,
        },
    );
    let r = questions(&state).accept_answer(req).await?.into_inner();
    Ok(Json(r.question.ok_or_else(empty_answer)?.into()))
}

/// Certifier une réponse / Certify an answer
///
/// Par un modérateur de l'espace ; sans corps, la réponse est certifiée, `certified: false`
/// retire la certification. / By a moderator of the space; without a body the answer is
/// certified, `certified: false` withdraws it.
#[utoipa::path(post, path = "/community/answers/{id}/certify", tag = QUESTIONS, params(("id" = String, Path, description = "La réponse (UUIDv7) / the answer")),
    request_body = Option<Certification>,
    responses((status = 200, description = "La réponse / The answer", body = AnswerJson)))]
async fn certify_answer(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Option<Json<Certification>>,
) -> Result<Json<AnswerJson>, Problem> {
    let certified = body.map(|Json(b)| b.certified).unwrap_or(true);
    let req = state.upstreams.request(
        &headers,
        pb::CertifyAnswerRequest {
            answer_id: id,
            certified,
        },
    );
    let r = questions(&state).certify_answer(req).await?.into_inner();
    Ok(Json(r.answer.ok_or_else(empty_answer)?.into()))
}

// ---------------------------------------------------------------------------
// Solutions
// ---------------------------------------------------------------------------

/// Bibliothèque de solutions / Solution library
///
/// Les fiches non expirées (sauf `include_expired`), les plus utiles d'abord : celles qui ont
/// marché, puis celles utilisées. / Sheets not expired (unless `include_expired`), most useful
/// first: those that worked, then those used.
#[utoipa::path(get, path = "/community/solutions", tag = SOLUTIONS, params(SolutionQuery),
    responses((status = 200, description = "Une page / One page", body = Page<SolutionJson>)))]
async fn list_solutions(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<SolutionQuery>, QueryRejection>,
) -> Result<Json<Page<SolutionJson>>, Problem> {
    let Query(q) = query?;
    let req = state.upstreams.request(
        &headers,
        pb::ListSolutionsRequest {
            page_size: q.page_size,
            page_token: q.page_token,
            domains: list_of(q.domain),
            item_ids: list_of(q.item_id),
            territory_code: q.territory_code.unwrap_or_default(),
            include_expired: q.include_expired,
        },
    );
    let r = solutions(&state).list_solutions(req).await?.into_inner();
    Ok(Json(Page {
        items: r.solutions.into_iter().map(Into::into).collect(),
        next_page_token: non_empty(r.next_page_token),
    }))
}

fn sheet(id: String, b: SolutionBody) -> pb::Solution {
    pb::Solution {
        solution_id: id,
        title: b.title,
        body: b.body,
        domains: b.domains,
        item_ids: b.item_ids,
        territory_codes: b.territory_codes,
        valid_from: b.valid_from.unwrap_or_default(),
        valid_until: b.valid_until.unwrap_or_default(),
        directory_service_id: b.directory_service_id.unwrap_or_default(),
        ..Default::default()
    }
}

/// Publier une fiche solution / Post a solution sheet
///
/// Le texte est relu avant d'être enregistré. / The text is screened before it is stored.
#[utoipa::path(post, path = "/community/solutions", tag = SOLUTIONS, request_body = SolutionBody,
    responses((status = 201, description = "Publiée / Posted", body = SolutionJson),
        (status = 409, description = SCREENED, body = Problem, content_type = "application/problem+json")))]
async fn create_solution(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<SolutionBody>, JsonRejection>,
) -> Result<(StatusCode, Json<SolutionJson>), Problem> {
    let Json(b) = body?;
    let s = sheet(String::new(), b);
    let req = state.upstreams.request(
        &headers,
        pb::CreateSolutionRequest {
            title: s.title,
            body: s.body,
            domains: s.domains,
            item_ids: s.item_ids,
            territory_codes: s.territory_codes,
            valid_from: s.valid_from,
            valid_until: s.valid_until,
            directory_service_id: s.directory_service_id,
        },
    );
    let r = solutions(&state).create_solution(req).await?.into_inner();
    Ok((
        StatusCode::CREATED,
        Json(r.solution.ok_or_else(empty_answer)?.into()),
    ))
}

/// Une fiche solution / One solution sheet
#[utoipa::path(get, path = "/community/solutions/{id}", tag = SOLUTIONS, params(("id" = String, Path, description = "La fiche (UUIDv7) / the sheet")),
    responses((status = 200, description = "La fiche / The sheet", body = SolutionJson)))]
async fn get_solution(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<SolutionJson>, Problem> {
    let req = state
        .upstreams
        .request(&headers, pb::GetSolutionRequest { solution_id: id });
    let r = solutions(&state).get_solution(req).await?.into_inner();
    Ok(Json(r.solution.ok_or_else(empty_answer)?.into()))
}

/// Modifier une fiche solution / Edit a solution sheet
///
/// La fiche entière est remplacée. / The whole sheet is replaced.
#[utoipa::path(patch, path = "/community/solutions/{id}", tag = SOLUTIONS, params(("id" = String, Path, description = "La fiche (UUIDv7) / the sheet")),
    request_body = SolutionBody,
    responses((status = 200, description = "La fiche / The sheet", body = SolutionJson),
        (status = 409, description = SCREENED, body = Problem, content_type = "application/problem+json")))]
async fn update_solution(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<SolutionBody>, JsonRejection>,
) -> Result<Json<SolutionJson>, Problem> {
    let Json(b) = body?;
    let req = state.upstreams.request(
        &headers,
        pb::UpdateSolutionRequest {
            solution: Some(sheet(id, b)),
        },
    );
    let r = solutions(&state).update_solution(req).await?.into_inner();
    Ok(Json(r.solution.ok_or_else(empty_answer)?.into()))
}

/// Dire si une fiche a servi / Say whether a sheet helped
///
/// « Je l'ai utilisée », et `worked` dit si elle a marché ; un avis par conseiller, le dernier
/// compte. / "I used it", and `worked` says whether it worked; one per counselor, the latest
/// counts.
#[utoipa::path(post, path = "/community/solutions/{id}/feedback", tag = SOLUTIONS, params(("id" = String, Path, description = "La fiche (UUIDv7) / the sheet")),
    request_body = Feedback,
    responses((status = 200, description = "La fiche, ses compteurs à jour / The sheet, its counts updated", body = SolutionJson)))]
async fn solution_feedback(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<Feedback>, JsonRejection>,
) -> Result<Json<SolutionJson>, Problem> {
    let Json(b) = body?;
    let req = state.upstreams.request(
        &headers,
        pb::RecordSolutionFeedbackRequest {
            solution_id: id,
            worked: b.worked,
        },
    );
    let r = solutions(&state)
        .record_solution_feedback(req)
        .await?
        .into_inner();
    Ok(Json(r.solution.ok_or_else(empty_answer)?.into()))
}
