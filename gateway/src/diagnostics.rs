//! `/people/{id}/diagnostics`, `/diagnostics/{id}` (+ `/share`,
//! `/self-rating`) and `/diagnostics/compare`: a person's diagnostics;
//! `/structures/{id}/latest-diagnostics`: the latest one of each person of a
//! caseload page, metadata only. Each
//! domain carries `"access": "visible"` or `"withheld"` (nothing inside);
//! levels, statuses and evolutions are codes.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use eva_proto::diagnostics::v1 as pb;
use eva_proto::diagnostics::v1::diagnostic_service_client::DiagnosticServiceClient;
use eva_proto::identity::v1::ConsentPurpose;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::json::{code, empty_answer, non_empty, when};
use crate::structures::Page;
use crate::{AppState, Problem};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(compare))
        .routes(routes!(fetch, rate))
        .routes(routes!(self_rate))
        .routes(routes!(share))
        .routes(routes!(latest))
}

const TAG: &str = "Diagnostics";

#[derive(Debug, Serialize, ToSchema)]
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

#[derive(Debug, Serialize, ToSchema)]
pub struct DomainJson {
    pub domain_id: String,
    /// `visible` or `withheld`.
    pub access: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub items: Option<Vec<ItemJson>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ItemJson {
    pub item_id: String,
    /// `non_aborde`, `frein_majeur`, `frein`, `sans_impact`, `point_d_appui`.
    pub counselor_level: Option<String>,
    /// The person's own rating, same codes.
    pub person_level: Option<String>,
    pub counselor_note: Option<String>,
    pub person_note: Option<String>,
    pub counselor_rated_at: Option<String>,
    pub person_rated_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
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

/// A person of the caseload and their latest diagnostic.
#[derive(Debug, Serialize, ToSchema)]
pub struct PersonLatestJson {
    pub person_id: String,
    /// Absent (`null`) when the person has no diagnostic yet.
    pub latest: Option<LatestJson>,
}

/// A diagnostic's metadata: no rating, no note.
#[derive(Debug, Serialize, ToSchema)]
pub struct LatestJson {
    pub id: String,
    /// `brouillon`, `partage`, `remplace`.
    pub status: Option<String>,
    pub created_at: Option<String>,
    /// Unset while a draft.
    pub shared_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LatestListJson {
    /// One per person asked that the structure follows, in the order asked; the others are
    /// left out.
    pub items: Vec<PersonLatestJson>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LatestQuery {
    /// Les personnes (UUIDv7), séparées par des virgules, au plus 500 / the people (UUIDv7),
    /// comma-separated, at most 500.
    #[serde(default)]
    pub person_ids: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ShareJson {
    pub diagnostic: DiagnosticJson,
    /// The person's previous shared diagnostic, now `remplace`.
    pub superseded_diagnostic_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ComparisonJson {
    pub from: Option<SummaryJson>,
    pub to: Option<SummaryJson>,
    pub items: Vec<ItemComparisonJson>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ItemComparisonJson {
    pub domain_id: String,
    pub item_id: String,
    /// `visible` or `withheld`.
    pub access: &'static str,
    pub from_counselor_level: Option<String>,
    pub to_counselor_level: Option<String>,
    /// `improved`, `unchanged`, `worsened`, `newly_addressed`, `not_comparable`.
    pub counselor_evolution: Option<String>,
    pub from_person_level: Option<String>,
    pub to_person_level: Option<String>,
    pub person_evolution: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDiagnostic {
    pub structure_id: String,
    /// Start from this earlier diagnostic's visible counselor ratings.
    #[serde(default)]
    pub copy_from_diagnostic_id: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Ratings {
    pub ratings: Vec<RatingJson>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RatingJson {
    pub item_id: String,
    /// `non_aborde`, `frein_majeur`, `frein`, `sans_impact` or `point_d_appui`.
    pub level: String,
    #[serde(default)]
    pub note: Option<String>,
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

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Éléments par page : par défaut 50, au plus 500 / items per page: 50 by default, at most 500.
    #[serde(default)]
    pub page_size: i32,
    /// `next_page_token` de la page précédente / the previous page's `next_page_token`.
    #[serde(default)]
    pub page_token: String,
    /// `brouillon`, `partage` or `remplace`; all when absent.
    #[serde(default)]
    pub status: Option<String>,
    /// La finalité de la lecture, qui décide des domaines visibles : `accompagnement`,
    /// `orientation` ou `statistiques` / the purpose of the read, which decides the visible
    /// domains.
    #[serde(default)]
    pub purpose: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CompareQuery {
    /// Le diagnostic de départ (UUIDv7) / the earlier diagnostic.
    pub from: String,
    /// Le diagnostic d'arrivée (UUIDv7) / the later diagnostic.
    pub to: String,
    /// La finalité de la lecture, qui décide des domaines visibles : `accompagnement`,
    /// `orientation` ou `statistiques` / the purpose of the read, which decides the visible
    /// domains.
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

/// Ouvrir un diagnostic / Open a diagnostic
///
/// Un brouillon sur la version en vigueur du référentiel, éventuellement repris des cotations
/// d'un diagnostic antérieur. / A draft on the current référentiel version, optionally starting
/// from an earlier diagnostic's ratings.
#[utoipa::path(post, path = "/people/{id}/diagnostics", tag = TAG, params(("id" = String, Path, description = "La personne (UUIDv7) / the person")),
    request_body = CreateDiagnostic,
    responses((status = 201, description = "Le brouillon / The draft", body = DiagnosticJson),
        (status = 409, description = "Aucun référentiel en vigueur / No référentiel in force", body = Problem, content_type = "application/problem+json")))]
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

/// Les diagnostics d'une personne / A person's diagnostics
#[utoipa::path(get, path = "/people/{id}/diagnostics", tag = TAG, params(("id" = String, Path, description = "La personne (UUIDv7) / the person"), ListQuery),
    responses((status = 200, description = "Une page de résumés / One page of summaries", body = Page<SummaryJson>)))]
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

/// Un diagnostic / One diagnostic
///
/// Chaque domaine est `visible` (avec ses items) ou `withheld` selon le consentement de la
/// personne. / Each domain is `visible` (with its items) or `withheld` by the person's consent.
#[utoipa::path(get, path = "/diagnostics/{id}", tag = TAG, params(("id" = String, Path, description = "Le diagnostic (UUIDv7) / the diagnostic"), ReadQuery),
    responses((status = 200, description = "Le diagnostic / The diagnostic", body = DiagnosticJson)))]
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

/// Coter des items / Rate items
///
/// La cotation du conseiller, sur un brouillon. / The counselor's rating, on a draft.
#[utoipa::path(patch, path = "/diagnostics/{id}", tag = TAG, params(("id" = String, Path, description = "Le diagnostic (UUIDv7) / the diagnostic")),
    request_body = Ratings,
    responses((status = 200, description = "Le diagnostic / The diagnostic", body = DiagnosticJson),
        (status = 409, description = "Le diagnostic n'est plus un brouillon / The diagnostic is no longer a draft", body = Problem, content_type = "application/problem+json")))]
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

/// Auto-évaluation de la personne / The person's self-rating
///
/// La cotation de la personne elle-même, sur un brouillon. / The person's own rating, on a
/// draft.
#[utoipa::path(post, path = "/diagnostics/{id}/self-rating", tag = TAG, params(("id" = String, Path, description = "Le diagnostic (UUIDv7) / the diagnostic")),
    request_body = Ratings,
    responses((status = 200, description = "Le diagnostic / The diagnostic", body = DiagnosticJson),
        (status = 409, description = "Le diagnostic n'est plus un brouillon / The diagnostic is no longer a draft", body = Problem, content_type = "application/problem+json")))]
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

/// Partager un diagnostic / Share a diagnostic
///
/// Le brouillon devient `partage` ; le diagnostic partagé précédent de la personne devient
/// `remplace`. / The draft becomes `partage`; the person's previous shared diagnostic becomes
/// `remplace`.
#[utoipa::path(post, path = "/diagnostics/{id}/share", tag = TAG, params(("id" = String, Path, description = "Le diagnostic (UUIDv7) / the diagnostic")),
    responses((status = 200, description = "Le diagnostic partagé / The shared diagnostic", body = ShareJson),
        (status = 409, description = "Plus un brouillon, ou aucun item coté / No longer a draft, or no item rated", body = Problem, content_type = "application/problem+json")))]
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

