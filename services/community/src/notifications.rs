//! Notifications: the idempotent consumer `community-notifications` turns the
//! content events of `EVA_COMMUNITY` into notifications (a reply to my
//! question or to a question I follow, my answer accepted, a new solution
//! sheet in a domain I follow, a mention `@<user_id>` in a question or an
//! answer), per-user preferences per kind (immediately / daily digest /
//! never), and the live feed (`WatchNotifications`) fed by
//! `eva.community.notification.created`.
//!
//! A user follows a domain by listing it in their preferences
//! (`followed_domains`, table `notification_domains`), not by joining the
//! theme space: joining a space is about taking part, following a domain is
//! about being told.
//!
//! `never` creates nothing; `daily_digest` is stored and listed but not
//! pushed live. Every notification created publishes `NotificationCreated`
//! through the outbox (ids and kinds only, never a post's text).

use std::collections::BTreeSet;
use std::pin::Pin;

use eva_platform::auth::{Role, require_role};
use eva_platform::bus::streams;
use eva_platform::consumer::{ApplyError, Envelope, Projection, Subscription};
use eva_platform::db::{Db, DbError, Tx, now_us, to_timestamp};
use eva_platform::grpc::invalid_field;
use eva_platform::on_backend;
use eva_platform::outbox::{self, Event};
use eva_platform::pagination::Page;
use eva_proto::community::v1 as pb;
use eva_proto::community::v1::notification_service_server::{
    NotificationService, NotificationServiceServer,
};
use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use crate::SERVICE;

/// Durable consumer of the content events.
pub const NOTIFICATIONS_CONSUMER: &str = "community-notifications";
/// Subject of `NotificationCreated`.
pub const NOTIFICATION_CREATED: &str = "eva.community.notification.created";

/// Who takes part in the community.
pub const MEMBERS: &[Role] = &[Role::Counselor, Role::StructureAdmin, Role::Operator];

/// The consumer's subscription: the content events it turns into notifications.
pub fn subscription() -> Subscription {
    Subscription::new(
        streams::COMMUNITY,
        NOTIFICATIONS_CONSUMER,
        &[
            "eva.community.question.asked",
            "eva.community.answer.posted",
            "eva.community.answer.accepted",
            "eva.community.solution.published",
        ],
    )
}

/// A storage failure, logged by kind and answered as INTERNAL.
pub(crate) fn storage(e: impl std::fmt::Display) -> Status {
    tracing::error!(error = %e, "community storage failed");
    Status::internal("erreur de stockage / storage error")
}

/// The frequency `user_id` chose for `kind` (immediately when never set).
pub async fn frequency(tx: &mut Tx, user_id: &str, kind: i32) -> Result<i32, DbError> {
    let row: Option<(i32,)> = on_backend!(tx.conn(), c => sqlx::query_as(
        "SELECT frequency FROM notification_preferences WHERE user_id = $1 AND kind = $2",
    )
    .bind(user_id)
    .bind(kind)
    .fetch_optional(&mut *c)
    .await)?;
    Ok(row
        .map(|r| r.0)
        .unwrap_or(pb::NotificationFrequency::Immediately as i32))
}

/// Creates a notification unless the user said never or already has it,
/// and publishes `NotificationCreated` in the same transaction.
pub async fn notify(
    tx: &mut Tx,
    user_id: &str,
    kind: pb::NotificationKind,
    content: &pb::ContentRef,
    question_id: &str,
) -> Result<bool, DbError> {
    if user_id.is_empty() {
        return Ok(false);
    }
    let freq = frequency(tx, user_id, kind as i32).await?;
    if freq == pb::NotificationFrequency::Never as i32 {
        return Ok(false);
    }
    let id = uuid::Uuid::now_v7().to_string();
    let now = now_us();
    let done = on_backend!(tx.conn(), c => sqlx::query(
        "INSERT INTO notifications (notification_id, user_id, kind, content_kind, content_id, question_id, frequency, created_at_us) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
    )
    .bind(&id)
    .bind(user_id)
    .bind(kind as i32)
    .bind(content.kind)
    .bind(&content.content_id)
    .bind(question_id)
    .bind(freq)
    .bind(now)
    .execute(&mut *c)
    .await.map(|r| r.rows_affected()))?;
    if done == 0 {
        return Ok(false);
    }
    let event = pb::NotificationCreated {
        notification_id: id.clone(),
        user_id: user_id.to_owned(),
        kind: kind as i32,
        content: Some(content.clone()),
        question_id: question_id.to_owned(),
        created_at: Some(to_timestamp(now)),
    };
    outbox::enqueue(
        tx,
        &Event::new(SERVICE, NOTIFICATION_CREATED, Some(id), &event),
    )
    .await?;
    Ok(true)
}

