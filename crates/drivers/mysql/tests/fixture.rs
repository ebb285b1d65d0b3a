//! The MySQL driver against a real MariaDB server loaded with
//! tests/fixtures/mysql/seed.sql (`cargo xtask test-drivers --only mysql`).
//! Without MATIH_TEST_MYSQL_* each test prints why it skips.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use matih_connector_core::{
    open, prepare, run_test, Catalog, ConnectContext, ConnectionConfig, Credentials, DataType,
    Depth, DiscoveryRequest, EgressPolicy, ErrorCode, NameFilter, SslMode, Step, Table, TableKind,
    TestOptions, Timeouts,
};
use matih_connector_testkit::conformance::{self, Case, FailureCases};
use matih_connector_testkit::Fixture;
use matih_driver_mysql::MysqlDriver;
use mysql_async::prelude::Queryable;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

mod common;

/// A self-signed CA that signed nothing the fixture serves.
const UNRELATED_CA: &str = "-----BEGIN CERTIFICATE-----
MIIBqjCCAVGgAwIBAgIUNb36Mqm9dwqYYFEvxhpHWVDu+eIwCgYIKoZIzj0EAwIw
IjEgMB4GA1UEAwwXbWF0aWgtdW5yZWxhdGVkLXRlc3QtY2EwIBcNMjYxMTI2MTUw
NjQ4WhgPMjEyNjExMDIxNTA2NDhaMCIxIDAeBgNVBAMMF21hdGloLXVucmVsYXRl
ZC10ZXN0LWNhMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEY5/WrB1fiNIA+j1R
lcc1QynuCM09EEOtEUVyFb/X93239oxeH+oao3E6+oE9YdvVKIroIHeTBT6dtX6D
CQdCUKNjMGEwHQYDVR0OBBYEFEEifqoh7xuPqq0tDR58Fh+CME1iMB8GA1UdIwQY
MBaAFEEifqoh7xuPqq0tDR58Fh+CME1iMA8GA1UdEwEB/wQFMAMBAf8wDgYDVR0P
AQH/BAQDAgIEMAoGCCqGSM49BAMCA0cAMEQCICtUBrv0VtrI8Zb/LxcROmBcm1bH
GewrWpEyDwLLTcfOAiB58K++C4JkG4i35/clYZ2aldFoGnGymBw07jc8u79ttw==
-----END CERTIFICATE-----
";

fn driver() -> MysqlDriver {
    MysqlDriver::new()
}

/// The fixture's login on its seeded database, in one TLS mode. Modes that
/// verify get the fixture's CA.
fn case(fx: &Fixture, mode: SslMode) -> Case {
    let verifies = matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull);
    let cfg = ConnectionConfig {
        host: Some(fx.require("HOST").to_owned()),
        port: Some(fx.port()),
        database: Some(fx.require("DATABASE").to_owned()),
        ssl_mode: Some(mode),
        ssl_ca_pem: verifies.then(|| fx.read_file("CA_FILE")),
        timeouts: Timeouts {
            connect_ms: 10_000,
            query_ms: 30_000,
        },
        ..Default::default()
    };
    let creds = Credentials::new()
        .with("username", fx.require("USER"))
        .with("password", fx.require("PASSWORD"));
    Case::new(cfg, creds)
}

fn options() -> TestOptions {
    TestOptions {
        egress: EgressPolicy::allow_all(),
        ..Default::default()
    }
}

fn only(patterns: &[&str]) -> NameFilter {
    NameFilter {
        include: patterns.iter().map(|p| p.to_string()).collect(),
        exclude: vec![],
    }
}

