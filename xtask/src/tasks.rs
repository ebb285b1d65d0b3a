//! test-drivers, bench and ci: cargo runs wrapped around the fixtures.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

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
        fixtures: &["bigquery"],
    },
    DriverEntry {
        name: "redshift",
        package: "matih-driver-redshift",
        // The Data API fake inside the tests routes SQL to this PostgreSQL.
        fixtures: &["postgres"],
    },
    DriverEntry {
        name: "databricks",
        package: "matih-driver-databricks",
        fixtures: &["databricks"],
    },
    DriverEntry {
        name: "mongodb",
        package: "matih-driver-mongodb",
        fixtures: &["mongodb"],
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
        fixtures: &["azure-blob"],
    },
    DriverEntry {
        name: "gcs",
        package: "matih-driver-gcs",
        fixtures: &["gcs"],
    },
    DriverEntry {
        name: "kafka",
        package: "matih-driver-kafka",
        fixtures: &["kafka"],
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
    // Core's SSH tunnel tests: a real OpenSSH bastion, and PostgreSQL and
    // MariaDB as targets reached through it. Core's dev-dependencies turn its
    // `ssh` feature on, so the one `cargo test --no-run` builds them.
    DriverEntry {
        name: "ssh",
        package: "matih-connector-core",
        fixtures: &["ssh", "postgres", "mysql"],
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
    scrub_cargo_run_env(&mut cmd);
    cmd
}

/// Removes what `cargo run` put in xtask's environment (`CARGO_PKG_NAME=xtask`,
/// `CARGO_MANIFEST_DIR`, …). A nested cargo compares such variables against
/// build scripts' `rerun-if-env-changed` (ring's lists several), so leaving
/// them in rebuilds ring and everything above it, and the next plain
/// `cargo test` rebuilds it all again.
fn scrub_cargo_run_env(cmd: &mut Command) {
    for (k, _) in std::env::vars_os() {
        let Some(k) = k.to_str() else { continue };
        let from_cargo_run = k.starts_with("CARGO_PKG_")
            || k.starts_with("CARGO_MANIFEST_")
            || matches!(
                k,
                "CARGO_CRATE_NAME" | "CARGO_BIN_NAME" | "CARGO_PRIMARY_PACKAGE" | "OUT_DIR"
            );
        if from_cargo_run {
            cmd.env_remove(k);
        }
    }
}

/// A cargo command that sees exactly `vars` as fixture variables.
fn cargo_with(vars: &Vars, require: bool) -> Command {
    let mut cmd = cargo();
    fixture_env(&mut cmd, vars, require);
    cmd
}

/// Gives a command exactly `vars` as fixture variables: stale `MATIH_TEST_*`
/// values from the caller's shell must not leak in.
fn fixture_env(cmd: &mut Command, vars: &Vars, require: bool) {
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
}

/// Workspace packages by manifest path, from `cargo metadata` (drivers not
/// written yet are absent).
fn workspace_packages() -> Result<BTreeMap<PathBuf, String>> {
    let out = cargo()
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--offline",
        ])
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo metadata")?;
    if !out.status.success() {
        bail!("cargo metadata failed");
    }
    let meta: Value = serde_json::from_slice(&out.stdout).context("parsing cargo metadata")?;
    let packages = meta["packages"]
        .as_array()
        .ok_or_else(|| anyhow!("no packages in cargo metadata"))?;
    Ok(packages
        .iter()
        .filter_map(|p| {
            let name = p["name"].as_str()?.to_owned();
            Some((PathBuf::from(p["manifest_path"].as_str()?), name))
        })
        .collect())
}

/// A compiled test harness binary (unit tests of a lib or bin, an
/// integration test file).
#[derive(Debug)]
struct TestBinary {
    package: String,
    target: String,
    kind: String,
    path: PathBuf,
    manifest_dir: PathBuf,
}

/// Test binaries built in one `cargo test --no-run`, and packages whose build failed.
#[derive(Debug, Default)]
struct TestBuild {
    binaries: Vec<TestBinary>,
    failed: BTreeSet<String>,
    ok: bool,
}

/// Builds the test binaries of `packages` (all of the workspace when `None`)
/// in ONE cargo invocation. Testing packages one `cargo test -p` at a time
/// resolves dependency features per package and rebuilds shared dependencies
/// over and over; one build with workspace-wide features reuses what
/// `cargo test --workspace` already built.
fn build_tests(packages: Option<&[&str]>, names: &BTreeMap<PathBuf, String>) -> Result<TestBuild> {
    let mut cmd = cargo();
    // Diagnostics come back inside the JSON; colour them only for a terminal.
    let colour = std::io::stderr().is_terminal()
        && std::env::var("CARGO_TERM_COLOR").map_or(true, |c| c != "never");
    let format = if colour {
        "--message-format=json-diagnostic-rendered-ansi"
    } else {
        "--message-format=json"
    };
    cmd.args(["test", "--no-run", "--no-fail-fast", format]);
    match packages {
        None => {
            cmd.arg("--workspace");
        }
        Some(list) => {
            for p in list {
                cmd.args(["-p", p]);
            }
        }
    }
    say!(
        "building test binaries: cargo test --no-run {}",
        packages.map_or("--workspace".to_owned(), |l| l.join(" "))
    );
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .context("running cargo test --no-run")?;
    let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
    let mut build = TestBuild::default();
    let package_of = |msg: &Value| -> Option<(String, PathBuf)> {
        let manifest = PathBuf::from(msg["manifest_path"].as_str()?);
        let name = names.get(&manifest)?.clone();
        Some((name, manifest.parent()?.to_path_buf()))
    };
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        let Ok(msg) = serde_json::from_str::<Value>(&line) else {
            eprintln!("{line}");
            continue;
        };
        match msg["reason"].as_str() {
            Some("compiler-message") => {
                if let Some(rendered) = msg["message"]["rendered"].as_str() {
                    eprint!("{rendered}");
                }
                if msg["message"]["level"].as_str() == Some("error") {
                    if let Some((name, _)) = package_of(&msg) {
                        build.failed.insert(name);
                    }
                }
            }
            Some("compiler-artifact") if msg["profile"]["test"].as_bool() == Some(true) => {
                let (Some(exe), Some((package, manifest_dir))) =
                    (msg["executable"].as_str(), package_of(&msg))
                else {
                    continue;
                };
                let kind = msg["target"]["kind"][0]
                    .as_str()
                    .unwrap_or("test")
                    .to_owned();
                build.binaries.push(TestBinary {
                    package,
                    target: msg["target"]["name"].as_str().unwrap_or("?").to_owned(),
                    kind,
                    path: PathBuf::from(exe),
                    manifest_dir,
                });
            }
            Some("build-finished") => build.ok = msg["success"].as_bool() == Some(true),
            _ => {}
        }
    }
    let status = child.wait()?;
    build.ok &= status.success();
    Ok(build)
}

