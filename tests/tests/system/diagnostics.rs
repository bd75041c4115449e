//! Issue 4's story, through the gateway against the real system: counselor A
//! records a diagnostic with ratings and notes, the person rates themself,
//! A shares it; the person moves to structure B and consents to every domain
//! but the sensitive ones; B reads A's diagnostic (`sante` withheld,
//! `mobilite` visible with A's notes), records and shares the next one, which
//! supersedes A's; the comparison shows what moved; the person's access log
//! lists B's reads; the statistics event carries no person id and no note;
//! the export holds the diagnostics and erasure removes them.
//! Then bad input, and a structure with no consent at all.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use eva_platform::auth::Role;
use eva_proto::diagnostics::v1 as pb;
use eva_tests::api::{consent, field_of, get, patch, person, person_token, post, structure, until};
use eva_tests::sandbox::{Backend, Sandbox};
use prost::Message;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const SIRET_A: &str = "41735218600007";
const SIRET_B: &str = "51734218700005";
const SIRET_C: &str = "61737218800004";
const NOTE_A: &str = "Permis B en cours, code obtenu en mars";
const NOTE_SANTE: &str = "Suivi médical régulier pour le dos";
const NOTE_PERSON: &str = "Je veux passer la conduite avant l'été";

fn domain<'a>(d: &'a Value, id: &str) -> &'a Value {
    d["domains"]
        .as_array()
        .and_then(|ds| ds.iter().find(|x| x["domain_id"] == id))
        .unwrap_or(&Value::Null)
}

fn item<'a>(d: &'a Value, domain_id: &str, item_id: &str) -> &'a Value {
    domain(d, domain_id)["items"]
        .as_array()
        .and_then(|is| is.iter().find(|x| x["item_id"] == item_id))
        .unwrap_or(&Value::Null)
}

