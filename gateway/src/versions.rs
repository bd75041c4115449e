//! Versions of a resource for optimistic concurrency: `ETag` on a read is
//! the resource's `updated_at` (µs), and a write with `If-Match` is made only
//! while the resource is still that version (else 412, nothing changed).

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use eva_platform::db::timestamp_us;

use crate::{FieldProblem, Problem};

/// The `ETag` of a resource last changed at `updated_at`.
pub fn etag(updated_at: Option<&prost_types::Timestamp>) -> Option<HeaderValue> {
    let us = timestamp_us(updated_at?);
    HeaderValue::from_str(&format!("\"{us}\"")).ok()
}

/// The version `If-Match` asks for: `None` without the header or with `*`.
pub fn if_match(headers: &HeaderMap) -> Result<Option<i64>, Problem> {
    let Some(raw) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let raw = raw.to_str().unwrap_or_default().trim();
    if raw == "*" {
        return Ok(None);
    }
    raw.strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .and_then(|v| v.parse::<i64>().ok())
        .map(Some)
        .ok_or_else(|| {
            Problem::invalid(
                "If-Match",
                "attendu : l'ETag reçu en lisant la ressource, entre guillemets / expected: the ETag received when reading the resource, in quotes",
            )
        })
}

/// True when `updated_at` is the version asked for.
pub fn matches(wanted: i64, updated_at: Option<&prost_types::Timestamp>) -> bool {
    updated_at.map(timestamp_us) == Some(wanted)
}

/// 412: the resource changed since the client read it.
pub fn stale() -> Problem {
    let message = "modifié par quelqu'un d'autre depuis votre lecture ; relisez puis recommencez / changed by someone else since you read it; read it again, then retry";
    let mut p = Problem::new(
        StatusCode::PRECONDITION_FAILED,
        "stale-version",
        "Modifié entre-temps / Changed meanwhile",
        format!("If-Match: {message}"),
    );
    p.errors.push(FieldProblem {
        field: "If-Match".into(),
        message: message.into(),
    });
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_round_trip() {
        let t = prost_types::Timestamp {
            seconds: 1_764_000_000,
            nanos: 123_456_000,
        };
        let tag = etag(Some(&t)).unwrap();
        let mut h = HeaderMap::new();
        h.insert(header::IF_MATCH, tag);
        let wanted = if_match(&h).unwrap().unwrap();
        assert!(matches(wanted, Some(&t)));
        assert!(!matches(wanted + 1, Some(&t)));
        h.insert(header::IF_MATCH, HeaderValue::from_static("*"));
        assert_eq!(if_match(&h).unwrap(), None);
        for bad in ["123", "W/\"123\"", "\"abc\""] {
            h.insert(header::IF_MATCH, HeaderValue::from_static(bad));
            assert_eq!(if_match(&h).unwrap_err().errors[0].field, "If-Match");
        }
    }
}
