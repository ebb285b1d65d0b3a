//! Integration tests against the Snowflake fixture: fakesnow 0.12.1, a
//! DuckDB-backed emulator of Snowflake's REST protocol, started by `cargo
//! xtask test-drivers --only snowflake`. It is an emulator, not Snowflake:
//! it accepts any password or JWT and creates a missing database on login, so
//! AUTHENTICATION_FAILED, DATABASE_NOT_FOUND and PERMISSION_DENIED are
//! covered by the unit tests of `errors.rs` (Snowflake's documented payloads)
//! and by the in-test FAKE of the login and query endpoints at the end of this
//! file. The catalog assertions follow tests/fixtures/snowflake/seed.sql table
//! by table.

use matih_connector_core::{
    Catalog, ConnectionConfig, Credentials, DataType, Depth, DiscoveryRequest, ErrorCode,
    NameFilter, SslMode, Step, Table, TableKind,
};
use matih_connector_testkit::conformance::{self, Case};
use matih_connector_testkit::tls_proxy::{assert_tls_modes, TlsProxy};
use matih_connector_testkit::Fixture;
use matih_driver_snowflake::SnowflakeDriver;

fn case(fx: &Fixture) -> Case {
    let cfg: ConnectionConfig = serde_json::from_value(serde_json::json!({
        "host": fx.require("HOST"),
        "port": fx.port(),
        "database": fx.require("DATABASE"),
        // fakesnow speaks plain HTTP.
        "sslEnabled": false,
        "metadata": {"account": fx.get("ACCOUNT").unwrap_or("MATIH")},
    }))
    .unwrap();
    // As in the seed's create example: warehouse and role with the credentials.
    let creds = Credentials::new()
        .with("username", fx.require("USER"))
        .with("password", fx.require("PASSWORD"))
        .with("warehouse", "COMPUTE_WH")
        .with("role", "MATIH_READER");
    Case::new(cfg, creds)
}

fn driver() -> SnowflakeDriver {
    matih_connector_core::tls::install_default_provider();
    SnowflakeDriver::new()
}

fn table<'a>(c: &'a Catalog, schema: &str, name: &str) -> &'a Table {
    c.schema(schema)
        .unwrap_or_else(|| panic!("schema {schema} missing"))
        .table(name)
        .unwrap_or_else(|| panic!("table {schema}.{name} missing"))
}

/// (name, native type, normalized type, nullable) in ordinal order.
fn assert_columns(t: &Table, want: &[(&str, &str, DataType, bool)]) {
    let got: Vec<_> = t
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
    let want: Vec<_> = want
        .iter()
        .map(|(n, nt, dt, nl)| (*n, *nt, dt.clone(), *nl))
        .collect();
    assert_eq!(got, want, "{}", t.name);
    for (i, c) in t.columns.iter().enumerate() {
        assert_eq!(c.ordinal as usize, i + 1);
    }
}

#[tokio::test]
async fn test_succeeds_with_password_and_key_pair() {
    let Some(fx) =
        matih_connector_testkit::fixture("SNOWFLAKE", "test_succeeds_with_password_and_key_pair")
    else {
        return;
    };
    let d = driver();
    let good = case(&fx);
    let r = conformance::assert_test_succeeds(&d, &good).await;
    assert_eq!(
        r.server_version.as_deref(),
        Some("Snowflake 10.0.0"),
        "fakesnow's CURRENT_VERSION()"
    );
    // The emulator ignores the JWT, but the login body built with it is
    // accepted: the key-pair path runs end to end.
    let mut kp = good.clone();
    kp.creds = Credentials::new()
        .with("username", fx.require("USER"))
        .with("privateKey", include_str!("data/test_key.p8"))
        .with("warehouse", "COMPUTE_WH");
    conformance::assert_test_succeeds(&d, &kp).await;
    // The same endpoint given as a URL (private link, proxy).
    let ep = good.with_cfg(|c| {
        c.host = None;
        c.port = None;
        c.metadata.insert(
            "endpoint".into(),
            serde_json::json!(format!("http://{}:{}", fx.require("HOST"), fx.port())),
        );
    });
    conformance::assert_test_succeeds(&d, &ep).await;
}

