//! Incremental discovery against the PostgreSQL fixture (`cargo xtask
//! test-drivers --only postgres`): every kind of DDL in a schema of its own,
//! and after each one the incremental re-discovery must equal a full
//! discovery, table by table, and name the relations it touched.

use std::collections::BTreeSet;

use matih_connector_core::{
    open, Connection, ConnectionConfig, Credentials, DiscoveryRequest, EgressPolicy, NameFilter,
    SslMode,
};
use matih_connector_testkit::incremental::Tracker;
use matih_connector_testkit::Fixture;
use matih_driver_postgres::PostgresDriver;
use tokio_postgres::{Client, NoTls};

/// The fixture's superuser (it creates the schema the test works in).
fn superuser(fx: &Fixture) -> (String, String) {
    (
        fx.require("SUPERUSER").to_owned(),
        fx.require("SUPERUSER_PASSWORD").to_owned(),
    )
}

async fn raw_client(fx: &Fixture) -> Client {
    let (user, password) = superuser(fx);
    let mut cfg = tokio_postgres::Config::new();
    cfg.host(fx.require("HOST"))
        .port(fx.port())
        .dbname(fx.require("DATABASE"))
        .user(&user)
        .password(&password);
    let (client, conn) = cfg.connect(NoTls).await.expect("raw connect");
    tokio::spawn(conn);
    client
}

async fn connection(fx: &Fixture) -> Box<dyn Connection> {
    matih_connector_core::tls::install_default_provider();
    let (user, password) = superuser(fx);
    let cfg = ConnectionConfig {
        host: Some(fx.require("HOST").into()),
        port: Some(fx.port()),
        database: Some(fx.require("DATABASE").into()),
        ssl_mode: Some(SslMode::Disable),
        ..Default::default()
    };
    let creds = Credentials::new()
        .with("username", user)
        .with("password", password);
    open(
        &PostgresDriver::new(),
        &cfg,
        &creds,
        &EgressPolicy::allow_all(),
    )
    .await
    .expect("connect")
}

fn names(schema: &str, tables: &[&str]) -> BTreeSet<(String, String)> {
    tables
        .iter()
        .map(|t| (schema.to_owned(), (*t).to_owned()))
        .collect()
}

