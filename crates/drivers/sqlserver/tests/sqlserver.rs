//! SQL Server driver tests.
//!
//! No SQL Server can run on the build machine, so two kinds of tests live here:
//!
//! - Tests against a **TDS protocol fake** written below (`tds_fake`): a
//!   loopback listener with a tiny catalog (logins with passwords, databases
//!   with the logins that may open them). It answers PRELOGIN with
//!   ENCRYPTION=NOT_SUP, checks LOGIN7's password and database and answers as
//!   SQL Server documents: a wrong password gets ERROR 18456; a database that
//!   does not exist, or that the login may not open, gets ERROR 4060 followed
//!   by ERROR 18456 (the server does not tell the two apart at login); a good
//!   login gets DONE, and the one query it understands afterwards is the
//!   driver's database-access question (answered from its catalog). It
//!   proves the login-failure paths through the real tiberius client and our
//!   error mapping; it proves nothing about discovery SQL.
//! - Conformance and seed-catalog tests against a real server (the
//!   `sqlserver` compose service, mcr.microsoft.com/mssql/server, seeded with
//!   tests/fixtures/sqlserver/seed.sql), started by
//!   `cargo xtask test-drivers --only sqlserver --fixtures docker` where a
//!   Docker engine runs. Elsewhere xtask declares the fixture unavailable and
//!   they are reported NOT PROVEN, never passed.

use matih_connector_core::{
    ConnectionConfig, Credentials, DataType, ErrorCode, SslMode, Step, TableKind, Timeouts,
};
use matih_connector_testkit::conformance::{self, Case, FailureCases};
use matih_driver_sqlserver::SqlserverDriver;

const FAKE: &str = "TDS protocol fake (SQL Server login and one catalog query)";

mod tds_fake {
    //! The TDS protocol fake: just enough of MS-TDS to answer logins the way
    //! SQL Server does, and one query.
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    const PACKET_TABULAR_RESULT: u8 = 0x04;
    const PACKET_SQL_BATCH: u8 = 0x01;
    const PACKET_RPC: u8 = 0x03;
    const TOKEN_COLMETADATA: u8 = 0x81;
    const TOKEN_ROW: u8 = 0xD1;
    const TOKEN_ERROR: u8 = 0xAA;
    const TOKEN_DONE: u8 = 0xFD;
    const INTN: u8 = 0x26;

    /// What the fake server knows.
    #[derive(Clone, Debug, Default)]
    pub struct Catalog {
        /// Login → password.
        pub logins: BTreeMap<String, String>,
        /// Database → logins with a user in it. `master` is always there and
        /// open to every login, as on SQL Server.
        pub databases: BTreeMap<String, Vec<String>>,
    }

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

    fn from_utf16(b: &[u8]) -> String {
        let units: Vec<u16> = b
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        String::from_utf16_lossy(&units)
    }

    /// A LOGIN7 string field: offset and length (in characters) at `at`,
    /// offsets from the start of the LOGIN7 body (MS-TDS 2.2.6.4).
    fn field(login: &[u8], at: usize) -> Option<&[u8]> {
        let off = u16::from_le_bytes([*login.get(at)?, *login.get(at + 1)?]) as usize;
        let len = u16::from_le_bytes([*login.get(at + 2)?, *login.get(at + 3)?]) as usize;
        login.get(off..off + len * 2)
    }

    /// LOGIN7's user, password (de-obfuscated: each byte XOR 0xA5, then the
    /// nibbles swapped back) and database.
    fn parse_login(login: &[u8]) -> Option<(String, String, String)> {
        let user = from_utf16(field(login, 40)?);
        let password: Vec<u8> = field(login, 44)?
            .iter()
            .map(|b| (b ^ 0xA5).rotate_left(4))
            .collect();
        let database = from_utf16(field(login, 68)?);
        Some((user, from_utf16(&password), database))
    }

    /// One ERROR token (number, state 1, `class`).
    fn error_token(number: u32, class: u8, message: &str) -> Vec<u8> {
        let mut t = Vec::new();
        t.extend_from_slice(&number.to_le_bytes());
        t.push(1);
        t.push(class);
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
        b
    }

    /// DONE with `status` (0x0002 error, 0x0010 count valid) and `rows`.
    fn done(status: u16, rows: u64) -> Vec<u8> {
        let mut b = vec![TOKEN_DONE];
        b.extend_from_slice(&status.to_le_bytes());
        b.extend_from_slice(&0u16.to_le_bytes());
        b.extend_from_slice(&rows.to_le_bytes());
        b
    }

