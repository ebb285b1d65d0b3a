//! BigQuery driver against the `bigquery` fixture (bqemulator 1.4.0, DuckDB
//! underneath, in memory, seeded by tests/fixtures/bigquery/seed.py:
//! datasets `matih_seed` and `matih_other`).
//!
//! bqemulator checks no credentials. The service-account flow (signed JWT →
//! token endpoint → bearer token) runs against a FAKE token endpoint written
//! in this file, which verifies the assertion's RS256 signature with the
//! test key's public half and answers as Google's does (or with Google's
//! documented `invalid_grant` error).

use std::sync::Arc;

use matih_connector_core::{
    ConnectionConfig, Credentials, Depth, DiscoveryRequest, ErrorCode, NameFilter, SslMode, Step,
    Table, TableKind, Timeouts,
};
use matih_connector_testkit::conformance::{
    assert_discovery_filters, assert_no_secret, assert_test_fails, assert_test_succeeds,
    closed_port, discover, silent_listener, Case,
};
use matih_connector_testkit::tls_proxy::{assert_tls_modes, TlsProxy};
use matih_connector_testkit::Fixture;
use matih_driver_bigquery::BigqueryDriver;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TEST_KEY: &str = include_str!("data/test-rsa-key.pem");
const TEST_PUBLIC_KEY: &str = include_str!("data/test-rsa-key.pub.pem");

/// The seed's project and dataset; the docker source of xtask exports only
/// the generic variables, so the seed's names are the defaults.
fn project_id(fx: &Fixture) -> &str {
    fx.get("PROJECT").unwrap_or("matih-seed")
}

fn dataset_id(fx: &Fixture) -> &str {
    fx.get("DATASET").unwrap_or("matih_seed")
}

/// Every dataset of the project, through host/port.
fn project(fx: &Fixture) -> Case {
    let cfg = ConnectionConfig {
        host: Some(fx.require("HOST").to_owned()),
        port: Some(fx.port()),
        ssl_enabled: Some(false),
        metadata: serde_json::from_value(json!({"project": project_id(fx)})).unwrap(),
        timeouts: Timeouts {
            connect_ms: 10_000,
            query_ms: 30_000,
        },
        ..Default::default()
    };
    Case::new(cfg, Credentials::new())
}

fn columns(t: &Table) -> Vec<(String, String, String, bool)> {
    t.columns
        .iter()
        .map(|c| {
            (
                c.name.to_string(),
                c.native_type.to_string(),
                c.data_type.to_string(),
                c.nullable,
            )
        })
        .collect()
}

#[tokio::test]
async fn connectivity_test_passes() {
    let Some(fx) = matih_connector_testkit::fixture("BIGQUERY", "connectivity_test_passes") else {
        return;
    };
    let d = BigqueryDriver::new();
    let r = assert_test_succeeds(&d, &project(&fx)).await;
    let v = r.server_version.unwrap();
    assert!(v.starts_with("BigQuery API v2"), "{v}");
    assert!(v.contains("uvicorn"), "the emulator's Server header: {v}");

    // The endpoint override instead of host/port, and one dataset.
    let endpoint = format!("http://{}:{}", fx.require("HOST"), fx.port());
    let by_endpoint = project(&fx).with_cfg(|c| {
        c.host = None;
        c.port = None;
        c.ssl_enabled = None;
        c.metadata.insert("endpoint".into(), json!(endpoint));
        c.metadata.insert("location".into(), json!("US"));
        c.database = Some(dataset_id(&fx).to_owned());
    });
    assert_test_succeeds(&d, &by_endpoint).await;
}

#[tokio::test]
async fn failures_map_to_codes() {
    let Some(fx) = matih_connector_testkit::fixture("BIGQUERY", "failures_map_to_codes") else {
        return;
    };
    let d = BigqueryDriver::new();
    let good = project(&fx);

    let refused = good.with_cfg(|c| c.port = Some(closed_port()));
    assert_test_fails(&d, &refused, Step::Tcp, ErrorCode::ConnectionRefused).await;

    let unresolvable = good.with_cfg(|c| c.host = Some("bigquery.example.invalid".into()));
    assert_test_fails(&d, &unresolvable, Step::Dns, ErrorCode::DnsResolutionFailed).await;

    let (port, listener) = silent_listener().await;
    let silent = good.with_cfg(|c| {
        c.port = Some(port);
        c.timeouts = Timeouts {
            connect_ms: 700,
            query_ms: 700,
        };
    });
    let started = std::time::Instant::now();
    assert_test_fails(&d, &silent, Step::Connect, ErrorCode::Timeout).await;
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    listener.abort();

    // https to the emulator's plain-HTTP port: the TLS handshake fails.
    let tls = good.with_cfg(|c| {
        c.ssl_enabled = Some(true);
        c.ssl_mode = Some(SslMode::VerifyFull);
    });
    assert_test_fails(&d, &tls, Step::Connect, ErrorCode::SslHandshakeFailed).await;

    // A dataset that does not exist: the emulator's 404 notFound.
    let missing = good.with_cfg(|c| c.database = Some("no_such_dataset".into()));
    let r = assert_test_fails(&d, &missing, Step::Connect, ErrorCode::DatabaseNotFound).await;
    assert!(r.message.contains("no_such_dataset"), "{}", r.message);

    // Validation before any I/O: no project.
    let no_project = good.with_cfg(|c| {
        c.metadata.remove("project");
    });
    assert_test_fails(
        &d,
        &no_project,
        Step::Validate,
        ErrorCode::InvalidConfiguration,
    )
    .await;
}

