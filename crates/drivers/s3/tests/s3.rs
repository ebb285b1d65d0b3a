//! S3 driver against the `moto` fixture (moto server with IAM enforced,
//! seeded by tests/fixtures/moto/seed.py: bucket `matih-seed` with CSV,
//! JSON-lines and Parquet prefixes, bucket `matih-other`).

use matih_connector_core::{
    ConnectionConfig, Credentials, Depth, DiscoveryRequest, ErrorCode, NameFilter, SslMode, Step,
    Table, TableKind, Timeouts,
};
use matih_connector_testkit::conformance::{
    assert_discovery_filters, assert_test_fails, assert_test_succeeds, closed_port, discover,
    silent_listener, Case,
};
use matih_connector_testkit::tls_proxy::{assert_tls_modes, TlsProxy};
use matih_connector_testkit::Fixture;
use matih_driver_s3::S3Driver;
use serde_json::json;

/// All buckets the reader may list.
fn all_buckets(fx: &Fixture) -> Case {
    let cfg = ConnectionConfig {
        host: Some(fx.require("HOST").to_owned()),
        port: Some(fx.port()),
        ssl_enabled: Some(false),
        metadata: serde_json::from_value(json!({"region": fx.require("REGION")})).unwrap(),
        timeouts: Timeouts {
            connect_ms: 10_000,
            query_ms: 20_000,
        },
        ..Default::default()
    };
    let creds = Credentials::new()
        .with("accessKeyId", fx.require("ACCESS_KEY_ID"))
        .with("secretAccessKey", fx.require("SECRET_ACCESS_KEY"));
    Case::new(cfg, creds)
}

/// The seeded bucket only, named as the database.
fn seed_bucket(fx: &Fixture) -> Case {
    all_buckets(fx).with_cfg(|c| c.database = Some(fx.require("BUCKET").to_owned()))
}

