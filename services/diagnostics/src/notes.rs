//! Notes are sealed with the person's key, which only identity holds: this
//! client asks identity's `SealingService` to seal and open them, with the
//! caller's own token, so identity authorises and access-logs each opening.
//! One payload per diagnostic, domain and author: a JSON object item id →
//! note. A read opens all its payloads in one `OpenSealedBatch` call (one
//! access-log event in identity); a write reopens one with `OpenSealed`.
//! Notes are never logged.

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

/// One payload to open in a batch.
pub struct OpenItem {
    /// Where it belongs ([`context`]).
    pub context: String,
    pub ciphertext: Vec<u8>,
    pub key_id: String,
    /// The référentiel domain it covers.
    pub domain_id: String,
}

/// Most payloads per `OpenSealedBatch` call (identity's limit).
const BATCH_ITEMS: usize = 64;
/// Most ciphertext per `OpenSealedBatch` call, in bytes (identity's limit).
const BATCH_BYTES: usize = 2 * 1024 * 1024;

/// What a read opens with: who for, why, and the access log's resource.
pub struct Reading<'a> {
    pub person_id: &'a str,
    /// Empty for the person themself.
    pub structure_id: &'a str,
    pub purpose: Purpose,
    /// The access log's resource type, e.g. `diagnostic`.
    pub resource_type: &'a str,
    pub resource_id: &'a str,
}

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

impl Sealer {
    /// Opens `items` in as few `OpenSealedBatch` calls as identity's limits
    /// allow (one for a diagnostic): per item, its notes, or `None` when the
    /// person's consent withholds its domain from this reader. A payload
    /// identity finds tampered fails the read, as `open` does.
    pub async fn open_batch(
        &self,
        caller: &MetadataMap,
        reading: &Reading<'_>,
        items: Vec<OpenItem>,
    ) -> Result<Vec<Option<DomainNotes>>, Status> {
        let mut chunks: Vec<Vec<OpenItem>> = Vec::new();
        let mut bytes = 0;
        for item in items {
            let fits = chunks.last().is_some_and(|c| {
                c.len() < BATCH_ITEMS && bytes + item.ciphertext.len() <= BATCH_BYTES
            });
            if !fits {
                chunks.push(Vec::new());
                bytes = 0;
            }
            bytes += item.ciphertext.len();
            if let Some(c) = chunks.last_mut() {
                c.push(item);
            }
        }
        let mut out = Vec::new();
        for chunk in chunks {
            out.extend(self.open_chunk(caller, reading, chunk).await?);
        }
        Ok(out)
    }

    async fn open_chunk(
        &self,
        caller: &MetadataMap,
        reading: &Reading<'_>,
        items: Vec<OpenItem>,
    ) -> Result<Vec<Option<DomainNotes>>, Status> {
        let n = items.len();
        let items = items
            .into_iter()
            .map(|i| idpb::OpenSealedItem {
                domains: eva_platform::consent::domain(&i.domain_id)
                    .map(|d| vec![d.id.to_owned()])
                    .unwrap_or_default(),
                sealed: Some(idpb::SealedPayload {
                    ciphertext: i.ciphertext,
                    key_id: i.key_id,
                }),
                context: i.context,
            })
            .collect();
        let mut client = SealingServiceClient::new(self.channel.clone());
        let answer = client
            .open_sealed_batch(Self::request(
                caller,
                idpb::OpenSealedBatchRequest {
                    person_id: reading.person_id.to_owned(),
                    structure_id: reading.structure_id.to_owned(),
                    purpose: purpose_proto(reading.purpose) as i32,
                    items,
                    resource_type: reading.resource_type.to_owned(),
                    resource_id: reading.resource_id.to_owned(),
                },
            ))
            .await;
        let results = match answer {
            Ok(r) => r.into_inner().results,
            // Refused for the whole person (not this structure's reader):
            // every domain is withheld.
            Err(s) if s.code() == tonic::Code::PermissionDenied => return Ok(vec![None; n]),
            Err(s) => return Err(s),
        };
        if results.len() != n {
            return Err(Status::internal(
                "identity: batch answered for another number of items",
            ));
        }
        results
            .into_iter()
            .map(|r| match idpb::OpenRefusal::try_from(r.refusal) {
                Ok(idpb::OpenRefusal::Unspecified) => {
                    serde_json::from_slice(&r.plaintext).map(Some).map_err(|_| {
                        Status::internal("notes scellées illisibles / sealed notes unreadable")
                    })
                }
                Ok(idpb::OpenRefusal::Consent) => Ok(None),
                Ok(idpb::OpenRefusal::DomainsRequired) => {
                    Err(eva_platform::grpc::invalid_field("domains", &r.message))
                }
                Ok(idpb::OpenRefusal::Sealed) => {
                    Err(eva_platform::grpc::invalid_field("sealed", &r.message))
                }
                Err(_) => Err(Status::internal("identity: unknown refusal")),
            })
            .collect()
    }
}

pub fn purpose_proto(p: Purpose) -> idpb::ConsentPurpose {
    match p {
        Purpose::Accompagnement => idpb::ConsentPurpose::Accompagnement,
        Purpose::Orientation => idpb::ConsentPurpose::Orientation,
        Purpose::Statistiques => idpb::ConsentPurpose::Statistiques,
    }
}
