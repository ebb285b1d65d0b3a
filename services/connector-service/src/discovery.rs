//! Discovery as a background job. Jobs live in the metadata store, so every
//! replica answers for them: at most one RUNNING job per connector across
//! replicas (the store's claim), held by the replica that runs it through a
//! lease renewed while it runs. A replica that dies stops renewing; once the
//! lease has ended another replica takes the job over and runs it again with
//! the request it was started with. A replica that loses its lease (taken
//! over, cancelled, deleted) stops its run and writes nothing.
//!
//! Jobs start from the API (create, update, `POST …/discover`) and from the
//! scheduler (`schedule_round`: scheduled re-discovery and expired jobs). A
//! run compares with the fingerprint of the previous snapshot taken under the
//! same request (`Connection::discover_changed`; drivers without one answer
//! with a full discovery), stores the catalog as a snapshot and, when the
//! catalog differs from that previous one, queues a `SCHEMA_CHANGED` notice,
//! all in one transaction.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use chrono::Utc;
use matih_connector_core::{
    with_timeout, Catalog, CatalogDelta, CatalogFingerprint, ConnectorError, DiscoveryRequest,
    ErrorCode, Interned, RelationName, Schema, Table,
};
use rand::Rng;
use serde_json::json;
use tokio::sync::watch;
use uuid::Uuid;

use crate::app::AppState;
use crate::diff::{diff_catalogs, diff_where, Changes};
use crate::model::{ts, Connector, ConnectorStatus, DiscoveryJob, JobOrigin, JobStatus, Snapshot};
use crate::snapshot::StoredCatalog;
use crate::store::{
    ClaimedJob, FinishedJob, JobStart, NewJob, NewNotice, ScheduleClaim, StoreError,
};

/// The outbox kind (and `event`) of a schema change notice.
pub const EVENT_SCHEMA_CHANGED: &str = "SCHEMA_CHANGED";

/// Entries listed per kind of change in a notice; the counts are always whole
/// and the diff route has everything.
const NOTICE_LIST_LIMIT: usize = 100;

struct Local {
    job: Uuid,
    done: watch::Receiver<Option<DiscoveryJob>>,
    abort: tokio::task::AbortHandle,
}

/// The jobs this process runs, by connector: how to wait for one and how to
/// stop it. What runs where is the store's to say, not this map's.
#[derive(Default)]
pub struct Jobs {
    running: Mutex<HashMap<Uuid, Local>>,
}

impl std::fmt::Debug for Jobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jobs")
            .field("running", &self.count())
            .finish()
    }
}

impl Jobs {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Local>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Jobs running in this process.
    pub fn count(&self) -> usize {
        self.lock().len()
    }

    /// Stops every job of this process without recording an end (shutdown,
    /// or a test standing in for a crash): their leases run out and another
    /// replica takes them over.
    pub fn abort_all(&self) {
        for (_, l) in self.lock().drain() {
            l.abort.abort();
        }
    }

    fn abort(&self, connector: Uuid) {
        if let Some(l) = self.lock().remove(&connector) {
            l.abort.abort();
        }
    }

    fn waiter(&self, connector: Uuid, job: Uuid) -> Option<watch::Receiver<Option<DiscoveryJob>>> {
        self.lock()
            .get(&connector)
            .filter(|l| l.job == job)
            .map(|l| l.done.clone())
    }

    fn finish(&self, connector: Uuid, job: Uuid) {
        let mut m = self.lock();
        if m.get(&connector).is_some_and(|l| l.job == job) {
            m.remove(&connector);
        }
    }
}

/// A started (or already running) job and, when this process runs it, a way
/// to wait for its end.
#[derive(Debug)]
pub struct Started {
    pub job: DiscoveryJob,
    pub already_running: bool,
    done: Option<watch::Receiver<Option<DiscoveryJob>>>,
}

impl Started {
    /// The finished job, or `None` if it is still running after `limit` (or
    /// runs on another replica, or this replica lost it).
    pub async fn wait(self, limit: Duration) -> Option<DiscoveryJob> {
        let mut done = self.done?;
        let finished = tokio::time::timeout(limit, done.wait_for(|j| j.is_some())).await;
        match finished {
            Ok(Ok(j)) => j.clone(),
            _ => None,
        }
    }
}

fn now_plus(d: Duration) -> String {
    ts(Utc::now() + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX))
}

/// The request as stored: `None` for the default one, so catalogs taken by
/// creates, updates, schedules and plain requests compare with each other.
fn request_text(req: &DiscoveryRequest) -> Option<String> {
    (*req != DiscoveryRequest::default())
        .then(|| serde_json::to_string(req).ok())
        .flatten()
}

