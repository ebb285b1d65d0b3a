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
        // tests/ssh.rs reaches the database through the SSH bastion.
        fixtures: &["postgres", "ssh"],
    },
    DriverEntry {
        name: "mysql",
        package: "matih-driver-mysql",
        // tests/ssh.rs reaches the database through the SSH bastion.
        fixtures: &["mysql", "ssh"],
    },
    // Docker-only fixtures: a native run (or a machine without a Docker
    // engine, or for Oracle without Instant Client) declares them
    // unavailable and the driver is NOT PROVEN, not ok.
    DriverEntry {
        name: "sqlserver",
        package: "matih-driver-sqlserver",
        fixtures: &["sqlserver"],
    },
    DriverEntry {
        name: "oracle",
        package: "matih-driver-oracle",
        fixtures: &["oracle"],
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
        // tests/ssh.rs reaches the database through the SSH bastion.
        fixtures: &["mongodb", "ssh"],
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
    // Servers written inside the tests (declared to the proof file as fakes);
    // tests/ssh.rs reaches them through the SSH bastion.
    DriverEntry {
        name: "rest",
        package: "matih-driver-rest",
        fixtures: &["ssh"],
    },
    DriverEntry {
        name: "graphql",
        package: "matih-driver-graphql",
        fixtures: &["ssh"],
    },
    // Custom connector types: a real Airbyte source and a real Singer tap
    // (PyPI, in venvs), the tap pointed at the PostgreSQL fixture.
    DriverEntry {
        name: "external",
        package: "matih-driver-external",
        fixtures: &["external", "postgres"],
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
        fixtures: &["postgres", "mysql", "ssh", "external"],
    },
    // The connector service's end-to-end tests: the API over the real drivers,
    // with PostgreSQL also as its metadata store, the `ssh` fixture for
    // `tunnelled_connector_flow_with_key_rotation`, OpenBao (`vault`, after
    // the databases its database engine is configured against) and moto's
    // Secrets Manager for the vault and aws-secrets-manager secret stores.
    DriverEntry {
        name: "service",
        package: "matih-connector-service",
        fixtures: &["postgres", "mysql", "ssh", "external", "moto", "vault"],
    },
];

/// `cargo` in the workspace root, for xtask's modules.
pub(crate) fn cargo() -> Command {
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

/// Conditions of the machine (not servers) that some drivers' tests need,
/// with the check xtask makes: `Err(reason)` when the condition does not
/// hold here, and it is then declared unavailable.
const CONDITIONS: &[(&str, &str, fixtures::HostCheck)] = &[(
    "oracle",
    "ORACLE_CLIENT_MISSING",
    || match fixtures::oracle_client_library() {
        None => Ok(()),
        Some(p) => Err(format!(
            "an Oracle Client library is installed here ({}), so the path where it is missing \
             cannot be exercised",
            p.display()
        )),
    },
)];

/// libtest's counts, summed over a package's binaries.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    passed: usize,
    failed: usize,
    ignored: usize,
}

impl Counts {
    /// Adds a `test result: ok. 3 passed; 0 failed; 1 ignored; …` line.
    fn add_line(&mut self, line: &str) {
        let Some(rest) = line.trim().strip_prefix("test result: ") else {
            return;
        };
        for part in rest.split(';') {
            let mut words = part.split_whitespace().rev();
            let (Some(what), Some(n)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(n) = n.parse::<usize>() else { continue };
            match what {
                "passed" => self.passed += n,
                "failed" => self.failed += n,
                "ignored" => self.ignored += n,
                _ => {}
            }
        }
    }
}

/// What a package's tests ran against in this run, from its proof file.
#[derive(Debug, Default)]
struct Proof {
    /// Fixture name → (kind, server, tests that took it).
    fixtures: BTreeMap<String, (String, String, BTreeSet<String>)>,
    /// Fixtures a TLS proxy fronted.
    proxied: BTreeSet<String>,
    /// Fixture name → versions the drivers read from it.
    versions: BTreeMap<String, BTreeSet<String>>,
    /// Fake name → tests that used it.
    fakes: BTreeMap<String, BTreeSet<String>>,
    /// Machine conditions tests needed and found (no Oracle client library).
    conditions: BTreeMap<String, BTreeSet<String>>,
    /// Fixture or condition → tests that did not run for want of it.
    not_proven: BTreeMap<String, BTreeSet<String>>,
}

impl Proof {
    fn read(path: &Path) -> Proof {
        let mut p = Proof::default();
        let text = std::fs::read_to_string(path).unwrap_or_default();
        for line in text.lines() {
            let Ok(v) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            let str_of = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
            // libtest's thread name is the test's path; the argument is the
            // caller's label.
            let test = v["thread"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| str_of("test"));
            let fixture = str_of("fixture");
            match v["event"].as_str() {
                Some("fixture") => {
                    p.fixtures
                        .entry(fixture)
                        .or_insert_with(|| (str_of("kind"), str_of("server"), BTreeSet::new()))
                        .2
                        .insert(test);
                }
                Some("tls_proxy") => {
                    p.proxied.insert(fixture);
                }
                Some("version") if !fixture.is_empty() => {
                    p.versions
                        .entry(fixture)
                        .or_default()
                        .insert(str_of("version"));
                }
                Some("fake") => {
                    p.fakes.entry(str_of("fake")).or_default().insert(test);
                }
                Some("condition") => {
                    p.conditions
                        .entry(str_of("condition"))
                        .or_default()
                        .insert(test);
                }
                Some("not_proven") => {
                    p.not_proven.entry(fixture).or_default().insert(test);
                }
                _ => {}
            }
        }
        p
    }

    /// Tests that did not run for want of a fixture (counted by libtest as passed).
    fn not_proven_tests(&self) -> usize {
        self.not_proven
            .values()
            .flatten()
            .collect::<BTreeSet<_>>()
            .len()
    }

