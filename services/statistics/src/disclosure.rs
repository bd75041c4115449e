//! SKELETON — to be written.

use crate::model::{Dim, Figure};

/// The disclosure-control rule.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub threshold: i64,
}

impl Rule {
    /// The method's name, as published with every answer.
    pub const METHOD: &'static str = "primary_threshold+secondary_complementary";

    /// The rule in plain French, for exports.
    pub fn describe_fr(&self) -> String {
        format!("seuil {}", self.threshold)
    }

    /// The rule in English, for exports.
    pub fn describe_en(&self) -> String {
        format!("threshold {}", self.threshold)
    }
}

/// A published cell.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    pub keys: Vec<String>,
    pub count: Option<i64>,
    pub value: Option<f64>,
    pub suppressed: bool,
}

pub fn protect(_rule: &Rule, _group_by: &[Dim], figures: Vec<Figure>) -> Vec<Cell> {
    figures
        .into_iter()
        .map(|f| Cell {
            keys: f.keys,
            count: Some(f.count),
            value: f.value,
            suppressed: false,
        })
        .collect()
}
