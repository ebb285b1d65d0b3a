//! REST connector configuration: base URL, endpoints, version source, limits and
//! authentication, all checked before any I/O.

use std::collections::HashSet;
use std::fmt;

use matih_connector_core::{
    ConnectionConfig, ConnectorError, Credentials, SecretString, SslMode, Timeouts,
};
use reqwest::header::HeaderName;
use reqwest::Method;
use serde_json::Value;
use url::Url;

/// Default cap on one sampled response body.
pub(crate) const DEFAULT_MAX_RESPONSE_BYTES: u64 = 1 << 20;
const MAX_RESPONSE_BYTES_LIMIT: u64 = 256 << 20;
const MAX_ENDPOINTS: usize = 1000;

/// One endpoint discovered as a table.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Endpoint {
    pub name: String,
    /// Path relative to the base URL, query string allowed.
    pub path: String,
    pub method: Method,
    /// JSON pointer to the array of records in the response.
    pub records_path: Option<String>,
    pub comment: Option<String>,
}

/// Where the OpenAPI document comes from.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum OpenApiSource {
    /// A path on the API's own origin.
    Path(String),
    /// An absolute URL, possibly on another host (resolved and egress-checked).
    Url(Url),
}

/// How requests authenticate. `Debug` names the mode only.
#[derive(Clone)]
pub(crate) enum Auth {
    None,
    Basic {
        username: SecretString,
        password: Option<SecretString>,
    },
    Bearer(SecretString),
    ApiKey {
        header: HeaderName,
        key: SecretString,
    },
    OAuth2(OAuth2),
}

#[derive(Clone)]
pub(crate) struct OAuth2 {
    pub client_id: SecretString,
    pub client_secret: SecretString,
    pub token_url: Url,
    pub scope: Option<String>,
    /// Send the client credentials in the form body (`client_secret_post`)
    /// instead of HTTP Basic (`client_secret_basic`, RFC 6749 §2.3.1's default).
    pub credentials_in_body: bool,
}

impl Auth {
    pub fn mode(&self) -> &'static str {
        match self {
            Auth::None => "none",
            Auth::Basic { .. } => "basic",
            Auth::Bearer(_) => "bearer",
            Auth::ApiKey { .. } => "apiKey",
            Auth::OAuth2(_) => "oauth2ClientCredentials",
        }
    }
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::ApiKey { header, .. } => write!(f, "Auth(apiKey in {header})"),
            Auth::OAuth2(o) => write!(f, "Auth(oauth2 via {})", o.token_url),
            other => write!(f, "Auth({})", other.mode()),
        }
    }
}

/// The REST connector's parsed configuration. Holds credentials only inside
/// [`Auth`], whose `Debug` prints no secret.
#[derive(Clone, Debug)]
pub(crate) struct RestConfig {
    /// `scheme://host:port/basePath/`, always ending in `/`.
    pub base: Url,
    pub host: String,
    pub tls: SslMode,
    pub ca_pem: Option<String>,
    /// The schema name: metadata `name`, else the host.
    pub name: String,
    pub endpoints: Vec<Endpoint>,
    pub openapi: Option<OpenApiSource>,
    pub default_records_path: Option<String>,
    pub version_endpoint: Option<String>,
    pub version_header: Option<HeaderName>,
    pub max_response_bytes: u64,
    pub auth: Auth,
    pub timeouts: Timeouts,
}

