//! MATIH connector service: the seed's REST API over the connector drivers, with
//! tenants and plan limits, credentials in a secret store (never in the
//! metadata database), step-wise connectivity tests and persisted discovery.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let config = matih_connector_service::config::Config::load(None)?;
//! let state = matih_connector_service::app::AppState::from_config(&config).await?;
//! let listener = tokio::net::TcpListener::bind(&config.listen).await?;
//! axum::serve(listener, matih_connector_service::app::app(state)).await?;
//! # Ok(()) }
//! ```

pub mod api;
pub mod app;
pub mod auth;
pub mod config;
pub mod connection_test;
pub mod diff;
pub mod discovery;
pub mod error;
pub mod health;
pub mod layer;
pub mod limits;
pub mod malloc;
pub mod metrics;
pub mod model;
pub mod openapi;
pub mod reconcile;
pub mod secrets;
pub mod server;
pub mod slots;
pub mod snapshot;
pub mod store;
