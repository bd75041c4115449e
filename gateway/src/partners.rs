//! `/structures/{id}/partner-settings` and `/structures/{id}/webhooks`: how
//! a partner structure receives the referral events addressed to it (the
//! body format of its NATS events, its signed webhooks and their
//! deliveries). Referrals' `PartnerService` decides who may.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use eva_proto::referrals::v1 as pb;
use eva_proto::referrals::v1::partner_service_client::PartnerServiceClient;
use eva_proto::referrals::v1::{DeliveryStatus, EventFormat};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::json::{PageQuery, code, empty_answer, non_empty, when};
use crate::structures::Page;
use crate::{AppState, Problem};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_settings, update_settings))
        .routes(routes!(list, create))
        .routes(routes!(remove))
        .routes(routes!(deliveries))
        .routes(routes!(pause))
        .routes(routes!(resume))
}

const TAG: &str = "Partenaires";

/// A partner's delivery settings.
#[derive(Debug, Serialize, ToSchema)]
pub struct SettingsJson {
    pub structure_id: String,
    /// `protobuf` or `json`.
    pub event_format: &'static str,
    /// Unset while the defaults apply.
    pub updated_at: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSettings {
    /// `protobuf` or `json`.
    pub event_format: String,
}

/// A webhook; `secret` only in the answer that creates it.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookJson {
    pub id: String,
    pub structure_id: String,
    pub url: String,
    /// `protobuf` or `json`.
    pub format: &'static str,
    /// The signing secret, given once: only in the answer that creates the webhook.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    pub created_at: Option<String>,
    /// `active`, or `paused` (events are kept for it and sent, in order, on resume).
    pub status: &'static str,
    /// Since when it is paused; absent while active.
    pub paused_at: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    pub url: String,
    /// `protobuf` (default) or `json`.
    #[serde(default)]
    pub format: Option<String>,
}

/// One event's delivery to a webhook.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryJson {
    pub id: String,
    pub webhook_id: String,
    pub event_id: String,
    pub event_type: String,
    /// `pending`, `delivered`, `retrying`, `failed`.
    pub status: Option<String>,
    pub attempts: i32,
    pub last_attempt_at: Option<String>,
    pub next_attempt_at: Option<String>,
    /// HTTP status of the last attempt; absent when there was no answer.
    pub last_http_status: Option<i32>,
    pub last_error: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeliveriesQuery {
    /// Éléments par page : par défaut 50, au plus 500 / items per page: 50 by default, at most 500.
    #[serde(default)]
    pub page_size: i32,
    /// `next_page_token` de la page précédente / the previous page's `next_page_token`.
    #[serde(default)]
    pub page_token: String,
    /// `pending`, `delivered`, `retrying` or `failed`; all when absent.
    #[serde(default)]
    pub status: Option<String>,
}

fn client(state: &AppState) -> PartnerServiceClient<tonic::transport::Channel> {
    PartnerServiceClient::new(state.upstreams.referrals.clone())
}

fn format_name(f: i32) -> &'static str {
    if f == EventFormat::Json as i32 {
        "json"
    } else {
        "protobuf"
    }
}

fn format_from_json(field: &str, s: &str) -> Result<EventFormat, Problem> {
    match s.trim() {
        "protobuf" => Ok(EventFormat::Protobuf),
        "json" => Ok(EventFormat::Json),
        _ => Err(Problem::invalid(
            field,
            "format inconnu : protobuf ou json / unknown format: protobuf or json",
        )),
    }
}

fn status_from_json(s: Option<&str>) -> Result<i32, Problem> {
    match s.map(str::trim) {
        None | Some("") => Ok(DeliveryStatus::Unspecified as i32),
        Some(s) => DeliveryStatus::from_str_name(&format!("DELIVERY_STATUS_{}", s.to_uppercase()))
            .filter(|s| *s != DeliveryStatus::Unspecified)
            .map(|s| s as i32)
            .ok_or_else(|| {
                Problem::invalid(
                    "status",
                    "état inconnu : pending, delivered, retrying ou failed / unknown status",
                )
            }),
    }
}

fn status_name(s: i32) -> Option<String> {
    DeliveryStatus::try_from(s)
        .ok()
        .and_then(|s| code(s.as_str_name(), "DELIVERY_STATUS_"))
}

impl From<pb::PartnerSettings> for SettingsJson {
    fn from(s: pb::PartnerSettings) -> Self {
        Self {
            structure_id: s.structure_id,
            event_format: format_name(s.event_format),
            updated_at: when(s.updated_at),
        }
    }
}

impl From<pb::Webhook> for WebhookJson {
    fn from(w: pb::Webhook) -> Self {
        Self {
            id: w.webhook_id,
            structure_id: w.structure_id,
            url: w.url,
            format: format_name(w.format),
            secret: non_empty(w.secret),
            created_at: when(w.created_at),
            status: if w.paused_at.is_some() {
                "paused"
            } else {
                "active"
            },
            paused_at: when(w.paused_at),
        }
    }
}

