//! One status rule on every path: the same passing test, slower than the
//! POSTGRESQL threshold and far faster than the global one, makes a
//! POSTGRESQL connector WARNING and a MYSQL connector ACTIVE whether it ran
//! for a create, a manual test, an update, a credential update or a scheduled
//! sweep.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::fake_driver::{self, FakeDriver, GOOD_PASSWORD};
use common::{fake_server, Harness, Options};
use matih_connector_core::{ConnectorType, Registry};
use matih_connector_service::connection_test::Thresholds;
use matih_connector_service::health::{HealthMonitor, HealthSettings, LogNotifier};
use reqwest::Method;
use serde_json::{json, Value};

/// Every connect of the fake server takes this long: slower than the
/// POSTGRESQL threshold below, far below the global one.
const CONNECT_DELAY: Duration = Duration::from_millis(50);
const POSTGRESQL_WARNING_MS: u64 = 10;
const GLOBAL_WARNING_MS: u64 = 600_000;

#[tokio::test]
async fn one_report_one_status_on_create_test_update_credentials_and_sweep() {
    matih_connector_testkit::fake("fake drivers (in-process registry)", "status rule");
    let catalog = Arc::new(Mutex::new(fake_driver::catalog(1, 1)));
    let mut registry = Registry::new();
    for ty in [ConnectorType::Postgresql, ConnectorType::Mysql] {
        registry.register(Arc::new(
            FakeDriver::new(ty, catalog.clone(), Default::default())
                .with_connect_delay(CONNECT_DELAY),
        ));
    }
    let h = Harness::start(Options {
        registry,
        thresholds: Some(Thresholds {
            warning_ms: GLOBAL_WARNING_MS,
            warning_ms_by_type: BTreeMap::from([("POSTGRESQL".to_owned(), POSTGRESQL_WARNING_MS)]),
            ..Default::default()
        }),
        ..Default::default()
    })
    .await;
    let port = fake_server().await;
    let tenant = h.create_tenant("rule", "PROFESSIONAL").await;
    let tok = h.tenant_token(tenant);
    let base = format!("/api/v1/tenants/{tenant}/connectors");

    let mut paths = Vec::new();
    for (ty, want) in [("POSTGRESQL", "WARNING"), ("MYSQL", "ACTIVE")] {
        let (s, c) = h
            .call(
                Method::POST,
                &base,
                &tok,
                Some(json!({
                    "name": format!("{ty} rule"), "type": ty, "host": "127.0.0.1",
                    "port": port, "database": "db",
                    "credentials": {"username": "u", "password": GOOD_PASSWORD},
                })),
            )
            .await;
        assert_eq!(s, 201, "{c}");
        assert_eq!(c["testResult"]["success"], true, "{c}");
        assert_eq!(c["status"], want, "create of {ty}: {c}");
        let path = format!("{base}/{}", c["id"].as_str().unwrap());

        let (s, t) = h
            .call(Method::POST, &format!("{path}/test"), &tok, None)
            .await;
        assert_eq!((s, &t["success"]), (200, &Value::Bool(true)), "{t}");
        assert_eq!(status(&h, &path, &tok).await, want, "manual test of {ty}");

        let (s, u) = h
            .call(Method::PUT, &path, &tok, Some(json!({"database": "db2"})))
            .await;
        assert_eq!(s, 200, "{u}");
        assert_eq!(u["status"], want, "update of {ty}: {u}");

        let (s, u) = h
            .call(
                Method::PUT,
                &format!("{path}/credentials"),
                &tok,
                Some(json!({"credentials": {"username": "u2", "password": GOOD_PASSWORD}})),
            )
            .await;
        assert_eq!(s, 200, "{u}");
        assert_eq!(u["status"], want, "credential update of {ty}: {u}");
        paths.push((ty, want, path));
    }

    // A sweep of the scheduler on the same state decides the same.
    let monitor = HealthMonitor::new(
        h.state.clone(),
        HealthSettings {
            jitter: Duration::ZERO,
            ..Default::default()
        },
        Arc::new(LogNotifier),
        Some("status-rule".into()),
    )
    .unwrap();
    let stats = monitor.sweep().await.unwrap();
    assert_eq!(
        (stats.checked, stats.warning, stats.active, stats.error),
        (2, 1, 1, 0),
        "{stats:?}"
    );
    for (ty, want, path) in &paths {
        assert_eq!(status(&h, path, &tok).await, *want, "sweep of {ty}");
        let (s, health) = h
            .call(Method::GET, &format!("{path}/health"), &tok, None)
            .await;
        assert_eq!(s, 200, "{health}");
        assert_eq!(health["checks"][0]["status"], *want, "{health}");
        assert_eq!(health["checks"][0]["success"], true, "{health}");
    }
}

async fn status(h: &Harness, path: &str, tok: &str) -> String {
    let (s, c) = h.call(Method::GET, path, tok, None).await;
    assert_eq!(s, 200, "{c}");
    c["status"].as_str().unwrap().to_owned()
}
