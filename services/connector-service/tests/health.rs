//! Health monitoring against the real PostgreSQL fixture: a TCP proxy in front
//! of it is stopped, restarted, held and slowed down; notices go to an in-test
//! webhook receiver that checks the HMAC signature; two monitors share one
//! PostgreSQL metadata store.
//!
//! Nothing here waits for time to pass in the hope that something happened:
//! rounds are driven by calling `sweep`/`deliver_pending` directly (interval 0
//! makes every connector due at each sweep), a check in flight is held at the
//! proxy until the test has looked at it, and the running loops are followed
//! through history rows, outbox rows and the receiver's own count, each with a
//! deadline. Where the scheduler compares stored instants with the clock (the
//! next due time, a dead replica's lease), the test moves the stored instant
//! instead of sleeping until the clock reaches it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use matih_connector_service::app::{app, AppState, Settings};
use matih_connector_service::auth::{mint_hs256, Role, Verifier};
use matih_connector_service::connection_test::Thresholds;
use matih_connector_service::health::{
    HealthMonitor, HealthSettings, LogNotifier, Notifier, WebhookNotifier,
};
use matih_connector_service::model::{parse_ts, ts, Connector, ConnectorStatus, Tenant};
use matih_connector_service::secrets::local::LocalSecretStore;
use matih_connector_service::secrets::SecretStore;
use matih_connector_testkit::{fixture, Fixture};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower::ServiceExt;
use uuid::Uuid;

mod common;

use common::pg::{drop_database, fresh_database};
use common::webhook::{Receiver, HOOK_SECRET};
use common::{own_pool, until, within};

const JWT: &[u8] = b"health-test-jwt-secret-0123456789abcdef";
/// The POSTGRESQL WARNING threshold: a check slower than this passes as WARNING.
const SLOW_MS: u64 = 5000;

/// Check history is ordered by a millisecond timestamp: returns once the clock
/// has left the millisecond it is in, so the next check sorts after the last.
async fn next_millisecond() {
    let now = ts(chrono::Utc::now());
    while ts(chrono::Utc::now()) == now {
        tokio::task::yield_now().await;
    }
}

/// A TCP proxy in front of the fixture that can be stopped (connections are
/// then refused), restarted on the same port, held (connections are accepted
/// and counted but not forwarded until it opens) and told to delay each new
/// connection before it reaches the server (a slow peer).
struct Proxy {
    port: u16,
    upstream: SocketAddr,
    delay_ms: Arc<AtomicU64>,
    /// Connections accepted so far.
    accepted: Arc<watch::Sender<u64>>,
    /// Whether accepted connections may go on to the server.
    open: Arc<watch::Sender<bool>>,
    task: Mutex<Option<JoinHandle<()>>>,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Proxy {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let p = Proxy {
            port: l.local_addr().unwrap().port(),
            upstream,
            delay_ms: Arc::default(),
            accepted: Arc::new(watch::channel(0).0),
            open: Arc::new(watch::channel(true).0),
            task: Mutex::new(None),
            conns: Arc::default(),
        };
        p.serve(l);
        p
    }

    fn serve(&self, l: TcpListener) {
        let (upstream, delay, conns) = (self.upstream, self.delay_ms.clone(), self.conns.clone());
        let (accepted, open) = (self.accepted.clone(), self.open.clone());
        let t = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = l.accept().await {
                let delay = delay.load(Ordering::SeqCst);
                let mut open = open.subscribe();
                accepted.send_modify(|n| *n += 1);
                let h = tokio::spawn(async move {
                    let _ = open.wait_for(|o| *o).await;
                    // The slow peer: every new connection takes this long.
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                    if let Ok(mut out) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                });
                conns.lock().unwrap().push(h);
            }
        });
        *self.task.lock().unwrap() = Some(t);
    }

    /// Stops listening and cuts open connections; returns once the port is closed.
    async fn down(&self) {
        let task = self.task.lock().unwrap().take();
        if let Some(t) = task {
            t.abort();
            let _ = t.await;
        }
        let conns: Vec<_> = self.conns.lock().unwrap().drain(..).collect();
        for c in conns {
            c.abort();
            let _ = c.await;
        }
    }

    async fn up(&self) {
        let l = TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("rebinding the proxy port");
        self.serve(l);
    }

    /// Waits until `n` connections have been accepted in all.
    async fn accepted(&self, n: u64) {
        let mut rx = self.accepted.subscribe();
        within(
            &format!("{n} connections at the proxy"),
            rx.wait_for(|a| *a >= n),
        )
        .await
        .unwrap();
    }

    fn hold(&self) {
        self.open.send_replace(false);
    }

    fn release(&self) {
        self.open.send_replace(true);
    }
}

async fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

fn settings(interval_ms: u64) -> HealthSettings {
    HealthSettings {
        interval: Duration::from_millis(interval_ms),
        concurrency: 8,
        check_timeout: Duration::from_secs(30),
        jitter: Duration::ZERO,
        poll: Duration::from_millis(100),
        lease: Duration::from_secs(60),
        history_kept: 50,
        retry_base: Duration::from_millis(100),
        retry_max: Duration::from_millis(400),
        delivery_poll: Duration::from_millis(100),
    }
}

async fn state(url: &str, secrets_dir: &std::path::Path) -> AppState {
    matih_connector_core::tls::install_default_provider();
    let store = matih_connector_service::store::open(url).await.unwrap();
    let secrets: Arc<dyn SecretStore> =
        Arc::new(LocalSecretStore::new(secrets_dir.to_path_buf(), [7u8; 32]).unwrap());
    AppState::new(
        store,
        secrets,
        matih_connectors::registry(),
        Verifier::new(Some(JWT), None).unwrap(),
        Settings {
            thresholds: Thresholds {
                warning_ms: 2000,
                // Far above a login on a loaded machine, far below the check timeout.
                warning_ms_by_type: BTreeMap::from([("POSTGRESQL".to_owned(), SLOW_MS)]),
                ..Default::default()
            },
            ..Settings::default()
        },
    )
}

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("matih-health-{tag}-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

async fn tenant(state: &AppState) -> Tenant {
    common::saved_tenant(state, "Health \"tenant\" ü").await
}

/// A POSTGRESQL connector to `port` on the fixture's host, saved directly.
async fn connector(
    state: &AppState,
    t: &Tenant,
    fx: &Fixture,
    name: &str,
    port: u16,
    status: ConnectorStatus,
) -> Connector {
    let to = common::Target {
        host: fx.require("HOST"),
        port,
        database: fx.require("DATABASE"),
        username: fx.require("USER"),
        password: fx.require("PASSWORD"),
    };
    common::saved_connector(state, t, name, to, status).await
}

async fn status_of(state: &AppState, c: &Connector) -> Connector {
    state
        .store
        .get_connector(c.tenant_id, c.id)
        .await
        .unwrap()
        .unwrap()
}

async fn checks_of(pool: &sqlx::AnyPool, id: Uuid) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM health_checks WHERE connector_id = $1")
        .bind(id.to_string())
        .fetch_one(pool)
        .await
        .unwrap()
}

fn upstream(fx: &Fixture) -> SocketAddr {
    format!("{}:{}", fx.require("HOST"), fx.port())
        .parse()
        .unwrap()
}

fn webhook(port: u16) -> Arc<dyn Notifier> {
    Arc::new(
        WebhookNotifier::new(
            &format!("http://127.0.0.1:{port}/hook"),
            HOOK_SECRET,
            Duration::from_secs(2),
        )
        .unwrap(),
    )
}

