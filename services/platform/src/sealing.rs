//! Data about a person that a service keeps or sends (notes, a referral's
//! details, a travelling diagnostic) is sealed with the person's key, which
//! only identity holds. This client asks identity's `SealingService` to seal
//! and open it with the caller's own token, so identity authorises, checks
//! consent and writes the person's access log. Plaintexts are never logged.

use std::time::Duration;

use eva_proto::identity::v1 as idpb;
use eva_proto::identity::v1::sealing_service_client::SealingServiceClient;
use tonic::Status;
use tonic::metadata::MetadataMap;
use tonic::transport::{Channel, Endpoint};

use crate::Config;
use crate::consent::Purpose;
use crate::service::StartError;

/// Most payloads per `OpenSealedBatch` call (identity's limit).
const BATCH_ITEMS: usize = 64;
/// Most ciphertext per `OpenSealedBatch` call, in bytes (identity's limit).
const BATCH_BYTES: usize = 2 * 1024 * 1024;
/// Most batches per `OpenSealedBatches` call (identity's limit).
const CALL_BATCHES: usize = 64;
/// Most ciphertext per `OpenSealedBatches` call, in bytes (identity's limit).
const CALL_BYTES: usize = 8 * 1024 * 1024;

/// A sealed payload and the id of the key that sealed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub ciphertext: Vec<u8>,
    pub key_id: String,
}

/// One payload to open in a batch.
pub struct OpenItem {
    /// The context it was sealed with.
    pub context: String,
    pub sealed: Sealed,
    /// Référentiel domains it covers (consent is checked on each); empty
    /// when it is not divided by domain.
    pub domains: Vec<String>,
}

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

/// One item of a batch, opened or withheld by the person's consent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    Plain(Vec<u8>),
    /// The person's consent does not let this reader see it; identity's
    /// words, in plain French and English.
    Withheld {
        message: String,
    },
}

/// Identity's `SealingService`, lazily connected.
#[derive(Clone)]
pub struct Sealer {
    channel: Channel,
}

impl Sealer {
    pub fn connect(config: &Config, service: &'static str) -> Result<Self, StartError> {
        let url = &config.identity.endpoint;
        let channel = Endpoint::from_shared(url.clone())
            .map(|e| {
                e.connect_timeout(Duration::from_secs(3))
                    .tcp_nodelay(true)
                    .connect_lazy()
            })
            .map_err(|e| StartError::Other {
                service,
                reason: format!("identity.endpoint `{url}`: {e}"),
            })?;
        Ok(Self { channel })
    }

    /// A request to another service carrying the caller's token, request id
    /// and trace context.
    pub fn request<T>(caller: &MetadataMap, message: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(message);
        req.set_timeout(Duration::from_secs(10));
        let md = req.metadata_mut();
        for name in ["authorization", "x-request-id"] {
            if let Some(v) = caller.get(name) {
                md.insert(name, v.clone());
            }
        }
        crate::telemetry::propagation::inject_grpc(md);
        req
    }

    /// Seals `plaintext` about `person_id`, bound to `context`.
    pub async fn seal(
        &self,
        caller: &MetadataMap,
        person_id: &str,
        context: String,
        plaintext: Vec<u8>,
    ) -> Result<Sealed, Status> {
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
        Ok(Sealed {
            ciphertext: sealed.ciphertext,
            key_id: sealed.key_id,
        })
    }

    /// Opens one payload, reading for `structure_id` (empty for the person).
    pub async fn open(
        &self,
        caller: &MetadataMap,
        person_id: &str,
        structure_id: &str,
        purpose: Purpose,
        item: OpenItem,
    ) -> Result<Vec<u8>, Status> {
        let mut client = SealingServiceClient::new(self.channel.clone());
        Ok(client
            .open_sealed(Self::request(
                caller,
                idpb::OpenSealedRequest {
                    person_id: person_id.to_owned(),
                    sealed: Some(idpb::SealedPayload {
                        ciphertext: item.sealed.ciphertext,
                        key_id: item.sealed.key_id,
                    }),
                    purpose: purpose_proto(purpose) as i32,
                    domains: item.domains,
                    context: item.context,
                    structure_id: structure_id.to_owned(),
                },
            ))
            .await?
            .into_inner()
            .plaintext)
    }

