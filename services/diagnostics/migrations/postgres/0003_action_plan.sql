-- The action plan of a diagnostic: objectives per référentiel domain, each
-- with its actions. Titles may describe the person's situation: they are
-- sealed with the person's key by identity (as the notes are), one payload
-- per objective or action; statuses, dates, owners and referral ids are not.
CREATE TABLE plan_objectives (
    objective_id       TEXT   PRIMARY KEY,
    diagnostic_id      TEXT   NOT NULL,
    person_id          TEXT   NOT NULL,
    domain_id          TEXT   NOT NULL,
    title_ciphertext   BYTEA  NOT NULL,
    title_key_id       TEXT   NOT NULL,
    -- en_cours, realise, abandonne
    status             TEXT   NOT NULL,
    start_date         TEXT   NOT NULL,
    target_date        TEXT   NOT NULL DEFAULT '',
    end_date           TEXT   NOT NULL DEFAULT '',
    owner_structure_id TEXT   NOT NULL,
    owner_user_id      TEXT   NOT NULL,
    created_at_us      BIGINT NOT NULL,
    updated_at_us      BIGINT NOT NULL
);
CREATE INDEX plan_objectives_diagnostic ON plan_objectives (diagnostic_id, objective_id);
CREATE INDEX plan_objectives_person ON plan_objectives (person_id);

CREATE TABLE plan_actions (
    action_id          TEXT   PRIMARY KEY,
    objective_id       TEXT   NOT NULL,
    diagnostic_id      TEXT   NOT NULL,
    person_id          TEXT   NOT NULL,
    title_ciphertext   BYTEA  NOT NULL,
    title_key_id       TEXT   NOT NULL,
    -- prevue, en_cours, realisee, annulee
    status             TEXT   NOT NULL,
    planned_date       TEXT   NOT NULL DEFAULT '',
    end_date           TEXT   NOT NULL DEFAULT '',
    owner_structure_id TEXT   NOT NULL,
    owner_user_id      TEXT   NOT NULL DEFAULT '',
    -- The referral the action is (no referrals service yet: shape checked only).
    referral_id        TEXT   NOT NULL DEFAULT '',
    created_at_us      BIGINT NOT NULL,
    updated_at_us      BIGINT NOT NULL
);
CREATE INDEX plan_actions_objective ON plan_actions (objective_id, action_id);
CREATE INDEX plan_actions_diagnostic ON plan_actions (diagnostic_id);
CREATE INDEX plan_actions_person ON plan_actions (person_id);
