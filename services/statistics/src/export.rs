//! Files: the data dictionary, one indicator as CSV or JSON, and the
//! open-data export (a zip of CSVs, or one JSON document). Every file states
//! the disclosure rule it was produced under.

use std::io::Write;

use eva_platform::consent::DOMAINS;
use eva_platform::db::{DbError, from_us};
use serde_json::{Map, Value, json};
use time::format_description::well_known::Rfc3339;

use crate::catalogue::{self, CATALOGUE, Indicator, IndicatorId};
use crate::disclosure::{self, Cell, Rule};
use crate::model::{Dim, Query};
use crate::store::Store;

/// Name of the dictionary, in the zip and as a file of its own.
pub const DICTIONARY_FILE: &str = "dictionnaire.json";
/// Name of the open-data readme.
pub const README_FILE: &str = "LISEZMOI.txt";
/// Columns every CSV has after its dimensions.
pub const COLUMNS: [&str; 5] = ["count", "value", "suppressed", "threshold", "rule"];

/// Domains whose rows never go to open data (special-category data).
pub fn sensitive_domains() -> impl Iterator<Item = &'static str> {
    DOMAINS.iter().filter(|d| d.sensitive).map(|d| d.id)
}

fn rfc3339(us: i64) -> String {
    from_us(us).format(&Rfc3339).unwrap_or_default()
}

fn unit_fr(unit: &str) -> &'static str {
    match unit {
        "percent" => "pourcentage, de 0 à 100, arrondi au dixième",
        "days" => "jours",
        "hours" => "heures",
        "score_1_5" => "score de 1 à 5",
        "" => "aucune : la case ne porte qu'un effectif",
        _ => "voir la description",
    }
}

/// The indicator's definition, as answers carry it.
pub fn definition_json(i: &Indicator) -> Value {
    json!({
        "id": i.key,
        "label_fr": i.label_fr,
        "label_en": i.label_en,
        "description_fr": i.description_fr,
        "description_en": i.description_en,
        "dimensions": i.dims.iter().map(|d| d.name()).collect::<Vec<_>>(),
        "unit": i.unit,
        "open_data": i.open_data,
    })
}

/// The rule: figures and plain words.
pub fn rule_json(rule: &Rule) -> Value {
    json!({
        "threshold": rule.threshold,
        "method": Rule::METHOD,
        "description_fr": rule.describe_fr(),
        "description_en": rule.describe_en(),
    })
}

/// The indicator's entry in the data dictionary.
pub fn entry(i: &Indicator) -> Value {
    json!({
        "id": i.key,
        "label_fr": i.label_fr,
        "label_en": i.label_en,
        "description_fr": i.description_fr,
        "description_en": i.description_en,
        "unit": i.unit,
        "unit_description_fr": unit_fr(i.unit),
        "dimensions": i.dims.iter().map(|d| json!({
            "name": d.name(),
            "description_fr": d.description_fr(),
            "always_present": i.implicit.contains(d),
        })).collect::<Vec<_>>(),
        "territory_levels": i.territories.iter().map(|t| t.name()).collect::<Vec<_>>(),
        "measures": i.measures,
        "open_data": i.open_data,
    })
}

/// What each column of a CSV (each field of a JSON cell) holds.
fn columns_json() -> Value {
    json!([
        { "name": "<dimension>", "description_fr": "une colonne par dimension de regroupement, nommée comme elle (voir les dimensions de l'indicateur)", "description_en": "one column per grouping dimension, named after it" },
        { "name": "count", "description_fr": "effectif : ce que compte l'indicateur ; vide (null) quand la case est masquée", "description_en": "what the indicator counts; empty (null) when the cell is suppressed" },
        { "name": "value", "description_fr": "mesure dans l'unité de l'indicateur ; vide (null) quand la case est masquée ou que l'indicateur n'a pas de mesure", "description_en": "the measure in the indicator's unit; empty (null) when suppressed or when the indicator has none" },
        { "name": "suppressed", "description_fr": "true quand la case est masquée par le secret statistique (primaire ou secondaire)", "description_en": "true when the cell is hidden by disclosure control (primary or secondary)" },
        { "name": "threshold", "description_fr": "seuil : plus petit effectif publié (CSV seulement)", "description_en": "smallest count published (CSV only)" },
        { "name": "rule", "description_fr": "la méthode de secret statistique appliquée, décrite dans rule (CSV seulement)", "description_en": "the disclosure method applied, described under rule (CSV only)" },
    ])
}

