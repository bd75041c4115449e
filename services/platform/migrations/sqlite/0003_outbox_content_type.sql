-- A partner who chose JSON gets its events with content-type application/json;
-- NULL means protobuf.
ALTER TABLE eva_outbox ADD COLUMN content_type TEXT;
