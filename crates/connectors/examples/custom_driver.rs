//! Register an in-house driver under a type of your own (`ACME_LEDGER`) beside
//! the drivers the features compile in, then use it like any other: the same
//! spec format, the same connectivity test, the same catalog model.
//!
//! ```text
//! cargo run -p matih-connectors --no-default-features --features postgres \
//!     --example custom_driver
//! ```
//!
//! The ledger here answers from memory; a real one would call its service in
//! its prepared settings' `connect` (bounded by `ctx.timeouts`, to the
//! addresses in `ctx.addrs`).

use std::process::ExitCode;
use std::sync::Arc;

use matih_connectors::core::{
    async_trait, prepare, run_prepared_test, run_test, Capabilities, Catalog, Checked, Column,
    ConnectContext, Connection, ConnectorError, ConnectorSpec, ConnectorType, DataType, Depth,
    DiscoveryRequest, Driver, DriverDescriptor, EgressPolicy, Key, Prepared, Schema, SecretString,
    Table, TableKind, TestOptions,
};

/// The in-house driver: static facts in a descriptor, its own settings
/// parsed once in `prepare` (core has checked the keys the descriptor
/// declares), everything else in the prepared value's `connect`.
struct LedgerDriver {
    descriptor: DriverDescriptor,
}

impl LedgerDriver {
    fn new() -> LedgerDriver {
        LedgerDriver {
            descriptor: DriverDescriptor {
                // Any name that is not one of the standard types becomes Custom.
                connector_type: "ACME_LEDGER".parse().expect("a type name"),
                display_name: "ACME ledger",
                default_port: None,
                credential_keys: vec![Key::required("apiKey", "ledger API key")],
                metadata_keys: vec![],
                capabilities: Capabilities::default(),
            },
        }
    }
}

#[async_trait]
impl Driver for LedgerDriver {
    fn descriptor(&self) -> &DriverDescriptor {
        &self.descriptor
    }

    fn prepare(&self, spec: Checked<'_>) -> Result<Box<dyn Prepared>, ConnectorError> {
        Ok(Box::new(LedgerSettings {
            api_key: spec.credentials().require("apiKey")?.clone(),
        }))
    }
}

/// The ledger's typed settings. `Debug` must not print the key.
struct LedgerSettings {
    api_key: SecretString,
}

impl std::fmt::Debug for LedgerSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LedgerSettings { api_key: *** }")
    }
}

#[async_trait]
impl Prepared for LedgerSettings {
    /// No network endpoint: the core skips DNS and TCP for this type.
    fn endpoint(&self) -> Option<(&str, u16)> {
        None
    }

    async fn connect(&self, _ctx: &ConnectContext) -> Result<Box<dyn Connection>, ConnectorError> {
        if self.api_key.expose() != "ledger-demo-key" {
            // A stable code the embedder can act on; the key itself never
            // appears in the message.
            return Err(ConnectorError::new(
                matih_connectors::core::ErrorCode::AuthenticationFailed,
                "the ledger refused the API key",
            ));
        }
        Ok(Box::new(LedgerConnection))
    }
}

struct LedgerConnection;

#[async_trait]
impl Connection for LedgerConnection {
    async fn server_version(&mut self) -> Result<String, ConnectorError> {
        Ok("ledger 2.1".into())
    }

    async fn probe(&mut self, _: &DiscoveryRequest) -> Result<(), ConnectorError> {
        Ok(())
    }

    async fn discover(&mut self, req: &DiscoveryRequest) -> Result<Catalog, ConnectorError> {
        let mut entries = Table::new("entries", TableKind::Endpoint);
        if req.depth == Depth::Columns {
            for (i, (name, native, ty)) in [
                ("id", "uuid", DataType::Uuid),
                ("amount", "money(18,2)", DataType::decimal(18, 2)),
                ("booked_at", "instant", DataType::TimestampTz),
            ]
            .into_iter()
            .enumerate()
            {
                entries.columns.push(Column {
                    name: name.into(),
                    ordinal: i as u32 + 1,
                    native_type: native.into(),
                    data_type: ty,
                    nullable: name != "id",
                    default: None,
                    comment: None,
                });
            }
            entries.primary_key = vec!["id".into()];
        }
        Ok(Catalog {
            schemas: vec![Schema {
                name: "books".into(),
                comment: None,
                tables: vec![entries],
            }],
        })
    }

    async fn close(self: Box<Self>) -> Result<(), ConnectorError> {
        Ok(())
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    // The standard drivers of this build, plus ours.
    let mut registry = matih_connectors::registry();
    registry.register(Arc::new(LedgerDriver::new()));
    let names: Vec<String> = registry.types().map(ToString::to_string).collect();
    println!("registered types: {}", names.join(", "));

    let spec = ConnectorSpec::from_json(
        r#"{"type":"acme_ledger","credentials":{"apiKey":"ledger-demo-key"}}"#,
    )
    .expect("a valid spec");
    assert_eq!(
        spec.connector_type,
        ConnectorType::Custom("ACME_LEDGER".into())
    );
    let driver = match registry.get(&spec.connector_type) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{}: {}", e.code(), e.message());
            return ExitCode::FAILURE;
        }
    };
    let opts = TestOptions {
        egress: EgressPolicy::default(),
        ..Default::default()
    };
    // Checked and parsed once; the test and the connection reuse it.
    let prepared = match prepare(&*driver, &spec.config(), &spec.credentials) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{}: {}", e.code(), e.message());
            return ExitCode::FAILURE;
        }
    };
    let report = run_prepared_test(&prepared, &opts).await;
    println!(
        "test: success={} version={:?}",
        report.success, report.server_version
    );

    // One-off: run_test prepares (its validate step) and tests.
    let mut bad = spec.credentials.clone();
    bad.insert("apiKey", "wrong-key");
    let refused = run_test(&*driver, &spec.config(), &bad, &opts).await;
    println!("with a wrong key: {:?}", refused.error_code);

    let mut conn = match prepared.open(&opts.egress).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}: {}", e.code(), e.message());
            return ExitCode::FAILURE;
        }
    };
    let catalog = conn
        .discover(&DiscoveryRequest::default())
        .await
        .expect("discovery");
    let _ = conn.close().await;
    for schema in &catalog.schemas {
        for table in &schema.tables {
            for c in &table.columns {
                println!("{}.{}.{}: {}", schema.name, table.name, c.name, c.data_type);
            }
        }
    }
    if report.success && !refused.success {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