async fn strings(tx: &mut Tx, sql: &'static str, arg: &str) -> Result<Vec<String>, DbError> {
    let rows: Vec<(String,)> = on_backend!(tx.conn(), c => sqlx::query_as(sql)
        .bind(arg)
        .fetch_all(&mut *c)
        .await)?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}

/// `@<uuid>` mentions in a text, in order, without repeats.
pub fn mentions(text: &str) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (i, _) in text.match_indices('@') {
        let rest = &text[i + 1..];
        let candidate: String = rest
            .chars()
            .take_while(|c| c.is_ascii_hexdigit() || *c == '-')
            .collect();
        if let Ok(u) = uuid::Uuid::parse_str(&candidate) {
            let u = u.to_string();
            if seen.insert(u.clone()) {
                out.push(u);
            }
        }
    }
    out
}

/// The consumer turning content events into notifications.
#[derive(Clone, Debug, Default)]
pub struct NotificationFeed;

impl NotificationFeed {
    async fn answer_posted(tx: &mut Tx, e: pb::AnswerPosted) -> Result<(), ApplyError> {
        let author = strings(
            tx,
            "SELECT author_user_id FROM answers WHERE answer_id = $1",
            &e.answer_id,
        )
        .await?
        .pop()
        .unwrap_or_default();
        let mut recipients = BTreeSet::new();
        recipients.extend(
            strings(
                tx,
                "SELECT author_user_id FROM questions WHERE question_id = $1",
                &e.question_id,
            )
            .await?,
        );
        recipients.extend(
            strings(
                tx,
                "SELECT user_id FROM question_follows WHERE question_id = $1",
                &e.question_id,
            )
            .await?,
        );
        let content = pb::ContentRef {
            kind: pb::ContentKind::Answer as i32,
            content_id: e.answer_id.clone(),
        };
        for user in recipients.iter().filter(|u| !u.is_empty() && **u != author) {
            notify(
                tx,
                user,
                pb::NotificationKind::Reply,
                &content,
                &e.question_id,
            )
            .await?;
        }
        let body = strings(
            tx,
            "SELECT body FROM answers WHERE answer_id = $1",
            &e.answer_id,
        )
        .await?
        .pop()
        .unwrap_or_default();
        for user in mentions(&body).iter().filter(|u| **u != author) {
            notify(
                tx,
                user,
                pb::NotificationKind::Mention,
                &content,
                &e.question_id,
            )
            .await?;
        }
        Ok(())
    }

    async fn question_asked(tx: &mut Tx, e: pb::QuestionAsked) -> Result<(), ApplyError> {
        let author = strings(
            tx,
            "SELECT author_user_id FROM questions WHERE question_id = $1",
            &e.question_id,
        )
        .await?
        .pop()
        .unwrap_or_default();
        let text = strings(
            tx,
            "SELECT title || ' ' || body FROM questions WHERE question_id = $1",
            &e.question_id,
        )
        .await?
        .pop()
        .unwrap_or_default();
        let content = pb::ContentRef {
            kind: pb::ContentKind::Question as i32,
            content_id: e.question_id.clone(),
        };
        for user in mentions(&text).iter().filter(|u| **u != author) {
            notify(
                tx,
                user,
                pb::NotificationKind::Mention,
                &content,
                &e.question_id,
            )
            .await?;
        }
        Ok(())
    }

    async fn answer_accepted(tx: &mut Tx, e: pb::AnswerAccepted) -> Result<(), ApplyError> {
        let author = strings(
            tx,
            "SELECT author_user_id FROM answers WHERE answer_id = $1",
            &e.answer_id,
        )
        .await?
        .pop()
        .unwrap_or_default();
        let asker = strings(
            tx,
            "SELECT author_user_id FROM questions WHERE question_id = $1",
            &e.question_id,
        )
        .await?
        .pop()
        .unwrap_or_default();
        if author.is_empty() || author == asker {
            return Ok(());
        }
        let content = pb::ContentRef {
            kind: pb::ContentKind::Answer as i32,
            content_id: e.answer_id.clone(),
        };
        notify(
            tx,
            &author,
            pb::NotificationKind::AnswerAccepted,
            &content,
            &e.question_id,
        )
        .await?;
        Ok(())
    }

