//! CORS: which browser origins may call the API. None by default, and then
//! no CORS header at all. Tokens travel in `Authorization`, not cookies, so
//! credentials are never allowed.

use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method, header};
use eva_platform::config::GatewayConfig;
use tower_http::cors::{AllowOrigin, CorsLayer};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static(crate::idempotency::HEADER);
const REPLAYED: HeaderName = HeaderName::from_static(crate::idempotency::REPLAYED);

/// The layer for `[gateway] cors_allowed_origins`; `None` when empty.
pub fn layer(cfg: &GatewayConfig) -> Option<CorsLayer> {
    // Validated with the configuration (exact `scheme://host[:port]`).
    let origins: Vec<HeaderValue> = cfg
        .cors_allowed_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    if origins.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                REQUEST_ID,
                IDEMPOTENCY_KEY,
            ])
            .expose_headers([header::RETRY_AFTER, REQUEST_ID, header::LOCATION, REPLAYED])
            .max_age(Duration::from_secs(3600)),
    )
}