/// The scheme and TLS mode: `metadata.scheme` when given, else https unless TLS
/// was switched off explicitly. https with nothing said about TLS means
/// `verify-full`, so TLS is verified by default.
pub(crate) fn scheme_and_tls(
    cfg: &ConnectionConfig,
) -> Result<(&'static str, SslMode), ConnectorError> {
    let mode = cfg.ssl_mode()?;
    let said = cfg.ssl_enabled.is_some() || cfg.ssl_mode.is_some();
    let scheme = match cfg.metadata.get("scheme") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("https") => Some("https"),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("http") => Some("http"),
        Some(other) => {
            return Err(ConnectorError::invalid_config(
                "metadata.scheme",
                format!("metadata.scheme must be \"http\" or \"https\", not {other}"),
            ))
        }
    };
    match (scheme, said, mode.is_tls()) {
        (Some("http"), true, true) => Err(ConnectorError::invalid_config(
            "metadata.scheme",
            format!("metadata.scheme http contradicts sslMode {mode}"),
        )),
        (Some("http"), _, _) => Ok(("http", SslMode::Disable)),
        (Some(_), true, false) => Err(ConnectorError::invalid_config(
            "metadata.scheme",
            "metadata.scheme https contradicts sslEnabled=false / sslMode disable",
        )),
        (Some(_), false, _) => Ok(("https", SslMode::VerifyFull)),
        (Some(_), true, true) => Ok(("https", mode)),
        (None, true, false) => Ok(("http", SslMode::Disable)),
        (None, true, true) => Ok(("https", mode)),
        (None, false, _) => Ok(("https", SslMode::VerifyFull)),
    }
}

/// The port: the configured one, else the scheme's.
pub(crate) fn port_for(cfg: &ConnectionConfig, scheme: &str) -> u16 {
    cfg.port.unwrap_or(if scheme == "https" { 443 } else { 80 })
}

/// `scheme://host:port/` with IPv6 literals bracketed.
pub(crate) fn origin_url(scheme: &str, host: &str, port: u16) -> Result<Url, ConnectorError> {
    let h = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    Url::parse(&format!("{scheme}://{h}:{port}/")).map_err(|e| {
        ConnectorError::invalid_config("host", format!("host {host:?} does not form a URL: {e}"))
    })
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
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ConnectorError::invalid_config(
            "metadata",
            format!("metadata.{key} must be a string"),
        )),
    }
}

pub(crate) fn meta_u64(
    cfg: &ConnectionConfig,
    key: &'static str,
) -> Result<Option<u64>, ConnectorError> {
    match cfg.metadata.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.as_u64().is_some() => Ok(n.as_u64()),
        Some(Value::String(s)) if s.parse::<u64>().is_ok() => Ok(s.parse().ok()),
        Some(_) => Err(ConnectorError::invalid_config(
            "metadata",
            format!("metadata.{key} must be a non-negative integer"),
        )),
    }
}

pub(crate) fn max_response_bytes(
    cfg: &ConnectionConfig,
    default: u64,
) -> Result<u64, ConnectorError> {
    match meta_u64(cfg, "maxResponseBytes")? {
        None => Ok(default),
        Some(n) if (1024..=MAX_RESPONSE_BYTES_LIMIT).contains(&n) => Ok(n),
        Some(_) => Err(ConnectorError::invalid_config(
            "metadata",
            format!(
                "metadata.maxResponseBytes must be between 1024 and {MAX_RESPONSE_BYTES_LIMIT}"
            ),
        )),
    }
}

/// A path on the API's origin: relative, no scheme, no authority, no fragment.
fn check_relative_path(key: &'static str, path: &str) -> Result<String, ConnectorError> {
    let p = path.trim();
    let bad = p.is_empty()
        || p.starts_with("//")
        || p.contains("://")
        || p.contains('#')
        || p.chars().any(|c| c.is_control())
        || p.split(['/', '?']).any(|seg| seg == "..");
    if bad {
        return Err(ConnectorError::invalid_config(
            "metadata",
            format!(
                "{key} {:?} must be a path on the API (no scheme, host, `..` or fragment)",
                trunc(p)
            ),
        ));
    }
    Ok(p.to_owned())
}

fn check_pointer(key: &'static str, p: &str) -> Result<String, ConnectorError> {
    if p.is_empty() || p.starts_with('/') {
        Ok(p.to_owned())
    } else {
        Err(ConnectorError::invalid_config(
            "metadata",
            format!(
                "{key} {:?} must be a JSON pointer such as /data/items",
                trunc(p)
            ),
        ))
    }
}

