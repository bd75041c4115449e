//! `eva.identity.v1.PersonService`: register, read, change and find people
//! supported. Only the person and the structures following them see a
//! person; every read and write is in the person's access log.

use eva_platform::audit::{self, Access};
use eva_platform::auth::{Principal, Role, require_role};
use eva_platform::consent::today;
use eva_platform::crypto::{CryptoError, Kek, WrappedKey};
use eva_platform::db::{Db, now_us};
use eva_platform::grpc::invalid_field;
use eva_platform::pagination::Page;
use eva_proto::audit::v1::AccessAction;
use eva_proto::identity::v1 as pb;
use eva_proto::identity::v1::person_service_server::PersonServiceServer;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::store::{AccompanimentRow, PeopleStore, PersonRow, Search};
use super::{
    PersonFields, Relation, candidate_indexes, check_id, check_referent, name_index,
    name_match_indexes, normalise, parse_date, person_not_found, relation,
};
use crate::structure::FieldError;
use crate::{IdentityError, SERVICE};

/// Roles that may open a person's file, given the right relation.
pub const PERSON_READERS: &[Role] = &[Role::Person, Role::Counselor, Role::StructureAdmin];
/// Roles that act for a structure that follows people.
pub const FOLLOWERS: &[Role] = &[Role::Counselor, Role::StructureAdmin];
/// Most candidate names `MatchFollowedNames` takes.
pub const MAX_NAME_CANDIDATES: usize = 500;
/// The purpose recorded in the access log for identity's own accesses.
pub const PURPOSE: &str = "accompagnement";

/// The state behind `PersonService`.
#[derive(Clone)]
pub struct PersonApi {
    db: Db,
    kek: Kek,
    store: PeopleStore,
}

/// `PersonService`, ready for `GrpcServer::add_service`.
pub fn server(db: Db, kek: Kek) -> PersonServiceServer<PersonApi> {
    PersonServiceServer::new(PersonApi {
        db,
        kek,
        store: PeopleStore,
    })
}

pub(crate) fn field(e: FieldError) -> Status {
    invalid_field(e.field, &e.message)
}

pub(crate) fn internal(e: impl Into<IdentityError>) -> Status {
    Status::from(e.into())
}

pub(crate) fn unreadable(_: CryptoError) -> Status {
    internal(IdentityError::Keys(
        "a person's data cannot be opened: wrong key-encryption key or damaged row".into(),
    ))
}

/// Today in the Europe/Paris calendar, as a date and as `YYYY-MM-DD`.
pub(crate) fn today_date() -> Result<(time::Date, String), Status> {
    let s = today();
    let d = parse_date(&s)
        .ok_or_else(|| Status::internal("date du jour illisible / cannot read today's date"))?;
    Ok((d, s))
}

/// How `caller` relates to `person_id`; `None` (answer NOT_FOUND) for
/// anyone who may not see the person, or an unknown person.
pub async fn relation_of(
    db: &Db,
    caller: &Principal,
    person_id: &str,
) -> Result<Option<Relation>, Status> {
    let store = PeopleStore;
    let mut h = db.acquire().await.map_err(internal)?;
    let exists = store.exists(h.conn(), person_id).await.map_err(internal)?;
    if !exists {
        return Ok(None);
    }
    let following = store
        .following(h.conn(), person_id, &today())
        .await
        .map_err(internal)?;
    Ok(relation(caller, person_id, exists, &following))
}

/// The access-log entry for `caller` touching `person_id`'s identity.
pub(crate) fn person_access<'a>(
    caller: &'a Principal,
    person_id: &'a str,
    structure_id: Option<&'a str>,
    action: AccessAction,
) -> Access<'a> {
    Access {
        person_id,
        actor: caller,
        structure_id,
        action,
        resource_type: "person",
        resource_id: person_id,
        domains: Vec::new(),
        purpose: PURPOSE,
    }
}

impl PersonApi {
    fn person(&self, row: &PersonRow) -> Result<pb::Person, Status> {
        row.to_proto(&self.kek).map_err(unreadable)
    }
}