#[tokio::test]
async fn error_codes_from_real_failures() {
    let Some(fx) = matih_connector_testkit::fixture("SNOWFLAKE", "error_codes_from_real_failures")
    else {
        return;
    };
    let d = driver();
    let good = case(&fx);
    let refused = good.with_cfg(|c| {
        c.host = Some("127.0.0.1".into());
        c.port = Some(conformance::closed_port());
    });
    conformance::assert_test_fails(&d, &refused, Step::Tcp, ErrorCode::ConnectionRefused).await;
    let dns = good.with_cfg(|c| c.host = Some("acme.snowflakecomputing.invalid".into()));
    conformance::assert_test_fails(&d, &dns, Step::Dns, ErrorCode::DnsResolutionFailed).await;
    let (port, listener) = conformance::silent_listener().await;
    let silent = good.with_cfg(|c| {
        c.host = Some("127.0.0.1".into());
        c.port = Some(port);
        c.timeouts = matih_connector_core::Timeouts {
            connect_ms: 700,
            query_ms: 700,
        };
    });
    conformance::assert_test_fails(&d, &silent, Step::Connect, ErrorCode::Timeout).await;
    listener.abort();
    // TLS spoken to the emulator's plain-HTTP port fails the handshake.
    for mode in [SslMode::VerifyFull, SslMode::Require] {
        let tls = good.with_cfg(|c| {
            c.ssl_enabled = None;
            c.ssl_mode = Some(mode);
        });
        conformance::assert_test_fails(&d, &tls, Step::Connect, ErrorCode::SslHandshakeFailed)
            .await;
    }
    // A configured schema that does not exist would fail the probe with
    // DATABASE_NOT_FOUND, but fakesnow creates schemas named at login (and
    // would change the shared seed), so that path is not exercised here.
    // Unknown keys and a missing database are refused before any I/O.
    let no_db = good.with_cfg(|c| c.database = None);
    conformance::assert_test_fails(&d, &no_db, Step::Validate, ErrorCode::InvalidConfiguration)
        .await;
}

#[tokio::test]
async fn discovers_the_seed() {
    let Some(fx) = matih_connector_testkit::fixture("SNOWFLAKE", "discovers_the_seed") else {
        return;
    };
    let d = driver();
    let c = conformance::discover(&d, &case(&fx), &DiscoveryRequest::default()).await;
    let names: Vec<&str> = c.schemas.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        vec!["Analytics 2024", "SALES", "empty_schema"],
        "INFORMATION_SCHEMA hidden"
    );
    assert!(c.schema("empty_schema").unwrap().tables.is_empty());

    let customers = table(&c, "SALES", "CUSTOMERS");
    assert_eq!(customers.kind, TableKind::Table);
    assert_eq!(customers.estimated_rows, Some(3));
    assert_eq!(customers.primary_key, vec!["ID"]);
    assert_eq!(customers.comment.as_deref(), Some("people who buy"));
    assert_columns(
        customers,
        &[
            ("ID", "NUMBER(10,0)", DataType::Int64, false),
            ("EMAIL", "TEXT(255)", DataType::String, false),
            ("Display Name", "TEXT(100)", DataType::String, true),
            ("CREATED_AT", "TIMESTAMP_NTZ", DataType::Timestamp, true),
            ("ACTIVE", "BOOLEAN", DataType::Boolean, true),
        ],
    );
    assert_eq!(
        customers.column("ACTIVE").unwrap().default.as_deref(),
        Some("true")
    );

    let items = table(&c, "SALES", "Order Items");
    assert_eq!(items.kind, TableKind::Table);
    assert_eq!(items.primary_key, vec!["ORDER_ID", "LINE"], "key order");
    // fakesnow stores ARRAY and OBJECT as VARIANT (JSON) and INTEGER as
    // NUMBER(38,0), as Snowflake does for INTEGER.
    assert_columns(
        items,
        &[
            ("ORDER_ID", "NUMBER(18,0)", DataType::Int64, false),
            ("LINE", "NUMBER(5,0)", DataType::Int64, false),
            ("AMOUNT", "NUMBER(12,2)", DataType::decimal(12, 2), true),
            ("QTY", "NUMBER(38,0)", DataType::decimal(38, 0), true),
            ("PRICE", "FLOAT", DataType::Float64, true),
            ("PAYLOAD", "VARIANT", DataType::Json, true),
            ("TAGS", "VARIANT", DataType::Json, true),
            ("ATTRS", "VARIANT", DataType::Json, true),
            ("RAW", "BINARY", DataType::Binary, true),
            ("SHIP_DATE", "DATE", DataType::Date, true),
            ("SHIP_TIME", "TIME", DataType::Time, true),
            ("UPDATED_TZ", "TIMESTAMP_TZ", DataType::TimestampTz, true),
        ],
    );

    let view = table(&c, "SALES", "ACTIVE_CUSTOMERS");
    assert_eq!(view.kind, TableKind::View);
    assert_eq!(view.estimated_rows, None);
    assert_eq!(view.size_bytes, None);
    assert_eq!(
        view.columns
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>(),
        vec!["ID", "EMAIL"]
    );

    let kunden = table(&c, "Analytics 2024", "客户");
    assert!(kunden.primary_key.is_empty());
    assert_columns(
        kunden,
        &[
            ("名字", "TEXT(50)", DataType::String, false),
            ("select", "NUMBER(38,0)", DataType::decimal(38, 0), true),
            ("it's", "DATE", DataType::Date, true),
            ("Mixed\"Quote", "BOOLEAN", DataType::Boolean, true),
        ],
    );
    let mixed = table(&c, "Analytics 2024", "mixedCase");
    assert_eq!(mixed.primary_key, vec!["Id"]);
    assert_columns(
        mixed,
        &[
            ("Id", "NUMBER(9,0)", DataType::Int64, false),
            ("Value", "NUMBER(20,4)", DataType::decimal(20, 4), true),
        ],
    );
    assert_eq!(c.table_count(), 5);
}

