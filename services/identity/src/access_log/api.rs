//! `eva.identity.v1.AccessLogService`: the person's access log, newest first.

use std::collections::HashMap;
use std::sync::Arc;

use eva_platform::auth::{Role, require_role};
use eva_platform::db::{Db, to_timestamp};
use eva_platform::grpc::invalid_field;
use eva_platform::pagination::Page;
use eva_proto::identity::v1 as pb;
use eva_proto::identity::v1::access_log_service_server::AccessLogServiceServer;
use tonic::{Request, Response, Status};

use super::{AccessRow, action_from_code, day_bounds, page_of};
use crate::accounts::{Accounts, role_to_pb};
use crate::people::api::internal;
use crate::people::{check_id, parse_date};
use crate::rights::authorise;

/// Who reads a person's access log: the person, and the admins of a
/// structure following them.
pub const LOG_READERS: &[Role] = &[Role::Person, Role::StructureAdmin];

/// The state behind `AccessLogService`.
#[derive(Clone)]
pub struct AccessLogApi {
    pub(super) db: Db,
    pub(super) accounts: Arc<Accounts>,
}

/// `AccessLogService`, ready for `GrpcServer::add_service`.
pub fn server(db: Db, accounts: Arc<Accounts>) -> AccessLogServiceServer<AccessLogApi> {
    AccessLogServiceServer::new(AccessLogApi { db, accounts })
}

/// Names of the structures and accounts a page shows, looked up once each.
pub(super) struct Names<'a> {
    db: &'a Db,
    accounts: &'a Accounts,
    structures: HashMap<String, String>,
    actors: HashMap<String, String>,
}

impl<'a> Names<'a> {
    pub(super) fn new(db: &'a Db, accounts: &'a Accounts) -> Self {
        Self {
            db,
            accounts,
            structures: HashMap::new(),
            actors: HashMap::new(),
        }
    }

    /// The structure's name; empty for no structure.
    pub(super) async fn structure(&mut self, id: &str) -> Result<String, Status> {
        if id.is_empty() {
            return Ok(String::new());
        }
        if let Some(n) = self.structures.get(id) {
            return Ok(n.clone());
        }
        let name = crate::store::Store::new(self.db.clone())
            .structure(id)
            .await
            .map_err(internal)?
            .map(|s| s.name)
            .unwrap_or_default();
        self.structures.insert(id.to_owned(), name.clone());
        Ok(name)
    }

    /// The account holder's name; empty for no account.
    pub(super) async fn actor(&mut self, id: &str) -> Result<String, Status> {
        if id.is_empty() {
            return Ok(String::new());
        }
        if let Some(n) = self.actors.get(id) {
            return Ok(n.clone());
        }
        let user = {
            let mut h = self.db.acquire().await.map_err(internal)?;
            self.accounts
                .store
                .user_by_id(h.conn(), id)
                .await
                .map_err(internal)?
        };
        // Not an account of this service (a token minted by `eva token`,
        // a system action): no name to show.
        let name = match user {
            Some(u) => self
                .accounts
                .open(&u.user_id, "display_name", &u.display_name_sealed)
                .map_err(internal)?,
            None => String::new(),
        };
        self.actors.insert(id.to_owned(), name.clone());
        Ok(name)
    }
}

/// Turns stored accesses into entries naming the structure and the actor.
/// Names are looked up once per structure and per account of the page.
pub async fn entries(
    db: &Db,
    accounts: &Accounts,
    rows: Vec<AccessRow>,
) -> Result<Vec<pb::AccessLogEntry>, Status> {
    let mut names = Names::new(db, accounts);
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let role = Role::parse(&row.actor_role).map_or(pb::Role::Unspecified, role_to_pb);
        out.push(pb::AccessLogEntry {
            actor_display_name: names.actor(&row.actor_user_id).await?,
            actor_structure_name: names.structure(&row.actor_structure_id).await?,
            actor_role: role as i32,
            action: action_from_code(&row.action) as i32,
            domains: row.domain_list(),
            occurred_at: Some(to_timestamp(row.occurred_at_us)),
            access_id: row.access_id,
            person_id: row.person_id,
            actor_user_id: row.actor_user_id,
            actor_structure_id: row.actor_structure_id,
            resource_type: row.resource_type,
            resource_id: row.resource_id,
            purpose: row.purpose,
            service: row.service,
        });
    }
    Ok(out)
}

fn day(field: &'static str, raw: &str) -> Result<Option<time::Date>, Status> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    parse_date(raw).map(Some).ok_or_else(|| {
        invalid_field(
            field,
            "date attendue au format AAAA-MM-JJ / expected a date YYYY-MM-DD",
        )
    })
}

/// The period of a request, `from` and `to` as days, checked: the first and
/// last microsecond it covers (Europe/Paris days, see [`day_bounds`]).
pub(super) fn period(from: &str, to: &str) -> Result<(Option<i64>, Option<i64>), Status> {
    let from = day("from", from)?;
    let to = day("to", to)?;
    if let (Some(f), Some(t)) = (from, to)
        && t < f
    {
        return Err(invalid_field(
            "to",
            "la fin ne peut pas précéder le début (from) / to cannot be before from",
        ));
    }
    Ok((from.map(|d| day_bounds(d).0), to.map(|d| day_bounds(d).1)))
}

/// Lets the caller read the person's log (the person, an admin of a
/// structure following them), or answers why not.
pub(super) async fn may_read(
    api: &AccessLogApi,
    caller: &eva_platform::auth::Principal,
    person_id: &str,
) -> Result<(), Status> {
    authorise(
        &api.db,
        &api.accounts,
        caller,
        person_id,
        &[Role::StructureAdmin],
    )
    .await
    .map(|_| ())
}

#[tonic::async_trait]
impl pb::access_log_service_server::AccessLogService for AccessLogApi {
    async fn list_access_log(
        &self,
        req: Request<pb::ListAccessLogRequest>,
    ) -> Result<Response<pb::ListAccessLogResponse>, Status> {
        let caller = require_role(&req, LOG_READERS)?.clone();
        let r = req.into_inner();
        check_id("person_id", &r.person_id)?;
        let page = Page::parse(r.page_size, &r.page_token)?;
        let (from_us, to_us) = period(&r.from, &r.to)?;
        may_read(self, &caller, &r.person_id).await?;
        // Not logged: see the module's documentation.
        let (rows, next) = {
            let mut h = self.db.acquire().await.map_err(internal)?;
            page_of(h.conn(), &r.person_id, from_us, to_us, &page)
                .await
                .map_err(internal)?
        };
        Ok(Response::new(pb::ListAccessLogResponse {
            entries: entries(&self.db, &self.accounts, rows).await?,
            next_page_token: next,
        }))
    }

    async fn summarize_access_log(
        &self,
        req: Request<pb::SummarizeAccessLogRequest>,
    ) -> Result<Response<pb::SummarizeAccessLogResponse>, Status> {
        super::summary::summarize(self, req)
            .await
            .map(Response::new)
    }
}
