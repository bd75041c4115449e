//! `eva.referrals.v1.PartnerService`: how a partner receives the referral
//! events addressed to it.
//!
//! - **Settings**: the body format of its NATS events
//!   (`eva.partners.<structure_id>.referrals.*`), protobuf (default) or
//!   protobuf's canonical JSON ([`crate::events_json`]); the referral core
//!   reads it with [`event_format`].
//! - **Webhooks**: up to [`MAX_WEBHOOKS`] HTTPS endpoints per partner
//!   structure (plain http only to a loopback address, for local tests; no
//!   private-network address literal). Each has its own format and a signing
//!   secret (32 random bytes, base64url), returned once by `CreateWebhook`
//!   and kept sealed with the platform's key-encryption key (AAD
//!   `eva:webhook-secret:<webhook_id>`).
//! - **Deliveries**: in the transaction that writes a referral event
//!   addressed to a partner, the core calls [`enqueue_deliveries`], which
//!   queues one delivery per webhook with the body already rendered; a
//!   replayed event (same id) is queued once. The worker ([`webhook`]) POSTs
//!   them, signed ([`signature`]), in order per webhook, with retries.
//!
//! - **Pause**: a paused webhook keeps its URL and secret; the events
//!   addressed to the partner meanwhile are still queued for it (`pending`)
//!   and the worker sends none of them; on resume they are sent in order,
//!   then the new ones. Nothing is dropped: a partner that pauses during a
//!   maintenance of its endpoint misses no referral.
//!
//! Who: a member of the structure with role `partner` or `structure_admin`
//! manages its settings and webhooks and reads its deliveries; nobody else,
//! operators included (deny by default). Registering a webhook or changing
//! the settings needs the structure to be a partner (`STRUCTURE_KIND_PARTNER`
//! in the structures projection).

pub mod public_dns;
pub mod signature;
pub mod store;
pub mod webhook;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use eva_platform::Clock;
use eva_platform::auth::{Role, require_role};
use eva_platform::crypto::{CryptoError, Kek};
use eva_platform::db::{Db, DbError, Tx, to_timestamp};
use eva_platform::grpc::invalid_field;
use eva_platform::pagination::Page;
use eva_proto::identity::v1::StructureKind;
use eva_proto::referrals::v1 as pb;
use eva_proto::referrals::v1::partner_service_server::{PartnerService, PartnerServiceServer};
use eva_proto::referrals::v1::{DeliveryStatus, EventFormat};
use rand::RngCore;
use tonic::{Request, Response, Status};

use self::store::{DeliveryRow, NewDelivery, WebhookRow};
use crate::store::Store;

pub use self::webhook::{Worker, spawn_worker, wake};

/// Webhooks per structure, at most.
pub const MAX_WEBHOOKS: i64 = 5;
/// Longest webhook URL.
pub const MAX_URL_LEN: usize = 2_000;
/// Who manages a partner's settings and webhooks (members only).
const MANAGERS: &[Role] = &[Role::Partner, Role::StructureAdmin];

pub const CONTENT_TYPE_PROTOBUF: &str = "application/protobuf";
pub const CONTENT_TYPE_JSON: &str = "application/json";

/// Queues one delivery of an event addressed to `partner_structure_id` to
/// each of its webhooks, in the transaction that wrote the event. The body is
/// rendered now in each webhook's format; a body that cannot be rendered in
/// JSON is recorded as a `failed` delivery (visible to the partner) rather
/// than failing the caller's transaction. The same event queued again (same
/// `event_id`) is ignored. The worker is woken; it finds the rows once the
/// transaction committed.
pub async fn enqueue_deliveries(
    tx: &mut Tx,
    partner_structure_id: &str,
    event_id: &str,
    event_type: &str,
    proto_payload: &[u8],
    occurred_at_us: i64,
) -> Result<(), DbError> {
    let hooks = Store::webhook_formats_in(tx, partner_structure_id).await?;
    if hooks.is_empty() {
        return Ok(());
    }
    let mut json: Option<Result<Vec<u8>, String>> = None;
    for (webhook_id, format) in hooks {
        let delivery_id = uuid::Uuid::now_v7().to_string();
        let (body, content_type, error): (&[u8], &str, &str) = if format == store::JSON {
            match json.get_or_insert_with(|| crate::events_json::to_json(event_type, proto_payload))
            {
                Ok(b) => (b.as_slice(), CONTENT_TYPE_JSON, ""),
                Err(e) => {
                    tracing::error!(event_id, event_type, webhook_id = %webhook_id, error = %e,
                        "event cannot be rendered in JSON; delivery marked failed");
                    (
                        &[],
                        CONTENT_TYPE_JSON,
                        "rendu JSON impossible / cannot render the event in JSON",
                    )
                }
            }
        } else {
            (proto_payload, CONTENT_TYPE_PROTOBUF, "")
        };
        let failed = !error.is_empty();
        Store::insert_delivery(
            tx,
            &NewDelivery {
                delivery_id: &delivery_id,
                webhook_id: &webhook_id,
                event_id,
                event_type,
                occurred_at_us,
                body,
                content_type,
                status: if failed {
                    store::FAILED
                } else {
                    store::PENDING
                },
                next_attempt_at_us: (!failed).then_some(occurred_at_us),
                last_error: error,
                created_at_us: occurred_at_us,
            },
        )
        .await?;
    }
    wake();
    Ok(())
}

