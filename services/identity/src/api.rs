//! Identity's gRPC methods: authorisation, validation, then the store.

use std::time::Duration;

use eva_platform::auth::{Role, require_role};
use eva_platform::crypto::Kek;
use eva_platform::grpc::invalid_field;
use eva_platform::outbox::{self, Event};
use eva_platform::pagination::Page;
use eva_proto::identity::v1 as pb;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::store::Store;
use crate::structure::{NewStructure, StructureChange, kind_code};
use crate::{IdentityError, SERVICE, keys};

pub struct State {
    pub store: Store,
    pub kek: Kek,
    pub token_ttl: Duration,
}

impl From<IdentityError> for Status {
    fn from(e: IdentityError) -> Self {
        // Details stay in the logs; callers get a plain message.
        tracing::error!(error = %e, "identity internal error");
        Status::unavailable("service momentanément indisponible / service temporarily unavailable")
    }
}

/// Everyone signed in may read the directory of structures; only operators
/// create them.
const READERS: &[Role] = &[
    Role::Person,
    Role::Counselor,
    Role::StructureAdmin,
    Role::Partner,
    Role::Analyst,
    Role::Operator,
];

#[tonic::async_trait]
impl pb::structure_service_server::StructureService for State {
    async fn create_structure(
        &self,
        req: Request<pb::CreateStructureRequest>,
    ) -> Result<Response<pb::CreateStructureResponse>, Status> {
        require_role(&req, &[Role::Operator])?;
        let new = NewStructure::parse(req.into_inner())
            .map_err(|e| invalid_field(e.field, &e.message))?;
        let id = Uuid::now_v7().to_string();
        let mut tx = self.store.db().begin().await.map_err(IdentityError::from)?;
        let Some(created) = self
            .store
            .insert_structure(&mut tx, &id, &new)
            .await
            .map_err(IdentityError::from)?
        else {
            return Err(Status::already_exists(format!(
                "siret: une structure avec le SIRET {} existe déjà / a structure with this SIRET already exists",
                new.siret
            )));
        };
        let event = pb::StructureCreated {
            structure_id: created.structure_id.clone(),
            kind: new.kind as i32,
            commune_insee: created.commune_insee.clone(),
            epci: created.epci.clone(),
            created_at: Some(eva_platform::db::to_timestamp(created.created_at_us)),
        };
        outbox::enqueue(
            &mut tx,
            &Event::new(
                SERVICE,
                "eva.identity.structure.created",
                Some(created.structure_id.clone()),
                &event,
            ),
        )
        .await
        .map_err(IdentityError::from)?;
        tx.commit().await.map_err(IdentityError::from)?;
        tracing::info!(structure_id = %created.structure_id, kind = kind_code(new.kind), "structure created");
        Ok(Response::new(pb::CreateStructureResponse {
            structure: Some(created.into()),
        }))
    }

    async fn update_structure(
        &self,
        req: Request<pb::UpdateStructureRequest>,
    ) -> Result<Response<pb::UpdateStructureResponse>, Status> {
        let caller = require_role(&req, &[Role::Operator, Role::StructureAdmin])?.clone();
        let r = req.into_inner();
        if Uuid::parse_str(&r.structure_id).is_err() {
            return Err(invalid_field(
                "structure_id",
                "identifiant invalide / not a valid id",
            ));
        }
        // A structure's admin changes their own structure only.
        if !caller.has_role(Role::Operator) && !caller.belongs_to(&r.structure_id) {
            return Err(Status::permission_denied(
                "accès refusé : vous n'administrez pas cette structure / you do not administer this structure",
            ));
        }
        let change = StructureChange::parse(&r).map_err(|e| invalid_field(e.field, &e.message))?;
        let mut tx = self.store.db().begin().await.map_err(IdentityError::from)?;
        let updated = self
            .store
            .update_structure(&mut tx, &r.structure_id, &change)
            .await
            .map_err(IdentityError::from)?
            .ok_or_else(|| Status::not_found("structure introuvable / structure not found"))?;
        let event = pb::StructureUpdated {
            structure_id: updated.structure_id.clone(),
            kind: crate::structure::kind_from_code(&updated.kind) as i32,
            commune_insee: updated.commune_insee.clone(),
            epci: updated.epci.clone(),
            updated_at: Some(eva_platform::db::to_timestamp(eva_platform::db::now_us())),
        };
        outbox::enqueue(
            &mut tx,
            &Event::new(
                SERVICE,
                "eva.identity.structure.updated",
                Some(updated.structure_id.clone()),
                &event,
            ),
        )
        .await
        .map_err(IdentityError::from)?;
        tx.commit().await.map_err(IdentityError::from)?;
        Ok(Response::new(pb::UpdateStructureResponse {
            structure: Some(updated.into()),
        }))
    }

    async fn get_structure(
        &self,
        req: Request<pb::GetStructureRequest>,
    ) -> Result<Response<pb::GetStructureResponse>, Status> {
        require_role(&req, READERS)?;
        let id = req.into_inner().structure_id;
        if Uuid::parse_str(&id).is_err() {
            return Err(invalid_field(
                "structure_id",
                "identifiant invalide / not a valid id",
            ));
        }
        let s = self
            .store
            .structure(&id)
            .await
            .map_err(IdentityError::from)?
            .ok_or_else(|| Status::not_found("structure introuvable / structure not found"))?;
        Ok(Response::new(pb::GetStructureResponse {
            structure: Some(s.into()),
        }))
    }

    async fn list_structures(
        &self,
        req: Request<pb::ListStructuresRequest>,
    ) -> Result<Response<pb::ListStructuresResponse>, Status> {
        require_role(&req, READERS)?;
        let r = req.into_inner();
        let page = Page::parse(r.page_size, &r.page_token)?;
        let kind = match pb::StructureKind::try_from(r.kind) {
            Ok(pb::StructureKind::Unspecified) => None,
            Ok(k) => Some(kind_code(k)),
            Err(_) => {
                return Err(invalid_field(
                    "kind",
                    "type de structure inconnu / unknown structure kind",
                ));
            }
        };
        let (rows, next) = self
            .store
            .structures(kind, &page)
            .await
            .map_err(IdentityError::from)?;
        Ok(Response::new(pb::ListStructuresResponse {
            structures: rows.into_iter().map(Into::into).collect(),
            next_page_token: next,
        }))
    }
}

#[tonic::async_trait]
impl pb::key_service_server::KeyService for State {
    async fn get_jwks(
        &self,
        _req: Request<pb::GetJwksRequest>,
    ) -> Result<Response<pb::GetJwksResponse>, Status> {
        let keys = keys::published(&self.store, &self.kek, self.token_ttl).await?;
        Ok(Response::new(pb::GetJwksResponse {
            keys: keys
                .into_iter()
                .map(|k| pb::Jwk {
                    kty: k.kty,
                    crv: k.crv,
                    x: k.x,
                    kid: k.kid,
                    alg: k.alg,
                    r#use: k.use_,
                })
                .collect(),
        }))
    }
}
