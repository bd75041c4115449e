//! Reading and checking référentiel files. Every refusal names the file, the
//! line and the key, in one line, so that whoever edits the file finds the
//! mistake at once.

use std::collections::{BTreeMap, HashSet};
use std::ops::Range;
use std::path::Path;

use eva_platform::consent::DOMAINS;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use toml::Spanned;

use super::{Domain, Item, Level, LevelDefinition, Referentiel, Referentiels};

/// Fewest and most items in a domain.
pub const MIN_ITEMS: usize = 3;
pub const MAX_ITEMS: usize = 8;

/// The versions built into EVA.
const BUILT_IN: &[(&str, &str)] = &[(
    "referentiel/2026.1.toml",
    include_str!("../../referentiel/2026.1.toml"),
)];

/// A référentiel file: its name (for messages) and its text.
#[derive(Debug, Clone)]
pub struct Source {
    pub name: String,
    pub text: String,
}

/// Why référentiel files were refused; one line.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LoadError {
    #[error("{file}:{line}: `{key}` : {message}")]
    At {
        file: String,
        line: usize,
        key: String,
        message: String,
    },
    #[error("{file} : {message}")]
    File { file: String, message: String },
    #[error(
        "référentiel : aucune version en vigueur le {today} (valid_from) / no référentiel version in use on {today}"
    )]
    NoCurrent { today: String },
}

impl LoadError {
    /// The line named, if any.
    pub fn line(&self) -> Option<usize> {
        match self {
            LoadError::At { line, .. } => Some(*line),
            _ => None,
        }
    }

    /// The key named, if any.
    pub fn key(&self) -> Option<&str> {
        match self {
            LoadError::At { key, .. } => Some(key),
            _ => None,
        }
    }
}

/// The files built into EVA.
pub fn built_in() -> Vec<Source> {
    BUILT_IN
        .iter()
        .map(|(name, text)| Source {
            name: (*name).to_owned(),
            text: (*text).to_owned(),
        })
        .collect()
}

/// The `*.toml` files of `dir`, by name. Blocking: call it off the runtime.
pub fn load_dir(dir: &Path) -> Result<Vec<Source>, LoadError> {
    let file_error = |message: String| LoadError::File {
        file: dir.display().to_string(),
        message,
    };
    let entries = std::fs::read_dir(dir).map_err(|e| {
        file_error(format!(
            "dossier du référentiel illisible / référentiel folder unreadable (diagnostics.referentiel_dir): {e}"
        ))
    })?;
    let mut paths = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| file_error(e.to_string()))?.path();
        if path.extension().is_some_and(|x| x == "toml") && path.is_file() {
            paths.push(path);
        }
    }
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).map_err(|e| LoadError::File {
                file: path.display().to_string(),
                message: format!("fichier illisible / unreadable file: {e}"),
            })?;
            Ok(Source {
                name: path.display().to_string(),
                text,
            })
        })
        .collect()
}

/// Parses and checks `built_in` then `extra` files. A file of `extra` with
/// the label of a built-in version replaces it; two files with one label
/// otherwise are refused. At least one version must be in use on `today`.
pub fn load(
    built_in: &[Source],
    extra: &[Source],
    today: time::Date,
) -> Result<Referentiels, LoadError> {
    let mut by_version: BTreeMap<String, (bool, Referentiel)> = BTreeMap::new();
    for (is_extra, source) in built_in
        .iter()
        .map(|s| (false, s))
        .chain(extra.iter().map(|s| (true, s)))
    {
        let (referentiel, version_line) = parse_with_line(source)?;
        match by_version.get(&referentiel.version) {
            Some((was_extra, earlier)) if *was_extra == is_extra => {
                return Err(LoadError::At {
                    file: source.name.clone(),
                    line: version_line,
                    key: "version".into(),
                    message: format!(
                        "la version « {} » est déjà définie dans {} / version already defined",
                        referentiel.version, earlier.source
                    ),
                });
            }
            Some((_, earlier)) => {
                tracing::info!(
                    version = %referentiel.version,
                    replaced = %earlier.source,
                    by = %source.name,
                    "référentiel version replaced by a file of referentiel_dir"
                );
            }
            None => {}
        }
        by_version.insert(referentiel.version.clone(), (is_extra, referentiel));
    }
    Referentiels::new(by_version.into_values().map(|(_, r)| r).collect(), today)
}

/// Parses and checks one file.
pub fn parse(source: &Source) -> Result<Referentiel, LoadError> {
    parse_with_line(source).map(|(r, _)| r)
}

