//! GCS connector configuration, checked before any I/O.

use std::fmt;

use matih_connector_core::{
    ConnectionConfig, ConnectorError, Credentials, SecretString, SslMode, Timeouts,
};
use serde::Deserialize;
use serde_json::Value;
use url::Url;

pub(crate) const DEFAULT_ENDPOINT: &str = "https://storage.googleapis.com";
pub(crate) const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// Listing and reading objects needs nothing more.
pub(crate) const READ_SCOPE: &str = "https://www.googleapis.com/auth/devstorage.read_only";
/// Objects listed per file set at most (for counts, sizes and formats).
pub(crate) const DEFAULT_MAX_OBJECTS: u64 = 10_000;
/// Bytes read from the start of one CSV or JSON-lines file.
pub(crate) const DEFAULT_SAMPLE_BYTES: u64 = 1 << 20;
/// Files read per file set for columns.
pub(crate) const DEFAULT_SAMPLE_FILES: u64 = 3;

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
    #[serde(default)]
    pub project_id: Option<String>,
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
    /// No Authorization header: public buckets and emulators.
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
pub(crate) struct GcsConfig {
    /// `scheme://host:port`, the JSON API's root.
    pub endpoint: Url,
    pub host: String,
    pub tls: SslMode,
    pub ca_pem: Option<String>,
    pub project: Option<String>,
    pub bucket: Option<String>,
    pub auth: Auth,
    pub max_objects: u64,
    pub sample_bytes: u64,
    pub sample_files: u64,
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

pub(crate) fn meta_u64(
    cfg: &ConnectionConfig,
    key: &'static str,
    min: u64,
    max: u64,
) -> Result<Option<u64>, ConnectorError> {
    let v = match cfg.metadata.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        Some(_) => None,
    };
    match v {
        Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
        _ => Err(ConnectorError::invalid_config(
            "metadata",
            format!("metadata.{key} must be an integer from {min} to {max}"),
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

/// GCS bucket names: 3-63 characters (222 with dots) of lowercase letters,
/// digits, `-`, `_` and `.`. Only what cannot be a bucket anywhere (emulators
/// are laxer) is refused here.
fn check_bucket(b: &str) -> Result<(), ConnectorError> {
    let ok =
        !b.is_empty() && b.len() <= 222 && !b.contains('/') && !b.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err(ConnectorError::invalid_config(
            "metadata.bucket",
            "the bucket name must be 1-222 characters without '/' or control characters",
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

impl GcsConfig {
    pub fn parse(cfg: &ConnectionConfig, creds: &Credentials) -> Result<GcsConfig, ConnectorError> {
        let (endpoint, tls) = parse_endpoint(cfg)?;
        let host = host_of(&endpoint).unwrap_or_default();
        let meta_bucket = meta_string(cfg, "bucket")?;
        let bucket = match (meta_bucket, cfg.database.clone()) {
            (Some(a), Some(b)) if a != b => {
                return Err(ConnectorError::invalid_config(
                    "metadata.bucket",
                    "database and metadata.bucket name different buckets: give one",
                ))
            }
            (a, b) => a.or(b),
        };
        if let Some(b) = &bucket {
            check_bucket(b)?;
        }
        if cfg.schema.is_some() {
            return Err(ConnectorError::invalid_config(
                "schema",
                "GCS has no schema level below the bucket: leave schema empty",
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
        let project = match meta_string(cfg, "project")? {
            Some(p) => Some(p),
            None => match &auth {
                Auth::ServiceAccount { key, .. } => key.project_id.clone(),
                _ => None,
            },
        };
        if let Some(p) = &project {
            let ok = p.len() <= 100
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-.:_".contains(c));
            if !ok {
                return Err(ConnectorError::invalid_config(
                    "metadata.project",
                    "metadata.project must be a project id (letters, digits, '-', '.', ':')",
                ));
            }
        }
        if bucket.is_none() && project.is_none() {
            return Err(ConnectorError::invalid_config(
                "metadata.project",
                "give metadata.project (buckets are listed per project) or a bucket (database or metadata.bucket)",
            ));
        }
        Ok(GcsConfig {
            endpoint,
            host,
            tls,
            ca_pem: cfg.ssl_ca_pem.clone(),
            project,
            bucket,
            auth,
            max_objects: meta_u64(cfg, "maxObjectsPerTable", 1, 1_000_000)?
                .unwrap_or(DEFAULT_MAX_OBJECTS),
            sample_bytes: meta_u64(cfg, "sampleBytes", 1024, 64 << 20)?
                .unwrap_or(DEFAULT_SAMPLE_BYTES),
            sample_files: meta_u64(cfg, "sampleFiles", 1, 100)?.unwrap_or(DEFAULT_SAMPLE_FILES),
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

    #[test]
    fn endpoints() {
        let c = GcsConfig::parse(&cfg(json!({"project": "p"})), &Credentials::new()).unwrap();
        assert_eq!(c.endpoint.as_str(), "https://storage.googleapis.com/");
        assert_eq!(
            (c.host.as_str(), c.tls),
            ("storage.googleapis.com", SslMode::VerifyFull)
        );
        let c = GcsConfig::parse(
            &cfg(json!({"project": "p", "endpoint": "http://127.0.0.1:4443"})),
            &Credentials::new(),
        )
        .unwrap();
        assert_eq!(
            (c.endpoint.as_str(), c.tls),
            ("http://127.0.0.1:4443/", SslMode::Disable)
        );
        let mut h = cfg(json!({"project": "p"}));
        h.host = Some("gcs.internal".into());
        h.port = Some(8443);
        let c = GcsConfig::parse(&h, &Credentials::new()).unwrap();
        assert_eq!(c.endpoint.as_str(), "https://gcs.internal:8443/");
        h.ssl_enabled = Some(false);
        let c = GcsConfig::parse(&h, &Credentials::new()).unwrap();
        assert_eq!(c.endpoint.as_str(), "http://gcs.internal:8443/");
        for bad in [
            json!({"project": "p", "endpoint": "ftp://x"}),
            json!({"project": "p", "endpoint": "http://x/path"}),
            json!({"project": "p", "endpoint": "http://u:p@x"}),
        ] {
            let e = GcsConfig::parse(&cfg(bad.clone()), &Credentials::new()).unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidConfiguration, "{bad}");
        }
    }

    #[test]
    fn credentials_and_project() {
        let creds = Credentials::new().with(
            "serviceAccountKey",
            key_json("https://oauth2.googleapis.com/token"),
        );
        let c = GcsConfig::parse(&cfg(json!({})), &creds).unwrap();
        assert_eq!(c.project.as_deref(), Some("matih-test"));
        assert!(matches!(c.auth, Auth::ServiceAccount { .. }));
        assert!(!format!("{c:?}").contains("PRIVATE KEY"));
        let e = GcsConfig::parse(&cfg(json!({})), &Credentials::new()).unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidConfiguration);
        for bad in [
            "not json",
            r#"{"client_email":"a","private_key":"nope"}"#,
            r#"{"type":"authorized_user","client_email":"a","private_key":"-----BEGIN PRIVATE KEY-----"}"#,
        ] {
            let creds = Credentials::new().with("serviceAccountKey", bad);
            let e = GcsConfig::parse(&cfg(json!({"project": "p"})), &creds).unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidConfiguration, "{bad}");
            assert!(!e.message().contains("nope"));
        }
        let both = creds.clone().with("accessToken", "ya29.x");
        assert!(GcsConfig::parse(&cfg(json!({})), &both).is_err());
        let c = GcsConfig::parse(
            &cfg(json!({"bucket": "b"})),
            &Credentials::new().with("accessToken", "ya29.x"),
        )
        .unwrap();
        assert!(matches!(c.auth, Auth::AccessToken(_)));
        let mut d = cfg(json!({"bucket": "b1"}));
        d.database = Some("b2".into());
        assert!(GcsConfig::parse(&d, &Credentials::new()).is_err());
        assert!(
            GcsConfig::parse(&cfg(json!({"project": "bad project"})), &Credentials::new()).is_err()
        );
        assert!(GcsConfig::parse(
            &cfg(json!({"project": "p", "tokenUrl": "https://x"})),
            &Credentials::new()
        )
        .is_err());
    }
}
