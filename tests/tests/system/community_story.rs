//! Issue 9's story, in one test through the gateway, on SQLite and
//! PostgreSQL: a counselor asks, two answer, peers vote, the asker accepts;
//! a fourth counselor following the question, its notification stream open
//! before the answers, is notified live; a third counselor finds the
//! question by French full-text search ("garde d'enfants horaires décalés"
//! finds "Garde d'enfant en horaires decales ?", insensitive to accents, case
//! and plural), best match first among distractors, and reads the accepted
//! answer from the hit. Then a post holding a NIR, a phone number or the name
//! of a person the author follows is held back with a message naming the
//! finding and the field, and nothing is stored.

use anyhow::{Context, Result};
use eva_platform::auth::Role;
use eva_tests::api::{field_of, get, person, post, siret, structure};
use eva_tests::sandbox::{Backend, Sandbox};
use eva_tests::sse::{next_notification, open_stream};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

fn id_of(v: &Value) -> Result<String> {
    Ok(v["id"].as_str().context("id")?.to_owned())
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

async fn ask(sb: &Sandbox, token: &str, space_id: &str, title: &str, body: &str) -> Result<String> {
    let (s, q) = post(
        sb,
        "/api/v1/community/questions",
        token,
        json!({ "space_id": space_id, "title": title, "body": body, "domains": ["famille"] }),
    )
    .await?;
    assert_eq!(s, StatusCode::CREATED, "{q}");
    id_of(&q)
}

async fn story(backend: Backend, n: u64) -> Result<()> {
    let sb = Sandbox::start(backend).await?;
    let op = sb
        .token(&Uuid::now_v7().to_string(), vec![Role::Operator], vec![])
        .await?;
    let a = structure(
        &sb,
        &op,
        "Insertion Évreux",
        &siret(n * 10 + 1),
        "association",
    )
    .await?;
    let b = structure(
        &sb,
        &op,
        "Tremplin Vernon",
        &siret(n * 10 + 2),
        "association",
    )
    .await?;
    // The asker and a first answerer in one structure; a second answerer,
    // the searcher and the follower in another.
    let follower_id = Uuid::now_v7().to_string();
    let asker = sb
        .token(
            &Uuid::now_v7().to_string(),
            vec![Role::Counselor],
            vec![a.clone()],
        )
        .await?;
    let answerer1 = sb
        .token(
            &Uuid::now_v7().to_string(),
            vec![Role::Counselor],
            vec![a.clone()],
        )
        .await?;
    let answerer2 = sb
        .token(
            &Uuid::now_v7().to_string(),
            vec![Role::Counselor],
            vec![b.clone()],
        )
        .await?;
    let searcher = sb
        .token(
            &Uuid::now_v7().to_string(),
            vec![Role::Counselor],
            vec![b.clone()],
        )
        .await?;
    let follower = sb
        .token(&follower_id, vec![Role::Counselor], vec![b.clone()])
        .await?;

    // A territory space everyone joins.
    let (s, space) = post(
        &sb,
        "/api/v1/community/spaces",
        &op,
        json!({ "name": "Eure", "kind": "territory", "territory_code": "27" }),
    )
    .await?;
    assert_eq!(s, StatusCode::CREATED, "{space}");
    let space_id = id_of(&space)?;
    for t in [&asker, &answerer1, &answerer2, &searcher, &follower] {
        let (s, v) = post(
            &sb,
            &format!("/api/v1/community/spaces/{space_id}/join"),
            t,
            json!({}),
        )
        .await?;
        assert_eq!(s, StatusCode::OK, "join: {v}");
    }

    // Distractors, each sharing some of the words searched.
    let caf = ask(
        &sb,
        &answerer1,
        &space_id,
        "Horaires d'ouverture de la CAF",
        "Quels sont les horaires du point d'accueil le samedi ?",
    )
    .await?;
    let mercredi = ask(
        &sb,
        &answerer2,
        &space_id,
        "Garde d'enfants le mercredi",
        "Un centre de loisirs accepte-t-il des inscriptions en cours d'année ?",
    )
    .await?;
    let _permis = ask(
        &sb,
        &answerer2,
        &space_id,
        "Aide au permis de conduire",
        "Quelles aides pour financer le permis B d'un jeune ?",
    )
    .await?;

    // A counselor asks.
    let q_id = ask(
        &sb,
        &asker,
        &space_id,
        "Garde d'enfant en horaires decales ?",
        "Une maman commence à 5 heures du matin : quelle solution de garde pour ses deux petits ?",
    )
    .await?;

    // A fourth counselor follows the question and is connected.
    let (s, v) = post(
        &sb,
        &format!("/api/v1/community/questions/{q_id}/follow"),
        &follower,
        json!({}),
    )
    .await?;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["followed"], true);
    let mut live = open_stream(&sb, &follower).await?;

    // Two answer; each reply reaches the follower live.
    let mut answers = Vec::new();
    for (t, body) in [
        (
            &answerer1,
            "La crèche associative Les Lucioles ouvre à 5 h 30 pour les parents en horaires atypiques.",
        ),
        (
            &answerer2,
            "Voyez le relais petite enfance : des assistantes maternelles gardent tôt le matin.",
        ),
    ] {
        let (s, ans) = post(
            &sb,
            &format!("/api/v1/community/questions/{q_id}/answers"),
            t,
            json!({ "body": body }),
        )
        .await?;
        assert_eq!(s, StatusCode::CREATED, "{ans}");
        let ans_id = id_of(&ans)?;
        let n = next_notification(&mut live).await?;
        assert_eq!(n["kind"], "reply", "{n}");
        assert_eq!(n["user_id"], follower_id.as_str(), "{n}");
        assert_eq!(n["content_kind"], "answer", "{n}");
        assert_eq!(n["content_id"], ans_id.as_str(), "{n}");
        assert_eq!(n["question_id"], q_id.as_str(), "{n}");
        assert!(n.get("body").is_none(), "no post text in a notification");
        answers.push(ans_id);
    }
    drop(live);
    let (a1, a2) = (answers[0].clone(), answers[1].clone());

    // Votes: the follower and the searcher find the first answer useful,
    // the asker the second.
    for (t, id, count) in [(&follower, &a1, 1), (&searcher, &a1, 2), (&asker, &a2, 1)] {
        let (s, v) = post(
            &sb,
            &format!("/api/v1/community/answers/{id}/votes"),
            t,
            json!({}),
        )
        .await?;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        assert_eq!(v["vote_count"], count, "{v}");
    }

    // The asker accepts the first answer.
    let (s, v) = post(
        &sb,
        &format!("/api/v1/community/answers/{a1}/accept"),
        &asker,
        json!({}),
    )
    .await?;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["accepted_answer_id"], a1.as_str());

    // A third counselor searches, in other words: plural, accents, case.
    let (s, v) = get(
        &sb,
        "/api/v1/community/search?q=garde%20d'enfants%20horaires%20d%C3%A9cal%C3%A9s",
        &searcher,
    )
    .await?;
    assert_eq!(s, StatusCode::OK, "{v}");
    let hits = v["items"].as_array().context("items")?.clone();
    let first = hits.first().context("no hit")?;
    assert_eq!(first["question_id"], q_id.as_str(), "best match first: {v}");
    assert_eq!(
        first["title"], "Garde d'enfant en horaires decales ?",
        "{v}"
    );
    // The question itself is found, and ranks above every distractor.
    let rank = |id: &str| hits.iter().position(|h| h["content"]["content_id"] == id);
    let own = rank(&q_id).context("the question is found")?;
    assert_eq!(hits[own]["content"]["kind"], "question");
    for other in [&caf, &mercredi] {
        let r = rank(other).with_context(|| format!("distractor {other} found: {v}"))?;
        assert!(own < r, "{v}");
        assert!(
            hits[own]["score"].as_f64() > hits[r]["score"].as_f64(),
            "{v}"
        );
    }
    let question_hit = first["question_id"].as_str().context("question id")?;

    // From the hit, the accepted answer.
    let (s, q) = get(
        &sb,
        &format!("/api/v1/community/questions/{question_hit}"),
        &searcher,
    )
    .await?;
    assert_eq!(s, StatusCode::OK, "{q}");
    assert_eq!(q["accepted_answer_id"], a1.as_str(), "{q}");
    assert_eq!(q["answer_count"], 2, "{q}");
    let (s, v) = get(
        &sb,
        &format!("/api/v1/community/questions/{question_hit}/answers"),
        &searcher,
    )
    .await?;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(ids(&v), vec![a1.clone(), a2.clone()], "accepted first: {v}");
    assert_eq!(v["items"][0]["accepted"], true, "{v}");
    assert_eq!(v["items"][0]["vote_count"], 2, "{v}");
    assert_eq!(v["items"][0]["voted"], true, "{v}");
    assert!(
        v["items"][0]["body"]
            .as_str()
            .unwrap_or_default()
            .contains("Les Lucioles"),
        "{v}"
    );

    // --- Personal data held back -----------------------------------------
    // The asker's structure follows Maite Zabalveytia.
    person(&sb, &asker, &a, "Maite", "Zabalveytia").await?;
    let (_, before) = get(&sb, "/api/v1/community/questions", &asker).await?;
    let before = ids(&before);
    assert_eq!(before.len(), 4, "{before:?}");
    let questions = "/api/v1/community/questions".to_owned();
    let answers_path = format!("/api/v1/community/questions/{q_id}/answers");
    for (path, body, field, finding) in [
        (
            &questions,
            json!({
                "space_id": space_id,
                "title": "Dossier CAF bloqué",
                "body": "Son NIR est le 1 85 05 78 006 084 91, la CAF ne trouve pas le dossier.",
                "domains": ["difficultes-financieres"],
            }),
            "body",
            "un numéro de sécurité sociale (NIR) (champ body)",
        ),
        (
            &answers_path,
            json!({ "body": "Appelez la maman au 06 12 34 56 78, elle vous expliquera." }),
            "body",
            "un numéro de téléphone (champ body)",
        ),
        (
            &questions,
            json!({
                "space_id": space_id,
                "title": "Une garde pour Mme Zabalveytia",
                "body": "Elle commence tôt le matin, des idées ?",
                "domains": ["famille"],
            }),
            "title",
            "le nom d'une personne suivie (champ title)",
        ),
    ] {
        let (s, v) = post(&sb, path, &asker, body).await?;
        assert_eq!(s, StatusCode::CONFLICT, "{v}");
        let detail = v["detail"].as_str().unwrap_or_default();
        assert!(detail.contains("données personnelles"), "{v}");
        assert!(detail.contains(finding), "{finding}: {v}");
        assert_eq!(field_of(&v), field, "{v}");
    }
    // Nothing stored: the lists are unchanged, the search finds nothing.
    let (_, after) = get(&sb, "/api/v1/community/questions", &asker).await?;
    assert_eq!(ids(&after), before, "{after}");
    let (_, v) = get(&sb, &answers_path, &asker).await?;
    assert_eq!(ids(&v), vec![a1.clone(), a2.clone()], "{v}");
    let (_, v) = get(&sb, &format!("/api/v1/community/questions/{q_id}"), &asker).await?;
    assert_eq!(v["answer_count"], 2, "{v}");
    let (s, v) = get(&sb, "/api/v1/community/search?q=Zabalveytia", &asker).await?;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["items"], json!([]), "{v}");

    sb.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn community_story_on_sqlite() -> Result<()> {
    story(Backend::Sqlite, 91).await
}

#[tokio::test(flavor = "multi_thread")]
async fn community_story_on_postgres() -> Result<()> {
    story(Backend::Postgres, 92).await
}
