//! `/services`: the directory of services (offres). JSON bodies use EVA's
//! names (the `Service` message, `id` for its id); the import and export
//! files use the data·inclusion schema v1 as it is.
//!
//! - `GET /services?thematiques=mobilite,numerique--…&publics=…&territory=27229&structure_id=`
//!   (values of one filter comma-separated), `POST /services`;
//! - `GET /services/{id}`, `PATCH /services/{id}` (the fields sent replace
//!   the current ones; `null` clears one);
//! - `POST /services/import?source=&structure_id=&dry_run=`: the body is
//!   the data·inclusion JSON array; answers the report
//!   `{created, updated, rejected: [{index, source_id, field, reason}]}`;
//! - `GET /services/export` (same filters as the list): a JSON file;
//! - `GET /services/suggestions?diagnostic_id=&territory=`.

use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use eva_proto::referrals::v1 as pb;
use eva_proto::referrals::v1::directory_service_client::DirectoryServiceClient;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tonic::transport::Channel;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

use crate::json::{empty_answer, non_empty, when};
use crate::structures::Page;
use crate::{AppState, FieldProblem, Problem};

/// Largest import file (the referrals service's limit).
const MAX_FILE_BYTES: usize = 20 * 1024 * 1024;
/// Largest gRPC message to or from the directory (an import or an export).
const MAX_MESSAGE: usize = 256 * 1024 * 1024;
/// Deadline of an import or an export.
const FILE_TIMEOUT: Duration = Duration::from_secs(60);
/// Fields of a service that EVA sets.
const READ_ONLY: &[&str] = &[
    "id",
    "source",
    "source_id",
    "created_at",
    "updated_at",
    "status",
    "archived_at",
];

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(import).layer(DefaultBodyLimit::max(MAX_FILE_BYTES + 1)))
        .routes(routes!(export))
        .routes(routes!(suggestions))
        .routes(routes!(fetch, update))
        .routes(routes!(archive))
        .routes(routes!(unarchive))
}

const TAG: &str = "Services";

fn client(channel: Channel) -> DirectoryServiceClient<Channel> {
    DirectoryServiceClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE)
}

/// A service in the public API.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceJson {
    pub id: String,
    pub structure_id: Option<String>,
    /// Where it came from: an import's source name; set by EVA.
    pub source: String,
    pub source_id: String,
    pub source_structure_id: Option<String>,
    pub name: String,
    pub description: String,
    pub types: Vec<String>,
    pub thematiques: Vec<String>,
    pub fees: Option<String>,
    pub fees_details: Option<String>,
    pub publics: Vec<String>,
    pub publics_details: Option<String>,
    pub access_conditions: Option<String>,
    pub commune: Option<String>,
    pub postal_code: Option<String>,
    pub commune_insee: Option<String>,
    pub address: Option<String>,
    pub address_complement: Option<String>,
    pub longitude: Option<f64>,
    pub latitude: Option<f64>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub contact_name: Option<String>,
    pub reception_modes: Vec<String>,
    pub eligibility_zone: Vec<String>,
    pub mobilisation_link: Option<String>,
    pub mobilisation_modes: Vec<String>,
    pub mobilisable_by: Vec<String>,
    pub mobilisation_details: Option<String>,
    pub weekly_hours: Option<f64>,
    pub weeks: Option<i32>,
    pub opening_hours: Option<String>,
    /// `YYYY-MM-DD`, the provider's last change.
    pub updated_on: Option<String>,
    pub capacity: Option<i32>,
    pub available_places: Option<i32>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
    /// `active`, or `archived` (closed: in no search, suggestion nor export, no new
    /// referral); set by EVA, changed with `POST /services/{id}/archive` and `/unarchive`.
    pub status: String,
    /// When it was archived; absent while active.
    pub archived_at: Option<String>,
}