fn dictionary_of<'a>(rule: &Rule, indicators: impl Iterator<Item = &'a Indicator>) -> Value {
    json!({
        "title_fr": "Dictionnaire des données des statistiques EVA",
        "title_en": "Data dictionary of EVA statistics",
        "rule": rule_json(rule),
        "columns": columns_json(),
        "indicators": indicators.map(entry).collect::<Vec<_>>(),
    })
}

/// The data dictionary: every indicator and the rule.
pub fn dictionary(rule: &Rule) -> Value {
    dictionary_of(rule, CATALOGUE.iter())
}

/// A published cell as JSON: each key under its dimension's name, then
/// `count`, `value` (null when suppressed) and `suppressed`.
pub fn cell_json(group_by: &[Dim], c: &Cell) -> Value {
    let mut m: Map<String, Value> = group_by
        .iter()
        .zip(&c.keys)
        .map(|(d, k)| (d.name().to_owned(), Value::String(k.clone())))
        .collect();
    let (count, value) = if c.suppressed {
        (None, None)
    } else {
        (c.count, c.value)
    };
    m.insert("count".into(), count.map_or(Value::Null, Value::from));
    m.insert("value".into(), value.map_or(Value::Null, Value::from));
    m.insert("suppressed".into(), Value::Bool(c.suppressed));
    Value::Object(m)
}

fn csv_field(out: &mut String, s: &str) {
    if s.contains([',', '"', '\r', '\n']) {
        out.push('"');
        out.push_str(&s.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(s);
    }
}

fn csv_line(out: &mut String, fields: impl IntoIterator<Item = String>) {
    for (n, f) in fields.into_iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        csv_field(out, &f);
    }
    out.push_str("\r\n");
}

/// One answer as CSV (RFC 4180, UTF-8): the group-by dimensions, `count`,
/// `value`, `suppressed`, then `threshold` and `rule` (the method) on every
/// row so that the rule travels with any extract of the file.
pub fn csv(group_by: &[Dim], cells: &[Cell], rule: &Rule) -> String {
    let mut out = String::new();
    csv_line(
        &mut out,
        group_by
            .iter()
            .map(|d| d.name().to_owned())
            .chain(COLUMNS.iter().map(|c| (*c).to_owned())),
    );
    // The method's name, not its description (in the dictionary and the
    // readme): repeated on every row, a paragraph would dwarf the figures.
    let threshold = rule.threshold.to_string();
    for c in cells {
        let (count, value) = if c.suppressed {
            (String::new(), String::new())
        } else {
            (
                c.count.map(|n| n.to_string()).unwrap_or_default(),
                c.value
                    .filter(|v| v.is_finite())
                    .map(|v| v.to_string())
                    .unwrap_or_default(),
            )
        };
        csv_line(
            &mut out,
            c.keys.iter().cloned().chain([
                count,
                value,
                c.suppressed.to_string(),
                threshold.clone(),
                Rule::METHOD.to_owned(),
            ]),
        );
    }
    out
}

fn query_json(q: &Query) -> Value {
    json!({
        "period": { "from": q.from_month, "to": q.to_month },
        "territory": q.territory.as_ref().map(|t| json!({ "level": t.level.name(), "code": t.code })),
        "group_by": q.group_by.iter().map(|d| d.name()).collect::<Vec<_>>(),
    })
}

/// One answer as a JSON file: the answer's shape (`indicator`, `rule`,
/// `cells`), the question, and the indicator's dictionary entry.
pub fn indicator_json(
    i: &Indicator,
    rule: &Rule,
    q: &Query,
    cells: &[Cell],
    generated_at_us: i64,
) -> Value {
    json!({
        "indicator": definition_json(i),
        "rule": rule_json(rule),
        "query": query_json(q),
        "cells": cells.iter().map(|c| cell_json(&q.group_by, c)).collect::<Vec<_>>(),
        "dictionary": entry(i),
        "generated_at": rfc3339(generated_at_us),
    })
}