/// The body format a partner chose for its NATS events (protobuf unless it
/// chose JSON).
pub async fn event_format(tx: &mut Tx, structure_id: &str) -> Result<EventFormat, DbError> {
    Ok(
        match Store::partner_event_format_in(tx, structure_id)
            .await?
            .as_deref()
        {
            Some(store::JSON) => EventFormat::Json,
            _ => EventFormat::Protobuf,
        },
    )
}

/// What can go wrong with a partner's settings and webhooks.
#[derive(Debug, thiserror::Error)]
pub enum PartnerError {
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: &'static str,
    },
    #[error("structure inconnue du service des orientations / structure not known to referrals")]
    UnknownStructure,
    #[error(
        "la structure n'est pas un partenaire : seules les structures de type partenaire reçoivent les événements / \
         the structure is not a partner: only partner structures receive events"
    )]
    NotAPartner,
    #[error(
        "5 webhooks au plus par structure : supprimez-en un d'abord / at most 5 webhooks per structure: delete one first"
    )]
    TooManyWebhooks,
    #[error("webhook introuvable / webhook not found")]
    WebhookNotFound,
    #[error(
        "accès refusé : réservé aux membres de la structure / access denied: members of the structure only"
    )]
    NotAMember,
    #[error("database: {0}")]
    Db(#[from] DbError),
}

impl From<PartnerError> for Status {
    fn from(e: PartnerError) -> Self {
        match e {
            PartnerError::Invalid { field, message } => invalid_field(field, message),
            PartnerError::UnknownStructure | PartnerError::NotAPartner => {
                Status::failed_precondition(e.to_string())
            }
            PartnerError::TooManyWebhooks => Status::failed_precondition(e.to_string()),
            PartnerError::WebhookNotFound => Status::not_found(e.to_string()),
            PartnerError::NotAMember => Status::permission_denied(e.to_string()),
            PartnerError::Db(e) => {
                tracing::error!(error = %e, "partners: database error");
                Status::internal("erreur interne / internal error")
            }
        }
    }
}

fn invalid(field: &'static str, message: &'static str) -> PartnerError {
    PartnerError::Invalid { field, message }
}

fn check_id(field: &'static str, id: &str) -> Result<(), PartnerError> {
    uuid::Uuid::parse_str(id)
        .map(|_| ())
        .map_err(|_| invalid(field, "identifiant invalide / not a valid id"))
}

/// A webhook URL: https, or http to this machine only (127.0.0.0/8, ::1,
/// `localhost`); no credentials inside.
pub fn webhook_url(raw: &str) -> Result<String, PartnerError> {
    const HTTPS: &str = "https obligatoire (http seulement vers la machine locale) / \
                         https required (http only to a loopback address)";
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(invalid("url", "adresse obligatoire / url required"));
    }
    if raw.len() > MAX_URL_LEN {
        return Err(invalid(
            "url",
            "adresse trop longue : 2000 caractères au plus / url too long: at most 2000 characters",
        ));
    }
    let u = url::Url::parse(raw).map_err(|_| invalid("url", "adresse invalide / invalid url"))?;
    if !u.username().is_empty() || u.password().is_some() {
        return Err(invalid(
            "url",
            "pas d'identifiants dans l'adresse : la signature authentifie EVA / \
             no credentials in the url: the signature authenticates EVA",
        ));
    }
    match u.scheme() {
        "https" if u.host().is_some() => {}
        "http" if is_loopback(u.host()) => {}
        _ => return Err(invalid("url", HTTPS)),
    }
    if is_private(u.host()) {
        return Err(invalid(
            "url",
            "adresse de réseau privé refusée / private network address refused",
        ));
    }
    Ok(u.to_string())
}