impl From<pb::Service> for ServiceJson {
    fn from(s: pb::Service) -> Self {
        Self {
            id: s.service_id,
            structure_id: non_empty(s.structure_id),
            source: s.source,
            source_id: s.source_id,
            source_structure_id: non_empty(s.source_structure_id),
            name: s.name,
            description: s.description,
            types: s.types,
            thematiques: s.thematiques,
            fees: non_empty(s.fees),
            fees_details: non_empty(s.fees_details),
            publics: s.publics,
            publics_details: non_empty(s.publics_details),
            access_conditions: non_empty(s.access_conditions),
            commune: non_empty(s.commune),
            postal_code: non_empty(s.postal_code),
            commune_insee: non_empty(s.commune_insee),
            address: non_empty(s.address),
            address_complement: non_empty(s.address_complement),
            longitude: s.longitude,
            latitude: s.latitude,
            phone: non_empty(s.phone),
            email: non_empty(s.email),
            contact_name: non_empty(s.contact_name),
            reception_modes: s.reception_modes,
            eligibility_zone: s.eligibility_zone,
            mobilisation_link: non_empty(s.mobilisation_link),
            mobilisation_modes: s.mobilisation_modes,
            mobilisable_by: s.mobilisable_by,
            mobilisation_details: non_empty(s.mobilisation_details),
            weekly_hours: s.weekly_hours,
            weeks: s.weeks,
            opening_hours: non_empty(s.opening_hours),
            updated_on: non_empty(s.updated_on),
            capacity: s.capacity,
            available_places: s.available_places,
            created_at: when(s.created_at),
            updated_at: when(s.updated_at),
            status: if s.archived_at.is_some() {
                "archived"
            } else {
                "active"
            }
            .to_owned(),
            archived_at: when(s.archived_at),
        }
    }
}

/// What a client writes: every field optional (the service says which are
/// required); `null` is the same as absent.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceInput {
    pub structure_id: Option<String>,
    pub source_structure_id: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub types: Option<Vec<String>>,
    pub thematiques: Option<Vec<String>>,
    pub fees: Option<String>,
    pub fees_details: Option<String>,
    pub publics: Option<Vec<String>>,
    pub publics_details: Option<String>,
    pub access_conditions: Option<String>,
    pub commune: Option<String>,
    pub postal_code: Option<String>,
    pub commune_insee: Option<String>,
    pub address: Option<String>,
    pub address_complement: Option<String>,
    pub longitude: Option<f64>,
    pub latitude: Option<f64>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub contact_name: Option<String>,
    pub reception_modes: Option<Vec<String>>,
    pub eligibility_zone: Option<Vec<String>>,
    pub mobilisation_link: Option<String>,
    pub mobilisation_modes: Option<Vec<String>>,
    pub mobilisable_by: Option<Vec<String>>,
    pub mobilisation_details: Option<String>,
    pub weekly_hours: Option<f64>,
    pub weeks: Option<i32>,
    pub opening_hours: Option<String>,
    pub updated_on: Option<String>,
    pub capacity: Option<i32>,
    pub available_places: Option<i32>,
}

impl ServiceInput {
    fn into_proto(self, service_id: String) -> pb::Service {
        pb::Service {
            service_id,
            structure_id: self.structure_id.unwrap_or_default(),
            source_structure_id: self.source_structure_id.unwrap_or_default(),
            name: self.name.unwrap_or_default(),
            description: self.description.unwrap_or_default(),
            types: self.types.unwrap_or_default(),
            thematiques: self.thematiques.unwrap_or_default(),
            fees: self.fees.unwrap_or_default(),
            fees_details: self.fees_details.unwrap_or_default(),
            publics: self.publics.unwrap_or_default(),
            publics_details: self.publics_details.unwrap_or_default(),
            access_conditions: self.access_conditions.unwrap_or_default(),
            commune: self.commune.unwrap_or_default(),
            postal_code: self.postal_code.unwrap_or_default(),
            commune_insee: self.commune_insee.unwrap_or_default(),
            address: self.address.unwrap_or_default(),
            address_complement: self.address_complement.unwrap_or_default(),
            longitude: self.longitude,
            latitude: self.latitude,
            phone: self.phone.unwrap_or_default(),
            email: self.email.unwrap_or_default(),
            contact_name: self.contact_name.unwrap_or_default(),
            reception_modes: self.reception_modes.unwrap_or_default(),
            eligibility_zone: self.eligibility_zone.unwrap_or_default(),
            mobilisation_link: self.mobilisation_link.unwrap_or_default(),
            mobilisation_modes: self.mobilisation_modes.unwrap_or_default(),
            mobilisable_by: self.mobilisable_by.unwrap_or_default(),
            mobilisation_details: self.mobilisation_details.unwrap_or_default(),
            weekly_hours: self.weekly_hours,
            weeks: self.weeks,
            opening_hours: self.opening_hours.unwrap_or_default(),
            updated_on: self.updated_on.unwrap_or_default(),
            capacity: self.capacity,
            available_places: self.available_places,
            ..Default::default()
        }
    }
}

