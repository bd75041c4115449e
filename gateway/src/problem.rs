//! RFC 9457 problem details: every error the gateway returns.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tonic_types::StatusExt;

/// A field named in an error, with what is wrong with it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct FieldProblem {
    pub field: String,
    pub message: String,
}

/// An `application/problem+json` answer (RFC 9457): `type` is a stable
/// `urn:eva:problem:<slug>`, `title` and `detail` are French then English.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldProblem>,
    /// Seconds to wait before trying again: the `Retry-After` header, from
    /// the service's `retry-after` metadata.
    #[serde(skip)]
    #[schema(ignore)]
    pub retry_after: Option<u64>,
}

impl Problem {
    pub fn new(status: StatusCode, slug: &str, title: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: format!("urn:eva:problem:{slug}"),
            title: title.into(),
            status: status.as_u16(),
            detail: detail.into(),
            errors: Vec::new(),
            retry_after: None,
        }
    }

    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        let mut p = Self::new(
            StatusCode::BAD_REQUEST,
            "invalid-argument",
            "Requête invalide / Invalid request",
            format!("{field}: {message}"),
        );
        p.errors.push(FieldProblem {
            field: field.into(),
            message,
        });
        p
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "Introuvable / Not found",
            detail,
        )
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_GATEWAY);
        let retry_after = self.retry_after;
        let mut res = (status, Json(self)).into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(secs) = retry_after {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res
    }
}

/// `Retry-After` of a 503 when the service said nothing: it is down or
/// restarting (connection refused), which takes seconds.
pub const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 5;

/// A service's gRPC status as a problem; field violations become `errors`.
impl From<tonic::Status> for Problem {
    fn from(s: tonic::Status) -> Self {
        use tonic::Code;
        // The channel's own deadline (`Upstreams::request`) expiring comes back
        // as CANCELLED "Timeout expired": a service that did not answer in time.
        let timed_out =
            s.code() == Code::Cancelled && s.message() == tonic::TimeoutExpired(()).to_string();
        // Any other CANCELLED is the connection to the service dropping under the
        // call (the service died or restarted): unavailable, come back shortly.
        let code = match s.code() {
            Code::Cancelled if timed_out => Code::DeadlineExceeded,
            Code::Cancelled => Code::Unavailable,
            other => other,
        };
        let (status, slug, title) = match code {
            Code::InvalidArgument | Code::OutOfRange => (
                StatusCode::BAD_REQUEST,
                "invalid-argument",
                "Requête invalide / Invalid request",
            ),
            Code::Unauthenticated => (
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "Authentification requise / Authentication required",
            ),
            Code::PermissionDenied => (
                StatusCode::FORBIDDEN,
                "forbidden",
                "Accès refusé / Forbidden",
            ),
            Code::NotFound => (
                StatusCode::NOT_FOUND,
                "not-found",
                "Introuvable / Not found",
            ),
            Code::AlreadyExists | Code::Aborted => {
                (StatusCode::CONFLICT, "conflict", "Conflit / Conflict")
            }
            Code::FailedPrecondition => (
                StatusCode::CONFLICT,
                "failed-precondition",
                "Action impossible dans cet état / Not possible in this state",
            ),
            Code::ResourceExhausted => (
                StatusCode::TOO_MANY_REQUESTS,
                "too-many-requests",
                "Trop de requêtes / Too many requests",
            ),
            Code::DeadlineExceeded => (
                StatusCode::GATEWAY_TIMEOUT,
                "timeout",
                "Le service n'a pas répondu à temps / The service did not answer in time",
            ),
            Code::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Service momentanément indisponible / Service temporarily unavailable",
            ),
            _ => (
                StatusCode::BAD_GATEWAY,
                "upstream-error",
                "Erreur d'un service interne / Internal service error",
            ),
        };
        let mut p = Problem::new(status, slug, title, s.message().to_owned());
        p.retry_after = s
            .metadata()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
            .or((code == Code::Unavailable).then_some(UNAVAILABLE_RETRY_AFTER_SECS));
        if let Some(bad) = s.get_details_bad_request() {
            p.errors = bad
                .field_violations
                .into_iter()
                .map(|v| FieldProblem {
                    field: v.field,
                    message: v.description,
                })
                .collect();
        }
        p
    }
}

impl From<JsonRejection> for Problem {
    fn from(r: JsonRejection) -> Self {
        let (field, msg) = match &r {
            JsonRejection::MissingJsonContentType(_) => (
                "content-type",
                "le corps doit être du JSON (Content-Type: application/json) / body must be JSON"
                    .to_owned(),
            ),
            other => ("body", other.body_text()),
        };
        Problem::invalid(field, msg)
    }
}

impl From<QueryRejection> for Problem {
    fn from(r: QueryRejection) -> Self {
        Problem::invalid("query", r.body_text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_service_is_a_503_with_retry_after() {
        let p = Problem::from(tonic::Status::unavailable("tcp connect error"));
        assert_eq!(p.status, 503);
        assert_eq!(p.retry_after, Some(UNAVAILABLE_RETRY_AFTER_SECS));
        let res = p.into_response();
        assert_eq!(res.headers()[header::RETRY_AFTER], "5");
    }

    #[test]
    fn the_service_own_retry_after_wins() {
        let mut s = tonic::Status::unavailable("draining");
        s.metadata_mut().insert("retry-after", 30.into());
        assert_eq!(Problem::from(s).retry_after, Some(30));
        let busy = Problem::from(tonic::Status::resource_exhausted("locked"));
        assert_eq!((busy.status, busy.retry_after), (429, None));
    }

    #[test]
    fn the_channel_deadline_is_a_504_and_a_dropped_connection_a_503() {
        let timeout = tonic::Status::cancelled(tonic::TimeoutExpired(()).to_string());
        let p = Problem::from(timeout);
        assert_eq!(
            (p.status, p.kind.as_str()),
            (504, "urn:eva:problem:timeout")
        );
        assert_eq!(p.retry_after, None);
        // Seen when identity was killed under a write: hyper's « operation was canceled ».
        let dropped = Problem::from(tonic::Status::cancelled("operation was canceled"));
        assert_eq!(
            (dropped.status, dropped.retry_after),
            (503, Some(UNAVAILABLE_RETRY_AFTER_SECS))
        );
    }
}
