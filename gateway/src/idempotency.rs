//! `Idempotency-Key`: a client on a bad network may send a `POST`, `PATCH` or
//! `DELETE` again without doing it twice. The first answer is kept 24 hours
//! in a JetStream key-value bucket shared by every gateway, and a retry with
//! the same key, caller and request gets that answer again
//! (`Idempotent-Replayed: true`) instead of a second person, referral or post.
//!
//! What is kept names nobody: the entry's name is a hash, and the answer is
//! sealed with a key derived from the caller's `Authorization` value and the
//! idempotency key, neither of which the server keeps. Tokens are never
//! kept: `/auth/…` answers are not replayed.

use std::time::Duration;

use async_nats::jetstream::kv;
use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use eva_platform::bus::{Bus, BusError};
use eva_platform::crypto::ClientKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::problem::Problem;

pub const HEADER: &str = "idempotency-key";
pub const REPLAYED: &str = "idempotent-replayed";
/// The bucket every gateway shares.
pub const BUCKET: &str = "EVA_IDEMPOTENCY";
/// How long an answer is kept.
pub const KEPT: Duration = Duration::from_secs(24 * 3600);
const MAX_KEY_LEN: usize = 255;
/// A request body read to compare it with the first one's; the directory's
/// import is the largest the API takes.
const MAX_REQUEST: usize = 32 * 1024 * 1024;
/// Larger answers are not kept (a retry then runs again).
const MAX_KEPT_ANSWER: usize = 1024 * 1024;
/// A gateway that took a key and vanished: after this, another may take it.
const STALE: Duration = Duration::from_secs(120);

/// The bucket, created (or its settings brought up to date) at start.
pub async fn bucket(bus: &Bus, replicas: usize) -> Result<kv::Store, BusError> {
    bus.jetstream()
        .create_or_update_key_value(kv::Config {
            bucket: BUCKET.into(),
            description: "Réponses gardées pour Idempotency-Key / answers kept for Idempotency-Key"
                .into(),
            history: 1,
            max_age: KEPT,
            num_replicas: replicas,
            storage: async_nats::jetstream::stream::StorageType::File,
            ..Default::default()
        })
        .await
        .map_err(|e| BusError::Consumer {
            consumer: BUCKET.into(),
            reason: e.to_string(),
        })
}

/// One entry: the request's fingerprint, and the answer once there is one.
#[derive(Serialize, Deserialize)]
struct Kept {
    fingerprint: String,
    /// Seconds since the epoch when the first request began.
    started: u64,
    /// Sealed [`Answer`]; absent while the first request runs.
    answer: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

/// Headers of an answer worth giving again.
const KEPT_HEADERS: &[header::HeaderName] = &[
    header::CONTENT_TYPE,
    header::LOCATION,
    header::ETAG,
    header::CONTENT_DISPOSITION,
];

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    hex(&h.finalize())
}

fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// The key as sent, or why it is refused.
fn key_of(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    let Some(raw) = headers.get(HEADER) else {
        return Ok(None);
    };
    let key = raw.to_str().map(str::trim).unwrap_or("");
    if key.is_empty()
        || key.len() > MAX_KEY_LEN
        || !key.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
    {
        return Err(Problem::invalid(
            "Idempotency-Key",
            format!(
                "de 1 à {MAX_KEY_LEN} caractères ASCII visibles, par exemple un UUID / 1 to {MAX_KEY_LEN} visible ASCII characters, e.g. a UUID"
            ),
        ));
    }
    Ok(Some(key.to_owned()))
}

fn unavailable(detail: &str) -> Response {
    let mut p = Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "Service momentanément indisponible / Service temporarily unavailable",
        detail.to_owned(),
    );
    p.retry_after = Some(1);
    p.into_response()
}

