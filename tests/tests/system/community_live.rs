//! Community's moderation, notifications (live, through server-sent events)
//! and check-ins, end to end through the gateway on the real system.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use eva_platform::auth::Role;
use eva_tests::api::{field_of, get, patch, post, siret, structure, until};
use eva_tests::sandbox::{Backend, Sandbox};
use eva_tests::sse::{next_notification, open_stream};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use eva_platform::bus::{Bus, CloudEvent};
use eva_platform::config::BusConfig;
use prost::Message;

/// Publishes identity's `UserDeleted` for `user_id` as identity would.
async fn delete_account(sb: &Sandbox, user_id: &str) -> Result<()> {
    let bus = Bus::connect(&BusConfig::default(), &sb.nats.url(), "tests").await?;
    let id = Uuid::now_v7().to_string();
    let subject = "eva.identity.user.deleted";
    let ce = CloudEvent {
        id: id.clone(),
        source: "/eva/identity".into(),
        event_type: subject.into(),
        time: "2026-03-28T23:30:00Z".into(),
        subject: Some(user_id.to_owned()),
    };
    let mut headers = ce.to_headers(None);
    headers.insert("Nats-Msg-Id", id.as_str());
    let event = eva_proto::identity::v1::UserDeleted {
        user_id: user_id.to_owned(),
        deleted_at: None,
    };
    bus.jetstream()
        .publish_with_headers(subject, headers, event.encode_to_vec().into())
        .await?
        .await?;
    Ok(())
}

fn has_kind(v: &Value, kind: &str) -> bool {
    v["items"]
        .as_array()
        .is_some_and(|a| a.iter().any(|n| n["kind"] == kind))
}

struct People {
    operator: String,
    asker: String,
    follower: String,
    answerer: String,
    admin: String,
}

async fn people(sb: &Sandbox, structure: &str) -> Result<(People, [String; 3])> {
    let ids = [
        Uuid::now_v7().to_string(),
        Uuid::now_v7().to_string(),
        Uuid::now_v7().to_string(),
    ];
    let s = vec![structure.to_owned()];
    let p = People {
        operator: sb
            .token(&Uuid::now_v7().to_string(), vec![Role::Operator], vec![])
            .await?,
        asker: sb.token(&ids[0], vec![Role::Counselor], s.clone()).await?,
        follower: sb.token(&ids[1], vec![Role::Counselor], s.clone()).await?,
        answerer: sb.token(&ids[2], vec![Role::Counselor], s.clone()).await?,
        admin: sb
            .token(&Uuid::now_v7().to_string(), vec![Role::StructureAdmin], s)
            .await?,
    };
    Ok((p, ids))
}

async fn notifications_of(sb: &Sandbox, token: &str) -> Result<Vec<Value>> {
    let (s, v) = get(sb, "/api/v1/notifications", token).await?;
    assert_eq!(s, StatusCode::OK, "{v}");
    Ok(v["items"].as_array().cloned().unwrap_or_default())
}

