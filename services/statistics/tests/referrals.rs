//! People and referrals sources against a real SQLite and a real PostgreSQL
//! database: hand-computed figures for a small data set, every event applied
//! twice, objection and its lifting, erasure, and events in shuffled order
//! (as a rebuild reads streams) giving the same figures.

mod common;

use common::{R, ts};
use eva_platform::consumer::Envelope;
use eva_platform::on_backend;
use eva_proto::identity::v1::{
    AccompanimentEnded, AccompanimentStarted, PersonErased, StatisticsObjectionChanged,
    StructureCreated, StructureKind,
};
use eva_proto::referrals::v1::{
    ReferralReminded, ReferralSent, ReferralStatus, ReferralStatusChanged, RefusalReason,
};
use eva_statistics::catalogue;
use eva_statistics::feed::Feed;
use eva_statistics::model::{Dim, Figure, Query, Territory, TerritoryLevel};
use eva_statistics::people::{self, PeopleFeed, Pseudonyms};
use eva_statistics::referrals::ReferralsFeed;
use eva_statistics::store::Store;
use eva_statistics::structures::StructuresFeed;
use eva_tests::sandbox::Backend;
use prost::Message;
use rand::SeedableRng;
use rand::seq::SliceRandom;

// Structures: an ACI in Évreux, an association in Vernon (both Eure, 27),
// a partner in Rouen (Seine-Maritime, 76). `X` is never registered.
const A: &str = "0190a000-0000-7000-8000-0000000000a1";
const B: &str = "0190a000-0000-7000-8000-0000000000b2";
const P: &str = "0190a000-0000-7000-8000-0000000000c3";
const X: &str = "0190a000-0000-7000-8000-0000000000d4";

fn person(n: u32) -> String {
    format!("0190a000-0000-7000-8000-{n:012}")
}

fn id(prefix: &str, n: u32) -> String {
    format!("0190a000-0000-7000-{prefix}-{n:012}")
}

const DAY_US: i64 = 86_400_000_000;

/// µs at midnight UTC of `YYYY-MM-DD`, plus `days`.
fn at(day: &str, days: f64) -> i64 {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let d = time::Date::parse(day, &format).expect("day");
    let midnight = d.midnight().assume_utc().unix_timestamp() * 1_000_000;
    midnight + (days * DAY_US as f64).round() as i64
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Structures,
    People,
    Referrals,
}

#[derive(Clone)]
struct Ev {
    source: Source,
    envelope: Envelope,
}

fn ev(source: Source, subject: &str, time_us: i64, msg: &impl prost::Message) -> Ev {
    Ev {
        source,
        envelope: common::envelope("/eva/test", subject, common::time_of(time_us), msg),
    }
}

fn structure(structure_id: &str, kind: StructureKind, commune: &str, epci: &str) -> Ev {
    let t = at("2024-06-01", 0.0);
    ev(
        Source::Structures,
        "eva.identity.structure.created",
        t,
        &StructureCreated {
            structure_id: structure_id.into(),
            kind: kind as i32,
            commune_insee: commune.into(),
            epci: epci.into(),
            created_at: Some(ts(t)),
        },
    )
}

fn started(n: u32, who: u32, structure_id: &str, start: &str) -> Ev {
    let t = at(start, 0.5);
    ev(
        Source::People,
        "eva.identity.accompaniment.started",
        t,
        &AccompanimentStarted {
            accompaniment_id: id("8001", n),
            person_id: person(who),
            structure_id: structure_id.into(),
            referent_user_id: String::new(),
            start_date: start.into(),
            referral_id: String::new(),
            occurred_at: Some(ts(t)),
        },
    )
}

fn ended(n: u32, who: u32, structure_id: &str, end: &str) -> Ev {
    let t = at(end, 0.5);
    ev(
        Source::People,
        "eva.identity.accompaniment.ended",
        t,
        &AccompanimentEnded {
            accompaniment_id: id("8001", n),
            person_id: person(who),
            structure_id: structure_id.into(),
            end_date: end.into(),
            end_reason: 0,
            occurred_at: Some(ts(t)),
        },
    )
}

fn objection(who: u32, objected: bool, t: i64) -> Ev {
    ev(
        Source::People,
        "eva.identity.person.statistics_objection_changed",
        t,
        &StatisticsObjectionChanged {
            person_id: person(who),
            objected,
            changed_at: Some(ts(t)),
        },
    )
}

