//! Access tokens: EdDSA (Ed25519) JWTs signed by identity, verified by every
//! service against identity's published JWKS. The verified caller is a
//! [`Principal`]; services authorise from it, deny by default.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier as _, VerifyingKey};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, RwLock};
use uuid::Uuid;

/// What an account may do. Strings in tokens, lowercase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Person,
    Counselor,
    StructureAdmin,
    Partner,
    Analyst,
    Operator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Person => "person",
            Role::Counselor => "counselor",
            Role::StructureAdmin => "structure_admin",
            Role::Partner => "partner",
            Role::Analyst => "analyst",
            Role::Operator => "operator",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "person" => Role::Person,
            "counselor" => Role::Counselor,
            "structure_admin" => Role::StructureAdmin,
            "partner" => Role::Partner,
            "analyst" => Role::Analyst,
            "operator" => Role::Operator,
            _ => return None,
        })
    }
}

/// The claims of an EVA access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub iss: String,
    /// The account's id.
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    /// Token id, for revocation and the access log.
    pub jti: String,
    pub roles: Vec<Role>,
    /// Structures the account belongs to.
    #[serde(default)]
    pub structures: Vec<String>,
    /// The person supported, when the account is theirs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person_id: Option<String>,
}

/// The verified caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: String,
    pub roles: Vec<Role>,
    pub structures: Vec<String>,
    pub person_id: Option<String>,
    pub token_id: String,
}

impl Principal {
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    pub fn has_any_role(&self, roles: &[Role]) -> bool {
        roles.iter().any(|r| self.has_role(*r))
    }

    pub fn belongs_to(&self, structure_id: &str) -> bool {
        self.structures.iter().any(|s| s == structure_id)
    }

    /// The first role, for access-log entries.
    pub fn main_role(&self) -> &'static str {
        self.roles.first().map(|r| r.as_str()).unwrap_or("none")
    }
}

impl From<Claims> for Principal {
    fn from(c: Claims) -> Self {
        Self {
            user_id: c.sub,
            roles: c.roles,
            structures: c.structures,
            person_id: c.person_id,
            token_id: c.jti,
        }
    }
}

/// A public key as published in the JWKS (RFC 8037, OKP Ed25519).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Jwk {
    pub kty: String,
    pub crv: String,
    pub x: String,
    pub kid: String,
    pub alg: String,
    #[serde(rename = "use")]
    pub use_: String,
}

/// `{"keys": [...]}` as served at `/.well-known/jwks.json`.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct JwkSet {
    pub keys: Vec<Jwk>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("no bearer token")]
    Missing,
    #[error("token is not a well-formed JWT")]
    Malformed,
    #[error("token signed with an unknown key")]
    UnknownKey,
    #[error("token signature is invalid")]
    Signature,
    #[error("token has expired")]
    Expired,
    #[error("token was not issued for EVA")]
    WrongIssuerOrAudience,
    #[error("keys unavailable: {0}")]
    Keys(String),
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
    kid: String,
}

/// Signs tokens; held by identity only.
#[derive(Clone)]
pub struct TokenSigner {
    kid: String,
    key: SigningKey,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner")
            .field("kid", &self.kid)
            .finish()
    }
}

impl TokenSigner {
    /// A new random key pair.
    pub fn generate() -> Self {
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        Self {
            kid: Uuid::now_v7().to_string(),
            key,
        }
    }