fn nopriv(fx: &Fixture) -> Case {
    let mut c = seed_bucket(fx);
    c.creds = Credentials::new()
        .with("accessKeyId", fx.require("NOPRIV_ACCESS_KEY_ID"))
        .with("secretAccessKey", fx.require("NOPRIV_SECRET_ACCESS_KEY"));
    c
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
    let Some(fx) = matih_connector_testkit::fixture("S3", "connectivity_test_passes") else {
        return;
    };
    let d = S3Driver::new();
    let r = assert_test_succeeds(&d, &seed_bucket(&fx)).await;
    let v = r.server_version.unwrap();
    assert!(
        v.contains("S3 API") && v.contains(fx.require("REGION")),
        "{v}"
    );
    assert_test_succeeds(&d, &all_buckets(&fx)).await;
    // The endpoint given as one URL works the same.
    let url = all_buckets(&fx).with_cfg(|c| {
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
    let Some(fx) = matih_connector_testkit::fixture("S3", "error_codes_from_real_failures") else {
        return;
    };
    let d = S3Driver::new();
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

    let wrong_secret = g.with_cred("secretAccessKey", "not-the-secret-key-at-all");
    let r = assert_test_fails(
        &d,
        &wrong_secret,
        Step::Connect,
        ErrorCode::AuthenticationFailed,
    )
    .await;
    assert!(r.message.contains("SignatureDoesNotMatch"), "{}", r.message);

    let unknown_key = g.with_cred("accessKeyId", "AKIAUNKNOWNKEY000000");
    let r = assert_test_fails(
        &d,
        &unknown_key,
        Step::Connect,
        ErrorCode::AuthenticationFailed,
    )
    .await;
    assert!(r.message.contains("InvalidAccessKeyId"), "{}", r.message);

    let missing = g.with_cfg(|c| c.database = Some("matih-no-such-bucket".into()));
    let r = assert_test_fails(&d, &missing, Step::Connect, ErrorCode::DatabaseNotFound).await;
    assert!(r.message.contains("NoSuchBucket"), "{}", r.message);

    let r = assert_test_fails(&d, &nopriv(&fx), Step::Connect, ErrorCode::PermissionDenied).await;
    assert!(r.message.contains("AccessDenied"), "{}", r.message);

    let bad = g.with_cfg(|c| {
        c.metadata.insert("forcePathStyle".into(), json!("maybe"));
    });
    assert_test_fails(&d, &bad, Step::Validate, ErrorCode::InvalidConfiguration).await;
}

#[tokio::test]
async fn assumed_role_through_sts() {
    let Some(fx) = matih_connector_testkit::fixture("S3", "assumed_role_through_sts") else {
        return;
    };
    let d = S3Driver::new();
    let role = |c: &mut ConnectionConfig| {
        c.metadata
            .insert("roleArn".into(), json!(fx.require("ROLE_ARN")));
    };
    assert_test_succeeds(&d, &seed_bucket(&fx).with_cfg(role)).await;
    let r = assert_test_fails(
        &d,
        &nopriv(&fx).with_cfg(role),
        Step::Connect,
        ErrorCode::PermissionDenied,
    )
    .await;
    assert!(r.message.contains("AssumeRole"), "{}", r.message);
    let bad_key = seed_bucket(&fx)
        .with_cfg(role)
        .with_cred("secretAccessKey", "wrong-secret-key-value");
    assert_test_fails(&d, &bad_key, Step::Connect, ErrorCode::AuthenticationFailed).await;
}

#[tokio::test]
async fn discovers_csv_jsonl_and_parquet_file_sets() {
    let Some(fx) = matih_connector_testkit::fixture("S3", "discovers_file_sets") else {
        return;
    };
    let d = S3Driver::new();
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
    assert_eq!(orders.estimated_rows, None);
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
    assert_eq!(readme.properties["key"], json!("readme.json"));
    assert_eq!(readme.properties["objectCount"], json!(1));
    assert_eq!(
        columns(readme),
        cols(&[("title", "string", false), ("version", "int64", false)])
    );
}

#[tokio::test]
async fn samples_are_bounded() {
    let Some(fx) = matih_connector_testkit::fixture("S3", "samples_are_bounded") else {
        return;
    };
    let d = S3Driver::new();
    let only_orders = NameFilter {
        include: vec!["orders".into()],
        exclude: vec![],
    };
    // One row: the first file's first row types the columns.
    let req = DiscoveryRequest {
        sample_size: 1,
        tables: only_orders.clone(),
        ..Default::default()
    };
    let c = discover(&d, &seed_bucket(&fx), &req).await;
    let t = &c.schemas[0].tables[0];
    assert_eq!(t.properties["sampledRecords"], json!(1));
    assert_eq!(t.properties["sampledFiles"], json!(1));
    // One object listed per file set: counts say the listing was cut.
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
    // Depth tables without statistics: no per-file-set calls at all.
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
    let Some(fx) = matih_connector_testkit::fixture("S3", "discovery_filters_and_depth") else {
        return;
    };
    let d = S3Driver::new();
    let bucket = fx.require("BUCKET");
    assert_discovery_filters(&d, &all_buckets(&fx), bucket, "orders").await;
    let all = discover(
        &d,
        &all_buckets(&fx),
        &DiscoveryRequest::default().with_depth(Depth::Schemas),
    )
    .await;
    let names: Vec<&str> = all.schemas.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, vec!["matih-other", bucket]);
    let other = discover(
        &d,
        &all_buckets(&fx),
        &DiscoveryRequest {
            schemas: NameFilter {
                include: vec!["matih-oth*".into()],
                exclude: vec![],
            },
            ..Default::default()
        },
    )
    .await;
    let logs = other.schemas[0].table("logs").unwrap();
    assert_eq!(logs.properties["format"], json!("jsonl"));
}

/// TLS modes through the shared terminating proxy in front of the emulator;
/// the certificate names `localhost`, which the core resolves and pins.
#[tokio::test]
async fn tls_is_verified_with_pinned_addresses() {
    let Some(fx) = matih_connector_testkit::fixture("S3", "tls_is_verified") else {
        return;
    };
    let d = S3Driver::new();
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
    let c = discover(
        &d,
        &good,
        &DiscoveryRequest::default().with_depth(Depth::Tables),
    )
    .await;
    assert!(c.schemas[0].table("orders").is_some());
}

/// The egress proof of the AWS family (S3, DynamoDB and Redshift share the
/// core `aws` client): a redirect to a denied address, an STS endpoint and a
/// service endpoint given as IP literals in a denied network are refused with
/// EGRESS_DENIED before any packet reaches the denied address, where a
/// listener records every connection. Runs without a fixture.
#[tokio::test]
async fn egress_refusals_happen_before_any_packet() {
    use matih_connector_testkit::egress::{assert_refused, DeniedListener};
    let denied = DeniedListener::bind("127.0.0.3").await;
    let fake = matih_connector_testkit::egress_proof::redirecting_origin(
        denied.url("/latest/meta-data/"),
        "egress_refusals_happen_before_any_packet",
    )
    .await;
    let d = S3Driver::new();
    let case = |endpoint: String, meta: serde_json::Value| {
        let mut m = json!({"endpoint": endpoint, "region": "us-east-1"});
        m.as_object_mut()
            .unwrap()
            .extend(meta.as_object().unwrap().clone());
        let cfg = ConnectionConfig {
            metadata: serde_json::from_value(m).unwrap(),
            timeouts: Timeouts {
                connect_ms: 10_000,
                query_ms: 20_000,
            },
            ..Default::default()
        };
        let creds = Credentials::new()
            .with("accessKeyId", "AKIAEXAMPLE")
            .with("secretAccessKey", "secret-example");
        Case::new(cfg, creds)
    };

    // ListBuckets is redirected to the denied address: the hop is checked.
    let redirect = case(format!("http://{fake}"), json!({}));
    assert_refused(&d, &redirect, Step::Connect, &denied).await;

    // STS AssumeRole at an IP literal in the denied network.
    let sts = case(
        format!("http://{fake}"),
        json!({"roleArn": "arn:aws:iam::123456789012:role/reader", "stsEndpoint": denied.url("/")}),
    );
    assert_refused(&d, &sts, Step::Connect, &denied).await;

    // The service endpoint itself: the connectivity test's DNS step refuses it,
    // and the client refuses it on its own when handed the address anyway.
    let direct = case(denied.url(""), json!({}));
    assert_refused(&d, &direct, Step::Dns, &denied).await;
    matih_connector_testkit::egress_proof::assert_client_refuses(&d, &direct, &denied).await;

    denied.assert_never_reached().await;
}
