//! Section `statistics`: the statistics service's diagnostics source under
//! load, on a fresh nats-server and a fresh database of the chosen backend.
//!
//! 1. Publishes `--statistics-events` (1,000,000 by default) diagnostic
//!    events to `EVA_DIAGNOSTICS` as the diagnostics service's outbox relay
//!    does (CloudEvents headers, `Nats-Msg-Id` = `ce-id`, a window of
//!    in-flight acks): 80 % `DiagnosticShared`, 20 % `DiagnosticSuperseded`,
//!    every item of the référentiel rated, from a fixed seed.
//! 2. Baseline: a durable pull consumer with explicit acks on the same
//!    subjects, with the platform consumer's settings, that reads and acks
//!    every message (no decode, no database). Then, to tell the platform's
//!    share from the feed's, `consumer::run` with a projection that does
//!    nothing (inbox rows, transactions, acks), into a fresh database.
//! 3. Ingestion: `DiagnosticsFeed` through `consumer::run`, as the service
//!    runs it, into a fresh statistics database; both 2 and 3 are timed from
//!    the consumer's creation until it has nothing pending and nothing
//!    unacked. Every event is checked to have arrived exactly once.
//! 4. Dashboard queries, one at a time, with the data loaded: what
//!    `GetIndicator` runs after parsing its request (current generation,
//!    territory lookup, the source's figures, disclosure control), against a
//!    `SELECT 1` through the same pool.
//! 5. A full rebuild (`Rebuilds::start`, polled with `get`) while a light
//!    dashboard load runs; the figures must be identical before, during and
//!    after.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::Stream as JsStream;
use eva_platform::Shutdown;
use eva_platform::bus::{Bus, CloudEvent, streams};
use eva_platform::config::{BusConfig, FederationRole};
use eva_platform::consumer::{self, ApplyError, BATCH, Envelope, Projection};
use eva_platform::db::{Db, Tx};
use eva_platform::on_backend;
use eva_proto::diagnostics::v1::{
    DiagnosticShared, DiagnosticSuperseded, ItemEvolution, ItemLevel, ItemLevelChange,
    RecordingContext,
};
use eva_proto::identity::v1::StructureKind;
use eva_statistics::catalogue;
use eva_statistics::diagnostics::DiagnosticsFeed;
use eva_statistics::disclosure::{self, Rule};
use eva_statistics::feed::{Feed, Live};
use eva_statistics::model::{Dim, Figure, Query, Territory};
use eva_statistics::rebuild::Rebuilds;
use eva_statistics::store::{MIGRATIONS, Store};
use eva_tests::nats::NatsServer;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{
    Args, Backend, Databases, Lookups, POOL, Spread, Timed, ms, row, select_one, spread, verdict,
};

/// The référentiel the diagnostics service ships, read for its item ids.
const REFERENTIEL: &str = include_str!("../../../../services/diagnostics/referentiel/2026.1.toml");
/// Months of diagnostics: 2024-01 to 2025-12.
const MONTHS: usize = 24;
/// A person's next diagnostic comes at least this many months after the first.
const FOLLOW_UP_MONTHS: usize = 3;
/// Seed of every draw: the same events at each run, on both backends.
const SEED: u64 = 0x5eed_d1a6_2026_0001;
/// Rounds of the query mix run before the timed ones.
const WARMUP_ROUNDS: usize = 10;
/// Pause between two dashboard queries while the rebuild runs.
const DURING_REBUILD_EVERY: Duration = Duration::from_millis(50);
/// Consumer of the baseline.
const RAW_DURABLE: &str = "bench-raw-diagnostics";

/// A commune of the recording structures: INSEE code, name, EPCI
/// (9-digit SIREN-shaped code), weight in the activity.
struct Commune {
    insee: &'static str,
    name: &'static str,
    epci: &'static str,
    weight: u32,
}

const fn commune(
    insee: &'static str,
    name: &'static str,
    epci: &'static str,
    weight: u32,
) -> Commune {
    Commune {
        insee,
        name,
        epci,
        weight,
    }
}

const COMMUNES: [Commune; 15] = [
    commune("27229", "Évreux", "200089779", 6),
    commune("27681", "Vernon", "200072312", 3),
    commune("27016", "Les Andelys", "200072312", 1),
    commune("27375", "Louviers", "200089680", 2),
    commune("27701", "Val-de-Reuil", "200089680", 2),
    commune("27056", "Bernay", "200034338", 1),
    commune("27467", "Pont-Audemer", "200066769", 1),
    commune("76540", "Rouen", "200023414", 12),
    commune("76575", "Saint-Étienne-du-Rouvray", "200023414", 3),
    commune("76681", "Sotteville-lès-Rouen", "200023414", 3),
    commune("76231", "Elbeuf", "200023414", 2),
    commune("76351", "Le Havre", "200084952", 12),
    commune("76217", "Dieppe", "200011773", 3),
    commune("76259", "Fécamp", "200069367", 2),
    commune("76758", "Yvetot", "247600588", 1),
];
/// Structure kinds of the recording structures.
const KINDS: [StructureKind; 3] = [
    StructureKind::Aci,
    StructureKind::Ei,
    StructureKind::Association,
];
/// Structures per commune (one of two kinds each).
const STRUCTURES_PER_COMMUNE: usize = 2;

/// Proto values of `eva.diagnostics.v1.Level`.
const UNRATED: u8 = 0;
const NON_ABORDE: u8 = 1;
const FREIN_MAJEUR: u8 = 2;
const POINT_D_APPUI: u8 = 5;

/// A dashboard query of the mix.
struct Dashboard {
    label: &'static str,
    indicator: &'static str,
    from: &'static str,
    to: &'static str,
    territory: Option<&'static str>,
    group_by: &'static [Dim],
}

const MIX: &[Dashboard] = &[
    Dashboard {
        label: "diagnostics_shared by month, 24 months",
        indicator: "diagnostics_shared",
        from: "2024-01",
        to: "2025-12",
        territory: None,
        group_by: &[Dim::Month],
    },
    Dashboard {
        label: "barrier_prevalence by domain, dépt 27, 2025",
        indicator: "barrier_prevalence",
        from: "2025-01",
        to: "2025-12",
        territory: Some("27"),
        group_by: &[Dim::Domain],
    },
    Dashboard {
        label: "barrier_prevalence by item, 2025-T2",
        indicator: "barrier_prevalence",
        from: "2025-04",
        to: "2025-06",
        territory: None,
        group_by: &[Dim::Item],
    },
    Dashboard {
        label: "barrier_prevalence by quarter x kind",
        indicator: "barrier_prevalence",
        from: "2024-01",
        to: "2025-12",
        territory: None,
        group_by: &[Dim::Quarter, Dim::StructureKind],
    },
    Dashboard {
        label: "rating_gap by domain x gap, 2025",
        indicator: "rating_gap",
        from: "2025-01",
        to: "2025-12",
        territory: None,
        group_by: &[Dim::Domain],
    },
    Dashboard {
        label: "barrier_resolution by domain x evolution",
        indicator: "barrier_resolution",
        from: "2025-01",
        to: "2025-12",
        territory: None,
        group_by: &[Dim::Domain],
    },
    Dashboard {
        label: "barrier_prevalence by domain, commune 27016",
        indicator: "barrier_prevalence",
        from: "2025-01",
        to: "2025-12",
        territory: Some("27016"),
        group_by: &[Dim::Domain],
    },
];