    /// The proof column: what the tests ran against.
    fn column(&self, ran_tests: bool) -> String {
        let mut parts = Vec::new();
        for (name, (kind, server, _)) in &self.fixtures {
            let proxy = if self.proxied.contains(name) {
                " (also behind the TLS proxy)"
            } else {
                ""
            };
            parts.push(format!("{kind} {server} [{name}]{proxy}"));
        }
        for name in self
            .proxied
            .iter()
            .filter(|n| !self.fixtures.contains_key(*n))
        {
            parts.push(format!("TLS proxy in front of {name}"));
        }
        if !self.fakes.is_empty() {
            let names: Vec<&str> = self.fakes.keys().map(String::as_str).collect();
            parts.push(format!("in-test fake: {}", names.join(", ")));
        }
        for name in self.conditions.keys() {
            parts.push(format!("machine condition {name}"));
        }
        if parts.is_empty() {
            parts.push(if ran_tests { "unit only" } else { "not run" }.to_owned());
        }
        parts.join("; ")
    }
}

/// The outcome of one package's test binaries.
struct PackageRun {
    counts: Counts,
    failed: Vec<String>,
    binaries: usize,
    proof: Proof,
}

/// Runs one package's test binaries the way `cargo test` does (working
/// directory and `CARGO_MANIFEST_DIR` of the package) with the fixture
/// variables, `MATIH_UNAVAILABLE_FIXTURES` and a proof file of its own. Their
/// output passes through; libtest's `test result:` lines are counted.
fn run_package_tests(
    build: &TestBuild,
    package: &str,
    vars: &Vars,
    unavailable: &str,
    proof_file: &Path,
) -> PackageRun {
    let mut binaries: Vec<&TestBinary> = build
        .binaries
        .iter()
        .filter(|b| b.package == package)
        .collect();
    // Unit tests first, then integration tests by name, as cargo orders them.
    binaries.sort_by_key(|b| (b.kind != "lib", b.kind.clone(), b.target.clone()));
    let _ = std::fs::remove_file(proof_file);
    let mut run = PackageRun {
        counts: Counts::default(),
        failed: Vec::new(),
        binaries: binaries.len(),
        proof: Proof::default(),
    };
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
            .env("CARGO_PKG_NAME", package)
            .env("MATIH_UNAVAILABLE_FIXTURES", unavailable)
            .env("MATIH_PROOF_FILE", proof_file)
            .stdout(Stdio::piped());
        fixture_env(&mut cmd, vars, true);
        let status = cmd.spawn().and_then(|mut child| {
            if let Some(out) = child.stdout.take() {
                for line in BufReader::new(out).lines().map_while(|l| l.ok()) {
                    println!("{line}");
                    run.counts.add_line(&line);
                }
            }
            child.wait()
        });
        match status {
            Ok(s) if s.success() => {}
            Ok(_) => run.failed.push(b.target.clone()),
            Err(e) => {
                say!("could not run {}: {e}", b.path.display());
                run.failed.push(b.target.clone());
            }
        }
    }
    run.proof = Proof::read(proof_file);
    run
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

/// One driver's line in the test-drivers summary.
struct DriverRow {
    name: String,
    tests: String,
    duration: Duration,
    proof: String,
    result: String,
    ok: bool,
    details: Vec<String>,
}

fn print_driver_table(rows: &[DriverRow], unavailable: &BTreeMap<String, String>) {
    eprintln!();
    eprintln!("test-drivers summary");
    if !unavailable.is_empty() {
        eprintln!("declared unavailable on this machine (MATIH_UNAVAILABLE_FIXTURES):");
        for (name, why) in unavailable {
            eprintln!("  {name}: {why}");
        }
    }
    let w = rows
        .iter()
        .map(|r| r.proof.len())
        .max()
        .unwrap_or(5)
        .clamp(5, 90);
    eprintln!(
        "{:<11} {:<26} {:>8}  {:<w$}  result",
        "driver", "tests", "duration", "proof (what the tests ran against in this run)"
    );
    eprintln!("{}", "-".repeat(11 + 26 + 8 + w + 14));
    for r in rows {
        eprintln!(
            "{:<11} {:<26} {:>8}  {:<w$}  {}",
            r.name,
            r.tests,
            secs(r.duration),
            r.proof,
            r.result
        );
    }
    let detailed: Vec<&DriverRow> = rows.iter().filter(|r| !r.details.is_empty()).collect();
    if !detailed.is_empty() {
        eprintln!();
        eprintln!("proof details (tests per fixture and fake, versions the drivers read)");
        for r in detailed {
            eprintln!("{}:", r.name);
            for d in &r.details {
                eprintln!("  {d}");
            }
        }
    }
}

/// The summary line of one package that ran.
fn driver_row(
    d: &DriverEntry,
    run: PackageRun,
    duration: Duration,
    unavailable: &BTreeMap<String, String>,
) -> DriverRow {
    let c = run.counts;
    let not_proven = run.proof.not_proven_tests();
    let ran = c.passed + c.failed;
    let mut tests = format!("{} passed", c.passed.saturating_sub(not_proven));
    if c.failed > 0 {
        tests.push_str(&format!(", {} failed", c.failed));
    }
    if not_proven > 0 {
        tests.push_str(&format!(", {not_proven} not proven"));
    }
    if c.ignored > 0 {
        tests.push_str(&format!(", {} ignored", c.ignored));
    }
    let mut details = Vec::new();
    for (name, (kind, server, used_by)) in &run.proof.fixtures {
        details.push(format!("{name}: {kind} {server}: {} tests", used_by.len()));
        if let Some(v) = run.proof.versions.get(name) {
            let seen: Vec<&str> = v.iter().map(String::as_str).collect();
            details.push(format!("  version the driver read: {}", seen.join(" | ")));
        }
    }
    for (fake, used_by) in &run.proof.fakes {
        let names: Vec<&str> = used_by.iter().map(String::as_str).collect();
        details.push(format!("fake `{fake}`: {}", names.join(", ")));
    }
    for (name, tests) in &run.proof.conditions {
        let names: Vec<&str> = tests.iter().map(String::as_str).collect();
        details.push(format!("condition {name} held for: {}", names.join(", ")));
    }
    for (name, tests) in &run.proof.not_proven {
        let names: Vec<&str> = tests.iter().map(String::as_str).collect();
        details.push(format!(
            "NOT PROVEN for want of {name}: {}",
            names.join(", ")
        ));
    }
    let (result, ok) = if !run.failed.is_empty() {
        (format!("FAILED: {}", run.failed.join(", ")), false)
    } else if run.binaries == 0 || ran == 0 {
        // A package whose tests vanished proves nothing.
        ("FAILED: no tests ran".to_owned(), false)
    } else if !run.proof.not_proven.is_empty() {
        let reasons: Vec<String> = run
            .proof
            .not_proven
            .keys()
            .map(|n| {
                format!(
                    "{n}: {}",
                    unavailable
                        .get(n)
                        .map_or("declared unavailable", String::as_str)
                )
            })
            .collect();
        (format!("NOT PROVEN: {}", reasons.join("; ")), true)
    } else {
        ("ok".to_owned(), true)
    };
    DriverRow {
        name: d.name.into(),
        tests,
        duration,
        proof: run.proof.column(ran > 0),
        result,
        ok,
        details,
    }
}

/// `cargo xtask test-drivers`. On success, a note naming the drivers that
/// are NOT PROVEN (empty when there are none).
pub fn test_drivers(only: &[String], source: Source) -> Result<String> {
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
    if source == Source::Docker {
        if let Err(why) = fixtures::docker_engine() {
            bail!("`--fixtures docker` needs a Docker engine: {why}");
        }
    }
    let names = workspace_packages()?;
    let present: BTreeSet<&str> = names.values().map(String::as_str).collect();
    let runnable: Vec<&DriverEntry> = selected
        .iter()
        .copied()
        .filter(|d| present.contains(d.package))
        .collect();
    // Fixtures to start, and those that cannot exist here (by the name the
    // tests ask for) with the reason.
    let mut needed: Vec<String> = Vec::new();
    let mut unavailable: BTreeMap<String, String> = BTreeMap::new();
    for d in &runnable {
        for f in d.fixtures {
            let def = fixtures::find(f)?;
            if needed.iter().any(|n| n == f) || unavailable.contains_key(def.env_name) {
                continue;
            }
            match fixtures::availability(def, source) {
                Ok(_) => needed.push((*f).to_owned()),
                Err(why) => {
                    unavailable.insert(def.env_name.to_owned(), why);
                }
            }
        }
        for (driver, condition, check) in CONDITIONS {
            if *driver == d.name {
                if let Err(why) = check() {
                    unavailable.insert((*condition).to_owned(), why);
                }
            }
        }
    }
    let unavailable_list = unavailable.keys().cloned().collect::<Vec<_>>().join(",");
    // Printed before anything runs: a reader of the log sees what will not be
    // proven and why.
    println!("MATIH_UNAVAILABLE_FIXTURES={unavailable_list}");
    for (name, why) in &unavailable {
        say!("unavailable here: {name}: {why}");
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
    let proof_dir = std::env::temp_dir().join(format!("matih-proof-{}", std::process::id()));
    std::fs::create_dir_all(&proof_dir)
        .with_context(|| format!("creating {}", proof_dir.display()))?;
    let mut rows = Vec::new();
    for d in selected {
        let not_run = |result: &str| DriverRow {
            name: d.name.into(),
            tests: "-".into(),
            duration: Duration::ZERO,
            proof: "not run".into(),
            result: result.to_owned(),
            ok: false,
            details: Vec::new(),
        };
        if !present.contains(d.package) {
            rows.push(not_run(&format!(
                "FAILED: package {} is not in the workspace",
                d.package
            )));
            continue;
        }
        let t = Instant::now();
        let nothing_built = !build.ok && !build.binaries.iter().any(|b| b.package == d.package);
        if build.failed.contains(d.package) || nothing_built {
            rows.push(not_run("FAILED (build)"));
            continue;
        }
        let proof_file = proof_dir.join(format!("{}.jsonl", d.package));
        let run = run_package_tests(&build, d.package, &vars, &unavailable_list, &proof_file);
        rows.push(driver_row(d, run, t.elapsed(), &unavailable));
    }
    if let Some(s) = session {
        s.release();
    }
    let _ = std::fs::remove_dir_all(&proof_dir);
    print_driver_table(&rows, &unavailable);
    let failed: Vec<&str> = rows
        .iter()
        .filter(|r| !r.ok)
        .map(|r| r.name.as_str())
        .collect();
    if !failed.is_empty() {
        bail!("driver tests failed: {}", failed.join(", "));
    }
    let not_proven: Vec<&str> = rows
        .iter()
        .filter(|r| r.result.starts_with("NOT PROVEN"))
        .map(|r| r.name.as_str())
        .collect();
    Ok(if not_proven.is_empty() {
        String::new()
    } else {
        format!("NOT PROVEN: {}", not_proven.join(", "))
    })
}

/// `cargo xtask bench discovery`: each driver's `<name>_bench_discovery` example
/// (named per driver so examples of different packages never share a file),
/// in release mode, against the fixtures.
pub fn bench_discovery(service_only: bool) -> Result<()> {
    if service_only {
        return bench_discovery_service();
    }
    let root = workspace_root();
    let drivers = ["postgres", "mysql"];
    let session = Session::acquire(&drivers.map(str::to_owned), Source::Native)?;
    let mut rows = Vec::new();
    let mut summaries = Vec::new();
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
        let ran = run_teeing(
            cargo_with(&session.vars, true).args([
                "run",
                "--release",
                "-p",
                &package,
                "--example",
                &example,
            ]),
            &mut summaries,
        );
        let ok = match ran {
            Ok(ok) => ok,
            Err(e) => {
                say!("{example}: {e:#}");
                false
            }
        };
        rows.push(Row {
            name: name.into(),
            result: if ok { "ok".into() } else { "FAILED".into() },
            duration: t.elapsed(),
            ok,
        });
    }
    let cli = cli_discovery_rss(&session.vars);
    let service = crate::bench_discovery_service::measure(&session.vars, &SERVICE_DATABASES);
    session.release();
    print_table("bench discovery", &rows);
    let cli = match cli {
        Ok(cli) => {
            println!();
            for l in &cli.lines {
                println!("{l}");
            }
            cli.runs
        }
        Err(e) => {
            say!("CLI discovery: {e:#}");
            Vec::new()
        }
    };
    let service = print_service_runs(service);
    print_discovery_summary(&summaries, &cli, &service);
    if rows.iter().any(|r| !r.ok) {
        bail!("a benchmark failed");
    }
    if cli.is_empty() {
        bail!("the CLI discovery runs failed");
    }
    if service.is_empty() {
        bail!("the service discovery runs failed");
    }
    Ok(())
}

/// The PostgreSQL benchmark databases the service discovers.
const SERVICE_DATABASES: [&str; 2] = ["matih_bench_5000", "matih_bench_20000"];

/// `cargo xtask bench discovery --service-only`: the service part alone.
fn bench_discovery_service() -> Result<()> {
    let session = Session::acquire(&["postgres".to_owned()], Source::Native)?;
    let service = crate::bench_discovery_service::measure(&session.vars, &SERVICE_DATABASES);
    session.release();
    if print_service_runs(service).is_empty() {
        bail!("the service discovery runs failed");
    }
    Ok(())
}

fn print_service_runs(
    service: Result<Vec<crate::bench_discovery_service::ServiceRun>>,
) -> Vec<crate::bench_discovery_service::ServiceRun> {
    match service {
        Ok(runs) => {
            println!();
            println!(
                "service (release, PostgreSQL driver, embedded defaults; peak RSS = VmHWM, \
                 reset before each phase)"
            );
            for r in &runs {
                println!(
                    "  {:<20} ready {:>6.1} MB   create + first discovery {:>6.1} MB ({:.2} s)   \
                     re-discovery {:>6.1} MB ({:.2} s)   reading /schemas {:>6.1} MB",
                    r.database,
                    r.ready_mb,
                    r.create_mb,
                    r.create_secs,
                    r.rediscover_mb,
                    r.rediscover_secs,
                    r.read_mb
                );
            }
            runs
        }
        Err(e) => {
            say!("service discovery: {e:#}");
            Vec::new()
        }
    }
}

/// Runs `cmd`, copying its standard output through line by line and keeping
/// the `summary` lines (tab-separated `key=value` fields after the word
/// `summary`) a benchmark example ends with. True when it succeeded.
fn run_teeing(cmd: &mut Command, summaries: &mut Vec<BTreeMap<String, String>>) -> Result<bool> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .context("starting cargo run")?;
    let out = child.stdout.take().context("no stdout")?;
    for line in BufReader::new(out).lines() {
        let line = line?;
        println!("{line}");
        if let Some(fields) = line.strip_prefix("summary\t") {
            summaries.push(
                fields
                    .split('\t')
                    .filter_map(|f| f.split_once('='))
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
            );
        }
    }
    Ok(child.wait()?.success())
}

