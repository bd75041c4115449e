//! The action plan through the gateway: counselor A adds an objective in
//! `mobilite` (and one in `sante`) with two actions and moves their
//! statuses; the person reads the whole plan; bad input is refused by name
//! with nothing changed; structure B, with consent for `mobilite` only, sees
//! that objective and `sante` withheld; a structure with no consent gets
//! 403; the export holds the plan and erasure removes it.

use anyhow::{Context, Result};
use eva_platform::auth::Role;
use eva_tests::api::{
    consent, field_of, get, patch, person, person_token, post, send, structure, until,
};
use eva_tests::sandbox::{Backend, Sandbox};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const TITLE_MOBILITE: &str = "Obtenir le permis B avant l'été";
const TITLE_SANTE: &str = "Reprendre un suivi pour le dos";
const ACTION_1: &str = "Inscription à l'auto-école solidaire";
const ACTION_2: &str = "Demande d'aide au financement du permis";

fn plan_domain<'a>(plan: &'a Value, id: &str) -> &'a Value {
    plan["domains"]
        .as_array()
        .and_then(|ds| ds.iter().find(|x| x["domain_id"] == id))
        .unwrap_or(&Value::Null)
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
    let b = structure(
        &sb,
        &operator,
        "Association B",
        "51734218700005",
        "association",
    )
    .await?;
    let c = structure(
        &sb,
        &operator,
        "Association C",
        "61737218800004",
        "association",
    )
    .await?;
    let counselor_a = sb
        .token("counselor-a", vec![Role::Counselor], vec![a.clone()])
        .await?;
    let counselor_b = sb
        .token("counselor-b", vec![Role::Counselor], vec![b.clone()])
        .await?;
    let counselor_c = sb
        .token("counselor-c", vec![Role::Counselor], vec![c.clone()])
        .await?;

    let person = person(&sb, &counselor_a, &a, "Ana", "Zabalveytia").await?;
    let ana = person_token(&sb, &person).await?;

    // A opens a diagnostic, rates one item and shares it.
    let d = until(
        &sb,
        Method::POST,
        &format!("/api/v1/people/{person}/diagnostics"),
        &counselor_a,
        Some(json!({ "structure_id": a })),
        |s, _| s == StatusCode::CREATED,
    )
    .await?;
    let d_id = d["id"].as_str().context("diagnostic id")?.to_owned();
    let (s, v) = patch(
        &sb,
        &format!("/api/v1/diagnostics/{d_id}"),
        &counselor_a,
        json!({ "ratings": [{ "item_id": "mobilite.permis", "level": "frein" }] }),
    )
    .await?;
    assert_eq!(s, 200, "{v}");
    let (s, v) = post(
        &sb,
        &format!("/api/v1/diagnostics/{d_id}/share"),
        &counselor_a,
        json!({}),
    )
    .await?;
    assert_eq!(s, 200, "{v}");

    // A adds an objective in mobilite, one in sante, two actions.
    let objectives = format!("/api/v1/diagnostics/{d_id}/plan/objectives");
    let plan_path = format!("/api/v1/diagnostics/{d_id}/plan");
    let (s, o) = post(
        &sb,
        &objectives,
        &counselor_a,
        json!({ "domain_id": "mobilite", "title": TITLE_MOBILITE, "start_date": "2026-01-10", "target_date": "2026-06-30" }),
    )
    .await?;
    assert_eq!(s, 201, "{o}");
    assert_eq!(o["status"], "en_cours");
    assert_eq!(o["title"], TITLE_MOBILITE);
    assert_eq!(o["owner_structure_id"], a.as_str());
    assert_eq!(o["owner_user_id"], "counselor-a");
    let o_id = o["id"].as_str().context("objective id")?.to_owned();
    let (s, v) = post(
        &sb,
        &objectives,
        &counselor_a,
        json!({ "domain_id": "sante", "title": TITLE_SANTE }),
    )
    .await?;
    assert_eq!(s, 201, "{v}");
    let sante_id = v["id"].as_str().context("objective id")?.to_owned();
    let actions = format!("/api/v1/plan/objectives/{o_id}/actions");
    let (s, a1) = post(
        &sb,
        &actions,
        &counselor_a,
        json!({ "title": ACTION_1, "planned_date": "2026-01-20" }),
    )
    .await?;
    assert_eq!(s, 201, "{a1}");
    assert_eq!(a1["status"], "prevue");
    let a1_path = format!("/api/v1/plan/actions/{}", a1["id"].as_str().unwrap_or(""));
    let referral = uuid::Uuid::now_v7().to_string();
    let (s, a2) = post(
        &sb,
        &actions,
        &counselor_a,
        json!({ "title": ACTION_2, "referral_id": referral }),
    )
    .await?;
    assert_eq!(s, 201, "{a2}");
    assert_eq!(a2["referral_id"], referral.as_str());
    let a2_path = format!("/api/v1/plan/actions/{}", a2["id"].as_str().unwrap_or(""));

    // Statuses move.
    let (s, v) = patch(&sb, &a1_path, &counselor_a, json!({ "status": "en_cours" })).await?;
    assert_eq!(
        (s, &v["status"]),
        (StatusCode::OK, &json!("en_cours")),
        "{v}"
    );
    let (s, v) = patch(
        &sb,
        &a1_path,
        &counselor_a,
        json!({ "status": "realisee", "end_date": "2026-02-01" }),
    )
    .await?;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["end_date"], "2026-02-01");
    assert_eq!(v["title"], ACTION_1);

    // The person reads her whole plan.
    let (s, plan) = get(&sb, &plan_path, &ana).await?;
    assert_eq!(s, 200, "{plan}");
    let mob = &plan_domain(&plan, "mobilite")["objectives"][0];
    assert_eq!(mob["title"], TITLE_MOBILITE, "{plan}");
    assert_eq!(mob["actions"].as_array().map(Vec::len), Some(2), "{plan}");
    assert_eq!(mob["actions"][0]["status"], "realisee");
    assert_eq!(mob["actions"][1]["title"], ACTION_2);
    assert_eq!(
        plan_domain(&plan, "sante")["objectives"][0]["title"],
        TITLE_SANTE
    );

    // Bad input is refused by name and changes nothing.
    let bad: Vec<(Method, String, Value, StatusCode, &str)> = vec![
        (
            Method::POST,
            objectives.clone(),
            json!({ "domain_id": "astronautique", "title": "x" }),
            StatusCode::BAD_REQUEST,
            "domain_id",
        ),
        (
            Method::POST,
            objectives.clone(),
            json!({ "domain_id": "mobilite", "title": "x", "start_date": "2026-03-01", "target_date": "2026-02-01" }),
            StatusCode::BAD_REQUEST,
            "target_date",
        ),
        (
            Method::PATCH,
            a2_path.clone(),
            json!({ "end_date": "2026-02-01" }),
            StatusCode::BAD_REQUEST,
            "end_date",
        ),
        (
            Method::PATCH,
            a2_path.clone(),
            json!({ "status": "realisee" }),
            StatusCode::BAD_REQUEST,
            "end_date",
        ),
        (
            Method::POST,
            actions.clone(),
            json!({ "title": "x", "referral_id": "pas-un-id" }),
            StatusCode::BAD_REQUEST,
            "referral_id",
        ),
        (
            Method::PATCH,
            a1_path.clone(),
            json!({ "status": "prevue" }),
            StatusCode::CONFLICT,
            "status",
        ),
        (
            Method::PATCH,
            a2_path.clone(),
            json!({ "status": "terminee" }),
            StatusCode::BAD_REQUEST,
            "status",
        ),
    ];
    for (method, path, body, want, field) in bad {
        let (s, v) = send(&sb, method, &path, &counselor_a, Some(&body)).await?;
        assert_eq!((s, field_of(&v)), (want, field), "{path} {body}: {v}");
    }
    let (_, after) = get(&sb, &plan_path, &ana).await?;
    let strip = |p: &Value| p.to_string();
    assert_eq!(strip(&after), strip(&plan), "bad input changed the plan");

    // An abandoned objective gets no new action, and does not become realise.
    let sante_path = format!("/api/v1/plan/objectives/{sante_id}");
    let (s, v) = patch(
        &sb,
        &sante_path,
        &counselor_a,
        json!({ "status": "abandonne" }),
    )
    .await?;
    assert_eq!(s, 200, "{v}");
    assert!(v["end_date"].is_string(), "{v}");
    let (s, v) = post(
        &sb,
        &format!("{sante_path}/actions"),
        &counselor_a,
        json!({ "title": "x" }),
    )
    .await?;
    assert_eq!(
        (s, field_of(&v)),
        (StatusCode::CONFLICT, "objective_id"),
        "{v}"
    );
    let (s, v) = patch(
        &sb,
        &sante_path,
        &counselor_a,
        json!({ "status": "realise", "end_date": "2026-03-01" }),
    )
    .await?;
    assert_eq!((s, field_of(&v)), (StatusCode::CONFLICT, "status"), "{v}");

    // C neither follows her nor has her consent.
    let (s, v) = get(&sb, &plan_path, &counselor_c).await?;
    assert_eq!(s, 403, "{v}");
    let (s, v) = post(
        &sb,
        &objectives,
        &counselor_c,
        json!({ "domain_id": "mobilite", "title": "x" }),
    )
    .await?;
    assert_eq!(s, 403, "{v}");

    // Ana moves to B and consents to mobilite only.
    let (s, v) = post(&sb, "/api/v1/me/share-codes", &ana, json!({})).await?;
    assert_eq!(s, 201, "{v}");
    let code = v["code"].as_str().context("share code")?.to_owned();
    let (s, v) = post(
        &sb,
        "/api/v1/share-codes/redeem",
        &counselor_b,
        json!({ "code": code, "structure_id": b }),
    )
    .await?;
    assert_eq!(s, 201, "{v}");
    consent(&sb, &ana, &person, &b, &["mobilite"], &["accompagnement"]).await?;
    let seen = until(&sb, Method::GET, &plan_path, &counselor_b, None, |s, v| {
        s == StatusCode::OK && plan_domain(v, "mobilite")["access"] == "visible"
    })
    .await?;
    assert_eq!(
        plan_domain(&seen, "mobilite")["objectives"][0]["title"],
        TITLE_MOBILITE
    );
    let sante = plan_domain(&seen, "sante");
    assert_eq!(sante["access"], "withheld", "{seen}");
    assert!(sante.get("objectives").is_none(), "{sante}");
    assert!(!seen.to_string().contains(TITLE_SANTE));

    // B adds to the shared plan in mobilite, not in sante; it does not
    // change A's objective.
    let (s, v) = post(
        &sb,
        &objectives,
        &counselor_b,
        json!({ "domain_id": "mobilite", "title": "Trouver un covoiturage" }),
    )
    .await?;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["owner_structure_id"], b.as_str());
    let (s, v) = post(
        &sb,
        &objectives,
        &counselor_b,
        json!({ "domain_id": "sante", "title": "x" }),
    )
    .await?;
    assert_eq!(s, 403, "{v}");
    let (s, v) = patch(
        &sb,
        &format!("/api/v1/plan/objectives/{o_id}"),
        &counselor_b,
        json!({ "title": "autre" }),
    )
    .await?;
    assert_eq!(s, 403, "{v}");

    // B's read is in the person's access log.
    until(
        &sb,
        Method::GET,
        &format!("/api/v1/people/{person}/access-log?page_size=500"),
        &ana,
        None,
        |s, v| {
            s == StatusCode::OK
                && v["items"].as_array().is_some_and(|items| {
                    items.iter().any(|e| {
                        e["resource_type"] == "action_plan"
                            && e["actor_structure_id"] == b.as_str()
                            && e["action"] == "read"
                    })
                })
        },
    )
    .await?;

    // The export holds the plan.
    let (s, v) = post(
        &sb,
        &format!("/api/v1/people/{person}/export"),
        &ana,
        json!({}),
    )
    .await?;
    assert_eq!(s, 200, "{v}");
    let part = v["services"]["diagnostics"].to_string();
    assert!(
        part.contains(TITLE_MOBILITE) && part.contains(ACTION_2),
        "{part}"
    );

    // Erasure removes the plan.
    let (s, v) = post(
        &sb,
        &format!("/api/v1/people/{person}/erase"),
        &ana,
        json!({ "confirm": true }),
    )
    .await?;
    assert_eq!(s, 200, "{v}");
    until(
        &sb,
        Method::PATCH,
        &format!("/api/v1/plan/objectives/{o_id}"),
        &counselor_a,
        Some(json!({ "title": "x" })),
        |s, _| s == StatusCode::NOT_FOUND,
    )
    .await?;
    until(
        &sb,
        Method::PATCH,
        &a1_path,
        &counselor_a,
        Some(json!({})),
        |s, _| s == StatusCode::NOT_FOUND,
    )
    .await?;
    let (s, v) = get(&sb, &plan_path, &counselor_a).await?;
    assert_eq!(s, 404, "{v}");

    sb.stop().await
}