#[tokio::test]
async fn discovery_filters_depth_and_statistics() {
    let Some(fx) =
        matih_connector_testkit::fixture("SNOWFLAKE", "discovery_filters_depth_and_statistics")
    else {
        return;
    };
    let d = driver();
    let good = case(&fx);
    conformance::assert_discovery_filters(&d, &good, "SALES", "Order Items").await;
    conformance::assert_discovery_filters(&d, &good, "Analytics 2024", "客户").await;

    let req = DiscoveryRequest {
        statistics: false,
        ..Default::default()
    };
    let c = conformance::discover(&d, &good, &req).await;
    assert_eq!(table(&c, "SALES", "CUSTOMERS").estimated_rows, None);

    let req = DiscoveryRequest {
        include_system: true,
        ..DiscoveryRequest::default().with_depth(Depth::Schemas)
    };
    let c = conformance::discover(&d, &good, &req).await;
    assert!(
        c.schema("INFORMATION_SCHEMA").is_some(),
        "include_system lists INFORMATION_SCHEMA"
    );
}

#[tokio::test]
async fn hostile_patterns_match_literally_and_cannot_inject() {
    let Some(fx) = matih_connector_testkit::fixture(
        "SNOWFLAKE",
        "hostile_patterns_match_literally_and_cannot_inject",
    ) else {
        return;
    };
    let d = driver();
    let good = case(&fx);
    let only = |s: &[&str], t: &[&str]| DiscoveryRequest {
        schemas: NameFilter {
            include: s.iter().map(|x| x.to_string()).collect(),
            exclude: vec![],
        },
        tables: NameFilter {
            include: t.iter().map(|x| x.to_string()).collect(),
            exclude: vec![],
        },
        ..Default::default()
    };
    let tables = |c: &Catalog| -> Vec<String> {
        c.schemas
            .iter()
            .flat_map(|s| {
                s.tables
                    .iter()
                    .map(move |t| format!("{}.{}", s.name, t.name))
            })
            .collect()
    };
    for hostile in [
        "x' OR '1'='1",
        "'; DROP TABLE SALES.CUSTOMERS; --",
        "\" OR 1=1 --",
    ] {
        let c = conformance::discover(&d, &good, &only(&[hostile], &[])).await;
        assert!(c.schemas.is_empty(), "{hostile}: {c:?}");
        let c = conformance::discover(&d, &good, &only(&[], &[hostile])).await;
        assert!(tables(&c).is_empty(), "{hostile}");
    }
    // `_` and `%` are literal in globs: "empty_schema" matches itself only.
    let c = conformance::discover(&d, &good, &only(&["empty_schema"], &[])).await;
    assert_eq!(c.schemas.len(), 1);
    let c = conformance::discover(&d, &good, &only(&["empty%schema"], &[])).await;
    assert!(c.schemas.is_empty());
    let c = conformance::discover(&d, &good, &only(&["SALES"], &["Order *"])).await;
    assert_eq!(tables(&c), vec!["SALES.Order Items"]);
    let c = conformance::discover(&d, &good, &only(&["*"], &["*\"*"])).await;
    assert!(tables(&c).is_empty(), "no table name holds a double quote");
    // The seed is intact afterwards.
    let c = conformance::discover(&d, &good, &DiscoveryRequest::default()).await;
    assert_eq!(c.table_count(), 5);
}

