//! People supported: their identity fields, each sealed with the person's own
//! data key; exact-match search through keyed blind indexes; and the
//! accompaniments that say which structure follows whom (who may see them).

pub mod api;
pub mod store;

use eva_platform::auth::{Principal, Role};
use eva_platform::consent::DATE_FORMAT;
use eva_platform::crypto::BlindIndex;
use eva_proto::identity::v1 as pb;
use time::Date;
use uuid::Uuid;

use crate::structure::{FieldError, insee_is_valid};

pub use api::PersonApi;

/// Longest accepted name, in characters.
pub const MAX_NAME: usize = 100;
/// Longest accepted e-mail address (RFC 5321 path limit).
pub const MAX_EMAIL: usize = 254;

fn bad(field: &'static str, message: &str) -> FieldError {
    FieldError {
        field,
        message: message.to_owned(),
    }
}

/// A person's identity fields, in clear, validated and normalised. Only ever
/// in memory: stored sealed, never logged.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct PersonFields {
    pub first_name: String,
    pub last_name: String,
    /// `YYYY-MM-DD`.
    pub birth_date: String,
    /// Empty when not given.
    pub email: String,
    /// Empty when not given.
    pub phone: String,
    /// 15 characters without spaces; empty when not given.
    pub nir: String,
    /// INSEE code of the commune of residence.
    pub commune_insee: String,
}

impl std::fmt::Debug for PersonFields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PersonFields(<personal data>)")
    }
}

/// The fields that make up a person, with the column and AAD name of each.
pub const FIELDS: [&str; 7] = [
    "first_name",
    "last_name",
    "birth_date",
    "email",
    "phone",
    "nir",
    "commune_insee",
];

impl PersonFields {
    /// The value of field `name` (one of [`FIELDS`]).
    pub fn get(&self, name: &str) -> &str {
        match name {
            "first_name" => &self.first_name,
            "last_name" => &self.last_name,
            "birth_date" => &self.birth_date,
            "email" => &self.email,
            "phone" => &self.phone,
            "nir" => &self.nir,
            _ => &self.commune_insee,
        }
    }

    pub fn set(&mut self, name: &str, value: String) {
        match name {
            "first_name" => self.first_name = value,
            "last_name" => self.last_name = value,
            "birth_date" => self.birth_date = value,
            "email" => self.email = value,
            "phone" => self.phone = value,
            "nir" => self.nir = value,
            _ => self.commune_insee = value,
        }
    }

    /// From a registration, normalised and checked field by field.
    pub fn parse(req: &pb::CreatePersonRequest, today: Date) -> Result<Self, FieldError> {
        let mut fields = Self::default();
        for (name, raw) in [
            ("first_name", &req.first_name),
            ("last_name", &req.last_name),
            ("birth_date", &req.birth_date),
            ("email", &req.email),
            ("phone", &req.phone),
            ("nir", &req.nir),
            ("commune_insee", &req.commune_insee),
        ] {
            fields.set(name, normalise(name, raw, today)?);
        }
        Ok(fields)
    }

    /// Applies a change; unset fields stay as they are. A request that sets
    /// no field is refused (field `body`).
    pub fn apply(&mut self, req: &pb::UpdatePersonRequest, today: Date) -> Result<(), FieldError> {
        let changes = [
            ("first_name", &req.first_name),
            ("last_name", &req.last_name),
            ("birth_date", &req.birth_date),
            ("email", &req.email),
            ("phone", &req.phone),
            ("nir", &req.nir),
            ("commune_insee", &req.commune_insee),
        ];
        if changes.iter().all(|(_, v)| v.is_none()) {
            return Err(bad(
                "body",
                "rien à modifier : indiquez au moins un champ / nothing to change: give at least one field",
            ));
        }
        for (name, value) in changes {
            if let Some(raw) = value {
                let v = normalise(name, raw, today)?;
                self.set(name, v);
            }
        }
        Ok(())
    }

    /// Blind indexes: (name, nir, email); the last two empty when absent.
    pub fn blind_indexes(&self, bidx: &BlindIndex) -> (String, String, String) {
        (
            name_index(bidx, &self.last_name, &self.first_name, &self.birth_date),
            optional_index(bidx, "nir", &self.nir),
            optional_index(bidx, "email", &self.email),
        )
    }
}

/// The blind index of a full name with a birth date.
pub fn name_index(bidx: &BlindIndex, last: &str, first: &str, birth_date: &str) -> String {
    bidx.index(
        "name",
        &format!("{}|{}|{}", last.trim(), first.trim(), birth_date.trim()),
    )
}

