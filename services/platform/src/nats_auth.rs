//! NATS accounts for EVA: the services' user and one user per partner, rendered as
//! nats-server configuration text (`deploy/nats/`, `eva nats …`).
//!
//! A partner's user may only read what is addressed to it: subscribe to
//! `eva.partners.<id>.>` and to its own inbox prefix `_INBOX_<id>.>`, and call the few
//! JetStream API subjects that create, read and pull from its own durable pull consumer
//! `partner-<id>` on `EVA_PARTNERS`, filtered on its own subjects. The filter is part of
//! the API subject (`$JS.API.CONSUMER.CREATE.<stream>.<consumer>.<filter>`) and the
//! server refuses a request whose body names another filter, so the permission is the
//! isolation. Inputs are typed and checked (structure ids are UUIDs, user names and
//! hashes use a closed alphabet): nothing a caller passes can inject configuration.

use std::fmt::{self, Write as _};
use std::str::FromStr;

use rand::Rng;
use rand::distributions::Alphanumeric;
use uuid::Uuid;

use crate::bus::streams;

/// The bcrypt cost `eva nats` uses by default (as `nats server passwd`).
pub const DEFAULT_BCRYPT_COST: u32 = 11;

/// The NATS account holding EVA's JetStream streams and every EVA user.
pub const ACCOUNT: &str = "EVA";

/// Default name of the services' user.
pub const SERVICES_USER: &str = "eva-services";

/// Length of a generated password (alphanumeric: about 190 bits).
pub const GENERATED_PASSWORD_LEN: usize = 32;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NatsAuthError {
    #[error(
        "identifiant de structure invalide (UUID attendu) : {0:?} / invalid structure id (a UUID is expected): {0:?}"
    )]
    InvalidStructureId(String),
    #[error(
        "nom d'utilisateur NATS invalide (lettres, chiffres, - et _) : {0:?} / invalid NATS user name (letters, digits, - and _): {0:?}"
    )]
    InvalidUserName(String),
    #[error("empreinte bcrypt invalide / invalid bcrypt hash")]
    InvalidHash,
    #[error("mot de passe vide / empty password")]
    EmptyPassword,
    #[error("bcrypt: {0}")]
    Bcrypt(String),
    #[error("partenaire en double : {0} / duplicate partner: {0}")]
    DuplicatePartner(Uuid),
}

/// A partner structure's id: a UUID, printed in lowercase hyphenated form, which is
/// safe in NATS subjects and configuration strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartnerId(Uuid);

impl PartnerId {
    pub fn new(id: Uuid) -> Self {
        Self(id)
    }

    pub fn uuid(&self) -> Uuid {
        self.0
    }

    /// The partner's NATS user: `partner-<id>`.
    pub fn user(&self) -> String {
        format!("partner-{}", self.0)
    }

    /// The partner's durable pull consumer on `EVA_PARTNERS`: `partner-<id>`.
    pub fn durable(&self) -> String {
        format!("partner-{}", self.0)
    }

    /// The subjects addressed to the partner: `eva.partners.<id>.>`.
    pub fn subjects(&self) -> String {
        format!("eva.partners.{}.>", self.0)
    }

    /// The subject of one referral event for the partner, e.g.
    /// `eva.partners.<id>.referrals.accepted`.
    pub fn referral_subject(&self, event: &str) -> String {
        format!("eva.partners.{}.referrals.{event}", self.0)
    }

    /// The inbox prefix the partner must connect with (async-nats
    /// `ConnectOptions::custom_inbox_prefix`): `_INBOX_<id>`.
    pub fn inbox_prefix(&self) -> String {
        format!("_INBOX_{}", self.0)
    }

    /// What the partner's user may publish: its own consumer's JetStream API calls and
    /// acknowledgements, nothing else.
    pub fn publish_allow(&self) -> Vec<String> {
        let stream = streams::PARTNERS.name;
        let durable = self.durable();
        vec![
            format!(
                "$JS.API.CONSUMER.CREATE.{stream}.{durable}.{}",
                self.subjects()
            ),
            format!("$JS.API.CONSUMER.INFO.{stream}.{durable}"),
            format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"),
            format!("$JS.ACK.{stream}.{durable}.>"),
        ]
    }

    /// What the partner's user may subscribe to: its subjects and its inbox.
    pub fn subscribe_allow(&self) -> Vec<String> {
        vec![self.subjects(), format!("{}.>", self.inbox_prefix())]
    }
}