impl From<pb::WebhookDelivery> for DeliveryJson {
    fn from(d: pb::WebhookDelivery) -> Self {
        Self {
            id: d.delivery_id,
            webhook_id: d.webhook_id,
            event_id: d.event_id,
            event_type: d.event_type,
            status: status_name(d.status),
            attempts: d.attempts,
            last_attempt_at: when(d.last_attempt_at),
            next_attempt_at: when(d.next_attempt_at),
            last_http_status: Some(d.last_http_status).filter(|s| *s != 0),
            last_error: non_empty(d.last_error),
        }
    }
}

/// Réglages de réception d'un partenaire / A partner's delivery settings
#[utoipa::path(get, path = "/structures/{id}/partner-settings", tag = TAG, params(("id" = String, Path, description = "La structure partenaire (UUIDv7) / the partner structure")),
    responses((status = 200, description = "Les réglages / The settings", body = SettingsJson)))]
async fn get_settings(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<SettingsJson>, Problem> {
    let req = state
        .upstreams
        .request(&headers, pb::GetPartnerSettingsRequest { structure_id: id });
    let r = client(&state).get_partner_settings(req).await?.into_inner();
    Ok(Json(r.settings.ok_or_else(empty_answer)?.into()))
}

/// Choisir le format des événements / Choose the events' format
///
/// Le corps des événements NATS du partenaire : `protobuf` ou `json`. / The body format of
/// the partner's NATS events: `protobuf` or `json`.
#[utoipa::path(patch, path = "/structures/{id}/partner-settings", tag = TAG, params(("id" = String, Path, description = "La structure partenaire (UUIDv7) / the partner structure")),
    request_body = UpdateSettings,
    responses((status = 200, description = "Les réglages / The settings", body = SettingsJson)))]
async fn update_settings(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<UpdateSettings>, JsonRejection>,
) -> Result<Json<SettingsJson>, Problem> {
    let Json(body) = body?;
    let format = format_from_json("event_format", &body.event_format)?;
    let req = state.upstreams.request(
        &headers,
        pb::UpdatePartnerSettingsRequest {
            settings: Some(pb::PartnerSettings {
                structure_id: id,
                event_format: format as i32,
                updated_at: None,
            }),
        },
    );
    let r = client(&state)
        .update_partner_settings(req)
        .await?
        .into_inner();
    Ok(Json(r.settings.ok_or_else(empty_answer)?.into()))
}

/// Déclarer un webhook / Register a webhook
///
/// Les événements d'orientation adressés à la structure y sont envoyés, signés ; le secret
/// de signature n'est donné qu'une fois, dans cette réponse. / The referral events addressed
/// to the structure are sent there, signed; the signing secret is given once, in this answer.
#[utoipa::path(post, path = "/structures/{id}/webhooks", tag = TAG, params(("id" = String, Path, description = "La structure partenaire (UUIDv7) / the partner structure")),
    request_body = CreateWebhook,
    responses((status = 201, description = "Le webhook, avec son secret / The webhook, with its secret", body = WebhookJson)))]
async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<CreateWebhook>, JsonRejection>,
) -> Result<(StatusCode, Json<WebhookJson>), Problem> {
    let Json(body) = body?;
    let format = match body.format.as_deref() {
        None => EventFormat::Unspecified,
        Some(f) => format_from_json("format", f)?,
    };
    let req = state.upstreams.request(
        &headers,
        pb::CreateWebhookRequest {
            structure_id: id,
            url: body.url,
            format: format as i32,
        },
    );
    let r = client(&state).create_webhook(req).await?.into_inner();
    Ok((
        StatusCode::CREATED,
        Json(r.webhook.ok_or_else(empty_answer)?.into()),
    ))
}

/// Les webhooks d'une structure / A structure's webhooks
#[utoipa::path(get, path = "/structures/{id}/webhooks", tag = TAG, params(("id" = String, Path, description = "La structure partenaire (UUIDv7) / the partner structure"), PageQuery),
    responses((status = 200, description = "Une page de webhooks, sans secret / One page of webhooks, without secret", body = Page<WebhookJson>)))]
async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<Page<WebhookJson>>, Problem> {
    let Query(q) = query?;
    let req = state.upstreams.request(
        &headers,
        pb::ListWebhooksRequest {
            page_size: q.page_size,
            page_token: q.page_token,
            structure_id: id,
        },
    );
    let r = client(&state).list_webhooks(req).await?.into_inner();
    Ok(Json(Page {
        items: r.webhooks.into_iter().map(Into::into).collect(),
        next_page_token: non_empty(r.next_page_token),
    }))
}

/// The webhook, if it is one of the structure's in the path (the service
/// knows a webhook by its id alone; the path must not name another
/// structure). The listing also checks the caller may manage it.
async fn check_belongs(
    state: &AppState,
    headers: &HeaderMap,
    structure_id: &str,
    webhook_id: &str,
) -> Result<(), Problem> {
    let mut page_token = String::new();
    loop {
        let req = state.upstreams.request(
            headers,
            pb::ListWebhooksRequest {
                page_size: 0,
                page_token,
                structure_id: structure_id.to_owned(),
            },
        );
        let r = client(state).list_webhooks(req).await?.into_inner();
        if r.webhooks.iter().any(|w| w.webhook_id == webhook_id) {
            return Ok(());
        }
        if r.next_page_token.is_empty() {
            return Err(Problem::not_found(
                "webhook introuvable / webhook not found",
            ));
        }
        page_token = r.next_page_token;
    }
}

