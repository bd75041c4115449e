//! People supported, through the gateway against the real system: a
//! counselor registers a person, the structures that follow the person and
//! the person themself read it, nobody else can tell it exists (BOLA), an
//! exact-match search finds it, and every read lands in the access log on
//! EVA_AUDIT. Then the authorisation matrix of every people and consent route.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use eva_platform::auth::Role;
use eva_proto::audit::v1::{AccessAction, AccessRecorded};
use eva_tests::api::{consent, get, patch, person_token, request, send, structure};
use eva_tests::sandbox::{Backend, Sandbox};
use prost::Message;
use reqwest::Method;
use serde_json::{Value, json};

const SIRET_A: &str = "41735218600007";
const SIRET_B: &str = "51734218700005";
const SIRET_P: &str = "61737218800004";
/// 1 85 05 78 006 084, key 91.
const NIR: &str = "1 85 05 78 006 084 91";

fn ana(structure_id: &str) -> Value {
    json!({
        "structure_id": structure_id,
        "first_name": "Ana",
        "last_name": "Zabalveytia",
        "birth_date": "1985-05-20",
        "email": "Ana.Z@exemple.fr",
        "phone": "+33 6 12 34 56 78",
        "nir": NIR,
        "commune_insee": "27229",
    })
}

/// Every access-log event published so far on EVA_AUDIT.
async fn audit_events(sb: &Sandbox) -> Result<Vec<AccessRecorded>> {
    let js = async_nats::jetstream::new(sb.nats.connect().await?);
    let mut stream = js.get_stream("EVA_AUDIT").await?;
    let last = stream.info().await?.state.last_sequence;
    let first = stream.info().await?.state.first_sequence;
    let mut out = Vec::new();
    for seq in first.max(1)..=last {
        if let Ok(m) = stream.get_raw_message(seq).await {
            out.push(AccessRecorded::decode(m.payload)?);
        }
    }
    Ok(out)
}

