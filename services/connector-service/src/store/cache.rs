//! A read-through cache of connectors, tenants' connector lists (as JSON)
//! and tenants for a store that one process owns (the
//! embedded SQLite file): `GET` one connector is then a map lookup, and routes that need the
//! tenant's slug do not read it again. It is not
//! used with PostgreSQL, where other replicas write too. Every write that can
//! change a cached connector (the health scheduler's leases and results
//! included) drops it here, so no caller clears the cache by hand.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use async_trait::async_trait;
use axum::body::Bytes;
use uuid::Uuid;

use super::{
    connector_json, ClaimCursor, ClaimedJob, ConnectorsJson, ExpiredReservation, FinishedJob,
    HealthCheckRecord, HealthHistory, HealthLease, JobStart, LeasedNotice, MetadataStore, NewJob,
    NoticeRule, Result, ScheduleClaim,
};
use crate::model::{Connector, ConnectorStatus, DiscoveryJob, Snapshot, Tenant, Tier};

pub struct CachedStore<S> {
    inner: S,
    connectors: RwLock<HashMap<Uuid, Arc<CachedConnector>>>,
    tenants: RwLock<HashMap<Uuid, Tenant>>,
    /// Tenants' connector lists as JSON, dropped whole by any connector write.
    lists: RwLock<HashMap<Uuid, ConnectorsJson>>,
    /// Bumped by every write to a cached kind: a read that raced a write does not
    /// put what it read into the cache.
    writes: AtomicU64,
}

/// A cached connector, with its JSON once a `GET` one has asked for it.
struct CachedConnector {
    connector: Connector,
    json: OnceLock<Bytes>,
}

impl CachedConnector {
    fn json(&self) -> Result<Bytes> {
        if let Some(b) = self.json.get() {
            return Ok(b.clone());
        }
        let b = connector_json(&self.connector)?;
        Ok(self.json.get_or_init(|| b).clone())
    }
}

impl<S> std::fmt::Debug for CachedStore<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CachedStore")
    }
}

impl<S: MetadataStore> CachedStore<S> {
    pub fn new(inner: S) -> Self {
        CachedStore {
            inner,
            connectors: RwLock::new(HashMap::new()),
            tenants: RwLock::new(HashMap::new()),
            lists: RwLock::new(HashMap::new()),
            writes: AtomicU64::new(0),
        }
    }

