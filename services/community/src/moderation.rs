//! Moderation: any member reports a post (once per post), a moderator of the
//! post's space hides or restores it, and every act goes to the moderation
//! log (who, what, why, when). A question's or an answer's space is the
//! question's; a solution sheet has no space: the moderators of a theme space
//! of one of its domains moderate it, and operators.

use eva_platform::auth::{Principal, Role, require_role};
use eva_platform::db::{Db, DbError, Tx, now_us, to_timestamp};
use eva_platform::grpc::invalid_field;
use eva_platform::on_backend;
use eva_platform::pagination::Page;
use eva_proto::community::v1 as pb;
use eva_proto::community::v1::moderation_service_server::{
    ModerationService, ModerationServiceServer,
};
use tonic::{Request, Response, Status};

use crate::notifications::{MEMBERS, storage};

/// The state behind `ModerationService`.
#[derive(Clone)]
pub struct Moderation {
    db: Db,
}

/// `ModerationService`, ready for `GrpcServer::add_service`.
pub fn server(db: Db) -> ModerationServiceServer<Moderation> {
    ModerationServiceServer::new(Moderation { db })
}

/// Why a moderation request was refused.
#[derive(Debug, thiserror::Error)]
pub enum ModerationError {
    #[error("publication introuvable / post not found")]
    NotFound,
    #[error("vous avez déjà signalé cette publication / you already reported this post")]
    AlreadyReported,
    #[error("réservé aux membres de l'espace / only the space's members may do this")]
    NotMember,
    #[error("réservé aux modérateurs / only moderators may do this")]
    NotModerator,
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<ModerationError> for Status {
    fn from(e: ModerationError) -> Self {
        match e {
            ModerationError::NotFound => Status::not_found(e.to_string()),
            ModerationError::AlreadyReported => Status::already_exists(e.to_string()),
            ModerationError::NotMember | ModerationError::NotModerator => {
                Status::permission_denied(e.to_string())
            }
            ModerationError::Db(e) => storage(e),
        }
    }
}

impl From<sqlx::Error> for ModerationError {
    fn from(e: sqlx::Error) -> Self {
        ModerationError::Db(DbError::from(e))
    }
}

/// Which table holds a kind of post.
fn table(kind: pb::ContentKind) -> Option<(&'static str, &'static str)> {
    match kind {
        pb::ContentKind::Question => Some(("questions", "question_id")),
        pb::ContentKind::Answer => Some(("answers", "answer_id")),
        pb::ContentKind::Solution => Some(("solutions", "solution_id")),
        pb::ContentKind::Unspecified => None,
    }
}

/// The post's space (`''` for a solution) and status.
async fn locate(
    tx: &mut Tx,
    kind: pb::ContentKind,
    id: &str,
) -> Result<Option<(String, String)>, ModerationError> {
    let sql = match kind {
        pb::ContentKind::Question => {
            "SELECT space_id, status FROM questions WHERE question_id = $1"
        }
        pb::ContentKind::Answer => {
            "SELECT q.space_id, a.status FROM answers a JOIN questions q ON q.question_id = a.question_id WHERE a.answer_id = $1"
        }
        pb::ContentKind::Solution => {
            "SELECT CAST('' AS TEXT), status FROM solutions WHERE solution_id = $1"
        }
        pb::ContentKind::Unspecified => return Ok(None),
    };
    Ok(on_backend!(tx.conn(), c => sqlx::query_as(sql)
        .bind(id)
        .fetch_optional(&mut *c)
        .await)?)
}

async fn role_in(tx: &mut Tx, space_id: &str, user_id: &str) -> Result<Option<String>, DbError> {
    let row: Option<(String,)> = on_backend!(tx.conn(), c => sqlx::query_as(
        "SELECT role FROM space_members WHERE space_id = $1 AND user_id = $2",
    )
    .bind(space_id)
    .bind(user_id)
    .fetch_optional(&mut *c)
    .await)?;
    Ok(row.map(|r| r.0))
}

/// Whether `p` moderates the post.
async fn moderates(
    tx: &mut Tx,
    p: &Principal,
    kind: pb::ContentKind,
    id: &str,
    space_id: &str,
) -> Result<bool, DbError> {
    if p.has_role(Role::Operator) {
        return Ok(true);
    }
    if kind == pb::ContentKind::Solution {
        let row: Option<(i32,)> = on_backend!(tx.conn(), c => sqlx::query_as(
            "SELECT 1 FROM solutions s, spaces sp, space_members m \
             WHERE s.solution_id = $1 AND sp.kind = 'theme' AND sp.domain_id <> '' \
             AND (',' || s.domains || ',') LIKE ('%,' || sp.domain_id || ',%') \
             AND m.space_id = sp.space_id AND m.user_id = $2 AND m.role = 'moderator' LIMIT 1",
        )
        .bind(id)
        .bind(&p.user_id)
        .fetch_optional(&mut *c)
        .await)?;
        return Ok(row.is_some());
    }
    Ok(role_in(tx, space_id, &p.user_id).await?.as_deref() == Some("moderator"))
}

#[derive(sqlx::FromRow)]
struct LogRow {
    entry_id: String,
    content_kind: i32,
    content_id: String,
    action: i32,
    actor_user_id: String,
    reason: String,
    occurred_at_us: i64,
    question_id: String,
}

impl From<LogRow> for pb::ModerationLogEntry {
    fn from(r: LogRow) -> Self {
        pb::ModerationLogEntry {
            entry_id: r.entry_id,
            content: Some(pb::ContentRef {
                kind: r.content_kind,
                content_id: r.content_id,
            }),
            action: r.action,
            actor_user_id: r.actor_user_id,
            reason: r.reason,
            occurred_at: Some(to_timestamp(r.occurred_at_us)),
            question_id: r.question_id,
        }
    }
}

/// Writes one entry of the moderation log.
async fn log(
    tx: &mut Tx,
    space_id: &str,
    content: &pb::ContentRef,
    action: pb::ModerationAction,
    actor: &str,
    reason: &str,
) -> Result<pb::ModerationLogEntry, DbError> {
    let question_id = match pb::ContentKind::try_from(content.kind) {
        Ok(pb::ContentKind::Question) => content.content_id.clone(),
        Ok(pb::ContentKind::Answer) => {
            let row: Option<(String,)> = on_backend!(tx.conn(), c => sqlx::query_as(
                "SELECT question_id FROM answers WHERE answer_id = $1",
            )
            .bind(&content.content_id)
            .fetch_optional(&mut *c)
            .await)?;
            row.map(|r| r.0).unwrap_or_default()
        }
        _ => String::new(),
    };
    let row = LogRow {
        entry_id: uuid::Uuid::now_v7().to_string(),
        content_kind: content.kind,
        content_id: content.content_id.clone(),
        action: action as i32,
        actor_user_id: actor.to_owned(),
        reason: reason.to_owned(),
        occurred_at_us: now_us(),
        question_id,
    };
    on_backend!(tx.conn(), c => sqlx::query(
        "INSERT INTO moderation_log (entry_id, space_id, content_kind, content_id, action, actor_user_id, reason, occurred_at_us) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&row.entry_id)
    .bind(space_id)
    .bind(row.content_kind)
    .bind(&row.content_id)
    .bind(row.action)
    .bind(&row.actor_user_id)
    .bind(&row.reason)
    .bind(row.occurred_at_us)
    .execute(&mut *c)
    .await.map(|r| r.rows_affected()))?;
    Ok(row.into())
}

/// The post named by a request, checked.
fn content_ref(
    content: Option<pb::ContentRef>,
) -> Result<(pb::ContentKind, pb::ContentRef), Status> {
    let c =
        content.ok_or_else(|| invalid_field("content", "publication requise / post required"))?;
    let kind = pb::ContentKind::try_from(c.kind)
        .ok()
        .filter(|k| *k != pb::ContentKind::Unspecified)
        .ok_or_else(|| {
            invalid_field(
                "content.kind",
                "type de publication requis / post kind required",
            )
        })?;
    if uuid::Uuid::parse_str(&c.content_id).is_err() {
        return Err(invalid_field(
            "content.content_id",
            "identifiant invalide / not a valid id",
        ));
    }
    Ok((kind, c))
}

fn reason(r: &str) -> Result<String, Status> {
    let r = r.trim();
    if r.is_empty() {
        return Err(invalid_field("reason", "motif requis / reason required"));
    }
    if r.chars().count() > 2000 {
        return Err(invalid_field(
            "reason",
            "motif trop long (2000 caractères au plus) / reason too long",
        ));
    }
    Ok(r.to_owned())
}

#[tonic::async_trait]
impl ModerationService for Moderation {
    async fn report_content(
        &self,
        req: Request<pb::ReportContentRequest>,
    ) -> Result<Response<pb::ReportContentResponse>, Status> {
        let p = require_role(&req, MEMBERS)?.clone();
        let r = req.into_inner();
        let (kind, content) = content_ref(r.content)?;
        let why = reason(&r.reason)?;
        let mut tx = self.db.begin().await.map_err(storage)?;
        let (space_id, _) = locate(&mut tx, kind, &content.content_id)
            .await?
            .ok_or(ModerationError::NotFound)?;
        if !space_id.is_empty()
            && !p.has_role(Role::Operator)
            && role_in(&mut tx, &space_id, &p.user_id)
                .await
                .map_err(ModerationError::from)?
                .is_none()
        {
            return Err(ModerationError::NotMember.into());
        }
        let done = on_backend!(tx.conn(), c => sqlx::query(
            "INSERT INTO reports (content_kind, content_id, reporter_user_id, space_id, reason, created_at_us) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(content.kind)
        .bind(&content.content_id)
        .bind(&p.user_id)
        .bind(&space_id)
        .bind(&why)
        .bind(now_us())
        .execute(&mut *c)
        .await.map(|r| r.rows_affected()))
        .map_err(storage)?;
        if done == 0 {
            return Err(ModerationError::AlreadyReported.into());
        }
        let entry = log(
            &mut tx,
            &space_id,
            &content,
            pb::ModerationAction::Report,
            &p.user_id,
            &why,
        )
        .await
        .map_err(storage)?;
        tx.commit().await.map_err(storage)?;
        tracing::info!(content_id = %content.content_id, "post reported");
        Ok(Response::new(pb::ReportContentResponse {
            entry: Some(entry),
        }))
    }

    async fn moderate_content(
        &self,
        req: Request<pb::ModerateContentRequest>,
    ) -> Result<Response<pb::ModerateContentResponse>, Status> {
        let p = require_role(&req, MEMBERS)?.clone();
        let r = req.into_inner();
        let (kind, content) = content_ref(r.content)?;
        let action = match pb::ModerationAction::try_from(r.action) {
            Ok(a @ (pb::ModerationAction::Hide | pb::ModerationAction::Restore)) => a,
            _ => {
                return Err(invalid_field(
                    "action",
                    "action attendue : hide ou restore / expected hide or restore",
                ));
            }
        };
        let why = reason(&r.reason)?;
        let (table, key) = table(kind).ok_or(ModerationError::NotFound)?;
        let mut tx = self.db.begin().await.map_err(storage)?;
        let (space_id, _) = locate(&mut tx, kind, &content.content_id)
            .await?
            .ok_or(ModerationError::NotFound)?;
        if !moderates(&mut tx, &p, kind, &content.content_id, &space_id)
            .await
            .map_err(storage)?
        {
            return Err(ModerationError::NotModerator.into());
        }
        let (status, search_status) = if action == pb::ModerationAction::Hide {
            ("hidden", pb::ContentStatus::Hidden)
        } else {
            ("published", pb::ContentStatus::Published)
        };
        let sql = format!("UPDATE {table} SET status = $1 WHERE {key} = $2");
        on_backend!(tx.conn(), c => sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(status)
            .bind(&content.content_id)
            .execute(&mut *c)
            .await.map(|r| r.rows_affected()))
        .map_err(storage)?;
        crate::search::set_status(&mut tx, kind, &content.content_id, search_status)
            .await
            .map_err(storage)?;
        let entry = log(&mut tx, &space_id, &content, action, &p.user_id, &why)
            .await
            .map_err(storage)?;
        tx.commit().await.map_err(storage)?;
        tracing::info!(content_id = %content.content_id, status, "post moderated");
        Ok(Response::new(pb::ModerateContentResponse {
            entry: Some(entry),
        }))
    }

    async fn list_moderation_log(
        &self,
        req: Request<pb::ListModerationLogRequest>,
    ) -> Result<Response<pb::ListModerationLogResponse>, Status> {
        let p = require_role(&req, MEMBERS)?.clone();
        let r = req.into_inner();
        let page = Page::parse(r.page_size, &r.page_token)?;
        let operator = p.has_role(Role::Operator);
        let mut tx = self.db.begin().await.map_err(storage)?;
        if !r.space_id.is_empty() && !operator {
            let role = role_in(&mut tx, &r.space_id, &p.user_id)
                .await
                .map_err(storage)?;
            if role.as_deref() != Some("moderator") {
                return Err(ModerationError::NotModerator.into());
            }
        }
        // The question a post belongs to, for a link to it: itself, or an answer's.
        let cols = format!(
            "entry_id, content_kind, content_id, action, actor_user_id, reason, occurred_at_us, \
             CASE content_kind WHEN {question} THEN content_id \
             WHEN {answer} THEN COALESCE((SELECT a.question_id FROM answers a \
             WHERE a.answer_id = moderation_log.content_id), '') \
             ELSE '' END AS question_id",
            question = pb::ContentKind::Question as i32,
            answer = pb::ContentKind::Answer as i32,
        );
        let after = page.after.clone().unwrap_or_default();
        let rows: Vec<LogRow> = if !r.space_id.is_empty() {
            let sql = format!(
                "SELECT {cols} FROM moderation_log WHERE space_id = $1 \
                 AND ($2 = '' OR entry_id < $2) ORDER BY entry_id DESC LIMIT $3"
            );
            on_backend!(tx.conn(), c => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(&r.space_id)
                .bind(&after)
                .bind(page.fetch_limit())
                .fetch_all(&mut *c)
                .await)
        } else if operator {
            let sql = format!(
                "SELECT {cols} FROM moderation_log WHERE ($1 = '' OR entry_id < $1) \
                 ORDER BY entry_id DESC LIMIT $2"
            );
            on_backend!(tx.conn(), c => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(&after)
                .bind(page.fetch_limit())
                .fetch_all(&mut *c)
                .await)
        } else {
            let sql = format!(
                "SELECT {cols} FROM moderation_log WHERE (space_id IN \
                 (SELECT space_id FROM space_members WHERE user_id = $1 AND role = 'moderator') \
                 OR (space_id = '' AND content_id IN (SELECT s.solution_id FROM solutions s, spaces sp, space_members m \
                 WHERE sp.kind = 'theme' AND sp.domain_id <> '' \
                 AND (',' || s.domains || ',') LIKE ('%,' || sp.domain_id || ',%') \
                 AND m.space_id = sp.space_id AND m.user_id = $1 AND m.role = 'moderator'))) \
                 AND ($2 = '' OR entry_id < $2) ORDER BY entry_id DESC LIMIT $3"
            );
            on_backend!(tx.conn(), c => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(&p.user_id)
                .bind(&after)
                .bind(page.fetch_limit())
                .fetch_all(&mut *c)
                .await)
        }
        .map_err(storage)?;
        drop(tx);
        let (rows, next) = page.finish(rows, |r| r.entry_id.clone());
        Ok(Response::new(pb::ListModerationLogResponse {
            entries: rows.into_iter().map(Into::into).collect(),
            next_page_token: next,
        }))
    }
}