// ---------------------------------------------------------------------------
// The events
// ---------------------------------------------------------------------------

/// The référentiel's version and its items, `(domain, item)`, in file order.
struct Referentiel {
    version: String,
    items: Vec<(String, String)>,
    domains: usize,
}

/// `key = "value"` → `value`.
fn toml_string(line: &str, key: &str) -> Option<String> {
    let rest = line
        .strip_prefix(key)?
        .trim_start()
        .strip_prefix('=')?
        .trim();
    Some(rest.strip_prefix('"')?.strip_suffix('"')?.to_owned())
}

/// Reads the ids out of the référentiel file: enough of TOML for its shape
/// (`version`, `[[domains]]` with `id`, `[[domains.items]]` with `id`).
fn referentiel() -> Result<Referentiel> {
    #[derive(PartialEq)]
    enum In {
        Top,
        Domain,
        Item,
        Other,
    }
    let mut at = In::Top;
    let mut version = None;
    let mut domain: Option<String> = None;
    let mut domains = 0;
    let mut items = Vec::new();
    for line in REFERENTIEL.lines().map(str::trim) {
        match line {
            "[[domains]]" => at = In::Domain,
            "[[domains.items]]" => at = In::Item,
            l if l.starts_with('[') => at = In::Other,
            l => {
                if at == In::Top
                    && let Some(v) = toml_string(l, "version")
                {
                    version = Some(v);
                } else if let Some(id) = toml_string(l, "id") {
                    match at {
                        In::Domain => {
                            domain = Some(id);
                            domains += 1;
                        }
                        In::Item => {
                            items.push((domain.clone().context("an item before any domain")?, id))
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    if items.is_empty() {
        bail!("no item found in the référentiel");
    }
    Ok(Referentiel {
        version: version.context("no version in the référentiel")?,
        items,
        domains,
    })
}

/// splitmix64: independent seeds from an index.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A generator seeded for one person's `step` (0 = first diagnostic).
fn rng_of(person: usize, step: usize, salt: u64) -> Lookups {
    Lookups(mix(SEED ^ mix((person as u64) << 12 | (step as u64) << 2 | salt)) | 1)
}

/// A person's 64-hex-digit statistics pseudonym, as diagnostics makes them.
fn pseudonym(person: usize) -> String {
    (0..4u64)
        .map(|i| format!("{:016x}", mix(SEED ^ mix(person as u64 * 4 + i))))
        .collect()
}

/// A rated level (frein_majeur … point_d_appui) for a person of `severity`.
fn rated(rng: &mut Lookups, severity: usize) -> u8 {
    let (majeur, frein) = [(5, 15), (10, 25), (20, 30)][severity];
    match rng.pick(100) {
        r if r < majeur => FREIN_MAJEUR,
        r if r < majeur + frein => FREIN_MAJEUR + 1,
        r if r < majeur + frein + (100 - majeur - frein) * 3 / 5 => FREIN_MAJEUR + 2,
        _ => POINT_D_APPUI,
    }
}

/// The counselor's levels of a person's diagnostic `k`: the first drawn
/// (10 % non_aborde), each next one drifting from the previous (items
/// discussed at last, a third improving, a sixth worsening).
fn counselor_levels(person: usize, k: usize, n: usize) -> Vec<u8> {
    let mut rng = rng_of(person, 0, 0);
    let severity = rng.pick(3);
    let mut levels: Vec<u8> = (0..n)
        .map(|_| {
            if rng.pick(100) < 10 {
                NON_ABORDE
            } else {
                rated(&mut rng, severity)
            }
        })
        .collect();
    for step in 1..=k {
        let mut rng = rng_of(person, step, 0);
        for l in &mut levels {
            *l = match *l {
                NON_ABORDE if rng.pick(100) < 70 => rated(&mut rng, severity),
                NON_ABORDE => NON_ABORDE,
                l => match rng.pick(100) {
                    0..35 => (l + 1).min(POINT_D_APPUI),
                    35..85 => l,
                    _ => (l - 1).max(FREIN_MAJEUR),
                },
            };
        }
    }
    levels
}

/// The person's self-rating of diagnostic `k`: about 60 % of the items,
/// mostly the counselor's level, sometimes one step apart.
fn person_levels(person: usize, k: usize, counselor: &[u8]) -> Vec<u8> {
    let mut rng = rng_of(person, k, 1);
    counselor
        .iter()
        .map(|&c| {
            if rng.pick(100) >= 60 {
                return UNRATED;
            }
            if c == NON_ABORDE {
                return NON_ABORDE + rng.pick(5) as u8;
            }
            match rng.pick(100) {
                0..20 => (c - 1).max(FREIN_MAJEUR),
                20..70 => c,
                _ => (c + 1).min(POINT_D_APPUI),
            }
        })
        .collect()
}

/// Position on the scale from worst to best; none for non_aborde or unrated.
fn rank(level: u8) -> Option<u8> {
    (FREIN_MAJEUR..=POINT_D_APPUI)
        .contains(&level)
        .then(|| level - FREIN_MAJEUR)
}

/// How an item moved, as the diagnostics service computes it.
fn evolution(from: u8, to: u8) -> ItemEvolution {
    match (rank(from), rank(to)) {
        (_, None) => ItemEvolution::NotComparable,
        (None, Some(_)) => ItemEvolution::NewlyAddressed,
        (Some(a), Some(b)) if b > a => ItemEvolution::Improved,
        (Some(a), Some(b)) if b < a => ItemEvolution::Worsened,
        _ => ItemEvolution::Unchanged,
    }
}

/// What the generator knows of a person: their last diagnostic.
#[derive(Clone, Copy)]
struct Person {
    month: u8,
    day: u8,
    diagnostics: u8,
    structure: u8,
}

struct Structure {
    commune: usize,
    kind: StructureKind,
}

/// One event to publish.
struct Generated {
    subject: &'static str,
    payload: Vec<u8>,
}

/// Every event of the run, in the order diagnostics would publish them:
/// month by month, a follow-up's `shared` then its `superseded`.
struct Generator {
    rng: Lookups,
    referentiel: Referentiel,
    structures: Vec<Structure>,
    /// Cumulative weights of the structures, for weighted picks.
    cumulative: Vec<u32>,
    people: Vec<Person>,
    /// People who had their first diagnostic before each month began.
    people_before: Vec<usize>,
    /// Shared events to generate, and how many done.
    shared: usize,
    shared_done: usize,
    /// Follow-ups (shared + superseded) still to place, and the slots
    /// where one may still be placed.
    follow_ups_left: usize,
    eligible_left: usize,
    queued: Option<Generated>,
}

fn month_label(m: usize) -> String {
    format!("{}-{:02}", 2024 + m / 12, m % 12 + 1)
}

fn context(s: &Structure) -> RecordingContext {
    let c = &COMMUNES[s.commune];
    RecordingContext {
        structure_kind: s.kind as i32,
        commune_insee: c.insee.to_owned(),
        epci: c.epci.to_owned(),
        departement: c.insee[..2].to_owned(),
    }
}

impl Generator {
    /// `events` in all: `superseded` of them (20 %) follow-ups, the rest shared.
    fn new(referentiel: Referentiel, events: usize) -> Self {
        let structures: Vec<Structure> = (0..COMMUNES.len() * STRUCTURES_PER_COMMUNE)
            .map(|i| Structure {
                commune: i / STRUCTURES_PER_COMMUNE,
                kind: KINDS[i % KINDS.len()],
            })
            .collect();
        let mut total = 0;
        let cumulative = structures
            .iter()
            .map(|s| {
                total += COMMUNES[s.commune].weight;
                total
            })
            .collect();
        let mut superseded = events / 5;
        let mut shared = events - superseded;
        // Follow-ups only from the 4th month on; a tiny run has fewer.
        let eligible = shared - (FOLLOW_UP_MONTHS * shared).div_ceil(MONTHS);
        if superseded > eligible {
            superseded = eligible;
            shared = events - superseded;
        }
        let eligible = shared - (FOLLOW_UP_MONTHS * shared).div_ceil(MONTHS);
        Self {
            rng: Lookups(SEED),
            referentiel,
            structures,
            cumulative,
            people: Vec::new(),
            people_before: Vec::new(),
            shared,
            shared_done: 0,
            follow_ups_left: superseded.min(eligible),
            eligible_left: eligible,
            queued: None,
        }
    }

    fn superseded(&self) -> usize {
        self.follow_ups_left
    }

    fn pick_structure(&mut self) -> usize {
        let total = *self.cumulative.last().unwrap_or(&1);
        let r = (self.rng.next() % u64::from(total)) as u32;
        self.cumulative.partition_point(|&c| c <= r)
    }

    fn items(&self, person: usize, k: usize) -> (Vec<u8>, Vec<u8>) {
        let c = counselor_levels(person, k, self.referentiel.items.len());
        let p = person_levels(person, k, &c);
        (c, p)
    }
}

impl Iterator for Generator {
    type Item = Generated;

    fn next(&mut self) -> Option<Generated> {
        if let Some(q) = self.queued.take() {
            return Some(q);
        }
        if self.shared_done >= self.shared {
            return None;
        }
        let i = self.shared_done;
        self.shared_done += 1;
        let month = i * MONTHS / self.shared;
        while self.people_before.len() <= month {
            self.people_before.push(self.people.len());
        }
        let day = 1 + self.rng.pick(28) as u8;

        // A follow-up of someone first seen at least 3 months before, with
        // probability follow-ups left / slots left: exactly as many as asked.
        let mut follow_up = None;
        if month >= FOLLOW_UP_MONTHS {
            let slot = self.rng.pick(self.eligible_left.max(1));
            self.eligible_left = self.eligible_left.saturating_sub(1);
            let known = self.people_before[month - FOLLOW_UP_MONTHS];
            if slot < self.follow_ups_left && known > 0 {
                self.follow_ups_left -= 1;
                // Prefer someone not seen in the last 3 months.
                let mut who = self.rng.pick(known);
                for _ in 0..4 {
                    if usize::from(self.people[who].month) + FOLLOW_UP_MONTHS <= month {
                        break;
                    }
                    who = self.rng.pick(known);
                }
                follow_up = Some(who);
            }
        }

        let (person, k, previous) = match follow_up {
            Some(who) => {
                let before = self.people[who];
                (who, usize::from(before.diagnostics), Some(before))
            }
            None => {
                let structure = self.pick_structure() as u8;
                self.people.push(Person {
                    month: month as u8,
                    day,
                    diagnostics: 0,
                    structure,
                });
                (self.people.len() - 1, 0, None)
            }
        };
        // One person in ten moves to another structure between diagnostics.
        let structure = match previous {
            Some(_) if self.rng.pick(10) == 0 => self.pick_structure() as u8,
            Some(p) => p.structure,
            None => self.people[person].structure,
        };
        let day = match previous {
            Some(p) if usize::from(p.month) == month => day.max(p.day + 1).min(28),
            _ => day,
        };
        let shared_on = format!("{}-{day:02}", month_label(month));
        let ctx = context(&self.structures[usize::from(structure)]);
        let pseudonym = pseudonym(person);
        let (counselor, own) = self.items(person, k);
        let items = &self.referentiel.items;
        let shared = DiagnosticShared {
            statistics_pseudonym: pseudonym.clone(),
            referentiel_version: self.referentiel.version.clone(),
            context: Some(ctx.clone()),
            shared_on: shared_on.clone(),
            items: items
                .iter()
                .zip(counselor.iter().zip(&own))
                .map(|((domain, item), (&c, &p))| ItemLevel {
                    domain_id: domain.clone(),
                    item_id: item.clone(),
                    counselor_level: i32::from(c),
                    person_level: i32::from(p),
                })
                .collect(),
        };
        if let Some(before) = previous {
            let (was, was_own) = self.items(person, k - 1);
            let superseded = DiagnosticSuperseded {
                statistics_pseudonym: pseudonym,
                previous_referentiel_version: self.referentiel.version.clone(),
                referentiel_version: self.referentiel.version.clone(),
                previous_context: Some(context(&self.structures[usize::from(before.structure)])),
                context: Some(ctx),
                previous_shared_on: format!(
                    "{}-{:02}",
                    month_label(usize::from(before.month)),
                    before.day
                ),
                shared_on,
                changes: (0..items.len())
                    .map(|j| ItemLevelChange {
                        domain_id: items[j].0.clone(),
                        item_id: items[j].1.clone(),
                        previous_counselor_level: i32::from(was[j]),
                        counselor_level: i32::from(counselor[j]),
                        counselor_evolution: evolution(was[j], counselor[j]) as i32,
                        previous_person_level: i32::from(was_own[j]),
                        person_level: i32::from(own[j]),
                        person_evolution: evolution(was_own[j], own[j]) as i32,
                    })
                    .collect(),
            };
            self.queued = Some(Generated {
                subject: "eva.diagnostics.diagnostic.superseded",
                payload: prost::Message::encode_to_vec(&superseded),
            });
        }
        let p = &mut self.people[person];
        p.month = month as u8;
        p.day = day;
        p.diagnostics = p.diagnostics.saturating_add(1);
        p.structure = structure;
        Some(Generated {
            subject: "eva.diagnostics.diagnostic.shared",
            payload: prost::Message::encode_to_vec(&shared),
        })
    }
}

// ---------------------------------------------------------------------------
// The bench
// ---------------------------------------------------------------------------

/// One dashboard query's latencies.
pub(crate) struct QueryFigures {
    label: &'static str,
    latency: Spread,
    cells: usize,
    suppressed: usize,
}

pub(crate) struct StatisticsFigures {
    backend: Backend,
    events: usize,
    shared: usize,
    superseded: usize,
    people: usize,
    items: usize,
    payload_mean: f64,
    publish: Timed,
    stream_bytes: u64,
    raw: Timed,
    floor: Timed,
    ingest: Timed,
    db_bytes: Option<u64>,
    rounds: usize,
    queries: Vec<QueryFigures>,
    all_queries: Spread,
    queries_rate: f64,
    select: Spread,
    select_rate: f64,
    rebuild: Timed,
    rebuild_applied: i64,
    during_rebuild: Spread,
    during_rebuild_n: usize,
    identical: usize,
}

async fn open(dbs: &Databases, name: &str) -> Result<Db> {
    let url = match &dbs.pg {
        Some(pg) => pg.create_database(name).await?,
        None => format!("sqlite://{}/{name}.db?mode=rwc", dbs.dir.path().display()),
    };
    let db = Db::connect(&url, POOL).await?;
    db.migrate(&MIGRATIONS).await?;
    Ok(db)
}

/// `feed::Live`, timed: how many batches the consumer handed it, and how
/// long it spent in them (the rest of the ingestion time is the platform
/// consumer's: pulls, inbox rows, commits, acks).
struct Timing {
    live: Live,
    batches: AtomicUsize,
    events: AtomicUsize,
    micros: AtomicU64,
}

impl Projection for Timing {
    async fn apply(&self, tx: &mut Tx, event: &Envelope) -> Result<(), ApplyError> {
        let t = Instant::now();
        let r = self.live.apply(tx, event).await;
        self.note(1, t);
        r
    }

    async fn apply_batch(&self, tx: &mut Tx, events: &[Envelope]) -> Result<(), ApplyError> {
        let t = Instant::now();
        let r = self.live.apply_batch(tx, events).await;
        self.note(events.len(), t);
        r
    }
}

impl Timing {
    fn note(&self, events: usize, since: Instant) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.events.fetch_add(events, Ordering::Relaxed);
        self.micros
            .fetch_add(since.elapsed().as_micros() as u64, Ordering::Relaxed);
    }
}

/// A projection that does nothing: what `consumer::run` costs by itself
/// (pull, one inbox row per event, one transaction per batch, acks).
struct Noop;

impl Projection for Noop {
    async fn apply(&self, _: &mut Tx, _: &Envelope) -> Result<(), ApplyError> {
        Ok(())
    }
}

/// `consumer::run` with [`Noop`] under durable `durable` into a fresh
/// database, timed like the ingestion.
async fn platform_floor(
    dbs: &Databases,
    bus: &Bus,
    stream: &JsStream,
    subjects: &[&str],
    last: u64,
    within: Duration,
) -> Result<Timed> {
    const DURABLE: &str = "bench-platform-floor";
    let db = open(dbs, "floor").await?;
    let shutdown = Shutdown::new();
    let sub = consumer::Subscription::new(streams::DIAGNOSTICS, DURABLE, subjects);
    let started = Instant::now();
    let task = tokio::spawn(consumer::run(
        bus.clone(),
        db.clone(),
        sub,
        Noop,
        shutdown.clone(),
    ));
    let done = drained(stream, DURABLE, last, started, within).await;
    shutdown.trigger();
    let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
    let inbox = count(
        &db,
        "SELECT COUNT(*) FROM eva_inbox WHERE consumer = $1",
        DURABLE,
    )
    .await?;
    db.close().await;
    let _ = stream.delete_consumer(DURABLE).await;
    let done = done?;
    Ok(Timed {
        count: usize::try_from(inbox).unwrap_or(0),
        elapsed: done - started,
    })
}

/// [`Timing`] shared with the bench, which reads its counts.
struct SharedTiming(Arc<Timing>);

impl Projection for SharedTiming {
    async fn apply(&self, tx: &mut Tx, event: &Envelope) -> Result<(), ApplyError> {
        self.0.apply(tx, event).await
    }

    async fn apply_batch(&self, tx: &mut Tx, events: &[Envelope]) -> Result<(), ApplyError> {
        self.0.apply_batch(tx, events).await
    }
}

/// The message diagnostics' relay would send for `event`.
fn message(event: Generated) -> (String, PublishMessage) {
    let ce = CloudEvent {
        id: uuid::Uuid::now_v7().to_string(),
        source: "/eva/diagnostics".into(),
        event_type: event.subject.to_owned(),
        time: OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .unwrap_or_default(),
        // Diagnostics' statistics events name no aggregate.
        subject: None,
    };
    (
        event.subject.to_owned(),
        PublishMessage::build()
            .payload(event.payload.into())
            .headers(ce.to_headers(None)),
    )
}

/// Counts of what was published.
struct Published {
    timed: Timed,
    shared: usize,
    superseded: usize,
    people: usize,
    payload_bytes: usize,
}

/// Publishes every generated event with `window` acks in flight; the
/// events are built on a blocking thread meanwhile.
async fn publish(bus: &Bus, generator: Generator, window: usize) -> Result<Published> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Generated>(4 * window.max(64));
    let building = tokio::task::spawn_blocking(move || {
        let mut generator = generator;
        let (mut shared, mut superseded, mut bytes) = (0usize, 0usize, 0usize);
        for event in generator.by_ref() {
            if event.subject.ends_with("shared") {
                shared += 1;
            } else {
                superseded += 1;
            }
            bytes += event.payload.len();
            if tx.blocking_send(event).is_err() {
                break;
            }
        }
        (shared, superseded, bytes, generator.people.len())
    });
    let js = bus.jetstream();
    let mut in_flight = FuturesUnordered::new();
    let mut failed = 0usize;
    let mut sent = 0usize;
    let started = Instant::now();
    let mut report = started + Duration::from_secs(30);
    while let Some(event) = rx.recv().await {
        let (subject, msg) = message(event);
        let ack = js
            .send_publish(subject, msg)
            .await
            .context("publishing a diagnostic event")?;
        in_flight.push(async move { ack.await });
        sent += 1;
        if in_flight.len() >= window
            && let Some(Err(_)) = in_flight.next().await
        {
            failed += 1;
        }
        if Instant::now() > report {
            report += Duration::from_secs(30);
            println!(
                "    … {sent} published ({:.0}/s so far)",
                sent as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    while let Some(ack) = in_flight.next().await {
        if ack.is_err() {
            failed += 1;
        }
    }
    let elapsed = started.elapsed();
    let (shared, superseded, payload_bytes, people) = building.await?;
    if failed > 0 {
        bail!("{failed} publish acks failed");
    }
    Ok(Published {
        timed: Timed {
            count: sent,
            elapsed,
        },
        shared,
        superseded,
        people,
        payload_bytes,
    })
}

/// Waits until consumer `durable` has acked everything up to `last` (the
/// stream's last sequence) and has nothing pending; returns when it did.
async fn drained(
    stream: &JsStream,
    durable: &str,
    last: u64,
    started: Instant,
    within: Duration,
) -> Result<Instant> {
    let deadline = Instant::now() + within;
    let mut report = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(info) = stream.consumer_info(durable).await {
            if info.ack_floor.stream_sequence >= last
                && info.num_ack_pending == 0
                && info.num_pending == 0
            {
                return Ok(Instant::now());
            }
            if Instant::now() > report {
                report += Duration::from_secs(30);
                let done = info.ack_floor.stream_sequence;
                println!(
                    "    … {done} / {last} acked ({:.0}/s so far)",
                    done as f64 / started.elapsed().as_secs_f64()
                );
            }
        }
        if Instant::now() > deadline {
            bail!("{durable}: not drained within {} s", within.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The baseline: a durable pull consumer with the platform consumer's
/// settings that reads every message and acks it, nothing else.
async fn raw_consume(
    stream: &JsStream,
    subjects: &[&str],
    last: u64,
    within: Duration,
) -> Result<Timed> {
    let started = Instant::now();
    let consumer = stream
        .create_consumer(pull::Config {
            durable_name: Some(RAW_DURABLE.into()),
            filter_subjects: subjects.iter().map(|s| s.to_string()).collect(),
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::Explicit,
            ack_wait: Duration::from_secs(30),
            max_deliver: 20,
            max_ack_pending: 1_000,
            ..Default::default()
        })
        .await
        .map_err(|e| anyhow!("creating the baseline consumer: {e}"))?;
    let reader = tokio::spawn(async move {
        let messages = consumer.messages().await?;
        let mut chunks = messages.ready_chunks(BATCH);
        let mut read = 0u64;
        while let Some(chunk) = chunks.next().await {
            for m in chunk {
                let m = m.map_err(|e| anyhow!("baseline read: {e}"))?;
                m.ack().await.map_err(|e| anyhow!("baseline ack: {e}"))?;
                read += 1;
            }
        }
        anyhow::Ok(read)
    });
    let done = drained(stream, RAW_DURABLE, last, started, within).await;
    reader.abort();
    let done = done?;
    let info = stream
        .consumer_info(RAW_DURABLE)
        .await
        .map_err(|e| anyhow!("{e}"))?;
    Ok(Timed {
        count: usize::try_from(info.delivered.consumer_sequence).unwrap_or(0),
        elapsed: done - started,
    })
}

/// A dashboard query as `GetIndicator` builds it from a parsed request.
async fn query_of(store: &Store, d: &Dashboard) -> Result<(&'static catalogue::Indicator, Query)> {
    let indicator =
        catalogue::find(d.indicator).with_context(|| format!("no indicator {}", d.indicator))?;
    let generation = store.current_gen().await?;
    let territory = match d.territory {
        Some(code) => Some(Territory {
            level: store
                .territory_level(code)
                .await?
                .with_context(|| format!("territory {code} unknown to statistics"))?,
            code: code.to_owned(),
        }),
        None => None,
    };
    let mut group_by = d.group_by.to_vec();
    for dim in indicator.implicit {
        if !group_by.contains(dim) {
            group_by.push(*dim);
        }
    }
    Ok((
        indicator,
        Query {
            generation,
            from_month: d.from.to_owned(),
            to_month: d.to.to_owned(),
            territory,
            group_by,
        },
    ))
}

/// One dashboard query, as `GetIndicator` runs it after parsing: the raw
/// figures (sorted, for comparisons) and the published cells' count and
/// suppressed count.
async fn dashboard(
    store: &Store,
    rule: &Rule,
    d: &Dashboard,
) -> Result<(Vec<Figure>, usize, usize)> {
    let (indicator, q) = query_of(store, d).await?;
    let mut figures = catalogue::figures(store, indicator, &q).await?;
    let cells = disclosure::protect(rule, &q.group_by, figures.clone());
    let suppressed = cells.iter().filter(|c| c.suppressed).count();
    figures.sort_by(|a, b| a.keys.cmp(&b.keys));
    Ok((figures, cells.len(), suppressed))
}

/// Diagnostics shared, summed over every month, without disclosure control.
async fn shared_counted(store: &Store) -> Result<i64> {
    let d = Dashboard {
        label: "",
        indicator: "diagnostics_shared",
        from: "2024-01",
        to: "2025-12",
        territory: None,
        group_by: &[Dim::Month],
    };
    let (indicator, q) = query_of(store, &d).await?;
    let figures = catalogue::figures(store, indicator, &q).await?;
    Ok(figures.iter().map(|f| f.count).sum())
}

async fn count(db: &Db, sql: &'static str, bind: &str) -> Result<i64> {
    let mut h = db.acquire().await?;
    let n: (i64,) = on_backend!(h.conn(), c => sqlx::query_as(sql)
        .bind(bind)
        .fetch_one(&mut *c)
        .await)?;
    Ok(n.0)
}

/// Facts of each kind (shared, superseded) stored for generation `generation`.
async fn facts(db: &Db, generation: i64) -> Result<(i64, i64)> {
    let mut h = db.acquire().await?;
    let rows: Vec<(i64, i64)> = on_backend!(h.conn(), c => sqlx::query_as(
        "SELECT CAST(kind AS BIGINT), COUNT(*) FROM diagnostic_facts WHERE gen = $1 GROUP BY kind",
    )
    .bind(generation)
    .fetch_all(&mut *c)
    .await)?;
    let of = |k: i64| rows.iter().find(|r| r.0 == k).map_or(0, |r| r.1);
    Ok((of(1), of(2)))
}

async fn db_size(dbs: &Databases, db: &Db, backend: Backend) -> Result<Option<u64>> {
    let mut h = db.acquire().await?;
    Ok(match backend {
        Backend::Sqlite => {
            on_backend!(h.conn(), c => sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&mut *c)
                .await
                .map(|_| ()))?;
            std::fs::metadata(dbs.dir.path().join("statistics.db"))
                .ok()
                .map(|m| m.len())
        }
        Backend::Postgres => {
            let size: (i64,) = on_backend!(h.conn(), c => sqlx::query_as(
                "SELECT pg_database_size(current_database())",
            )
            .fetch_one(&mut *c)
            .await)?;
            u64::try_from(size.0).ok()
        }
    })
}

pub(crate) async fn statistics(
    dbs: &Databases,
    args: &Args,
    problems: &mut Vec<String>,
) -> Result<StatisticsFigures> {
    let referentiel = referentiel()?;
    let items = referentiel.items.len();
    println!(
        "  référentiel {}: {items} items in {} domains, every one rated in each diagnostic",
        referentiel.version, referentiel.domains
    );
    println!(
        "  recording contexts: {} structures ({}) in {} communes of départements 27 and 76: {}",
        COMMUNES.len() * STRUCTURES_PER_COMMUNE,
        KINDS
            .map(|k| k
                .as_str_name()
                .trim_start_matches("STRUCTURE_KIND_")
                .to_lowercase())
            .join(", "),
        COMMUNES.len(),
        COMMUNES
            .iter()
            .map(|c| c.name)
            .collect::<Vec<_>>()
            .join(", ")
    );
    let generator = Generator::new(referentiel, args.statistics_events);
    let superseded_planned = generator.superseded();
    let nats = NatsServer::start().await?;
    let cfg = BusConfig::default();
    // The diagnostics service's connection, then statistics' own.
    let producer = Bus::connect(&cfg, &nats.url(), "bench-diagnostics").await?;
    producer.ensure_stream(&streams::DIAGNOSTICS).await?;
    let bus = Bus::connect(&cfg, &nats.url(), "bench-statistics").await?;

    // 1. The events.
    let published = publish(&producer, generator, args.batch).await?;
    let events = published.timed.count;
    let mut stream = producer
        .jetstream()
        .get_stream(streams::DIAGNOSTICS.name)
        .await?;
    let state = stream.info().await?.state.clone();
    let last = state.last_sequence;
    println!(
        "  published {events} events ({} shared, {} superseded; {} people, {} structures in {} \
         communes) in {:.1} s: {:.0} events/s, window {}; stream {:.1} MB, {:.0} B a payload",
        published.shared,
        published.superseded,
        published.people,
        COMMUNES.len() * STRUCTURES_PER_COMMUNE,
        COMMUNES.len(),
        published.timed.elapsed.as_secs_f64(),
        published.timed.rate(),
        args.batch,
        state.bytes as f64 / 1e6,
        published.payload_bytes as f64 / events.max(1) as f64,
    );
    if state.messages != events as u64 || published.superseded != superseded_planned {
        problems.push(format!(
            "statistics: {} of {events} events in the stream ({} superseded of {superseded_planned} planned)",
            state.messages, published.superseded
        ));
    }
    let within = Duration::from_secs(600.max(events as u64 / 200));

    // 2. Baseline.
    let feed: Arc<dyn Feed> = Arc::new(DiagnosticsFeed);
    let raw = raw_consume(&stream, feed.subjects(), last, within).await?;
    println!(
        "  raw JetStream consumption (durable pull, explicit acks, no decode, no database): {} \
         messages in {:.1} s, {:.0} msg/s",
        raw.count,
        raw.elapsed.as_secs_f64(),
        raw.rate()
    );
    let _ = stream.delete_consumer(RAW_DURABLE).await;
    let floor = platform_floor(dbs, &bus, &stream, feed.subjects(), last, within).await?;
    println!(
        "  consumer::run with a projection doing nothing ({}): {} events in {:.1} s, {:.0} \
         events/s = {:.2}x raw",
        args.db.label(),
        floor.count,
        floor.elapsed.as_secs_f64(),
        floor.rate(),
        floor.rate() / raw.rate().max(1e-9)
    );
    if floor.count != events {
        problems.push(format!(
            "statistics: the empty projection's consumer recorded {} of {events} events",
            floor.count
        ));
    }

    // 3. Ingestion.
    let db = open(dbs, "statistics").await?;
    let store = Store::new(db.clone());
    let shutdown = Shutdown::new();
    let sub = feed.subscription();
    let started = Instant::now();
    let timing = Arc::new(Timing {
        live: Live(feed.clone()),
        batches: AtomicUsize::new(0),
        events: AtomicUsize::new(0),
        micros: AtomicU64::new(0),
    });
    let live = tokio::spawn(consumer::run(
        bus.clone(),
        db.clone(),
        sub.clone(),
        SharedTiming(timing.clone()),
        shutdown.clone(),
    ));
    let done = drained(&stream, &sub.durable, last, started, within).await?;
    let ingest = Timed {
        count: events,
        elapsed: done - started,
    };
    println!(
        "  ingestion (DiagnosticsFeed through consumer::run, {}): {events} events in {:.1} s, \
         {:.0} events/s = {:.2}x raw, {:.2}x the empty projection",
        args.db.label(),
        ingest.elapsed.as_secs_f64(),
        ingest.rate(),
        ingest.rate() / raw.rate().max(1e-9),
        ingest.rate() / floor.rate().max(1e-9)
    );
    let batches = timing.batches.load(Ordering::Relaxed);
    let in_feed = Duration::from_micros(timing.micros.load(Ordering::Relaxed));
    println!(
        "    {batches} batches of {:.0} events on average; {:.1} s of the {:.1} s in \
         DiagnosticsFeed::apply (through feed::Live)",
        timing.events.load(Ordering::Relaxed) as f64 / batches.max(1) as f64,
        in_feed.as_secs_f64(),
        ingest.elapsed.as_secs_f64()
    );
    let generation = store.current_gen().await?;
    let counted = shared_counted(&store).await?;
    let inbox = count(
        &db,
        "SELECT COUNT(*) FROM eva_inbox WHERE consumer = $1",
        &sub.durable,
    )
    .await?;
    let dead = count(
        &db,
        "SELECT COUNT(*) FROM eva_dead_letters WHERE consumer = $1",
        &sub.durable,
    )
    .await?;
    let stored = facts(&db, generation).await;
    match &stored {
        Ok((s, r)) => println!(
            "  checked: diagnostics_shared counts {counted} (of {}), facts {s} shared + {r} \
             superseded, inbox {inbox} rows, {dead} dead letters",
            published.shared
        ),
        Err(e) => println!(
            "  checked: diagnostics_shared counts {counted} (of {}), inbox {inbox} rows, {dead} \
             dead letters; facts not counted ({e})",
            published.shared
        ),
    }
    if counted != published.shared as i64 {
        problems.push(format!(
            "statistics: diagnostics_shared counts {counted} diagnostics, {} were shared",
            published.shared
        ));
    }
    if let Ok((s, r)) = stored
        && (s != published.shared as i64 || r != published.superseded as i64)
    {
        problems.push(format!(
            "statistics: {s} shared and {r} superseded facts stored, {} and {} published",
            published.shared, published.superseded
        ));
    }
    if inbox != events as i64 || dead != 0 {
        problems.push(format!(
            "statistics: {inbox} events in the inbox of {events}, {dead} dead letters"
        ));
    }
    let db_bytes = db_size(dbs, &db, args.db).await?;
    if let Some(b) = db_bytes {
        println!("  database size: {:.1} MB", b as f64 / 1e6);
    }

    // 4. Dashboard queries.
    let rule = Rule {
        threshold: eva_platform::Config::default()
            .statistics
            .disclosure_threshold,
    };
    let mut before = Vec::with_capacity(MIX.len());
    for d in MIX {
        let (figures, cells, suppressed) = dashboard(&store, &rule, d).await?;
        println!(
            "    {:<44} {cells:>4} cells, {suppressed} suppressed",
            d.label
        );
        if cells == 0 {
            problems.push(format!("statistics: query {:?} answered nothing", d.label));
        }
        before.push(figures);
    }
    for _ in 0..WARMUP_ROUNDS {
        for d in MIX {
            dashboard(&store, &rule, d).await?;
        }
    }
    let rounds = args.statistics_rounds;
    let mut samples: Vec<Vec<Duration>> = vec![Vec::with_capacity(rounds); MIX.len()];
    let started = Instant::now();
    for _ in 0..rounds {
        for (i, d) in MIX.iter().enumerate() {
            let t = Instant::now();
            dashboard(&store, &rule, d).await?;
            samples[i].push(t.elapsed());
        }
    }
    let queries_rate = (rounds * MIX.len()) as f64 / started.elapsed().as_secs_f64().max(1e-9);
    let mut queries = Vec::with_capacity(MIX.len());
    for (d, s) in MIX.iter().zip(&samples) {
        let (_, cells, suppressed) = dashboard(&store, &rule, d).await?;
        queries.push(QueryFigures {
            label: d.label,
            latency: spread(s.clone()),
            cells,
            suppressed,
        });
    }
    let all_queries = spread(samples.concat());
    for q in &queries {
        let l = &q.latency;
        println!(
            "  {:<44} p50 {} p99 {} max {} ms",
            q.label,
            ms(l.p50),
            ms(l.p99),
            ms(l.max)
        );
    }
    println!(
        "  all {} queries ({rounds} rounds of {}): p50 {} p90 {} p99 {} max {} ms, {queries_rate:.0} queries/s",
        rounds * MIX.len(),
        MIX.len(),
        ms(all_queries.p50),
        ms(all_queries.p90),
        ms(all_queries.p99),
        ms(all_queries.max)
    );
    for _ in 0..100 {
        select_one(&db).await?;
    }
    let (select, select_rate) = super::timed_calls(rounds * MIX.len(), |_| select_one(&db)).await?;
    println!(
        "  SELECT 1 through the same pool: p50 {} p99 {} ms, {select_rate:.0}/s",
        ms(select.p50),
        ms(select.p99)
    );

    // 5. Rebuild, with a light dashboard load meanwhile.
    let feeds = eva_statistics::feeds(&store, FederationRole::Off).await?;
    let rebuilds = Rebuilds::new(store.clone(), bus.clone(), feeds, shutdown.clone());
    let started = Instant::now();
    let rebuild = rebuilds
        .start()
        .await
        .map_err(|s| anyhow!("starting the rebuild: {}", s.message()))?;
    let mut during = Vec::new();
    let mut changed_during = 0usize;
    let deadline = Instant::now() + within;
    let mut next = 0usize;
    let finished = loop {
        let r = rebuilds
            .get(&rebuild.rebuild_id)
            .await?
            .context("the rebuild vanished")?;
        match r.state.as_str() {
            "completed" => break r,
            "running" => {}
            other => bail!("rebuild {}: {other}", r.rebuild_id),
        }
        if Instant::now() > deadline {
            bail!("rebuild not completed within {} s", within.as_secs());
        }
        let i = next % MIX.len();
        next += 1;
        let t = Instant::now();
        let (figures, _, _) = dashboard(&store, &rule, &MIX[i]).await?;
        during.push(t.elapsed());
        if figures != before[i] {
            changed_during += 1;
        }
        tokio::time::sleep(DURING_REBUILD_EVERY).await;
    };
    let rebuild_elapsed = started.elapsed();
    let rebuild_timed = Timed {
        count: usize::try_from(finished.events_applied).unwrap_or(0),
        elapsed: rebuild_elapsed,
    };
    let during_n = during.len();
    let during = spread(during);
    println!(
        "  rebuild: {} events applied in {:.1} s, {:.0} events/s = {:.2}x ingestion; {during_n} \
         dashboard queries meanwhile (one every {} ms): p50 {} p99 {} max {} ms, {changed_during} \
         answers differed",
        finished.events_applied,
        rebuild_elapsed.as_secs_f64(),
        rebuild_timed.rate(),
        rebuild_timed.rate() / ingest.rate().max(1e-9),
        DURING_REBUILD_EVERY.as_millis(),
        ms(during.p50),
        ms(during.p99),
        ms(during.max)
    );
    let new_generation = store.current_gen().await?;
    if new_generation == generation {
        problems.push(format!(
            "statistics: the rebuild completed but generation {generation} is still current"
        ));
    }
    if changed_during > 0 {
        problems.push(format!(
            "statistics: {changed_during} dashboard answers changed while the rebuild ran"
        ));
    }
    let mut identical = 0usize;
    for (d, was) in MIX.iter().zip(&before) {
        let (now, _, _) = dashboard(&store, &rule, d).await?;
        if &now == was {
            identical += 1;
        } else {
            let first = now
                .iter()
                .zip(was)
                .find(|(a, b)| a != b)
                .map(|(a, b)| format!("after {a:?}, before {b:?}"))
                .unwrap_or_else(|| format!("{} cells after, {} before", now.len(), was.len()));
            problems.push(format!(
                "statistics: {:?} differs after the rebuild (generation {new_generation} vs \
                 {generation}): {first}",
                d.label
            ));
        }
    }
    println!(
        "  figures identical before and after the rebuild (generation {generation} → \
         {new_generation}): {identical} of {} queries",
        MIX.len()
    );
    // The finished rebuild deletes the old generation's rows (after it
    // reports `completed`): wait a little for it.
    let mut left = (0, 0);
    for _ in 0..100 {
        match facts(&db, generation).await {
            Ok(f) => left = f,
            Err(_) => break,
        }
        if left == (0, 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let db_after = db_size(dbs, &db, args.db).await?;
    println!(
        "  old generation {generation}: {} facts left after the rebuild{}; database {:.1} MB",
        left.0 + left.1,
        if left == (0, 0) {
            " (purged)"
        } else {
            " (NOT purged)"
        },
        db_after.unwrap_or(0) as f64 / 1e6
    );
    if usize::try_from(finished.events_applied).ok() != Some(events) {
        println!(
            "  note: the rebuild counts {} events applied, {events} were published",
            finished.events_applied
        );
    }

    shutdown.trigger();
    let _ = tokio::time::timeout(Duration::from_secs(10), live).await;
    let _ = shutdown.drain(Duration::from_secs(10)).await;
    db.close().await;
    drop(stream);
    Ok(StatisticsFigures {
        backend: args.db,
        events,
        shared: published.shared,
        superseded: published.superseded,
        people: published.people,
        items,
        payload_mean: published.payload_bytes as f64 / events.max(1) as f64,
        publish: published.timed,
        stream_bytes: state.bytes,
        raw,
        floor,
        ingest,
        db_bytes,
        rounds,
        queries,
        all_queries,
        queries_rate,
        select,
        select_rate,
        rebuild: rebuild_timed,
        rebuild_applied: finished.events_applied,
        during_rebuild: during,
        during_rebuild_n: during_n,
        identical,
    })
}

pub(crate) fn print_statistics(f: &StatisticsFigures) {
    println!(
        "statistics: {}; {} events ({} shared, {} superseded), {} people, {} items each, {:.0} B a payload",
        f.backend.label(),
        f.events,
        f.shared,
        f.superseded,
        f.people,
        f.items,
        f.payload_mean
    );
    row(
        "publish to EVA_DIAGNOSTICS (events/s)",
        &format!("{:.0}", f.publish.rate()),
        "",
    );
    row(
        "stream size (MB)",
        &format!("{:.1}", f.stream_bytes as f64 / 1e6),
        "",
    );
    row(
        "raw JetStream consume + ack (msg/s)",
        &format!("{:.0}", f.raw.rate()),
        "",
    );
    row(
        "consumer::run, empty projection (events/s)",
        &format!(
            "{:.0} ({:.2}x)",
            f.floor.rate(),
            f.floor.rate() / f.raw.rate().max(1e-9)
        ),
        "",
    );
    row(
        "statistics ingestion (events/s)",
        &format!("{:.0}", f.ingest.rate()),
        "",
    );
    let ratio = f.ingest.rate() / f.raw.rate().max(1e-9);
    row(
        "ingestion / raw consumption",
        &format!("{ratio:.2}x"),
        &format!("≥ 0.50x {}", verdict(ratio >= 0.5)),
    );
    row(
        "ingestion wall time (s)",
        &format!("{:.1}", f.ingest.elapsed.as_secs_f64()),
        "",
    );
    if let Some(b) = f.db_bytes {
        row(
            "statistics database (MB)",
            &format!("{:.1}", b as f64 / 1e6),
            "",
        );
    }
    let a = &f.all_queries;
    row(
        &format!("dashboard queries ({} rounds) p50 / p90 (ms)", f.rounds),
        &format!("{} / {}", ms(a.p50), ms(a.p90)),
        "",
    );
    row(
        "dashboard queries p99 / max (ms)",
        &format!("{} / {}", ms(a.p99), ms(a.max)),
        &format!("< 20 ms {}", verdict(a.p99 < Duration::from_millis(20))),
    );
    if let Some(worst) = f.queries.iter().max_by_key(|q| q.latency.p99) {
        row("slowest query's p99 (ms)", &ms(worst.latency.p99), "");
        println!(
            "  ({}: {} cells, {} suppressed)",
            worst.label, worst.cells, worst.suppressed
        );
    }
    row(
        "dashboard queries/s (one at a time)",
        &format!("{:.0}", f.queries_rate),
        "",
    );
    row(
        "SELECT 1 p50 / p99 (ms)",
        &format!("{} / {}", ms(f.select.p50), ms(f.select.p99)),
        "",
    );
    row("SELECT 1/s", &format!("{:.0}", f.select_rate), "");
    row(
        "rebuild (events/s)",
        &format!("{:.0}", f.rebuild.rate()),
        "",
    );
    row(
        "rebuild wall time (s); events applied",
        &format!(
            "{:.1}; {}",
            f.rebuild.elapsed.as_secs_f64(),
            f.rebuild_applied
        ),
        "",
    );
    row(
        "rebuild / ingestion",
        &format!("{:.2}x", f.rebuild.rate() / f.ingest.rate().max(1e-9)),
        "",
    );
    row(
        "queries during rebuild p50 / p99 (ms)",
        &format!(
            "{} / {}",
            ms(f.during_rebuild.p50),
            ms(f.during_rebuild.p99)
        ),
        &format!("n={}", f.during_rebuild_n),
    );
    row(
        "figures identical after rebuild",
        &format!("{} / {}", f.identical, MIX.len()),
        verdict(f.identical == MIX.len()),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_referentiel_is_read_whole() {
        let r = referentiel().unwrap();
        assert_eq!(r.version, "2026.1");
        assert_eq!(r.domains, 11);
        assert_eq!(r.items.len(), 57);
        assert!(r.items.iter().all(|(d, i)| i.starts_with(&format!("{d}."))));
    }

    #[test]
    fn the_generator_makes_exactly_the_events_asked() {
        for n in [10, 1_000, 20_000] {
            let g = Generator::new(referentiel().unwrap(), n);
            let planned = g.superseded();
            let events: Vec<Generated> = g.collect();
            let superseded = events
                .iter()
                .filter(|e| e.subject.ends_with("superseded"))
                .count();
            assert_eq!(events.len(), n);
            assert_eq!(superseded, planned);
            if n >= 1_000 {
                assert_eq!(superseded, n / 5);
            }
        }
    }

    #[test]
    fn superseded_events_match_the_shared_ones() {
        use prost::Message;
        let mut last: std::collections::HashMap<String, DiagnosticShared> = Default::default();
        let mut followed = 0;
        for e in Generator::new(referentiel().unwrap(), 5_000) {
            if e.subject.ends_with("shared") {
                let s = DiagnosticShared::decode(e.payload.as_slice()).unwrap();
                assert_eq!(s.items.len(), 57);
                assert_eq!(s.statistics_pseudonym.len(), 64);
                let previous = last.insert(s.statistics_pseudonym.clone(), s);
                // The next event says how this one superseded the previous.
                let _ =
                    previous.map(|p| last.insert(format!("prev:{}", p.statistics_pseudonym), p));
            } else {
                let x = DiagnosticSuperseded::decode(e.payload.as_slice()).unwrap();
                let now = &last[&x.statistics_pseudonym];
                let was = &last[&format!("prev:{}", x.statistics_pseudonym)];
                assert_eq!(x.shared_on, now.shared_on);
                assert_eq!(x.previous_shared_on, was.shared_on);
                assert!(x.previous_shared_on < x.shared_on);
                assert_eq!(x.context, now.context);
                assert_eq!(x.previous_context, was.context);
                for (j, c) in x.changes.iter().enumerate() {
                    assert_eq!(c.previous_counselor_level, was.items[j].counselor_level);
                    assert_eq!(c.counselor_level, now.items[j].counselor_level);
                    assert_eq!(c.previous_person_level, was.items[j].person_level);
                    assert_eq!(c.person_level, now.items[j].person_level);
                }
                followed += 1;
            }
        }
        assert_eq!(followed, 1_000);
    }

    #[test]
    fn evolutions_follow_the_scale() {
        assert_eq!(evolution(2, 3), ItemEvolution::Improved);
        assert_eq!(evolution(5, 4), ItemEvolution::Worsened);
        assert_eq!(evolution(3, 3), ItemEvolution::Unchanged);
        assert_eq!(evolution(NON_ABORDE, 4), ItemEvolution::NewlyAddressed);
        assert_eq!(evolution(UNRATED, 4), ItemEvolution::NewlyAddressed);
        assert_eq!(evolution(4, NON_ABORDE), ItemEvolution::NotComparable);
    }
}
