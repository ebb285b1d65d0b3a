//! Connection configuration and the connector specification (the API's create body).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{ConnectorError, ConnectorType, Credentials, ErrorCode};

/// TLS requirement, named as libpq names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS required, certificate not verified.
    Require,
    /// TLS required, certificate chain verified, host name not checked.
    VerifyCa,
    /// TLS required, chain and host name verified.
    VerifyFull,
}

impl SslMode {
    /// The wire spelling (`verify-full`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// Whether the mode uses TLS at all.
    pub fn is_tls(self) -> bool {
        self != SslMode::Disable
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SslMode {
    type Err = ConnectorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "disable" | "disabled" => Ok(SslMode::Disable),
            "require" | "required" => Ok(SslMode::Require),
            "verify-ca" => Ok(SslMode::VerifyCa),
            "verify-full" => Ok(SslMode::VerifyFull),
            _ => Err(ConnectorError::invalid_config(
                "sslMode",
                format!(
                    "invalid sslMode {:?}: expected disable, require, verify-ca or verify-full",
                    s.chars().take(40).collect::<String>()
                ),
            )),
        }
    }
}

/// Time limits for network work. Every network call a driver makes is bounded by
/// one of these.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Timeouts {
    /// Opening a connection: TCP, TLS and authentication together (default 10000 ms).
    #[serde(default = "Timeouts::default_connect_ms")]
    #[cfg_attr(
        feature = "openapi",
        schema(minimum = 0, maximum = 9007199254740991_u64)
    )]
    pub connect_ms: u64,
    /// One catalog query or API call (default 60000 ms).
    #[serde(default = "Timeouts::default_query_ms")]
    #[cfg_attr(
        feature = "openapi",
        schema(minimum = 0, maximum = 9007199254740991_u64)
    )]
    pub query_ms: u64,
}

impl Timeouts {
    fn default_connect_ms() -> u64 {
        10_000
    }
    fn default_query_ms() -> u64 {
        60_000
    }
    /// [`Timeouts::connect_ms`] as a duration.
    pub fn connect(&self) -> Duration {
        Duration::from_millis(self.connect_ms)
    }
    /// [`Timeouts::query_ms`] as a duration.
    pub fn query(&self) -> Duration {
        Duration::from_millis(self.query_ms)
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect_ms: Self::default_connect_ms(),
            query_ms: Self::default_query_ms(),
        }
    }
}

/// Where and how to connect. Holds nothing secret.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionConfig {
    /// Host name or IP address of the source.
    pub host: Option<String>,
    /// Port; the driver's default when absent.
    pub port: Option<u16>,
    /// Database (or project, catalog, bucket…), as the type names it.
    pub database: Option<String>,
    /// The configured schema; what it means for discovery is each driver's (docs/drivers/).
    pub schema: Option<String>,
    /// `sslEnabled` as given; see [`ConnectionConfig::ssl_mode`].
    pub ssl_enabled: Option<bool>,
    /// `sslMode` as given; see [`ConnectionConfig::ssl_mode`].
    pub ssl_mode: Option<SslMode>,
    /// PEM certificates to trust instead of the public roots.
    pub ssl_ca_pem: Option<String>,
    /// Type-specific properties (account, region, warehouse id…).
    #[serde(default)]
    pub metadata: BTreeMap<String, serde_json::Value>,
    /// Time limits of network work.
    #[serde(default)]
    pub timeouts: Timeouts,
}

impl ConnectionConfig {
    /// The TLS mode in force: `sslMode` when given; otherwise `verify-full` when
    /// `sslEnabled` is true and `disable` when it is false or absent. A mode that
    /// contradicts `sslEnabled` is a configuration error.
    pub fn ssl_mode(&self) -> Result<SslMode, ConnectorError> {
        match (self.ssl_enabled, self.ssl_mode) {
            (Some(false), Some(m)) if m.is_tls() => Err(ConnectorError::invalid_config(
                "sslMode",
                format!("sslMode {m} contradicts sslEnabled=false"),
            )),
            (Some(true), Some(SslMode::Disable)) => Err(ConnectorError::invalid_config(
                "sslMode",
                "sslMode disable contradicts sslEnabled=true",
            )),
            (_, Some(m)) => Ok(m),
            (Some(true), None) => Ok(SslMode::VerifyFull),
            (_, None) => Ok(SslMode::Disable),
        }
    }

