//! MariaDB through a real OpenSSH bastion (`cargo xtask test-drivers --only
//! mysql` starts the `ssh` fixture too). The server also listens on
//! 127.0.0.2, which the connector's egress policy denies: only the tunnel
//! reaches it. mysql_async takes an address, so the connection goes through
//! the tunnel's loopback forwarder.

use matih_connector_core::{
    run_test, ConnectionConfig, Credentials, DiscoveryRequest, ErrorCode, SslMode, Step,
    TestOptions,
};
use matih_connector_testkit::conformance::Case;
use matih_connector_testkit::{fixture, tunnel, Fixture};
use matih_driver_mysql::MysqlDriver;

fn case(fx: &Fixture) -> Case {
    let cfg = ConnectionConfig {
        host: Some(fx.require("HOST").to_owned()),
        port: Some(fx.port()),
        database: Some(fx.require("DATABASE").to_owned()),
        ssl_mode: Some(SslMode::Disable),
        ..Default::default()
    };
    let creds = Credentials::new()
        .with("username", fx.require("USER"))
        .with("password", fx.require("PASSWORD"));
    Case::new(cfg, creds)
}

fn driver() -> MysqlDriver {
    matih_connector_core::tls::install_default_provider();
    MysqlDriver::new()
}

#[tokio::test]
async fn test_succeeds_only_through_the_tunnel() {
    let test = "test_succeeds_only_through_the_tunnel";
    let (Some(my), Some(ssh)) = (fixture("MYSQL", test), fixture("SSH", test)) else {
        return;
    };
    let r = tunnel::assert_only_the_tunnel_reaches(&driver(), &case(&my), &ssh).await;
    let version = r.server_version.unwrap();
    assert!(version.contains("MariaDB"), "{version}");
}

#[tokio::test]
async fn tls_and_database_errors_through_the_tunnel() {
    let test = "tls_and_database_errors_through_the_tunnel";
    let (Some(my), Some(ssh)) = (fixture("MYSQL", test), fixture("SSH", test)) else {
        return;
    };
    let d = driver();
    let opts = TestOptions {
        egress: tunnel::denying_the_target(&ssh),
        ..Default::default()
    };
    let good = tunnel::through_bastion(&case(&my), &ssh);
    // TLS through the tunnel.
    let tls = good.with_cfg(|c| c.ssl_mode = Some(SslMode::Require));
    let r = run_test(&d, &tls.cfg, &tls.creds, &opts).await;
    assert!(r.success, "{r:?}");
    // verify-full checks the configured 127.0.0.2, which the certificate
    // does not name (the forwarder's 127.0.0.1 it does).
    let full = good.with_cfg(|c| {
        c.ssl_mode = Some(SslMode::VerifyFull);
        c.ssl_ca_pem = Some(my.read_file("CA_FILE"));
    });
    let r = run_test(&d, &full.cfg, &full.creds, &opts).await;
    assert_eq!(
        r.failure(),
        Some((Step::Connect, ErrorCode::SslHandshakeFailed)),
        "{r:?}"
    );
    let bad_password = good.with_cred("password", "not-the-password");
    let r = run_test(&d, &bad_password.cfg, &bad_password.creds, &opts).await;
    assert_eq!(
        r.failure(),
        Some((Step::Connect, ErrorCode::AuthenticationFailed)),
        "{r:?}"
    );
    // The bastion cannot reach the port: the forwarder's precise refusal,
    // not mysql_async's closed socket.
    tunnel::assert_unreachable_target_is_refused(&d, &good, &opts, None).await;
}

#[tokio::test]
async fn discovery_through_the_tunnel_equals_discovery_direct() {
    let test = "discovery_through_the_tunnel_equals_discovery_direct";
    let (Some(my), Some(ssh)) = (fixture("MYSQL", test), fixture("SSH", test)) else {
        return;
    };
    let catalog = tunnel::assert_same_catalog_through_the_tunnel(
        &driver(),
        &case(&my),
        &ssh,
        &DiscoveryRequest::default(),
    )
    .await;
    assert!(catalog.table_count() >= 3, "{}", catalog.table_count());
}
