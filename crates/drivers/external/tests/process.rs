//! The child-process contract, proven with small shell scripts (no fixture:
//! `/bin/sh` is the connector): time limit with the whole process group gone,
//! cancellation, bounded output, garbage output, the scrubbed environment and
//! the private 0600 config file.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use matih_connector_core::{
    open, run_test, ConnectionConfig, Credentials, DiscoveryRequest, EgressPolicy, ErrorCode,
    Registry, Step, TestOptions,
};
use matih_connector_testkit::conformance::assert_no_secret;
use matih_driver_external::CustomTypes;

/// A directory of the test's own, for what the scripts leave behind.
fn scratch(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(matih_connector_testkit::unique_name(test));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A registry with one custom type `NAME` running `/bin/sh -c script`.
fn registry(name: &str, protocol: &str, script: &str, extra: &str) -> Registry {
    let toml = format!(
        "[custom_types.{name}]\nprotocol = \"{protocol}\"\ncommand = [\"/bin/sh\", \"-c\", {script:?}, \"sh\"]\n{extra}\n"
    );
    let types = CustomTypes::from_toml(&toml).unwrap();
    let mut r = Registry::new();
    matih_driver_external::install(&mut r, &types);
    r
}

/// Process ids whose process group is `pgid` and that are not zombies
/// (PID 1 here does not reap orphans: a killed orphan stays a zombie).
fn live_members(pgid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid pgrp …; comm may hold spaces, so split after ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() > 2 && fields[0] != "Z" && fields[2] == pgid.to_string() {
            out.push(pid);
        }
    }
    out
}

