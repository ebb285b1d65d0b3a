-- A create in flight holds one of its tenant's plan slots through a row here,
-- leased by the process running it and renewed while it runs. A process that
-- dies stops renewing; the lease expires and reconciliation (any replica)
-- deletes the row and recounts. `tenants.connector_count` is always recomputed
-- as connector rows plus live reservations, under the tenant row's lock, so it
-- can never drift by more than the creates in flight.
CREATE TABLE create_reservations (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    -- The secret the create is writing (namespace/name), so reconciliation
    -- never takes a live create's secret for an orphan.
    secret_name TEXT,
    created_at TEXT NOT NULL,
    lease_until TEXT NOT NULL
);
CREATE INDEX create_reservations_by_tenant ON create_reservations (tenant_id, lease_until);
