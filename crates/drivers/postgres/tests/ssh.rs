//! PostgreSQL through a real OpenSSH bastion (`cargo xtask test-drivers
//! --only postgres` starts the `ssh` fixture too). The database also listens
//! on 127.0.0.2, which the connector's egress policy denies: only the
//! tunnel reaches it.

use matih_connector_core::{run_test, DiscoveryRequest, ErrorCode, SslMode, Step, TestOptions};
use matih_connector_testkit::conformance::Case;
use matih_connector_testkit::{fixture, tunnel, Fixture};
use matih_driver_postgres::PostgresDriver;

fn case(fx: &Fixture) -> Case {
    let cfg = matih_connector_core::ConnectionConfig {
        host: Some(fx.require("HOST").into()),
        port: Some(fx.port()),
        database: Some(fx.require("DATABASE").into()),
        ssl_mode: Some(SslMode::Disable),
        ..Default::default()
    };
    let creds = matih_connector_core::Credentials::new()
        .with("username", fx.require("USER"))
        .with("password", fx.require("PASSWORD"));
    Case::new(cfg, creds)
}

fn driver() -> PostgresDriver {
    matih_connector_core::tls::install_default_provider();
    PostgresDriver::new()
}

#[tokio::test]
async fn test_succeeds_only_through_the_tunnel() {
    let test = "test_succeeds_only_through_the_tunnel";
    let (Some(pg), Some(ssh)) = (fixture("POSTGRES", test), fixture("SSH", test)) else {
        return;
    };
    let r = tunnel::assert_only_the_tunnel_reaches(&driver(), &case(&pg), &ssh).await;
    assert!(
        r.server_version.unwrap().starts_with("PostgreSQL "),
        "version read through the tunnel"
    );
}

#[tokio::test]
async fn tls_through_the_tunnel_checks_the_configured_host() {
    let test = "tls_through_the_tunnel_checks_the_configured_host";
    let (Some(pg), Some(ssh)) = (fixture("POSTGRES", test), fixture("SSH", test)) else {
        return;
    };
    let d = driver();
    let base = case(&pg).with_cfg(|c| c.ssl_ca_pem = Some(pg.read_file("CA_FILE")));
    let opts = TestOptions {
        egress: tunnel::denying_the_target(&ssh),
        ..Default::default()
    };
    // verify-ca: the chain is the fixture's CA, through the tunnel.
    let ca =
        tunnel::through_bastion(&base, &ssh).with_cfg(|c| c.ssl_mode = Some(SslMode::VerifyCa));
    let r = run_test(&d, &ca.cfg, &ca.creds, &opts).await;
    assert!(r.success, "{r:?}");
    // verify-full: the certificate names 127.0.0.1 and localhost, not the
    // configured 127.0.0.2. The bytes arrive from the forwarder on
    // 127.0.0.1, which the certificate does name, so passing here would mean
    // TLS checked the tunnel's address instead of the configured host.
    let full = ca.with_cfg(|c| c.ssl_mode = Some(SslMode::VerifyFull));
    let r = run_test(&d, &full.cfg, &full.creds, &opts).await;
    assert_eq!(
        r.failure(),
        Some((Step::Connect, ErrorCode::SslHandshakeFailed)),
        "{r:?}"
    );
}

#[tokio::test]
async fn database_errors_are_unchanged_behind_the_tunnel() {
    let test = "database_errors_are_unchanged_behind_the_tunnel";
    let (Some(pg), Some(ssh)) = (fixture("POSTGRES", test), fixture("SSH", test)) else {
        return;
    };
    let d = driver();
    let opts = TestOptions {
        egress: tunnel::denying_the_target(&ssh),
        ..Default::default()
    };
    let good = tunnel::through_bastion(&case(&pg), &ssh);
    let bad_password = good.with_cred("password", "not-the-password");
    let r = run_test(&d, &bad_password.cfg, &bad_password.creds, &opts).await;
    assert_eq!(
        r.failure(),
        Some((Step::Connect, ErrorCode::AuthenticationFailed))
    );
    let no_db = good.with_cfg(|c| c.database = Some("no_such_database".into()));
    let r = run_test(&d, &no_db.cfg, &no_db.creds, &opts).await;
    assert_eq!(
        r.failure(),
        Some((Step::Connect, ErrorCode::DatabaseNotFound))
    );
    // A port the bastion cannot reach: refused at connect, naming the target.
    tunnel::assert_unreachable_target_is_refused(&d, &good, &opts, None).await;
}

#[tokio::test]
async fn discovery_through_the_tunnel_equals_discovery_direct() {
    let test = "discovery_through_the_tunnel_equals_discovery_direct";
    let (Some(pg), Some(ssh)) = (fixture("POSTGRES", test), fixture("SSH", test)) else {
        return;
    };
    let catalog = tunnel::assert_same_catalog_through_the_tunnel(
        &driver(),
        &case(&pg),
        &ssh,
        &DiscoveryRequest::default(),
    )
    .await;
    assert!(catalog.table_count() >= 5, "{}", catalog.table_count());
}
