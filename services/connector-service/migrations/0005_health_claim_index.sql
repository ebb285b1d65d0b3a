-- The scheduler's claim walks due connectors in (next check, id) order and
-- stops after one batch. Never-checked rows (no health_next_at) come first as
-- '', so the order is on COALESCE(health_next_at, ''): an index on that
-- expression lets SQLite and PostgreSQL read the batch from the front of the
-- index instead of scanning and sorting every connector for each claim.
CREATE INDEX connectors_health_claim ON connectors (COALESCE(health_next_at, ''), id);
DROP INDEX connectors_health_due;