fn trunc(s: &str) -> String {
    s.chars().take(80).collect()
}

/// Joins a path (relative to the base path) onto the base URL and checks the
/// result stayed on the base's origin.
pub(crate) fn join(base: &Url, path: &str) -> Result<Url, ConnectorError> {
    let url = base.join(path.trim_start_matches('/')).map_err(|e| {
        ConnectorError::invalid_config("metadata", format!("path {:?}: {e}", trunc(path)))
    })?;
    if url.origin() != base.origin() {
        return Err(ConnectorError::invalid_config(
            "metadata",
            format!("path {:?} leaves the API's origin", trunc(path)),
        ));
    }
    Ok(url)
}

fn parse_method(s: &str) -> Result<Method, ConnectorError> {
    match s.to_ascii_uppercase().as_str() {
        "GET" => Ok(Method::GET),
        // Search-style APIs answer POST without side effects; anything else
        // could change data, and discovery only reads.
        "POST" => Ok(Method::POST),
        other => Err(ConnectorError::invalid_config(
            "metadata",
            format!(
                "endpoint method {:?} is not supported: GET or POST",
                trunc(other)
            ),
        )),
    }
}

fn default_name(path: &str) -> String {
    let p = path.trim_start_matches('/');
    let p = p.split('?').next().unwrap_or(p).trim_end_matches('/');
    if p.is_empty() {
        "/".to_owned()
    } else {
        p.to_owned()
    }
}

fn parse_endpoints(v: &Value) -> Result<Vec<Endpoint>, ConnectorError> {
    let items = match v {
        Value::Array(a) => a,
        _ => {
            return Err(ConnectorError::invalid_config(
                "metadata",
                "metadata.endpoints must be a list of paths or {name, path, method, recordsPath} objects",
            ))
        }
    };
    if items.len() > MAX_ENDPOINTS {
        return Err(ConnectorError::invalid_config(
            "metadata",
            format!(
                "metadata.endpoints lists {} endpoints; at most {MAX_ENDPOINTS}",
                items.len()
            ),
        ));
    }
    let mut out = Vec::with_capacity(items.len());
    let mut names = HashSet::new();
    for item in items {
        let ep = match item {
            Value::String(path) => {
                let path = check_relative_path("endpoint path", path)?;
                Endpoint {
                    name: default_name(&path),
                    path,
                    method: Method::GET,
                    records_path: None,
                    comment: None,
                }
            }
            Value::Object(o) => {
                for k in o.keys() {
                    if !matches!(
                        k.as_str(),
                        "name" | "path" | "method" | "recordsPath" | "description"
                    ) {
                        return Err(ConnectorError::invalid_config(
                            "metadata",
                            format!(
                                "unknown endpoint key {:?}: expected name, path, method, recordsPath, description",
                                trunc(k)
                            ),
                        ));
                    }
                }
                let s = |k: &str| -> Result<Option<String>, ConnectorError> {
                    match o.get(k) {
                        None | Some(Value::Null) => Ok(None),
                        Some(Value::String(s)) => Ok(Some(s.clone())),
                        Some(_) => Err(ConnectorError::invalid_config(
                            "metadata",
                            format!("endpoint {k} must be a string"),
                        )),
                    }
                };
                let path = s("path")?.ok_or_else(|| {
                    ConnectorError::invalid_config("metadata", "every endpoint object needs a path")
                })?;
                let path = check_relative_path("endpoint path", &path)?;
                let name = match s("name")? {
                    Some(n) if !n.trim().is_empty() => n,
                    Some(_) => {
                        return Err(ConnectorError::invalid_config(
                            "metadata",
                            "endpoint name is empty",
                        ))
                    }
                    None => default_name(&path),
                };
                let method = match s("method")? {
                    Some(m) => parse_method(&m)?,
                    None => Method::GET,
                };
                let records_path = s("recordsPath")?
                    .map(|p| check_pointer("recordsPath", &p))
                    .transpose()?;
                Endpoint {
                    name,
                    path,
                    method,
                    records_path,
                    comment: s("description")?,
                }
            }
            _ => {
                return Err(ConnectorError::invalid_config(
                    "metadata",
                    "each metadata.endpoints entry is a path string or an object",
                ))
            }
        };
        if !names.insert(ep.name.clone()) {
            return Err(ConnectorError::invalid_config(
                "metadata",
                format!("endpoint name {:?} is used twice", trunc(&ep.name)),
            ));
        }
        out.push(ep);
    }
    Ok(out)
}

