//! BigQuery connector configuration, checked before any I/O.

use std::fmt;

use matih_connector_core::{
    ConnectionConfig, ConnectorError, Credentials, SecretString, SslMode, Timeouts,
};
use serde::Deserialize;
use serde_json::Value;
use url::Url;

pub(crate) const DEFAULT_ENDPOINT: &str = "https://bigquery.googleapis.com";
pub(crate) const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// Listing datasets and tables and running INFORMATION_SCHEMA queries needs
/// nothing more.
pub(crate) const READ_SCOPE: &str = "https://www.googleapis.com/auth/bigquery.readonly";

/// The fields of a service account key file the driver uses.
#[derive(Clone, Deserialize)]
pub(crate) struct ServiceAccountKey {
    #[serde(rename = "type", default)]
    pub key_type: Option<String>,
    pub client_email: String,
    #[serde(deserialize_with = "secret")]
    pub private_key: SecretString,
    #[serde(default)]
    pub private_key_id: Option<String>,
    #[serde(default)]
    pub token_uri: Option<String>,
}

/// Reads a private key straight into a [`SecretString`].
fn secret<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SecretString, D::Error> {
    String::deserialize(d).map(SecretString::new)
}

impl fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("client_email", &self.client_email)
            .field("private_key", &"***")
            .finish()
    }
}

/// How requests are authorized.
#[derive(Clone, Debug)]
pub(crate) enum Auth {
    /// No Authorization header: emulators only (BigQuery itself refuses it).
    Anonymous,
    /// A service account key, exchanged for an access token (JWT bearer grant).
    ServiceAccount {
        key: Box<ServiceAccountKey>,
        token_uri: Url,
    },
    /// An OAuth2 access token obtained elsewhere.
    AccessToken(SecretString),
}

#[derive(Clone, Debug)]
pub(crate) struct BqConfig {
    /// `scheme://host:port`, the REST API's root.
    pub endpoint: Url,
    pub host: String,
    pub tls: SslMode,
    pub ca_pem: Option<String>,
    /// The project whose datasets are discovered (and where queries run).
    pub project: String,
    /// Where INFORMATION_SCHEMA queries run (`US`, `EU`, `europe-west3`…).
    pub location: Option<String>,
    /// The one dataset to discover, when `database` names one.
    pub dataset: Option<String>,
    pub auth: Auth,
    pub timeouts: Timeouts,
}

pub(crate) fn meta_string(
    cfg: &ConnectionConfig,
    key: &'static str,
) -> Result<Option<String>, ConnectorError> {
    match cfg.metadata.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Err(ConnectorError::invalid_config(
            "metadata",
            format!("metadata.{key} is empty"),
        )),
        Some(Value::String(s)) => Ok(Some(s.trim().to_owned())),
        Some(_) => Err(ConnectorError::invalid_config(
            "metadata",
            format!("metadata.{key} must be a string"),
        )),
    }
}

fn tls_said(cfg: &ConnectionConfig) -> bool {
    cfg.ssl_enabled.is_some() || cfg.ssl_mode.is_some()
}

/// https verifies fully unless a mode says otherwise; http with TLS asked
/// for is a contradiction.
fn tls_for_scheme(cfg: &ConnectionConfig, scheme: &str) -> Result<SslMode, ConnectorError> {
    let mode = cfg.ssl_mode()?;
    match (scheme, tls_said(cfg), mode.is_tls()) {
        ("http", true, true) => Err(ConnectorError::invalid_config(
            "metadata.endpoint",
            format!("an http endpoint contradicts sslMode {mode}"),
        )),
        ("http", _, _) => Ok(SslMode::Disable),
        (_, true, false) => Err(ConnectorError::invalid_config(
            "metadata.endpoint",
            "an https endpoint contradicts sslEnabled=false / sslMode disable",
        )),
        (_, true, true) => Ok(mode),
        (_, false, _) => Ok(SslMode::VerifyFull),
    }
}

pub(crate) fn host_of(url: &Url) -> Option<String> {
    url.host_str()
        .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_owned())
}

fn origin(scheme: &str, host: &str, port: u16) -> Result<Url, ConnectorError> {
    let h = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    Url::parse(&format!("{scheme}://{h}:{port}")).map_err(|e| {
        ConnectorError::invalid_config("host", format!("host {host:?} does not form a URL: {e}"))
    })
}

