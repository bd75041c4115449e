//! `eva.referrals.v1.DirectoryService`: the directory of services (offres),
//! with the fields of the data·inclusion schema v1.
//!
//! - Created and changed in EVA by the structure that provides the service
//!   (its `structure_admin` or `partner` accounts), or by an operator for a
//!   provider outside EVA; source `eva`, id = EVA's id.
//! - Imported from data·inclusion files (an operator, or a structure admin
//!   for their own structure): each bad row is reported by index, field and
//!   reason and the others are stored (upsert on source + id) in one
//!   transaction; exported in the same schema, so an export imports back
//!   to the same records ([`datainclusion`]).
//! - Searched by thématique (a category matches its sub-thématiques),
//!   publics and territory ([`store::Territory`]) by every signed-in
//!   account, the person included: it is not personal data (only the
//!   contact person's, a professional's).
//! - Suggested for a diagnostic's barriers ([`suggestions`]).
//! - Closed (archived) and opened again by an admin of its structure (an
//!   operator for a service with no EVA structure): an archived service keeps
//!   its record, readable by id with `archived_at`, but leaves searches,
//!   suggestions and the data·inclusion export (the schema v1 has no field
//!   for a closed service: a record that stops appearing in its source's
//!   export is no longer offered) and takes no new referral. A structure's
//!   admins and partners list their archived services with
//!   `include_archived`. An import or an update leaves the archive as it is.

pub mod datainclusion;
pub mod store;
mod suggestions;
pub mod vocabulary;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use eva_platform::Config;
use eva_platform::auth::{Principal, Role, require_role};
use eva_platform::db::{now_us, timestamp_us};
use eva_platform::follows::Follows;
use eva_platform::grpc::invalid_field;
use eva_platform::pagination::Page;
use eva_platform::service::StartError;
use eva_proto::referrals::v1 as pb;
use eva_proto::referrals::v1::directory_service_server::DirectoryServiceServer;
use tokio::sync::RwLock;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};

use self::datainclusion::{Fault, FileError};
use self::store::{DirectoryStore, Search, Territory, Upserted};
use crate::SERVICE;

/// Every signed-in account reads and searches the directory.
const READERS: &[Role] = &[
    Role::Person,
    Role::Counselor,
    Role::StructureAdmin,
    Role::Partner,
    Role::Analyst,
    Role::Operator,
];
/// Professionals: exports and suggestions.
const PROFESSIONALS: &[Role] = &[
    Role::Counselor,
    Role::StructureAdmin,
    Role::Partner,
    Role::Analyst,
    Role::Operator,
];
/// Who may create or change a service (then checked against its structure).
const EDITORS: &[Role] = &[Role::StructureAdmin, Role::Partner, Role::Operator];
/// Who may import a file.
const IMPORTERS: &[Role] = &[Role::StructureAdmin, Role::Operator];
/// The source of services created in EVA.
pub const EVA_SOURCE: &str = "eva";
/// A gRPC message may carry a whole import file, and a little more.
const MAX_MESSAGE: usize = datainclusion::MAX_FILE_BYTES + 1024 * 1024;

/// The référentiel's items by id: their domain and data·inclusion
/// thématiques (one référentiel version).
pub(crate) type ItemThematiques = HashMap<String, (String, Vec<String>)>;

/// The state behind `DirectoryService`.
#[derive(Clone)]
pub struct DirectoryApi {
    store: DirectoryStore,
    /// Identity's structures, projected (the caller's territory).
    projections: Follows,
    /// The diagnostics service (diagnostics and référentiel).
    diagnostics: Channel,
    /// Référentiel versions already read, by label.
    referentiels: Arc<RwLock<HashMap<String, Arc<ItemThematiques>>>>,
}

/// `DirectoryService`, ready for `GrpcServer::add_service`; it reaches the
/// diagnostics service at `diagnostics.endpoint` for suggestions.
pub fn server(
    store: crate::store::Store,
    projections: Follows,
    config: &Config,
) -> Result<DirectoryServiceServer<DirectoryApi>, StartError> {
    let url = &config.diagnostics.endpoint;
    let diagnostics = Endpoint::from_shared(url.clone())
        .map(|e| {
            e.connect_timeout(Duration::from_secs(3))
                .tcp_nodelay(true)
                .connect_lazy()
        })
        .map_err(|e| StartError::Other {
            service: SERVICE,
            reason: format!("diagnostics.endpoint `{url}`: {e}"),
        })?;
    let api = DirectoryApi {
        store: DirectoryStore::new(store.db().clone()),
        projections,
        diagnostics,
        referentiels: Arc::default(),
    };
    Ok(DirectoryServiceServer::new(api)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(usize::MAX))
}

