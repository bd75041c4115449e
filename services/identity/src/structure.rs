//! Structures: the associations, partners and the département that use EVA.

use eva_proto::identity::v1 as pb;

/// A structure as identity stores it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Structure {
    pub structure_id: String,
    pub name: String,
    pub siret: String,
    pub kind: String,
    pub commune_insee: String,
    pub epci: String,
    pub created_at_us: i64,
}

/// A field of a request that is not acceptable, with why, in French first.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

fn bad(field: &'static str, message: &str) -> FieldError {
    FieldError {
        field,
        message: message.to_owned(),
    }
}

/// A new structure, validated.
#[derive(Debug, Clone)]
pub struct NewStructure {
    pub name: String,
    pub siret: String,
    pub kind: pb::StructureKind,
    pub commune_insee: String,
    pub epci: String,
}

impl NewStructure {
    pub fn parse(req: pb::CreateStructureRequest) -> Result<Self, FieldError> {
        let name = req.name.trim().to_owned();
        check_name(&name)?;
        let siret: String = req.siret.chars().filter(|c| !c.is_whitespace()).collect();
        if !siret_is_valid(&siret) {
            return Err(bad(
                "siret",
                "le SIRET doit compter 14 chiffres et être valide / SIRET must be 14 digits with a valid check digit",
            ));
        }
        let kind = pb::StructureKind::try_from(req.kind).unwrap_or(pb::StructureKind::Unspecified);
        if kind == pb::StructureKind::Unspecified {
            return Err(bad(
                "kind",
                "le type de structure est obligatoire / structure kind is required",
            ));
        }
        let commune_insee = req.commune_insee.trim().to_uppercase();
        check_insee(&commune_insee)?;
        let epci = req.epci.trim().to_owned();
        check_epci(&epci)?;
        Ok(Self {
            name,
            siret,
            kind,
            commune_insee,
            epci,
        })
    }
}

/// A change of name or territory, validated; `None` leaves a field as is.
#[derive(Debug, Clone, Default)]
pub struct StructureChange {
    pub name: Option<String>,
    pub commune_insee: Option<String>,
    pub epci: Option<String>,
}

impl StructureChange {
    pub fn parse(req: &pb::UpdateStructureRequest) -> Result<Self, FieldError> {
        let name = req.name.as_deref().map(str::trim).map(str::to_owned);
        if let Some(n) = &name {
            check_name(n)?;
        }
        let commune_insee = req
            .commune_insee
            .as_deref()
            .map(|c| c.trim().to_uppercase());
        if let Some(c) = &commune_insee {
            check_insee(c)?;
        }
        let epci = req.epci.as_deref().map(|e| e.trim().to_owned());
        if let Some(e) = &epci {
            check_epci(e)?;
        }
        if name.is_none() && commune_insee.is_none() && epci.is_none() {
            return Err(bad(
                "body",
                "rien à modifier : indiquez name, commune_insee ou epci / nothing to change",
            ));
        }
        Ok(Self {
            name,
            commune_insee,
            epci,
        })
    }
}

fn check_name(name: &str) -> Result<(), FieldError> {
    if name.is_empty() || name.chars().count() > 200 {
        return Err(bad(
            "name",
            "le nom est obligatoire (200 caractères au plus) / name is required (at most 200 characters)",
        ));
    }
    Ok(())
}

fn check_insee(code: &str) -> Result<(), FieldError> {
    if !insee_is_valid(code) {
        return Err(bad(
            "commune_insee",
            "le code commune INSEE compte 5 caractères (ex. 27229, 2A004) / INSEE commune code is 5 characters",
        ));
    }
    Ok(())
}

fn check_epci(epci: &str) -> Result<(), FieldError> {
    let is_siren = epci.len() == 9 && epci.bytes().all(|b| b.is_ascii_digit());
    if !epci.is_empty() && !is_siren {
        return Err(bad(
            "epci",
            "le code EPCI est un SIREN de 9 chiffres / EPCI code is a 9-digit SIREN",
        ));
    }
    Ok(())
}