/// The middleware; `store` is `None` where the gateway runs without a bus.
pub async fn middleware(
    State(store): State<Option<kv::Store>>,
    req: Request,
    next: Next,
) -> Response {
    let writes = matches!(*req.method(), Method::POST | Method::PATCH | Method::DELETE);
    if !writes || req.uri().path().contains("/auth/") {
        return next.run(req).await;
    }
    let key = match key_of(req.headers()) {
        Ok(Some(key)) => key,
        Ok(None) => return next.run(req).await,
        Err(problem) => return problem.into_response(),
    };
    let Some(store) = store else {
        return unavailable(
            "Idempotency-Key demande le bus NATS, absent de cette passerelle / Idempotency-Key needs the NATS bus, which this gateway lacks",
        );
    };
    let (parts, body) = req.into_parts();
    let Ok(body) = to_bytes(body, MAX_REQUEST).await else {
        return Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            "Requête trop grande / Request too large",
            format!("au plus {MAX_REQUEST} octets / at most {MAX_REQUEST} bytes"),
        )
        .into_response();
    };
    let caller = parts
        .headers
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes)
        .unwrap_or_default()
        .to_vec();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or_default()
        .to_owned();
    let method = parts.method.as_str().to_owned();
    // One entry per caller, method, address and key; the body must match.
    let name = sha256(&[
        b"name",
        &caller,
        method.as_bytes(),
        path.as_bytes(),
        key.as_bytes(),
    ]);
    let fingerprint = sha256(&[b"body", &body]);
    let sealing = ClientKey::derive("eva idempotency answer", &[&caller, key.as_bytes()]);
    let replay = Replay {
        store: &store,
        name: &name,
        fingerprint: &fingerprint,
        sealing: &sealing,
    };
    match replay.claim().await {
        Ok(Claim::Mine(revision)) => {
            let res = next.run(Request::from_parts(parts, Body::from(body))).await;
            replay.keep(revision, res).await
        }
        Ok(Claim::Answered(res)) => res,
        Err(res) => res,
    }
}

enum Claim {
    /// This request runs; the entry's revision.
    Mine(u64),
    /// Already answered (or refused): this is what to send.
    Answered(Response),
}

struct Replay<'a> {
    store: &'a kv::Store,
    name: &'a str,
    fingerprint: &'a str,
    sealing: &'a ClientKey,
}

impl Replay<'_> {
    fn pending(&self) -> Bytes {
        let kept = Kept {
            fingerprint: self.fingerprint.to_owned(),
            started: now_s(),
            answer: None,
        };
        serde_json::to_vec(&kept).unwrap_or_default().into()
    }

    /// Takes the key, or finds what an earlier request with it left.
    async fn claim(&self) -> Result<Claim, Response> {
        let lost = |e: &dyn std::fmt::Display| {
            tracing::warn!(error = %e, "idempotency store unreachable");
            unavailable("les réponses gardées sont injoignables / kept answers are unreachable")
        };
        match self.store.create(self.name, self.pending()).await {
            Ok(revision) => return Ok(Claim::Mine(revision)),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {}
            Err(e) => return Err(lost(&e)),
        }
        let entry = match self.store.entry(self.name).await {
            Ok(Some(entry)) => entry,
            // Gone meanwhile (its first request failed): take it now.
            Ok(None) => {
                return match self.store.create(self.name, self.pending()).await {
                    Ok(revision) => Ok(Claim::Mine(revision)),
                    Err(_) => Err(in_progress()),
                };
            }
            Err(e) => return Err(lost(&e)),
        };
        if entry.operation != kv::Operation::Put {
            return match self
                .store
                .update(self.name, self.pending(), entry.revision)
                .await
            {
                Ok(revision) => Ok(Claim::Mine(revision)),
                Err(_) => Err(in_progress()),
            };
        }
        let Ok(kept) = serde_json::from_slice::<Kept>(&entry.value) else {
            return Err(lost(&"unreadable entry"));
        };
        if kept.fingerprint != self.fingerprint {
            let message = "cette clé a déjà servi pour une autre requête ; prenez-en une nouvelle / this key was used for another request; use a new one";
            let mut p = Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "Clé déjà utilisée / Key already used",
                format!("Idempotency-Key: {message}"),
            );
            p.errors.push(crate::FieldProblem {
                field: "Idempotency-Key".into(),
                message: message.into(),
            });
            return Err(p.into_response());
        }
        match kept.answer {
            Some(sealed) => Ok(Claim::Answered(self.answer(&sealed).unwrap_or_else(|| {
                unavailable("réponse gardée illisible / kept answer unreadable")
            }))),
            None if now_s().saturating_sub(kept.started) > STALE.as_secs() => {
                // Its gateway stopped mid-request: this one takes over.
                match self
                    .store
                    .update(self.name, self.pending(), entry.revision)
                    .await
                {
                    Ok(revision) => Ok(Claim::Mine(revision)),
                    Err(_) => Err(in_progress()),
                }
            }
            None => Err(in_progress()),
        }
    }

    /// The kept answer, opened.
    fn answer(&self, sealed: &str) -> Option<Response> {
        let bytes = STANDARD.decode(sealed).ok()?;
        let plain = self.sealing.open(&bytes, self.name.as_bytes()).ok()?;
        let answer: Answer = serde_json::from_slice(&plain).ok()?;
        let body = STANDARD.decode(&answer.body).ok()?;
        let mut res = Response::new(Body::from(body));
        *res.status_mut() = StatusCode::from_u16(answer.status).ok()?;
        for (name, value) in &answer.headers {
            if let (Ok(n), Ok(v)) = (
                header::HeaderName::try_from(name.as_str()),
                HeaderValue::try_from(value.as_str()),
            ) {
                res.headers_mut().insert(n, v);
            }
        }
        res.headers_mut()
            .insert(REPLAYED, HeaderValue::from_static("true"));
        Some(res)
    }

    /// Keeps `res` under the key (a server fault or a refusal to wait is
    /// not kept: the retry runs again), and sends it.
    async fn keep(&self, revision: u64, res: Response) -> Response {
        let status = res.status();
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            self.release().await;
            return res;
        }
        let (parts, body) = res.into_parts();
        let body = match to_bytes(body, usize::MAX).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "answer body not read");
                self.release().await;
                return StatusCode::BAD_GATEWAY.into_response();
            }
        };
        if body.len() > MAX_KEPT_ANSWER {
            self.release().await;
            return Response::from_parts(parts, Body::from(body));
        }
        let answer = Answer {
            status: status.as_u16(),
            headers: KEPT_HEADERS
                .iter()
                .filter_map(|h| {
                    let v = parts.headers.get(h)?.to_str().ok()?;
                    Some((h.as_str().to_owned(), v.to_owned()))
                })
                .collect(),
            body: STANDARD.encode(&body),
        };
        let sealed = self.sealing.seal(
            &serde_json::to_vec(&answer).unwrap_or_default(),
            self.name.as_bytes(),
        );
        let kept = Kept {
            fingerprint: self.fingerprint.to_owned(),
            started: now_s(),
            answer: Some(STANDARD.encode(sealed)),
        };
        let value = serde_json::to_vec(&kept).unwrap_or_default();
        if let Err(e) = self.store.update(self.name, value.into(), revision).await {
            // The answer still goes out; a retry would then wait for STALE.
            tracing::warn!(error = %e, "answer not kept");
        }
        Response::from_parts(parts, Body::from(body))
    }

    /// Frees the key for a retry.
    async fn release(&self) {
        if let Err(e) = self.store.purge(self.name).await {
            tracing::warn!(error = %e, "idempotency key not released");
        }
    }
}

