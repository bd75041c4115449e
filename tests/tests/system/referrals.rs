//! Referrals through the gateway, the whole loop: counselor A refers Ana to
//! partner P with the part of her diagnostic she let travel; P finds it in
//! its inbox, reads what Ana's consent allows, answers in the thread,
//! accepts, starts and reports the outcome; A sees the loop closed; Ana sees
//! the timeline and who read her file. Every move is an event on
//! `eva.referrals.…` and, for P only, on `eva.partners.<P>.referrals.…`.
//! Bad input is refused by name with nothing changed. A second story makes
//! days pass: the reminder and the expiry fire, across restarts of the
//! referrals service.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use eva_platform::auth::Role;
use eva_proto::referrals::v1 as pb;
use eva_tests::api::{consent, field_of, get, patch, person, person_token, post, structure, until};
use eva_tests::sandbox::{Backend, Sandbox};
use futures::StreamExt;
use prost::Message;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const REASON: &str = "Ana prépare le permis B ; elle a besoin d'un accompagnement mobilité.";
const NOTE_PERMIS: &str = "Code obtenu en mars, conduite à reprendre.";
const OUTCOME: &str = "Permis obtenu le 12 juin, Ana conduit seule.";

/// The events on `filter` in `stream`, oldest first, once at least `n` are
/// there: (subject, ce-type, content-type, body).
async fn events(
    sb: &Sandbox,
    stream: &str,
    filter: &str,
    n: usize,
) -> Result<Vec<(String, String, String, Vec<u8>)>> {
    let client = sb.nats.connect().await?;
    let js = async_nats::jetstream::new(client);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let s = js.get_stream(stream).await?;
        let consumer = s
            .create_consumer(async_nats::jetstream::consumer::pull::Config {
                filter_subject: filter.to_owned(),
                ..Default::default()
            })
            .await?;
        let mut got = Vec::new();
        let mut batch = consumer
            .fetch()
            .max_messages(1_000)
            .expires(Duration::from_millis(300))
            .messages()
            .await?;
        while let Some(m) = batch.next().await {
            let m = m.map_err(|e| anyhow::anyhow!("{e}"))?;
            let h = |k: &str| {
                m.headers
                    .as_ref()
                    .and_then(|h| h.get(k))
                    .map(|v| v.as_str().to_owned())
                    .unwrap_or_default()
            };
            got.push((
                m.subject.to_string(),
                h("ce-type"),
                h("content-type"),
                m.payload.to_vec(),
            ));
        }
        if got.len() >= n {
            return Ok(got);
        }
        if Instant::now() > deadline {
            bail!("{filter}: {} events, expected {n}", got.len());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn ids(v: &Value) -> Vec<&str> {
    v["items"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x["id"].as_str()).collect())
        .unwrap_or_default()
}

async fn story(backend: Backend) -> Result<()> {
    let sb = Sandbox::start(backend).await?;
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
    let counselor_a = sb
        .token("counselor-a", vec![Role::Counselor], vec![a.clone()])
        .await?;
    let partner_p = sb
        .token("partner-p", vec![Role::Partner], vec![p.clone()])
        .await?;
    let partner_q = sb
        .token("partner-q", vec![Role::Partner], vec![q.clone()])
        .await?;
    let ana_id = person(&sb, &counselor_a, &a, "Ana", "Zabalveytia").await?;
    let ana = person_token(&sb, &ana_id).await?;

    // A records and shares a diagnostic: mobilite and logement.
    let d = until(
        &sb,
        Method::POST,
        &format!("/api/v1/people/{ana_id}/diagnostics"),
        &counselor_a,
        Some(json!({ "structure_id": a })),
        |s, _| s == StatusCode::CREATED,
    )
    .await?;
    let d_id = d["id"].as_str().context("diagnostic id")?.to_owned();
    let (s, v) = patch(
        &sb,
        &format!("/api/v1/diagnostics/{d_id}"),
        &counselor_a,
        json!({ "ratings": [
            { "item_id": "mobilite.permis", "level": "frein", "note": NOTE_PERMIS },
            { "item_id": "logement-hebergement.logement_stable", "level": "frein_majeur" },
        ] }),
    )
    .await?;
    assert_eq!(s, 200, "{v}");
    let (s, v) = post(
        &sb,
        &format!("/api/v1/diagnostics/{d_id}/share"),
        &counselor_a,
        json!({}),
    )
    .await?;
    assert_eq!(s, 200, "{v}");

    // Ana lets mobilite travel to P for an orientation, nothing else.
    consent(&sb, &ana, &ana_id, &p, &["mobilite"], &["orientation"]).await?;

    let new = |domains: Value, reason: &str| {
        json!({
            "person_id": ana_id,
            "sender_structure_id": a,
            "target_structure_id": p,
            "domains": domains,
            "reason": reason,
            "diagnostic_id": d_id,
        })
    };
    // Bad input, each refused by name; nothing is stored.
    let (s, v) = post(
        &sb,
        "/api/v1/referrals",
        &counselor_a,
        new(json!(["mobilite", "voyage"]), REASON),
    )
    .await?;
    assert_eq!(
        (s, field_of(&v)),
        (StatusCode::BAD_REQUEST, "domains"),
        "{v}"
    );
    let (s, v) = post(
        &sb,
        "/api/v1/referrals",
        &counselor_a,
        new(json!(["mobilite"]), "  "),
    )
    .await?;
    assert_eq!(
        (s, field_of(&v)),
        (StatusCode::BAD_REQUEST, "reason"),
        "{v}"
    );
    let (s, v) = post(
        &sb,
        "/api/v1/referrals",
        &counselor_a,
        json!({ "person_id": ana_id }),
    )
    .await?;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, v) = post(
        &sb,
        "/api/v1/referrals",
        &partner_q,
        new(json!(["mobilite"]), REASON),
    )
    .await?;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");

    // Logement is not consented for P: refused, naming it (once the
    // projections know A follows Ana and P is a structure).
    let v = until(
        &sb,
        Method::POST,
        "/api/v1/referrals",
        &counselor_a,
        Some(new(json!(["mobilite", "logement-hebergement"]), REASON)),
        |s, v| {
            s == StatusCode::CONFLICT
                && v["detail"]
                    .as_str()
                    .unwrap_or("")
                    .contains("logement-hebergement")
        },
    )
    .await?;
    assert!(
        !v["detail"].as_str().unwrap_or("").contains("mobilite,"),
        "{v}"
    );

    let r = until(
        &sb,
        Method::POST,
        "/api/v1/referrals",
        &counselor_a,
        Some(new(json!(["mobilite"]), REASON)),
        |s, _| s == StatusCode::CREATED,
    )
    .await?;
    let r_id = r["id"].as_str().context("referral id")?.to_owned();
    assert_eq!(r["status"], "envoyee");
    assert_eq!(r["reason"], REASON);
    assert!(r["expires_at"].as_str().is_some(), "{r}");
    let path = format!("/api/v1/referrals/{r_id}");

    // P's inbox holds it; Q's does not, and Q cannot read it.
    let (s, v) = get(
        &sb,
        &format!("/api/v1/referrals?structure_id={p}&direction=received"),
        &partner_p,
    )
    .await?;
    assert_eq!(s, 200, "{v}");
    assert_eq!(ids(&v), vec![r_id.as_str()]);
    let (s, v) = get(
        &sb,
        &format!("/api/v1/referrals?structure_id={q}&direction=received"),
        &partner_q,
    )
    .await?;
    assert_eq!((s, ids(&v).len()), (StatusCode::OK, 0), "{v}");
    let (s, _) = get(&sb, &path, &partner_q).await?;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v) = get(
        &sb,
        &format!("/api/v1/referrals?structure_id={p}"),
        &counselor_a,
    )
    .await?;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");

    // P reads the referral (reason, how to reach Ana) and the travelling
    // diagnostic: mobilite with A's note; logement never left A.
    let (s, v) = get(&sb, &path, &partner_p).await?;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["reason"], REASON);
    assert_eq!(v["person_contact"]["last_name"], "Zabalveytia");
    let (s, v) = get(&sb, &format!("{path}/diagnostic"), &partner_p).await?;
    assert_eq!(s, 200, "{v}");
    let domains = v["domains"].as_array().context("domains")?;
    assert_eq!(domains.len(), 1, "{v}");
    assert_eq!(domains[0]["domain_id"], "mobilite");
    assert_eq!(domains[0]["access"], "visible");
    let items = domains[0]["content"]["items"].as_array().context("items")?;
    let permis = items
        .iter()
        .find(|i| i["item_id"] == "mobilite.permis")
        .context("permis")?;
    assert_eq!(permis["counselor_note"], NOTE_PERMIS);
    assert_eq!(permis["counselor_level"], "frein");

    // Moves refused by name, with the allowed ones; the state is unchanged.
    let moves = format!("{path}/transitions");
    let (s, v) = post(&sb, &moves, &partner_p, json!({ "to_status": "terminee" })).await?;
    assert_eq!(
        (s, field_of(&v)),
        (StatusCode::CONFLICT, "to_status"),
        "{v}"
    );
    let detail = v["detail"].as_str().unwrap_or("");
    assert!(
        detail.contains("a_l_etude") && detail.contains("acceptee"),
        "{v}"
    );
    let (s, v) = post(&sb, &moves, &partner_p, json!({ "to_status": "finie" })).await?;
    assert_eq!(
        (s, field_of(&v)),
        (StatusCode::BAD_REQUEST, "to_status"),
        "{v}"
    );
    let (s, v) = post(
        &sb,
        &moves,
        &partner_p,
        json!({ "to_status": "refusee", "refusal_reason": "pas_envie" }),
    )
    .await?;
    assert_eq!(
        (s, field_of(&v)),
        (StatusCode::BAD_REQUEST, "refusal_reason"),
        "{v}"
    );
    assert!(
        v["detail"].as_str().unwrap_or("").contains("hors_criteres"),
        "{v}"
    );
    let (s, v) = post(&sb, &moves, &partner_p, json!({ "to_status": "refusee" })).await?;
    assert_eq!(
        (s, field_of(&v)),
        (StatusCode::BAD_REQUEST, "refusal_reason"),
        "{v}"
    );
    let (s, v) = post(
        &sb,
        &moves,
        &partner_p,
        json!({ "to_status": "refusee", "refusal_reason": "autre" }),
    )
    .await?;
    assert_eq!((s, field_of(&v)), (StatusCode::BAD_REQUEST, "note"), "{v}");
    let (s, v) = post(
        &sb,
        &moves,
        &counselor_a,
        json!({ "to_status": "acceptee" }),
    )
    .await?;
    assert_eq!(
        (s, field_of(&v)),
        (StatusCode::CONFLICT, "to_status"),
        "{v}"
    );
    assert!(
        v["detail"].as_str().unwrap_or("").contains("annulee"),
        "{v}"
    );
    let (s, v) = get(&sb, &path, &counselor_a).await?;
    assert_eq!(
        (s, v["status"].as_str()),
        (StatusCode::OK, Some("envoyee")),
        "{v}"
    );

    // P studies it, asks a question, A answers; P accepts, starts, ends.
    let (s, v) = post(&sb, &moves, &partner_p, json!({ "to_status": "a_l_etude" })).await?;
    assert_eq!(s, 200, "{v}");
    assert!(v["referral"]["first_answered_at"].as_str().is_some(), "{v}");
    let thread = format!("{path}/messages");
    let (s, v) = post(
        &sb,
        &thread,
        &partner_p,
        json!({ "body": "Ana est-elle disponible le mardi ?" }),
    )
    .await?;
    assert_eq!(s, 201, "{v}");
    let (s, v) = post(
        &sb,
        &thread,
        &counselor_a,
        json!({ "body": "Oui, le mardi matin." }),
    )
    .await?;
    assert_eq!(s, 201, "{v}");
    let (s, v) = post(&sb, &thread, &counselor_a, json!({ "body": "" })).await?;
    assert_eq!((s, field_of(&v)), (StatusCode::BAD_REQUEST, "body"), "{v}");
    for to in ["acceptee", "en_cours"] {
        let (s, v) = post(&sb, &moves, &partner_p, json!({ "to_status": to })).await?;
        assert_eq!(s, 200, "{to}: {v}");
    }
    let (s, v) = post(
        &sb,
        &moves,
        &partner_p,
        json!({ "to_status": "terminee", "note": OUTCOME }),
    )
    .await?;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["transition"]["note"], OUTCOME);
    assert_eq!(v["referral"]["status"], "terminee");

    // The sender sees the loop closed, with the outcome.
    let (s, v) = get(&sb, &path, &counselor_a).await?;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"], "terminee");
    assert!(v["closed_at"].as_str().is_some(), "{v}");
    let (s, h) = get(&sb, &moves, &counselor_a).await?;
    assert_eq!(s, 200, "{h}");
    let steps: Vec<&str> = h["items"]
        .as_array()
        .context("history")?
        .iter()
        .filter_map(|t| t["to_status"].as_str())
        .collect();
    assert_eq!(
        steps,
        ["envoyee", "a_l_etude", "acceptee", "en_cours", "terminee"]
    );
    assert_eq!(h["items"][4]["note"], OUTCOME);
    assert_eq!(h["items"][4]["actor_structure_id"], p.as_str());
    let (s, v) = post(&sb, &moves, &counselor_a, json!({ "to_status": "annulee" })).await?;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");

    // Ana sees her timeline, the thread, and P's reads in her access log.
    let (s, v) = get(&sb, &format!("/api/v1/referrals?person_id={ana_id}"), &ana).await?;
    assert_eq!(s, 200, "{v}");
    assert_eq!(ids(&v), vec![r_id.as_str()]);
    let (s, h) = get(&sb, &moves, &ana).await?;
    assert_eq!(
        (s, h["items"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(5)),
        "{h}"
    );
    let (s, m) = get(&sb, &thread, &ana).await?;
    assert_eq!(s, 200, "{m}");
    assert_eq!(m["items"][0]["body"], "Ana est-elle disponible le mardi ?");
    assert_eq!(m["items"][1]["body"], "Oui, le mardi matin.");
    let (s, v) = get(
        &sb,
        &format!("/api/v1/referrals?person_id={ana_id}"),
        &partner_q,
    )
    .await?;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    until(
        &sb,
        Method::GET,
        &format!("/api/v1/people/{ana_id}/access-log"),
        &ana,
        None,
        |s, v| {
            s == StatusCode::OK
                && v["items"].as_array().is_some_and(|a| {
                    a.iter().any(|e| {
                        e["actor_structure_id"] == p.as_str() && e["resource_type"] == "referral"
                    })
                })
        },
    )
    .await?;
    // A partner answers referrals; it does not start following Ana (only
    // associations do, see tests/tests/system/referral_accepted.rs).
    // Events: every move on eva.referrals.…; P's subject carries exactly
    // the events of its referral; Q's subject carries nothing.
    let all = events(&sb, "EVA_REFERRALS", "eva.referrals.>", 7).await?;
    let types: Vec<&str> = all.iter().map(|e| e.1.as_str()).collect();
    assert_eq!(
        types,
        [
            "eva.referrals.referral.sent",
            "eva.referrals.referral.under_review",
            "eva.referrals.message.posted",
            "eva.referrals.message.posted",
            "eva.referrals.referral.accepted",
            "eva.referrals.referral.started",
            "eva.referrals.referral.completed",
        ]
    );
    let sent = pb::ReferralSent::decode(all[0].3.as_slice())?;
    assert_eq!(sent.referral_id, r_id);
    assert_eq!(sent.domains, ["mobilite"]);
    assert_eq!(sent.sealed_diagnostic.len(), 1);
    // Nothing about Ana in clear in any event.
    for e in &all {
        let body = String::from_utf8_lossy(&e.3);
        assert!(
            !body.contains("Zabalveytia") && !body.contains("permis B") && !body.contains("mardi"),
            "{}",
            e.1
        );
    }
    let to_p = events(&sb, "EVA_PARTNERS", &format!("eva.partners.{p}.>"), 7).await?;
    let subjects: Vec<String> = to_p.iter().map(|e| e.0.clone()).collect();
    let expect: Vec<String> = [
        "sent",
        "under_review",
        "message_posted",
        "message_posted",
        "accepted",
        "started",
        "completed",
    ]
    .iter()
    .map(|n| format!("eva.partners.{p}.referrals.{n}"))
    .collect();
    assert_eq!(subjects, expect);
    assert_eq!(to_p[0].1, "eva.referrals.referral.sent");
    assert_eq!(to_p[0].2, "application/protobuf");
    let to_q = events(&sb, "EVA_PARTNERS", &format!("eva.partners.{q}.>"), 0).await?;
    assert!(to_q.is_empty(), "{to_q:?}");

    // The export holds the referral, its outcome and the thread.
    let (s, v) = post(
        &sb,
        &format!("/api/v1/people/{ana_id}/export"),
        &ana,
        json!({}),
    )
    .await?;
    assert_eq!(s, 200, "{v}");
    let text = v.to_string();
    assert!(
        text.contains(&r_id) && text.contains(OUTCOME) && text.contains("mardi matin"),
        "{v}"
    );

    // Ana erases her data: her referrals go, for the sender and the partner.
    let (s, v) = post(
        &sb,
        &format!("/api/v1/people/{ana_id}/erase"),
        &ana,
        json!({ "confirm": true }),
    )
    .await?;
    assert_eq!(s, 200, "{v}");
    until(&sb, Method::GET, &path, &counselor_a, None, |s, _| {
        s == StatusCode::NOT_FOUND
    })
    .await?;
    let (s, v) = get(
        &sb,
        &format!("/api/v1/referrals?structure_id={p}&direction=received"),
        &partner_p,
    )
    .await?;
    assert_eq!((s, ids(&v).len()), (StatusCode::OK, 0), "{v}");

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

/// Days pass on the referrals clock: after 10 days without an answer the
/// receiver is reminded, after 30 the referral expires; the referrals
/// service restarts in between and misses nothing, and does nothing twice.
#[tokio::test(flavor = "multi_thread")]
async fn reminder_and_expiry_survive_restarts() -> Result<()> {
    let mut sb = Sandbox::start(Backend::Sqlite).await?;
    let operator = sb.token("ops-1", vec![Role::Operator], vec![]).await?;
    let a = structure(
        &sb,
        &operator,
        "Chantier A",
        "41735218600007",
        "association",
    )
    .await?;
    let b = structure(
        &sb,
        &operator,
        "Association B",
        "51734218700005",
        "association",
    )
    .await?;
    let counselor_a = sb
        .token("counselor-a", vec![Role::Counselor], vec![a.clone()])
        .await?;
    let counselor_b = sb
        .token("counselor-b", vec![Role::Counselor], vec![b.clone()])
        .await?;
    let ana_id = person(&sb, &counselor_a, &a, "Ana", "Zabalveytia").await?;
    let ana = person_token(&sb, &ana_id).await?;
    consent(&sb, &ana, &ana_id, &b, &["mobilite"], &["orientation"]).await?;
    let body = json!({
        "person_id": ana_id, "sender_structure_id": a, "target_structure_id": b,
        "domains": ["mobilite"], "reason": REASON,
    });
    let waiting = until(
        &sb,
        Method::POST,
        "/api/v1/referrals",
        &counselor_a,
        Some(body.clone()),
        |s, _| s == StatusCode::CREATED,
    )
    .await?;
    let studied = until(
        &sb,
        Method::POST,
        "/api/v1/referrals",
        &counselor_a,
        Some(body),
        |s, _| s == StatusCode::CREATED,
    )
    .await?;
    let waiting = waiting["id"].as_str().context("id")?.to_owned();
    let studied = studied["id"].as_str().context("id")?.to_owned();
    let (s, v) = post(
        &sb,
        &format!("/api/v1/referrals/{studied}/transitions"),
        &counselor_b,
        json!({ "to_status": "a_l_etude" }),
    )
    .await?;
    assert_eq!(s, 200, "{v}");

    sb.restart_referrals().await?;
    sb.clock.advance(Duration::from_secs(11 * 86_400));
    // The unanswered one is reminded once; the one under study is not.
    let reminded = events(&sb, "EVA_REFERRALS", "eva.referrals.referral.reminded", 1).await?;
    assert_eq!(reminded.len(), 1);
    assert_eq!(
        pb::ReferralReminded::decode(reminded[0].3.as_slice())?.referral_id,
        waiting
    );
    let (s, v) = get(&sb, &format!("/api/v1/referrals/{waiting}"), &counselor_a).await?;
    assert_eq!(
        (s, v["status"].as_str()),
        (StatusCode::OK, Some("envoyee")),
        "{v}"
    );

    sb.restart_referrals().await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let reminded = events(&sb, "EVA_REFERRALS", "eva.referrals.referral.reminded", 1).await?;
    assert_eq!(reminded.len(), 1, "reminded twice");
    sb.clock.advance(Duration::from_secs(20 * 86_400));
    for id in [&waiting, &studied] {
        let v = until(
            &sb,
            Method::GET,
            &format!("/api/v1/referrals/{id}"),
            &counselor_a,
            None,
            |s, v| s == StatusCode::OK && v["status"] == "expiree",
        )
        .await?;
        assert!(v["closed_at"].as_str().is_some(), "{v}");
        let (_, h) = get(
            &sb,
            &format!("/api/v1/referrals/{id}/transitions"),
            &counselor_a,
        )
        .await?;
        let last = h["items"]
            .as_array()
            .and_then(|a| a.last())
            .cloned()
            .unwrap_or_default();
        assert_eq!(last["to_status"], "expiree");
        assert!(
            last["actor_user_id"].is_null(),
            "the scheduler expired it: {last}"
        );
    }
    let expired = events(&sb, "EVA_REFERRALS", "eva.referrals.referral.expired", 2).await?;
    assert_eq!(expired.len(), 2);
    // Too late to answer.
    let (s, v) = post(
        &sb,
        &format!("/api/v1/referrals/{waiting}/transitions"),
        &counselor_b,
        json!({ "to_status": "acceptee" }),
    )
    .await?;
    assert_eq!(
        (s, field_of(&v)),
        (StatusCode::CONFLICT, "to_status"),
        "{v}"
    );
    sb.stop().await
}

/// The `referral` reads by `structure` in the person's access log:
/// (action, resource_id, domains, purpose) of each, newest first.
async fn referral_reads(
    sb: &Sandbox,
    person_token: &str,
    person_id: &str,
    structure: &str,
) -> Result<Vec<(String, String, Value, String)>> {
    let (s, v) = get(
        sb,
        &format!("/api/v1/people/{person_id}/access-log?page_size=500"),
        person_token,
    )
    .await?;
    assert_eq!(s, 200, "{v}");
    Ok(v["items"]
        .as_array()
        .context("access log items")?
        .iter()
        .filter(|e| {
            e["actor_structure_id"] == structure
                && e["resource_type"] == "referral"
                && e["action"] == "read"
        })
        .map(|e| {
            (
                e["action"].as_str().unwrap_or("").to_owned(),
                e["resource_id"].as_str().unwrap_or("").to_owned(),
                e["domains"].clone(),
                e["purpose"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect())
}

/// The item of `id` in a list page.
fn item<'a>(page: &'a Value, id: &str) -> Result<&'a Value> {
    page["items"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["id"] == id))
        .with_context(|| format!("referral {id} in {page}"))
}

/// `GET /referrals?include=person_name`: each person's first and last name
/// where the caller's seat may read the referral (the rule of
/// `GET /referrals/{id}`), nothing else of the details; withheld when the
/// person's consent does not allow; each name opened logged for its person
/// exactly as a single read is, and nothing logged without the option.
#[tokio::test(flavor = "multi_thread")]
async fn list_with_person_names() -> Result<()> {
    let sb = Sandbox::start(Backend::Sqlite).await?;
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
    let counselor_a = sb
        .token("counselor-a", vec![Role::Counselor], vec![a.clone()])
        .await?;
    let partner_p = sb
        .token("partner-p", vec![Role::Partner], vec![p.clone()])
        .await?;
    let ana_id = person(&sb, &counselor_a, &a, "Ana", "Zabalveytia").await?;
    let ana = person_token(&sb, &ana_id).await?;
    let bruno_id = person(&sb, &counselor_a, &a, "Bruno", "Keita").await?;
    let bruno = person_token(&sb, &bruno_id).await?;
    consent(&sb, &ana, &ana_id, &p, &["mobilite"], &["orientation"]).await?;
    let bruno_consent =
        consent(&sb, &bruno, &bruno_id, &p, &["mobilite"], &["orientation"]).await?;
    let referral = |person_id: String| {
        let (sb, counselor_a, a, p) = (&sb, &counselor_a, &a, &p);
        async move {
            let r = until(
                sb,
                Method::POST,
                "/api/v1/referrals",
                counselor_a,
                Some(json!({
                    "person_id": person_id,
                    "sender_structure_id": a,
                    "target_structure_id": p,
                    "domains": ["mobilite"],
                    "reason": REASON,
                })),
                |s, _| s == StatusCode::CREATED,
            )
            .await?;
            anyhow::Ok(r["id"].as_str().context("referral id")?.to_owned())
        }
    };
    let r_ana = referral(ana_id.clone()).await?;
    let r_bruno = referral(bruno_id.clone()).await?;
    // Bruno no longer lets P read about him.
    let (s, v) = post(
        &sb,
        &format!("/api/v1/consents/{bruno_consent}/withdraw"),
        &bruno,
        json!({}),
    )
    .await?;
    assert_eq!(s, 200, "{v}");

    let inbox = format!("/api/v1/referrals?structure_id={p}&direction=received");
    let outbox = format!("/api/v1/referrals?structure_id={a}&direction=sent");
    let ana_by_p = referral_reads(&sb, &ana, &ana_id, &p).await?;
    let bruno_by_p = referral_reads(&sb, &bruno, &bruno_id, &p).await?;

    // Without the option: no names, and nothing opened nor logged.
    let (s, v) = get(&sb, &inbox, &partner_p).await?;
    assert_eq!(s, 200, "{v}");
    for id in [&r_ana, &r_bruno] {
        let it = item(&v, id)?;
        assert!(it["person_contact"].is_null(), "{it}");
        assert!(it["reason"].is_null(), "{it}");
    }
    assert_eq!(referral_reads(&sb, &ana, &ana_id, &p).await?, ana_by_p);
    assert_eq!(
        referral_reads(&sb, &bruno, &bruno_id, &p).await?,
        bruno_by_p
    );

    // An unknown inclusion is refused by name.
    let (s, v) = get(
        &sb,
        &format!("{inbox}&include=person_name,reason"),
        &partner_p,
    )
    .await?;
    assert_eq!(
        (s, field_of(&v)),
        (StatusCode::BAD_REQUEST, "include"),
        "{v}"
    );

    // The receiver: Ana's name (her consent covers P), not Bruno's; names
    // only, never the reason nor how to reach the person.
    let (s, v) = get(&sb, &format!("{inbox}&include=person_name"), &partner_p).await?;
    assert_eq!(s, 200, "{v}");
    let it = item(&v, &r_ana)?;
    assert_eq!(it["person_contact"]["first_name"], "Ana", "{it}");
    assert_eq!(it["person_contact"]["last_name"], "Zabalveytia", "{it}");
    assert!(it["person_contact"]["phone"].is_null(), "{it}");
    assert!(it["person_contact"]["email"].is_null(), "{it}");
    assert!(it["reason"].is_null(), "{it}");
    let it = item(&v, &r_bruno)?;
    assert!(it["person_contact"].is_null(), "{it}");
    assert_eq!(it["status"], "envoyee", "{it}");

    // Ana's log holds one more read of her referral by P; Bruno's none.
    let after_list = referral_reads(&sb, &ana, &ana_id, &p).await?;
    assert_eq!(after_list.len(), ana_by_p.len() + 1, "{after_list:?}");
    let listed = after_list[0].clone();
    assert_eq!(
        listed,
        (
            "read".to_owned(),
            r_ana.clone(),
            json!(["mobilite"]),
            "orientation".to_owned()
        )
    );
    assert_eq!(
        referral_reads(&sb, &bruno, &bruno_id, &p).await?,
        bruno_by_p
    );
    // The same entry a single read writes.
    let (s, v) = get(&sb, &format!("/api/v1/referrals/{r_ana}"), &partner_p).await?;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["person_contact"]["last_name"], "Zabalveytia");
    let after_read = referral_reads(&sb, &ana, &ana_id, &p).await?;
    assert_eq!(after_read.len(), after_list.len() + 1, "{after_read:?}");
    assert_eq!(after_read[0], listed);
    // P cannot read Bruno's referral in full either: same rule.
    let (s, v) = get(&sb, &format!("/api/v1/referrals/{r_bruno}"), &partner_p).await?;
    assert_eq!(s, 200, "{v}");
    assert!(v["person_contact"].is_null(), "{v}");
    assert_eq!(
        referral_reads(&sb, &bruno, &bruno_id, &p).await?,
        bruno_by_p
    );

    // The sender follows both: both names, each read logged once for its
    // person (purpose accompagnement, as its single read).
    let ana_by_a = referral_reads(&sb, &ana, &ana_id, &a).await?;
    let bruno_by_a = referral_reads(&sb, &bruno, &bruno_id, &a).await?;
    let (s, v) = get(&sb, &format!("{outbox}&include=person_name"), &counselor_a).await?;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        item(&v, &r_ana)?["person_contact"]["first_name"],
        "Ana",
        "{v}"
    );
    assert_eq!(
        item(&v, &r_bruno)?["person_contact"]["first_name"],
        "Bruno",
        "{v}"
    );
    assert_eq!(
        item(&v, &r_bruno)?["person_contact"]["last_name"],
        "Keita",
        "{v}"
    );
    for (token, id, r, before) in [
        (&ana, &ana_id, &r_ana, &ana_by_a),
        (&bruno, &bruno_id, &r_bruno, &bruno_by_a),
    ] {
        let now = referral_reads(&sb, token, id, &a).await?;
        assert_eq!(now.len(), before.len() + 1, "{now:?}");
        assert_eq!(
            now[0],
            (
                "read".to_owned(),
                r.clone(),
                json!(["mobilite"]),
                "accompagnement".to_owned()
            )
        );
    }
    // The option is in the OpenAPI document.
    let (s, doc) = get(&sb, "/api/v1/openapi.json", &operator).await?;
    assert_eq!(s, 200);
    let params = doc["paths"]["/referrals"]["get"]["parameters"]
        .as_array()
        .context("GET /referrals parameters")?;
    assert!(
        params
            .iter()
            .any(|x| x["name"] == "include" && x["in"] == "query"),
        "{params:?}"
    );
    sb.stop().await
}
