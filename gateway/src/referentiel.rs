//! `/referentiel`: the référentiel commun (current version, past versions).

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use eva_proto::diagnostics::v1 as pb;
use eva_proto::diagnostics::v1::referentiel_service_client::ReferentielServiceClient;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::structures::Page;
use crate::{AppState, Problem};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(current))
        .routes(routes!(list))
        .routes(routes!(fetch))
}

const TAG: &str = "Référentiel";

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
}

/// A version of the référentiel, as JSON.
#[derive(Debug, Serialize, ToSchema)]
pub struct Referentiel {
    /// e.g. `2026.1`.
    pub version: String,
    /// `YYYY-MM-DD`.
    pub published_on: String,
    /// The version new diagnostics use.
    pub current: bool,
    /// The five levels of an item, from the worst barrier to a support.
    pub levels: Vec<Level>,
    pub domains: Vec<Domain>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Level {
    /// `non_aborde`, `frein_majeur`, `frein`, `sans_impact`, `point_d_appui`.
    pub code: String,
    pub label_fr: String,
    pub label_en: String,
    pub description_fr: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Domain {
    pub id: String,
    pub label_fr: String,
    pub label_en: String,
    pub description_fr: String,
    /// Special-category data (health, justice): covered by a consent only when the
    /// person chose it explicitly.
    pub sensitive: bool,
    pub france_travail_code: Option<String>,
    pub data_inclusion_thematiques: Vec<String>,
    pub items: Vec<Item>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Item {
    pub id: String,
    pub label_fr: String,
    pub label_en: String,
    pub help_fr: String,
    pub data_inclusion_thematiques: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Version {
    pub version: String,
    /// `YYYY-MM-DD`.
    pub published_on: String,
    pub current: bool,
}

fn referentiel(r: pb::Referentiel) -> Referentiel {
    Referentiel {
        version: r.version,
        published_on: r.published_on,
        current: r.current,
        levels: r
            .levels
            .into_iter()
            .map(|l| Level {
                code: l.code,
                label_fr: l.label_fr,
                label_en: l.label_en,
                description_fr: l.description_fr,
            })
            .collect(),
        domains: r
            .domains
            .into_iter()
            .map(|d| Domain {
                id: d.domain_id,
                label_fr: d.label_fr,
                label_en: d.label_en,
                description_fr: d.description_fr,
                sensitive: d.sensitive,
                france_travail_code: Some(d.france_travail_code).filter(|c| !c.is_empty()),
                data_inclusion_thematiques: d.data_inclusion_thematiques,
                items: d
                    .items
                    .into_iter()
                    .map(|i| Item {
                        id: i.item_id,
                        label_fr: i.label_fr,
                        label_en: i.label_en,
                        help_fr: i.help_fr,
                        data_inclusion_thematiques: i.data_inclusion_thematiques,
                    })
                    .collect(),
            })
            .collect(),
    }
}

async fn get_version(
    state: &AppState,
    headers: &HeaderMap,
    version: String,
) -> Result<Json<Referentiel>, Problem> {
    let mut client = ReferentielServiceClient::new(state.upstreams.diagnostics.clone());
    let r = client
        .get_referentiel(
            state
                .upstreams
                .request(headers, pb::GetReferentielRequest { version }),
        )
        .await?
        .into_inner();
    let r = r
        .referentiel
        .ok_or_else(|| Problem::not_found("référentiel introuvable / référentiel not found"))?;
    Ok(Json(referentiel(r)))
}

/// Le référentiel en vigueur / The current référentiel
///
/// Domaines, items et niveaux de la version courante. / Domains, items and levels of the
/// current version.
#[utoipa::path(get, path = "/referentiel", tag = TAG,
    responses((status = 200, description = "Le référentiel / The référentiel", body = Referentiel)))]
async fn current(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Referentiel>, Problem> {
    get_version(&state, &headers, String::new()).await
}

/// Une version du référentiel / One version of the référentiel
#[utoipa::path(get, path = "/referentiel/versions/{version}", tag = TAG, params(("version" = String, Path, description = "La version, p. ex. `2026.1` / the version, e.g. `2026.1`")),
    responses((status = 200, description = "Cette version / That version", body = Referentiel)))]
async fn fetch(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(version): Path<String>,
) -> Result<Json<Referentiel>, Problem> {
    get_version(&state, &headers, version).await
}

/// Les versions du référentiel / The référentiel's versions
#[utoipa::path(get, path = "/referentiel/versions", tag = TAG, params(ListQuery),
    responses((status = 200, description = "Une page de versions / One page of versions", body = Page<Version>)))]
async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Page<Version>>, Problem> {
    let Query(q) = query?;
    let mut client = ReferentielServiceClient::new(state.upstreams.diagnostics.clone());
    let r = client
        .list_referentiel_versions(state.upstreams.request(
            &headers,
            pb::ListReferentielVersionsRequest {
                page_size: q.page_size,
                page_token: q.page_token,
            },
        ))
        .await?
        .into_inner();
    Ok(Json(Page {
        items: r
            .versions
            .into_iter()
            .map(|v| Version {
                version: v.version,
                published_on: v.published_on,
                current: v.current,
            })
            .collect(),
        next_page_token: Some(r.next_page_token).filter(|t| !t.is_empty()),
    }))
}