/// Waits (up to a deadline) until nothing of the group is alive; returns
/// what is still alive at the deadline.
fn group_gone(pgid: i32) -> Vec<i32> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let alive = live_members(pgid);
        if alive.is_empty() || Instant::now() > deadline {
            return alive;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (up to a deadline) for the script to write its pid.
async fn read_pid(path: &Path) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(s) = std::fs::read_to_string(path) {
            if let Ok(pid) = s.trim().parse() {
                return pid;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the script never wrote {}",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_hanging_command_times_out_and_its_whole_group_is_killed() {
    let dir = scratch("ext_hang");
    let pidfile = dir.join("pid");
    // The leader and two children, all in the run's process group.
    let script = format!(
        "echo $$ > {}; sleep 300 & sleep 300 & wait",
        pidfile.display()
    );
    let r = registry("HANG", "airbyte", &script, "timeout_secs = 2");
    let driver = r.get(&"HANG".parse().unwrap()).unwrap();
    let report = run_test(
        &*driver,
        &ConnectionConfig::default(),
        &Credentials::new(),
        &TestOptions::default(),
    )
    .await;
    assert!(!report.success);
    assert_eq!(
        report.error_code,
        Some(ErrorCode::Timeout),
        "{}",
        report.message
    );
    assert_eq!(report.failure().map(|f| f.0), Some(Step::AccessProbe));
    assert!(report.message.contains("within 2 s"), "{}", report.message);
    let pgid = read_pid(&pidfile).await;
    assert_eq!(
        group_gone(pgid),
        Vec::<i32>::new(),
        "processes of group {pgid} survived"
    );
    matih_connector_testkit::processes::assert_no_survivors(matih_driver_external::WORKDIR_PREFIX);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_cancelled_run_leaves_no_process() {
    let dir = scratch("ext_cancel");
    let pidfile = dir.join("pid");
    let script = format!("echo $$ > {}; sleep 300 & wait", pidfile.display());
    let r = registry("CANCELME", "singer", &script, "timeout_secs = 600");
    let driver = r.get(&"CANCELME".parse().unwrap()).unwrap();
    let mut conn = open(
        &*driver,
        &ConnectionConfig::default(),
        &Credentials::new(),
        &EgressPolicy::default(),
    )
    .await
    .unwrap();
    let task = tokio::spawn(async move { conn.discover(&DiscoveryRequest::default()).await });
    let pgid = read_pid(&pidfile).await;
    assert!(!live_members(pgid).is_empty(), "the run should be going");
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    assert_eq!(
        group_gone(pgid),
        Vec::<i32>::new(),
        "processes of group {pgid} survived"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn garbage_output_is_a_protocol_error_quoting_the_line_without_secrets() {
    let r = registry(
        "GARBAGE",
        "airbyte",
        // Echoes the config (which holds the password) after a good line.
        "echo '{\"type\":\"LOG\",\"log\":{\"level\":\"INFO\",\"message\":\"hi\"}}'; echo \"garbage $(cat \"$3\")\"",
        "",
    );
    let driver = r.get(&"GARBAGE".parse().unwrap()).unwrap();
    let creds = Credentials::new().with("password", "correct-horse-battery");
    let report = run_test(
        &*driver,
        &ConnectionConfig::default(),
        &creds,
        &TestOptions::default(),
    )
    .await;
    assert_eq!(
        report.error_code,
        Some(ErrorCode::ProtocolError),
        "{}",
        report.message
    );
    assert!(report.message.contains("line 2"), "{}", report.message);
    assert!(report.message.contains("garbage"), "{}", report.message);
    assert!(report.message.contains("***"), "{}", report.message);
    assert_no_secret(&serde_json::to_string(&report).unwrap(), &creds);

    // A Singer tap whose catalog is not JSON.
    let r = registry(
        "GARBAGE_TAP",
        "singer",
        "echo '{\"streams\": ['; echo 'nonsense'",
        "",
    );
    let driver = r.get(&"GARBAGE_TAP".parse().unwrap()).unwrap();
    let report = run_test(
        &*driver,
        &ConnectionConfig::default(),
        &Credentials::new(),
        &TestOptions::default(),
    )
    .await;
    assert_eq!(
        report.error_code,
        Some(ErrorCode::ProtocolError),
        "{}",
        report.message
    );
    assert!(report.message.contains("nonsense"), "{}", report.message);
}

#[tokio::test]
async fn output_past_the_limit_is_cut_off_and_the_group_killed() {
    let dir = scratch("ext_flood");
    let pidfile = dir.join("pid");
    let script = format!("echo $$ > {}; yes '{{}}'", pidfile.display());
    let r = registry("FLOOD", "airbyte", &script, "max_output_bytes = 65536");
    let driver = r.get(&"FLOOD".parse().unwrap()).unwrap();
    let report = run_test(
        &*driver,
        &ConnectionConfig::default(),
        &Credentials::new(),
        &TestOptions::default(),
    )
    .await;
    assert_eq!(
        report.error_code,
        Some(ErrorCode::ProtocolError),
        "{}",
        report.message
    );
    assert!(report.message.contains("65536 bytes"), "{}", report.message);
    let pgid = read_pid(&pidfile).await;
    assert_eq!(group_gone(pgid), Vec::<i32>::new());
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn the_child_sees_a_scrubbed_environment_and_a_private_config_file() {
    let dir = scratch("ext_env");
    // cargo runs tests with CARGO_PKG_NAME set: the child must not see it
    // unless allow-listed (CARGO_MANIFEST_DIR is, below).
    assert!(std::env::var_os("CARGO_PKG_NAME").is_some());
    let out = dir.display();
    let script = format!(
        "env > {out}/env; stat -c %a \"$3\" > {out}/mode; stat -c %a \"$(dirname \"$3\")\" > {out}/dirmode; \
         cat \"$3\" > {out}/config; echo \"$3\" > {out}/path; pwd > {out}/pwd; echo \"$@\" > {out}/args; \
         echo '{{\"type\":\"CONNECTION_STATUS\",\"connectionStatus\":{{\"status\":\"SUCCEEDED\"}}}}'"
    );
    let r = registry(
        "ENVCHECK",
        "airbyte",
        &script,
        "env = [\"CARGO_MANIFEST_DIR\"]",
    );
    let driver = r.get(&"ENVCHECK".parse().unwrap()).unwrap();
    let mut cfg = ConnectionConfig::default();
    cfg.metadata.insert("count".into(), 7.into());
    let creds = Credentials::new().with("api_key", "very-secret-key");
    let report = run_test(&*driver, &cfg, &creds, &TestOptions::default()).await;
    assert!(report.success, "{}", report.message);
    assert_eq!(
        report.server_version.as_deref(),
        Some("sh (airbyte protocol)")
    );

    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    let env = read("env");
    let names: Vec<&str> = env.lines().filter_map(|l| l.split('=').next()).collect();
    for n in &names {
        assert!(
            [
                "PATH",
                "HOME",
                "TMPDIR",
                "LANG",
                "CARGO_MANIFEST_DIR",
                "PWD",
                "SHLVL",
                "_"
            ]
            .contains(n),
            "unexpected variable {n} in the child's environment:\n{env}"
        );
    }
    assert!(names.contains(&"CARGO_MANIFEST_DIR"), "{env}");
    assert!(!env.contains("very-secret-key"));
    assert_eq!(read("mode").trim(), "600");
    assert_eq!(read("dirmode").trim(), "700");
    let config: serde_json::Value = serde_json::from_str(&read("config")).unwrap();
    assert_eq!(config["api_key"], "very-secret-key");
    assert_eq!(config["count"], 7);
    assert!(!read("args").contains("very-secret-key"));
    let path = PathBuf::from(read("path").trim());
    assert_eq!(read("pwd").trim(), path.parent().unwrap().to_str().unwrap());
    assert!(env.contains(&format!("HOME={}", path.parent().unwrap().display())));
    assert!(!path.exists(), "the config file outlived the run");
    assert!(
        !path.parent().unwrap().exists(),
        "the working directory outlived the run"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_missing_executable_is_driver_unavailable_at_connect() {
    let types = CustomTypes::from_toml(
        "[custom_types.GONE]\nprotocol = \"airbyte\"\ncommand = [\"/nonexistent/source-gone\"]",
    )
    .unwrap();
    let mut r = Registry::new();
    matih_driver_external::install(&mut r, &types);
    let driver = r.get(&"GONE".parse().unwrap()).unwrap();
    let report = run_test(
        &*driver,
        &ConnectionConfig::default(),
        &Credentials::new(),
        &TestOptions::default(),
    )
    .await;
    assert_eq!(
        report.error_code,
        Some(ErrorCode::DriverUnavailable),
        "{}",
        report.message
    );
    assert_eq!(report.failure().map(|f| f.0), Some(Step::Connect));
    // No host, so no dns or tcp step.
    assert!(report.step(Step::Dns).is_none());
}

#[tokio::test]
async fn a_failed_airbyte_check_maps_its_trace_error() {
    let r = registry(
        "TRACED",
        "airbyte",
        "echo '{\"type\":\"TRACE\",\"trace\":{\"type\":\"ERROR\",\"emitted_at\":1,\"error\":{\"message\":\"Unable to connect\",\"internal_message\":\"connection to server at \\\"127.0.0.1\\\", port 1 failed: Connection refused\",\"failure_type\":\"config_error\"}}}'; exit 1",
        "",
    );
    let driver = r.get(&"TRACED".parse().unwrap()).unwrap();
    let report = run_test(
        &*driver,
        &ConnectionConfig::default(),
        &Credentials::new(),
        &TestOptions::default(),
    )
    .await;
    assert_eq!(
        report.error_code,
        Some(ErrorCode::ConnectionRefused),
        "{}",
        report.message
    );
}
