//! Integration tests against the Databricks fixture: minilake 1.9.0, a
//! DuckDB-backed emulator of the SQL warehouse, Statement Execution and Unity
//! Catalog APIs, started by `cargo xtask test-drivers --only databricks`. It
//! is an emulator, not Databricks: it checks no token, so AUTHENTICATION_FAILED
//! and PERMISSION_DENIED come from the unit tests of `errors.rs` (built from
//! Databricks' documented error bodies) and from the in-test FAKE workspace
//! below (token endpoint and three API calls, named as a fake there). The
//! catalog assertions follow tests/fixtures/databricks/seed.json.

use matih_connector_core::{
    Catalog, ConnectionConfig, Credentials, DataType, Depth, DiscoveryRequest, ErrorCode,
    NameFilter, SslMode, Step, Table, TableKind,
};
use matih_connector_testkit::conformance::{self, Case};
use matih_connector_testkit::tls_proxy::{assert_tls_modes, TlsProxy};
use matih_connector_testkit::Fixture;
use matih_driver_databricks::DatabricksDriver;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The fixture's warehouse: exported by the native fixture; under
/// `--fixtures docker` (only the common variables) found by its name.
async fn warehouse_id(fx: &Fixture, token: &str) -> String {
    if let Some(id) = fx.get("WAREHOUSE_ID") {
        return id.to_owned();
    }
    let url = format!(
        "http://{}:{}/api/2.0/sql/warehouses",
        fx.require("HOST"),
        fx.port()
    );
    let v: serde_json::Value = reqwest::Client::new()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .expect("listing warehouses")
        .json()
        .await
        .expect("warehouse list");
    v["warehouses"]
        .as_array()
        .and_then(|a| a.iter().find(|w| w["name"] == "matih"))
        .and_then(|w| w["id"].as_str())
        .expect("warehouse `matih` missing")
        .to_owned()
}

async fn case(fx: &Fixture) -> Case {
    let token = fx
        .get("TOKEN")
        .or(fx.get("PASSWORD"))
        .expect("MATIH_TEST_DATABRICKS_TOKEN")
        .to_owned();
    let catalog = fx
        .get("CATALOG")
        .or(fx.get("DATABASE"))
        .unwrap_or("matih_seed")
        .to_owned();
    let cfg: ConnectionConfig = serde_json::from_value(serde_json::json!({
        "host": fx.require("HOST"),
        "port": fx.port(),
        // minilake speaks plain HTTP.
        "sslEnabled": false,
        "metadata": {
            "httpPath": format!("/sql/1.0/warehouses/{}", warehouse_id(fx, &token).await),
            "catalog": catalog,
        },
    }))
    .unwrap();
    Case::new(cfg, Credentials::new().with("token", token))
}

fn driver() -> DatabricksDriver {
    matih_connector_core::tls::install_default_provider();
    DatabricksDriver::new()
}

fn table<'a>(c: &'a Catalog, schema: &str, name: &str) -> &'a Table {
    c.schema(schema)
        .unwrap_or_else(|| panic!("schema {schema} missing"))
        .table(name)
        .unwrap_or_else(|| panic!("table {schema}.{name} missing"))
}

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
}

#[tokio::test]
async fn test_succeeds_with_a_token() {
    let Some(fx) = matih_connector_testkit::fixture("DATABRICKS", "test_succeeds_with_a_token")
    else {
        return;
    };
    let d = driver();
    let good = case(&fx).await;
    let r = conformance::assert_test_succeeds(&d, &good).await;
    let wh = good
        .cfg
        .metadata_str("httpPath")
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let catalog = good.cfg.metadata_str("catalog").unwrap();
    let version = r.server_version.unwrap();
    // minilake has no current_version(): the warehouse API answers instead.
    assert!(
        version.starts_with("Databricks SQL (warehouse matih"),
        "{version}"
    );
    // warehouseId instead of httpPath, database instead of catalog, endpoint URL.
    let alt = good.with_cfg(|c| {
        c.metadata.clear();
        c.metadata
            .insert("warehouseId".into(), serde_json::json!(wh));
        c.metadata.insert(
            "endpoint".into(),
            serde_json::json!(format!("http://127.0.0.1:{}", fx.port())),
        );
        c.host = None;
        c.port = None;
        c.database = Some(catalog.clone());
    });
    conformance::assert_test_succeeds(&d, &alt).await;
}

