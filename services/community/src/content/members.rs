//! A space's members: who is there, moderators first then by name, and the
//! rule that a space keeps a moderator (its last one can neither step down
//! nor leave: they appoint someone first).
//!
//! Names: identity publishes no account names, and community does not read
//! identity's database. A member's own name and structure are asked of
//! identity (`SessionService.GetMe`) with the member's own token when they
//! join, create a space or list its members, and kept beside the membership;
//! the space's members are the ones who read them. When identity does not
//! answer, the membership goes on without a name, filled at the next try.

use eva_platform::auth::{Principal, Role, require_role};
use eva_platform::db::{Backend, DbError, Tx, to_timestamp};
use eva_platform::grpc::invalid_field;
use eva_platform::on_backend;
use eva_platform::pagination::Page;
use eva_platform::sealing::Sealer;
use eva_proto::community::v1 as pb;
use eva_proto::identity::v1::GetMeRequest;
use eva_proto::identity::v1::session_service_client::SessionServiceClient;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

use super::spaces::{SpaceRow, role_of, visible};
use super::{ContentApi, SPACE_READERS, author_structure, internal};

/// A member's name and structure, as identity tells the member.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnName {
    pub display_name: String,
    pub structure_id: String,
    pub structure_name: String,
}

/// The refusal when a change would leave a space without a moderator.
pub fn last_moderator(leaving: bool) -> Status {
    Status::failed_precondition(if leaving {
        "vous êtes la dernière personne qui modère cet espace : nommez d'abord un autre modérateur \
         (« Membres »), puis quittez l'espace / you are the space's last moderator: appoint \
         another moderator first, then leave"
    } else {
        "c'est la dernière personne qui modère cet espace : nommez d'abord un autre modérateur / \
         this is the space's last moderator: appoint another moderator first"
    })
}

/// Whether `user_id` is the only moderator of `space_id`. On PostgreSQL the
/// moderators' rows are locked until the transaction ends, so two moderators
/// stepping down at once cannot both pass.
pub async fn is_last_moderator(
    tx: &mut Tx,
    space_id: &str,
    user_id: &str,
) -> Result<bool, DbError> {
    let sql = match tx.backend() {
        Backend::Postgres => {
            "SELECT user_id FROM space_members WHERE space_id = $1 AND role = 'moderator' FOR UPDATE"
        }
        Backend::Sqlite => {
            "SELECT user_id FROM space_members WHERE space_id = $1 AND role = 'moderator'"
        }
    };
    let rows: Vec<(String,)> = on_backend!(tx.conn(), c => sqlx::query_as(sql)
        .bind(space_id)
        .fetch_all(&mut *c)
        .await)?;
    Ok(rows.iter().any(|r| r.0 == user_id) && rows.iter().all(|r| r.0 == user_id))
}

/// Keeps `user_id`'s name on all their memberships, and their structure on
/// this one.
pub async fn record_name(
    tx: &mut Tx,
    space_id: &str,
    user_id: &str,
    named: &OwnName,
) -> Result<(), DbError> {
    on_backend!(tx.conn(), c => sqlx::query(
        "UPDATE space_members SET display_name = $2, name_key = $3 WHERE user_id = $1",
    )
    .bind(user_id)
    .bind(&named.display_name)
    .bind(named.display_name.to_lowercase())
    .execute(&mut *c)
    .await
    .map(|_| ()))?;
    on_backend!(tx.conn(), c => sqlx::query(
        "UPDATE space_members SET structure_id = $3, structure_name = $4 \
         WHERE space_id = $1 AND user_id = $2",
    )
    .bind(space_id)
    .bind(user_id)
    .bind(&named.structure_id)
    .bind(&named.structure_name)
    .execute(&mut *c)
    .await
    .map(|_| ()))?;
    Ok(())
}

/// The sort rank: moderators (0, 1) before members (2, 3), named before not.
const RANK: &str = "(CASE WHEN role = 'moderator' THEN 0 ELSE 2 END \
    + CASE WHEN display_name = '' THEN 1 ELSE 0 END)";

#[derive(Debug, sqlx::FromRow)]
struct MemberRow {
    user_id: String,
    display_name: String,
    structure_id: String,
    structure_name: String,
    role: String,
    joined_at_us: i64,
    rank: i32,
    name_key: String,
}

fn page_key(m: &MemberRow) -> String {
    format!("{}\t{}\t{}", m.rank, m.name_key, m.user_id)
}

fn parse_key(after: &str) -> Result<(i32, String, String), Status> {
    let bad = || invalid_field("page_token", "jeton de page invalide / invalid page token");
    let (rank, rest) = after.split_once('\t').ok_or_else(bad)?;
    let (name, user) = rest.rsplit_once('\t').ok_or_else(bad)?;
    Ok((
        rank.parse().map_err(|_| bad())?,
        name.to_owned(),
        user.to_owned(),
    ))
}

