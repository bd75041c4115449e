//! Partners' NATS access, against a real nats-server configured with the accounts that
//! `eva_platform::nats_auth` renders (what `eva nats accounts` prints): each partner
//! reads its own events through its own durable pull consumer, and nothing else.
//! No mocks: every refusal below is the server's.

use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use async_nats::ConnectOptions;
use async_nats::jetstream::{self, stream};
use eva_platform::bus::{Bus, CloudEvent, streams};
use eva_platform::config::BusConfig;
use eva_platform::nats_auth::{self, PartnerId, PasswordHash, SERVICES_USER, ServicesUser};
use eva_proto::referrals::v1::ReferralSent;
use eva_tests::nats::NatsServer;
use eva_tests::partners::{NatsAccounts, PartnerClient, PartnerCredentials, TEST_BCRYPT_COST};
use futures::StreamExt;
use prost::Message as _;

struct Rig {
    nats: NatsServer,
    /// The EVA services' JetStream context, connected as their user.
    services: jetstream::Context,
    services_password: String,
    p: PartnerCredentials,
    q: PartnerCredentials,
}

async fn rig() -> Result<Rig> {
    let services_password = nats_auth::generate_password();
    let services = ServicesUser::new(
        SERVICES_USER,
        PasswordHash::hash(&services_password, TEST_BCRYPT_COST)?,
    )?;
    let (p, p_user) = PartnerCredentials::random()?;
    let (q, q_user) = PartnerCredentials::random()?;
    let accounts = nats_auth::render_accounts(&services, &[p_user, q_user])?;
    let nats = NatsServer::start_with_config(&accounts, SERVICES_USER, &services_password)
        .await
        .context("nats-server from the generated accounts")?;
    // The services connect as their user; the streams are created here from the same
    // `StreamSpec`s (`Bus` itself: `the_bus_connects_with_the_credentials_of_its_url`).
    let client = nats
        .connect_as(SERVICES_USER, &services_password, ConnectOptions::new())
        .await?;
    let services = jetstream::new(client);
    for spec in [streams::PARTNERS, streams::REFERRALS] {
        services
            .get_or_create_stream(stream::Config {
                name: spec.name.into(),
                subjects: spec.subjects.iter().map(|s| s.to_string()).collect(),
                description: Some(spec.description.into()),
                storage: stream::StorageType::File,
                duplicate_window: Duration::from_secs(120),
                ..Default::default()
            })
            .await
            .with_context(|| format!("stream {}", spec.name))?;
    }
    Ok(Rig {
        nats,
        services,
        services_password,
        p,
        q,
    })
}

/// Publishes a `ReferralSent` for `partner` as the referrals service does, CloudEvents
/// headers included; returns its event id.
async fn publish_sent(
    services: &jetstream::Context,
    partner: &PartnerId,
    event: &str,
) -> Result<String> {
    let id = uuid::Uuid::now_v7().to_string();
    let referral_id = uuid::Uuid::now_v7().to_string();
    let body = ReferralSent {
        referral_id: referral_id.clone(),
        person_id: uuid::Uuid::now_v7().to_string(),
        sender_structure_id: uuid::Uuid::now_v7().to_string(),
        target_structure_id: partner.to_string(),
        ..Default::default()
    }
    .encode_to_vec();
    let ce = CloudEvent {
        id: id.clone(),
        source: "/eva/referrals".into(),
        event_type: format!("eva.referrals.referral.{event}"),
        time: "2026-11-30T10:00:00Z".into(),
        subject: Some(referral_id),
    };
    let headers = ce.to_headers(Some(
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    ));
    services
        .publish_with_headers(partner.referral_subject(event), headers, body.into())
        .await?
        .await
        .context("jetstream ack of the partner event")?;
    Ok(id)
}

