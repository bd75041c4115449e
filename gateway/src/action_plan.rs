//! The action plan of a diagnostic: `GET /diagnostics/{id}/plan`,
//! `POST /diagnostics/{id}/plan/objectives`, `PATCH /plan/objectives/{id}`,
//! `POST /plan/objectives/{id}/actions`, `PATCH /plan/actions/{id}`.
//! As for diagnostics, each domain carries `"access": "visible"` (with its
//! objectives) or `"withheld"` (nothing inside); statuses are codes.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use eva_proto::diagnostics::v1 as pb;
use eva_proto::diagnostics::v1::action_plan_service_client::ActionPlanServiceClient;
use eva_proto::identity::v1::ConsentPurpose;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::json::{code, empty_answer, non_empty, when};
use crate::{AppState, Problem};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(fetch))
        .routes(routes!(add_objective))
        .routes(routes!(update_objective))
        .routes(routes!(add_action))
        .routes(routes!(update_action))
}

const TAG: &str = "Plans d'action";

#[derive(Debug, Serialize, ToSchema)]
pub struct PlanJson {
    pub diagnostic_id: String,
    pub person_id: String,
    /// Visible domains with objectives, then withheld domains.
    pub domains: Vec<PlanDomainJson>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PlanDomainJson {
    pub domain_id: String,
    /// `visible` or `withheld`.
    pub access: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub objectives: Option<Vec<ObjectiveJson>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ObjectiveJson {
    pub id: String,
    pub diagnostic_id: String,
    pub domain_id: String,
    pub title: String,
    /// `en_cours`, `realise`, `abandonne`.
    pub status: Option<String>,
    /// `YYYY-MM-DD`, like every date of the plan.
    pub start_date: Option<String>,
    pub target_date: Option<String>,
    pub end_date: Option<String>,
    pub owner_structure_id: String,
    pub owner_user_id: Option<String>,
    pub actions: Vec<ActionJson>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ActionJson {
    pub id: String,
    pub objective_id: String,
    pub title: String,
    /// `prevue`, `en_cours`, `realisee`, `annulee`.
    pub status: Option<String>,
    pub planned_date: Option<String>,
    pub end_date: Option<String>,
    pub owner_structure_id: String,
    pub owner_user_id: Option<String>,
    pub referral_id: Option<String>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReadQuery {
    /// La finalité de la lecture, qui décide des domaines visibles : `accompagnement`,
    /// `orientation` ou `statistiques` / the purpose of the read, which decides the visible
    /// domains.
    #[serde(default)]
    pub purpose: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewObjective {
    pub domain_id: String,
    pub title: String,
    /// `YYYY-MM-DD`, like every date of the plan.
    #[serde(default)]
    pub start_date: Option<String>,
    #[serde(default)]
    pub target_date: Option<String>,
    #[serde(default)]
    pub owner_user_id: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ObjectiveChange {
    #[serde(default)]
    pub title: Option<String>,
    /// `en_cours`, `realise` or `abandonne`.
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub target_date: Option<String>,
    #[serde(default)]
    pub end_date: Option<String>,
    #[serde(default)]
    pub owner_user_id: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAction {
    pub title: String,
    #[serde(default)]
    pub planned_date: Option<String>,
    #[serde(default)]
    pub owner_structure_id: Option<String>,
    #[serde(default)]
    pub owner_user_id: Option<String>,
    #[serde(default)]
    pub referral_id: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionChange {
    #[serde(default)]
    pub title: Option<String>,
    /// `prevue`, `en_cours`, `realisee` or `annulee`.
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub planned_date: Option<String>,
    #[serde(default)]
    pub end_date: Option<String>,
    #[serde(default)]
    pub owner_structure_id: Option<String>,
    #[serde(default)]
    pub owner_user_id: Option<String>,
    #[serde(default)]
    pub referral_id: Option<String>,
}

fn objective_status(s: &str) -> Result<i32, Problem> {
    pb::ObjectiveStatus::from_str_name(&format!("OBJECTIVE_STATUS_{}", s.trim().to_uppercase()))
        .filter(|s| *s != pb::ObjectiveStatus::Unspecified)
        .map(|s| s as i32)
        .ok_or_else(|| {
            Problem::invalid(
                "status",
                "statut inconnu : en_cours, realise ou abandonne / unknown status",
            )
        })
}

fn action_status(s: &str) -> Result<i32, Problem> {
    pb::ActionStatus::from_str_name(&format!("ACTION_STATUS_{}", s.trim().to_uppercase()))
        .filter(|s| *s != pb::ActionStatus::Unspecified)
        .map(|s| s as i32)
        .ok_or_else(|| {
            Problem::invalid(
                "status",
                "statut inconnu : prevue, en_cours, realisee ou annulee / unknown status",
            )
        })
}

fn purpose_from_json(s: Option<&str>) -> Result<i32, Problem> {
    match s {
        None | Some("") => Ok(0),
        Some(s) => ConsentPurpose::from_str_name(&format!(
            "CONSENT_PURPOSE_{}",
            s.trim().to_uppercase()
        ))
        .filter(|p| *p != ConsentPurpose::Unspecified)
        .map(|p| p as i32)
        .ok_or_else(|| {
            Problem::invalid(
                "purpose",
                "finalité inconnue : accompagnement, orientation ou statistiques / unknown purpose",
            )
        }),
    }
}

impl From<pb::Action> for ActionJson {
    fn from(a: pb::Action) -> Self {
        Self {
            id: a.action_id,
            objective_id: a.objective_id,
            title: a.title,
            status: pb::ActionStatus::try_from(a.status)
                .ok()
                .and_then(|s| code(s.as_str_name(), "ACTION_STATUS_")),
            planned_date: non_empty(a.planned_date),
            end_date: non_empty(a.end_date),
            owner_structure_id: a.owner_structure_id,
            owner_user_id: non_empty(a.owner_user_id),
            referral_id: non_empty(a.referral_id),
            created_at: when(a.created_at),
            updated_at: when(a.updated_at),
        }
    }
}

impl From<pb::Objective> for ObjectiveJson {
    fn from(o: pb::Objective) -> Self {
        Self {
            id: o.objective_id,
            diagnostic_id: o.diagnostic_id,
            domain_id: o.domain_id,
            title: o.title,
            status: pb::ObjectiveStatus::try_from(o.status)
                .ok()
                .and_then(|s| code(s.as_str_name(), "OBJECTIVE_STATUS_")),
            start_date: non_empty(o.start_date),
            target_date: non_empty(o.target_date),
            end_date: non_empty(o.end_date),
            owner_structure_id: o.owner_structure_id,
            owner_user_id: non_empty(o.owner_user_id),
            actions: o.actions.into_iter().map(Into::into).collect(),
            created_at: when(o.created_at),
            updated_at: when(o.updated_at),
        }
    }
}

impl From<pb::ActionPlan> for PlanJson {
    fn from(p: pb::ActionPlan) -> Self {
        let mut domains: Vec<PlanDomainJson> = Vec::new();
        for o in p.objectives {
            let o = ObjectiveJson::from(o);
            match domains.iter_mut().find(|d| d.domain_id == o.domain_id) {
                Some(d) => d.objectives.get_or_insert_with(Vec::new).push(o),
                None => domains.push(PlanDomainJson {
                    domain_id: o.domain_id.clone(),
                    access: "visible",
                    objectives: Some(vec![o]),
                }),
            }
        }
        domains.extend(p.withheld_domains.into_iter().map(|d| PlanDomainJson {
            domain_id: d,
            access: "withheld",
            objectives: None,
        }));
        Self {
            diagnostic_id: p.diagnostic_id,
            person_id: p.person_id,
            domains,
        }
    }
}

fn client(state: &AppState) -> ActionPlanServiceClient<tonic::transport::Channel> {
    ActionPlanServiceClient::new(state.upstreams.diagnostics.clone())
}

/// Le plan d'action d'un diagnostic / A diagnostic's action plan
///
/// Les domaines visibles avec leurs objectifs et actions, puis les domaines `withheld` selon
/// le consentement de la personne. / Visible domains with their objectives and actions, then
/// the domains `withheld` by the person's consent.
#[utoipa::path(get, path = "/diagnostics/{id}/plan", tag = TAG, params(("id" = String, Path, description = "Le diagnostic (UUIDv7) / the diagnostic"), ReadQuery),
    responses((status = 200, description = "Le plan / The plan", body = PlanJson)))]
async fn fetch(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    query: Result<Query<ReadQuery>, QueryRejection>,
) -> Result<Json<PlanJson>, Problem> {
    let Query(q) = query?;
    let req = state.upstreams.request(
        &headers,
        pb::GetActionPlanRequest {
            diagnostic_id: id,
            purpose: purpose_from_json(q.purpose.as_deref())?,
        },
    );
    let r = client(&state).get_action_plan(req).await?.into_inner();
    Ok(Json(r.plan.ok_or_else(empty_answer)?.into()))
}

/// Fixer un objectif / Set an objective
#[utoipa::path(post, path = "/diagnostics/{id}/plan/objectives", tag = TAG, params(("id" = String, Path, description = "Le diagnostic (UUIDv7) / the diagnostic")),
    request_body = NewObjective,
    responses((status = 201, description = "L'objectif / The objective", body = ObjectiveJson),
        (status = 409, description = "Diagnostic remplacé : le plan se poursuit sur le diagnostic en cours / Superseded diagnostic: the plan goes on on the current one", body = Problem, content_type = "application/problem+json")))]
async fn add_objective(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<NewObjective>, JsonRejection>,
) -> Result<(StatusCode, Json<ObjectiveJson>), Problem> {
    let Json(b) = body?;
    let req = state.upstreams.request(
        &headers,
        pb::AddObjectiveRequest {
            diagnostic_id: id,
            domain_id: b.domain_id,
            title: b.title,
            start_date: b.start_date.unwrap_or_default(),
            target_date: b.target_date.unwrap_or_default(),
            owner_user_id: b.owner_user_id.unwrap_or_default(),
        },
    );
    let r = client(&state).add_objective(req).await?.into_inner();
    Ok((
        StatusCode::CREATED,
        Json(r.objective.ok_or_else(empty_answer)?.into()),
    ))
}

/// Modifier un objectif / Change an objective
///
/// Les champs envoyés remplacent les actuels. Statuts : `en_cours` → `realise` |
/// `abandonne`, et retour à `en_cours`. / The fields sent replace the current ones;
/// `realise` and `abandonne` may be reopened to `en_cours`.
#[utoipa::path(patch, path = "/plan/objectives/{id}", tag = TAG, params(("id" = String, Path, description = "L'objectif (UUIDv7) / the objective")),
    request_body = ObjectiveChange,
    responses((status = 200, description = "L'objectif / The objective", body = ObjectiveJson),
        (status = 409, description = "Passage de statut impossible, ou modifié entre-temps / Status change not allowed, or changed meanwhile", body = Problem, content_type = "application/problem+json")))]
async fn update_objective(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<ObjectiveChange>, JsonRejection>,
) -> Result<Json<ObjectiveJson>, Problem> {
    let Json(b) = body?;
    let status = b.status.as_deref().map(objective_status).transpose()?;
    let req = state.upstreams.request(
        &headers,
        pb::UpdateObjectiveRequest {
            objective_id: id,
            title: b.title,
            status,
            target_date: b.target_date,
            end_date: b.end_date,
            owner_user_id: b.owner_user_id,
        },
    );
    let r = client(&state).update_objective(req).await?.into_inner();
    Ok(Json(r.objective.ok_or_else(empty_answer)?.into()))
}

/// Ajouter une action à un objectif / Add an action to an objective
#[utoipa::path(post, path = "/plan/objectives/{id}/actions", tag = TAG, params(("id" = String, Path, description = "L'objectif (UUIDv7) / the objective")),
    request_body = NewAction,
    responses((status = 201, description = "L'action / The action", body = ActionJson),
        (status = 409, description = "L'objectif n'est plus en cours / The objective is no longer in progress", body = Problem, content_type = "application/problem+json")))]
