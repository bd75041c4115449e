//! The diagnostics source against a real database (SQLite and PostgreSQL):
//! events applied through `DiagnosticsFeed::apply` as the consumer and a
//! rebuild do, figures checked against numbers computed by hand, every
//! event applied twice changing nothing, one batch or one event at a time
//! giving the same figures, a person's objection taking their diagnostics
//! away and lifting it bringing them back, invalid events refused.

mod common;

use common::{R, open};
use eva_platform::consumer::{ApplyError, Envelope};
use eva_proto::diagnostics::v1::Level as Rating;
use eva_proto::diagnostics::v1::{
    DiagnosticShared, DiagnosticSuperseded, ItemEvolution, ItemLevel, ItemLevelChange, Level,
    RecordingContext, StatisticsExclusionChanged,
};
use eva_proto::identity::v1::StructureKind;
use eva_proto::identity::v1::StructureKind as Kind;
use eva_statistics::catalogue::IndicatorId;
use eva_statistics::diagnostics::{self, DiagnosticsFeed};
use eva_statistics::feed::Feed;
use eva_statistics::model::{Dim, Figure, Query, Territory, TerritoryLevel};
use eva_statistics::store::Store;
use eva_tests::sandbox::Backend;
use prost::Message as _;
use time::OffsetDateTime;

fn envelope(subject: &str, message: &impl prost::Message) -> Envelope {
    common::envelope(
        "/eva/diagnostics",
        subject,
        OffsetDateTime::now_utc(),
        message,
    )
}

fn context_a() -> RecordingContext {
    RecordingContext {
        structure_kind: StructureKind::Aci as i32,
        commune_insee: "27229".into(),
        epci: "200000001".into(),
        departement: "27".into(),
    }
}

fn context_b() -> RecordingContext {
    RecordingContext {
        structure_kind: StructureKind::Ei as i32,
        commune_insee: "76540".into(),
        epci: "200000002".into(),
        departement: "76".into(),
    }
}

const PERMIS: (&str, &str) = ("mobilite", "mobilite.permis");
const VEHICULE: (&str, &str) = ("mobilite", "mobilite.vehicule");
const MORAL: (&str, &str) = ("sante", "sante.moral");
const DEPENDANCES: (&str, &str) = ("sante", "sante.dependances");

fn shared(
    pseudonym: &str,
    context: RecordingContext,
    day: &str,
    items: &[((&str, &str), Level, Level)],
) -> Envelope {
    envelope(
        diagnostics::SHARED,
        &DiagnosticShared {
            statistics_pseudonym: pseudonym.into(),
            referentiel_version: "2026.1".into(),
            context: Some(context),
            shared_on: day.into(),
            items: items
                .iter()
                .map(|((domain, item), c, p)| ItemLevel {
                    domain_id: (*domain).into(),
                    item_id: (*item).into(),
                    counselor_level: *c as i32,
                    person_level: *p as i32,
                })
                .collect(),
        },
    )
}

fn superseded(
    pseudonym: &str,
    context: RecordingContext,
    day: &str,
    changes: &[((&str, &str), ItemEvolution)],
) -> Envelope {
    envelope(
        diagnostics::SUPERSEDED,
        &DiagnosticSuperseded {
            statistics_pseudonym: pseudonym.into(),
            previous_referentiel_version: "2026.1".into(),
            referentiel_version: "2026.1".into(),
            previous_context: Some(context_a()),
            context: Some(context),
            previous_shared_on: "2026-01-10".into(),
            shared_on: day.into(),
            changes: changes
                .iter()
                .map(|((domain, item), e)| ItemLevelChange {
                    domain_id: (*domain).into(),
                    item_id: (*item).into(),
                    counselor_evolution: *e as i32,
                    ..Default::default()
                })
                .collect(),
        },
    )
}

fn exclusion(pseudonym: &str, excluded: bool, seconds: i64) -> Envelope {
    envelope(
        diagnostics::EXCLUSION_CHANGED,
        &StatisticsExclusionChanged {
            statistics_pseudonym: pseudonym.into(),
            excluded,
            changed_at: Some(prost_types::Timestamp { seconds, nanos: 0 }),
        },
    )
}

