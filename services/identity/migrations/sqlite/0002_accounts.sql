-- Accounts, their roles, sessions and invitations.
--
-- The e-mail and the display name are personal data of the account holder: sealed
-- with the KEK (additional data `user:<user_id>:email`, `user:<user_id>:display_name`)
-- and the e-mail found through its keyed blind index (field `email`).
CREATE TABLE users (
    user_id             TEXT    PRIMARY KEY,
    email_bidx          TEXT    NOT NULL UNIQUE,
    email_sealed        BLOB    NOT NULL,
    display_name_sealed BLOB    NOT NULL,
    -- Argon2id PHC string; NULL until the invitation is accepted.
    password_hash       TEXT,
    -- `invited` (no password yet), `active`, `disabled` (left with no membership).
    status              TEXT    NOT NULL CHECK (status IN ('invited', 'active', 'disabled')),
    -- Consecutive failed logins, and the end of the lock they caused.
    failed_logins       INTEGER NOT NULL DEFAULT 0,
    locked_until_us     INTEGER,
    created_at_us       INTEGER NOT NULL
);

-- Roles held. A role in a structure carries the structure's id; the platform-wide
-- `operator` role is a row with an empty structure_id.
CREATE TABLE memberships (
    user_id       TEXT    NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    structure_id  TEXT    NOT NULL,
    role          TEXT    NOT NULL,
    created_at_us INTEGER NOT NULL,
    PRIMARY KEY (user_id, structure_id, role)
);
CREATE INDEX memberships_structure ON memberships (structure_id, user_id);

-- Refresh tokens, stored as the SHA-256 (hex) of the random token. A refresh
-- revokes the token and names its successor in `replaced_by`; presenting a
-- replaced token again revokes the whole session.
CREATE TABLE refresh_tokens (
    token_hash    TEXT    PRIMARY KEY,
    session_id    TEXT    NOT NULL,
    user_id       TEXT    NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    expires_at_us INTEGER NOT NULL,
    revoked_at_us INTEGER,
    replaced_by   TEXT,
    created_at_us INTEGER NOT NULL
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);

-- One-time invitation codes, stored as the SHA-256 (hex) of the code. An operator's
-- invitation has an empty structure_id.
CREATE TABLE invitations (
    code_hash     TEXT    PRIMARY KEY,
    invitation_id TEXT    NOT NULL UNIQUE,
    user_id       TEXT    NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    structure_id  TEXT    NOT NULL,
    role          TEXT    NOT NULL,
    expires_at_us INTEGER NOT NULL,
    used_at_us    INTEGER,
    created_by    TEXT    NOT NULL,
    created_at_us INTEGER NOT NULL
);
CREATE INDEX invitations_user ON invitations (user_id, structure_id);
