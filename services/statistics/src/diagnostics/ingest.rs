//! `eva.diagnostics.*` → facts and counters.
//!
//! A batch is applied with a handful of statements whatever its size: the
//! facts in multi-row inserts (`ON CONFLICT DO NOTHING RETURNING`: only
//! those really inserted count), their contributions merged in memory, then
//! one write per counter row touched.

use std::collections::{BTreeSet, HashMap, HashSet};

use async_trait::async_trait;
use eva_platform::consumer::{ApplyError, Envelope};
use eva_platform::db::{Backend, DbError, Params, Tx};
use eva_platform::federation::{self, StatisticsFeed};
use eva_platform::on_backend;
use eva_proto::diagnostics::v1::{
    ItemEvolution, Level, RecordingContext, StatisticsExclusionChanged,
};

use super::contributions::{
    CellKey, Context, Deltas, Dictionary, Fact, FactKind, FastSet, Measure, Rec, add_counts,
    decode_recs, encode_recs, evolution_counts, rating_counts,
};
use super::wire;
use crate::feed::{Feed, micros};
use crate::model::month_of_us;
use crate::store::{Store, departement_of};
use crate::structures::kind_code;
use sha2::{Digest, Sha256};

pub const SHARED: &str = "eva.diagnostics.diagnostic.shared";
pub const SUPERSEDED: &str = "eva.diagnostics.diagnostic.superseded";
pub const EXCLUSION_CHANGED: &str = "eva.diagnostics.pseudonym.exclusion_changed";

/// Rows per multi-row statement (well under SQLite's 32,766 parameters).
const CHUNK: usize = 200;

/// `eva.diagnostics.*` → `diagnostic_facts`, `diagnostic_counts`,
/// `diagnostic_item_counts`.
pub struct DiagnosticsFeed;

#[async_trait]
impl Feed for DiagnosticsFeed {
    fn source(&self) -> StatisticsFeed {
        federation::statistics::DIAGNOSTICS
    }

    async fn apply(
        &self,
        tx: &mut Tx,
        gens: &[i64],
        events: &[Envelope],
    ) -> Result<(), ApplyError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut dict = load_dictionary(tx.conn()).await?;
        let parsed = events
            .iter()
            .map(|e| parse(e, &dict))
            .filter_map(Result::transpose)
            .collect::<Result<Vec<_>, _>>()?;
        if parsed.is_empty() {
            return Ok(());
        }
        note_territories(tx, &parsed).await?;
        ensure_codes(tx, &mut dict, &parsed).await?;
        let steps = parsed
            .into_iter()
            .map(|p| encode(p, &dict))
            .collect::<Result<Vec<_>, _>>()?;
        for &generation in gens {
            let mut deltas = Deltas::default();
            let mut i = 0;
            while i < steps.len() {
                match &steps[i] {
                    Step::Exclusion {
                        pseudonym,
                        excluded,
                        at_us,
                    } => {
                        exclusion(
                            tx,
                            generation,
                            pseudonym,
                            *excluded,
                            *at_us,
                            &dict,
                            &mut deltas,
                        )
                        .await?;
                        i += 1;
                    }
                    Step::Fact(_) => {
                        // A run of facts up to the next choice about
                        // statistics: they share one view of the exclusions.
                        let end = steps[i..]
                            .iter()
                            .position(|s| matches!(s, Step::Exclusion { .. }))
                            .map_or(steps.len(), |n| i + n);
                        let run: Vec<&NewFact> = steps[i..end]
                            .iter()
                            .filter_map(|s| match s {
                                Step::Fact(f) => Some(f),
                                Step::Exclusion { .. } => None,
                            })
                            .collect();
                        insert_facts(tx, generation, &run, &dict, &mut deltas).await?;
                        i = end;
                    }
                }
            }
            flush(tx, generation, &deltas).await?;
        }
        Ok(())
    }
}

/// An item read, its code when the dictionary had it already.
struct RawItem<'a> {
    domain: &'a str,
    item: &'a str,
    /// As in [`Rec`].
    value: u8,
    code: Option<u16>,
}