/// Reads a JSON object as a [`ServiceInput`]; a bad value or an unknown
/// key is named.
fn parse_input(obj: Map<String, Value>) -> Result<ServiceInput, Problem> {
    let whole = serde_json::from_value::<ServiceInput>(Value::Object(obj.clone()));
    match whole {
        Ok(input) => Ok(input),
        Err(e) => {
            for (k, v) in obj {
                let mut one = Map::new();
                one.insert(k.clone(), v);
                if let Err(e) = serde_json::from_value::<ServiceInput>(Value::Object(one)) {
                    return Err(Problem::invalid(&k, e.to_string()));
                }
            }
            Err(Problem::invalid("body", e.to_string()))
        }
    }
}

fn object(body: Result<Json<Value>, JsonRejection>) -> Result<Map<String, Value>, Problem> {
    let Json(body) = body?;
    match body {
        Value::Object(o) => Ok(o),
        _ => Err(Problem::invalid(
            "body",
            "un objet JSON est attendu / a JSON object is expected",
        )),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    /// Éléments par page : par défaut 50, au plus 500 / items per page: 50 by default, at most 500.
    #[serde(default)]
    pub page_size: i32,
    /// `next_page_token` de la page précédente / the previous page's `next_page_token`.
    #[serde(default)]
    pub page_token: String,
    /// Comma-separated data·inclusion thématiques or categories (a category such as
    /// `mobilite` matches all its thématiques).
    #[serde(default)]
    pub thematiques: String,
    /// Comma-separated data·inclusion publics codes.
    #[serde(default)]
    pub publics: String,
    /// A commune INSEE code (5 characters), EPCI (9 digits), département code or `france`
    /// the services must serve.
    #[serde(default)]
    pub territory: String,
    /// Only this EVA structure's services (UUIDv7).
    #[serde(default)]
    pub structure_id: String,
    /// With `structure_id`: its archived services too (for its admins and partners; the
    /// export ignores it, archived services are never exported).
    #[serde(default)]
    pub include_archived: bool,
}

fn codes(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect()
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ImportQuery {
    /// Name of the source, e.g. `dora`, `soliguide`, or a structure's own file.
    #[serde(default)]
    pub source: String,
    /// Attach every imported service to this EVA structure (UUIDv7).
    #[serde(default)]
    pub structure_id: String,
    /// Validate and report without storing.
    #[serde(default)]
    pub dry_run: bool,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SuggestQuery {
    /// The diagnostic (UUIDv7); only the domains the caller may see are used.
    #[serde(default)]
    pub diagnostic_id: String,
    /// Territory the services must serve (INSEE commune, EPCI or département code); the
    /// caller's structure's territory when absent.
    #[serde(default)]
    pub territory: String,
    /// Éléments par page : par défaut 50, au plus 500 / items per page: 50 by default, at most 500.
    #[serde(default)]
    pub page_size: i32,
    /// `next_page_token` de la page précédente / the previous page's `next_page_token`.
    #[serde(default)]
    pub page_token: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RejectionJson {
    /// Position of the row in the file's array (0-based).
    pub index: i32,
    pub source_id: Option<String>,
    /// The data·inclusion field name.
    pub field: String,
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ImportReport {
    /// Services added.
    pub created: i32,
    /// Services updated (same source and id).
    pub updated: i32,
    pub rejected: Vec<RejectionJson>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SuggestionJson {
    pub service: Option<ServiceJson>,
    /// Diagnostic domains, with a barrier, that the service addresses.
    pub domains: Vec<String>,
    /// The service's thématiques that matched.
    pub matched_thematiques: Vec<String>,
}

/// Ajouter un service / Add a service
///
/// Les champs obligatoires sont ceux du service d'annuaire ; `null` vaut absent. / The
/// directory says which fields are required; `null` is the same as absent.
#[utoipa::path(post, path = "/services", tag = TAG, request_body = ServiceInput,
    responses((status = 201, description = "Le service / The service", body = ServiceJson)))]
async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<(StatusCode, Json<ServiceJson>), Problem> {
    let input = parse_input(object(body)?)?;
    let req = state.upstreams.request(
        &headers,
        pb::CreateServiceRequest {
            service: Some(input.into_proto(String::new())),
        },
    );
    let r = client(state.upstreams.referrals.clone())
        .create_service(req)
        .await?
        .into_inner();
    let s = r.service.ok_or_else(empty_answer)?;
    Ok((StatusCode::CREATED, Json(s.into())))
}

async fn get_one(
    state: &AppState,
    headers: &HeaderMap,
    id: String,
) -> Result<pb::Service, Problem> {
    let req = state
        .upstreams
        .request(headers, pb::GetServiceRequest { service_id: id });
    client(state.upstreams.referrals.clone())
        .get_service(req)
        .await?
        .into_inner()
        .service
        .ok_or_else(|| Problem::not_found("service introuvable / service not found"))
}

/// Un service / One service
///
/// `ETag` : sa version, à renvoyer en `If-Match` pour le modifier sans écraser la
/// modification d'un autre. / `ETag`: its version, to send back as `If-Match` to change it
/// without overwriting someone else's change.
#[utoipa::path(get, path = "/services/{id}", tag = TAG, params(("id" = String, Path, description = "Le service (UUIDv7) / the service")),
    responses((status = 200, description = "Le service / The service", body = ServiceJson,
        headers(("ETag" = String, description = "Sa version / its version")))))]
async fn fetch(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    Ok(versioned(get_one(&state, &headers, id).await?))
}

/// The service as JSON, with its version.
fn versioned(s: pb::Service) -> Response {
    let tag = crate::versions::etag(s.updated_at.as_ref());
    let mut res = Json(ServiceJson::from(s)).into_response();
    if let Some(tag) = tag {
        res.headers_mut().insert(header::ETAG, tag);
    }
    res
}

/// Changes the same service may meet at once before one gives up.
const MERGE_ATTEMPTS: usize = 4;

/// Modifier un service / Change a service
///
/// Les champs envoyés remplacent les actuels ; `null` en efface un ; `id`, `source`,
/// `source_id`, `created_at` et `updated_at` sont fixés par EVA. Deux modifications
/// simultanées de champs différents sont gardées toutes les deux. Avec `If-Match` (l'`ETag`
/// lu), rien n'est changé si le service a changé depuis : 412. / The fields sent replace
/// the current ones; `null` clears one; `id`, `source`, `source_id`, `created_at` and
/// `updated_at` are set by EVA. Two changes of different fields at once are both kept.
/// With `If-Match` (the `ETag` read), nothing changes if the service changed since: 412.
#[utoipa::path(patch, path = "/services/{id}", tag = TAG, params(("id" = String, Path, description = "Le service (UUIDv7) / the service"),
        ("If-Match" = Option<String>, Header, description = "L'`ETag` lu / the `ETag` read")),
    request_body = ServiceInput,
    responses((status = 200, description = "Le service / The service", body = ServiceJson,
        headers(("ETag" = String, description = "Sa nouvelle version / its new version"))),
        (status = 412, description = "Modifié depuis la lecture (`If-Match`) / Changed since it was read (`If-Match`)", body = Problem)))]
