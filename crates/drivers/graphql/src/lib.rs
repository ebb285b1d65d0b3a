//! GraphQL driver for MATIH connectors. The endpoint is one schema; its object
//! types, read by one introspection query, are tables and their fields are
//! columns with GraphQL types mapped to normalized ones. Authentication: none,
//! basic, bearer token, API key header, or OAuth2 client credentials.
//!
//! ```no_run
//! # async fn demo() -> Result<(), matih_connector_core::ConnectorError> {
//! use matih_connector_core::{open, ConnectionConfig, Credentials, DiscoveryRequest, EgressPolicy};
//! let driver = matih_driver_graphql::GraphqlDriver::new();
//! let cfg = ConnectionConfig {
//!     host: Some("api.example.com".into()),
//!     metadata: serde_json::from_value(serde_json::json!({"path": "/graphql"})).unwrap(),
//!     ..Default::default()
//! };
//! let creds = Credentials::new().with("token", "…");
//! let mut conn = open(&driver, &cfg, &creds, &EgressPolicy::default()).await?;
//! let catalog = conn.discover(&DiscoveryRequest::default()).await?;
//! println!("{} object types", catalog.table_count());
//! # Ok(()) }
//! ```
//!
//! The catalog mapping, metadata keys, type mapping and error codes are
//! described in `docs/drivers/graphql.md`.

mod config;
mod connection;
mod discovery;
mod errors;
mod types;

use matih_connector_core::{
    async_trait, Capabilities, Checked, ConnectContext, Connection, ConnectorError, ConnectorType,
    Driver, DriverDescriptor, Key, Prepared,
};

use crate::config::GraphqlConfig;
use crate::connection::GraphqlConnection;
use matih_connector_core::{Catalog, DiscoveryRequest};

/// The GraphQL driver (`GRAPHQL`, default port 443, or 80 for plain http).
#[derive(Debug)]
pub struct GraphqlDriver {
    descriptor: DriverDescriptor,
}

impl GraphqlDriver {
    pub fn new() -> Self {
        GraphqlDriver {
            descriptor: DriverDescriptor {
                connector_type: ConnectorType::Graphql,
                display_name: "GraphQL API",
                default_port: Some(443),
                credential_keys: vec![
                    Key::optional("username", "HTTP Basic user name"),
                    Key::optional("password", "HTTP Basic password"),
                    Key::optional("token", "Bearer token (Authorization: Bearer …)"),
                    Key::optional("apiKey", "API key sent in the metadata.apiKeyHeader header"),
                    Key::optional("clientId", "OAuth2 client credentials: client id"),
                    Key::optional("clientSecret", "OAuth2 client credentials: client secret"),
                ],
                metadata_keys: vec![
                    Key::optional("name", "Schema name for the endpoint (default: the host)"),
                    Key::optional(
                        "scheme",
                        "http or https (default https unless TLS is switched off)",
                    ),
                    Key::optional("path", "Path of the GraphQL endpoint (default /graphql)"),
                    Key::optional(
                        "includeRootTypes",
                        "List Query/Mutation/Subscription as tables too (default false)",
                    ),
                    Key::optional("versionHeader", "Response header carrying the API version"),
                    Key::optional(
                        "apiKeyHeader",
                        "Header for credentials.apiKey (default X-API-Key)",
                    ),
                    Key::optional(
                        "tokenUrl",
                        "OAuth2 token endpoint (client credentials grant)",
                    ),
                    Key::optional("scope", "OAuth2 scope to request"),
                    Key::optional(
                        "tokenAuthMethod",
                        "client_secret_basic (default) or client_secret_post",
                    ),
                    Key::optional(
                        "maxResponseBytes",
                        "Cap on one response, introspection included (default 16 MiB)",
                    ),
                ],
                capabilities: Capabilities {
                    tls: true,
                    statistics: false,
                    primary_keys: false,
                    comments: true,
                    inferred_fields: false,
                    filter_pushdown: false,
                },
            }
            // Core's HTTP client carries the tunnel (core's http module).
            .with_ssh_tunnel(),
        }
    }
}

impl Default for GraphqlDriver {
    fn default() -> Self {
        GraphqlDriver::new()
    }
}

#[async_trait]
impl Driver for GraphqlDriver {
    fn descriptor(&self) -> &DriverDescriptor {
        &self.descriptor
    }

    fn prepare(&self, spec: Checked<'_>) -> Result<Box<dyn Prepared>, ConnectorError> {
        Ok(Box::new(GraphqlConfig::parse(
            spec.config(),
            spec.credentials(),
        )?))
    }
}

#[async_trait]
impl Prepared for GraphqlConfig {
    fn endpoint(&self) -> Option<(&str, u16)> {
        Some((&self.host, self.port))
    }

    async fn connect(&self, ctx: &ConnectContext) -> Result<Box<dyn Connection>, ConnectorError> {
        Ok(Box::new(GraphqlConnection::open(self.clone(), ctx).await?))
    }
}

// The `Connection` impl lives here, not in `connection`: it calls both
// `connection` and `discovery`, and `discovery` depends on `connection` only.
#[async_trait]
impl Connection for GraphqlConnection {
    /// GraphQL has no version field: the `versionHeader` of the connect
    /// response, else its `Server` header, else `unknown`.
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
    fn descriptor_and_validation() {
        let d = GraphqlDriver::new();
        assert_eq!(d.descriptor().connector_type, ConnectorType::Graphql);
        let cfg = ConnectionConfig {
            host: Some("api.example.com".into()),
            metadata: serde_json::from_value(json!({"scheme": "http"})).unwrap(),
            ..Default::default()
        };
        prepare(&d, &cfg, &Credentials::new().with("token", "t")).unwrap();
        assert_eq!(
            prepare(&d, &cfg, &Credentials::new().with("token", "t"))
                .unwrap()
                .endpoint(),
            Some(("api.example.com", 80))
        );
        let bad = Credentials::new().with("passwd", "x");
        assert_eq!(
            prepare(&d, &cfg, &bad).unwrap_err().code(),
            ErrorCode::InvalidConfiguration
        );
        let mut cfg2 = cfg.clone();
        cfg2.metadata.insert("endpoints".into(), json!(["/x"]));
        assert_eq!(
            prepare(&d, &cfg2, &Credentials::new()).unwrap_err().code(),
            ErrorCode::InvalidConfiguration
        );
    }

    /// Everything refused before any I/O, by the same checks on every path.
    #[tokio::test]
    async fn rejection_table() {
        use matih_connector_testkit::conformance::{assert_rejections, common_rejections, Case};
        let d = GraphqlDriver::new();
        let cfg: ConnectionConfig = ConnectionConfig {
            host: Some("api.example.com".into()),
            metadata: serde_json::from_value(serde_json::json!({"scheme": "http"})).unwrap(),
            ..Default::default()
        };
        let valid = Case::new(cfg, Credentials::new().with("token", "tok-secret"));
        let rows = common_rejections(&d, &valid);
        assert_rejections(&d, &valid, &rows).await;
    }
}
