//! `eva.identity.v1.PersonAccountService`: a counselor of a structure that
//! follows a person invites them to open their own account. The account holds
//! the role `person` (no structure) and is linked to the person; the code is
//! the usual invitation code (hashed, 7 days, shown once), accepted with
//! `SessionService.AcceptInvitation`.

use std::sync::Arc;

use eva_platform::audit::{self, Access};
use eva_platform::auth::{Role, require_role};
use eva_platform::crypto::Kek;
use eva_platform::db::{Db, now_us};
use eva_platform::grpc::invalid_field;
use eva_proto::audit::v1::AccessAction;
use eva_proto::identity::v1 as pb;
use eva_proto::identity::v1::person_account_service_server::PersonAccountServiceServer;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::SERVICE;
use crate::accounts::invite::{INVITATION_TTL, new_code};
use crate::accounts::session::digest;
use crate::accounts::store::{InvitationRow, NewUser};
use crate::accounts::{Accounts, parse_email};
use crate::people::api::{FOLLOWERS, field, internal, person_access, relation_of, unreadable};
use crate::people::store::PeopleStore;
use crate::people::{Relation, check_id, person_not_found};

/// The state behind `PersonAccountService`.
#[derive(Clone)]
pub struct PersonAccounts {
    db: Db,
    kek: Kek,
    accounts: Arc<Accounts>,
}

/// `PersonAccountService`, ready for `GrpcServer::add_service`.
pub fn server(
    db: Db,
    kek: Kek,
    accounts: Arc<Accounts>,
) -> PersonAccountServiceServer<PersonAccounts> {
    PersonAccountServiceServer::new(PersonAccounts { db, kek, accounts })
}

fn already_has_account() -> Status {
    Status::already_exists(
        "cette personne a déjà son compte EVA / this person already has an EVA account",
    )
}

#[tonic::async_trait]
impl pb::person_account_service_server::PersonAccountService for PersonAccounts {
    async fn invite_person(
        &self,
        req: Request<pb::InvitePersonRequest>,
    ) -> Result<Response<pb::InvitePersonResponse>, Status> {
        let caller = require_role(&req, FOLLOWERS)?.clone();
        let r = req.into_inner();
        check_id("person_id", &r.person_id)?;
        let Some(Relation::Following { structure_id }) =
            relation_of(&self.db, &caller, &r.person_id).await?
        else {
            return Err(person_not_found());
        };
        let email = if r.email.trim().is_empty() {
            let mut h = self.db.acquire().await.map_err(internal)?;
            let row = PeopleStore
                .person(h.conn(), &r.person_id)
                .await
                .map_err(internal)?
                .ok_or_else(person_not_found)?;
            let known = row.open(&self.kek).map_err(unreadable)?.email;
            if known.is_empty() {
                return Err(invalid_field(
                    "email",
                    "indiquez l'adresse e-mail de la personne : elle s'en servira pour se connecter / give the person's e-mail address: they will use it to log in",
                ));
            }
            parse_email("email", &known).map_err(field)?
        } else {
            parse_email("email", &r.email).map_err(field)?
        };
        let a = &self.accounts;
        let bidx = a.email_index(&email);
        let now = now_us();
        let mut tx = self.db.begin().await.map_err(internal)?;
        let user_id = match a
            .store
            .user_by_person(tx.conn(), &r.person_id)
            .await
            .map_err(internal)?
        {
            // A pending account gets a new code at the same address.
            Some(u) if u.status == "invited" => {
                let same = a
                    .store
                    .user_by_email(tx.conn(), &bidx)
                    .await
                    .map_err(internal)?
                    .is_some_and(|e| e.user_id == u.user_id);
                if !same {
                    return Err(Status::already_exists(
                        "cette personne a déjà une invitation en attente à une autre adresse : renvoyez-la sans adresse ou avec la même / this person already has a pending invitation to another address",
                    ));
                }
                a.store
                    .expire_invitations(tx.conn(), &u.user_id, &structure_id, now)
                    .await
                    .map_err(internal)?;
                u.user_id
            }
            Some(_) => return Err(already_has_account()),
            None => {
                if a.store
                    .user_by_email(tx.conn(), &bidx)
                    .await
                    .map_err(internal)?
                    .is_some()
                {
                    return Err(Status::already_exists(
                        "cette adresse e-mail sert déjà à un autre compte EVA : indiquez-en une autre / this e-mail address already belongs to another EVA account",
                    ));
                }
                let id = Uuid::now_v7().to_string();
                let created = a
                    .store
                    .insert_user(
                        tx.conn(),
                        &NewUser {
                            user_id: &id,
                            email_bidx: &bidx,
                            email_sealed: &a.seal(&id, "email", &email),
                            // The person chooses the name others see when accepting.
                            display_name_sealed: &a.seal(&id, "display_name", ""),
                            status: "invited",
                            created_at_us: now,
                        },
                    )
                    .await
                    .map_err(internal)?;
                if !created {
                    return Err(Status::aborted(
                        "une autre invitation pour cette adresse vient d'être créée : réessayez / another invitation for this e-mail was just created: try again",
                    ));
                }
                a.store
                    .set_user_person(tx.conn(), &id, &r.person_id)
                    .await
                    .map_err(internal)?;
                a.store
                    .insert_membership(tx.conn(), &id, "", Role::Person.as_str(), now)
                    .await
                    .map_err(internal)?;
                id
            }
        };
        let code = new_code();
        let invitation = InvitationRow {
            code_hash: digest(&code),
            invitation_id: Uuid::now_v7().to_string(),
            user_id: user_id.clone(),
            structure_id: structure_id.clone(),
            role: Role::Person.as_str().to_owned(),
            expires_at_us: now + INVITATION_TTL.as_micros() as i64,
            used_at_us: None,
            created_by: caller.user_id.clone(),
            created_at_us: now,
        };
        a.store
            .insert_invitation(tx.conn(), &invitation)
            .await
            .map_err(internal)?;
        audit::record(
            &mut tx,
            SERVICE,
            Access {
                resource_type: "person_account",
                resource_id: &user_id,
                ..person_access(
                    &caller,
                    &r.person_id,
                    Some(&structure_id),
                    AccessAction::Write,
                )
            },
        )
        .await
        .map_err(internal)?;
        tx.commit().await.map_err(internal)?;
        tracing::info!(person_id = %r.person_id, user_id = %user_id, structure_id = %structure_id, invitation_id = %invitation.invitation_id, "person invited to their own account");
        let mut inv = a.invitation(&invitation, email, code);
        inv.person_id = r.person_id;
        Ok(Response::new(pb::InvitePersonResponse {
            invitation: Some(inv),
        }))
    }
}
