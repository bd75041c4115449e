//! Storage of people and accompaniments. Identity fields are sealed here,
//! with the person's data key, and opened only on the way out.

use eva_platform::crypto::{CryptoError, Kek, WrappedKey};
use eva_platform::db::{Conn, DbError};
use eva_platform::on_backend;
use eva_platform::pagination::Page;
use eva_proto::identity::v1 as pb;

use super::{FIELDS, PersonFields};

/// A person as stored: every identity field sealed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PersonRow {
    pub person_id: String,
    pub wrapped_key: Vec<u8>,
    pub first_name: Vec<u8>,
    pub last_name: Vec<u8>,
    pub birth_date: Vec<u8>,
    pub email: Vec<u8>,
    pub phone: Vec<u8>,
    pub nir: Vec<u8>,
    pub commune_insee: Vec<u8>,
    pub name_bidx: String,
    pub nir_bidx: String,
    pub email_bidx: String,
    pub created_at_us: i64,
    pub updated_at_us: i64,
}

/// Where a sealed field belongs: `person:<id>:<field>`.
fn aad(person_id: &str, field: &str) -> Vec<u8> {
    format!("person:{person_id}:{field}").into_bytes()
}

impl PersonRow {
    /// Seals `fields` with the person's data key (created by the caller with
    /// `kek.new_data_key(person_id)` or unwrapped from the row).
    pub fn seal(
        kek: &Kek,
        person_id: &str,
        wrapped: Option<&WrappedKey>,
        fields: &PersonFields,
        created_at_us: i64,
        updated_at_us: i64,
    ) -> Result<Self, CryptoError> {
        let (key, wrapped) = match wrapped {
            Some(w) => (kek.unwrap_data_key(person_id, w)?, w.clone()),
            None => kek.new_data_key(person_id),
        };
        let seal = |field: &str| key.seal(fields.get(field).as_bytes(), &aad(person_id, field));
        let (name_bidx, nir_bidx, email_bidx) = fields.blind_indexes(&kek.blind_index());
        Ok(Self {
            person_id: person_id.to_owned(),
            wrapped_key: wrapped.0,
            first_name: seal("first_name"),
            last_name: seal("last_name"),
            birth_date: seal("birth_date"),
            email: seal("email"),
            phone: seal("phone"),
            nir: seal("nir"),
            commune_insee: seal("commune_insee"),
            name_bidx,
            nir_bidx,
            email_bidx,
            created_at_us,
            updated_at_us,
        })
    }

    fn sealed(&self, field: &str) -> &[u8] {
        match field {
            "first_name" => &self.first_name,
            "last_name" => &self.last_name,
            "birth_date" => &self.birth_date,
            "email" => &self.email,
            "phone" => &self.phone,
            "nir" => &self.nir,
            _ => &self.commune_insee,
        }
    }

    /// The identity fields in clear.
    pub fn open(&self, kek: &Kek) -> Result<PersonFields, CryptoError> {
        let key = kek.unwrap_data_key(&self.person_id, &WrappedKey(self.wrapped_key.clone()))?;
        let mut fields = PersonFields::default();
        for field in FIELDS {
            let clear = key.open(self.sealed(field), &aad(&self.person_id, field))?;
            fields.set(
                field,
                String::from_utf8(clear).map_err(|_| CryptoError::Open)?,
            );
        }
        Ok(fields)
    }

    /// The person for an authorised caller.
    pub fn to_proto(&self, kek: &Kek) -> Result<pb::Person, CryptoError> {
        let f = self.open(kek)?;
        Ok(pb::Person {
            person_id: self.person_id.clone(),
            first_name: f.first_name,
            last_name: f.last_name,
            birth_date: f.birth_date,
            email: f.email,
            phone: f.phone,
            nir: f.nir,
            commune_insee: f.commune_insee,
            user_id: String::new(),
            created_at: Some(eva_platform::db::to_timestamp(self.created_at_us)),
            updated_at: Some(eva_platform::db::to_timestamp(self.updated_at_us)),
        })
    }
}

