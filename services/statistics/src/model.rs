//! What a question to statistics is made of: dimensions, periods,
//! territories, and the raw figures a source computes before disclosure
//! control.

use std::fmt;

/// A dimension a figure can be grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dim {
    Month,
    Quarter,
    Year,
    Commune,
    Epci,
    Departement,
    StructureKind,
    Domain,
    Item,
    Level,
    Evolution,
    Gap,
    FromStructureKind,
    ToStructureKind,
    RefusalReason,
    Measure,
}

impl Dim {
    pub const ALL: [Dim; 16] = [
        Dim::Month,
        Dim::Quarter,
        Dim::Year,
        Dim::Commune,
        Dim::Epci,
        Dim::Departement,
        Dim::StructureKind,
        Dim::Domain,
        Dim::Item,
        Dim::Level,
        Dim::Evolution,
        Dim::Gap,
        Dim::FromStructureKind,
        Dim::ToStructureKind,
        Dim::RefusalReason,
        Dim::Measure,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Dim::Month => "month",
            Dim::Quarter => "quarter",
            Dim::Year => "year",
            Dim::Commune => "commune",
            Dim::Epci => "epci",
            Dim::Departement => "departement",
            Dim::StructureKind => "structure_kind",
            Dim::Domain => "domain",
            Dim::Item => "item",
            Dim::Level => "level",
            Dim::Evolution => "evolution",
            Dim::Gap => "gap",
            Dim::FromStructureKind => "from_structure_kind",
            Dim::ToStructureKind => "to_structure_kind",
            Dim::RefusalReason => "refusal_reason",
            Dim::Measure => "measure",
        }
    }

    pub fn parse(s: &str) -> Option<Dim> {
        Dim::ALL.into_iter().find(|d| d.name() == s)
    }

    /// A period dimension: its key is derived from a month.
    pub fn is_period(self) -> bool {
        matches!(self, Dim::Month | Dim::Quarter | Dim::Year)
    }

    /// What the dimension means, in French, for the data dictionary.
    pub fn description_fr(self) -> &'static str {
        match self {
            Dim::Month => "mois, AAAA-MM",
            Dim::Quarter => "trimestre, AAAA-T1 à AAAA-T4",
            Dim::Year => "année, AAAA",
            Dim::Commune => "code INSEE de la commune de la structure",
            Dim::Epci => "SIREN de l'EPCI de la structure",
            Dim::Departement => "code du département (27, 2A, 974…)",
            Dim::StructureKind => {
                "type de structure : aci, ei, ai, etti, eiti, association, ccas, partner, departement"
            }
            Dim::Domain => "domaine du référentiel (mobilite, sante…)",
            Dim::Item => "item du référentiel, dans son domaine",
            Dim::Level => "niveau de frein : frein ou frein_majeur",
            Dim::Evolution => {
                "évolution d'un item entre deux diagnostics : ameliore, inchange, degrade, nouvellement_aborde"
            }
            Dim::Gap => {
                "écart entre la cotation de la personne et celle du conseiller : personne_plus_severe, identique, personne_moins_severe"
            }
            Dim::FromStructureKind => "type de la structure qui oriente",
            Dim::ToStructureKind => "type de la structure qui reçoit (partner pour un partenaire)",
            Dim::RefusalReason => {
                "motif de refus : beneficiaire_injoignable, freins_peripheriques, session_complete, doublon, hors_criteres, autre"
            }
            Dim::Measure => "mesure publiée dans la case (voir l'indicateur)",
        }
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The key of a period dimension for a month `YYYY-MM`.
pub fn period_key(dim: Dim, month: &str) -> String {
    match dim {
        Dim::Year => month.get(..4).unwrap_or(month).to_owned(),
        Dim::Quarter => {
            let m: u32 = month.get(5..7).and_then(|m| m.parse().ok()).unwrap_or(1);
            format!("{}-T{}", month.get(..4).unwrap_or(month), m.div_ceil(3))
        }
        _ => month.to_owned(),
    }
}

/// The month `YYYY-MM` of a day `YYYY-MM-DD` (or of a month).
pub fn month_of(day: &str) -> String {
    day.get(..7).unwrap_or(day).to_owned()
}

/// The month `YYYY-MM`, in France, of a time in µs since the epoch.
pub fn month_of_us(us: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    paris_month(t)
}