/// An in-test FAKE of Snowflake's login and query endpoints, for what
/// fakesnow cannot show: it checks credentials. Password `right-password`
/// for user `matih`; a key-pair JWT is verified with the test key's public
/// half and its `iss`/`sub` claims checked; database `NOPE` is refused with
/// 390201; user `noaccess` may log in but not read INFORMATION_SCHEMA. Rows
/// come back as JSON rowsets (Snowflake's format for this session setting),
/// the first one after an "in progress" answer that must be polled.
mod fake {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const FP: &str = include_str!("data/test_key.fp");
    const PUBLIC: &str = include_str!("data/test_key.pub.pem");

    fn login(query: &str, body: &serde_json::Value) -> serde_json::Value {
        let d = &body["data"];
        let fail = |code: &str, msg: &str| serde_json::json!({"data": null, "code": code, "message": msg, "success": false});
        if d["ACCOUNT_NAME"] != "MATIH" {
            return fail("390100", "Incorrect username or password was specified.");
        }
        let user = d["LOGIN_NAME"].as_str().unwrap_or_default();
        let ok = if d["AUTHENTICATOR"] == "SNOWFLAKE_JWT" {
            let key = jsonwebtoken::DecodingKey::from_rsa_pem(PUBLIC.as_bytes()).unwrap();
            let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
            v.set_required_spec_claims(&["exp", "iss", "sub"]);
            match jsonwebtoken::decode::<serde_json::Value>(
                d["TOKEN"].as_str().unwrap_or_default(),
                &key,
                &v,
            ) {
                Ok(t) => {
                    let want_sub = format!("MATIH.{}", user.to_ascii_uppercase());
                    t.claims["sub"] == want_sub.as_str()
                        && t.claims["iss"] == format!("{want_sub}.SHA256:{}", FP.trim()).as_str()
                }
                Err(_) => false,
            }
        } else {
            d["PASSWORD"] == "right-password"
        };
        if !ok {
            return if d["AUTHENTICATOR"] == "SNOWFLAKE_JWT" {
                fail("390144", "JWT token is invalid.")
            } else {
                fail("390100", "Incorrect username or password was specified.")
            };
        }
        if query.contains("databaseName=NOPE") {
            return fail(
                "390201",
                "The requested database does not exist or not authorized.",
            );
        }
        let token = if user == "noaccess" {
            "token-noaccess"
        } else {
            "token-ok"
        };
        serde_json::json!({"data": {"token": token, "sessionInfo": {"databaseName": "MATIH_SEED"}}, "success": true})
    }

    fn rows(names: &[&str], rows: serde_json::Value) -> serde_json::Value {
        let rowtype: Vec<_> = names
            .iter()
            .map(|n| serde_json::json!({"name": n, "type": "text"}))
            .collect();
        serde_json::json!({"data": {"rowtype": rowtype, "rowset": rows, "total": 1}, "success": true})
    }

    fn query(auth: &str, host: &str, body: &serde_json::Value) -> serde_json::Value {
        let sql = body["sqlText"].as_str().unwrap_or_default();
        if sql.starts_with("SELECT CURRENT_VERSION(), CURRENT_DATABASE()") {
            return serde_json::json!({"data": {"getResultUrl": "/queries/q1/result"}, "code": "333334",
                "message": "Asynchronous execution in progress.", "success": false});
        }
        if sql.contains("SCHEMA_NAME, COMMENT FROM INFORMATION_SCHEMA.SCHEMATA") {
            // A large result: two more chunks at "pre-signed" URLs that need
            // the chunk headers; the first is gzip-compressed.
            let base = format!("http://{host}/chunks");
            return serde_json::json!({"data": {
                "rowtype": [{"name": "SCHEMA_NAME"}, {"name": "COMMENT"}],
                "rowset": [["PUBLIC", null]],
                "chunkHeaders": {"x-test-chunk": "yes"},
                "chunks": [{"url": format!("{base}/0"), "rowCount": 2}, {"url": format!("{base}/1"), "rowCount": 1}],
                "queryResultFormat": "json", "total": 4}, "success": true});
        }
        if sql.contains("INFORMATION_SCHEMA.SCHEMATA") && auth.contains("token-noaccess") {
            return serde_json::json!({"data": {"errorCode": "003001", "sqlState": "42501"}, "code": "003001",
                "message": "SQL access control error:\nInsufficient privileges to operate on database 'MATIH_SEED'", "success": false});
        }
        rows(&["SCHEMA_NAME"], serde_json::json!([["PUBLIC"]]))
    }