fn erased(who: u32, t: i64) -> Ev {
    ev(
        Source::People,
        "eva.identity.person.erased",
        t,
        &PersonErased {
            person_id: person(who),
            erased_at: Some(ts(t)),
        },
    )
}

/// A referral's life: sent on `day` by `from` to `to`, then each move
/// `(status, days after sending, refusal reason)`.
struct Referral {
    n: u32,
    who: u32,
    from: &'static str,
    to: &'static str,
    day: &'static str,
    moves: Vec<(ReferralStatus, f64, RefusalReason)>,
}

impl Referral {
    fn events(&self) -> Vec<Ev> {
        let sent_at = at(self.day, 0.0);
        let referral_id = id("8002", self.n);
        let mut out = vec![ev(
            Source::Referrals,
            "eva.referrals.referral.sent",
            sent_at,
            &ReferralSent {
                referral_id: referral_id.clone(),
                person_id: person(self.who),
                sender_structure_id: self.from.into(),
                target_structure_id: self.to.into(),
                sent_at: Some(ts(sent_at)),
                ..ReferralSent::default()
            },
        )];
        let mut before = ReferralStatus::Envoyee;
        for (i, (status, days, reason)) in self.moves.iter().enumerate() {
            let t = sent_at + (days * DAY_US as f64).round() as i64;
            let name = match status {
                ReferralStatus::ALEtude => "under_review",
                ReferralStatus::Acceptee => "accepted",
                ReferralStatus::Refusee => "refused",
                ReferralStatus::Expiree => "expired",
                ReferralStatus::EnCours => "started",
                ReferralStatus::Terminee => "completed",
                ReferralStatus::Abandonnee => "abandoned",
                ReferralStatus::Annulee => "cancelled",
                ReferralStatus::DeclineeParLaPersonne => "declined",
                _ => "unknown",
            };
            out.push(ev(
                Source::Referrals,
                &format!("eva.referrals.referral.{name}"),
                t,
                &ReferralStatusChanged {
                    referral_id: referral_id.clone(),
                    transition_id: id("8003", self.n * 10 + i as u32),
                    person_id: person(self.who),
                    sender_structure_id: self.from.into(),
                    target_structure_id: self.to.into(),
                    target_service_id: String::new(),
                    from_status: before as i32,
                    to_status: *status as i32,
                    refusal_reason: *reason as i32,
                    actor_structure_id: self.to.into(),
                    sent_at: Some(ts(sent_at)),
                    occurred_at: Some(ts(t)),
                    sealed_note: None,
                },
            ));
            before = *status;
        }
        out
    }
}

fn structures() -> Vec<Ev> {
    vec![
        structure(A, StructureKind::Aci, "27229", "200089456"),
        structure(B, StructureKind::Association, "27681", "200070720"),
        structure(P, StructureKind::Partner, "76540", "200023414"),
    ]
}

