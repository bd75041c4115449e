//! The web client: a few static files (vanilla ES modules, no build step)
//! embedded in the binary and served outside `/api/v1`. The client uses only
//! the public API. Every answer forbids inline script and style.

use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::Problem;

/// `default-src 'self'`: no inline script or style, no other origin.
const CSP: &str = "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const INDEX: &str = include_str!("../web/index.html");

/// The files under `/web/`, with their content type.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "styles.css",
        "text/css; charset=utf-8",
        include_str!("../web/styles.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/app.js"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/api.js"),
    ),
    (
        "dom.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/dom.js"),
    ),
    (
        "counselor.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/counselor.js"),
    ),
    (
        "person.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/person.js"),
    ),
    (
        "analyst.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/analyst.js"),
    ),
];

fn page(content_type: &'static str, body: &'static str) -> Response {
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // No hashed file names (no build step): the browser revalidates each time.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    res
}

/// `/`: the application's one page.
pub async fn index() -> Response {
    page("text/html; charset=utf-8", INDEX)
}

/// `/web/{file}`: a script or the style sheet.
pub async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, body)) => page(content_type, body),
        None => Problem::not_found("aucun fichier à cette adresse / no file at this path")
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn assets_carry_their_type_and_the_policy() {
        let res = asset(Path("app.js".to_owned())).await;
        assert_eq!(
            res.headers()[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
        assert!(
            res.headers()[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap_or_default()
                .starts_with("default-src 'self'")
        );
        let res = asset(Path("nope.js".to_owned())).await;
        assert_eq!(res.status(), axum::http::StatusCode::NOT_FOUND);
        let res = index().await;
        assert_eq!(res.headers()[header::CACHE_CONTROL], "no-cache");
    }
}
