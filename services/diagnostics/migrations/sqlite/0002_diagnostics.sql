-- Who follows whom, from identity's eva.identity.accompaniment.* events:
-- a structure may open a diagnostic for a person it follows.
CREATE TABLE accompaniments (
    accompaniment_id TEXT   PRIMARY KEY,
    person_id        TEXT   NOT NULL,
    structure_id     TEXT   NOT NULL,
    start_date       TEXT   NOT NULL,
    end_date         TEXT   NOT NULL DEFAULT '',
    changed_at_us    BIGINT NOT NULL
);
CREATE INDEX accompaniments_person ON accompaniments (person_id, structure_id);

-- Recording structures' type and territory, from eva.identity.structure.*
-- events: what the statistics events carry instead of the structure.
CREATE TABLE structures (
    structure_id  TEXT    PRIMARY KEY,
    kind          INTEGER NOT NULL,
    commune_insee TEXT    NOT NULL,
    epci          TEXT    NOT NULL,
    departement   TEXT    NOT NULL,
    changed_at_us BIGINT  NOT NULL
);

-- Diagnostics: brouillon -> partage -> remplace.
CREATE TABLE diagnostics (
    diagnostic_id          TEXT   PRIMARY KEY,
    person_id              TEXT   NOT NULL,
    structure_id           TEXT   NOT NULL,
    counselor_user_id      TEXT   NOT NULL,
    referentiel_version    TEXT   NOT NULL,
    status                 TEXT   NOT NULL,
    previous_diagnostic_id TEXT   NOT NULL DEFAULT '',
    superseded_by          TEXT   NOT NULL DEFAULT '',
    created_at_us          BIGINT NOT NULL,
    updated_at_us          BIGINT NOT NULL,
    shared_at_us           BIGINT,
    superseded_at_us       BIGINT
);
CREATE INDEX diagnostics_person ON diagnostics (person_id, diagnostic_id);

-- The two independent ratings of each item (levels as référentiel codes,
-- '' when not rated yet).
CREATE TABLE ratings (
    diagnostic_id         TEXT   NOT NULL,
    item_id               TEXT   NOT NULL,
    domain_id             TEXT   NOT NULL,
    counselor_level       TEXT   NOT NULL DEFAULT '',
    person_level          TEXT   NOT NULL DEFAULT '',
    counselor_rated_at_us BIGINT,
    person_rated_at_us    BIGINT,
    PRIMARY KEY (diagnostic_id, item_id)
);

-- Notes, sealed with the person's key by identity: one payload per
-- diagnostic, domain and author (counselor or person), a JSON object
-- item id -> note, so one domain opens in one call.
CREATE TABLE domain_notes (
    diagnostic_id TEXT   NOT NULL,
    domain_id     TEXT   NOT NULL,
    author        TEXT   NOT NULL,
    ciphertext    BLOB  NOT NULL,
    key_id        TEXT   NOT NULL,
    updated_at_us BIGINT NOT NULL,
    PRIMARY KEY (diagnostic_id, domain_id, author)
);

-- People who object to statistics (GDPR art. 21), from
-- eva.identity.person.statistics_objection_changed: while they object,
-- sharing their diagnostics publishes no statistics event.
CREATE TABLE statistics_objections (
    person_id     TEXT    PRIMARY KEY,
    objected      BOOLEAN NOT NULL,
    changed_at_us BIGINT  NOT NULL
);
