//! The statistics API through the gateway: the catalogue of indicators,
//! bad questions refused with a problem naming the field, who may ask, the
//! CSV and JSON exports carrying the disclosure rule, the open-data zip
//! (with its dictionary and readme, and its event on JetStream), and the
//! data dictionary. On SQLite and on PostgreSQL.

use std::io::Read;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use eva_platform::auth::Role;
use eva_proto::statistics::v1::OpenDataExportPublished;
use eva_statistics::catalogue::CATALOGUE;
use eva_tests::api::{field_of, get, post, until};
use eva_tests::sandbox::{Backend, Sandbox};
use prost::Message;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const INDICATORS: &str = "/api/v1/statistics/indicators";

/// A download: status, `Content-Type`, `Content-Disposition`, body.
async fn download(
    sb: &Sandbox,
    path: &str,
    token: &str,
) -> Result<(StatusCode, String, String, Vec<u8>)> {
    let r = sb.http.get(sb.url(path)).bearer_auth(token).send().await?;
    let header = |name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (status, kind, disposition) = (
        r.status(),
        header("content-type"),
        header("content-disposition"),
    );
    Ok((status, kind, disposition, r.bytes().await?.to_vec()))
}

async fn last_event(sb: &Sandbox, subject: &str) -> Result<Vec<u8>> {
    let js = async_nats::jetstream::new(sb.nats.connect().await?);
    let stream = js.get_stream("EVA_STATISTICS").await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match stream.get_last_raw_message_by_subject(subject).await {
            Ok(m) => return Ok(m.payload.to_vec()),
            Err(e) if Instant::now() > deadline => bail!("no {subject} event: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

async fn story(backend: Backend) -> Result<()> {
    let sb = Sandbox::start(backend).await?;
    let operator = sb.token("ops-1", vec![Role::Operator], vec![]).await?;
    let analyst = sb.token("analyst-1", vec![Role::Analyst], vec![]).await?;
    let counselor = sb.token("c-1", vec![Role::Counselor], vec![]).await?;
    let keys: Vec<&str> = CATALOGUE.iter().map(|i| i.key).collect();

    // The catalogue, page by page, in its order.
    let mut listed: Vec<String> = Vec::new();
    let mut path = format!("{INDICATORS}?page_size=4");
    loop {
        let (s, page) = get(&sb, &path, &analyst).await?;
        assert_eq!(s, 200, "{page}");
        for i in page["items"].as_array().context("items")? {
            assert!(i["label_fr"].as_str().is_some_and(|l| !l.is_empty()), "{i}");
            assert_eq!(i["dimensions"][0], "month", "{i}");
            listed.push(i["id"].as_str().context("id")?.to_owned());
        }
        match page["next_page_token"].as_str() {
            Some(t) => path = format!("{INDICATORS}?page_size=4&page_token={t}"),
            None => break,
        }
    }
    assert_eq!(listed, keys);
    let (s, p) = get(&sb, &format!("{INDICATORS}?page_token=zzz"), &analyst).await?;
    assert_eq!((s, field_of(&p)), (StatusCode::BAD_REQUEST, "page_token"));

    // A structure makes its commune, EPCI and département known.
    let (s, v) = post(
        &sb,
        "/api/v1/structures",
        &operator,
        json!({ "name": "Chantier de l'Eure", "siret": "73282932000074", "kind": "aci",
                "commune_insee": "27229", "epci": "200089456" }),
    )
    .await?;
    assert_eq!(s, 201, "{v}");
    let answer = until(
        &sb,
        Method::GET,
        &format!("{INDICATORS}/structures?territory=27229&group_by=structure_kind,year"),
        &analyst,
        None,
        |s, v| s == 200 && v["cells"].as_array().is_some_and(|c| c.len() == 1),
    )
    .await?;
    // One structure: under the threshold, so suppressed, with no figure.
    assert_eq!(answer["indicator"]["id"], "structures");
    assert_eq!(answer["rule"]["threshold"], 11);
    assert_eq!(
        answer["rule"]["method"],
        "primary_threshold+secondary_complementary"
    );
    let cell = &answer["cells"][0];
    assert_eq!(cell["structure_kind"], "aci", "{cell}");
    assert!(
        cell["year"].as_str().is_some_and(|y| y.len() == 4),
        "{cell}"
    );
    assert_eq!(cell["suppressed"], true, "{cell}");
    assert!(cell["count"].is_null(), "{cell}");
    // The other levels and spellings answer too; group_by may repeat.
    for ok in [
        "territory=27&from=2020-01-01&to=2099-12-31",
        "territory=%20200089456%20",
        "territory=27&group_by=quarter&group_by=commune",
        "from=2020-01&to=2020-02-29",
    ] {
        let (s, v) = get(&sb, &format!("{INDICATORS}/structures?{ok}"), &analyst).await?;
        assert_eq!(s, 200, "{ok}: {v}");
    }

    // Bad questions: a problem naming the field.
    let cases = [
        ("nope?group_by=year", StatusCode::NOT_FOUND, "indicator_id"),
        (
            "structures?from=2025-06&to=2025-05",
            StatusCode::BAD_REQUEST,
            "from",
        ),
        (
            "structures?from=2025-06-15",
            StatusCode::BAD_REQUEST,
            "from",
        ),
        ("structures?to=2025-06-15", StatusCode::BAD_REQUEST, "to"),
        ("structures?from=yesterday", StatusCode::BAD_REQUEST, "from"),
        (
            "structures?territory=76540",
            StatusCode::BAD_REQUEST,
            "territory",
        ),
        (
            "structures?territory=ABC",
            StatusCode::BAD_REQUEST,
            "territory",
        ),
        (
            "structures?group_by=shoe_size",
            StatusCode::BAD_REQUEST,
            "group_by",
        ),
        (
            "structures?group_by=domain",
            StatusCode::BAD_REQUEST,
            "group_by",
        ),
        (
            "structures?group_by=year,year",
            StatusCode::BAD_REQUEST,
            "group_by",
        ),
        (
            "structures?group_by=year&group_by=month",
            StatusCode::BAD_REQUEST,
            "group_by",
        ),
        (
            "community_questions?territory=27229",
            StatusCode::BAD_REQUEST,
            "territory",
        ),
        ("structures?colour=red", StatusCode::BAD_REQUEST, "query"),
    ];
    for (query, status, field) in cases {
        let r = sb
            .http
            .get(sb.url(&format!("{INDICATORS}/{query}")))
            .bearer_auth(&analyst)
            .send()
            .await?;
        assert_eq!(r.status(), status, "{query}");
        assert_eq!(
            r.headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/problem+json"),
            "{query}"
        );
        let p: Value = r.json().await?;
        assert_eq!(field_of(&p), field, "{query}: {p}");
        assert!(
            p["detail"].as_str().is_some_and(|d| d.contains(" / ")),
            "{p}"
        );
    }
    let (_, p) = get(
        &sb,
        &format!("{INDICATORS}/structures?from=2025-06&to=2025-05"),
        &analyst,
    )
    .await?;
    assert!(
        p["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("la période commence après sa fin")),
        "{p}"
    );
    let (_, p) = get(
        &sb,
        &format!("{INDICATORS}/structures?territory=76540"),
        &analyst,
    )
    .await?;
    assert!(
        p["detail"]
            .as_str()
            .is_some_and(|m| m.contains("code de territoire inconnu")),
        "{p}"
    );
    let (_, p) = get(
        &sb,
        &format!("{INDICATORS}/structures?group_by=domain"),
        &analyst,
    )
    .await?;
    assert!(
        p["detail"]
            .as_str()
            .is_some_and(|m| m.contains("structure_kind")),
        "lists the allowed: {p}"
    );

    // Statistics are for analysts and operators.
    for path in [
        INDICATORS.to_owned(),
        format!("{INDICATORS}/structures"),
        "/api/v1/statistics/exports/structures.csv".into(),
        "/api/v1/statistics/exports/open-data.zip".into(),
        "/api/v1/statistics/dictionary".into(),
    ] {
        let (s, _) = get(&sb, &path, &counselor).await?;
        assert_eq!(s, StatusCode::FORBIDDEN, "{path}");
    }
    let (s, _) = get(&sb, &format!("{INDICATORS}/structures"), &operator).await?;
    assert_eq!(s, 200);

    // CSV export: header, one row, the rule on it.
    let (s, kind, disposition, body) = download(
        &sb,
        "/api/v1/statistics/exports/structures.csv?group_by=structure_kind&from=2020-01",
        &analyst,
    )
    .await?;
    assert_eq!(s, 200);
    assert!(kind.starts_with("text/csv"), "{kind}");
    assert!(
        disposition.starts_with("attachment; filename=\"structures_2020-01_"),
        "{disposition}"
    );
    assert!(disposition.ends_with(".csv\""), "{disposition}");
    let csv = String::from_utf8(body)?;
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "structure_kind,count,value,suppressed,threshold,rule"
    );
    assert_eq!(lines.len(), 2, "{csv}");
    assert_eq!(
        lines[1], "aci,,,true,11,primary_threshold+secondary_complementary",
        "the rule on every row"
    );
    // Bad questions get the same problems on exports.
    let (s, p) = get(
        &sb,
        "/api/v1/statistics/exports/structures.csv?territory=ABC",
        &analyst,
    )
    .await?;
    assert_eq!((s, field_of(&p)), (StatusCode::BAD_REQUEST, "territory"));
    let (s, _) = get(&sb, "/api/v1/statistics/exports/nope.csv", &analyst).await?;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = get(&sb, "/api/v1/statistics/exports/structures.xls", &analyst).await?;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // JSON export: the answer's shape, the dictionary entry, the rule.
    let (s, kind, disposition, body) = download(
        &sb,
        "/api/v1/statistics/exports/structures.json?group_by=structure_kind",
        &analyst,
    )
    .await?;
    assert_eq!(s, 200);
    assert_eq!(kind, "application/json");
    assert!(disposition.contains(".json\""), "{disposition}");
    let doc: Value = serde_json::from_slice(&body)?;
    assert_eq!(doc["indicator"]["id"], "structures");
    assert_eq!(doc["rule"]["threshold"], 11);
    assert!(
        doc["rule"]["description_fr"]
            .as_str()
            .is_some_and(|d| !d.is_empty())
    );
    assert_eq!(doc["dictionary"]["id"], "structures");
    assert_eq!(doc["query"]["group_by"], json!(["structure_kind"]));
    assert_eq!(doc["cells"][0]["structure_kind"], "aci");
    assert!(doc["cells"][0]["count"].is_null());

    // Open data: a zip with one CSV per open indicator, the dictionary and
    // the readme; its publication goes on JetStream.
    let (s, kind, disposition, body) = download(
        &sb,
        "/api/v1/statistics/exports/open-data.zip?from=2020-01",
        &analyst,
    )
    .await?;
    assert_eq!(s, 200);
    assert_eq!(kind, "application/zip");
    assert!(disposition.ends_with(".zip\""), "{disposition}");
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(body))?;
    let names: Vec<String> = zip
        .file_names()
        .filter_map(Result::ok)
        .map(|n| n.into_owned())
        .collect();
    for i in CATALOGUE {
        assert_eq!(
            names.contains(&format!("{}.csv", i.key)),
            i.open_data,
            "{}: {names:?}",
            i.key
        );
    }
    let mut read = |name: &str| -> Result<String> {
        let mut s = String::new();
        zip.by_name(name)?.read_to_string(&mut s)?;
        Ok(s)
    };
    let dictionary: Value = serde_json::from_str(&read("dictionnaire.json")?)?;
    assert_eq!(dictionary["rule"]["threshold"], 11);
    assert_eq!(
        dictionary["excluded_domains"],
        json!(["sante", "difficultes-administratives-ou-juridiques"])
    );
    let readme = read("LISEZMOI.txt")?;
    assert!(
        readme.contains("secret statistique") && readme.contains("Disclosure rule"),
        "{readme}"
    );
    let prevalence = read("barrier_prevalence.csv")?;
    assert!(
        prevalence.starts_with("year,departement,domain,count,"),
        "{prevalence}"
    );
    assert!(!prevalence.contains(",sante,"));
    let structures = read("structures.csv")?;
    let year = answer["cells"][0]["year"].as_str().unwrap_or_default();
    let row = format!("{year},27,,,true,11,primary_threshold+secondary_complementary");
    assert!(
        structures.lines().nth(1).is_some_and(|l| l == row),
        "{structures}"
    );
    let published = OpenDataExportPublished::decode(
        last_event(&sb, "eva.statistics.export.published")
            .await?
            .as_slice(),
    )?;
    assert_eq!(published.threshold, 11);
    assert!(
        published
            .indicator_ids
            .iter()
            .any(|i| i == "barrier_prevalence")
    );
    assert!(!published.indicator_ids.iter().any(|i| i == "qvt_index"));

    let (s, kind, _, body) =
        download(&sb, "/api/v1/statistics/exports/open-data.json", &analyst).await?;
    assert_eq!(s, 200);
    assert_eq!(kind, "application/json");
    let doc: Value = serde_json::from_slice(&body)?;
    assert_eq!(doc["rule"]["threshold"], 11);
    assert!(
        doc["readme"]
            .as_str()
            .is_some_and(|r| r.contains("dictionnaire.json"))
    );
    assert_eq!(
        doc["indicators"].as_array().map(Vec::len),
        Some(CATALOGUE.iter().filter(|i| i.open_data).count())
    );
    let (s, p) = get(
        &sb,
        "/api/v1/statistics/exports/open-data.zip?territory=27",
        &analyst,
    )
    .await?;
    assert_eq!((s, field_of(&p)), (StatusCode::BAD_REQUEST, "query"));
    let (s, p) = get(
        &sb,
        "/api/v1/statistics/exports/open-data.zip?from=2025-02-02",
        &analyst,
    )
    .await?;
    assert_eq!((s, field_of(&p)), (StatusCode::BAD_REQUEST, "from"));

    // The dictionary: every indicator, its dimensions explained, the rule.
    let (s, d) = get(&sb, "/api/v1/statistics/dictionary", &analyst).await?;
    assert_eq!(s, 200, "{d}");
    let ids: Vec<&str> = d["indicators"]
        .as_array()
        .context("indicators")?
        .iter()
        .filter_map(|i| i["id"].as_str())
        .collect();
    assert_eq!(ids, keys);
    assert_eq!(d["rule"]["threshold"], 11);
    for i in d["indicators"].as_array().into_iter().flatten() {
        for dim in i["dimensions"].as_array().into_iter().flatten() {
            assert!(
                dim["description_fr"]
                    .as_str()
                    .is_some_and(|s| !s.is_empty()),
                "{dim}"
            );
        }
    }
    sb.stop().await
}

#[tokio::test]
async fn statistics_api_on_sqlite() -> Result<()> {
    story(Backend::Sqlite).await
}

#[tokio::test]
async fn statistics_api_on_postgres() -> Result<()> {
    story(Backend::Postgres).await
}
