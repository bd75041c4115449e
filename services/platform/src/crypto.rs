//! Personal-data encryption: AES-256-GCM with a per-person data key, the data
//! keys wrapped by the key-encryption key (KEK) from configuration. Deleting
//! a person's wrapped key makes every ciphertext of that person unreadable
//! (crypto-shredding).

use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload};
use aes_gcm::{AeadCore, Aes256Gcm, Key, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;

const NONCE_LEN: usize = 12;
/// Version byte in front of every ciphertext, so the format can change.
const FORMAT_V1: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("key must be base64 of 32 bytes")]
    KeyFormat,
    #[error("ciphertext is damaged or was sealed with another key")]
    Open,
    #[error("key file {path}: {reason}")]
    KeyFile { path: String, reason: String },
}

/// A 256-bit AES-GCM key.
#[derive(Clone)]
struct SecretKey(Key<Aes256Gcm>);

impl SecretKey {
    fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        let cipher = Aes256Gcm::new(&self.0);
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let ct = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .unwrap_or_default();
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
        out.push(FORMAT_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if sealed.len() < 1 + NONCE_LEN || sealed[0] != FORMAT_V1 {
            return Err(CryptoError::Open);
        }
        let (nonce, ct) = sealed[1..].split_at(NONCE_LEN);
        Aes256Gcm::new(&self.0)
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
            .map_err(|_| CryptoError::Open)
    }
}

/// The key-encryption key. Never logged (no `Debug` of its bytes).
#[derive(Clone)]
pub struct Kek(SecretKey);

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Kek(<hidden>)")
    }
}

impl Kek {
    pub fn from_base64(b64: &str) -> Result<Self, CryptoError> {
        let raw = STANDARD
            .decode(b64.trim())
            .map_err(|_| CryptoError::KeyFormat)?;
        if raw.len() != 32 {
            return Err(CryptoError::KeyFormat);
        }
        Ok(Self(SecretKey(*Key::<Aes256Gcm>::from_slice(&raw))))
    }

    /// A fresh random key, base64-encoded, for `eva up`'s first start.
    pub fn generate_base64() -> String {
        let mut raw = [0u8; 32];
        OsRng.fill_bytes(&mut raw);
        STANDARD.encode(raw)
    }

    /// Reads a key file; with `create`, writes a new key (mode 0600) when
    /// the file does not exist.
    pub fn from_file(path: &Path, create: bool) -> Result<Self, CryptoError> {
        let err = |reason: String| CryptoError::KeyFile {
            path: path.display().to_string(),
            reason,
        };
        if !path.exists() && create {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
            }
            write_private(path, &Self::generate_base64()).map_err(|e| err(e.to_string()))?;
            tracing::warn!(path = %path.display(), "generated a new key-encryption key: back it up, data cannot be read without it");
        }
        let b64 = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        Self::from_base64(&b64).map_err(|e| err(e.to_string()))
    }

    /// Seals a secret of the platform itself (e.g. a signing key).
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        self.0.seal(plaintext, aad)
    }

    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.0.open(sealed, aad)
    }

    /// The keyed blind index derived from this KEK (see [`BlindIndex`]).
    pub fn blind_index(&self) -> BlindIndex {
        use hmac::{KeyInit, Mac};
        let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(self.0.0.as_slice())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(b"eva:blind-index:v1");
        BlindIndex(mac.finalize().into_bytes().into())
    }

    /// Creates a data key for one person; store only [`WrappedKey`].
    pub fn new_data_key(&self, person_id: &str) -> (DataKey, WrappedKey) {
        let mut raw = [0u8; 32];
        OsRng.fill_bytes(&mut raw);
        let wrapped = WrappedKey(self.0.seal(&raw, person_id.as_bytes()));
        (
            DataKey(SecretKey(*Key::<Aes256Gcm>::from_slice(&raw))),
            wrapped,
        )
    }

    pub fn unwrap_data_key(
        &self,
        person_id: &str,
        wrapped: &WrappedKey,
    ) -> Result<DataKey, CryptoError> {
        let raw = self.0.open(&wrapped.0, person_id.as_bytes())?;
        if raw.len() != 32 {
            return Err(CryptoError::Open);
        }
        Ok(DataKey(SecretKey(*Key::<Aes256Gcm>::from_slice(&raw))))
    }
}

/// Exact-match search over encrypted fields: a keyed HMAC of the normalised
/// value, stored beside the ciphertext. Without the key the index reveals
/// nothing; with it, equal values have equal indexes.
#[derive(Clone)]
pub struct BlindIndex([u8; 32]);