#[tokio::test]
async fn error_codes_from_real_failures() {
    let Some(fx) = matih_connector_testkit::fixture("DATABRICKS", "error_codes_from_real_failures")
    else {
        return;
    };
    let d = driver();
    let good = case(&fx).await;
    let refused = good.with_cfg(|c| c.port = Some(conformance::closed_port()));
    conformance::assert_test_fails(&d, &refused, Step::Tcp, ErrorCode::ConnectionRefused).await;
    let dns = good.with_cfg(|c| c.host = Some("adb-1.cloud.databricks.invalid".into()));
    conformance::assert_test_fails(&d, &dns, Step::Dns, ErrorCode::DnsResolutionFailed).await;
    let (port, listener) = conformance::silent_listener().await;
    let silent = good.with_cfg(|c| {
        c.port = Some(port);
        c.timeouts = matih_connector_core::Timeouts {
            connect_ms: 700,
            query_ms: 700,
        };
    });
    conformance::assert_test_fails(&d, &silent, Step::Connect, ErrorCode::Timeout).await;
    listener.abort();
    for mode in [SslMode::VerifyFull, SslMode::Require] {
        let tls = good.with_cfg(|c| {
            c.ssl_enabled = None;
            c.ssl_mode = Some(mode);
        });
        conformance::assert_test_fails(&d, &tls, Step::Connect, ErrorCode::SslHandshakeFailed)
            .await;
    }
    // The emulator's real 404s: a missing catalog, a missing warehouse.
    let missing = good.with_cfg(|c| {
        c.metadata
            .insert("catalog".into(), serde_json::json!("matih_no_such_catalog"));
    });
    let r =
        conformance::assert_test_fails(&d, &missing, Step::Connect, ErrorCode::DatabaseNotFound)
            .await;
    assert!(r.message.contains("matih_no_such_catalog"), "{}", r.message);
    // The default schema must exist (it is checked, not a discovery scope).
    let missing_schema = good.with_cfg(|c| c.schema = Some("no_such_schema".into()));
    conformance::assert_test_fails(
        &d,
        &missing_schema,
        Step::AccessProbe,
        ErrorCode::DatabaseNotFound,
    )
    .await;
    conformance::assert_test_succeeds(&d, &good.with_cfg(|c| c.schema = Some("sales".into())))
        .await;
    let no_wh = good.with_cfg(|c| {
        c.metadata.insert(
            "httpPath".into(),
            serde_json::json!("/sql/1.0/warehouses/nosuchwh"),
        );
    });
    conformance::assert_test_fails(&d, &no_wh, Step::Connect, ErrorCode::InvalidConfiguration)
        .await;
    let none = good.with_cfg(|c| {
        c.metadata.remove("httpPath");
    });
    conformance::assert_test_fails(&d, &none, Step::Validate, ErrorCode::InvalidConfiguration)
        .await;
}

