//! The `matih-connectors` binary, run as an operator would run it.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use matih_connector_testkit::{fixture, Fixture};
use serde_json::{json, Value};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_matih-connectors"))
}

fn run_with_stdin(args: &[&str], stdin: &str) -> Output {
    let mut child = bin()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn matih-connectors");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn stdout_json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn spec_for(fx: &Fixture, ty: &str) -> Value {
    json!({
        "name": "cli test",
        "type": ty,
        "host": fx.require("HOST"),
        "port": fx.port(),
        "database": fx.require("DATABASE"),
        "sslMode": "verify-full",
        "sslCaPem": fx.read_file("CA_FILE"),
        "credentials": {"username": fx.require("USER"), "password": fx.require("PASSWORD")},
    })
}

fn write_spec(spec: &Value) -> tempfile_path::TempPath {
    tempfile_path::write(&serde_json::to_string(spec).unwrap())
}

/// A temporary file removed on drop, without pulling in a crate for it.
mod tempfile_path {
    pub struct TempPath(pub std::path::PathBuf);
    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    impl TempPath {
        pub fn as_str(&self) -> &str {
            self.0.to_str().unwrap()
        }
    }
    pub fn write(text: &str) -> TempPath {
        let path = std::env::temp_dir()
            .join(matih_connector_testkit::unique_name("matih-cli-spec") + ".json");
        std::fs::write(&path, text).unwrap();
        TempPath(path)
    }
}

