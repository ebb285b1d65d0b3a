//! The SQL both databases run. Placeholders are `$n` in order of first use,
//! which SQLite and PostgreSQL read alike.

use std::sync::Arc;

use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, Row};
use uuid::Uuid;

use super::{
    ClaimCursor, ClaimedJob, ExpiredReservation, FinishedJob, HealthCheckRecord, HealthHistory,
    HealthLease, JobStart, LeasedNotice, MetadataStore, NewJob, NoticeRule, Result, ScheduleClaim,
    StoreError,
};
use crate::model::{Connector, ConnectorStatus, DiscoveryJob, Snapshot, Tenant, Tier};
use crate::snapshot::StoredCatalog;

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../../migrations/0001_init.sql")),
    (
        2,
        "health",
        include_str!("../../migrations/0002_health.sql"),
    ),
    (
        3,
        "reservations",
        include_str!("../../migrations/0003_reservations.sql"),
    ),
    (
        4,
        "reservation_connector",
        include_str!("../../migrations/0004_reservation_connector.sql"),
    ),
    (
        5,
        "health_claim_index",
        include_str!("../../migrations/0005_health_claim_index.sql"),
    ),
    (
        6,
        "notice_once",
        include_str!("../../migrations/0006_notice_once.sql"),
    ),
    (
        7,
        "discovery_jobs",
        include_str!("../../migrations/0007_discovery_jobs.sql"),
    ),
    (
        8,
        "snapshot_encoding",
        include_str!("../../migrations/0008_snapshot_encoding.sql"),
    ),
];

/// Connector rows plus live reservations that have not written their row yet
/// (a reservation naming its TESTING row is counted through the row): the
/// slots a tenant holds. Run after the tenant row is locked, in the same
/// transaction.
const SLOTS_HELD: &str = "SELECT (SELECT COUNT(*) FROM connectors WHERE tenant_id = $1) + \
     (SELECT COUNT(*) FROM create_reservations \
      WHERE tenant_id = $1 AND lease_until > $2 AND connector_id IS NULL)";

/// Locks the tenant row (PostgreSQL) or the database (SQLite) until the end of
/// the transaction: every change to a tenant's slot count goes through it, and
/// statements after it see everything committed before it was granted.
const LOCK_TENANT: &str = "UPDATE tenants SET connector_count = connector_count WHERE id = $1";

/// Serializes migrations across replicas sharing one PostgreSQL database.
const MIGRATION_LOCK: i64 = 0x6d61_7469_6863;

#[derive(Clone, Debug)]
pub struct SqlStore {
    pub(super) pool: AnyPool,
    pub(super) backend: &'static str,
    /// SQLite only: the one connection the health scheduler's writes take
    /// turns on (`SqlStore::write_turn`).
    pub(super) writer: Option<Arc<Writer>>,
}

/// The SQLite store's writer connection, one holder at a time.
pub(super) type Writer = tokio::sync::Mutex<AnyConnection>;

/// The connection a write runs on while it holds its turn.
pub(super) enum WriteTurn<'a> {
    /// SQLite: the store's writer connection.
    Writer(tokio::sync::MutexGuard<'a, AnyConnection>),
    /// PostgreSQL: any pooled connection (rows are locked, not the database).
    Pooled(PoolConnection<Any>),
}

impl std::ops::Deref for WriteTurn<'_> {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        match self {
            WriteTurn::Writer(c) => c,
            WriteTurn::Pooled(c) => c,
        }
    }
}

impl std::ops::DerefMut for WriteTurn<'_> {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        match self {
            WriteTurn::Writer(c) => c,
            WriteTurn::Pooled(c) => c,
        }
    }
}

pub(super) fn uuid(row: &AnyRow, col: &str) -> Result<Uuid> {
    let s: String = row.try_get(col)?;
    Uuid::parse_str(&s).map_err(|_| StoreError::Corrupt(format!("{col} is not a UUID")))
}

fn opt_uuid(row: &AnyRow, col: &str) -> Result<Option<Uuid>> {
    let s: Option<String> = row.try_get(col)?;
    s.map(|s| Uuid::parse_str(&s).map_err(|_| StoreError::Corrupt(format!("{col} is not a UUID"))))
        .transpose()
}

fn parsed<T: std::str::FromStr>(row: &AnyRow, col: &str) -> Result<T> {
    let s: String = row.try_get(col)?;
    s.parse()
        .map_err(|_| StoreError::Corrupt(format!("{col} holds {s:?}")))
}