async fn update(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, Problem> {
    let patch = object(body)?;
    let wanted = crate::versions::if_match(&headers)?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let current = get_one(&state, &headers, id.clone()).await?;
        if let Some(v) = wanted
            && !crate::versions::matches(v, current.updated_at.as_ref())
        {
            return Err(crate::versions::stale());
        }
        let expected_updated_at = current.updated_at;
        let input = merged(current, &patch)?;
        let req = state.upstreams.request(
            &headers,
            pb::UpdateServiceRequest {
                service: Some(input.into_proto(id.clone())),
                expected_updated_at,
            },
        );
        match client(state.upstreams.referrals.clone())
            .update_service(req)
            .await
        {
            Ok(r) => return Ok(versioned(r.into_inner().service.ok_or_else(empty_answer)?)),
            // Changed between our read and our write: merge onto the new state,
            // unless the client asked for the version it read.
            Err(s) if s.code() == tonic::Code::Aborted => {
                if wanted.is_some() {
                    return Err(crate::versions::stale());
                }
                if attempt >= MERGE_ATTEMPTS {
                    return Err(s.into());
                }
            }
            Err(s) => return Err(s.into()),
        }
    }
}

/// `patch` laid over `current`: the input to send.
fn merged(current: pb::Service, patch: &Map<String, Value>) -> Result<ServiceInput, Problem> {
    let Value::Object(mut merged) = serde_json::to_value(ServiceJson::from(current))
        .map_err(|e| Problem::invalid("body", e.to_string()))?
    else {
        return Err(empty_answer());
    };
    for (k, v) in patch {
        if READ_ONLY.contains(&k.as_str()) {
            if merged.get(k) != Some(v) {
                return Err(Problem::invalid(
                    k,
                    "champ fixé par EVA, non modifiable / set by EVA, read-only",
                ));
            }
            continue;
        }
        merged.insert(k.clone(), v.clone());
    }
    for k in READ_ONLY {
        merged.remove(*k);
    }
    parse_input(merged)
}

