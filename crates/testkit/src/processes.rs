//! Checks that child processes a driver started are gone.

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Processes still alive (not zombies) whose working directory is a removed
/// directory named `<temp dir>/<prefix>…`: children that outlived the run
/// that created (and removed) that directory. Waits up to 10 s for them to
/// go (SIGKILL is delivered asynchronously), then returns what is left as
/// `(pid, command line)`.
pub fn survivors(prefix: &str) -> Vec<(u32, String)> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = scan(prefix);
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Panics naming every survivor of [`survivors`].
pub fn assert_no_survivors(prefix: &str) {
    let left = survivors(prefix);
    assert!(
        left.is_empty(),
        "child processes outlived their run: {left:?}"
    );
}

fn scan(prefix: &str) -> Vec<(u32, String)> {
    let base: PathBuf = std::env::temp_dir().join(prefix);
    let base = base.to_string_lossy().into_owned();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cwd) = std::fs::read_link(format!("/proc/{pid}/cwd")) else {
            continue;
        };
        let cwd = cwd.to_string_lossy().into_owned();
        if !(cwd.starts_with(&base) && cwd.ends_with(" (deleted)")) {
            continue;
        }
        let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                s.rsplit_once(')')
                    .map(|(_, r)| r.trim_start().starts_with('Z'))
            })
            .unwrap_or(true);
        if zombie {
            continue;
        }
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        out.push((pid, cmd.trim().to_owned()));
    }
    out
}
