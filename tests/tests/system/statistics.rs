//! Statistics from real events through NATS: a small data set published on
//! the streams with chosen dates, figures checked against a hand
//! computation; objections; every event replayed once more changes
//! nothing; a rebuild from the streams gives the same figures; a person's
//! objection made through the gateway removes their diagnostics.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use eva_platform::auth::Role;
use eva_platform::bus::streams;
use eva_proto::community::v1 as community;
use eva_proto::diagnostics::v1 as diagnostics;
use eva_proto::identity::v1 as identity;
use eva_proto::referrals::v1 as referrals;
use eva_tests::api::{get, patch, person, person_token, post, send, siret, structure, until};
use eva_tests::events::{EventPublisher, at};
use eva_tests::sandbox::{Backend, Sandbox};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use uuid::Uuid;

/// Small enough to compute by hand, large enough to publish some cells.
const THRESHOLD: i64 = 3;

const EVREUX: &str = "27229";
const EVREUX_EPCI: &str = "200089456";
const ROUEN: &str = "76540";
const ROUEN_EPCI: &str = "200023414";

fn context(
    commune: &str,
    epci: &str,
    kind: identity::StructureKind,
) -> diagnostics::RecordingContext {
    diagnostics::RecordingContext {
        structure_kind: kind as i32,
        commune_insee: commune.into(),
        epci: epci.into(),
        departement: commune[..2].into(),
    }
}

use diagnostics::Level as L;

fn item(id: &str, counselor: L, person: L) -> diagnostics::ItemLevel {
    diagnostics::ItemLevel {
        domain_id: id.split('.').next().unwrap_or_default().into(),
        item_id: id.into(),
        counselor_level: counselor as i32,
        person_level: person as i32,
    }
}

fn shared(
    pseudonym: &str,
    day: &str,
    ctx: &diagnostics::RecordingContext,
    m: (L, L),
    s: (L, L),
) -> diagnostics::DiagnosticShared {
    diagnostics::DiagnosticShared {
        statistics_pseudonym: pseudonym.into(),
        referentiel_version: "2026.1".into(),
        context: Some(ctx.clone()),
        shared_on: day.into(),
        items: vec![
            item("mobilite.permis", m.0, m.1),
            item("sante.acces_aux_soins", s.0, s.1),
        ],
    }
}

fn change(
    id: &str,
    before: L,
    after: L,
    evolution: diagnostics::ItemEvolution,
) -> diagnostics::ItemLevelChange {
    diagnostics::ItemLevelChange {
        domain_id: id.split('.').next().unwrap_or_default().into(),
        item_id: id.into(),
        previous_counselor_level: before as i32,
        counselor_level: after as i32,
        counselor_evolution: evolution as i32,
        previous_person_level: L::Unspecified as i32,
        person_level: L::Unspecified as i32,
        person_evolution: diagnostics::ItemEvolution::Unspecified as i32,
    }
}