#[tokio::test]
async fn incremental_equals_full_after_every_kind_of_ddl() {
    let Some(fx) = matih_connector_testkit::fixture(
        "POSTGRES",
        "incremental_equals_full_after_every_kind_of_ddl",
    ) else {
        return;
    };
    let sql = raw_client(&fx).await;
    let s = matih_connector_testkit::unique_name("inc");
    sql.batch_execute(&format!(
        "CREATE SCHEMA {s};
         CREATE TABLE {s}.keep (id int PRIMARY KEY, note text);
         CREATE TABLE {s}.doomed (id int);
         CREATE TABLE {s}.base (id int PRIMARY KEY, name text);
         CREATE VIEW {s}.v AS SELECT id, name FROM {s}.base;
         CREATE TABLE {s}.events (id int, at date NOT NULL) PARTITION BY RANGE (at);
         CREATE TABLE {s}.events_2026 (id int, at date NOT NULL);"
    ))
    .await
    .expect("setup");
    let req = DiscoveryRequest {
        schemas: NameFilter {
            include: vec![s.clone()],
            exclude: vec![],
        },
        ..Default::default()
    };
    let mut conn = connection(&fx).await;
    let mut tracker = Tracker::start(&mut *conn, &req).await;

    let attach = format!(
        "ALTER TABLE {s}.events ATTACH PARTITION {s}.events_2026 \
         FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')"
    );
    // (what, DDL, relations that must be read again, relations that must be reported gone)
    let steps: Vec<(&str, String, Vec<&str>, Vec<&str>)> = vec![
        ("nothing changed", String::new(), vec![], vec![]),
        (
            "add table",
            format!("CREATE TABLE {s}.added (id bigint PRIMARY KEY, v varchar(10) DEFAULT 'x')"),
            vec!["added"],
            vec![],
        ),
        (
            "add column",
            format!("ALTER TABLE {s}.added ADD COLUMN amount numeric(10,2) DEFAULT 0"),
            vec!["added"],
            vec![],
        ),
        (
            "rename column",
            format!("ALTER TABLE {s}.added RENAME COLUMN v TO label"),
            vec!["added"],
            vec![],
        ),
        (
            "change a column's type",
            format!("ALTER TABLE {s}.added ALTER COLUMN amount TYPE bigint"),
            vec!["added"],
            vec![],
        ),
        (
            "drop column",
            format!("ALTER TABLE {s}.added DROP COLUMN label"),
            vec!["added"],
            vec![],
        ),
        (
            "change a default",
            format!("ALTER TABLE {s}.added ALTER COLUMN amount SET DEFAULT 7"),
            vec!["added"],
            vec![],
        ),
        (
            "drop a default",
            format!("ALTER TABLE {s}.added ALTER COLUMN amount DROP DEFAULT"),
            vec!["added"],
            vec![],
        ),
        (
            // Nullability lives in pg_attribute alone (pg_class keeps its
            // row version): only the summary's pg_attribute scan sees it.
            "set a column not null",
            format!("ALTER TABLE {s}.added ALTER COLUMN amount SET NOT NULL"),
            vec!["added"],
            vec![],
        ),
        (
            "drop the not null",
            format!("ALTER TABLE {s}.added ALTER COLUMN amount DROP NOT NULL"),
            vec!["added"],
            vec![],
        ),
        (
            "rename table",
            format!("ALTER TABLE {s}.added RENAME TO renamed"),
            vec!["renamed"],
            vec!["added"],
        ),
        (
            "redefine a view (same columns)",
            format!("CREATE OR REPLACE VIEW {s}.v AS SELECT id, name FROM {s}.base WHERE id > 0"),
            vec!["v"],
            vec![],
        ),
        (
            "redefine a view (one more column)",
            format!(
                "CREATE OR REPLACE VIEW {s}.v AS SELECT id, name, id * 2 AS twice FROM {s}.base"
            ),
            vec!["v"],
            vec![],
        ),
        (
            "attach a partition",
            attach.clone(),
            vec!["events_2026"],
            vec![],
        ),
        (
            "detach the partition",
            format!("ALTER TABLE {s}.events DETACH PARTITION {s}.events_2026"),
            vec!["events_2026"],
            vec![],
        ),
        ("attach it again", attach, vec!["events_2026"], vec![]),
        (
            // Statistics change in place (no row version): the row estimates
            // of the partition and its parent's totals must be fresh.
            "rows inserted and ANALYZE",
            format!(
                "INSERT INTO {s}.events SELECT g, DATE '2026-03-01' FROM generate_series(1, 500) g;
                 INSERT INTO {s}.keep SELECT g, 'n' FROM generate_series(1, 300) g;
                 ANALYZE {s}.events, {s}.keep"
            ),
            vec![],
            vec![],
        ),
        (
            "comment on a table and a column",
            format!(
                "COMMENT ON TABLE {s}.keep IS 'kept'; COMMENT ON COLUMN {s}.keep.note IS 'a note'"
            ),
            vec!["keep"],
            vec![],
        ),
        (
            "change a comment's text",
            format!("COMMENT ON TABLE {s}.keep IS 'kept still'"),
            vec!["keep"],
            vec![],
        ),
        (
            "remove the comments",
            format!("COMMENT ON TABLE {s}.keep IS NULL; COMMENT ON COLUMN {s}.keep.note IS NULL"),
            vec!["keep"],
            vec![],
        ),
        (
            "drop a primary key",
            format!("ALTER TABLE {s}.keep DROP CONSTRAINT keep_pkey"),
            vec!["keep"],
            vec![],
        ),
        (
            "add a primary key again",
            format!("ALTER TABLE {s}.keep ADD PRIMARY KEY (id)"),
            vec!["keep"],
            vec![],
        ),
        (
            "drop table",
            format!("DROP TABLE {s}.doomed"),
            vec![],
            vec!["doomed"],
        ),
        ("nothing changed again", String::new(), vec![], vec![]),
    ];
    for (what, ddl, changed, removed) in steps {
        if !ddl.is_empty() {
            sql.batch_execute(&ddl)
                .await
                .unwrap_or_else(|e| panic!("{what}: {e}"));
        }
        let step = tracker.step(&mut *conn, what).await;
        // A relation may be read again needlessly (a concurrent transaction
        // holds the watermark back), never missed.
        let want = names(&s, &changed);
        assert!(
            step.changed.is_superset(&want),
            "{what}: changed {:?}, expected at least {want:?}",
            step.changed
        );
        assert_eq!(step.removed, names(&s, &removed), "{what}: removed");
    }
    let events = tracker
        .catalog()
        .schema(&s)
        .and_then(|x| x.table("events_2026"))
        .expect("partition listed");
    assert_eq!(events.properties["partitionOf"], "events");
    conn.close().await.ok();
    sql.batch_execute(&format!("DROP SCHEMA {s} CASCADE"))
        .await
        .expect("cleanup");
}

#[tokio::test]
async fn unchanged_catalog_reads_no_detail_again() {
    let Some(fx) =
        matih_connector_testkit::fixture("POSTGRES", "unchanged_catalog_reads_no_detail_again")
    else {
        return;
    };
    let sql = raw_client(&fx).await;
    let s = matih_connector_testkit::unique_name("inc_quiet");
    sql.batch_execute(&format!(
        "CREATE SCHEMA {s}; CREATE TABLE {s}.a (id int PRIMARY KEY); CREATE TABLE {s}.b (x text)"
    ))
    .await
    .expect("setup");
    let req = DiscoveryRequest {
        schemas: NameFilter {
            include: vec![s.clone()],
            exclude: vec![],
        },
        ..Default::default()
    };
    let mut conn = connection(&fx).await;
    let mut tracker = Tracker::start(&mut *conn, &req).await;
    // A step may read the setup's relations again while a transaction that
    // was running during the setup (another test's) holds the watermark back;
    // once those end, an unchanged catalog reads no detail at all.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut steps = 0;
    loop {
        steps += 1;
        let step = tracker.step(&mut *conn, "nothing changed").await;
        assert!(step.removed.is_empty(), "{:?}", step.removed);
        if step.changed.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "after {steps} re-discoveries of an unchanged catalog, still reading {:?} again",
            step.changed
        );
    }
    conn.close().await.ok();
    sql.batch_execute(&format!("DROP SCHEMA {s} CASCADE"))
        .await
        .expect("cleanup");
}
