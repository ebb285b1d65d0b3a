//! `cargo xtask bench api`: the connector service binary (release) under
//! `wrk`, beside a bare axum server answering a JSON body of the same size,
//! in one run. Three processes: the service, the peer (`bench_peer`, the
//! bare axum server, which is also the API that the benchmark's REST
//! connectors point at), and `wrk` (Debian package `wrk`). A load generator
//! inside the measured process would compete with it for the cores and
//! measure itself.
//!
//! Printed, each a best of [`ROUNDS`] rounds that alternate bare and ours:
//! GET one connector at 16/64/256 connections, the list of 1,000 connectors
//! at 1 and 16, create (REST connector: test, secret, row, discovery) at 8
//! (the tenant's in-flight limit), the `test` route beside the REST driver's
//! own test run in a separate process, and the service's start-to-ready
//! time on its embedded defaults. Figures and ratios, never assertions.
//! With `MATIH_BENCH_PERF=1`, one more GET-one run under `perf record`
//! attached to the service prints the hottest symbols.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};

use crate::say;
use crate::util::{
    build_targets, find_program, free_port, port_open, program_version, rss_kib, wait_until,
    KillOnDrop,
};

const RUN_SECS: u64 = 5;
const ROUNDS: usize = 2;
const LISTED: usize = 1_000;
const STARTS: usize = 5;

/// A keep-alive HTTP/1.1 connection for the set-up calls and the test route.
pub(crate) struct Http {
    stream: TcpStream,
    addr: SocketAddr,
}

impl Http {
    pub(crate) fn open(addr: SocketAddr) -> Result<Http> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        Ok(Http { stream, addr })
    }

    pub(crate) fn call(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> Result<(u16, Vec<u8>)> {
        let mut head = format!("{method} {path} HTTP/1.1\r\nhost: {}\r\n", self.addr);
        if let Some(t) = token {
            head.push_str(&format!("authorization: Bearer {t}\r\n"));
        }
        let body = body.unwrap_or("");
        if !body.is_empty() {
            head.push_str("content-type: application/json\r\n");
        }
        head.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
        head.push_str(body);
        self.stream.write_all(head.as_bytes())?;
        let mut buf = Vec::with_capacity(4096);
        let mut chunk = [0u8; 65536];
        loop {
            let n = self.stream.read(&mut chunk)?;
            ensure!(n > 0, "{method} {path}: the server closed the connection");
            buf.extend_from_slice(&chunk[..n]);
            let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let text = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let status: u16 = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
            let len: usize = text
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .with_context(|| format!("{method} {path}: no content-length"))?;
            while buf.len() < end + 4 + len {
                let n = self.stream.read(&mut chunk)?;
                ensure!(n > 0, "{method} {path}: the body was cut short");
                buf.extend_from_slice(&chunk[..n]);
            }
            return Ok((status, buf[end + 4..end + 4 + len].to_vec()));
        }
    }

    pub(crate) fn json(
        &mut self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<&serde_json::Value>,
        want: u16,
    ) -> Result<serde_json::Value> {
        let body = body.map(|b| b.to_string());
        let (status, bytes) = self.call(method, path, Some(token), body.as_deref())?;
        ensure!(
            status == want,
            "{method} {path}: {status} (wanted {want}): {}",
            String::from_utf8_lossy(&bytes)
        );
        Ok(serde_json::from_slice(&bytes)?)
    }
}

/// One `wrk` result.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Wrk {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    requests: u64,
    /// Non-2xx/3xx answers plus socket errors.
    errors: u64,
}

/// A latency as wrk prints it (`432.00us`, `2.49ms`, `1.02s`), in ms.
fn wrk_ms(v: &str) -> Option<f64> {
    let v = v.trim();
    let (num, scale) = if let Some(n) = v.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix('m') {
        (n, 60_000.0)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1000.0)
    } else {
        return None;
    };
    num.trim().parse::<f64>().ok().map(|n| n * scale)
}

