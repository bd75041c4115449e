//! What one diagnostics event adds to the counters, computed the same way
//! to add it (sign +1) and to take it away (sign −1), and the compact forms
//! facts and counters are stored in.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hash, Hasher};

use eva_proto::diagnostics::v1::{ItemEvolution, Level};

/// A multiply-rotate hash over 8-byte words (as rustc's FxHash): the keys
/// hashed on the ingestion path are our own events' short strings, where
/// SipHash's protection against chosen keys buys nothing and costs a good
/// part of the time.
#[derive(Default)]
pub struct Fx(u64);

impl Fx {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for Fx {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            self.add(u64::from_le_bytes([
                w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7],
            ]));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
    }
}

pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<Fx>>;
pub type FastSet<T> = HashSet<T, BuildHasherDefault<Fx>>;

/// A counter vector's measure: its categories, in storage order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Measure {
    /// Shared diagnostics, the counselor's level: items, domains (strongest
    /// level of the domain) and "any domain" (strongest level overall).
    Barrier,
    /// Shared diagnostics, items rated by both the person and the counselor.
    Gap,
    /// Superseded diagnostics, the counselor's evolution per item.
    Evolution,
}

impl Measure {
    pub const ALL: [Measure; 3] = [Measure::Barrier, Measure::Gap, Measure::Evolution];

    pub fn code(self) -> &'static str {
        match self {
            Measure::Barrier => "barrier",
            Measure::Gap => "gap",
            Measure::Evolution => "evolution",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.code() == s)
    }

    /// Category codes, as published, in storage order.
    pub fn categories(self) -> &'static [&'static str] {
        match self {
            Measure::Barrier => &["frein", "frein_majeur"],
            Measure::Gap => &["personne_plus_severe", "identique", "personne_moins_severe"],
            Measure::Evolution => &["ameliore", "inchange", "degrade", "nouvellement_aborde"],
        }
    }

    /// Counters per dictionary code.
    pub fn stride(self) -> usize {
        self.categories().len()
    }
}

/// Where and by what kind of structure a diagnostic was recorded.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, sqlx::FromRow)]
pub struct Context {
    pub commune: String,
    pub epci: String,
    pub departement: String,
    pub structure_kind: String,
}

/// Which event a fact comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactKind {
    Shared = 1,
    Superseded = 2,
}

impl FactKind {
    pub fn from_code(code: i64) -> Option<Self> {
        match code {
            1 => Some(FactKind::Shared),
            2 => Some(FactKind::Superseded),
            _ => None,
        }
    }
}

/// One item of a fact: its dictionary code and its rating (shared: the
/// counselor's level | the person's level << 4; superseded: the counselor's
/// evolution), as proto enum values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rec {
    pub code: u16,
    pub value: u8,
}

impl Rec {
    pub const SIZE: usize = 3;

    /// A shared diagnostic's item.
    pub fn rating(code: u16, counselor: Level, person: Level) -> Self {
        Self {
            code,
            value: (counselor as u8) | ((person as u8) << 4),
        }
    }

    /// A superseded diagnostic's item.
    pub fn evolution(code: u16, evolution: ItemEvolution) -> Self {
        Self {
            code,
            value: evolution as u8,
        }
    }

    fn counselor(self) -> Option<Level> {
        Level::try_from(i32::from(self.value & 0x0f)).ok()
    }

    fn person(self) -> Option<Level> {
        Level::try_from(i32::from(self.value >> 4)).ok()
    }
}

/// Fixed-size records, back to back.
pub fn encode_recs(recs: &[Rec]) -> Vec<u8> {
    let mut out = Vec::with_capacity(recs.len() * Rec::SIZE);
    for r in recs {
        out.extend_from_slice(&r.code.to_le_bytes());
        out.push(r.value);
    }
    out
}

pub fn decode_recs(bytes: &[u8]) -> Result<Vec<Rec>, String> {
    if !bytes.len().is_multiple_of(Rec::SIZE) {
        return Err(format!(
            "items of {} bytes: not 3-byte records",
            bytes.len()
        ));
    }
    Ok(bytes
        .chunks_exact(Rec::SIZE)
        .map(|c| Rec {
            code: u16::from_le_bytes([c[0], c[1]]),
            value: c[2],
        })
        .collect())
}

