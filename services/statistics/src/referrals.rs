//! Referrals, from `eva.referrals.referral.*`: flows between structure
//! types, acceptance, refusal reasons, response times.
//!
//! One row per referral holds the times that matter (sent, first answer,
//! decision, outcome), each the earliest seen, so the row is the same
//! whatever order its events arrive in and however often. The person is
//! only a pseudonym (see [`crate::people`]), used to honour objections and
//! erasure.

use std::collections::BTreeMap;

use async_trait::async_trait;
use eva_platform::consumer::{ApplyError, Envelope};
use eva_platform::db::{DbError, Handle, Tx};
use eva_platform::federation::{self, StatisticsFeed};
use eva_platform::on_backend;
use eva_proto::referrals::v1::{
    ReferralSent, ReferralStatus, ReferralStatusChanged, RefusalReason,
};

use crate::catalogue::IndicatorId;
use crate::feed::{Feed, enum_code, micros};
use crate::model::{Dim, Figure, Query, cell_keys, month_of_us, percent, quantile};
use crate::people::{
    Pseudonyms, UNKNOWN, lock_pseudonym, placement, structure_in_territory, structure_value,
};
use crate::store::Store;
use crate::structures::{self, StructureRow};

/// Tables of this source holding a generation's rows.
pub const TABLES: &[&str] = &["referrals"];

const SENT: &str = "eva.referrals.referral.sent";
const REMINDED: &str = "eva.referrals.referral.reminded";
const STATUS_PREFIX: &str = "eva.referrals.referral.";

const DAY_US: f64 = 86_400_000_000.0;

/// `eva.referrals.referral.*` → `referrals`.
pub struct ReferralsFeed {
    pub pseudonyms: Pseudonyms,
}

/// What one event says about a referral; `None` where it says nothing.
#[derive(Debug, Default)]
struct ReferralFact {
    referral_id: String,
    pseudonym: String,
    sender_structure_id: String,
    target_structure_id: String,
    sent_at_us: i64,
    first_answer_at_us: Option<i64>,
    /// `acceptee` or `refusee`, with its time and, for a refusal, its reason.
    decision: Option<(String, i64)>,
    refusal_reason: Option<String>,
    /// The final state reached, with its time.
    outcome: Option<(String, i64)>,
}

fn status_code(s: ReferralStatus) -> Option<String> {
    enum_code(Some(s.as_str_name()), "REFERRAL_STATUS_")
}

/// As in the referrals service's state machine (`referral/state.rs`): only
/// the receiver moves a referral to these, and the first such move is its
/// first answer.
fn is_answer(s: ReferralStatus) -> bool {
    matches!(
        s,
        ReferralStatus::ALEtude | ReferralStatus::Acceptee | ReferralStatus::Refusee
    )
}

/// The states no move leaves (`is_final` in the referrals service).
fn is_final(s: ReferralStatus) -> bool {
    matches!(
        s,
        ReferralStatus::Refusee
            | ReferralStatus::Expiree
            | ReferralStatus::Terminee
            | ReferralStatus::Abandonnee
            | ReferralStatus::Annulee
            | ReferralStatus::DeclineeParLaPersonne
    )
}

fn required(field: &str, value: &str) -> Result<(), ApplyError> {
    if value.is_empty() {
        return Err(ApplyError::Permanent(format!("{field} missing")));
    }
    Ok(())
}

impl ReferralsFeed {
    fn fact(&self, event: &Envelope) -> Result<Option<ReferralFact>, ApplyError> {
        let t = event.event_type.as_str();
        if t == SENT {
            let e: ReferralSent = event.decode()?;
            required("referral_id", &e.referral_id)?;
            required("person_id", &e.person_id)?;
            return Ok(Some(ReferralFact {
                pseudonym: self.pseudonyms.of(&e.person_id),
                sent_at_us: micros(e.sent_at, event),
                referral_id: e.referral_id,
                sender_structure_id: e.sender_structure_id,
                target_structure_id: e.target_structure_id,
                ..ReferralFact::default()
            }));
        }
        if t == REMINDED || !t.starts_with(STATUS_PREFIX) {
            return Ok(None);
        }
        let e: ReferralStatusChanged = event.decode()?;
        required("referral_id", &e.referral_id)?;
        required("person_id", &e.person_id)?;
        let to = ReferralStatus::try_from(e.to_status)
            .ok()
            .filter(|s| *s != ReferralStatus::Unspecified)
            .ok_or_else(|| ApplyError::Permanent(format!("{t}: to_status {}", e.to_status)))?;
        let code = status_code(to).unwrap_or_default();
        let at = micros(e.occurred_at, event);
        let decided = matches!(to, ReferralStatus::Acceptee | ReferralStatus::Refusee);
        Ok(Some(ReferralFact {
            pseudonym: self.pseudonyms.of(&e.person_id),
            // Carried so that a status read before the `sent` event still
            // places the referral; the earliest `sent_at` wins.
            sent_at_us: micros(e.sent_at, event),
            first_answer_at_us: is_answer(to).then_some(at),
            decision: decided.then(|| (code.clone(), at)),
            refusal_reason: (to == ReferralStatus::Refusee).then(|| {
                enum_code(
                    RefusalReason::try_from(e.refusal_reason)
                        .ok()
                        .map(|r| r.as_str_name()),
                    "REFUSAL_REASON_",
                )
                .unwrap_or_else(|| UNKNOWN.to_owned())
            }),
            outcome: is_final(to).then_some((code, at)),
            referral_id: e.referral_id,
            sender_structure_id: e.sender_structure_id,
            target_structure_id: e.target_structure_id,
        }))
    }
}

