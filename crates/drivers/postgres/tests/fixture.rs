//! Integration tests against the PostgreSQL fixture (`cargo xtask test-drivers
//! --only postgres`). The catalog assertions follow
//! tests/fixtures/postgres/seed.sql table by table.

use matih_connector_core::{
    open, ConnectionConfig, Credentials, DataType, Depth, DiscoveryRequest, EgressPolicy,
    ErrorCode, NameFilter, SslMode, Step, Table, TableKind,
};
use matih_connector_testkit::conformance::{self, Case, FailureCases};
use matih_connector_testkit::Fixture;
use matih_driver_postgres::PostgresDriver;

fn case(fx: &Fixture) -> Case {
    let cfg = ConnectionConfig {
        host: Some(fx.require("HOST").into()),
        port: Some(fx.port()),
        database: Some(fx.require("DATABASE").into()),
        ssl_mode: Some(SslMode::VerifyFull),
        ssl_ca_pem: Some(fx.read_file("CA_FILE")),
        ..Default::default()
    };
    let creds = Credentials::new()
        .with("username", fx.require("USER"))
        .with("password", fx.require("PASSWORD"));
    Case::new(cfg, creds)
}

fn driver() -> PostgresDriver {
    matih_connector_core::tls::install_default_provider();
    PostgresDriver::new()
}

#[tokio::test]
async fn test_succeeds_in_every_tls_mode() {
    let Some(fx) = matih_connector_testkit::fixture("POSTGRES", "test_succeeds_in_every_tls_mode")
    else {
        return;
    };
    let d = driver();
    let good = case(&fx);
    for mode in [
        SslMode::Disable,
        SslMode::Require,
        SslMode::VerifyCa,
        SslMode::VerifyFull,
    ] {
        let c = good.with_cfg(|c| c.ssl_mode = Some(mode));
        let r = conformance::assert_test_succeeds(&d, &c).await;
        let version = r.server_version.unwrap();
        assert!(version.starts_with("PostgreSQL "), "{version}");
    }
    // require without a CA encrypts without verifying.
    conformance::assert_test_succeeds(
        &d,
        &good.with_cfg(|c| {
            c.ssl_mode = Some(SslMode::Require);
            c.ssl_ca_pem = None;
        }),
    )
    .await;
    // The certificate names localhost too.
    for mode in [SslMode::VerifyCa, SslMode::VerifyFull] {
        let c = good.with_cfg(|c| {
            c.host = Some("localhost".into());
            c.ssl_mode = Some(mode);
        });
        conformance::assert_test_succeeds(&d, &c).await;
    }
}

#[tokio::test]
async fn error_codes_come_from_real_failures() {
    let Some(fx) =
        matih_connector_testkit::fixture("POSTGRES", "error_codes_come_from_real_failures")
    else {
        return;
    };
    let d = driver();
    let good = case(&fx);
    let cases = FailureCases {
        wrong_password: good.with_cred("password", "definitely-wrong-password"),
        missing_database: good.with_cfg(|c| c.database = Some("matih_no_such_db".into())),
        no_privilege: good
            .with_cred("username", fx.require("NOPRIV_USER"))
            .with_cred("password", fx.require("NOPRIV_PASSWORD")),
        untrusted_tls: good.with_cfg(|c| c.ssl_ca_pem = None),
    };
    conformance::assert_error_codes(&d, &good, &cases, Step::Connect).await;

    // verify-ca still checks the chain.
    let untrusted_ca = good.with_cfg(|c| {
        c.ssl_mode = Some(SslMode::VerifyCa);
        c.ssl_ca_pem = None;
    });
    conformance::assert_test_fails(
        &d,
        &untrusted_ca,
        Step::Connect,
        ErrorCode::SslHandshakeFailed,
    )
    .await;

    // A configured schema that does not exist fails the probe clearly.
    let missing_schema = good.with_cfg(|c| c.schema = Some("no_such_schema".into()));
    conformance::assert_test_fails(
        &d,
        &missing_schema,
        Step::AccessProbe,
        ErrorCode::DatabaseNotFound,
    )
    .await;

    // An unknown role is an authentication failure, like a wrong password.
    let unknown_user = good.with_cred("username", "matih_no_such_role");
    conformance::assert_test_fails(
        &d,
        &unknown_user,
        Step::Connect,
        ErrorCode::AuthenticationFailed,
    )
    .await;
}

