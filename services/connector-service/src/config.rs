//! Service configuration: embedded defaults, then a TOML file, then `MATIH_*`
//! environment variables (the last one wins).

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use matih_connector_core::EgressProfile;
use serde::Deserialize;

/// The `--help` text for configuration; kept beside the code it documents.
pub const CONFIG_HELP: &str = "\
CONFIGURATION
  Embedded defaults, overridden by a TOML file (--config or MATIH_CONFIG), overridden
  by environment variables. File keys are the variable names without MATIH_, in lower case.

  MATIH_LISTEN                 address to serve on               [127.0.0.1:8080]
  MATIH_DATA_DIR               data directory (SQLite file, local secrets, keys) [./matih-data]
  MATIH_DATABASE_URL           metadata store: sqlite://PATH or postgres://USER:PASS@HOST/DB
                                                                  [sqlite://DATA_DIR/matih.db]
  MATIH_SECRET_STORE           local | kubernetes | vault | aws-secrets-manager [local]
  MATIH_SECRET_KEY             local store key: 32 bytes as 64 hex digits or base64
                               [generated once into DATA_DIR/secret.key, mode 0600]
  MATIH_KUBE_API_URL           kubernetes API URL; unset = in-cluster config or kubeconfig
  MATIH_KUBE_TOKEN_FILE        bearer token file for MATIH_KUBE_API_URL
  MATIH_KUBE_NAMESPACE_PREFIX  tenant namespace prefix            [matih-]
  MATIH_VAULT_ADDR             vault store: Vault/OpenBao address, e.g. https://vault:8200
  MATIH_VAULT_CA_FILE          PEM CA verifying Vault's certificate [public roots]
  MATIH_VAULT_TOKEN            vault auth: a token (renewed while renewable)
  MATIH_VAULT_ROLE_ID          vault auth: AppRole role id ...
  MATIH_VAULT_SECRET_ID        ... and secret id (logs in again when the token expires)
  MATIH_VAULT_APPROLE_MOUNT    AppRole auth mount                 [approle]
  MATIH_VAULT_K8S_ROLE         vault auth: Kubernetes auth role, with the token file below
  MATIH_VAULT_K8S_TOKEN_FILE   service account token [/var/run/secrets/kubernetes.io/serviceaccount/token]
  MATIH_VAULT_K8S_MOUNT        Kubernetes auth mount              [kubernetes]
  MATIH_VAULT_KV_MOUNT         KV v2 mount; secrets at <mount>/data/matih/<tenant>/connector-<id8> [secret]
  MATIH_SECRET_STORE_TIMEOUT_MS limit of one call to Vault or Secrets Manager [10000]
  AWS_REGION, AWS_ENDPOINT_URL_SECRETS_MANAGER (or AWS_ENDPOINT_URL), AWS_ACCESS_KEY_ID,
  AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_CA_BUNDLE
                               aws-secrets-manager store; secrets named matih/<tenant>/connector-<id8>
  MATIH_JWT_SECRET             HS256 shared secret [generated once into DATA_DIR/jwt.secret,
                               mode 0600, unless MATIH_JWT_PUBLIC_KEY_FILE is set]
  MATIH_JWT_PUBLIC_KEY_FILE    RS256 public key (PEM) for production tokens
  MATIH_JWT_ISSUER             required `iss` claim; unset = `iss` not checked
  MATIH_JWT_AUDIENCE           required `aud` claim; unset = `aud` ignored
  MATIH_JWT_MAX_LIFETIME_SECS  longest token lifetime accepted (exp - iat, and exp - now);
                               0 = unbounded                      [86400]
  MATIH_JWT_LEEWAY_SECS        clock skew tolerated on exp, nbf and iat [5]
  MATIH_DISCOVERY_WAIT_MS      how long create waits for discovery before answering [5000]
  MATIH_DISCOVERY_TIMEOUT_SECS limit for one discovery job        [600]
  MATIH_DISCOVERY_INTERVAL_SECS time between scheduled re-discoveries of a connector
                               (a connector may set its own); 0 = none [86400]
  MATIH_DISCOVERY_JITTER_SECS  random delay added to each next re-discovery [600]
  MATIH_DISCOVERY_CONCURRENCY  scheduled discovery jobs running at once per replica [4]
  MATIH_DISCOVERY_LEASE_SECS   a discovery job's lease, renewed while it runs; a dead
                               replica's job is taken over after it [60]
  MATIH_PUBLIC_URL             base URL of the service for links in notices [unset: paths]
  MATIH_WARNING_LATENCY_MS     test latency above which a connector is WARNING [2000]
  MATIH_CREDENTIAL_EXPIRY_WARNING_DAYS  a passing connector is WARNING this many days before
                               its static credential's recorded expiry (Vault custom_metadata
                               expires_at) or next rotation (Secrets Manager); 0 = off [7]
  MATIH_BODY_LIMIT_BYTES       largest accepted request body      [1048576]
  MATIH_EGRESS_PROFILE         embedded | production: production also denies loopback, RFC 1918,
                               CGNAT 100.64/10 and ULA fc00::/7
                               [production with MATIH_SECRET_STORE=kubernetes, else embedded]
  MATIH_EGRESS_ALLOW           CIDRs re-enabled despite the profile's and the default deny lists
                               (link-local, metadata); restricts nothing else (comma separated)
  MATIH_EGRESS_ALLOW_ONLY      CIDRs outside which nothing is reachable (empty = no such limit)
  MATIH_EGRESS_DENY            CIDRs connectors may never reach
  MATIH_RECONCILE_INTERVAL_SECS time between reconciliations (slot counts, orphan
                               secrets); also run at start-up; 0 = start-up only [300]
  MATIH_ORPHAN_SECRET_MIN_AGE_SECS  a secret without a connector is removed only once
                               this old (longer than the longest create) [900]
  MATIH_CREATE_LEASE_SECS      lease of a create's plan-slot reservation, renewed while
                               it runs; a dead process's slots free after it [30]
  MATIH_CUSTOM_TYPES_FILE      TOML file of [custom_types.NAME] tables: custom connector types
                               (Airbyte sources, Singer taps) for ENTERPRISE tenants; the same
                               tables may also stand in this configuration file
  MATIH_LOG                    log filter (tracing EnvFilter syntax) [info]

