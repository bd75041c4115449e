//! Section `community`: French full-text search latency over a realistic
//! corpus (100,000 posts by default) on a fresh database of the chosen
//! backend, through the query path `SearchService.Search` runs
//! (`Query::parse`, a pooled connection, `search::run` with the RPC's
//! default page). Baselines in the same run and on the same database: a bare
//! `SELECT 1` and a primary-key lookup of one post.
//!
//! The posts are indexed through `search::index`, 1,000 per transaction, on
//! a database migrated with community's migrations. Every answer is checked:
//! a hidden post, or a private-space post shown to someone outside its
//! structure, is a problem and the bench exits non-zero.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use eva_community::search::{self, Document, Query};
use eva_platform::auth::{Principal, Role};
use eva_platform::db::Db;
use eva_platform::on_backend;
use eva_platform::pagination::Page;
use eva_proto::community::v1::{ContentKind, ContentStatus, SearchRequest};

use super::{Args, Backend, Databases, Lookups, POOL, Spread, Timed, ms, row, select_one, spread};

/// Posts per indexing transaction.
const PER_TX: usize = 1_000;
/// Structures with a private space.
const STRUCTURES: usize = 40;
/// Queries (and baseline calls) run before the timed ones.
const WARMUP: usize = 100;

/// A theme of the insertion work, with what posts and queries say about it.
struct Topic {
    domain: &'static str,
    subjects: &'static [&'static str],
    facts: &'static [&'static str],
    asks: &'static [&'static str],
}

