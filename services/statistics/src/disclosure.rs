//! Disclosure control: what a table may publish without letting anyone
//! learn about a small group of people.
//!
//! * Primary suppression: a cell counting fewer than the threshold, or
//!   revealing another count (a guard: the numerator of a share…) between
//!   1 and the threshold, is hidden.
//! * Secondary (complementary) suppression: the total of every *line* of a
//!   table — the cells sharing all keys but one dimension's — is published
//!   elsewhere (the same query without that dimension). So in every line
//!   holding a hidden cell, at least two cells are hidden and together they
//!   count at least the threshold; otherwise the total minus the published
//!   cells would give the hidden one back. Complements are the line's
//!   smallest published cells — first those whose other lines already hide
//!   a cell, so that suppressions close into rectangles rather than spread —
//!   and a suppression in one direction is checked again in every other
//!   direction until nothing changes.
//! * Cells of one line along `measure` describe the same population: if
//!   one is hidden, they all are.
//!
//! People who objected to statistics never reach the figures: sources
//! leave them out before this module sees anything.

use std::cmp::Ordering;
use std::collections::VecDeque;

use crate::model::{Dim, Figure};

/// The disclosure-control rule.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub threshold: i64,
}

impl Rule {
    /// The method's name, as published with every answer.
    pub const METHOD: &'static str = "primary_threshold+secondary_complementary";

    /// The rule in plain French, for exports.
    pub fn describe_fr(&self) -> String {
        let t = self.threshold;
        format!(
            "Secret statistique. Les personnes qui se sont opposées à l'usage statistique de leurs \
             données sont exclues de tous les calculs. Secret primaire : toute case comptant moins de \
             {t} (effectif, ou numérateur d'une part compris entre 1 et {}) est masquée. Secret \
             secondaire : les totaux de chaque ligne et de chaque colonne étant publiés par ailleurs, \
             chaque ligne ou colonne qui contient une case masquée en contient au moins deux, qui \
             comptent ensemble au moins {t} ; on masque pour cela les plus petites cases voisines. \
             Les mesures d'une même population (médiane, 90e centile…) sont masquées ensemble. Une \
             case masquée ne publie ni effectif ni valeur ; un groupe vide n'apparaît pas.",
            t - 1
        )
    }

    /// The rule in English, for exports.
    pub fn describe_en(&self) -> String {
        let t = self.threshold;
        format!(
            "Statistical disclosure control. People who objected to the statistical use of their data \
             are left out of every figure. Primary suppression: any cell counting fewer than {t} (its \
             count, or the numerator of a share between 1 and {}) is hidden. Secondary suppression: \
             since the totals of every row and column are published elsewhere, every row or column \
             holding a hidden cell holds at least two, together counting at least {t}; the smallest \
             neighbouring cells are hidden for that. Measures of one population (median, 90th \
             percentile…) are hidden together. A hidden cell publishes neither count nor value; an \
             empty group does not appear.",
            t - 1
        )
    }

    /// Whether `n` is a count the rule hides: between 1 and the threshold.
    fn small(&self, n: i64) -> bool {
        n >= 1 && n < self.threshold
    }

    /// Whether a figure is hidden by the primary rule alone.
    pub fn primary(&self, f: &Figure) -> bool {
        f.count < self.threshold || f.guards.iter().any(|&g| self.small(g))
    }
}

/// A published cell.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    pub keys: Vec<String>,
    pub count: Option<i64>,
    pub value: Option<f64>,
    pub suppressed: bool,
}

/// The cells of `figures` (grouped by `group_by`) as they may be
/// published, in the order of `figures`.
pub fn protect(rule: &Rule, group_by: &[Dim], figures: Vec<Figure>) -> Vec<Cell> {
    let hidden = suppressed(rule, group_by, &figures);
    figures
        .into_iter()
        .zip(hidden)
        .map(|(f, suppressed)| Cell {
            keys: f.keys,
            count: (!suppressed).then_some(f.count),
            value: if suppressed { None } else { f.value },
            suppressed,
        })
        .collect()
}

/// Which of `figures` to hide, in their order.
pub fn suppressed(rule: &Rule, group_by: &[Dim], figures: &[Figure]) -> Vec<bool> {
    let initial = figures.iter().map(|f| rule.primary(f)).collect();
    complete(rule, group_by, figures, initial)
}

