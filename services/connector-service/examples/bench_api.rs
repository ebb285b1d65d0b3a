//! `cargo xtask bench api` (or `cargo run --release -p matih-connector-service
//! --example bench_api` with the POSTGRES fixture variables exported).
//!
//! Starts the service on its embedded defaults (SQLite + local secrets, in a
//! temporary data directory, on a free port) and prints, from one run:
//! requests/s and p50/p99 latency for GET one connector and for listing 1,000
//! connectors under 200 concurrent keep-alive clients; the list's latency with a
//! single client; and the `test` route's latency beside the driver's own test run
//! in-process against the same PostgreSQL fixture. Figures, not assertions.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use matih_connector_core::{run_test, ConnectionConfig, Credentials, TestOptions};
use matih_connector_service::app::{app, AppState};
use matih_connector_service::auth::{load_or_create_hs256_secret, mint_hs256, Role};
use matih_connector_service::config::Config;
use matih_connector_service::model::{ts, Connector, ConnectorStatus};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use uuid::Uuid;

const CLIENTS: usize = 200;
const RUN: Duration = Duration::from_secs(5);

/// A minimal HTTP/1.1 keep-alive client, so the load generator spends little of
/// the two cores it shares with the service.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    async fn open(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).ok();
        Conn {
            stream,
            buf: Vec::with_capacity(1 << 20),
        }
    }

    /// Sends a request and reads the whole response; returns the status.
    async fn send(&mut self, request: &[u8]) -> u16 {
        self.stream.write_all(request).await.expect("write");
        self.buf.clear();
        let mut chunk = [0u8; 65536];
        loop {
            let n = self.stream.read(&mut chunk).await.expect("read");
            assert!(n > 0, "server closed the connection");
            self.buf.extend_from_slice(&chunk[..n]);
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        l.strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap_or(0))
                    })
                    .unwrap_or(0);
                if self.buf.len() >= end + 4 + len {
                    return head[9..12].parse().unwrap_or(0);
                }
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn request(method: &str, path: &str, token: &str) -> Vec<u8> {
    format!("{method} {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\nContent-Length: 0\r\n\r\n").into_bytes()
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// `clients` connections sending requests built by `make` for `RUN`.
async fn load(
    addr: SocketAddr,
    clients: usize,
    make: Arc<dyn Fn(usize) -> Vec<u8> + Send + Sync>,
) -> (f64, Vec<Duration>, usize) {
    let deadline = Instant::now() + RUN;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let make = make.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(addr).await;
            let mut lat = Vec::new();
            let mut errors = 0usize;
            let mut i = c;
            while Instant::now() < deadline {
                let req = make(i);
                let t = Instant::now();
                if conn.send(&req).await != 200 {
                    errors += 1;
                }
                lat.push(t.elapsed());
                i += clients;
            }
            (lat, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.unwrap();
        all.extend(l);
        errors += e;
    }
    let rps = all.len() as f64 / started.elapsed().as_secs_f64();
    all.sort();
    (rps, all, errors)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    matih_connector_core::tls::install_default_provider();
    let dir = std::env::temp_dir().join(format!("matih-bench-api-{}", Uuid::new_v4().simple()));
    let config = Config {
        data_dir: dir.clone(),
        listen: "127.0.0.1:0".into(),
        log: "warn".into(),
        ..Config::default()
    };
    let state = AppState::from_config(&config).await?;
    let listener = tokio::net::TcpListener::bind(&config.listen).await?;
    let addr = listener.local_addr()?;
    let router = app(state.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });
    let secret = load_or_create_hs256_secret(None, &dir)?;
    println!(
        "service on {addr}: SQLite + local secrets in {}, {} clients, {} s per figure",
        dir.display(),
        CLIENTS,
        RUN.as_secs()
    );

    // 1,000 connectors in one tenant, written straight to the store: the
    // figures are about reading them.
    let platform = mint_hs256(&secret, Role::PlatformAdmin, None, "bench", 3600);
    let client = reqwest::Client::new();
    let tenant: serde_json::Value = client
        .post(format!("http://{addr}/api/v1/tenants"))
        .bearer_auth(&platform)
        .json(&serde_json::json!({"name": "Bench", "slug": "bench", "tier": "ENTERPRISE"}))
        .send()
        .await?
        .json()
        .await?;
    let tenant_id: Uuid = tenant["id"].as_str().expect("tenant id").parse()?;
    let token = mint_hs256(&secret, Role::TenantAdmin, Some(tenant_id), "bench", 3600);
    let mut ids = Vec::new();
    for i in 0..1000 {
        let id = Uuid::new_v4();
        let now = ts(chrono::Utc::now());
        state
            .store
            .insert_connector(&Connector {
                id,
                tenant_id,
                name: format!("connector {i}"),
                connector_type: matih_connector_core::ConnectorType::Postgresql,
                host: Some("db.internal".into()),
                port: Some(5432),
                database: Some("sales".into()),
                schema: Some("public".into()),
                credential_secret_name: format!("connector-{}", &id.simple().to_string()[..8]),
                ssl_enabled: true,
                ssl_mode: Some(matih_connector_core::SslMode::VerifyFull),
                ssl_ca_pem: None,
                status: ConnectorStatus::Active,
                last_tested_at: Some(now.clone()),
                last_test_result: Some("Connection successful".into()),
                last_error_code: None,
                metadata: Default::default(),
                timeouts: Default::default(),
                created_at: now.clone(),
                updated_at: now,
            })
            .await?;
        ids.push(id);
    }
    let ids = Arc::new(ids);

    let (tid, tok) = (tenant_id, token.clone());
    let get_one: Arc<dyn Fn(usize) -> Vec<u8> + Send + Sync> = {
        let ids = ids.clone();
        Arc::new(move |i| {
            request(
                "GET",
                &format!("/api/v1/tenants/{tid}/connectors/{}", ids[i % ids.len()]),
                &tok,
            )
        })
    };
    let (rps, lat, errors) = load(addr, CLIENTS, get_one).await;
    println!(
        "GET one connector      {CLIENTS} clients: {rps:>9.0} req/s  p50 {}  p99 {}  ({} requests, {errors} non-200)   target ≥ 20000 req/s, p99 < 10 ms",
        ms(pct(&lat, 0.5)),
        ms(pct(&lat, 0.99)),
        lat.len()
    );

    let tok = token.clone();
    let list: Arc<dyn Fn(usize) -> Vec<u8> + Send + Sync> =
        Arc::new(move |_| request("GET", &format!("/api/v1/tenants/{tid}/connectors"), &tok));
    let (rps, lat, errors) = load(addr, CLIENTS, list.clone()).await;
    println!(
        "list 1,000 connectors  {CLIENTS} clients: {rps:>9.0} req/s  p50 {}  p99 {}  ({} requests, {errors} non-200)",
        ms(pct(&lat, 0.5)),
        ms(pct(&lat, 0.99)),
        lat.len()
    );
    let mut one = Conn::open(addr).await;
    let mut lat = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        one.send(&list(0)).await;
        lat.push(t.elapsed());
    }
    lat.sort();
    println!(
        "list 1,000 connectors    1 client : p50 {}  p99 {}   target < 20 ms",
        ms(pct(&lat, 0.5)),
        ms(pct(&lat, 0.99))
    );

    // The test route beside the driver's own test, same fixture, alternating.
    let vars: std::collections::BTreeMap<String, String> = std::env::vars()
        .filter_map(|(k, v)| {
            k.strip_prefix("MATIH_TEST_POSTGRES_")
                .map(|k| (k.to_owned(), v))
        })
        .collect();
    let Some(host) = vars.get("HOST") else {
        println!("test route vs driver: skipped (MATIH_TEST_POSTGRES_HOST is not set; run through `cargo xtask bench api`)");
        std::fs::remove_dir_all(&dir).ok();
        return Ok(());
    };
    let body = serde_json::json!({
        "name": "fixture", "type": "POSTGRESQL", "host": host, "port": vars["PORT"].parse::<u16>()?,
        "database": vars["DATABASE"], "sslEnabled": false,
        "credentials": {"username": vars["USER"], "password": vars["PASSWORD"]},
    });
    let created: serde_json::Value = client
        .post(format!(
            "http://{addr}/api/v1/tenants/{tenant_id}/connectors"
        ))
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(created["status"], "ACTIVE", "{created}");
    let cid = created["id"].as_str().unwrap().to_owned();
    let driver = state
        .registry
        .get(&matih_connector_core::ConnectorType::Postgresql)?;
    let cfg = ConnectionConfig {
        host: Some(host.clone()),
        port: Some(vars["PORT"].parse()?),
        database: Some(vars["DATABASE"].clone()),
        ssl_enabled: Some(false),
        ..Default::default()
    };
    let creds = Credentials::new()
        .with("username", vars["USER"].as_str())
        .with("password", vars["PASSWORD"].as_str());
    let route_req = request(
        "POST",
        &format!("/api/v1/tenants/{tenant_id}/connectors/{cid}/test"),
        &token,
    );
    let mut conn = Conn::open(addr).await;
    let (mut route, mut direct) = (Vec::new(), Vec::new());
    for _ in 0..50 {
        let t = Instant::now();
        assert_eq!(conn.send(&route_req).await, 200);
        route.push(t.elapsed());
        let t = Instant::now();
        let r = run_test(&*driver, &cfg, &creds, &TestOptions::default()).await;
        direct.push(t.elapsed());
        assert!(r.success);
    }
    route.sort();
    direct.sort();
    let (r50, d50) = (pct(&route, 0.5), pct(&direct, 0.5));
    println!(
        "test route             1 client : p50 {}  p99 {}\ndriver test in-process 1 client : p50 {}  p99 {}\nroute overhead (p50)             : {}   target ≤ 2 ms",
        ms(r50),
        ms(pct(&route, 0.99)),
        ms(d50),
        ms(pct(&direct, 0.99)),
        ms(r50.saturating_sub(d50))
    );
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}
