//! Azure Blob Storage driver for MATIH connectors, over the Blob service
//! REST API. Each container of the storage account is a schema; each
//! top-level prefix (`orders/`) — or blob at the container's root — is a file
//! set (a table of kind `FILE_SET`) with its blob count, total size and
//! detected format, and columns inferred from a bounded sample: CSV header and
//! rows, JSON lines, or Parquet footers read with ranged reads.
//! Authentication: account key (Shared Key signing), SAS token, or a service
//! principal (Microsoft Entra ID client credentials); none for public
//! containers.
//!
//! ```no_run
//! # async fn demo() -> Result<(), matih_connector_core::ConnectorError> {
//! use matih_connector_core::{open, ConnectionConfig, Credentials, DiscoveryRequest, EgressPolicy};
//! let driver = matih_driver_azure_blob::AzureBlobDriver::new();
//! let cfg = ConnectionConfig {
//!     database: Some("landing".into()),
//!     metadata: serde_json::from_value(serde_json::json!({"account": "acmedata"})).unwrap(),
//!     ..Default::default()
//! };
//! let creds = Credentials::new().with("sasToken", "sv=2023-11-03&ss=b&srt=co&sp=rl&sig=…");
//! let mut conn = open(&driver, &cfg, &creds, &EgressPolicy::default()).await?;
//! let catalog = conn.discover(&DiscoveryRequest::default()).await?;
//! println!("{} file sets", catalog.table_count());
//! # Ok(()) }
//! ```
//!
//! The catalog mapping, keys, sampling bounds, type inference and error codes
//! are described in `docs/drivers/azure-blob.md`.

mod config;
mod connection;
mod discovery;
mod errors;

use matih_connector_core::sample::file_sets;
use matih_connector_core::{
    async_trait, Capabilities, Checked, ConnectContext, Connection, ConnectorError, ConnectorType,
    Driver, DriverDescriptor, Key, Prepared,
};

use crate::config::AzureConfig;
use crate::connection::AzureConnection;
use matih_connector_core::{Catalog, DiscoveryRequest};

/// The Azure Blob Storage driver (`AZURE_BLOB`).
#[derive(Debug)]
pub struct AzureBlobDriver {
    descriptor: DriverDescriptor,
}

impl AzureBlobDriver {
    pub fn new() -> Self {
        AzureBlobDriver {
            descriptor: DriverDescriptor {
                connector_type: ConnectorType::AzureBlob,
                display_name: "Azure Blob Storage",
                default_port: Some(443),
                credential_keys: vec![
                    Key::optional("accountName", "Storage account name (or give metadata.account)"),
                    Key::optional("accountKey", "Storage account key (base64), for Shared Key"),
                    Key::optional("sasToken", "Shared access signature token (query string)"),
                    Key::optional("clientId", "Service principal application (client) id"),
                    Key::optional("clientSecret", "Service principal client secret"),
                    Key::optional("tenantId", "Microsoft Entra tenant id or domain"),
                ],
                metadata_keys: vec![
                    Key::optional("account", "Storage account name"),
                    Key::optional("container", "The one container to discover (or give database)"),
                    Key::optional("endpoint", "Endpoint URL override, e.g. http://127.0.0.1:10000/devstoreaccount1 (or give host/port)"),
                    Key::optional("tokenUrl", "Token endpoint override for service principals (default login.microsoftonline.com)"),
                    Key::optional("maxObjectsPerTable", "Blobs listed per file set for counts and formats (default 10000)"),
                    Key::optional("sampleBytes", "Bytes read from the start of a CSV/JSON-lines file (default 1 MiB)"),
                    Key::optional("sampleFiles", "Files read per file set for columns (default 3)"),
                ],
                capabilities: Capabilities {
                    tls: true,
                    statistics: true,
                    primary_keys: false,
                    comments: false,
                    inferred_fields: true,
                    filter_pushdown: true,
                },
            },
        }
    }
}

impl Default for AzureBlobDriver {
    fn default() -> Self {
        AzureBlobDriver::new()
    }
}

#[async_trait]
impl Driver for AzureBlobDriver {
    fn descriptor(&self) -> &DriverDescriptor {
        &self.descriptor
    }

    fn prepare(&self, spec: Checked<'_>) -> Result<Box<dyn Prepared>, ConnectorError> {
        Ok(Box::new(AzureConfig::parse(
            spec.config(),
            spec.credentials(),
        )?))
    }
}

#[async_trait]
impl Prepared for AzureConfig {
    fn endpoint(&self) -> Option<(&str, u16)> {
        Some((&self.host, self.port))
    }

    async fn connect(&self, ctx: &ConnectContext) -> Result<Box<dyn Connection>, ConnectorError> {
        Ok(Box::new(
            connection::AzureConnection::open(self.clone(), ctx).await?,
        ))
    }
}

// The `Connection` impl lives here, not in `connection`: discovery and the
// probe are core's `file_sets` over the `ObjectStore` impl in `discovery`,
// which depends on `connection` only.
#[async_trait]
impl Connection for AzureConnection {
    async fn server_version(&mut self) -> Result<String, ConnectorError> {
        Ok(self.version())
    }

    async fn probe(&mut self, req: &DiscoveryRequest) -> Result<(), ConnectorError> {
        file_sets::probe(&*self, req).await
    }

    async fn discover(&mut self, req: &DiscoveryRequest) -> Result<Catalog, ConnectorError> {
        file_sets::discover_store(&*self, req).await
    }

    async fn close(self: Box<Self>) -> Result<(), ConnectorError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use matih_connector_core::ErrorCode;
    use matih_connector_core::{prepare, ConnectionConfig, Credentials};
    use serde_json::json;

    #[test]
    fn descriptor_endpoint_and_validation() {
        let d = AzureBlobDriver::new();
        assert_eq!(d.descriptor().connector_type, ConnectorType::AzureBlob);
        let cfg = ConnectionConfig {
            metadata: serde_json::from_value(json!({"account": "acme"})).unwrap(),
            ..Default::default()
        };
        assert_eq!(
            prepare(&d, &cfg, &Credentials::new()).unwrap().endpoint(),
            Some(("acme.blob.core.windows.net", 443))
        );
        prepare(&d, &cfg, &Credentials::new()).unwrap();
        let mut bad = cfg.clone();
        bad.metadata.insert("region".into(), json!("x"));
        assert_eq!(
            prepare(&d, &bad, &Credentials::new()).unwrap_err().code(),
            ErrorCode::InvalidConfiguration
        );
    }

    /// Everything refused before any I/O, by the same checks on every path.
    #[tokio::test]
    async fn rejection_table() {
        use matih_connector_testkit::conformance::{assert_rejections, common_rejections, Case};
        let d = AzureBlobDriver::new();
        let cfg: ConnectionConfig = ConnectionConfig {
            metadata: serde_json::from_value(serde_json::json!({"account": "acme"})).unwrap(),
            ..Default::default()
        };
        let valid = Case::new(cfg, Credentials::new());
        let rows = common_rejections(&d, &valid);
        assert_rejections(&d, &valid, &rows).await;
    }
}
