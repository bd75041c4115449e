//! Screening of posts for personal data of the people supported: e-mail
//! addresses, French phone numbers, NIR (social security numbers whose key
//! checks) and names of people the author's structure follows. Names are asked
//! of identity (`PersonService.MatchFollowedNames`), with the author's own
//! token, which compares them through its blind indexes: community never sees
//! a name it was not given. The author is asked to anonymise before posting.

use std::time::Duration;

use eva_platform::Config;
use eva_platform::auth::{Principal, Role};
use eva_platform::db::Db;
use eva_platform::sealing::Sealer;
use eva_platform::service::StartError;
use eva_proto::community::v1::{FindingKind, PersonalDataFinding};
use eva_proto::identity::v1::MatchFollowedNamesRequest;
use eva_proto::identity::v1::person_service_client::PersonServiceClient;
use tonic::Status;
use tonic::metadata::MetadataMap;
use tonic::transport::{Channel, Endpoint};
use tonic_types::{ErrorDetails, StatusExt};

/// Most name candidates sent to identity for one post.
pub const MAX_CANDIDATES: usize = 500;

/// Checks texts before they are stored.
#[derive(Clone)]
pub struct Screening {
    #[allow(dead_code)]
    db: Db,
    /// Identity, for names; `None` screens without names (tests of the rest).
    identity: Option<Channel>,
}

impl Screening {
    /// Without the name check (identity unknown).
    pub fn new(db: Db) -> Self {
        Self { db, identity: None }
    }

    /// The channel to identity, when known (also used for members' own names).
    pub fn identity(&self) -> Option<&Channel> {
        self.identity.as_ref()
    }

    /// With the name check, through identity at `config.identity.endpoint`,
    /// connected lazily.
    pub fn connect(config: &Config, db: Db, service: &'static str) -> Result<Self, StartError> {
        let url = &config.identity.endpoint;
        let channel = Endpoint::from_shared(url.clone())
            .map(|e| {
                e.connect_timeout(Duration::from_secs(3))
                    .tcp_nodelay(true)
                    .connect_lazy()
            })
            .map_err(|e| StartError::Other {
                service,
                reason: format!("identity.endpoint `{url}`: {e}"),
            })?;
        Ok(Self {
            db,
            identity: Some(channel),
        })
    }

    /// FAILED_PRECONDITION when one of `fields` (name, text) holds personal
    /// data of a person supported, naming each field and what was found.
    pub async fn check(
        &self,
        md: &MetadataMap,
        caller: &Principal,
        fields: &[(&str, &str)],
    ) -> Result<(), Status> {
        let findings = self.findings(md, caller, fields).await?;
        if findings.is_empty() {
            Ok(())
        } else {
            Err(refused(&findings))
        }
    }

    /// What in `fields` looks like personal data, in field order then text order.
    pub async fn findings(
        &self,
        md: &MetadataMap,
        caller: &Principal,
        fields: &[(&str, &str)],
    ) -> Result<Vec<PersonalDataFinding>, Status> {
        let mut out = Vec::new();
        let mut candidates: Vec<(usize, Candidate)> = Vec::new();
        for (i, (field, text)) in fields.iter().enumerate() {
            for (kind, start, end) in scan(text) {
                out.push(finding(kind, field, start, end));
            }
            for c in name_candidates(text) {
                if candidates.len() < MAX_CANDIDATES {
                    candidates.push((i, c));
                }
            }
        }
        let matched = self.followed_names(md, caller, &candidates).await?;
        for (i, c) in candidates {
            if matched.contains(&c.text) {
                out.push(finding(
                    FindingKind::PersonName,
                    fields[i].0,
                    c.start,
                    c.end,
                ));
            }
        }
        let order: Vec<&str> = fields.iter().map(|(f, _)| *f).collect();
        out.sort_by_key(|f| {
            (
                order
                    .iter()
                    .position(|o| *o == f.field)
                    .unwrap_or(usize::MAX),
                f.start,
                f.end,
            )
        });
        // A single word inside a matched pair is the same finding.
        let mut kept: Vec<PersonalDataFinding> = Vec::with_capacity(out.len());
        for f in out {
            let inside = kept.iter().any(|k| {
                k.field == f.field && k.kind == f.kind && k.start <= f.start && f.end <= k.end
            });
            if !inside {
                kept.retain(|k| {
                    !(k.field == f.field
                        && k.kind == f.kind
                        && f.start <= k.start
                        && k.end <= f.end)
                });
                kept.push(f);
            }
        }
        Ok(kept)
    }

