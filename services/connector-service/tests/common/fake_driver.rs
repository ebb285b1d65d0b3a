//! A test-only driver: real TCP to an in-test listener, then a catalog the test
//! controls. It lets the service's own behaviour (limits, statuses, paging,
//! diffs, auth) be tested without a database server; the real drivers are
//! exercised against the PostgreSQL and MariaDB fixtures in `e2e_fixtures.rs`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use matih_connector_core::{
    async_trait, Capabilities, Catalog, Checked, Column, ConnectContext, Connection,
    ConnectorError, ConnectorType, DataType, DiscoveryRequest, Driver, DriverDescriptor, ErrorCode,
    Key, Prepared, Schema, Table, TableKind,
};

pub const GOOD_PASSWORD: &str = "fake-good-pass-7Qx";

/// Holds every discovery while it is closed: a test closes it to keep a job
/// RUNNING for exactly as long as it needs, then opens it to let the job end.
#[derive(Clone, Debug)]
pub struct Gate(Arc<tokio::sync::watch::Sender<bool>>);

impl Default for Gate {
    fn default() -> Self {
        Gate(Arc::new(tokio::sync::watch::channel(true).0))
    }
}

impl Gate {
    pub fn close(&self) {
        self.0.send_replace(false);
    }

    pub fn open(&self) {
        self.0.send_replace(true);
    }

    async fn pass(&self) {
        let mut rx = self.0.subscribe();
        let _ = rx.wait_for(|open| *open).await;
    }
}

pub struct FakeDriver {
    desc: DriverDescriptor,
    pub catalog: Arc<Mutex<Catalog>>,
    /// Discovery waits here while it is closed.
    pub gate: Gate,
    /// How many times a configuration was parsed (`Driver::prepare`, which
    /// core's `prepare` alone calls, once per call).
    pub parses: Arc<AtomicUsize>,
    /// How long each connect takes at least: a slow server.
    pub connect_delay: std::time::Duration,
}

impl FakeDriver {
    pub fn new(ty: ConnectorType, catalog: Arc<Mutex<Catalog>>, gate: Gate) -> Self {
        FakeDriver {
            desc: DriverDescriptor {
                connector_type: ty,
                display_name: "Fake",
                default_port: Some(1),
                credential_keys: vec![
                    Key::required("username", "user"),
                    Key::optional("password", "password"),
                ],
                metadata_keys: vec![],
                capabilities: Capabilities::default(),
            },
            catalog,
            gate,
            parses: Arc::default(),
            connect_delay: std::time::Duration::ZERO,
        }
    }

    /// Every connect takes at least `d` (a slow server).
    pub fn with_connect_delay(mut self, d: std::time::Duration) -> Self {
        self.connect_delay = d;
        self
    }
}

#[async_trait]
impl Driver for FakeDriver {
    fn descriptor(&self) -> &DriverDescriptor {
        &self.desc
    }

    fn prepare(&self, spec: Checked<'_>) -> Result<Box<dyn Prepared>, ConnectorError> {
        self.parses.fetch_add(1, Ordering::SeqCst);
        let (host, port) = spec.config().host_and_port(self.desc.default_port)?;
        Ok(Box::new(FakeSettings {
            host,
            port,
            password_ok: spec.credentials().get("password").map(|p| p.expose())
                == Some(GOOD_PASSWORD),
            catalog: self.catalog.clone(),
            gate: self.gate.clone(),
            connect_delay: self.connect_delay,
        }))
    }
}

#[derive(Debug)]
struct FakeSettings {
    host: String,
    port: u16,
    password_ok: bool,
    catalog: Arc<Mutex<Catalog>>,
    gate: Gate,
    connect_delay: std::time::Duration,
}

#[async_trait]
impl Prepared for FakeSettings {
    fn endpoint(&self) -> Option<(&str, u16)> {
        Some((&self.host, self.port))
    }

    async fn connect(&self, ctx: &ConnectContext) -> Result<Box<dyn Connection>, ConnectorError> {
        // A real TCP round trip, so the test's latency is not zero.
        let _s = tokio::net::TcpStream::connect(ctx.addrs[0])
            .await
            .map_err(|e| ConnectorError::from_io(e, "connecting"))?;
        if !self.connect_delay.is_zero() {
            tokio::time::sleep(self.connect_delay).await;
        }
        if !self.password_ok {
            return Err(ConnectorError::new(
                ErrorCode::AuthenticationFailed,
                "password authentication failed",
            ));
        }
        Ok(Box::new(FakeConn {
            catalog: self.catalog.lock().unwrap().clone(),
            gate: self.gate.clone(),
        }))
    }
}

struct FakeConn {
    catalog: Catalog,
    gate: Gate,
}

#[async_trait]
impl Connection for FakeConn {
    async fn server_version(&mut self) -> Result<String, ConnectorError> {
        Ok("Fake 1.0".into())
    }
    async fn probe(&mut self, _req: &DiscoveryRequest) -> Result<(), ConnectorError> {
        Ok(())
    }
    async fn discover(&mut self, _req: &DiscoveryRequest) -> Result<Catalog, ConnectorError> {
        self.gate.pass().await;
        Ok(self.catalog.clone())
    }
    async fn close(self: Box<Self>) -> Result<(), ConnectorError> {
        Ok(())
    }
}

pub fn column(name: &str, ordinal: u32, native: &str, dt: DataType) -> Column {
    Column {
        name: name.into(),
        ordinal,
        native_type: native.into(),
        data_type: dt,
        nullable: true,
        default: None,
        comment: None,
    }
}

/// `schemas` schemas of `tables` tables with three columns each, hostile names included.
pub fn catalog(schemas: usize, tables: usize) -> Catalog {
    let mut c = Catalog::default();
    for s in 0..schemas {
        let mut schema = Schema {
            name: format!("schema {s} \"été\""),
            comment: None,
            tables: vec![],
        };
        for t in 0..tables {
            let mut table = Table::new(format!("T-{t:04} select"), TableKind::Table);
            table.estimated_rows = Some(t as u64 * 10);
            table.size_bytes = Some(8192);
            table.columns = vec![
                column("id", 1, "bigint", DataType::Int64),
                column("name", 2, "text", DataType::String),
                column("Order", 3, "numeric(10,2)", DataType::decimal(10, 2)),
            ];
            schema.tables.push(table);
        }
        c.schemas.push(schema);
    }
    c
}