#[async_trait]
impl Feed for ReferralsFeed {
    fn source(&self) -> StatisticsFeed {
        federation::statistics::REFERRALS
    }

    async fn apply(
        &self,
        tx: &mut Tx,
        gens: &[i64],
        events: &[Envelope],
    ) -> Result<(), ApplyError> {
        for event in events {
            let Some(fact) = self.fact(event)? else {
                continue;
            };
            lock_pseudonym(tx, &fact.pseudonym).await?;
            for &generation in gens {
                record(tx, generation, &fact).await?;
            }
        }
        Ok(())
    }
}

/// Merges a fact into its referral's row. Every column converges: the
/// earliest `sent_at` (with its month), first answer, decision and outcome
/// win, ties broken by the code; the structures never change for a
/// referral; the pseudonym and the exclusion flag are set when the row is
/// created, then changed only by an objection or an erasure.
async fn record(tx: &mut Tx, generation: i64, f: &ReferralFact) -> Result<(), DbError> {
    let (pseudonym, excluded) = placement(tx, generation, &f.pseudonym, &f.referral_id).await?;
    let (decision, decided_at) = f.decision.clone().unzip();
    let (outcome, outcome_at) = f.outcome.clone().unzip();
    on_backend!(tx.conn(), c => sqlx::query(
        "INSERT INTO referrals (gen, referral_id, pseudonym, sender_structure_id, target_structure_id, \
             sent_month, sent_at_us, first_answer_at_us, decision, decided_at_us, refusal_reason, \
             outcome, outcome_at_us, excluded) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
         ON CONFLICT (gen, referral_id) DO UPDATE SET \
         sent_month = CASE WHEN excluded.sent_at_us < referrals.sent_at_us \
             THEN excluded.sent_month ELSE referrals.sent_month END, \
         sent_at_us = CASE WHEN excluded.sent_at_us < referrals.sent_at_us \
             THEN excluded.sent_at_us ELSE referrals.sent_at_us END, \
         first_answer_at_us = CASE WHEN referrals.first_answer_at_us IS NULL \
             OR excluded.first_answer_at_us < referrals.first_answer_at_us \
             THEN excluded.first_answer_at_us ELSE referrals.first_answer_at_us END, \
         decision = CASE WHEN excluded.decided_at_us IS NOT NULL AND (referrals.decided_at_us IS NULL \
             OR excluded.decided_at_us < referrals.decided_at_us \
             OR (excluded.decided_at_us = referrals.decided_at_us AND excluded.decision < referrals.decision)) \
             THEN excluded.decision ELSE referrals.decision END, \
         refusal_reason = CASE WHEN excluded.decided_at_us IS NOT NULL AND (referrals.decided_at_us IS NULL \
             OR excluded.decided_at_us < referrals.decided_at_us \
             OR (excluded.decided_at_us = referrals.decided_at_us AND excluded.decision < referrals.decision)) \
             THEN excluded.refusal_reason ELSE referrals.refusal_reason END, \
         decided_at_us = CASE WHEN excluded.decided_at_us IS NOT NULL AND (referrals.decided_at_us IS NULL \
             OR excluded.decided_at_us < referrals.decided_at_us) \
             THEN excluded.decided_at_us ELSE referrals.decided_at_us END, \
         outcome = CASE WHEN excluded.outcome_at_us IS NOT NULL AND (referrals.outcome_at_us IS NULL \
             OR excluded.outcome_at_us < referrals.outcome_at_us \
             OR (excluded.outcome_at_us = referrals.outcome_at_us AND excluded.outcome < referrals.outcome)) \
             THEN excluded.outcome ELSE referrals.outcome END, \
         outcome_at_us = CASE WHEN excluded.outcome_at_us IS NOT NULL AND (referrals.outcome_at_us IS NULL \
             OR excluded.outcome_at_us < referrals.outcome_at_us) \
             THEN excluded.outcome_at_us ELSE referrals.outcome_at_us END",
    )
    .bind(generation)
    .bind(&f.referral_id)
    .bind(&pseudonym)
    .bind(&f.sender_structure_id)
    .bind(&f.target_structure_id)
    .bind(month_of_us(f.sent_at_us))
    .bind(f.sent_at_us)
    .bind(f.first_answer_at_us)
    .bind(decision)
    .bind(decided_at)
    .bind(&f.refusal_reason)
    .bind(outcome)
    .bind(outcome_at)
    .bind(excluded)
    .execute(&mut *c)
    .await
    .map(|_| ()))?;
    Ok(())
}

