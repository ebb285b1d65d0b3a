//! The metadata store: tenants, connectors (never credential values), discovery
//! jobs and catalog snapshots. One SQL implementation over `sqlx::Any` serves
//! SQLite (embedded default) and PostgreSQL (production, several replicas); the
//! two differ only in how they open and migrate, in `sqlite.rs` and `postgres.rs`.

mod cache;
mod discovery;
mod health;
mod postgres;
mod sql;
mod sqlite;

use async_trait::async_trait;
use uuid::Uuid;

use crate::model::{
    Connector, ConnectorStatus, DiscoveryJob, HealthCheck, JobOrigin, Snapshot, Tenant, Tier,
};

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
    /// A value could not be turned into its stored form.
    #[error("metadata store cannot write a value: {0}")]
    Unwritable(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// A tenant's connectors, serialized.
#[derive(Clone, Debug)]
pub struct ConnectorsJson {
    pub count: usize,
    /// The JSON array.
    pub json: std::sync::Arc<[u8]>,
}

impl ConnectorsJson {
    pub fn new(list: &[Connector]) -> Result<Self> {
        let json = serde_json::to_vec(list)
            .map_err(|e| StoreError::Unwritable(format!("connector list: {e}")))?;
        Ok(ConnectorsJson {
            count: list.len(),
            json: json.into(),
        })
    }
}

/// One connector in its model's wire shape (the body of `GET` one).
pub fn connector_json(c: &Connector) -> Result<axum::body::Bytes> {
    serde_json::to_vec(c)
        .map(Into::into)
        .map_err(|e| StoreError::Unwritable(format!("connector {}: {e}", c.id)))
}

/// A connector the health scheduler holds a lease on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthLease {
    pub id: Uuid,
    pub tenant_id: Uuid,
}

/// Where a sweep's claims have got to in the claim order (next check due,
/// then id): each claim reads on from the last one's end instead of from the
/// start. The default is the start. Rows behind it that become due again
/// during the sweep (a lease given back or expired) wait for the next sweep.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClaimCursor {
    pub(super) next_at: String,
    pub(super) id: String,
}

/// One finished health check, to be recorded while its lease is held.
#[derive(Clone, Debug)]
pub struct HealthCheckRecord {
    pub connector: HealthLease,
    /// The replica holding the lease.
    pub replica: String,
    pub checked_at: String,
    /// What the check decided (the status rule's answer).
    pub status: ConnectorStatus,
    pub success: bool,
    pub latency_ms: u64,
    pub error_code: Option<String>,
    pub failed_step: Option<String>,
    /// The test's message, at most 1000 characters.
    pub message: String,
    /// When the connector is due again.
    pub next_at: String,
    /// History rows kept per connector.
    pub history_kept: i64,
}

/// What recording a check changed, as seen inside its transaction: the
/// scheduler's notice rule decides from it whether a notice is queued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthTransition {
    /// The status before the check (before TESTING).
    pub previous: Option<String>,
    /// The connector was disabled while the check ran; it stays INACTIVE.
    pub disabled: bool,
    /// The status now stored.
    pub status: ConnectorStatus,
    pub last_success_at: Option<String>,
}

/// A notice to queue in the outbox in the same transaction as the check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewNotice {
    pub id: String,
    pub kind: String,
    pub payload: String,
    /// Queued at most once per connector and key, ever: a later notice with
    /// the same key is dropped (a credential expiring on a given date is
    /// announced once, however many sweeps see it).
    pub once_key: Option<String>,
}

/// Decides, inside `record_health_check`'s transaction, the notices a
/// transition queues.
pub type NoticeRule<'a> = dyn Fn(&HealthTransition) -> Vec<NewNotice> + Send + Sync + 'a;

/// A queued notice leased for one delivery attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeasedNotice {
    pub id: String,
    pub kind: String,
    pub payload: String,
    /// Attempts made before this one.
    pub attempts: i64,
}

/// A connector's recorded health: its last success and recent checks.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HealthHistory {
    pub last_success_at: Option<String>,
    /// Newest first.
    pub checks: Vec<HealthCheck>,
}

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