async fn scenario(backend: Backend) -> Result<()> {
    let sb = Sandbox::start(backend).await?;
    let operator = sb
        .token(&Uuid::now_v7().to_string(), vec![Role::Operator], vec![])
        .await?;
    // In commune 27229, département 27.
    let structure = structure(&sb, &operator, "Chantier Alpha", &siret(41), "aci").await?;
    let (p, ids) = people(&sb, &structure).await?;

    // A territory space; its creator (the operator) moderates it.
    let (s, space) = post(
        &sb,
        "/api/v1/community/spaces",
        &p.operator,
        json!({"name": "Eure", "kind": "territory", "territory_code": "27"}),
    )
    .await?;
    assert_eq!(s, StatusCode::CREATED, "{space}");
    let space_id = space["id"].as_str().context("space id")?.to_owned();
    for t in [&p.asker, &p.follower, &p.answerer] {
        let (s, v) = post(
            &sb,
            &format!("/api/v1/community/spaces/{space_id}/join"),
            t,
            json!({}),
        )
        .await?;
        assert!(s.is_success(), "join: {s} {v}");
    }
    let (s, q) = post(
        &sb,
        "/api/v1/community/questions",
        &p.asker,
        json!({"space_id": space_id, "title": "Garage solidaire", "body": format!("Qui connaît un garage solidaire près d'Évreux ? @{} tu sais ?", ids[2])}),
    )
    .await?;
    assert_eq!(s, StatusCode::CREATED, "{q}");
    let question_id = q["id"].as_str().context("question id")?.to_owned();
    let (s, v) = post(
        &sb,
        &format!("/api/v1/community/questions/{question_id}/follow"),
        &p.follower,
        json!({}),
    )
    .await?;
    assert!(s.is_success(), "follow: {s} {v}");

    // The stream needs a caller.
    let anonymous = sb
        .http
        .get(sb.url("/api/v1/notifications/stream"))
        .send()
        .await?;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    // The follower is connected; an answer reaches them live.
    let mut live = open_stream(&sb, &p.follower).await?;
    let (s, a) = post(
        &sb,
        &format!("/api/v1/community/questions/{question_id}/answers"),
        &p.answerer,
        json!({"body": "Oui : l'association Roue Libre, rue de la Gare."}),
    )
    .await?;
    assert_eq!(s, StatusCode::CREATED, "{a}");
    let answer_id = a["id"].as_str().context("answer id")?.to_owned();
    let n = next_notification(&mut live).await?;
    assert_eq!(n["kind"], "reply", "{n}");
    assert_eq!(n["user_id"], ids[1].as_str());
    assert_eq!(n["content_kind"], "answer");
    assert_eq!(n["content_id"], answer_id.as_str());
    assert_eq!(n["question_id"], question_id.as_str());
    assert!(n.get("body").is_none(), "no post text in a notification");
    drop(live);

    // The asker got one too; the answerer did not notify themself.
    let asker = until(
        &sb,
        Method::GET,
        "/api/v1/notifications",
        &p.asker,
        None,
        |s, v| s == StatusCode::OK && v["items"].as_array().is_some_and(|a| a.len() == 1),
    )
    .await?;
    assert_eq!(asker["unread_count"], 1);
    // The answerer was only mentioned in the question.
    let theirs = notifications_of(&sb, &p.answerer).await?;
    assert_eq!(theirs.len(), 1, "{theirs:?}");
    assert_eq!(theirs[0]["kind"], "mention");
    assert_eq!(theirs[0]["content_kind"], "question");
    let (s, v) = post(
        &sb,
        "/api/v1/notifications/read",
        &p.asker,
        json!({"all": true}),
    )
    .await?;
    assert_eq!((s, v["marked"].as_i64()), (StatusCode::OK, Some(1)));

    // Preferences: the follower wants no more replies.
    let (s, v) = patch(
        &sb,
        "/api/v1/notifications/preferences",
        &p.follower,
        json!({"preferences": {"reply": "never"}, "followed_domains": ["mobilite"]}),
    )
    .await?;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["preferences"]["reply"], "never");
    assert_eq!(v["preferences"]["mention"], "immediately");
    assert_eq!(v["followed_domains"], json!(["mobilite"]));
    let (s, v) = patch(
        &sb,
        "/api/v1/notifications/preferences",
        &p.follower,
        json!({"preferences": {"reply": "sometimes"}}),
    )
    .await?;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(field_of(&v), "preferences.reply");
    let before = notifications_of(&sb, &p.follower).await?.len();
    let (s, a2) = post(
        &sb,
        &format!("/api/v1/community/questions/{question_id}/answers"),
        &p.answerer,
        json!({"body": "Et aussi la plateforme mobilité du département."}),
    )
    .await?;
    assert_eq!(s, StatusCode::CREATED, "{a2}");
    // Once the asker has the second reply, the consumer has handled it.
    until(
        &sb,
        Method::GET,
        "/api/v1/notifications",
        &p.asker,
        None,
        |s, v| s == StatusCode::OK && v["items"].as_array().is_some_and(|a| a.len() == 2),
    )
    .await?;
    assert_eq!(notifications_of(&sb, &p.follower).await?.len(), before);

    // Daily digest is stored, not pushed: the asker gets replies in a digest
    // and mentions at once; one answer mentioning them makes both, the reply
    // first, and the live stream carries only the mention.
    let (s, v) = patch(
        &sb,
        "/api/v1/notifications/preferences",
        &p.asker,
        json!({"preferences": {"reply": "daily_digest", "mention": "immediately"}}),
    )
    .await?;
    assert_eq!(s, StatusCode::OK, "{v}");
    let mut live = open_stream(&sb, &p.asker).await?;
    let (s, a3) = post(
        &sb,
        &format!("/api/v1/community/questions/{question_id}/answers"),
        &p.answerer,
        json!({"body": format!("Voir aussi @{} pour le covoiturage.", ids[0])}),
    )
    .await?;
    assert_eq!(s, StatusCode::CREATED, "{a3}");
    let n = next_notification(&mut live).await?;
    assert_eq!(n["kind"], "mention", "{n}");
    assert_eq!(n["content_id"], a3["id"]);
    drop(live);
    let listed = until(
        &sb,
        Method::GET,
        "/api/v1/notifications",
        &p.asker,
        None,
        |s, v| s == StatusCode::OK && v["items"].as_array().is_some_and(|a| a.len() == 4),
    )
    .await?;
    assert!(has_kind(&listed, "reply") && has_kind(&listed, "mention"));

    // A new solution sheet in a followed domain; an accepted answer.
    let (s, sol) = post(
        &sb,
        "/api/v1/community/solutions",
        &p.asker,
        json!({"title": "Garage solidaire", "body": "Réparations à prix réduit.", "domains": ["mobilite"]}),
    )
    .await?;
    assert_eq!(s, StatusCode::CREATED, "{sol}");
    let solution_id = sol["id"].as_str().context("solution id")?.to_owned();
    let (s, v) = patch(
        &sb,
        "/api/v1/notifications/preferences",
        &p.follower,
        json!({"followed_domains": ["pas-un-domaine"]}),
    )
    .await?;
    assert_eq!(
        (s, field_of(&v)),
        (StatusCode::BAD_REQUEST, "followed_domains[0]"),
        "{v}"
    );
    until(
        &sb,
        Method::GET,
        "/api/v1/notifications",
        &p.follower,
        None,
        |s, v| s == StatusCode::OK && has_kind(v, "new_solution"),
    )
    .await?;
    let (s, v) = post(
        &sb,
        &format!("/api/v1/community/answers/{answer_id}/accept"),
        &p.asker,
        json!({}),
    )
    .await?;
    assert!(s.is_success(), "accept: {s} {v}");
    until(
        &sb,
        Method::GET,
        "/api/v1/notifications",
        &p.answerer,
        None,
        |s, v| s == StatusCode::OK && has_kind(v, "answer_accepted"),
    )
    .await?;

    // A solution is moderated by the moderators of its domain's theme space.
    let (s, theme) = post(
        &sb,
        "/api/v1/community/spaces",
        &p.operator,
        json!({"name": "Mobilité", "kind": "theme", "domain_id": "mobilite"}),
    )
    .await?;
    assert_eq!(s, StatusCode::CREATED, "{theme}");
    let theme_id = theme["id"].as_str().context("theme id")?.to_owned();
    let (s, v) = post(
        &sb,
        &format!("/api/v1/community/spaces/{theme_id}/join"),
        &p.follower,
        json!({}),
    )
    .await?;
    assert!(s.is_success(), "join theme: {s} {v}");
    let (s, v) = patch(
        &sb,
        &format!("/api/v1/community/spaces/{theme_id}/members/{}", ids[1]),
        &p.operator,
        json!({"role": "moderator"}),
    )
    .await?;
    assert!(s.is_success(), "promote: {s} {v}");
    let hide_sheet = json!({"content_kind": "solution", "content_id": solution_id, "action": "hide", "reason": "Doublon"});
    let (s, _) = post(
        &sb,
        "/api/v1/community/moderation",
        &p.answerer,
        hide_sheet.clone(),
    )
    .await?;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = post(&sb, "/api/v1/community/moderation", &p.follower, hide_sheet).await?;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    // Its log reaches the theme's moderators, who have no space to name.
    let (s, log) = get(&sb, "/api/v1/community/moderation-log", &p.follower).await?;
    assert_eq!(s, StatusCode::OK, "{log}");
    assert_eq!(log["items"][0]["content_id"], solution_id.as_str());
    assert_eq!(log["items"][0]["action"], "hide");
    assert!(log["items"][0]["question_id"].is_null(), "{log}");
    let (s, log) = get(&sb, "/api/v1/community/moderation-log", &p.answerer).await?;
    assert_eq!(s, StatusCode::OK, "{log}");
    assert_eq!(log["items"].as_array().map(Vec::len), Some(0));

    // Reports: once per member and post.
    let report = json!({"content_kind": "answer", "content_id": answer_id, "reason": "Hors sujet"});
    let (s, v) = post(
        &sb,
        "/api/v1/community/reports",
        &p.follower,
        report.clone(),
    )
    .await?;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["action"], "report");
    let (s, _) = post(&sb, "/api/v1/community/reports", &p.follower, report).await?;
    assert_eq!(s, StatusCode::CONFLICT);

    // Hide and restore: moderators only, logged.
    let hide = json!({"content_kind": "answer", "content_id": answer_id, "action": "hide", "reason": "Adresse trop précise"});
    let (s, _) = post(&sb, "/api/v1/community/moderation", &p.asker, hide.clone()).await?;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = post(&sb, "/api/v1/community/moderation", &p.operator, hide).await?;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["action"], "hide");
    let (s, v) = post(
        &sb,
        "/api/v1/community/moderation",
        &p.operator,
        json!({"content_kind": "answer", "content_id": answer_id, "action": "erase", "reason": "x"}),
    )
    .await?;
    assert_eq!((s, field_of(&v)), (StatusCode::BAD_REQUEST, "action"));
    let (s, v) = post(
        &sb,
        "/api/v1/community/moderation",
        &p.operator,
        json!({"content_kind": "answer", "content_id": answer_id, "action": "restore", "reason": "Corrigé par l'auteur"}),
    )
    .await?;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, log) = get(
        &sb,
        &format!("/api/v1/community/moderation-log?space_id={space_id}"),
        &p.operator,
    )
    .await?;
    assert_eq!(s, StatusCode::OK, "{log}");
    let actions: Vec<&str> = log["items"]
        .as_array()
        .context("items")?
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(actions, vec!["restore", "hide", "report"]);
    assert_eq!(log["items"][1]["reason"], "Adresse trop précise");
    // Each entry names the answer's question, for a link to the post.
    assert_eq!(log["items"][2]["question_id"], question_id.as_str());
    let (s, _) = get(
        &sb,
        &format!("/api/v1/community/moderation-log?space_id={space_id}"),
        &p.asker,
    )
    .await?;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // Check-ins: counselors only, once a month, scores 1 to 5 named.
    let (s, v) = post(
        &sb,
        "/api/v1/community/checkins",
        &p.answerer,
        json!({"workload": 3, "isolation": 7, "support": 2}),
    )
    .await?;
    assert_eq!(
        (s, field_of(&v)),
        (StatusCode::BAD_REQUEST, "isolation"),
        "{v}"
    );
    let good = json!({"workload": 4, "isolation": 2, "support": 3});
    let (s, v) = post(&sb, "/api/v1/community/checkins", &p.answerer, good.clone()).await?;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["month"].as_str().map(str::len), Some(7));
    let (s, _) = post(&sb, "/api/v1/community/checkins", &p.answerer, good.clone()).await?;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, _) = post(&sb, "/api/v1/community/checkins", &p.admin, good).await?;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // The event carries the month and the answers, no user, no aggregate id.
    let bus = Bus::connect(&BusConfig::default(), &sb.nats.url(), "tests").await?;
    let stream = bus
        .jetstream()
        .get_stream(eva_platform::bus::streams::COMMUNITY.name)
        .await?;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let msg = loop {
        match stream
            .get_last_raw_message_by_subject("eva.community.checkin.submitted")
            .await
        {
            Ok(m) => break m,
            Err(e) if std::time::Instant::now() > deadline => bail!("no check-in event: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let event = eva_proto::community::v1::CheckinSubmitted::decode(msg.payload.clone())?;
    assert_eq!(Some(event.month.as_str()), v["month"].as_str());
    assert_eq!(event.departement, "27");
    assert_eq!(
        event.checkin.map(|c| (c.workload, c.isolation, c.support)),
        Some((4, 2, 3))
    );
    assert!(
        msg.headers.get("ce-subject").is_none(),
        "no aggregate id on a check-in"
    );
    let raw = String::from_utf8_lossy(&msg.payload);
    assert!(!raw.contains(&ids[2]), "no user id in a check-in");

    // Export: community holds nothing about a person supported, and says so.
    let channel = tonic::transport::Channel::from_shared(sb.config.community.endpoint.clone())?
        .connect()
        .await?;
    let mut export =
        eva_proto::identity::v1::person_data_service_client::PersonDataServiceClient::new(channel);
    let person_id = Uuid::now_v7().to_string();
    let mut req = tonic::Request::new(eva_proto::identity::v1::ExportPersonDataRequest {
        person_id: person_id.clone(),
    });
    req.metadata_mut()
        .insert("authorization", format!("Bearer {}", p.answerer).parse()?);
    let part = export.export_person_data(req).await?.into_inner();
    let doc: Value = serde_json::from_slice(&part.content)?;
    assert_eq!(part.service, "community");
    assert_eq!(doc["personal_data"], false);
    assert_eq!(doc["person_id"], person_id.as_str());

    // A deleted account: posts stay, author blanked; notifications go.
    delete_account(&sb, &ids[2]).await?;
    let answers = until(
        &sb,
        Method::GET,
        &format!("/api/v1/community/questions/{question_id}/answers"),
        &p.asker,
        None,
        |s, v| {
            s == StatusCode::OK
                && v["items"].as_array().is_some_and(|a| {
                    a.len() == 3 && a.iter().all(|x| x["author_user_id"].is_null())
                })
        },
    )
    .await?;
    assert_eq!(answers["items"].as_array().map(Vec::len), Some(3));
    assert!(notifications_of(&sb, &p.answerer).await?.is_empty());

    sb.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn live_notifications_moderation_and_checkins_on_sqlite() -> Result<()> {
    scenario(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread")]
async fn live_notifications_moderation_and_checkins_on_postgres() -> Result<()> {
    scenario(Backend::Postgres).await
}
