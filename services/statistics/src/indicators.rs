//! The catalogue of indicators statistics publishes.

use eva_proto::statistics::v1::IndicatorDefinition;

/// Number of structures using EVA, by type and territory.
pub const STRUCTURES: &str = "structures";

pub fn catalogue() -> Vec<IndicatorDefinition> {
    vec![IndicatorDefinition {
        indicator_id: STRUCTURES.into(),
        label_fr: "Structures utilisant EVA".into(),
        label_en: "Structures using EVA".into(),
        description_fr: "Nombre de structures (associations, partenaires, département) inscrites, \
                         par type et par territoire, selon leur date d'inscription."
            .into(),
        description_en: "Number of structures (associations, partners, département) registered, \
                         by type and territory, by registration date."
            .into(),
        value_unit: String::new(),
        open_data: true,
        dimensions: crate::store::StructureDim::ALL
            .iter()
            .map(|d| d.name().to_owned())
            .collect(),
    }]
}
