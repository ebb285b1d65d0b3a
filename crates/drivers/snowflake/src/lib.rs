//! Snowflake driver for MATIH connectors. Speaks Snowflake's REST protocol
//! (the one its own connectors use) through the core HTTP client, so the configured host is
//! honoured — account URLs, private link, proxies and emulators alike — and
//! TLS uses the core's verified configuration. Logs in with a password or a
//! key pair (RS256 JWT), and discovers the configured database from its
//! INFORMATION_SCHEMA and `SHOW PRIMARY KEYS`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), matih_connector_core::ConnectorError> {
//! use matih_connector_core::{open, ConnectionConfig, Credentials, DiscoveryRequest, EgressPolicy};
//! let driver = matih_driver_snowflake::SnowflakeDriver::new();
//! let cfg = ConnectionConfig {
//!     host: Some("acme.snowflakecomputing.com".into()),
//!     database: Some("ANALYTICS".into()),
//!     metadata: serde_json::from_value(serde_json::json!({"account": "acme"})).unwrap(),
//!     ..Default::default()
//! };
//! let creds = Credentials::new()
//!     .with("username", "matih_reader")
//!     .with("password", "…")
//!     .with("warehouse", "COMPUTE_WH")
//!     .with("role", "MATIH_READER");
//! let mut conn = open(&driver, &cfg, &creds, &EgressPolicy::default()).await?;
//! let catalog = conn.discover(&DiscoveryRequest::default()).await?;
//! println!("{} tables", catalog.table_count());
//! # Ok(()) }
//! ```
//!
//! Catalog mapping, keys, types and error codes: `docs/drivers/snowflake.md`.

mod config;
mod connection;
mod discovery;
mod errors;
mod types;

use matih_connector_core::{
    async_trait, Capabilities, Checked, ConnectContext, Connection, ConnectorError, ConnectorType,
    Driver, DriverDescriptor, Key, Prepared,
};

use crate::config::SnowflakeConfig;
use crate::connection::SnowflakeConnection;
use matih_connector_core::{Catalog, DiscoveryRequest};

/// The Snowflake driver (`SNOWFLAKE`, port 443).
#[derive(Debug)]
pub struct SnowflakeDriver {
    descriptor: DriverDescriptor,
}

impl SnowflakeDriver {
    pub fn new() -> Self {
        SnowflakeDriver {
            descriptor: DriverDescriptor {
                connector_type: ConnectorType::Snowflake,
                display_name: "Snowflake",
                default_port: Some(443),
                credential_keys: vec![
                    Key::required("username", "Login name"),
                    Key::optional("password", "Password (or privateKey)"),
                    Key::optional("privateKey", "PEM RSA private key (PKCS#8, encrypted PKCS#8, or PKCS#1) for key-pair authentication"),
                    Key::optional("privateKeyPassphrase", "Passphrase of an encrypted PKCS#8 privateKey (PBES2, AES-CBC)"),
                    Key::optional("warehouse", "Warehouse for the session (also accepted in metadata)"),
                    Key::optional("role", "Role for the session (also accepted in metadata)"),
                ],
                metadata_keys: vec![
                    Key::optional("account", "Account identifier (xy12345, xy12345.us-east-1, myorg-myaccount); required unless the host is <account>.snowflakecomputing.com"),
                    Key::optional("region", "Region of a bare account locator (us-east-2.aws), used when host is absent"),
                    Key::optional("warehouse", "Warehouse for the session"),
                    Key::optional("role", "Role for the session"),
                    Key::optional("endpoint", "Full URL overriding host, port and scheme (private link, proxy, emulator)"),
                    Key::optional("maxResponseBytes", "Cap on one result body (default 64 MiB)"),
                ],
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

impl Default for SnowflakeDriver {
    fn default() -> Self {
        SnowflakeDriver::new()
    }
}

#[async_trait]
impl Driver for SnowflakeDriver {
    fn descriptor(&self) -> &DriverDescriptor {
        &self.descriptor
    }

    fn prepare(&self, spec: Checked<'_>) -> Result<Box<dyn Prepared>, ConnectorError> {
        Ok(Box::new(SnowflakeConfig::parse(
            spec.config(),
            spec.credentials(),
        )?))
    }
}

#[async_trait]
impl Prepared for SnowflakeConfig {
    fn endpoint(&self) -> Option<(&str, u16)> {
        Some((&self.host, self.port))
    }

    async fn connect(&self, ctx: &ConnectContext) -> Result<Box<dyn Connection>, ConnectorError> {
        Ok(Box::new(
            SnowflakeConnection::open(self.clone(), ctx).await?,
        ))
    }
}

// The `Connection` impl lives here, not in `connection`: it calls both
// `connection` and `discovery`, and `discovery` depends on `connection` only.
#[async_trait]
impl Connection for SnowflakeConnection {
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
        let d = SnowflakeDriver::new();
        let cfg: ConnectionConfig = serde_json::from_value(serde_json::json!({
            "host": "acme.snowflakecomputing.com", "database": "ANALYTICS",
            "metadata": {"account": "acme", "region": "us-east-1"}}))
        .unwrap();
        let creds = Credentials::new()
            .with("username", "u")
            .with("password", "p")
            .with("warehouse", "W");
        prepare(&d, &cfg, &creds).unwrap();
        assert_eq!(
            prepare(&d, &cfg, &creds).unwrap().endpoint(),
            Some(("acme.snowflakecomputing.com", 443))
        );
        let bad = creds.clone().with("passwd", "x");
        assert_eq!(
            prepare(&d, &cfg, &bad).unwrap_err().code(),
            ErrorCode::InvalidConfiguration
        );
        let mut cfg2 = cfg.clone();
        cfg2.metadata
            .insert("bucket".into(), serde_json::json!("x"));
        assert_eq!(
            prepare(&d, &cfg2, &creds).unwrap_err().code(),
            ErrorCode::InvalidConfiguration
        );
    }

    /// Everything refused before any I/O, by the same checks on every path.
    #[tokio::test]
    async fn rejection_table() {
        use matih_connector_testkit::conformance::{assert_rejections, common_rejections, Case};
        let d = SnowflakeDriver::new();
        let cfg: ConnectionConfig = serde_json::from_value(serde_json::json!({
            "host": "acme.snowflakecomputing.com", "database": "ANALYTICS",
            "metadata": {"account": "acme", "region": "us-east-1"}}))
        .unwrap();
        let valid = Case::new(
            cfg,
            Credentials::new()
                .with("username", "u")
                .with("password", "pw-secret")
                .with("warehouse", "W"),
        );
        let rows = common_rejections(&d, &valid);
        assert_rejections(&d, &valid, &rows).await;
    }
}
