//! The data·inclusion schema v1 "service" record: its checks and its JSON
//! (gip-inclusion/data-inclusion-schema, `v1/services.py`).
//!
//! The same checks run on a service created or changed in EVA and on each
//! row of an imported file; a fault names the field in the caller's words:
//! the data·inclusion name (`nom`) for a file, EVA's name (`name`) for the
//! API. EVA's own fields (`capacity`, `available_places`, the EVA structure)
//! are not part of the schema: an export leaves them out and an import
//! leaves them as they were.
//!
//! The schema has one `type` per service; EVA keeps a list (`types`). An
//! export writes `type` (the first) and, only when there are several, the
//! whole list as `types`, which an import reads back.

use std::collections::HashSet;

use eva_proto::referrals::v1 as pb;
use serde_json::{Map, Value};

use super::vocabulary::{self as voc, knows};

/// Largest file an import takes, in bytes.
pub const MAX_FILE_BYTES: usize = 20 * 1024 * 1024;
/// Most rows in one imported file.
pub const MAX_ROWS: usize = 50_000;
/// Longest id (`id`, `structure_id`, `source`).
const MAX_ID: usize = 255;
/// Longest short text (commune, address, contact, phone…).
const MAX_SHORT: usize = 500;
/// Longest free text (details, access conditions, opening hours).
const MAX_TEXT: usize = 5_000;

/// A field of a service, with its data·inclusion and EVA names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Source,
    SourceStructureId,
    SourceId,
    Name,
    Description,
    UpdatedOn,
    Types,
    Thematiques,
    Fees,
    FeesDetails,
    Publics,
    PublicsDetails,
    AccessConditions,
    Commune,
    PostalCode,
    CommuneInsee,
    Address,
    AddressComplement,
    Longitude,
    Latitude,
    Phone,
    Email,
    ReceptionModes,
    EligibilityZone,
    ContactName,
    MobilisationLink,
    MobilisationModes,
    MobilisableBy,
    MobilisationDetails,
    WeeklyHours,
    Weeks,
    OpeningHours,
    Capacity,
    AvailablePlaces,
}

impl Field {
    /// Its name in a data·inclusion file.
    pub fn di(self) -> &'static str {
        match self {
            Field::Source => "source",
            Field::SourceStructureId => "structure_id",
            Field::SourceId => "id",
            Field::Name => "nom",
            Field::Description => "description",
            Field::UpdatedOn => "date_maj",
            Field::Types => "type",
            Field::Thematiques => "thematiques",
            Field::Fees => "frais",
            Field::FeesDetails => "frais_precisions",
            Field::Publics => "publics",
            Field::PublicsDetails => "publics_precisions",
            Field::AccessConditions => "conditions_acces",
            Field::Commune => "commune",
            Field::PostalCode => "code_postal",
            Field::CommuneInsee => "code_insee",
            Field::Address => "adresse",
            Field::AddressComplement => "complement_adresse",
            Field::Longitude => "longitude",
            Field::Latitude => "latitude",
            Field::Phone => "telephone",
            Field::Email => "courriel",
            Field::ReceptionModes => "modes_accueil",
            Field::EligibilityZone => "zone_eligibilite",
            Field::ContactName => "contact_nom_prenom",
            Field::MobilisationLink => "lien_mobilisation",
            Field::MobilisationModes => "modes_mobilisation",
            Field::MobilisableBy => "mobilisable_par",
            Field::MobilisationDetails => "mobilisation_precisions",
            Field::WeeklyHours => "volume_horaire_hebdomadaire",
            Field::Weeks => "nombre_semaines",
            Field::OpeningHours => "horaires_accueil",
            Field::Capacity => "capacity",
            Field::AvailablePlaces => "available_places",
        }
    }

    /// Its name in EVA's API (the `Service` message).
    pub fn eva(self) -> &'static str {
        match self {
            Field::Source => "source",
            Field::SourceStructureId => "source_structure_id",
            Field::SourceId => "source_id",
            Field::Name => "name",
            Field::Description => "description",
            Field::UpdatedOn => "updated_on",
            Field::Types => "types",
            Field::Thematiques => "thematiques",
            Field::Fees => "fees",
            Field::FeesDetails => "fees_details",
            Field::Publics => "publics",
            Field::PublicsDetails => "publics_details",
            Field::AccessConditions => "access_conditions",
            Field::Commune => "commune",
            Field::PostalCode => "postal_code",
            Field::CommuneInsee => "commune_insee",
            Field::Address => "address",
            Field::AddressComplement => "address_complement",
            Field::Longitude => "longitude",
            Field::Latitude => "latitude",
            Field::Phone => "phone",
            Field::Email => "email",
            Field::ReceptionModes => "reception_modes",
            Field::EligibilityZone => "eligibility_zone",
            Field::ContactName => "contact_name",
            Field::MobilisationLink => "mobilisation_link",
            Field::MobilisationModes => "mobilisation_modes",
            Field::MobilisableBy => "mobilisable_by",
            Field::MobilisationDetails => "mobilisation_details",
            Field::WeeklyHours => "weekly_hours",
            Field::Weeks => "weeks",
            Field::OpeningHours => "opening_hours",
            Field::Capacity => "capacity",
            Field::AvailablePlaces => "available_places",
        }
    }
}

