-- The directory of services (offres), with the fields of the data·inclusion
-- schema v1 (EVA's names; see `eva.referrals.v1.Service`). Lists of codes
-- (types, thématiques, publics, modes, zone) are kept as comma lists: codes
-- never hold a comma. `service_codes` repeats the thématiques, publics and
-- zone codes one per row so that searches use an index.
CREATE TABLE services (
    service_id           TEXT    PRIMARY KEY,
    structure_id         TEXT    NOT NULL DEFAULT '',
    source               TEXT    NOT NULL,
    source_id            TEXT    NOT NULL,
    source_structure_id  TEXT    NOT NULL DEFAULT '',
    name                 TEXT    NOT NULL,
    description          TEXT    NOT NULL,
    types                TEXT    NOT NULL DEFAULT '',
    thematiques          TEXT    NOT NULL DEFAULT '',
    fees                 TEXT    NOT NULL DEFAULT '',
    fees_details         TEXT    NOT NULL DEFAULT '',
    publics              TEXT    NOT NULL DEFAULT '',
    publics_details      TEXT    NOT NULL DEFAULT '',
    access_conditions    TEXT    NOT NULL DEFAULT '',
    commune              TEXT    NOT NULL DEFAULT '',
    postal_code          TEXT    NOT NULL DEFAULT '',
    commune_insee        TEXT    NOT NULL DEFAULT '',
    address              TEXT    NOT NULL DEFAULT '',
    address_complement   TEXT    NOT NULL DEFAULT '',
    longitude            REAL,
    latitude             REAL,
    phone                TEXT    NOT NULL DEFAULT '',
    email                TEXT    NOT NULL DEFAULT '',
    contact_name         TEXT    NOT NULL DEFAULT '',
    reception_modes      TEXT    NOT NULL DEFAULT '',
    eligibility_zone     TEXT    NOT NULL DEFAULT '',
    mobilisation_link    TEXT    NOT NULL DEFAULT '',
    mobilisation_modes   TEXT    NOT NULL DEFAULT '',
    mobilisable_by       TEXT    NOT NULL DEFAULT '',
    mobilisation_details TEXT    NOT NULL DEFAULT '',
    weekly_hours         REAL,
    weeks                INTEGER,
    opening_hours        TEXT    NOT NULL DEFAULT '',
    updated_on           TEXT    NOT NULL,
    capacity             INTEGER,
    available_places     INTEGER,
    created_at_us        INTEGER NOT NULL,
    updated_at_us        INTEGER NOT NULL,
    UNIQUE (source, source_id)
);
CREATE INDEX services_structure ON services (structure_id, service_id);
CREATE INDEX services_commune ON services (commune_insee);

-- One row per searchable code of a service: `kind` is `thematique`,
-- `public` or `zone`.
CREATE TABLE service_codes (
    kind       TEXT NOT NULL,
    code       TEXT NOT NULL,
    service_id TEXT NOT NULL,
    PRIMARY KEY (kind, code, service_id)
);
CREATE INDEX service_codes_service ON service_codes (service_id);
