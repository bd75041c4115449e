//! `/referrals` (send, list), `/referrals/{id}`, `/referrals/{id}/transitions`
//! (move it, read its history), `/referrals/{id}/messages` (the thread) and
//! `/referrals/{id}/diagnostic` (what travelled with it). States and refusal
//! reasons are codes: `envoyee`, `a_l_etude`, `acceptee`, `refusee`,
//! `expiree`, `en_cours`, `terminee`, `abandonnee`, `annulee`,
//! `declinee_par_la_personne`; `beneficiaire_injoignable`,
//! `freins_peripheriques`, `session_complete`, `doublon`, `hors_criteres`,
//! `autre`.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use eva_proto::referrals::v1 as pb;
use eva_proto::referrals::v1::referral_service_client::ReferralServiceClient;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::json::{PageQuery, code, empty_answer, non_empty, when};
use crate::structures::Page;
use crate::{AppState, Problem};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(fetch))
        .routes(routes!(history, transition))
        .routes(routes!(messages, post_message))
        .routes(routes!(diagnostic))
}

const TAG: &str = "Orientations";

const STATES: &str = "envoyee, a_l_etude, acceptee, refusee, expiree, en_cours, terminee, \
    abandonnee, annulee, declinee_par_la_personne";
const REASONS: &str = "beneficiaire_injoignable, freins_peripheriques, session_complete, doublon, hors_criteres, autre";

