//! The indicators: what each counts, how it can be cut, which source
//! computes it. One list, read by the API, the exports and the dictionary.

use eva_platform::db::DbError;

use crate::model::{Dim, Figure, Query, TerritoryLevel};
use crate::store::Store;
use crate::{community, diagnostics, people, referrals, structures};

/// Every indicator, by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IndicatorId {
    Structures,
    DiagnosticsShared,
    BarrierPrevalence,
    BarrierResolution,
    RatingGap,
    ReferralFlows,
    ReferralAcceptance,
    ReferralRefusalReasons,
    ReferralResponseTime,
    ReferralAnsweredWithin,
    AccompanimentsStarted,
    PeopleAccompanied,
    CommunityQuestions,
    CommunityResponseTime,
    QvtIndex,
}

/// An indicator's definition.
#[derive(Debug)]
pub struct Indicator {
    pub id: IndicatorId,
    /// Stable id used in URLs and files.
    pub key: &'static str,
    pub label_fr: &'static str,
    pub label_en: &'static str,
    pub description_fr: &'static str,
    pub description_en: &'static str,
    /// Dimensions it can be grouped by.
    pub dims: &'static [Dim],
    /// Dimensions always in its cells (appended to `group_by` when absent).
    pub implicit: &'static [Dim],
    /// Territory levels it can be restricted to.
    pub territories: &'static [TerritoryLevel],
    /// Unit of the cells' `value`; empty for counts only.
    pub unit: &'static str,
    /// Values of its `measure` dimension, when it has one.
    pub measures: &'static [&'static str],
    /// Part of the open-data export.
    pub open_data: bool,
}

#[cfg(test)]
const PERIODS: [Dim; 3] = [Dim::Month, Dim::Quarter, Dim::Year];
const ALL_LEVELS: &[TerritoryLevel] = &[
    TerritoryLevel::Commune,
    TerritoryLevel::Epci,
    TerritoryLevel::Departement,
];
const DEPARTEMENT_ONLY: &[TerritoryLevel] = &[TerritoryLevel::Departement];

macro_rules! dims {
    ($($d:ident),* $(,)?) => {
        &[Dim::Month, Dim::Quarter, Dim::Year, $(Dim::$d),*]
    };
}

/// Territory and structure type of the recording (or sending) structure.
macro_rules! placed {
    ($($d:ident),* $(,)?) => {
        dims!(Commune, Epci, Departement, $($d),*)
    };
}

