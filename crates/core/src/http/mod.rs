//! The one HTTP client drivers reach the network with (Cargo feature `http`).
//!
//! A driver describes requests; this module owns the sockets, the resolver, TLS,
//! redirects, body limits, time limits, the mapping of failures to
//! [`ConnectorError`] codes, and access tokens. The security model:
//!
//! - **Names resolve through the egress policy.** The client's only resolver
//!   (`resolver::EgressResolver`) answers the connector's own host with the
//!   addresses the connectivity test already resolved and checked
//!   (`ConnectContext::addrs`), and any other name (a token endpoint, an OpenAPI
//!   host, an S3 bucket subdomain, STS) through [`crate::resolve_host`], which
//!   drops denied addresses, bounded by the connect timeout. There is no system
//!   resolver fallback and no proxy (environment proxies are ignored).
//! - **IP literals are checked before every request.** reqwest connects to an IP
//!   literal without asking any resolver, so [`HttpRequest::send`] checks the
//!   URL's address against the egress policy before anything is sent.
//! - **Every redirect hop is checked** in the redirect policy: an IP-literal
//!   target against the egress policy (before any connection), a named target by
//!   the resolver when it is connected to; hops leave the first URL's origin only
//!   when the driver opted in ([`Redirects::AnyOrigin`], never https → http), and
//!   at most [`HttpOptions::max_redirects`] of them.
//! - **Bodies are bounded**: success bodies by a byte limit (per client, per
//!   request), error bodies by a short prefix; requests by a timeout that covers
//!   the body, with a backstop around the whole exchange. Connecting is bounded
//!   by the connect timeout.
//! - **TLS** comes from [`crate::tls`] for the four SSL modes, with the
//!   connector's CA PEM; a plain-http API still gets a verifying configuration for
//!   any https URL it reaches (a token endpoint), never reqwest's own.
//! - **Through an SSH tunnel** (`ConnectContext::tunnel`), URLs on the
//!   connector's host and port go through the bastion (the tunnel's SOCKS5
//!   forwarder, with TLS checking the target's own name), other ports of that
//!   host are refused, and other hosts are reached as above (`tunnel` module).
//!
//! ```no_run
//! # async fn demo(ctx: &matih_connector_core::ConnectContext) -> Result<(), matih_connector_core::ConnectorError> {
//! use matih_connector_core::http::{HttpOptions, Url};
//! use matih_connector_core::SslMode;
//! let client = ctx.http_client(&HttpOptions::new(SslMode::VerifyFull, None))?;
//! let fetched = client
//!     .get(Url::parse("https://api.example.com/v1/users").unwrap())
//!     .fetch()
//!     .await?;
//! let users: serde_json::Value = fetched.json()?;
//! # Ok(()) }
//! ```

pub mod api;
mod auth;
mod body;
pub mod endpoint;
pub(crate) mod errors;
mod resolver;
mod token;
mod tunnel;

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue};
use serde::de::DeserializeOwned;

use crate::{
    tls, with_timeout, ConnectContext, ConnectorError, EgressPolicy, SecretString, SslMode,
};

pub use auth::HttpAuth;
pub use errors::{body_detail, status_code, status_retryable, RefineStatus, StatusFailure};
pub use reqwest::{header, Method, StatusCode};
pub use token::{ClientAuthMethod, ClientCredentials, JwtBearer, RsaSigningKey, TokenSource};
pub use url::Url;

pub use token::sign_rs256;

/// How many redirects a request follows at most by default.
pub const DEFAULT_MAX_REDIRECTS: usize = 5;
/// Default cap on one success body.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 16 << 20;
/// Error bodies are read only this far, for the message.
pub const ERROR_BODY_BYTES: usize = 8192;
/// The backstop around a whole exchange exceeds the request timeout by this.
const BACKSTOP: Duration = Duration::from_millis(250);

/// Which redirects a client follows. Whatever the choice, every hop is checked
/// against the egress policy and the hop count is bounded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Redirects {
    /// None: a 3xx answer is returned (and mapped as an error by `fetch`).
    None,
    /// Only hops that stay on the first URL's origin (scheme, host, port).
    #[default]
    SameOrigin,
    /// Hops to any origin except https → http. reqwest drops `Authorization`
    /// and cookies when the host changes, but not custom headers: a driver that
    /// opts in must not carry secrets in other headers.
    AnyOrigin,
}

