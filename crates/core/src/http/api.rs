//! The configuration convention of generic HTTP API connectors (REST,
//! GraphQL): scheme and TLS mode, the base URL, paths that stay on it, the
//! response cap, and the credential modes. Read once, without I/O.

use std::sync::Arc;

use reqwest::header::{HeaderName, HeaderValue};
use serde_json::Value;

use super::auth::HttpAuth;
use super::token::{ClientAuthMethod, ClientCredentials, TokenSource};
use super::Url;
use crate::{metadata, ConnectionConfig, ConnectorError, Credentials, SecretString, SslMode};

/// Largest `metadata.maxResponseBytes` accepted.
pub const MAX_RESPONSE_BYTES_LIMIT: u64 = 256 << 20;

/// Where an API lives: scheme, TLS mode, host and port, and the origin URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiBase {
    /// `http` or `https`.
    pub scheme: &'static str,
    /// The TLS mode for the API.
    pub tls: SslMode,
    /// Host name or IP address.
    pub host: String,
    /// Port (the scheme's default when the spec gives none).
    pub port: u16,
    /// `scheme://host:port/`, IPv6 literals bracketed.
    pub origin: Url,
}

impl ApiBase {
    /// `metadata.scheme` when given, else https unless TLS was switched off
    /// explicitly; https with nothing said about TLS means `verify-full`, so
    /// TLS is verified by default. The port: the configured one, else the
    /// scheme's (443 or 80).
    pub fn parse(cfg: &ConnectionConfig) -> Result<ApiBase, ConnectorError> {
        let host = cfg.require_host()?.to_owned();
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
        let (scheme, tls) = match (scheme, said, mode.is_tls()) {
            (Some("http"), true, true) => {
                return Err(ConnectorError::invalid_config(
                    "metadata.scheme",
                    format!("metadata.scheme http contradicts sslMode {mode}"),
                ))
            }
            (Some("http"), _, _) => ("http", SslMode::Disable),
            (Some(_), true, false) => {
                return Err(ConnectorError::invalid_config(
                    "metadata.scheme",
                    "metadata.scheme https contradicts sslEnabled=false / sslMode disable",
                ))
            }
            (Some(_), false, _) => ("https", SslMode::VerifyFull),
            (Some(_), true, true) => ("https", mode),
            (None, true, false) => ("http", SslMode::Disable),
            (None, true, true) => ("https", mode),
            (None, false, _) => ("https", SslMode::VerifyFull),
        };
        let port = cfg.port.unwrap_or(if scheme == "https" { 443 } else { 80 });
        let h = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.clone()
        };
        let origin = Url::parse(&format!("{scheme}://{h}:{port}/")).map_err(|e| {
            ConnectorError::invalid_config(
                "host",
                format!("host {host:?} does not form a URL: {e}"),
            )
        })?;
        Ok(ApiBase {
            scheme,
            tls,
            host,
            port,
            origin,
        })
    }
}