/// Signs nothing itself: checks the assertion the driver signed with the
/// test key, then answers with a token or Google's `invalid_grant`.
async fn fake_token_endpoint() -> (u16, Arc<std::sync::Mutex<Vec<String>>>) {
    matih_connector_testkit::fake("Google OAuth2 token endpoint fake", "fake_token_endpoint");
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let seen = seen2.clone();
            tokio::spawn(async move {
                let body = read_request(&mut s).await;
                let form: std::collections::HashMap<String, String> =
                    url::form_urlencoded::parse(body.as_bytes())
                        .into_owned()
                        .collect();
                let key =
                    jsonwebtoken::DecodingKey::from_rsa_pem(TEST_PUBLIC_KEY.as_bytes()).unwrap();
                let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
                v.set_audience(&[format!("http://127.0.0.1:{port}/token")]);
                v.set_issuer(&["reader@matih-test.iam.gserviceaccount.com"]);
                let ok = form.get("grant_type").map(String::as_str)
                    == Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
                    && form.get("assertion").is_some_and(|a| {
                        jsonwebtoken::decode::<serde_json::Value>(a, &key, &v).is_ok_and(|d| {
                            d.claims["scope"] == "https://www.googleapis.com/auth/bigquery.readonly"
                        })
                    });
                seen.lock()
                    .unwrap()
                    .push(if ok { "ok".into() } else { "refused".into() });
                let (status, body) = if ok {
                    ("200 OK", json!({"access_token": "ya29.fake-token", "expires_in": 3599, "token_type": "Bearer"}).to_string())
                } else {
                    ("400 Bad Request", json!({"error": "invalid_grant", "error_description": "Invalid JWT Signature."}).to_string())
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    (port, seen)
}

async fn read_request(s: &mut tokio::net::TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some(head_end) = text.find("\r\n\r\n") {
            let len = text[..head_end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                })
                .unwrap_or(0);
            if buf.len() >= head_end + 4 + len {
                return text[head_end + 4..].to_owned();
            }
        }
    }
    String::new()
}

fn key_json(private_key: &str, token_uri: &str) -> String {
    json!({
        "type": "service_account",
        "project_id": "matih-test",
        "private_key_id": "test-key-1",
        "private_key": private_key,
        "client_email": "reader@matih-test.iam.gserviceaccount.com",
        "token_uri": token_uri,
    })
    .to_string()
}

#[tokio::test]
async fn service_account_key_through_a_fake_token_endpoint() {
    let Some(fx) = matih_connector_testkit::fixture("BIGQUERY", "service_account_key") else {
        return;
    };
    let d = BigqueryDriver::new();
    let (port, seen) = fake_token_endpoint().await;
    let token_uri = format!("http://127.0.0.1:{port}/token");
    let good = project(&fx).with_cred("serviceAccountKey", &key_json(TEST_KEY, &token_uri));
    assert_test_succeeds(&d, &good).await;
    assert!(
        !seen.lock().unwrap().is_empty() && seen.lock().unwrap().iter().all(|s| s == "ok"),
        "{seen:?}"
    );

    // Another private key for the same account: the token endpoint refuses
    // it, AUTHENTICATION_FAILED, and no key material in the report.
    let wrong = key_json(include_str!("data/other-rsa-key.pem"), &token_uri);
    let bad = project(&fx).with_cred("serviceAccountKey", &wrong);
    let r = assert_test_fails(&d, &bad, Step::Connect, ErrorCode::AuthenticationFailed).await;
    assert!(r.message.contains("invalid_grant"), "{}", r.message);
    assert_no_secret(&serde_json::to_string(&r).unwrap(), &bad.creds);
    assert!(!serde_json::to_string(&r).unwrap().contains("PRIVATE KEY"));

    // The token endpoint is egress-checked: the metadata server's
    // link-local address is refused.
    let ssrf = project(&fx).with_cred(
        "serviceAccountKey",
        &key_json(TEST_KEY, "http://169.254.169.254/token"),
    );
    let Err(err) = matih_connector_core::open(
        &d,
        &ssrf.cfg,
        &ssrf.creds,
        &matih_connector_core::EgressPolicy::default(),
    )
    .await
    else {
        panic!("the metadata address must be refused")
    };
    assert_eq!(err.code(), ErrorCode::EgressDenied, "{err}");
}

#[tokio::test]
async fn discovers_the_seeded_datasets() {
    let Some(fx) = matih_connector_testkit::fixture("BIGQUERY", "discovers_seed") else {
        return;
    };
    let d = BigqueryDriver::new();
    let catalog = discover(&d, &project(&fx), &DiscoveryRequest::default()).await;
    let names: Vec<&str> = catalog.schemas.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, vec!["matih_other", "matih_seed"]);

    let s = catalog.schema("matih_seed").unwrap();
    let tables: Vec<(&str, TableKind)> =
        s.tables.iter().map(|t| (t.name.as_str(), t.kind)).collect();
    assert_eq!(
        tables,
        vec![
            ("Order-Items_2024", TableKind::Table),
            ("big_orders", TableKind::View),
            ("orders", TableKind::Table),
        ]
    );

    let orders = s.table("orders").unwrap();
    assert_eq!(orders.comment.as_deref(), Some("Customer orders"));
    let c = |n: &str, native: &str, t: &str, null: bool| {
        (n.to_owned(), native.to_owned(), t.to_owned(), null)
    };
    // bqemulator reports NUMERIC and STRING without their declared
    // precision/length (BigQuery writes NUMERIC(10, 2), STRING(40)).
    assert_eq!(
        columns(orders),
        vec![
            c("id", "INT64", "int64", false),
            c("amount", "NUMERIC", "decimal(38,9)", true),
            c("note", "STRING", "string", true),
            c("tags", "ARRAY<STRING>", "array<string>", true),
            c("address", "STRUCT<city STRING, zip INT64>", "struct", true),
            c(
                "lines",
                "ARRAY<STRUCT<sku STRING, qty INT64>>",
                "array<struct>",
                true
            ),
            c("placed_at", "TIMESTAMP", "timestamp_tz", true),
            c("local_time", "DATETIME", "timestamp", true),
            c("ship_date", "DATE", "date", true),
            c("cutoff", "TIME", "time", true),
            c("payload", "JSON", "json", true),
            c("raw", "BYTES", "binary", true),
            c("wait", "INTERVAL", "interval", true),
            c("ratio", "FLOAT64", "float64", true),
            c("paid", "BOOL", "boolean", true),
            c("select", "STRING", "string", true),
        ]
    );
    assert_eq!(orders.properties["tableType"], json!("BASE TABLE"));

    let items = s.table("Order-Items_2024").unwrap();
    assert_eq!(
        columns(items),
        vec![
            c("order_id", "INT64", "int64", false),
            c("from", "STRING", "string", true),
            c("Qty", "INT64", "int64", true),
        ]
    );
    let other = catalog.schema("matih_other").unwrap();
    assert_eq!(other.tables.len(), 1);
    assert_eq!(
        columns(&other.tables[0]),
        vec![
            c("at", "TIMESTAMP", "timestamp_tz", true),
            c("kind", "STRING", "string", true),
        ]
    );
}

