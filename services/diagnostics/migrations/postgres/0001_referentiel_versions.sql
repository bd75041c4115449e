-- The référentiel versions this instance has loaded: when each was first and
-- last loaded, and a digest of its content, so that a version whose content
-- changed under the same label is noticed (diagnostics record the label).
CREATE TABLE referentiel_versions (
    version            TEXT    PRIMARY KEY,
    published_on       TEXT    NOT NULL,
    content_sha256     TEXT    NOT NULL,
    first_loaded_at_us BIGINT  NOT NULL,
    last_loaded_at_us  BIGINT  NOT NULL
);