/// Starts discovery for a connector unless a job of it runs (on any
/// replica), in which case that one is returned; a job whose replica's lease
/// ended is taken over and run again.
pub async fn start(
    state: &AppState,
    connector: &Connector,
    req: DiscoveryRequest,
) -> Result<Started, StoreError> {
    let request = request_text(&req);
    let now = ts(Utc::now());
    let lease_until = now_plus(state.settings.discovery_lease);
    let outcome = state
        .store
        .start_discovery_job(&NewJob {
            id: Uuid::new_v4(),
            connector: connector.id,
            tenant_id: connector.tenant_id,
            origin: JobOrigin::Api,
            request: request.as_deref(),
            replica: &state.replica,
            now: &now,
            lease_until: &lease_until,
        })
        .await?;
    Ok(match outcome {
        JobStart::Started(c) => {
            let job = c.job.clone();
            let done = spawn(state, c, req);
            Started {
                job,
                already_running: false,
                done: Some(done),
            }
        }
        JobStart::TakenOver(c) => {
            let job = c.job.clone();
            let req = parse_request(c.request.as_deref());
            let done = spawn(state, c, req);
            Started {
                job,
                already_running: true,
                done: Some(done),
            }
        }
        JobStart::Running(job) => Started {
            done: state.jobs.waiter(job.connector_id, job.id),
            job,
            already_running: true,
        },
    })
}

/// Ends the connector's running job wherever it runs (the connector is being
/// disabled or deleted): recorded as FAILED with `CONNECTOR_INACTIVE`, and
/// stopped here at once; another replica running it stops at its next renewal.
pub async fn cancel(state: &AppState, connector: Uuid, why: &str) {
    state.jobs.abort(connector);
    if let Err(e) = state
        .store
        .cancel_discovery_jobs(connector, &ts(Utc::now()), why)
        .await
    {
        tracing::warn!(%connector, error = %e, "could not record the end of a cancelled discovery job");
    }
}

/// One scheduler round: takes over jobs whose replica's lease ended, then
/// starts the scheduled re-discoveries that are due, as many as this
/// replica's free discovery slots allow.
pub async fn schedule_round(state: &AppState) -> Result<Vec<Started>, StoreError> {
    let free = |state: &AppState| {
        state
            .settings
            .discovery_concurrency
            .saturating_sub(state.jobs.count()) as i64
    };
    let mut out = Vec::new();
    let mut claim = |state: &AppState, c: ClaimedJob, already_running: bool| {
        let job = c.job.clone();
        let req = parse_request(c.request.as_deref());
        let done = spawn(state, c, req);
        out.push(Started {
            job,
            already_running,
            done: Some(done),
        });
    };
    let n = free(state);
    if n > 0 {
        let now = ts(Utc::now());
        let expired = state
            .store
            .claim_expired_discovery_jobs(
                &state.replica,
                n,
                &now,
                &now_plus(state.settings.discovery_lease),
            )
            .await?;
        for c in expired {
            tracing::info!(connector = %c.job.connector_id, job = %c.job.id, attempt = c.job.attempts,
                "taking over a discovery job whose replica's lease ended");
            claim(state, c, true);
        }
    }
    let n = free(state);
    if n > 0 {
        let now = ts(Utc::now());
        let jitter = state.settings.discovery_jitter;
        let next_at = move |interval: i64| {
            let extra = if jitter.is_zero() {
                Duration::ZERO
            } else {
                rand::thread_rng().gen_range(Duration::ZERO..=jitter)
            };
            now_plus(Duration::from_secs(interval.max(0) as u64) + extra)
        };
        let due = state
            .store
            .claim_scheduled_discoveries(&ScheduleClaim {
                replica: &state.replica,
                n,
                now: &now,
                lease_until: &now_plus(state.settings.discovery_lease),
                default_interval_secs: state.settings.discovery_interval.as_secs() as i64,
                next_at: &next_at,
            })
            .await?;
        for c in due {
            claim(state, c, false);
        }
    }
    Ok(out)
}

fn parse_request(text: Option<&str>) -> DiscoveryRequest {
    text.and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or_default()
}