/// What is wrong with one field of a service.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub field: Field,
    /// Plain words, French then English.
    pub reason: String,
}

fn fault(field: Field, reason: impl Into<String>) -> Fault {
    Fault {
        field,
        reason: reason.into(),
    }
}

/// Trims the texts and drops repeated codes, so what is stored (and
/// exported) reads the same whatever the spacing of the input.
pub fn normalise(s: &mut pb::Service) {
    for t in [
        &mut s.source,
        &mut s.source_id,
        &mut s.source_structure_id,
        &mut s.name,
        &mut s.description,
        &mut s.fees,
        &mut s.fees_details,
        &mut s.publics_details,
        &mut s.access_conditions,
        &mut s.commune,
        &mut s.postal_code,
        &mut s.commune_insee,
        &mut s.address,
        &mut s.address_complement,
        &mut s.phone,
        &mut s.email,
        &mut s.contact_name,
        &mut s.mobilisation_link,
        &mut s.mobilisation_details,
        &mut s.opening_hours,
        &mut s.updated_on,
    ] {
        let trimmed = t.trim();
        if trimmed.len() != t.len() {
            *t = trimmed.to_owned();
        }
    }
    // INSEE codes are written in capitals (`2A`), the national zone in
    // lower case (`france`).
    for code in &mut s.eligibility_zone {
        *code = if code.trim().eq_ignore_ascii_case("france") {
            "france".to_owned()
        } else {
            code.trim().to_ascii_uppercase()
        };
    }
    for list in [
        &mut s.types,
        &mut s.thematiques,
        &mut s.publics,
        &mut s.reception_modes,
        &mut s.eligibility_zone,
        &mut s.mobilisation_modes,
        &mut s.mobilisable_by,
    ] {
        let mut seen = HashSet::new();
        let mut out = Vec::with_capacity(list.len());
        for code in list.drain(..) {
            let code = code.trim().to_owned();
            if !code.is_empty() && seen.insert(code.clone()) {
                out.push(code);
            }
        }
        *list = out;
    }
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

fn required(field: Field, v: &str) -> Result<(), Fault> {
    if v.is_empty() {
        return Err(fault(field, "obligatoire / required"));
    }
    if chars(v) > MAX_ID {
        return Err(fault(
            field,
            format!("{MAX_ID} caractères au plus / at most {MAX_ID} characters"),
        ));
    }
    Ok(())
}

fn text(field: Field, v: &str, max: usize) -> Result<(), Fault> {
    if chars(v) > max {
        return Err(fault(
            field,
            format!("{max} caractères au plus / at most {max} characters"),
        ));
    }
    Ok(())
}

fn codes(field: Field, list: &[String], vocabulary: &[&str]) -> Result<(), Fault> {
    for code in list {
        if !knows(vocabulary, code) {
            return Err(fault(
                field,
                format!(
                    "code inconnu « {code} » ; attendu : {} / unknown code",
                    short_list(vocabulary)
                ),
            ));
        }
    }
    Ok(())
}

/// The vocabulary in an error message: whole when short.
fn short_list(vocabulary: &[&str]) -> String {
    if vocabulary.len() <= 15 {
        vocabulary.join(", ")
    } else {
        "un code du schéma data·inclusion v1".to_owned()
    }
}

/// A day as `YYYY-MM-DD`.
pub fn is_date(s: &str) -> bool {
    s.len() == 10 && time::Date::parse(s, eva_platform::consent::DATE_FORMAT).is_ok()
}

/// An e-mail address as people write them: one `@`, something before, a
/// domain with a dot after, no spaces.
pub fn is_email(s: &str) -> bool {
    if s.len() > 254 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && domain
            .chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '.')
}

/// An `http` or `https` URL with a host.
pub fn is_web_url(s: &str) -> bool {
    url::Url::parse(s)
        .map(|u| {
            matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty())
        })
        .unwrap_or(false)
}