/// Waits until at least `n` access-log events match `pred`.
async fn wait_audit(
    sb: &Sandbox,
    n: usize,
    what: &str,
    pred: impl Fn(&AccessRecorded) -> bool,
) -> Result<Vec<AccessRecorded>> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let all = audit_events(sb).await?;
        let hits: Vec<_> = all.iter().filter(|e| pred(e)).cloned().collect();
        if hits.len() >= n {
            return Ok(hits);
        }
        if Instant::now() > deadline {
            bail!(
                "{what}: {} access-log events, expected {n}; all: {all:?}",
                hits.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn people_story(backend: Backend) -> Result<()> {
    let sb = Sandbox::start(backend).await?;
    let operator = sb.token("ops-1", vec![Role::Operator], vec![]).await?;
    let a = structure(&sb, &operator, "Chantier A", SIRET_A, "aci").await?;
    let b = structure(&sb, &operator, "Association B", SIRET_B, "association").await?;
    let counselor_a = sb
        .token("counselor-a", vec![Role::Counselor], vec![a.clone()])
        .await?;
    let counselor_b = sb
        .token("counselor-b", vec![Role::Counselor], vec![b.clone()])
        .await?;

    // A counselor of A registers Ana; A starts following her today.
    let (status, created) = send(
        &sb,
        Method::POST,
        "/api/v1/people",
        &counselor_a,
        Some(&ana(&a)),
    )
    .await?;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().context("person id")?.to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok());
    assert_eq!(created["last_name"], "Zabalveytia");
    assert_eq!(created["email"], "ana.z@exemple.fr");
    assert_eq!(created["nir"], "185057800608491");
    assert_eq!(created["accompaniment"]["structure_id"], a.as_str());
    assert_eq!(
        created["accompaniment"]["start_date"],
        eva_platform::consent::today()
    );
    assert!(created["accompaniment"]["end_date"].is_null());

    // The counselor of A reads her.
    let (status, got) = get(&sb, &format!("/api/v1/people/{id}"), &counselor_a).await?;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["first_name"], "Ana");
    assert_eq!(got["birth_date"], "1985-05-20");
    assert_eq!(got["phone"], "+33 6 12 34 56 78");

    // B does not follow her: 404, exactly as for an id that does not exist.
    let (status, hidden) = get(&sb, &format!("/api/v1/people/{id}"), &counselor_b).await?;
    assert_eq!(status, 404);
    let (status, missing) = get(
        &sb,
        &format!("/api/v1/people/{}", uuid::Uuid::now_v7()),
        &counselor_b,
    )
    .await?;
    assert_eq!(status, 404);
    assert_eq!(hidden, missing, "a hidden person looks like a missing one");
    let (status, _) = patch(
        &sb,
        &format!("/api/v1/people/{id}"),
        &counselor_b,
        json!({ "phone": "0600000000" }),
    )
    .await?;
    assert_eq!(status, 404);

    // Ana reads herself with her own account, and corrects her phone.
    let ana_token = person_token(&sb, &id).await?;
    let (status, me) = get(&sb, &format!("/api/v1/people/{id}"), &ana_token).await?;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["last_name"], "Zabalveytia");
    let (status, changed) = patch(
        &sb,
        &format!("/api/v1/people/{id}"),
        &ana_token,
        json!({ "phone": "06 98 76 54 32" }),
    )
    .await?;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["phone"], "06 98 76 54 32");
    assert_eq!(changed["last_name"], "Zabalveytia");

    // Exact-match search in A: full name and birth date (any case), NIR, e-mail.
    let search = |q: &str| format!("/api/v1/people?structure_id={a}&{q}");
    for q in [
        "last_name=Zabalveytia&first_name=Ana&birth_date=1985-05-20",
        "last_name=ZABALVEYTIA&first_name=%20ana&birth_date=1985-05-20",
        "nir=185057800608491",
        "email=ANA.Z@exemple.fr",
        "",
    ] {
        let (status, page) = get(&sb, &search(q), &counselor_a).await?;
        assert_eq!(status, 200, "{q}: {page}");
        assert_eq!(
            page["items"].as_array().map(Vec::len),
            Some(1),
            "{q}: {page}"
        );
        assert_eq!(page["items"][0]["id"], id.as_str());
    }
    for q in [
        "last_name=Zabalveytias&first_name=Ana&birth_date=1985-05-20",
        "last_name=Zabalveytia&first_name=Ana&birth_date=1985-05-21",
        "email=ana@exemple.fr",
    ] {
        let (status, page) = get(&sb, &search(q), &counselor_a).await?;
        assert_eq!(status, 200, "{q}: {page}");
        assert_eq!(
            page["items"].as_array().map(Vec::len),
            Some(0),
            "{q}: {page}"
        );
    }
    // A name search needs the three parts; B may not list A's people; B follows nobody.
    let (status, p) = get(&sb, &search("last_name=Zabalveytia"), &counselor_a).await?;
    assert_eq!(status, 400);
    assert_eq!(p["errors"][0]["field"], "first_name", "{p}");
    let (status, _) = get(&sb, &search(""), &counselor_b).await?;
    assert_eq!(status, 403);
    let (status, page) = get(
        &sb,
        &format!("/api/v1/people?structure_id={b}"),
        &counselor_b,
    )
    .await?;
    assert_eq!(status, 200);
    assert_eq!(page["items"].as_array().map(Vec::len), Some(0));

    // The access log: the registration, each read by A (one GET, five search
    // hits), Ana's own read and change; nothing for B, who saw nothing.
    let is = |e: &AccessRecorded, actor: &str, action: AccessAction| {
        e.person_id == id
            && e.actor_user_id == actor
            && e.action == action as i32
            && e.resource_type == "person"
    };
    let writes = wait_audit(&sb, 1, "registration", |e| {
        is(e, "counselor-a", AccessAction::Write)
    })
    .await?;
    assert_eq!(writes[0].actor_structure_id, a);
    assert_eq!(writes[0].actor_role, "counselor");
    assert_eq!(writes[0].purpose, "accompagnement");
    assert_eq!(writes[0].service, "identity");
    let reads = wait_audit(&sb, 6, "reads by A", |e| {
        is(e, "counselor-a", AccessAction::Read)
    })
    .await?;
    assert!(reads.iter().all(|e| e.actor_structure_id == a));
    let mine = wait_audit(&sb, 1, "Ana's read", |e| {
        e.person_id == id && e.actor_role == "person" && e.action == AccessAction::Read as i32
    })
    .await?;
    assert_eq!(mine[0].actor_structure_id, "");
    wait_audit(&sb, 1, "Ana's change", |e| {
        e.person_id == id && e.actor_role == "person" && e.action == AccessAction::Write as i32
    })
    .await?;
    let all = audit_events(&sb).await?;
    assert!(!all.iter().any(|e| e.actor_user_id == "counselor-b"));
    // Events carry ids, never the person's name or contact details.
    let js = async_nats::jetstream::new(sb.nats.connect().await?);
    for name in ["EVA_AUDIT", "EVA_IDENTITY"] {
        let mut stream = js.get_stream(name).await?;
        let last = stream.info().await?.state.last_sequence;
        for seq in 1..=last {
            if let Ok(m) = stream.get_raw_message(seq).await {
                for secret in [&b"Zabalveytia"[..], b"ana.z@", b"185057800608491"] {
                    assert!(
                        !m.payload
                            .windows(secret.len())
                            .any(|w| w.eq_ignore_ascii_case(secret)),
                        "{name} #{seq} leaks"
                    );
                }
            }
        }
    }
    sb.stop().await
}

