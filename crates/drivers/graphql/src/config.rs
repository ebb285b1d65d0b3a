//! GraphQL connector configuration: endpoint URL, version header, limits and
//! authentication, all checked before any I/O.

use std::fmt;

use matih_connector_core::{
    ConnectionConfig, ConnectorError, Credentials, SecretString, SslMode, Timeouts,
};
use reqwest::header::HeaderName;
use serde_json::Value;
use url::Url;

/// Default cap on one response: introspection of a large schema runs to
/// several MiB.
pub(crate) const DEFAULT_MAX_RESPONSE_BYTES: u64 = 16 << 20;
const MAX_RESPONSE_BYTES_LIMIT: u64 = 256 << 20;

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

/// The GraphQL connector's parsed configuration. Holds credentials only inside
/// [`Auth`], whose `Debug` prints no secret.
#[derive(Clone, Debug)]
pub(crate) struct GraphqlConfig {
    /// The endpoint, `scheme://host:port/graphql` by default.
    pub url: Url,
    pub host: String,
    pub tls: SslMode,
    pub ca_pem: Option<String>,
    /// The schema name: metadata `name`, else the host.
    pub name: String,
    pub version_header: Option<HeaderName>,
    pub max_response_bytes: u64,
    /// List the Query/Mutation/Subscription root types as tables too.
    pub include_roots: bool,
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

fn meta_bool(cfg: &ConnectionConfig, key: &'static str) -> Result<Option<bool>, ConnectorError> {
    match cfg.metadata.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) if s == "true" || s == "false" => Ok(Some(s == "true")),
        Some(_) => Err(ConnectorError::invalid_config(
            "metadata",
            format!("metadata.{key} must be true or false"),
        )),
    }
}

impl GraphqlConfig {
    /// Parses and checks everything; no I/O.
    pub fn parse(
        cfg: &ConnectionConfig,
        creds: &Credentials,
    ) -> Result<GraphqlConfig, ConnectorError> {
        let host = cfg.require_host()?.to_owned();
        let (scheme, tls) = scheme_and_tls(cfg)?;
        let port = port_for(cfg, scheme);
        let origin = origin_url(scheme, &host, port)?;
        let path = match meta_string(cfg, "path")? {
            Some(p) => check_relative_path("metadata.path", &p)?,
            None => "/graphql".to_owned(),
        };
        let url = join(&origin, &path)?;
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
        let name = meta_string(cfg, "name")?.unwrap_or_else(|| host.clone());
        let auth = parse_auth(cfg, creds, scheme)?;
        Ok(GraphqlConfig {
            url,
            host,
            tls,
            ca_pem: cfg.ssl_ca_pem.clone(),
            name,
            version_header,
            max_response_bytes: max_response_bytes(cfg, DEFAULT_MAX_RESPONSE_BYTES)?,
            include_roots: meta_bool(cfg, "includeRootTypes")?.unwrap_or(false),
            auth,
            timeouts: cfg.timeouts,
        })
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
    fn url_and_defaults() {
        let g = GraphqlConfig::parse(&cfg(json!({})), &Credentials::new()).unwrap();
        assert_eq!(g.url.as_str(), "https://api.example.com/graphql");
        assert_eq!(g.tls, SslMode::VerifyFull);
        assert!(!g.include_roots);
        let g = GraphqlConfig::parse(
            &cfg(json!({"scheme": "http", "path": "/v1/gql", "includeRootTypes": true, "name": "shop"})),
            &Credentials::new().with("token", "t"),
        )
        .unwrap();
        assert_eq!(g.url.as_str(), "http://api.example.com/v1/gql");
        assert!(g.include_roots);
        assert_eq!(g.name, "shop");
        assert_eq!(g.auth.mode(), "bearer");
    }

    #[test]
    fn rejects_nonsense() {
        let creds = Credentials::new();
        for meta in [
            json!({"path": "https://evil.example/graphql"}),
            json!({"path": "//evil/graphql"}),
            json!({"includeRootTypes": "yes"}),
            json!({"maxResponseBytes": 1}),
            json!({"versionHeader": "bad header"}),
            json!({"tokenUrl": "https://idp/token"}),
        ] {
            let e = GraphqlConfig::parse(&cfg(meta.clone()), &creds).unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidConfiguration, "{meta}");
        }
        let mixed = Credentials::new().with("token", "t").with("username", "u");
        assert!(GraphqlConfig::parse(&cfg(json!({})), &mixed).is_err());
    }

    #[test]
    fn debug_shows_no_secret() {
        let g = GraphqlConfig::parse(
            &cfg(json!({})),
            &Credentials::new().with("token", "sekrit-token-42"),
        )
        .unwrap();
        assert!(!format!("{g:?}").contains("sekrit-token-42"));
    }
}
