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
    db: Db,
    accounts: Arc<Accounts>,
}

/// `AccessLogService`, ready for `GrpcServer::add_service`.
pub fn server(db: Db, accounts: Arc<Accounts>) -> AccessLogServiceServer<AccessLogApi> {
    AccessLogServiceServer::new(AccessLogApi { db, accounts })
}

/// Turns stored accesses into entries naming the structure and the actor.
/// Names are looked up once per structure and per account of the page.
pub async fn entries(
    db: &Db,
    accounts: &Accounts,
    rows: Vec<AccessRow>,
) -> Result<Vec<pb::AccessLogEntry>, Status> {
    let structures = crate::store::Store::new(db.clone());
    let mut structure_names: HashMap<String, String> = HashMap::new();
    let mut actor_names: HashMap<String, String> = HashMap::new();
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        if !row.actor_structure_id.is_empty()
            && !structure_names.contains_key(&row.actor_structure_id)
        {
            let name = structures
                .structure(&row.actor_structure_id)
                .await
                .map_err(internal)?
                .map(|s| s.name)
                .unwrap_or_default();
            structure_names.insert(row.actor_structure_id.clone(), name);
        }
        if !row.actor_user_id.is_empty() && !actor_names.contains_key(&row.actor_user_id) {
            let mut h = db.acquire().await.map_err(internal)?;
            let user = accounts
                .store
                .user_by_id(h.conn(), &row.actor_user_id)
                .await
                .map_err(internal)?;
            drop(h);
            // Not an account of this service (a token minted by `eva token`,
            // a system action): no name to show.
            let name = match user {
                Some(u) => accounts
                    .open(&u.user_id, "display_name", &u.display_name_sealed)
                    .map_err(internal)?,
                None => String::new(),
            };
            actor_names.insert(row.actor_user_id.clone(), name);
        }
        let role = Role::parse(&row.actor_role).map_or(pb::Role::Unspecified, role_to_pb);
        out.push(pb::AccessLogEntry {
            actor_display_name: actor_names
                .get(&row.actor_user_id)
                .cloned()
                .unwrap_or_default(),
            actor_structure_name: structure_names
                .get(&row.actor_structure_id)
                .cloned()
                .unwrap_or_default(),
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
        let from = day("from", &r.from)?;
        let to = day("to", &r.to)?;
        if let (Some(f), Some(t)) = (from, to)
            && t < f
        {
            return Err(invalid_field(
                "to",
                "la fin ne peut pas précéder le début (from) / to cannot be before from",
            ));
        }
        authorise(
            &self.db,
            &self.accounts,
            &caller,
            &r.person_id,
            &[Role::StructureAdmin],
        )
        .await?;
        // Not logged: see the module's documentation.
        let (rows, next) = {
            let mut h = self.db.acquire().await.map_err(internal)?;
            page_of(
                h.conn(),
                &r.person_id,
                from.map(|d| day_bounds(d).0),
                to.map(|d| day_bounds(d).1),
                &page,
            )
            .await
            .map_err(internal)?
        };
        Ok(Response::new(pb::ListAccessLogResponse {
            entries: entries(&self.db, &self.accounts, rows).await?,
            next_page_token: next,
        }))
    }
}