/// An event read, borrowing from its body.
enum Parsed<'a> {
    Fact {
        event_id: [u8; 16],
        pseudonym: &'a str,
        kind: FactKind,
        month: String,
        context: Context,
        items: Vec<RawItem<'a>>,
    },
    Exclusion {
        pseudonym: String,
        excluded: bool,
        at_us: i64,
    },
}

/// An event ready to apply, its items coded.
enum Step {
    Fact(NewFact),
    Exclusion {
        pseudonym: String,
        excluded: bool,
        at_us: i64,
    },
}

struct NewFact {
    event_id: [u8; 16],
    pseudonym: String,
    fact: Fact,
}

fn invalid(event: &Envelope, why: impl std::fmt::Display) -> ApplyError {
    ApplyError::Permanent(format!("{} {}: {why}", event.event_type, event.id))
}

fn pseudonym_of<'a>(event: &Envelope, p: &'a str) -> Result<&'a str, ApplyError> {
    if p.is_empty() {
        return Err(invalid(event, "no statistics_pseudonym"));
    }
    Ok(p)
}

/// The month of a day `YYYY-MM-DD`; the event's time when absent.
fn month_of_day(event: &Envelope, day: &str) -> Result<String, ApplyError> {
    if day.is_empty() {
        return Ok(month_of_us(micros(None, event)));
    }
    let b = day.as_bytes();
    let valid = b.len() >= 7
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && matches!(
            &b[5..7],
            b"01"
                | b"02"
                | b"03"
                | b"04"
                | b"05"
                | b"06"
                | b"07"
                | b"08"
                | b"09"
                | b"10"
                | b"11"
                | b"12"
        );
    if !valid {
        return Err(invalid(event, format!("invalid day {day:?}")));
    }
    Ok(day[..7].to_owned())
}

fn context_of(event: &Envelope, c: Option<RecordingContext>) -> Result<Context, ApplyError> {
    let c = c.ok_or_else(|| invalid(event, "no recording context"))?;
    let structure_kind = kind_code(c.structure_kind).ok_or_else(|| {
        invalid(
            event,
            format!("unknown structure kind {}", c.structure_kind),
        )
    })?;
    let departement = if c.departement.is_empty() {
        departement_of(&c.commune_insee)
    } else {
        c.departement
    };
    Ok(Context {
        commune: c.commune_insee,
        epci: c.epci,
        departement,
        structure_kind,
    })
}

fn level(event: &Envelope, v: i32) -> Result<Level, ApplyError> {
    Level::try_from(v).map_err(|_| invalid(event, format!("unknown level {v}")))
}

fn parse<'a>(event: &'a Envelope, dict: &Dictionary) -> Result<Option<Parsed<'a>>, ApplyError> {
    let body = event.payload.as_ref();
    let (kind, d) = match event.event_type.as_str() {
        SHARED => (FactKind::Shared, wire::shared(body)),
        SUPERSEDED => (FactKind::Superseded, wire::superseded(body)),
        EXCLUSION_CHANGED => {
            let e: StatisticsExclusionChanged = event.decode()?;
            return Ok(Some(Parsed::Exclusion {
                pseudonym: pseudonym_of(event, &e.statistics_pseudonym)?.to_owned(),
                excluded: e.excluded,
                at_us: micros(e.changed_at, event),
            }));
        }
        _ => return Ok(None),
    };
    let d = d.map_err(|e| invalid(event, format!("undecodable body: {e}")))?;
    let mut items = Vec::with_capacity(d.items.len());
    for i in d.items {
        if i.domain.is_empty() || i.item.is_empty() {
            return Err(invalid(event, "item without domain_id or item_id"));
        }
        let value = match kind {
            FactKind::Shared => {
                let (c, p) = (level(event, i.first)?, level(event, i.second)?);
                if !rating_counts(c, p) {
                    continue;
                }
                Rec::rating(0, c, p).value
            }
            // Counted where and when the new diagnostic was shared.
            FactKind::Superseded => {
                let e = ItemEvolution::try_from(i.first)
                    .map_err(|_| invalid(event, format!("unknown evolution {}", i.first)))?;
                if !evolution_counts(e) {
                    continue;
                }
                Rec::evolution(0, e).value
            }
        };
        items.push(RawItem {
            domain: i.domain,
            item: i.item,
            value,
            code: dict.code(i.domain, i.item),
        });
    }
    Ok(Some(Parsed::Fact {
        event_id: *event.id.as_bytes(),
        pseudonym: pseudonym_of(event, d.pseudonym)?,
        kind,
        month: month_of_day(event, d.shared_on)?,
        context: context_of(event, d.context)?,
        items,
    }))
}

