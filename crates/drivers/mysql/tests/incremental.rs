//! Incremental discovery against the MariaDB fixture (`cargo xtask
//! test-drivers --only mysql`): every kind of DDL in a database of its own,
//! and after each one the incremental re-discovery must equal a full
//! discovery, table by table, and read exactly the tables the DDL touched
//! (a MySQL print is a hash of the definition: nothing is read needlessly).

use std::collections::BTreeSet;

use matih_connector_core::{
    open, Connection, ConnectionConfig, Credentials, DiscoveryRequest, EgressPolicy, NameFilter,
    SslMode, Timeouts,
};
use matih_connector_testkit::incremental::Tracker;
use matih_connector_testkit::Fixture;
use matih_driver_mysql::MysqlDriver;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

mod common;

async fn raw_client(fx: &Fixture) -> Conn {
    Conn::new(common::raw_opts(
        fx,
        fx.require("USER"),
        fx.require("PASSWORD"),
    ))
    .await
    .expect("raw connect")
}

async fn connection(fx: &Fixture) -> Box<dyn Connection> {
    let cfg = ConnectionConfig {
        host: Some(fx.require("HOST").into()),
        port: Some(fx.port()),
        ssl_mode: Some(SslMode::Disable),
        timeouts: Timeouts {
            connect_ms: 10_000,
            query_ms: 30_000,
        },
        ..Default::default()
    };
    let creds = Credentials::new()
        .with("username", fx.require("USER"))
        .with("password", fx.require("PASSWORD"));
    open(
        &MysqlDriver::new(),
        &cfg,
        &creds,
        &EgressPolicy::allow_all(),
    )
    .await
    .expect("connect")
}

fn names(db: &str, tables: &[&str]) -> BTreeSet<(String, String)> {
    tables
        .iter()
        .map(|t| (db.to_owned(), (*t).to_owned()))
        .collect()
}

#[tokio::test]
async fn incremental_equals_full_after_every_kind_of_ddl() {
    let Some(fx) = matih_connector_testkit::fixture(
        "MYSQL",
        "incremental_equals_full_after_every_kind_of_ddl",
    ) else {
        return;
    };
    let mut sql = raw_client(&fx).await;
    let db = matih_connector_testkit::unique_name("inc");
    sql.query_drop(format!(
        "CREATE DATABASE `{db}`;
         CREATE TABLE `{db}`.keep (id int PRIMARY KEY, note text);
         CREATE TABLE `{db}`.doomed (id int);
         CREATE TABLE `{db}`.base (id int PRIMARY KEY, name varchar(20));
         CREATE VIEW `{db}`.v AS SELECT id, name FROM `{db}`.base;
         CREATE TABLE `{db}`.events (id int, y int NOT NULL)
           PARTITION BY RANGE (y) (PARTITION p2025 VALUES LESS THAN (2026));
         CREATE TABLE `{db}`.events_2026 (id int, y int NOT NULL);"
    ))
    .await
    .expect("setup");
    let req = DiscoveryRequest {
        schemas: NameFilter {
            include: vec![db.clone()],
            exclude: vec![],
        },
        ..Default::default()
    };
    let mut conn = connection(&fx).await;
    let mut tracker = Tracker::start(&mut *conn, &req).await;

    // (what, DDL, tables read again, tables reported gone)
    let steps: Vec<(&str, String, Vec<&str>, Vec<&str>)> = vec![
        ("nothing changed", String::new(), vec![], vec![]),
        (
            "add table",
            format!("CREATE TABLE `{db}`.added (id bigint PRIMARY KEY, v varchar(10) DEFAULT 'x')"),
            vec!["added"],
            vec![],
        ),
        (
            "add column",
            format!("ALTER TABLE `{db}`.added ADD COLUMN amount decimal(10,2) DEFAULT 0"),
            vec!["added"],
            vec![],
        ),
        (
            "rename column",
            format!("ALTER TABLE `{db}`.added RENAME COLUMN v TO label"),
            vec!["added"],
            vec![],
        ),
        (
            "change a column's type",
            format!("ALTER TABLE `{db}`.added MODIFY COLUMN amount bigint DEFAULT 0"),
            vec!["added"],
            vec![],
        ),
        (
            "drop column",
            format!("ALTER TABLE `{db}`.added DROP COLUMN label"),
            vec!["added"],
            vec![],
        ),
        (
            "rename table",
            format!("RENAME TABLE `{db}`.added TO `{db}`.renamed"),
            vec!["renamed"],
            vec!["added"],
        ),
        (
            "redefine a view (same columns)",
            format!(
                "CREATE OR REPLACE VIEW `{db}`.v AS SELECT id, name FROM `{db}`.base WHERE id > 0"
            ),
            vec!["v"],
            vec![],
        ),
        (
            "redefine a view (one more column)",
            format!(
                "CREATE OR REPLACE VIEW `{db}`.v AS SELECT id, name, id * 2 AS twice FROM `{db}`.base"
            ),
            vec!["v"],
            vec![],
        ),
        (
            // MariaDB's ATTACH: the table becomes a partition and is no table any more.
            "attach a partition",
            format!(
                "ALTER TABLE `{db}`.events CONVERT TABLE `{db}`.events_2026 \
                 TO PARTITION p2026 VALUES LESS THAN (2027)"
            ),
            vec![],
            vec!["events_2026"],
        ),
        (
            "comment on a table and a column",
            format!(
                "ALTER TABLE `{db}`.keep COMMENT = 'kept', MODIFY COLUMN note text COMMENT 'a note'"
            ),
            vec!["keep"],
            vec![],
        ),
        (
            "drop a primary key",
            format!("ALTER TABLE `{db}`.keep DROP PRIMARY KEY"),
            vec!["keep"],
            vec![],
        ),
        (
            "drop table",
            format!("DROP TABLE `{db}`.doomed"),
            vec![],
            vec!["doomed"],
        ),
        ("nothing changed again", String::new(), vec![], vec![]),
    ];
    for (what, ddl, changed, removed) in steps {
        if !ddl.is_empty() {
            sql.query_drop(&ddl)
                .await
                .unwrap_or_else(|e| panic!("{what}: {e}"));
        }
        let step = tracker.step(&mut *conn, what).await;
        assert_eq!(step.changed, names(&db, &changed), "{what}: changed");
        assert_eq!(step.removed, names(&db, &removed), "{what}: removed");
    }
    conn.close().await.ok();
    sql.query_drop(format!("DROP DATABASE `{db}`"))
        .await
        .expect("cleanup");
}