#[tonic::async_trait]
impl pb::person_service_server::PersonService for PersonApi {
    async fn create_person(
        &self,
        req: Request<pb::CreatePersonRequest>,
    ) -> Result<Response<pb::CreatePersonResponse>, Status> {
        let caller = require_role(&req, FOLLOWERS)?.clone();
        let r = req.into_inner();
        check_id("structure_id", &r.structure_id)?;
        if !caller.belongs_to(&r.structure_id) {
            return Err(Status::permission_denied(
                "accès refusé : vous n'êtes pas membre de cette structure / access denied: you are not a member of this structure",
            ));
        }
        let (today, today_s) = today_date()?;
        let fields = PersonFields::parse(&r, today).map_err(field)?;
        let referent = check_referent(&r.referent_user_id).map_err(field)?;
        let structures = crate::store::Store::new(self.db.clone());
        if structures
            .structure(&r.structure_id)
            .await
            .map_err(internal)?
            .is_none()
        {
            return Err(invalid_field(
                "structure_id",
                "structure inconnue / unknown structure",
            ));
        }
        let person_id = Uuid::now_v7().to_string();
        let now = now_us();
        let row =
            PersonRow::seal(&self.kek, &person_id, None, &fields, now, now).map_err(unreadable)?;
        let accompaniment = AccompanimentRow {
            accompaniment_id: Uuid::now_v7().to_string(),
            person_id: person_id.clone(),
            structure_id: r.structure_id.clone(),
            referent_user_id: referent,
            started_on: today_s,
            ended_on: None,
            end_reason: None,
            referral_id: String::new(),
            created_at_us: now,
        };
        let mut tx = self.db.begin().await.map_err(internal)?;
        self.store
            .insert_person(tx.conn(), &row)
            .await
            .map_err(internal)?;
        let (last_bidx, full_bidx) = name_match_indexes(
            &self.kek.blind_index(),
            &fields.last_name,
            &fields.first_name,
        );
        self.store
            .set_name_match_indexes(tx.conn(), &person_id, &last_bidx, &full_bidx)
            .await
            .map_err(internal)?;
        self.store
            .start_accompaniment(&mut tx, &accompaniment)
            .await
            .map_err(internal)?;
        audit::record(
            &mut tx,
            SERVICE,
            person_access(
                &caller,
                &person_id,
                Some(&r.structure_id),
                AccessAction::Write,
            ),
        )
        .await
        .map_err(internal)?;
        tx.commit().await.map_err(internal)?;
        tracing::info!(person_id = %person_id, structure_id = %r.structure_id, "person registered");
        Ok(Response::new(pb::CreatePersonResponse {
            person: Some(self.person(&row)?),
            accompaniment: Some(accompaniment.into()),
        }))
    }

    async fn get_person(
        &self,
        req: Request<pb::GetPersonRequest>,
    ) -> Result<Response<pb::GetPersonResponse>, Status> {
        let caller = require_role(&req, PERSON_READERS)?.clone();
        let id = req.into_inner().person_id;
        check_id("person_id", &id)?;
        let rel = relation_of(&self.db, &caller, &id)
            .await?
            .ok_or_else(person_not_found)?;
        // The access is written first: on SQLite a transaction that reads
        // before it writes can be refused the write.
        let mut tx = self.db.begin().await.map_err(internal)?;
        audit::record(
            &mut tx,
            SERVICE,
            person_access(&caller, &id, rel.structure_id(), AccessAction::Read),
        )
        .await
        .map_err(internal)?;
        let row = self
            .store
            .person(tx.conn(), &id)
            .await
            .map_err(internal)?
            .ok_or_else(person_not_found)?;
        let person = self.person(&row)?;
        tx.commit().await.map_err(internal)?;
        Ok(Response::new(pb::GetPersonResponse {
            person: Some(person),
        }))
    }