/// Four diagnostics shared and one superseded; see the expectations below.
fn scenario() -> Vec<Envelope> {
    use Level::*;
    vec![
        // p1 in A, January: permis frein majeur (person: frein → less
        // severe), véhicule frein (same), moral sans impact (person: frein
        // majeur → more severe).
        shared(
            "p1",
            context_a(),
            "2026-01-10",
            &[
                (PERMIS, FreinMajeur, Frein),
                (VEHICULE, Frein, Frein),
                (MORAL, SansImpact, FreinMajeur),
            ],
        ),
        // p2 in A, January: permis frein (person silent), véhicule point
        // d'appui (same), moral not discussed.
        shared(
            "p2",
            context_a(),
            "2026-01-20",
            &[
                (PERMIS, Frein, Unspecified),
                (VEHICULE, PointDAppui, PointDAppui),
                (MORAL, NonAborde, Frein),
            ],
        ),
        // p3 in B, February: moral frein majeur (person: sans impact → less
        // severe), permis sans impact (same).
        shared(
            "p3",
            context_b(),
            "2026-02-05",
            &[
                (MORAL, FreinMajeur, SansImpact),
                (PERMIS, SansImpact, SansImpact),
            ],
        ),
        // p1 again, in B, March: no barrier; permis sans impact (person:
        // frein → more severe).
        shared(
            "p1",
            context_b(),
            "2026-03-02",
            &[
                (PERMIS, SansImpact, Frein),
                (VEHICULE, PointDAppui, Unspecified),
            ],
        ),
        superseded(
            "p1",
            context_b(),
            "2026-03-02",
            &[
                (PERMIS, ItemEvolution::Improved),
                (VEHICULE, ItemEvolution::Improved),
                (MORAL, ItemEvolution::NotComparable),
                (DEPENDANCES, ItemEvolution::NewlyAddressed),
            ],
        ),
    ]
}

async fn apply(store: &Store, gens: &[i64], events: &[Envelope]) -> Result<(), ApplyError> {
    common::apply(store, &DiagnosticsFeed, gens, events).await
}

fn query(generation: i64, group_by: &[Dim]) -> Query {
    Query {
        generation,
        from_month: "2025-01".into(),
        to_month: "2027-12".into(),
        territory: None,
        group_by: group_by.to_vec(),
    }
}

async fn figures(store: &Store, id: IndicatorId, q: &Query) -> Vec<Figure> {
    diagnostics::figures(store, id, q).await.expect("figures")
}

fn k(keys: &[&str]) -> Vec<String> {
    keys.iter().map(|s| (*s).to_owned()).collect()
}

fn count(keys: &[&str], n: i64) -> Figure {
    Figure::count(k(keys), n)
}

fn share(keys: &[&str], n: i64, value: f64, guard: i64) -> Figure {
    Figure {
        keys: k(keys),
        count: n,
        value: Some(value),
        guards: vec![guard],
    }
}

/// Every figure of the four indicators under several groupings.
async fn snapshot(store: &Store, generation: i64) -> Vec<Vec<Figure>> {
    use Dim::*;
    let mut out = Vec::new();
    for (id, dims) in [
        (IndicatorId::DiagnosticsShared, vec![]),
        (
            IndicatorId::DiagnosticsShared,
            vec![Month, Commune, StructureKind],
        ),
        (IndicatorId::BarrierPrevalence, vec![]),
        (
            IndicatorId::BarrierPrevalence,
            vec![Quarter, Departement, Domain, Level],
        ),
        (
            IndicatorId::BarrierPrevalence,
            vec![Year, Epci, Item, Level],
        ),
        (IndicatorId::RatingGap, vec![Month, Domain, Item, Gap]),
        (IndicatorId::RatingGap, vec![StructureKind, Gap]),
        (
            IndicatorId::BarrierResolution,
            vec![Month, Domain, Item, Evolution],
        ),
        (IndicatorId::BarrierResolution, vec![Departement, Evolution]),
    ] {
        out.push(figures(store, id, &query(generation, &dims)).await);
    }
    out
}