#[tokio::test]
async fn people_story_on_sqlite() -> Result<()> {
    people_story(Backend::Sqlite).await
}

#[tokio::test]
async fn people_story_on_postgres() -> Result<()> {
    people_story(Backend::Postgres).await
}

/// Every people and consent route × every kind of caller → the expected
/// status. "other" is another person supported; B does not follow Ana.
#[tokio::test]
async fn authorisation_matrix() -> Result<()> {
    let sb = Sandbox::start(Backend::Sqlite).await?;
    let operator = sb.token("ops-1", vec![Role::Operator], vec![]).await?;
    let a = structure(&sb, &operator, "Chantier A", SIRET_A, "aci").await?;
    let b = structure(&sb, &operator, "Association B", SIRET_B, "association").await?;
    let p = structure(&sb, &operator, "Partenaire P", SIRET_P, "partner").await?;
    let counselor_a = sb
        .token("counselor-a", vec![Role::Counselor], vec![a.clone()])
        .await?;
    let (status, ana_json) = send(
        &sb,
        Method::POST,
        "/api/v1/people",
        &counselor_a,
        Some(&ana(&a)),
    )
    .await?;
    assert_eq!(status, 201);
    let ana_id = ana_json["id"].as_str().context("id")?.to_owned();
    let mut other = ana(&a);
    other["first_name"] = json!("Bruno");
    other["nir"] = json!("");
    let (status, other_json) = send(
        &sb,
        Method::POST,
        "/api/v1/people",
        &counselor_a,
        Some(&other),
    )
    .await?;
    assert_eq!(status, 201);
    let other_id = other_json["id"].as_str().context("id")?.to_owned();
    let ana_token = person_token(&sb, &ana_id).await?;
    let grant = json!({ "grantee_structure_id": b, "domains": ["mobilite"], "purposes": ["accompagnement"] });
    let consent_id = consent(
        &sb,
        &ana_token,
        &ana_id,
        &b,
        &["mobilite"],
        &["accompagnement"],
    )
    .await?;

    let callers: Vec<(&str, Option<String>)> = vec![
        ("nobody", None),
        ("self", Some(ana_token.clone())),
        ("other person", Some(person_token(&sb, &other_id).await?)),
        ("counselor A", Some(counselor_a.clone())),
        (
            "counselor B",
            Some(
                sb.token("counselor-b", vec![Role::Counselor], vec![b.clone()])
                    .await?,
            ),
        ),
        (
            "admin A",
            Some(
                sb.token("admin-a", vec![Role::StructureAdmin], vec![a.clone()])
                    .await?,
            ),
        ),
        (
            "partner",
            Some(
                sb.token("partner-1", vec![Role::Partner], vec![p.clone()])
                    .await?,
            ),
        ),
        (
            "analyst",
            Some(sb.token("analyst-1", vec![Role::Analyst], vec![]).await?),
        ),
        ("operator", Some(operator.clone())),
    ];
    let new_person = ana(&a);
    let change = json!({ "phone": "06 00 00 00 00" });
    let check = format!(
        "/api/v1/consents/check?structure_id={b}&person_id={ana_id}&domain=mobilite&purpose=accompagnement"
    );
    // nobody, self, other person, counselor A, counselor B, admin A, partner, analyst, operator
    let routes: Vec<(Method, String, Option<&Value>, [u16; 9])> = vec![
        (
            Method::POST,
            "/api/v1/people".into(),
            Some(&new_person),
            [401, 403, 403, 201, 403, 201, 403, 403, 403],
        ),
        (
            Method::GET,
            format!("/api/v1/people?structure_id={a}"),
            None,
            [401, 403, 403, 200, 403, 200, 403, 403, 403],
        ),
        (
            Method::GET,
            format!("/api/v1/people/{ana_id}"),
            None,
            [401, 200, 404, 200, 404, 200, 403, 403, 403],
        ),
        (
            Method::PATCH,
            format!("/api/v1/people/{ana_id}"),
            Some(&change),
            [401, 200, 404, 200, 404, 200, 403, 403, 403],
        ),
        (
            Method::GET,
            format!("/api/v1/people/{ana_id}/consents"),
            None,
            [401, 200, 404, 200, 404, 200, 403, 403, 403],
        ),
        (
            Method::POST,
            format!("/api/v1/people/{ana_id}/consents"),
            Some(&grant),
            [401, 201, 404, 201, 404, 201, 403, 403, 403],
        ),
        (
            Method::GET,
            format!("/api/v1/consents/{consent_id}"),
            None,
            [401, 200, 404, 200, 404, 200, 403, 403, 403],
        ),
        (
            Method::GET,
            format!("/api/v1/consents/{consent_id}/receipt"),
            None,
            [401, 200, 404, 200, 404, 200, 403, 403, 403],
        ),
        (
            Method::GET,
            check.clone(),
            None,
            [401, 403, 403, 403, 200, 403, 403, 403, 200],
        ),
        (
            Method::POST,
            format!("/api/v1/consents/{consent_id}/withdraw"),
            None,
            [401, 200, 404, 200, 404, 200, 403, 403, 403],
        ),
    ];
    let mut failures = Vec::new();
    for (method, path, body, expected) in &routes {
        for ((who, token), want) in callers.iter().zip(expected) {
            let (got, answer) = request(&sb, method.clone(), path, token.as_deref(), *body).await?;
            if got.as_u16() != *want {
                failures.push(format!(
                    "{method} {path} as {who}: {got}, expected {want}: {answer}"
                ));
            }
            if got.is_client_error() {
                assert!(
                    answer["detail"].as_str().is_some(),
                    "{method} {path} as {who}: not a problem: {answer}"
                );
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // No object of another structure by id, and no hint: malformed ids are
    // refused by name, unknown ones look like hidden ones.
    let (status, p) = get(&sb, "/api/v1/people/not-an-id", &counselor_a).await?;
    assert_eq!(status, 400);
    assert_eq!(p["errors"][0]["field"], "person_id");
    let (status, p) = get(&sb, "/api/v1/consents/not-an-id", &counselor_a).await?;
    assert_eq!(status, 400);
    assert_eq!(p["errors"][0]["field"], "consent_id");
    for path in [
        format!("/api/v1/consents/{}", uuid::Uuid::now_v7()),
        format!("/api/v1/people/{}/consents", uuid::Uuid::now_v7()),
    ] {
        let (status, _) = get(&sb, &path, &counselor_a).await?;
        assert_eq!(status, 404, "{path}");
    }
    sb.stop().await
}
