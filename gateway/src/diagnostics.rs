//! `/people/{id}/diagnostics`, `/diagnostics/{id}` (+ `/share`,
//! `/self-rating`) and `/diagnostics/compare`: a person's diagnostics. Each
//! domain carries `"access": "visible"` or `"withheld"` (nothing inside);
//! levels, statuses and evolutions are codes.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use eva_proto::diagnostics::v1 as pb;
use eva_proto::diagnostics::v1::diagnostic_service_client::DiagnosticServiceClient;
use eva_proto::identity::v1::ConsentPurpose;
use serde::{Deserialize, Serialize};

use crate::json::{code, empty_answer, non_empty, when};
use crate::structures::Page;
use crate::{AppState, Problem};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/people/{id}/diagnostics", get(list).post(create))
        .route("/diagnostics/compare", get(compare))
        .route("/diagnostics/{id}", get(fetch).patch(rate))
        .route("/diagnostics/{id}/self-rating", post(self_rate))
        .route("/diagnostics/{id}/share", post(share))
}

#[derive(Debug, Serialize)]
pub struct DiagnosticJson {
    pub id: String,
    pub person_id: String,
    pub structure_id: String,
    pub counselor_user_id: String,
    pub referentiel_version: String,
    /// `brouillon`, `partage`, `remplace`.
    pub status: Option<String>,
    pub previous_diagnostic_id: Option<String>,
    pub superseded_by_diagnostic_id: Option<String>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
    pub shared_at: Option<String>,
    pub superseded_at: Option<String>,
    pub domains: Vec<DomainJson>,
}

#[derive(Debug, Serialize)]
pub struct DomainJson {
    pub domain_id: String,
    /// `visible` or `withheld`.
    pub access: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub items: Option<Vec<ItemJson>>,
}

