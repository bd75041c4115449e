//! The directory's queries (tables `services` and `service_codes`, migration
//! `0002_directory.sql`).

use eva_platform::db::{Db, DbError, Tx, to_timestamp};
use eva_platform::on_backend;
use eva_proto::referrals::v1 as pb;
use sqlx::AssertSqlSafe;

/// Every column of `services`, in the order of [`ServiceRow`].
const COLUMNS: &str = "service_id, structure_id, source, source_id, source_structure_id, name, \
     description, types, thematiques, fees, fees_details, publics, publics_details, \
     access_conditions, commune, postal_code, commune_insee, address, address_complement, \
     longitude, latitude, phone, email, contact_name, reception_modes, eligibility_zone, \
     mobilisation_link, mobilisation_modes, mobilisable_by, mobilisation_details, weekly_hours, \
     weeks, opening_hours, updated_on, capacity, available_places, created_at_us, updated_at_us";

/// What a read selects: [`COLUMNS`] and the archive time (set only by
/// [`DirectoryStore::set_archived`]).
const READ_COLUMNS: &str = "service_id, structure_id, source, source_id, source_structure_id, name, \
     description, types, thematiques, fees, fees_details, publics, publics_details, \
     access_conditions, commune, postal_code, commune_insee, address, address_complement, \
     longitude, latitude, phone, email, contact_name, reception_modes, eligibility_zone, \
     mobilisation_link, mobilisation_modes, mobilisable_by, mobilisation_details, weekly_hours, \
     weeks, opening_hours, updated_on, capacity, available_places, created_at_us, updated_at_us, \
     archived_at_us";

/// The columns a data·inclusion record sets (what an import replaces).
const SCHEMA_COLUMNS: &[&str] = &[
    "source_structure_id",
    "name",
    "description",
    "types",
    "thematiques",
    "fees",
    "fees_details",
    "publics",
    "publics_details",
    "access_conditions",
    "commune",
    "postal_code",
    "commune_insee",
    "address",
    "address_complement",
    "longitude",
    "latitude",
    "phone",
    "email",
    "contact_name",
    "reception_modes",
    "eligibility_zone",
    "mobilisation_link",
    "mobilisation_modes",
    "mobilisable_by",
    "mobilisation_details",
    "weekly_hours",
    "weeks",
    "opening_hours",
    "updated_on",
];

/// Binds the data·inclusion columns, in [`SCHEMA_COLUMNS`] order.
macro_rules! bind_schema_fields {
    ($q:expr, $s:expr) => {
        $q.bind(&$s.source_structure_id)
            .bind(&$s.name)
            .bind(&$s.description)
            .bind(join(&$s.types))
            .bind(join(&$s.thematiques))
            .bind(&$s.fees)
            .bind(&$s.fees_details)
            .bind(join(&$s.publics))
            .bind(&$s.publics_details)
            .bind(&$s.access_conditions)
            .bind(&$s.commune)
            .bind(&$s.postal_code)
            .bind(&$s.commune_insee)
            .bind(&$s.address)
            .bind(&$s.address_complement)
            .bind($s.longitude)
            .bind($s.latitude)
            .bind(&$s.phone)
            .bind(&$s.email)
            .bind(&$s.contact_name)
            .bind(join(&$s.reception_modes))
            .bind(join(&$s.eligibility_zone))
            .bind(&$s.mobilisation_link)
            .bind(join(&$s.mobilisation_modes))
            .bind(join(&$s.mobilisable_by))
            .bind(&$s.mobilisation_details)
            .bind($s.weekly_hours)
            .bind($s.weeks.map(i64::from))
            .bind(&$s.opening_hours)
            .bind(&$s.updated_on)
    };
}

