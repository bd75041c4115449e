-- People and referrals, from eva.identity.accompaniment.*, eva.identity.person.*
-- and eva.referrals.referral.*. No person id is stored: `pseudonym` is
-- statistics' own keyed pseudonym (`p:` + HMAC of the person id), used only
-- to count people once and to honour objections; after the person's erasure
-- it is replaced by `erased:<row id>`, which links nothing.

-- One row per accompaniment. Dates are `YYYY-MM-DD`; start_date is NULL while
-- only the end has been seen, end_date while it goes on.
CREATE TABLE accompaniments (
    gen              BIGINT  NOT NULL,
    accompaniment_id TEXT    NOT NULL,
    pseudonym        TEXT    NOT NULL,
    structure_id     TEXT    NOT NULL,
    start_date       TEXT,
    end_date         TEXT,
    excluded         BOOLEAN NOT NULL,
    PRIMARY KEY (gen, accompaniment_id)
);
CREATE INDEX accompaniments_by_pseudonym ON accompaniments (gen, pseudonym);
CREATE INDEX accompaniments_by_start ON accompaniments (gen, start_date);

-- One row per referral: when it was sent, answered, decided and closed.
-- Each time is the earliest seen, so events converge in any order.
CREATE TABLE referrals (
    gen                 BIGINT  NOT NULL,
    referral_id         TEXT    NOT NULL,
    pseudonym           TEXT    NOT NULL,
    sender_structure_id TEXT    NOT NULL,
    target_structure_id TEXT    NOT NULL,
    sent_month          TEXT    NOT NULL,
    sent_at_us          BIGINT  NOT NULL,
    first_answer_at_us  BIGINT,
    decision            TEXT,
    decided_at_us       BIGINT,
    refusal_reason      TEXT,
    outcome             TEXT,
    outcome_at_us       BIGINT,
    excluded            BOOLEAN NOT NULL,
    PRIMARY KEY (gen, referral_id)
);
CREATE INDEX referrals_by_pseudonym ON referrals (gen, pseudonym);
CREATE INDEX referrals_by_month ON referrals (gen, sent_month);

-- Pseudonyms of erased people: facts about them read later (a rebuild reads
-- the streams in any relative order) are stored already unlinked.
CREATE TABLE erased_pseudonyms (
    gen          BIGINT  NOT NULL,
    pseudonym    TEXT    NOT NULL,
    erased_at_us BIGINT  NOT NULL,
    PRIMARY KEY (gen, pseudonym)
);