/// One CLI run under `/usr/bin/time`: best of 3.
struct CliRun {
    label: String,
    rss_mb: f64,
    wall_secs: f64,
}

struct CliFigures {
    lines: Vec<String>,
    runs: Vec<CliRun>,
}

/// The compact table at the end of `bench discovery`: per database, ours
/// and each reference as medians, the ratios ours/reference, and peak RSS
/// (inside the example, of the CLI process end to end, and of the service
/// over its create, re-discovery and read phases).
fn print_discovery_summary(
    summaries: &[BTreeMap<String, String>],
    cli: &[CliRun],
    service: &[crate::bench_discovery_service::ServiceRun],
) {
    let secs_of = |m: &BTreeMap<String, String>, k: &str| -> Option<f64> {
        m.get(k)?.parse::<f64>().ok().filter(|v| *v > 0.0)
    };
    println!();
    println!(
        "bench discovery summary (medians, release, one run; ratio = ours / reference; \
         columns alone = the column catalog read by itself; floor = MariaDB's two plain \
         information_schema queries, TABLES + COLUMNS; naive = one naive joined query)"
    );
    println!(
        "{:<30} {:>6} {:>7} {:>8} {:>17} {:>17} {:>17} {:>8} {:>8} {:>7} {:>8}  target",
        "database",
        "rels",
        "columns",
        "ours s",
        "columns alone",
        "floor",
        "naive",
        "RSS MB",
        "CLI MB",
        "CLI s",
        "svc MB"
    );
    for m in summaries {
        let name = m.get("name").map_or("?", String::as_str);
        let ours = secs_of(m, "ours");
        let cell = |k: &str| match (secs_of(m, k), ours) {
            (Some(r), Some(o)) => format!("{r:.3} s {:>5.2}x", o / r),
            _ => "-".to_owned(),
        };
        let run = cli.iter().find(|c| c.label == name);
        let svc = service
            .iter()
            .find(|r| name.strip_prefix("PostgreSQL ") == Some(r.database.as_str()));
        println!(
            "{:<30} {:>6} {:>7} {:>8} {:>17} {:>17} {:>17} {:>8} {:>8} {:>7} {:>8}  {}",
            name,
            m.get("relations").map_or("?", String::as_str),
            m.get("columns").map_or("?", String::as_str),
            ours.map_or("-".to_owned(), |o| format!("{o:.3}")),
            cell("columns_alone"),
            cell("floor"),
            cell("naive"),
            m.get("peak_rss_mb").map_or("-", String::as_str),
            run.map_or("-".to_owned(), |r| format!("{:.1}", r.rss_mb)),
            run.map_or("-".to_owned(), |r| format!("{:.3}", r.wall_secs)),
            svc.map_or("-".to_owned(), |r| format!("{:.1}", r.peak_mb())),
            m.get("target").map_or("", String::as_str),
        );
    }
    if summaries.is_empty() {
        println!("(no example printed a summary line)");
    }
    println!("CLI and service (svc: highest phase) peak RSS target: < 100 MB at 21,000 relations");
}

