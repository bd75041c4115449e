//! Statistics' storage, on SQLite or PostgreSQL (see `eva_platform::db`).

use eva_platform::db::{Db, DbError, Migrations, Tx};
use eva_platform::on_backend;
use sqlx::migrate::Migrator;

static SQLITE: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES: Migrator = sqlx::migrate!("migrations/postgres");

pub const MIGRATIONS: Migrations = Migrations {
    sqlite: &SQLITE,
    postgres: &POSTGRES,
};

#[derive(Clone)]
pub struct Store {
    db: Db,
}

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

/// A dimension one may group or filter structures by, and its column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StructureDim {
    StructureType,
    Commune,
    Epci,
    Departement,
}

impl StructureDim {
    pub const ALL: [StructureDim; 4] = [
        StructureDim::StructureType,
        StructureDim::Commune,
        StructureDim::Epci,
        StructureDim::Departement,
    ];

    pub fn name(self) -> &'static str {
        match self {
            StructureDim::StructureType => "structure_type",
            StructureDim::Commune => "commune",
            StructureDim::Epci => "epci",
            StructureDim::Departement => "departement",
        }
    }

    fn column(self) -> &'static str {
        match self {
            StructureDim::StructureType => "kind",
            StructureDim::Commune => "commune_insee",
            StructureDim::Epci => "epci",
            StructureDim::Departement => "departement",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.name() == s)
    }
}

/// Which structures to count.
#[derive(Debug, Clone, Default)]
pub struct StructureFilter {
    /// Created at or after (µs).
    pub from_us: Option<i64>,
    /// Created before (µs).
    pub to_us: Option<i64>,
    /// A commune, EPCI or département code.
    pub territory: Option<String>,
}

/// One group and how many structures are in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Count {
    pub keys: Vec<String>,
    pub count: i64,
}

impl Store {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Applies a structure's state as of `changed_at_us`; older states than
    /// the stored one do not overwrite it, whatever order events arrive in.
    pub async fn upsert_structure(&self, tx: &mut Tx, s: &StructureRow) -> Result<(), DbError> {
        on_backend!(tx.conn(), c => sqlx::query(
            "INSERT INTO structures (structure_id, kind, commune_insee, epci, departement, created_at_us, changed_at_us) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (structure_id) DO UPDATE SET \
             kind = CASE WHEN excluded.changed_at_us >= structures.changed_at_us THEN excluded.kind ELSE structures.kind END, \
             commune_insee = CASE WHEN excluded.changed_at_us >= structures.changed_at_us THEN excluded.commune_insee ELSE structures.commune_insee END, \
             epci = CASE WHEN excluded.changed_at_us >= structures.changed_at_us THEN excluded.epci ELSE structures.epci END, \
             departement = CASE WHEN excluded.changed_at_us >= structures.changed_at_us THEN excluded.departement ELSE structures.departement END, \
             changed_at_us = CASE WHEN excluded.changed_at_us >= structures.changed_at_us THEN excluded.changed_at_us ELSE structures.changed_at_us END, \
             created_at_us = CASE WHEN excluded.created_at_us < structures.created_at_us THEN excluded.created_at_us ELSE structures.created_at_us END",
        )
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

    /// Structures counted per group of `dims` (one total row when empty).
    pub async fn count_structures(
        &self,
        dims: &[StructureDim],
        filter: &StructureFilter,
    ) -> Result<Vec<Count>, DbError> {
        // Column names come from the closed `StructureDim` list, never from input.
        let cols: Vec<&str> = dims.iter().map(|d| d.column()).collect();
        let select = cols
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c} AS k{i}"))
            .chain(std::iter::once("COUNT(*) AS n".to_owned()))
            .collect::<Vec<_>>()
            .join(", ");
        let group = if cols.is_empty() {
            String::new()
        } else {
            format!(" GROUP BY {0} ORDER BY {0}", cols.join(", "))
        };
        let sql = format!(
            "SELECT {select} FROM structures \
             WHERE ($1 IS NULL OR created_at_us >= $1) AND ($2 IS NULL OR created_at_us < $2) \
             AND ($3 IS NULL OR commune_insee = $3 OR epci = $3 OR departement = $3){group}"
        );
        let mut h = self.db.acquire().await?;
        let rows = on_backend!(h.conn(), c => {
            use sqlx::Row;
            sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(filter.from_us)
                .bind(filter.to_us)
                .bind(filter.territory.as_deref())
                .fetch_all(&mut *c)
                .await
                .and_then(|rows| {
                    rows.iter()
                        .map(|r| {
                            let keys = (0..dims.len())
                                .map(|i| r.try_get::<String, _>(i))
                                .collect::<Result<Vec<_>, _>>()?;
                            Ok(Count { keys, count: r.try_get::<i64, _>(dims.len())? })
                        })
                        .collect::<Result<Vec<_>, sqlx::Error>>()
                })
        })?;
        Ok(rows)
    }
}

/// The département of a commune: 2 characters, 3 overseas (97x, 98x).
pub fn departement_of(commune_insee: &str) -> String {
    let n = if commune_insee.starts_with("97") || commune_insee.starts_with("98") {
        3
    } else {
        2
    };
    commune_insee.chars().take(n).collect()
}
