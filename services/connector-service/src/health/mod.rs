//! Health monitoring: a scheduler that tests every connector that is not
//! INACTIVE once per interval, records each check in a bounded history, moves
//! connectors between ACTIVE, WARNING and ERROR (TESTING while a check runs),
//! and queues ERROR and recovery notices in an outbox that a delivery loop
//! drains with retries.
//!
//! Work is shared between replicas through the metadata store: a replica
//! claims due connectors with one conditional UPDATE that sets a lease (with
//! `FOR UPDATE SKIP LOCKED` on PostgreSQL), and the end of a check writes the
//! status, the history row and any notice in one transaction, only while it
//! still holds the lease. A replica that dies leaves leases that expire; the
//! rows are then due again for whoever sweeps next.

pub mod api;
pub mod config;
pub mod metrics;
pub mod notify;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use matih_connector_core::TestReport;
use rand::Rng;
use serde_json::json;
use sqlx::{AnyPool, Row};
use tokio::task::JoinSet;
use uuid::Uuid;

pub use config::{HealthConfig, HealthSettings};
pub use metrics::HealthMetrics;
pub use notify::{FanOut, LogNotifier, Notice, Notifier, WebhookNotifier};

use crate::app::AppState;
use crate::model::{ts, ConnectorStatus};
use crate::secrets::SecretError;

pub const EVENT_ERROR: &str = "connector.error";
pub const EVENT_RECOVERED: &str = "connector.recovered";

/// What one sweep did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SweepStats {
    pub checked: usize,
    pub active: usize,
    pub warning: usize,
    pub error: usize,
    /// Checks whose lease was lost before they finished (nothing written).
    pub lost: usize,
    pub notices: usize,
}

/// A connector this replica holds a lease on.
#[derive(Clone, Debug)]
pub struct Claimed {
    pub id: Uuid,
    pub tenant_id: Uuid,
}

/// A check's outcome, whatever stopped it (driver, secret store, timeout).
#[derive(Clone, Debug)]
struct Outcome {
    connector_type: String,
    name: String,
    success: bool,
    latency_ms: u64,
    error_code: Option<String>,
    failed_step: Option<String>,
    message: String,
}

#[derive(Clone)]
pub struct HealthMonitor {
    inner: Arc<Inner>,
}

struct Inner {
    state: AppState,
    pool: AnyPool,
    postgres: bool,
    replica: String,
    settings: HealthSettings,
    notifier: Arc<dyn Notifier>,
    metrics: HealthMetrics,
}

impl std::fmt::Debug for HealthMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthMonitor")
            .field("replica", &self.inner.replica)
            .finish_non_exhaustive()
    }
}

/// The notifier a configuration asks for: the log, the signed webhook, or both.
pub fn notifier_from_config(c: &HealthConfig) -> anyhow::Result<Arc<dyn Notifier>> {
    let mut list: Vec<Arc<dyn Notifier>> = Vec::new();
    if c.notify_log {
        list.push(Arc::new(LogNotifier));
    }
    if let Some(url) = &c.webhook_url {
        let secret = c
            .webhook_secret
            .as_deref()
            .context("MATIH_NOTIFY_WEBHOOK_URL is set but MATIH_NOTIFY_WEBHOOK_SECRET is not")?;
        let ca = match &c.webhook_ca_file {
            Some(p) => Some(std::fs::read_to_string(p).with_context(|| {
                format!("reading MATIH_NOTIFY_WEBHOOK_CA_FILE {}", p.display())
            })?),
            None => None,
        };
        list.push(Arc::new(WebhookNotifier::with_ca(
            url,
            secret.as_bytes(),
            Duration::from_secs(10),
            ca.as_deref(),
        )?));
    }
    Ok(Arc::new(FanOut(list)))
}

/// The background loops of a running monitor; dropping this does not stop
/// them, `stop` does.
#[derive(Debug)]
pub struct Running {
    pub monitor: HealthMonitor,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    pub fn stop(self) {
        for t in self.tasks {
            t.abort();
        }
    }
}

