//! The action plan of a diagnostic: `GET /diagnostics/{id}/plan`,
//! `POST /diagnostics/{id}/plan/objectives`, `PATCH /plan/objectives/{id}`,
//! `POST /plan/objectives/{id}/actions`, `PATCH /plan/actions/{id}`.
//! As for diagnostics, each domain carries `"access": "visible"` (with its
//! objectives) or `"withheld"` (nothing inside); statuses are codes.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use eva_proto::diagnostics::v1 as pb;
use eva_proto::diagnostics::v1::action_plan_service_client::ActionPlanServiceClient;
use eva_proto::identity::v1::ConsentPurpose;
use serde::{Deserialize, Serialize};

use crate::json::{code, empty_answer, non_empty, when};
use crate::{AppState, Problem};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/diagnostics/{id}/plan", get(fetch))
        .route("/diagnostics/{id}/plan/objectives", post(add_objective))
        .route("/plan/objectives/{id}", patch(update_objective))
        .route("/plan/objectives/{id}/actions", post(add_action))
        .route("/plan/actions/{id}", patch(update_action))
}

#[derive(Debug, Serialize)]
pub struct PlanJson {
    pub diagnostic_id: String,
    pub person_id: String,
    /// Visible domains with objectives, then withheld domains.
    pub domains: Vec<PlanDomainJson>,
}

#[derive(Debug, Serialize)]
pub struct PlanDomainJson {
    pub domain_id: String,
    /// `visible` or `withheld`.
    pub access: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub objectives: Option<Vec<ObjectiveJson>>,
}

#[derive(Debug, Serialize)]
pub struct ObjectiveJson {
    pub id: String,
    pub diagnostic_id: String,
    pub domain_id: String,
    pub title: String,
    /// `en_cours`, `realise`, `abandonne`.
    pub status: Option<String>,
    pub start_date: Option<String>,
    pub target_date: Option<String>,
    pub end_date: Option<String>,
    pub owner_structure_id: String,
    pub owner_user_id: Option<String>,
    pub actions: Vec<ActionJson>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}

#[derive(Debug, Serialize)]
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadQuery {
    #[serde(default)]
    pub purpose: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewObjective {
    pub domain_id: String,
    pub title: String,
    #[serde(default)]
    pub start_date: Option<String>,
    #[serde(default)]
    pub target_date: Option<String>,
    #[serde(default)]
    pub owner_user_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectiveChange {
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub target_date: Option<String>,
    #[serde(default)]
    pub end_date: Option<String>,
    #[serde(default)]
    pub owner_user_id: Option<String>,
}

#[derive(Debug, Deserialize)]
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionChange {
    #[serde(default)]
    pub title: Option<String>,
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