#[tokio::test]
async fn sqlstate_is_kept_in_context() {
    let Some(fx) = matih_connector_testkit::fixture("POSTGRES", "sqlstate_is_kept_in_context")
    else {
        return;
    };
    let d = driver();
    let c = case(&fx).with_cred("password", "definitely-wrong-password");
    let err = open(&d, &c.cfg, &c.creds, &EgressPolicy::allow_all())
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::AuthenticationFailed);
    assert_eq!(err.context_value("sqlstate"), Some("28P01"));
    assert!(std::error::Error::source(&err).is_some(), "source kept");
    assert!(!err.to_string().contains("definitely-wrong-password"));
}

#[tokio::test]
async fn server_closing_at_once_is_connection_closed() {
    let Some(fx) =
        matih_connector_testkit::fixture("POSTGRES", "server_closing_at_once_is_connection_closed")
    else {
        return;
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            drop(s);
        }
    });
    let d = driver();
    for mode in [SslMode::Disable, SslMode::VerifyFull] {
        let c = case(&fx).with_cfg(|c| {
            c.host = Some("127.0.0.1".into());
            c.port = Some(port);
            c.ssl_mode = Some(mode);
        });
        conformance::assert_test_fails(&d, &c, Step::Connect, ErrorCode::ConnectionClosed).await;
    }
    server.abort();
}

#[tokio::test]
async fn discovery_filters_and_depth() {
    let Some(fx) = matih_connector_testkit::fixture("POSTGRES", "discovery_filters_and_depth")
    else {
        return;
    };
    let d = driver();
    conformance::assert_discovery_filters(&d, &case(&fx), "sales", "Order Items").await;
    conformance::assert_discovery_filters(&d, &case(&fx), "Analytics 2024", "客户").await;
}

#[tokio::test]
async fn hostile_patterns_match_literally_and_cannot_inject() {
    let Some(fx) = matih_connector_testkit::fixture(
        "POSTGRES",
        "hostile_patterns_match_literally_and_cannot_inject",
    ) else {
        return;
    };
    let d = driver();
    let c = case(&fx);
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
    let names = |cat: &matih_connector_core::Catalog| -> Vec<String> {
        cat.schemas
            .iter()
            .flat_map(|s| {
                s.tables
                    .iter()
                    .map(move |t| format!("{}.{}", s.name, t.name))
            })
            .collect()
    };

    // `%` and `_` in a glob are literal characters, not LIKE wildcards.
    let cat = conformance::discover(&d, &c, &only(&["odd%_schema"], &["odd_table%"])).await;
    assert_eq!(names(&cat), vec!["odd%_schema.odd_table%"]);
    let cat = conformance::discover(&d, &c, &only(&["odd__schema"], &[])).await;
    assert!(
        cat.schemas.is_empty(),
        "`_` must not match `%`: {:?}",
        names(&cat)
    );
    let cat = conformance::discover(&d, &c, &only(&["sales"], &["Order_Items"])).await;
    assert!(
        names(&cat).is_empty(),
        "`_` must not match a space: {:?}",
        names(&cat)
    );

    // Quotes, backslashes, unicode and spaces.
    let cat = conformance::discover(&d, &c, &only(&["sales"], &["quote\"d\\\\name"])).await;
    assert_eq!(names(&cat), vec!["sales.quote\"d\\name"]);
    let cat = conformance::discover(&d, &c, &only(&["ventes_été"], &["*été"])).await;
    assert_eq!(names(&cat), vec!["ventes_été.commandes_été"]);
    let cat = conformance::discover(&d, &c, &only(&["Analytics ????"], &["客*"])).await;
    assert_eq!(names(&cat), vec!["Analytics 2024.客户"]);

    // Attempts at SQL injection are just names that match nothing.
    for evil in [
        "' OR 1=1 --",
        "sales'); DROP TABLE sales.customers; --",
        "\") OR true --",
        "*' OR nspname LIKE '%",
    ] {
        let cat = conformance::discover(&d, &c, &only(&[evil], &[])).await;
        assert!(cat.schemas.is_empty(), "{evil}: {:?}", names(&cat));
        let cat = conformance::discover(&d, &c, &only(&["sales"], &[evil])).await;
        assert!(names(&cat).is_empty(), "{evil}: {:?}", names(&cat));
    }
    let cat = conformance::discover(&d, &c, &only(&["sales"], &["customers"])).await;
    assert_eq!(names(&cat), vec!["sales.customers"], "the table survived");
}