#[tokio::test]
async fn plan_story_on_sqlite() -> Result<()> {
    story(Backend::Sqlite).await
}

#[tokio::test]
async fn plan_story_on_postgres() -> Result<()> {
    story(Backend::Postgres).await
}

/// A shared diagnostic of `person` by `counselor` with one objective in
/// `mobilite` and one action: (plan path, action path).
async fn plan_with_one_action(
    sb: &Sandbox,
    counselor: &str,
    structure_id: &str,
    person: &str,
    action_title: &str,
) -> Result<(String, String)> {
    let d = until(
        sb,
        Method::POST,
        &format!("/api/v1/people/{person}/diagnostics"),
        counselor,
        Some(json!({ "structure_id": structure_id })),
        |s, _| s == StatusCode::CREATED,
    )
    .await?;
    let d_id = d["id"].as_str().context("diagnostic id")?.to_owned();
    let (s, v) = patch(
        sb,
        &format!("/api/v1/diagnostics/{d_id}"),
        counselor,
        json!({ "ratings": [{ "item_id": "mobilite.permis", "level": "frein" }] }),
    )
    .await?;
    assert_eq!(s, 200, "{v}");
    let (s, v) = post(
        sb,
        &format!("/api/v1/diagnostics/{d_id}/share"),
        counselor,
        json!({}),
    )
    .await?;
    assert_eq!(s, 200, "{v}");
    let (s, o) = post(
        sb,
        &format!("/api/v1/diagnostics/{d_id}/plan/objectives"),
        counselor,
        json!({ "domain_id": "mobilite", "title": TITLE_MOBILITE }),
    )
    .await?;
    assert_eq!(s, 201, "{o}");
    let o_id = o["id"].as_str().context("objective id")?;
    let (s, a) = post(
        sb,
        &format!("/api/v1/plan/objectives/{o_id}/actions"),
        counselor,
        json!({ "title": action_title, "planned_date": "2026-01-20" }),
    )
    .await?;
    assert_eq!(s, 201, "{a}");
    let a_id = a["id"].as_str().context("action id")?;
    Ok((
        format!("/api/v1/diagnostics/{d_id}/plan"),
        format!("/api/v1/plan/actions/{a_id}"),
    ))
}