/// Comparer deux diagnostics / Compare two diagnostics
///
/// Item par item, l'évolution des niveaux : `improved`, `unchanged`, `worsened`,
/// `newly_addressed`, `not_comparable`. / Item by item, how the levels moved.
#[utoipa::path(get, path = "/diagnostics/compare", tag = TAG, params(CompareQuery),
    responses((status = 200, description = "La comparaison / The comparison", body = ComparisonJson)))]
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

/// Le dernier diagnostic des personnes suivies / The people's latest diagnostics
///
/// Pour une page de la file active d'une structure : le dernier diagnostic de chaque personne
/// suivie (partagé ou remplacé par toute structure, ou brouillon de celle-ci), sans cotation
/// ni note. Réservé aux membres de la structure ; les personnes qu'elle ne suit pas sont
/// omises. Chaque personne retrouve cette lecture dans son journal d'accès. / For a page of a
/// structure's caseload: each followed person's latest diagnostic (shared or superseded by any
/// structure, or a draft of this one), with no rating and no note. Members of the structure
/// only; people it does not follow are left out. Each person finds this read in their access
/// log.
#[utoipa::path(get, path = "/structures/{id}/latest-diagnostics", tag = TAG,
    params(("id" = String, Path, description = "La structure (UUIDv7) / the structure"), LatestQuery),
    responses((status = 200, description = "Une entrée par personne suivie / One entry per followed person", body = LatestListJson),
        (status = 400, description = "Identifiant invalide ou plus de 500 personnes / Invalid id or more than 500 people", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Pas membre de la structure / Not a member of the structure", body = Problem, content_type = "application/problem+json")))]
async fn latest(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(structure_id): Path<String>,
    query: Result<Query<LatestQuery>, QueryRejection>,
) -> Result<Json<LatestListJson>, Problem> {
    let Query(q) = query?;
    let person_ids = q
        .person_ids
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let req = state.upstreams.request(
        &headers,
        pb::ListLatestDiagnosticsRequest {
            structure_id,
            person_ids,
        },
    );
    let r = client(&state)
        .list_latest_diagnostics(req)
        .await?
        .into_inner();
    Ok(Json(LatestListJson {
        items: r
            .people
            .into_iter()
            .map(|p| PersonLatestJson {
                person_id: p.person_id,
                latest: p.latest.map(|d| LatestJson {
                    id: d.diagnostic_id,
                    status: status(d.status),
                    created_at: when(d.created_at),
                    shared_at: when(d.shared_at),
                }),
            })
            .collect(),
    }))
}