fn alnum_upper(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
}

/// A commune INSEE code: 5 characters, digits (Corsica: `2A`/`2B` then 3 digits).
pub fn is_commune(s: &str) -> bool {
    s.len() == 5 && alnum_upper(s) && !is_country(s)
}

/// A département code: `01`…`95`, `2A`, `2B`, `971`…`989`.
pub fn is_departement(s: &str) -> bool {
    match s.len() {
        2 => s == "2A" || s == "2B" || (s.chars().all(|c| c.is_ascii_digit()) && s != "00"),
        3 => (s.starts_with("97") || s.starts_with("98")) && s.chars().all(|c| c.is_ascii_digit()),
        _ => false,
    }
}

/// An EPCI code: its SIREN, 9 digits.
pub fn is_epci(s: &str) -> bool {
    s.len() == 9 && s.chars().all(|c| c.is_ascii_digit())
}

/// An INSEE country code (`99100` is France).
pub fn is_country(s: &str) -> bool {
    s.len() == 5 && s.starts_with("99") && s.chars().all(|c| c.is_ascii_digit())
}

/// National: `france` or France's country code.
pub const NATIONAL: &[&str] = &["france", "99100"];

fn zone_code(s: &str) -> bool {
    s == "france" || is_commune(s) || is_departement(s) || is_epci(s) || is_country(s)
}

