//! Accounts, sessions and members end to end, through the gateway: invitations,
//! password login with lockout, refresh-token rotation and theft detection,
//! token refusals, the authorisation matrix of every account route, and bad
//! input. The story runs on SQLite and on PostgreSQL.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use eva_platform::auth::{Role, TokenSigner};
use eva_proto::identity::v1 as pb;
use eva_tests::api::{siret, structure};
use eva_tests::sandbox::{Backend, Sandbox};
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

/// An HTTP answer: status, headers, JSON body (`null` when empty).
struct Reply {
    status: u16,
    headers: HeaderMap,
    body: Value,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn str(&self, pointer: &str) -> String {
        self.body
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    }
}

// Not `eva_tests::api::send`: these stories read headers and tell an empty body from JSON.
async fn send(
    sb: &Sandbox,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Result<Reply> {
    let mut req = sb.http.request(method, sb.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await?;
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await?;
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    Ok(Reply {
        status,
        headers,
        body,
    })
}

async fn get(sb: &Sandbox, path: &str, token: Option<&str>) -> Result<Reply> {
    send(sb, Method::GET, path, token, None).await
}

async fn post(sb: &Sandbox, path: &str, token: Option<&str>, body: Value) -> Result<Reply> {
    send(sb, Method::POST, path, token, Some(body)).await
}

async fn delete(sb: &Sandbox, path: &str, token: Option<&str>) -> Result<Reply> {
    send(sb, Method::DELETE, path, token, None).await
}

async fn add_member(
    sb: &Sandbox,
    token: &str,
    structure: &str,
    email: &str,
    role: &str,
    display_name: &str,
) -> Result<Reply> {
    post(
        sb,
        &format!("/api/v1/structures/{structure}/members"),
        Some(token),
        json!({ "email": email, "display_name": display_name, "role": role }),
    )
    .await
}

/// Invites `email` with the operator's token and accepts with `password`:
/// the account's id and its first session.
async fn account(
    sb: &Sandbox,
    op: &str,
    structure: &str,
    email: &str,
    role: &str,
    password: &str,
) -> Result<(String, Value)> {
    let r = add_member(sb, op, structure, email, role, "Dominique Test").await?;
    assert_eq!(r.status, 201, "{}", r.body);
    let accepted = accept(sb, &r.str("/invitation/code"), password, None).await?;
    assert_eq!(accepted.status, 200, "{}", accepted.body);
    Ok((r.str("/member/user_id"), accepted.body))
}

/// Accepts an invitation code without a token.
async fn accept(sb: &Sandbox, code: &str, password: &str, name: Option<&str>) -> Result<Reply> {
    let body = json!({ "code": code, "password": password, "display_name": name });
    post(sb, "/api/v1/auth/invitations/accept", None, body).await
}

/// What an invitation code is for, asked without a token.
async fn invitation(sb: &Sandbox, code: &str) -> Result<Reply> {
    get(sb, &format!("/api/v1/invitations/{code}"), None).await
}

async fn login(sb: &Sandbox, email: &str, password: &str) -> Result<Reply> {
    post(
        sb,
        "/api/v1/auth/login",
        None,
        json!({ "email": email, "password": password }),
    )
    .await
}

async fn member_ids(sb: &Sandbox, token: &str, structure: &str) -> Result<Vec<(String, String)>> {
    let r = get(
        sb,
        &format!("/api/v1/structures/{structure}/members"),
        Some(token),
    )
    .await?;
    assert_eq!(r.status, 200, "{}", r.body);
    Ok(r.body["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            (
                m["user_id"].as_str().unwrap_or_default().to_owned(),
                format!("{}:{}", m["status"], m["roles"]),
            )
        })
        .collect())
}

const PASSWORD: &str = "un jardin sous la pluie";

