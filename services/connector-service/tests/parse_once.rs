//! Parse once: every request that takes a configuration parses it exactly
//! once (core's `prepare`, which alone may call `Driver::prepare`), its
//! connectivity test included. Counted with the fake driver's parse counter.

mod common;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use common::fake_driver::{self, FakeDriver, GOOD_PASSWORD};
use common::{fake_server, Harness, Options};
use matih_connector_core::{ConnectorType, Registry};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn each_request_parses_the_configuration_once() {
    matih_connector_testkit::fake(
        "fake driver (in-process registry)",
        "each_request_parses_the_configuration_once",
    );
    let driver = Arc::new(FakeDriver::new(
        ConnectorType::Postgresql,
        Arc::new(Mutex::new(fake_driver::catalog(1, 2))),
        fake_driver::Gate::default(),
    ));
    let parses = driver.parses.clone();
    let mut registry = Registry::new();
    registry.register(driver);
    let h = Harness::start(Options {
        registry,
        ..Default::default()
    })
    .await;
    let port = fake_server().await;
    let tenant = h.create_tenant("parse-once", "PROFESSIONAL").await;
    let token = h.tenant_token(tenant);
    let base = format!("/api/v1/tenants/{tenant}/connectors");
    let body = |name: &str, password: &str| {
        json!({
            "name": name, "type": "POSTGRESQL", "host": "127.0.0.1", "port": port,
            "database": "db", "credentials": {"username": "reader", "password": password},
            "sslEnabled": false, "metadata": {}
        })
    };

    // A create whose test fails starts no discovery: what the response
    // answers is all the create did. Validation, plan, secret, test: one parse.
    let (s, v) = h
        .call(Method::POST, &base, &token, Some(body("a", "wrong-pw-1")))
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["status"], "ERROR", "{v}");
    assert_eq!(v["testResult"]["steps"][0]["name"], "validate", "{v}");
    assert_eq!(parses.load(Ordering::SeqCst), 1, "create");
    let id = v["id"].as_str().unwrap().to_owned();

    // New credentials: checked and tested on one parse.
    let (s, v) = h
        .call(
            Method::PUT,
            &format!("{base}/{id}/credentials"),
            &token,
            Some(json!({"credentials": {"username": "reader", "password": GOOD_PASSWORD}})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(parses.load(Ordering::SeqCst), 2, "credentials");

    // A manual test: one parse, in its validate step.
    let (s, v) = h
        .call(Method::POST, &format!("{base}/{id}/test"), &token, None)
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["success"], true, "{v}");
    assert_eq!(parses.load(Ordering::SeqCst), 3, "test");

    // A configuration the driver refuses is refused by the same one parse,
    // before any secret or row is written.
    let mut bad = body("b", GOOD_PASSWORD);
    bad["host"] = json!(null);
    let (s, v) = h.call(Method::POST, &base, &token, Some(bad)).await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(parses.load(Ordering::SeqCst), 4, "refused create");

    // A successful create parses once for itself; the discovery it starts is
    // its own job, which reads the stored secret and parses once more.
    let (s, v) = h
        .call(Method::POST, &base, &token, Some(body("c", GOOD_PASSWORD)))
        .await;
    assert_eq!(s, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_owned();
    let job = h.wait_discovery(tenant, &id, &token).await;
    assert_eq!(job["status"], "SUCCEEDED", "{job}");
    assert_eq!(parses.load(Ordering::SeqCst), 6, "create and its discovery");
}
