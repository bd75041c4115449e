//! `/people/{id}/accompaniments`, `/accompaniments/{id}/end`,
//! `/me/share-codes`, `/share-codes/redeem` and `/people/{id}/invitations`:
//! who follows a person, how a new structure starts following them, and the
//! person's own account. Identity decides who may do what.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use eva_proto::identity::v1 as pb;
use eva_proto::identity::v1::accompaniment_service_client::AccompanimentServiceClient;
use eva_proto::identity::v1::person_account_service_client::PersonAccountServiceClient;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::no_store;
use crate::json::{PageQuery, code, empty_answer, non_empty, when};
use crate::people::PersonJson;
use crate::structures::Page;
use crate::{AppState, Problem};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(end))
        .routes(routes!(create_share_code))
        .routes(routes!(redeem))
        .routes(routes!(invite_person))
}

const TAG: &str = "Accompagnements";

const PERSON: &str = "La personne (UUIDv7) / the person";

/// The end reasons, as JSON names.
pub const END_REASONS: &str =
    "emploi_formation, reorientation, choix_de_la_personne, sans_nouvelles, demenagement, autre";

/// A structure following (or having followed) a person.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccompanimentJson {
    pub id: String,
    pub person_id: String,
    pub structure_id: String,
    pub structure_name: String,
    pub referent_user_id: Option<String>,
    /// `YYYY-MM-DD`.
    pub start_date: String,
    /// `YYYY-MM-DD`; null while it goes on.
    pub end_date: Option<String>,
    /// `emploi_formation`, `reorientation`, `choix_de_la_personne`,
    /// `sans_nouvelles`, `demenagement`, `autre` (see `END_REASONS`); null while it goes on.
    pub end_reason: Option<String>,
    /// True while the structure follows the person.
    pub ongoing: bool,
    pub created_at: Option<String>,
}

pub fn end_reason_to_json(raw: i32) -> Option<String> {
    pb::AccompanimentEndReason::try_from(raw)
        .ok()
        .and_then(|r| code(r.as_str_name(), "ACCOMPANIMENT_END_REASON_"))
}

pub fn end_reason_from_json(s: &str) -> Result<pb::AccompanimentEndReason, Problem> {
    pb::AccompanimentEndReason::from_str_name(&format!(
        "ACCOMPANIMENT_END_REASON_{}",
        s.trim().to_uppercase()
    ))
    .filter(|r| *r != pb::AccompanimentEndReason::Unspecified)
    .ok_or_else(|| {
        Problem::invalid(
            "end_reason",
            format!("motif inconnu « {s} » ; attendu : {END_REASONS} / unknown end reason"),
        )
    })
}

impl From<pb::Accompaniment> for AccompanimentJson {
    fn from(a: pb::Accompaniment) -> Self {
        Self {
            ongoing: a.end_date.is_empty(),
            id: a.accompaniment_id,
            person_id: a.person_id,
            structure_id: a.structure_id,
            structure_name: a.structure_name,
            referent_user_id: non_empty(a.referent_user_id),
            start_date: a.start_date,
            end_date: non_empty(a.end_date),
            end_reason: end_reason_to_json(a.end_reason),
            created_at: when(a.created_at),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndBody {
    /// `YYYY-MM-DD`: not before the start, not in the future.
    pub end_date: String,
    /// `emploi_formation`, `reorientation`, `choix_de_la_personne`,
    /// `sans_nouvelles`, `demenagement`, `autre` (see `END_REASONS`).
    pub end_reason: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedeemBody {
    /// The person's share code (8 characters).
    pub code: String,
    /// The structure that will follow the person.
    pub structure_id: String,
    #[serde(default)]
    pub referent_user_id: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvitePersonBody {
    /// Where the person will log in; the e-mail on their file when absent.
    #[serde(default)]
    pub email: Option<String>,
}

/// A share code as created: shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct ShareCodeJson {
    pub code: String,
    pub expires_at: Option<String>,
}

/// A redeemed code: the person, now followed, and the new accompaniment.
#[derive(Debug, Serialize, ToSchema)]
pub struct RedeemedJson {
    pub person: PersonJson,
    pub accompaniment: Option<AccompanimentJson>,
}

/// A person's invitation to their own account; the code is shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct PersonInvitationJson {
    pub invitation_id: String,
    pub person_id: String,
    /// The one-time code, for `POST /auth/invitations/accept`.
    pub code: String,
    pub email: String,
    /// Always `person`.
    pub role: String,
    pub structure_id: String,
    pub expires_at: Option<String>,
}

fn client(state: &AppState) -> AccompanimentServiceClient<tonic::transport::Channel> {
    AccompanimentServiceClient::new(state.upstreams.identity.clone())
}

/// Qui suit une personne / Who follows a person
///
/// Les accompagnements en cours et passés, les plus récents d'abord. / Ongoing and past
/// accompaniments, most recent first.
#[utoipa::path(get, path = "/people/{id}/accompaniments", tag = TAG,
    params(("id" = String, Path, description = PERSON), PageQuery),
    responses((status = 200, description = "Une page / One page", body = Page<AccompanimentJson>)))]
async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<Page<AccompanimentJson>>, Problem> {
    let Query(q) = query?;
    let req = state.upstreams.request(
        &headers,
        pb::ListAccompanimentsRequest {
            page_size: q.page_size,
            page_token: q.page_token,
            person_id: id,
        },
    );
    let r = client(&state).list_accompaniments(req).await?.into_inner();
    Ok(Json(Page {
        items: r.accompaniments.into_iter().map(Into::into).collect(),
        next_page_token: non_empty(r.next_page_token),
    }))
}

/// Mettre fin à un accompagnement / End an accompaniment
///
/// Avec une date et un motif ; l'historique est gardé et la structure ne suit plus la
/// personne. / With a date and a reason; history is kept and the structure no longer
/// follows the person.
#[utoipa::path(post, path = "/accompaniments/{id}/end", tag = TAG,
    params(("id" = String, Path, description = "L'accompagnement (UUIDv7) / the accompaniment")),
    request_body = EndBody,
    responses((status = 200, description = "L'accompagnement terminé / The ended accompaniment", body = AccompanimentJson),
        (status = 409, description = "Déjà terminé / Already ended", body = Problem, content_type = "application/problem+json")))]
