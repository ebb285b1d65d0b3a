//! Amazon Redshift driver for MATIH connectors, over the Redshift Data API
//! (`aws-sdk-redshiftdata`): provisioned clusters (`clusterIdentifier` with a
//! `dbUser` or a Secrets Manager `secretArn`) and serverless workgroups
//! (`workgroupName`, IAM identity or `secretArn`). Every SDK request goes
//! through the core's pinned HTTP client (`matih_connector_core::aws`): the
//! core's TLS, the egress resolver, no redirects, bounded bodies. Discovery is set-based: one statement each for
//! schemas, relations, statistics (SVV_TABLE_INFO), columns, primary keys and
//! comments, with filters bound as named parameters.
//!
//! ```no_run
//! # async fn demo() -> Result<(), matih_connector_core::ConnectorError> {
//! use matih_connector_core::{open, ConnectionConfig, Credentials, DiscoveryRequest, EgressPolicy};
//! let driver = matih_driver_redshift::RedshiftDriver::new();
//! let cfg = ConnectionConfig {
//!     database: Some("dev".into()),
//!     metadata: serde_json::from_value(serde_json::json!({
//!         "region": "us-east-1", "clusterIdentifier": "analytics", "dbUser": "matih_reader"
//!     })).unwrap(),
//!     ..Default::default()
//! };
//! let creds = Credentials::new().with("accessKeyId", "AKIA…").with("secretAccessKey", "…");
//! let mut conn = open(&driver, &cfg, &creds, &EgressPolicy::default()).await?;
//! let catalog = conn.discover(&DiscoveryRequest::default()).await?;
//! println!("{} tables", catalog.table_count());
//! # Ok(()) }
//! ```
//!
//! Mapping, keys, privileges, types and errors: `docs/drivers/redshift.md`.

mod config;
mod connection;
mod discovery;
mod errors;
mod types;

use matih_connector_core::{
    async_trait, Capabilities, Checked, ConnectContext, Connection, ConnectorError, ConnectorType,
    Driver, DriverDescriptor, Key, Prepared,
};

use crate::config::{RedshiftConfig, META_CLUSTER, META_DB_USER, META_SECRET_ARN, META_WORKGROUP};
use crate::connection::RedshiftConnection;
use matih_connector_core::{Catalog, DiscoveryRequest};

/// The Redshift driver (`REDSHIFT`, Data API over HTTPS).
#[derive(Debug)]
pub struct RedshiftDriver {
    descriptor: DriverDescriptor,
}

impl RedshiftDriver {
    pub fn new() -> Self {
        let mut metadata_keys = vec![
            Key::optional(
                META_CLUSTER,
                "Provisioned cluster identifier (or workgroupName)",
            ),
            Key::optional(
                META_WORKGROUP,
                "Serverless workgroup name (or clusterIdentifier)",
            ),
            Key::optional(
                META_DB_USER,
                "Database user for temporary credentials (provisioned clusters)",
            ),
            Key::optional(
                META_SECRET_ARN,
                "Secrets Manager secret with the database user and password",
            ),
        ];
        metadata_keys.extend(aws_metadata_keys());
        RedshiftDriver {
            descriptor: DriverDescriptor {
                connector_type: ConnectorType::Redshift,
                display_name: "Amazon Redshift",
                default_port: Some(443),
                credential_keys: vec![
                    Key::required("accessKeyId", "AWS access key id"),
                    Key::required("secretAccessKey", "AWS secret access key"),
                    Key::optional("sessionToken", "Session token of temporary credentials"),
                ],
                metadata_keys,
                capabilities: Capabilities {
                    tls: true,
                    statistics: true,
                    primary_keys: true,
                    comments: true,
                    inferred_fields: false,
                    filter_pushdown: true,
                },
            },
        }
    }
}

impl Default for RedshiftDriver {
    fn default() -> Self {
        RedshiftDriver::new()
    }
}

fn aws_metadata_keys() -> Vec<Key> {
    matih_connector_core::aws::metadata_keys(
        "Data API endpoint URL override (VPC endpoint, proxy, emulator)",
    )
}

#[async_trait]
impl Driver for RedshiftDriver {
    fn descriptor(&self) -> &DriverDescriptor {
        &self.descriptor
    }

    fn prepare(&self, spec: Checked<'_>) -> Result<Box<dyn Prepared>, ConnectorError> {
        Ok(Box::new(RedshiftConfig::parse(
            spec.config(),
            spec.credentials(),
        )?))
    }
}

#[async_trait]
impl Prepared for RedshiftConfig {
    fn endpoint(&self) -> Option<(&str, u16)> {
        Some((&self.aws.host, self.aws.port))
    }

    async fn connect(&self, ctx: &ConnectContext) -> Result<Box<dyn Connection>, ConnectorError> {
        matih_connector_core::tls::install_default_provider();
        Ok(Box::new(
            connection::RedshiftConnection::open(self.clone(), ctx).await?,
        ))
    }
}

// The `Connection` impl lives here, not in `connection`: it calls both
// `connection` and `discovery`, and `discovery` depends on `connection` only.
#[async_trait]
impl Connection for RedshiftConnection {
    async fn server_version(&mut self) -> Result<String, ConnectorError> {
        Ok(discovery::format_version(&self.version))
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
        let d = RedshiftDriver::new();
        assert_eq!(d.descriptor().connector_type, ConnectorType::Redshift);
        let cfg = ConnectionConfig {
            database: Some("dev".into()),
            metadata: serde_json::from_value(
                json!({"region": "ap-south-1", "workgroupName": "wg"}),
            )
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
            Some(("redshift-data.ap-south-1.amazonaws.com", 443))
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
        let d = RedshiftDriver::new();
        let cfg: ConnectionConfig = ConnectionConfig {
            database: Some("dev".into()),
            metadata: serde_json::from_value(
                serde_json::json!({"region": "ap-south-1", "workgroupName": "wg"}),
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
        let rows = common_rejections(&d, &valid);
        assert_rejections(&d, &valid, &rows).await;
    }
}
