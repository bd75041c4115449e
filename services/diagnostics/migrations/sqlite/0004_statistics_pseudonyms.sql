-- The statistics pseudonym of each person: random, so nobody can recompute
-- it from the person's id, and deleted at erasure, which breaks the link
-- between that person's diagnostics in statistics for good.
CREATE TABLE statistics_pseudonyms (
    person_id     TEXT    PRIMARY KEY,
    pseudonym     TEXT    NOT NULL UNIQUE,
    created_at_us INTEGER NOT NULL
);
