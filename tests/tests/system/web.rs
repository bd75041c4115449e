//! The web client in a real browser: headless Chromium driven by node and playwright-core
//! (`tests/e2e`, installed by `scripts/ensure-tools.sh`). This file makes the fixtures
//! through the API — structures, a counselor's, a person's and an analyst's accounts with
//! passwords, consents, an accompaniment, a non-empty access log, figures above the
//! disclosure threshold — then runs a journey script with them in `EVA_E2E` (JSON) and
//! fails with node's output when it fails. `EVA_SCREENSHOTS=1` writes the journey's
//! screenshots into `docs/screenshots`; otherwise they go to a temporary folder.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use eva_platform::auth::Role;
use eva_platform::consent::DOMAINS;
use eva_tests::api::{
    consent, get, patch, person, person_token, post, request, siret, structure, until,
};
use eva_tests::sandbox::{Backend, Sandbox};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// How long one journey may take, browser start included.
const NODE_TIMEOUT: Duration = Duration::from_secs(180);

const SIRET_A: &str = "41735218600007";
const SIRET_B: &str = "51734218700005";
const SIRET_D: &str = "61737218800004";

const COUNSELOR_EMAIL: &str = "camille.conseil@exemple.fr";
const COUNSELOR_PASSWORD: &str = "deux chats au soleil";
const PERSON_EMAIL: &str = "ana.lindqvist@exemple.fr";
const PERSON_PASSWORD: &str = "un jardin sous la pluie";
const ANALYST_EMAIL: &str = "dominique.analyse@exemple.fr";
const ANALYST_PASSWORD: &str = "trois merles sur un fil";
const ADMIN_EMAIL: &str = "sacha.admin@exemple.fr";
const ADMIN_PASSWORD: &str = "une lampe dans le grenier";
const PARTNER_EMAIL: &str = "lou.partenaire@exemple.fr";
const PARTNER_PASSWORD: &str = "le train de sept heures";
const COUNSELOR_C_EMAIL: &str = "nour.conseil@exemple.fr";
const COUNSELOR_C_PASSWORD: &str = "quatre vents sur la colline";

/// The repository's root (this crate is `tests/`).
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Runs `node tests/e2e/<script>` with `fixtures` in `EVA_E2E` and screenshots into
/// `screenshots`; fails with its output when it exits non-zero or takes too long.
async fn run_node(script: &str, fixtures: &Value, screenshots: &Path) -> Result<()> {
    let root = repo();
    let e2e = root.join("tests/e2e");
    if !e2e.join("node_modules/playwright-core").is_dir() {
        bail!("tests/e2e/node_modules is missing: run scripts/ensure-tools.sh (npm ci)");
    }
    if !Path::new("/usr/bin/chromium").exists() {
        bail!("/usr/bin/chromium is missing: run scripts/ensure-tools.sh (apt-get install)");
    }
    let child = tokio::process::Command::new("node")
        .arg(e2e.join(script))
        .current_dir(&root)
        .env("EVA_E2E", fixtures.to_string())
        .env("EVA_E2E_SCREENSHOTS", screenshots)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting node (is Node.js installed?)")?;
    let started = Instant::now();
    let out = tokio::time::timeout(NODE_TIMEOUT, child.wait_with_output())
        .await
        .with_context(|| format!("node {script}: no end after {NODE_TIMEOUT:?}"))??;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        bail!("node {script} failed ({}):\n{text}", out.status);
    }
    println!("node {script}: {:?}\n{text}", started.elapsed());
    Ok(())
}

/// Where the journey's screenshots go: `docs/screenshots` with `EVA_SCREENSHOTS=1`,
/// else a temporary folder (kept while the returned guard lives).
fn screenshots_dir() -> Result<(PathBuf, Option<tempfile::TempDir>)> {
    if std::env::var("EVA_SCREENSHOTS").is_ok_and(|v| v == "1") {
        let dir = repo().join("docs/screenshots");
        std::fs::create_dir_all(&dir)?;
        return Ok((dir, None));
    }
    let tmp = tempfile::tempdir()?;
    Ok((tmp.path().to_path_buf(), Some(tmp)))
}