fn parse_wrk(out: &str) -> Result<Wrk> {
    let mut w = Wrk::default();
    for line in out.lines().map(str::trim) {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("50%"), Some(v)) => w.p50_ms = wrk_ms(v).context("wrk 50%")?,
            (Some("99%"), Some(v)) => w.p99_ms = wrk_ms(v).context("wrk 99%")?,
            (Some("Requests/sec:"), Some(v)) => w.rps = v.parse()?,
            (Some(n), Some("requests")) => w.requests = n.parse()?,
            _ => {}
        }
        if let Some(v) = line.strip_prefix("Non-2xx or 3xx responses:") {
            w.errors += v.trim().parse::<u64>()?;
        }
        if let Some(v) = line.strip_prefix("Socket errors:") {
            // connect N, read N, write N, timeout N
            w.errors += v
                .split(',')
                .filter_map(|p| p.split_whitespace().last()?.parse::<u64>().ok())
                .sum::<u64>();
        }
    }
    ensure!(
        w.rps > 0.0 && w.requests > 0,
        "wrk printed no figures:\n{out}"
    );
    Ok(w)
}

struct Load<'a> {
    wrk: &'a Path,
    token: &'a str,
    dir: &'a Path,
}

impl Load<'_> {
    /// `wrk` against `url` with `conns` connections for [`RUN_SECS`];
    /// `script` is a Lua request generator.
    fn run(&self, url: &str, conns: usize, script: Option<&str>) -> Result<Wrk> {
        let threads = conns.min(2);
        let mut cmd = Command::new(self.wrk);
        cmd.args([
            &format!("-t{threads}"),
            &format!("-c{conns}"),
            &format!("-d{RUN_SECS}s"),
            "--timeout",
            "10s",
            "--latency",
            "-H",
            &format!("Authorization: Bearer {}", self.token),
        ]);
        if let Some(lua) = script {
            let path = self.dir.join("request.lua");
            std::fs::write(&path, lua)?;
            cmd.arg("-s").arg(path);
        }
        cmd.arg(url).stdin(Stdio::null());
        let out = crate::util::run_ok(&mut cmd, "wrk", Duration::from_secs(RUN_SECS + 60))?;
        parse_wrk(&out)
    }

    /// The best of [`ROUNDS`] rounds (highest req/s, lowest p50/p99), the
    /// bare server and ours alternating so both see the same machine.
    fn pair(&self, bare: &str, ours: &str, conns: usize) -> Result<(Wrk, Wrk)> {
        let (mut b, mut o) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            b.push(self.run(bare, conns, None)?);
            o.push(self.run(ours, conns, None)?);
        }
        Ok((best(&b), best(&o)))
    }
}

fn best(runs: &[Wrk]) -> Wrk {
    let mut out = runs[0];
    for r in &runs[1..] {
        out.rps = out.rps.max(r.rps);
        out.p50_ms = out.p50_ms.min(r.p50_ms);
        out.p99_ms = out.p99_ms.min(r.p99_ms);
        out.requests += r.requests;
        out.errors += r.errors;
    }
    out
}

