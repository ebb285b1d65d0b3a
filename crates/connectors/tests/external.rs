//! A Singer tap as a custom type, checked against our own PostgreSQL driver on
//! the same database: the tap's discovery (meltanolabs-tap-postgres, the
//! `EXTERNAL` fixture) must name the same tables and columns, in the same
//! order, with the same primary keys, and the nullability a Singer catalog
//! can express (see the comment in the test).

use std::collections::BTreeMap;

use matih_connector_core::{
    open, Catalog, ConnectionConfig, Credentials, DiscoveryRequest, EgressPolicy, NameFilter,
    SslMode, TableKind,
};
use matih_connector_testkit::fixture;
use serde_json::Value;

/// What both catalogs must agree on, per `schema.table` of any kind: its
/// columns (name, nullable) in order and its primary key.
type Shape = BTreeMap<String, (Vec<(String, bool)>, Vec<String>)>;

fn shape(catalog: &Catalog) -> Shape {
    let mut out = Shape::new();
    for s in &catalog.schemas {
        for t in &s.tables {
            out.insert(
                format!("{}.{}", s.name, t.name),
                (
                    t.columns
                        .iter()
                        .map(|c| (c.name.to_string(), c.nullable))
                        .collect(),
                    t.primary_key.clone(),
                ),
            );
        }
    }
    out
}

#[tokio::test]
async fn singer_tap_discovery_matches_the_postgres_driver() {
    let test = "singer_tap_discovery_matches_the_postgres_driver";
    let (Some(ext), Some(pg)) = (fixture("EXTERNAL", test), fixture("POSTGRES", test)) else {
        return;
    };
    matih_connector_core::tls::install_default_provider();
    let mut registry = matih_connectors::registry();
    let types = format!(
        "[custom_types.PG_TAP]\nprotocol = \"singer\"\ncommand = [{:?}]\ntimeout_secs = 300\n",
        ext.require("TAP_POSTGRES")
    );
    matih_connectors::install_custom_types(&mut registry, &[&types]).unwrap();
    let egress = EgressPolicy::default();

    // Our driver, every user schema.
    let native = registry.get(&"POSTGRESQL".parse().unwrap()).unwrap();
    let cfg = ConnectionConfig {
        host: Some(pg.require("HOST").into()),
        port: Some(pg.port()),
        database: Some(pg.require("DATABASE").into()),
        ssl_mode: Some(SslMode::Require),
        ..Default::default()
    };
    let creds = Credentials::new()
        .with("username", pg.require("USER"))
        .with("password", pg.require("PASSWORD"));
    let mut conn = open(&*native, &cfg, &creds, &egress).await.unwrap();
    let ours = conn.discover(&DiscoveryRequest::default()).await.unwrap();

    // The tap, same database and login; the system schemas our driver leaves
    // out by default are left out through the request's filter.
    let tap = registry.get(&"PG_TAP".parse().unwrap()).unwrap();
    let mut tap_cfg = ConnectionConfig::default();
    tap_cfg.timeouts.query_ms = 300_000;
    for (k, v) in [
        ("host", Value::from(pg.require("HOST"))),
        ("port", Value::from(pg.port())),
        ("user", Value::from(pg.require("USER"))),
        ("database", Value::from(pg.require("DATABASE"))),
    ] {
        tap_cfg.metadata.insert(k.into(), v);
    }
    let tap_creds = Credentials::new().with("password", pg.require("PASSWORD"));
    let mut conn = open(&*tap, &tap_cfg, &tap_creds, &egress).await.unwrap();
    let req = DiscoveryRequest {
        schemas: NameFilter {
            include: vec![],
            exclude: vec!["information_schema".into(), "pg_catalog".into()],
        },
        ..Default::default()
    };
    let theirs = conn.discover(&req).await.unwrap();

    // A Singer catalog knows tables and views only: the tap reports our views
    // and materialized views as views, and partitioned parents and foreign
    // tables as tables; the rest compares by name.
    let views = |c: &Catalog| -> Vec<String> {
        c.schemas
            .iter()
            .flat_map(|s| {
                s.tables
                    .iter()
                    .filter(|t| matches!(t.kind, TableKind::View | TableKind::MaterializedView))
                    .map(move |t| format!("{}.{}", s.name, t.name))
            })
            .collect()
    };
    assert_eq!(views(&theirs), views(&ours), "views differ");
    let ours = shape(&ours);
    let theirs = shape(&theirs);
    assert!(!ours.is_empty());
    let only_ours: Vec<&String> = ours.keys().filter(|k| !theirs.contains_key(*k)).collect();
    let only_theirs: Vec<&String> = theirs.keys().filter(|k| !ours.contains_key(*k)).collect();
    assert!(
        only_ours.is_empty() && only_theirs.is_empty(),
        "tables only our driver found: {only_ours:?}; only the tap found: {only_theirs:?}"
    );
    for (name, (cols, pk)) in &ours {
        let (tap_cols, tap_pk) = &theirs[name];
        assert_eq!(tap_pk, pk, "{name}: primary keys differ");
        // The Singer SDK marks every property outside the key optional (its
        // type admits null: a record may leave it out), whatever the column's
        // NOT NULL says; key columns keep theirs. So what the tap can say is
        // our nullability for key columns and "nullable" for the rest.
        let expected: Vec<(String, bool)> = cols
            .iter()
            .map(|(c, nullable)| (c.clone(), *nullable || !pk.contains(c)))
            .collect();
        assert_eq!(
            tap_cols, &expected,
            "{name}: columns (name, nullable) differ"
        );
    }
    // Not vacuous: the seed has NOT NULL columns both inside and outside keys.
    let not_null = |in_key: bool| {
        ours.values()
            .flat_map(|(cols, pk)| cols.iter().map(move |(c, n)| (!n, pk.contains(c))))
            .filter(|&(nn, k)| nn && k == in_key)
            .count()
    };
    assert!(not_null(true) > 0 && not_null(false) > 0);
    matih_connector_testkit::processes::assert_no_survivors(
        matih_connectors::external::WORKDIR_PREFIX,
    );
}