impl FromStr for PartnerId {
    type Err = NatsAuthError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let trimmed = s.trim();
        // Only the hyphenated form: `Uuid::parse_str` also takes braces and `urn:`.
        if trimmed.len() != 36 {
            return Err(NatsAuthError::InvalidStructureId(s.to_owned()));
        }
        Uuid::parse_str(trimmed)
            .map(Self)
            .map_err(|_| NatsAuthError::InvalidStructureId(s.to_owned()))
    }
}

impl fmt::Display for PartnerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A bcrypt hash (`$2a$`, `$2b$` or `$2y$`), as nats-server takes it in `password`.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// Hashes a password with bcrypt at `cost` (4 to 31). Slow on purpose: call it
    /// from blocking code.
    pub fn hash(password: &str, cost: u32) -> Result<Self, NatsAuthError> {
        if password.is_empty() {
            return Err(NatsAuthError::EmptyPassword);
        }
        let hash =
            bcrypt::hash(password, cost).map_err(|e| NatsAuthError::Bcrypt(e.to_string()))?;
        Self::from_hash(&hash)
    }

    /// Takes an existing bcrypt hash, checking its form.
    pub fn from_hash(hash: &str) -> Result<Self, NatsAuthError> {
        let well_formed = hash.len() == 60
            && ["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p))
            && hash
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'$' || b == b'.' || b == b'/');
        if well_formed {
            Ok(Self(hash.to_owned()))
        } else {
            Err(NatsAuthError::InvalidHash)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when `password` matches.
    pub fn verify(&self, password: &str) -> bool {
        bcrypt::verify(password, &self.0).unwrap_or(false)
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(…)")
    }
}

/// A random alphanumeric password of [`GENERATED_PASSWORD_LEN`] characters.
pub fn generate_password() -> String {
    rand::rngs::OsRng
        .sample_iter(&Alphanumeric)
        .take(GENERATED_PASSWORD_LEN)
        .map(char::from)
        .collect()
}

/// The EVA services' user: full access within the account.
#[derive(Debug, Clone)]
pub struct ServicesUser {
    name: String,
    password: PasswordHash,
}

impl ServicesUser {
    pub fn new(name: &str, password: PasswordHash) -> Result<Self, NatsAuthError> {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Err(NatsAuthError::InvalidUserName(name.to_owned()));
        }
        Ok(Self {
            name: name.to_owned(),
            password,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

/// A partner's user.
#[derive(Debug, Clone)]
pub struct PartnerUser {
    pub id: PartnerId,
    pub password: PasswordHash,
}

/// The user block of one partner, as an entry of the account's `users` list.
pub fn render_partner_user(partner: &PartnerUser) -> String {
    let id = &partner.id;
    let mut out = String::new();
    let _ = writeln!(out, "      # partenaire / partner {id}");
    let _ = writeln!(out, "      # inbox prefix: {}", id.inbox_prefix());
    let _ = writeln!(
        out,
        "      # durable pull consumer: {} on {}, filter {}",
        id.durable(),
        streams::PARTNERS.name,
        id.subjects()
    );
    let _ = writeln!(out, "      {{");
    let _ = writeln!(out, "        user: \"{}\"", id.user());
    let _ = writeln!(out, "        password: \"{}\"", partner.password.as_str());
    let _ = writeln!(out, "        permissions: {{");
    let _ = writeln!(out, "          publish: {{");
    let _ = writeln!(out, "            allow: [");
    for subject in id.publish_allow() {
        let _ = writeln!(out, "              \"{subject}\"");
    }
    let _ = writeln!(out, "            ]");
    let _ = writeln!(out, "          }}");
    let _ = writeln!(out, "          subscribe: {{");
    let _ = writeln!(out, "            allow: [");
    for subject in id.subscribe_allow() {
        let _ = writeln!(out, "              \"{subject}\"");
    }
    let _ = writeln!(out, "            ]");
    let _ = writeln!(out, "          }}");
    let _ = writeln!(out, "        }}");
    let _ = writeln!(out, "      }}");
    out
}

/// The whole `accounts` block: account `EVA` with JetStream, the services' user and
/// one user per partner. Include it from the server configuration, which sets
/// `jetstream { store_dir … }`.
pub fn render_accounts(
    services: &ServicesUser,
    partners: &[PartnerUser],
) -> Result<String, NatsAuthError> {
    let mut seen = std::collections::BTreeSet::new();
    for p in partners {
        if !seen.insert(p.id) {
            return Err(NatsAuthError::DuplicatePartner(p.id.uuid()));
        }
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Généré par `eva nats accounts` : ne pas modifier à la main / generated by `eva nats accounts`: do not edit by hand."
    );
    let _ = writeln!(out, "accounts {{");
    let _ = writeln!(out, "  {ACCOUNT} {{");
    let _ = writeln!(out, "    jetstream: enabled");
    let _ = writeln!(out, "    users: [");
    let _ = writeln!(
        out,
        "      # les services EVA : tout le compte / EVA services: the whole account"
    );
    let _ = writeln!(
        out,
        "      {{ user: \"{}\", password: \"{}\" }}",
        services.name,
        services.password.as_str()
    );
    for p in partners {
        out.push_str(&render_partner_user(p));
    }
    let _ = writeln!(out, "    ]");
    let _ = writeln!(out, "  }}");
    let _ = writeln!(out, "}}");
    Ok(out)
}

/// One line of a partners file: `<structure id> [<password>]`. Blank lines and lines
/// starting with `#` are skipped (`None`).
pub fn parse_partner_line(
    line: &str,
) -> Result<Option<(PartnerId, Option<String>)>, NatsAuthError> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let mut parts = line.splitn(2, char::is_whitespace);
    let id: PartnerId = parts.next().unwrap_or_default().parse()?;
    let password = parts
        .next()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned);
    Ok(Some((id, password)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = "0192f0c1-8d2e-7c3a-9b1f-2a3b4c5d6e7f";

    #[test]
    fn structure_ids_must_be_plain_uuids() {
        assert!(P.parse::<PartnerId>().is_ok());
        for bad in [
            "",
            "partner",
            "0192f0c1-8d2e-7c3a-9b1f-2a3b4c5d6e7f.>",
            "0192f0c1-8d2e-7c3a-9b1f-2a3b4c5d6e7f\" }",
            "{0192f0c1-8d2e-7c3a-9b1f-2a3b4c5d6e7f}",
            "urn:uuid:0192f0c1-8d2e-7c3a-9b1f-2a3b4c5d6e7f",
            "*",
            ">",
        ] {
            assert!(bad.parse::<PartnerId>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn hashes_and_names_are_checked() {
        assert_eq!(
            PasswordHash::from_hash("$2a$11$\" }").unwrap_err(),
            NatsAuthError::InvalidHash
        );
        let hash = PasswordHash::hash("secret", 4).unwrap();
        assert!(hash.verify("secret"));
        assert!(!hash.verify("other"));
        assert!(PasswordHash::from_hash(hash.as_str()).is_ok());
        assert!(ServicesUser::new("eva\" }", hash.clone()).is_err());
        assert!(ServicesUser::new("", hash).is_err());
    }

    #[test]
    fn a_partner_may_only_touch_its_own_subjects() {
        let id: PartnerId = P.parse().unwrap();
        let user = PartnerUser {
            id,
            password: PasswordHash::hash("pw", 4).unwrap(),
        };
        let block = render_partner_user(&user);
        assert!(block.contains(&format!("user: \"partner-{P}\"")));
        assert!(block.contains(&format!(
            "\"$JS.API.CONSUMER.CREATE.EVA_PARTNERS.partner-{P}.eva.partners.{P}.>\""
        )));
        assert!(block.contains(&format!("\"_INBOX_{P}.>\"")));
        assert!(block.contains(&format!("\"eva.partners.{P}.>\"")));
        assert!(!block.contains("STREAM."));
        assert!(!block.contains("allow_responses"));
    }

    #[test]
    fn duplicates_are_refused_and_lines_parsed() {
        let id: PartnerId = P.parse().unwrap();
        let password = PasswordHash::hash("pw", 4).unwrap();
        let services = ServicesUser::new(SERVICES_USER, password.clone()).unwrap();
        let p = PartnerUser { id, password };
        assert!(render_accounts(&services, &[p.clone(), p]).is_err());
        assert_eq!(parse_partner_line("  # x").unwrap(), None);
        assert_eq!(parse_partner_line(P).unwrap(), Some((id, None)));
        assert_eq!(
            parse_partner_line(&format!("{P}  s3cret pass ")).unwrap(),
            Some((id, Some("s3cret pass".into())))
        );
        assert!(parse_partner_line("nope pw").is_err());
    }

    #[test]
    fn generated_passwords_are_long_and_different() {
        let a = generate_password();
        assert_eq!(a.len(), GENERATED_PASSWORD_LEN);
        assert_ne!(a, generate_password());
    }
}