async fn story(backend: Backend) -> Result<()> {
    let sb = Sandbox::start(backend).await?;
    let op = sb.token("ops-1", vec![Role::Operator], vec![]).await?;
    let a = structure(&sb, &op, "Chantier du Vexin", &siret(1), "aci").await?;

    // The operator adds the structure's admin: an invitation code, shown once.
    let r = add_member(
        &sb,
        &op,
        &a,
        "Alice.Admin@Example.org",
        "structure_admin",
        "Alice Admin",
    )
    .await?;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.body["member"]["status"], "invited");
    assert_eq!(r.body["member"]["email"], "alice.admin@example.org");
    assert_eq!(r.body["member"]["roles"], json!(["structure_admin"]));
    let admin_id = r.str("/member/user_id");
    let code = r.str("/invitation/code");
    assert_eq!(code.len(), 26);

    // What the code is for, without a token.
    let info = invitation(&sb, &code).await?;
    assert_eq!(info.status, 200, "{}", info.body);
    assert_eq!(info.body["structure"]["id"], a.as_str());
    assert_eq!(info.body["structure"]["name"], "Chantier du Vexin");
    assert_eq!(info.body["role"], "structure_admin");
    assert_eq!(info.body["password_required"], true);
    // Typed loosely (lower case, dashes), it is the same code.
    let typed = format!("{}-{}", &code[..10].to_lowercase(), &code[10..]);
    assert_eq!(invitation(&sb, &typed).await?.status, 200);

    // Accepting sets the password and opens a session.
    let s = accept(&sb, &code, PASSWORD, None).await?;
    assert_eq!(s.status, 200, "{}", s.body);
    assert_eq!(s.header("cache-control"), Some("no-store"));
    assert_eq!(s.body["token_type"], "Bearer");
    assert_eq!(s.body["expires_in"], 900);
    assert!(!s.str("/refresh_token").is_empty());
    assert_eq!(s.body["user"]["user_id"], admin_id.as_str());
    assert_eq!(s.body["user"]["status"], "active");
    assert_eq!(s.body["user"]["roles"], json!(["structure_admin"]));
    assert_eq!(s.body["user"]["structures"][0]["name"], "Chantier du Vexin");
    let admin = s.str("/access_token");
    // A code works once.
    let again = accept(&sb, &code, PASSWORD, None).await?;
    assert_eq!(again.status, 404, "{}", again.body);
    assert_eq!(invitation(&sb, &code).await?.status, 404);

    // The admin adds a counselor, who gives their name when accepting.
    let r = add_member(
        &sb,
        &admin,
        &a,
        "camille.conseil@example.org",
        "counselor",
        "",
    )
    .await?;
    assert_eq!(r.status, 201, "{}", r.body);
    let counselor_id = r.str("/member/user_id");
    let code = r.str("/invitation/code");
    let no_name = accept(&sb, &code, "deux chats au soleil", None).await?;
    assert_eq!(no_name.status, 400);
    assert_eq!(no_name.body["errors"][0]["field"], "display_name");
    let s = accept(&sb, &code, "deux chats au soleil", Some("Camille Conseil")).await?;
    assert_eq!(s.status, 200, "{}", s.body);

    // The counselor logs in; /me shows their role and structure.
    let s = login(&sb, "camille.conseil@example.org", "deux chats au soleil").await?;
    assert_eq!(s.status, 200, "{}", s.body);
    let counselor = s.str("/access_token");
    let me = get(&sb, "/api/v1/me", Some(&counselor)).await?;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.body["user_id"], counselor_id.as_str());
    assert_eq!(me.body["display_name"], "Camille Conseil");
    assert_eq!(me.body["email"], "camille.conseil@example.org");
    assert_eq!(me.body["roles"], json!(["counselor"]));
    assert_eq!(
        me.body["structures"],
        json!([{ "id": a, "name": "Chantier du Vexin", "roles": ["counselor"] }])
    );
    // The session's token works on the rest of the API.
    assert_eq!(
        get(&sb, "/api/v1/structures", Some(&counselor))
            .await?
            .status,
        200
    );
    let members = member_ids(&sb, &counselor, &a).await?;
    assert_eq!(members.len(), 2, "{members:?}");
    // Page by page, the same members.
    let mut paged = Vec::new();
    let mut token = String::new();
    loop {
        let path = format!("/api/v1/structures/{a}/members?page_size=1&page_token={token}");
        let r = get(&sb, &path, Some(&counselor)).await?;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["items"].as_array().map(Vec::len), Some(1));
        paged.push(r.str("/items/0/user_id"));
        token = r.str("/next_page_token");
        if token.is_empty() {
            break;
        }
    }
    let all: Vec<String> = members.into_iter().map(|(id, _)| id).collect();
    assert_eq!(paged, all);
    // The same role twice is a conflict.
    let r = add_member(
        &sb,
        &op,
        &a,
        "alice.admin@example.org",
        "structure_admin",
        "",
    )
    .await?;
    assert_eq!(r.status, 409, "{}", r.body);

    // An existing account invited elsewhere keeps its password: accepting asks for it.
    let b = structure(&sb, &op, "Association Tremplin", &siret(2), "association").await?;
    let r = add_member(
        &sb,
        &op,
        &b,
        "alice.admin@example.org",
        "counselor",
        "ignored",
    )
    .await?;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["member"]["user_id"], admin_id.as_str());
    assert_eq!(r.body["member"]["status"], "active");
    assert_eq!(r.body["member"]["display_name"], "Alice Admin");
    let code = r.str("/invitation/code");
    let info = invitation(&sb, &code).await?;
    assert_eq!(info.body["password_required"], false);
    let wrong = accept(&sb, &code, "not my password at all", None).await?;
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    let s = accept(&sb, &code, PASSWORD, None).await?;
    assert_eq!(s.status, 200, "{}", s.body);
    assert_eq!(
        s.body["user"]["structures"].as_array().map(Vec::len),
        Some(2)
    );
    // Admin of A and counselor of B: the token says structure_admin and B, but
    // identity checks the pair, so B's members stay out of reach.
    let both = s.str("/access_token");
    let r = add_member(&sb, &both, &b, "intrus@example.org", "counselor", "").await?;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(member_ids(&sb, &op, &b).await?.len(), 1);
    assert_eq!(
        get(&sb, &format!("/api/v1/structures/{b}/members"), Some(&both))
            .await?
            .status,
        200
    );

    // The last admin cannot remove themself.
    let r = delete(
        &sb,
        &format!("/api/v1/structures/{a}/members/{admin_id}"),
        Some(&admin),
    )
    .await?;
    assert_eq!(r.status, 409, "{}", r.body);

    // Removing the counselor ends their sessions and disables the account.
    let refresh = s.str("/refresh_token");
    let counselor_session =
        login(&sb, "camille.conseil@example.org", "deux chats au soleil").await?;
    let r = delete(
        &sb,
        &format!("/api/v1/structures/{a}/members/{counselor_id}"),
        Some(&admin),
    )
    .await?;
    assert_eq!(r.status, 204, "{}", r.body);
    let r = post(
        &sb,
        "/api/v1/auth/refresh",
        None,
        json!({ "refresh_token": counselor_session.str("/refresh_token") }),
    )
    .await?;
    assert_eq!(r.status, 401, "{}", r.body);
    let r = login(&sb, "camille.conseil@example.org", "deux chats au soleil").await?;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(member_ids(&sb, &admin, &a).await?.len(), 1);
    // The admin's own session is untouched.
    let r = post(
        &sb,
        "/api/v1/auth/refresh",
        None,
        json!({ "refresh_token": refresh }),
    )
    .await?;
    assert_eq!(r.status, 200, "{}", r.body);
    // Other services learn that the account is gone.
    let deleted = wait_event(&sb, "eva.identity.user.deleted").await?;
    let event: pb::UserDeleted = prost::Message::decode(deleted.as_slice())?;
    assert_eq!(event.user_id, counselor_id);

    // Invited again, the account sets a new password.
    let r = add_member(
        &sb,
        &admin,
        &a,
        "camille.conseil@example.org",
        "counselor",
        "",
    )
    .await?;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["member"]["user_id"], counselor_id.as_str());
    assert_eq!(r.body["member"]["status"], "invited");
    let info = invitation(&sb, &r.str("/invitation/code")).await?;
    assert_eq!(info.body["password_required"], true);
    // Inviting again before acceptance replaces the pending code.
    let first = r.str("/invitation/code");
    let r = add_member(
        &sb,
        &admin,
        &a,
        "camille.conseil@example.org",
        "counselor",
        "",
    )
    .await?;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(invitation(&sb, &first).await?.status, 404);
    assert_eq!(
        invitation(&sb, &r.str("/invitation/code")).await?.status,
        200
    );

    // The first operator of an installation: `eva operator invite`, then a password.
    let inv = eva_identity::invite_operator(&sb.config, "olga.ops@example.org", "Olga").await?;
    let info = invitation(&sb, &inv.code).await?;
    assert_eq!(info.status, 200, "{}", info.body);
    assert_eq!(info.body["role"], "operator");
    assert!(info.body["structure"].is_null());
    let s = accept(&sb, &inv.code, "la mer est calme ce soir", None).await?;
    assert_eq!(s.status, 200, "{}", s.body);
    assert_eq!(s.body["user"]["roles"], json!(["operator"]));
    assert_eq!(s.body["user"]["structures"], json!([]));
    let olga = s.str("/access_token");
    structure(&sb, &olga, "CCAS de Vernon", &siret(3), "ccas").await?;
    sb.stop().await
}

