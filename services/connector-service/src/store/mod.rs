//! The metadata store: tenants, connectors (never credential values), discovery
//! jobs and catalog snapshots. One SQL implementation over `sqlx::Any` serves
//! SQLite (embedded default) and PostgreSQL (production, several replicas); the
//! two differ only in how they open and migrate, in `sqlite.rs` and `postgres.rs`.

mod cache;
mod postgres;
mod sql;
mod sqlite;

use async_trait::async_trait;
use uuid::Uuid;

use crate::model::{Connector, DiscoveryJob, Snapshot, Tenant, Tier};

pub use cache::CachedStore;
pub use sql::SqlStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was broken (tenant slug, connector name).
    #[error("{0}")]
    Conflict(String),
    #[error("metadata store: {0}")]
    Database(#[from] sqlx::Error),
    #[error("metadata store holds an unreadable row: {0}")]
    Corrupt(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// A reservation reconciliation deleted because its lease ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiredReservation {
    pub tenant: Uuid,
    /// The TESTING row it named, deleted with it.
    pub connector: Option<Uuid>,
    /// The secret (`namespace/name`) its create was writing, when nothing
    /// can reference it: the reservation named no row, or its TESTING row
    /// was deleted with it.
    pub secret_name: Option<String>,
}

#[async_trait]
pub trait MetadataStore: Send + Sync + 'static {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;
    async fn ping(&self) -> Result<()>;

    async fn create_tenant(&self, t: &Tenant) -> Result<()>;
    async fn get_tenant(&self, id: Uuid) -> Result<Option<Tenant>>;
    async fn list_tenants(&self) -> Result<Vec<Tenant>>;
    async fn set_tier(&self, id: Uuid, tier: Tier, updated_at: &str) -> Result<Option<Tenant>>;

    /// Sets the slot count outright (tests; reconciliation uses `recount_slots`).
    async fn set_slots(&self, tenant: Uuid, count: i64) -> Result<()>;

    /// Takes a plan slot for a create in flight, as reservation `reservation`
    /// leased until `lease_until`: under the tenant's lock, counts connector
    /// rows plus live reservations, refuses at `limit` (`None`: unlimited),
    /// and stores the recomputed count. False when the plan is full.
    async fn reserve_create(
        &self,
        tenant: Uuid,
        limit: Option<i64>,
        reservation: Uuid,
        now: &str,
        lease_until: &str,
    ) -> Result<bool>;
    /// Extends a reservation's lease and records the secret its create writes
    /// (`namespace/name`); false when the reservation is gone.
    async fn renew_reservation(
        &self,
        reservation: Uuid,
        secret_name: Option<&str>,
        lease_until: &str,
    ) -> Result<bool>;
    /// Inserts the connector's row (status TESTING) and names it on the
    /// reservation, in one transaction; the reservation stays, still renewed,
    /// until `finish_reserved_connector` or `release_reservation`. False
    /// (nothing saved) when the reservation is gone or already names a row.
    async fn insert_reserved_connector(&self, c: &Connector, reservation: Uuid) -> Result<bool>;
    /// Saves the create's outcome on its row and ends the reservation naming
    /// it, in one transaction; false (nothing saved) when either is gone.
    async fn finish_reserved_connector(&self, c: &Connector, reservation: Uuid) -> Result<bool>;
    /// Drops a reservation whose create failed and recounts the tenant.
    async fn release_reservation(&self, tenant: Uuid, reservation: Uuid, now: &str) -> Result<()>;
    /// Recomputes the tenant's count (rows + live reservations naming no row)
    /// under its lock;
    /// returns the count before and after.
    async fn recount_slots(&self, tenant: Uuid, now: &str) -> Result<(i64, i64)>;
    /// The secrets (`namespace/name`) live reservations of the tenant write.
    async fn reserved_secrets(&self, tenant: Uuid, now: &str) -> Result<Vec<String>>;
    /// Deletes reservations whose lease ended (their process died), with the
    /// TESTING rows they name, in one transaction.
    async fn delete_expired_reservations(&self, now: &str) -> Result<Vec<ExpiredReservation>>;

    async fn insert_connector(&self, c: &Connector) -> Result<()>;
    async fn get_connector(&self, tenant: Uuid, id: Uuid) -> Result<Option<Connector>>;
    async fn list_connectors(&self, tenant: Uuid) -> Result<Vec<Connector>>;
    async fn connector_name_taken(&self, tenant: Uuid, name: &str) -> Result<bool>;
    /// Writes every mutable field; false when the row is gone.
    async fn update_connector(&self, c: &Connector) -> Result<bool>;
    /// Deletes the row (with its jobs and snapshots) and frees its slot.
    async fn delete_connector(&self, tenant: Uuid, id: Uuid) -> Result<bool>;

    async fn insert_job(&self, job: &DiscoveryJob) -> Result<()>;
    async fn finish_job(&self, job: &DiscoveryJob) -> Result<()>;
    async fn latest_job(&self, connector: Uuid) -> Result<Option<DiscoveryJob>>;

    /// Stores a snapshot and keeps only the newest `keep` for the connector.
    async fn insert_snapshot(&self, s: &Snapshot, keep: i64) -> Result<()>;
    /// The newest `n` snapshots, newest first.
    async fn latest_snapshots(&self, connector: Uuid, n: i64) -> Result<Vec<Snapshot>>;

    /// The SQL pool under the store, for modules that keep their own tables
    /// (health checks, the notification outbox).
    fn sql_pool(&self) -> Option<sqlx::AnyPool> {
        None
    }
    /// Drops any cached copy of a connector another module wrote directly.
    fn forget_connector(&self, _id: Uuid) {}
}

/// Opens the store a URL names and applies the migrations. The SQLite file
/// belongs to this process alone, so its connectors are cached in memory.
pub async fn open(url: &str) -> anyhow::Result<std::sync::Arc<dyn MetadataStore>> {
    if url.starts_with("sqlite:") {
        Ok(std::sync::Arc::new(CachedStore::new(
            sqlite::open(url).await?,
        )))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(std::sync::Arc::new(postgres::open(url).await?))
    } else {
        anyhow::bail!("unsupported database URL scheme: expected sqlite:// or postgres://")
    }
}

/// Opens the SQL store a URL names, without a cache.
pub async fn open_uncached(url: &str) -> anyhow::Result<SqlStore> {
    if url.starts_with("sqlite:") {
        sqlite::open(url).await
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        postgres::open(url).await
    } else {
        anyhow::bail!("unsupported database URL scheme: expected sqlite:// or postgres://")
    }
}
