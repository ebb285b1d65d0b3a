//! Amazon DynamoDB driver for MATIH connectors. A region (or the endpoint of a
//! DynamoDB-compatible service) is one schema; each table is a table whose
//! primary key is its key schema (hash, then range), with DescribeTable's item
//! count and size, and attribute types inferred from a bounded Scan.
//! Authentication: access keys (with a session token), optionally exchanged
//! for an assumed role's keys through STS AssumeRole.
//!
//! ```no_run
//! # async fn demo() -> Result<(), matih_connector_core::ConnectorError> {
//! use matih_connector_core::{open, ConnectionConfig, Credentials, DiscoveryRequest, EgressPolicy};
//! let driver = matih_driver_dynamodb::DynamodbDriver::new();
//! let cfg = ConnectionConfig {
//!     metadata: serde_json::from_value(serde_json::json!({"region": "eu-west-1"})).unwrap(),
//!     ..Default::default()
//! };
//! let creds = Credentials::new().with("accessKeyId", "AKIA…").with("secretAccessKey", "…");
//! let mut conn = open(&driver, &cfg, &creds, &EgressPolicy::default()).await?;
//! let catalog = conn.discover(&DiscoveryRequest::default()).await?;
//! println!("{} tables", catalog.table_count());
//! # Ok(()) }
//! ```
//!
//! The catalog mapping, keys, type inference and error codes are described in
//! `docs/drivers/dynamodb.md`.

mod config;
mod connection;
mod discovery;
mod types;

use matih_connector_core::{
    async_trait, Capabilities, Checked, ConnectContext, Connection, ConnectorError, ConnectorType,
    Driver, DriverDescriptor, Key, Prepared,
};

use crate::config::DynamoConfig;
use crate::connection::DynamoConnection;
use matih_connector_core::{Catalog, DiscoveryRequest};

/// The DynamoDB driver (`DYNAMODB`).
#[derive(Debug)]
pub struct DynamodbDriver {
    descriptor: DriverDescriptor,
}

impl DynamodbDriver {
    pub fn new() -> Self {
        DynamodbDriver {
            descriptor: DriverDescriptor {
                connector_type: ConnectorType::Dynamodb,
                display_name: "Amazon DynamoDB",
                default_port: Some(443),
                credential_keys: aws_credential_keys(),
                metadata_keys: {
                    let mut k = aws_metadata_keys();
                    k.push(Key::optional(
                        "schemaName",
                        "Name of the one schema (default: the region)",
                    ));
                    k
                },
                capabilities: Capabilities {
                    tls: true,
                    statistics: true,
                    primary_keys: true,
                    comments: false,
                    inferred_fields: true,
                    filter_pushdown: false,
                },
            },
        }
    }
}

impl Default for DynamodbDriver {
    fn default() -> Self {
        DynamodbDriver::new()
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
        "Endpoint URL override, e.g. http://127.0.0.1:5000 (or give host/port)",
    )
}

#[async_trait]
impl Driver for DynamodbDriver {
    fn descriptor(&self) -> &DriverDescriptor {
        &self.descriptor
    }

    fn prepare(&self, spec: Checked<'_>) -> Result<Box<dyn Prepared>, ConnectorError> {
        Ok(Box::new(DynamoConfig::parse(
            spec.config(),
            spec.credentials(),
        )?))
    }
}

#[async_trait]
impl Prepared for DynamoConfig {
    fn endpoint(&self) -> Option<(&str, u16)> {
        Some((&self.aws.host, self.aws.port))
    }

    async fn connect(&self, ctx: &ConnectContext) -> Result<Box<dyn Connection>, ConnectorError> {
        Ok(Box::new(
            connection::DynamoConnection::open(self.clone(), ctx).await?,
        ))
    }
}

// The `Connection` impl lives here, not in `connection`: it calls both
// `connection` and `discovery`, and `discovery` depends on `connection` only.
#[async_trait]
impl Connection for DynamoConnection {
    async fn server_version(&mut self) -> Result<String, ConnectorError> {
        Ok(self.version())
    }

    async fn probe(&mut self, req: &DiscoveryRequest) -> Result<(), ConnectorError> {
        discovery::probe(self, req).await
    }

    async fn discover(&mut self, req: &DiscoveryRequest) -> Result<Catalog, ConnectorError> {
        discovery::discover(self, req).await
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
        let d = DynamodbDriver::new();
        assert_eq!(d.descriptor().connector_type, ConnectorType::Dynamodb);
        let cfg = ConnectionConfig {
            metadata: serde_json::from_value(json!({"region": "ap-south-1"})).unwrap(),
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
            Some(("dynamodb.ap-south-1.amazonaws.com", 443))
        );
        let creds = Credentials::new()
            .with("accessKeyId", "AKIA")
            .with("secretAccessKey", "x");
        prepare(&d, &cfg, &creds).unwrap();
        let bad = creds.clone().with("password", "x");
        assert_eq!(
            prepare(&d, &cfg, &bad).unwrap_err().code(),
            ErrorCode::InvalidConfiguration
        );
        let mut cfg2 = cfg.clone();
        cfg2.metadata.insert("bucket".into(), json!("x"));
        assert_eq!(
            prepare(&d, &cfg2, &creds).unwrap_err().code(),
            ErrorCode::InvalidConfiguration
        );
    }

    /// Everything refused before any I/O, by the same checks on every path.
    #[tokio::test]
    async fn rejection_table() {
        use matih_connector_testkit::conformance::{assert_rejections, common_rejections, Case};
        let d = DynamodbDriver::new();
        let cfg: ConnectionConfig = ConnectionConfig {
            metadata: serde_json::from_value(serde_json::json!({"region": "ap-south-1"})).unwrap(),
            ..Default::default()
        };
        let valid = Case::new(
            cfg,
            Credentials::new()
                .with("accessKeyId", "AKIA")
                .with("secretAccessKey", "aws-secret"),
        );
        let rows = common_rejections(&d, &valid);
        assert_rejections(&d, &valid, &rows).await;
    }
}
