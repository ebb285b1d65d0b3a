//! Integration tests against the Kafka fixture (`cargo xtask test-drivers
//! --only kafka`): two tansu 0.6 brokers in memory. The main one is seeded
//! from tests/fixtures/kafka/seed.json by kafka-python (a client independent
//! of the driver's librdkafka), so sampling and field inference run against
//! messages a running broker serves back. The second requires SASL/SCRAM
//! (`--authentication`) and knows no user: it proves the broker's rejection
//! (a successful SASL login cannot be set up with this tansu build, see
//! xtask/src/fixtures/kafka.rs). tansu's TLS cannot be switched on in this
//! build, so SSL_HANDSHAKE_FAILED and PERMISSION_DENIED are covered by the
//! unit tests of the error mapping.

use matih_connector_core::{
    ConnectionConfig, Credentials, DataType, Depth, DiscoveryRequest, ErrorCode, NameFilter, Step,
    Table, TableKind, Timeouts,
};
use matih_connector_testkit::conformance::{self, Case};
use matih_connector_testkit::Fixture;
use matih_driver_kafka::KafkaDriver;

fn case(fx: &Fixture) -> Case {
    let cfg = ConnectionConfig {
        host: Some(fx.require("HOST").into()),
        port: Some(fx.port()),
        ..Default::default()
    };
    Case::new(cfg, Credentials::new())
}

fn driver() -> KafkaDriver {
    matih_connector_core::tls::install_default_provider();
    KafkaDriver::new()
}

#[tokio::test]
async fn test_succeeds_with_api_versions() {
    let Some(fx) = matih_connector_testkit::fixture("KAFKA", "test_succeeds_with_api_versions")
    else {
        return;
    };
    let r = conformance::assert_test_succeeds(&driver(), &case(&fx)).await;
    let v = r.server_version.unwrap();
    assert!(v.starts_with("Kafka protocol (ApiVersions: "), "{v}");
    assert!(!v.contains("Fetch v-"), "{v}");
}

#[tokio::test]
async fn error_codes_the_fixture_can_produce() {
    let Some(fx) = matih_connector_testkit::fixture("KAFKA", "error_codes_the_fixture_can_produce")
    else {
        return;
    };
    let d = driver();
    let good = case(&fx);
    let refused = good.with_cfg(|c| c.port = Some(conformance::closed_port()));
    conformance::assert_test_fails(&d, &refused, Step::Tcp, ErrorCode::ConnectionRefused).await;
    let dns = good.with_cfg(|c| c.host = Some("no-such-broker.matih.invalid".into()));
    conformance::assert_test_fails(&d, &dns, Step::Dns, ErrorCode::DnsResolutionFailed).await;
    let (port, listener) = conformance::silent_listener().await;
    let silent = good.with_cfg(|c| {
        c.port = Some(port);
        c.timeouts = Timeouts {
            connect_ms: 1000,
            query_ms: 1000,
        };
    });
    let started = std::time::Instant::now();
    conformance::assert_test_fails(&d, &silent, Step::Connect, ErrorCode::Timeout).await;
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    listener.abort();

    // SASL credentials against the broker without authentication: tansu
    // answers the SASL handshake with UNSUPPORTED_SASL_MECHANISM (33).
    let sasl = good
        .with_cred("username", "someone")
        .with_cred("password", "not-a-real-password")
        .with_cfg(|c| {
            c.timeouts = Timeouts {
                connect_ms: 3000,
                query_ms: 3000,
            };
        });
    let r = conformance::assert_test_fails(&d, &sasl, Step::Connect, ErrorCode::Unsupported).await;
    assert!(
        r.message.contains("Unsupported SASL mechanism"),
        "{}",
        r.message
    );
}

/// The broker started with `--authentication`: a SCRAM login it cannot
/// verify (it holds no such user) is refused by the broker itself.
#[tokio::test]
async fn sasl_broker_refuses_unknown_credentials() {
    let Some(fx) =
        matih_connector_testkit::fixture("KAFKA", "sasl_broker_refuses_unknown_credentials")
    else {
        return;
    };
    let d = driver();
    let sasl = |mechanism: &str| {
        let mechanism = mechanism.to_owned();
        case(&fx)
            .with_cred("username", "matih-reader")
            .with_cred("password", "not-a-known-password")
            .with_cfg(|c| {
                c.port = Some(fx.require("SASL_PORT").parse().unwrap());
                c.metadata
                    .insert("saslMechanism".into(), serde_json::json!(mechanism));
                c.timeouts = Timeouts {
                    connect_ms: 3000,
                    query_ms: 3000,
                };
            })
    };
    for mechanism in ["SCRAM-SHA-256", "SCRAM-SHA-512"] {
        let r = conformance::assert_test_fails(
            &d,
            &sasl(mechanism),
            Step::Connect,
            ErrorCode::AuthenticationFailed,
        )
        .await;
        assert!(
            r.message.contains("SASL SCRAM authentication failed"),
            "{mechanism}: {}",
            r.message
        );
    }
}

