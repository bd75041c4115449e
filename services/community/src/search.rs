//! French full-text search over questions, answers and solutions.
//!
//! One approach on both backends: the text is normalised here, in Rust
//! ([`terms`]: lowercase, accents folded, elisions split, stop words dropped,
//! light French stemming), so that "garde d'enfants horaires décalés" and
//! "Garde d'enfant en horaires decales ?" give the same terms. The normalised
//! title and body are stored beside the original text and indexed by SQLite
//! FTS5 (ranked by bm25, title weighted 3×) or by a PostgreSQL `tsvector` in
//! the `simple` configuration, since the French work is done here (title
//! weight A, body B, GIN index, ranked by `ts_rank_cd`; ADR 0008). A query matches any of its terms; the more terms and the
//! more title terms a post has, the better it ranks. Only published posts are
//! found, and posts of a structure's private space only by its members.

use eva_platform::auth::{Principal, Role, require_role};
use eva_platform::db::{Conn, Db, DbError, Tx, now_us};
use eva_platform::grpc::invalid_field;
use eva_platform::on_backend;
use eva_platform::pagination::Page;
use eva_proto::community::v1::search_service_server::{SearchService, SearchServiceServer};
use eva_proto::community::v1::{
    self as pb, ContentKind, ContentRef, ContentStatus, ScreenTextRequest, ScreenTextResponse,
    SearchHit, SearchRequest, SearchResponse,
};
use tonic::{Request, Response, Status};

use crate::screening::Screening;

/// A post as the search index sees it.
#[derive(Debug, Clone)]
pub struct Document {
    pub kind: ContentKind,
    pub content_id: String,
    /// For an answer: its question; for a question: itself; empty for a solution.
    pub question_id: String,
    /// Empty for a solution.
    pub space_id: String,
    /// An answer's title is its question's title.
    pub title: String,
    pub body: String,
    pub domains: Vec<String>,
    pub territory_codes: Vec<String>,
    pub status: ContentStatus,
}

/// Largest page of results.
pub const MAX_PAGE_SIZE: u32 = 100;
/// Longest query, in characters.
pub const MAX_QUERY: usize = 500;
/// Most terms of a query that are searched.
const MAX_QUERY_TERMS: usize = 32;
/// Longest snippet, in words.
const SNIPPET_WORDS: usize = 30;

// ---------------------------------------------------------------------------
// French normalisation
// ---------------------------------------------------------------------------

/// French stop words, already folded (no accents). Elided forms (`d`, `l`,
/// `qu`, …) are here too since elisions are split at the apostrophe.
const STOP_WORDS: &[&str] = &[
    "a", "au", "aux", "avec", "c", "ce", "ces", "cet", "cette", "d", "dans", "de", "des", "du",
    "elle", "elles", "en", "est", "et", "etre", "eu", "il", "ils", "j", "je", "l", "la", "le",
    "les", "leur", "leurs", "lui", "m", "ma", "mais", "me", "mes", "moi", "mon", "n", "ne", "ni",
    "nos", "notre", "nous", "on", "ou", "par", "pas", "pour", "qu", "que", "qui", "s", "sa", "se",
    "ses", "si", "son", "sont", "sur", "t", "ta", "te", "tes", "toi", "ton", "tu", "un", "une",
    "vos", "votre", "vous", "y",
];

/// Folds one lowercase character to ASCII letters: French accents and
/// ligatures, and the accented letters of neighbouring languages.
fn fold(c: char, out: &mut String) {
    let s: &str = match c {
        'à' | 'â' | 'ä' | 'á' | 'ã' | 'å' => "a",
        'ç' => "c",
        'é' | 'è' | 'ê' | 'ë' => "e",
        'î' | 'ï' | 'í' | 'ì' => "i",
        'ô' | 'ö' | 'ó' | 'ò' | 'õ' => "o",
        'ù' | 'û' | 'ü' | 'ú' => "u",
        'ÿ' | 'ý' => "y",
        'ñ' => "n",
        'æ' => "ae",
        'œ' => "oe",
        'ß' => "ss",
        _ => {
            out.push(c);
            return;
        }
    };
    out.push_str(s);
}