#[tokio::test]
async fn error_recovery_warning_and_inactive_with_signed_webhook() {
    let Some(fx) = fixture(
        "POSTGRES",
        "error_recovery_warning_and_inactive_with_signed_webhook",
    ) else {
        return;
    };
    let dir = temp_dir("flow");
    let url = format!("sqlite://{}/m.db?mode=rwc", dir.display());
    let state = state(&url, &dir.join("secrets")).await;
    let db = own_pool(&url).await;
    let proxy = Proxy::start(upstream(&fx)).await;
    let receiver = Receiver::default();
    let hook_port = free_port().await;
    let _hook = receiver.listen(hook_port).await;
    let t = tenant(&state).await;
    let a = connector(
        &state,
        &t,
        &fx,
        "via proxy",
        proxy.port,
        ConnectorStatus::Active,
    )
    .await;
    let off = connector(
        &state,
        &t,
        &fx,
        "disabled",
        fx.port(),
        ConnectorStatus::Inactive,
    )
    .await;
    // Interval 0: each sweep is a round that tests the connector again.
    let m = HealthMonitor::new(
        state.clone(),
        settings(0),
        webhook(hook_port),
        Some("r1".into()),
    )
    .unwrap();

    // Round 1: reachable.
    let s = m.sweep().await.unwrap();
    assert_eq!((s.checked, s.active), (1, 1), "{s:?}");
    assert_eq!(status_of(&state, &a).await.status, ConnectorStatus::Active);
    assert_eq!(m.deliver_pending().await.unwrap(), 0);

    // Round 2: the server is unreachable → ERROR and one notice.
    proxy.down().await;
    next_millisecond().await;
    let s = m.sweep().await.unwrap();
    assert_eq!(s.error, 1, "{s:?}");
    let now = status_of(&state, &a).await;
    assert_eq!(now.status, ConnectorStatus::Error);
    assert_eq!(now.last_error_code.as_deref(), Some("CONNECTION_REFUSED"));
    assert!(now.last_tested_at.is_some() && now.last_test_result.is_some());
    assert_eq!(m.deliver_pending().await.unwrap(), 1);
    assert_eq!(receiver.events(), ["connector.error"]);
    {
        let got = receiver.got.lock().unwrap();
        let n = &got[0];
        assert_eq!(n["connectorId"], a.id.to_string());
        assert_eq!(n["tenantId"], t.id.to_string());
        assert_eq!(n["errorCode"], "CONNECTION_REFUSED");
        assert_eq!(n["failedStep"], "tcp");
        assert_eq!(n["previousStatus"], "ACTIVE");
        assert!(n["lastSuccessAt"].is_string(), "{n}");
        assert!(n["latencyMs"].is_u64() && n["message"].is_string(), "{n}");
    }

    // Rounds 3 and 4: still down → still ERROR, nobody re-notified.
    for _ in 0..2 {
        next_millisecond().await;
        assert_eq!(m.sweep().await.unwrap().error, 1);
        m.deliver_pending().await.unwrap();
    }
    assert_eq!(receiver.events(), ["connector.error"]);

    // Round 5: back → ACTIVE and one recovery notice.
    proxy.up().await;
    next_millisecond().await;
    assert_eq!(m.sweep().await.unwrap().active, 1);
    assert_eq!(status_of(&state, &a).await.status, ConnectorStatus::Active);
    assert_eq!(m.deliver_pending().await.unwrap(), 1);
    assert_eq!(
        receiver.events(),
        ["connector.error", "connector.recovered"]
    );
    assert_eq!(receiver.got.lock().unwrap()[1]["status"], "ACTIVE");

    // Round 6: slow (above the POSTGRESQL threshold) → WARNING; TESTING while
    // the check runs. The proxy holds the check's connection until the TESTING
    // status has been read, then delays it past the threshold.
    proxy.delay_ms.store(SLOW_MS + 300, Ordering::SeqCst);
    proxy.hold();
    let seen = *proxy.accepted.borrow();
    next_millisecond().await;
    let sweep = tokio::spawn({
        let m = m.clone();
        async move { m.sweep().await.unwrap() }
    });
    proxy.accepted(seen + 1).await;
    assert_eq!(status_of(&state, &a).await.status, ConnectorStatus::Testing);
    proxy.release();
    let s = within("the slow sweep", sweep).await.unwrap();
    assert_eq!(s.warning, 1, "{s:?}");
    assert_eq!(status_of(&state, &a).await.status, ConnectorStatus::Warning);
    m.deliver_pending().await.unwrap();
    assert_eq!(receiver.events().len(), 2, "WARNING is not a notice");
    assert_eq!(receiver.bad_signatures.load(Ordering::SeqCst), 0);

    // INACTIVE was never tested.
    let off_now = status_of(&state, &off).await;
    assert_eq!(off_now.status, ConnectorStatus::Inactive);
    assert!(off_now.last_tested_at.is_none());
    assert_eq!(checks_of(&db, off.id).await, 0);

    // The history route, newest first.
    let token = mint_hs256(JWT, Role::TenantAdmin, Some(t.id), "admin", 600);
    let resp = app(state.clone())
        .oneshot(
            Request::get(format!(
                "/api/v1/tenants/{}/connectors/{}/health?limit=10",
                t.id, a.id
            ))
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    let h: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let statuses: Vec<&str> = h["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["WARNING", "ACTIVE", "ERROR", "ERROR", "ERROR", "ACTIVE"]
    );
    assert_eq!(h["status"], "WARNING");
    assert_eq!(h["checks"][1]["errorCode"], serde_json::Value::Null);
    assert_eq!(h["checks"][2]["errorCode"], "CONNECTION_REFUSED");
    assert!(h["lastSuccessAt"].is_string());

    let metrics = state.metrics.render();
    for line in [
        "matih_health_checks_total{error_code=\"CONNECTION_REFUSED\",result=\"ERROR\"} 3",
        "matih_health_checks_total{error_code=\"none\",result=\"WARNING\"} 1",
        "matih_health_notifications_total{outcome=\"delivered\"} 2",
        "matih_health_check_duration_seconds_count{type=\"POSTGRESQL\"} 6",
    ] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }
    m.refresh_status_gauge().await.unwrap();
    assert!(state
        .metrics
        .render()
        .contains("matih_connectors_by_status{status=\"INACTIVE\"} 1"));
    proxy.down().await;
}

