//! `/people`: people supported, for the person themself and the structures
//! that follow them. Identity decides who sees whom and logs every access.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use eva_proto::identity::v1 as pb;
use eva_proto::identity::v1::person_service_client::PersonServiceClient;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::json::{empty_answer, non_empty, when};
use crate::structures::Page;
use crate::{AppState, Problem};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(fetch, update))
}

const TAG: &str = "Personnes";

const ID: &str = "La personne (UUIDv7) / the person";

/// A person supported in the public API. Personal data: shown only to the
/// person and to the structures following them.
#[derive(Debug, Serialize, ToSchema)]
pub struct PersonJson {
    pub id: String,
    pub first_name: String,
    pub last_name: String,
    /// `YYYY-MM-DD`.
    pub birth_date: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    /// Numéro de sécurité sociale, 15 characters.
    pub nir: Option<String>,
    /// INSEE code of the commune where the person lives.
    pub commune_insee: String,
    /// The person's own account, if they have one.
    pub user_id: Option<String>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}

/// Which structure follows a person, since when.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = StartedAccompanimentJson)]
pub struct AccompanimentJson {
    pub id: String,
    pub person_id: String,
    pub structure_id: String,
    pub referent_user_id: Option<String>,
    /// `YYYY-MM-DD`.
    pub start_date: String,
    /// `YYYY-MM-DD`; null while it goes on.
    pub end_date: Option<String>,
    /// `emploi_formation`, `reorientation`, `choix_de_la_personne`,
    /// `sans_nouvelles`, `demenagement`, `autre`; null while it goes on.
    pub end_reason: Option<String>,
    pub created_at: Option<String>,
}

/// A new person with the accompaniment by the registering structure.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedPerson {
    #[serde(flatten)]
    pub person: PersonJson,
    pub accompaniment: Option<AccompanimentJson>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePerson {
    /// The registering structure, which starts following the person.
    pub structure_id: String,
    pub first_name: String,
    pub last_name: String,
    /// `YYYY-MM-DD`.
    pub birth_date: String,
    /// INSEE code of the commune where the person lives.
    pub commune_insee: String,
    pub email: Option<String>,
    /// E.164 preferred.
    pub phone: Option<String>,
    /// Numéro de sécurité sociale, 15 characters.
    pub nir: Option<String>,
    /// The referent counselor's account.
    pub referent_user_id: Option<String>,
}

/// Only the fields sent change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdatePerson {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// `YYYY-MM-DD`.
    pub birth_date: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub nir: Option<String>,
    pub commune_insee: Option<String>,
}

/// `?structure_id=` (required) and an optional exact-match search: last
/// name, first name and birth date together, or NIR, or e-mail.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// La structure qui suit les personnes (requis) / the structure following the
    /// people (required).
    #[serde(default)]
    pub structure_id: String,
    /// Nom exact / exact last name.
    #[serde(default)]
    pub last_name: String,
    /// Prénom exact / exact first name.
    #[serde(default)]
    pub first_name: String,
    /// Date de naissance exacte / exact birth date, `YYYY-MM-DD`.
    #[serde(default)]
    pub birth_date: String,
    /// NIR exact / exact NIR.
    #[serde(default)]
    pub nir: String,
    /// E-mail exact / exact e-mail.
    #[serde(default)]
    pub email: String,
    /// Éléments par page : par défaut 50, au plus 500 / items per page: 50 by default, at most 500.
    #[serde(default)]
    pub page_size: i32,
    /// `next_page_token` de la page précédente / the previous page's `next_page_token`.
    #[serde(default)]
    pub page_token: String,
}

impl From<pb::Person> for PersonJson {
    fn from(p: pb::Person) -> Self {
        Self {
            id: p.person_id,
            first_name: p.first_name,
            last_name: p.last_name,
            birth_date: p.birth_date,
            email: non_empty(p.email),
            phone: non_empty(p.phone),
            nir: non_empty(p.nir),
            commune_insee: p.commune_insee,
            user_id: non_empty(p.user_id),
            created_at: when(p.created_at),
            updated_at: when(p.updated_at),
        }
    }
}

impl From<pb::Accompaniment> for AccompanimentJson {
    fn from(a: pb::Accompaniment) -> Self {
        let end_reason = crate::accompaniments::end_reason_to_json(a.end_reason);
        Self {
            id: a.accompaniment_id,
            person_id: a.person_id,
            structure_id: a.structure_id,
            referent_user_id: non_empty(a.referent_user_id),
            start_date: a.start_date,
            end_date: non_empty(a.end_date),
            end_reason,
            created_at: when(a.created_at),
        }
    }
}

