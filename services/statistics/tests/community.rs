//! Community source against a real SQLite and a real PostgreSQL database:
//! hand-computed figures for a small data set, every event applied twice,
//! answers arriving before their question, events in reverse order giving
//! the same figures, invalid check-ins refused.

mod common;

use common::{R, open, ts};
use eva_platform::consumer::{ApplyError, Envelope};
use eva_proto::community::v1::{AnswerPosted, Checkin, CheckinSubmitted, QuestionAsked};
use eva_statistics::catalogue::IndicatorId;
use eva_statistics::community::{self, CommunityFeed};
use eva_statistics::model::{Dim, Figure, Query, Territory, TerritoryLevel};
use eva_statistics::store::Store;
use eva_tests::sandbox::Backend;

const HOUR_US: i64 = 3_600_000_000;

/// µs at midnight UTC of `YYYY-MM-DD`, plus `hours`.
fn at(day: &str, hours: f64) -> i64 {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let d = time::Date::parse(day, &format).expect("day");
    d.midnight().assume_utc().unix_timestamp() * 1_000_000 + (hours * HOUR_US as f64) as i64
}

fn ev(subject: &str, time_us: i64, msg: &impl prost::Message) -> Envelope {
    common::envelope("/eva/community", subject, common::time_of(time_us), msg)
}

fn qid(n: u32) -> String {
    format!("0190a000-0000-7000-8003-{n:012}")
}

fn asked(n: u32, t: i64, territory: &str, domains: &[&str]) -> Envelope {
    ev(
        "eva.community.question.asked",
        t,
        &QuestionAsked {
            question_id: qid(n),
            space_id: "0190a000-0000-7000-8004-000000000001".into(),
            domains: domains.iter().map(|d| d.to_string()).collect(),
            territory_code: territory.into(),
            asked_at: Some(ts(t)),
        },
    )
}

fn answered(n: u32, question: u32, t: i64) -> Envelope {
    ev(
        "eva.community.answer.posted",
        t,
        &AnswerPosted {
            answer_id: format!("0190a000-0000-7000-8005-{n:012}"),
            question_id: qid(question),
            posted_at: Some(ts(t)),
        },
    )
}

fn checkin(month: &str, departement: &str, w: i32, i: i32, s: i32, t: i64) -> Envelope {
    ev(
        "eva.community.checkin.submitted",
        t,
        &CheckinSubmitted {
            month: month.into(),
            checkin: Some(Checkin {
                workload: w,
                isolation: i,
                support: s,
            }),
            departement: departement.into(),
        },
    )
}

/// The data set, in the order the community service published it, except
/// answer 5, published (and so delivered) before its question.
///
/// | q | asked            | territory  | dép.    | domains           | first answer |
/// |---|------------------|------------|---------|-------------------|--------------|
/// | 1 | 2025-03-03 10:00 | 27229      | 27      | mobilite          | +2 h (of 2)  |
/// | 2 | 2025-03-10 09:00 | 27         | 27      | mobilite, sante   | +10.25 h     |
/// | 3 | 2025-03-15 08:00 | 76540      | 76      | —                 | —            |
/// | 4 | 2025-03-20 14:00 | (empty)    | inconnu | sante             | +30 h        |
/// | 5 | 2025-04-02 07:00 | 974        | 974     | logement          | +1 h         |
/// | 6 | 2025-04-05 12:00 | 27         | 27      | mobilite          | +3 h 20 (2nd posted) |
/// | 7 | 2025-04-10 09:00 | 200040715  | inconnu | mobilite, mobilite| —            |
///
/// Check-ins (workload, isolation, support): 2025-03 in 27: (4,2,3) and
/// (5,5,1); 2025-03 in 76: (1,1,5); 2025-04 in 27: (3,3,4); no month nor
/// département, sent in April: (2,2,2).
fn events() -> Vec<Envelope> {
    let q1 = at("2025-03-03", 10.0);
    let q2 = at("2025-03-10", 9.0);
    let q3 = at("2025-03-15", 8.0);
    let q4 = at("2025-03-20", 14.0);
    let q5 = at("2025-04-02", 7.0);
    let q6 = at("2025-04-05", 12.0);
    let q7 = at("2025-04-10", 9.0);
    vec![
        asked(1, q1, "27229", &["mobilite"]),
        answered(1, 1, q1 + 2 * HOUR_US),
        answered(2, 1, q1 + 5 * HOUR_US),
        asked(2, q2, "27", &["mobilite", "sante"]),
        answered(3, 2, q2 + 10 * HOUR_US + HOUR_US / 4),
        asked(3, q3, "76540", &[]),
        checkin("2025-03", "27", 4, 2, 3, q3),
        checkin("2025-03", "27", 5, 5, 1, q3),
        checkin("2025-03", "76", 1, 1, 5, q3),
        asked(4, q4, "", &["sante"]),
        answered(4, 4, q4 + 30 * HOUR_US),
        answered(5, 5, q5 + HOUR_US),
        asked(5, q5, "974", &["logement"]),
        asked(6, q6, "27", &["mobilite"]),
        answered(6, 6, q6 + 4 * HOUR_US),
        answered(7, 6, q6 + 3 * HOUR_US + HOUR_US / 3),
        // Not read by statistics: ignored whatever its body.
        Envelope {
            event_type: "eva.community.answer.accepted".into(),
            payload: vec![0xff, 0xff].into(),
            ..answered(99, 6, q6)
        },
        asked(7, q7, "200040715", &["mobilite", "mobilite"]),
        checkin("2025-04", "27", 3, 3, 4, q7),
        checkin("", "", 2, 2, 2, q7),
    ]
}

