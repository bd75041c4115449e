-- Community content: spaces and their members, questions and answers with
-- votes and follows, the solution library and its feedback. Times are µs
-- since the epoch; ids are UUIDv7 text; lists are comma-separated.

CREATE TABLE spaces (
    space_id        TEXT PRIMARY KEY,
    kind            TEXT NOT NULL CHECK (kind IN ('territory', 'theme', 'structure')),
    name            TEXT NOT NULL,
    description     TEXT NOT NULL DEFAULT '',
    territory_code  TEXT NOT NULL DEFAULT '',
    domain_id       TEXT NOT NULL DEFAULT '',
    structure_id    TEXT NOT NULL DEFAULT '',
    created_by      TEXT NOT NULL,
    created_at_us   INTEGER NOT NULL
);
CREATE INDEX spaces_structure ON spaces (structure_id);

CREATE TABLE space_members (
    space_id        TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    role            TEXT NOT NULL CHECK (role IN ('member', 'moderator')),
    joined_at_us    INTEGER NOT NULL,
    PRIMARY KEY (space_id, user_id)
);
CREATE INDEX space_members_user ON space_members (user_id);

CREATE TABLE questions (
    question_id          TEXT PRIMARY KEY,
    space_id             TEXT NOT NULL,
    author_user_id       TEXT NOT NULL,
    author_structure_id  TEXT NOT NULL DEFAULT '',
    title                TEXT NOT NULL,
    body                 TEXT NOT NULL,
    domains              TEXT NOT NULL DEFAULT '',
    territory_code       TEXT NOT NULL DEFAULT '',
    accepted_answer_id   TEXT NOT NULL DEFAULT '',
    status               TEXT NOT NULL DEFAULT 'published' CHECK (status IN ('published', 'hidden')),
    created_at_us        INTEGER NOT NULL,
    updated_at_us        INTEGER NOT NULL
);
CREATE INDEX questions_space ON questions (space_id, question_id);
CREATE INDEX questions_author ON questions (author_user_id);

CREATE TABLE answers (
    answer_id            TEXT PRIMARY KEY,
    question_id          TEXT NOT NULL,
    author_user_id       TEXT NOT NULL,
    author_structure_id  TEXT NOT NULL DEFAULT '',
    body                 TEXT NOT NULL,
    certified            INTEGER NOT NULL DEFAULT 0,
    status               TEXT NOT NULL DEFAULT 'published' CHECK (status IN ('published', 'hidden')),
    created_at_us        INTEGER NOT NULL,
    updated_at_us        INTEGER NOT NULL
);
CREATE INDEX answers_question ON answers (question_id);
CREATE INDEX answers_author ON answers (author_user_id);

CREATE TABLE votes (
    answer_id       TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    created_at_us   INTEGER NOT NULL,
    PRIMARY KEY (answer_id, user_id)
);

CREATE TABLE question_follows (
    question_id     TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    PRIMARY KEY (question_id, user_id)
);
CREATE INDEX question_follows_user ON question_follows (user_id);

CREATE TABLE solutions (
    solution_id           TEXT PRIMARY KEY,
    author_user_id        TEXT NOT NULL,
    author_structure_id   TEXT NOT NULL DEFAULT '',
    title                 TEXT NOT NULL,
    body                  TEXT NOT NULL,
    domains               TEXT NOT NULL DEFAULT '',
    item_ids              TEXT NOT NULL DEFAULT '',
    territory_codes       TEXT NOT NULL DEFAULT '',
    valid_from            TEXT NOT NULL DEFAULT '',
    valid_until           TEXT NOT NULL DEFAULT '',
    directory_service_id  TEXT NOT NULL DEFAULT '',
    status                TEXT NOT NULL DEFAULT 'published' CHECK (status IN ('published', 'hidden')),
    created_at_us         INTEGER NOT NULL,
    updated_at_us         INTEGER NOT NULL
);
CREATE INDEX solutions_author ON solutions (author_user_id);

CREATE TABLE solution_feedback (
    solution_id     TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    worked          INTEGER NOT NULL,
    created_at_us   INTEGER NOT NULL,
    PRIMARY KEY (solution_id, user_id)
);