/// Lowercase, without accents: "Décalées" → "decalees".
pub fn fold_accents(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars().flat_map(char::to_lowercase) {
        fold(c, &mut out);
    }
    out
}

/// Light French stemming of one folded word: plurals (`-s`, `-x`, `-aux` →
/// `-al`, `-eaux` → `-eau`) and the feminine / final `-e`, so "décalées",
/// "décalés" and "décalé" all give "decal", "enfants" and "enfant" "enfant".
pub fn stem(word: &str) -> String {
    let mut w = word.to_owned();
    if w.chars().any(|c| c.is_ascii_digit()) {
        return w;
    }
    if w.len() > 4 && w.ends_with("eaux") {
        w.truncate(w.len() - 1);
    } else if w.len() > 4 && w.ends_with("aux") {
        w.truncate(w.len() - 2);
        w.push('l');
    } else if w.len() > 3 && (w.ends_with('s') || w.ends_with('x')) && !w.ends_with("ss") {
        w.pop();
    }
    if w.len() > 3 && w.ends_with("ee") {
        w.pop();
    }
    if w.len() > 3 && w.ends_with('e') {
        w.pop();
    }
    w
}

/// The searchable terms of `text`, in order: folded, split on anything that is
/// not a letter or a digit (so elisions like d'/l'/qu' come apart), without
/// stop words, stemmed.
pub fn terms(text: &str) -> Vec<String> {
    fold_accents(text)
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty() && !STOP_WORDS.contains(w))
        .map(stem)
        .filter(|w| !w.is_empty())
        .collect()
}

/// The normalised text stored for the index: the terms joined by spaces.
pub fn normalise(text: &str) -> String {
    terms(text).join(" ")
}

/// The département of a territory code: a commune's first two characters
/// (three for the overseas 97x), or `None` when the code is no commune.
pub fn departement_of(code: &str) -> Option<&str> {
    if code.len() != 5 || !code.is_ascii() {
        return None;
    }
    Some(if code.starts_with("97") {
        &code[..3]
    } else {
        &code[..2]
    })
}

fn listed<'a>(values: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::from("|");
    for v in values {
        let v = v.trim();
        if !v.is_empty() && !out.contains(&format!("|{v}|")) {
            out.push_str(v);
            out.push('|');
        }
    }
    out
}

fn kind_code(kind: ContentKind) -> &'static str {
    match kind {
        ContentKind::Question => "question",
        ContentKind::Answer => "answer",
        ContentKind::Solution => "solution",
        ContentKind::Unspecified => "unspecified",
    }
}

fn kind_from_code(code: &str) -> ContentKind {
    match code {
        "question" => ContentKind::Question,
        "answer" => ContentKind::Answer,
        "solution" => ContentKind::Solution,
        _ => ContentKind::Unspecified,
    }
}

fn status_code(status: ContentStatus) -> &'static str {
    match status {
        ContentStatus::Published => "published",
        ContentStatus::Hidden | ContentStatus::Unspecified => "hidden",
    }
}

// ---------------------------------------------------------------------------
// Index writes (called by the content part, in its transactions)
// ---------------------------------------------------------------------------

