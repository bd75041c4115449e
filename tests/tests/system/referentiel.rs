//! The référentiel commun through the gateway: every signed-in account reads
//! the current version and any version by its label; an unknown version is a
//! 404 naming `version`; without a token, 401. The service records the
//! versions it loaded, on SQLite and on PostgreSQL.

use anyhow::Result;
use eva_platform::auth::Role;
use eva_platform::consent::DOMAINS;
use eva_tests::api::{get, request};
use eva_tests::sandbox::{Backend, Sandbox};
use reqwest::Method;
use serde_json::Value;

async fn story(backend: Backend) -> Result<()> {
    let sb = Sandbox::start(backend).await?;
    let counselor = sb
        .token(
            "c",
            vec![Role::Counselor],
            vec![uuid::Uuid::now_v7().to_string()],
        )
        .await?;

    // The current version.
    let (status, r) = get(&sb, "/api/v1/referentiel", &counselor).await?;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["version"], "2026.1");
    assert_eq!(r["published_on"], "2026-01-01");
    assert_eq!(r["current"], true);
    let levels: Vec<_> = r["levels"]
        .as_array()
        .expect("levels")
        .iter()
        .map(|l| l["code"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        levels,
        [
            "non_aborde",
            "frein_majeur",
            "frein",
            "sans_impact",
            "point_d_appui"
        ]
    );
    let domains = r["domains"].as_array().expect("domains");
    assert_eq!(domains.len(), 11);
    for (d, p) in domains.iter().zip(DOMAINS) {
        assert_eq!(d["id"], p.id);
        assert_eq!(d["sensitive"], p.sensitive, "{}", p.id);
        let items = d["items"].as_array().expect("items");
        assert!((3..=8).contains(&items.len()), "{}: {}", p.id, items.len());
        for i in items {
            assert!(
                !i["label_fr"].as_str().unwrap_or_default().is_empty(),
                "{i}"
            );
        }
    }
    let sante = domains.iter().find(|d| d["id"] == "sante").expect("sante");
    assert_eq!(sante["sensitive"], true);
    assert_eq!(sante["france_travail_code"], "25");
    let numerique = domains
        .iter()
        .find(|d| d["id"] == "numerique")
        .expect("numerique");
    assert_eq!(numerique["france_travail_code"], Value::Null);
    let mobilite = &domains[0];
    assert_eq!(mobilite["items"][0]["id"], "mobilite.permis");
    assert_eq!(
        mobilite["items"][0]["data_inclusion_thematiques"][0],
        "mobilite--preparer-un-permis"
    );

    // By its label, the same version.
    let (status, by_label) = get(&sb, "/api/v1/referentiel/versions/2026.1", &counselor).await?;
    assert_eq!(status, 200, "{by_label}");
    assert_eq!(by_label, r);

    // The list, newest first.
    let (status, list) = get(&sb, "/api/v1/referentiel/versions", &counselor).await?;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["items"][0]["version"], "2026.1");
    assert_eq!(list["items"][0]["current"], true);
    assert_eq!(list["next_page_token"], Value::Null);
    let (status, bad) = get(&sb, "/api/v1/referentiel/versions?page_size=-1", &counselor).await?;
    assert_eq!(status, 400, "{bad}");
    assert!(bad.to_string().contains("page_size"), "{bad}");

    // An unknown version: 404 naming the field.
    let (status, problem) = get(&sb, "/api/v1/referentiel/versions/1999.9", &counselor).await?;
    assert_eq!(status, 404, "{problem}");
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("version") && detail.contains("1999.9"),
        "{problem}"
    );

    // Every signed-in role reads it; nobody without a token.
    for role in [
        Role::Person,
        Role::Partner,
        Role::Analyst,
        Role::Operator,
        Role::StructureAdmin,
    ] {
        let t = sb.token("x", vec![role], vec![]).await?;
        let (status, _) = get(&sb, "/api/v1/referentiel", &t).await?;
        assert_eq!(status, 200, "{role:?}");
    }
    for path in [
        "/api/v1/referentiel",
        "/api/v1/referentiel/versions",
        "/api/v1/referentiel/versions/2026.1",
    ] {
        let (status, problem) = request(&sb, Method::GET, path, None, None).await?;
        assert_eq!(status, 401, "{path}: {problem}");
    }

    // Readiness lists diagnostics.
    let (status, ready) = request(&sb, Method::GET, "/readyz", None, None).await?;
    assert_eq!(status, 200);
    assert_eq!(ready["checks"]["diagnostics"], "ok", "{ready}");

    sb.stop().await
}

#[tokio::test]
async fn referentiel_through_the_gateway_on_sqlite() -> Result<()> {
    story(Backend::Sqlite).await
}

#[tokio::test]
async fn referentiel_through_the_gateway_on_postgres() -> Result<()> {
    story(Backend::Postgres).await
}
