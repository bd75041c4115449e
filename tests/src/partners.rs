//! Partners on their own restricted NATS users, as `eva nats accounts` configures them
//! (`eva_platform::nats_auth`): the accounts a test server runs with ([`NatsAccounts`]),
//! a partner's credentials ([`PartnerCredentials`]) and its connection
//! ([`PartnerClient`]), which records the server's refusals so a test can wait for them.

use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use async_nats::jetstream::{self, consumer};
use async_nats::{ConnectOptions, Event, HeaderMap, ServerError};
use eva_platform::bus::{CloudEvent, streams};
use eva_platform::nats_auth::{
    self, PartnerId, PartnerUser, PasswordHash, SERVICES_USER, ServicesUser,
};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::nats::NatsServer;

/// bcrypt cost in tests: they check the permissions, not bcrypt's strength.
pub const TEST_BCRYPT_COST: u32 = 4;
/// JetStream API timeout of a partner's connection: a refused request fails fast.
const JS_TIMEOUT: Duration = Duration::from_secs(1);
/// How long the server's refusal may take to reach the client.
const VIOLATION_WAIT: Duration = Duration::from_secs(5);
/// How long one pull waits for messages.
const FETCH_EXPIRES: Duration = Duration::from_millis(500);

/// What a partner is given: its structure id (which names its user, subjects, inbox
/// prefix and durable consumer) and its password in clear.
#[derive(Debug, Clone)]
pub struct PartnerCredentials {
    pub id: PartnerId,
    pub password: String,
}

impl PartnerCredentials {
    /// A generated password for `id`, and the user entry (bcrypt hash) for the server's
    /// accounts.
    pub fn generate(id: PartnerId) -> Result<(Self, PartnerUser)> {
        let password = nats_auth::generate_password();
        let hash = PasswordHash::hash(&password, TEST_BCRYPT_COST)?;
        Ok((Self { id, password }, PartnerUser { id, password: hash }))
    }

    /// A partner with a fresh structure id.
    pub fn random() -> Result<(Self, PartnerUser)> {
        Self::generate(PartnerId::new(uuid::Uuid::now_v7()))
    }
}

/// The accounts a test nats-server runs with: the services' user and the partners' users
/// added so far. Adding partners re-renders the whole `accounts` block and reloads the
/// server, as an operator does with `eva nats accounts` and a SIGHUP.
pub struct NatsAccounts {
    services: ServicesUser,
    services_password: String,
    partners: Vec<PartnerUser>,
}

impl NatsAccounts {
    /// The services' user (`eva-services`) with a generated password, no partner yet.
    pub fn new() -> Result<Self> {
        let services_password = nats_auth::generate_password();
        let services = ServicesUser::new(
            SERVICES_USER,
            PasswordHash::hash(&services_password, TEST_BCRYPT_COST)?,
        )?;
        Ok(Self {
            services,
            services_password,
            partners: Vec::new(),
        })
    }

    pub fn services_user(&self) -> &str {
        self.services.name()
    }

    pub fn services_password(&self) -> &str {
        &self.services_password
    }

    /// The `accounts` block for the server, as `eva nats accounts` prints it.
    pub fn render(&self) -> Result<String> {
        Ok(nats_auth::render_accounts(&self.services, &self.partners)?)
    }

    /// A server started from these accounts, probed as the services' user.
    pub async fn start_server(&self) -> Result<NatsServer> {
        NatsServer::start_with_config(
            &self.render()?,
            self.services_user(),
            &self.services_password,
        )
        .await
        .context("nats-server from the generated accounts")
    }

    /// Adds a user for each partner (its structure id), re-renders the accounts and
    /// reloads `nats`; answers each partner's credentials, in order.
    pub async fn add_partners(
        &mut self,
        nats: &mut NatsServer,
        ids: &[PartnerId],
    ) -> Result<Vec<PartnerCredentials>> {
        let mut added = Vec::with_capacity(ids.len());
        for id in ids {
            let (credentials, user) = PartnerCredentials::generate(*id)?;
            self.partners.push(user);
            added.push(credentials);
        }
        nats.reload(&self.render()?).await?;
        Ok(added)
    }
}

/// One event as a partner reads it from its consumer.
#[derive(Debug, Clone)]
pub struct PartnerEvent {
    pub subject: String,
    pub headers: HeaderMap,
    pub payload: Vec<u8>,
}

impl PartnerEvent {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.as_str())
    }

    /// The CloudEvents attributes of its headers.
    pub fn cloud_event(&self) -> Result<CloudEvent> {
        CloudEvent::from_headers(&self.headers).context("no CloudEvents headers")
    }
}

/// A partner's connection as its own user, and the server errors it receives.
pub struct PartnerClient {
    pub id: PartnerId,
    pub client: async_nats::Client,
    pub js: jetstream::Context,
    errors: mpsc::UnboundedReceiver<String>,
}