fn table_names(catalog: &Catalog, schema: &str) -> Vec<String> {
    catalog
        .schema(schema)
        .map(|s| s.tables.iter().map(|t| t.name.clone()).collect())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------
// Connectivity and TLS
// ---------------------------------------------------------------------------

#[tokio::test]
async fn test_passes_in_every_tls_mode() {
    let Some(fx) = matih_connector_testkit::fixture("MYSQL", "test_passes_in_every_tls_mode")
    else {
        return;
    };
    let d = driver();
    for mode in [
        SslMode::Disable,
        SslMode::Require,
        SslMode::VerifyCa,
        SslMode::VerifyFull,
    ] {
        let r = conformance::assert_test_succeeds(&d, &case(&fx, mode)).await;
        let version = r.server_version.unwrap();
        assert!(
            version.chars().next().is_some_and(|c| c.is_ascii_digit()),
            "{mode}: {version}"
        );
    }
    // require with a CA verifies the chain (as libpq does).
    let with_ca =
        case(&fx, SslMode::Require).with_cfg(|c| c.ssl_ca_pem = Some(fx.read_file("CA_FILE")));
    conformance::assert_test_succeeds(&d, &with_ca).await;
}

#[tokio::test]
async fn verify_full_checks_the_host_name_both_as_ip_and_as_dns_name() {
    let Some(fx) = matih_connector_testkit::fixture("MYSQL", "verify_full_checks_the_host_name")
    else {
        return;
    };
    let d = driver();
    let by_ip = case(&fx, SslMode::VerifyFull).with_cfg(|c| c.host = Some("127.0.0.1".into()));
    conformance::assert_test_succeeds(&d, &by_ip).await;
    let by_name = case(&fx, SslMode::VerifyFull).with_cfg(|c| c.host = Some("localhost".into()));
    conformance::assert_test_succeeds(&d, &by_name).await;
}

/// A host name the certificate does not hold, at the fixture's address: the
/// core would resolve a real name; here the context is built by hand.
fn mismatched_context(fx: &Fixture) -> ConnectContext {
    let addr: SocketAddr = format!("{}:{}", fx.require("HOST"), fx.port())
        .parse()
        .expect("fixture HOST is an IP");
    ConnectContext {
        host: Some("db.matih.test".into()),
        addrs: vec![addr],
        timeouts: Timeouts {
            connect_ms: 10_000,
            query_ms: 30_000,
        },
        egress: EgressPolicy::allow_all(),
        tunnel: None,
    }
}

#[tokio::test]
async fn verify_ca_ignores_the_name_and_verify_full_does_not() {
    let Some(fx) = matih_connector_testkit::fixture("MYSQL", "verify_ca_ignores_the_name") else {
        return;
    };
    let d = driver();
    let ctx = mismatched_context(&fx);

    let c = case(&fx, SslMode::VerifyCa);
    let mut conn = prepare(&d, &c.cfg, &c.creds)
        .unwrap()
        .connect(&ctx)
        .await
        .expect("verify-ca accepts a CA-signed certificate for another name");
    assert!(!conn.server_version().await.unwrap().is_empty());
    conn.close().await.unwrap();

    let c = case(&fx, SslMode::VerifyFull);
    let err = prepare(&d, &c.cfg, &c.creds)
        .unwrap()
        .connect(&ctx)
        .await
        .expect_err("verify-full must reject the name");
    assert_eq!(err.code(), ErrorCode::SslHandshakeFailed, "{err}");
    assert!(err.message().contains("not valid for name"), "{err}");

    // verify-ca still verifies the chain: a CA that signed nothing is refused,
    // for a matching name and for a mismatched one.
    let c = case(&fx, SslMode::VerifyCa).with_cfg(|c| c.ssl_ca_pem = Some(UNRELATED_CA.into()));
    let err = prepare(&d, &c.cfg, &c.creds)
        .unwrap()
        .connect(&ctx)
        .await
        .expect_err("unknown issuer");
    assert_eq!(err.code(), ErrorCode::SslHandshakeFailed, "{err}");
    let r = run_test(&d, &c.cfg, &c.creds, &options()).await;
    assert_eq!(
        r.failure(),
        Some((Step::Connect, ErrorCode::SslHandshakeFailed)),
        "{r:?}"
    );
}

/// A loopback proxy that records the first bytes each client sends, to see
/// whether the client asked for TLS (SSLRequest, then a TLS record).
async fn sniffing_proxy(upstream: SocketAddr) -> (u16, Arc<Mutex<Vec<Vec<u8>>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let record = record.clone();
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(upstream).await else {
                    return;
                };
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut sr, &mut cw).await;
                });
                let index = {
                    let mut r = record.lock().unwrap();
                    r.push(Vec::new());
                    r.len() - 1
                };
                let mut buf = [0u8; 4096];
                loop {
                    let n = match cr.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    {
                        let mut r = record.lock().unwrap();
                        let first = &mut r[index];
                        let room = 64usize.saturating_sub(first.len());
                        first.extend_from_slice(&buf[..n.min(room)]);
                    }
                    if sw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (port, seen)
}

/// An SSLRequest is a 32-byte packet with sequence id 1; a TLS handshake
/// record (0x16) follows it.
fn asked_for_tls(first: &[u8]) -> bool {
    first.len() > 36 && first[..4] == [32, 0, 0, 1] && first[36] == 0x16
}

#[tokio::test]
async fn tls_modes_really_encrypt_and_disable_does_not() {
    let Some(fx) = matih_connector_testkit::fixture("MYSQL", "tls_modes_really_encrypt") else {
        return;
    };
    let upstream: SocketAddr = format!("{}:{}", fx.require("HOST"), fx.port())
        .parse()
        .unwrap();
    let d = driver();
    for (mode, tls) in [
        (SslMode::Disable, false),
        (SslMode::Require, true),
        (SslMode::VerifyCa, true),
        (SslMode::VerifyFull, true),
    ] {
        let (port, seen) = sniffing_proxy(upstream).await;
        let c = case(&fx, mode).with_cfg(|c| {
            c.host = Some("127.0.0.1".into());
            c.port = Some(port);
        });
        conformance::assert_test_succeeds(&d, &c).await;
        let sessions: Vec<Vec<u8>> = seen
            .lock()
            .unwrap()
            .iter()
            .filter(|b| !b.is_empty())
            .cloned()
            .collect();
        assert_eq!(
            sessions.len(),
            1,
            "{mode}: one session, no reconnect through a socket"
        );
        assert_eq!(
            asked_for_tls(&sessions[0]),
            tls,
            "{mode}: {:02x?}",
            sessions[0]
        );
    }
}

