//! Référentiel files as whoever edits them meets them: the shipped version
//! loads and agrees with the platform's consent domains; a mistake is refused
//! with one line naming the file, the line and the key.

use eva_diagnostics::referentiel::{self, Level, LoadError, Source};
use eva_platform::consent::DOMAINS;
use time::macros::date;

const TODAY: time::Date = date!(2026 - 11 - 28);

fn shipped() -> Source {
    let mut all = referentiel::built_in();
    assert_eq!(all.len(), 1, "one built-in version for now");
    all.remove(0)
}

/// The shipped file with `from` replaced by `to` (which must occur once).
fn edited(from: &str, to: &str) -> Source {
    let s = shipped();
    assert_eq!(s.text.matches(from).count(), 1, "`{from}` occurs once");
    Source {
        name: "mon-referentiel.toml".into(),
        text: s.text.replacen(from, to, 1),
    }
}

/// 1-based line of the first occurrence of `needle` in `text`.
fn line_of(text: &str, needle: &str) -> usize {
    let at = text.find(needle).expect("needle present");
    text[..at].matches('\n').count() + 1
}

/// The error of `source`, checked to be one line naming the file, `line` and
/// `key`, and containing `words`.
fn refused(source: &Source, line: usize, key: &str, words: &str) -> String {
    let err = referentiel::parse(source).expect_err("refused");
    let text = err.to_string();
    assert!(!text.contains('\n'), "one line: {text}");
    assert!(text.starts_with("mon-referentiel.toml:"), "{text}");
    assert_eq!(err.line(), Some(line), "{text}");
    assert_eq!(err.key(), Some(key), "{text}");
    assert!(text.contains(&format!(":{line}:")), "{text}");
    assert!(text.contains(&format!("`{key}`")), "{text}");
    assert!(text.contains(words), "{text}");
    text
}

#[test]
fn the_shipped_version_loads_and_agrees_with_the_platform() {
    let all = referentiel::load(&referentiel::built_in(), &[], TODAY).expect("loads");
    let current = all.current(TODAY).expect("a current version");
    assert_eq!(current.version, "2026.1");
    assert_eq!(current.valid_from, date!(2026 - 01 - 01));
    // Same domains, same order, same sensitivity as consent.
    let ids: Vec<_> = current.domains.iter().map(|d| d.id.as_str()).collect();
    let platform: Vec<_> = DOMAINS.iter().map(|d| d.id).collect();
    assert_eq!(ids, platform);
    for (d, p) in current.domains.iter().zip(DOMAINS) {
        assert_eq!(d.sensitive, p.sensitive, "{}", d.id);
        assert!(
            (3..=8).contains(&d.items.len()),
            "{}: {} items",
            d.id,
            d.items.len()
        );
        for i in &d.items {
            assert!(i.id.starts_with(&format!("{}.", d.id)), "{}", i.id);
            assert!(!i.label_fr.is_empty() && !i.help_fr.is_empty(), "{}", i.id);
        }
    }
    let codes: Vec<_> = current.levels.iter().map(|l| l.level).collect();
    assert_eq!(codes, Level::ALL);
    let ft: Vec<_> = current
        .domains
        .iter()
        .filter_map(|d| d.france_travail_code.as_deref())
        .collect();
    assert_eq!(ft, ["23", "25", "27", "28", "24", "29", "26"]);
    let sensitive: Vec<_> = current
        .domains
        .iter()
        .filter(|d| d.sensitive)
        .map(|d| d.id.as_str())
        .collect();
    assert_eq!(
        sensitive,
        ["sante", "difficultes-administratives-ou-juridiques"]
    );
}

#[test]
fn an_unknown_scale_value_is_refused_with_its_line() {
    let s = edited("code = \"frein\"\n", "code = \"tres_bien\"\n");
    let line = line_of(&s.text, "code = \"tres_bien\"");
    refused(&s, line, "code", "tres_bien");
}

