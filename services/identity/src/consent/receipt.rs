//! The consent receipt the person keeps: a JSON document shaped after the
//! Kantara Initiative Consent Receipt (v1.1), in French, signed by identity
//! with a detached JWS. It names the person by id only, never by name.

use eva_platform::consent::{Domain, Purpose};
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;

use super::Collection;
use crate::structure::Structure;

/// The receipt format this module writes.
pub const VERSION: &str = "KI-CR-v1.1.0";

/// What a purpose means, in plain French.
pub fn purpose_label_fr(p: Purpose) -> &'static str {
    match p {
        Purpose::Accompagnement => {
            "Vous accompagner dans votre parcours vers l'emploi : la structure peut lire ces parties de votre diagnostic"
        }
        Purpose::Orientation => {
            "Vous orienter vers cette structure : elle peut lire ces parties de votre diagnostic pour préparer votre accueil"
        }
        Purpose::Statistiques => {
            "Produire des statistiques anonymes : aucune information ne permet de vous reconnaître"
        }
    }
}

/// Why a sensitive domain is a special category of data.
fn special_category_fr(d: &Domain) -> String {
    let why = match d.id {
        "sante" => "données de santé (RGPD, article 9)",
        _ => "données relatives aux droits et à la justice (RGPD, articles 9 et 10)",
    };
    format!("{} : {why}", d.label_fr)
}

/// Plain-French instructions to withdraw.
pub const WITHDRAWAL_FR: &str = "Vous pouvez retirer ce consentement à tout moment, sans avoir à vous justifier : \
     dans votre espace personnel EVA (rubrique « Mes consentements », bouton « Retirer »), \
     ou en le demandant à votre conseiller ou conseillère. Le retrait prend effet tout de suite. \
     Ce qui a déjà été lu avant le retrait ne peut pas être « dé-lu », mais plus rien ne sera partagé ensuite.";

/// On the receipt of a consent that replaces another after a withdrawal of
/// some domains.
pub const REPLACES_FR: &str = "Ce consentement remplace le précédent (replaces_consent_id) : \
     vous avez retiré votre accord pour certains domaines, les autres restent partagés aux mêmes conditions.";

/// Everything a receipt states.
pub struct ReceiptFacts<'a> {
    pub receipt_id: &'a str,
    pub consent_id: &'a str,
    /// The person, by id only.
    pub person_id: &'a str,
    /// The grantee, the controller who receives the data.
    pub grantee: &'a Structure,
    pub domains: &'a [&'static Domain],
    pub purposes: &'a [Purpose],
    pub valid_from: &'a str,
    pub valid_until: &'a str,
    pub collection: Collection,
    pub granted_at: time::OffsetDateTime,
}

/// The receipt document.
pub fn document(f: &ReceiptFacts<'_>) -> Value {
    let categories: Vec<Value> = f
        .domains
        .iter()
        .map(|d| json!({ "id": d.id, "label": d.label_fr, "sensitive": d.sensitive }))
        .collect();
    let category_labels: Vec<&str> = f.domains.iter().map(|d| d.label_fr).collect();
    let termination = format!(
        "Jusqu'au {} inclus, ou jusqu'à ce que vous le retiriez",
        f.valid_until
    );
    let purposes: Vec<Value> = f
        .purposes
        .iter()
        .map(|p| json!({ "code": p.code(), "purpose": purpose_label_fr(*p) }))
        .collect();
    let service_purposes: Vec<Value> = f
        .purposes
        .iter()
        .map(|p| {
            json!({
                "purpose": purpose_label_fr(*p),
                "purpose_category": [p.code()],
                "consent_type": "EXPLICIT",
                "pii_category": category_labels,
                "primary_purpose": *p == Purpose::Accompagnement,
                "termination": termination,
                "third_party_disclosure": false,
            })
        })
        .collect();
    let sensitive: Vec<String> = f
        .domains
        .iter()
        .filter(|d| d.sensitive)
        .map(|d| special_category_fr(d))
        .collect();
    let mut doc = json!({
        "version": VERSION,
        "jurisdiction": "FR",
        "consent_timestamp": f.granted_at.unix_timestamp(),
        "consent_time": f.granted_at.format(&Rfc3339).unwrap_or_default(),
        "collection_method": f.collection.code(),
        "collection_method_label": f.collection.label_fr(),
        "consent_receipt_id": f.receipt_id,
        "consent_id": f.consent_id,
        "language": "fr",
        "pii_principal_id": f.person_id,
        "pii_controllers": [{
            "pii_controller": f.grantee.name,
            "siret": f.grantee.siret,
            "structure_id": f.grantee.structure_id,
            "on_behalf": false,
        }],
        "services": [{
            "service": "EVA — diagnostic socioprofessionnel partagé",
            "purposes": service_purposes,
        }],
        "purposes": purposes,
        "pii_categories": categories,
        "sensitive": !sensitive.is_empty(),
        "valid_from": f.valid_from,
        "valid_until": f.valid_until,
        "termination": f.valid_until,
        "withdrawal": WITHDRAWAL_FR,
    });
    if !sensitive.is_empty()
        && let Some(map) = doc.as_object_mut()
    {
        map.insert("spi_cat".into(), json!(sensitive));
    }
    doc
}

/// The bytes that are signed and stored: compact JSON. Parsing then
/// serialising again gives the same bytes, so a downloaded receipt can be
/// checked after any pretty-printing.
pub fn canonical(doc: &Value) -> String {
    doc.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use eva_platform::consent::domain;

    #[test]
    fn receipts_state_the_controller_and_the_sensitive_categories_but_no_name() {
        let grantee = Structure {
            structure_id: "s1".into(),
            name: "Chantier de l'Eure".into(),
            siret: "73282932000074".into(),
            kind: "aci".into(),
            commune_insee: "27229".into(),
            epci: String::new(),
            created_at_us: 0,
        };
        let domains = [domain("mobilite").unwrap(), domain("sante").unwrap()];
        let facts = ReceiptFacts {
            receipt_id: "r1",
            consent_id: "c1",
            person_id: "p1",
            grantee: &grantee,
            domains: &domains,
            purposes: &[Purpose::Accompagnement],
            valid_from: "2026-06-01",
            valid_until: "2027-06-01",
            collection: Collection::AuBureau,
            granted_at: time::OffsetDateTime::UNIX_EPOCH,
        };
        let doc = document(&facts);
        assert_eq!(doc["jurisdiction"], "FR");
        assert_eq!(doc["pii_principal_id"], "p1");
        assert_eq!(doc["pii_controllers"][0]["siret"], "73282932000074");
        assert_eq!(doc["sensitive"], true);
        assert!(doc["spi_cat"][0].as_str().unwrap().contains("Santé"));
        assert_eq!(doc["collection_method"], "au_bureau");
        let text = canonical(&doc);
        let again: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(canonical(&again), text);
        let pretty: Value =
            serde_json::from_str(&serde_json::to_string_pretty(&doc).unwrap()).unwrap();
        assert_eq!(canonical(&pretty), text);

        let plain = [domain("mobilite").unwrap()];
        let doc = document(&ReceiptFacts {
            domains: &plain,
            ..facts
        });
        assert_eq!(doc["sensitive"], false);
        assert!(doc.get("spi_cat").is_none());
    }
}
