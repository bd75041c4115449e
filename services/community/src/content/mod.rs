//! Community content: spaces (by territory, by theme, private per
//! structure) and their members, questions and answers with votes, an
//! accepted and a certified answer, and the solution library.
//!
//! Who may do what: counselors and structure admins use the community;
//! operators create territory and theme spaces, a structure admin its
//! structure's private space. A private space is visible only to members of
//! its structure. Hidden posts are listed only to the space's moderators
//! (and shown to their author). Every post is screened for personal data of
//! the people supported before it is stored, and indexed for search in the
//! transaction that stores it, with its event.

pub mod members;
pub mod questions;
pub mod solutions;
pub mod spaces;

use eva_platform::auth::{Principal, Role};
use eva_platform::consent;
use eva_platform::db::{Db, DbError, Tx};
use eva_platform::grpc::invalid_field;
use eva_platform::on_backend;
use eva_platform::outbox::{self, Event};
use eva_proto::community::v1::question_service_server::QuestionServiceServer;
use eva_proto::community::v1::solution_service_server::SolutionServiceServer;
use eva_proto::community::v1::space_service_server::SpaceServiceServer;
use tonic::Status;

use crate::SERVICE;
use crate::screening::Screening;

/// Roles that take part in the community.
pub const MEMBERS: &[Role] = &[Role::Counselor, Role::StructureAdmin];
/// Roles that may read spaces (members, and operators who manage them).
pub const SPACE_READERS: &[Role] = &[Role::Counselor, Role::StructureAdmin, Role::Operator];

/// Title length, in characters.
pub const MIN_TITLE: usize = 5;
pub const MAX_TITLE: usize = 200;
/// Longest body, in characters.
pub const MAX_BODY: usize = 10_000;

/// The state behind `SpaceService`, `QuestionService` and `SolutionService`.
#[derive(Clone)]
pub struct ContentApi {
    pub db: Db,
    pub screening: Screening,
}

impl ContentApi {
    pub fn new(db: Db, screening: Screening) -> Self {
        Self { db, screening }
    }
}

pub fn space_server(api: ContentApi) -> SpaceServiceServer<ContentApi> {
    SpaceServiceServer::new(api)
}

pub fn question_server(api: ContentApi) -> QuestionServiceServer<ContentApi> {
    QuestionServiceServer::new(api)
}

pub fn solution_server(api: ContentApi) -> SolutionServiceServer<ContentApi> {
    SolutionServiceServer::new(api)
}

pub fn internal(e: impl std::fmt::Display) -> Status {
    tracing::error!(error = %e, "community internal error");
    Status::internal("erreur interne / internal error")
}

pub fn check_id(field: &str, value: &str) -> Result<(), Status> {
    uuid::Uuid::parse_str(value)
        .map(|_| ())
        .map_err(|_| invalid_field(field, "identifiant invalide / not a valid id"))
}

/// A title: 5 to 200 characters once trimmed.
pub fn check_title(title: &str) -> Result<String, Status> {
    let t = title.trim();
    if t.is_empty() {
        return Err(invalid_field("title", "donnez un titre / give a title"));
    }
    let n = t.chars().count();
    if !(MIN_TITLE..=MAX_TITLE).contains(&n) {
        return Err(invalid_field(
            "title",
            &format!(
                "de {MIN_TITLE} à {MAX_TITLE} caractères / {MIN_TITLE} to {MAX_TITLE} characters"
            ),
        ));
    }
    Ok(t.to_owned())
}

/// A body: 1 to 10 000 characters once trimmed.
pub fn check_body(body: &str) -> Result<String, Status> {
    let b = body.trim();
    if b.is_empty() {
        return Err(invalid_field(
            "body",
            "le texte est vide / the text is empty",
        ));
    }
    if b.chars().count() > MAX_BODY {
        return Err(invalid_field(
            "body",
            &format!("{MAX_BODY} caractères au plus / at most {MAX_BODY} characters"),
        ));
    }
    Ok(b.to_owned())
}

/// Known référentiel domains, once each, in the order given.
pub fn check_domains(field: &str, domains: &[String]) -> Result<Vec<String>, Status> {
    let mut out: Vec<String> = Vec::new();
    for d in domains {
        let d = d.trim();
        if consent::domain(d).is_none() {
            return Err(invalid_field(
                field,
                &format!("domaine inconnu : « {d} » / unknown domain"),
            ));
        }
        if !out.iter().any(|o| o == d) {
            out.push(d.to_owned());
        }
    }
    Ok(out)
}

/// Référentiel items, `<domain>.<item>` with a known domain.
pub fn check_items(items: &[String]) -> Result<Vec<String>, Status> {
    let mut out: Vec<String> = Vec::new();
    for i in items {
        let i = i.trim();
        let ok = i.split_once('.').is_some_and(|(d, item)| {
            consent::domain(d).is_some()
                && !item.is_empty()
                && item
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        });
        if !ok {
            return Err(invalid_field(
                "item_ids",
                &format!(
                    "item inconnu : « {i} » (attendu <domaine>.<item>) / unknown item (expected <domain>.<item>)"
                ),
            ));
        }
        if !out.iter().any(|o| o == i) {
            out.push(i.to_owned());
        }
    }
    Ok(out)
}

/// An INSEE commune (5 characters), département (2–3) or EPCI (9 digits) code.
pub fn territory_ok(code: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    let corsica = |s: &str| s.starts_with("2A") || s.starts_with("2B");
    match code.len() {
        2 => digits(code) || code == "2A" || code == "2B",
        3 => digits(code),
        5 => digits(code) || (corsica(code) && digits(&code[2..])),
        9 => digits(code),
        _ => false,
    }
}