/// An accompaniment as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AccompanimentRow {
    pub accompaniment_id: String,
    pub person_id: String,
    pub structure_id: String,
    pub referent_user_id: String,
    /// `YYYY-MM-DD`.
    pub started_on: String,
    /// `YYYY-MM-DD`; `None` while it goes on.
    pub ended_on: Option<String>,
    pub end_reason: Option<String>,
    pub referral_id: String,
    pub created_at_us: i64,
}

/// Storage code of an end reason, stable across proto renumbering.
pub fn end_reason_code(r: pb::AccompanimentEndReason) -> &'static str {
    use pb::AccompanimentEndReason as R;
    match r {
        R::Unspecified => "",
        R::EmploiFormation => "emploi_formation",
        R::Reorientation => "reorientation",
        R::ChoixDeLaPersonne => "choix_de_la_personne",
        R::SansNouvelles => "sans_nouvelles",
        R::Demenagement => "demenagement",
        R::Autre => "autre",
    }
}

fn end_reason_from_code(code: &str) -> pb::AccompanimentEndReason {
    use pb::AccompanimentEndReason as R;
    [
        R::EmploiFormation,
        R::Reorientation,
        R::ChoixDeLaPersonne,
        R::SansNouvelles,
        R::Demenagement,
        R::Autre,
    ]
    .into_iter()
    .find(|r| end_reason_code(*r) == code)
    .unwrap_or(R::Unspecified)
}

impl From<AccompanimentRow> for pb::Accompaniment {
    fn from(a: AccompanimentRow) -> Self {
        pb::Accompaniment {
            accompaniment_id: a.accompaniment_id,
            person_id: a.person_id,
            structure_id: a.structure_id,
            referent_user_id: a.referent_user_id,
            start_date: a.started_on,
            end_date: a.ended_on.unwrap_or_default(),
            end_reason: end_reason_from_code(a.end_reason.as_deref().unwrap_or_default()) as i32,
            referral_id: a.referral_id,
            created_at: Some(eva_platform::db::to_timestamp(a.created_at_us)),
            structure_name: String::new(),
        }
    }
}

/// An exact-match search; `None` fields do not filter.
#[derive(Debug, Clone, Default)]
pub struct Search {
    pub name_bidx: Option<String>,
    pub nir_bidx: Option<String>,
    pub email_bidx: Option<String>,
}

const PERSON_COLUMNS: &str = "person_id, wrapped_key, first_name, last_name, birth_date, email, phone, nir, \
     commune_insee, name_bidx, nir_bidx, email_bidx, created_at_us, updated_at_us";

/// An accompaniment is open while it has no end, or its end is after today:
/// an ended accompaniment stops at once (an end is never set in the future).
const OPEN: &str = "(a.ended_on IS NULL OR a.ended_on > $2)";

/// People and accompaniments. Every method takes the connection to run on:
/// a transaction's (`tx.conn()`) or a pooled one (`handle.conn()`).
#[derive(Clone, Copy, Debug, Default)]
pub struct PeopleStore;