    /// The candidates that identity says are names of people a structure of
    /// the caller follows.
    async fn followed_names(
        &self,
        md: &MetadataMap,
        caller: &Principal,
        candidates: &[(usize, Candidate)],
    ) -> Result<Vec<String>, Status> {
        let Some(channel) = &self.identity else {
            return Ok(Vec::new());
        };
        if candidates.is_empty() || !caller.has_any_role(&[Role::Counselor, Role::StructureAdmin]) {
            return Ok(Vec::new());
        }
        let mut texts: Vec<String> = Vec::new();
        for (_, c) in candidates {
            if !texts.contains(&c.text) {
                texts.push(c.text.clone());
            }
        }
        let mut matched = Vec::new();
        for structure_id in &caller.structures {
            let mut client = PersonServiceClient::new(channel.clone());
            let req = Sealer::request(
                md,
                MatchFollowedNamesRequest {
                    structure_id: structure_id.clone(),
                    candidates: texts.clone(),
                },
            );
            let answer = client.match_followed_names(req).await.map_err(|e| {
                tracing::warn!(code = ?e.code(), "name screening unavailable");
                Status::unavailable(
                    "vérification des noms impossible pour le moment, réessayez / \
                     the name check is unavailable for now, try again",
                )
            })?;
            matched.extend(answer.into_inner().matched);
        }
        Ok(matched)
    }
}

fn finding(kind: FindingKind, field: &str, start: usize, end: usize) -> PersonalDataFinding {
    PersonalDataFinding {
        kind: kind as i32,
        field: field.to_owned(),
        start: i32::try_from(start).unwrap_or(i32::MAX),
        end: i32::try_from(end).unwrap_or(i32::MAX),
    }
}

fn kind_fr_en(kind: FindingKind) -> (&'static str, &'static str) {
    match kind {
        FindingKind::Email => ("une adresse e-mail", "an e-mail address"),
        FindingKind::Phone => ("un numéro de téléphone", "a phone number"),
        FindingKind::Nir => (
            "un numéro de sécurité sociale (NIR)",
            "a social security number (NIR)",
        ),
        FindingKind::PersonName => (
            "le nom d'une personne suivie",
            "the name of a person followed",
        ),
        FindingKind::Unspecified => ("une donnée personnelle", "personal data"),
    }
}

/// FAILED_PRECONDITION with a French-then-English message and one
/// field violation per field.
pub fn refused(findings: &[PersonalDataFinding]) -> Status {
    let mut fr = Vec::new();
    let mut en = Vec::new();
    let mut details = ErrorDetails::new();
    let mut fields: Vec<&str> = Vec::new();
    for f in findings {
        let (k_fr, k_en) =
            kind_fr_en(FindingKind::try_from(f.kind).unwrap_or(FindingKind::Unspecified));
        let part_fr = format!("{k_fr} (champ {})", f.field);
        let part_en = format!("{k_en} (field {})", f.field);
        if !fr.contains(&part_fr) {
            fr.push(part_fr);
            en.push(part_en);
        }
        if !fields.contains(&f.field.as_str()) {
            fields.push(&f.field);
        }
    }
    for field in fields {
        let (kfr, ken): (Vec<&str>, Vec<&str>) = findings
            .iter()
            .filter(|f| f.field == field)
            .map(|f| kind_fr_en(FindingKind::try_from(f.kind).unwrap_or(FindingKind::Unspecified)))
            .fold((Vec::new(), Vec::new()), |(mut a, mut b), (x, y)| {
                if !a.contains(&x) {
                    a.push(x);
                    b.push(y);
                }
                (a, b)
            });
        details.add_bad_request_violation(
            field,
            format!(
                "contient {} : anonymisez avant de publier / contains {}: anonymise it before posting",
                kfr.join(", "),
                ken.join(", ")
            ),
        );
    }
    let message = format!(
        "votre texte semble contenir des données personnelles d'une personne accompagnée : {}. \
         Anonymisez-le avant de publier. / your text seems to contain personal data of a person \
         supported: {}. Anonymise it before posting.",
        fr.join(", "),
        en.join(", ")
    );
    Status::with_error_details(tonic::Code::FailedPrecondition, message, details)
}