/// One line of a table: cells sharing every key but one dimension's.
struct Line {
    /// Its cells, alone-in-another-line last, then smallest first, then by
    /// keys: the order complements are chosen in.
    cells: Vec<usize>,
    /// Along `measure`: all or nothing, no published total.
    measure: bool,
}

/// A table being protected.
struct Table<'a> {
    rule: &'a Rule,
    figures: &'a [Figure],
    lines: Vec<Line>,
    /// The lines each cell belongs to, one per dimension.
    lines_of: Vec<Vec<usize>>,
    /// How many additive lines each cell is alone in.
    alone: Vec<usize>,
    hidden: Vec<bool>,
    /// Hidden cells per line.
    hidden_in: Vec<usize>,
}

/// Extends `hidden` (primary suppressions, or an earlier result) until
/// every line is safe. Deterministic whatever the order of `figures`: lines
/// are built and visited in key order, ties broken by keys.
pub fn complete(
    rule: &Rule,
    group_by: &[Dim],
    figures: &[Figure],
    mut hidden: Vec<bool>,
) -> Vec<bool> {
    let n = figures.len();
    hidden.resize(n, false);
    let key = |c: usize, i: usize| figures[c].keys.get(i).map_or("", String::as_str);
    let by_keys = |a: &usize, b: &usize| {
        figures[*a]
            .keys
            .cmp(&figures[*b].keys)
            .then_with(|| a.cmp(b))
    };
    let mut sorted: Vec<usize> = (0..n).collect();
    sorted.sort_by(by_keys);

    // Lines, dimension by dimension: sort by every key but the i-th.
    let mut lines: Vec<Line> = Vec::new();
    let mut lines_of: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, dim) in group_by.iter().enumerate() {
        let others = |a: &usize, b: &usize| -> Ordering {
            (0..group_by.len())
                .filter(|&j| j != i)
                .map(|j| key(*a, j).cmp(key(*b, j)))
                .find(|o| o.is_ne())
                .unwrap_or(Ordering::Equal)
        };
        let mut order = sorted.clone();
        // Stable: within a line, cells stay in key order.
        order.sort_by(others);
        for run in order.chunk_by(|a, b| others(a, b).is_eq()) {
            for &c in run {
                lines_of[c].push(lines.len());
            }
            lines.push(Line {
                cells: run.to_vec(),
                measure: *dim == Dim::Measure,
            });
        }
    }

    // A cell alone in a line is published by that line's total (unless it is
    // small, then the total is hidden too): hiding it protects nothing, so it
    // is the last choice of complement.
    let alone: Vec<usize> = (0..n)
        .map(|c| {
            lines_of[c]
                .iter()
                .filter(|&&l| !lines[l].measure && lines[l].cells.len() == 1)
                .count()
        })
        .collect();
    for line in &mut lines {
        line.cells.sort_by(|a, b| {
            (alone[*a], figures[*a].count)
                .cmp(&(alone[*b], figures[*b].count))
                .then_with(|| by_keys(a, b))
        });
    }
    let hidden_in = lines
        .iter()
        .map(|line| line.cells.iter().filter(|&&c| hidden[c]).count())
        .collect();
    let mut table = Table {
        rule,
        figures,
        lines,
        lines_of,
        alone,
        hidden,
        hidden_in,
    };

    let mut queue: VecDeque<usize> = (0..table.lines.len()).collect();
    let mut queued = vec![true; table.lines.len()];
    while let Some(l) = queue.pop_front() {
        queued[l] = false;
        let newly = if table.lines[l].measure {
            table.all_or_nothing(l)
        } else {
            table.complements(l)
        };
        // A cell hidden here may leave another line unsafe.
        for c in newly {
            for &other in &table.lines_of[c] {
                if other != l && !queued[other] {
                    queued[other] = true;
                    queue.push_back(other);
                }
            }
        }
    }
    table.hidden
}

