//! MATIH connector drivers behind one Cargo feature each.
//!
//! Enable the drivers you need (`postgres`, `mysql`, … or `all`) and get a
//! [`Registry`] holding every compiled one. A type whose driver is compiled out
//! answers `DRIVER_UNAVAILABLE` with "driver `x` is not enabled in this build".
//!
//! ```no_run
//! # async fn demo() -> Result<(), matih_connectors::core::ConnectorError> {
//! use matih_connectors::core::{run_test, ConnectorSpec, TestOptions};
//! let registry = matih_connectors::registry();
//! let spec = ConnectorSpec::from_json(r#"{"type":"POSTGRESQL","host":"127.0.0.1","port":5432,
//!     "database":"postgres","credentials":{"username":"postgres","password":"x"}}"#)?;
//! let driver = registry.get(&spec.connector_type)?;
//! let report = run_test(&*driver, &spec.config(), &spec.credentials, &TestOptions::default()).await;
//! assert!(report.success || report.error_code.is_some());
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

use std::sync::Arc;

pub use matih_connector_core as core;
pub use matih_connector_core::Registry;

/// A registry with every driver compiled into this build.
pub fn registry() -> Registry {
    let mut r = Registry::new();
    install_default_drivers(&mut r);
    r
}

/// Registers every driver compiled into this build, one line per feature.
pub fn install_default_drivers(registry: &mut Registry) {
    #[cfg(feature = "postgres")]
    registry.register(Arc::new(matih_driver_postgres::PostgresDriver::new()));
    #[cfg(feature = "mysql")]
    registry.register(Arc::new(matih_driver_mysql::MysqlDriver::new()));
    #[cfg(feature = "rest")]
    registry.register(Arc::new(matih_driver_rest::RestDriver::new()));
    #[cfg(feature = "graphql")]
    registry.register(Arc::new(matih_driver_graphql::GraphqlDriver::new()));
    #[cfg(feature = "s3")]
    registry.register(Arc::new(matih_driver_s3::S3Driver::new()));
    #[cfg(feature = "dynamodb")]
    registry.register(Arc::new(matih_driver_dynamodb::DynamodbDriver::new()));
    #[cfg(feature = "gcs")]
    registry.register(Arc::new(matih_driver_gcs::GcsDriver::new()));
    #[cfg(feature = "azure-blob")]
    registry.register(Arc::new(matih_driver_azure_blob::AzureBlobDriver::new()));
    #[cfg(feature = "snowflake")]
    registry.register(Arc::new(matih_driver_snowflake::SnowflakeDriver::new()));
    #[cfg(feature = "databricks")]
    registry.register(Arc::new(matih_driver_databricks::DatabricksDriver::new()));
    #[cfg(feature = "sqlserver")]
    registry.register(Arc::new(matih_driver_sqlserver::SqlserverDriver::new()));
    #[cfg(feature = "oracle")]
    registry.register(Arc::new(matih_driver_oracle::OracleDriver::new()));
    #[cfg(feature = "redshift")]
    registry.register(Arc::new(matih_driver_redshift::RedshiftDriver::new()));
    #[cfg(feature = "bigquery")]
    registry.register(Arc::new(matih_driver_bigquery::BigqueryDriver::new()));
    #[cfg(feature = "kafka")]
    registry.register(Arc::new(matih_driver_kafka::KafkaDriver::new()));
    #[cfg(feature = "mongodb")]
    registry.register(Arc::new(matih_driver_mongodb::MongodbDriver::new()));
    let _ = (registry, Arc::<()>::new(()));
}

/// The driver names (Cargo features) compiled into this build.
pub fn enabled_drivers() -> Vec<String> {
    registry().types().map(|t| t.driver_name()).collect()
}
