//! MySQL and MariaDB driver for MATIH connectors.
//!
//! Connects with [`mysql_async`] over TCP (TLS in the `disable`, `require`,
//! `verify-ca` and `verify-full` modes), reports `SELECT VERSION()`, and
//! discovers the catalog with a fixed number of plain `information_schema`
//! queries. A MySQL database is a catalog schema; the configured `database` is
//! the one the session connects to, and discovery lists every database the
//! user can see.
//!
//! ```no_run
//! # async fn demo() -> Result<(), matih_connector_core::ConnectorError> {
//! use matih_connector_core::{run_test, ConnectionConfig, Credentials, TestOptions};
//! let driver = matih_driver_mysql::MysqlDriver::new();
//! let cfg = ConnectionConfig {
//!     host: Some("db.internal".into()),
//!     port: Some(3306),
//!     database: Some("shop".into()),
//!     ..Default::default()
//! };
//! let creds = Credentials::new().with("username", "reader").with("password", "…");
//! let report = run_test(&driver, &cfg, &creds, &TestOptions::default()).await;
//! println!("{} {:?}", report.success, report.server_version);
//! # Ok(()) }
//! ```
//!
//! See `docs/drivers/mysql.md` for the type mapping, TLS modes, error mapping
//! and the privileges discovery needs.

mod config;
mod connection;
mod discovery;
mod errors;
mod types;

use async_trait::async_trait;
use matih_connector_core::{
    Capabilities, Checked, ConnectContext, Connection, ConnectorError, ConnectorType, Driver,
    DriverDescriptor, Key, Prepared,
};

use crate::config::{MysqlOptions, CRED_PASSWORD, CRED_USERNAME, DEFAULT_PORT};
use crate::connection::MysqlConnection;
use matih_connector_core::{Catalog, CatalogDelta, CatalogFingerprint, DiscoveryRequest};

/// The MySQL / MariaDB driver (`MYSQL`).
#[derive(Debug)]
pub struct MysqlDriver {
    descriptor: DriverDescriptor,
}

impl MysqlDriver {
    pub fn new() -> Self {
        MysqlDriver {
            descriptor: DriverDescriptor {
                connector_type: ConnectorType::Mysql,
                display_name: "MySQL / MariaDB",
                default_port: Some(DEFAULT_PORT),
                credential_keys: vec![
                    Key::required(CRED_USERNAME, "User name to log in with"),
                    Key::optional(
                        CRED_PASSWORD,
                        "Password (mysql_native_password or caching_sha2_password)",
                    ),
                ],
                metadata_keys: Vec::new(),
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

impl Default for MysqlDriver {
    fn default() -> Self {
        MysqlDriver::new()
    }
}

#[async_trait]
impl Driver for MysqlDriver {
    fn descriptor(&self) -> &DriverDescriptor {
        &self.descriptor
    }

    fn prepare(&self, spec: Checked<'_>) -> Result<Box<dyn Prepared>, ConnectorError> {
        Ok(Box::new(MysqlOptions::new(
            spec.config(),
            spec.credentials(),
        )?))
    }
}

#[async_trait]
impl Prepared for MysqlOptions {
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
impl Connection for MysqlConnection {
    async fn server_version(&mut self) -> Result<String, ConnectorError> {
        self.version().await
    }

    async fn probe(&mut self, req: &DiscoveryRequest) -> Result<(), ConnectorError> {
        discovery::probe(self, req).await
    }

    async fn discover(&mut self, req: &DiscoveryRequest) -> Result<Catalog, ConnectorError> {
        discovery::discover(self, req).await
    }

    async fn discover_changed(
        &mut self,
        req: &DiscoveryRequest,
        previous: Option<&CatalogFingerprint>,
    ) -> Result<CatalogDelta, ConnectorError> {
        discovery::discover_changed(self, req, previous).await
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
        let d = MysqlDriver::default();
        assert_eq!(d.descriptor().connector_type, ConnectorType::Mysql);
        assert_eq!(d.descriptor().default_port, Some(3306));
        let cfg = ConnectionConfig {
            host: Some("db".into()),
            ..Default::default()
        };
        let creds = Credentials::new()
            .with("username", "u")
            .with("password", "p");
        prepare(&d, &cfg, &creds).unwrap();
        assert_eq!(
            prepare(&d, &cfg, &creds).unwrap().endpoint(),
            Some(("db", 3306))
        );

        let err = prepare(&d, &cfg, &creds.clone().with("token", "x")).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidConfiguration);
        let err = prepare(&d, &ConnectionConfig::default(), &creds).unwrap_err();
        assert_eq!(err.context_value("field"), Some("host"));
        let mut with_meta = cfg.clone();
        with_meta.metadata.insert("warehouse".into(), "x".into());
        assert!(prepare(&d, &with_meta, &creds).is_err());
    }

    /// Everything refused before any I/O, by the same checks on every path.
    #[tokio::test]
    async fn rejection_table() {
        use matih_connector_testkit::conformance::{
            assert_rejections, common_rejections, Case, Rejection,
        };
        let d = MysqlDriver::default();
        let valid = Case::host_user_password();
        let mut rows = common_rejections(&d, &valid);
        rows.push(Rejection::invalid(
            "no host",
            valid.with_cfg(|c| c.host = None),
        ));
        assert_rejections(&d, &valid, &rows).await;
    }
}