fn tenant(row: &AnyRow) -> Result<Tenant> {
    Ok(Tenant {
        id: uuid(row, "id")?,
        name: row.try_get("name")?,
        slug: row.try_get("slug")?,
        tier: parsed(row, "tier")?,
        connector_count: row.try_get("connector_count")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn connector(row: &AnyRow) -> Result<Connector> {
    let json = |col: &str| -> Result<String> { Ok(row.try_get::<String, _>(col)?) };
    let ssl_mode: Option<String> = row.try_get("ssl_mode")?;
    let port: Option<i64> = row.try_get("port")?;
    Ok(Connector {
        id: uuid(row, "id")?,
        tenant_id: uuid(row, "tenant_id")?,
        name: row.try_get("name")?,
        connector_type: parsed(row, "type")?,
        host: row.try_get("host")?,
        port: port.and_then(|p| u16::try_from(p).ok()),
        database: row.try_get("database_name")?,
        schema: row.try_get("schema_name")?,
        credential_secret_name: row.try_get("credential_secret_name")?,
        ssl_enabled: row.try_get::<i64, _>("ssl_enabled")? != 0,
        ssl_mode: ssl_mode
            .map(|m| {
                m.parse()
                    .map_err(|_| StoreError::Corrupt(format!("ssl_mode holds {m:?}")))
            })
            .transpose()?,
        ssl_ca_pem: row.try_get("ssl_ca_pem")?,
        status: parsed(row, "status")?,
        last_tested_at: row.try_get("last_tested_at")?,
        last_test_result: row.try_get("last_test_result")?,
        last_error_code: row.try_get("last_error_code")?,
        metadata: serde_json::from_str(&json("metadata")?)
            .map_err(|e| StoreError::Corrupt(format!("metadata: {e}")))?,
        timeouts: serde_json::from_str(&json("timeouts")?)
            .map_err(|e| StoreError::Corrupt(format!("timeouts: {e}")))?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

pub(super) fn job(row: &AnyRow) -> Result<DiscoveryJob> {
    Ok(DiscoveryJob {
        id: uuid(row, "id")?,
        connector_id: uuid(row, "connector_id")?,
        status: parsed(row, "status")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        error_code: row.try_get("error_code")?,
        message: row.try_get("message")?,
        schemas_discovered: row.try_get("schemas_discovered")?,
        tables_discovered: row.try_get("tables_discovered")?,
        replica: row.try_get("owner")?,
        origin: row
            .try_get::<Option<String>, _>("origin")?
            .map(|o| {
                o.parse()
                    .map_err(|_| StoreError::Corrupt(format!("origin holds {o:?}")))
            })
            .transpose()?,
        attempts: row.try_get("attempts")?,
        incremental: row
            .try_get::<Option<i64>, _>("incremental")?
            .map(|i| i != 0),
        snapshot_id: opt_uuid(row, "snapshot_id")?,
    })
}

fn snapshot(row: &AnyRow) -> Result<Snapshot> {
    Ok(Snapshot {
        id: uuid(row, "id")?,
        connector_id: uuid(row, "connector_id")?,
        job_id: opt_uuid(row, "job_id")?,
        discovered_at: row.try_get("discovered_at")?,
        schema_count: row.try_get("schema_count")?,
        table_count: row.try_get("table_count")?,
        catalog: StoredCatalog::from_columns(
            row.try_get::<Option<String>, _>("catalog_encoding")?
                .as_deref(),
            row.try_get("catalog")?,
            row.try_get("catalog_bytes")?,
        )
        .map_err(StoreError::Corrupt)?,
        fingerprint: row.try_get("fingerprint")?,
        request: row.try_get("request")?,
    })
}

fn unique_violation(e: sqlx::Error, what: &str) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            StoreError::Conflict(what.to_owned())
        }
        _ => StoreError::Database(e),
    }
}

/// A JSON column's text; a value that cannot be written is an error, never
/// an empty object in its place.
fn to_json<T: serde::Serialize>(v: &T, col: &str) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Unwritable(format!("{col}: {e}")))
}

const CONNECTOR_COLUMNS: &str =
    "id, tenant_id, name, type, host, port, database_name, schema_name, \
    credential_secret_name, ssl_enabled, ssl_mode, ssl_ca_pem, status, last_tested_at, \
    last_test_result, last_error_code, metadata, timeouts, created_at, updated_at";

async fn insert_connector_row(conn: &mut sqlx::AnyConnection, c: &Connector) -> Result<()> {
    let sql = format!(
        "INSERT INTO connectors ({CONNECTOR_COLUMNS}) VALUES \
         ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)"
    );
    sqlx::query(&sql)
        .bind(c.id.to_string())
        .bind(c.tenant_id.to_string())
        .bind(&c.name)
        .bind(c.connector_type.as_str().to_owned())
        .bind(c.host.clone())
        .bind(c.port.map(i64::from))
        .bind(c.database.clone())
        .bind(c.schema.clone())
        .bind(&c.credential_secret_name)
        .bind(i64::from(c.ssl_enabled))
        .bind(c.ssl_mode.map(|m| m.as_str().to_owned()))
        .bind(c.ssl_ca_pem.clone())
        .bind(c.status.as_str())
        .bind(c.last_tested_at.clone())
        .bind(c.last_test_result.clone())
        .bind(c.last_error_code.clone())
        .bind(to_json(&c.metadata, "metadata")?)
        .bind(to_json(&c.timeouts, "timeouts")?)
        .bind(&c.created_at)
        .bind(&c.updated_at)
        .execute(conn)
        .await
        .map_err(|e| {
            unique_violation(e, "a connector with this name already exists in the tenant")
        })?;
    Ok(())
}

async fn update_connector_row(conn: &mut sqlx::AnyConnection, c: &Connector) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE connectors SET name = $1, host = $2, port = $3, database_name = $4, schema_name = $5, \
         credential_secret_name = $6, ssl_enabled = $7, ssl_mode = $8, ssl_ca_pem = $9, status = $10, \
         last_tested_at = $11, last_test_result = $12, last_error_code = $13, metadata = $14, \
         timeouts = $15, updated_at = $16 WHERE id = $17 AND tenant_id = $18",
    )
    .bind(&c.name)
    .bind(c.host.clone())
    .bind(c.port.map(i64::from))
    .bind(c.database.clone())
    .bind(c.schema.clone())
    .bind(&c.credential_secret_name)
    .bind(i64::from(c.ssl_enabled))
    .bind(c.ssl_mode.map(|m| m.as_str().to_owned()))
    .bind(c.ssl_ca_pem.clone())
    .bind(c.status.as_str())
    .bind(c.last_tested_at.clone())
    .bind(c.last_test_result.clone())
    .bind(c.last_error_code.clone())
    .bind(to_json(&c.metadata, "metadata")?)
    .bind(to_json(&c.timeouts, "timeouts")?)
    .bind(&c.updated_at)
    .bind(c.id.to_string())
    .bind(c.tenant_id.to_string())
    .execute(conn)
    .await
    .map_err(|e| unique_violation(e, "a connector with this name already exists in the tenant"))?;
    Ok(done.rows_affected() == 1)
}

