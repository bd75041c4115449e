-- Structures as statistics knows them, from eva.identity.structure.* events:
-- type and territory only, enough to count and to group other indicators.
-- changed_at_us orders changes, so events applied out of order converge.
CREATE TABLE structures (
    structure_id  TEXT    PRIMARY KEY,
    kind          TEXT    NOT NULL,
    commune_insee TEXT    NOT NULL,
    epci          TEXT    NOT NULL,
    departement   TEXT    NOT NULL,
    created_at_us INTEGER NOT NULL,
    changed_at_us INTEGER NOT NULL
);