    /// The host, or an `INVALID_CONFIGURATION` error.
    pub fn require_host(&self) -> Result<&str, ConnectorError> {
        match self.host.as_deref().map(str::trim) {
            Some(h) if !h.is_empty() => Ok(h),
            _ => Err(ConnectorError::invalid_config("host", "host is required")),
        }
    }

    /// `host` and `port` (or `default_port`) as an endpoint, for drivers whose
    /// source is one host:port.
    pub fn host_and_port(
        &self,
        default_port: Option<u16>,
    ) -> Result<(String, u16), ConnectorError> {
        let host = self.require_host()?.to_owned();
        match self.port.or(default_port) {
            Some(p) => Ok((host, p)),
            None => Err(ConnectorError::invalid_config("port", "port is required")),
        }
    }

    /// A metadata value as a string (numbers and booleans are rendered).
    pub fn metadata_str(&self, key: &str) -> Option<String> {
        match self.metadata.get(key)? {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Null => None,
            other => Some(other.to_string()),
        }
    }

    /// Checks that hold for every driver: a sane host, port, timeouts and
    /// names. [`crate::prepare`] is its one caller.
    pub(crate) fn validate_common(&self) -> Result<(), ConnectorError> {
        self.ssl_mode()?;
        if let Some(host) = &self.host {
            check_host_name("host", host)?;
        }
        if self.port == Some(0) {
            return Err(ConnectorError::invalid_config(
                "port",
                "port must be 1-65535",
            ));
        }
        for (field, value) in [("database", &self.database), ("schema", &self.schema)] {
            if let Some(v) = value {
                if v.is_empty() || v.len() > 1024 || v.contains('\0') {
                    return Err(ConnectorError::invalid_config(
                        field,
                        format!("{field} must be 1-1024 characters without NUL"),
                    ));
                }
            }
        }
        if self.timeouts.connect_ms == 0 || self.timeouts.query_ms == 0 {
            return Err(ConnectorError::invalid_config(
                "timeouts",
                "timeouts must be positive",
            ));
        }
        if let Some(pem) = &self.ssl_ca_pem {
            crate::tls::parse_pem_certs(pem)?;
        }
        Ok(())
    }
}

/// Rejects what cannot be a host name or address (empty, longer than a DNS
/// name, whitespace, control characters, URL pieces); `field` names the
/// setting in the error (`host`, `metadata.sshTunnel.host`).
pub(crate) fn check_host_name(field: &'static str, host: &str) -> Result<(), ConnectorError> {
    let h = host.trim();
    let bad = h.is_empty()
        || h.len() > 253
        || h.chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '/' || c == '@');
    if bad {
        return Err(ConnectorError::invalid_config(
            field,
            format!(
                "{field} {:?} is not a valid host name or address",
                h.chars().take(80).collect::<String>()
            ),
        ));
    }
    Ok(())
}

/// A connector as a tenant describes it: the API's create body, and the CLI's
/// `--spec` file. Unknown fields are rejected so typos do not pass silently.
#[derive(Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectorSpec {
    /// The connector's display name (the API's, where it is required: 1-200
    /// characters, not only white space, no control characters; unused by drivers).
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(
            required = true,
            min_length = 1,
            max_length = 200,
            pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
        )
    )]
    pub name: Option<String>,
    /// The source type (`type` on the wire): a wire name such as POSTGRESQL
    /// (any case, or the driver name such as `azure-blob`) or a custom type name.
    #[serde(rename = "type")]
    #[cfg_attr(
        feature = "openapi",
        schema(value_type = String, pattern = r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
    )]
    pub connector_type: ConnectorType,
    /// See [`ConnectionConfig::host`].
    #[serde(default)]
    pub host: Option<String>,
    /// See [`ConnectionConfig::port`].
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 65535))]
    pub port: Option<u16>,
    /// See [`ConnectionConfig::database`].
    #[serde(default)]
    pub database: Option<String>,
    /// See [`ConnectionConfig::schema`].
    #[serde(default)]
    pub schema: Option<String>,
    /// See [`ConnectionConfig::ssl_enabled`].
    #[serde(default)]
    pub ssl_enabled: Option<bool>,
    /// See [`ConnectionConfig::ssl_mode`].
    #[serde(default)]
    pub ssl_mode: Option<SslMode>,
    /// See [`ConnectionConfig::ssl_ca_pem`].
    #[serde(default)]
    pub ssl_ca_pem: Option<String>,
    /// The credentials, never part of [`ConnectionConfig`] (a host writes
    /// them to its secret store only; never stored or returned).
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(value_type = BTreeMap<String, String>, required = true)
    )]
    pub credentials: Credentials,
    /// See [`ConnectionConfig::metadata`].
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub metadata: BTreeMap<String, serde_json::Value>,
    /// See [`ConnectionConfig::timeouts`].
    #[serde(default)]
    pub timeouts: Timeouts,
}