async fn hand_computed(backend: Backend) -> R<()> {
    use Dim::*;
    let f = open(backend).await?;
    let s = &f.store;
    apply(s, &[1], &scenario()).await?;

    // Diagnostics shared.
    assert_eq!(
        figures(s, IndicatorId::DiagnosticsShared, &query(1, &[])).await,
        vec![count(&[], 4)]
    );
    assert_eq!(
        figures(s, IndicatorId::DiagnosticsShared, &query(1, &[Month])).await,
        vec![
            count(&["2026-01"], 2),
            count(&["2026-02"], 1),
            count(&["2026-03"], 1)
        ]
    );
    let mut in_76 = query(1, &[StructureKind]);
    in_76.territory = Some(Territory {
        level: TerritoryLevel::Departement,
        code: "76".into(),
    });
    assert_eq!(
        figures(s, IndicatorId::DiagnosticsShared, &in_76).await,
        vec![count(&["ei"], 2)]
    );

    // Barrier prevalence: 3 of the 4 diagnostics have a barrier (p1's
    // second has none).
    let prevalence = IndicatorId::BarrierPrevalence;
    assert_eq!(
        figures(s, prevalence, &query(1, &[])).await,
        vec![share(&[], 3, 75.0, 4)]
    );
    assert_eq!(
        figures(s, prevalence, &query(1, &[Level])).await,
        vec![
            share(&["frein"], 1, 25.0, 4),
            share(&["frein_majeur"], 2, 50.0, 4)
        ]
    );
    assert_eq!(
        figures(s, prevalence, &query(1, &[Domain])).await,
        vec![
            share(&["mobilite"], 2, 50.0, 4),
            share(&["sante"], 1, 25.0, 4)
        ]
    );
    // By domain and level: the domain's strongest level.
    assert_eq!(
        figures(s, prevalence, &query(1, &[Domain, Level])).await,
        vec![
            share(&["mobilite", "frein"], 1, 25.0, 4),
            share(&["mobilite", "frein_majeur"], 1, 25.0, 4),
            share(&["sante", "frein_majeur"], 1, 25.0, 4),
        ]
    );
    assert_eq!(
        figures(s, prevalence, &query(1, &[Item])).await,
        vec![
            share(&["mobilite.permis"], 2, 50.0, 4),
            share(&["mobilite.vehicule"], 1, 25.0, 4),
            share(&["sante.moral"], 1, 25.0, 4),
        ]
    );
    assert_eq!(
        figures(s, prevalence, &query(1, &[Departement, Domain])).await,
        vec![
            share(&["27", "mobilite"], 2, 100.0, 2),
            share(&["76", "sante"], 1, 50.0, 2),
        ]
    );
    let mut march = query(1, &[Month]);
    march.from_month = "2026-03".into();
    assert_eq!(figures(s, prevalence, &march).await, vec![]);

    // Rating gap: 7 items rated by both.
    let gap = IndicatorId::RatingGap;
    assert_eq!(
        figures(s, gap, &query(1, &[Gap])).await,
        vec![
            share(&["identique"], 3, 42.9, 7),
            share(&["personne_moins_severe"], 2, 28.6, 7),
            share(&["personne_plus_severe"], 2, 28.6, 7),
        ]
    );
    assert_eq!(
        figures(s, gap, &query(1, &[Domain, Gap])).await,
        vec![
            share(&["mobilite", "identique"], 3, 60.0, 5),
            share(&["mobilite", "personne_moins_severe"], 1, 20.0, 5),
            share(&["mobilite", "personne_plus_severe"], 1, 20.0, 5),
            share(&["sante", "personne_moins_severe"], 1, 50.0, 2),
            share(&["sante", "personne_plus_severe"], 1, 50.0, 2),
        ]
    );
    assert_eq!(
        figures(s, gap, &query(1, &[Item, Gap])).await,
        vec![
            share(&["mobilite.permis", "identique"], 1, 33.3, 3),
            share(&["mobilite.permis", "personne_moins_severe"], 1, 33.3, 3),
            share(&["mobilite.permis", "personne_plus_severe"], 1, 33.3, 3),
            share(&["mobilite.vehicule", "identique"], 2, 100.0, 2),
            share(&["sante.moral", "personne_moins_severe"], 1, 50.0, 2),
            share(&["sante.moral", "personne_plus_severe"], 1, 50.0, 2),
        ]
    );

    // Barrier resolution: counted in the new diagnostic's month and place;
    // not comparable items left out.
    let resolution = IndicatorId::BarrierResolution;
    assert_eq!(
        figures(s, resolution, &query(1, &[Month, Departement, Evolution])).await,
        vec![
            share(&["2026-03", "76", "ameliore"], 2, 66.7, 3),
            share(&["2026-03", "76", "nouvellement_aborde"], 1, 33.3, 3),
        ]
    );
    assert_eq!(
        figures(s, resolution, &query(1, &[Domain, Evolution])).await,
        vec![
            share(&["mobilite", "ameliore"], 2, 100.0, 2),
            share(&["sante", "nouvellement_aborde"], 1, 100.0, 1),
        ]
    );
    Ok(())
}