/// Archiver un service / Archive (close) a service
///
/// Le service fermé sort des recherches, des suggestions et de l'export data·inclusion (le
/// schéma v1 n'a pas de champ « fermé » : un service absent de l'export de sa source n'est
/// plus proposé) et ne reçoit plus de nouvelle orientation ; il reste lisible par son id,
/// avec `status: archived`. Les orientations déjà envoyées continuent. Réservé aux
/// administrateurs de la structure qui le propose. / The closed service leaves searches,
/// suggestions and the data·inclusion export (the schema v1 has no "closed" field: a
/// service missing from its source's export is no longer offered) and takes no new
/// referral; it stays readable by id, with `status: archived`. Referrals already sent go
/// on. For the providing structure's admins only.
#[utoipa::path(post, path = "/services/{id}/archive", tag = TAG, params(("id" = String, Path, description = "Le service (UUIDv7) / the service")),
    responses((status = 200, description = "Le service, archivé / The service, archived", body = ServiceJson)))]
async fn archive(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<ServiceJson>, Problem> {
    let req = state
        .upstreams
        .request(&headers, pb::ArchiveServiceRequest { service_id: id });
    let r = client(state.upstreams.referrals.clone())
        .archive_service(req)
        .await?
        .into_inner();
    Ok(Json(r.service.ok_or_else(empty_answer)?.into()))
}

/// Rouvrir un service archivé / Open an archived service again
///
/// Il revient dans les recherches, les suggestions et l'export. Réservé aux administrateurs
/// de la structure qui le propose. / It is back in searches, suggestions and the export.
/// For the providing structure's admins only.
#[utoipa::path(post, path = "/services/{id}/unarchive", tag = TAG, params(("id" = String, Path, description = "Le service (UUIDv7) / the service")),
    responses((status = 200, description = "Le service, ouvert / The service, open", body = ServiceJson)))]
async fn unarchive(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<ServiceJson>, Problem> {
    let req = state
        .upstreams
        .request(&headers, pb::UnarchiveServiceRequest { service_id: id });
    let r = client(state.upstreams.referrals.clone())
        .unarchive_service(req)
        .await?
        .into_inner();
    Ok(Json(r.service.ok_or_else(empty_answer)?.into()))
}

/// Chercher des services / Search services
///
/// Les valeurs d'un filtre sont séparées par des virgules. / The values of one filter are
/// comma-separated.
#[utoipa::path(get, path = "/services", tag = TAG, params(SearchQuery),
    responses((status = 200, description = "Une page de services / One page of services", body = Page<ServiceJson>)))]
async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<SearchQuery>, QueryRejection>,
) -> Result<Json<Page<ServiceJson>>, Problem> {
    let Query(q) = query?;
    let req = state.upstreams.request(
        &headers,
        pb::ListServicesRequest {
            page_size: q.page_size,
            page_token: q.page_token,
            thematiques: codes(&q.thematiques),
            publics: codes(&q.publics),
            territory: q.territory,
            structure_id: q.structure_id,
            include_archived: q.include_archived,
        },
    );
    let r = client(state.upstreams.referrals.clone())
        .list_services(req)
        .await?
        .into_inner();
    Ok(Json(Page {
        items: r.services.into_iter().map(Into::into).collect(),
        next_page_token: non_empty(r.next_page_token),
    }))
}

/// Importer des services / Import services
///
/// Le corps est un tableau JSON au schéma data·inclusion v1, de 20 Mio au plus ; la réponse
/// est le rapport, lignes refusées comprises. / The body is a JSON array in the data·inclusion
/// schema v1, at most 20 MiB; the answer is the report, rejected rows included.
#[utoipa::path(post, path = "/services/import", tag = TAG, params(ImportQuery),
    request_body(content = Vec<Object>, content_type = "application/json",
        description = "Services au schéma data·inclusion v1 / Services in the data·inclusion schema v1"),
    responses((status = 200, description = "Le rapport d'import / The import report", body = ImportReport),
        (status = 413, description = "Fichier de plus de 20 Mio / File larger than 20 MiB", body = Problem, content_type = "application/problem+json")))]
