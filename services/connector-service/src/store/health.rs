//! The health scheduler's SQL: leases on connector rows, the check history and
//! the notification outbox. Both databases run it; PostgreSQL adds `FOR UPDATE
//! SKIP LOCKED` so concurrent replicas skip rows another one is claiming.

use sqlx::{Connection, Row};
use uuid::Uuid;

use super::sql::{uuid, SqlStore, WriteTurn};
use super::{
    ClaimCursor, HealthCheckRecord, HealthHistory, HealthLease, HealthTransition, LeasedNotice,
    NewNotice, NoticeRule, Result, StoreError,
};
use crate::model::{ConnectorStatus, HealthCheck};

impl SqlStore {
    pub(super) fn skip_locked(&self) -> &'static str {
        if self.backend == "postgres" {
            "FOR UPDATE SKIP LOCKED"
        } else {
            ""
        }
    }

    /// SQLite has one writer at a time, and a connection that finds the
    /// write lock taken sleeps in SQLite's busy handler (1, 2, 5, … up to
    /// 100 ms) however soon the lock is free again: with 64 checks recording
    /// at once, the writes of a sweep queued there, and statements waited
    /// over a second. The scheduler's writes take their turn here instead, in
    /// order, and reach SQLite one at a time, all on the store's one writer
    /// connection: in WAL mode a connection keeps its page cache from one
    /// statement to the next only while no other connection commits, so the
    /// writer finds the tree pages its last write read still cached, where a
    /// pooled connection (after other connections' commits) read them again.
    /// PostgreSQL locks rows and needs no turn: any pooled connection.
    async fn write_turn(&self) -> Result<WriteTurn<'_>> {
        Ok(match &self.writer {
            Some(w) => WriteTurn::Writer(w.lock().await),
            None => WriteTurn::Pooled(self.pool.acquire().await?),
        })
    }

    pub(super) async fn claim_health(
        &self,
        replica: &str,
        n: usize,
        due: &str,
        now: &str,
        lease_until: &str,
        from: &mut ClaimCursor,
    ) -> Result<Vec<HealthLease>> {
        let lock = self.skip_locked();
        // The due condition and the order are on the expression migration 5
        // indexes, and the claim reads on from `from`: a claim reads one
        // batch from where the last one stopped. Read from the front instead,
        // a PostgreSQL claim would step over the dead index entries of every
        // row this sweep already claimed and recorded (each record moves the
        // row to the back of the index; vacuum removes the old entry later),
        // and a sweep would cost the square of its connectors. The redundant
        // lower bound lets SQLite seek to the cursor too (it does not seek on
        // the row value alone).
        let sql = format!(
            "UPDATE connectors SET health_lease_owner = $1, health_lease_until = $2, \
             health_prev_status = CASE WHEN status = 'TESTING' \
                THEN COALESCE(health_prev_status, 'ACTIVE') ELSE status END, \
             status = 'TESTING' \
             WHERE id IN (SELECT id FROM connectors WHERE status <> 'INACTIVE' \
                AND id NOT IN (SELECT connector_id FROM create_reservations \
                    WHERE connector_id IS NOT NULL) \
                AND COALESCE(health_next_at, '') <= $3 \
                AND (health_lease_until IS NULL OR health_lease_until < $4) \
                AND COALESCE(health_next_at, '') >= $5 \
                AND (COALESCE(health_next_at, ''), id) > ($5, $6) \
                ORDER BY COALESCE(health_next_at, ''), id LIMIT $7 {lock}) \
             RETURNING id, tenant_id, COALESCE(health_next_at, '') AS claim_key"
        );
        let mut turn = self.write_turn().await?;
        let rows = sqlx::query(&sql)
            .bind(replica)
            .bind(lease_until)
            .bind(due)
            .bind(now)
            .bind(&from.next_at)
            .bind(&from.id)
            .bind(i64::try_from(n).unwrap_or(i64::MAX))
            .fetch_all(&mut *turn)
            .await?;
        let mut leases = Vec::with_capacity(rows.len());
        for r in &rows {
            let key: String = r.try_get("claim_key")?;
            let id: String = r.try_get("id")?;
            // RETURNING has no order; both databases compare these keys
            // (fixed-width instants, UUIDs) bytewise, as Rust does.
            if (key.as_str(), id.as_str()) > (from.next_at.as_str(), from.id.as_str()) {
                from.next_at = key;
                from.id = id;
            }
            leases.push(HealthLease {
                id: uuid(r, "id")?,
                tenant_id: uuid(r, "tenant_id")?,
            });
        }
        Ok(leases)
    }

    pub(super) async fn release_health(&self, id: Uuid, replica: &str) -> Result<()> {
        let mut turn = self.write_turn().await?;
        sqlx::query(
            "UPDATE connectors SET status = COALESCE(health_prev_status, status), \
             health_lease_owner = NULL, health_lease_until = NULL, health_prev_status = NULL \
             WHERE id = $1 AND health_lease_owner = $2 AND status = 'TESTING'",
        )
        .bind(id.to_string())
        .bind(replica)
        .execute(&mut *turn)
        .await?;
        Ok(())
    }

    pub(super) async fn record_health(
        &self,
        r: &HealthCheckRecord,
        notice: &NoticeRule<'_>,
    ) -> Result<Option<ConnectorStatus>> {
        let id = r.connector.id.to_string();
        let mut turn = self.write_turn().await?;
        let mut tx = turn.begin().await?;
        // A write first: it takes SQLite's write lock at once (waiting under the
        // busy timeout) instead of upgrading a read lock later, which SQLite
        // refuses with SQLITE_BUSY when another writer got there first; on
        // PostgreSQL it locks the row. It returns what the check's transition
        // starts from. No row: the lease is no longer ours.
        let held = sqlx::query(
            "UPDATE connectors SET health_lease_owner = health_lease_owner \
             WHERE id = $1 AND health_lease_owner = $2 \
             RETURNING status, health_prev_status, last_success_at",
        )
        .bind(&id)
        .bind(&r.replica)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = held else {
            tx.rollback().await?;
            return Ok(None);
        };
        let current: String = row.try_get("status")?;
        let previous: Option<String> = row.try_get("health_prev_status")?;
        let last_success: Option<String> = row.try_get("last_success_at")?;
        // Disabled while the check ran: it stays disabled.
        let disabled = current == ConnectorStatus::Inactive.as_str();
        let status = if disabled {
            ConnectorStatus::Inactive
        } else {
            r.status
        };
        let last_success_at = if r.success {
            Some(r.checked_at.clone())
        } else {
            last_success
        };
        sqlx::query(
            "UPDATE connectors SET status = $1, last_tested_at = $2, last_test_result = $3, \
             last_error_code = $4, last_success_at = $5, health_next_at = $6, \
             health_lease_owner = NULL, health_lease_until = NULL, health_prev_status = NULL \
             WHERE id = $7",
        )
        .bind(status.as_str())
        .bind(&r.checked_at)
        .bind(&r.message)
        .bind(r.error_code.clone())
        .bind(last_success_at.clone())
        .bind(&r.next_at)
        .bind(&id)
        .execute(&mut *tx)
        .await?;
        // A time-ordered (v7) id: the history's primary-key index grows at
        // its end instead of at a random leaf, one random page less per check.
        sqlx::query(
            "INSERT INTO health_checks (id, connector_id, tenant_id, checked_at, status, success, \
             latency_ms, error_code, failed_step, message, replica) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(Uuid::now_v7().to_string())
        .bind(&id)
        .bind(r.connector.tenant_id.to_string())
        .bind(&r.checked_at)
        .bind(r.status.as_str())
        .bind(i64::from(r.success))
        .bind(i64::try_from(r.latency_ms).unwrap_or(i64::MAX))
        .bind(r.error_code.clone())
        .bind(r.failed_step.clone())
        .bind(&r.message)
        .bind(&r.replica)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "DELETE FROM health_checks WHERE connector_id = $1 AND id NOT IN \
             (SELECT id FROM health_checks WHERE connector_id = $1 \
              ORDER BY checked_at DESC, id DESC LIMIT $2)",
        )
        .bind(&id)
        .bind(r.history_kept)
        .execute(&mut *tx)
        .await?;
        let transition = HealthTransition {
            previous,
            disabled,
            status,
            last_success_at,
        };
        for n in notice(&transition) {
            Self::queue_notice(
                &mut tx,
                r.connector.tenant_id,
                r.connector.id,
                &n,
                &r.checked_at,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(Some(status))
    }

    /// Queues a notice in the outbox, due at once, inside the transaction
    /// of the change that causes it.
    pub(super) async fn queue_notice(
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        tenant: Uuid,
        connector: Uuid,
        n: &NewNotice,
        at: &str,
    ) -> Result<()> {
        // The unique (connector_id, once_key) index turns a repeated
        // once-only notice into no row.
        sqlx::query(
            "INSERT INTO notification_outbox (id, tenant_id, connector_id, kind, payload, \
             created_at, attempts, next_attempt_at, once_key) \
             VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $8) ON CONFLICT DO NOTHING",
        )
        .bind(&n.id)
        .bind(tenant.to_string())
        .bind(connector.to_string())
        .bind(&n.kind)
        .bind(&n.payload)
        .bind(at)
        .bind(at)
        .bind(n.once_key.clone())
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    pub(super) async fn health_of(&self, connector: Uuid, limit: i64) -> Result<HealthHistory> {
        let last_success_at: Option<String> =
            sqlx::query_scalar("SELECT last_success_at FROM connectors WHERE id = $1")
                .bind(connector.to_string())
                .fetch_optional(&self.pool)
                .await?
                .flatten();
        let checks = sqlx::query(
            "SELECT checked_at, status, success, latency_ms, error_code, failed_step, message \
             FROM health_checks WHERE connector_id = $1 ORDER BY checked_at DESC, id DESC LIMIT $2",
        )
        .bind(connector.to_string())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(HealthCheck {
                checked_at: r.try_get("checked_at")?,
                status: r.try_get("status")?,
                success: r.try_get::<i64, _>("success")? != 0,
                latency_ms: r.try_get("latency_ms")?,
                error_code: r.try_get("error_code")?,
                failed_step: r.try_get("failed_step")?,
                message: r.try_get("message")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
        Ok(HealthHistory {
            last_success_at,
            checks,
        })
    }

    pub(super) async fn by_status(&self) -> Result<Vec<(ConnectorStatus, i64)>> {
        sqlx::query("SELECT status, COUNT(*) AS n FROM connectors GROUP BY status")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                let s: String = r.try_get("status")?;
                let status = s
                    .parse()
                    .map_err(|_| StoreError::Corrupt(format!("status holds {s:?}")))?;
                Ok((status, r.try_get("n")?))
            })
            .collect()
    }

    pub(super) async fn lease_outbox(
        &self,
        replica: &str,
        n: i64,
        now: &str,
        lease_until: &str,
    ) -> Result<Vec<LeasedNotice>> {
        let lock = self.skip_locked();
        let mut turn = self.write_turn().await?;
        sqlx::query(&format!(
            "UPDATE notification_outbox SET lease_owner = $1, lease_until = $2 \
             WHERE id IN (SELECT id FROM notification_outbox WHERE delivered_at IS NULL \
                AND next_attempt_at <= $3 AND (lease_until IS NULL OR lease_until < $4) \
                ORDER BY created_at, id LIMIT $5 {lock}) \
             RETURNING id, kind, payload, attempts"
        ))
        .bind(replica)
        .bind(lease_until)
        .bind(now)
        .bind(now)
        .bind(n)
        .fetch_all(&mut *turn)
        .await?
        .iter()
        .map(|r| {
            Ok(LeasedNotice {
                id: r.try_get("id")?,
                kind: r.try_get("kind")?,
                payload: r.try_get("payload")?,
                attempts: r.try_get("attempts")?,
            })
        })
        .collect()
    }

    pub(super) async fn outbox_delivered(&self, id: &str, at: &str) -> Result<()> {
        let mut turn = self.write_turn().await?;
        sqlx::query(
            "UPDATE notification_outbox SET delivered_at = $1, attempts = attempts + 1, \
             lease_owner = NULL, lease_until = NULL, last_error = NULL WHERE id = $2",
        )
        .bind(at)
        .bind(id)
        .execute(&mut *turn)
        .await?;
        Ok(())
    }

    pub(super) async fn outbox_failed(
        &self,
        id: &str,
        next_attempt_at: &str,
        error: &str,
    ) -> Result<()> {
        let mut turn = self.write_turn().await?;
        sqlx::query(
            "UPDATE notification_outbox SET attempts = attempts + 1, next_attempt_at = $1, \
             lease_owner = NULL, lease_until = NULL, last_error = $2 WHERE id = $3",
        )
        .bind(next_attempt_at)
        .bind(error)
        .bind(id)
        .execute(&mut *turn)
        .await?;
        Ok(())
    }
}
