//! `/community/search` (French full-text search over questions, answers and
//! solutions) and `/community/screen` (what in a text looks like personal
//! data of a person supported, to anonymise before posting). Codes: kinds
//! `question`, `answer`, `solution`; finding kinds `email`, `phone`, `nir`,
//! `person_name`.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use eva_proto::community::v1 as pb;
use eva_proto::community::v1::search_service_client::SearchServiceClient;
use serde::{Deserialize, Serialize};
use tonic::transport::Channel;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::json::{code, non_empty};
use crate::structures::Page;
use crate::{AppState, Problem};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(search))
        .routes(routes!(screen))
}

const TAG: &str = "Recherche";
/// Screening belongs with the rest of the community's moderation.
const MODERATION: &str = "Modération";

fn client(state: &AppState) -> SearchServiceClient<Channel> {
    SearchServiceClient::new(state.upstreams.community.clone())
}

/// `?q=&domain=&territory=&kind=&page_size=&page_token=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    /// The words searched, in French; accents, case and plurals do not matter.
    #[serde(default)]
    pub q: String,
    /// One domain, or several separated by commas.
    #[serde(default)]
    pub domain: Option<String>,
    /// A département or INSEE commune code.
    #[serde(default)]
    pub territory: Option<String>,
    /// `question`, `answer` or `solution`.
    #[serde(default)]
    pub kind: Option<String>,
    /// Éléments par page : par défaut 50, au plus 500 / items per page: 50 by default, at most 500.
    #[serde(default)]
    pub page_size: i32,
    /// `next_page_token` de la page précédente / the previous page's `next_page_token`.
    #[serde(default)]
    pub page_token: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ContentJson {
    /// `question`, `answer` or `solution`.
    pub kind: Option<String>,
    pub content_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HitJson {
    pub content: Option<ContentJson>,
    /// For an answer: its question; for a question: itself.
    pub question_id: Option<String>,
    pub title: String,
    /// An extract around the matched words.
    pub snippet: String,
    /// Relevance, higher is better; only comparable within one search.
    pub score: f64,
}

fn kind_code(k: i32) -> Option<String> {
    pb::ContentKind::try_from(k)
        .ok()
        .and_then(|k| code(k.as_str_name(), "CONTENT_KIND_"))
}

impl From<pb::SearchHit> for HitJson {
    fn from(h: pb::SearchHit) -> Self {
        Self {
            content: h.content.map(|c| ContentJson {
                kind: kind_code(c.kind),
                content_id: c.content_id,
            }),
            question_id: non_empty(h.question_id),
            title: h.title,
            snippet: h.snippet,
            score: h.score,
        }
    }
}

/// Chercher dans la communauté / Search the community
///
/// Recherche plein texte en français dans les questions, réponses et fiches solutions que vous
/// pouvez lire, la meilleure correspondance d'abord. / French full-text search over the
/// questions, answers and solution sheets you can read, best match first.
#[utoipa::path(get, path = "/community/search", tag = TAG, params(SearchQuery),
    responses((status = 200, description = "Une page de résultats / One page of hits", body = Page<HitJson>)))]
async fn search(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<SearchQuery>, QueryRejection>,
) -> Result<Json<Page<HitJson>>, Problem> {
    let Query(q) = query?;
    let kind = match q.kind.as_deref().map(str::trim) {
        None | Some("") => pb::ContentKind::Unspecified,
        Some("question") => pb::ContentKind::Question,
        Some("answer") => pb::ContentKind::Answer,
        Some("solution") => pb::ContentKind::Solution,
        Some(_) => {
            return Err(Problem::invalid(
                "kind",
                "question, answer ou solution / question, answer or solution",
            ));
        }
    };
    let domains = q
        .domain
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(str::to_owned)
        .collect();
    let req = state.upstreams.request(
        &headers,
        pb::SearchRequest {
            page_size: q.page_size,
            page_token: q.page_token,
            query: q.q,
            kind: kind as i32,
            domains,
            territory_code: q.territory.unwrap_or_default(),
        },
    );
    let r = client(&state).search(req).await?.into_inner();
    Ok(Json(Page {
        items: r.hits.into_iter().map(Into::into).collect(),
        next_page_token: non_empty(r.next_page_token),
    }))
}

/// `{fields: {title, body}}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScreenBody {
    pub fields: ScreenFields,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScreenFields {
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub body: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FindingJson {
    /// `email`, `phone`, `nir` or `person_name`.
    pub kind: Option<String>,
    /// `title` or `body`.
    pub field: String,
    /// Where it starts, in Unicode characters from 0.
    pub start: i32,
    /// Where it ends (excluded), in Unicode characters.
    pub end: i32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ScreenJson {
    /// Empty when the text may be posted.
    pub findings: Vec<FindingJson>,
}

/// Relire un texte avant de le publier / Screen a text before posting it
///
/// Ce qui ressemble à des données personnelles d'une personne accompagnée (NIR, téléphone,
/// e-mail, nom d'une personne suivie par votre structure), à anonymiser ; rien n'est
/// enregistré. / What looks like personal data of a person supported (NIR, phone, e-mail,
/// name of a person your structure follows), to anonymise; nothing is stored.
#[utoipa::path(post, path = "/community/screen", tag = MODERATION, request_body = ScreenBody,
    responses((status = 200, description = "Les trouvailles / The findings", body = ScreenJson)))]
async fn screen(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<ScreenBody>, JsonRejection>,
) -> Result<Json<ScreenJson>, Problem> {
    let Json(b) = body?;
    let req = state.upstreams.request(
        &headers,
        pb::ScreenTextRequest {
            title: b.fields.title,
            body: b.fields.body,
        },
    );
    let r = client(&state).screen_text(req).await?.into_inner();
    Ok(Json(ScreenJson {
        findings: r
            .findings
            .into_iter()
            .map(|f| FindingJson {
                kind: pb::FindingKind::try_from(f.kind)
                    .ok()
                    .and_then(|k| code(k.as_str_name(), "FINDING_KIND_")),
                field: f.field,
                start: f.start,
                end: f.end,
            })
            .collect(),
    }))
}
