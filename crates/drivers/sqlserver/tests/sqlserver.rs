//! SQL Server driver tests.
//!
//! No SQL Server can run on the build machine, so two kinds of tests live here:
//!
//! - Tests against a **TDS protocol fake** written below (`tds_fake`): a
//!   loopback listener that answers PRELOGIN with ENCRYPTION=NOT_SUP and then
//!   answers LOGIN7 with an ERROR token (a real SQL Server error number, class
//!   14) and a DONE token, exactly as SQL Server does for a failed login. It
//!   proves the login-failure paths through the real tiberius client and our
//!   error mapping; it proves nothing about discovery SQL.
//! - Conformance and seed-catalog tests against a real server, run where the
//!   `MATIH_TEST_SQLSERVER_*` variables point at one (the `sqlserver` compose
//!   service, seeded with tests/fixtures/sqlserver/seed.sql); they skip here.

use matih_connector_core::{
    ConnectionConfig, Credentials, DataType, ErrorCode, SslMode, Step, TableKind, Timeouts,
};
use matih_connector_testkit::conformance::{self, Case};
use matih_driver_sqlserver::SqlserverDriver;

mod tds_fake {
    //! The TDS protocol fake: just enough of MS-TDS to refuse a login.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    const PACKET_TABULAR_RESULT: u8 = 0x04;
    const TOKEN_ERROR: u8 = 0xAA;
    const TOKEN_DONE: u8 = 0xFD;

    async fn read_packet(s: &mut TcpStream) -> std::io::Result<(u8, Vec<u8>)> {
        let mut header = [0u8; 8];
        s.read_exact(&mut header).await?;
        let len = u16::from_be_bytes([header[2], header[3]]) as usize;
        let mut body = vec![0u8; len.saturating_sub(8)];
        s.read_exact(&mut body).await?;
        Ok((header[0], body))
    }

    async fn write_packet(s: &mut TcpStream, body: &[u8]) -> std::io::Result<()> {
        let len = (body.len() + 8) as u16;
        let mut p = vec![PACKET_TABULAR_RESULT, 0x01];
        p.extend_from_slice(&len.to_be_bytes());
        p.extend_from_slice(&[0, 0, 1, 0]);
        p.extend_from_slice(body);
        s.write_all(&p).await?;
        s.flush().await
    }

    /// PRELOGIN response: VERSION 16.0 and ENCRYPTION = NOT_SUP (0x02).
    fn prelogin_response() -> Vec<u8> {
        let mut b = vec![0x00, 0x00, 11, 0x00, 6, 0x01, 0x00, 17, 0x00, 1, 0xFF];
        b.extend_from_slice(&[16, 0, 0x0F, 0xA0, 0, 0]);
        b.push(0x02);
        b
    }

    fn utf16(s: &str) -> Vec<u8> {
        s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect()
    }

    /// ERROR token (number, state 1, class 14) followed by DONE with DONE_ERROR.
    fn login_error(number: u32, message: &str) -> Vec<u8> {
        let mut t = Vec::new();
        t.extend_from_slice(&number.to_le_bytes());
        t.push(1);
        t.push(14);
        t.extend_from_slice(&(message.encode_utf16().count() as u16).to_le_bytes());
        t.extend_from_slice(&utf16(message));
        let server = "matih-fake";
        t.push(server.encode_utf16().count() as u8);
        t.extend_from_slice(&utf16(server));
        t.push(0);
        t.extend_from_slice(&1u32.to_le_bytes());
        let mut b = vec![TOKEN_ERROR];
        b.extend_from_slice(&(t.len() as u16).to_le_bytes());
        b.extend_from_slice(&t);
        b.push(TOKEN_DONE);
        b.extend_from_slice(&0x0002u16.to_le_bytes());
        b.extend_from_slice(&0u16.to_le_bytes());
        b.extend_from_slice(&0u64.to_le_bytes());
        b
    }

    /// Starts the fake; every login is refused with `number` and `message`.
    pub async fn start(number: u32, message: &'static str) -> (u16, tokio::task::JoinHandle<()>) {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = l.local_addr().expect("addr").port();
        let task = tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let Ok((0x12, _)) = read_packet(&mut s).await else {
                        return;
                    };
                    if write_packet(&mut s, &prelogin_response()).await.is_err() {
                        return;
                    }
                    let Ok((0x10, _)) = read_packet(&mut s).await else {
                        return;
                    };
                    let _ = write_packet(&mut s, &login_error(number, message)).await;
                    let mut rest = Vec::new();
                    let _ = s.read_to_end(&mut rest).await;
                });
            }
        });
        (port, task)
    }
}

