//! Health monitoring: a scheduler that tests every connector that is not
//! INACTIVE once per interval, records each check in a bounded history, moves
//! connectors between ACTIVE, WARNING and ERROR (TESTING while a check runs),
//! and queues ERROR, recovery and credential-expiry notices in an outbox that
//! a delivery loop drains with retries. The same loop runs the discovery
//! scheduler's rounds (`discovery::schedule_round`: scheduled re-discovery,
//! jobs whose replica died), and the delivery loop also carries their
//! `SCHEMA_CHANGED` notices.
//!
//! Work is shared between replicas through the metadata store, the module's
//! only way to its tables: a replica claims due connectors
//! (`MetadataStore::claim_health_checks`: one conditional write that sets a
//! lease and skips rows another replica is claiming), and the end of a check
//! writes the status, the history row and any notice in one transaction, only
//! while it still holds the lease (`record_health_check`). A replica that dies
//! leaves leases that expire; the rows are then due again for whoever sweeps
//! next. The route that shows a connector's health lives with the other
//! routes, in `src/api/health.rs`; the test itself is the shared use case in
//! `connection_test`.

pub mod config;
pub mod metrics;
pub mod notify;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use matih_connector_core::ErrorCode;
use rand::Rng;
use serde_json::json;
use tokio::task::JoinSet;
use uuid::Uuid;

pub use config::{HealthConfig, HealthSettings};
pub use metrics::HealthMetrics;
pub use notify::{FanOut, LogNotifier, Notice, Notifier, WebhookNotifier};

use crate::app::AppState;
use crate::connection_test::{self, Tested};
use crate::model::{ts, ConnectorStatus};
use crate::secrets::Expiry;
use crate::store::{ClaimCursor, HealthCheckRecord, HealthLease, HealthTransition, NewNotice};

pub const EVENT_ERROR: &str = "connector.error";
pub const EVENT_RECOVERED: &str = "connector.recovered";
/// A passing connector whose static credential expires (or rotates) within
/// the warning window: sent once per connector and date.
pub const EVENT_CREDENTIALS_EXPIRING: &str = "connector.credentials_expiring";

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
pub type Claimed = HealthLease;

/// A check's outcome, whatever stopped it (driver, secret store, timeout).
#[derive(Clone, Debug)]
struct Outcome {
    connector_type: String,
    name: String,
    /// The status rule's answer for a test that ran; ERROR otherwise.
    status: ConnectorStatus,
    success: bool,
    latency_ms: u64,
    error_code: Option<String>,
    failed_step: Option<String>,
    message: String,
    /// The credential's expiry when the status rule warned of it.
    expiry: Option<Expiry>,
}

#[derive(Clone)]
pub struct HealthMonitor {
    inner: Arc<Inner>,
}

struct Inner {
    state: AppState,
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
    let monitor = HealthMonitor::new(state.clone(), c.settings(), notifier_from_config(c)?, None)?;
    Ok(Some(monitor.spawn()))
}

fn now_plus(d: Duration) -> String {
    ts(Utc::now() + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX))
}

fn short(s: &str) -> String {
    s.chars().take(1000).collect()
}