/// A counted (or to be uncounted) event, in the form stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact {
    pub kind: FactKind,
    /// `YYYY-MM`: of the (new) diagnostic.
    pub month: String,
    pub context: Context,
    pub recs: Vec<Rec>,
}

/// Barrier category of a counselor level: 0 frein, 1 frein_majeur.
fn barrier(level: Level) -> Option<usize> {
    match level {
        Level::Frein => Some(0),
        Level::FreinMajeur => Some(1),
        _ => None,
    }
}

/// Severity on the scale, for comparing ratings; `None` when not rated.
fn severity(level: Level) -> Option<u8> {
    match level {
        Level::FreinMajeur => Some(4),
        Level::Frein => Some(3),
        Level::SansImpact => Some(2),
        Level::PointDAppui => Some(1),
        Level::Unspecified | Level::NonAborde => None,
    }
}

/// Gap category: 0 person more severe, 1 same, 2 person less severe.
fn gap(counselor: Level, person: Level) -> Option<usize> {
    let (c, p) = (severity(counselor)?, severity(person)?);
    Some(match p.cmp(&c) {
        std::cmp::Ordering::Greater => 0,
        std::cmp::Ordering::Equal => 1,
        std::cmp::Ordering::Less => 2,
    })
}

/// Evolution category: 0 improved, 1 unchanged, 2 worsened, 3 newly addressed.
fn evolution(e: ItemEvolution) -> Option<usize> {
    match e {
        ItemEvolution::Improved => Some(0),
        ItemEvolution::Unchanged => Some(1),
        ItemEvolution::Worsened => Some(2),
        ItemEvolution::NewlyAddressed => Some(3),
        ItemEvolution::NotComparable | ItemEvolution::Unspecified => None,
    }
}

/// Whether a shared diagnostic's item counts for anything (else it is not
/// stored in the fact).
pub fn rating_counts(counselor: Level, person: Level) -> bool {
    barrier(counselor).is_some() || gap(counselor, person).is_some()
}

/// Whether a superseded diagnostic's item counts for anything.
pub fn evolution_counts(e: ItemEvolution) -> bool {
    evolution(e).is_some()
}

/// One entry of the dictionary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub domain: String,
    pub item: String,
}

/// The référentiel entries seen, by code.
#[derive(Debug, Default, Clone)]
pub struct Dictionary {
    /// domain → item → code.
    codes: FastMap<String, FastMap<String, u16>>,
    /// Indexed by code.
    entries: Vec<Option<Entry>>,
    /// Indexed by item code: the code of its domain's row.
    domains: Vec<Option<u16>>,
}

impl Dictionary {
    pub fn insert(&mut self, code: u16, domain: String, item: String) {
        let i = usize::from(code);
        if self.entries.len() <= i {
            self.entries.resize(i + 1, None);
            self.domains.resize(i + 1, None);
        }
        self.codes
            .entry(domain.clone())
            .or_default()
            .insert(item.clone(), code);
        if item.is_empty() {
            // Items seen before their domain's row.
            for (j, e) in self.entries.iter().enumerate() {
                if e.as_ref()
                    .is_some_and(|e| e.domain == domain && !e.item.is_empty())
                {
                    self.domains[j] = Some(code);
                }
            }
        } else {
            self.domains[i] = self.code(&domain, "");
        }
        self.entries[i] = Some(Entry { domain, item });
    }

    pub fn code(&self, domain: &str, item: &str) -> Option<u16> {
        self.codes.get(domain)?.get(item).copied()
    }

    /// Codes a counter vector must have room for (the highest plus one).
    pub fn slots(&self) -> usize {
        self.entries.len()
    }

    pub fn entry(&self, code: u16) -> Option<&Entry> {
        self.entries.get(usize::from(code)).and_then(Option::as_ref)
    }

    /// Every entry with its code.
    pub fn iter(&self) -> impl Iterator<Item = (u16, &Entry)> {
        self.entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| Some((u16::try_from(i).ok()?, e.as_ref()?)))
    }

    /// The code of an item's domain row.
    fn domain_code(&self, item_code: u16) -> Result<u16, String> {
        self.domains
            .get(usize::from(item_code))
            .copied()
            .flatten()
            .ok_or_else(|| format!("no domain code for item code {item_code}"))
    }
}

