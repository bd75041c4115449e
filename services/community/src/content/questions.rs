//! `QuestionService`: questions and answers, follows, votes, the accepted
//! answer (chosen by the asker) and the certified one (marked by a
//! moderator of the space).

use eva_platform::auth::{Principal, require_role};
use eva_platform::db::{Db, DbError, Tx, now_us, to_timestamp};
use eva_platform::grpc::invalid_field;
use eva_platform::on_backend;
use eva_platform::pagination::Page;
use eva_proto::community::v1::{
    self as pb, ContentKind, ContentStatus, question_service_server::QuestionService,
};
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

use super::spaces::{self, SpaceRow};
use super::{
    ContentApi, MEMBERS, author_structure, check_body, check_domains, check_id, check_territory,
    check_title, internal, may_see, publish, split_list, territory_sql, visible_space_sql,
};
use crate::search::{self, Document};

const QUESTION_COLUMNS: &str = "q.question_id, q.space_id, q.author_user_id, \
    q.author_structure_id, q.title, q.body, q.domains, q.territory_code, q.accepted_answer_id, \
    q.status, q.created_at_us, q.updated_at_us, \
    (SELECT COUNT(*) FROM answers a WHERE a.question_id = q.question_id AND a.status = 'published') AS answer_count, \
    (SELECT COUNT(*) FROM question_follows f WHERE f.question_id = q.question_id AND f.user_id = $1) AS followed";

