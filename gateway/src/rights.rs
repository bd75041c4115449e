//! `/people/{id}/access-log`, `/export`, `/erase`, `/statistics-objection`:
//! the person's access log and GDPR rights. Identity decides who may.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use eva_proto::identity::v1 as pb;
use eva_proto::identity::v1::access_log_service_client::AccessLogServiceClient;
use eva_proto::identity::v1::rights_service_client::RightsServiceClient;
use serde::{Deserialize, Serialize};

use crate::statistics::rfc3339;
use crate::structures::Page;
use crate::{AppState, Problem};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/people/{id}/access-log", get(access_log))
        .route("/people/{id}/export", post(export))
        .route("/people/{id}/erase", post(erase))
        .route("/people/{id}/statistics-objection", put(objection))
}

/// One access to the person's file, as the person reads it.
#[derive(Debug, Serialize)]
pub struct AccessJson {
    pub id: String,
    pub occurred_at: Option<String>,
    pub actor_user_id: Option<String>,
    /// The professional's name, when the actor is an account of EVA.
    pub actor_display_name: Option<String>,
    pub actor_structure_id: Option<String>,
    pub actor_structure_name: Option<String>,
    /// `person`, `counselor`, `structure_admin`, `partner`, `analyst`,
    /// `operator`; null for a system action.
    pub actor_role: Option<String>,
    /// `read`, `write`, `export`, `erase`.
    pub action: String,
    pub resource_type: String,
    pub resource_id: String,
    pub domains: Vec<String>,
    /// `accompagnement`, `orientation`, `statistiques`, `droits_de_la_personne`…
    pub purpose: String,
    pub service: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessLogQuery {
    /// First day, `YYYY-MM-DD`.
    #[serde(default)]
    pub from: String,
    /// Last day, `YYYY-MM-DD`.
    #[serde(default)]
    pub to: String,
    #[serde(default)]
    pub page_size: i32,
    #[serde(default)]
    pub page_token: String,
}

/// The body of an erasure: `{"confirm": true}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EraseBody {
    pub confirm: Option<bool>,
    /// A short code, e.g. `demande_de_la_personne`.
    pub reason: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ErasedJson {
    pub person_id: String,
    pub erased_at: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectionBody {
    pub objected: bool,
}

#[derive(Debug, Serialize)]
pub struct ObjectionJson {
    pub person_id: String,
    pub objected: bool,
    pub updated_at: Option<String>,
}

fn non_empty(s: String) -> Option<String> {
    Some(s).filter(|s| !s.is_empty())
}

impl From<pb::AccessLogEntry> for AccessJson {
    fn from(e: pb::AccessLogEntry) -> Self {
        let actor_role = pb::Role::try_from(e.actor_role)
            .ok()
            .filter(|r| *r != pb::Role::Unspecified)
            .map(|r| r.as_str_name().trim_start_matches("ROLE_").to_lowercase());
        let action = eva_proto::audit::v1::AccessAction::try_from(e.action)
            .map(|a| {
                a.as_str_name()
                    .trim_start_matches("ACCESS_ACTION_")
                    .to_lowercase()
            })
            .unwrap_or_default();
        Self {
            id: e.access_id,
            occurred_at: e.occurred_at.map(|t| rfc3339(&t)),
            actor_user_id: non_empty(e.actor_user_id),
            actor_display_name: non_empty(e.actor_display_name),
            actor_structure_id: non_empty(e.actor_structure_id),
            actor_structure_name: non_empty(e.actor_structure_name),
            actor_role,
            action,
            resource_type: e.resource_type,
            resource_id: e.resource_id,
            domains: e.domains,
            purpose: e.purpose,
            service: e.service,
        }
    }
}

async fn access_log(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    query: Result<Query<AccessLogQuery>, QueryRejection>,
) -> Result<Json<Page<AccessJson>>, Problem> {
    let Query(q) = query?;
    let mut client = AccessLogServiceClient::new(state.upstreams.identity.clone());
    let req = state.upstreams.request(
        &headers,
        pb::ListAccessLogRequest {
            page_size: q.page_size,
            page_token: q.page_token,
            person_id: id,
            from: q.from,
            to: q.to,
        },
    );
    let r = client.list_access_log(req).await?.into_inner();
    Ok(Json(Page {
        items: r.entries.into_iter().map(Into::into).collect(),
        next_page_token: non_empty(r.next_page_token),
    }))
}

/// The export as a JSON file to download.
async fn export(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let mut client = RightsServiceClient::new(state.upstreams.identity.clone());
    let req = state.upstreams.request(
        &headers,
        pb::ExportPersonRequest {
            person_id: id.clone(),
        },
    );
    let r = client.export_person(req).await?.into_inner();
    let mut res = r.content.into_response();
    let media = HeaderValue::from_str(&r.media_type)
        .unwrap_or_else(|_| HeaderValue::from_static("application/json"));
    res.headers_mut().insert(header::CONTENT_TYPE, media);
    // The id was accepted by identity as a UUID: safe in a header.
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"eva-export-{id}.json\""))
    {
        res.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
}

fn confirm_required() -> Problem {
    Problem::invalid(
        "confirm",
        "l'effacement est définitif : envoyez {\"confirm\": true} pour le confirmer / erasure cannot be undone: send {\"confirm\": true}",
    )
}

async fn erase(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<EraseBody>, JsonRejection>,
) -> Result<Json<ErasedJson>, Problem> {
    // A missing or malformed body is a missing confirmation.
    let Ok(Json(body)) = body else {
        return Err(confirm_required());
    };
    if body.confirm != Some(true) {
        return Err(confirm_required());
    }
    let mut client = RightsServiceClient::new(state.upstreams.identity.clone());
    let req = state.upstreams.request(
        &headers,
        pb::ErasePersonRequest {
            person_id: id.clone(),
            reason: body.reason.unwrap_or_default(),
        },
    );
    let r = client.erase_person(req).await?.into_inner();
    Ok(Json(ErasedJson {
        person_id: id,
        erased_at: r.erased_at.map(|t| rfc3339(&t)),
    }))
}

async fn objection(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<ObjectionBody>, JsonRejection>,
) -> Result<Json<ObjectionJson>, Problem> {
    let Json(body) = body?;
    let mut client = RightsServiceClient::new(state.upstreams.identity.clone());
    let req = state.upstreams.request(
        &headers,
        pb::SetStatisticsObjectionRequest {
            person_id: id.clone(),
            objected: body.objected,
        },
    );
    let r = client.set_statistics_objection(req).await?.into_inner();
    Ok(Json(ObjectionJson {
        person_id: id,
        objected: r.objected,
        updated_at: r.updated_at.map(|t| rfc3339(&t)),
    }))
}