/// Twelve referrals with known delays (days after sending):
///
/// | #  | who | from → to           | sent       | moves                                    |
/// |----|-----|---------------------|------------|------------------------------------------|
/// | 1  | 1   | aci → partner       | 2025-01-02 | à l'étude 1, acceptée 3, en cours 5, terminée 40 |
/// | 2  | 2   | aci → partner       | 2025-01-05 | acceptée 2.5, en cours 4                 |
/// | 3  | 3   | aci → partner       | 2025-01-10 | refusée 5.2 (hors critères)              |
/// | 4  | 3   | aci → partner       | 2025-01-12 | à l'étude 10, refusée 20 (session complète) |
/// | 5  | 5   | aci → partner       | 2025-01-20 | expirée 31                               |
/// | 6  | 6   | aci → partner       | 2025-01-25 | acceptée 16                              |
/// | 7  | 1   | aci → association   | 2025-02-03 | refusée 1 (hors critères)                |
/// | 8  | 2   | aci → association   | 2025-02-10 | annulée 3                                |
/// | 9  | 4   | aci → association   | 2025-02-14 | à l'étude 20, acceptée 35                |
/// | 10 | 5   | association → partner | 2025-02-05 | acceptée 7, en cours 8, abandonnée 60  |
/// | 11 | 6   | association → partner | 2025-02-20 | déclinée par la personne 2             |
/// | 12 | 1   | aci → (unknown)     | 2025-03-03 | refusée 4 (autre)                        |
fn referrals() -> Vec<Referral> {
    use ReferralStatus as S;
    use RefusalReason as Why;
    let none = Why::Unspecified;
    vec![
        Referral {
            n: 1,
            who: 1,
            from: A,
            to: P,
            day: "2025-01-02",
            moves: vec![
                (S::ALEtude, 1.0, none),
                (S::Acceptee, 3.0, none),
                (S::EnCours, 5.0, none),
                (S::Terminee, 40.0, none),
            ],
        },
        Referral {
            n: 2,
            who: 2,
            from: A,
            to: P,
            day: "2025-01-05",
            moves: vec![(S::Acceptee, 2.5, none), (S::EnCours, 4.0, none)],
        },
        Referral {
            n: 3,
            who: 3,
            from: A,
            to: P,
            day: "2025-01-10",
            moves: vec![(S::Refusee, 5.2, Why::HorsCriteres)],
        },
        Referral {
            n: 4,
            who: 3,
            from: A,
            to: P,
            day: "2025-01-12",
            moves: vec![
                (S::ALEtude, 10.0, none),
                (S::Refusee, 20.0, Why::SessionComplete),
            ],
        },
        Referral {
            n: 5,
            who: 5,
            from: A,
            to: P,
            day: "2025-01-20",
            moves: vec![(S::Expiree, 31.0, none)],
        },
        Referral {
            n: 6,
            who: 6,
            from: A,
            to: P,
            day: "2025-01-25",
            moves: vec![(S::Acceptee, 16.0, none)],
        },
        Referral {
            n: 7,
            who: 1,
            from: A,
            to: B,
            day: "2025-02-03",
            moves: vec![(S::Refusee, 1.0, Why::HorsCriteres)],
        },
        Referral {
            n: 8,
            who: 2,
            from: A,
            to: B,
            day: "2025-02-10",
            moves: vec![(S::Annulee, 3.0, none)],
        },
        Referral {
            n: 9,
            who: 4,
            from: A,
            to: B,
            day: "2025-02-14",
            moves: vec![(S::ALEtude, 20.0, none), (S::Acceptee, 35.0, none)],
        },
        Referral {
            n: 10,
            who: 5,
            from: B,
            to: P,
            day: "2025-02-05",
            moves: vec![
                (S::Acceptee, 7.0, none),
                (S::EnCours, 8.0, none),
                (S::Abandonnee, 60.0, none),
            ],
        },
        Referral {
            n: 11,
            who: 6,
            from: B,
            to: P,
            day: "2025-02-20",
            moves: vec![(S::DeclineeParLaPersonne, 2.0, none)],
        },
        Referral {
            n: 12,
            who: 1,
            from: A,
            to: X,
            day: "2025-03-03",
            moves: vec![(S::Refusee, 4.0, Why::Autre)],
        },
    ]
}

/// Accompaniments:
///
/// | # | who | structure   | from       | to         |
/// |---|-----|-------------|------------|------------|
/// | 1 | 1   | aci         | 2025-01-15 | 2025-03-10 |
/// | 2 | 2   | aci         | 2025-02-01 | —          |
/// | 3 | 1   | association | 2025-02-20 | 2025-02-28 |
/// | 4 | 3   | association | 2024-12-01 | 2025-01-31 |
/// | 5 | 4   | partner     | 2025-03-05 | —          |
/// | 6 | 2   | aci         | 2025-03-01 | 2025-03-20 |
fn accompaniments() -> Vec<Ev> {
    vec![
        started(1, 1, A, "2025-01-15"),
        ended(1, 1, A, "2025-03-10"),
        started(2, 2, A, "2025-02-01"),
        started(3, 1, B, "2025-02-20"),
        ended(3, 1, B, "2025-02-28"),
        started(4, 3, B, "2024-12-01"),
        ended(4, 3, B, "2025-01-31"),
        started(5, 4, P, "2025-03-05"),
        started(6, 2, A, "2025-03-01"),
        ended(6, 2, A, "2025-03-20"),
    ]
}

/// Every event of the data set, in the order each stream holds them.
fn dataset() -> Vec<Ev> {
    let mut out = structures();
    out.extend(accompaniments());
    for r in referrals() {
        out.extend(r.events());
    }
    out
}