/// How a client is built. Start from [`HttpOptions::new`].
#[derive(Clone, Debug)]
pub struct HttpOptions {
    /// TLS for https URLs. `Disable` (a plain-http API) still verifies any
    /// https URL fully, as `verify-full` does.
    pub tls: SslMode,
    /// CA certificates that replace the public roots.
    pub ca_pem: Option<String>,
    /// Which redirects are followed.
    pub redirects: Redirects,
    /// How many redirects at most.
    pub max_redirects: usize,
    /// Default cap on one success body; [`HttpRequest::limit`] overrides it.
    pub max_body_bytes: u64,
    /// Default time limit of one request, body included; `None` takes the
    /// context's query timeout.
    pub request_timeout: Option<Duration>,
    /// Appended to the "response too large" message, e.g. which setting raises
    /// the limit.
    pub too_large_hint: Option<&'static str>,
    /// The driver's reading of a vendor error body; see [`RefineStatus`].
    pub refine: Option<RefineStatus>,
    /// Idle connections kept per host.
    pub pool_max_idle_per_host: usize,
}

impl HttpOptions {
    /// Options with the defaults and the given TLS mode and CA.
    pub fn new(tls: SslMode, ca_pem: Option<&str>) -> HttpOptions {
        HttpOptions {
            tls,
            ca_pem: ca_pem.map(str::to_owned),
            redirects: Redirects::default(),
            max_redirects: DEFAULT_MAX_REDIRECTS,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            request_timeout: None,
            too_large_hint: None,
            refine: None,
            pool_max_idle_per_host: 4,
        }
    }

    /// Sets [`HttpOptions::redirects`].
    pub fn redirects(mut self, r: Redirects) -> Self {
        self.redirects = r;
        self
    }

    /// Sets [`HttpOptions::max_body_bytes`].
    pub fn max_body_bytes(mut self, n: u64) -> Self {
        self.max_body_bytes = n;
        self
    }

    /// Sets [`HttpOptions::request_timeout`].
    pub fn request_timeout(mut self, d: Duration) -> Self {
        self.request_timeout = Some(d);
        self
    }

    /// Sets [`HttpOptions::too_large_hint`].
    pub fn too_large_hint(mut self, hint: &'static str) -> Self {
        self.too_large_hint = Some(hint);
        self
    }

    /// Sets [`HttpOptions::refine`].
    pub fn refine(mut self, f: RefineStatus) -> Self {
        self.refine = Some(f);
        self
    }
}

/// Settings every request and response of a client shares.
#[derive(Debug)]
struct Shared {
    egress: EgressPolicy,
    connect_timeout: Duration,
    request_timeout: Duration,
    max_body_bytes: u64,
    too_large_hint: Option<&'static str>,
    refine: Option<RefineStatus>,
    redirects: Redirects,
    /// Through an SSH tunnel: which URLs go through the bastion.
    tunnel: Option<tunnel::TunnelRoute>,
}

/// The pinned HTTP client: cheap to clone (connections are pooled and shared).
#[derive(Clone)]
pub struct HttpClient {
    inner: reqwest::Client,
    shared: Arc<Shared>,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("redirects", &self.shared.redirects)
            .field("max_body_bytes", &self.shared.max_body_bytes)
            .finish()
    }
}

impl ConnectContext {
    /// The HTTP client for this connection: see the [module docs](crate::http).
    pub fn http_client(&self, opts: &HttpOptions) -> Result<HttpClient, ConnectorError> {
        HttpClient::new(self, opts)
    }
}

impl HttpClient {
    fn new(ctx: &ConnectContext, opts: &HttpOptions) -> Result<HttpClient, ConnectorError> {
        let mode = if opts.tls.is_tls() {
            opts.tls
        } else {
            SslMode::VerifyFull
        };
        let tls_config = tls::client_config(mode, opts.ca_pem.as_deref())?
            .ok_or_else(|| ConnectorError::internal("TLS configuration missing for a TLS mode"))?;
        let resolver = resolver::EgressResolver::new(ctx);
        let route = tunnel::TunnelRoute::of(ctx)?;
        let policy = redirect_policy(
            opts.redirects,
            opts.max_redirects,
            ctx.egress.clone(),
            route.clone(),
        );
        let mut builder = reqwest::Client::builder()
            .use_preconfigured_tls(tls_config)
            .no_proxy();
        if let Some(r) = &route {
            builder = builder.proxy(r.proxy());
        }
        let inner = builder
            .dns_resolver(Arc::new(resolver))
            .connect_timeout(ctx.timeouts.connect())
            .pool_max_idle_per_host(opts.pool_max_idle_per_host)
            .user_agent(concat!("matih-connectors/", env!("CARGO_PKG_VERSION")))
            .redirect(policy)
            .build()
            .map_err(|e| errors::transport_error(e, "building the HTTP client"))?;
        Ok(HttpClient {
            inner,
            shared: Arc::new(Shared {
                egress: ctx.egress.clone(),
                connect_timeout: ctx.timeouts.connect(),
                request_timeout: opts.request_timeout.unwrap_or(ctx.timeouts.query()),
                max_body_bytes: opts.max_body_bytes,
                too_large_hint: opts.too_large_hint,
                refine: opts.refine,
                redirects: opts.redirects,
                tunnel: route,
            }),
        })
    }