/// A path on the API's origin: relative, no scheme, no authority, no `..`,
/// no fragment. Returned trimmed.
pub fn relative_path(key: &'static str, path: &str) -> Result<String, ConnectorError> {
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

/// Joins a path (relative to the base's path) onto the base URL and checks
/// the result stayed on the base's origin.
pub fn join(base: &Url, path: &str) -> Result<Url, ConnectorError> {
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

/// `metadata.maxResponseBytes` (1 KiB to 256 MiB), else `default`.
pub fn max_response_bytes(cfg: &ConnectionConfig, default: u64) -> Result<u64, ConnectorError> {
    Ok(
        metadata::u64_in(cfg, "maxResponseBytes", 1024, MAX_RESPONSE_BYTES_LIMIT)?
            .unwrap_or(default),
    )
}

/// A header name from `metadata.<key>`.
pub fn header_name(key: &'static str, name: &str) -> Result<HeaderName, ConnectorError> {
    HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| {
        ConnectorError::invalid_config(
            "metadata",
            format!("metadata.{key} {:?} is not a header name", trunc(name)),
        )
    })
}

/// The hint of a "response too large" error for these connectors.
pub const TOO_LARGE_HINT: &str =
    "raise metadata.maxResponseBytes or point the endpoint at a smaller page";

fn trunc(s: &str) -> String {
    s.chars().take(80).collect()
}

/// A secret that travels in a header must be a valid header value (no CR, LF
/// or other control characters), checked before any I/O; the error names the
/// key, never the value.
fn header_safe(key: &'static str, value: &SecretString) -> Result<(), ConnectorError> {
    if HeaderValue::from_str(value.expose()).is_err() {
        return Err(ConnectorError::invalid_config(
            "credentials",
            format!("credentials.{key} holds characters an HTTP header cannot carry"),
        ));
    }
    Ok(())
}

/// The credential convention of generic API connectors (REST, GraphQL), read
/// without I/O: `username`/`password` (Basic), `token` (Bearer), `apiKey` in
/// `metadata.apiKeyHeader` (default `X-API-Key`), or `clientId`/`clientSecret`
/// exchanged at `metadata.tokenUrl` (OAuth2 client credentials, optional
/// `metadata.scope`, `metadata.tokenAuthMethod` `client_secret_basic` or
/// `client_secret_post`). More than one mode, or half of one, is a
/// configuration error. `base_scheme` is the API's: a client secret travels to
/// an http token URL only when the API itself is plain http.
pub fn credentials(
    cfg: &ConnectionConfig,
    creds: &Credentials,
    base_scheme: &str,
) -> Result<HttpAuth, ConnectorError> {
    let has = |k: &str| creds.get(k).is_some_and(|v| !v.is_empty());
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
        let oauth_meta = ["tokenUrl", "scope", "tokenAuthMethod"];
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
        return Ok(HttpAuth::Basic {
            username: get("username")?,
            password: creds.get("password").cloned(),
        });
    }
    if has("token") {
        let token = get("token")?;
        header_safe("token", &token)?;
        return Ok(HttpAuth::Bearer(token));
    }
    if has("apiKey") {
        let name = metadata::string(cfg, "apiKeyHeader")?.unwrap_or_else(|| "X-API-Key".to_owned());
        let header = header_name("apiKeyHeader", &name)?;
        if matches!(
            header.as_str(),
            "host" | "content-length" | "transfer-encoding" | "connection"
        ) {
            return Err(ConnectorError::invalid_config(
                "metadata",
                format!("metadata.apiKeyHeader cannot be {header}"),
            ));
        }
        let key = get("apiKey")?;
        header_safe("apiKey", &key)?;
        return Ok(HttpAuth::Header {
            name: header,
            value: key,
        });
    }
    if oauth {
        let client_id = get("clientId")?;
        let client_secret = get("clientSecret")?;
        let raw = metadata::string(cfg, "tokenUrl")?.ok_or_else(|| {
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
        let method = match metadata::string(cfg, "tokenAuthMethod")?.as_deref() {
            None | Some("client_secret_basic") => ClientAuthMethod::Basic,
            Some("client_secret_post") => ClientAuthMethod::Post,
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
        return Ok(HttpAuth::Token(Arc::new(TokenSource::client_credentials(
            token_url,
            ClientCredentials {
                client_id,
                client_secret,
                scope: metadata::string(cfg, "scope")?,
                method,
            },
        ))));
    }
    Ok(HttpAuth::None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;
    use serde_json::{json, Value};

    fn cfg(meta: Value) -> ConnectionConfig {
        ConnectionConfig {
            host: Some("api.example.com".into()),
            metadata: serde_json::from_value(meta).unwrap(),
            ..Default::default()
        }
    }

    fn creds(pairs: &[(&str, &str)]) -> Credentials {
        pairs
            .iter()
            .fold(Credentials::new(), |c, (k, v)| c.with(*k, *v))
    }

    #[test]
    fn modes_and_nonsense_combinations() {
        let c = cfg(json!({}));
        let mode = |c: &ConnectionConfig, cr: Credentials, scheme: &str| {
            credentials(c, &cr, scheme).map(|a| a.mode())
        };
        assert_eq!(mode(&c, creds(&[]), "https").unwrap(), "none");
        assert_eq!(
            mode(&c, creds(&[("username", "u"), ("password", "p")]), "https").unwrap(),
            "basic"
        );
        assert_eq!(
            mode(&c, creds(&[("token", "t")]), "https").unwrap(),
            "bearer"
        );
        assert_eq!(
            mode(&c, creds(&[("apiKey", "k")]), "https").unwrap(),
            "apiKey"
        );
        let o = cfg(json!({"tokenUrl": "https://idp.example/token", "scope": "read"}));
        assert_eq!(
            mode(
                &o,
                creds(&[("clientId", "i"), ("clientSecret", "s")]),
                "https"
            )
            .unwrap(),
            "oauth2ClientCredentials"
        );
        let http_token = cfg(json!({"tokenUrl": "http://idp/token"}));
        let cs = || creds(&[("clientId", "i"), ("clientSecret", "s")]);
        mode(&http_token, cs(), "http").unwrap();
        for (c, cr, scheme) in [
            (&c, creds(&[("token", "t"), ("apiKey", "k")]), "https"),
            (&c, creds(&[("password", "p")]), "https"),
            (&c, creds(&[("token", "t\r\nX-Injected: 1")]), "https"),
            (&c, creds(&[("apiKey", "k\n")]), "https"),
            (&c, cs(), "https"),
            (&o, creds(&[("clientId", "i")]), "https"),
            (&o, creds(&[("token", "t")]), "https"),
            (
                &cfg(json!({"apiKeyHeader": "X-K"})),
                creds(&[("token", "t")]),
                "https",
            ),
            (
                &cfg(json!({"apiKeyHeader": "bad header"})),
                creds(&[("apiKey", "k")]),
                "https",
            ),
            (
                &cfg(json!({"apiKeyHeader": "Host"})),
                creds(&[("apiKey", "k")]),
                "https",
            ),
            (&http_token, cs(), "https"),
            (
                &cfg(json!({"tokenUrl": "https://u:p@idp/token"})),
                cs(),
                "https",
            ),
            (
                &cfg(
                    json!({"tokenUrl": "https://idp/token", "tokenAuthMethod": "private_key_jwt"}),
                ),
                cs(),
                "https",
            ),
        ] {
            let err = mode(c, cr, scheme).unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidConfiguration);
        }
    }

    #[test]
    fn debug_shows_no_secret() {
        let a = credentials(
            &cfg(json!({"apiKeyHeader": "X-Key"})),
            &creds(&[("apiKey", "sekrit-key-123")]),
            "https",
        )
        .unwrap();
        let dbg = format!("{a:?}");
        assert!(!dbg.contains("sekrit-key-123"), "{dbg}");
        assert!(dbg.contains("x-key"), "{dbg}");
        let o = credentials(
            &cfg(json!({"tokenUrl": "https://idp.example/token"})),
            &creds(&[("clientId", "cid-1"), ("clientSecret", "sekrit-9")]),
            "https",
        )
        .unwrap();
        let dbg = format!("{o:?}");
        assert!(!dbg.contains("sekrit-9"), "{dbg}");
        assert!(dbg.contains("idp.example"), "{dbg}");
    }

    #[test]
    fn scheme_tls_and_port_rules() {
        let base = |meta: Value, enabled: Option<bool>, mode: Option<SslMode>| {
            let mut c = cfg(meta);
            c.ssl_enabled = enabled;
            c.ssl_mode = mode;
            ApiBase::parse(&c).map(|b| (b.scheme, b.tls, b.port, b.origin.to_string()))
        };
        assert_eq!(
            base(json!({}), None, None).unwrap(),
            (
                "https",
                SslMode::VerifyFull,
                443,
                "https://api.example.com/".into()
            )
        );
        assert_eq!(
            base(json!({"scheme": "http"}), None, None).unwrap(),
            (
                "http",
                SslMode::Disable,
                80,
                "http://api.example.com/".into()
            )
        );
        assert_eq!(
            base(json!({}), Some(false), None).unwrap().1,
            SslMode::Disable
        );
        assert_eq!(
            base(json!({}), None, Some(SslMode::Require)).unwrap().1,
            SslMode::Require
        );
        for (meta, enabled, mode) in [
            (json!({"scheme": "http"}), None, Some(SslMode::VerifyFull)),
            (json!({"scheme": "https"}), Some(false), None),
            (json!({"scheme": "ftp"}), None, None),
        ] {
            let e = base(meta, enabled, mode).unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidConfiguration);
        }
        let mut v6 = cfg(json!({}));
        v6.host = Some("::1".into());
        v6.port = Some(8443);
        assert_eq!(
            ApiBase::parse(&v6).unwrap().origin.as_str(),
            "https://[::1]:8443/"
        );
    }

    #[test]
    fn paths_stay_on_the_origin() {
        let base = Url::parse("https://api.example.com/v2/").unwrap();
        assert_eq!(
            join(&base, "/users?x=1").unwrap().as_str(),
            "https://api.example.com/v2/users?x=1"
        );
        for bad in [
            "https://evil.example/x",
            "//evil.example/x",
            "/a/../../etc",
            "x#f",
            "",
        ] {
            let e = relative_path("endpoint path", bad)
                .and_then(|p| join(&base, &p))
                .unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidConfiguration, "{bad}");
        }
        assert!(max_response_bytes(&cfg(json!({"maxResponseBytes": 10})), 1).is_err());
        assert_eq!(max_response_bytes(&cfg(json!({})), 77).unwrap(), 77);
    }
}
