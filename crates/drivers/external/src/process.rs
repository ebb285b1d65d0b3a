//! Running a connector executable: one child process per protocol call, in a
//! process group of its own, with a scrubbed environment, a private working
//! directory, its configuration in a 0600 file (never on the command line or
//! in the environment), bounded output and a time limit. The whole group is
//! killed when the run ends, times out, overflows or is cancelled (the future
//! dropped), so nothing it started outlives it — except a process that leaves
//! the group on purpose (`setsid`), which only a container or cgroup could
//! stop: custom types are operator-trusted code.

use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use matih_connector_core::{ConnectorError, ErrorCode};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use rand::Rng;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::config::CustomTypeConfig;

/// The `PATH` a child gets unless the operator passes the service's own.
const CHILD_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
/// How much of standard error is kept (the end, where tracebacks end).
const STDERR_TAIL_BYTES: usize = 64 << 10;
/// How long reaping a killed child may take before we stop waiting for it
/// (the runtime's orphan reaper still collects it).
const REAP_LIMIT: Duration = Duration::from_secs(5);
/// How every run's private directory is named under the system's temporary
/// directory (`<prefix><16 hex digits>`).
pub const WORKDIR_PREFIX: &str = "matih-external-";
/// The argument replaced by the configuration file's path.
pub(crate) const CONFIG_ARG: &str = "{config}";

/// What a finished run left behind.
#[derive(Debug)]
pub(crate) struct Finished {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    /// The last [`STDERR_TAIL_BYTES`] of standard error.
    pub stderr: Vec<u8>,
}

impl Finished {
    /// The end of standard error as text, for messages (redact before use).
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// A configured executable, ready to run protocol calls.
#[derive(Clone, Debug)]
pub(crate) struct Runner {
    type_name: String,
    cfg: CustomTypeConfig,
}

impl Runner {
    pub fn new(type_name: &str, cfg: CustomTypeConfig) -> Self {
        Runner {
            type_name: type_name.to_owned(),
            cfg,
        }
    }

    pub fn config(&self) -> &CustomTypeConfig {
        &self.cfg
    }

    /// The run's time limit: the operator's, capped by `cap` (the connector's
    /// own limit for the step).
    pub fn limit(&self, cap: Option<Duration>) -> Duration {
        let own = Duration::from_secs(self.cfg.timeout_secs);
        cap.map_or(own, |c| c.min(own))
    }

    /// The executable: absolute as configured, or found on the service's `PATH`.
    pub fn program(&self) -> Result<PathBuf, ConnectorError> {
        let name = &self.cfg.command[0];
        let found = if name.starts_with('/') {
            Some(PathBuf::from(name)).filter(|p| is_executable(p))
        } else {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|d| d.join(name))
                    .find(|p| is_executable(p))
            })
        };
        found.ok_or_else(|| {
            ConnectorError::new(
                ErrorCode::DriverUnavailable,
                format!(
                    "the command of custom type {} ({name}) is not an executable file{}",
                    self.type_name,
                    if name.starts_with('/') {
                        ""
                    } else {
                        " on the service's PATH"
                    }
                ),
            )
            .with_retryable(false)
        })
    }

    /// Runs the command with `args` appended, `{config}` replaced by the path
    /// of a 0600 file holding `config` (JSON). Fails with `TIMEOUT` after
    /// `limit`, `PROTOCOL_ERROR` when standard output exceeds the limit,
    /// `DRIVER_UNAVAILABLE` when the command cannot be started.
    pub async fn run(
        &self,
        args: &[&str],
        config: Option<&serde_json::Value>,
        limit: Duration,
    ) -> Result<Finished, ConnectorError> {
        let program = self.program()?;
        let dir = WorkDir::create()?;
        let config_path = match config {
            Some(value) => Some(dir.write_private("config.json", value)?),
            None => None,
        };
        let mut cmd = tokio::process::Command::new(&program);
        cmd.args(&self.cfg.command[1..]);
        for arg in args {
            match (&config_path, *arg == CONFIG_ARG) {
                (Some(p), true) => cmd.arg(p),
                _ => cmd.arg(arg),
            };
        }
        cmd.env_clear()
            .envs(self.child_env(dir.path()))
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // A group of its own: one signal reaches everything it starts.
            .process_group(0)
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| {
            ConnectorError::new(
                ErrorCode::DriverUnavailable,
                format!(
                    "cannot start the command of custom type {} ({}): {e}",
                    self.type_name,
                    program.display()
                ),
            )
            .with_source(e)
        })?;
        let group = ProcessGroup(child.id().map(|id| Pid::from_raw(id as i32)));
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let max = self.cfg.max_output_bytes;
        let work = async {
            let (out, err, status) = tokio::join!(
                read_capped(stdout, max, &group),
                read_tail(stderr, STDERR_TAIL_BYTES),
                child.wait()
            );
            (out, err, status)
        };
        let outcome = tokio::time::timeout(limit, work).await;
        // Whatever happened, nothing of the group stays behind.
        group.kill();
        let (out, err, status) = match outcome {
            Ok(v) => v,
            Err(_) => {
                let _ = tokio::time::timeout(REAP_LIMIT, child.wait()).await;
                return Err(ConnectorError::new(
                    ErrorCode::Timeout,
                    format!(
                        "the {} command did not finish within {} s",
                        self.type_name,
                        limit.as_secs_f64()
                    ),
                )
                .with_context("protocol", self.cfg.protocol.as_str()));
            }
        };
        let status = status.map_err(|e| {
            ConnectorError::new(ErrorCode::Internal, format!("waiting for the child: {e}"))
                .with_source(e)
        })?;
        let stdout = out?;
        let stderr = err.unwrap_or_default();
        if let Some(p) = config_path {
            let _ = fs::remove_file(p);
        }
        drop(dir);
        Ok(Finished {
            status,
            stdout,
            stderr,
        })
    }

    /// The child's whole environment: its own `HOME`/`TMPDIR` (the private
    /// directory), `LANG`, a fixed `PATH`, then the operator's allow-list
    /// taken from the service's environment (which may override `PATH`).
    fn child_env(&self, dir: &Path) -> Vec<(OsString, OsString)> {
        let mut env: Vec<(OsString, OsString)> = vec![
            ("PATH".into(), CHILD_PATH.into()),
            ("HOME".into(), dir.into()),
            ("TMPDIR".into(), dir.into()),
            ("LANG".into(), "C.UTF-8".into()),
        ];
        for name in &self.cfg.env {
            if let Some(value) = std::env::var_os(name) {
                env.retain(|(k, _)| k != name.as_str());
                env.push((name.into(), value));
            }
        }
        env
    }
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The child's process group; killed (SIGKILL to every member) by
/// [`ProcessGroup::kill`] and on drop, so a cancelled run leaves nothing.
#[derive(Debug)]
struct ProcessGroup(Option<Pid>);

