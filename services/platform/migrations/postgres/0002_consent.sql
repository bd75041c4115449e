-- The local consent projection a service keeps from eva.consent.grant.*
-- events, so it decides "may this structure see this domain of this person
-- for this purpose?" without a call to identity.
CREATE TABLE eva_consent_grants (
    consent_id    TEXT    PRIMARY KEY,
    person_id     TEXT    NOT NULL,
    structure_id  TEXT    NOT NULL,
    -- comma-separated référentiel domain ids and purpose codes
    domains       TEXT    NOT NULL,
    purposes      TEXT    NOT NULL,
    -- YYYY-MM-DD, inclusive; empty until the grant itself is seen
    valid_from    TEXT    NOT NULL,
    valid_until   TEXT    NOT NULL,
    -- granted | withdrawn | expired; withdrawn and expired are final
    status        TEXT    NOT NULL,
    changed_at_us BIGINT  NOT NULL
);
CREATE INDEX eva_consent_grants_person ON eva_consent_grants (person_id, structure_id);

-- People whose data was erased: every decision about them is a denial.
CREATE TABLE eva_consent_erased (
    person_id     TEXT    PRIMARY KEY,
    erased_at_us  BIGINT  NOT NULL
);