/// Starts the scheduler and the delivery loop as the configuration says.
pub fn start(state: &AppState, c: &HealthConfig) -> anyhow::Result<Option<Running>> {
    if !c.enabled {
        return Ok(None);
    }
    let monitor = HealthMonitor::new(
        state.clone(),
        c.settings(state.settings.warning_latency_ms),
        notifier_from_config(c)?,
        None,
    )?;
    Ok(Some(monitor.spawn()))
}

fn now_plus(d: Duration) -> String {
    ts(Utc::now() + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX))
}

fn short(s: &str) -> String {
    s.chars().take(1000).collect()
}

impl HealthMonitor {
    /// `replica` names this process in leases and history (default: a random id).
    pub fn new(
        state: AppState,
        settings: HealthSettings,
        notifier: Arc<dyn Notifier>,
        replica: Option<String>,
    ) -> anyhow::Result<Self> {
        let pool = state
            .store
            .sql_pool()
            .context("the health monitor needs an SQL metadata store")?;
        let postgres = state.store.backend() == "postgres";
        let metrics = HealthMetrics::new(state.metrics.registry());
        Ok(HealthMonitor {
            inner: Arc::new(Inner {
                state,
                pool,
                postgres,
                replica: replica.unwrap_or_else(|| Uuid::new_v4().simple().to_string()),
                settings,
                notifier,
                metrics,
            }),
        })
    }

    pub fn replica(&self) -> &str {
        &self.inner.replica
    }

    pub fn metrics(&self) -> &HealthMetrics {
        &self.inner.metrics
    }

