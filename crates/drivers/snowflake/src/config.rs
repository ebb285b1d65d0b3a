//! Configuration of a Snowflake connection, validated without I/O.

use std::fmt;

use matih_connector_core::{
    ConnectionConfig, ConnectorError, Credentials, SecretString, SslMode, Timeouts,
};
use url::Url;

/// How the driver logs in.
#[derive(Clone)]
pub(crate) enum Auth {
    Password(SecretString),
    /// Key-pair authentication: the PEM private key (PKCS#8, encrypted
    /// PKCS#8 with its passphrase, or PKCS#1).
    KeyPair(SecretString, Option<SecretString>),
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Auth::Password(_) => "Password(***)",
            Auth::KeyPair(..) => "KeyPair(***)",
        })
    }
}

/// A validated configuration. Holds secrets only inside [`Auth`].
#[derive(Clone, Debug)]
pub(crate) struct SnowflakeConfig {
    /// `https://acme.snowflakecomputing.com` or an override (private link,
    /// proxy, emulator).
    pub base: Url,
    /// The host and port the core resolves and checks.
    pub host: String,
    pub port: u16,
    /// Account identifier as Snowflake writes it in JWT claims and login
    /// bodies, upper-cased, without region or cloud suffix.
    pub account: String,
    pub user: String,
    pub auth: Auth,
    pub database: String,
    pub schema: Option<String>,
    pub warehouse: Option<String>,
    pub role: Option<String>,
    pub tls: SslMode,
    pub ca_pem: Option<String>,
    pub timeouts: Timeouts,
    pub max_response_bytes: u64,
}

pub(crate) const DEFAULT_MAX_RESPONSE_BYTES: u64 = 64 * 1024 * 1024;
const SNOWFLAKE_DOMAIN: &str = ".snowflakecomputing.com";

/// TLS is on unless switched off explicitly: Snowflake itself only speaks
/// https; plain http is for emulators and TLS-terminating proxies.
pub(crate) fn tls_mode(cfg: &ConnectionConfig) -> Result<SslMode, ConnectorError> {
    if cfg.ssl_enabled.is_none() && cfg.ssl_mode.is_none() {
        return Ok(SslMode::VerifyFull);
    }
    cfg.ssl_mode()
}

/// The endpoint: metadata `endpoint` (a URL) wins, then `host`/`port`, then
/// `<account>.snowflakecomputing.com`.
pub(crate) fn endpoint(cfg: &ConnectionConfig) -> Result<Url, ConnectorError> {
    let tls = tls_mode(cfg)?;
    if let Some(ep) = cfg.metadata_str("endpoint") {
        let url = Url::parse(&ep).map_err(|e| {
            ConnectorError::invalid_config(
                "metadata",
                format!("metadata.endpoint is not a URL: {e}"),
            )
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(ConnectorError::invalid_config(
                "metadata",
                "metadata.endpoint must be an http(s) URL with a host",
            ));
        }
        if url.scheme() == "http"
            && tls.is_tls()
            && (cfg.ssl_enabled.is_some() || cfg.ssl_mode.is_some())
        {
            return Err(ConnectorError::invalid_config(
                "metadata",
                "metadata.endpoint is plain http but TLS is required by sslEnabled/sslMode",
            ));
        }
        return Ok(url);
    }
    let host = match cfg.host.as_deref().map(str::trim).filter(|h| !h.is_empty()) {
        Some(h) => h.to_owned(),
        None => match cfg.metadata_str("account") {
            // A bare account locator is qualified by its region (the legacy
            // `<locator>.<region>[.<cloud>]` URL); organization-account names
            // and already-qualified locators are used as they are.
            Some(a) if !a.trim().is_empty() => {
                let a = a.trim().to_ascii_lowercase();
                match cfg
                    .metadata_str("region")
                    .map(|r| r.trim().to_ascii_lowercase())
                {
                    Some(r) if !r.is_empty() && !a.contains('.') && !a.contains('-') => {
                        format!("{a}.{r}{SNOWFLAKE_DOMAIN}")
                    }
                    _ => format!("{a}{SNOWFLAKE_DOMAIN}"),
                }
            }
            _ => return Err(ConnectorError::invalid_config(
                "host",
                "host is required (or metadata.account to reach <account>.snowflakecomputing.com)",
            )),
        },
    };
    let scheme = if tls.is_tls() { "https" } else { "http" };
    let port = cfg.port.unwrap_or(if tls.is_tls() { 443 } else { 80 });
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let host_part = if bare.contains(':') {
        format!("[{bare}]")
    } else {
        bare.to_owned()
    };
    Url::parse(&format!("{scheme}://{host_part}:{port}/")).map_err(|e| {
        ConnectorError::invalid_config("host", format!("host does not form a URL: {e}"))
    })
}

/// The account identifier for the login body and JWT claims. Given in
/// metadata, or read from a `*.snowflakecomputing.com` host. `xy12345.us-east-1`
/// becomes `XY12345`: the claims use the locator without region (Snowflake's
/// key-pair guide).
pub(crate) fn account(cfg: &ConnectionConfig, base: &Url) -> Result<String, ConnectorError> {
    let raw = match cfg.metadata_str("account").filter(|a| !a.trim().is_empty()) {
        Some(a) => a,
        None => {
            let host = base.host_str().unwrap_or_default().to_ascii_lowercase();
            match host.strip_suffix(SNOWFLAKE_DOMAIN) {
                Some(prefix) if !prefix.is_empty() => prefix.to_owned(),
                _ => {
                    return Err(ConnectorError::invalid_config(
                        "metadata",
                        "metadata.account is required when the host is not <account>.snowflakecomputing.com",
                    ))
                }
            }
        }
    };
    let raw = raw.trim();
    let locator = raw.split('.').next().unwrap_or(raw);
    // Private-link hosts read `<account>.privatelink`; the suffix is not part
    // of the account.
    if locator.is_empty()
        || !locator
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(ConnectorError::invalid_config(
            "metadata",
            "metadata.account must be an account identifier such as xy12345 or myorg-myaccount",
        ));
    }
    Ok(locator.to_ascii_uppercase())
}

