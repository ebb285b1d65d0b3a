//! Process, file and network helpers shared by the fixtures and the tasks.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

/// The workspace root: xtask lives one level below it.
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Progress line on stderr, prefixed so it stands out from cargo's output.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => { eprintln!("[xtask] {}", format_args!($($arg)*)) };
}

pub fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// The effective uid, read from the owner of `/proc/self` (no libc needed).
pub fn euid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(u32::MAX)
}

pub fn is_root() -> bool {
    euid() == 0
}

/// The name of the user running xtask.
pub fn current_user() -> String {
    command_stdout(Command::new("id").arg("-un"))
        .ok()
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "root".into())
}

/// uid and gid of an OS user, `None` when the user does not exist.
pub fn os_user_ids(name: &str) -> Option<(u32, u32)> {
    let uid = command_stdout(Command::new("id").args(["-u", name])).ok()?;
    let gid = command_stdout(Command::new("id").args(["-g", name])).ok()?;
    Some((uid.parse().ok()?, gid.parse().ok()?))
}

fn command_stdout(cmd: &mut Command) -> Result<String> {
    let out = cmd.stderr(Stdio::null()).output()?;
    if !out.status.success() {
        bail!("{cmd:?} failed");
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Recursively hands a path to an OS user (the server processes run as it).
pub fn chown_recursive(path: &Path, ids: (u32, u32)) -> Result<()> {
    std::os::unix::fs::lchown(path, Some(ids.0), Some(ids.1))
        .with_context(|| format!("chown {}", path.display()))?;
    if path.is_dir() && !path.is_symlink() {
        for entry in fs::read_dir(path)? {
            chown_recursive(&entry?.path(), ids)?;
        }
    }
    Ok(())
}

pub fn set_mode(path: &Path, mode: u32) -> Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {mode:o} {}", path.display()))
}

/// Creates a directory (and parents) that other OS users can traverse.
pub fn ensure_dir(path: &Path) -> Result<()> {
    fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))?;
    set_mode(path, 0o755)
}

/// Writes a file readable by its owner only (passwords, keys, env files).
pub fn write_private(path: &Path, contents: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(contents.as_bytes())?;
    drop(f);
    fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

/// Reads `KEY=VALUE` lines; a missing file is an empty map.
pub fn read_kv(path: &Path) -> Result<BTreeMap<String, String>> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    Ok(text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
        .collect())
}

pub fn write_kv(path: &Path, map: &BTreeMap<String, String>) -> Result<()> {
    let mut s = String::new();
    for (k, v) in map {
        let _ = writeln!(s, "{k}={v}");
    }
    write_private(path, &s)
}

/// A random alphanumeric string from the kernel's CSPRNG. Alphanumeric so the
/// value needs no quoting in SQL, shells, URLs or option files.
pub fn random_token(len: usize) -> Result<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    // Rejection sampling keeps the distribution uniform over the alphabet.
    let limit = 256 - (256 % ALPHABET.len());
    let mut urandom = File::open("/dev/urandom").context("opening /dev/urandom")?;
    let mut out = String::with_capacity(len);
    while out.len() < len {
        let mut bytes = [0u8; 64];
        urandom.read_exact(&mut bytes)?;
        for b in bytes.into_iter().filter(|b| usize::from(*b) < limit) {
            if out.len() < len {
                out.push(ALPHABET[usize::from(b) % ALPHABET.len()] as char);
            }
        }
    }
    Ok(out)
}

/// The password stored under `key` in the state dir's `passwords` file,
/// generated the first time it is asked for.
pub fn stored_password(state: &Path, key: &str) -> Result<String> {
    let path = state.join("passwords");
    let mut map = read_kv(&path)?;
    if let Some(v) = map.get(key) {
        return Ok(v.clone());
    }
    let pw = random_token(24)?;
    map.insert(key.to_owned(), pw.clone());
    write_kv(&path, &map)?;
    Ok(pw)
}