/// Checks a normalised service against the schema (and EVA's own fields).
/// The first fault found, in the schema's field order.
pub fn validate(s: &pb::Service) -> Result<(), Fault> {
    required(Field::Source, &s.source)?;
    required(Field::SourceStructureId, &s.source_structure_id)?;
    required(Field::SourceId, &s.source_id)?;
    let n = chars(&s.name);
    if n == 0 {
        return Err(fault(Field::Name, "nom obligatoire / name required"));
    }
    if !(3..=150).contains(&n) {
        return Err(fault(
            Field::Name,
            format!("de 3 à 150 caractères, ici {n} / 3 to 150 characters, got {n}"),
        ));
    }
    if s.name.ends_with('.') {
        return Err(fault(
            Field::Name,
            "ne se termine pas par un point / must not end with a full stop",
        ));
    }
    let n = chars(&s.description);
    if n == 0 {
        return Err(fault(
            Field::Description,
            "description obligatoire / description required",
        ));
    }
    if !(50..=2000).contains(&n) {
        return Err(fault(
            Field::Description,
            format!("de 50 à 2000 caractères, ici {n} / 50 to 2000 characters, got {n}"),
        ));
    }
    if s.updated_on.is_empty() {
        return Err(fault(Field::UpdatedOn, "date obligatoire / date required"));
    }
    if !is_date(&s.updated_on) {
        return Err(fault(
            Field::UpdatedOn,
            format!(
                "date invalide « {} », attendu AAAA-MM-JJ / invalid date, expected YYYY-MM-DD",
                s.updated_on
            ),
        ));
    }
    codes(Field::Types, &s.types, voc::TYPES)?;
    codes(Field::Thematiques, &s.thematiques, voc::THEMATIQUES)?;
    if !s.fees.is_empty() && !knows(voc::FRAIS, &s.fees) {
        return Err(fault(
            Field::Fees,
            format!(
                "code inconnu « {} » ; attendu : gratuit, payant / unknown code",
                s.fees
            ),
        ));
    }
    text(Field::FeesDetails, &s.fees_details, MAX_TEXT)?;
    codes(Field::Publics, &s.publics, voc::PUBLICS)?;
    text(Field::PublicsDetails, &s.publics_details, MAX_TEXT)?;
    text(Field::AccessConditions, &s.access_conditions, MAX_TEXT)?;
    text(Field::Commune, &s.commune, MAX_SHORT)?;
    let postal_ok = s.postal_code.len() == 5 && s.postal_code.chars().all(|c| c.is_ascii_digit());
    if !s.postal_code.is_empty() && !postal_ok {
        return Err(fault(
            Field::PostalCode,
            format!(
                "code postal invalide « {} » : 5 chiffres / invalid postal code: 5 digits",
                s.postal_code
            ),
        ));
    }
    if !s.commune_insee.is_empty() && !is_commune(&s.commune_insee) {
        return Err(fault(
            Field::CommuneInsee,
            format!(
                "code commune INSEE invalide « {} » : 5 caractères / invalid INSEE commune code: 5 characters",
                s.commune_insee
            ),
        ));
    }
    text(Field::Address, &s.address, MAX_SHORT)?;
    text(Field::AddressComplement, &s.address_complement, MAX_SHORT)?;
    if let Some(x) = s.longitude
        && !(x.is_finite() && (-180.0..=180.0).contains(&x))
    {
        return Err(fault(
            Field::Longitude,
            "entre -180 et 180 degrés / between -180 and 180 degrees",
        ));
    }
    if let Some(y) = s.latitude
        && !(y.is_finite() && (-90.0..=90.0).contains(&y))
    {
        return Err(fault(
            Field::Latitude,
            "entre -90 et 90 degrés / between -90 and 90 degrees",
        ));
    }
    if chars(&s.phone) > 40 || s.phone.chars().any(char::is_control) {
        return Err(fault(
            Field::Phone,
            "un seul numéro de téléphone / one phone number",
        ));
    }
    if !s.email.is_empty() && !is_email(&s.email) {
        return Err(fault(
            Field::Email,
            "adresse électronique invalide / invalid e-mail address",
        ));
    }
    codes(
        Field::ReceptionModes,
        &s.reception_modes,
        voc::MODES_ACCUEIL,
    )?;
    for code in &s.eligibility_zone {
        if !zone_code(code) {
            return Err(fault(
                Field::EligibilityZone,
                format!(
                    "code inconnu « {code} » : commune (5 caractères), département, EPCI (9 chiffres) ou « france » / unknown code: commune, département, EPCI or `france`"
                ),
            ));
        }
    }
    text(Field::ContactName, &s.contact_name, MAX_SHORT)?;
    if !s.mobilisation_link.is_empty() && !is_web_url(&s.mobilisation_link) {
        return Err(fault(
            Field::MobilisationLink,
            "lien invalide : une adresse http(s) / invalid link: an http(s) URL",
        ));
    }
    codes(
        Field::MobilisationModes,
        &s.mobilisation_modes,
        voc::MODES_MOBILISATION,
    )?;
    codes(
        Field::MobilisableBy,
        &s.mobilisable_by,
        voc::MOBILISABLE_PAR,
    )?;
    text(
        Field::MobilisationDetails,
        &s.mobilisation_details,
        MAX_TEXT,
    )?;
    if let Some(h) = s.weekly_hours
        && !(h.is_finite() && (0.0..=168.0).contains(&h))
    {
        return Err(fault(
            Field::WeeklyHours,
            "entre 0 et 168 heures / between 0 and 168 hours",
        ));
    }
    if let Some(w) = s.weeks
        && w < 1
    {
        return Err(fault(Field::Weeks, "au moins 1 / at least 1"));
    }
    text(Field::OpeningHours, &s.opening_hours, MAX_TEXT)?;
    if let Some(c) = s.capacity
        && c < 0
    {
        return Err(fault(Field::Capacity, "positif ou nul / zero or more"));
    }
    if let Some(a) = s.available_places {
        if a < 0 {
            return Err(fault(
                Field::AvailablePlaces,
                "positif ou nul / zero or more",
            ));
        }
        if let Some(c) = s.capacity
            && a > c
        {
            return Err(fault(
                Field::AvailablePlaces,
                format!("plus de places libres que de places ({c}) / more places left than places"),
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------

fn wrong_type(field: Field, what: &str) -> Fault {
    fault(
        field,
        format!("doit être {what} / must be {}", english(what)),
    )
}

fn english(what: &str) -> &'static str {
    match what {
        "une chaîne de caractères" => "a string",
        "une liste de codes" => "a list of codes",
        "un nombre" => "a number",
        "un nombre entier" => "a whole number",
        _ => "of another type",
    }
}

fn string(obj: &Map<String, Value>, field: Field) -> Result<String, Fault> {
    match obj.get(field.di()) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(wrong_type(field, "une chaîne de caractères")),
    }
}

/// An id: a string, or a whole number some producers write.
fn id(obj: &Map<String, Value>, field: Field) -> Result<String, Fault> {
    match obj.get(field.di()) {
        Some(Value::Number(n)) if n.is_u64() || n.is_i64() => Ok(n.to_string()),
        _ => string(obj, field),
    }
}

fn list_at(obj: &Map<String, Value>, key: &str, field: Field) -> Result<Vec<String>, Fault> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                _ => Err(wrong_type(field, "une liste de codes")),
            })
            .collect(),
        Some(_) => Err(wrong_type(field, "une liste de codes")),
    }
}

fn list(obj: &Map<String, Value>, field: Field) -> Result<Vec<String>, Fault> {
    list_at(obj, field.di(), field)
}

