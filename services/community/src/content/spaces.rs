//! `SpaceService`: spaces by territory, by theme and private per structure,
//! their members and moderators.

use eva_platform::auth::{Principal, Role, require_role};
use eva_platform::db::{Db, DbError, Tx, now_us, to_timestamp};
use eva_platform::grpc::invalid_field;
use eva_platform::on_backend;
use eva_platform::pagination::Page;
use eva_proto::community::v1::{
    self as pb, SpaceKind, SpaceRole, space_service_server::SpaceService,
};
use tonic::{Request, Response, Status};

use super::{
    ContentApi, MEMBERS, SPACE_READERS, check_id, check_territory, internal, may_see, members,
    visible_space_sql,
};

pub const COLUMNS: &str = "s.space_id, s.kind, s.name, s.description, s.territory_code, \
    s.domain_id, s.structure_id, s.created_by, s.created_at_us";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SpaceRow {
    pub space_id: String,
    pub kind: String,
    pub name: String,
    pub description: String,
    pub territory_code: String,
    pub domain_id: String,
    pub structure_id: String,
    pub created_by: String,
    pub created_at_us: i64,
}

pub fn kind_code(k: SpaceKind) -> &'static str {
    match k {
        SpaceKind::Territory => "territory",
        SpaceKind::Theme => "theme",
        SpaceKind::Structure => "structure",
        SpaceKind::Unspecified => "",
    }
}

fn kind_of(code: &str) -> SpaceKind {
    match code {
        "territory" => SpaceKind::Territory,
        "theme" => SpaceKind::Theme,
        "structure" => SpaceKind::Structure,
        _ => SpaceKind::Unspecified,
    }
}

pub fn role_of(code: Option<&str>) -> SpaceRole {
    match code {
        Some("member") => SpaceRole::Member,
        Some("moderator") => SpaceRole::Moderator,
        _ => SpaceRole::Unspecified,
    }
}

pub fn to_proto(s: &SpaceRow, my_role: Option<&str>) -> pb::Space {
    pb::Space {
        space_id: s.space_id.clone(),
        name: s.name.clone(),
        description: s.description.clone(),
        kind: kind_of(&s.kind) as i32,
        territory_code: s.territory_code.clone(),
        domain_id: s.domain_id.clone(),
        structure_id: s.structure_id.clone(),
        my_role: role_of(my_role) as i32,
        created_at: Some(to_timestamp(s.created_at_us)),
    }
}

pub fn not_found() -> Status {
    Status::not_found("espace introuvable / space not found")
}

/// The space, if it exists.
pub async fn get(db: &Db, space_id: &str) -> Result<Option<SpaceRow>, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM spaces s WHERE s.space_id = $1");
    let mut h = db.acquire().await?;
    Ok(
        on_backend!(h.conn(), c => sqlx::query_as::<_, SpaceRow>(sqlx::AssertSqlSafe(sql.as_str()))
        .bind(space_id)
        .fetch_optional(&mut *c)
        .await)?,
    )
}

/// The space the caller may see, or NOT_FOUND.
pub async fn visible(db: &Db, caller: &Principal, space_id: &str) -> Result<SpaceRow, Status> {
    check_id("space_id", space_id)?;
    let s = get(db, space_id)
        .await
        .map_err(internal)?
        .ok_or_else(not_found)?;
    if !may_see(caller, &s.kind, &s.structure_id) {
        return Err(not_found());
    }
    Ok(s)
}

