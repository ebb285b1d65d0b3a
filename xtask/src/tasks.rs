//! test-drivers, bench and ci: cargo runs wrapped around the fixtures.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::fixtures::{self, Session, Source, Vars};
use crate::say;
use crate::util::{secs, workspace_root};

/// A package whose tests run against fixtures. Later drivers add a row.
#[derive(Debug)]
pub struct DriverEntry {
    /// Name for `--only`.
    pub name: &'static str,
    pub package: &'static str,
    /// Fixtures (rows of `fixtures::FIXTURES`) its tests need.
    pub fixtures: &'static [&'static str],
}

pub const DRIVERS: &[DriverEntry] = &[
    DriverEntry {
        name: "postgres",
        package: "matih-driver-postgres",
        fixtures: &["postgres"],
    },
    DriverEntry {
        name: "mysql",
        package: "matih-driver-mysql",
        fixtures: &["mysql"],
    },
    // Drivers below run without an xtask fixture for now (servers written
    // inside the tests, or none installable here); a driver that gains one
    // lists it, as postgres and mysql do.
    DriverEntry {
        name: "sqlserver",
        package: "matih-driver-sqlserver",
        fixtures: &[],
    },
    DriverEntry {
        name: "oracle",
        package: "matih-driver-oracle",
        fixtures: &[],
    },
    DriverEntry {
        name: "snowflake",
        package: "matih-driver-snowflake",
        fixtures: &["snowflake"],
    },
    DriverEntry {
        name: "bigquery",
        package: "matih-driver-bigquery",
        fixtures: &[],
    },
    DriverEntry {
        name: "redshift",
        package: "matih-driver-redshift",
        fixtures: &[],
    },
    DriverEntry {
        name: "databricks",
        package: "matih-driver-databricks",
        fixtures: &["databricks"],
    },
    DriverEntry {
        name: "mongodb",
        package: "matih-driver-mongodb",
        fixtures: &[],
    },
    DriverEntry {
        name: "dynamodb",
        package: "matih-driver-dynamodb",
        fixtures: &["moto"],
    },
    DriverEntry {
        name: "s3",
        package: "matih-driver-s3",
        fixtures: &["moto"],
    },
    DriverEntry {
        name: "azure-blob",
        package: "matih-driver-azure-blob",
        fixtures: &[],
    },
    DriverEntry {
        name: "gcs",
        package: "matih-driver-gcs",
        fixtures: &[],
    },
    DriverEntry {
        name: "kafka",
        package: "matih-driver-kafka",
        fixtures: &[],
    },
    DriverEntry {
        name: "rest",
        package: "matih-driver-rest",
        fixtures: &[],
    },
    DriverEntry {
        name: "graphql",
        package: "matih-driver-graphql",
        fixtures: &[],
    },
    // The CLI's end-to-end tests drive real servers through the facade.
    DriverEntry {
        name: "cli",
        package: "matih-connectors",
        fixtures: &["postgres", "mysql"],
    },
    // The connector service's end-to-end tests: the API over the real drivers,
    // with PostgreSQL also as its metadata store.
    DriverEntry {
        name: "service",
        package: "matih-connector-service",
        fixtures: &["postgres", "mysql"],
    },
];

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(workspace_root());
    cmd
}

/// A cargo command that sees exactly `vars` as fixture variables: stale
/// `MATIH_TEST_*` values from the caller's shell must not leak in.
fn cargo_with(vars: &Vars, require: bool) -> Command {
    let mut cmd = cargo();
    for (k, _) in std::env::vars_os() {
        if k.to_str().is_some_and(|k| k.starts_with("MATIH_TEST_")) {
            cmd.env_remove(k);
        }
    }
    cmd.envs(vars);
    if require {
        cmd.env("MATIH_REQUIRE_FIXTURES", "1");
    } else {
        cmd.env_remove("MATIH_REQUIRE_FIXTURES");
    }
    cmd
}

/// Packages in the workspace, from `cargo metadata` (drivers not written yet are absent).
fn workspace_packages() -> Result<BTreeSet<String>> {
    let out = cargo()
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--offline",
        ])
        .output()
        .context("running cargo metadata")?;
    if !out.status.success() {
        bail!(
            "cargo metadata failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(DRIVERS
        .iter()
        .map(|d| d.package)
        .filter(|p| text.contains(&format!("\"name\":\"{p}\"")))
        .map(str::to_owned)
        .collect())
}

struct Row {
    name: String,
    result: String,
    duration: Duration,
    ok: bool,
}

fn print_table(title: &str, rows: &[Row]) {
    eprintln!();
    eprintln!("{title}");
    eprintln!("{:<22} {:<34} {:>9}", "name", "result", "duration");
    eprintln!("{}", "-".repeat(67));
    for r in rows {
        eprintln!("{:<22} {:<34} {:>9}", r.name, r.result, secs(r.duration));
    }
}

