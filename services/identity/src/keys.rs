//! Token signing keys: created on first start, the private half sealed with
//! the KEK in identity's database, the public halves published as the JWKS.

use std::time::Duration;

use eva_platform::auth::{Jwk, TokenSigner};
use eva_platform::crypto::Kek;
use eva_platform::db::now_us;

use crate::IdentityError;
use crate::store::Store;

/// Additional data binding a sealed key to its purpose and id.
fn aad(kid: &str) -> Vec<u8> {
    format!("eva:signing-key:{kid}").into_bytes()
}

/// The signing key in use, created if there is none yet.
pub async fn current_signer(store: &Store, kek: &Kek) -> Result<TokenSigner, IdentityError> {
    if let Some(k) = store.current_key().await? {
        return unseal(kek, &k.kid, &k.sealed_secret);
    }
    let signer = TokenSigner::generate();
    store
        .insert_key(
            signer.kid(),
            &kek.seal(&signer.secret(), &aad(signer.kid())),
        )
        .await?;
    tracing::info!(kid = signer.kid(), "created token signing key");
    Ok(signer)
}

/// Public keys whose tokens may still be valid, retired ones included for
/// one token lifetime.
pub async fn published(
    store: &Store,
    kek: &Kek,
    token_ttl: Duration,
) -> Result<Vec<Jwk>, IdentityError> {
    let since = now_us() - token_ttl.as_micros() as i64;
    store
        .published_keys(since)
        .await?
        .into_iter()
        .map(|k| unseal(kek, &k.kid, &k.sealed_secret).map(|s| s.jwk()))
        .collect()
}

fn unseal(kek: &Kek, kid: &str, sealed: &[u8]) -> Result<TokenSigner, IdentityError> {
    let secret = kek.open(sealed, &aad(kid)).map_err(|_| {
        IdentityError::Keys("signing key cannot be unsealed: wrong key-encryption key?".into())
    })?;
    TokenSigner::from_secret(kid.to_owned(), &secret)
        .ok_or_else(|| IdentityError::Keys("stored signing key is damaged".into()))
}
