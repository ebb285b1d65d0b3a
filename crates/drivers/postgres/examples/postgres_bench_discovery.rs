//! Discovery benchmark: our full discovery against two reference catalog
//! queries on databases of 5,000 and 20,000 tables (20 columns each, plus 5%
//! views), measured side by side in one process.
//!
//! Run with the fixture's variables set (`cargo xtask bench discovery` does):
//! `cargo run --release -p matih-driver-postgres --example postgres_bench_discovery [-- 5000 20000] [incremental]`
//! (`incremental`: only the incremental figures).
//!
//! The databases `matih_bench_<n>` are created by the fixture superuser on the
//! first run and reused afterwards (a marker table records a complete build).
//! Peak RSS is the process's VmHWM, reset through /proc/self/clear_refs before
//! the first discovery of each database and read after it. Only the first
//! counts: the rounds after it start with the heap the references and the
//! earlier rounds left behind (freed, but still resident), so their VmHWM
//! measures that rather than our discovery.
//!
//! The columns-alone reference (b) is one query over `pg_attribute` with
//! `format_type` per row, and the client decodes what it sends into the
//! column fields our discovery builds (relation, ordinal, name, native type,
//! nullable), so the ratio compares like with like. It is a floor for the
//! columns, not for a discovery: ours also reads relations with their
//! statistics, index and TOAST pages, defaults, comments, primary keys and
//! user types, and the server runs those queries one after the other on
//! the connection (pipelined, so the client decodes while it runs them).

use std::time::{Duration, Instant};

use futures_util::TryStreamExt;
use matih_connector_core::{
    open, Column, Connection, ConnectionConfig, Credentials, DataType, DiscoveryRequest,
    EgressPolicy, SslMode, Timeouts,
};
use matih_connector_testkit::bench::{cpu_time, proc_status_kb, reset_peak_rss};
use matih_driver_postgres::PostgresDriver;
use tokio_postgres::{Client, NoTls};

const SCHEMAS: i32 = 4;
const BATCH: i32 = 250;

struct Env {
    host: String,
    port: u16,
    user: String,
    password: String,
}

fn env() -> Env {
    let var = |k: &str| {
        std::env::var(format!("MATIH_TEST_POSTGRES_{k}")).unwrap_or_else(|_| {
            panic!("MATIH_TEST_POSTGRES_{k} is not set: start the fixture first")
        })
    };
    Env {
        host: var("HOST"),
        port: var("PORT").parse().expect("port"),
        user: std::env::var("MATIH_TEST_POSTGRES_SUPERUSER").unwrap_or_else(|_| var("USER")),
        password: std::env::var("MATIH_TEST_POSTGRES_SUPERUSER_PASSWORD")
            .unwrap_or_else(|_| var("PASSWORD")),
    }
}