/// Notes each recording context's territories, once per batch and only
/// those not known yet.
async fn note_territories(tx: &mut Tx, parsed: &[Parsed<'_>]) -> Result<(), DbError> {
    let contexts: BTreeSet<&Context> = parsed
        .iter()
        .filter_map(|p| match p {
            Parsed::Fact { context, .. } => Some(context),
            Parsed::Exclusion { .. } => None,
        })
        .collect();
    if contexts.is_empty() {
        return Ok(());
    }
    let known: HashSet<String> = on_backend!(tx.conn(), c => sqlx::query_scalar::<_, String>(
        "SELECT code FROM territories",
    )
    .fetch_all(&mut *c)
    .await)?
    .into_iter()
    .collect();
    for c in contexts {
        if [&c.commune, &c.epci, &c.departement]
            .iter()
            .any(|code| !code.is_empty() && !known.contains(code.as_str()))
        {
            Store::note_territories(tx, &c.commune, &c.epci, &c.departement).await?;
        }
    }
    Ok(())
}

/// The dictionary as stored in `tx`.
pub async fn load_dictionary(conn: eva_platform::db::Conn<'_>) -> Result<Dictionary, DbError> {
    let rows = on_backend!(conn, c => sqlx::query_as::<_, (i64, String, String)>(
        "SELECT code, domain, item FROM diagnostic_dictionary",
    )
    .fetch_all(&mut *c)
    .await)?;
    let mut dict = Dictionary::default();
    for (code, domain, item) in rows {
        // Codes past u16 are never given (see ensure_codes).
        if let Ok(code) = u16::try_from(code) {
            dict.insert(code, domain, item);
        }
    }
    Ok(dict)
}

/// Gives a code to every entry the batch names and the dictionary lacks:
/// its items, their domains and "any domain".
async fn ensure_codes(
    tx: &mut Tx,
    dict: &mut Dictionary,
    parsed: &[Parsed<'_>],
) -> Result<(), ApplyError> {
    let mut missing: BTreeSet<(&str, &str)> = BTreeSet::new();
    for p in parsed {
        if let Parsed::Fact { kind, items, .. } = p {
            let mut last_domain = None;
            for i in items {
                if i.code.is_none() {
                    missing.insert((i.domain, i.item));
                }
                // Items come domain by domain.
                if *kind == FactKind::Shared && last_domain != Some(i.domain) {
                    if dict.code(i.domain, "").is_none() {
                        missing.insert((i.domain, ""));
                    }
                    last_domain = Some(i.domain);
                }
            }
            if *kind == FactKind::Shared && !items.is_empty() && dict.code("", "").is_none() {
                missing.insert(("", ""));
            }
        }
    }
    for (domain, item) in missing {
        let code = on_backend!(tx.conn(), c => {
            sqlx::query(
                "INSERT INTO diagnostic_dictionary (domain, item) VALUES ($1, $2) ON CONFLICT (domain, item) DO NOTHING",
            )
            .bind(domain)
            .bind(item)
            .execute(&mut *c)
            .await?;
            sqlx::query_scalar::<_, i64>(
                "SELECT code FROM diagnostic_dictionary WHERE domain = $1 AND item = $2",
            )
            .bind(domain)
            .bind(item)
            .fetch_one(&mut *c)
            .await
        })?;
        let code = u16::try_from(code).map_err(|_| {
            ApplyError::Permanent(format!(
                "référentiel entry {domain}/{item}: dictionary full"
            ))
        })?;
        dict.insert(code, domain.to_owned(), item.to_owned());
    }
    Ok(())
}

fn encode(p: Parsed<'_>, dict: &Dictionary) -> Result<Step, ApplyError> {
    Ok(match p {
        Parsed::Fact {
            event_id,
            pseudonym,
            kind,
            month,
            context,
            items,
        } => {
            // The same item twice would count twice: the first wins.
            let mut seen = vec![false; dict.slots()];
            let mut recs = Vec::with_capacity(items.len());
            for i in items {
                let code = i
                    .code
                    .or_else(|| dict.code(i.domain, i.item))
                    .ok_or_else(|| {
                        ApplyError::Transient(format!("no code for {}/{}", i.domain, i.item))
                    })?;
                if !std::mem::replace(&mut seen[usize::from(code)], true) {
                    recs.push(Rec {
                        code,
                        value: i.value,
                    });
                }
            }
            Step::Fact(NewFact {
                event_id,
                pseudonym: pseudonym.to_owned(),
                fact: Fact {
                    kind,
                    month,
                    context,
                    recs,
                },
            })
        }
        Parsed::Exclusion {
            pseudonym,
            excluded,
            at_us,
        } => Step::Exclusion {
            pseudonym,
            excluded,
            at_us,
        },
    })
}

/// What facts are indexed by instead of their pseudonym (64 characters):
/// the first 8 bytes of its SHA-256, a much smaller index. Stored: never
/// change it.
fn pseudonym_key(pseudonym: &str) -> i64 {
    let h = Sha256::digest(pseudonym.as_bytes());
    i64::from_be_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]])
}

