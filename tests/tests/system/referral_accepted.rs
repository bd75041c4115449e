//! Accepting a referral starts an accompaniment, against the real system:
//! Ana is followed by A; a referral from A to B is accepted (a real
//! `eva.referrals.referral.accepted` event on EVA_REFERRALS, as the referrals
//! service publishes it); identity starts B's accompaniment on the Paris day
//! of the acceptance, with its `accompaniment.started` event carrying the
//! referral. The same event delivered again, a second acceptance for the
//! same pair, the same referral once B's accompaniment ended, a partner's
//! acceptance and one about an unknown person start nothing.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use async_nats::jetstream;
use eva_platform::auth::Role;
use eva_platform::bus::{Bus, CloudEvent, streams};
use eva_platform::config::BusConfig;
use eva_proto::identity::v1 as pb;
use eva_proto::referrals::v1::{ReferralStatus, ReferralStatusChanged};
use eva_tests::api::{get, person, person_token, post, structure, until};
use eva_tests::sandbox::{Backend, Sandbox};
use prost::Message;
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

const SIRET_A: &str = "41735218600007";
const SIRET_B: &str = "51734218700005";
const SIRET_P: &str = "61737218800004";
const SUBJECT: &str = "eva.referrals.referral.accepted";
const CONSUMER: &str = "identity-referral-accompaniments";

/// An acceptance of `referral_id` by `target` at `occurred_at` (Unix seconds).
fn accepted(
    referral_id: &str,
    person_id: &str,
    sender: &str,
    target: &str,
    occurred_at: i64,
) -> ReferralStatusChanged {
    ReferralStatusChanged {
        referral_id: referral_id.to_owned(),
        transition_id: Uuid::now_v7().to_string(),
        person_id: person_id.to_owned(),
        sender_structure_id: sender.to_owned(),
        target_structure_id: target.to_owned(),
        target_service_id: String::new(),
        from_status: ReferralStatus::Envoyee as i32,
        to_status: ReferralStatus::Acceptee as i32,
        refusal_reason: 0,
        actor_structure_id: target.to_owned(),
        sent_at: Some(prost_types::Timestamp {
            seconds: occurred_at - 86_400,
            nanos: 0,
        }),
        occurred_at: Some(prost_types::Timestamp {
            seconds: occurred_at,
            nanos: 0,
        }),
        sealed_note: None,
    }
}

/// Publishes `event` under CloudEvents id `ce_id`, with `msg_id` as
/// `Nats-Msg-Id` (JetStream drops a second message with the same one).
async fn publish(
    js: &jetstream::Context,
    ce_id: &str,
    msg_id: &str,
    event: &ReferralStatusChanged,
) -> Result<()> {
    let ce = CloudEvent {
        id: ce_id.to_owned(),
        source: "/eva/referrals".into(),
        event_type: SUBJECT.into(),
        time: "2026-03-28T23:30:00Z".into(),
        subject: Some(event.referral_id.clone()),
    };
    let mut headers = ce.to_headers(None);
    headers.insert("Nats-Msg-Id", msg_id);
    js.publish_with_headers(SUBJECT, headers, event.encode_to_vec().into())
        .await?
        .await?;
    Ok(())
}

/// Waits until identity's consumer has handled everything published so far.
async fn settled(js: &jetstream::Context) -> Result<()> {
    eva_tests::events::settled(
        js,
        &[streams::REFERRALS.name],
        CONSUMER,
        Duration::from_secs(15),
    )
    .await
}