/// An address literal of a private, link-local or unspecified network: EVA
/// does not call into its own network for a partner. (A name is checked each
/// time it is resolved for a call: [`public_dns`].)
fn is_private(host: Option<url::Host<&str>>) -> bool {
    match host {
        Some(url::Host::Ipv4(ip)) => public_dns::internal(ip.into()),
        Some(url::Host::Ipv6(ip)) => public_dns::internal(ip.into()),
        _ => false,
    }
}

fn is_loopback(host: Option<url::Host<&str>>) -> bool {
    match host {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

fn format_code(field: &'static str, f: i32) -> Result<&'static str, PartnerError> {
    match EventFormat::try_from(f) {
        Ok(EventFormat::Unspecified | EventFormat::Protobuf) => Ok(store::PROTOBUF),
        Ok(EventFormat::Json) => Ok(store::JSON),
        Err(_) => Err(invalid(
            field,
            "format inconnu : protobuf ou json / unknown format: protobuf or json",
        )),
    }
}

fn format_pb(code: &str) -> EventFormat {
    if code == store::JSON {
        EventFormat::Json
    } else {
        EventFormat::Protobuf
    }
}

fn secret_aad(webhook_id: &str) -> Vec<u8> {
    format!("eva:webhook-secret:{webhook_id}").into_bytes()
}

/// A webhook's signing secret, from its sealed form.
pub fn open_secret(kek: &Kek, webhook_id: &str, sealed: &[u8]) -> Result<String, CryptoError> {
    let raw = kek.open(sealed, &secret_aad(webhook_id))?;
    String::from_utf8(raw).map_err(|_| CryptoError::Open)
}

/// Checks the structure is a partner, inside a transaction.
async fn require_partner(tx: &mut Tx, structure_id: &str) -> Result<(), PartnerError> {
    match Store::structure_kind_in(tx, structure_id).await? {
        Some(k) if k == StructureKind::Partner as i32 => Ok(()),
        Some(_) => Err(PartnerError::NotAPartner),
        None => Err(PartnerError::UnknownStructure),
    }
}

/// Registers a webhook for a partner structure (the caller is already
/// authorised); answers it with its secret, which is stored only sealed.
pub async fn register_webhook(
    store: &Store,
    kek: &Kek,
    now_us: i64,
    structure_id: &str,
    url: &str,
    format: i32,
) -> Result<(WebhookRow, String), PartnerError> {
    check_id("structure_id", structure_id)?;
    let url = webhook_url(url)?;
    let format = format_code("format", format)?;
    let mut raw = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    let secret = URL_SAFE_NO_PAD.encode(raw);
    let webhook_id = uuid::Uuid::now_v7().to_string();
    let row = WebhookRow {
        secret_sealed: kek.seal(secret.as_bytes(), &secret_aad(&webhook_id)),
        webhook_id,
        structure_id: structure_id.to_owned(),
        url,
        format: format.to_owned(),
        created_at_us: now_us,
        paused_at_us: None,
    };
    let mut tx = store.db().begin().await?;
    require_partner(&mut tx, structure_id).await?;
    if Store::count_webhooks_in(&mut tx, structure_id).await? >= MAX_WEBHOOKS {
        return Err(PartnerError::TooManyWebhooks);
    }
    Store::insert_webhook(&mut tx, &row).await?;
    tx.commit().await?;
    tracing::info!(webhook_id = %row.webhook_id, structure_id, format, "webhook registered");
    Ok((row, secret))
}

fn webhook_pb(w: &WebhookRow, secret: String) -> pb::Webhook {
    pb::Webhook {
        webhook_id: w.webhook_id.clone(),
        structure_id: w.structure_id.clone(),
        url: w.url.clone(),
        format: format_pb(&w.format) as i32,
        secret,
        created_at: Some(to_timestamp(w.created_at_us)),
        paused_at: w.paused_at_us.map(to_timestamp),
    }
}

fn delivery_status(code: &str) -> DeliveryStatus {
    match code {
        store::PENDING => DeliveryStatus::Pending,
        store::DELIVERED => DeliveryStatus::Delivered,
        store::RETRYING => DeliveryStatus::Retrying,
        store::FAILED => DeliveryStatus::Failed,
        _ => DeliveryStatus::Unspecified,
    }
}

fn delivery_status_code(s: i32) -> Result<Option<&'static str>, PartnerError> {
    match DeliveryStatus::try_from(s) {
        Ok(DeliveryStatus::Unspecified) => Ok(None),
        Ok(DeliveryStatus::Pending) => Ok(Some(store::PENDING)),
        Ok(DeliveryStatus::Delivered) => Ok(Some(store::DELIVERED)),
        Ok(DeliveryStatus::Retrying) => Ok(Some(store::RETRYING)),
        Ok(DeliveryStatus::Failed) => Ok(Some(store::FAILED)),
        Err(_) => Err(invalid(
            "status",
            "état inconnu : pending, delivered, retrying ou failed / unknown status",
        )),
    }
}

fn delivery_pb(d: DeliveryRow) -> pb::WebhookDelivery {
    let status = delivery_status(&d.status);
    let waiting = matches!(status, DeliveryStatus::Pending | DeliveryStatus::Retrying);
    pb::WebhookDelivery {
        delivery_id: d.delivery_id,
        webhook_id: d.webhook_id,
        event_id: d.event_id,
        event_type: d.event_type,
        status: status as i32,
        attempts: i32::try_from(d.attempts).unwrap_or(i32::MAX),
        last_attempt_at: d.last_attempt_at_us.map(to_timestamp),
        next_attempt_at: d.next_attempt_at_us.filter(|_| waiting).map(to_timestamp),
        last_http_status: i32::try_from(d.last_http_status).unwrap_or(0),
        last_error: d.last_error,
    }
}

/// The state behind `PartnerService`.
#[derive(Clone)]
pub struct PartnerApi {
    store: Store,
    kek: Kek,
    clock: Clock,
}

/// `PartnerService`, ready for `GrpcServer::add_service`.
pub fn server(db: Db, kek: Kek, clock: Clock) -> PartnerServiceServer<PartnerApi> {
    PartnerServiceServer::new(PartnerApi {
        store: Store::new(db),
        kek,
        clock,
    })
}

/// Partner or structure admin, member of `structure_id`.
fn authorise<T>(req: &Request<T>, structure_id: &str) -> Result<(), Status> {
    let p = require_role(req, MANAGERS)?;
    if p.belongs_to(structure_id) {
        Ok(())
    } else {
        Err(PartnerError::NotAMember.into())
    }
}

impl PartnerApi {
    /// The webhook, once the caller is known to manage its structure.
    async fn managed_webhook<T>(
        &self,
        req: &Request<T>,
        webhook_id: &str,
    ) -> Result<WebhookRow, Status> {
        require_role(req, MANAGERS)?;
        check_id("webhook_id", webhook_id)?;
        let w = self
            .store
            .webhook(webhook_id)
            .await
            .map_err(PartnerError::from)?
            .ok_or(PartnerError::WebhookNotFound)?;
        authorise(req, &w.structure_id)?;
        Ok(w)
    }

    /// Pauses or resumes a managed webhook (already in that state: as it
    /// is); on resume the worker is woken for what was queued meanwhile.
    async fn set_paused(&self, mut w: WebhookRow, pause: bool) -> Result<WebhookRow, Status> {
        if w.paused_at_us.is_some() == pause {
            return Ok(w);
        }
        let at = pause.then(|| self.clock.now_us());
        let result: Result<bool, PartnerError> = async {
            let mut tx = self.store.db().begin().await?;
            let changed = Store::set_webhook_paused(&mut tx, &w.webhook_id, at).await?;
            tx.commit().await?;
            Ok(changed)
        }
        .await;
        if !result? {
            return Err(PartnerError::WebhookNotFound.into());
        }
        w.paused_at_us = at;
        if !pause {
            wake();
        }
        tracing::info!(webhook_id = %w.webhook_id, structure_id = %w.structure_id, paused = pause, "webhook pause changed");
        Ok(w)
    }

    fn settings_pb(&self, structure_id: &str, row: Option<(String, i64)>) -> pb::PartnerSettings {
        match row {
            Some((format, at)) => pb::PartnerSettings {
                structure_id: structure_id.to_owned(),
                event_format: format_pb(&format) as i32,
                updated_at: Some(to_timestamp(at)),
            },
            None => pb::PartnerSettings {
                structure_id: structure_id.to_owned(),
                event_format: EventFormat::Protobuf as i32,
                updated_at: None,
            },
        }
    }
}

#[tonic::async_trait]
impl PartnerService for PartnerApi {
    async fn get_partner_settings(
        &self,
        req: Request<pb::GetPartnerSettingsRequest>,
    ) -> Result<Response<pb::GetPartnerSettingsResponse>, Status> {
        require_role(&req, MANAGERS)?;
        let id = req.get_ref().structure_id.trim().to_owned();
        check_id("structure_id", &id)?;
        authorise(&req, &id)?;
        let row = self
            .store
            .partner_settings(&id)
            .await
            .map_err(PartnerError::from)?;
        Ok(Response::new(pb::GetPartnerSettingsResponse {
            settings: Some(self.settings_pb(&id, row)),
        }))
    }

    async fn update_partner_settings(
        &self,
        req: Request<pb::UpdatePartnerSettingsRequest>,
    ) -> Result<Response<pb::UpdatePartnerSettingsResponse>, Status> {
        require_role(&req, MANAGERS)?;
        let settings = req
            .get_ref()
            .settings
            .clone()
            .ok_or_else(|| invalid("settings", "réglages manquants / settings missing"))?;
        let id = settings.structure_id.trim().to_owned();
        check_id("settings.structure_id", &id)?;
        authorise(&req, &id)?;
        let format = format_code("settings.event_format", settings.event_format)?;
        let now = self.clock.now_us();
        let result: Result<(), PartnerError> = async {
            let mut tx = self.store.db().begin().await?;
            require_partner(&mut tx, &id).await?;
            Store::set_partner_settings(&mut tx, &id, format, now).await?;
            tx.commit().await?;
            Ok(())
        }
        .await;
        result?;
        tracing::info!(structure_id = %id, format, "partner settings changed");
        Ok(Response::new(pb::UpdatePartnerSettingsResponse {
            settings: Some(self.settings_pb(&id, Some((format.to_owned(), now)))),
        }))
    }

    async fn create_webhook(
        &self,
        req: Request<pb::CreateWebhookRequest>,
    ) -> Result<Response<pb::CreateWebhookResponse>, Status> {
        require_role(&req, MANAGERS)?;
        let r = req.get_ref();
        let id = r.structure_id.trim().to_owned();
        check_id("structure_id", &id)?;
        authorise(&req, &id)?;
        let (row, secret) = register_webhook(
            &self.store,
            &self.kek,
            self.clock.now_us(),
            &id,
            &r.url,
            r.format,
        )
        .await?;
        Ok(Response::new(pb::CreateWebhookResponse {
            webhook: Some(webhook_pb(&row, secret)),
        }))
    }

    async fn list_webhooks(
        &self,
        req: Request<pb::ListWebhooksRequest>,
    ) -> Result<Response<pb::ListWebhooksResponse>, Status> {
        require_role(&req, MANAGERS)?;
        let r = req.get_ref();
        let id = r.structure_id.trim().to_owned();
        check_id("structure_id", &id)?;
        authorise(&req, &id)?;
        let page = Page::parse(r.page_size, &r.page_token)?;
        let rows = self
            .store
            .webhooks_of(&id, page.after.as_deref(), page.fetch_limit())
            .await
            .map_err(PartnerError::from)?;
        let (rows, next_page_token) = page.finish(rows, |w| w.webhook_id.clone());
        Ok(Response::new(pb::ListWebhooksResponse {
            webhooks: rows.iter().map(|w| webhook_pb(w, String::new())).collect(),
            next_page_token,
        }))
    }

    async fn delete_webhook(
        &self,
        req: Request<pb::DeleteWebhookRequest>,
    ) -> Result<Response<pb::DeleteWebhookResponse>, Status> {
        let id = req.get_ref().webhook_id.trim().to_owned();
        let w = self.managed_webhook(&req, &id).await?;
        let result: Result<bool, PartnerError> = async {
            let mut tx = self.store.db().begin().await?;
            let deleted = Store::delete_webhook(&mut tx, &w.webhook_id).await?;
            tx.commit().await?;
            Ok(deleted)
        }
        .await;
        if !result? {
            return Err(PartnerError::WebhookNotFound.into());
        }
        tracing::info!(webhook_id = %w.webhook_id, structure_id = %w.structure_id, "webhook deleted");
        Ok(Response::new(pb::DeleteWebhookResponse {}))
    }

    async fn pause_webhook(
        &self,
        req: Request<pb::PauseWebhookRequest>,
    ) -> Result<Response<pb::PauseWebhookResponse>, Status> {
        let id = req.get_ref().webhook_id.trim().to_owned();
        let w = self.managed_webhook(&req, &id).await?;
        let w = self.set_paused(w, true).await?;
        Ok(Response::new(pb::PauseWebhookResponse {
            webhook: Some(webhook_pb(&w, String::new())),
        }))
    }

    async fn resume_webhook(
        &self,
        req: Request<pb::ResumeWebhookRequest>,
    ) -> Result<Response<pb::ResumeWebhookResponse>, Status> {
        let id = req.get_ref().webhook_id.trim().to_owned();
        let w = self.managed_webhook(&req, &id).await?;
        let w = self.set_paused(w, false).await?;
        Ok(Response::new(pb::ResumeWebhookResponse {
            webhook: Some(webhook_pb(&w, String::new())),
        }))
    }

    async fn list_webhook_deliveries(
        &self,
        req: Request<pb::ListWebhookDeliveriesRequest>,
    ) -> Result<Response<pb::ListWebhookDeliveriesResponse>, Status> {
        let id = req.get_ref().webhook_id.trim().to_owned();
        let w = self.managed_webhook(&req, &id).await?;
        let r = req.get_ref();
        let status = delivery_status_code(r.status)?;
        let page = Page::parse(r.page_size, &r.page_token)?;
        let rows = self
            .store
            .deliveries_of(
                &w.webhook_id,
                status,
                page.after.as_deref(),
                page.fetch_limit(),
            )
            .await
            .map_err(PartnerError::from)?;
        let (rows, next_page_token) = page.finish(rows, |d| d.delivery_id.clone());
        Ok(Response::new(pb::ListWebhookDeliveriesResponse {
            deliveries: rows.into_iter().map(delivery_pb).collect(),
            next_page_token,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_urls_are_https_or_loopback_http() {
        for ok in [
            "https://partner.example/hooks/eva",
            "https://partner.example:8443/h?token=x",
            "http://127.0.0.1:8080/h",
            "http://127.9.9.9/h",
            "http://localhost:3000/",
            "http://[::1]:3000/h",
            "  https://p.example/h  ",
            "https://127.0.0.1:8443/h",
            "https://203.0.113.7/h",
        ] {
            assert!(webhook_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "partner.example/h",
            "http://partner.example/h",
            "http://10.0.0.1/h",
            "http://[::2]/h",
            "ftp://partner.example/h",
            "https://user:pw@partner.example/h",
            "javascript:alert(1)",
            "https://10.1.2.3/h",
            "https://192.168.1.10/h",
            "https://169.254.169.254/latest/meta-data",
            "https://0.0.0.0/h",
            "https://[fd00::1]/h",
            "https://[fe80::1]/h",
            "https://[::ffff:10.0.0.1]/h",
        ] {
            match webhook_url(bad) {
                Err(PartnerError::Invalid { field, .. }) => assert_eq!(field, "url", "{bad}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
        let long = format!("https://p.example/{}", "a".repeat(MAX_URL_LEN));
        assert!(webhook_url(&long).is_err());
    }

    #[test]
    fn formats_and_statuses_map_both_ways() {
        assert_eq!(format_code("f", 0).unwrap(), store::PROTOBUF);
        assert_eq!(format_code("f", 1).unwrap(), store::PROTOBUF);
        assert_eq!(format_code("f", 2).unwrap(), store::JSON);
        assert!(format_code("f", 9).is_err());
        assert_eq!(format_pb(store::JSON), EventFormat::Json);
        for s in [
            store::PENDING,
            store::DELIVERED,
            store::RETRYING,
            store::FAILED,
        ] {
            let n = delivery_status(s) as i32;
            assert_eq!(delivery_status_code(n).unwrap(), Some(s));
        }
        assert_eq!(delivery_status_code(0).unwrap(), None);
        assert!(delivery_status_code(17).is_err());
    }

    #[test]
    fn secrets_open_only_for_their_webhook() {
        let kek = Kek::from_base64(&Kek::generate_base64()).unwrap();
        let sealed = kek.seal(b"s3cret", &secret_aad("w1"));
        assert_eq!(open_secret(&kek, "w1", &sealed).unwrap(), "s3cret");
        assert!(open_secret(&kek, "w2", &sealed).is_err());
    }
}