/// Pseudonyms among `pseudonyms` currently excluded in `generation`.
async fn excluded_among(
    tx: &mut Tx,
    generation: i64,
    pseudonyms: &[&str],
) -> Result<FastSet<String>, DbError> {
    let mut out = FastSet::default();
    for chunk in pseudonyms.chunks(CHUNK) {
        let p = Params::of(tx.backend());
        let sql = format!(
            "SELECT pseudonym FROM exclusions WHERE gen = {} AND excluded = {} AND pseudonym IN {}",
            p.one(1),
            p.one(2),
            p.tuple(3, chunk.len())
        );
        let rows = on_backend!(tx.conn(), c => {
            let mut q = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(generation)
                .bind(true);
            for p in chunk {
                q = q.bind(*p);
            }
            q.fetch_all(&mut *c).await
        })?;
        out.extend(rows);
    }
    Ok(out)
}

/// Inserts a run of facts; those really inserted and not excluded count.
async fn insert_facts(
    tx: &mut Tx,
    generation: i64,
    run: &[&NewFact],
    dict: &Dictionary,
    deltas: &mut Deltas,
) -> Result<(), ApplyError> {
    // The same event twice in a batch is one fact.
    let mut ids = FastSet::default();
    let run: Vec<&NewFact> = run
        .iter()
        .copied()
        .filter(|f| ids.insert(f.event_id))
        .collect();
    let pseudonyms: Vec<&str> = run
        .iter()
        .map(|f| f.pseudonym.as_str())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let excluded = excluded_among(tx, generation, &pseudonyms).await?;
    let mut inserted: FastSet<Vec<u8>> = FastSet::default();
    for chunk in run.chunks(CHUNK) {
        let sql = format!(
            "INSERT INTO diagnostic_facts (gen, event_id, pseudonym, pseudonym_key, kind, excluded, month, \
             commune, epci, departement, structure_kind, items) VALUES {} ON CONFLICT (gen, event_id) DO NOTHING \
             RETURNING event_id",
            Params::of(tx.backend()).values(chunk.len(), 12, 0)
        );
        let rows = on_backend!(tx.conn(), c => {
            let mut q = sqlx::query_scalar::<_, Vec<u8>>(sqlx::AssertSqlSafe(sql.as_str()));
            for f in chunk {
                let ctx = &f.fact.context;
                q = q
                    .bind(generation)
                    .bind(f.event_id.to_vec())
                    .bind(&f.pseudonym)
                    .bind(pseudonym_key(&f.pseudonym))
                    .bind(f.fact.kind as i64)
                    .bind(excluded.contains(&f.pseudonym))
                    .bind(&f.fact.month)
                    .bind(&ctx.commune)
                    .bind(&ctx.epci)
                    .bind(&ctx.departement)
                    .bind(&ctx.structure_kind)
                    .bind(encode_recs(&f.fact.recs));
            }
            q.fetch_all(&mut *c).await
        })?;
        inserted.extend(rows);
    }
    for f in run {
        if inserted.contains(f.event_id.as_slice()) && !excluded.contains(&f.pseudonym) {
            deltas
                .add(&f.fact, dict, 1)
                .map_err(ApplyError::Permanent)?;
        }
    }
    Ok(())
}