    /// What SQL Server answers a LOGIN7 with, given the catalog.
    fn login_response(cat: &Catalog, user: &str, password: &str, database: &str) -> Vec<u8> {
        let login_failed = format!("Login failed for user '{user}'.");
        if cat.logins.get(user).map(String::as_str) != Some(password) {
            let mut b = error_token(18456, 14, &login_failed);
            b.extend(done(0x0002, 0));
            return b;
        }
        let db = if database.is_empty() {
            "master"
        } else {
            database
        };
        let may_open = db.eq_ignore_ascii_case("master")
            || cat
                .databases
                .get(db)
                .is_some_and(|users| users.iter().any(|u| u == user));
        if may_open {
            return done(0, 0);
        }
        // Missing or not allowed: the same two errors either way.
        let mut b = error_token(
            4060,
            11,
            &format!("Cannot open database \"{db}\" requested by the login. The login failed."),
        );
        b.extend(error_token(18456, 14, &login_failed));
        b.extend(done(0x0002, 0));
        b
    }

    /// The answer to the driver's database-access query: one nullable int
    /// column, the value for the database named in the request.
    fn access_response(cat: &Catalog, user: &str, request: &[u8]) -> Vec<u8> {
        let named = cat.databases.iter().find(|(name, _)| {
            let needle = utf16(name);
            request.windows(needle.len()).any(|w| w == needle)
        });
        let value: Option<i32> = named.map(|(_, users)| i32::from(users.iter().any(|u| u == user)));
        let mut b = vec![TOKEN_COLMETADATA];
        b.extend_from_slice(&1u16.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes()); // user type
        b.extend_from_slice(&0x0001u16.to_le_bytes()); // nullable
        b.extend_from_slice(&[INTN, 4]);
        b.push(0); // unnamed column
        b.push(TOKEN_ROW);
        match value {
            Some(v) => {
                b.push(4);
                b.extend_from_slice(&v.to_le_bytes());
            }
            None => b.push(0),
        }
        b.extend(done(0x0010, 1));
        b
    }

    async fn serve(mut s: TcpStream, cat: Arc<Catalog>) -> Option<()> {
        let (0x12, _) = read_packet(&mut s).await.ok()? else {
            return None;
        };
        write_packet(&mut s, &prelogin_response()).await.ok()?;
        let (0x10, login) = read_packet(&mut s).await.ok()? else {
            return None;
        };
        let (user, password, database) = parse_login(&login)?;
        let answer = login_response(&cat, &user, &password, &database);
        write_packet(&mut s, &answer).await.ok()?;
        loop {
            let (kind, request) = read_packet(&mut s).await.ok()?;
            if kind != PACKET_RPC && kind != PACKET_SQL_BATCH {
                return None;
            }
            write_packet(&mut s, &access_response(&cat, &user, &request))
                .await
                .ok()?;
        }
    }

    /// Starts the fake with `cat`.
    pub async fn start(cat: Catalog) -> (u16, tokio::task::JoinHandle<()>) {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = l.local_addr().expect("addr").port();
        let cat = Arc::new(cat);
        let task = tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                tokio::spawn(serve(s, cat.clone()));
            }
        });
        (port, task)
    }
}

