//! BigQuery driver for MATIH connectors, over the BigQuery REST API v2.
//! Each dataset of the configured project is a schema; tables, views,
//! materialized views and external tables are tables, with columns, primary
//! keys, descriptions and row/byte estimates read set-based from
//! INFORMATION_SCHEMA through `jobs.query` (filters as bound query
//! parameters). Authentication: a service account key (exchanged for an
//! access token with the OAuth2 JWT bearer grant), an access token, or none
//! for emulators behind an endpoint override.
//!
//! ```no_run
//! # async fn demo(key_json: String) -> Result<(), matih_connector_core::ConnectorError> {
//! use matih_connector_core::{open, ConnectionConfig, Credentials, DiscoveryRequest, EgressPolicy};
//! let driver = matih_driver_bigquery::BigqueryDriver::new();
//! let cfg = ConnectionConfig {
//!     metadata: serde_json::from_value(serde_json::json!({"project": "acme-analytics", "location": "EU"})).unwrap(),
//!     ..Default::default()
//! };
//! let creds = Credentials::new().with("serviceAccountKey", key_json);
//! let mut conn = open(&driver, &cfg, &creds, &EgressPolicy::default()).await?;
//! let catalog = conn.discover(&DiscoveryRequest::default()).await?;
//! println!("{} tables", catalog.table_count());
//! # Ok(()) }
//! ```
//!
//! The catalog mapping, keys, queries, type mapping and error codes are
//! described in `docs/drivers/bigquery.md`.

mod config;
mod connection;
mod discovery;
mod errors;
mod types;

use matih_connector_core::{
    async_trait, Capabilities, Checked, ConnectContext, Connection, ConnectorError, ConnectorType,
    Driver, DriverDescriptor, Key, Prepared,
};

use crate::config::BqConfig;
use crate::connection::BqConnection;
use matih_connector_core::{Catalog, DiscoveryRequest};

/// The BigQuery driver (`BIGQUERY`).
#[derive(Debug)]
pub struct BigqueryDriver {
    descriptor: DriverDescriptor,
}

impl BigqueryDriver {
    pub fn new() -> Self {
        BigqueryDriver {
            descriptor: DriverDescriptor {
                connector_type: ConnectorType::Bigquery,
                display_name: "Google BigQuery",
                default_port: Some(443),
                credential_keys: vec![
                    Key::optional(
                        "serviceAccountKey",
                        "Service account key JSON (required for bigquery.googleapis.com)",
                    ),
                    Key::optional("accessToken", "An OAuth2 access token, instead of a key"),
                ],
                metadata_keys: vec![
                    Key::required(
                        "project",
                        "Project whose datasets are discovered and where the catalog queries run",
                    ),
                    Key::optional(
                        "location",
                        "Location of the datasets' jobs, e.g. US, EU, europe-west3",
                    ),
                    Key::optional(
                        "endpoint",
                        "Endpoint URL override, e.g. http://127.0.0.1:9050 (or give host/port)",
                    ),
                    Key::optional(
                        "tokenUrl",
                        "Token endpoint override (default: the key's token_uri)",
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
            },
        }
    }
}

impl Default for BigqueryDriver {
    fn default() -> Self {
        BigqueryDriver::new()
    }
}

#[async_trait]
impl Driver for BigqueryDriver {
    fn descriptor(&self) -> &DriverDescriptor {
        &self.descriptor
    }

    fn prepare(&self, spec: Checked<'_>) -> Result<Box<dyn Prepared>, ConnectorError> {
        Ok(Box::new(BqConfig::parse(
            spec.config(),
            spec.credentials(),
        )?))
    }
}

#[async_trait]
impl Prepared for BqConfig {
    fn endpoint(&self) -> Option<(&str, u16)> {
        Some((&self.host, self.port))
    }

    async fn connect(&self, ctx: &ConnectContext) -> Result<Box<dyn Connection>, ConnectorError> {
        Ok(Box::new(
            connection::BqConnection::open(self.clone(), ctx).await?,
        ))
    }
}

// The `Connection` impl lives here, not in `connection`: it calls both
// `connection` and `discovery`, and `discovery` depends on `connection` only.
#[async_trait]
impl Connection for BqConnection {
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
        let d = BigqueryDriver::new();
        assert_eq!(d.descriptor().connector_type, ConnectorType::Bigquery);
        let cfg = ConnectionConfig {
            metadata: serde_json::from_value(
                json!({"project": "p", "endpoint": "http://127.0.0.1:9050"}),
            )
            .unwrap(),
            ..Default::default()
        };
        assert_eq!(
            prepare(&d, &cfg, &Credentials::new()).unwrap().endpoint(),
            Some(("127.0.0.1", 9050))
        );
        prepare(&d, &cfg, &Credentials::new()).unwrap();
        let google = ConnectionConfig {
            metadata: serde_json::from_value(json!({"project": "p"})).unwrap(),
            ..Default::default()
        };
        // Google's own endpoint takes a credential; the endpoint is read from
        // the settings parsed with it.
        let token = Credentials::new().with("accessToken", "ya29.x");
        assert_eq!(
            prepare(&d, &google, &token).unwrap().endpoint(),
            Some(("bigquery.googleapis.com", 443))
        );
        let mut bad = cfg.clone();
        bad.metadata.insert("region".into(), json!("x"));
        assert_eq!(
            prepare(&d, &bad, &Credentials::new()).unwrap_err().code(),
            ErrorCode::InvalidConfiguration
        );
        let mut none = cfg.clone();
        none.metadata.remove("project");
        assert_eq!(
            prepare(&d, &none, &Credentials::new()).unwrap_err().code(),
            ErrorCode::InvalidConfiguration
        );
        let e = prepare(&d, &cfg, &Credentials::new().with("password", "x")).unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidConfiguration);
    }

    /// Everything refused before any I/O, by the same checks on every path.
    #[tokio::test]
    async fn rejection_table() {
        use matih_connector_testkit::conformance::{assert_rejections, common_rejections, Case};
        let d = BigqueryDriver::new();
        let cfg: ConnectionConfig = ConnectionConfig {
            metadata: serde_json::from_value(
                serde_json::json!({"project": "p", "endpoint": "http://127.0.0.1:9050"}),
            )
            .unwrap(),
            ..Default::default()
        };
        let valid = Case::new(cfg, Credentials::new());
        let rows = common_rejections(&d, &valid);
        assert_rejections(&d, &valid, &rows).await;
    }
}