#[test]
fn a_missing_scale_value_is_refused() {
    let s = shipped();
    let start = s
        .text
        .find("[[levels]]\ncode = \"point_d_appui\"")
        .expect("present");
    let end = start + s.text[start..].find("\n\n").expect("block end");
    let s = Source {
        name: "mon-referentiel.toml".into(),
        text: format!("{}{}", &s.text[..start], &s.text[end..]),
    };
    let err = referentiel::parse(&s).expect_err("refused");
    assert_eq!(err.key(), Some("levels"), "{err}");
    assert!(err.line().is_some(), "{err}");
    assert!(err.to_string().contains("point_d_appui"), "{err}");
}

#[test]
fn a_duplicate_scale_value_is_refused() {
    let s = edited("code = \"point_d_appui\"", "code = \"frein\"");
    let line = line_of(&s.text, "code = \"frein\"\n");
    let last = s.text.rfind("code = \"frein\"").expect("present");
    let second = s.text[..last].matches('\n').count() + 1;
    assert_ne!(line, second);
    refused(&s, second, "code", "double");
}

#[test]
fn a_duplicate_item_id_is_refused_with_its_line() {
    let s = edited("id = \"mobilite.budget\"", "id = \"mobilite.permis\"");
    let first = line_of(&s.text, "id = \"mobilite.permis\"");
    let at = s.text.rfind("id = \"mobilite.permis\"").expect("present");
    let second = s.text[..at].matches('\n').count() + 1;
    assert!(second > first);
    refused(&s, second, "id", "mobilite.permis");
}

#[test]
fn a_duplicate_domain_id_is_refused() {
    // Numérique written twice: the second one (renamed from competences) is refused.
    let s = edited("id = \"competences-generiques\"", "id = \"numerique\"");
    let at = s.text.rfind("id = \"numerique\"\n").expect("present");
    let line = s.text[..at].matches('\n').count() + 1;
    refused(&s, line, "id", "double");
}

#[test]
fn a_missing_label_is_refused_naming_it() {
    let s = edited("label_fr = \"Permis de conduire\"\n", "");
    // The error points into the item's table, at or after its header.
    let err = referentiel::parse(&s).expect_err("refused");
    let text = err.to_string();
    assert!(text.contains("label_fr"), "{text}");
    assert_eq!(err.key(), Some("label_fr"), "{text}");
    let header = line_of(&s.text, "id = \"mobilite.permis\"") - 1;
    let line = err.line().expect("a line");
    assert!(
        (header..header + 6).contains(&line),
        "line {line}, item at {header}: {text}"
    );
    // An empty label too.
    let s = edited("label_fr = \"Moral, santé mentale\"", "label_fr = \"  \"");
    let line = line_of(&s.text, "label_fr = \"  \"");
    refused(&s, line, "label_fr", "vide");
}

#[test]
fn too_few_or_too_many_items_are_refused() {
    // Compter is the 4th item of lecture-ecriture-calcul; drop two of them.
    let s = shipped();
    let start = s
        .text
        .find("[[domains.items]]\nid = \"lecture-ecriture-calcul.ecrire\"")
        .expect("present");
    let end = s
        .text
        .find("[[domains]]\nid = \"competences-generiques\"")
        .expect("present");
    let text = format!("{}{}", &s.text[..start], &s.text[end..]);
    let s = Source {
        name: "mon-referentiel.toml".into(),
        text,
    };
    let line = line_of(&s.text, "id = \"lecture-ecriture-calcul\"");
    refused(&s, line, "items", "2 item(s)");

    // Nine items in mobilité.
    let extra: String = (0..3)
        .map(|n| {
            format!(
                "[[domains.items]]\nid = \"mobilite.extra{n}\"\nlabel_fr = \"En plus\"\nlabel_en = \"Extra\"\n\n"
            )
        })
        .collect();
    let s = edited(
        "[[domains]]\nid = \"sante\"",
        &format!("{extra}[[domains]]\nid = \"sante\""),
    );
    let line = line_of(&s.text, "id = \"mobilite\"");
    refused(&s, line, "items", "9 item(s)");
}