    /// The connect timeout (token requests are bounded by it).
    pub fn connect_timeout(&self) -> Duration {
        self.shared.connect_timeout
    }

    /// A `method` request to `url`.
    pub fn request(&self, method: Method, url: Url) -> HttpRequest {
        let what = format!("{method} {}", display_url(&url));
        HttpRequest {
            builder: self.inner.request(method, url.clone()),
            client: self.clone(),
            url,
            what,
            timeout: self.shared.request_timeout,
            limit: self.shared.max_body_bytes,
        }
    }

    /// A GET request.
    pub fn get(&self, url: Url) -> HttpRequest {
        self.request(Method::GET, url)
    }

    /// A POST request.
    pub fn post(&self, url: Url) -> HttpRequest {
        self.request(Method::POST, url)
    }
}

/// Every hop: bounded count, egress check of IP literals, origin rule.
fn redirect_policy(
    redirects: Redirects,
    max: usize,
    egress: EgressPolicy,
    tunnel: Option<tunnel::TunnelRoute>,
) -> reqwest::redirect::Policy {
    if redirects == Redirects::None {
        return reqwest::redirect::Policy::none();
    }
    reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() > max {
            return attempt.stop();
        }
        if let Err(e) = check_url(&egress, tunnel.as_ref(), attempt.url()) {
            let hop = display_url(attempt.url());
            return attempt.error(e.with_context("redirect", hop));
        }
        let Some(first) = attempt.previous().first() else {
            return attempt.stop();
        };
        let same_origin = first.origin() == attempt.url().origin();
        let downgrade = attempt.previous().last().map(Url::scheme) == Some("https")
            && attempt.url().scheme() != "https";
        match redirects {
            Redirects::SameOrigin if same_origin => attempt.follow(),
            Redirects::AnyOrigin if !downgrade => attempt.follow(),
            _ => attempt.stop(),
        }
    })
}

/// The egress check of a URL reqwest would connect to without a lookup: an IP
/// literal host. Names are checked by the resolver. Only http(s) is allowed.
/// Through a tunnel, the tunnel's rule comes first (the target goes through
/// the bastion unchecked; other ports of its host are refused).
pub(crate) fn check_url(
    egress: &EgressPolicy,
    tunnel: Option<&tunnel::TunnelRoute>,
    url: &Url,
) -> Result<(), ConnectorError> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConnectorError::invalid_config(
            "url",
            format!("{}: only http and https URLs are allowed", display_url(url)),
        ));
    }
    if let Some(t) = tunnel {
        if t.check(url)? {
            return Ok(());
        }
    }
    let ip: Option<IpAddr> = match url.host() {
        Some(url::Host::Ipv4(a)) => Some(a.into()),
        Some(url::Host::Ipv6(a)) => Some(a.into()),
        Some(url::Host::Domain(_)) => None,
        None => {
            return Err(ConnectorError::invalid_config(
                "url",
                format!("{}: the URL has no host", display_url(url)),
            ))
        }
    };
    match ip {
        Some(ip) => egress
            .check(ip)
            .map_err(|e| e.with_context("url", display_url(url))),
        None => Ok(()),
    }
}

/// The URL without its query string and user information, for messages (a
/// query may carry a token).
pub fn display_url(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.to_string()
}

/// A request being built. Send it with [`HttpRequest::fetch`] (success body,
/// bounded, or the mapped error) or [`HttpRequest::send`] (the response as it
/// came, for statuses the driver handles itself).
pub struct HttpRequest {
    builder: reqwest::RequestBuilder,
    client: HttpClient,
    url: Url,
    what: String,
    timeout: Duration,
    limit: u64,
}

impl fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.what)
    }
}

impl HttpRequest {
    /// What the request does, for messages (`GET https://host/path` by
    /// default). Never put a secret here.
    pub fn what(mut self, what: impl Into<String>) -> Self {
        self.what = what.into();
        self
    }