/// The `matih-connectors` CLI (release, postgres + mysql) discovering the
/// benchmark databases the examples built, its JSON streamed to /dev/null,
/// each run under `/usr/bin/time` (Debian `time`): peak RSS (the child's
/// `ru_maxrss` from wait4) and wall time, end to end.
fn cli_discovery_rss(vars: &Vars) -> Result<CliFigures> {
    let time = crate::util::find_program("time", &["/usr/bin/time"], "time")?;
    let built = crate::util::build_targets(
        Some("release"),
        "matih-connectors",
        &[
            "--features",
            "cli,postgres,mysql",
            "--bin",
            "matih-connectors",
        ],
    )?;
    let cli = built
        .get("matih-connectors")
        .context("cargo did not report the matih-connectors binary")?;
    let var = |k: &str| {
        vars.get(k)
            .cloned()
            .with_context(|| format!("{k} is not set by the fixture"))
    };
    let pg_user =
        var("MATIH_TEST_POSTGRES_SUPERUSER").or_else(|_| var("MATIH_TEST_POSTGRES_USER"))?;
    let pg_password = var("MATIH_TEST_POSTGRES_SUPERUSER_PASSWORD")
        .or_else(|_| var("MATIH_TEST_POSTGRES_PASSWORD"))?;
    let pg = |db: &str| -> Result<serde_json::Value> {
        Ok(serde_json::json!({
            "type": "POSTGRESQL", "host": var("MATIH_TEST_POSTGRES_HOST")?,
            "port": var("MATIH_TEST_POSTGRES_PORT")?.parse::<u16>()?, "database": db,
            "sslEnabled": false, "timeouts": {"connectMs": 10000, "queryMs": 600000},
            "credentials": {"username": pg_user, "password": pg_password},
        }))
    };
    let specs = [
        ("PostgreSQL matih_bench_5000", pg("matih_bench_5000")?),
        ("PostgreSQL matih_bench_20000", pg("matih_bench_20000")?),
        (
            "MariaDB matih_bench",
            serde_json::json!({
                "type": "MYSQL", "host": var("MATIH_TEST_MYSQL_HOST")?,
                "port": var("MATIH_TEST_MYSQL_PORT")?.parse::<u16>()?, "database": "matih_bench",
                "sslEnabled": false, "timeouts": {"connectMs": 10000, "queryMs": 600000},
                "credentials": {"username": var("MATIH_TEST_MYSQL_USER")?,
                                "password": var("MATIH_TEST_MYSQL_PASSWORD")?},
            }),
        ),
    ];
    let dir = std::env::temp_dir().join(format!("matih-bench-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut runs = Vec::new();
    let mut lines = vec![format!(
        "CLI end to end ({}; `discover --quiet`, JSON streamed to /dev/null, peak RSS = \
         ru_maxrss by /usr/bin/time; best of 3)",
        cli.display()
    )];
    for (label, spec) in specs {
        let spec_path = dir.join("spec.json");
        crate::util::write_private(&spec_path, &spec.to_string())?;
        let (mut best_rss, mut best_secs) = (u64::MAX, f64::MAX);
        for _ in 0..3 {
            let out = dir.join("time.out");
            let status = Command::new(&time)
                .arg("-o")
                .arg(&out)
                .args(["-f", "%M %e"])
                .arg(cli)
                .args(["--quiet", "discover", "--spec"])
                .arg(&spec_path)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .status()
                .context("running the CLI under /usr/bin/time")?;
            if !status.success() {
                bail!("{label}: the CLI failed ({status})");
            }
            let text = std::fs::read_to_string(&out)?;
            let mut f = text.split_whitespace();
            let rss: u64 = f.next().context("no %M")?.parse()?;
            let secs: f64 = f.next().context("no %e")?.parse()?;
            best_rss = best_rss.min(rss);
            best_secs = best_secs.min(secs);
        }
        lines.push(format!(
            "  {label:<32} peak RSS {:>6.1} MB   wall {:>6.3} s   (target < 100 MB at 21,000 relations)",
            best_rss as f64 / 1024.0,
            best_secs
        ));
        runs.push(CliRun {
            label: label.to_owned(),
            rss_mb: best_rss as f64 / 1024.0,
            wall_secs: best_secs,
        });
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(CliFigures { lines, runs })
}

/// `cargo xtask bench api`: see [`crate::bench_api`].
pub fn bench_api() -> Result<()> {
    crate::bench_api::run()
}

/// `cargo xtask bench ssh`: PostgreSQL's `postgres_bench_ssh` example in
/// release mode, against the postgres and ssh fixtures.
pub fn bench_ssh() -> Result<()> {
    let session = Session::acquire(&["postgres".to_owned(), "ssh".to_owned()], Source::Native)?;
    say!("cargo run --release -p matih-driver-postgres --example postgres_bench_ssh");
    let status = cargo_with(&session.vars, true)
        .args([
            "run",
            "--release",
            "-p",
            "matih-driver-postgres",
            "--example",
            "postgres_bench_ssh",
        ])
        .status();
    session.release();
    if !status.as_ref().is_ok_and(|s| s.success()) {
        bail!("the SSH tunnel benchmark failed");
    }
    Ok(())
}

/// `bench external`: the custom-type example against the postgres and
/// external fixtures (a debug build: the tap's process dominates).
pub fn bench_external() -> Result<()> {
    let session = Session::acquire(
        &["postgres".to_owned(), "external".to_owned()],
        Source::Native,
    )?;
    say!("cargo run -p matih-connectors --example external_bench");
    let status = cargo_with(&session.vars, true)
        .args([
            "run",
            "-p",
            "matih-connectors",
            "--example",
            "external_bench",
        ])
        .status();
    session.release();
    if !status.as_ref().is_ok_and(|s| s.success()) {
        bail!("the custom-type benchmark failed");
    }
    Ok(())
}

/// `cargo xtask bench scheduler`: the connector service's `bench_scheduler`
/// example in release (no driver compiled in: its connectors are of a custom
/// type pointed at in-process listeners), one sweep per size, on the SQLite
/// store and on the PostgreSQL fixture's server; prints each size's checks/s
/// as a ratio of the 10,000-connector figure, peak RSS and the sqlx
/// slow-statement warnings counted. `--connectors N` runs that one size.
pub fn bench_scheduler(
    connectors: usize,
    concurrency: Option<usize>,
    only: Option<&str>,
) -> Result<()> {
    // The 10,000 sweep runs first and again last: each larger sweep is
    // compared with the mean of the two, and both are printed, so a change
    // of the machine's load during the run shows instead of passing for a
    // cost that grows with the fleet.
    let sizes: Vec<usize> = if connectors == 10_000 {
        vec![10_000, 50_000, 100_000, 10_000]
    } else {
        vec![connectors]
    };
    let stores: Vec<&str> = match only {
        None => vec!["sqlite", "postgres"],
        Some(s @ ("sqlite" | "postgres")) => vec![s],
        Some(other) => bail!("--store takes sqlite or postgres, not {other}"),
    };
    let session = if stores.contains(&"postgres") {
        Some(Session::acquire(&["postgres".to_owned()], Source::Native)?)
    } else {
        None
    };
    let result = (|| {
        let pg_url = match &session {
            Some(session) => {
                let var = |k: &str| {
                    session
                        .vars
                        .get(k)
                        .cloned()
                        .with_context(|| format!("{k} is not set by the fixture"))
                };
                format!(
                    "postgres://{}:{}@{}:{}/postgres",
                    var("MATIH_TEST_POSTGRES_SUPERUSER")?,
                    var("MATIH_TEST_POSTGRES_SUPERUSER_PASSWORD")?,
                    var("MATIH_TEST_POSTGRES_HOST")?,
                    var("MATIH_TEST_POSTGRES_PORT")?
                )
            }
            None => String::new(),
        };
        let built = crate::util::build_targets(
            Some("release"),
            "matih-connector-service",
            &[
                "--no-default-features",
                "--features",
                "matih-connectors/rest",
                "--example",
                "bench_scheduler",
            ],
        )?;
        let bin = built
            .get("bench_scheduler")
            .context("cargo did not report the bench_scheduler example")?;
        let mut rows: Vec<SchedulerRow> = Vec::new();
        for store in &stores {
            for &n in &sizes {
                let mut cmd = Command::new(bin);
                cmd.args(["--connectors", &n.to_string()]);
                if let Some(c) = concurrency {
                    cmd.args(["--concurrency", &c.to_string()]);
                }
                if *store == "postgres" {
                    cmd.args(["--database-url", &pg_url]);
                }
                say!("bench_scheduler --connectors {n} ({store})");
                let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
                let out = crate::util::run_capture(
                    cmd.env("RUST_LOG", "warn"),
                    "bench_scheduler",
                    Duration::from_secs(1800),
                )?;
                let stdout = String::from_utf8_lossy(&out.stdout);
                let stderr = String::from_utf8_lossy(&out.stderr);
                print!("{stdout}");
                if !out.status.success() {
                    bail!("bench_scheduler failed ({}):\n{stderr}", out.status);
                }
                let field = |name: &str| -> Result<f64> {
                    stdout
                        .lines()
                        .find_map(|l| l.trim().strip_prefix(name))
                        .and_then(|v| v.split_whitespace().next()?.parse().ok())
                        .with_context(|| format!("no `{name}` line"))
                };
                rows.push(SchedulerRow {
                    store,
                    n,
                    rate: field("checks per second")?,
                    took: field("sweep time")?,
                    cpu_us: field("CPU per check")?,
                    rss: field("peak RSS")?,
                    slow: stderr.matches("slow statement").count(),
                    load: load.split_whitespace().next().unwrap_or("?").to_owned(),
                });
            }
        }
        print_scheduler_rows(&rows);
        Ok(())
    })();
    if let Some(session) = session {
        session.release();
    }
    result
}

/// One sweep of `cargo xtask bench scheduler`.
struct SchedulerRow<'a> {
    store: &'a str,
    n: usize,
    rate: f64,
    took: f64,
    cpu_us: f64,
    rss: f64,
    slow: usize,
    /// The 1-minute load average when the sweep's process started.
    load: String,
}

fn print_scheduler_rows(rows: &[SchedulerRow<'_>]) {
    println!();
    println!(
        "bench scheduler: one sweep each, default settings (concurrency 64 unless given), \
         release build; `vs 10k` compares with the mean of the 10,000 sweeps run first and last"
    );
    println!(
        "{:<9} {:>11} {:>9} {:>9} {:>7} {:>10} {:>10} {:>12} {:>5} {:>5}",
        "store",
        "connectors",
        "sweep s",
        "checks/s",
        "vs 10k",
        "CPU us/ck",
        "CPU vs 10k",
        "peak RSS MB",
        "slow",
        "load"
    );
    for r in rows {
        let first = rows
            .iter()
            .find(|b| b.store == r.store)
            .map_or(r.n, |b| b.n);
        let base: Vec<&SchedulerRow<'_>> = rows
            .iter()
            .filter(|b| b.store == r.store && b.n == first)
            .collect();
        let mean = |f: fn(&SchedulerRow<'_>) -> f64| {
            base.iter().map(|b| f(b)).sum::<f64>() / base.len().max(1) as f64
        };
        println!(
            "{:<9} {:>11} {:>9.2} {:>9.0} {:>6.0}% {:>10.0} {:>9.0}% {:>12.1} {:>5} {:>5}",
            r.store,
            r.n,
            r.took,
            r.rate,
            100.0 * r.rate / mean(|b| b.rate),
            r.cpu_us,
            100.0 * r.cpu_us / mean(|b| b.cpu_us),
            r.rss,
            r.slow,
            r.load
        );
    }
    println!(
        "targets: 50,000 and 100,000 at ≥ 90% of the 10,000 checks/s, peak RSS < 100 MB, \
         no slow statements; `CPU vs 10k` is the process's CPU time per check against the \
         10,000 sweeps' (lower is cheaper), which a loaded machine moves less than checks/s"
    );
}

/// The embedding examples of `matih-connectors`, built with the `postgres`
/// feature only, run against the PostgreSQL fixture: `(example, arguments after
/// the spec file, a line the output must hold)`.
const EXAMPLES: &[(&str, &[&str], &str)] = &[
    ("test_and_discover", &[], "catalog: "),
    ("print_columns", &["sales", "customers"], "NORMALIZED"),
    ("custom_driver", &[], "books.entries.amount: decimal(18,2)"),
];

/// `cargo xtask check examples`: each example in [`EXAMPLES`] against the
/// PostgreSQL fixture, its output printed and checked.
pub fn check_examples() -> Result<String> {
    let session = Session::acquire(&["postgres".to_owned()], Source::Native)?;
    let result = run_examples(&session.vars);
    session.release();
    result
}

fn run_examples(vars: &Vars) -> Result<String> {
    let var = |k: &str| {
        vars.get(&format!("MATIH_TEST_POSTGRES_{k}"))
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("the postgres fixture exported no {k}"))
    };
    let ca = std::fs::read_to_string(var("CA_FILE")?)?;
    let spec = serde_json::json!({
        "type": "POSTGRESQL",
        "host": var("HOST")?,
        "port": var("PORT")?.parse::<u16>()?,
        "database": var("DATABASE")?,
        "sslMode": "verify-full",
        "sslCaPem": ca,
        "credentials": {"username": var("USER")?, "password": var("PASSWORD")?},
    });
    let dir = fixtures::Ctx::new()?.root.join("examples");
    std::fs::create_dir_all(&dir)?;
    let spec_path = dir.join("postgres-spec.json");
    std::fs::write(&spec_path, spec.to_string())?;
    for (example, args, expect) in EXAMPLES {
        let mut cmd = cargo();
        cmd.args([
            "run",
            "-q",
            "-p",
            "matih-connectors",
            "--no-default-features",
        ])
        .args(["--features", "postgres", "--example", example, "--"])
        .arg(&spec_path)
        .args(*args);
        say!("cargo run --example {example} -- <spec> {}", args.join(" "));
        let out = cmd.stdin(Stdio::null()).output()?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        eprint!("{stdout}");
        if !out.status.success() {
            bail!(
                "example {example} failed ({}):\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        if !stdout.contains(expect) {
            bail!("example {example} printed no `{expect}`");
        }
    }
    Ok(format!("{} examples against postgres", EXAMPLES.len()))
}

/// A ci stage: its name and what it runs (`Ok(note)`: passed, with a note
/// for the table such as the drivers not proven).
type Stage<'a> = (&'static str, Box<dyn Fn() -> Result<String> + 'a>);

/// `cargo xtask ci`: stops at the first failing stage.
pub fn ci(source: Source) -> Result<()> {
    let run = |args: &'static [&'static str]| -> Box<dyn Fn() -> Result<String>> {
        Box::new(move || {
            say!("cargo {}", args.join(" "));
            let status = cargo_with(&Vars::new(), false).args(args).status()?;
            if !status.success() {
                bail!("`cargo {}` failed ({status})", args.join(" "));
            }
            Ok(String::new())
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
        // Every public item of core, the facade and testkit documented
        // (missing_docs), no broken or private links anywhere.
        (
            "doc",
            Box::new(|| {
                say!("RUSTDOCFLAGS=\"-D warnings\" cargo doc --workspace --no-deps");
                let status = cargo_with(&Vars::new(), false)
                    .args(["doc", "--workspace", "--no-deps"])
                    .env("RUSTDOCFLAGS", "-D warnings")
                    .status()?;
                if !status.success() {
                    bail!("`cargo doc --workspace --no-deps` failed ({status})");
                }
                Ok(String::new())
            }),
        ),
        ("check deploy", Box::new(crate::deploy::check_deploy)),
        // Without fixture variables: tests that need a server say why they skip.
        // Doc tests run here too (cargo test includes them for library crates).
        (
            "test (no fixtures)",
            run(&["test", "--workspace", "--no-fail-fast"]),
        ),
        ("test-drivers", Box::new(move || test_drivers(&[], source))),
        ("examples", Box::new(check_examples)),
        ("check flood", Box::new(crate::flood::run)),
        (
            "schemathesis",
            Box::new(|| crate::schemathesis::run(20).map(|()| String::new())),
        ),
    ];
    let total = Instant::now();
    let (rows, failure) = run_stages(&stages);
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

/// Runs the stages in order until one fails. Every stage gets a row, those
/// after a failure as not run, so the table always shows the whole pipeline.
fn run_stages(stages: &[Stage]) -> (Vec<Row>, Option<(&'static str, anyhow::Error)>) {
    let mut rows = Vec::new();
    let mut failure = None;
    for (name, stage) in stages {
        if failure.is_some() {
            rows.push(Row {
                name: (*name).into(),
                result: "not run (an earlier stage failed)".into(),
                duration: Duration::ZERO,
                ok: false,
            });
            continue;
        }
        say!("=== stage: {name}");
        let t = Instant::now();
        let res = stage();
        let (result, ok) = match &res {
            Ok(note) if note.is_empty() => ("ok".to_owned(), true),
            Ok(note) => (format!("ok ({note})"), true),
            Err(_) => ("FAILED".to_owned(), false),
        };
        rows.push(Row {
            name: (*name).into(),
            result,
            duration: t.elapsed(),
            ok,
        });
        if let Err(e) = res {
            failure = Some((*name, e));
        }
    }
    (rows, failure)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stage_has_a_row_even_after_a_failure() {
        let stages: Vec<Stage> = vec![
            ("fmt", Box::new(|| Ok(String::new()))),
            ("clippy", Box::new(|| bail!("warnings"))),
            ("test (no fixtures)", Box::new(|| Ok(String::new()))),
            ("test-drivers", Box::new(|| Ok("NOT PROVEN: oracle".into()))),
        ];
        let (rows, failure) = run_stages(&stages);
        let got: Vec<(&str, &str)> = rows
            .iter()
            .map(|r| (r.name.as_str(), r.result.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("fmt", "ok"),
                ("clippy", "FAILED"),
                ("test (no fixtures)", "not run (an earlier stage failed)"),
                ("test-drivers", "not run (an earlier stage failed)"),
            ]
        );
        assert_eq!(failure.map(|f| f.0), Some("clippy"));
        let ok: Vec<Stage> = vec![
            ("test (no fixtures)", Box::new(|| Ok(String::new()))),
            ("test-drivers", Box::new(|| Ok("NOT PROVEN: oracle".into()))),
        ];
        let (rows, failure) = run_stages(&ok);
        assert!(failure.is_none());
        assert_eq!(rows[0].result, "ok");
        assert_eq!(rows[1].result, "ok (NOT PROVEN: oracle)");
    }

    #[test]
    fn libtest_result_lines_are_counted() {
        let mut c = Counts::default();
        c.add_line("test result: ok. 12 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.70s");
        c.add_line(
            "test result: FAILED. 3 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out",
        );
        c.add_line("test real_server_conformance ... ok");
        c.add_line("running 9 tests");
        assert_eq!((c.passed, c.failed, c.ignored), (15, 2, 1));
    }

    fn proof_from(lines: &[&str]) -> Proof {
        // Tests run on parallel threads: one file per call, never shared.
        static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let path =
            std::env::temp_dir().join(format!("xtask-proof-{}-{n}.jsonl", std::process::id()));
        std::fs::write(&path, lines.join("\n")).unwrap();
        let p = Proof::read(&path);
        std::fs::remove_file(&path).unwrap();
        p
    }

    #[test]
    fn proof_records_make_the_column() {
        let p = proof_from(&[
            r#"{"event":"fixture","fixture":"S3","test":"a","kind":"emulator","server":"moto 5.2.5","thread":"tls_is_verified"}"#,
            r#"{"event":"fixture","fixture":"S3","test":"b","kind":"emulator","server":"moto 5.2.5","thread":"other"}"#,
            r#"{"event":"tls_proxy","fixture":"S3","port":1}"#,
            r#"{"event":"version","fixture":"S3","port":2,"version":"moto"}"#,
            r#"{"event":"fake","fake":"token endpoint fake","test":"x","thread":"sa_key"}"#,
            "not json",
        ]);
        assert_eq!(p.fixtures["S3"].2.len(), 2);
        assert_eq!(
            p.column(true),
            "emulator moto 5.2.5 [S3] (also behind the TLS proxy); in-test fake: token endpoint fake"
        );
        assert_eq!(p.not_proven_tests(), 0);
        assert_eq!(proof_from(&[]).column(true), "unit only");
        assert_eq!(proof_from(&[]).column(false), "not run");
    }

    #[test]
    fn not_proven_tests_turn_ok_into_not_proven_and_no_tests_into_a_failure() {
        let d = DRIVERS.iter().find(|d| d.name == "sqlserver").unwrap();
        let unavailable = BTreeMap::from([("SQLSERVER".to_owned(), "no Docker engine".to_owned())]);
        let run = |passed, proof| PackageRun {
            counts: Counts {
                passed,
                failed: 0,
                ignored: 0,
            },
            failed: Vec::new(),
            binaries: 2,
            proof,
        };
        let not_proven = proof_from(&[
            r#"{"event":"not_proven","fixture":"SQLSERVER","test":"real_server_conformance","thread":"real_server_conformance"}"#,
            r#"{"event":"not_proven","fixture":"SQLSERVER","test":"real_server_seed_catalog","thread":"real_server_seed_catalog"}"#,
        ]);
        let row = driver_row(d, run(9, not_proven), Duration::ZERO, &unavailable);
        assert!(row.ok);
        assert_eq!(row.tests, "7 passed, 2 not proven");
        assert_eq!(row.result, "NOT PROVEN: SQLSERVER: no Docker engine");
        let row = driver_row(d, run(0, Proof::default()), Duration::ZERO, &unavailable);
        assert!(!row.ok, "a package in which no test ran must fail");
        let row = driver_row(d, run(4, Proof::default()), Duration::ZERO, &unavailable);
        assert_eq!((row.ok, row.result.as_str()), (true, "ok"));
    }
}
