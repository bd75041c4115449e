-- Partners' webhooks and the delivery of each event to each of them
-- (`src/partners/`). The signing secret is sealed with the platform's
-- key-encryption key (AAD `eva:webhook-secret:<webhook_id>`); the body is
-- already rendered in the webhook's format when the event is written.
CREATE TABLE webhooks (
    webhook_id     TEXT    PRIMARY KEY,
    structure_id   TEXT    NOT NULL,
    url            TEXT    NOT NULL,
    -- `protobuf` or `json`
    format         TEXT    NOT NULL,
    secret_sealed  BYTEA   NOT NULL,
    created_at_us  BIGINT  NOT NULL
);
CREATE INDEX webhooks_structure ON webhooks (structure_id, webhook_id);

CREATE TABLE webhook_deliveries (
    delivery_id         TEXT    PRIMARY KEY,
    webhook_id          TEXT    NOT NULL REFERENCES webhooks (webhook_id) ON DELETE CASCADE,
    -- CloudEvents `ce-id` (UUIDv7) and `ce-type`
    event_id            TEXT    NOT NULL,
    event_type          TEXT    NOT NULL,
    -- CloudEvents `ce-time`
    occurred_at_us      BIGINT  NOT NULL,
    body                BYTEA   NOT NULL,
    content_type        TEXT    NOT NULL,
    -- `pending`, `delivered`, `retrying`, `failed`
    status              TEXT    NOT NULL,
    attempts            BIGINT  NOT NULL DEFAULT 0,
    -- NULL once delivered or failed
    next_attempt_at_us  BIGINT,
    last_attempt_at_us  BIGINT,
    -- 0 when the endpoint gave no answer
    last_http_status    BIGINT  NOT NULL DEFAULT 0,
    last_error          TEXT    NOT NULL DEFAULT '',
    created_at_us       BIGINT  NOT NULL,
    -- a replayed event never doubles a delivery
    UNIQUE (webhook_id, event_id)
);
CREATE INDEX webhook_deliveries_line ON webhook_deliveries (webhook_id, status, delivery_id);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at_us);
