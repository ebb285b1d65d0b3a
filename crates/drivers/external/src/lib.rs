//! Custom connector types for MATIH connectors: any Airbyte source or Singer
//! tap, configured by the operator, run as a bounded child process and spoken
//! to through its protocol.
//!
//! One [`ExternalDriver`] serves one configured type. Its connections do
//! their work in child processes: the connectivity test's access probe runs
//! Airbyte `check --config F` (or, for a Singer tap, `--config F --discover`,
//! which must exit 0 and print a catalog); discovery runs `discover`. The
//! connector's metadata and credentials make up the protocol's config JSON,
//! written to a 0600 file in a private directory and removed afterwards.
//!
//! ```no_run
//! # async fn demo() -> Result<(), matih_connector_core::ConnectorError> {
//! use matih_connector_core::{open, ConnectionConfig, Credentials, DiscoveryRequest, EgressPolicy, Registry};
//! let types = matih_driver_external::CustomTypes::from_toml(r#"
//!     [custom_types.FAKER]
//!     protocol = "airbyte"
//!     command = ["source-faker"]
//!     timeout_secs = 60
//! "#)?;
//! let mut registry = Registry::new();
//! matih_driver_external::install(&mut registry, &types);
//! let driver = registry.get(&"FAKER".parse()?)?;
//! let mut cfg = ConnectionConfig::default();
//! cfg.metadata.insert("count".into(), 10.into());
//! let mut conn = open(&*driver, &cfg, &Credentials::new(), &EgressPolicy::default()).await?;
//! let catalog = conn.discover(&DiscoveryRequest::default()).await?;
//! println!("{} streams", catalog.table_count());
//! # Ok(()) }
//! ```
//!
//! Custom types are operator-trusted code: the egress policy cannot reach
//! inside a child process. The child inherits no credentials (only the
//! variables the operator allow-lists), and its whole process group is
//! killed when a run ends. See `docs/drivers/external.md`.

mod config;
mod errors;
mod process;
mod protocol;
mod types;

use std::path::Path;
use std::sync::Arc;

use matih_connector_core::{
    async_trait, Capabilities, Catalog, Checked, ConnectContext, Connection, ConnectionConfig,
    ConnectorError, ConnectorType, Credentials, DiscoveryRequest, Driver, DriverDescriptor, Key,
    Prepared, Registry,
};
use serde_json::{Map, Value};

pub use crate::config::{
    CustomTypeConfig, CustomTypes, Protocol, DEFAULT_MAX_OUTPUT_BYTES, DEFAULT_TIMEOUT_SECS,
};
pub use crate::process::WORKDIR_PREFIX;
pub use crate::protocol::DEFAULT_SCHEMA;

use crate::process::{Finished, Runner, CONFIG_ARG};
use crate::protocol::Ctx;

/// Registers one driver per configured type.
pub fn install(registry: &mut Registry, types: &CustomTypes) {
    for (name, cfg) in types.iter() {
        registry.register(Arc::new(ExternalDriver::new(name, cfg.clone())));
    }
}

/// The driver of one custom type.
#[derive(Debug)]
pub struct ExternalDriver {
    descriptor: DriverDescriptor,
    runner: Arc<Runner>,
}

impl ExternalDriver {
    /// A driver for the type `name` (a custom type's wire name, e.g. `FAKER`).
    ///
    /// The display name is kept for the process's life (descriptors hold
    /// static text); types are configured once at start-up.
    pub fn new(name: &str, cfg: CustomTypeConfig) -> Self {
        let display: &'static str = Box::leak(
            cfg.display_name
                .clone()
                .unwrap_or_else(|| name.to_owned())
                .into_boxed_str(),
        );
        ExternalDriver {
            descriptor: DriverDescriptor {
                connector_type: ConnectorType::Custom(name.to_owned()),
                display_name: display,
                default_port: None,
                // The connector defines its own settings (Airbyte's
                // connectionSpecification, a tap's settings): every key passes.
                credential_keys: vec![Key::ANY],
                metadata_keys: vec![Key::ANY],
                capabilities: Capabilities {
                    primary_keys: true,
                    ..Capabilities::default()
                },
            },
            runner: Arc::new(Runner::new(name, cfg)),
        }
    }

    /// The protocol the type's executable speaks.
    pub fn protocol(&self) -> Protocol {
        self.runner.config().protocol
    }
}

#[async_trait]
impl Driver for ExternalDriver {
    fn descriptor(&self) -> &DriverDescriptor {
        &self.descriptor
    }

    /// Builds the protocol's config once; nothing else to parse.
    fn prepare(&self, spec: Checked<'_>) -> Result<Box<dyn Prepared>, ConnectorError> {
        let (cfg, creds) = (spec.config(), spec.credentials());
        Ok(Box::new(ExternalSettings {
            runner: self.runner.clone(),
            type_name: self.descriptor.connector_type.as_str().to_owned(),
            config: config_json(cfg, creds)?,
            secrets: creds
                .secrets()
                .map(|(_, v)| v.expose().to_owned())
                .collect(),
        }))
    }
}

