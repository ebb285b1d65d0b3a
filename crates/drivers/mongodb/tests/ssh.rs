//! MongoDB through a real OpenSSH bastion (`cargo xtask test-drivers --only
//! mongodb` starts the `ssh` fixture too). The server also listens on
//! 127.0.0.2, which the connector's egress policy denies: only the tunnel
//! reaches it. The Rust driver takes an address, so its connections go
//! through the tunnel's loopback forwarder.

use matih_connector_core::{
    run_test, ConnectionConfig, Credentials, DiscoveryRequest, ErrorCode, Step, TestOptions,
};
use matih_connector_testkit::conformance::Case;
use matih_connector_testkit::{fixture, tunnel, Fixture};
use matih_driver_mongodb::MongodbDriver;

fn case(fx: &Fixture) -> Case {
    let cfg = ConnectionConfig {
        host: Some(fx.require("HOST").into()),
        port: Some(fx.port()),
        database: Some(fx.require("DATABASE").into()),
        ..Default::default()
    };
    let creds = Credentials::new()
        .with("username", fx.require("USER"))
        .with("password", fx.require("PASSWORD"));
    Case::new(cfg, creds)
}

fn driver() -> MongodbDriver {
    matih_connector_core::tls::install_default_provider();
    MongodbDriver::new()
}

#[tokio::test]
async fn test_succeeds_only_through_the_tunnel() {
    let test = "test_succeeds_only_through_the_tunnel";
    let (Some(mg), Some(ssh)) = (fixture("MONGODB", test), fixture("SSH", test)) else {
        return;
    };
    let r = tunnel::assert_only_the_tunnel_reaches(&driver(), &case(&mg), &ssh).await;
    let version = r.server_version.unwrap();
    assert!(version.starts_with("MongoDB "), "{version}");
}

#[tokio::test]
async fn database_errors_and_refusals_through_the_tunnel() {
    let test = "database_errors_and_refusals_through_the_tunnel";
    let (Some(mg), Some(ssh)) = (fixture("MONGODB", test), fixture("SSH", test)) else {
        return;
    };
    let d = driver();
    let opts = TestOptions {
        egress: tunnel::denying_the_target(&ssh),
        ..Default::default()
    };
    let good = tunnel::through_bastion(&case(&mg), &ssh);
    let bad_password = good.with_cred("password", "not-the-password");
    let r = run_test(&d, &bad_password.cfg, &bad_password.creds, &opts).await;
    assert_eq!(
        r.failure(),
        Some((Step::Connect, ErrorCode::AuthenticationFailed)),
        "{r:?}"
    );
    // The bastion cannot reach the port: the forwarder's precise refusal
    // instead of the driver's server-selection failure.
    // The driver retries server selection until the connect timeout.
    tunnel::assert_unreachable_target_is_refused(&d, &good, &opts, Some(2_000)).await;
}

#[tokio::test]
async fn discovery_through_the_tunnel_equals_discovery_direct() {
    let test = "discovery_through_the_tunnel_equals_discovery_direct";
    let (Some(mg), Some(ssh)) = (fixture("MONGODB", test), fixture("SSH", test)) else {
        return;
    };
    let catalog = tunnel::assert_same_catalog_through_the_tunnel(
        &driver(),
        &case(&mg),
        &ssh,
        &DiscoveryRequest::default(),
    )
    .await;
    assert!(catalog.table_count() >= 2, "{}", catalog.table_count());
}