CUSTOM CONNECTOR TYPES (operator-trusted code; see docs/operations.md)
  [custom_types.FAKER]
  protocol = \"airbyte\"           # or \"singer\"
  command = [\"source-faker\"]     # absolute path, or a name on the service's PATH
  env = [\"HTTPS_PROXY\"]          # variables the child may see; nothing else is inherited
  timeout_secs = 120             # limit for one run
  max_output_bytes = 16777216    # most a run may print on standard output
";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecretStoreKind {
    Local,
    Kubernetes,
    Vault,
    #[serde(rename = "aws-secrets-manager")]
    AwsSecretsManager,
}

#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub listen: String,
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    pub secret_store: SecretStoreKind,
    pub secret_key: Option<String>,
    pub kube_api_url: Option<String>,
    pub kube_token_file: Option<PathBuf>,
    pub kube_namespace_prefix: String,
    pub vault_addr: Option<String>,
    pub vault_ca_file: Option<PathBuf>,
    pub vault_token: Option<String>,
    pub vault_role_id: Option<String>,
    pub vault_secret_id: Option<String>,
    pub vault_approle_mount: String,
    pub vault_k8s_role: Option<String>,
    pub vault_k8s_token_file: PathBuf,
    pub vault_k8s_mount: String,
    pub vault_kv_mount: String,
    pub secret_store_timeout_ms: u64,
    pub jwt_secret: Option<String>,
    pub jwt_public_key_file: Option<PathBuf>,
    pub jwt_issuer: Option<String>,
    pub jwt_audience: Option<String>,
    pub jwt_max_lifetime_secs: u64,
    pub jwt_leeway_secs: u64,
    pub discovery_wait_ms: u64,
    pub discovery_timeout_secs: u64,
    pub discovery_interval_secs: u64,
    pub discovery_jitter_secs: u64,
    pub discovery_concurrency: usize,
    pub discovery_lease_secs: u64,
    pub public_url: Option<String>,
    pub warning_latency_ms: u64,
    pub credential_expiry_warning_days: u64,
    pub body_limit_bytes: usize,
    pub egress_allow: String,
    pub egress_deny: String,
    pub reconcile_interval_secs: u64,
    pub orphan_secret_min_age_secs: u64,
    pub create_lease_secs: u64,
    /// `embedded` or `production`; unset: production with the kubernetes
    /// secret store, embedded otherwise.
    pub egress_profile: Option<EgressProfile>,
    pub egress_allow_only: String,
    pub log: String,
    /// The `[health]` table: scheduler and notifications.
    pub health: crate::health::HealthConfig,
    /// The `[limits]` table: HTTP server and tenant limits.
    pub limits: crate::limits::LimitsConfig,
    /// `[custom_types.NAME]` tables, checked by the `external` driver when
    /// the registry is built.
    pub custom_types: toml::Table,
    /// A file of more `[custom_types.NAME]` tables.
    pub custom_types_file: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("matih-data"),
            database_url: None,
            secret_store: SecretStoreKind::Local,
            secret_key: None,
            kube_api_url: None,
            kube_token_file: None,
            kube_namespace_prefix: "matih-".into(),
            vault_addr: None,
            vault_ca_file: None,
            vault_token: None,
            vault_role_id: None,
            vault_secret_id: None,
            vault_approle_mount: "approle".into(),
            vault_k8s_role: None,
            vault_k8s_token_file: PathBuf::from(
                "/var/run/secrets/kubernetes.io/serviceaccount/token",
            ),
            vault_k8s_mount: "kubernetes".into(),
            vault_kv_mount: "secret".into(),
            secret_store_timeout_ms: 10_000,
            jwt_secret: None,
            jwt_public_key_file: None,
            jwt_issuer: None,
            jwt_audience: None,
            jwt_max_lifetime_secs: crate::auth::TokenRules::default().max_lifetime_secs,
            jwt_leeway_secs: crate::auth::TokenRules::default().leeway_secs,
            discovery_wait_ms: 5000,
            discovery_timeout_secs: 600,
            discovery_interval_secs: 86_400,
            discovery_jitter_secs: 600,
            discovery_concurrency: 4,
            discovery_lease_secs: 60,
            public_url: None,
            warning_latency_ms: 2000,
            credential_expiry_warning_days: crate::connection_test::DEFAULT_EXPIRY_WARNING_DAYS,
            body_limit_bytes: 1 << 20,
            egress_allow: String::new(),
            egress_deny: String::new(),
            reconcile_interval_secs: 300,
            orphan_secret_min_age_secs: 900,
            create_lease_secs: 30,
            egress_profile: None,
            egress_allow_only: String::new(),
            log: "info".into(),
            health: Default::default(),
            limits: Default::default(),
            custom_types: toml::Table::new(),
            custom_types_file: None,
        }
    }
}

