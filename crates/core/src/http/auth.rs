//! Request authentication: what a request carries, and the credential
//! convention of generic API connectors (REST, GraphQL).

use std::fmt;
use std::sync::Arc;

use reqwest::header::{HeaderName, HeaderValue};

use super::token::{ClientAuthMethod, ClientCredentials, TokenSource};
use super::{HttpClient, HttpRequest, Url};
use crate::{metadata, ConnectionConfig, ConnectorError, Credentials, SecretString};

/// How requests authenticate. `Debug` names the mode (and the header or token
/// URL), never a secret.
#[derive(Clone)]
pub enum HttpAuth {
    None,
    Basic {
        username: SecretString,
        password: Option<SecretString>,
    },
    Bearer(SecretString),
    /// A secret in a header of the driver's choosing (API keys).
    Header {
        name: HeaderName,
        value: SecretString,
    },
    /// A bearer token from a token endpoint, cached until shortly before it
    /// expires (shared by clones).
    Token(Arc<TokenSource>),
}

impl HttpAuth {
    pub fn mode(&self) -> &'static str {
        match self {
            HttpAuth::None => "none",
            HttpAuth::Basic { .. } => "basic",
            HttpAuth::Bearer(_) => "bearer",
            HttpAuth::Header { .. } => "apiKey",
            HttpAuth::Token(t) => t.grant_name(),
        }
    }

    /// Fetches the token now when the mode needs one, so that bad credentials
    /// fail at connect rather than on the first call.
    pub async fn authorize(&self, client: &HttpClient) -> Result<(), ConnectorError> {
        if let HttpAuth::Token(t) = self {
            t.token(client).await?;
        }
        Ok(())
    }

    /// Adds the credentials to a request (through the request's own client for
    /// a token fetch, so the token endpoint is under the same egress policy).
    pub async fn apply(&self, req: HttpRequest) -> Result<HttpRequest, ConnectorError> {
        Ok(match self {
            HttpAuth::None => req,
            HttpAuth::Basic { username, password } => req.basic_auth(username, password.as_ref()),
            HttpAuth::Bearer(t) => req.bearer(t)?,
            HttpAuth::Header { name, value } => req.secret_header(name.clone(), value)?,
            HttpAuth::Token(source) => {
                let token = source.token(&req.client).await?;
                req.bearer(&token)?
            }
        })
    }
}

impl fmt::Debug for HttpAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpAuth::Header { name, .. } => write!(f, "Auth(apiKey in {name})"),
            HttpAuth::Token(t) => write!(f, "Auth({t:?})"),
            other => write!(f, "Auth({})", other.mode()),
        }
    }
}

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
pub fn api_auth(
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
            api_auth(c, &cr, scheme).map(|a| a.mode())
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
        let a = api_auth(
            &cfg(json!({"apiKeyHeader": "X-Key"})),
            &creds(&[("apiKey", "sekrit-key-123")]),
            "https",
        )
        .unwrap();
        let dbg = format!("{a:?}");
        assert!(!dbg.contains("sekrit-key-123"), "{dbg}");
        assert!(dbg.contains("x-key"), "{dbg}");
        let o = api_auth(
            &cfg(json!({"tokenUrl": "https://idp.example/token"})),
            &creds(&[("clientId", "cid-1"), ("clientSecret", "sekrit-9")]),
            "https",
        )
        .unwrap();
        let dbg = format!("{o:?}");
        assert!(!dbg.contains("sekrit-9"), "{dbg}");
        assert!(dbg.contains("idp.example"), "{dbg}");
    }
}
