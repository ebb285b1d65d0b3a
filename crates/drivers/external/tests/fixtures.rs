//! Real connector executables (the `EXTERNAL` fixture: `airbyte-source-faker`
//! and `meltanolabs-tap-postgres` from PyPI) driven through the driver: test
//! and discovery, and the failures a tenant meets (wrong password, closed
//! port). The tap reaches the `POSTGRES` fixture.

use matih_connector_core::{
    open, run_test, Catalog, ConnectionConfig, Credentials, DataType, DiscoveryRequest,
    EgressPolicy, ErrorCode, Registry, Step, TestOptions, TestReport,
};
use matih_connector_testkit::conformance::{
    assert_catalog_well_formed, assert_no_secret, closed_port,
};
use matih_connector_testkit::processes::assert_no_survivors;
use matih_connector_testkit::Fixture;
use matih_driver_external::{CustomTypes, DEFAULT_SCHEMA, WORKDIR_PREFIX};
use serde_json::Value;

fn registry(ext: &Fixture) -> Registry {
    let toml = format!(
        r#"
        [custom_types.FAKER]
        protocol = "airbyte"
        command = [{faker:?}]
        timeout_secs = 300

        [custom_types.PG_TAP]
        protocol = "singer"
        command = [{tap:?}]
        timeout_secs = 300
        "#,
        faker = ext.require("SOURCE_FAKER"),
        tap = ext.require("TAP_POSTGRES"),
    );
    let mut r = Registry::new();
    matih_driver_external::install(&mut r, &CustomTypes::from_toml(&toml).unwrap());
    r
}

/// Time limits wide enough for Python connectors on a busy machine (the
/// type's own `timeout_secs` still bounds each run).
fn slow_cfg() -> ConnectionConfig {
    let mut cfg = ConnectionConfig::default();
    cfg.timeouts.query_ms = 300_000;
    cfg.timeouts.connect_ms = 300_000;
    cfg
}

/// The tap's config for the PostgreSQL fixture: everything but the password
/// in metadata, the password as a credential.
fn tap_case(pg: &Fixture, port: u16, password: &str) -> (ConnectionConfig, Credentials) {
    let mut cfg = slow_cfg();
    cfg.metadata
        .insert("host".into(), Value::from(pg.require("HOST")));
    cfg.metadata.insert("port".into(), Value::from(port));
    cfg.metadata
        .insert("user".into(), Value::from(pg.require("USER")));
    cfg.metadata
        .insert("database".into(), Value::from(pg.require("DATABASE")));
    (cfg, Credentials::new().with("password", password))
}

fn assert_failed(report: &TestReport, code: ErrorCode, creds: &Credentials) {
    assert!(!report.success);
    assert_eq!(report.error_code, Some(code), "{}", report.message);
    assert_eq!(report.failure().map(|f| f.0), Some(Step::AccessProbe));
    assert_no_secret(&serde_json::to_string(report).unwrap(), creds);
}

#[tokio::test]
async fn airbyte_faker_tests_and_discovers() {
    let Some(ext) =
        matih_connector_testkit::fixture("EXTERNAL", "airbyte_faker_tests_and_discovers")
    else {
        return;
    };
    let r = registry(&ext);
    let driver = r.get(&"FAKER".parse().unwrap()).unwrap();
    let mut cfg = slow_cfg();
    cfg.metadata.insert("count".into(), Value::from(10));
    let creds = Credentials::new();
    let report = run_test(&*driver, &cfg, &creds, &TestOptions::default()).await;
    assert!(report.success, "{}", report.message);
    let version = report.server_version.clone().unwrap();
    assert!(
        version.starts_with("airbyte-source-faker 7.") && version.ends_with("(airbyte protocol)"),
        "{version}"
    );

    let mut conn = open(&*driver, &cfg, &creds, &EgressPolicy::default())
        .await
        .unwrap();
    let catalog = conn.discover(&DiscoveryRequest::default()).await.unwrap();
    assert_catalog_well_formed(&catalog);
    let schema = catalog
        .schema(DEFAULT_SCHEMA)
        .expect("streams without a namespace");
    let names: Vec<&str> = schema.tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["products", "purchases", "users"]);
    let users = schema.table("users").unwrap();
    assert_eq!(users.primary_key, vec!["id"]);
    assert_eq!(users.columns[0].name, "id");
    assert_eq!(users.column("id").unwrap().data_type, DataType::Int64);
    assert_eq!(
        users.column("created_at").unwrap().data_type,
        DataType::TimestampTz
    );

    // The connector's own config check: count must be ≥ 1.
    cfg.metadata.insert("count".into(), Value::from(-1));
    let report = run_test(&*driver, &cfg, &creds, &TestOptions::default()).await;
    assert!(!report.success);
    assert_eq!(
        report.error_code,
        Some(ErrorCode::SourceError),
        "{}",
        report.message
    );
    assert!(
        report.message.contains("minimum of 1"),
        "{}",
        report.message
    );
    assert_no_survivors(WORKDIR_PREFIX);
}

