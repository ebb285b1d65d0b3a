//! PostgreSQL driver for MATIH connectors: TLS in the four libpq modes, SCRAM
//! or password authentication, and set-based catalog discovery (schemas,
//! tables, views, materialized views, partitioned and foreign tables, columns,
//! primary keys, row and size estimates) in a fixed number of catalog queries.
//!
//! ```no_run
//! # async fn demo() -> Result<(), matih_connector_core::ConnectorError> {
//! use matih_connector_core::{open, ConnectionConfig, Credentials, DiscoveryRequest, EgressPolicy};
//! let driver = matih_driver_postgres::PostgresDriver::new();
//! let cfg = ConnectionConfig {
//!     host: Some("db.internal".into()),
//!     database: Some("sales".into()),
//!     ssl_enabled: Some(true),
//!     ..Default::default()
//! };
//! let creds = Credentials::new().with("username", "reader").with("password", "…");
//! let mut conn = open(&driver, &cfg, &creds, &EgressPolicy::default()).await?;
//! let catalog = conn.discover(&DiscoveryRequest::default()).await?;
//! println!("{} tables", catalog.table_count());
//! # Ok(()) }
//! ```
//!
//! The catalog mapping, privileges, type mapping and error codes are described
//! in `docs/drivers/postgres.md`.

mod config;
mod connection;
mod discovery;
mod errors;
mod types;

use matih_connector_core::{
    async_trait, Capabilities, Checked, ConnectContext, Connection, ConnectorError, ConnectorType,
    Driver, DriverDescriptor, Key, Prepared,
};

use crate::config::{PgOptions, META_APPLICATION_NAME, META_OPTIONS};
use crate::connection::PgConnection;
use matih_connector_core::{Catalog, CatalogDelta, CatalogFingerprint, DiscoveryRequest};

/// The PostgreSQL driver (`POSTGRESQL`, default port 5432).
#[derive(Debug)]
pub struct PostgresDriver {
    descriptor: DriverDescriptor,
}

impl PostgresDriver {
    pub fn new() -> Self {
        PostgresDriver {
            descriptor: DriverDescriptor {
                connector_type: ConnectorType::Postgresql,
                display_name: "PostgreSQL",
                default_port: Some(config::DEFAULT_PORT),
                credential_keys: vec![
                    Key::required("username", "Login role"),
                    Key::optional(
                        "password",
                        "Password (SCRAM-SHA-256, MD5 or cleartext, as the server asks)",
                    ),
                ],
                metadata_keys: vec![
                    Key::optional(
                        META_APPLICATION_NAME,
                        "application_name reported to the server (default matih-connector)",
                    ),
                    Key::optional(
                        META_OPTIONS,
                        "Extra startup options, as libpq's options, e.g. \"-c search_path=app\"",
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

impl Default for PostgresDriver {
    fn default() -> Self {
        PostgresDriver::new()
    }
}

#[async_trait]
impl Driver for PostgresDriver {
    fn descriptor(&self) -> &DriverDescriptor {
        &self.descriptor
    }

    fn prepare(&self, spec: Checked<'_>) -> Result<Box<dyn Prepared>, ConnectorError> {
        let opts = PgOptions::from_config(spec.config(), spec.credentials())?;
        Ok(Box::new(opts))
    }
}

#[async_trait]
impl Prepared for PgOptions {
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
impl Connection for PgConnection {
    async fn server_version(&mut self) -> Result<String, ConnectorError> {
        self.version_text().await
    }

    async fn probe(&mut self, req: &DiscoveryRequest) -> Result<(), ConnectorError> {
        discovery::probe(self, req, self.schema()).await
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
        let d = PostgresDriver::new();
        assert_eq!(d.descriptor().default_port, Some(5432));
        assert_eq!(d.descriptor().connector_type, ConnectorType::Postgresql);
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
        let d = PostgresDriver::new();
        let valid = Case::host_user_password();
        let mut rows = common_rejections(&d, &valid);
        rows.push(Rejection::invalid(
            "a password with NUL",
            valid.with_cred("password", "pw\0secret"),
        ));
        rows.push(Rejection::invalid(
            "an application name over 63 bytes",
            valid.with_cfg(|c| {
                c.metadata
                    .insert(META_APPLICATION_NAME.into(), "a".repeat(64).into());
            }),
        ));
        assert_rejections(&d, &valid, &rows).await;
    }
}