fn first_action(plan: &Value) -> &Value {
    &plan_domain(plan, "mobilite")["objectives"][0]["actions"][0]
}

/// The person is the actor of her path: she says herself that an action is
/// under way or done, and takes it back the same day; her counselor reads
/// it, her access log names her. She changes nothing else, and nothing of
/// another person's plan; the counselor still changes everything.
async fn person_moves_her_actions(backend: Backend) -> Result<()> {
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
    let counselor = sb
        .token("counselor-a", vec![Role::Counselor], vec![a.clone()])
        .await?;
    let person = person(&sb, &counselor, &a, "Ana", "Zabalveytia").await?;
    let ana = person_token(&sb, &person).await?;
    let other = eva_tests::api::person(&sb, &counselor, &a, "Bea", "Irigoyen").await?;
    let (plan_path, action) = plan_with_one_action(&sb, &counselor, &a, &person, ACTION_1).await?;
    let (other_plan, other_action) =
        plan_with_one_action(&sb, &counselor, &a, &other, ACTION_2).await?;

    // She starts it, then says it is done: today is its end date.
    let (s, v) = patch(&sb, &action, &ana, json!({ "status": "en_cours" })).await?;
    assert_eq!(
        (s, &v["status"]),
        (StatusCode::OK, &json!("en_cours")),
        "{v}"
    );
    let (s, v) = patch(&sb, &action, &ana, json!({ "status": "realisee" })).await?;
    assert_eq!(
        (s, &v["status"]),
        (StatusCode::OK, &json!("realisee")),
        "{v}"
    );
    let today = eva_platform::consent::today();
    assert_eq!(v["end_date"], today.as_str(), "{v}");
    assert_eq!(v["title"], ACTION_1, "{v}");

    // Her counselor reads it done.
    let (s, plan) = get(&sb, &plan_path, &counselor).await?;
    assert_eq!(s, 200, "{plan}");
    assert_eq!(first_action(&plan)["status"], "realisee", "{plan}");
    assert_eq!(first_action(&plan)["end_date"], today.as_str(), "{plan}");

    // Nothing but the status, and never cancelled: refused by name, nothing changed.
    let refused: Vec<(Value, StatusCode, &str)> = vec![
        (
            json!({ "title": "Autre chose" }),
            StatusCode::FORBIDDEN,
            "title",
        ),
        (
            json!({ "status": "realisee", "planned_date": "2026-05-01" }),
            StatusCode::FORBIDDEN,
            "planned_date",
        ),
        (
            json!({ "end_date": "2026-02-01" }),
            StatusCode::FORBIDDEN,
            "end_date",
        ),
        (
            json!({ "owner_user_id": "counselor-b" }),
            StatusCode::FORBIDDEN,
            "owner_user_id",
        ),
        (
            json!({ "status": "annulee" }),
            StatusCode::FORBIDDEN,
            "status",
        ),
        (json!({}), StatusCode::BAD_REQUEST, "status"),
    ];
    for (body, want, field) in refused {
        let (s, v) = patch(&sb, &action, &ana, body.clone()).await?;
        assert_eq!((s, field_of(&v)), (want, field), "{body}: {v}");
    }
    let (_, after) = get(&sb, &plan_path, &counselor).await?;
    assert_eq!(first_action(&after)["title"], ACTION_1, "{after}");
    assert_eq!(
        first_action(&after)["planned_date"],
        "2026-01-20",
        "{after}"
    );
    assert_eq!(first_action(&after)["status"], "realisee", "{after}");

    // Another person's action does not exist for her, and stays as it was.
    let (s, v) = patch(&sb, &other_action, &ana, json!({ "status": "realisee" })).await?;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    let (_, theirs) = get(&sb, &other_plan, &counselor).await?;
    assert_eq!(first_action(&theirs)["status"], "prevue", "{theirs}");

    // A click by mistake: she takes it back, the counselor sees it planned.
    let (s, v) = patch(&sb, &action, &ana, json!({ "status": "prevue" })).await?;
    assert_eq!((s, &v["status"]), (StatusCode::OK, &json!("prevue")), "{v}");
    assert!(v["end_date"].is_null(), "{v}");
    let (_, plan) = get(&sb, &plan_path, &counselor).await?;
    assert_eq!(first_action(&plan)["status"], "prevue", "{plan}");

    // Her access log names her as the one who changed it.
    let action_id = action.rsplit('/').next().unwrap_or("").to_owned();
    until(
        &sb,
        Method::GET,
        &format!("/api/v1/people/{person}/access-log?page_size=500"),
        &ana,
        None,
        |s, v| {
            s == StatusCode::OK
                && v["items"].as_array().is_some_and(|items| {
                    items.iter().any(|e| {
                        e["resource_id"] == action_id.as_str()
                            && e["action"] == "write"
                            && e["actor_role"] == "person"
                    })
                })
        },
    )
    .await?;

    // The counselor still changes everything; a done action given by the
    // counselor on another day stays done for her.
    let (s, v) = patch(
        &sb,
        &action,
        &counselor,
        json!({ "title": "Inscription faite", "planned_date": "2026-02-01", "status": "realisee", "end_date": "2026-02-03" }),
    )
    .await?;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["title"], "Inscription faite", "{v}");
    let (s, v) = patch(&sb, &action, &ana, json!({ "status": "prevue" })).await?;
    assert_eq!((s, field_of(&v)), (StatusCode::CONFLICT, "status"), "{v}");

    sb.stop().await
}

#[tokio::test]
async fn person_moves_her_actions_on_sqlite() -> Result<()> {
    person_moves_her_actions(Backend::Sqlite).await
}

#[tokio::test]
async fn person_moves_her_actions_on_postgres() -> Result<()> {
    person_moves_her_actions(Backend::Postgres).await
}