    async fn solution_published(tx: &mut Tx, e: pb::SolutionPublished) -> Result<(), ApplyError> {
        let author = strings(
            tx,
            "SELECT author_user_id FROM solutions WHERE solution_id = $1",
            &e.solution_id,
        )
        .await?
        .pop()
        .unwrap_or_default();
        let mut recipients = BTreeSet::new();
        for domain in &e.domains {
            recipients.extend(
                strings(
                    tx,
                    "SELECT user_id FROM notification_domains WHERE domain_id = $1",
                    domain,
                )
                .await?,
            );
        }
        let content = pb::ContentRef {
            kind: pb::ContentKind::Solution as i32,
            content_id: e.solution_id.clone(),
        };
        for user in recipients.iter().filter(|u| **u != author) {
            notify(tx, user, pb::NotificationKind::NewSolution, &content, "").await?;
        }
        Ok(())
    }
}

impl Projection for NotificationFeed {
    async fn apply(&self, tx: &mut Tx, event: &Envelope) -> Result<(), ApplyError> {
        match event.event_type.as_str() {
            "eva.community.question.asked" => Self::question_asked(tx, event.decode()?).await,
            "eva.community.answer.posted" => Self::answer_posted(tx, event.decode()?).await,
            "eva.community.answer.accepted" => Self::answer_accepted(tx, event.decode()?).await,
            "eva.community.solution.published" => {
                Self::solution_published(tx, event.decode()?).await
            }
            _ => Ok(()),
        }
    }
}

#[derive(sqlx::FromRow)]
struct NotificationRow {
    notification_id: String,
    user_id: String,
    kind: i32,
    content_kind: i32,
    content_id: String,
    question_id: String,
    frequency: i32,
    created_at_us: i64,
    read_at_us: Option<i64>,
}

impl From<NotificationRow> for pb::Notification {
    fn from(r: NotificationRow) -> Self {
        pb::Notification {
            notification_id: r.notification_id,
            user_id: r.user_id,
            kind: r.kind,
            content: Some(pb::ContentRef {
                kind: r.content_kind,
                content_id: r.content_id,
            }),
            question_id: r.question_id,
            created_at: Some(to_timestamp(r.created_at_us)),
            read_at: r.read_at_us.map(to_timestamp),
        }
    }
}

const COLUMNS: &str = "notification_id, user_id, kind, content_kind, content_id, question_id, frequency, created_at_us, read_at_us";

/// The state behind `NotificationService`.
#[derive(Clone)]
pub struct Notifications {
    db: Db,
    bus: async_nats::Client,
    shutdown: eva_platform::Shutdown,
}

/// `NotificationService`, ready for `GrpcServer::add_service`.
/// Live feeds end when the service shuts down.
pub fn server(
    db: Db,
    bus: &eva_platform::bus::Bus,
    shutdown: eva_platform::Shutdown,
) -> NotificationServiceServer<Notifications> {
    NotificationServiceServer::new(Notifications {
        db,
        bus: bus.client().clone(),
        shutdown,
    })
}