pub(crate) fn internal(e: impl std::fmt::Display) -> Status {
    tracing::error!(error = %e, "directory: internal error");
    Status::internal("erreur interne / internal error")
}

fn check_id(field: &str, id: &str) -> Result<(), Status> {
    uuid::Uuid::parse_str(id)
        .map(|_| ())
        .map_err(|_| invalid_field(field, "identifiant invalide / not a valid id"))
}

fn not_found() -> Status {
    Status::not_found("service introuvable / service not found")
}

fn not_yours() -> Status {
    Status::permission_denied(
        "accès refusé : ce service est celui d'une autre structure / access denied: this service belongs to another structure",
    )
}

/// A fault in a service sent through the API, named with EVA's field name.
fn api_fault(f: Fault) -> Status {
    invalid_field(f.field.eva(), &f.reason)
}

/// Whether `caller` may create or change a service of `structure_id`: an
/// admin or partner account of that structure; an operator for a service
/// with no EVA structure.
/// Whether `caller` may close or open again a service of `structure_id`: an
/// admin of that structure; an operator for a service with no EVA structure.
fn may_archive(caller: &Principal, structure_id: &str) -> bool {
    if structure_id.is_empty() {
        caller.has_role(Role::Operator)
    } else {
        caller.has_role(Role::StructureAdmin) && caller.belongs_to(structure_id)
    }
}

fn may_edit(caller: &Principal, structure_id: &str) -> bool {
    if structure_id.is_empty() {
        caller.has_role(Role::Operator)
    } else {
        caller.has_any_role(&[Role::StructureAdmin, Role::Partner])
            && caller.belongs_to(structure_id)
    }
}

/// The territory a search names: a commune INSEE code (5 characters), a
/// département code (2–3), an EPCI (9 digits) or `france`.
pub fn parse_territory(raw: &str) -> Result<Option<Territory>, Status> {
    let t = raw.trim();
    if t.is_empty() {
        return Ok(None);
    }
    if t.eq_ignore_ascii_case("france") {
        return Ok(Some(Territory::France));
    }
    let t = t.to_ascii_uppercase();
    if datainclusion::is_country(&t) && datainclusion::NATIONAL.contains(&t.as_str()) {
        return Ok(Some(Territory::France));
    }
    if datainclusion::is_commune(&t) {
        return Ok(Some(Territory::Commune {
            departement: eva_platform::follows::departement_of(&t),
            commune: t,
        }));
    }
    if datainclusion::is_departement(&t) {
        return Ok(Some(Territory::Departement(t)));
    }
    if datainclusion::is_epci(&t) {
        return Ok(Some(Territory::Epci(t)));
    }
    Err(invalid_field(
        "territory",
        &format!(
            "territoire inconnu « {raw} » : code commune INSEE (5 caractères), département (2 ou 3), EPCI (9 chiffres) ou « france » / unknown territory: INSEE commune, département, EPCI code or `france`"
        ),
    ))
}

/// A search from a request's filters; an unknown code names its filter.
fn parse_search(
    thematiques: &[String],
    publics: &[String],
    territory: &str,
    structure_id: &str,
) -> Result<Search, Status> {
    let mut themes = BTreeSet::new();
    for t in thematiques
        .iter()
        .map(|t| t.trim())
        .filter(|t| !t.is_empty())
    {
        let expanded = vocabulary::expand_thematique(t).ok_or_else(|| {
            invalid_field(
                "thematiques",
                &format!(
                    "thématique inconnue « {t} » : un code data·inclusion (`mobilite--preparer-un-permis`) ou sa catégorie (`mobilite`) / unknown thématique"
                ),
            )
        })?;
        themes.extend(expanded.into_iter().map(str::to_owned));
    }
    let mut wanted_publics = BTreeSet::new();
    for p in publics.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
        if !vocabulary::knows(vocabulary::PUBLICS, p) {
            return Err(invalid_field(
                "publics",
                &format!("public inconnu « {p} » / unknown publics code"),
            ));
        }
        wanted_publics.insert(p.to_owned());
    }
    let structure_id = structure_id.trim();
    if !structure_id.is_empty() {
        check_id("structure_id", structure_id)?;
    }
    Ok(Search {
        thematiques: themes.into_iter().collect(),
        publics: wanted_publics.into_iter().collect(),
        territory: parse_territory(territory)?,
        structure_id: structure_id.to_owned(),
        include_archived: false,
    })
}