#[tokio::test]
async fn configured_schema_is_a_default_not_a_scope_and_system_schemas_are_opt_in() {
    let Some(fx) = matih_connector_testkit::fixture(
        "POSTGRES",
        "configured_schema_is_a_default_not_a_scope_and_system_schemas_are_opt_in",
    ) else {
        return;
    };
    let d = driver();
    let c = case(&fx).with_cfg(|c| c.schema = Some("ventes_été".into()));
    conformance::assert_test_succeeds(&d, &c).await;
    let cat = conformance::discover(&d, &c, &DiscoveryRequest::default()).await;
    let listed: Vec<_> = cat.schemas.iter().map(|s| s.name.as_str()).collect();
    assert!(
        listed.contains(&"ventes_été") && listed.contains(&"sales"),
        "the default schema does not narrow discovery: {listed:?}"
    );

    let cat = conformance::discover(
        &d,
        &case(&fx),
        &DiscoveryRequest::default().with_depth(Depth::Schemas),
    )
    .await;
    let names: Vec<_> = cat.schemas.iter().map(|s| s.name.as_str()).collect();
    assert!(
        !names
            .iter()
            .any(|n| ["pg_catalog", "information_schema", "pg_toast"].contains(n)),
        "{names:?}"
    );
    assert!(names.contains(&"public"), "{names:?}");
    let req = DiscoveryRequest {
        include_system: true,
        ..DiscoveryRequest::default().with_depth(Depth::Tables)
    };
    let cat = conformance::discover(&d, &case(&fx), &req).await;
    let pg_class = cat
        .schema("pg_catalog")
        .and_then(|s| s.table("pg_class"))
        .expect("pg_catalog.pg_class");
    assert_eq!(pg_class.kind, TableKind::Table);
}

#[tokio::test]
async fn statistics_off_leaves_estimates_empty() {
    let Some(fx) =
        matih_connector_testkit::fixture("POSTGRES", "statistics_off_leaves_estimates_empty")
    else {
        return;
    };
    let d = driver();
    let req = DiscoveryRequest {
        statistics: false,
        ..Default::default()
    };
    let cat = conformance::discover(&d, &case(&fx), &req).await;
    let t = cat.schema("sales").unwrap().table("customers").unwrap();
    assert_eq!((t.estimated_rows, t.size_bytes), (None, None));
    assert_eq!(t.primary_key, vec!["id"]);
    assert_eq!(t.columns.len(), 7);
}

fn col<'a>(t: &'a Table, name: &str) -> &'a matih_connector_core::Column {
    t.column(name)
        .unwrap_or_else(|| panic!("{}: column {name} missing", t.name))
}

/// (name, native type, normalized type, nullable, default)
type Expect<'a> = (&'a str, &'a str, DataType, bool, Option<&'a str>);

