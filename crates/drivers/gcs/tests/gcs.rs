//! GCS driver against the `gcs` fixture (fake-gcs-server, in memory, seeded
//! by tests/fixtures/gcs/seed.py: bucket `matih-seed` with CSV, JSON-lines
//! and Parquet prefixes, bucket `matih-other`).
//!
//! fake-gcs-server checks no credentials. The service-account flow (signed
//! JWT → token endpoint → bearer token) is exercised against FAKE token
//! endpoints written in this file: one that verifies the assertion's RS256
//! signature with the test key's public half and answers as Google's does,
//! and one that answers Google's documented `invalid_grant` error.

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
use matih_driver_gcs::GcsDriver;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TEST_KEY: &str = include_str!("data/test-rsa-key.pem");
const TEST_PUBLIC_KEY: &str = include_str!("data/test-rsa-key.pub.pem");

/// Every bucket of the project.
fn project(fx: &Fixture) -> Case {
    let cfg = ConnectionConfig {
        host: Some(fx.require("HOST").to_owned()),
        port: Some(fx.port()),
        ssl_enabled: Some(false),
        metadata: serde_json::from_value(json!({"project": fx.require("PROJECT")})).unwrap(),
        timeouts: Timeouts {
            connect_ms: 10_000,
            query_ms: 20_000,
        },
        ..Default::default()
    };
    Case::new(cfg, Credentials::new())
}

/// The seeded bucket only, named as the database.
fn seed_bucket(fx: &Fixture) -> Case {
    project(fx).with_cfg(|c| c.database = Some(fx.require("BUCKET").to_owned()))
}

fn key_json(token_uri: &str) -> String {
    json!({
        "type": "service_account",
        "project_id": "matih-test",
        "private_key_id": "test-key-1",
        "private_key": TEST_KEY,
        "client_email": "reader@matih-test.iam.gserviceaccount.com",
        "token_uri": token_uri,
    })
    .to_string()
}

fn columns(t: &Table) -> Vec<(String, String, bool)> {
    t.columns
        .iter()
        .map(|c| (c.name.to_string(), c.data_type.to_string(), c.nullable))
        .collect()
}

fn cols(want: &[(&str, &str, bool)]) -> Vec<(String, String, bool)> {
    want.iter()
        .map(|(n, t, z)| (n.to_string(), t.to_string(), *z))
        .collect()
}

#[tokio::test]
async fn connectivity_test_passes_with_and_without_a_bucket() {
    let Some(fx) = matih_connector_testkit::fixture("GCS", "connectivity_test_passes") else {
        return;
    };
    let d = GcsDriver::new();
    let r = assert_test_succeeds(&d, &seed_bucket(&fx)).await;
    let v = r.server_version.unwrap();
    assert!(v.starts_with("Google Cloud Storage JSON API v1"), "{v}");
    assert!(v.contains(&fx.port().to_string()), "{v}");
    assert_test_succeeds(&d, &project(&fx)).await;
    let url = project(&fx).with_cfg(|c| {
        c.host = None;
        c.port = None;
        c.ssl_enabled = None;
        c.metadata.insert(
            "endpoint".into(),
            json!(format!("http://{}:{}", fx.require("HOST"), fx.port())),
        );
    });
    assert_test_succeeds(&d, &url).await;
}