/// The partner reads exactly `expected` (event ids) through its own durable consumer,
/// with their headers, and acknowledges them.
async fn reads_exactly_its_events(
    me: &mut PartnerClient,
    id: &PartnerId,
    expected: &[String],
) -> Result<()> {
    me.create_own_consumer().await?;
    let mut got = Vec::new();
    for event in me
        .read_and_ack(expected.len(), Duration::from_secs(1))
        .await?
    {
        ensure!(
            event
                .subject
                .starts_with(&format!("eva.partners.{id}.referrals.")),
            "{id} received {}",
            event.subject
        );
        let ce = event.cloud_event()?;
        for name in [
            "ce-specversion",
            "ce-time",
            "content-type",
            "traceparent",
            "Nats-Msg-Id",
        ] {
            ensure!(event.header(name).is_some(), "header {name} missing");
        }
        let body = ReferralSent::decode(event.payload.as_slice())?;
        ensure!(body.target_structure_id == id.to_string());
        got.push(ce.id);
    }
    let mut want = expected.to_vec();
    want.sort();
    got.sort();
    ensure!(got == want, "{id} read {got:?}, expected {want:?}");
    // Reading its consumer's state is allowed too, and everything is acknowledged.
    let (pending, ack_pending) = me.pending().await?;
    ensure!(
        pending == 0 && ack_pending == 0,
        "{pending} pending, {ack_pending} not acknowledged"
    );
    ensure!(me.next_error().is_none(), "unexpected server error");
    Ok(())
}

/// Everything the partner `me` must not do to `other`, each refused by the server.
/// Returns the id of the event it published for `other` meanwhile.
async fn cannot_reach_the_other(
    rig: &Rig,
    me: &mut PartnerClient,
    my: &PartnerId,
    other: &PartnerId,
) -> Result<String> {
    // A core subscription to the other's subjects.
    me.clear();
    let mut sneaky = me.client.subscribe(other.subjects()).await?;
    me.violation("Subscription", &other.subjects()).await?;
    let for_other = publish_sent(&rig.services, other, "sent").await?;
    let leaked = tokio::time::timeout(Duration::from_millis(500), sneaky.next()).await;
    ensure!(
        !matches!(leaked, Ok(Some(_))),
        "{my} received {other}'s event"
    );

    // The other's inbox, and the shared default inbox.
    for inbox in [format!("{}.>", other.inbox_prefix()), "_INBOX.>".to_owned()] {
        me.clear();
        let _sub = me.client.subscribe(inbox.clone()).await?;
        me.violation("Subscription", &inbox).await?;
    }

    // A consumer of its own name on the other's subjects, and the other's consumer.
    for (durable, what) in [
        (my.durable(), "own name"),
        (other.durable(), "other's name"),
    ] {
        me.clear();
        let attempt = me.create_consumer(&durable, &other.subjects()).await;
        ensure!(
            attempt.is_err(),
            "consumer with {what} on {other}'s subjects created"
        );
        let subject = format!(
            "$JS.API.CONSUMER.CREATE.{}.{durable}.{}",
            streams::PARTNERS.name,
            other.subjects()
        );
        me.violation("Publish", &subject).await?;
    }

    // The allowed subject with a body that names another filter: the server checks it.
    let allowed = format!(
        "$JS.API.CONSUMER.CREATE.{}.{}.{}",
        streams::PARTNERS.name,
        my.durable(),
        my.subjects()
    );
    for config in [
        serde_json::json!({"durable_name": my.durable(), "filter_subject": other.subjects(), "ack_policy": "explicit"}),
        serde_json::json!({"durable_name": my.durable(), "filter_subjects": [other.subjects()], "ack_policy": "explicit"}),
        serde_json::json!({"durable_name": other.durable(), "filter_subject": my.subjects(), "ack_policy": "explicit"}),
    ] {
        let body = serde_json::json!({"stream_name": streams::PARTNERS.name, "config": config});
        let answer = me
            .client
            .request(allowed.clone(), serde_json::to_vec(&body)?.into())
            .await?;
        let answer: serde_json::Value = serde_json::from_slice(&answer.payload)?;
        ensure!(
            answer.get("error").is_some(),
            "the server accepted {config} on {allowed}: {answer}"
        );
    }

    // Stream information (it would list every partner's subjects), another consumer's
    // information and messages.
    for subject in [
        format!("$JS.API.STREAM.INFO.{}", streams::PARTNERS.name),
        format!(
            "$JS.API.CONSUMER.INFO.{}.{}",
            streams::PARTNERS.name,
            other.durable()
        ),
        format!(
            "$JS.API.CONSUMER.MSG.NEXT.{}.{}",
            streams::PARTNERS.name,
            other.durable()
        ),
        "$JS.API.INFO".to_owned(),
        "$JS.API.STREAM.LIST".to_owned(),
    ] {
        me.clear();
        let attempt = me
            .client
            .send_request(
                subject.clone(),
                async_nats::Request::new()
                    .payload("{}".into())
                    .timeout(Some(Duration::from_millis(500))),
            )
            .await;
        ensure!(attempt.is_err(), "{subject} answered");
        me.violation("Publish", &subject).await?;
    }

    // Publishing into EVA's own streams: refused, and nothing stored.
    let before = rig
        .services
        .get_stream(streams::REFERRALS.name)
        .await?
        .info()
        .await?
        .state
        .messages;
    for subject in [
        "eva.referrals.referral.sent".to_owned(),
        other.referral_subject("sent"),
        my.referral_subject("sent"),
    ] {
        me.clear();
        me.client.publish(subject.clone(), "forged".into()).await?;
        me.client.flush().await?;
        me.violation("Publish", &subject).await?;
    }
    let after = rig
        .services
        .get_stream(streams::REFERRALS.name)
        .await?
        .info()
        .await?
        .state
        .messages;
    ensure!(before == after, "a partner wrote into EVA_REFERRALS");
    Ok(for_other)
}

