//! The HTTP client (TLS, pinned addresses, redirects, limits, authentication)
//! and the GraphQL connection built on it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use graphql_client::{QueryBody, Response as GqlResponse};
use matih_connector_core::{
    async_trait, resolve_host, tls, with_timeout, Catalog, ConnectContext, Connection,
    ConnectorError, DiscoveryRequest, SecretString, SslMode,
};
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, LOCATION, RETRY_AFTER, SERVER};
use reqwest::{RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;
use url::Url;

use crate::config::{Auth, GraphqlConfig, OAuth2};
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
/// An open GraphQL connection: a client pinned to checked addresses, the
/// authentication headers, and the headers of the first response (for the
/// server version).
pub(crate) struct GraphqlConnection {
    pub(crate) cfg: Arc<GraphqlConfig>,
    client: reqwest::Client,
    auth: Applied,
    first_headers: HeaderMap,
}

impl GraphqlConnection {
    pub(crate) async fn open(
        cfg: GraphqlConfig,
        ctx: &ConnectContext,
    ) -> Result<GraphqlConnection, ConnectorError> {
        let mut extra: Vec<&Url> = Vec::new();
        if let Auth::OAuth2(o) = &cfg.auth {
            extra.push(&o.token_url);
        }
        let pinned = pin_hosts(&cfg.host, ctx, &extra).await?;
        let client = build_client(
            cfg.tls,
            cfg.ca_pem.as_deref(),
            &pinned,
            ctx.timeouts.connect(),
        )?;
        let auth = authenticate(&client, &cfg.auth, ctx.timeouts.connect()).await?;
        let mut conn = GraphqlConnection {
            cfg: Arc::new(cfg),
            client,
            auth,
            first_headers: HeaderMap::new(),
        };
        // The cheapest query every GraphQL server answers proves TLS,
        // credentials and the endpoint path.
        let (headers, _): (HeaderMap, Value) = conn
            .execute(
                "query MatihConnect { __typename }",
                "MatihConnect",
                ctx.timeouts.connect(),
            )
            .await?;
        conn.first_headers = headers;
        Ok(conn)
    }

    /// Runs one query, body bounded by `maxResponseBytes`; a response with an
    /// `errors` array is an error even when it also carries data.
    pub(crate) async fn execute<D: DeserializeOwned>(
        &self,
        query: &'static str,
        operation_name: &'static str,
        timeout: Duration,
    ) -> Result<(HeaderMap, D), ConnectorError> {
        let what = format!("POST {} ({operation_name})", display_url(&self.cfg.url));
        let body = QueryBody {
            variables: serde_json::json!({}),
            query,
            operation_name,
        };
        let req = self
            .client
            .post(self.cfg.url.clone())
            .header(
                ACCEPT,
                "application/graphql-response+json, application/json;q=0.9",
            )
            .json(&body);
        let req = self.auth.apply(req)?;
        let fetched = send(req, timeout, self.cfg.max_response_bytes, &what).await?;
        // Errors first: partial data beside them may not have the expected shape.
        let resp: GqlResponse<Value> = serde_json::from_slice(&fetched.body)
            .map_err(|e| parse_error(Failure::Json(e), &what))?;
        if let Some(errors) = resp.errors.filter(|e| !e.is_empty()) {
            return Err(parse_error(Failure::Graphql(errors), &what));
        }
        match resp.data.filter(|d| !d.is_null()) {
            Some(d) => {
                let data =
                    serde_json::from_value(d).map_err(|e| parse_error(Failure::Json(e), &what))?;
                Ok((fetched.headers, data))
            }
            None => Err(ConnectorError::new(
                matih_connector_core::ErrorCode::ProtocolError,
                format!("{what}: the response has neither data nor errors"),
            )),
        }
    }

    fn version(&self) -> String {
        let header = |name: &reqwest::header::HeaderName| {
            self.first_headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|s| !s.is_empty())
        };
        self.cfg
            .version_header
            .as_ref()
            .and_then(header)
            .or_else(|| header(&SERVER))
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

#[async_trait]
impl Connection for GraphqlConnection {
    /// GraphQL has no version field: the `versionHeader` of the connect
    /// response, else its `Server` header, else `unknown`.
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