pub fn check_territory(field: &str, code: &str) -> Result<String, Status> {
    let c = code.trim().to_uppercase();
    if !territory_ok(&c) {
        return Err(invalid_field(
            field,
            &format!(
                "code territoire invalide « {code} » : commune INSEE (5 caractères), département (2 ou 3) ou EPCI (9 chiffres) / \
                 invalid territory code: INSEE commune (5 characters), département (2 or 3) or EPCI (9 digits)"
            ),
        ));
    }
    Ok(c)
}

/// The département of an INSEE commune code (`27229` → `27`, `97411` →
/// `974`, `2A004` → `2A`).
pub fn departement_of_commune(code: &str) -> Option<&str> {
    if code.len() != 5 || !code.is_ascii() {
        return None;
    }
    Some(if code.starts_with("97") {
        &code[..3]
    } else {
        &code[..2]
    })
}

/// SQL condition: the comma list `column` holds a code matching the
/// territory `code`: the code itself; for a commune, also its département;
/// for a département, also its communes. Binds are pushed on `binds`.
pub fn territory_sql(column: &str, code: &str, binds: &mut Vec<String>) -> String {
    let list = format!("(',' || {column} || ',')");
    let mut any = Vec::new();
    binds.push(format!("%,{code},%"));
    any.push(format!("{list} LIKE ${}", binds.len()));
    if let Some(dep) = departement_of_commune(code) {
        binds.push(format!("%,{dep},%"));
        any.push(format!("{list} LIKE ${}", binds.len()));
    } else if matches!(code.len(), 2 | 3) {
        let rest = "_".repeat(5 - code.len());
        binds.push(format!("%,{code}{rest},%"));
        any.push(format!("{list} LIKE ${}", binds.len()));
    }
    format!("({})", any.join(" OR "))
}

/// A comma list as a vector.
pub fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .filter(|x| !x.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Writes `message` as the event `subject` about `aggregate_id`.
pub async fn publish(
    tx: &mut Tx,
    subject: &str,
    aggregate_id: &str,
    message: &impl prost::Message,
) -> Result<(), DbError> {
    outbox::enqueue(
        tx,
        &Event::new(SERVICE, subject, Some(aggregate_id.to_owned()), message),
    )
    .await
}

/// `(a, b)` placeholders `$start…` for `n` values.
pub fn placeholders(start: usize, n: usize) -> String {
    (start..start + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The caller's role in a space: `member`, `moderator` or none.
pub async fn member_role(
    db: &Db,
    space_id: &str,
    user_id: &str,
) -> Result<Option<String>, DbError> {
    let mut h = db.acquire().await?;
    let row: Option<(String,)> = on_backend!(h.conn(), c => sqlx::query_as(
        "SELECT role FROM space_members WHERE space_id = $1 AND user_id = $2",
    )
    .bind(space_id)
    .bind(user_id)
    .fetch_optional(&mut *c)
    .await)?;
    Ok(row.map(|r| r.0))
}

/// Whether the caller may see a space of `kind` for `structure_id`.
pub fn may_see(caller: &Principal, kind: &str, structure_id: &str) -> bool {
    if !caller.has_any_role(SPACE_READERS) {
        return false;
    }
    kind != "structure" || caller.belongs_to(structure_id)
}

/// The structure the caller posts for: the space's structure for a private
/// space, else the caller's first structure.
pub fn author_structure(caller: &Principal, space_structure: &str) -> String {
    if !space_structure.is_empty() && caller.belongs_to(space_structure) {
        return space_structure.to_owned();
    }
    caller.structures.first().cloned().unwrap_or_default()
}

/// SQL condition: the space aliased `s` is visible to a caller whose
/// structures are bound from `$start` (`n` of them).
pub fn visible_space_sql(alias: &str, start: usize, n: usize) -> String {
    if n == 0 {
        format!("{alias}.kind <> 'structure'")
    } else {
        format!(
            "({alias}.kind <> 'structure' OR {alias}.structure_id IN ({}))",
            placeholders(start, n)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn territory_codes() {
        for ok in ["27", "2A", "974", "27229", "2A004", "200066470"] {
            assert!(territory_ok(ok), "{ok}");
        }
        for bad in ["", "2", "2722", "272290", "abcde", "1234567890"] {
            assert!(!territory_ok(bad), "{bad}");
        }
    }

    #[test]
    fn communes_have_a_departement() {
        assert_eq!(departement_of_commune("27229"), Some("27"));
        assert_eq!(departement_of_commune("97411"), Some("974"));
        assert_eq!(departement_of_commune("2A004"), Some("2A"));
        assert_eq!(departement_of_commune("27"), None);
        let mut binds = Vec::new();
        let sql = territory_sql("q.territory_code", "27", &mut binds);
        assert_eq!(binds, vec!["%,27,%", "%,27___,%"]);
        assert!(sql.contains("$2"));
    }

    #[test]
    fn titles_and_bodies_have_limits() {
        assert!(check_title("Vélo").is_err());
        assert!(check_title(&"é".repeat(200)).is_ok());
        assert!(check_title(&"é".repeat(201)).is_err());
        assert!(check_title("  Garage solidaire  ").is_ok_and(|t| t == "Garage solidaire"));
        assert!(check_body(" ").is_err());
        assert!(check_body(&"é".repeat(10_000)).is_ok());
        let e = check_body(&"é".repeat(10_001))
            .err()
            .map(|e| e.message().to_owned());
        assert!(e.is_some_and(|m| m.starts_with("body:") && m.contains("10000")));
    }

    #[test]
    fn items_need_a_known_domain() {
        assert!(check_items(&["mobilite.permis".into()]).is_ok());
        assert!(check_items(&["voyage.permis".into()]).is_err());
        assert!(check_items(&["mobilite".into()]).is_err());
    }
}
