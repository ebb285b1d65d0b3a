//! Microsoft SQL Server driver for MATIH connectors (also Azure SQL Database
//! and Managed Instance): SQL logins over TDS 7.3+ with tiberius, TLS in the
//! four SSL modes through rustls, and set-based catalog discovery over the
//! `sys.*` catalog views (schemas, tables, views, indexed views, columns,
//! primary keys, MS_Description comments, row and size estimates from
//! `sys.partitions` and `sys.allocation_units`) in a fixed number of queries.
//!
//! ```no_run
//! # async fn demo() -> Result<(), matih_connector_core::ConnectorError> {
//! use matih_connector_core::{open, ConnectionConfig, Credentials, DiscoveryRequest, EgressPolicy};
//! let driver = matih_driver_sqlserver::SqlserverDriver::new();
//! let cfg = ConnectionConfig {
//!     host: Some("sql.internal".into()),
//!     database: Some("Sales".into()),
//!     ssl_enabled: Some(true),
//!     ..Default::default()
//! };
//! let creds = Credentials::new().with("username", "matih_reader").with("password", "…");
//! let mut conn = open(&driver, &cfg, &creds, &EgressPolicy::default()).await?;
//! let catalog = conn.discover(&DiscoveryRequest::default()).await?;
//! println!("{} tables", catalog.table_count());
//! # Ok(()) }
//! ```
//!
//! The catalog mapping, TLS modes, privileges, type mapping and error codes
//! are described in `docs/drivers/sqlserver.md`.

mod config;
mod connection;
mod discovery;
mod errors;
mod types;

use matih_connector_core::{
    async_trait, Capabilities, Checked, ConnectContext, Connection, ConnectorError, ConnectorType,
    Driver, DriverDescriptor, Key, Prepared,
};

use std::time::Duration;

use crate::config::{SqlServerOptions, META_APPLICATION_NAME, META_INSTANCE};
use crate::connection::SqlServerConnection;
use crate::errors::parse_error;
use matih_connector_core::ErrorCode;
use matih_connector_core::{Catalog, DiscoveryRequest};

/// The SQL Server driver (`SQLSERVER`, default port 1433).
#[derive(Debug)]
pub struct SqlserverDriver {
    descriptor: DriverDescriptor,
}

impl SqlserverDriver {
    pub fn new() -> Self {
        SqlserverDriver {
            descriptor: DriverDescriptor {
                connector_type: ConnectorType::Sqlserver,
                display_name: "Microsoft SQL Server",
                default_port: Some(config::DEFAULT_PORT),
                credential_keys: vec![
                    Key::required("username", "SQL Server login (SQL authentication)"),
                    Key::required("password", "The login's password"),
                ],
                metadata_keys: vec![
                    Key::optional(
                        META_APPLICATION_NAME,
                        "Application name reported to the server (default matih-connector)",
                    ),
                    Key::optional(
                        META_INSTANCE,
                        "Named instance, informational: the port must be the instance's port (no SQL Browser lookup)",
                    ),
                ],
                capabilities: Capabilities {
                    tls: true,
                    statistics: true,
                    primary_keys: true,
                    comments: true,
                    inferred_fields: false,
                    filter_pushdown: true,
                },
            }
            .with_ssh_tunnel(),
        }
    }
}

impl Default for SqlserverDriver {
    fn default() -> Self {
        SqlserverDriver::new()
    }
}

#[async_trait]
impl Driver for SqlserverDriver {
    fn descriptor(&self) -> &DriverDescriptor {
        &self.descriptor
    }

    fn prepare(&self, spec: Checked<'_>) -> Result<Box<dyn Prepared>, ConnectorError> {
        Ok(Box::new(SqlServerOptions::from_config(
            spec.config(),
            spec.credentials(),
        )?))
    }
}

#[async_trait]
impl Prepared for SqlServerOptions {
    fn endpoint(&self) -> Option<(&str, u16)> {
        Some((&self.host, self.port))
    }

    async fn connect(&self, ctx: &ConnectContext) -> Result<Box<dyn Connection>, ConnectorError> {
        // tiberius builds its own rustls config from the process default.
        matih_connector_core::tls::install_default_provider();
        Ok(Box::new(connection::connect(self, ctx).await?))
    }
}

// The `Connection` impl lives here, not in `connection`: it calls both
// `connection` and `discovery`, and `discovery` depends on `connection` only.
#[async_trait]
impl Connection for SqlServerConnection {
    async fn server_version(&mut self) -> Result<String, ConnectorError> {
        const WHAT: &str = "reading the server version";
        let rows = self.rows(WHAT, discovery::VERSION_SQL, &[]).await?;
        let row = rows.first().ok_or_else(|| {
            ConnectorError::new(
                ErrorCode::ProtocolError,
                "the server returned no version row",
            )
        })?;
        let full: Option<&str> = row.try_get(0).map_err(|e| parse_error(e, WHAT))?;
        let edition: Option<&str> = row.try_get(1).map_err(|e| parse_error(e, WHAT))?;
        Ok(discovery::format_version(full.unwrap_or_default(), edition))
    }

    async fn probe(&mut self, req: &DiscoveryRequest) -> Result<(), ConnectorError> {
        let schema = self.schema.clone();
        discovery::probe(self, req, schema.as_deref()).await
    }

    async fn discover(&mut self, req: &DiscoveryRequest) -> Result<Catalog, ConnectorError> {
        let schema = self.schema.clone();
        discovery::discover(self, req, schema.as_deref()).await
    }

    async fn close(self: Box<Self>) -> Result<(), ConnectorError> {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.client.close()).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use matih_connector_core::ErrorCode;
    use matih_connector_core::{prepare, ConnectionConfig, Credentials};

    #[test]
    fn descriptor_and_validation() {
        let d = SqlserverDriver::new();
        assert_eq!(d.descriptor().default_port, Some(1433));
        assert_eq!(d.descriptor().connector_type, ConnectorType::Sqlserver);
        let cfg = ConnectionConfig {
            host: Some("db".into()),
            ..Default::default()
        };
        let good = Credentials::new()
            .with("username", "u")
            .with("password", "p");
        prepare(&d, &cfg, &good).unwrap();
        let bad = good.clone().with("token", "x");
        assert_eq!(
            prepare(&d, &cfg, &bad).unwrap_err().code(),
            ErrorCode::InvalidConfiguration
        );
        let no_pw = Credentials::new().with("username", "u");
        assert_eq!(
            prepare(&d, &cfg, &no_pw).unwrap_err().code(),
            ErrorCode::InvalidConfiguration
        );
        let mut cfg2 = cfg.clone();
        cfg2.metadata
            .insert("warehouse".into(), serde_json::json!("x"));
        assert_eq!(
            prepare(&d, &cfg2, &good).unwrap_err().code(),
            ErrorCode::InvalidConfiguration
        );
    }

    /// Everything refused before any I/O, by the same checks on every path.
    #[tokio::test]
    async fn rejection_table() {
        use matih_connector_testkit::conformance::{
            assert_rejections, common_rejections, Case, Rejection,
        };
        let d = SqlserverDriver::new();
        let valid = Case::host_user_password();
        let mut rows = common_rejections(&d, &valid);
        rows.push(Rejection::invalid(
            "no host",
            valid.with_cfg(|c| c.host = None),
        ));
        assert_rejections(&d, &valid, &rows).await;
    }
}
