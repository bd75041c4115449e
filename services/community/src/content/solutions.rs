//! `SolutionService`: the library of solution sheets (fiches solutions),
//! tagged by référentiel domain, item and territory, ordered by usefulness
//! (how many said it worked, then how many used it, then the newest).

use eva_platform::auth::{Principal, require_role};
use eva_platform::db::{Db, DbError, Tx, now_us, to_timestamp};
use eva_platform::grpc::invalid_field;
use eva_platform::on_backend;
use eva_platform::pagination::Page;
use eva_proto::community::v1::{self as pb, ContentKind, solution_service_server::SolutionService};
use tonic::{Request, Response, Status};

use super::questions::status_of;
use super::{
    ContentApi, MEMBERS, check_body, check_domains, check_id, check_items, check_territory,
    check_title, internal, publish, split_list, territory_sql,
};
use crate::search::{self, Document};

const COLUMNS: &str = "s.solution_id, s.author_user_id, s.author_structure_id, s.title, s.body, \
    s.domains, s.item_ids, s.territory_codes, s.valid_from, s.valid_until, s.directory_service_id, \
    s.status, s.created_at_us, s.updated_at_us, \
    (SELECT COUNT(*) FROM solution_feedback f WHERE f.solution_id = s.solution_id) AS used_count, \
    (SELECT COUNT(*) FROM solution_feedback f WHERE f.solution_id = s.solution_id AND f.worked) AS worked_count";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SolutionRow {
    pub solution_id: String,
    pub author_user_id: String,
    pub author_structure_id: String,
    pub title: String,
    pub body: String,
    pub domains: String,
    pub item_ids: String,
    pub territory_codes: String,
    pub valid_from: String,
    pub valid_until: String,
    pub directory_service_id: String,
    pub status: String,
    pub created_at_us: i64,
    pub updated_at_us: i64,
    pub used_count: i64,
    pub worked_count: i64,
}

fn to_proto(s: &SolutionRow) -> pb::Solution {
    pb::Solution {
        solution_id: s.solution_id.clone(),
        author_user_id: s.author_user_id.clone(),
        title: s.title.clone(),
        body: s.body.clone(),
        domains: split_list(&s.domains),
        item_ids: split_list(&s.item_ids),
        territory_codes: split_list(&s.territory_codes),
        valid_from: s.valid_from.clone(),
        valid_until: s.valid_until.clone(),
        directory_service_id: s.directory_service_id.clone(),
        used_count: i32::try_from(s.used_count).unwrap_or(i32::MAX),
        worked_count: i32::try_from(s.worked_count).unwrap_or(i32::MAX),
        status: status_of(&s.status) as i32,
        created_at: Some(to_timestamp(s.created_at_us)),
        updated_at: Some(to_timestamp(s.updated_at_us)),
    }
}

fn doc(s: &SolutionRow) -> Document {
    Document {
        kind: ContentKind::Solution,
        content_id: s.solution_id.clone(),
        question_id: String::new(),
        space_id: String::new(),
        title: s.title.clone(),
        body: s.body.clone(),
        domains: split_list(&s.domains),
        territory_codes: split_list(&s.territory_codes),
        status: status_of(&s.status),
    }
}

fn not_found() -> Status {
    Status::not_found("fiche solution introuvable / solution not found")
}

async fn fetch(db: &Db, solution_id: &str) -> Result<Option<SolutionRow>, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM solutions s WHERE s.solution_id = $1");
    let mut h = db.acquire().await?;
    Ok(
        on_backend!(h.conn(), c => sqlx::query_as::<_, SolutionRow>(sqlx::AssertSqlSafe(sql.as_str()))
        .bind(solution_id)
        .fetch_optional(&mut *c)
        .await)?,
    )
}

