//! `/people/{id}/consents`, `/consents/…`: the consent a person gives to a
//! structure, its withdrawal, its signed receipt, and the access check.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use eva_proto::identity::v1 as pb;
use eva_proto::identity::v1::consent_service_client::ConsentServiceClient;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::json::{code, empty_answer, non_empty, when};
use crate::structures::Page;
use crate::{AppState, Problem};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/people/{id}/consents", get(list).post(grant))
        .route("/consents/check", get(check))
        .route("/consents/{id}", get(fetch))
        .route("/consents/{id}/withdraw", post(withdraw))
        .route("/consents/{id}/receipt", get(receipt))
}

/// A consent in the public API.
#[derive(Debug, Serialize)]
pub struct ConsentJson {
    pub id: String,
    pub person_id: String,
    /// The structure that receives the consent.
    pub grantee_structure_id: String,
    /// Référentiel domain ids covered.
    pub domains: Vec<String>,
    /// `accompagnement`, `orientation`, `statistiques`.
    pub purposes: Vec<String>,
    /// `YYYY-MM-DD`.
    pub valid_from: String,
    /// `YYYY-MM-DD`, inclusive.
    pub valid_until: String,
    /// `active`, `withdrawn`, `expired`.
    pub status: String,
    pub recorded_by_user_id: String,
    /// `espace_personnel` or `au_bureau`.
    pub collection: String,
    pub granted_at: Option<String>,
    pub withdrawn_at: Option<String>,
    /// Where to download the signed receipt.
    pub receipt_url: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantConsent {
    pub grantee_structure_id: String,
    /// Empty or absent: every domain that is not sensitive.
    #[serde(default)]
    pub domains: Vec<String>,
    #[serde(default)]
    pub purposes: Vec<String>,
    /// `YYYY-MM-DD`; today when absent.
    pub valid_from: Option<String>,
    /// `YYYY-MM-DD`; one year after `valid_from` when absent.
    pub valid_until: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// `active`, `withdrawn` or `expired`; all when absent.
    pub status: Option<String>,
    #[serde(default)]
    pub page_size: i32,
    #[serde(default)]
    pub page_token: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckQuery {
    #[serde(default)]
    pub structure_id: String,
    #[serde(default)]
    pub person_id: String,
    #[serde(default)]
    pub domain: String,
    #[serde(default)]
    pub purpose: String,
}

/// The answer of the access check.
#[derive(Debug, Serialize)]
pub struct DecisionJson {
    pub allowed: bool,
    /// `consent_active`, `no_consent`, `domain_not_covered`,
    /// `purpose_not_covered`, `consent_withdrawn`, `consent_expired`,
    /// `person_erased`.
    pub reason: String,
    pub consent_id: Option<String>,
}

fn purpose_from_json(field: &str, s: &str) -> Result<pb::ConsentPurpose, Problem> {
    pb::ConsentPurpose::from_str_name(&format!("CONSENT_PURPOSE_{}", s.trim().to_uppercase()))
        .filter(|p| *p != pb::ConsentPurpose::Unspecified)
        .ok_or_else(|| {
            Problem::invalid(
                field,
                "finalité inconnue ; attendu : accompagnement, orientation, statistiques / unknown purpose",
            )
        })
}

fn purpose_to_json(p: i32) -> String {
    pb::ConsentPurpose::try_from(p)
        .ok()
        .and_then(|p| code(p.as_str_name(), "CONSENT_PURPOSE_"))
        .unwrap_or_else(|| "unspecified".into())
}

fn status_to_json(s: i32) -> String {
    pb::ConsentStatus::try_from(s)
        .ok()
        .and_then(|s| code(s.as_str_name(), "CONSENT_STATUS_"))
        .unwrap_or_else(|| "unspecified".into())
}

fn status_from_json(s: &str) -> Result<pb::ConsentStatus, Problem> {
    pb::ConsentStatus::from_str_name(&format!("CONSENT_STATUS_{}", s.trim().to_uppercase()))
        .filter(|s| *s != pb::ConsentStatus::Unspecified)
        .ok_or_else(|| {
            Problem::invalid(
                "status",
                "statut inconnu ; attendu : active, withdrawn, expired / unknown status",
            )
        })
}

impl From<pb::Consent> for ConsentJson {
    fn from(c: pb::Consent) -> Self {
        Self {
            receipt_url: format!("/api/v1/consents/{}/receipt", c.consent_id),
            id: c.consent_id,
            person_id: c.person_id,
            grantee_structure_id: c.grantee_structure_id,
            domains: c.domains,
            purposes: c.purposes.into_iter().map(purpose_to_json).collect(),
            valid_from: c.valid_from,
            valid_until: c.valid_until,
            status: status_to_json(c.status),
            recorded_by_user_id: c.recorded_by_user_id,
            collection: c.collection,
            granted_at: when(c.granted_at),
            withdrawn_at: when(c.withdrawn_at),
        }
    }
}

fn client(state: &AppState) -> ConsentServiceClient<tonic::transport::Channel> {
    ConsentServiceClient::new(state.upstreams.identity.clone())
}

async fn grant(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<GrantConsent>, JsonRejection>,
) -> Result<(StatusCode, Json<ConsentJson>), Problem> {
    let Json(body) = body?;
    let purposes = body
        .purposes
        .iter()
        .map(|p| purpose_from_json("purposes", p).map(|p| p as i32))
        .collect::<Result<Vec<_>, _>>()?;
    let req = state.upstreams.request(
        &headers,
        pb::GrantConsentRequest {
            person_id: id,
            grantee_structure_id: body.grantee_structure_id,
            domains: body.domains,
            purposes,
            valid_from: body.valid_from.unwrap_or_default(),
            valid_until: body.valid_until.unwrap_or_default(),
        },
    );
    let r = client(&state).grant_consent(req).await?.into_inner();
    let consent = r.consent.ok_or_else(empty_answer)?;
    Ok((StatusCode::CREATED, Json(consent.into())))
}

async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Page<ConsentJson>>, Problem> {
    let Query(q) = query?;
    let status = match q.status.as_deref() {
        Some(s) => status_from_json(s)? as i32,
        None => 0,
    };
    let req = state.upstreams.request(
        &headers,
        pb::ListConsentsRequest {
            page_size: q.page_size,
            page_token: q.page_token,
            person_id: id,
            status,
        },
    );
    let r = client(&state).list_consents(req).await?.into_inner();
    Ok(Json(Page {
        items: r.consents.into_iter().map(Into::into).collect(),
        next_page_token: non_empty(r.next_page_token),
    }))
}

async fn fetch(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<ConsentJson>, Problem> {
    let req = state
        .upstreams
        .request(&headers, pb::GetConsentRequest { consent_id: id });
    let r = client(&state).get_consent(req).await?.into_inner();
    Ok(Json(r.consent.ok_or_else(empty_answer)?.into()))
}

async fn withdraw(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<ConsentJson>, Problem> {
    let req = state
        .upstreams
        .request(&headers, pb::WithdrawConsentRequest { consent_id: id });
    let r = client(&state).withdraw_consent(req).await?.into_inner();
    Ok(Json(r.consent.ok_or_else(empty_answer)?.into()))
}

/// The signed receipt as a file to keep: the receipt, its detached JWS and
/// how to check it.
async fn receipt(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let req = state
        .upstreams
        .request(&headers, pb::GetConsentReceiptRequest { consent_id: id });
    let r = client(&state).get_consent_receipt(req).await?.into_inner();
    let receipt = r.receipt.ok_or_else(empty_answer)?;
    let document: Value = serde_json::from_str(&receipt.json).map_err(|_| empty_answer())?;
    let file = json!({
        "receipt": document,
        "signature": receipt.signature,
        "verification": "Signature JWS détachée (RFC 7515, annexe F, EdDSA) portant sur « receipt » écrit en JSON compact, clés triées ; clés publiques : /.well-known/jwks.json / Detached JWS over `receipt` as compact JSON with sorted keys; public keys at /.well-known/jwks.json",
        "issued_at": when(receipt.issued_at),
    });
    let body = serde_json::to_vec_pretty(&file).map_err(|_| empty_answer())?;
    let mut res = (StatusCode::OK, body).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let disposition = format!(
        "attachment; filename=\"recu-consentement-{}.json\"",
        receipt.consent_id
    );
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
}

async fn check(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<CheckQuery>, QueryRejection>,
) -> Result<Json<DecisionJson>, Problem> {
    let Query(q) = query?;
    let purpose = purpose_from_json("purpose", &q.purpose)?;
    let req = state.upstreams.request(
        &headers,
        pb::CheckAccessRequest {
            structure_id: q.structure_id,
            person_id: q.person_id,
            domain: q.domain,
            purpose: purpose as i32,
        },
    );
    let r = client(&state).check_access(req).await?.into_inner();
    let reason = pb::AccessDecisionReason::try_from(r.reason)
        .ok()
        .and_then(|x| code(x.as_str_name(), "ACCESS_DECISION_REASON_"))
        .unwrap_or_else(|| "unspecified".into());
    Ok(Json(DecisionJson {
        allowed: r.allowed,
        reason,
        consent_id: non_empty(r.consent_id),
    }))
}
