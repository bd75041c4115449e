//! A space's members through the gateway, on SQLite and PostgreSQL: real
//! accounts (their names come from identity, asked with each member's own
//! token) join a territory space and a structure's private space; the members
//! see who is there, moderators first then by name, page by page; who is not
//! a member is refused (403), a private space of another structure is not
//! found (404); bad input is refused by name; and a space keeps a moderator:
//! its last one can neither step down nor leave (409) until another is
//! appointed.

use anyhow::{Context, Result, bail};
use eva_platform::auth::Role;
use eva_tests::api::{field_of, get, patch, post, request, siret, structure};
use eva_tests::sandbox::{Backend, Sandbox};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery staple 7";

/// Adds a member to `structure` and accepts the invitation: their access token
/// and user id.
async fn account(
    sb: &Sandbox,
    op: &str,
    structure: &str,
    email: &str,
    role: &str,
    name: &str,
) -> Result<(String, String)> {
    let (s, v) = post(
        sb,
        &format!("/api/v1/structures/{structure}/members"),
        op,
        json!({ "email": email, "display_name": name, "role": role }),
    )
    .await?;
    if s != StatusCode::CREATED {
        bail!("adding {email}: {s} {v}");
    }
    let code = v["invitation"]["code"].as_str().context("code")?;
    let user_id = v["member"]["user_id"]
        .as_str()
        .context("user id")?
        .to_owned();
    let body = json!({ "code": code, "password": PASSWORD, "display_name": name });
    let (s, v) = request(
        sb,
        Method::POST,
        "/api/v1/auth/invitations/accept",
        None,
        Some(&body),
    )
    .await?;
    if s != StatusCode::OK {
        bail!("accepting {email}: {s} {v}");
    }
    let body = json!({ "email": email, "password": PASSWORD });
    let (s, v) = request(sb, Method::POST, "/api/v1/auth/login", None, Some(&body)).await?;
    if s != StatusCode::OK {
        bail!("logging in {email}: {s} {v}");
    }
    let token = v["access_token"].as_str().context("token")?.to_owned();
    Ok((token, user_id))
}

/// Every member of `space`, following the pages of `size`.
async fn members(sb: &Sandbox, token: &str, space: &str, size: u32) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    let mut next = String::new();
    for _ in 0..20 {
        let (s, v) = get(
            sb,
            &format!("/api/v1/community/spaces/{space}/members?page_size={size}&page_token={next}"),
            token,
        )
        .await?;
        if s != StatusCode::OK {
            bail!("members of {space}: {s} {v}");
        }
        out.extend(v["items"].as_array().cloned().unwrap_or_default());
        match v["next_page_token"].as_str() {
            Some(t) => next = t.to_owned(),
            None => return Ok(out),
        }
    }
    bail!("more than 20 pages")
}