// ---------------------------------------------------------------------------
// Failures
// ---------------------------------------------------------------------------

#[tokio::test]
async fn each_failure_has_its_code_and_step() {
    let Some(fx) = matih_connector_testkit::fixture("MYSQL", "each_failure_has_its_code_and_step")
    else {
        return;
    };
    let good = case(&fx, SslMode::Disable);
    let cases = FailureCases {
        wrong_password: good.with_cred("password", "definitely-not-the-password"),
        missing_database: good
            .with_cfg(|c| c.database = Some(matih_connector_testkit::unique_name("no_such_db"))),
        no_privilege: Case::new(
            good.cfg.clone(),
            Credentials::new()
                .with("username", fx.require("NOPRIV_USER"))
                .with("password", fx.require("NOPRIV_PASSWORD")),
        ),
        untrusted_tls: case(&fx, SslMode::VerifyFull).with_cfg(|c| c.ssl_ca_pem = None),
    };
    let d = driver();
    // MySQL checks database privileges at login: error 1044.
    conformance::assert_error_codes(&d, &good, &cases, Step::Connect).await;

    let r = run_test(
        &driver(),
        &cases.no_privilege.cfg,
        &cases.no_privilege.creds,
        &options(),
    )
    .await;
    let connect = r.step(Step::Connect).unwrap();
    assert!(
        connect
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("matih_seed"),
        "{r:?}"
    );
    // Error 1044 names the login: kept for the administrator, password hidden.
    conformance::assert_names_the_user(&r, &cases.no_privilege.creds);
}

#[tokio::test]
async fn a_login_without_any_privilege_fails_the_access_probe() {
    let Some(fx) = matih_connector_testkit::fixture("MYSQL", "login_without_privilege") else {
        return;
    };
    let c = Case::new(
        case(&fx, SslMode::Disable).cfg.clone(),
        Credentials::new()
            .with("username", fx.require("NOPRIV_USER"))
            .with("password", fx.require("NOPRIV_PASSWORD")),
    )
    .with_cfg(|c| c.database = None);
    let r = conformance::assert_test_fails(
        &driver(),
        &c,
        Step::AccessProbe,
        ErrorCode::PermissionDenied,
    )
    .await;
    assert!(r.message.contains("no privilege"), "{}", r.message);
}

#[tokio::test]
async fn filters_that_match_nothing_are_not_a_failure() {
    let Some(fx) = matih_connector_testkit::fixture("MYSQL", "filters_that_match_nothing") else {
        return;
    };
    let c = case(&fx, SslMode::Disable);
    let opts = TestOptions {
        egress: EgressPolicy::allow_all(),
        discovery: DiscoveryRequest {
            schemas: only(&["no_such_database_*"]),
            ..Default::default()
        },
    };
    let r = run_test(&driver(), &c.cfg, &c.creds, &opts).await;
    assert!(r.success, "{r:?}");
    let catalog = conformance::discover(&driver(), &c, &opts.discovery).await;
    assert!(catalog.schemas.is_empty());
}

#[tokio::test]
async fn a_server_that_hangs_up_at_once_is_connection_closed() {
    let Some(fx) = matih_connector_testkit::fixture("MYSQL", "server_hangs_up") else {
        return;
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            drop(s);
        }
    });
    let c = case(&fx, SslMode::Disable).with_cfg(|c| {
        c.host = Some("127.0.0.1".into());
        c.port = Some(port);
    });
    conformance::assert_test_fails(&driver(), &c, Step::Connect, ErrorCode::ConnectionClosed).await;
    task.abort();
}

#[tokio::test]
async fn a_server_that_is_not_mysql_is_a_protocol_error() {
    let Some(fx) = matih_connector_testkit::fixture("MYSQL", "server_is_not_mysql") else {
        return;
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = s
                    .write_all(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n")
                    .await;
                let _ = s.flush().await;
                tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            });
        }
    });
    let c = case(&fx, SslMode::Disable).with_cfg(|c| {
        c.host = Some("127.0.0.1".into());
        c.port = Some(port);
        c.timeouts = Timeouts {
            connect_ms: 1_500,
            query_ms: 1_500,
        };
    });
    let r = run_test(&driver(), &c.cfg, &c.creds, &options()).await;
    let (step, code) = r.failure().expect("must fail");
    assert_eq!(step, Step::Connect);
    assert!(
        matches!(code, ErrorCode::ProtocolError | ErrorCode::ConnectionClosed),
        "{r:?}"
    );
    task.abort();
}

// ---------------------------------------------------------------------------
// Discovery
// ---------------------------------------------------------------------------

#[tokio::test]
async fn discovery_filters_and_depth() {
    let Some(fx) = matih_connector_testkit::fixture("MYSQL", "discovery_filters_and_depth") else {
        return;
    };
    let c = case(&fx, SslMode::Disable);
    conformance::assert_discovery_filters(&driver(), &c, "matih_seed", "order").await;
    conformance::assert_discovery_filters(&driver(), &c, "Sales Data", "Q1 Revenue").await;
}

