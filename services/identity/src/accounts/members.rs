//! `MemberService`: a structure's members. Authorisation first (see the
//! module `accounts`), then validation, then the store in one transaction.

use eva_platform::auth::{Role, require_role};
use eva_platform::db::{Tx, now_us, to_timestamp};
use eva_platform::grpc::invalid_field;
use eva_platform::outbox::{self, Event};
use eva_platform::pagination::Page;
use eva_proto::identity::v1 as pb;
use tonic::{Request, Response, Status};

use super::api::{check_id, field, internal};
use super::invite::{InviteError, NewInvitation};
use super::store::MembershipRow;
use super::{Accounts, parse_display_name, parse_email, role_from_pb, roles_for_kind};
use crate::SERVICE;

impl Accounts {
    /// The roles `user_id` holds in `structure_id`; NOT_FOUND when none.
    async fn held_roles(
        &self,
        tx: &mut Tx,
        user_id: &str,
        structure_id: &str,
    ) -> Result<Vec<String>, Status> {
        let roles = self
            .store
            .roles_in(tx.conn(), user_id, structure_id)
            .await
            .map_err(internal)?;
        if roles.is_empty() {
            return Err(Status::not_found(
                "membre introuvable dans cette structure / no such member in this structure",
            ));
        }
        Ok(roles)
    }

    /// Whether the structure has one administrator at most (who must stay).
    async fn last_admin(&self, tx: &mut Tx, structure_id: &str) -> Result<bool, Status> {
        let admins = self
            .store
            .count_role(tx.conn(), structure_id, Role::StructureAdmin.as_str())
            .await
            .map_err(internal)?;
        Ok(admins <= 1)
    }
}

#[tonic::async_trait]
impl pb::member_service_server::MemberService for Accounts {
    async fn add_member(
        &self,
        req: Request<pb::AddMemberRequest>,
    ) -> Result<Response<pb::AddMemberResponse>, Status> {
        let caller = require_role(&req, &[Role::Operator, Role::StructureAdmin])?.clone();
        let r = req.into_inner();
        self.authorise(&caller, &r.structure_id, &[Role::StructureAdmin])
            .await?;
        check_id("structure_id", &r.structure_id)?;
        let email = parse_email("email", &r.email).map_err(field)?;
        let display_name = parse_display_name(&r.display_name).map_err(field)?;
        let role = pb::Role::try_from(r.role)
            .ok()
            .and_then(role_from_pb)
            .ok_or_else(|| invalid_field("role", "rôle obligatoire / role is required"))?;
        let structure = self
            .store
            .structure(&r.structure_id)
            .await
            .map_err(internal)?
            .ok_or_else(|| Status::not_found("structure introuvable / structure not found"))?;
        let allowed = roles_for_kind(&structure.kind);
        if !allowed.contains(&role) {
            let names: Vec<&str> = allowed.iter().map(|r| r.as_str()).collect();
            return Err(invalid_field(
                "role",
                &format!(
                    "le rôle « {} » n'existe pas dans une structure de type « {} » ; possibles : {} / role not allowed for this kind of structure",
                    role.as_str(),
                    structure.kind,
                    names.join(", ")
                ),
            ));
        }
        let mut tx = self.store.db().begin().await.map_err(internal)?;
        let invited = self
            .invite(
                &mut tx,
                &NewInvitation {
                    email: &email,
                    display_name: &display_name,
                    structure_id: &r.structure_id,
                    role,
                    created_by: &caller.user_id,
                },
            )
            .await
            .map_err(|e| match e {
                InviteError::AlreadyMember => Status::already_exists(e.to_string()),
                InviteError::Conflict => Status::aborted(e.to_string()),
                InviteError::Internal(e) => internal(e),
            })?;
        let here: Vec<MembershipRow> = self
            .store
            .memberships_of(tx.conn(), &invited.user.user_id)
            .await
            .map_err(internal)?
            .into_iter()
            .filter(|m| m.structure_id == r.structure_id)
            .collect();
        tx.commit().await.map_err(internal)?;
        tracing::info!(user_id = %invited.user.user_id, structure_id = %r.structure_id, role = role.as_str(), invitation_id = %invited.invitation.invitation_id, "member invited");
        let email = self.open(&invited.user.user_id, "email", &invited.user.email_sealed)?;
        Ok(Response::new(pb::AddMemberResponse {
            user: Some(self.user(&invited.user, &here)?),
            invitation: Some(self.invitation(&invited.invitation, email, invited.code)),
        }))
    }

