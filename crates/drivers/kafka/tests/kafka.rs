//! Integration tests against the Kafka fixture (`cargo xtask test-drivers
//! --only kafka`): the tansu broker in memory, seeded from
//! tests/fixtures/kafka/seed.json. tansu has no SASL or TLS in this mode, so
//! AUTHENTICATION_FAILED, SSL_HANDSHAKE_FAILED and PERMISSION_DENIED are
//! covered by the unit tests of the error mapping.

use matih_connector_core::{
    ConnectionConfig, Credentials, Depth, DiscoveryRequest, EgressPolicy, ErrorCode, NameFilter,
    Step, TableKind, Timeouts,
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

    // SASL against a broker without it: librdkafka's handshake fails; the
    // failure must be a connect-step error naming a cause, never INTERNAL.
    let sasl = good
        .with_cred("username", "someone")
        .with_cred("password", "not-a-real-password")
        .with_cfg(|c| {
            c.timeouts = Timeouts {
                connect_ms: 3000,
                query_ms: 3000,
            };
        });
    let r = matih_connector_core::run_test(
        &d,
        &sasl.cfg,
        &sasl.creds,
        &matih_connector_core::TestOptions {
            egress: EgressPolicy::allow_all(),
            ..Default::default()
        },
    )
    .await;
    assert!(!r.success);
    assert_ne!(r.error_code, Some(ErrorCode::Internal), "{r:?}");
    conformance::assert_no_secret(&serde_json::to_string(&r).unwrap(), &sasl.creds);
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
    // tansu's in-memory storage answers Fetch with no records, so samples
    // are empty here (tests/mock_cluster.rs proves sampling); the attempt is
    // bounded and leaves no columns rather than guessing.
    assert!(o.properties.contains_key("sampledMessages"));

    let k = s.table("clicks").unwrap();
    assert_eq!(k.estimated_rows, Some(2));
    let r = s.table("raw_text").unwrap();
    assert_eq!(r.estimated_rows, Some(1));

    let e = s.table("empty.topic_name-1").unwrap();
    assert_eq!((e.estimated_rows, e.columns.len()), (Some(0), 0));
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

    // A sample of two reads at most two messages; no statistics when not asked.
    let req = DiscoveryRequest {
        tables: only("orders"),
        sample_size: 2,
        statistics: false,
        ..Default::default()
    };
    let c = conformance::discover(&d, &case(&fx), &req).await;
    let o = c.schemas[0].table("orders").unwrap();
    assert!(o.estimated_rows.is_none());
    assert!(o.properties["sampledMessages"].as_u64().unwrap() <= 2);

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
