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