/// The referral's history: (day, to_status, refusal reason).
type Moves<'a> = &'a [(&'a str, referrals::ReferralStatus, referrals::RefusalReason)];

async fn referral(
    events: &mut EventPublisher,
    sender: &str,
    target: &str,
    sent_on: &str,
    moves: Moves<'_>,
) -> Result<()> {
    use referrals::ReferralStatus as S;
    let (referral_id, person_id) = (Uuid::now_v7().to_string(), Uuid::now_v7().to_string());
    events
        .publish(
            "referrals",
            "eva.referrals.referral.sent",
            &referrals::ReferralSent {
                referral_id: referral_id.clone(),
                person_id: person_id.clone(),
                sender_structure_id: sender.into(),
                target_structure_id: target.into(),
                domains: vec!["mobilite".into()],
                sent_at: Some(at(sent_on, 9)),
                ..Default::default()
            },
        )
        .await?;
    let mut from = S::Envoyee;
    for &(day, to, reason) in moves {
        let subject = match to {
            S::ALEtude => "under_review",
            S::Acceptee => "accepted",
            S::Refusee => "refused",
            S::Expiree => "expired",
            S::EnCours => "started",
            S::Terminee => "completed",
            S::Abandonnee => "abandoned",
            _ => bail!("move {to:?} not used here"),
        };
        events
            .publish(
                "referrals",
                &format!("eva.referrals.referral.{subject}"),
                &referrals::ReferralStatusChanged {
                    referral_id: referral_id.clone(),
                    transition_id: Uuid::now_v7().to_string(),
                    person_id: person_id.clone(),
                    sender_structure_id: sender.into(),
                    target_structure_id: target.into(),
                    from_status: from as i32,
                    to_status: to as i32,
                    refusal_reason: reason as i32,
                    actor_structure_id: if to == S::Expiree {
                        String::new()
                    } else {
                        target.into()
                    },
                    sent_at: Some(at(sent_on, 9)),
                    occurred_at: Some(at(day, 9)),
                    ..Default::default()
                },
            )
            .await?;
        from = to;
    }
    Ok(())
}

/// The cells of an indicator query, as the gateway answers them.
pub(crate) async fn cells(sb: &Sandbox, token: &str, query: &str) -> Result<Vec<Value>> {
    let (s, v) = get(sb, &format!("/api/v1/statistics/indicators/{query}"), token).await?;
    if s != StatusCode::OK {
        bail!("{query}: {s} {v}");
    }
    assert!(
        v["rule"]["threshold"].is_i64() && v["rule"]["method"].is_string(),
        "{query}: rule stated: {v}"
    );
    let mut cells = v["cells"].as_array().context("cells")?.clone();
    cells.sort_by_key(|c| c.to_string());
    Ok(cells)
}

/// One published cell: its count and value (`None`, `None` when suppressed).
fn cell<'a>(cells: &'a [Value], dims: &[(&str, &str)]) -> &'a Value {
    cells
        .iter()
        .find(|c| dims.iter().all(|(k, v)| c[*k] == *v))
        .unwrap_or_else(|| panic!("no cell {dims:?} in {cells:#?}"))
}

fn published(c: &Value) -> (Option<i64>, Option<f64>) {
    (c["count"].as_i64(), c["value"].as_f64())
}