fn in_progress() -> Response {
    let mut p = Problem::new(
        StatusCode::CONFLICT,
        "idempotency-key-in-use",
        "Requête déjà en cours / Request already in progress",
        "Idempotency-Key: la même requête est en cours ; réessayez dans un instant / the same request is in progress; retry shortly",
    );
    p.retry_after = Some(1);
    p.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(HEADER, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn keys_are_checked() {
        assert_eq!(key_of(&HeaderMap::new()).unwrap(), None);
        assert_eq!(
            key_of(&with(" 0190a3c4-aaaa ")).unwrap().as_deref(),
            Some("0190a3c4-aaaa")
        );
        for bad in ["", "   ", &"x".repeat(MAX_KEY_LEN + 1)] {
            let p = key_of(&with(bad)).unwrap_err();
            assert_eq!(p.errors[0].field, "Idempotency-Key", "{bad:?}");
        }
    }

    #[test]
    fn names_separate_callers_requests_and_keys() {
        let a = sha256(&[b"name", b"Bearer a", b"POST", b"/api/v1/people", b"k"]);
        assert_ne!(
            a,
            sha256(&[b"name", b"Bearer b", b"POST", b"/api/v1/people", b"k"])
        );
        assert_ne!(
            a,
            sha256(&[b"name", b"Bearer a", b"PATCH", b"/api/v1/people", b"k"])
        );
        assert_ne!(
            a,
            sha256(&[b"name", b"Bearer a", b"POST", b"/api/v1/people", b"l"])
        );
        // Length-prefixed: moving a byte between parts changes the name.
        assert_ne!(
            a,
            sha256(&[b"name", b"Bearer aP", b"OST", b"/api/v1/people", b"k"])
        );
    }
}
