//! Connection configuration → client options, validated without I/O.

use std::fmt;
use std::time::Duration;

use matih_connector_core::{
    tls, ConnectionConfig, ConnectorError, Credentials, ErrorCode, SecretString, SslMode,
};

pub(crate) const META_AUTH_SOURCE: &str = "authSource";
pub(crate) const META_AUTH_MECHANISM: &str = "authMechanism";
pub(crate) const META_APP_NAME: &str = "appName";
pub(crate) const CRED_CONNECTION_STRING: &str = "connectionString";
pub(crate) const DEFAULT_PORT: u16 = 27017;
const DEFAULT_APP_NAME: &str = "matih-connector";

/// SCRAM flavours a server accepts; `None` lets the driver negotiate through
/// `saslSupportedMechs` (SCRAM-SHA-256 when the server offers it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mechanism {
    ScramSha1,
    ScramSha256,
}

/// What a connection string contributes, parsed without I/O. Only what the
/// driver needs from it is kept: the first seed host, credentials, auth source
/// and mechanism, TLS and the default database.
#[derive(Clone, Default, PartialEq)]
pub(crate) struct UriParts {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub extra_hosts: usize,
    pub username: Option<String>,
    pub password: Option<SecretString>,
    pub database: Option<String>,
    pub auth_source: Option<String>,
    pub auth_mechanism: Option<String>,
    pub tls: Option<bool>,
    pub replica_set: Option<String>,
}

impl fmt::Debug for UriParts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UriParts")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("database", &self.database)
            .finish_non_exhaustive()
    }
}

fn bad_uri(why: &str) -> ConnectorError {
    // Never echo the string: it may hold a password.
    ConnectorError::invalid_config(
        "credentials",
        format!("credentials.connectionString is invalid: {why}"),
    )
}

fn percent_decode(s: &str) -> Result<String, ConnectorError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .ok_or_else(|| bad_uri("truncated percent escape"))?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| bad_uri("invalid percent escape"))?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad_uri("percent escapes are not UTF-8"))
}

/// Parses `mongodb://[user[:password]@]host[:port][,host…][/[db]][?options]`.
/// `mongodb+srv://` is refused: SRV and TXT lookups would bypass the pinned,
/// egress-checked addresses (the driver is built without its DNS resolver).
pub(crate) fn parse_uri(uri: &str) -> Result<UriParts, ConnectorError> {
    let uri = uri.trim();
    if uri.starts_with("mongodb+srv://") {
        return Err(ConnectorError::new(
            ErrorCode::Unsupported,
            "mongodb+srv:// connection strings are not supported: give the hosts (mongodb://host:port,…) so every address can be checked against the egress policy",
        )
        .with_context("field", "credentials"));
    }
    let rest = uri
        .strip_prefix("mongodb://")
        .ok_or_else(|| bad_uri("it must start with mongodb://"))?;
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let mut parts = UriParts::default();
    let hosts = match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            let (u, p) = match userinfo.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (userinfo, None),
            };
            if !u.is_empty() {
                parts.username = Some(percent_decode(u)?);
            }
            if let Some(p) = p {
                parts.password = Some(SecretString::new(percent_decode(p)?));
            }
            &authority[at + 1..]
        }
        None => authority,
    };
    let mut seeds = hosts.split(',').filter(|h| !h.is_empty());
    let first = seeds.next().ok_or_else(|| bad_uri("it names no host"))?;
    parts.extra_hosts = seeds.count();
    let (host, port) = split_host_port(first)?;
    parts.host = Some(host);
    parts.port = port;
    let (path, query) = match tail.split_once('?') {
        Some((p, q)) => (p, q),
        None => (tail, ""),
    };
    let db = path.trim_start_matches('/');
    if !db.is_empty() {
        parts.database = Some(percent_decode(db)?);
    }
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| bad_uri("an option has no value"))?;
        let v = percent_decode(v)?;
        match k.to_ascii_lowercase().as_str() {
            "authsource" => parts.auth_source = Some(v),
            "authmechanism" => parts.auth_mechanism = Some(v),
            "tls" | "ssl" => {
                parts.tls = Some(match v.as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(bad_uri("tls must be true or false")),
                })
            }
            "replicaset" => parts.replica_set = Some(v),
            _ => {}
        }
    }
    Ok(parts)
}

