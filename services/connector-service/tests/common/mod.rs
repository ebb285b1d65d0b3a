//! Shared test harness: the service on a real HTTP port, tokens, a log capture
//! and a leak scanner.

#![allow(dead_code)]

pub mod fake_driver;
pub mod kube_fake;
pub mod pg;
pub mod webhook;

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use matih_connector_core::{Catalog, ConnectorType, Registry};
use matih_connector_service::app::{app, AppState, Settings};
use matih_connector_service::auth::{mint_hs256, Role, Verifier};
use matih_connector_service::secrets::local::LocalSecretStore;
use matih_connector_service::secrets::SecretStore;
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

pub const JWT_SECRET: &[u8] = b"test-jwt-secret-0123456789abcdef-0123456789";

/// How long any awaited event may take on a loaded machine before a test fails.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Awaits `what` for at most [`DEADLINE`].
pub async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: not within {DEADLINE:?}"))
}

/// Polls a condition (the metadata store's rows have no change feed) until it
/// holds, for at most [`DEADLINE`].
pub async fn until<F: std::future::Future<Output = bool>>(what: &str, mut cond: impl FnMut() -> F) {
    within(what, async {
        while !cond().await {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

/// Everything the service logs in this test binary, at every level.
pub fn logs() -> &'static Mutex<Vec<u8>> {
    static LOGS: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();
    LOGS.get_or_init(|| Mutex::new(Vec::new()))
}

struct LogWriter;
impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        logs().lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub fn init() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        matih_connector_core::tls::install_default_provider();
        let _ = tracing_subscriber::fmt()
            .with_env_filter("trace,hyper=info,hyper_util=info,h2=info,tower=info")
            .with_writer(|| LogWriter)
            .with_ansi(false)
            .try_init();
    });
}

pub fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("matih-svc-{tag}-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A TCP listener that accepts and drops connections: the fake driver's "server".
pub async fn fake_server() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            if let Ok((s, _)) = l.accept().await {
                drop(s);
            }
        }
    });
    port
}

/// A change to the service's settings a test makes before it starts.
pub type SettingsChange = Box<dyn FnOnce(&mut Settings) + Send>;

pub struct Options {
    pub registry: Registry,
    pub database_url: Option<String>,
    pub secrets: Option<Arc<dyn SecretStore>>,
    pub discovery_wait: Duration,
    /// The service's egress policy; the default settings' when `None`.
    pub egress: Option<matih_connector_core::EgressPolicy>,
    /// WARNING thresholds; the default settings' when `None`.
    pub thresholds: Option<matih_connector_service::connection_test::Thresholds>,
    /// Reconciliation's minimum orphan age; the default settings' when `None`.
    pub orphan_secret_min_age: Option<Duration>,
    /// `[custom_types.NAME]` tables (TOML), installed as the service does
    /// at start-up.
    pub custom_types: Option<String>,
    /// Any other change to the service's settings (discovery leases…).
    pub settings: Option<SettingsChange>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            registry: Registry::new(),
            database_url: None,
            secrets: None,
            discovery_wait: Duration::from_secs(10),
            egress: None,
            thresholds: None,
            orphan_secret_min_age: None,
            custom_types: None,
            settings: None,
        }
    }
}

/// The fake driver registered as POSTGRESQL and MYSQL and as the custom type ACME.
pub fn fake_registry(catalog: Arc<Mutex<Catalog>>, gate: fake_driver::Gate) -> Registry {
    matih_connector_testkit::fake("fake drivers (in-process registry)", "fake_registry");
    let mut r = Registry::new();
    for ty in [
        ConnectorType::Postgresql,
        ConnectorType::Mysql,
        ConnectorType::Custom("ACME".into()),
    ] {
        r.register(Arc::new(fake_driver::FakeDriver::new(
            ty,
            catalog.clone(),
            gate.clone(),
        )));
    }
    r
}

pub struct Harness {
    pub base: String,
    pub client: reqwest::Client,
    pub state: AppState,
    pub dir: PathBuf,
    pub db_file: Option<PathBuf>,
    /// Every response body the harness saw, for the leak scan.
    pub responses: Mutex<Vec<String>>,
}

