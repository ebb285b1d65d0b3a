-- Discovery jobs live here, not in the memory of the replica that runs them:
-- any replica answers for them, and a job whose replica died is taken over.
-- The running replica holds the job through `owner` and `lease_until`, renewed
-- while it runs; a RUNNING job whose lease ended (or that has none: a version
-- that kept jobs in memory left it) is claimed by a conditional UPDATE and
-- run again with the request it stored.
ALTER TABLE discovery_jobs ADD COLUMN owner TEXT;
ALTER TABLE discovery_jobs ADD COLUMN lease_until TEXT;
-- The discovery request as JSON (NULL: the default request).
ALTER TABLE discovery_jobs ADD COLUMN request TEXT;
-- API or SCHEDULE.
ALTER TABLE discovery_jobs ADD COLUMN origin TEXT;
-- Runs started for this job: more than one when it was taken over.
ALTER TABLE discovery_jobs ADD COLUMN attempts BIGINT NOT NULL DEFAULT 1;
-- Whether the run compared with the previous fingerprint (1) or was full (0).
ALTER TABLE discovery_jobs ADD COLUMN incremental BIGINT;
-- The snapshot a successful job stored.
ALTER TABLE discovery_jobs ADD COLUMN snapshot_id TEXT;

-- At most one RUNNING job per connector, across replicas: the partial unique
-- index is the lock (both databases support it). Duplicates an older version
-- may have left on a shared store are ended first, or the index could not be
-- built.
UPDATE discovery_jobs SET status = 'FAILED', finished_at = started_at,
    error_code = 'INTERNAL', message = 'superseded by another job of the connector'
WHERE status = 'RUNNING' AND id NOT IN
    (SELECT MAX(id) FROM discovery_jobs WHERE status = 'RUNNING' GROUP BY connector_id);
CREATE UNIQUE INDEX discovery_jobs_one_running ON discovery_jobs (connector_id)
    WHERE status = 'RUNNING';

-- What an incremental re-discovery compares with, and the request the
-- snapshot was taken under (a diff across different requests is no change).
ALTER TABLE catalog_snapshots ADD COLUMN fingerprint TEXT;
ALTER TABLE catalog_snapshots ADD COLUMN request TEXT;

-- Scheduled re-discovery. The interval in seconds (NULL: the service's
-- default; 0: never) and the next due instant (NULL: due, never scheduled).
-- The claim reads due connectors from the front of the index, like health.
ALTER TABLE connectors ADD COLUMN discovery_interval_secs BIGINT;
ALTER TABLE connectors ADD COLUMN discovery_next_at TEXT;
CREATE INDEX connectors_discovery_due ON connectors (COALESCE(discovery_next_at, ''), id);
