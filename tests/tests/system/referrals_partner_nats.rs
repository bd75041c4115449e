//! The referral story with the partner on its own restricted NATS user, on a real
//! nats-server that runs with the accounts `eva nats accounts` renders: the services
//! connect as their user; the operator adds users for partners P and Q and reloads the
//! server (SIGHUP), as in production. Counselor A refers Ana to P; P, connected as its
//! user, reads exactly its events through its own durable consumer; Q's attempts to
//! subscribe to P's subjects or to pull them through a consumer are refused by the
//! server; P accepts, starts and reports the outcome through the gateway, and receives
//! each event once, in order (the last one in JSON, as it chose); A sees the loop
//! closed; Ana sees her timeline.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use eva_platform::auth::Role;
use eva_platform::bus::streams;
use eva_platform::nats_auth::PartnerId;
use eva_proto::referrals::v1 as pb;
use eva_tests::api::{consent, get, person, person_token, post, structure, until};
use eva_tests::partners::{PartnerClient, PartnerEvent};
use eva_tests::sandbox::{Backend, Sandbox};
use futures::StreamExt;
use prost::Message;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const REASON: &str = "Ana prépare le permis B ; elle a besoin d'un accompagnement mobilité.";
const OUTCOME: &str = "Permis obtenu le 12 juin, Ana conduit seule.";
/// How long the outbox relay may take to bring an event to the partner.
const DELIVERY: Duration = Duration::from_secs(15);
/// How long to wait for an event that must not come.
const QUIET: Duration = Duration::from_millis(500);

/// The CloudEvents headers (and W3C `traceparent`) every partner event carries, for
/// `referral_id`, with the given type and content type.
fn check_headers(
    event: &PartnerEvent,
    ce_type: &str,
    content_type: &str,
    referral_id: &str,
) -> Result<()> {
    let ce = event.cloud_event()?;
    ensure!(event.header("ce-specversion") == Some("1.0"), "{event:?}");
    ensure!(ce.event_type == ce_type, "{event:?}");
    ensure!(ce.source == "/eva/referrals", "{event:?}");
    ensure!(ce.subject.as_deref() == Some(referral_id), "{event:?}");
    ensure!(!ce.time.is_empty(), "{event:?}");
    ensure!(uuid::Uuid::parse_str(&ce.id).is_ok(), "{event:?}");
    ensure!(
        event.header("Nats-Msg-Id") == Some(ce.id.as_str()),
        "{event:?}"
    );
    ensure!(
        event.header("content-type") == Some(content_type),
        "{event:?}"
    );
    Ok(())
}

