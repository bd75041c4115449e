//! The community's moderation, notifications and check-ins:
//! `/notifications` (list), `/notifications/read`, `/notifications/preferences`
//! (get, patch), `/notifications/stream` (server-sent events: the caller's new
//! notifications live, with keep-alive), `/community/reports`,
//! `/community/moderation` (hide, restore), `/community/moderation-log` and
//! `/community/checkins`. Kinds are codes: `reply`, `mention`, `new_solution`,
//! `answer_accepted`; frequencies `immediately`, `daily_digest`, `never`; posts
//! `question`, `answer`, `solution`.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use eva_proto::community::v1 as pb;
use eva_proto::community::v1::checkin_service_client::CheckinServiceClient;
use eva_proto::community::v1::moderation_service_client::ModerationServiceClient;
use eva_proto::community::v1::notification_service_client::NotificationServiceClient;
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::json::{code, empty_answer, non_empty, when};
use crate::structures::Page;
use crate::{AppState, Problem};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(mark_read))
        .routes(routes!(preferences, update_preferences))
        .routes(routes!(stream))
        .routes(routes!(report))
        .routes(routes!(moderate))
        .routes(routes!(moderation_log))
        .routes(routes!(checkin))
}

const NOTIFICATIONS: &str = "Notifications";
const MODERATION: &str = "Modération";
const CHECKINS: &str = "Qualité de vie au travail";

const KINDS: &str = "reply, mention, new_solution, answer_accepted";
const FREQUENCIES: &str = "immediately, daily_digest, never";
const CONTENT_KINDS: &str = "question, answer, solution";