/// The shared database fixture and the feeds of these sources.
struct Fixture {
    store: Store,
    structures: StructuresFeed,
    people: PeopleFeed,
    referrals: ReferralsFeed,
    _db: common::Fixture,
}

async fn open(backend: Backend) -> R<Fixture> {
    let db = common::open(backend).await?;
    let store = db.store.clone();
    let pseudonyms = Pseudonyms::load(&store).await?;
    Ok(Fixture {
        structures: StructuresFeed,
        people: PeopleFeed {
            pseudonyms: pseudonyms.clone(),
        },
        referrals: ReferralsFeed { pseudonyms },
        store,
        _db: db,
    })
}

impl Fixture {
    fn feed(&self, source: Source) -> &dyn Feed {
        match source {
            Source::Structures => &self.structures,
            Source::People => &self.people,
            Source::Referrals => &self.referrals,
        }
    }

    /// Applies `events` to `gens`, consecutive events of one source in one
    /// batch and one transaction, as the live consumer does.
    async fn apply(&self, gens: &[i64], events: &[Ev]) -> R<()> {
        let mut i = 0;
        while i < events.len() {
            let source = events[i].source;
            let mut j = i;
            while j < events.len() && events[j].source == source {
                j += 1;
            }
            let batch: Vec<Envelope> = events[i..j].iter().map(|e| e.envelope.clone()).collect();
            common::apply(&self.store, self.feed(source), gens, &batch)
                .await
                .map_err(|e| format!("{e}"))?;
            i = j;
        }
        Ok(())
    }

    async fn figures(&self, generation: i64, key: &str, q: Q) -> R<Vec<Figure>> {
        let indicator = catalogue::find(key).ok_or("indicator")?;
        let mut group_by = q.group_by;
        for d in indicator.implicit {
            if !group_by.contains(d) {
                group_by.push(*d);
            }
        }
        let query = Query {
            generation,
            from_month: q.from.into(),
            to_month: q.to.into(),
            territory: q.territory,
            group_by,
        };
        Ok(catalogue::figures(&self.store, indicator, &query).await?)
    }

    /// Rows still carrying a person's pseudonym, in every table.
    async fn rows_of(&self, who: u32) -> R<i64> {
        let pseudonym = self.people.pseudonyms.of(&person(who));
        let mut h = self.store.db().acquire().await?;
        let mut n = 0;
        for sql in [
            "SELECT COUNT(*) FROM accompaniments WHERE pseudonym = $1",
            "SELECT COUNT(*) FROM referrals WHERE pseudonym = $1",
        ] {
            n += on_backend!(h.conn(), c => sqlx::query_scalar::<_, i64>(sql)
                .bind(&pseudonym)
                .fetch_one(&mut *c)
                .await)?;
        }
        Ok(n)
    }
}

/// A question: period, territory, dimensions (implicit ones added).
struct Q {
    from: &'static str,
    to: &'static str,
    territory: Option<Territory>,
    group_by: Vec<Dim>,
}

fn q(from: &'static str, to: &'static str, group_by: &[Dim]) -> Q {
    Q {
        from,
        to,
        territory: None,
        group_by: group_by.to_vec(),
    }
}

fn count(keys: &[&str], n: i64) -> Figure {
    Figure::count(keys.iter().map(|k| k.to_string()).collect(), n)
}

fn share(keys: &[&str], n: i64, value: f64, guards: &[i64]) -> Figure {
    Figure {
        keys: keys.iter().map(|k| k.to_string()).collect(),
        count: n,
        value: Some(value),
        guards: guards.to_vec(),
    }
}

async fn flows(f: &Fixture) -> R<Vec<Figure>> {
    use Dim::*;
    f.figures(
        1,
        "referral_flows",
        q("2025-01", "2025-03", &[FromStructureKind, ToStructureKind]),
    )
    .await
}