#[tokio::test]
async fn hostile_filter_patterns_are_values_not_sql() {
    let Some(fx) = matih_connector_testkit::fixture("MYSQL", "hostile_filter_patterns") else {
        return;
    };
    let c = case(&fx, SslMode::Disable);
    let d = driver();
    let tables = |patterns: &[&str]| DiscoveryRequest {
        schemas: only(&["matih_seed"]),
        tables: only(patterns),
        ..Default::default()
    };
    let cases: &[(&[&str], &[&str])] = &[
        // LIKE metacharacters in a glob are literal.
        (&["rate%_*"], &["rate%_2024"]),
        (&["rate?_2024"], &["rate%_2024", "rateX_2024"]),
        (&["rate_2024"], &[]),
        // Case-sensitive, although information_schema collates case-insensitively.
        (&["mixedcase"], &[]),
        (&["MixedCase"], &["MixedCase"]),
        (&["Mixed*"], &["MixedCase"]),
        (&["back`tick"], &["back`tick"]),
        (&["quote'and\"double"], &["quote'and\"double"]),
        (&["ünïcödé_*"], &["ünïcödé_表"]),
        (
            &["with space", "v all types"],
            &["v all types", "with space"],
        ),
        (&["order"], &["order"]),
        (&["order*"], &["order", "order_items", "order_summary"]),
        (&["x' OR '1'='1"], &[]),
        (&["*' OR 1=1 -- "], &[]),
        (&["\\*"], &[]),
        (&["%"], &[]),
    ];
    for (patterns, want) in cases {
        let catalog = conformance::discover(&d, &c, &tables(patterns)).await;
        assert_eq!(
            table_names(&catalog, "matih_seed"),
            *want,
            "patterns {patterns:?}"
        );
    }

    let schemas = |include: &[&str], exclude: &[&str]| DiscoveryRequest {
        schemas: NameFilter {
            include: include.iter().map(|s| s.to_string()).collect(),
            exclude: exclude.iter().map(|s| s.to_string()).collect(),
        },
        depth: Depth::Schemas,
        ..Default::default()
    };
    let names = |c: &Catalog| c.schemas.iter().map(|s| s.name.clone()).collect::<Vec<_>>();
    let cases: &[(&[&str], &[&str], &[&str])] = &[
        (&["odd%_db"], &[], &["odd%_db"]),
        (&["odd?_db"], &[], &["odd%_db"]),
        (&["odd_db"], &[], &[]),
        (&["Sales Data"], &[], &["Sales Data"]),
        (&["sales data"], &[], &[]),
        (&["données_*"], &[], &["données_été"]),
        (&["matih_seed", "Sales Data"], &["Sales*"], &["matih_seed"]),
        (&["*"], &["*"], &[]),
        (&["mysql", "information_schema"], &[], &[]),
    ];
    for (include, exclude, want) in cases {
        let catalog = conformance::discover(&d, &c, &schemas(include, exclude)).await;
        assert_eq!(
            names(&catalog),
            *want,
            "include {include:?} exclude {exclude:?}"
        );
    }
}

#[tokio::test]
async fn system_databases_only_on_request() {
    let Some(fx) = matih_connector_testkit::fixture("MYSQL", "system_databases_only_on_request")
    else {
        return;
    };
    let c = case(&fx, SslMode::Disable);
    let d = driver();
    let all = conformance::discover(
        &d,
        &c,
        &DiscoveryRequest::default().with_depth(Depth::Schemas),
    )
    .await;
    for system in ["information_schema", "mysql", "performance_schema", "sys"] {
        assert!(
            all.schema(system).is_none(),
            "{system} listed without include_system"
        );
    }
    let req = DiscoveryRequest {
        include_system: true,
        schemas: only(&["information_schema", "mysql"]),
        tables: only(&["TABLES", "user"]),
        ..Default::default()
    };
    let sys = conformance::discover(&d, &c, &req).await;
    let tables = sys
        .schema("information_schema")
        .expect("information_schema")
        .table("TABLES")
        .expect("TABLES");
    assert_eq!(tables.kind, TableKind::SystemView);
    assert_eq!(tables.estimated_rows, None);
    assert!(tables.column("TABLE_NAME").is_some());
    assert!(sys.schema("mysql").expect("mysql").table("user").is_some());
}

#[tokio::test]
async fn statistics_and_configured_schema() {
    let Some(fx) = matih_connector_testkit::fixture("MYSQL", "statistics_and_configured_schema")
    else {
        return;
    };
    let d = driver();
    let c = case(&fx, SslMode::Disable);
    let req = DiscoveryRequest {
        statistics: false,
        schemas: only(&["matih_seed"]),
        ..Default::default()
    };
    let catalog = conformance::discover(&d, &c, &req).await;
    let s = catalog.schema("matih_seed").unwrap();
    assert!(s
        .tables
        .iter()
        .all(|t| t.estimated_rows.is_none() && t.size_bytes.is_none()));
    assert!(!s.table("order").unwrap().columns.is_empty());

    // `schema` limits discovery to that database; `database` stays the one connected to.
    let only_sales = c.with_cfg(|c| c.schema = Some("Sales Data".into()));
    let catalog = conformance::discover(&d, &only_sales, &DiscoveryRequest::default()).await;
    assert_eq!(
        catalog
            .schemas
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>(),
        ["Sales Data"]
    );
    conformance::assert_test_succeeds(&d, &only_sales).await;

    // No database configured: discovery still lists every database.
    let no_db = c.with_cfg(|c| c.database = None);
    let catalog = conformance::discover(
        &d,
        &no_db,
        &DiscoveryRequest::default().with_depth(Depth::Schemas),
    )
    .await;
    for name in ["matih_seed", "Sales Data", "données_été", "odd%_db"] {
        assert!(catalog.schema(name).is_some(), "{name}");
    }
}