#[derive(Debug, Serialize, ToSchema)]
pub struct ContactJson {
    pub first_name: String,
    pub last_name: String,
    pub phone: Option<String>,
    pub email: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReferralJson {
    pub id: String,
    pub person_id: String,
    pub sender_structure_id: String,
    pub sender_user_id: String,
    pub target_structure_id: String,
    pub target_service_id: Option<String>,
    pub status: Option<String>,
    pub domains: Vec<String>,
    /// The counselor's words; absent in lists and when the person's
    /// consent withholds it from the reader.
    pub reason: Option<String>,
    /// How to reach the person, when their consent lets the reader see it.
    /// In lists only with `include=person_name`, and then the names alone.
    pub person_contact: Option<ContactJson>,
    pub diagnostic_id: Option<String>,
    pub refusal_reason: Option<String>,
    pub sent_at: Option<String>,
    pub first_answered_at: Option<String>,
    pub remind_at: Option<String>,
    pub expires_at: Option<String>,
    pub closed_at: Option<String>,
    pub updated_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TransitionJson {
    pub id: String,
    pub referral_id: String,
    pub from_status: Option<String>,
    pub to_status: Option<String>,
    pub actor_user_id: Option<String>,
    pub actor_structure_id: Option<String>,
    pub refusal_reason: Option<String>,
    pub note: Option<String>,
    pub occurred_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MovedJson {
    pub referral: ReferralJson,
    pub transition: TransitionJson,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessageJson {
    pub id: String,
    pub referral_id: String,
    pub author_user_id: String,
    pub author_structure_id: String,
    pub body: String,
    pub posted_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TravellingDomainJson {
    pub domain_id: String,
    /// `visible` or `withheld`.
    pub access: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TravellingDiagnosticJson {
    pub diagnostic_id: String,
    pub referentiel_version: String,
    pub taken_at: Option<String>,
    pub domains: Vec<TravellingDomainJson>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewReferral {
    pub person_id: String,
    pub sender_structure_id: String,
    pub target_structure_id: String,
    #[serde(default)]
    pub target_service_id: Option<String>,
    pub domains: Vec<String>,
    pub reason: String,
    #[serde(default)]
    pub diagnostic_id: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTransition {
    pub to_status: String,
    #[serde(default)]
    pub refusal_reason: Option<String>,
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMessage {
    pub body: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default)]
    pub page_size: i32,
    #[serde(default)]
    pub page_token: String,
    #[serde(default)]
    pub structure_id: Option<String>,
    /// `sent` or `received`; both when absent.
    #[serde(default)]
    pub direction: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub person_id: Option<String>,
    /// `person_name` : chaque orientation donne aussi `person_contact.first_name` et
    /// `last_name` (rien d'autre) quand l'accord de la personne permet à votre structure de
    /// lire l'orientation, comme `GET /referrals/{id}` ; chaque nom ouvert est inscrit au
    /// journal des accès de la personne, comme une lecture de l'orientation. Sans accord :
    /// pas de `person_contact`. / `person_name`: each referral also gives the person's
    /// first and last name (nothing else) where their consent lets your structure read
    /// the referral, as `GET /referrals/{id}` does; each name opened is recorded in the
    /// person's access log as a read of that referral.
    #[serde(default)]
    #[param(example = "person_name")]
    pub include: Option<String>,
}

/// What `GET /referrals` may add on request (`include=`, comma-separated).
const INCLUDES: &str = "person_name";

/// Does `include` ask for the people's names? Unknown words are refused by name.
fn includes_person_name(include: Option<&str>) -> Result<bool, Problem> {
    let mut names = false;
    for word in include.unwrap_or("").split(',').map(str::trim) {
        match word {
            "" => {}
            "person_name" => names = true,
            other => {
                return Err(Problem::invalid(
                    "include",
                    format!(
                        "« {other} » inconnu ; possible : {INCLUDES} / unknown, possible: {INCLUDES}"
                    ),
                ));
            }
        }
    }
    Ok(names)
}

fn status_code(s: i32) -> Option<String> {
    pb::ReferralStatus::try_from(s)
        .ok()
        .and_then(|s| code(s.as_str_name(), "REFERRAL_STATUS_"))
}

fn reason_code(r: i32) -> Option<String> {
    pb::RefusalReason::try_from(r)
        .ok()
        .and_then(|r| code(r.as_str_name(), "REFUSAL_REASON_"))
}

fn status_from_json(field: &str, s: &str) -> Result<pb::ReferralStatus, Problem> {
    pb::ReferralStatus::from_str_name(&format!("REFERRAL_STATUS_{}", s.trim().to_uppercase()))
        .filter(|s| *s != pb::ReferralStatus::Unspecified)
        .ok_or_else(|| {
            Problem::invalid(
                field,
                format!("état inconnu « {s} » ; états possibles : {STATES} / unknown state"),
            )
        })
}

fn reason_from_json(s: &str) -> Result<pb::RefusalReason, Problem> {
    pb::RefusalReason::from_str_name(&format!("REFUSAL_REASON_{}", s.trim().to_uppercase()))
        .filter(|r| *r != pb::RefusalReason::Unspecified)
        .ok_or_else(|| {
            Problem::invalid(
                "refusal_reason",
                format!("motif inconnu « {s} » ; motifs possibles : {REASONS} / unknown reason"),
            )
        })
}

impl From<pb::Referral> for ReferralJson {
    fn from(r: pb::Referral) -> Self {
        let contact = r
            .person_contact
            .filter(|c| !c.last_name.is_empty())
            .map(|c| ContactJson {
                first_name: c.first_name,
                last_name: c.last_name,
                phone: non_empty(c.phone),
                email: non_empty(c.email),
            });
        Self {
            id: r.referral_id,
            person_id: r.person_id,
            sender_structure_id: r.sender_structure_id,
            sender_user_id: r.sender_user_id,
            target_structure_id: r.target_structure_id,
            target_service_id: non_empty(r.target_service_id),
            status: status_code(r.status),
            domains: r.domains,
            reason: non_empty(r.reason),
            person_contact: contact,
            diagnostic_id: non_empty(r.diagnostic_id),
            refusal_reason: reason_code(r.refusal_reason),
            sent_at: when(r.sent_at),
            first_answered_at: when(r.first_answered_at),
            remind_at: when(r.remind_at),
            expires_at: when(r.expires_at),
            closed_at: when(r.closed_at),
            updated_at: when(r.updated_at),
        }
    }
}

impl From<pb::ReferralTransition> for TransitionJson {
    fn from(t: pb::ReferralTransition) -> Self {
        Self {
            id: t.transition_id,
            referral_id: t.referral_id,
            from_status: status_code(t.from_status),
            to_status: status_code(t.to_status),
            actor_user_id: non_empty(t.actor_user_id),
            actor_structure_id: non_empty(t.actor_structure_id),
            refusal_reason: reason_code(t.refusal_reason),
            note: non_empty(t.note),
            occurred_at: when(t.occurred_at),
        }
    }
}

impl From<pb::ReferralMessage> for MessageJson {
    fn from(m: pb::ReferralMessage) -> Self {
        Self {
            id: m.message_id,
            referral_id: m.referral_id,
            author_user_id: m.author_user_id,
            author_structure_id: m.author_structure_id,
            body: m.body,
            posted_at: when(m.posted_at),
        }
    }
}

fn client(state: &AppState) -> ReferralServiceClient<tonic::transport::Channel> {
    ReferralServiceClient::new(state.upstreams.referrals.clone())
}

/// Orienter une personne / Refer a person
///
/// Vers une structure ou un partenaire, pour des domaines du référentiel ; la part
/// consentie du diagnostic voyage scellée. / To a structure or a partner, for domains of
/// the référentiel; the consented part of the diagnostic travels sealed.
#[utoipa::path(post, path = "/referrals", tag = TAG, request_body = NewReferral,
    responses((status = 201, description = "Envoyée / Sent", body = ReferralJson)))]
async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<NewReferral>, JsonRejection>,
) -> Result<(StatusCode, Json<ReferralJson>), Problem> {
    let Json(b) = body?;
    let req = state.upstreams.request(
        &headers,
        pb::CreateReferralRequest {
            person_id: b.person_id,
            sender_structure_id: b.sender_structure_id,
            target_structure_id: b.target_structure_id,
            target_service_id: b.target_service_id.unwrap_or_default(),
            domains: b.domains,
            reason: b.reason,
            diagnostic_id: b.diagnostic_id.unwrap_or_default(),
        },
    );
    let r = client(&state).create_referral(req).await?.into_inner();
    Ok((
        StatusCode::CREATED,
        Json(r.referral.ok_or_else(empty_answer)?.into()),
    ))
}

/// Orientations envoyées et reçues / Referrals sent and received
///
/// Sans `include`, la liste n'ouvre rien de scellé : ni motif ni coordonnées. Avec
/// `include=person_name`, le prénom et le nom de chaque personne que vous pouvez lire. /
/// Without `include`, the list opens nothing sealed: no reason, no contact. With
/// `include=person_name`, the first and last name of each person you may read.
#[utoipa::path(get, path = "/referrals", tag = TAG, params(ListQuery),
    responses((status = 200, description = "Une page / One page", body = Page<ReferralJson>)))]
async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Page<ReferralJson>>, Problem> {
    let Query(q) = query?;
    let direction = match q.direction.as_deref().map(str::trim) {
        None | Some("") => pb::ReferralDirection::Unspecified,
        Some("sent") => pb::ReferralDirection::Sent,
        Some("received") => pb::ReferralDirection::Received,
        Some(other) => {
            return Err(Problem::invalid(
                "direction",
                format!("sens inconnu « {other} » : sent ou received / unknown direction"),
            ));
        }
    };
    let status = match q.status.as_deref() {
        None | Some("") => pb::ReferralStatus::Unspecified,
        Some(s) => status_from_json("status", s)?,
    };
    let include_person_name = includes_person_name(q.include.as_deref())?;
    let req = state.upstreams.request(
        &headers,
        pb::ListReferralsRequest {
            page_size: q.page_size,
            page_token: q.page_token,
            structure_id: q.structure_id.unwrap_or_default(),
            direction: direction as i32,
            status: status as i32,
            person_id: q.person_id.unwrap_or_default(),
            include_person_name,
        },
    );
    let r = client(&state).list_referrals(req).await?.into_inner();
    Ok(Json(Page {
        items: r.referrals.into_iter().map(Into::into).collect(),
        next_page_token: non_empty(r.next_page_token),
    }))
}

/// Une orientation / One referral
#[utoipa::path(get, path = "/referrals/{id}", tag = TAG, params(("id" = String, Path, description = "L'orientation (UUIDv7) / the referral")),
    responses((status = 200, description = "L'orientation / The referral", body = ReferralJson)))]