const ANSWER_COLUMNS: &str = "a.answer_id, a.question_id, a.author_user_id, \
    a.author_structure_id, a.body, a.certified, a.status, a.created_at_us, a.updated_at_us, \
    (SELECT COUNT(*) FROM votes v WHERE v.answer_id = a.answer_id) AS vote_count, \
    (SELECT COUNT(*) FROM votes v WHERE v.answer_id = a.answer_id AND v.user_id = $1) AS voted, \
    q.accepted_answer_id";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct QuestionRow {
    pub question_id: String,
    pub space_id: String,
    pub author_user_id: String,
    pub author_structure_id: String,
    pub title: String,
    pub body: String,
    pub domains: String,
    pub territory_code: String,
    pub accepted_answer_id: String,
    pub status: String,
    pub created_at_us: i64,
    pub updated_at_us: i64,
    pub answer_count: i64,
    pub followed: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AnswerRow {
    pub answer_id: String,
    pub question_id: String,
    pub author_user_id: String,
    pub author_structure_id: String,
    pub body: String,
    pub certified: bool,
    pub status: String,
    pub created_at_us: i64,
    pub updated_at_us: i64,
    pub vote_count: i64,
    pub voted: i64,
    pub accepted_answer_id: String,
}

pub fn status_of(code: &str) -> ContentStatus {
    match code {
        "published" => ContentStatus::Published,
        "hidden" => ContentStatus::Hidden,
        _ => ContentStatus::Unspecified,
    }
}

fn question_proto(q: &QuestionRow) -> pb::Question {
    pb::Question {
        question_id: q.question_id.clone(),
        space_id: q.space_id.clone(),
        author_user_id: q.author_user_id.clone(),
        title: q.title.clone(),
        body: q.body.clone(),
        domains: split_list(&q.domains),
        territory_code: q.territory_code.clone(),
        accepted_answer_id: q.accepted_answer_id.clone(),
        answer_count: i32::try_from(q.answer_count).unwrap_or(i32::MAX),
        followed: q.followed > 0,
        status: status_of(&q.status) as i32,
        created_at: Some(to_timestamp(q.created_at_us)),
        updated_at: Some(to_timestamp(q.updated_at_us)),
    }
}

fn answer_proto(a: &AnswerRow) -> pb::Answer {
    pb::Answer {
        answer_id: a.answer_id.clone(),
        question_id: a.question_id.clone(),
        author_user_id: a.author_user_id.clone(),
        body: a.body.clone(),
        vote_count: i32::try_from(a.vote_count).unwrap_or(i32::MAX),
        voted: a.voted > 0,
        accepted: !a.accepted_answer_id.is_empty() && a.accepted_answer_id == a.answer_id,
        certified: a.certified,
        status: status_of(&a.status) as i32,
        created_at: Some(to_timestamp(a.created_at_us)),
        updated_at: Some(to_timestamp(a.updated_at_us)),
    }
}

fn question_not_found() -> Status {
    Status::not_found("question introuvable / question not found")
}

fn answer_not_found() -> Status {
    Status::not_found("réponse introuvable / answer not found")
}

fn question_doc(q: &QuestionRow) -> Document {
    Document {
        kind: ContentKind::Question,
        content_id: q.question_id.clone(),
        question_id: q.question_id.clone(),
        space_id: q.space_id.clone(),
        title: q.title.clone(),
        body: q.body.clone(),
        domains: split_list(&q.domains),
        territory_codes: split_list(&q.territory_code),
        status: status_of(&q.status),
    }
}

fn answer_doc(q: &QuestionRow, a: &AnswerRow) -> Document {
    Document {
        kind: ContentKind::Answer,
        content_id: a.answer_id.clone(),
        question_id: q.question_id.clone(),
        space_id: q.space_id.clone(),
        title: q.title.clone(),
        body: a.body.clone(),
        domains: split_list(&q.domains),
        territory_codes: split_list(&q.territory_code),
        status: status_of(&a.status),
    }
}

async fn fetch_question(
    db: &Db,
    question_id: &str,
    user_id: &str,
) -> Result<Option<QuestionRow>, DbError> {
    let sql = format!("SELECT {QUESTION_COLUMNS} FROM questions q WHERE q.question_id = $2");
    let mut h = db.acquire().await?;
    Ok(
        on_backend!(h.conn(), c => sqlx::query_as::<_, QuestionRow>(sqlx::AssertSqlSafe(sql.as_str()))
        .bind(user_id)
        .bind(question_id)
        .fetch_optional(&mut *c)
        .await)?,
    )
}

async fn fetch_answer(
    db: &Db,
    answer_id: &str,
    user_id: &str,
) -> Result<Option<AnswerRow>, DbError> {
    let sql = format!(
        "SELECT {ANSWER_COLUMNS} FROM answers a JOIN questions q ON q.question_id = a.question_id \
         WHERE a.answer_id = $2"
    );
    let mut h = db.acquire().await?;
    Ok(
        on_backend!(h.conn(), c => sqlx::query_as::<_, AnswerRow>(sqlx::AssertSqlSafe(sql.as_str()))
        .bind(user_id)
        .bind(answer_id)
        .fetch_optional(&mut *c)
        .await)?,
    )
}

async fn answers_of(db: &Db, question_id: &str) -> Result<Vec<AnswerRow>, DbError> {
    let sql = format!(
        "SELECT {ANSWER_COLUMNS} FROM answers a JOIN questions q ON q.question_id = a.question_id \
         WHERE a.question_id = $2"
    );
    let mut h = db.acquire().await?;
    Ok(
        on_backend!(h.conn(), c => sqlx::query_as::<_, AnswerRow>(sqlx::AssertSqlSafe(sql.as_str()))
        .bind("")
        .bind(question_id)
        .fetch_all(&mut *c)
        .await)?,
    )
}

async fn exec(tx: &mut Tx, sql: &'static str, binds: &[&str]) -> Result<u64, DbError> {
    Ok(on_backend!(tx.conn(), c => {
        let mut q = sqlx::query(sql);
        for b in binds {
            q = q.bind(*b);
        }
        q.execute(&mut *c).await.map(|r| r.rows_affected())
    })?)
}

async fn insert_question(tx: &mut Tx, q: &QuestionRow) -> Result<(), DbError> {
    on_backend!(tx.conn(), c => sqlx::query(
        "INSERT INTO questions (question_id, space_id, author_user_id, author_structure_id, title, body, \
         domains, territory_code, accepted_answer_id, status, created_at_us, updated_at_us) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(&q.question_id)
    .bind(&q.space_id)
    .bind(&q.author_user_id)
    .bind(&q.author_structure_id)
    .bind(&q.title)
    .bind(&q.body)
    .bind(&q.domains)
    .bind(&q.territory_code)
    .bind(&q.accepted_answer_id)
    .bind(&q.status)
    .bind(q.created_at_us)
    .bind(q.updated_at_us)
    .execute(&mut *c)
    .await
    .map(|_| ()))?;
    Ok(())
}

async fn update_question(tx: &mut Tx, q: &QuestionRow) -> Result<(), DbError> {
    on_backend!(tx.conn(), c => sqlx::query(
        "UPDATE questions SET title = $1, body = $2, domains = $3, territory_code = $4, updated_at_us = $5 \
         WHERE question_id = $6",
    )
    .bind(&q.title)
    .bind(&q.body)
    .bind(&q.domains)
    .bind(&q.territory_code)
    .bind(q.updated_at_us)
    .bind(&q.question_id)
    .execute(&mut *c)
    .await
    .map(|_| ()))?;
    Ok(())
}

async fn insert_answer(tx: &mut Tx, a: &AnswerRow) -> Result<(), DbError> {
    on_backend!(tx.conn(), c => sqlx::query(
        "INSERT INTO answers (answer_id, question_id, author_user_id, author_structure_id, body, certified, \
         status, created_at_us, updated_at_us) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&a.answer_id)
    .bind(&a.question_id)
    .bind(&a.author_user_id)
    .bind(&a.author_structure_id)
    .bind(&a.body)
    .bind(a.certified)
    .bind(&a.status)
    .bind(a.created_at_us)
    .bind(a.updated_at_us)
    .execute(&mut *c)
    .await
    .map(|_| ()))?;
    Ok(())
}

async fn follow(tx: &mut Tx, question_id: &str, user_id: &str) -> Result<(), DbError> {
    exec(
        tx,
        "INSERT INTO question_follows (question_id, user_id) VALUES ($1, $2) \
         ON CONFLICT (question_id, user_id) DO NOTHING",
        &[question_id, user_id],
    )
    .await
    .map(|_| ())
}

fn already_voted() -> Status {
    Status::with_error_details(
        Code::AlreadyExists,
        "answer_id: vous avez déjà voté pour cette réponse / you already voted for this answer",
        ErrorDetails::with_bad_request_violation(
            "answer_id",
            "vous avez déjà voté / you already voted",
        ),
    )
}

/// A question, its space and whether the caller moderates it.
struct Seen {
    question: QuestionRow,
    space: SpaceRow,
    moderator: bool,
}

impl ContentApi {
    /// The question as the caller may see it, or NOT_FOUND.
    async fn seen_question(&self, caller: &Principal, question_id: &str) -> Result<Seen, Status> {
        check_id("question_id", question_id)?;
        let question = fetch_question(&self.db, question_id, &caller.user_id)
            .await
            .map_err(internal)?
            .ok_or_else(question_not_found)?;
        let space = spaces::get(&self.db, &question.space_id)
            .await
            .map_err(internal)?
            .ok_or_else(question_not_found)?;
        if !may_see(caller, &space.kind, &space.structure_id) {
            return Err(question_not_found());
        }
        let moderator = self.moderates(&space.space_id, &caller.user_id).await?;
        if question.status != "published" && !moderator && question.author_user_id != caller.user_id
        {
            return Err(question_not_found());
        }
        Ok(Seen {
            question,
            space,
            moderator,
        })
    }

    /// The answer as the caller may see it, with its question.
    async fn seen_answer(
        &self,
        caller: &Principal,
        answer_id: &str,
    ) -> Result<(AnswerRow, Seen), Status> {
        check_id("answer_id", answer_id)?;
        let answer = fetch_answer(&self.db, answer_id, &caller.user_id)
            .await
            .map_err(internal)?
            .ok_or_else(answer_not_found)?;
        let seen = self
            .seen_question(caller, &answer.question_id)
            .await
            .map_err(|s| {
                if s.code() == Code::NotFound {
                    answer_not_found()
                } else {
                    s
                }
            })?;
        if answer.status != "published"
            && !seen.moderator
            && answer.author_user_id != caller.user_id
        {
            return Err(answer_not_found());
        }
        Ok((answer, seen))
    }

    /// Posting in a space needs membership.
    async fn require_member(&self, caller: &Principal, space_id: &str) -> Result<(), Status> {
        if self.role_in(space_id, &caller.user_id).await?.is_none() {
            return Err(Status::permission_denied(
                "rejoignez l'espace pour y publier / join the space to post in it",
            ));
        }
        Ok(())
    }

    async fn question_now(
        &self,
        caller: &Principal,
        question_id: &str,
    ) -> Result<pb::Question, Status> {
        let q = fetch_question(&self.db, question_id, &caller.user_id)
            .await
            .map_err(internal)?
            .ok_or_else(question_not_found)?;
        Ok(question_proto(&q))
    }

    async fn answer_now(&self, caller: &Principal, answer_id: &str) -> Result<pb::Answer, Status> {
        let a = fetch_answer(&self.db, answer_id, &caller.user_id)
            .await
            .map_err(internal)?
            .ok_or_else(answer_not_found)?;
        Ok(answer_proto(&a))
    }
}

#[tonic::async_trait]
impl QuestionService for ContentApi {
    async fn create_question(
        &self,
        req: Request<pb::CreateQuestionRequest>,
    ) -> Result<Response<pb::CreateQuestionResponse>, Status> {
        let caller = require_role(&req, MEMBERS)?.clone();
        let md = req.metadata().clone();
        let r = req.into_inner();
        let space = spaces::visible(&self.db, &caller, &r.space_id).await?;
        let title = check_title(&r.title)?;
        let body = check_body(&r.body)?;
        let domains = check_domains("domains", &r.domains)?;
        let territory = if r.territory_code.trim().is_empty() {
            String::new()
        } else {
            check_territory("territory_code", &r.territory_code)?
        };
        self.require_member(&caller, &space.space_id).await?;
        self.screening
            .check(&md, &caller, &[("title", &title), ("body", &body)])
            .await?;
        let now = now_us();
        let row = QuestionRow {
            question_id: uuid::Uuid::now_v7().to_string(),
            space_id: space.space_id.clone(),
            author_user_id: caller.user_id.clone(),
            author_structure_id: author_structure(&caller, &space.structure_id),
            title,
            body,
            domains: domains.join(","),
            territory_code: territory.clone(),
            accepted_answer_id: String::new(),
            status: "published".into(),
            created_at_us: now,
            updated_at_us: now,
            answer_count: 0,
            followed: 1,
        };
        let mut tx = self.db.begin().await.map_err(internal)?;
        insert_question(&mut tx, &row).await.map_err(internal)?;
        follow(&mut tx, &row.question_id, &caller.user_id)
            .await
            .map_err(internal)?;
        search::index(&mut tx, &question_doc(&row))
            .await
            .map_err(internal)?;
        publish(
            &mut tx,
            "eva.community.question.asked",
            &row.question_id,
            &pb::QuestionAsked {
                question_id: row.question_id.clone(),
                space_id: row.space_id.clone(),
                domains,
                territory_code: territory,
                asked_at: Some(to_timestamp(now)),
            },
        )
        .await
        .map_err(internal)?;
        tx.commit().await.map_err(internal)?;
        tracing::info!(question_id = %row.question_id, space_id = %row.space_id, "question asked");
        Ok(Response::new(pb::CreateQuestionResponse {
            question: Some(question_proto(&row)),
        }))
    }

    async fn get_question(
        &self,
        req: Request<pb::GetQuestionRequest>,
    ) -> Result<Response<pb::GetQuestionResponse>, Status> {
        let caller = require_role(&req, MEMBERS)?.clone();
        let seen = self
            .seen_question(&caller, &req.get_ref().question_id)
            .await?;
        Ok(Response::new(pb::GetQuestionResponse {
            question: Some(question_proto(&seen.question)),
        }))
    }

    async fn list_questions(
        &self,
        req: Request<pb::ListQuestionsRequest>,
    ) -> Result<Response<pb::ListQuestionsResponse>, Status> {
        let caller = require_role(&req, MEMBERS)?.clone();
        let r = req.into_inner();
        let page = Page::parse(r.page_size, &r.page_token)?;
        let mut binds: Vec<String> = vec![caller.user_id.clone()];
        let mut clauses = vec![visible_space_sql("s", 2, caller.structures.len())];
        binds.extend(caller.structures.iter().cloned());
        clauses.push(
            "(q.status = 'published' OR q.author_user_id = $1 OR EXISTS (SELECT 1 FROM space_members m \
             WHERE m.space_id = q.space_id AND m.user_id = $1 AND m.role = 'moderator'))"
                .to_owned(),
        );
        if !r.space_id.is_empty() {
            check_id("space_id", &r.space_id)?;
            binds.push(r.space_id.clone());
            clauses.push(format!("q.space_id = ${}", binds.len()));
        }
        let domains = check_domains("domains", &r.domains)?;
        if !domains.is_empty() {
            let mut any = Vec::new();
            for d in domains {
                binds.push(format!("%,{d},%"));
                any.push(format!("(',' || q.domains || ',') LIKE ${}", binds.len()));
            }
            clauses.push(format!("({})", any.join(" OR ")));
        }
        if !r.territory_code.trim().is_empty() {
            let t = check_territory("territory_code", &r.territory_code)?;
            clauses.push(territory_sql("q.territory_code", &t, &mut binds));
        }
        if r.unanswered_only {
            clauses.push(
                "NOT EXISTS (SELECT 1 FROM answers a2 WHERE a2.question_id = q.question_id \
                 AND a2.status = 'published')"
                    .to_owned(),
            );
        }
        if r.followed_only {
            clauses.push(
                "EXISTS (SELECT 1 FROM question_follows f2 WHERE f2.question_id = q.question_id \
                 AND f2.user_id = $1)"
                    .to_owned(),
            );
        }
        if let Some(after) = &page.after {
            binds.push(after.clone());
            clauses.push(format!("q.question_id < ${}", binds.len()));
        }
        let sql = format!(
            "SELECT {QUESTION_COLUMNS} FROM questions q JOIN spaces s ON s.space_id = q.space_id \
             WHERE {} ORDER BY q.question_id DESC LIMIT {}",
            clauses.join(" AND "),
            page.fetch_limit()
        );
        let mut h = self.db.acquire().await.map_err(internal)?;
        let rows = on_backend!(h.conn(), c => {
            let mut q = sqlx::query_as::<_, QuestionRow>(sqlx::AssertSqlSafe(sql.as_str()));
            for b in &binds {
                q = q.bind(b.as_str());
            }
            q.fetch_all(&mut *c).await
        })
        .map_err(internal)?;
        let (rows, next) = page.finish(rows, |q| q.question_id.clone());
        Ok(Response::new(pb::ListQuestionsResponse {
            questions: rows.iter().map(question_proto).collect(),
            next_page_token: next,
        }))
    }

    async fn update_question(
        &self,
        req: Request<pb::UpdateQuestionRequest>,
    ) -> Result<Response<pb::UpdateQuestionResponse>, Status> {
        let caller = require_role(&req, MEMBERS)?.clone();
        let md = req.metadata().clone();
        let r = req.into_inner();
        let seen = self.seen_question(&caller, &r.question_id).await?;
        if seen.question.author_user_id != caller.user_id {
            return Err(Status::permission_denied(
                "seul l'auteur modifie sa question / only the author edits a question",
            ));
        }
        let mut q = seen.question.clone();
        if let Some(t) = &r.title {
            q.title = check_title(t)?;
        }
        if let Some(b) = &r.body {
            q.body = check_body(b)?;
        }
        if r.replace_domains {
            q.domains = check_domains("domains", &r.domains)?.join(",");
        } else if !r.domains.is_empty() {
            return Err(invalid_field(
                "replace_domains",
                "mettez replace_domains à vrai pour remplacer les domaines / set replace_domains to replace the domains",
            ));
        }
        if let Some(t) = &r.territory_code {
            q.territory_code = if t.trim().is_empty() {
                String::new()
            } else {
                check_territory("territory_code", t)?
            };
        }
        self.screening
            .check(&md, &caller, &[("title", &q.title), ("body", &q.body)])
            .await?;
        q.updated_at_us = now_us();
        let answers = answers_of(&self.db, &q.question_id)
            .await
            .map_err(internal)?;
        let mut tx = self.db.begin().await.map_err(internal)?;
        update_question(&mut tx, &q).await.map_err(internal)?;
        search::index(&mut tx, &question_doc(&q))
            .await
            .map_err(internal)?;
        if q.title != seen.question.title
            || q.domains != seen.question.domains
            || q.territory_code != seen.question.territory_code
        {
            for a in &answers {
                search::index(&mut tx, &answer_doc(&q, a))
                    .await
                    .map_err(internal)?;
            }
        }
        tx.commit().await.map_err(internal)?;
        tracing::info!(question_id = %q.question_id, "question edited");
        Ok(Response::new(pb::UpdateQuestionResponse {
            question: Some(self.question_now(&caller, &q.question_id).await?),
        }))
    }

    async fn follow_question(
        &self,
        req: Request<pb::FollowQuestionRequest>,
    ) -> Result<Response<pb::FollowQuestionResponse>, Status> {
        let caller = require_role(&req, MEMBERS)?.clone();
        let r = req.into_inner();
        let seen = self.seen_question(&caller, &r.question_id).await?;
        let id = seen.question.question_id.as_str();
        let mut tx = self.db.begin().await.map_err(internal)?;
        if r.follow {
            follow(&mut tx, id, &caller.user_id)
                .await
                .map_err(internal)?;
        } else {
            exec(
                &mut tx,
                "DELETE FROM question_follows WHERE question_id = $1 AND user_id = $2",
                &[id, &caller.user_id],
            )
            .await
            .map_err(internal)?;
        }
        tx.commit().await.map_err(internal)?;
        Ok(Response::new(pb::FollowQuestionResponse {
            question: Some(self.question_now(&caller, id).await?),
        }))
    }

    async fn create_answer(
        &self,
        req: Request<pb::CreateAnswerRequest>,
    ) -> Result<Response<pb::CreateAnswerResponse>, Status> {
        let caller = require_role(&req, MEMBERS)?.clone();
        let md = req.metadata().clone();
        let r = req.into_inner();
        let seen = self.seen_question(&caller, &r.question_id).await?;
        let body = check_body(&r.body)?;
        if seen.question.status != "published" {
            return Err(Status::failed_precondition(
                "cette question est masquée / this question is hidden",
            ));
        }
        self.require_member(&caller, &seen.space.space_id).await?;
        self.screening
            .check(&md, &caller, &[("body", &body)])
            .await?;
        let now = now_us();
        let row = AnswerRow {
            answer_id: uuid::Uuid::now_v7().to_string(),
            question_id: seen.question.question_id.clone(),
            author_user_id: caller.user_id.clone(),
            author_structure_id: author_structure(&caller, &seen.space.structure_id),
            body,
            certified: false,
            status: "published".into(),
            created_at_us: now,
            updated_at_us: now,
            vote_count: 0,
            voted: 0,
            accepted_answer_id: seen.question.accepted_answer_id.clone(),
        };
        let mut tx = self.db.begin().await.map_err(internal)?;
        insert_answer(&mut tx, &row).await.map_err(internal)?;
        search::index(&mut tx, &answer_doc(&seen.question, &row))
            .await
            .map_err(internal)?;
        publish(
            &mut tx,
            "eva.community.answer.posted",
            &row.answer_id,
            &pb::AnswerPosted {
                answer_id: row.answer_id.clone(),
                question_id: row.question_id.clone(),
                posted_at: Some(to_timestamp(now)),
            },
        )
        .await
        .map_err(internal)?;
        tx.commit().await.map_err(internal)?;
        tracing::info!(answer_id = %row.answer_id, question_id = %row.question_id, "answer posted");
        Ok(Response::new(pb::CreateAnswerResponse {
            answer: Some(answer_proto(&row)),
        }))
    }

    async fn list_answers(
        &self,
        req: Request<pb::ListAnswersRequest>,
    ) -> Result<Response<pb::ListAnswersResponse>, Status> {
        let caller = require_role(&req, MEMBERS)?.clone();
        let r = req.into_inner();
        let page = Page::parse(r.page_size, &r.page_token)?;
        let offset = page.offset()?;
        let seen = self.seen_question(&caller, &r.question_id).await?;
        // Hidden answers: the moderators see them, and each author their own.
        let hidden = if seen.moderator {
            ""
        } else {
            "AND (a.status = 'published' OR a.author_user_id = $1)"
        };
        let sql = format!(
            "SELECT {ANSWER_COLUMNS} FROM answers a JOIN questions q ON q.question_id = a.question_id \
             WHERE a.question_id = $2 {hidden} \
             ORDER BY CASE WHEN a.answer_id = q.accepted_answer_id THEN 0 ELSE 1 END, \
             a.certified DESC, vote_count DESC, a.answer_id LIMIT {} OFFSET {offset}",
            page.fetch_limit()
        );
        let mut h = self.db.acquire().await.map_err(internal)?;
        let rows = on_backend!(h.conn(), c => sqlx::query_as::<_, AnswerRow>(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(&caller.user_id)
            .bind(&seen.question.question_id)
            .fetch_all(&mut *c)
            .await)
        .map_err(internal)?;
        let (rows, next) = page.finish_at(rows, offset);
        Ok(Response::new(pb::ListAnswersResponse {
            answers: rows.iter().map(answer_proto).collect(),
            next_page_token: next,
        }))
    }

    async fn update_answer(
        &self,
        req: Request<pb::UpdateAnswerRequest>,
    ) -> Result<Response<pb::UpdateAnswerResponse>, Status> {
        let caller = require_role(&req, MEMBERS)?.clone();
        let md = req.metadata().clone();
        let r = req.into_inner();
        let (mut answer, seen) = self.seen_answer(&caller, &r.answer_id).await?;
        if answer.author_user_id != caller.user_id {
            return Err(Status::permission_denied(
                "seul l'auteur modifie sa réponse / only the author edits an answer",
            ));
        }
        answer.body = check_body(&r.body)?;
        self.screening
            .check(&md, &caller, &[("body", &answer.body)])
            .await?;
        answer.updated_at_us = now_us();
        let mut tx = self.db.begin().await.map_err(internal)?;
        on_backend!(tx.conn(), c => sqlx::query(
            "UPDATE answers SET body = $1, updated_at_us = $2 WHERE answer_id = $3",
        )
        .bind(&answer.body)
        .bind(answer.updated_at_us)
        .bind(&answer.answer_id)
        .execute(&mut *c)
        .await
        .map(|_| ()))
        .map_err(internal)?;
        search::index(&mut tx, &answer_doc(&seen.question, &answer))
            .await
            .map_err(internal)?;
        tx.commit().await.map_err(internal)?;
        tracing::info!(answer_id = %answer.answer_id, "answer edited");
        Ok(Response::new(pb::UpdateAnswerResponse {
            answer: Some(self.answer_now(&caller, &answer.answer_id).await?),
        }))
    }

    async fn accept_answer(
        &self,
        req: Request<pb::AcceptAnswerRequest>,
    ) -> Result<Response<pb::AcceptAnswerResponse>, Status> {
        let caller = require_role(&req, MEMBERS)?.clone();
        let r = req.into_inner();
        let (answer, seen) = self.seen_answer(&caller, &r.answer_id).await?;
        if !r.question_id.is_empty() && r.question_id != answer.question_id {
            return Err(invalid_field(
                "answer_id",
                "cette réponse n'est pas une réponse à cette question / this answer does not answer this question",
            ));
        }
        if seen.question.author_user_id != caller.user_id {
            return Err(Status::permission_denied(
                "seul l'auteur de la question accepte une réponse / only the asker accepts an answer",
            ));
        }
        if seen.question.accepted_answer_id != answer.answer_id {
            let now = now_us();
            let mut tx = self.db.begin().await.map_err(internal)?;
            on_backend!(tx.conn(), c => sqlx::query(
                "UPDATE questions SET accepted_answer_id = $1, updated_at_us = $2 WHERE question_id = $3",
            )
            .bind(&answer.answer_id)
            .bind(now)
            .bind(&answer.question_id)
            .execute(&mut *c)
            .await
            .map(|_| ()))
            .map_err(internal)?;
            publish(
                &mut tx,
                "eva.community.answer.accepted",
                &answer.answer_id,
                &pb::AnswerAccepted {
                    answer_id: answer.answer_id.clone(),
                    question_id: answer.question_id.clone(),
                    accepted_at: Some(to_timestamp(now)),
                },
            )
            .await
            .map_err(internal)?;
            tx.commit().await.map_err(internal)?;
            tracing::info!(answer_id = %answer.answer_id, question_id = %answer.question_id, "answer accepted");
        }
        Ok(Response::new(pb::AcceptAnswerResponse {
            question: Some(self.question_now(&caller, &answer.question_id).await?),
        }))
    }

    async fn certify_answer(
        &self,
        req: Request<pb::CertifyAnswerRequest>,
    ) -> Result<Response<pb::CertifyAnswerResponse>, Status> {
        let caller = require_role(&req, MEMBERS)?.clone();
        let r = req.into_inner();
        let (answer, seen) = self.seen_answer(&caller, &r.answer_id).await?;
        if !seen.moderator {
            return Err(Status::permission_denied(
                "seul un modérateur de l'espace certifie une réponse / only a moderator of the space certifies an answer",
            ));
        }
        let mut tx = self.db.begin().await.map_err(internal)?;
        on_backend!(tx.conn(), c => sqlx::query(
            "UPDATE answers SET certified = $1 WHERE answer_id = $2",
        )
        .bind(r.certified)
        .bind(&answer.answer_id)
        .execute(&mut *c)
        .await
        .map(|_| ()))
        .map_err(internal)?;
        tx.commit().await.map_err(internal)?;
        tracing::info!(answer_id = %answer.answer_id, certified = r.certified, "answer certification changed");
        Ok(Response::new(pb::CertifyAnswerResponse {
            answer: Some(self.answer_now(&caller, &answer.answer_id).await?),
        }))
    }

    async fn vote_answer(
        &self,
        req: Request<pb::VoteAnswerRequest>,
    ) -> Result<Response<pb::VoteAnswerResponse>, Status> {
        let caller = require_role(&req, MEMBERS)?.clone();
        let r = req.into_inner();
        let (answer, _) = self.seen_answer(&caller, &r.answer_id).await?;
        if answer.author_user_id == caller.user_id {
            return Err(Status::permission_denied(
                "vous ne pouvez pas voter pour votre propre réponse / you cannot vote for your own answer",
            ));
        }
        if answer.voted > 0 {
            return Err(already_voted());
        }
        let now = now_us();
        let mut tx = self.db.begin().await.map_err(internal)?;
        let inserted = on_backend!(tx.conn(), c => sqlx::query(
            "INSERT INTO votes (answer_id, user_id, created_at_us) VALUES ($1, $2, $3) \
             ON CONFLICT (answer_id, user_id) DO NOTHING",
        )
        .bind(&answer.answer_id)
        .bind(&caller.user_id)
        .bind(now)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))
        .map_err(internal)?;
        if inserted == 0 {
            return Err(already_voted());
        }
        tx.commit().await.map_err(internal)?;
        let now_answer = self.answer_now(&caller, &answer.answer_id).await?;
        Ok(Response::new(pb::VoteAnswerResponse {
            vote: Some(pb::Vote {
                answer_id: answer.answer_id.clone(),
                user_id: caller.user_id.clone(),
                created_at: Some(to_timestamp(now)),
            }),
            vote_count: now_answer.vote_count,
        }))
    }
}
