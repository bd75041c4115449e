//! French full-text search against a real SQLite and a real PostgreSQL
//! database: accents, case and plurals ignored, best match first, filters by
//! kind, domain and territory, hidden posts and other structures' private
//! spaces left out, paging, re-indexing and removal.

use eva_community::search::{self, Document, Hit, Query};
use eva_platform::auth::{Principal, Role};
use eva_platform::db::Db;
use eva_platform::on_backend;
use eva_proto::community::v1::{ContentKind, ContentStatus, SearchRequest};
use eva_tests::postgres::PgCluster;
use eva_tests::sandbox::Backend;

type R<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const S1: &str = "0190a000-0000-7000-8000-000000000001";
const S2: &str = "0190a000-0000-7000-8000-000000000002";

struct Fixture {
    db: Db,
    _dir: tempfile::TempDir,
    _pg: Option<PgCluster>,
}

async fn open(backend: Backend) -> R<Fixture> {
    let dir = tempfile::tempdir()?;
    let (url, pg) = match backend {
        Backend::Sqlite => (
            format!("sqlite://{}/community.db", dir.path().display()),
            None,
        ),
        Backend::Postgres => {
            let pg = PgCluster::start().await?;
            (pg.create_database("community").await?, Some(pg))
        }
    };
    let db = Db::connect(&url, 4).await?;
    db.migrate(&eva_community::store::MIGRATIONS).await?;
    Ok(Fixture {
        db,
        _dir: dir,
        _pg: pg,
    })
}