async fn client(e: &Env, db: &str) -> Client {
    let mut c = tokio_postgres::Config::new();
    c.host(&e.host)
        .port(e.port)
        .user(&e.user)
        .password(&e.password)
        .dbname(db);
    c.options("-c statement_timeout=0");
    let (client, conn) = c
        .connect(NoTls)
        .await
        .unwrap_or_else(|err| panic!("connecting to {db}: {err}"));
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

const MAKE_FN: &str = r#"
CREATE OR REPLACE FUNCTION public.matih_bench_make(lo int, hi int, schemas int) RETURNS void
LANGUAGE plpgsql AS $fn$
DECLARE i int; s text; t text;
BEGIN
  FOR i IN lo..hi LOOP
    s := 'bench_' || (i % schemas);
    t := 't_' || i;
    EXECUTE format('CREATE TABLE %I.%I (
      id bigint PRIMARY KEY, c01 integer, c02 bigint, c03 text, c04 varchar(100),
      c05 numeric(12,2), c06 timestamptz DEFAULT now(), c07 date, c08 boolean DEFAULT false,
      c09 jsonb, c10 uuid, c11 double precision, c12 smallint, c13 text[], c14 bytea,
      c15 timestamp, c16 interval, c17 numeric, c18 char(2), c19 real)', s, t);
    EXECUTE format('INSERT INTO %I.%I (id, c01, c03, c05) SELECT g, g, ''row '' || g, g * 1.5
                    FROM generate_series(1, 10) g', s, t);
    IF i % 20 = 0 THEN
      EXECUTE format('CREATE VIEW %I.%I AS SELECT id, c01, c03, c05 FROM %I.%I', s, 'v_' || i, s, t);
    END IF;
  END LOOP;
END $fn$"#;

/// Creates `matih_bench_<tables>` unless a complete one exists.
async fn ensure_database(e: &Env, tables: i32) -> String {
    let db = format!("matih_bench_{tables}");
    let admin = client(e, "postgres").await;
    let exists = admin
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&db])
        .await
        .unwrap()
        .is_some();
    if exists {
        let c = client(e, &db).await;
        let done = c
            .query_opt(
                "SELECT 1 FROM pg_class WHERE oid = to_regclass('public.matih_bench_marker')",
                &[],
            )
            .await
            .unwrap()
            .is_some();
        let complete = done
            && c.query_one("SELECT tables FROM public.matih_bench_marker", &[])
                .await
                .unwrap()
                .get::<_, i32>(0)
                == tables;
        drop(c);
        if complete {
            println!("reusing {db}");
            return db;
        }
        println!("{db} is incomplete: rebuilding");
        // The name is ours (matih_bench_<number>), not input.
        admin
            .batch_execute(&format!("DROP DATABASE {db} WITH (FORCE)"))
            .await
            .unwrap();
    }
    let started = Instant::now();
    admin
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .await
        .unwrap();
    let c = client(e, &db).await;
    for s in 0..SCHEMAS {
        c.batch_execute(&format!("CREATE SCHEMA bench_{s}"))
            .await
            .unwrap();
    }
    c.batch_execute(MAKE_FN).await.unwrap();
    // Two sessions build batches side by side.
    let (c1, c2) = (client(e, &db).await, client(e, &db).await);
    let batches: Vec<(i32, i32)> = (0..tables)
        .step_by(BATCH as usize)
        .map(|lo| (lo + 1, (lo + BATCH).min(tables)))
        .collect();
    let even: Vec<(i32, i32)> = batches.iter().copied().step_by(2).collect();
    let odd: Vec<(i32, i32)> = batches.iter().copied().skip(1).step_by(2).collect();
    async fn run(cl: Client, part: Vec<(i32, i32)>) {
        for (lo, hi) in part {
            cl.execute(
                "SELECT public.matih_bench_make($1, $2, $3)",
                &[&lo, &hi, &SCHEMAS],
            )
            .await
            .unwrap();
        }
    }
    tokio::join!(run(c1, even), run(c2, odd));
    c.batch_execute("ANALYZE").await.unwrap();
    c.execute(
        "CREATE TABLE public.matih_bench_marker AS SELECT $1::int AS tables",
        &[&tables],
    )
    .await
    .unwrap();
    println!("built {db} in {:.1} s", started.elapsed().as_secs_f64());
    db
}

/// (a) The naive single query: columns, primary key flag, reltuples and
/// pg_total_relation_size, joined and ordered.
const NAIVE_SQL: &str = r"
WITH rel AS (
  SELECT c.oid, n.nspname, c.relname, c.relkind, c.reltuples, pg_total_relation_size(c.oid) AS total_size
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f')
    AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'
)
SELECT r.nspname, r.relname, r.relkind, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod),
  a.attnotnull, pg_get_expr(ad.adbin, ad.adrelid), col_description(r.oid, a.attnum),
  coalesce(a.attnum = ANY(i.indkey), false) AS is_pk, r.reltuples, r.total_size
FROM rel r
JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
LEFT JOIN pg_index i ON i.indrelid = r.oid AND i.indisprimary
ORDER BY r.nspname, r.relname, a.attnum";

/// (b) The columns alone: pg_attribute + format_type for every user relation.
const COLUMNS_ONLY_SQL: &str = r"
SELECT a.attrelid, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'v', 'm', 'p', 'f')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'";

/// Runs the columns-alone query, decoding every row into the column fields
/// our discovery builds; returns the row count.
async fn columns_alone(c: &Client) -> usize {
    let stmt = c.prepare(COLUMNS_ONLY_SQL).await.unwrap();
    let rows = c.query_raw(&stmt, std::iter::empty::<i32>()).await.unwrap();
    futures_util::pin_mut!(rows);
    let mut columns: Vec<(u32, Column)> = Vec::new();
    while let Some(row) = rows.try_next().await.unwrap() {
        columns.push((
            row.get(0),
            Column {
                ordinal: row.get::<_, i16>(1).max(0) as u32,
                name: row.get::<_, &str>(2).into(),
                native_type: row.get::<_, &str>(3).into(),
                data_type: DataType::Unknown,
                nullable: !row.get::<_, bool>(4),
                default: None,
                comment: None,
            },
        ));
    }
    columns.len()
}

