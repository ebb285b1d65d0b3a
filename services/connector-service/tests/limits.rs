//! The service's bounds (issue 10, findings 1–3): the production egress
//! profile, the HTTP server's timeouts and connection cap, the per-tenant cap
//! on in-flight calls, the caps on tenant timeouts, and cancellation when a
//! client goes away. The connectors use the real PostgreSQL driver against
//! in-test TCP listeners that accept and then say nothing ("silent"), so a
//! test or create stays in flight for as long as the test needs.

mod common;

use std::sync::Mutex;
use std::time::Duration;

use common::{Harness, JWT_SECRET};
use matih_connector_core::EgressPolicy;
use matih_connector_service::app::{app, AppState, Settings};
use matih_connector_service::auth::Verifier;
use matih_connector_service::limits::{Limits, LimitsConfig};
use matih_connector_service::secrets::local::LocalSecretStore;
use matih_connector_testkit::conformance::closed_port;
use matih_connector_testkit::egress::DeniedListener;
use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use uuid::Uuid;

/// The service with `egress` and `limits`, served by the service's own
/// server (`server::serve`), with every compiled driver.
async fn start(egress: EgressPolicy, limits: LimitsConfig) -> Harness {
    common::init();
    let dir = common::temp_dir("limits");
    let db = dir.join("meta.db");
    let store =
        matih_connector_service::store::open(&format!("sqlite://{}?mode=rwc", db.display()))
            .await
            .expect("metadata store");
    let secrets =
        std::sync::Arc::new(LocalSecretStore::new(dir.join("secrets"), [7u8; 32]).unwrap());
    let settings = Settings {
        egress,
        limits: Limits::new(&limits),
        discovery_wait: Duration::from_millis(0),
        ..Default::default()
    };
    let state = AppState::new(
        store,
        secrets,
        matih_connectors::registry(),
        Verifier::new(Some(JWT_SECRET), None).unwrap(),
        settings,
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = app(state.clone());
    let l = state.settings.limits.clone();
    tokio::spawn(async move {
        matih_connector_service::server::serve(listener, router, &l, std::future::pending())
            .await
            .unwrap()
    });
    Harness {
        base,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap(),
        state,
        dir,
        db_file: Some(db),
        responses: Mutex::new(Vec::new()),
    }
}

fn pg(name: &str, host: &str, port: u16, connect_ms: u64) -> Value {
    json!({
        "name": name, "type": "POSTGRESQL", "host": host, "port": port, "database": "db",
        "credentials": {"username": "reader", "password": "limits-pass-5Yz"},
        "timeouts": {"connectMs": connect_ms, "queryMs": 1000}
    })
}

/// A listener that accepts connections, keeps them open without a word and
/// hands each to the test.
async fn silent_listener() -> (u16, tokio::sync::mpsc::UnboundedReceiver<TcpStream>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            if tx.send(s).is_err() {
                return;
            }
        }
    });
    (port, rx)
}

/// The driver's connection: the runner's `tcp` step opens (and closes) one
/// first.
async fn driver_connection(rx: &mut tokio::sync::mpsc::UnboundedReceiver<TcpStream>) -> TcpStream {
    let _probe = rx.recv().await.expect("the tcp step's connection");
    rx.recv().await.expect("the driver's connection")
}