pub static CATALOGUE: &[Indicator] = &[
    Indicator {
        id: IndicatorId::Structures,
        key: "structures",
        label_fr: "Structures inscrites",
        label_en: "Registered structures",
        description_fr: "Nombre de structures inscrites sur EVA, par mois d'inscription, type et territoire.",
        description_en: "Structures registered on EVA, by month of registration, type and territory.",
        dims: placed!(StructureKind),
        implicit: &[],
        territories: ALL_LEVELS,
        unit: "",
        measures: &[],
        open_data: true,
    },
    Indicator {
        id: IndicatorId::DiagnosticsShared,
        key: "diagnostics_shared",
        label_fr: "Diagnostics partagés",
        label_en: "Diagnostics shared",
        description_fr: "Nombre de diagnostics validés avec la personne, par mois, territoire et type de la structure qui l'a réalisé.",
        description_en: "Diagnostics validated with the person, by month, territory and type of the recording structure.",
        dims: placed!(StructureKind),
        implicit: &[],
        territories: ALL_LEVELS,
        unit: "",
        measures: &[],
        open_data: true,
    },
    Indicator {
        id: IndicatorId::BarrierPrevalence,
        key: "barrier_prevalence",
        label_fr: "Fréquence des freins",
        label_en: "Barrier prevalence",
        description_fr: "Nombre de diagnostics où le conseiller a coté le domaine (au moins un item) ou l'item en frein ou frein majeur (effectif), et leur part parmi les diagnostics partagés du même groupe (valeur, en %). Par niveau : le niveau le plus fort du domaine.",
        description_en: "Diagnostics where the counselor rated the domain (at least one item) or the item as a barrier or major barrier (count), and their share of the diagnostics shared in the same group (value, %). By level: the domain's strongest level.",
        dims: placed!(StructureKind, Domain, Item, Level),
        implicit: &[],
        territories: ALL_LEVELS,
        unit: "percent",
        measures: &[],
        open_data: true,
    },
    Indicator {
        id: IndicatorId::BarrierResolution,
        key: "barrier_resolution",
        label_fr: "Levée des freins",
        label_en: "Barrier resolution",
        description_fr: "Entre deux diagnostics successifs d'une même personne, nombre d'items dont la cotation du conseiller s'est améliorée, est restée la même, s'est dégradée ou a été abordée pour la première fois (effectif), et leur part parmi les items comparables du groupe (valeur, en %). Période et territoire du nouveau diagnostic.",
        description_en: "Between two successive diagnostics of the same person, items whose counselor rating improved, stayed, worsened or was addressed for the first time (count), and their share of the group's comparable items (value, %). Period and territory of the newer diagnostic.",
        dims: placed!(StructureKind, Domain, Item, Evolution),
        implicit: &[Dim::Evolution],
        territories: ALL_LEVELS,
        unit: "percent",
        measures: &[],
        open_data: true,
    },
    Indicator {
        id: IndicatorId::RatingGap,
        key: "rating_gap",
        label_fr: "Écart entre l'avis de la personne et celui du conseiller",
        label_en: "Gap between the person's and the counselor's ratings",
        description_fr: "Items cotés à la fois par la personne et par le conseiller : nombre où la personne voit un frein plus fort, le même niveau, ou un frein moins fort que le conseiller (effectif), et leur part parmi ces items (valeur, en %).",
        description_en: "Items rated by both the person and the counselor: how many the person rated more severe, the same, or less severe than the counselor (count), and their share (value, %).",
        dims: placed!(StructureKind, Domain, Item, Gap),
        implicit: &[Dim::Gap],
        territories: ALL_LEVELS,
        unit: "percent",
        measures: &[],
        open_data: true,
    },
    Indicator {
        id: IndicatorId::ReferralFlows,
        key: "referral_flows",
        label_fr: "Orientations envoyées",
        label_en: "Referral flows",
        description_fr: "Nombre d'orientations envoyées, par mois d'envoi, territoire de la structure qui oriente, type de structure qui oriente et qui reçoit.",
        description_en: "Referrals sent, by month sent, territory of the sending structure, type of sending and receiving structure.",
        dims: placed!(FromStructureKind, ToStructureKind),
        implicit: &[],
        territories: ALL_LEVELS,
        unit: "",
        measures: &[],
        open_data: true,
    },
    Indicator {
        id: IndicatorId::ReferralAcceptance,
        key: "referral_acceptance",
        label_fr: "Taux d'acceptation des orientations",
        label_en: "Referral acceptance rate",
        description_fr: "Orientations envoyées dans la période qui ont reçu une décision (acceptée ou refusée) (effectif), et part des acceptées (valeur, en %).",
        description_en: "Referrals sent in the period that got a decision (accepted or refused) (count), and the share accepted (value, %).",
        dims: placed!(FromStructureKind, ToStructureKind),
        implicit: &[],
        territories: ALL_LEVELS,
        unit: "percent",
        measures: &[],
        open_data: true,
    },
    Indicator {
        id: IndicatorId::ReferralRefusalReasons,
        key: "referral_refusal_reasons",
        label_fr: "Motifs de refus des orientations",
        label_en: "Referral refusal reasons",
        description_fr: "Orientations refusées par motif (effectif) et part de chaque motif parmi les refus du groupe (valeur, en %).",
        description_en: "Refused referrals by reason (count) and each reason's share of the group's refusals (value, %).",
        dims: placed!(FromStructureKind, ToStructureKind, RefusalReason),
        implicit: &[Dim::RefusalReason],
        territories: ALL_LEVELS,
        unit: "percent",
        measures: &[],
        open_data: true,
    },
    Indicator {
        id: IndicatorId::ReferralResponseTime,
        key: "referral_response_time",
        label_fr: "Délais de réponse aux orientations",
        label_en: "Referral response times",
        description_fr: "En jours depuis l'envoi : médiane et 90e centile du délai de première réponse (à l'étude, acceptée ou refusée) et du délai jusqu'à l'issue (état final). L'effectif est le nombre d'orientations mesurées.",
        description_en: "In days since sending: median and 90th percentile of the time to first answer (under review, accepted or refused) and of the time to outcome (final state). The count is the number of referrals measured.",
        dims: placed!(FromStructureKind, ToStructureKind, Measure),
        implicit: &[Dim::Measure],
        territories: ALL_LEVELS,
        unit: "days",
        measures: &[
            "first_answer_median",
            "first_answer_p90",
            "outcome_median",
            "outcome_p90",
        ],
        open_data: true,
    },
    Indicator {
        id: IndicatorId::ReferralAnsweredWithin,
        key: "referral_answered_within",
        label_fr: "Orientations avec réponse sous 15 et 30 jours",
        label_en: "Referrals answered within 15 and 30 days",
        description_fr: "Parmi les orientations envoyées dans la période (effectif), part de celles qui ont reçu une première réponse dans les 15 jours, et dans les 30 jours (valeur, en %).",
        description_en: "Of the referrals sent in the period (count), the share with a first answer within 15 days, and within 30 days (value, %).",
        dims: placed!(FromStructureKind, ToStructureKind, Measure),
        implicit: &[Dim::Measure],
        territories: ALL_LEVELS,
        unit: "percent",
        measures: &["within_15_days", "within_30_days"],
        open_data: true,
    },
    Indicator {
        id: IndicatorId::AccompanimentsStarted,
        key: "accompaniments_started",
        label_fr: "Nouveaux accompagnements",
        label_en: "New accompaniments",
        description_fr: "Nombre d'accompagnements commencés, par mois de début, territoire et type de la structure.",
        description_en: "Accompaniments started, by month started, territory and type of the structure.",
        dims: placed!(StructureKind),
        implicit: &[],
        territories: ALL_LEVELS,
        unit: "",
        measures: &[],
        open_data: true,
    },
    Indicator {
        id: IndicatorId::PeopleAccompanied,
        key: "people_accompanied",
        label_fr: "Personnes accompagnées",
        label_en: "People accompanied",
        description_fr: "Nombre de personnes distinctes accompagnées au moins un jour de la période (ou de chaque mois, trimestre, année), par territoire et type de la structure.",
        description_en: "Distinct people accompanied on at least one day of the period (or of each month, quarter, year), by territory and type of the structure.",
        dims: placed!(StructureKind),
        implicit: &[],
        territories: ALL_LEVELS,
        unit: "",
        measures: &[],
        open_data: true,
    },
    Indicator {
        id: IndicatorId::CommunityQuestions,
        key: "community_questions",
        label_fr: "Questions de la communauté",
        label_en: "Community questions",
        description_fr: "Questions posées par les conseillers (effectif) et part de celles qui ont reçu au moins une réponse (valeur, en %), par mois, département et domaine.",
        description_en: "Questions asked by counselors (count) and the share that got at least one answer (value, %), by month, département and domain.",
        dims: dims!(Departement, Domain),
        implicit: &[],
        territories: DEPARTEMENT_ONLY,
        unit: "percent",
        measures: &[],
        open_data: false,
    },
    Indicator {
        id: IndicatorId::CommunityResponseTime,
        key: "community_response_time",
        label_fr: "Délai de première réponse dans la communauté",
        label_en: "Community time to first answer",
        description_fr: "Questions ayant reçu une réponse (effectif) et médiane du délai de la première réponse, en heures (valeur).",
        description_en: "Questions answered (count) and median time to the first answer, in hours (value).",
        dims: dims!(Departement, Domain),
        implicit: &[],
        territories: DEPARTEMENT_ONLY,
        unit: "hours",
        measures: &[],
        open_data: false,
    },
    Indicator {
        id: IndicatorId::QvtIndex,
        key: "qvt_index",
        label_fr: "Qualité de vie au travail des conseillers",
        label_en: "Counselors' quality of work life",
        description_fr: "Auto-évaluations mensuelles anonymes (effectif) et moyenne sur 1 à 5 (valeur) : charge de travail et isolement (5 = très lourd, très isolé), soutien (5 = fort), et l'indice (moyenne de 6 − charge, 6 − isolement et soutien ; 5 = meilleur).",
        description_en: "Anonymous monthly check-ins (count) and mean on 1 to 5 (value): workload and isolation (5 = overwhelming, very isolated), support (5 = strong), and the index (mean of 6 − workload, 6 − isolation and support; 5 = best).",
        dims: dims!(Departement, Measure),
        implicit: &[Dim::Measure],
        territories: DEPARTEMENT_ONLY,
        unit: "score_1_5",
        measures: &["index", "workload", "isolation", "support"],
        open_data: false,
    },
];