async fn insert(tx: &mut Tx, s: &SpaceRow) -> Result<(), DbError> {
    on_backend!(tx.conn(), c => sqlx::query(
        "INSERT INTO spaces (space_id, kind, name, description, territory_code, domain_id, \
         structure_id, created_by, created_at_us) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&s.space_id)
    .bind(&s.kind)
    .bind(&s.name)
    .bind(&s.description)
    .bind(&s.territory_code)
    .bind(&s.domain_id)
    .bind(&s.structure_id)
    .bind(&s.created_by)
    .bind(s.created_at_us)
    .execute(&mut *c)
    .await
    .map(|_| ()))?;
    Ok(())
}

/// Adds or changes a member.
async fn upsert_member(
    tx: &mut Tx,
    space_id: &str,
    user_id: &str,
    role: &str,
    at_us: i64,
) -> Result<(), DbError> {
    on_backend!(tx.conn(), c => sqlx::query(
        "INSERT INTO space_members (space_id, user_id, role, joined_at_us) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (space_id, user_id) DO UPDATE SET role = excluded.role",
    )
    .bind(space_id)
    .bind(user_id)
    .bind(role)
    .bind(at_us)
    .execute(&mut *c)
    .await
    .map(|_| ()))?;
    Ok(())
}

/// Adds a member unless already there.
async fn join(db: &Db, space_id: &str, user_id: &str, at_us: i64) -> Result<(), DbError> {
    let mut h = db.acquire().await?;
    on_backend!(h.conn(), c => sqlx::query(
        "INSERT INTO space_members (space_id, user_id, role, joined_at_us) VALUES ($1, $2, 'member', $3) \
         ON CONFLICT (space_id, user_id) DO NOTHING",
    )
    .bind(space_id)
    .bind(user_id)
    .bind(at_us)
    .execute(&mut *c)
    .await
    .map(|_| ()))?;
    Ok(())
}

async fn leave(tx: &mut Tx, space_id: &str, user_id: &str) -> Result<(), DbError> {
    on_backend!(tx.conn(), c => sqlx::query(
        "DELETE FROM space_members WHERE space_id = $1 AND user_id = $2",
    )
    .bind(space_id)
    .bind(user_id)
    .execute(&mut *c)
    .await
    .map(|_| ()))?;
    Ok(())
}

#[derive(Debug, sqlx::FromRow)]
struct ListedSpace {
    #[sqlx(flatten)]
    space: SpaceRow,
    my_role: Option<String>,
}

impl ContentApi {
    /// The caller's role in `space_id`.
    pub async fn role_in(&self, space_id: &str, user_id: &str) -> Result<Option<String>, Status> {
        super::member_role(&self.db, space_id, user_id)
            .await
            .map_err(internal)
    }

    /// Whether the caller moderates `space_id`.
    pub async fn moderates(&self, space_id: &str, user_id: &str) -> Result<bool, Status> {
        Ok(self.role_in(space_id, user_id).await?.as_deref() == Some("moderator"))
    }
}

#[tonic::async_trait]
impl SpaceService for ContentApi {
    async fn list_spaces(
        &self,
        req: Request<pb::ListSpacesRequest>,
    ) -> Result<Response<pb::ListSpacesResponse>, Status> {
        let caller = require_role(&req, SPACE_READERS)?.clone();
        let r = req.into_inner();
        let page = Page::parse(r.page_size, &r.page_token)?;
        let kind = SpaceKind::try_from(r.kind)
            .map_err(|_| invalid_field("kind", "type d'espace inconnu / unknown space kind"))?;
        let mut binds: Vec<String> = vec![caller.user_id.clone()];
        let mut clauses = vec![visible_space_sql("s", 2, caller.structures.len())];
        binds.extend(caller.structures.iter().cloned());
        if kind != SpaceKind::Unspecified {
            binds.push(kind_code(kind).to_owned());
            clauses.push(format!("s.kind = ${}", binds.len()));
        }
        if r.joined_only {
            clauses.push("m.role IS NOT NULL".to_owned());
        }
        if let Some(after) = &page.after {
            binds.push(after.clone());
            clauses.push(format!("s.space_id > ${}", binds.len()));
        }
        let sql = format!(
            "SELECT {COLUMNS}, m.role AS my_role FROM spaces s \
             LEFT JOIN space_members m ON m.space_id = s.space_id AND m.user_id = $1 \
             WHERE {} ORDER BY s.space_id LIMIT {}",
            clauses.join(" AND "),
            page.fetch_limit()
        );
        let mut h = self.db.acquire().await.map_err(internal)?;
        let rows = on_backend!(h.conn(), c => {
            let mut q = sqlx::query_as::<_, ListedSpace>(sqlx::AssertSqlSafe(sql.as_str()));
            for b in &binds {
                q = q.bind(b.as_str());
            }
            q.fetch_all(&mut *c).await
        })
        .map_err(internal)?;
        let (rows, next) = page.finish(rows, |s| s.space.space_id.clone());
        Ok(Response::new(pb::ListSpacesResponse {
            spaces: rows
                .iter()
                .map(|s| to_proto(&s.space, s.my_role.as_deref()))
                .collect(),
            next_page_token: next,
        }))
    }

    async fn get_space(
        &self,
        req: Request<pb::GetSpaceRequest>,
    ) -> Result<Response<pb::GetSpaceResponse>, Status> {
        let caller = require_role(&req, SPACE_READERS)?.clone();
        let s = visible(&self.db, &caller, &req.get_ref().space_id).await?;
        let role = self.role_in(&s.space_id, &caller.user_id).await?;
        Ok(Response::new(pb::GetSpaceResponse {
            space: Some(to_proto(&s, role.as_deref())),
        }))
    }

    async fn create_space(
        &self,
        req: Request<pb::CreateSpaceRequest>,
    ) -> Result<Response<pb::CreateSpaceResponse>, Status> {
        let caller = require_role(&req, &[Role::Operator, Role::StructureAdmin])?.clone();
        let md = req.metadata().clone();
        let r = req.into_inner();
        let name = r.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(invalid_field(
                "name",
                "donnez un nom de 1 à 200 caractères / give a name of 1 to 200 characters",
            ));
        }
        let description = r.description.trim().to_owned();
        if description.chars().count() > super::MAX_BODY {
            return Err(invalid_field(
                "description",
                &format!(
                    "{} caractères au plus / at most {} characters",
                    super::MAX_BODY,
                    super::MAX_BODY
                ),
            ));
        }
        let kind = SpaceKind::try_from(r.kind)
            .ok()
            .filter(|k| *k != SpaceKind::Unspecified)
            .ok_or_else(|| {
                invalid_field(
                    "kind",
                    "type d'espace requis : territory, theme ou structure / space kind required: territory, theme or structure",
                )
            })?;
        let (mut territory, mut domain, mut structure) =
            (String::new(), String::new(), String::new());
        match kind {
            SpaceKind::Territory | SpaceKind::Theme => {
                if !caller.has_role(Role::Operator) {
                    return Err(Status::permission_denied(
                        "seul un opérateur crée les espaces de territoire et de thème / only an operator creates territory and theme spaces",
                    ));
                }
                if kind == SpaceKind::Territory {
                    territory = check_territory("territory_code", &r.territory_code)?;
                } else {
                    domain = super::check_domains("domain_id", std::slice::from_ref(&r.domain_id))?
                        .into_iter()
                        .next()
                        .unwrap_or_default();
                }
            }
            SpaceKind::Structure => {
                check_id("structure_id", &r.structure_id)?;
                if !(caller.has_role(Role::StructureAdmin) && caller.belongs_to(&r.structure_id)) {
                    return Err(Status::permission_denied(
                        "seul un administrateur de la structure crée son espace privé / only an admin of the structure creates its private space",
                    ));
                }
                structure = r.structure_id.clone();
            }
            SpaceKind::Unspecified => {}
        }
        let row = SpaceRow {
            space_id: uuid::Uuid::now_v7().to_string(),
            kind: kind_code(kind).to_owned(),
            name,
            description,
            territory_code: territory,
            domain_id: domain,
            structure_id: structure,
            created_by: caller.user_id.clone(),
            created_at_us: now_us(),
        };
        let named = self.own_name(&md, &caller, &row.structure_id).await;
        let mut tx = self.db.begin().await.map_err(internal)?;
        insert(&mut tx, &row).await.map_err(internal)?;
        upsert_member(
            &mut tx,
            &row.space_id,
            &caller.user_id,
            "moderator",
            row.created_at_us,
        )
        .await
        .map_err(internal)?;
        if let Some(named) = &named {
            members::record_name(&mut tx, &row.space_id, &caller.user_id, named)
                .await
                .map_err(internal)?;
        }
        tx.commit().await.map_err(internal)?;
        tracing::info!(space_id = %row.space_id, kind = %row.kind, "space created");
        Ok(Response::new(pb::CreateSpaceResponse {
            space: Some(to_proto(&row, Some("moderator"))),
        }))
    }

    async fn join_space(
        &self,
        req: Request<pb::JoinSpaceRequest>,
    ) -> Result<Response<pb::JoinSpaceResponse>, Status> {
        let caller = require_role(&req, MEMBERS)?.clone();
        let s = visible(&self.db, &caller, &req.get_ref().space_id).await?;
        join(&self.db, &s.space_id, &caller.user_id, now_us())
            .await
            .map_err(internal)?;
        self.refresh_name(req.metadata(), &caller, &s).await?;
        let role = self.role_in(&s.space_id, &caller.user_id).await?;
        Ok(Response::new(pb::JoinSpaceResponse {
            space: Some(to_proto(&s, role.as_deref())),
        }))
    }

    async fn leave_space(
        &self,
        req: Request<pb::LeaveSpaceRequest>,
    ) -> Result<Response<pb::LeaveSpaceResponse>, Status> {
        let caller = require_role(&req, SPACE_READERS)?.clone();
        let s = visible(&self.db, &caller, &req.get_ref().space_id).await?;
        let mut tx = self.db.begin().await.map_err(internal)?;
        if members::is_last_moderator(&mut tx, &s.space_id, &caller.user_id)
            .await
            .map_err(internal)?
        {
            return Err(members::last_moderator(true));
        }
        leave(&mut tx, &s.space_id, &caller.user_id)
            .await
            .map_err(internal)?;
        tx.commit().await.map_err(internal)?;
        Ok(Response::new(pb::LeaveSpaceResponse {}))
    }

    async fn set_space_role(
        &self,
        req: Request<pb::SetSpaceRoleRequest>,
    ) -> Result<Response<pb::SetSpaceRoleResponse>, Status> {
        let caller = require_role(&req, SPACE_READERS)?.clone();
        let r = req.into_inner();
        let s = visible(&self.db, &caller, &r.space_id).await?;
        check_id("user_id", &r.user_id)?;
        let role = match SpaceRole::try_from(r.role) {
            Ok(SpaceRole::Member) => "member",
            Ok(SpaceRole::Moderator) => "moderator",
            _ => {
                return Err(invalid_field(
                    "role",
                    "rôle requis : member ou moderator / role required: member or moderator",
                ));
            }
        };
        if !self.manages(&caller, &s).await? {
            return Err(Status::permission_denied(
                "seuls les modérateurs de l'espace changent les rôles / only the space's moderators change roles",
            ));
        }
        if self.role_in(&s.space_id, &r.user_id).await?.is_none() {
            return Err(Status::not_found(
                "cette personne n'est pas membre de l'espace / not a member of this space",
            ));
        }
        let mut tx = self.db.begin().await.map_err(internal)?;
        if role == "member"
            && members::is_last_moderator(&mut tx, &s.space_id, &r.user_id)
                .await
                .map_err(internal)?
        {
            return Err(members::last_moderator(false));
        }
        upsert_member(&mut tx, &s.space_id, &r.user_id, role, now_us())
            .await
            .map_err(internal)?;
        tx.commit().await.map_err(internal)?;
        tracing::info!(space_id = %s.space_id, user_id = %r.user_id, role, "space role changed");
        Ok(Response::new(pb::SetSpaceRoleResponse {
            role: role_of(Some(role)) as i32,
        }))
    }

    async fn list_space_members(
        &self,
        req: Request<pb::ListSpaceMembersRequest>,
    ) -> Result<Response<pb::ListSpaceMembersResponse>, Status> {
        self.list_members(req).await
    }
}
