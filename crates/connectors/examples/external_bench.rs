//! What a custom type costs: the connectivity test and discovery of the same
//! PostgreSQL database through our native driver and through the Singer tap
//! `tap-postgres` run as a custom type (`cargo xtask bench external` starts the
//! `postgres` and `external` fixtures and runs this). Figures, no target.
//!
//! Rounds: `MATIH_BENCH_ROUNDS` (default 3). Each round runs, in turn, the
//! native test, the native discovery (open + discover), the tap's test and
//! the tap's discovery (open + discover: one tap run).

use std::time::{Duration, Instant};

use matih_connectors::core::{
    open, run_test, ConnectionConfig, Credentials, DiscoveryRequest, Driver, EgressPolicy,
    NameFilter, SslMode, TestOptions,
};
use serde_json::Value;

fn var(k: &str) -> String {
    std::env::var(k).unwrap_or_else(|_| panic!("{k} is not set: run `cargo xtask bench external`"))
}

async fn test_ms(driver: &dyn Driver, cfg: &ConnectionConfig, creds: &Credentials) -> Duration {
    let t = Instant::now();
    let report = run_test(driver, cfg, creds, &TestOptions::default()).await;
    assert!(report.success, "{}", report.message);
    t.elapsed()
}

async fn discover_ms(
    driver: &dyn Driver,
    cfg: &ConnectionConfig,
    creds: &Credentials,
    req: &DiscoveryRequest,
) -> (Duration, usize, usize) {
    let t = Instant::now();
    let mut conn = open(driver, cfg, creds, &EgressPolicy::default())
        .await
        .unwrap();
    let catalog = conn.discover(req).await.unwrap();
    let _ = conn.close().await;
    (t.elapsed(), catalog.table_count(), catalog.column_count())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    matih_connectors::core::tls::install_default_provider();
    let rounds: usize = std::env::var("MATIH_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let (host, port, db) = (
        var("MATIH_TEST_POSTGRES_HOST"),
        var("MATIH_TEST_POSTGRES_PORT").parse::<u16>().unwrap(),
        var("MATIH_TEST_POSTGRES_DATABASE"),
    );
    let (user, password) = (
        var("MATIH_TEST_POSTGRES_USER"),
        var("MATIH_TEST_POSTGRES_PASSWORD"),
    );
    let mut registry = matih_connectors::registry();
    let types = format!(
        "[custom_types.PG_TAP]\nprotocol = \"singer\"\ncommand = [{:?}]\ntimeout_secs = 600\n",
        var("MATIH_TEST_EXTERNAL_TAP_POSTGRES")
    );
    matih_connectors::install_custom_types(&mut registry, &[&types]).unwrap();

    let native = registry.get(&"POSTGRESQL".parse().unwrap()).unwrap();
    let native_cfg = ConnectionConfig {
        host: Some(host.clone()),
        port: Some(port),
        database: Some(db.clone()),
        ssl_mode: Some(SslMode::Require),
        ..Default::default()
    };
    let native_creds = Credentials::new()
        .with("username", user.as_str())
        .with("password", password.as_str());

    let tap = registry.get(&"PG_TAP".parse().unwrap()).unwrap();
    let mut tap_cfg = ConnectionConfig::default();
    tap_cfg.timeouts.query_ms = 600_000;
    for (k, v) in [
        ("host", Value::from(host)),
        ("port", Value::from(port)),
        ("user", Value::from(user)),
        ("database", Value::from(db)),
    ] {
        tap_cfg.metadata.insert(k.into(), v);
    }
    let tap_creds = Credentials::new().with("password", password.as_str());
    // The same schemas on both sides: the native driver leaves the system
    // schemas out by default, the tap is told to through the filter.
    let tap_req = DiscoveryRequest {
        schemas: NameFilter {
            include: vec![],
            exclude: vec!["information_schema".into(), "pg_catalog".into()],
        },
        ..Default::default()
    };

    let (mut nt, mut nd, mut tt, mut td) = (vec![], vec![], vec![], vec![]);
    let (mut native_size, mut tap_size) = ((0, 0), (0, 0));
    for round in 1..=rounds {
        nt.push(test_ms(&*native, &native_cfg, &native_creds).await);
        let (d, t, c) = discover_ms(
            &*native,
            &native_cfg,
            &native_creds,
            &DiscoveryRequest::default(),
        )
        .await;
        nd.push(d);
        native_size = (t, c);
        tt.push(test_ms(&*tap, &tap_cfg, &tap_creds).await);
        let (d, t, c) = discover_ms(&*tap, &tap_cfg, &tap_creds, &tap_req).await;
        td.push(d);
        tap_size = (t, c);
        eprintln!("round {round}/{rounds} done");
    }
    let row = |what: &str, native: Duration, tap: Duration| {
        println!(
            "{what:<28} {:>10.1} {:>12.1} {:>8.1}x",
            native.as_secs_f64() * 1000.0,
            tap.as_secs_f64() * 1000.0,
            tap.as_secs_f64() / native.as_secs_f64().max(1e-9)
        );
    };
    println!(
        "external bench: PostgreSQL fixture, {rounds} rounds, medians (native: {} tables / {} columns; tap: {} tables / {} columns)",
        native_size.0, native_size.1, tap_size.0, tap_size.1
    );
    println!(
        "{:<28} {:>10} {:>12} {:>9}",
        "", "native ms", "tap ms", "ratio"
    );
    row("connectivity test", median(nt), median(tt));
    row("discovery (open + discover)", median(nd), median(td));
}