#[tokio::test]
async fn a_notice_survives_a_down_receiver_and_a_restart() {
    let Some(fx) = fixture(
        "POSTGRES",
        "a_notice_survives_a_down_receiver_and_a_restart",
    ) else {
        return;
    };
    let dir = temp_dir("outbox");
    let url = format!("sqlite://{}/m.db?mode=rwc", dir.display());
    let state1 = state(&url, &dir.join("secrets")).await;
    let proxy = Proxy::start(upstream(&fx)).await;
    proxy.down().await;
    let hook_port = free_port().await;
    let receiver = Receiver::default();
    let t = tenant(&state1).await;
    let a = connector(
        &state1,
        &t,
        &fx,
        "failing",
        proxy.port,
        ConnectorStatus::Active,
    )
    .await;

    // First process, the receiver down: three sweeps see ERROR and queue one
    // notice; three delivery passes fail, each backing off twice as long
    // (100, 200, 400 ms). Rather than sleep through a backoff, the test moves
    // the notice's stored due instant to now.
    let m1 = HealthMonitor::new(
        state1.clone(),
        settings(0),
        webhook(hook_port),
        Some("before-restart".into()),
    )
    .unwrap();
    for _ in 0..3 {
        next_millisecond().await;
        assert_eq!(m1.sweep().await.unwrap().error, 1);
    }
    let pool = own_pool(&url).await;
    let next_attempt = || async {
        let (at, attempts): (String, i64) =
            sqlx::query_as("SELECT next_attempt_at, attempts FROM notification_outbox")
                .fetch_one(&pool)
                .await
                .unwrap();
        (parse_ts(&at).unwrap(), attempts)
    };
    for (done, backoff_ms) in [(1, 100), (2, 200), (3, 400)] {
        sqlx::query("UPDATE notification_outbox SET next_attempt_at = $1")
            .bind(ts(chrono::Utc::now()))
            .execute(&pool)
            .await
            .unwrap();
        next_millisecond().await;
        let before = chrono::Utc::now();
        assert_eq!(m1.deliver_pending().await.unwrap(), 0);
        let after = chrono::Utc::now();
        let (at, attempts) = next_attempt().await;
        assert_eq!(attempts, done);
        let backoff = chrono::Duration::milliseconds(backoff_ms);
        // Stored to the millisecond, so up to 1 ms before the exact instant.
        let earliest = before + backoff - chrono::Duration::milliseconds(1);
        assert!(
            earliest <= at && at <= after + backoff,
            "attempt {done}: next at {at}, expected {backoff_ms} ms after {before}..{after}"
        );
    }
    assert_eq!(status_of(&state1, &a).await.status, ConnectorStatus::Error);
    let (pending, last_error): (i64, Option<String>) = sqlx::query_as(
        "SELECT COUNT(*), MAX(last_error) FROM notification_outbox WHERE delivered_at IS NULL",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(pending, 1, "one notice although three sweeps saw ERROR");
    assert!(last_error.unwrap().contains("webhook request failed"));
    assert_eq!(
        m1.metrics()
            .notifications
            .with_label_values(&["failed"])
            .get(),
        3
    );
    drop((m1, pool, state1));

    // "Restart": a new state and monitor on the same store, its scheduler and
    // delivery loops running; the receiver is up.
    let state2 = state(&url, &dir.join("secrets")).await;
    let pool = own_pool(&url).await;
    let _hook = receiver.listen(hook_port).await;
    let running = HealthMonitor::new(
        state2.clone(),
        settings(0),
        webhook(hook_port),
        Some("after-restart".into()),
    )
    .unwrap()
    .spawn();
    receiver.received(1).await;
    // Two more checks by the loop (still failing) add no notice: a check's
    // notice is written in the same transaction as its history row.
    let seen = checks_of(&pool, a.id).await;
    until("two more scheduled checks", || async {
        checks_of(&pool, a.id).await >= seen + 2
    })
    .await;
    running.stop();
    let (total, delivered): (i64, i64) =
        sqlx::query_as("SELECT COUNT(*), COUNT(delivered_at) FROM notification_outbox")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((total, delivered), (1, 1));
    assert_eq!(receiver.events(), ["connector.error"]);
    assert_eq!(
        receiver.got.lock().unwrap()[0]["connectorId"],
        a.id.to_string()
    );
    assert_eq!(receiver.bad_signatures.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn two_replicas_on_postgres_test_each_connector_once_per_round() {
    let Some(fx) = fixture(
        "POSTGRES",
        "two_replicas_on_postgres_test_each_connector_once_per_round",
    ) else {
        return;
    };
    let (admin, db, url) = fresh_database(&fx, "matih_health_").await;
    let dir = temp_dir("replicas");
    let a_state = state(&url, &dir.join("secrets")).await;
    let b_state = state(&url, &dir.join("secrets")).await;
    let t = tenant(&a_state).await;
    let proxy = Proxy::start(upstream(&fx)).await;
    let mut ids = Vec::new();
    for i in 0..24 {
        let c = connector(
            &a_state,
            &t,
            &fx,
            &format!("pg {i} \"q\" é"),
            proxy.port,
            ConnectorStatus::Active,
        )
        .await;
        ids.push(c.id);
    }
    // An hour between rounds: nothing becomes due by itself while the test
    // runs, however slow the machine; a new round is made by moving every
    // connector's stored due instant to now.
    let log: Arc<dyn Notifier> = Arc::new(LogNotifier);
    let mut s = settings(3_600_000);
    s.concurrency = 4;
    let pool = own_pool(&url).await;
    let a = HealthMonitor::new(a_state.clone(), s.clone(), log.clone(), Some("a".into())).unwrap();
    let b = HealthMonitor::new(b_state.clone(), s.clone(), log.clone(), Some("b".into())).unwrap();
    let counts = || async {
        let mut out = Vec::new();
        for id in &ids {
            out.push(checks_of(&pool, *id).await);
        }
        out
    };

    // Round 1: both replicas sweep at once. The proxy holds connections until
    // each replica has its first four checks in flight, so both get work.
    proxy.hold();
    let (ra, rb, ()) = tokio::join!(a.sweep(), b.sweep(), async {
        proxy.accepted(2 * s.concurrency as u64).await;
        proxy.release();
    });
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(ra.checked + rb.checked, 24, "{ra:?} {rb:?}");
    assert!(ra.checked > 0 && rb.checked > 0, "{ra:?} {rb:?}");
    assert_eq!(counts().await, vec![1; 24]);

    // Round 2: a third replica claims five connectors and dies; the others
    // take the rest now and those five once the dead one's lease expires.
    sqlx::query("UPDATE connectors SET health_next_at = $1")
        .bind(ts(chrono::Utc::now()))
        .execute(&pool)
        .await
        .unwrap();
    let mut long = s.clone();
    long.lease = Duration::from_secs(3600);
    let dead = HealthMonitor::new(a_state.clone(), long, log.clone(), Some("dead".into())).unwrap();
    let held = dead.claim(5, &ts(chrono::Utc::now())).await.unwrap();
    assert_eq!(held.len(), 5);
    let (ra, rb) = tokio::join!(a.sweep(), b.sweep());
    assert_eq!(ra.unwrap().checked + rb.unwrap().checked, 19);
    for h in &held {
        assert_eq!(checks_of(&pool, h.id).await, 1, "held by the dead replica");
    }
    let statuses = || async {
        let rows: Vec<(String, String)> = sqlx::query_as("SELECT id, status FROM connectors")
            .fetch_all(&pool)
            .await
            .unwrap();
        rows.into_iter().collect::<BTreeMap<_, _>>()
    };
    let now = statuses().await;
    for h in &held {
        assert_eq!(
            now[&h.id.to_string()],
            "TESTING",
            "left by the dead replica"
        );
    }
    // The dead replica's lease runs out (its stored end moved to the past).
    let expired = sqlx::query(
        "UPDATE connectors SET health_lease_until = $1 WHERE health_lease_owner = 'dead'",
    )
    .bind(ts(chrono::Utc::now() - chrono::Duration::seconds(1)))
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(expired.rows_affected(), 5);
    let (ra, rb) = tokio::join!(a.sweep(), b.sweep());
    assert_eq!(ra.unwrap().checked + rb.unwrap().checked, 5);
    assert_eq!(counts().await, vec![2; 24]);
    let (dead_rows, replicas): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*) FILTER (WHERE replica = 'dead'), COUNT(DISTINCT replica) FROM health_checks",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((dead_rows, replicas), (0, 2));
    // Nobody is left TESTING: the dead replica's five were taken over and
    // finished (ACTIVE, or WARNING when the loaded machine made a login slow).
    let end = statuses().await;
    assert!(end.values().all(|s| s != "TESTING"), "{end:?}");

    proxy.down().await;
    drop((a, b, dead, pool, a_state, b_state));
    drop_database(&admin, &db).await;
}

/// An HTTPS webhook whose receiver's certificate comes from a private CA:
/// configured with `MATIH_NOTIFY_WEBHOOK_CA_FILE` (through the same
/// `notifier_from_config` the binary uses) it receives the signed ERROR
/// notice; with the public roots only, the handshake is refused.
#[tokio::test]
async fn https_webhook_with_a_private_ca_receives_the_signed_error_notice() {
    let dir = temp_dir("https-hook");
    let state = state(
        &format!("sqlite://{}/m.db?mode=rwc", dir.display()),
        &dir.join("secrets"),
    )
    .await;
    let receiver = Receiver::default();
    let (addr, ca_pem) = receiver.listen_tls().await;
    let url = format!("https://localhost:{}/hook", addr.port());

    // Public roots only: the private CA is not trusted, nothing is received.
    let public_only = WebhookNotifier::new(&url, HOOK_SECRET, Duration::from_secs(5)).unwrap();
    let probe = matih_connector_service::health::Notice {
        id: "probe".into(),
        kind: "connector.error".into(),
        body: "{}".into(),
    };
    let err = within("a refused handshake", public_only.deliver(&probe))
        .await
        .unwrap_err();
    assert!(err.contains("webhook request failed"), "{err}");
    assert_eq!(*receiver.count.borrow(), 0);

    // The CA file configured: the ERROR notice arrives, signed.
    let ca_file = dir.join("webhook-ca.pem");
    std::fs::write(&ca_file, &ca_pem).unwrap();
    let mut cfg = matih_connector_service::health::HealthConfig::default();
    for (k, v) in [
        ("NOTIFY_WEBHOOK_URL", url.as_str()),
        (
            "NOTIFY_WEBHOOK_SECRET",
            std::str::from_utf8(HOOK_SECRET).unwrap(),
        ),
        ("NOTIFY_WEBHOOK_CA_FILE", ca_file.to_str().unwrap()),
        ("NOTIFY_LOG", "false"),
    ] {
        assert!(cfg.apply_env(k, v).unwrap(), "{k}");
    }
    let notifier = matih_connector_service::health::notifier_from_config(&cfg).unwrap();

    // A connector whose server went away: a closed loopback port.
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    };
    let t = tenant(&state).await;
    let to = common::Target {
        host: "127.0.0.1",
        port: closed,
        database: "db",
        username: "u",
        password: "not-used-here",
    };
    let c = common::saved_connector(&state, &t, "gone", to, ConnectorStatus::Active).await;
    let m = HealthMonitor::new(state.clone(), settings(0), notifier, Some("tls".into())).unwrap();
    assert_eq!(m.sweep().await.unwrap().error, 1);
    assert_eq!(m.deliver_pending().await.unwrap(), 1);
    receiver.received(1).await;
    assert_eq!(receiver.events(), ["connector.error"]);
    assert_eq!(
        receiver.got.lock().unwrap()[0]["connectorId"],
        c.id.to_string()
    );
    assert_eq!(receiver.bad_signatures.load(Ordering::SeqCst), 0);
    std::fs::remove_dir_all(&dir).ok();
}