/// Waits (at most `within`) for the peer of `s` to close: true when it has.
async fn closed_by_peer(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    tokio::time::timeout(within, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// Secret files left in the local secret store (namespace folders aside).
fn secret_files(h: &Harness) -> usize {
    fn walk(p: &std::path::Path) -> usize {
        std::fs::read_dir(p).map_or(0, |d| {
            d.flatten()
                .map(|e| {
                    if e.path().is_dir() {
                        walk(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
    }
    walk(&h.dir.join("secrets"))
}

async fn connector_count(h: &Harness, tenant: Uuid) -> i64 {
    h.state
        .store
        .get_tenant(tenant)
        .await
        .unwrap()
        .unwrap()
        .connector_count
}

/// Production profile: a create to a loopback, RFC 1918, CGNAT, ULA, NAT64
/// or 6to4 address answers 403 EGRESS_DENIED at the dns step, before any
/// packet (a listener on the loopback address counts no connection), and
/// leaves no row, secret or slot behind.
#[tokio::test]
async fn production_profile_refuses_private_and_embedded_addresses_at_the_dns_step() {
    let h = start(
        EgressPolicy::production("").unwrap(),
        LimitsConfig::default(),
    )
    .await;
    let tenant = h.create_tenant("egress-prod", "ENTERPRISE").await;
    let token = h.tenant_token(tenant);
    let listener = DeniedListener::bind("127.0.0.1").await;
    let port = listener.addr.port();
    for (i, host) in [
        "127.0.0.1",
        "10.1.2.3",
        "100.64.0.1",
        "fd00::1",
        "64:ff9b::a9fe:a9fe",
        "2002:a9fe:a9fe::1",
        "64:ff9b::7f00:1",
    ]
    .into_iter()
    .enumerate()
    {
        let (s, v) = h
            .call(
                Method::POST,
                &format!("/api/v1/tenants/{tenant}/connectors"),
                &token,
                Some(pg(&format!("c{i}"), host, port, 2000)),
            )
            .await;
        assert_eq!(s, 403, "{host}: {v}");
        assert_eq!(v["code"], "EGRESS_DENIED", "{host}: {v}");
        assert_eq!(v["step"], "dns", "{host}: {v}");
    }
    assert_eq!(connector_count(&h, tenant).await, 0);
    assert!(h
        .state
        .store
        .list_connectors(tenant)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(secret_files(&h), 0);
    listener.assert_never_reached().await;
}

/// An allow CIDR (MATIH_EGRESS_ALLOW) re-enables one network under the
/// production profile: the create reaches the listener.
#[tokio::test]
async fn an_allow_cidr_re_enables_one_network_under_production() {
    let h = start(
        EgressPolicy::production("127.0.0.0/8").unwrap(),
        LimitsConfig::default(),
    )
    .await;
    let tenant = h.create_tenant("egress-allow", "ENTERPRISE").await;
    let (port, mut accepted) = silent_listener().await;
    let (s, v) = h
        .call(
            Method::POST,
            &format!("/api/v1/tenants/{tenant}/connectors"),
            &h.tenant_token(tenant),
            Some(pg("allowed", "127.0.0.1", port, 300)),
        )
        .await;
    // The silent listener never answers the startup message: a timeout after
    // the connection, not a refusal.
    assert_eq!(s, 201, "{v}");
    assert_ne!(v["testResult"]["errorCode"], "EGRESS_DENIED", "{v}");
    accepted
        .try_recv()
        .expect("the listener saw the connection");
    // 10.1.2.3 stays denied.
    let (s, v) = h
        .call(
            Method::POST,
            &format!("/api/v1/tenants/{tenant}/connectors"),
            &h.tenant_token(tenant),
            Some(pg("denied", "10.1.2.3", 5432, 300)),
        )
        .await;
    assert_eq!((s, v["code"].as_str()), (403, Some("EGRESS_DENIED")), "{v}");
}

/// Tenant timeouts above the caps are refused with 400 TIMEOUT_LIMIT_EXCEEDED
/// on create and update.
#[tokio::test]
async fn timeouts_above_the_caps_are_refused() {
    let h = start(EgressPolicy::default(), LimitsConfig::default()).await;
    let tenant = h.create_tenant("caps", "ENTERPRISE").await;
    let token = h.tenant_token(tenant);
    let base = format!("/api/v1/tenants/{tenant}/connectors");
    let (s, v) = h
        .call(
            Method::POST,
            &base,
            &token,
            Some(pg("big", "127.0.0.1", 1, 60_001)),
        )
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (400, Some("TIMEOUT_LIMIT_EXCEEDED")),
        "{v}"
    );
    assert_eq!(v["field"], "timeouts.connectMs");
    let mut body = pg("huge", "127.0.0.1", 1, 1000);
    body["timeouts"]["queryMs"] = json!(u64::MAX);
    let (s, v) = h.call(Method::POST, &base, &token, Some(body)).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (400, Some("TIMEOUT_LIMIT_EXCEEDED")),
        "{v}"
    );
    assert_eq!(connector_count(&h, tenant).await, 0);
    // At the cap is fine; the port is closed, so the test fails fast.
    let port = closed_port();
    let (s, v) = h
        .call(
            Method::POST,
            &base,
            &token,
            Some(pg("ok", "127.0.0.1", port, 60_000)),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let id = v["id"].as_str().unwrap();
    let (s, v) = h
        .call(
            Method::PUT,
            &format!("{base}/{id}"),
            &token,
            Some(json!({"timeouts": {"connectMs": 1000, "queryMs": 600_001}})),
        )
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (400, Some("TIMEOUT_LIMIT_EXCEEDED")),
        "{v}"
    );
    assert_eq!(v["field"], "timeouts.queryMs");
}

/// Creates a connector (a closed port: the create's test fails fast), then
/// points it at the silent listener with a long connect timeout.
async fn silent_connector(h: &Harness, tenant: Uuid, silent_port: u16) -> Uuid {
    let port = closed_port();
    let (s, v) = h
        .call(
            Method::POST,
            &format!("/api/v1/tenants/{tenant}/connectors"),
            &h.tenant_token(tenant),
            Some(pg("silent", "127.0.0.1", port, 60_000)),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let id: Uuid = v["id"].as_str().unwrap().parse().unwrap();
    let mut c = h
        .state
        .store
        .get_connector(tenant, id)
        .await
        .unwrap()
        .unwrap();
    c.port = Some(silent_port);
    assert!(h.state.store.update_connector(&c).await.unwrap());
    id
}

/// A `/test` against a silent listener whose client goes away after 1 s is
/// cancelled: the tenant's in-flight place is given back and the socket to
/// the listener is closed, each within 1 s.
#[tokio::test]
async fn a_test_whose_client_disconnects_releases_its_work() {
    let h = start(EgressPolicy::default(), LimitsConfig::default()).await;
    let tenant = h.create_tenant("cancel-test", "ENTERPRISE").await;
    let (port, mut accepted) = silent_listener().await;
    let id = silent_connector(&h, tenant, port).await;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let call = impatient
        .post(format!(
            "{}/api/v1/tenants/{tenant}/connectors/{id}/test",
            h.base
        ))
        .bearer_auth(h.tenant_token(tenant))
        .send();
    let (sent, mut upstream) = tokio::join!(call, driver_connection(&mut accepted));
    assert!(sent.unwrap_err().is_timeout());
    assert!(
        h.state
            .settings
            .limits
            .wait_in_flight_at_most(tenant, 0, Duration::from_secs(1))
            .await,
        "the in-flight place was not released"
    );
    assert!(
        closed_by_peer(&mut upstream, Duration::from_secs(1)).await,
        "the test's socket to the source stayed open"
    );
}

/// A create whose client goes away during its test: while it runs, it is
/// listed as a TESTING row (and in `createsInFlight`), holds its plan slot
/// through that row while its reservation lasts, and is left alone by the
/// health scheduler; after, its row, secret, reservation and slot are gone and
/// the FREE tenant can create again.
#[tokio::test]
async fn a_create_in_flight_is_visible_and_undone_when_the_client_goes() {
    let h = start(EgressPolicy::default(), LimitsConfig::default()).await;
    let tenant = h.create_tenant("cancel-create", "FREE").await;
    let token = h.tenant_token(tenant);
    let (port, mut accepted) = silent_listener().await;
    let url = format!("{}/api/v1/tenants/{tenant}/connectors", h.base);
    let body = pg("inflight", "127.0.0.1", port, 60_000).to_string();
    let client = h.client.clone();
    let t = token.clone();
    let call = tokio::spawn(async move {
        client
            .post(url)
            .bearer_auth(t)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
    });
    let _upstream = driver_connection(&mut accepted).await;
    let list = format!("/api/v1/tenants/{tenant}/connectors");
    let (s, v) = h.call(Method::GET, &list, &token, None).await;
    assert_eq!(s, 200);
    assert_eq!(
        (v["total"].as_u64(), v["createsInFlight"].as_u64()),
        (Some(1), Some(1)),
        "{v}"
    );
    assert_eq!(v["connectors"][0]["status"], "TESTING", "{v}");
    assert_eq!(connector_count(&h, tenant).await, 1);
    assert_eq!(secret_files(&h), 1);
    assert_eq!(h.state.settings.limits.in_flight(tenant), 1);
    let db = h.db_file.as_ref().expect("the harness's SQLite file");
    let pool = matih_connector_service::store::open_uncached(&format!(
        "sqlite://{}?mode=rwc",
        db.display()
    ))
    .await
    .expect("the metadata store's own pool")
    .pool()
    .clone();
    let reservations = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM create_reservations WHERE connector_id IS NOT NULL",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    assert_eq!(
        reservations().await,
        1,
        "the reservation lasts through the test and names the row"
    );
    // The health scheduler leaves a create in flight to the create's own test.
    let monitor = matih_connector_service::health::HealthMonitor::new(
        h.state.clone(),
        Default::default(),
        std::sync::Arc::new(matih_connector_service::health::LogNotifier),
        Some("limits".into()),
    )
    .unwrap();
    let due = matih_connector_service::model::ts(chrono::Utc::now());
    assert!(monitor.claim(10, &due).await.unwrap().is_empty());
    call.abort();
    assert!(
        h.state
            .settings
            .limits
            .wait_in_flight_at_most(tenant, 0, Duration::from_secs(1))
            .await,
        "the in-flight place was not released"
    );
    let gone = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let rows = h.state.store.list_connectors(tenant).await.unwrap().len();
            if rows == 0
                && connector_count(&h, tenant).await == 0
                && secret_files(&h) == 0
                && reservations().await == 0
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        gone.is_ok(),
        "the cancelled create's row, secret, reservation or slot stayed"
    );
    let (_, v) = h.call(Method::GET, &list, &token, None).await;
    assert_eq!(v["createsInFlight"], 0, "{v}");
    // The FREE tenant's slots are all free again.
    for i in 0..2 {
        let p = closed_port();
        let (s, v) = h
            .call(
                Method::POST,
                &list,
                &token,
                Some(pg(&format!("again{i}"), "127.0.0.1", p, 1000)),
            )
            .await;
        assert_eq!(s, 201, "{v}");
    }
}

/// MATIH_TENANT_MAX_IN_FLIGHT=1: a second test of the same tenant while one
/// runs answers 429 CONCURRENCY_LIMIT_EXCEEDED; another tenant is not
/// affected. MATIH_HTTP_REQUEST_TIMEOUT_SECS=1: the running one answers 504
/// REQUEST_TIMEOUT and gives its place back.
#[tokio::test]
async fn tenant_in_flight_cap_and_request_timeout() {
    let limits = LimitsConfig {
        tenant_max_in_flight: 1,
        http_request_timeout_secs: 2,
        ..Default::default()
    };
    let h = start(EgressPolicy::default(), limits).await;
    let tenant = h.create_tenant("cap-a", "ENTERPRISE").await;
    let other = h.create_tenant("cap-b", "ENTERPRISE").await;
    let (port, mut accepted) = silent_listener().await;
    let id = silent_connector(&h, tenant, port).await;
    let id_other = silent_connector(&h, other, port).await;
    let token = h.tenant_token(tenant);
    let first = {
        let (client, base, token) = (h.client.clone(), h.base.clone(), token.clone());
        tokio::spawn(async move {
            let r = client
                .post(format!(
                    "{base}/api/v1/tenants/{tenant}/connectors/{id}/test"
                ))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        })
    };
    let _upstream = driver_connection(&mut accepted).await;
    let (s, v) = h
        .call(
            Method::POST,
            &format!("/api/v1/tenants/{tenant}/connectors/{id}/test"),
            &token,
            None,
        )
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (429, Some("CONCURRENCY_LIMIT_EXCEEDED")),
        "{v}"
    );
    // Another tenant has its own places (its test times out too: 504).
    let (s, v) = h
        .call(
            Method::POST,
            &format!("/api/v1/tenants/{other}/connectors/{id_other}/test"),
            &h.tenant_token(other),
            None,
        )
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (504, Some("REQUEST_TIMEOUT")),
        "{v}"
    );
    let (s, v) = first.await.unwrap();
    assert_eq!(
        (s, v["code"].as_str()),
        (504, Some("REQUEST_TIMEOUT")),
        "{v}"
    );
    assert_eq!(h.state.settings.limits.in_flight(tenant), 0);
}

/// A client that sends its request headers one byte at a time is cut off
/// at the header timeout, and while connections are held at the connection
/// cap the next one waits (in the backlog) until one closes.
#[tokio::test]
async fn slow_headers_are_cut_and_connections_are_capped() {
    let limits = LimitsConfig {
        http_header_timeout_secs: 1,
        http_max_connections: 2,
        ..Default::default()
    };
    let h = start(EgressPolicy::default(), limits).await;
    let addr = h.base.trim_start_matches("http://").to_owned();
    let mut slow = TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"G").await.unwrap();
    assert!(
        closed_by_peer(&mut slow, Duration::from_secs(5)).await,
        "a partial request head was not cut off"
    );
    // Two held connections fill the cap; a third is answered only after one
    // of them is closed by the header timeout.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
        held.push(s);
    }
    let mut third = TcpStream::connect(&addr).await.unwrap();
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(10), third.read_to_string(&mut answer))
        .await
        .expect("the third connection is served once a slot frees")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // The cap held: the third was served only after a held one was closed.
    let mut buf = [0u8; 16];
    let closed_first = held
        .iter()
        .filter(|s| matches!(s.try_read(&mut buf), Ok(0)))
        .count();
    assert!(
        closed_first >= 1,
        "the third connection was served above the cap"
    );
    for mut s in held {
        assert!(closed_by_peer(&mut s, Duration::from_secs(5)).await);
    }
}

/// An idle keep-alive connection is closed after the idle timeout (here 1 s,
/// under a 30 s header timeout), once its response has been sent.
#[tokio::test]
async fn idle_keep_alive_connections_are_closed() {
    let limits = LimitsConfig {
        http_header_timeout_secs: 30,
        http_idle_timeout_secs: 1,
        ..Default::default()
    };
    let h = start(EgressPolicy::default(), limits).await;
    let addr = h.base.trim_start_matches("http://").to_owned();
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    assert!(
        closed_by_peer(&mut s, Duration::from_secs(10)).await,
        "an idle keep-alive connection stayed open"
    );
}

/// One `GET /healthz` on a kept-alive connection; its status line.
async fn healthz(s: &mut TcpStream) -> String {
    s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    let done = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0, "the connection was closed instead of answering");
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got);
            if let Some(end) = text.find("\r\n\r\n") {
                let len: usize = text[..end]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                if got.len() >= end + 4 + len {
                    return text.lines().next().unwrap_or_default().to_owned();
                }
            }
        }
    });
    done.await.expect("an answer within 10 s")
}

