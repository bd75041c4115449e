//! Community's French full-text search and personal-data screen, end to end
//! through the gateway on the real system (SQLite and PostgreSQL): posts
//! seeded through the content API, searched regardless of accents, case and
//! plurals, best match first; texts screened for a NIR, a phone number, an
//! e-mail and the name of a person the author's structure follows (through
//! identity's blind indexes), not of a person another structure follows.

use anyhow::{Context, Result};
use eva_platform::auth::Role;
use eva_platform::db::Db;
use eva_platform::on_backend;
use eva_proto::identity::v1::MatchFollowedNamesRequest;
use eva_proto::identity::v1::person_service_client::PersonServiceClient;
use eva_tests::api::{field_of, get, person, post, siret, structure};
use eva_tests::sandbox::{Backend, Sandbox};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

fn kinds(v: &Value) -> Vec<(String, String)> {
    v["findings"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|f| {
                    (
                        f["kind"].as_str().unwrap_or_default().to_owned(),
                        f["field"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Calls identity's `MatchFollowedNames` with `token`; the gRPC status on
/// refusal.
async fn match_names(
    sb: &Sandbox,
    token: &str,
    structure_id: &str,
    candidates: &[&str],
) -> Result<Vec<String>, tonic::Status> {
    let channel = tonic::transport::Channel::from_shared(sb.config.identity.endpoint.clone())
        .map_err(|e| tonic::Status::internal(e.to_string()))?
        .connect()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let mut req = tonic::Request::new(MatchFollowedNamesRequest {
        structure_id: structure_id.to_owned(),
        candidates: candidates.iter().map(|c| c.to_string()).collect(),
    });
    let bearer = format!("Bearer {token}")
        .parse()
        .map_err(|_| tonic::Status::internal("token"))?;
    req.metadata_mut().insert("authorization", bearer);
    Ok(PersonServiceClient::new(channel)
        .match_followed_names(req)
        .await?
        .into_inner()
        .matched)
}

async fn scenario(backend: Backend, n: u64) -> Result<()> {
    let sb = Sandbox::start(backend).await?;
    let operator = sb
        .token(&Uuid::now_v7().to_string(), vec![Role::Operator], vec![])
        .await?;
    let s1 = structure(
        &sb,
        &operator,
        "Association Un",
        &siret(n * 10 + 1),
        "association",
    )
    .await?;
    let s2 = structure(
        &sb,
        &operator,
        "Association Deux",
        &siret(n * 10 + 2),
        "association",
    )
    .await?;
    let c1 = sb
        .token(
            &Uuid::now_v7().to_string(),
            vec![Role::Counselor],
            vec![s1.clone()],
        )
        .await?;
    let c2 = sb
        .token(
            &Uuid::now_v7().to_string(),
            vec![Role::Counselor],
            vec![s2.clone()],
        )
        .await?;

    // --- Screening -------------------------------------------------------
    person(&sb, &c1, &s1, "Maite", "Zabalveytia").await?;
    person(&sb, &c2, &s2, "Peio", "Oyharcabal").await?;

    let (s, v) = post(
        &sb,
        "/api/v1/community/screen",
        &c1,
        json!({"fields": {"title": "Suivi", "body": "J'ai vu Mme Zabalveytia hier"}}),
    )
    .await?;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        kinds(&v),
        vec![("person_name".into(), "body".into())],
        "{v}"
    );
    assert_eq!(v["findings"][0]["start"], 12);
    assert_eq!(v["findings"][0]["end"], 23);

    // First and last name together are one finding.
    let (_, v) = post(
        &sb,
        "/api/v1/community/screen",
        &c1,
        json!({"fields": {"title": "", "body": "rdv avec maite zabalveytia et Maite Zabalveytia"}}),
    )
    .await?;
    assert_eq!(
        kinds(&v),
        vec![("person_name".into(), "body".into())],
        "{v}"
    );
    assert_eq!(v["findings"][0]["start"], 30);
    assert_eq!(v["findings"][0]["end"], 47);

    // People registered before the name-match indexes existed are indexed
    // by the first check that meets them.
    let url = sb
        .config
        .identity
        .database_url(&sb.config.data_dir, "identity");
    let identity_db = Db::connect(&url, 1).await?;
    let mut tx = identity_db.begin().await?;
    on_backend!(tx.conn(), c => sqlx::query(
        "UPDATE people SET last_name_bidx = '', full_name_bidx = ''"
    )
    .execute(&mut *c)
    .await
    .map(|_| ()))?;
    tx.commit().await?;
    let (_, v) = post(
        &sb,
        "/api/v1/community/screen",
        &c1,
        json!({"fields": {"title": "", "body": "J'ai vu Mme Zabalveytia hier"}}),
    )
    .await?;
    assert_eq!(
        kinds(&v),
        vec![("person_name".into(), "body".into())],
        "{v}"
    );
    let mut h = identity_db.acquire().await?;
    let empty: i64 = on_backend!(h.conn(), c => sqlx::query_scalar(
        "SELECT COUNT(*) FROM people WHERE last_name_bidx = ''"
    )
    .fetch_one(&mut *c)
    .await)?;
    drop(h);
    assert_eq!(
        empty, 1,
        "only the other structure's person is left to index"
    );
    identity_db.close().await;

    // A person followed by another structure is not found.
    let (s, v) = post(
        &sb,
        "/api/v1/community/screen",
        &c1,
        json!({"fields": {"title": "", "body": "J'ai vu M. Oyharcabal hier"}}),
    )
    .await?;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(kinds(&v).is_empty(), "{v}");
    // … but that structure's counselor is warned.
    let (_, v) = post(
        &sb,
        "/api/v1/community/screen",
        &c2,
        json!({"fields": {"title": "", "body": "J'ai vu M. Oyharcabal hier"}}),
    )
    .await?;
    assert_eq!(
        kinds(&v),
        vec![("person_name".into(), "body".into())],
        "{v}"
    );

    // Identity's MatchFollowedNames, asked directly: only the caller's own
    // structure, at most 500 candidates, only given strings come back.
    let matched = match_names(
        &sb,
        &c1,
        &s1,
        &["Zabalveytia", "Maite Zabalveytia", "Oyharcabal", "Maite"],
    )
    .await?;
    assert_eq!(matched, vec!["Zabalveytia", "Maite Zabalveytia"]);
    let e = match_names(&sb, &c1, &s2, &["Oyharcabal"])
        .await
        .err()
        .context("other structure")?;
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    let many: Vec<String> = (0..501).map(|i| format!("Nom{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let e = match_names(&sb, &c1, &s1, &many)
        .await
        .err()
        .context("too many")?;
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    assert!(e.message().starts_with("candidates"), "{}", e.message());

    // NIR (key checked), phone, e-mail.
    let (_, v) = post(
        &sb,
        "/api/v1/community/screen",
        &c1,
        json!({"fields": {
            "title": "Appeler le 06 12 34 56 78",
            "body": "NIR 1 85 05 78 006 084 91, écrire à m.z@exemple.fr ; dossier 185057800608492"
        }}),
    )
    .await?;
    assert_eq!(
        kinds(&v),
        vec![
            ("phone".into(), "title".into()),
            ("nir".into(), "body".into()),
            ("email".into(), "body".into()),
        ],
        "{v}"
    );
    let (_, v) = post(
        &sb,
        "/api/v1/community/screen",
        &c1,
        json!({"fields": {"title": "Garde d'enfants", "body": "Quelles solutions en horaires décalés ?"}}),
    )
    .await?;
    assert!(kinds(&v).is_empty(), "{v}");
    // Unknown JSON field, and a role that may not screen.
    let (s, v) = post(
        &sb,
        "/api/v1/community/screen",
        &c1,
        json!({"fields": {"texte": "x"}}),
    )
    .await?;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, _) = post(
        &sb,
        "/api/v1/community/screen",
        &operator,
        json!({"fields": {"body": "x"}}),
    )
    .await?;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // --- Search, seeded through the content API --------------------------
    let (s, space) = post(
        &sb,
        "/api/v1/community/spaces",
        &operator,
        json!({"name": "Paris", "kind": "territory", "territory_code": "75"}),
    )
    .await?;
    assert_eq!(s, StatusCode::CREATED, "{space}");
    let space_id = space["id"].as_str().context("space id")?.to_owned();
    for t in [&c1, &c2] {
        let (s, v) = post(
            &sb,
            &format!("/api/v1/community/spaces/{space_id}/join"),
            t,
            json!({}),
        )
        .await?;
        assert!(s.is_success(), "join: {s} {v}");
    }
    let mut ids = Vec::new();
    for (title, body) in [
        (
            "Horaires d'ouverture de la CAF",
            "Quels sont les horaires du point d'accueil le samedi ?",
        ),
        (
            "Garde d'enfant en horaires decales ?",
            "Une maman commence à 5 heures du matin : quelle solution de garde ?",
        ),
    ] {
        let (s, q) = post(
            &sb,
            "/api/v1/community/questions",
            &c1,
            json!({"space_id": space_id, "title": title, "body": body}),
        )
        .await?;
        assert_eq!(s, StatusCode::CREATED, "{q}");
        ids.push(q["id"].as_str().context("question id")?.to_owned());
    }
    // A post naming a followed person is refused until anonymised.
    let (s, v) = post(
        &sb,
        "/api/v1/community/questions",
        &c1,
        json!({"space_id": space_id, "title": "Garde", "body": "Mme Zabalveytia cherche une garde, 06 12 34 56 78"}),
    )
    .await?;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(
        v["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("données personnelles"),
        "{v}"
    );
    assert_eq!(field_of(&v), "body", "{v}");

    let (s, v) = get(
        &sb,
        "/api/v1/community/search?q=garde%20d'enfants%20horaires%20d%C3%A9cal%C3%A9s",
        &c2,
    )
    .await?;
    assert_eq!(s, StatusCode::OK, "{v}");
    let items = v["items"].as_array().context("items")?;
    assert_eq!(items[0]["content"]["content_id"], ids[1].as_str(), "{v}");
    assert_eq!(items[0]["content"]["kind"], "question");
    assert_eq!(items[0]["title"], "Garde d'enfant en horaires decales ?");
    assert_eq!(items[1]["content"]["content_id"], ids[0].as_str(), "{v}");
    assert!(items[0]["score"].as_f64() > items[1]["score"].as_f64());

    // Paging.
    let (s, v) = get(&sb, "/api/v1/community/search?q=horaires&page_size=1", &c1).await?;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["items"].as_array().map(Vec::len), Some(1));
    let token = v["next_page_token"]
        .as_str()
        .context("next page")?
        .to_owned();
    let (_, v2) = get(
        &sb,
        &format!("/api/v1/community/search?q=horaires&page_size=1&page_token={token}"),
        &c1,
    )
    .await?;
    assert_eq!(v2["items"].as_array().map(Vec::len), Some(1));
    assert_ne!(v["items"][0]["content"], v2["items"][0]["content"]);
    assert!(v2["next_page_token"].is_null(), "{v2}");

    // Filters and bad input, named.
    let (_, v) = get(
        &sb,
        "/api/v1/community/search?q=horaires&kind=solution",
        &c1,
    )
    .await?;
    assert_eq!(v["items"], json!([]), "{v}");
    let (s, v) = get(&sb, "/api/v1/community/search?q=horaires&kind=sheet", &c1).await?;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(field_of(&v), "kind");
    let (s, v) = get(&sb, "/api/v1/community/search?q=de%20la", &c1).await?;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(field_of(&v), "query");
    let (s, _) = get(&sb, "/api/v1/community/search?q=horaires", &operator).await?;
    assert_eq!(s, StatusCode::FORBIDDEN);

    sb.stop().await
}

#[tokio::test]
async fn search_and_screen_on_sqlite() -> Result<()> {
    scenario(Backend::Sqlite, 71).await
}

#[tokio::test]
async fn search_and_screen_on_postgres() -> Result<()> {
    scenario(Backend::Postgres, 72).await
}
