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
/// The custom-type driver (feature `external`).
#[cfg(feature = "external")]
pub use matih_driver_external as external;

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

/// A custom connector type registered by [`install_custom_types`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CustomType {
    /// The type's wire name (`FAKER`).
    pub name: String,
    /// The protocol its executable speaks (`airbyte`, `singer`).
    pub protocol: &'static str,
}

/// Registers the operator's custom connector types, one driver each, from
/// TOML documents of `[custom_types.NAME]` tables (the service's
/// configuration, a `--custom-types` file). A type defined twice, a standard
/// type's name or a malformed table is `INVALID_CONFIGURATION`; nothing is
/// registered then. Needs the `external` feature: without it any table is
/// `DRIVER_UNAVAILABLE`.
pub fn install_custom_types(
    registry: &mut Registry,
    sources: &[&str],
) -> Result<Vec<CustomType>, core::ConnectorError> {
    #[cfg(feature = "external")]
    {
        let mut all = matih_driver_external::CustomTypes::new();
        for text in sources {
            all = all.merge(matih_driver_external::CustomTypes::from_toml(text)?)?;
        }
        matih_driver_external::install(registry, &all);
        Ok(all
            .iter()
            .map(|(name, cfg)| CustomType {
                name: name.to_owned(),
                protocol: cfg.protocol.as_str(),
            })
            .collect())
    }
    #[cfg(not(feature = "external"))]
    {
        let _ = registry;
        if sources.iter().any(|s| !s.trim().is_empty()) {
            return Err(core::ConnectorError::new(
                core::ErrorCode::DriverUnavailable,
                "custom connector types are not enabled in this build (Cargo feature `external` of matih-connectors)",
            ));
        }
        Ok(Vec::new())
    }
}

/// The driver names (Cargo features) compiled into this build.
pub fn enabled_drivers() -> Vec<String> {
    registry().types().map(|t| t.driver_name()).collect()
}