/// The indicator with this key.
pub fn find(key: &str) -> Option<&'static Indicator> {
    CATALOGUE.iter().find(|i| i.key == key)
}

/// Figures of `indicator` for `q`, from the source that computes it.
pub async fn figures(
    store: &Store,
    indicator: &Indicator,
    q: &Query,
) -> Result<Vec<Figure>, DbError> {
    use IndicatorId::*;
    match indicator.id {
        Structures => structures::figures(store, q).await,
        DiagnosticsShared | BarrierPrevalence | BarrierResolution | RatingGap => {
            diagnostics::figures(store, indicator.id, q).await
        }
        ReferralFlows
        | ReferralAcceptance
        | ReferralRefusalReasons
        | ReferralResponseTime
        | ReferralAnsweredWithin => referrals::figures(store, indicator.id, q).await,
        AccompanimentsStarted | PeopleAccompanied => people::figures(store, indicator.id, q).await,
        CommunityQuestions | CommunityResponseTime | QvtIndex => {
            community::figures(store, indicator.id, q).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_indicator_is_well_formed() {
        let mut keys = std::collections::HashSet::new();
        for i in CATALOGUE {
            assert!(keys.insert(i.key), "{} twice", i.key);
            assert_eq!(&i.dims[..3], &PERIODS, "{}: periods first", i.key);
            for d in i.implicit {
                assert!(
                    i.dims.contains(d),
                    "{}: implicit {d} not a dimension",
                    i.key
                );
            }
            assert_eq!(
                i.dims.contains(&Dim::Measure),
                !i.measures.is_empty(),
                "{}: measures",
                i.key
            );
            for t in i.territories {
                assert!(i.dims.contains(&t.dim()), "{}: territory {t:?}", i.key);
            }
        }
    }
}
