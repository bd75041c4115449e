-- The access log the person reads, the erased people's tombstones, and the
-- objections to statistics.

-- One row per `eva.audit.<service>.access` event (eva.audit.v1.AccessRecorded),
-- from every service. Ids and codes only: names are looked up when the log is
-- read, so erasing a person deletes their rows and nothing else names them.
CREATE TABLE access_log (
    -- the event id (UUIDv7): a redelivered event is stored once
    access_id          TEXT    PRIMARY KEY,
    person_id          TEXT    NOT NULL,
    actor_user_id      TEXT    NOT NULL,
    actor_structure_id TEXT    NOT NULL,
    -- `person`, `counselor`, `structure_admin`, …, `system`
    actor_role         TEXT    NOT NULL,
    -- `read`, `write`, `export`, `erase`
    action             TEXT    NOT NULL,
    resource_type      TEXT    NOT NULL,
    resource_id        TEXT    NOT NULL,
    -- comma-separated référentiel domain ids; '' when none
    domains            TEXT    NOT NULL,
    purpose            TEXT    NOT NULL,
    service            TEXT    NOT NULL,
    occurred_at_us     INTEGER NOT NULL
);
CREATE INDEX access_log_person ON access_log (person_id, access_id);

-- People erased (GDPR art. 17): their id and when, nothing else. Later
-- requests about them answer "not found", CheckAccess `person_erased`, and
-- late access-log events about them are dropped.
CREATE TABLE erased_people (
    person_id    TEXT    PRIMARY KEY,
    erased_at_us INTEGER NOT NULL,
    -- why, as a code (e.g. `demande_de_la_personne`); no personal data
    reason       TEXT    NOT NULL
);

-- A person's objection to statistics (GDPR art. 21); no row: no objection.
CREATE TABLE statistics_objections (
    person_id     TEXT    PRIMARY KEY,
    -- 1: objects, 0: objection lifted
    objected      INTEGER NOT NULL,
    updated_at_us INTEGER NOT NULL
);