/// Binds every column of [`COLUMNS`] up to `available_places` (the two
/// times follow).
macro_rules! bind_row_fields {
    ($q:expr, $s:expr) => {{
        let q = $q
            .bind(&$s.service_id)
            .bind(&$s.structure_id)
            .bind(&$s.source)
            .bind(&$s.source_id);
        let q = q
            .bind(&$s.source_structure_id)
            .bind(&$s.name)
            .bind(&$s.description)
            .bind(join(&$s.types))
            .bind(join(&$s.thematiques))
            .bind(&$s.fees)
            .bind(&$s.fees_details)
            .bind(join(&$s.publics))
            .bind(&$s.publics_details)
            .bind(&$s.access_conditions)
            .bind(&$s.commune)
            .bind(&$s.postal_code)
            .bind(&$s.commune_insee)
            .bind(&$s.address)
            .bind(&$s.address_complement)
            .bind($s.longitude)
            .bind($s.latitude)
            .bind(&$s.phone)
            .bind(&$s.email)
            .bind(&$s.contact_name)
            .bind(join(&$s.reception_modes))
            .bind(join(&$s.eligibility_zone))
            .bind(&$s.mobilisation_link)
            .bind(join(&$s.mobilisation_modes))
            .bind(join(&$s.mobilisable_by))
            .bind(&$s.mobilisation_details)
            .bind($s.weekly_hours)
            .bind($s.weeks.map(i64::from))
            .bind(&$s.opening_hours)
            .bind(&$s.updated_on);
        q.bind($s.capacity.map(i64::from))
            .bind($s.available_places.map(i64::from))
    }};
}

/// A stored service.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ServiceRow {
    pub service_id: String,
    pub structure_id: String,
    pub source: String,
    pub source_id: String,
    pub source_structure_id: String,
    pub name: String,
    pub description: String,
    pub types: String,
    pub thematiques: String,
    pub fees: String,
    pub fees_details: String,
    pub publics: String,
    pub publics_details: String,
    pub access_conditions: String,
    pub commune: String,
    pub postal_code: String,
    pub commune_insee: String,
    pub address: String,
    pub address_complement: String,
    pub longitude: Option<f64>,
    pub latitude: Option<f64>,
    pub phone: String,
    pub email: String,
    pub contact_name: String,
    pub reception_modes: String,
    pub eligibility_zone: String,
    pub mobilisation_link: String,
    pub mobilisation_modes: String,
    pub mobilisable_by: String,
    pub mobilisation_details: String,
    pub weekly_hours: Option<f64>,
    pub weeks: Option<i64>,
    pub opening_hours: String,
    pub updated_on: String,
    pub capacity: Option<i64>,
    pub available_places: Option<i64>,
    pub created_at_us: i64,
    pub updated_at_us: i64,
    pub archived_at_us: Option<i64>,
}

fn split(list: &str) -> Vec<String> {
    list.split(',')
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect()
}

fn join(list: &[String]) -> String {
    list.join(",")
}

fn small(v: Option<i64>) -> Option<i32> {
    v.and_then(|v| i32::try_from(v).ok())
}

impl From<ServiceRow> for pb::Service {
    fn from(r: ServiceRow) -> Self {
        pb::Service {
            service_id: r.service_id,
            structure_id: r.structure_id,
            source: r.source,
            source_id: r.source_id,
            source_structure_id: r.source_structure_id,
            name: r.name,
            description: r.description,
            types: split(&r.types),
            thematiques: split(&r.thematiques),
            fees: r.fees,
            fees_details: r.fees_details,
            publics: split(&r.publics),
            publics_details: r.publics_details,
            access_conditions: r.access_conditions,
            commune: r.commune,
            postal_code: r.postal_code,
            commune_insee: r.commune_insee,
            address: r.address,
            address_complement: r.address_complement,
            longitude: r.longitude,
            latitude: r.latitude,
            phone: r.phone,
            email: r.email,
            contact_name: r.contact_name,
            reception_modes: split(&r.reception_modes),
            eligibility_zone: split(&r.eligibility_zone),
            mobilisation_link: r.mobilisation_link,
            mobilisation_modes: split(&r.mobilisation_modes),
            mobilisable_by: split(&r.mobilisable_by),
            mobilisation_details: r.mobilisation_details,
            weekly_hours: r.weekly_hours,
            weeks: small(r.weeks),
            opening_hours: r.opening_hours,
            updated_on: r.updated_on,
            capacity: small(r.capacity),
            available_places: small(r.available_places),
            created_at: Some(to_timestamp(r.created_at_us)),
            updated_at: Some(to_timestamp(r.updated_at_us)),
            archived_at: r.archived_at_us.map(to_timestamp),
        }
    }
}