impl PartnerClient {
    /// Connects as the partner's user with its own inbox prefix (the only inbox it may
    /// subscribe to), collecting the server's errors.
    pub async fn connect(nats: &NatsServer, partner: &PartnerCredentials) -> Result<Self> {
        let (tx, errors) = mpsc::unbounded_channel();
        let options = ConnectOptions::new()
            .custom_inbox_prefix(partner.id.inbox_prefix())
            .event_callback(move |event| {
                let tx = tx.clone();
                async move {
                    if let Event::ServerError(ServerError::Other(message)) = event {
                        let _ = tx.send(message);
                    }
                }
            });
        let client = nats
            .connect_as(&partner.id.user(), &partner.password, options)
            .await?;
        let js = jetstream::ContextBuilder::new()
            .timeout(JS_TIMEOUT)
            .build(client.clone());
        Ok(Self {
            id: partner.id,
            client,
            js,
            errors,
        })
    }

    /// Forgets the errors seen so far.
    pub fn clear(&mut self) {
        while self.errors.try_recv().is_ok() {}
    }

    /// The next server error already received, if any.
    pub fn next_error(&mut self) -> Option<String> {
        self.errors.try_recv().ok()
    }

    /// Waits for the server's permissions violation naming `subject`; `kind` is
    /// `Publish` or `Subscription`.
    pub async fn violation(&mut self, kind: &str, subject: &str) -> Result<String> {
        let wanted = format!("Permissions Violation for {kind} to \"{subject}\"");
        let wait = async {
            while let Some(message) = self.errors.recv().await {
                if message.contains(&wanted) {
                    return Some(message);
                }
            }
            None
        };
        match tokio::time::timeout(VIOLATION_WAIT, wait).await {
            Ok(Some(message)) => Ok(message),
            Ok(None) => bail!("connection closed before the violation {wanted:?}"),
            Err(_) => bail!("no server error {wanted:?} within {VIOLATION_WAIT:?}"),
        }
    }

    /// Creates (or binds to) the durable pull consumer `durable` on `EVA_PARTNERS`,
    /// filtered on `filter`, with explicit acks.
    pub async fn create_consumer(
        &self,
        durable: &str,
        filter: &str,
    ) -> Result<consumer::PullConsumer, jetstream::stream::ConsumerError> {
        self.js
            .create_consumer_on_stream(
                consumer::pull::Config {
                    durable_name: Some(durable.to_owned()),
                    filter_subject: filter.to_owned(),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ..Default::default()
                },
                streams::PARTNERS.name,
            )
            .await
    }

    /// Creates its own durable consumer `partner-<id>` on its own subjects.
    pub async fn create_own_consumer(&self) -> Result<consumer::PullConsumer> {
        self.create_consumer(&self.id.durable(), &self.id.subjects())
            .await
            .context("creating the partner's own durable consumer")
    }

    /// Its own durable consumer, created earlier.
    pub async fn own_consumer(&self) -> Result<consumer::PullConsumer> {
        self.js
            .get_consumer_from_stream::<consumer::pull::Config, _, _>(
                self.id.durable(),
                streams::PARTNERS.name,
            )
            .await
            .context("the partner's own consumer")
    }

    /// Pulls from its own consumer until at least `at_least` events arrived or `within`
    /// passed (one pull when `at_least` is 0), acknowledging each one (a double ack,
    /// which waits for the server's confirmation); answers them in delivery order.
    pub async fn read_and_ack(
        &self,
        at_least: usize,
        within: Duration,
    ) -> Result<Vec<PartnerEvent>> {
        let consumer = self.own_consumer().await?;
        let deadline = Instant::now() + within;
        let mut got = Vec::new();
        loop {
            let mut batch = consumer
                .fetch()
                .max_messages(100)
                .expires(FETCH_EXPIRES)
                .messages()
                .await?;
            while let Some(message) = batch.next().await {
                let message = message.map_err(|e| anyhow::anyhow!("fetch: {e}"))?;
                got.push(PartnerEvent {
                    subject: message.subject.to_string(),
                    headers: message.headers.clone().unwrap_or_default(),
                    payload: message.payload.to_vec(),
                });
                message
                    .double_ack()
                    .await
                    .map_err(|e| anyhow::anyhow!("ack: {e}"))?;
            }
            if got.len() >= at_least || Instant::now() >= deadline {
                return Ok(got);
            }
        }
    }

    /// Messages of its own consumer not yet delivered, and delivered but not yet
    /// acknowledged.
    pub async fn pending(&self) -> Result<(u64, usize)> {
        let mut consumer = self.own_consumer().await?;
        let info = consumer.info().await.context("consumer info")?;
        Ok((info.num_pending, info.num_ack_pending))
    }
}