/// Runs a job this replica holds, in the background.
fn spawn(
    state: &AppState,
    c: ClaimedJob,
    req: DiscoveryRequest,
) -> watch::Receiver<Option<DiscoveryJob>> {
    let (tx, rx) = watch::channel(None);
    let connector = c.job.connector_id;
    let job = c.job.id;
    // The map is locked while the task is spawned: its end (which removes
    // it from the map) cannot come before it is in.
    let mut map = state.jobs.lock();
    if let Some(old) = map.remove(&connector) {
        // A run this replica lost (taken over, cancelled) that has not
        // noticed yet.
        old.abort.abort();
    }
    let task = tokio::spawn(run(state.clone(), c, req, tx));
    map.insert(
        connector,
        Local {
            job,
            done: rx.clone(),
            abort: task.abort_handle(),
        },
    );
    rx
}

/// What a run produced, to be recorded with its job.
struct Outcome {
    snapshot: Option<Snapshot>,
    notice: Option<NewNotice>,
}

async fn open_and_discover(
    state: &AppState,
    c: &Connector,
    req: &DiscoveryRequest,
    previous: Option<&CatalogFingerprint>,
) -> Result<CatalogDelta, ConnectorError> {
    let tenant = state
        .store
        .get_tenant(c.tenant_id)
        .await
        .map_err(|e| {
            ConnectorError::new(ErrorCode::Internal, "the tenant could not be read").with_source(e)
        })?
        .ok_or_else(|| ConnectorError::new(ErrorCode::Internal, "the tenant is gone"))?;
    let secret = crate::connection_test::secret_ref(state, &tenant, c);
    let creds = state.secrets.get(&secret).await.map_err(|e| {
        ConnectorError::new(
            ErrorCode::Internal,
            "the connector's credentials could not be read",
        )
        .with_source(e)
    })?;
    let driver = state.registry.get(&c.connector_type)?;
    let mut cfg = c.config();
    cfg.timeouts = state.settings.limits.clamp(cfg.timeouts);
    // A dynamic role's login is issued for this discovery and given back after it.
    let (creds, lease) = crate::secrets::dynamic::resolve_for_use(&state.secrets, &creds).await?;
    let result = async {
        let mut conn =
            matih_connector_core::open(&*driver, &cfg, &creds, &state.settings.egress).await?;
        let result = with_timeout(
            state.settings.discovery_timeout,
            "discovery",
            conn.discover_changed(req, previous),
        )
        .await;
        let _ = with_timeout(Duration::from_secs(5), "closing", conn.close()).await;
        result
    }
    .await;
    if let Some(lease) = lease {
        lease.release().await;
    }
    result
}

fn fail(job: &mut DiscoveryJob, code: &str, message: String) {
    job.status = JobStatus::Failed;
    job.error_code = Some(code.to_owned());
    job.message = Some(message);
}

