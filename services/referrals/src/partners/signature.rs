//! The `eva-signature` header of a webhook call.
//!
//! `eva-signature: t=<unix seconds>,v1=<hex>` where `<hex>` is the lowercase
//! hex of HMAC-SHA256, keyed with the webhook's secret (the base64url string
//! returned once by `CreateWebhook`, taken as its UTF-8 bytes), over
//! `"<t>.<body bytes>"`: the decimal timestamp, a full stop, then the body
//! exactly as received.
//!
//! A receiver recomputes the MAC over the raw body, compares it in constant
//! time, and refuses a timestamp more than [`TOLERANCE_SECS`] (5 minutes)
//! away from its own clock, so that a captured call cannot be replayed later.
//! It also keeps the `ce-id` of what it already processed: EVA delivers at
//! least once.

use hmac::{KeyInit, Mac};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Header name.
pub const HEADER: &str = "eva-signature";
/// How far a receiver should accept the timestamp from its own clock.
pub const TOLERANCE_SECS: i64 = 300;

fn mac(secret: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length.
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The header's value for `body` sent at `timestamp` (Unix seconds).
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let tag = mac(secret, timestamp, body).finalize().into_bytes();
    format!("t={timestamp},v1={}", hex(&tag))
}

/// Why a signature was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("malformed eva-signature header")]
    Malformed,
    #[error("timestamp outside the tolerance")]
    Stale,
    #[error("signature does not match")]
    Mismatch,
}

/// What a receiver does (here for tests and for partners to copy): checks
/// the header against the body, in constant time, with `now` in Unix
/// seconds.
pub fn verify(secret: &str, header: &str, body: &[u8], now: i64) -> Result<(), SignatureError> {
    let mut t = None;
    let mut v1 = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = Some(v.parse::<i64>().map_err(|_| SignatureError::Malformed)?),
            Some(("v1", v)) => v1.push(v),
            _ => {}
        }
    }
    let t = t.ok_or(SignatureError::Malformed)?;
    if v1.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if (now - t).abs() > TOLERANCE_SECS {
        return Err(SignatureError::Stale);
    }
    for candidate in v1 {
        let Some(tag) = unhex(candidate) else {
            continue;
        };
        // `verify_slice` compares in constant time.
        if mac(secret, t, body).verify_slice(&tag).is_ok() {
            return Ok(());
        }
    }
    Err(SignatureError::Mismatch)
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_and_a_change_does_not() {
        let h = sign("s3cret", 1_700_000_000, b"body");
        assert!(h.starts_with("t=1700000000,v1="));
        assert_eq!(h.len(), "t=1700000000,v1=".len() + 64);
        assert_eq!(verify("s3cret", &h, b"body", 1_700_000_100), Ok(()));
        assert_eq!(
            verify("s3cret", &h, b"bodY", 1_700_000_100),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify("other", &h, b"body", 1_700_000_100),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify("s3cret", &h, b"body", 1_700_000_301),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify("s3cret", "v1=00", b"body", 0),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify("s3cret", "t=x,v1=00", b"body", 0),
            Err(SignatureError::Malformed)
        );
    }

    #[test]
    fn hex_of_a_known_hmac() {
        // RFC 4231, test case 2.
        let mut m = <HmacSha256 as KeyInit>::new_from_slice(b"Jefe").unwrap();
        m.update(b"what do ya want for nothing?");
        assert_eq!(
            hex(&m.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(unhex("00ff10"), Some(vec![0, 255, 16]));
        assert_eq!(unhex("0"), None);
        assert_eq!(unhex("zz"), None);
    }
}