/// `YYYY-MM` of an instant in France (metropolitan time): the month the
/// people concerned lived it in, as the days events carry are.
pub fn paris_month(at: time::OffsetDateTime) -> String {
    let d = eva_platform::consent::paris_date(at);
    format!("{:04}-{:02}", d.year(), u8::from(d.month()))
}

/// The level of a territory code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TerritoryLevel {
    Commune,
    Epci,
    Departement,
}

impl TerritoryLevel {
    pub fn name(self) -> &'static str {
        match self {
            TerritoryLevel::Commune => "commune",
            TerritoryLevel::Epci => "epci",
            TerritoryLevel::Departement => "departement",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "commune" => Some(TerritoryLevel::Commune),
            "epci" => Some(TerritoryLevel::Epci),
            "departement" => Some(TerritoryLevel::Departement),
            _ => None,
        }
    }

    /// The dimension holding codes of this level.
    pub fn dim(self) -> Dim {
        match self {
            TerritoryLevel::Commune => Dim::Commune,
            TerritoryLevel::Epci => Dim::Epci,
            TerritoryLevel::Departement => Dim::Departement,
        }
    }
}

/// A territory to restrict a query to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Territory {
    pub level: TerritoryLevel,
    pub code: String,
}

/// One question to a source, already validated against the indicator.
#[derive(Debug, Clone)]
pub struct Query {
    /// The projection generation that answers.
    pub generation: i64,
    /// First month included, `YYYY-MM`.
    pub from_month: String,
    /// Last month included, `YYYY-MM`.
    pub to_month: String,
    pub territory: Option<Territory>,
    /// Dimensions of the answer's cells, in order; the indicator's implicit
    /// dimensions (such as `measure`) are already appended.
    pub group_by: Vec<Dim>,
}

impl Query {
    pub fn groups_by(&self, dim: Dim) -> bool {
        self.group_by.contains(&dim)
    }

    /// Whether `month` falls in the period.
    pub fn covers(&self, month: &str) -> bool {
        month >= self.from_month.as_str() && month <= self.to_month.as_str()
    }
}

/// A figure computed by a source for one combination of the query's
/// dimensions, before disclosure control.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// One value per `Query::group_by` dimension, in that order.
    pub keys: Vec<String>,
    /// What the indicator counts (diagnostics with a barrier, referrals
    /// sent, check-ins…); suppressed under the threshold.
    pub count: i64,
    /// The measure, in the indicator's unit (a share in %, a median in
    /// days…); `None` for counts only.
    pub value: Option<f64>,
    /// Other counts this cell reveals (the numerator or denominator of a
    /// share): a cell is also suppressed when one of them is between 1 and
    /// the threshold.
    pub guards: Vec<i64>,
}

impl Figure {
    pub fn count(keys: Vec<String>, count: i64) -> Self {
        Self {
            keys,
            count,
            value: None,
            guards: Vec::new(),
        }
    }
}

/// The keys of the cell a fact of `month` falls in: period dimensions come
/// from the month, the others from `value_of`.
pub fn cell_keys(q: &Query, month: &str, value_of: impl Fn(Dim) -> String) -> Vec<String> {
    q.group_by
        .iter()
        .map(|&d| {
            if d.is_period() {
                period_key(d, month)
            } else {
                value_of(d)
            }
        })
        .collect()
}

/// A share in percent, rounded to one decimal; `None` over an empty base.
pub fn percent(part: i64, whole: i64) -> Option<f64> {
    (whole > 0).then(|| (part as f64 * 1000.0 / whole as f64).round() / 10.0)
}

/// The `q`-quantile (0..=1) of sorted values, by nearest rank.
pub fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_from_months() {
        assert_eq!(period_key(Dim::Quarter, "2025-03"), "2025-T1");
        assert_eq!(period_key(Dim::Quarter, "2025-10"), "2025-T4");
        assert_eq!(period_key(Dim::Year, "2025-10"), "2025");
        assert_eq!(period_key(Dim::Month, "2025-10"), "2025-10");
        assert_eq!(month_of("2025-10-31"), "2025-10");
        assert_eq!(month_of_us(1_740_787_200_000_000), "2025-03");
    }

    #[test]
    fn shares_and_quantiles() {
        assert_eq!(percent(1, 3), Some(33.3));
        assert_eq!(percent(0, 0), None);
        let v = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0];
        assert_eq!(quantile(&v, 0.5), Some(5.0));
        assert_eq!(quantile(&v, 0.9), Some(9.0));
        assert_eq!(quantile(&[], 0.5), None);
    }
}