    pub async fn serve() -> (u16, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let head_end = loop {
                        let n = s.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                    let len: usize = head
                        .to_ascii_lowercase()
                        .lines()
                        .find_map(|l| {
                            l.strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    while buf.len() < head_end + len {
                        let n = s.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            break;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    let body: serde_json::Value =
                        serde_json::from_slice(&buf[head_end..]).unwrap_or_default();
                    let line = head.lines().next().unwrap_or_default().to_owned();
                    let auth = head
                        .lines()
                        .find(|l| l.to_ascii_lowercase().starts_with("authorization:"))
                        .unwrap_or_default()
                        .to_owned();
                    let signed_in = auth.contains("Snowflake Token=\"token-");
                    let host = head
                        .lines()
                        .find_map(|l| {
                            l.strip_prefix("host: ")
                                .or_else(|| l.strip_prefix("Host: "))
                        })
                        .unwrap_or_default()
                        .trim()
                        .to_owned();
                    if line.starts_with("GET /chunks/") {
                        let ok = head.to_ascii_lowercase().contains("x-test-chunk: yes");
                        let body: &[u8] = match (ok, line.starts_with("GET /chunks/0 ")) {
                            (false, _) => b"<Error><Code>AccessDenied</Code></Error>",
                            (true, true) => include_bytes!("data/chunk0.json.gz"),
                            (true, false) => br#"["C",null]"#,
                        };
                        let status = if ok { "200 OK" } else { "403 Forbidden" };
                        let head = format!(
                            "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                            body.len()
                        );
                        let _ = s.write_all(head.as_bytes()).await;
                        let _ = s.write_all(body).await;
                        return;
                    }
                    let answer = if line.starts_with("POST /session/v1/login-request?") {
                        login(&line, &body)
                    } else if !signed_in {
                        serde_json::json!({"data": null, "code": "390103", "message": "Session token not found in the request data.", "success": false})
                    } else if line.starts_with("POST /queries/v1/query-request?") {
                        query(&auth, &host, &body)
                    } else if line.starts_with("GET /queries/q1/result ") {
                        rows(&["V", "D"], serde_json::json!([["9.40.1", "MATIH_SEED"]]))
                    } else {
                        serde_json::json!({"data": null, "success": true})
                    };
                    let text = answer.to_string();
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                        text.len()
                    );
                    let _ = s.write_all(resp.as_bytes()).await;
                });
            }
        });
        (port, task)
    }
}

#[tokio::test]
async fn credentials_against_a_fake_snowflake() {
    matih_connector_testkit::fake(
        "Snowflake fake (login errors, key-pair JWT, result chunks)",
        "credentials_against_a_fake_snowflake",
    );
    let d = driver();
    let (port, server) = fake::serve().await;
    let cfg: ConnectionConfig = serde_json::from_value(serde_json::json!({
        "host": "127.0.0.1", "port": port, "database": "MATIH_SEED", "sslEnabled": false,
        "metadata": {"account": "matih"},
    }))
    .unwrap();
    let good = Case::new(
        cfg,
        Credentials::new()
            .with("username", "matih")
            .with("password", "right-password"),
    );
    let r = conformance::assert_test_succeeds(&d, &good).await;
    assert_eq!(
        r.server_version.as_deref(),
        Some("Snowflake 9.40.1"),
        "polled result"
    );
    let r = conformance::assert_test_fails(
        &d,
        &good.with_cred("password", "wrong-password"),
        Step::Connect,
        ErrorCode::AuthenticationFailed,
    )
    .await;
    assert!(
        r.message.contains("Incorrect username or password"),
        "{}",
        r.message
    );
    // Key pair: the fake verifies the RS256 signature and the claims.
    let mut kp = good.clone();
    kp.creds = Credentials::new()
        .with("username", "matih")
        .with("privateKey", include_str!("data/test_key.p8"));
    conformance::assert_test_succeeds(&d, &kp).await;
    // The same key, encrypted PKCS#8 with its passphrase.
    let mut enc = kp.clone();
    enc.creds = Credentials::new()
        .with("username", "matih")
        .with("privateKey", include_str!("data/test_key_enc.p8"))
        .with("privateKeyPassphrase", "matih-test-passphrase");
    conformance::assert_test_succeeds(&d, &enc).await;
    let wrong_pass = enc.with_cred("privateKeyPassphrase", "wrong-passphrase");
    conformance::assert_test_fails(
        &d,
        &wrong_pass,
        Step::Validate,
        ErrorCode::InvalidConfiguration,
    )
    .await;
    let mut other_user = kp.clone();
    other_user.creds.insert("username", "someone_else");
    conformance::assert_test_succeeds(&d, &other_user).await;
    let wrong_account = kp.with_cfg(|c| {
        c.metadata
            .insert("account".into(), serde_json::json!("other"));
    });
    conformance::assert_test_fails(
        &d,
        &wrong_account,
        Step::Connect,
        ErrorCode::AuthenticationFailed,
    )
    .await;
    let missing_db = good.with_cfg(|c| c.database = Some("NOPE".into()));
    conformance::assert_test_fails(&d, &missing_db, Step::Connect, ErrorCode::DatabaseNotFound)
        .await;
    // A result in several chunks: all rows, in order.
    let c = conformance::discover(
        &d,
        &good,
        &DiscoveryRequest::default().with_depth(Depth::Schemas),
    )
    .await;
    let names: Vec<_> = c
        .schemas
        .iter()
        .map(|s| (s.name.as_str(), s.comment.as_deref()))
        .collect();
    assert_eq!(
        names,
        vec![
            ("A", None),
            ("B", Some("bee")),
            ("C", None),
            ("PUBLIC", None)
        ]
    );
    let no_access = good.with_cred("username", "noaccess");
    conformance::assert_test_fails(
        &d,
        &no_access,
        Step::AccessProbe,
        ErrorCode::PermissionDenied,
    )
    .await;
    server.abort();
}