impl DirectoryApi {
    async fn load(&self, service_id: &str) -> Result<pb::Service, Status> {
        check_id("service_id", service_id)?;
        self.store
            .get(service_id)
            .await
            .map_err(internal)?
            .ok_or_else(not_found)
    }

    /// Closes (`archive`) or opens again a service, for an admin of its
    /// structure.
    async fn set_archived(
        &self,
        caller: &Principal,
        service_id: &str,
        archive: bool,
    ) -> Result<pb::Service, Status> {
        let before = self.load(service_id).await?;
        if !may_archive(caller, &before.structure_id) {
            return Err(Status::permission_denied(
                "accès refusé : seuls les administrateurs de la structure qui propose ce service peuvent l'archiver / access denied: only the providing structure's admins may archive it",
            ));
        }
        if before.archived_at.is_some() == archive {
            return Ok(before);
        }
        let now = now_us();
        let mut tx = self.store.db().begin().await.map_err(internal)?;
        if !DirectoryStore::set_archived(&mut tx, &before.service_id, archive.then_some(now), now)
            .await
            .map_err(internal)?
        {
            return Err(not_found());
        }
        tx.commit().await.map_err(internal)?;
        tracing::info!(service_id = %before.service_id, archived = archive, "service archive changed");
        self.load(&before.service_id).await
    }
}

#[tonic::async_trait]
impl pb::directory_service_server::DirectoryService for DirectoryApi {
    async fn create_service(
        &self,
        req: Request<pb::CreateServiceRequest>,
    ) -> Result<Response<pb::CreateServiceResponse>, Status> {
        let caller = require_role(&req, EDITORS)?.clone();
        let mut s = req
            .into_inner()
            .service
            .ok_or_else(|| invalid_field("service", "service obligatoire / service required"))?;
        s.structure_id = s.structure_id.trim().to_owned();
        if !s.structure_id.is_empty() {
            check_id("structure_id", &s.structure_id)?;
        }
        if !may_edit(&caller, &s.structure_id) {
            return Err(if s.structure_id.is_empty() {
                invalid_field(
                    "structure_id",
                    "la structure qui propose le service est obligatoire / the providing structure is required",
                )
            } else {
                not_yours()
            });
        }
        s.service_id = uuid::Uuid::now_v7().to_string();
        s.source = EVA_SOURCE.to_owned();
        s.source_id = s.service_id.clone();
        if !s.structure_id.is_empty() {
            s.source_structure_id = s.structure_id.clone();
        }
        if s.updated_on.trim().is_empty() {
            s.updated_on = eva_platform::consent::today();
        }
        datainclusion::normalise(&mut s);
        datainclusion::validate(&s).map_err(api_fault)?;
        let mut tx = self.store.db().begin().await.map_err(internal)?;
        DirectoryStore::insert(&mut tx, &s, now_us())
            .await
            .map_err(internal)?;
        tx.commit().await.map_err(internal)?;
        tracing::info!(service_id = %s.service_id, structure_id = %s.structure_id, "service created");
        let service = self.load(&s.service_id).await?;
        Ok(Response::new(pb::CreateServiceResponse {
            service: Some(service),
        }))
    }

    async fn get_service(
        &self,
        req: Request<pb::GetServiceRequest>,
    ) -> Result<Response<pb::GetServiceResponse>, Status> {
        require_role(&req, READERS)?;
        let service = self.load(&req.into_inner().service_id).await?;
        Ok(Response::new(pb::GetServiceResponse {
            service: Some(service),
        }))
    }

