//! People, from `eva.identity.accompaniment.*` and `eva.identity.person.*`:
//! the `accompaniments_started` and `people_accompanied` indicators,
//! objections to statistics and erasure, and the pseudonyms that let
//! statistics count a person once without knowing who they are.
//!
//! Statistics never stores a person id. It stores [`Pseudonyms::of`] the id:
//! a keyed hash it cannot turn back into the id. The pseudonym serves two
//! purposes only: counting a person once (`people_accompanied`) and
//! excluding the facts of a person who objected. When the person is erased,
//! every row of theirs gets `erased:<row id>` instead, which links nothing:
//! the rows still count, anonymously (an erased person accompanied twice in a
//! period then counts as two), but nothing ties them to each other or to
//! anyone any more.

use std::collections::{BTreeMap, HashMap, HashSet};

use async_trait::async_trait;
use eva_platform::consumer::{ApplyError, Envelope};
use eva_platform::db::{Backend, DbError, Tx};
use eva_platform::federation::{self, StatisticsFeed};
use eva_platform::on_backend;
use eva_proto::identity::v1::{
    AccompanimentEnded, AccompanimentStarted, PersonErased, StatisticsObjectionChanged,
};
use hmac::{KeyInit, Mac};
use rand::RngCore;

use crate::catalogue::IndicatorId;
use crate::feed::{Feed, micros};
use crate::model::{Dim, Figure, Query, cell_keys, month_of};
use crate::store::Store;
use crate::structures::{self, StructureRow};

/// Tables of this source holding a generation's rows.
pub const TABLES: &[&str] = &["accompaniments", "erased_pseudonyms"];

/// The `secrets` row holding the pseudonym key.
const KEY_NAME: &str = "person_pseudonym_key";

/// The value of every dimension of a fact whose structure statistics has
/// not seen.
pub const UNKNOWN: &str = "inconnu";

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Statistics' own pseudonyms of people: `p:` + hex HMAC-SHA256 of the
/// person id under a random key kept in `secrets`. Without the key a
/// pseudonym says nothing; with it, it still cannot be turned back into an
/// id, only compared with the pseudonym of a known id.
#[derive(Clone)]
pub struct Pseudonyms {
    key: [u8; 32],
}

impl std::fmt::Debug for Pseudonyms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pseudonyms(<key hidden>)")
    }
}

impl Pseudonyms {
    /// Loads the key, creating it on first use. Insert-if-absent then read,
    /// so two processes starting together end up with the same key.
    pub async fn load(store: &Store) -> Result<Self, DbError> {
        let mut fresh = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut fresh);
        let mut h = store.db().acquire().await?;
        on_backend!(h.conn(), c => sqlx::query(
            "INSERT INTO secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(KEY_NAME)
        .bind(fresh.as_slice())
        .execute(&mut *c)
        .await
        .map(|_| ()))?;
        let stored = on_backend!(h.conn(), c => sqlx::query_scalar::<_, Vec<u8>>(
            "SELECT value FROM secrets WHERE name = $1",
        )
        .bind(KEY_NAME)
        .fetch_one(&mut *c)
        .await)?;
        let key = <[u8; 32]>::try_from(stored.as_slice()).map_err(|_| {
            DbError::Sqlx(sqlx::Error::Decode(
                format!("{KEY_NAME}: {} bytes, 32 expected", stored.len()).into(),
            ))
        })?;
        Ok(Self { key })
    }