#[derive(Debug, Serialize)]
pub struct ItemJson {
    pub item_id: String,
    pub counselor_level: Option<String>,
    pub person_level: Option<String>,
    pub counselor_note: Option<String>,
    pub person_note: Option<String>,
    pub counselor_rated_at: Option<String>,
    pub person_rated_at: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct SummaryJson {
    pub id: String,
    pub person_id: String,
    pub structure_id: String,
    pub counselor_user_id: String,
    pub referentiel_version: String,
    pub status: Option<String>,
    pub created_at: Option<String>,
    pub shared_at: Option<String>,
    pub superseded_at: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ShareJson {
    pub diagnostic: DiagnosticJson,
    pub superseded_diagnostic_id: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ComparisonJson {
    pub from: Option<SummaryJson>,
    pub to: Option<SummaryJson>,
    pub items: Vec<ItemComparisonJson>,
}

#[derive(Debug, Serialize)]
pub struct ItemComparisonJson {
    pub domain_id: String,
    pub item_id: String,
    pub access: &'static str,
    pub from_counselor_level: Option<String>,
    pub to_counselor_level: Option<String>,
    /// `improved`, `unchanged`, `worsened`, `newly_addressed`, `not_comparable`.
    pub counselor_evolution: Option<String>,
    pub from_person_level: Option<String>,
    pub to_person_level: Option<String>,
    pub person_evolution: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateDiagnostic {
    pub structure_id: String,
    #[serde(default)]
    pub copy_from_diagnostic_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ratings {
    pub ratings: Vec<RatingJson>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RatingJson {
    pub item_id: String,
    /// A level code, e.g. `frein`.
    pub level: String,
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadQuery {
    #[serde(default)]
    pub purpose: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default)]
    pub page_size: i32,
    #[serde(default)]
    pub page_token: String,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub purpose: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompareQuery {
    pub from: String,
    pub to: String,
    #[serde(default)]
    pub purpose: Option<String>,
}

fn level(l: i32) -> Option<String> {
    pb::Level::try_from(l)
        .ok()
        .and_then(|l| code(l.as_str_name(), "LEVEL_"))
}

fn status(s: i32) -> Option<String> {
    pb::DiagnosticStatus::try_from(s)
        .ok()
        .and_then(|s| code(s.as_str_name(), "DIAGNOSTIC_STATUS_"))
}

fn evolution(e: i32) -> Option<String> {
    pb::ItemEvolution::try_from(e)
        .ok()
        .and_then(|e| code(e.as_str_name(), "ITEM_EVOLUTION_"))
}

fn access(a: i32) -> &'static str {
    if a == pb::DomainAccess::Visible as i32 {
        "visible"
    } else {
        "withheld"
    }
}

fn level_from_json(field: &str, s: &str) -> Result<i32, Problem> {
    pb::Level::from_str_name(&format!("LEVEL_{}", s.trim().to_uppercase()))
        .filter(|l| *l != pb::Level::Unspecified)
        .map(|l| l as i32)
        .ok_or_else(|| {
            Problem::invalid(
                field,
                "niveau inconnu : non_aborde, frein_majeur, frein, sans_impact ou point_d_appui / unknown level",
            )
        })
}

fn status_from_json(s: Option<&str>) -> Result<i32, Problem> {
    match s {
        None | Some("") => Ok(0),
        Some(s) => pb::DiagnosticStatus::from_str_name(&format!(
            "DIAGNOSTIC_STATUS_{}",
            s.trim().to_uppercase()
        ))
        .filter(|s| *s != pb::DiagnosticStatus::Unspecified)
        .map(|s| s as i32)
        .ok_or_else(|| {
            Problem::invalid(
                "status",
                "statut inconnu : brouillon, partage ou remplace / unknown status",
            )
        }),
    }
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

impl From<pb::Diagnostic> for DiagnosticJson {
    fn from(d: pb::Diagnostic) -> Self {
        Self {
            id: d.diagnostic_id,
            person_id: d.person_id,
            structure_id: d.structure_id,
            counselor_user_id: d.counselor_user_id,
            referentiel_version: d.referentiel_version,
            status: status(d.status),
            previous_diagnostic_id: non_empty(d.previous_diagnostic_id),
            superseded_by_diagnostic_id: non_empty(d.superseded_by_diagnostic_id),
            created_at: when(d.created_at),
            updated_at: when(d.updated_at),
            shared_at: when(d.shared_at),
            superseded_at: when(d.superseded_at),
            domains: d
                .domains
                .into_iter()
                .map(|dom| {
                    let visible = dom.access == pb::DomainAccess::Visible as i32;
                    DomainJson {
                        domain_id: dom.domain_id,
                        access: access(dom.access),
                        items: visible.then(|| {
                            dom.items
                                .into_iter()
                                .map(|i| ItemJson {
                                    item_id: i.item_id,
                                    counselor_level: level(i.counselor_level),
                                    person_level: level(i.person_level),
                                    counselor_note: non_empty(i.counselor_note),
                                    person_note: non_empty(i.person_note),
                                    counselor_rated_at: when(i.counselor_rated_at),
                                    person_rated_at: when(i.person_rated_at),
                                })
                                .collect()
                        }),
                    }
                })
                .collect(),
        }
    }
}

impl From<pb::DiagnosticSummary> for SummaryJson {
    fn from(d: pb::DiagnosticSummary) -> Self {
        Self {
            id: d.diagnostic_id,
            person_id: d.person_id,
            structure_id: d.structure_id,
            counselor_user_id: d.counselor_user_id,
            referentiel_version: d.referentiel_version,
            status: status(d.status),
            created_at: when(d.created_at),
            shared_at: when(d.shared_at),
            superseded_at: when(d.superseded_at),
        }
    }
}

fn client(state: &AppState) -> DiagnosticServiceClient<tonic::transport::Channel> {
    DiagnosticServiceClient::new(state.upstreams.diagnostics.clone())
}

fn ratings(body: Ratings) -> Result<Vec<pb::RatingInput>, Problem> {
    body.ratings
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            Ok(pb::RatingInput {
                item_id: r.item_id,
                level: level_from_json(&format!("ratings[{i}].level"), &r.level)?,
                note: r.note,
            })
        })
        .collect()
}

async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(person_id): Path<String>,
    body: Result<Json<CreateDiagnostic>, JsonRejection>,
) -> Result<(StatusCode, Json<DiagnosticJson>), Problem> {
    let Json(body) = body?;
    let req = state.upstreams.request(
        &headers,
        pb::CreateDiagnosticRequest {
            person_id,
            structure_id: body.structure_id,
            copy_from_diagnostic_id: body.copy_from_diagnostic_id.unwrap_or_default(),
        },
    );
    let r = client(&state).create_diagnostic(req).await?.into_inner();
    Ok((
        StatusCode::CREATED,
        Json(r.diagnostic.ok_or_else(empty_answer)?.into()),
    ))
}

async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(person_id): Path<String>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Page<SummaryJson>>, Problem> {
    let Query(q) = query?;
    let req = state.upstreams.request(
        &headers,
        pb::ListDiagnosticsRequest {
            page_size: q.page_size,
            page_token: q.page_token,
            person_id,
            status: status_from_json(q.status.as_deref())?,
            purpose: purpose_from_json(q.purpose.as_deref())?,
        },
    );
    let r = client(&state).list_diagnostics(req).await?.into_inner();
    Ok(Json(Page {
        items: r.diagnostics.into_iter().map(Into::into).collect(),
        next_page_token: non_empty(r.next_page_token),
    }))
}

async fn fetch(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    query: Result<Query<ReadQuery>, QueryRejection>,
) -> Result<Json<DiagnosticJson>, Problem> {
    let Query(q) = query?;
    let req = state.upstreams.request(
        &headers,
        pb::GetDiagnosticRequest {
            diagnostic_id: id,
            purpose: purpose_from_json(q.purpose.as_deref())?,
        },
    );
    let r = client(&state).get_diagnostic(req).await?.into_inner();
    Ok(Json(r.diagnostic.ok_or_else(empty_answer)?.into()))
}

async fn rate(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<Ratings>, JsonRejection>,
) -> Result<Json<DiagnosticJson>, Problem> {
    let Json(body) = body?;
    let req = state.upstreams.request(
        &headers,
        pb::RateItemsRequest {
            diagnostic_id: id,
            ratings: ratings(body)?,
        },
    );
    let r = client(&state).rate_items(req).await?.into_inner();
    Ok(Json(r.diagnostic.ok_or_else(empty_answer)?.into()))
}

async fn self_rate(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<Ratings>, JsonRejection>,
) -> Result<Json<DiagnosticJson>, Problem> {
    let Json(body) = body?;
    let req = state.upstreams.request(
        &headers,
        pb::SelfRateItemsRequest {
            diagnostic_id: id,
            ratings: ratings(body)?,
        },
    );
    let r = client(&state).self_rate_items(req).await?.into_inner();
    Ok(Json(r.diagnostic.ok_or_else(empty_answer)?.into()))
}

async fn share(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<ShareJson>, Problem> {
    let req = state
        .upstreams
        .request(&headers, pb::ShareDiagnosticRequest { diagnostic_id: id });
    let r = client(&state).share_diagnostic(req).await?.into_inner();
    Ok(Json(ShareJson {
        diagnostic: r.diagnostic.ok_or_else(empty_answer)?.into(),
        superseded_diagnostic_id: non_empty(r.superseded_diagnostic_id),
    }))
}

async fn compare(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<CompareQuery>, QueryRejection>,
) -> Result<Json<ComparisonJson>, Problem> {
    let Query(q) = query?;
    let req = state.upstreams.request(
        &headers,
        pb::CompareDiagnosticsRequest {
            from_diagnostic_id: q.from,
            to_diagnostic_id: q.to,
            purpose: purpose_from_json(q.purpose.as_deref())?,
        },
    );
    let r = client(&state).compare_diagnostics(req).await?.into_inner();
    Ok(Json(ComparisonJson {
        from: r.from.map(Into::into),
        to: r.to.map(Into::into),
        items: r
            .items
            .into_iter()
            .map(|i| ItemComparisonJson {
                domain_id: i.domain_id,
                item_id: i.item_id,
                access: access(i.access),
                from_counselor_level: level(i.from_counselor_level),
                to_counselor_level: level(i.to_counselor_level),
                counselor_evolution: evolution(i.counselor_evolution),
                from_person_level: level(i.from_person_level),
                to_person_level: level(i.to_person_level),
                person_evolution: evolution(i.person_evolution),
            })
            .collect(),
    }))
}