impl PeopleStore {
    pub async fn insert_person(&self, conn: Conn<'_>, row: &PersonRow) -> Result<(), DbError> {
        on_backend!(conn, c => sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO people ({PERSON_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
        )))
        .bind(&row.person_id)
        .bind(&row.wrapped_key)
        .bind(&row.first_name)
        .bind(&row.last_name)
        .bind(&row.birth_date)
        .bind(&row.email)
        .bind(&row.phone)
        .bind(&row.nir)
        .bind(&row.commune_insee)
        .bind(&row.name_bidx)
        .bind(&row.nir_bidx)
        .bind(&row.email_bidx)
        .bind(row.created_at_us)
        .bind(row.updated_at_us)
        .execute(&mut *c)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// Marks the person as being changed, taking the write lock first (on
    /// SQLite a transaction that reads before it writes may fail to write);
    /// `false` when there is no such person.
    pub async fn touch(
        &self,
        conn: Conn<'_>,
        person_id: &str,
        now_us: i64,
    ) -> Result<bool, DbError> {
        let n = on_backend!(conn, c => sqlx::query(
            "UPDATE people SET updated_at_us = $2 WHERE person_id = $1",
        )
        .bind(person_id)
        .bind(now_us)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// Replaces the sealed fields and indexes.
    pub async fn update_person(&self, conn: Conn<'_>, row: &PersonRow) -> Result<(), DbError> {
        on_backend!(conn, c => sqlx::query(
            "UPDATE people SET first_name = $2, last_name = $3, birth_date = $4, email = $5, phone = $6, \
             nir = $7, commune_insee = $8, name_bidx = $9, nir_bidx = $10, email_bidx = $11, \
             updated_at_us = $12 WHERE person_id = $1",
        )
        .bind(&row.person_id)
        .bind(&row.first_name)
        .bind(&row.last_name)
        .bind(&row.birth_date)
        .bind(&row.email)
        .bind(&row.phone)
        .bind(&row.nir)
        .bind(&row.commune_insee)
        .bind(&row.name_bidx)
        .bind(&row.nir_bidx)
        .bind(&row.email_bidx)
        .bind(row.updated_at_us)
        .execute(&mut *c)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    pub async fn person(
        &self,
        conn: Conn<'_>,
        person_id: &str,
    ) -> Result<Option<PersonRow>, DbError> {
        Ok(
            on_backend!(conn, c => sqlx::query_as::<_, PersonRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {PERSON_COLUMNS} FROM people WHERE person_id = $1"
        )))
        .bind(person_id)
        .fetch_optional(&mut *c)
        .await)?,
        )
    }

    /// Stores the name-match indexes of a person (see `name_match_indexes`).
    pub async fn set_name_match_indexes(
        &self,
        conn: Conn<'_>,
        person_id: &str,
        last: &str,
        full: &str,
    ) -> Result<(), DbError> {
        on_backend!(conn, c => sqlx::query(
            "UPDATE people SET last_name_bidx = $2, full_name_bidx = $3 WHERE person_id = $1",
        )
        .bind(person_id)
        .bind(last)
        .bind(full)
        .execute(&mut *c)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// (person id, last-name index, full-name index) of the people the
    /// structure follows on `today`; indexes are '' for rows not yet indexed.
    pub async fn followed_name_indexes(
        &self,
        conn: Conn<'_>,
        structure_id: &str,
        today: &str,
    ) -> Result<Vec<(String, String, String)>, DbError> {
        let sql = format!(
            "SELECT p.person_id, p.last_name_bidx, p.full_name_bidx FROM people p \
             WHERE EXISTS (SELECT 1 FROM accompaniments a WHERE a.person_id = p.person_id \
             AND a.structure_id = $1 AND {OPEN})"
        );
        Ok(
            on_backend!(conn, c => sqlx::query_as::<_, (String, String, String)>(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(structure_id)
            .bind(today)
            .fetch_all(&mut *c)
            .await)?,
        )
    }

    pub async fn exists(&self, conn: Conn<'_>, person_id: &str) -> Result<bool, DbError> {
        let row: Option<(String,)> = on_backend!(conn, c => sqlx::query_as(
            "SELECT person_id FROM people WHERE person_id = $1",
        )
        .bind(person_id)
        .fetch_optional(&mut *c)
        .await)?;
        Ok(row.is_some())
    }

    /// The structures following the person on `today` (open accompaniments).
    pub async fn following(
        &self,
        conn: Conn<'_>,
        person_id: &str,
        today: &str,
    ) -> Result<Vec<String>, DbError> {
        let rows: Vec<(String,)> = on_backend!(conn, c => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT DISTINCT a.structure_id FROM accompaniments a WHERE a.person_id = $1 AND {OPEN}"
        )))
        .bind(person_id)
        .bind(today)
        .fetch_all(&mut *c)
        .await)?;
        Ok(rows.into_iter().map(|(s,)| s).collect())
    }

    pub async fn insert_accompaniment(
        &self,
        conn: Conn<'_>,
        a: &AccompanimentRow,
    ) -> Result<(), DbError> {
        on_backend!(conn, c => sqlx::query(
            "INSERT INTO accompaniments (accompaniment_id, person_id, structure_id, referent_user_id, \
             started_on, ended_on, end_reason, referral_id, created_at_us) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&a.accompaniment_id)
        .bind(&a.person_id)
        .bind(&a.structure_id)
        .bind(&a.referent_user_id)
        .bind(&a.started_on)
        .bind(&a.ended_on)
        .bind(&a.end_reason)
        .bind(&a.referral_id)
        .bind(a.created_at_us)
        .execute(&mut *c)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// Starts an accompaniment: the row and its `AccompanimentStarted`
    /// event, in `tx`.
    pub async fn start_accompaniment(
        &self,
        tx: &mut eva_platform::db::Tx,
        a: &AccompanimentRow,
    ) -> Result<(), DbError> {
        self.insert_accompaniment(tx.conn(), a).await?;
        let started = pb::AccompanimentStarted {
            accompaniment_id: a.accompaniment_id.clone(),
            person_id: a.person_id.clone(),
            structure_id: a.structure_id.clone(),
            referent_user_id: a.referent_user_id.clone(),
            start_date: a.started_on.clone(),
            referral_id: a.referral_id.clone(),
            occurred_at: Some(eva_platform::db::to_timestamp(a.created_at_us)),
        };
        eva_platform::outbox::enqueue(
            tx,
            &eva_platform::outbox::Event::new(
                crate::SERVICE,
                "eva.identity.accompaniment.started",
                Some(a.accompaniment_id.clone()),
                &started,
            ),
        )
        .await
    }

    /// People `structure_id` follows on `today`, in id order, filtered by
    /// `search`.
    pub async fn followed_by(
        &self,
        conn: Conn<'_>,
        structure_id: &str,
        today: &str,
        search: &Search,
        page: &Page,
    ) -> Result<(Vec<PersonRow>, String), DbError> {
        let columns = PERSON_COLUMNS
            .split(", ")
            .map(|c| format!("p.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT {columns} FROM people p WHERE EXISTS (SELECT 1 FROM accompaniments a \
             WHERE a.person_id = p.person_id AND a.structure_id = $1 AND {OPEN}) \
             AND ($3 IS NULL OR p.name_bidx = $3) AND ($4 IS NULL OR p.nir_bidx = $4) \
             AND ($5 IS NULL OR p.email_bidx = $5) AND ($6 IS NULL OR p.person_id > $6) \
             ORDER BY p.person_id LIMIT $7"
        );
        let rows = on_backend!(conn, c => sqlx::query_as::<_, PersonRow>(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(structure_id)
            .bind(today)
            .bind(search.name_bidx.as_deref())
            .bind(search.nir_bidx.as_deref())
            .bind(search.email_bidx.as_deref())
            .bind(page.after.as_deref())
            .bind(page.fetch_limit())
            .fetch_all(&mut *c)
            .await)?;
        Ok(page.finish(rows, |p| p.person_id.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_sealed_one_by_one_and_bound_to_their_place() {
        let kek = Kek::from_base64(&Kek::generate_base64()).unwrap();
        let fields = PersonFields {
            first_name: "Ana".into(),
            last_name: "Dupont".into(),
            birth_date: "1985-05-20".into(),
            email: "ana@exemple.fr".into(),
            phone: String::new(),
            nir: "185057800608491".into(),
            commune_insee: "27229".into(),
        };
        let row = PersonRow::seal(&kek, "p1", None, &fields, 1, 1).unwrap();
        assert!(!row.last_name.windows(6).any(|w| w == b"Dupont"));
        assert_eq!(row.open(&kek).unwrap(), fields);
        assert_eq!(row.email_bidx.len(), 64);
        assert_eq!(row.nir_bidx.len(), 64);
        // Moving a sealed field to another field or person does not open.
        let mut swapped = row.clone();
        swapped.first_name = row.last_name.clone();
        assert!(swapped.open(&kek).is_err());
        let mut moved = row.clone();
        moved.person_id = "p2".into();
        assert!(moved.open(&kek).is_err());
        // Resealing with the same key after a change.
        let wrapped = WrappedKey(row.wrapped_key.clone());
        let none = PersonFields {
            email: String::new(),
            ..fields
        };
        let again = PersonRow::seal(&kek, "p1", Some(&wrapped), &none, 1, 2).unwrap();
        assert_eq!(again.wrapped_key, row.wrapped_key);
        assert_eq!(again.email_bidx, "");
        assert_eq!(again.name_bidx, row.name_bidx);
    }
}