    /// What the request does, as set by [`HttpRequest::what`].
    pub fn describe(&self) -> &str {
        &self.what
    }

    /// The request's URL.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The time limit of this request, body included.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }

    /// The cap on this request's success body.
    pub fn limit(mut self, bytes: u64) -> Self {
        self.limit = bytes;
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.builder = self.builder.header(name, value);
        self
    }

    /// A header from text; a value no header can carry is an error.
    pub fn header_str(self, name: &str, value: &str) -> Result<Self, ConnectorError> {
        let n = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            ConnectorError::invalid_config("header", format!("{name:?} is not a header name"))
        })?;
        let v = HeaderValue::from_str(value).map_err(|_| {
            ConnectorError::invalid_config(
                "header",
                format!("the value of header {name} holds characters a header cannot carry"),
            )
        })?;
        Ok(self.header(n, v))
    }

    /// A header carrying a secret: marked sensitive (never printed by the HTTP
    /// stack); an unusable value is an error naming the header, not the value.
    pub fn secret_header(
        self,
        name: HeaderName,
        value: &SecretString,
    ) -> Result<Self, ConnectorError> {
        let mut v = HeaderValue::from_str(value.expose()).map_err(|_| {
            ConnectorError::invalid_config(
                "credentials",
                format!("the credential sent in {name} holds characters a header cannot carry"),
            )
        })?;
        v.set_sensitive(true);
        Ok(self.header(name, v))
    }

    /// `Authorization: Bearer …`, marked sensitive.
    pub fn bearer(self, token: &SecretString) -> Result<Self, ConnectorError> {
        let mut v = HeaderValue::from_str(&format!("Bearer {}", token.expose())).map_err(|_| {
            ConnectorError::invalid_config(
                "credentials",
                "the bearer token holds characters a header cannot carry",
            )
        })?;
        v.set_sensitive(true);
        Ok(self.header(header::AUTHORIZATION, v))
    }

    /// HTTP basic authentication.
    pub fn basic_auth(mut self, user: &SecretString, password: Option<&SecretString>) -> Self {
        self.builder = self
            .builder
            .basic_auth(user.expose(), password.map(|p| p.expose()));
        self
    }

    /// Adds query parameters.
    pub fn query<T: serde::Serialize + ?Sized>(mut self, pairs: &T) -> Self {
        self.builder = self.builder.query(pairs);
        self
    }

    /// A JSON body.
    pub fn json<T: serde::Serialize + ?Sized>(mut self, body: &T) -> Self {
        self.builder = self.builder.json(body);
        self
    }

    /// A form-encoded body.
    pub fn form<T: serde::Serialize + ?Sized>(mut self, body: &T) -> Self {
        self.builder = self.builder.form(body);
        self
    }

    /// A raw body.
    pub fn body(mut self, body: impl Into<reqwest::Body>) -> Self {
        self.builder = self.builder.body(body);
        self
    }

    /// Checks the egress policy for an IP-literal URL, then sends; returns the
    /// response whatever its status. Transport failures are mapped.
    pub async fn send(self) -> Result<HttpResponse, ConnectorError> {
        let shared = &self.client.shared;
        check_url(&shared.egress, shared.tunnel.as_ref(), &self.url)?;
        let what = self.what;
        let timeout = self.timeout;
        let limit = self.limit;
        let shared = self.client.shared.clone();
        let resp = with_timeout(timeout + BACKSTOP, &what, async {
            self.builder
                .timeout(timeout)
                .send()
                .await
                .map_err(|e| errors::transport_error(e, &what))
        })
        .await?;
        Ok(HttpResponse {
            inner: resp,
            what,
            limit,
            timeout,
            shared,
        })
    }

    /// Sends and reads a success body within the limit; any other status is
    /// an error carrying what the error body says (see [`RefineStatus`]).
    pub async fn fetch(self) -> Result<Fetched, ConnectorError> {
        let what = self.what.clone();
        let timeout = self.timeout;
        // reqwest's timeout covers the body too; this one is a backstop over
        // the whole exchange.
        with_timeout(timeout + BACKSTOP, &what, async {
            let resp = self.send().await?;
            if !resp.status().is_success() {
                return Err(resp.error().await);
            }
            resp.into_fetched().await
        })
        .await
    }
}

/// A response whose body has not been read yet.
pub struct HttpResponse {
    inner: reqwest::Response,
    what: String,
    limit: u64,
    timeout: Duration,
    shared: Arc<Shared>,
}

impl fmt::Debug for HttpResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} -> {}", self.what, self.inner.status())
    }
}

