//! Core of MATIH connectors: the driver traits, connection configuration,
//! credentials that never print, the normalized error codes, the catalog model
//! and the step-wise connectivity test.
//!
//! A driver crate implements [`Driver`], [`Prepared`] and [`Connection`];
//! embedders use a [`Registry`], check and parse a connector once with
//! [`prepare`], then run the connectivity test on it ([`run_prepared_test`])
//! or open a connection ([`PreparedConnector::open`]) and discover.
//! ([`run_test`] and [`open`] prepare and go on, for one-off calls.)
//!
//! ```no_run
//! # async fn demo(registry: matih_connector_core::Registry) -> Result<(), matih_connector_core::ConnectorError> {
//! use matih_connector_core::{ConnectorSpec, DiscoveryRequest, EgressPolicy, TestOptions};
//! let spec = ConnectorSpec::from_json(r#"{"type":"POSTGRESQL","host":"db.internal","port":5432,
//!     "database":"sales","credentials":{"username":"reader","password":"…"}}"#)?;
//! let driver = registry.get(&spec.connector_type)?;
//! // Checked and parsed once, no I/O; the test and the connection reuse it.
//! let prepared = matih_connector_core::prepare(&*driver, &spec.config(), &spec.credentials)?;
//! let report = matih_connector_core::run_prepared_test(&prepared, &TestOptions::default()).await;
//! println!("{} {:?}", report.success, report.error_code);
//! let mut conn = prepared.open(&EgressPolicy::default()).await?;
//! let catalog = conn.discover(&DiscoveryRequest::default()).await?;
//! println!("{} tables", catalog.table_count());
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

#[cfg(feature = "aws")]
pub mod aws;
mod catalog;
mod config;
mod credentials;
mod discovery;
mod driver;
mod egress;
mod error;
#[cfg(feature = "google")]
pub mod google;
#[cfg(feature = "http")]
pub mod http;
mod incremental;
mod kind;
pub mod metadata;
mod prepare;
mod runner;
#[cfg(feature = "file-sample")]
pub mod sample;
pub mod ssh;
pub mod tls;

pub use catalog::{
    Catalog, Column, DataType, Interned, Interner, Schema, SharedStr, Table, TableKind,
};
pub use config::{ConnectionConfig, ConnectorSpec, SslMode, Timeouts};
pub use credentials::{redact_secrets, Credentials, SecretString, USER_NAME_KEYS};
pub use discovery::{glob_match, glob_to_like, Depth, DiscoveryRequest, NameFilter};
pub use driver::{
    open, resolve_host, with_timeout, Capabilities, Checked, ConnectContext, Connection, Driver,
    DriverDescriptor, Key, NetStream, Prepared, Registry,
};
pub use egress::{EgressPolicy, EgressProfile, DEFAULT_DENIED, PRODUCTION_DENIED};
pub use error::{find_source, ConnectorError, ErrorCode};
pub use incremental::{stable_hash, CatalogDelta, CatalogFingerprint, RelationName, RelationPrint};
pub use kind::{Category, ConnectorType};
pub use prepare::{check_config, prepare, PreparedConnector};
pub use runner::{run_prepared_test, run_test, Step, StepReport, TestOptions, TestReport};

pub use async_trait::async_trait;