/// A value from credentials, else metadata (the seed keeps warehouse and role
/// with the credentials; metadata is where other tools put them).
fn cred_or_meta(cfg: &ConnectionConfig, creds: &Credentials, key: &str) -> Option<String> {
    creds
        .get(key)
        .map(|s| s.expose().trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| {
            cfg.metadata_str(key)
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
        })
}

fn check_name(field: &'static str, value: &str) -> Result<(), ConnectorError> {
    if value.len() > 255 || value.contains('\0') {
        return Err(ConnectorError::invalid_config(
            field,
            format!("{field} must be 1-255 characters without NUL"),
        ));
    }
    Ok(())
}

impl SnowflakeConfig {
    pub(crate) fn parse(
        cfg: &ConnectionConfig,
        creds: &Credentials,
    ) -> Result<Self, ConnectorError> {
        let tls = tls_mode(cfg)?;
        let base = endpoint(cfg)?;
        let account = account(cfg, &base)?;
        let user = creds.require("username")?.expose().trim().to_owned();
        check_name("username", &user)?;
        let auth = match (creds.get("password"), creds.get("privateKey")) {
            (Some(_), Some(_)) => {
                return Err(ConnectorError::invalid_config(
                    "credentials",
                    "give either credentials.password or credentials.privateKey, not both",
                ))
            }
            (Some(p), None) if !p.is_empty() => Auth::Password(p.clone()),
            (None, Some(k)) if !k.is_empty() => {
                let passphrase = creds.get("privateKeyPassphrase").filter(|p| !p.is_empty());
                crate::connection::check_private_key(k, passphrase)?;
                Auth::KeyPair(k.clone(), passphrase.cloned())
            }
            _ => {
                return Err(ConnectorError::invalid_config(
                    "credentials",
                    "credentials.password or credentials.privateKey is required",
                ))
            }
        };
        let database = cfg.database.clone().ok_or_else(|| {
            ConnectorError::invalid_config(
                "database",
                "database is required: discovery reads its INFORMATION_SCHEMA",
            )
        })?;
        let warehouse = cred_or_meta(cfg, creds, "warehouse");
        let role = cred_or_meta(cfg, creds, "role");
        for (field, v) in [("warehouse", &warehouse), ("role", &role)] {
            if let Some(v) = v {
                check_name(field, v)?;
            }
        }
        let max_response_bytes = match cfg.metadata.get("maxResponseBytes") {
            None => DEFAULT_MAX_RESPONSE_BYTES,
            Some(v) => v.as_u64().filter(|n| *n >= 1024).ok_or_else(|| {
                ConnectorError::invalid_config(
                    "metadata",
                    "metadata.maxResponseBytes must be an integer >= 1024",
                )
            })?,
        };
        Ok(SnowflakeConfig {
            host: base.host_str().unwrap_or_default().to_owned(),
            port: base.port_or_known_default().unwrap_or(443),
            base,
            account,
            user,
            auth,
            database,
            schema: cfg.schema.clone(),
            warehouse,
            role,
            tls,
            ca_pem: cfg.ssl_ca_pem.clone(),
            timeouts: cfg.timeouts,
            max_response_bytes,
        })
    }