    fn forget(&self, id: Uuid) {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.connectors
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        self.lists
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// The tenant's connector, from the cache or read through it.
    async fn connector(&self, tenant: Uuid, id: Uuid) -> Result<Option<Arc<CachedConnector>>> {
        if let Some(c) = self
            .connectors
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
        {
            return Ok((c.connector.tenant_id == tenant).then(|| c.clone()));
        }
        let before = self.writes.load(Ordering::SeqCst);
        let Some(found) = self.inner.get_connector(tenant, id).await? else {
            return Ok(None);
        };
        let found = Arc::new(CachedConnector {
            connector: found,
            json: OnceLock::new(),
        });
        let mut map = self.connectors.write().unwrap_or_else(|p| p.into_inner());
        if self.writes.load(Ordering::SeqCst) == before {
            map.insert(id, found.clone());
        }
        Ok(Some(found))
    }

    /// Tenants change when their tier or connector count does.
    fn forget_tenant(&self, id: Uuid) {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.tenants
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }
}

#[async_trait]
impl<S: MetadataStore> MetadataStore for CachedStore<S> {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    async fn ping(&self) -> Result<()> {
        self.inner.ping().await
    }
    async fn create_tenant(&self, t: &Tenant) -> Result<()> {
        self.inner.create_tenant(t).await
    }
    async fn get_tenant(&self, id: Uuid) -> Result<Option<Tenant>> {
        if let Some(t) = self
            .tenants
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
        {
            return Ok(Some(t.clone()));
        }
        let before = self.writes.load(Ordering::SeqCst);
        let found = self.inner.get_tenant(id).await?;
        if let Some(t) = &found {
            let mut map = self.tenants.write().unwrap_or_else(|p| p.into_inner());
            if self.writes.load(Ordering::SeqCst) == before {
                map.insert(id, t.clone());
            }
        }
        Ok(found)
    }
    async fn list_tenants(&self) -> Result<Vec<Tenant>> {
        self.inner.list_tenants().await
    }
    async fn set_tier(&self, id: Uuid, tier: Tier, updated_at: &str) -> Result<Option<Tenant>> {
        let r = self.inner.set_tier(id, tier, updated_at).await;
        self.forget_tenant(id);
        r
    }
    async fn set_slots(&self, tenant: Uuid, count: i64) -> Result<()> {
        let r = self.inner.set_slots(tenant, count).await;
        self.forget_tenant(tenant);
        r
    }
    async fn reserve_create(
        &self,
        tenant: Uuid,
        limit: Option<i64>,
        reservation: Uuid,
        now: &str,
        lease_until: &str,
    ) -> Result<bool> {
        let r = self
            .inner
            .reserve_create(tenant, limit, reservation, now, lease_until)
            .await;
        self.forget_tenant(tenant);
        r
    }
    async fn renew_reservation(
        &self,
        reservation: Uuid,
        secret_name: Option<&str>,
        lease_until: &str,
    ) -> Result<bool> {
        self.inner
            .renew_reservation(reservation, secret_name, lease_until)
            .await
    }
    async fn insert_reserved_connector(&self, c: &Connector, reservation: Uuid) -> Result<bool> {
        let r = self.inner.insert_reserved_connector(c, reservation).await;
        self.forget(c.id);
        self.forget_tenant(c.tenant_id);
        r
    }
    async fn finish_reserved_connector(&self, c: &Connector, reservation: Uuid) -> Result<bool> {
        let r = self.inner.finish_reserved_connector(c, reservation).await;
        self.forget(c.id);
        self.forget_tenant(c.tenant_id);
        r
    }
    async fn release_reservation(&self, tenant: Uuid, reservation: Uuid, now: &str) -> Result<()> {
        let r = self
            .inner
            .release_reservation(tenant, reservation, now)
            .await;
        self.forget_tenant(tenant);
        r
    }
    async fn recount_slots(&self, tenant: Uuid, now: &str) -> Result<(i64, i64)> {
        let r = self.inner.recount_slots(tenant, now).await;
        self.forget_tenant(tenant);
        r
    }
    async fn reserved_secrets(&self, tenant: Uuid, now: &str) -> Result<Vec<String>> {
        self.inner.reserved_secrets(tenant, now).await
    }
    async fn delete_expired_reservations(&self, now: &str) -> Result<Vec<ExpiredReservation>> {
        let r = self.inner.delete_expired_reservations(now).await;
        for e in r.iter().flatten() {
            if let Some(id) = e.connector {
                self.forget(id);
            }
            self.forget_tenant(e.tenant);
        }
        r
    }
    async fn insert_connector(&self, c: &Connector) -> Result<()> {
        let r = self.inner.insert_connector(c).await;
        self.forget(c.id);
        r
    }
    async fn get_connector(&self, tenant: Uuid, id: Uuid) -> Result<Option<Connector>> {
        Ok(self
            .connector(tenant, id)
            .await?
            .map(|c| c.connector.clone()))
    }
    async fn get_connector_json(&self, tenant: Uuid, id: Uuid) -> Result<Option<Bytes>> {
        match self.connector(tenant, id).await? {
            Some(c) => c.json().map(Some),
            None => Ok(None),
        }
    }
    async fn list_connectors(&self, tenant: Uuid) -> Result<Vec<Connector>> {
        self.inner.list_connectors(tenant).await
    }
    async fn list_connectors_json(&self, tenant: Uuid) -> Result<ConnectorsJson> {
        if let Some(l) = self
            .lists
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&tenant)
        {
            return Ok(l.clone());
        }
        let before = self.writes.load(Ordering::SeqCst);
        let list = ConnectorsJson::new(&self.inner.list_connectors(tenant).await?)?;
        let mut map = self.lists.write().unwrap_or_else(|p| p.into_inner());
        if self.writes.load(Ordering::SeqCst) == before {
            map.insert(tenant, list.clone());
        }
        Ok(list)
    }
    async fn connector_name_taken(&self, tenant: Uuid, name: &str) -> Result<bool> {
        self.inner.connector_name_taken(tenant, name).await
    }
    async fn update_connector(&self, c: &Connector) -> Result<bool> {
        let r = self.inner.update_connector(c).await;
        self.forget(c.id);
        r
    }
    async fn delete_connector(&self, tenant: Uuid, id: Uuid) -> Result<bool> {
        let r = self.inner.delete_connector(tenant, id).await;
        self.forget(id);
        self.forget_tenant(tenant);
        r
    }
    async fn start_discovery_job(&self, n: &NewJob<'_>) -> Result<JobStart> {
        self.inner.start_discovery_job(n).await
    }
    async fn claim_expired_discovery_jobs(
        &self,
        replica: &str,
        n: i64,
        now: &str,
        lease_until: &str,
    ) -> Result<Vec<ClaimedJob>> {
        self.inner
            .claim_expired_discovery_jobs(replica, n, now, lease_until)
            .await
    }
    async fn claim_scheduled_discoveries(&self, c: &ScheduleClaim<'_>) -> Result<Vec<ClaimedJob>> {
        self.inner.claim_scheduled_discoveries(c).await
    }
    async fn renew_discovery_job(
        &self,
        id: Uuid,
        replica: &str,
        lease_until: &str,
    ) -> Result<bool> {
        self.inner
            .renew_discovery_job(id, replica, lease_until)
            .await
    }
    async fn finish_discovery_job(&self, f: &FinishedJob<'_>) -> Result<bool> {
        self.inner.finish_discovery_job(f).await
    }
    async fn cancel_discovery_jobs(&self, connector: Uuid, at: &str, message: &str) -> Result<()> {
        self.inner
            .cancel_discovery_jobs(connector, at, message)
            .await
    }
    async fn latest_job(&self, connector: Uuid) -> Result<Option<DiscoveryJob>> {
        self.inner.latest_job(connector).await
    }
    async fn discovery_job(&self, connector: Uuid, id: Uuid) -> Result<Option<DiscoveryJob>> {
        self.inner.discovery_job(connector, id).await
    }
    async fn discovery_schedule(
        &self,
        connector: Uuid,
    ) -> Result<Option<(Option<i64>, Option<String>)>> {
        self.inner.discovery_schedule(connector).await
    }
    async fn set_discovery_schedule(
        &self,
        connector: Uuid,
        interval_secs: Option<i64>,
        next_at: Option<&str>,
    ) -> Result<bool> {
        self.inner
            .set_discovery_schedule(connector, interval_secs, next_at)
            .await
    }
    async fn latest_snapshots(&self, connector: Uuid, n: i64) -> Result<Vec<Snapshot>> {
        self.inner.latest_snapshots(connector, n).await
    }
    async fn claim_health_checks(
        &self,
        replica: &str,
        n: usize,
        due: &str,
        now: &str,
        lease_until: &str,
        from: &mut ClaimCursor,
    ) -> Result<Vec<HealthLease>> {
        let r = self
            .inner
            .claim_health_checks(replica, n, due, now, lease_until, from)
            .await;
        for c in r.iter().flatten() {
            self.forget(c.id);
        }
        r
    }
    async fn release_health_lease(&self, id: Uuid, replica: &str) -> Result<()> {
        let r = self.inner.release_health_lease(id, replica).await;
        self.forget(id);
        r
    }
    async fn record_health_check(
        &self,
        r: &HealthCheckRecord,
        notice: &NoticeRule<'_>,
    ) -> Result<Option<ConnectorStatus>> {
        let out = self.inner.record_health_check(r, notice).await;
        self.forget(r.connector.id);
        out
    }
    async fn health_history(&self, connector: Uuid, limit: i64) -> Result<HealthHistory> {
        self.inner.health_history(connector, limit).await
    }
    async fn count_by_status(&self) -> Result<Vec<(ConnectorStatus, i64)>> {
        self.inner.count_by_status().await
    }
    async fn lease_notices(
        &self,
        replica: &str,
        n: i64,
        now: &str,
        lease_until: &str,
    ) -> Result<Vec<LeasedNotice>> {
        self.inner.lease_notices(replica, n, now, lease_until).await
    }
    async fn notice_delivered(&self, id: &str, at: &str) -> Result<()> {
        self.inner.notice_delivered(id, at).await
    }
    async fn notice_failed(&self, id: &str, next_attempt_at: &str, error: &str) -> Result<()> {
        self.inner.notice_failed(id, next_attempt_at, error).await
    }
}
