//! `cargo xtask check flood`: a slow-header flood against the connector
//! service binary, from this (separate) process.
//!
//! It starts the service on its defaults (header timeout 10 s), opens 500
//! connections that each send one byte of a request head every 5 s, and
//! checks that the service closes every one of them within the header
//! timeout, that `/healthz` answers with p99 < 50 ms during the flood, and
//! that the service's RSS returns within 20% of its pre-flood value.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use crate::say;
use crate::util::{free_port, rss_kib, wait_until, workspace_root, KillOnDrop};

const CONNECTIONS: usize = 500;
const BYTE_EVERY: Duration = Duration::from_secs(5);
/// The service's default `MATIH_HTTP_HEADER_TIMEOUT_SECS`.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Timer granularity and scheduling on a loaded machine.
const SLACK: Duration = Duration::from_secs(2);
const P99_LIMIT_MS: f64 = 50.0;
const RSS_TOLERANCE: f64 = 0.20;

/// One `GET /healthz` on a fresh connection; its latency.
fn healthz(addr: SocketAddr) -> Result<Duration> {
    let start = Instant::now();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"GET /healthz HTTP/1.1\r\nhost: flood\r\nconnection: close\r\n\r\n")?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer)?;
    let took = start.elapsed();
    ensure!(
        answer.starts_with(b"HTTP/1.1 200"),
        "/healthz answered {:?}",
        String::from_utf8_lossy(&answer[..answer.len().min(40)])
    );
    Ok(took)
}

fn percentile(sorted_ms: &[f64], p: f64) -> f64 {
    if sorted_ms.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (sorted_ms.len() - 1) as f64).round() as usize;
    sorted_ms[i.min(sorted_ms.len() - 1)]
}

