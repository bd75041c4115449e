//! `/asyncapi.json`: the AsyncAPI 3 document of the events partners receive
//! (`docs/asyncapi.json`), public like the OpenAPI document.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::AppState;

/// The document, built into the binary so it always matches the release.
pub const DOCUMENT: &str = include_str!("../../docs/asyncapi.json");

pub fn routes() -> Router<AppState> {
    Router::new().route("/asyncapi.json", get(document))
}

async fn document() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        DOCUMENT,
    )
}
