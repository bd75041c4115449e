//! The access log, grouped (`GET /people/{id}/access-log/summary`), against the
//! real system on SQLite and PostgreSQL: a counselor registers a person and
//! reads her file three times today; accesses of past days arrive on the bus
//! with chosen times (reads of the diagnostic, a write, another purpose). The
//! summary makes one line per day × actor × action × resource × purpose with
//! the right count, first and last access and domains, newest day first;
//! pages follow one another without a gap or a repeat; bad input is refused
//! by name; other structures are kept out; reading the summary is not logged.

use std::time::Duration;

use anyhow::{Context, Result};
use eva_platform::auth::Role;
use eva_platform::bus::streams;
use eva_proto::audit::v1::{AccessAction, AccessRecorded};
use eva_tests::api::{get, person, person_token, post, siret, structure, until};
use eva_tests::events::EventPublisher;
use eva_tests::sandbox::{Backend, Sandbox};
use reqwest::Method;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

#[tokio::test]
async fn the_summary_groups_accesses_on_sqlite() -> Result<()> {
    story(Backend::Sqlite).await
}

#[tokio::test]
async fn the_summary_groups_accesses_on_postgres() -> Result<()> {
    story(Backend::Postgres).await
}

fn at(s: &str) -> OffsetDateTime {
    OffsetDateTime::parse(s, &Rfc3339).unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// An access of `camille` (structure A) to Ana's diagnostic, at `when`.
fn access(
    ana: &str,
    camille: &str,
    a: &str,
    action: AccessAction,
    purpose: &str,
    domains: &[&str],
    when: &str,
) -> AccessRecorded {
    let t = at(when);
    AccessRecorded {
        access_id: uuid::Uuid::now_v7().to_string(),
        person_id: ana.to_owned(),
        actor_user_id: camille.to_owned(),
        actor_structure_id: a.to_owned(),
        actor_role: "counselor".into(),
        action: action as i32,
        resource_type: "diagnostic".into(),
        resource_id: "0190a000-0000-7000-8000-00000000d1a9".into(),
        domains: domains.iter().map(|d| (*d).to_owned()).collect(),
        purpose: purpose.into(),
        service: "diagnostics".into(),
        occurred_at: Some(prost_types::Timestamp {
            seconds: t.unix_timestamp(),
            nanos: 0,
        }),
    }
}

/// Every group of the summary at `query`, page after page of `size`.
async fn all_pages(
    sb: &Sandbox,
    token: &str,
    person: &str,
    query: &str,
    size: usize,
) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    let mut next = String::new();
    for _ in 0..50 {
        let (status, page) = get(
            sb,
            &format!(
                "/api/v1/people/{person}/access-log/summary?{query}&page_size={size}&page_token={next}"
            ),
            token,
        )
        .await?;
        assert_eq!(status, 200, "{page}");
        let items = page["items"].as_array().context("items")?;
        assert!(items.len() <= size, "{page}");
        out.extend(items.iter().cloned());
        match page["next_page_token"].as_str() {
            Some(t) => {
                assert_eq!(items.len(), size, "a full page before a token: {page}");
                next = t.to_owned();
            }
            None => return Ok(out),
        }
    }
    anyhow::bail!("pagination does not end")
}

/// A group as the test reads it: day, action, purpose, count, first, last, domains.
type Line<'a> = (
    &'a str,
    &'a str,
    &'a str,
    i64,
    &'a str,
    &'a str,
    Vec<&'a str>,
);

/// What identifies a group in an answer.
fn key(g: &Value) -> String {
    format!(
        "{} {} {} {} {}",
        g["day"], g["actor_user_id"], g["action"], g["resource_type"], g["purpose"]
    )
}

