//! `/people/{id}/access-log` (and its `/summary`), `/export`, `/erase`, `/statistics-objection`:
//! the person's access log and GDPR rights. Identity decides who may.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use eva_proto::identity::v1 as pb;
use eva_proto::identity::v1::access_log_service_client::AccessLogServiceClient;
use eva_proto::identity::v1::rights_service_client::RightsServiceClient;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::statistics::rfc3339;
use crate::structures::Page;
use crate::{AppState, Problem};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(access_log))
        .routes(routes!(access_log_summary))
        .routes(routes!(export))
        .routes(routes!(erase))
        .routes(routes!(objection))
}

const TAG: &str = "Droits des personnes";

const PERSON: &str = "La personne (UUIDv7) / the person";

/// One access to the person's file, as the person reads it.
#[derive(Debug, Serialize, ToSchema)]
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

/// Accesses of one day by one actor, with one action on one kind of resource
/// for one purpose: « 3 lectures du diagnostic par Camille le 12 mars ».
#[derive(Debug, Serialize, ToSchema)]
pub struct AccessGroupJson {
    /// The day, `YYYY-MM-DD`, cut as the `from` and `to` of the access log cut days (Europe/Paris calendar).
    pub day: String,
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
    /// `accompagnement`, `orientation`, `statistiques`, `droits_de_la_personne`…
    pub purpose: String,
    /// Every domain covered by one of the accesses, sorted.
    pub domains: Vec<String>,
    /// How many accesses (at least 1).
    pub count: i64,
    /// When the first happened.
    pub first_at: Option<String>,
    /// When the last happened.
    pub last_at: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AccessLogQuery {
    /// First day, `YYYY-MM-DD`.
    #[serde(default)]
    pub from: String,
    /// Last day, `YYYY-MM-DD`.
    #[serde(default)]
    pub to: String,
    /// Éléments par page : par défaut 50, au plus 500 / items per page: 50 by default, at most 500.
    #[serde(default)]
    pub page_size: i32,
    /// `next_page_token` de la page précédente / the previous page's `next_page_token`.
    #[serde(default)]
    pub page_token: String,
}

/// The body of an erasure: `{"confirm": true}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EraseBody {
    /// Must be `true`: erasure cannot be undone.
    pub confirm: Option<bool>,
    /// A short code, e.g. `demande_de_la_personne`.
    pub reason: Option<String>,
}

/// The erased person.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErasedJson {
    pub person_id: String,
    pub erased_at: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ObjectionBody {
    /// True: the person objects to statistics; false: the objection is lifted.
    pub objected: bool,
}

/// The person's objection to statistics, as recorded.
#[derive(Debug, Serialize, ToSchema)]
pub struct ObjectionJson {
    pub person_id: String,
    pub objected: bool,
    pub updated_at: Option<String>,
}

fn non_empty(s: String) -> Option<String> {
    Some(s).filter(|s| !s.is_empty())
}

/// `counselor`, …; `None` for a system action.
fn role_code(role: i32) -> Option<String> {
    pb::Role::try_from(role)
        .ok()
        .filter(|r| *r != pb::Role::Unspecified)
        .map(|r| r.as_str_name().trim_start_matches("ROLE_").to_lowercase())
}

/// `read`, `write`, `export`, `erase`.
fn action_code(action: i32) -> String {
    eva_proto::audit::v1::AccessAction::try_from(action)
        .map(|a| {
            a.as_str_name()
                .trim_start_matches("ACCESS_ACTION_")
                .to_lowercase()
        })
        .unwrap_or_default()
}

impl From<pb::AccessLogGroup> for AccessGroupJson {
    fn from(g: pb::AccessLogGroup) -> Self {
        Self {
            day: g.day,
            actor_user_id: non_empty(g.actor_user_id),
            actor_display_name: non_empty(g.actor_display_name),
            actor_structure_id: non_empty(g.actor_structure_id),
            actor_structure_name: non_empty(g.actor_structure_name),
            actor_role: role_code(g.actor_role),
            action: action_code(g.action),
            resource_type: g.resource_type,
            purpose: g.purpose,
            domains: g.domains,
            count: g.count,
            first_at: g.first_at.map(|t| rfc3339(&t)),
            last_at: g.last_at.map(|t| rfc3339(&t)),
        }
    }
}