#[tokio::test]
async fn hand_computed_figures_sqlite() -> R<()> {
    hand_computed(Backend::Sqlite).await
}

#[tokio::test]
async fn hand_computed_figures_postgres() -> R<()> {
    hand_computed(Backend::Postgres).await
}

async fn idempotent(backend: Backend) -> R<()> {
    let once = open(backend).await?;
    apply(&once.store, &[1], &scenario()).await?;
    let expected = snapshot(&once.store, 1).await;
    assert!(expected.iter().all(|f| !f.is_empty()));

    let twice = open(backend).await?;
    let events = scenario();
    // Twice in one batch, to two generations at once (a rebuild running).
    let doubled: Vec<Envelope> = events.iter().chain(events.iter()).cloned().collect();
    apply(&twice.store, &[1, 2], &doubled).await?;
    assert_eq!(snapshot(&twice.store, 1).await, expected);
    assert_eq!(snapshot(&twice.store, 2).await, expected);
    // Then again one by one, and again as a batch.
    for e in &events {
        apply(&twice.store, &[1], std::slice::from_ref(e)).await?;
    }
    apply(&twice.store, &[1], &events).await?;
    assert_eq!(snapshot(&twice.store, 1).await, expected);
    assert_eq!(snapshot(&twice.store, 2).await, expected);
    Ok(())
}

#[tokio::test]
async fn every_event_twice_changes_nothing_sqlite() -> R<()> {
    idempotent(Backend::Sqlite).await
}

#[tokio::test]
async fn every_event_twice_changes_nothing_postgres() -> R<()> {
    idempotent(Backend::Postgres).await
}