impl Notifications {
    async fn by_id(&self, id: &str) -> Result<Option<NotificationRow>, DbError> {
        let mut h = self.db.acquire().await?;
        let sql = format!("SELECT {COLUMNS} FROM notifications WHERE notification_id = $1");
        Ok(
            on_backend!(h.conn(), c => sqlx::query_as::<_, NotificationRow>(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(id)
            .fetch_optional(&mut *c)
            .await)?,
        )
    }

    async fn preferences(
        &self,
        user_id: &str,
    ) -> Result<(Vec<pb::NotificationPreference>, Vec<String>), DbError> {
        let mut h = self.db.acquire().await?;
        let rows: Vec<(i32, i32)> = on_backend!(h.conn(), c => sqlx::query_as(
            "SELECT kind, frequency FROM notification_preferences WHERE user_id = $1",
        )
        .bind(user_id)
        .fetch_all(&mut *c)
        .await)?;
        let domains: Vec<(String,)> = on_backend!(h.conn(), c => sqlx::query_as(
            "SELECT domain_id FROM notification_domains WHERE user_id = $1 ORDER BY domain_id",
        )
        .bind(user_id)
        .fetch_all(&mut *c)
        .await)?;
        let prefs = ALL_KINDS
            .iter()
            .map(|k| pb::NotificationPreference {
                kind: *k as i32,
                frequency: rows
                    .iter()
                    .find(|r| r.0 == *k as i32)
                    .map(|r| r.1)
                    .unwrap_or(pb::NotificationFrequency::Immediately as i32),
            })
            .collect();
        Ok((prefs, domains.into_iter().map(|d| d.0).collect()))
    }
}

const ALL_KINDS: [pb::NotificationKind; 4] = [
    pb::NotificationKind::Reply,
    pb::NotificationKind::Mention,
    pb::NotificationKind::NewSolution,
    pb::NotificationKind::AnswerAccepted,
];

type NotificationStream = Pin<Box<dyn Stream<Item = Result<pb::Notification, Status>> + Send>>;

#[tonic::async_trait]
impl NotificationService for Notifications {
    async fn list_notifications(
        &self,
        req: Request<pb::ListNotificationsRequest>,
    ) -> Result<Response<pb::ListNotificationsResponse>, Status> {
        let user = require_role(&req, MEMBERS)?.user_id.clone();
        let r = req.into_inner();
        let page = Page::parse(r.page_size, &r.page_token)?;
        let sql = format!(
            "SELECT {COLUMNS} FROM notifications WHERE user_id = $1 \
             AND ($2 = 0 OR read_at_us IS NULL) AND ($3 = '' OR notification_id < $3) \
             ORDER BY notification_id DESC LIMIT $4"
        );
        let mut h = self.db.acquire().await.map_err(storage)?;
        let rows: Vec<NotificationRow> =
            on_backend!(h.conn(), c => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(&user)
            .bind(i32::from(r.unread_only))
            .bind(page.after.clone().unwrap_or_default())
            .bind(page.fetch_limit())
            .fetch_all(&mut *c)
            .await)
            .map_err(storage)?;
        let unread: (i64,) = on_backend!(h.conn(), c => sqlx::query_as(
            "SELECT COUNT(*) FROM notifications WHERE user_id = $1 AND read_at_us IS NULL",
        )
        .bind(&user)
        .fetch_one(&mut *c)
        .await)
        .map_err(storage)?;
        let (rows, next) = page.finish(rows, |r| r.notification_id.clone());
        Ok(Response::new(pb::ListNotificationsResponse {
            notifications: rows.into_iter().map(Into::into).collect(),
            next_page_token: next,
            unread_count: i32::try_from(unread.0).unwrap_or(i32::MAX),
        }))
    }

    async fn mark_notifications_read(
        &self,
        req: Request<pb::MarkNotificationsReadRequest>,
    ) -> Result<Response<pb::MarkNotificationsReadResponse>, Status> {
        let user = require_role(&req, MEMBERS)?.user_id.clone();
        let r = req.into_inner();
        if !r.all && r.notification_ids.is_empty() {
            return Err(invalid_field(
                "notification_ids",
                "indiquez des notifications ou all / give notification ids or all",
            ));
        }
        let now = now_us();
        let mut tx = self.db.begin().await.map_err(storage)?;
        let mut marked = 0u64;
        if r.all {
            marked += on_backend!(tx.conn(), c => sqlx::query(
                "UPDATE notifications SET read_at_us = $1 WHERE user_id = $2 AND read_at_us IS NULL",
            )
            .bind(now)
            .bind(&user)
            .execute(&mut *c)
            .await.map(|r| r.rows_affected()))
            .map_err(storage)?;
        } else {
            for id in &r.notification_ids {
                marked += on_backend!(tx.conn(), c => sqlx::query(
                    "UPDATE notifications SET read_at_us = $1 WHERE user_id = $2 AND notification_id = $3 AND read_at_us IS NULL",
                )
                .bind(now)
                .bind(&user)
                .bind(id)
                .execute(&mut *c)
                .await.map(|r| r.rows_affected()))
                .map_err(storage)?;
            }
        }
        tx.commit().await.map_err(storage)?;
        Ok(Response::new(pb::MarkNotificationsReadResponse {
            marked: i32::try_from(marked).unwrap_or(i32::MAX),
        }))
    }

    async fn get_notification_preferences(
        &self,
        req: Request<pb::GetNotificationPreferencesRequest>,
    ) -> Result<Response<pb::GetNotificationPreferencesResponse>, Status> {
        let user = require_role(&req, MEMBERS)?.user_id.clone();
        let (preferences, followed_domains) = self.preferences(&user).await.map_err(storage)?;
        Ok(Response::new(pb::GetNotificationPreferencesResponse {
            preferences,
            followed_domains,
        }))
    }