impl fmt::Debug for ConnectorSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectorSpec")
            .field("name", &self.name)
            .field("type", &self.connector_type)
            .field("config", &self.config())
            .field("credentials", &self.credentials)
            .finish()
    }
}

impl ConnectorSpec {
    /// Parses a spec from JSON text, turning serde's complaint into an
    /// `INVALID_CONFIGURATION` error that names the line and column.
    pub fn from_json(text: &str) -> Result<ConnectorSpec, ConnectorError> {
        serde_json::from_str(text).map_err(|e| {
            ConnectorError::new(
                ErrorCode::InvalidConfiguration,
                format!("invalid spec: {e}"),
            )
        })
    }

    /// Everything but the name and the credentials.
    pub fn config(&self) -> ConnectionConfig {
        ConnectionConfig {
            host: self.host.clone(),
            port: self.port,
            database: self.database.clone(),
            schema: self.schema.clone(),
            ssl_enabled: self.ssl_enabled,
            ssl_mode: self.ssl_mode,
            ssl_ca_pem: self.ssl_ca_pem.clone(),
            metadata: self.metadata.clone(),
            timeouts: self.timeouts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssl_mode_resolution() {
        let mut c = ConnectionConfig::default();
        assert_eq!(c.ssl_mode().unwrap(), SslMode::Disable);
        c.ssl_enabled = Some(true);
        assert_eq!(c.ssl_mode().unwrap(), SslMode::VerifyFull);
        c.ssl_mode = Some(SslMode::Require);
        assert_eq!(c.ssl_mode().unwrap(), SslMode::Require);
        c.ssl_mode = Some(SslMode::Disable);
        assert_eq!(
            c.ssl_mode().unwrap_err().code(),
            ErrorCode::InvalidConfiguration
        );
        c.ssl_enabled = Some(false);
        c.ssl_mode = Some(SslMode::VerifyCa);
        assert_eq!(
            c.ssl_mode().unwrap_err().code(),
            ErrorCode::InvalidConfiguration
        );
    }

    #[test]
    fn spec_parses_the_seed_body() {
        let spec = ConnectorSpec::from_json(
            r#"{"name":"Production Warehouse","type":"SNOWFLAKE","host":"acme.snowflakecomputing.com",
            "port":443,"database":"ANALYTICS","schema":"PUBLIC",
            "credentials":{"username":"matih_reader","password":"encrypted_value","warehouse":"COMPUTE_WH","role":"MATIH_READER"},
            "sslEnabled":true,"metadata":{"account":"acme","region":"us-east-1"}}"#,
        )
        .unwrap();
        assert_eq!(spec.connector_type, ConnectorType::Snowflake);
        assert_eq!(spec.config().ssl_mode().unwrap(), SslMode::VerifyFull);
        assert_eq!(
            spec.config().metadata_str("account").as_deref(),
            Some("acme")
        );
        assert!(!format!("{spec:?}").contains("encrypted_value"));
    }

    #[test]
    fn spec_rejects_unknown_fields_and_bad_values() {
        for (body, needle) in [
            (
                r#"{"type":"POSTGRESQL","hots":"x"}"#,
                "unknown field `hots`",
            ),
            (r#"{"type":"POSTGRESQL","port":70000}"#, "70000"),
            (r#"{"type":"POSTGRESQL","sslMode":"sometimes"}"#, "sslMode"),
            (r#"{"type":"no such type!"}"#, "invalid connector type"),
            (r#"{"type":"POSTGRESQL""#, "EOF"),
        ] {
            let err = ConnectorSpec::from_json(body).unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidConfiguration);
            assert!(
                err.message().contains(needle) || err.message().contains("variant"),
                "{body}: {}",
                err.message()
            );
        }
    }

    #[test]
    fn common_validation() {
        let mut c = ConnectionConfig {
            host: Some("db.example.com".into()),
            ..Default::default()
        };
        c.validate_common().unwrap();
        for bad in ["", "a b", "user@host", "h/x"] {
            c.host = Some(bad.into());
            assert_eq!(
                c.validate_common().unwrap_err().code(),
                ErrorCode::InvalidConfiguration
            );
        }
        c.host = Some("h".into());
        c.port = Some(0);
        assert!(c.validate_common().is_err());
    }
}
