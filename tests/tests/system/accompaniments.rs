//! Accompaniments, share codes and the person's own account, through the
//! gateway against the real system: a counselor of A registers a person and
//! invites them; the person opens their account, logs in, reads themself and
//! hands a share code to B, which starts following them; A ends its
//! accompaniment and loses sight of the person while the history keeps it.
//! Then the authorisation matrix of these routes, and the brake on guessed codes.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use eva_platform::auth::Role;
use eva_proto::audit::v1::AccessRecorded;
use eva_proto::identity::v1 as pb;
use eva_tests::api::{field_of, get, person_token, post, request, structure};
use eva_tests::sandbox::{Backend, Sandbox};
use prost::Message;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const SIRET_A: &str = "41735218600007";
const SIRET_B: &str = "51734218700005";
const SIRET_P: &str = "61737218800004";
const PASSWORD: &str = "un jardin sous la pluie";
const EMAIL: &str = "ana.z@exemple.fr";

/// Registers Ana with structure `structure_id`; (person id, accompaniment id).
// Not `api::person`: Ana needs an e-mail (invitations), the story her accompaniment id.
async fn register(
    sb: &Sandbox,
    counselor: &str,
    structure_id: &str,
    email: &str,
) -> Result<(String, String)> {
    let (s, v) = post(
        sb,
        "/api/v1/people",
        counselor,
        json!({
            "structure_id": structure_id,
            "first_name": "Ana",
            "last_name": "Zabalveytia",
            "birth_date": "1985-05-20",
            "email": email,
            "commune_insee": "27229",
        }),
    )
    .await?;
    assert_eq!(s, 201, "{v}");
    Ok((
        v["id"].as_str().context("person id")?.to_owned(),
        v["accompaniment"]["id"]
            .as_str()
            .context("accompaniment id")?
            .to_owned(),
    ))
}

