//! DynamoDB driver against the `moto` fixture (moto server with IAM enforced,
//! seeded by tests/fixtures/moto/seed.py).

use matih_connector_core::{
    ConnectionConfig, Credentials, DataType, Depth, DiscoveryRequest, ErrorCode, NameFilter,
    SslMode, Step, TableKind, Timeouts,
};
use matih_connector_testkit::conformance::{
    assert_discovery_filters, assert_test_fails, assert_test_succeeds, closed_port, discover,
    silent_listener, Case,
};
use matih_connector_testkit::tls_proxy::{assert_tls_modes, TlsProxy};
use matih_connector_testkit::Fixture;
use matih_driver_dynamodb::DynamodbDriver;
use serde_json::json;

fn good(fx: &Fixture) -> Case {
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

fn nopriv(fx: &Fixture) -> Case {
    let mut c = good(fx);
    c.creds = Credentials::new()
        .with("accessKeyId", fx.require("NOPRIV_ACCESS_KEY_ID"))
        .with("secretAccessKey", fx.require("NOPRIV_SECRET_ACCESS_KEY"));
    c
}

#[tokio::test]
async fn connectivity_test_passes_and_reports_the_endpoint() {
    let Some(fx) = matih_connector_testkit::fixture("DYNAMODB", "connectivity_test_passes") else {
        return;
    };
    let r = assert_test_succeeds(&DynamodbDriver::new(), &good(&fx)).await;
    let v = r.server_version.unwrap();
    assert!(
        v.contains("DynamoDB API") && v.contains(fx.require("REGION")),
        "{v}"
    );
}

#[tokio::test]
async fn error_codes_from_real_failures() {
    let Some(fx) = matih_connector_testkit::fixture("DYNAMODB", "error_codes_from_real_failures")
    else {
        return;
    };
    let d = DynamodbDriver::new();
    let g = good(&fx);

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
        c.ssl_mode = Some(SslMode::Require);
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
    assert!(
        r.message.contains("SignatureDoesNotMatch") || r.message.contains("InvalidClientTokenId"),
        "{}",
        r.message
    );

    let unknown_key = g.with_cred("accessKeyId", "AKIAUNKNOWNKEY000000");
    let r = assert_test_fails(
        &d,
        &unknown_key,
        Step::Connect,
        ErrorCode::AuthenticationFailed,
    )
    .await;
    assert!(r.message.contains("InvalidClientTokenId"), "{}", r.message);

    let r = assert_test_fails(&d, &nopriv(&fx), Step::Connect, ErrorCode::PermissionDenied).await;
    assert!(r.message.contains("dynamodb:ListTables"), "{}", r.message);

    let bad_region = g.with_cfg(|c| {
        c.metadata.insert("region".into(), json!("not a region"));
    });
    assert_test_fails(
        &d,
        &bad_region,
        Step::Validate,
        ErrorCode::InvalidConfiguration,
    )
    .await;
}

#[tokio::test]
async fn assumed_role_through_sts() {
    let Some(fx) = matih_connector_testkit::fixture("DYNAMODB", "assumed_role_through_sts") else {
        return;
    };
    let d = DynamodbDriver::new();
    let role = |c: &mut ConnectionConfig| {
        c.metadata
            .insert("roleArn".into(), json!(fx.require("ROLE_ARN")));
        c.metadata
            .insert("roleSessionName".into(), json!("matih-test"));
    };
    assert_test_succeeds(&d, &good(&fx).with_cfg(role)).await;
    let catalog = discover(
        &d,
        &good(&fx).with_cfg(role),
        &DiscoveryRequest::default().with_depth(Depth::Tables),
    )
    .await;
    assert!(catalog.schemas[0].table("orders").is_some());
    // The user without permissions may not assume the role.
    let r = assert_test_fails(
        &d,
        &nopriv(&fx).with_cfg(role),
        Step::Connect,
        ErrorCode::PermissionDenied,
    )
    .await;
    assert!(r.message.contains("AssumeRole"), "{}", r.message);
}

#[tokio::test]
async fn discovers_the_seeded_tables() {
    let Some(fx) = matih_connector_testkit::fixture("DYNAMODB", "discovers_the_seeded_tables")
    else {
        return;
    };
    let d = DynamodbDriver::new();
    let region = fx.require("REGION");
    let catalog = discover(&d, &good(&fx), &DiscoveryRequest::default()).await;
    assert_eq!(catalog.schemas.len(), 1);
    let s = &catalog.schemas[0];
    assert_eq!(s.name, region);
    let names: Vec<&str> = s.tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, vec!["customers", "orders", "weird table.ü-1"]);

    let orders = s.table("orders").unwrap();
    assert_eq!(orders.kind, TableKind::Table);
    assert_eq!(orders.primary_key, vec!["customer_id", "order_id"]);
    assert_eq!(orders.estimated_rows, Some(3));
    // moto always reports TableSizeBytes 0.
    assert_eq!(orders.size_bytes, Some(0));
    assert_eq!(orders.properties["sampledItems"], json!(3));
    assert_eq!(orders.properties["billingMode"], json!("PAY_PER_REQUEST"));
    let cols: Vec<(&str, &str, String, bool)> = orders
        .columns
        .iter()
        .map(|c| {
            (
                c.name.as_str(),
                c.native_type.as_str(),
                c.data_type.to_string(),
                c.nullable,
            )
        })
        .collect();
    let want: Vec<(&str, &str, String, bool)> = vec![
        ("customer_id", "S", "string".into(), false),
        ("order_id", "N", "int64".into(), false),
        ("address", "M", "struct".into(), false),
        ("blob", "B", "binary".into(), false),
        ("lines", "L", "array<string>".into(), false),
        ("note", "S", "string".into(), true),
        ("paid", "BOOL", "boolean".into(), false),
        ("scores", "NS", "array<int64>".into(), false),
        ("tags", "SS", "array<string>".into(), false),
        ("total", "N", "decimal(38)".into(), false),
    ];
    assert_eq!(cols, want);

    let customers = s.table("customers").unwrap();
    assert_eq!(customers.primary_key, vec!["id"]);
    assert_eq!(customers.estimated_rows, Some(2));
    let c: Vec<(&str, String)> = customers
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.data_type.to_string()))
        .collect();
    assert_eq!(
        c,
        vec![
            ("id", "string".into()),
            ("age", "int64".into()),
            ("name", "string".into())
        ]
    );

    let weird = s.table("weird table.ü-1").unwrap();
    assert_eq!(weird.primary_key, vec!["k"]);
    assert_eq!(weird.columns[0].data_type, DataType::Binary);

    // Samples are bounded by sample_size: one item sees fewer attributes.
    let one = discover(
        &d,
        &good(&fx),
        &DiscoveryRequest {
            sample_size: 1,
            tables: NameFilter {
                include: vec!["orders".into()],
                exclude: vec![],
            },
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        one.schemas[0].tables[0].properties["sampledItems"],
        json!(1)
    );

    // No statistics, no sample: keys only, declared types.
    let bare = discover(
        &d,
        &good(&fx),
        &DiscoveryRequest {
            sample_size: 0,
            statistics: false,
            ..Default::default()
        },
    )
    .await;
    let o = bare.schemas[0].table("orders").unwrap();
    assert_eq!(o.estimated_rows, None);
    assert_eq!(o.columns.len(), 2);
    assert_eq!(
        o.columns[1].data_type,
        DataType::Decimal {
            precision: Some(38),
            scale: None
        }
    );
}

