-- Counselors' community, from eva.community.* events: ids, months,
-- départements and domains only (events carry no author, no text).

-- Questions; first_answer_at_us is the earliest answer seen, whatever
-- order the question and its answers arrive in.
CREATE TABLE community_questions (
    gen                INTEGER NOT NULL,
    question_id        TEXT    NOT NULL,
    month              TEXT    NOT NULL,
    departement        TEXT    NOT NULL,
    domains            TEXT    NOT NULL, -- JSON array of domain ids
    asked_at_us        INTEGER NOT NULL,
    first_answer_at_us INTEGER,
    PRIMARY KEY (gen, question_id)
);
CREATE INDEX community_questions_by_month ON community_questions (gen, month);

-- Answers, kept so that a question arriving after them finds its first one.
CREATE TABLE community_answers (
    gen          INTEGER NOT NULL,
    answer_id    TEXT    NOT NULL,
    question_id  TEXT    NOT NULL,
    posted_at_us INTEGER NOT NULL,
    PRIMARY KEY (gen, answer_id)
);
CREATE INDEX community_answers_by_question ON community_answers (gen, question_id);

-- Anonymous quality-of-work-life check-ins, keyed by their event id.
CREATE TABLE community_checkins (
    gen         INTEGER NOT NULL,
    event_id    TEXT    NOT NULL,
    month       TEXT    NOT NULL,
    departement TEXT    NOT NULL,
    workload    INTEGER NOT NULL CHECK (workload BETWEEN 1 AND 5),
    isolation   INTEGER NOT NULL CHECK (isolation BETWEEN 1 AND 5),
    support     INTEGER NOT NULL CHECK (support BETWEEN 1 AND 5),
    PRIMARY KEY (gen, event_id)
);
CREATE INDEX community_checkins_by_month ON community_checkins (gen, month);