/// Runs a reference query, receiving every row; returns the row count.
async fn reference(c: &Client, sql: &str) -> usize {
    let stmt = c.prepare(sql).await.unwrap();
    let rows = c.query_raw(&stmt, std::iter::empty::<i32>()).await.unwrap();
    futures_util::pin_mut!(rows);
    let mut n = 0;
    while rows.try_next().await.unwrap().is_some() {
        n += 1;
    }
    n
}

struct Stats {
    best: Duration,
    median: Duration,
}

fn stats(mut v: Vec<Duration>) -> Stats {
    v.sort();
    Stats {
        best: v[0],
        median: v[v.len() / 2],
    }
}

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

/// Our driver's connection to `db`, with timeouts long enough for a 20k catalog.
async fn connect(e: &Env, db: &str) -> Box<dyn Connection> {
    let cfg = ConnectionConfig {
        host: Some(e.host.clone()),
        port: Some(e.port),
        database: Some(db.to_owned()),
        ssl_mode: Some(SslMode::Disable),
        timeouts: Timeouts {
            connect_ms: 10_000,
            query_ms: 300_000,
        },
        ..Default::default()
    };
    let creds = Credentials::new()
        .with("username", e.user.as_str())
        .with("password", e.password.as_str());
    open(
        &PostgresDriver::new(),
        &cfg,
        &creds,
        &EgressPolicy::allow_all(),
    )
    .await
    .expect("connect")
}

async fn bench(e: &Env, db: &str, runs: usize) {
    let mut conn = connect(e, db).await;
    let refs = client(e, db).await;
    let req = DiscoveryRequest::default();

    let (mut ours, mut naive, mut cols) = (Vec::new(), Vec::new(), Vec::new());
    let (mut ours_cpu, mut cols_cpu) = (Duration::ZERO, Duration::ZERO);
    let (mut tables, mut columns, mut naive_rows, mut col_rows) = (0, 0, 0, 0);
    let mut peak_kb = 0;
    let mut peak_measured = true;
    let rss_before = proc_status_kb("VmRSS:").unwrap_or(0);
    // One warm-up round (catalog caches, plans), then the timed rounds.
    for round in 0..=runs {
        peak_measured &= reset_peak_rss();
        let cpu = cpu_time();
        let t = Instant::now();
        let catalog = conn.discover(&req).await.expect("discover");
        let ours_t = t.elapsed();
        if round > 0 {
            ours_cpu += cpu_time() - cpu;
        }
        if round == 0 {
            peak_kb = proc_status_kb("VmHWM:").unwrap_or(0);
        }
        tables = catalog.table_count();
        columns = catalog.column_count();
        drop(catalog);

        let cpu = cpu_time();
        let t = Instant::now();
        col_rows = columns_alone(&refs).await;
        let cols_t = t.elapsed();
        if round > 0 {
            cols_cpu += cpu_time() - cpu;
        }

        let t = Instant::now();
        naive_rows = reference(&refs, NAIVE_SQL).await;
        let naive_t = t.elapsed();
        if round > 0 {
            ours.push(ours_t);
            cols.push(cols_t);
            naive.push(naive_t);
        }
    }
    conn.close().await.ok();
    let (o, b, a) = (stats(ours), stats(cols), stats(naive));
    println!("== {db}: {tables} relations, {columns} columns (reference (b) rows: {col_rows}, (a) rows: {naive_rows}); {runs} timed runs after one warm-up");
    println!(
        "  ours: full discovery (columns, types, PKs, estimated rows, sizes)   best {}  median {}",
        secs(o.best),
        secs(o.median)
    );
    println!(
        "  (b) columns only (pg_attribute + format_type, decoded into columns) best {}  median {}",
        secs(b.best),
        secs(b.median)
    );
    println!(
        "  (a) naive single query with pg_total_relation_size, ordered       best {}  median {}",
        secs(a.best),
        secs(a.median)
    );
    println!(
        "  ratio ours/(b): best {:.2}  median {:.2}   (target <= 1.5)",
        o.best.as_secs_f64() / b.best.as_secs_f64(),
        o.median.as_secs_f64() / b.median.as_secs_f64()
    );
    println!(
        "  ratio ours/(a): best {:.2}  median {:.2}",
        o.best.as_secs_f64() / a.best.as_secs_f64(),
        o.median.as_secs_f64() / a.median.as_secs_f64()
    );
    println!(
        "  client CPU per run (this process, user+sys): ours {:.0} ms, (b) {:.0} ms",
        ours_cpu.as_secs_f64() * 1000.0 / runs as f64,
        cols_cpu.as_secs_f64() * 1000.0 / runs as f64
    );
    if peak_measured {
        println!(
            "  peak RSS during our first discovery: {:.1} MB (VmHWM reset before it; RSS before it {:.1} MB)   (target < 100 MB)",
            peak_kb as f64 / 1024.0,
            rss_before as f64 / 1024.0
        );
    } else {
        println!(
            "  peak RSS of the process so far: {:.1} MB (could not reset VmHWM; run one size per process for a per-size figure)",
            peak_kb as f64 / 1024.0
        );
    }
    // For `cargo xtask bench discovery`'s table: tab-separated key=value.
    println!(
        "summary\tname=PostgreSQL {db}\trelations={tables}\tcolumns={columns}\tours={:.4}\t\
         columns_alone={:.4}\tnaive={:.4}\ttarget=ours/columns alone <= 1.5\tpeak_rss_mb={:.1}",
        o.median.as_secs_f64(),
        b.median.as_secs_f64(),
        a.median.as_secs_f64(),
        peak_kb as f64 / 1024.0
    );
}

