//! Kafka driver for MATIH connectors: the cluster as one schema, topics as
//! tables with partitions, replication factor, message counts from
//! watermarks and fields inferred from a bounded sample of JSON messages;
//! SASL PLAIN/SCRAM and TLS through librdkafka.
//!
//! ```no_run
//! # async fn demo() -> Result<(), matih_connector_core::ConnectorError> {
//! use matih_connector_core::{open, ConnectionConfig, Credentials, DiscoveryRequest, EgressPolicy};
//! let driver = matih_driver_kafka::KafkaDriver::new();
//! let mut cfg = ConnectionConfig {
//!     host: Some("kafka-1.internal".into()),
//!     port: Some(9093),
//!     ssl_enabled: Some(true),
//!     ..Default::default()
//! };
//! cfg.metadata.insert("saslMechanism".into(), "SCRAM-SHA-512".into());
//! let creds = Credentials::new().with("username", "reader").with("password", "…");
//! let mut conn = open(&driver, &cfg, &creds, &EgressPolicy::default()).await?;
//! let catalog = conn.discover(&DiscoveryRequest::default()).await?;
//! println!("{} topics", catalog.table_count());
//! # Ok(()) }
//! ```
//!
//! The catalog mapping, keys, type mapping and error codes are described in
//! `docs/drivers/kafka.md`.

mod config;
mod connection;
mod discovery;
mod errors;
mod types;

use matih_connector_core::{
    async_trait, Capabilities, Checked, ConnectContext, Connection, ConnectorError, ConnectorType,
    Driver, DriverDescriptor, Key, Prepared,
};

use crate::config::{
    KafkaOptions, DEFAULT_PORT, META_BOOTSTRAP, META_CLUSTER_NAME, META_SASL_MECHANISM,
};
use crate::connection::KafkaConnection;
use matih_connector_core::{Catalog, DiscoveryRequest};

/// The Kafka driver (`KAFKA`, default port 9092).
#[derive(Debug)]
pub struct KafkaDriver {
    descriptor: DriverDescriptor,
}

impl KafkaDriver {
    pub fn new() -> Self {
        KafkaDriver {
            descriptor: DriverDescriptor {
                connector_type: ConnectorType::Kafka,
                display_name: "Apache Kafka",
                default_port: Some(DEFAULT_PORT),
                credential_keys: vec![
                    Key::optional("username", "SASL user (PLAIN or SCRAM); omit for no SASL"),
                    Key::optional("password", "SASL password"),
                ],
                metadata_keys: vec![
                    Key::optional(
                        META_BOOTSTRAP,
                        "Further bootstrap brokers, \"host:port,…\" or a list",
                    ),
                    Key::optional(
                        META_SASL_MECHANISM,
                        "PLAIN (default), SCRAM-SHA-256 or SCRAM-SHA-512",
                    ),
                    Key::optional(
                        META_CLUSTER_NAME,
                        "Schema name for the cluster (default: the cluster id)",
                    ),
                ],
                capabilities: Capabilities {
                    tls: true,
                    statistics: true,
                    primary_keys: false,
                    comments: false,
                    inferred_fields: true,
                    filter_pushdown: false,
                },
            },
        }
    }
}

impl Default for KafkaDriver {
    fn default() -> Self {
        KafkaDriver::new()
    }
}

#[async_trait]
impl Driver for KafkaDriver {
    fn descriptor(&self) -> &DriverDescriptor {
        &self.descriptor
    }

    fn prepare(&self, spec: Checked<'_>) -> Result<Box<dyn Prepared>, ConnectorError> {
        Ok(Box::new(KafkaOptions::from_config(
            spec.config(),
            spec.credentials(),
        )?))
    }

    fn ssh_tunnel_refusal(&self) -> Option<&'static str> {
        // A tunnel reaches one host:port; the client then dials every
        // broker the cluster advertises, directly.
        Some(
            "after bootstrap the client dials each broker at the address the cluster \
             advertises, which one tunnel to one host:port cannot carry",
        )
    }
}

#[async_trait]
impl Prepared for KafkaOptions {
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
impl Connection for KafkaConnection {
    async fn server_version(&mut self) -> Result<String, ConnectorError> {
        Ok(connection::describe_versions(&self.api_versions().await?))
    }

    async fn probe(&mut self, req: &DiscoveryRequest) -> Result<(), ConnectorError> {
        discovery::probe(self, req).await
    }

    async fn discover(&mut self, req: &DiscoveryRequest) -> Result<Catalog, ConnectorError> {
        discovery::discover(self, req).await
    }

    async fn close(self: Box<Self>) -> Result<(), ConnectorError> {
        // Destroying a librdkafka handle joins its threads: off the async
        // threads, and not waited for beyond the connect timeout.
        let limit = self.opts.connect_timeout;
        let client = self.client;
        let task = tokio::task::spawn_blocking(move || drop(client));
        let _ = tokio::time::timeout(limit, task).await;
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
        let d = KafkaDriver::new();
        assert_eq!(d.descriptor().default_port, Some(9092));
        let mut cfg = ConnectionConfig::default();
        assert_eq!(
            prepare(&d, &cfg, &Credentials::new()).unwrap_err().code(),
            ErrorCode::InvalidConfiguration
        );
        cfg.metadata
            .insert(META_BOOTSTRAP.into(), serde_json::json!("b1:9093"));
        prepare(&d, &cfg, &Credentials::new()).unwrap();
        assert_eq!(
            prepare(&d, &cfg, &Credentials::new()).unwrap().endpoint(),
            Some(("b1", 9093))
        );
        cfg.metadata
            .insert("database".into(), serde_json::json!("x"));
        assert_eq!(
            prepare(&d, &cfg, &Credentials::new()).unwrap_err().code(),
            ErrorCode::InvalidConfiguration
        );
    }

    #[test]
    fn an_ssh_tunnel_is_unsupported_with_the_reason() {
        let d = KafkaDriver::new();
        let mut cfg = ConnectionConfig {
            host: Some("b1".into()),
            ..Default::default()
        };
        cfg.metadata.insert(
            "sshTunnel".into(),
            serde_json::json!({"host": "bastion", "username": "u", "hostKey": "SHA256:x"}),
        );
        let err = prepare(&d, &cfg, &Credentials::new()).unwrap_err();
        assert_eq!(err.code(), ErrorCode::Unsupported);
        assert!(err.message().contains("advertises"), "{}", err.message());
    }

    /// Everything refused before any I/O, by the same checks on every path.
    #[tokio::test]
    async fn rejection_table() {
        use matih_connector_testkit::conformance::{
            assert_rejections, common_rejections, Case, Rejection,
        };
        let d = KafkaDriver::new();
        let cfg: ConnectionConfig = ConnectionConfig {
            metadata: serde_json::from_value(serde_json::json!({"bootstrapServers": "b1:9093"}))
                .unwrap(),
            ..Default::default()
        };
        let valid = Case::new(cfg, Credentials::new());
        let mut rows = common_rejections(&d, &valid);
        rows.push(Rejection::invalid(
            "neither host nor bootstrap servers",
            valid.with_cfg(|c| {
                c.metadata.remove(META_BOOTSTRAP);
            }),
        ));
        assert_rejections(&d, &valid, &rows).await;
    }
}
