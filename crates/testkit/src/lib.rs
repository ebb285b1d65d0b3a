//! Conformance suite and fixture contract for MATIH connector drivers.
//!
//! # Fixture contract
//!
//! A test that needs a running source reads `MATIH_TEST_<NAME>_*` variables
//! (`<NAME>` is the driver name upper-cased with `-` as `_`, e.g. `POSTGRES`,
//! `AZURE_BLOB`). `cargo xtask fixtures up` starts the fixtures and
//! `cargo xtask fixtures env` prints the variables. When they are missing a
//! test prints why it skips and returns; with `MATIH_REQUIRE_FIXTURES=1` (set by
//! `cargo xtask test-drivers` and CI) a missing fixture fails the test instead,
//! unless xtask declared that fixture unavailable on this machine in
//! `MATIH_UNAVAILABLE_FIXTURES` (no Docker engine for SQL Server, say): then
//! the test returns and is recorded as not proven, and xtask's summary says
//! `NOT PROVEN` for the driver instead of `ok`.
//!
//! # Proof records
//!
//! Every fixture taken, in-test fake declared ([`fake`]), TLS proxy started
//! ([`tls_proxy::TlsProxy`]) and server version seen is appended to the file named by
//! `MATIH_PROOF_FILE` (see [`proof`]); xtask prints what each package's tests
//! ran against from it.
//!
//! ```no_run
//! # async fn t() {
//! let Some(fx) = matih_connector_testkit::fixture("POSTGRES", "discovers_seed") else { return };
//! let host = fx.require("HOST");
//! # }
//! ```

#![warn(missing_docs)]

pub mod bench;
pub mod conformance;
pub mod egress;
pub mod egress_proof;
pub mod incremental;
pub mod processes;
pub mod proof;
pub mod tls;
pub mod tls_proxy;
pub mod tunnel;

use std::collections::BTreeMap;

pub use proof::fake;

/// The variable that turns a missing fixture into a failure.
pub const REQUIRE_FIXTURES: &str = "MATIH_REQUIRE_FIXTURES";

/// A running fixture's variables, `MATIH_TEST_<NAME>_<KEY>`.
#[derive(Clone, Debug)]
pub struct Fixture {
    name: String,
    vars: BTreeMap<String, String>,
}

impl Fixture {
    /// Reads the fixture's variables; `None` when `MATIH_TEST_<NAME>_HOST` is unset.
    pub fn from_env(name: &str) -> Option<Fixture> {
        let prefix = format!("MATIH_TEST_{name}_");
        let vars: BTreeMap<String, String> = std::env::vars()
            .filter_map(|(k, v)| k.strip_prefix(&prefix).map(|rest| (rest.to_owned(), v)))
            .collect();
        vars.contains_key("HOST").then(|| Fixture {
            name: name.to_owned(),
            vars,
        })
    }

    /// The fixture's name (`POSTGRES`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The variable `MATIH_TEST_<NAME>_<key>`, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars.get(key).map(String::as_str)
    }

    /// The variable's value; panics naming the variable when it is missing.
    pub fn require(&self, key: &str) -> &str {
        self.get(key).unwrap_or_else(|| {
            panic!(
                "fixture {}: MATIH_TEST_{}_{key} is not set",
                self.name, self.name
            )
        })
    }

    /// `PORT` as a number; panics when it is not one.
    pub fn port(&self) -> u16 {
        self.require("PORT")
            .parse()
            .unwrap_or_else(|_| panic!("MATIH_TEST_{}_PORT is not a port", self.name))
    }

    /// Reads the file a variable names (a CA certificate, say).
    pub fn read_file(&self, key: &str) -> String {
        let path = self.require(key);
        std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("reading {path} (MATIH_TEST_{}_{key}): {e}", self.name))
    }
}

/// Whether missing fixtures are failures (`MATIH_REQUIRE_FIXTURES=1`).
pub fn fixtures_required() -> bool {
    matches!(
        std::env::var(REQUIRE_FIXTURES).as_deref(),
        Ok("1") | Ok("true") | Ok("yes")
    )
}

/// The fixture for a test, or `None` after printing why the test skips. Under
/// `MATIH_REQUIRE_FIXTURES=1` a missing fixture panics, failing the test,
/// unless xtask declared it unavailable (`MATIH_UNAVAILABLE_FIXTURES`): then
/// the test is recorded as not proven and `None` is returned. A fixture that
/// is there is recorded in the run's proof file.
pub fn fixture(name: &str, test: &str) -> Option<Fixture> {
    let only = name.to_ascii_lowercase().replace('_', "-");
    match Fixture::from_env(name) {
        Some(f) => {
            proof::fixture_used(&f, test);
            Some(f)
        }
        None if proof::declared_unavailable(name) => {
            eprintln!(
                "NOT PROVEN {test}: fixture {name} was declared unavailable on this machine \
                 ({}); the reason is in the run's summary",
                proof::UNAVAILABLE_FIXTURES
            );
            proof::not_proven(name, test);
            None
        }
        None if fixtures_required() => panic!(
            "{test}: fixture {name} is required ({REQUIRE_FIXTURES}=1) but MATIH_TEST_{name}_HOST is not set; \
             start it with `cargo xtask fixtures up --only {only}` (with `--source docker` for SQL Server and Oracle)"
        ),
        None => {
            eprintln!(
                "SKIP {test}: MATIH_TEST_{name}_HOST is not set; run `cargo xtask test-drivers --only {only}` to start the fixture"
            );
            None
        }
    }
}

/// A condition of the machine a test needs that is not a server (e.g.
/// `ORACLE_CLIENT_MISSING`: no Oracle Client library installed, to prove the
/// missing-library path). `true` when it holds. When it does not, the test
/// skips (printing `why_not`), or under `MATIH_REQUIRE_FIXTURES=1` fails
/// unless xtask declared the condition unavailable, in which case the test is
/// recorded as not proven.
pub fn precondition(name: &str, test: &str, holds: bool, why_not: &str) -> bool {
    if holds {
        proof::condition(name, test);
        return true;
    }
    if proof::declared_unavailable(name) {
        eprintln!("NOT PROVEN {test}: {name} does not hold here: {why_not}");
        proof::not_proven(name, test);
    } else if fixtures_required() {
        panic!(
            "{test}: {name} does not hold ({why_not}), {REQUIRE_FIXTURES}=1 and xtask did not \
             declare it unavailable in {}",
            proof::UNAVAILABLE_FIXTURES
        );
    } else {
        eprintln!("SKIP {test}: {name} does not hold here: {why_not}");
    }
    false
}

/// A name no other run uses, for objects a test creates (`prefix_<pid>_<nanos>`).
pub fn unique_name(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}_{}_{nanos}", std::process::id())
}

/// One row of a driver's HTTP error-table test: status, body, the code the
/// answer must map to, and the reason the error must carry (`None`: none).
pub type StatusCase<'a> = (
    u16,
    &'a str,
    matih_connector_core::ErrorCode,
    Option<&'a str>,
);

/// Checks every row of an error table: `map` turns a status and body into the
/// driver's error, whose code, `reason_key` context and `httpStatus` context
/// must be the row's.
pub fn assert_status_cases(
    map: impl Fn(u16, &str) -> matih_connector_core::ConnectorError,
    reason_key: &str,
    cases: &[StatusCase<'_>],
) {
    for (st, body, want, reason) in cases {
        let e = map(*st, body);
        assert_eq!(e.code(), *want, "{st} {body}");
        assert_eq!(e.context_value(reason_key), *reason, "{body}");
        assert_eq!(e.context_value("httpStatus"), Some(st.to_string().as_str()));
    }
}