/// A counter vector's key.
pub type CellKey = (Measure, String, Context);

/// Counter changes of a batch of events, merged before anything is written:
/// one write per cell touched, whatever the number of events. Cells are
/// found by (month, context) without allocating: events of a batch come
/// from few places.
#[derive(Debug, Default)]
pub struct Deltas {
    /// (month, context) of each place, by index.
    places: Vec<(String, Context)>,
    /// Hash of a place → its indexes.
    index: FastMap<u64, Vec<usize>>,
    /// Diagnostics shared, per place.
    diagnostics: Vec<i64>,
    /// Counter vectors (`code × stride + category`), per place and measure.
    items: Vec<[Vec<i64>; 3]>,
}

fn place_hash(month: &str, ctx: &Context) -> u64 {
    let mut h = Fx::default();
    (month, ctx).hash(&mut h);
    h.finish()
}

impl Deltas {
    fn place(&mut self, month: &str, ctx: &Context) -> usize {
        let h = place_hash(month, ctx);
        let candidates = self.index.entry(h).or_default();
        if let Some(&i) = candidates
            .iter()
            .find(|&&i| self.places[i].0 == month && self.places[i].1 == *ctx)
        {
            return i;
        }
        let i = self.places.len();
        candidates.push(i);
        self.places.push((month.to_owned(), ctx.clone()));
        self.diagnostics.push(0);
        self.items.push(Default::default());
        i
    }

    fn vector(&mut self, place: usize, measure: Measure, slots: usize) -> &mut Vec<i64> {
        let v = &mut self.items[place][measure as usize];
        let len = slots * measure.stride();
        if v.len() < len {
            v.resize(len, 0);
        }
        v
    }

    /// Diagnostics shared by (month, context), those that changed.
    pub fn diagnostics(&self) -> BTreeMap<(String, Context), i64> {
        self.places
            .iter()
            .zip(&self.diagnostics)
            .filter(|(_, n)| **n != 0)
            .map(|(p, n)| (p.clone(), *n))
            .collect()
    }

    /// Counter vectors by key, those that changed.
    pub fn items(&self) -> BTreeMap<CellKey, &[i64]> {
        let mut out = BTreeMap::new();
        for ((month, ctx), vectors) in self.places.iter().zip(&self.items) {
            for m in Measure::ALL {
                let v = &vectors[m as usize];
                if v.iter().any(|n| *n != 0) {
                    out.insert((m, month.clone(), ctx.clone()), v.as_slice());
                }
            }
        }
        out
    }