async fn fetch(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<ReferralJson>, Problem> {
    let req = state
        .upstreams
        .request(&headers, pb::GetReferralRequest { referral_id: id });
    let r = client(&state).get_referral(req).await?.into_inner();
    Ok(Json(r.referral.ok_or_else(empty_answer)?.into()))
}

/// Faire avancer une orientation / Move a referral on
///
/// États : envoyee → a_l_etude → acceptee | refusee | expiree ; acceptee → en_cours →
/// terminee | abandonnee ; annulee ; declinee_par_la_personne. Un refus donne son motif.
#[utoipa::path(post, path = "/referrals/{id}/transitions", tag = TAG, params(("id" = String, Path, description = "L'orientation (UUIDv7) / the referral")),
    request_body = NewTransition,
    responses((status = 200, description = "L'orientation et l'étape franchie / The referral and the step taken", body = MovedJson),
        (status = 409, description = "Étape impossible depuis cet état ; le message nomme les possibles / Not allowed from this state", body = Problem, content_type = "application/problem+json")))]
async fn transition(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<NewTransition>, JsonRejection>,
) -> Result<Json<MovedJson>, Problem> {
    let Json(b) = body?;
    let to = status_from_json("to_status", &b.to_status)?;
    let reason = match b.refusal_reason.as_deref() {
        None | Some("") => pb::RefusalReason::Unspecified,
        Some(r) => reason_from_json(r)?,
    };
    let req = state.upstreams.request(
        &headers,
        pb::TransitionReferralRequest {
            referral_id: id,
            to_status: to as i32,
            refusal_reason: reason as i32,
            note: b.note.unwrap_or_default(),
        },
    );
    let r = client(&state).transition_referral(req).await?.into_inner();
    Ok(Json(MovedJson {
        referral: r.referral.ok_or_else(empty_answer)?.into(),
        transition: r.transition.ok_or_else(empty_answer)?.into(),
    }))
}