fn number(obj: &Map<String, Value>, field: Field) -> Result<Option<f64>, Fault> {
    match obj.get(field.di()) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_f64()
            .map(Some)
            .ok_or_else(|| wrong_type(field, "un nombre")),
        Some(_) => Err(wrong_type(field, "un nombre")),
    }
}

fn whole(obj: &Map<String, Value>, field: Field) -> Result<Option<i32>, Fault> {
    match obj.get(field.di()) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            let v = n
                .as_i64()
                .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
                .ok_or_else(|| wrong_type(field, "un nombre entier"))?;
            i32::try_from(v)
                .map(Some)
                .map_err(|_| wrong_type(field, "un nombre entier"))
        }
        Some(_) => Err(wrong_type(field, "un nombre entier")),
    }
}

/// Reads one row of a data·inclusion file into a service (not yet checked:
/// call [`normalise`] then [`validate`]). EVA's own fields stay unset.
pub fn from_json(row: &Value) -> Result<pb::Service, Fault> {
    let Value::Object(o) = row else {
        return Err(fault(
            Field::SourceId,
            "chaque élément doit être un objet JSON / each element must be a JSON object",
        ));
    };
    let mut types = match o.get("type") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(_) => return Err(wrong_type(Field::Types, "une chaîne de caractères")),
    };
    types.extend(list_at(o, "types", Field::Types)?);
    Ok(pb::Service {
        source: id(o, Field::Source)?,
        source_structure_id: id(o, Field::SourceStructureId)?,
        source_id: id(o, Field::SourceId)?,
        name: string(o, Field::Name)?,
        description: string(o, Field::Description)?,
        updated_on: string(o, Field::UpdatedOn)?,
        types,
        thematiques: list(o, Field::Thematiques)?,
        fees: string(o, Field::Fees)?,
        fees_details: string(o, Field::FeesDetails)?,
        publics: list(o, Field::Publics)?,
        publics_details: string(o, Field::PublicsDetails)?,
        access_conditions: string(o, Field::AccessConditions)?,
        commune: string(o, Field::Commune)?,
        postal_code: id(o, Field::PostalCode)?,
        commune_insee: string(o, Field::CommuneInsee)?,
        address: string(o, Field::Address)?,
        address_complement: string(o, Field::AddressComplement)?,
        longitude: number(o, Field::Longitude)?,
        latitude: number(o, Field::Latitude)?,
        phone: string(o, Field::Phone)?,
        email: string(o, Field::Email)?,
        reception_modes: list(o, Field::ReceptionModes)?,
        eligibility_zone: list(o, Field::EligibilityZone)?,
        contact_name: string(o, Field::ContactName)?,
        mobilisation_link: string(o, Field::MobilisationLink)?,
        mobilisation_modes: list(o, Field::MobilisationModes)?,
        mobilisable_by: list(o, Field::MobilisableBy)?,
        mobilisation_details: string(o, Field::MobilisationDetails)?,
        weekly_hours: number(o, Field::WeeklyHours)?,
        weeks: whole(o, Field::Weeks)?,
        opening_hours: string(o, Field::OpeningHours)?,
        ..Default::default()
    })
}