    pub fn from_secret(kid: String, secret: &[u8]) -> Option<Self> {
        let bytes: [u8; 32] = secret.try_into().ok()?;
        Some(Self {
            kid,
            key: SigningKey::from_bytes(&bytes),
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The private key bytes, to be sealed with the KEK before storing.
    pub fn secret(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    pub fn jwk(&self) -> Jwk {
        Jwk {
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            x: URL_SAFE_NO_PAD.encode(self.key.verifying_key().as_bytes()),
            kid: self.kid.clone(),
            alg: "EdDSA".into(),
            use_: "sig".into(),
        }
    }

    pub fn sign(&self, claims: &Claims) -> String {
        let header = Header {
            alg: "EdDSA".into(),
            typ: Some("JWT".into()),
            kid: self.kid.clone(),
        };
        let h = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap_or_default());
        let c = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
        let input = format!("{h}.{c}");
        let sig = self.key.sign(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
    }

    /// A detached JWS (RFC 7515 appendix F) over `payload`:
    /// `<header>..<signature>`, the payload left out. Anyone holding the
    /// payload and the JWKS can check it ([`Verifier::verify_detached`]);
    /// used for consent receipts.
    pub fn sign_detached(&self, payload: &[u8]) -> String {
        let header = Header {
            alg: "EdDSA".into(),
            typ: None,
            kid: self.kid.clone(),
        };
        let h = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap_or_default());
        let input = format!("{h}.{}", URL_SAFE_NO_PAD.encode(payload));
        let sig = self.key.sign(input.as_bytes());
        format!("{h}..{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
    }

    /// Claims for `sub` valid `ttl` from now.
    pub fn claims(
        issuer: &str,
        audience: &str,
        sub: &str,
        roles: Vec<Role>,
        structures: Vec<String>,
        ttl: Duration,
    ) -> Claims {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        Claims {
            iss: issuer.into(),
            sub: sub.into(),
            aud: audience.into(),
            iat: now,
            exp: now + ttl.as_secs() as i64,
            jti: Uuid::now_v7().to_string(),
            roles,
            structures,
            person_id: None,
        }
    }
}

/// Where a verifier gets the public keys.
type FetchKeys =
    Arc<dyn Fn() -> futures::future::BoxFuture<'static, Result<Vec<Jwk>, String>> + Send + Sync>;

/// Verifies tokens against a JWKS it refreshes when it meets an unknown key
/// (identity rotated its key), at most every few seconds.
#[derive(Clone)]
pub struct Verifier {
    issuer: String,
    audience: String,
    keys: Arc<RwLock<HashMap<String, VerifyingKey>>>,
    fetch: FetchKeys,
    last_fetch: Arc<Mutex<Option<Instant>>>,
}

const MIN_REFRESH: Duration = Duration::from_secs(5);

impl Verifier {
    pub fn new(issuer: &str, audience: &str, fetch: FetchKeys) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            keys: Arc::default(),
            fetch,
            last_fetch: Arc::default(),
        }
    }

    /// Keys from identity's `GetJwks` over gRPC.
    pub fn from_identity(issuer: &str, audience: &str, endpoint: &str) -> Result<Self, String> {
        let channel = tonic::transport::Endpoint::from_shared(endpoint.to_owned())
            .map_err(|e| format!("identity endpoint `{endpoint}`: {e}"))?
            .connect_timeout(Duration::from_secs(3))
            .connect_lazy();
        let fetch: FetchKeys = Arc::new(move || {
            let mut client =
                eva_proto::identity::v1::key_service_client::KeyServiceClient::new(channel.clone());
            Box::pin(async move {
                let resp = client
                    .get_jwks(eva_proto::identity::v1::GetJwksRequest {})
                    .await
                    .map_err(|s| s.message().to_owned())?;
                Ok(resp
                    .into_inner()
                    .keys
                    .into_iter()
                    .map(|k| Jwk {
                        kty: k.kty,
                        crv: k.crv,
                        x: k.x,
                        kid: k.kid,
                        alg: k.alg,
                        use_: k.r#use,
                    })
                    .collect())
            })
        });
        Ok(Self::new(issuer, audience, fetch))
    }

    /// Verifies the token and returns its caller.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let mut parts = token.split('.');
        let (Some(h), Some(c), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::Malformed);
        };
        let header: Header = decode_json(h)?;
        if header.alg != "EdDSA" {
            return Err(AuthError::Malformed);
        }
        let key = self.key(&header.kid).await?;
        let sig_bytes = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| AuthError::Malformed)?;
        let sig = Signature::from_slice(&sig_bytes).map_err(|_| AuthError::Malformed)?;
        key.verify(format!("{h}.{c}").as_bytes(), &sig)
            .map_err(|_| AuthError::Signature)?;
        let claims: Claims = decode_json(c)?;
        if claims.iss != self.issuer || claims.aud != self.audience {
            return Err(AuthError::WrongIssuerOrAudience);
        }
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        // 30 s of leeway for clocks that drift between machines.
        if claims.exp + 30 < now {
            return Err(AuthError::Expired);
        }
        Ok(claims.into())
    }

    /// Checks a detached JWS made by [`TokenSigner::sign_detached`] over
    /// `payload`, with the published keys.
    pub async fn verify_detached(&self, jws: &str, payload: &[u8]) -> Result<(), AuthError> {
        let mut parts = jws.split('.');
        let (Some(h), Some(""), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::Malformed);
        };
        let header: Header = decode_json(h)?;
        if header.alg != "EdDSA" {
            return Err(AuthError::Malformed);
        }
        let key = self.key(&header.kid).await?;
        let sig_bytes = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| AuthError::Malformed)?;
        let sig = Signature::from_slice(&sig_bytes).map_err(|_| AuthError::Malformed)?;
        let input = format!("{h}.{}", URL_SAFE_NO_PAD.encode(payload));
        key.verify(input.as_bytes(), &sig)
            .map_err(|_| AuthError::Signature)
    }

    async fn key(&self, kid: &str) -> Result<VerifyingKey, AuthError> {
        if let Some(k) = self.keys.read().await.get(kid) {
            return Ok(*k);
        }
        self.refresh().await?;
        self.keys
            .read()
            .await
            .get(kid)
            .copied()
            .ok_or(AuthError::UnknownKey)
    }

    async fn refresh(&self) -> Result<(), AuthError> {
        let mut last = self.last_fetch.lock().await;
        if last.is_some_and(|t| t.elapsed() < MIN_REFRESH) {
            return Ok(());
        }
        let jwks = (self.fetch)().await.map_err(AuthError::Keys)?;
        *last = Some(Instant::now());
        let mut keys = self.keys.write().await;
        keys.clear();
        for jwk in jwks {
            if jwk.kty != "OKP" || jwk.crv != "Ed25519" {
                continue;
            }
            let Ok(raw) = URL_SAFE_NO_PAD.decode(&jwk.x) else {
                continue;
            };
            let Ok(bytes) = <[u8; 32]>::try_from(raw.as_slice()) else {
                continue;
            };
            if let Ok(k) = VerifyingKey::from_bytes(&bytes) {
                keys.insert(jwk.kid, k);
            }
        }
        Ok(())
    }
}

