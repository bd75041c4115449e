//! `eva.identity.v1.RightsService` (export, erasure, objection to statistics)
//! and identity's own `PersonDataService`.

use std::sync::Arc;
use std::time::Duration;

use eva_platform::Config;
use eva_platform::audit::{self, Access};
use eva_platform::auth::{Principal, Role, require_role};
use eva_platform::crypto::Kek;
use eva_platform::db::{Db, now_us, to_timestamp};
use eva_platform::grpc::invalid_field;
use eva_platform::outbox::{self, Event};
use eva_platform::service::StartError;
use eva_proto::audit::v1::AccessAction;
use eva_proto::identity::v1 as pb;
use eva_proto::identity::v1::person_data_service_client::PersonDataServiceClient;
use eva_proto::identity::v1::person_data_service_server::PersonDataServiceServer;
use eva_proto::identity::v1::rights_service_server::RightsServiceServer;
use serde_json::{Map, Value, json};
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};

use super::{
    PURPOSE, Who, authorise, erase_rows, erasure_reason, identity_part, scrub, set_objection,
};
use crate::SERVICE;
use crate::accounts::Accounts;
use crate::people::api::internal;
use crate::people::{check_id, person_not_found};

/// Who may export: the person, or a counselor of a following structure.
pub const EXPORTERS: &[Role] = &[Role::Person, Role::Counselor];
/// Who may erase: the person, or a structure admin of a following structure.
pub const ERASERS: &[Role] = &[Role::Person, Role::StructureAdmin];
/// Who may set the objection: the person, or a counselor on their behalf.
pub const OBJECTORS: &[Role] = &[Role::Person, Role::Counselor];

/// Deadline of one service's part of an export.
const PART_TIMEOUT: Duration = Duration::from_secs(20);

/// Another EVA service asked for its part of an export.
#[derive(Clone, Debug)]
pub struct PartSource {
    pub service: &'static str,
    pub channel: Channel,
}

/// The other services holding a person's data, from the configuration:
/// diagnostics (the person's diagnostics, notes opened), referrals (the
/// person's referrals, their history and thread), community and
/// statistics (which hold none, and say so).
pub fn sources(config: &Config) -> Result<Vec<PartSource>, StartError> {
    let channel = |url: &str| {
        Endpoint::from_shared(url.to_owned())
            .map(|e| e.connect_timeout(Duration::from_secs(3)).connect_lazy())
            .map_err(|e| StartError::Other {
                service: SERVICE,
                reason: format!("endpoint `{url}`: {e}"),
            })
    };
    Ok(vec![
        PartSource {
            service: "diagnostics",
            channel: channel(&config.diagnostics.endpoint)?,
        },
        PartSource {
            service: "referrals",
            channel: channel(&config.referrals.endpoint)?,
        },
        PartSource {
            service: "community",
            channel: channel(&config.community.endpoint)?,
        },
        PartSource {
            service: "statistics",
            channel: channel(&config.statistics.endpoint)?,
        },
    ])
}

/// The state behind `RightsService` and `PersonDataService`.
#[derive(Clone)]
pub struct RightsApi {
    db: Db,
    kek: Kek,
    accounts: Arc<Accounts>,
    sources: Vec<PartSource>,
}

impl RightsApi {
    pub fn new(db: Db, kek: Kek, accounts: Arc<Accounts>, sources: Vec<PartSource>) -> Self {
        Self {
            db,
            kek,
            accounts,
            sources,
        }
    }

    pub fn rights_server(self) -> RightsServiceServer<Self> {
        RightsServiceServer::new(self)
    }

    pub fn person_data_server(self) -> PersonDataServiceServer<Self> {
        PersonDataServiceServer::new(self)
    }

    /// Records an access of the person's rights, committed before answering.
    async fn record(
        &self,
        caller: &Principal,
        person_id: &str,
        who: &Who,
        action: AccessAction,
        resource_type: &str,
    ) -> Result<(), Status> {
        let mut tx = self.db.begin().await.map_err(internal)?;
        audit::record(
            &mut tx,
            SERVICE,
            Access {
                person_id,
                actor: caller,
                structure_id: who.structure_id(),
                action,
                resource_type,
                resource_id: person_id,
                domains: Vec::new(),
                purpose: PURPOSE,
            },
        )
        .await
        .map_err(internal)?;
        tx.commit().await.map_err(internal)
    }