/// The indicators of the open-data export.
pub fn open_data_indicators() -> impl Iterator<Item = &'static Indicator> {
    CATALOGUE.iter().filter(|i| i.open_data)
}

/// How open data groups an indicator: year and département, by domain for
/// the barrier indicators, then its implicit dimensions.
pub fn open_data_group_by(i: &Indicator) -> Vec<Dim> {
    let mut dims = vec![Dim::Year, Dim::Departement];
    if matches!(
        i.id,
        IndicatorId::BarrierPrevalence | IndicatorId::BarrierResolution | IndicatorId::RatingGap
    ) {
        dims.push(Dim::Domain);
    }
    for d in i.implicit {
        if !dims.contains(d) {
            dims.push(*d);
        }
    }
    dims
}

/// One indicator's table in the open-data export.
pub struct Table {
    pub indicator: &'static Indicator,
    pub group_by: Vec<Dim>,
    pub cells: Vec<Cell>,
}

impl Table {
    fn file(&self) -> String {
        format!("{}.csv", self.indicator.key)
    }
}

/// The open-data export's content, before it becomes a file.
pub struct OpenData {
    pub rule: Rule,
    pub from_month: String,
    pub to_month: String,
    pub tables: Vec<Table>,
}

impl OpenData {
    /// Every open-data indicator over `from..=to`, protected; rows of the
    /// sensitive domains are dropped after disclosure control, so the file
    /// is a subset of what an analyst's answer publishes.
    pub async fn compute(
        store: &Store,
        rule: &Rule,
        generation: i64,
        from_month: &str,
        to_month: &str,
    ) -> Result<Self, DbError> {
        let sensitive: Vec<&str> = sensitive_domains().collect();
        let mut tables = Vec::new();
        for indicator in open_data_indicators() {
            let group_by = open_data_group_by(indicator);
            let q = Query {
                generation,
                from_month: from_month.to_owned(),
                to_month: to_month.to_owned(),
                territory: None,
                group_by: group_by.clone(),
            };
            let figures = catalogue::figures(store, indicator, &q).await?;
            let mut cells = disclosure::protect(rule, &group_by, figures);
            if let Some(at) = group_by.iter().position(|d| *d == Dim::Domain) {
                cells.retain(|c| {
                    c.keys
                        .get(at)
                        .is_none_or(|k| !sensitive.contains(&k.as_str()))
                });
            }
            tables.push(Table {
                indicator,
                group_by,
                cells,
            });
        }
        Ok(Self {
            rule: *rule,
            from_month: from_month.to_owned(),
            to_month: to_month.to_owned(),
            tables,
        })
    }

    /// The dictionary of the indicators exported, with the files and what
    /// was left out.
    pub fn dictionary(&self) -> Value {
        let mut d = dictionary_of(&self.rule, self.tables.iter().map(|t| t.indicator));
        d["period"] = json!({ "from": self.from_month, "to": self.to_month });
        d["excluded_domains"] = json!(sensitive_domains().collect::<Vec<_>>());
        d["files"] = self
            .tables
            .iter()
            .map(|t| {
                json!({
                    "file": t.file(),
                    "indicator": t.indicator.key,
                    "group_by": t.group_by.iter().map(|d| d.name()).collect::<Vec<_>>(),
                })
            })
            .collect();
        d
    }

