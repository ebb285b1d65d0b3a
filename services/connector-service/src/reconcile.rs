//! Start-up repair: finds secrets no connector references (left by a process
//! that died between writing a secret and saving its row, or by a failed
//! clean-up) and recounts plan slots held by creates that never finished.
//!
//! Both repairs assume no create is in flight, which holds at start-up for the
//! embedded SQLite store (one process owns it). With a shared PostgreSQL store
//! other replicas may be mid-create, so orphans are only reported there.

use std::collections::BTreeSet;

use crate::app::AppState;

/// What a reconciliation found and did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub orphan_secrets: Vec<String>,
    pub removed: usize,
    pub recounted_tenants: usize,
}

pub async fn reconcile(state: &AppState, repair: bool) -> anyhow::Result<Report> {
    let mut report = Report::default();
    for tenant in state.store.list_tenants().await? {
        let namespace = format!("{}{}", state.settings.namespace_prefix, tenant.slug);
        let connectors = state.store.list_connectors(tenant.id).await?;
        let referenced: BTreeSet<&str> = connectors
            .iter()
            .map(|c| c.credential_secret_name.as_str())
            .collect();
        let secrets = match state.secrets.list(&namespace).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(namespace, error = %e, "could not list secrets to reconcile");
                continue;
            }
        };
        for name in secrets
            .into_iter()
            .filter(|n| !referenced.contains(n.as_str()))
        {
            tracing::warn!(namespace, secret = %name, repair, "secret without a connector");
            if repair {
                let r = crate::secrets::SecretRef {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    connector_id: uuid::Uuid::nil(),
                    connector_type: String::new(),
                };
                match state.secrets.delete(&r).await {
                    Ok(()) => report.removed += 1,
                    Err(e) => {
                        tracing::warn!(namespace, secret = %name, error = %e, "could not remove an orphan secret")
                    }
                }
            }
            report.orphan_secrets.push(format!("{namespace}/{name}"));
        }
        if repair && tenant.connector_count != connectors.len() as i64 {
            state
                .store
                .set_slots(tenant.id, connectors.len() as i64)
                .await?;
            report.recounted_tenants += 1;
        }
    }
    Ok(report)
}