/// Every indicator of these sources under many cuts: what must not change
/// when events are replayed or reordered.
async fn snapshot(f: &Fixture, generation: i64) -> R<Vec<(String, Vec<Figure>)>> {
    use Dim::*;
    let cuts: &[(&str, &[Dim])] = &[
        ("referral_flows", &[]),
        (
            "referral_flows",
            &[Month, FromStructureKind, ToStructureKind],
        ),
        ("referral_flows", &[Quarter, Departement, Epci, Commune]),
        ("referral_acceptance", &[]),
        (
            "referral_acceptance",
            &[Month, FromStructureKind, ToStructureKind],
        ),
        ("referral_refusal_reasons", &[]),
        (
            "referral_refusal_reasons",
            &[FromStructureKind, ToStructureKind],
        ),
        ("referral_response_time", &[]),
        ("referral_response_time", &[Month, FromStructureKind]),
        ("referral_answered_within", &[]),
        ("referral_answered_within", &[Month, ToStructureKind]),
        ("accompaniments_started", &[Month, StructureKind]),
        ("accompaniments_started", &[Year, Commune]),
        ("people_accompanied", &[]),
        ("people_accompanied", &[Month]),
        ("people_accompanied", &[Quarter, StructureKind]),
        ("people_accompanied", &[Month, Departement, StructureKind]),
    ];
    let mut out = Vec::new();
    for (key, dims) in cuts {
        let figures = f
            .figures(generation, key, q("2024-12", "2025-06", dims))
            .await?;
        out.push((format!("{key} {dims:?}"), figures));
    }
    Ok(out)
}