    async fn update_service(
        &self,
        req: Request<pb::UpdateServiceRequest>,
    ) -> Result<Response<pb::UpdateServiceResponse>, Status> {
        let caller = require_role(&req, EDITORS)?.clone();
        let r = req.into_inner();
        let expected_us = r.expected_updated_at.as_ref().map(timestamp_us);
        let mut s = r
            .service
            .ok_or_else(|| invalid_field("service", "service obligatoire / service required"))?;
        let before = self.load(&s.service_id).await?;
        if !may_edit(&caller, &before.structure_id) {
            return Err(not_yours());
        }
        s.structure_id = s.structure_id.trim().to_owned();
        if s.structure_id != before.structure_id {
            if !s.structure_id.is_empty() {
                check_id("structure_id", &s.structure_id)?;
            }
            if !may_edit(&caller, &s.structure_id) {
                return Err(not_yours());
            }
        }
        // What EVA sets stays EVA's.
        s.source = before.source.clone();
        s.source_id = before.source_id.clone();
        if s.source == EVA_SOURCE {
            if !s.structure_id.is_empty() {
                s.source_structure_id = s.structure_id.clone();
            } else if s.source_structure_id.trim().is_empty() {
                s.source_structure_id = before.source_structure_id.clone();
            }
            // EVA is the producer: the record changed today.
            s.updated_on = eva_platform::consent::today();
        } else if s.source_structure_id.trim().is_empty() {
            s.source_structure_id = before.source_structure_id.clone();
        }
        datainclusion::normalise(&mut s);
        datainclusion::validate(&s).map_err(api_fault)?;
        let mut tx = self.store.db().begin().await.map_err(internal)?;
        if !DirectoryStore::update(&mut tx, &s, expected_us, now_us())
            .await
            .map_err(internal)?
        {
            return Err(Status::aborted(
                "le service a été modifié entre-temps ; relisez-le puis recommencez / the service changed meanwhile; read it again, then retry",
            ));
        }
        tx.commit().await.map_err(internal)?;
        tracing::info!(service_id = %s.service_id, "service updated");
        let service = self.load(&s.service_id).await?;
        Ok(Response::new(pb::UpdateServiceResponse {
            service: Some(service),
        }))
    }

    async fn list_services(
        &self,
        req: Request<pb::ListServicesRequest>,
    ) -> Result<Response<pb::ListServicesResponse>, Status> {
        let caller = require_role(&req, READERS)?.clone();
        let r = req.into_inner();
        let page = Page::parse(r.page_size, &r.page_token)?;
        let mut search = parse_search(&r.thematiques, &r.publics, &r.territory, &r.structure_id)?;
        if r.include_archived {
            if search.structure_id.is_empty() {
                return Err(invalid_field(
                    "include_archived",
                    "les services archivés ne se listent que pour une structure (structure_id) / archived services are listed for one structure only",
                ));
            }
            if !may_edit(&caller, &search.structure_id) {
                return Err(not_yours());
            }
            search.include_archived = true;
        }
        let rows = self
            .store
            .search(&search, page.after.as_deref(), page.fetch_limit())
            .await
            .map_err(internal)?;
        let (services, next_page_token) = page.finish(rows, |s| s.service_id.clone());
        Ok(Response::new(pb::ListServicesResponse {
            services,
            next_page_token,
        }))
    }