#[tokio::test]
async fn discovery_filters_and_depth() {
    let Some(fx) = matih_connector_testkit::fixture("DYNAMODB", "discovery_filters_and_depth")
    else {
        return;
    };
    let d = DynamodbDriver::new();
    assert_discovery_filters(&d, &good(&fx), fx.require("REGION"), "orders").await;
    let named = good(&fx).with_cfg(|c| {
        c.metadata.insert("schemaName".into(), json!("prod tables"));
    });
    let req = DiscoveryRequest {
        tables: NameFilter {
            include: vec!["weird*".into()],
            exclude: vec![],
        },
        ..Default::default()
    };
    let c = discover(&d, &named, &req).await;
    assert_eq!(c.schemas[0].name, "prod tables");
    assert_eq!(c.table_count(), 1);
}

/// TLS modes through the shared terminating proxy in front of moto: the
/// certificate names `localhost`, which the core resolves and pins; SigV4
/// signs the host the driver dialled.
#[tokio::test]
async fn tls_modes_through_the_terminating_proxy() {
    let Some(fx) =
        matih_connector_testkit::fixture("DYNAMODB", "tls_modes_through_the_terminating_proxy")
    else {
        return;
    };
    let d = DynamodbDriver::new();
    let proxy = TlsProxy::start(&fx).await;
    let port = proxy.port();
    let good = assert_tls_modes(&d, &proxy, |host, mode, ca| {
        let (host, ca) = (host.to_owned(), ca.map(str::to_owned));
        good(&fx).with_cfg(move |c| {
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
    assert!(c.schemas[0].table("orders").is_some(), "{c:?}");
}
