//! SQLite: the embedded default.

use std::path::Path;
use std::str::FromStr;

use anyhow::Context;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};

use super::SqlStore;

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

pub(super) async fn open(url: &str) -> anyhow::Result<SqlStore> {
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
    // WAL lets readers run beside the single writer; a busy writer waits (sqlx's
    // 5 s busy timeout) instead of failing.
    let pool = AnyPoolOptions::new()
        .max_connections(8)
        .after_connect(|conn, _| {
            Box::pin(async move {
                for pragma in [
                    "PRAGMA journal_mode = WAL",
                    "PRAGMA synchronous = NORMAL",
                    "PRAGMA foreign_keys = ON",
                    "PRAGMA busy_timeout = 10000",
                ] {
                    sqlx::query(pragma).execute(&mut *conn).await?;
                }
                Ok(())
            })
        })
        .connect_with(opts)
        .await
        .context("opening the SQLite metadata store")?;
    let store = SqlStore::new(pool, "sqlite");
    store.migrate().await?;
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
}