    /// Adds `sign` × the fact's contributions.
    pub fn add(&mut self, fact: &Fact, dict: &Dictionary, sign: i64) -> Result<(), String> {
        let slots = dict.slots();
        let place = self.place(&fact.month, &fact.context);
        match fact.kind {
            FactKind::Shared => {
                self.diagnostics[place] += sign;
                // Strongest barrier level of each domain, and overall.
                let mut domains: BTreeMap<u16, usize> = BTreeMap::new();
                let mut any: Option<usize> = None;
                let mut items = Vec::new();
                let mut gaps = Vec::new();
                for r in &fact.recs {
                    let (Some(c), Some(p)) = (r.counselor(), r.person()) else {
                        return Err(format!("invalid rating {:#x}", r.value));
                    };
                    let i = usize::from(r.code);
                    if let Some(cat) = barrier(c) {
                        items.push(i * 2 + cat);
                        let d = domains.entry(dict.domain_code(r.code)?).or_insert(cat);
                        *d = (*d).max(cat);
                        any = any.max(Some(cat));
                    }
                    if let Some(cat) = gap(c, p) {
                        gaps.push(i * 3 + cat);
                    }
                }
                if let Some(cat) = any {
                    let any_code = dict.code("", "").ok_or("no code for any domain")?;
                    let v = self.vector(place, Measure::Barrier, slots);
                    for i in items {
                        v[i] += sign;
                    }
                    for (d, cat) in domains {
                        v[usize::from(d) * 2 + cat] += sign;
                    }
                    v[usize::from(any_code) * 2 + cat] += sign;
                }
                if !gaps.is_empty() {
                    let v = self.vector(place, Measure::Gap, slots);
                    for i in gaps {
                        v[i] += sign;
                    }
                }
            }
            FactKind::Superseded => {
                let mut changes = Vec::new();
                for r in &fact.recs {
                    let e = ItemEvolution::try_from(i32::from(r.value))
                        .ok()
                        .and_then(evolution)
                        .ok_or_else(|| format!("invalid evolution {}", r.value))?;
                    changes.push(usize::from(r.code) * 4 + e);
                }
                if !changes.is_empty() {
                    let v = self.vector(place, Measure::Evolution, slots);
                    for i in changes {
                        v[i] += sign;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Adds `delta` to a stored counter vector (little-endian i32s; missing
/// ones are zero).
pub fn add_counts(stored: &[u8], delta: &[i64]) -> Result<Vec<u8>, String> {
    let n = (stored.len() / 4).max(delta.len());
    let mut out = Vec::with_capacity(n * 4);
    for i in 0..n {
        let old = stored
            .get(i * 4..i * 4 + 4)
            .map(|b| i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])))
            .unwrap_or(0);
        let new = old + delta.get(i).copied().unwrap_or(0);
        let new = i32::try_from(new).map_err(|_| format!("counter out of range: {new}"))?;
        out.extend_from_slice(&new.to_le_bytes());
    }
    Ok(out)
}

/// Adds a stored counter vector into `sums` (which grows as needed).
pub fn sum_counts(sums: &mut Vec<i64>, stored: &[u8]) {
    let n = stored.len() / 4;
    if sums.len() < n {
        sums.resize(n, 0);
    }
    for (s, b) in sums.iter_mut().zip(stored.chunks_exact(4)) {
        *s += i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dict() -> Dictionary {
        let mut d = Dictionary::default();
        d.insert(1, "".into(), "".into());
        d.insert(2, "mobilite".into(), "".into());
        d.insert(3, "mobilite".into(), "mobilite.permis".into());
        d.insert(4, "mobilite".into(), "mobilite.vehicule".into());
        d.insert(5, "sante".into(), "".into());
        d.insert(6, "sante".into(), "sante.moral".into());
        d.insert(7, "sante".into(), "sante.dependances".into());
        d
    }

    fn ctx() -> Context {
        Context {
            commune: "27229".into(),
            epci: "200000001".into(),
            departement: "27".into(),
            structure_kind: "aci".into(),
        }
    }

    /// Non-zero counters of a vector as (code, category) → n.
    fn cells(v: &[i64], m: Measure) -> BTreeMap<(usize, &'static str), i64> {
        v.iter()
            .enumerate()
            .filter(|(_, n)| **n != 0)
            .map(|(i, n)| ((i / m.stride(), m.categories()[i % m.stride()]), *n))
            .collect()
    }

    #[test]
    fn records_round_trip() {
        let recs = vec![
            Rec::rating(3, Level::Frein, Level::PointDAppui),
            Rec::evolution(700, ItemEvolution::NewlyAddressed),
        ];
        let bytes = encode_recs(&recs);
        assert_eq!(bytes.len(), 6);
        assert_eq!(decode_recs(&bytes).unwrap(), recs);
        assert!(decode_recs(&bytes[..4]).is_err());
    }

    #[test]
    fn shared_diagnostic_cells() {
        let d = dict();
        let fact = Fact {
            kind: FactKind::Shared,
            month: "2026-03".into(),
            context: ctx(),
            recs: vec![
                // permis: counselor frein, person frein majeur → person more severe
                Rec::rating(3, Level::Frein, Level::FreinMajeur),
                // véhicule: frein majeur both → same
                Rec::rating(4, Level::FreinMajeur, Level::FreinMajeur),
                // moral: frein, person unrated → barrier only
                Rec::rating(6, Level::Frein, Level::Unspecified),
                // dépendances: sans impact vs point d'appui → person less severe
                Rec::rating(7, Level::SansImpact, Level::PointDAppui),
            ],
        };
        let mut deltas = Deltas::default();
        deltas.add(&fact, &d, 1).unwrap();
        assert_eq!(
            deltas.diagnostics(),
            BTreeMap::from([(("2026-03".to_string(), ctx()), 1)])
        );
        let items = deltas.items();
        let key = |m| (m, "2026-03".to_string(), ctx());
        let barrier = cells(items[&key(Measure::Barrier)], Measure::Barrier);
        assert_eq!(
            barrier,
            BTreeMap::from([
                ((1, "frein_majeur"), 1), // any domain: strongest overall
                ((2, "frein_majeur"), 1), // mobilité: strongest of its items
                ((3, "frein"), 1),
                ((4, "frein_majeur"), 1),
                ((5, "frein"), 1), // santé
                ((6, "frein"), 1),
            ])
        );
        let gaps = cells(items[&key(Measure::Gap)], Measure::Gap);
        assert_eq!(
            gaps,
            BTreeMap::from([
                ((3, "personne_plus_severe"), 1),
                ((4, "identique"), 1),
                ((7, "personne_moins_severe"), 1),
            ])
        );
        assert!(!items.contains_key(&key(Measure::Evolution)));

        // Taking it away again leaves only zeros.
        deltas.add(&fact, &d, -1).unwrap();
        assert!(deltas.diagnostics().is_empty());
        assert!(deltas.items().is_empty());
    }

    #[test]
    fn no_barrier_no_barrier_cells() {
        let d = dict();
        let fact = Fact {
            kind: FactKind::Shared,
            month: "2026-03".into(),
            context: ctx(),
            recs: vec![Rec::rating(3, Level::PointDAppui, Level::PointDAppui)],
        };
        let mut deltas = Deltas::default();
        deltas.add(&fact, &d, 1).unwrap();
        let items = deltas.items();
        assert_eq!(items.len(), 1);
        let gaps = items[&(Measure::Gap, "2026-03".to_string(), ctx())];
        assert_eq!(
            cells(gaps, Measure::Gap),
            BTreeMap::from([((3, "identique"), 1)])
        );
    }

    #[test]
    fn superseded_diagnostic_cells() {
        let d = dict();
        let fact = Fact {
            kind: FactKind::Superseded,
            month: "2026-05".into(),
            context: ctx(),
            recs: vec![
                Rec::evolution(3, ItemEvolution::Improved),
                Rec::evolution(4, ItemEvolution::Worsened),
                Rec::evolution(6, ItemEvolution::Unchanged),
                Rec::evolution(7, ItemEvolution::NewlyAddressed),
            ],
        };
        let mut deltas = Deltas::default();
        deltas.add(&fact, &d, 1).unwrap();
        assert!(deltas.diagnostics().is_empty());
        let items = deltas.items();
        let v = items[&(Measure::Evolution, "2026-05".to_string(), ctx())];
        assert_eq!(
            cells(v, Measure::Evolution),
            BTreeMap::from([
                ((3, "ameliore"), 1),
                ((4, "degrade"), 1),
                ((6, "inchange"), 1),
                ((7, "nouvellement_aborde"), 1),
            ])
        );
        let bad = Fact {
            recs: vec![Rec::evolution(3, ItemEvolution::NotComparable)],
            ..fact
        };
        assert!(deltas.add(&bad, &d, 1).is_err());
    }

    #[test]
    fn counter_vectors() {
        let stored = add_counts(&[], &[1, 0, 2]).unwrap();
        assert_eq!(stored.len(), 12);
        let stored = add_counts(&stored, &[1, 1, -2, 5]).unwrap();
        let mut sums = Vec::new();
        sum_counts(&mut sums, &stored);
        assert_eq!(sums, vec![2, 1, 0, 5]);
        assert!(add_counts(&stored, &[i64::from(i32::MAX)]).is_err());
    }

    #[test]
    fn which_items_count() {
        assert!(rating_counts(Level::Frein, Level::Unspecified));
        assert!(rating_counts(Level::SansImpact, Level::PointDAppui));
        assert!(!rating_counts(Level::SansImpact, Level::NonAborde));
        assert!(!rating_counts(Level::NonAborde, Level::Frein));
        assert!(evolution_counts(ItemEvolution::Unchanged));
        assert!(!evolution_counts(ItemEvolution::NotComparable));
    }
}
