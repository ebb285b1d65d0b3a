//! The connector service's peak RSS while it discovers the PostgreSQL
//! benchmark databases through its API, for `cargo xtask bench discovery`.
//!
//! One service process (release, PostgreSQL driver only, embedded defaults)
//! per database, on a fresh data directory. Three phases, each with the
//! process's VmHWM reset (`/proc/<pid>/clear_refs`) before it and read after
//! it: the create (test, then the first, full discovery, awaited through
//! `GET …/discover`), a re-discovery (`POST …/discover`, incremental against
//! the stored fingerprint), and reading the stored catalog back page by page
//! (`GET …/schemas`, 1,000 tables a page).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use crate::bench_api::{mint, start_service, Http};
use crate::fixtures::Vars;
use crate::say;
use crate::util::{build_targets, rss_kib};

/// One database's figures, in MiB.
pub struct ServiceRun {
    pub database: String,
    pub ready_mb: f64,
    pub create_mb: f64,
    pub rediscover_mb: f64,
    pub read_mb: f64,
    pub create_secs: f64,
    pub rediscover_secs: f64,
}

impl ServiceRun {
    /// The highest of the phases.
    pub fn peak_mb(&self) -> f64 {
        self.create_mb.max(self.rediscover_mb).max(self.read_mb)
    }
}

fn status_kib(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("{field} not in /proc/{pid}/status"))
}

/// Resets the process's peak RSS to its current RSS.
fn reset_peak(pid: u32) -> Result<()> {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5")
        .with_context(|| format!("resetting VmHWM of {pid}"))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Polls the connector's latest discovery job until it has ended.
fn await_job(http: &mut Http, path: &str, token: &str, limit: Duration) -> Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        let (status, body) = http.call("GET", path, Some(token), None)?;
        if status == 200 {
            let job: serde_json::Value = serde_json::from_slice(&body)?;
            match job["status"].as_str() {
                Some("SUCCEEDED") => return Ok(()),
                Some("RUNNING") | None => {}
                Some(other) => bail!("the discovery job ended {other}: {job}"),
            }
        }
        ensure!(
            Instant::now() < deadline,
            "the discovery job did not end within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs the three phases for each of `databases` (PostgreSQL, as the
/// fixture's superuser).
pub fn measure(vars: &Vars, databases: &[&str]) -> Result<Vec<ServiceRun>> {
    let built = build_targets(
        Some("release"),
        "matih-connector-service",
        &[
            "--no-default-features",
            "--features",
            "matih-connectors/postgres",
            "--bin",
            "matih-connector-service",
        ],
    )?;
    let bin = built
        .get("matih-connector-service")
        .context("cargo did not report the service binary")?;
    let root = std::env::temp_dir().join(format!("matih-bench-disc-svc-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root)?;
    let mut runs = Vec::new();
    for db in databases {
        let run = measure_one(vars, bin, &root.join(db), db);
        let _ = std::fs::remove_dir_all(root.join(db));
        runs.push(run.with_context(|| format!("the service discovering {db}"))?);
    }
    let _ = std::fs::remove_dir_all(&root);
    Ok(runs)
}

fn measure_one(vars: &Vars, bin: &Path, data: &Path, db: &str) -> Result<ServiceRun> {
    let var = |k: &str| {
        vars.get(k)
            .cloned()
            .with_context(|| format!("{k} is not set by the fixture"))
    };
    let user = var("MATIH_TEST_POSTGRES_SUPERUSER").or_else(|_| var("MATIH_TEST_POSTGRES_USER"))?;
    let password = var("MATIH_TEST_POSTGRES_SUPERUSER_PASSWORD")
        .or_else(|_| var("MATIH_TEST_POSTGRES_PASSWORD"))?;
    let (service, addr, _) = start_service(bin, data)?;
    let pid = service.0.id();
    let ready_kib = rss_kib(pid)?;
    let platform = mint(bin, data, &["--role", "platform-admin"])?;
    let mut http = Http::open(addr)?;
    let tenant = http.json(
        "POST",
        "/api/v1/tenants",
        &platform,
        Some(&serde_json::json!({"name": "bench", "slug": "bench", "tier": "ENTERPRISE"})),
        201,
    )?;
    let tenant = tenant["id"].as_str().context("tenant id")?.to_owned();
    let token = mint(bin, data, &["--role", "tenant-admin", "--tenant", &tenant])?;
    let body = serde_json::json!({
        "name": db, "type": "POSTGRESQL", "host": var("MATIH_TEST_POSTGRES_HOST")?,
        "port": var("MATIH_TEST_POSTGRES_PORT")?.parse::<u16>()?, "database": db,
        "sslEnabled": false,
        "credentials": {"username": user, "password": password},
    });
    let limit = Duration::from_secs(600);

    say!("service: creating a connector to {db} (test, then the first discovery)");
    reset_peak(pid)?;
    let t = Instant::now();
    let created = http.json(
        "POST",
        &format!("/api/v1/tenants/{tenant}/connectors"),
        &token,
        Some(&body),
        201,
    )?;
    let id = created["id"].as_str().context("connector id")?.to_owned();
    let base = format!("/api/v1/tenants/{tenant}/connectors/{id}");
    await_job(&mut http, &format!("{base}/discover"), &token, limit)?;
    let create_secs = t.elapsed().as_secs_f64();
    let create_kib = status_kib(pid, "VmHWM:")?;

    say!("service: re-discovering {db}");
    reset_peak(pid)?;
    let t = Instant::now();
    http.json("POST", &format!("{base}/discover"), &token, None, 202)?;
    await_job(&mut http, &format!("{base}/discover"), &token, limit)?;
    let rediscover_secs = t.elapsed().as_secs_f64();
    let rediscover_kib = status_kib(pid, "VmHWM:")?;

    say!("service: reading {db}'s catalog back, 1,000 tables a page");
    reset_peak(pid)?;
    let mut cursor: Option<String> = None;
    let mut tables = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("{base}/schemas?limit=1000&cursor={c}"),
            None => format!("{base}/schemas?limit=1000"),
        };
        let page = http.json("GET", &path, &token, None, 200)?;
        tables += page["schemas"].as_array().map_or(0, |s| {
            s.iter()
                .map(|s| s["tables"].as_array().map_or(0, Vec::len))
                .sum()
        });
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let read_kib = status_kib(pid, "VmHWM:")?;
    ensure!(tables > 0, "the stored catalog of {db} lists no table");
    drop(service);
    Ok(ServiceRun {
        database: db.to_owned(),
        ready_mb: mib(ready_kib),
        create_mb: mib(create_kib),
        rediscover_mb: mib(rediscover_kib),
        read_mb: mib(read_kib),
        create_secs,
        rediscover_secs,
    })
}