fn split_host_port(s: &str) -> Result<(String, Option<u16>), ConnectorError> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let end = rest
            .find(']')
            .ok_or_else(|| bad_uri("unclosed IPv6 bracket"))?;
        let port = rest[end + 1..].strip_prefix(':');
        (rest[..end].to_owned(), port)
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (s.to_owned(), None),
        }
    };
    let port = match port {
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| bad_uri("invalid port"))?,
        ),
        None => None,
    };
    if host.is_empty() {
        return Err(bad_uri("empty host"));
    }
    Ok((percent_decode(&host)?, port))
}

/// Everything needed to open a client, built from a connector's configuration.
#[derive(Clone)]
pub(crate) struct MongoOptions {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<SecretString>,
    pub auth_source: String,
    pub mechanism: Option<Mechanism>,
    pub app_name: String,
    pub database: Option<String>,
    pub ssl_mode: SslMode,
    pub ca_pem: Option<String>,
    pub connect_timeout: Duration,
    pub query_timeout: Duration,
}

impl fmt::Debug for MongoOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MongoOptions")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("auth_source", &self.auth_source)
            .field("mechanism", &self.mechanism)
            .field("database", &self.database)
            .field("ssl_mode", &self.ssl_mode)
            .finish_non_exhaustive()
    }
}

fn parse_mechanism(s: &str) -> Result<Mechanism, ConnectorError> {
    match s.trim().to_ascii_uppercase().as_str() {
        "SCRAM-SHA-256" => Ok(Mechanism::ScramSha256),
        "SCRAM-SHA-1" => Ok(Mechanism::ScramSha1),
        other => Err(ConnectorError::new(
            ErrorCode::Unsupported,
            format!(
                "authMechanism {:?} is not supported: use SCRAM-SHA-256 or SCRAM-SHA-1",
                other.chars().take(40).collect::<String>()
            ),
        )
        .with_context("field", "metadata")),
    }
}