    /// Another service's part, asked with the caller's token.
    async fn remote_part(
        &self,
        source: &PartSource,
        authorization: Option<&tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
        person_id: &str,
    ) -> Result<Value, Status> {
        let mut client = PersonDataServiceClient::new(source.channel.clone());
        let mut req = Request::new(pb::ExportPersonDataRequest {
            person_id: person_id.to_owned(),
        });
        req.set_timeout(PART_TIMEOUT);
        if let Some(a) = authorization {
            req.metadata_mut().insert("authorization", a.clone());
        }
        eva_platform::telemetry::propagation::inject_grpc(req.metadata_mut());
        let part = client.export_person_data(req).await.map_err(|s| {
            tracing::warn!(service = source.service, code = ?s.code(), "export part failed");
            Status::unavailable(format!(
                "export incomplet : le service {} n'a pas répondu, réessayez plus tard / \
                 incomplete export: service {} did not answer, try again later",
                source.service, source.service
            ))
        })?;
        let part = part.into_inner();
        Ok(if part.media_type.starts_with("application/json") {
            serde_json::from_slice(&part.content)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&part.content).into()))
        } else {
            json!({
                "media_type": part.media_type,
                "content": String::from_utf8_lossy(&part.content),
            })
        })
    }
}

#[tonic::async_trait]
impl pb::rights_service_server::RightsService for RightsApi {
    async fn export_person(
        &self,
        req: Request<pb::ExportPersonRequest>,
    ) -> Result<Response<pb::ExportPersonResponse>, Status> {
        let caller = require_role(&req, EXPORTERS)?.clone();
        let authorization = req.metadata().get("authorization").cloned();
        let person_id = req.into_inner().person_id;
        check_id("person_id", &person_id)?;
        let who = authorise(
            &self.db,
            &self.accounts,
            &caller,
            &person_id,
            &[Role::Counselor],
        )
        .await?;
        let mut services = Map::new();
        // Identity's own part, in-process.
        services.insert(
            SERVICE.to_owned(),
            identity_part(&self.db, &self.kek, &self.accounts, &person_id).await?,
        );
        for source in &self.sources {
            let part = self
                .remote_part(source, authorization.as_ref(), &person_id)
                .await?;
            services.insert(source.service.to_owned(), part);
        }
        self.record(&caller, &person_id, &who, AccessAction::Export, "export")
            .await?;
        let generated = now_us();
        let doc = json!({
            "format": "eva-export/1",
            "person_id": person_id,
            "generated_at": super::rfc3339(generated),
            "services": services,
        });
        let content = serde_json::to_vec_pretty(&doc)
            .map_err(|e| internal(crate::IdentityError::Keys(format!("export document: {e}"))))?;
        tracing::info!(person_id = %person_id, "person's data exported");
        Ok(Response::new(pb::ExportPersonResponse {
            media_type: "application/json".into(),
            content,
            generated_at: Some(to_timestamp(generated)),
        }))
    }

