//! `/people/{id}/consents`, `/consents/…`: the consent a person gives to a
//! structure, its withdrawal, its signed receipt, and the access check.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use eva_proto::identity::v1 as pb;
use eva_proto::identity::v1::consent_service_client::ConsentServiceClient;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::json::{code, empty_answer, non_empty, when};
use crate::structures::Page;
use crate::{AppState, Problem};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, grant))
        .routes(routes!(check))
        .routes(routes!(fetch))
        .routes(routes!(withdraw))
        .routes(routes!(receipt))
}

const TAG: &str = "Consentements";

const ID: &str = "Le consentement (UUIDv7) / the consent";
const PERSON: &str = "La personne (UUIDv7) / the person";

/// A consent in the public API.
#[derive(Debug, Serialize, ToSchema)]
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

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantConsent {
    /// The structure that receives the consent.
    pub grantee_structure_id: String,
    /// Référentiel domain ids. Empty or absent: every domain that is not
    /// sensitive (`sante` and `difficultes-administratives-ou-juridiques` are
    /// covered only when listed).
    #[serde(default)]
    pub domains: Vec<String>,
    /// At least one of `accompagnement`, `orientation`, `statistiques`.
    #[serde(default)]
    pub purposes: Vec<String>,
    /// `YYYY-MM-DD`, not before today; today when absent.
    pub valid_from: Option<String>,
    /// `YYYY-MM-DD`, inclusive, at most three years after `valid_from`; one
    /// year after `valid_from` when absent.
    pub valid_until: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// `active`, `withdrawn` or `expired`; all when absent.
    pub status: Option<String>,
    /// Éléments par page : par défaut 50, au plus 500 / items per page: 50 by default, at most 500.
    #[serde(default)]
    pub page_size: i32,
    /// `next_page_token` de la page précédente / the previous page's `next_page_token`.
    #[serde(default)]
    pub page_token: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CheckQuery {
    /// The structure that wants to read (UUIDv7).
    #[serde(default)]
    pub structure_id: String,
    /// The person whose data it is (UUIDv7).
    #[serde(default)]
    pub person_id: String,
    /// The référentiel domain id, e.g. `sante`.
    #[serde(default)]
    pub domain: String,
    /// `accompagnement`, `orientation` or `statistiques`.
    #[serde(default)]
    pub purpose: String,
}

/// The answer of the access check.
#[derive(Debug, Serialize, ToSchema)]
pub struct DecisionJson {
    pub allowed: bool,
    /// `consent_active`, `no_consent`, `domain_not_covered`,
    /// `purpose_not_covered`, `consent_withdrawn`, `consent_expired`,
    /// `person_erased`.
    pub reason: String,
    /// The consent that allows it; absent when denied.
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

/// Recueillir un consentement / Record a consent
///
/// La personne consent à ce qu'une structure voie des domaines de son dossier, pour des
/// finalités et une période ; un reçu signé est émis. / The person consents to a
/// structure seeing domains of their file, for purposes and a period; a signed receipt
/// is issued.
#[utoipa::path(post, path = "/people/{id}/consents", tag = TAG,
    params(("id" = String, Path, description = PERSON)),
    request_body = GrantConsent,
    responses((status = 201, description = "Le consentement / The consent", body = ConsentJson)))]
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

/// Les consentements d'une personne / A person's consents
#[utoipa::path(get, path = "/people/{id}/consents", tag = TAG,
    params(("id" = String, Path, description = PERSON), ListQuery),
    responses((status = 200, description = "Une page / One page", body = Page<ConsentJson>)))]
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

/// Un consentement / One consent
#[utoipa::path(get, path = "/consents/{id}", tag = TAG, params(("id" = String, Path, description = ID)),
    responses((status = 200, description = "Le consentement / The consent", body = ConsentJson)))]
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

/// Which domains to withdraw; absent or empty: the whole consent.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WithdrawConsent {
    /// Référentiel domain ids covered by the consent. Only these are withdrawn;
    /// the others stay shared (see the answer's `remaining`). Every domain listed,
    /// or none: the whole consent is withdrawn.
    #[serde(default)]
    pub domains: Vec<String>,
}

/// The withdrawn consent, and the one that keeps the remaining domains.
#[derive(Debug, Serialize, ToSchema)]
pub struct WithdrawnJson {
    #[serde(flatten)]
    pub consent: ConsentJson,
    /// After a withdrawal of some domains: the consent granted, in the same
    /// transaction, for the remaining domains (same structure, purposes and
    /// period, its own signed receipt). Absent when the whole consent was withdrawn.
    pub remaining: Option<ConsentJson>,
}

/// Retirer un consentement, ou certains de ses domaines / Withdraw a consent, or some of its domains
///
/// Effet immédiat ; retirer un consentement qui n'est plus actif ne change rien. Avec
/// `domains`, seuls ces domaines sont retirés, en une seule transaction : le consentement
/// est retiré et un consentement pour les domaines restants le remplace (`remaining`).
/// Un domaine inconnu ou non couvert : 400 qui le nomme. / Takes effect at once;
/// withdrawing a consent no longer active changes nothing. With `domains`, only those
/// are withdrawn, atomically: the consent is withdrawn and one for the remaining domains
/// replaces it (`remaining`). An unknown or uncovered domain: 400 naming it.
#[utoipa::path(post, path = "/consents/{id}/withdraw", tag = TAG, params(("id" = String, Path, description = ID)),
    request_body(content = Option<WithdrawConsent>, description = "Facultatif / optional"),
    responses((status = 200, description = "Le consentement retiré / The withdrawn consent", body = WithdrawnJson)))]
async fn withdraw(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<WithdrawConsent>, JsonRejection>,
) -> Result<Json<WithdrawnJson>, Problem> {
    let body = match body {
        Ok(Json(b)) => b,
        // No body at all: the whole consent.
        Err(JsonRejection::MissingJsonContentType(_)) => WithdrawConsent::default(),
        Err(e) => return Err(e.into()),
    };
    let req = state.upstreams.request(
        &headers,
        pb::WithdrawConsentRequest {
            consent_id: id,
            domains: body.domains,
        },
    );
    let r = client(&state).withdraw_consent(req).await?.into_inner();
    Ok(Json(WithdrawnJson {
        consent: r.consent.ok_or_else(empty_answer)?.into(),
        remaining: r.remaining.map(Into::into),
    }))
}

/// Le reçu signé d'un consentement / A consent's signed receipt
///
/// Un fichier JSON à garder (`Content-Disposition: attachment`) : `receipt`, sa
/// signature JWS détachée (`signature`), comment la vérifier (`verification`) et
/// `issued_at`. / A JSON file to keep: `receipt`, its detached JWS (`signature`), how
/// to check it (`verification`) and `issued_at`.
#[utoipa::path(get, path = "/consents/{id}/receipt", tag = TAG, params(("id" = String, Path, description = ID)),
    responses((status = 200, description = "Le reçu, en pièce jointe / The receipt, as an attachment", body = Object, content_type = "application/json")))]
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

/// Vérifier un accès / Check an access
///
/// Cette structure peut-elle voir ce domaine du dossier de cette personne pour cette
/// finalité ? Refusé par défaut. / May this structure see this domain of this person's
/// file for this purpose? Denied by default.
#[utoipa::path(get, path = "/consents/check", tag = TAG, params(CheckQuery),
    responses((status = 200, description = "La décision / The decision", body = DecisionJson)))]
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