/// Indexes `doc`, or re-indexes it when it is already there.
pub async fn index(tx: &mut Tx, doc: &Document) -> Result<(), DbError> {
    let kind = kind_code(doc.kind);
    let title_terms = normalise(&doc.title);
    let body_terms = normalise(&doc.body);
    let domains = listed(doc.domains.iter().map(String::as_str));
    let codes = listed(doc.territory_codes.iter().map(String::as_str));
    let scope = listed(
        doc.territory_codes
            .iter()
            .flat_map(|c| [Some(c.trim()), departement_of(c.trim())])
            .flatten(),
    );
    let status = status_code(doc.status);
    let now = now_us();
    match tx.conn() {
        Conn::Sqlite(c) => {
            let old: Option<i64> = sqlx::query_scalar(
                "SELECT doc_no FROM search_documents WHERE kind = $1 AND content_id = $2",
            )
            .bind(kind)
            .bind(&doc.content_id)
            .fetch_optional(&mut *c)
            .await?;
            let doc_no: i64 = sqlx::query_scalar(
                "INSERT INTO search_documents (kind, content_id, question_id, space_id, title, body, \
                 title_terms, body_terms, domains, territory_codes, territory_scope, status, updated_at_us) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
                 ON CONFLICT (kind, content_id) DO UPDATE SET question_id = excluded.question_id, \
                 space_id = excluded.space_id, title = excluded.title, body = excluded.body, \
                 title_terms = excluded.title_terms, body_terms = excluded.body_terms, \
                 domains = excluded.domains, territory_codes = excluded.territory_codes, \
                 territory_scope = excluded.territory_scope, status = excluded.status, \
                 updated_at_us = excluded.updated_at_us RETURNING doc_no",
            )
            .bind(kind)
            .bind(&doc.content_id)
            .bind(&doc.question_id)
            .bind(&doc.space_id)
            .bind(&doc.title)
            .bind(&doc.body)
            .bind(&title_terms)
            .bind(&body_terms)
            .bind(&domains)
            .bind(&codes)
            .bind(&scope)
            .bind(status)
            .bind(now)
            .fetch_one(&mut *c)
            .await?;
            if old.is_some() {
                sqlx::query("DELETE FROM search_fts WHERE rowid = $1")
                    .bind(doc_no)
                    .execute(&mut *c)
                    .await?;
            }
            sqlx::query(
                "INSERT INTO search_fts (rowid, title_terms, body_terms) VALUES ($1, $2, $3)",
            )
            .bind(doc_no)
            .bind(&title_terms)
            .bind(&body_terms)
            .execute(&mut *c)
            .await?;
        }
        Conn::Postgres(c) => {
            sqlx::query(
                "INSERT INTO search_documents (kind, content_id, question_id, space_id, title, body, \
                 title_terms, body_terms, terms, domains, territory_codes, territory_scope, status, updated_at_us) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, \
                 setweight(to_tsvector('simple', $7), 'A') || setweight(to_tsvector('simple', $8), 'B'), \
                 $9, $10, $11, $12, $13) \
                 ON CONFLICT (kind, content_id) DO UPDATE SET question_id = excluded.question_id, \
                 space_id = excluded.space_id, title = excluded.title, body = excluded.body, \
                 title_terms = excluded.title_terms, body_terms = excluded.body_terms, terms = excluded.terms, \
                 domains = excluded.domains, territory_codes = excluded.territory_codes, \
                 territory_scope = excluded.territory_scope, status = excluded.status, \
                 updated_at_us = excluded.updated_at_us",
            )
            .bind(kind)
            .bind(&doc.content_id)
            .bind(&doc.question_id)
            .bind(&doc.space_id)
            .bind(&doc.title)
            .bind(&doc.body)
            .bind(&title_terms)
            .bind(&body_terms)
            .bind(&domains)
            .bind(&codes)
            .bind(&scope)
            .bind(status)
            .bind(now)
            .execute(&mut *c)
            .await?;
        }
    }
    Ok(())
}

/// Publishes or hides an indexed post; nothing when it is not indexed.
pub async fn set_status(
    tx: &mut Tx,
    kind: ContentKind,
    content_id: &str,
    status: ContentStatus,
) -> Result<(), DbError> {
    on_backend!(tx.conn(), c => sqlx::query(
        "UPDATE search_documents SET status = $3, updated_at_us = $4 WHERE kind = $1 AND content_id = $2",
    )
    .bind(kind_code(kind))
    .bind(content_id)
    .bind(status_code(status))
    .bind(now_us())
    .execute(&mut *c)
    .await
    .map(|_| ()))?;
    Ok(())
}