    /// The pseudonym of a person id.
    pub fn of(&self, person_id: &str) -> String {
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(person_id.as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut out = String::with_capacity(2 + 2 * digest.len());
        out.push_str("p:");
        for b in digest.iter() {
            out.push_str(&format!("{b:02x}"));
        }
        out
    }
}

/// Serialises, within the database, what a transaction does about one
/// pseudonym: recording a fact (which reads its objection and erasure)
/// against changing its objection or erasing it. SQLite transactions
/// already run one at a time; PostgreSQL takes a transaction-scoped
/// advisory lock, so a fact committed concurrently with an objection or an
/// erasure is never left behind.
pub async fn lock_pseudonym(tx: &mut Tx, pseudonym: &str) -> Result<(), DbError> {
    if tx.backend() == Backend::Postgres {
        on_backend!(tx.conn(), c => sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(pseudonym)
            .execute(&mut *c)
            .await
            .map(|_| ()))?;
    }
    Ok(())
}

/// How a new fact about `pseudonym` is stored in `generation`: under the
/// pseudonym, or under `erased:<row_id>` when the person was erased; and
/// whether it is excluded (the person objects).
pub async fn placement(
    tx: &mut Tx,
    generation: i64,
    pseudonym: &str,
    row_id: &str,
) -> Result<(String, bool), DbError> {
    let erased = on_backend!(tx.conn(), c => sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM erased_pseudonyms WHERE gen = $1 AND pseudonym = $2",
    )
    .bind(generation)
    .bind(pseudonym)
    .fetch_one(&mut *c)
    .await)?;
    let stored = if erased > 0 {
        format!("erased:{row_id}")
    } else {
        pseudonym.to_owned()
    };
    Ok((stored, Store::is_excluded(tx, generation, pseudonym).await?))
}

/// A day `YYYY-MM-DD`, checked.
fn day(field: &str, value: &str) -> Result<String, ApplyError> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(value, &format)
        .map(|_| value.to_owned())
        .map_err(|_| ApplyError::Permanent(format!("{field}: not a day YYYY-MM-DD: {value:?}")))
}

fn required(field: &str, value: &str) -> Result<(), ApplyError> {
    if value.is_empty() {
        return Err(ApplyError::Permanent(format!("{field} missing")));
    }
    Ok(())
}

/// `eva.identity.accompaniment.*` and `eva.identity.person.*` →
/// `accompaniments`, `exclusions`, `erased_pseudonyms` (and the exclusion
/// and erasure of `referrals` rows).
pub struct PeopleFeed {
    pub pseudonyms: Pseudonyms,
}

/// An accompaniment's start or end.
struct AccompanimentFact {
    accompaniment_id: String,
    pseudonym: String,
    structure_id: String,
    start_date: Option<String>,
    end_date: Option<String>,
}

#[async_trait]
impl Feed for PeopleFeed {
    fn source(&self) -> StatisticsFeed {
        federation::statistics::PEOPLE
    }

    async fn apply(
        &self,
        tx: &mut Tx,
        gens: &[i64],
        events: &[Envelope],
    ) -> Result<(), ApplyError> {
        for event in events {
            match event.event_type.as_str() {
                "eva.identity.accompaniment.started" => {
                    let e: AccompanimentStarted = event.decode()?;
                    required("accompaniment_id", &e.accompaniment_id)?;
                    required("person_id", &e.person_id)?;
                    let fact = AccompanimentFact {
                        pseudonym: self.pseudonyms.of(&e.person_id),
                        start_date: Some(day("start_date", &e.start_date)?),
                        end_date: None,
                        accompaniment_id: e.accompaniment_id,
                        structure_id: e.structure_id,
                    };
                    record_accompaniment(tx, gens, &fact).await?;
                }
                "eva.identity.accompaniment.ended" => {
                    let e: AccompanimentEnded = event.decode()?;
                    required("accompaniment_id", &e.accompaniment_id)?;
                    required("person_id", &e.person_id)?;
                    let fact = AccompanimentFact {
                        pseudonym: self.pseudonyms.of(&e.person_id),
                        start_date: None,
                        end_date: Some(day("end_date", &e.end_date)?),
                        accompaniment_id: e.accompaniment_id,
                        structure_id: e.structure_id,
                    };
                    record_accompaniment(tx, gens, &fact).await?;
                }
                "eva.identity.person.statistics_objection_changed" => {
                    let e: StatisticsObjectionChanged = event.decode()?;
                    required("person_id", &e.person_id)?;
                    let pseudonym = self.pseudonyms.of(&e.person_id);
                    let at = micros(e.changed_at, event);
                    lock_pseudonym(tx, &pseudonym).await?;
                    for &generation in gens {
                        if let Some(excluded) =
                            Store::set_exclusion(tx, generation, &pseudonym, e.objected, at).await?
                        {
                            set_excluded(tx, generation, &pseudonym, excluded).await?;
                        }
                    }
                }
                "eva.identity.person.erased" => {
                    let e: PersonErased = event.decode()?;
                    required("person_id", &e.person_id)?;
                    let pseudonym = self.pseudonyms.of(&e.person_id);
                    let at = micros(e.erased_at, event);
                    lock_pseudonym(tx, &pseudonym).await?;
                    for &generation in gens {
                        erase(tx, generation, &pseudonym, at).await?;
                    }
                }
                _ => continue,
            }
        }
        Ok(())
    }
}