impl Table<'_> {
    fn hide(&mut self, c: usize) {
        self.hidden[c] = true;
        for &l in &self.lines_of[c] {
            self.hidden_in[l] += 1;
        }
    }

    /// Hides every cell of a `measure` line if one is hidden.
    fn all_or_nothing(&mut self, l: usize) -> Vec<usize> {
        if self.hidden_in[l] == 0 {
            return Vec::new();
        }
        let newly: Vec<usize> = (self.lines[l].cells.iter())
            .copied()
            .filter(|&c| !self.hidden[c])
            .collect();
        for &c in &newly {
            self.hide(c);
        }
        newly
    }

    /// Hides published cells of an additive line until it is safe; returns
    /// them.
    ///
    /// When every cell of the line is hidden, their sum is the line's total,
    /// published by the query without this dimension — unless that total is
    /// itself small, in which case that query hides it by the primary rule.
    /// This is what protects a line of a single small cell (empty groups
    /// are absent, so there is no other cell to hide): its total equals it,
    /// is below the threshold, and is hidden wherever it is published.
    fn complements(&mut self, l: usize) -> Vec<usize> {
        let mut sum = Hidden::default();
        for &c in &self.lines[l].cells {
            if self.hidden[c] {
                sum.add(&self.figures[c]);
            }
        }
        let mut newly = Vec::new();
        while !sum.safe(self.rule) {
            // Still unsafe with nothing left only if the whole line is
            // hidden (see above).
            let Some(c) = self.complement(l) else { break };
            self.hide(c);
            sum.add(&self.figures[c]);
            newly.push(c);
        }
        newly
    }

    /// The next complement of line `l`: preferably one whose other lines
    /// already hide a cell (hiding it there opens no new unsafe line, so
    /// suppressions close into rectangles instead of spreading), then the
    /// smallest.
    fn complement(&self, l: usize) -> Option<usize> {
        let opens = |c: usize| {
            (self.lines_of[c].iter())
                .filter(|&&o| o != l && !self.lines[o].measure && self.hidden_in[o] == 0)
                .count()
        };
        (self.lines[l].cells.iter())
            .enumerate()
            .filter(|(_, c)| !self.hidden[**c])
            .min_by_key(|(rank, c)| (self.alone[**c], opens(**c), *rank))
            .map(|(_, c)| *c)
    }
}

/// What the hidden cells of a line add up to: the line's total minus its
/// published cells, which anyone can compute.
#[derive(Default)]
struct Hidden {
    cells: usize,
    count: i64,
    guards: Vec<i64>,
}

impl Hidden {
    fn add(&mut self, f: &Figure) {
        self.cells += 1;
        self.count += f.count;
        if self.guards.len() < f.guards.len() {
            self.guards.resize(f.guards.len(), 0);
        }
        for (s, g) in self.guards.iter_mut().zip(&f.guards) {
            *s += g;
        }
    }

