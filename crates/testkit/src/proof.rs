//! What a test run really ran against, written down by the tests themselves.
//!
//! `cargo xtask test-drivers` names a file per package in
//! `MATIH_PROOF_FILE`; every fixture a test takes ([`crate::fixture`]), every
//! in-test fake it starts ([`fake`]), every TLS proxy it puts in front of a
//! fixture ([`crate::tls_proxy::TlsProxy`]), every server version the connectivity test
//! reported ([`crate::conformance::assert_test_succeeds`]) and every test that
//! could not run because xtask declared its fixture unavailable appends one
//! JSON line there. xtask turns the lines into the proof column of its
//! summary, so the column says what ran, not what a table claims.
//!
//! Without `MATIH_PROOF_FILE` (a plain `cargo test`) nothing is written.

use std::io::Write;

use serde_json::{json, Value};

/// Names the file the records go to (one JSON object per line).
pub const PROOF_FILE: &str = "MATIH_PROOF_FILE";

/// Comma-separated fixture names (`SQLSERVER,ORACLE`) that xtask declared
/// unavailable on this machine, each with a reason it printed. A test that
/// needs one of them records `not_proven` instead of failing under
/// `MATIH_REQUIRE_FIXTURES=1`; any other missing fixture still fails.
pub const UNAVAILABLE_FIXTURES: &str = "MATIH_UNAVAILABLE_FIXTURES";

/// Whether xtask declared `name` unavailable (names compare without case,
/// `-` and `_` alike).
pub fn declared_unavailable(name: &str) -> bool {
    std::env::var(UNAVAILABLE_FIXTURES).is_ok_and(|list| list_names(&list, name))
}

fn list_names(list: &str, name: &str) -> bool {
    let norm = |s: &str| s.trim().to_ascii_uppercase().replace('-', "_");
    let want = norm(name);
    !want.is_empty() && list.split(',').any(|n| norm(n) == want)
}

/// The running test, as libtest names its thread (`module::test_name`);
/// `None` outside a test thread.
fn current_test() -> Option<String> {
    let t = std::thread::current();
    t.name()
        .filter(|n| *n != "main" && !n.starts_with("tokio-runtime"))
        .map(str::to_owned)
}

/// Appends one record. Errors are reported, never fatal: the proof file is a
/// report about the test, not part of it.
pub(crate) fn record(mut event: Value) {
    let Some(path) = std::env::var_os(PROOF_FILE) else {
        return;
    };
    if let (Some(obj), Some(t)) = (event.as_object_mut(), current_test()) {
        obj.entry("thread").or_insert(Value::String(t));
    }
    let mut line = event.to_string();
    line.push('\n');
    // One write of a whole line to a file opened for appending: lines of
    // tests running on parallel threads do not interleave.
    let res = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = res {
        eprintln!(
            "warning: cannot write the proof record to {}: {e}",
            std::path::Path::new(&path).display()
        );
    }
}

/// Declares that `test` runs against an in-test fake (a server written inside
/// the test), named so the run's proof column says so: e.g.
/// `fake("TDS protocol fake", "tds_fake_login_failed")`.
pub fn fake(what: &str, test: &str) {
    record(json!({"event": "fake", "fake": what, "test": test}));
}

/// Fixtures this process took, to attribute a port two fixtures share (moto
/// serves S3 and DynamoDB on one) to the one the tests use.
fn taken() -> &'static std::sync::Mutex<std::collections::BTreeSet<String>> {
    static TAKEN: std::sync::OnceLock<std::sync::Mutex<std::collections::BTreeSet<String>>> =
        std::sync::OnceLock::new();
    TAKEN.get_or_init(Default::default)
}

/// A fixture a test took, with what xtask said it is (`KIND`: real server or
/// emulator; `SERVER`: product and version read from the started server).
pub(crate) fn fixture_used(fx: &crate::Fixture, test: &str) {
    if let Ok(mut t) = taken().lock() {
        t.insert(fx.name().to_owned());
    }
    record(json!({
        "event": "fixture",
        "fixture": fx.name(),
        "test": test,
        "kind": fx.get("KIND").unwrap_or("unknown kind"),
        "server": fx.get("SERVER").unwrap_or("unknown server"),
    }));
}

/// A test that did not run because xtask declared its fixture unavailable.
pub(crate) fn not_proven(fixture: &str, test: &str) {
    record(json!({"event": "not_proven", "fixture": fixture, "test": test}));
}

/// A condition of the machine a test needed and found (see
/// [`crate::precondition`]).
pub(crate) fn condition(name: &str, test: &str) {
    record(json!({"event": "condition", "condition": name, "test": test}));
}

/// A TLS-terminating proxy put in front of a fixture.
pub(crate) fn tls_proxy(fixture: &str, port: u16) {
    record(json!({"event": "tls_proxy", "fixture": fixture, "port": port}));
}

/// The version a driver read from the server it reached on `port`, attributed
/// to the fixture (or TLS proxy in front of one) listening there.
pub(crate) fn version_seen(port: Option<u16>, version: &str) {
    let fixture = port.and_then(fixture_on_port);
    record(json!({"event": "version", "fixture": fixture, "port": port, "version": version}));
}

/// The fixture whose `MATIH_TEST_<NAME>_PORT` is `port`, or whose TLS proxy
/// listens there.
fn fixture_on_port(port: u16) -> Option<String> {
    if let Some(name) = crate::tls_proxy::proxied_fixture(port) {
        return Some(name);
    }
    let p = port.to_string();
    let on_port: Vec<String> = std::env::vars()
        .filter_map(|(k, v)| {
            let name = k.strip_prefix("MATIH_TEST_")?.strip_suffix("_PORT")?;
            (v == p).then(|| name.to_owned())
        })
        .collect();
    let taken = taken().lock().map(|t| t.clone()).unwrap_or_default();
    on_port
        .iter()
        .find(|n| taken.contains(*n))
        .or(on_port.first())
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unavailable_names_compare_loosely() {
        let list = "sqlserver, Oracle-client ,";
        assert!(list_names(list, "SQLSERVER"));
        assert!(list_names(list, "ORACLE_CLIENT"));
        assert!(!list_names(list, "ORACLE"));
        assert!(!list_names(list, ""));
        assert!(!list_names("", "SQLSERVER"));
    }
}
