-- Transactional outbox: an event row commits with the state change that
-- caused it; the relay publishes rows in order and deletes them on ack.
CREATE TABLE eva_outbox (
    seq            BIGSERIAL PRIMARY KEY,
    event_id       TEXT    NOT NULL UNIQUE,
    subject        TEXT    NOT NULL,
    event_type     TEXT    NOT NULL,
    source         TEXT    NOT NULL,
    ce_subject     TEXT,
    occurred_at_us BIGINT  NOT NULL,
    traceparent    TEXT,
    payload        BYTEA   NOT NULL
);

-- Idempotent consumers: "this consumer applied this event" commits in the
-- same transaction as the projection change.
CREATE TABLE eva_inbox (
    consumer      TEXT    NOT NULL,
    event_id      TEXT    NOT NULL,
    applied_at_us BIGINT  NOT NULL,
    PRIMARY KEY (consumer, event_id)
);
CREATE INDEX eva_inbox_applied ON eva_inbox (applied_at_us);

-- Events a consumer could never apply (undecodable, invalid): kept for an
-- operator, never retried.
CREATE TABLE eva_dead_letters (
    consumer       TEXT    NOT NULL,
    event_id       TEXT    NOT NULL,
    subject        TEXT    NOT NULL,
    error          TEXT    NOT NULL,
    payload        BYTEA   NOT NULL,
    recorded_at_us BIGINT  NOT NULL,
    PRIMARY KEY (consumer, event_id)
);
