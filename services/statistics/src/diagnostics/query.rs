//! The diagnostics indicators, read from the counters only (never the
//! facts): at most one row per month, recording context and measure in the
//! period, folded into the query's cells in memory.

use std::collections::{BTreeMap, HashMap};

use eva_platform::db::{DbError, Handle};
use eva_platform::on_backend;

use super::contributions::{Context, Dictionary, Entry, Measure, sum_counts};
use super::ingest::load_dictionary;
use crate::catalogue::IndicatorId;
use crate::model::{Dim, Figure, Query, TerritoryLevel, cell_keys, percent};
use crate::store::Store;

/// Figures of `DiagnosticsShared`, `BarrierPrevalence`, `BarrierResolution`
/// and `RatingGap` for `q`.
pub async fn figures(store: &Store, id: IndicatorId, q: &Query) -> Result<Vec<Figure>, DbError> {
    let mut h = store.db().acquire().await?;
    let mut figures = match id {
        IndicatorId::DiagnosticsShared => diagnostics_shared(&mut h, q).await?,
        IndicatorId::BarrierPrevalence => barrier_prevalence(&mut h, q).await?,
        IndicatorId::BarrierResolution => {
            shares(&mut h, q, Measure::Evolution, Dim::Evolution).await?
        }
        IndicatorId::RatingGap => shares(&mut h, q, Measure::Gap, Dim::Gap).await?,
        _ => Vec::new(),
    };
    figures.sort_by(|a, b| a.keys.cmp(&b.keys));
    Ok(figures)
}

#[derive(sqlx::FromRow)]
struct CountRow {
    month: String,
    #[sqlx(flatten)]
    context: Context,
    n: i64,
}

#[derive(sqlx::FromRow)]
struct VectorRow {
    month: String,
    #[sqlx(flatten)]
    context: Context,
    counts: Vec<u8>,
}

/// ` AND <column> = $n` for the query's territory, and its code.
fn territory(q: &Query, n: usize) -> (String, Option<&str>) {
    match &q.territory {
        Some(t) => {
            let column = match t.level {
                TerritoryLevel::Commune => "commune",
                TerritoryLevel::Epci => "epci",
                TerritoryLevel::Departement => "departement",
            };
            (format!(" AND {column} = ${n}"), Some(t.code.as_str()))
        }
        None => (String::new(), None),
    }
}

async fn count_rows(h: &mut Handle, q: &Query) -> Result<Vec<CountRow>, DbError> {
    let (filter, code) = territory(q, 4);
    let sql = format!(
        "SELECT month, commune, epci, departement, structure_kind, n FROM diagnostic_counts \
         WHERE gen = $1 AND month >= $2 AND month <= $3{filter}"
    );
    let rows = on_backend!(h.conn(), c => {
        let mut s = sqlx::query_as::<_, CountRow>(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(q.generation)
            .bind(&q.from_month)
            .bind(&q.to_month);
        if let Some(code) = code {
            s = s.bind(code);
        }
        s.fetch_all(&mut *c).await
    })?;
    Ok(rows)
}

async fn vector_rows(h: &mut Handle, q: &Query, m: Measure) -> Result<Vec<VectorRow>, DbError> {
    let (filter, code) = territory(q, 5);
    let sql = format!(
        "SELECT month, commune, epci, departement, structure_kind, counts FROM diagnostic_item_counts \
         WHERE gen = $1 AND measure = $2 AND month >= $3 AND month <= $4{filter}"
    );
    let rows = on_backend!(h.conn(), c => {
        let mut s = sqlx::query_as::<_, VectorRow>(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(q.generation)
            .bind(m.code())
            .bind(&q.from_month)
            .bind(&q.to_month);
        if let Some(code) = code {
            s = s.bind(code);
        }
        s.fetch_all(&mut *c).await
    })?;
    Ok(rows)
}

/// A context's value for a dimension; item dimensions are filled later.
fn value(ctx: &Context, dim: Dim) -> String {
    match dim {
        Dim::Commune => ctx.commune.clone(),
        Dim::Epci => ctx.epci.clone(),
        Dim::Departement => ctx.departement.clone(),
        Dim::StructureKind => ctx.structure_kind.clone(),
        _ => String::new(),
    }
}

/// The query's cells without their item dimensions (domain, item, level,
/// evolution, gap), numbered as met.
struct Groups<'q> {
    q: &'q Query,
    index: HashMap<Vec<String>, usize>,
    keys: Vec<Vec<String>>,
}

impl<'q> Groups<'q> {
    fn new(q: &'q Query) -> Self {
        Self {
            q,
            index: HashMap::new(),
            keys: Vec::new(),
        }
    }

    fn of(&mut self, month: &str, ctx: &Context) -> usize {
        let key = cell_keys(self.q, month, |d| value(ctx, d));
        if let Some(&i) = self.index.get(&key) {
            return i;
        }
        self.keys.push(key.clone());
        self.index.insert(key, self.keys.len() - 1);
        self.keys.len() - 1
    }

    /// A group's keys with the item dimensions set.
    fn keys(&self, group: usize, items: &[(Dim, &str)]) -> Vec<String> {
        let mut keys = self.keys[group].clone();
        for (dim, v) in items {
            if let Some(i) = self.q.group_by.iter().position(|d| d == dim) {
                keys[i] = (*v).to_owned();
            }
        }
        keys
    }
}

/// Sums of the counter vectors of `measure`, per group.
fn vector_sums(groups: &mut Groups<'_>, rows: &[VectorRow]) -> Vec<Vec<i64>> {
    let mut sums: Vec<Vec<i64>> = Vec::new();
    for r in rows {
        let g = groups.of(&r.month, &r.context);
        if sums.len() <= g {
            sums.resize_with(g + 1, Vec::new);
        }
        sum_counts(&mut sums[g], &r.counts);
    }
    sums
}

fn at(v: &[i64], i: usize) -> i64 {
    v.get(i).copied().unwrap_or(0)
}

/// Diagnostics shared, per cell.
async fn diagnostics_shared(h: &mut Handle, q: &Query) -> Result<Vec<Figure>, DbError> {
    let mut cells: BTreeMap<Vec<String>, i64> = BTreeMap::new();
    for r in count_rows(h, q).await? {
        *cells
            .entry(cell_keys(q, &r.month, |d| value(&r.context, d)))
            .or_default() += r.n;
    }
    Ok(cells
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(keys, n)| Figure::count(keys, n))
        .collect())
}