/// Takes a post out of the index.
pub async fn remove(tx: &mut Tx, kind: ContentKind, content_id: &str) -> Result<(), DbError> {
    match tx.conn() {
        Conn::Sqlite(c) => {
            sqlx::query(
                "DELETE FROM search_fts WHERE rowid IN \
                 (SELECT doc_no FROM search_documents WHERE kind = $1 AND content_id = $2)",
            )
            .bind(kind_code(kind))
            .bind(content_id)
            .execute(&mut *c)
            .await?;
            sqlx::query("DELETE FROM search_documents WHERE kind = $1 AND content_id = $2")
                .bind(kind_code(kind))
                .bind(content_id)
                .execute(&mut *c)
                .await?;
        }
        Conn::Postgres(c) => {
            sqlx::query("DELETE FROM search_documents WHERE kind = $1 AND content_id = $2")
                .bind(kind_code(kind))
                .bind(content_id)
                .execute(&mut *c)
                .await?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Queries
// ---------------------------------------------------------------------------

/// A validated search.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Normalised terms, at least one.
    pub terms: Vec<String>,
    /// Only this kind; `None` for all.
    pub kind: Option<ContentKind>,
    /// Posts tagged with any of these domains; empty for all.
    pub domains: Vec<String>,
    /// Posts of this territory (or of its communes); `None` for all.
    pub territory_code: Option<String>,
    /// Structures whose private spaces the caller may read.
    pub structures: Vec<String>,
}

/// One result, best first.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub kind: ContentKind,
    pub content_id: String,
    pub question_id: String,
    pub title: String,
    pub snippet: String,
    pub score: f64,
}

#[derive(sqlx::FromRow)]
struct HitRow {
    kind: String,
    content_id: String,
    question_id: String,
    title: String,
    body: String,
    score: f64,
}

fn is_code(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
}

impl Query {
    /// Checks a request, naming the field at fault.
    pub fn parse(r: &SearchRequest, caller: &Principal) -> Result<Self, Status> {
        let q = r.query.trim();
        if q.chars().count() > MAX_QUERY {
            return Err(invalid_field(
                "query",
                "500 caractères au plus / at most 500 characters",
            ));
        }
        let mut wanted: Vec<String> = Vec::new();
        for t in terms(q) {
            if !wanted.contains(&t) && wanted.len() < MAX_QUERY_TERMS {
                wanted.push(t);
            }
        }
        if q.chars().count() < 2 || wanted.is_empty() {
            return Err(invalid_field(
                "query",
                "indiquez au moins un mot de deux lettres qui ne soit pas un mot vide / \
                 give at least one meaningful word of two letters or more",
            ));
        }
        let kind = match ContentKind::try_from(r.kind) {
            Ok(ContentKind::Unspecified) => None,
            Ok(k) => Some(k),
            Err(_) => {
                return Err(invalid_field(
                    "kind",
                    "type de contenu inconnu / unknown content kind",
                ));
            }
        };
        for d in &r.domains {
            if !is_code(d) {
                return Err(invalid_field("domains", "domaine inconnu / unknown domain"));
            }
        }
        let territory_code = match r.territory_code.trim() {
            "" => None,
            t if t.len() <= 5 && t.chars().all(|c| c.is_ascii_alphanumeric()) => {
                Some(t.to_ascii_uppercase())
            }
            _ => {
                return Err(invalid_field(
                    "territory_code",
                    "code de territoire invalide (département ou commune INSEE) / \
                     invalid territory code (département or INSEE commune)",
                ));
            }
        };
        Ok(Self {
            terms: wanted,
            kind,
            domains: r.domains.clone(),
            territory_code,
            structures: caller.structures.clone(),
        })
    }
}

/// Appends the filters shared by both backends, numbering binds from `next`.
fn filters(q: &Query, next: &mut usize, binds: &mut Vec<String>) -> String {
    let mut bind = |v: String, binds: &mut Vec<String>| {
        binds.push(v);
        let n = *next;
        *next += 1;
        format!("${n}")
    };
    let mut sql = String::from(" AND d.status = 'published'");
    if let Some(k) = q.kind {
        let p = bind(kind_code(k).to_owned(), binds);
        sql.push_str(&format!(" AND d.kind = {p}"));
    }
    if !q.domains.is_empty() {
        let parts: Vec<String> = q
            .domains
            .iter()
            .map(|d| format!("d.domains LIKE {}", bind(format!("%|{d}|%"), binds)))
            .collect();
        sql.push_str(&format!(" AND ({})", parts.join(" OR ")));
    }
    if let Some(t) = &q.territory_code {
        let p = bind(format!("%|{t}|%"), binds);
        let mut cond = format!("d.territory_scope LIKE {p}");
        if let Some(dep) = departement_of(t) {
            let p = bind(format!("%|{dep}|%"), binds);
            cond.push_str(&format!(" OR d.territory_codes LIKE {p}"));
        }
        sql.push_str(&format!(" AND ({cond})"));
    }
    // Private structure spaces: only for members of that structure.
    let members: Vec<String> = q
        .structures
        .iter()
        .map(|s| bind(s.clone(), binds))
        .collect();
    let member_of = if members.is_empty() {
        String::new()
    } else {
        format!(" OR s.structure_id IN ({})", members.join(", "))
    };
    sql.push_str(&format!(
        " AND NOT EXISTS (SELECT 1 FROM spaces s WHERE s.space_id = d.space_id \
         AND s.kind = 'structure' AND NOT (FALSE{member_of}))"
    ));
    sql
}

/// Runs `q`: `offset` results skipped, at most `limit` returned, best first.
pub async fn run(conn: Conn<'_>, q: &Query, offset: i64, limit: i64) -> Result<Vec<Hit>, DbError> {
    let mut binds = Vec::new();
    let rows: Vec<HitRow> = match conn {
        Conn::Sqlite(c) => {
            let fts = q
                .terms
                .iter()
                .map(|t| format!("\"{t}\""))
                .collect::<Vec<_>>()
                .join(" OR ");
            binds.push(fts);
            let mut next = 2;
            let f = filters(q, &mut next, &mut binds);
            let sql = format!(
                "SELECT d.kind, d.content_id, d.question_id, d.title, d.body, \
                 -bm25(search_fts, 3.0, 1.0) AS score \
                 FROM search_fts CROSS JOIN search_documents d ON d.doc_no = search_fts.rowid \
                 WHERE search_fts MATCH $1{f} \
                 ORDER BY score DESC, d.doc_no LIMIT ${} OFFSET ${}",
                next,
                next + 1
            );
            let mut query = sqlx::query_as::<_, HitRow>(sqlx::AssertSqlSafe(sql));
            for b in &binds {
                query = query.bind(b);
            }
            query.bind(limit).bind(offset).fetch_all(&mut *c).await?
        }
        Conn::Postgres(c) => {
            binds.push(q.terms.join(" | "));
            let mut next = 2;
            let f = filters(q, &mut next, &mut binds);
            let sql = format!(
                "SELECT d.kind, d.content_id, d.question_id, d.title, d.body, \
                 ts_rank_cd('{{0.1, 0.2, 0.4, 1.0}}', d.terms, tq)::float8 AS score \
                 FROM search_documents d, to_tsquery('simple', $1) tq \
                 WHERE d.terms @@ tq{f} \
                 ORDER BY score DESC, d.doc_no LIMIT ${} OFFSET ${}",
                next,
                next + 1
            );
            let mut query = sqlx::query_as::<_, HitRow>(sqlx::AssertSqlSafe(sql));
            for b in &binds {
                query = query.bind(b);
            }
            query.bind(limit).bind(offset).fetch_all(&mut *c).await?
        }
    };
    Ok(rows
        .into_iter()
        .map(|r| Hit {
            kind: kind_from_code(&r.kind),
            snippet: snippet(&r.body, &q.terms),
            content_id: r.content_id,
            question_id: r.question_id,
            title: r.title,
            score: r.score,
        })
        .collect())
}

/// About thirty words of `text` around the first word that matches one of
/// `terms`, with "…" where it was cut.
pub fn snippet(text: &str, terms: &[String]) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let hit = words
        .iter()
        .position(|w| self::terms(w).iter().any(|t| terms.contains(t)))
        .unwrap_or(0);
    let start = hit.saturating_sub(8);
    let end = (start + SNIPPET_WORDS).min(words.len());
    let mut out = String::new();
    if start > 0 {
        out.push_str("… ");
    }
    out.push_str(&words[start..end].join(" "));
    if end < words.len() {
        out.push_str(" …");
    }
    out
}