#[tokio::test]
async fn error_codes_from_real_failures() {
    let Some(fx) = matih_connector_testkit::fixture("GCS", "error_codes_from_real_failures") else {
        return;
    };
    let d = GcsDriver::new();
    let g = seed_bucket(&fx);

    let refused = g.with_cfg(|c| c.port = Some(closed_port()));
    assert_test_fails(&d, &refused, Step::Tcp, ErrorCode::ConnectionRefused).await;

    let dns = g.with_cfg(|c| c.host = Some("no-such-host.matih.invalid".into()));
    assert_test_fails(&d, &dns, Step::Dns, ErrorCode::DnsResolutionFailed).await;

    let (port, listener) = silent_listener().await;
    let silent = g.with_cfg(|c| {
        c.port = Some(port);
        c.timeouts = Timeouts {
            connect_ms: 700,
            query_ms: 700,
        };
    });
    assert_test_fails(&d, &silent, Step::Connect, ErrorCode::Timeout).await;
    listener.abort();

    // TLS spoken to the plain-HTTP emulator fails the handshake.
    let tls = g.with_cfg(|c| {
        c.ssl_enabled = Some(true);
        c.ssl_mode = Some(SslMode::VerifyFull);
    });
    assert_test_fails(&d, &tls, Step::Connect, ErrorCode::SslHandshakeFailed).await;

    let missing = g.with_cfg(|c| c.database = Some("matih-no-such-bucket".into()));
    let r = assert_test_fails(&d, &missing, Step::Connect, ErrorCode::DatabaseNotFound).await;
    assert!(r.message.contains("HTTP 404"), "{}", r.message);

    let bad = g.with_cfg(|c| {
        c.metadata
            .insert("maxObjectsPerTable".into(), json!("lots"));
    });
    assert_test_fails(&d, &bad, Step::Validate, ErrorCode::InvalidConfiguration).await;
}

/// Reads one HTTP/1.1 request (head and Content-Length body).
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

/// A FAKE OAuth2 token endpoint: verifies the JWT bearer assertion's RS256
/// signature, audience and issuer as Google's does, and answers with a token
/// or Google's documented `invalid_grant` body.
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
                            d.claims["scope"]
                                == "https://www.googleapis.com/auth/devstorage.read_only"
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

#[tokio::test]
async fn service_account_key_through_a_fake_token_endpoint() {
    let Some(fx) = matih_connector_testkit::fixture("GCS", "service_account_key") else {
        return;
    };
    let d = GcsDriver::new();
    let (port, seen) = fake_token_endpoint().await;
    let token_uri = format!("http://127.0.0.1:{port}/token");
    let good = seed_bucket(&fx).with_cred("serviceAccountKey", &key_json(&token_uri));
    assert_test_succeeds(&d, &good).await;
    assert!(seen.lock().unwrap().iter().all(|s| s == "ok"), "{seen:?}");

    // Another key (same account, different private key) is refused by the
    // token endpoint: AUTHENTICATION_FAILED, and no key material in the report.
    let other_key = include_str!("data/other-rsa-key.pem");
    let wrong = json!({
        "type": "service_account",
        "private_key": other_key,
        "client_email": "reader@matih-test.iam.gserviceaccount.com",
        "token_uri": token_uri,
    })
    .to_string();
    let bad = seed_bucket(&fx).with_cred("serviceAccountKey", &wrong);
    let r = assert_test_fails(&d, &bad, Step::Connect, ErrorCode::AuthenticationFailed).await;
    assert!(r.message.contains("invalid_grant"), "{}", r.message);
    assert_no_secret(&serde_json::to_string(&r).unwrap(), &bad.creds);
    assert!(!serde_json::to_string(&r).unwrap().contains("PRIVATE KEY"));

    // The token endpoint is egress-checked like the storage endpoint: a key
    // pointing at the metadata server's link-local address is refused.
    let ssrf = seed_bucket(&fx).with_cred(
        "serviceAccountKey",
        &key_json("http://169.254.169.254/token"),
    );
    let err = matih_connector_core::open(
        &d,
        &ssrf.cfg,
        &ssrf.creds,
        &matih_connector_core::EgressPolicy::default(),
    )
    .await;
    let Err(err) = err else {
        panic!("the metadata address must be refused")
    };
    assert_eq!(err.code(), ErrorCode::EgressDenied, "{err}");
}

