//! Community content through the gateway, on SQLite and PostgreSQL: an
//! operator opens a territory space (département 27) and a theme space
//! (`mobilite`); counselors join; one asks, two answer, peers vote (once),
//! the asker accepts, a moderator certifies; the unanswered list and the
//! filters; the solution library ordered by usefulness; bad input refused by
//! name with nothing stored; a structure's private space hidden from another
//! structure; and the events on `EVA_COMMUNITY`.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use eva_platform::auth::Role;
use eva_proto::community::v1 as pb;
use eva_tests::api::{delete, field_of, get, patch, post, siret, structure};
use eva_tests::sandbox::{Backend, Sandbox};
use futures::StreamExt;
use prost::Message;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The events on `filter` in `stream`, oldest first, once at least `n` are
/// there: (subject, body).
async fn events(
    sb: &Sandbox,
    stream: &str,
    filter: &str,
    n: usize,
) -> Result<Vec<(String, Vec<u8>)>> {
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
            got.push((m.subject.to_string(), m.payload.to_vec()));
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

fn ids(v: &Value) -> Vec<String> {
    v["items"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|i| i["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap_or_default().to_owned()
}

fn user() -> String {
    uuid::Uuid::now_v7().to_string()
}

async fn story(backend: Backend) -> Result<()> {
    let sb = Sandbox::start(backend).await?;
    let op = sb.token(&user(), vec![Role::Operator], vec![]).await?;
    let a = structure(&sb, &op, "Insertion Évreux", &siret(101), "association").await?;
    let b = structure(&sb, &op, "Tremplin Vernon", &siret(102), "association").await?;
    let (u1, u2, u3, um) = (user(), user(), user(), user());
    let c1 = sb
        .token(&u1, vec![Role::Counselor], vec![a.clone()])
        .await?;
    let c2 = sb
        .token(&u2, vec![Role::Counselor], vec![a.clone()])
        .await?;
    let c3 = sb
        .token(&u3, vec![Role::Counselor], vec![b.clone()])
        .await?;
    let m = sb
        .token(&um, vec![Role::Counselor], vec![b.clone()])
        .await?;
    let admin_a = sb
        .token(&user(), vec![Role::StructureAdmin], vec![a.clone()])
        .await?;
    let analyst = sb.token(&user(), vec![Role::Analyst], vec![]).await?;

    // The operator opens a territory space and a theme space.
    let (s, eure) = post(
        &sb,
        "/api/v1/community/spaces",
        &op,
        json!({ "name": "Eure", "description": "Conseillers de l'Eure", "kind": "territory", "territory_code": "27" }),
    )
    .await?;
    assert_eq!(s, StatusCode::CREATED, "{eure}");
    assert_eq!(eure["kind"], "territory");
    assert_eq!(eure["territory_code"], "27");
    assert_eq!(eure["my_role"], "moderator");
    let eure_id = id_of(&eure);
    let (s, theme) = post(
        &sb,
        "/api/v1/community/spaces",
        &op,
        json!({ "name": "Mobilité", "kind": "theme", "domain_id": "mobilite" }),
    )
    .await?;
    assert_eq!(s, StatusCode::CREATED, "{theme}");
    assert_eq!(theme["domain_id"], "mobilite");
    // Counselors do not create public spaces; a theme needs a known domain.
    let (s, _) = post(
        &sb,
        "/api/v1/community/spaces",
        &c1,
        json!({ "name": "Eure bis", "kind": "territory", "territory_code": "27" }),
    )
    .await?;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = post(
        &sb,
        "/api/v1/community/spaces",
        &op,
        json!({ "name": "Voyages", "kind": "theme", "domain_id": "voyages" }),
    )
    .await?;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(field_of(&v), "domain_id");
    // Only counselors and structure admins use the community.
    let (s, _) = get(&sb, "/api/v1/community/questions", &analyst).await?;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let person = sb.token(&user(), vec![Role::Person], vec![]).await?;
    for path in ["/api/v1/community/spaces", "/api/v1/community/solutions"] {
        let (s, _) = get(&sb, path, &person).await?;
        assert_eq!(s, StatusCode::FORBIDDEN, "{path}");
    }

    // Counselors join; the operator makes `m` a moderator of the Eure space.
    for t in [&c1, &c2, &c3, &m] {
        let (s, v) = post(
            &sb,
            &format!("/api/v1/community/spaces/{eure_id}/join"),
            t,
            json!({}),
        )
        .await?;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["my_role"], "member");
    }
    let (s, v) = patch(
        &sb,
        &format!("/api/v1/community/spaces/{eure_id}/members/{um}"),
        &c1,
        json!({ "role": "moderator" }),
    )
    .await?;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let (s, v) = patch(
        &sb,
        &format!("/api/v1/community/spaces/{eure_id}/members/{um}"),
        &op,
        json!({ "role": "moderator" }),
    )
    .await?;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["role"], "moderator");
    let (s, v) = get(&sb, "/api/v1/community/spaces?joined_only=true", &c1).await?;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(ids(&v), vec![eure_id.clone()]);
    let (_, v) = get(&sb, "/api/v1/community/spaces", &c1).await?;
    assert_eq!(ids(&v).len(), 2, "{v}");

    // c1 asks.
    let (s, q) = post(
        &sb,
        "/api/v1/community/questions",
        &c1,
        json!({
            "space_id": eure_id,
            "title": "Garage solidaire près d'Évreux ?",
            "body": "Je cherche un garage solidaire pour une réparation à petit prix, autour d'Évreux.",
            "domains": ["mobilite"],
            "territory_code": "27229",
        }),
    )
    .await?;
    assert_eq!(s, StatusCode::CREATED, "{q}");
    assert_eq!(q["followed"], true);
    assert_eq!(q["status"], "published");
    assert_eq!(q["domains"], json!(["mobilite"]));
    let q_id = id_of(&q);
    let (_, v) = get(&sb, "/api/v1/community/questions?unanswered=true", &c2).await?;
    assert_eq!(ids(&v), vec![q_id.clone()]);

    // Two answer.
    let (s, a1) = post(
        &sb,
        &format!("/api/v1/community/questions/{q_id}/answers"),
        &c2,
        json!({ "body": "Le garage solidaire de Navarre fait des devis à prix coûtant." }),
    )
    .await?;
    assert_eq!(s, StatusCode::CREATED, "{a1}");
    let a1_id = id_of(&a1);
    let (s, a2) = post(
        &sb,
        &format!("/api/v1/community/questions/{q_id}/answers"),
        &c3,
        json!({ "body": "Voyez aussi la plateforme mobilité du département." }),
    )
    .await?;
    assert_eq!(s, StatusCode::CREATED, "{a2}");
    let a2_id = id_of(&a2);
    let (_, v) = get(&sb, "/api/v1/community/questions?unanswered=true", &c2).await?;
    assert!(ids(&v).is_empty(), "{v}");
    let (_, v) = get(&sb, &format!("/api/v1/community/questions/{q_id}"), &c3).await?;
    assert_eq!(v["answer_count"], 2);

    // Votes: once each, never for one's own answer.
    let (s, v) = post(
        &sb,
        &format!("/api/v1/community/answers/{a1_id}/votes"),
        &c1,
        json!({}),
    )
    .await?;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["vote_count"], 1);
    let (s, v) = post(
        &sb,
        &format!("/api/v1/community/answers/{a1_id}/votes"),
        &c1,
        json!({}),
    )
    .await?;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(field_of(&v), "answer_id");
    let (s, v) = post(
        &sb,
        &format!("/api/v1/community/answers/{a1_id}/votes"),
        &c2,
        json!({}),
    )
    .await?;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let (_, v) = get(
        &sb,
        &format!("/api/v1/community/questions/{q_id}/answers"),
        &c1,
    )
    .await?;
    let a1_now = v["items"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["id"] == a1_id.as_str()))
        .cloned()
        .unwrap_or_default();
    assert_eq!(a1_now["vote_count"], 1, "{v}");
    assert_eq!(a1_now["voted"], true);
    let (s, v) = post(
        &sb,
        &format!("/api/v1/community/answers/{a2_id}/votes"),
        &m,
        json!({}),
    )
    .await?;
    assert_eq!(s, StatusCode::CREATED, "{v}");

    // Only the asker accepts; changing the choice is allowed.
    let (s, _) = post(
        &sb,
        &format!("/api/v1/community/answers/{a1_id}/accept"),
        &c2,
        json!({}),
    )
    .await?;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = post(
        &sb,
        &format!("/api/v1/community/answers/{a2_id}/accept"),
        &c1,
        json!({}),
    )
    .await?;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["accepted_answer_id"], a2_id.as_str());
    let (s, v) = post(
        &sb,
        &format!("/api/v1/community/answers/{a1_id}/accept"),
        &c1,
        json!({}),
    )
    .await?;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["accepted_answer_id"], a1_id.as_str());

    // Only a moderator of the space certifies.
    let (s, _) = post(
        &sb,
        &format!("/api/v1/community/answers/{a2_id}/certify"),
        &c1,
        json!({ "certified": true }),
    )
    .await?;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = post(
        &sb,
        &format!("/api/v1/community/answers/{a2_id}/certify"),
        &m,
        json!({ "certified": true }),
    )
    .await?;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["certified"], true);
    // Accepted first, then certified.
    let (_, v) = get(
        &sb,
        &format!("/api/v1/community/questions/{q_id}/answers"),
        &c3,
    )
    .await?;
    assert_eq!(ids(&v), vec![a1_id.clone(), a2_id.clone()], "{v}");
    assert_eq!(v["items"][0]["accepted"], true);
    assert_eq!(v["items"][1]["certified"], true);

    // Filters and follows.
    let (_, v) = get(&sb, "/api/v1/community/questions?domain=mobilite", &c3).await?;
    assert_eq!(ids(&v), vec![q_id.clone()]);
    let (_, v) = get(&sb, "/api/v1/community/questions?domain=famille", &c3).await?;
    assert!(ids(&v).is_empty(), "{v}");
    let (_, v) = get(&sb, "/api/v1/community/questions?territory_code=27229", &c3).await?;
    assert_eq!(ids(&v), vec![q_id.clone()]);
    let (_, v) = get(&sb, "/api/v1/community/questions?territory_code=27", &c3).await?;
    assert_eq!(ids(&v), vec![q_id.clone()]);
    let (_, v) = get(&sb, "/api/v1/community/questions?territory_code=76", &c3).await?;
    assert!(ids(&v).is_empty(), "{v}");
    let (_, v) = get(&sb, "/api/v1/community/questions?followed=true", &c3).await?;
    assert!(ids(&v).is_empty(), "{v}");
    let (s, v) = post(
        &sb,
        &format!("/api/v1/community/questions/{q_id}/follow"),
        &c3,
        json!({}),
    )
    .await?;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["followed"], true);
    let (_, v) = get(&sb, "/api/v1/community/questions?followed=true", &c3).await?;
    assert_eq!(ids(&v), vec![q_id.clone()]);
    let (s, v) = delete(
        &sb,
        &format!("/api/v1/community/questions/{q_id}/follow"),
        &c3,
    )
    .await?;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["followed"], false);
    // The author edits; others may not.
    let (s, _) = patch(
        &sb,
        &format!("/api/v1/community/questions/{q_id}"),
        &c2,
        json!({ "title": "Autre titre de question" }),
    )
    .await?;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = patch(
        &sb,
        &format!("/api/v1/community/questions/{q_id}"),
        &c1,
        json!({ "title": "Garage solidaire autour d'Évreux ?" }),
    )
    .await?;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["title"], "Garage solidaire autour d'Évreux ?");

    let (s, _) = patch(
        &sb,
        &format!("/api/v1/community/answers/{a1_id}"),
        &c1,
        json!({ "body": "Pas ma réponse." }),
    )
    .await?;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = patch(
        &sb,
        &format!("/api/v1/community/answers/{a1_id}"),
        &c2,
        json!({ "body": "Le garage solidaire de Navarre fait des devis gratuits." }),
    )
    .await?;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v["body"],
        "Le garage solidaire de Navarre fait des devis gratuits."
    );
    assert_eq!(v["accepted"], true);

    // Personal data of a person supported is refused before it is stored.
    let (s, v) = post(
        &sb,
        &format!("/api/v1/community/questions/{q_id}/answers"),
        &c2,
        json!({ "body": "Écrivez-lui : ana.dupont@example.org" }),
    )
    .await?;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    let (_, v) = get(&sb, &format!("/api/v1/community/questions/{q_id}"), &c3).await?;
    assert_eq!(v["answer_count"], 2, "{v}");

    // Bad input is refused by name and nothing is stored.
    let long = "x".repeat(10_001);
    for (body, field) in [
        (
            json!({ "space_id": eure_id, "title": "", "body": "Une question.", "domains": ["mobilite"] }),
            "title",
        ),
        (
            json!({ "space_id": eure_id, "title": "Une question", "body": "Une question.", "domains": ["voyages"] }),
            "domains",
        ),
        (
            json!({ "space_id": eure_id, "title": "Une question", "body": &long, "domains": ["mobilite"] }),
            "body",
        ),
        (
            json!({ "space_id": eure_id, "title": "Une question", "body": "Texte.", "territory_code": "2722" }),
            "territory_code",
        ),
    ] {
        let (s, v) = post(&sb, "/api/v1/community/questions", &c1, body).await?;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert_eq!(field_of(&v), field, "{v}");
    }
    let (s, v) = post(
        &sb,
        &format!("/api/v1/community/questions/{q_id}/answers"),
        &c2,
        json!({ "body": &long }),
    )
    .await?;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(field_of(&v), "body");
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .unwrap_or("")
            .contains("10000"),
        "{v}"
    );
    let (_, v) = get(&sb, "/api/v1/community/questions", &c1).await?;
    assert_eq!(ids(&v), vec![q_id.clone()], "nothing stored: {v}");
    // Posting needs membership.
    let theme_id = id_of(&theme);
    let (s, _) = post(
        &sb,
        "/api/v1/community/questions",
        &c1,
        json!({ "space_id": theme_id, "title": "Une question", "body": "Texte.", "domains": ["mobilite"] }),
    )
    .await?;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // A structure's private space: its admin creates it, another structure
    // never sees it.
    let (s, _) = post(
        &sb,
        "/api/v1/community/spaces",
        &c3,
        json!({ "name": "Privé", "kind": "structure", "structure_id": a }),
    )
    .await?;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, private) = post(
        &sb,
        "/api/v1/community/spaces",
        &admin_a,
        json!({ "name": "Équipe Évreux", "kind": "structure", "structure_id": a }),
    )
    .await?;
    assert_eq!(s, StatusCode::CREATED, "{private}");
    let private_id = id_of(&private);
    let (_, v) = get(&sb, "/api/v1/community/spaces?kind=structure", &c1).await?;
    assert_eq!(ids(&v), vec![private_id.clone()]);
    let (_, v) = get(&sb, "/api/v1/community/spaces", &c3).await?;
    assert!(!ids(&v).contains(&private_id), "{v}");
    let (s, _) = get(&sb, &format!("/api/v1/community/spaces/{private_id}"), &c3).await?;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = post(
        &sb,
        &format!("/api/v1/community/spaces/{private_id}/join"),
        &c3,
        json!({}),
    )
    .await?;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v) = post(
        &sb,
        &format!("/api/v1/community/spaces/{private_id}/join"),
        &c1,
        json!({}),
    )
    .await?;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, pq) = post(
        &sb,
        "/api/v1/community/questions",
        &c1,
        json!({ "space_id": private_id, "title": "Organisation interne", "body": "Qui prend les permanences ?" }),
    )
    .await?;
    assert_eq!(s, StatusCode::CREATED, "{pq}");
    let (s, _) = get(
        &sb,
        &format!("/api/v1/community/questions/{}", id_of(&pq)),
        &c3,
    )
    .await?;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, v) = get(&sb, "/api/v1/community/questions", &c3).await?;
    assert_eq!(ids(&v), vec![q_id.clone()], "{v}");
    let (_, v) = get(&sb, "/api/v1/community/questions", &c2).await?;
    assert_eq!(ids(&v).len(), 2, "{v}");
    // Newest first, page by page.
    let (_, p1) = get(&sb, "/api/v1/community/questions?page_size=1", &c2).await?;
    assert_eq!(ids(&p1), vec![id_of(&pq)], "{p1}");
    let token = p1["next_page_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(!token.is_empty(), "{p1}");
    let (_, p2) = get(
        &sb,
        &format!("/api/v1/community/questions?page_size=1&page_token={token}"),
        &c2,
    )
    .await?;
    assert_eq!(ids(&p2), vec![q_id.clone()], "{p2}");
    assert!(p2["next_page_token"].is_null(), "{p2}");
    // Leaving a space.
    let (s, _) = post(
        &sb,
        &format!("/api/v1/community/spaces/{private_id}/leave"),
        &c1,
        json!({}),
    )
    .await?;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, v) = get(&sb, &format!("/api/v1/community/spaces/{private_id}"), &c1).await?;
    assert!(v["my_role"].is_null(), "{v}");

    // A hidden question is listed to the space's moderators and its author
    // only; its author still reads it.
    let (s, q2) = post(
        &sb,
        "/api/v1/community/questions",
        &c2,
        json!({ "space_id": eure_id, "title": "Question à masquer", "body": "Hors sujet.", "domains": ["famille"] }),
    )
    .await?;
    assert_eq!(s, StatusCode::CREATED, "{q2}");
    let q2_id = id_of(&q2);
    let (s, v) = post(
        &sb,
        "/api/v1/community/moderation",
        &m,
        json!({ "content_kind": "question", "content_id": q2_id, "action": "hide", "reason": "hors sujet" }),
    )
    .await?;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (_, v) = get(&sb, "/api/v1/community/questions?domain=famille", &c3).await?;
    assert!(ids(&v).is_empty(), "{v}");
    let (_, v) = get(&sb, "/api/v1/community/questions?domain=famille", &m).await?;
    assert_eq!(ids(&v), vec![q2_id.clone()], "{v}");
    assert_eq!(v["items"][0]["status"], "hidden");
    let (_, v) = get(&sb, "/api/v1/community/questions?domain=famille", &c2).await?;
    assert_eq!(ids(&v), vec![q2_id.clone()], "{v}");
    let (s, _) = get(&sb, &format!("/api/v1/community/questions/{q2_id}"), &c3).await?;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v) = get(&sb, &format!("/api/v1/community/questions/{q2_id}"), &c2).await?;
    assert_eq!(s, StatusCode::OK, "{v}");
    // A hidden answer likewise, and it no longer counts.
    let (s, v) = post(
        &sb,
        "/api/v1/community/moderation",
        &m,
        json!({ "content_kind": "answer", "content_id": a2_id, "action": "hide", "reason": "doublon" }),
    )
    .await?;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (_, v) = get(
        &sb,
        &format!("/api/v1/community/questions/{q_id}/answers"),
        &c1,
    )
    .await?;
    assert_eq!(ids(&v), vec![a1_id.clone()], "{v}");
    // Its author still sees it, marked hidden.
    let (_, v) = get(
        &sb,
        &format!("/api/v1/community/questions/{q_id}/answers"),
        &c3,
    )
    .await?;
    assert_eq!(ids(&v), vec![a1_id.clone(), a2_id.clone()], "{v}");
    assert_eq!(v["items"][1]["status"], "hidden");
    let (_, v) = get(
        &sb,
        &format!("/api/v1/community/questions/{q_id}/answers"),
        &m,
    )
    .await?;
    assert_eq!(ids(&v), vec![a1_id.clone(), a2_id.clone()], "{v}");
    assert_eq!(v["items"][1]["status"], "hidden");
    let (_, v) = get(&sb, &format!("/api/v1/community/questions/{q_id}"), &c3).await?;
    assert_eq!(v["answer_count"], 1, "{v}");
    let (s, _) = post(
        &sb,
        &format!("/api/v1/community/answers/{a2_id}/votes"),
        &c2,
        json!({}),
    )
    .await?;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Solutions, most useful first.
    let (s, s1) = post(
        &sb,
        "/api/v1/community/solutions",
        &c1,
        json!({
            "title": "Garage solidaire de Navarre",
            "body": "Réparations à prix coûtant pour les personnes au RSA, sur prescription.",
            "domains": ["mobilite"],
            "item_ids": ["mobilite.vehicule"],
            "territory_codes": ["27229"],
            "valid_until": "2099-12-31",
        }),
    )
    .await?;
    assert_eq!(s, StatusCode::CREATED, "{s1}");
    assert_eq!(s1["used_count"], 0);
    let s1_id = id_of(&s1);
    let (s, s2) = post(
        &sb,
        "/api/v1/community/solutions",
        &c2,
        json!({
            "title": "Aide au permis du département",
            "body": "Jusqu'à 1 000 € pour le permis B.",
            "domains": ["mobilite"],
            "territory_codes": ["27"],
        }),
    )
    .await?;
    assert_eq!(s, StatusCode::CREATED, "{s2}");
    let s2_id = id_of(&s2);
    for (t, id, worked) in [
        (&c2, &s1_id, false),
        (&c3, &s1_id, false),
        (&c1, &s2_id, true),
        (&c3, &s2_id, true),
    ] {
        let (s, v) = post(
            &sb,
            &format!("/api/v1/community/solutions/{id}/feedback"),
            t,
            json!({ "worked": worked }),
        )
        .await?;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    // Feedback again replaces the earlier one.
    let (_, v) = post(
        &sb,
        &format!("/api/v1/community/solutions/{s1_id}/feedback"),
        &c3,
        json!({ "worked": true }),
    )
    .await?;
    assert_eq!(v["used_count"], 2, "{v}");
    assert_eq!(v["worked_count"], 1, "{v}");
    let (_, v) = get(&sb, "/api/v1/community/solutions?domain=mobilite", &c3).await?;
    assert_eq!(ids(&v), vec![s2_id.clone(), s1_id.clone()], "{v}");
    assert_eq!(v["items"][0]["worked_count"], 2);
    // A commune finds the sheets of its département too, and a département
    // those of its communes.
    let (_, v) = get(&sb, "/api/v1/community/solutions?territory_code=27229", &c3).await?;
    assert_eq!(ids(&v), vec![s2_id.clone(), s1_id.clone()], "{v}");
    let (_, v) = get(&sb, "/api/v1/community/solutions?territory_code=27", &c3).await?;
    assert_eq!(ids(&v), vec![s2_id.clone(), s1_id.clone()], "{v}");
    let (_, v) = get(&sb, "/api/v1/community/solutions?territory_code=76540", &c3).await?;
    assert!(ids(&v).is_empty(), "{v}");
    let (_, v) = get(
        &sb,
        "/api/v1/community/solutions?item_id=mobilite.vehicule",
        &c3,
    )
    .await?;
    assert_eq!(ids(&v), vec![s1_id.clone()], "{v}");
    let (s, v) = post(
        &sb,
        "/api/v1/community/solutions",
        &c1,
        json!({ "title": "Fiche invalide", "body": "Texte.", "domains": ["mobilite"], "item_ids": ["voyages.train"] }),
    )
    .await?;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(field_of(&v), "item_ids");
    let (s, v) = patch(
        &sb,
        &format!("/api/v1/community/solutions/{s1_id}"),
        &c1,
        json!({
            "title": "Garage solidaire de Navarre (Évreux)",
            "body": "Réparations à prix coûtant, sur prescription du conseiller.",
            "domains": ["mobilite"],
            "item_ids": ["mobilite.vehicule"],
            "territory_codes": ["27229"],
        }),
    )
    .await?;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["title"], "Garage solidaire de Navarre (Évreux)");
    assert_eq!(v["used_count"], 2);
    // A sheet past its validity is listed only on demand.
    let (s, old) = post(
        &sb,
        "/api/v1/community/solutions",
        &c3,
        json!({
            "title": "Chèque mobilité 2020",
            "body": "Dispositif terminé.",
            "domains": ["mobilite"],
            "valid_from": "2020-01-01",
            "valid_until": "2020-12-31",
        }),
    )
    .await?;
    assert_eq!(s, StatusCode::CREATED, "{old}");
    let (_, v) = get(&sb, "/api/v1/community/solutions", &c3).await?;
    assert_eq!(ids(&v), vec![s2_id.clone(), s1_id.clone()], "{v}");
    let (_, v) = get(&sb, "/api/v1/community/solutions?include_expired=true", &c3).await?;
    assert_eq!(ids(&v).len(), 3, "{v}");
    let (s, v) = post(
        &sb,
        "/api/v1/community/solutions",
        &c3,
        json!({ "title": "Dates à l'envers", "body": "Texte.", "domains": ["mobilite"], "valid_from": "2021-01-01", "valid_until": "2020-01-01" }),
    )
    .await?;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(field_of(&v), "valid_until");
    // A hidden sheet is listed to the moderators of its theme only.
    let (s, _) = post(
        &sb,
        &format!("/api/v1/community/spaces/{theme_id}/join"),
        &m,
        json!({}),
    )
    .await?;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = patch(
        &sb,
        &format!("/api/v1/community/spaces/{theme_id}/members/{um}"),
        &op,
        json!({ "role": "moderator" }),
    )
    .await?;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = post(
        &sb,
        "/api/v1/community/moderation",
        &m,
        json!({ "content_kind": "solution", "content_id": s1_id, "action": "hide", "reason": "à vérifier" }),
    )
    .await?;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (_, v) = get(&sb, "/api/v1/community/solutions", &c3).await?;
    assert_eq!(ids(&v), vec![s2_id.clone()], "{v}");
    let (_, v) = get(&sb, "/api/v1/community/solutions", &m).await?;
    assert_eq!(ids(&v), vec![s2_id.clone(), s1_id.clone()], "{v}");
    assert_eq!(v["items"][1]["status"], "hidden");
    let (s, _) = get(&sb, &format!("/api/v1/community/solutions/{s1_id}"), &c3).await?;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = get(&sb, &format!("/api/v1/community/solutions/{s1_id}"), &c1).await?;
    assert_eq!(s, StatusCode::OK);

    // Events, in the transactions of the changes.
    let asked = events(&sb, "EVA_COMMUNITY", "eva.community.question.asked", 3).await?;
    assert_eq!(asked.len(), 3);
    let first = pb::QuestionAsked::decode(asked[0].1.as_slice())?;
    assert_eq!(first.question_id, q_id);
    assert_eq!(first.space_id, eure_id);
    assert_eq!(first.domains, vec!["mobilite".to_owned()]);
    assert_eq!(first.territory_code, "27229");
    let posted = events(&sb, "EVA_COMMUNITY", "eva.community.answer.posted", 2).await?;
    assert_eq!(posted.len(), 2);
    let p = pb::AnswerPosted::decode(posted[0].1.as_slice())?;
    assert_eq!((p.answer_id, p.question_id), (a1_id.clone(), q_id.clone()));
    let accepted = events(&sb, "EVA_COMMUNITY", "eva.community.answer.accepted", 2).await?;
    assert_eq!(accepted.len(), 2);
    let last = pb::AnswerAccepted::decode(accepted[1].1.as_slice())?;
    assert_eq!(last.answer_id, a1_id);
    let published = events(&sb, "EVA_COMMUNITY", "eva.community.solution.published", 3).await?;
    assert_eq!(published.len(), 3);
    let sp = pb::SolutionPublished::decode(published[0].1.as_slice())?;
    assert_eq!(sp.solution_id, s1_id);
    assert_eq!(sp.item_ids, vec!["mobilite.vehicule".to_owned()]);

    sb.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn community_content_on_sqlite() -> Result<()> {
    story(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread")]
async fn community_content_on_postgres() -> Result<()> {
    story(Backend::Postgres).await
}
