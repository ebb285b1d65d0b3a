//! Discovery jobs' SQL: the claim that keeps one RUNNING job per connector
//! across replicas (a partial unique index, migration 7), leases renewed while
//! a job runs and taken over once they end, the scheduled re-discovery claim,
//! and the end of a job (status, snapshot, next due time and change notice in
//! one transaction, only while the job is still held).

use sqlx::any::AnyRow;
use sqlx::Row;
use uuid::Uuid;

use super::sql::{job, uuid, SqlStore};
use super::{ClaimedJob, FinishedJob, JobStart, NewJob, Result, ScheduleClaim, StoreError};
use crate::model::{DiscoveryJob, JobOrigin, JobStatus};

/// A RUNNING job whose holder's lease ended before `now` (or that never had
/// one). SQLite numbers `$n` placeholders in order of first use, so `now` is
/// passed as the placeholder the statement reaches it at.
fn expired(now: &str) -> String {
    format!("status = 'RUNNING' AND (lease_until IS NULL OR lease_until < {now})")
}

fn claimed(row: &AnyRow, tenant_id: Uuid) -> Result<ClaimedJob> {
    Ok(ClaimedJob {
        job: job(row)?,
        tenant_id,
        request: row.try_get("request")?,
    })
}

impl SqlStore {
    /// The tenant of a connector (jobs name only the connector).
    async fn tenant_of(&self, connector: Uuid) -> Result<Option<Uuid>> {
        let t: Option<String> =
            sqlx::query_scalar("SELECT tenant_id FROM connectors WHERE id = $1")
                .bind(connector.to_string())
                .fetch_optional(&self.pool)
                .await?;
        t.map(|t| {
            Uuid::parse_str(&t).map_err(|_| StoreError::Corrupt("tenant_id is not a UUID".into()))
        })
        .transpose()
    }

    pub(super) async fn start_job(&self, n: &NewJob<'_>) -> Result<JobStart> {
        // A job that ended with its replica is taken over, and run again with
        // its own request; otherwise a new one, unless a live one runs. The
        // loop only repeats when the live job ended between two statements.
        for _ in 0..3 {
            let taken = sqlx::query(&format!(
                "UPDATE discovery_jobs SET owner = $1, lease_until = $2, attempts = attempts + 1 \
                 WHERE connector_id = $3 AND {} RETURNING *",
                expired("$4")
            ))
            .bind(n.replica)
            .bind(n.lease_until)
            .bind(n.connector.to_string())
            .bind(n.now)
            .fetch_optional(&self.pool)
            .await?;
            if let Some(row) = taken {
                return Ok(JobStart::TakenOver(claimed(&row, n.tenant_id)?));
            }
            let inserted = sqlx::query(
                "INSERT INTO discovery_jobs (id, connector_id, status, started_at, owner, \
                 lease_until, request, origin, attempts) \
                 VALUES ($1, $2, 'RUNNING', $3, $4, $5, $6, $7, 1) ON CONFLICT DO NOTHING",
            )
            .bind(n.id.to_string())
            .bind(n.connector.to_string())
            .bind(n.now)
            .bind(n.replica)
            .bind(n.lease_until)
            .bind(n.request.map(str::to_owned))
            .bind(n.origin.as_str())
            .execute(&self.pool)
            .await?;
            if inserted.rows_affected() == 1 {
                return Ok(JobStart::Started(ClaimedJob {
                    job: DiscoveryJob {
                        id: n.id,
                        connector_id: n.connector,
                        status: JobStatus::Running,
                        started_at: n.now.to_owned(),
                        finished_at: None,
                        error_code: None,
                        message: None,
                        schemas_discovered: None,
                        tables_discovered: None,
                        replica: Some(n.replica.to_owned()),
                        origin: Some(n.origin),
                        attempts: 1,
                        incremental: None,
                        snapshot_id: None,
                    },
                    tenant_id: n.tenant_id,
                    request: n.request.map(str::to_owned),
                }));
            }
            let running = sqlx::query(
                "SELECT * FROM discovery_jobs WHERE connector_id = $1 AND status = 'RUNNING'",
            )
            .bind(n.connector.to_string())
            .fetch_optional(&self.pool)
            .await?;
            if let Some(row) = running {
                return Ok(JobStart::Running(job(&row)?));
            }
        }
        Err(StoreError::Conflict(
            "the connector's discovery jobs keep changing; try again".into(),
        ))
    }

