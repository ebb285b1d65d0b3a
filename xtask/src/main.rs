//! `cargo xtask`: development tasks for the MATIH connectors workspace.
//!
//! ```text
//! cargo xtask fixtures up [--only postgres,mysql] [--source native|docker]
//! eval "$(cargo xtask fixtures env)"
//! cargo xtask fixtures down | status | clean
//! cargo xtask test-drivers [--only postgres,mysql,cli] [--fixtures native|docker]
//! cargo xtask bench discovery | api | ssh | external | scheduler [--connectors N] [--store sqlite|postgres]
//! cargo xtask check deploy | examples | flood
//! cargo xtask ci
//! ```

mod bench_api;
mod bench_discovery_service;
mod deploy;
mod fixtures;
mod flood;
mod schemathesis;
mod tasks;
mod tls;
mod util;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use fixtures::Source;

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Development tasks: fixtures, driver tests, benchmarks, CI"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start, stop and describe the test fixtures (real servers on loopback).
    Fixtures {
        #[command(subcommand)]
        action: FixturesCmd,
    },
    /// Start the fixtures, run each driver's tests against them with
    /// MATIH_REQUIRE_FIXTURES=1, stop the fixtures, print a summary.
    TestDrivers {
        /// Drivers to test (comma-separated; default: all). `cli` is the
        /// matih-connectors package's tests.
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// Where fixtures come from (also spelled `--source`). Fixtures that
        /// cannot come from it here are declared unavailable: NOT PROVEN.
        #[arg(long, alias = "source", value_enum, default_value = "native")]
        fixtures: Source,
    },
    /// Benchmarks: figures measured side by side in one run (not tests).
    Bench {
        #[command(subcommand)]
        which: BenchCmd,
    },
    /// Checks beside the tests: the deploy artifacts, the embedding examples,
    /// the running service under a slow-header flood from a separate process.
    Check {
        #[command(subcommand)]
        what: CheckCmd,
    },
    /// The service's OpenAPI document against the running service, with
    /// schemathesis (PyPI, in a venv xtask creates): 0 failures.
    Schemathesis {
        /// Test cases per API operation and phase.
        #[arg(long, default_value_t = 20)]
        max_examples: u32,
    },
    /// Everything CI checks: fmt, clippy, docs, deploy artifacts, tests,
    /// driver tests with fixtures, the embedding examples, the flood check,
    /// schemathesis.
    Ci {
        #[arg(long, value_enum, default_value = "native")]
        fixtures: Source,
    },
}

#[derive(Subcommand)]
enum FixturesCmd {
    /// Start fixtures (no-op for running ones) and print `export` lines on stdout.
    Up {
        /// Fixtures to start (comma-separated; default: all).
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        #[arg(long, value_enum, default_value = "native")]
        source: Source,
    },
    /// Stop fixtures by pid; their data is kept for the next `up`.
    Down {
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
    },
    /// Print `export MATIH_TEST_…` lines for the running fixtures (eval-able).
    Env {
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
    },
    /// Show which fixtures run, where and on which port.
    Status {
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
    },
    /// Stop fixtures and delete their state (data, certificates, passwords).
    Clean {
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
    },
}

#[derive(Subcommand)]
enum CheckCmd {
    /// hadolint on the Dockerfile; the Kubernetes manifests against the
    /// Kubernetes schemas (kubernetes-validate) and a security lint (checkov).
    Deploy,
    /// The `matih-connectors` examples against the PostgreSQL fixture.
    Examples,
    /// 500 connections sending one header byte every 5 s: all closed within
    /// the header timeout, /healthz p99 < 50 ms meanwhile, RSS back within 20%.
    Flood,
}

#[derive(Subcommand)]
enum BenchCmd {
    /// Catalog discovery against the postgres and mysql fixtures.
    Discovery {
        /// Only the connector service's peak RSS, on the PostgreSQL fixture
        /// (its benchmark databases are made by a full run).
        #[arg(long)]
        service_only: bool,
    },
    /// The connector service's API under wrk beside a bare axum server: GET one,
    /// list 1,000, create, the test route beside the driver; start-to-ready.
    Api,
    /// The PostgreSQL connectivity test direct and through the ssh fixture's bastion.
    Ssh,
    /// A custom type (the Singer tap-postgres) beside the native PostgreSQL
    /// driver on the same database: test and discovery.
    External,
    /// One health sweep over N connectors pointed at local listeners: time, checks/s, peak RSS.
    Scheduler {
        #[arg(long, default_value_t = 10_000)]
        connectors: usize,
        #[arg(long)]
        concurrency: Option<usize>,
        /// `sqlite` or `postgres` alone (default: both).
        #[arg(long)]
        store: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Fixtures { action } => match action {
            FixturesCmd::Up { only, source } => fixtures::cmd_up(&only, source),
            FixturesCmd::Down { only } => fixtures::cmd_down(&only),
            FixturesCmd::Env { only } => fixtures::cmd_env(&only),
            FixturesCmd::Status { only } => fixtures::cmd_status(&only),
            FixturesCmd::Clean { only } => fixtures::cmd_clean(&only),
        },
        Cmd::TestDrivers { only, fixtures } => tasks::test_drivers(&only, fixtures).map(drop),
        Cmd::Bench {
            which: BenchCmd::Discovery { service_only },
        } => tasks::bench_discovery(service_only),
        Cmd::Bench {
            which: BenchCmd::Api,
        } => tasks::bench_api(),
        Cmd::Bench {
            which: BenchCmd::Ssh,
        } => tasks::bench_ssh(),
        Cmd::Bench {
            which: BenchCmd::External,
        } => tasks::bench_external(),
        Cmd::Bench {
            which:
                BenchCmd::Scheduler {
                    connectors,
                    concurrency,
                    store,
                },
        } => tasks::bench_scheduler(connectors, concurrency, store.as_deref()),
        Cmd::Check {
            what: CheckCmd::Deploy,
        } => deploy::check_deploy().map(drop),
        Cmd::Check {
            what: CheckCmd::Examples,
        } => tasks::check_examples().map(drop),
        Cmd::Check {
            what: CheckCmd::Flood,
        } => flood::run().map(drop),
        Cmd::Schemathesis { max_examples } => schemathesis::run(max_examples),
        Cmd::Ci { fixtures } => tasks::ci(fixtures),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("[xtask] error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