/// How often the stream says it is alive when nothing happens.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationJson {
    pub id: String,
    pub user_id: String,
    /// `reply`, `mention`, `new_solution` or `answer_accepted`.
    pub kind: Option<String>,
    /// The post it is about: `question`, `answer` or `solution`.
    pub content_kind: Option<String>,
    pub content_id: Option<String>,
    /// The question the post belongs to, for a question or an answer.
    pub question_id: Option<String>,
    pub created_at: Option<String>,
    /// Absent while unread.
    pub read_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationPage {
    pub items: Vec<NotificationJson>,
    pub next_page_token: Option<String>,
    /// The caller's unread notifications, all pages.
    pub unread_count: i32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PreferencesJson {
    /// Kind code (`reply`, `mention`, `new_solution`, `answer_accepted`) → frequency code
    /// (`immediately`, `daily_digest`, `never`).
    pub preferences: BTreeMap<String, String>,
    pub followed_domains: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LogEntryJson {
    pub id: String,
    /// `question`, `answer` or `solution`.
    pub content_kind: Option<String>,
    pub content_id: Option<String>,
    /// `report`, `hide` or `restore`.
    pub action: Option<String>,
    /// Absent once the actor's account is deleted.
    pub actor_user_id: Option<String>,
    pub reason: String,
    pub occurred_at: Option<String>,
    /// The question the post belongs to (itself, or an answer's); absent for a sheet.
    pub question_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MarkedJson {
    /// How many notifications were marked read.
    pub marked: i32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CheckinJson {
    /// The month answered, `YYYY-MM`.
    pub month: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Éléments par page : par défaut 50, au plus 500 / items per page: 50 by default, at most 500.
    #[serde(default)]
    pub page_size: i32,
    /// `next_page_token` de la page précédente / the previous page's `next_page_token`.
    #[serde(default)]
    pub page_token: String,
    /// Only the notifications not read yet.
    #[serde(default)]
    pub unread_only: bool,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    /// Éléments par page : par défaut 50, au plus 500 / items per page: 50 by default, at most 500.
    #[serde(default)]
    pub page_size: i32,
    /// `next_page_token` de la page précédente / the previous page's `next_page_token`.
    #[serde(default)]
    pub page_token: String,
    /// One space the caller moderates; when absent, all those the caller moderates.
    #[serde(default)]
    pub space_id: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MarkRead {
    /// The notifications to mark read.
    #[serde(default)]
    pub notification_ids: Vec<String>,
    /// All the caller's notifications.
    #[serde(default)]
    pub all: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreferencesPatch {
    /// Kind code → frequency code; kinds not listed keep their setting.
    #[serde(default)]
    pub preferences: BTreeMap<String, String>,
    /// Replaces the followed domains when present.
    #[serde(default)]
    pub followed_domains: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewReport {
    /// `question`, `answer` or `solution`.
    pub content_kind: String,
    pub content_id: String,
    pub reason: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewModeration {
    /// `question`, `answer` or `solution`.
    pub content_kind: String,
    pub content_id: String,
    /// `hide` or `restore`.
    pub action: String,
    pub reason: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCheckin {
    /// 1 to 5.
    pub workload: i32,
    /// 1 to 5.
    pub isolation: i32,
    /// 1 to 5.
    pub support: i32,
}

fn kind_code(k: i32) -> Option<String> {
    pb::NotificationKind::try_from(k)
        .ok()
        .and_then(|k| code(k.as_str_name(), "NOTIFICATION_KIND_"))
}

fn content_code(k: i32) -> Option<String> {
    pb::ContentKind::try_from(k)
        .ok()
        .and_then(|k| code(k.as_str_name(), "CONTENT_KIND_"))
}

fn content_ref(kind: &str, id: String) -> Result<pb::ContentRef, Problem> {
    let k = pb::ContentKind::from_str_name(&format!("CONTENT_KIND_{}", kind.trim().to_uppercase()))
        .filter(|k| *k != pb::ContentKind::Unspecified)
        .ok_or_else(|| {
            Problem::invalid(
                "content_kind",
                format!(
                    "type inconnu « {kind} » ; types possibles : {CONTENT_KINDS} / unknown kind"
                ),
            )
        })?;
    Ok(pb::ContentRef {
        kind: k as i32,
        content_id: id,
    })
}

impl From<pb::Notification> for NotificationJson {
    fn from(n: pb::Notification) -> Self {
        let content = n.content.unwrap_or_default();
        Self {
            id: n.notification_id,
            user_id: n.user_id,
            kind: kind_code(n.kind),
            content_kind: content_code(content.kind),
            content_id: non_empty(content.content_id),
            question_id: non_empty(n.question_id),
            created_at: when(n.created_at),
            read_at: when(n.read_at),
        }
    }
}

impl From<pb::ModerationLogEntry> for LogEntryJson {
    fn from(e: pb::ModerationLogEntry) -> Self {
        let content = e.content.unwrap_or_default();
        Self {
            id: e.entry_id,
            content_kind: content_code(content.kind),
            content_id: non_empty(content.content_id),
            action: pb::ModerationAction::try_from(e.action)
                .ok()
                .and_then(|a| code(a.as_str_name(), "MODERATION_ACTION_")),
            actor_user_id: non_empty(e.actor_user_id),
            reason: e.reason,
            occurred_at: when(e.occurred_at),
            question_id: non_empty(e.question_id),
        }
    }
}

fn preferences_json(
    prefs: Vec<pb::NotificationPreference>,
    followed_domains: Vec<String>,
) -> PreferencesJson {
    PreferencesJson {
        preferences: prefs
            .into_iter()
            .filter_map(|p| {
                let kind = kind_code(p.kind)?;
                let freq = pb::NotificationFrequency::try_from(p.frequency)
                    .ok()
                    .and_then(|f| code(f.as_str_name(), "NOTIFICATION_FREQUENCY_"))
                    .unwrap_or_else(|| "immediately".into());
                Some((kind, freq))
            })
            .collect(),
        followed_domains,
    }
}

fn notifications(state: &AppState) -> NotificationServiceClient<tonic::transport::Channel> {
    NotificationServiceClient::new(state.upstreams.community.clone())
}

fn moderation(state: &AppState) -> ModerationServiceClient<tonic::transport::Channel> {
    ModerationServiceClient::new(state.upstreams.community.clone())
}

/// Mes notifications / My notifications
///
/// Les plus récentes d'abord, avec le nombre de non lues. / Newest first, with the unread count.
#[utoipa::path(get, path = "/notifications", tag = NOTIFICATIONS, params(ListQuery),
    responses((status = 200, description = "Une page / One page", body = NotificationPage)))]
async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<NotificationPage>, Problem> {
    let Query(q) = query?;
    let req = state.upstreams.request(
        &headers,
        pb::ListNotificationsRequest {
            page_size: q.page_size,
            page_token: q.page_token,
            unread_only: q.unread_only,
        },
    );
    let r = notifications(&state)
        .list_notifications(req)
        .await?
        .into_inner();
    Ok(Json(NotificationPage {
        items: r.notifications.into_iter().map(Into::into).collect(),
        next_page_token: non_empty(r.next_page_token),
        unread_count: r.unread_count,
    }))
}

/// Marquer des notifications lues / Mark notifications read
///
/// Celles de `notification_ids`, ou toutes avec `all`. / Those of `notification_ids`, or all
/// with `all`.
#[utoipa::path(post, path = "/notifications/read", tag = NOTIFICATIONS, request_body = MarkRead,
    responses((status = 200, description = "Combien / How many", body = MarkedJson)))]
async fn mark_read(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<MarkRead>, JsonRejection>,
) -> Result<Json<MarkedJson>, Problem> {
    let Json(b) = body?;
    let req = state.upstreams.request(
        &headers,
        pb::MarkNotificationsReadRequest {
            notification_ids: b.notification_ids,
            all: b.all,
        },
    );
    let r = notifications(&state)
        .mark_notifications_read(req)
        .await?
        .into_inner();
    Ok(Json(MarkedJson { marked: r.marked }))
}

/// Mes préférences de notification / My notification preferences
#[utoipa::path(get, path = "/notifications/preferences", tag = NOTIFICATIONS,
    responses((status = 200, description = "Les préférences / The preferences", body = PreferencesJson)))]
async fn preferences(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<PreferencesJson>, Problem> {
    let req = state
        .upstreams
        .request(&headers, pb::GetNotificationPreferencesRequest {});
    let r = notifications(&state)
        .get_notification_preferences(req)
        .await?
        .into_inner();
    Ok(Json(preferences_json(r.preferences, r.followed_domains)))
}

/// Changer mes préférences de notification / Change my notification preferences
#[utoipa::path(patch, path = "/notifications/preferences", tag = NOTIFICATIONS,
    request_body = PreferencesPatch,
    responses((status = 200, description = "Les préférences / The preferences", body = PreferencesJson)))]
async fn update_preferences(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<PreferencesPatch>, JsonRejection>,
) -> Result<Json<PreferencesJson>, Problem> {
    let Json(b) = body?;
    let mut prefs = Vec::new();
    for (kind, freq) in &b.preferences {
        let field = format!("preferences.{kind}");
        let k = pb::NotificationKind::from_str_name(&format!(
            "NOTIFICATION_KIND_{}",
            kind.trim().to_uppercase()
        ))
        .filter(|k| *k != pb::NotificationKind::Unspecified)
        .ok_or_else(|| {
            Problem::invalid(
                &field,
                format!("type inconnu « {kind} » ; types possibles : {KINDS} / unknown kind"),
            )
        })?;
        let f = pb::NotificationFrequency::from_str_name(&format!(
            "NOTIFICATION_FREQUENCY_{}",
            freq.trim().to_uppercase()
        ))
        .filter(|f| *f != pb::NotificationFrequency::Unspecified)
        .ok_or_else(|| {
            Problem::invalid(
                &field,
                format!(
                    "fréquence inconnue « {freq} » ; fréquences possibles : {FREQUENCIES} / unknown frequency"
                ),
            )
        })?;
        prefs.push(pb::NotificationPreference {
            kind: k as i32,
            frequency: f as i32,
        });
    }
    let replace = b.followed_domains.is_some();
    let req = state.upstreams.request(
        &headers,
        pb::UpdateNotificationPreferencesRequest {
            preferences: prefs,
            followed_domains: b.followed_domains.unwrap_or_default(),
            replace_followed_domains: replace,
        },
    );
    let r = notifications(&state)
        .update_notification_preferences(req)
        .await?
        .into_inner();
    Ok(Json(preferences_json(r.preferences, r.followed_domains)))
}

/// Mes notifications en direct / My notifications live
///
/// Événements serveur (SSE) : d'abord `ready` quand l'écoute commence, puis un événement
/// `notification` (données : une notification en JSON, `id` : son identifiant) par nouvelle
/// notification ; un commentaire toutes les 15 s garde la connexion. / Server-sent events:
/// first `ready` once listening, then one `notification` event (data: the notification as
/// JSON, `id`: its id) each; a comment every 15 s keeps the connection alive.
#[utoipa::path(get, path = "/notifications/stream", tag = NOTIFICATIONS,
    responses((status = 200, description = "Le flux `text/event-stream` / The `text/event-stream` feed", body = String, content_type = "text/event-stream")))]