/// A full discovery reads on two sessions: the second is opened by the first
/// discovery and kept for the next. A login allowed one session at a time
/// gets the same catalog from one.
#[tokio::test]
async fn full_discovery_on_two_sessions_or_on_one() {
    let Some(fx) = matih_connector_testkit::fixture("MYSQL", "full_discovery_on_two_sessions")
    else {
        return;
    };
    let upstream: SocketAddr = format!("{}:{}", fx.require("HOST"), fx.port())
        .parse()
        .unwrap();
    let (port, seen) = sniffing_proxy(upstream).await;
    let c = case(&fx, SslMode::Disable).with_cfg(|c| {
        c.host = Some("127.0.0.1".into());
        c.port = Some(port);
    });
    let req = DiscoveryRequest {
        schemas: only(&["matih_seed"]),
        ..Default::default()
    };
    let egress = EgressPolicy::allow_all();
    let mut conn = open(&driver(), &c.cfg, &c.creds, &egress).await.unwrap();
    let first = conn.discover(&req).await.unwrap();
    let again = conn.discover(&req).await.unwrap();
    conn.close().await.unwrap();
    assert_eq!(first, again);
    assert_eq!(
        seen.lock().unwrap().len(),
        2,
        "the connection's session and one more, kept between discoveries"
    );
    let seed = first.schema("matih_seed").unwrap();
    assert_eq!(
        seed.table("order_items").unwrap().primary_key,
        ["order_id", "line_no"]
    );

    let mut admin = mysql_async::Conn::new(common::raw_opts(
        &fx,
        fx.require("USER"),
        fx.require("PASSWORD"),
    ))
    .await
    .unwrap();
    let user = matih_connector_testkit::unique_name("one_session");
    let accounts = ["%", "127.0.0.1"].map(|h| format!("'{user}'@'{h}'"));
    for account in &accounts {
        admin
            .query_drop(format!(
                "CREATE USER {account} IDENTIFIED BY '{user}' WITH MAX_USER_CONNECTIONS 1; \
                 GRANT SELECT ON `matih_seed`.* TO {account}"
            ))
            .await
            .unwrap();
    }
    let one = case(&fx, SslMode::Disable).with_cfg(|c| c.database = None);
    let one = Case::new(
        one.cfg,
        Credentials::new()
            .with("username", user.as_str())
            .with("password", user.as_str()),
    );
    let mut conn = open(&driver(), &one.cfg, &one.creds, &egress)
        .await
        .unwrap();
    // The server refuses this login a second session while the first is open.
    let refused = mysql_async::Conn::new(common::raw_opts(&fx, &user, &user)).await;
    let alone = conn.discover(&req).await;
    let alone_again = conn.discover(&req).await;
    conn.close().await.unwrap();
    for account in &accounts {
        admin
            .query_drop(format!("DROP USER {account}"))
            .await
            .unwrap();
    }
    admin.disconnect().await.unwrap();
    match refused {
        Err(mysql_async::Error::Server(e)) => assert_eq!(e.code, 1226, "{e}"),
        other => panic!("a second session was not refused: {other:?}"),
    }
    assert_eq!(alone.unwrap(), first);
    assert_eq!(alone_again.unwrap(), first);
}

// ---------------------------------------------------------------------------
// The seeded catalog, table by table
// ---------------------------------------------------------------------------

/// name, native type (MariaDB's spelling), normalized type, nullable, default, comment
type Col = (
    &'static str,
    &'static str,
    &'static str,
    bool,
    Option<&'static str>,
    Option<&'static str>,
);

fn assert_columns(table: &Table, want: &[Col], mariadb: bool) {
    let got: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
    let expected: Vec<&str> = want.iter().map(|c| c.0).collect();
    assert_eq!(got, expected, "{}: column names in order", table.name);
    for (i, (name, native, normalized, nullable, default, comment)) in want.iter().enumerate() {
        let c = &table.columns[i];
        let at = format!("{}.{name}", table.name);
        assert_eq!(c.ordinal as usize, i + 1, "{at} ordinal");
        assert_eq!(
            c.data_type,
            normalized.parse::<DataType>().unwrap(),
            "{at} type"
        );
        assert_eq!(c.nullable, *nullable, "{at} nullable");
        assert_eq!(c.comment.as_deref(), *comment, "{at} comment");
        if mariadb {
            // MySQL 8 spells integer types without display widths and JSON as json.
            assert_eq!(c.native_type, *native, "{at} native type");
        }
        assert_eq!(c.default.as_deref(), *default, "{at} default");
    }
}