/// Adds a member to `structure` as the operator and accepts the invitation with
/// `password`: the member's user id.
async fn member(
    sb: &Sandbox,
    operator: &str,
    structure: &str,
    email: &str,
    role: &str,
    display_name: &str,
    password: &str,
) -> Result<String> {
    let (s, v) = post(
        sb,
        &format!("/api/v1/structures/{structure}/members"),
        operator,
        json!({ "email": email, "display_name": display_name, "role": role }),
    )
    .await?;
    if s != StatusCode::CREATED {
        bail!("adding {email}: {s} {v}");
    }
    let code = v["invitation"]["code"]
        .as_str()
        .context("invitation code")?;
    accept(sb, code, password, display_name).await?;
    Ok(v["member"]["user_id"]
        .as_str()
        .context("user id")?
        .to_owned())
}

async fn accept(sb: &Sandbox, code: &str, password: &str, name: &str) -> Result<()> {
    let body = json!({ "code": code, "password": password, "display_name": name });
    let (s, v) = request(
        sb,
        Method::POST,
        "/api/v1/auth/invitations/accept",
        None,
        Some(&body),
    )
    .await?;
    if s != StatusCode::OK {
        bail!("accepting an invitation: {s} {v}");
    }
    Ok(())
}

/// Logs in with e-mail and password, as the browser will: the access token.
async fn login(sb: &Sandbox, email: &str, password: &str) -> Result<String> {
    let body = json!({ "email": email, "password": password });
    let (s, v) = request(sb, Method::POST, "/api/v1/auth/login", None, Some(&body)).await?;
    if s != StatusCode::OK {
        bail!("logging in as {email}: {s} {v}");
    }
    Ok(v["access_token"]
        .as_str()
        .context("access token")?
        .to_owned())
}