/// Records an accompaniment's start or end in each generation. The earliest
/// start and the latest end win, so started and ended converge in any
/// order; a row seen only through its end has no start yet and is not
/// counted until the start arrives.
async fn record_accompaniment(
    tx: &mut Tx,
    gens: &[i64],
    a: &AccompanimentFact,
) -> Result<(), ApplyError> {
    lock_pseudonym(tx, &a.pseudonym).await?;
    for &generation in gens {
        let (pseudonym, excluded) =
            placement(tx, generation, &a.pseudonym, &a.accompaniment_id).await?;
        on_backend!(tx.conn(), c => sqlx::query(
            "INSERT INTO accompaniments (gen, accompaniment_id, pseudonym, structure_id, start_date, end_date, excluded) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (gen, accompaniment_id) DO UPDATE SET \
             start_date = CASE WHEN accompaniments.start_date IS NULL OR excluded.start_date < accompaniments.start_date \
                 THEN excluded.start_date ELSE accompaniments.start_date END, \
             end_date = CASE WHEN accompaniments.end_date IS NULL OR excluded.end_date > accompaniments.end_date \
                 THEN excluded.end_date ELSE accompaniments.end_date END",
        )
        .bind(generation)
        .bind(&a.accompaniment_id)
        .bind(&pseudonym)
        .bind(&a.structure_id)
        .bind(&a.start_date)
        .bind(&a.end_date)
        .bind(excluded)
        .execute(&mut *c)
        .await
        .map(|_| ()))?;
    }
    Ok(())
}

/// Counts (or stops counting) every fact of a pseudonym whose objection
/// just changed.
async fn set_excluded(
    tx: &mut Tx,
    generation: i64,
    pseudonym: &str,
    excluded: bool,
) -> Result<(), DbError> {
    for sql in [
        "UPDATE accompaniments SET excluded = $3 WHERE gen = $1 AND pseudonym = $2",
        "UPDATE referrals SET excluded = $3 WHERE gen = $1 AND pseudonym = $2",
    ] {
        on_backend!(tx.conn(), c => sqlx::query(sql)
            .bind(generation)
            .bind(pseudonym)
            .bind(excluded)
            .execute(&mut *c)
            .await
            .map(|_| ()))?;
    }
    Ok(())
}

/// Breaks the link between an erased person's facts: each row gets
/// `erased:<its own id>`, and the pseudonym is remembered so that facts
/// read later are stored unlinked too. Exclusion flags stay as they were: an
/// erased person who had objected stays out of the figures.
async fn erase(tx: &mut Tx, generation: i64, pseudonym: &str, at_us: i64) -> Result<(), DbError> {
    on_backend!(tx.conn(), c => sqlx::query(
        "INSERT INTO erased_pseudonyms (gen, pseudonym, erased_at_us) VALUES ($1, $2, $3) \
         ON CONFLICT (gen, pseudonym) DO NOTHING",
    )
    .bind(generation)
    .bind(pseudonym)
    .bind(at_us)
    .execute(&mut *c)
    .await
    .map(|_| ()))?;
    for sql in [
        "UPDATE accompaniments SET pseudonym = 'erased:' || accompaniment_id \
         WHERE gen = $1 AND pseudonym = $2",
        "UPDATE referrals SET pseudonym = 'erased:' || referral_id WHERE gen = $1 AND pseudonym = $2",
    ] {
        on_backend!(tx.conn(), c => sqlx::query(sql)
            .bind(generation)
            .bind(pseudonym)
            .execute(&mut *c)
            .await
            .map(|_| ()))?;
    }
    Ok(())
}