#[tokio::test]
async fn singer_tap_postgres_tests_and_discovers_the_seed() {
    let test = "singer_tap_postgres_tests_and_discovers_the_seed";
    let (Some(ext), Some(pg)) = (
        matih_connector_testkit::fixture("EXTERNAL", test),
        matih_connector_testkit::fixture("POSTGRES", test),
    ) else {
        return;
    };
    let r = registry(&ext);
    let driver = r.get(&"PG_TAP".parse().unwrap()).unwrap();
    let (cfg, creds) = tap_case(&pg, pg.port(), pg.require("PASSWORD"));
    let report = run_test(&*driver, &cfg, &creds, &TestOptions::default()).await;
    assert!(report.success, "{}", report.message);
    assert!(
        report
            .server_version
            .as_deref()
            .is_some_and(|v| v.starts_with("meltanolabs-tap-postgres 0.")),
        "{:?}",
        report.server_version
    );
    assert_no_secret(&serde_json::to_string(&report).unwrap(), &creds);
    let mut conn = open(&*driver, &cfg, &creds, &EgressPolicy::default())
        .await
        .unwrap();
    let catalog: Catalog = conn.discover(&DiscoveryRequest::default()).await.unwrap();
    assert_catalog_well_formed(&catalog);
    assert!(catalog
        .schema("sales")
        .is_some_and(|s| !s.tables.is_empty()));
    assert_no_survivors(WORKDIR_PREFIX);
}

#[tokio::test]
async fn singer_tap_wrong_password_is_authentication_failed() {
    let test = "singer_tap_wrong_password_is_authentication_failed";
    let (Some(ext), Some(pg)) = (
        matih_connector_testkit::fixture("EXTERNAL", test),
        matih_connector_testkit::fixture("POSTGRES", test),
    ) else {
        return;
    };
    let r = registry(&ext);
    let driver = r.get(&"PG_TAP".parse().unwrap()).unwrap();
    let (cfg, creds) = tap_case(&pg, pg.port(), "not-the-password-4711");
    let report = run_test(&*driver, &cfg, &creds, &TestOptions::default()).await;
    assert_failed(&report, ErrorCode::AuthenticationFailed, &creds);
    assert_no_survivors(WORKDIR_PREFIX);
}

#[tokio::test]
async fn singer_tap_closed_port_is_connection_refused() {
    let test = "singer_tap_closed_port_is_connection_refused";
    let (Some(ext), Some(pg)) = (
        matih_connector_testkit::fixture("EXTERNAL", test),
        matih_connector_testkit::fixture("POSTGRES", test),
    ) else {
        return;
    };
    let r = registry(&ext);
    let driver = r.get(&"PG_TAP".parse().unwrap()).unwrap();
    let (cfg, creds) = tap_case(&pg, closed_port(), pg.require("PASSWORD"));
    let report = run_test(&*driver, &cfg, &creds, &TestOptions::default()).await;
    assert_failed(&report, ErrorCode::ConnectionRefused, &creds);
    assert_no_survivors(WORKDIR_PREFIX);
}
