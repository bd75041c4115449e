//! The bus: one NATS connection per process with reconnect, JetStream
//! streams declared once here, and the CloudEvents header mapping every
//! publisher and consumer shares.

use std::time::Duration;

use async_nats::jetstream::context::CreateStreamErrorKind;
use async_nats::jetstream::{self, stream};
use async_nats::{HeaderMap, HeaderValue};

use crate::config::BusConfig;

/// A stream owned by one service, or shared (audit, partners).
#[derive(Debug, Clone, Copy)]
pub struct StreamSpec {
    pub name: &'static str,
    pub subjects: &'static [&'static str],
    pub description: &'static str,
}

/// Every stream of EVA. A publisher ensures the stream it writes to and a
/// consumer the one it reads, both with the same settings.
pub mod streams {
    use super::StreamSpec;

    pub const IDENTITY: StreamSpec = StreamSpec {
        name: "EVA_IDENTITY",
        subjects: &["eva.identity.>"],
        description: "structures, users, people, accompaniments",
    };
    pub const CONSENT: StreamSpec = StreamSpec {
        name: "EVA_CONSENT",
        subjects: &["eva.consent.>"],
        description: "consent grants, withdrawals, expiries",
    };
    pub const DIAGNOSTICS: StreamSpec = StreamSpec {
        name: "EVA_DIAGNOSTICS",
        subjects: &["eva.diagnostics.>"],
        description: "shared and superseded diagnostics",
    };
    pub const REFERRALS: StreamSpec = StreamSpec {
        name: "EVA_REFERRALS",
        subjects: &["eva.referrals.>"],
        description: "referrals between structures and partners",
    };
    pub const COMMUNITY: StreamSpec = StreamSpec {
        name: "EVA_COMMUNITY",
        subjects: &["eva.community.>"],
        description: "counselors' questions, answers, solutions, check-ins",
    };
    pub const STATISTICS: StreamSpec = StreamSpec {
        name: "EVA_STATISTICS",
        subjects: &["eva.statistics.>"],
        description: "published statistics exports",
    };
    pub const AUDIT: StreamSpec = StreamSpec {
        name: "EVA_AUDIT",
        subjects: &["eva.audit.>"],
        description: "accesses to people's data, for the person's access log",
    };
    pub const PARTNERS: StreamSpec = StreamSpec {
        name: "EVA_PARTNERS",
        subjects: &["eva.partners.>"],
        description: "referral events addressed to one partner",
    };