async fn apply(store: &Store, gens: &[i64], events: &[Envelope]) -> Result<(), ApplyError> {
    common::apply(store, &CommunityFeed, gens, events).await
}

fn query(generation: i64, group_by: &[Dim], territory: Option<&str>) -> Query {
    Query {
        generation,
        from_month: "2025-03".into(),
        to_month: "2025-04".into(),
        territory: territory.map(|code| Territory {
            level: TerritoryLevel::Departement,
            code: code.into(),
        }),
        group_by: group_by.to_vec(),
    }
}

fn share(keys: &[&str], count: i64, answered: i64, percent: f64) -> Figure {
    Figure {
        keys: keys.iter().map(|k| k.to_string()).collect(),
        count,
        value: Some(percent),
        guards: vec![answered],
    }
}

fn measure(keys: &[&str], count: i64, value: f64) -> Figure {
    Figure {
        keys: keys.iter().map(|k| k.to_string()).collect(),
        count,
        value: Some(value),
        guards: Vec::new(),
    }
}

/// Every query the checks below make, for comparing generations.
fn queries(generation: i64) -> Vec<(IndicatorId, Query)> {
    use IndicatorId::*;
    let mut out = Vec::new();
    for id in [CommunityQuestions, CommunityResponseTime] {
        for group_by in [
            &[][..],
            &[Dim::Departement],
            &[Dim::Month, Dim::Domain],
            &[Dim::Quarter, Dim::Departement, Dim::Domain],
        ] {
            out.push((id, query(generation, group_by, None)));
        }
        out.push((id, query(generation, &[Dim::Domain], Some("27"))));
    }
    for group_by in [
        &[Dim::Measure][..],
        &[Dim::Departement, Dim::Measure],
        &[Dim::Month, Dim::Measure],
    ] {
        out.push((QvtIndex, query(generation, group_by, None)));
    }
    out.push((
        QvtIndex,
        query(generation, &[Dim::Month, Dim::Measure], Some("27")),
    ));
    out
}

async fn all_figures(store: &Store, generation: i64) -> R<Vec<Vec<Figure>>> {
    let mut out = Vec::new();
    for (id, q) in queries(generation) {
        out.push(community::figures(store, id, &q).await?);
    }
    Ok(out)
}

async fn hand_computed(store: &Store) -> R<()> {
    use IndicatorId::*;
    let fig = |id, q| async move { community::figures(store, id, &q).await };

    // 7 questions, 5 answered.
    assert_eq!(
        fig(CommunityQuestions, query(1, &[], None)).await?,
        [share(&[], 7, 5, 71.4)]
    );
    assert_eq!(
        fig(CommunityQuestions, query(1, &[Dim::Departement], None)).await?,
        [
            share(&["27"], 3, 3, 100.0),
            share(&["76"], 1, 0, 0.0),
            share(&["974"], 1, 1, 100.0),
            share(&["inconnu"], 2, 1, 50.0),
        ]
    );
    // A question counts in each of its domains; 7's domain once.
    assert_eq!(
        fig(
            CommunityQuestions,
            query(1, &[Dim::Month, Dim::Domain], None)
        )
        .await?,
        [
            share(&["2025-03", "mobilite"], 2, 2, 100.0),
            share(&["2025-03", "sans_domaine"], 1, 0, 0.0),
            share(&["2025-03", "sante"], 2, 2, 100.0),
            share(&["2025-04", "logement"], 1, 1, 100.0),
            share(&["2025-04", "mobilite"], 2, 1, 50.0),
        ]
    );
    assert_eq!(
        fig(CommunityQuestions, query(1, &[Dim::Domain], Some("27"))).await?,
        [
            share(&["mobilite"], 3, 3, 100.0),
            share(&["sante"], 1, 1, 100.0)
        ]
    );
    // One month only.
    let march = Query {
        to_month: "2025-03".into(),
        ..query(1, &[Dim::Quarter], None)
    };
    assert_eq!(
        fig(CommunityQuestions, march).await?,
        [share(&["2025-T1"], 4, 3, 75.0)]
    );

    // Hours to the first answer: 2, 10.25, 30, 1, 3.33 (the earlier of
    // question 6's answers, posted second). Nearest-rank median.
    assert_eq!(
        fig(CommunityResponseTime, query(1, &[], None)).await?,
        [measure(&[], 5, 3.3)]
    );
    assert_eq!(
        fig(CommunityResponseTime, query(1, &[Dim::Departement], None)).await?,
        [
            measure(&["27"], 3, 3.3),
            measure(&["974"], 1, 1.0),
            measure(&["inconnu"], 1, 30.0),
        ]
    );
    assert_eq!(
        fig(CommunityResponseTime, query(1, &[Dim::Domain], Some("27"))).await?,
        [measure(&["mobilite"], 3, 3.3), measure(&["sante"], 1, 10.3)]
    );

    // QVT: index = mean of (6 − workload, 6 − isolation, support).
    assert_eq!(
        fig(QvtIndex, query(1, &[Dim::Departement, Dim::Measure], None)).await?,
        [
            // (4,2,3) (5,5,1) (3,3,4): indices 3, 1, 3.33.
            measure(&["27", "index"], 3, 2.44),
            measure(&["27", "isolation"], 3, 3.33),
            measure(&["27", "support"], 3, 2.67),
            measure(&["27", "workload"], 3, 4.0),
            measure(&["76", "index"], 1, 5.0),
            measure(&["76", "isolation"], 1, 1.0),
            measure(&["76", "support"], 1, 5.0),
            measure(&["76", "workload"], 1, 1.0),
            // (2,2,2), month from the event's time.
            measure(&["inconnu", "index"], 1, 3.33),
            measure(&["inconnu", "isolation"], 1, 2.0),
            measure(&["inconnu", "support"], 1, 2.0),
            measure(&["inconnu", "workload"], 1, 2.0),
        ]
    );
    assert_eq!(
        fig(QvtIndex, query(1, &[Dim::Month, Dim::Measure], Some("27"))).await?,
        [
            measure(&["2025-03", "index"], 2, 2.0),
            measure(&["2025-03", "isolation"], 2, 3.5),
            measure(&["2025-03", "support"], 2, 2.0),
            measure(&["2025-03", "workload"], 2, 4.5),
            measure(&["2025-04", "index"], 1, 3.33),
            measure(&["2025-04", "isolation"], 1, 3.0),
            measure(&["2025-04", "support"], 1, 4.0),
            measure(&["2025-04", "workload"], 1, 3.0),
        ]
    );
    Ok(())
}

