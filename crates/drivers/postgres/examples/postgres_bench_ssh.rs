//! SSH tunnel benchmark: the PostgreSQL connectivity test direct against the
//! same test through the `ssh` fixture's bastion, on loopback, side by side
//! in one process, alternating so both see the same machine load.
//!
//! Run with the fixtures' variables set (`cargo xtask bench ssh` does):
//! `cargo run --release -p matih-driver-postgres --example postgres_bench_ssh [-- ROUNDS]`
//!
//! A tunnelled test pays for the bastion's TCP connection, the SSH key
//! exchange and authentication, and one channel; the figures say how much.

use std::time::{Duration, Instant};

use matih_connector_core::{
    run_test, ConnectionConfig, Credentials, EgressPolicy, SslMode, Step, TestOptions, TestReport,
};
use matih_driver_postgres::PostgresDriver;
use serde_json::json;

fn var(fixture: &str, key: &str) -> String {
    std::env::var(format!("MATIH_TEST_{fixture}_{key}")).unwrap_or_else(|_| {
        panic!("MATIH_TEST_{fixture}_{key} is not set: start the fixtures postgres and ssh first")
    })
}

fn summary(name: &str, mut xs: Vec<Duration>) {
    xs.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let pick = |q: f64| xs[((xs.len() - 1) as f64 * q).round() as usize];
    println!(
        "{name:<36} n={:<4} min {:>7.2} ms  median {:>7.2} ms  p95 {:>7.2} ms  max {:>7.2} ms",
        xs.len(),
        ms(xs[0]),
        ms(pick(0.5)),
        ms(pick(0.95)),
        ms(xs[xs.len() - 1])
    );
}

fn step_ms(r: &TestReport, step: Step) -> Duration {
    Duration::from_millis(r.step(step).map_or(0, |s| s.latency_ms))
}

#[tokio::main]
async fn main() {
    matih_connector_core::tls::install_default_provider();
    let rounds: usize = std::env::args()
        .nth(1)
        .map_or(50, |a| a.parse().expect("ROUNDS is a number"));
    let driver = PostgresDriver::new();
    let direct = ConnectionConfig {
        host: Some(var("POSTGRES", "HOST")),
        port: Some(var("POSTGRES", "PORT").parse().expect("port")),
        database: Some(var("POSTGRES", "DATABASE")),
        ssl_mode: Some(SslMode::Disable),
        ..Default::default()
    };
    let creds = Credentials::new()
        .with("username", var("POSTGRES", "USER"))
        .with("password", var("POSTGRES", "PASSWORD"));
    let mut tunnelled = direct.clone();
    tunnelled.host = Some(var("SSH", "TARGET_HOST"));
    tunnelled.metadata.insert(
        "sshTunnel".into(),
        json!({"host": var("SSH", "HOST"), "port": var("SSH", "PORT"),
               "username": var("SSH", "KEY_USER"), "hostKey": var("SSH", "HOST_KEY")}),
    );
    let key = std::fs::read_to_string(var("SSH", "KEY_FILE")).expect("the fixture's key");
    let tunnel_creds = creds.clone().with("sshPrivateKey", key);
    let opts = TestOptions {
        egress: EgressPolicy::allow_all(),
        ..Default::default()
    };

    // Warm-up: first connections, page cache, sshd's first fork.
    for _ in 0..3 {
        assert!(run_test(&driver, &direct, &creds, &opts).await.success);
        assert!(
            run_test(&driver, &tunnelled, &tunnel_creds, &opts)
                .await
                .success
        );
    }
    let (mut d, mut t, mut ssh_step, mut connect_direct, mut connect_tunnel) =
        (vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..rounds {
        let started = Instant::now();
        let r = run_test(&driver, &direct, &creds, &opts).await;
        d.push(started.elapsed());
        assert!(r.success, "{r:?}");
        connect_direct.push(step_ms(&r, Step::Connect));

        let started = Instant::now();
        let r = run_test(&driver, &tunnelled, &tunnel_creds, &opts).await;
        t.push(started.elapsed());
        assert!(r.success, "{r:?}");
        ssh_step.push(step_ms(&r, Step::Ssh));
        connect_tunnel.push(step_ms(&r, Step::Connect));
    }
    println!("PostgreSQL connectivity test, loopback, {rounds} rounds each (whole run_test):");
    summary("direct", d);
    summary("through the SSH bastion", t);
    println!("steps (report granularity, 1 ms):");
    summary("  direct: connect", connect_direct);
    summary("  tunnelled: ssh (kex + auth)", ssh_step);
    summary("  tunnelled: connect (channel+login)", connect_tunnel);
}