#[tokio::test]
async fn each_partner_reads_its_own_events_and_nothing_else() -> Result<()> {
    let rig = rig().await?;
    let p_events = vec![
        publish_sent(&rig.services, &rig.p.id, "sent").await?,
        publish_sent(&rig.services, &rig.p.id, "accepted").await?,
    ];
    let q_events = vec![publish_sent(&rig.services, &rig.q.id, "sent").await?];

    let mut p = PartnerClient::connect(&rig.nats, &rig.p).await?;
    let mut q = PartnerClient::connect(&rig.nats, &rig.q).await?;
    reads_exactly_its_events(&mut p, &rig.p.id, &p_events).await?;
    reads_exactly_its_events(&mut q, &rig.q.id, &q_events).await?;

    cannot_reach_the_other(&rig, &mut p, &rig.p.id, &rig.q.id).await?;
    let for_p = cannot_reach_the_other(&rig, &mut q, &rig.q.id, &rig.p.id).await?;

    // After all that, each consumer holds only its own partner's new events: P's
    // attempts left Q's stream untouched, and the other way round.
    let fresh = publish_sent(&rig.services, &rig.p.id, "message_posted").await?;
    let mut ids = Vec::new();
    for event in p.read_and_ack(2, Duration::from_secs(1)).await? {
        ids.push(event.cloud_event()?.id);
    }
    ids.sort();
    ensure!(ids == vec![for_p, fresh], "P read {ids:?} after the probes");
    Ok(())
}

#[tokio::test]
async fn unknown_users_and_wrong_passwords_are_refused() -> Result<()> {
    let rig = rig().await?;
    let wrong = PartnerCredentials {
        id: rig.p.id,
        password: "not-the-password".into(),
    };
    ensure!(
        PartnerClient::connect(&rig.nats, &wrong).await.is_err(),
        "wrong password accepted"
    );
    ensure!(
        async_nats::ConnectOptions::new()
            .connect(rig.nats.url())
            .await
            .is_err(),
        "anonymous connection accepted"
    );
    Ok(())
}

/// The services' side through `eva_platform::bus`, credentials in the bus URL
/// (`nats://user:password@host:port`): async-nats 0.51 reads no credentials from the URL,
/// so `Bus::connect` passes them on with `ConnectOptions::user_and_password`.
#[tokio::test]
async fn the_bus_connects_with_the_credentials_of_its_url() -> Result<()> {
    let rig = rig().await?;
    let bus = Bus::connect(
        &BusConfig::default(),
        &rig.nats
            .url_with_credentials(SERVICES_USER, &rig.services_password),
        "tests",
    )
    .await?;
    bus.ensure_stream(&streams::PARTNERS).await?;
    Ok(())
}