/// Sets the tenant's count to rows plus live reservations; the tenant row must
/// be locked by the transaction.
async fn recount(conn: &mut sqlx::AnyConnection, tenant: Uuid, now: &str) -> Result<i64> {
    let held: i64 = sqlx::query_scalar(SLOTS_HELD)
        .bind(tenant.to_string())
        .bind(now)
        .fetch_one(&mut *conn)
        .await?;
    sqlx::query("UPDATE tenants SET connector_count = $1 WHERE id = $2")
        .bind(held)
        .bind(tenant.to_string())
        .execute(&mut *conn)
        .await?;
    Ok(held)
}

impl SqlStore {
    pub(super) fn new(pool: AnyPool, backend: &'static str) -> Self {
        SqlStore {
            pool,
            backend,
            writer: None,
        }
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub(super) async fn migrate(&self) -> anyhow::Result<()> {
        let mut conn = self.pool.acquire().await?;
        if self.backend == "postgres" {
            sqlx::query("SELECT pg_advisory_lock($1)")
                .bind(MIGRATION_LOCK)
                .execute(&mut *conn)
                .await?;
        }
        let result: anyhow::Result<()> = async {
            sqlx::raw_sql(
                "CREATE TABLE IF NOT EXISTS matih_schema_migrations \
                 (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)",
            )
            .execute(&mut *conn)
            .await?;
            for (version, name, sql) in MIGRATIONS {
                let done: Option<i64> =
                    sqlx::query_scalar("SELECT version FROM matih_schema_migrations WHERE version = $1")
                        .bind(*version)
                        .fetch_optional(&mut *conn)
                        .await?;
                if done.is_some() {
                    continue;
                }
                let mut tx = sqlx::Connection::begin(&mut *conn).await?;
                sqlx::raw_sql(sql).execute(&mut *tx).await?;
                sqlx::query("INSERT INTO matih_schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)")
                    .bind(*version)
                    .bind(*name)
                    .bind(crate::model::ts(chrono::Utc::now()))
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                tracing::info!(version, name, backend = self.backend, "applied migration");
            }
            Ok(())
        }
        .await;
        if self.backend == "postgres" {
            sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(MIGRATION_LOCK)
                .execute(&mut *conn)
                .await?;
        }
        result
    }
}

#[async_trait]
impl MetadataStore for SqlStore {
    fn backend(&self) -> &'static str {
        self.backend
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn create_tenant(&self, t: &Tenant) -> Result<()> {
        sqlx::query(
            "INSERT INTO tenants (id, name, slug, tier, connector_count, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, 0, $5, $6)",
        )
        .bind(t.id.to_string())
        .bind(&t.name)
        .bind(&t.slug)
        .bind(t.tier.as_str())
        .bind(&t.created_at)
        .bind(&t.updated_at)
        .execute(&self.pool)
        .await
        .map_err(|e| unique_violation(e, "a tenant with this slug already exists"))?;
        Ok(())
    }