/// Masks the password part of a URL for display.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            match userinfo.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &userinfo[..c], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field(
                "database_url",
                &self.database_url.as_deref().map(redact_url),
            )
            .field("secret_store", &self.secret_store)
            .field("secret_key", &self.secret_key.as_ref().map(|_| "***"))
            .field("kube_api_url", &self.kube_api_url)
            .field("kube_namespace_prefix", &self.kube_namespace_prefix)
            .field("vault_addr", &self.vault_addr)
            .field("vault_token", &self.vault_token.as_ref().map(|_| "***"))
            .field("vault_role_id", &self.vault_role_id)
            .field(
                "vault_secret_id",
                &self.vault_secret_id.as_ref().map(|_| "***"),
            )
            .field("vault_k8s_role", &self.vault_k8s_role)
            .field("vault_kv_mount", &self.vault_kv_mount)
            .field("jwt_secret", &self.jwt_secret.as_ref().map(|_| "***"))
            .field("jwt_public_key_file", &self.jwt_public_key_file)
            .field("discovery_wait_ms", &self.discovery_wait_ms)
            .field("discovery_interval_secs", &self.discovery_interval_secs)
            .field("discovery_lease_secs", &self.discovery_lease_secs)
            .field("public_url", &self.public_url)
            .field("warning_latency_ms", &self.warning_latency_ms)
            .field(
                "credential_expiry_warning_days",
                &self.credential_expiry_warning_days,
            )
            .field("body_limit_bytes", &self.body_limit_bytes)
            .field("health", &self.health)
            .field("limits", &self.limits)
            .field(
                "custom_types",
                &self.custom_types.keys().collect::<Vec<_>>(),
            )
            .field("custom_types_file", &self.custom_types_file)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Defaults, then `file` (or `MATIH_CONFIG`), then the environment.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Config> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        let from_env = env
            .iter()
            .find(|(k, _)| k == "MATIH_CONFIG")
            .map(|(_, v)| PathBuf::from(v));
        let mut cfg = match file.map(Path::to_path_buf).or(from_env) {
            Some(path) => {
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?;
                toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
            }
            None => Config::default(),
        };
        cfg.apply_env(env)?;
        Ok(cfg)
    }

    /// Applies `MATIH_*` variables; unknown `MATIH_` names that look like
    /// service settings are left alone (tests and tools share the prefix).
    pub fn apply_env(
        &mut self,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> anyhow::Result<()> {
        fn num<T: std::str::FromStr>(k: &str, v: &str) -> anyhow::Result<T> {
            v.trim()
                .parse()
                .map_err(|_| anyhow::anyhow!("{k} must be a number, got {v:?}"))
        }
        for (k, v) in vars {
            let Some(name) = k.strip_prefix("MATIH_") else {
                continue;
            };
            let some = |v: &str| (!v.is_empty()).then(|| v.to_owned());
            match name {
                "LISTEN" => self.listen = v,
                "DATA_DIR" => self.data_dir = PathBuf::from(v),
                "DATABASE_URL" => self.database_url = some(&v),
                "SECRET_STORE" => {
                    self.secret_store = match v.trim().to_ascii_lowercase().as_str() {
                        "local" => SecretStoreKind::Local,
                        "kubernetes" | "k8s" => SecretStoreKind::Kubernetes,
                        "vault" | "openbao" => SecretStoreKind::Vault,
                        "aws-secrets-manager" => SecretStoreKind::AwsSecretsManager,
                        _ => bail!("MATIH_SECRET_STORE must be local, kubernetes, vault or aws-secrets-manager, got {v:?}"),
                    }
                }
                "SECRET_KEY" => self.secret_key = some(&v),
                "KUBE_API_URL" => self.kube_api_url = some(&v),
                "KUBE_TOKEN_FILE" => self.kube_token_file = some(&v).map(PathBuf::from),
                "KUBE_NAMESPACE_PREFIX" => self.kube_namespace_prefix = v,
                "VAULT_ADDR" => self.vault_addr = some(&v),
                "VAULT_CA_FILE" => self.vault_ca_file = some(&v).map(PathBuf::from),
                "VAULT_TOKEN" => self.vault_token = some(&v),
                "VAULT_ROLE_ID" => self.vault_role_id = some(&v),
                "VAULT_SECRET_ID" => self.vault_secret_id = some(&v),
                "VAULT_APPROLE_MOUNT" => self.vault_approle_mount = v,
                "VAULT_K8S_ROLE" => self.vault_k8s_role = some(&v),
                "VAULT_K8S_TOKEN_FILE" => self.vault_k8s_token_file = PathBuf::from(v),
                "VAULT_K8S_MOUNT" => self.vault_k8s_mount = v,
                "VAULT_KV_MOUNT" => self.vault_kv_mount = v,
                "SECRET_STORE_TIMEOUT_MS" => self.secret_store_timeout_ms = num(&k, &v)?,
                "JWT_SECRET" => self.jwt_secret = some(&v),
                "JWT_PUBLIC_KEY_FILE" => self.jwt_public_key_file = some(&v).map(PathBuf::from),
                "JWT_ISSUER" => self.jwt_issuer = some(&v),
                "JWT_AUDIENCE" => self.jwt_audience = some(&v),
                "JWT_MAX_LIFETIME_SECS" => self.jwt_max_lifetime_secs = num(&k, &v)?,
                "JWT_LEEWAY_SECS" => self.jwt_leeway_secs = num(&k, &v)?,
                "DISCOVERY_WAIT_MS" => self.discovery_wait_ms = num(&k, &v)?,
                "DISCOVERY_TIMEOUT_SECS" => self.discovery_timeout_secs = num(&k, &v)?,
                "DISCOVERY_INTERVAL_SECS" => self.discovery_interval_secs = num(&k, &v)?,
                "DISCOVERY_JITTER_SECS" => self.discovery_jitter_secs = num(&k, &v)?,
                "DISCOVERY_CONCURRENCY" => self.discovery_concurrency = num(&k, &v)?,
                "DISCOVERY_LEASE_SECS" => self.discovery_lease_secs = num(&k, &v)?,
                "PUBLIC_URL" => self.public_url = some(&v),
                "WARNING_LATENCY_MS" => self.warning_latency_ms = num(&k, &v)?,
                "CREDENTIAL_EXPIRY_WARNING_DAYS" => {
                    self.credential_expiry_warning_days = num(&k, &v)?
                }
                "BODY_LIMIT_BYTES" => self.body_limit_bytes = num(&k, &v)?,
                "EGRESS_ALLOW" => self.egress_allow = v,
                "EGRESS_DENY" => self.egress_deny = v,
                "RECONCILE_INTERVAL_SECS" => self.reconcile_interval_secs = num(&k, &v)?,
                "ORPHAN_SECRET_MIN_AGE_SECS" => self.orphan_secret_min_age_secs = num(&k, &v)?,
                "CREATE_LEASE_SECS" => self.create_lease_secs = num(&k, &v)?,
                "EGRESS_ALLOW_ONLY" => self.egress_allow_only = v,
                "EGRESS_PROFILE" => {
                    self.egress_profile = match v.trim() {
                        "" => None,
                        p => Some(
                            p.parse()
                                .map_err(|e| anyhow::anyhow!("MATIH_{name}: {e}"))?,
                        ),
                    }
                }
                "LOG" => self.log = v,
                "CUSTOM_TYPES_FILE" => self.custom_types_file = some(&v).map(PathBuf::from),
                _ => {
                    if !self.limits.apply_env(name, &v)? {
                        self.health.apply_env(name, &v)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// The claims rules tokens are verified against.
    pub fn token_rules(&self) -> crate::auth::TokenRules {
        crate::auth::TokenRules {
            issuer: self.jwt_issuer.clone(),
            audience: self.jwt_audience.clone(),
            max_lifetime_secs: self.jwt_max_lifetime_secs,
            leeway_secs: self.jwt_leeway_secs,
        }
    }

    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(u) => u.clone(),
            None => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("matih.db").display()
            ),
        }
    }

    /// The egress profile in force: the one set, else production with the
    /// kubernetes secret store (a cluster), else embedded (a laptop).
    pub fn egress_profile(&self) -> EgressProfile {
        self.egress_profile.unwrap_or(match self.secret_store {
            SecretStoreKind::Kubernetes => EgressProfile::Production,
            SecretStoreKind::Local
            | SecretStoreKind::Vault
            | SecretStoreKind::AwsSecretsManager => EgressProfile::Embedded,
        })
    }

    /// The vault store's settings: address, CA, one authentication method.
    pub fn vault_settings(&self) -> anyhow::Result<crate::secrets::vault::VaultSettings> {
        use crate::secrets::vault::{VaultAuth, VaultSettings};
        use matih_connector_core::SecretString;
        let addr = self
            .vault_addr
            .clone()
            .context("MATIH_SECRET_STORE=vault needs MATIH_VAULT_ADDR")?;
        let ca_pem = match &self.vault_ca_file {
            Some(p) => Some(
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
            ),
            None => None,
        };
        let auth = match (
            &self.vault_token,
            &self.vault_role_id,
            &self.vault_secret_id,
            &self.vault_k8s_role,
        ) {
            (Some(t), None, None, None) => VaultAuth::Token(SecretString::new(t.clone())),
            (None, Some(role_id), Some(secret_id), None) => VaultAuth::AppRole {
                mount: self.vault_approle_mount.trim_matches('/').to_owned(),
                role_id: role_id.clone(),
                secret_id: SecretString::new(secret_id.clone()),
            },
            (None, None, None, Some(role)) => VaultAuth::Kubernetes {
                mount: self.vault_k8s_mount.trim_matches('/').to_owned(),
                role: role.clone(),
                jwt_file: self.vault_k8s_token_file.clone(),
            },
            _ => bail!(
                "MATIH_SECRET_STORE=vault needs exactly one of: MATIH_VAULT_TOKEN; \
                 MATIH_VAULT_ROLE_ID with MATIH_VAULT_SECRET_ID; MATIH_VAULT_K8S_ROLE"
            ),
        };
        Ok(VaultSettings {
            addr,
            ca_pem,
            auth,
            kv_mount: self.vault_kv_mount.clone(),
            namespace_prefix: self.kube_namespace_prefix.clone(),
            timeout: std::time::Duration::from_millis(self.secret_store_timeout_ms.max(1)),
        })
    }

    /// The custom types' TOML documents: this file's `[custom_types]` tables
    /// and `custom_types_file`, for `matih_connectors::install_custom_types`.
    pub fn custom_type_sources(&self) -> anyhow::Result<Vec<String>> {
        let mut out = Vec::new();
        if !self.custom_types.is_empty() {
            let mut doc = toml::Table::new();
            doc.insert(
                "custom_types".into(),
                toml::Value::Table(self.custom_types.clone()),
            );
            out.push(toml::to_string(&doc)?);
        }
        if let Some(path) = &self.custom_types_file {
            out.push(
                std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?,
            );
        }
        Ok(out)
    }

    pub fn database_url_redacted(&self) -> String {
        redact_url(&self.database_url())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_file_and_debug_hides_secrets() {
        let mut cfg: Config =
            toml::from_str("listen = \"127.0.0.1:9000\"\nsecret_key = \"abc\"").unwrap();
        assert_eq!(cfg.listen, "127.0.0.1:9000");
        cfg.apply_env([
            ("MATIH_LISTEN".to_owned(), "127.0.0.1:9001".to_owned()),
            (
                "MATIH_DATABASE_URL".to_owned(),
                "postgres://u:topsecret@h/db".to_owned(),
            ),
            ("MATIH_SECRET_STORE".to_owned(), "kubernetes".to_owned()),
        ])
        .unwrap();
        assert_eq!(cfg.listen, "127.0.0.1:9001");
        assert_eq!(cfg.secret_store, SecretStoreKind::Kubernetes);
        let dbg = format!("{cfg:?}");
        assert!(!dbg.contains("topsecret") && !dbg.contains("abc"), "{dbg}");
        assert!(toml::from_str::<Config>("lisen = 1").is_err());
    }

    #[test]
    fn custom_types_from_the_file_and_a_file_of_their_own() {
        let mut cfg: Config = toml::from_str(
            "[custom_types.FAKER]\nprotocol = \"airbyte\"\ncommand = [\"source-faker\"]\n",
        )
        .unwrap();
        assert!(format!("{cfg:?}").contains("FAKER"));
        let dir = std::env::temp_dir().join(format!("matih-ct-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("types.toml");
        std::fs::write(
            &file,
            "[custom_types.PG_TAP]\nprotocol = \"singer\"\ncommand = [\"tap-postgres\"]\n",
        )
        .unwrap();
        cfg.apply_env([(
            "MATIH_CUSTOM_TYPES_FILE".to_owned(),
            file.display().to_string(),
        )])
        .unwrap();
        let sources = cfg.custom_type_sources().unwrap();
        assert_eq!(sources.len(), 2);
        assert!(
            sources[0].contains("[custom_types.FAKER]"),
            "{}",
            sources[0]
        );
        assert!(sources[1].contains("PG_TAP"));
        std::fs::remove_dir_all(dir).unwrap();
        assert!(Config::default().custom_type_sources().unwrap().is_empty());
    }

    #[test]
    fn jwt_rules_from_the_environment() {
        let mut cfg = Config::default();
        assert_eq!(cfg.token_rules(), crate::auth::TokenRules::default());
        cfg.apply_env([
            ("MATIH_JWT_ISSUER".to_owned(), "https://idp".to_owned()),
            ("MATIH_JWT_AUDIENCE".to_owned(), "matih".to_owned()),
            ("MATIH_JWT_MAX_LIFETIME_SECS".to_owned(), "600".to_owned()),
            ("MATIH_JWT_LEEWAY_SECS".to_owned(), "2".to_owned()),
        ])
        .unwrap();
        let r = cfg.token_rules();
        assert_eq!(r.issuer.as_deref(), Some("https://idp"));
        assert_eq!(r.audience.as_deref(), Some("matih"));
        assert_eq!((r.max_lifetime_secs, r.leeway_secs), (600, 2));
        assert!(Config::default()
            .apply_env([("MATIH_JWT_LEEWAY_SECS".to_owned(), "soon".to_owned())])
            .is_err());
    }

    #[test]
    fn credential_expiry_window_from_file_and_environment() {
        assert_eq!(Config::default().credential_expiry_warning_days, 7);
        let mut cfg: Config = toml::from_str("credential_expiry_warning_days = 14").unwrap();
        assert_eq!(cfg.credential_expiry_warning_days, 14);
        cfg.apply_env([(
            "MATIH_CREDENTIAL_EXPIRY_WARNING_DAYS".to_owned(),
            "3".to_owned(),
        )])
        .unwrap();
        assert_eq!(cfg.credential_expiry_warning_days, 3);
        assert!(cfg
            .apply_env([(
                "MATIH_CREDENTIAL_EXPIRY_WARNING_DAYS".to_owned(),
                "a week".to_owned(),
            )])
            .is_err());
    }
}
