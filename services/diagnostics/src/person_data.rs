//! `eva.identity.v1.PersonDataService` for diagnostics: its part of a
//! person's GDPR export (art. 15 and 20). Identity decides whether the
//! caller may export, then forwards their token here; each diagnostic comes
//! as the caller may read it, notes opened through identity.

use eva_platform::auth::{Role, require_role};
use eva_platform::consent::Purpose;
use eva_platform::db::{now_us, to_timestamp};
use eva_platform::grpc::invalid_field;
use eva_proto::diagnostics::v1 as pb;
use eva_proto::identity::v1 as idpb;
use eva_proto::identity::v1::person_data_service_server::PersonDataServiceServer;
use serde_json::{Value, json};
use tonic::{Request, Response, Status};

use crate::SERVICE;
use crate::diagnostic::{DiagnosticApi, internal};

/// Who asks for a person's export: the person, or a counselor for them.
pub const EXPORTERS: &[Role] = &[Role::Person, Role::Counselor];

/// `PersonDataService`, ready for `GrpcServer::add_service`.
pub fn server(api: DiagnosticApi) -> PersonDataServiceServer<PersonData> {
    PersonDataServiceServer::new(PersonData { api })
}

/// The state behind diagnostics' `PersonDataService`.
#[derive(Clone)]
pub struct PersonData {
    api: DiagnosticApi,
}

fn code(name: &str, prefix: &str) -> Value {
    let c = name.trim_start_matches(prefix).to_lowercase();
    if c == "unspecified" {
        Value::Null
    } else {
        Value::String(c)
    }
}

fn level(l: i32) -> Value {
    pb::Level::try_from(l)
        .map(|l| code(l.as_str_name(), "LEVEL_"))
        .unwrap_or(Value::Null)
}

fn time(t: &Option<prost_types::Timestamp>) -> Value {
    t.as_ref()
        .and_then(|t| {
            time::OffsetDateTime::from_unix_timestamp(t.seconds)
                .ok()?
                .format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .map(Value::String)
        .unwrap_or(Value::Null)
}

/// One diagnostic, as JSON.
pub fn diagnostic_json(d: &pb::Diagnostic) -> Value {
    let status = pb::DiagnosticStatus::try_from(d.status)
        .map(|s| code(s.as_str_name(), "DIAGNOSTIC_STATUS_"))
        .unwrap_or(Value::Null);
    json!({
        "id": d.diagnostic_id,
        "structure_id": d.structure_id,
        "counselor_user_id": d.counselor_user_id,
        "referentiel_version": d.referentiel_version,
        "status": status,
        "created_at": time(&d.created_at),
        "shared_at": time(&d.shared_at),
        "superseded_at": time(&d.superseded_at),
        "domains": d.domains.iter().map(|dom| json!({
            "domain_id": dom.domain_id,
            "access": if dom.access == pb::DomainAccess::Visible as i32 { "visible" } else { "withheld" },
            "items": dom.items.iter().map(|i| json!({
                "item_id": i.item_id,
                "counselor_level": level(i.counselor_level),
                "person_level": level(i.person_level),
                "counselor_note": i.counselor_note,
                "person_note": i.person_note,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

#[tonic::async_trait]
impl idpb::person_data_service_server::PersonDataService for PersonData {
    async fn export_person_data(
        &self,
        req: Request<idpb::ExportPersonDataRequest>,
    ) -> Result<Response<idpb::ExportPersonDataResponse>, Status> {
        let caller = require_role(&req, EXPORTERS)?.clone();
        let md = req.metadata().clone();
        let person_id = req.into_inner().person_id;
        if uuid::Uuid::parse_str(&person_id).is_err() {
            return Err(invalid_field(
                "person_id",
                "identifiant invalide / not a valid id",
            ));
        }
        let mut data = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let rows = self
                .api
                .store
                .diagnostics_of(&person_id, None, after.as_deref(), "*", 200)
                .await
                .map_err(internal)?;
            let Some(last) = rows.last() else { break };
            after = Some(last.diagnostic_id.clone());
            for d in &rows {
                // What the caller may not read stays out of their export.
                let Ok(sight) = self.api.sight(&caller, d, Purpose::Accompagnement).await else {
                    continue;
                };
                match self.api.render(&md, d, &sight).await {
                    Ok((diagnostic, _)) => {
                        let mut json = diagnostic_json(&diagnostic);
                        json["action_plan"] =
                            crate::action_plan::export_json(&self.api, &md, d, &sight).await?;
                        data.push(json);
                    }
                    Err(s) if s.code() == tonic::Code::PermissionDenied => {}
                    Err(s) => return Err(s),
                }
            }
        }
        let document = json!({
            "service": SERVICE,
            "person_id": person_id,
            "personal_data": !data.is_empty(),
            "data": data,
            "explanation_fr": "Vos diagnostics : les cotations de votre conseiller et les vôtres, \
                avec les notes, pour chaque domaine du référentiel commun.",
            "explanation_en": "Your diagnostics: your counselor's ratings and yours, with the notes, \
                for each domain of the référentiel commun.",
        });
        let content = serde_json::to_vec(&document)
            .map_err(|e| Status::internal(format!("document: {e}")))?;
        Ok(Response::new(idpb::ExportPersonDataResponse {
            service: SERVICE.into(),
            media_type: "application/json".into(),
            content,
            generated_at: Some(to_timestamp(now_us())),
        }))
    }
}
