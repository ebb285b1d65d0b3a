//! The peers of `cargo xtask bench api`, each run as its own process:
//!
//! ```text
//! bench_peer serve ADDR          a bare axum server: GET /json/{n} answers an
//!                                n-byte JSON body (the limit the service's
//!                                GET routes are measured against); GET /items
//!                                is the API the REST connectors of the
//!                                benchmark point at
//! bench_peer driver-test URL N   the REST driver's own connectivity test
//!                                against URL, N times, in this process;
//!                                prints `p50_us p99_us`
//! ```
//!
//! The load comes from `wrk`, a third process: a load generator inside the
//! measured process competes with it for the cores and measures itself.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use matih_connector_core::{run_test, ConnectionConfig, Credentials, TestOptions};

/// Bodies by size, built once: the handler itself is a map lookup.
type Bodies = Arc<RwLock<HashMap<usize, Bytes>>>;

/// `{"pad":"xxx…"}` of exactly `n` bytes (at least the 10 of the frame).
fn json_body(n: usize) -> Bytes {
    let frame = r#"{"pad":""}"#.len();
    let mut s = String::with_capacity(n.max(frame));
    s.push_str(r#"{"pad":""#);
    s.extend(std::iter::repeat_n('x', n.saturating_sub(frame)));
    s.push_str(r#""}"#);
    Bytes::from(s)
}

async fn json(State(bodies): State<Bodies>, Path(n): Path<usize>) -> impl IntoResponse {
    let n = n.min(16 << 20);
    let hit = bodies
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .get(&n)
        .cloned();
    let body = match hit {
        Some(b) => b,
        None => {
            let b = json_body(n);
            bodies
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(n, b.clone());
            b
        }
    };
    ([(CONTENT_TYPE, "application/json")], body)
}

async fn items() -> impl IntoResponse {
    (
        [(CONTENT_TYPE, "application/json")],
        r#"[{"id":1,"name":"a","price":1.5},{"id":2,"name":"b","price":2.5}]"#,
    )
}

async fn serve(addr: &str) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let router = Router::new()
        .route("/json/{n}", get(json))
        .route("/items", get(items))
        .with_state(Bodies::default());
    axum::serve(listener, router).await?;
    Ok(())
}

async fn driver_test(url: &str, runs: usize) -> anyhow::Result<()> {
    matih_connector_core::tls::install_default_provider();
    let url: reqwest::Url = url.parse()?;
    let cfg = ConnectionConfig {
        host: url.host_str().map(str::to_owned),
        port: url.port(),
        ssl_enabled: Some(false),
        metadata: serde_json::from_value(serde_json::json!({
            "scheme": "http", "endpoints": ["/items"],
        }))?,
        ..Default::default()
    };
    let registry = matih_connectors::registry();
    let driver = registry.get(&matih_connector_core::ConnectorType::Rest)?;
    let creds = Credentials::new();
    let mut took = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        let r = run_test(&*driver, &cfg, &creds, &TestOptions::default()).await;
        took.push(t.elapsed());
        anyhow::ensure!(r.success, "the driver's test failed: {:?}", r.message);
    }
    took.sort();
    let at = |p: f64| -> Duration {
        took.get(((took.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or_default()
    };
    println!("{} {}", at(0.5).as_micros(), at(0.99).as_micros());
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["serve", addr] => serve(addr).await,
        ["driver-test", url, runs] => driver_test(url, runs.parse()?).await,
        _ => anyhow::bail!("usage: bench_peer serve ADDR | driver-test URL RUNS"),
    }
}