/// Discovers, compares with the previous snapshot and fills in `job`.
async fn execute(
    state: &AppState,
    c: &Connector,
    req: &DiscoveryRequest,
    job: &mut DiscoveryJob,
) -> Outcome {
    let none = Outcome {
        snapshot: None,
        notice: None,
    };
    if c.status == ConnectorStatus::Inactive {
        fail(
            job,
            "CONNECTOR_INACTIVE",
            "the connector is disabled".into(),
        );
        return none;
    }
    let request = request_text(req);
    // The previous catalog counts only when taken under the same request:
    // a narrower request would otherwise look like dropped tables.
    let mut previous = match state.store.latest_snapshots(c.id, 1).await {
        Ok(s) => s.into_iter().next().filter(|s| s.request == request),
        Err(e) => {
            tracing::warn!(connector = %c.id, error = %e, "could not read the previous snapshot");
            None
        }
    };
    let fingerprint: Option<CatalogFingerprint> = previous
        .as_ref()
        .and_then(|s| s.fingerprint.as_deref())
        .and_then(|f| serde_json::from_str(f).ok());
    // The previous catalog is parsed before discovery, as it comes out of
    // the decompressor, and its stored form let go: while the source is
    // read, only the parsed catalog is held.
    let previous_catalog = previous.as_mut().map(|s| {
        std::mem::take(&mut s.catalog)
            .parse::<Interned<Catalog>>()
            .map(|c| c.0)
    });
    let delta = match open_and_discover(state, c, req, fingerprint.as_ref()).await {
        Ok(d) => d,
        Err(e) => {
            tracing::info!(connector = %c.id, code = %e.code(), "discovery failed");
            let message = if e.code() == ErrorCode::Internal {
                e.code().hint().to_owned()
            } else {
                e.report_message()
            };
            fail(job, e.code().as_str(), message);
            return none;
        }
    };
    let previous_catalog: Option<Catalog> = match previous_catalog {
        Some(Ok(p)) => Some(p),
        Some(Err(e)) => {
            tracing::warn!(connector = %c.id, error = %e, "the previous snapshot does not parse");
            if !delta.full {
                fail(
                    job,
                    ErrorCode::Internal.as_str(),
                    "the previous catalog could not be read".into(),
                );
                return none;
            }
            None
        }
        None => None,
    };
    job.incremental = Some(!delta.full);
    let fingerprint = delta
        .fingerprint
        .as_ref()
        .and_then(|f| serde_json::to_string(f).ok());
    let (catalog, changes) = if delta.full {
        let mut catalog = delta.catalog;
        catalog.sort();
        let changes = previous_catalog.map(|p| diff_catalogs(&p, &catalog));
        (catalog, changes)
    } else {
        // The previous catalog's columns move into the new one; the diff
        // needs only every relation's name and kind and the previous columns
        // of the relations read again (the others kept theirs).
        let changed = delta.changed.clone();
        let shape = previous_catalog.as_ref().map(|p| shape_of(p, &changed));
        let mut catalog = delta.apply(previous_catalog.unwrap_or_default());
        catalog.sort();
        let changes = shape.map(|old| {
            diff_where(&old, &catalog, |s, t| {
                changed.contains(&RelationName::new(s, t))
            })
        });
        (catalog, changes)
    };
    let changes = changes.filter(|ch| !ch.is_empty());
    let (schema_count, table_count) = (catalog.schemas.len() as i64, catalog.table_count() as i64);
    // A catalog that cannot be serialized fails the job (INTERNAL); it is
    // never stored as an empty catalog. It is serialized straight into the
    // compressor (its text never exists whole), and not kept beside its
    // stored form while the store writes it.
    let stored = StoredCatalog::compress(&catalog);
    drop(catalog);
    let stored = match stored {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(connector = %c.id, error = %e, "could not serialize the catalog");
            fail(
                job,
                ErrorCode::Internal.as_str(),
                "the catalog could not be serialized".into(),
            );
            return none;
        }
    };
    let finished_at = ts(Utc::now());
    let snapshot = Snapshot {
        id: Uuid::new_v4(),
        connector_id: c.id,
        job_id: Some(job.id),
        discovered_at: finished_at.clone(),
        schema_count,
        table_count,
        catalog: stored,
        fingerprint,
        request,
    };
    job.status = JobStatus::Succeeded;
    job.schemas_discovered = Some(schema_count);
    job.tables_discovered = Some(table_count);
    job.snapshot_id = Some(snapshot.id);
    job.message = Some("Discovery complete".into());
    job.finished_at = Some(finished_at);
    let notice = match (changes, previous) {
        (Some(ch), Some(prev)) => Some(schema_changed(state, c, job, &prev, &snapshot, &ch)),
        _ => None,
    };
    Outcome {
        snapshot: Some(snapshot),
        notice,
    }
}

