-- A directory service may be closed without being deleted: an archived
-- service leaves searches, suggestions and the data·inclusion export (the
-- schema v1 has no field for a closed service), takes no new referral, and
-- stays readable by id. NULL while it is open.
ALTER TABLE services ADD COLUMN archived_at_us INTEGER;
-- A partner's webhook may be paused, keeping its URL and secret: deliveries
-- are still queued for it but the worker sends none until it resumes. NULL
-- while it is active.
ALTER TABLE webhooks ADD COLUMN paused_at_us INTEGER;