async fn add_action(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<NewAction>, JsonRejection>,
) -> Result<(StatusCode, Json<ActionJson>), Problem> {
    let Json(b) = body?;
    let req = state.upstreams.request(
        &headers,
        pb::AddActionRequest {
            objective_id: id,
            title: b.title,
            planned_date: b.planned_date.unwrap_or_default(),
            owner_structure_id: b.owner_structure_id.unwrap_or_default(),
            owner_user_id: b.owner_user_id.unwrap_or_default(),
            referral_id: b.referral_id.unwrap_or_default(),
        },
    );
    let r = client(&state).add_action(req).await?.into_inner();
    Ok((
        StatusCode::CREATED,
        Json(r.action.ok_or_else(empty_answer)?.into()),
    ))
}

/// Modifier une action / Change an action
///
/// Les champs envoyés remplacent les actuels. Statuts : `prevue` → `en_cours` →
/// `realisee` | `annulee` (étapes sautables) ; `realisee` et `annulee` sont définitifs. La
/// personne change le seul statut des actions de son propre plan (`prevue`, `en_cours`,
/// `realisee` ; une action réalisée revient le jour même) : tout autre champ → 403 qui le nomme,
/// l'action d'une autre personne → 404. / The fields sent replace the current ones; statuses go
/// forward, done and cancelled are final. The person changes only the status of her own plan's
/// actions (a done one comes back the same day); any other field → 403 naming it; another
/// person's action → 404.
#[utoipa::path(patch, path = "/plan/actions/{id}", tag = TAG, params(("id" = String, Path, description = "L'action (UUIDv7) / the action")),
    request_body = ActionChange,
    responses((status = 200, description = "L'action / The action", body = ActionJson),
        (status = 403, description = "Champ réservé au conseiller, ou structure qui ne porte pas l'action / Field for the counselor only, or not the owning structure", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Passage de statut impossible, ou modifié entre-temps / Status change not allowed, or changed meanwhile", body = Problem, content_type = "application/problem+json")))]
async fn update_action(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<ActionChange>, JsonRejection>,
) -> Result<Json<ActionJson>, Problem> {
    let Json(b) = body?;
    let status = b.status.as_deref().map(action_status).transpose()?;
    let req = state.upstreams.request(
        &headers,
        pb::UpdateActionRequest {
            action_id: id,
            title: b.title,
            status,
            planned_date: b.planned_date,
            end_date: b.end_date,
            owner_structure_id: b.owner_structure_id,
            owner_user_id: b.owner_user_id,
            referral_id: b.referral_id,
        },
    );
    let r = client(&state).update_action(req).await?.into_inner();
    Ok(Json(r.action.ok_or_else(empty_answer)?.into()))
}
