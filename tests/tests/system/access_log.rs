//! The person's access log, through the gateway against the real system: a
//! counselor registers and reads a person; the person reads who did it (the
//! structure's name, the role, the counselor's name, the action, the
//! purpose), newest first, page by page; an admin of a following structure
//! reads it too; another structure's admin cannot tell the person exists.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use eva_platform::auth::Role;
use eva_tests::api::{get, person, person_token, post, structure};
use eva_tests::sandbox::{Backend, Sandbox};
use serde_json::{Value, json};

const SIRET_A: &str = "41735218600007";
const SIRET_B: &str = "51734218700005";

/// Reads the log until it holds at least `n` entries (the projection lags).
async fn wait_log(sb: &Sandbox, token: &str, person: &str, n: usize) -> Result<Vec<Value>> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, v) = get(
            sb,
            &format!("/api/v1/people/{person}/access-log?page_size=500"),
            token,
        )
        .await?;
        assert_eq!(status, 200, "{v}");
        let items = v["items"].as_array().cloned().unwrap_or_default();
        if items.len() >= n {
            return Ok(items);
        }
        if Instant::now() > deadline {
            bail!("{} access-log entries, expected {n}: {v}", items.len());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_person_reads_who_saw_their_file() -> Result<()> {
    let sb = Sandbox::start(Backend::Sqlite).await?;
    let operator = sb.token("ops-1", vec![Role::Operator], vec![]).await?;
    let a = structure(&sb, &operator, "Chantier Alpha", SIRET_A, "aci").await?;
    let b = structure(&sb, &operator, "Association Beta", SIRET_B, "aci").await?;

    // A real account, so the log can name the counselor.
    let (status, member) = post(
        &sb,
        &format!("/api/v1/structures/{a}/members"),
        &operator,
        json!({ "email": "camille.conseil@example.org", "display_name": "Camille Conseil", "role": "counselor" }),
    )
    .await?;
    assert_eq!(status, 201, "{member}");
    let camille_id = member["member"]["user_id"]
        .as_str()
        .context("user id")?
        .to_owned();
    let camille = sb
        .token(&camille_id, vec![Role::Counselor], vec![a.clone()])
        .await?;
    let admin_a = sb
        .token("admin-a", vec![Role::StructureAdmin], vec![a.clone()])
        .await?;
    let admin_b = sb
        .token("admin-b", vec![Role::StructureAdmin], vec![b.clone()])
        .await?;

    // Camille registers Ana (a write), then reads her file twice.
    let person = person(&sb, &camille, &a, "Ana", "Lindqvist").await?;
    for _ in 0..2 {
        let (status, got) = get(&sb, &format!("/api/v1/people/{person}"), &camille).await?;
        assert_eq!(status, 200, "{got}");
    }

    // Ana reads her log: newest first, named.
    let ana = person_token(&sb, &person).await?;
    let log = wait_log(&sb, &ana, &person, 3).await?;
    assert_eq!(log.len(), 3, "{log:?}");
    for e in &log {
        assert_eq!(e["actor_structure_id"], a.as_str());
        assert_eq!(e["actor_structure_name"], "Chantier Alpha");
        assert_eq!(e["actor_role"], "counselor");
        assert_eq!(e["actor_user_id"], camille_id.as_str());
        assert_eq!(e["actor_display_name"], "Camille Conseil");
        assert_eq!(e["purpose"], "accompagnement");
        assert_eq!(e["service"], "identity");
        assert_eq!(e["resource_type"], "person");
        assert_eq!(e["resource_id"], person.as_str());
    }
    assert_eq!(log[0]["action"], "read");
    assert_eq!(log[1]["action"], "read");
    assert_eq!(log[2]["action"], "write", "the registration is the oldest");
    let times: Vec<&str> = log
        .iter()
        .map(|e| e["occurred_at"].as_str().unwrap_or_default())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {times:?}"
    );

    // Reading the log is not logged.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(wait_log(&sb, &ana, &person, 3).await?.len(), 3);

    // Pages of one, in the same order, until the last.
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let (status, page) = get(
            &sb,
            &format!("/api/v1/people/{person}/access-log?page_size=1&page_token={token}"),
            &ana,
        )
        .await?;
        assert_eq!(status, 200, "{page}");
        let items = page["items"].as_array().context("items")?;
        assert_eq!(items.len(), 1, "{page}");
        seen.push(items[0]["id"].clone());
        match page["next_page_token"].as_str() {
            Some(t) => token = t.to_owned(),
            None => break,
        }
        assert!(seen.len() < 10, "pagination does not end");
    }
    let all: Vec<Value> = log.iter().map(|e| e["id"].clone()).collect();
    assert_eq!(seen, all);

    // A day filter: today's entries are all of them, a past day has none.
    let today = eva_platform::consent::today();
    let (status, v) = get(
        &sb,
        &format!("/api/v1/people/{person}/access-log?from={today}&to={today}"),
        &ana,
    )
    .await?;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["items"].as_array().map(Vec::len), Some(3));
    let (status, v) = get(
        &sb,
        &format!("/api/v1/people/{person}/access-log?to=2020-01-01"),
        &ana,
    )
    .await?;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["items"].as_array().map(Vec::len), Some(0));

    // The admin of the following structure reads it; another structure's
    // admin gets the 404 of a person who does not exist.
    assert_eq!(wait_log(&sb, &admin_a, &person, 3).await?.len(), 3);
    let (status, hidden) = get(
        &sb,
        &format!("/api/v1/people/{person}/access-log"),
        &admin_b,
    )
    .await?;
    assert_eq!(status, 404, "{hidden}");
    let (status, missing) = get(
        &sb,
        &format!("/api/v1/people/{}/access-log", uuid::Uuid::now_v7()),
        &admin_b,
    )
    .await?;
    assert_eq!(status, 404);
    assert_eq!(hidden, missing, "a hidden person looks like a missing one");
    // Counselors do not read the log, another person neither.
    let (status, _) = get(
        &sb,
        &format!("/api/v1/people/{person}/access-log"),
        &camille,
    )
    .await?;
    assert_eq!(status, 403);
    let other = person_token(&sb, &uuid::Uuid::now_v7().to_string()).await?;
    let (status, _) = get(&sb, &format!("/api/v1/people/{person}/access-log"), &other).await?;
    assert_eq!(status, 404);

    // Bad input is refused by name.
    for (query, field) in [
        ("page_size=-1", "page_size"),
        ("page_token=!!", "page_token"),
        ("from=14-03-2026", "from"),
        ("from=2026-03-14&to=2026-03-13", "to"),
    ] {
        let (status, v) = get(
            &sb,
            &format!("/api/v1/people/{person}/access-log?{query}"),
            &ana,
        )
        .await?;
        assert_eq!(status, 400, "{query}: {v}");
        assert_eq!(v["errors"][0]["field"], field, "{query}: {v}");
    }
    let (status, v) = get(&sb, "/api/v1/people/not-an-id/access-log", &ana).await?;
    assert_eq!(status, 400);
    assert_eq!(v["errors"][0]["field"], "person_id");

    sb.stop().await
}