#[tokio::test]
async fn discovers_csv_jsonl_and_parquet_file_sets() {
    let Some(fx) = matih_connector_testkit::fixture("GCS", "discovers_file_sets") else {
        return;
    };
    let d = GcsDriver::new();
    let bucket = fx.require("BUCKET");
    let catalog = discover(&d, &seed_bucket(&fx), &DiscoveryRequest::default()).await;
    assert_eq!(catalog.schemas.len(), 1);
    let s = catalog.schema(bucket).unwrap();
    let names: Vec<&str> = s.tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "events",
            "metrics",
            "orders",
            "readme.json",
            "weird name ü 'q'"
        ]
    );
    assert!(s.tables.iter().all(|t| t.kind == TableKind::FileSet));

    let orders = s.table("orders").unwrap();
    assert_eq!(orders.properties["format"], json!("csv"));
    assert_eq!(orders.properties["prefix"], json!("orders/"));
    assert_eq!(orders.properties["objectCount"], json!(2));
    assert_eq!(orders.properties["sampledFiles"], json!(2));
    assert_eq!(orders.properties["sampledRecords"], json!(4));
    // The two seeded files are 193 and 95 bytes.
    assert_eq!(orders.size_bytes, Some(193 + 95));
    assert_eq!(
        columns(orders),
        cols(&[
            ("id", "int64", false),
            ("customer", "string", false),
            ("amount", "float64", false),
            ("ordered_at", "timestamp_tz", false),
            ("paid", "boolean", false),
            ("ship_date", "date", true),
        ])
    );

    let events = s.table("events").unwrap();
    assert_eq!(events.properties["format"], json!("jsonl"));
    assert_eq!(events.properties["sampledRecords"], json!(3));
    assert_eq!(
        columns(events),
        cols(&[
            ("at", "timestamp_tz", false),
            ("id", "int64", false),
            ("kind", "string", false),
            ("props", "struct", false),
            ("referrer", "string", true),
            ("score", "float64", false),
            ("tags", "array<string>", false),
        ])
    );

    let metrics = s.table("metrics").unwrap();
    assert_eq!(metrics.properties["format"], json!("parquet"));
    assert_eq!(metrics.properties["rowsInSampledFiles"], json!(3));
    assert_eq!(
        columns(metrics),
        cols(&[
            ("sensor_id", "int32", true),
            ("reading", "float64", true),
            ("label", "string", true),
            ("ok", "boolean", true),
            ("taken_at", "timestamp_tz", true),
            ("day", "date", true),
            ("price", "decimal(10,2)", true),
            ("big", "int64", true),
        ])
    );
    assert_eq!(metrics.columns[2].native_type, "BYTE_ARRAY (STRING)");

    let weird = s.table("weird name ü 'q'").unwrap();
    assert_eq!(
        columns(weird),
        cols(&[("a b", "int64", false), ("c\"d", "string", false)])
    );

    let readme = s.table("readme.json").unwrap();
    assert_eq!(readme.properties["object"], json!("readme.json"));
    assert_eq!(readme.properties["objectCount"], json!(1));
    assert_eq!(
        columns(readme),
        cols(&[("title", "string", false), ("version", "int64", false)])
    );
}

#[tokio::test]
async fn samples_are_bounded() {
    let Some(fx) = matih_connector_testkit::fixture("GCS", "samples_are_bounded") else {
        return;
    };
    let d = GcsDriver::new();
    let only_orders = NameFilter {
        include: vec!["orders".into()],
        exclude: vec![],
    };
    let req = DiscoveryRequest {
        sample_size: 1,
        tables: only_orders.clone(),
        ..Default::default()
    };
    let c = discover(&d, &seed_bucket(&fx), &req).await;
    let t = &c.schemas[0].tables[0];
    assert_eq!(t.properties["sampledRecords"], json!(1));
    assert_eq!(t.properties["sampledFiles"], json!(1));
    let capped = seed_bucket(&fx).with_cfg(|c| {
        c.metadata.insert("maxObjectsPerTable".into(), json!(1));
    });
    let req = DiscoveryRequest {
        tables: only_orders.clone(),
        ..Default::default()
    };
    let c = discover(&d, &capped, &req).await;
    let t = &c.schemas[0].tables[0];
    assert_eq!(t.properties["objectCount"], json!(1));
    assert_eq!(t.properties["listingTruncated"], json!(true));
    let req = DiscoveryRequest {
        statistics: false,
        ..DiscoveryRequest::default().with_depth(Depth::Tables)
    };
    let c = discover(&d, &seed_bucket(&fx), &req).await;
    let t = c.schemas[0].table("orders").unwrap();
    assert_eq!(t.size_bytes, None);
    assert!(!t.properties.contains_key("objectCount"));
}