    pub const ALL: &[StreamSpec] = &[
        IDENTITY,
        CONSENT,
        DIAGNOSTICS,
        REFERRALS,
        COMMUNITY,
        STATISTICS,
        AUDIT,
        PARTNERS,
    ];
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("bus: cannot reach NATS at {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("bus: stream {stream}: {reason}")]
    Stream { stream: String, reason: String },
    #[error("bus: publish to {subject}: {reason}")]
    Publish { subject: String, reason: String },
    #[error("bus: consumer {consumer}: {reason}")]
    Consumer { consumer: String, reason: String },
}

/// A connection to NATS and its JetStream context. Cloning is cheap.
#[derive(Clone, Debug)]
pub struct Bus {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    replicas: usize,
}

/// The user and password of the first URL of a (comma-separated) list,
/// percent-decoded; `None` when it carries none.
pub fn url_credentials(urls: &str) -> Option<(String, String)> {
    let first = urls.split(',').next()?.trim();
    let url = url::Url::parse(first).ok()?;
    if url.username().is_empty() {
        return None;
    }
    // Percent-decoding; a `+` in a URL's user part is a plus, not a space.
    let decode = |s: &str| {
        url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Some((
        decode(url.username()),
        decode(url.password().unwrap_or_default()),
    ))
}

impl Bus {
    /// Connects, failing fast when NATS is not there at start; afterwards the
    /// client reconnects by itself forever.
    pub async fn connect(cfg: &BusConfig, url: &str, name: &str) -> Result<Self, BusError> {
        let shown = crate::config::redact_list(url);
        let timeout = Duration::from_millis(cfg.connect_timeout_ms);
        let mut opts = async_nats::ConnectOptions::new()
            .name(format!("eva-{name}"))
            .connection_timeout(timeout)
            .max_reconnects(None)
            .event_callback(|event| async move {
                match event {
                    async_nats::Event::Disconnected => tracing::warn!("bus disconnected"),
                    async_nats::Event::Connected => tracing::info!("bus connected"),
                    other => tracing::debug!(event = %other, "bus event"),
                }
            });
        // async-nats does not send the user and password written in the
        // URL: pass them as options (central deployments, partner users).
        if let Some((user, pass)) = url_credentials(url) {
            opts = opts.user_and_password(user, pass);
        }
        if let Some(creds) = &cfg.credentials {
            opts = opts
                .credentials_file(creds)
                .await
                .map_err(|e| BusError::Connect {
                    url: shown.clone(),
                    reason: format!("credentials {}: {e}", creds.display()),
                })?;
        }
        // async-nats parses a string as one URL: a cluster's list is split here.
        let servers: Vec<&str> = url.split(',').map(str::trim).collect();
        let client = tokio::time::timeout(timeout, opts.connect(servers.as_slice()))
            .await
            .map_err(|_| BusError::Connect {
                url: shown.clone(),
                reason: format!("no answer within {} ms", cfg.connect_timeout_ms),
            })?
            .map_err(|e| BusError::Connect {
                url: shown.clone(),
                reason: e.to_string(),
            })?;
        let jetstream = jetstream::new(client.clone());
        Ok(Self {
            client,
            jetstream,
            replicas: cfg.replicas,
        })
    }

    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    pub fn jetstream(&self) -> &jetstream::Context {
        &self.jetstream
    }

    /// True while the connection is up: for readiness checks.
    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// Creates the stream if it does not exist. A timed-out request (or JetStream
    /// without a meta leader yet) is tried again: on a cluster, creating a replicated
    /// stream waits for its group's election, and every service of a first start asks
    /// for the same streams at once.
    ///
    /// A spec without subjects is a stream that only sources others (the hub's copies
    /// of the boxes' streams, [`crate::federation`]): it must exist already, created
    /// with its sources by [`crate::federation::setup`], and is never created here.
    pub async fn ensure_stream(&self, spec: &StreamSpec) -> Result<stream::Stream, BusError> {
        if spec.subjects.is_empty() {
            return self
                .jetstream
                .get_stream(spec.name)
                .await
                .map_err(|e| BusError::Stream {
                    stream: spec.name.into(),
                    reason: format!(
                        "{e}; flux créé par la fédération du hub ([federation] role = \"hub\") / \
                     stream created by the hub's federation ([federation] role = \"hub\")"
                    ),
                });
        }
        const ATTEMPTS: u32 = 5;
        let mut attempt = 1;
        loop {
            match self
                .jetstream
                .get_or_create_stream(self.stream_config(spec))
                .await
            {
                Ok(stream) => return Ok(stream),
                Err(e)
                    if attempt < ATTEMPTS
                        && matches!(
                            e.kind(),
                            CreateStreamErrorKind::TimedOut
                                | CreateStreamErrorKind::JetStreamUnavailable
                        ) =>
                {
                    tracing::warn!(stream = spec.name, attempt, error = %e, "stream request failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
                    attempt += 1;
                }
                Err(e) => {
                    return Err(BusError::Stream {
                        stream: spec.name.into(),
                        reason: e.to_string(),
                    });
                }
            }
        }
    }

    fn stream_config(&self, spec: &StreamSpec) -> stream::Config {
        stream::Config {
            name: spec.name.into(),
            subjects: spec.subjects.iter().map(|s| s.to_string()).collect(),
            description: Some(spec.description.into()),
            storage: stream::StorageType::File,
            num_replicas: self.replicas,
            // Events are EVA's history: rebuilds replay them all.
            retention: stream::RetentionPolicy::Limits,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        }
    }
}

/// CloudEvents 1.0 attributes of an event, as carried in NATS headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudEvent {
    /// `ce-id`, a UUIDv7; also `Nats-Msg-Id`.
    pub id: String,
    /// `ce-source`: the service that published it, e.g. `/eva/identity`.
    pub source: String,
    /// `ce-type`: e.g. `eva.identity.structure.created`.
    pub event_type: String,
    /// `ce-time`, RFC 3339.
    pub time: String,
    /// `ce-subject`: the aggregate's id, when there is one.
    pub subject: Option<String>,
}

pub const CONTENT_TYPE_PROTOBUF: &str = "application/protobuf";

impl CloudEvent {
    /// The headers of a published event, trace context included.
    pub fn to_headers(&self, traceparent: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("Nats-Msg-Id", self.id.as_str());
        h.insert("ce-specversion", "1.0");
        h.insert("ce-id", self.id.as_str());
        h.insert("ce-source", self.source.as_str());
        h.insert("ce-type", self.event_type.as_str());
        h.insert("ce-time", self.time.as_str());
        if let Some(s) = &self.subject {
            h.insert("ce-subject", s.as_str());
        }
        h.insert("content-type", CONTENT_TYPE_PROTOBUF);
        if let Some(tp) = traceparent {
            h.insert("traceparent", tp);
        }
        h
    }

    /// Reads the attributes back; `None` when a required one is missing.
    pub fn from_headers(h: &HeaderMap) -> Option<Self> {
        let get = |k: &str| h.get(k).map(HeaderValue::as_str).map(str::to_owned);
        Some(Self {
            id: get("ce-id").or_else(|| get("Nats-Msg-Id"))?,
            source: get("ce-source")?,
            event_type: get("ce-type")?,
            time: get("ce-time").unwrap_or_default(),
            subject: get("ce-subject"),
        })
    }
}

#[cfg(test)]
mod credential_tests {
    use super::url_credentials;

    #[test]
    fn credentials_come_from_the_first_url() {
        assert_eq!(
            url_credentials("nats://eva:s%40c+ret@127.0.0.1:4222,nats://other:x@h:1"),
            Some(("eva".into(), "s@c+ret".into()))
        );
        assert_eq!(url_credentials("nats://127.0.0.1:4222"), None);
        assert_eq!(url_credentials("not a url"), None);
    }
}