impl MongoOptions {
    pub fn from_config(
        cfg: &ConnectionConfig,
        creds: &Credentials,
    ) -> Result<Self, ConnectorError> {
        let uri = match creds.get(CRED_CONNECTION_STRING).filter(|s| !s.is_empty()) {
            Some(s) => parse_uri(s.expose())?,
            None => UriParts::default(),
        };
        // The address comes from host/port only: it is what the core resolves
        // and checks against the egress policy before the driver runs.
        let host = match cfg.host.as_deref().map(str::trim).filter(|h| !h.is_empty()) {
            Some(h) => h.to_owned(),
            None => return Err(ConnectorError::invalid_config(
                "host",
                "host is required: set host (and port) to the server the connection string names",
            )),
        };
        let port = cfg.port.unwrap_or(DEFAULT_PORT);
        let username = creds
            .get("username")
            .map(|u| u.expose().to_owned())
            .filter(|u| !u.is_empty())
            .or(uri.username.clone());
        let password = creds
            .get("password")
            .filter(|p| !p.is_empty())
            .cloned()
            .or(uri.password.clone());
        if password.is_some() && username.is_none() {
            return Err(ConnectorError::invalid_config(
                "credentials",
                "a password needs a username",
            ));
        }
        let auth_source = cfg
            .metadata_str(META_AUTH_SOURCE)
            .or(uri.auth_source.clone())
            .or(uri.database.clone())
            .unwrap_or_else(|| "admin".to_owned());
        let mechanism = match cfg
            .metadata_str(META_AUTH_MECHANISM)
            .or(uri.auth_mechanism.clone())
        {
            Some(m) => Some(parse_mechanism(&m)?),
            None => None,
        };
        let app_name = cfg
            .metadata_str(META_APP_NAME)
            .unwrap_or_else(|| DEFAULT_APP_NAME.to_owned());
        if app_name.len() > 128 {
            return Err(ConnectorError::invalid_config(
                "metadata",
                "metadata.appName must be at most 128 bytes",
            ));
        }
        let ssl_mode = match (cfg.ssl_enabled, cfg.ssl_mode, uri.tls) {
            (None, None, Some(true)) => SslMode::VerifyFull,
            _ => cfg.ssl_mode()?,
        };
        if let Some(pem) = &cfg.ssl_ca_pem {
            tls::parse_pem_certs(pem)?;
        }
        Ok(MongoOptions {
            host,
            port,
            username,
            password,
            auth_source,
            mechanism,
            app_name,
            database: cfg.database.clone(),
            ssl_mode,
            ca_pem: cfg.ssl_ca_pem.clone(),
            connect_timeout: cfg.timeouts.connect(),
            query_timeout: cfg.timeouts.query(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_connection_strings() {
        let p = parse_uri("mongodb://app%40corp:p%3Ass@db1.example.com:27018,db2.example.com/sales?authSource=admin&tls=true&replicaSet=rs0").unwrap();
        assert_eq!(p.host.as_deref(), Some("db1.example.com"));
        assert_eq!(p.port, Some(27018));
        assert_eq!(p.extra_hosts, 1);
        assert_eq!(p.username.as_deref(), Some("app@corp"));
        assert_eq!(p.password.as_ref().unwrap().expose(), "p:ss");
        assert_eq!(p.database.as_deref(), Some("sales"));
        assert_eq!(p.auth_source.as_deref(), Some("admin"));
        assert_eq!(p.tls, Some(true));
        assert!(!format!("{p:?}").contains("p:ss"));
        let p = parse_uri("mongodb://[::1]:27017").unwrap();
        assert_eq!((p.host.as_deref(), p.port), (Some("::1"), Some(27017)));
        let p = parse_uri("mongodb://localhost").unwrap();
        assert_eq!(
            (p.host.as_deref(), p.port, p.database),
            (Some("localhost"), None, None)
        );
    }

    #[test]
    fn refuses_bad_and_srv_strings_without_echoing_them() {
        let err = parse_uri("mongodb+srv://u:hunter22@cluster0.example.net/").unwrap_err();
        assert_eq!(err.code(), ErrorCode::Unsupported);
        for bad in [
            "http://u:hunter22@x",
            "mongodb://u:hunter22@",
            "mongodb://u:hunter22@h:99999",
            "mongodb://u:hunter22@h/?tls=maybe",
        ] {
            let err = parse_uri(bad).unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidConfiguration, "{bad}");
            assert!(!err.to_string().contains("hunter22"), "{err}");
        }
    }

    #[test]
    fn options_from_config_and_string() {
        let creds = Credentials::new().with(
            CRED_CONNECTION_STRING,
            "mongodb://u:pw@h.example.com:1234/db1?tls=true",
        );
        let none = ConnectionConfig {
            host: None,
            ..Default::default()
        };
        assert_eq!(
            MongoOptions::from_config(&none, &creds).unwrap_err().code(),
            ErrorCode::InvalidConfiguration
        );
        let cfg = ConnectionConfig {
            host: Some("h.example.com".into()),
            port: Some(1234),
            ..Default::default()
        };
        let o = MongoOptions::from_config(&cfg, &creds).unwrap();
        assert_eq!((o.host.as_str(), o.port), ("h.example.com", 1234));
        assert_eq!(o.auth_source, "db1");
        assert_eq!(o.ssl_mode, SslMode::VerifyFull);
        assert_eq!(o.username.as_deref(), Some("u"));
        assert!(!format!("{o:?}").contains("pw\""));
        let cfg = ConnectionConfig {
            host: Some("db".into()),
            ..Default::default()
        };
        let o = MongoOptions::from_config(&cfg, &Credentials::new()).unwrap();
        assert_eq!(
            (o.port, o.auth_source.as_str(), o.mechanism),
            (DEFAULT_PORT, "admin", None)
        );
        let mut cfg = cfg;
        cfg.metadata
            .insert(META_AUTH_MECHANISM.into(), serde_json::json!("GSSAPI"));
        assert_eq!(
            MongoOptions::from_config(&cfg, &Credentials::new())
                .unwrap_err()
                .code(),
            ErrorCode::Unsupported
        );
        let cfg = ConnectionConfig {
            host: Some("db".into()),
            ..Default::default()
        };
        let err =
            MongoOptions::from_config(&cfg, &Credentials::new().with("password", "x")).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidConfiguration);
    }
}