fn assert_columns(t: &Table, want: &[Expect<'_>]) {
    let got: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
    let expected: Vec<&str> = want.iter().map(|w| w.0).collect();
    assert_eq!(got, expected, "{}: column names in order", t.name);
    for (i, (name, native, ty, nullable, default)) in want.iter().enumerate() {
        let c = col(t, name);
        assert_eq!(c.ordinal as usize, i + 1, "{}.{name} ordinal", t.name);
        assert_eq!(c.native_type, *native, "{}.{name} native type", t.name);
        assert_eq!(&c.data_type, ty, "{}.{name} normalized type", t.name);
        assert_eq!(c.nullable, *nullable, "{}.{name} nullable", t.name);
        assert_eq!(c.default.as_deref(), *default, "{}.{name} default", t.name);
    }
}

#[tokio::test]
async fn seeded_catalog_table_by_table() {
    let Some(fx) = matih_connector_testkit::fixture("POSTGRES", "seeded_catalog_table_by_table")
    else {
        return;
    };
    use DataType as T;
    let d = driver();
    let cat = conformance::discover(&d, &case(&fx), &DiscoveryRequest::default()).await;

    let schema_names: Vec<&str> = cat.schemas.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        schema_names,
        vec![
            "Analytics 2024",
            "odd%_schema",
            "public",
            "sales",
            "ventes_été"
        ]
    );
    let sales = cat.schema("sales").unwrap();
    assert_eq!(sales.comment.as_deref(), Some("Orders and customers"));
    let table_names: Vec<&str> = sales.tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        table_names,
        vec![
            "MixedCase",
            "Order Items",
            "all_types",
            "customer_counts",
            "customers",
            "events",
            "events_2024_01",
            "events_2024_02",
            "paid_orders",
            "quote\"d\\name",
        ]
    );
    // citext and hstore live in public; no tables there.
    assert!(cat.schema("public").unwrap().tables.is_empty());

    let t = sales.table("customers").unwrap();
    assert_eq!(t.kind, TableKind::Table);
    assert_eq!(t.comment.as_deref(), Some("People who buy things"));
    assert_eq!(t.primary_key, vec!["id"]);
    assert_eq!(t.estimated_rows, Some(500));
    assert!(t.size_bytes.unwrap() > 8192, "{:?}", t.size_bytes);
    assert_columns(
        t,
        &[
            (
                "id",
                "bigint",
                T::Int64,
                false,
                Some("GENERATED BY DEFAULT AS IDENTITY"),
            ),
            ("name", "character varying(200)", T::String, false, None),
            ("email", "sales.email", T::String, true, None),
            ("ci_login", "citext", T::String, true, None),
            (
                "created_at",
                "timestamp with time zone",
                T::TimestampTz,
                false,
                Some("now()"),
            ),
            ("address", "sales.address", T::Struct, true, None),
            ("attributes", "hstore", T::Map, true, None),
        ],
    );
    assert_eq!(
        col(t, "name").comment.as_deref(),
        Some("Full name, as typed")
    );
    assert_eq!(col(t, "id").comment, None);

    let t = sales.table("all_types").unwrap();
    assert_eq!(t.primary_key, vec!["id"]);
    assert_eq!(t.estimated_rows, Some(200));
    assert!(t.size_bytes.unwrap() > 0);
    assert_columns(
        t,
        &[
            ("id", "integer", T::Int32, false, None),
            ("c_bool", "boolean", T::Boolean, true, Some("true")),
            ("c_int2", "smallint", T::Int16, true, None),
            ("c_int4", "integer", T::Int32, false, Some("0")),
            ("c_int8", "bigint", T::Int64, true, None),
            ("c_float4", "real", T::Float32, true, None),
            ("c_float8", "double precision", T::Float64, true, None),
            (
                "c_numeric",
                "numeric",
                T::Decimal {
                    precision: None,
                    scale: None,
                },
                true,
                None,
            ),
            (
                "c_num_10_2",
                "numeric(10,2)",
                T::decimal(10, 2),
                true,
                Some("0.00"),
            ),
            ("c_num_38_0", "numeric(38,0)", T::decimal(38, 0), true, None),
            (
                "c_money",
                "money",
                T::Decimal {
                    precision: None,
                    scale: None,
                },
                true,
                None,
            ),
            ("c_text", "text", T::String, true, Some("'it''s'::text")),
            ("c_varchar", "character varying(40)", T::String, true, None),
            ("c_varchar_nl", "character varying", T::String, true, None),
            ("c_char", "character(3)", T::String, true, None),
            ("c_name", "name", T::String, true, None),
            ("c_bytea", "bytea", T::Binary, true, None),
            ("c_date", "date", T::Date, true, Some("CURRENT_DATE")),
            ("c_time", "time without time zone", T::Time, true, None),
            ("c_timetz", "time with time zone", T::Time, true, None),
            (
                "c_ts",
                "timestamp without time zone",
                T::Timestamp,
                true,
                None,
            ),
            (
                "c_ts3",
                "timestamp(3) without time zone",
                T::Timestamp,
                true,
                None,
            ),
            (
                "c_tstz",
                "timestamp with time zone",
                T::TimestampTz,
                true,
                None,
            ),
            ("c_interval", "interval", T::Interval, true, None),
            ("c_uuid", "uuid", T::Uuid, true, None),
            ("c_json", "json", T::Json, true, None),
            ("c_jsonb", "jsonb", T::Json, true, Some("'{}'::jsonb")),
            ("c_int_arr", "integer[]", T::array(T::Int32), true, None),
            ("c_text_2d", "text[]", T::array(T::String), true, None),
            (
                "c_enum",
                "sales.order_status",
                T::String,
                true,
                Some("'new'::sales.order_status"),
            ),
            (
                "c_domain",
                "sales.positive_amount",
                T::decimal(12, 2),
                true,
                None,
            ),
            ("c_inet", "inet", T::String, true, None),
            ("c_cidr", "cidr", T::String, true, None),
            ("c_macaddr", "macaddr", T::String, true, None),
            ("c_bit", "bit(8)", T::String, true, None),
            ("c_varbit", "bit varying(16)", T::String, true, None),
            ("c_xml", "xml", T::String, true, None),
            ("c_point", "point", T::String, true, None),
            ("c_tsvector", "tsvector", T::String, true, None),
            ("c_oid", "oid", T::Int64, true, None),
            ("c_int4range", "int4range", T::String, true, None),
            ("c_tstzrange", "tstzrange", T::String, true, None),
            (
                "c_enum_arr",
                "sales.order_status[]",
                T::array(T::String),
                true,
                None,
            ),
            (
                "c_serial",
                "integer",
                T::Int32,
                false,
                Some("nextval('sales.all_types_c_serial_seq'::regclass)"),
            ),
            (
                "c_generated",
                "integer",
                T::Int32,
                true,
                Some("(c_int4 * 2)"),
            ),
        ],
    );
    assert_eq!(
        col(t, "c_num_10_2").comment.as_deref(),
        Some("Two decimals")
    );

    let t = sales.table("Order Items").unwrap();
    assert_eq!(t.kind, TableKind::Table);
    assert_eq!(
        t.primary_key,
        vec!["order_id", "line no"],
        "key order, not column order"
    );
    assert_eq!(
        t.comment.as_deref(),
        Some("Lines of an order; \"quoted\" comment")
    );
    assert_eq!(t.estimated_rows, Some(1000));
    assert_columns(
        t,
        &[
            ("line no", "integer", T::Int32, false, None),
            ("order_id", "bigint", T::Int64, false, None),
            ("select", "text", T::String, true, None),
            ("user", "text", T::String, true, None),
            ("table", "integer", T::Int32, true, None),
            ("quantity", "integer", T::Int32, false, Some("1")),
        ],
    );

    let t = sales.table("MixedCase").unwrap();
    assert!(t.primary_key.is_empty());
    assert_eq!(t.estimated_rows, Some(100));
    assert_columns(
        t,
        &[
            ("CamelColumn", "text", T::String, true, None),
            ("lower_column", "integer", T::Int32, true, None),
        ],
    );

    let t = sales.table("quote\"d\\name").unwrap();
    assert_eq!(t.estimated_rows, Some(0));
    assert_columns(t, &[("col\"umn", "integer", T::Int32, true, None)]);

    let t = sales.table("events").unwrap();
    assert_eq!(t.kind, TableKind::Partitioned);
    assert_eq!(t.comment.as_deref(), Some("Partitioned by month"));
    assert_eq!(t.primary_key, vec!["id", "happened_at"]);
    assert_eq!(t.estimated_rows, Some(2000), "sum of the partitions");
    assert!(t.size_bytes.unwrap() > 0);
    assert_columns(
        t,
        &[
            ("id", "bigint", T::Int64, false, None),
            ("happened_at", "date", T::Date, false, None),
            ("payload", "jsonb", T::Json, true, None),
        ],
    );
    let mut partition_rows = 0;
    for (name, bound) in [
        (
            "events_2024_01",
            "FOR VALUES FROM ('2024-01-01') TO ('2024-02-01')",
        ),
        (
            "events_2024_02",
            "FOR VALUES FROM ('2024-02-01') TO ('2024-03-01')",
        ),
    ] {
        let p = sales.table(name).unwrap();
        assert_eq!(p.kind, TableKind::Table, "{name}");
        assert_eq!(p.properties["partitionOf"], "events", "{name}");
        assert_eq!(p.properties["partitionBound"], bound, "{name}");
        assert!(!p.properties.contains_key("partitionOfSchema"));
        assert_eq!(p.primary_key, vec!["id", "happened_at"]);
        assert_eq!(p.columns.len(), 3);
        assert!(p.size_bytes.unwrap() > 0);
        partition_rows += p.estimated_rows.unwrap();
    }
    assert_eq!(partition_rows, 2000);

    let t = sales.table("paid_orders").unwrap();
    assert_eq!(t.kind, TableKind::View);
    assert_eq!(t.comment.as_deref(), Some("Orders with quantities"));
    assert_eq!((t.estimated_rows, t.size_bytes), (None, None));
    assert!(t.primary_key.is_empty());
    assert_columns(
        t,
        &[
            ("order_id", "bigint", T::Int64, true, None),
            ("quantity", "bigint", T::Int64, true, None),
        ],
    );

    let t = sales.table("customer_counts").unwrap();
    assert_eq!(t.kind, TableKind::MaterializedView);
    assert!(t.estimated_rows.unwrap() > 0);
    assert!(t.size_bytes.unwrap() > 0);
    assert_columns(
        t,
        &[
            (
                "day",
                "timestamp with time zone",
                T::TimestampTz,
                true,
                None,
            ),
            ("customers", "bigint", T::Int64, true, None),
        ],
    );

    let analytics = cat.schema("Analytics 2024").unwrap();
    assert_eq!(
        analytics
            .tables
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>(),
        vec!["daily metrics", "客户"]
    );
    let t = analytics.table("客户").unwrap();
    assert_eq!(t.comment.as_deref(), Some("客户表"));
    assert_eq!(t.primary_key, vec!["编号"]);
    assert_eq!(t.estimated_rows, Some(300));
    assert_columns(
        t,
        &[
            ("编号", "integer", T::Int32, false, None),
            ("名字", "text", T::String, false, None),
        ],
    );
    let t = analytics.table("daily metrics").unwrap();
    assert_eq!(t.primary_key, vec!["day"]);
    assert_eq!(t.estimated_rows, Some(120));
    assert_columns(
        t,
        &[
            ("day", "date", T::Date, false, None),
            ("visits", "bigint", T::Int64, false, Some("0")),
        ],
    );

    let t = cat
        .schema("ventes_été")
        .unwrap()
        .table("commandes_été")
        .unwrap();
    assert_eq!(t.primary_key, vec!["numéro"]);
    assert_eq!(t.estimated_rows, Some(50));
    assert_columns(
        t,
        &[
            ("numéro", "integer", T::Int32, false, None),
            ("montant", "numeric(10,2)", T::decimal(10, 2), true, None),
        ],
    );

    // Depth tables keeps keys and statistics without columns.
    let cat = conformance::discover(
        &d,
        &case(&fx),
        &DiscoveryRequest::default().with_depth(Depth::Tables),
    )
    .await;
    let t = cat.schema("sales").unwrap().table("Order Items").unwrap();
    assert!(t.columns.is_empty());
    assert_eq!(t.primary_key, vec!["order_id", "line no"]);
    assert_eq!(t.estimated_rows, Some(1000));
}

