//! `cargo xtask schemathesis`: the connector service's OpenAPI document
//! checked against the running service by schemathesis (PyPI), installed into
//! a venv under the fixtures root like the Python emulators. The service binary
//! runs on a fresh data directory (embedded SQLite, local secrets) on a free
//! loopback port; schemathesis runs every phase with every check, a bounded
//! number of examples per operation and a fixed seed, with a platform-admin
//! token, and must report 0 failures.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::fixtures::{pyvenv, Ctx};
use crate::say;
use crate::util::{
    free_port, port_open, random_token, secs, wait_until, workspace_root, KillOnDrop,
};

/// Pinned, like every Python tool xtask installs.
const PACKAGES: &[&str] = &["schemathesis==4.32.5"];
const SEED: &str = "1";

fn service_env(cmd: &mut Command, data: &Path, port: u16, jwt: &str) {
    for (k, _) in std::env::vars() {
        if k.starts_with("MATIH_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("MATIH_DATA_DIR", data)
        .env("MATIH_LISTEN", format!("127.0.0.1:{port}"))
        .env("MATIH_JWT_SECRET", jwt)
        .env("MATIH_HEALTH_ENABLED", "false");
}

pub fn run(max_examples: u32) -> Result<()> {
    let t = Instant::now();
    let ctx = Ctx::new()?;
    let state = ctx.root.join("schemathesis");
    crate::util::ensure_dir(&state)?;
    let bin_dir = pyvenv::ensure_venv(&state, "schemathesis", PACKAGES)?;
    let service = crate::util::build_service_binary()?;

    let data = state.join(format!("run-{}", std::process::id()));
    if data.exists() {
        std::fs::remove_dir_all(&data)?;
    }
    crate::util::ensure_dir(&data)?;
    let jwt = random_token(48)?;
    let port = free_port()?;
    let log = data.join("service.log");
    let mut cmd = Command::new(&service);
    service_env(&mut cmd, &data.join("data"), port, &jwt);
    let _svc = KillOnDrop(
        cmd.stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("starting the service")?,
    );
    if !wait_until(Duration::from_secs(60), || port_open(port)) {
        bail!(
            "the service did not listen on {port}: {}",
            crate::util::tail(&log, 20)
        );
    }
    let mut mint = Command::new(&service);
    service_env(&mut mint, &data.join("data"), port, &jwt);
    let out = mint.arg("mint-token").output()?;
    if !out.status.success() {
        bail!(
            "mint-token failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let token = String::from_utf8(out.stdout)?.trim().to_owned();

    let config = workspace_root().join("services/connector-service/schemathesis.toml");
    let report = data.join("report");
    say!(
        "schemathesis run (all phases, all checks, {max_examples} examples per operation, seed {SEED})"
    );
    // A token of this run's throw-away signing secret.
    // Run in the run's directory: schemathesis keeps a `.schemathesis` cache
    // in its working directory, which must not land in the work tree.
    let status = Command::new(bin_dir.join("schemathesis"))
        .current_dir(&data)
        .arg("--config-file")
        .arg(&config)
        .args([
            "run",
            &format!("http://127.0.0.1:{port}/api/v1/openapi.json"),
            "--checks",
            "all",
            "--max-examples",
            &max_examples.to_string(),
            "--seed",
            SEED,
            "--workers",
            "1",
            "--no-color",
            "--header",
            &format!("Authorization: Bearer {token}"),
            "--report",
            "junit",
            "--report-dir",
        ])
        .arg(&report)
        .status()
        .context("running schemathesis")?;
    if !status.success() {
        bail!(
            "schemathesis found failures ({status}); the service log is {}",
            log.display()
        );
    }
    say!("schemathesis: 0 failures in {}", secs(t.elapsed()));
    let _ = std::fs::remove_dir_all(&data);
    Ok(())
}