/// A service as a data·inclusion v1 record; empty fields are left out.
pub fn to_json(s: &pb::Service) -> Value {
    let mut o = Map::new();
    let put_str = |o: &mut Map<String, Value>, f: Field, v: &str| {
        if !v.is_empty() {
            o.insert(f.di().to_owned(), Value::String(v.to_owned()));
        }
    };
    put_str(&mut o, Field::Source, &s.source);
    put_str(&mut o, Field::SourceStructureId, &s.source_structure_id);
    put_str(&mut o, Field::SourceId, &s.source_id);
    put_str(&mut o, Field::Name, &s.name);
    put_str(&mut o, Field::Description, &s.description);
    put_str(&mut o, Field::UpdatedOn, &s.updated_on);
    if let Some(first) = s.types.first() {
        o.insert("type".into(), Value::String(first.clone()));
        if s.types.len() > 1 {
            o.insert("types".into(), Value::from(s.types.clone()));
        }
    }
    let put_list = |o: &mut Map<String, Value>, f: Field, v: &[String]| {
        if !v.is_empty() {
            o.insert(f.di().to_owned(), Value::from(v.to_vec()));
        }
    };
    put_list(&mut o, Field::Thematiques, &s.thematiques);
    put_str(&mut o, Field::Fees, &s.fees);
    put_str(&mut o, Field::FeesDetails, &s.fees_details);
    put_list(&mut o, Field::Publics, &s.publics);
    put_str(&mut o, Field::PublicsDetails, &s.publics_details);
    put_str(&mut o, Field::AccessConditions, &s.access_conditions);
    put_str(&mut o, Field::Commune, &s.commune);
    put_str(&mut o, Field::PostalCode, &s.postal_code);
    put_str(&mut o, Field::CommuneInsee, &s.commune_insee);
    put_str(&mut o, Field::Address, &s.address);
    put_str(&mut o, Field::AddressComplement, &s.address_complement);
    if let Some(x) = s.longitude {
        o.insert(Field::Longitude.di().into(), Value::from(x));
    }
    if let Some(y) = s.latitude {
        o.insert(Field::Latitude.di().into(), Value::from(y));
    }
    put_str(&mut o, Field::Phone, &s.phone);
    put_str(&mut o, Field::Email, &s.email);
    put_list(&mut o, Field::ReceptionModes, &s.reception_modes);
    put_list(&mut o, Field::EligibilityZone, &s.eligibility_zone);
    put_str(&mut o, Field::ContactName, &s.contact_name);
    put_str(&mut o, Field::MobilisationLink, &s.mobilisation_link);
    put_list(&mut o, Field::MobilisationModes, &s.mobilisation_modes);
    put_list(&mut o, Field::MobilisableBy, &s.mobilisable_by);
    put_str(&mut o, Field::MobilisationDetails, &s.mobilisation_details);
    if let Some(h) = s.weekly_hours {
        // Whole hours are written as integers, as producers write them.
        let v = if h.fract() == 0.0 && h.abs() < 1e15 {
            Value::from(h as i64)
        } else {
            Value::from(h)
        };
        o.insert(Field::WeeklyHours.di().into(), v);
    }
    if let Some(w) = s.weeks {
        o.insert(Field::Weeks.di().into(), Value::from(w));
    }
    put_str(&mut o, Field::OpeningHours, &s.opening_hours);
    Value::Object(o)
}

// ---------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------

/// Why a whole file was refused (the `content` field).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error(
        "fichier trop gros ({0} octets), {MAX_FILE_BYTES} au plus / file too large ({0} bytes), at most {MAX_FILE_BYTES}"
    )]
    TooLarge(usize),
    #[error(
        "JSON invalide ligne {line}, colonne {column} : {message} / invalid JSON at line {line}, column {column}: {message}"
    )]
    NotJson {
        line: usize,
        column: usize,
        message: String,
    },
    #[error(
        "le fichier doit être une liste JSON de services ([…]), pas {0} / the file must be a JSON array of services, not {0}"
    )]
    NotArray(&'static str),
    #[error(
        "trop de services ({0}), {MAX_ROWS} au plus par fichier / too many services ({0}), at most {MAX_ROWS} per file"
    )]
    TooManyRows(usize),
}

/// A row that passed the checks, with its position in the file.
#[derive(Debug, Clone)]
pub struct Row {
    pub index: usize,
    pub service: pb::Service,
}

/// A file read: the rows to store and the rows rejected.
#[derive(Debug, Default)]
pub struct ReadFile {
    pub rows: Vec<Row>,
    pub rejected: Vec<pb::ImportRejection>,
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "un booléen / a boolean",
        Value::Number(_) => "un nombre / a number",
        Value::String(_) => "une chaîne / a string",
        Value::Array(_) => "une liste / an array",
        Value::Object(_) => "un objet / an object",
    }
}