/// A secret that travels in a header must be a valid header value (no CR, LF
/// or other control characters), checked before any I/O; the error names the
/// key, never the value.
fn header_safe(key: &'static str, value: &SecretString) -> Result<(), ConnectorError> {
    if reqwest::header::HeaderValue::from_str(value.expose()).is_err() {
        return Err(ConnectorError::invalid_config(
            "credentials",
            format!("credentials.{key} holds characters an HTTP header cannot carry"),
        ));
    }
    Ok(())
}

/// Picks the authentication mode from the credential keys present; more than
/// one mode, or half of one, is a configuration error.
pub(crate) fn parse_auth(
    cfg: &ConnectionConfig,
    creds: &Credentials,
    base_scheme: &str,
) -> Result<Auth, ConnectorError> {
    let has = |k: &str| creds.get(k).is_some_and(|v| !v.is_empty());
    let oauth_meta = ["tokenUrl", "scope", "tokenAuthMethod"];
    let modes: Vec<&str> = [
        (
            has("username") || has("password"),
            "basic (username/password)",
        ),
        (has("token"), "bearer (token)"),
        (has("apiKey"), "API key (apiKey)"),
        (
            has("clientId") || has("clientSecret"),
            "OAuth2 (clientId/clientSecret)",
        ),
    ]
    .into_iter()
    .filter(|(on, _)| *on)
    .map(|(_, n)| n)
    .collect();
    if modes.len() > 1 {
        return Err(ConnectorError::invalid_config(
            "credentials",
            format!(
                "credentials mix authentication modes: {}; give one",
                modes.join(", ")
            ),
        ));
    }
    if !has("apiKey") && cfg.metadata.contains_key("apiKeyHeader") {
        return Err(ConnectorError::invalid_config(
            "metadata",
            "metadata.apiKeyHeader needs credentials.apiKey",
        ));
    }
    let oauth = has("clientId") || has("clientSecret");
    if !oauth {
        if let Some(k) = oauth_meta.iter().find(|k| cfg.metadata.contains_key(**k)) {
            return Err(ConnectorError::invalid_config(
                "metadata",
                format!("metadata.{k} needs credentials.clientId and clientSecret"),
            ));
        }
    }
    if has("password") && !has("username") {
        return Err(ConnectorError::invalid_config(
            "credentials",
            "credentials.password needs credentials.username",
        ));
    }
    let get = |k: &'static str| creds.require(k).cloned();
    if has("username") {
        return Ok(Auth::Basic {
            username: get("username")?,
            password: creds.get("password").cloned(),
        });
    }
    if has("token") {
        let token = get("token")?;
        header_safe("token", &token)?;
        return Ok(Auth::Bearer(token));
    }
    if has("apiKey") {
        let name = meta_string(cfg, "apiKeyHeader")?.unwrap_or_else(|| "X-API-Key".to_owned());
        let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            ConnectorError::invalid_config(
                "metadata",
                format!(
                    "metadata.apiKeyHeader {:?} is not a header name",
                    trunc(&name)
                ),
            )
        })?;
        if matches!(
            header.as_str(),
            "host" | "content-length" | "transfer-encoding" | "connection"
        ) {
            return Err(ConnectorError::invalid_config(
                "metadata",
                format!("metadata.apiKeyHeader cannot be {header}"),
            ));
        }
        header_safe("apiKey", creds.require("apiKey")?)?;
        return Ok(Auth::ApiKey {
            header,
            key: get("apiKey")?,
        });
    }
    if oauth {
        let client_id = get("clientId")?;
        let client_secret = get("clientSecret")?;
        let raw = meta_string(cfg, "tokenUrl")?.ok_or_else(|| {
            ConnectorError::invalid_config(
                "metadata",
                "OAuth2 client credentials need metadata.tokenUrl",
            )
        })?;
        let token_url = Url::parse(&raw).map_err(|e| {
            ConnectorError::invalid_config(
                "metadata",
                format!("metadata.tokenUrl is not a URL: {e}"),
            )
        })?;
        match token_url.scheme() {
            "https" => {}
            // A client secret travels in clear only to an API that is itself
            // plain HTTP (a lab or a sidecar); otherwise it needs TLS.
            "http" if base_scheme == "http" => {}
            _ => {
                return Err(ConnectorError::invalid_config(
                    "metadata",
                    "metadata.tokenUrl must be https (http only when the API itself is http)",
                ))
            }
        }
        if token_url.host_str().is_none()
            || !token_url.username().is_empty()
            || token_url.password().is_some()
        {
            return Err(ConnectorError::invalid_config(
                "metadata",
                "metadata.tokenUrl needs a host and no user information",
            ));
        }
        let credentials_in_body = match meta_string(cfg, "tokenAuthMethod")?.as_deref() {
            None | Some("client_secret_basic") => false,
            Some("client_secret_post") => true,
            Some(other) => {
                return Err(ConnectorError::invalid_config(
                    "metadata",
                    format!(
                        "metadata.tokenAuthMethod {:?}: client_secret_basic or client_secret_post",
                        trunc(other)
                    ),
                ))
            }
        };
        return Ok(Auth::OAuth2(OAuth2 {
            client_id,
            client_secret,
            token_url,
            scope: meta_string(cfg, "scope")?,
            credentials_in_body,
        }));
    }
    Ok(Auth::None)
}