/// SIRET: 14 digits passing the Luhn check; La Poste's establishments
/// (SIREN 356000000) use a digit sum divisible by 5 instead.
pub fn siret_is_valid(siret: &str) -> bool {
    if siret.len() != 14 || !siret.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let digits: Vec<u32> = siret.bytes().map(|b| u32::from(b - b'0')).collect();
    if siret.starts_with("356000000") {
        return digits.iter().sum::<u32>().is_multiple_of(5);
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// A commune's INSEE code: 5 digits, or 2A/2B then 3 digits (Corse).
pub fn insee_is_valid(code: &str) -> bool {
    let b = code.as_bytes();
    if b.len() != 5 {
        return false;
    }
    let dept_ok = (b[0].is_ascii_digit() && b[1].is_ascii_digit())
        || (b[0] == b'2' && (b[1] == b'A' || b[1] == b'B'));
    dept_ok && b[2..].iter().all(u8::is_ascii_digit)
}

/// Storage name of a kind, stable across proto renumbering.
pub fn kind_code(kind: pb::StructureKind) -> &'static str {
    use pb::StructureKind as K;
    match kind {
        K::Unspecified => "unspecified",
        K::Aci => "aci",
        K::Ei => "ei",
        K::Ai => "ai",
        K::Etti => "etti",
        K::Eiti => "eiti",
        K::Association => "association",
        K::Ccas => "ccas",
        K::Partner => "partner",
        K::Departement => "departement",
    }
}

pub fn kind_from_code(code: &str) -> pb::StructureKind {
    use pb::StructureKind as K;
    match code {
        "aci" => K::Aci,
        "ei" => K::Ei,
        "ai" => K::Ai,
        "etti" => K::Etti,
        "eiti" => K::Eiti,
        "association" => K::Association,
        "ccas" => K::Ccas,
        "partner" => K::Partner,
        "departement" => K::Departement,
        _ => K::Unspecified,
    }
}

impl From<Structure> for pb::Structure {
    fn from(s: Structure) -> Self {
        pb::Structure {
            structure_id: s.structure_id,
            name: s.name,
            siret: s.siret,
            kind: kind_from_code(&s.kind) as i32,
            commune_insee: s.commune_insee,
            epci: s.epci,
            created_at: Some(eva_platform::db::to_timestamp(s.created_at_us)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn siret_check_digits() {
        // Real SIRETs: a Luhn-valid one and La Poste's special rule.
        assert!(siret_is_valid("73282932000074"));
        assert!(siret_is_valid("35600000000010"));
        assert!(!siret_is_valid("35600000000011"));
        assert!(!siret_is_valid("73282932000075"));
        assert!(!siret_is_valid("7328293200007"));
        assert!(!siret_is_valid("7328293200007A"));
    }

    #[test]
    fn insee_codes() {
        assert!(insee_is_valid("27229"));
        assert!(insee_is_valid("2A004"));
        assert!(!insee_is_valid("2C004"));
        assert!(!insee_is_valid("2722"));
    }

    #[test]
    fn requests_name_the_bad_field() {
        let ok = pb::CreateStructureRequest {
            name: "Insertion Eure".into(),
            siret: "732 829 320 00074".into(),
            kind: pb::StructureKind::Aci as i32,
            commune_insee: "27229".into(),
            epci: "200089456".into(),
        };
        let parsed = NewStructure::parse(ok.clone()).unwrap();
        assert_eq!(parsed.siret, "73282932000074");
        let e = NewStructure::parse(pb::CreateStructureRequest {
            siret: "123".into(),
            ..ok.clone()
        })
        .unwrap_err();
        assert_eq!(e.field, "siret");
        let e = NewStructure::parse(pb::CreateStructureRequest {
            kind: 0,
            ..ok.clone()
        })
        .unwrap_err();
        assert_eq!(e.field, "kind");
        let e = NewStructure::parse(pb::CreateStructureRequest {
            name: " ".into(),
            ..ok
        })
        .unwrap_err();
        assert_eq!(e.field, "name");
    }
}
