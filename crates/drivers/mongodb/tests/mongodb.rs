//! Integration tests against the MongoDB fixture (`cargo xtask test-drivers
//! --only mongodb`): mongoeco's wire-protocol server behind
//! tests/fixtures/mongodb/server.py, seeded from tests/fixtures/mongodb/seed.json.
//! It checks SCRAM-SHA-256 passwords but has no TLS and no roles: TLS modes
//! are checked through the shared terminating proxy in front of it, and
//! PERMISSION_DENIED is covered by the unit tests of the error mapping.

use matih_connector_core::{
    open, ConnectionConfig, Credentials, DataType, Depth, DiscoveryRequest, EgressPolicy,
    ErrorCode, NameFilter, SslMode, Step, TableKind, Timeouts,
};
use matih_connector_testkit::conformance::{self, Case};
use matih_connector_testkit::tls_proxy::{assert_tls_modes, TlsProxy};
use matih_connector_testkit::Fixture;
use matih_driver_mongodb::MongodbDriver;

fn case(fx: &Fixture) -> Case {
    let cfg = ConnectionConfig {
        host: Some(fx.require("HOST").into()),
        port: Some(fx.port()),
        database: Some(fx.require("DATABASE").into()),
        ..Default::default()
    };
    let creds = Credentials::new()
        .with("username", fx.require("USER"))
        .with("password", fx.require("PASSWORD"));
    Case::new(cfg, creds)
}

fn driver() -> MongodbDriver {
    matih_connector_core::tls::install_default_provider();
    MongodbDriver::new()
}

#[tokio::test]
async fn test_succeeds_with_version() {
    let Some(fx) = matih_connector_testkit::fixture("MONGODB", "test_succeeds_with_version") else {
        return;
    };
    let r = conformance::assert_test_succeeds(&driver(), &case(&fx)).await;
    let v = r.server_version.unwrap();
    assert!(v.starts_with("MongoDB "), "{v}");
    // A connection string holding the user and password works the same way,
    // and never shows up in the report.
    let uri = format!(
        "mongodb://{}:{}@{}:{}/?authSource=admin",
        fx.require("USER"),
        fx.require("PASSWORD"),
        fx.require("HOST"),
        fx.port()
    );
    let c = Case::new(
        case(&fx).cfg,
        Credentials::new().with("connectionString", uri.as_str()),
    );
    let r = conformance::assert_test_succeeds(&driver(), &c).await;
    conformance::assert_no_secret(&serde_json::to_string(&r).unwrap(), &c.creds);
}

#[tokio::test]
async fn error_codes_the_fixture_can_produce() {
    let Some(fx) =
        matih_connector_testkit::fixture("MONGODB", "error_codes_the_fixture_can_produce")
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
    let dns = good.with_cfg(|c| c.host = Some("no-such-host.matih.invalid".into()));
    conformance::assert_test_fails(&d, &dns, Step::Dns, ErrorCode::DnsResolutionFailed).await;
    let (port, listener) = conformance::silent_listener().await;
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
    listener.abort();

    let wrong = good.with_cred("password", "not-the-password");
    let r =
        conformance::assert_test_fails(&d, &wrong, Step::Connect, ErrorCode::AuthenticationFailed)
            .await;
    assert!(!r.message.contains("not-the-password"));
    let unknown_user = good.with_cred("username", "nobody");
    conformance::assert_test_fails(
        &d,
        &unknown_user,
        Step::Connect,
        ErrorCode::AuthenticationFailed,
    )
    .await;

    let missing = good.with_cfg(|c| c.database = Some("no_such_database".into()));
    conformance::assert_test_fails(&d, &missing, Step::Connect, ErrorCode::DatabaseNotFound).await;

    // TLS to the plain wire-protocol port: the server reads the ClientHello
    // as the start of a message and waits for the rest, so the handshake
    // runs out of time (the bridge's handshake bound and the runner's step
    // bound are both the connect timeout; either may report it).
    let tls = good.with_cfg(|c| {
        c.ssl_mode = Some(SslMode::Require);
        c.timeouts = Timeouts {
            connect_ms: 3000,
            query_ms: 3000,
        };
    });
    conformance::assert_test_fails(&d, &tls, Step::Connect, ErrorCode::Timeout).await;
}

/// TLS modes through the shared terminating proxy in front of the mongoeco
/// wrapper: SCRAM, `ping`, `buildInfo` and discovery go through TLS.
#[tokio::test]
async fn tls_modes_through_the_terminating_proxy() {
    let Some(fx) =
        matih_connector_testkit::fixture("MONGODB", "tls_modes_through_the_terminating_proxy")
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
    // A wrong password through TLS is still the server's refusal.
    conformance::assert_test_fails(
        &d,
        &good.with_cred("password", "not-the-password"),
        Step::Connect,
        ErrorCode::AuthenticationFailed,
    )
    .await;
    let c = conformance::discover(&d, &good, &DiscoveryRequest::default()).await;
    let customers = c.schemas[0]
        .table("customers")
        .expect("customers through TLS");
    assert_eq!(customers.estimated_rows, Some(3));
    assert_eq!(customers.columns.len(), 12, "{customers:?}");
}