    async fn update_person(
        &self,
        req: Request<pb::UpdatePersonRequest>,
    ) -> Result<Response<pb::UpdatePersonResponse>, Status> {
        let caller = require_role(&req, PERSON_READERS)?.clone();
        let r = req.into_inner();
        check_id("person_id", &r.person_id)?;
        let rel = relation_of(&self.db, &caller, &r.person_id)
            .await?
            .ok_or_else(person_not_found)?;
        let (today, _) = today_date()?;
        // Checked before anything is written, field by field.
        let mut probe = PersonFields::default();
        probe.apply(&r, today).map_err(field)?;
        let now = now_us();
        let mut tx = self.db.begin().await.map_err(internal)?;
        if !self
            .store
            .touch(tx.conn(), &r.person_id, now)
            .await
            .map_err(internal)?
        {
            return Err(person_not_found());
        }
        let row = self
            .store
            .person(tx.conn(), &r.person_id)
            .await
            .map_err(internal)?
            .ok_or_else(person_not_found)?;
        let mut fields = row.open(&self.kek).map_err(unreadable)?;
        fields.apply(&r, today).map_err(field)?;
        let wrapped = WrappedKey(row.wrapped_key.clone());
        let updated = PersonRow::seal(
            &self.kek,
            &r.person_id,
            Some(&wrapped),
            &fields,
            row.created_at_us,
            now,
        )
        .map_err(unreadable)?;
        self.store
            .update_person(tx.conn(), &updated)
            .await
            .map_err(internal)?;
        let (last_bidx, full_bidx) = name_match_indexes(
            &self.kek.blind_index(),
            &fields.last_name,
            &fields.first_name,
        );
        self.store
            .set_name_match_indexes(tx.conn(), &r.person_id, &last_bidx, &full_bidx)
            .await
            .map_err(internal)?;
        audit::record(
            &mut tx,
            SERVICE,
            person_access(
                &caller,
                &r.person_id,
                rel.structure_id(),
                AccessAction::Write,
            ),
        )
        .await
        .map_err(internal)?;
        let person = self.person(&updated)?;
        tx.commit().await.map_err(internal)?;
        tracing::info!(person_id = %r.person_id, "person updated");
        Ok(Response::new(pb::UpdatePersonResponse {
            person: Some(person),
        }))
    }

    async fn list_people(
        &self,
        req: Request<pb::ListPeopleRequest>,
    ) -> Result<Response<pb::ListPeopleResponse>, Status> {
        let caller = require_role(&req, FOLLOWERS)?.clone();
        let r = req.into_inner();
        check_id("structure_id", &r.structure_id)?;
        if !caller.belongs_to(&r.structure_id) {
            return Err(Status::permission_denied(
                "accès refusé : vous n'êtes pas membre de cette structure / access denied: you are not a member of this structure",
            ));
        }
        let page = Page::parse(r.page_size, &r.page_token)?;
        let (today, today_s) = today_date()?;
        let search = search(&self.kek, &r, today).map_err(field)?;
        let mut h = self.db.acquire().await.map_err(internal)?;
        let (rows, next) = self
            .store
            .followed_by(h.conn(), &r.structure_id, &today_s, &search, &page)
            .await
            .map_err(internal)?;
        drop(h);
        let people = rows
            .iter()
            .map(|row| self.person(row))
            .collect::<Result<Vec<_>, _>>()?;
        if !rows.is_empty() {
            // One access-log entry per person shown, committed before the answer.
            let mut tx = self.db.begin().await.map_err(internal)?;
            for row in &rows {
                audit::record(
                    &mut tx,
                    SERVICE,
                    person_access(
                        &caller,
                        &row.person_id,
                        Some(&r.structure_id),
                        AccessAction::Read,
                    ),
                )
                .await
                .map_err(internal)?;
            }
            tx.commit().await.map_err(internal)?;
        }
        Ok(Response::new(pb::ListPeopleResponse {
            people,
            next_page_token: next,
        }))
    }