/// The endpoint: `metadata.endpoint`, else `host`/`port` with the scheme the
/// TLS settings imply, else Google's.
pub(crate) fn parse_endpoint(cfg: &ConnectionConfig) -> Result<(Url, SslMode), ConnectorError> {
    let endpoint = match meta_string(cfg, "endpoint")? {
        Some(text) => {
            let url = Url::parse(&text).map_err(|e| {
                ConnectorError::invalid_config(
                    "metadata.endpoint",
                    format!("metadata.endpoint is not a URL: {e}"),
                )
            })?;
            if !matches!(url.scheme(), "http" | "https")
                || url.host_str().is_none()
                || !url.username().is_empty()
                || url.password().is_some()
                || url.query().is_some()
                || !matches!(url.path(), "" | "/")
            {
                return Err(ConnectorError::invalid_config(
                    "metadata.endpoint",
                    "metadata.endpoint must be http(s)://host[:port] without user, path or query",
                ));
            }
            let host = host_of(&url).unwrap_or_default();
            if let Some(h) = cfg.host.as_deref().map(str::trim) {
                if !h.eq_ignore_ascii_case(&host) {
                    return Err(ConnectorError::invalid_config(
                        "host",
                        "host and metadata.endpoint name different hosts: give one",
                    ));
                }
            }
            let port = url.port_or_known_default().unwrap_or(443);
            if cfg.port.is_some_and(|p| p != port) {
                return Err(ConnectorError::invalid_config(
                    "port",
                    "port and metadata.endpoint name different ports: give one",
                ));
            }
            origin(url.scheme(), &host, port)?
        }
        None => match cfg.host.as_deref().map(str::trim) {
            Some(h) if !h.is_empty() => {
                let https = !tls_said(cfg) || cfg.ssl_mode()?.is_tls();
                let scheme = if https { "https" } else { "http" };
                let port = cfg.port.unwrap_or(if https { 443 } else { 80 });
                origin(
                    scheme,
                    h.trim_start_matches('[').trim_end_matches(']'),
                    port,
                )?
            }
            _ => {
                let mut u = Url::parse(DEFAULT_ENDPOINT).expect("valid default endpoint");
                if let Some(p) = cfg.port {
                    let _ = u.set_port(Some(p));
                }
                u
            }
        },
    };
    let tls = tls_for_scheme(cfg, endpoint.scheme())?;
    Ok((endpoint, tls))
}

/// Dataset ids: letters, digits and underscores, at most 1024 bytes. The
/// emulator is laxer, so only what cannot travel in a URL path segment or a
/// quoted identifier is refused here.
fn check_dataset(d: &str) -> Result<(), ConnectorError> {
    let ok = !d.is_empty()
        && d.len() <= 1024
        && !d.chars().any(|c| c.is_control() || c == '`' || c == '/');
    if ok {
        Ok(())
    } else {
        Err(ConnectorError::invalid_config(
            "database",
            "the dataset name must be 1-1024 characters without '/', '`' or control characters",
        ))
    }
}

/// Project ids (and the legacy `domain:project` form).
fn check_project(p: &str) -> Result<(), ConnectorError> {
    let ok = p.len() <= 100
        && !p.is_empty()
        && p.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-.:_".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ConnectorError::invalid_config(
            "metadata.project",
            "metadata.project must be a project id (letters, digits, '-', '.', ':')",
        ))
    }
}

/// Locations: `US`, `EU`, `us-central1`…
fn check_location(l: &str) -> Result<(), ConnectorError> {
    let ok = l.len() <= 64 && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(ConnectorError::invalid_config(
            "metadata.location",
            "metadata.location must be a location such as US, EU or europe-west3",
        ))
    }
}

