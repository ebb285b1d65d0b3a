//! PostgreSQL: the production store, shared by several replicas.

use std::str::FromStr;

use anyhow::Context;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};

use super::SqlStore;

pub(super) async fn open(url: &str) -> anyhow::Result<SqlStore> {
    sqlx::any::install_default_drivers();
    matih_connector_core::tls::install_default_provider();
    let opts = AnyConnectOptions::from_str(url).context("parsing the PostgreSQL URL")?;
    let pool = AnyPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(std::time::Duration::from_secs(10))
        .connect_with(opts)
        .await
        .context("connecting to the PostgreSQL metadata store")?;
    let store = SqlStore::new(pool, "postgres");
    store.migrate().await?;
    Ok(store)
}
