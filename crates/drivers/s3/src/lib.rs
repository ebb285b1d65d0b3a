//! Amazon S3 (and S3-compatible stores) driver for MATIH connectors. Each
//! bucket is a schema; each top-level prefix (`orders/`) — or object at the
//! bucket's root — is a file set (a table of kind `FILE_SET`) with its object
//! count, total size and detected format, and columns inferred from a bounded
//! sample: CSV header and rows, JSON lines, or Parquet footers read with a
//! ranged GET. Authentication: access keys (with a session token), optionally
//! exchanged for an assumed role's keys through STS AssumeRole.
//!
//! ```no_run
//! # async fn demo() -> Result<(), matih_connector_core::ConnectorError> {
//! use matih_connector_core::{open, ConnectionConfig, Credentials, DiscoveryRequest, EgressPolicy};
//! let driver = matih_driver_s3::S3Driver::new();
//! let cfg = ConnectionConfig {
//!     database: Some("analytics-landing".into()),
//!     metadata: serde_json::from_value(serde_json::json!({"region": "eu-west-1"})).unwrap(),
//!     ..Default::default()
//! };
//! let creds = Credentials::new().with("accessKeyId", "AKIA…").with("secretAccessKey", "…");
//! let mut conn = open(&driver, &cfg, &creds, &EgressPolicy::default()).await?;
//! let catalog = conn.discover(&DiscoveryRequest::default()).await?;
//! println!("{} file sets", catalog.table_count());
//! # Ok(()) }
//! ```
//!
//! The catalog mapping, keys, sampling bounds, type inference and error codes
//! are described in `docs/drivers/s3.md`.

mod config;
mod connection;
mod discovery;

use matih_connector_core::sample::file_sets;
use matih_connector_core::{
    async_trait, Capabilities, Checked, ConnectContext, Connection, ConnectorError, ConnectorType,
    Driver, DriverDescriptor, Key, Prepared,
};

use crate::config::S3Config;
use crate::connection::S3Connection;
use matih_connector_core::{Catalog, DiscoveryRequest};

/// The S3 driver (`S3`).
#[derive(Debug)]
pub struct S3Driver {
    descriptor: DriverDescriptor,
}

impl S3Driver {
    pub fn new() -> Self {
        let mut metadata_keys = aws_metadata_keys();
        metadata_keys.extend([
            Key::optional("bucket", "The one bucket to discover (or give database); default: every bucket the keys can list"),
            Key::optional("forcePathStyle", "Path-style addressing (default: true for IP/localhost endpoints, else false)"),
            Key::optional("maxObjectsPerTable", "Objects listed per file set for counts and formats (default 10000)"),
            Key::optional("sampleBytes", "Bytes read from the start of a CSV/JSON-lines file (default 1 MiB)"),
            Key::optional("sampleFiles", "Files read per file set for columns (default 3)"),
        ]);
        S3Driver {
            descriptor: DriverDescriptor {
                connector_type: ConnectorType::S3,
                display_name: "Amazon S3",
                default_port: Some(443),
                credential_keys: aws_credential_keys(),
                metadata_keys,
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

impl Default for S3Driver {
    fn default() -> Self {
        S3Driver::new()
    }
}

pub(crate) fn aws_credential_keys() -> Vec<Key> {
    vec![
        Key::required("accessKeyId", "AWS access key id"),
        Key::required("secretAccessKey", "AWS secret access key"),
        Key::optional("sessionToken", "Session token of temporary credentials"),
    ]
}

fn aws_metadata_keys() -> Vec<Key> {
    matih_connector_core::aws::metadata_keys(
        "Endpoint URL override, e.g. http://127.0.0.1:9000 (or give host/port)",
    )
}

#[async_trait]
impl Driver for S3Driver {
    fn descriptor(&self) -> &DriverDescriptor {
        &self.descriptor
    }

    fn prepare(&self, spec: Checked<'_>) -> Result<Box<dyn Prepared>, ConnectorError> {
        Ok(Box::new(S3Config::parse(
            spec.config(),
            spec.credentials(),
        )?))
    }
}

#[async_trait]
impl Prepared for S3Config {
    fn endpoint(&self) -> Option<(&str, u16)> {
        Some((&self.aws.host, self.aws.port))
    }

    async fn connect(&self, ctx: &ConnectContext) -> Result<Box<dyn Connection>, ConnectorError> {
        Ok(Box::new(
            connection::S3Connection::open(self.clone(), ctx).await?,
        ))
    }
}

// The `Connection` impl lives here, not in `connection`: discovery and the
// probe are core's `file_sets` over the `ObjectStore` impl in `discovery`,
// which depends on `connection` only.
#[async_trait]
impl Connection for S3Connection {
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
        let d = S3Driver::new();
        assert_eq!(d.descriptor().connector_type, ConnectorType::S3);
        let cfg = ConnectionConfig {
            metadata: serde_json::from_value(json!({"region": "eu-west-3", "bucket": "b"}))
                .unwrap(),
            ..Default::default()
        };
        assert_eq!(
            prepare(
                &d,
                &cfg,
                &Credentials::new()
                    .with("accessKeyId", "AKIA")
                    .with("secretAccessKey", "x")
            )
            .unwrap()
            .endpoint(),
            Some(("s3.eu-west-3.amazonaws.com", 443))
        );
        let creds = Credentials::new()
            .with("accessKeyId", "AKIA")
            .with("secretAccessKey", "x");
        prepare(&d, &cfg, &creds).unwrap();
        let mut bad = cfg.clone();
        bad.metadata.insert("schemaName".into(), json!("x"));
        assert_eq!(
            prepare(&d, &bad, &creds).unwrap_err().code(),
            ErrorCode::InvalidConfiguration
        );
    }

    /// Everything refused before any I/O, by the same checks on every path.
    #[tokio::test]
    async fn rejection_table() {
        use matih_connector_testkit::conformance::{
            assert_rejections, common_rejections, Case, Rejection,
        };
        let d = S3Driver::new();
        let cfg: ConnectionConfig = ConnectionConfig {
            metadata: serde_json::from_value(
                serde_json::json!({"region": "eu-west-3", "bucket": "b"}),
            )
            .unwrap(),
            ..Default::default()
        };
        let valid = Case::new(
            cfg,
            Credentials::new()
                .with("accessKeyId", "AKIA")
                .with("secretAccessKey", "aws-secret"),
        );
        let mut rows = common_rejections(&d, &valid);
        rows.push(Rejection::invalid(
            "a bucket with a slash",
            valid.with_cfg(|c| {
                c.metadata.insert("bucket".into(), "a/b".into());
            }),
        ));
        rows.push(Rejection::invalid(
            "a schema",
            valid.with_cfg(|c| c.schema = Some("s".into())),
        ));
        assert_rejections(&d, &valid, &rows).await;
    }
}