/// Inscrire une personne / Register a person
///
/// La structure qui l'inscrit commence à la suivre. / The registering structure starts
/// following them.
#[utoipa::path(post, path = "/people", tag = TAG, request_body = CreatePerson,
    responses((status = 201, description = "La personne et son accompagnement / The person and their accompaniment", body = CreatedPerson)))]
async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<CreatePerson>, JsonRejection>,
) -> Result<(StatusCode, Json<CreatedPerson>), Problem> {
    let Json(body) = body?;
    let mut client = PersonServiceClient::new(state.upstreams.identity.clone());
    let req = state.upstreams.request(
        &headers,
        pb::CreatePersonRequest {
            structure_id: body.structure_id,
            first_name: body.first_name,
            last_name: body.last_name,
            birth_date: body.birth_date,
            email: body.email.unwrap_or_default(),
            phone: body.phone.unwrap_or_default(),
            nir: body.nir.unwrap_or_default(),
            commune_insee: body.commune_insee,
            referent_user_id: body.referent_user_id.unwrap_or_default(),
        },
    );
    let r = client.create_person(req).await?.into_inner();
    let person = r.person.ok_or_else(empty_answer)?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedPerson {
            person: person.into(),
            accompaniment: r.accompaniment.map(Into::into),
        }),
    ))
}

/// Une personne / One person
///
/// Pour la personne elle-même et les structures qui la suivent ; 404 pour tout autre. /
/// For the person themself and the structures following them; 404 for anyone else.
#[utoipa::path(get, path = "/people/{id}", tag = TAG, params(("id" = String, Path, description = ID)),
    responses((status = 200, description = "La personne / The person", body = PersonJson)))]
async fn fetch(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<PersonJson>, Problem> {
    let mut client = PersonServiceClient::new(state.upstreams.identity.clone());
    let req = state
        .upstreams
        .request(&headers, pb::GetPersonRequest { person_id: id });
    let r = client.get_person(req).await?.into_inner();
    Ok(Json(r.person.ok_or_else(empty_answer)?.into()))
}

/// Modifier une personne / Update a person
#[utoipa::path(patch, path = "/people/{id}", tag = TAG, params(("id" = String, Path, description = ID)),
    request_body = UpdatePerson,
    responses((status = 200, description = "La personne modifiée / The updated person", body = PersonJson)))]
async fn update(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<UpdatePerson>, JsonRejection>,
) -> Result<Json<PersonJson>, Problem> {
    let Json(body) = body?;
    let mut client = PersonServiceClient::new(state.upstreams.identity.clone());
    let req = state.upstreams.request(
        &headers,
        pb::UpdatePersonRequest {
            person_id: id,
            first_name: body.first_name,
            last_name: body.last_name,
            birth_date: body.birth_date,
            email: body.email,
            phone: body.phone,
            nir: body.nir,
            commune_insee: body.commune_insee,
        },
    );
    let r = client.update_person(req).await?.into_inner();
    Ok(Json(r.person.ok_or_else(empty_answer)?.into()))
}

/// Les personnes suivies / People followed
///
/// Par une structure, avec une recherche exacte facultative : nom, prénom et date de
/// naissance ensemble, ou NIR, ou e-mail. / By a structure, with an optional exact-match
/// search: last name, first name and birth date together, or NIR, or e-mail.
#[utoipa::path(get, path = "/people", tag = TAG, params(ListQuery),
    responses((status = 200, description = "Une page / One page", body = Page<PersonJson>)))]
async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Page<PersonJson>>, Problem> {
    let Query(q) = query?;
    let mut client = PersonServiceClient::new(state.upstreams.identity.clone());
    let req = state.upstreams.request(
        &headers,
        pb::ListPeopleRequest {
            page_size: q.page_size,
            page_token: q.page_token,
            structure_id: q.structure_id,
            last_name: q.last_name,
            first_name: q.first_name,
            birth_date: q.birth_date,
            nir: q.nir,
            email: q.email,
        },
    );
    let r = client.list_people(req).await?.into_inner();
    Ok(Json(Page {
        items: r.people.into_iter().map(Into::into).collect(),
        next_page_token: non_empty(r.next_page_token),
    }))
}