#[derive(sqlx::FromRow)]
struct FactRow {
    kind: i64,
    month: String,
    #[sqlx(flatten)]
    context: Context,
    items: Vec<u8>,
}

/// A choice about statistics: when it flips the pseudonym's state, its
/// facts are taken away from (or put back into) the counters.
async fn exclusion(
    tx: &mut Tx,
    generation: i64,
    pseudonym: &str,
    excluded: bool,
    at_us: i64,
    dict: &Dictionary,
    deltas: &mut Deltas,
) -> Result<(), ApplyError> {
    let Some(now) = Store::set_exclusion(tx, generation, pseudonym, excluded, at_us).await? else {
        return Ok(());
    };
    let rows = on_backend!(tx.conn(), c => sqlx::query_as::<_, FactRow>(
        "UPDATE diagnostic_facts SET excluded = $3 WHERE gen = $1 AND pseudonym_key = $4 AND pseudonym = $2 \
         AND excluded <> $3 \
         RETURNING kind, month, commune, epci, departement, structure_kind, items",
    )
    .bind(generation)
    .bind(pseudonym)
    .bind(now)
    .bind(pseudonym_key(pseudonym))
    .fetch_all(&mut *c)
    .await)?;
    let sign = if now { -1 } else { 1 };
    for r in rows {
        let kind = FactKind::from_code(r.kind)
            .ok_or_else(|| ApplyError::Permanent(format!("stored fact of kind {}", r.kind)))?;
        let fact = Fact {
            kind,
            month: r.month,
            context: r.context,
            recs: decode_recs(&r.items).map_err(ApplyError::Permanent)?,
        };
        deltas
            .add(&fact, dict, sign)
            .map_err(ApplyError::Permanent)?;
    }
    Ok(())
}

#[derive(sqlx::FromRow)]
struct CountsRow {
    measure: String,
    month: String,
    #[sqlx(flatten)]
    context: Context,
    counts: Vec<u8>,
}

