//! MongoDB driver for MATIH connectors: SCRAM authentication from a connection
//! string or host/port/user/password/authSource, TLS in the four modes, and
//! discovery of databases (schemas), collections and views (tables) with
//! fields inferred from a bounded `$sample`, estimated document counts and
//! sizes.
//!
//! ```no_run
//! # async fn demo() -> Result<(), matih_connector_core::ConnectorError> {
//! use matih_connector_core::{open, ConnectionConfig, Credentials, DiscoveryRequest, EgressPolicy};
//! let driver = matih_driver_mongodb::MongodbDriver::new();
//! let cfg = ConnectionConfig {
//!     host: Some("mongo.internal".into()),
//!     database: Some("sales".into()),
//!     ssl_enabled: Some(true),
//!     ..Default::default()
//! };
//! let creds = Credentials::new().with("username", "reader").with("password", "…");
//! let mut conn = open(&driver, &cfg, &creds, &EgressPolicy::default()).await?;
//! let catalog = conn.discover(&DiscoveryRequest::default()).await?;
//! println!("{} collections", catalog.table_count());
//! # Ok(()) }
//! ```
//!
//! The catalog mapping, keys, type mapping and error codes are described in
//! `docs/drivers/mongodb.md`.

mod config;
mod connection;
mod discovery;
mod errors;
mod tls_bridge;
mod types;

use matih_connector_core::{
    async_trait, Capabilities, Checked, ConnectContext, Connection, ConnectorError, ConnectorType,
    Driver, DriverDescriptor, Key, Prepared,
};

use crate::config::{
    MongoOptions, CRED_CONNECTION_STRING, DEFAULT_PORT, META_APP_NAME, META_AUTH_MECHANISM,
    META_AUTH_SOURCE,
};
use crate::connection::MongoConnection;
use matih_connector_core::{Catalog, DiscoveryRequest};

/// The MongoDB driver (`MONGODB`, default port 27017).
#[derive(Debug)]
pub struct MongodbDriver {
    descriptor: DriverDescriptor,
}

impl MongodbDriver {
    pub fn new() -> Self {
        MongodbDriver {
            descriptor: DriverDescriptor {
                connector_type: ConnectorType::Mongodb,
                display_name: "MongoDB",
                default_port: Some(DEFAULT_PORT),
                credential_keys: vec![
                    Key::optional("username", "User (SCRAM); omit for a server without authentication"),
                    Key::optional("password", "Password"),
                    Key::optional(
                        CRED_CONNECTION_STRING,
                        "mongodb:// connection string; may hold the user and password (kept secret). host/port and the other keys override it",
                    ),
                ],
                metadata_keys: vec![
                    Key::optional(META_AUTH_SOURCE, "Database holding the user (default: the connection string's, else admin)"),
                    Key::optional(META_AUTH_MECHANISM, "SCRAM-SHA-256 or SCRAM-SHA-1 (default: negotiated)"),
                    Key::optional(META_APP_NAME, "appName reported to the server (default matih-connector)"),
                ],
                capabilities: Capabilities {
                    tls: true,
                    statistics: true,
                    primary_keys: true,
                    comments: false,
                    inferred_fields: true,
                    filter_pushdown: false,
                },
            }
            .with_ssh_tunnel(),
        }
    }
}

impl Default for MongodbDriver {
    fn default() -> Self {
        MongodbDriver::new()
    }
}

#[async_trait]
impl Driver for MongodbDriver {
    fn descriptor(&self) -> &DriverDescriptor {
        &self.descriptor
    }

    fn prepare(&self, spec: Checked<'_>) -> Result<Box<dyn Prepared>, ConnectorError> {
        Ok(Box::new(MongoOptions::from_config(
            spec.config(),
            spec.credentials(),
        )?))
    }
}

#[async_trait]
impl Prepared for MongoOptions {
    fn endpoint(&self) -> Option<(&str, u16)> {
        Some((&self.host, self.port))
    }

    async fn connect(&self, ctx: &ConnectContext) -> Result<Box<dyn Connection>, ConnectorError> {
        matih_connector_core::tls::install_default_provider();
        Ok(Box::new(connection::connect(self, ctx).await?))
    }
}

// The `Connection` impl lives here, not in `connection`: it calls both
// `connection` and `discovery`, and `discovery` depends on `connection` only.
#[async_trait]
impl Connection for MongoConnection {
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
        let d = MongodbDriver::new();
        assert_eq!(d.descriptor().default_port, Some(27017));
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
        let d = MongodbDriver::new();
        let valid = Case::host_user_password();
        let mut rows = common_rejections(&d, &valid);
        rows.push(Rejection::invalid(
            "no host",
            valid.with_cfg(|c| c.host = None),
        ));
        assert_rejections(&d, &valid, &rows).await;
    }
}