#[tokio::test]
async fn filters_are_pushed_down_and_honoured() {
    let Some(fx) = matih_connector_testkit::fixture("BIGQUERY", "filters") else {
        return;
    };
    let d = BigqueryDriver::new();
    let case = project(&fx);
    assert_discovery_filters(&d, &case, "matih_seed", "orders").await;

    // Pattern characters that mean something to LIKE and to regexes are
    // literal in names: `_` and `-` here.
    let req = DiscoveryRequest {
        schemas: NameFilter {
            include: vec!["matih_seed".into()],
            exclude: vec![],
        },
        tables: NameFilter {
            include: vec!["Order-Items_*".into(), "*orders".into()],
            exclude: vec!["big?orders".into()],
        },
        ..Default::default()
    }
    .with_depth(Depth::Tables);
    let c = discover(&d, &case, &req).await;
    let names: Vec<&str> = c.schemas[0]
        .tables
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(names, vec!["Order-Items_2024", "orders"]);

    // A configured dataset limits discovery to it.
    let one = case.with_cfg(|c| c.database = Some("matih_other".into()));
    let c = discover(&d, &one, &DiscoveryRequest::default()).await;
    assert_eq!(c.schemas.len(), 1);
    assert_eq!(c.schemas[0].name, "matih_other");
}

/// TLS modes through the shared terminating proxy in front of bqemulator.
#[tokio::test]
async fn tls_modes_through_the_terminating_proxy() {
    let Some(fx) =
        matih_connector_testkit::fixture("BIGQUERY", "tls_modes_through_the_terminating_proxy")
    else {
        return;
    };
    let d = BigqueryDriver::new();
    let proxy = TlsProxy::start(&fx).await;
    let port = proxy.port();
    let good = assert_tls_modes(&d, &proxy, |host, mode, ca| {
        let (host, ca) = (host.to_owned(), ca.map(str::to_owned));
        project(&fx).with_cfg(move |c| {
            c.host = Some(host);
            c.port = Some(port);
            c.ssl_enabled = Some(true);
            c.ssl_mode = Some(mode);
            c.ssl_ca_pem = ca;
        })
    })
    .await;
    let one = good.with_cfg(|c| c.database = Some(dataset_id(&fx).to_owned()));
    let c = discover(&d, &one, &DiscoveryRequest::default()).await;
    let orders = c.schemas[0].table("orders").expect("orders through TLS");
    assert!(!orders.columns.is_empty(), "{orders:?}");
}
