//! SQLite: the embedded default.

use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use anyhow::Context;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{AnyConnection, ConnectOptions, Connection};

use super::sql::Writer;
use super::SqlStore;

/// Set on every connection of the store when it opens: the pooled ones and
/// the writer.
const PRAGMAS: &[&str] = &[
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",
    "PRAGMA foreign_keys = ON",
    "PRAGMA busy_timeout = 10000",
    // A pooled connection checkpoints the WAL itself only past 10,000
    // pages (SQLite's default: 1,000); the store's checkpointer keeps it
    // well below that. See `checkpoint_pass`.
    "PRAGMA wal_autocheckpoint = 10000",
];

/// How often the checkpointer copies the WAL into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// WAL frames past which the checkpointer finishes under the writers' turn,
/// so that the next write starts the log over instead of growing it.
const RESTART_AFTER_FRAMES: i64 = 4_000;

/// What one `checkpoint_pass` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Checkpointed {
    /// Frames in the WAL since it last started over.
    pub(super) log: i64,
    /// Of these, frames now copied into the database file.
    pub(super) copied: i64,
    /// Whether the WAL was copied whole and the next write starts it over.
    pub(super) restarted: bool,
}

async fn set_pragmas(conn: &mut AnyConnection) -> sqlx::Result<()> {
    for pragma in PRAGMAS {
        sqlx::query(pragma).execute(&mut *conn).await?;
    }
    Ok(())
}

/// `PRAGMA wal_checkpoint(MODE)`: whether it was cut short by a busy lock,
/// frames in the WAL, frames copied.
async fn checkpoint(conn: &mut SqliteConnection, mode: &str) -> sqlx::Result<(bool, i64, i64)> {
    let (busy, log, copied): (i64, i64, i64) =
        sqlx::query_as(&format!("PRAGMA wal_checkpoint({mode})"))
            .fetch_one(&mut *conn)
            .await?;
    Ok((busy != 0, log, copied))
}

/// One checkpoint of the store's WAL, on the checkpointer's own connection.
///
/// A checkpoint copies the WAL's pages into the database file and syncs
/// both files. Left to SQLite, the connection whose commit crosses
/// `wal_autocheckpoint` does it before its commit returns, while it holds
/// the scheduler's write turn: every writer then waited for the copy and two
/// `fsync`s, once every ~75 health checks, and the more connectors, the more
/// distinct pages each copy wrote. Here a PASSIVE checkpoint, which takes no
/// write lock, copies beside the writers. The WAL starts over from its first
/// frame only at a write that finds every frame copied and no reader on it,
/// which does not happen while writes keep coming; so once the WAL holds
/// `restart_after` frames or more, a RESTART checkpoint copies the few frames
/// written since, under the writers' turn (API writes wait on SQLite's lock),
/// and waits for readers, so that the next write starts the log over.
pub(super) async fn checkpoint_pass(
    conn: &mut SqliteConnection,
    writer: &Writer,
    restart_after: i64,
) -> sqlx::Result<Checkpointed> {
    let (_, log, copied) = checkpoint(conn, "PASSIVE").await?;
    if log < restart_after {
        return Ok(Checkpointed {
            log,
            copied,
            restarted: false,
        });
    }
    let _turn = writer.lock().await;
    let (busy, log, copied) = checkpoint(conn, "RESTART").await?;
    Ok(Checkpointed {
        log,
        copied,
        restarted: !busy,
    })
}

/// Checkpoints the WAL every `CHECKPOINT_EVERY` until the store (its writer
/// turn) is dropped.
fn spawn_checkpointer(mut conn: SqliteConnection, writer: Weak<Writer>) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(CHECKPOINT_EVERY).await;
            let Some(writer) = writer.upgrade() else {
                break;
            };
            match checkpoint_pass(&mut conn, &writer, RESTART_AFTER_FRAMES).await {
                Ok(c) => tracing::debug!(
                    log = c.log,
                    copied = c.copied,
                    restarted = c.restarted,
                    "SQLite WAL checkpoint"
                ),
                Err(e) => tracing::warn!(error = %e, "checkpointing the SQLite WAL failed"),
            }
        }
        let _ = conn.close().await;
    });
}

/// Creates the database file readable by its owner only (like the key files),
/// or narrows an existing one to that. SQLite gives its `-wal` and `-shm` files
/// the database file's mode.
fn owner_only(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    if path.as_os_str().is_empty() || path.as_os_str() == ":memory:" {
        return Ok(());
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("restricting {} to its owner", path.display()))
}

