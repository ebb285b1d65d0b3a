//! Discovery benchmark: our set-based discovery beside the columns-alone
//! read, the two plain information_schema queries (the floor: TABLES and
//! COLUMNS) and a naive join, on one server, in one run.
//!
//! Reads the fixture's MATIH_TEST_MYSQL_* variables (run by `cargo xtask bench
//! discovery`, in release). Creates database `matih_bench` with 2,000 tables
//! (10-20 columns each, primary keys, secondary keys, some JSON columns) and
//! 10 views unless it already holds them. MATIH_BENCH_RUNS sets the number of
//! timed runs (default 7; the naive join, ~100x slower, runs once, or not
//! at all with MATIH_BENCH_NAIVE=0);
//! RUST_LOG=matih_driver_mysql=debug prints each catalog query's time. A
//! breakdown times each catalog query discovery sends on its own. Our
//! discovery runs on two sessions at once (see the driver's docs); the
//! output says so beside the ratios.
//!
//! The last line is a `summary` line (tab-separated `key=value` fields) that
//! `cargo xtask bench discovery` gathers into its table.

use std::time::{Duration, Instant};

use matih_connector_core::{
    open, ConnectionConfig, Credentials, DiscoveryRequest, EgressPolicy, NameFilter, SslMode,
    Timeouts,
};
use matih_connector_testkit::bench::{cpu_time, proc_status_kb, reset_peak_rss};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder, Row};

const DATABASE: &str = "matih_bench";
const TABLES: usize = 2_000;
const VIEWS: usize = 10;

fn env(key: &str) -> String {
    std::env::var(format!("MATIH_TEST_MYSQL_{key}")).unwrap_or_else(|_| {
        eprintln!("MATIH_TEST_MYSQL_{key} is not set: run `cargo xtask bench discovery`");
        std::process::exit(2)
    })
}

/// Column definitions for table `i`: 10 to 20 columns of mixed types.
fn table_ddl(i: usize) -> String {
    const TYPES: [&str; 10] = [
        "INT NOT NULL DEFAULT 0",
        "BIGINT UNSIGNED",
        "VARCHAR(64) DEFAULT 'n/a'",
        "DECIMAL(12,2)",
        "DATETIME(3)",
        "TEXT",
        "TINYINT(1) NOT NULL DEFAULT 0",
        "DOUBLE",
        "DATE",
        "CHAR(8)",
    ];
    let columns = 10 + i % 11;
    let mut defs = vec!["`id` BIGINT NOT NULL".to_owned()];
    for c in 1..columns {
        // c1 and c2 are key columns, so never TEXT.
        let ty = match c {
            1 => "INT NOT NULL DEFAULT 0",
            2 => "VARCHAR(64) DEFAULT 'n/a'",
            5 if i.is_multiple_of(10) => "JSON",
            _ => TYPES[(i + c) % TYPES.len()],
        };
        defs.push(format!("`c{c}` {ty} COMMENT 'column {c}'"));
    }
    match i % 13 {
        0 => {}
        _ if i.is_multiple_of(7) => defs.push("PRIMARY KEY (`id`, `c1`)".into()),
        _ => defs.push("PRIMARY KEY (`id`)".into()),
    }
    if i.is_multiple_of(2) {
        defs.push("KEY `k_c2` (`c2`)".into());
    }
    format!(
        "CREATE TABLE `{DATABASE}`.`t_{i:04}` ({}) ENGINE=InnoDB COMMENT='bench table {i}'",
        defs.join(", ")
    )
}