/// Historique d'une orientation / A referral's history
#[utoipa::path(get, path = "/referrals/{id}/transitions", tag = TAG, params(("id" = String, Path, description = "L'orientation (UUIDv7) / the referral"), PageQuery),
    responses((status = 200, description = "Une page d'étapes / One page of steps", body = Page<TransitionJson>)))]
async fn history(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<Page<TransitionJson>>, Problem> {
    let Query(q) = query?;
    let req = state.upstreams.request(
        &headers,
        pb::ListReferralTransitionsRequest {
            page_size: q.page_size,
            page_token: q.page_token,
            referral_id: id,
        },
    );
    let r = client(&state)
        .list_referral_transitions(req)
        .await?
        .into_inner();
    Ok(Json(Page {
        items: r.transitions.into_iter().map(Into::into).collect(),
        next_page_token: non_empty(r.next_page_token),
    }))
}

/// Écrire dans le fil d'une orientation / Post in a referral's thread
#[utoipa::path(post, path = "/referrals/{id}/messages", tag = TAG, params(("id" = String, Path, description = "L'orientation (UUIDv7) / the referral")),
    request_body = NewMessage,
    responses((status = 201, description = "Le message / The message", body = MessageJson)))]
async fn post_message(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<NewMessage>, JsonRejection>,
) -> Result<(StatusCode, Json<MessageJson>), Problem> {
    let Json(b) = body?;
    let req = state.upstreams.request(
        &headers,
        pb::PostReferralMessageRequest {
            referral_id: id,
            body: b.body,
        },
    );
    let r = client(&state)
        .post_referral_message(req)
        .await?
        .into_inner();
    Ok((
        StatusCode::CREATED,
        Json(r.message.ok_or_else(empty_answer)?.into()),
    ))
}

/// Le fil d'une orientation / A referral's thread
#[utoipa::path(get, path = "/referrals/{id}/messages", tag = TAG, params(("id" = String, Path, description = "L'orientation (UUIDv7) / the referral"), PageQuery),
    responses((status = 200, description = "Une page de messages / One page of messages", body = Page<MessageJson>)))]
async fn messages(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<Page<MessageJson>>, Problem> {
    let Query(q) = query?;
    let req = state.upstreams.request(
        &headers,
        pb::ListReferralMessagesRequest {
            page_size: q.page_size,
            page_token: q.page_token,
            referral_id: id,
        },
    );
    let r = client(&state)
        .list_referral_messages(req)
        .await?
        .into_inner();
    Ok(Json(Page {
        items: r.messages.into_iter().map(Into::into).collect(),
        next_page_token: non_empty(r.next_page_token),
    }))
}

/// Ce qui a voyagé du diagnostic / What travelled of the diagnostic
///
/// Chaque domaine est `visible` ou `withheld` selon le consentement de la personne.
#[utoipa::path(get, path = "/referrals/{id}/diagnostic", tag = TAG, params(("id" = String, Path, description = "L'orientation (UUIDv7) / the referral")),
    responses((status = 200, description = "Les domaines / The domains", body = TravellingDiagnosticJson)))]
async fn diagnostic(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<TravellingDiagnosticJson>, Problem> {
    let req = state.upstreams.request(
        &headers,
        pb::GetReferralDiagnosticRequest { referral_id: id },
    );
    let r = client(&state)
        .get_referral_diagnostic(req)
        .await?
        .into_inner();
    Ok(Json(TravellingDiagnosticJson {
        diagnostic_id: r.diagnostic_id,
        referentiel_version: r.referentiel_version,
        taken_at: when(r.taken_at),
        domains: r
            .domains
            .into_iter()
            .map(|d| TravellingDomainJson {
                domain_id: d.domain,
                content: serde_json::from_str(&d.content_json).ok(),
                message: non_empty(d.message),
                access: d.access,
            })
            .collect(),
    }))
}
