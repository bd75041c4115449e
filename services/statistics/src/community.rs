//! Counselors' community, from `eva.community.*`: questions asked and how
//! fast they are answered, and the anonymous quality-of-work-life
//! check-ins. Events carry no author: nothing here is about a person.

use std::collections::BTreeMap;

use async_trait::async_trait;
use eva_platform::consumer::{ApplyError, Envelope};
use eva_platform::db::{DbError, Tx};
use eva_platform::federation::{self, StatisticsFeed};
use eva_platform::on_backend;
use eva_proto::community::v1::{AnswerPosted, CheckinSubmitted, QuestionAsked};

use crate::catalogue::IndicatorId;
use crate::feed::{Feed, micros};
use crate::model::{Dim, Figure, Query, TerritoryLevel, cell_keys, month_of_us, percent, quantile};
use crate::store::{Store, departement_of};

/// Tables of this module holding a generation's rows.
pub const TABLES: &[&str] = &[
    "community_questions",
    "community_answers",
    "community_checkins",
];

/// The domain key of a question about no domain in particular.
pub const NO_DOMAIN: &str = "sans_domaine";
/// The département key of a question or check-in without a known one.
pub const UNKNOWN_DEPARTEMENT: &str = "inconnu";
/// The QVT indicator's measures.
const QVT_MEASURES: [&str; 4] = ["index", "workload", "isolation", "support"];

const ASKED: &str = "eva.community.question.asked";
const POSTED: &str = "eva.community.answer.posted";
const CHECKIN: &str = "eva.community.checkin.submitted";

/// `eva.community.{question.asked, answer.posted, checkin.submitted}` →
/// `community_questions`, `community_answers`, `community_checkins`.
pub struct CommunityFeed;

#[async_trait]
impl Feed for CommunityFeed {
    fn source(&self) -> StatisticsFeed {
        federation::statistics::COMMUNITY
    }

    async fn apply(
        &self,
        tx: &mut Tx,
        gens: &[i64],
        events: &[Envelope],
    ) -> Result<(), ApplyError> {
        for event in events {
            match event.event_type.as_str() {
                ASKED => {
                    let q = question(event)?;
                    Store::note_territories(tx, "", "", &q.departement).await?;
                    for &generation in gens {
                        insert_question(tx, generation, &q).await?;
                    }
                }
                POSTED => {
                    let e: AnswerPosted = event.decode()?;
                    if e.answer_id.is_empty() || e.question_id.is_empty() {
                        return Err(ApplyError::Permanent(format!(
                            "{POSTED}: answer_id and question_id required"
                        )));
                    }
                    let at = micros(e.posted_at, event);
                    for &generation in gens {
                        insert_answer(tx, generation, &e.answer_id, &e.question_id, at).await?;
                    }
                }
                CHECKIN => {
                    let c = checkin(event)?;
                    Store::note_territories(tx, "", "", &c.departement).await?;
                    for &generation in gens {
                        insert_checkin(tx, generation, &c).await?;
                    }
                }
                _ => continue,
            }
        }
        Ok(())
    }
}

/// The département of a territory code: a commune's (5 characters), a
/// département itself (2, or 3 overseas); '' when empty or of another
/// level (an EPCI's SIREN says no single département).
pub fn departement_from(code: &str) -> String {
    let code = code.trim().to_ascii_uppercase();
    if !code.chars().all(|c| c.is_ascii_alphanumeric()) {
        return String::new();
    }
    let overseas = code.starts_with("97") || code.starts_with("98");
    match code.len() {
        5 => departement_of(&code),
        2 if !overseas => code,
        3 if overseas => code,
        _ => String::new(),
    }
}

struct Question {
    question_id: String,
    month: String,
    departement: String,
    /// Distinct domain ids, sorted, as a JSON array.
    domains: String,
    asked_at_us: i64,
}