/// The fake's catalog for the login tests: `fake_login` exists (password
/// `right-Passw0rd`), database `matih_seed` exists but only `other_login` has
/// a user in it.
fn fake_catalog() -> tds_fake::Catalog {
    tds_fake::Catalog {
        logins: [
            ("fake_login".to_owned(), "right-Passw0rd".to_owned()),
            ("other_login".to_owned(), "other-Passw0rd".to_owned()),
        ]
        .into(),
        databases: [("matih_seed".to_owned(), vec!["other_login".to_owned()])].into(),
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
    matih_connector_testkit::fake(FAKE, "tds_fake_login_failed_is_authentication_failed");
    let (port, task) = tds_fake::start(fake_catalog()).await;
    let r = conformance::assert_test_fails(
        &SqlserverDriver::new(),
        &case(port),
        Step::Connect,
        ErrorCode::AuthenticationFailed,
    )
    .await;
    let msg = r.message.clone();
    assert!(msg.contains("18456"), "{msg}");
    // The login name is kept for the administrator; the password never shows.
    assert!(msg.contains("fake_login"), "{msg}");
    task.abort();
}

#[tokio::test]
async fn tds_fake_missing_database_is_database_not_found() {
    matih_connector_testkit::fake(FAKE, "tds_fake_missing_database_is_database_not_found");
    let (port, task) = tds_fake::start(fake_catalog()).await;
    // SQL Server answers 4060 then 18456; the driver asks again from
    // `master` and learns the database does not exist.
    let c = case(port)
        .with_cred("password", "right-Passw0rd")
        .with_cfg(|c| c.database = Some("matih_no_such_db".into()));
    let r = conformance::assert_test_fails(
        &SqlserverDriver::new(),
        &c,
        Step::Connect,
        ErrorCode::DatabaseNotFound,
    )
    .await;
    assert!(
        r.message.contains("4060") && r.message.contains("does not exist"),
        "{}",
        r.message
    );
    task.abort();
}

#[tokio::test]
async fn tds_fake_database_the_login_may_not_open_is_permission_denied() {
    matih_connector_testkit::fake(
        FAKE,
        "tds_fake_database_the_login_may_not_open_is_permission_denied",
    );
    let (port, task) = tds_fake::start(fake_catalog()).await;
    // The same 4060 + 18456 at login as for a missing database; the second
    // login learns that matih_seed exists and this login has no user in it.
    let c = case(port).with_cred("password", "right-Passw0rd");
    let r = conformance::assert_test_fails(
        &SqlserverDriver::new(),
        &c,
        Step::Connect,
        ErrorCode::PermissionDenied,
    )
    .await;
    assert!(
        r.message.contains("4060") && r.message.contains("may not open"),
        "{}",
        r.message
    );
    task.abort();
}

#[tokio::test]
async fn tds_fake_good_login_reaches_the_query() {
    matih_connector_testkit::fake(FAKE, "tds_fake_good_login_reaches_the_query");
    let (port, task) = tds_fake::start(fake_catalog()).await;
    // A login the fake accepts gets past Connect: what fails next is the
    // version query, which the fake does not understand (it answers every
    // query with one int). Shows the fake's success path is a real login.
    let c = case(port)
        .with_cred("username", "other_login")
        .with_cred("password", "other-Passw0rd");
    let r = matih_connector_core::run_test(
        &SqlserverDriver::new(),
        &c.cfg,
        &c.creds,
        &matih_connector_core::TestOptions {
            egress: matih_connector_core::EgressPolicy::allow_all(),
            ..Default::default()
        },
    )
    .await;
    assert!(r.step(Step::Connect).is_some_and(|s| s.success), "{r:?}");
    assert_eq!(r.failure().map(|f| f.0), Some(Step::ServerVersion), "{r:?}");
    task.abort();
}

#[tokio::test]
async fn tds_fake_declining_encryption_fails_tls_modes() {
    matih_connector_testkit::fake(FAKE, "tds_fake_declining_encryption_fails_tls_modes");
    // The fake answers ENCRYPTION=NOT_SUP: every mode that needs TLS must
    // fail before the login packet (and its password) is sent.
    let (port, task) = tds_fake::start(fake_catalog()).await;
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

/// The real server, through the testkit's fixture contract: under
/// `MATIH_REQUIRE_FIXTURES=1` its absence fails the test unless xtask
/// declared `SQLSERVER` unavailable (no Docker engine), and then the test is
/// recorded as not proven.
fn real_server(test: &str) -> Option<matih_connector_testkit::Fixture> {
    matih_connector_testkit::fixture("SQLSERVER", test)
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
    // All seven codes from real failures. matih_nopriv is a login without a
    // user in matih_seed: the server answers 4060 + 18456 at login, and the
    // driver's second login (to master) finds HAS_DBACCESS = 0.
    let cases = FailureCases {
        wrong_password: good.with_cred("password", "wrong-Passw0rd!"),
        missing_database: good.with_cfg(|c| c.database = Some("matih_no_such_db".into())),
        no_privilege: good
            .with_cred("username", fx.require("NOPRIV_USER"))
            .with_cred("password", fx.require("NOPRIV_PASSWORD")),
        // The image's self-signed certificate is not trusted under verify-full.
        untrusted_tls: good.with_cfg(|c| c.ssl_mode = Some(SslMode::VerifyFull)),
    };
    conformance::assert_error_codes(&d, &good, &cases, Step::Connect).await;
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