/// A custom type's prepared run: the protocol config (credentials included,
/// so never printed) and the values to redact from the child's output.
struct ExternalSettings {
    runner: Arc<Runner>,
    type_name: String,
    config: Value,
    secrets: Vec<String>,
}

impl std::fmt::Debug for ExternalSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExternalSettings")
            .field("type_name", &self.type_name)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Prepared for ExternalSettings {
    /// No fixed endpoint: the child reaches whatever its config names.
    fn endpoint(&self) -> Option<(&str, u16)> {
        None
    }

    /// Cheap: finds the executable (`DRIVER_UNAVAILABLE` when it is missing).
    /// The protocol calls run in the access probe and discovery.
    async fn connect(&self, _: &ConnectContext) -> Result<Box<dyn Connection>, ConnectorError> {
        let program = self.runner.program()?;
        Ok(Box::new(ExternalConnection {
            runner: self.runner.clone(),
            type_name: self.type_name.clone(),
            config: self.config.clone(),
            secrets: self.secrets.clone(),
            version: package_version(&program),
            singer_output: None,
        }))
    }
}

/// The protocol's config: the metadata, then `host`, `port`, `database` and
/// `schema` when set (unless the metadata has them), then the credentials. A
/// credential that repeats a metadata key is refused: which one wins would
/// be a guess.
fn config_json(cfg: &ConnectionConfig, creds: &Credentials) -> Result<Value, ConnectorError> {
    let mut out: Map<String, Value> = cfg.metadata.clone().into_iter().collect();
    let fields = [
        ("host", cfg.host.clone().map(Value::from)),
        ("port", cfg.port.map(Value::from)),
        ("database", cfg.database.clone().map(Value::from)),
        ("schema", cfg.schema.clone().map(Value::from)),
    ];
    for (key, value) in fields {
        if let Some(v) = value {
            out.entry(key).or_insert(v);
        }
    }
    for (key, value) in creds.iter() {
        if out.contains_key(key) {
            return Err(ConnectorError::invalid_config(
                "credentials",
                format!("credentials.{key} repeats a metadata or connection key"),
            ));
        }
        out.insert(key.to_owned(), Value::from(value.expose()));
    }
    Ok(Value::Object(out))
}

/// `<package> <version>` of a Python console script: the interpreter named by
/// the script's `#!` line, its environment's `site-packages`, and the
/// `.dist-info` whose `entry_points.txt` declares the script. `None` for
/// anything else.
fn package_version(program: &Path) -> Option<String> {
    let script = program.file_name()?.to_str()?.to_owned();
    let head = std::fs::read(program).ok()?;
    let first = head.split(|b| *b == b'\n').next()?;
    let interpreter = std::str::from_utf8(first).ok()?.strip_prefix("#!")?.trim();
    let interpreter = Path::new(interpreter.split_whitespace().next()?);
    let root = interpreter.parent()?.parent()?;
    for lib in std::fs::read_dir(root.join("lib")).ok()?.flatten() {
        let Ok(entries) = std::fs::read_dir(lib.path().join("site-packages")) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(stem) = name.strip_suffix(".dist-info") else {
                continue;
            };
            let Ok(eps) = std::fs::read_to_string(e.path().join("entry_points.txt")) else {
                continue;
            };
            let declares = eps
                .lines()
                .any(|l| l.split('=').next().is_some_and(|n| n.trim() == script));
            if !declares {
                continue;
            }
            let meta = std::fs::read_to_string(e.path().join("METADATA")).unwrap_or_default();
            let field = |k: &str| {
                meta.lines()
                    .find_map(|l| l.strip_prefix(k))
                    .map(|v| v.trim().to_owned())
            };
            let (dist, version) = stem.rsplit_once('-')?;
            return Some(format!(
                "{} {}",
                field("Name:").unwrap_or_else(|| dist.to_owned()),
                field("Version:").unwrap_or_else(|| version.to_owned())
            ));
        }
    }
    None
}

/// A connection of a custom type: the config, ready for protocol calls.
struct ExternalConnection {
    runner: Arc<Runner>,
    type_name: String,
    config: Value,
    secrets: Vec<String>,
    version: Option<String>,
    /// A Singer tap's catalog output from the probe, reused by discovery on
    /// the same connection (one run, not two).
    singer_output: Option<Finished>,
}

impl ExternalConnection {
    fn ctx(&self) -> Ctx<'_> {
        Ctx {
            type_name: &self.type_name,
            secrets: &self.secrets,
        }
    }

    async fn run(&self, args: &[&str]) -> Result<Finished, ConnectorError> {
        self.runner
            .run(args, Some(&self.config), self.runner.limit(None))
            .await
    }

    async fn singer_discover(&mut self) -> Result<&Finished, ConnectorError> {
        if self.singer_output.is_none() {
            let out = self.run(&["--config", CONFIG_ARG, "--discover"]).await?;
            self.singer_output = Some(out);
        }
        Ok(self.singer_output.as_ref().expect("set above"))
    }
}