impl std::fmt::Debug for BlindIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BlindIndex(<hidden>)")
    }
}

impl BlindIndex {
    /// Hex HMAC-SHA256 of `field` and `value` normalised (trimmed, lowercase,
    /// inner spaces collapsed), so `" Dupont "` and `"dupont"` match.
    pub fn index(&self, field: &str, value: &str) -> String {
        use hmac::{KeyInit, Mac};
        let normalised = value
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase();
        let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(field.as_bytes());
        mac.update(&[0]);
        mac.update(normalised.as_bytes());
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// A person's data key, wrapped by the KEK: what the database stores.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrappedKey(pub Vec<u8>);

/// A person's data key, in memory only while in use.
#[derive(Clone)]
pub struct DataKey(SecretKey);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(<hidden>)")
    }
}

impl DataKey {
    /// `aad` binds the ciphertext to where it belongs (e.g. "person:<id>:name")
    /// so it cannot be moved to another field or person.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        self.0.seal(plaintext, aad)
    }

    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.0.open(sealed, aad)
    }
}

/// A key derived from secrets a client holds and the server does not keep
/// (e.g. an `Idempotency-Key` and the caller's token): what it seals can only
/// be opened by whoever presents the same secrets again.
#[derive(Clone)]
pub struct ClientKey(SecretKey);

impl std::fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientKey(<hidden>)")
    }
}

impl ClientKey {
    /// SHA-256 of `purpose` and each secret, length-prefixed so that no two
    /// lists of secrets give the same key.
    pub fn derive(purpose: &str, secrets: &[&[u8]]) -> Self {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for part in std::iter::once(purpose.as_bytes()).chain(secrets.iter().copied()) {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part);
        }
        let bytes: [u8; 32] = h.finalize().into();
        Self(SecretKey(*Key::<Aes256Gcm>::from_slice(&bytes)))
    }

    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        self.0.seal(plaintext, aad)
    }

    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.0.open(sealed, aad)
    }
}

fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(content.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_keys_open_only_with_the_same_secrets() {
        let key = ClientKey::derive("test", &[b"token", b"key-1"]);
        let sealed = key.seal(b"Dupont", b"aad");
        let again = ClientKey::derive("test", &[b"token", b"key-1"]);
        assert_eq!(again.open(&sealed, b"aad").unwrap(), b"Dupont");
        for other in [
            ClientKey::derive("test", &[b"token", b"key-2"]),
            ClientKey::derive("test", &[b"toke", b"nkey-1"]),
            ClientKey::derive("other", &[b"token", b"key-1"]),
        ] {
            assert!(other.open(&sealed, b"aad").is_err());
        }
    }

    #[test]
    fn data_keys_seal_and_shred() {
        let kek = Kek::from_base64(&Kek::generate_base64()).unwrap();
        let (key, wrapped) = kek.new_data_key("p1");
        let sealed = key.seal(b"Dupont", b"person:p1:name");
        let again = kek.unwrap_data_key("p1", &wrapped).unwrap();
        assert_eq!(again.open(&sealed, b"person:p1:name").unwrap(), b"Dupont");
        // Bound to the field and the person.
        assert!(again.open(&sealed, b"person:p2:name").is_err());
        assert!(kek.unwrap_data_key("p2", &wrapped).is_err());
        // Another KEK cannot unwrap.
        let other = Kek::from_base64(&Kek::generate_base64()).unwrap();
        assert!(other.unwrap_data_key("p1", &wrapped).is_err());
    }

    #[test]
    fn blind_indexes_match_normalised_values_only_under_one_key() {
        let kek = Kek::from_base64(&Kek::generate_base64()).unwrap();
        let bi = kek.blind_index();
        assert_eq!(
            bi.index("email", " Ana@Example.org "),
            bi.index("email", "ana@example.org")
        );
        assert_ne!(
            bi.index("email", "ana@example.org"),
            bi.index("name", "ana@example.org")
        );
        let other = Kek::from_base64(&Kek::generate_base64())
            .unwrap()
            .blind_index();
        assert_ne!(bi.index("email", "a"), other.index("email", "a"));
        assert_eq!(bi.index("email", "a").len(), 64);
    }

    #[test]
    fn bad_keys_are_refused() {
        assert!(Kek::from_base64("short").is_err());
        assert!(Kek::from_base64(&STANDARD.encode([0u8; 16])).is_err());
    }
}