async fn space(db: &Db, space_id: &str, kind: &str, structure_id: &str) -> R<()> {
    let mut tx = db.begin().await?;
    on_backend!(tx.conn(), c => sqlx::query(
        "INSERT INTO spaces (space_id, kind, name, structure_id, created_by, created_at_us) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(space_id)
    .bind(kind)
    .bind(format!("espace {space_id}"))
    .bind(structure_id)
    .bind("0190a000-0000-7000-8000-0000000000ff")
    .bind(1_i64)
    .execute(&mut *c)
    .await
    .map(|_| ()))?;
    tx.commit().await?;
    Ok(())
}

fn question(id: &str, space_id: &str, title: &str, body: &str, territory: &str) -> Document {
    Document {
        kind: ContentKind::Question,
        content_id: id.into(),
        question_id: id.into(),
        space_id: space_id.into(),
        title: title.into(),
        body: body.into(),
        domains: vec!["contraintes-familiales".into()],
        territory_codes: vec![territory.into()],
        status: ContentStatus::Published,
    }
}

async fn index(db: &Db, doc: &Document) -> R<()> {
    let mut tx = db.begin().await?;
    search::index(&mut tx, doc).await?;
    tx.commit().await?;
    Ok(())
}

fn caller(structures: &[&str]) -> Principal {
    Principal {
        user_id: "0190a000-0000-7000-8000-0000000000aa".into(),
        roles: vec![Role::Counselor],
        structures: structures.iter().map(|s| s.to_string()).collect(),
        person_id: None,
        token_id: "t".into(),
    }
}

async fn find(db: &Db, req: SearchRequest, structures: &[&str]) -> R<Vec<Hit>> {
    let q = Query::parse(&req, &caller(structures)).map_err(|s| s.message().to_owned())?;
    let mut h = db.acquire().await?;
    Ok(search::run(h.conn(), &q, 0, 100).await?)
}

fn ask(query: &str) -> SearchRequest {
    SearchRequest {
        query: query.into(),
        ..Default::default()
    }
}

fn ids(hits: &[Hit]) -> Vec<&str> {
    hits.iter().map(|h| h.content_id.as_str()).collect()
}

async fn french_search(backend: Backend) -> R<()> {
    let f = open(backend).await?;
    let db = &f.db;
    space(db, "sp-paris", "territory", "").await?;
    space(db, "sp-s1", "structure", S1).await?;
    space(db, "sp-s2", "structure", S2).await?;
    index(
        db,
        &question(
            "q-garde",
            "sp-paris",
            "Garde d'enfant en horaires decales ?",
            "Une maman commence à 5 heures du matin, quelle solution de garde ?",
            "75056",
        ),
    )
    .await?;
    index(
        db,
        &question(
            "q-caf",
            "sp-paris",
            "Horaires d'ouverture de la CAF",
            "Quels sont les horaires du point d'accueil ?",
            "75",
        ),
    )
    .await?;
    let mut hidden = question(
        "q-hidden",
        "sp-paris",
        "Garde d'enfants, horaires décalés",
        "masqué par la modération",
        "75056",
    );
    hidden.status = ContentStatus::Hidden;
    index(db, &hidden).await?;
    index(
        db,
        &question(
            "q-private",
            "sp-s2",
            "Garde d'enfants en horaires décalés (interne)",
            "dans notre structure",
            "69123",
        ),
    )
    .await?;
    index(
        db,
        &Document {
            kind: ContentKind::Solution,
            content_id: "sol-mobilite".into(),
            question_id: String::new(),
            space_id: String::new(),
            title: "Aides à la mobilité pour les horaires décalés".into(),
            body: "Le transport solidaire fonctionne tôt le matin.".into(),
            domains: vec!["mobilite".into()],
            territory_codes: vec!["69".into()],
            status: ContentStatus::Published,
        },
    )
    .await?;

    // Accents, case, elisions and plurals ignored; best match first.
    let hits = find(db, ask("garde d'enfants horaires décalés"), &[S1]).await?;
    assert_eq!(hits[0].content_id, "q-garde", "{hits:?}");
    assert_eq!(hits[0].title, "Garde d'enfant en horaires decales ?");
    assert_eq!(hits[0].question_id, "q-garde");
    let caf = hits
        .iter()
        .position(|h| h.content_id == "q-caf")
        .ok_or("the distractor is found too")?;
    assert!(caf > 0, "{hits:?}");
    assert!(hits[0].score > hits[caf].score);
    assert!(hits[0].snippet.contains("garde"), "{}", hits[0].snippet);
    // Hidden posts and another structure's private space are not found.
    assert!(!ids(&hits).contains(&"q-hidden"), "{hits:?}");
    assert!(!ids(&hits).contains(&"q-private"), "{hits:?}");
    // Members of that structure find its private posts.
    let hits = find(db, ask("GARDE ENFANT"), &[S2]).await?;
    assert!(ids(&hits).contains(&"q-private"), "{hits:?}");

    // Filters: kind, domain, territory (a commune is in its département).
    let hits = find(
        db,
        SearchRequest {
            kind: ContentKind::Solution as i32,
            ..ask("horaires")
        },
        &[S1],
    )
    .await?;
    assert_eq!(ids(&hits), vec!["sol-mobilite"]);
    let hits = find(
        db,
        SearchRequest {
            domains: vec!["mobilite".into(), "logement".into()],
            ..ask("horaires décalés")
        },
        &[S1],
    )
    .await?;
    assert_eq!(ids(&hits), vec!["sol-mobilite"]);
    let hits = find(
        db,
        SearchRequest {
            territory_code: "75".into(),
            ..ask("horaires")
        },
        &[S1],
    )
    .await?;
    let mut got = ids(&hits);
    got.sort();
    assert_eq!(got, vec!["q-caf", "q-garde"]);
    let hits = find(
        db,
        SearchRequest {
            territory_code: "75056".into(),
            ..ask("horaires")
        },
        &[S1],
    )
    .await?;
    let mut got = ids(&hits);
    got.sort();
    assert_eq!(
        got,
        vec!["q-caf", "q-garde"],
        "a commune sees its département's posts"
    );
    let hits = find(
        db,
        SearchRequest {
            territory_code: "69".into(),
            ..ask("horaires")
        },
        &[S1],
    )
    .await?;
    assert_eq!(ids(&hits), vec!["sol-mobilite"]);

    // Paging by offset.
    let q = Query::parse(&ask("horaires"), &caller(&[S1])).map_err(|s| s.message().to_owned())?;
    let mut h = db.acquire().await?;
    let all = search::run(h.conn(), &q, 0, 100).await?;
    let second = search::run(h.conn(), &q, 1, 1).await?;
    drop(h);
    assert_eq!(all.len(), 3);
    assert_eq!(second, vec![all[1].clone()]);

    // Re-indexing replaces; status and removal apply.
    index(
        db,
        &question(
            "q-caf",
            "sp-paris",
            "Ouverture de la CAF le samedi",
            "Quels jours ?",
            "75",
        ),
    )
    .await?;
    let hits = find(db, ask("horaires"), &[S1]).await?;
    assert!(!ids(&hits).contains(&"q-caf"), "{hits:?}");
    assert_eq!(ids(&find(db, ask("samedi"), &[S1]).await?), vec!["q-caf"]);
    let mut tx = db.begin().await?;
    search::set_status(
        &mut tx,
        ContentKind::Question,
        "q-garde",
        ContentStatus::Hidden,
    )
    .await?;
    tx.commit().await?;
    assert!(find(db, ask("garde"), &[S1]).await?.is_empty());
    let mut tx = db.begin().await?;
    search::set_status(
        &mut tx,
        ContentKind::Question,
        "q-garde",
        ContentStatus::Published,
    )
    .await?;
    search::remove(&mut tx, ContentKind::Question, "q-caf").await?;
    tx.commit().await?;
    assert_eq!(ids(&find(db, ask("garde"), &[S1]).await?), vec!["q-garde"]);
    assert!(find(db, ask("samedi"), &[S1]).await?.is_empty());

    // A query without a meaningful word is refused, naming `query`.
    for bad in ["", " ", "a", "de la"] {
        let Err(e) = Query::parse(&ask(bad), &caller(&[S1])) else {
            return Err(format!("query {bad:?} accepted").into());
        };
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.message().starts_with("query:"), "{}", e.message());
    }
    db.close().await;
    Ok(())
}

#[tokio::test]
async fn french_search_on_sqlite() -> R<()> {
    french_search(Backend::Sqlite).await
}

#[tokio::test]
async fn french_search_on_postgres() -> R<()> {
    french_search(Backend::Postgres).await
}
