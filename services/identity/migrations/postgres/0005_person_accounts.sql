-- People's own accounts, and the share codes a person hands to a new structure.

-- A `person` account is linked to the person it belongs to; one account per person.
ALTER TABLE users ADD COLUMN person_id TEXT;
CREATE UNIQUE INDEX users_person ON users (person_id) WHERE person_id IS NOT NULL;

-- One-time share codes, stored as their keyed hash (blind index `share_code`):
-- 8 characters are few enough that a plain hash could be reversed offline.
CREATE TABLE share_codes (
    code_hash            TEXT    PRIMARY KEY,
    person_id            TEXT    NOT NULL REFERENCES people (person_id) ON DELETE CASCADE,
    expires_at_us        BIGINT  NOT NULL,
    used_at_us           BIGINT,
    -- the structure that redeemed it
    used_by_structure_id TEXT,
    created_at_us        BIGINT  NOT NULL
);
CREATE INDEX share_codes_person ON share_codes (person_id, expires_at_us);

-- Failed redemptions per structure: a brake on guessing codes.
CREATE TABLE share_code_attempts (
    structure_id         TEXT    PRIMARY KEY,
    failures             INTEGER NOT NULL,
    window_started_at_us BIGINT  NOT NULL,
    locked_until_us      BIGINT
);
