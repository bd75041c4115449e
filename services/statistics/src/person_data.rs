//! `eva.identity.v1.PersonDataService` for statistics: its part of a
//! person's GDPR export. Statistics never stores a person's id or name, but
//! it keeps accompaniments and referrals under its own keyed pseudonym of
//! the id (see [`crate::people`]). Pseudonymised data is still personal data
//! (GDPR recital 26): given the id, as in an export, statistics finds those
//! rows, so its part lists them. After erasure it finds nothing: the rows
//! no longer carry the pseudonym.

use eva_platform::auth::{Role, require_role};
use eva_platform::db::{now_us, to_timestamp};
use eva_platform::grpc::invalid_field;
use eva_proto::identity::v1 as pb;
use eva_proto::identity::v1::person_data_service_server::PersonDataServiceServer;
use serde_json::json;
use tonic::{Request, Response, Status};

use crate::SERVICE;
use crate::people::{Held, Pseudonyms};
use crate::store::Store;

/// Who asks for a person's export: the person, or a counselor for them
/// (identity decides whether they may, then forwards their token here).
pub const EXPORTERS: &[Role] = &[Role::Person, Role::Counselor];

/// What statistics keeps about a person, in plain words.
pub const EXPLANATION_FR: &str = "Le service de statistiques ne garde ni votre nom, ni votre \
    identifiant. Pour compter chaque personne une seule fois et pour respecter votre opposition \
    aux statistiques, il garde vos accompagnements et vos orientations (structures, dates, \
    décision) sous un pseudonyme : un code calculé avec une clé secrète, qui ne permet pas de \
    retrouver qui vous êtes. Il ne les retrouve que quand on lui donne votre identifiant, comme \
    pour cet export. Si vous vous opposez aux statistiques, ils ne sont plus comptés. Si vos \
    données sont effacées, le lien est rompu : ils ne sont plus rattachés à vous ni entre eux, et \
    restent seulement comptés, de façon anonyme. Vos diagnostics y sont comptés sous un autre \
    pseudonyme, donné par le service des diagnostics, que les statistiques ne peuvent pas relier \
    à vous. Les chiffres publiés qui comptent moins de personnes que le seuil (11 par défaut) \
    sont masqués.";

pub const EXPLANATION_EN: &str = "The statistics service keeps neither your name nor your id. \
    To count each person once and to honour your objection to statistics, it keeps your \
    accompaniments and referrals (structures, dates, decision) under a pseudonym: a code computed \
    with a secret key, which cannot be turned back into who you are. It finds them only when \
    given your id, as for this export. If you object to statistics, they are no longer counted. \
    If your data is erased, the link is broken: they are tied neither to you nor to each other \
    any more, and are only counted, anonymously. Your diagnostics are counted under another \
    pseudonym, given by the diagnostics service, which statistics cannot link to you. Published \
    figures counting fewer people than the threshold (11 by default) are suppressed.";

/// Statistics' part of a person's export: what it holds under their
/// pseudonym.
pub fn document(person_id: &str, held: &Held) -> serde_json::Value {
    let mut data = Vec::new();
    if held.objected {
        data.push(json!({ "kind": "statistics_objection", "objected": true }));
    }
    for a in &held.accompaniments {
        data.push(json!({
            "kind": "accompaniment",
            "accompaniment_id": a.accompaniment_id,
            "structure_id": a.structure_id,
            "start_date": a.start_date,
            "end_date": a.end_date,
        }));
    }
    for r in &held.referrals {
        data.push(json!({
            "kind": "referral",
            "referral_id": r.referral_id,
            "sender_structure_id": r.sender_structure_id,
            "target_structure_id": r.target_structure_id,
            "sent_month": r.sent_month,
            "decision": r.decision,
            "refusal_reason": r.refusal_reason,
            "outcome": r.outcome,
        }));
    }
    json!({
        "service": SERVICE,
        "person_id": person_id,
        "personal_data": !data.is_empty(),
        "data": data,
        "explanation_fr": EXPLANATION_FR,
        "explanation_en": EXPLANATION_EN,
    })
}

/// The state behind statistics' `PersonDataService`.
#[derive(Clone)]
pub struct PersonData {
    store: Store,
    pseudonyms: Pseudonyms,
}

/// `PersonDataService`, ready for `GrpcServer::add_service`.
pub fn server(store: Store, pseudonyms: Pseudonyms) -> PersonDataServiceServer<PersonData> {
    PersonDataServiceServer::new(PersonData { store, pseudonyms })
}

#[tonic::async_trait]
impl pb::person_data_service_server::PersonDataService for PersonData {
    async fn export_person_data(
        &self,
        req: Request<pb::ExportPersonDataRequest>,
    ) -> Result<Response<pb::ExportPersonDataResponse>, Status> {
        let caller = require_role(&req, EXPORTERS)?.clone();
        let person_id = req.into_inner().person_id;
        if uuid::Uuid::parse_str(&person_id).is_err() {
            return Err(invalid_field(
                "person_id",
                "identifiant invalide / not a valid id",
            ));
        }
        if caller.has_role(Role::Person) && caller.person_id.as_deref() != Some(&person_id) {
            return Err(Status::permission_denied(
                "vous ne pouvez exporter que vos propres données / you may export only your own data",
            ));
        }
        let held = crate::people::held(&self.store, &self.pseudonyms.of(&person_id))
            .await
            .map_err(|e| Status::internal(format!("statistics: {e}")))?;
        let content = serde_json::to_vec(&document(&person_id, &held))
            .map_err(|e| Status::internal(format!("document: {e}")))?;
        Ok(Response::new(pb::ExportPersonDataResponse {
            service: SERVICE.into(),
            media_type: "application/json".into(),
            content,
            generated_at: Some(to_timestamp(now_us())),
        }))
    }
}