fn question(event: &Envelope) -> Result<Question, ApplyError> {
    let e: QuestionAsked = event.decode()?;
    if e.question_id.is_empty() {
        return Err(ApplyError::Permanent(format!(
            "{ASKED}: question_id required"
        )));
    }
    let mut domains: Vec<String> = e
        .domains
        .into_iter()
        .map(|d| d.trim().to_owned())
        .filter(|d| !d.is_empty())
        .collect();
    domains.sort();
    domains.dedup();
    let asked_at_us = micros(e.asked_at, event);
    Ok(Question {
        question_id: e.question_id,
        month: month_of_us(asked_at_us),
        departement: departement_from(&e.territory_code),
        domains: serde_json::to_string(&domains)
            .map_err(|e| ApplyError::Permanent(e.to_string()))?,
        asked_at_us,
    })
}

struct Checkin {
    event_id: String,
    month: String,
    departement: String,
    workload: i64,
    isolation: i64,
    support: i64,
}

fn checkin(event: &Envelope) -> Result<Checkin, ApplyError> {
    let e: CheckinSubmitted = event.decode()?;
    let answers = e
        .checkin
        .ok_or_else(|| ApplyError::Permanent(format!("{CHECKIN}: checkin required")))?;
    let score = |name: &str, v: i32| {
        if (1..=5).contains(&v) {
            Ok(i64::from(v))
        } else {
            Err(ApplyError::Permanent(format!(
                "{CHECKIN}: {name} {v} outside 1..=5"
            )))
        }
    };
    let month = if e.month.is_empty() {
        month_of_us(micros(None, event))
    } else if is_month(&e.month) {
        e.month
    } else {
        return Err(ApplyError::Permanent(format!(
            "{CHECKIN}: month {:?} is not YYYY-MM",
            e.month
        )));
    };
    Ok(Checkin {
        event_id: event.id.to_string(),
        month,
        departement: departement_from(&e.departement),
        workload: score("workload", answers.workload)?,
        isolation: score("isolation", answers.isolation)?,
        support: score("support", answers.support)?,
    })
}

fn is_month(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 7
        && b[4] == b'-'
        && b[..4].iter().chain(&b[5..]).all(u8::is_ascii_digit)
        && matches!(s[5..].parse::<u8>(), Ok(1..=12))
}

/// A question, answered already if one of its answers came first.
async fn insert_question(tx: &mut Tx, generation: i64, q: &Question) -> Result<(), DbError> {
    on_backend!(tx.conn(), c => sqlx::query(
        "INSERT INTO community_questions \
         (gen, question_id, month, departement, domains, asked_at_us, first_answer_at_us) \
         VALUES ($1, $2, $3, $4, $5, $6, \
         (SELECT MIN(posted_at_us) FROM community_answers WHERE gen = $1 AND question_id = $2)) \
         ON CONFLICT (gen, question_id) DO NOTHING",
    )
    .bind(generation)
    .bind(&q.question_id)
    .bind(&q.month)
    .bind(&q.departement)
    .bind(&q.domains)
    .bind(q.asked_at_us)
    .execute(&mut *c)
    .await
    .map(|_| ()))?;
    Ok(())
}

/// An answer, kept so that its question, when it arrives, finds it; the
/// earliest answer wins whatever the order.
async fn insert_answer(
    tx: &mut Tx,
    generation: i64,
    answer_id: &str,
    question_id: &str,
    at_us: i64,
) -> Result<(), DbError> {
    on_backend!(tx.conn(), c => sqlx::query(
        "INSERT INTO community_answers (gen, answer_id, question_id, posted_at_us) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (gen, answer_id) DO NOTHING",
    )
    .bind(generation)
    .bind(answer_id)
    .bind(question_id)
    .bind(at_us)
    .execute(&mut *c)
    .await
    .map(|_| ()))?;
    on_backend!(tx.conn(), c => sqlx::query(
        "UPDATE community_questions SET first_answer_at_us = $3 \
         WHERE gen = $1 AND question_id = $2 \
         AND (first_answer_at_us IS NULL OR first_answer_at_us > $3)",
    )
    .bind(generation)
    .bind(question_id)
    .bind(at_us)
    .execute(&mut *c)
    .await
    .map(|_| ()))?;
    Ok(())
}

