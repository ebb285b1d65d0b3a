//! Where connector credentials live. The metadata store only ever holds the
//! secret's name.

pub mod aws;
pub mod dynamic;
pub mod infra;
pub mod kubernetes;
pub mod local;
pub mod vault;

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use matih_connector_core::{ConnectorType, Credentials};
use uuid::Uuid;

/// Which secret a connector's credentials are in: `connector-<first 8 of id>`
/// in namespace `<prefix><tenant slug>`, labelled with the connector's id and
/// lower-case type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretRef {
    pub namespace: String,
    pub name: String,
    pub connector_id: Uuid,
    pub connector_type: String,
}

impl SecretRef {
    pub fn new(prefix: &str, tenant_slug: &str, connector_id: Uuid, ty: &ConnectorType) -> Self {
        let simple = connector_id.simple().to_string();
        SecretRef {
            namespace: format!("{prefix}{tenant_slug}"),
            name: format!("connector-{}", &simple[..8]),
            connector_id,
            connector_type: ty.as_str().to_ascii_lowercase(),
        }
    }
}

/// The seed's labels, on every store that keeps metadata beside a secret
/// (Kubernetes labels, Vault custom metadata, Secrets Manager tags).
pub const LABEL_ID: &str = "matih.ai/connector-id";
pub const LABEL_TYPE: &str = "matih.ai/connector-type";
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";

impl SecretRef {
    /// The labels the secret carries.
    pub fn labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (LABEL_ID.to_owned(), self.connector_id.to_string()),
            (LABEL_TYPE.to_owned(), self.connector_type.clone()),
            (MANAGED_BY.to_owned(), "matih-connector-service".to_owned()),
        ])
    }

    /// Where a store with one hierarchical name space keeps the secret:
    /// `matih/<tenant slug>/connector-<first 8 of id>` (Vault KV path, Secrets
    /// Manager name). `prefix` is the namespace prefix the slug is found after.
    pub fn store_path(&self, prefix: &str) -> String {
        format!("{}/{}", tenant_dir(prefix, &self.namespace), self.name)
    }
}

/// `matih/<tenant slug>` for the namespace `<prefix><tenant slug>`.
pub fn tenant_dir(prefix: &str, namespace: &str) -> String {
    format!(
        "matih/{}",
        namespace.strip_prefix(prefix).unwrap_or(namespace)
    )
}

/// When a static credential stops being the one to use, as its store records
/// it: Vault KV v2's `custom_metadata.expires_at`, Secrets Manager's next
/// rotation. The status rule turns it into a WARNING within the configured
/// window (`connection_test::status_for`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expiry {
    pub at: DateTime<Utc>,
    pub kind: ExpiryKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpiryKind {
    /// The credential stops working then (an `expires_at` someone recorded).
    Expires,
    /// The store replaces it then (scheduled rotation).
    Rotates,
}

impl ExpiryKind {
    /// Wire name in notices.
    pub fn as_str(self) -> &'static str {
        match self {
            ExpiryKind::Expires => "EXPIRES",
            ExpiryKind::Rotates => "ROTATION",
        }
    }
}

impl Expiry {
    /// An `expires_at` as people write it: RFC 3339 (`2026-12-09T10:00:00Z`)
    /// or a bare date (`2026-12-09`, the start of that day in UTC).
    pub fn parse_date(s: &str) -> Option<DateTime<Utc>> {
        let s = s.trim();
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .ok()
            .or_else(|| {
                NaiveDate::parse_from_str(s, "%Y-%m-%d")
                    .ok()
                    .and_then(|d| d.and_hms_opt(0, 0, 0))
                    .map(|t| t.and_utc())
            })
    }
}

/// A connector's stored credentials with the end its store records, if any.
#[derive(Debug)]
pub struct Stored {
    pub credentials: Credentials,
    pub expiry: Option<Expiry>,
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("secret {0} not found")]
    NotFound(String),
    #[error("secret {0} already exists")]
    AlreadyExists(String),
    /// The store refused us (401/403 from Kubernetes, a wrong local key).
    #[error("secret store refused access: {0}")]
    Denied(String),
    #[error("secret store: {0}")]
    Backend(String),
    /// The store does not offer this (dynamic credentials outside Vault).
    #[error("{0}")]
    Unsupported(String),
}

#[async_trait]
pub trait SecretStore: Send + Sync + 'static {
    /// `local`, `kubernetes`, `vault` or `aws-secrets-manager`.
    fn kind(&self) -> &'static str;
    /// Creates the secret; `AlreadyExists` when the name is taken.
    async fn create(&self, r: &SecretRef, creds: &Credentials) -> Result<(), SecretError>;
    async fn get(&self, r: &SecretRef) -> Result<Credentials, SecretError>;
    /// The credentials and when they expire or rotate, where the store
    /// records it in the same read (Vault) or one more call (Secrets
    /// Manager). Local files and Kubernetes Secrets record no such date:
    /// they keep this default.
    async fn get_with_expiry(&self, r: &SecretRef) -> Result<Stored, SecretError> {
        Ok(Stored {
            credentials: self.get(r).await?,
            expiry: None,
        })
    }
    /// Replaces the whole secret in one write, so readers see old or new, never a mix.
    async fn replace(&self, r: &SecretRef, creds: &Credentials) -> Result<(), SecretError>;
    /// Deletes the secret; a missing secret is not an error.
    async fn delete(&self, r: &SecretRef) -> Result<(), SecretError>;
    /// Names of the connector secrets in a namespace (for reconciling orphans).
    async fn list(&self, namespace: &str) -> Result<Vec<String>, SecretError>;
    /// A database login issued for one use by the store's database engine
    /// (Vault's `<mount>/creds/<role>`); see [`dynamic`]. Stores without one
    /// answer `Unsupported`.
    async fn issue_database_credentials(
        &self,
        mount: &str,
        role: &str,
    ) -> Result<dynamic::Issued, SecretError> {
        let _ = (mount, role);
        Err(SecretError::Unsupported(format!(
            "the {} secret store cannot issue database credentials",
            self.kind()
        )))
    }
    /// Gives an issued login back before its TTL ends.
    async fn revoke_lease(&self, lease_id: &str) -> Result<(), SecretError> {
        let _ = lease_id;
        Err(SecretError::Unsupported(format!(
            "the {} secret store has no leases",
            self.kind()
        )))
    }
    /// The same names with how long ago each secret was written, where the
    /// store knows (`None`: unknown, treated as old enough to reconcile).
    async fn list_with_age(
        &self,
        namespace: &str,
    ) -> Result<Vec<(String, Option<std::time::Duration>)>, SecretError> {
        Ok(self
            .list(namespace)
            .await?
            .into_iter()
            .map(|n| (n, None))
            .collect())
    }
}