impl From<pb::AccessLogEntry> for AccessJson {
    fn from(e: pb::AccessLogEntry) -> Self {
        let actor_role = role_code(e.actor_role);
        let action = action_code(e.action);
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

/// Le journal des accès d'une personne / A person's access log
///
/// Qui a vu ou modifié quoi dans son dossier, les plus récents d'abord. / Who saw or
/// changed what in their file, newest first.
#[utoipa::path(get, path = "/people/{id}/access-log", tag = TAG,
    params(("id" = String, Path, description = PERSON), AccessLogQuery),
    responses((status = 200, description = "Une page / One page", body = Page<AccessJson>)))]
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

/// Le journal des accès, regroupé / The access log, grouped
///
/// Les accès d'un même jour par une même personne, pour une même action sur un même
/// type de donnée et un même motif, en une ligne avec leur nombre, le premier et le
/// dernier : les jours les plus récents d'abord. Mêmes lecteurs que le journal ; le lire
/// n'est pas noté. / Accesses of one day by one actor, with one action on one kind of
/// resource for one purpose, as one line with their count, first and last: newest day
/// first. Same readers as the log; reading it is not logged.
#[utoipa::path(get, path = "/people/{id}/access-log/summary", tag = TAG,
    params(("id" = String, Path, description = PERSON), AccessLogQuery),
    responses((status = 200, description = "Une page de groupes / One page of groups", body = Page<AccessGroupJson>)))]
async fn access_log_summary(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    query: Result<Query<AccessLogQuery>, QueryRejection>,
) -> Result<Json<Page<AccessGroupJson>>, Problem> {
    let Query(q) = query?;
    let mut client = AccessLogServiceClient::new(state.upstreams.identity.clone());
    let req = state.upstreams.request(
        &headers,
        pb::SummarizeAccessLogRequest {
            page_size: q.page_size,
            page_token: q.page_token,
            person_id: id,
            from: q.from,
            to: q.to,
        },
    );
    let r = client.summarize_access_log(req).await?.into_inner();
    Ok(Json(Page {
        items: r.groups.into_iter().map(Into::into).collect(),
        next_page_token: non_empty(r.next_page_token),
    }))
}

/// Exporter les données d'une personne / Export a person's data
///
/// Droit d'accès et à la portabilité (RGPD art. 15 et 20) : ses données réunies de
/// tous les services, en fichier JSON à télécharger. / Right of access and portability
/// (GDPR art. 15 and 20): their data gathered from every service, as a JSON file to
/// download.
#[utoipa::path(post, path = "/people/{id}/export", tag = TAG,
    params(("id" = String, Path, description = PERSON)),
    responses((status = 200, description = "L'export, en pièce jointe / The export, as an attachment", body = Object, content_type = "application/json")))]
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

/// Effacer une personne / Erase a person
///
/// Droit à l'effacement (RGPD art. 17), par destruction de sa clé : définitif, d'où
/// `{"confirm": true}`. / Right to erasure (GDPR art. 17), by destroying their key:
/// cannot be undone, hence `{"confirm": true}`.
#[utoipa::path(post, path = "/people/{id}/erase", tag = TAG,
    params(("id" = String, Path, description = PERSON)),
    request_body = EraseBody,
    responses((status = 200, description = "Effacée / Erased", body = ErasedJson)))]
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

/// S'opposer aux statistiques / Object to statistics
///
/// Enregistre ou lève l'opposition de la personne (RGPD art. 21). / Records or lifts the
/// person's objection (GDPR art. 21).
#[utoipa::path(put, path = "/people/{id}/statistics-objection", tag = TAG,
    params(("id" = String, Path, description = PERSON)),
    request_body = ObjectionBody,
    responses((status = 200, description = "L'opposition / The objection", body = ObjectionJson)))]
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
