-- Structures: associations, partners, the département.
CREATE TABLE structures (
    structure_id  TEXT    PRIMARY KEY,
    name          TEXT    NOT NULL,
    siret         TEXT    NOT NULL UNIQUE,
    kind          TEXT    NOT NULL,
    commune_insee TEXT    NOT NULL,
    epci          TEXT    NOT NULL DEFAULT '',
    created_at_us BIGINT  NOT NULL
);
CREATE INDEX structures_kind ON structures (kind, structure_id);

-- Token signing keys; the private half sealed with the KEK.
CREATE TABLE signing_keys (
    kid           TEXT    PRIMARY KEY,
    sealed_secret BYTEA   NOT NULL,
    created_at_us BIGINT  NOT NULL,
    retired_at_us BIGINT
);
