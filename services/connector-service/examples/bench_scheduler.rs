//! One health sweep over N connectors: sweep time, checks per second, peak RSS.
//!
//! ```text
//! cargo run --release -p matih-connector-service --example bench_scheduler -- --connectors 10000
//! ```
//!
//! `--database-url postgres://…` runs it on a PostgreSQL store instead: a
//! fresh database is created beside the one the URL names, and dropped after.
//! `cargo xtask bench scheduler` runs 10,000, 50,000 and 100,000 connectors on
//! both stores and prints the ratios.
//!
//! The connectors are of a custom type `BENCH` whose driver opens a real TCP
//! connection to one of four in-process listeners (accept, then close) and
//! answers the version and access-probe steps itself: the figures measure the
//! scheduler (claims, the core's step-wise test, the per-check transaction with
//! history and retention in the embedded SQLite store, cache invalidation),
//! not a database server's login. The store is a SQLite file in a temporary
//! directory, the settings are the defaults (concurrency 64).
//!
//! Besides checks per second it prints the rate in each tenth of the sweep
//! and the process's CPU time per check, which a loaded machine moves less
//! than the wall-clock rate.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use matih_connector_core::{
    async_trait, Capabilities, Catalog, Checked, ConnectContext, Connection, ConnectorError,
    ConnectorType, Credentials, DiscoveryRequest, Driver, DriverDescriptor, Key, Prepared,
    Registry, SslMode, Timeouts,
};
use matih_connector_service::app::{AppState, Settings};
use matih_connector_service::auth::Verifier;
use matih_connector_service::health::{HealthConfig, HealthMonitor, LogNotifier};
use matih_connector_service::model::{ts, Connector, ConnectorStatus, Tenant, Tier};
use matih_connector_service::secrets::{SecretError, SecretRef, SecretStore};
use uuid::Uuid;

struct BenchDriver(DriverDescriptor);

#[async_trait]
impl Driver for BenchDriver {
    fn descriptor(&self) -> &DriverDescriptor {
        &self.0
    }
    fn prepare(&self, spec: Checked<'_>) -> Result<Box<dyn Prepared>, ConnectorError> {
        let (host, port) = spec.config().host_and_port(self.0.default_port)?;
        Ok(Box::new(BenchSettings { host, port }))
    }
}

#[derive(Debug)]
struct BenchSettings {
    host: String,
    port: u16,
}

#[async_trait]
impl Prepared for BenchSettings {
    fn endpoint(&self) -> Option<(&str, u16)> {
        Some((&self.host, self.port))
    }
    async fn connect(&self, ctx: &ConnectContext) -> Result<Box<dyn Connection>, ConnectorError> {
        let s = tokio::net::TcpStream::connect(ctx.addrs[0])
            .await
            .map_err(|e| ConnectorError::from_io(e, "connecting"))?;
        drop(s);
        Ok(Box::new(BenchConn))
    }
}

struct BenchConn;

#[async_trait]
impl Connection for BenchConn {
    async fn server_version(&mut self) -> Result<String, ConnectorError> {
        Ok("bench 1".into())
    }
    async fn probe(&mut self, _req: &DiscoveryRequest) -> Result<(), ConnectorError> {
        Ok(())
    }
    async fn discover(&mut self, _req: &DiscoveryRequest) -> Result<Catalog, ConnectorError> {
        Ok(Catalog::default())
    }
    async fn close(self: Box<Self>) -> Result<(), ConnectorError> {
        Ok(())
    }
}

/// Every connector shares one set of credentials, held in memory.
struct MemorySecrets(Credentials);

#[async_trait]
impl SecretStore for MemorySecrets {
    fn kind(&self) -> &'static str {
        "memory"
    }
    async fn create(&self, _r: &SecretRef, _c: &Credentials) -> Result<(), SecretError> {
        Ok(())
    }
    async fn get(&self, _r: &SecretRef) -> Result<Credentials, SecretError> {
        Ok(self.0.clone())
    }
    async fn replace(&self, _r: &SecretRef, _c: &Credentials) -> Result<(), SecretError> {
        Ok(())
    }
    async fn delete(&self, _r: &SecretRef) -> Result<(), SecretError> {
        Ok(())
    }
    async fn list(&self, _ns: &str) -> Result<Vec<String>, SecretError> {
        Ok(vec![])
    }
}