/// `cargo xtask test-drivers`.
pub fn test_drivers(only: &[String], source: Source) -> Result<()> {
    let selected: Vec<&DriverEntry> = if only.is_empty() {
        DRIVERS.iter().collect()
    } else {
        only.iter()
            .map(|n| {
                DRIVERS.iter().find(|d| d.name == n).with_context(|| {
                    let known: Vec<&str> = DRIVERS.iter().map(|d| d.name).collect();
                    format!("unknown driver `{n}` (known: {})", known.join(", "))
                })
            })
            .collect::<Result<_>>()?
    };
    let present = workspace_packages()?;
    let runnable: Vec<&DriverEntry> = selected
        .iter()
        .copied()
        .filter(|d| present.contains(d.package))
        .collect();
    let mut needed: Vec<String> = Vec::new();
    for d in &runnable {
        for f in d.fixtures {
            fixtures::find(f)?;
            if !needed.iter().any(|n| n == f) {
                needed.push((*f).to_owned());
            }
        }
    }

    let t = Instant::now();
    let session = if needed.is_empty() {
        None
    } else {
        Some(Session::acquire(&needed, source)?)
    };
    let vars = session.as_ref().map(|s| s.vars.clone()).unwrap_or_default();
    say!("fixtures ready in {}", secs(t.elapsed()));
    let mut rows = Vec::new();
    for d in selected {
        if !present.contains(d.package) {
            rows.push(Row {
                name: d.name.into(),
                result: "absent (not in the workspace)".into(),
                duration: Duration::ZERO,
                ok: true,
            });
            continue;
        }
        say!("cargo test --no-fail-fast -p {}", d.package);
        let t = Instant::now();
        let status = cargo_with(&vars, true)
            .args(["test", "--no-fail-fast", "-p", d.package])
            .status();
        let (result, ok) = match status {
            Ok(s) if s.success() => ("ok".to_owned(), true),
            Ok(s) => (format!("FAILED ({s})"), false),
            Err(e) => (format!("FAILED to run cargo: {e}"), false),
        };
        rows.push(Row {
            name: d.name.into(),
            result,
            duration: t.elapsed(),
            ok,
        });
    }
    if let Some(s) = session {
        s.release();
    }
    print_table("test-drivers summary", &rows);
    let failed: Vec<&str> = rows
        .iter()
        .filter(|r| !r.ok)
        .map(|r| r.name.as_str())
        .collect();
    if !failed.is_empty() {
        bail!("driver tests failed: {}", failed.join(", "));
    }
    Ok(())
}

/// `cargo xtask bench discovery`: each driver's `bench_discovery` example,
/// in release mode, against the fixtures.
pub fn bench_discovery() -> Result<()> {
    let root = workspace_root();
    let drivers = ["postgres", "mysql"];
    let session = Session::acquire(&drivers.map(str::to_owned), Source::Native)?;
    let mut rows = Vec::new();
    for name in drivers {
        let dir = root.join("crates/drivers").join(name).join("examples");
        let exists = dir.join("bench_discovery.rs").is_file()
            || dir.join("bench_discovery/main.rs").is_file();
        if !exists {
            say!("{name}: no example bench_discovery in {}", dir.display());
            rows.push(Row {
                name: name.into(),
                result: "absent (no bench_discovery example)".into(),
                duration: Duration::ZERO,
                ok: true,
            });
            continue;
        }
        let package = format!("matih-driver-{name}");
        say!("cargo run --release -p {package} --example bench_discovery");
        let t = Instant::now();
        let status = cargo_with(&session.vars, true)
            .args([
                "run",
                "--release",
                "-p",
                &package,
                "--example",
                "bench_discovery",
            ])
            .status();
        let ok = status.as_ref().is_ok_and(|s| s.success());
        rows.push(Row {
            name: name.into(),
            result: if ok { "ok".into() } else { "FAILED".into() },
            duration: t.elapsed(),
            ok,
        });
    }
    session.release();
    print_table("bench discovery", &rows);
    if rows.iter().any(|r| !r.ok) {
        bail!("a benchmark failed");
    }
    Ok(())
}

/// `cargo xtask bench api`: the connector service's `bench_api` example, in
/// release mode, with the postgres fixture for the test-route figures.
pub fn bench_api() -> Result<()> {
    let session = Session::acquire(&["postgres".to_owned()], Source::Native)?;
    say!("cargo run --release -p matih-connector-service --example bench_api");
    let status = cargo_with(&session.vars, true)
        .args([
            "run",
            "--release",
            "-p",
            "matih-connector-service",
            "--example",
            "bench_api",
        ])
        .status();
    session.release();
    if !status.as_ref().is_ok_and(|s| s.success()) {
        bail!("the API benchmark failed");
    }
    Ok(())
}

/// `cargo xtask ci`: stops at the first failing stage.
pub fn ci(source: Source) -> Result<()> {
    type Stage = (&'static str, Box<dyn Fn() -> Result<()>>);
    let run = |args: &'static [&'static str]| -> Box<dyn Fn() -> Result<()>> {
        Box::new(move || {
            say!("cargo {}", args.join(" "));
            let status = cargo_with(&Vars::new(), false).args(args).status()?;
            if !status.success() {
                bail!("`cargo {}` failed ({status})", args.join(" "));
            }
            Ok(())
        })
    };
    let stages: Vec<Stage> = vec![
        ("fmt", run(&["fmt", "--all", "--", "--check"])),
        (
            "clippy",
            run(&[
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ]),
        ),
        // Without fixture variables: tests that need a server say why they skip.
        // Doc tests run here too (cargo test includes them for library crates).
        (
            "test (no fixtures)",
            run(&["test", "--workspace", "--no-fail-fast"]),
        ),
        ("test-drivers", Box::new(move || test_drivers(&[], source))),
    ];
    let mut rows = Vec::new();
    let total = Instant::now();
    let mut failure = None;
    for (name, stage) in &stages {
        say!("=== stage: {name}");
        let t = Instant::now();
        let res = stage();
        let ok = res.is_ok();
        rows.push(Row {
            name: (*name).into(),
            result: if ok { "ok".into() } else { "FAILED".into() },
            duration: t.elapsed(),
            ok,
        });
        if let Err(e) = res {
            failure = Some((name, e));
            break;
        }
    }
    print_table(
        &format!("ci summary (total {})", secs(total.elapsed())),
        &rows,
    );
    if let Some((name, e)) = failure {
        bail!("ci failed at stage `{name}`: {e:#}");
    }
    eprintln!("ci passed");
    Ok(())
}