/// A counted referral sent in the query's period.
#[derive(sqlx::FromRow)]
struct ReferralRow {
    sender_structure_id: String,
    target_structure_id: String,
    sent_month: String,
    sent_at_us: i64,
    first_answer_at_us: Option<i64>,
    decision: Option<String>,
    refusal_reason: Option<String>,
    outcome_at_us: Option<i64>,
}

impl ReferralRow {
    /// Days from sending to `at`, never negative (clocks of two services).
    fn days_to(&self, at: i64) -> f64 {
        (at - self.sent_at_us).max(0) as f64 / DAY_US
    }
}

/// Where a referral sits: the sender's territory and type, the target's type.
struct Placed<'a> {
    from: Option<&'a StructureRow>,
    to: Option<&'a StructureRow>,
}

impl Placed<'_> {
    fn value(&self, dim: Dim, reason: &str, measure: &str) -> String {
        match dim {
            Dim::ToStructureKind => structure_value(self.to, Dim::StructureKind),
            Dim::FromStructureKind | Dim::StructureKind => {
                structure_value(self.from, Dim::StructureKind)
            }
            Dim::RefusalReason => reason.to_owned(),
            Dim::Measure => measure.to_owned(),
            d => structure_value(self.from, d),
        }
    }
}

async fn rows(store: &Store, q: &Query) -> Result<Vec<ReferralRow>, DbError> {
    let mut h = store.db().acquire().await?;
    let rows = on_backend!(h.conn(), c => sqlx::query_as::<_, ReferralRow>(
        "SELECT sender_structure_id, target_structure_id, sent_month, sent_at_us, first_answer_at_us, \
             decision, refusal_reason, outcome_at_us \
         FROM referrals WHERE gen = $1 AND NOT excluded AND sent_month >= $2 AND sent_month <= $3",
    )
    .bind(q.generation)
    .bind(&q.from_month)
    .bind(&q.to_month)
    .fetch_all(&mut *c)
    .await)?;
    Ok(rows)
}