    /// `LISEZMOI.txt`: what the files are and the rule, French then English.
    pub fn readme(&self, generated_at_us: i64) -> String {
        let files: Vec<String> = self
            .tables
            .iter()
            .map(|t| {
                format!(
                    "  - {} : {} / {}",
                    t.file(),
                    t.indicator.label_fr,
                    t.indicator.label_en
                )
            })
            .collect();
        let excluded = sensitive_domains().collect::<Vec<_>>().join(", ");
        format!(
            "EVA — données ouvertes des statistiques de l'insertion\r\n\
             =======================================================\r\n\
             \r\n\
             Produit le {at}, pour les mois de {from} à {to}.\r\n\
             \r\n\
             Ces fichiers donnent des indicateurs anonymes calculés par EVA à partir des\r\n\
             événements de la plateforme, par année et par département (et par domaine\r\n\
             du référentiel pour les freins). Aucune donnée ne permet d'identifier une\r\n\
             personne : les personnes qui se sont opposées aux statistiques en sont exclues,\r\n\
             et les domaines sensibles ({excluded}) ne sont pas publiés.\r\n\
             \r\n\
             Règle de secret statistique : {rule_fr}\r\n\
             Seuil : {threshold}. Méthode : {method}. Une case masquée a un effectif et une\r\n\
             valeur vides et suppressed = true.\r\n\
             \r\n\
             Fichiers (CSV, UTF-8, séparateur virgule, une ligne d'en-tête) :\r\n\
             {files}\r\n\
             \x20 - {dict} : le dictionnaire des données (indicateurs, dimensions, colonnes, règle).\r\n\
             \r\n\
             -------------------------------------------------------\r\n\
             \r\n\
             EVA — open data of employment-insertion statistics\r\n\
             \r\n\
             Produced on {at}, for the months {from} to {to}.\r\n\
             \r\n\
             These files hold anonymous indicators computed by EVA from the platform's\r\n\
             events, by year and département (and by domain of the référentiel for\r\n\
             barriers). Nothing in them identifies anyone: people who objected to\r\n\
             statistics are excluded, and the sensitive domains ({excluded}) are not\r\n\
             published.\r\n\
             \r\n\
             Disclosure rule: {rule_en}\r\n\
             Threshold: {threshold}. Method: {method}. A suppressed cell has empty count and\r\n\
             value and suppressed = true.\r\n\
             \r\n\
             Files: one CSV per indicator (UTF-8, comma-separated, one header line), and\r\n\
             {dict}, the data dictionary (indicators, dimensions, columns, rule).\r\n",
            at = rfc3339(generated_at_us),
            from = self.from_month,
            to = self.to_month,
            rule_fr = self.rule.describe_fr(),
            rule_en = self.rule.describe_en(),
            threshold = self.rule.threshold,
            method = Rule::METHOD,
            files = files.join("\r\n"),
            dict = DICTIONARY_FILE,
        )
    }

