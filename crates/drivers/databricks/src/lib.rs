//! Databricks SQL driver for MATIH connectors. Talks to a workspace over its
//! REST APIs through the core HTTP client: the SQL warehouse API and the Statement Execution
//! API (version), and Unity Catalog (catalog, schemas, tables, columns,
//! primary keys). Authenticates with a personal access token or OAuth
//! machine-to-machine (a service principal's client id and secret).
//!
//! ```no_run
//! # async fn demo() -> Result<(), matih_connector_core::ConnectorError> {
//! use matih_connector_core::{open, ConnectionConfig, Credentials, DiscoveryRequest, EgressPolicy};
//! let driver = matih_driver_databricks::DatabricksDriver::new();
//! let cfg = ConnectionConfig {
//!     host: Some("adb-1234567890.1.azuredatabricks.net".into()),
//!     metadata: serde_json::from_value(serde_json::json!({
//!         "httpPath": "/sql/1.0/warehouses/abc123def456", "catalog": "main"
//!     })).unwrap(),
//!     ..Default::default()
//! };
//! let creds = Credentials::new().with("token", "dapi…");
//! let mut conn = open(&driver, &cfg, &creds, &EgressPolicy::default()).await?;
//! let catalog = conn.discover(&DiscoveryRequest::default()).await?;
//! println!("{} tables", catalog.table_count());
//! # Ok(()) }
//! ```
//!
//! Catalog mapping, keys, types and error codes: `docs/drivers/databricks.md`.

mod config;
mod connection;
mod discovery;
mod errors;
mod types;

use matih_connector_core::{
    async_trait, Capabilities, Checked, ConnectContext, Connection, ConnectorError, ConnectorType,
    Driver, DriverDescriptor, Key, Prepared,
};

use crate::config::DatabricksConfig;
use crate::connection::DatabricksConnection;
use matih_connector_core::{Catalog, DiscoveryRequest};

/// The Databricks SQL driver (`DATABRICKS`, port 443).
#[derive(Debug)]
pub struct DatabricksDriver {
    descriptor: DriverDescriptor,
}

impl DatabricksDriver {
    pub fn new() -> Self {
        DatabricksDriver {
            descriptor: DriverDescriptor {
                connector_type: ConnectorType::Databricks,
                display_name: "Databricks SQL",
                default_port: Some(443),
                credential_keys: vec![
                    Key::optional(
                        "token",
                        "Personal access token (or clientId + clientSecret)",
                    ),
                    Key::optional(
                        "clientId",
                        "OAuth machine-to-machine: service principal application id",
                    ),
                    Key::optional(
                        "clientSecret",
                        "OAuth machine-to-machine: service principal secret",
                    ),
                ],
                metadata_keys: vec![
                    Key::optional("warehouseId", "SQL warehouse id (or httpPath)"),
                    Key::optional(
                        "httpPath",
                        "The warehouse's HTTP path, /sql/1.0/warehouses/<id>",
                    ),
                    Key::optional("catalog", "Unity Catalog catalog to discover (or database)"),
                    Key::optional(
                        "endpoint",
                        "Full workspace URL overriding host, port and scheme",
                    ),
                    Key::optional("maxResponseBytes", "Cap on one API answer (default 32 MiB)"),
                ],
                capabilities: Capabilities {
                    tls: true,
                    statistics: true,
                    primary_keys: true,
                    comments: true,
                    inferred_fields: false,
                    filter_pushdown: false,
                },
            },
        }
    }
}

impl Default for DatabricksDriver {
    fn default() -> Self {
        DatabricksDriver::new()
    }
}

#[async_trait]
impl Driver for DatabricksDriver {
    fn descriptor(&self) -> &DriverDescriptor {
        &self.descriptor
    }

    fn prepare(&self, spec: Checked<'_>) -> Result<Box<dyn Prepared>, ConnectorError> {
        Ok(Box::new(DatabricksConfig::parse(
            spec.config(),
            spec.credentials(),
        )?))
    }
}

#[async_trait]
impl Prepared for DatabricksConfig {
    fn endpoint(&self) -> Option<(&str, u16)> {
        Some((&self.host, self.port))
    }

    async fn connect(&self, ctx: &ConnectContext) -> Result<Box<dyn Connection>, ConnectorError> {
        Ok(Box::new(
            DatabricksConnection::open(self.clone(), ctx).await?,
        ))
    }
}

// The `Connection` impl lives here, not in `connection`: it calls both
// `connection` and `discovery`, and `discovery` depends on `connection` only.
#[async_trait]
impl Connection for DatabricksConnection {
    async fn server_version(&mut self) -> Result<String, ConnectorError> {
        self.version_text().await
    }

    async fn probe(&mut self, req: &DiscoveryRequest) -> Result<(), ConnectorError> {
        discovery::probe(self, req).await
    }

    async fn discover(&mut self, req: &DiscoveryRequest) -> Result<Catalog, ConnectorError> {
        discovery::discover(self, req).await
    }

    async fn close(self: Box<Self>) -> Result<(), ConnectorError> {
        self.end_session().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use matih_connector_core::ErrorCode;
    use matih_connector_core::{prepare, ConnectionConfig, Credentials};

    #[test]
    fn descriptor_and_validation() {
        let d = DatabricksDriver::new();
        let cfg: ConnectionConfig = serde_json::from_value(serde_json::json!({
            "host": "https://adb-1.2.azuredatabricks.net/",
            "metadata": {"httpPath": "/sql/1.0/warehouses/abc", "catalog": "main"}}))
        .unwrap();
        let creds = Credentials::new().with("token", "dapi1");
        // A pasted workspace URL is not a host; metadata.endpoint takes URLs.
        assert_eq!(
            prepare(&d, &cfg, &creds).unwrap_err().code(),
            ErrorCode::InvalidConfiguration
        );
        let cfg: ConnectionConfig = serde_json::from_value(serde_json::json!({
            "host": "adb-1.2.azuredatabricks.net",
            "metadata": {"httpPath": "/sql/1.0/warehouses/abc", "catalog": "main"}}))
        .unwrap();
        prepare(&d, &cfg, &creds).unwrap();
        assert_eq!(
            prepare(&d, &cfg, &creds).unwrap().endpoint(),
            Some(("adb-1.2.azuredatabricks.net", 443))
        );
        let bad = creds.clone().with("password", "x");
        assert_eq!(
            prepare(&d, &cfg, &bad).unwrap_err().code(),
            ErrorCode::InvalidConfiguration
        );
    }

    /// Everything refused before any I/O, by the same checks on every path.
    #[tokio::test]
    async fn rejection_table() {
        use matih_connector_testkit::conformance::{
            assert_rejections, common_rejections, Case, Rejection,
        };
        let d = DatabricksDriver::new();
        let cfg: ConnectionConfig = serde_json::from_value(serde_json::json!({
            "host": "adb-1.2.azuredatabricks.net",
            "metadata": {"httpPath": "/sql/1.0/warehouses/abc", "catalog": "main"}}))
        .unwrap();
        let valid = Case::new(cfg, Credentials::new().with("token", "dapi-secret"));
        let mut rows = common_rejections(&d, &valid);
        rows.push(Rejection::invalid(
            "a workspace URL pasted as the host",
            valid.with_cfg(|c| c.host = Some("https://adb-1.2.azuredatabricks.net/".into())),
        ));
        assert_rejections(&d, &valid, &rows).await;
    }
}