/// A discovery job to start for a connector, held by `replica` until
/// `lease_until` (renewed while it runs).
#[derive(Clone, Debug)]
pub struct NewJob<'a> {
    pub id: Uuid,
    pub connector: Uuid,
    pub tenant_id: Uuid,
    pub origin: JobOrigin,
    /// The discovery request as JSON (`None`: the default request).
    pub request: Option<&'a str>,
    pub replica: &'a str,
    pub now: &'a str,
    pub lease_until: &'a str,
}

/// A RUNNING job this replica now holds, with what it needs to run it.
#[derive(Clone, Debug)]
pub struct ClaimedJob {
    pub job: DiscoveryJob,
    pub tenant_id: Uuid,
    /// The request the job was started with, as JSON (`None`: the default).
    pub request: Option<String>,
}

/// What starting a discovery job did.
#[derive(Clone, Debug)]
pub enum JobStart {
    /// A new job, held by the caller.
    Started(ClaimedJob),
    /// The connector's RUNNING job whose holder's lease had ended, now held
    /// by the caller, to be run again with its own request.
    TakenOver(ClaimedJob),
    /// The connector's RUNNING job, held by a live replica (perhaps this one).
    Running(DiscoveryJob),
}

/// The scheduled re-discovery claim: up to `n` connectors not INACTIVE, not
/// a create in flight, with a non-zero interval (theirs, or the default),
/// due at `now`; each gets a job held by `replica` (unless one is running)
/// and its next due instant `next_at(interval)`.
pub struct ScheduleClaim<'a> {
    pub replica: &'a str,
    pub n: i64,
    pub now: &'a str,
    pub lease_until: &'a str,
    pub default_interval_secs: i64,
    pub next_at: &'a (dyn Fn(i64) -> String + Send + Sync),
}

impl std::fmt::Debug for ScheduleClaim<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScheduleClaim")
            .field("replica", &self.replica)
            .field("n", &self.n)
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