    async fn erase_person(
        &self,
        req: Request<pb::ErasePersonRequest>,
    ) -> Result<Response<pb::ErasePersonResponse>, Status> {
        let caller = require_role(&req, ERASERS)?.clone();
        let r = req.into_inner();
        check_id("person_id", &r.person_id)?;
        let reason = erasure_reason(&r.reason).ok_or_else(|| {
            invalid_field(
                "reason",
                "un code en minuscules (a-z, 0-9, _), 64 caractères au plus, ex. demande_de_la_personne / a lowercase code",
            )
        })?;
        let who = authorise(
            &self.db,
            &self.accounts,
            &caller,
            &r.person_id,
            &[Role::StructureAdmin],
        )
        .await?;
        // The person's own account goes with them when they erase themself.
        let own_account = (who == Who::Themself && uuid::Uuid::parse_str(&caller.user_id).is_ok())
            .then_some(caller.user_id.as_str());
        let now = now_us();
        let mut tx = self.db.begin().await.map_err(internal)?;
        if !erase_rows(&mut tx, &r.person_id, own_account, &reason, now)
            .await
            .map_err(internal)?
        {
            return Err(person_not_found());
        }
        let erased = pb::PersonErased {
            person_id: r.person_id.clone(),
            erased_at: Some(to_timestamp(now)),
        };
        outbox::enqueue(
            &mut tx,
            &Event::new(
                SERVICE,
                "eva.identity.person.erased",
                Some(r.person_id.clone()),
                &erased,
            ),
        )
        .await
        .map_err(internal)?;
        tx.commit().await.map_err(internal)?;
        tracing::info!(person_id = %r.person_id, reason = %reason, "person erased");
        if let Err(e) = scrub(&self.db).await {
            // The erasure holds (the key is gone); the pages are reused later.
            tracing::warn!(person_id = %r.person_id, error = %e, "erased pages not scrubbed yet");
        }
        Ok(Response::new(pb::ErasePersonResponse {
            erased_at: Some(to_timestamp(now)),
        }))
    }

    async fn set_statistics_objection(
        &self,
        req: Request<pb::SetStatisticsObjectionRequest>,
    ) -> Result<Response<pb::SetStatisticsObjectionResponse>, Status> {
        let caller = require_role(&req, OBJECTORS)?.clone();
        let r = req.into_inner();
        check_id("person_id", &r.person_id)?;
        let who = authorise(
            &self.db,
            &self.accounts,
            &caller,
            &r.person_id,
            &[Role::Counselor],
        )
        .await?;
        let now = now_us();
        let mut tx = self.db.begin().await.map_err(internal)?;
        set_objection(&mut tx, &r.person_id, r.objected, now)
            .await
            .map_err(internal)?;
        let changed = pb::StatisticsObjectionChanged {
            person_id: r.person_id.clone(),
            objected: r.objected,
            changed_at: Some(to_timestamp(now)),
        };
        outbox::enqueue(
            &mut tx,
            &Event::new(
                SERVICE,
                "eva.identity.person.statistics_objection_changed",
                Some(r.person_id.clone()),
                &changed,
            ),
        )
        .await
        .map_err(internal)?;
        audit::record(
            &mut tx,
            SERVICE,
            Access {
                person_id: &r.person_id,
                actor: &caller,
                structure_id: who.structure_id(),
                action: AccessAction::Write,
                resource_type: "statistics_objection",
                resource_id: &r.person_id,
                domains: Vec::new(),
                purpose: PURPOSE,
            },
        )
        .await
        .map_err(internal)?;
        tx.commit().await.map_err(internal)?;
        tracing::info!(person_id = %r.person_id, objected = r.objected, "statistics objection recorded");
        Ok(Response::new(pb::SetStatisticsObjectionResponse {
            objected: r.objected,
            updated_at: Some(to_timestamp(now)),
        }))
    }
}

#[tonic::async_trait]
impl pb::person_data_service_server::PersonDataService for RightsApi {
    /// Identity's part alone, for whoever may export (same rule as
    /// `ExportPerson`); logged as an export.
    async fn export_person_data(
        &self,
        req: Request<pb::ExportPersonDataRequest>,
    ) -> Result<Response<pb::ExportPersonDataResponse>, Status> {
        let caller = require_role(&req, EXPORTERS)?.clone();
        let person_id = req.into_inner().person_id;
        check_id("person_id", &person_id)?;
        let who = authorise(
            &self.db,
            &self.accounts,
            &caller,
            &person_id,
            &[Role::Counselor],
        )
        .await?;
        let part = identity_part(&self.db, &self.kek, &self.accounts, &person_id).await?;
        self.record(&caller, &person_id, &who, AccessAction::Export, "export")
            .await?;
        Ok(Response::new(pb::ExportPersonDataResponse {
            service: SERVICE.into(),
            media_type: "application/json".into(),
            content: serde_json::to_vec(&part).unwrap_or_default(),
            generated_at: Some(to_timestamp(now_us())),
        }))
    }
}
