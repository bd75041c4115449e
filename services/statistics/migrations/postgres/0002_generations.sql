-- Generations of the projections. Every projection table carries `gen`:
-- queries read the `current` one; a rebuild fills a `building` one from the
-- streams while the current one keeps answering, then takes over.
CREATE TABLE generations (
    gen             BIGINT PRIMARY KEY,
    state           TEXT    NOT NULL CHECK (state IN ('current', 'building', 'retired')),
    rebuild_id      TEXT    NOT NULL,
    started_at_us   BIGINT NOT NULL,
    completed_at_us BIGINT,
    events_applied  BIGINT NOT NULL DEFAULT 0
);
INSERT INTO generations (gen, state, rebuild_id, started_at_us) VALUES (1, 'current', '', 0);

-- Structures, now per generation.
CREATE TABLE structures_by_gen (
    gen           BIGINT NOT NULL,
    structure_id  TEXT    NOT NULL,
    kind          TEXT    NOT NULL,
    commune_insee TEXT    NOT NULL,
    epci          TEXT    NOT NULL,
    departement   TEXT    NOT NULL,
    created_at_us BIGINT NOT NULL,
    changed_at_us BIGINT NOT NULL,
    PRIMARY KEY (gen, structure_id)
);
INSERT INTO structures_by_gen
    SELECT 1, structure_id, kind, commune_insee, epci, departement, created_at_us, changed_at_us FROM structures;
DROP TABLE structures;
ALTER TABLE structures_by_gen RENAME TO structures;

-- Territory codes seen in events (structures' and diagnostics' contexts):
-- a query naming a code never seen is refused as unknown.
CREATE TABLE territories (
    code  TEXT NOT NULL PRIMARY KEY,
    level TEXT NOT NULL CHECK (level IN ('commune', 'epci', 'departement'))
);
INSERT INTO territories (code, level) SELECT DISTINCT commune_insee, 'commune' FROM structures WHERE commune_insee <> '' ON CONFLICT DO NOTHING;
INSERT INTO territories (code, level) SELECT DISTINCT epci, 'epci' FROM structures WHERE epci <> '' ON CONFLICT DO NOTHING;
INSERT INTO territories (code, level) SELECT DISTINCT departement, 'departement' FROM structures WHERE departement <> '' ON CONFLICT DO NOTHING;

-- Pseudonyms whose owner objects to statistics (or did and lifted it): the
-- latest choice wins whatever order events arrive in. Diagnostics'
-- pseudonyms as they come; statistics' own (`p:` + keyed hash of a person
-- id) for referrals and accompaniments.
CREATE TABLE exclusions (
    gen           BIGINT NOT NULL,
    pseudonym     TEXT    NOT NULL,
    excluded      BOOLEAN NOT NULL,
    changed_at_us BIGINT NOT NULL,
    PRIMARY KEY (gen, pseudonym)
);

-- Statistics' own secrets (the key of its person pseudonyms), kept across
-- rebuilds.
CREATE TABLE secrets (
    name  TEXT NOT NULL PRIMARY KEY,
    value BYTEA NOT NULL
);