async fn prepare(conn: &mut Conn) -> mysql_async::Result<()> {
    let counts: Vec<(String, u64)> = conn
        .exec(
            "SELECT TABLE_TYPE, COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? GROUP BY TABLE_TYPE",
            (DATABASE,),
        )
        .await?;
    let count = |ty: &str| {
        counts
            .iter()
            .find(|(t, _)| t == ty)
            .map_or(0, |(_, n)| *n as usize)
    };
    if count("BASE TABLE") == TABLES && count("VIEW") == VIEWS {
        println!("reusing database {DATABASE}");
        return Ok(());
    }
    println!("creating database {DATABASE} with {TABLES} tables and {VIEWS} views…");
    let started = Instant::now();
    conn.query_drop(format!("DROP DATABASE IF EXISTS `{DATABASE}`"))
        .await?;
    conn.query_drop(format!("CREATE DATABASE `{DATABASE}`"))
        .await?;
    for chunk in (0..TABLES).collect::<Vec<_>>().chunks(50) {
        let batch: Vec<String> = chunk.iter().map(|i| table_ddl(*i)).collect();
        conn.query_drop(batch.join(";")).await?;
    }
    for v in 0..VIEWS {
        conn.query_drop(format!(
            "CREATE VIEW `{DATABASE}`.`v_{v:02}` AS SELECT `id`, `c1`, `c2` FROM `{DATABASE}`.`t_{:04}`",
            v * 100 + 1
        ))
        .await?;
    }
    println!("created in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

struct Timing {
    label: &'static str,
    runs: Vec<Duration>,
    rows: usize,
}

impl Timing {
    fn new(label: &'static str) -> Timing {
        Timing {
            label,
            runs: Vec::new(),
            rows: 0,
        }
    }
    fn best(&self) -> Duration {
        self.runs.iter().copied().min().unwrap_or_default()
    }
    fn median(&self) -> Duration {
        let mut r = self.runs.clone();
        r.sort();
        r.get(r.len() / 2).copied().unwrap_or_default()
    }
}

/// Runs `statements` one after the other, `runs` times, each bound to the
/// database name.
async fn time_sql(
    conn: &mut Conn,
    label: &'static str,
    runs: usize,
    statements: &[&str],
) -> mysql_async::Result<Timing> {
    let mut t = Timing::new(label);
    for _ in 0..runs {
        let started = Instant::now();
        let mut rows = 0;
        for sql in statements {
            let result: Vec<Row> = conn.exec(*sql, (DATABASE,)).await?;
            rows += result.len();
        }
        t.runs.push(started.elapsed());
        t.rows = rows;
    }
    Ok(t)
}

/// User + system CPU time of the server process, when it runs on this
/// machine and its `/proc` entry is readable (clock ticks of 10 ms).
fn server_cpu(pid: Option<u32>) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid?)).ok()?;
    let fields: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<u64>().ok();
    // utime and stime are fields 14 and 15 of the line; 12 and 13 after the comm.
    Some(Duration::from_millis((ticks(11)? + ticks(12)?) * 10))
}

/// The server's pid from its pid file, when the server is on this machine.
async fn server_pid(conn: &mut Conn, host: &str) -> Option<u32> {
    if !matches!(host, "127.0.0.1" | "localhost" | "::1") {
        return None;
    }
    let file: Option<String> = conn.query_first("SELECT @@pid_file").await.ok()?;
    std::fs::read_to_string(file?).ok()?.trim().parse().ok()
}

/// The floor's two statements: what a catalog reader cannot do without.
const PLAIN_TABLES: &str =
    "SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE, TABLE_ROWS, DATA_LENGTH, INDEX_LENGTH, \
     TABLE_COMMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?";
const PLAIN_COLUMNS: &str =
    "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, ORDINAL_POSITION, COLUMN_TYPE, IS_NULLABLE, \
     COLUMN_DEFAULT, COLUMN_COMMENT FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ?";