async fn last_event(sb: &Sandbox, subject: &str) -> Result<(Vec<u8>, String)> {
    let js = async_nats::jetstream::new(sb.nats.connect().await?);
    let stream = js.get_stream("EVA_DIAGNOSTICS").await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match stream.get_last_raw_message_by_subject(subject).await {
            Ok(m) => return Ok((m.payload.to_vec(), format!("{:?}", m.headers))),
            Err(e) if Instant::now() > deadline => bail!("no {subject} event: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

async fn story(backend: Backend) -> Result<()> {
    let sb = Sandbox::start(backend).await?;
    let operator = sb.token("ops-1", vec![Role::Operator], vec![]).await?;
    let a = structure(&sb, &operator, "Chantier A", SIRET_A, "association").await?;
    let b = structure(&sb, &operator, "Association B", SIRET_B, "association").await?;
    let c = structure(&sb, &operator, "Association C", SIRET_C, "association").await?;
    let counselor_a = sb
        .token("counselor-a", vec![Role::Counselor], vec![a.clone()])
        .await?;
    let counselor_b = sb
        .token("counselor-b", vec![Role::Counselor], vec![b.clone()])
        .await?;
    let counselor_c = sb
        .token("counselor-c", vec![Role::Counselor], vec![c.clone()])
        .await?;

    // A registers Ana: A follows her.
    let person = person(&sb, &counselor_a, &a, "Ana", "Zabalveytia").await?;
    let ana = person_token(&sb, &person).await?;
    let list_path = format!("/api/v1/people/{person}/diagnostics");

    // A opens a draft (once its accompaniments projection has caught up).
    let d1 = until(
        &sb,
        Method::POST,
        &list_path,
        &counselor_a,
        Some(json!({ "structure_id": a })),
        |s, _| s == StatusCode::CREATED,
    )
    .await?;
    let d1_id = d1["id"].as_str().context("diagnostic id")?.to_owned();
    assert_eq!(d1["status"], "brouillon");
    assert_eq!(d1["referentiel_version"], "2026.1");
    assert_eq!(domain(&d1, "mobilite")["access"], "visible");
    let d1_path = format!("/api/v1/diagnostics/{d1_id}");

    // Bad input names the field.
    let (s, v) = patch(
        &sb,
        &d1_path,
        &counselor_a,
        json!({ "ratings": [{ "item_id": "mobilite.permis", "level": "frein" }, { "item_id": "mobilite.fusee", "level": "frein" }] }),
    )
    .await?;
    assert_eq!(
        (s, field_of(&v)),
        (StatusCode::BAD_REQUEST, "ratings[1].item_id"),
        "{v}"
    );
    let (s, v) = patch(
        &sb,
        &d1_path,
        &counselor_a,
        json!({ "ratings": [{ "item_id": "mobilite.permis", "level": "catastrophique" }] }),
    )
    .await?;
    assert_eq!(
        (s, field_of(&v)),
        (StatusCode::BAD_REQUEST, "ratings[0].level"),
        "{v}"
    );
    // Only the recording structure rates.
    let (s, v) = patch(
        &sb,
        &d1_path,
        &counselor_b,
        json!({ "ratings": [{ "item_id": "mobilite.permis", "level": "frein" }] }),
    )
    .await?;
    assert_eq!(s, 403, "{v}");

    // A rates with notes.
    let (s, v) = patch(
        &sb,
        &d1_path,
        &counselor_a,
        json!({ "ratings": [
            { "item_id": "mobilite.permis", "level": "frein", "note": NOTE_A },
            { "item_id": "mobilite.vehicule", "level": "frein_majeur" },
            { "item_id": "mobilite.budget", "level": "sans_impact" },
            { "item_id": "sante.acces_aux_soins", "level": "frein", "note": NOTE_SANTE },
        ] }),
    )
    .await?;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        item(&v, "mobilite", "mobilite.permis")["counselor_level"],
        "frein"
    );
    assert_eq!(
        item(&v, "mobilite", "mobilite.permis")["counselor_note"],
        NOTE_A
    );

    // Ana rates herself, independently.
    let (s, v) = post(
        &sb,
        &format!("{d1_path}/self-rating"),
        &ana,
        json!({ "ratings": [{ "item_id": "mobilite.permis", "level": "sans_impact", "note": NOTE_PERSON }] }),
    )
    .await?;
    assert_eq!(s, 200, "{v}");
    let permis = item(&v, "mobilite", "mobilite.permis");
    assert_eq!(permis["person_level"], "sans_impact");
    assert_eq!(permis["counselor_level"], "frein");
    assert_eq!(permis["person_note"], NOTE_PERSON);
    assert_eq!(
        item(&v, "sante", "sante.acces_aux_soins")["counselor_note"],
        NOTE_SANTE
    );

    // A shares it.
    let (s, v) = post(&sb, &format!("{d1_path}/share"), &counselor_a, json!({})).await?;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["diagnostic"]["status"], "partage");
    assert!(v["superseded_diagnostic_id"].is_null(), "{v}");
    // A shared diagnostic is no longer rated by the counselor.
    let (s, v) = patch(
        &sb,
        &d1_path,
        &counselor_a,
        json!({ "ratings": [{ "item_id": "mobilite.permis", "level": "frein" }] }),
    )
    .await?;
    assert_eq!((s, field_of(&v)), (StatusCode::CONFLICT, "status"), "{v}");

    // The statistics event: no person id, no note, no ids in headers.
    let (payload, headers) = last_event(&sb, "eva.diagnostics.diagnostic.shared").await?;
    let shared = pb::DiagnosticShared::decode(payload.as_slice())?;
    assert_eq!(shared.referentiel_version, "2026.1");
    assert!(!shared.statistics_pseudonym.is_empty());
    assert_ne!(shared.statistics_pseudonym, person);
    assert_eq!(
        shared.context.as_ref().map(|c| c.departement.as_str()),
        Some("27")
    );
    assert!(
        shared
            .items
            .iter()
            .any(|i| i.item_id == "mobilite.permis" && i.counselor_level == pb::Level::Frein as i32)
    );
    for needle in [
        person.as_str(),
        NOTE_A,
        NOTE_SANTE,
        NOTE_PERSON,
        d1_id.as_str(),
    ] {
        assert!(
            !contains(&payload, needle),
            "event payload carries {needle}"
        );
        assert!(!headers.contains(needle), "event headers carry {needle}");
    }

    // C has no consent at all: 403; and does not see the history.
    let (s, v) = get(&sb, &d1_path, &counselor_c).await?;
    assert_eq!(s, 403, "{v}");

    // Ana moves to B (share code) and consents to every non-sensitive domain.
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
    consent(&sb, &ana, &person, &b, &[], &["accompagnement"]).await?;

    // B reads A's diagnostic: sante withheld, mobilite visible with A's notes.
    let seen = until(&sb, Method::GET, &d1_path, &counselor_b, None, |s, _| {
        s == StatusCode::OK
    })
    .await?;
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut seen = seen;
    while domain(&seen, "mobilite")["access"] != "visible" && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        seen = get(&sb, &d1_path, &counselor_b).await?.1;
    }
    assert_eq!(domain(&seen, "mobilite")["access"], "visible", "{seen}");
    assert_eq!(
        item(&seen, "mobilite", "mobilite.permis")["counselor_note"],
        NOTE_A
    );
    assert_eq!(
        item(&seen, "mobilite", "mobilite.permis")["person_note"],
        NOTE_PERSON
    );
    let sante = domain(&seen, "sante");
    assert_eq!(sante["access"], "withheld", "{seen}");
    assert!(sante.get("items").is_none(), "{sante}");
    assert!(!seen.to_string().contains(NOTE_SANTE));
    assert_eq!(
        domain(&seen, "difficultes-administratives-ou-juridiques")["access"],
        "withheld"
    );

    // B's history view lists A's diagnostic.
    let (s, v) = until(&sb, Method::GET, &list_path, &counselor_b, None, |s, _| {
        s == StatusCode::OK
    })
    .await
    .map(|v| (StatusCode::OK, v))?;
    assert_eq!(s, 200);
    assert_eq!(v["items"][0]["id"], d1_id.as_str(), "{v}");
    assert_eq!(v["items"][0]["structure_id"], a.as_str());

    // B records the next diagnostic and shares it: A's is superseded.
    let (s, d2) = post(&sb, &list_path, &counselor_b, json!({ "structure_id": b })).await?;
    assert_eq!(s, 201, "{d2}");
    let d2_id = d2["id"].as_str().context("diagnostic id")?.to_owned();
    let d2_path = format!("/api/v1/diagnostics/{d2_id}");
    let (s, v) = patch(
        &sb,
        &d2_path,
        &counselor_b,
        json!({ "ratings": [
            { "item_id": "mobilite.permis", "level": "point_d_appui", "note": "Permis obtenu" },
            { "item_id": "mobilite.vehicule", "level": "frein_majeur" },
            { "item_id": "mobilite.budget", "level": "frein" },
            { "item_id": "mobilite.transports_en_commun", "level": "sans_impact" },
        ] }),
    )
    .await?;
    assert_eq!(s, 200, "{v}");
    let (s, v) = post(&sb, &format!("{d2_path}/share"), &counselor_b, json!({})).await?;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["superseded_diagnostic_id"], d1_id.as_str());
    let (s, v) = get(&sb, &d1_path, &ana).await?;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"], "remplace");
    assert_eq!(v["superseded_by_diagnostic_id"], d2_id.as_str());
    let (payload, _) = last_event(&sb, "eva.diagnostics.diagnostic.superseded").await?;
    let sup = pb::DiagnosticSuperseded::decode(payload.as_slice())?;
    assert_eq!(sup.statistics_pseudonym, shared.statistics_pseudonym);
    assert!(!contains(&payload, &person));

    // The comparison, as B sees it.
    let (s, cmp) = get(
        &sb,
        &format!("/api/v1/diagnostics/compare?from={d1_id}&to={d2_id}"),
        &counselor_b,
    )
    .await?;
    assert_eq!(s, 200, "{cmp}");
    let line = |id: &str| {
        cmp["items"]
            .as_array()
            .and_then(|is| is.iter().find(|x| x["item_id"] == id))
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(
        line("mobilite.permis")["counselor_evolution"],
        "improved",
        "{cmp}"
    );
    assert_eq!(
        line("mobilite.vehicule")["counselor_evolution"],
        "unchanged"
    );
    assert_eq!(line("mobilite.budget")["counselor_evolution"], "worsened");
    assert_eq!(
        line("mobilite.transports_en_commun")["counselor_evolution"],
        "newly_addressed"
    );
    assert_eq!(line("sante.acces_aux_soins")["access"], "withheld");
    assert!(line("sante.acces_aux_soins")["from_counselor_level"].is_null());

    // The person's access log lists B's reads of the diagnostic.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (s, v) = get(
            &sb,
            &format!("/api/v1/people/{person}/access-log?page_size=500"),
            &ana,
        )
        .await?;
        assert_eq!(s, 200, "{v}");
        let found = v["items"].as_array().is_some_and(|items| {
            items.iter().any(|e| {
                e["service"] == "diagnostics"
                    && e["resource_type"] == "diagnostic"
                    && e["resource_id"] == d1_id.as_str()
                    && e["actor_structure_id"] == b.as_str()
                    && e["action"] == "read"
            })
        });
        if found {
            break;
        }
        if Instant::now() > deadline {
            bail!("B's read is not in the access log: {v}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The export holds the diagnostics, notes included.
    let (s, v) = post(
        &sb,
        &format!("/api/v1/people/{person}/export"),
        &ana,
        json!({}),
    )
    .await?;
    assert_eq!(s, 200, "{v}");
    let part = &v["services"]["diagnostics"];
    assert_eq!(part["data"].as_array().map(Vec::len), Some(2), "{part}");
    assert!(part.to_string().contains(NOTE_A), "{part}");

    // Erasure: the person's diagnostics go with their key.
    let (s, v) = post(
        &sb,
        &format!("/api/v1/people/{person}/erase"),
        &ana,
        json!({ "confirm": true }),
    )
    .await?;
    assert_eq!(s, 200, "{v}");
    for path in [&d1_path, &d2_path] {
        until(&sb, Method::GET, path, &counselor_b, None, |s, _| {
            s == StatusCode::NOT_FOUND
        })
        .await?;
    }
    // On SQLite, the freed pages are scrubbed: no row of hers is left in
    // the diagnostics database files.
    if matches!(backend, Backend::Sqlite) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let mut left = false;
            for entry in std::fs::read_dir(&sb.config.data_dir)? {
                let path = entry?.path();
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
                if name.starts_with("diagnostics.db") {
                    left |= contains(&std::fs::read(&path)?, &d1_id);
                }
            }
            if !left {
                break;
            }
            if Instant::now() > deadline {
                bail!("the erased diagnostics are still in the database files");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
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

/// The caseload's latest diagnostics: one question for a page of people,
/// metadata only, for members of a structure about the people it follows.
async fn latest_of_a_caseload(backend: Backend) -> Result<()> {
    let sb = Sandbox::start(backend).await?;
    let operator = sb.token("ops-1", vec![Role::Operator], vec![]).await?;
    let a = structure(&sb, &operator, "Chantier A", SIRET_A, "association").await?;
    let b = structure(&sb, &operator, "Association B", SIRET_B, "association").await?;
    let c = structure(&sb, &operator, "Association C", SIRET_C, "association").await?;
    let counselor_a = sb
        .token("counselor-a", vec![Role::Counselor], vec![a.clone()])
        .await?;
    let counselor_b = sb
        .token("counselor-b", vec![Role::Counselor], vec![b.clone()])
        .await?;
    let counselor_c = sb
        .token("counselor-c", vec![Role::Counselor], vec![c.clone()])
        .await?;

    // A follows Ana (one shared diagnostic, then a draft) and Bruno (none);
    // B follows Dan (a draft of B's).
    let ana = person(&sb, &counselor_a, &a, "Ana", "Zabalveytia").await?;
    let bruno = person(&sb, &counselor_a, &a, "Bruno", "Keita").await?;
    let dan = person(&sb, &counselor_b, &b, "Dan", "Moreau").await?;
    let open = |person: String, token: String, structure: String| {
        let sb = &sb;
        async move {
            until(
                sb,
                Method::POST,
                &format!("/api/v1/people/{person}/diagnostics"),
                &token,
                Some(json!({ "structure_id": structure })),
                |s, _| s == StatusCode::CREATED,
            )
            .await
            .and_then(|v| Ok(v["id"].as_str().context("diagnostic id")?.to_owned()))
        }
    };
    let first = open(ana.clone(), counselor_a.clone(), a.clone()).await?;
    let (s, v) = patch(
        &sb,
        &format!("/api/v1/diagnostics/{first}"),
        &counselor_a,
        json!({ "ratings": [{ "item_id": "mobilite.permis", "level": "frein", "note": NOTE_A }] }),
    )
    .await?;
    assert_eq!(s, 200, "{v}");
    let (s, v) = post(
        &sb,
        &format!("/api/v1/diagnostics/{first}/share"),
        &counselor_a,
        json!({}),
    )
    .await?;
    assert_eq!(s, 200, "{v}");
    let draft = open(ana.clone(), counselor_a.clone(), a.clone()).await?;
    open(dan.clone(), counselor_b.clone(), b.clone()).await?;

    // A asks about Ana, Bruno, Dan (not followed by A), and Ana again.
    let path =
        format!("/api/v1/structures/{a}/latest-diagnostics?person_ids={ana},{bruno},{dan},{ana}");
    let v = until(&sb, Method::GET, &path, &counselor_a, None, |s, v| {
        s == StatusCode::OK && v["items"].as_array().is_some_and(|i| i.len() == 2)
    })
    .await?;
    let items = v["items"].as_array().context("items")?;
    assert_eq!(items[0]["person_id"], ana.as_str(), "{v}");
    assert_eq!(items[0]["latest"]["id"], draft.as_str(), "{v}");
    assert_eq!(items[0]["latest"]["status"], "brouillon", "{v}");
    assert!(items[0]["latest"]["created_at"].is_string(), "{v}");
    assert!(items[0]["latest"]["shared_at"].is_null(), "{v}");
    assert_eq!(items[1]["person_id"], bruno.as_str(), "{v}");
    assert!(items[1]["latest"].is_null(), "{v}");
    // Nothing sealed, no rating, nothing about Dan.
    let text = v.to_string();
    for needle in [NOTE_A, "frein", "mobilite", dan.as_str()] {
        assert!(!text.contains(needle), "{needle} in {v}");
    }

    // Ana also hands B a share code: B sees A's shared diagnostic, not A's draft.
    let ana_token = person_token(&sb, &ana).await?;
    let (s, v) = post(&sb, "/api/v1/me/share-codes", &ana_token, json!({})).await?;
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
    let path_b = format!("/api/v1/structures/{b}/latest-diagnostics?person_ids={ana},{dan}");
    let v = until(&sb, Method::GET, &path_b, &counselor_b, None, |s, v| {
        s == StatusCode::OK && v["items"].as_array().is_some_and(|i| i.len() == 2)
    })
    .await?;
    assert_eq!(v["items"][0]["latest"]["id"], first.as_str(), "{v}");
    assert_eq!(v["items"][0]["latest"]["status"], "partage", "{v}");
    assert!(v["items"][0]["latest"]["shared_at"].is_string(), "{v}");
    assert_eq!(v["items"][1]["latest"]["status"], "brouillon", "{v}");

    // C follows none of them: nothing about them.
    let (s, v) = get(
        &sb,
        &format!("/api/v1/structures/{c}/latest-diagnostics?person_ids={ana},{bruno}"),
        &counselor_c,
    )
    .await?;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["items"], json!([]), "{v}");
    // A non-member is refused; so is a person.
    for token in [&counselor_c, &ana_token] {
        let (s, v) = get(&sb, &path, token).await?;
        assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    }
    // Bad input names the field.
    let bad = [
        (
            format!("/api/v1/structures/{a}/latest-diagnostics?person_ids={ana},pas-un-id"),
            "person_ids",
        ),
        (
            format!("/api/v1/structures/pas-un-id/latest-diagnostics?person_ids={ana}"),
            "structure_id",
        ),
        (
            format!(
                "/api/v1/structures/{a}/latest-diagnostics?person_ids={}",
                vec![ana.as_str(); 501].join(",")
            ),
            "person_ids",
        ),
    ];
    for (p, field) in bad {
        let (s, v) = get(&sb, &p, &counselor_a).await?;
        assert_eq!((s, field_of(&v)), (StatusCode::BAD_REQUEST, field), "{v}");
    }

    // The read is in each person's access log, as the list of people is.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (s, v) = get(
            &sb,
            &format!("/api/v1/people/{bruno}/access-log?page_size=500"),
            &person_token(&sb, &bruno).await?,
        )
        .await?;
        assert_eq!(s, 200, "{v}");
        let found = v["items"].as_array().is_some_and(|items| {
            items.iter().any(|e| {
                e["service"] == "diagnostics"
                    && e["resource_type"] == "diagnostic"
                    && e["actor_structure_id"] == a.as_str()
                    && e["action"] == "read"
            })
        });
        if found {
            break;
        }
        if Instant::now() > deadline {
            bail!("A's read is not in Bruno's access log: {v}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    sb.stop().await
}

#[tokio::test]
async fn latest_of_a_caseload_on_sqlite() -> Result<()> {
    latest_of_a_caseload(Backend::Sqlite).await
}

#[tokio::test]
async fn latest_of_a_caseload_on_postgres() -> Result<()> {
    latest_of_a_caseload(Backend::Postgres).await
}
