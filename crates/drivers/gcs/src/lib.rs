//! Google Cloud Storage driver for MATIH connectors, over the Cloud Storage
//! JSON API (`storage/v1`). Each bucket of the project is a schema; each
//! top-level prefix (`orders/`) — or object at the bucket's root — is a file
//! set (a table of kind `FILE_SET`) with its object count, total size and
//! detected format, and columns inferred from a bounded sample: CSV header and
//! rows, JSON lines, or Parquet footers read with ranged downloads.
//! Authentication: a service account key (exchanged for an access token with
//! the OAuth2 JWT bearer grant), an access token, or none (public buckets,
//! emulators).
//!
//! ```no_run
//! # async fn demo(key_json: String) -> Result<(), matih_connector_core::ConnectorError> {
//! use matih_connector_core::{open, ConnectionConfig, Credentials, DiscoveryRequest, EgressPolicy};
//! let driver = matih_driver_gcs::GcsDriver::new();
//! let cfg = ConnectionConfig {
//!     metadata: serde_json::from_value(serde_json::json!({"project": "acme-analytics"})).unwrap(),
//!     ..Default::default()
//! };
//! let creds = Credentials::new().with("serviceAccountKey", key_json);
//! let mut conn = open(&driver, &cfg, &creds, &EgressPolicy::default()).await?;
//! let catalog = conn.discover(&DiscoveryRequest::default()).await?;
//! println!("{} file sets", catalog.table_count());
//! # Ok(()) }
//! ```
//!
//! The catalog mapping, keys, sampling bounds, type inference and error codes
//! are described in `docs/drivers/gcs.md`.

mod config;
mod connection;
mod discovery;
mod errors;

use matih_connector_core::sample::file_sets;
use matih_connector_core::{
    async_trait, Capabilities, Checked, ConnectContext, Connection, ConnectorError, ConnectorType,
    Driver, DriverDescriptor, Key, Prepared,
};

use crate::config::GcsConfig;
use crate::connection::GcsConnection;
use matih_connector_core::{Catalog, DiscoveryRequest};

/// The Google Cloud Storage driver (`GCS`).
#[derive(Debug)]
pub struct GcsDriver {
    descriptor: DriverDescriptor,
}

impl GcsDriver {
    pub fn new() -> Self {
        GcsDriver {
            descriptor: DriverDescriptor {
                connector_type: ConnectorType::Gcs,
                display_name: "Google Cloud Storage",
                default_port: Some(443),
                credential_keys: vec![
                    Key::optional(
                        "serviceAccountKey",
                        "Service account key JSON (as downloaded from the console)",
                    ),
                    Key::optional("accessToken", "An OAuth2 access token, instead of a key"),
                ],
                metadata_keys: vec![
                    Key::optional(
                        "project",
                        "Project whose buckets are listed (default: the key's project_id)",
                    ),
                    Key::optional("bucket", "The one bucket to discover (or give database)"),
                    Key::optional(
                        "endpoint",
                        "Endpoint URL override, e.g. http://127.0.0.1:4443 (or give host/port)",
                    ),
                    Key::optional(
                        "tokenUrl",
                        "Token endpoint override (default: the key's token_uri)",
                    ),
                    Key::optional(
                        "maxObjectsPerTable",
                        "Objects listed per file set for counts and formats (default 10000)",
                    ),
                    Key::optional(
                        "sampleBytes",
                        "Bytes read from the start of a CSV/JSON-lines file (default 1 MiB)",
                    ),
                    Key::optional(
                        "sampleFiles",
                        "Files read per file set for columns (default 3)",
                    ),
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

impl Default for GcsDriver {
    fn default() -> Self {
        GcsDriver::new()
    }
}

#[async_trait]
impl Driver for GcsDriver {
    fn descriptor(&self) -> &DriverDescriptor {
        &self.descriptor
    }

    fn prepare(&self, spec: Checked<'_>) -> Result<Box<dyn Prepared>, ConnectorError> {
        Ok(Box::new(GcsConfig::parse(
            spec.config(),
            spec.credentials(),
        )?))
    }
}

#[async_trait]
impl Prepared for GcsConfig {
    fn endpoint(&self) -> Option<(&str, u16)> {
        Some((&self.host, self.port))
    }

    async fn connect(&self, ctx: &ConnectContext) -> Result<Box<dyn Connection>, ConnectorError> {
        Ok(Box::new(
            connection::GcsConnection::open(self.clone(), ctx).await?,
        ))
    }
}

// The `Connection` impl lives here, not in `connection`: discovery and the
// probe are core's `file_sets` over the `ObjectStore` impl in `discovery`,
// which depends on `connection` only.
#[async_trait]
impl Connection for GcsConnection {
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
        let d = GcsDriver::new();
        assert_eq!(d.descriptor().connector_type, ConnectorType::Gcs);
        let cfg = ConnectionConfig {
            metadata: serde_json::from_value(json!({"project": "p"})).unwrap(),
            ..Default::default()
        };
        assert_eq!(
            prepare(&d, &cfg, &Credentials::new()).unwrap().endpoint(),
            Some(("storage.googleapis.com", 443))
        );
        prepare(&d, &cfg, &Credentials::new()).unwrap();
        let mut bad = cfg.clone();
        bad.metadata.insert("region".into(), json!("x"));
        assert_eq!(
            prepare(&d, &bad, &Credentials::new()).unwrap_err().code(),
            ErrorCode::InvalidConfiguration
        );
        let e = prepare(&d, &cfg, &Credentials::new().with("password", "x")).unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidConfiguration);
    }

    /// Everything refused before any I/O, by the same checks on every path.
    #[tokio::test]
    async fn rejection_table() {
        use matih_connector_testkit::conformance::{assert_rejections, common_rejections, Case};
        let d = GcsDriver::new();
        let cfg: ConnectionConfig = ConnectionConfig {
            metadata: serde_json::from_value(serde_json::json!({"project": "p"})).unwrap(),
            ..Default::default()
        };
        let valid = Case::new(cfg, Credentials::new());
        let rows = common_rejections(&d, &valid);
        assert_rejections(&d, &valid, &rows).await;
    }
}