/// A finished job, recorded while `replica` still holds it, in one
/// transaction with its snapshot (the newest `snapshots_kept` kept) and the
/// notice it queues.
#[derive(Clone, Debug)]
pub struct FinishedJob<'a> {
    pub job: &'a DiscoveryJob,
    pub tenant_id: Uuid,
    pub replica: &'a str,
    pub snapshot: Option<&'a Snapshot>,
    pub snapshots_kept: i64,
    pub notice: Option<&'a NewNotice>,
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
    /// `get_connector` serialized ([`connector_json`]). The cached store
    /// keeps it between writes, so `GET` one neither copies nor serializes
    /// the connector again for every request.
    async fn get_connector_json(
        &self,
        tenant: Uuid,
        id: Uuid,
    ) -> Result<Option<axum::body::Bytes>> {
        match self.get_connector(tenant, id).await? {
            Some(c) => connector_json(&c).map(Some),
            None => Ok(None),
        }
    }
    async fn list_connectors(&self, tenant: Uuid) -> Result<Vec<Connector>>;
    /// `list_connectors` as the JSON array the list route answers with (each
    /// connector in its model's wire shape). The cached store keeps it
    /// between writes, so a list of 1,000 is not read and serialized again
    /// for every request.
    async fn list_connectors_json(&self, tenant: Uuid) -> Result<ConnectorsJson> {
        let list = self.list_connectors(tenant).await?;
        ConnectorsJson::new(&list)
    }
    async fn connector_name_taken(&self, tenant: Uuid, name: &str) -> Result<bool>;
    /// Writes every mutable field; false when the row is gone.
    async fn update_connector(&self, c: &Connector) -> Result<bool>;
    /// Deletes the row (with its jobs and snapshots) and frees its slot.
    async fn delete_connector(&self, tenant: Uuid, id: Uuid) -> Result<bool>;

    // Discovery jobs: at most one RUNNING per connector across replicas,
    // each held through a lease by the replica running it.

    /// Starts a job for the connector unless one runs: a RUNNING job whose
    /// lease ended is taken over instead, a live one is returned.
    async fn start_discovery_job(&self, n: &NewJob<'_>) -> Result<JobStart>;
    /// Takes over up to `n` RUNNING jobs whose lease ended before `now`.
    async fn claim_expired_discovery_jobs(
        &self,
        replica: &str,
        n: i64,
        now: &str,
        lease_until: &str,
    ) -> Result<Vec<ClaimedJob>>;
    /// Starts the scheduled re-discoveries that are due (see `ScheduleClaim`).
    async fn claim_scheduled_discoveries(&self, c: &ScheduleClaim<'_>) -> Result<Vec<ClaimedJob>>;
    /// Extends a job's lease; false when `replica` no longer holds it.
    async fn renew_discovery_job(&self, id: Uuid, replica: &str, lease_until: &str)
        -> Result<bool>;
    /// Records a job's end (see `FinishedJob`); false (nothing written) when
    /// the replica no longer holds it.
    async fn finish_discovery_job(&self, f: &FinishedJob<'_>) -> Result<bool>;
    /// Ends the connector's RUNNING job (it was disabled): FAILED with
    /// `CONNECTOR_INACTIVE`; its holder sees the loss at its next renewal.
    async fn cancel_discovery_jobs(&self, connector: Uuid, at: &str, message: &str) -> Result<()>;
    async fn latest_job(&self, connector: Uuid) -> Result<Option<DiscoveryJob>>;
    async fn discovery_job(&self, connector: Uuid, id: Uuid) -> Result<Option<DiscoveryJob>>;
    /// The connector's re-discovery interval (`None`: the default) and next
    /// due instant; `None` when the connector is gone.
    async fn discovery_schedule(
        &self,
        connector: Uuid,
    ) -> Result<Option<(Option<i64>, Option<String>)>>;
    /// Sets both; false when the connector is gone.
    async fn set_discovery_schedule(
        &self,
        connector: Uuid,
        interval_secs: Option<i64>,
        next_at: Option<&str>,
    ) -> Result<bool>;

    /// The newest `n` snapshots, newest first.
    async fn latest_snapshots(&self, connector: Uuid, n: i64) -> Result<Vec<Snapshot>>;

    // Health monitoring: leases on connector rows, check history, the
    // notification outbox. Instants are RFC 3339 strings (`model::ts`).

    /// Leases up to `n` connectors for `replica` until `lease_until`: those not
    /// INACTIVE, due at `due` (`health_next_at` unset or not after it), whose
    /// lease ended before `now`, and not a create in flight (a TESTING row named
    /// by its reservation). Each becomes TESTING, its status before kept for
    /// `record_health_check`. Two replicas never lease the same row. Reads
    /// on from `from` in the order (next check, id), and moves it past the
    /// rows it leased.
    async fn claim_health_checks(
        &self,
        replica: &str,
        n: usize,
        due: &str,
        now: &str,
        lease_until: &str,
        from: &mut ClaimCursor,
    ) -> Result<Vec<HealthLease>>;
    /// Gives a lease back without a result: the status before the check returns.
    async fn release_health_lease(&self, id: Uuid, replica: &str) -> Result<()>;
    /// Records a check while `r.replica` still holds the lease, in one
    /// transaction: the status (INACTIVE stays INACTIVE), the history row (the
    /// newest `history_kept` kept), the lease ended, and the notices `notice`
    /// asks for (one whose `once_key` was queued before is dropped). `None` (nothing written) when the lease was lost.
    async fn record_health_check(
        &self,
        r: &HealthCheckRecord,
        notice: &NoticeRule<'_>,
    ) -> Result<Option<ConnectorStatus>>;
    /// The connector's last success and its newest `limit` checks.
    async fn health_history(&self, connector: Uuid, limit: i64) -> Result<HealthHistory>;
    /// Connectors counted by status (statuses without any are absent).
    async fn count_by_status(&self) -> Result<Vec<(ConnectorStatus, i64)>>;

    /// Leases up to `n` undelivered notices due at `now` for `replica`.
    async fn lease_notices(
        &self,
        replica: &str,
        n: i64,
        now: &str,
        lease_until: &str,
    ) -> Result<Vec<LeasedNotice>>;
    /// Marks a notice delivered at `at`.
    async fn notice_delivered(&self, id: &str, at: &str) -> Result<()>;
    /// Counts a failed attempt and schedules the next at `next_attempt_at`.
    async fn notice_failed(&self, id: &str, next_attempt_at: &str, error: &str) -> Result<()>;
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
