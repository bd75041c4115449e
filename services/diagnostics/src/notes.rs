//! Notes are sealed with the person's key, which only identity holds: they
//! go through the platform's client of identity's `SealingService`
//! ([`Sealer`]), with the caller's own token, so identity authorises and
//! access-logs each opening. One payload per diagnostic, domain and author:
//! a JSON object item id → note. A read opens all its payloads with
//! [`open_batch`] (one access-log event in identity per call); a write
//! reopens one with [`open`]. This module only turns notes into JSON and
//! back, and says which domain each payload covers. Notes are never logged.

use std::collections::BTreeMap;

use eva_platform::consent::Purpose;
use eva_platform::sealing::{OpenItem, Opened, Reading, Sealed, Sealer};
use tonic::Status;
use tonic::metadata::MetadataMap;

use crate::store::Author;

/// The notes of one domain by one author: item id → note.
pub type DomainNotes = BTreeMap<String, String>;

/// Where a payload belongs: bound to the ciphertext by identity.
pub fn context(diagnostic_id: &str, domain_id: &str, author: Author) -> String {
    format!("diagnostic:{diagnostic_id}:{domain_id}:{}", author.code())
}

/// A sealed payload of notes about `domain_id`, to open: consent is
/// checked on that domain.
pub fn item(context: String, ciphertext: Vec<u8>, key_id: String, domain_id: &str) -> OpenItem {
    OpenItem {
        context,
        sealed: Sealed { ciphertext, key_id },
        domains: eva_platform::consent::domain(domain_id)
            .map(|d| vec![d.id.to_owned()])
            .unwrap_or_default(),
    }
}

/// Seals `notes` about `person_id`: (ciphertext, key id).
pub async fn seal(
    sealer: &Sealer,
    caller: &MetadataMap,
    person_id: &str,
    context: String,
    notes: &DomainNotes,
) -> Result<(Vec<u8>, String), Status> {
    let plaintext =
        serde_json::to_vec(notes).map_err(|e| Status::internal(format!("notes: {e}")))?;
    let sealed = sealer.seal(caller, person_id, context, plaintext).await?;
    Ok((sealed.ciphertext, sealed.key_id))
}

/// Opens the notes of one payload ([`item`]), reading for `structure_id`
/// (empty for the person themself).
pub async fn open(
    sealer: &Sealer,
    caller: &MetadataMap,
    person_id: &str,
    structure_id: &str,
    purpose: Purpose,
    item: OpenItem,
) -> Result<DomainNotes, Status> {
    let plaintext = sealer
        .open(caller, person_id, structure_id, purpose, item)
        .await?;
    parse(&plaintext)
}

/// Opens `items` ([`item`]) in as few calls as identity's limits allow (one
/// for a diagnostic): per item, its notes, or `None` when the person's
/// consent withholds its domain from this reader. A payload identity finds
/// tampered fails the read, as [`open`] does.
pub async fn open_batch(
    sealer: &Sealer,
    caller: &MetadataMap,
    reading: &Reading<'_>,
    items: Vec<OpenItem>,
) -> Result<Vec<Option<DomainNotes>>, Status> {
    sealer
        .open_batch(caller, reading, items)
        .await?
        .into_iter()
        .map(|opened| match opened {
            Opened::Plain(plaintext) => parse(&plaintext).map(Some),
            Opened::Withheld { .. } => Ok(None),
        })
        .collect()
}

fn parse(plaintext: &[u8]) -> Result<DomainNotes, Status> {
    serde_json::from_slice(plaintext)
        .map_err(|_| Status::internal("notes scellées illisibles / sealed notes unreadable"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_is_checked_on_its_domain() {
        let i = item("c".into(), vec![1, 2], "k1".into(), "mobilite");
        assert_eq!(i.domains, vec!["mobilite".to_owned()]);
        assert_eq!(i.sealed.ciphertext, vec![1, 2]);
        assert_eq!(i.sealed.key_id, "k1");
        assert!(
            item("c".into(), vec![], "k".into(), "inconnu")
                .domains
                .is_empty()
        );
    }

    #[test]
    fn notes_come_back_as_written_and_garbage_fails_the_read() {
        let notes: DomainNotes = [("mobilite.permis".to_owned(), "en cours".to_owned())].into();
        let json = serde_json::to_vec(&notes).unwrap();
        assert_eq!(parse(&json).unwrap(), notes);
        assert_eq!(
            parse(b"\x00garbage").unwrap_err().code(),
            tonic::Code::Internal
        );
    }
}
