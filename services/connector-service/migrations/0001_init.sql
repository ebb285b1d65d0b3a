-- Applied unchanged to SQLite and PostgreSQL: identifiers and instants are TEXT
-- (UUIDs and RFC 3339 UTC with milliseconds, which sort as they compare), flags
-- and counts BIGINT. Credential values never appear here: only the name of the
-- secret holding them.
CREATE TABLE tenants (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    slug TEXT NOT NULL UNIQUE,
    tier TEXT NOT NULL,
    -- Connectors saved plus creates in flight; plan limits are enforced by a
    -- conditional UPDATE of this column, atomic on both databases.
    connector_count BIGINT NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE connectors (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    type TEXT NOT NULL,
    host TEXT,
    port BIGINT,
    database_name TEXT,
    schema_name TEXT,
    credential_secret_name TEXT NOT NULL,
    ssl_enabled BIGINT NOT NULL,
    ssl_mode TEXT,
    ssl_ca_pem TEXT,
    status TEXT NOT NULL,
    last_tested_at TEXT,
    last_test_result TEXT,
    last_error_code TEXT,
    metadata TEXT NOT NULL,
    timeouts TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (tenant_id, name)
);
CREATE INDEX connectors_by_tenant ON connectors (tenant_id, created_at, id);

CREATE TABLE discovery_jobs (
    id TEXT PRIMARY KEY,
    connector_id TEXT NOT NULL REFERENCES connectors (id) ON DELETE CASCADE,
    status TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    error_code TEXT,
    message TEXT,
    schemas_discovered BIGINT,
    tables_discovered BIGINT
);
CREATE INDEX discovery_jobs_by_connector ON discovery_jobs (connector_id, started_at);

CREATE TABLE catalog_snapshots (
    id TEXT PRIMARY KEY,
    connector_id TEXT NOT NULL REFERENCES connectors (id) ON DELETE CASCADE,
    job_id TEXT,
    discovered_at TEXT NOT NULL,
    schema_count BIGINT NOT NULL,
    table_count BIGINT NOT NULL,
    catalog TEXT NOT NULL
);
CREATE INDEX catalog_snapshots_by_connector ON catalog_snapshots (connector_id, discovered_at);
