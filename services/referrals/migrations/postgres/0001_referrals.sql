-- Projections of identity's events: structures (kind and territory) and who
-- follows whom.
CREATE TABLE structures (
    structure_id   TEXT    PRIMARY KEY,
    kind           INTEGER NOT NULL,
    commune_insee  TEXT    NOT NULL DEFAULT '',
    epci           TEXT    NOT NULL DEFAULT '',
    departement    TEXT    NOT NULL DEFAULT '',
    changed_at_us  BIGINT NOT NULL
);

CREATE TABLE accompaniments (
    accompaniment_id TEXT    PRIMARY KEY,
    person_id        TEXT    NOT NULL,
    structure_id     TEXT    NOT NULL,
    start_date       TEXT    NOT NULL DEFAULT '',
    end_date         TEXT    NOT NULL DEFAULT '',
    changed_at_us    BIGINT NOT NULL
);
CREATE INDEX accompaniments_person ON accompaniments (person_id);

-- A referral. Personal fields (the counselor's reason, the person's contact)
-- are sealed with the person's key by identity: `details` holds the sealed
-- JSON, `details_key` the key's id.
CREATE TABLE referrals (
    referral_id          TEXT    PRIMARY KEY,
    person_id            TEXT    NOT NULL,
    sender_structure_id  TEXT    NOT NULL,
    sender_user_id       TEXT    NOT NULL,
    target_structure_id  TEXT    NOT NULL,
    target_service_id    TEXT    NOT NULL DEFAULT '',
    status               TEXT    NOT NULL,
    domains              TEXT    NOT NULL,
    diagnostic_id        TEXT    NOT NULL DEFAULT '',
    referentiel_version  TEXT    NOT NULL DEFAULT '',
    refusal_reason       TEXT    NOT NULL DEFAULT '',
    details              BYTEA    NOT NULL,
    details_key          TEXT    NOT NULL,
    sent_at_us           BIGINT NOT NULL,
    first_answered_at_us BIGINT,
    remind_at_us         BIGINT NOT NULL,
    reminded_at_us       BIGINT,
    expires_at_us        BIGINT NOT NULL,
    closed_at_us         BIGINT,
    updated_at_us        BIGINT NOT NULL
);
CREATE INDEX referrals_sender ON referrals (sender_structure_id, sent_at_us);
CREATE INDEX referrals_target ON referrals (target_structure_id, sent_at_us);
CREATE INDEX referrals_person ON referrals (person_id, sent_at_us);
CREATE INDEX referrals_waiting ON referrals (status, expires_at_us);

-- The domains of the diagnostic that travelled, each sealed on its own.
CREATE TABLE referral_diagnostic_domains (
    referral_id TEXT NOT NULL,
    domain      TEXT NOT NULL,
    sealed      BYTEA NOT NULL,
    key_id      TEXT NOT NULL,
    PRIMARY KEY (referral_id, domain)
);

-- A referral's history; the note is sealed.
CREATE TABLE referral_transitions (
    transition_id      TEXT    PRIMARY KEY,
    referral_id        TEXT    NOT NULL,
    from_status        TEXT    NOT NULL,
    to_status          TEXT    NOT NULL,
    actor_user_id      TEXT    NOT NULL DEFAULT '',
    actor_structure_id TEXT    NOT NULL DEFAULT '',
    refusal_reason     TEXT    NOT NULL DEFAULT '',
    note               BYTEA,
    note_key           TEXT,
    occurred_at_us     BIGINT NOT NULL
);
CREATE INDEX referral_transitions_referral ON referral_transitions (referral_id, transition_id);

-- The thread between sender and receiver; bodies sealed.
CREATE TABLE referral_messages (
    message_id          TEXT    PRIMARY KEY,
    referral_id         TEXT    NOT NULL,
    author_user_id      TEXT    NOT NULL,
    author_structure_id TEXT    NOT NULL,
    body                BYTEA    NOT NULL,
    body_key            TEXT    NOT NULL,
    posted_at_us        BIGINT NOT NULL
);
CREATE INDEX referral_messages_referral ON referral_messages (referral_id, message_id);

-- How a partner wants its events on NATS: `protobuf` or `json`.
CREATE TABLE partner_settings (
    structure_id  TEXT    PRIMARY KEY,
    event_format  TEXT    NOT NULL,
    updated_at_us BIGINT NOT NULL
);