/// Polls `query` until `ready` holds for its cells (events are applied
/// asynchronously), at most 30 s.
async fn until_cells(
    sb: &Sandbox,
    token: &str,
    query: &str,
    ready: impl Fn(&[Value]) -> bool,
) -> Result<Vec<Value>> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let c = cells(sb, token, query).await?;
        if ready(&c) {
            return Ok(c);
        }
        if std::time::Instant::now() > deadline {
            bail!("{query} never got there: {c:#?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn has(cells: &[Value], dims: &[(&str, &str)]) -> bool {
    cells.iter().any(|c| dims.iter().all(|(k, v)| c[*k] == *v))
}

/// The queries whose answers must survive replays and rebuilds unchanged.
const QUERIES: &[&str] = &[
    "diagnostics_shared?from=2024-12&to=2025-03&group_by=month",
    "diagnostics_shared?from=2025-01&to=2025-03&group_by=departement,structure_kind",
    "barrier_prevalence?from=2025-01&to=2025-02&group_by=domain",
    "barrier_prevalence?from=2025-01&to=2025-02&group_by=domain,level",
    "barrier_resolution?from=2025-03&to=2025-03&group_by=evolution",
    "rating_gap?from=2025-01&to=2025-01&group_by=gap",
    "referral_flows?from=2025-01&to=2025-01&group_by=from_structure_kind,to_structure_kind",
    "referral_acceptance?from=2025-01&to=2025-01",
    "referral_refusal_reasons?from=2025-01&to=2025-01",
    "referral_response_time?from=2025-01&to=2025-01",
    "referral_answered_within?from=2025-01&to=2025-01",
    "accompaniments_started?from=2025-01&to=2025-02&group_by=month",
    "people_accompanied?from=2025-01&to=2025-02&group_by=month",
    "community_questions?from=2025-01&to=2025-01",
    "community_response_time?from=2025-01&to=2025-01",
    "qvt_index?from=2025-01&to=2025-01",
];

async fn snapshot(sb: &Sandbox, token: &str) -> Result<Vec<Vec<Value>>> {
    let mut all = Vec::new();
    for q in QUERIES {
        all.push(cells(sb, token, q).await?);
    }
    Ok(all)
}

async fn story(backend: Backend) -> Result<()> {
    let sb =
        Sandbox::start_with(backend, |c| c.statistics.disclosure_threshold = THRESHOLD).await?;
    let operator = sb.token("op", vec![Role::Operator], vec![]).await?;
    let analyst = sb.token("analyst", vec![Role::Analyst], vec![]).await?;
    let association = structure(&sb, &operator, "Asso Évreux", &siret(1), "association").await?;
    let partner = structure(&sb, &operator, "Partenaire", &siret(2), "partner").await?;
    let mut events = EventPublisher::connect(
        &sb.nats.url(),
        &[
            streams::IDENTITY,
            streams::DIAGNOSTICS,
            streams::REFERRALS,
            streams::COMMUNITY,
        ],
    )
    .await?;

    // Diagnostics: four in Évreux (association) in January, three in Rouen
    // (ACI) in February; three of January's people again in March.
    use identity::StructureKind as K;
    let evreux = context(EVREUX, EVREUX_EPCI, K::Association);
    let rouen = context(ROUEN, ROUEN_EPCI, K::Aci);
    let u = L::Unspecified;
    for d in [
        shared(
            "A",
            "2025-01-10",
            &evreux,
            (L::FreinMajeur, L::Frein),
            (L::SansImpact, L::SansImpact),
        ),
        shared(
            "B",
            "2025-01-11",
            &evreux,
            (L::Frein, L::Frein),
            (L::Frein, L::FreinMajeur),
        ),
        shared(
            "C",
            "2025-01-12",
            &evreux,
            (L::PointDAppui, u),
            (L::FreinMajeur, L::FreinMajeur),
        ),
        shared(
            "D",
            "2025-01-13",
            &evreux,
            (L::Frein, L::SansImpact),
            (L::SansImpact, u),
        ),
        shared("E", "2025-02-10", &rouen, (L::Frein, u), (L::Frein, u)),
        shared(
            "F",
            "2025-02-11",
            &rouen,
            (L::SansImpact, u),
            (L::SansImpact, u),
        ),
        shared(
            "G",
            "2025-02-12",
            &rouen,
            (L::FreinMajeur, u),
            (L::PointDAppui, u),
        ),
        shared(
            "A",
            "2025-03-10",
            &evreux,
            (L::Frein, u),
            (L::SansImpact, u),
        ),
        shared(
            "B",
            "2025-03-11",
            &evreux,
            (L::SansImpact, u),
            (L::FreinMajeur, u),
        ),
        shared(
            "C",
            "2025-03-12",
            &evreux,
            (L::PointDAppui, u),
            (L::Frein, u),
        ),
    ] {
        events
            .publish("diagnostics", "eva.diagnostics.diagnostic.shared", &d)
            .await?;
    }
    use diagnostics::ItemEvolution as Ev;
    for (p, m, s) in [
        (
            "A",
            (L::FreinMajeur, L::Frein, Ev::Improved),
            (L::SansImpact, L::SansImpact, Ev::Unchanged),
        ),
        (
            "B",
            (L::Frein, L::SansImpact, Ev::Improved),
            (L::Frein, L::FreinMajeur, Ev::Worsened),
        ),
        (
            "C",
            (L::PointDAppui, L::PointDAppui, Ev::Unchanged),
            (L::FreinMajeur, L::Frein, Ev::Improved),
        ),
    ] {
        let msg = diagnostics::DiagnosticSuperseded {
            statistics_pseudonym: p.into(),
            previous_referentiel_version: "2026.1".into(),
            referentiel_version: "2026.1".into(),
            previous_context: Some(evreux.clone()),
            context: Some(evreux.clone()),
            previous_shared_on: "2025-01-10".into(),
            shared_on: "2025-03-10".into(),
            changes: vec![
                change("mobilite.permis", m.0, m.1, m.2),
                change("sante.acces_aux_soins", s.0, s.1, s.2),
            ],
        };
        events
            .publish("diagnostics", "eva.diagnostics.diagnostic.superseded", &msg)
            .await?;
    }

    // Referrals from the association to the partner, sent in January.
    use referrals::ReferralStatus as S;
    use referrals::RefusalReason as R;
    let none = R::Unspecified;
    for (sent, moves) in [
        (
            "2025-01-06",
            &[
                ("2025-01-08", S::ALEtude, none),
                ("2025-01-10", S::Acceptee, none),
                ("2025-01-15", S::EnCours, none),
                ("2025-02-20", S::Terminee, none),
            ][..],
        ),
        (
            "2025-01-06",
            &[("2025-01-26", S::Refusee, R::HorsCriteres)][..],
        ),
        (
            "2025-01-13",
            &[
                ("2025-01-14", S::Acceptee, none),
                ("2025-03-01", S::Abandonnee, none),
            ][..],
        ),
        ("2025-01-20", &[("2025-02-19", S::Expiree, none)][..]),
        (
            "2025-01-21",
            &[("2025-01-22", S::Refusee, R::HorsCriteres)][..],
        ),
        (
            "2025-01-27",
            &[("2025-02-27", S::Refusee, R::BeneficiaireInjoignable)][..],
        ),
        ("2025-01-28", &[("2025-01-29", S::Acceptee, none)][..]),
    ] {
        referral(&mut events, &association, &partner, sent, moves).await?;
    }

    // Accompaniments at the association: four start in January (one ends
    // on the 31st), one in February.
    let people: Vec<String> = (0..5).map(|_| Uuid::now_v7().to_string()).collect();
    let mut accompaniments = Vec::new();
    for (i, person) in people.iter().enumerate() {
        let start = if i < 4 { "2025-01-05" } else { "2025-02-03" };
        let accompaniment_id = Uuid::now_v7().to_string();
        events
            .publish(
                "identity",
                "eva.identity.accompaniment.started",
                &identity::AccompanimentStarted {
                    accompaniment_id: accompaniment_id.clone(),
                    person_id: person.clone(),
                    structure_id: association.clone(),
                    start_date: start.into(),
                    occurred_at: Some(at(start, 9)),
                    ..Default::default()
                },
            )
            .await?;
        accompaniments.push(accompaniment_id);
    }
    events
        .publish(
            "identity",
            "eva.identity.accompaniment.ended",
            &identity::AccompanimentEnded {
                accompaniment_id: accompaniments[0].clone(),
                person_id: people[0].clone(),
                structure_id: association.clone(),
                end_date: "2025-01-31".into(),
                occurred_at: Some(at("2025-01-31", 17)),
                ..Default::default()
            },
        )
        .await?;

    // Community: four questions in January in the Eure, three answered
    // after 2 h, 4 h and 10 h; three check-ins.
    for (i, hours) in [Some(2), Some(4), Some(10), None].into_iter().enumerate() {
        let question_id = Uuid::now_v7().to_string();
        let asked = at(&format!("2025-01-{:02}", 10 + i), 8);
        events
            .publish(
                "community",
                "eva.community.question.asked",
                &community::QuestionAsked {
                    question_id: question_id.clone(),
                    space_id: Uuid::now_v7().to_string(),
                    domains: vec!["mobilite".into()],
                    territory_code: "27".into(),
                    asked_at: Some(asked),
                },
            )
            .await?;
        if let Some(h) = hours {
            events
                .publish(
                    "community",
                    "eva.community.answer.posted",
                    &community::AnswerPosted {
                        answer_id: Uuid::now_v7().to_string(),
                        question_id,
                        posted_at: Some(prost_types::Timestamp {
                            seconds: asked.seconds + h * 3600,
                            nanos: 0,
                        }),
                    },
                )
                .await?;
        }
    }
    for (w, i, s) in [(3, 2, 4), (5, 4, 2), (1, 1, 5)] {
        events
            .publish(
                "community",
                "eva.community.checkin.submitted",
                &community::CheckinSubmitted {
                    month: "2025-01".into(),
                    checkin: Some(community::Checkin {
                        workload: w,
                        isolation: i,
                        support: s,
                    }),
                    departement: "27".into(),
                },
            )
            .await?;
    }

    // Every event applied, retries included: a batch retried after a busy
    // database comes back after later ones, so a month could still be short.
    events
        .settled("statistics-", Duration::from_secs(60))
        .await?;

    // --- Figures computed by hand ---
    let (_, v) = get(&sb, "/api/v1/statistics/indicators/structures", &analyst).await?;
    assert_eq!(v["rule"]["threshold"], THRESHOLD, "{v}");
    let c = until_cells(&sb, &analyst, QUERIES[0], |c| {
        has(c, &[("month", "2025-03")])
    })
    .await?;
    assert_eq!(
        published(cell(&c, &[("month", "2025-01")])),
        (Some(4), None)
    );
    assert_eq!(
        published(cell(&c, &[("month", "2025-02")])),
        (Some(3), None)
    );
    assert_eq!(
        published(cell(&c, &[("month", "2025-03")])),
        (Some(3), None)
    );

    // Barriers over January–February: 7 diagnostics; mobilité a barrier
    // for A, B, D, E, G (5/7), santé for B, C, E (3/7).
    let c = cells(&sb, &analyst, QUERIES[2]).await?;
    assert_eq!(
        published(cell(&c, &[("domain", "mobilite")])),
        (Some(5), Some(71.4))
    );
    assert_eq!(
        published(cell(&c, &[("domain", "sante")])),
        (Some(3), Some(42.9))
    );
    // By level, every cell is small: mobilité frein 3 / majeur 2 (2 < 3
    // hides 3 too), santé 2 / 1.
    let c = cells(&sb, &analyst, QUERIES[3]).await?;
    assert!(
        c.iter()
            .all(|x| x["suppressed"] == true && x["count"].is_null()),
        "{c:#?}"
    );

    // Resolution in March: improved A·permis, B·permis, C·santé (3 of 6);
    // unchanged 2 and worsened 1 hidden together (2 + 1 = 3).
    let c = until_cells(&sb, &analyst, QUERIES[4], |c| !c.is_empty()).await?;
    assert_eq!(
        published(cell(&c, &[("evolution", "ameliore")])),
        (Some(3), Some(50.0))
    );
    assert_eq!(
        published(cell(&c, &[("evolution", "inchange")])),
        (None, None)
    );
    assert_eq!(
        published(cell(&c, &[("evolution", "degrade")])),
        (None, None)
    );

    // Gap in January, items rated by both: same 3 (A·santé, B·permis,
    // C·santé), person less severe 2 (A·permis, D·permis), more severe 1.
    let c = cells(&sb, &analyst, QUERIES[5]).await?;
    assert_eq!(
        published(cell(&c, &[("gap", "identique")])),
        (Some(3), Some(50.0))
    );
    assert_eq!(
        published(cell(&c, &[("gap", "personne_moins_severe")])),
        (None, None)
    );
    assert_eq!(
        published(cell(&c, &[("gap", "personne_plus_severe")])),
        (None, None)
    );

    // Referrals: 7 sent association → partner.
    let c = until_cells(&sb, &analyst, QUERIES[6], |c| {
        c.first().is_some_and(|x| x["count"] == 7)
    })
    .await?;
    let flow = cell(
        &c,
        &[
            ("from_structure_kind", "association"),
            ("to_structure_kind", "partner"),
        ],
    );
    assert_eq!(published(flow), (Some(7), None));
    // Decided 6, accepted 3.
    let c = cells(&sb, &analyst, QUERIES[7]).await?;
    assert_eq!(published(&c[0]), (Some(6), Some(50.0)));
    // Refusals 2 + 1: both hidden.
    let c = cells(&sb, &analyst, QUERIES[8]).await?;
    assert!(c.iter().all(|x| x["suppressed"] == true), "{c:#?}");
    // First answers after 2, 20, 1, 1, 31, 1 days; outcomes after 45, 20,
    // 47, 30, 1, 31 days.
    let c = until_cells(&sb, &analyst, QUERIES[9], |c| {
        has(c, &[("measure", "outcome_p90")])
            && cell(c, &[("measure", "outcome_p90")])["value"] == 47.0
    })
    .await?;
    assert_eq!(
        published(cell(&c, &[("measure", "first_answer_median")])),
        (Some(6), Some(1.0))
    );
    assert_eq!(
        published(cell(&c, &[("measure", "first_answer_p90")])),
        (Some(6), Some(31.0))
    );
    assert_eq!(
        published(cell(&c, &[("measure", "outcome_median")])),
        (Some(6), Some(30.0))
    );
    assert_eq!(
        published(cell(&c, &[("measure", "outcome_p90")])),
        (Some(6), Some(47.0))
    );
    // Of 7 sent, answered within 15 days: 4; within 30: 5.
    let c = cells(&sb, &analyst, QUERIES[10]).await?;
    assert_eq!(
        published(cell(&c, &[("measure", "within_15_days")])),
        (Some(7), Some(57.1))
    );
    assert_eq!(
        published(cell(&c, &[("measure", "within_30_days")])),
        (Some(7), Some(71.4))
    );

    // Accompaniments: 4 started in January, 1 in February (hidden, and
    // the period total 5 is public, so January is hidden with it).
    let c = until_cells(&sb, &analyst, QUERIES[11], |c| c.len() == 2).await?;
    assert!(c.iter().all(|x| x["suppressed"] == true), "{c:#?}");
    let c = cells(
        &sb,
        &analyst,
        "accompaniments_started?from=2025-01&to=2025-02",
    )
    .await?;
    assert_eq!(published(&c[0]), (Some(5), None));
    // People: January the first four, February the last four (the first
    // left on 31 January).
    let c = until_cells(&sb, &analyst, QUERIES[12], |c| {
        has(c, &[("month", "2025-02")]) && cell(c, &[("month", "2025-02")])["count"] == 4
    })
    .await?;
    assert_eq!(
        published(cell(&c, &[("month", "2025-01")])),
        (Some(4), None)
    );

    // Community: 4 questions, 3 answered; median 4 h; check-ins.
    let c = until_cells(&sb, &analyst, QUERIES[13], |c| {
        c.first().is_some_and(|x| x["count"] == 4)
    })
    .await?;
    assert_eq!(published(&c[0]), (Some(4), Some(75.0)));
    let c = until_cells(&sb, &analyst, QUERIES[14], |c| {
        c.first().is_some_and(|x| x["count"] == 3)
    })
    .await?;
    assert_eq!(published(&c[0]), (Some(3), Some(4.0)));
    let c = until_cells(&sb, &analyst, QUERIES[15], |c| c.len() == 4).await?;
    assert_eq!(
        published(cell(&c, &[("measure", "workload")])),
        (Some(3), Some(3.0))
    );
    assert_eq!(
        published(cell(&c, &[("measure", "isolation")])),
        (Some(3), Some(2.33))
    );
    assert_eq!(
        published(cell(&c, &[("measure", "support")])),
        (Some(3), Some(3.67))
    );
    assert_eq!(
        published(cell(&c, &[("measure", "index")])),
        (Some(3), Some(3.44))
    );

    // --- Objections: D's diagnostics and one accompanied person leave ---
    events
        .publish(
            "diagnostics",
            "eva.diagnostics.pseudonym.exclusion_changed",
            &diagnostics::StatisticsExclusionChanged {
                statistics_pseudonym: "D".into(),
                excluded: true,
                changed_at: Some(at("2025-04-01", 9)),
            },
        )
        .await?;
    events
        .publish(
            "identity",
            "eva.identity.person.statistics_objection_changed",
            &identity::StatisticsObjectionChanged {
                person_id: people[1].clone(),
                objected: true,
                changed_at: Some(at("2025-04-01", 9)),
            },
        )
        .await?;
    let c = until_cells(&sb, &analyst, QUERIES[0], |c| {
        cell(c, &[("month", "2025-01")])["count"] == 3
    })
    .await?;
    assert_eq!(
        published(cell(&c, &[("month", "2025-02")])),
        (Some(3), None)
    );
    let c = until_cells(&sb, &analyst, QUERIES[12], |c| {
        has(c, &[("month", "2025-02")]) && cell(c, &[("month", "2025-02")])["count"] == 3
    })
    .await?;
    assert_eq!(
        published(cell(&c, &[("month", "2025-01")])),
        (Some(3), None)
    );

    // --- Every event once more: nothing changes ---
    let before = snapshot(&sb, &analyst).await?;
    events.replay_all().await?;
    // A marker behind the replays on each stream: once it counts, the
    // replays before it have been applied.
    events
        .publish(
            "diagnostics",
            "eva.diagnostics.diagnostic.shared",
            &shared("H", "2024-12-01", &evreux, (L::Frein, u), (L::Frein, u)),
        )
        .await?;
    let mut expected = before.clone();
    expected[0] = until_cells(&sb, &analyst, QUERIES[0], |c| {
        has(c, &[("month", "2024-12")])
    })
    .await?;
    referral(&mut events, &association, &partner, "2024-12-02", &[]).await?;
    let (marker, marker_person) = (Uuid::now_v7().to_string(), Uuid::now_v7().to_string());
    until_cells(
        &sb,
        &analyst,
        "referral_flows?from=2024-12&to=2024-12",
        |c| !c.is_empty(),
    )
    .await?;
    events
        .publish(
            "identity",
            "eva.identity.accompaniment.started",
            &identity::AccompanimentStarted {
                accompaniment_id: marker.clone(),
                person_id: marker_person.clone(),
                structure_id: association.clone(),
                start_date: "2024-12-01".into(),
                occurred_at: Some(at("2024-12-01", 9)),
                ..Default::default()
            },
        )
        .await?;
    events
        .publish(
            "identity",
            "eva.identity.accompaniment.ended",
            &identity::AccompanimentEnded {
                accompaniment_id: marker.clone(),
                person_id: marker_person.clone(),
                structure_id: association.clone(),
                end_date: "2024-12-20".into(),
                occurred_at: Some(at("2024-12-20", 9)),
                ..Default::default()
            },
        )
        .await?;
    until_cells(
        &sb,
        &analyst,
        "accompaniments_started?from=2024-12&to=2024-12",
        |c| !c.is_empty(),
    )
    .await?;
    // Ended in December, the marker's person is not among January's.
    until_cells(&sb, &analyst, QUERIES[12], |c| c == before[12].as_slice()).await?;
    events
        .publish(
            "community",
            "eva.community.checkin.submitted",
            &community::CheckinSubmitted {
                month: "2024-12".into(),
                checkin: Some(community::Checkin {
                    workload: 3,
                    isolation: 3,
                    support: 3,
                }),
                departement: "27".into(),
            },
        )
        .await?;
    until_cells(&sb, &analyst, "qvt_index?from=2024-12&to=2024-12", |c| {
        !c.is_empty()
    })
    .await?;
    events
        .settled("statistics-", Duration::from_secs(60))
        .await?;
    let after = snapshot(&sb, &analyst).await?;
    assert_eq!(after, expected, "replaying every event changed the figures");

    // --- A rebuild from the streams gives the same figures ---
    let (s, v) = post(
        &sb,
        "/api/v1/statistics/rebuilds",
        &operator,
        serde_json::json!({}),
    )
    .await?;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let id = v["rebuild_id"].as_str().context("rebuild id")?.to_owned();
    // Old figures answer while it runs.
    assert_eq!(snapshot(&sb, &analyst).await?, after);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (s, v) = get(&sb, &format!("/api/v1/statistics/rebuilds/{id}"), &operator).await?;
        assert_eq!(s, StatusCode::OK, "{v}");
        if v["state"] == "completed" {
            assert!(v["events_applied"].as_i64().unwrap_or(0) > 50, "{v}");
            break;
        }
        if std::time::Instant::now() > deadline {
            bail!("rebuild not completed: {v}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        snapshot(&sb, &analyst).await?,
        after,
        "the rebuild changed the figures"
    );
    // An analyst may not rebuild.
    let (s, _) = post(
        &sb,
        "/api/v1/statistics/rebuilds",
        &analyst,
        serde_json::json!({}),
    )
    .await?;
    assert_eq!(s, StatusCode::FORBIDDEN);
    sb.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn figures_from_events_sqlite() -> Result<()> {
    story(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread")]
async fn figures_from_events_postgres() -> Result<()> {
    story(Backend::Postgres).await
}

/// Records and shares a diagnostic through the gateway, as a counselor does.
pub(crate) async fn shared_diagnostic(
    sb: &Sandbox,
    counselor: &str,
    structure_id: &str,
    person_id: &str,
) -> Result<()> {
    let d = until(
        sb,
        Method::POST,
        &format!("/api/v1/people/{person_id}/diagnostics"),
        counselor,
        Some(serde_json::json!({ "structure_id": structure_id })),
        |s, _| s == StatusCode::CREATED,
    )
    .await?;
    let id = d["id"].as_str().context("diagnostic id")?.to_owned();
    let (s, v) = patch(
        sb,
        &format!("/api/v1/diagnostics/{id}"),
        counselor,
        serde_json::json!({ "ratings": [{ "item_id": "mobilite.permis", "level": "frein" }] }),
    )
    .await?;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = post(
        sb,
        &format!("/api/v1/diagnostics/{id}/share"),
        counselor,
        serde_json::json!({}),
    )
    .await?;
    assert_eq!(s, StatusCode::OK, "{v}");
    Ok(())
}

/// A person's objection travels identity → diagnostics → statistics: their
/// diagnostics stop counting, and count again once it is lifted.
#[tokio::test(flavor = "multi_thread")]
async fn an_objection_removes_a_persons_diagnostics_from_the_figures() -> Result<()> {
    let sb =
        Sandbox::start_with(Backend::Sqlite, |c| c.statistics.disclosure_threshold = 2).await?;
    let operator = sb.token("op", vec![Role::Operator], vec![]).await?;
    let analyst = sb.token("analyst", vec![Role::Analyst], vec![]).await?;
    let a = structure(&sb, &operator, "Asso A", &siret(11), "association").await?;
    let counselor = sb
        .token("counselor-a", vec![Role::Counselor], vec![a.clone()])
        .await?;
    let ana = person(&sb, &counselor, &a, "Ana", "Zabalveytia").await?;
    let bruno = person(&sb, &counselor, &a, "Bruno", "Lefèvre").await?;
    shared_diagnostic(&sb, &counselor, &a, &ana).await?;
    shared_diagnostic(&sb, &counselor, &a, &bruno).await?;
    let total = |want: Option<i64>| {
        let (sb, analyst) = (&sb, analyst.clone());
        async move {
            until_cells(sb, &analyst, "diagnostics_shared", |c| {
                c.len() == 1 && c[0]["count"].as_i64() == want
            })
            .await
        }
    };
    total(Some(2)).await?;
    let path = format!("/api/v1/people/{ana}/statistics-objection");
    let me = person_token(&sb, &ana).await?;
    let objected = serde_json::json!({ "objected": true });
    let (s, v) = send(&sb, Method::PUT, &path, &me, Some(&objected)).await?;
    assert_eq!(s, StatusCode::OK, "{v}");
    // One diagnostic left: under the threshold of 2, hidden.
    let c = total(None).await?;
    assert_eq!(c[0]["suppressed"], true);
    let lifted = serde_json::json!({ "objected": false });
    let (s, v) = send(&sb, Method::PUT, &path, &me, Some(&lifted)).await?;
    assert_eq!(s, StatusCode::OK, "{v}");
    total(Some(2)).await?;
    sb.stop().await
}