/// Where the services searched for must serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Territory {
    /// A commune INSEE code: its code, its département's, or national.
    Commune {
        commune: String,
        departement: String,
    },
    /// A département: its code, one of its communes, or national.
    Departement(String),
    /// An EPCI (SIREN): its code, or national.
    Epci(String),
    /// National services only.
    France,
}

/// A search of the directory; empty parts do not filter.
#[derive(Debug, Clone, Default)]
pub struct Search {
    /// Any of these thématiques (categories already expanded).
    pub thematiques: Vec<String>,
    /// Any of these publics.
    pub publics: Vec<String>,
    pub territory: Option<Territory>,
    pub structure_id: String,
    /// Archived services too (a structure's own list); searches, suggestions
    /// and exports leave them out.
    pub include_archived: bool,
}

/// SQL text and its text binds, numbered as they are pushed.
struct Sql {
    text: String,
    binds: Vec<String>,
}

impl Sql {
    fn bind(&mut self, v: impl Into<String>) -> String {
        self.binds.push(v.into());
        format!("${}", self.binds.len())
    }

    fn list(&mut self, values: &[String]) -> String {
        values
            .iter()
            .map(|v| self.bind(v.clone()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn where_clause(search: &Search, after: Option<&str>) -> Sql {
    let mut sql = Sql {
        text: String::from(" WHERE 1 = 1"),
        binds: Vec::new(),
    };
    if !search.include_archived {
        sql.text.push_str(" AND s.archived_at_us IS NULL");
    }
    if !search.structure_id.is_empty() {
        let p = sql.bind(search.structure_id.clone());
        sql.text.push_str(&format!(" AND s.structure_id = {p}"));
    }
    for (kind, codes) in [
        ("thematique", &search.thematiques),
        ("public", &search.publics),
    ] {
        if codes.is_empty() {
            continue;
        }
        let list = sql.list(codes);
        sql.text.push_str(&format!(
            " AND s.service_id IN (SELECT service_id FROM service_codes WHERE kind = '{kind}' AND code IN ({list}))"
        ));
    }
    if let Some(t) = &search.territory {
        let national: Vec<String> = super::datainclusion::NATIONAL
            .iter()
            .map(|c| (*c).to_owned())
            .collect();
        let (mut codes, prefix, located) = match t {
            Territory::Commune {
                commune,
                departement,
            } => (
                vec![commune.clone(), departement.clone()],
                None,
                Some(("=", commune.clone())),
            ),
            Territory::Departement(d) => (
                vec![d.clone()],
                Some(d.clone()),
                Some(("prefix", d.clone())),
            ),
            Territory::Epci(e) => (vec![e.clone()], None, None),
            Territory::France => (Vec::new(), None, None),
        };
        codes.extend(national);
        let list = sql.list(&codes);
        let mut zone = format!("code IN ({list})");
        if let Some(d) = prefix {
            let n = d.chars().count();
            let p = sql.bind(d);
            zone.push_str(&format!(
                " OR (length(code) = 5 AND substr(code, 1, {n}) = {p})"
            ));
        }
        let mut cond = format!(
            "s.service_id IN (SELECT service_id FROM service_codes WHERE kind = 'zone' AND ({zone}))"
        );
        // A service that names no zone serves where it is.
        match located {
            Some(("=", c)) => {
                let p = sql.bind(c);
                cond.push_str(&format!(
                    " OR (s.eligibility_zone = '' AND s.commune_insee = {p})"
                ));
            }
            Some((_, d)) => {
                let n = d.chars().count();
                let p = sql.bind(d);
                cond.push_str(&format!(
                    " OR (s.eligibility_zone = '' AND substr(s.commune_insee, 1, {n}) = {p})"
                ));
            }
            None => {}
        }
        sql.text.push_str(&format!(" AND ({cond})"));
    }
    if let Some(after) = after {
        let p = sql.bind(after.to_owned());
        sql.text.push_str(&format!(" AND s.service_id > {p}"));
    }
    sql
}

#[derive(Clone)]
pub struct DirectoryStore {
    db: Db,
}

/// What an import did with one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    Created,
    Updated,
    /// The (source, id) belongs to a service of another structure.
    NotYours,
}

impl DirectoryStore {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub async fn get(&self, service_id: &str) -> Result<Option<pb::Service>, DbError> {
        let mut h = self.db.acquire().await?;
        let sql = format!("SELECT {READ_COLUMNS} FROM services WHERE service_id = $1");
        let row = on_backend!(h.conn(), c => sqlx::query_as::<_, ServiceRow>(AssertSqlSafe(sql.as_str()))
            .bind(service_id)
            .fetch_optional(&mut *c)
            .await)?;
        Ok(row.map(Into::into))
    }

    /// Services matching `search`, by id, after `after`, at most `limit`.
    pub async fn search(
        &self,
        search: &Search,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<pb::Service>, DbError> {
        let w = where_clause(search, after);
        let sql = format!(
            "SELECT {READ_COLUMNS} FROM services s{} ORDER BY s.service_id LIMIT {limit}",
            w.text
        );
        let mut h = self.db.acquire().await?;
        let rows = on_backend!(h.conn(), c => {
            let mut q = sqlx::query_as::<_, ServiceRow>(AssertSqlSafe(sql.as_str()));
            for b in &w.binds {
                q = q.bind(b);
            }
            q.fetch_all(&mut *c).await
        })?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// Adds a new service (its id set) with its searchable codes.
    pub async fn insert(tx: &mut Tx, s: &pb::Service, now: i64) -> Result<(), DbError> {
        let sql = format!(
            "INSERT INTO services ({COLUMNS}) VALUES ({})",
            (1..=38)
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        on_backend!(tx.conn(), c => bind_row_fields!(sqlx::query(AssertSqlSafe(sql.as_str())), s)
            .bind(now)
            .bind(now)
            .execute(&mut *c)
            .await
            .map(|_| ()))?;
        Self::replace_codes(tx, s, true).await
    }

    /// Replaces every field of a service but its id, source, source id and
    /// creation time.
    /// Replaces the service's fields; with `expected_us`, only if it last
    /// changed then. False when nothing was changed (it changed meanwhile).
    pub async fn update(
        tx: &mut Tx,
        s: &pb::Service,
        expected_us: Option<i64>,
        now: i64,
    ) -> Result<bool, DbError> {
        let sets: Vec<String> = std::iter::once("structure_id")
            .chain(SCHEMA_COLUMNS.iter().copied())
            .chain(["capacity", "available_places", "updated_at_us"])
            .enumerate()
            .map(|(i, c)| format!("{c} = ${}", i + 2))
            .collect();
        let expected = sets.len() + 2;
        let sql = format!(
            "UPDATE services SET {} WHERE service_id = $1 AND (${expected} IS NULL OR updated_at_us = ${expected})",
            sets.join(", ")
        );
        let n = on_backend!(tx.conn(), c => {
            let q = sqlx::query(AssertSqlSafe(sql.as_str()))
                .bind(&s.service_id)
                .bind(&s.structure_id);
            bind_schema_fields!(q, s)
                .bind(s.capacity.map(i64::from))
                .bind(s.available_places.map(i64::from))
                .bind(now)
                .bind(expected_us)
                .execute(&mut *c)
                .await
                .map(|r| r.rows_affected())
        })?;
        if n == 0 {
            return Ok(false);
        }
        Self::replace_codes(tx, s, false).await?;
        Ok(true)
    }

    /// Closes (`Some(time)`) or opens again (`None`) a service; false if
    /// there is no such service.
    pub async fn set_archived(
        tx: &mut Tx,
        service_id: &str,
        archived_at_us: Option<i64>,
        now: i64,
    ) -> Result<bool, DbError> {
        let n = on_backend!(tx.conn(), c => sqlx::query(
            "UPDATE services SET archived_at_us = $2, updated_at_us = $3 WHERE service_id = $1",
        )
        .bind(service_id)
        .bind(archived_at_us)
        .bind(now)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// Imports one record: a new service, or the data·inclusion fields of
    /// the one with the same (source, id). With `owner`, only a service of
    /// that structure (or a new one) may change; without, any (operator).
    /// A service keeps its EVA structure when the import names none.
    pub async fn upsert(
        tx: &mut Tx,
        s: &pb::Service,
        owner: Option<&str>,
        now: i64,
    ) -> Result<Upserted, DbError> {
        let mut sets: Vec<String> = SCHEMA_COLUMNS
            .iter()
            .map(|c| format!("{c} = excluded.{c}"))
            .collect();
        sets.push(
            "structure_id = CASE WHEN excluded.structure_id = '' THEN services.structure_id \
             ELSE excluded.structure_id END"
                .into(),
        );
        sets.push("updated_at_us = excluded.updated_at_us".into());
        let guard = if owner.is_some() {
            " WHERE services.structure_id = excluded.structure_id"
        } else {
            ""
        };
        let sql = format!(
            "INSERT INTO services ({COLUMNS}) VALUES ({}) ON CONFLICT (source, source_id) DO UPDATE SET {}{guard} \
             RETURNING service_id",
            (1..=38)
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", "),
            sets.join(", ")
        );
        let returned: Option<String> = on_backend!(tx.conn(), c => {
            let q = sqlx::query_scalar::<_, String>(AssertSqlSafe(sql.as_str()));
            bind_row_fields!(q, s)
                .bind(now)
                .bind(now)
                .fetch_optional(&mut *c)
                .await
        })?;
        let Some(id) = returned else {
            return Ok(Upserted::NotYours);
        };
        let outcome = if id == s.service_id {
            Upserted::Created
        } else {
            Upserted::Updated
        };
        let mut stored = s.clone();
        stored.service_id = id;
        Self::replace_codes(tx, &stored, outcome == Upserted::Created).await?;
        Ok(outcome)
    }

    /// The searchable codes of a service, rewritten (`fresh`: it has none
    /// yet).
    async fn replace_codes(tx: &mut Tx, s: &pb::Service, fresh: bool) -> Result<(), DbError> {
        if !fresh {
            on_backend!(tx.conn(), c => sqlx::query("DELETE FROM service_codes WHERE service_id = $1")
            .bind(&s.service_id)
            .execute(&mut *c)
            .await
            .map(|_| ()))?;
        }
        let mut rows: Vec<(&str, &str)> = Vec::new();
        rows.extend(s.thematiques.iter().map(|c| ("thematique", c.as_str())));
        rows.extend(s.publics.iter().map(|c| ("public", c.as_str())));
        rows.extend(s.eligibility_zone.iter().map(|c| ("zone", c.as_str())));
        if rows.is_empty() {
            return Ok(());
        }
        let values: Vec<String> = (0..rows.len())
            .map(|i| format!("(${}, ${}, $1)", 2 * i + 2, 2 * i + 3))
            .collect();
        let sql = format!(
            "INSERT INTO service_codes (kind, code, service_id) VALUES {} ON CONFLICT DO NOTHING",
            values.join(", ")
        );
        on_backend!(tx.conn(), c => {
            let mut q = sqlx::query(AssertSqlSafe(sql.as_str())).bind(&s.service_id);
            for (kind, code) in &rows {
                q = q.bind(*kind).bind(*code);
            }
            q.execute(&mut *c).await.map(|_| ())
        })?;
        Ok(())
    }
}