async fn import(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<ImportQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ImportReport>, Problem> {
    let Query(q) = query?;
    let body = body.map_err(|e| {
        let mut p = Problem::new(
            e.status(),
            "invalid-content",
            "Fichier refusé / File refused",
            format!("content: {}", e.body_text()),
        );
        p.errors.push(FieldProblem {
            field: "content".into(),
            message: format!(
                "fichier illisible ou de plus de {MAX_FILE_BYTES} octets / unreadable file or larger than {MAX_FILE_BYTES} bytes"
            ),
        });
        p
    })?;
    let mut req = state.upstreams.request(
        &headers,
        pb::ImportServicesRequest {
            source: q.source,
            content: body.to_vec(),
            structure_id: q.structure_id,
            dry_run: q.dry_run,
        },
    );
    req.set_timeout(FILE_TIMEOUT);
    let r = client(state.upstreams.referrals.clone())
        .import_services(req)
        .await?
        .into_inner();
    Ok(Json(ImportReport {
        created: r.created,
        updated: r.updated,
        rejected: r
            .rejected
            .into_iter()
            .map(|x| RejectionJson {
                index: x.index,
                source_id: non_empty(x.source_id),
                field: x.field,
                reason: x.reason,
            })
            .collect(),
    }))
}

/// Exporter des services / Export services
///
/// Mêmes filtres que la recherche, sans pagination ; un fichier JSON au schéma data·inclusion
/// v1. / Same filters as the search, not paged; a JSON file in the data·inclusion schema v1.
#[utoipa::path(get, path = "/services/export", tag = TAG,
    params(
        ("thematiques" = Option<String>, Query, description = "Comma-separated data·inclusion thématiques or categories"),
        ("publics" = Option<String>, Query, description = "Comma-separated data·inclusion publics codes"),
        ("territory" = Option<String>, Query, description = "A commune INSEE code, EPCI, département code or `france` the services must serve"),
        ("structure_id" = Option<String>, Query, description = "Only this EVA structure's services (UUIDv7)"),
    ),
    responses((status = 200, description = "Le fichier, en pièce jointe / The file, as an attachment", body = Vec<Object>, content_type = "application/json")))]
async fn export(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<SearchQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    let Query(q) = query?;
    if q.page_size != 0 || !q.page_token.is_empty() {
        return Err(Problem::invalid(
            "page_size",
            "l'export n'est pas paginé / the export is not paged",
        ));
    }
    let mut req = state.upstreams.request(
        &headers,
        pb::ExportServicesRequest {
            thematiques: codes(&q.thematiques),
            publics: codes(&q.publics),
            territory: q.territory,
            structure_id: q.structure_id,
        },
    );
    req.set_timeout(FILE_TIMEOUT);
    let r = client(state.upstreams.referrals.clone())
        .export_services(req)
        .await?
        .into_inner();
    let media_type = HeaderValue::from_str(&r.media_type)
        .unwrap_or_else(|_| HeaderValue::from_static("application/json"));
    let disposition = HeaderValue::from_str(&format!(
        "attachment; filename=\"services-{}.json\"",
        eva_platform::consent::today()
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("attachment; filename=\"services.json\""));
    let mut res = r.content.into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, media_type);
    res.headers_mut()
        .insert(header::CONTENT_DISPOSITION, disposition);
    Ok(res)
}

/// Services suggérés pour un diagnostic / Services suggested for a diagnostic
///
/// Les services qui répondent aux freins du diagnostic, les meilleurs d'abord. / The
/// services addressing the diagnostic's barriers, best first.
#[utoipa::path(get, path = "/services/suggestions", tag = TAG, params(SuggestQuery),
    responses((status = 200, description = "Une page de suggestions / One page of suggestions", body = Page<SuggestionJson>)))]
async fn suggestions(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<SuggestQuery>, QueryRejection>,
) -> Result<Json<Page<SuggestionJson>>, Problem> {
    let Query(q) = query?;
    let req = state.upstreams.request(
        &headers,
        pb::SuggestServicesRequest {
            page_size: q.page_size,
            page_token: q.page_token,
            diagnostic_id: q.diagnostic_id,
            territory: q.territory,
        },
    );
    let r = client(state.upstreams.referrals.clone())
        .suggest_services(req)
        .await?
        .into_inner();
    Ok(Json(Page {
        items: r
            .suggestions
            .into_iter()
            .map(|s| SuggestionJson {
                service: s.service.map(Into::into),
                domains: s.domains,
                matched_thematiques: s.matched_thematiques,
            })
            .collect(),
        next_page_token: non_empty(r.next_page_token),
    }))
}