// ---------------------------------------------------------------------------
// gRPC
// ---------------------------------------------------------------------------

/// Who may search and screen: the counselors and admins of structures.
const CALLERS: &[Role] = &[Role::Counselor, Role::StructureAdmin];

/// `eva.community.v1.SearchService`.
#[derive(Clone)]
pub struct SearchApi {
    db: Db,
    screening: Screening,
}

pub fn server(db: Db, screening: Screening) -> SearchServiceServer<SearchApi> {
    SearchServiceServer::new(SearchApi { db, screening })
}

fn internal(e: DbError) -> Status {
    tracing::error!(error = %e, "search query failed");
    Status::internal("erreur interne / internal error")
}

#[tonic::async_trait]
impl SearchService for SearchApi {
    async fn search(
        &self,
        req: Request<SearchRequest>,
    ) -> Result<Response<SearchResponse>, Status> {
        let caller = require_role(&req, CALLERS)?;
        let r = req.get_ref();
        let mut page = Page::parse(r.page_size, &r.page_token)?;
        page.size = page.size.min(MAX_PAGE_SIZE);
        let offset = page.offset()?;
        let query = Query::parse(r, caller)?;
        let mut h = self.db.acquire().await.map_err(internal)?;
        let hits = run(h.conn(), &query, offset, page.fetch_limit())
            .await
            .map_err(internal)?;
        let (rows, next_page_token) = page.finish_at(hits, offset);
        Ok(Response::new(SearchResponse {
            hits: rows
                .into_iter()
                .map(|h| SearchHit {
                    content: Some(ContentRef {
                        kind: h.kind as i32,
                        content_id: h.content_id,
                    }),
                    question_id: h.question_id,
                    title: h.title,
                    snippet: h.snippet,
                    score: h.score,
                })
                .collect(),
            next_page_token,
        }))
    }