/// (name, role) of each member, in order.
fn who(items: &[Value]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|m| {
            (
                m["display_name"].as_str().unwrap_or("?").to_owned(),
                m["role"].as_str().unwrap_or("?").to_owned(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

async fn story(backend: Backend) -> Result<()> {
    let sb = Sandbox::start(backend).await?;
    let op_id = uuid::Uuid::now_v7().to_string();
    let op = sb.token(&op_id, vec![Role::Operator], vec![]).await?;
    let a = structure(&sb, &op, "Insertion Évreux", &siret(301), "association").await?;
    let b = structure(&sb, &op, "Tremplin Vernon", &siret(302), "association").await?;
    let (nour, nour_id) =
        account(&sb, &op, &a, "nour@a.example", "counselor", "Nour Benali").await?;
    let (sacha, sacha_id) = account(
        &sb,
        &op,
        &a,
        "sacha@a.example",
        "structure_admin",
        "Sacha Morel",
    )
    .await?;
    let (camille, camille_id) = account(
        &sb,
        &op,
        &b,
        "camille@b.example",
        "counselor",
        "Camille Durand",
    )
    .await?;
    let outsider = sb
        .token(
            &uuid::Uuid::now_v7().to_string(),
            vec![Role::Counselor],
            vec![b.clone()],
        )
        .await?;

    // The operator opens a territory space; three colleagues join.
    let (s, eure) = post(
        &sb,
        "/api/v1/community/spaces",
        &op,
        json!({ "name": "Eure", "kind": "territory", "territory_code": "27" }),
    )
    .await?;
    assert_eq!(s, StatusCode::CREATED, "{eure}");
    let eure = eure["id"].as_str().context("space id")?.to_owned();
    for t in [&camille, &sacha, &nour] {
        let (s, v) = post(
            &sb,
            &format!("/api/v1/community/spaces/{eure}/join"),
            t,
            json!({}),
        )
        .await?;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    let path = format!("/api/v1/community/spaces/{eure}/members");

    // The operator is its only moderator: leaving is refused until another is named.
    let (s, v) = post(
        &sb,
        &format!("/api/v1/community/spaces/{eure}/leave"),
        &op,
        json!({}),
    )
    .await?;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(
        v["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("nommez d'abord un autre modérateur"),
        "{v}"
    );
    let (s, v) = patch(
        &sb,
        &format!("{path}/{nour_id}"),
        &op,
        json!({ "role": "moderator" }),
    )
    .await?;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = post(
        &sb,
        &format!("/api/v1/community/spaces/{eure}/leave"),
        &op,
        json!({}),
    )
    .await?;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");

    // The members see who is there: moderators first, then by name, with their
    // structure; the same on pages of one.
    let all = members(&sb, &camille, &eure, 50).await?;
    assert_eq!(
        who(&all),
        pairs(&[
            ("Nour Benali", "moderator"),
            ("Camille Durand", "member"),
            ("Sacha Morel", "member"),
        ]),
        "{all:?}"
    );
    assert_eq!(all[0]["user_id"], nour_id.as_str());
    assert_eq!(all[0]["structure_id"], a.as_str());
    assert_eq!(all[0]["structure_name"], "Insertion Évreux");
    assert_eq!(all[1]["user_id"], camille_id.as_str());
    assert_eq!(all[1]["structure_name"], "Tremplin Vernon");
    assert!(all.iter().all(|m| m["joined_at"].is_string()), "{all:?}");
    assert_eq!(members(&sb, &nour, &eure, 1).await?, all);

    // Who has not joined is refused; so are bad page requests and ids, by name.
    let (s, v) = get(&sb, &path, &outsider).await?;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let (s, v) = get(&sb, &format!("{path}?page_size=-1"), &nour).await?;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(field_of(&v), "page_size");
    let (s, v) = get(&sb, &format!("{path}?page_token=zzz"), &nour).await?;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(field_of(&v), "page_token");
    let (s, v) = get(&sb, "/api/v1/community/spaces/nope/members", &nour).await?;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(field_of(&v), "space_id");
    let (s, v) = get(&sb, &format!("{path}?colour=red"), &nour).await?;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");

    // Nour is the last moderator: she can neither step down nor leave.
    let (s, v) = patch(
        &sb,
        &format!("{path}/{nour_id}"),
        &nour,
        json!({ "role": "member" }),
    )
    .await?;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(
        v["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("dernière personne qui modère"),
        "{v}"
    );
    let (s, v) = post(
        &sb,
        &format!("/api/v1/community/spaces/{eure}/leave"),
        &nour,
        json!({}),
    )
    .await?;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    // A plain member changes no role.
    let (s, v) = patch(
        &sb,
        &format!("{path}/{camille_id}"),
        &sacha,
        json!({ "role": "moderator" }),
    )
    .await?;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");

    // She appoints Sacha; then she may step down, and Sacha is the last one.
    let (s, v) = patch(
        &sb,
        &format!("{path}/{sacha_id}"),
        &nour,
        json!({ "role": "moderator" }),
    )
    .await?;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        who(&members(&sb, &camille, &eure, 50).await?),
        pairs(&[
            ("Nour Benali", "moderator"),
            ("Sacha Morel", "moderator"),
            ("Camille Durand", "member"),
        ])
    );
    let (s, v) = patch(
        &sb,
        &format!("{path}/{nour_id}"),
        &nour,
        json!({ "role": "member" }),
    )
    .await?;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["role"], "member");
    let (s, v) = patch(
        &sb,
        &format!("{path}/{sacha_id}"),
        &sacha,
        json!({ "role": "member" }),
    )
    .await?;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    // Demoting a plain member stays possible (nothing changes).
    let (s, v) = patch(
        &sb,
        &format!("{path}/{camille_id}"),
        &sacha,
        json!({ "role": "member" }),
    )
    .await?;
    assert_eq!(s, StatusCode::OK, "{v}");
    // A member who leaves is no longer listed.
    let (s, v) = post(
        &sb,
        &format!("/api/v1/community/spaces/{eure}/leave"),
        &camille,
        json!({}),
    )
    .await?;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    assert_eq!(
        who(&members(&sb, &sacha, &eure, 50).await?),
        pairs(&[("Sacha Morel", "moderator"), ("Nour Benali", "member")])
    );
    let (s, _) = get(&sb, &path, &camille).await?;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // A structure's private space: its members only; another structure does not see it.
    let (s, own) = post(
        &sb,
        "/api/v1/community/spaces",
        &sacha,
        json!({ "name": "Équipe d'Évreux", "kind": "structure", "structure_id": a }),
    )
    .await?;
    assert_eq!(s, StatusCode::CREATED, "{own}");
    let own = own["id"].as_str().context("space id")?.to_owned();
    let (s, v) = post(
        &sb,
        &format!("/api/v1/community/spaces/{own}/join"),
        &nour,
        json!({}),
    )
    .await?;
    assert_eq!(s, StatusCode::OK, "{v}");
    let listed = members(&sb, &nour, &own, 50).await?;
    assert_eq!(
        who(&listed),
        pairs(&[("Sacha Morel", "moderator"), ("Nour Benali", "member")])
    );
    assert!(
        listed
            .iter()
            .all(|m| m["structure_name"] == "Insertion Évreux"),
        "{listed:?}"
    );
    let (s, v) = get(
        &sb,
        &format!("/api/v1/community/spaces/{own}/members"),
        &camille,
    )
    .await?;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    let (s, v) = post(
        &sb,
        &format!("/api/v1/community/spaces/{own}/leave"),
        &sacha,
        json!({}),
    )
    .await?;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");

    sb.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn space_members_on_sqlite() -> Result<()> {
    story(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread")]
async fn space_members_on_postgres() -> Result<()> {
    story(Backend::Postgres).await
}
