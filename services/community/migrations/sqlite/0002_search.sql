-- French full-text search over questions, answers and solutions (search.rs).
-- The text is normalised in Rust (lowercase, no accents, no elisions or stop
-- words, light stemming) and indexed by FTS5; the original text is kept for
-- titles and snippets. Lists are stored as `|a|b|` so one LIKE finds a value.
CREATE TABLE search_documents (
    doc_no          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind            TEXT    NOT NULL,
    content_id      TEXT    NOT NULL,
    question_id     TEXT    NOT NULL DEFAULT '',
    space_id        TEXT    NOT NULL DEFAULT '',
    title           TEXT    NOT NULL,
    body            TEXT    NOT NULL,
    title_terms     TEXT    NOT NULL,
    body_terms      TEXT    NOT NULL,
    -- `|domain|…|`
    domains         TEXT    NOT NULL,
    -- the codes as given, `|code|…|`
    territory_codes TEXT    NOT NULL,
    -- the codes and the département of each commune, `|code|…|`
    territory_scope TEXT    NOT NULL,
    -- 'published' | 'hidden'
    status          TEXT    NOT NULL,
    updated_at_us   INTEGER NOT NULL,
    UNIQUE (kind, content_id)
);

-- rowid = search_documents.doc_no
CREATE VIRTUAL TABLE search_fts USING fts5(title_terms, body_terms, tokenize = 'unicode61');
