//! Passwords: the rules a new password follows, and Argon2id hashing with the
//! OWASP parameters (19 MiB, 2 passes, 1 lane), stored as a PHC string.
//! Hashing takes tens of milliseconds: it runs on the blocking pool.

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::RngCore;

use crate::IdentityError;
use crate::structure::FieldError;

/// OWASP's Argon2id parameters: memory in KiB, passes, lanes.
const MEMORY_KIB: u32 = 19_456;
const PASSES: u32 = 2;
const LANES: u32 = 1;

pub const MIN_CHARS: usize = 12;
pub const MAX_CHARS: usize = 128;

fn argon2() -> Result<Argon2<'static>, IdentityError> {
    let params = Params::new(MEMORY_KIB, PASSES, LANES, None)
        .map_err(|e| IdentityError::Hashing(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Checks a new password; the error names the field `password`.
pub fn check_new(password: &str, email: &str) -> Result<(), FieldError> {
    let bad = |message: &str| FieldError {
        field: "password",
        message: message.to_owned(),
    };
    let n = password.chars().count();
    if n < MIN_CHARS {
        return Err(bad(
            "le mot de passe doit compter au moins 12 caractères / password must be at least 12 characters long",
        ));
    }
    if n > MAX_CHARS {
        return Err(bad(
            "le mot de passe doit compter au plus 128 caractères / password must be at most 128 characters long",
        ));
    }
    let mut chars = password.chars();
    if let Some(first) = chars.next()
        && chars.all(|c| c == first)
    {
        return Err(bad(
            "le mot de passe ne peut pas répéter un seul caractère / password cannot be one character repeated",
        ));
    }
    if password.trim().to_lowercase() == email.trim().to_lowercase() {
        return Err(bad(
            "le mot de passe ne peut pas être votre adresse e-mail / password cannot be your e-mail address",
        ));
    }
    Ok(())
}

/// The PHC string of `password` under a fresh salt.
pub async fn hash(password: String) -> Result<String, IdentityError> {
    tokio::task::spawn_blocking(move || hash_now(&password))
        .await
        .map_err(|e| IdentityError::Hashing(e.to_string()))?
}

fn hash_now(password: &str) -> Result<String, IdentityError> {
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| IdentityError::Hashing(e.to_string()))?;
    Ok(argon2()?
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| IdentityError::Hashing(e.to_string()))?
        .to_string())
}

/// What a verification found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    pub matches: bool,
    /// The stored hash used other parameters: store a new one.
    pub needs_rehash: bool,
}

/// Verifies `password` against `stored`; with no stored hash (unknown
/// account, or one that never set a password) it verifies against a dummy
/// hash so the answer takes the same time, and never matches.
pub async fn verify(password: String, stored: Option<String>) -> Result<Verified, IdentityError> {
    tokio::task::spawn_blocking(move || verify_now(&password, stored.as_deref()))
        .await
        .map_err(|e| IdentityError::Hashing(e.to_string()))?
}

fn verify_now(password: &str, stored: Option<&str>) -> Result<Verified, IdentityError> {
    let (phc, real) = match stored {
        Some(s) => (s, true),
        None => (dummy_hash()?, false),
    };
    let parsed = PasswordHash::new(phc).map_err(|e| IdentityError::Hashing(e.to_string()))?;
    let matches = argon2()?
        .verify_password(password.as_bytes(), &parsed)
        .is_ok();
    let needs_rehash = match Params::try_from(&parsed) {
        Ok(p) => {
            p.m_cost() != MEMORY_KIB
                || p.t_cost() != PASSES
                || p.p_cost() != LANES
                || parsed.algorithm.as_str() != "argon2id"
        }
        Err(_) => true,
    };
    Ok(Verified {
        matches: matches && real,
        needs_rehash: real && needs_rehash,
    })
}

/// Makes the dummy hash in the background, so that even the first refusal
/// of an unknown e-mail takes the usual time.
pub fn warm_up() {
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        rt.spawn_blocking(|| {
            let _ = dummy_hash();
        });
    }
}

/// A hash of a random password, made once, for equal-time refusals.
fn dummy_hash() -> Result<&'static str, IdentityError> {
    static DUMMY: OnceLock<String> = OnceLock::new();
    if let Some(h) = DUMMY.get() {
        return Ok(h);
    }
    let mut secret = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    let h = hash_now(&format!("{secret:?}"))?;
    Ok(DUMMY.get_or_init(|| h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_name_the_password_field() {
        let email = "camille.martin@example.org";
        assert!(check_new("correct horse battery", email).is_ok());
        for bad in [
            "short",
            "aaaaaaaaaaaaaaaa",
            "Camille.Martin@example.org",
            &"x1".repeat(65),
        ] {
            let e = check_new(bad, email).unwrap_err();
            assert_eq!(e.field, "password");
        }
        // Characters, not bytes.
        assert!(check_new("éééééééééééè", email).is_ok());
    }

    #[test]
    fn hashes_verify_and_use_owasp_parameters() {
        let h = hash_now("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        let ok = verify_now("correct horse battery", Some(&h)).unwrap();
        assert_eq!(
            ok,
            Verified {
                matches: true,
                needs_rehash: false
            }
        );
        assert!(!verify_now("wrong horse battery", Some(&h)).unwrap().matches);
        assert!(!verify_now("anything at all", None).unwrap().matches);
        // A hash made with weaker parameters still verifies, and asks for a new one.
        let weak = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8192, 1, 1, None).unwrap(),
        )
        .hash_password(
            b"correct horse battery",
            &SaltString::encode_b64(&[7u8; 16]).unwrap(),
        )
        .unwrap()
        .to_string();
        let v = verify_now("correct horse battery", Some(&weak)).unwrap();
        assert!(v.matches && v.needs_rehash);
    }
}