/// The checkpointer's own connection to the store's file.
fn checkpointer_options(url: &str) -> anyhow::Result<SqliteConnectOptions> {
    Ok(SqliteConnectOptions::from_str(url)
        .context("parsing the SQLite URL")?
        // A RESTART checkpoint waits this long for a writer or reader
        // (while it holds the scheduler's turn), then tries again later.
        .busy_timeout(Duration::from_millis(200))
        .disable_statement_logging())
}

pub(super) async fn open(url: &str) -> anyhow::Result<SqlStore> {
    open_with(url, true).await
}

/// `open`, with or without the background checkpointer (tests drive
/// `checkpoint_pass` themselves).
async fn open_with(url: &str, checkpointer: bool) -> anyhow::Result<SqlStore> {
    sqlx::any::install_default_drivers();
    if let Some(path) = url
        .strip_prefix("sqlite://")
        .map(|p| p.split('?').next().unwrap_or(p))
    {
        if let Some(dir) = Path::new(path)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        owner_only(Path::new(path))?;
    }
    let opts = AnyConnectOptions::from_str(url).context("parsing the SQLite URL")?;
    // WAL lets readers run beside the single writer; a busy writer waits (the
    // busy timeout) instead of failing.
    let pool = AnyPoolOptions::new()
        .max_connections(8)
        .after_connect(|conn, _| Box::pin(set_pragmas(conn)))
        .connect_with(opts.clone())
        .await
        .context("opening the SQLite metadata store")?;
    let mut store = SqlStore::new(pool, "sqlite");
    store.migrate().await?;
    // Opened from the same options as the pool (an in-memory database is
    // then the pool's), after the migrations.
    let mut writer = opts
        .connect()
        .await
        .context("opening the SQLite store's writer connection")?;
    set_pragmas(&mut writer)
        .await
        .context("setting the SQLite writer's pragmas")?;
    store.writer = Some(Arc::new(tokio::sync::Mutex::new(writer)));
    let in_memory = url.contains(":memory:") || url.contains("mode=memory");
    if let (Some(writer), false, true) = (&store.writer, in_memory, checkpointer) {
        let conn = checkpointer_options(url)?
            .connect()
            .await
            .context("opening the SQLite checkpointer's connection")?;
        spawn_checkpointer(conn, Arc::downgrade(writer));
    }
    Ok(store)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &std::path::Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[tokio::test]
    async fn database_file_is_owner_only_new_or_existing() {
        let dir = std::env::temp_dir().join(format!(
            "matih-sqlite-mode-{}",
            uuid::Uuid::new_v4().simple()
        ));
        let fresh = dir.join("new/matih.db");
        super::open(&format!("sqlite://{}?mode=rwc", fresh.display()))
            .await
            .unwrap();
        assert_eq!(mode(&fresh), 0o600, "a new database file");
        let wal = dir.join("new/matih.db-wal");
        if wal.exists() {
            assert_eq!(mode(&wal), 0o600, "the WAL follows the database file");
        }
        // A file an older version created world-readable is narrowed.
        let old = dir.join("old.db");
        std::fs::write(&old, b"").unwrap();
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).unwrap();
        super::open(&format!("sqlite://{}?mode=rwc", old.display()))
            .await
            .unwrap();
        assert_eq!(mode(&old), 0o600, "an existing database file");
        std::fs::remove_dir_all(&dir).ok();
    }

    fn scratch(name: &str) -> (std::path::PathBuf, String) {
        let dir = std::env::temp_dir().join(format!(
            "matih-sqlite-{name}-{}",
            uuid::Uuid::new_v4().simple()
        ));
        let url = format!("sqlite://{}?mode=rwc", dir.join("m.db").display());
        (dir, url)
    }

    /// journal_mode, synchronous, foreign_keys, busy_timeout, wal_autocheckpoint.
    async fn pragmas(c: &mut sqlx::AnyConnection) -> (String, i64, i64, i64, i64) {
        use sqlx::Row;
        let text = |r: sqlx::any::AnyRow| r.try_get::<String, _>(0).unwrap();
        let int = |r: sqlx::any::AnyRow| r.try_get::<i64, _>(0).unwrap();
        let one = |q: &'static str| sqlx::query(q);
        (
            text(one("PRAGMA journal_mode").fetch_one(&mut *c).await.unwrap()),
            int(one("PRAGMA synchronous").fetch_one(&mut *c).await.unwrap()),
            int(one("PRAGMA foreign_keys").fetch_one(&mut *c).await.unwrap()),
            int(one("PRAGMA busy_timeout").fetch_one(&mut *c).await.unwrap()),
            int(one("PRAGMA wal_autocheckpoint")
                .fetch_one(&mut *c)
                .await
                .unwrap()),
        )
    }

    #[tokio::test]
    async fn every_pooled_connection_has_the_pragmas() {
        let (dir, url) = scratch("pragmas");
        let store = super::open(&url).await.unwrap();
        // synchronous 1 is NORMAL.
        let want = ("wal".to_owned(), 1, 1, 10_000, 10_000);
        // All eight at once: each one the pool opened, not one of them eight times.
        let mut held = Vec::new();
        for _ in 0..8 {
            held.push(store.pool.acquire().await.unwrap());
        }
        for conn in &mut held {
            assert_eq!(pragmas(conn).await, want);
        }
        drop(held);
        let mut writer = store
            .writer
            .as_ref()
            .expect("a SQLite store has a writer")
            .lock()
            .await;
        assert_eq!(pragmas(&mut writer).await, want, "the writer connection");
        drop(writer);
        std::fs::remove_dir_all(&dir).ok();
    }

    /// `PRAGMA data_version` on `conn`: it changes when another connection
    /// commits, not when `conn` itself does.
    async fn data_version(conn: &mut sqlx::AnyConnection) -> i64 {
        sqlx::query_scalar("PRAGMA data_version")
            .fetch_one(conn)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn the_schedulers_writes_all_commit_on_the_writer_connection() {
        use crate::model::ConnectorStatus;
        use crate::store::{ClaimCursor, HealthCheckRecord, MetadataStore, NewNotice};
        let (dir, url) = scratch("writer");
        let store = super::open_with(&url, false).await.unwrap();
        let (tenant, connector) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
        let at = "2026-12-06T10:00:00.000Z";
        sqlx::query(
            "INSERT INTO tenants (id, name, slug, tier, created_at, updated_at) \
             VALUES ($1, 't', 't', 'FREE', $2, $2)",
        )
        .bind(tenant.to_string())
        .bind(at)
        .execute(&store.pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO connectors (id, tenant_id, name, type, credential_secret_name, \
             ssl_enabled, status, metadata, timeouts, created_at, updated_at) \
             VALUES ($1, $2, 'c', 'POSTGRESQL', 's', 0, 'ACTIVE', '{}', '{}', $3, $3)",
        )
        .bind(connector.to_string())
        .bind(tenant.to_string())
        .bind(at)
        .execute(&store.pool)
        .await
        .unwrap();
        let writer = store.writer.clone().expect("a SQLite store has a writer");
        let before = data_version(&mut *writer.lock().await).await;
        let mut watcher = store.pool.acquire().await.unwrap();
        let watched = data_version(&mut watcher).await;

        // A claim, a record that queues a notice, its delivery, a failed
        // delivery, a claim given back: every statement of the scheduler.
        let later = "2026-12-06T10:01:00.000Z";
        let mut from = ClaimCursor::default();
        let leases = store
            .claim_health_checks("r1", 10, later, later, later, &mut from)
            .await
            .unwrap();
        assert_eq!(leases.len(), 1, "the one connector is due");
        let record = HealthCheckRecord {
            connector: leases[0],
            replica: "r1".into(),
            checked_at: later.into(),
            status: ConnectorStatus::Error,
            success: false,
            latency_ms: 1,
            error_code: Some("CONNECTION_REFUSED".into()),
            failed_step: Some("connect".into()),
            message: "refused".into(),
            next_at: at.into(),
            history_kept: 10,
        };
        let notice = |_: &crate::store::HealthTransition| {
            vec![NewNotice {
                id: uuid::Uuid::new_v4().to_string(),
                kind: "health".into(),
                payload: "{}".into(),
                once_key: None,
            }]
        };
        let status = store.record_health_check(&record, &notice).await.unwrap();
        assert_eq!(status, Some(ConnectorStatus::Error));
        let notices = store.lease_notices("r1", 10, later, later).await.unwrap();
        assert_eq!(notices.len(), 1, "the record queued its notice");
        store
            .notice_failed(&notices[0].id, at, "down")
            .await
            .unwrap();
        store.notice_delivered(&notices[0].id, later).await.unwrap();
        let mut from = ClaimCursor::default();
        let again = store
            .claim_health_checks("r1", 10, later, later, later, &mut from)
            .await
            .unwrap();
        assert_eq!(again.len(), 1, "due again");
        store.release_health_lease(again[0].id, "r1").await.unwrap();

        // The checkpointer's PASSIVE and RESTART checkpoints, and the
        // write that then starts the log over: none is another
        // connection's commit.
        use sqlx::ConnectOptions;
        let mut ckpt = super::checkpointer_options(&url)
            .unwrap()
            .connect()
            .await
            .unwrap();
        let passive = super::checkpoint_pass(&mut ckpt, &writer, i64::MAX)
            .await
            .unwrap();
        assert!(passive.log > 0 && !passive.restarted, "{passive:?}");
        let restart = super::checkpoint_pass(&mut ckpt, &writer, 1).await.unwrap();
        assert!(restart.restarted, "{restart:?}");
        let mut from = ClaimCursor::default();
        store
            .claim_health_checks("r1", 10, later, later, later, &mut from)
            .await
            .unwrap();
        let over = super::checkpoint_pass(&mut ckpt, &writer, i64::MAX)
            .await
            .unwrap();
        assert!(over.log < restart.log, "the log started over: {over:?}");
        sqlx::Connection::close(ckpt).await.unwrap();

        // Others saw the commits; the writer saw none from another
        // connection, so SQLite kept its page cache throughout.
        assert_ne!(
            data_version(&mut watcher).await,
            watched,
            "commits happened"
        );
        assert_eq!(
            data_version(&mut *writer.lock().await).await,
            before,
            "every commit came from the writer connection"
        );
        // And a commit from a pooled connection does show on the writer.
        sqlx::query("UPDATE tenants SET name = 'u'")
            .execute(&mut *watcher)
            .await
            .unwrap();
        assert_ne!(data_version(&mut *writer.lock().await).await, before);
        drop(watcher);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[tokio::test]
    async fn a_checkpoint_past_the_bound_copies_the_wal_whole_and_the_next_write_starts_it_over() {
        use sqlx::{ConnectOptions, Connection};
        let (dir, url) = scratch("checkpoint");
        let store = super::open_with(&url, false).await.unwrap();
        let writer = store
            .writer
            .clone()
            .expect("a SQLite store has a writer turn");
        sqlx::query("CREATE TABLE pages (b BLOB)")
            .execute(&store.pool)
            .await
            .unwrap();
        let write = |n: usize| {
            let pool = store.pool.clone();
            async move {
                for _ in 0..n {
                    sqlx::query("INSERT INTO pages (b) VALUES (zeroblob(4000))")
                        .execute(&pool)
                        .await
                        .unwrap();
                }
            }
        };
        write(40).await;
        let mut conn = super::checkpointer_options(&url)
            .unwrap()
            .connect()
            .await
            .unwrap();
        // Below the bound: copied beside the writers; with no reader on the
        // WAL, the next write starts it over by itself.
        let first = super::checkpoint_pass(&mut conn, &writer, i64::MAX)
            .await
            .unwrap();
        assert!(first.log >= 40, "{first:?}");
        assert_eq!(first.copied, first.log, "{first:?}");
        assert!(!first.restarted);
        write(1).await;
        // A reader on a snapshot inside the WAL (as while checks read their
        // connectors) keeps writes from starting the log over: it goes on.
        let mut reader = store.pool.acquire().await.unwrap();
        sqlx::query("BEGIN").execute(&mut *reader).await.unwrap();
        sqlx::query("SELECT count(*) FROM pages")
            .fetch_one(&mut *reader)
            .await
            .unwrap();
        write(40).await;
        let grown = super::checkpoint_pass(&mut conn, &writer, i64::MAX)
            .await
            .unwrap();
        assert!(grown.log > 40, "the log went on: {grown:?}");
        // At the bound, a RESTART checkpoint waits for the reader (a while),
        // and gives up until the next pass.
        let waited = super::checkpoint_pass(&mut conn, &writer, 1).await.unwrap();
        assert!(!waited.restarted, "{waited:?}");
        sqlx::query("COMMIT").execute(&mut *reader).await.unwrap();
        drop(reader);
        // Reader gone: copied whole under the turn, and the next write
        // starts the log over from its first frame.
        let restart = super::checkpoint_pass(&mut conn, &writer, 1).await.unwrap();
        assert!(restart.restarted, "{restart:?}");
        assert_eq!(restart.copied, restart.log, "{restart:?}");
        write(1).await;
        let after = super::checkpoint_pass(&mut conn, &writer, i64::MAX)
            .await
            .unwrap();
        assert!(after.log < grown.log, "the log started over: {after:?}");
        conn.close().await.unwrap();
        std::fs::remove_dir_all(&dir).ok();
    }
}