async fn story(backend: Backend) -> Result<()> {
    let (mut sb, mut accounts) = Sandbox::start_with_accounts(backend).await?;
    // The server runs with authentication: no anonymous client.
    ensure!(
        async_nats::connect(sb.nats.url()).await.is_err(),
        "anonymous connection accepted"
    );

    let operator = sb.token("ops-1", vec![Role::Operator], vec![]).await?;
    let a = structure(
        &sb,
        &operator,
        "Chantier A",
        "41735218600007",
        "association",
    )
    .await?;
    let p = structure(
        &sb,
        &operator,
        "Auto-école solidaire P",
        "51734218700005",
        "partner",
    )
    .await?;
    let q = structure(
        &sb,
        &operator,
        "Centre de santé Q",
        "61737218800004",
        "partner",
    )
    .await?;
    let p_id: PartnerId = p.parse()?;
    let q_id: PartnerId = q.parse()?;

    // The operator gives P and Q their NATS users (`eva nats accounts`, then a reload);
    // the services stay connected through the reload.
    let credentials = accounts.add_partners(&mut sb.nats, &[p_id, q_id]).await?;
    let mut p_nats = PartnerClient::connect(&sb.nats, &credentials[0]).await?;
    let mut q_nats = PartnerClient::connect(&sb.nats, &credentials[1]).await?;
    p_nats.create_own_consumer().await?;
    q_nats.create_own_consumer().await?;

    // Q tries to listen to P's subjects: the server refuses the subscription, and it
    // is kept open to the end to show that nothing of P's ever reaches it.
    q_nats.clear();
    let mut sneaky = q_nats.client.subscribe(p_id.subjects()).await?;
    q_nats.violation("Subscription", &p_id.subjects()).await?;

    let counselor_a = sb
        .token("counselor-a", vec![Role::Counselor], vec![a.clone()])
        .await?;
    let partner_p = sb
        .token("partner-p", vec![Role::Partner], vec![p.clone()])
        .await?;
    let ana_id = person(&sb, &counselor_a, &a, "Ana", "Zabalveytia").await?;
    let ana = person_token(&sb, &ana_id).await?;
    consent(&sb, &ana, &ana_id, &p, &["mobilite"], &["orientation"]).await?;

    // A sends the referral to P (once the projections know A follows Ana and P is a
    // partner).
    let r = until(
        &sb,
        Method::POST,
        "/api/v1/referrals",
        &counselor_a,
        Some(json!({
            "person_id": ana_id,
            "sender_structure_id": a,
            "target_structure_id": p,
            "domains": ["mobilite"],
            "reason": REASON,
        })),
        |s, _| s == StatusCode::CREATED,
    )
    .await?;
    let r_id = r["id"].as_str().context("referral id")?.to_owned();
    assert_eq!(r["status"], "envoyee", "{r}");

    // P reads it through its own consumer, as its own user: exactly one event.
    let sent = p_nats.read_and_ack(1, DELIVERY).await?;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].subject, p_id.referral_subject("sent"));
    check_headers(
        &sent[0],
        "eva.referrals.referral.sent",
        "application/protobuf",
        &r_id,
    )?;
    let body = pb::ReferralSent::decode(sent[0].payload.as_slice())?;
    assert_eq!(body.referral_id, r_id);
    assert_eq!(body.sender_structure_id, a);
    assert_eq!(body.target_structure_id, p);
    assert_eq!(body.domains, ["mobilite"]);
    // Nothing about Ana in clear.
    let text = String::from_utf8_lossy(&sent[0].payload);
    assert!(
        !text.contains("Zabalveytia") && !text.contains("permis B"),
        "{text}"
    );
    assert_eq!(p_nats.pending().await?, (0, 0));

    // Q's consumer holds nothing; a consumer of Q's (or under P's name) filtered on
    // P's subjects is refused by the server.
    let for_q = q_nats.read_and_ack(0, QUIET).await?;
    assert!(for_q.is_empty(), "Q received {for_q:?}");
    for durable in [q_id.durable(), p_id.durable()] {
        q_nats.clear();
        let attempt = q_nats.create_consumer(&durable, &p_id.subjects()).await;
        assert!(
            attempt.is_err(),
            "Q created {durable} on P's subjects: {attempt:?}"
        );
        q_nats
            .violation(
                "Publish",
                &format!(
                    "$JS.API.CONSUMER.CREATE.{}.{durable}.{}",
                    streams::PARTNERS.name,
                    p_id.subjects()
                ),
            )
            .await?;
    }

    // P accepts and starts, through the gateway, with its member's token.
    let moves = format!("/api/v1/referrals/{r_id}/transitions");
    for to in ["acceptee", "en_cours"] {
        let (s, v) = post(&sb, &moves, &partner_p, json!({ "to_status": to })).await?;
        assert_eq!(s, StatusCode::OK, "{to}: {v}");
    }
    let moved = p_nats.read_and_ack(2, DELIVERY).await?;
    let subjects: Vec<&str> = moved.iter().map(|e| e.subject.as_str()).collect();
    assert_eq!(
        subjects,
        [
            p_id.referral_subject("accepted"),
            p_id.referral_subject("started")
        ]
    );
    for (event, (ce_type, to_status)) in moved.iter().zip([
        (
            "eva.referrals.referral.accepted",
            pb::ReferralStatus::Acceptee,
        ),
        (
            "eva.referrals.referral.started",
            pb::ReferralStatus::EnCours,
        ),
    ]) {
        check_headers(event, ce_type, "application/protobuf", &r_id)?;
        let body = pb::ReferralStatusChanged::decode(event.payload.as_slice())?;
        assert_eq!(body.referral_id, r_id);
        assert_eq!(body.to_status, to_status as i32, "{body:?}");
        assert_eq!(body.actor_structure_id, p);
    }

    // P switches its events to JSON, then reports the outcome.
    let settings = until(
        &sb,
        Method::PATCH,
        &format!("/api/v1/structures/{p}/partner-settings"),
        &partner_p,
        Some(json!({ "event_format": "json" })),
        |s, _| s == StatusCode::OK,
    )
    .await?;
    assert_eq!(settings["event_format"], "json", "{settings}");
    let (s, v) = post(
        &sb,
        &moves,
        &partner_p,
        json!({ "to_status": "terminee", "note": OUTCOME }),
    )
    .await?;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["referral"]["status"], "terminee", "{v}");
    let completed = p_nats.read_and_ack(1, DELIVERY).await?;
    assert_eq!(completed.len(), 1, "{completed:?}");
    assert_eq!(completed[0].subject, p_id.referral_subject("completed"));
    check_headers(
        &completed[0],
        "eva.referrals.referral.completed",
        "application/json",
        &r_id,
    )?;
    let body: Value =
        serde_json::from_slice(&completed[0].payload).context("the completed event is not JSON")?;
    assert_eq!(body["referralId"], r_id.as_str(), "{body}");
    assert_eq!(body["actorStructureId"], p.as_str(), "{body}");
    // The outcome note travels sealed, never in clear.
    assert!(!body.to_string().contains("Permis obtenu"), "{body}");

    // Each event came once: nothing more to read, nothing pending, no server error.
    let more = p_nats.read_and_ack(0, QUIET).await?;
    assert!(more.is_empty(), "P read again: {more:?}");
    assert_eq!(p_nats.pending().await?, (0, 0));
    assert_eq!(p_nats.next_error(), None);

    // The sender sees the loop closed, with the outcome.
    let path = format!("/api/v1/referrals/{r_id}");
    let (s, v) = get(&sb, &path, &counselor_a).await?;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "terminee", "{v}");
    assert!(v["closed_at"].as_str().is_some(), "{v}");
    let (s, h) = get(&sb, &moves, &counselor_a).await?;
    assert_eq!(s, StatusCode::OK, "{h}");
    let steps: Vec<&str> = h["items"]
        .as_array()
        .context("history")?
        .iter()
        .filter_map(|t| t["to_status"].as_str())
        .collect();
    assert_eq!(steps, ["envoyee", "acceptee", "en_cours", "terminee"]);
    assert_eq!(h["items"][3]["note"], OUTCOME, "{h}");
    assert_eq!(h["items"][3]["actor_structure_id"], p.as_str(), "{h}");

    // Ana sees her timeline: the referral and each step, the outcome included.
    let (s, v) = get(&sb, &format!("/api/v1/referrals?person_id={ana_id}"), &ana).await?;
    assert_eq!(s, StatusCode::OK, "{v}");
    let mine: Vec<&str> = v["items"]
        .as_array()
        .context("items")?
        .iter()
        .filter_map(|x| x["id"].as_str())
        .collect();
    assert_eq!(mine, [r_id.as_str()], "{v}");
    assert_eq!(v["items"][0]["status"], "terminee", "{v}");
    let (s, h) = get(&sb, &moves, &ana).await?;
    assert_eq!(s, StatusCode::OK, "{h}");
    let steps: Vec<&str> = h["items"]
        .as_array()
        .context("history")?
        .iter()
        .filter_map(|t| t["to_status"].as_str())
        .collect();
    assert_eq!(steps, ["envoyee", "acceptee", "en_cours", "terminee"]);
    assert_eq!(h["items"][3]["note"], OUTCOME, "{h}");

    // Q received none of P's events, on its consumer or its refused subscription.
    let for_q = q_nats.read_and_ack(0, QUIET).await?;
    assert!(for_q.is_empty(), "Q received {for_q:?}");
    assert_eq!(q_nats.pending().await?, (0, 0));
    let leaked = tokio::time::timeout(QUIET, sneaky.next()).await;
    assert!(
        !matches!(leaked, Ok(Some(_))),
        "Q received P's event: {leaked:?}"
    );

    sb.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn story_sqlite() -> Result<()> {
    story(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread")]
async fn story_postgres() -> Result<()> {
    story(Backend::Postgres).await
}