/// The blind indexes a post's words are matched with: the last name alone,
/// and "first last" (`MatchFollowedNames`).
pub fn name_match_indexes(bidx: &BlindIndex, last: &str, first: &str) -> (String, String) {
    (
        bidx.index("name_match_last", last),
        bidx.index("name_match_full", &format!("{first} {last}")),
    )
}

/// The blind index of a candidate name, as both kinds of match index.
pub fn candidate_indexes(bidx: &BlindIndex, candidate: &str) -> (String, String) {
    (
        bidx.index("name_match_last", candidate),
        bidx.index("name_match_full", candidate),
    )
}

/// The blind index of `value`, or `""` when it is empty.
pub fn optional_index(bidx: &BlindIndex, field: &str, value: &str) -> String {
    if value.is_empty() {
        String::new()
    } else {
        bidx.index(field, value)
    }
}

/// Checks one field and returns it as stored.
pub fn normalise(field: &'static str, raw: &str, today: Date) -> Result<String, FieldError> {
    match field {
        "first_name" | "last_name" => check_name(field, raw),
        "birth_date" => check_birth_date(raw, today),
        "email" => check_email(raw),
        "phone" => check_phone(raw),
        "nir" => check_nir(raw),
        _ => check_commune(raw),
    }
}

fn check_name(field: &'static str, raw: &str) -> Result<String, FieldError> {
    let v = raw.split_whitespace().collect::<Vec<_>>().join(" ");
    let n = v.chars().count();
    if n == 0 || n > MAX_NAME || v.chars().any(char::is_control) {
        return Err(bad(
            field,
            "obligatoire, 100 caractères au plus / required, at most 100 characters",
        ));
    }
    Ok(v)
}

/// A date `YYYY-MM-DD`.
pub fn parse_date(raw: &str) -> Option<Date> {
    if raw.len() != 10 {
        return None;
    }
    Date::parse(raw, DATE_FORMAT).ok()
}

fn check_birth_date(raw: &str, today: Date) -> Result<String, FieldError> {
    let raw = raw.trim();
    let earliest = Date::from_calendar_date(1900, time::Month::January, 1).unwrap_or(Date::MIN);
    match parse_date(raw) {
        Some(d) if d >= earliest && d <= today => Ok(raw.to_owned()),
        Some(_) => Err(bad(
            "birth_date",
            "la date de naissance ne peut être ni dans le futur ni avant 1900 / birth date cannot be in the future nor before 1900",
        )),
        None => Err(bad(
            "birth_date",
            "date de naissance attendue au format AAAA-MM-JJ, ex. 1985-05-20 / birth date must be a real date YYYY-MM-DD",
        )),
    }
}

/// A plain syntax check: one `@`, a local part, a domain with a dot.
pub fn email_is_valid(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    let domain_ok = domain.contains('.')
        && !domain.starts_with(['.', '-'])
        && !domain.ends_with(['.', '-'])
        && !domain.contains("..")
        && domain
            .chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '.');
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| c.is_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c));
    email.len() <= MAX_EMAIL && local_ok && domain_ok
}

fn check_email(raw: &str) -> Result<String, FieldError> {
    let v = raw.trim().to_lowercase();
    if v.is_empty() || email_is_valid(&v) {
        Ok(v)
    } else {
        Err(bad(
            "email",
            "adresse e-mail invalide, ex. prenom.nom@exemple.fr / not a valid e-mail address",
        ))
    }
}

fn check_phone(raw: &str) -> Result<String, FieldError> {
    let v = raw.split_whitespace().collect::<Vec<_>>().join(" ");
    if v.is_empty() {
        return Ok(v);
    }
    let n = v.chars().count();
    let chars_ok = v
        .chars()
        .enumerate()
        .all(|(i, c)| c.is_ascii_digit() || c == ' ' || (c == '+' && i == 0));
    let digits = v.chars().filter(char::is_ascii_digit).count();
    if chars_ok && (6..=20).contains(&n) && digits >= 6 {
        Ok(v)
    } else {
        Err(bad(
            "phone",
            "numéro de téléphone : chiffres, espaces et + au début, 6 à 20 caractères / phone: digits, spaces and a leading +, 6 to 20 characters",
        ))
    }
}