fn parse_key(text: &SecretString) -> Result<ServiceAccountKey, ConnectorError> {
    // serde's message could quote the text; it is replaced by our own.
    let key: ServiceAccountKey = serde_json::from_str(text.expose()).map_err(|e| {
        ConnectorError::invalid_config(
            "credentials",
            format!(
                "credentials.serviceAccountKey is not a service account key JSON (line {}, column {}; \
                 it needs client_email and private_key)",
                e.line(),
                e.column()
            ),
        )
    })?;
    if key
        .key_type
        .as_deref()
        .is_some_and(|t| t != "service_account")
    {
        return Err(ConnectorError::invalid_config(
            "credentials",
            "credentials.serviceAccountKey has a \"type\" other than \"service_account\"",
        ));
    }
    if !key.private_key.expose().contains("PRIVATE KEY-----") {
        return Err(ConnectorError::invalid_config(
            "credentials",
            "credentials.serviceAccountKey.private_key is not a PEM private key",
        ));
    }
    if jsonwebtoken::EncodingKey::from_rsa_pem(key.private_key.expose().as_bytes()).is_err() {
        return Err(ConnectorError::invalid_config(
            "credentials",
            "credentials.serviceAccountKey.private_key is not an RSA private key",
        ));
    }
    Ok(key)
}

