//! Connection configuration → librdkafka settings, validated without I/O.

use std::fmt;
use std::time::Duration;

use matih_connector_core::{
    tls, ConnectionConfig, ConnectorError, Credentials, ErrorCode, SecretString, SslMode,
};

pub(crate) const META_BOOTSTRAP: &str = "bootstrapServers";
pub(crate) const META_SASL_MECHANISM: &str = "saslMechanism";
pub(crate) const META_CLUSTER_NAME: &str = "clusterName";
pub(crate) const DEFAULT_PORT: u16 = 9092;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SaslMechanism {
    Plain,
    ScramSha256,
    ScramSha512,
}

impl SaslMechanism {
    pub fn as_str(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

#[derive(Clone)]
pub(crate) struct KafkaOptions {
    /// Further bootstrap brokers (host, port) beside host/port.
    pub extra_bootstrap: Vec<(String, u16)>,
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<SecretString>,
    pub mechanism: SaslMechanism,
    pub cluster_name: Option<String>,
    pub ssl_mode: SslMode,
    pub ca_pem: Option<String>,
    pub connect_timeout: Duration,
    pub query_timeout: Duration,
}

impl fmt::Debug for KafkaOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaOptions")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("extra_bootstrap", &self.extra_bootstrap)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("mechanism", &self.mechanism)
            .field("ssl_mode", &self.ssl_mode)
            .finish_non_exhaustive()
    }
}

fn parse_host_port(s: &str) -> Result<(String, u16), ConnectorError> {
    let bad = || {
        ConnectorError::invalid_config(
            "metadata",
            format!(
                "metadata.bootstrapServers entry {:?} is not host:port",
                s.chars().take(80).collect::<String>()
            ),
        )
    };
    let s = s.trim();
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, p) = rest.split_once(']').ok_or_else(bad)?;
        (h, p.strip_prefix(':'))
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    if host.is_empty()
        || host
            .chars()
            .any(|c| c.is_whitespace() || c == '/' || c == '@' || c == ',')
    {
        return Err(bad());
    }
    let port = match port {
        Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(bad)?,
        None => DEFAULT_PORT,
    };
    Ok((host.to_owned(), port))
}

/// `bootstrapServers` as a comma-separated string or a JSON array of strings.
pub(crate) fn bootstrap_list(cfg: &ConnectionConfig) -> Result<Vec<(String, u16)>, ConnectorError> {
    let Some(v) = cfg.metadata.get(META_BOOTSTRAP) else {
        return Ok(Vec::new());
    };
    let items: Vec<String> = match v {
        serde_json::Value::String(s) => s.split(',').map(str::to_owned).collect(),
        serde_json::Value::Array(a) => a
            .iter()
            .map(|x| {
                x.as_str().map(str::to_owned).ok_or_else(|| {
                    ConnectorError::invalid_config(
                        "metadata",
                        "metadata.bootstrapServers must hold strings",
                    )
                })
            })
            .collect::<Result<_, _>>()?,
        serde_json::Value::Null => Vec::new(),
        _ => {
            return Err(ConnectorError::invalid_config(
                "metadata",
                "metadata.bootstrapServers must be \"host:port,…\" or a list of them",
            ))
        }
    };
    let list: Vec<(String, u16)> = items
        .iter()
        .filter(|s| !s.trim().is_empty())
        .map(|s| parse_host_port(s))
        .collect::<Result<_, _>>()?;
    if list.len() > 32 {
        return Err(ConnectorError::invalid_config(
            "metadata",
            "metadata.bootstrapServers lists more than 32 brokers",
        ));
    }
    Ok(list)
}