async fn objection(backend: Backend) -> R<()> {
    use Dim::*;
    let f = open(backend).await?;
    let s = &f.store;
    let events = scenario();
    apply(s, &[1], &events).await?;
    let before = snapshot(s, 1).await;

    // p1 objects: both their shared diagnostics and the superseded one go.
    apply(s, &[1], &[exclusion("p1", true, 1_000)]).await?;
    assert_eq!(
        figures(s, IndicatorId::DiagnosticsShared, &query(1, &[])).await,
        vec![count(&[], 2)]
    );
    assert_eq!(
        figures(s, IndicatorId::BarrierPrevalence, &query(1, &[Level])).await,
        vec![
            share(&["frein"], 1, 50.0, 2),
            share(&["frein_majeur"], 1, 50.0, 2)
        ]
    );
    assert_eq!(
        figures(s, IndicatorId::RatingGap, &query(1, &[Gap])).await,
        vec![
            share(&["identique"], 2, 66.7, 3),
            share(&["personne_moins_severe"], 1, 33.3, 3),
        ]
    );
    assert_eq!(
        figures(s, IndicatorId::BarrierResolution, &query(1, &[Evolution])).await,
        vec![]
    );
    // Replaying p1's events while excluded counts nothing; neither does an
    // older choice arriving late.
    apply(s, &[1], &events).await?;
    apply(s, &[1], &[exclusion("p1", false, 500)]).await?;
    assert_eq!(
        figures(s, IndicatorId::DiagnosticsShared, &query(1, &[])).await,
        vec![count(&[], 2)]
    );

    // A diagnostic shared while excluded is kept, not counted…
    let later = shared(
        "p1",
        context_a(),
        "2026-04-01",
        &[(MORAL, Rating::Frein, Rating::Frein)],
    );
    apply(s, &[1], std::slice::from_ref(&later)).await?;
    assert_eq!(
        figures(s, IndicatorId::DiagnosticsShared, &query(1, &[])).await,
        vec![count(&[], 2)]
    );
    // …and lifting the objection brings everything back, that one included.
    apply(s, &[1], &[exclusion("p1", false, 2_000)]).await?;
    assert_eq!(
        figures(s, IndicatorId::DiagnosticsShared, &query(1, &[Month])).await,
        vec![
            count(&["2026-01"], 2),
            count(&["2026-02"], 1),
            count(&["2026-03"], 1),
            count(&["2026-04"], 1)
        ]
    );
    let mut until_march = query(1, &[]);
    until_march.to_month = "2026-03".into();
    assert_eq!(
        figures(s, IndicatorId::BarrierPrevalence, &until_march).await,
        vec![share(&[], 3, 75.0, 4)]
    );

    // Objecting and lifting within one batch, in stream order: the same
    // counts as without the objection.
    let g = open(backend).await?;
    let mut batch = events.clone();
    batch.insert(2, exclusion("p1", true, 1_000));
    batch.push(exclusion("p1", false, 2_000));
    apply(&g.store, &[1], &batch).await?;
    assert_eq!(snapshot(&g.store, 1).await, before);
    // One at a time: the same.
    let h = open(backend).await?;
    for e in &batch {
        apply(&h.store, &[1], std::slice::from_ref(e)).await?;
    }
    assert_eq!(snapshot(&h.store, 1).await, before);
    Ok(())
}

#[tokio::test]
async fn objection_removes_and_lifting_restores_sqlite() -> R<()> {
    objection(Backend::Sqlite).await
}

#[tokio::test]
async fn objection_removes_and_lifting_restores_postgres() -> R<()> {
    objection(Backend::Postgres).await
}