    async fn screen_text(
        &self,
        req: Request<ScreenTextRequest>,
    ) -> Result<Response<ScreenTextResponse>, Status> {
        let caller = require_role(&req, CALLERS)?;
        let r = req.get_ref();
        let findings: Vec<pb::PersonalDataFinding> = self
            .screening
            .findings(
                req.metadata(),
                caller,
                &[("title", r.title.as_str()), ("body", r.body.as_str())],
            )
            .await?;
        Ok(Response::new(ScreenTextResponse { findings }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accents_case_elisions_and_plurals_give_the_same_terms() {
        assert_eq!(
            terms("garde d'enfants horaires décalés"),
            terms("Garde d'enfant en horaires decales ?")
        );
        assert_eq!(
            normalise("Garde d’Enfant en HORAIRES Décalées"),
            "gard enfant horair decal"
        );
        assert_eq!(
            terms("L'hôpital qu'elle cherche"),
            vec!["hopital", "cherch"]
        );
        assert_eq!(stem("journaux"), "journal");
        assert_eq!(stem("journal"), "journal");
        assert_eq!(stem("bureaux"), "bureau");
        assert_eq!(stem("bureau"), "bureau");
        assert_eq!(stem("decalee"), "decal");
        assert_eq!(terms("Cœur"), vec!["coeur"]);
        assert_eq!(terms("RSA 2024"), vec!["rsa", "2024"]);
        assert!(terms("de la et les").is_empty());
    }

    #[test]
    fn communes_belong_to_their_departement() {
        assert_eq!(departement_of("75056"), Some("75"));
        assert_eq!(departement_of("2A004"), Some("2A"));
        assert_eq!(departement_of("97411"), Some("974"));
        assert_eq!(departement_of("75"), None);
    }

    #[test]
    fn snippets_show_the_words_around_the_match() {
        let body = (0..50)
            .map(|i| format!("mot{i}"))
            .collect::<Vec<_>>()
            .join(" ")
            + " mobilité";
        let s = snippet(&body, &["mobilit".into()]);
        assert!(s.starts_with("… mot42"), "{s}");
        assert!(s.ends_with("mobilité"), "{s}");
        assert_eq!(snippet("court texte", &["rien".into()]), "court texte");
    }
}