fn fmt_row(label: &str, conns: usize, bare: Option<&Wrk>, ours: &Wrk, target: &str) -> String {
    let bare_cols = match bare {
        Some(b) => format!("{:>9.0} {:>7.2} {:>7.2}", b.rps, b.p50_ms, b.p99_ms),
        None => format!("{:>9} {:>7} {:>7}", "-", "-", "-"),
    };
    let ratio = bare
        .map(|b| format!("{:>5.0}%", 100.0 * ours.rps / b.rps))
        .unwrap_or_else(|| format!("{:>6}", "-"));
    format!(
        "{label:<26} {conns:>5} | {bare_cols} | {:>9.0} {:>7.2} {:>7.2} {:>6} | {ratio}  {target}",
        ours.rps, ours.p50_ms, ours.p99_ms, ours.errors
    )
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted
        .get(((sorted.len().max(1) - 1) as f64 * p).round() as usize)
        .copied()
        .unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The service binary with the embedded defaults in `data`, on `port`: no
/// health scheduler (its sweep would run beside the figures), errors only.
fn service_command(bin: &Path, data: &Path, port: u16) -> Command {
    let mut cmd = Command::new(bin);
    for (k, _) in std::env::vars_os() {
        if k.to_str().is_some_and(|k| k.starts_with("MATIH_")) {
            cmd.env_remove(&k);
        }
    }
    cmd.env("MATIH_DATA_DIR", data)
        .env("MATIH_LISTEN", format!("127.0.0.1:{port}"))
        .env("MATIH_LOG", "error")
        .env("MATIH_HEALTH_ENABLED", "false")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    cmd
}

/// Starts the service and measures spawn → first `200` from `/readyz`
/// (polled on fresh connections, every 0.5 ms).
pub(crate) fn start_service(bin: &Path, data: &Path) -> Result<(KillOnDrop, SocketAddr, Duration)> {
    let port = free_port()?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let started = Instant::now();
    let child = KillOnDrop(service_command(bin, data, port).spawn()?);
    let deadline = started + Duration::from_secs(60);
    loop {
        if let Ok(mut h) = Http::open(addr) {
            if let Ok((200, _)) = h.call("GET", "/readyz", None, None) {
                return Ok((child, addr, started.elapsed()));
            }
        }
        ensure!(
            Instant::now() < deadline,
            "the service did not get ready within 60 s"
        );
        std::thread::sleep(Duration::from_micros(500));
    }
}

pub(crate) fn mint(bin: &Path, data: &Path, args: &[&str]) -> Result<String> {
    let mut cmd = service_command(bin, data, 0);
    cmd.stdout(Stdio::piped())
        .args(["mint-token", "--ttl", "7200"])
        .args(args);
    Ok(
        crate::util::run_ok(&mut cmd, "minting a token", Duration::from_secs(30))?
            .trim()
            .to_owned(),
    )
}

fn rest_connector(name: &str, peer: SocketAddr) -> serde_json::Value {
    serde_json::json!({
        "name": name, "type": "REST", "host": "127.0.0.1", "port": peer.port(),
        "sslEnabled": false,
        "metadata": {"scheme": "http", "endpoints": ["/items"]},
        "credentials": {},
    })
}

pub fn run() -> Result<()> {
    let wrk = find_program("wrk", &["/usr/bin/wrk"], "wrk")?;
    let wrk_version = program_version(&wrk, &["-v"]).unwrap_or_else(|| "wrk".into());
    let built = build_targets(
        Some("release"),
        "matih-connector-service",
        // The REST driver only: the figures do not depend on the driver set,
        // and a release build of all sixteen takes most of an hour here.
        &[
            "--no-default-features",
            "--features",
            "matih-connectors/rest",
            "--bin",
            "matih-connector-service",
            "--example",
            "bench_peer",
        ],
    )?;
    let bin = built
        .get("matih-connector-service")
        .context("cargo did not report the service binary")?;
    let peer_bin = built
        .get("bench_peer")
        .context("cargo did not report the bench_peer example")?;
    let root = std::env::temp_dir().join(format!("matih-bench-api-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root)?;
    let result = run_in(&wrk, &wrk_version, bin, peer_bin, &root);
    let _ = std::fs::remove_dir_all(&root);
    result
}

fn run_in(wrk: &Path, wrk_version: &str, bin: &Path, peer_bin: &Path, root: &Path) -> Result<()> {
    let binary_mib = std::fs::metadata(bin)?.len() as f64 / (1 << 20) as f64;

    // Start-to-ready: the first start creates the data directory (keys,
    // SQLite file, migrations); later starts open it.
    let mut cold = Vec::new();
    let mut warm = Vec::new();
    for i in 0..STARTS {
        let data = root.join(format!("start-{i}"));
        cold.push(start_service(bin, &data)?.2);
        warm.push(start_service(bin, &data)?.2);
    }
    cold.sort();
    warm.sort();

    let peer_port = free_port()?;
    let peer = SocketAddr::from(([127, 0, 0, 1], peer_port));
    let _peer = KillOnDrop(
        Command::new(peer_bin)
            .args(["serve", &peer.to_string()])
            .stdin(Stdio::null())
            .spawn()
            .context("starting bench_peer")?,
    );
    ensure!(
        wait_until(Duration::from_secs(30), || port_open(peer_port)),
        "bench_peer did not listen within 30 s"
    );

    let data = root.join("data");
    let (service, addr, _) = start_service(bin, &data)?;
    let platform = mint(bin, &data, &["--role", "platform-admin"])?;
    let mut http = Http::open(addr)?;
    let mut tenant = |slug: &str| -> Result<String> {
        let t = http.json(
            "POST",
            "/api/v1/tenants",
            &platform,
            Some(&serde_json::json!({"name": slug, "slug": slug, "tier": "ENTERPRISE"})),
            201,
        )?;
        Ok(t["id"].as_str().context("tenant id")?.to_owned())
    };
    let listed = tenant("bench-list")?;
    let created = tenant("bench-create")?;
    let token_listed = mint(bin, &data, &["--role", "tenant-admin", "--tenant", &listed])?;
    let token_created = mint(
        bin,
        &data,
        &["--role", "tenant-admin", "--tenant", &created],
    )?;

    // 1,000 REST connectors through the API, 4 clients at a time.
    say!("creating {LISTED} REST connectors through the API");
    let seeding = Instant::now();
    std::thread::scope(|s| -> Result<()> {
        let workers: Vec<_> = (0..4)
            .map(|w| {
                let token = &token_listed;
                let listed = &listed;
                s.spawn(move || -> Result<()> {
                    let mut h = Http::open(addr)?;
                    for i in (w..LISTED).step_by(4) {
                        h.json(
                            "POST",
                            &format!("/api/v1/tenants/{listed}/connectors"),
                            token,
                            Some(&rest_connector(&format!("connector {i:04}"), peer)),
                            201,
                        )?;
                    }
                    Ok(())
                })
            })
            .collect();
        for w in workers {
            w.join()
                .map_err(|_| anyhow::anyhow!("a seeding thread panicked"))??;
        }
        Ok(())
    })?;
    let seeding = seeding.elapsed();
    // A new connection: the first one sat idle through the seeding (which,
    // when the header timeout still closed idle kept-alive connections, could
    // outlast its 10 s on a loaded machine; the idle timeout is 75 s).
    let mut http = Http::open(addr)?;

    let list_path = format!("/api/v1/tenants/{listed}/connectors");
    let list = http.json("GET", &list_path, &token_listed, None, 200)?;
    ensure!(
        list["total"] == LISTED,
        "the list holds {} connectors, not {LISTED}",
        list["total"]
    );
    let one_id = list["connectors"][0]["id"]
        .as_str()
        .context("connector id")?
        .to_owned();
    let one_path = format!("{list_path}/{one_id}");
    let one_len = http
        .call("GET", &one_path, Some(&token_listed), None)?
        .1
        .len();
    let list_len = http
        .call("GET", &list_path, Some(&token_listed), None)?
        .1
        .len();

    let load = Load {
        wrk,
        token: &token_listed,
        dir: root,
    };
    let bare = |n: usize| format!("http://{peer}/json/{n}");
    let ours = |p: &str| format!("http://{addr}{p}");
    let mut rows = Vec::new();
    for conns in [16, 64, 256] {
        say!("GET one, {conns} connections");
        let (b, o) = load.pair(&bare(one_len), &ours(&one_path), conns)?;
        let target = if conns == 64 {
            "target ≥ 90%, p99 < 2 ms"
        } else {
            ""
        };
        rows.push(fmt_row(
            &format!("GET one ({one_len} B)"),
            conns,
            Some(&b),
            &o,
            target,
        ));
    }
    for conns in [1, 16] {
        say!("list 1,000, {conns} connections");
        let (b, o) = load.pair(&bare(list_len), &ours(&list_path), conns)?;
        let target = if conns == 16 {
            "target p99 < 10 ms"
        } else {
            ""
        };
        rows.push(fmt_row(
            &format!("list 1,000 ({} KiB)", list_len / 1024),
            conns,
            Some(&b),
            &o,
            target,
        ));
    }

    // Create: each wrk thread numbers its connectors under its own id
    // (names are unique per tenant, and every thread has its own Lua state:
    // numbering alone made the second thread's creates conflicts);
    // 8 connections, the tenant's default in-flight limit.
    say!("create, 8 connections");
    let body = rest_connector("wrk NUMBER", peer)
        .to_string()
        .replace('"', "\\\"");
    let lua = format!(
        "wrk.method = \"POST\"\n\
         wrk.headers[\"Content-Type\"] = \"application/json\"\n\
         wrk.headers[\"Authorization\"] = \"Bearer {token_created}\"\n\
         local threads = 0\n\
         setup = function(thread)\n  threads = threads + 1\n  \
         thread:set(\"id\", threads)\nend\n\
         local n = 0\n\
         request = function()\n  n = n + 1\n  \
         local body = string.gsub(\"{body}\", \"NUMBER\", id .. \"-\" .. n)\n  \
         return wrk.format(nil, nil, nil, body)\nend\n"
    );
    let create = load.run(
        &ours(&format!("/api/v1/tenants/{created}/connectors")),
        8,
        Some(&lua),
    )?;
    rows.push(fmt_row("create (REST)", 8, None, &create, ""));

    // The test route beside the driver's own test (bench_peer driver-test,
    // another process), 1 client each, 200 runs. A new connection: the first
    // one sat idle through the load runs, beyond the service's idle timeout.
    let mut http = Http::open(addr)?;
    let c = http.json(
        "POST",
        &format!("/api/v1/tenants/{created}/connectors"),
        &token_created,
        Some(&rest_connector("test route", peer)),
        201,
    )?;
    let test_path = format!(
        "/api/v1/tenants/{created}/connectors/{}/test",
        c["id"].as_str().context("connector id")?
    );
    let mut route = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        let (status, body) = http.call("POST", &test_path, Some(&token_created), None)?;
        route.push(t.elapsed());
        ensure!(
            status == 200,
            "test route: {status} {}",
            String::from_utf8_lossy(&body)
        );
    }
    route.sort();
    let out = crate::util::run_ok(
        Command::new(peer_bin).args(["driver-test", &format!("http://{peer}"), "200"]),
        "the driver's own test",
        Duration::from_secs(120),
    )?;
    let direct: Vec<f64> = out
        .split_whitespace()
        .map(|v| v.parse::<f64>().map(|us| us / 1000.0))
        .collect::<Result<_, _>>()
        .context("reading the driver-test figures")?;
    ensure!(direct.len() == 2, "driver-test printed {out:?}");
    let rss = rss_kib(service.0.id()).unwrap_or(0);
    let profile = match std::env::var_os("MATIH_BENCH_PERF") {
        Some(_) => Some(profile_get_one(
            &load,
            &ours(&one_path),
            service.0.id(),
            root,
        )?),
        None => None,
    };
    drop(service);

    println!();
    println!(
        "bench api: {wrk_version}; {RUN_SECS} s per figure, best of {ROUNDS} rounds alternating \
         bare and ours; service = release binary on embedded defaults (SQLite + local secrets), \
         health scheduler off, REST driver only; bare = axum::serve with one handler answering a JSON body of the \
         same size"
    );
    println!(
        "{:<26} {:>5} | {:>9} {:>7} {:>7} | {:>9} {:>7} {:>7} {:>6} | {:>6}",
        "",
        "conns",
        "bare r/s",
        "p50 ms",
        "p99 ms",
        "ours r/s",
        "p50 ms",
        "p99 ms",
        "errors",
        "ratio"
    );
    for r in &rows {
        println!("{r}");
    }
    let (r50, r99) = (ms(pct(&route, 0.5)), ms(pct(&route, 0.99)));
    println!(
        "test route (REST)          1 client: p50 {r50:.2} ms  p99 {r99:.2} ms\n\
         driver's own test          1 client: p50 {:.2} ms  p99 {:.2} ms (bench_peer, its own process)\n\
         route minus driver (p50)           : {:.2} ms",
        direct[0],
        direct[1],
        r50 - direct[0]
    );
    println!(
        "seeding {LISTED} connectors through the API with 4 clients: {:.1} s ({:.0}/s)",
        seeding.as_secs_f64(),
        LISTED as f64 / seeding.as_secs_f64()
    );
    println!(
        "start to ready (spawn → /readyz 200), {STARTS} starts each: new data dir median {:.0} ms \
         (min {:.0}, max {:.0}); existing data dir median {:.0} ms (min {:.0}, max {:.0})   \
         target < 300 ms",
        ms(pct(&cold, 0.5)),
        ms(cold[0]),
        ms(cold[STARTS - 1]),
        ms(pct(&warm, 0.5)),
        ms(warm[0]),
        ms(warm[STARTS - 1]),
    );
    println!(
        "service binary {binary_mib:.0} MiB ({}); RSS after the run {} MiB",
        bin.display(),
        rss / 1024
    );
    if let Some(p) = profile {
        println!(
            "\nperf profile of the service during GET one at 64 connections (self time):\n{p}"
        );
    }
    Ok(())
}

/// With `MATIH_BENCH_PERF` set: one more GET-one run at 64 connections with
/// `perf record -g` attached to the service; the report's top symbols.
fn profile_get_one(load: &Load<'_>, url: &str, pid: u32, dir: &Path) -> Result<String> {
    let perf = find_program("perf", &["/usr/bin/perf"], "linux-perf")?;
    let data = dir.join("perf.data");
    let recorder = Command::new(&perf)
        .args(["record", "-F", "1999", "-g", "-o"])
        .arg(&data)
        .args(["-p", &pid.to_string(), "--", "sleep", &RUN_SECS.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting perf record")?;
    let mut recorder = KillOnDrop(recorder);
    load.run(url, 64, None)?;
    let status = recorder.0.wait()?;
    ensure!(status.success(), "perf record failed ({status})");
    let report = crate::util::run_ok(
        Command::new(&perf)
            .args([
                "report",
                "--stdio",
                "--no-children",
                "--sort",
                "symbol",
                "-g",
                "none",
            ])
            .args(["--percent-limit", "0.7", "-i"])
            .arg(&data),
        "perf report",
        Duration::from_secs(300),
    )?;
    Ok(report
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .take(45)
        .collect::<Vec<_>>()
        .join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_output_is_read() {
        let out = "Running 5s test @ http://127.0.0.1:1/x\n  2 threads and 64 connections\n  \
            Thread Stats   Avg      Stdev     Max   +/- Stdev\n    Latency   599.96us  1.00ms  30.00ms   90.00%\n  \
            Latency Distribution\n     50%  432.00us\n     75%  600.00us\n     90%    1.10ms\n     99%    2.49ms\n  \
            577056 requests in 5.00s, 82.00MB read\n  Socket errors: connect 0, read 2, write 0, timeout 1\n  \
            Non-2xx or 3xx responses: 12\nRequests/sec: 115358.56\nTransfer/sec:     16.39MB\n";
        let w = parse_wrk(out).unwrap();
        assert_eq!(w.requests, 577_056);
        assert_eq!(w.errors, 15);
        assert!((w.rps - 115_358.56).abs() < 1e-6);
        assert!((w.p50_ms - 0.432).abs() < 1e-9);
        assert!((w.p99_ms - 2.49).abs() < 1e-9);
        assert_eq!(wrk_ms("1.50s"), Some(1500.0));
        assert!(parse_wrk("wrk: connection refused").is_err());
    }
}