#[tokio::main]
async fn main() {
    matih_connector_core::tls::install_default_provider();
    let e = env();
    // `incremental`: the incremental figures alone (they measure their own
    // full discovery in the same rounds).
    let incremental_only = std::env::args().skip(1).any(|a| a == "incremental");
    let sizes: Vec<i32> = {
        let args: Vec<i32> = std::env::args()
            .skip(1)
            .filter_map(|a| a.parse().ok())
            .collect();
        if args.is_empty() {
            vec![5000, 20000]
        } else {
            args
        }
    };
    for tables in sizes {
        let db = ensure_database(&e, tables).await;
        let runs = if tables > 10_000 { 3 } else { 5 };
        if !incremental_only {
            bench(&e, &db, runs).await;
        }
        bench_incremental(&e, &db, tables, runs).await;
    }
}

/// The tables the "100 changed" round alters: spread over the schemas.
fn changed_tables(tables: i32) -> Vec<(String, String)> {
    let step = (tables / 100).max(1);
    (1..=tables.min(100))
        .map(|k| {
            let i = k * step;
            (format!("bench_{}", i % SCHEMAS), format!("t_{i}"))
        })
        .collect()
}

/// Incremental re-discovery beside a full discovery, in the same rounds on
/// the same connection: nothing changed, then 100 tables given a column
/// (taken away again, untimed, after the round). The incremental figures
/// include rebuilding the complete catalog (`CatalogDelta::apply`); the
/// result is checked against the full discovery of the round.
async fn bench_incremental(e: &Env, db: &str, tables: i32, runs: usize) {
    let mut conn = connect(e, db).await;
    let ddl = client(e, db).await;
    let req = DiscoveryRequest::default();
    let targets = changed_tables(tables);
    let alter = |verb: &str| {
        targets
            .iter()
            .map(|(s, t)| match verb {
                "add" => format!("ALTER TABLE {s}.{t} ADD COLUMN IF NOT EXISTS matih_inc integer"),
                _ => format!("ALTER TABLE {s}.{t} DROP COLUMN IF EXISTS matih_inc"),
            })
            .collect::<Vec<_>>()
            .join(";")
    };
    // A run cut short may have left the column behind.
    ddl.batch_execute(&alter("drop")).await.unwrap();

    let first = conn.discover_changed(&req, None).await.expect("discover");
    let mut fingerprint = first.fingerprint.clone().expect("fingerprint");
    let mut catalog = first.apply(Default::default());
    let (mut full, mut unchanged, mut changed) = (Vec::new(), Vec::new(), Vec::new());
    let (mut scan, mut count) = (Vec::new(), Vec::new());
    let (mut read_unchanged, mut read_changed) = (0, 0);
    for round in 0..=runs {
        let t = Instant::now();
        let reference = conn.discover(&req).await.expect("discover");
        let full_t = t.elapsed();

        // The floor of an unchanged re-discovery, between the same full
        // discoveries: the one scan it cannot skip, and a bare count.
        let t = Instant::now();
        ddl.query_one(MIN_EXACT_SCAN_SQL, &[]).await.unwrap();
        let scan_t = t.elapsed();
        let t = Instant::now();
        ddl.query_one("SELECT count(*) FROM pg_attribute", &[])
            .await
            .unwrap();
        let count_t = t.elapsed();

        let previous = catalog.clone();
        let t = Instant::now();
        let mut delta = conn
            .discover_changed(&req, Some(&fingerprint))
            .await
            .expect("incremental");
        read_unchanged = delta.changed.len();
        // The caller keeps the new fingerprint: moved, not copied.
        let next_fp = delta.fingerprint.take().expect("fingerprint");
        let now = delta.apply(previous);
        let unchanged_t = t.elapsed();
        assert!(
            now == reference,
            "incremental (unchanged) differs from full"
        );
        (fingerprint, catalog) = (next_fp, now);

        ddl.batch_execute(&alter("add")).await.unwrap();
        let previous = catalog.clone();
        let t = Instant::now();
        let mut delta = conn
            .discover_changed(&req, Some(&fingerprint))
            .await
            .expect("incremental");
        read_changed = delta.changed.len();
        let next_fp = delta.fingerprint.take().expect("fingerprint");
        let now = delta.apply(previous);
        let changed_t = t.elapsed();
        let reference_changed = conn.discover(&req).await.expect("discover");
        assert!(
            now == reference_changed,
            "incremental (100 changed) differs from full"
        );
        (fingerprint, catalog) = (next_fp, now);

        ddl.batch_execute(&alter("drop")).await.unwrap();
        let delta = conn
            .discover_changed(&req, Some(&fingerprint))
            .await
            .expect("incremental");
        fingerprint = delta.fingerprint.clone().expect("fingerprint");
        catalog = delta.apply(catalog);
        if round > 0 {
            full.push(full_t);
            unchanged.push(unchanged_t);
            changed.push(changed_t);
            scan.push(scan_t);
            count.push(count_t);
        }
    }
    conn.close().await.ok();
    let (f, u, c) = (stats(full), stats(unchanged), stats(changed));
    let pct = |d: Duration| 100.0 * d.as_secs_f64() / f.median.as_secs_f64();
    println!(
        "== {db}: incremental re-discovery beside full discovery (medians of {runs} rounds after one warm-up)"
    );
    println!("  full: {}", secs(f.median));
    // The figure lines keep the form the issue names: seconds as a bare
    // number, the percentage rounded up to a whole number (never flattering);
    // the exact figure and the target follow on a line of their own.
    println!(
        "incremental (unchanged): {:.3} = {:.0}% of full",
        u.median.as_secs_f64(),
        pct(u.median).ceil()
    );
    println!(
        "  ({:.1}% exactly; target <= 10%; relations read again: {read_unchanged})",
        pct(u.median)
    );
    println!(
        "incremental (100 changed): {:.3} = {:.0}% of full",
        c.median.as_secs_f64(),
        pct(c.median).ceil()
    );
    println!(
        "  ({:.1}% exactly; target <= 20%; relations read again: {read_changed})",
        pct(c.median)
    );
    let (s, n) = (stats(scan), stats(count));
    println!(
        "  floor: pg_attribute scanned for rows written since a watermark (what an exact \
         unchanged check cannot skip) {:.3} = {:.1}% of full; SELECT count(*) FROM pg_attribute \
         {:.3} = {:.1}%",
        s.median.as_secs_f64(),
        pct(s.median),
        n.median.as_secs_f64(),
        pct(n.median)
    );
}

/// The one scan an exact unchanged check needs: every `pg_attribute` row's
/// `xmin` against the oldest running transaction (a column rename, drop,
/// nullability change or column grant writes that catalog alone). The same
/// predicate as the driver's summary, nothing else.
const MIN_EXACT_SCAN_SQL: &str = r"WITH t AS (
  SELECT age(((txid_snapshot_xmin(txid_current_snapshot()) % 4294967296)::text)::xid) AS a)
SELECT count(*) FROM pg_attribute a WHERE age(a.xmin) <= (SELECT a FROM t)";
