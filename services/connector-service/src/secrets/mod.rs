//! Where connector credentials live. The metadata store only ever holds the
//! secret's name.

pub mod kubernetes;
pub mod local;

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
}

#[async_trait]
pub trait SecretStore: Send + Sync + 'static {
    /// `local` or `kubernetes`.
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
