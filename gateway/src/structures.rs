//! `/structures`: the directory of associations, partners and the département,
//! and the JWKS at `/.well-known/jwks.json`.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use eva_proto::identity::v1 as pb;
use eva_proto::identity::v1::key_service_client::KeyServiceClient;
use eva_proto::identity::v1::structure_service_client::StructureServiceClient;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::json::{code, non_empty, when};
use crate::{AppState, Problem};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(fetch, update))
}

const TAG: &str = "Structures";

const ID: &str = "La structure (UUIDv7) / the structure";

/// A structure in the public API.
#[derive(Debug, Serialize, ToSchema)]
pub struct StructureJson {
    pub id: String,
    pub name: String,
    /// 14 chiffres / 14 digits.
    pub siret: String,
    /// `aci`, `ei`, `ai`, `etti`, `eiti`, `association`, `ccas`, `partner`, `departement`
    pub kind: String,
    /// Code INSEE de la commune / the commune's INSEE code.
    pub commune_insee: String,
    /// SIREN de l'EPCI / the EPCI's SIREN.
    pub epci: String,
    pub created_at: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateStructure {
    pub name: String,
    /// 14 chiffres / 14 digits.
    pub siret: String,
    /// `aci`, `ei`, `ai`, `etti`, `eiti`, `association`, `ccas`, `partner`, `departement`
    pub kind: String,
    pub commune_insee: String,
    #[serde(default)]
    pub epci: String,
}

/// Only the fields sent change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateStructure {
    pub name: Option<String>,
    pub commune_insee: Option<String>,
    pub epci: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Éléments par page : par défaut 50, au plus 500 / items per page: 50 by default, at most 500.
    #[serde(default)]
    pub page_size: i32,
    /// `next_page_token` de la page précédente / the previous page's `next_page_token`.
    #[serde(default)]
    pub page_token: String,
    /// Seulement ce type / only this kind: `aci`, `ei`, `ai`, `etti`, `eiti`,
    /// `association`, `ccas`, `partner`, `departement`.
    #[serde(default)]
    pub kind: Option<String>,
}

/// One page of a list; `next_page_token` is absent on the last one.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_page_token: Option<String>,
}

fn kind_from_json(field: &str, s: &str) -> Result<pb::StructureKind, Problem> {
    pb::StructureKind::from_str_name(&format!("STRUCTURE_KIND_{}", s.to_uppercase()))
        .filter(|k| *k != pb::StructureKind::Unspecified)
        .ok_or_else(|| {
            Problem::invalid(
                field,
                format!(
                    "type inconnu « {s} » ; attendu : aci, ei, ai, etti, eiti, association, ccas, partner, departement / unknown kind"
                ),
            )
        })
}

fn kind_to_json(k: i32) -> String {
    pb::StructureKind::try_from(k)
        .ok()
        .and_then(|k| code(k.as_str_name(), "STRUCTURE_KIND_"))
        .unwrap_or_else(|| "unspecified".into())
}

impl From<pb::Structure> for StructureJson {
    fn from(s: pb::Structure) -> Self {
        Self {
            id: s.structure_id,
            name: s.name,
            siret: s.siret,
            kind: kind_to_json(s.kind),
            commune_insee: s.commune_insee,
            epci: s.epci,
            created_at: when(s.created_at),
        }
    }
}

/// Créer une structure / Create a structure
#[utoipa::path(post, path = "/structures", tag = TAG, request_body = CreateStructure,
    responses((status = 201, description = "Créée / Created", body = StructureJson),
        (status = 409, description = "Une structure a déjà ce SIRET / A structure already has this SIRET", body = Problem, content_type = "application/problem+json")))]
async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<CreateStructure>, JsonRejection>,
) -> Result<(StatusCode, Json<StructureJson>), Problem> {
    let Json(body) = body?;
    let kind = kind_from_json("kind", &body.kind)?;
    let mut client = StructureServiceClient::new(state.upstreams.identity.clone());
    let req = state.upstreams.request(
        &headers,
        pb::CreateStructureRequest {
            name: body.name,
            siret: body.siret,
            kind: kind as i32,
            commune_insee: body.commune_insee,
            epci: body.epci,
        },
    );
    let created = client.create_structure(req).await?.into_inner();
    let s = created.structure.ok_or_else(crate::json::empty_answer)?;
    Ok((StatusCode::CREATED, Json(s.into())))
}

/// L'annuaire des structures / The directory of structures
#[utoipa::path(get, path = "/structures", tag = TAG, params(ListQuery),
    responses((status = 200, description = "Une page / One page", body = Page<StructureJson>)))]
async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Page<StructureJson>>, Problem> {
    let Query(q) = query?;
    let kind = match q.kind.as_deref() {
        Some(k) => kind_from_json("kind", k)? as i32,
        None => 0,
    };
    let mut client = StructureServiceClient::new(state.upstreams.identity.clone());
    let req = state.upstreams.request(
        &headers,
        pb::ListStructuresRequest {
            page_size: q.page_size,
            page_token: q.page_token,
            kind,
        },
    );
    let r = client.list_structures(req).await?.into_inner();
    Ok(Json(Page {
        items: r.structures.into_iter().map(Into::into).collect(),
        next_page_token: non_empty(r.next_page_token),
    }))
}

/// Une structure / One structure
#[utoipa::path(get, path = "/structures/{id}", tag = TAG, params(("id" = String, Path, description = ID)),
    responses((status = 200, description = "La structure / The structure", body = StructureJson)))]
async fn fetch(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<StructureJson>, Problem> {
    let mut client = StructureServiceClient::new(state.upstreams.identity.clone());
    let req = state
        .upstreams
        .request(&headers, pb::GetStructureRequest { structure_id: id });
    let r = client.get_structure(req).await?.into_inner();
    r.structure
        .map(|s| Json(s.into()))
        .ok_or_else(|| Problem::not_found("structure introuvable / structure not found"))
}

/// Modifier une structure / Update a structure
///
/// Le SIRET et le type ne changent pas. / The SIRET and the kind do not change.
#[utoipa::path(patch, path = "/structures/{id}", tag = TAG, params(("id" = String, Path, description = ID)),
    request_body = UpdateStructure,
    responses((status = 200, description = "La structure modifiée / The updated structure", body = StructureJson)))]
async fn update(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<UpdateStructure>, JsonRejection>,
) -> Result<Json<StructureJson>, Problem> {
    let Json(body) = body?;
    let mut client = StructureServiceClient::new(state.upstreams.identity.clone());
    let req = state.upstreams.request(
        &headers,
        pb::UpdateStructureRequest {
            structure_id: id,
            name: body.name,
            commune_insee: body.commune_insee,
            epci: body.epci,
        },
    );
    let r = client.update_structure(req).await?.into_inner();
    r.structure
        .map(|s| Json(s.into()))
        .ok_or_else(|| Problem::not_found("structure introuvable / structure not found"))
}

/// identity's public keys, for anyone verifying EVA's tokens.
pub async fn jwks(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, Problem> {
    let mut client = KeyServiceClient::new(state.upstreams.identity.clone());
    let r = client
        .get_jwks(state.upstreams.request(&headers, pb::GetJwksRequest {}))
        .await?
        .into_inner();
    let keys: Vec<_> = r
        .keys
        .into_iter()
        .map(|k| {
            serde_json::json!({
                "kty": k.kty, "crv": k.crv, "x": k.x, "kid": k.kid, "alg": k.alg, "use": k.r#use,
            })
        })
        .collect();
    Ok(Json(serde_json::json!({ "keys": keys })))
}