/// An in-test FAKE of a workspace, for what minilake cannot show: it checks
/// credentials. It answers `/oidc/v1/token` (client credentials in HTTP Basic,
/// `grant_type=client_credentials`, `scope=all-apis`), and the warehouse,
/// catalog and schema-listing calls for the bearer tokens it knows; anything
/// else gets Databricks' documented error bodies. Its warehouse is STOPPED,
/// and it counts statement calls: connecting must not start compute.
async fn fake_workspace() -> (
    u16,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
    tokio::task::JoinHandle<()>,
) {
    matih_connector_testkit::fake(
        "Databricks workspace fake (OAuth M2M, tokens, stopped warehouse)",
        "fake_workspace",
    );
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let statements = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = statements.clone();
    let server = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let counter = counter.clone();
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
                let lower = head.to_ascii_lowercase();
                let len: usize = lower
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                while buf.len() < head_end + len {
                    let n = s.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let body = String::from_utf8_lossy(&buf[head_end..]).to_string();
                let line = head.lines().next().unwrap_or_default().to_owned();
                let bearer = lower
                    .lines()
                    .find_map(|l| l.strip_prefix("authorization: bearer "))
                    .map(|t| t.trim().to_owned());
                let unauthenticated = (
                    "401 Unauthorized",
                    r#"{"error_code":"UNAUTHENTICATED","message":"Invalid access token."}"#
                        .to_owned(),
                );
                let (status, json) = if line.starts_with("POST /oidc/v1/token ") {
                    // base64("matih-sp:sp-secret-value")
                    if lower.contains("authorization: basic bwf0awgtc3a6c3atc2vjcmv0lxzhbhvl")
                        && body.contains("grant_type=client_credentials")
                        && body.contains("scope=all-apis")
                    {
                        ("200 OK", r#"{"access_token":"oauth-access-token","token_type":"Bearer","expires_in":3600}"#.to_owned())
                    } else {
                        ("401 Unauthorized", r#"{"error":"invalid_client","error_description":"Client authentication failed"}"#.to_owned())
                    }
                } else if line.starts_with("POST /api/2.0/sql/statements") {
                    counter.fetch_add(1, Ordering::SeqCst);
                    (
                        "400 Bad Request",
                        r#"{"error_code":"INVALID_STATE","message":"warehouse is stopped"}"#
                            .to_owned(),
                    )
                } else {
                    match bearer.as_deref() {
                        Some("oauth-access-token" | "dapi-good" | "dapi-noprivs") => {
                            let noprivs = bearer.as_deref() == Some("dapi-noprivs");
                            if line.starts_with("GET /api/2.0/sql/warehouses/wh1 ") {
                                ("200 OK", r#"{"id":"wh1","name":"fake","state":"STOPPED","warehouse_type":"PRO","channel":{"name":"CHANNEL_NAME_CURRENT"}}"#.to_owned())
                            } else if line.starts_with("GET /api/2.1/unity-catalog/catalogs/main ")
                            {
                                ("200 OK", r#"{"name":"main"}"#.to_owned())
                            } else if line.starts_with("GET /api/2.1/unity-catalog/schemas?")
                                && noprivs
                            {
                                ("403 Forbidden", r#"{"error_code":"PERMISSION_DENIED","message":"User does not have USE CATALOG on Catalog 'main'."}"#.to_owned())
                            } else if line.starts_with("GET /api/2.1/unity-catalog/schemas?") {
                                (
                                    "200 OK",
                                    r#"{"schemas":[{"name":"s1","catalog_name":"main"}]}"#
                                        .to_owned(),
                                )
                            } else {
                                ("404 Not Found", r#"{"error_code":"RESOURCE_DOES_NOT_EXIST","message":"not here"}"#.to_owned())
                            }
                        }
                        _ => unauthenticated,
                    }
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{json}",
                    json.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    (port, statements, server)
}

fn fake_case(port: u16, creds: Credentials) -> Case {
    let cfg: ConnectionConfig = serde_json::from_value(serde_json::json!({
        "host": "127.0.0.1", "port": port, "sslEnabled": false,
        "metadata": {"warehouseId": "wh1", "catalog": "main"},
    }))
    .unwrap();
    Case::new(cfg, creds)
}

#[tokio::test]
async fn credentials_against_a_fake_workspace() {
    let d = driver();
    let (port, statements, server) = fake_workspace().await;
    let oauth = |secret: &str| {
        Credentials::new()
            .with("clientId", "matih-sp")
            .with("clientSecret", secret)
    };
    // OAuth M2M: the exchanged token is what the APIs see.
    let r = conformance::assert_test_succeeds(&d, &fake_case(port, oauth("sp-secret-value"))).await;
    assert_eq!(
        r.server_version.as_deref(),
        Some("Databricks SQL (warehouse fake, channel CURRENT, PRO, STOPPED)")
    );
    let r = conformance::assert_test_fails(
        &d,
        &fake_case(port, oauth("wrong-secret-value")),
        Step::Connect,
        ErrorCode::AuthenticationFailed,
    )
    .await;
    assert!(r.message.contains("invalid_client"), "{}", r.message);
    // Personal access tokens: unknown, and known without the catalog privilege.
    conformance::assert_test_succeeds(
        &d,
        &fake_case(port, Credentials::new().with("token", "dapi-good")),
    )
    .await;
    let r = conformance::assert_test_fails(
        &d,
        &fake_case(port, Credentials::new().with("token", "dapi-revoked")),
        Step::Connect,
        ErrorCode::AuthenticationFailed,
    )
    .await;
    assert!(r.message.contains("Invalid access token"), "{}", r.message);
    conformance::assert_test_fails(
        &d,
        &fake_case(port, Credentials::new().with("token", "dapi-noprivs")),
        Step::AccessProbe,
        ErrorCode::PermissionDenied,
    )
    .await;
    assert_eq!(
        statements.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "a stopped warehouse must not be sent statements"
    );
    server.abort();
}

#[tokio::test]
async fn discovers_the_seed() {
    let Some(fx) = matih_connector_testkit::fixture("DATABRICKS", "discovers_the_seed") else {
        return;
    };
    let d = driver();
    let c = conformance::discover(&d, &case(&fx).await, &DiscoveryRequest::default()).await;
    let names: Vec<&str> = c.schemas.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, vec!["Analytics", "default", "empty_schema", "sales"]);
    assert_eq!(
        c.schema("sales").unwrap().comment.as_deref(),
        Some("orders and customers")
    );
    assert!(c.schema("empty_schema").unwrap().tables.is_empty());

    let customers = table(&c, "sales", "customers");
    assert_eq!(customers.kind, TableKind::Table);
    assert_eq!(customers.comment.as_deref(), Some("people who buy"));
    // From the table's Spark statistics property; no size was recorded.
    assert_eq!(customers.estimated_rows, Some(3));
    assert_eq!(customers.size_bytes, None);
    // minilake drops `nullable: false` given through the REST API.
    assert_columns(
        customers,
        &[
            ("id", "bigint", DataType::Int64, true),
            ("email", "string", DataType::String, true),
            ("display_name", "varchar(100)", DataType::String, true),
            ("created_at", "timestamp", DataType::TimestampTz, true),
            ("active", "boolean", DataType::Boolean, true),
        ],
    );
    assert_eq!(
        customers.column("id").unwrap().comment.as_deref(),
        Some("surrogate key")
    );

    let items = table(&c, "sales", "order_items");
    assert_columns(
        items,
        &[
            ("order_id", "bigint", DataType::Int64, true),
            ("line", "int", DataType::Int32, true),
            ("qty", "smallint", DataType::Int16, true),
            ("flag", "tinyint", DataType::Int8, true),
            ("amount", "decimal(12,2)", DataType::decimal(12, 2), true),
            ("price", "double", DataType::Float64, true),
            ("ratio", "float", DataType::Float32, true),
            ("raw", "binary", DataType::Binary, true),
            ("ship_date", "date", DataType::Date, true),
            ("updated_ntz", "timestamp_ntz", DataType::Timestamp, true),
            (
                "tags",
                "array<string>",
                DataType::array(DataType::String),
                true,
            ),
            ("attrs", "map<string,int>", DataType::Map, true),
            ("info", "struct<a:int,b:string>", DataType::Struct, true),
        ],
    );
    assert_eq!(items.estimated_rows, None);

    // Created by SQL DDL: minilake lists it as a MANAGED table.
    let view = table(&c, "sales", "active_customers");
    assert_eq!(
        view.columns
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>(),
        vec!["id", "email"]
    );

    let kunden = table(&c, "Analytics", "客户 list");
    assert_columns(
        kunden,
        &[
            ("名字", "string", DataType::String, false),
            ("select", "int", DataType::Int32, true),
            ("it's", "date", DataType::Date, true),
            (
                "Mixed Case",
                "decimal(20,4)",
                DataType::decimal(20, 4),
                true,
            ),
        ],
    );
    assert_eq!(c.table_count(), 4);
}

#[tokio::test]
async fn discovery_filters_and_depth() {
    let Some(fx) = matih_connector_testkit::fixture("DATABRICKS", "discovery_filters_and_depth")
    else {
        return;
    };
    let d = driver();
    let good = case(&fx).await;
    conformance::assert_discovery_filters(&d, &good, "sales", "order_items").await;
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
    let c = conformance::discover(&d, &good, &only(&["Analytics"], &["客户 *"])).await;
    assert_eq!(c.schema("Analytics").unwrap().tables.len(), 1);
    for hostile in ["x' OR '1'='1", "../sales", "sales%", "sales_"] {
        let c = conformance::discover(&d, &good, &only(&[hostile], &[])).await;
        assert!(c.schemas.is_empty(), "{hostile}");
    }
    let c = conformance::discover(
        &d,
        &good,
        &DiscoveryRequest::default().with_depth(Depth::Tables),
    )
    .await;
    assert!(c
        .schemas
        .iter()
        .flat_map(|s| &s.tables)
        .all(|t| t.columns.is_empty()));
    let req = DiscoveryRequest {
        statistics: false,
        ..Default::default()
    };
    let c = conformance::discover(&d, &good, &req).await;
    assert_eq!(table(&c, "sales", "customers").estimated_rows, None);
}

/// TLS modes through the shared terminating proxy in front of minilake:
/// the warehouse check, Unity Catalog listing and statements go through TLS.
#[tokio::test]
async fn tls_modes_through_the_terminating_proxy() {
    let Some(fx) =
        matih_connector_testkit::fixture("DATABRICKS", "tls_modes_through_the_terminating_proxy")
    else {
        return;
    };
    let d = driver();
    let proxy = TlsProxy::start(&fx).await;
    let port = proxy.port();
    let plain = case(&fx).await;
    let good = assert_tls_modes(&d, &proxy, |host, mode, ca| {
        let (host, ca) = (host.to_owned(), ca.map(str::to_owned));
        plain.with_cfg(move |c| {
            c.host = Some(host);
            c.port = Some(port);
            c.ssl_enabled = Some(true);
            c.ssl_mode = Some(mode);
            c.ssl_ca_pem = ca;
        })
    })
    .await;
    let c = conformance::discover(&d, &good, &DiscoveryRequest::default()).await;
    assert!(!table(&c, "sales", "customers").columns.is_empty());
}

/// The egress proof of the Databricks driver: a redirect to a denied address
/// (a login page's, say) and a workspace host given as an IP literal in a
/// denied network are refused with EGRESS_DENIED before any packet reaches the
/// denied address, where a listener records every connection; the OAuth token
/// endpoint is the workspace's own host. Runs without a fixture.
#[tokio::test]
async fn egress_refusals_happen_before_any_packet() {
    use matih_connector_testkit::egress::{assert_refused, DeniedListener};
    let denied = DeniedListener::bind("127.0.0.3").await;
    let fake = matih_connector_testkit::egress_proof::redirecting_origin(
        denied.url("/login.html"),
        "egress_refusals_happen_before_any_packet",
    )
    .await;
    let d = driver();
    let token = Credentials::new().with("token", "dapi-not-a-real-token");

    // The workspace redirects to the denied address: the hop is checked.
    let redirect = fake_case(fake.port(), token.clone());
    assert_refused(&d, &redirect, Step::Connect, &denied).await;
    // The same with OAuth M2M: the token request itself is redirected.
    let m2m = fake_case(
        fake.port(),
        Credentials::new()
            .with("clientId", "sp-id")
            .with("clientSecret", "sp-secret"),
    );
    assert_refused(&d, &m2m, Step::Connect, &denied).await;

    // The workspace host itself: the DNS step refuses it, and the client
    // refuses it on its own when handed the address anyway.
    let mut direct = fake_case(denied.addr.port(), token);
    direct.cfg.host = Some(denied.addr.ip().to_string());
    assert_refused(&d, &direct, Step::Dns, &denied).await;
    matih_connector_testkit::egress_proof::assert_client_refuses(&d, &direct, &denied).await;

    denied.assert_never_reached().await;
}