#[tokio::test]
async fn seeded_catalog_table_by_table() {
    let Some(fx) = matih_connector_testkit::fixture("MYSQL", "seeded_catalog_table_by_table")
    else {
        return;
    };
    let d = driver();
    let c = case(&fx, SslMode::Disable);
    let version = conformance::assert_test_succeeds(&d, &c)
        .await
        .server_version
        .unwrap();
    let mariadb = version.contains("MariaDB");
    let catalog = conformance::discover(&d, &c, &DiscoveryRequest::default()).await;

    let seed = catalog.schema("matih_seed").expect("matih_seed");
    let mut names = vec![
        "MixedCase",
        "all_types",
        "back`tick",
        "defaults_demo",
        "events_partitioned",
        "no_pk_log",
        "order",
        "order_items",
        "order_summary",
        "quote'and\"double",
        "rate%_2024",
        "rateX_2024",
        "select",
        "v all types",
        "with space",
        "ünïcödé_表",
    ];
    names.sort();
    assert_eq!(table_names(&catalog, "matih_seed"), names);

    // all_types: every common type.
    let t = seed.table("all_types").unwrap();
    assert_eq!(t.kind, TableKind::Table);
    assert_eq!(t.primary_key, ["id"]);
    assert_eq!(
        t.comment.as_deref(),
        Some("one column of every common type")
    );
    assert_eq!(t.estimated_rows, Some(3));
    assert!(t.size_bytes.unwrap() > 0);
    assert_eq!(
        t.properties.get("engine").and_then(|v| v.as_str()),
        Some("InnoDB")
    );
    let json_native = if mariadb { "longtext" } else { "json" };
    let mut all_types: Vec<Col> = vec![
        (
            "id",
            "int(10) unsigned",
            "int64",
            false,
            None,
            Some("surrogate key"),
        ),
        ("c_bool", "tinyint(1)", "boolean", false, Some("0"), None),
        ("c_tinyint", "tinyint(4)", "int8", true, None, None),
        (
            "c_tinyint_u",
            "tinyint(3) unsigned",
            "int16",
            true,
            None,
            None,
        ),
        ("c_smallint", "smallint(6)", "int16", true, None, None),
        (
            "c_smallint_u",
            "smallint(5) unsigned",
            "int32",
            true,
            None,
            None,
        ),
        ("c_mediumint", "mediumint(9)", "int32", true, None, None),
        (
            "c_mediumint_u",
            "mediumint(8) unsigned",
            "int32",
            true,
            None,
            None,
        ),
        ("c_int", "int(11)", "int32", true, None, None),
        ("c_int_u", "int(10) unsigned", "int64", true, None, None),
        ("c_bigint", "bigint(20)", "int64", true, None, None),
        (
            "c_bigint_u",
            "bigint(20) unsigned",
            "decimal(20,0)",
            true,
            None,
            None,
        ),
        (
            "c_decimal",
            "decimal(10,2)",
            "decimal(10,2)",
            false,
            Some("0.00"),
            None,
        ),
        (
            "c_decimal_38",
            "decimal(38,0)",
            "decimal(38,0)",
            true,
            None,
            None,
        ),
        ("c_float", "float", "float32", true, None, None),
        ("c_double", "double", "float64", true, None, None),
        ("c_bit1", "bit(1)", "boolean", true, None, None),
        ("c_bit8", "bit(8)", "binary", true, None, None),
        ("c_char", "char(3)", "string", true, None, None),
        (
            "c_varchar",
            "varchar(255)",
            "string",
            true,
            Some("'it''s'"),
            None,
        ),
        ("c_tinytext", "tinytext", "string", true, None, None),
        ("c_text", "text", "string", true, None, None),
        ("c_mediumtext", "mediumtext", "string", true, None, None),
        ("c_longtext", "longtext", "string", true, None, None),
        ("c_binary", "binary(16)", "binary", true, None, None),
        ("c_varbinary", "varbinary(64)", "binary", true, None, None),
        ("c_tinyblob", "tinyblob", "binary", true, None, None),
        ("c_blob", "blob", "binary", true, None, None),
        ("c_mediumblob", "mediumblob", "binary", true, None, None),
        ("c_longblob", "longblob", "binary", true, None, None),
        (
            "c_enum",
            "enum('small','medium','large')",
            "string",
            false,
            Some("'medium'"),
            None,
        ),
        ("c_set", "set('a','b','c')", "string", true, None, None),
        (
            "c_json",
            json_native,
            "json",
            true,
            None,
            Some("MariaDB: longtext with a json_valid() check"),
        ),
        ("c_date", "date", "date", true, None, None),
        ("c_time", "time", "time", true, None, None),
        ("c_datetime", "datetime(6)", "timestamp", true, None, None),
        (
            "c_timestamp",
            "timestamp",
            "timestamp_tz",
            true,
            Some(if mariadb {
                "current_timestamp()"
            } else {
                "CURRENT_TIMESTAMP"
            }),
            None,
        ),
        ("c_year", "year(4)", "int16", true, None, None),
        ("c_geometry", "geometry", "binary", true, None, None),
        ("c_point", "point", "binary", true, None, None),
    ];
    if mariadb {
        all_types.push(("c_uuid", "uuid", "uuid", true, None, None));
        all_types.push(("c_inet6", "inet6", "string", true, None, None));
    }
    assert_columns(t, &all_types, mariadb);

    // Reserved words; a string default that reads NULL; DEFAULT NULL is no default.
    let t = seed.table("order").unwrap();
    assert_eq!((t.kind, t.estimated_rows), (TableKind::Table, Some(4)));
    assert_eq!(t.primary_key, ["select"]);
    assert_eq!(t.comment.as_deref(), Some("reserved words everywhere"));
    assert_columns(
        t,
        &[
            (
                "select",
                "int(11)",
                "int32",
                false,
                None,
                Some("reserved word as a column"),
            ),
            ("user", "varchar(40)", "string", false, Some("'NULL'"), None),
            ("from", "date", "date", true, None, None),
            (
                "group",
                "decimal(5,2)",
                "decimal(5,2)",
                true,
                Some("-1.50"),
                None,
            ),
        ],
        mariadb,
    );
    let t = seed.table("select").unwrap();
    assert_eq!(t.primary_key, ["key"]);
    assert_eq!(t.estimated_rows, Some(0));
    assert_columns(
        t,
        &[
            ("key", "varchar(10)", "string", false, None, None),
            ("value", "text", "string", true, None, None),
        ],
        mariadb,
    );

    // The primary key in key order, not column order.
    let t = seed.table("order_items").unwrap();
    assert_eq!(t.primary_key, ["order_id", "line_no"]);
    assert_eq!(t.estimated_rows, Some(6));
    assert_eq!(t.comment.as_deref(), Some("lines of an order"));
    assert_columns(
        t,
        &[
            (
                "line_no",
                "smallint(5) unsigned",
                "int32",
                false,
                None,
                None,
            ),
            ("order_id", "int(11)", "int32", false, None, None),
            ("sku", "varchar(32)", "string", false, None, None),
            ("qty", "int(11)", "int32", false, Some("1"), None),
            ("price", "decimal(10,2)", "decimal(10,2)", false, None, None),
        ],
        mariadb,
    );

    // No primary key (a unique key is not one); MyISAM counts rows exactly.
    let t = seed.table("no_pk_log").unwrap();
    assert!(t.primary_key.is_empty());
    assert_eq!(t.estimated_rows, Some(5));
    assert!(t.size_bytes.unwrap() > 0);
    assert_eq!(
        t.properties.get("engine").and_then(|v| v.as_str()),
        Some("MyISAM")
    );
    assert_columns(
        t,
        &[
            ("at", "datetime(6)", "timestamp", false, None, None),
            ("message", "text", "string", true, None, None),
            (
                "level",
                "enum('info','warn','error')",
                "string",
                true,
                Some("'info'"),
                None,
            ),
        ],
        mariadb,
    );

    let t = seed.table("defaults_demo").unwrap();
    assert_columns(
        t,
        &[
            ("id", "int(11)", "int32", false, None, None),
            (
                "d_string",
                "varchar(20)",
                "string",
                true,
                Some("'hello'"),
                None,
            ),
            ("d_null", "varchar(10)", "string", true, None, None),
            (
                "d_null_text",
                "varchar(10)",
                "string",
                true,
                Some("'NULL'"),
                None,
            ),
            ("d_empty", "varchar(10)", "string", true, Some("''"), None),
            (
                "d_quote",
                "varchar(10)",
                "string",
                true,
                Some("'it''s'"),
                None,
            ),
            (
                "d_backslash",
                "varchar(10)",
                "string",
                true,
                Some("'C:\\\\tmp'"),
                None,
            ),
            ("d_int", "int(11)", "int32", true, Some("42"), None),
            (
                "d_decimal",
                "decimal(5,2)",
                "decimal(5,2)",
                true,
                Some("-1.50"),
                None,
            ),
            (
                "d_now",
                "timestamp",
                "timestamp_tz",
                true,
                Some(if mariadb {
                    "current_timestamp()"
                } else {
                    "CURRENT_TIMESTAMP"
                }),
                None,
            ),
            ("d_expr", "int(11)", "int32", true, Some("(1 + 1)"), None),
            (
                "d_datetime",
                "datetime",
                "timestamp",
                true,
                Some("'2024-01-01 00:00:00'"),
                None,
            ),
            ("d_bit", "bit(1)", "boolean", true, Some("b'1'"), None),
            ("d_enum", "enum('x','y')", "string", true, Some("'y'"), None),
            ("d_none", "int(11)", "int32", false, None, None),
        ],
        mariadb,
    );

    // Hostile names.
    let t = seed.table("MixedCase").unwrap();
    assert_eq!(t.primary_key, ["Id"]);
    assert_columns(
        t,
        &[
            ("Id", "int(11)", "int32", false, None, None),
            ("CamelCol", "varchar(10)", "string", true, None, None),
            ("lower", "varchar(10)", "string", true, None, None),
        ],
        mariadb,
    );
    let t = seed.table("with space").unwrap();
    assert_eq!(t.primary_key, ["col with space"]);
    assert_columns(
        t,
        &[
            ("col with space", "int(11)", "int32", false, None, None),
            ("other col", "varchar(5)", "string", true, None, None),
        ],
        mariadb,
    );
    let t = seed.table("back`tick").unwrap();
    assert_eq!(t.primary_key, ["a`b"]);
    assert_columns(
        t,
        &[(
            "a`b",
            "int(11)",
            "int32",
            false,
            None,
            Some("a backtick in a column name"),
        )],
        mariadb,
    );
    let t = seed.table("quote'and\"double").unwrap();
    assert!(t.primary_key.is_empty());
    assert_columns(
        t,
        &[
            ("it's", "varchar(10)", "string", true, None, None),
            ("say \"hi\"", "varchar(10)", "string", true, None, None),
        ],
        mariadb,
    );
    let t = seed.table("ünïcödé_表").unwrap();
    assert_eq!(t.primary_key, ["prénom"]);
    assert_eq!(t.comment.as_deref(), Some("unicode 表"));
    assert_columns(
        t,
        &[
            (
                "prénom",
                "varchar(50)",
                "string",
                false,
                None,
                Some("l'été — summer"),
            ),
            ("名前", "varchar(50)", "string", true, None, None),
        ],
        mariadb,
    );
    for name in ["rate%_2024", "rateX_2024"] {
        let t = seed.table(name).unwrap();
        assert_eq!(t.primary_key, ["id"]);
        assert_columns(t, &[("id", "int(11)", "int32", false, None, None)], mariadb);
    }

    // Partitioned: one entry for the table, partitions are not tables here.
    let t = seed.table("events_partitioned").unwrap();
    assert_eq!(t.kind, TableKind::Partitioned);
    assert_eq!(t.primary_key, ["id", "created"]);
    assert_eq!(t.estimated_rows, Some(3));
    assert!(t.size_bytes.unwrap() > 0);
    assert_eq!(t.comment.as_deref(), Some("partitioned by year"));
    assert_columns(
        t,
        &[
            ("id", "bigint(20)", "int64", false, None, None),
            ("created", "date", "date", false, None, None),
            ("payload", "varchar(100)", "string", true, None, None),
        ],
        mariadb,
    );

    // Views: no statistics, no keys, no comment; columns typed.
    let t = seed.table("order_summary").unwrap();
    assert_eq!(t.kind, TableKind::View);
    assert_eq!(
        (t.estimated_rows, t.size_bytes, t.comment.as_deref()),
        (None, None, None)
    );
    assert!(t.primary_key.is_empty());
    let cols: Vec<(&str, String)> = t
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.data_type.to_string()))
        .collect();
    assert_eq!(
        cols,
        [
            ("order_no", "int32".to_owned()),
            ("customer", "string".to_owned()),
            ("lines", "int64".to_owned()),
            ("total", "decimal(42,2)".to_owned())
        ]
    );
    let t = seed.table("v all types").unwrap();
    assert_eq!(t.kind, TableKind::View);
    assert_eq!(
        t.columns
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>(),
        ["id", "c_varchar"]
    );

    // The other databases.
    let sales = catalog.schema("Sales Data").expect("Sales Data");
    assert_eq!(
        table_names(&catalog, "Sales Data"),
        ["Q1 Revenue", "Top Customers", "customers"]
    );
    let t = sales.table("Q1 Revenue").unwrap();
    assert_eq!(t.primary_key, ["Region Name", "Booked At"]);
    assert_eq!(t.estimated_rows, Some(2));
    assert_eq!(t.comment.as_deref(), Some("first quarter"));
    assert_columns(
        t,
        &[
            ("Region Name", "varchar(40)", "string", false, None, None),
            (
                "Amount",
                "decimal(12,2)",
                "decimal(12,2)",
                false,
                Some("0.00"),
                None,
            ),
            ("Booked At", "datetime", "timestamp", false, None, None),
        ],
        mariadb,
    );
    let t = sales.table("customers").unwrap();
    assert_eq!(t.primary_key, ["id"]);
    assert_eq!(t.estimated_rows, Some(2));
    assert_columns(
        t,
        &[
            (
                "id",
                "bigint(20) unsigned",
                "decimal(20,0)",
                false,
                None,
                None,
            ),
            ("email", "varchar(255)", "string", false, None, None),
            ("Full Name", "varchar(100)", "string", true, None, None),
        ],
        mariadb,
    );
    assert_eq!(sales.table("Top Customers").unwrap().kind, TableKind::View);

    let t = catalog
        .schema("données_été")
        .expect("données_été")
        .table("clients_été")
        .unwrap();
    assert_eq!(t.estimated_rows, Some(1));
    assert_columns(
        t,
        &[
            ("id", "int(11)", "int32", false, None, None),
            (
                "ville",
                "varchar(60)",
                "string",
                true,
                None,
                Some("ville d'été"),
            ),
        ],
        mariadb,
    );
    assert_eq!(table_names(&catalog, "odd%_db"), ["t"]);
}