impl BqConfig {
    pub fn parse(cfg: &ConnectionConfig, creds: &Credentials) -> Result<BqConfig, ConnectorError> {
        let (endpoint, tls) = parse_endpoint(cfg)?;
        let host = host_of(&endpoint).unwrap_or_default();
        let dataset = cfg
            .database
            .as_deref()
            .map(str::trim)
            .filter(|d| !d.is_empty());
        if let Some(d) = dataset {
            check_dataset(d)?;
        }
        if cfg.schema.is_some() {
            return Err(ConnectorError::invalid_config(
                "schema",
                "BigQuery has no schema level below the dataset: name the dataset as database",
            ));
        }
        let key = creds.get("serviceAccountKey").filter(|k| !k.is_empty());
        let token = creds.get("accessToken").filter(|k| !k.is_empty());
        let auth = match (key, token) {
            (Some(_), Some(_)) => {
                return Err(ConnectorError::invalid_config(
                    "credentials",
                    "give credentials.serviceAccountKey or credentials.accessToken, not both",
                ))
            }
            (Some(k), None) => {
                let key = parse_key(k)?;
                let uri = meta_string(cfg, "tokenUrl")?
                    .or_else(|| key.token_uri.clone())
                    .unwrap_or_else(|| DEFAULT_TOKEN_URI.to_owned());
                let token_uri = Url::parse(&uri)
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
                    .ok_or_else(|| {
                        ConnectorError::invalid_config(
                            "credentials",
                            "the service account key's token_uri (or metadata.tokenUrl) is not an http(s) URL",
                        )
                    })?;
                Auth::ServiceAccount {
                    key: Box::new(key),
                    token_uri,
                }
            }
            (None, Some(t)) => {
                if t.expose().chars().any(|c| c.is_control() || c == ' ') {
                    return Err(ConnectorError::invalid_config(
                        "credentials",
                        "credentials.accessToken holds spaces or control characters",
                    ));
                }
                Auth::AccessToken(t.clone())
            }
            (None, None) => Auth::Anonymous,
        };
        if !matches!(auth, Auth::ServiceAccount { .. }) && cfg.metadata.contains_key("tokenUrl") {
            return Err(ConnectorError::invalid_config(
                "metadata",
                "metadata.tokenUrl needs credentials.serviceAccountKey",
            ));
        }
        // Google's own endpoint refuses anonymous calls; only an override
        // (an emulator, a proxy that adds credentials) may go without.
        if matches!(auth, Auth::Anonymous)
            && endpoint.as_str().trim_end_matches('/') == DEFAULT_ENDPOINT
        {
            return Err(ConnectorError::invalid_config(
                "credentials",
                "credentials.serviceAccountKey is required for bigquery.googleapis.com",
            ));
        }
        let project = meta_string(cfg, "project")?.ok_or_else(|| {
            ConnectorError::invalid_config("metadata.project", "metadata.project is required")
        })?;
        check_project(&project)?;
        let location = meta_string(cfg, "location")?;
        if let Some(l) = &location {
            check_location(l)?;
        }
        Ok(BqConfig {
            endpoint,
            host,
            tls,
            ca_pem: cfg.ssl_ca_pem.clone(),
            project,
            location,
            dataset: dataset.map(str::to_owned),
            auth,
            timeouts: cfg.timeouts,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use matih_connector_core::ErrorCode;
    use serde_json::json;

    /// A throwaway 2048-bit RSA key made for these tests only.
    pub(crate) const TEST_RSA_KEY: &str = include_str!("../tests/data/test-rsa-key.pem");

    pub(crate) fn key_json(token_uri: &str) -> String {
        json!({
            "type": "service_account",
            "project_id": "matih-test",
            "private_key_id": "k1",
            "private_key": TEST_RSA_KEY,
            "client_email": "reader@matih-test.iam.gserviceaccount.com",
            "token_uri": token_uri,
        })
        .to_string()
    }

    fn cfg(meta: Value) -> ConnectionConfig {
        ConnectionConfig {
            metadata: serde_json::from_value(meta).unwrap(),
            ..Default::default()
        }
    }

    fn sa() -> Credentials {
        Credentials::new().with(
            "serviceAccountKey",
            key_json("https://oauth2.googleapis.com/token"),
        )
    }

    #[test]
    fn endpoints() {
        let c = BqConfig::parse(&cfg(json!({"project": "p"})), &sa()).unwrap();
        assert_eq!(c.endpoint.as_str(), "https://bigquery.googleapis.com/");
        assert_eq!(
            (c.host.as_str(), c.tls),
            ("bigquery.googleapis.com", SslMode::VerifyFull)
        );
        let c = BqConfig::parse(
            &cfg(json!({"project": "p", "endpoint": "http://127.0.0.1:9050"})),
            &Credentials::new(),
        )
        .unwrap();
        assert_eq!(
            (c.endpoint.as_str(), c.tls),
            ("http://127.0.0.1:9050/", SslMode::Disable)
        );
        let mut h = cfg(json!({"project": "p"}));
        h.host = Some("bq.internal".into());
        h.port = Some(8443);
        let c = BqConfig::parse(&h, &Credentials::new()).unwrap();
        assert_eq!(c.endpoint.as_str(), "https://bq.internal:8443/");
        h.ssl_enabled = Some(false);
        let c = BqConfig::parse(&h, &Credentials::new()).unwrap();
        assert_eq!(c.endpoint.as_str(), "http://bq.internal:8443/");
        for bad in [
            json!({"project": "p", "endpoint": "ftp://x"}),
            json!({"project": "p", "endpoint": "http://x/path"}),
            json!({"project": "p", "endpoint": "http://u:p@x"}),
        ] {
            let e = BqConfig::parse(&cfg(bad.clone()), &Credentials::new()).unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidConfiguration, "{bad}");
        }
    }

    #[test]
    fn credentials_project_location_dataset() {
        let c = BqConfig::parse(&cfg(json!({"project": "p", "location": "EU"})), &sa()).unwrap();
        assert_eq!(c.project, "p");
        assert_eq!(c.location.as_deref(), Some("EU"));
        assert!(matches!(c.auth, Auth::ServiceAccount { .. }));
        assert!(!format!("{c:?}").contains("PRIVATE KEY"));
        // The project is required even when the key names one: it says where
        // queries are billed, which is the user's choice.
        let e = BqConfig::parse(&cfg(json!({})), &sa()).unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidConfiguration);
        // Google's endpoint without credentials.
        let e = BqConfig::parse(&cfg(json!({"project": "p"})), &Credentials::new()).unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidConfiguration);
        for bad in [
            "not json",
            r#"{"client_email":"a","private_key":"nope"}"#,
            r#"{"type":"authorized_user","client_email":"a","private_key":"-----BEGIN PRIVATE KEY-----"}"#,
        ] {
            let creds = Credentials::new().with("serviceAccountKey", bad);
            let e = BqConfig::parse(&cfg(json!({"project": "p"})), &creds).unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidConfiguration, "{bad}");
            assert!(!e.message().contains("nope"));
        }
        let both = sa().with("accessToken", "ya29.x");
        assert!(BqConfig::parse(&cfg(json!({"project": "p"})), &both).is_err());
        for bad in [
            json!({"project": "bad project"}),
            json!({"project": "p", "location": "us central"}),
            json!({"project": "p", "location": 3}),
        ] {
            assert!(BqConfig::parse(&cfg(bad.clone()), &sa()).is_err(), "{bad}");
        }
        let mut d = cfg(json!({"project": "p"}));
        d.database = Some("sales `x`".into());
        assert!(BqConfig::parse(&d, &sa()).is_err());
        d.database = Some("ventes é 2024".into());
        assert_eq!(
            BqConfig::parse(&d, &sa()).unwrap().dataset.as_deref(),
            Some("ventes é 2024")
        );
        d.schema = Some("x".into());
        assert!(BqConfig::parse(&d, &sa()).is_err());
    }
}
