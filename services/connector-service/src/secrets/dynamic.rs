//! Dynamic database credentials: a connector whose stored credentials are
//! `{"vaultDatabaseRole": "<role>"}` (and optionally `"vaultDatabaseMount"`,
//! default `database`) holds no password. Every use — a test, a discovery, a
//! health check — asks the secret store for a login issued for that use
//! (Vault: `<mount>/creds/<role>`), uses it, and gives the lease back
//! ([`LeaseGuard::release`]); a lease that cannot be revoked expires with its
//! TTL. The issued password lives only in memory for the call.
//!
//! [`resolve_for_use`] is the one entry point; the connectivity test wraps
//! it in a timed `credentials` step.

use std::sync::Arc;
use std::time::Instant;

use matih_connector_core::{ConnectorError, Credentials, ErrorCode, SecretString};

use super::{SecretError, SecretStore};

/// The credential key naming the Vault database role.
pub const ROLE_KEY: &str = "vaultDatabaseRole";
/// The credential key naming the database secrets engine's mount.
pub const MOUNT_KEY: &str = "vaultDatabaseMount";
/// The default mount of Vault's database secrets engine.
pub const DEFAULT_MOUNT: &str = "database";

/// A login issued for one use.
pub struct Issued {
    pub username: String,
    pub password: SecretString,
    /// What revokes it.
    pub lease_id: String,
    pub lease_secs: u64,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("username", &self.username)
            .field("lease_id", &self.lease_id)
            .field("lease_secs", &self.lease_secs)
            .finish_non_exhaustive()
    }
}

/// Whether these stored credentials name a dynamic role.
pub fn is_dynamic(stored: &Credentials) -> bool {
    stored.get(ROLE_KEY).is_some()
}

/// What the driver's offline checks see for dynamic credentials: the stored
/// keys without the role, with placeholders for the login Vault will issue
/// (the real values exist only at use). `Err` when the store cannot issue.
pub fn for_validation(
    store: &dyn SecretStore,
    stored: &Credentials,
) -> Result<Credentials, ConnectorError> {
    if !is_dynamic(stored) {
        return Ok(stored.clone());
    }
    if store.kind() != "vault" {
        return Err(ConnectorError::invalid_config(
            "credentials",
            format!(
                "`{ROLE_KEY}` needs the vault secret store; this service uses `{}`",
                store.kind()
            ),
        ));
    }
    let role = stored
        .get(ROLE_KEY)
        .map(|r| r.expose().trim())
        .unwrap_or("");
    if role.is_empty() || role.contains('/') {
        return Err(ConnectorError::invalid_config(
            "credentials",
            format!("`{ROLE_KEY}` must be a Vault database role name"),
        ));
    }
    Ok(without_role(stored)
        .with("username", "vault-issued")
        .with("password", "vault-issued"))
}

fn without_role(stored: &Credentials) -> Credentials {
    stored
        .iter()
        .filter(|(k, _)| *k != ROLE_KEY && *k != MOUNT_KEY)
        .map(|(k, v)| (k.to_owned(), v.clone()))
        .collect()
}

/// A lease to give back after use.
pub struct LeaseGuard {
    store: Arc<dyn SecretStore>,
    lease_id: Option<String>,
    /// The issued user name (not secret): what to look for in the database.
    pub username: String,
}

impl std::fmt::Debug for LeaseGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseGuard")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl LeaseGuard {
    /// Revokes the lease now; a failure is logged and the lease expires by itself.
    pub async fn release(mut self) {
        if let Some(id) = self.lease_id.take() {
            revoke(&*self.store, &id).await;
        }
    }
}

async fn revoke(store: &dyn SecretStore, lease_id: &str) {
    if let Err(e) = store.revoke_lease(lease_id).await {
        tracing::warn!(lease = %lease_id, error = %e, "could not revoke a dynamic credential lease; it expires with its TTL");
    }
}

impl Drop for LeaseGuard {
    /// A use that ended without `release` (a cancelled request) still gives
    /// the lease back, in the background.
    fn drop(&mut self) {
        if let Some(id) = self.lease_id.take() {
            let store = self.store.clone();
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move { revoke(&*store, &id).await });
            }
        }
    }
}

/// Maps the store's refusal to issue to the connector error codes, naming
/// Vault: the database was never reached.
fn issue_error(e: SecretError, mount: &str, role: &str) -> ConnectorError {
    let at = format!("Vault `{mount}/creds/{role}`");
    match e {
        SecretError::Denied(m) => ConnectorError::new(
            ErrorCode::PermissionDenied,
            format!("Vault refused to issue database credentials at {at}: {m}"),
        ),
        SecretError::NotFound(_) => ConnectorError::new(
            ErrorCode::AuthenticationFailed,
            format!("Vault has no database role `{role}` at {at}"),
        ),
        SecretError::Unsupported(m) => ConnectorError::invalid_config("credentials", m),
        SecretError::AlreadyExists(m) | SecretError::Backend(m) => ConnectorError::new(
            ErrorCode::AuthenticationFailed,
            format!("Vault could not issue database credentials at {at}: {m}"),
        )
        .with_retryable(true),
    }
}

/// The credentials to use now: `stored` as it is, or — for a dynamic role —
/// a login issued for this use with the lease to release after it. Also
/// returns how long fetching took (0 when nothing was fetched).
pub async fn resolve_for_use(
    store: &Arc<dyn SecretStore>,
    stored: &Credentials,
) -> Result<(Credentials, Option<LeaseGuard>), ConnectorError> {
    if !is_dynamic(stored) {
        return Ok((stored.clone(), None));
    }
    for_validation(&**store, stored)?;
    let role = stored
        .get(ROLE_KEY)
        .map(|r| r.expose().trim().to_owned())
        .unwrap_or_default();
    let mount = stored
        .get(MOUNT_KEY)
        .map(|m| m.expose().trim().trim_matches('/').to_owned())
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| DEFAULT_MOUNT.to_owned());
    let issued = store
        .issue_database_credentials(&mount, &role)
        .await
        .map_err(|e| issue_error(e, &mount, &role))?;
    tracing::debug!(role, mount, username = %issued.username, lease_secs = issued.lease_secs, "issued dynamic database credentials");
    let creds = without_role(stored)
        .with("username", issued.username.clone())
        .with("password", issued.password);
    Ok((
        creds,
        Some(LeaseGuard {
            store: store.clone(),
            lease_id: Some(issued.lease_id),
            username: issued.username,
        }),
    ))
}

/// [`resolve_for_use`], timed: `Ok` with the milliseconds it took when a
/// login was issued (`None` for stored credentials), or the error and the time.
pub async fn resolve_timed(
    store: &Arc<dyn SecretStore>,
    stored: &Credentials,
) -> Result<(Credentials, Option<LeaseGuard>, Option<u64>), (ConnectorError, u64)> {
    let started = Instant::now();
    let dynamic = is_dynamic(stored);
    match resolve_for_use(store, stored).await {
        Ok((c, g)) => Ok((c, g, dynamic.then(|| started.elapsed().as_millis() as u64))),
        Err(e) => Err((e, started.elapsed().as_millis() as u64)),
    }
}