async fn stream(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Problem> {
    let mut req = state
        .upstreams
        .request(&headers, pb::WatchNotificationsRequest {});
    // A live feed has no deadline: it lasts as long as the client stays.
    req.metadata_mut().remove("grpc-timeout");
    let upstream = notifications(&state)
        .watch_notifications(req)
        .await?
        .into_inner();
    let ready = futures::stream::once(async { Event::default().event("ready").data("{}") });
    let items = upstream
        .take_while(|r| {
            if let Err(e) = r {
                tracing::debug!(code = ?e.code(), "notification stream ended");
            }
            futures::future::ready(r.is_ok())
        })
        .filter_map(|r| async move {
            let n = r.ok()?;
            let id = n.notification_id.clone();
            Event::default()
                .event("notification")
                .id(id)
                .json_data(NotificationJson::from(n))
                .ok()
        });
    Ok(Sse::new(ready.chain(items).map(Ok)).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

/// Signaler une publication / Report a post
#[utoipa::path(post, path = "/community/reports", tag = MODERATION, request_body = NewReport,
    responses((status = 201, description = "Le signalement au journal / The report in the log", body = LogEntryJson),
        (status = 409, description = "Vous l'avez déjà signalée / You already reported it", body = Problem, content_type = "application/problem+json")))]
async fn report(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<NewReport>, JsonRejection>,
) -> Result<(StatusCode, Json<LogEntryJson>), Problem> {
    let Json(b) = body?;
    let content = content_ref(&b.content_kind, b.content_id)?;
    let req = state.upstreams.request(
        &headers,
        pb::ReportContentRequest {
            content: Some(content),
            reason: b.reason,
        },
    );
    let r = moderation(&state).report_content(req).await?.into_inner();
    Ok((
        StatusCode::CREATED,
        Json(r.entry.ok_or_else(empty_answer)?.into()),
    ))
}

/// Masquer ou rétablir une publication / Hide or restore a post
///
/// Par les modérateurs de son espace (une fiche : ceux de l'espace thématique de ses
/// domaines). / By the moderators of its space (a sheet: those of its domains' theme space).
#[utoipa::path(post, path = "/community/moderation", tag = MODERATION, request_body = NewModeration,
    responses((status = 201, description = "L'entrée du journal / The log entry", body = LogEntryJson)))]