    async fn get_tenant(&self, id: Uuid) -> Result<Option<Tenant>> {
        sqlx::query("SELECT * FROM tenants WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(tenant)
            .transpose()
    }

    async fn list_tenants(&self) -> Result<Vec<Tenant>> {
        sqlx::query("SELECT * FROM tenants ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(tenant)
            .collect()
    }

    async fn set_tier(&self, id: Uuid, tier: Tier, updated_at: &str) -> Result<Option<Tenant>> {
        let done = sqlx::query("UPDATE tenants SET tier = $1, updated_at = $2 WHERE id = $3")
            .bind(tier.as_str())
            .bind(updated_at)
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        self.get_tenant(id).await
    }

    async fn set_slots(&self, tenant: Uuid, count: i64) -> Result<()> {
        sqlx::query("UPDATE tenants SET connector_count = $1 WHERE id = $2")
            .bind(count)
            .bind(tenant.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn reserve_create(
        &self,
        tenant: Uuid,
        limit: Option<i64>,
        reservation: Uuid,
        now: &str,
        lease_until: &str,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let locked = sqlx::query(LOCK_TENANT)
            .bind(tenant.to_string())
            .execute(&mut *tx)
            .await?;
        if locked.rows_affected() != 1 {
            return Ok(false);
        }
        let held: i64 = sqlx::query_scalar(SLOTS_HELD)
            .bind(tenant.to_string())
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
        if limit.is_some_and(|l| held >= l) {
            // Still worth correcting a count a crash left behind.
            sqlx::query("UPDATE tenants SET connector_count = $1 WHERE id = $2")
                .bind(held)
                .bind(tenant.to_string())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO create_reservations (id, tenant_id, created_at, lease_until) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(reservation.to_string())
        .bind(tenant.to_string())
        .bind(now)
        .bind(lease_until)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE tenants SET connector_count = $1 WHERE id = $2")
            .bind(held + 1)
            .bind(tenant.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn renew_reservation(
        &self,
        reservation: Uuid,
        secret_name: Option<&str>,
        lease_until: &str,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE create_reservations SET lease_until = $1, \
             secret_name = COALESCE($2, secret_name) WHERE id = $3",
        )
        .bind(lease_until)
        .bind(secret_name.map(str::to_owned))
        .bind(reservation.to_string())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn insert_reserved_connector(&self, c: &Connector, reservation: Uuid) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        // The reservation names the row in the transaction that inserts it, so
        // the slot count (rows + reservations naming no row) never sees both or
        // neither. Reservation first, then the row: the lock order of
        // `finish_reserved_connector` and `delete_expired_reservations`.
        let named = sqlx::query(
            "UPDATE create_reservations SET connector_id = $1 \
             WHERE id = $2 AND connector_id IS NULL",
        )
        .bind(c.id.to_string())
        .bind(reservation.to_string())
        .execute(&mut *tx)
        .await?;
        if named.rows_affected() != 1 {
            return Ok(false);
        }
        insert_connector_row(&mut tx, c).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn finish_reserved_connector(&self, c: &Connector, reservation: Uuid) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let gone =
            sqlx::query("DELETE FROM create_reservations WHERE id = $1 AND connector_id = $2")
                .bind(reservation.to_string())
                .bind(c.id.to_string())
                .execute(&mut *tx)
                .await?;
        if gone.rows_affected() != 1 {
            return Ok(false);
        }
        if !update_connector_row(&mut tx, c).await? {
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn release_reservation(&self, tenant: Uuid, reservation: Uuid, now: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(LOCK_TENANT)
            .bind(tenant.to_string())
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM create_reservations WHERE id = $1")
            .bind(reservation.to_string())
            .execute(&mut *tx)
            .await?;
        recount(&mut tx, tenant, now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn recount_slots(&self, tenant: Uuid, now: &str) -> Result<(i64, i64)> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(LOCK_TENANT)
            .bind(tenant.to_string())
            .execute(&mut *tx)
            .await?;
        let before: Option<i64> =
            sqlx::query_scalar("SELECT connector_count FROM tenants WHERE id = $1")
                .bind(tenant.to_string())
                .fetch_optional(&mut *tx)
                .await?;
        let after = recount(&mut tx, tenant, now).await?;
        tx.commit().await?;
        Ok((before.unwrap_or(0), after))
    }

    async fn reserved_secrets(&self, tenant: Uuid, now: &str) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT secret_name FROM create_reservations \
             WHERE tenant_id = $1 AND lease_until > $2 AND secret_name IS NOT NULL",
        )
        .bind(tenant.to_string())
        .bind(now)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn delete_expired_reservations(&self, now: &str) -> Result<Vec<ExpiredReservation>> {
        let mut tx = self.pool.begin().await?;
        // Reservations first (the lock order of the create path), returning
        // what they named as of their deletion: a row named concurrently is
        // seen here and deleted below.
        let rows = sqlx::query(
            "DELETE FROM create_reservations WHERE lease_until <= $1 \
             RETURNING tenant_id, connector_id, secret_name",
        )
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        let mut expired = Vec::with_capacity(rows.len());
        for row in rows {
            let tenant = uuid(&row, "tenant_id")?;
            let mut connector = opt_uuid(&row, "connector_id")?;
            let mut secret_name: Option<String> = row.try_get("secret_name")?;
            if let Some(id) = connector {
                // Only while still TESTING: a create that saved its outcome
                // ended its reservation in the same transaction.
                for sql in [
                    "DELETE FROM catalog_snapshots WHERE connector_id = $1",
                    "DELETE FROM discovery_jobs WHERE connector_id = $1",
                ] {
                    sqlx::query(sql)
                        .bind(id.to_string())
                        .execute(&mut *tx)
                        .await?;
                }
                let done = sqlx::query(
                    "DELETE FROM connectors WHERE id = $1 AND tenant_id = $2 AND status = 'TESTING'",
                )
                .bind(id.to_string())
                .bind(tenant.to_string())
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() != 1 {
                    // Kept (no longer TESTING) or already deleted: its secret
                    // is not this reservation's to remove; the orphan rule
                    // judges it.
                    connector = None;
                    secret_name = None;
                }
            }
            expired.push(ExpiredReservation {
                tenant,
                connector,
                secret_name,
            });
        }
        tx.commit().await?;
        Ok(expired)
    }

    async fn insert_connector(&self, c: &Connector) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        insert_connector_row(&mut conn, c).await
    }

    async fn get_connector(&self, tenant: Uuid, id: Uuid) -> Result<Option<Connector>> {
        let sql =
            format!("SELECT {CONNECTOR_COLUMNS} FROM connectors WHERE id = $1 AND tenant_id = $2");
        sqlx::query(&sql)
            .bind(id.to_string())
            .bind(tenant.to_string())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(connector)
            .transpose()
    }

    async fn list_connectors(&self, tenant: Uuid) -> Result<Vec<Connector>> {
        let sql = format!(
            "SELECT {CONNECTOR_COLUMNS} FROM connectors WHERE tenant_id = $1 ORDER BY created_at, id"
        );
        sqlx::query(&sql)
            .bind(tenant.to_string())
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(connector)
            .collect()
    }

    async fn connector_name_taken(&self, tenant: Uuid, name: &str) -> Result<bool> {
        let n: Option<String> =
            sqlx::query_scalar("SELECT id FROM connectors WHERE tenant_id = $1 AND name = $2")
                .bind(tenant.to_string())
                .bind(name)
                .fetch_optional(&self.pool)
                .await?;
        Ok(n.is_some())
    }

    async fn update_connector(&self, c: &Connector) -> Result<bool> {
        let mut conn = self.pool.acquire().await?;
        update_connector_row(&mut conn, c).await
    }

    async fn delete_connector(&self, tenant: Uuid, id: Uuid) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        // Child rows go explicitly: SQLite enforces ON DELETE CASCADE only when
        // its foreign_keys pragma is on for that connection.
        for sql in [
            "DELETE FROM catalog_snapshots WHERE connector_id = $1",
            "DELETE FROM discovery_jobs WHERE connector_id = $1",
        ] {
            sqlx::query(sql)
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
        }
        let done = sqlx::query("DELETE FROM connectors WHERE id = $1 AND tenant_id = $2")
            .bind(id.to_string())
            .bind(tenant.to_string())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 1 {
            sqlx::query(
                "UPDATE tenants SET connector_count = connector_count - 1 WHERE id = $1 AND connector_count > 0",
            )
            .bind(tenant.to_string())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    async fn latest_job(&self, connector: Uuid) -> Result<Option<DiscoveryJob>> {
        sqlx::query("SELECT * FROM discovery_jobs WHERE connector_id = $1 ORDER BY started_at DESC, id LIMIT 1")
            .bind(connector.to_string())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(job)
            .transpose()
    }

    async fn start_discovery_job(&self, n: &NewJob<'_>) -> Result<JobStart> {
        self.start_job(n).await
    }

    async fn claim_expired_discovery_jobs(
        &self,
        replica: &str,
        n: i64,
        now: &str,
        lease_until: &str,
    ) -> Result<Vec<ClaimedJob>> {
        self.claim_expired_jobs(replica, n, now, lease_until).await
    }

    async fn claim_scheduled_discoveries(&self, c: &ScheduleClaim<'_>) -> Result<Vec<ClaimedJob>> {
        self.claim_scheduled(c).await
    }

    async fn renew_discovery_job(
        &self,
        id: Uuid,
        replica: &str,
        lease_until: &str,
    ) -> Result<bool> {
        self.renew_job(id, replica, lease_until).await
    }

    async fn finish_discovery_job(&self, f: &FinishedJob<'_>) -> Result<bool> {
        self.finish_job(f).await
    }

    async fn cancel_discovery_jobs(&self, connector: Uuid, at: &str, message: &str) -> Result<()> {
        self.cancel_jobs(connector, at, message).await
    }

    async fn discovery_job(&self, connector: Uuid, id: Uuid) -> Result<Option<DiscoveryJob>> {
        self.job_by_id(connector, id).await
    }

    async fn discovery_schedule(
        &self,
        connector: Uuid,
    ) -> Result<Option<(Option<i64>, Option<String>)>> {
        self.schedule_of(connector).await
    }

    async fn set_discovery_schedule(
        &self,
        connector: Uuid,
        interval_secs: Option<i64>,
        next_at: Option<&str>,
    ) -> Result<bool> {
        self.set_schedule(connector, interval_secs, next_at).await
    }

    async fn latest_snapshots(&self, connector: Uuid, n: i64) -> Result<Vec<Snapshot>> {
        sqlx::query(
            "SELECT * FROM catalog_snapshots WHERE connector_id = $1 ORDER BY discovered_at DESC, id DESC LIMIT $2",
        )
        .bind(connector.to_string())
        .bind(n)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(snapshot)
        .collect()
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
        self.claim_health(replica, n, due, now, lease_until, from)
            .await
    }

    async fn release_health_lease(&self, id: Uuid, replica: &str) -> Result<()> {
        self.release_health(id, replica).await
    }

    async fn record_health_check(
        &self,
        r: &HealthCheckRecord,
        notice: &NoticeRule<'_>,
    ) -> Result<Option<ConnectorStatus>> {
        self.record_health(r, notice).await
    }

    async fn health_history(&self, connector: Uuid, limit: i64) -> Result<HealthHistory> {
        self.health_of(connector, limit).await
    }

    async fn count_by_status(&self) -> Result<Vec<(ConnectorStatus, i64)>> {
        self.by_status().await
    }

    async fn lease_notices(
        &self,
        replica: &str,
        n: i64,
        now: &str,
        lease_until: &str,
    ) -> Result<Vec<LeasedNotice>> {
        self.lease_outbox(replica, n, now, lease_until).await
    }

    async fn notice_delivered(&self, id: &str, at: &str) -> Result<()> {
        self.outbox_delivered(id, at).await
    }

    async fn notice_failed(&self, id: &str, next_attempt_at: &str, error: &str) -> Result<()> {
        self.outbox_failed(id, next_attempt_at, error).await
    }
}
