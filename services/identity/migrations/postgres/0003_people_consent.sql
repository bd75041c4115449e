-- People supported. Every identity field is sealed (AES-256-GCM) with the
-- person's own data key, bound to `person:<id>:<field>`; the data key is
-- stored wrapped by the KEK. Deleting `wrapped_key` shreds the person.
-- Exact-match search goes through keyed blind indexes (HMAC), never plaintext.
CREATE TABLE people (
    person_id      TEXT    PRIMARY KEY,
    wrapped_key    BYTEA   NOT NULL,
    first_name     BYTEA   NOT NULL,
    last_name      BYTEA   NOT NULL,
    birth_date     BYTEA   NOT NULL,
    email          BYTEA   NOT NULL,
    phone          BYTEA   NOT NULL,
    nir            BYTEA   NOT NULL,
    commune_insee  BYTEA   NOT NULL,
    -- index("name", last_name|first_name|birth_date)
    name_bidx      TEXT    NOT NULL,
    -- index("nir", nir) / index("email", email); '' when absent
    nir_bidx       TEXT    NOT NULL DEFAULT '',
    email_bidx     TEXT    NOT NULL DEFAULT '',
    created_at_us  BIGINT  NOT NULL,
    updated_at_us  BIGINT  NOT NULL
);
CREATE INDEX people_name_bidx ON people (name_bidx);
CREATE INDEX people_nir_bidx ON people (nir_bidx);
CREATE INDEX people_email_bidx ON people (email_bidx);

-- Which structure follows whom; history kept (rows are never deleted, except
-- by the person's erasure).
CREATE TABLE accompaniments (
    accompaniment_id TEXT    PRIMARY KEY,
    person_id        TEXT    NOT NULL REFERENCES people (person_id),
    structure_id     TEXT    NOT NULL REFERENCES structures (structure_id),
    referent_user_id TEXT    NOT NULL DEFAULT '',
    -- YYYY-MM-DD
    started_on       TEXT    NOT NULL,
    -- YYYY-MM-DD, inclusive; NULL while it goes on
    ended_on         TEXT,
    end_reason       TEXT,
    -- the referral whose acceptance started it; '' otherwise
    referral_id      TEXT    NOT NULL DEFAULT '',
    created_at_us    BIGINT  NOT NULL
);
CREATE INDEX accompaniments_person ON accompaniments (person_id, structure_id);
CREATE INDEX accompaniments_structure ON accompaniments (structure_id, person_id);
-- One accompaniment going on per person and structure.
CREATE UNIQUE INDEX accompaniments_open ON accompaniments (person_id, structure_id)
    WHERE ended_on IS NULL;

-- Consents the person gives (authoritative; services keep projections of the
-- eva.consent.grant.* events).
CREATE TABLE consents (
    consent_id          TEXT    PRIMARY KEY,
    person_id           TEXT    NOT NULL REFERENCES people (person_id),
    -- the grantee
    structure_id        TEXT    NOT NULL REFERENCES structures (structure_id),
    -- comma-separated référentiel domain ids and purpose codes
    domains             TEXT    NOT NULL,
    purposes            TEXT    NOT NULL,
    -- YYYY-MM-DD, inclusive
    valid_from          TEXT    NOT NULL,
    valid_until         TEXT    NOT NULL,
    -- active | withdrawn | expired; withdrawn and expired are final
    status              TEXT    NOT NULL,
    recorded_by_user_id TEXT    NOT NULL,
    -- espace_personnel | au_bureau
    collection          TEXT    NOT NULL,
    granted_at_us       BIGINT  NOT NULL,
    withdrawn_at_us     BIGINT ,
    expired_at_us       BIGINT ,
    -- the signed receipt: compact JSON and its detached JWS
    receipt_id          TEXT    NOT NULL,
    receipt_json        TEXT    NOT NULL,
    receipt_signature   TEXT    NOT NULL
);
CREATE INDEX consents_person ON consents (person_id, consent_id);
CREATE INDEX consents_check ON consents (person_id, structure_id);
CREATE INDEX consents_due ON consents (status, valid_until);
