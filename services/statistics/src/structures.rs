//! Structures by type and territory, from `eva.identity.structure.*`: the
//! `structures` indicator, and what other sources join to group by the
//! type and territory of a structure.

use std::collections::BTreeMap;

use async_trait::async_trait;
use eva_platform::consumer::{ApplyError, Envelope};
use eva_platform::db::{DbError, Tx};
use eva_platform::federation::{self, StatisticsFeed};
use eva_platform::on_backend;
use eva_proto::identity::v1::{StructureCreated, StructureKind, StructureUpdated};

use crate::feed::{Feed, enum_code, micros};
use crate::model::{Dim, Figure, Query, TerritoryLevel, cell_keys, month_of_us};
use crate::store::{Store, departement_of};

/// Tables of this source holding a generation's rows.
pub const TABLES: &[&str] = &["structures"];

/// A structure: type and territory.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StructureRow {
    pub structure_id: String,
    pub kind: String,
    pub commune_insee: String,
    pub epci: String,
    pub departement: String,
    /// Registration time (the earliest seen wins).
    pub created_at_us: i64,
    /// Time of the change this row describes (the latest seen wins).
    pub changed_at_us: i64,
}

impl StructureRow {
    /// The row's value for a territory or structure-type dimension.
    pub fn value(&self, dim: Dim) -> String {
        match dim {
            Dim::Commune => self.commune_insee.clone(),
            Dim::Epci => self.epci.clone(),
            Dim::Departement => self.departement.clone(),
            _ => self.kind.clone(),
        }
    }

    /// Whether the structure lies in the query's territory.
    pub fn in_territory(&self, q: &Query) -> bool {
        q.territory.as_ref().is_none_or(|t| match t.level {
            TerritoryLevel::Commune => self.commune_insee == t.code,
            TerritoryLevel::Epci => self.epci == t.code,
            TerritoryLevel::Departement => self.departement == t.code,
        })
    }
}

/// The code of a structure kind (`aci`, `partner`…).
pub fn kind_code(kind: i32) -> Option<String> {
    enum_code(
        StructureKind::try_from(kind).ok().map(|k| k.as_str_name()),
        "STRUCTURE_KIND_",
    )
}

/// `eva.identity.structure.*` → `structures`.
pub struct StructuresFeed;

#[async_trait]
impl Feed for StructuresFeed {
    fn source(&self) -> StatisticsFeed {
        federation::statistics::STRUCTURES
    }

    async fn apply(
        &self,
        tx: &mut Tx,
        gens: &[i64],
        events: &[Envelope],
    ) -> Result<(), ApplyError> {
        for event in events {
            let (id, kind, commune, epci, at) = match event.event_type.as_str() {
                "eva.identity.structure.created" => {
                    let e: StructureCreated = event.decode()?;
                    let at = micros(e.created_at, event);
                    (e.structure_id, e.kind, e.commune_insee, e.epci, at)
                }
                // Until the creation is seen, the update's time stands in for
                // the registration date; the earliest wins.
                "eva.identity.structure.updated" => {
                    let e: StructureUpdated = event.decode()?;
                    let at = micros(e.updated_at, event);
                    (e.structure_id, e.kind, e.commune_insee, e.epci, at)
                }
                _ => continue,
            };
            let kind = kind_code(kind)
                .ok_or_else(|| ApplyError::Permanent(format!("unknown structure kind {kind}")))?;
            let row = StructureRow {
                departement: departement_of(&commune),
                structure_id: id,
                kind,
                commune_insee: commune,
                epci,
                created_at_us: at,
                changed_at_us: at,
            };
            Store::note_territories(tx, &row.commune_insee, &row.epci, &row.departement).await?;
            for &generation in gens {
                upsert(tx, generation, &row).await?;
            }
        }
        Ok(())
    }
}

/// Applies a structure's state as of `changed_at_us`; older states than the
/// stored one do not overwrite it, whatever order events arrive in.
async fn upsert(tx: &mut Tx, generation: i64, s: &StructureRow) -> Result<(), DbError> {
    on_backend!(tx.conn(), c => sqlx::query(
        "INSERT INTO structures (gen, structure_id, kind, commune_insee, epci, departement, created_at_us, changed_at_us) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (gen, structure_id) DO UPDATE SET \
         kind = CASE WHEN excluded.changed_at_us >= structures.changed_at_us THEN excluded.kind ELSE structures.kind END, \
         commune_insee = CASE WHEN excluded.changed_at_us >= structures.changed_at_us THEN excluded.commune_insee ELSE structures.commune_insee END, \
         epci = CASE WHEN excluded.changed_at_us >= structures.changed_at_us THEN excluded.epci ELSE structures.epci END, \
         departement = CASE WHEN excluded.changed_at_us >= structures.changed_at_us THEN excluded.departement ELSE structures.departement END, \
         changed_at_us = CASE WHEN excluded.changed_at_us >= structures.changed_at_us THEN excluded.changed_at_us ELSE structures.changed_at_us END, \
         created_at_us = CASE WHEN excluded.created_at_us < structures.created_at_us THEN excluded.created_at_us ELSE structures.created_at_us END",
    )
    .bind(generation)
    .bind(&s.structure_id)
    .bind(&s.kind)
    .bind(&s.commune_insee)
    .bind(&s.epci)
    .bind(&s.departement)
    .bind(s.created_at_us)
    .bind(s.changed_at_us)
    .execute(&mut *c)
    .await
    .map(|_| ()))?;
    Ok(())
}

/// Every structure of `generation`, by id: sources join their facts to
/// it to group by the type and territory of a structure.
pub async fn all(
    store: &Store,
    generation: i64,
) -> Result<BTreeMap<String, StructureRow>, DbError> {
    let mut h = store.db().acquire().await?;
    let rows = on_backend!(h.conn(), c => sqlx::query_as::<_, StructureRow>(
        "SELECT structure_id, kind, commune_insee, epci, departement, created_at_us, changed_at_us \
         FROM structures WHERE gen = $1",
    )
    .bind(generation)
    .fetch_all(&mut *c)
    .await)?;
    Ok(rows
        .into_iter()
        .map(|r| (r.structure_id.clone(), r))
        .collect())
}

/// The `structures` indicator: structures registered, by month of
/// registration, type and territory.
pub async fn figures(store: &Store, q: &Query) -> Result<Vec<Figure>, DbError> {
    let mut cells: BTreeMap<Vec<String>, i64> = BTreeMap::new();
    for s in all(store, q.generation).await?.values() {
        let month = month_of_us(s.created_at_us);
        if !q.covers(&month) || !s.in_territory(q) {
            continue;
        }
        *cells
            .entry(cell_keys(q, &month, |d| s.value(d)))
            .or_default() += 1;
    }
    Ok(cells
        .into_iter()
        .map(|(keys, n)| Figure::count(keys, n))
        .collect())
}
