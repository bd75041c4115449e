//! The walking skeleton, end to end through every layer: an operator creates
//! a structure over HTTP → the gateway calls identity over gRPC → identity
//! stores it and its outbox event in one transaction → the relay publishes
//! on JetStream → statistics consumes it idempotently → the count is
//! readable through the gateway. On SQLite and on PostgreSQL.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use eva_platform::auth::Role;
use eva_tests::sandbox::{Backend, Sandbox};
use serde_json::{Value, json};

fn structure(name: &str, siret: &str, kind: &str, commune: &str) -> Value {
    json!({ "name": name, "siret": siret, "kind": kind, "commune_insee": commune, "epci": "200089456" })
}

/// Waits until the indicator's cells, grouped by structure type, equal
/// `want` (`None`: the cell is there, its count hidden by the disclosure
/// rule, as one structure of a kind is).
async fn wait_counts(sb: &Sandbox, token: &str, want: &[(&str, Option<i64>)]) -> Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = sb
            .http
            .get(sb.url("/api/v1/statistics/indicators/structures?group_by=structure_kind"))
            .bearer_auth(token)
            .send()
            .await?;
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await?;
        let got: Vec<(String, Option<i64>)> = body["cells"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                assert_eq!(c["suppressed"], c["count"].is_null(), "{c}");
                (
                    c["structure_kind"].as_str().unwrap_or_default().to_owned(),
                    c["count"].as_i64(),
                )
            })
            .collect();
        let want_owned: Vec<(String, Option<i64>)> =
            want.iter().map(|(k, n)| (k.to_string(), *n)).collect();
        if got == want_owned {
            return Ok(body);
        }
        if Instant::now() > deadline {
            bail!("counts {got:?}, expected {want_owned:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The total of the `structures` indicator, once it is `want`.
async fn wait_total(sb: &Sandbox, token: &str, want: i64) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let body: Value = sb
            .http
            .get(sb.url("/api/v1/statistics/indicators/structures"))
            .bearer_auth(token)
            .send()
            .await?
            .json()
            .await?;
        if body["cells"][0]["count"] == want {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("total {body}, expected {want}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn skeleton(backend: Backend) -> Result<()> {
    // Two structures make a publishable total; one of a kind stays hidden.
    let sb = Sandbox::start_with(backend, |c| c.statistics.disclosure_threshold = 2).await?;
    let operator = sb.token("ops-1", vec![Role::Operator], vec![]).await?;
    let analyst = sb.token("analyst-1", vec![Role::Analyst], vec![]).await?;

    // Ready: NATS and every service.
    let ready: Value = sb.http.get(sb.url("/readyz")).send().await?.json().await?;
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(ready["checks"]["nats"], "ok");

    // Nothing counted yet.
    wait_counts(&sb, &analyst, &[]).await?;

    let r = sb
        .http
        .post(sb.url("/api/v1/structures"))
        .bearer_auth(&operator)
        .json(&structure(
            "Chantier d'insertion de l'Eure",
            "732 829 320 00074",
            "aci",
            "27229",
        ))
        .send()
        .await?;
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await?;
    let id = created["id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(created["siret"], "73282932000074");
    assert_eq!(created["kind"], "aci");
    assert!(uuid::Uuid::parse_str(&id).is_ok());

    let r = sb
        .http
        .post(sb.url("/api/v1/structures"))
        .bearer_auth(&operator)
        .json(&structure(
            "CCAS d'Évreux",
            "35600000000010",
            "ccas",
            "27229",
        ))
        .send()
        .await?;
    assert_eq!(r.status(), 201);

    let body = wait_counts(&sb, &analyst, &[("aci", None), ("ccas", None)]).await?;
    wait_total(&sb, &analyst, 2).await?;
    assert_eq!(body["indicator"]["id"], "structures");
    assert!(body["rule"]["method"].as_str().is_some());

    // Read back through the gateway.
    let got: Value = sb
        .http
        .get(sb.url(&format!("/api/v1/structures/{id}")))
        .bearer_auth(&analyst)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(got["name"], "Chantier d'insertion de l'Eure");
    let page: Value = sb
        .http
        .get(sb.url("/api/v1/structures?page_size=1"))
        .bearer_auth(&analyst)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(page["items"].as_array().map(Vec::len), Some(1));
    let next = page["next_page_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(!next.is_empty());
    let page2: Value = sb
        .http
        .get(sb.url(&format!("/api/v1/structures?page_size=1&page_token={next}")))
        .bearer_auth(&analyst)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(page2["items"][0]["kind"], "ccas");
    assert!(page2["next_page_token"].is_null());

    // A move to another commune reaches statistics too.
    let r = sb
        .http
        .patch(sb.url(&format!("/api/v1/structures/{id}")))
        .bearer_auth(&operator)
        .json(&json!({ "commune_insee": "76540" }))
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let body: Value = sb
            .http
            .get(sb.url("/api/v1/statistics/indicators/structures?group_by=departement"))
            .bearer_auth(&analyst)
            .send()
            .await?
            .json()
            .await?;
        let cells = body["cells"].as_array().cloned().unwrap_or_default();
        if cells.len() == 2
            && cells
                .iter()
                .any(|c| c["departement"] == "76" && c["suppressed"] == true)
        {
            break;
        }
        assert!(Instant::now() < deadline, "update not projected: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The same SIRET twice is a conflict, and nothing is counted twice.
    let r = sb
        .http
        .post(sb.url("/api/v1/structures"))
        .bearer_auth(&operator)
        .json(&structure("Doublon", "73282932000074", "ei", "27229"))
        .send()
        .await?;
    assert_eq!(r.status(), 409);
    wait_counts(&sb, &analyst, &[("aci", None), ("ccas", None)]).await?;
    wait_total(&sb, &analyst, 2).await?;

    sb.stop().await
}

#[tokio::test]
async fn skeleton_on_sqlite() -> Result<()> {
    skeleton(Backend::Sqlite).await
}

#[tokio::test]
async fn skeleton_on_postgres() -> Result<()> {
    skeleton(Backend::Postgres).await
}

/// Bad input and missing rights get a problem+json naming what is wrong,
/// and what was stored stays.
#[tokio::test]
async fn errors_are_problems_naming_the_field() -> Result<()> {
    let sb = Sandbox::start(Backend::Sqlite).await?;
    let operator = sb.token("ops-1", vec![Role::Operator], vec![]).await?;
    let counselor = sb.token("c-1", vec![Role::Counselor], vec![]).await?;
    let post = |token: String, body: Value| {
        sb.http
            .post(sb.url("/api/v1/structures"))
            .bearer_auth(token)
            .json(&body)
            .send()
    };
    let ok = structure(
        "Association Emploi",
        "73282932000074",
        "association",
        "27229",
    );
    assert_eq!(post(operator.clone(), ok.clone()).await?.status(), 201);

    let cases = [
        (structure("A", "12345678901234", "aci", "27229"), "siret"),
        (structure("A", "73282932000082", "martian", "27229"), "kind"),
        (
            structure("A", "73282932000082", "aci", "ABCDE"),
            "commune_insee",
        ),
        (structure("", "73282932000082", "aci", "27229"), "name"),
        (
            json!({ "name": "A", "kind": "aci", "commune_insee": "27229" }),
            "body",
        ),
        (
            json!({ "name": "A", "siret": "73282932000082", "kind": "aci", "commune_insee": "27229", "typo": 1 }),
            "body",
        ),
    ];
    for (body, field) in cases {
        let r = post(operator.clone(), body.clone()).await?;
        assert_eq!(r.status(), 400, "{body}");
        assert_eq!(
            r.headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/problem+json")
        );
        let p: Value = r.json().await?;
        assert_eq!(p["status"], 400);
        assert_eq!(p["errors"][0]["field"], field, "{p}");
        assert!(p["detail"].as_str().is_some_and(|d| !d.is_empty()));
    }
    // Malformed JSON.
    let r = sb
        .http
        .post(sb.url("/api/v1/structures"))
        .bearer_auth(&operator)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await?;
    assert_eq!(r.status(), 400);

    // No token, a forged token, the wrong role.
    let r = sb
        .http
        .post(sb.url("/api/v1/structures"))
        .json(&ok)
        .send()
        .await?;
    assert_eq!(r.status(), 401);
    let r = post("x.y.z".into(), ok.clone()).await?;
    assert_eq!(r.status(), 401);
    let r = post(
        counselor.clone(),
        structure("B", "73282932000082", "aci", "27229"),
    )
    .await?;
    assert_eq!(r.status(), 403);
    let r = sb
        .http
        .get(sb.url("/api/v1/statistics/indicators/structures"))
        .bearer_auth(&counselor)
        .send()
        .await?;
    assert_eq!(r.status(), 403);

    // Unknown things.
    let r = sb
        .http
        .get(sb.url(&format!("/api/v1/structures/{}", uuid::Uuid::now_v7())))
        .bearer_auth(&counselor)
        .send()
        .await?;
    assert_eq!(r.status(), 404);
    let r = sb
        .http
        .get(sb.url("/api/v1/structures/not-an-id"))
        .bearer_auth(&counselor)
        .send()
        .await?;
    assert_eq!(r.status(), 400);
    let r = sb.http.get(sb.url("/api/v1/nothing-here")).send().await?;
    assert_eq!(r.status(), 404);
    let analyst = sb.token("a-1", vec![Role::Analyst], vec![]).await?;
    let r = sb
        .http
        .get(sb.url("/api/v1/statistics/indicators/structures?group_by=shoe_size"))
        .bearer_auth(&analyst)
        .send()
        .await?;
    assert_eq!(r.status(), 400);
    let p: Value = r.json().await?;
    assert_eq!(p["errors"][0]["field"], "group_by");
    let r = sb
        .http
        .get(sb.url("/api/v1/statistics/indicators/structures?from=yesterday"))
        .bearer_auth(&analyst)
        .send()
        .await?;
    assert_eq!(r.status(), 400);
    let r = sb
        .http
        .get(sb.url("/api/v1/structures?page_size=-3"))
        .bearer_auth(&analyst)
        .send()
        .await?;
    assert_eq!(r.status(), 400);

    // The first structure is still there, once.
    let page: Value = sb
        .http
        .get(sb.url("/api/v1/structures"))
        .bearer_auth(&analyst)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(page["items"].as_array().map(Vec::len), Some(1));

    // Request ids come back.
    let r = sb.http.get(sb.url("/healthz")).send().await?;
    assert!(r.headers().get("x-request-id").is_some());
    let jwks: Value = sb
        .http
        .get(sb.url("/.well-known/jwks.json"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(jwks["keys"][0]["alg"], "EdDSA");
    sb.stop().await
}