impl HealthMonitor {
    /// `replica` names this process in leases and history (default: the
    /// state's, which discovery jobs use).
    pub fn new(
        state: AppState,
        settings: HealthSettings,
        notifier: Arc<dyn Notifier>,
        replica: Option<String>,
    ) -> anyhow::Result<Self> {
        let metrics = HealthMetrics::new(state.metrics.registry());
        let replica = replica.unwrap_or_else(|| state.replica.to_string());
        Ok(HealthMonitor {
            inner: Arc::new(Inner {
                state,
                replica,
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
                    // Scheduled re-discovery and jobs whose replica died
                    // are claimed by the same loop, on any replica.
                    match crate::discovery::schedule_round(&m.inner.state).await {
                        Ok(started) if !started.is_empty() => tracing::info!(
                            replica = %m.inner.state.replica, started = started.len(),
                            "discovery jobs started by the scheduler"),
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "scheduling discovery failed"),
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
        self.claim_from(n, due, &mut ClaimCursor::default()).await
    }

    /// `claim`, reading on from where the sweep's last claim stopped.
    async fn claim_from(
        &self,
        n: usize,
        due: &str,
        from: &mut ClaimCursor,
    ) -> anyhow::Result<Vec<Claimed>> {
        let i = &self.inner;
        Ok(i.state
            .store
            .claim_health_checks(
                &i.replica,
                n,
                due,
                &ts(Utc::now()),
                &now_plus(i.settings.lease),
                from,
            )
            .await?)
    }

    /// Tests every connector due now, `concurrency` at a time, and returns when
    /// none is left. Connectors that become due during the sweep (a lease
    /// given back or expired) wait for the next: each claim reads on from
    /// where the last one stopped, so a sweep costs the same per connector
    /// at any fleet size.
    pub async fn sweep(&self) -> anyhow::Result<SweepStats> {
        let due = ts(Utc::now());
        let limit = self.inner.settings.concurrency;
        let mut stats = SweepStats::default();
        let mut running: JoinSet<anyhow::Result<Option<ConnectorStatus>>> = JoinSet::new();
        let mut exhausted = false;
        let mut failure = None;
        let mut cursor = ClaimCursor::default();
        loop {
            // Claim in batches when half the slots are free: fewer round trips
            // than one claim per finished check, and no lease waits long in a queue.
            if !exhausted && failure.is_none() && running.len() <= limit / 2 {
                let want = limit - running.len();
                match self.claim_from(want, &due, &mut cursor).await {
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
            status: ConnectorStatus::Error,
            success: false,
            latency_ms: started.elapsed().as_millis() as u64,
            error_code: Some(code.to_owned()),
            failed_step: None,
            message: msg,
            expiry: None,
        };
        let connector = match state.store.get_connector(c.tenant_id, c.id).await {
            Ok(Some(x)) => x,
            Ok(None) => return None,
            Err(e) => {
                return Some(fail(
                    String::new(),
                    String::new(),
                    ErrorCode::Internal.as_str(),
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
                    ErrorCode::Internal.as_str(),
                    format!("reading the tenant failed: {e}"),
                ))
            }
        };
        let Tested {
            report,
            status,
            expiry,
        } = match connection_test::test_stored(state, &tenant, &connector).await {
            Ok(t) => t,
            Err(e) => return Some(fail(ty, name, e.code().as_str(), e.message())),
        };
        let failure = report.failure();
        Some(Outcome {
            connector_type: ty,
            name,
            status,
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
            expiry,
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
                    status: ConnectorStatus::Error,
                    success: false,
                    latency_ms: started.elapsed().as_millis() as u64,
                    error_code: Some(ErrorCode::Timeout.as_str().to_owned()),
                    failed_step: None,
                    message: format!(
                        "the health check did not finish within {} ms",
                        i.settings.check_timeout.as_millis()
                    ),
                    expiry: None,
                }
            }
        };
        i.metrics
            .check_latency
            .with_label_values(&[&outcome.connector_type])
            .observe(started.elapsed().as_secs_f64());
        let status = outcome.status;
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
        Ok(i.state.store.release_health_lease(c.id, &i.replica).await?)
    }

    /// Status, history and notice in one transaction, while the lease is ours.
    async fn record(
        &self,
        c: &Claimed,
        o: &Outcome,
        status: ConnectorStatus,
    ) -> anyhow::Result<Option<ConnectorStatus>> {
        let i = &self.inner;
        let now = Utc::now();
        let checked_at = ts(now);
        let jitter = if i.settings.jitter.is_zero() {
            Duration::ZERO
        } else {
            rand::thread_rng().gen_range(Duration::ZERO..=i.settings.jitter)
        };
        let record = HealthCheckRecord {
            connector: *c,
            replica: i.replica.clone(),
            checked_at: checked_at.clone(),
            status,
            success: o.success,
            latency_ms: o.latency_ms,
            error_code: o.error_code.clone(),
            failed_step: o.failed_step.clone(),
            message: short(&o.message),
            next_at: now_plus(i.settings.interval + jitter),
            history_kept: i.settings.history_kept,
        };
        let notice = |t: &HealthTransition| notice_for(c, o, &checked_at, t);
        Ok(i.state.store.record_health_check(&record, &notice).await?)
    }

    /// One delivery pass: leases pending notices, tries each once, and
    /// reschedules failures with backoff. Returns how many were delivered.
    pub async fn deliver_pending(&self) -> anyhow::Result<usize> {
        let i = &self.inner;
        let store = &i.state.store;
        let leased = store
            .lease_notices(&i.replica, 50, &ts(Utc::now()), &now_plus(i.settings.lease))
            .await?;
        let mut delivered = 0;
        for n in leased {
            let attempts = n.attempts;
            let notice = Notice {
                id: n.id,
                kind: n.kind,
                body: n.payload,
            };
            match i.notifier.deliver(&notice).await {
                Ok(()) => {
                    delivered += 1;
                    i.metrics
                        .notifications
                        .with_label_values(&["delivered"])
                        .inc();
                    store.notice_delivered(&notice.id, &ts(Utc::now())).await?;
                }
                Err(e) => {
                    i.metrics.notifications.with_label_values(&["failed"]).inc();
                    let wait = i.settings.retry_delay(attempts);
                    tracing::warn!(notification = %notice.id, attempts = attempts + 1,
                        retry_in_ms = wait.as_millis() as u64, error = %e, "notification delivery failed");
                    store
                        .notice_failed(&notice.id, &now_plus(wait), &short(&e))
                        .await?;
                }
            }
        }
        Ok(delivered)
    }

    /// Sets the connectors-by-status gauge from the store.
    pub async fn refresh_status_gauge(&self) -> anyhow::Result<()> {
        let i = &self.inner;
        let counts = i.state.store.count_by_status().await?;
        for s in [
            ConnectorStatus::Active,
            ConnectorStatus::Warning,
            ConnectorStatus::Error,
            ConnectorStatus::Testing,
            ConnectorStatus::Inactive,
        ] {
            let n = counts
                .iter()
                .find(|(status, _)| *status == s)
                .map_or(0, |(_, n)| *n);
            i.metrics
                .connectors_by_status
                .with_label_values(&[s.as_str()])
                .set(n);
        }
        Ok(())
    }
}

/// The notices a recorded check queues: `connector.error` on entering ERROR,
/// `connector.recovered` on leaving it for ACTIVE or WARNING, and
/// `connector.credentials_expiring` when a passing check is WARNING because
/// the credential expires within the window (keyed by the date, so it is
/// queued once however many sweeps see it, and again for a new date);
/// nothing for a connector disabled meanwhile, nor while it stays where it
/// was.
fn notice_for(c: &Claimed, o: &Outcome, checked_at: &str, t: &HealthTransition) -> Vec<NewNotice> {
    // What every notice says: who it is for, which connector, where it stands.
    let notice = |event: &str, details: serde_json::Value, once_key: Option<String>| {
        let id = Uuid::new_v4().to_string();
        let mut payload = json!({
            "id": id,
            "event": event,
            "recipients": "tenant-admins",
            "tenantId": c.tenant_id,
            "connectorId": c.id,
            "connectorName": o.name,
            "connectorType": o.connector_type,
            "status": t.status.as_str(),
            "previousStatus": t.previous,
            "message": o.message,
            "checkedAt": checked_at,
        });
        if let (Some(p), serde_json::Value::Object(d)) = (payload.as_object_mut(), details) {
            p.extend(d);
        }
        NewNotice {
            id,
            kind: event.to_owned(),
            payload: payload.to_string(),
            once_key,
        }
    };
    let was_error = t.previous.as_deref() == Some(ConnectorStatus::Error.as_str());
    let mut out = Vec::new();
    let transition = match (t.disabled, t.status, was_error) {
        (false, ConnectorStatus::Error, false) => Some(EVENT_ERROR),
        (false, ConnectorStatus::Active | ConnectorStatus::Warning, true) => Some(EVENT_RECOVERED),
        _ => None,
    };
    if let Some(event) = transition {
        out.push(notice(
            event,
            json!({
                "errorCode": o.error_code,
                "failedStep": o.failed_step,
                "latencyMs": o.latency_ms,
                "lastSuccessAt": t.last_success_at,
            }),
            None,
        ));
    }
    if let (false, ConnectorStatus::Warning, Some(e)) = (t.disabled, t.status, o.expiry) {
        let at = ts(e.at);
        out.push(notice(
            EVENT_CREDENTIALS_EXPIRING,
            json!({"expiresAt": at, "expiryKind": e.kind.as_str()}),
            Some(format!("{EVENT_CREDENTIALS_EXPIRING}:{at}")),
        ));
    }
    out
}