    /// Opens `items` in as few `OpenSealedBatch` calls as identity's limits
    /// allow (one access-log event per call), answering in order. A payload
    /// identity finds tampered fails the whole read.
    pub async fn open_batch(
        &self,
        caller: &MetadataMap,
        reading: &Reading<'_>,
        items: Vec<OpenItem>,
    ) -> Result<Vec<Opened>, Status> {
        let mut chunks: Vec<Vec<OpenItem>> = Vec::new();
        let mut bytes = 0;
        for item in items {
            let fits = chunks.last().is_some_and(|c| {
                c.len() < BATCH_ITEMS && bytes + item.sealed.ciphertext.len() <= BATCH_BYTES
            });
            if !fits {
                chunks.push(Vec::new());
                bytes = 0;
            }
            bytes += item.sealed.ciphertext.len();
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
    ) -> Result<Vec<Opened>, Status> {
        let n = items.len();
        let mut client = SealingServiceClient::new(self.channel.clone());
        let answer = client
            .open_sealed_batch(Self::request(caller, batch_request(reading, items)))
            .await;
        opened(answer.map(|r| r.into_inner().results), n)
    }

    /// Several batches — one per person and resource, each within one
    /// `OpenSealedBatch`'s limits — in as few `OpenSealedBatches` calls as
    /// identity allows. Each batch answers as [`Self::open_batch`] would
    /// alone: its items, or the status that refused it (a person unknown or
    /// erased…), without failing the others.
    pub async fn open_batches(
        &self,
        caller: &MetadataMap,
        batches: Vec<(Reading<'_>, Vec<OpenItem>)>,
    ) -> Result<Vec<Result<Vec<Opened>, Status>>, Status> {
        let mut out = Vec::with_capacity(batches.len());
        let mut call: Vec<(idpb::OpenSealedBatchRequest, usize)> = Vec::new();
        let mut bytes = 0;
        for (reading, items) in batches {
            let size: usize = items.iter().map(|i| i.sealed.ciphertext.len()).sum();
            if items.len() > BATCH_ITEMS || size > BATCH_BYTES {
                return Err(Status::invalid_argument(
                    "a batch larger than one OpenSealedBatch",
                ));
            }
            if call.len() == CALL_BATCHES || bytes + size > CALL_BYTES {
                out.extend(self.open_call(caller, std::mem::take(&mut call)).await?);
                bytes = 0;
            }
            bytes += size;
            let n = items.len();
            call.push((batch_request(&reading, items), n));
        }
        if !call.is_empty() {
            out.extend(self.open_call(caller, call).await?);
        }
        Ok(out)
    }

    async fn open_call(
        &self,
        caller: &MetadataMap,
        call: Vec<(idpb::OpenSealedBatchRequest, usize)>,
    ) -> Result<Vec<Result<Vec<Opened>, Status>>, Status> {
        let (batches, sizes): (Vec<_>, Vec<_>) = call.into_iter().unzip();
        let mut client = SealingServiceClient::new(self.channel.clone());
        let outcomes = client
            .open_sealed_batches(Self::request(
                caller,
                idpb::OpenSealedBatchesRequest { batches },
            ))
            .await?
            .into_inner()
            .outcomes;
        if outcomes.len() != sizes.len() {
            return Err(Status::internal(
                "identity: batches answered for another number of batches",
            ));
        }
        Ok(outcomes
            .into_iter()
            .zip(sizes)
            .map(|(o, n)| {
                let answer = match tonic::Code::from_i32(o.code) {
                    tonic::Code::Ok => Ok(o.results),
                    code => Err(Status::new(code, o.message)),
                };
                opened(answer, n)
            })
            .collect())
    }
}

/// The request of one batch.
fn batch_request(reading: &Reading<'_>, items: Vec<OpenItem>) -> idpb::OpenSealedBatchRequest {
    idpb::OpenSealedBatchRequest {
        person_id: reading.person_id.to_owned(),
        structure_id: reading.structure_id.to_owned(),
        purpose: purpose_proto(reading.purpose) as i32,
        items: items
            .into_iter()
            .map(|i| idpb::OpenSealedItem {
                domains: i.domains,
                sealed: Some(idpb::SealedPayload {
                    ciphertext: i.sealed.ciphertext,
                    key_id: i.sealed.key_id,
                }),
                context: i.context,
            })
            .collect(),
        resource_type: reading.resource_type.to_owned(),
        resource_id: reading.resource_id.to_owned(),
    }
}

/// A batch's answer as items: refused for the whole person (not this
/// structure's reader), every item is withheld.
fn opened(
    answer: Result<Vec<idpb::OpenSealedItemResult>, Status>,
    n: usize,
) -> Result<Vec<Opened>, Status> {
    let results = match answer {
        Ok(results) => results,
        Err(s) if s.code() == tonic::Code::PermissionDenied => {
            let message = s.message().to_owned();
            return Ok(vec![Opened::Withheld { message }; n]);
        }
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
            Ok(idpb::OpenRefusal::Unspecified) => Ok(Opened::Plain(r.plaintext)),
            Ok(idpb::OpenRefusal::Consent) => Ok(Opened::Withheld { message: r.message }),
            Ok(idpb::OpenRefusal::DomainsRequired) => {
                Err(crate::grpc::invalid_field("domains", &r.message))
            }
            Ok(idpb::OpenRefusal::Sealed) => Err(crate::grpc::invalid_field("sealed", &r.message)),
            Err(_) => Err(Status::internal("identity: unknown refusal")),
        })
        .collect()
}

pub fn purpose_proto(p: Purpose) -> idpb::ConsentPurpose {
    match p {
        Purpose::Accompagnement => idpb::ConsentPurpose::Accompagnement,
        Purpose::Orientation => idpb::ConsentPurpose::Orientation,
        Purpose::Statistiques => idpb::ConsentPurpose::Statistiques,
    }
}