const TOPICS: &[Topic] = &[
    Topic {
        domain: "famille",
        subjects: &[
            "Garde d'enfants en horaires décalés",
            "Mode de garde pour un enfant de 3 ans",
            "Crèche à vocation d'insertion professionnelle",
            "Assistante maternelle le week-end",
            "Garde périscolaire du mercredi",
            "Famille monoparentale et reprise d'emploi",
        ],
        facts: &[
            "La maman commence à 5 heures du matin dans le nettoyage.",
            "Aucune place en crèche avant la rentrée de septembre.",
            "Les grands-parents ne peuvent plus garder les enfants.",
            "Le relais petite enfance propose une liste d'assistantes maternelles.",
            "Les horaires décalés du soir posent problème pour l'école.",
            "La crèche AVIP réserve des places aux parents en parcours d'insertion.",
            "Le complément de libre choix du mode de garde est versé par la CAF.",
            "Elle élève seule ses deux enfants depuis la séparation.",
        ],
        asks: &[
            "garde d'enfants horaires décalés",
            "crèche place urgence",
            "assistante maternelle week-end",
            "mode de garde enfant",
            "crèches AVIP insertion",
            "famille monoparentale emploi",
        ],
    },
    Topic {
        domain: "mobilite",
        subjects: &[
            "Financer le permis B",
            "Transport solidaire pour un entretien d'embauche",
            "Location de scooter à petit prix",
            "Code de la route pour un public qui lit mal",
            "Mobilité en zone rurale sans voiture",
            "Aide au carburant pour la reprise d'emploi",
        ],
        facts: &[
            "Le permis de conduire est exigé par la plupart des employeurs du secteur.",
            "L'auto-école sociale propose un code adapté aux personnes qui lisent mal.",
            "Il n'y a pas de bus avant 7 heures dans la commune.",
            "France Travail peut financer une partie du permis.",
            "Une plateforme mobilité loue des scooters et des vélos électriques.",
            "Le garage solidaire répare les voitures à prix coûtant.",
            "Le transport à la demande dessert les zones d'activité.",
            "Les trajets domicile-travail dépassent une heure en transports en commun.",
        ],
        asks: &[
            "permis B financement",
            "auto-école sociale code",
            "location scooters",
            "mobilité rurale voiture",
            "transport solidaire entretien",
            "garage solidaire réparation",
        ],
    },
    Topic {
        domain: "logement-hebergement",
        subjects: &[
            "Hébergement d'urgence pour une famille",
            "Dossier de logement social bloqué",
            "Expulsion locative en cours",
            "Caution et dépôt de garantie",
            "Logement temporaire pendant une formation",
            "Résidence sociale pour un jeune",
        ],
        facts: &[
            "Le 115 est saturé tous les soirs depuis l'hiver.",
            "La demande de logement social date de plus de deux ans.",
            "La garantie Visale peut remplacer la caution du propriétaire.",
            "Le fonds de solidarité pour le logement aide au dépôt de garantie.",
            "Le foyer de jeunes travailleurs a des places en colocation.",
            "Un commandement de quitter les lieux a été délivré par l'huissier.",
            "Les APL ne couvrent plus qu'une partie du loyer.",
            "Le SIAO oriente vers les hébergements disponibles.",
        ],
        asks: &[
            "hébergement urgence famille",
            "logement social dossier",
            "expulsion locative",
            "caution Visale",
            "foyer jeunes travailleurs",
            "logements temporaires formation",
        ],
    },
    Topic {
        domain: "difficultes-financieres",
        subjects: &[
            "Retard de versement du RSA",
            "Prime d'activité et reprise d'emploi",
            "Dossier de surendettement",
            "Aide alimentaire d'urgence",
            "Trop-perçu de la CAF",
            "Micro-crédit personnel",
        ],
        facts: &[
            "Le RSA n'a pas été versé ce mois-ci après la déclaration trimestrielle.",
            "La CAF réclame un trop-perçu de plusieurs centaines d'euros.",
            "La commission de surendettement de la Banque de France a été saisie.",
            "L'épicerie solidaire accepte les personnes orientées par un travailleur social.",
            "La prime d'activité est recalculée tous les trois mois.",
            "Le micro-crédit peut financer une voiture ou une formation.",
            "Les dettes d'énergie s'accumulent depuis l'automne.",
            "Le CCAS peut accorder une aide financière ponctuelle.",
        ],
        asks: &[
            "RSA retard versement",
            "prime d'activité calcul",
            "surendettement dossier Banque de France",
            "aide alimentaire urgence",
            "trop-perçu CAF",
            "micro-crédits personnels",
        ],
    },
    Topic {
        domain: "sante",
        subjects: &[
            "Complémentaire santé solidaire",
            "Accès aux soins sans médecin traitant",
            "Suivi psychologique gratuit",
            "Reconnaissance de la qualité de travailleur handicapé",
            "Addictions et reprise d'activité",
            "Soins dentaires urgents",
        ],
        facts: &[
            "La complémentaire santé solidaire est gratuite sous un plafond de ressources.",
            "Aucun médecin traitant n'accepte de nouveaux patients dans le secteur.",
            "Le centre médico-psychologique a un délai de trois mois.",
            "Le dossier RQTH est instruit par la MDPH.",
            "Le CSAPA accompagne les personnes en difficulté avec l'alcool.",
            "La permanence d'accès aux soins de santé reçoit sans rendez-vous.",
            "Les soins dentaires sont pris en charge à 100 % avec la C2S.",
            "Des troubles du sommeil rendent difficiles les horaires du matin.",
        ],
        asks: &[
            "complémentaire santé solidaire",
            "médecin traitant accès soins",
            "suivi psychologique gratuit",
            "RQTH dossier MDPH",
            "addiction alcool accompagnement",
            "soins dentaires urgence",
        ],
    },
    Topic {
        domain: "difficultes-administratives-ou-juridiques",
        subjects: &[
            "Renouvellement d'un titre de séjour",
            "Perte des papiers d'identité",
            "Ouverture d'un compte bancaire",
            "Domiciliation administrative",
            "Aide juridictionnelle pour un divorce",
            "Inscription à France Travail refusée",
        ],
        facts: &[
            "Le rendez-vous en préfecture n'est pas disponible avant deux mois.",
            "Le récépissé permet de continuer à travailler pendant l'instruction.",
            "La banque refuse l'ouverture du compte sans justificatif de domicile.",
            "Le droit au compte passe par la Banque de France.",
            "Le CCAS assure la domiciliation des personnes sans domicile stable.",
            "L'aide juridictionnelle couvre les frais d'avocat sous conditions de ressources.",
            "Le point justice tient une permanence gratuite le jeudi.",
            "Les démarches en ligne bloquent faute d'adresse électronique.",
        ],
        asks: &[
            "titre de séjour renouvellement",
            "papiers identité perte",
            "compte bancaire ouverture",
            "domiciliation CCAS",
            "aide juridictionnelle avocat",
            "inscription France Travail",
        ],
    },
    Topic {
        domain: "numerique",
        subjects: &[
            "Ateliers numériques pour débutants",
            "Ordinateur reconditionné à petit prix",
            "Créer une adresse électronique",
            "Démarches en ligne sans smartphone",
            "Forfait téléphone solidaire",
        ],
        facts: &[
            "L'espace France services aide aux démarches en ligne.",
            "Un conseiller numérique anime des ateliers chaque semaine.",
            "L'association revend des ordinateurs reconditionnés pour 50 euros.",
            "Sans smartphone, la double authentification bloque les comptes.",
            "Le forfait solidaire coûte 2 euros par mois.",
            "Les candidatures se font toutes sur des plateformes en ligne.",
        ],
        asks: &[
            "ateliers numériques débutants",
            "ordinateurs reconditionnés",
            "adresse électronique création",
            "démarches en ligne smartphone",
            "forfait téléphone solidaire",
        ],
    },
    Topic {
        domain: "lecture-ecriture-calcul",
        subjects: &[
            "Ateliers sociolinguistiques",
            "Remise à niveau en français avant une formation",
            "Illettrisme et emploi",
            "Cours de français langue étrangère",
        ],
        facts: &[
            "L'atelier sociolinguistique a lieu deux matinées par semaine.",
            "Le test de positionnement montre un niveau A2 à l'oral.",
            "La personne cache ses difficultés de lecture à son employeur.",
            "Le centre social propose des cours de français gratuits.",
            "La remise à niveau en calcul est un prérequis de la formation.",
        ],
        asks: &[
            "ateliers sociolinguistiques",
            "remise à niveau français",
            "illettrisme emploi",
            "cours français langue étrangère",
        ],
    },
    Topic {
        domain: "projet-professionnel",
        subjects: &[
            "Formation d'aide-soignante financée",
            "Immersion professionnelle en entreprise",
            "Validation des acquis de l'expérience",
            "Chantier d'insertion dans le bâtiment",
            "Création d'entreprise au RSA",
            "Contrat d'apprentissage après 30 ans",
        ],
        facts: &[
            "La formation d'aide-soignante dure dix mois et est financée par la Région.",
            "La période de mise en situation en milieu professionnel dure deux semaines.",
            "La VAE permet d'obtenir le diplôme sans repasser l'examen.",
            "Le chantier d'insertion recrute des ouvriers polyvalents en CDDI.",
            "La couveuse d'entreprises accompagne les créateurs pendant un an.",
            "L'apprentissage est ouvert sans limite d'âge aux travailleurs handicapés.",
            "Le CPF finance une partie des formations qualifiantes.",
            "Les entreprises du bâtiment manquent de candidats qualifiés.",
        ],
        asks: &[
            "formation aide-soignante financement",
            "immersion professionnelle entreprise",
            "VAE diplôme",
            "chantiers d'insertion bâtiment",
            "création entreprise RSA",
            "apprentissage après 30 ans",
        ],
    },
    Topic {
        domain: "remobilisation",
        subjects: &[
            "Remobiliser une personne isolée",
            "Reprendre confiance après un long chômage",
            "Bénévolat comme première étape",
            "Activités sportives adaptées",
        ],
        facts: &[
            "La personne ne sort plus de chez elle depuis plusieurs mois.",
            "Un atelier collectif sur la confiance en soi démarre en janvier.",
            "Le bénévolat aux Restos du cœur a redonné un rythme à la semaine.",
            "Le club propose du sport adapté aux personnes éloignées de l'emploi.",
            "Les rendez-vous manqués se multiplient depuis l'été.",
        ],
        asks: &[
            "remobilisation personne isolée",
            "confiance en soi chômage",
            "bénévolat première étape",
            "activités sportives adaptées",
        ],
    },
];