/// Reads and checks a data·inclusion file. `source` (the import's) fills a
/// row without one; a row naming another source is rejected. A row whose
/// (source, id) came earlier in the file is rejected too.
pub fn read_file(content: &[u8], source: &str) -> Result<ReadFile, FileError> {
    if content.len() > MAX_FILE_BYTES {
        return Err(FileError::TooLarge(content.len()));
    }
    let value: Value = serde_json::from_slice(content).map_err(|e| FileError::NotJson {
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })?;
    let Value::Array(items) = value else {
        return Err(FileError::NotArray(kind_of(&value)));
    };
    if items.len() > MAX_ROWS {
        return Err(FileError::TooManyRows(items.len()));
    }
    let mut out = ReadFile::default();
    let mut seen: HashSet<(String, String)> = HashSet::new();
    for (index, item) in items.iter().enumerate() {
        let row_id = item
            .get("id")
            .map(|v| match v {
                Value::String(s) => s.trim().to_owned(),
                Value::Number(n) => n.to_string(),
                _ => String::new(),
            })
            .unwrap_or_default();
        let reject = |f: Fault| pb::ImportRejection {
            index: index as i32,
            source_id: row_id.clone(),
            field: f.field.di().to_owned(),
            reason: f.reason,
        };
        let mut service = match from_json(item) {
            Ok(s) => s,
            Err(f) => {
                out.rejected.push(reject(f));
                continue;
            }
        };
        normalise(&mut service);
        if !source.is_empty() {
            if service.source.is_empty() {
                service.source = source.to_owned();
            } else if service.source != source {
                out.rejected.push(reject(fault(
                    Field::Source,
                    format!(
                        "source « {} » différente de celle de l'import « {source} » / source differs from the import's",
                        service.source
                    ),
                )));
                continue;
            }
        }
        if let Err(f) = validate(&service) {
            out.rejected.push(reject(f));
            continue;
        }
        if !seen.insert((service.source.clone(), service.source_id.clone())) {
            out.rejected.push(reject(fault(
                Field::SourceId,
                "id déjà présent plus haut dans le fichier / id already earlier in the file",
            )));
            continue;
        }
        out.rows.push(Row { index, service });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn good() -> Value {
        json!({
            "source": "dora",
            "structure_id": "dora--mob-27",
            "id": "dora--permis-27",
            "nom": "Auto-école solidaire d'Évreux",
            "description": "Préparation au permis B avec un accompagnement adapté aux personnes éloignées de l'emploi, code et conduite.",
            "date_maj": "2026-03-02",
            "type": "formation",
            "thematiques": ["mobilite--preparer-un-permis"],
            "frais": "payant",
            "publics": ["beneficiaires-des-minimas-sociaux", "demandeurs-emploi"],
            "code_postal": "27000",
            "code_insee": "27229",
            "longitude": 1.1508,
            "latitude": 49.0241,
            "courriel": "contact@mobilite-eure.example.org",
            "modes_accueil": ["en-presentiel"],
            "zone_eligibilite": ["27"],
            "lien_mobilisation": "https://mobilite-eure.example.org/inscription",
            "modes_mobilisation": ["envoyer-un-courriel", "telephoner"],
            "mobilisable_par": ["professionnels"],
            "volume_horaire_hebdomadaire": 6,
            "nombre_semaines": 12,
            "horaires_accueil": "Mo-Fr 09:00-12:00"
        })
    }

    fn check(v: &Value) -> Result<pb::Service, Fault> {
        let mut s = from_json(v)?;
        normalise(&mut s);
        validate(&s)?;
        Ok(s)
    }

    fn field_of(mut v: Value, key: &str, bad: Value) -> &'static str {
        v[key] = bad;
        check(&v).expect_err("refused").field.di()
    }

    #[test]
    fn a_good_record_passes_and_round_trips() {
        let s = check(&good()).expect("valid");
        assert_eq!(s.types, vec!["formation"]);
        assert_eq!(s.weeks, Some(12));
        assert_eq!(s.weekly_hours, Some(6.0));
        let back = to_json(&s);
        let again = check(&back).expect("valid again");
        assert_eq!(s, again);
        assert_eq!(back["type"], "formation");
        assert!(back.get("types").is_none());
    }

    #[test]
    fn several_types_travel_as_types() {
        let mut v = good();
        v["types"] = json!(["atelier", "formation"]);
        let s = check(&v).expect("valid");
        assert_eq!(s.types, vec!["formation", "atelier"]);
        let again = check(&to_json(&s)).expect("valid");
        assert_eq!(again.types, s.types);
    }

    #[test]
    fn each_bad_field_is_named() {
        assert_eq!(field_of(good(), "nom", json!("AB")), "nom");
        assert_eq!(field_of(good(), "nom", json!("Atelier du lundi.")), "nom");
        assert_eq!(field_of(good(), "nom", json!(12)), "nom");
        assert_eq!(
            field_of(good(), "description", json!("trop court")),
            "description"
        );
        assert_eq!(field_of(good(), "id", json!("")), "id");
        assert_eq!(
            field_of(good(), "structure_id", Value::Null),
            "structure_id"
        );
        assert_eq!(
            field_of(good(), "date_maj", json!("02/03/2026")),
            "date_maj"
        );
        assert_eq!(
            field_of(good(), "date_maj", json!("2026-02-30")),
            "date_maj"
        );
        assert_eq!(field_of(good(), "type", json!("cours")), "type");
        assert_eq!(
            field_of(good(), "thematiques", json!(["mobilite--voler"])),
            "thematiques"
        );
        assert_eq!(
            field_of(good(), "thematiques", json!("mobilite")),
            "thematiques"
        );
        assert_eq!(
            field_of(good(), "frais", json!("gratuit-sous-conditions")),
            "frais"
        );
        assert_eq!(field_of(good(), "publics", json!(["tous"])), "publics");
        assert_eq!(
            field_of(good(), "code_postal", json!("2700")),
            "code_postal"
        );
        assert_eq!(field_of(good(), "code_insee", json!("272")), "code_insee");
        assert_eq!(field_of(good(), "longitude", json!(181.0)), "longitude");
        assert_eq!(field_of(good(), "latitude", json!(-91)), "latitude");
        assert_eq!(field_of(good(), "latitude", json!("49.0")), "latitude");
        assert_eq!(
            field_of(good(), "courriel", json!("contact at example.org")),
            "courriel"
        );
        assert_eq!(
            field_of(good(), "modes_accueil", json!(["sur-place"])),
            "modes_accueil"
        );
        assert_eq!(
            field_of(good(), "zone_eligibilite", json!(["eure"])),
            "zone_eligibilite"
        );
        assert_eq!(
            field_of(good(), "lien_mobilisation", json!("inscription")),
            "lien_mobilisation"
        );
        assert_eq!(
            field_of(good(), "lien_mobilisation", json!("ftp://x.org/a")),
            "lien_mobilisation"
        );
        assert_eq!(
            field_of(good(), "modes_mobilisation", json!(["ecrire"])),
            "modes_mobilisation"
        );
        assert_eq!(
            field_of(good(), "mobilisable_par", json!(["tout-le-monde"])),
            "mobilisable_par"
        );
        assert_eq!(
            field_of(good(), "volume_horaire_hebdomadaire", json!(-1)),
            "volume_horaire_hebdomadaire"
        );
        assert_eq!(
            field_of(good(), "nombre_semaines", json!(0)),
            "nombre_semaines"
        );
        assert_eq!(
            field_of(good(), "nombre_semaines", json!(2.5)),
            "nombre_semaines"
        );
    }

    #[test]
    fn zone_codes_are_written_as_insee_writes_them() {
        let mut v = good();
        v["zone_eligibilite"] = json!(["France", "2a", "27", "27"]);
        let s = check(&v).expect("valid");
        assert_eq!(s.eligibility_zone, vec!["france", "2A", "27"]);
    }

    #[test]
    fn codes_of_the_territory() {
        assert!(is_commune("27229") && is_commune("2A004"));
        assert!(!is_commune("99100") && !is_commune("2722"));
        assert!(is_departement("27") && is_departement("2B") && is_departement("974"));
        assert!(!is_departement("2C") && !is_departement("270"));
        assert!(is_epci("200089621") && !is_epci("20008962"));
        assert!(is_email("a.b@c.fr") && !is_email("a@b") && !is_email("@b.fr"));
    }

    #[test]
    fn a_file_reports_its_bad_rows_and_keeps_the_good_ones() {
        let mut bad = good();
        bad["id"] = json!("dora--bad");
        bad["code_postal"] = json!("27 000");
        let mut other = good();
        other["id"] = json!("dora--autre");
        let file = json!([good(), bad, "pas un objet", other, good()]);
        let read = read_file(file.to_string().as_bytes(), "dora").expect("read");
        assert_eq!(
            read.rows.iter().map(|r| r.index).collect::<Vec<_>>(),
            vec![0, 3]
        );
        let rejected: Vec<_> = read
            .rejected
            .iter()
            .map(|r| (r.index, r.field.as_str(), r.source_id.as_str()))
            .collect();
        assert_eq!(
            rejected,
            vec![
                (1, "code_postal", "dora--bad"),
                (2, "id", ""),
                (4, "id", "dora--permis-27")
            ]
        );
    }

    #[test]
    fn a_row_of_another_source_is_rejected() {
        let read = read_file(json!([good()]).to_string().as_bytes(), "soliguide").expect("read");
        assert_eq!(read.rejected[0].field, "source");
        let mut no_source = good();
        no_source.as_object_mut().expect("object").remove("source");
        let read = read_file(json!([no_source]).to_string().as_bytes(), "soliguide").expect("read");
        assert_eq!(read.rows[0].service.source, "soliguide");
    }

    #[test]
    fn a_file_that_is_not_an_array_is_refused_whole() {
        match read_file(b"[{\"id\": 1,}]", "") {
            Err(FileError::NotJson { line: 1, .. }) => {}
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            read_file(b"{\"services\": []}", ""),
            Err(FileError::NotArray(_))
        ));
        assert!(matches!(
            read_file(&vec![b' '; MAX_FILE_BYTES + 1], ""),
            Err(FileError::TooLarge(_))
        ));
    }
}