/// The accompaniments of `person_id` held by `structure_id`.
fn of(history: &Value, structure_id: &str) -> Vec<Value> {
    history["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter(|i| i["structure_id"] == structure_id)
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// The last `accompaniment.started` event, once it is B's.
async fn started_event(sb: &Sandbox, structure_id: &str) -> Result<pb::AccompanimentStarted> {
    let js = jetstream::new(sb.nats.connect().await?);
    let stream = js.get_stream(streams::IDENTITY.name).await?;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(m) = stream
            .get_last_raw_message_by_subject("eva.identity.accompaniment.started")
            .await
        {
            let started = pb::AccompanimentStarted::decode(m.payload)?;
            if started.structure_id == structure_id {
                return Ok(started);
            }
        }
        if Instant::now() > deadline {
            bail!("no accompaniment.started event for {structure_id}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn story(backend: Backend) -> Result<()> {
    let sb = Sandbox::start(backend).await?;
    let operator = sb.token("ops-1", vec![Role::Operator], vec![]).await?;
    let a = structure(&sb, &operator, "Chantier A", SIRET_A, "aci").await?;
    let b = structure(&sb, &operator, "Association B", SIRET_B, "association").await?;
    let p = structure(&sb, &operator, "Partenaire P", SIRET_P, "partner").await?;
    let counselor_a = sb
        .token("counselor-a", vec![Role::Counselor], vec![a.clone()])
        .await?;
    let counselor_b = sb
        .token("counselor-b", vec![Role::Counselor], vec![b.clone()])
        .await?;
    let ana = person(&sb, &counselor_a, &a, "Ana", "Zerbib").await?;
    let me = person_token(&sb, &ana).await?;
    let history = format!("/api/v1/people/{ana}/accompaniments");

    let bus = Bus::connect(&BusConfig::default(), &sb.nats.url(), "tests").await?;
    bus.ensure_stream(&streams::REFERRALS).await?;
    let js = bus.jetstream().clone();

    // Before: B does not follow Ana and may not read her.
    let (s, _) = get(&sb, &format!("/api/v1/people/{ana}"), &counselor_b).await?;
    assert_eq!(s, 404);

    // B accepts the referral late on 28 March 2026 (UTC): 29 March in Paris.
    let referral = Uuid::now_v7().to_string();
    let at = 1_774_740_600; // 2026-03-28T23:30:00Z
    let event = accepted(&referral, &ana, &a, &b, at);
    let ce_id = Uuid::now_v7().to_string();
    publish(&js, &ce_id, &ce_id, &event).await?;
    let v = until(&sb, Method::GET, &history, &me, None, |s, v| {
        s == 200 && !of(v, &b).is_empty()
    })
    .await?;
    let b_rows = of(&v, &b);
    assert_eq!(b_rows.len(), 1, "{v}");
    assert_eq!(b_rows[0]["start_date"], "2026-03-29", "{v}");
    assert_eq!(b_rows[0]["ongoing"], true, "{v}");
    assert_eq!(b_rows[0]["referent_user_id"], Value::Null, "{v}");
    assert_eq!(b_rows[0]["structure_name"], "Association B", "{v}");
    let acc_b = b_rows[0]["id"].as_str().context("id")?.to_owned();
    assert_eq!(of(&v, &a).len(), 1, "A still follows Ana: {v}");
    // B now reads Ana's file; the event says where the accompaniment came from.
    let (s, got) = get(&sb, &format!("/api/v1/people/{ana}"), &counselor_b).await?;
    assert_eq!(s, 200, "{got}");
    let started = started_event(&sb, &b).await?;
    assert_eq!(
        (
            started.accompaniment_id.as_str(),
            started.person_id.as_str(),
            started.referral_id.as_str(),
            started.start_date.as_str(),
            started.referent_user_id.as_str(),
        ),
        (
            acc_b.as_str(),
            ana.as_str(),
            referral.as_str(),
            "2026-03-29",
            ""
        )
    );
    // Ana's access log shows B's write, as a system action.
    until(
        &sb,
        Method::GET,
        &format!("/api/v1/people/{ana}/access-log"),
        &me,
        None,
        |s, v| {
            s == 200
                && v["items"].as_array().is_some_and(|items| {
                    items.iter().any(|i| {
                        i["resource_id"] == acc_b.as_str()
                            && i["action"] == "write"
                            && i["actor_structure_id"] == b.as_str()
                            && i["actor_role"].is_null()
                    })
                })
        },
    )
    .await?;

    // The same event again: dropped by JetStream (same Nats-Msg-Id), then
    // delivered under another message id with the same ce-id (the inbox).
    publish(&js, &ce_id, &ce_id, &event).await?;
    publish(&js, &ce_id, &format!("{ce_id}-again"), &event).await?;
    // A second acceptance for the same pair (another referral).
    let other = accepted(&Uuid::now_v7().to_string(), &ana, &a, &b, at + 60);
    let id = Uuid::now_v7().to_string();
    publish(&js, &id, &id, &other).await?;
    // A partner accepting a referral, and an acceptance about nobody known.
    let to_partner = accepted(&Uuid::now_v7().to_string(), &ana, &a, &p, at);
    let id = Uuid::now_v7().to_string();
    publish(&js, &id, &id, &to_partner).await?;
    let nobody = accepted(
        &Uuid::now_v7().to_string(),
        &Uuid::now_v7().to_string(),
        &a,
        &b,
        at,
    );
    let id = Uuid::now_v7().to_string();
    publish(&js, &id, &id, &nobody).await?;
    settled(&js).await?;
    let (s, v) = get(&sb, &history, &me).await?;
    assert_eq!(s, 200, "{v}");
    assert_eq!(of(&v, &b).len(), 1, "one accompaniment by B: {v}");
    assert!(of(&v, &p).is_empty(), "a partner follows no one: {v}");
    assert_eq!(v["items"].as_array().map(Vec::len), Some(2), "{v}");

    // B ends its accompaniment; the same acceptance published again under a
    // new event id does not start it over.
    let today = eva_platform::consent::today();
    let (s, v) = post(
        &sb,
        &format!("/api/v1/accompaniments/{acc_b}/end"),
        &counselor_b,
        json!({ "end_date": today, "end_reason": "reorientation" }),
    )
    .await?;
    assert_eq!(s, 200, "{v}");
    let id = Uuid::now_v7().to_string();
    publish(&js, &id, &id, &event).await?;
    settled(&js).await?;
    let (s, v) = get(&sb, &history, &me).await?;
    assert_eq!(s, 200, "{v}");
    let b_rows = of(&v, &b);
    assert_eq!(b_rows.len(), 1, "{v}");
    assert_eq!(b_rows[0]["ongoing"], false, "{v}");

    sb.stop().await
}

#[tokio::test]
async fn accepting_a_referral_starts_an_accompaniment_on_sqlite() -> Result<()> {
    story(Backend::Sqlite).await
}

#[tokio::test]
async fn accepting_a_referral_starts_an_accompaniment_on_postgres() -> Result<()> {
    story(Backend::Postgres).await
}