async fn last_event(sb: &Sandbox, subject: &str) -> Result<Vec<u8>> {
    let js = async_nats::jetstream::new(sb.nats.connect().await?);
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

/// Waits until the access log on EVA_AUDIT holds an entry matching `pred`.
async fn wait_audit(
    sb: &Sandbox,
    what: &str,
    pred: impl Fn(&AccessRecorded) -> bool,
) -> Result<()> {
    let js = async_nats::jetstream::new(sb.nats.connect().await?);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let mut stream = js.get_stream("EVA_AUDIT").await?;
        let (first, last) = {
            let info = stream.info().await?;
            (info.state.first_sequence, info.state.last_sequence)
        };
        for seq in first.max(1)..=last {
            if let Ok(m) = stream.get_raw_message(seq).await
                && pred(&AccessRecorded::decode(m.payload)?)
            {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("no access-log entry for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn story(backend: Backend) -> Result<()> {
    let sb = Sandbox::start(backend).await?;
    let today = eva_platform::consent::today();
    let operator = sb.token("ops-1", vec![Role::Operator], vec![]).await?;
    let a = structure(&sb, &operator, "Chantier A", SIRET_A, "aci").await?;
    let b = structure(&sb, &operator, "Association B", SIRET_B, "association").await?;
    let counselor_a = sb
        .token("counselor-a", vec![Role::Counselor], vec![a.clone()])
        .await?;
    let counselor_b = sb
        .token("counselor-b", vec![Role::Counselor], vec![b.clone()])
        .await?;

    // A registers Ana and invites her to her own account (her file's e-mail).
    let (person, acc_a) = register(&sb, &counselor_a, &a, "Ana.Z@exemple.fr").await?;
    let invite = format!("/api/v1/people/{person}/invitations");
    let (s, inv) = post(&sb, &invite, &counselor_a, json!({})).await?;
    assert_eq!(s, 201, "{inv}");
    assert_eq!(inv["person_id"], person.as_str());
    assert_eq!(inv["email"], EMAIL);
    assert_eq!(inv["role"], "person");
    let code = inv["code"].as_str().context("code")?.to_owned();
    let (s, info) = request(
        &sb,
        Method::GET,
        &format!("/api/v1/invitations/{code}"),
        None,
        None,
    )
    .await?;
    assert_eq!(s, 200, "{info}");
    assert_eq!(info["role"], "person");
    assert_eq!(info["structure"]["name"], "Chantier A");

    // Ana accepts with a password, then logs in with e-mail and password.
    let (s, v) = request(
        &sb,
        Method::POST,
        "/api/v1/auth/invitations/accept",
        None,
        Some(&json!({ "code": code, "password": PASSWORD, "display_name": "Ana" })),
    )
    .await?;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["user"]["person_id"], person.as_str());
    let (s, v) = request(
        &sb,
        Method::POST,
        "/api/v1/auth/login",
        None,
        Some(&json!({ "email": EMAIL, "password": PASSWORD })),
    )
    .await?;
    assert_eq!(s, 200, "{v}");
    let ana = v["access_token"]
        .as_str()
        .context("access token")?
        .to_owned();
    let (s, me) = get(&sb, "/api/v1/me", &ana).await?;
    assert_eq!(s, 200, "{me}");
    assert_eq!(me["person_id"], person.as_str());
    assert_eq!(me["roles"], json!(["person"]));
    assert_eq!(me["structures"], json!([]));
    let (s, v) = get(&sb, &format!("/api/v1/people/{person}"), &ana).await?;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["first_name"], "Ana");
    // One account per person.
    let (s, v) = post(&sb, &invite, &counselor_a, json!({})).await?;
    assert_eq!(s, 409, "{v}");

    // Ana creates a share code; B does not follow her yet.
    let (s, v) = post(&sb, "/api/v1/me/share-codes", &ana, json!({})).await?;
    assert_eq!(s, 201, "{v}");
    let share = v["code"].as_str().context("share code")?.to_owned();
    assert_eq!(share.len(), 8);
    assert!(!share.contains(['0', 'O', '1', 'I']), "{share}");
    let person_path = format!("/api/v1/people/{person}");
    assert_eq!(get(&sb, &person_path, &counselor_b).await?.0, 404);

    // Bad codes: malformed names the field, unknown is a plain 404.
    let redeem = "/api/v1/share-codes/redeem";
    let (s, v) = post(
        &sb,
        redeem,
        &counselor_b,
        json!({ "code": "0OI1", "structure_id": b }),
    )
    .await?;
    assert_eq!((s, field_of(&v)), (StatusCode::BAD_REQUEST, "code"), "{v}");
    let (s, v) = post(
        &sb,
        redeem,
        &counselor_b,
        json!({ "code": "ZZZZ-ZZZZ", "structure_id": b }),
    )
    .await?;
    assert_eq!(s, 404, "{v}");
    let (s, v) = post(
        &sb,
        redeem,
        &counselor_b,
        json!({ "code": share, "structure_id": "x" }),
    )
    .await?;
    assert_eq!(
        (s, field_of(&v)),
        (StatusCode::BAD_REQUEST, "structure_id"),
        "{v}"
    );
    let (s, v) = post(
        &sb,
        redeem,
        &counselor_b,
        json!({ "code": share, "structure_id": b, "extra": 1 }),
    )
    .await?;
    assert_eq!(s, 400, "{v}");

    // B redeems the code (typed in lower case with a dash): B now follows Ana.
    let typed = format!("{}-{}", &share[..4], &share[4..]).to_lowercase();
    let (s, v) = post(
        &sb,
        redeem,
        &counselor_b,
        json!({ "code": typed, "structure_id": b }),
    )
    .await?;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["person"]["id"], person.as_str());
    assert_eq!(v["accompaniment"]["structure_name"], "Association B");
    let acc_b = v["accompaniment"]["id"]
        .as_str()
        .context("accompaniment")?
        .to_owned();
    assert_eq!(get(&sb, &person_path, &counselor_b).await?.0, 200);
    let started = pb::AccompanimentStarted::decode(
        last_event(&sb, "eva.identity.accompaniment.started")
            .await?
            .as_slice(),
    )?;
    assert_eq!(
        (
            started.accompaniment_id.as_str(),
            started.structure_id.as_str()
        ),
        (acc_b.as_str(), b.as_str())
    );
    // The code is used up.
    let (s, _) = post(
        &sb,
        redeem,
        &counselor_b,
        json!({ "code": share, "structure_id": b }),
    )
    .await?;
    assert_eq!(s, 404);

    // Both accompaniments are listed, most recent first, for Ana and for A and B.
    let history = format!("/api/v1/people/{person}/accompaniments");
    for token in [&ana, &counselor_a, &counselor_b] {
        let (s, v) = get(&sb, &history, token).await?;
        assert_eq!(s, 200, "{v}");
        let items = v["items"].as_array().context("items")?;
        assert_eq!(items.len(), 2, "{v}");
        assert_eq!(items[0]["id"], acc_b.as_str());
        assert_eq!(items[1]["structure_name"], "Chantier A");
        assert!(items.iter().all(|i| i["ongoing"] == true), "{v}");
    }

    // Ending: bad input names the field; B cannot end A's accompaniment.
    let end = format!("/api/v1/accompaniments/{acc_a}/end");
    let cases = [
        (
            json!({ "end_date": "2000-01-01", "end_reason": "reorientation" }),
            "end_date",
        ),
        (
            json!({ "end_date": "2999-01-01", "end_reason": "reorientation" }),
            "end_date",
        ),
        (
            json!({ "end_date": "31/12/2025", "end_reason": "reorientation" }),
            "end_date",
        ),
        (
            json!({ "end_date": today, "end_reason": "sortie_lune" }),
            "end_reason",
        ),
    ];
    for (body, field) in cases {
        let (s, v) = post(&sb, &end, &counselor_a, body).await?;
        assert_eq!((s, field_of(&v)), (StatusCode::BAD_REQUEST, field), "{v}");
    }
    let (s, _) = post(
        &sb,
        &end,
        &counselor_b,
        json!({ "end_date": today, "end_reason": "autre" }),
    )
    .await?;
    assert_eq!(s, 404);

    // A ends its accompaniment: A no longer sees Ana; the history keeps it.
    let (s, v) = post(
        &sb,
        &end,
        &counselor_a,
        json!({ "end_date": today, "end_reason": "reorientation" }),
    )
    .await?;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["end_reason"], "reorientation");
    assert_eq!(v["ongoing"], false);
    let ended = pb::AccompanimentEnded::decode(
        last_event(&sb, "eva.identity.accompaniment.ended")
            .await?
            .as_slice(),
    )?;
    assert_eq!(ended.accompaniment_id, acc_a);
    assert_eq!(
        ended.end_reason,
        pb::AccompanimentEndReason::Reorientation as i32
    );
    assert_eq!(get(&sb, &person_path, &counselor_a).await?.0, 404);
    let (s, v) = post(
        &sb,
        &end,
        &counselor_a,
        json!({ "end_date": today, "end_reason": "autre" }),
    )
    .await?;
    assert_eq!(s, 409, "{v}");
    let (s, v) = get(&sb, &history, &counselor_b).await?;
    assert_eq!(s, 200);
    assert_eq!(v["items"][1]["end_date"], today.as_str());
    assert_eq!(v["items"][1]["end_reason"], "reorientation");
    // A past structure sees only its own rows.
    let (s, v) = get(&sb, &history, &counselor_a).await?;
    assert_eq!(s, 200);
    assert_eq!(v["items"].as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(v["items"][0]["id"], acc_a.as_str());

    // At most 5 unused share codes at a time.
    for _ in 0..5 {
        assert_eq!(
            post(&sb, "/api/v1/me/share-codes", &ana, json!({}))
                .await?
                .0,
            201
        );
    }
    let (s, v) = post(&sb, "/api/v1/me/share-codes", &ana, json!({})).await?;
    assert_eq!(s, 409, "{v}");

    // Every step is in Ana's access log.
    for kind in ["accompaniment", "share_code", "person_account"] {
        wait_audit(&sb, kind, |e| {
            e.person_id == person && e.resource_type == kind
        })
        .await?;
    }
    sb.stop().await
}

#[tokio::test]
async fn story_on_sqlite() -> Result<()> {
    story(Backend::Sqlite).await
}

#[tokio::test]
async fn story_on_postgres() -> Result<()> {
    story(Backend::Postgres).await
}

/// A route of the matrix: name, method, path, body, expected status per caller.
type Route<'a> = (&'a str, Method, &'a str, Option<Value>, [u16; 9]);

/// Who may call what: every route × every kind of caller.
#[tokio::test]
async fn authorisation_matrix_and_the_brake_on_guessed_codes() -> Result<()> {
    let sb = Sandbox::start(Backend::Sqlite).await?;
    let operator = sb.token("ops-1", vec![Role::Operator], vec![]).await?;
    let a = structure(&sb, &operator, "Chantier A", SIRET_A, "aci").await?;
    let b = structure(&sb, &operator, "Association B", SIRET_B, "association").await?;
    let p = structure(&sb, &operator, "Partenaire P", SIRET_P, "partner").await?;
    let counselor_a = sb
        .token("counselor-a", vec![Role::Counselor], vec![a.clone()])
        .await?;
    let (person, acc) = register(&sb, &counselor_a, &a, "ana@exemple.fr").await?;
    let callers: Vec<(&str, Option<String>)> = vec![
        ("none", None),
        ("person", Some(person_token(&sb, &person).await?)),
        (
            "other person",
            Some(person_token(&sb, &uuid::Uuid::now_v7().to_string()).await?),
        ),
        ("counselor A", Some(counselor_a.clone())),
        (
            "admin A",
            Some(
                sb.token("admin-a", vec![Role::StructureAdmin], vec![a.clone()])
                    .await?,
            ),
        ),
        (
            "counselor B",
            Some(
                sb.token("counselor-b", vec![Role::Counselor], vec![b.clone()])
                    .await?,
            ),
        ),
        (
            "partner",
            Some(
                sb.token("partner-p", vec![Role::Partner], vec![p.clone()])
                    .await?,
            ),
        ),
        (
            "analyst",
            Some(sb.token("analyst", vec![Role::Analyst], vec![]).await?),
        ),
        ("operator", Some(operator.clone())),
    ];
    let history = format!("/api/v1/people/{person}/accompaniments");
    let invite = format!("/api/v1/people/{person}/invitations");
    let end = format!("/api/v1/accompaniments/{acc}/end");
    // Ending before the start is refused (400) once the caller may end it, so
    // nothing changes while the matrix runs; an unknown code answers 404.
    let routes: Vec<Route> = vec![
        //                                                 none self other cA   adA  cB   part anal op
        (
            "list",
            Method::GET,
            &history,
            None,
            [401, 200, 404, 200, 200, 404, 403, 403, 403],
        ),
        (
            "invite",
            Method::POST,
            &invite,
            Some(json!({})),
            [401, 403, 403, 201, 201, 404, 403, 403, 403],
        ),
        (
            "share code",
            Method::POST,
            "/api/v1/me/share-codes",
            Some(json!({})),
            [401, 201, 404, 403, 403, 403, 403, 403, 403],
        ),
        (
            "redeem",
            Method::POST,
            "/api/v1/share-codes/redeem",
            Some(json!({ "code": "ZZZZZZZZ", "structure_id": a })),
            [401, 403, 403, 404, 404, 403, 403, 403, 403],
        ),
        (
            "end",
            Method::POST,
            &end,
            Some(json!({ "end_date": "2000-01-01", "end_reason": "autre" })),
            [401, 403, 403, 400, 400, 404, 403, 403, 403],
        ),
    ];
    let mut wrong = Vec::new();
    for (route, method, path, body, expected) in &routes {
        for ((caller, token), want) in callers.iter().zip(expected) {
            let (s, v) =
                request(&sb, method.clone(), path, token.as_deref(), body.as_ref()).await?;
            if s.as_u16() != *want {
                wrong.push(format!("{route} by {caller}: {s}, expected {want}: {v}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    // Guessing codes: after 10 failures in 15 minutes the structure waits,
    // even with a good code.
    let counselor_b = callers[5].1.clone().context("counselor B")?;
    let redeem = "/api/v1/share-codes/redeem";
    for _ in 0..10 {
        let (s, _) = post(
            &sb,
            redeem,
            &counselor_b,
            json!({ "code": "ZZZZZZZZ", "structure_id": b }),
        )
        .await?;
        assert_eq!(s, 404);
    }
    let (s, v) = request(
        &sb,
        Method::POST,
        "/api/v1/me/share-codes",
        callers[1].1.as_deref(),
        Some(&json!({})),
    )
    .await?;
    assert_eq!(s, 201, "{v}");
    let good = v["code"].as_str().context("code")?.to_owned();
    let r = sb
        .http
        .post(sb.url(redeem))
        .bearer_auth(&counselor_b)
        .json(&json!({ "code": good, "structure_id": b }))
        .send()
        .await?;
    assert_eq!(r.status(), 429);
    let wait: u64 = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .context("retry-after")?;
    assert!(wait > 0 && wait <= 15 * 60, "{wait}");
    // Another structure is not braked: admin A's failures were its own.
    let admin_a = callers[4].1.clone().context("admin A")?;
    let (s, v) = post(
        &sb,
        redeem,
        &admin_a,
        json!({ "code": good, "structure_id": a }),
    )
    .await?;
    assert_eq!(s, 409, "A already follows the person: {v}");
    sb.stop().await
}