async fn scenario(backend: Backend) -> R<()> {
    let f = open(backend).await?;
    let store = &f.store;
    let events = events();

    apply(store, &[1], &events).await?;
    hand_computed(store).await?;
    let first = all_figures(store, 1).await?;

    // Every event again, in one batch with duplicates and one by one.
    let doubled: Vec<Envelope> = events.iter().flat_map(|e| [e.clone(), e.clone()]).collect();
    apply(store, &[1], &doubled).await?;
    for e in &events {
        apply(store, &[1], std::slice::from_ref(e)).await?;
    }
    assert_eq!(
        all_figures(store, 1).await?,
        first,
        "replay changed figures"
    );

    // Another generation fed in reverse order (every answer before its
    // question, the later answer of question 6 first), twice over, together
    // with generation 1: the same figures.
    let mut reversed = events.clone();
    reversed.reverse();
    apply(store, &[1, 2], &reversed).await?;
    apply(store, &[2], &reversed).await?;
    assert_eq!(all_figures(store, 2).await?, first, "order changed figures");
    assert_eq!(all_figures(store, 1).await?, first);

    // The départements seen may be named in queries.
    assert_eq!(
        store.territory_level("974").await?,
        Some(TerritoryLevel::Departement)
    );
    assert_eq!(store.territory_level("inconnu").await?, None);

    // Invalid check-ins are refused for good, and nothing of them is kept.
    let t = at("2025-04-20", 0.0);
    for bad in [
        checkin("2025-04", "27", 0, 3, 3, t),
        checkin("2025-04", "27", 3, 6, 3, t),
        checkin("2025-04", "27", 3, 3, -1, t),
        checkin("2025-13", "27", 3, 3, 3, t),
        checkin("avril", "27", 3, 3, 3, t),
        ev(
            "eva.community.checkin.submitted",
            t,
            &CheckinSubmitted {
                month: "2025-04".into(),
                checkin: None,
                departement: "27".into(),
            },
        ),
        ev("eva.community.question.asked", t, &QuestionAsked::default()),
    ] {
        let r = apply(store, &[1], &[bad]).await;
        assert!(matches!(r, Err(ApplyError::Permanent(_))), "{r:?}");
    }
    assert_eq!(all_figures(store, 1).await?, first);
    Ok(())
}

#[tokio::test]
async fn community_figures_on_sqlite() -> R<()> {
    scenario(Backend::Sqlite).await
}

#[tokio::test]
async fn community_figures_on_postgres() -> R<()> {
    scenario(Backend::Postgres).await
}

#[test]
fn departements_from_territory_codes() {
    use community::departement_from;
    assert_eq!(departement_from("27229"), "27");
    assert_eq!(departement_from("2A004"), "2A");
    assert_eq!(departement_from("97411"), "974");
    assert_eq!(departement_from("27"), "27");
    assert_eq!(departement_from("2b"), "2B");
    assert_eq!(departement_from("974"), "974");
    assert_eq!(departement_from(""), "");
    assert_eq!(departement_from("200040715"), "");
    assert_eq!(departement_from("97"), "");
    assert_eq!(departement_from("271"), "");
}
