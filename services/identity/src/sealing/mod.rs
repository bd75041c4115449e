//! Sealing with a person's key: what must travel about a person (a referral's
//! part of a diagnostic, a note) is sealed with the person's own data key, so
//! events and other services' databases only ever hold ciphertext, and
//! erasing the person's key (crypto-shredding) makes every copy unreadable.
//!
//! The associated data binds a sealed payload to its person and to a context
//! the sealer names (e.g. `referral:<id>:diagnostic`): it cannot be opened as
//! another person's, nor moved to another place. Opening is authorised like a
//! read of the person's data by another structure: the caller acts for a
//! structure, and that structure follows the person or the person's consent
//! covers every domain of the payload for the purpose given.

pub mod api;

use eva_platform::consent::{self, Decision, Purpose, Reason};
use sha2::{Digest, Sha256};

use crate::structure::FieldError;

pub use api::SealingApi;

/// Largest plaintext accepted, in bytes (256 KiB).
pub const MAX_PLAINTEXT: usize = 256 * 1024;
/// Longest context accepted, in characters.
pub const MAX_CONTEXT: usize = 200;
/// Most payloads opened by one `OpenSealedBatch` call.
pub const MAX_BATCH_ITEMS: usize = 64;
/// Most batches per `OpenSealedBatches` call.
pub const MAX_BATCHES: usize = 64;
/// Most ciphertext per `OpenSealedBatches` call, in bytes.
pub const MAX_BATCHES_CIPHERTEXT: usize = 8 * 1024 * 1024;
/// Most ciphertext opened by one `OpenSealedBatch` call, in bytes (2 MiB):
/// the request and the answer stay under gRPC's 4 MiB message limit.
pub const MAX_BATCH_CIPHERTEXT: usize = 2 * 1024 * 1024;
/// Longest access-log resource type accepted, in characters.
pub const MAX_RESOURCE_TYPE: usize = 40;

fn bad(field: &'static str, message: &str) -> FieldError {
    FieldError {
        field,
        message: message.to_owned(),
    }
}

/// The AEAD associated data of a sealed payload: the person and the context.
/// The person id is a UUID (fixed length, no `:`), so the encoding is
/// unambiguous.
pub fn aad(person_id: &str, context: &str) -> Vec<u8> {
    format!("eva:sealed:v1:{person_id}:{context}").into_bytes()
}

/// Names a person's data key without revealing it: a hash of the wrapped key
/// (itself ciphertext under the KEK). Changes if the key is ever rotated.
pub fn key_id(wrapped_key: &[u8]) -> String {
    let digest = Sha256::new()
        .chain_update(b"eva:data-key-id:v1:")
        .chain_update(wrapped_key)
        .finalize();
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("dk1-{hex}")
}

/// A context: required, at most [`MAX_CONTEXT`] characters, printable
/// ASCII without spaces (ids and codes, never personal data).
pub fn check_context(raw: &str) -> Result<String, FieldError> {
    let v = raw.trim();
    if v.is_empty() || v.len() > MAX_CONTEXT || !v.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad(
            "context",
            "contexte obligatoire : 200 caractères ASCII au plus, sans espace, ex. referral:<id>:diagnostic / \
             context required: at most 200 ASCII characters, no spaces",
        ));
    }
    Ok(v.to_owned())
}

/// An access-log resource type: required, at most [`MAX_RESOURCE_TYPE`]
/// characters, lowercase ASCII letters and `_` (e.g. `diagnostic`).
pub fn check_resource_type(raw: &str) -> Result<String, FieldError> {
    let v = raw.trim();
    if v.is_empty()
        || v.len() > MAX_RESOURCE_TYPE
        || !v.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
    {
        return Err(bad(
            "resource_type",
            "type de ressource obligatoire : 40 lettres minuscules ou _ au plus, ex. diagnostic / \
             resource type required: at most 40 lowercase letters or _",
        ));
    }
    Ok(v.to_owned())
}

/// The plaintext to seal: not empty, at most [`MAX_PLAINTEXT`] bytes.
pub fn check_plaintext(plaintext: &[u8]) -> Result<(), FieldError> {
    if plaintext.is_empty() {
        return Err(bad(
            "plaintext",
            "rien à sceller : le contenu est vide / nothing to seal: plaintext is empty",
        ));
    }
    if plaintext.len() > MAX_PLAINTEXT {
        return Err(bad(
            "plaintext",
            "contenu trop volumineux : 256 Kio au plus / plaintext too large: at most 256 KiB",
        ));
    }
    Ok(())
}

