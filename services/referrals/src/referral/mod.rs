//! `ReferralService`: referrals (orientations) of a person from one
//! structure to another structure or a partner, their history, their
//! thread, and the diagnostic that travelled with them.
//!
//! Who sees a referral: members of the sending structure (counselors,
//! admins), members of the target structure (counselors, admins, partners)
//! and the person themself; anyone else gets NOT_FOUND. What is personal in
//! it (reason, contact, notes, messages, diagnostic) is sealed with the
//! person's key and opened through identity, which checks the person's
//! consent for the target (purpose `orientation`) and writes the access log.

mod create;
pub mod events;
mod read;
pub mod scheduler;
pub mod state;
pub mod store;
mod transition;

use eva_platform::Clock;
use eva_platform::auth::{Principal, Role};
use eva_platform::config::ReferralsConfig;
use eva_platform::consent::{Consents, Purpose};
use eva_platform::db::to_timestamp;
use eva_platform::follows::Follows;
use eva_platform::grpc::invalid_field;
use eva_platform::sealing::{OpenItem, Opened, Reading, Sealed, Sealer};
use eva_proto::referrals::v1 as pb;
use eva_proto::referrals::v1::referral_service_server::ReferralServiceServer;
use serde::{Deserialize, Serialize};
use tonic::Status;
use tonic::metadata::MetadataMap;
use tonic::transport::Channel;

use self::state::Side;
use self::store::{ReferralRow, ReferralStore};
use crate::store::Store;

/// Roles that send referrals.
pub const SENDERS: &[Role] = &[Role::Counselor, Role::StructureAdmin];
/// Roles that answer referrals addressed to their structure.
pub const RECEIVERS: &[Role] = &[Role::Counselor, Role::StructureAdmin, Role::Partner];
/// Roles that may call the service at all.
pub const CALLERS: &[Role] = &[
    Role::Counselor,
    Role::StructureAdmin,
    Role::Partner,
    Role::Person,
];

/// The access log's resource type.
pub const RESOURCE: &str = "referral";

/// What `details` holds, sealed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Details {
    pub reason: String,
    pub contact: Contact,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Contact {
    pub first_name: String,
    pub last_name: String,
    pub phone: String,
    pub email: String,
}

/// The state behind `ReferralService`.
#[derive(Clone)]
pub struct ReferralApi {
    pub store: Store,
    pub referrals: ReferralStore,
    pub consents: Consents,
    /// Who follows whom, and the structures' kind.
    pub follows: Follows,
    pub sealer: Sealer,
    /// Identity (people's contact) and diagnostics (the snapshot).
    pub identity: Channel,
    pub diagnostics: Channel,
    pub clock: Clock,
    pub config: ReferralsConfig,
}

/// `ReferralService`, ready for `GrpcServer::add_service`.
pub fn server(api: ReferralApi) -> ReferralServiceServer<ReferralApi> {
    ReferralServiceServer::new(api)
}

/// Which side of a referral the caller is on, and the structure they act for.
pub struct Seat {
    pub side: Side,
    pub structure_id: Option<String>,
}

/// The caller's seat on `r`, or NOT_FOUND (a referral one may not see does
/// not exist for them).
pub fn seat(caller: &Principal, r: &ReferralRow) -> Result<Seat, Status> {
    if caller.has_role(Role::Person) && caller.person_id.as_deref() == Some(&r.person_id) {
        return Ok(Seat {
            side: Side::Person,
            structure_id: None,
        });
    }
    if caller.has_any_role(RECEIVERS) && caller.belongs_to(&r.target_structure_id) {
        return Ok(Seat {
            side: Side::Receiver,
            structure_id: Some(r.target_structure_id.clone()),
        });
    }
    if caller.has_any_role(SENDERS) && caller.belongs_to(&r.sender_structure_id) {
        return Ok(Seat {
            side: Side::Sender,
            structure_id: Some(r.sender_structure_id.clone()),
        });
    }
    Err(not_found())
}

pub fn not_found() -> Status {
    Status::not_found("orientation introuvable / referral not found")
}

pub fn internal(e: impl std::fmt::Display) -> Status {
    tracing::error!(error = %e, "referrals internal error");
    Status::internal("erreur interne / internal error")
}

pub fn check_id(field: &str, value: &str) -> Result<(), Status> {
    uuid::Uuid::parse_str(value)
        .map(|_| ())
        .map_err(|_| invalid_field(field, "identifiant invalide / not a valid id"))
}

/// Where a referral's sealed parts belong (bound to the ciphertext).
pub fn context(referral_id: &str, part: &str) -> String {
    format!("referral:{referral_id}:{part}")
}

impl ReferralApi {
    /// How the caller reads sealed parts of `r`.
    fn reading<'a>(&self, r: &'a ReferralRow, seat: &'a Seat) -> Reading<'a> {
        Reading {
            person_id: &r.person_id,
            structure_id: seat.structure_id.as_deref().unwrap_or(""),
            purpose: match seat.side {
                Side::Receiver => Purpose::Orientation,
                _ => Purpose::Accompagnement,
            },
            resource_type: RESOURCE,
            resource_id: &r.referral_id,
        }
    }

    /// Opens sealed parts of `r` (each covering the referral's domains);
    /// `None` where the person's consent withholds them from this reader.
    async fn open(
        &self,
        md: &MetadataMap,
        r: &ReferralRow,
        seat: &Seat,
        parts: Vec<(String, Sealed)>,
    ) -> Result<Vec<Option<Vec<u8>>>, Status> {
        if parts.is_empty() {
            return Ok(Vec::new());
        }
        let domains = r.domain_list();
        let items = parts
            .into_iter()
            .map(|(context, sealed)| OpenItem {
                context,
                sealed,
                domains: domains.clone(),
            })
            .collect();
        let opened = self
            .sealer
            .open_batch(md, &self.reading(r, seat), items)
            .await?;
        Ok(opened
            .into_iter()
            .map(|o| match o {
                Opened::Plain(p) => Some(p),
                Opened::Withheld { .. } => None,
            })
            .collect())
    }