#[tokio::test]
async fn seeded_catalog_column_by_column() {
    let Some(fx) = matih_connector_testkit::fixture("MONGODB", "seeded_catalog_column_by_column")
    else {
        return;
    };
    let c = conformance::discover(&driver(), &case(&fx), &DiscoveryRequest::default()).await;
    let names: Vec<_> = c.schemas.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        ["matih_seed"],
        "cfg.database limits discovery to one database"
    );
    let s = &c.schemas[0];
    let tables: Vec<_> = s.tables.iter().map(|t| (t.name.as_str(), t.kind)).collect();
    assert_eq!(
        tables,
        [
            ("adult_customers", TableKind::View),
            ("customers", TableKind::Collection),
            ("orders", TableKind::Collection),
            ("weird name \"quoted\" ü", TableKind::Collection),
        ]
    );

    let t = s.table("customers").unwrap();
    assert_eq!(t.estimated_rows, Some(3));
    assert!(t.size_bytes.unwrap_or(0) > 0, "{t:?}");
    assert_eq!(t.primary_key, ["_id"]);
    let col = |name: &str| {
        t.column(name)
            .unwrap_or_else(|| panic!("customers.{name} missing: {t:?}"))
    };
    let expect = [
        ("_id", "objectId", DataType::String, false),
        ("name", "string", DataType::String, false),
        ("email", "string", DataType::String, true),
        ("age", "int", DataType::Int32, false),
        ("active", "bool", DataType::Boolean, false),
        ("balance", "double", DataType::Float64, false),
        ("created", "date", DataType::TimestampTz, false),
        (
            "tags",
            "array<string>",
            DataType::array(DataType::String),
            false,
        ),
        ("address", "object", DataType::Struct, false),
        ("visits", "long", DataType::Int64, false),
        ("score", "double", DataType::Float64, false),
        ("nickname", "null", DataType::Unknown, true),
    ];
    assert_eq!(t.columns.len(), expect.len(), "{:?}", t.columns);
    assert_eq!(t.columns[0].name, "_id");
    for (name, native, ty, nullable) in expect {
        let c = col(name);
        assert_eq!(
            (c.native_type.as_str(), &c.data_type, c.nullable),
            (native, &ty, nullable),
            "customers.{name}"
        );
    }

    let o = s.table("orders").unwrap();
    assert_eq!(o.estimated_rows, Some(3));
    let oc = |name: &str| {
        o.column(name)
            .unwrap_or_else(|| panic!("orders.{name} missing: {o:?}"))
    };
    assert_eq!(
        (oc("_id").native_type.as_str(), &oc("_id").data_type),
        ("int", &DataType::Int32)
    );
    assert_eq!(oc("customer").native_type, "objectId");
    assert_eq!(oc("total").data_type, DataType::Float64);
    assert_eq!(oc("items").data_type, DataType::array(DataType::Struct));
    assert_eq!(
        (oc("note").data_type.clone(), oc("note").nullable),
        (DataType::Json, true),
        "string|int is mixed"
    );
    assert_eq!(oc("note").native_type, "int|string");
    assert_eq!(
        (oc("payload").data_type.clone(), oc("payload").nullable),
        (DataType::Binary, true)
    );

    let w = s.table("weird name \"quoted\" ü").unwrap();
    assert_eq!(
        w.columns
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>(),
        ["_id", "select", "spaced key"]
    );

    let v = s.table("adult_customers").unwrap();
    assert_eq!(
        v.properties.get("viewOn"),
        Some(&serde_json::json!("customers"))
    );
    assert!(v.primary_key.is_empty() && v.estimated_rows.is_none());
    // Views are sampled like collections; mongoeco does not evaluate view
    // pipelines (its views read as empty), so only the attempt is visible here.
    assert!(v.properties.contains_key("sampledDocuments"), "{v:?}");
}

#[tokio::test]
async fn all_databases_filters_and_depth() {
    let Some(fx) = matih_connector_testkit::fixture("MONGODB", "all_databases_filters_and_depth")
    else {
        return;
    };
    let d = driver();
    let all = case(&fx).with_cfg(|c| c.database = None);
    let c = conformance::discover(
        &d,
        &all,
        &DiscoveryRequest::default().with_depth(Depth::Schemas),
    )
    .await;
    let names: Vec<_> = c.schemas.iter().map(|s| s.name.as_str()).collect();
    assert!(
        names.contains(&"matih_seed") && names.contains(&"matih_other"),
        "{names:?}"
    );
    assert!(
        !names.contains(&"admin"),
        "system databases are hidden by default"
    );
    conformance::assert_discovery_filters(&d, &all, "matih_seed", "orders").await;

    // Hostile names through include patterns.
    let req = DiscoveryRequest {
        schemas: NameFilter {
            include: vec!["matih_seed".into()],
            exclude: vec![],
        },
        tables: NameFilter {
            include: vec!["weird name \"quoted\"*".into()],
            exclude: vec![],
        },
        ..Default::default()
    };
    let c = conformance::discover(&d, &all, &req).await;
    assert_eq!(c.table_count(), 1);

    // A sample of one still yields columns, and no statistics when not asked.
    let req = DiscoveryRequest {
        sample_size: 1,
        statistics: false,
        ..Default::default()
    };
    let c = conformance::discover(&d, &case(&fx), &req).await;
    let t = c.schemas[0].table("orders").unwrap();
    assert!(t.estimated_rows.is_none() && !t.columns.is_empty());
    assert_eq!(
        t.properties.get("sampledDocuments"),
        Some(&serde_json::json!(1))
    );
}

#[tokio::test]
async fn connection_is_reusable_and_closes() {
    let Some(fx) = matih_connector_testkit::fixture("MONGODB", "connection_is_reusable_and_closes")
    else {
        return;
    };
    let c = case(&fx);
    let mut conn = open(&driver(), &c.cfg, &c.creds, &EgressPolicy::allow_all())
        .await
        .unwrap();
    let v1 = conn.server_version().await.unwrap();
    let cat = conn
        .discover(&DiscoveryRequest::default().with_depth(Depth::Tables))
        .await
        .unwrap();
    assert_eq!(cat.table_count(), 4);
    assert_eq!(conn.server_version().await.unwrap(), v1);
    conn.close().await.unwrap();
}