/// A check-in, keyed by its event id.
async fn insert_checkin(tx: &mut Tx, generation: i64, k: &Checkin) -> Result<(), DbError> {
    on_backend!(tx.conn(), c => sqlx::query(
        "INSERT INTO community_checkins \
         (gen, event_id, month, departement, workload, isolation, support) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (gen, event_id) DO NOTHING",
    )
    .bind(generation)
    .bind(&k.event_id)
    .bind(&k.month)
    .bind(&k.departement)
    .bind(k.workload)
    .bind(k.isolation)
    .bind(k.support)
    .execute(&mut *c)
    .await
    .map(|_| ()))?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct QuestionRow {
    month: String,
    departement: String,
    domains: String,
    asked_at_us: i64,
    first_answer_at_us: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct CheckinRow {
    month: String,
    departement: String,
    workload: i64,
    isolation: i64,
    support: i64,
}

/// Whether a département is in the query's territory (these indicators
/// are restricted by département only).
fn in_territory(q: &Query, departement: &str) -> bool {
    q.territory
        .as_ref()
        .is_none_or(|t| t.level == TerritoryLevel::Departement && t.code == departement)
}

fn departement_key(departement: &str) -> String {
    if departement.is_empty() {
        UNKNOWN_DEPARTEMENT.to_owned()
    } else {
        departement.to_owned()
    }
}

/// Figures of the community indicators for `q`.
pub async fn figures(store: &Store, id: IndicatorId, q: &Query) -> Result<Vec<Figure>, DbError> {
    match id {
        IndicatorId::CommunityQuestions | IndicatorId::CommunityResponseTime => {
            let rows = questions(store, q).await?;
            Ok(if id == IndicatorId::CommunityQuestions {
                asked(q, &rows)
            } else {
                response_time(q, &rows)
            })
        }
        IndicatorId::QvtIndex => Ok(qvt(q, &checkins(store, q).await?)),
        _ => Ok(Vec::new()),
    }
}

async fn questions(store: &Store, q: &Query) -> Result<Vec<QuestionRow>, DbError> {
    let mut h = store.db().acquire().await?;
    let rows = on_backend!(h.conn(), c => sqlx::query_as::<_, QuestionRow>(
        "SELECT month, departement, domains, asked_at_us, first_answer_at_us \
         FROM community_questions WHERE gen = $1 AND month >= $2 AND month <= $3",
    )
    .bind(q.generation)
    .bind(&q.from_month)
    .bind(&q.to_month)
    .fetch_all(&mut *c)
    .await)?;
    Ok(rows
        .into_iter()
        .filter(|r| in_territory(q, &r.departement))
        .collect())
}

async fn checkins(store: &Store, q: &Query) -> Result<Vec<CheckinRow>, DbError> {
    let mut h = store.db().acquire().await?;
    let rows = on_backend!(h.conn(), c => sqlx::query_as::<_, CheckinRow>(
        "SELECT month, departement, workload, isolation, support \
         FROM community_checkins WHERE gen = $1 AND month >= $2 AND month <= $3",
    )
    .bind(q.generation)
    .bind(&q.from_month)
    .bind(&q.to_month)
    .fetch_all(&mut *c)
    .await)?;
    Ok(rows
        .into_iter()
        .filter(|r| in_territory(q, &r.departement))
        .collect())
}

/// The cells a question falls in: one per domain when grouped by domain
/// (a question about two domains counts in each).
fn question_cells(q: &Query, r: &QuestionRow) -> Vec<Vec<String>> {
    let departement = departement_key(&r.departement);
    let domains: Vec<String> = if q.groups_by(Dim::Domain) {
        let listed: Vec<String> = serde_json::from_str(&r.domains).unwrap_or_default();
        if listed.is_empty() {
            vec![NO_DOMAIN.to_owned()]
        } else {
            listed
        }
    } else {
        vec![String::new()]
    };
    domains
        .into_iter()
        .map(|domain| {
            cell_keys(q, &r.month, |d| match d {
                Dim::Departement => departement.clone(),
                Dim::Domain => domain.clone(),
                _ => String::new(),
            })
        })
        .collect()
}

/// Questions asked (count) and the share answered (value, %); the number
/// answered is a guard.
fn asked(q: &Query, rows: &[QuestionRow]) -> Vec<Figure> {
    let mut cells: BTreeMap<Vec<String>, (i64, i64)> = BTreeMap::new();
    for r in rows {
        for keys in question_cells(q, r) {
            let cell = cells.entry(keys).or_default();
            cell.0 += 1;
            cell.1 += i64::from(r.first_answer_at_us.is_some());
        }
    }
    cells
        .into_iter()
        .map(|(keys, (n, answered))| Figure {
            keys,
            count: n,
            value: percent(answered, n),
            guards: vec![answered],
        })
        .collect()
}

/// Questions answered (count) and the median hours to the first answer.
fn response_time(q: &Query, rows: &[QuestionRow]) -> Vec<Figure> {
    let mut cells: BTreeMap<Vec<String>, Vec<f64>> = BTreeMap::new();
    for r in rows {
        let Some(first) = r.first_answer_at_us else {
            continue;
        };
        // An answer stamped before its question (clocks differ) counts as
        // immediate.
        let hours = (first - r.asked_at_us).max(0) as f64 / 3_600_000_000.0;
        for keys in question_cells(q, r) {
            cells.entry(keys).or_default().push(hours);
        }
    }
    cells
        .into_iter()
        .map(|(keys, mut hours)| {
            hours.sort_by(f64::total_cmp);
            Figure {
                keys,
                count: hours.len() as i64,
                value: quantile(&hours, 0.5).map(|m| (m * 10.0).round() / 10.0),
                guards: Vec::new(),
            }
        })
        .collect()
}

/// Check-ins (count) and the mean of each measure, 2 decimals.
fn qvt(q: &Query, rows: &[CheckinRow]) -> Vec<Figure> {
    // Per cell: check-ins, and the sum of three times the measure (an
    // integer, so the order of rows cannot change a mean).
    let mut cells: BTreeMap<Vec<String>, (i64, i64)> = BTreeMap::new();
    let measures: &[&str] = if q.groups_by(Dim::Measure) {
        &QVT_MEASURES
    } else {
        &QVT_MEASURES[..1]
    };
    for r in rows {
        let departement = departement_key(&r.departement);
        for &m in measures {
            let thrice = match m {
                "index" => (6 - r.workload) + (6 - r.isolation) + r.support,
                "workload" => 3 * r.workload,
                "isolation" => 3 * r.isolation,
                _ => 3 * r.support,
            };
            let keys = cell_keys(q, &r.month, |d| match d {
                Dim::Departement => departement.clone(),
                Dim::Measure => m.to_owned(),
                _ => String::new(),
            });
            let cell = cells.entry(keys).or_default();
            cell.0 += 1;
            cell.1 += thrice;
        }
    }
    cells
        .into_iter()
        .map(|(keys, (n, sum3))| Figure {
            keys,
            count: n,
            value: Some((sum3 as f64 / (3 * n) as f64 * 100.0).round() / 100.0),
            guards: Vec::new(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    /// The events it tells apart are the subjects it subscribes to (and the hub copies).
    #[test]
    fn reads_what_it_applies() {
        let read = eva_platform::federation::statistics::COMMUNITY.subjects;
        assert_eq!(read, [super::ASKED, super::POSTED, super::CHECKIN]);
    }
}