/// NIR (numéro de sécurité sociale): 13 characters then a 2-digit key equal
/// to 97 − (number mod 97). Born in Corsica, the département is `2A` or `2B`,
/// counted as 19 and 18.
pub fn nir_is_valid(nir: &str) -> bool {
    if nir.len() != 15 || !nir.is_ascii() {
        return false;
    }
    let (body, key) = nir.split_at(13);
    let body = match &body[5..7] {
        "2A" => format!("{}19{}", &body[..5], &body[7..]),
        "2B" => format!("{}18{}", &body[..5], &body[7..]),
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

fn check_nir(raw: &str) -> Result<String, FieldError> {
    let v: String = raw
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_uppercase();
    if v.is_empty() || nir_is_valid(&v) {
        Ok(v)
    } else {
        Err(bad(
            "nir",
            "numéro de sécurité sociale invalide : 15 caractères dont la clé de contrôle / social security number must be 15 characters with a valid key",
        ))
    }
}

fn check_commune(raw: &str) -> Result<String, FieldError> {
    let v = raw.trim().to_uppercase();
    if insee_is_valid(&v) {
        Ok(v)
    } else {
        Err(bad(
            "commune_insee",
            "le code commune INSEE compte 5 caractères (ex. 27229, 2A004) / INSEE commune code is 5 characters",
        ))
    }
}

/// A referent counselor's account id: empty or a UUID.
pub fn check_referent(raw: &str) -> Result<String, FieldError> {
    let v = raw.trim();
    if v.is_empty() || Uuid::parse_str(v).is_ok() {
        Ok(v.to_owned())
    } else {
        Err(bad(
            "referent_user_id",
            "identifiant de compte invalide / not a valid account id",
        ))
    }
}

/// A UUID id of a request, or INVALID_ARGUMENT naming it.
pub fn check_id(field: &'static str, raw: &str) -> Result<(), tonic::Status> {
    if Uuid::parse_str(raw).is_ok() {
        Ok(())
    } else {
        Err(eva_platform::grpc::invalid_field(
            field,
            "identifiant invalide / not a valid id",
        ))
    }
}

/// How the caller may see a person's file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Relation {
    /// The person themself, with their own account.
    Themself,
    /// A counselor or structure admin of a structure that follows the
    /// person, acting for that structure.
    Following { structure_id: String },
}

impl Relation {
    /// The structure the caller acts for, for the access log.
    pub fn structure_id(&self) -> Option<&str> {
        match self {
            Relation::Themself => None,
            Relation::Following { structure_id } => Some(structure_id),
        }
    }
}

/// Who may open a person's file: the person, or a counselor or admin of a
/// structure following them (open accompaniment). `following` lists the
/// structures that follow the person now; `exists` says the person is known.
/// Anyone else gets `None`, to be answered NOT_FOUND.
pub fn relation(
    caller: &Principal,
    person_id: &str,
    exists: bool,
    following: &[String],
) -> Option<Relation> {
    if !exists {
        return None;
    }
    if caller.has_role(Role::Person) && caller.person_id.as_deref() == Some(person_id) {
        return Some(Relation::Themself);
    }
    if !caller.has_any_role(&[Role::Counselor, Role::StructureAdmin]) {
        return None;
    }
    caller
        .structures
        .iter()
        .find(|s| following.contains(s))
        .map(|s| Relation::Following {
            structure_id: s.clone(),
        })
}

/// The NOT_FOUND every caller who may not see a person gets, whether the
/// person exists or not.
pub fn person_not_found() -> tonic::Status {
    tonic::Status::not_found("personne introuvable / person not found")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> Date {
        Date::from_calendar_date(2026, time::Month::June, 1).unwrap()
    }

    #[test]
    fn nir_keys_are_checked_corsica_included() {
        assert!(nir_is_valid("185057800608491"));
        assert!(nir_is_valid("269029934173285"));
        assert!(nir_is_valid("185052A00608435"));
        assert!(nir_is_valid("185052B00608462"));
        assert!(!nir_is_valid("185057800608492"));
        assert!(!nir_is_valid("185052A00608462"));
        assert!(!nir_is_valid("18505780060849"));
        assert!(!nir_is_valid("1850578006084é1"));
        assert!(!nir_is_valid("18505780060849X"));
        assert_eq!(
            check_nir("1 85 05 78 006 084 91").unwrap(),
            "185057800608491"
        );
        assert_eq!(
            check_nir("1 85 05 2a 006 084 35").unwrap(),
            "185052A00608435"
        );
        assert_eq!(check_nir("").unwrap(), "");
        assert_eq!(check_nir("185057800608492").unwrap_err().field, "nir");
    }

    #[test]
    fn birth_dates_are_real_past_dates_since_1900() {
        assert_eq!(
            check_birth_date("1985-05-20", today()).unwrap(),
            "1985-05-20"
        );
        assert_eq!(
            check_birth_date("2026-06-01", today()).unwrap(),
            "2026-06-01"
        );
        assert!(check_birth_date("2026-06-02", today()).is_err());
        assert!(check_birth_date("1899-12-31", today()).is_err());
        assert!(check_birth_date("1985-02-30", today()).is_err());
        assert!(check_birth_date("20/05/1985", today()).is_err());
        assert!(check_birth_date("1985-5-20", today()).is_err());
    }

    #[test]
    fn contact_fields() {
        assert_eq!(
            check_email(" Ana.Dupont@Exemple.FR ").unwrap(),
            "ana.dupont@exemple.fr"
        );
        for bad in [
            "ana",
            "ana@",
            "@x.fr",
            "ana@x",
            "a b@x.fr",
            "ana@x..fr",
            "ana@@x.fr",
        ] {
            assert!(check_email(bad).is_err(), "{bad}");
        }
        assert_eq!(
            check_phone("+33 6 12 34 56 78").unwrap(),
            "+33 6 12 34 56 78"
        );
        assert_eq!(check_phone("").unwrap(), "");
        for bad in [
            "12345",
            "06-12-34-56-78",
            "6+33612345678",
            "0612345678901234567890",
        ] {
            assert!(check_phone(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn typed_names_meet_the_name_match_indexes_only() {
        let kek =
            eva_platform::crypto::Kek::from_base64(&eva_platform::crypto::Kek::generate_base64())
                .unwrap();
        let bidx = kek.blind_index();
        let (last, full) = name_match_indexes(&bidx, "Zabalveytia", "Maite");
        assert_eq!(candidate_indexes(&bidx, "ZABALVEYTIA").0, last);
        assert_eq!(candidate_indexes(&bidx, " maite   zabalveytia ").1, full);
        // A last name is no full name, a first name alone is nothing.
        assert_ne!(candidate_indexes(&bidx, "Zabalveytia").1, full);
        let maite = candidate_indexes(&bidx, "Maite");
        assert!(![&last, &full].contains(&&maite.0) && ![&last, &full].contains(&&maite.1));
        // Distinct from the search index of ListPeople.
        assert_ne!(last, bidx.index("last_name", "Zabalveytia"));
    }

    #[test]
    fn names_and_registrations() {
        let ok = pb::CreatePersonRequest {
            structure_id: Uuid::now_v7().to_string(),
            first_name: " Ana  Maria ".into(),
            last_name: "Dupont".into(),
            birth_date: "1985-05-20".into(),
            email: String::new(),
            phone: String::new(),
            nir: String::new(),
            commune_insee: "27229".into(),
            referent_user_id: String::new(),
        };
        let f = PersonFields::parse(&ok, today()).unwrap();
        assert_eq!(f.first_name, "Ana Maria");
        let long = pb::CreatePersonRequest {
            last_name: "x".repeat(101),
            ..ok.clone()
        };
        assert_eq!(
            PersonFields::parse(&long, today()).unwrap_err().field,
            "last_name"
        );
        let empty = pb::CreatePersonRequest {
            first_name: "  ".into(),
            ..ok.clone()
        };
        assert_eq!(
            PersonFields::parse(&empty, today()).unwrap_err().field,
            "first_name"
        );
        let commune = pb::CreatePersonRequest {
            commune_insee: "2C004".into(),
            ..ok
        };
        assert_eq!(
            PersonFields::parse(&commune, today()).unwrap_err().field,
            "commune_insee"
        );
        assert!(check_referent("x").is_err());
        assert!(check_referent("").is_ok());
        assert!(format!("{f:?}").contains("personal data"));
        assert!(!format!("{f:?}").contains("Dupont"));
    }

    #[test]
    fn only_the_person_and_following_structures_relate() {
        let p = |roles: Vec<Role>, structures: Vec<&str>, person: Option<&str>| Principal {
            user_id: "u".into(),
            roles,
            structures: structures.into_iter().map(String::from).collect(),
            person_id: person.map(String::from),
            token_id: "t".into(),
        };
        let following = vec!["A".to_owned()];
        assert_eq!(
            relation(
                &p(vec![Role::Person], vec![], Some("x")),
                "x",
                true,
                &following
            ),
            Some(Relation::Themself)
        );
        assert_eq!(
            relation(
                &p(vec![Role::Person], vec![], Some("y")),
                "x",
                true,
                &following
            ),
            None
        );
        assert_eq!(
            relation(
                &p(vec![Role::Counselor], vec!["B", "A"], None),
                "x",
                true,
                &following
            ),
            Some(Relation::Following {
                structure_id: "A".into()
            })
        );
        assert_eq!(
            relation(
                &p(vec![Role::Counselor], vec!["B"], None),
                "x",
                true,
                &following
            ),
            None
        );
        // A partner or an operator who belongs to a following structure still sees nothing.
        assert_eq!(
            relation(
                &p(vec![Role::Partner], vec!["A"], None),
                "x",
                true,
                &following
            ),
            None
        );
        assert_eq!(
            relation(
                &p(vec![Role::Counselor], vec!["A"], None),
                "x",
                false,
                &following
            ),
            None
        );
    }
}