    pub(super) async fn claim_expired_jobs(
        &self,
        replica: &str,
        n: i64,
        now: &str,
        lease_until: &str,
    ) -> Result<Vec<ClaimedJob>> {
        let lock = self.skip_locked();
        let rows = sqlx::query(&format!(
            "UPDATE discovery_jobs SET owner = $1, lease_until = $2, attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM discovery_jobs WHERE {} \
                ORDER BY started_at, id LIMIT $4 {lock}) \
             RETURNING *",
            expired("$3")
        ))
        .bind(replica)
        .bind(lease_until)
        .bind(now)
        .bind(n)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let connector = uuid(row, "connector_id")?;
            // The connector was deleted meanwhile: its jobs went with it.
            if let Some(tenant) = self.tenant_of(connector).await? {
                out.push(claimed(row, tenant)?);
            }
        }
        Ok(out)
    }

    pub(super) async fn claim_scheduled(&self, c: &ScheduleClaim<'_>) -> Result<Vec<ClaimedJob>> {
        let lock = self.skip_locked();
        let mut tx = self.pool.begin().await?;
        // A write first (SQLite takes its write lock at once; PostgreSQL locks
        // the rows, skipping those another replica is claiming). The due time
        // is pushed to the lease's end here and to the connector's next run
        // below, in the same transaction.
        let due = sqlx::query(&format!(
            "UPDATE connectors SET discovery_next_at = $1 \
             WHERE id IN (SELECT id FROM connectors WHERE status <> 'INACTIVE' \
                AND COALESCE(discovery_interval_secs, $2) > 0 \
                AND id NOT IN (SELECT connector_id FROM create_reservations \
                    WHERE connector_id IS NOT NULL) \
                AND COALESCE(discovery_next_at, '') <= $3 \
                ORDER BY COALESCE(discovery_next_at, ''), id LIMIT $4 {lock}) \
             RETURNING id, tenant_id, discovery_interval_secs"
        ))
        .bind(c.lease_until)
        .bind(c.default_interval_secs)
        .bind(c.now)
        .bind(c.n)
        .fetch_all(&mut *tx)
        .await?;
        let mut out = Vec::new();
        for row in &due {
            let id = uuid(row, "id")?;
            let tenant = uuid(row, "tenant_id")?;
            let interval: Option<i64> = row.try_get("discovery_interval_secs")?;
            sqlx::query("UPDATE connectors SET discovery_next_at = $1 WHERE id = $2")
                .bind((c.next_at)(interval.unwrap_or(c.default_interval_secs)))
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
            let job_id = Uuid::new_v4();
            // A connector whose job is running (started by a create, an
            // update or a request) is not run twice: its turn is taken.
            let inserted = sqlx::query(
                "INSERT INTO discovery_jobs (id, connector_id, status, started_at, owner, \
                 lease_until, origin, attempts) \
                 VALUES ($1, $2, 'RUNNING', $3, $4, $5, $6, 1) ON CONFLICT DO NOTHING",
            )
            .bind(job_id.to_string())
            .bind(id.to_string())
            .bind(c.now)
            .bind(c.replica)
            .bind(c.lease_until)
            .bind(JobOrigin::Schedule.as_str())
            .execute(&mut *tx)
            .await?;
            if inserted.rows_affected() == 1 {
                out.push(ClaimedJob {
                    job: DiscoveryJob {
                        id: job_id,
                        connector_id: id,
                        status: JobStatus::Running,
                        started_at: c.now.to_owned(),
                        finished_at: None,
                        error_code: None,
                        message: None,
                        schemas_discovered: None,
                        tables_discovered: None,
                        replica: Some(c.replica.to_owned()),
                        origin: Some(JobOrigin::Schedule),
                        attempts: 1,
                        incremental: None,
                        snapshot_id: None,
                    },
                    tenant_id: tenant,
                    request: None,
                });
            }
        }
        tx.commit().await?;
        Ok(out)
    }

    pub(super) async fn renew_job(
        &self,
        id: Uuid,
        replica: &str,
        lease_until: &str,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE discovery_jobs SET lease_until = $1 \
             WHERE id = $2 AND owner = $3 AND status = 'RUNNING'",
        )
        .bind(lease_until)
        .bind(id.to_string())
        .bind(replica)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn finish_job(&self, f: &FinishedJob<'_>) -> Result<bool> {
        let j = f.job;
        let mut tx = self.pool.begin().await?;
        // A write first, as in `claim_scheduled`; no row: the job is no
        // longer ours (taken over, cancelled or deleted) and nothing is written.
        let held = sqlx::query(
            "UPDATE discovery_jobs SET owner = owner \
             WHERE id = $1 AND owner = $2 AND status = 'RUNNING'",
        )
        .bind(j.id.to_string())
        .bind(f.replica)
        .execute(&mut *tx)
        .await?;
        if held.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        if let Some(s) = f.snapshot {
            sqlx::query(
                "INSERT INTO catalog_snapshots (id, connector_id, job_id, discovered_at, \
                 schema_count, table_count, catalog, catalog_encoding, catalog_bytes, \
                 fingerprint, request) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(s.id.to_string())
            .bind(s.connector_id.to_string())
            .bind(s.job_id.map(|j| j.to_string()))
            .bind(&s.discovered_at)
            .bind(s.schema_count)
            .bind(s.table_count)
            // Borrowed, not copied: the bytes go to the database as they are.
            .bind(s.catalog.text())
            .bind(s.catalog.encoding())
            .bind(s.catalog.bytes())
            .bind(s.fingerprint.clone())
            .bind(s.request.clone())
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "DELETE FROM catalog_snapshots WHERE connector_id = $1 AND id NOT IN \
                 (SELECT id FROM catalog_snapshots WHERE connector_id = $1 \
                  ORDER BY discovered_at DESC, id DESC LIMIT $2)",
            )
            .bind(s.connector_id.to_string())
            .bind(f.snapshots_kept)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "UPDATE discovery_jobs SET status = $1, finished_at = $2, error_code = $3, \
             message = $4, schemas_discovered = $5, tables_discovered = $6, incremental = $7, \
             snapshot_id = $8, lease_until = NULL WHERE id = $9",
        )
        .bind(j.status.as_str())
        .bind(j.finished_at.clone())
        .bind(j.error_code.clone())
        .bind(j.message.clone())
        .bind(j.schemas_discovered)
        .bind(j.tables_discovered)
        .bind(j.incremental.map(i64::from))
        .bind(j.snapshot_id.map(|s| s.to_string()))
        .bind(j.id.to_string())
        .execute(&mut *tx)
        .await?;
        if let Some(n) = f.notice {
            let at = j.finished_at.as_deref().unwrap_or(&j.started_at);
            Self::queue_notice(&mut tx, f.tenant_id, j.connector_id, n, at).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    pub(super) async fn cancel_jobs(&self, connector: Uuid, at: &str, message: &str) -> Result<()> {
        sqlx::query(
            "UPDATE discovery_jobs SET status = 'FAILED', finished_at = $1, \
             error_code = 'CONNECTOR_INACTIVE', message = $2, lease_until = NULL \
             WHERE connector_id = $3 AND status = 'RUNNING'",
        )
        .bind(at)
        .bind(message)
        .bind(connector.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(super) async fn job_by_id(
        &self,
        connector: Uuid,
        id: Uuid,
    ) -> Result<Option<DiscoveryJob>> {
        sqlx::query("SELECT * FROM discovery_jobs WHERE connector_id = $1 AND id = $2")
            .bind(connector.to_string())
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(job)
            .transpose()
    }

    pub(super) async fn schedule_of(
        &self,
        connector: Uuid,
    ) -> Result<Option<(Option<i64>, Option<String>)>> {
        let row = sqlx::query(
            "SELECT discovery_interval_secs, discovery_next_at FROM connectors WHERE id = $1",
        )
        .bind(connector.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok((
                r.try_get("discovery_interval_secs")?,
                r.try_get("discovery_next_at")?,
            ))
        })
        .transpose()
    }

    pub(super) async fn set_schedule(
        &self,
        connector: Uuid,
        interval_secs: Option<i64>,
        next_at: Option<&str>,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE connectors SET discovery_interval_secs = $1, discovery_next_at = $2 \
             WHERE id = $3",
        )
        .bind(interval_secs)
        .bind(next_at.map(str::to_owned))
        .bind(connector.to_string())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