fn case(port: u16) -> Case {
    Case::new(
        ConnectionConfig {
            host: Some("127.0.0.1".into()),
            port: Some(port),
            database: Some("matih_seed".into()),
            ssl_mode: Some(matih_connector_core::SslMode::Disable),
            timeouts: Timeouts {
                connect_ms: 5_000,
                query_ms: 5_000,
            },
            ..Default::default()
        },
        Credentials::new()
            .with("username", "fake_login")
            .with("password", "wrong-password-xyz"),
    )
}

#[tokio::test]
async fn tds_fake_login_failed_is_authentication_failed() {
    let (port, task) = tds_fake::start(18456, "Login failed for user 'fake_login'.").await;
    let r = conformance::assert_test_fails(
        &SqlserverDriver::new(),
        &case(port),
        Step::Connect,
        ErrorCode::AuthenticationFailed,
    )
    .await;
    let msg = r.message.clone();
    assert!(msg.contains("18456"), "{msg}");
    // The login name is a credential: redacted from the server's message.
    assert!(!msg.contains("fake_login") && msg.contains("***"), "{msg}");
    task.abort();
}

#[tokio::test]
async fn tds_fake_cannot_open_database_is_database_not_found() {
    let (port, task) = tds_fake::start(
        4060,
        "Cannot open database \"matih_seed\" requested by the login. The login failed.",
    )
    .await;
    conformance::assert_test_fails(
        &SqlserverDriver::new(),
        &case(port),
        Step::Connect,
        ErrorCode::DatabaseNotFound,
    )
    .await;
    task.abort();
}

#[tokio::test]
async fn tds_fake_server_principal_without_access_is_permission_denied() {
    let (port, task) = tds_fake::start(916, "The server principal \"x\" is not able to access the database \"matih_seed\" under the current security context.").await;
    conformance::assert_test_fails(
        &SqlserverDriver::new(),
        &case(port),
        Step::Connect,
        ErrorCode::PermissionDenied,
    )
    .await;
    task.abort();
}

#[tokio::test]
async fn tds_fake_declining_encryption_fails_tls_modes() {
    // The fake answers ENCRYPTION=NOT_SUP: every mode that needs TLS must
    // fail before the login packet (and its password) is sent.
    let (port, task) = tds_fake::start(18456, "Login failed for user 'fake_login'.").await;
    for mode in [SslMode::Require, SslMode::VerifyCa, SslMode::VerifyFull] {
        let c = case(port).with_cfg(|c| c.ssl_mode = Some(mode));
        conformance::assert_test_fails(
            &SqlserverDriver::new(),
            &c,
            Step::Connect,
            ErrorCode::SslHandshakeFailed,
        )
        .await;
    }
    task.abort();
}

#[tokio::test]
async fn closed_port_unresolvable_host_and_silent_listener() {
    let d = SqlserverDriver::new();
    let good = case(1433);
    let refused = good.with_cfg(|c| c.port = Some(conformance::closed_port()));
    conformance::assert_test_fails(&d, &refused, Step::Tcp, ErrorCode::ConnectionRefused).await;
    let dns = good.with_cfg(|c| c.host = Some("no-such-host.matih.invalid".into()));
    conformance::assert_test_fails(&d, &dns, Step::Dns, ErrorCode::DnsResolutionFailed).await;
    let (port, task) = conformance::silent_listener().await;
    let silent = good.with_cfg(|c| {
        c.port = Some(port);
        c.timeouts = Timeouts {
            connect_ms: 700,
            query_ms: 700,
        };
    });
    let started = std::time::Instant::now();
    conformance::assert_test_fails(&d, &silent, Step::Connect, ErrorCode::Timeout).await;
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    task.abort();
}

#[tokio::test]
async fn invalid_configuration_before_io() {
    let d = SqlserverDriver::new();
    let c = case(1433).with_cfg(|c| {
        c.metadata
            .insert("warehouse".into(), serde_json::json!("x"));
    });
    conformance::assert_test_fails(&d, &c, Step::Validate, ErrorCode::InvalidConfiguration).await;
}