async fn set_roles(
    sb: &Sandbox,
    token: &str,
    structure: &str,
    user: &str,
    roles: Value,
) -> Result<Reply> {
    send(
        sb,
        Method::PATCH,
        &format!("/api/v1/structures/{structure}/members/{user}"),
        Some(token),
        Some(json!({ "roles": roles })),
    )
    .await
}

/// A member's roles change in place: the account, its password and its posts
/// stay (no `eva.identity.user.deleted`, which would anonymise them in
/// community); a role lost ends the sessions (the next login carries the new
/// roles, with the same password); the last administrator keeps the role;
/// roles are checked against the structure's kind.
#[tokio::test]
async fn member_roles_change_in_place() -> Result<()> {
    let sb = Sandbox::start(Backend::Sqlite).await?;
    let op = sb.token("ops-1", vec![Role::Operator], vec![]).await?;
    let a = structure(&sb, &op, "Chantier A", &siret(1), "aci").await?;
    let (admin_id, s) = account(
        &sb,
        &op,
        &a,
        "alix.admin@example.org",
        "structure_admin",
        PASSWORD,
    )
    .await?;
    let admin = s["access_token"].as_str().unwrap_or_default().to_owned();
    let camille_password = "deux chats au soleil";
    let (camille, _) = account(
        &sb,
        &op,
        &a,
        "camille.conseil@example.org",
        "counselor",
        camille_password,
    )
    .await?;

    // The last administrator cannot lose the role: 409, in plain French.
    let r = set_roles(&sb, &admin, &a, &admin_id, json!(["counselor"])).await?;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(
        r.str("/detail").contains("dernier administrateur"),
        "{}",
        r.body
    );

    // Bad roles name the field and change nothing.
    for bad in [json!([]), json!(["partner"]), json!(["chef"])] {
        let r = set_roles(&sb, &admin, &a, &camille, bad.clone()).await?;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        assert_eq!(r.body["errors"][0]["field"], "roles", "{bad}: {}", r.body);
    }
    let r = set_roles(&sb, &admin, &a, "not-an-id", json!(["counselor"])).await?;
    assert_eq!(r.status, 400, "{}", r.body);
    let stranger = uuid::Uuid::now_v7().to_string();
    let r = set_roles(&sb, &admin, &a, &stranger, json!(["counselor"])).await?;
    assert_eq!(r.status, 404, "{}", r.body);

    // Camille becomes admin too, then the first admin may step down.
    let r = set_roles(
        &sb,
        &admin,
        &a,
        &camille,
        json!(["counselor", "structure_admin"]),
    )
    .await?;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["status"], "active", "{}", r.body);
    let mut roles: Vec<String> = serde_json::from_value(r.body["roles"].clone())?;
    roles.sort();
    assert_eq!(roles, ["counselor", "structure_admin"]);
    let camille_session = login(&sb, "camille.conseil@example.org", camille_password).await?;
    assert_eq!(camille_session.status, 200, "{}", camille_session.body);
    assert!(
        camille_session.body["user"]["roles"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r == "structure_admin")),
        "{}",
        camille_session.body
    );
    let camille_admin = camille_session.str("/access_token");
    let r = set_roles(&sb, &camille_admin, &a, &admin_id, json!(["counselor"])).await?;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["roles"], json!(["counselor"]), "{}", r.body);

    // Alix lost a role: the sessions end, the account and password stay, and
    // the new login carries the new role only.
    let r = post(
        &sb,
        "/api/v1/auth/refresh",
        None,
        json!({ "refresh_token": s["refresh_token"] }),
    )
    .await?;
    assert_eq!(r.status, 401, "{}", r.body);
    let again = login(&sb, "alix.admin@example.org", PASSWORD).await?;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.body["user"]["roles"], json!(["counselor"]));
    // In identity the change holds at once, even with the old access token.
    let r = add_member(&sb, &admin, &a, "x@example.org", "counselor", "").await?;
    assert_eq!(r.status, 403, "{}", r.body);
    // Camille gained a role without losing one: her session goes on.
    let r = post(
        &sb,
        "/api/v1/auth/refresh",
        None,
        json!({ "refresh_token": camille_session.str("/refresh_token") }),
    )
    .await?;
    assert_eq!(r.status, 200, "{}", r.body);

    let members = member_ids(&sb, &op, &a).await?;
    assert_eq!(members.len(), 2, "{members:?}");
    assert!(
        members.iter().all(|(_, s)| s.starts_with("\"active\"")),
        "{members:?}"
    );

    // Invited, not yet accepted: the roles change in place and the same code
    // now says the new role; accepting it gives exactly those roles.
    let invited = add_member(
        &sb,
        &camille_admin,
        &a,
        "noa.nouvelle@example.org",
        "counselor",
        "Noa",
    )
    .await?;
    assert_eq!(invited.status, 201, "{}", invited.body);
    let (noa, code) = (
        invited.str("/member/user_id"),
        invited.str("/invitation/code"),
    );
    let r = set_roles(&sb, &camille_admin, &a, &noa, json!(["structure_admin"])).await?;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["status"], "invited", "{}", r.body);
    let info = invitation(&sb, &code).await?;
    assert_eq!(info.status, 200, "{}", info.body);
    assert_eq!(info.body["role"], "structure_admin", "{}", info.body);
    let accepted = accept(&sb, &code, "trois merles sur un fil", None).await?;
    assert_eq!(accepted.status, 200, "{}", accepted.body);
    assert_eq!(
        accepted.body["user"]["roles"],
        json!(["structure_admin"]),
        "{}",
        accepted.body
    );

    // No account was deleted: community keeps the authors. The outbox is
    // published in order, so once an event written after the changes is on
    // the bus, a user.deleted written by them would be too.
    let client = sb.nats.connect().await?;
    let js = async_nats::jetstream::new(client);
    let stream = js.get_stream("EVA_IDENTITY").await?;
    let subject = "eva.identity.structure.created";
    wait_event(&sb, subject).await?;
    let before = stream
        .get_last_raw_message_by_subject(subject)
        .await?
        .sequence;
    structure(&sb, &op, "Chantier témoin", &siret(2), "aci").await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while stream
        .get_last_raw_message_by_subject(subject)
        .await?
        .sequence
        == before
    {
        if Instant::now() > deadline {
            bail!("the later structure.created never reached the bus");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let deleted = stream
        .get_last_raw_message_by_subject("eva.identity.user.deleted")
        .await;
    assert!(deleted.is_err(), "a user.deleted was published");
    sb.stop().await
}

/// The body of the last event on `subject`, waiting for the relay.
async fn wait_event(sb: &Sandbox, subject: &str) -> Result<Vec<u8>> {
    let client = sb.nats.connect().await?;
    let js = async_nats::jetstream::new(client);
    let stream = js.get_stream("EVA_IDENTITY").await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match stream.get_last_raw_message_by_subject(subject).await {
            Ok(m) => return Ok(m.payload.to_vec()),
            Err(e) if Instant::now() > deadline => bail!("no {subject} event: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

#[tokio::test]
async fn story_on_sqlite() -> Result<()> {
    story(Backend::Sqlite).await
}

#[tokio::test]
async fn story_on_postgres() -> Result<()> {
    story(Backend::Postgres).await
}

#[tokio::test]
async fn failed_logins_lock_the_account_and_never_tell_whether_it_exists() -> Result<()> {
    let sb = Sandbox::start(Backend::Sqlite).await?;
    let op = sb.token("ops-1", vec![Role::Operator], vec![]).await?;
    let a = structure(&sb, &op, "Chantier du Vexin", &siret(1), "aci").await?;
    let email = "lou.lock@example.org";
    account(&sb, &op, &a, email, "counselor", PASSWORD).await?;

    let unknown = login(&sb, "personne@example.org", PASSWORD).await?;
    assert_eq!(unknown.status, 401, "{}", unknown.body);
    assert_eq!(
        unknown.header("content-type"),
        Some("application/problem+json")
    );
    let same_as_unknown = |r: &Reply| {
        assert_eq!(r.status, 401, "{}", r.body);
        assert_eq!(
            r.body, unknown.body,
            "a wrong password must look like an unknown e-mail"
        );
    };

    // A success resets the count: 4 failures, success, 4 failures, success.
    for _ in 0..2 {
        for _ in 0..4 {
            same_as_unknown(&login(&sb, email, "mauvais mot de passe").await?);
        }
        assert_eq!(login(&sb, email, PASSWORD).await?.status, 200);
    }
    // Five in a row lock it: the next attempt, even with the right password, waits.
    for _ in 0..5 {
        same_as_unknown(&login(&sb, email, "mauvais mot de passe").await?);
    }
    let locked = login(&sb, email, PASSWORD).await?;
    assert_eq!(locked.status, 429, "{}", locked.body);
    assert_eq!(
        locked.header("content-type"),
        Some("application/problem+json")
    );
    let wait: u64 = locked.header("retry-after").unwrap_or_default().parse()?;
    assert!((1..=30).contains(&wait), "Retry-After: {wait}");
    assert!(
        locked.str("/detail").contains(&format!("{wait} s")),
        "{}",
        locked.body
    );
    // The admin sees it locked.
    let members = member_ids(&sb, &op, &a).await?;
    assert!(members[0].1.starts_with("\"locked\""), "{members:?}");

    // An account whose invitation is pending cannot log in, and says nothing more.
    let r = add_member(&sb, &op, &a, "pending@example.org", "counselor", "P").await?;
    assert_eq!(r.status, 201);
    same_as_unknown(&login(&sb, "pending@example.org", PASSWORD).await?);

    // Missing fields are named.
    let r = post(
        &sb,
        "/api/v1/auth/login",
        None,
        json!({ "email": "", "password": "x" }),
    )
    .await?;
    assert_eq!(
        (r.status, r.body["errors"][0]["field"].clone()),
        (400, json!("email"))
    );
    let r = post(
        &sb,
        "/api/v1/auth/login",
        None,
        json!({ "email": email, "password": "" }),
    )
    .await?;
    assert_eq!(
        (r.status, r.body["errors"][0]["field"].clone()),
        (400, json!("password"))
    );
    let r = post(&sb, "/api/v1/auth/login", None, json!({ "email": email })).await?;
    assert_eq!(
        (r.status, r.body["errors"][0]["field"].clone()),
        (400, json!("body"))
    );
    sb.stop().await
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_reused_one_ends_the_session() -> Result<()> {
    let sb = Sandbox::start(Backend::Sqlite).await?;
    let op = sb.token("ops-1", vec![Role::Operator], vec![]).await?;
    let a = structure(&sb, &op, "Chantier du Vexin", &siret(1), "aci").await?;
    let email = "rene.refresh@example.org";
    let (_, first) = account(&sb, &op, &a, email, "counselor", PASSWORD).await?;
    let refresh = |token: String| refresh(&sb, token);
    let r0 = first["refresh_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();

    // Each refresh gives a new pair; the new access token works.
    let s1 = refresh(r0.clone()).await?;
    assert_eq!(s1.status, 200, "{}", s1.body);
    assert_eq!(s1.header("cache-control"), Some("no-store"));
    let r1 = s1.str("/refresh_token");
    assert_ne!(r1, r0);
    assert_eq!(s1.body["user"]["roles"], json!(["counselor"]));
    assert_eq!(
        get(&sb, "/api/v1/me", Some(&s1.str("/access_token")))
            .await?
            .status,
        200
    );

    // The old token again: someone copied it. The whole session ends.
    let reused = refresh(r0).await?;
    assert_eq!(reused.status, 401, "{}", reused.body);
    assert_eq!(
        refresh(r1).await?.status,
        401,
        "the newer token is revoked too"
    );

    // Logout ends one session, not the others.
    let s2 = login(&sb, email, PASSWORD).await?;
    let s3 = login(&sb, email, PASSWORD).await?;
    let r2 = refresh(s2.str("/refresh_token")).await?;
    assert_eq!(r2.status, 200);
    let r = post(
        &sb,
        "/api/v1/auth/logout",
        None,
        json!({ "refresh_token": r2.str("/refresh_token") }),
    )
    .await?;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(refresh(r2.str("/refresh_token")).await?.status, 401);
    assert_eq!(refresh(s3.str("/refresh_token")).await?.status, 200);
    // Logging out twice, or with an unknown token, is not an error.
    let r = post(
        &sb,
        "/api/v1/auth/logout",
        None,
        json!({ "refresh_token": r2.str("/refresh_token") }),
    )
    .await?;
    assert_eq!(r.status, 204);

    assert_eq!(refresh("garbage".into()).await?.status, 401);
    let r = refresh(String::new()).await?;
    assert_eq!(
        (r.status, r.body["errors"][0]["field"].clone()),
        (400, json!("refresh_token"))
    );
    sb.stop().await
}

async fn refresh(sb: &Sandbox, token: String) -> Result<Reply> {
    post(
        sb,
        "/api/v1/auth/refresh",
        None,
        json!({ "refresh_token": token }),
    )
    .await
}

/// base64url without padding, as JWTs use it.
fn b64(v: &Value) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = serde_json::to_vec(v).unwrap_or_default();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

#[tokio::test]
async fn bad_tokens_are_refused_with_a_clear_reason() -> Result<()> {
    let sb = Sandbox::start(Backend::Sqlite).await?;
    let op = sb.token("ops-1", vec![Role::Operator], vec![]).await?;
    let a = structure(&sb, &op, "Chantier du Vexin", &siret(1), "aci").await?;
    let counselor = sb
        .token("c-1", vec![Role::Counselor], vec![a.clone()])
        .await?;
    let claims = |roles| {
        TokenSigner::claims(
            &sb.config.auth.issuer,
            &sb.config.auth.audience,
            "c-1",
            roles,
            vec![a.clone()],
            Duration::from_secs(600),
        )
    };

    // Tampered: the counselor's token with an operator's payload.
    let parts: Vec<&str> = counselor.split('.').collect();
    let forged = serde_json::to_value(claims(vec![Role::Operator]))?;
    let tampered = format!("{}.{}.{}", parts[0], b64(&forged), parts[2]);
    // Expired an hour ago, signed with the real key.
    let mut old = claims(vec![Role::Counselor]);
    old.iat -= 7200;
    old.exp -= 4200;
    let expired = eva_identity::sign_claims(&sb.config, &old).await?;
    let mut other = claims(vec![Role::Counselor]);
    other.aud = "another-application".into();
    let wrong_audience = eva_identity::sign_claims(&sb.config, &other).await?;
    let mut other = claims(vec![Role::Counselor]);
    other.iss = "someone-else".into();
    let wrong_issuer = eva_identity::sign_claims(&sb.config, &other).await?;
    // `alg: none`, with and without the key id; and a MAC algorithm.
    let jwks = get(&sb, "/.well-known/jwks.json", None).await?;
    let kid = jwks.body["keys"][0]["kid"].clone();
    assert!(kid.is_string(), "{}", jwks.body);
    let payload = b64(&serde_json::to_value(claims(vec![Role::Operator]))?);
    let none = format!(
        "{}.{payload}.",
        b64(&json!({ "alg": "none", "typ": "JWT" }))
    );
    let none_kid = format!("{}.{payload}.", b64(&json!({ "alg": "none", "kid": kid })));
    let hs256 = format!(
        "{}.{payload}.{}",
        b64(&json!({ "alg": "HS256", "kid": kid })),
        parts[2]
    );
    let stranger = TokenSigner::generate().sign(&claims(vec![Role::Operator]));

    let cases: [(&str, Option<&str>, &str); 10] = [
        ("missing", None, "missing"),
        ("garbage", Some("not-a-jwt"), "well-formed"),
        ("tampered payload", Some(&tampered), "signature"),
        ("expired", Some(&expired), "expired"),
        (
            "wrong audience",
            Some(&wrong_audience),
            "not issued for EVA",
        ),
        ("wrong issuer", Some(&wrong_issuer), "not issued for EVA"),
        ("alg none", Some(&none), "well-formed"),
        ("alg none with kid", Some(&none_kid), "well-formed"),
        ("alg HS256", Some(&hs256), "well-formed"),
        ("unknown key", Some(&stranger), "unknown key"),
    ];
    for path in [
        "/api/v1/me".to_owned(),
        format!("/api/v1/structures/{a}/members"),
    ] {
        assert_eq!(
            get(&sb, &path, Some(&counselor)).await?.status,
            200,
            "{path}"
        );
        for (name, token, reason) in &cases {
            let r = get(&sb, &path, *token).await?;
            assert_eq!(r.status, 401, "{name} on {path}: {}", r.body);
            assert_eq!(
                r.header("content-type"),
                Some("application/problem+json"),
                "{name}"
            );
            assert_eq!(r.body["status"], 401);
            assert!(r.str("/detail").contains(reason), "{name}: {}", r.body);
        }
    }
    sb.stop().await
}

/// Callers of the matrix, in the order of each row's statuses.
const CALLERS: [&str; 8] = [
    "none",
    "person",
    "counselor A",
    "admin A",
    "admin B",
    "partner",
    "analyst",
    "operator",
];

/// Route × target structure → the status each caller gets. "B's member via A"
/// aims at a member of B through A's address: not a member there. The public
/// routes carry their credential in the request: a token changes nothing.
#[rustfmt::skip]
const MATRIX: &[(&str, &str, [u16; 8])] = &[
    //                              none person coun.A adm.A adm.B partner analyst operator
    ("list members",        "A",  [401, 403,   200,   200,  403,  403,    403,    200]),
    ("list members",        "B",  [401, 403,   403,   403,  200,  403,    403,    200]),
    ("add member",          "A",  [401, 403,   403,   201,  403,  403,    403,    201]),
    ("add member",          "B",  [401, 403,   403,   403,  201,  403,    403,    201]),
    ("remove member",       "A",  [401, 403,   403,   204,  403,  403,    403,    204]),
    ("remove member",       "B",  [401, 403,   403,   403,  204,  403,    403,    204]),
    ("B's member via A",    "A",  [401, 403,   403,   404,  403,  403,    403,    404]),
    ("change roles",        "A",  [401, 403,   403,   200,  403,  403,    403,    200]),
    ("change roles",        "B",  [401, 403,   403,   403,  200,  403,    403,    200]),
    ("B's roles via A",     "A",  [401, 403,   403,   404,  403,  403,    403,    404]),
    ("me",                  "-",  [401, 200,   200,   200,  200,  200,    200,    200]),
    ("get invitation",      "-",  [200, 200,   200,   200,  200,  200,    200,    200]),
    ("login",               "-",  [200, 200,   200,   200,  200,  200,    200,    200]),
    ("refresh unknown",     "-",  [401, 401,   401,   401,  401,  401,    401,    401]),
    ("logout unknown",      "-",  [204, 204,   204,   204,  204,  204,    204,    204]),
    ("accept unknown code", "-",  [404, 404,   404,   404,  404,  404,    404,    404]),
];

/// The matrix's fixtures: four structures and members no denied call may touch.
struct World {
    op: String,
    a: String,
    b: String,
    member_a: String,
    member_b: String,
    pending_code: String,
    tokens: Vec<Option<String>>,
}

impl World {
    async fn new(sb: &Sandbox) -> Result<Self> {
        let op = sb.token("ops-1", vec![Role::Operator], vec![]).await?;
        let a = structure(sb, &op, "Chantier A", &siret(1), "aci").await?;
        let b = structure(sb, &op, "Association B", &siret(2), "association").await?;
        let p = structure(sb, &op, "Partenaire P", &siret(3), "partner").await?;
        let d = structure(sb, &op, "Département D", &siret(4), "departement").await?;
        let r = add_member(sb, &op, &a, "standing.a@example.org", "counselor", "A").await?;
        let (member_a, pending_code) = (r.str("/member/user_id"), r.str("/invitation/code"));
        let r = add_member(sb, &op, &b, "standing.b@example.org", "counselor", "B").await?;
        let member_b = r.str("/member/user_id");
        account(sb, &op, &a, "login.a@example.org", "counselor", PASSWORD).await?;
        let as_role = |name: &'static str, role: Role, s: &String| {
            let s = s.clone();
            async move { sb.token(name, vec![role], vec![s]).await }
        };
        let tokens = vec![
            None,
            Some(sb.token("person-1", vec![Role::Person], vec![]).await?),
            Some(as_role("counselor-a", Role::Counselor, &a).await?),
            Some(as_role("admin-a", Role::StructureAdmin, &a).await?),
            Some(as_role("admin-b", Role::StructureAdmin, &b).await?),
            Some(as_role("partner-p", Role::Partner, &p).await?),
            Some(as_role("analyst-d", Role::Analyst, &d).await?),
            Some(op.clone()),
        ];
        Ok(Self {
            op,
            a,
            b,
            member_a,
            member_b,
            pending_code,
            tokens,
        })
    }

    /// Calls `route` on structure `s` as the caller holding `token`; `n`
    /// makes e-mails unique; `want` tells whether a removal is expected to
    /// succeed (it then gets its own victim).
    async fn call(
        &self,
        sb: &Sandbox,
        route: &str,
        s: &str,
        token: Option<&str>,
        n: usize,
        want: u16,
    ) -> Result<Reply> {
        let members = format!("/api/v1/structures/{s}/members");
        let public =
            |path: &'static str, body: Value| send(sb, Method::POST, path, token, Some(body));
        Ok(match route {
            "list members" => get(sb, &members, token).await?,
            "add member" => {
                let body = json!({ "email": format!("new{n}@example.org"), "role": "counselor" });
                post(sb, &members, token, body).await?
            }
            "remove member" => {
                let victim = if want == 204 {
                    let email = format!("victim{n}@example.org");
                    let r = add_member(sb, &self.op, s, &email, "counselor", "").await?;
                    r.str("/member/user_id")
                } else if s == self.a {
                    self.member_a.clone()
                } else {
                    self.member_b.clone()
                };
                delete(sb, &format!("{members}/{victim}"), token).await?
            }
            "B's member via A" => {
                delete(sb, &format!("{members}/{}", self.member_b), token).await?
            }
            "change roles" | "B's roles via A" => {
                let member = if s == self.a && route == "change roles" {
                    &self.member_a
                } else {
                    &self.member_b
                };
                let body = json!({ "roles": ["counselor"] });
                send(
                    sb,
                    Method::PATCH,
                    &format!("{members}/{member}"),
                    token,
                    Some(body),
                )
                .await?
            }
            "me" => get(sb, "/api/v1/me", token).await?,
            "get invitation" => {
                get(
                    sb,
                    &format!("/api/v1/invitations/{}", self.pending_code),
                    token,
                )
                .await?
            }
            "login" => {
                let body = json!({ "email": "login.a@example.org", "password": PASSWORD });
                public("/api/v1/auth/login", body).await?
            }
            "refresh unknown" => {
                public(
                    "/api/v1/auth/refresh",
                    json!({ "refresh_token": "unknown" }),
                )
                .await?
            }
            "logout unknown" => {
                public("/api/v1/auth/logout", json!({ "refresh_token": "unknown" })).await?
            }
            "accept unknown code" => {
                let body = json!({ "code": "A".repeat(26), "password": PASSWORD });
                public("/api/v1/auth/invitations/accept", body).await?
            }
            other => bail!("no route {other}"),
        })
    }
}

/// Every account route × every kind of caller × own or other structure,
/// BOLA included: an admin of B never lists, adds or removes members of A.
#[tokio::test]
async fn authorisation_matrix() -> Result<()> {
    let sb = Sandbox::start(Backend::Sqlite).await?;
    let world = World::new(&sb).await?;
    let mut failures = Vec::new();
    let mut n = 0;
    for (route, target, expected) in MATRIX {
        let s = match *target {
            "A" => world.a.as_str(),
            "B" => world.b.as_str(),
            _ => "",
        };
        for ((who, token), want) in CALLERS.iter().zip(&world.tokens).zip(expected) {
            n += 1;
            let r = world
                .call(&sb, route, s, token.as_deref(), n, *want)
                .await?;
            if r.status != *want {
                failures.push(format!(
                    "{route} {target} as {who}: {} (expected {want}) {}",
                    r.status, r.body
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Denied calls changed nothing: each structure holds its standing member and
    // the two members its admin and the operator added (A also holds login.a).
    for (s, standing, count) in [
        (&world.a, &world.member_a, 4),
        (&world.b, &world.member_b, 3),
    ] {
        let ids = member_ids(&sb, &world.op, s).await?;
        assert!(ids.iter().any(|(id, _)| id == standing), "{ids:?}");
        assert_eq!(ids.len(), count, "{ids:?}");
    }
    sb.stop().await
}

#[tokio::test]
async fn bad_input_names_the_field_and_changes_nothing() -> Result<()> {
    let sb = Sandbox::start(Backend::Sqlite).await?;
    let op = sb.token("ops-1", vec![Role::Operator], vec![]).await?;
    let a = structure(&sb, &op, "Chantier du Vexin", &siret(1), "aci").await?;
    let r = add_member(&sb, &op, &a, "noa.nouveau@example.org", "counselor", "Noa").await?;
    assert_eq!(r.status, 201);
    let code = r.str("/invitation/code");
    let before = member_ids(&sb, &op, &a).await?;

    let members = format!("/api/v1/structures/{a}/members");
    let long_name = "N".repeat(101);
    let adds = [
        (
            json!({ "email": "pas-une-adresse", "role": "counselor" }),
            "email",
        ),
        (json!({ "email": "noa@", "role": "counselor" }), "email"),
        (json!({ "role": "counselor" }), "body"),
        (
            json!({ "email": "x@example.org", "role": "martian" }),
            "role",
        ),
        (
            json!({ "email": "x@example.org", "role": "analyst" }),
            "role",
        ),
        (
            json!({ "email": "x@example.org", "role": "partner" }),
            "role",
        ),
        (
            json!({ "email": "x@example.org", "role": "operator" }),
            "role",
        ),
        (
            json!({ "email": "x@example.org", "role": "counselor", "display_name": long_name }),
            "display_name",
        ),
        (
            json!({ "email": "x@example.org", "role": "counselor", "typo": true }),
            "body",
        ),
    ];
    let mut cases: Vec<(Reply, &str)> = Vec::new();
    for (body, field) in adds {
        cases.push((post(&sb, &members, Some(&op), body).await?, field));
    }
    cases.push((
        post(
            &sb,
            "/api/v1/structures/not-an-id/members",
            Some(&op),
            json!({ "email": "x@example.org", "role": "counselor" }),
        )
        .await?,
        "structure_id",
    ));
    cases.push((
        get(&sb, &format!("{members}?page_size=-1"), Some(&op)).await?,
        "page_size",
    ));
    cases.push((
        get(&sb, &format!("{members}?page_token=%21%21"), Some(&op)).await?,
        "page_token",
    ));
    let long_password = "ab".repeat(65);
    let accepts = [
        (code.as_str(), "court", None, "password"),
        (&code, "aaaaaaaaaaaaaaaaaaaa", None, "password"),
        (&code, "Noa.Nouveau@example.org", None, "password"),
        (&code, &long_password, None, "password"),
        (&code, PASSWORD, Some(long_name.as_str()), "display_name"),
        ("", PASSWORD, None, "code"),
    ];
    for (code, password, name, field) in accepts {
        cases.push((accept(&sb, code, password, name).await?, field));
    }
    for (r, field) in &cases {
        assert_eq!(r.status, 400, "{field}: {}", r.body);
        assert_eq!(
            r.header("content-type"),
            Some("application/problem+json"),
            "{field}"
        );
        assert_eq!(r.body["errors"][0]["field"], *field, "{}", r.body);
        assert!(!r.str("/errors/0/message").is_empty());
    }
    // The role refused for this kind of structure says which roles it allows.
    assert!(
        cases[4]
            .0
            .str("/detail")
            .contains("counselor, structure_admin"),
        "{}",
        cases[4].0.body
    );

    // Nothing changed: same members, the code still pending, no login possible.
    assert_eq!(member_ids(&sb, &op, &a).await?, before);
    let info = invitation(&sb, &code).await?;
    assert_eq!(info.status, 200);
    assert_eq!(info.body["password_required"], true);
    assert_eq!(
        login(&sb, "noa.nouveau@example.org", PASSWORD)
            .await?
            .status,
        401
    );
    // And the same code still works.
    let ok = accept(&sb, &code, PASSWORD, None).await?;
    assert_eq!(ok.status, 200, "{}", ok.body);
    sb.stop().await
}

#[test]
fn b64_is_base64url_without_padding() {
    assert_eq!(b64(&json!("a")), "ImEi");
    assert_eq!(b64(&json!({ "alg": "none" })), "eyJhbGciOiJub25lIn0");
    assert_eq!(b64(&json!("??>")), "Ij8_PiI");
}