pub(super) fn format_date(d: time::Date) -> String {
    d.format(eva_platform::consent::DATE_FORMAT)
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------
// The file as written
// ---------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    version: Spanned<String>,
    valid_from: Spanned<String>,
    levels: Spanned<Vec<RawLevel>>,
    domains: Spanned<Vec<RawDomain>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLevel {
    code: Spanned<String>,
    label_fr: Spanned<String>,
    label_en: Spanned<String>,
    description_fr: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDomain {
    id: Spanned<String>,
    label_fr: Spanned<String>,
    label_en: Spanned<String>,
    description_fr: Spanned<String>,
    sensitive: Spanned<bool>,
    #[serde(default)]
    france_travail_code: Option<Spanned<String>>,
    #[serde(default)]
    data_inclusion_thematiques: Vec<Spanned<String>>,
    #[serde(default)]
    items: Vec<RawItem>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawItem {
    id: Spanned<String>,
    label_fr: Spanned<String>,
    label_en: Spanned<String>,
    #[serde(default)]
    help_fr: Option<Spanned<String>>,
    #[serde(default)]
    data_inclusion_thematiques: Vec<Spanned<String>>,
}

// ---------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------

/// Builds errors that point into one file.
struct Checker<'a> {
    source: &'a Source,
}

impl Checker<'_> {
    fn line(&self, span: Range<usize>) -> usize {
        let end = span.start.min(self.source.text.len());
        self.source.text.as_bytes()[..end]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1
    }

    fn at(&self, span: Range<usize>, key: &str, message: String) -> LoadError {
        LoadError::At {
            file: self.source.name.clone(),
            line: self.line(span),
            key: key.to_owned(),
            message,
        }
    }

    /// A TOML or shape error (syntax, unknown or missing key, wrong type).
    fn toml(&self, e: &toml::de::Error) -> LoadError {
        let message = e.message().replace('\n', " ");
        let Some(span) = e.span() else {
            return LoadError::File {
                file: self.source.name.clone(),
                message,
            };
        };
        let line = self.line(span);
        // "unknown field `x`", "missing field `x`": the key is in the message;
        // otherwise it is the one written on that line.
        let key = message
            .split('`')
            .nth(1)
            .map(str::to_owned)
            .or_else(|| {
                self.source
                    .text
                    .lines()
                    .nth(line - 1)
                    .and_then(|l| l.split_once('='))
                    .map(|(k, _)| k.trim().to_owned())
            })
            .unwrap_or_default();
        LoadError::At {
            file: self.source.name.clone(),
            line,
            key,
            message,
        }
    }

    /// A non-empty, trimmed text.
    fn text(&self, value: &Spanned<String>, key: &str) -> Result<String, LoadError> {
        let v = value.get_ref().trim();
        if v.is_empty() {
            return Err(self.at(
                value.span(),
                key,
                "ne doit pas être vide / must not be empty".into(),
            ));
        }
        Ok(v.to_owned())
    }

    fn thematiques(&self, values: &[Spanned<String>]) -> Result<Vec<String>, LoadError> {
        values
            .iter()
            .map(|t| {
                let v = t.get_ref();
                let ok = v.contains("--")
                    && v.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
                if ok {
                    Ok(v.clone())
                } else {
                    Err(self.at(
                        t.span(),
                        "data_inclusion_thematiques",
                        format!(
                            "« {v} » n'est pas une thématique data·inclusion (ex. mobilite--preparer-un-permis) / not a data·inclusion thématique"
                        ),
                    ))
                }
            })
            .collect()
    }
}

fn parse_with_line(source: &Source) -> Result<(Referentiel, usize), LoadError> {
    let check = Checker { source };
    let raw: RawFile = toml::from_str(&source.text).map_err(|e| check.toml(&e))?;

    let version = check.text(&raw.version, "version")?;
    if version.len() > 32
        || !version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    {
        return Err(check.at(
            raw.version.span(),
            "version",
            format!(
                "« {version} » : lettres, chiffres, « . », « - » ou « _ », 32 au plus / letters, digits, '.', '-' or '_', at most 32"
            ),
        ));
    }
    let version_line = check.line(raw.version.span());

    let valid_from =
        time::Date::parse(raw.valid_from.get_ref(), eva_platform::consent::DATE_FORMAT).map_err(
            |_| {
                check.at(
                    raw.valid_from.span(),
                    "valid_from",
                    format!(
                        "« {} » n'est pas une date AAAA-MM-JJ / not a YYYY-MM-DD date",
                        raw.valid_from.get_ref()
                    ),
                )
            },
        )?;

    let mut levels = Vec::new();
    let mut seen_levels = HashSet::new();
    for l in raw.levels.get_ref() {
        let code = l.code.get_ref();
        let level = Level::parse(code).ok_or_else(|| {
            check.at(
                l.code.span(),
                "code",
                format!(
                    "niveau inconnu « {code} » (attendus : {}) / unknown scale value",
                    Level::ALL.map(Level::code).join(", ")
                ),
            )
        })?;
        if !seen_levels.insert(level) {
            return Err(check.at(
                l.code.span(),
                "code",
                format!("niveau « {code} » en double / duplicate scale value"),
            ));
        }
        levels.push(LevelDefinition {
            level,
            label_fr: check.text(&l.label_fr, "label_fr")?,
            label_en: check.text(&l.label_en, "label_en")?,
            description_fr: check.text(&l.description_fr, "description_fr")?,
        });
    }
    if let Some(missing) = Level::ALL.into_iter().find(|l| !seen_levels.contains(l)) {
        return Err(check.at(
            raw.levels.span(),
            "levels",
            format!(
                "le niveau « {} » manque : l'échelle a les cinq niveaux / scale value missing: the scale has all five",
                missing.code()
            ),
        ));
    }

    let mut domains = Vec::new();
    let mut seen_domains = HashSet::new();
    let mut seen_items = HashSet::new();
    for d in raw.domains.get_ref() {
        let id = d.id.get_ref().as_str();
        let Some(platform) = DOMAINS.iter().find(|p| p.id == id) else {
            return Err(check.at(
                d.id.span(),
                "id",
                format!(
                    "domaine « {id} » inconnu de la plateforme (consentement par domaine : {}) / domain not in the platform's list",
                    DOMAINS.iter().map(|p| p.id).collect::<Vec<_>>().join(", ")
                ),
            ));
        };
        if !seen_domains.insert(id) {
            return Err(check.at(
                d.id.span(),
                "id",
                format!("domaine « {id} » en double / duplicate domain id"),
            ));
        }
        if *d.sensitive.get_ref() != platform.sensitive {
            return Err(check.at(
                d.sensitive.span(),
                "sensitive",
                format!(
                    "le domaine « {id} » doit avoir sensitive = {} comme pour le consentement / must match the platform's consent rules",
                    platform.sensitive
                ),
            ));
        }
        let france_travail_code = match &d.france_travail_code {
            None => None,
            Some(code) => {
                let ok = code
                    .get_ref()
                    .parse::<u8>()
                    .is_ok_and(|n| (23..=29).contains(&n));
                if !ok {
                    return Err(check.at(
                        code.span(),
                        "france_travail_code",
                        format!(
                            "« {} » : un code de frein périphérique France Travail, de 23 à 29 / a France Travail code, 23 to 29",
                            code.get_ref()
                        ),
                    ));
                }
                Some(code.get_ref().clone())
            }
        };
        if !(MIN_ITEMS..=MAX_ITEMS).contains(&d.items.len()) {
            return Err(check.at(
                d.id.span(),
                "items",
                format!(
                    "le domaine « {id} » a {} item(s), il en faut de {MIN_ITEMS} à {MAX_ITEMS} / a domain has {MIN_ITEMS} to {MAX_ITEMS} items",
                    d.items.len()
                ),
            ));
        }
        let mut items = Vec::new();
        for i in &d.items {
            let item_id = i.id.get_ref().as_str();
            let well_formed = item_id
                .strip_prefix(id)
                .and_then(|rest| rest.strip_prefix('.'))
                .is_some_and(|rest| {
                    !rest.is_empty()
                        && rest
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                });
            if !well_formed {
                return Err(check.at(
                    i.id.span(),
                    "id",
                    format!(
                        "« {item_id} » : un item s'écrit « {id}.nom » (minuscules, chiffres, _) / an item id is `{id}.name`"
                    ),
                ));
            }
            if !seen_items.insert(item_id) {
                return Err(check.at(
                    i.id.span(),
                    "id",
                    format!("item « {item_id} » en double / duplicate item id"),
                ));
            }
            items.push(Item {
                id: item_id.to_owned(),
                label_fr: check.text(&i.label_fr, "label_fr")?,
                label_en: check.text(&i.label_en, "label_en")?,
                help_fr: i
                    .help_fr
                    .as_ref()
                    .map(|h| h.get_ref().trim().to_owned())
                    .unwrap_or_default(),
                data_inclusion_thematiques: check.thematiques(&i.data_inclusion_thematiques)?,
            });
        }
        domains.push(Domain {
            id: id.to_owned(),
            label_fr: check.text(&d.label_fr, "label_fr")?,
            label_en: check.text(&d.label_en, "label_en")?,
            description_fr: check.text(&d.description_fr, "description_fr")?,
            sensitive: platform.sensitive,
            france_travail_code,
            data_inclusion_thematiques: check.thematiques(&d.data_inclusion_thematiques)?,
            items,
        });
    }
    if domains.is_empty() {
        return Err(check.at(
            raw.domains.span(),
            "domains",
            "au moins un domaine / at least one domain".into(),
        ));
    }

    let sha256 = Sha256::digest(source.text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok((
        Referentiel {
            version,
            valid_from,
            levels,
            domains,
            source: source.name.clone(),
            sha256,
        },
        version_line,
    ))
}