/// `YYYY-MM-DD`, or empty.
fn check_date(field: &str, value: &str) -> Result<String, Status> {
    let v = value.trim();
    if v.is_empty() {
        return Ok(String::new());
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(v, &format)
        .map(|_| v.to_owned())
        .map_err(|_| invalid_field(field, "date attendue AAAA-MM-JJ / expected date YYYY-MM-DD"))
}

/// What a sheet holds once checked.
struct Sheet {
    title: String,
    body: String,
    domains: Vec<String>,
    items: Vec<String>,
    territories: Vec<String>,
    valid_from: String,
    valid_until: String,
    directory_service_id: String,
}

#[allow(clippy::too_many_arguments)]
fn check_sheet(
    title: &str,
    body: &str,
    domains: &[String],
    items: &[String],
    territories: &[String],
    valid_from: &str,
    valid_until: &str,
    directory_service_id: &str,
) -> Result<Sheet, Status> {
    let title = check_title(title)?;
    let body = check_body(body)?;
    let domains = check_domains("domains", domains)?;
    if domains.is_empty() {
        return Err(invalid_field(
            "domains",
            "indiquez au moins un domaine / give at least one domain",
        ));
    }
    let items = check_items(items)?;
    let mut codes: Vec<String> = Vec::new();
    for t in territories {
        let c = check_territory("territory_codes", t)?;
        if !codes.contains(&c) {
            codes.push(c);
        }
    }
    let valid_from = check_date("valid_from", valid_from)?;
    let valid_until = check_date("valid_until", valid_until)?;
    if !valid_from.is_empty() && !valid_until.is_empty() && valid_until < valid_from {
        return Err(invalid_field(
            "valid_until",
            "la fin précède le début / the end comes before the start",
        ));
    }
    let directory_service_id = directory_service_id.trim().to_owned();
    if !directory_service_id.is_empty() {
        check_id("directory_service_id", &directory_service_id)?;
    }
    Ok(Sheet {
        title,
        body,
        domains,
        items,
        territories: codes,
        valid_from,
        valid_until,
        directory_service_id,
    })
}

async fn write(tx: &mut Tx, s: &SolutionRow, insert: bool) -> Result<(), DbError> {
    let sql = if insert {
        "INSERT INTO solutions (title, body, domains, item_ids, territory_codes, valid_from, valid_until, \
         directory_service_id, updated_at_us, solution_id, author_user_id, author_structure_id, status, created_at_us) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
    } else {
        "UPDATE solutions SET title = $1, body = $2, domains = $3, item_ids = $4, territory_codes = $5, \
         valid_from = $6, valid_until = $7, directory_service_id = $8, updated_at_us = $9 \
         WHERE solution_id = $10"
    };
    on_backend!(tx.conn(), c => {
        let mut q = sqlx::query(sql)
            .bind(&s.title)
            .bind(&s.body)
            .bind(&s.domains)
            .bind(&s.item_ids)
            .bind(&s.territory_codes)
            .bind(&s.valid_from)
            .bind(&s.valid_until)
            .bind(&s.directory_service_id)
            .bind(s.updated_at_us)
            .bind(&s.solution_id);
        if insert {
            q = q
                .bind(&s.author_user_id)
                .bind(&s.author_structure_id)
                .bind(&s.status)
                .bind(s.created_at_us);
        }
        q.execute(&mut *c).await.map(|_| ())
    })?;
    Ok(())
}

/// SQL condition: the user bound as `$1` moderates the sheet aliased `s`
/// (a moderator of a theme space of one of its domains).
const MODERATED_BY_1: &str = "EXISTS (SELECT 1 FROM spaces sp JOIN space_members m ON m.space_id = sp.space_id \
    WHERE sp.kind = 'theme' AND sp.domain_id <> '' \
    AND (',' || s.domains || ',') LIKE ('%,' || sp.domain_id || ',%') \
    AND m.user_id = $1 AND m.role = 'moderator')";

impl ContentApi {
    /// Whether `user_id` moderates the sheet.
    async fn moderates_solution(&self, solution_id: &str, user_id: &str) -> Result<bool, Status> {
        let sql = format!(
            "SELECT s.solution_id FROM solutions s WHERE s.solution_id = $2 AND {MODERATED_BY_1}"
        );
        let mut h = self.db.acquire().await.map_err(internal)?;
        let row: Option<(String,)> =
            on_backend!(h.conn(), c => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(user_id)
            .bind(solution_id)
            .fetch_optional(&mut *c)
            .await)
            .map_err(internal)?;
        Ok(row.is_some())
    }

    /// The sheet as the caller may see it (a hidden one only to its author).
    async fn seen_solution(
        &self,
        caller: &Principal,
        solution_id: &str,
    ) -> Result<SolutionRow, Status> {
        check_id("solution_id", solution_id)?;
        let s = fetch(&self.db, solution_id)
            .await
            .map_err(internal)?
            .ok_or_else(not_found)?;
        if s.status != "published"
            && s.author_user_id != caller.user_id
            && !self
                .moderates_solution(&s.solution_id, &caller.user_id)
                .await?
        {
            return Err(not_found());
        }
        Ok(s)
    }

    async fn solution_now(&self, solution_id: &str) -> Result<pb::Solution, Status> {
        let s = fetch(&self.db, solution_id)
            .await
            .map_err(internal)?
            .ok_or_else(not_found)?;
        Ok(to_proto(&s))
    }
}

#[tonic::async_trait]
impl SolutionService for ContentApi {
    async fn create_solution(
        &self,
        req: Request<pb::CreateSolutionRequest>,
    ) -> Result<Response<pb::CreateSolutionResponse>, Status> {
        let caller = require_role(&req, MEMBERS)?.clone();
        let md = req.metadata().clone();
        let r = req.into_inner();
        let sheet = check_sheet(
            &r.title,
            &r.body,
            &r.domains,
            &r.item_ids,
            &r.territory_codes,
            &r.valid_from,
            &r.valid_until,
            &r.directory_service_id,
        )?;
        self.screening
            .check(
                &md,
                &caller,
                &[("title", &sheet.title), ("body", &sheet.body)],
            )
            .await?;
        let now = now_us();
        let row = SolutionRow {
            solution_id: uuid::Uuid::now_v7().to_string(),
            author_user_id: caller.user_id.clone(),
            author_structure_id: caller.structures.first().cloned().unwrap_or_default(),
            title: sheet.title,
            body: sheet.body,
            domains: sheet.domains.join(","),
            item_ids: sheet.items.join(","),
            territory_codes: sheet.territories.join(","),
            valid_from: sheet.valid_from,
            valid_until: sheet.valid_until,
            directory_service_id: sheet.directory_service_id,
            status: "published".into(),
            created_at_us: now,
            updated_at_us: now,
            used_count: 0,
            worked_count: 0,
        };
        let mut tx = self.db.begin().await.map_err(internal)?;
        write(&mut tx, &row, true).await.map_err(internal)?;
        search::index(&mut tx, &doc(&row)).await.map_err(internal)?;
        publish(
            &mut tx,
            "eva.community.solution.published",
            &row.solution_id,
            &pb::SolutionPublished {
                solution_id: row.solution_id.clone(),
                domains: sheet.domains,
                item_ids: sheet.items,
                territory_codes: sheet.territories,
                published_at: Some(to_timestamp(now)),
            },
        )
        .await
        .map_err(internal)?;
        tx.commit().await.map_err(internal)?;
        tracing::info!(solution_id = %row.solution_id, "solution published");
        Ok(Response::new(pb::CreateSolutionResponse {
            solution: Some(to_proto(&row)),
        }))
    }

    async fn get_solution(
        &self,
        req: Request<pb::GetSolutionRequest>,
    ) -> Result<Response<pb::GetSolutionResponse>, Status> {
        let caller = require_role(&req, MEMBERS)?.clone();
        let s = self
            .seen_solution(&caller, &req.get_ref().solution_id)
            .await?;
        Ok(Response::new(pb::GetSolutionResponse {
            solution: Some(to_proto(&s)),
        }))
    }

    async fn list_solutions(
        &self,
        req: Request<pb::ListSolutionsRequest>,
    ) -> Result<Response<pb::ListSolutionsResponse>, Status> {
        let caller = require_role(&req, MEMBERS)?.clone();
        let r = req.into_inner();
        let page = Page::parse(r.page_size, &r.page_token)?;
        let offset = page.offset()?;
        let mut binds: Vec<String> = vec![caller.user_id.clone()];
        let mut clauses = vec![format!("(s.status = 'published' OR {})", MODERATED_BY_1)];
        let mut any_of = |binds: &mut Vec<String>, column: &str, values: &[String]| {
            let mut any = Vec::new();
            for v in values {
                binds.push(format!("%,{v},%"));
                any.push(format!("(',' || s.{column} || ',') LIKE ${}", binds.len()));
            }
            if !any.is_empty() {
                clauses.push(format!("({})", any.join(" OR ")));
            }
        };
        let domains = check_domains("domains", &r.domains)?;
        any_of(&mut binds, "domains", &domains);
        let items = check_items(&r.item_ids)?;
        any_of(&mut binds, "item_ids", &items);
        if !r.territory_code.trim().is_empty() {
            let t = check_territory("territory_code", &r.territory_code)?;
            let c = territory_sql("s.territory_codes", &t, &mut binds);
            clauses.push(c);
        }
        if !r.include_expired {
            binds.push(eva_platform::consent::today());
            clauses.push(format!(
                "(s.valid_until = '' OR s.valid_until >= ${})",
                binds.len()
            ));
        }
        let sql = format!(
            "SELECT {COLUMNS} FROM solutions s WHERE {} \
             ORDER BY worked_count DESC, used_count DESC, s.solution_id DESC LIMIT {} OFFSET {offset}",
            clauses.join(" AND "),
            page.fetch_limit()
        );
        let mut h = self.db.acquire().await.map_err(internal)?;
        let rows = on_backend!(h.conn(), c => {
            let mut q = sqlx::query_as::<_, SolutionRow>(sqlx::AssertSqlSafe(sql.as_str()));
            for b in &binds {
                q = q.bind(b.as_str());
            }
            q.fetch_all(&mut *c).await
        })
        .map_err(internal)?;
        let (rows, next) = page.finish_at(rows, offset);
        Ok(Response::new(pb::ListSolutionsResponse {
            solutions: rows.iter().map(to_proto).collect(),
            next_page_token: next,
        }))
    }

    async fn update_solution(
        &self,
        req: Request<pb::UpdateSolutionRequest>,
    ) -> Result<Response<pb::UpdateSolutionResponse>, Status> {
        let caller = require_role(&req, MEMBERS)?.clone();
        let md = req.metadata().clone();
        let new = req
            .into_inner()
            .solution
            .ok_or_else(|| invalid_field("solution", "fiche manquante / missing solution"))?;
        let current = self.seen_solution(&caller, &new.solution_id).await?;
        if current.author_user_id != caller.user_id {
            return Err(Status::permission_denied(
                "seul l'auteur modifie sa fiche / only the author edits a solution",
            ));
        }
        let sheet = check_sheet(
            &new.title,
            &new.body,
            &new.domains,
            &new.item_ids,
            &new.territory_codes,
            &new.valid_from,
            &new.valid_until,
            &new.directory_service_id,
        )?;
        self.screening
            .check(
                &md,
                &caller,
                &[("title", &sheet.title), ("body", &sheet.body)],
            )
            .await?;
        let row = SolutionRow {
            title: sheet.title,
            body: sheet.body,
            domains: sheet.domains.join(","),
            item_ids: sheet.items.join(","),
            territory_codes: sheet.territories.join(","),
            valid_from: sheet.valid_from,
            valid_until: sheet.valid_until,
            directory_service_id: sheet.directory_service_id,
            updated_at_us: now_us(),
            ..current
        };
        let mut tx = self.db.begin().await.map_err(internal)?;
        write(&mut tx, &row, false).await.map_err(internal)?;
        search::index(&mut tx, &doc(&row)).await.map_err(internal)?;
        tx.commit().await.map_err(internal)?;
        tracing::info!(solution_id = %row.solution_id, "solution edited");
        Ok(Response::new(pb::UpdateSolutionResponse {
            solution: Some(self.solution_now(&row.solution_id).await?),
        }))
    }

    async fn record_solution_feedback(
        &self,
        req: Request<pb::RecordSolutionFeedbackRequest>,
    ) -> Result<Response<pb::RecordSolutionFeedbackResponse>, Status> {
        let caller = require_role(&req, MEMBERS)?.clone();
        let r = req.into_inner();
        let s = self.seen_solution(&caller, &r.solution_id).await?;
        let mut tx = self.db.begin().await.map_err(internal)?;
        on_backend!(tx.conn(), c => sqlx::query(
            "INSERT INTO solution_feedback (solution_id, user_id, worked, created_at_us) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (solution_id, user_id) DO UPDATE SET worked = excluded.worked, created_at_us = excluded.created_at_us",
        )
        .bind(&s.solution_id)
        .bind(&caller.user_id)
        .bind(r.worked)
        .bind(now_us())
        .execute(&mut *c)
        .await
        .map(|_| ()))
        .map_err(internal)?;
        tx.commit().await.map_err(internal)?;
        tracing::info!(solution_id = %s.solution_id, worked = r.worked, "solution feedback recorded");
        Ok(Response::new(pb::RecordSolutionFeedbackResponse {
            solution: Some(self.solution_now(&s.solution_id).await?),
        }))
    }
}