async fn hand_computed(backend: Backend) -> R<()> {
    use Dim::*;
    let f = open(backend).await?;
    f.apply(&[1], &dataset()).await?;

    // Flows.
    let flows = f
        .figures(
            1,
            "referral_flows",
            q("2025-01", "2025-03", &[FromStructureKind, ToStructureKind]),
        )
        .await?;
    assert_eq!(
        flows,
        vec![
            count(&["aci", "association"], 3),
            count(&["aci", "inconnu"], 1),
            count(&["aci", "partner"], 6),
            count(&["association", "partner"], 2),
        ]
    );
    let by_month = f
        .figures(1, "referral_flows", q("2025-01", "2025-03", &[Month]))
        .await?;
    assert_eq!(
        by_month,
        vec![
            count(&["2025-01"], 6),
            count(&["2025-02"], 5),
            count(&["2025-03"], 1)
        ]
    );
    let february = f
        .figures(1, "referral_flows", q("2025-02", "2025-02", &[]))
        .await?;
    assert_eq!(february, vec![count(&[], 5)]);
    // The sender's territory: B is in Vernon; nothing is sent from the 76.
    let mut vernon = q("2025-01", "2025-03", &[Commune]);
    vernon.territory = Some(Territory {
        level: TerritoryLevel::Commune,
        code: "27681".into(),
    });
    assert_eq!(
        f.figures(1, "referral_flows", vernon).await?,
        vec![count(&["27681"], 2)]
    );
    let mut seine_maritime = q("2025-01", "2025-03", &[]);
    seine_maritime.territory = Some(Territory {
        level: TerritoryLevel::Departement,
        code: "76".into(),
    });
    assert_eq!(
        f.figures(1, "referral_flows", seine_maritime).await?,
        vec![]
    );

    // Acceptance: decisions on 9 referrals, 5 accepted.
    assert_eq!(
        f.figures(1, "referral_acceptance", q("2025-01", "2025-03", &[]))
            .await?,
        vec![share(&[], 9, 55.6, &[5, 4])]
    );
    assert_eq!(
        f.figures(
            1,
            "referral_acceptance",
            q("2025-01", "2025-03", &[FromStructureKind, ToStructureKind])
        )
        .await?,
        vec![
            share(&["aci", "association"], 2, 50.0, &[1, 1]),
            share(&["aci", "inconnu"], 1, 0.0, &[0, 1]),
            share(&["aci", "partner"], 5, 60.0, &[3, 2]),
            share(&["association", "partner"], 1, 100.0, &[1, 0]),
        ]
    );

    // Refusal reasons: 4 refusals.
    assert_eq!(
        f.figures(1, "referral_refusal_reasons", q("2025-01", "2025-03", &[]))
            .await?,
        vec![
            share(&["autre"], 1, 25.0, &[4]),
            share(&["hors_criteres"], 2, 50.0, &[4]),
            share(&["session_complete"], 1, 25.0, &[4]),
        ]
    );
    assert_eq!(
        f.figures(
            1,
            "referral_refusal_reasons",
            q("2025-01", "2025-01", &[ToStructureKind])
        )
        .await?,
        vec![
            share(&["partner", "hors_criteres"], 1, 50.0, &[2]),
            share(&["partner", "session_complete"], 1, 50.0, &[2]),
        ]
    );

    // Response times. First answers (days): 1, 1, 2.5, 4, 5.2, 7, 10, 16, 20;
    // outcomes: 1, 2, 3, 4, 5.2, 20, 31, 40, 60. Nearest rank: median = 5th,
    // p90 = 9th.
    let measured = |measure: &str, n: i64, days: f64| Figure {
        keys: vec![measure.to_owned()],
        count: n,
        value: Some(days),
        guards: vec![],
    };
    assert_eq!(
        f.figures(1, "referral_response_time", q("2025-01", "2025-03", &[]))
            .await?,
        vec![
            measured("first_answer_median", 9, 5.2),
            measured("first_answer_p90", 9, 20.0),
            measured("outcome_median", 9, 5.2),
            measured("outcome_p90", 9, 60.0),
        ]
    );
    // January only: first answers 1, 2.5, 5.2, 10, 16; outcomes 5.2, 20, 31, 40.
    assert_eq!(
        f.figures(1, "referral_response_time", q("2025-01", "2025-01", &[]))
            .await?,
        vec![
            measured("first_answer_median", 5, 5.2),
            measured("first_answer_p90", 5, 16.0),
            measured("outcome_median", 4, 20.0),
            measured("outcome_p90", 4, 40.0),
        ]
    );

    // Answered within 15 days: 7 of 12; within 30: 9 of 12.
    assert_eq!(
        f.figures(1, "referral_answered_within", q("2025-01", "2025-03", &[]))
            .await?,
        vec![
            share(&["within_15_days"], 12, 58.3, &[7]),
            share(&["within_30_days"], 12, 75.0, &[9]),
        ]
    );

    // Accompaniments started, by month and by type.
    assert_eq!(
        f.figures(
            1,
            "accompaniments_started",
            q("2025-01", "2025-03", &[Month])
        )
        .await?,
        vec![
            count(&["2025-01"], 1),
            count(&["2025-02"], 2),
            count(&["2025-03"], 2)
        ]
    );
    assert_eq!(
        f.figures(
            1,
            "accompaniments_started",
            q("2024-12", "2025-03", &[StructureKind])
        )
        .await?,
        vec![
            count(&["aci"], 3),
            count(&["association"], 2),
            count(&["partner"], 1)
        ]
    );

    // People accompanied: January 1 and 3; February 1 and 2; March 1, 2, 4.
    assert_eq!(
        f.figures(1, "people_accompanied", q("2025-01", "2025-03", &[Month]))
            .await?,
        vec![
            count(&["2025-01"], 2),
            count(&["2025-02"], 2),
            count(&["2025-03"], 3)
        ]
    );
    assert_eq!(
        f.figures(1, "people_accompanied", q("2025-01", "2025-03", &[]))
            .await?,
        vec![count(&[], 4)]
    );
    assert_eq!(
        f.figures(1, "people_accompanied", q("2025-01", "2025-03", &[Quarter]))
            .await?,
        vec![count(&["2025-T1"], 4)]
    );
    assert_eq!(
        f.figures(
            1,
            "people_accompanied",
            q("2025-01", "2025-03", &[Month, StructureKind])
        )
        .await?,
        vec![
            count(&["2025-01", "aci"], 1),
            count(&["2025-01", "association"], 1),
            count(&["2025-02", "aci"], 2),
            count(&["2025-02", "association"], 1),
            count(&["2025-03", "aci"], 2),
            count(&["2025-03", "partner"], 1),
        ]
    );
    assert_eq!(
        f.figures(
            1,
            "people_accompanied",
            q("2025-02", "2025-02", &[Departement])
        )
        .await?,
        vec![count(&["27"], 2)]
    );

    // Two processes loading the key agree.
    let again = Pseudonyms::load(&f.store).await?;
    assert_eq!(again.of(&person(1)), f.people.pseudonyms.of(&person(1)));

    // Every event applied twice, one by one and as a whole: nothing changes.
    let before = snapshot(&f, 1).await?;
    for e in dataset() {
        f.apply(&[1], &[e.clone(), e]).await?;
    }
    f.apply(&[1], &dataset()).await?;
    assert_eq!(snapshot(&f, 1).await?, before);
    Ok(())
}