/// Other sentences of questions, answers and solution sheets.
const OPENERS: &[&str] = &[
    "Bonjour à tous,",
    "Bonjour,",
    "Question pour les collègues :",
    "Petite question de terrain :",
    "Je me tourne vers vous :",
];
const CLOSERS: &[&str] = &[
    "Merci d'avance pour vos retours.",
    "Des idées ?",
    "Quelqu'un a-t-il déjà rencontré ce cas ?",
    "Toute piste est la bienvenue.",
    "Nous avons déjà contacté les partenaires habituels sans succès.",
];
const ANSWERS: &[&str] = &[
    "Chez nous,",
    "De notre côté,",
    "Nous avons eu le même cas l'an dernier :",
    "Pour information,",
    "Une piste :",
];

/// Territories: communes (INSEE) and two départements, with a name.
const TERRITORIES: &[(&str, &str)] = &[
    ("75056", "Paris"),
    ("69123", "Lyon"),
    ("13055", "Marseille"),
    ("27229", "Évreux"),
    ("59350", "Lille"),
    ("33063", "Bordeaux"),
    ("31555", "Toulouse"),
    ("44109", "Nantes"),
    ("35238", "Rennes"),
    ("67482", "Strasbourg"),
    ("97411", "Saint-Denis de La Réunion"),
    ("2A004", "Ajaccio"),
    ("93", "Seine-Saint-Denis"),
    ("62", "Pas-de-Calais"),
];
/// Territory filters of the queries: départements and communes.
const TERRITORY_FILTERS: &[&str] = &["75", "69123", "13", "27", "59350", "974", "93", "62"];
/// Queries whose words no post contains.
const NOTHING: &[&str] = &[
    "aquaponie lunaire",
    "xylophone zeppelin",
    "cryptomonnaie dividende",
    "origami quantique",
    "banquise pingouin",
    "trombone spatial orbite",
    "volcan myrtille",
    "hélicoptère flamant",
];