/// `catalog` without what an incremental diff does not compare: every
/// schema and relation by name and kind, with columns only for the
/// relations in `changed`.
fn shape_of(catalog: &Catalog, changed: &BTreeSet<RelationName>) -> Catalog {
    Catalog {
        schemas: catalog
            .schemas
            .iter()
            .map(|s| Schema {
                name: s.name.clone(),
                comment: None,
                tables: s
                    .tables
                    .iter()
                    .map(|t| {
                        let mut shape = Table::new(t.name.clone(), t.kind);
                        if changed.contains(&RelationName::new(s.name.as_str(), t.name.as_str())) {
                            shape.columns.clone_from(&t.columns);
                        }
                        shape
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// The `SCHEMA_CHANGED` notice: counts of every kind of change, the first
/// entries of each, and a link to the diff route.
fn schema_changed(
    state: &AppState,
    c: &Connector,
    job: &DiscoveryJob,
    previous: &Snapshot,
    snapshot: &Snapshot,
    ch: &Changes,
) -> NewNotice {
    fn first<T: serde::Serialize>(v: &[T]) -> serde_json::Value {
        json!(&v[..v.len().min(NOTICE_LIST_LIMIT)])
    }
    let id = Uuid::new_v4().to_string();
    let path = format!(
        "/api/v1/tenants/{}/connectors/{}/schemas/diff",
        c.tenant_id, c.id
    );
    let diff_url = match &state.settings.public_url {
        Some(base) => format!("{base}{path}"),
        None => path,
    };
    let truncated = [
        ch.tables_added.len(),
        ch.tables_removed.len(),
        ch.columns_added.len(),
        ch.columns_removed.len(),
        ch.columns_type_changed.len(),
    ]
    .iter()
    .any(|n| *n > NOTICE_LIST_LIMIT);
    let payload = json!({
        "id": id,
        "event": EVENT_SCHEMA_CHANGED,
        "recipients": "tenant-admins",
        "tenantId": c.tenant_id,
        "connectorId": c.id,
        "connectorName": c.name,
        "connectorType": c.connector_type.as_str(),
        "jobId": job.id,
        "origin": job.origin,
        "incremental": job.incremental,
        "from": {"snapshotId": previous.id, "discoveredAt": previous.discovered_at},
        "to": {"snapshotId": snapshot.id, "discoveredAt": snapshot.discovered_at},
        "summary": {
            "tablesAdded": ch.tables_added.len(),
            "tablesRemoved": ch.tables_removed.len(),
            "columnsAdded": ch.columns_added.len(),
            "columnsRemoved": ch.columns_removed.len(),
            "columnsTypeChanged": ch.columns_type_changed.len(),
        },
        "changes": {
            "tablesAdded": first(&ch.tables_added),
            "tablesRemoved": first(&ch.tables_removed),
            "columnsAdded": first(&ch.columns_added),
            "columnsRemoved": first(&ch.columns_removed),
            "columnsTypeChanged": first(&ch.columns_type_changed),
        },
        "truncated": truncated,
        "diffUrl": diff_url,
    })
    .to_string();
    NewNotice {
        id,
        kind: EVENT_SCHEMA_CHANGED.to_owned(),
        payload,
        once_key: None,
    }
}

/// Renews the job's lease at a third of its length; returns when the lease
/// is lost (the job was taken over, cancelled or deleted).
async fn hold(state: &AppState, job: Uuid) {
    let lease = state.settings.discovery_lease;
    loop {
        tokio::time::sleep(lease / 3).await;
        match state
            .store
            .renew_discovery_job(job, &state.replica, &now_plus(lease))
            .await
        {
            Ok(true) => {}
            Ok(false) => return,
            // The store is unreachable: keep trying until it answers; if the
            // lease ends meanwhile, the end of the run finds it lost.
            Err(e) => tracing::warn!(%job, error = %e, "could not renew a discovery job's lease"),
        }
    }
}

async fn run(
    state: AppState,
    c: ClaimedJob,
    req: DiscoveryRequest,
    done: watch::Sender<Option<DiscoveryJob>>,
) {
    let mut job = c.job;
    let (connector_id, job_id) = (job.connector_id, job.id);
    // Counted down however the run ends, an abort included.
    struct Gauge(prometheus::IntGauge);
    impl Drop for Gauge {
        fn drop(&mut self) {
            self.0.dec();
        }
    }
    state.metrics.discovery_running.inc();
    let _running = Gauge(state.metrics.discovery_running.clone());
    let work = async {
        let connector = match state.store.get_connector(c.tenant_id, connector_id).await {
            Ok(Some(x)) => x,
            // Deleted meanwhile: its jobs went with it.
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!(connector = %connector_id, error = %e, "could not read the connector");
                fail(
                    &mut job,
                    ErrorCode::Internal.as_str(),
                    "the connector could not be read".into(),
                );
                return Some(Outcome {
                    snapshot: None,
                    notice: None,
                });
            }
        };
        Some(execute(&state, &connector, &req, &mut job).await)
    };
    let outcome = tokio::select! {
        o = work => o,
        () = hold(&state, job_id) => None,
    };
    let recorded = match outcome {
        None => false,
        Some(o) => {
            if job.finished_at.is_none() {
                job.finished_at = Some(ts(Utc::now()));
            }
            let finished = FinishedJob {
                job: &job,
                tenant_id: c.tenant_id,
                replica: &state.replica,
                snapshot: o.snapshot.as_ref(),
                snapshots_kept: state.settings.snapshots_kept,
                notice: o.notice.as_ref(),
            };
            match state.store.finish_discovery_job(&finished).await {
                Ok(held) => held,
                Err(e) => {
                    tracing::error!(connector = %connector_id, error = %e, "could not record the discovery job's end");
                    false
                }
            }
        }
    };
    state.jobs.finish(connector_id, job.id);
    if recorded {
        state
            .metrics
            .discovery_jobs
            .with_label_values(&[job.status.as_str()])
            .inc();
        let _ = done.send(Some(job));
    } else {
        tracing::info!(connector = %connector_id, job = %job.id, "a discovery job was lost by this replica (taken over, cancelled or deleted); nothing recorded");
        state
            .metrics
            .discovery_jobs
            .with_label_values(&["LOST"])
            .inc();
    }
}
