//! Crash recovery on the PostgreSQL metadata store (the production one): the
//! service binary is killed with SIGKILL while creates are in flight against a
//! silent listener (their secrets and their early TESTING rows written, their
//! tests hanging), then started again. Reconciliation must delete the TESTING
//! rows of the dead creates, bring every tenant's slot count back to its row
//! count, remove the secrets the dead creates left (named on their
//! reservations, so at any age), and let the FREE tenant, whose two slots the
//! dead creates held, create again.
//!
//! Every wait is on an observable event (secret files, database rows, the
//! service answering) with a deadline; nothing sleeps in the hope that
//! something happened.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use matih_connector_service::auth::{mint_hs256, Role};
use matih_connector_testkit::fixture;
use serde_json::{json, Value};
use uuid::Uuid;

mod common;

use common::pg::{drop_database, fresh_database};
use common::until;

const JWT: &str = "crash-recovery-jwt-secret-0123456789abcdef";

/// The service binary, killed with SIGKILL when dropped (or by `crash`).
struct Service {
    child: Child,
    base: String,
}

impl Service {
    async fn start(url: &str, data: &Path, log: &Path) -> Service {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_matih-connector-service"));
        for (k, _) in std::env::vars() {
            if k.starts_with("MATIH_") {
                cmd.env_remove(k);
            }
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = cmd
            .env("MATIH_LISTEN", format!("127.0.0.1:{port}"))
            .env("MATIH_DATA_DIR", data)
            .env("MATIH_DATABASE_URL", url)
            .env("MATIH_JWT_SECRET", JWT)
            .env("MATIH_HEALTH_ENABLED", "false")
            .env("MATIH_DISCOVERY_WAIT_MS", "0")
            .env("MATIH_EGRESS_ALLOW", "127.0.0.0/8")
            // Fast repair for the test: a dead create's lease ends after 2 s
            // and reconciliation runs every second. The orphan age stays at
            // its default (900 s): the dead creates' secrets must go because
            // their expired reservations name them, not by the age rule.
            .env("MATIH_CREATE_LEASE_SECS", "2")
            .env("MATIH_RECONCILE_INTERVAL_SECS", "1")
            .env("MATIH_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let s = Service {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let client = reqwest::Client::new();
        until("the service answers /readyz", || async {
            client
                .get(format!("{}/readyz", s.base))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        })
        .await;
        s
    }

    fn crash(mut self) {
        // std's kill is SIGKILL on Unix: no shutdown code runs.
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn secret_files(data: &Path, slug: &str) -> BTreeSet<String> {
    let dir: PathBuf = data.join("secrets").join(format!("matih-{slug}"));
    match std::fs::read_dir(&dir) {
        Ok(rd) => rd
            .filter_map(|e| {
                e.ok()?
                    .file_name()
                    .to_str()?
                    .strip_suffix(".secret")
                    .map(str::to_owned)
            })
            .collect(),
        Err(_) => BTreeSet::new(),
    }
}

/// The tenant's rows with status TESTING, read directly.
async fn testing_rows(db: &sqlx::PgPool, tenant: Uuid) -> i64 {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM connectors WHERE tenant_id = $1 AND status = 'TESTING'",
    )
    .bind(tenant.to_string())
    .fetch_one(db)
    .await
    .unwrap()
}

/// (slot count, row count, the rows' secret names) of a tenant, read directly.
async fn slots_and_rows(db: &sqlx::PgPool, tenant: Uuid) -> (i64, i64, BTreeSet<String>) {
    let count: i64 = sqlx::query_scalar("SELECT connector_count FROM tenants WHERE id = $1")
        .bind(tenant.to_string())
        .fetch_one(db)
        .await
        .unwrap();
    let names: Vec<String> =
        sqlx::query_scalar("SELECT credential_secret_name FROM connectors WHERE tenant_id = $1")
            .bind(tenant.to_string())
            .fetch_all(db)
            .await
            .unwrap();
    (count, names.len() as i64, names.into_iter().collect())
}

fn body(name: &str, port: u16) -> Value {
    json!({
        "name": name, "type": "POSTGRESQL", "host": "127.0.0.1", "port": port,
        "database": "db", "sslMode": "disable",
        "credentials": {"username": "crash-user", "password": "crash-password-value"},
        "timeouts": {"connectMs": 60000, "queryMs": 60000}
    })
}

async fn create(client: &reqwest::Client, base: &str, tenant: Uuid, name: &str, port: u16) -> u16 {
    let tok = mint_hs256(JWT.as_bytes(), Role::TenantAdmin, Some(tenant), "t", 3600);
    client
        .post(format!("{base}/api/v1/tenants/{tenant}/connectors"))
        .bearer_auth(tok)
        .json(&body(name, port))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

#[tokio::test]
async fn sigkill_with_creates_in_flight_then_restart_repairs_slots_and_secrets() {
    let Some(fx) = fixture(
        "POSTGRES",
        "sigkill_with_creates_in_flight_then_restart_repairs_slots_and_secrets",
    ) else {
        return;
    };
    matih_connector_core::tls::install_default_provider();
    let (admin, dbname, url) = fresh_database(&fx, "matih_crash_").await;
    let work = std::env::temp_dir().join(format!("matih-crash-{}", Uuid::new_v4().simple()));
    let data = work.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let log = work.join("service.log");

    // Silent: the kernel completes the handshake (backlog), nothing ever
    // reads or answers, so a create's test hangs in its connect step.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    // Refusing at once: a create finishes quickly (saved, test failed).
    let closing = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closing_port = closing.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((s, _)) = closing.accept().await {
            drop(s);
        }
    });

    let svc = Service::start(&url, &data, &log).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let admin_tok = mint_hs256(JWT.as_bytes(), Role::PlatformAdmin, None, "p", 3600);
    let mut tenants = Vec::new();
    for (slug, tier) in [("crash-ent", "ENTERPRISE"), ("crash-free", "FREE")] {
        let r = client
            .post(format!("{}/api/v1/tenants", svc.base))
            .bearer_auth(&admin_tok)
            .json(&json!({"name": slug, "slug": slug, "tier": tier}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let v: Value = r.json().await.unwrap();
        tenants.push((slug, v["id"].as_str().unwrap().parse::<Uuid>().unwrap()));
    }
    let (ent, free) = (tenants[0].1, tenants[1].1);
    for i in 0..3 {
        assert_eq!(
            create(&client, &svc.base, ent, &format!("saved-{i}"), closing_port).await,
            201
        );
    }
    // In flight: 6 for the enterprise tenant, both FREE slots.
    let mut flying = Vec::new();
    for (tenant, n) in [(ent, 6), (free, 2)] {
        for i in 0..n {
            let (client, base) = (client.clone(), svc.base.clone());
            flying.push(tokio::spawn(async move {
                create(&client, &base, tenant, &format!("flying-{i}"), silent_port).await
            }));
        }
    }
    // Each in-flight create is visible as a TESTING row (its secret written
    // before it) while its test hangs on the silent listener.
    let db = sqlx::PgPool::connect(&url).await.unwrap();
    until(
        "every in-flight create has written its secret and TESTING row",
        || async {
            secret_files(&data, "crash-ent").len() == 3 + 6
                && secret_files(&data, "crash-free").len() == 2
                && testing_rows(&db, ent).await == 6
                && testing_rows(&db, free).await == 2
        },
    )
    .await;
    svc.crash();
    for f in flying {
        assert_eq!(f.await.unwrap(), 0, "no create answered: the process died");
    }

    // What the crash left: TESTING rows holding the slots, their secrets,
    // and reservations naming both.
    let (count, rows, _) = slots_and_rows(&db, ent).await;
    assert_eq!((count, rows), (9, 9), "before restart");
    let (count, rows, _) = slots_and_rows(&db, free).await;
    assert_eq!((count, rows), (2, 2), "before restart");
    let named: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM create_reservations \
         WHERE connector_id IS NOT NULL AND secret_name IS NOT NULL",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(
        named, 8,
        "each dead create's reservation names its row and secret"
    );

    let svc = Service::start(&url, &data, &log).await;
    for (slug, tenant) in &tenants {
        until(
            &format!("{slug}: dead creates' TESTING rows gone, slots equal rows, orphans gone"),
            || async {
                let (count, rows, names) = slots_and_rows(&db, *tenant).await;
                testing_rows(&db, *tenant).await == 0
                    && count == rows
                    && secret_files(&data, slug) == names
            },
        )
        .await;
    }
    assert_eq!(slots_and_rows(&db, ent).await.1, 3);
    // The FREE tenant creates again, up to its limit and no further.
    for i in 0..2 {
        assert_eq!(
            create(
                &client,
                &svc.base,
                free,
                &format!("again-{i}"),
                closing_port
            )
            .await,
            201
        );
    }
    assert_eq!(
        create(&client, &svc.base, free, "one-too-many", closing_port).await,
        403
    );
    let (count, rows, names) = slots_and_rows(&db, free).await;
    assert_eq!((count, rows), (2, 2));
    assert_eq!(secret_files(&data, "crash-free"), names);
    drop(silent);
    drop(svc);
    db.close().await;
    drop_database(&admin, &dbname).await;
    std::fs::remove_dir_all(&work).ok();
}