impl Harness {
    pub async fn start(opts: Options) -> Harness {
        init();
        let dir = temp_dir("h");
        let (url, db_file) = match opts.database_url {
            Some(u) => (u, None),
            None => {
                let f = dir.join("meta.db");
                (format!("sqlite://{}?mode=rwc", f.display()), Some(f))
            }
        };
        let store = matih_connector_service::store::open(&url)
            .await
            .expect("metadata store");
        let secrets = match opts.secrets {
            Some(s) => s,
            None => Arc::new(LocalSecretStore::new(dir.join("secrets"), [42u8; 32]).unwrap()),
        };
        let mut registry = opts.registry;
        let custom_types = match &opts.custom_types {
            Some(toml) => matih_connectors::install_custom_types(&mut registry, &[toml])
                .expect("custom types"),
            None => Vec::new(),
        };
        let mut settings = Settings {
            discovery_wait: opts.discovery_wait,
            custom_types,
            ..Default::default()
        };
        if let Some(egress) = opts.egress {
            settings.egress = egress;
        }
        if let Some(t) = opts.thresholds {
            settings.thresholds = t;
        }
        if let Some(age) = opts.orphan_secret_min_age {
            settings.orphan_secret_min_age = age;
        }
        if let Some(f) = opts.settings {
            f(&mut settings);
        }
        let state = AppState::new(
            store,
            secrets,
            registry,
            Verifier::new(Some(JWT_SECRET), None).unwrap(),
            settings,
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let router = app(state.clone());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Harness {
            base,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
            state,
            dir,
            db_file,
            responses: Mutex::new(Vec::new()),
        }
    }

    pub fn platform_token(&self) -> String {
        mint_hs256(JWT_SECRET, Role::PlatformAdmin, None, "platform", 3600)
    }

    pub fn tenant_token(&self, tenant: Uuid) -> String {
        mint_hs256(
            JWT_SECRET,
            Role::TenantAdmin,
            Some(tenant),
            "tenant-admin",
            3600,
        )
    }

    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<String>,
    ) -> (u16, String) {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        self.responses.lock().unwrap().push(text.clone());
        (status, text)
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let (status, text) = self
            .raw(method, path, Some(token), body.map(|b| b.to_string()))
            .await;
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, v)
    }

    pub async fn create_tenant(&self, slug: &str, tier: &str) -> Uuid {
        let (s, v) = self
            .call(
                Method::POST,
                "/api/v1/tenants",
                &self.platform_token(),
                Some(json!({"name": format!("Tenant {slug}"), "slug": slug, "tier": tier})),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        v["id"].as_str().unwrap().parse().unwrap()
    }

    /// Waits until the connector's latest discovery job is no longer RUNNING.
    pub async fn wait_discovery(&self, tenant: Uuid, connector: &str, token: &str) -> Value {
        for _ in 0..600 {
            let (s, v) = self
                .call(
                    Method::GET,
                    &format!("/api/v1/tenants/{tenant}/connectors/{connector}/discover"),
                    token,
                    None,
                )
                .await;
            if s == 200 && v["status"] != "RUNNING" {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("discovery did not finish");
    }

    /// Asserts that no secret value appears in the metadata database file(s),
    /// the captured logs or any response this harness saw.
    pub fn assert_no_leak(&self, secrets: &[&str]) {
        let mut places: Vec<(String, Vec<u8>)> = Vec::new();
        if let Some(db) = &self.db_file {
            for suffix in ["", "-wal", "-shm"] {
                let p = PathBuf::from(format!("{}{suffix}", db.display()));
                if let Ok(bytes) = std::fs::read(&p) {
                    places.push((p.display().to_string(), bytes));
                }
            }
            assert!(!places.is_empty(), "the metadata database file must exist");
        }
        places.push(("logs".into(), logs().lock().unwrap().clone()));
        places.push((
            "responses".into(),
            self.responses.lock().unwrap().join("\n").into_bytes(),
        ));
        for secret in secrets {
            assert!(secret.len() >= 6, "scan for distinctive values only");
            for (name, bytes) in &places {
                let hay = String::from_utf8_lossy(bytes);
                assert!(
                    !hay.contains(secret),
                    "a credential value appears in {name}"
                );
            }
        }
    }
}

/// An ENTERPRISE tenant named `name`, saved directly in the store.
pub async fn saved_tenant(state: &AppState, name: &str) -> matih_connector_service::model::Tenant {
    let now = matih_connector_service::model::ts(chrono::Utc::now());
    let id = Uuid::new_v4();
    let t = matih_connector_service::model::Tenant {
        id,
        name: name.into(),
        slug: format!("t{}", &id.simple().to_string()[..10]),
        tier: matih_connector_service::model::Tier::Enterprise,
        connector_count: 0,
        created_at: now.clone(),
        updated_at: now,
    };
    state.store.create_tenant(&t).await.unwrap();
    t
}

/// Where a connector saved by [`saved_connector`] points, and how it logs in.
pub struct Target<'a> {
    pub host: &'a str,
    pub port: u16,
    pub database: &'a str,
    pub username: &'a str,
    pub password: &'a str,
}

/// A POSTGRESQL connector (plain TCP) with its secret, saved directly in the
/// stores, bypassing the create route.
pub async fn saved_connector(
    state: &AppState,
    t: &matih_connector_service::model::Tenant,
    name: &str,
    to: Target<'_>,
    status: matih_connector_service::model::ConnectorStatus,
) -> matih_connector_service::model::Connector {
    let id = Uuid::new_v4();
    let ty = ConnectorType::Postgresql;
    let secret = matih_connector_service::secrets::SecretRef::new("matih-", &t.slug, id, &ty);
    let creds = matih_connector_core::Credentials::new()
        .with("username", to.username)
        .with("password", to.password);
    state.secrets.create(&secret, &creds).await.unwrap();
    let now = matih_connector_service::model::ts(chrono::Utc::now());
    let c = matih_connector_service::model::Connector {
        id,
        tenant_id: t.id,
        name: name.into(),
        connector_type: ty,
        host: Some(to.host.into()),
        port: Some(to.port),
        database: Some(to.database.into()),
        schema: None,
        credential_secret_name: secret.name,
        ssl_enabled: false,
        ssl_mode: Some(matih_connector_core::SslMode::Disable),
        ssl_ca_pem: None,
        status,
        last_tested_at: None,
        last_test_result: None,
        last_error_code: None,
        metadata: Default::default(),
        timeouts: Default::default(),
        created_at: now.clone(),
        updated_at: now,
    };
    state.store.insert_connector(&c).await.unwrap();
    c
}

/// A pool of the test's own on the metadata store, to look at its tables
/// directly (the service reaches them only through the store trait).
pub async fn own_pool(url: &str) -> sqlx::AnyPool {
    matih_connector_service::store::open_uncached(url)
        .await
        .unwrap()
        .pool()
        .clone()
}