/// Runs one package's test binaries the way `cargo test` does (working
/// directory and `CARGO_MANIFEST_DIR` of the package) with the fixture variables.
fn run_package_tests(build: &TestBuild, package: &str, vars: &Vars) -> (String, bool) {
    let mut binaries: Vec<&TestBinary> = build
        .binaries
        .iter()
        .filter(|b| b.package == package)
        .collect();
    // Unit tests first, then integration tests by name, as cargo orders them.
    binaries.sort_by_key(|b| (b.kind != "lib", b.kind.clone(), b.target.clone()));
    if binaries.is_empty() {
        return ("ok (no tests)".into(), true);
    }
    let mut failed = Vec::new();
    for b in binaries {
        say!(
            "{package}: {} `{}` ({})",
            b.kind,
            b.target,
            short_path(&b.path)
        );
        let mut cmd = Command::new(&b.path);
        scrub_cargo_run_env(&mut cmd);
        cmd.current_dir(&b.manifest_dir)
            .env("CARGO_MANIFEST_DIR", &b.manifest_dir)
            .env("CARGO_PKG_NAME", package);
        fixture_env(&mut cmd, vars, true);
        match cmd.status() {
            Ok(s) if s.success() => {}
            Ok(_) => failed.push(b.target.clone()),
            Err(e) => {
                say!("could not run {}: {e}", b.path.display());
                failed.push(b.target.clone());
            }
        }
    }
    if failed.is_empty() {
        ("ok".into(), true)
    } else {
        (format!("FAILED: {}", failed.join(", ")), false)
    }
}

fn short_path(p: &Path) -> String {
    p.file_name().map_or_else(
        || p.display().to_string(),
        |f| f.to_string_lossy().into_owned(),
    )
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
    let names = workspace_packages()?;
    let present: BTreeSet<&str> = names.values().map(String::as_str).collect();
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

    // Built before the fixtures start, so servers do not wait on the compiler.
    let t = Instant::now();
    let packages: Vec<&str> = runnable.iter().map(|d| d.package).collect();
    let build = build_tests(
        if only.is_empty() {
            None
        } else {
            Some(&packages)
        },
        &names,
    )?;
    if !build.ok {
        say!("some test binaries did not build; the others run");
    }
    say!("test binaries built in {}", secs(t.elapsed()));

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
        let t = Instant::now();
        let nothing_built = !build.ok && !build.binaries.iter().any(|b| b.package == d.package);
        let (result, ok) = if build.failed.contains(d.package) || nothing_built {
            ("FAILED (build)".to_owned(), false)
        } else {
            run_package_tests(&build, d.package, &vars)
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

/// `cargo xtask bench discovery`: each driver's `<name>_bench_discovery` example
/// (named per driver so examples of different packages never share a file),
/// in release mode, against the fixtures.
pub fn bench_discovery() -> Result<()> {
    let root = workspace_root();
    let drivers = ["postgres", "mysql"];
    let session = Session::acquire(&drivers.map(str::to_owned), Source::Native)?;
    let mut rows = Vec::new();
    for name in drivers {
        let dir = root.join("crates/drivers").join(name).join("examples");
        let example = format!("{name}_bench_discovery");
        let exists = dir.join(format!("{example}.rs")).is_file()
            || dir.join(&example).join("main.rs").is_file();
        if !exists {
            say!("{name}: no example {example} in {}", dir.display());
            rows.push(Row {
                name: name.into(),
                result: format!("absent (no {example} example)"),
                duration: Duration::ZERO,
                ok: true,
            });
            continue;
        }
        let package = format!("matih-driver-{name}");
        say!("cargo run --release -p {package} --example {example}");
        let t = Instant::now();
        let status = cargo_with(&session.vars, true)
            .args(["run", "--release", "-p", &package, "--example", &example])
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

/// `cargo xtask bench scheduler`: the connector service's `bench_scheduler`
/// example in release mode. It needs no fixture: its connectors point at
/// in-process listeners.
pub fn bench_scheduler(connectors: usize, concurrency: Option<usize>) -> Result<()> {
    let mut args = vec![
        "run".to_owned(),
        "--release".into(),
        "-p".into(),
        "matih-connector-service".into(),
        "--example".into(),
        "bench_scheduler".into(),
        "--".into(),
        "--connectors".into(),
        connectors.to_string(),
    ];
    if let Some(c) = concurrency {
        args.extend(["--concurrency".into(), c.to_string()]);
    }
    say!("cargo {}", args.join(" "));
    let status = cargo().args(&args).status();
    if !status.as_ref().is_ok_and(|s| s.success()) {
        bail!("the scheduler benchmark failed");
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