    /// Whether the sum gives no hidden cell away: nothing hidden, or at
    /// least two cells whose sums are not small.
    fn safe(&self, rule: &Rule) -> bool {
        self.cells == 0
            || (self.cells >= 2
                && self.count >= rule.threshold
                && !self.guards.iter().any(|&g| rule.small(g)))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    const RULE: Rule = Rule { threshold: 11 };

    fn fig(keys: &[&str], count: i64) -> Figure {
        Figure::count(keys.iter().map(|k| k.to_string()).collect(), count)
    }

    /// Every additive line that holds a hidden cell either hides at least
    /// two cells whose sums (count and guards) are not small, or hides all
    /// its cells and its total is small (the query without that dimension
    /// hides it). Returns the unsafe lines.
    fn leaks(rule: &Rule, group_by: &[Dim], figures: &[Figure], hidden: &[bool]) -> Vec<String> {
        let mut out = Vec::new();
        for (i, dim) in group_by.iter().enumerate() {
            let mut lines: BTreeMap<Vec<String>, Vec<usize>> = BTreeMap::new();
            for (c, f) in figures.iter().enumerate() {
                let mut k = f.keys.clone();
                k.remove(i);
                lines.entry(k).or_default().push(c);
            }
            for (k, cells) in lines {
                let any = cells.iter().any(|&c| hidden[c]);
                if *dim == Dim::Measure {
                    if any && !cells.iter().all(|&c| hidden[c]) {
                        out.push(format!("{dim} {k:?}: measures partly hidden"));
                    }
                    continue;
                }
                let mut sum = Hidden::default();
                let mut total = Hidden::default();
                for &c in &cells {
                    total.add(&figures[c]);
                    if hidden[c] {
                        sum.add(&figures[c]);
                    }
                }
                let total_hidden =
                    total.count < rule.threshold || total.guards.iter().any(|&g| rule.small(g));
                let whole = sum.cells == cells.len();
                if !(sum.safe(rule) || whole && total_hidden) {
                    out.push(format!(
                        "{dim} {k:?}: {} hidden of {}, summing {}",
                        sum.cells,
                        cells.len(),
                        sum.count
                    ));
                }
            }
        }
        out
    }

    fn check(group_by: &[Dim], figures: &[Figure]) -> Vec<bool> {
        let hidden = suppressed(&RULE, group_by, figures);
        for (f, &h) in figures.iter().zip(&hidden) {
            if RULE.primary(f) {
                assert!(h, "{:?} below the threshold and published", f.keys);
            }
        }
        let leaks = leaks(&RULE, group_by, figures, &hidden);
        assert!(leaks.is_empty(), "{leaks:#?}");
        // A fixed point: protecting again hides nothing more.
        assert_eq!(
            complete(&RULE, group_by, figures, hidden.clone()),
            hidden,
            "not idempotent"
        );
        hidden
    }

    fn hidden_keys(figures: &[Figure], hidden: &[bool]) -> Vec<String> {
        figures
            .iter()
            .zip(hidden)
            .filter(|(_, h)| **h)
            .map(|(f, _)| f.keys.join("/"))
            .collect()
    }

    /// The suppression test: département × structure kind, one
    /// small cell.
    #[test]
    fn a_small_cell_hides_a_complement_in_its_row_and_its_column() {
        let group_by = [Dim::Departement, Dim::StructureKind];
        let figures = vec![
            fig(&["27", "aci"], 40),
            fig(&["27", "ai"], 25),
            fig(&["27", "ei"], 4),
            fig(&["76", "aci"], 30),
            fig(&["76", "ai"], 12),
            fig(&["76", "ei"], 18),
            fig(&["14", "aci"], 22),
            fig(&["14", "ai"], 50),
            fig(&["14", "ei"], 15),
        ];
        let hidden = check(&group_by, &figures);
        // Column ei: 14 (15) is the smallest; row 14 then needs aci (22),
        // whose column then already hides a cell: row 27 takes aci (40)
        // rather than ai (25), which would open column ai. A rectangle.
        assert_eq!(
            hidden_keys(&figures, &hidden),
            ["27/aci", "27/ei", "14/aci", "14/ei"]
        );

        // What the queries without a dimension publish: no hidden value can
        // be recomputed from them and the published cells.
        let cells = protect(&RULE, &group_by, figures.clone());
        for (i, _) in group_by.iter().enumerate() {
            let mut totals: BTreeMap<&str, (i64, i64, usize)> = BTreeMap::new();
            for (f, c) in figures.iter().zip(&cells) {
                let line = f.keys[1 - i].as_str();
                let t = totals.entry(line).or_default();
                t.0 += f.count;
                t.1 += c.count.unwrap_or(0);
                t.2 += usize::from(c.suppressed);
            }
            for (line, (total, published, n_hidden)) in totals {
                let rest = total - published;
                assert!(
                    n_hidden == 0 || (n_hidden >= 2 && rest >= RULE.threshold),
                    "line {line}: {n_hidden} hidden, {rest} recomputable"
                );
            }
        }
        for c in &cells {
            assert_eq!(c.suppressed, c.count.is_none());
            if c.suppressed {
                assert_eq!(c.value, None);
            }
        }
    }

    #[test]
    fn a_line_of_one_small_cell_needs_no_complement() {
        // Column ei has one cell: its total (3) is small and hidden by the
        // query by kind; row 27 still needs a complement.
        let group_by = [Dim::Departement, Dim::StructureKind];
        let figures = vec![
            fig(&["27", "aci"], 40),
            fig(&["27", "ei"], 3),
            fig(&["76", "aci"], 30),
            fig(&["76", "ai"], 20),
            fig(&["27", "ai"], 20),
        ];
        let hidden = check(&group_by, &figures);
        let keys = hidden_keys(&figures, &hidden);
        assert!(keys.contains(&"27/ei".to_owned()));
        assert!(keys.iter().filter(|k| k.starts_with("27/")).count() >= 2);
    }

    #[test]
    fn a_cell_alone_in_a_line_is_the_last_choice() {
        // Row 27: ai (12) is the smallest, but it is alone in column ai, whose
        // total publishes it: aci is chosen instead.
        let group_by = [Dim::Departement, Dim::StructureKind];
        let figures = vec![
            fig(&["27", "ei"], 5),
            fig(&["27", "ai"], 12),
            fig(&["27", "aci"], 30),
            fig(&["76", "aci"], 30),
            fig(&["76", "ei"], 30),
        ];
        let hidden = check(&group_by, &figures);
        assert!(!hidden[1]);
        assert!(hidden[2]);
    }

    #[test]
    fn three_dimensions() {
        let group_by = [Dim::Year, Dim::Departement, Dim::StructureKind];
        let mut figures = Vec::new();
        let mut n = 7;
        for y in ["2024", "2025"] {
            for d in ["14", "27", "76"] {
                for k in ["aci", "ai", "ei"] {
                    n = (n * 17 + 5) % 60 + 11;
                    figures.push(fig(&[y, d, k], n));
                }
            }
        }
        figures[4].count = 2; // 2024/27/ai
        figures[17].count = 9; // 2025/76/ei
        let hidden = check(&group_by, &figures);
        // Each small cell has a complement in each of its three lines.
        for small in [4, 17] {
            for i in 0..3 {
                let mates = figures
                    .iter()
                    .zip(&hidden)
                    .filter(|(f, h)| {
                        **h && f.keys != figures[small].keys
                            && (0..3).all(|j| j == i || f.keys[j] == figures[small].keys[j])
                    })
                    .count();
                assert!(mates >= 1, "cell {small}, dim {i}");
            }
        }
    }

    #[test]
    fn measures_of_one_population_go_together() {
        let group_by = [Dim::Departement, Dim::Measure];
        let mut figures = Vec::new();
        for (d, n) in [("14", 30), ("27", 8), ("76", 25), ("61", 40)] {
            for m in ["index", "isolation", "support", "workload"] {
                let mut f = fig(&[d, m], n);
                f.value = Some(3.5);
                figures.push(f);
            }
        }
        // One measure counted on fewer people.
        figures[8].count = 5; // 76/index
        let hidden = check(&group_by, &figures);
        let keys = hidden_keys(&figures, &hidden);
        for m in ["index", "isolation", "support", "workload"] {
            assert!(keys.contains(&format!("27/{m}")));
            assert!(keys.contains(&format!("76/{m}")));
        }
        // 27 and 76 hide each other in every measure's column.
        assert_eq!(keys.len(), 8);
        let cells = protect(&RULE, &group_by, figures);
        assert!(cells.iter().all(|c| c.suppressed == c.value.is_none()));
    }

    #[test]
    fn guards_are_protected_like_counts() {
        // Shares: the numerator of 27 (3) is small; its complement must not
        // leave the hidden numerators summing to a small number.
        let group_by = [Dim::Departement];
        let share = |d: &str, count: i64, part: i64| Figure {
            keys: vec![d.to_owned()],
            count,
            value: None,
            guards: vec![part],
        };
        let figures = vec![
            share("27", 50, 3),
            share("76", 20, 0),
            share("14", 60, 30),
            share("61", 80, 40),
        ];
        let hidden = check(&group_by, &figures);
        // 76 alone would leave 3 answered among the hidden: 14 is added.
        assert_eq!(hidden, [true, true, true, false]);
    }

    #[test]
    fn same_answer_whatever_the_order() {
        let group_by = [Dim::Departement, Dim::StructureKind];
        let mut figures = Vec::new();
        for (i, d) in ["14", "27", "50", "61", "76"].iter().enumerate() {
            for (j, k) in ["aci", "ai", "ei", "etti"].iter().enumerate() {
                figures.push(fig(&[d, k], ((i * 7 + j * 13) % 25) as i64 + 1));
            }
        }
        let once = protect(&RULE, &group_by, figures.clone());
        let mut reversed = figures.clone();
        reversed.reverse();
        let mut again = protect(&RULE, &group_by, reversed);
        again.reverse();
        assert_eq!(once, again);
        check(&group_by, &figures);
    }

    /// A small linear congruential generator: tests need no new crate.
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            self.0 >> 33
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// Removes cells alone in a line until none is: such a cell is published
    /// by that line's total whatever this table does (see
    /// `a_cell_alone_in_a_line_is_the_last_choice`), so the checker's rule
    /// cannot hold for its other lines.
    fn without_lonely_cells(dims: usize, mut figures: Vec<Figure>) -> Vec<Figure> {
        loop {
            let mut sizes: BTreeMap<(usize, Vec<String>), usize> = BTreeMap::new();
            for f in &figures {
                for i in 0..dims {
                    let mut k = f.keys.clone();
                    k.remove(i);
                    *sizes.entry((i, k)).or_default() += 1;
                }
            }
            let before = figures.len();
            figures.retain(|f| {
                (0..dims).all(|i| {
                    let mut k = f.keys.clone();
                    k.remove(i);
                    sizes[&(i, k)] > 1 || RULE.primary(f)
                })
            });
            if figures.len() == before {
                return figures;
            }
        }
    }

    #[test]
    fn random_tables_never_leak() {
        let all = [
            Dim::Departement,
            Dim::StructureKind,
            Dim::Domain,
            Dim::Measure,
        ];
        let mut rng = Lcg(42);
        let (mut tables, mut secondary) = (0, 0);
        for round in 0..400 {
            let n_dims = 1 + rng.below(3) as usize;
            let mut group_by: Vec<Dim> = all[..n_dims].to_vec();
            if round % 4 == 3 {
                group_by.push(Dim::Measure);
            }
            let sizes: Vec<u64> = group_by.iter().map(|_| 2 + rng.below(6)).collect();
            let density = 50 + rng.below(51);
            // Guards differ between the measures of one population, which
            // the lonely-cell filter above does not follow.
            let with_guards = round % 3 == 0 && !group_by.contains(&Dim::Measure);
            let mut figures = Vec::new();
            let total: u64 = sizes.iter().product();
            let mut by_population: BTreeMap<Vec<String>, i64> = BTreeMap::new();
            for cell in 0..total {
                let mut rest = cell;
                let keys: Vec<String> = sizes
                    .iter()
                    .map(|s| {
                        let k = rest % s;
                        rest /= s;
                        format!("k{k}")
                    })
                    .collect();
                // Cells of one population share their presence and count.
                let mut population = keys.clone();
                if group_by.last() == Some(&Dim::Measure) {
                    population.pop();
                }
                let count = *by_population.entry(population).or_insert_with(|| {
                    if rng.below(100) >= density {
                        0
                    } else if rng.below(4) == 0 {
                        1 + rng.below(10) as i64
                    } else {
                        1 + rng.below(80) as i64
                    }
                });
                if count == 0 {
                    continue;
                }
                let mut f = Figure::count(keys, count);
                if with_guards {
                    f.guards = vec![rng.below(count as u64 + 1) as i64];
                }
                figures.push(f);
            }
            let additive = group_by.iter().filter(|d| **d != Dim::Measure).count();
            let figures = if round % 2 == 0 {
                without_lonely_cells(additive, figures)
            } else {
                figures
            };
            if figures.is_empty() {
                continue;
            }
            tables += 1;
            let hidden = suppressed(&RULE, &group_by, &figures);
            let lonely_free = round % 2 == 0;
            let leaks = leaks(&RULE, &group_by, &figures, &hidden);
            if lonely_free {
                assert!(leaks.is_empty(), "round {round}: {leaks:#?}");
            }
            assert_eq!(
                complete(&RULE, &group_by, &figures, hidden.clone()),
                hidden,
                "round {round}: not idempotent"
            );
            for (f, &h) in figures.iter().zip(&hidden) {
                assert!(!RULE.primary(f) || h, "round {round}");
                secondary += usize::from(h && !RULE.primary(f));
            }
        }
        assert!(tables > 300, "{tables} tables");
        assert!(secondary > 1000, "{secondary} complements");
    }

    #[test]
    fn large_tables_are_fast_enough() {
        let group_by = [Dim::Commune, Dim::StructureKind, Dim::Month];
        let mut rng = Lcg(7);
        let mut figures = Vec::new();
        for c in 0..100 {
            for k in 0..10 {
                for m in 1..=12 {
                    figures.push(fig(
                        &[
                            &format!("27{c:03}"),
                            &format!("k{k}"),
                            &format!("2025-{m:02}"),
                        ],
                        1 + rng.below(30) as i64,
                    ));
                }
            }
        }
        // And long lines: two départements × 5,000 communes.
        let long = [Dim::Departement, Dim::Commune];
        let mut wide = Vec::new();
        for d in ["27", "76"] {
            for c in 0..5_000 {
                wide.push(fig(&[d, &format!("c{c:04}")], 1 + rng.below(40) as i64));
            }
        }
        let start = std::time::Instant::now();
        let hidden = suppressed(&RULE, &group_by, &figures);
        let hidden_wide = suppressed(&RULE, &long, &wide);
        let spent = start.elapsed();
        assert!(leaks(&RULE, &group_by, &figures, &hidden).is_empty());
        assert!(leaks(&RULE, &long, &wide, &hidden_wide).is_empty());
        assert!(spent.as_secs_f64() < 2.0, "{spent:?}");
    }
}