async fn moderate(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<NewModeration>, JsonRejection>,
) -> Result<(StatusCode, Json<LogEntryJson>), Problem> {
    let Json(b) = body?;
    let content = content_ref(&b.content_kind, b.content_id)?;
    let action = match b.action.trim() {
        "hide" => pb::ModerationAction::Hide,
        "restore" => pb::ModerationAction::Restore,
        other => {
            return Err(Problem::invalid(
                "action",
                format!("action inconnue « {other} » : hide ou restore / unknown action"),
            ));
        }
    };
    let req = state.upstreams.request(
        &headers,
        pb::ModerateContentRequest {
            content: Some(content),
            action: action as i32,
            reason: b.reason,
        },
    );
    let r = moderation(&state).moderate_content(req).await?.into_inner();
    Ok((
        StatusCode::CREATED,
        Json(r.entry.ok_or_else(empty_answer)?.into()),
    ))
}

/// Journal de modération / Moderation log
///
/// Celui des espaces que vous modérez (tous pour un opérateur), le plus récent d'abord. /
/// That of the spaces you moderate (all for an operator), newest first.
#[utoipa::path(get, path = "/community/moderation-log", tag = MODERATION, params(LogQuery),
    responses((status = 200, description = "Une page / One page", body = Page<LogEntryJson>)))]
async fn moderation_log(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<LogQuery>, QueryRejection>,
) -> Result<Json<Page<LogEntryJson>>, Problem> {
    let Query(q) = query?;
    let req = state.upstreams.request(
        &headers,
        pb::ListModerationLogRequest {
            page_size: q.page_size,
            page_token: q.page_token,
            space_id: q.space_id,
        },
    );
    let r = moderation(&state)
        .list_moderation_log(req)
        .await?
        .into_inner();
    Ok(Json(Page {
        items: r.entries.into_iter().map(Into::into).collect(),
        next_page_token: non_empty(r.next_page_token),
    }))
}

/// Répondre au point mensuel / Answer the monthly check-in
///
/// Anonyme : les réponses partent avec le mois et le département, aucune note n'est gardée
/// par personne ; une fois par mois. / Anonymous: the answers leave with the month and the
/// département, no one's scores are kept; once a month.
#[utoipa::path(post, path = "/community/checkins", tag = CHECKINS, request_body = NewCheckin,
    responses((status = 201, description = "Enregistré / Recorded", body = CheckinJson),
        (status = 409, description = "Déjà répondu ce mois-ci / Already answered this month", body = Problem, content_type = "application/problem+json")))]
async fn checkin(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<NewCheckin>, JsonRejection>,
) -> Result<(StatusCode, Json<CheckinJson>), Problem> {
    let Json(b) = body?;
    let req = state.upstreams.request(
        &headers,
        pb::SubmitCheckinRequest {
            checkin: Some(pb::Checkin {
                workload: b.workload,
                isolation: b.isolation,
                support: b.support,
            }),
        },
    );
    let r = CheckinServiceClient::new(state.upstreams.community.clone())
        .submit_checkin(req)
        .await
        .map_err(|s| {
            // The body is flat: `checkin.workload` is `workload` here.
            let mut p = Problem::from(s);
            for e in &mut p.errors {
                if let Some(f) = e.field.strip_prefix("checkin.") {
                    e.field = f.to_owned();
                }
            }
            p
        })?
        .into_inner();
    Ok((StatusCode::CREATED, Json(CheckinJson { month: r.month })))
}
