//! One malloc arena for the service process.
//!
//! glibc's malloc gives threads their own arenas (up to eight per core) and
//! returns freed memory to the system only from the top of each one, so
//! memory one thread freed stays resident in its arena while the next large
//! piece of work (a re-discovery, a stored catalog parsed for `/schemas`)
//! grows another. At 21,001 relations / 404,001 columns that kept the
//! service's peak RSS at 123–136 MB over a heap peak of 68 MB; with one arena
//! it is 75–90 MB (decision "One malloc arena for the service").
//!
//! glibc reads the arena limit only when a process starts, from the
//! `GLIBC_TUNABLES` variable (`mallopt` would need `unsafe`, which this
//! workspace forbids). So [`limit_arenas`], called first thing in `main`,
//! starts the same binary again in the same process (`exec`: same pid,
//! arguments and descriptors) with `glibc.malloc.arena_max=1` added to
//! `GLIBC_TUNABLES`, unless the variable already names an arena limit: an
//! operator's own setting wins, and the second start finds it set and goes on.
//! Under a tool that follows the process (valgrind, heaptrack), set the
//! variable yourself: the second start would run outside the tool.

use std::ffi::{OsStr, OsString};

/// The tunable and the value the service starts with.
pub const ARENA_MAX: &str = "glibc.malloc.arena_max";
/// Arenas the service asks for when the operator set none.
pub const ARENAS: u32 = 1;

/// The `GLIBC_TUNABLES` value to start with, given the current one, or `None`
/// when it already names an arena limit (nothing to do).
pub fn tunables(current: Option<&OsStr>) -> Option<OsString> {
    let ours = format!("{ARENA_MAX}={ARENAS}");
    match current {
        Some(v) if !v.is_empty() => {
            let named = v
                .to_string_lossy()
                .split(':')
                .any(|t| t.split('=').next() == Some(ARENA_MAX));
            if named {
                return None;
            }
            let mut out = v.to_owned();
            out.push(":");
            out.push(ours);
            Some(out)
        }
        _ => Some(ours.into()),
    }
}

/// Starts this binary again in place with one malloc arena (see the module
/// docs), or returns when there is nothing to do or it cannot: then the
/// process goes on with glibc's defaults and says so on stderr (no logger is
/// set up yet).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn limit_arenas() {
    use std::os::unix::process::CommandExt;
    let Some(value) = tunables(std::env::var_os("GLIBC_TUNABLES").as_deref()) else {
        return;
    };
    let args: Vec<OsString> = std::env::args_os().collect();
    // The binary's path first (what a tool running us, such as valgrind,
    // reports as ours), then `/proc/self/exe`, which is this binary even
    // when its path was replaced on disk since it started (an upgrade in
    // place). `exec` returns only when it failed.
    let mut failed = Vec::new();
    let paths = std::env::current_exe().into_iter().map(OsString::from);
    for path in paths.chain([OsString::from("/proc/self/exe")]) {
        let mut again = std::process::Command::new(&path);
        if let Some(arg0) = args.first() {
            again.arg0(arg0);
        }
        let err = again
            .args(args.iter().skip(1))
            .env("GLIBC_TUNABLES", &value)
            .exec();
        failed.push(format!("{}: {err}", path.to_string_lossy()));
    }
    eprintln!(
        "matih-connector-service: could not start again with {ARENA_MAX}={ARENAS} ({}); \
         going on with glibc's default malloc arenas",
        failed.join("; ")
    );
}

/// Other platforms and C libraries: nothing to do.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn limit_arenas() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_arena_is_added_unless_an_arena_limit_is_named() {
        let t = |v: Option<&str>| tunables(v.map(OsStr::new)).map(|v| v.into_string().unwrap());
        assert_eq!(t(None).as_deref(), Some("glibc.malloc.arena_max=1"));
        assert_eq!(t(Some("")).as_deref(), Some("glibc.malloc.arena_max=1"));
        assert_eq!(
            t(Some("glibc.malloc.trim_threshold=131072")).as_deref(),
            Some("glibc.malloc.trim_threshold=131072:glibc.malloc.arena_max=1")
        );
        // The operator's own limit wins, wherever it is in the list.
        assert_eq!(t(Some("glibc.malloc.arena_max=4")), None);
        assert_eq!(
            t(Some("glibc.malloc.tcache_count=0:glibc.malloc.arena_max=2")),
            None
        );
        // A longer name that starts the same is another tunable.
        assert_eq!(
            t(Some("glibc.malloc.arena_max_x=3")).as_deref(),
            Some("glibc.malloc.arena_max_x=3:glibc.malloc.arena_max=1")
        );
    }
}
