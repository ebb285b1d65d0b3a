//! Discovery as a background job: one at a time per connector, each finished
//! catalog stored as a snapshot.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::Utc;
use matih_connector_core::{with_timeout, Catalog, ConnectorError, DiscoveryRequest, ErrorCode};
use tokio::sync::watch;
use uuid::Uuid;

use crate::app::AppState;
use crate::model::{ts, Connector, DiscoveryJob, JobStatus, Snapshot};
use crate::secrets::SecretRef;

struct Running {
    job: DiscoveryJob,
    done: watch::Receiver<Option<DiscoveryJob>>,
    abort: tokio::task::AbortHandle,
}

/// The jobs running in this process, by connector.
#[derive(Default)]
pub struct Jobs {
    running: Mutex<HashMap<Uuid, Running>>,
}

impl std::fmt::Debug for Jobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.running.lock().map(|m| m.len()).unwrap_or(0);
        f.debug_struct("Jobs").field("running", &n).finish()
    }
}

/// A started (or already running) job and a way to wait for its end.
#[derive(Debug)]
pub struct Started {
    pub job: DiscoveryJob,
    pub already_running: bool,
    pub done: watch::Receiver<Option<DiscoveryJob>>,
}

impl Started {
    /// The finished job, or `None` if it is still running after `limit`.
    pub async fn wait(mut self, limit: Duration) -> Option<DiscoveryJob> {
        let finished = tokio::time::timeout(limit, self.done.wait_for(|j| j.is_some())).await;
        match finished {
            Ok(Ok(j)) => j.clone(),
            _ => None,
        }
    }
}

impl Jobs {
    pub fn running(&self, connector: Uuid) -> Option<DiscoveryJob> {
        self.running
            .lock()
            .ok()?
            .get(&connector)
            .map(|r| r.job.clone())
    }

    /// Stops a connector's job (the connector is being deleted).
    pub fn cancel(&self, connector: Uuid) {
        if let Ok(mut m) = self.running.lock() {
            if let Some(r) = m.remove(&connector) {
                r.abort.abort();
            }
        }
    }

    fn finish(&self, connector: Uuid, job: Uuid) {
        if let Ok(mut m) = self.running.lock() {
            if m.get(&connector).is_some_and(|r| r.job.id == job) {
                m.remove(&connector);
            }
        }
    }
}

/// Starts discovery for a connector unless one is already running, in which
/// case that one is returned.
pub fn start(
    state: &AppState,
    connector: &Connector,
    secret: SecretRef,
    req: DiscoveryRequest,
) -> Started {
    let mut map = state.jobs.running.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(r) = map.get(&connector.id) {
        return Started {
            job: r.job.clone(),
            already_running: true,
            done: r.done.clone(),
        };
    }
    let job = DiscoveryJob {
        id: Uuid::new_v4(),
        connector_id: connector.id,
        status: JobStatus::Running,
        started_at: ts(Utc::now()),
        finished_at: None,
        error_code: None,
        message: None,
        schemas_discovered: None,
        tables_discovered: None,
    };
    let (tx, rx) = watch::channel(None);
    let task = tokio::spawn(run(
        state.clone(),
        connector.clone(),
        secret,
        req,
        job.clone(),
        tx,
    ));
    map.insert(
        connector.id,
        Running {
            job: job.clone(),
            done: rx.clone(),
            abort: task.abort_handle(),
        },
    );
    Started {
        job,
        already_running: false,
        done: rx,
    }
}

async fn discover(
    state: &AppState,
    c: &Connector,
    secret: &SecretRef,
    req: &DiscoveryRequest,
) -> Result<Catalog, ConnectorError> {
    let creds = state.secrets.get(secret).await.map_err(|e| {
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
            conn.discover(req),
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

async fn run(
    state: AppState,
    c: Connector,
    secret: SecretRef,
    req: DiscoveryRequest,
    mut job: DiscoveryJob,
    done: watch::Sender<Option<DiscoveryJob>>,
) {
    state.metrics.discovery_running.inc();
    if let Err(e) = state.store.insert_job(&job).await {
        tracing::warn!(connector = %c.id, error = %e, "could not record the discovery job");
    }
    let outcome = discover(&state, &c, &secret, &req).await;
    let finished_at = Utc::now();
    match outcome {
        Ok(mut catalog) => {
            catalog.sort();
            let (schema_count, table_count) =
                (catalog.schemas.len() as i64, catalog.table_count() as i64);
            // A catalog that cannot be serialized fails the job (INTERNAL);
            // it is never stored as an empty catalog.
            let text = serde_json::to_string(&catalog);
            // The text is what is stored: the catalog is not kept beside it
            // while the store writes it.
            drop(catalog);
            match text {
                Err(e) => {
                    tracing::error!(connector = %c.id, error = %e, "could not serialize the catalog");
                    job.status = JobStatus::Failed;
                    job.error_code = Some(ErrorCode::Internal.as_str().into());
                    job.message = Some("the catalog could not be serialized".into());
                }
                Ok(text) => {
                    let snapshot = Snapshot {
                        id: Uuid::new_v4(),
                        connector_id: c.id,
                        job_id: Some(job.id),
                        discovered_at: ts(finished_at),
                        schema_count,
                        table_count,
                        catalog: text,
                    };
                    match state
                        .store
                        .insert_snapshot(&snapshot, state.settings.snapshots_kept)
                        .await
                    {
                        Ok(()) => {
                            job.status = JobStatus::Succeeded;
                            job.schemas_discovered = Some(snapshot.schema_count);
                            job.tables_discovered = Some(snapshot.table_count);
                            job.message = Some("Discovery complete".into());
                        }
                        Err(e) => {
                            tracing::error!(connector = %c.id, error = %e, "could not store the catalog snapshot");
                            job.status = JobStatus::Failed;
                            job.error_code = Some(ErrorCode::Internal.as_str().into());
                            job.message = Some("the catalog could not be stored".into());
                        }
                    }
                }
            }
        }
        Err(e) => {
            tracing::info!(connector = %c.id, code = %e.code(), "discovery failed");
            job.status = JobStatus::Failed;
            job.error_code = Some(e.code().as_str().into());
            job.message = Some(if e.code() == ErrorCode::Internal {
                e.code().hint().to_owned()
            } else {
                e.report_message()
            });
        }
    }
    job.finished_at = Some(ts(finished_at));
    if let Err(e) = state.store.finish_job(&job).await {
        tracing::warn!(connector = %c.id, error = %e, "could not record the discovery job's end");
    }
    state
        .metrics
        .discovery_jobs
        .with_label_values(&[job.status.as_str()])
        .inc();
    state.metrics.discovery_running.dec();
    state.jobs.finish(c.id, job.id);
    let _ = done.send(Some(job));
}