/// Diagnostics with the barrier (item rows when grouped by item, domain rows
/// when by domain only, the "any domain" row otherwise; both levels unless
/// grouped by level), and their share of the diagnostics shared in the same
/// cell without domain, item and level.
async fn barrier_prevalence(h: &mut Handle, q: &Query) -> Result<Vec<Figure>, DbError> {
    let counts = count_rows(h, q).await?;
    let vectors = vector_rows(h, q, Measure::Barrier).await?;
    let dict = load_dictionary(h.conn()).await?;
    let mut groups = Groups::new(q);
    let mut shared: Vec<i64> = Vec::new();
    for r in &counts {
        let g = groups.of(&r.month, &r.context);
        if shared.len() <= g {
            shared.resize(g + 1, 0);
        }
        shared[g] += r.n;
    }
    let sums = vector_sums(&mut groups, &vectors);
    let (by_item, by_domain, by_level) = (
        q.groups_by(Dim::Item),
        q.groups_by(Dim::Domain),
        q.groups_by(Dim::Level),
    );
    let rows: Vec<(u16, &Entry)> = dict
        .iter()
        .filter(|(_, e)| match (by_item, by_domain) {
            (true, _) => !e.item.is_empty(),
            (false, true) => !e.domain.is_empty() && e.item.is_empty(),
            (false, false) => e.domain.is_empty() && e.item.is_empty(),
        })
        .collect();
    let levels = Measure::Barrier.categories();
    let mut cells: BTreeMap<Vec<String>, (i64, i64)> = BTreeMap::new();
    for (g, v) in sums.iter().enumerate() {
        let base = shared.get(g).copied().unwrap_or(0);
        for (code, e) in &rows {
            let i = usize::from(*code) * 2;
            let (frein, majeur) = (at(v, i), at(v, i + 1));
            let by: Vec<(&str, i64)> = if by_level {
                vec![(levels[0], frein), (levels[1], majeur)]
            } else {
                vec![("", frein + majeur)]
            };
            for (level, n) in by {
                if n == 0 {
                    continue;
                }
                let keys = groups.keys(
                    g,
                    &[
                        (Dim::Domain, &e.domain),
                        (Dim::Item, &e.item),
                        (Dim::Level, level),
                    ],
                );
                cells.entry(keys).or_insert((0, base)).0 += n;
            }
        }
    }
    Ok(cells
        .into_iter()
        .map(|(keys, (n, base))| Figure {
            keys,
            count: n,
            value: percent(n, base),
            guards: vec![base],
        })
        .collect())
}

/// Items per category of `measure` (in dimension `dim`), per item, domain
/// (sum of its items) or overall, and each category's share of the items
/// of all categories in the same cell.
async fn shares(
    h: &mut Handle,
    q: &Query,
    measure: Measure,
    dim: Dim,
) -> Result<Vec<Figure>, DbError> {
    let vectors = vector_rows(h, q, measure).await?;
    let dict: Dictionary = load_dictionary(h.conn()).await?;
    let mut groups = Groups::new(q);
    let sums = vector_sums(&mut groups, &vectors);
    let (by_item, by_domain) = (q.groups_by(Dim::Item), q.groups_by(Dim::Domain));
    let items: Vec<(u16, &Entry)> = dict.iter().filter(|(_, e)| !e.item.is_empty()).collect();
    let stride = measure.stride();
    let categories = measure.categories();
    let mut figures = Vec::new();
    for (g, v) in sums.iter().enumerate() {
        let mut cells: BTreeMap<(&str, &str), Vec<i64>> = BTreeMap::new();
        for (code, e) in &items {
            let i = usize::from(*code) * stride;
            if i >= v.len() {
                continue;
            }
            let key = (
                if by_domain { e.domain.as_str() } else { "" },
                if by_item { e.item.as_str() } else { "" },
            );
            let cell = cells.entry(key).or_insert_with(|| vec![0; stride]);
            for (c, n) in cell.iter_mut().enumerate() {
                *n += at(v, i + c);
            }
        }
        for ((domain, item), counts) in cells {
            let total: i64 = counts.iter().sum();
            for (c, &n) in counts.iter().enumerate() {
                if n == 0 {
                    continue;
                }
                figures.push(Figure {
                    keys: groups.keys(
                        g,
                        &[
                            (Dim::Domain, domain),
                            (Dim::Item, item),
                            (dim, categories[c]),
                        ],
                    ),
                    count: n,
                    value: percent(n, total),
                    guards: vec![total],
                });
            }
        }
    }
    Ok(figures)
}