    /// The export as one JSON document: the same content as the zip.
    pub fn json(&self, generated_at_us: i64) -> Value {
        json!({
            "title_fr": "EVA — données ouvertes des statistiques de l'insertion",
            "title_en": "EVA — open data of employment-insertion statistics",
            "generated_at": rfc3339(generated_at_us),
            "period": { "from": self.from_month, "to": self.to_month },
            "rule": rule_json(&self.rule),
            "readme": self.readme(generated_at_us),
            "dictionary": self.dictionary(),
            "indicators": self.tables.iter().map(|t| json!({
                "indicator": definition_json(t.indicator),
                "group_by": t.group_by.iter().map(|d| d.name()).collect::<Vec<_>>(),
                "cells": t.cells.iter().map(|c| cell_json(&t.group_by, c)).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })
    }

    /// The export as a zip: one CSV per indicator, the dictionary, the
    /// readme. CPU-bound: run it off the async threads.
    pub fn zip(&self, generated_at_us: i64) -> Result<Vec<u8>, zip::result::ZipError> {
        let at = from_us(generated_at_us);
        let modified = zip::DateTime::from_date_and_time(
            u16::try_from(at.year()).unwrap_or(1980),
            u8::from(at.month()),
            at.day(),
            at.hour(),
            at.minute(),
            at.second(),
        )
        .unwrap_or_default();
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .last_modified_time(modified);
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for t in &self.tables {
            w.start_file(t.file(), options)?;
            w.write_all(csv(&t.group_by, &t.cells, &self.rule).as_bytes())?;
        }
        let dictionary = serde_json::to_vec_pretty(&self.dictionary())
            .map_err(|e| zip::result::ZipError::Io(std::io::Error::other(e)))?;
        w.start_file(DICTIONARY_FILE, options)?;
        w.write_all(&dictionary)?;
        w.start_file(README_FILE, options)?;
        w.write_all(self.readme(generated_at_us).as_bytes())?;
        Ok(w.finish()?.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(keys: &[&str], count: i64, value: Option<f64>, suppressed: bool) -> Cell {
        Cell {
            keys: keys.iter().map(|k| (*k).to_owned()).collect(),
            count: Some(count),
            value,
            suppressed,
        }
    }

    #[test]
    fn csv_states_the_rule_and_hides_suppressed_cells() {
        let rule = Rule { threshold: 11 };
        let out = csv(
            &[Dim::Year, Dim::Domain],
            &[
                cell(&["2025", "mobilite"], 42, Some(33.3), false),
                cell(&["2025", "a,\"b\""], 3, Some(1.0), true),
            ],
            &rule,
        );
        let lines: Vec<&str> = out.split("\r\n").collect();
        assert_eq!(
            lines[0],
            "year,domain,count,value,suppressed,threshold,rule"
        );
        let method = Rule::METHOD;
        assert_eq!(lines[1], format!("2025,mobilite,42,33.3,false,11,{method}"));
        assert_eq!(lines[2], format!("2025,\"a,\"\"b\"\"\",,,true,11,{method}"));
        assert_eq!(lines[3], "");
    }

    #[test]
    fn json_cells_have_null_counts_when_suppressed() {
        let v = cell_json(&[Dim::Year], &cell(&["2025"], 3, Some(2.0), true));
        assert_eq!(
            v,
            json!({ "year": "2025", "count": null, "value": null, "suppressed": true })
        );
        let v = cell_json(&[Dim::Year], &cell(&["2025"], 30, None, false));
        assert_eq!(
            v,
            json!({ "year": "2025", "count": 30, "value": null, "suppressed": false })
        );
    }

    #[test]
    fn dictionary_lists_every_indicator_and_the_rule() {
        let d = dictionary(&Rule { threshold: 11 });
        assert_eq!(d["rule"]["threshold"], 11);
        assert_eq!(d["rule"]["method"], Rule::METHOD);
        let ids: Vec<&str> = d["indicators"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i["id"].as_str())
            .collect();
        let all: Vec<&str> = CATALOGUE.iter().map(|i| i.key).collect();
        assert_eq!(ids, all);
        assert!(
            d["indicators"][0]["dimensions"][0]["description_fr"]
                .as_str()
                .is_some_and(|s| !s.is_empty())
        );
    }

    #[test]
    fn open_data_groups_barriers_by_domain() {
        for i in open_data_indicators() {
            let g = open_data_group_by(i);
            assert_eq!(&g[..2], &[Dim::Year, Dim::Departement], "{}", i.key);
            assert!(g.iter().all(|d| i.dims.contains(d)), "{}", i.key);
            for d in i.implicit {
                assert!(g.contains(d), "{}", i.key);
            }
        }
        let p = catalogue::find("barrier_prevalence").expect("indicator");
        assert!(open_data_group_by(p).contains(&Dim::Domain));
        assert_eq!(
            sensitive_domains().collect::<Vec<_>>(),
            ["sante", "difficultes-administratives-ou-juridiques"]
        );
    }

    #[test]
    fn zip_holds_the_tables_the_dictionary_and_the_readme() {
        let p = catalogue::find("barrier_prevalence").expect("indicator");
        let data = OpenData {
            rule: Rule { threshold: 11 },
            from_month: "2025-01".into(),
            to_month: "2025-12".into(),
            tables: vec![Table {
                indicator: p,
                group_by: open_data_group_by(p),
                cells: vec![cell(&["2025", "27", "mobilite"], 12, Some(40.0), false)],
            }],
        };
        let bytes = data.zip(1_740_787_200_000_000).expect("zip");
        let mut z = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("opens");
        let names: Vec<String> = z
            .file_names()
            .filter_map(Result::ok)
            .map(|n| n.into_owned())
            .collect();
        assert!(
            names.contains(&"barrier_prevalence.csv".to_owned()),
            "{names:?}"
        );
        assert!(names.contains(&DICTIONARY_FILE.to_owned()));
        assert!(names.contains(&README_FILE.to_owned()));
        let mut s = String::new();
        std::io::Read::read_to_string(&mut z.by_name(README_FILE).expect("readme"), &mut s)
            .expect("utf-8");
        assert!(s.starts_with("EVA — données ouvertes"));
        assert!(s.contains("Disclosure rule"));
        let j = data.json(1_740_787_200_000_000);
        assert_eq!(j["indicators"][0]["cells"][0]["domain"], "mobilite");
        assert_eq!(j["dictionary"]["excluded_domains"][0], "sante");
    }
}