// ---------------------------------------------------------------------------
// Detection (pure functions, in Unicode characters)
// ---------------------------------------------------------------------------

/// E-mails, phone numbers and NIRs in `text`: (kind, start, end) in characters.
pub fn scan(text: &str) -> Vec<(FindingKind, usize, usize)> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    out.extend(
        emails(&chars)
            .into_iter()
            .map(|(s, e)| (FindingKind::Email, s, e)),
    );
    let nirs = nirs(&chars);
    out.extend(nirs.iter().map(|&(s, e)| (FindingKind::Nir, s, e)));
    for (s, e) in phones(&chars) {
        if !nirs.iter().any(|&(ns, ne)| s < ne && ns < e) {
            out.push((FindingKind::Phone, s, e));
        }
    }
    out.sort_by_key(|&(_, s, e)| (s, e));
    out
}

fn is_local_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "._%+-".contains(c)
}

fn is_domain_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '.' || c == '-'
}

/// `local@domain.tld`.
pub fn emails(chars: &[char]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for (at, &c) in chars.iter().enumerate() {
        if c != '@' {
            continue;
        }
        let mut start = at;
        while start > 0 && is_local_char(chars[start - 1]) {
            start -= 1;
        }
        while start < at && chars[start] == '.' {
            start += 1;
        }
        let mut end = at + 1;
        while end < chars.len() && is_domain_char(chars[end]) {
            end += 1;
        }
        while end > at + 1 && (chars[end - 1] == '.' || chars[end - 1] == '-') {
            end -= 1;
        }
        if start == at || end == at + 1 {
            continue;
        }
        let domain: String = chars[at + 1..end].iter().collect();
        let Some((name, tld)) = domain.rsplit_once('.') else {
            continue;
        };
        if !name.is_empty() && tld.len() >= 2 && tld.chars().all(|c| c.is_ascii_alphabetic()) {
            out.push((start, end));
        }
    }
    out
}

fn is_separator(c: char) -> bool {
    matches!(c, ' ' | '.' | '-' | '\u{a0}' | '\u{202f}')
}

/// Reads `n` digits from `i`, with at most one separator between two
/// digits; returns the digits and the index after the last one.
fn digits(chars: &[char], mut i: usize, n: usize) -> Option<(String, usize)> {
    let mut got = String::new();
    while got.len() < n {
        if i < chars.len() && chars[i].is_ascii_digit() {
            got.push(chars[i]);
            i += 1;
        } else if !got.is_empty()
            && i + 1 < chars.len()
            && is_separator(chars[i])
            && chars[i + 1].is_ascii_digit()
        {
            i += 1;
        } else {
            return None;
        }
    }
    Some((got, i))
}

fn boundary_before(chars: &[char], i: usize) -> bool {
    i == 0 || !(chars[i - 1].is_alphanumeric() || chars[i - 1] == '+')
}

fn boundary_after(chars: &[char], i: usize) -> bool {
    i >= chars.len() || !chars[i].is_alphanumeric()
}