impl HttpResponse {
    /// The response status.
    pub fn status(&self) -> StatusCode {
        self.inner.status()
    }

    /// The response headers.
    pub fn headers(&self) -> &header::HeaderMap {
        self.inner.headers()
    }

    /// The URL that answered (after redirects).
    pub fn url(&self) -> &Url {
        self.inner.url()
    }

    /// The body, refusing more than the request's limit.
    pub async fn bytes(mut self) -> Result<Vec<u8>, ConnectorError> {
        let limit = self.limit;
        self.bytes_within(limit).await
    }

    /// The body, refusing more than `limit` bytes.
    pub async fn bytes_within(&mut self, limit: u64) -> Result<Vec<u8>, ConnectorError> {
        let what = self.what.clone();
        with_timeout(self.timeout + BACKSTOP, &what, async {
            body::read_bounded(&mut self.inner, limit)
                .await
                .map_err(|e| match e {
                    body::BodyError::TooLarge => {
                        errors::too_large(limit, &what, self.shared.too_large_hint)
                    }
                    body::BodyError::Transport(e) => errors::transport_error(e, &what),
                })
        })
        .await
    }

    /// At most the first `n` bytes of the body; the rest is not read (a
    /// server that ignores a Range header, say). Transport failures end the
    /// read early.
    pub async fn prefix(&mut self, n: usize) -> Vec<u8> {
        tokio::time::timeout(
            self.timeout + BACKSTOP,
            body::read_prefix(&mut self.inner, n),
        )
        .await
        .unwrap_or_default()
    }

    /// The error for a non-success status: the generic mapping (status,
    /// `Retry-After`, `Location`, a short reason from the body), refined by
    /// the client's [`RefineStatus`] hook.
    pub async fn error(mut self) -> ConnectorError {
        let body = self.prefix(ERROR_BODY_BYTES).await;
        let failure = StatusFailure {
            status: self.inner.status(),
            headers: self.inner.headers(),
            body: &body,
            what: &self.what,
            redirects: self.shared.redirects,
        };
        self.shared
            .refine
            .and_then(|f| f(&failure))
            .unwrap_or_else(|| failure.generic())
    }

    async fn into_fetched(self) -> Result<Fetched, ConnectorError> {
        let status = self.status();
        let headers = self.headers().clone();
        let url = self.url().clone();
        let what = self.what.clone();
        let body = self.bytes().await?;
        Ok(Fetched {
            status,
            headers,
            url,
            body,
            what,
        })
    }
}

/// A success response read within its limit.
#[derive(Debug)]
pub struct Fetched {
    /// The response status.
    pub status: StatusCode,
    /// The response headers.
    pub headers: header::HeaderMap,
    /// The URL that answered (after redirects).
    pub url: Url,
    /// The body, within the request's limit.
    pub body: Vec<u8>,
    what: String,
}

impl Fetched {
    /// The body as JSON; anything else is a `PROTOCOL_ERROR`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ConnectorError> {
        serde_json::from_slice(&self.body).map_err(|e| errors::json_error(e, &self.what))
    }

    /// What the request did, for messages.
    pub fn what(&self) -> &str {
        &self.what
    }

    /// A response header as trimmed, non-empty text.
    pub fn header(&self, name: &HeaderName) -> Option<&str> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_in_messages_drop_query_and_user() {
        let u = Url::parse("https://me:pw@api.example.com/v1/x?api_key=SECRET&limit=5#f").unwrap();
        assert_eq!(display_url(&u), "https://api.example.com/v1/x");
    }

    #[test]
    fn ip_literals_are_checked_names_are_left_to_the_resolver() {
        let p = EgressPolicy::default();
        for bad in [
            "http://169.254.169.254/latest",
            "http://[fe80::1]:8080/",
            "http://[::ffff:169.254.169.254]/",
            // The URL parser reads these as 169.254.169.254 too.
            "http://2852039166/",
            "http://0xa9.0xfe.0xa9.0xfe/",
        ] {
            let e = check_url(&p, None, &Url::parse(bad).unwrap()).unwrap_err();
            assert_eq!(e.code(), crate::ErrorCode::EgressDenied, "{bad}");
        }
        check_url(&p, None, &Url::parse("http://127.0.0.1:1/").unwrap()).unwrap();
        check_url(&p, None, &Url::parse("https://metadata.example/").unwrap()).unwrap();
        let e = check_url(&p, None, &Url::parse("file:///etc/passwd").unwrap()).unwrap_err();
        assert_eq!(e.code(), crate::ErrorCode::InvalidConfiguration);
    }
}