/// This process's user + system CPU time in seconds.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    // utime and stime are fields 14 and 15; the state (field 3) follows ')'.
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut n: usize = 10_000;
    let mut concurrency: Option<usize> = None;
    let mut postgres: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--connectors" => n = args.next().unwrap_or_default().parse()?,
            "--concurrency" => concurrency = Some(args.next().unwrap_or_default().parse()?),
            "--database-url" => postgres = args.next(),
            other => {
                anyhow::bail!("unknown argument {other}; use --connectors N [--concurrency C] [--database-url postgres://…]")
            }
        }
    }
    matih_connector_core::tls::install_default_provider();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();

    let mut ports = Vec::new();
    for _ in 0..4 {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        ports.push(l.local_addr()?.port());
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                drop(s);
            }
        });
    }

    let dir = std::env::temp_dir().join(format!("matih-bench-sched-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    // PostgreSQL: a fresh database beside the named one, dropped at the end.
    let fresh = match &postgres {
        Some(url) => {
            use sqlx::ConnectOptions;
            // The harness's own CREATE and DROP DATABASE are not the
            // store's statements: they are not logged as slow ones.
            let admin_opts = url
                .parse::<sqlx::postgres::PgConnectOptions>()?
                .disable_statement_logging();
            let name = format!("matih_sched_{}", Uuid::new_v4().simple());
            let mut admin = admin_opts.connect().await?;
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut admin)
                .await?;
            let (base, _) = url.rsplit_once('/').unwrap_or((url.as_str(), ""));
            Some((admin, name.clone(), format!("{base}/{name}")))
        }
        None => None,
    };
    let store_url = match &fresh {
        Some((_, _, url)) => url.clone(),
        None => format!("sqlite://{}/m.db?mode=rwc", dir.display()),
    };
    let store = matih_connector_service::store::open(&store_url).await?;
    let backend = store.backend();
    let ty = ConnectorType::Custom("BENCH".into());
    let mut registry = Registry::new();
    registry.register(Arc::new(BenchDriver(DriverDescriptor {
        connector_type: ty.clone(),
        display_name: "Bench",
        default_port: None,
        credential_keys: vec![Key::optional("password", "password")],
        metadata_keys: vec![],
        capabilities: Capabilities::default(),
    })));
    let state = AppState::new(
        store,
        Arc::new(MemorySecrets(Credentials::new().with("password", "x"))),
        registry,
        Verifier::new(Some(b"bench-only-secret-0123456789abcdef"), None)?,
        Settings::default(),
    );

    let setup = Instant::now();
    let now = ts(chrono::Utc::now());
    let tenant = Tenant {
        id: Uuid::new_v4(),
        name: "bench".into(),
        slug: "bench".into(),
        tier: Tier::Enterprise,
        connector_count: 0,
        created_at: now.clone(),
        updated_at: now.clone(),
    };
    state.store.create_tenant(&tenant).await?;
    for i in 0..n {
        let c = Connector {
            id: Uuid::new_v4(),
            tenant_id: tenant.id,
            name: format!("bench {i}"),
            connector_type: ty.clone(),
            host: Some("127.0.0.1".into()),
            port: Some(ports[i % ports.len()]),
            database: None,
            schema: None,
            credential_secret_name: format!("connector-{i:08x}"),
            ssl_enabled: false,
            ssl_mode: Some(SslMode::Disable),
            ssl_ca_pem: None,
            status: ConnectorStatus::Active,
            last_tested_at: None,
            last_test_result: None,
            last_error_code: None,
            metadata: BTreeMap::new(),
            timeouts: Timeouts::default(),
            created_at: now.clone(),
            updated_at: now.clone(),
        };
        state.store.insert_connector(&c).await?;
    }
    let setup = setup.elapsed();

    let mut cfg = HealthConfig::default();
    if let Some(c) = concurrency {
        cfg.concurrency = c;
    }
    let settings = cfg.settings();
    let concurrency = settings.concurrency;
    let monitor = HealthMonitor::new(state.clone(), settings, Arc::new(LogNotifier), None)?;
    let rss_before = peak_rss_mb();
    // Checks recorded so far, sampled every 100 ms: the rate in each tenth
    // of the sweep shows whether a check costs more as the sweep goes on
    // (the tables and the history grow during it).
    let samples = Arc::new(std::sync::Mutex::new(Vec::<(f64, u64)>::new()));
    let started = Instant::now();
    let sampler = {
        let checks = monitor.metrics().checks.clone();
        let samples = samples.clone();
        tokio::spawn(async move {
            loop {
                let done: u64 = ["ACTIVE", "WARNING", "ERROR"]
                    .iter()
                    .map(|s| checks.with_label_values(&[s, "none"]).get())
                    .sum();
                let at = started.elapsed().as_secs_f64();
                samples
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((at, done));
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        })
    };
    let cpu_before = cpu_secs();
    // For a profiler started with the process: where the sweep begins.
    eprintln!(
        "sweep starts at {:.6}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs_f64()
    );
    let stats = monitor.sweep().await?;
    let took = started.elapsed();
    let cpu = cpu_secs() - cpu_before;
    sampler.abort();
    let mut samples = samples.lock().unwrap_or_else(|p| p.into_inner()).clone();
    samples.push((took.as_secs_f64(), stats.checked as u64));
    let at = |target: u64| samples.iter().find(|(_, d)| *d >= target).map(|(t, _)| *t);
    let tenths: Vec<String> = (1..=10u64)
        .filter_map(|k| {
            let (a, b) = (n as u64 * (k - 1) / 10, n as u64 * k / 10);
            let ta = if a == 0 { Some(0.0) } else { at(a) }?;
            let tb = at(b)?;
            Some(format!("{:.0}", (b - a) as f64 / (tb - ta).max(1e-3)))
        })
        .collect();
    let rate = stats.checked as f64 / took.as_secs_f64();

    println!("bench scheduler: one sweep, BENCH driver (real TCP connect to 4 in-process listeners), {backend} store");
    println!("  connectors           {n}");
    println!("  concurrency          {concurrency}");
    println!("  setup (inserts)      {:.1} s", setup.as_secs_f64());
    println!(
        "  sweep time           {:.2} s  (checked {}, active {}, warning {}, error {}, lost {})",
        took.as_secs_f64(),
        stats.checked,
        stats.active,
        stats.warning,
        stats.error,
        stats.lost
    );
    println!("  checks per second    {rate:.0}");
    println!("  by tenth of sweep    {}", tenths.join(" "));
    println!(
        "  CPU per check        {:.0} us (process user+sys {cpu:.2} s)",
        cpu * 1e6 / stats.checked.max(1) as f64
    );
    println!(
        "  peak RSS             {:.1} MB (before the sweep {rss_before:.1} MB)",
        peak_rss_mb()
    );
    println!(
        "  100,000 at this rate {:.0} s of a 900 s window",
        100_000.0 / rate
    );
    let _ = std::fs::remove_dir_all(&dir);
    drop(monitor);
    drop(state);
    if let Some((mut admin, name, _)) = fresh {
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut admin)
            .await?;
    }
    anyhow::ensure!(stats.checked == n, "not every connector was checked");
    Ok(())
}
