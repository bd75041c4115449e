//! The web client: a few static files (vanilla ES modules, no build step)
//! embedded in the binary and served outside `/api/v1`. The client uses only
//! the public API. Every answer forbids inline script and style.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use flate2::Compression;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};

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
        "person.css",
        "text/css; charset=utf-8",
        include_str!("../web/person.css"),
    ),
    (
        "counselor.css",
        "text/css; charset=utf-8",
        include_str!("../web/counselor.css"),
    ),
    (
        "referrals.css",
        "text/css; charset=utf-8",
        include_str!("../web/referrals.css"),
    ),
    (
        "community.css",
        "text/css; charset=utf-8",
        include_str!("../web/community.css"),
    ),
    (
        "admin.css",
        "text/css; charset=utf-8",
        include_str!("../web/admin.css"),
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
        "history.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/history.js"),
    ),
    (
        "plan.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/plan.js"),
    ),
    (
        "notifications.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/notifications.js"),
    ),
    (
        "referrals.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/referrals.js"),
    ),
    (
        "community.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/community.js"),
    ),
    (
        "community_moderation.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/community_moderation.js"),
    ),
    (
        "community_solutions.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/community_solutions.js"),
    ),
    (
        "admin.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/admin.js"),
    ),
    (
        "person.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/person.js"),
    ),
    (
        "person_plan.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/person_plan.js"),
    ),
    (
        "invitation.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/invitation.js"),
    ),
    (
        "analyst.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/analyst.js"),
    ),
];

/// With `EVA_WEB_DIR` set (developing the client), a file is read from that folder at
/// each request instead of the embedded copy: an edit shows without a rebuild. Only
/// the names listed above are ever read.
fn from_dir(file: &str) -> Option<String> {
    let dir = std::env::var_os("EVA_WEB_DIR")?;
    std::fs::read_to_string(std::path::Path::new(&dir).join(file)).ok()
}

/// A file ready to send: as is, gzipped (made once), and its ETag.
struct Prepared {
    plain: Bytes,
    gzip: Bytes,
    etag: HeaderValue,
}

impl Prepared {
    fn new(body: &str) -> Self {
        let mut gz = GzEncoder::new(Vec::new(), Compression::best());
        // Writing into a Vec can't fail.
        let gzip = gz
            .write_all(body.as_bytes())
            .and_then(|()| gz.finish())
            .unwrap_or_default();
        let digest = Sha256::digest(body.as_bytes());
        let etag = format!("\"{}\"", URL_SAFE_NO_PAD.encode(&digest[..12]));
        Self {
            plain: Bytes::copy_from_slice(body.as_bytes()),
            gzip: Bytes::from(gzip),
            etag: HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"eva\"")),
        }
    }
}

/// The embedded files, prepared at their first request.
fn prepared(name: &'static str, embedded: &'static str) -> Arc<Prepared> {
    static CACHE: OnceLock<Mutex<HashMap<&'static str, Arc<Prepared>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut map = cache
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    map.entry(name)
        .or_insert_with(|| Arc::new(Prepared::new(embedded)))
        .clone()
}

/// Answers `name`: 304 when the browser holds this version, gzipped when it accepts it.
fn page(
    headers: &HeaderMap,
    name: &'static str,
    content_type: &'static str,
    embedded: &'static str,
) -> Response {
    let file = match from_dir(name) {
        Some(fresh) => Arc::new(Prepared::new(&fresh)),
        None => prepared(name, embedded),
    };
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|tags| tags.as_bytes() == file.etag.as_bytes());
    let gzip = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    let mut res = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else if gzip {
        let mut r = file.gzip.clone().into_response();
        r.headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        r
    } else {
        file.plain.clone().into_response()
    };
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::ETAG, file.etag.clone());
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    // No hashed file names (no build step): the browser revalidates each time (a 304).
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
pub async fn index(headers: HeaderMap) -> Response {
    page(&headers, "index.html", "text/html; charset=utf-8", INDEX)
}

/// `/web/{file}`: a script or a style sheet.
pub async fn asset(headers: HeaderMap, Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((name, content_type, embedded)) => page(&headers, name, content_type, embedded),
        None => Problem::not_found("aucun fichier à cette adresse / no file at this path")
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(k.clone(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[tokio::test]
    async fn assets_carry_their_type_and_the_policy() {
        let res = asset(HeaderMap::new(), Path("app.js".to_owned())).await;
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
        let res = asset(HeaderMap::new(), Path("nope.js".to_owned())).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        let res = asset(HeaderMap::new(), Path("../Cargo.toml".to_owned())).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        let res = index(HeaderMap::new()).await;
        assert_eq!(res.headers()[header::CACHE_CONTROL], "no-cache");
    }

    #[tokio::test]
    async fn gzipped_when_accepted_and_304_when_unchanged() {
        let plain = asset(HeaderMap::new(), Path("app.js".to_owned())).await;
        assert!(plain.headers().get(header::CONTENT_ENCODING).is_none());
        let etag = plain.headers()[header::ETAG].to_str().unwrap().to_owned();
        let plain = axum::body::to_bytes(plain.into_body(), usize::MAX)
            .await
            .unwrap();

        let gz = asset(
            headers(&[(header::ACCEPT_ENCODING, "br, gzip;q=0.8")]),
            Path("app.js".to_owned()),
        )
        .await;
        assert_eq!(gz.headers()[header::CONTENT_ENCODING], "gzip");
        assert_eq!(gz.headers()[header::VARY], "accept-encoding");
        let gz = axum::body::to_bytes(gz.into_body(), usize::MAX)
            .await
            .unwrap();
        assert!(
            gz.len() < plain.len() / 2,
            "{} vs {}",
            gz.len(),
            plain.len()
        );
        let mut unzipped = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz[..]), &mut unzipped)
            .unwrap();
        assert_eq!(unzipped.as_bytes(), &plain[..]);

        let again = asset(
            headers(&[(header::IF_NONE_MATCH, &etag)]),
            Path("app.js".to_owned()),
        )
        .await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        let other = asset(
            headers(&[(header::IF_NONE_MATCH, "\"autre\"")]),
            Path("app.js".to_owned()),
        )
        .await;
        assert_eq!(other.status(), StatusCode::OK);
    }
}
