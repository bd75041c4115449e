//! Two people changing the same directory service at once (SQLite and
//! PostgreSQL): changes of different fields are both kept; `If-Match` with
//! the `ETag` read refuses a write over someone else's change (412), and
//! nothing of it is stored.

use anyhow::{Context, Result};
use eva_platform::auth::Role;
use eva_tests::api::{post, structure};
use eva_tests::sandbox::{Backend, Sandbox};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// PATCHes `body` with an optional `If-Match`: status, `ETag`, body.
async fn change(
    sb: &Sandbox,
    path: &str,
    token: &str,
    if_match: Option<&str>,
    body: Value,
) -> Result<(StatusCode, Option<String>, Value)> {
    let mut req = sb.http.patch(sb.url(path)).bearer_auth(token).json(&body);
    if let Some(tag) = if_match {
        req = req.header("If-Match", tag);
    }
    let r = req.send().await?;
    let status = r.status();
    let tag = r
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Ok((status, tag, r.json().await?))
}

/// GETs `path`: the body and its `ETag`.
async fn read(sb: &Sandbox, path: &str, token: &str) -> Result<(Value, String)> {
    let r = sb.http.get(sb.url(path)).bearer_auth(token).send().await?;
    anyhow::ensure!(r.status() == StatusCode::OK, "{}", r.status());
    let tag = r
        .headers()
        .get("etag")
        .context("an ETag on the read")?
        .to_str()?
        .to_owned();
    Ok((r.json().await?, tag))
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
    let admin = sb
        .token("admin-a", vec![Role::StructureAdmin], vec![a.clone()])
        .await?;
    let other_admin = sb
        .token("admin-a2", vec![Role::StructureAdmin], vec![a.clone()])
        .await?;
    let (s, created) = post(
        &sb,
        "/api/v1/services",
        &admin,
        json!({
            "structure_id": a,
            "name": "Atelier vélo solidaire",
            "description": "Réparer son vélo avec un mécanicien bénévole et repartir avec un vélo révisé.",
            "thematiques": ["mobilite--entretenir-reparer-son-vehicule"],
            "commune": "Évreux",
            "postal_code": "27000",
            "commune_insee": "27229",
            "capacity": 8,
            "available_places": 3,
        }),
    )
    .await?;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let path = format!("/api/v1/services/{}", created["id"].as_str().context("id")?);

    // Two admins at once, each on a field of their own: both changes stay.
    for i in 0..8 {
        let (x, y) = tokio::join!(
            change(&sb, &path, &admin, None, json!({ "capacity": 20 + i })),
            change(
                &sb,
                &path,
                &other_admin,
                None,
                json!({ "available_places": i })
            ),
        );
        let (x, y) = (x?, y?);
        assert_eq!(
            (x.0, y.0),
            (StatusCode::OK, StatusCode::OK),
            "{} {}",
            x.2,
            y.2
        );
        let (now, _) = read(&sb, &path, &admin).await?;
        assert_eq!(
            (now["capacity"].as_i64(), now["available_places"].as_i64()),
            (Some(20 + i), Some(i)),
            "round {i}: a change was lost: {now}"
        );
    }

    // With the version read: the first write wins, the second is told and stores nothing.
    let (_, tag) = read(&sb, &path, &admin).await?;
    let (s, new_tag, v) = change(
        &sb,
        &path,
        &admin,
        Some(&tag),
        json!({ "name": "Atelier vélo d'Évreux" }),
    )
    .await?;
    assert_eq!(s, StatusCode::OK, "{v}");
    let new_tag = new_tag.context("an ETag on the write")?;
    assert_ne!(new_tag, tag);
    let (s, _, v) = change(
        &sb,
        &path,
        &other_admin,
        Some(&tag),
        json!({ "name": "Atelier de B" }),
    )
    .await?;
    assert_eq!(s, StatusCode::PRECONDITION_FAILED, "{v}");
    assert_eq!(v["errors"][0]["field"], "If-Match", "{v}");
    let (now, now_tag) = read(&sb, &path, &admin).await?;
    assert_eq!(now["name"], "Atelier vélo d'Évreux");
    assert_eq!(now_tag, new_tag, "the write's ETag is the version stored");

    // `*` is any version; a tag that is not one is named.
    let (s, _, v) = change(&sb, &path, &admin, Some("*"), json!({ "capacity": 9 })).await?;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, _, v) = change(&sb, &path, &admin, Some("abc"), json!({ "capacity": 10 })).await?;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["errors"][0]["field"], "If-Match", "{v}");
    assert_eq!(read(&sb, &path, &admin).await?.0["capacity"], 9);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_changes_on_sqlite() -> Result<()> {
    story(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_changes_on_postgres() -> Result<()> {
    story(Backend::Postgres).await
}