/// TLS modes through the shared terminating proxy in front of fakesnow:
/// login, the version query and the access probe all go through TLS.
#[tokio::test]
async fn tls_modes_through_the_terminating_proxy() {
    let Some(fx) =
        matih_connector_testkit::fixture("SNOWFLAKE", "tls_modes_through_the_terminating_proxy")
    else {
        return;
    };
    let d = driver();
    let proxy = TlsProxy::start(&fx).await;
    let port = proxy.port();
    let good = assert_tls_modes(&d, &proxy, |host, mode, ca| {
        let (host, ca) = (host.to_owned(), ca.map(str::to_owned));
        case(&fx).with_cfg(move |c| {
            c.host = Some(host);
            c.port = Some(port);
            c.ssl_enabled = Some(true);
            c.ssl_mode = Some(mode);
            c.ssl_ca_pem = ca;
        })
    })
    .await;
    let c = conformance::discover(&d, &good, &DiscoveryRequest::default()).await;
    assert_eq!(table(&c, "SALES", "CUSTOMERS").columns.len(), 5);
}

/// The egress proof of the Snowflake driver: a login redirected to a denied
/// address and an account host given as an IP literal in a denied network are
/// refused with EGRESS_DENIED before any packet reaches the denied address,
/// where a listener records every connection. Runs without a fixture.
#[tokio::test]
async fn egress_refusals_happen_before_any_packet() {
    use matih_connector_testkit::egress::{assert_refused, DeniedListener};
    let denied = DeniedListener::bind("127.0.0.3").await;
    let fake = matih_connector_testkit::egress_proof::redirecting_origin(
        denied.url("/session/v1/login-request"),
        "egress_refusals_happen_before_any_packet",
    )
    .await;
    let d = driver();
    let case = |host: String, port: u16| {
        let cfg: ConnectionConfig = serde_json::from_value(serde_json::json!({
            "host": host, "port": port, "database": "MATIH_SEED", "sslEnabled": false,
            "metadata": {"account": "matih"},
        }))
        .unwrap();
        Case::new(
            cfg,
            Credentials::new()
                .with("username", "matih")
                .with("password", "right-password"),
        )
    };

    // The login is redirected to the denied address: the hop is checked.
    let redirect = case("127.0.0.1".into(), fake.port());
    assert_refused(&d, &redirect, Step::Connect, &denied).await;

    // The account host itself: the DNS step refuses it, and the client
    // refuses it on its own when handed the address anyway.
    let direct = case(denied.addr.ip().to_string(), denied.addr.port());
    assert_refused(&d, &direct, Step::Dns, &denied).await;
    matih_connector_testkit::egress_proof::assert_client_refuses(&d, &direct, &denied).await;

    denied.assert_never_reached().await;
}