    async fn import_services(
        &self,
        req: Request<pb::ImportServicesRequest>,
    ) -> Result<Response<pb::ImportServicesResponse>, Status> {
        let caller = require_role(&req, IMPORTERS)?.clone();
        let r = req.into_inner();
        let structure_id = r.structure_id.trim().to_owned();
        let operator = caller.has_role(Role::Operator);
        if structure_id.is_empty() {
            if !operator {
                return Err(invalid_field(
                    "structure_id",
                    "indiquez votre structure : les services importés lui seront rattachés / name your structure: imported services are attached to it",
                ));
            }
        } else {
            check_id("structure_id", &structure_id)?;
            let admin_of_it =
                caller.has_role(Role::StructureAdmin) && caller.belongs_to(&structure_id);
            if !operator && !admin_of_it {
                return Err(Status::permission_denied(
                    "accès refusé : import réservé aux admins de la structure / access denied: import is for the structure's admins",
                ));
            }
        }
        let source = r.source.trim().to_owned();
        if source.chars().count() > 255 || source.contains(',') {
            return Err(invalid_field(
                "source",
                "nom de source invalide / invalid source name",
            ));
        }
        if r.content.len() > datainclusion::MAX_FILE_BYTES {
            return Err(invalid_field(
                "content",
                &FileError::TooLarge(r.content.len()).to_string(),
            ));
        }
        let content = r.content;
        let read_source = source.clone();
        let read =
            tokio::task::spawn_blocking(move || datainclusion::read_file(&content, &read_source))
                .await
                .map_err(internal)?
                .map_err(|e| invalid_field("content", &e.to_string()))?;

        // Only an operator may change a service of any structure.
        let owner = (!operator).then_some(structure_id.as_str());
        let mut rejected = read.rejected;
        let (mut created, mut updated) = (0, 0);
        let now = now_us();
        let mut tx = self.store.db().begin().await.map_err(internal)?;
        for row in read.rows {
            let mut s = row.service;
            s.service_id = uuid::Uuid::now_v7().to_string();
            s.structure_id = structure_id.clone();
            match DirectoryStore::upsert(&mut tx, &s, owner, now)
                .await
                .map_err(internal)?
            {
                Upserted::Created => created += 1,
                Upserted::Updated => updated += 1,
                Upserted::NotYours => rejected.push(pb::ImportRejection {
                    index: row.index as i32,
                    source_id: s.source_id.clone(),
                    field: datainclusion::Field::SourceId.di().to_owned(),
                    reason: "ce service (même source et id) est celui d'une autre structure / this service (same source and id) belongs to another structure".into(),
                }),
            }
        }
        if r.dry_run {
            // Dropping the transaction rolls it back: the counts are what a
            // real import would do now.
            drop(tx);
        } else {
            tx.commit().await.map_err(internal)?;
        }
        rejected.sort_by_key(|x| x.index);
        tracing::info!(
            source = %source,
            structure_id = %structure_id,
            created,
            updated,
            rejected = rejected.len(),
            dry_run = r.dry_run,
            "services imported"
        );
        Ok(Response::new(pb::ImportServicesResponse {
            created,
            updated,
            rejected,
        }))
    }

    async fn export_services(
        &self,
        req: Request<pb::ExportServicesRequest>,
    ) -> Result<Response<pb::ExportServicesResponse>, Status> {
        require_role(&req, PROFESSIONALS)?;
        let r = req.into_inner();
        let search = parse_search(&r.thematiques, &r.publics, &r.territory, &r.structure_id)?;
        let rows = self
            .store
            .search(&search, None, i64::MAX)
            .await
            .map_err(internal)?;
        let content = tokio::task::spawn_blocking(move || {
            let records: Vec<serde_json::Value> = rows.iter().map(datainclusion::to_json).collect();
            serde_json::to_vec_pretty(&records)
        })
        .await
        .map_err(internal)?
        .map_err(internal)?;
        Ok(Response::new(pb::ExportServicesResponse {
            media_type: "application/json".into(),
            content,
        }))
    }

    async fn archive_service(
        &self,
        req: Request<pb::ArchiveServiceRequest>,
    ) -> Result<Response<pb::ArchiveServiceResponse>, Status> {
        let caller = require_role(&req, &[Role::StructureAdmin, Role::Operator])?.clone();
        let service = self
            .set_archived(&caller, &req.into_inner().service_id, true)
            .await?;
        Ok(Response::new(pb::ArchiveServiceResponse {
            service: Some(service),
        }))
    }

    async fn unarchive_service(
        &self,
        req: Request<pb::UnarchiveServiceRequest>,
    ) -> Result<Response<pb::UnarchiveServiceResponse>, Status> {
        let caller = require_role(&req, &[Role::StructureAdmin, Role::Operator])?.clone();
        let service = self
            .set_archived(&caller, &req.into_inner().service_id, false)
            .await?;
        Ok(Response::new(pb::UnarchiveServiceResponse {
            service: Some(service),
        }))
    }

    async fn suggest_services(
        &self,
        req: Request<pb::SuggestServicesRequest>,
    ) -> Result<Response<pb::SuggestServicesResponse>, Status> {
        suggestions::suggest(self, req).await
    }
}