async fn objection_and_erasure(backend: Backend) -> R<()> {
    use Dim::Month;
    let f = open(backend).await?;
    f.apply(&[1], &dataset()).await?;
    let before = snapshot(&f, 1).await?;
    // Person 1 objects: referrals 1, 7, 12 and accompaniments 1, 3 leave.
    let t0 = at("2025-04-01", 0.0);
    f.apply(&[1], &[objection(1, true, t0)]).await?;
    assert_eq!(
        flows(&f).await?,
        vec![
            count(&["aci", "association"], 2),
            count(&["aci", "partner"], 5),
            count(&["association", "partner"], 2),
        ]
    );
    assert_eq!(
        f.figures(1, "people_accompanied", q("2025-01", "2025-03", &[]))
            .await?,
        vec![count(&[], 3)]
    );
    // A fact of an objecting person read later is stored but not counted.
    let late = Referral {
        n: 13,
        who: 1,
        from: B,
        to: P,
        day: "2025-03-15",
        moves: vec![(ReferralStatus::Acceptee, 1.0, RefusalReason::Unspecified)],
    };
    f.apply(&[1], &late.events()).await?;
    assert_eq!(
        f.figures(1, "referral_flows", q("2025-03", "2025-03", &[]))
            .await?,
        vec![]
    );

    // Lifting the objection counts them again; an older objection read
    // afterwards changes nothing.
    f.apply(&[1], &[objection(1, false, t0 + DAY_US)]).await?;
    f.apply(&[1], &[objection(1, true, t0 - DAY_US)]).await?;
    assert_eq!(
        f.figures(1, "referral_flows", q("2025-03", "2025-03", &[]))
            .await?,
        vec![count(&[], 2)]
    );
    // Without the late referral, everything is as before the objection.
    let g = open(backend).await?;
    g.apply(&[1], &dataset()).await?;
    g.apply(
        &[1],
        &[objection(1, true, t0), objection(1, false, t0 + DAY_US)],
    )
    .await?;
    assert_eq!(snapshot(&g, 1).await?, before);

    // The person's own export lists what statistics holds under their
    // pseudonym.
    let held = people::held(&f.store, &f.people.pseudonyms.of(&person(2))).await?;
    assert_eq!(held.accompaniments.len(), 2);
    assert_eq!(held.referrals.len(), 2);
    assert!(!held.objected);
    let doc = eva_statistics::person_data::document(&person(2), &held);
    assert_eq!(doc["personal_data"], true);
    let pseudonym = f.people.pseudonyms.of(&person(2));
    assert!(
        !doc.to_string().contains(&pseudonym),
        "no pseudonym in the export"
    );

    // Person 2 is erased: their rows no longer carry the pseudonym, the
    // referral counts stay, and each of their accompaniments now counts as
    // someone else (2 accompaniments in the period: 4 people become 5).
    let flows_before = f
        .figures(1, "referral_flows", q("2025-01", "2025-03", &[Month]))
        .await?;
    assert_eq!(f.rows_of(2).await?, 4);
    f.apply(&[1], &[erased(2, at("2025-05-01", 0.0))]).await?;
    assert_eq!(f.rows_of(2).await?, 0);
    assert_eq!(
        f.figures(1, "referral_flows", q("2025-01", "2025-03", &[Month]))
            .await?,
        flows_before
    );
    assert_eq!(
        f.figures(1, "accompaniments_started", q("2025-01", "2025-03", &[]))
            .await?,
        vec![count(&[], 5)]
    );
    assert_eq!(
        f.figures(1, "people_accompanied", q("2025-01", "2025-03", &[]))
            .await?,
        vec![count(&[], 5)]
    );
    let held = people::held(&f.store, &f.people.pseudonyms.of(&person(2))).await?;
    assert!(held.is_empty());
    let doc = eva_statistics::person_data::document(&person(2), &held);
    assert_eq!(doc["personal_data"], false);
    // Facts read after the erasure (a rebuild, another stream) arrive
    // unlinked; erasing again changes nothing.
    let after_erasure = Referral {
        n: 14,
        who: 2,
        from: A,
        to: B,
        day: "2025-03-20",
        moves: vec![],
    };
    f.apply(&[1], &after_erasure.events()).await?;
    f.apply(&[1], &[started(7, 2, B, "2025-03-21")]).await?;
    f.apply(&[1], &[erased(2, at("2025-05-01", 0.0))]).await?;
    assert_eq!(f.rows_of(2).await?, 0);
    assert_eq!(
        f.figures(1, "referral_flows", q("2025-03", "2025-03", &[]))
            .await?,
        vec![count(&[], 3)]
    );

    // An objecting person who is erased stays out of the figures, even
    // for facts read later.
    f.apply(&[1], &[objection(6, true, t0), erased(6, t0 + DAY_US)])
        .await?;
    let late6 = Referral {
        n: 15,
        who: 6,
        from: A,
        to: P,
        day: "2025-03-25",
        moves: vec![],
    };
    f.apply(&[1], &late6.events()).await?;
    assert_eq!(f.rows_of(6).await?, 0);
    assert_eq!(
        f.figures(1, "referral_flows", q("2025-03", "2025-03", &[]))
            .await?,
        vec![count(&[], 3)]
    );
    Ok(())
}

