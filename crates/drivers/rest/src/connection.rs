//! The HTTP client (TLS, pinned addresses, redirects, limits, authentication)
//! and the REST connection built on it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use matih_connector_core::{
    async_trait, resolve_host, tls, with_timeout, Catalog, ConnectContext, Connection,
    ConnectorError, DiscoveryRequest, SecretString, SslMode,
};
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, LOCATION, RETRY_AFTER, SERVER};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::Value;
use url::Url;

use crate::config::{Auth, OAuth2, RestConfig};
use crate::errors::{parse_error, Failure};

/// Error bodies are read only this far, for the message.
const ERROR_BODY_BYTES: usize = 4096;
const MAX_REDIRECTS: usize = 5;

/// Refuses every lookup: the client may reach only hosts whose addresses were
/// resolved and checked against the egress policy beforehand (`resolve_to_addrs`
/// overrides take precedence over this resolver).
struct NoLookup;

impl reqwest::dns::Resolve for NoLookup {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            Err(format!(
                "{host} was not resolved through the egress policy; refusing to look it up"
            )
            .into())
        })
    }
}

/// Builds the client: TLS from the core's configuration, connections only to
/// `pinned` addresses, no proxies, redirects only within the same origin.
pub(crate) fn build_client(
    tls_mode: SslMode,
    ca_pem: Option<&str>,
    pinned: &[(String, Vec<SocketAddr>)],
    connect_timeout: Duration,
) -> Result<reqwest::Client, ConnectorError> {
    // Plain-HTTP APIs still get a verifying TLS configuration, for an https
    // token URL or OpenAPI document; reqwest never falls back to its own.
    let mode = if tls_mode.is_tls() {
        tls_mode
    } else {
        SslMode::VerifyFull
    };
    let tls = tls::client_config(mode, ca_pem)?
        .ok_or_else(|| ConnectorError::internal("TLS configuration missing for a TLS mode"))?;
    let mut builder = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .no_proxy()
        .dns_resolver(Arc::new(NoLookup))
        .connect_timeout(connect_timeout)
        .pool_max_idle_per_host(2)
        .user_agent(concat!("matih-connectors/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::custom(|attempt| {
            let same_origin = attempt
                .previous()
                .first()
                .is_some_and(|first| first.origin() == attempt.url().origin());
            if same_origin && attempt.previous().len() <= MAX_REDIRECTS {
                attempt.follow()
            } else {
                attempt.stop()
            }
        }));
    for (host, addrs) in pinned {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if bare.parse::<std::net::IpAddr>().is_err() {
            builder = builder.resolve_to_addrs(bare, addrs);
        }
    }
    builder
        .build()
        .map_err(|e| parse_error(Failure::Http(e), "building the HTTP client"))
}