/// Sessions of this driver still open on the server under `app`.
async fn sessions(c: &Case, app: &str) -> i64 {
    // A raw client: the driver has no query API, and this must not count itself.
    let mut cfg = tokio_postgres::Config::new();
    cfg.host(c.cfg.host.as_deref().unwrap())
        .port(c.cfg.port.unwrap())
        .dbname(c.cfg.database.as_deref().unwrap())
        .user(c.creds.get("username").unwrap().expose())
        .password(c.creds.get("password").unwrap().expose());
    let (client, conn) = cfg
        .connect(tokio_postgres::NoTls)
        .await
        .expect("raw connect");
    let task = tokio::spawn(conn);
    let n: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
            &[&app],
        )
        .await
        .unwrap()
        .get(0);
    drop(client);
    let _ = task.await;
    n
}

#[tokio::test]
async fn sizes_track_pg_total_relation_size() {
    let Some(fx) =
        matih_connector_testkit::fixture("POSTGRES", "sizes_track_pg_total_relation_size")
    else {
        return;
    };
    let d = driver();
    let c = case(&fx);
    let cat = conformance::discover(
        &d,
        &c,
        &DiscoveryRequest::default().with_depth(Depth::Tables),
    )
    .await;
    let mut cfg = tokio_postgres::Config::new();
    cfg.host(c.cfg.host.as_deref().unwrap())
        .port(c.cfg.port.unwrap())
        .dbname(c.cfg.database.as_deref().unwrap())
        .user(c.creds.get("username").unwrap().expose())
        .password(c.creds.get("password").unwrap().expose());
    let (client, conn) = cfg
        .connect(tokio_postgres::NoTls)
        .await
        .expect("raw connect");
    let task = tokio::spawn(conn);
    for (schema, table) in [
        ("sales", "customers"),
        ("sales", "all_types"),
        ("sales", "Order Items"),
    ] {
        let ours = cat
            .schema(schema)
            .unwrap()
            .table(table)
            .unwrap()
            .size_bytes
            .unwrap();
        // Both are built from the same files; ours leaves out the free-space and
        // visibility maps, so it is at most the total and not far below it.
        let total: i64 = client
            .query_one(
                "SELECT pg_total_relation_size(format('%I.%I', $1::text, $2::text)::regclass)",
                &[&schema, &table],
            )
            .await
            .unwrap()
            .get(0);
        let total = total as u64;
        assert!(
            ours <= total && ours * 2 >= total,
            "{schema}.{table}: ours {ours}, pg_total_relation_size {total}"
        );
    }
    drop(client);
    let _ = task.await;
}

#[tokio::test]
async fn closed_and_dropped_connections_end_their_sessions() {
    let Some(fx) = matih_connector_testkit::fixture(
        "POSTGRES",
        "closed_and_dropped_connections_end_their_sessions",
    ) else {
        return;
    };
    let d = driver();
    let app = matih_connector_testkit::unique_name("matih_t");
    let c = case(&fx).with_cfg(|c| {
        c.metadata
            .insert("applicationName".into(), serde_json::json!(app));
    });
    let mut conn = open(&d, &c.cfg, &c.creds, &EgressPolicy::allow_all())
        .await
        .unwrap();
    assert!(conn
        .server_version()
        .await
        .unwrap()
        .starts_with("PostgreSQL 1"));
    let mut dropped = Vec::new();
    for _ in 0..3 {
        dropped.push(
            open(&d, &c.cfg, &c.creds, &EgressPolicy::allow_all())
                .await
                .unwrap(),
        );
    }
    assert_eq!(sessions(&c, &app).await, 4);
    conn.close().await.unwrap();
    drop(dropped);
    // The server notices a closed socket at once; give it a moment to reap.
    let mut left = -1;
    for _ in 0..50 {
        left = sessions(&c, &app).await;
        if left == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(left, 0, "sessions left open");
}