/// Whether `s` was closed cleanly (end of stream, no reset) within `within`.
async fn ended_cleanly(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(within, s.read(&mut buf)).await,
        Ok(Ok(0))
    )
}

/// The header timeout bounds a request head, not the wait for one: a
/// kept-alive connection with no byte of a next request stays open past
/// three header timeouts and answers, a next head that starts and stalls is
/// cut at the header timeout, and the idle connection is closed cleanly by
/// the idle timeout. A new connection that sends nothing is still cut at the
/// header timeout (its first head is timed from the accept). Timeouts here:
/// header 200 ms, idle 3 s; each step waits for an event (a close, an
/// answer), with a deadline.
#[tokio::test]
async fn idle_keep_alive_connections_last_until_the_idle_timeout() {
    let h = start(EgressPolicy::default(), LimitsConfig::default()).await;
    let mut limits = h.state.settings.limits.clone();
    limits.header_timeout = Duration::from_millis(200);
    limits.idle_timeout = Duration::from_secs(3);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = app(h.state.clone());
    tokio::spawn(async move {
        matih_connector_service::server::serve(listener, router, &limits, std::future::pending())
            .await
            .unwrap()
    });

    let mut idle = TcpStream::connect(addr).await.unwrap();
    assert!(healthz(&mut idle).await.starts_with("HTTP/1.1 200"));
    // Three new connections that send nothing, one after the other, are
    // each cut at the header timeout: three header timeouts pass while
    // `idle` waits without a byte.
    for _ in 0..3 {
        let mut silent = TcpStream::connect(addr).await.unwrap();
        assert!(
            closed_by_peer(&mut silent, Duration::from_secs(10)).await,
            "a new connection that sent nothing was not cut"
        );
    }
    assert!(
        healthz(&mut idle).await.starts_with("HTTP/1.1 200"),
        "an idle keep-alive connection did not outlive the header timeout"
    );
    // A next head that starts and stalls is cut at the header timeout,
    // while `idle` (idle since before that head began) is still open.
    let mut stalled = TcpStream::connect(addr).await.unwrap();
    assert!(healthz(&mut stalled).await.starts_with("HTTP/1.1 200"));
    stalled
        .write_all(b"GET /healthz HTTP/1.1\r\n")
        .await
        .unwrap();
    assert!(
        closed_by_peer(&mut stalled, Duration::from_secs(10)).await,
        "a started request head was not cut"
    );
    let mut buf = [0u8; 16];
    assert!(
        matches!(idle.try_read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the idle connection closed before the stalled head was cut"
    );
    assert!(
        ended_cleanly(&mut idle, Duration::from_secs(30)).await,
        "the idle connection was not closed cleanly by the idle timeout"
    );
}

/// The egress profile follows the secret store unless set:
/// MATIH_SECRET_STORE=kubernetes means production.
#[test]
fn the_egress_profile_follows_the_secret_store_unless_set() {
    use matih_connector_core::EgressProfile;
    use matih_connector_service::config::Config;
    let env = |pairs: &[(&str, &str)]| {
        let mut c = Config::default();
        c.apply_env(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .unwrap();
        c
    };
    assert_eq!(env(&[]).egress_profile(), EgressProfile::Embedded);
    let kube = env(&[("MATIH_SECRET_STORE", "kubernetes")]);
    assert_eq!(kube.egress_profile(), EgressProfile::Production);
    let s = Settings::from_config(&kube).unwrap();
    assert!(s.egress.check("10.1.2.3".parse().unwrap()).is_err());
    let laptop = env(&[
        ("MATIH_SECRET_STORE", "kubernetes"),
        ("MATIH_EGRESS_PROFILE", "embedded"),
    ]);
    assert_eq!(laptop.egress_profile(), EgressProfile::Embedded);
    let opened = env(&[
        ("MATIH_EGRESS_PROFILE", "production"),
        ("MATIH_EGRESS_ALLOW", "10.1.0.0/16"),
        ("MATIH_TENANT_MAX_IN_FLIGHT", "3"),
    ]);
    let s = Settings::from_config(&opened).unwrap();
    s.egress.check("10.1.2.3".parse().unwrap()).unwrap();
    s.egress.check("8.8.8.8".parse().unwrap()).unwrap();
    assert!(s.egress.check("10.2.0.1".parse().unwrap()).is_err());
    assert_eq!(s.limits.tenant_max_in_flight, 3);
    let mut bad = Config::default();
    assert!(bad
        .apply_env([("MATIH_EGRESS_PROFILE".to_owned(), "open".to_owned())])
        .is_err());
}

/// The binary says at start-up which egress profile it runs, with a warning
/// under `embedded` that loopback and private networks are reachable.
#[tokio::test]
async fn the_binary_warns_at_start_up_under_the_embedded_profile() {
    use tokio::io::AsyncBufReadExt;
    for (profile, expect) in [("", "WARN"), ("production", "INFO")] {
        let dir = common::temp_dir("bin-egress");
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_matih-connector-service"));
        for (k, _) in std::env::vars() {
            if k.starts_with("MATIH_") {
                cmd.env_remove(k);
            }
        }
        let mut child = cmd
            .env("MATIH_LISTEN", "127.0.0.1:0")
            .env("MATIH_DATA_DIR", &dir)
            .env("MATIH_EGRESS_PROFILE", profile)
            .env("MATIH_HEALTH_ENABLED", "false")
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let line = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(l) = lines.next_line().await.unwrap() {
                if l.contains("egress profile") {
                    return l;
                }
            }
            panic!("the service exited without naming its egress profile");
        })
        .await
        .expect("the service names its egress profile at start-up");
        assert!(line.contains(expect), "{line}");
        if profile.is_empty() {
            assert!(
                line.contains("embedded") && line.contains("loopback"),
                "{line}"
            );
        } else {
            assert!(line.contains("production"), "{line}");
        }
        let _ = child.kill().await;
    }
}
