//! Oracle Database driver for MATIH connectors: user/password logins to a
//! service name or SID over the `oracle` crate (ODPI-C), and set-based
//! discovery over the `ALL_*` dictionary views (schemas, tables, views,
//! materialized views, columns, primary keys, comments, `NUM_ROWS` and
//! segment sizes where the login may read them).
//!
//! ODPI-C loads the Oracle Client library (`libclntsh`, from Oracle Instant
//! Client) at run time. Without it the driver answers `DRIVER_UNAVAILABLE`
//! naming what to install; it never panics.
//!
//! ```no_run
//! # async fn demo() -> Result<(), matih_connector_core::ConnectorError> {
//! use matih_connector_core::{open, ConnectionConfig, Credentials, DiscoveryRequest, EgressPolicy};
//! let driver = matih_driver_oracle::OracleDriver::new();
//! let cfg = ConnectionConfig {
//!     host: Some("ora.internal".into()),
//!     metadata: serde_json::from_value(serde_json::json!({"serviceName": "FREEPDB1"})).unwrap(),
//!     ..Default::default()
//! };
//! let creds = Credentials::new().with("username", "MATIH_READER").with("password", "…");
//! let mut conn = open(&driver, &cfg, &creds, &EgressPolicy::default()).await?;
//! let catalog = conn.discover(&DiscoveryRequest::default()).await?;
//! println!("{} tables", catalog.table_count());
//! # Ok(()) }
//! ```
//!
//! Mapping, keys, privileges, types and errors: `docs/drivers/oracle.md`.

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

use crate::config::{OracleOptions, META_SERVICE_NAME, META_SID};
use crate::connection::OracleConnection;
use matih_connector_core::ErrorCode;
use matih_connector_core::{Catalog, DiscoveryRequest};

/// The Oracle driver (`ORACLE`, default port 1521).
#[derive(Debug)]
pub struct OracleDriver {
    descriptor: DriverDescriptor,
}

impl OracleDriver {
    pub fn new() -> Self {
        OracleDriver {
            descriptor: DriverDescriptor {
                connector_type: ConnectorType::Oracle,
                display_name: "Oracle Database",
                default_port: Some(config::DEFAULT_PORT),
                credential_keys: vec![
                    Key::required("username", "Database user"),
                    Key::required("password", "The user's password"),
                ],
                metadata_keys: vec![
                    Key::optional(
                        META_SERVICE_NAME,
                        "Service name, e.g. FREEPDB1 or ORCLPDB1 (or give sid, or database)",
                    ),
                    Key::optional(
                        META_SID,
                        "SID of an instance without a service name (legacy)",
                    ),
                ],
                capabilities: Capabilities {
                    tls: false,
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

impl Default for OracleDriver {
    fn default() -> Self {
        OracleDriver::new()
    }
}

#[async_trait]
impl Driver for OracleDriver {
    fn descriptor(&self) -> &DriverDescriptor {
        &self.descriptor
    }

    fn prepare(&self, spec: Checked<'_>) -> Result<Box<dyn Prepared>, ConnectorError> {
        Ok(Box::new(OracleOptions::from_config(
            spec.config(),
            spec.credentials(),
        )?))
    }
}

#[async_trait]
impl Prepared for OracleOptions {
    fn endpoint(&self) -> Option<(&str, u16)> {
        Some((&self.host, self.port))
    }

    async fn connect(&self, ctx: &ConnectContext) -> Result<Box<dyn Connection>, ConnectorError> {
        Ok(Box::new(connection::connect(self.clone(), ctx).await?))
    }
}

// The `Connection` impl lives here, not in `connection`: it calls both
// `connection` and `discovery`, and `discovery` depends on `connection` only.
#[async_trait]
impl Connection for OracleConnection {
    async fn server_version(&mut self) -> Result<String, ConnectorError> {
        let line = self
            .banner
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned();
        if line.is_empty() {
            return Err(ConnectorError::new(
                ErrorCode::ProtocolError,
                "the server reported no version banner",
            ));
        }
        Ok(line)
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
        let conn = self.conn;
        let task = tokio::task::spawn_blocking(move || conn.close());
        let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
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
        let d = OracleDriver::new();
        assert_eq!(d.descriptor().default_port, Some(1521));
        let mut cfg = ConnectionConfig {
            host: Some("db".into()),
            ..Default::default()
        };
        cfg.metadata
            .insert("serviceName".into(), serde_json::json!("FREEPDB1"));
        let good = Credentials::new()
            .with("username", "u")
            .with("password", "p");
        prepare(&d, &cfg, &good).unwrap();
        let bad = good.clone().with("token", "x");
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
        let d = OracleDriver::new();
        let valid = Case::host_user_password().with_cfg(|c| {
            c.metadata =
                serde_json::from_value(serde_json::json!({"serviceName": "FREEPDB1"})).unwrap()
        });
        let mut rows = common_rejections(&d, &valid);
        rows.push(Rejection::invalid(
            "no host",
            valid.with_cfg(|c| c.host = None),
        ));
        assert_rejections(&d, &valid, &rows).await;
    }
}