    pub(crate) fn url(&self, path: &str) -> Url {
        let mut u = self.base.clone();
        let prefix = u.path().trim_end_matches('/').to_owned();
        u.set_path(&format!("{prefix}{path}"));
        u
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use matih_connector_core::ErrorCode;
    use serde_json::json;

    fn cfg(v: serde_json::Value) -> ConnectionConfig {
        serde_json::from_value(v).unwrap()
    }

    fn creds() -> Credentials {
        Credentials::new()
            .with("username", "matih_reader")
            .with("password", "pw")
    }

    #[test]
    fn the_seed_example_parses() {
        let c = cfg(
            json!({"host":"acme.snowflakecomputing.com","port":443,"database":"ANALYTICS",
            "schema":"PUBLIC","sslEnabled":true,"metadata":{"account":"acme","region":"us-east-1"}}),
        );
        let creds = creds()
            .with("warehouse", "COMPUTE_WH")
            .with("role", "MATIH_READER");
        let p = SnowflakeConfig::parse(&c, &creds).unwrap();
        assert_eq!(p.base.as_str(), "https://acme.snowflakecomputing.com/");
        assert_eq!(p.account, "ACME");
        assert_eq!(p.warehouse.as_deref(), Some("COMPUTE_WH"));
        assert_eq!(p.role.as_deref(), Some("MATIH_READER"));
        assert!(!format!("{p:?}").contains("pw"));
    }

    #[test]
    fn endpoints_and_accounts() {
        let c = cfg(json!({"database":"D","metadata":{"account":"xy12345.us-east-1"}}));
        let p = SnowflakeConfig::parse(&c, &creds()).unwrap();
        assert_eq!(
            p.base.as_str(),
            "https://xy12345.us-east-1.snowflakecomputing.com/"
        );
        assert_eq!(p.account, "XY12345");
        let c =
            cfg(json!({"database":"D","metadata":{"account":"xy12345","region":"us-east-2.aws"}}));
        assert_eq!(
            SnowflakeConfig::parse(&c, &creds()).unwrap().base.as_str(),
            "https://xy12345.us-east-2.aws.snowflakecomputing.com/"
        );
        let c =
            cfg(json!({"database":"D","metadata":{"account":"myorg-acct","region":"us-east-1"}}));
        assert_eq!(
            SnowflakeConfig::parse(&c, &creds()).unwrap().base.as_str(),
            "https://myorg-acct.snowflakecomputing.com/"
        );
        let c = cfg(
            json!({"host":"127.0.0.1","port":8080,"sslEnabled":false,"database":"D","metadata":{"account":"acme"}}),
        );
        assert_eq!(
            SnowflakeConfig::parse(&c, &creds()).unwrap().base.as_str(),
            "http://127.0.0.1:8080/"
        );
        let c = cfg(json!({"host":"myorg-acct.privatelink.snowflakecomputing.com","database":"D"}));
        assert_eq!(
            SnowflakeConfig::parse(&c, &creds()).unwrap().account,
            "MYORG-ACCT"
        );
        let c = cfg(
            json!({"database":"D","metadata":{"endpoint":"http://127.0.0.1:9/sf","account":"a"}}),
        );
        assert_eq!(
            SnowflakeConfig::parse(&c, &creds())
                .unwrap()
                .url("/session/v1/login-request")
                .as_str(),
            "http://127.0.0.1:9/sf/session/v1/login-request"
        );
    }

    #[test]
    fn rejects_bad_configurations() {
        let bad = [
            (json!({"host":"proxy.internal","database":"D"}), creds()),
            (json!({"host":"a.snowflakecomputing.com"}), creds()),
            (
                json!({"host":"a.snowflakecomputing.com","database":"D"}),
                Credentials::new().with("username", "u"),
            ),
            (
                json!({"host":"a.snowflakecomputing.com","database":"D"}),
                creds().with("privateKey", "x"),
            ),
            (
                json!({"host":"a.snowflakecomputing.com","database":"D","metadata":{"account":"a b"}}),
                creds(),
            ),
            (
                json!({"host":"a.snowflakecomputing.com","database":"D","sslEnabled":true,"metadata":{"endpoint":"http://x"}}),
                creds(),
            ),
            (
                json!({"host":"a.snowflakecomputing.com","database":"D"}),
                Credentials::new()
                    .with("username", "u")
                    .with("privateKey", "not a pem"),
            ),
        ];
        for (c, cr) in bad {
            let err = SnowflakeConfig::parse(&cfg(c.clone()), &cr).unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidConfiguration, "{c}: {err}");
        }
    }
}
