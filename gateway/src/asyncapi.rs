//! `/asyncapi.json`: the AsyncAPI 3 document of the events partners receive
//! (`docs/asyncapi.json`), public like the OpenAPI document.

use axum::http::header;
use axum::response::IntoResponse;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;

/// The document, built into the binary so it always matches the release.
pub const DOCUMENT: &str = include_str!("../../docs/asyncapi.json");

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(document))
}

const TAG: &str = "Événements";

/// Le document AsyncAPI des événements / The AsyncAPI document of the events
///
/// AsyncAPI 3 : les événements d'orientation que reçoivent les partenaires (NATS et
/// webhooks signés). Public, sans jeton. / AsyncAPI 3: the referral events partners
/// receive (NATS and signed webhooks). Public, no token.
#[utoipa::path(get, path = "/asyncapi.json", tag = TAG, security(()),
    responses((status = 200, description = "Le document AsyncAPI 3 / The AsyncAPI 3 document", body = Object, content_type = "application/json")))]
async fn document() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        DOCUMENT,
    )
}