// ---- real server (compose service `sqlserver`) ----

/// The real server's variables, when someone exported them. Not
/// `matih_connector_testkit::fixture`: no fixture for this server can start on
/// a machine without Docker, so `MATIH_REQUIRE_FIXTURES=1` (set by
/// `cargo xtask test-drivers`) must not turn its absence into a failure.
fn real_server(test: &str) -> Option<matih_connector_testkit::Fixture> {
    let fx = matih_connector_testkit::Fixture::from_env("SQLSERVER");
    if fx.is_none() {
        eprintln!(
            "SKIP {test}: MATIH_TEST_SQLSERVER_HOST is not set; this needs a real server: \
             start the compose service `sqlserver` (tests/fixtures/compose.yaml) and export MATIH_TEST_SQLSERVER_*"
        );
    }
    fx
}

fn real_case(fx: &matih_connector_testkit::Fixture) -> Case {
    Case::new(
        ConnectionConfig {
            host: Some(fx.require("HOST").into()),
            port: Some(fx.port()),
            database: Some(fx.require("DATABASE").into()),
            ssl_mode: Some(matih_connector_core::SslMode::Require),
            ..Default::default()
        },
        Credentials::new()
            .with("username", fx.require("USER"))
            .with("password", fx.require("PASSWORD")),
    )
}

#[tokio::test]
async fn real_server_conformance() {
    let Some(fx) = real_server("real_server_conformance") else {
        return;
    };
    let d = SqlserverDriver::new();
    let good = real_case(&fx);
    let r = conformance::assert_test_succeeds(&d, &good).await;
    assert!(r.server_version.unwrap().contains("SQL Server"));
    conformance::assert_test_fails(
        &d,
        &good.with_cred("password", "wrong-Passw0rd!"),
        Step::Connect,
        ErrorCode::AuthenticationFailed,
    )
    .await;
    conformance::assert_test_fails(
        &d,
        &good.with_cfg(|c| c.database = Some("matih_no_such_db".into())),
        Step::Connect,
        ErrorCode::DatabaseNotFound,
    )
    .await;
    // The server's self-signed certificate is not trusted under verify-full.
    let untrusted = good.with_cfg(|c| c.ssl_mode = Some(matih_connector_core::SslMode::VerifyFull));
    conformance::assert_test_fails(&d, &untrusted, Step::Connect, ErrorCode::SslHandshakeFailed)
        .await;
    conformance::assert_discovery_filters(&d, &good, "sales", "orders").await;
}

#[tokio::test]
async fn real_server_seed_catalog() {
    let Some(fx) = real_server("real_server_seed_catalog") else {
        return;
    };
    let d = SqlserverDriver::new();
    let c = conformance::discover(&d, &real_case(&fx), &Default::default()).await;
    let sales = c.schema("sales").expect("schema sales");
    let orders = sales.table("orders").expect("sales.orders");
    assert_eq!(orders.kind, TableKind::Table);
    assert_eq!(orders.primary_key, vec!["id"]);
    assert_eq!(orders.estimated_rows, Some(3));
    assert!(orders.size_bytes.unwrap_or(0) > 0);
    assert_eq!(orders.comment.as_deref(), Some("Customer orders"));
    let cols: Vec<(&str, &str, DataType, bool)> = orders
        .columns
        .iter()
        .map(|c| {
            (
                c.name.as_str(),
                c.native_type.as_str(),
                c.data_type.clone(),
                c.nullable,
            )
        })
        .collect();
    assert_eq!(
        cols,
        vec![
            ("id", "int", DataType::Int32, false),
            ("customer", "nvarchar(100)", DataType::String, false),
            ("amount", "decimal(10,2)", DataType::decimal(10, 2), true),
            ("placed_at", "datetime2(7)", DataType::Timestamp, true),
            ("status", "varchar(20)", DataType::String, true),
        ]
    );
    assert_eq!(
        orders.column("status").unwrap().default.as_deref(),
        Some("('new')")
    );
    let v = sales.table("order_totals").expect("sales.order_totals");
    assert_eq!(v.kind, TableKind::View);
    let weird = c.schema("Weird \"Schema\"").expect("hostile schema name");
    assert!(weird.table("select").is_some(), "reserved-word table");
    assert!(weird.table("tbl ünï").is_some(), "unicode table");
}