/// Calls GET `path` until `check` holds (projections catch up), for at most 20 s.
async fn wait_for(
    sb: &Sandbox,
    path: &str,
    token: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (s, v) = get(sb, path, token).await?;
        if s == StatusCode::OK && check(&v) {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("{what}: GET {path}: {s} {v}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The journey's world, made through the API: structures A (an association, the
/// counselor's), B (a partner to refer to) and D (a département, the analyst's); a
/// counselor of A, an analyst of D, and a person followed by A with her own account, a
/// consent to A for each domain, an accompaniment, and two reads of her file in her
/// access log. The person of the counselor's step is created in the browser.
async fn world(sb: &Sandbox) -> Result<Value> {
    let operator = sb.token("ops-1", vec![Role::Operator], vec![]).await?;
    let (a_name, b_name, d_name) = (
        "Association Le Relais",
        "Auto-école solidaire du Vexin",
        "Département de l'Eure",
    );
    let a = structure(sb, &operator, a_name, SIRET_A, "association").await?;
    let b = structure(sb, &operator, b_name, SIRET_B, "partner").await?;
    let d = structure(sb, &operator, d_name, SIRET_D, "departement").await?;

    member(
        sb,
        &operator,
        &a,
        COUNSELOR_EMAIL,
        "counselor",
        "Camille Conseil",
        COUNSELOR_PASSWORD,
    )
    .await?;
    member(
        sb,
        &operator,
        &d,
        ANALYST_EMAIL,
        "analyst",
        "Dominique Analyse",
        ANALYST_PASSWORD,
    )
    .await?;
    let counselor = login(sb, COUNSELOR_EMAIL, COUNSELOR_PASSWORD).await?;

    // The counselor registers Ana (her accompaniment by A opens with her file) and
    // invites her to her own account; she accepts with a password.
    let (s, v) = post(
        sb,
        "/api/v1/people",
        &counselor,
        json!({
            "structure_id": a,
            "first_name": "Ana",
            "last_name": "Lindqvist",
            "birth_date": "1985-05-20",
            "email": PERSON_EMAIL,
            "commune_insee": "27229",
        }),
    )
    .await?;
    if s != StatusCode::CREATED {
        bail!("registering the person: {s} {v}");
    }
    let person = v["id"].as_str().context("person id")?.to_owned();
    if v["accompaniment"]["id"].as_str().is_none() {
        bail!("the person's registration opened no accompaniment: {v}");
    }
    let (s, v) = post(
        sb,
        &format!("/api/v1/people/{person}/invitations"),
        &counselor,
        json!({}),
    )
    .await?;
    if s != StatusCode::CREATED {
        bail!("inviting the person: {s} {v}");
    }
    accept(
        sb,
        v["code"].as_str().context("person's code")?,
        PERSON_PASSWORD,
        "Ana",
    )
    .await?;
    let ana = login(sb, PERSON_EMAIL, PERSON_PASSWORD).await?;

    // One consent to A per domain, so withdrawing one leaves the others.
    for domain in DOMAINS {
        let (s, v) = post(
            sb,
            &format!("/api/v1/people/{person}/consents"),
            &ana,
            json!({ "grantee_structure_id": a, "domains": [domain.id],
                    "purposes": ["accompagnement", "orientation"] }),
        )
        .await?;
        if s != StatusCode::CREATED {
            bail!("consent for {}: {s} {v}", domain.id);
        }
    }

    // The counselor reads Ana's file twice: her access log is not empty.
    for _ in 0..2 {
        let (s, v) = get(sb, &format!("/api/v1/people/{person}"), &counselor).await?;
        if s != StatusCode::OK {
            bail!("reading the person: {s} {v}");
        }
    }
    wait_for(
        sb,
        &format!("/api/v1/people/{person}/access-log"),
        &ana,
        "access log",
        |v| v["items"].as_array().is_some_and(|i| i.len() >= 3),
    )
    .await?;

    // Three structures this year: above the threshold of 2, a figure the analyst sees.
    let analyst = login(sb, ANALYST_EMAIL, ANALYST_PASSWORD).await?;
    wait_for(
        sb,
        "/api/v1/statistics/indicators/structures?group_by=year",
        &analyst,
        "structures indicator",
        |v| {
            v["cells"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["count"].as_i64() == Some(3)))
        },
    )
    .await?;

    let mut fx = json!({
        "baseUrl": sb.gateway,
        "counselor": { "email": COUNSELOR_EMAIL, "password": COUNSELOR_PASSWORD,
                       "name": "Camille Conseil" },
        "person": { "email": PERSON_EMAIL, "password": PERSON_PASSWORD, "id": person,
                    "first_name": "Ana", "last_name": "Lindqvist" },
        "analyst": { "email": ANALYST_EMAIL, "password": ANALYST_PASSWORD,
                     "name": "Dominique Analyse" },
        "structures": {
            "a": { "id": a, "name": a_name },
            "b": { "id": b, "name": b_name },
            "d": { "id": d, "name": d_name },
        },
    });
    let ids = Ids {
        operator,
        counselor,
        ana,
        person,
        a,
        b,
    };
    more(sb, &ids, &mut fx).await?;
    Ok(fx)
}

/// Tokens and ids `world` hands to `more`.
struct Ids {
    operator: String,
    counselor: String,
    ana: String,
    person: String,
    a: String,
    b: String,
}

/// The rest of the world, for the areas' journeys: A's admin, B's partner, C (an
/// association) and its counselor; Ana's diagnostics (two shared, one draft); a
/// referral A→B for Ana and C→A for Bruno; B's service in the directory; a community
/// question of A's counselor answered by C's, and a solution sheet.
async fn more(sb: &Sandbox, ids: &Ids, fx: &mut Value) -> Result<()> {
    let Ids {
        operator,
        counselor,
        ana,
        person: ana_id,
        a,
        b,
    } = ids;
    let c_name = "Maison de l'emploi de Vernon";
    let c = structure(sb, operator, c_name, &siret(901), "association").await?;
    member(
        sb,
        operator,
        a,
        ADMIN_EMAIL,
        "structure_admin",
        "Sacha Admin",
        ADMIN_PASSWORD,
    )
    .await?;
    member(
        sb,
        operator,
        b,
        PARTNER_EMAIL,
        "partner",
        "Lou Partenaire",
        PARTNER_PASSWORD,
    )
    .await?;
    member(
        sb,
        operator,
        &c,
        COUNSELOR_C_EMAIL,
        "counselor",
        "Nour Conseil",
        COUNSELOR_C_PASSWORD,
    )
    .await?;
    let counselor_c = login(sb, COUNSELOR_C_EMAIL, COUNSELOR_C_PASSWORD).await?;

    // Ana's diagnostics by A: a first one, a second where some items moved, a draft.
    let (s, referentiel) = get(sb, "/api/v1/referentiel", counselor).await?;
    if s != StatusCode::OK {
        bail!("référentiel: {s} {referentiel}");
    }
    let items: Vec<String> = referentiel["domains"]
        .as_array()
        .context("domains")?
        .iter()
        .filter(|d| d["sensitive"] != true)
        .take(3)
        .flat_map(|d| {
            d["items"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .take(2)
        })
        .filter_map(|i| i["id"].as_str().map(str::to_owned))
        .collect();
    if items.len() < 6 {
        bail!("the référentiel has too few items: {items:?}");
    }
    let rounds = [
        [
            "frein_majeur",
            "frein",
            "frein",
            "point_d_appui",
            "frein",
            "point_d_appui",
        ],
        [
            "frein",
            "point_d_appui",
            "frein_majeur",
            "point_d_appui",
            "point_d_appui",
            "point_d_appui",
        ],
    ];
    let mut shared = Vec::new();
    for levels in rounds {
        let d = diagnostic(sb, counselor, ana_id, a).await?;
        let ratings: Vec<Value> = items
            .iter()
            .zip(levels)
            .map(|(item, level)| json!({ "item_id": item, "level": level }))
            .collect();
        let (s, v) = patch(
            sb,
            &format!("/api/v1/diagnostics/{d}"),
            counselor,
            json!({ "ratings": ratings }),
        )
        .await?;
        if s != StatusCode::OK {
            bail!("rating a diagnostic: {s} {v}");
        }
        let (s, v) = post(
            sb,
            &format!("/api/v1/diagnostics/{d}/share"),
            counselor,
            json!({}),
        )
        .await?;
        if s != StatusCode::OK {
            bail!("sharing a diagnostic: {s} {v}");
        }
        shared.push(d);
    }
    let draft = diagnostic(sb, counselor, ana_id, a).await?;

    // A refers Ana to B for mobility (she consents to B on that domain).
    consent(sb, ana, ana_id, b, &["mobilite"], &["orientation"]).await?;
    let to_partner = until(
        sb,
        Method::POST,
        "/api/v1/referrals",
        counselor,
        Some(json!({
            "person_id": ana_id, "sender_structure_id": a, "target_structure_id": b,
            "domains": ["mobilite"], "diagnostic_id": shared[1],
            "reason": "Préparer le permis B : Ana a une promesse d'embauche à 20 km, sans transport en commun.",
        })),
        |s, _| s == StatusCode::CREATED,
    )
    .await?;

    // C follows Bruno Keita and refers him to A for housing.
    let bruno = person(sb, &counselor_c, &c, "Bruno", "Keita").await?;
    let bruno_token = person_token(sb, &bruno).await?;
    consent(sb, &bruno_token, &bruno, &c, &[], &["accompagnement"]).await?;
    consent(
        sb,
        &bruno_token,
        &bruno,
        a,
        &["logement-hebergement"],
        &["orientation"],
    )
    .await?;
    let to_a = until(
        sb,
        Method::POST,
        "/api/v1/referrals",
        &counselor_c,
        Some(json!({
            "person_id": bruno, "sender_structure_id": c, "target_structure_id": a,
            "domains": ["logement-hebergement"],
            "reason": "Bruno est hébergé chez un ami jusqu'à la fin du mois : une solution de logement temporaire est urgente.",
        })),
        |s, _| s == StatusCode::CREATED,
    )
    .await?;

    // B's service in the directory, by an admin of B.
    let admin_b = sb
        .token("admin-b", vec![Role::StructureAdmin], vec![b.clone()])
        .await?;
    let (s, permis) = post(
        sb,
        "/api/v1/services",
        &admin_b,
        json!({
            "structure_id": b,
            "name": "Permis de conduire solidaire",
            "description": "Préparation au permis B pour les personnes au RSA : code, leçons de conduite à tarif réduit et accompagnement jusqu'à l'examen.",
            "types": ["accompagnement"],
            "thematiques": ["mobilite--preparer-un-permis"],
            "fees": "payant",
            "publics": ["beneficiaires-des-minimas-sociaux"],
            "commune": "Vernon",
            "postal_code": "27200",
            "commune_insee": "27681",
            "eligibility_zone": ["27"],
            "reception_modes": ["en-presentiel"],
            "mobilisable_by": ["professionnels"],
            "capacity": 12,
            "available_places": 4,
        }),
    )
    .await?;
    if s != StatusCode::CREATED {
        bail!("B's service: {s} {permis}");
    }

    // The community: a space; A's counselor asks, C's answers and writes a sheet.
    let (s, space) = post(
        sb,
        "/api/v1/community/spaces",
        operator,
        json!({ "name": "Eure", "kind": "territory", "territory_code": "27" }),
    )
    .await?;
    if s != StatusCode::CREATED {
        bail!("community space: {s} {space}");
    }
    let space_id = space["id"].as_str().context("space id")?;
    for t in [counselor, &counselor_c] {
        until(
            sb,
            Method::POST,
            &format!("/api/v1/community/spaces/{space_id}/join"),
            t,
            Some(json!({})),
            |s, _| s == StatusCode::OK,
        )
        .await?;
    }
    let (s, question) = post(
        sb,
        "/api/v1/community/questions",
        counselor,
        json!({ "space_id": space_id, "title": "Financer le permis de conduire au RSA",
                "body": "Une personne accompagnée a une promesse d'embauche à 20 km. Quelles aides pour le permis B connaissez-vous dans l'Eure ?",
                "domains": ["mobilite"] }),
    )
    .await?;
    if s != StatusCode::CREATED {
        bail!("community question: {s} {question}");
    }
    let question_id = question["id"].as_str().context("question id")?;
    let (s, v) = post(
        sb,
        &format!("/api/v1/community/questions/{question_id}/answers"),
        &counselor_c,
        json!({ "body": "Le Département finance jusqu'à 1 000 € du permis B sur prescription ; l'auto-école solidaire de Vernon a aussi des places." }),
    )
    .await?;
    if s != StatusCode::CREATED {
        bail!("community answer: {s} {v}");
    }
    let (s, solution) = post(
        sb,
        "/api/v1/community/solutions",
        &counselor_c,
        json!({
            "title": "Aide au permis du Département",
            "body": "Jusqu'à 1 000 € pour le permis B, sur prescription du référent RSA, versés directement à l'auto-école.",
            "domains": ["mobilite"],
            "territory_codes": ["27"],
            "valid_until": "2099-12-31",
        }),
    )
    .await?;
    if s != StatusCode::CREATED {
        bail!("community solution: {s} {solution}");
    }
    wait_for(
        sb,
        "/api/v1/notifications",
        counselor,
        "A's notification",
        |v| v["unread_count"].as_i64().is_some_and(|n| n >= 1),
    )
    .await?;

    // An invitation not accepted yet, for the invitation page.
    let (s, v) = post(
        sb,
        &format!("/api/v1/structures/{a}/members"),
        operator,
        json!({ "email": "alex.nouveau@exemple.fr", "display_name": "Alex Nouveau", "role": "counselor" }),
    )
    .await?;
    if s != StatusCode::CREATED {
        bail!("inviting Alex: {s} {v}");
    }
    fx["invitation"] =
        json!({ "code": v["invitation"]["code"], "email": "alex.nouveau@exemple.fr" });

    let id = |v: &Value| v["id"].clone();
    fx["admin"] =
        json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "name": "Sacha Admin" });
    fx["partner"] =
        json!({ "email": PARTNER_EMAIL, "password": PARTNER_PASSWORD, "name": "Lou Partenaire" });
    fx["counselorC"] = json!({ "email": COUNSELOR_C_EMAIL, "password": COUNSELOR_C_PASSWORD,
                               "name": "Nour Conseil" });
    fx["structures"]["c"] = json!({ "id": c, "name": c_name });
    fx["diagnostics"] = json!({ "first": shared[0], "second": shared[1], "draft": draft });
    fx["referrals"] = json!({ "toPartner": id(&to_partner), "toA": id(&to_a) });
    fx["services"] = json!({ "permis": id(&permis) });
    fx["community"] =
        json!({ "question": question_id, "solution": id(&solution), "space": space_id });

    // Moderation: a space that C's counselor moderates, where she asked a question that
    // A's admin answered and A's counselor reported.
    let admin = login(sb, ADMIN_EMAIL, ADMIN_PASSWORD).await?;
    let mod_name = "Mobilité dans le Vexin";
    let (s, v) = post(
        sb,
        "/api/v1/community/spaces",
        operator,
        json!({ "name": mod_name, "kind": "territory", "territory_code": "27",
                "description": "Permis, transports à la demande, covoiturage : ce qui marche dans le Vexin." }),
    )
    .await?;
    if s != StatusCode::CREATED {
        bail!("moderated space: {s} {v}");
    }
    let mod_space = v["id"].as_str().context("moderated space id")?.to_owned();
    for t in [&counselor_c, &admin, counselor] {
        until(
            sb,
            Method::POST,
            &format!("/api/v1/community/spaces/{mod_space}/join"),
            t,
            Some(json!({})),
            |s, _| s == StatusCode::OK,
        )
        .await?;
    }
    let (s, nour) = get(sb, "/api/v1/me", &counselor_c).await?;
    if s != StatusCode::OK {
        bail!("C's counselor: {s} {nour}");
    }
    let nour_id = nour["user_id"].as_str().context("C's counselor's id")?;
    let (s, v) = patch(
        sb,
        &format!("/api/v1/community/spaces/{mod_space}/members/{nour_id}"),
        operator,
        json!({ "role": "moderator" }),
    )
    .await?;
    if s != StatusCode::OK {
        bail!("making C's counselor a moderator: {s} {v}");
    }
    // The operator who opened it leaves: C's counselor is its only moderator.
    let (s, v) = post(
        sb,
        &format!("/api/v1/community/spaces/{mod_space}/leave"),
        operator,
        json!({}),
    )
    .await?;
    if s != StatusCode::NO_CONTENT {
        bail!("the operator leaving the moderated space: {s} {v}");
    }
    let (s, mod_question) = post(
        sb,
        "/api/v1/community/questions",
        &counselor_c,
        json!({ "space_id": mod_space, "title": "Aller à un entretien d'embauche à Gisors sans voiture",
                "body": "Une personne accompagnée a un entretien à Gisors mardi à 9 h, sans voiture ni bus à cette heure. Existe-t-il un transport à la demande ?",
                "domains": ["mobilite"] }),
    )
    .await?;
    if s != StatusCode::CREATED {
        bail!("moderated question: {s} {mod_question}");
    }
    let (s, mod_answer) = post(
        sb,
        &format!("/api/v1/community/questions/{}/answers", id(&mod_question).as_str().unwrap_or_default()),
        &admin,
        json!({ "body": "Le transport à la demande du Vexin normand circule sur réservation la veille avant 17 h ; la plateforme mobilité prête aussi des scooters." }),
    )
    .await?;
    if s != StatusCode::CREATED {
        bail!("moderated answer: {s} {mod_answer}");
    }
    let (s, v) = post(
        sb,
        "/api/v1/community/reports",
        counselor,
        json!({ "content_kind": "answer", "content_id": id(&mod_answer),
                "reason": "Les horaires de réservation ont changé : à vérifier par la modération." }),
    )
    .await?;
    if s != StatusCode::CREATED {
        bail!("reporting the answer: {s} {v}");
    }
    fx["moderation"] = json!({ "space": mod_space, "spaceName": mod_name,
                               "question": id(&mod_question), "answer": id(&mod_answer) });
    Ok(())
}

/// Opens a diagnostic of `person` by `structure` (once the projections know A follows her).
async fn diagnostic(
    sb: &Sandbox,
    counselor: &str,
    person: &str,
    structure: &str,
) -> Result<String> {
    let d = until(
        sb,
        Method::POST,
        &format!("/api/v1/people/{person}/diagnostics"),
        counselor,
        Some(json!({ "structure_id": structure })),
        |s, _| s == StatusCode::CREATED,
    )
    .await?;
    Ok(d["id"].as_str().context("diagnostic id")?.to_owned())
}

/// `tests/e2e/lib.mjs` itself, on a page the gateway already serves (the API's
/// documentation): browser, axe, screenshot, keyboard, failure messages.
#[tokio::test]
async fn lib_mjs_drives_chromium() -> Result<()> {
    let sb = Sandbox::start(Backend::Sqlite).await?;
    let tmp = tempfile::tempdir()?;
    let fixtures = json!({ "baseUrl": sb.gateway });
    run_node("selfcheck.mjs", &fixtures, tmp.path()).await?;
    assert!(tmp.path().join("selfcheck-documentation.png").is_file());
    sb.stop().await
}

/// The journey (`tests/e2e/flows.mjs`): a counselor, the person, an analyst.
#[tokio::test]
async fn journey_in_the_browser() -> Result<()> {
    journey("flows.mjs").await
}

/// Runs the journey `script` on a fresh world.
async fn journey(script: &str) -> Result<()> {
    let sb = Sandbox::start_with(Backend::Sqlite, |c| {
        c.statistics.disclosure_threshold = 2;
    })
    .await?;
    let fixtures = world(&sb).await?;
    let (dir, _guard) = screenshots_dir()?;
    run_node(script, &fixtures, &dir).await?;
    sb.stop().await
}

/// The person's space (`tests/e2e/person.mjs`).
#[tokio::test]
async fn person_space_in_the_browser() -> Result<()> {
    journey("person.mjs").await
}

/// The counselor's tools (`tests/e2e/counselor.mjs`).
#[tokio::test]
async fn counselor_tools_in_the_browser() -> Result<()> {
    journey("counselor.mjs").await
}

/// Referrals, for counselors and partners (`tests/e2e/referrals.mjs`).
#[tokio::test]
async fn referrals_in_the_browser() -> Result<()> {
    journey("referrals.mjs").await
}

/// The community (`tests/e2e/community.mjs`).
#[tokio::test]
async fn community_in_the_browser() -> Result<()> {
    journey("community.mjs").await
}

/// Editing one's posts, creating a space, moderating (`tests/e2e/moderation.mjs`).
#[tokio::test]
async fn community_moderation_in_the_browser() -> Result<()> {
    journey("moderation.mjs").await
}

/// « Ma structure »: the structure admin and the partner (`tests/e2e/admin.mjs`).
#[tokio::test]
async fn structure_admin_and_partner_in_the_browser() -> Result<()> {
    journey("admin.mjs").await
}

/// The analyst's dashboard: dimensions, period errors, exports (`tests/e2e/analyst.mjs`).
#[tokio::test]
async fn analyst_dashboard_in_the_browser() -> Result<()> {
    journey("analyst.mjs").await
}

/// Accepting an invitation, without a session (`tests/e2e/invitation.mjs`).
#[tokio::test]
async fn invitation_accepted_in_the_browser() -> Result<()> {
    journey("invitation.mjs").await
}

/// A lost answer: the client's retry under the same Idempotency-Key registers the
/// person once (`tests/e2e/network.mjs`).
#[tokio::test]
async fn a_lost_answer_is_not_a_second_person() -> Result<()> {
    journey("network.mjs").await
}