/// The type and territory of a structure, `inconnu` when statistics has not
/// seen it.
pub fn structure_value(s: Option<&StructureRow>, dim: Dim) -> String {
    s.map_or_else(|| UNKNOWN.to_owned(), |s| s.value(dim))
}

/// Whether a fact of this structure lies in the query's territory; a
/// structure statistics has not seen lies in none.
pub fn structure_in_territory(s: Option<&StructureRow>, q: &Query) -> bool {
    match s {
        Some(s) => s.in_territory(q),
        None => q.territory.is_none(),
    }
}

/// The month after `YYYY-MM`.
fn next_month(month: &str) -> String {
    let y: i32 = month.get(..4).and_then(|y| y.parse().ok()).unwrap_or(0);
    let m: u32 = month.get(5..7).and_then(|m| m.parse().ok()).unwrap_or(12);
    if m >= 12 {
        format!("{:04}-01", y + 1)
    } else {
        format!("{y:04}-{:02}", m + 1)
    }
}

#[derive(sqlx::FromRow)]
struct AccompanimentRow {
    pseudonym: String,
    structure_id: String,
    start_date: String,
    end_date: Option<String>,
}

/// Counted accompaniments of `q.generation` that started in the query's
/// period (`started_only`) or overlap it.
async fn accompaniments(
    store: &Store,
    q: &Query,
    started_only: bool,
) -> Result<Vec<AccompanimentRow>, DbError> {
    let sql = if started_only {
        "SELECT pseudonym, structure_id, start_date, end_date FROM accompaniments \
         WHERE gen = $1 AND NOT excluded AND start_date <= $2 AND start_date >= $3"
    } else {
        "SELECT pseudonym, structure_id, start_date, end_date FROM accompaniments \
         WHERE gen = $1 AND NOT excluded AND start_date <= $2 \
         AND (end_date IS NULL OR end_date >= $3)"
    };
    let mut h = store.db().acquire().await?;
    let rows = on_backend!(h.conn(), c => sqlx::query_as::<_, AccompanimentRow>(sql)
        .bind(q.generation)
        .bind(format!("{}-31", q.to_month))
        .bind(format!("{}-01", q.from_month))
        .fetch_all(&mut *c)
        .await)?;
    Ok(rows)
}

/// The `accompaniments_started` and `people_accompanied` indicators.
pub async fn figures(store: &Store, id: IndicatorId, q: &Query) -> Result<Vec<Figure>, DbError> {
    let structures = structures::all(store, q.generation).await?;
    let rows = accompaniments(store, q, id == IndicatorId::AccompanimentsStarted).await?;
    let place = |r: &AccompanimentRow| structures.get(&r.structure_id);
    match id {
        IndicatorId::AccompanimentsStarted => {
            let mut cells: BTreeMap<Vec<String>, i64> = BTreeMap::new();
            for r in &rows {
                let month = month_of(&r.start_date);
                let s = place(r);
                if !q.covers(&month) || !structure_in_territory(s, q) {
                    continue;
                }
                *cells
                    .entry(cell_keys(q, &month, |d| structure_value(s, d)))
                    .or_default() += 1;
            }
            Ok(cells
                .into_iter()
                .map(|(keys, n)| Figure::count(keys, n))
                .collect())
        }
        IndicatorId::PeopleAccompanied => {
            // Each person once per cell: a cell is a period bucket (or the
            // whole period) × the structure's groups.
            let by_period = q.group_by.iter().any(|d| d.is_period());
            let mut ids: HashMap<&str, usize> = HashMap::new();
            let mut cells: BTreeMap<Vec<String>, HashSet<usize>> = BTreeMap::new();
            for r in &rows {
                let s = place(r);
                if !structure_in_territory(s, q) {
                    continue;
                }
                let next = ids.len();
                let person = *ids.entry(r.pseudonym.as_str()).or_insert(next);
                let mut month = month_of(&r.start_date).max(q.from_month.clone());
                let last = r
                    .end_date
                    .as_deref()
                    .map(month_of)
                    .unwrap_or_else(|| q.to_month.clone())
                    .min(q.to_month.clone());
                let mut previous: Option<Vec<String>> = None;
                while month <= last {
                    let keys = cell_keys(q, &month, |d| structure_value(s, d));
                    if previous.as_ref() != Some(&keys) {
                        cells.entry(keys.clone()).or_default().insert(person);
                        previous = Some(keys);
                    }
                    if !by_period {
                        break;
                    }
                    month = next_month(&month);
                }
            }
            Ok(cells
                .into_iter()
                .map(|(keys, people)| Figure::count(keys, people.len() as i64))
                .collect())
        }
        _ => Ok(Vec::new()),
    }
}