/// Supprimer un webhook / Delete a webhook
#[utoipa::path(delete, path = "/structures/{id}/webhooks/{webhook_id}", tag = TAG, params(("id" = String, Path, description = "La structure partenaire (UUIDv7) / the partner structure"), ("webhook_id" = String, Path, description = "Le webhook (UUIDv7) / the webhook")),
    responses((status = 204, description = "Supprimé / Deleted")))]
async fn remove(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, webhook_id)): Path<(String, String)>,
) -> Result<StatusCode, Problem> {
    check_belongs(&state, &headers, &id, &webhook_id).await?;
    let req = state
        .upstreams
        .request(&headers, pb::DeleteWebhookRequest { webhook_id });
    client(&state).delete_webhook(req).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Mettre un webhook en pause / Pause a webhook
///
/// Plus aucun envoi vers son adresse tant qu'il est en pause ; son adresse et son secret
/// restent. Les événements survenus pendant la pause ne sont pas perdus : ils attendent
/// (état `pending` dans les envois) et partent dans l'ordre à la reprise. / No more calls to
/// its URL while it is paused; its URL and secret stay. Events that happen during the pause
/// are not dropped: they wait (state `pending` in the deliveries) and are sent in order on
/// resume.
#[utoipa::path(post, path = "/structures/{id}/webhooks/{webhook_id}/pause", tag = TAG, params(("id" = String, Path, description = "La structure partenaire (UUIDv7) / the partner structure"), ("webhook_id" = String, Path, description = "Le webhook (UUIDv7) / the webhook")),
    responses((status = 200, description = "Le webhook, en pause / The webhook, paused", body = WebhookJson)))]
async fn pause(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, webhook_id)): Path<(String, String)>,
) -> Result<Json<WebhookJson>, Problem> {
    check_belongs(&state, &headers, &id, &webhook_id).await?;
    let req = state
        .upstreams
        .request(&headers, pb::PauseWebhookRequest { webhook_id });
    let r = client(&state).pause_webhook(req).await?.into_inner();
    Ok(Json(r.webhook.ok_or_else(empty_answer)?.into()))
}

/// Reprendre un webhook / Resume a webhook
///
/// Les événements gardés pendant la pause partent d'abord, dans l'ordre, puis les nouveaux.
/// / The events kept during the pause are sent first, in order, then the new ones.
#[utoipa::path(post, path = "/structures/{id}/webhooks/{webhook_id}/resume", tag = TAG, params(("id" = String, Path, description = "La structure partenaire (UUIDv7) / the partner structure"), ("webhook_id" = String, Path, description = "Le webhook (UUIDv7) / the webhook")),
    responses((status = 200, description = "Le webhook, actif / The webhook, active", body = WebhookJson)))]
async fn resume(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, webhook_id)): Path<(String, String)>,
) -> Result<Json<WebhookJson>, Problem> {
    check_belongs(&state, &headers, &id, &webhook_id).await?;
    let req = state
        .upstreams
        .request(&headers, pb::ResumeWebhookRequest { webhook_id });
    let r = client(&state).resume_webhook(req).await?.into_inner();
    Ok(Json(r.webhook.ok_or_else(empty_answer)?.into()))
}

/// Les envois d'un webhook / A webhook's deliveries
///
/// Chaque événement envoyé, ses tentatives et leur résultat. / Each event sent, its attempts
/// and their outcome.
#[utoipa::path(get, path = "/structures/{id}/webhooks/{webhook_id}/deliveries", tag = TAG, params(("id" = String, Path, description = "La structure partenaire (UUIDv7) / the partner structure"), ("webhook_id" = String, Path, description = "Le webhook (UUIDv7) / the webhook"), DeliveriesQuery),
    responses((status = 200, description = "Une page d'envois / One page of deliveries", body = Page<DeliveryJson>)))]
async fn deliveries(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, webhook_id)): Path<(String, String)>,
    query: Result<Query<DeliveriesQuery>, QueryRejection>,
) -> Result<Json<Page<DeliveryJson>>, Problem> {
    let Query(q) = query?;
    let status = status_from_json(q.status.as_deref())?;
    check_belongs(&state, &headers, &id, &webhook_id).await?;
    let req = state.upstreams.request(
        &headers,
        pb::ListWebhookDeliveriesRequest {
            page_size: q.page_size,
            page_token: q.page_token,
            webhook_id,
            status,
        },
    );
    let r = client(&state)
        .list_webhook_deliveries(req)
        .await?
        .into_inner();
    Ok(Json(Page {
        items: r.deliveries.into_iter().map(Into::into).collect(),
        next_page_token: non_empty(r.next_page_token),
    }))
}