/// A response whose body was read within the limit.
#[derive(Debug)]
pub(crate) struct Fetched {
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Fetched {
    pub fn json(&self, what: &str) -> Result<Value, ConnectorError> {
        serde_json::from_slice(&self.body).map_err(|e| parse_error(Failure::Json(e), what))
    }
}

/// The first `n` bytes of an error body, for its message; the rest is not read.
async fn read_prefix(resp: &mut reqwest::Response, n: usize) -> Vec<u8> {
    let mut buf = Vec::new();
    while buf.len() < n {
        match resp.chunk().await {
            Ok(Some(chunk)) => buf.extend_from_slice(&chunk[..chunk.len().min(n - buf.len())]),
            _ => break,
        }
    }
    buf
}

/// Reads a body chunk by chunk, stopping at `limit` bytes.
pub(crate) async fn read_bounded(
    resp: &mut reqwest::Response,
    limit: u64,
) -> Result<Vec<u8>, Failure> {
    if resp.content_length().is_some_and(|n| n > limit) {
        return Err(Failure::TooLarge { limit });
    }
    let mut buf = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(Failure::Http)? {
        if buf.len() as u64 + chunk.len() as u64 > limit {
            return Err(Failure::TooLarge { limit });
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

/// Sends a request and reads its body within `limit` bytes and `timeout`. A
/// non-success status becomes an error carrying the start of the body.
pub(crate) async fn send(
    req: RequestBuilder,
    timeout: Duration,
    limit: u64,
    what: &str,
) -> Result<Fetched, ConnectorError> {
    let fut = async {
        let mut resp = req
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| parse_error(Failure::Http(e), what))?;
        let status = resp.status();
        if !status.is_success() {
            let header = |h| {
                resp.headers()
                    .get(h)
                    .and_then(|v: &HeaderValue| v.to_str().ok())
                    .map(str::to_owned)
            };
            let retry_after = header(RETRY_AFTER);
            let location = header(LOCATION);
            let body = read_prefix(&mut resp, ERROR_BODY_BYTES).await;
            return Err(parse_error(
                Failure::Status {
                    status,
                    retry_after,
                    location,
                    body,
                },
                what,
            ));
        }
        let headers = resp.headers().clone();
        let body = read_bounded(&mut resp, limit)
            .await
            .map_err(|f| parse_error(f, what))?;
        Ok(Fetched { headers, body })
    };
    // reqwest's timeout covers the body too; the outer one is a backstop.
    with_timeout(timeout + Duration::from_millis(250), what, fut).await
}

/// Headers authentication adds to every API request, resolved once at connect.
#[derive(Clone)]
pub(crate) enum Applied {
    None,
    Basic(SecretString, Option<SecretString>),
    Bearer(SecretString),
    Header(reqwest::header::HeaderName, SecretString),
}

impl Applied {
    pub fn apply(&self, req: RequestBuilder) -> Result<RequestBuilder, ConnectorError> {
        Ok(match self {
            Applied::None => req,
            Applied::Basic(u, p) => req.basic_auth(u.expose(), p.as_ref().map(|p| p.expose())),
            Applied::Bearer(t) => req.bearer_auth(t.expose()),
            Applied::Header(name, value) => {
                let mut v = HeaderValue::from_str(value.expose()).map_err(|_| {
                    ConnectorError::invalid_config(
                        "credentials",
                        "credentials.apiKey holds characters a header cannot carry",
                    )
                })?;
                v.set_sensitive(true);
                req.header(name, v)
            }
        })
    }
}

/// Host names besides the API's own that a configuration reaches (token URL,
/// OpenAPI document), resolved now and checked against the egress policy.
pub(crate) async fn pin_hosts(
    own_host: &str,
    ctx: &ConnectContext,
    extra: &[&Url],
) -> Result<Vec<(String, Vec<SocketAddr>)>, ConnectorError> {
    let mut pinned = vec![(own_host.to_owned(), ctx.addrs.clone())];
    for url in extra {
        let Some(host) = url.host_str() else { continue };
        // The egress policy is about addresses, and reqwest takes the port from
        // the URL: a host already pinned needs nothing more.
        if pinned.iter().any(|(h, _)| h == host) {
            continue;
        }
        let port = url.port_or_known_default().unwrap_or(443);
        let addrs = resolve_host(host, port, ctx.timeouts, &ctx.egress)
            .await
            .map_err(|e| e.with_context("url", url.as_str()))?;
        pinned.push((host.to_owned(), addrs));
    }
    Ok(pinned)
}

/// Fetches an OAuth2 access token with the client credentials grant.
pub(crate) async fn fetch_token(
    client: &reqwest::Client,
    o: &OAuth2,
    timeout: Duration,
) -> Result<SecretString, ConnectorError> {
    let what = format!("POST {}", o.token_url);
    let mut form: Vec<(&str, &str)> = vec![("grant_type", "client_credentials")];
    if let Some(s) = &o.scope {
        form.push(("scope", s));
    }
    if o.credentials_in_body {
        form.push(("client_id", o.client_id.expose()));
        form.push(("client_secret", o.client_secret.expose()));
    }
    let mut req = client
        .post(o.token_url.clone())
        .header(ACCEPT, "application/json")
        .form(&form);
    if !o.credentials_in_body {
        req = req.basic_auth(o.client_id.expose(), Some(o.client_secret.expose()));
    }
    let fut = async {
        let mut resp = req
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| parse_error(Failure::Http(e), &what))?;
        let status = resp.status();
        let body = read_bounded(&mut resp, 64 * 1024)
            .await
            .map_err(|f| parse_error(f, &what))?;
        if !status.is_success() {
            return Err(parse_error(Failure::Token { status, body }, &what));
        }
        let v: Value =
            serde_json::from_slice(&body).map_err(|e| parse_error(Failure::Json(e), &what))?;
        match v.get("access_token").and_then(Value::as_str) {
            Some(t) if !t.is_empty() => Ok(SecretString::new(t)),
            _ => Err(parse_error(
                Failure::Token {
                    status: StatusCode::BAD_GATEWAY,
                    body: b"{\"error\":\"no access_token\"}".to_vec(),
                },
                &what,
            )
            .with_retryable(false)),
        }
    };
    with_timeout(timeout + Duration::from_millis(250), &what, fut).await
}

/// Resolves the auth mode into the headers to send, fetching a token first for
/// OAuth2.
pub(crate) async fn authenticate(
    client: &reqwest::Client,
    auth: &Auth,
    timeout: Duration,
) -> Result<Applied, ConnectorError> {
    Ok(match auth {
        Auth::None => Applied::None,
        Auth::Basic { username, password } => Applied::Basic(username.clone(), password.clone()),
        Auth::Bearer(t) => Applied::Bearer(t.clone()),
        Auth::ApiKey { header, key } => Applied::Header(header.clone(), key.clone()),
        Auth::OAuth2(o) => Applied::Bearer(fetch_token(client, o, timeout).await?),
    })
}

/// An open REST connection: a client pinned to checked addresses, the
/// authentication headers, and the first response (for the server version).
pub(crate) struct RestConnection {
    pub(crate) cfg: Arc<RestConfig>,
    pub(crate) client: reqwest::Client,
    pub(crate) auth: Applied,
    /// Headers and body of the request made at connect.
    pub(crate) first: Fetched,
    pub(crate) first_is_version: bool,
}

impl RestConnection {
    pub(crate) async fn open(
        cfg: RestConfig,
        ctx: &ConnectContext,
    ) -> Result<RestConnection, ConnectorError> {
        let mut extra: Vec<&Url> = Vec::new();
        if let Auth::OAuth2(o) = &cfg.auth {
            extra.push(&o.token_url);
        }
        if let Some(crate::config::OpenApiSource::Url(u)) = &cfg.openapi {
            extra.push(u);
        }
        let pinned = pin_hosts(&cfg.host, ctx, &extra).await?;
        let client = build_client(
            cfg.tls,
            cfg.ca_pem.as_deref(),
            &pinned,
            ctx.timeouts.connect(),
        )?;
        let auth = authenticate(&client, &cfg.auth, ctx.timeouts.connect()).await?;
        let cfg = Arc::new(cfg);
        let mut conn = RestConnection {
            cfg: cfg.clone(),
            client,
            auth,
            first: Fetched {
                headers: HeaderMap::new(),
                body: Vec::new(),
            },
            first_is_version: false,
        };
        // One authenticated request proves TLS, credentials and the base path:
        // the version endpoint if configured, else the first endpoint, else
        // the OpenAPI document.
        let (method, url, is_version) =
            match (&cfg.version_endpoint, cfg.endpoints.first(), &cfg.openapi) {
                (Some(v), _, _) => (Method::GET, cfg.url(v)?, true),
                (None, Some(ep), _) => (ep.method.clone(), cfg.url(&ep.path)?, false),
                (None, None, Some(src)) => (
                    Method::GET,
                    crate::discovery::openapi_url(&cfg, src)?,
                    false,
                ),
                (None, None, None) => {
                    return Err(ConnectorError::internal("no endpoint to contact"))
                }
            };
        conn.first = conn.request(method, url, ctx.timeouts.connect()).await?;
        conn.first_is_version = is_version;
        Ok(conn)
    }

    /// One authenticated request, body bounded by `maxResponseBytes`.
    pub(crate) async fn request(
        &self,
        method: Method,
        url: Url,
        timeout: Duration,
    ) -> Result<Fetched, ConnectorError> {
        let what = format!("{method} {}", display_url(&url));
        let mut req = self
            .client
            .request(method.clone(), url)
            .header(ACCEPT, "application/json");
        if method == Method::POST {
            req = req.json(&serde_json::json!({}));
        }
        let req = self.auth.apply(req)?;
        send(req, timeout, self.cfg.max_response_bytes, &what).await
    }

    fn version(&self) -> String {
        let header = |name: &reqwest::header::HeaderName| {
            self.first
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|s| !s.is_empty())
        };
        if let Some(h) = &self.cfg.version_header {
            if let Some(v) = header(h) {
                return v.to_owned();
            }
        }
        if self.first_is_version {
            if let Some(v) = version_from_body(&self.first.body) {
                return v;
            }
        }
        header(&SERVER)
            .map(str::to_owned)
            .unwrap_or_else(|| "unknown".to_owned())
    }
}

/// The URL without its query string, for messages (a query may carry a token).
pub(crate) fn display_url(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.to_string()
}

/// A version endpoint's body: a JSON string, a `version` field (also nested
/// one level, as in `{"app":{"version":…}}`), or a short plain-text body.
fn version_from_body(body: &[u8]) -> Option<String> {
    let short = |s: &str| {
        let s = s.trim();
        (!s.is_empty() && s.len() <= 128 && !s.contains('\n')).then(|| s.to_owned())
    };
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::String(s)) => short(&s),
        Ok(Value::Object(o)) => {
            let pick = |v: &Value| match v {
                Value::String(s) => short(s),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            };
            for k in ["version", "Version", "apiVersion", "serverVersion"] {
                if let Some(v) = o.get(k).and_then(pick) {
                    return Some(v);
                }
            }
            o.values()
                .filter_map(|v| v.as_object())
                .find_map(|inner| inner.get("version").and_then(pick))
        }
        Ok(_) => None,
        Err(_) => std::str::from_utf8(body).ok().and_then(short),
    }
}