    async fn list_members(
        &self,
        req: Request<pb::ListMembersRequest>,
    ) -> Result<Response<pb::ListMembersResponse>, Status> {
        let caller = require_role(
            &req,
            &[Role::Operator, Role::StructureAdmin, Role::Counselor],
        )?
        .clone();
        let r = req.into_inner();
        self.authorise(
            &caller,
            &r.structure_id,
            &[Role::StructureAdmin, Role::Counselor],
        )
        .await?;
        check_id("structure_id", &r.structure_id)?;
        let page = Page::parse(r.page_size, &r.page_token)?;
        if self
            .store
            .structure(&r.structure_id)
            .await
            .map_err(internal)?
            .is_none()
        {
            return Err(Status::not_found(
                "structure introuvable / structure not found",
            ));
        }
        let mut h = self.store.db().acquire().await.map_err(internal)?;
        let (rows, next) = self
            .store
            .members_page(h.conn(), &r.structure_id, &page)
            .await
            .map_err(internal)?;
        drop(h);
        let members = rows
            .iter()
            .map(|(u, m)| self.user(u, m))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Response::new(pb::ListMembersResponse {
            members,
            next_page_token: next,
        }))
    }

    async fn remove_member(
        &self,
        req: Request<pb::RemoveMemberRequest>,
    ) -> Result<Response<pb::RemoveMemberResponse>, Status> {
        let caller = require_role(&req, &[Role::Operator, Role::StructureAdmin])?.clone();
        let r = req.into_inner();
        self.authorise(&caller, &r.structure_id, &[Role::StructureAdmin])
            .await?;
        check_id("structure_id", &r.structure_id)?;
        check_id("user_id", &r.user_id)?;
        let now = now_us();
        let mut tx = self.store.db().begin().await.map_err(internal)?;
        let roles = self
            .held_roles(&mut tx, &r.user_id, &r.structure_id)
            .await?;
        let admin = Role::StructureAdmin.as_str();
        if r.user_id == caller.user_id
            && roles.iter().any(|x| x == admin)
            && self.last_admin(&mut tx, &r.structure_id).await?
        {
            return Err(Status::failed_precondition(
                "vous êtes le dernier administrateur de cette structure : nommez-en un autre avant de partir / you are the last administrator of this structure: appoint another one first",
            ));
        }
        self.store
            .delete_memberships(tx.conn(), &r.user_id, &r.structure_id)
            .await
            .map_err(internal)?;
        self.store
            .expire_invitations(tx.conn(), &r.user_id, &r.structure_id, now)
            .await
            .map_err(internal)?;
        let sessions = self
            .store
            .revoke_user_sessions(tx.conn(), &r.user_id, now)
            .await
            .map_err(internal)?;
        let left = self
            .store
            .count_memberships(tx.conn(), &r.user_id)
            .await
            .map_err(internal)?;
        if left == 0 {
            self.store
                .set_status(tx.conn(), &r.user_id, "disabled")
                .await
                .map_err(internal)?;
            let event = pb::UserDeleted {
                user_id: r.user_id.clone(),
                deleted_at: Some(to_timestamp(now)),
            };
            outbox::enqueue(
                &mut tx,
                &Event::new(
                    SERVICE,
                    "eva.identity.user.deleted",
                    Some(r.user_id.clone()),
                    &event,
                ),
            )
            .await
            .map_err(internal)?;
        }
        tx.commit().await.map_err(internal)?;
        tracing::info!(user_id = %r.user_id, structure_id = %r.structure_id, revoked_tokens = sessions, disabled = left == 0, "member removed");
        Ok(Response::new(pb::RemoveMemberResponse {}))
    }

    async fn set_member_roles(
        &self,
        req: Request<pb::SetMemberRolesRequest>,
    ) -> Result<Response<pb::SetMemberRolesResponse>, Status> {
        let caller = require_role(&req, &[Role::Operator, Role::StructureAdmin])?.clone();
        let r = req.into_inner();
        self.authorise(&caller, &r.structure_id, &[Role::StructureAdmin])
            .await?;
        check_id("structure_id", &r.structure_id)?;
        check_id("user_id", &r.user_id)?;
        let structure = self
            .store
            .structure(&r.structure_id)
            .await
            .map_err(internal)?
            .ok_or_else(|| Status::not_found("structure introuvable / structure not found"))?;
        let allowed = roles_for_kind(&structure.kind);
        let mut wanted: Vec<Role> = Vec::new();
        for raw in &r.roles {
            let role = pb::Role::try_from(*raw)
                .ok()
                .and_then(role_from_pb)
                .filter(|role| allowed.contains(role))
                .ok_or_else(|| {
                    let names: Vec<&str> = allowed.iter().map(|r| r.as_str()).collect();
                    invalid_field(
                        "roles",
                        &format!(
                            "rôle impossible dans une structure de type « {} » ; possibles : {} / role not allowed for this kind of structure",
                            structure.kind,
                            names.join(", ")
                        ),
                    )
                })?;
            if !wanted.contains(&role) {
                wanted.push(role);
            }
        }
        if wanted.is_empty() {
            return Err(invalid_field(
                "roles",
                "choisissez au moins un rôle ; pour retirer la personne de la structure, utilisez « Retirer » / at least one role (to remove the member, use DELETE)",
            ));
        }
        let now = now_us();
        let mut tx = self.store.db().begin().await.map_err(internal)?;
        let held = self
            .held_roles(&mut tx, &r.user_id, &r.structure_id)
            .await?;
        let admin = Role::StructureAdmin.as_str();
        let loses: Vec<&String> = held
            .iter()
            .filter(|h| !wanted.iter().any(|w| w.as_str() == h.as_str()))
            .collect();
        if loses.iter().any(|h| h.as_str() == admin)
            && self.last_admin(&mut tx, &r.structure_id).await?
        {
            return Err(Status::failed_precondition(
                "c'est le dernier administrateur de cette structure : nommez d'abord un autre administrateur / this is the structure's last administrator: appoint another one first",
            ));
        }
        for role in &wanted {
            self.store
                .insert_membership(tx.conn(), &r.user_id, &r.structure_id, role.as_str(), now)
                .await
                .map_err(internal)?;
        }
        for role in &loses {
            self.store
                .delete_membership(tx.conn(), &r.user_id, &r.structure_id, role)
                .await
                .map_err(internal)?;
        }
        // Not accepted yet: the same code now tells the new role (the highest).
        let told = wanted
            .iter()
            .find(|w| **w == Role::StructureAdmin)
            .unwrap_or(&wanted[0]);
        self.store
            .retarget_invitations(tx.conn(), &r.user_id, &r.structure_id, told.as_str(), now)
            .await
            .map_err(internal)?;
        // A role lost takes effect at once in this service (memberships are read at
        // each call) and, elsewhere, when the access token expires: no refresh.
        let sessions = if loses.is_empty() {
            0
        } else {
            self.store
                .revoke_user_sessions(tx.conn(), &r.user_id, now)
                .await
                .map_err(internal)?
        };
        let user = self
            .store
            .user_by_id(tx.conn(), &r.user_id)
            .await
            .map_err(internal)?
            .ok_or_else(|| Status::not_found("membre introuvable / no such member"))?;
        let here: Vec<MembershipRow> = self
            .store
            .memberships_of(tx.conn(), &r.user_id)
            .await
            .map_err(internal)?
            .into_iter()
            .filter(|m| m.structure_id == r.structure_id)
            .collect();
        tx.commit().await.map_err(internal)?;
        let roles: Vec<&str> = wanted.iter().map(|r| r.as_str()).collect();
        tracing::info!(user_id = %r.user_id, structure_id = %r.structure_id, roles = ?roles, revoked_tokens = sessions, "member roles changed");
        Ok(Response::new(pb::SetMemberRolesResponse {
            user: Some(self.user(&user, &here)?),
        }))
    }
}