/// The time a delay is measured to.
type TimeOf = fn(&ReferralRow) -> Option<i64>;

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// The referral indicators, by month sent.
pub async fn figures(store: &Store, id: IndicatorId, q: &Query) -> Result<Vec<Figure>, DbError> {
    let structures = structures::all(store, q.generation).await?;
    let rows = rows(store, q).await?;
    let placed: Vec<(&ReferralRow, Placed<'_>)> = rows
        .iter()
        .map(|r| {
            let p = Placed {
                from: structures.get(&r.sender_structure_id),
                to: structures.get(&r.target_structure_id),
            };
            (r, p)
        })
        .filter(|(r, p)| q.covers(&r.sent_month) && structure_in_territory(p.from, q))
        .collect();
    let keys = |r: &ReferralRow, p: &Placed<'_>, reason: &str, measure: &str| {
        cell_keys(q, &r.sent_month, |d| p.value(d, reason, measure))
    };
    let figures = match id {
        IndicatorId::ReferralFlows => {
            let mut cells: BTreeMap<Vec<String>, i64> = BTreeMap::new();
            for (r, p) in &placed {
                *cells.entry(keys(r, p, "", "")).or_default() += 1;
            }
            cells
                .into_iter()
                .map(|(k, n)| Figure::count(k, n))
                .collect()
        }
        IndicatorId::ReferralAcceptance => {
            // (accepted, refused) per cell.
            let mut cells: BTreeMap<Vec<String>, (i64, i64)> = BTreeMap::new();
            for (r, p) in &placed {
                let Some(decision) = r.decision.as_deref() else {
                    continue;
                };
                let cell = cells.entry(keys(r, p, "", "")).or_default();
                if decision == "acceptee" {
                    cell.0 += 1;
                } else {
                    cell.1 += 1;
                }
            }
            cells
                .into_iter()
                .map(|(k, (accepted, refused))| Figure {
                    keys: k,
                    count: accepted + refused,
                    value: percent(accepted, accepted + refused),
                    guards: vec![accepted, refused],
                })
                .collect()
        }
        IndicatorId::ReferralRefusalReasons => {
            // A group is a cell without its reason.
            let at = q.group_by.iter().position(|d| *d == Dim::RefusalReason);
            let group_of = |k: &[String]| -> Vec<String> {
                k.iter()
                    .enumerate()
                    .filter(|(i, _)| Some(*i) != at)
                    .map(|(_, v)| v.clone())
                    .collect()
            };
            let mut cells: BTreeMap<Vec<String>, i64> = BTreeMap::new();
            let mut groups: BTreeMap<Vec<String>, i64> = BTreeMap::new();
            for (r, p) in &placed {
                if r.decision.as_deref() != Some("refusee") {
                    continue;
                }
                let reason = r.refusal_reason.as_deref().unwrap_or(UNKNOWN);
                let k = keys(r, p, reason, "");
                *groups.entry(group_of(&k)).or_default() += 1;
                *cells.entry(k).or_default() += 1;
            }
            cells
                .into_iter()
                .map(|(k, n)| {
                    let total = groups.get(&group_of(&k)).copied().unwrap_or(n);
                    Figure {
                        keys: k,
                        count: n,
                        value: percent(n, total),
                        guards: vec![total],
                    }
                })
                .collect()
        }
        IndicatorId::ReferralResponseTime => {
            let first_answer: TimeOf = |r| r.first_answer_at_us;
            let outcome: TimeOf = |r| r.outcome_at_us;
            let measures = [
                ("first_answer_median", first_answer, 0.5),
                ("first_answer_p90", first_answer, 0.9),
                ("outcome_median", outcome, 0.5),
                ("outcome_p90", outcome, 0.9),
            ];
            // Per cell: the quantile asked and the delays measured, in days.
            let mut cells: BTreeMap<Vec<String>, (f64, Vec<f64>)> = BTreeMap::new();
            for (measure, at_of, level) in measures {
                for (r, p) in &placed {
                    if let Some(at) = at_of(r) {
                        cells
                            .entry(keys(r, p, "", measure))
                            .or_insert_with(|| (level, Vec::new()))
                            .1
                            .push(r.days_to(at));
                    }
                }
            }
            cells
                .into_iter()
                .map(|(k, (level, mut days))| {
                    days.sort_by(f64::total_cmp);
                    Figure {
                        keys: k,
                        count: days.len() as i64,
                        value: quantile(&days, level).map(round1),
                        guards: Vec::new(),
                    }
                })
                .collect()
        }
        IndicatorId::ReferralAnsweredWithin => {
            // (sent, answered within) per cell.
            let mut cells: BTreeMap<Vec<String>, (i64, i64)> = BTreeMap::new();
            for (measure, days) in [("within_15_days", 15.0), ("within_30_days", 30.0)] {
                for (r, p) in &placed {
                    let cell = cells.entry(keys(r, p, "", measure)).or_default();
                    cell.0 += 1;
                    if r.first_answer_at_us.is_some_and(|at| r.days_to(at) <= days) {
                        cell.1 += 1;
                    }
                }
            }
            cells
                .into_iter()
                .map(|(k, (sent, within))| Figure {
                    keys: k,
                    count: sent,
                    value: percent(within, sent),
                    guards: vec![within],
                })
                .collect()
        }
        _ => Vec::new(),
    };
    Ok(figures)
}

/// A referral as statistics holds it, for the person's own export.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct HeldReferral {
    pub referral_id: String,
    pub sender_structure_id: String,
    pub target_structure_id: String,
    pub sent_month: String,
    pub decision: Option<String>,
    pub refusal_reason: Option<String>,
    pub outcome: Option<String>,
}

/// The referrals held under `pseudonym` in `generation`.
pub async fn held(
    h: &mut Handle,
    generation: i64,
    pseudonym: &str,
) -> Result<Vec<HeldReferral>, DbError> {
    let rows = on_backend!(h.conn(), c => sqlx::query_as::<_, HeldReferral>(
        "SELECT referral_id, sender_structure_id, target_structure_id, sent_month, decision, \
             refusal_reason, outcome FROM referrals WHERE gen = $1 AND pseudonym = $2 ORDER BY referral_id",
    )
    .bind(generation)
    .bind(pseudonym)
    .fetch_all(&mut *c)
    .await)?;
    Ok(rows)
}
