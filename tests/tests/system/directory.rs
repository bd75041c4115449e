//! The directory of services through the gateway: a structure admin of A
//! creates, reads and changes a service, an admin or counselor of B may
//! not; an operator imports a data·inclusion file of the Eure with good and
//! bad rows (each bad row reported by index, field and reason, nothing of
//! it stored), a file that is not JSON is refused naming `content`, a
//! second import updates; searches by thématique category, publics and
//! territory; an export imports back to the same records; suggestions for
//! a shared diagnostic with `mobilite.permis` rated `frein` put the local
//! driving-licence service first.

use anyhow::{Context, Result};
use eva_platform::auth::Role;
use eva_tests::api::{field_of, get, patch, person, person_token, post, structure, until};
use eva_tests::sandbox::{Backend, Sandbox};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/fixtures/datainclusion/eure.json"
);
const PERMIS_EVREUX: &str = "dora--evreux-auto-ecole-sociale";
const PERMIS_ROUEN: &str = "dora--rouen-auto-ecole-solidaire";

/// POSTs `body` as the raw import file.
async fn import(
    sb: &Sandbox,
    token: &str,
    query: &str,
    body: Vec<u8>,
) -> Result<(StatusCode, Value)> {
    let r = sb
        .http
        .post(sb.url(&format!("/api/v1/services/import?{query}")))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await?;
    let status = r.status();
    let text = r.text().await?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

/// Every service a search finds, following the pages.
async fn all(sb: &Sandbox, token: &str, query: &str) -> Result<Vec<Value>> {
    let mut items = Vec::new();
    let mut page_token = String::new();
    loop {
        let (s, v) = get(
            sb,
            &format!("/api/v1/services?page_size=3&page_token={page_token}&{query}"),
            token,
        )
        .await?;
        assert_eq!(s, 200, "{query}: {v}");
        items.extend(v["items"].as_array().cloned().unwrap_or_default());
        match v["next_page_token"].as_str() {
            Some(t) => page_token = t.to_owned(),
            None => return Ok(items),
        }
    }
}

fn source_ids(items: &[Value]) -> Vec<String> {
    let mut ids: Vec<String> = items
        .iter()
        .map(|i| i["source_id"].as_str().unwrap_or("").to_owned())
        .collect();
    ids.sort();
    ids
}

/// The services as the API shows them, without the time of the last change.
fn without_updated_at(items: &[Value]) -> Vec<Value> {
    items
        .iter()
        .map(|i| {
            let mut i = i.clone();
            if let Some(o) = i.as_object_mut() {
                o.remove("updated_at");
            }
            i
        })
        .collect()
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
    let admin_a = sb
        .token("admin-a", vec![Role::StructureAdmin], vec![a.clone()])
        .await?;
    let counselor_a = sb
        .token("counselor-a", vec![Role::Counselor], vec![a.clone()])
        .await?;
    let admin_b = sb
        .token("admin-b", vec![Role::StructureAdmin], vec![b.clone()])
        .await?;
    let counselor_b = sb
        .token("counselor-b", vec![Role::Counselor], vec![b.clone()])
        .await?;

    // --- Create, read, change -------------------------------------------
    let atelier = json!({
        "structure_id": a,
        "name": "Atelier vélo solidaire",
        "description": "Réparer son vélo avec un mécanicien bénévole et repartir avec un vélo révisé pour aller au travail ou en formation.",
        "types": ["atelier"],
        "thematiques": ["mobilite--mobilite-douce-partagee-collective", "mobilite--entretenir-reparer-son-vehicule"],
        "fees": "gratuit",
        "publics": ["beneficiaires-des-minimas-sociaux"],
        "commune": "Évreux",
        "postal_code": "27000",
        "commune_insee": "27229",
        "eligibility_zone": ["27229"],
        "reception_modes": ["en-presentiel"],
        "mobilisable_by": ["professionnels"],
        "capacity": 8,
        "available_places": 3,
    });
    let (s, created) = post(&sb, "/api/v1/services", &admin_a, atelier.clone()).await?;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let atelier_id = created["id"].as_str().context("service id")?.to_owned();
    assert_eq!(created["source"], "eva");
    assert_eq!(created["source_id"], atelier_id.as_str());
    assert_eq!(created["structure_id"], a.as_str());
    assert_eq!(created["source_structure_id"], a.as_str());
    assert_eq!(created["available_places"], 3);
    assert!(
        created["updated_on"]
            .as_str()
            .is_some_and(|d| d.len() == 10),
        "{created}"
    );

    let mut bad = atelier.clone();
    bad["name"] = json!("AB");
    let (s, v) = post(&sb, "/api/v1/services", &admin_a, bad).await?;
    assert_eq!((s, field_of(&v)), (StatusCode::BAD_REQUEST, "name"), "{v}");
    let mut bad = atelier.clone();
    bad["thematiques"] = json!(["mobilite--teleportation"]);
    let (s, v) = post(&sb, "/api/v1/services", &admin_a, bad).await?;
    assert_eq!(
        (s, field_of(&v)),
        (StatusCode::BAD_REQUEST, "thematiques"),
        "{v}"
    );
    let mut bad = atelier.clone();
    bad["weeks"] = json!("douze");
    let (s, v) = post(&sb, "/api/v1/services", &admin_a, bad).await?;
    assert_eq!((s, field_of(&v)), (StatusCode::BAD_REQUEST, "weeks"), "{v}");
    let (s, v) = post(&sb, "/api/v1/services", &counselor_a, atelier.clone()).await?;
    assert_eq!(s, StatusCode::FORBIDDEN, "a counselor does not create: {v}");
    let (s, v) = post(&sb, "/api/v1/services", &admin_b, atelier.clone()).await?;
    assert_eq!(s, StatusCode::FORBIDDEN, "B does not create for A: {v}");

    let supported = person(&sb, &counselor_a, &a, "Ana", "Zabalveytia").await?;
    let ana = person_token(&sb, &supported).await?;
    let service_path = format!("/api/v1/services/{atelier_id}");
    let (s, v) = get(&sb, &service_path, &ana).await?;
    assert_eq!(s, 200, "the person reads the directory: {v}");
    assert_eq!(v["name"], "Atelier vélo solidaire");

    let (s, v) = patch(
        &sb,
        &service_path,
        &admin_a,
        json!({ "name": "Atelier vélo solidaire d'Évreux", "available_places": 1, "fees_details": null }),
    )
    .await?;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["name"], "Atelier vélo solidaire d'Évreux");
    assert_eq!(v["available_places"], 1);
    assert_eq!(v["capacity"], 8, "fields not sent are kept");
    assert_eq!(v["thematiques"].as_array().map(Vec::len), Some(2));
    let (s, v) = patch(
        &sb,
        &service_path,
        &counselor_b,
        json!({ "name": "Pris par B" }),
    )
    .await?;
    assert_eq!(s, StatusCode::FORBIDDEN, "a counselor of B: {v}");
    let (s, v) = patch(
        &sb,
        &service_path,
        &admin_b,
        json!({ "name": "Pris par B" }),
    )
    .await?;
    assert_eq!(s, StatusCode::FORBIDDEN, "an admin of B: {v}");
    let (s, v) = patch(
        &sb,
        &service_path,
        &admin_a,
        json!({ "postal_code": "2700" }),
    )
    .await?;
    assert_eq!(
        (s, field_of(&v)),
        (StatusCode::BAD_REQUEST, "postal_code"),
        "{v}"
    );
    let (s, v) = patch(&sb, &service_path, &admin_a, json!({ "source": "dora" })).await?;
    assert_eq!(
        (s, field_of(&v)),
        (StatusCode::BAD_REQUEST, "source"),
        "{v}"
    );
    let (s, v) = get(&sb, &service_path, &admin_a).await?;
    assert_eq!(
        (s, &v["name"]),
        (StatusCode::OK, &json!("Atelier vélo solidaire d'Évreux"))
    );

    // --- Import: good rows stored, bad rows reported ---------------------
    let fixture = std::fs::read(FIXTURE)?;
    let good: Vec<Value> = serde_json::from_slice(&fixture)?;
    let mut rows = good.clone();
    let mut bad_postal = good[0].clone();
    bad_postal["id"] = json!("dora--bad-postal");
    bad_postal["code_postal"] = json!("27 000");
    let mut bad_theme = good[2].clone();
    bad_theme["id"] = json!("dora--bad-theme");
    bad_theme["thematiques"] = json!(["numerique--teleportation"]);
    let mut no_name = good[3].clone();
    no_name["id"] = json!("dora--no-name");
    no_name.as_object_mut().context("object")?.remove("nom");
    rows.insert(1, bad_postal);
    rows.insert(4, bad_theme);
    rows.push(no_name);
    let file = serde_json::to_vec(&rows)?;

    let (s, v) = import(&sb, &counselor_a, "source=dora", file.clone()).await?;
    assert_eq!(s, StatusCode::FORBIDDEN, "a counselor does not import: {v}");
    let (s, v) = import(
        &sb,
        &admin_a,
        &format!("source=dora&structure_id={b}"),
        file.clone(),
    )
    .await?;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "A's admin does not import for B: {v}"
    );

    let (s, report) = import(&sb, &operator, "source=dora", file.clone()).await?;
    assert_eq!(s, 200, "{report}");
    assert_eq!(report["created"], 7, "{report}");
    assert_eq!(report["updated"], 0, "{report}");
    let rejected: Vec<(i64, &str, &str)> = report["rejected"]
        .as_array()
        .context("rejected")?
        .iter()
        .map(|r| {
            (
                r["index"].as_i64().unwrap_or(-1),
                r["field"].as_str().unwrap_or(""),
                r["source_id"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        rejected,
        vec![
            (1, "code_postal", "dora--bad-postal"),
            (4, "thematiques", "dora--bad-theme"),
            (9, "nom", "dora--no-name"),
        ],
        "{report}"
    );
    assert!(
        report["rejected"][0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("5 chiffres")),
        "{report}"
    );
    let everything = all(&sb, &operator, "").await?;
    let ids = source_ids(&everything);
    assert_eq!(ids.len(), 8, "{ids:?}");
    for bad in ["dora--bad-postal", "dora--bad-theme", "dora--no-name"] {
        assert!(!ids.iter().any(|i| i == bad), "{bad} stored");
    }

    // A file that is not JSON, or not an array, is refused whole.
    let (s, v) = import(&sb, &operator, "source=dora", b"[{\"id\": \"x\",}".to_vec()).await?;
    assert_eq!(
        (s, field_of(&v)),
        (StatusCode::BAD_REQUEST, "content"),
        "{v}"
    );
    assert!(
        v["detail"].as_str().is_some_and(|d| d.contains("ligne 1")),
        "{v}"
    );
    let (s, v) = import(
        &sb,
        &operator,
        "source=dora",
        b"{\"services\": []}".to_vec(),
    )
    .await?;
    assert_eq!(
        (s, field_of(&v)),
        (StatusCode::BAD_REQUEST, "content"),
        "{v}"
    );

    // Importing again updates; a dry run changes nothing.
    let (s, report) = import(&sb, &operator, "source=dora", fixture.clone()).await?;
    assert_eq!(s, 200, "{report}");
    assert_eq!(
        (report["created"].as_i64(), report["updated"].as_i64()),
        (Some(0), Some(7)),
        "{report}"
    );
    let mut renamed = good.clone();
    renamed[4]["nom"] = json!("Épicerie sociale d'Évreux");
    let (s, report) = import(
        &sb,
        &operator,
        "source=dora&dry_run=true",
        serde_json::to_vec(&renamed)?,
    )
    .await?;
    assert_eq!(
        (s, report["updated"].as_i64()),
        (StatusCode::OK, Some(7)),
        "{report}"
    );
    let epicerie = all(
        &sb,
        &operator,
        "publics=familles&thematiques=equipement-et-alimentation",
    )
    .await?;
    assert_eq!(epicerie.len(), 1);
    assert_eq!(
        epicerie[0]["name"], "Épicerie solidaire du Grand Évreux",
        "dry run stored nothing"
    );

    // A structure admin imports for their own structure only: a service of
    // the operator's import is not theirs to change.
    let own = json!([
        good[0].clone(),
        {
            "source": "dora",
            "structure_id": "dora--chantier-a",
            "id": "dora--chantier-a-code-route",
            "nom": "Code de la route en atelier",
            "description": "Séances collectives de préparation à l'épreuve du code de la route, avec des supports adaptés aux personnes qui lisent peu.",
            "date_maj": "2026-03-01",
            "thematiques": ["mobilite--preparer-un-permis"],
            "zone_eligibilite": ["27229"]
        }
    ]);
    let (s, report) = import(
        &sb,
        &admin_a,
        &format!("source=dora&structure_id={a}"),
        serde_json::to_vec(&own)?,
    )
    .await?;
    assert_eq!(s, 200, "{report}");
    assert_eq!(report["created"], 1, "{report}");
    assert_eq!(report["rejected"][0]["index"], 0, "{report}");
    assert_eq!(report["rejected"][0]["field"], "id", "{report}");
    let mine = all(&sb, &admin_a, &format!("structure_id={a}")).await?;
    assert_eq!(source_ids(&mine), {
        let mut v = vec![atelier_id.clone(), "dora--chantier-a-code-route".to_owned()];
        v.sort();
        v
    });

    // --- Search ------------------------------------------------------------
    let mobilite = source_ids(&all(&sb, &ana, "thematiques=mobilite").await?);
    assert_eq!(mobilite.len(), 6, "{mobilite:?}");
    assert!(mobilite.iter().any(|i| i == PERMIS_ROUEN));
    assert!(!mobilite.iter().any(|i| i.contains("numerique")));
    let local = source_ids(&all(&sb, &ana, "thematiques=mobilite&territory=27229").await?);
    assert_eq!(local.len(), 5, "{local:?}");
    assert!(!local.iter().any(|i| i == PERMIS_ROUEN), "{local:?}");
    assert!(
        local.iter().any(|i| i == "dora--conseil-mobilite-national"),
        "national serves every commune"
    );
    let permis = source_ids(
        &all(
            &sb,
            &ana,
            "thematiques=mobilite--preparer-un-permis,sante&territory=76",
        )
        .await?,
    );
    assert_eq!(permis, vec![PERMIS_ROUEN.to_owned()]);
    let families = source_ids(&all(&sb, &ana, "publics=familles,seniors").await?);
    assert_eq!(
        families,
        vec![
            "dora--evreux-atelier-numerique".to_owned(),
            "dora--evreux-epicerie-solidaire".to_owned(),
            "dora--vernon-point-conseil-budget".to_owned(),
        ]
    );
    let national = source_ids(&all(&sb, &ana, "territory=france").await?);
    assert_eq!(national, vec!["dora--conseil-mobilite-national".to_owned()]);
    let louviers = source_ids(&all(&sb, &ana, "territory=27375").await?);
    assert_eq!(
        louviers,
        vec![
            "dora--conseil-mobilite-national".to_owned(),
            PERMIS_EVREUX.to_owned(),
            "dora--evreux-location-scooters".to_owned(),
            "dora--vernon-point-conseil-budget".to_owned(),
        ]
    );
    let (s, v) = get(&sb, "/api/v1/services?thematiques=mobilite--voler", &ana).await?;
    assert_eq!(
        (s, field_of(&v)),
        (StatusCode::BAD_REQUEST, "thematiques"),
        "{v}"
    );
    let (s, v) = get(&sb, "/api/v1/services?publics=tout-le-monde", &ana).await?;
    assert_eq!(
        (s, field_of(&v)),
        (StatusCode::BAD_REQUEST, "publics"),
        "{v}"
    );
    let (s, v) = get(&sb, "/api/v1/services?territory=Eure", &ana).await?;
    assert_eq!(
        (s, field_of(&v)),
        (StatusCode::BAD_REQUEST, "territory"),
        "{v}"
    );

    // --- Export, then import the export: the same records -----------------
    let before = all(&sb, &operator, "").await?;
    let r = sb
        .http
        .get(sb.url("/api/v1/services/export"))
        .bearer_auth(&operator)
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"))
    );
    assert!(
        r.headers()
            .get("content-disposition")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("attachment"))
    );
    let exported = r.bytes().await?.to_vec();
    let records: Vec<Value> = serde_json::from_slice(&exported)?;
    assert_eq!(records.len(), before.len());
    let permis_record = records
        .iter()
        .find(|r| r["id"] == PERMIS_EVREUX)
        .context("exported record")?;
    assert_eq!(
        permis_record, &good[0],
        "the export writes the schema as imported"
    );
    let (s, report) = import(&sb, &operator, "", exported.clone()).await?;
    assert_eq!(s, 200, "{report}");
    assert_eq!(report["created"], 0, "{report}");
    assert_eq!(
        report["updated"].as_u64(),
        Some(before.len() as u64),
        "{report}"
    );
    assert_eq!(report["rejected"], json!([]), "{report}");
    let after = all(&sb, &operator, "").await?;
    assert_eq!(without_updated_at(&after), without_updated_at(&before));
    let r = sb
        .http
        .get(sb.url("/api/v1/services/export"))
        .bearer_auth(&operator)
        .send()
        .await?;
    assert_eq!(
        r.bytes().await?.to_vec(),
        exported,
        "export → import → export"
    );

    // --- Suggestions ----------------------------------------------------------
    let d = until(
        &sb,
        Method::POST,
        &format!("/api/v1/people/{supported}/diagnostics"),
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
        json!({ "ratings": [
            { "item_id": "mobilite.permis", "level": "frein" },
            { "item_id": "numerique.bases", "level": "point_d_appui" },
        ] }),
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

    // A's territory (Évreux) comes from identity's events: wait for it.
    let suggestions_path = format!("/api/v1/services/suggestions?diagnostic_id={d_id}");
    let v = until(
        &sb,
        Method::GET,
        &suggestions_path,
        &counselor_a,
        None,
        |s, v| {
            s == StatusCode::OK
                && v["items"].as_array().is_some_and(|items| {
                    !items.is_empty()
                        && !items
                            .iter()
                            .any(|i| i["service"]["source_id"] == PERMIS_ROUEN)
                })
        },
    )
    .await?;
    let first = &v["items"][0];
    assert_eq!(first["service"]["source_id"], PERMIS_EVREUX, "{v}");
    assert_eq!(first["domains"], json!(["mobilite"]), "{v}");
    assert_eq!(
        first["matched_thematiques"],
        json!(["mobilite--preparer-un-permis"]),
        "{v}"
    );
    let ids: Vec<&str> = v["items"]
        .as_array()
        .context("items")?
        .iter()
        .filter_map(|i| i["service"]["source_id"].as_str())
        .collect();
    assert_eq!(
        ids,
        vec![PERMIS_EVREUX, "dora--chantier-a-code-route"],
        "only services for the barrier, in A's territory: {v}"
    );
    let (s, v) = get(
        &sb,
        &format!("{suggestions_path}&territory=76"),
        &counselor_a,
    )
    .await?;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["items"][0]["service"]["source_id"], PERMIS_ROUEN, "{v}");
    let (s, v) = get(
        &sb,
        &format!("{suggestions_path}&page_size=1"),
        &counselor_a,
    )
    .await?;
    assert_eq!(s, 200, "{v}");
    let next = v["next_page_token"].as_str().context("a second page")?;
    let (s, v2) = get(
        &sb,
        &format!("{suggestions_path}&page_size=1&page_token={next}"),
        &counselor_a,
    )
    .await?;
    assert_eq!(s, 200, "{v2}");
    assert_eq!(
        v2["items"][0]["service"]["source_id"], "dora--chantier-a-code-route",
        "{v2}"
    );
    let (s, v) = get(&sb, &suggestions_path, &ana).await?;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "the person searches, suggestions are the counselor's: {v}"
    );
    let (s, v) = get(
        &sb,
        "/api/v1/services/suggestions?diagnostic_id=42",
        &counselor_a,
    )
    .await?;
    assert_eq!(
        (s, field_of(&v)),
        (StatusCode::BAD_REQUEST, "diagnostic_id"),
        "{v}"
    );

    // --- Archive: out of searches, suggestions and the export ---------------
    let (s, code) = post(
        &sb,
        "/api/v1/services",
        &admin_a,
        json!({
            "structure_id": a,
            "name": "Code de la route accompagné",
            "description": "Préparer l'examen du code de la route en petit groupe, avec des séances adaptées à celles et ceux qui lisent peu.",
            "types": ["accompagnement"],
            "thematiques": ["mobilite--preparer-un-permis"],
            "commune": "Évreux",
            "postal_code": "27000",
            "commune_insee": "27229",
            "eligibility_zone": ["27229"],
        }),
    )
    .await?;
    assert_eq!(s, StatusCode::CREATED, "{code}");
    assert_eq!(code["status"], "active", "{code}");
    let code_id = code["id"].as_str().context("service id")?.to_owned();
    let suggested = |v: &Value| {
        v["items"]
            .as_array()
            .is_some_and(|items| items.iter().any(|i| i["service"]["id"] == code_id.as_str()))
    };
    until(
        &sb,
        Method::GET,
        &suggestions_path,
        &counselor_a,
        None,
        |s, v| s == StatusCode::OK && suggested(v),
    )
    .await?;
    let archive_path = format!("/api/v1/services/{code_id}/archive");
    for (who, token) in [
        ("a counselor", &counselor_a),
        ("B's admin", &admin_b),
        ("the person", &ana),
    ] {
        let (s, v) = post(&sb, &archive_path, token, json!({})).await?;
        assert_eq!(
            s,
            StatusCode::FORBIDDEN,
            "{who} does not archive A's service: {v}"
        );
    }
    let (s, v) = post(&sb, &archive_path, &admin_a, json!({})).await?;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"], "archived", "{v}");
    assert!(v["archived_at"].is_string(), "{v}");
    // Still readable by id, with its status.
    let (s, v) = get(&sb, &format!("/api/v1/services/{code_id}"), &ana).await?;
    assert_eq!(
        (s, v["status"].as_str()),
        (StatusCode::OK, Some("archived")),
        "{v}"
    );
    // Out of searches…
    let ids = |items: Vec<Value>| -> Vec<String> {
        items
            .iter()
            .filter_map(|i| i["id"].as_str().map(str::to_owned))
            .collect()
    };
    let found = ids(all(&sb, &counselor_a, "thematiques=mobilite").await?);
    assert!(!found.contains(&code_id), "{found:?}");
    let found = ids(all(&sb, &admin_a, &format!("structure_id={a}")).await?);
    assert!(!found.contains(&code_id), "{found:?}");
    // …but the structure's own list may include it.
    let found = ids(all(
        &sb,
        &admin_a,
        &format!("structure_id={a}&include_archived=true"),
    )
    .await?);
    assert!(found.contains(&code_id), "{found:?}");
    let (s, v) = get(
        &sb,
        &format!("/api/v1/services?structure_id={a}&include_archived=true"),
        &counselor_a,
    )
    .await?;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let (s, v) = get(&sb, "/api/v1/services?include_archived=true", &admin_a).await?;
    assert_eq!(
        (s, field_of(&v)),
        (StatusCode::BAD_REQUEST, "include_archived"),
        "{v}"
    );
    // …out of suggestions…
    let (s, v) = get(&sb, &suggestions_path, &counselor_a).await?;
    assert_eq!(s, 200, "{v}");
    assert!(!suggested(&v), "{v}");
    // …out of the data·inclusion export (the schema v1 has no field for a closed service)…
    let r = sb
        .http
        .get(sb.url("/api/v1/services/export"))
        .bearer_auth(&operator)
        .send()
        .await?;
    let records: Vec<Value> = serde_json::from_slice(&r.bytes().await?)?;
    assert!(!records.iter().any(|r| r["id"] == code_id.as_str()));
    assert_eq!(records.len(), before.len(), "the others are still exported");
    // …and no new referral to it.
    let (s, v) = post(
        &sb,
        "/api/v1/referrals",
        &counselor_b,
        json!({
            "person_id": supported,
            "sender_structure_id": b,
            "target_structure_id": a,
            "target_service_id": code_id,
            "domains": ["mobilite"],
            "reason": "Préparer le code",
        }),
    )
    .await?;
    assert_eq!(
        (s, field_of(&v)),
        (StatusCode::BAD_REQUEST, "target_service_id"),
        "{v}"
    );
    // A change leaves it archived; `status` is EVA's.
    let (s, v) = patch(
        &sb,
        &format!("/api/v1/services/{code_id}"),
        &admin_a,
        json!({ "available_places": 2 }),
    )
    .await?;
    assert_eq!(
        (s, v["status"].as_str()),
        (StatusCode::OK, Some("archived")),
        "{v}"
    );
    let (s, v) = patch(
        &sb,
        &format!("/api/v1/services/{code_id}"),
        &admin_a,
        json!({ "status": "active" }),
    )
    .await?;
    assert_eq!(
        (s, field_of(&v)),
        (StatusCode::BAD_REQUEST, "status"),
        "{v}"
    );
    // Opened again, it is back.
    let (s, v) = post(
        &sb,
        &format!("/api/v1/services/{code_id}/unarchive"),
        &counselor_a,
        json!({}),
    )
    .await?;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let (s, v) = post(
        &sb,
        &format!("/api/v1/services/{code_id}/unarchive"),
        &admin_a,
        json!({}),
    )
    .await?;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"], "active", "{v}");
    assert!(v.get("archived_at").is_none_or(Value::is_null), "{v}");
    let found = ids(all(&sb, &counselor_a, "thematiques=mobilite").await?);
    assert!(found.contains(&code_id), "{found:?}");
    let (s, v) = get(&sb, &suggestions_path, &counselor_a).await?;
    assert!(s == StatusCode::OK && suggested(&v), "{v}");
    let (s, v) = post(
        &sb,
        "/api/v1/services/0190f0e0-0000-7000-8000-000000000000/archive",
        &admin_a,
        json!({}),
    )
    .await?;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");

    sb.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite() -> Result<()> {
    story(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres() -> Result<()> {
    story(Backend::Postgres).await
}

/// The largest file an import takes (50 000 rows) goes through within the
/// import's deadline; prints how long it took. Run with `--run-ignored all`.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "scale check, about a minute"]
async fn largest_import_on_sqlite() -> Result<()> {
    let sb = Sandbox::start(Backend::Sqlite).await?;
    let operator = sb.token("ops-1", vec![Role::Operator], vec![]).await?;
    let rows: Vec<Value> = (0..50_000)
        .map(|i| {
            json!({
                "structure_id": format!("s{}", i / 10),
                "id": format!("big--{i}"),
                "nom": format!("Service numéro {i}"),
                "description": "Un service de test pour mesurer l'import du plus gros fichier accepté.",
                "date_maj": "2026-01-01",
                "thematiques": ["mobilite--preparer-un-permis", "numerique--acquerir-un-equipement"],
                "publics": ["jeunes"],
                "zone_eligibilite": [format!("27{:03}", i % 700)],
            })
        })
        .collect();
    let file = serde_json::to_vec(&rows)?;
    let started = std::time::Instant::now();
    let (s, report) = import(&sb, &operator, "source=big", file.clone()).await?;
    println!(
        "import of {} rows ({} bytes): {:?}",
        rows.len(),
        file.len(),
        started.elapsed()
    );
    assert_eq!(s, 200, "{report}");
    assert_eq!(report["created"], 50_000);
    let started = std::time::Instant::now();
    let (s, v) = get(
        &sb,
        "/api/v1/services?thematiques=mobilite&territory=27&page_size=500",
        &operator,
    )
    .await?;
    println!("search: {:?}", started.elapsed());
    assert_eq!(s, 200);
    assert_eq!(v["items"].as_array().map(Vec::len), Some(500));
    sb.stop().await
}