/// The corpus: documents, and what the answers must never show.
struct Corpus {
    docs: Vec<Document>,
    spaces: Vec<(String, &'static str, String)>,
    structures: Vec<String>,
    hidden: HashSet<String>,
    /// Private post → index of its structure.
    private: HashMap<String, usize>,
}

fn pick<'a, T>(rng: &mut Lookups, xs: &'a [T]) -> &'a T {
    &xs[rng.pick(xs.len())]
}

fn say(rng: &mut Lookups, xs: &[&'static str]) -> &'static str {
    xs[rng.pick(xs.len())]
}

fn corpus(n: usize) -> Corpus {
    let mut rng = Lookups(0x5eed_c0de_1234_abcd);
    let structures: Vec<String> = (0..STRUCTURES)
        .map(|_| uuid::Uuid::now_v7().to_string())
        .collect();
    let mut spaces = Vec::new();
    for (code, _) in TERRITORIES {
        spaces.push((format!("sp-t-{code}"), "territory", String::new()));
    }
    for t in TOPICS {
        spaces.push((format!("sp-d-{}", t.domain), "theme", String::new()));
    }
    for (i, s) in structures.iter().enumerate() {
        spaces.push((format!("sp-s-{i:02}"), "structure", s.clone()));
    }

    // Questions so far: id, title, space, topic, territory, structure.
    struct Asked {
        id: String,
        title: String,
        space: String,
        topic: usize,
        territory: &'static str,
        structure: Option<usize>,
    }
    let mut asked: Vec<Asked> = Vec::new();
    let mut docs = Vec::with_capacity(n);
    let mut hidden = HashSet::new();
    let mut private = HashMap::new();
    while docs.len() < n {
        let id = uuid::Uuid::now_v7().to_string();
        let roll = rng.pick(100);
        let mut domains = Vec::new();
        let (kind, question_id, space_id, title, body, territory, structure) =
            if roll < 40 || asked.is_empty() {
                let topic = rng.pick(TOPICS.len());
                let t = &TOPICS[topic];
                let (code, city) = *pick(&mut rng, TERRITORIES);
                // About 6 % of the questions (and so of their answers) in a
                // structure's private space: 5 % of all posts.
                let structure = (rng.pick(1000) < 59).then(|| rng.pick(STRUCTURES));
                let space = match structure {
                    Some(s) => format!("sp-s-{s:02}"),
                    None if rng.pick(3) == 0 => format!("sp-d-{}", t.domain),
                    None => format!("sp-t-{code}"),
                };
                let subject = *pick(&mut rng, t.subjects);
                let title = match rng.pick(3) {
                    0 => format!("{subject} ?"),
                    1 => format!("{subject} à {city}"),
                    _ => format!("{subject} : comment faire ?"),
                };
                let mut body = format!("{} ", pick(&mut rng, OPENERS));
                for _ in 0..2 + rng.pick(4) {
                    body.push_str(say(&mut rng, t.facts));
                    body.push(' ');
                }
                body.push_str(say(&mut rng, CLOSERS));
                asked.push(Asked {
                    id: id.clone(),
                    title: title.clone(),
                    space: space.clone(),
                    topic,
                    territory: code,
                    structure,
                });
                domains.push(t.domain.to_owned());
                (
                    ContentKind::Question,
                    id.clone(),
                    space,
                    title,
                    body,
                    code,
                    structure,
                )
            } else if roll < 85 {
                let q = &asked[rng.pick(asked.len())];
                let t = &TOPICS[q.topic];
                let mut body = format!("{} ", pick(&mut rng, ANSWERS));
                for _ in 0..1 + rng.pick(3) {
                    body.push_str(say(&mut rng, t.facts));
                    body.push(' ');
                }
                if rng.pick(4) == 0 {
                    // A word about a neighbouring difficulty.
                    let other = pick(&mut rng, TOPICS);
                    body.push_str(say(&mut rng, other.facts));
                }
                domains.push(t.domain.to_owned());
                (
                    ContentKind::Answer,
                    q.id.clone(),
                    q.space.clone(),
                    q.title.clone(),
                    body,
                    q.territory,
                    q.structure,
                )
            } else {
                let t = pick(&mut rng, TOPICS);
                let (code, city) = *pick(&mut rng, TERRITORIES);
                let title = format!("Fiche : {} ({city})", pick(&mut rng, t.subjects));
                let mut body = String::from("Objectif : lever le frein. Démarches : ");
                for _ in 0..3 + rng.pick(4) {
                    body.push_str(say(&mut rng, t.facts));
                    body.push(' ');
                }
                body.push_str("Contacts : voir l'annuaire des partenaires du territoire.");
                domains.push(t.domain.to_owned());
                (
                    ContentKind::Solution,
                    String::new(),
                    String::new(),
                    title,
                    body,
                    code,
                    None,
                )
            };
        if rng.pick(5) == 0 {
            let other = pick(&mut rng, TOPICS).domain.to_owned();
            if !domains.contains(&other) {
                domains.push(other);
            }
        }
        let status = if rng.pick(100) < 2 {
            hidden.insert(id.clone());
            ContentStatus::Hidden
        } else {
            ContentStatus::Published
        };
        if let Some(s) = structure {
            private.insert(id.clone(), s);
        }
        docs.push(Document {
            kind,
            content_id: id,
            question_id,
            space_id,
            title,
            body,
            domains,
            territory_codes: vec![territory.to_owned()],
            status,
        });
    }
    Corpus {
        docs,
        spaces,
        structures,
        hidden,
        private,
    }
}

/// What a query is, for the per-class figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Plain,
    Filtered,
    Nothing,
}

/// `n` queries: 2–4 words, as written, without accents, or capitalised
/// with a question mark; some with a domain, territory or kind filter;
/// some matching nothing.
fn queries(n: usize) -> Vec<(SearchRequest, Class)> {
    let mut rng = Lookups(0x0bad_cafe_f00d_beef);
    (0..n)
        .map(|_| {
            if rng.pick(100) < 6 {
                let q = pick(&mut rng, NOTHING);
                return (
                    SearchRequest {
                        query: (*q).to_owned(),
                        ..Default::default()
                    },
                    Class::Nothing,
                );
            }
            let t = pick(&mut rng, TOPICS);
            let ask = *pick(&mut rng, t.asks);
            let query = match rng.pick(3) {
                0 => ask.to_owned(),
                1 => search::fold_accents(ask),
                _ => {
                    let mut c = ask.chars();
                    c.next()
                        .map(|f| f.to_uppercase().chain(c).collect::<String>() + " ?")
                        .unwrap_or_default()
                }
            };
            let mut req = SearchRequest {
                query,
                ..Default::default()
            };
            let class = match rng.pick(100) {
                0..15 => {
                    req.domains = vec![t.domain.to_owned()];
                    Class::Filtered
                }
                15..30 => {
                    req.territory_code = (*pick(&mut rng, TERRITORY_FILTERS)).to_owned();
                    Class::Filtered
                }
                30..35 => {
                    req.kind = ContentKind::Solution as i32;
                    Class::Filtered
                }
                _ => Class::Plain,
            };
            (req, class)
        })
        .collect()
}

fn caller(structures: Vec<String>) -> Principal {
    Principal {
        user_id: uuid::Uuid::now_v7().to_string(),
        roles: vec![Role::Counselor],
        structures,
        person_id: None,
        token_id: "bench".into(),
    }
}

/// Latencies of one caller's queries.
pub(crate) struct Searched {
    who: &'static str,
    all: Spread,
    rate: f64,
    plain: Spread,
    filtered: Spread,
    nothing: Spread,
    /// Mean results returned (at most a page of 50).
    mean_hits: f64,
    /// Queries that returned nothing.
    empty: usize,
}

pub(crate) struct CommunityFigures {
    backend: Backend,
    posts: usize,
    private: usize,
    hidden: usize,
    index: Timed,
    bytes: Option<u64>,
    queries: usize,
    searched: Vec<Searched>,
    select: Spread,
    select_rate: f64,
    by_key: Spread,
    by_key_rate: f64,
}

async fn open(dbs: &Databases) -> Result<Db> {
    let url = match &dbs.pg {
        Some(pg) => pg.create_database("community").await?,
        None => format!(
            "sqlite://{}/community.db?mode=rwc",
            dbs.dir.path().display()
        ),
    };
    let db = Db::connect(&url, POOL).await?;
    db.migrate(&eva_community::store::MIGRATIONS).await?;
    Ok(db)
}

async fn by_key(db: &Db, doc_no: i64) -> Result<()> {
    let mut h = db.acquire().await?;
    let _: (String,) = on_backend!(h.conn(), c => sqlx::query_as(
        "SELECT title FROM search_documents WHERE doc_no = $1",
    )
    .bind(doc_no)
    .fetch_one(&mut *c)
    .await)?;
    Ok(())
}

/// One search as `SearchService.Search` runs it, after the token check:
/// the request parsed, a pooled connection, the RPC's default page.
async fn one_search(db: &Db, req: &SearchRequest, who: &Principal) -> Result<Vec<search::Hit>> {
    let page = Page::parse(req.page_size, &req.page_token).map_err(|e| anyhow!("{e}"))?;
    let query = Query::parse(req, who).map_err(|s| anyhow!("{}", s.message()))?;
    let mut h = db.acquire().await?;
    Ok(search::run(h.conn(), &query, 0, page.fetch_limit()).await?)
}

pub(crate) async fn community(
    dbs: &Databases,
    args: &Args,
    problems: &mut Vec<String>,
) -> Result<CommunityFigures> {
    let started = Instant::now();
    let c = corpus(args.community_posts);
    println!(
        "  corpus: {} posts built in {:.2} s ({} in private structure spaces, {} hidden)",
        c.docs.len(),
        started.elapsed().as_secs_f64(),
        c.private.len(),
        c.hidden.len()
    );
    let db = open(dbs).await?;
    let mut tx = db.begin().await?;
    for (space_id, kind, structure) in &c.spaces {
        on_backend!(tx.conn(), conn => sqlx::query(
            "INSERT INTO spaces (space_id, kind, name, structure_id, created_by, created_at_us) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(space_id)
        .bind(*kind)
        .bind(format!("espace {space_id}"))
        .bind(structure)
        .bind("0190a000-0000-7000-8000-0000000000ff")
        .bind(1_i64)
        .execute(&mut *conn)
        .await
        .map(|_| ()))?;
    }
    tx.commit().await?;

    let started = Instant::now();
    for chunk in c.docs.chunks(PER_TX) {
        let mut tx = db.begin().await?;
        for doc in chunk {
            search::index(&mut tx, doc).await?;
        }
        tx.commit().await?;
    }
    let index = Timed {
        count: c.docs.len(),
        elapsed: started.elapsed(),
    };
    println!(
        "  indexed {} posts through search::index in {:.1} s: {:.0} posts/s ({PER_TX} a transaction)",
        index.count,
        index.elapsed.as_secs_f64(),
        index.rate()
    );
    let bytes = match args.db {
        Backend::Sqlite => {
            // Size of the file after a checkpoint: what the posts take.
            {
                let mut h = db.acquire().await?;
                on_backend!(h.conn(), conn => sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                    .execute(&mut *conn)
                    .await
                    .map(|_| ()))?;
            }
            std::fs::metadata(dbs.dir.path().join("community.db"))
                .ok()
                .map(|m| m.len())
        }
        Backend::Postgres => {
            // Statistics for the planner, as autovacuum would have gathered
            // them on a database that has been filled over time.
            let mut h = db.acquire().await?;
            let size: (i64,) = on_backend!(h.conn(), conn => {
                sqlx::query("ANALYZE search_documents").execute(&mut *conn).await?;
                sqlx::query("ANALYZE spaces").execute(&mut *conn).await?;
                sqlx::query_as("SELECT pg_total_relation_size('search_documents')")
                    .fetch_one(&mut *conn)
                    .await
            })?;
            u64::try_from(size.0).ok()
        }
    };
    if let Some(b) = bytes {
        println!("  index size: {:.1} MB", b as f64 / 1e6);
    }

    let queries = queries(args.community_queries);
    let outsider = caller(vec![]);
    let member = caller(vec![c.structures[0].clone(), c.structures[1].clone()]);
    let mut searched = Vec::new();
    for (who, p) in [("no private space", &outsider), ("member of 2", &member)] {
        for (req, _) in queries.iter().cycle().take(WARMUP) {
            one_search(&db, req, p).await?;
        }
        let mut samples: Vec<(Duration, Class)> = Vec::with_capacity(queries.len());
        let mut hits = 0usize;
        let mut empty = 0usize;
        let started = Instant::now();
        for (req, class) in &queries {
            let t = Instant::now();
            let found = one_search(&db, req, p).await?;
            samples.push((t.elapsed(), *class));
            hits += found.len();
            empty += usize::from(found.is_empty());
            for h in &found {
                if c.hidden.contains(&h.content_id) {
                    problems.push(format!(
                        "search {:?}: hidden post {}",
                        req.query, h.content_id
                    ));
                }
                if let Some(&s) = c.private.get(&h.content_id)
                    && !p.structures.contains(&c.structures[s])
                {
                    problems.push(format!(
                        "search {:?} ({who}): private post {} of another structure",
                        req.query, h.content_id
                    ));
                }
            }
            if *class == Class::Nothing && !found.is_empty() {
                problems.push(format!("search {:?}: expected no result", req.query));
            }
        }
        let rate = queries.len() as f64 / started.elapsed().as_secs_f64().max(1e-9);
        let of = |k: Class| {
            spread(
                samples
                    .iter()
                    .filter(|(_, c)| *c == k)
                    .map(|(d, _)| *d)
                    .collect(),
            )
        };
        let s = Searched {
            who,
            all: spread(samples.iter().map(|(d, _)| *d).collect()),
            rate,
            plain: of(Class::Plain),
            filtered: of(Class::Filtered),
            nothing: of(Class::Nothing),
            mean_hits: hits as f64 / queries.len() as f64,
            empty,
        };
        println!(
            "  search ({who}): p50 {} p90 {} p99 {} max {} ms, {:.0} queries/s; \
             {:.1} hits a query, {} with none",
            ms(s.all.p50),
            ms(s.all.p90),
            ms(s.all.p99),
            ms(s.all.max),
            s.rate,
            s.mean_hits,
            s.empty
        );
        println!(
            "    plain p50 / p99 {} / {} ms; filtered {} / {} ms; matching nothing {} / {} ms",
            ms(s.plain.p50),
            ms(s.plain.p99),
            ms(s.filtered.p50),
            ms(s.filtered.p99),
            ms(s.nothing.p50),
            ms(s.nothing.p99)
        );
        searched.push(s);
    }

    let n = queries.len();
    for _ in 0..WARMUP {
        select_one(&db).await?;
    }
    let (select, select_rate) = super::timed_calls(n, |_| select_one(&db)).await?;
    let posts = c.docs.len() as u64;
    let mut rng = Lookups(0x1234_5678_9abc_def1);
    let keys: Vec<i64> = (0..n + WARMUP)
        .map(|_| 1 + (rng.next() % posts) as i64)
        .collect();
    for k in &keys[n..] {
        by_key(&db, *k).await?;
    }
    let (by_key_spread, by_key_rate) = super::timed_calls(n, |i| by_key(&db, keys[i])).await?;
    println!(
        "  SELECT 1: p50 {} p99 {} ms, {select_rate:.0}/s; primary-key lookup: p50 {} p99 {} ms, {by_key_rate:.0}/s",
        ms(select.p50),
        ms(select.p99),
        ms(by_key_spread.p50),
        ms(by_key_spread.p99)
    );
    if let Some(s) = searched.first() {
        println!(
            "  search / SELECT 1 p50: {:.0}x; search / key lookup p50: {:.0}x",
            s.all.p50.as_secs_f64() / select.p50.as_secs_f64().max(1e-9),
            s.all.p50.as_secs_f64() / by_key_spread.p50.as_secs_f64().max(1e-9)
        );
    }
    db.close().await;
    Ok(CommunityFigures {
        backend: args.db,
        posts: c.docs.len(),
        private: c.private.len(),
        hidden: c.hidden.len(),
        index,
        bytes,
        queries: n,
        searched,
        select,
        select_rate,
        by_key: by_key_spread,
        by_key_rate,
    })
}

pub(crate) fn print_community(f: &CommunityFigures) {
    println!(
        "community search: {}; {} posts ({} private, {} hidden), {} queries a caller",
        f.backend.label(),
        f.posts,
        f.private,
        f.hidden,
        f.queries
    );
    row(
        &format!("index {} posts ({PER_TX}/tx, posts/s)", f.posts),
        &format!("{:.0}", f.index.rate()),
        "",
    );
    if let Some(b) = f.bytes {
        row("index size (MB)", &format!("{:.1}", b as f64 / 1e6), "");
    }
    for s in &f.searched {
        row(
            &format!("search, {}: p50 / p90 (ms)", s.who),
            &format!("{} / {}", ms(s.all.p50), ms(s.all.p90)),
            "",
        );
        row(
            &format!("search, {}: p99 / max (ms)", s.who),
            &format!("{} / {}", ms(s.all.p99), ms(s.all.max)),
            "",
        );
        row(
            &format!("search, {}: queries/s", s.who),
            &format!("{:.0}", s.rate),
            "",
        );
    }
    row(
        "SELECT 1 p50 / p99 (ms)",
        &format!("{} / {}", ms(f.select.p50), ms(f.select.p99)),
        "",
    );
    row(
        "primary-key lookup p50 / p99 (ms)",
        &format!("{} / {}", ms(f.by_key.p50), ms(f.by_key.p99)),
        "",
    );
    row(
        "SELECT 1/s; key lookups/s",
        &format!("{:.0}; {:.0}", f.select_rate, f.by_key_rate),
        "",
    );
    if let Some(s) = f.searched.first() {
        row(
            "search p50 ÷ SELECT 1 p50; ÷ key lookup p50",
            &format!(
                "{:.0}x; {:.0}x",
                s.all.p50.as_secs_f64() / f.select.p50.as_secs_f64().max(1e-9),
                s.all.p50.as_secs_f64() / f.by_key.p50.as_secs_f64().max(1e-9)
            ),
            "",
        );
    }
}