impl RestConfig {
    /// Parses and checks everything; no I/O.
    pub fn parse(
        cfg: &ConnectionConfig,
        creds: &Credentials,
    ) -> Result<RestConfig, ConnectorError> {
        let host = cfg.require_host()?.to_owned();
        let (scheme, tls) = scheme_and_tls(cfg)?;
        let port = port_for(cfg, scheme);
        let mut base = origin_url(scheme, &host, port)?;
        if let Some(bp) = meta_string(cfg, "basePath")? {
            let bp = check_relative_path("metadata.basePath", &bp)?;
            if bp.contains('?') {
                return Err(ConnectorError::invalid_config(
                    "metadata",
                    "metadata.basePath cannot hold a query string",
                ));
            }
            let trimmed = bp.trim_matches('/');
            if !trimmed.is_empty() {
                base = join(&base, &format!("{trimmed}/"))?;
            }
        }
        let endpoints = match cfg.metadata.get("endpoints") {
            None | Some(Value::Null) => Vec::new(),
            Some(v) => parse_endpoints(v)?,
        };
        for ep in &endpoints {
            join(&base, &ep.path)?;
        }
        let openapi = match (
            meta_string(cfg, "openapiPath")?,
            meta_string(cfg, "openapiUrl")?,
        ) {
            (Some(_), Some(_)) => {
                return Err(ConnectorError::invalid_config(
                    "metadata",
                    "give metadata.openapiPath or openapiUrl, not both",
                ))
            }
            (Some(p), None) => {
                let p = check_relative_path("metadata.openapiPath", &p)?;
                join(&base, &p)?;
                Some(OpenApiSource::Path(p))
            }
            (None, Some(u)) => {
                let url = Url::parse(&u).map_err(|e| {
                    ConnectorError::invalid_config("metadata", format!("metadata.openapiUrl: {e}"))
                })?;
                if !matches!(url.scheme(), "http" | "https")
                    || url.host_str().is_none()
                    || !url.username().is_empty()
                {
                    return Err(ConnectorError::invalid_config(
                        "metadata",
                        "metadata.openapiUrl must be an http(s) URL with a host and no user information",
                    ));
                }
                Some(OpenApiSource::Url(url))
            }
            (None, None) => None,
        };
        if endpoints.is_empty() && openapi.is_none() {
            return Err(ConnectorError::invalid_config(
                "metadata",
                "a REST connector needs metadata.endpoints or an OpenAPI document (metadata.openapiPath / openapiUrl)",
            ));
        }
        let version_endpoint = meta_string(cfg, "versionEndpoint")?
            .map(|p| check_relative_path("metadata.versionEndpoint", &p))
            .transpose()?;
        if let Some(v) = &version_endpoint {
            join(&base, v)?;
        }
        let version_header = meta_string(cfg, "versionHeader")?
            .map(|h| {
                HeaderName::from_bytes(h.as_bytes()).map_err(|_| {
                    ConnectorError::invalid_config(
                        "metadata",
                        format!(
                            "metadata.versionHeader {:?} is not a header name",
                            trunc(&h)
                        ),
                    )
                })
            })
            .transpose()?;
        let default_records_path = meta_string(cfg, "recordsPath")?
            .map(|p| check_pointer("metadata.recordsPath", &p))
            .transpose()?;
        let name = match meta_string(cfg, "name")? {
            Some(n) => n,
            None => host.clone(),
        };
        let auth = parse_auth(cfg, creds, scheme)?;
        Ok(RestConfig {
            base,
            host,
            tls,
            ca_pem: cfg.ssl_ca_pem.clone(),
            name,
            endpoints,
            openapi,
            default_records_path,
            version_endpoint,
            version_header,
            max_response_bytes: max_response_bytes(cfg, DEFAULT_MAX_RESPONSE_BYTES)?,
            auth,
            timeouts: cfg.timeouts,
        })
    }