impl ProcessGroup {
    fn kill(&self) {
        if let Some(pgid) = self.0 {
            // ESRCH: the group is already empty.
            let _ = killpg(pgid, Signal::SIGKILL);
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A private working directory (mode 0700) under the system's temporary
/// directory, removed with everything in it on drop.
#[derive(Debug)]
struct WorkDir(PathBuf);

impl WorkDir {
    fn create() -> Result<WorkDir, ConnectorError> {
        let base = std::env::temp_dir();
        let mut last = None;
        for _ in 0..8 {
            let name = format!("{WORKDIR_PREFIX}{:016x}", rand::thread_rng().gen::<u64>());
            let path = base.join(name);
            match fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => return Ok(WorkDir(path)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => return Err(io_internal("creating the working directory", e)),
            }
        }
        Err(io_internal(
            "creating the working directory",
            last.unwrap_or_else(|| std::io::Error::other("no free name")),
        ))
    }

    fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `value` as JSON to a new 0600 file in the directory.
    fn write_private(
        &self,
        name: &str,
        value: &serde_json::Value,
    ) -> Result<PathBuf, ConnectorError> {
        let path = self.0.join(name);
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| io_internal("writing the configuration file", e))?;
        let bytes = serde_json::to_vec(value)
            .map_err(|e| ConnectorError::internal(format!("encoding the configuration: {e}")))?;
        f.write_all(&bytes)
            .map_err(|e| io_internal("writing the configuration file", e))?;
        Ok(path)
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn io_internal(what: &str, e: std::io::Error) -> ConnectorError {
    ConnectorError::new(ErrorCode::Internal, format!("{what}: {e}")).with_source(e)
}

/// Reads everything up to `max` bytes; past it, kills the group and fails.
async fn read_capped(
    pipe: Option<impl AsyncRead + Unpin>,
    max: usize,
    group: &ProcessGroup,
) -> Result<Vec<u8>, ConnectorError> {
    let Some(mut pipe) = pipe else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    let mut buf = [0u8; 16 << 10];
    loop {
        let n = pipe
            .read(&mut buf)
            .await
            .map_err(|e| io_internal("reading the command's output", e))?;
        if n == 0 {
            return Ok(out);
        }
        if out.len() + n > max {
            group.kill();
            return Err(ConnectorError::new(
                ErrorCode::ProtocolError,
                format!(
                    "the command printed more than the limit of {max} bytes on standard output"
                ),
            ));
        }
        out.extend_from_slice(&buf[..n]);
    }
}

/// Reads to the end, keeping the last `keep` bytes.
async fn read_tail(pipe: Option<impl AsyncRead + Unpin>, keep: usize) -> Option<Vec<u8>> {
    let mut pipe = pipe?;
    let mut out = Vec::new();
    let mut buf = [0u8; 16 << 10];
    loop {
        let n = pipe.read(&mut buf).await.ok()?;
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        if out.len() > keep * 2 {
            out.drain(..out.len() - keep);
        }
    }
    if out.len() > keep {
        out.drain(..out.len() - keep);
    }
    Some(out)
}