/// The server cannot check a consumer's body beyond its filter: a partner may create its
/// durable as a push consumer delivering elsewhere. Aimed at EVA's own subjects, that
/// delivers nothing into EVA's streams (nats-server does not deliver to a subject a
/// stream captures); see deploy/nats/README.md for what remains.
#[tokio::test]
async fn a_push_consumer_cannot_inject_into_eva_streams() -> Result<()> {
    let rig = rig().await?;
    publish_sent(&rig.services, &rig.p.id, "sent").await?;
    let services = rig
        .nats
        .connect_as(SERVICES_USER, &rig.services_password, ConnectOptions::new())
        .await?;
    let mut listener = services.subscribe("eva.referrals.>").await?;
    services.flush().await?;
    let p = PartnerClient::connect(&rig.nats, &rig.p).await?;
    let my = &rig.p.id;
    let subject = format!(
        "$JS.API.CONSUMER.CREATE.{}.{}.{}",
        streams::PARTNERS.name,
        my.durable(),
        my.subjects()
    );
    let config = serde_json::json!({
        "durable_name": my.durable(),
        "filter_subject": my.subjects(),
        "deliver_subject": "eva.referrals.referral.accepted",
        "ack_policy": "none",
    });
    let body = serde_json::json!({"stream_name": streams::PARTNERS.name, "config": config});
    p.client
        .request(subject, serde_json::to_vec(&body)?.into())
        .await?;
    let delivered = tokio::time::timeout(Duration::from_secs(2), listener.next()).await;
    ensure!(
        delivered.is_err(),
        "P's events delivered on eva.referrals: {delivered:?}"
    );
    let stored = rig
        .services
        .get_stream(streams::REFERRALS.name)
        .await?
        .info()
        .await?
        .state
        .messages;
    ensure!(stored == 0, "{stored} messages injected into EVA_REFERRALS");
    Ok(())
}

/// How an operator adds a partner: re-render the accounts (`eva nats accounts`) and
/// reload the server (SIGHUP). Before, the partner's user does not exist; after, it
/// connects and has its consumer. A configuration the server refuses is reported, and
/// the server keeps running on the previous one.
#[tokio::test]
async fn a_reload_adds_a_partner_and_a_refused_configuration_changes_nothing() -> Result<()> {
    let mut accounts = NatsAccounts::new()?;
    let mut nats = accounts.start_server().await?;
    let id = PartnerId::new(uuid::Uuid::now_v7());
    let before = PartnerCredentials {
        id,
        password: nats_auth::generate_password(),
    };
    ensure!(
        PartnerClient::connect(&nats, &before).await.is_err(),
        "a partner connected before it had a user"
    );
    let services = nats
        .connect_as(
            accounts.services_user(),
            accounts.services_password(),
            ConnectOptions::new(),
        )
        .await?;
    Bus::connect(
        &BusConfig::default(),
        &nats.url_with_credentials(accounts.services_user(), accounts.services_password()),
        "tests",
    )
    .await?
    .ensure_stream(&streams::PARTNERS)
    .await?;

    let added = accounts.add_partners(&mut nats, &[id]).await?;
    let p = PartnerClient::connect(&nats, &added[0]).await?;
    p.create_own_consumer().await?;

    let refused = nats.reload("accounts { EVA { users: [ { user: ").await;
    let error = format!(
        "{:#}",
        refused
            .err()
            .context("a broken configuration was accepted")?
    );
    ensure!(error.contains("refused the new configuration"), "{error}");
    // Still running on the accounts before: the services and P keep working.
    p.create_own_consumer().await?;
    ensure!(PartnerClient::connect(&nats, &added[0]).await.is_ok());
    services.flush().await?;
    jetstream::new(services).query_account().await?;
    Ok(())
}