fn decode_json<T: for<'de> Deserialize<'de>>(part: &str) -> Result<T, AuthError> {
    let raw = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| AuthError::Malformed)?;
    serde_json::from_slice(&raw).map_err(|_| AuthError::Malformed)
}

/// The caller of a gRPC request, put there by the auth layer.
pub fn principal<T>(req: &tonic::Request<T>) -> Result<&Principal, tonic::Status> {
    req.extensions().get::<Principal>().ok_or_else(|| {
        tonic::Status::unauthenticated("authentification requise / authentication required")
    })
}

/// Refuses unless the caller has one of `roles`.
pub fn require_role<'a, T>(
    req: &'a tonic::Request<T>,
    roles: &[Role],
) -> Result<&'a Principal, tonic::Status> {
    let p = principal(req)?;
    if p.has_any_role(roles) {
        Ok(p)
    } else {
        let names: Vec<_> = roles.iter().map(|r| r.as_str()).collect();
        Err(tonic::Status::permission_denied(format!(
            "accès refusé : rôle requis {} / access denied: role required",
            names.join(" ou ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verifier_for(signer: &TokenSigner) -> Verifier {
        let jwk = signer.jwk();
        Verifier::new(
            "eva",
            "eva",
            Arc::new(move || {
                let jwk = jwk.clone();
                Box::pin(async move { Ok(vec![jwk]) })
            }),
        )
    }

    #[tokio::test]
    async fn tokens_round_trip_and_tampering_is_refused() {
        let signer = TokenSigner::generate();
        let v = verifier_for(&signer);
        let claims = TokenSigner::claims(
            "eva",
            "eva",
            "u1",
            vec![Role::Operator],
            vec![],
            Duration::from_secs(60),
        );
        let token = signer.sign(&claims);
        let p = v.verify(&token).await.unwrap();
        assert_eq!(p.user_id, "u1");
        assert!(p.has_role(Role::Operator));

        let mut forged = claims.clone();
        forged.roles = vec![Role::Analyst, Role::Operator, Role::Counselor];
        let other = signer.sign(&forged);
        let tampered = format!(
            "{}.{}.{}",
            token.split('.').next().unwrap(),
            other.split('.').nth(1).unwrap(),
            token.split('.').nth(2).unwrap()
        );
        assert_eq!(v.verify(&tampered).await, Err(AuthError::Signature));
        assert_eq!(v.verify("abc").await, Err(AuthError::Malformed));

        let stranger = TokenSigner::generate();
        assert_eq!(
            v.verify(&stranger.sign(&claims)).await,
            Err(AuthError::UnknownKey)
        );

        let mut old = claims.clone();
        old.exp -= 3600;
        assert_eq!(v.verify(&signer.sign(&old)).await, Err(AuthError::Expired));

        let mut wrong = claims;
        wrong.aud = "other".into();
        assert_eq!(
            v.verify(&signer.sign(&wrong)).await,
            Err(AuthError::WrongIssuerOrAudience)
        );
    }

    #[tokio::test]
    async fn detached_signatures_cover_the_payload() {
        let signer = TokenSigner::generate();
        let v = verifier_for(&signer);
        let payload = br#"{"consent_receipt_id":"r1","jurisdiction":"FR"}"#;
        let jws = signer.sign_detached(payload);
        assert_eq!(jws.split('.').nth(1), Some(""), "payload is detached");
        v.verify_detached(&jws, payload).await.unwrap();
        assert_eq!(
            v.verify_detached(&jws, br#"{"consent_receipt_id":"r2","jurisdiction":"FR"}"#)
                .await,
            Err(AuthError::Signature)
        );
        // A token is not a detached signature, and another key is unknown.
        let token = signer.sign(&TokenSigner::claims(
            "eva",
            "eva",
            "u1",
            vec![],
            vec![],
            Duration::from_secs(60),
        ));
        assert_eq!(
            v.verify_detached(&token, payload).await,
            Err(AuthError::Malformed)
        );
        let stranger = TokenSigner::generate();
        assert_eq!(
            v.verify_detached(&stranger.sign_detached(payload), payload)
                .await,
            Err(AuthError::UnknownKey)
        );
    }
}