#[async_trait]
impl Connection for ExternalConnection {
    /// The package and version of a Python connector (read from its
    /// installed metadata, no run), else the command's name; with the protocol.
    async fn server_version(&mut self) -> Result<String, ConnectorError> {
        let cfg = self.runner.config();
        let name = self.version.clone().unwrap_or_else(|| {
            Path::new(&cfg.command[0])
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| cfg.command[0].clone())
        });
        Ok(format!("{name} ({} protocol)", cfg.protocol.as_str()))
    }

    /// Airbyte: `check` must report `CONNECTION_STATUS` SUCCEEDED. Singer:
    /// discovery must exit 0 and print a catalog (kept for `discover`).
    async fn probe(&mut self, req: &DiscoveryRequest) -> Result<(), ConnectorError> {
        match self.runner.config().protocol {
            Protocol::Airbyte => {
                let out = self.run(&["check", "--config", CONFIG_ARG]).await?;
                protocol::airbyte_check(&self.ctx(), &out)
            }
            Protocol::Singer => {
                self.singer_discover().await?;
                let out = self.singer_output.as_ref().expect("set by singer_discover");
                protocol::singer_catalog(&self.ctx(), out, req).map(|_| ())
            }
        }
    }

    async fn discover(&mut self, req: &DiscoveryRequest) -> Result<Catalog, ConnectorError> {
        match self.runner.config().protocol {
            Protocol::Airbyte => {
                let out = self.run(&["discover", "--config", CONFIG_ARG]).await?;
                protocol::airbyte_catalog(&self.ctx(), &out, req)
            }
            Protocol::Singer => {
                self.singer_discover().await?;
                let out = self.singer_output.as_ref().expect("set by singer_discover");
                protocol::singer_catalog(&self.ctx(), out, req)
            }
        }
    }

    async fn close(self: Box<Self>) -> Result<(), ConnectorError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use matih_connector_core::ErrorCode;

    #[test]
    fn config_json_merges_metadata_fields_and_credentials() {
        let mut cfg = ConnectionConfig {
            host: Some("127.0.0.1".into()),
            port: Some(5432),
            database: Some("sales".into()),
            ..Default::default()
        };
        cfg.metadata.insert("user".into(), "reader".into());
        cfg.metadata.insert("port".into(), 6543.into());
        let creds = Credentials::new().with("password", "pw");
        let v = config_json(&cfg, &creds).unwrap();
        assert_eq!(v["host"], "127.0.0.1");
        assert_eq!(v["port"], 6543, "metadata wins over the port field");
        assert_eq!(v["database"], "sales");
        assert_eq!(v["user"], "reader");
        assert_eq!(v["password"], "pw");

        let clash = Credentials::new().with("user", "x");
        let e = config_json(&cfg, &clash).unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidConfiguration);
        assert!(e.message().contains("credentials.user"), "{}", e.message());
    }

    #[test]
    fn descriptor_accepts_any_key_and_has_no_endpoint() {
        let d = ExternalDriver::new(
            "FAKER",
            CustomTypes::from_toml(
                "[custom_types.FAKER]\nprotocol = \"airbyte\"\ncommand = [\"x\"]",
            )
            .unwrap()
            .get("FAKER")
            .unwrap()
            .clone(),
        );
        let mut cfg = ConnectionConfig::default();
        cfg.metadata.insert("count".to_owned(), Value::from(3));
        let prepared =
            matih_connector_core::prepare(&d, &cfg, &Credentials::new().with("api_key", "k"))
                .unwrap();
        assert_eq!(prepared.endpoint(), None);
        assert!(!format!("{prepared:?}").contains("\"k\""));
        assert_eq!(
            d.descriptor().category(),
            matih_connector_core::Category::Custom
        );
        assert_eq!(d.protocol(), Protocol::Airbyte);
    }

    #[test]
    fn package_version_from_a_console_script() {
        let dir = std::env::temp_dir().join(format!("matih-ext-pv-{}", std::process::id()));
        let site = dir.join("lib/python3.11/site-packages/tap_demo-1.2.3.dist-info");
        std::fs::create_dir_all(&site).unwrap();
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        std::fs::write(
            site.join("entry_points.txt"),
            "[console_scripts]\ntap-demo = tap_demo.tap:Tap.cli\n",
        )
        .unwrap();
        std::fs::write(
            site.join("METADATA"),
            "Metadata-Version: 2.1\nName: tap-demo\nVersion: 1.2.3\n",
        )
        .unwrap();
        let script = dir.join("bin/tap-demo");
        std::fs::write(
            &script,
            format!("#!{}/bin/python3\nimport sys\n", dir.display()),
        )
        .unwrap();
        assert_eq!(package_version(&script).as_deref(), Some("tap-demo 1.2.3"));
        let other = dir.join("bin/other");
        std::fs::write(&other, "#!/bin/sh\necho hi\n").unwrap();
        assert_eq!(package_version(&other), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
