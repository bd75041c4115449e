-- Who follows whom and what kind of structure: the local projection a
-- service keeps from identity's eva.identity.accompaniment.* and
-- eva.identity.structure.* events (eva_platform::follows).
CREATE TABLE eva_accompaniments (
    accompaniment_id TEXT    PRIMARY KEY,
    person_id        TEXT    NOT NULL,
    structure_id     TEXT    NOT NULL,
    -- YYYY-MM-DD; empty until the start is seen
    start_date       TEXT    NOT NULL DEFAULT '',
    -- YYYY-MM-DD; empty while the accompaniment is open; final once set
    end_date         TEXT    NOT NULL DEFAULT '',
    changed_at_us    INTEGER  NOT NULL
);
CREATE INDEX eva_accompaniments_person ON eva_accompaniments (person_id, structure_id);

-- Structures' kind (eva.identity.v1.StructureKind number) and territory.
CREATE TABLE eva_structures (
    structure_id  TEXT    PRIMARY KEY,
    kind          INTEGER NOT NULL,
    commune_insee TEXT    NOT NULL DEFAULT '',
    epci          TEXT    NOT NULL DEFAULT '',
    departement   TEXT    NOT NULL DEFAULT '',
    changed_at_us INTEGER  NOT NULL
);