/// French phone numbers: `0X XX XX XX XX` (spaces, dots or dashes),
/// `+33 X XX XX XX XX` (also `+33 (0)X…`) and `0033 X…`.
pub fn phones(chars: &[char]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if !boundary_before(chars, i) {
            i += 1;
            continue;
        }
        let rest: String = chars[i..chars.len().min(i + 4)].iter().collect();
        let national = if rest.starts_with("+33") || rest.starts_with("0033") {
            let mut j = i + if rest.starts_with('+') { 3 } else { 4 };
            while j < chars.len() && is_separator(chars[j]) {
                j += 1;
            }
            if chars[j..].starts_with(&['(', '0', ')']) {
                j += 3;
                while j < chars.len() && is_separator(chars[j]) {
                    j += 1;
                }
            }
            digits(chars, j, 9).filter(|(d, _)| !d.starts_with('0'))
        } else if chars[i] == '0' {
            digits(chars, i + 1, 9)
                .filter(|(d, _)| !d.starts_with('0'))
                .filter(|_| i + 1 < chars.len() && chars[i + 1].is_ascii_digit())
        } else {
            None
        };
        match national {
            Some((_, end)) if boundary_after(chars, end) => {
                out.push((i, end));
                i = end;
            }
            _ => i += 1,
        }
    }
    out
}

/// Whether the 15 characters (13 then a 2-digit key) are a NIR whose key
/// checks: key = 97 − (number mod 97), Corsica's 2A read as 19 and 2B as 18.
pub fn nir_key_checks(nir: &str) -> bool {
    if nir.len() != 15 || !nir.is_ascii() {
        return false;
    }
    let (body, key) = nir.split_at(13);
    if !matches!(&body[..1], "1" | "2") {
        return false;
    }
    let body = match &body[5..7] {
        "2A" | "2a" => format!("{}19{}", &body[..5], &body[7..]),
        "2B" | "2b" => format!("{}18{}", &body[..5], &body[7..]),
        _ => body.to_owned(),
    };
    if !body.bytes().all(|b| b.is_ascii_digit()) || !key.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    match (body.parse::<u64>(), key.parse::<u64>()) {
        (Ok(n), Ok(k)) => k == 97 - n % 97,
        _ => false,
    }
}