/// FNV-1a: a stable short hash for paths and seed files (not for security).
pub fn fnv64(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A free loopback port, found by binding port 0.
/// A port on 127.0.0.1 nothing listens on: any the system hands out, or, with
/// `MATIH_PORTS=LOW-HIGH` (a shared machine's assigned range), the next free
/// one of that range, taken in turn so two calls in a row differ.
pub fn free_port() -> Result<u16> {
    if let Some(range) = std::env::var("MATIH_PORTS").ok().filter(|r| !r.is_empty()) {
        return port_in(&range);
    }
    let l = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

fn port_in(range: &str) -> Result<u16> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let (low, high) = range
        .split_once('-')
        .and_then(|(l, h)| Some((l.trim().parse::<u16>().ok()?, h.trim().parse::<u16>().ok()?)))
        .filter(|(l, h)| l <= h)
        .with_context(|| format!("MATIH_PORTS={range}: expected LOW-HIGH"))?;
    let n = usize::from(high - low) + 1;
    for _ in 0..n {
        let i = NEXT.fetch_add(1, Ordering::Relaxed) % n;
        let port = low + u16::try_from(i)?;
        if port_is_free(port) {
            return Ok(port);
        }
    }
    bail!("MATIH_PORTS={range}: no free port in the range")
}

pub fn port_is_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// Whether something accepts TCP connections on 127.0.0.1:port.
pub fn port_open(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_ok()
}

/// Polls `cond` until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Locates a program on PATH or at one of `candidates`; the error names the
/// Debian package that provides it.
pub fn find_program(name: &str, candidates: &[&str], package: &str) -> Result<PathBuf> {
    for c in candidates {
        let p = Path::new(c);
        if p.is_file() {
            return Ok(p.to_path_buf());
        }
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let p = dir.join(name);
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    bail!(
        "`{name}` not found; install the Debian package `{package}` (apt-get install -y {package})"
    )
}

fn wait_child(child: &mut Child, timeout: Duration, what: &str) -> Result<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{what} did not finish within {}", secs(timeout));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs a command with captured output, bounded by `timeout`. Only for
/// commands that leave no daemon behind holding the pipes.
pub fn run_capture(cmd: &mut Command, what: &str, timeout: Duration) -> Result<Output> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {what}"))?;
    let mut so = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
    let mut se = child.stderr.take().ok_or_else(|| anyhow!("no stderr"))?;
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = so.read_to_end(&mut v);
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = se.read_to_end(&mut v);
        v
    });
    let status = wait_child(&mut child, timeout, what)?;
    let stdout = t_out.join().unwrap_or_default();
    let stderr = t_err.join().unwrap_or_default();
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}