/// Runs the check; `Ok` carries a one-line summary for the ci table.
pub fn run() -> Result<String> {
    let bin = crate::util::build_service_binary()?;
    let port = free_port()?;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let data = std::env::temp_dir().join(format!("matih-flood-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    std::fs::create_dir_all(&data)?;
    let mut cmd = Command::new(&bin);
    cmd.current_dir(workspace_root())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    // The service's defaults, whatever the caller's shell sets.
    for (k, _) in std::env::vars_os() {
        if k.to_str().is_some_and(|k| k.starts_with("MATIH_")) {
            cmd.env_remove(&k);
        }
    }
    cmd.env("MATIH_LISTEN", addr.to_string())
        .env("MATIH_DATA_DIR", &data)
        .env("MATIH_LOG", "error")
        .env("MATIH_HEALTH_ENABLED", "false");
    let service = KillOnDrop(cmd.spawn().context("starting the service")?);
    let pid = service.0.id();
    ensure!(
        wait_until(Duration::from_secs(60), || healthz(addr).is_ok()),
        "the service did not answer /healthz within 60 s"
    );
    // Warm up, then the baseline.
    for _ in 0..200 {
        healthz(addr)?;
    }
    let rss_before = rss_kib(pid)?;

    // The flood: each connection sends one byte of a request head every 5 s.
    let head = b"GET /healthz HTTP/1.1\r\nhost: flood\r\nx-slow: 0123456789\r\n\r\n";
    let flood_start = Instant::now();
    let mut conns = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .context("opening a flood connection")?;
        s.set_nonblocking(true)?;
        conns.push((s, Instant::now(), None::<Instant>, 0usize));
    }
    let opened_in = flood_start.elapsed();

    // /healthz from another thread while the flood runs.
    let stop = Arc::new(AtomicBool::new(false));
    let pinger = {
        let stop = stop.clone();
        std::thread::spawn(move || -> Result<Vec<f64>> {
            let mut ms = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                ms.push(healthz(addr)?.as_secs_f64() * 1000.0);
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(ms)
        })
    };

    let deadline = Instant::now() + HEADER_TIMEOUT + SLACK + Duration::from_secs(3);
    let mut rss_peak = rss_before;
    let mut next_byte = Instant::now();
    let mut buf = [0u8; 256];
    while Instant::now() < deadline && conns.iter().any(|c| c.2.is_none()) {
        let now = Instant::now();
        let send = now >= next_byte;
        if send {
            next_byte = now + BYTE_EVERY;
        }
        for (s, _, closed, sent) in conns.iter_mut().filter(|c| c.2.is_none()) {
            if send && *sent < head.len() {
                match s.write(&head[*sent..*sent + 1]) {
                    Ok(_) => *sent += 1,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(_) => *closed = Some(now),
                }
            }
            match s.read(&mut buf) {
                Ok(0) => *closed = Some(now),
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => *closed = Some(now),
            }
        }
        rss_peak = rss_peak.max(rss_kib(pid).unwrap_or(0));
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    let mut lat = pinger.join().expect("pinger thread")?;
    let open = conns.iter().filter(|c| c.2.is_none()).count();
    let lifetimes: Vec<Duration> = conns
        .iter()
        .filter_map(|(_, opened, closed, _)| closed.map(|c| c - *opened))
        .collect();
    let longest = lifetimes.iter().max().copied().unwrap_or_default();
    let shortest = lifetimes.iter().min().copied().unwrap_or_default();
    drop(conns);

    lat.sort_by(f64::total_cmp);
    let p50 = percentile(&lat, 50.0);
    let p99 = percentile(&lat, 99.0);
    let max = lat.last().copied().unwrap_or(f64::NAN);

    // Memory back near the baseline (the allocator may take a moment).
    let limit = (rss_before as f64 * (1.0 + RSS_TOLERANCE)) as u64;
    let mut rss_after = rss_kib(pid)?;
    wait_until(Duration::from_secs(10), || {
        let _ = healthz(addr);
        rss_after = rss_kib(pid).unwrap_or(u64::MAX);
        rss_after <= limit
    });
    drop(service);
    let _ = std::fs::remove_dir_all(&data);

    say!(
        "flood: {CONNECTIONS} connections opened in {} ms, one header byte every {} s",
        opened_in.as_millis(),
        BYTE_EVERY.as_secs()
    );
    say!(
        "flood: closed by the service: {}/{CONNECTIONS}, lifetime {:.1}–{:.1} s (header timeout {} s)",
        CONNECTIONS - open,
        shortest.as_secs_f64(),
        longest.as_secs_f64(),
        HEADER_TIMEOUT.as_secs()
    );
    say!(
        "flood: /healthz during the flood: {} requests, p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms",
        lat.len()
    );
    say!(
        "flood: RSS before {} KiB, peak {} KiB, after {} KiB ({:+.1}%)",
        rss_before,
        rss_peak,
        rss_after,
        (rss_after as f64 / rss_before as f64 - 1.0) * 100.0
    );
    if open > 0 {
        bail!("{open} of {CONNECTIONS} slow connections were still open after the header timeout");
    }
    if longest > HEADER_TIMEOUT + SLACK {
        bail!(
            "a slow connection lived {:.1} s, beyond the {} s header timeout",
            longest.as_secs_f64(),
            HEADER_TIMEOUT.as_secs()
        );
    }
    ensure!(lat.len() >= 20, "too few /healthz samples ({})", lat.len());
    ensure!(
        p99 < P99_LIMIT_MS,
        "/healthz p99 {p99:.1} ms during the flood (limit {P99_LIMIT_MS} ms)"
    );
    ensure!(
        rss_after <= limit,
        "RSS {rss_after} KiB after the flood, more than 20% above {rss_before} KiB"
    );
    Ok(format!(
        "{CONNECTIONS} closed in ≤{:.1} s, healthz p99 {p99:.1} ms, RSS {:+.1}%",
        longest.as_secs_f64(),
        (rss_after as f64 / rss_before as f64 - 1.0) * 100.0
    ))
}