/// The référentiel domains of a payload, without repeats, in the order given.
pub fn check_domains(raw: &[String]) -> Result<Vec<&'static str>, FieldError> {
    let mut out: Vec<&'static str> = Vec::new();
    for d in raw {
        let Some(domain) = consent::domain(d.trim()) else {
            return Err(bad(
                "domains",
                "domaine inconnu du référentiel / unknown référentiel domain",
            ));
        };
        if !out.contains(&domain.id) {
            out.push(domain.id);
        }
    }
    Ok(out)
}

/// The consent decision for a payload covering `domains`: allowed only when
/// every domain is; otherwise the first denial, with its domain.
pub fn decide_all(
    grants: &[consent::GrantView],
    domains: &[&'static str],
    purpose: Purpose,
    today: &str,
) -> Result<(), (&'static str, Decision)> {
    for domain in domains {
        let d = consent::decide(grants, domain, purpose, today);
        if !d.allowed {
            return Err((domain, d));
        }
    }
    Ok(())
}

/// Why a denial, in the words the caller reads.
pub fn reason_text(reason: Reason) -> &'static str {
    match reason {
        Reason::ConsentActive => "consentement actif / consent active",
        Reason::NoConsent => "aucun consentement de la personne / no consent from the person",
        Reason::DomainNotCovered => {
            "domaine non couvert par le consentement / domain not covered by the consent"
        }
        Reason::PurposeNotCovered => {
            "finalité non couverte par le consentement / purpose not covered by the consent"
        }
        Reason::ConsentWithdrawn => "consentement retiré / consent withdrawn",
        Reason::ConsentExpired => "consentement expiré / consent expired",
        Reason::PersonErased => "données effacées / data erased",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eva_platform::consent::GrantView;

    #[test]
    fn inputs_are_checked_by_field() {
        assert_eq!(
            check_context(" referral:1:diagnostic ").unwrap(),
            "referral:1:diagnostic"
        );
        for bad in ["", "  ", "a b", "é", &"x".repeat(201)] {
            assert_eq!(check_context(bad).unwrap_err().field, "context", "{bad}");
        }
        assert!(check_plaintext(b"x").is_ok());
        assert!(check_plaintext(&vec![0; MAX_PLAINTEXT]).is_ok());
        assert_eq!(
            check_plaintext(&vec![0; MAX_PLAINTEXT + 1])
                .unwrap_err()
                .field,
            "plaintext"
        );
        assert_eq!(check_plaintext(b"").unwrap_err().field, "plaintext");
        assert_eq!(check_resource_type(" action_plan ").unwrap(), "action_plan");
        for bad in ["", "Diagnostic", "a b", "a:b", &"x".repeat(41)] {
            assert_eq!(
                check_resource_type(bad).unwrap_err().field,
                "resource_type",
                "{bad}"
            );
        }
        assert_eq!(
            check_domains(&["mobilite".into(), " mobilite".into(), "sante".into()]).unwrap(),
            ["mobilite", "sante"]
        );
        assert_eq!(
            check_domains(&["mobilité".into()]).unwrap_err().field,
            "domains"
        );
    }

    #[test]
    fn key_ids_name_the_key_only() {
        let a = key_id(b"wrapped-a");
        assert_eq!(a, key_id(b"wrapped-a"));
        assert_ne!(a, key_id(b"wrapped-b"));
        assert_eq!(a.len(), 4 + 32);
        assert_ne!(aad("p1", "c"), aad("p2", "c"));
        assert_ne!(aad("p1", "c"), aad("p1", "d"));
    }

    #[test]
    fn every_domain_must_be_covered() {
        let grants = [GrantView {
            consent_id: "c1".into(),
            domains: "mobilite,famille".into(),
            purposes: "orientation".into(),
            valid_from: "2026-01-01".into(),
            valid_until: "2026-12-31".into(),
            status: "active".into(),
        }];
        let day = "2026-06-01";
        assert!(decide_all(&grants, &["mobilite", "famille"], Purpose::Orientation, day).is_ok());
        let (domain, d) =
            decide_all(&grants, &["mobilite", "sante"], Purpose::Orientation, day).unwrap_err();
        assert_eq!((domain, d.reason), ("sante", Reason::DomainNotCovered));
        let (_, d) = decide_all(&grants, &["mobilite"], Purpose::Accompagnement, day).unwrap_err();
        assert_eq!(d.reason, Reason::PurposeNotCovered);
    }
}