/// Streams read in any relative order (and events of one referral or
/// accompaniment in any order, an erasure before the facts it unlinks) give
/// the same figures; so do two generations fed at the same time.
async fn any_order(backend: Backend) -> R<()> {
    let f = open(backend).await?;
    let mut events = dataset();
    // An objection and an erasure too.
    events.push(objection(5, true, at("2025-04-01", 0.0)));
    events.push(objection(3, true, at("2025-04-01", 0.0)));
    events.push(objection(3, false, at("2025-04-02", 0.0)));
    events.push(erased(2, at("2025-05-01", 0.0)));
    f.apply(&[1], &events).await?;
    let expected = snapshot(&f, 1).await?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(6);
    for generation in 2..5 {
        let mut shuffled = events.clone();
        shuffled.shuffle(&mut rng);
        f.apply(&[generation], &shuffled).await?;
        assert_eq!(
            snapshot(&f, generation).await?,
            expected,
            "generation {generation}"
        );
    }
    // Both generations at once, as during a rebuild.
    let mut shuffled = events.clone();
    shuffled.shuffle(&mut rng);
    f.apply(&[5, 6], &shuffled).await?;
    assert_eq!(snapshot(&f, 5).await?, expected);
    assert_eq!(snapshot(&f, 6).await?, expected);
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

#[tokio::test]
async fn objection_and_erasure_sqlite() -> R<()> {
    objection_and_erasure(Backend::Sqlite).await
}

#[tokio::test]
async fn objection_and_erasure_postgres() -> R<()> {
    objection_and_erasure(Backend::Postgres).await
}

#[tokio::test]
async fn any_order_sqlite() -> R<()> {
    any_order(Backend::Sqlite).await
}

#[tokio::test]
async fn any_order_postgres() -> R<()> {
    any_order(Backend::Postgres).await
}

/// Undecodable or invalid events are permanent errors; reminders are
/// ignored.
#[tokio::test]
async fn invalid_events_are_permanent() -> R<()> {
    let f = open(Backend::Sqlite).await?;
    let mut bad_day = started(1, 1, A, "2025-01-15");
    bad_day.envelope.payload = AccompanimentStarted {
        accompaniment_id: id("8001", 1),
        person_id: person(1),
        structure_id: A.into(),
        start_date: "15/01/2025".into(),
        ..AccompanimentStarted::default()
    }
    .encode_to_vec()
    .into();
    let mut no_status = Referral {
        n: 1,
        who: 1,
        from: A,
        to: P,
        day: "2025-01-02",
        moves: vec![(ReferralStatus::Unspecified, 1.0, RefusalReason::Unspecified)],
    }
    .events();
    let mut garbage = structures().remove(0);
    garbage.source = Source::Referrals;
    garbage.envelope.event_type = "eva.referrals.referral.sent".into();
    garbage.envelope.payload = vec![0xff, 0xff, 0xff].into();
    for e in [bad_day, no_status.remove(1), garbage] {
        let err = f.apply(&[1], &[e]).await.expect_err("refused");
        assert!(err.to_string().starts_with("permanent"), "{err}");
    }
    let t = at("2025-01-09", 0.0);
    let reminded = ev(
        Source::Referrals,
        "eva.referrals.referral.reminded",
        t,
        &ReferralReminded {
            referral_id: id("8002", 1),
            sender_structure_id: A.into(),
            target_structure_id: P.into(),
            sent_at: Some(ts(t)),
            expires_at: None,
        },
    );
    f.apply(&[1], &[reminded]).await?;
    assert_eq!(
        f.figures(1, "referral_flows", q("2025-01", "2025-01", &[]))
            .await?,
        vec![]
    );
    Ok(())
}