/// Like [`run_capture`] but fails with the command's stderr when it exits non-zero.
pub fn run_ok(cmd: &mut Command, what: &str, timeout: Duration) -> Result<String> {
    let out = run_capture(cmd, what, timeout)?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs a command whose output goes to `log` (appended), bounded by
/// `timeout`. Used for commands that start daemons, which would otherwise keep
/// a captured pipe open forever. On failure the log's tail is in the error.
pub fn run_logged(cmd: &mut Command, what: &str, log: &Path, timeout: Duration) -> Result<()> {
    let f = OpenOptions::new().create(true).append(true).open(log)?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(f.try_clone()?)
        .stderr(f)
        .spawn()
        .with_context(|| format!("starting {what}"))?;
    let status = wait_child(&mut child, timeout, what)?;
    if !status.success() {
        bail!(
            "{what} failed ({status}); last lines of {}:\n{}",
            log.display(),
            tail(log, 20)
        );
    }
    Ok(())
}

/// The last `n` lines of a text file (for error messages).
pub fn tail(path: &Path, n: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The first line a program prints for `args` (`--version`), bounded in time;
/// `None` when it fails.
pub fn program_version(program: &Path, args: &[&str]) -> Option<String> {
    let out = run_capture(
        Command::new(program).args(args).stdin(Stdio::null()),
        "reading a version",
        Duration::from_secs(20),
    )
    .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    out.status.success().then(|| line.to_owned())
}

/// Quotes a value for a POSIX shell when it needs it.
pub fn shell_quote(v: &str) -> String {
    if !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:@%+=,".contains(c))
    {
        v.to_owned()
    } else {
        format!("'{}'", v.replace('\'', "'\\''"))
    }
}

/// Whether a process exists and is not a zombie. PID 1 on some machines does
/// not reap orphans, so `kill -0` alone would report dead servers as alive.
pub fn pid_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

pub fn read_pid(path: &Path) -> Option<u32> {
    fs::read_to_string(path)
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

/// Sends a signal through `kill(1)`; the workspace forbids unsafe code, so no libc.
pub fn signal(pid: u32, sig: &str) -> Result<()> {
    let status = Command::new("kill")
        .args([format!("-{sig}"), pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .context("running kill")?;
    if !status.success() {
        bail!("kill -{sig} {pid} failed");
    }
    Ok(())
}

/// A child process (the service binary under a check), killed and reaped when
/// dropped, so a failing check never leaves it running.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Builds the connector service binary (debug, `-p matih-connector-service`,
/// shared by the flood check and schemathesis so CI builds it once) and
/// returns its path from cargo's own report.
pub fn build_service_binary() -> Result<PathBuf> {
    let mut built = build_targets(
        None,
        "matih-connector-service",
        &["--bin", "matih-connector-service"],
    )?;
    built
        .remove("matih-connector-service")
        .context("cargo did not report the service binary")
}

/// Builds `targets` (cargo's `--bin NAME` / `--example NAME` arguments) of
/// `package` with cargo's `--profile` (`None`: the dev profile) and returns
/// each executable's path by target name, from cargo's own report.
pub fn build_targets(
    profile: Option<&str>,
    package: &str,
    targets: &[&str],
) -> Result<BTreeMap<String, PathBuf>> {
    let mut cmd = crate::tasks::cargo();
    cmd.args(["build", "-p", package]).args(targets);
    if let Some(p) = profile {
        cmd.args(["--profile", p]);
    }
    cmd.arg("--message-format=json-render-diagnostics");
    say!(
        "cargo build -p {package} {}{}",
        targets.join(" "),
        profile
            .map(|p| format!(" --profile {p}"))
            .unwrap_or_default()
    );
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo build")?;
    if !out.status.success() {
        bail!("building {package} failed");
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|m| {
            let name = m["target"]["name"].as_str()?.to_owned();
            let exe = m["executable"].as_str()?;
            Some((name, PathBuf::from(exe)))
        })
        .collect())
}

/// A process's resident set (VmRSS) in KiB, from `/proc`.
pub fn rss_kib(pid: u32) -> Result<u64> {
    proc_status_kib(pid, "VmRSS:")
}

fn proc_status_kib(pid: u32, field: &str) -> Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("{field} not found in /proc/{pid}/status"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quote_leaves_plain_values_and_quotes_the_rest() {
        assert_eq!(shell_quote("/tmp/a-b_c.pem"), "/tmp/a-b_c.pem");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("$(rm -rf /)"), "'$(rm -rf /)'");
    }

    #[test]
    fn tokens_are_alphanumeric_random_and_of_the_asked_length() {
        let a = random_token(24).unwrap();
        let b = random_token(24).unwrap();
        assert_eq!(a.len(), 24);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
        assert_eq!(random_token(200).unwrap().len(), 200);
    }

    #[test]
    fn kv_files_round_trip_privately() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("xtask-kv-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("env");
        let map = BTreeMap::from([
            ("A".to_owned(), "1".to_owned()),
            ("B".to_owned(), "x=y".to_owned()),
        ]);
        write_kv(&path, &map).unwrap();
        assert_eq!(read_kv(&path).unwrap(), map);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(read_kv(&dir.join("missing")).unwrap().is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn stored_passwords_are_generated_once() {
        let dir = std::env::temp_dir().join(format!("xtask-pw-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let first = stored_password(&dir, "PASSWORD").unwrap();
        assert_eq!(stored_password(&dir, "PASSWORD").unwrap(), first);
        assert_ne!(stored_password(&dir, "OTHER").unwrap(), first);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn free_ports_are_bindable_and_liveness_sees_this_process() {
        let port = free_port().unwrap();
        assert!(port_is_free(port));
        let ranged = port_in(&format!("{port}-{port}")).unwrap();
        assert_eq!(ranged, port);
        assert!(port_in("9-1").is_err());
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        assert!(port_open(port));
        assert!(!port_is_free(port));
        drop(listener);
        assert!(pid_alive(std::process::id()));
        assert!(!pid_alive(u32::MAX - 1));
    }
}