impl ContentApi {
    /// The caller's own name and structure (the space's for a private space,
    /// else their first), asked of identity with their own token; `None`
    /// when identity is unknown or does not answer.
    pub async fn own_name(
        &self,
        md: &MetadataMap,
        caller: &Principal,
        space_structure: &str,
    ) -> Option<OwnName> {
        let channel = self.screening.identity()?;
        let mut client = SessionServiceClient::new(channel.clone());
        let user = match client.get_me(Sealer::request(md, GetMeRequest {})).await {
            Ok(r) => r.into_inner().user?,
            Err(e) => {
                tracing::warn!(code = ?e.code(), "member's name unavailable for now");
                return None;
            }
        };
        let structure_id = author_structure(caller, space_structure);
        let structure_name = user
            .memberships
            .iter()
            .find(|m| m.structure_id == structure_id && !structure_id.is_empty())
            .map(|m| m.structure_name.clone())
            .unwrap_or_default();
        Some(OwnName {
            display_name: user.display_name.trim().to_owned(),
            structure_id,
            structure_name,
        })
    }

    /// Asks the caller's name and keeps it on their membership of `space_id`
    /// (nothing when identity does not answer).
    pub async fn refresh_name(
        &self,
        md: &MetadataMap,
        caller: &Principal,
        space: &SpaceRow,
    ) -> Result<(), Status> {
        let Some(named) = self.own_name(md, caller, &space.structure_id).await else {
            return Ok(());
        };
        let mut tx = self.db.begin().await.map_err(internal)?;
        record_name(&mut tx, &space.space_id, &caller.user_id, &named)
            .await
            .map_err(internal)?;
        tx.commit().await.map_err(internal)
    }

    /// Whether the caller manages the space's roles: an operator, an admin
    /// of a private space's structure, or a moderator of the space.
    pub async fn manages(&self, caller: &Principal, s: &SpaceRow) -> Result<bool, Status> {
        Ok(caller.has_role(Role::Operator)
            || (s.kind == "structure"
                && caller.has_role(Role::StructureAdmin)
                && caller.belongs_to(&s.structure_id))
            || self.moderates(&s.space_id, &caller.user_id).await?)
    }

    /// `SpaceService.ListSpaceMembers`.
    pub async fn list_members(
        &self,
        req: Request<pb::ListSpaceMembersRequest>,
    ) -> Result<Response<pb::ListSpaceMembersResponse>, Status> {
        let caller = require_role(&req, SPACE_READERS)?.clone();
        let md = req.metadata().clone();
        let r = req.into_inner();
        let s = visible(&self.db, &caller, &r.space_id).await?;
        let page = Page::parse(r.page_size, &r.page_token)?;
        let after = page.after.as_deref().map(parse_key).transpose()?;
        let member = self.role_in(&s.space_id, &caller.user_id).await?.is_some();
        if !member && !self.manages(&caller, &s).await? {
            return Err(Status::permission_denied(
                "réservé aux membres de l'espace : rejoignez-le pour voir qui en fait partie / \
                 only the space's members see who is in it",
            ));
        }
        if member && after.is_none() {
            self.refresh_name(&md, &caller, &s).await?;
        }
        let keyset = if after.is_some() {
            format!("AND ({RANK}, name_key, user_id) > ($2, $3, $4)")
        } else {
            String::new()
        };
        let sql = format!(
            "SELECT user_id, display_name, structure_id, structure_name, role, joined_at_us, \
             {RANK} AS rank, name_key FROM space_members WHERE space_id = $1 {keyset} \
             ORDER BY rank, name_key, user_id LIMIT {}",
            page.fetch_limit()
        );
        let mut h = self.db.acquire().await.map_err(internal)?;
        let rows = on_backend!(h.conn(), c => {
            let mut q = sqlx::query_as::<_, MemberRow>(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(&s.space_id);
            if let Some((rank, name, user)) = &after {
                q = q.bind(*rank).bind(name.as_str()).bind(user.as_str());
            }
            q.fetch_all(&mut *c).await
        })
        .map_err(internal)?;
        let (rows, next) = page.finish(rows, page_key);
        Ok(Response::new(pb::ListSpaceMembersResponse {
            members: rows
                .into_iter()
                .map(|m| pb::SpaceMember {
                    role: role_of(Some(&m.role)) as i32,
                    joined_at: Some(to_timestamp(m.joined_at_us)),
                    user_id: m.user_id,
                    display_name: m.display_name,
                    structure_id: m.structure_id,
                    structure_name: m.structure_name,
                })
                .collect(),
            next_page_token: next,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_keys_round_trip_names_with_tabs() {
        let m = MemberRow {
            user_id: "u1".into(),
            display_name: "A\tB".into(),
            structure_id: String::new(),
            structure_name: String::new(),
            role: "member".into(),
            joined_at_us: 0,
            rank: 2,
            name_key: "a\tb".into(),
        };
        assert_eq!(
            parse_key(&page_key(&m)).ok(),
            Some((2, "a\tb".into(), "u1".into()))
        );
        assert!(parse_key("nonsense").is_err());
        assert!(parse_key("x\ty\tz").is_err());
    }
}