/// What statistics holds linked to a pseudonym in `generation`: for a
/// person's own export.
#[derive(Debug, Clone, Default)]
pub struct Held {
    /// The person objects to statistics.
    pub objected: bool,
    pub accompaniments: Vec<HeldAccompaniment>,
    pub referrals: Vec<crate::referrals::HeldReferral>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct HeldAccompaniment {
    pub accompaniment_id: String,
    pub structure_id: String,
    pub start_date: Option<String>,
    pub end_date: Option<String>,
}

impl Held {
    pub fn is_empty(&self) -> bool {
        self.accompaniments.is_empty() && self.referrals.is_empty()
    }
}

/// Everything statistics holds under `pseudonym` in the current generation.
pub async fn held(store: &Store, pseudonym: &str) -> Result<Held, DbError> {
    let generation = store.current_gen().await?;
    let mut h = store.db().acquire().await?;
    let objected = on_backend!(h.conn(), c => sqlx::query_scalar::<_, bool>(
        "SELECT excluded FROM exclusions WHERE gen = $1 AND pseudonym = $2",
    )
    .bind(generation)
    .bind(pseudonym)
    .fetch_optional(&mut *c)
    .await)?
    .unwrap_or(false);
    let accompaniments = on_backend!(h.conn(), c => sqlx::query_as::<_, HeldAccompaniment>(
        "SELECT accompaniment_id, structure_id, start_date, end_date FROM accompaniments \
         WHERE gen = $1 AND pseudonym = $2 ORDER BY accompaniment_id",
    )
    .bind(generation)
    .bind(pseudonym)
    .fetch_all(&mut *c)
    .await)?;
    let referrals = crate::referrals::held(&mut h, generation, pseudonym).await?;
    Ok(Held {
        objected,
        accompaniments,
        referrals,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_follow_each_other() {
        assert_eq!(next_month("2025-01"), "2025-02");
        assert_eq!(next_month("2025-12"), "2026-01");
    }

    #[test]
    fn days_are_checked() {
        assert!(day("start_date", "2025-02-28").is_ok());
        assert!(day("start_date", "2025-02-30").is_err());
        assert!(day("start_date", "").is_err());
    }

    #[test]
    fn pseudonyms_are_keyed_hashes() {
        let a = Pseudonyms { key: [1; 32] };
        let b = Pseudonyms { key: [2; 32] };
        let p = a.of("0190a000-0000-7000-8000-000000000001");
        assert!(p.starts_with("p:"));
        assert_eq!(p.len(), 2 + 64);
        assert_eq!(p, a.of("0190a000-0000-7000-8000-000000000001"));
        assert_ne!(p, b.of("0190a000-0000-7000-8000-000000000001"));
        assert_ne!(p, a.of("0190a000-0000-7000-8000-000000000002"));
        assert_eq!(format!("{a:?}"), "Pseudonyms(<key hidden>)");
    }
}