#[test]
fn bad_spec_exits_2_with_a_clear_code() {
    for (spec, needle) in [
        ("{not json", "invalid spec"),
        (
            r#"{"type":"POSTGRESQL","hots":"x"}"#,
            "unknown field `hots`",
        ),
        (r#"{"type":"NO SUCH"}"#, "invalid connector type"),
        (
            r#"{"type":"POSTGRESQL","host":"db","sslEnabled":false,"sslMode":"verify-full"}"#,
            "contradicts",
        ),
    ] {
        let out = run_with_stdin(&["test", "--spec", "-"], spec);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{spec}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v = stdout_json(&out);
        assert_eq!(v["errorCode"], "INVALID_CONFIGURATION", "{spec}");
        assert!(
            v["message"].as_str().unwrap().contains(needle),
            "{spec}: {v}"
        );
    }
    let out = bin()
        .args(["test", "--spec", "/nonexistent/spec.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn missing_secret_never_echoes_credentials() {
    let spec = r#"{"type":"POSTGRESQL","host":"127.0.0.1","port":1,"credentials":{"username":"u","password":"pw-9d1c0e-never-print"},"metadata":{"nonsense":1}}"#;
    let out = run_with_stdin(&["test", "--spec", "-"], spec);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains("pw-9d1c0e-never-print"), "{all}");
}

#[test]
fn refused_port_exits_1_with_the_failing_step() {
    let port = matih_connector_testkit::conformance::closed_port();
    for ty in ["POSTGRESQL", "MYSQL"] {
        let spec = json!({"type": ty, "host": "127.0.0.1", "port": port,
            "credentials": {"username": "u", "password": "p"}});
        let out = run_with_stdin(&["test", "--spec", "-"], &spec.to_string());
        assert_eq!(
            out.status.code(),
            Some(1),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v = stdout_json(&out);
        assert_eq!(v["success"], false);
        assert_eq!(v["errorCode"], "CONNECTION_REFUSED");
        assert_eq!(v["latencyMs"], Value::Null);
        assert_eq!(v["serverVersion"], Value::Null);
        assert!(v["testedAt"].as_str().unwrap().ends_with('Z'));
        let steps = v["steps"].as_array().unwrap();
        let last = steps.last().unwrap();
        assert_eq!(last["name"], "tcp");
        assert_eq!(last["success"], false);
        assert_eq!(last["errorCode"], "CONNECTION_REFUSED");
        assert!(last["latencyMs"].is_u64());
        assert!(last["message"].is_string());
    }
}

fn passes_against(fx: &Fixture, ty: &str) {
    let spec = write_spec(&spec_for(fx, ty));
    let out = bin()
        .args(["test", "--spec", spec.as_str()])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = stdout_json(&out);
    assert_eq!(v["success"], true);
    assert_eq!(v["message"], "Connection successful");
    assert!(v["latencyMs"].is_u64());
    assert!(v["errorCode"].is_null());
    assert!(!v["serverVersion"].as_str().unwrap().is_empty());
    let names: Vec<_> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        names,
        [
            "validate",
            "dns",
            "tcp",
            "connect",
            "server_version",
            "access_probe"
        ]
    );
    // Progress went to stderr, the secret went nowhere.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("access_probe"), "{stderr}");
    let password = fx.require("PASSWORD");
    assert!(!stderr.contains(password) && !String::from_utf8_lossy(&out.stdout).contains(password));

    let mut bad = spec_for(fx, ty);
    bad["credentials"]["password"] = json!("definitely-wrong-password");
    let out = run_with_stdin(&["test", "--spec", "-"], &bad.to_string());
    assert_eq!(out.status.code(), Some(1));
    let v = stdout_json(&out);
    assert_eq!(v["errorCode"], "AUTHENTICATION_FAILED", "{v}");
    // The progress line names the wire code and the user, never the password.
    let line = failed_step_line(&out, "connect");
    let user = fx.require("USER");
    assert!(
        line.contains("AUTHENTICATION_FAILED") && line.contains(user),
        "{line}"
    );
    assert!(!all_output(&out).contains("definitely-wrong-password"));

    // --quiet: the report and nothing else.
    let out = bin()
        .args(["--quiet", "test", "--spec", spec.as_str()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout_json(&out)["success"], true);
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A row of `--output table`: cells are separated by two spaces or more, names
/// and sizes hold single spaces.
fn cells(line: &str) -> Vec<&str> {
    line.split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect()
}

/// Standard output and standard error together, for leak scans.
fn all_output(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The progress line of the step that failed, which must be `step`.
fn failed_step_line(out: &Output, step: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .find(|l| l.trim_start().starts_with(step))
        .unwrap_or_else(|| panic!("no {step} progress line:\n{stderr}"));
    assert!(!line.contains("Some("), "debug text in {line}");
    line.to_owned()
}

fn discovers_from(fx: &Fixture, ty: &str, schema: &str) {
    let spec = write_spec(&spec_for(fx, ty));
    let out = bin()
        .args([
            "discover",
            "--spec",
            spec.as_str(),
            "--include-schema",
            schema,
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = stdout_json(&out);
    let schemas = v["schemas"].as_array().unwrap();
    assert_eq!(schemas.len(), 1, "{v}");
    assert_eq!(schemas[0]["name"], schema);
    let tables = schemas[0]["tables"].as_array().unwrap();
    assert!(!tables.is_empty());
    for t in tables {
        for key in [
            "name",
            "type",
            "estimatedRows",
            "sizeBytes",
            "primaryKey",
            "columns",
        ] {
            assert!(t.get(key).is_some(), "table lacks {key}: {t}");
        }
        for c in t["columns"].as_array().unwrap() {
            for key in [
                "name",
                "ordinal",
                "nativeType",
                "dataType",
                "nullable",
                "default",
                "comment",
            ] {
                assert!(c.get(key).is_some(), "column lacks {key}: {c}");
            }
        }
    }
    assert!(String::from_utf8_lossy(&out.stderr).contains("discovered"));

    // The same catalog as a table: a row per table with its estimate and size.
    let out = bin()
        .args([
            "--quiet",
            "discover",
            "--spec",
            spec.as_str(),
            "--include-schema",
            schema,
            "--depth",
            "tables",
            "--output",
            "table",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stderr.is_empty());
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    let header = cells(lines.next().unwrap());
    assert_eq!(
        header,
        ["SCHEMA", "TABLE", "KIND", "ROWS (EST.)", "SIZE", "COLUMNS"]
    );
    let rows: Vec<Vec<&str>> = lines.map(cells).collect();
    assert_eq!(rows.len(), tables.len(), "{text}");
    for t in tables {
        let name = t["name"].as_str().unwrap();
        let row = rows
            .iter()
            .find(|r| r[0] == schema && r[1] == name)
            .unwrap_or_else(|| panic!("no row for {name}:\n{text}"));
        assert_eq!(row[2], t["type"].as_str().unwrap(), "{text}");
        let rows_cell = t["estimatedRows"]
            .as_u64()
            .map_or("-".to_owned(), |n| n.to_string());
        assert_eq!(row[3], rows_cell, "{text}");
        assert_eq!(row[4] == "-", t["sizeBytes"].is_null(), "{text}");
    }

    // Excluding every table leaves the schema empty.
    let out = bin()
        .args([
            "discover",
            "--spec",
            spec.as_str(),
            "--include-schema",
            schema,
            "--exclude-table",
            "*",
        ])
        .output()
        .unwrap();
    let v = stdout_json(&out);
    assert!(
        v["schemas"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["tables"].as_array().unwrap().is_empty()),
        "{v}"
    );
}

#[test]
fn cli_against_postgres() {
    let Some(fx) = fixture("POSTGRES", "cli_against_postgres") else {
        return;
    };
    passes_against(&fx, "POSTGRESQL");
    discovers_from(&fx, "POSTGRESQL", "sales");
}

#[test]
fn cli_against_mysql() {
    let Some(fx) = fixture("MYSQL", "cli_against_mysql") else {
        return;
    };
    passes_against(&fx, "MYSQL");
    let db = fx.require("DATABASE").to_owned();
    discovers_from(&fx, "MYSQL", &db);
}

/// The failing test's progress line names the wire code and the user, so an
/// administrator knows whose privilege to fix; the password appears nowhere.
#[test]
fn failing_test_progress_line_shows_permission_denied_and_the_user() {
    let Some(fx) = fixture(
        "MYSQL",
        "failing_test_progress_line_shows_permission_denied_and_the_user",
    ) else {
        return;
    };
    let mut spec = spec_for(&fx, "MYSQL");
    let (user, password) = (fx.require("NOPRIV_USER"), fx.require("NOPRIV_PASSWORD"));
    spec["credentials"] = json!({"username": user, "password": password});
    let out = run_with_stdin(&["test", "--spec", "-"], &spec.to_string());
    assert_eq!(out.status.code(), Some(1), "{}", all_output(&out));
    assert_eq!(stdout_json(&out)["errorCode"], "PERMISSION_DENIED");
    let line = failed_step_line(&out, "connect");
    assert!(
        line.contains("PERMISSION_DENIED") && line.contains(&format!("'{user}'")),
        "{line}"
    );
    assert!(!all_output(&out).contains(password));
}

#[test]
fn cli_through_an_ssh_tunnel() {
    let test = "cli_through_an_ssh_tunnel";
    let (Some(pg), Some(ssh)) = (fixture("POSTGRES", test), fixture("SSH", test)) else {
        return;
    };
    let key = ssh.read_file("KEY_FILE");
    let mut spec = spec_for(&pg, "POSTGRESQL");
    spec["host"] = json!(ssh.require("TARGET_HOST"));
    spec["sslMode"] = json!("disable");
    spec["credentials"]["sshPrivateKey"] = json!(key);
    spec["metadata"] = json!({"sshTunnel": {
        "host": ssh.require("HOST"), "port": ssh.port(),
        "username": ssh.require("KEY_USER"), "hostKey": ssh.require("HOST_KEY")}});
    let file = write_spec(&spec);
    let out = bin()
        .args(["test", "--spec", file.as_str()])
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let v = stdout_json(&out);
    let names: Vec<_> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        names,
        [
            "validate",
            "dns",
            "tcp",
            "ssh",
            "connect",
            "server_version",
            "access_probe"
        ]
    );
    let key_body = key
        .lines()
        .find(|l| l.len() > 40 && !l.starts_with("-----"))
        .expect("a base64 line of the key");
    assert!(!stdout.contains(key_body) && !stderr.contains(key_body));

    let out = bin()
        .args([
            "discover",
            "--spec",
            file.as_str(),
            "--include-schema",
            "sales",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = stdout_json(&out);
    assert_eq!(v["schemas"][0]["name"], "sales", "{v}");
    assert!(!v["schemas"][0]["tables"].as_array().unwrap().is_empty());
}

#[test]
fn drivers_lists_the_compiled_ones() {
    let out = bin().arg("drivers").output().unwrap();
    assert!(out.status.success());
    let v = stdout_json(&out);
    let types: Vec<_> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["type"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        types.contains(&"POSTGRESQL".to_owned()) && types.contains(&"MYSQL".to_owned()),
        "{types:?}"
    );
}

/// A `--custom-types` file with the fixture's Airbyte source as `FAKER`.
fn faker_types(ext: &Fixture) -> tempfile_path::TempPath {
    tempfile_path::write(&format!(
        "[custom_types.FAKER]\nprotocol = \"airbyte\"\ncommand = [{:?}]\ntimeout_secs = 300\n",
        ext.require("SOURCE_FAKER")
    ))
}

#[test]
fn cli_tests_and_discovers_a_custom_type() {
    let Some(ext) = fixture("EXTERNAL", "cli_tests_and_discovers_a_custom_type") else {
        return;
    };
    let types = faker_types(&ext);
    // No host, port or database: a custom type's settings are its metadata.
    let spec = write_spec(&json!({
        "type": "FAKER",
        "metadata": {"count": 5},
        "timeouts": {"connectMs": 300000, "queryMs": 300000},
    }));
    let out = bin()
        .args([
            "test",
            "--custom-types",
            types.as_str(),
            "--spec",
            spec.as_str(),
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = stdout_json(&out);
    assert_eq!(v["success"], true, "{v}");
    let steps: Vec<&str> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        ["validate", "connect", "server_version", "access_probe"],
        "{v}"
    );
    assert!(
        v["serverVersion"]
            .as_str()
            .unwrap()
            .starts_with("airbyte-source-faker"),
        "{v}"
    );

    let out = bin()
        .args([
            "discover",
            "--custom-types",
            types.as_str(),
            "--spec",
            spec.as_str(),
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = stdout_json(&out);
    let tables: Vec<&str> = v["schemas"][0]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(tables, ["products", "purchases", "users"], "{v}");

    let out = bin()
        .args(["drivers", "--custom-types", types.as_str()])
        .output()
        .unwrap();
    let v = stdout_json(&out);
    let faker = v
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["type"] == "FAKER")
        .unwrap_or_else(|| panic!("FAKER not listed: {v}"));
    assert_eq!(faker["defaultPort"], Value::Null);
    matih_connector_testkit::processes::assert_no_survivors(
        matih_connectors::external::WORKDIR_PREFIX,
    );
}

#[test]
fn custom_types_without_the_file_or_with_a_bad_one_are_bad_input() {
    let spec = r#"{"type":"FAKER","metadata":{"count":1}}"#;
    let out = run_with_stdin(&["test", "--spec", "-"], spec);
    assert_eq!(out.status.code(), Some(2));
    assert!(stdout_json(&out)["message"]
        .as_str()
        .unwrap()
        .contains("no driver is registered"));
    let bad = tempfile_path::write(
        "[custom_types.POSTGRESQL]\nprotocol = \"singer\"\ncommand = [\"tap-postgres\"]\n",
    );
    let out = run_with_stdin(
        &["test", "--custom-types", bad.as_str(), "--spec", "-"],
        spec,
    );
    assert_eq!(out.status.code(), Some(2));
    let v = stdout_json(&out);
    assert_eq!(v["errorCode"], "INVALID_CONFIGURATION", "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("standard type"),
        "{v}"
    );
}
