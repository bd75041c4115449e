//! The référentiel commun as versioned data: domains, their items, the
//! rating scale and the crosswalk to France Travail codes and data·inclusion
//! thématiques. Versions ship inside EVA (`referentiel/*.toml`, embedded at
//! build) and an operator may add or replace some from a folder
//! (`diagnostics.referentiel_dir`), without a code change.

mod load;

use std::sync::Arc;

pub use load::{LoadError, Source, built_in, load, load_dir, parse};

/// A level of the rating scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Level {
    NonAborde,
    FreinMajeur,
    Frein,
    SansImpact,
    PointDAppui,
}

impl Level {
    pub const ALL: [Level; 5] = [
        Level::NonAborde,
        Level::FreinMajeur,
        Level::Frein,
        Level::SansImpact,
        Level::PointDAppui,
    ];

    /// Its code in référentiel files and in the API.
    pub fn code(self) -> &'static str {
        match self {
            Level::NonAborde => "non_aborde",
            Level::FreinMajeur => "frein_majeur",
            Level::Frein => "frein",
            Level::SansImpact => "sans_impact",
            Level::PointDAppui => "point_d_appui",
        }
    }

    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.code() == code)
    }

    pub fn to_proto(self) -> eva_proto::diagnostics::v1::Level {
        use eva_proto::diagnostics::v1::Level as P;
        match self {
            Level::NonAborde => P::NonAborde,
            Level::FreinMajeur => P::FreinMajeur,
            Level::Frein => P::Frein,
            Level::SansImpact => P::SansImpact,
            Level::PointDAppui => P::PointDAppui,
        }
    }
}

/// A level with its words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LevelDefinition {
    pub level: Level,
    pub label_fr: String,
    pub label_en: String,
    pub description_fr: String,
}

/// An item of a domain, rated in each diagnostic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub id: String,
    pub label_fr: String,
    pub label_en: String,
    pub help_fr: String,
    pub data_inclusion_thematiques: Vec<String>,
}

/// A domain of the référentiel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    pub id: String,
    pub label_fr: String,
    pub label_en: String,
    pub description_fr: String,
    pub sensitive: bool,
    pub france_travail_code: Option<String>,
    pub data_inclusion_thematiques: Vec<String>,
    pub items: Vec<Item>,
}

/// One version of the référentiel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referentiel {
    pub version: String,
    /// First day it is in use.
    pub valid_from: time::Date,
    /// The scale, in the file's order.
    pub levels: Vec<LevelDefinition>,
    /// The domains, in display order.
    pub domains: Vec<Domain>,
    /// Where it came from (file name), for logs.
    pub source: String,
    /// SHA-256 of the file, hex.
    pub sha256: String,
}

/// Every loaded version, oldest first (by `valid_from`, then label).
#[derive(Debug, Clone)]
pub struct Referentiels {
    versions: Vec<Arc<Referentiel>>,
}

impl Referentiels {
    /// Sorts `versions`; at least one must be in use on `today`.
    pub fn new(mut versions: Vec<Referentiel>, today: time::Date) -> Result<Self, LoadError> {
        versions.sort_by(|a, b| {
            a.valid_from
                .cmp(&b.valid_from)
                .then_with(|| a.version.cmp(&b.version))
        });
        let all = Self {
            versions: versions.into_iter().map(Arc::new).collect(),
        };
        if all.current(today).is_none() {
            return Err(LoadError::NoCurrent {
                today: load::format_date(today),
            });
        }
        Ok(all)
    }

    /// The version new diagnostics use: the newest whose `valid_from` is on
    /// or before `today`.
    pub fn current(&self, today: time::Date) -> Option<&Arc<Referentiel>> {
        self.versions.iter().rev().find(|r| r.valid_from <= today)
    }

    /// A version by its label.
    pub fn get(&self, version: &str) -> Option<&Arc<Referentiel>> {
        self.versions.iter().find(|r| r.version == version)
    }

    /// Every version, newest first.
    pub fn newest_first(&self) -> impl Iterator<Item = &Arc<Referentiel>> {
        self.versions.iter().rev()
    }

    pub fn len(&self) -> usize {
        self.versions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.versions.is_empty()
    }
}

/// Today in the French calendar.
pub fn today() -> time::Date {
    eva_platform::consent::paris_date(time::OffsetDateTime::now_utc())
}