async fn story(backend: Backend) -> Result<()> {
    let sb = Sandbox::start(backend).await?;
    let operator = sb.token("ops-1", vec![Role::Operator], vec![]).await?;
    let a = structure(&sb, &operator, "Asso Évreux", &siret(41), "association").await?;
    let b = structure(
        &sb,
        &operator,
        "Association Beta",
        &siret(42),
        "association",
    )
    .await?;
    let (status, member) = post(
        &sb,
        &format!("/api/v1/structures/{a}/members"),
        &operator,
        json!({ "email": "marie.durand@example.org", "display_name": "Marie Durand", "role": "counselor" }),
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
    let counselor_b = sb
        .token("counselor-b", vec![Role::Counselor], vec![b.clone()])
        .await?;

    // Today, through the API: the registration (a write), then three reads.
    let ana = person(&sb, &camille, &a, "Ana", "Lindqvist").await?;
    for _ in 0..3 {
        let (status, got) = get(&sb, &format!("/api/v1/people/{ana}"), &camille).await?;
        assert_eq!(status, 200, "{got}");
    }
    let ana_token = person_token(&sb, &ana).await?;

    // Past days, on the bus with chosen times.
    use AccessAction::{Read, Write};
    let acc = "accompagnement";
    let past = [
        access(
            &ana,
            &camille_id,
            &a,
            Read,
            acc,
            &["mobilite"],
            "2026-03-12T09:05:00Z",
        ),
        access(
            &ana,
            &camille_id,
            &a,
            Write,
            acc,
            &["mobilite"],
            "2026-03-12T10:00:00Z",
        ),
        access(
            &ana,
            &camille_id,
            &a,
            Read,
            acc,
            &["logement-hebergement", "mobilite"],
            "2026-03-12T11:30:00Z",
        ),
        access(
            &ana,
            &camille_id,
            &a,
            Read,
            "orientation",
            &["mobilite"],
            "2026-03-12T14:00:00Z",
        ),
        access(
            &ana,
            &camille_id,
            &a,
            Read,
            acc,
            &[],
            "2026-03-12T16:40:00Z",
        ),
        access(
            &ana,
            &camille_id,
            &a,
            Read,
            acc,
            &["famille"],
            "2026-03-11T08:00:00Z",
        ),
        access(
            &ana,
            &camille_id,
            &a,
            Read,
            acc,
            &["famille"],
            "2026-03-11T22:59:59Z",
        ),
        // Midnight in Paris (UTC+1 in March): the next day, another line.
        access(
            &ana,
            &camille_id,
            &a,
            Read,
            acc,
            &["famille"],
            "2026-03-12T23:00:00Z",
        ),
    ];
    let mut events = EventPublisher::connect(&sb.nats.url(), &[streams::AUDIT]).await?;
    for e in &past {
        events
            .publish("diagnostics", "eva.audit.diagnostics.access", e)
            .await?;
    }
    events
        .settled("identity-access-log", Duration::from_secs(30))
        .await?;
    let total = 4 + past.len();
    let path = format!("/api/v1/people/{ana}/access-log?page_size=500");
    until(&sb, Method::GET, &path, &ana_token, None, |s, v| {
        s == 200 && v["items"].as_array().is_some_and(|i| i.len() >= total)
    })
    .await?;

    // March: five lines, newest day first, the last accessed first within a day.
    let march = all_pages(&sb, &ana_token, &ana, "from=2026-03-01&to=2026-03-31", 100).await?;
    let summary: Vec<Line> = march
        .iter()
        .map(|g| {
            (
                g["day"].as_str().unwrap_or_default(),
                g["action"].as_str().unwrap_or_default(),
                g["purpose"].as_str().unwrap_or_default(),
                g["count"].as_i64().unwrap_or_default(),
                g["first_at"].as_str().unwrap_or_default(),
                g["last_at"].as_str().unwrap_or_default(),
                g["domains"]
                    .as_array()
                    .map(|d| d.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default(),
            )
        })
        .collect();
    let expected = [
        (
            "2026-03-13",
            "read",
            acc,
            1,
            "2026-03-12T23:00:00Z",
            "2026-03-12T23:00:00Z",
            vec!["famille"],
        ),
        (
            "2026-03-12",
            "read",
            acc,
            3,
            "2026-03-12T09:05:00Z",
            "2026-03-12T16:40:00Z",
            vec!["logement-hebergement", "mobilite"],
        ),
        (
            "2026-03-12",
            "read",
            "orientation",
            1,
            "2026-03-12T14:00:00Z",
            "2026-03-12T14:00:00Z",
            vec!["mobilite"],
        ),
        (
            "2026-03-12",
            "write",
            acc,
            1,
            "2026-03-12T10:00:00Z",
            "2026-03-12T10:00:00Z",
            vec!["mobilite"],
        ),
        (
            "2026-03-11",
            "read",
            acc,
            2,
            "2026-03-11T08:00:00Z",
            "2026-03-11T22:59:59Z",
            vec!["famille"],
        ),
    ];
    assert_eq!(summary.len(), expected.len(), "{march:#?}");
    for (got, want) in summary.iter().zip(expected.iter()) {
        assert_eq!(
            (got.0, got.1, got.2, got.3),
            (want.0, want.1, want.2, want.3),
            "{march:#?}"
        );
        assert_eq!(at(got.4), at(want.4), "first of {want:?}");
        assert_eq!(at(got.5), at(want.5), "last of {want:?}");
        assert_eq!(got.6, want.6, "domains of {want:?}");
    }
    for g in &march {
        assert_eq!(g["actor_user_id"], camille_id.as_str());
        assert_eq!(g["actor_display_name"], "Marie Durand");
        assert_eq!(g["actor_structure_id"], a.as_str());
        assert_eq!(g["actor_structure_name"], "Asso Évreux");
        assert_eq!(g["actor_role"], "counselor");
        assert_eq!(g["resource_type"], "diagnostic");
    }
    // One day alone.
    let one = all_pages(&sb, &ana_token, &ana, "from=2026-03-11&to=2026-03-11", 10).await?;
    assert_eq!(one.len(), 1, "{one:#?}");
    assert_eq!(one[0]["count"], 2);

    // The whole log: today's lines first (three reads of her file, the
    // registration; split in two days if the test ran across midnight), then March.
    let all = all_pages(&sb, &ana_token, &ana, "", 100).await?;
    let days: Vec<&str> = all.iter().filter_map(|g| g["day"].as_str()).collect();
    assert!(
        days.windows(2).all(|w| w[0] >= w[1]),
        "newest day first: {days:?}"
    );
    let today: Vec<&Value> = all
        .iter()
        .filter(|g| g["resource_type"] == "person")
        .collect();
    let count = |action: &str| -> i64 {
        today
            .iter()
            .filter(|g| g["action"] == action)
            .filter_map(|g| g["count"].as_i64())
            .sum()
    };
    assert_eq!((count("read"), count("write")), (3, 1), "{today:#?}");
    assert!(today.len() <= 4, "one line per day and action: {today:#?}");
    assert_eq!(&all[all.len() - march.len()..], &march[..]);
    let sum: i64 = all.iter().filter_map(|g| g["count"].as_i64()).sum();
    assert_eq!(sum as usize, total, "every access in one line");

    // Pages of one, two, three: the same lines in the same order.
    for size in [1, 2, 3] {
        let paged = all_pages(&sb, &ana_token, &ana, "", size).await?;
        let (got, want): (Vec<String>, Vec<String>) = (
            paged.iter().map(key).collect(),
            all.iter().map(key).collect(),
        );
        assert_eq!(got, want, "pages of {size}");
    }

    // The admin of the following structure reads it; the other structure's
    // counselor and admin, and A's own counselor, do not.
    assert_eq!(all_pages(&sb, &admin_a, &ana, "", 100).await?, all);
    let summary_of = |p: &str| format!("/api/v1/people/{p}/access-log/summary");
    let (status, v) = get(&sb, &summary_of(&ana), &counselor_b).await?;
    assert_eq!(status, 403, "{v}");
    let (status, v) = get(&sb, &summary_of(&ana), &camille).await?;
    assert_eq!(status, 403, "counselors do not read the log: {v}");
    let (status, hidden) = get(&sb, &summary_of(&ana), &admin_b).await?;
    assert_eq!(status, 404, "{hidden}");
    let (status, missing) = get(
        &sb,
        &summary_of(&uuid::Uuid::now_v7().to_string()),
        &admin_b,
    )
    .await?;
    assert_eq!(status, 404);
    assert_eq!(hidden, missing, "a hidden person looks like a missing one");
    let other = person_token(&sb, &uuid::Uuid::now_v7().to_string()).await?;
    let (status, _) = get(&sb, &summary_of(&ana), &other).await?;
    assert_eq!(status, 404);

    // Bad input is refused by name; a token of the entry list is not one of these.
    let (_, list) = get(
        &sb,
        &format!("/api/v1/people/{ana}/access-log?page_size=1"),
        &ana_token,
    )
    .await?;
    let list_token = list["next_page_token"]
        .as_str()
        .context("a list token")?
        .to_owned();
    for (query, field) in [
        ("page_size=-1".to_owned(), "page_size"),
        ("page_size=501".to_owned(), "page_size"),
        ("page_token=!!".to_owned(), "page_token"),
        (format!("page_token={list_token}"), "page_token"),
        ("from=14-03-2026".to_owned(), "from"),
        ("to=2026-02-30".to_owned(), "to"),
        ("from=2026-03-14&to=2026-03-13".to_owned(), "to"),
    ] {
        let (status, v) = get(&sb, &format!("{}?{query}", summary_of(&ana)), &ana_token).await?;
        assert_eq!(status, 400, "{query}: {v}");
        assert_eq!(v["errors"][0]["field"], field, "{query}: {v}");
    }
    let (status, v) = get(
        &sb,
        "/api/v1/people/not-an-id/access-log/summary",
        &ana_token,
    )
    .await?;
    assert_eq!(status, 400);
    assert_eq!(v["errors"][0]["field"], "person_id");

    // Reading the summary (many times above) added nothing: a last read by the
    // counselor, recorded after them, is the only new entry.
    let (status, _) = get(&sb, &format!("/api/v1/people/{ana}"), &camille).await?;
    assert_eq!(status, 200);
    let log = until(&sb, Method::GET, &path, &ana_token, None, |s, v| {
        s == 200 && v["items"].as_array().is_some_and(|i| i.len() > total)
    })
    .await?;
    let items = log["items"].as_array().context("items")?;
    assert_eq!(items.len(), total + 1, "{log:#}");
    assert_eq!(items[0]["actor_user_id"], camille_id.as_str());
    let after = all_pages(&sb, &ana_token, &ana, "", 100).await?;
    let sum: i64 = after.iter().filter_map(|g| g["count"].as_i64()).sum();
    assert_eq!(sum as usize, total + 1);

    sb.stop().await
}