/// Writes the batch's counter changes: one statement per table and chunk.
async fn flush(tx: &mut Tx, generation: i64, deltas: &Deltas) -> Result<(), ApplyError> {
    let p = Params::of(tx.backend());
    let diagnostics: Vec<_> = deltas.diagnostics().into_iter().collect();
    for chunk in diagnostics.chunks(CHUNK) {
        let sql = format!(
            "INSERT INTO diagnostic_counts (gen, month, commune, epci, departement, structure_kind, n) \
             VALUES {} ON CONFLICT (gen, month, commune, epci, departement, structure_kind) \
             DO UPDATE SET n = diagnostic_counts.n + excluded.n",
            p.values(chunk.len(), 7, 0)
        );
        on_backend!(tx.conn(), c => {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
            for ((month, ctx), n) in chunk {
                q = q
                    .bind(generation)
                    .bind(month)
                    .bind(&ctx.commune)
                    .bind(&ctx.epci)
                    .bind(&ctx.departement)
                    .bind(&ctx.structure_kind)
                    .bind(*n);
            }
            q.execute(&mut *c).await.map(|_| ())
        })?;
    }

    let items = deltas.items();
    if items.is_empty() {
        return Ok(());
    }
    // Counter vectors are read, added to and written back: PostgreSQL locks
    // the rows read so that a rebuild and the live consumer feeding the same
    // generation do not lose each other's additions (SQLite has one writer).
    let lock = match tx.backend() {
        Backend::Postgres => " FOR UPDATE",
        Backend::Sqlite => "",
    };
    let months: Vec<&str> = items
        .iter()
        .map(|((_, m, _), _)| m.as_str())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut stored: HashMap<CellKey, Vec<u8>> = HashMap::new();
    for chunk in months.chunks(CHUNK) {
        let sql = format!(
            "SELECT measure, month, commune, epci, departement, structure_kind, counts FROM diagnostic_item_counts \
             WHERE gen = {} AND month IN {} ORDER BY measure, month, commune, epci, departement, structure_kind{lock}",
            p.one(1),
            p.tuple(2, chunk.len())
        );
        let rows = on_backend!(tx.conn(), c => {
            let mut q = sqlx::query_as::<_, CountsRow>(sqlx::AssertSqlSafe(sql.as_str())).bind(generation);
            for m in chunk {
                q = q.bind(*m);
            }
            q.fetch_all(&mut *c).await
        })?;
        for r in rows {
            if let Some(m) = Measure::parse(&r.measure) {
                stored.insert((m, r.month, r.context), r.counts);
            }
        }
    }
    let mut updates = Vec::new();
    let mut fresh = Vec::new();
    for (key, delta) in &items {
        match stored.get(key) {
            Some(old) => {
                updates.push((key, add_counts(old, delta).map_err(ApplyError::Permanent)?))
            }
            None => fresh.push((key, *delta)),
        }
    }
    write_counts(tx, generation, &updates, true).await?;
    let fresh_rows: Vec<_> = fresh
        .iter()
        .map(|(k, d)| Ok((*k, add_counts(&[], d)?)))
        .collect::<Result<_, String>>()
        .map_err(ApplyError::Permanent)?;
    let inserted = write_counts(tx, generation, &fresh_rows, false).await?;
    // Rows another transaction created since they were read (PostgreSQL
    // only): add to them one by one, under lock.
    for (key, delta) in fresh {
        if inserted.contains(key) {
            continue;
        }
        let (measure, month, ctx) = key;
        let sql = format!(
            "SELECT counts FROM diagnostic_item_counts WHERE gen = $1 AND measure = $2 AND month = $3 \
             AND commune = $4 AND epci = $5 AND departement = $6 AND structure_kind = $7{lock}"
        );
        let old = on_backend!(tx.conn(), c => sqlx::query_scalar::<_, Vec<u8>>(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(generation)
            .bind(measure.code())
            .bind(month)
            .bind(&ctx.commune)
            .bind(&ctx.epci)
            .bind(&ctx.departement)
            .bind(&ctx.structure_kind)
            .fetch_one(&mut *c)
            .await)?;
        let new = add_counts(&old, delta).map_err(ApplyError::Permanent)?;
        write_counts(tx, generation, &[(key, new)], true).await?;
    }
    Ok(())
}

#[derive(sqlx::FromRow)]
struct KeyRow {
    measure: String,
    month: String,
    #[sqlx(flatten)]
    context: Context,
}

/// Writes counter vectors: replacing the stored ones (`replace`, rows read
/// under lock), or creating them where absent. Returns the keys written.
async fn write_counts(
    tx: &mut Tx,
    generation: i64,
    rows: &[(&CellKey, Vec<u8>)],
    replace: bool,
) -> Result<HashSet<CellKey>, DbError> {
    let mut written = HashSet::new();
    let conflict = if replace {
        "DO UPDATE SET counts = excluded.counts"
    } else {
        "DO NOTHING"
    };
    for chunk in rows.chunks(CHUNK) {
        let sql = format!(
            "INSERT INTO diagnostic_item_counts (gen, measure, month, commune, epci, departement, structure_kind, counts) \
             VALUES {} ON CONFLICT (gen, measure, month, commune, epci, departement, structure_kind) {conflict} \
             RETURNING measure, month, commune, epci, departement, structure_kind",
            Params::of(tx.backend()).values(chunk.len(), 8, 0)
        );
        let back = on_backend!(tx.conn(), c => {
            let mut q = sqlx::query_as::<_, KeyRow>(sqlx::AssertSqlSafe(sql.as_str()));
            for ((measure, month, ctx), counts) in chunk {
                q = q
                    .bind(generation)
                    .bind(measure.code())
                    .bind(month)
                    .bind(&ctx.commune)
                    .bind(&ctx.epci)
                    .bind(&ctx.departement)
                    .bind(&ctx.structure_kind)
                    .bind(counts);
            }
            q.fetch_all(&mut *c).await
        })?;
        for r in back {
            if let Some(m) = Measure::parse(&r.measure) {
                written.insert((m, r.month, r.context));
            }
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    /// The events it tells apart are the subjects it subscribes to (and the hub copies).
    #[test]
    fn reads_what_it_applies() {
        let read = eva_platform::federation::statistics::DIAGNOSTICS.subjects;
        assert_eq!(
            read,
            [super::SHARED, super::SUPERSEDED, super::EXCLUSION_CHANGED]
        );
    }
}
