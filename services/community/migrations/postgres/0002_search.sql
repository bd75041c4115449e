-- French full-text search over questions, answers and solutions (search.rs).
-- The text is normalised in Rust (lowercase, no accents, no elisions or stop
-- words, light stemming); `terms` is its tsvector in the French configuration,
-- title weighted A and body B. Lists are stored as `|a|b|`.
CREATE TABLE search_documents (
    doc_no          BIGSERIAL PRIMARY KEY,
    kind            TEXT     NOT NULL,
    content_id      TEXT     NOT NULL,
    question_id     TEXT     NOT NULL DEFAULT '',
    space_id        TEXT     NOT NULL DEFAULT '',
    title           TEXT     NOT NULL,
    body            TEXT     NOT NULL,
    title_terms     TEXT     NOT NULL,
    body_terms      TEXT     NOT NULL,
    terms           TSVECTOR NOT NULL,
    domains         TEXT     NOT NULL,
    territory_codes TEXT     NOT NULL,
    territory_scope TEXT     NOT NULL,
    status          TEXT     NOT NULL,
    updated_at_us   BIGINT   NOT NULL,
    UNIQUE (kind, content_id)
);
CREATE INDEX search_documents_terms ON search_documents USING GIN (terms);