/// NIRs, spaces allowed between the groups (`1 85 05 78 006 084 91`).
pub fn nirs(chars: &[char]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if !(matches!(chars[i], '1' | '2') && boundary_before(chars, i)) {
            i += 1;
            continue;
        }
        let mut got = String::new();
        let mut j = i;
        while got.len() < 15 && j < chars.len() {
            let c = chars[j];
            let pos = got.len();
            if c.is_ascii_digit() || (pos == 5 && matches!(c, 'A' | 'B' | 'a' | 'b')) {
                got.push(c);
                j += 1;
            } else if pos > 0
                && is_separator(c)
                && j + 1 < chars.len()
                && chars[j + 1].is_ascii_alphanumeric()
            {
                j += 1;
            } else {
                break;
            }
        }
        if got.len() == 15 && boundary_after(chars, j) && nir_key_checks(&got) {
            out.push((i, j));
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

/// A possible name in a text, with its place in characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub text: String,
    pub start: usize,
    pub end: usize,
}

/// Capitalised words (two letters or more) and adjacent pairs of them:
/// "J'ai vu Marie Dupont" gives "Marie", "Dupont" and "Marie Dupont".
pub fn name_candidates(text: &str) -> Vec<Candidate> {
    let chars: Vec<char> = text.chars().collect();
    let mut words: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_alphabetic() {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphabetic()
                    || (chars[i] == '-' && i + 1 < chars.len() && chars[i + 1].is_alphabetic()))
            {
                i += 1;
            }
            words.push((start, i));
        } else {
            i += 1;
        }
    }
    let text_of = |(s, e): (usize, usize)| chars[s..e].iter().collect::<String>();
    let capitalised = |&(s, e): &(usize, usize)| e - s >= 2 && chars[s].is_uppercase();
    let mut out: Vec<Candidate> = Vec::new();
    let mut push = |c: Candidate| {
        if !out.iter().any(|o| o.text == c.text && o.start == c.start) {
            out.push(c);
        }
    };
    for (k, w) in words.iter().enumerate() {
        if !capitalised(w) {
            continue;
        }
        push(Candidate {
            text: text_of(*w),
            start: w.0,
            end: w.1,
        });
        if let Some(next) = words.get(k + 1) {
            let between: String = chars[w.1..next.0].iter().collect();
            if capitalised(next) && between.chars().all(char::is_whitespace) {
                push(Candidate {
                    text: format!("{} {}", text_of(*w), text_of(*next)),
                    start: w.0,
                    end: next.1,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str) -> Vec<(FindingKind, String)> {
        let chars: Vec<char> = text.chars().collect();
        scan(text)
            .into_iter()
            .map(|(k, s, e)| (k, chars[s..e].iter().collect()))
            .collect()
    }

    #[test]
    fn nir_keys_are_checked_corsica_included() {
        assert!(nir_key_checks("185057800608491"));
        assert!(!nir_key_checks("185057800608492"));
        // 2A: 1 85 05 2A 006 084 + key with 19 substituted
        let n: u64 = "1850519006084".parse().unwrap();
        let key = 97 - n % 97;
        assert!(nir_key_checks(&format!("185052A006084{key:02}")));
        let n: u64 = "1850518006084".parse().unwrap();
        let key = 97 - n % 97;
        assert!(nir_key_checks(&format!("185052B006084{key:02}")));
        assert!(!nir_key_checks(&format!("385052B006084{key:02}")));
    }

    #[test]
    fn nirs_are_found_with_or_without_spaces_only_when_the_key_checks() {
        assert_eq!(
            found("son numéro 1 85 05 78 006 084 91 est à jour"),
            vec![(FindingKind::Nir, "1 85 05 78 006 084 91".to_owned())]
        );
        assert_eq!(
            found("NIR:185057800608491."),
            vec![(FindingKind::Nir, "185057800608491".to_owned())]
        );
        assert!(found("dossier 185057800608492").is_empty());
    }

    #[test]
    fn french_phone_numbers() {
        for p in [
            "06 12 34 56 78",
            "06.12.34.56.78",
            "06-12-34-56-78",
            "0612345678",
            "+33 6 12 34 56 78",
            "+33612345678",
            "+33 (0)6 12 34 56 78",
            "0033 6 12 34 56 78",
            "01 23 45 67 89",
        ] {
            assert_eq!(
                found(&format!("appelez le {p} demain")),
                vec![(FindingKind::Phone, p.to_owned())],
                "{p}"
            );
        }
        assert!(found("en 2024, 12 personnes sur 345").is_empty());
        assert!(found("réf 00 12 34 56 78").is_empty());
        assert!(found("06 12 34 56 7").is_empty());
        assert!(found("061234567890").is_empty());
    }

    #[test]
    fn emails() {
        assert_eq!(
            found("écrire à marie.dupont+rsa@exemple.fr."),
            vec![(FindingKind::Email, "marie.dupont+rsa@exemple.fr".to_owned())]
        );
        assert!(found("rendez-vous @ 10h à la mairie").is_empty());
        assert!(found("user@localhost").is_empty());
    }

    #[test]
    fn positions_are_in_characters() {
        let text = "Élodie écrit à a@b.fr";
        let s = scan(text);
        assert_eq!(s, vec![(FindingKind::Email, 15, 21)]);
    }

    #[test]
    fn name_candidates_are_capitalised_words_and_pairs() {
        let c: Vec<String> =
            name_candidates("J'ai vu Mme Zabalveytia hier avec Jean-Pierre Martin.")
                .into_iter()
                .map(|c| c.text)
                .collect();
        assert_eq!(
            c,
            vec![
                "Mme",
                "Mme Zabalveytia",
                "Zabalveytia",
                "Jean-Pierre",
                "Jean-Pierre Martin",
                "Martin"
            ]
        );
    }

    #[test]
    fn the_refusal_names_each_field() {
        let s = refused(&[
            finding(FindingKind::Phone, "body", 0, 10),
            finding(FindingKind::Email, "title", 0, 5),
        ]);
        assert_eq!(s.code(), tonic::Code::FailedPrecondition);
        assert!(
            s.message().starts_with(
                "votre texte semble contenir des données personnelles d'une personne accompagnée : \
                 un numéro de téléphone (champ body)"
            ),
            "{}",
            s.message()
        );
        let v = s.get_details_bad_request().unwrap().field_violations;
        let fields: Vec<_> = v.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, vec!["body", "title"]);
    }
}
