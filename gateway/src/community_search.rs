//! `/community/search` (French full-text search over questions, answers and
//! solutions) and `/community/screen` (what in a text looks like personal
//! data of a person supported, to anonymise before posting). Codes: kinds
//! `question`, `answer`, `solution`; finding kinds `email`, `phone`, `nir`,
//! `person_name`.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use eva_proto::community::v1 as pb;
use eva_proto::community::v1::search_service_client::SearchServiceClient;
use serde::{Deserialize, Serialize};
use tonic::transport::Channel;

use crate::json::{code, non_empty};
use crate::structures::Page;
use crate::{AppState, Problem};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/community/search", get(search))
        .route("/community/screen", post(screen))
}

fn client(state: &AppState) -> SearchServiceClient<Channel> {
    SearchServiceClient::new(state.upstreams.community.clone())
}

/// `?q=&domain=&territory=&kind=&page_size=&page_token=`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
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
    #[serde(default)]
    pub page_size: i32,
    #[serde(default)]
    pub page_token: String,
}

#[derive(Debug, Serialize)]
pub struct ContentJson {
    pub kind: Option<String>,
    pub content_id: String,
}

#[derive(Debug, Serialize)]
pub struct HitJson {
    pub content: Option<ContentJson>,
    pub question_id: Option<String>,
    pub title: String,
    pub snippet: String,
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
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScreenBody {
    pub fields: ScreenFields,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScreenFields {
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub body: String,
}

#[derive(Debug, Serialize)]
pub struct FindingJson {
    pub kind: Option<String>,
    pub field: String,
    pub start: i32,
    pub end: i32,
}

#[derive(Debug, Serialize)]
pub struct ScreenJson {
    /// Empty when the text may be posted.
    pub findings: Vec<FindingJson>,
}

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