    pub fn url(&self, path: &str) -> Result<Url, ConnectorError> {
        join(&self.base, path)
    }

    pub fn records_path<'a>(&'a self, ep: &'a Endpoint) -> Option<&'a str> {
        ep.records_path
            .as_deref()
            .or(self.default_records_path.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use matih_connector_core::ErrorCode;
    use serde_json::json;

    fn cfg(meta: Value) -> ConnectionConfig {
        ConnectionConfig {
            host: Some("api.example.com".into()),
            metadata: serde_json::from_value(meta).unwrap(),
            ..Default::default()
        }
    }

    #[test]
    fn base_url_endpoints_and_defaults() {
        let c = cfg(
            json!({"basePath": "/v2/", "endpoints": ["/users", {"name": "Open \"orders\"", "path": "orders?status=open", "recordsPath": "/data"}]}),
        );
        let r = RestConfig::parse(&c, &Credentials::new()).unwrap();
        assert_eq!(r.base.as_str(), "https://api.example.com/v2/");
        assert_eq!(r.tls, SslMode::VerifyFull);
        assert_eq!(r.name, "api.example.com");
        assert_eq!(r.endpoints[0].name, "users");
        assert_eq!(
            r.url(&r.endpoints[0].path).unwrap().as_str(),
            "https://api.example.com/v2/users"
        );
        assert_eq!(
            r.url(&r.endpoints[1].path).unwrap().as_str(),
            "https://api.example.com/v2/orders?status=open"
        );
        assert_eq!(r.endpoints[1].records_path.as_deref(), Some("/data"));
        assert!(matches!(r.auth, Auth::None));
    }

    #[test]
    fn scheme_and_tls_rules() {
        let mut c = cfg(json!({"scheme": "http", "endpoints": ["/x"]}));
        assert_eq!(scheme_and_tls(&c).unwrap(), ("http", SslMode::Disable));
        c.ssl_mode = Some(SslMode::VerifyFull);
        assert_eq!(
            scheme_and_tls(&c).unwrap_err().code(),
            ErrorCode::InvalidConfiguration
        );
        let mut c = cfg(json!({"endpoints": ["/x"]}));
        c.ssl_enabled = Some(false);
        assert_eq!(scheme_and_tls(&c).unwrap(), ("http", SslMode::Disable));
        c.ssl_enabled = None;
        c.ssl_mode = Some(SslMode::Require);
        assert_eq!(scheme_and_tls(&c).unwrap(), ("https", SslMode::Require));
        let mut c = cfg(json!({"scheme": "https"}));
        c.ssl_enabled = Some(false);
        assert!(scheme_and_tls(&c).is_err());
    }

    #[test]
    fn rejects_paths_leaving_the_origin_and_bad_shapes() {
        for meta in [
            json!({"endpoints": ["https://evil.example/x"]}),
            json!({"endpoints": ["//evil.example/x"]}),
            json!({"endpoints": ["/a/../../etc"]}),
            json!({"endpoints": [{"path": "/x", "methd": "GET"}]}),
            json!({"endpoints": [{"path": "/x", "method": "DELETE"}]}),
            json!({"endpoints": ["/x", "x"]}),
            json!({"endpoints": "users"}),
            json!({"endpoints": [{"path": "/x", "recordsPath": "data"}]}),
            json!({}),
            json!({"openapiPath": "/o.json", "openapiUrl": "https://h/o.json"}),
            json!({"endpoints": ["/x"], "maxResponseBytes": 10}),
            json!({"endpoints": ["/x"], "scheme": "ftp"}),
        ] {
            let err = RestConfig::parse(&cfg(meta.clone()), &Credentials::new()).unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidConfiguration, "{meta}");
        }
    }

    #[test]
    fn auth_modes_and_nonsense_combinations() {
        let c = cfg(json!({"endpoints": ["/x"]}));
        let creds = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .fold(Credentials::new(), |c, (k, v)| c.with(*k, *v))
        };
        let mode = |c: &ConnectionConfig, cr: Credentials| {
            RestConfig::parse(c, &cr).map(|r| r.auth.mode())
        };
        assert_eq!(
            mode(&c, creds(&[("username", "u"), ("password", "p")])).unwrap(),
            "basic"
        );
        assert_eq!(mode(&c, creds(&[("token", "t")])).unwrap(), "bearer");
        assert_eq!(mode(&c, creds(&[("apiKey", "k")])).unwrap(), "apiKey");
        let o = cfg(
            json!({"endpoints": ["/x"], "tokenUrl": "https://idp.example/token", "scope": "read"}),
        );
        assert_eq!(
            mode(&o, creds(&[("clientId", "i"), ("clientSecret", "s")])).unwrap(),
            "oauth2ClientCredentials"
        );
        for (c, cr) in [
            (&c, creds(&[("token", "t"), ("apiKey", "k")])),
            (&c, creds(&[("password", "p")])),
            (&c, creds(&[("token", "t\r\nX-Injected: 1")])),
            (&c, creds(&[("apiKey", "k\n")])),
            (&c, creds(&[("clientId", "i"), ("clientSecret", "s")])),
            (&o, creds(&[("clientId", "i")])),
            (&o, creds(&[("token", "t")])),
            (
                &cfg(json!({"endpoints": ["/x"], "apiKeyHeader": "X-K"})),
                creds(&[("token", "t")]),
            ),
            (
                &cfg(json!({"endpoints": ["/x"], "apiKeyHeader": "bad header"})),
                creds(&[("apiKey", "k")]),
            ),
            (
                &cfg(json!({"endpoints": ["/x"], "tokenUrl": "http://idp/token"})),
                creds(&[("clientId", "i"), ("clientSecret", "s")]),
            ),
        ] {
            let err = mode(c, cr).unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidConfiguration);
        }
    }

    #[test]
    fn debug_shows_no_secret() {
        let c = cfg(json!({"endpoints": ["/x"], "apiKeyHeader": "X-Key"}));
        let r =
            RestConfig::parse(&c, &Credentials::new().with("apiKey", "sekrit-key-123")).unwrap();
        let dbg = format!("{r:?}");
        assert!(!dbg.contains("sekrit-key-123"), "{dbg}");
        assert!(dbg.contains("x-key"), "{dbg}");
    }
}