#[tokio::test]
async fn discovery_filters_and_depth() {
    let Some(fx) = matih_connector_testkit::fixture("GCS", "discovery_filters_and_depth") else {
        return;
    };
    let d = GcsDriver::new();
    let bucket = fx.require("BUCKET");
    assert_discovery_filters(&d, &project(&fx), bucket, "orders").await;
    let all = discover(
        &d,
        &project(&fx),
        &DiscoveryRequest::default().with_depth(Depth::Schemas),
    )
    .await;
    let names: Vec<&str> = all.schemas.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, vec!["matih-other", bucket]);
    let other = discover(
        &d,
        &project(&fx),
        &DiscoveryRequest {
            schemas: NameFilter {
                include: vec!["matih-oth*".into()],
                exclude: vec![],
            },
            ..Default::default()
        },
    )
    .await;
    assert_eq!(other.schemas.len(), 1);
    let logs = other.schemas[0].table("logs").unwrap();
    assert_eq!(logs.properties["format"], json!("jsonl"));
    // Hostile table patterns are matched literally.
    let weird = discover(
        &d,
        &seed_bucket(&fx),
        &DiscoveryRequest {
            tables: NameFilter {
                include: vec!["weird name ü 'q'".into()],
                exclude: vec![],
            },
            ..Default::default()
        },
    )
    .await;
    assert_eq!(weird.table_count(), 1);
}

/// TLS modes through the shared terminating proxy in front of the emulator;
/// the certificate names `localhost`, which the core resolves and pins.
#[tokio::test]
async fn tls_is_verified_with_pinned_addresses() {
    let Some(fx) = matih_connector_testkit::fixture("GCS", "tls_is_verified") else {
        return;
    };
    let d = GcsDriver::new();
    let proxy = TlsProxy::start(&fx).await;
    let port = proxy.port();
    let good = assert_tls_modes(&d, &proxy, |host, mode, ca| {
        let (host, ca) = (host.to_owned(), ca.map(str::to_owned));
        seed_bucket(&fx).with_cfg(move |c| {
            c.host = Some(host);
            c.port = Some(port);
            c.ssl_enabled = Some(true);
            c.ssl_mode = Some(mode);
            c.ssl_ca_pem = ca;
        })
    })
    .await;
    let c = discover(&d, &good, &DiscoveryRequest::default()).await;
    assert!(!c.schemas[0].table("orders").unwrap().columns.is_empty());
}

/// The egress proof of the Google family (GCS and BigQuery share the core
/// client and the service-account token source): a redirect to a denied
/// address, a token endpoint and a storage endpoint given as IP literals in a
/// denied network are refused with EGRESS_DENIED before any packet reaches
/// the denied address, where a listener records every connection. Runs
/// without a fixture.
#[tokio::test]
async fn egress_refusals_happen_before_any_packet() {
    use matih_connector_testkit::egress::{assert_refused, DeniedListener};
    let denied = DeniedListener::bind("127.0.0.3").await;
    let fake = matih_connector_testkit::egress_proof::redirecting_origin(
        denied.url("/computeMetadata/v1/"),
        "egress_refusals_happen_before_any_packet",
    )
    .await;
    let d = GcsDriver::new();
    let case = |endpoint: String| {
        let cfg = ConnectionConfig {
            metadata: serde_json::from_value(json!({"endpoint": endpoint, "bucket": "b"})).unwrap(),
            timeouts: Timeouts {
                connect_ms: 10_000,
                query_ms: 20_000,
            },
            ..Default::default()
        };
        Case::new(cfg, Credentials::new())
    };

    // The bucket listing is redirected to the denied address: the hop is checked.
    assert_refused(&d, &case(format!("http://{fake}")), Step::Connect, &denied).await;

    // The service account's token endpoint is an IP literal in the denied network.
    let token = case(format!("http://{fake}"))
        .with_cred("serviceAccountKey", &key_json(&denied.url("/token")));
    assert_refused(&d, &token, Step::Connect, &denied).await;

    // The storage endpoint itself: the DNS step refuses it, and the client
    // refuses it on its own when handed the address anyway.
    let direct = case(denied.url(""));
    assert_refused(&d, &direct, Step::Dns, &denied).await;
    matih_connector_testkit::egress_proof::assert_client_refuses(&d, &direct, &denied).await;

    denied.assert_never_reached().await;
}