    /// Runs the scheduler and the delivery loop until stopped.
    pub fn spawn(self) -> Running {
        let sweeper = {
            let m = self.clone();
            tokio::spawn(async move {
                loop {
                    match m.sweep().await {
                        Ok(s) if s.checked > 0 => tracing::info!(replica = %m.inner.replica,
                            checked = s.checked, active = s.active, warning = s.warning,
                            error = s.error, notices = s.notices, "health sweep"),
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "health sweep failed"),
                    }
                    if let Err(e) = m.refresh_status_gauge().await {
                        tracing::debug!(error = %e, "counting connectors by status failed");
                    }
                    tokio::time::sleep(m.inner.settings.poll).await;
                }
            })
        };
        let deliverer = {
            let m = self.clone();
            tokio::spawn(async move {
                loop {
                    if let Err(e) = m.deliver_pending().await {
                        tracing::warn!(error = %e, "notification delivery pass failed");
                    }
                    tokio::time::sleep(m.inner.settings.delivery_poll).await;
                }
            })
        };
        Running {
            monitor: self,
            tasks: vec![sweeper, deliverer],
        }
    }

    /// Claims up to `n` connectors due at `due` (RFC 3339) that nobody holds.
    /// A create in flight (its TESTING row named by its reservation) is left
    /// to the create's own test.
    pub async fn claim(&self, n: usize, due: &str) -> anyhow::Result<Vec<Claimed>> {
        let i = &self.inner;
        let lock = if i.postgres {
            "FOR UPDATE SKIP LOCKED"
        } else {
            ""
        };
        let now = ts(Utc::now());
        let sql = format!(
            "UPDATE connectors SET health_lease_owner = $1, health_lease_until = $2, \
             health_prev_status = CASE WHEN status = 'TESTING' \
                THEN COALESCE(health_prev_status, 'ACTIVE') ELSE status END, \
             status = 'TESTING' \
             WHERE id IN (SELECT id FROM connectors WHERE status <> 'INACTIVE' \
                AND id NOT IN (SELECT connector_id FROM create_reservations \
                    WHERE connector_id IS NOT NULL) \
                AND (health_next_at IS NULL OR health_next_at <= $3) \
                AND (health_lease_until IS NULL OR health_lease_until < $4) \
                ORDER BY COALESCE(health_next_at, ''), id LIMIT $5 {lock}) \
             RETURNING id, tenant_id"
        );
        let rows = sqlx::query(&sql)
            .bind(&i.replica)
            .bind(now_plus(i.settings.lease))
            .bind(due)
            .bind(&now)
            .bind(n as i64)
            .fetch_all(&i.pool)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let id: String = r.try_get("id")?;
            let tenant: String = r.try_get("tenant_id")?;
            let c = Claimed {
                id: id.parse()?,
                tenant_id: tenant.parse()?,
            };
            i.state.store.forget_connector(c.id);
            out.push(c);
        }
        Ok(out)
    }

    /// Tests every connector due now, `concurrency` at a time, and returns when
    /// none is left. Connectors that become due during the sweep wait for the next.
    pub async fn sweep(&self) -> anyhow::Result<SweepStats> {
        let due = ts(Utc::now());
        let limit = self.inner.settings.concurrency;
        let mut stats = SweepStats::default();
        let mut running: JoinSet<anyhow::Result<Option<ConnectorStatus>>> = JoinSet::new();
        let mut exhausted = false;
        let mut failure = None;
        loop {
            // Claim in batches when half the slots are free: fewer round trips
            // than one claim per finished check, and no lease waits long in a queue.
            if !exhausted && failure.is_none() && running.len() <= limit / 2 {
                let want = limit - running.len();
                match self.claim(want, &due).await {
                    Ok(batch) => {
                        exhausted = batch.len() < want;
                        for c in batch {
                            let m = self.clone();
                            running.spawn(async move { m.check(c).await });
                        }
                    }
                    Err(e) => failure = Some(e),
                }
            }
            let Some(done) = running.join_next().await else {
                if exhausted || failure.is_some() {
                    break;
                }
                continue;
            };
            match done {
                Ok(Ok(Some(status))) => {
                    stats.checked += 1;
                    match status {
                        ConnectorStatus::Active => stats.active += 1,
                        ConnectorStatus::Warning => stats.warning += 1,
                        ConnectorStatus::Error => stats.error += 1,
                        _ => {}
                    }
                }
                Ok(Ok(None)) => stats.lost += 1,
                Ok(Err(e)) => {
                    tracing::warn!(error = format!("{e:#}"), "recording a health check failed");
                    stats.lost += 1;
                }
                Err(e) => tracing::error!(error = %e, "a health check task panicked"),
            }
        }
        if let Some(e) = failure {
            return Err(e.context("claiming due connectors"));
        }
        Ok(stats)
    }

    async fn run_check(&self, c: &Claimed) -> Option<Outcome> {
        let state = &self.inner.state;
        let started = Instant::now();
        let fail = |ty: String, name: String, code: &str, msg: String| Outcome {
            connector_type: ty,
            name,
            success: false,
            latency_ms: started.elapsed().as_millis() as u64,
            error_code: Some(code.to_owned()),
            failed_step: None,
            message: msg,
        };
        let connector = match state.store.get_connector(c.tenant_id, c.id).await {
            Ok(Some(x)) => x,
            Ok(None) => return None,
            Err(e) => {
                return Some(fail(
                    String::new(),
                    String::new(),
                    "INTERNAL",
                    format!("reading the connector failed: {e}"),
                ))
            }
        };
        let ty = connector.connector_type.as_str().to_owned();
        let name = connector.name.clone();
        let tenant = match state.store.get_tenant(c.tenant_id).await {
            Ok(Some(t)) => t,
            Ok(None) => return None,
            Err(e) => {
                return Some(fail(
                    ty,
                    name,
                    "INTERNAL",
                    format!("reading the tenant failed: {e}"),
                ))
            }
        };
        let driver = match state.registry.get(&connector.connector_type) {
            Ok(d) => d,
            Err(e) => return Some(fail(ty, name, e.code().as_str(), e.message().to_owned())),
        };
        let secret = crate::api::connectors::secret_ref(state, &tenant, &connector);
        let creds = match state.secrets.get(&secret).await {
            Ok(c) => c,
            Err(SecretError::NotFound(_)) => {
                return Some(fail(
                    ty,
                    name,
                    "CREDENTIALS_MISSING",
                    "the connector's credential secret is missing".into(),
                ))
            }
            Err(e) => {
                return Some(fail(
                    ty,
                    name,
                    "SECRET_STORE_UNAVAILABLE",
                    format!("reading the credentials failed: {e}"),
                ))
            }
        };
        let cfg = connector.config();
        let report: TestReport =
            crate::api::connectors::test_with(state, &*driver, &cfg, &creds).await;
        let failure = report.failure();
        Some(Outcome {
            connector_type: ty,
            name,
            success: report.success,
            latency_ms: report
                .latency_ms
                .unwrap_or_else(|| started.elapsed().as_millis() as u64),
            error_code: report
                .error_code
                .map(|e| e.as_str().to_owned())
                .or_else(|| failure.map(|(_, code)| code.as_str().to_owned())),
            failed_step: report
                .failed_step
                .or(failure.map(|(s, _)| s))
                .map(|s| s.as_str().to_owned()),
            message: report.message,
        })
    }

    /// Tests one claimed connector and records the result; `None` when the
    /// lease was lost or the connector went away meanwhile.
    async fn check(&self, c: Claimed) -> anyhow::Result<Option<ConnectorStatus>> {
        let i = &self.inner;
        let started = Instant::now();
        let outcome = match tokio::time::timeout(i.settings.check_timeout, self.run_check(&c)).await
        {
            Ok(Some(o)) => o,
            Ok(None) => {
                self.release(&c).await?;
                return Ok(None);
            }
            Err(_) => {
                let (ty, name) = match i.state.store.get_connector(c.tenant_id, c.id).await {
                    Ok(Some(x)) => (x.connector_type.as_str().to_owned(), x.name),
                    _ => (String::new(), String::new()),
                };
                Outcome {
                    connector_type: ty,
                    name,
                    success: false,
                    latency_ms: started.elapsed().as_millis() as u64,
                    error_code: Some("TIMEOUT".into()),
                    failed_step: None,
                    message: format!(
                        "the health check did not finish within {} ms",
                        i.settings.check_timeout.as_millis()
                    ),
                }
            }
        };
        i.metrics
            .check_latency
            .with_label_values(&[&outcome.connector_type])
            .observe(started.elapsed().as_secs_f64());
        let status = if !outcome.success {
            ConnectorStatus::Error
        } else if outcome.latency_ms > i.settings.warning_threshold_ms(&outcome.connector_type) {
            ConnectorStatus::Warning
        } else {
            ConnectorStatus::Active
        };
        let recorded = self.record(&c, &outcome, status).await?;
        if recorded.is_some() {
            i.metrics
                .checks
                .with_label_values(&[
                    status.as_str(),
                    outcome.error_code.as_deref().unwrap_or("none"),
                ])
                .inc();
        }
        Ok(recorded)
    }

    /// Gives a lease back without a result (the connector or tenant is gone).
    async fn release(&self, c: &Claimed) -> anyhow::Result<()> {
        let i = &self.inner;
        sqlx::query(
            "UPDATE connectors SET status = COALESCE(health_prev_status, status), \
             health_lease_owner = NULL, health_lease_until = NULL, health_prev_status = NULL \
             WHERE id = $1 AND health_lease_owner = $2 AND status = 'TESTING'",
        )
        .bind(c.id.to_string())
        .bind(&i.replica)
        .execute(&i.pool)
        .await?;
        i.state.store.forget_connector(c.id);
        Ok(())
    }

    /// Status, history and notice in one transaction, while the lease is ours.
    async fn record(
        &self,
        c: &Claimed,
        o: &Outcome,
        status: ConnectorStatus,
    ) -> anyhow::Result<Option<ConnectorStatus>> {
        let i = &self.inner;
        let id = c.id.to_string();
        let now = Utc::now();
        let checked_at = ts(now);
        let mut tx = i.pool.begin().await?;
        // A write first: it takes SQLite's write lock at once (waiting under the
        // busy timeout) instead of upgrading a read lock later, which SQLite
        // refuses with SQLITE_BUSY when another writer got there first; on
        // PostgreSQL it locks the row. No row: the lease is no longer ours.
        let held = sqlx::query(
            "UPDATE connectors SET health_lease_owner = health_lease_owner \
             WHERE id = $1 AND health_lease_owner = $2",
        )
        .bind(&id)
        .bind(&i.replica)
        .execute(&mut *tx)
        .await?;
        if held.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        let row = sqlx::query(
            "SELECT status, health_prev_status, last_success_at FROM connectors WHERE id = $1",
        )
        .bind(&id)
        .fetch_one(&mut *tx)
        .await?;
        let current: String = row.try_get("status")?;
        let prev: Option<String> = row.try_get("health_prev_status")?;
        let last_success: Option<String> = row.try_get("last_success_at")?;
        // Disabled while the check ran: it stays disabled and nobody is told.
        let disabled = current == ConnectorStatus::Inactive.as_str();
        let new_status = if disabled {
            ConnectorStatus::Inactive
        } else {
            status
        };
        let last_success = if o.success {
            Some(checked_at.clone())
        } else {
            last_success
        };
        let jitter = if i.settings.jitter.is_zero() {
            Duration::ZERO
        } else {
            rand::thread_rng().gen_range(Duration::ZERO..=i.settings.jitter)
        };
        sqlx::query(
            "UPDATE connectors SET status = $1, last_tested_at = $2, last_test_result = $3, \
             last_error_code = $4, last_success_at = $5, health_next_at = $6, \
             health_lease_owner = NULL, health_lease_until = NULL, health_prev_status = NULL \
             WHERE id = $7",
        )
        .bind(new_status.as_str())
        .bind(&checked_at)
        .bind(short(&o.message))
        .bind(o.error_code.clone())
        .bind(last_success.clone())
        .bind(now_plus(i.settings.interval + jitter))
        .bind(&id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO health_checks (id, connector_id, tenant_id, checked_at, status, success, \
             latency_ms, error_code, failed_step, message, replica) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(Uuid::new_v4().to_string())
        .bind(&id)
        .bind(c.tenant_id.to_string())
        .bind(&checked_at)
        .bind(status.as_str())
        .bind(i64::from(o.success))
        .bind(o.latency_ms as i64)
        .bind(o.error_code.clone())
        .bind(o.failed_step.clone())
        .bind(short(&o.message))
        .bind(&i.replica)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "DELETE FROM health_checks WHERE connector_id = $1 AND id NOT IN \
             (SELECT id FROM health_checks WHERE connector_id = $1 \
              ORDER BY checked_at DESC, id DESC LIMIT $2)",
        )
        .bind(&id)
        .bind(i.settings.history_kept)
        .execute(&mut *tx)
        .await?;
        let was_error = prev.as_deref() == Some(ConnectorStatus::Error.as_str());
        let event = match (disabled, new_status, was_error) {
            (false, ConnectorStatus::Error, false) => Some(EVENT_ERROR),
            (false, ConnectorStatus::Active | ConnectorStatus::Warning, true) => {
                Some(EVENT_RECOVERED)
            }
            _ => None,
        };
        if let Some(event) = event {
            let notice_id = Uuid::new_v4().to_string();
            let body = json!({
                "id": notice_id,
                "event": event,
                "recipients": "tenant-admins",
                "tenantId": c.tenant_id,
                "connectorId": c.id,
                "connectorName": o.name,
                "connectorType": o.connector_type,
                "status": new_status.as_str(),
                "previousStatus": prev,
                "errorCode": o.error_code,
                "message": o.message,
                "failedStep": o.failed_step,
                "latencyMs": o.latency_ms,
                "lastSuccessAt": last_success,
                "checkedAt": checked_at,
            })
            .to_string();
            sqlx::query(
                "INSERT INTO notification_outbox (id, tenant_id, connector_id, kind, payload, \
                 created_at, attempts, next_attempt_at) VALUES ($1, $2, $3, $4, $5, $6, 0, $7)",
            )
            .bind(&notice_id)
            .bind(c.tenant_id.to_string())
            .bind(&id)
            .bind(event)
            .bind(body)
            .bind(&checked_at)
            .bind(&checked_at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        i.state.store.forget_connector(c.id);
        Ok(Some(new_status))
    }

    /// One delivery pass: leases pending notices, tries each once, and
    /// reschedules failures with backoff. Returns how many were delivered.
    pub async fn deliver_pending(&self) -> anyhow::Result<usize> {
        let i = &self.inner;
        let lock = if i.postgres {
            "FOR UPDATE SKIP LOCKED"
        } else {
            ""
        };
        let now = ts(Utc::now());
        let rows = sqlx::query(&format!(
            "UPDATE notification_outbox SET lease_owner = $1, lease_until = $2 \
             WHERE id IN (SELECT id FROM notification_outbox WHERE delivered_at IS NULL \
                AND next_attempt_at <= $3 AND (lease_until IS NULL OR lease_until < $4) \
                ORDER BY created_at, id LIMIT 50 {lock}) \
             RETURNING id, kind, payload, attempts"
        ))
        .bind(&i.replica)
        .bind(now_plus(i.settings.lease))
        .bind(&now)
        .bind(&now)
        .fetch_all(&i.pool)
        .await?;
        let mut delivered = 0;
        for r in rows {
            let notice = Notice {
                id: r.try_get("id")?,
                kind: r.try_get("kind")?,
                body: r.try_get("payload")?,
            };
            let attempts: i64 = r.try_get("attempts")?;
            match i.notifier.deliver(&notice).await {
                Ok(()) => {
                    delivered += 1;
                    i.metrics
                        .notifications
                        .with_label_values(&["delivered"])
                        .inc();
                    sqlx::query(
                        "UPDATE notification_outbox SET delivered_at = $1, attempts = attempts + 1, \
                         lease_owner = NULL, lease_until = NULL, last_error = NULL WHERE id = $2",
                    )
                    .bind(ts(Utc::now()))
                    .bind(&notice.id)
                    .execute(&i.pool)
                    .await?;
                }
                Err(e) => {
                    i.metrics.notifications.with_label_values(&["failed"]).inc();
                    let wait = i.settings.retry_delay(attempts);
                    tracing::warn!(notification = %notice.id, attempts = attempts + 1,
                        retry_in_ms = wait.as_millis() as u64, error = %e, "notification delivery failed");
                    sqlx::query(
                        "UPDATE notification_outbox SET attempts = attempts + 1, next_attempt_at = $1, \
                         lease_owner = NULL, lease_until = NULL, last_error = $2 WHERE id = $3",
                    )
                    .bind(now_plus(wait))
                    .bind(short(&e))
                    .bind(&notice.id)
                    .execute(&i.pool)
                    .await?;
                }
            }
        }
        Ok(delivered)
    }

    /// Sets the connectors-by-status gauge from the store.
    pub async fn refresh_status_gauge(&self) -> anyhow::Result<()> {
        let i = &self.inner;
        let rows = sqlx::query("SELECT status, COUNT(*) AS n FROM connectors GROUP BY status")
            .fetch_all(&i.pool)
            .await?;
        for s in ["ACTIVE", "WARNING", "ERROR", "TESTING", "INACTIVE"] {
            i.metrics
                .connectors_by_status
                .with_label_values(&[s])
                .set(0);
        }
        for r in rows {
            let s: String = r.try_get("status")?;
            let n: i64 = r.try_get("n")?;
            i.metrics
                .connectors_by_status
                .with_label_values(&[&s])
                .set(n);
        }
        Ok(())
    }
}
