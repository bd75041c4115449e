//! Who may do what with structures, through the gateway: every route ×
//! every role × own/other structure. The directory of structures is open to
//! every signed-in account (counselors need it to refer people); changing it
//! is for operators and the structure's own admins.

use anyhow::Result;
use eva_platform::auth::Role;
use eva_tests::api::{get, request, siret, structure};
use eva_tests::sandbox::{Backend, Sandbox};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn structure_routes_authorisation_matrix() -> Result<()> {
    let sb = Sandbox::start(Backend::Sqlite).await?;
    let op = sb.token("ops", vec![Role::Operator], vec![]).await?;
    let mut ids = Vec::new();
    for (i, kind) in ["aci", "association"].iter().enumerate() {
        ids.push(structure(&sb, &op, &format!("Structure {i}"), &siret(i as u64), kind).await?);
    }
    let (a, b) = (ids[0].clone(), ids[1].clone());
    let path_a = format!("/api/v1/structures/{a}");
    let callers: Vec<(&str, Option<String>)> = vec![
        ("none", None),
        (
            "person",
            Some(sb.token("p", vec![Role::Person], vec![]).await?),
        ),
        (
            "counselor A",
            Some(
                sb.token("c", vec![Role::Counselor], vec![a.clone()])
                    .await?,
            ),
        ),
        (
            "admin A",
            Some(
                sb.token("aa", vec![Role::StructureAdmin], vec![a.clone()])
                    .await?,
            ),
        ),
        (
            "admin B",
            Some(
                sb.token("ab", vec![Role::StructureAdmin], vec![b.clone()])
                    .await?,
            ),
        ),
        (
            "partner",
            Some(sb.token("pa", vec![Role::Partner], vec![b.clone()]).await?),
        ),
        (
            "analyst",
            Some(sb.token("an", vec![Role::Analyst], vec![]).await?),
        ),
        ("operator", Some(op.clone())),
    ];
    //                      none person cA   aA   aB   partner analyst operator
    let create = [401, 403, 403, 403, 403, 403, 403, 201];
    let list = [401, 200, 200, 200, 200, 200, 200, 200];
    let read = [401, 200, 200, 200, 200, 200, 200, 200];
    let patch_a = [401, 403, 403, 200, 403, 403, 403, 200];
    for (i, (who, token)) in callers.iter().enumerate() {
        let t = token.as_deref();
        let body = json!({ "name": format!("Nouvelle {i}"), "siret": siret(100 + i as u64), "kind": "ei", "commune_insee": "27229" });
        assert_eq!(
            request(&sb, Method::POST, "/api/v1/structures", t, Some(&body))
                .await?
                .0,
            create[i],
            "{who} POST /structures"
        );
        assert_eq!(
            request(&sb, Method::GET, "/api/v1/structures", t, None)
                .await?
                .0,
            list[i],
            "{who} GET /structures"
        );
        assert_eq!(
            request(&sb, Method::GET, &path_a, t, None).await?.0,
            read[i],
            "{who} GET /structures/A"
        );
        let patch = json!({ "name": format!("Renommée par {who}") });
        assert_eq!(
            request(&sb, Method::PATCH, &path_a, t, Some(&patch))
                .await?
                .0,
            patch_a[i],
            "{who} PATCH /structures/A"
        );
    }
    // Refused changes left nothing behind: only the operator and A's admin renamed A.
    let (_, got) = get(&sb, &path_a, &op).await?;
    assert_eq!(got["name"], "Renommée par operator");
    let (_, page) = get(&sb, "/api/v1/structures?page_size=100", &op).await?;
    assert_eq!(
        page["items"].as_array().map(Vec::len),
        Some(3),
        "only the operator created one"
    );
    sb.stop().await
}
