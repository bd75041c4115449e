//! The OpenAPI 3.1 document of `/api/v1`, generated from the handlers: each
//! route module registers its handlers with `utoipa_axum::routes!`, so a
//! route cannot exist without its description. Served at
//! `/api/v1/openapi.json`, readable at `/api/v1/docs`.

use std::sync::Arc;

use axum::Router;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, OpenApi as Document, Ref, RefOr, Response, ResponseBuilder, Server,
};
use utoipa::{Modify, OpenApi};

use crate::problem::{FieldProblem, Problem};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "EVA — API publique / public API",
        description = "Diagnostic partagé de l'insertion : structures, personnes accompagnées, \
consentements, diagnostics, orientations, communauté des conseillers, statistiques anonymes. \
Toutes les erreurs sont des `application/problem+json` (RFC 9457) qui nomment le champ en \
cause ; les listes se parcourent avec `page_size` et `page_token`.\n\n\
Shared insertion diagnostic: structures, people supported, consents, diagnostics, referrals, \
counselors' community, anonymous statistics. Every error is `application/problem+json` \
(RFC 9457) naming the field at fault; lists page with `page_size` and `page_token`.",
        license(name = "AGPL-3.0-or-later"),
    ),
    components(schemas(Problem, FieldProblem)),
    modifiers(&Conventions),
)]
struct ApiDoc;

/// The document's starting point: info, shared schemas, conventions.
pub fn base() -> Document {
    ApiDoc::openapi()
}

/// What every operation shares, added once here rather than on each handler:
/// the bearer token, and the problem answers any call can get.
struct Conventions;

const COMMON_PROBLEMS: &[(&str, &str)] = &[
    (
        "400",
        "Requête invalide : le champ en cause est nommé dans `errors` / Invalid request: the field at fault is named in `errors`",
    ),
    (
        "401",
        "Jeton absent, expiré ou invalide / Missing, expired or invalid token",
    ),
    (
        "403",
        "Votre rôle ou le consentement de la personne ne le permet pas / Not allowed for your role or by the person's consent",
    ),
    ("404", "Introuvable / Not found"),
    (
        "429",
        "Trop de requêtes : réessayez après `Retry-After` secondes / Too many requests: retry after `Retry-After` seconds",
    ),
    (
        "503",
        "Service momentanément indisponible : réessayez après `Retry-After` secondes / Service temporarily unavailable",
    ),
];

fn problem_response(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/problem+json",
            ContentBuilder::new()
                .schema(Some(RefOr::Ref(Ref::from_schema_name("Problem"))))
                .build(),
        )
        .build()
}

impl Modify for Conventions {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "Jeton d'accès de `POST /api/v1/auth/login` / access token from `POST /api/v1/auth/login`",
                    ))
                    .build(),
            ),
        );
        for (status, description) in COMMON_PROBLEMS {
            components.responses.insert(
                format!("Problem{status}"),
                problem_response(description).into(),
            );
        }
    }
}

/// Adds the shared problem answers and the default security to every
/// operation of the finished document (modifiers run before the routers'
/// paths are merged in, so this runs after).
pub fn document(mut doc: Document) -> Document {
    doc.servers = Some(vec![Server::new("/api/v1")]);
    doc.security = Some(vec![utoipa::openapi::security::SecurityRequirement::new(
        "bearer",
        Vec::<String>::new(),
    )]);
    for (path, item) in doc.paths.paths.iter_mut() {
        // Tokens are never kept: the auth calls take no Idempotency-Key.
        if !path.starts_with("/auth/") {
            for op in [
                item.post.as_mut(),
                item.patch.as_mut(),
                item.delete.as_mut(),
            ]
            .into_iter()
            .flatten()
            {
                idempotent(op);
            }
        }
        for op in operations(item) {
            // `security(())`: a public operation answers neither 401 nor 403.
            let public = op.security.as_ref().is_some_and(|s| {
                s.iter().all(|r| {
                    serde_json::to_value(r)
                        .is_ok_and(|v| v.as_object().is_some_and(|o| o.is_empty()))
                })
            });
            for (status, _) in COMMON_PROBLEMS {
                if public && matches!(*status, "401" | "403") {
                    continue;
                }
                op.responses
                    .responses
                    .entry((*status).to_owned())
                    .or_insert_with(|| {
                        RefOr::Ref(Ref::new(format!("#/components/responses/Problem{status}")))
                    });
            }
        }
    }
    doc
}

/// The optional `Idempotency-Key` header of a write, and its two answers.
fn idempotent(op: &mut Operation) {
    use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
    use utoipa::openapi::{ObjectBuilder, Required, Type};
    let header = ParameterBuilder::new()
        .name("Idempotency-Key")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(
            "Une valeur unique par opération (un UUID) : renvoyée avec la même requête \
dans les 24 h, elle redonne la première réponse (en-tête `Idempotent-Replayed: true`) \
au lieu de refaire l'opération. / A unique value per operation (a UUID): sent again with \
the same request within 24 h, it gives back the first answer (`Idempotent-Replayed: true`) \
instead of doing the operation twice.",
        ))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(255)),
        ))
        .build();
    op.parameters.get_or_insert_with(Vec::new).push(header);
    for (status, description) in [
        (
            "409",
            "Conflit, dont : la même requête (même Idempotency-Key) est en cours, réessayez après `Retry-After` / Conflict, including: the same request (same Idempotency-Key) is in progress, retry after `Retry-After`",
        ),
        (
            "422",
            "Idempotency-Key déjà utilisée pour une autre requête / Idempotency-Key already used for another request",
        ),
    ] {
        op.responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| problem_response(description).into());
    }
}

fn operations(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
    ]
    .into_iter()
    .flatten()
}

/// `/openapi.json` and `/docs`, for the document built at start.
pub fn routes<S: Clone + Send + Sync + 'static>(doc: Document) -> Router<S> {
    let json: Arc<str> = match doc.to_pretty_json() {
        Ok(json) => json.into(),
        // Serialising a built document cannot fail on valid maps; keep the
        // gateway up and say it plainly if it ever does.
        Err(e) => format!("{{\"error\": \"openapi: {e}\"}}").into(),
    };
    Router::new()
        .route(
            "/openapi.json",
            get(move || {
                let json = json.clone();
                async move {
                    (
                        [
                            (header::CONTENT_TYPE, "application/json"),
                            (header::CACHE_CONTROL, "public, max-age=300"),
                        ],
                        json.to_string(),
                    )
                }
            }),
        )
        .route("/docs", get(docs))
}

/// A self-contained page that renders the document (no CDN: boxes are often
/// offline, and the page must work there too).
async fn docs() -> impl IntoResponse {
    Html(include_str!("openapi_docs.html"))
}