async fn end(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<EndBody>, JsonRejection>,
) -> Result<Json<AccompanimentJson>, Problem> {
    let Json(body) = body?;
    let reason = end_reason_from_json(&body.end_reason)?;
    let req = state.upstreams.request(
        &headers,
        pb::EndAccompanimentRequest {
            accompaniment_id: id,
            end_date: body.end_date,
            end_reason: reason as i32,
        },
    );
    let r = client(&state).end_accompaniment(req).await?.into_inner();
    Ok(Json(r.accompaniment.ok_or_else(empty_answer)?.into()))
}

/// Créer un code de partage / Create a share code
///
/// La personne (son propre compte) crée un code à usage unique, valable 24 heures, à
/// donner à une nouvelle structure ; montré cette seule fois. / The person (their own
/// account) creates a one-time code, valid 24 hours, to hand to a new structure; shown
/// this once.
#[utoipa::path(post, path = "/me/share-codes", tag = TAG,
    responses((status = 201, description = "Le code / The code", body = ShareCodeJson),
        (status = 409, description = "Déjà 5 codes en cours / Already 5 codes in use", body = Problem, content_type = "application/problem+json")))]
async fn create_share_code(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let req = state
        .upstreams
        .request(&headers, pb::CreateShareCodeRequest {});
    let r = client(&state).create_share_code(req).await?.into_inner();
    let c = r.share_code.ok_or_else(empty_answer)?;
    Ok(no_store(
        StatusCode::CREATED,
        ShareCodeJson {
            code: c.code,
            expires_at: when(c.expires_at),
        },
    ))
}

/// Utiliser un code de partage / Redeem a share code
///
/// La structure commence à suivre la personne. / The structure starts following the
/// person.
#[utoipa::path(post, path = "/share-codes/redeem", tag = TAG, request_body = RedeemBody,
    responses((status = 201, description = "La personne et le nouvel accompagnement / The person and the new accompaniment", body = RedeemedJson),
        (status = 409, description = "La structure suit déjà la personne / The structure already follows the person", body = Problem, content_type = "application/problem+json")))]
async fn redeem(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<RedeemBody>, JsonRejection>,
) -> Result<Response, Problem> {
    let Json(body) = body?;
    let req = state.upstreams.request(
        &headers,
        pb::RedeemShareCodeRequest {
            code: body.code,
            structure_id: body.structure_id,
            referent_user_id: body.referent_user_id.unwrap_or_default(),
        },
    );
    let r = client(&state).redeem_share_code(req).await?.into_inner();
    Ok(no_store(
        StatusCode::CREATED,
        RedeemedJson {
            person: r.person.ok_or_else(empty_answer)?.into(),
            accompaniment: r.accompaniment.map(Into::into),
        },
    ))
}

/// Inviter une personne à son propre compte / Invite a person to their own account
///
/// Le corps est facultatif : sans corps (ou `{}`), l'e-mail de sa fiche ; le code,
/// valable 7 jours, est montré cette seule fois. / The body is optional: no body (or
/// `{}`) uses the e-mail on the person's file; the code, valid 7 days, is shown this once.
#[utoipa::path(post, path = "/people/{id}/invitations", tag = TAG,
    params(("id" = String, Path, description = PERSON)),
    request_body = Option<InvitePersonBody>,
    responses((status = 201, description = "L'invitation / The invitation", body = PersonInvitationJson),
        (status = 409, description = "La personne a déjà un compte actif / The person already has an active account", body = Problem, content_type = "application/problem+json")))]
async fn invite_person(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, Problem> {
    let body: InvitePersonBody = if body.iter().all(u8::is_ascii_whitespace) {
        InvitePersonBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| Problem::invalid("body", e.to_string()))?
    };
    let req = state.upstreams.request(
        &headers,
        pb::InvitePersonRequest {
            person_id: id,
            email: body.email.unwrap_or_default(),
        },
    );
    let r = PersonAccountServiceClient::new(state.upstreams.identity.clone())
        .invite_person(req)
        .await?
        .into_inner();
    let inv = r.invitation.ok_or_else(empty_answer)?;
    Ok(no_store(
        StatusCode::CREATED,
        PersonInvitationJson {
            invitation_id: inv.invitation_id,
            person_id: inv.person_id,
            code: inv.code,
            email: inv.email,
            role: crate::auth::role_to_json(inv.role),
            structure_id: inv.structure_id,
            expires_at: when(inv.expires_at),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_reasons_read_as_lowercase_words() {
        assert_eq!(
            end_reason_from_json("choix_de_la_personne").ok(),
            Some(pb::AccompanimentEndReason::ChoixDeLaPersonne)
        );
        assert!(end_reason_from_json("unspecified").is_err());
        let p = end_reason_from_json("martian").unwrap_err();
        assert_eq!(p.errors[0].field, "end_reason");
        for name in END_REASONS.split(", ") {
            let r = end_reason_from_json(name).unwrap();
            assert_eq!(end_reason_to_json(r as i32).as_deref(), Some(name));
        }
    }
}
