//! Plan slots held by creates in flight. A create takes a reservation (a row
//! leased for `Settings::create_lease`, renewed at a third of it while the
//! create runs), names the secret it writes on it, writes its connector row
//! with status TESTING and names that row on it (`save`, one transaction),
//! tests, and then either saves the outcome and ends the reservation
//! (`finish`, one transaction) or removes what it wrote and releases it. A
//! process that dies mid-create stops renewing: the lease ends, and
//! reconciliation deletes the reservation with the TESTING row it names and
//! the secret it names, and recounts. Counts are always recomputed from rows
//! and live reservations naming no row, never incremented blind, so a crash
//! cannot leave a slot taken for good on any store or replica count.

use std::time::Duration;

use axum::http::StatusCode;
use chrono::Utc;
use uuid::Uuid;

use crate::app::AppState;
use crate::error::{AppError, Code};
use crate::model::{ts, Connector};

/// A reservation held by this process; renewal stops when it is dropped.
#[derive(Debug)]
pub struct Held {
    id: Uuid,
    tenant: Uuid,
    state: AppState,
    renewal: tokio::task::JoinHandle<()>,
}

fn lease_end(lease: Duration) -> String {
    ts(Utc::now() + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX))
}

/// Takes a slot of `tenant` (`limit`: the plan's, `None` unlimited); `None`
/// when the plan is full.
pub async fn reserve(
    state: &AppState,
    tenant: Uuid,
    limit: Option<i64>,
) -> Result<Option<Held>, AppError> {
    let lease = state.settings.create_lease;
    let id = Uuid::new_v4();
    let now = ts(Utc::now());
    if !state
        .store
        .reserve_create(tenant, limit, id, &now, &lease_end(lease))
        .await?
    {
        return Ok(None);
    }
    let store = state.store.clone();
    let renewal = tokio::spawn(async move {
        let every = (lease / 3).max(Duration::from_millis(100));
        loop {
            tokio::time::sleep(every).await;
            match store.renew_reservation(id, None, &lease_end(lease)).await {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => {
                    tracing::warn!(reservation = %id, error = %e, "could not renew a create's reservation")
                }
            }
        }
    });
    Ok(Some(Held {
        id,
        tenant,
        state: state.clone(),
        renewal,
    }))
}

fn lost() -> AppError {
    AppError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        Code::CreateInterrupted,
        "the create lost its plan slot before it could be saved; try again",
    )
}

impl Held {
    /// Records the secret (`namespace/name`) the create is about to write,
    /// before writing it.
    pub async fn name_secret(&self, namespace: &str, name: &str) -> Result<(), AppError> {
        let full = format!("{namespace}/{name}");
        let lease = lease_end(self.state.settings.create_lease);
        match self
            .state
            .store
            .renew_reservation(self.id, Some(&full), &lease)
            .await?
        {
            true => Ok(()),
            false => Err(lost()),
        }
    }

    /// Writes the connector's row (status TESTING) and names it on the
    /// reservation, which stays until `finish` or `release`. On failure the
    /// reservation is still to be released.
    pub async fn save(&self, c: &Connector) -> Result<(), AppError> {
        if self
            .state
            .store
            .insert_reserved_connector(c, self.id)
            .await?
        {
            Ok(())
        } else {
            Err(lost())
        }
    }

    /// Saves the create's outcome on its row and ends the reservation. On
    /// failure the row and the reservation are still to be removed.
    pub async fn finish(&self, c: &Connector) -> Result<(), AppError> {
        if self
            .state
            .store
            .finish_reserved_connector(c, self.id)
            .await?
        {
            Ok(())
        } else {
            Err(lost())
        }
    }

    /// Gives the slot back (the create failed; its row, if any, is deleted
    /// first).
    pub async fn release(self) {
        self.renewal.abort();
        if let Err(e) = self
            .state
            .store
            .release_reservation(self.tenant, self.id, &ts(Utc::now()))
            .await
        {
            tracing::error!(tenant = %self.tenant, error = %e,
                "could not release a create's reservation; its lease will end and reconciliation recounts");
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.renewal.abort();
    }
}