#[test]
fn an_unknown_field_is_refused_naming_it() {
    let s = edited(
        "label_en = \"Driving licence\"\n",
        "label_en = \"Driving licence\"\ncolour = \"blue\"\n",
    );
    let line = line_of(&s.text, "colour = ");
    refused(&s, line, "colour", "unknown field");
}

#[test]
fn a_domain_unknown_to_the_platform_is_refused() {
    let s = edited("id = \"numerique\"", "id = \"loisirs\"");
    let line = line_of(&s.text, "id = \"loisirs\"");
    let text = refused(&s, line, "id", "loisirs");
    assert!(
        text.contains("mobilite"),
        "the message lists the known ids: {text}"
    );
}

#[test]
fn a_sensitivity_other_than_the_platforms_is_refused() {
    let s = edited(
        "sensitive = true\nfrance_travail_code = \"25\"",
        "sensitive = false\nfrance_travail_code = \"25\"",
    );
    let line = line_of(&s.text, "sensitive = false\nfrance_travail_code = \"25\"");
    refused(&s, line, "sensitive", "true");
}

#[test]
fn a_bad_date_is_refused() {
    let s = edited("valid_from = \"2026-01-01\"", "valid_from = \"2026-13-01\"");
    let line = line_of(&s.text, "valid_from = ");
    refused(&s, line, "valid_from", "2026-13-01");
}

#[test]
fn a_bad_france_travail_code_is_refused() {
    let s = edited(
        "france_travail_code = \"23\"",
        "france_travail_code = \"31\"",
    );
    let line = line_of(&s.text, "france_travail_code = \"31\"");
    refused(&s, line, "france_travail_code", "31");
}

#[test]
fn a_toml_syntax_error_names_its_line() {
    let s = edited("label_fr = \"Lire\"\n", "label_fr = \"Lire\n");
    let err = referentiel::parse(&s).expect_err("refused");
    let line = line_of(&s.text, "label_fr = \"Lire\n");
    assert_eq!(err.line(), Some(line), "{err}");
    assert!(!err.to_string().contains('\n'), "{err}");
}

#[test]
fn a_folder_version_replaces_or_adds_and_the_newest_in_use_is_current() {
    let next = edited("version = \"2026.1\"", "version = \"2027.1\"");
    let next = Source {
        name: "2027.1.toml".into(),
        text: next.text.replacen(
            "valid_from = \"2026-01-01\"",
            "valid_from = \"2027-01-01\"",
            1,
        ),
    };
    let all = referentiel::load(&referentiel::built_in(), std::slice::from_ref(&next), TODAY)
        .expect("loads");
    assert_eq!(all.len(), 2);
    // Not in use before its first day.
    assert_eq!(all.current(TODAY).expect("current").version, "2026.1");
    assert_eq!(
        all.current(date!(2027 - 01 - 01)).expect("current").version,
        "2027.1"
    );
    let order: Vec<_> = all.newest_first().map(|r| r.version.as_str()).collect();
    assert_eq!(order, ["2027.1", "2026.1"]);

    // Same label as a built-in version: replaces it.
    let replacement = edited("label_fr = \"Lire\"", "label_fr = \"Lire un texte\"");
    let all = referentiel::load(&referentiel::built_in(), &[replacement], TODAY).expect("loads");
    assert_eq!(all.len(), 1);
    let lecture = &all.get("2026.1").expect("present").domains[7];
    assert_eq!(lecture.items[1].label_fr, "Lire un texte");

    // Twice the same label in the folder: refused.
    let err = referentiel::load(&referentiel::built_in(), &[next.clone(), next], TODAY)
        .expect_err("refused");
    assert_eq!(err.key(), Some("version"), "{err}");

    // Nothing in use yet: refused.
    let err = referentiel::load(&referentiel::built_in(), &[], date!(2025 - 06 - 01))
        .expect_err("refused");
    assert!(matches!(err, LoadError::NoCurrent { .. }), "{err}");
}