/// PostgreSQL: two transactions (a rebuild and the live consumer, say)
/// adding to the same counter row that neither saw when it began lose
/// nothing: the second waits for the first, then adds to what it wrote.
#[tokio::test]
async fn concurrent_writers_lose_nothing_postgres() -> R<()> {
    let f = open(Backend::Postgres).await?;
    let s = f.store.clone();
    // The référentiel entries and territories exist already.
    apply(
        &s,
        &[1],
        &[superseded(
            "p0",
            context_b(),
            "2026-01-10",
            &[(PERMIS, ItemEvolution::Improved)],
        )],
    )
    .await?;
    let mut first = s.db().begin().await?;
    DiagnosticsFeed
        .apply(
            &mut first,
            &[1],
            &[superseded(
                "p1",
                context_b(),
                "2026-05-02",
                &[(PERMIS, ItemEvolution::Improved)],
            )],
        )
        .await?;
    let second = tokio::spawn({
        let s = s.clone();
        async move {
            apply(
                &s,
                &[1],
                &[superseded(
                    "p2",
                    context_b(),
                    "2026-05-03",
                    &[(PERMIS, ItemEvolution::Worsened)],
                )],
            )
            .await
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    first.commit().await?;
    second.await??;
    let mut may = query(1, &[Dim::Evolution]);
    may.from_month = "2026-05".into();
    assert_eq!(
        figures(&s, IndicatorId::BarrierResolution, &may).await,
        vec![
            share(&["ameliore"], 1, 50.0, 2),
            share(&["degrade"], 1, 50.0, 2)
        ]
    );
    Ok(())
}

#[tokio::test]
async fn invalid_events_are_permanent() -> R<()> {
    let f = open(Backend::Sqlite).await?;
    let s = &f.store;
    let good = shared(
        "p9",
        context_a(),
        "2026-01-10",
        &[(PERMIS, Level::Frein, Level::Frein)],
    );
    let mut msg = DiagnosticShared {
        statistics_pseudonym: "p9".into(),
        context: Some(context_a()),
        shared_on: "2026-01-10".into(),
        items: vec![ItemLevel {
            domain_id: "mobilite".into(),
            item_id: "mobilite.permis".into(),
            counselor_level: 42,
            person_level: 0,
        }],
        ..Default::default()
    };
    let unknown_level = envelope(diagnostics::SHARED, &msg);
    msg.items[0].counselor_level = Level::Frein as i32;
    msg.context = Some(RecordingContext {
        structure_kind: 99,
        ..context_a()
    });
    let unknown_kind = envelope(diagnostics::SHARED, &msg);
    msg.context = Some(context_a());
    msg.shared_on = "le 10 janvier".into();
    let bad_day = envelope(diagnostics::SHARED, &msg);
    msg.shared_on = "2026-01-10".into();
    msg.statistics_pseudonym = String::new();
    let no_pseudonym = envelope(diagnostics::SHARED, &msg);
    let mut undecodable = good.clone();
    undecodable.payload = vec![0xff, 0xff, 0xff].into();
    let mut bad_evolution = superseded("p9", context_b(), "2026-03-02", &[]);
    bad_evolution.payload = DiagnosticSuperseded {
        statistics_pseudonym: "p9".into(),
        context: Some(context_b()),
        shared_on: "2026-03-02".into(),
        changes: vec![ItemLevelChange {
            domain_id: "mobilite".into(),
            item_id: "mobilite.permis".into(),
            counselor_evolution: 17,
            ..Default::default()
        }],
        ..Default::default()
    }
    .encode_to_vec()
    .into();
    for e in [
        unknown_level,
        unknown_kind,
        bad_day,
        no_pseudonym,
        undecodable,
        bad_evolution,
    ] {
        let r = apply(s, &[1], &[good.clone(), e]).await;
        assert!(matches!(r, Err(ApplyError::Permanent(_))), "{r:?}");
    }
    // Nothing of the refused batches stayed.
    assert_eq!(
        figures(s, IndicatorId::DiagnosticsShared, &query(1, &[])).await,
        vec![]
    );
    Ok(())
}

/// The référentiel's items, (domain, item), from its file.
fn referentiel_items() -> Vec<(String, String)> {
    let text = include_str!("../../diagnostics/referentiel/2026.1.toml");
    text.lines()
        .filter_map(|l| l.strip_prefix("id = \""))
        .filter_map(|l| l.strip_suffix('"'))
        .filter_map(|id| {
            id.split_once('.')
                .map(|(d, _)| (d.to_owned(), id.to_owned()))
        })
        .collect()
}

/// Ingestion of `EVA_BENCH_EVENTS` (default 1,000,000) diagnostics events
/// into SQLite in batches of 256, then dashboard queries' latencies:
/// `cargo test --release -p eva-statistics --test diagnostics -- --ignored --nocapture`.
#[tokio::test]
#[ignore = "benchmark"]
async fn benchmark_million_events() -> R<()> {
    use std::time::{Duration, Instant};
    let n: usize = std::env::var("EVA_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let f = open(Backend::Sqlite).await?;
    let s = &f.store;
    let items = referentiel_items();
    assert_eq!(items.len(), 57);
    // 30 structures in 15 communes, 2 départements, 3 kinds.
    let kinds = [Kind::Aci, Kind::Ei, Kind::Ai];
    let contexts: Vec<RecordingContext> = (0..30)
        .map(|i| RecordingContext {
            structure_kind: kinds[i % 3] as i32,
            commune_insee: format!("{}{:03}", if i % 15 < 8 { "27" } else { "76" }, i % 15),
            epci: format!("2000000{:02}", (i % 15) / 3),
            departement: (if i % 15 < 8 { "27" } else { "76" }).into(),
        })
        .collect();
    let levels = [
        Rating::FreinMajeur,
        Rating::Frein,
        Rating::SansImpact,
        Rating::PointDAppui,
        Rating::NonAborde,
    ];
    let evolutions = [
        ItemEvolution::Improved,
        ItemEvolution::Unchanged,
        ItemEvolution::Worsened,
        ItemEvolution::NewlyAddressed,
        ItemEvolution::NotComparable,
    ];
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut rnd = move |m: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % m as u64) as usize
    };
    let event = |i: usize, rnd: &mut dyn FnMut(usize) -> usize| -> Envelope {
        // 24 months, in order; one in three events a supersession.
        let month = i * 24 / n;
        let day = format!("{}-{:02}-15", 2024 + month / 12, month % 12 + 1);
        let context = contexts[i % 30].clone();
        let pseudonym = format!("{:064x}", i / 3);
        if i % 3 == 2 {
            let changes: Vec<_> = items
                .iter()
                .map(|(d, it)| ((d.as_str(), it.as_str()), evolutions[rnd(5)]))
                .collect();
            superseded(&pseudonym, context, &day, &changes)
        } else {
            let ratings: Vec<_> = items
                .iter()
                .map(|(d, it)| ((d.as_str(), it.as_str()), levels[rnd(5)], levels[rnd(5)]))
                .collect();
            shared(&pseudonym, context, &day, &ratings)
        }
    };
    let started = Instant::now();
    let mut build = Duration::ZERO;
    let mut i = 0;
    while i < n {
        let t = Instant::now();
        let batch: Vec<Envelope> = (i..(i + 256).min(n)).map(|j| event(j, &mut rnd)).collect();
        build += t.elapsed();
        apply(s, &[1], &batch).await?;
        i += batch.len();
    }
    let total = started.elapsed();
    let ingest = total - build;
    println!(
        "ingested {n} events in {:.1} s ({:.0} events/s; {:.1} s building envelopes not counted)",
        ingest.as_secs_f64(),
        n as f64 / ingest.as_secs_f64(),
        build.as_secs_f64()
    );
    let size = std::fs::metadata(f._dir.path().join("statistics.db"))?.len()
        + std::fs::metadata(f._dir.path().join("statistics.db-wal"))
            .map(|m| m.len())
            .unwrap_or(0);
    println!("database: {:.0} MB", size as f64 / 1e6);

    use Dim::*;
    let in_27 = Some(Territory {
        level: TerritoryLevel::Departement,
        code: "27".into(),
    });
    let queries: Vec<(IndicatorId, Vec<Dim>, Option<Territory>)> = vec![
        (
            IndicatorId::DiagnosticsShared,
            vec![Month, Departement],
            None,
        ),
        (IndicatorId::BarrierPrevalence, vec![], None),
        (IndicatorId::BarrierPrevalence, vec![Domain, Level], None),
        (IndicatorId::BarrierPrevalence, vec![Item], None),
        (
            IndicatorId::BarrierPrevalence,
            vec![Quarter, Domain],
            in_27.clone(),
        ),
        (
            IndicatorId::BarrierPrevalence,
            vec![Year, Departement, StructureKind, Domain],
            None,
        ),
        (IndicatorId::RatingGap, vec![Domain, Gap], None),
        (IndicatorId::RatingGap, vec![Item, Gap], None),
        (
            IndicatorId::BarrierResolution,
            vec![Domain, Evolution],
            None,
        ),
        (
            IndicatorId::BarrierResolution,
            vec![Quarter, Epci, Domain, Evolution],
            in_27,
        ),
        (
            IndicatorId::BarrierResolution,
            vec![Month, Item, Evolution],
            None,
        ),
    ];
    let mut all = Vec::new();
    for (id, dims, territory) in &queries {
        let mut q = query(1, dims);
        q.from_month = "2024-01".into();
        q.to_month = "2025-12".into();
        q.territory = territory.clone();
        let mut times = Vec::new();
        let mut cells = 0;
        for _ in 0..50 {
            let t = Instant::now();
            cells = figures(s, *id, &q).await.len();
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(f64::total_cmp);
        println!(
            "{id:?} by {dims:?}: {cells} cells, median {:.2} ms, max {:.2} ms",
            times[25], times[49]
        );
        all.extend(times);
    }
    all.sort_by(f64::total_cmp);
    let p99 = all[(all.len() * 99).div_ceil(100) - 1];
    println!("all queries: p99 {p99:.2} ms");
    Ok(())
}