#[async_trait]
impl Connection for RestConnection {
    /// The `versionHeader` of the connect response, else the version
    /// endpoint's body, else its `Server` header, else `unknown`.
    async fn server_version(&mut self) -> Result<String, ConnectorError> {
        Ok(self.version())
    }

    async fn probe(&mut self, req: &DiscoveryRequest) -> Result<(), ConnectorError> {
        crate::discovery::probe(self, req).await
    }

    async fn discover(&mut self, req: &DiscoveryRequest) -> Result<Catalog, ConnectorError> {
        crate::discovery::discover(self, req).await
    }

    async fn close(self: Box<Self>) -> Result<(), ConnectorError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_from_bodies() {
        let cases: &[(&str, Option<&str>)] = &[
            (r#""1.2.3""#, Some("1.2.3")),
            (r#"{"version":"2.0.1","build":"abc"}"#, Some("2.0.1")),
            (r#"{"version":3}"#, Some("3")),
            (r#"{"app":{"name":"x","version":"9.9"}}"#, Some("9.9")),
            ("v4.5\n", Some("v4.5")),
            ("<html>\n<body>hi</body>\n</html>", None),
            (r#"{"status":"ok"}"#, None),
        ];
        for (body, want) in cases {
            assert_eq!(
                version_from_body(body.as_bytes()).as_deref(),
                *want,
                "{body}"
            );
        }
    }

    #[test]
    fn urls_in_messages_drop_the_query() {
        let u = Url::parse("https://api.example.com/v1/x?api_key=SECRET&limit=5").unwrap();
        assert_eq!(display_url(&u), "https://api.example.com/v1/x");
    }
}