/// (name, native type, normalized type, nullable), sorted by name: the order
/// of first appearance depends on which partition answers first.
fn fields(t: &Table) -> Vec<(String, String, DataType, bool)> {
    let mut f: Vec<_> = t
        .columns
        .iter()
        .map(|c| {
            (
                c.name.to_string(),
                c.native_type.to_string(),
                c.data_type.clone(),
                c.nullable,
            )
        })
        .collect();
    f.sort_by(|a, b| a.0.cmp(&b.0));
    f
}

fn want(cols: &[(&str, &str, DataType, bool)]) -> Vec<(String, String, DataType, bool)> {
    cols.iter()
        .map(|(n, nt, t, nl)| ((*n).to_owned(), (*nt).to_owned(), t.clone(), *nl))
        .collect()
}

#[tokio::test]
async fn seeded_topics_message_counts_and_fields() {
    let Some(fx) =
        matih_connector_testkit::fixture("KAFKA", "seeded_topics_message_counts_and_fields")
    else {
        return;
    };
    let c = conformance::discover(&driver(), &case(&fx), &DiscoveryRequest::default()).await;
    assert_eq!(c.schemas.len(), 1);
    let s = &c.schemas[0];
    assert_eq!(
        s.name,
        fx.require("CLUSTER_ID"),
        "the cluster id names the schema"
    );
    let names: Vec<_> = s.tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        ["clicks", "empty.topic_name-1", "orders", "raw_text"]
    );
    assert!(s.tables.iter().all(|t| t.kind == TableKind::Topic));

    let o = s.table("orders").unwrap();
    assert_eq!(o.estimated_rows, Some(5));
    assert_eq!(o.properties["partitions"], serde_json::json!(3));
    assert_eq!(o.properties["replicationFactor"], serde_json::json!(1));
    // Every seeded message is sampled (the default sample is larger than
    // the topic), from all three partitions, and its fields inferred.
    assert_eq!(o.properties["sampledMessages"], serde_json::json!(5));
    assert_eq!(
        fields(o),
        want(&[
            ("customer", "string", DataType::String, false),
            ("id", "integer", DataType::Int64, false),
            (
                "items",
                "array<object>",
                DataType::array(DataType::Struct),
                false
            ),
            // "gift" in one message, null in another, absent from three.
            ("note", "string", DataType::String, true),
            ("paid", "boolean", DataType::Boolean, false),
            ("total", "integer|number", DataType::Float64, false),
        ])
    );
    let ordinals: Vec<u32> = o.columns.iter().map(|c| c.ordinal).collect();
    assert_eq!(ordinals, [1, 2, 3, 4, 5, 6]);

    let k = s.table("clicks").unwrap();
    assert_eq!(k.estimated_rows, Some(2));
    assert_eq!(k.properties["sampledMessages"], serde_json::json!(2));
    assert_eq!(
        fields(k),
        want(&[
            ("ms", "integer", DataType::Int64, false),
            ("page", "string", DataType::String, false),
        ])
    );
    // Not JSON: one binary value column.
    let r = s.table("raw_text").unwrap();
    assert_eq!(r.estimated_rows, Some(1));
    assert_eq!(r.properties["sampledMessages"], serde_json::json!(1));
    assert_eq!(
        fields(r),
        want(&[("value", "bytes", DataType::Binary, true)])
    );

    let e = s.table("empty.topic_name-1").unwrap();
    assert_eq!((e.estimated_rows, e.columns.len()), (Some(0), 0));
    assert_eq!(e.properties["sampledMessages"], serde_json::json!(0));
    assert_eq!(e.properties["partitions"], serde_json::json!(2));
}

#[tokio::test]
async fn filters_depth_and_bounds() {
    let Some(fx) = matih_connector_testkit::fixture("KAFKA", "filters_depth_and_bounds") else {
        return;
    };
    let d = driver();
    let cluster = fx.require("CLUSTER_ID").to_owned();
    conformance::assert_discovery_filters(&d, &case(&fx), &cluster, "orders").await;

    let only = |p: &str| NameFilter {
        include: vec![p.into()],
        exclude: vec![],
    };
    let req = DiscoveryRequest {
        tables: only("empty.*"),
        ..Default::default()
    };
    let c = conformance::discover(&d, &case(&fx), &req).await;
    assert_eq!(c.table_count(), 1);

    // A sample of two reads exactly two of the five messages (one from each
    // of two partitions); no statistics when not asked.
    let req = DiscoveryRequest {
        tables: only("orders"),
        sample_size: 2,
        statistics: false,
        ..Default::default()
    };
    let c = conformance::discover(&d, &case(&fx), &req).await;
    let o = c.schemas[0].table("orders").unwrap();
    assert!(o.estimated_rows.is_none());
    assert_eq!(o.properties["sampledMessages"], serde_json::json!(2));
    let names: Vec<&str> = o.columns.iter().map(|c| c.name.as_str()).collect();
    for always in ["customer", "id", "items", "paid", "total"] {
        assert!(names.contains(&always), "{always} missing from {names:?}");
    }

    // clusterName overrides the schema name.
    let named = case(&fx).with_cfg(|c| {
        c.metadata
            .insert("clusterName".into(), serde_json::json!("prod-events"));
    });
    let c = conformance::discover(
        &d,
        &named,
        &DiscoveryRequest::default().with_depth(Depth::Schemas),
    )
    .await;
    assert_eq!(c.schemas[0].name, "prod-events");
}