    /// The referral as the API shows it, with its details if opened.
    pub fn to_proto(r: &ReferralRow, details: Option<Details>) -> pb::Referral {
        let d = details.unwrap_or_default();
        let status = state::parse(&r.status).unwrap_or_default();
        let reason = state::parse_reason(&r.refusal_reason).unwrap_or_default();
        pb::Referral {
            referral_id: r.referral_id.clone(),
            person_id: r.person_id.clone(),
            sender_structure_id: r.sender_structure_id.clone(),
            sender_user_id: r.sender_user_id.clone(),
            target_structure_id: r.target_structure_id.clone(),
            target_service_id: r.target_service_id.clone(),
            status: status as i32,
            domains: r.domain_list(),
            reason: d.reason,
            person_contact: Some(pb::PersonContact {
                first_name: d.contact.first_name,
                last_name: d.contact.last_name,
                phone: d.contact.phone,
                email: d.contact.email,
            }),
            diagnostic_id: r.diagnostic_id.clone(),
            refusal_reason: reason as i32,
            sent_at: Some(to_timestamp(r.sent_at_us)),
            first_answered_at: r.first_answered_at_us.map(to_timestamp),
            remind_at: Some(to_timestamp(r.remind_at_us)),
            expires_at: Some(to_timestamp(r.expires_at_us)),
            closed_at: r.closed_at_us.map(to_timestamp),
            updated_at: Some(to_timestamp(r.updated_at_us)),
        }
    }

    /// The referral's details opened for the caller's seat; `None` where the
    /// person's consent withholds them. The one rule for who reads them:
    /// identity decides (the person, a structure following them, or the
    /// person's consent for the seat's structure, purpose and the referral's
    /// domains) and logs each opening in the person's access log.
    async fn details(
        &self,
        md: &MetadataMap,
        r: &ReferralRow,
        seat: &Seat,
    ) -> Result<Option<Details>, Status> {
        let sealed = Sealed {
            ciphertext: r.details.clone(),
            key_id: r.details_key.clone(),
        };
        let opened = self
            .open(
                md,
                r,
                seat,
                vec![(context(&r.referral_id, "details"), sealed)],
            )
            .await?;
        match opened.into_iter().next().flatten() {
            Some(p) => Ok(Some(
                serde_json::from_slice::<Details>(&p).map_err(internal)?,
            )),
            None => Ok(None),
        }
    }

    /// The referral with its details opened for the caller.
    async fn detailed(
        &self,
        md: &MetadataMap,
        r: &ReferralRow,
        seat: &Seat,
    ) -> Result<pb::Referral, Status> {
        let details = self.details(md, r, seat).await?;
        Ok(Self::to_proto(r, details))
    }

    /// Each referral of a list with the person's first and last name (and
    /// nothing else of its details) where `caller` may read them, opened as
    /// [`Self::detailed`] opens them, so the person's access log holds the
    /// same `referral` entry a single read writes, for each name given and
    /// for no other: one batch per referral, all in one `OpenSealedBatches`
    /// call (64 to a call). A referral whose person was erased meanwhile is
    /// listed without a name.
    async fn named(
        &self,
        md: &MetadataMap,
        caller: &Principal,
        rows: &[ReferralRow],
    ) -> Result<Vec<pb::Referral>, Status> {
        // Only the referrals the caller holds a seat on are opened, all in
        // one identity call (each still its own read, logged for its person).
        let seats: Vec<Option<Seat>> = rows.iter().map(|r| seat(caller, r).ok()).collect();
        let batches: Vec<(Reading<'_>, Vec<OpenItem>)> = rows
            .iter()
            .zip(&seats)
            .filter_map(|(r, seat)| {
                let seat = seat.as_ref()?;
                let item = OpenItem {
                    context: context(&r.referral_id, "details"),
                    sealed: Sealed {
                        ciphertext: r.details.clone(),
                        key_id: r.details_key.clone(),
                    },
                    domains: r.domain_list(),
                };
                Some((self.reading(r, seat), vec![item]))
            })
            .collect();
        let mut opened = if batches.is_empty() {
            Vec::new()
        } else {
            self.sealer.open_batches(md, batches).await?
        }
        .into_iter();
        let mut out = Vec::with_capacity(rows.len());
        for (r, seat) in rows.iter().zip(&seats) {
            if seat.is_none() {
                out.push(Self::to_proto(r, None));
                continue;
            }
            let details = match opened.next() {
                Some(Ok(items)) => match items.into_iter().next() {
                    Some(Opened::Plain(p)) => {
                        Some(serde_json::from_slice::<Details>(&p).map_err(internal)?)
                    }
                    _ => None,
                },
                // The person erased, or unknown to identity: listed without a name.
                Some(Err(s))
                    if matches!(
                        s.code(),
                        tonic::Code::FailedPrecondition | tonic::Code::NotFound
                    ) =>
                {
                    tracing::info!(referral_id = %r.referral_id, code = ?s.code(), "referral listed without the person's name");
                    None
                }
                Some(Err(s)) => return Err(s),
                None => return Err(Status::internal("identity: a referral left unanswered")),
            };
            let name = details.map(|d| Details {
                reason: String::new(),
                contact: Contact {
                    first_name: d.contact.first_name,
                    last_name: d.contact.last_name,
                    ..Contact::default()
                },
            });
            out.push(Self::to_proto(r, name));
        }
        Ok(out)
    }
}
