//! The newest-messages window of sampling against librdkafka's own in-process
//! mock cluster (`rdkafka::mocking::MockCluster`): a FAKE broker implemented
//! by librdkafka, named as such. Sampling and field inference against a
//! running broker are in tests/kafka.rs (the tansu fixture); this adds 50
//! older messages of another shape that the seed does not hold, and checks
//! that only the newest are sampled. Runs without any fixture.

use std::time::Duration;

use matih_connector_core::{ConnectionConfig, Credentials, DataType, DiscoveryRequest, TableKind};
use matih_connector_testkit::conformance::{self, Case};
use matih_driver_kafka::KafkaDriver;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;

fn produce(bootstrap: &str, topic: &str, messages: &[(i32, &str)]) {
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    for (partition, value) in messages {
        p.send(
            BaseRecord::<(), str>::to(topic)
                .partition(*partition)
                .payload(*value),
        )
        .unwrap();
    }
    p.flush(Duration::from_secs(10)).unwrap();
}

#[tokio::test]
async fn samples_the_newest_messages_of_each_partition() {
    matih_connector_testkit::fake(
        "rdkafka MockCluster (librdkafka in-process mock broker)",
        "samples_the_newest_messages_of_each_partition",
    );
    matih_connector_core::tls::install_default_provider();
    let cluster = MockCluster::new(1).unwrap();
    let bootstrap = cluster.bootstrap_servers();
    cluster.create_topic("orders", 3, 1).unwrap();
    cluster.create_topic("raw_text", 1, 1).unwrap();
    let mut orders = vec![
        (
            0,
            r#"{"id":1,"customer":"ada","total":19.99,"paid":true,"items":[{"sku":"A1"}],"note":"gift"}"#,
        ),
        (
            0,
            r#"{"id":2,"customer":"grace","total":5,"paid":false,"items":[]}"#,
        ),
        (
            1,
            r#"{"id":3,"customer":"linus","total":120.5,"paid":true,"items":[{"sku":"B2"}]}"#,
        ),
        (
            2,
            r#"{"id":4,"customer":"ada","total":7.25,"paid":true,"items":[],"note":null}"#,
        ),
    ];
    // Older messages of another shape: a sample from the end never sees them.
    for _ in 0..50 {
        orders.insert(0, (0, r#"{"legacy":true}"#));
    }
    produce(&bootstrap, "orders", &orders);
    produce(&bootstrap, "raw_text", &[(0, "plain text")]);

    let (host, port) = bootstrap
        .split(',')
        .next()
        .unwrap()
        .rsplit_once(':')
        .unwrap();
    let cfg = ConnectionConfig {
        host: Some(host.into()),
        port: Some(port.parse().unwrap()),
        ..Default::default()
    };
    let case = Case::new(cfg, Credentials::new());
    let d = KafkaDriver::new();
    conformance::assert_test_succeeds(&d, &case).await;

    let req = DiscoveryRequest {
        sample_size: 4,
        ..Default::default()
    };
    let c = conformance::discover(&d, &case, &req).await;
    let s = &c.schemas[0];
    let o = s.table("orders").unwrap();
    assert_eq!(o.kind, TableKind::Topic);
    assert_eq!(o.estimated_rows, Some(54));
    assert_eq!(o.properties["partitions"], serde_json::json!(3));
    let n = o.properties["sampledMessages"].as_u64().unwrap();
    assert!((3..=4).contains(&n), "sampled {n}");
    assert!(
        o.column("legacy").is_none(),
        "only the newest messages are sampled: {:?}",
        o.columns
    );
    let expect = [
        ("customer", "string", DataType::String, false),
        ("id", "integer", DataType::Int64, false),
        ("paid", "boolean", DataType::Boolean, false),
        ("total", "integer|number", DataType::Float64, false),
    ];
    for (name, native, ty, nullable) in expect {
        let col = o
            .column(name)
            .unwrap_or_else(|| panic!("orders.{name} missing: {:?}", o.columns));
        assert_eq!(
            (col.native_type.as_str(), &col.data_type, col.nullable),
            (native, &ty, nullable),
            "orders.{name}"
        );
    }
    let items = o.column("items").unwrap();
    assert!(matches!(items.data_type, DataType::Array(_)), "{items:?}");

    let r = s.table("raw_text").unwrap();
    assert_eq!(
        r.columns
            .iter()
            .map(|c| (c.name.as_str(), c.data_type.clone()))
            .collect::<Vec<_>>(),
        [("value", DataType::Binary)]
    );
}