/// Each catalog query discovery sends, alone (the driver adds its name
/// filters and, for the last two, the list of tables they concern).
const BREAKDOWN: [(&str, &str); 5] = [
    (
        "SCHEMATA",
        "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
    ),
    (
        "TABLES (with statistics)",
        "SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE, ENGINE, TABLE_COMMENT, CREATE_OPTIONS, \
         TABLE_ROWS, DATA_LENGTH, INDEX_LENGTH FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?",
    ),
    (
        "COLUMNS (discovery's 8 columns on MariaDB)",
        "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, ORDINAL_POSITION, COLUMN_DEFAULT, \
         IS_NULLABLE, COLUMN_TYPE, COLUMN_COMMENT FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = ?",
    ),
    (
        "STATISTICS (primary keys)",
        "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, SEQ_IN_INDEX FROM \
         information_schema.STATISTICS WHERE INDEX_NAME = 'PRIMARY' AND TABLE_SCHEMA = ?",
    ),
    (
        "CHECK_CONSTRAINTS (MariaDB JSON)",
        "SELECT CONSTRAINT_SCHEMA, TABLE_NAME, CONSTRAINT_NAME, CHECK_CLAUSE FROM \
         information_schema.CHECK_CONSTRAINTS WHERE LEVEL = 'Column' AND \
         CHECK_CLAUSE LIKE 'json_valid(%' AND CONSTRAINT_SCHEMA = ?",
    ),
];

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // RUST_LOG=matih_driver_mysql=debug prints each catalog query's time.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let host = env("HOST");
    let port: u16 = env("PORT").parse()?;
    let user = env("USER");
    let password = env("PASSWORD");
    let runs: usize = std::env::var("MATIH_BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(7);

    let mut admin = Conn::new(
        OptsBuilder::default()
            .ip_or_hostname(host.clone())
            .tcp_port(port)
            .user(Some(user.clone()))
            .pass(Some(password.clone()))
            .prefer_socket(false),
    )
    .await?;
    prepare(&mut admin).await?;
    let version: Option<String> = admin.query_first("SELECT VERSION()").await?;
    let pid = server_pid(&mut admin, &host).await;
    // Server CPU time per contender (ours, floor, columns alone), summed over
    // the runs: unlike wall time, other load on the machine barely moves it.
    let mut server: Option<[Duration; 3]> = server_cpu(pid).map(|_| Default::default());
    let on_server = |server: &mut Option<[Duration; 3]>, i: usize, before: Option<Duration>| {
        *server = match (server.take(), before, server_cpu(pid)) {
            (Some(mut sum), Some(b), Some(a)) => {
                sum[i] += a.saturating_sub(b);
                Some(sum)
            }
            _ => None,
        }
    };

    let cfg = ConnectionConfig {
        host: Some(host.clone()),
        port: Some(port),
        ssl_mode: Some(SslMode::Disable),
        timeouts: Timeouts {
            connect_ms: 10_000,
            query_ms: 600_000,
        },
        ..Default::default()
    };
    let creds = Credentials::new()
        .with("username", user)
        .with("password", password);
    let driver = matih_driver_mysql::MysqlDriver::new();

    let bench_only = DiscoveryRequest {
        schemas: NameFilter {
            include: vec![DATABASE.into()],
            exclude: vec![],
        },
        ..Default::default()
    };
    let mut ours = Timing::new("ours: full discovery (matih_bench)");
    let mut ours_all = Timing::new("ours: full discovery (all databases)");
    let mut plain = Timing::new("(a) floor: two plain queries, TABLES + COLUMNS");
    let mut columns = Timing::new("(b) columns alone: the floor's COLUMNS query");
    let mut conn = open(&driver, &cfg, &creds, &EgressPolicy::allow_all()).await?;
    let mut shape = (0, 0, 0);
    let (mut peak_kb, mut peak_measured) = (0, true);
    let mut ours_cpu = Duration::ZERO;
    // One untimed run warms the server's table definition cache, as the
    // other contenders get no cold run either. Then the contenders take
    // turns within each round, so load from elsewhere falls on all of them.
    conn.discover(&bench_only).await?;
    for _ in 0..runs {
        peak_measured &= reset_peak_rss();
        let cpu = cpu_time();
        let on = server_cpu(pid);
        let started = Instant::now();
        let catalog = conn.discover(&bench_only).await?;
        ours.runs.push(started.elapsed());
        on_server(&mut server, 0, on);
        ours_cpu += cpu_time() - cpu;
        peak_kb = peak_kb.max(proc_status_kb("VmHWM:").unwrap_or(0));
        let s = catalog
            .schema(DATABASE)
            .ok_or("matih_bench not discovered")?;
        let views = s
            .tables
            .iter()
            .filter(|t| t.kind == matih_connector_core::TableKind::View)
            .count();
        shape = (s.tables.len() - views, views, catalog.column_count());
        ours.rows = catalog.table_count() + catalog.column_count();
        drop(catalog);

        let on = server_cpu(pid);
        let t = time_sql(&mut admin, "", 1, &[PLAIN_TABLES, PLAIN_COLUMNS]).await?;
        on_server(&mut server, 1, on);
        plain.runs.extend(t.runs);
        plain.rows = t.rows;
        let on = server_cpu(pid);
        let t = time_sql(&mut admin, "", 1, &[PLAIN_COLUMNS]).await?;
        on_server(&mut server, 2, on);
        columns.runs.extend(t.runs);
        columns.rows = t.rows;
    }
    // Not interleaved with the runs above: a whole-server pass pushes the
    // bench tables out of the server's table definition cache.
    for _ in 0..runs {
        let started = Instant::now();
        let catalog = conn.discover(&DiscoveryRequest::default()).await?;
        ours_all.runs.push(started.elapsed());
        ours_all.rows = catalog.table_count() + catalog.column_count();
    }
    conn.close().await?;

    let mut breakdown = Vec::new();
    for (label, sql) in BREAKDOWN {
        breakdown.push((label, time_sql(&mut admin, label, runs, &[sql]).await?));
    }
    // MATIH_BENCH_NAIVE=0 leaves the naive join out (it takes ~40 s).
    let naive_runs = match std::env::var("MATIH_BENCH_NAIVE").as_deref() {
        Ok("0") => 0,
        _ => 1,
    };
    let naive = time_sql(
        &mut admin,
        "(c) naive join TABLES x COLUMNS x KEY_COLUMN_USAGE",
        naive_runs,
        &["SELECT t.TABLE_NAME, t.TABLE_TYPE, t.TABLE_ROWS, t.DATA_LENGTH + t.INDEX_LENGTH, t.TABLE_COMMENT, \
                  c.COLUMN_NAME, c.ORDINAL_POSITION, c.COLUMN_TYPE, c.IS_NULLABLE, c.COLUMN_DEFAULT, \
                  c.COLUMN_COMMENT, k.ORDINAL_POSITION \
           FROM information_schema.TABLES t \
           JOIN information_schema.COLUMNS c \
             ON c.TABLE_SCHEMA = t.TABLE_SCHEMA AND c.TABLE_NAME = t.TABLE_NAME \
           LEFT JOIN information_schema.KEY_COLUMN_USAGE k \
             ON k.TABLE_SCHEMA = c.TABLE_SCHEMA AND k.TABLE_NAME = c.TABLE_NAME \
            AND k.COLUMN_NAME = c.COLUMN_NAME AND k.CONSTRAINT_NAME = 'PRIMARY' \
           WHERE t.TABLE_SCHEMA = ?"],
    )
    .await?;
    admin.disconnect().await?;

    println!();
    println!(
        "server {} at {host}:{port}; {DATABASE}: {} tables, {} views, {} columns",
        version.unwrap_or_default(),
        shape.0,
        shape.1,
        shape.2
    );
    let row = |t: &Timing| {
        println!(
            "  {:<56} {:>7.3} s {:>7.3} s {:>5} {:>8}",
            t.label,
            t.best().as_secs_f64(),
            t.median().as_secs_f64(),
            t.runs.len(),
            t.rows
        );
    };
    println!(
        "  {:<56} {:>9} {:>9} {:>5} {:>8}",
        "", "best", "median", "runs", "rows"
    );
    for t in [&ours, &ours_all, &plain, &columns, &naive] {
        row(t);
    }
    println!("  breakdown: each catalog query discovery sends, alone (schema filter only)");
    for (_, t) in &breakdown {
        row(t);
    }
    let ratio =
        |a: &Timing, b: &Timing| a.median().as_secs_f64() / b.median().as_secs_f64().max(1e-9);
    println!(
        "  ratio ours/(a) floor: median {:.2} (target <= 1.3)   ours/(b) columns alone: median {:.2}   \
         (c) naive/ours: {:.1}x",
        ratio(&ours, &plain),
        ratio(&ours, &columns),
        ratio(&naive, &ours)
    );
    println!(
        "  ours runs on two sessions at once, as the server answers each on its own thread (the \
         untimed first run opens the second); (a) sends its two queries one after the other on \
         one session; (b) is what (a) could take at best on two"
    );
    println!(
        "  client CPU per run of ours (this process, user+sys): {:.0} ms",
        ours_cpu.as_secs_f64() * 1000.0 / runs.max(1) as f64
    );
    if let Some([ours_s, floor_s, columns_s]) = server {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0 / runs.max(1) as f64;
        println!(
            "  server CPU per run (mariadbd, /proc, 10 ms ticks): ours {:.0} ms, (a) floor {:.0} ms, \
             (b) columns alone {:.0} ms; ours/(a) {:.2}",
            ms(ours_s),
            ms(floor_s),
            ms(columns_s),
            ours_s.as_secs_f64() / floor_s.as_secs_f64().max(1e-9)
        );
    }
    if peak_measured {
        println!(
            "  peak RSS during our discovery: {:.1} MB (VmHWM reset before each run)",
            peak_kb as f64 / 1024.0
        );
    }
    let fields = [
        "summary".to_owned(),
        format!("name=MariaDB {DATABASE}"),
        format!("relations={}", shape.0 + shape.1),
        format!("columns={}", shape.2),
        format!("ours={:.4}", ours.median().as_secs_f64()),
        format!("columns_alone={:.4}", columns.median().as_secs_f64()),
        format!("floor={:.4}", plain.median().as_secs_f64()),
        "floor_is=TABLES + COLUMNS".to_owned(),
        format!("naive={:.4}", naive.median().as_secs_f64()),
        "target=ours/floor <= 1.3 (ours on 2 sessions)".to_owned(),
    ]
    .into_iter()
    .chain(peak_measured.then(|| format!("peak_rss_mb={:.1}", peak_kb as f64 / 1024.0)))
    .collect::<Vec<_>>();
    println!("{}", fields.join("\t"));
    Ok(())
}
