//! The REST driver through a real OpenSSH bastion (`cargo xtask test-drivers
//! --only rest` starts the `ssh` fixture). The API, written in the test,
//! listens on 127.0.0.2, which the connector's egress policy denies: only the
//! tunnel reaches it. The driver knows nothing of the tunnel; core's HTTP
//! client carries it.

use axum::http::header;
use axum::routing::get;
use axum::{Json, Router};
use matih_connector_core::{run_test, ConnectionConfig, Credentials, ErrorCode, Step, Timeouts};
use matih_connector_testkit::conformance::Case;
use matih_connector_testkit::{fixture, tunnel};
use matih_driver_rest::RestDriver;
use serde_json::json;

const TOKEN: &str = "tunnel-token-5b1e";

/// A small API: two endpoints, a version endpoint, a bearer token checked.
fn app() -> Router {
    let authorized = |h: &axum::http::HeaderMap| {
        h.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok())
            == Some(&format!("Bearer {TOKEN}"))
    };
    Router::new()
        .route(
            "/api/users",
            get(move |h: axum::http::HeaderMap| async move {
                if !authorized(&h) {
                    return Err(axum::http::StatusCode::UNAUTHORIZED);
                }
                Ok(Json(json!([
                    {"id": 1, "name": "Ada", "active": true, "joined": "2024-05-01T10:00:00Z"},
                    {"id": 2, "name": "Grace", "active": false, "score": 7.5}
                ])))
            }),
        )
        .route(
            "/api/orders",
            get(|| async {
                Json(json!({"data": [{"order_id": 10, "total": 12.5, "placed": "2024-01-02"}]}))
            }),
        )
        .route(
            "/api/version",
            get(|| async { Json(json!({"version": "4.2.0"})) }),
        )
}

fn serve_fake() {
    matih_connector_testkit::fake("axum REST server written in the test", "ssh");
}

/// The API at `host:port` (plain HTTP).
fn case(host: &str, port: u16) -> Case {
    Case::new(
        ConnectionConfig {
            host: Some(host.into()),
            port: Some(port),
            metadata: serde_json::from_value(json!({
                "scheme": "http",
                "basePath": "/api",
                "versionEndpoint": "/version",
                "endpoints": ["/users", {"name": "orders", "path": "/orders", "recordsPath": "/data"}]
            }))
            .unwrap(),
            timeouts: Timeouts {
                connect_ms: 5000,
                query_ms: 5000,
            },
            ..Default::default()
        },
        Credentials::new().with("token", TOKEN),
    )
}

fn driver() -> RestDriver {
    matih_connector_core::tls::install_default_provider();
    RestDriver::new()
}

#[tokio::test]
async fn test_succeeds_only_through_the_tunnel() {
    let Some(ssh) = fixture("SSH", "test_succeeds_only_through_the_tunnel") else {
        return;
    };
    serve_fake();
    // The target is an IP literal: never resolved, still carried.
    let r = tunnel::assert_api_only_through_the_tunnel(&driver(), &ssh, app(), case).await;
    assert_eq!(r.server_version.as_deref(), Some("4.2.0"));
}

#[tokio::test]
async fn discovery_through_the_tunnel_equals_discovery_direct() {
    let test = "discovery_through_the_tunnel_equals_discovery_direct";
    let Some(ssh) = fixture("SSH", test) else {
        return;
    };
    serve_fake();
    let catalog = tunnel::assert_api_catalog_through_the_tunnel(&driver(), &ssh, app(), case).await;
    assert_eq!(catalog.table_count(), 2);
}

#[tokio::test]
async fn targets_the_bastion_cannot_reach_are_refused_at_connect() {
    let test = "targets_the_bastion_cannot_reach_are_refused_at_connect";
    let Some(ssh) = fixture("SSH", test) else {
        return;
    };
    serve_fake();
    let d = driver();
    let (good, opts) = tunnel::assert_api_refusals_through_the_tunnel(&d, &ssh, app(), case).await;
    // The API answers through the tunnel as it would directly: a wrong token
    // is the API's 401.
    let bad = good.with_cred("token", "not-the-token");
    let r = run_test(&d, &bad.cfg, &bad.creds, &opts).await;
    assert_eq!(
        r.failure().map(|f| f.1),
        Some(ErrorCode::AuthenticationFailed),
        "{r:?}"
    );
    // Another port of the target's host is not reached at all: the tunnel
    // leads to one host:port, and core neither resolves nor dials the
    // target's host itself.
    let other_port = good.cfg.port.unwrap() + 1;
    let elsewhere = good.with_cfg(|c| {
        c.metadata.remove("versionEndpoint");
        c.metadata.remove("endpoints");
        c.metadata.insert(
            "openapiUrl".into(),
            json!(format!(
                "http://{}:{other_port}/openapi.json",
                ssh.require("TARGET_HOST")
            )),
        );
    });
    let r = run_test(&d, &elsewhere.cfg, &elsewhere.creds, &opts).await;
    assert_eq!(
        r.failure(),
        Some((Step::Connect, ErrorCode::EgressDenied)),
        "{r:?}"
    );
    assert!(r.message.contains("leads to 127.0.0.2:"), "{}", r.message);
}

#[tokio::test]
async fn https_through_the_tunnel_checks_the_targets_name() {
    let test = "https_through_the_tunnel_checks_the_targets_name";
    let Some(ssh) = fixture("SSH", test) else {
        return;
    };
    serve_fake();
    let base = case("unset", 0).with_cfg(|c| {
        c.metadata.insert("scheme".into(), json!("https"));
    });
    tunnel::assert_https_checks_the_target(&driver(), &base, &ssh, app).await;
}