impl KafkaOptions {
    pub fn from_config(
        cfg: &ConnectionConfig,
        creds: &Credentials,
    ) -> Result<Self, ConnectorError> {
        let mut extra = bootstrap_list(cfg)?;
        let (host, port) = match cfg.host.as_deref().map(str::trim).filter(|h| !h.is_empty()) {
            Some(h) => (h.to_owned(), cfg.port.unwrap_or(DEFAULT_PORT)),
            None if !extra.is_empty() => extra.remove(0),
            None => {
                return Err(ConnectorError::invalid_config(
                    "host",
                    "host (or metadata.bootstrapServers) is required",
                ))
            }
        };
        let username = creds
            .get("username")
            .map(|u| u.expose().to_owned())
            .filter(|u| !u.is_empty());
        let password = creds.get("password").filter(|p| !p.is_empty()).cloned();
        if username.is_some() != password.is_some() {
            return Err(ConnectorError::invalid_config(
                "credentials",
                "SASL needs both username and password",
            ));
        }
        let mechanism = match cfg.metadata_str(META_SASL_MECHANISM) {
            None => SaslMechanism::Plain,
            Some(m) => match m.trim().to_ascii_uppercase().as_str() {
                "PLAIN" => SaslMechanism::Plain,
                "SCRAM-SHA-256" => SaslMechanism::ScramSha256,
                "SCRAM-SHA-512" => SaslMechanism::ScramSha512,
                other => {
                    return Err(ConnectorError::new(
                        ErrorCode::Unsupported,
                        format!(
                            "saslMechanism {:?} is not supported: use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512",
                            other.chars().take(40).collect::<String>()
                        ),
                    )
                    .with_context("field", "metadata"))
                }
            },
        };
        if let Some(pem) = &cfg.ssl_ca_pem {
            tls::parse_pem_certs(pem)?;
        }
        Ok(KafkaOptions {
            extra_bootstrap: extra,
            host,
            port,
            username,
            password,
            mechanism,
            cluster_name: cfg
                .metadata_str(META_CLUSTER_NAME)
                .filter(|s| !s.is_empty()),
            ssl_mode: cfg.ssl_mode()?,
            ca_pem: cfg.ssl_ca_pem.clone(),
            connect_timeout: cfg.timeouts.connect(),
            query_timeout: cfg.timeouts.query(),
        })
    }

    /// librdkafka's security.protocol for the TLS mode and credentials.
    pub fn security_protocol(&self) -> &'static str {
        match (self.ssl_mode.is_tls(), self.username.is_some()) {
            (false, false) => "plaintext",
            (true, false) => "ssl",
            (false, true) => "sasl_plaintext",
            (true, true) => "sasl_ssl",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_servers_and_protocols() {
        let mut cfg = ConnectionConfig::default();
        cfg.metadata.insert(
            META_BOOTSTRAP.into(),
            serde_json::json!("b1.example.com:9093, [::1]:9094,b3"),
        );
        let o = KafkaOptions::from_config(&cfg, &Credentials::new()).unwrap();
        assert_eq!((o.host.as_str(), o.port), ("b1.example.com", 9093));
        assert_eq!(
            o.extra_bootstrap,
            vec![("::1".to_owned(), 9094), ("b3".to_owned(), 9092)]
        );
        assert_eq!(o.security_protocol(), "plaintext");
        cfg.metadata
            .insert(META_BOOTSTRAP.into(), serde_json::json!(["x:1"]));
        cfg.host = Some("h".into());
        cfg.ssl_enabled = Some(true);
        let creds = Credentials::new()
            .with("username", "u")
            .with("password", "secretpw");
        let o = KafkaOptions::from_config(&cfg, &creds).unwrap();
        assert_eq!(
            (o.host.as_str(), o.port, o.extra_bootstrap.len()),
            ("h", DEFAULT_PORT, 1)
        );
        assert_eq!(o.security_protocol(), "sasl_ssl");
        assert!(!format!("{o:?}").contains("secretpw"));
        for bad in [
            serde_json::json!("h:0"),
            serde_json::json!("a b:1"),
            serde_json::json!(5),
            serde_json::json!([1]),
        ] {
            cfg.metadata.insert(META_BOOTSTRAP.into(), bad.clone());
            assert_eq!(
                KafkaOptions::from_config(&cfg, &creds).unwrap_err().code(),
                ErrorCode::InvalidConfiguration,
                "{bad}"
            );
        }
    }

    #[test]
    fn sasl_settings() {
        let mut cfg = ConnectionConfig {
            host: Some("h".into()),
            ..Default::default()
        };
        let user_only = Credentials::new().with("username", "u");
        assert_eq!(
            KafkaOptions::from_config(&cfg, &user_only)
                .unwrap_err()
                .code(),
            ErrorCode::InvalidConfiguration
        );
        cfg.metadata.insert(
            META_SASL_MECHANISM.into(),
            serde_json::json!("scram-sha-512"),
        );
        let creds = Credentials::new()
            .with("username", "u")
            .with("password", "p");
        assert_eq!(
            KafkaOptions::from_config(&cfg, &creds).unwrap().mechanism,
            SaslMechanism::ScramSha512
        );
        cfg.metadata
            .insert(META_SASL_MECHANISM.into(), serde_json::json!("GSSAPI"));
        assert_eq!(
            KafkaOptions::from_config(&cfg, &creds).unwrap_err().code(),
            ErrorCode::Unsupported
        );
    }
}