    async fn match_followed_names(
        &self,
        req: Request<pb::MatchFollowedNamesRequest>,
    ) -> Result<Response<pb::MatchFollowedNamesResponse>, Status> {
        let caller = require_role(&req, FOLLOWERS)?.clone();
        let r = req.into_inner();
        check_id("structure_id", &r.structure_id)?;
        if !caller.belongs_to(&r.structure_id) {
            return Err(Status::permission_denied(
                "accès refusé : vous n'êtes pas membre de cette structure / access denied: you are not a member of this structure",
            ));
        }
        if r.candidates.len() > MAX_NAME_CANDIDATES {
            return Err(invalid_field(
                "candidates",
                "500 noms au plus / at most 500 names",
            ));
        }
        if r.candidates.iter().any(|c| c.chars().count() > 200) {
            return Err(invalid_field(
                "candidates",
                "200 caractères au plus par nom / at most 200 characters per name",
            ));
        }
        let (_, today_s) = today_date()?;
        let mut h = self.db.acquire().await.map_err(internal)?;
        let rows = self
            .store
            .followed_name_indexes(h.conn(), &r.structure_id, &today_s)
            .await
            .map_err(internal)?;
        let bidx = self.kek.blind_index();
        let mut known: std::collections::HashSet<String> = std::collections::HashSet::new();
        let mut backfill: Vec<(String, String, String)> = Vec::new();
        for (person_id, last, full) in rows {
            if last.is_empty() {
                // Registered before the name-match indexes existed: indexed
                // now, once (the sealed names are opened for that alone).
                let Some(row) = self
                    .store
                    .person(h.conn(), &person_id)
                    .await
                    .map_err(internal)?
                else {
                    continue;
                };
                let f = row.open(&self.kek).map_err(unreadable)?;
                let (last, full) = name_match_indexes(&bidx, &f.last_name, &f.first_name);
                known.insert(last.clone());
                known.insert(full.clone());
                backfill.push((person_id, last, full));
            } else {
                known.insert(last);
                known.insert(full);
            }
        }
        drop(h);
        if !backfill.is_empty() {
            let mut tx = self.db.begin().await.map_err(internal)?;
            for (person_id, last, full) in &backfill {
                self.store
                    .set_name_match_indexes(tx.conn(), person_id, last, full)
                    .await
                    .map_err(internal)?;
            }
            tx.commit().await.map_err(internal)?;
        }
        let mut matched: Vec<String> = Vec::new();
        for c in r.candidates {
            if c.trim().is_empty() || matched.contains(&c) {
                continue;
            }
            let (last, full) = candidate_indexes(&bidx, &c);
            if known.contains(&last) || known.contains(&full) {
                matched.push(c);
            }
        }
        Ok(Response::new(pb::MatchFollowedNamesResponse { matched }))
    }
}

/// The blind indexes a search asks for. A name search needs the last name,
/// the first name and the birth date together.
fn search(kek: &Kek, r: &pb::ListPeopleRequest, today: time::Date) -> Result<Search, FieldError> {
    let bidx = kek.blind_index();
    let mut s = Search::default();
    let name_parts = [
        ("last_name", &r.last_name),
        ("first_name", &r.first_name),
        ("birth_date", &r.birth_date),
    ];
    if name_parts.iter().any(|(_, v)| !v.trim().is_empty()) {
        let mut values = Vec::new();
        for (name, v) in name_parts {
            if v.trim().is_empty() {
                return Err(FieldError {
                    field: name,
                    message: "pour chercher par nom, indiquez le nom, le prénom et la date de naissance / a name search needs last_name, first_name and birth_date".into(),
                });
            }
            values.push(normalise(name, v, today)?);
        }
        s.name_bidx = Some(name_index(&bidx, &values[0], &values[1], &values[2]));
    }
    if !r.nir.trim().is_empty() {
        s.nir_bidx = Some(bidx.index("nir", &normalise("nir", &r.nir, today)?));
    }
    if !r.email.trim().is_empty() {
        s.email_bidx = Some(bidx.index("email", &normalise("email", &r.email, today)?));
    }
    Ok(s)
}