    async fn update_notification_preferences(
        &self,
        req: Request<pb::UpdateNotificationPreferencesRequest>,
    ) -> Result<Response<pb::UpdateNotificationPreferencesResponse>, Status> {
        let user = require_role(&req, MEMBERS)?.user_id.clone();
        let r = req.into_inner();
        for (i, p) in r.preferences.iter().enumerate() {
            if !ALL_KINDS.iter().any(|k| *k as i32 == p.kind) {
                return Err(invalid_field(
                    &format!("preferences[{i}].kind"),
                    "type de notification inconnu / unknown notification kind",
                ));
            }
            if pb::NotificationFrequency::try_from(p.frequency).is_err() {
                return Err(invalid_field(
                    &format!("preferences[{i}].frequency"),
                    "fréquence inconnue / unknown frequency",
                ));
            }
        }
        for (i, d) in r.followed_domains.iter().enumerate() {
            if eva_platform::consent::domain(d.trim()).is_none() {
                return Err(invalid_field(
                    &format!("followed_domains[{i}]"),
                    "domaine inconnu du référentiel / unknown domain",
                ));
            }
        }
        let mut tx = self.db.begin().await.map_err(storage)?;
        for p in &r.preferences {
            on_backend!(tx.conn(), c => sqlx::query(
                "DELETE FROM notification_preferences WHERE user_id = $1 AND kind = $2",
            )
            .bind(&user)
            .bind(p.kind)
            .execute(&mut *c)
            .await.map(|r| r.rows_affected()))
            .map_err(storage)?;
            if p.frequency != pb::NotificationFrequency::Unspecified as i32 {
                on_backend!(tx.conn(), c => sqlx::query(
                    "INSERT INTO notification_preferences (user_id, kind, frequency) VALUES ($1, $2, $3)",
                )
                .bind(&user)
                .bind(p.kind)
                .bind(p.frequency)
                .execute(&mut *c)
                .await.map(|r| r.rows_affected()))
                .map_err(storage)?;
            }
        }
        if r.replace_followed_domains {
            on_backend!(tx.conn(), c => sqlx::query("DELETE FROM notification_domains WHERE user_id = $1")
                .bind(&user)
                .execute(&mut *c)
                .await.map(|r| r.rows_affected()))
            .map_err(storage)?;
        }
        for d in &r.followed_domains {
            on_backend!(tx.conn(), c => sqlx::query(
                "INSERT INTO notification_domains (user_id, domain_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            )
            .bind(&user)
            .bind(d.trim())
            .execute(&mut *c)
            .await.map(|r| r.rows_affected()))
            .map_err(storage)?;
        }
        tx.commit().await.map_err(storage)?;
        let (preferences, followed_domains) = self.preferences(&user).await.map_err(storage)?;
        Ok(Response::new(pb::UpdateNotificationPreferencesResponse {
            preferences,
            followed_domains,
        }))
    }

    type WatchNotificationsStream = NotificationStream;

    async fn watch_notifications(
        &self,
        req: Request<pb::WatchNotificationsRequest>,
    ) -> Result<Response<Self::WatchNotificationsStream>, Status> {
        let user = require_role(&req, MEMBERS)?.user_id.clone();
        let mut sub = self
            .bus
            .subscribe(NOTIFICATION_CREATED)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "notification feed: cannot subscribe");
                Status::unavailable("bus indisponible / bus unavailable")
            })?;
        // The subscription is on the server before the client hears back.
        let _ = self.bus.flush().await;
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<pb::Notification, Status>>(16);
        let this = self.clone();
        let stopping = self.shutdown.cancelled();
        tokio::spawn(async move {
            tokio::pin!(stopping);
            loop {
                let msg = tokio::select! {
                    _ = tx.closed() => break,
                    _ = &mut stopping => break,
                    m = sub.next() => m,
                };
                let Some(msg) = msg else { break };
                let Ok(created) = <pb::NotificationCreated as prost::Message>::decode(msg.payload)
                else {
                    continue;
                };
                if created.user_id != user {
                    continue;
                }
                match this.by_id(&created.notification_id).await {
                    Ok(Some(row))
                        if row.user_id == user
                            && row.frequency == pb::NotificationFrequency::Immediately as i32 =>
                    {
                        if tx.send(Ok(row.into())).await.is_err() {
                            break;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "notification feed: read failed");
                    }
                }
            }
            let _ = sub.unsubscribe().await;
        });
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_mentions_once() {
        let a = "0190a0b2-7c3e-7b1a-9f00-000000000001";
        let text = format!("merci @{a}, et @{a} encore ; @pas-un-id");
        assert_eq!(mentions(&text), vec![a.to_owned()]);
    }
}
