//! Notes are sealed with the person's key, which only identity holds: this
//! client asks identity's `SealingService` to seal and open them, with the
//! caller's own token, so identity authorises and access-logs each opening.
//! One payload per diagnostic, domain and author: a JSON object item id →
//! note, opened in one call per visible domain. Notes are never logged.

use std::collections::BTreeMap;
use std::time::Duration;

use eva_platform::Config;
use eva_platform::consent::Purpose;
use eva_platform::service::StartError;
use eva_proto::identity::v1 as idpb;
use eva_proto::identity::v1::sealing_service_client::SealingServiceClient;
use tonic::Status;
use tonic::metadata::MetadataMap;
use tonic::transport::{Channel, Endpoint};

use crate::SERVICE;
use crate::store::Author;

/// The notes of one domain by one author: item id → note.
pub type DomainNotes = BTreeMap<String, String>;

/// Identity's `SealingService`, lazily connected.
#[derive(Clone)]
pub struct Sealer {
    channel: Channel,
}

/// Where a payload belongs: bound to the ciphertext by identity.
pub fn context(diagnostic_id: &str, domain_id: &str, author: Author) -> String {
    format!("diagnostic:{diagnostic_id}:{domain_id}:{}", author.code())
}

impl Sealer {
    pub fn connect(config: &Config) -> Result<Self, StartError> {
        let url = &config.identity.endpoint;
        let channel = Endpoint::from_shared(url.clone())
            .map(|e| {
                e.connect_timeout(Duration::from_secs(3))
                    .tcp_nodelay(true)
                    .connect_lazy()
            })
            .map_err(|e| StartError::Other {
                service: SERVICE,
                reason: format!("identity.endpoint `{url}`: {e}"),
            })?;
        Ok(Self { channel })
    }

    /// A request to identity carrying the caller's token and trace context.
    fn request<T>(caller: &MetadataMap, message: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(message);
        req.set_timeout(Duration::from_secs(10));
        let md = req.metadata_mut();
        for name in ["authorization", "x-request-id"] {
            if let Some(v) = caller.get(name) {
                md.insert(name, v.clone());
            }
        }
        eva_platform::telemetry::propagation::inject_grpc(md);
        req
    }

    /// Seals `notes`: (ciphertext, key id).
    pub async fn seal(
        &self,
        caller: &MetadataMap,
        person_id: &str,
        context: String,
        notes: &DomainNotes,
    ) -> Result<(Vec<u8>, String), Status> {
        let plaintext =
            serde_json::to_vec(notes).map_err(|e| Status::internal(format!("notes: {e}")))?;
        let mut client = SealingServiceClient::new(self.channel.clone());
        let sealed = client
            .seal_for_person(Self::request(
                caller,
                idpb::SealForPersonRequest {
                    person_id: person_id.to_owned(),
                    plaintext,
                    context,
                },
            ))
            .await?
            .into_inner()
            .sealed
            .ok_or_else(|| Status::internal("identity: empty sealed payload"))?;
        Ok((sealed.ciphertext, sealed.key_id))
    }

    /// Opens the notes of one domain, reading for `structure_id` (empty for
    /// the person themself).
    #[allow(clippy::too_many_arguments)]
    pub async fn open(
        &self,
        caller: &MetadataMap,
        person_id: &str,
        context: String,
        ciphertext: Vec<u8>,
        key_id: String,
        domain_id: &str,
        structure_id: &str,
        purpose: Purpose,
    ) -> Result<DomainNotes, Status> {
        let mut client = SealingServiceClient::new(self.channel.clone());
        let domains = eva_platform::consent::domain(domain_id)
            .map(|d| vec![d.id.to_owned()])
            .unwrap_or_default();
        let plaintext = client
            .open_sealed(Self::request(
                caller,
                idpb::OpenSealedRequest {
                    person_id: person_id.to_owned(),
                    sealed: Some(idpb::SealedPayload { ciphertext, key_id }),
                    purpose: purpose_proto(purpose) as i32,
                    domains,
                    context,
                    structure_id: structure_id.to_owned(),
                },
            ))
            .await?
            .into_inner()
            .plaintext;
        serde_json::from_slice(&plaintext)
            .map_err(|_| Status::internal("notes scellées illisibles / sealed notes unreadable"))
    }
}

pub fn purpose_proto(p: Purpose) -> idpb::ConsentPurpose {
    match p {
        Purpose::Accompagnement => idpb::ConsentPurpose::Accompagnement,
        Purpose::Orientation => idpb::ConsentPurpose::Orientation,
        Purpose::Statistiques => idpb::ConsentPurpose::Statistiques,
    }
}
