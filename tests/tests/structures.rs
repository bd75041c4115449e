//! Who may do what with structures, through the gateway: every route ×
//! every role × own/other structure. The directory of structures is open to
//! every signed-in account (counselors need it to refer people); changing it
//! is for operators and the structure's own admins.

use anyhow::Result;
use eva_platform::auth::Role;
use eva_tests::sandbox::{Backend, Sandbox};
use serde_json::{Value, json};

/// A SIRET with a valid Luhn key, distinct for each `n`.
fn siret(n: u64) -> String {
    let base = format!("7328293{:06}", n % 1_000_000);
    for key in 0..10 {
        let s = format!("{base}{key}");
        let sum: u32 = s
            .bytes()
            .rev()
            .enumerate()
            .map(|(i, b)| {
                let d = u32::from(b - b'0');
                if i % 2 == 1 {
                    if d * 2 > 9 { d * 2 - 9 } else { d * 2 }
                } else {
                    d
                }
            })
            .sum();
        if sum.is_multiple_of(10) {
            return s;
        }
    }
    unreachable!("one key in ten passes Luhn")
}

async fn status(
    sb: &Sandbox,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Result<u16> {
    let mut req = sb.http.request(method.parse()?, sb.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    Ok(req.send().await?.status().as_u16())
}

#[tokio::test]
async fn structure_routes_authorisation_matrix() -> Result<()> {
    let sb = Sandbox::start(Backend::Sqlite).await?;
    let op = sb.token("ops", vec![Role::Operator], vec![]).await?;
    let mut ids = Vec::new();
    for (i, kind) in ["aci", "association"].iter().enumerate() {
        let r = sb
            .http
            .post(sb.url("/api/v1/structures"))
            .bearer_auth(&op)
            .json(&json!({ "name": format!("Structure {i}"), "siret": siret(i as u64), "kind": kind, "commune_insee": "27229" }))
            .send()
            .await?;
        assert_eq!(r.status(), 201);
        ids.push(
            r.json::<Value>().await?["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    let (a, b) = (ids[0].clone(), ids[1].clone());
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
    let get = [401, 200, 200, 200, 200, 200, 200, 200];
    let patch_a = [401, 403, 403, 200, 403, 403, 403, 200];
    for (i, (who, token)) in callers.iter().enumerate() {
        let t = token.as_deref();
        let body = json!({ "name": format!("Nouvelle {i}"), "siret": siret(100 + i as u64), "kind": "ei", "commune_insee": "27229" });
        assert_eq!(
            status(&sb, "POST", "/api/v1/structures", t, Some(body)).await?,
            create[i],
            "{who} POST /structures"
        );
        assert_eq!(
            status(&sb, "GET", "/api/v1/structures", t, None).await?,
            list[i],
            "{who} GET /structures"
        );
        assert_eq!(
            status(&sb, "GET", &format!("/api/v1/structures/{a}"), t, None).await?,
            get[i],
            "{who} GET /structures/A"
        );
        let patch = json!({ "name": format!("Renommée par {who}") });
        assert_eq!(
            status(
                &sb,
                "PATCH",
                &format!("/api/v1/structures/{a}"),
                t,
                Some(patch)
            )
            .await?,
            patch_a[i],
            "{who} PATCH /structures/A"
        );
    }
    // Refused changes left nothing behind: only the operator and A's admin renamed A.
    let got: Value = sb
        .http
        .get(sb.url(&format!("/api/v1/structures/{a}")))
        .bearer_auth(&op)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(got["name"], "Renommée par operator");
    let page: Value = sb
        .http
        .get(sb.url("/api/v1/structures?page_size=100"))
        .bearer_auth(&op)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(
        page["items"].as_array().map(Vec::len),
        Some(3),
        "only the operator created one"
    );
    sb.stop().await
}
