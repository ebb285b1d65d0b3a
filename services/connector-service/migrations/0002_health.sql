-- Health monitoring. The scheduler's claim columns live on the connector row so
-- one conditional UPDATE (with FOR UPDATE SKIP LOCKED on PostgreSQL) both finds
-- due connectors and leases them: two replicas can never hold the same one.
ALTER TABLE connectors ADD COLUMN health_next_at TEXT;
ALTER TABLE connectors ADD COLUMN health_lease_owner TEXT;
ALTER TABLE connectors ADD COLUMN health_lease_until TEXT;
-- The status before TESTING, so the end of a check knows whether it entered
-- or left ERROR even when a dead replica left the row in TESTING.
ALTER TABLE connectors ADD COLUMN health_prev_status TEXT;
ALTER TABLE connectors ADD COLUMN last_success_at TEXT;
CREATE INDEX connectors_health_due ON connectors (health_next_at);

CREATE TABLE health_checks (
    id TEXT PRIMARY KEY,
    connector_id TEXT NOT NULL REFERENCES connectors (id) ON DELETE CASCADE,
    tenant_id TEXT NOT NULL,
    checked_at TEXT NOT NULL,
    status TEXT NOT NULL,
    success BIGINT NOT NULL,
    latency_ms BIGINT,
    error_code TEXT,
    failed_step TEXT,
    message TEXT,
    replica TEXT NOT NULL
);
CREATE INDEX health_checks_by_connector ON health_checks (connector_id, checked_at);

-- Written in the same transaction as the status change that causes it; the
-- delivery loop leases rows like the scheduler does and retries with backoff.
-- No foreign key: a notification outlives a connector deleted meanwhile.
CREATE TABLE notification_outbox (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    connector_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    lease_owner TEXT,
    lease_until TEXT,
    delivered_at TEXT,
    last_error TEXT
);
CREATE INDEX notification_outbox_pending ON notification_outbox (delivered_at, next_attempt_at);
