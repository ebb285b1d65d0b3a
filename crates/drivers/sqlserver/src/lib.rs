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
    async_trait, Capabilities, ConnectContext, Connection, ConnectionConfig, ConnectorError,
    ConnectorType, Credentials, Driver, DriverDescriptor, Key,
};

use crate::config::{SqlServerOptions, META_APPLICATION_NAME, META_INSTANCE};

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
                default_port: Some(1433),
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

    fn validate(&self, cfg: &ConnectionConfig, creds: &Credentials) -> Result<(), ConnectorError> {
        self.descriptor.check_credential_keys(creds)?;
        self.descriptor.check_metadata_keys(&cfg.metadata)?;
        cfg.validate_common()?;
        SqlServerOptions::from_config(cfg, creds).map(|_| ())
    }

    async fn connect(
        &self,
        cfg: &ConnectionConfig,
        creds: &Credentials,
        ctx: &ConnectContext,
    ) -> Result<Box<dyn Connection>, ConnectorError> {
        // tiberius builds its own rustls config from the process default.
        matih_connector_core::tls::install_default_provider();
        let opts = SqlServerOptions::from_config(cfg, creds)?;
        let conn = connection::connect(&opts, ctx).await?;
        Ok(Box::new(conn))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use matih_connector_core::ErrorCode;

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
        d.validate(&cfg, &good).unwrap();
        let bad = good.clone().with("token", "x");
        assert_eq!(
            d.validate(&cfg, &bad).unwrap_err().code(),
            ErrorCode::InvalidConfiguration
        );
        let no_pw = Credentials::new().with("username", "u");
        assert_eq!(
            d.validate(&cfg, &no_pw).unwrap_err().code(),
            ErrorCode::InvalidConfiguration
        );
        let mut cfg2 = cfg.clone();
        cfg2.metadata
            .insert("warehouse".into(), serde_json::json!("x"));
        assert_eq!(
            d.validate(&cfg2, &good).unwrap_err().code(),
            ErrorCode::InvalidConfiguration
        );
    }
}
