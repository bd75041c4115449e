//! `eva.identity.v1.PersonDataService` for community: its part of a person's
//! GDPR export. The people supported have no data here by design: posts are
//! screened so that no name, contact or number of a person supported is
//! stored, and nothing in community points to a person's id. So its part
//! says so.

use eva_platform::auth::{Role, require_role};
use eva_platform::db::{now_us, to_timestamp};
use eva_platform::grpc::invalid_field;
use eva_proto::identity::v1 as pb;
use eva_proto::identity::v1::person_data_service_server::PersonDataServiceServer;
use serde_json::json;
use tonic::{Request, Response, Status};

use crate::SERVICE;

/// Who asks for a person's export: the person, or a counselor for them
/// (identity decides whether they may, then forwards their token here).
pub const EXPORTERS: &[Role] = &[Role::Person, Role::Counselor];

/// Community's answer to every export: no data about the person.
pub fn document(person_id: &str) -> serde_json::Value {
    json!({
        "service": SERVICE,
        "person_id": person_id,
        "personal_data": false,
        "data": [],
        "explanation_fr": "L'espace d'entraide ne détient aucune donnée vous concernant : \
            les conseillers y échangent entre eux sur des situations rendues anonymes, les messages \
            qui contiennent un nom, un numéro ou une adresse sont refusés avant d'être enregistrés, \
            et rien n'y renvoie à votre identifiant.",
        "explanation_en": "The community space holds no data about you: counselors exchange \
            there about anonymised situations, posts carrying a name, a number or an address are \
            refused before they are stored, and nothing there points to your id.",
    })
}

/// The state behind community's `PersonDataService`.
#[derive(Clone, Copy, Debug, Default)]
pub struct PersonData;

/// `PersonDataService`, ready for `GrpcServer::add_service`.
pub fn server() -> PersonDataServiceServer<PersonData> {
    PersonDataServiceServer::new(PersonData)
}

#[tonic::async_trait]
impl pb::person_data_service_server::PersonDataService for PersonData {
    async fn export_person_data(
        &self,
        req: Request<pb::ExportPersonDataRequest>,
    ) -> Result<Response<pb::ExportPersonDataResponse>, Status> {
        require_role(&req, EXPORTERS)?;
        let person_id = req.into_inner().person_id;
        if uuid::Uuid::parse_str(&person_id).is_err() {
            return Err(invalid_field(
                "person_id",
                "identifiant invalide / not a valid id",
            ));
        }
        let content = serde_json::to_vec(&document(&person_id))
            .map_err(|e| Status::internal(format!("document: {e}")))?;
        Ok(Response::new(pb::ExportPersonDataResponse {
            service: SERVICE.into(),
            media_type: "application/json".into(),
            content,
            generated_at: Some(to_timestamp(now_us())),
        }))
    }
}
