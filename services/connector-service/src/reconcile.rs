//! Reconciliation, at start-up and every `MATIH_RECONCILE_INTERVAL_SECS`, on
//! every store: drops create reservations whose lease ended (their process
//! died) with the TESTING rows and the secrets they name, recomputes each
//! tenant's slot count from its rows and live reservations, and removes orphan
//! secrets — secrets no connector row references and no live reservation
//! names, written at least `MATIH_ORPHAN_SECRET_MIN_AGE_SECS` ago.
//!
//! Safe with several replicas: counts are recomputed under the tenant row's
//! lock (see `slots.rs`), a create in flight on any replica holds a live
//! reservation naming its secret, and the secrets are listed before the rows
//! and reservations are read, so a create finishing in between is seen with
//! its row.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::Utc;

use crate::app::AppState;
use crate::model::ts;

/// What a reconciliation found and did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub orphan_secrets: Vec<String>,
    pub removed: usize,
    pub recounted_tenants: usize,
    pub expired_reservations: u64,
    /// TESTING rows of dead creates, deleted with their reservations.
    pub testing_rows_removed: usize,
    /// Secrets named by expired reservations, removed at any age.
    pub expired_secrets_removed: usize,
}

/// One pass. With `repair` false it only reports orphans (nothing changes).
pub async fn reconcile(state: &AppState, repair: bool) -> anyhow::Result<Report> {
    let mut report = Report::default();
    let min_age = state.settings.orphan_secret_min_age;
    if repair {
        let expired = state
            .store
            .delete_expired_reservations(&ts(Utc::now()))
            .await?;
        report.expired_reservations = expired.len() as u64;
        report.testing_rows_removed = expired.iter().filter(|e| e.connector.is_some()).count();
        // A dead create's secret, named before it was written: no row can
        // reference it (a finished create ends its reservation), so it goes
        // now, whatever its age. A failure leaves it to the orphan rule.
        for full in expired.iter().filter_map(|e| e.secret_name.as_deref()) {
            let Some((namespace, name)) = full.split_once('/') else {
                continue;
            };
            let r = crate::secrets::SecretRef {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                connector_id: uuid::Uuid::nil(),
                connector_type: String::new(),
            };
            match state.secrets.delete(&r).await {
                Ok(()) => report.expired_secrets_removed += 1,
                Err(e) => {
                    tracing::warn!(namespace, secret = %name, error = %e, "could not remove a dead create's secret")
                }
            }
        }
    }
    for tenant in state.store.list_tenants().await? {
        let namespace = format!("{}{}", state.settings.namespace_prefix, tenant.slug);
        // Secrets first: anything written after this is not judged now.
        let secrets = match state.secrets.list_with_age(&namespace).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(namespace, error = %e, "could not list secrets to reconcile");
                Vec::new()
            }
        };
        let now = ts(Utc::now());
        let connectors = state.store.list_connectors(tenant.id).await?;
        let reserved: BTreeSet<String> = state
            .store
            .reserved_secrets(tenant.id, &now)
            .await?
            .into_iter()
            .collect();
        let referenced: BTreeSet<&str> = connectors
            .iter()
            .map(|c| c.credential_secret_name.as_str())
            .collect();
        for (name, age) in secrets {
            if referenced.contains(name.as_str())
                || reserved.contains(&format!("{namespace}/{name}"))
                || age.is_some_and(|a| a < min_age)
            {
                continue;
            }
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
        if repair {
            let (before, after) = state.store.recount_slots(tenant.id, &now).await?;
            if before != after {
                tracing::warn!(tenant = %tenant.id, before, after, "recounted plan slots");
                report.recounted_tenants += 1;
            }
        }
    }
    Ok(report)
}

/// One pass, logged; errors are logged, never fatal.
pub async fn run_logged(state: &AppState) {
    match reconcile(state, true).await {
        Ok(r)
            if !r.orphan_secrets.is_empty()
                || r.recounted_tenants > 0
                || r.expired_reservations > 0 =>
        {
            tracing::warn!(
                orphans = r.orphan_secrets.len(),
                removed = r.removed,
                recounted_tenants = r.recounted_tenants,
                expired_reservations = r.expired_reservations,
                testing_rows_removed = r.testing_rows_removed,
                expired_secrets_removed = r.expired_secrets_removed,
                "reconciled secrets and plan slots"
            )
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "reconciliation failed"),
    }
}

/// Runs a pass every `interval` (0: never) in the background; the start-up
/// pass is the caller's, before it serves.
pub fn spawn(state: AppState, interval: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if interval.is_zero() {
            return;
        }
        loop {
            tokio::time::sleep(interval).await;
            run_logged(&state).await;
        }
    })
}
