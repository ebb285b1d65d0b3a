//! The HTTP client (core TLS, pinned addresses, bounded bodies), the
//! service-account token exchange, and the GCS connection.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use matih_connector_core::{
    async_trait, resolve_host, tls, with_timeout, Catalog, ConnectContext, Connection,
    ConnectorError, DiscoveryRequest, ErrorCode, SecretString, SslMode,
};
use reqwest::header::{HeaderMap, RANGE, SERVER};
use serde_json::Value;
use url::Url;

use crate::config::{host_of, Auth, GcsConfig, ServiceAccountKey, READ_SCOPE};
use crate::errors::{parse_error, Failure};

/// JSON listing pages are read only this far.
const MAX_JSON_BYTES: u64 = 32 << 20;
/// Error bodies are read only this far, for the message.
const ERROR_BODY_BYTES: usize = 8192;

/// Resolves host names for the HTTP client from addresses already checked
/// against the egress policy: the endpoint's (resolved by the core) and the
/// token endpoint's (resolved at connect). Any other name is refused.
struct PinnedResolver {
    pinned: Vec<(String, Vec<SocketAddr>)>,
}

impl reqwest::dns::Resolve for PinnedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let name = name.as_str().trim_end_matches('.').to_ascii_lowercase();
        let found = self
            .pinned
            .iter()
            .find(|(h, _)| *h == name)
            .map(|(_, a)| a.clone());
        Box::pin(async move {
            match found {
                Some(addrs) => Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs),
                None => Err(Box::new(ConnectorError::new(
                    ErrorCode::EgressDenied,
                    format!("{name} is neither the endpoint nor the token endpoint; refusing to look it up"),
                )) as Box<dyn std::error::Error + Send + Sync>),
            }
        })
    }
}

pub(crate) struct GcsConnection {
    pub(crate) cfg: GcsConfig,
    client: reqwest::Client,
    token: Option<SecretString>,
    /// The latest `Server` header, for the server version.
    server: Mutex<Option<String>>,
}

/// The `iat`/`exp` claims are seconds since the epoch.
fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[derive(serde::Serialize)]
struct Claims<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
}

/// The signed assertion of the OAuth2 JWT bearer grant (RFC 7523) as Google
/// documents it for service accounts.
pub(crate) fn assertion(key: &ServiceAccountKey, aud: &str) -> Result<SecretString, Failure> {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = key.private_key_id.clone();
    let iat = now_secs();
    let claims = Claims {
        iss: &key.client_email,
        scope: READ_SCOPE,
        aud,
        iat,
        exp: iat + 3600,
    };
    let enc = jsonwebtoken::EncodingKey::from_rsa_pem(key.private_key.expose().as_bytes())
        .map_err(Failure::Sign)?;
    jsonwebtoken::encode(&header, &claims, &enc)
        .map(SecretString::new)
        .map_err(Failure::Sign)
}

impl GcsConnection {
    pub(crate) async fn open(
        cfg: GcsConfig,
        ctx: &ConnectContext,
    ) -> Result<GcsConnection, ConnectorError> {
        // An http endpoint still gets a verifying configuration, for an https
        // token endpoint.
        let mode = if cfg.tls.is_tls() {
            cfg.tls
        } else {
            SslMode::VerifyFull
        };
        let tls = tls::client_config(mode, cfg.ca_pem.as_deref())?
            .ok_or_else(|| ConnectorError::internal("TLS configuration missing for a TLS mode"))?;
        let mut pinned = vec![(cfg.host.to_ascii_lowercase(), ctx.addrs.clone())];
        if let Auth::ServiceAccount { token_uri, .. } = &cfg.auth {
            // Checked even when it is an IP literal, which reqwest would
            // connect to without asking any resolver.
            let host = host_of(token_uri).unwrap_or_default();
            let port = token_uri.port_or_known_default().unwrap_or(443);
            let addrs = resolve_host(&host, port, ctx.timeouts, &ctx.egress)
                .await
                .map_err(|e| e.with_context("tokenUrl", token_uri.as_str()))?;
            pinned.push((host.to_ascii_lowercase(), addrs));
        }
        let resolver = PinnedResolver { pinned };
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .no_proxy()
            .dns_resolver(Arc::new(resolver))
            .connect_timeout(ctx.timeouts.connect())
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(4)
            .user_agent(concat!("matih-connectors/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| parse_error(Failure::Http(e), "building the HTTP client"))?;
        let mut conn = GcsConnection {
            cfg,
            client,
            token: None,
            server: Mutex::new(None),
        };
        conn.token = match &conn.cfg.auth {
            Auth::Anonymous => None,
            Auth::AccessToken(t) => Some(t.clone()),
            Auth::ServiceAccount { key, token_uri } => {
                Some(conn.fetch_token(key, token_uri).await?)
            }
        };
        // The cheapest authorized call proves endpoint, TLS and credentials,
        // and that the bucket (or project) exists.
        let what = "checking access";
        with_timeout(ctx.timeouts.connect(), what, conn.check_access(None)).await?;
        Ok(conn)
    }

    async fn fetch_token(
        &self,
        key: &ServiceAccountKey,
        token_uri: &Url,
    ) -> Result<SecretString, ConnectorError> {
        let what = format!("POST {token_uri}");
        let jwt = assertion(key, token_uri.as_str()).map_err(|f| parse_error(f, &what))?;
        let form = [
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", jwt.expose()),
        ];
        let req = self.client.post(token_uri.clone()).form(&form);
        let fut = async {
            let mut resp = req
                .timeout(self.cfg.timeouts.connect())
                .send()
                .await
                .map_err(|e| parse_error(Failure::Http(e), &what))?;
            let status = resp.status().as_u16();
            if !(200..300).contains(&status) {
                let body = read_prefix(&mut resp, ERROR_BODY_BYTES).await;
                return Err(parse_error(Failure::Token { status, body }, &what));
            }
            let body = read_bounded(&mut resp, 64 * 1024)
                .await
                .map_err(|f| parse_error(f, &what))?;
            let v: Value =
                serde_json::from_slice(&body).map_err(|e| parse_error(Failure::Json(e), &what))?;
            match v.get("access_token").and_then(Value::as_str) {
                Some(t) if !t.is_empty() => Ok(SecretString::new(t)),
                _ => Err(ConnectorError::new(
                    ErrorCode::ProtocolError,
                    format!("{what}: the token response has no access_token"),
                )),
            }
        };
        with_timeout(self.cfg.timeouts.connect(), &what, fut).await
    }

    /// One listing of a single object of `bucket` (or the configured bucket);
    /// without any bucket, one bucket of the project.
    pub(crate) async fn check_access(&self, bucket: Option<&str>) -> Result<(), ConnectorError> {
        match bucket
            .map(str::to_owned)
            .or_else(|| self.cfg.bucket.clone())
        {
            Some(b) => {
                let url = self.url(
                    &["b", &b, "o"],
                    &[("maxResults", "1"), ("fields", "items/name")],
                );
                self.get_json(url, &format!("listing objects of {b}"))
                    .await
                    .map_err(|e| e.with_context("bucket", b))?;
            }
            None => {
                let project = self.cfg.project.clone().unwrap_or_default();
                let url = self.url(
                    &["b"],
                    &[
                        ("project", &project),
                        ("maxResults", "1"),
                        ("fields", "items/name"),
                    ],
                );
                self.get_json(url, &format!("listing buckets of project {project}"))
                    .await
                    .map_err(|e| e.with_context("project", project))?;
            }
        }
        Ok(())
    }

    /// `<endpoint>/storage/v1/<segments…>?<query>`, each segment encoded
    /// whole (object names keep their `/` as `%2F`).
    pub(crate) fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        api_url(&self.cfg.endpoint, segments, query)
    }

    fn request(&self, url: Url) -> reqwest::RequestBuilder {
        let req = self.client.get(url).timeout(self.cfg.timeouts.query());
        match &self.token {
            Some(t) => req.bearer_auth(t.expose()),
            None => req,
        }
    }

    fn remember_server(&self, headers: &HeaderMap) {
        if let Some(v) = headers
            .get(SERVER)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
        {
            if let (false, Ok(mut s)) = (v.is_empty(), self.server.lock()) {
                *s = Some(v.chars().take(120).collect());
            }
        }
    }

    /// GETs a JSON document within the size and time limits.
    pub(crate) async fn get_json(&self, url: Url, what: &str) -> Result<Value, ConnectorError> {
        let body = self.get(url, None, MAX_JSON_BYTES, what).await?;
        serde_json::from_slice(&body).map_err(|e| parse_error(Failure::Json(e), what))
    }

    /// Bytes `start..=end` of an object (JSON API media download).
    pub(crate) async fn read_range(
        &self,
        bucket: &str,
        name: &str,
        start: u64,
        end: u64,
    ) -> Result<Vec<u8>, ConnectorError> {
        let url = self.url(&["b", bucket, "o", name], &[("alt", "media")]);
        let what = format!("reading gs://{bucket}/{name}");
        let mut bytes = self
            .get(url, Some((start, end)), end - start + 1, &what)
            .await?;
        // A server that ignores Range sends everything: keep what was asked.
        bytes.truncate((end - start + 1) as usize);
        Ok(bytes)
    }

    async fn get(
        &self,
        url: Url,
        range: Option<(u64, u64)>,
        limit: u64,
        what: &str,
    ) -> Result<Vec<u8>, ConnectorError> {
        let mut req = self.request(url);
        if let Some((s, e)) = range {
            req = req.header(RANGE, format!("bytes={s}-{e}"));
        }
        let fut = async {
            let mut resp = req
                .send()
                .await
                .map_err(|e| parse_error(Failure::Http(e), what))?;
            self.remember_server(resp.headers());
            let status = resp.status().as_u16();
            if !(200..300).contains(&status) {
                let body = read_prefix(&mut resp, ERROR_BODY_BYTES).await;
                return Err(parse_error(Failure::Status { status, body }, what));
            }
            if range.is_some() {
                // A server that ignores Range is cut off at the range's length.
                Ok(read_prefix(&mut resp, limit as usize).await)
            } else {
                read_bounded(&mut resp, limit)
                    .await
                    .map_err(|f| parse_error(f, what))
            }
        };
        // reqwest's timeout covers the body too; this one is a backstop.
        with_timeout(
            self.cfg.timeouts.query() + Duration::from_millis(250),
            what,
            fut,
        )
        .await
    }

    /// "Google Cloud Storage JSON API v1", with the `Server` header when the
    /// endpoint is not Google's own (an emulator, a proxy).
    fn version(&self) -> String {
        let base = "Google Cloud Storage JSON API v1";
        let server = self.server.lock().ok().and_then(|s| s.clone());
        match &server {
            Some(s) if !s.eq_ignore_ascii_case("UploadServer") && !s.starts_with("Google") => {
                format!(
                    "{base} ({s} at {})",
                    self.cfg.endpoint.as_str().trim_end_matches('/')
                )
            }
            _ if self.cfg.endpoint.as_str() != crate::config::DEFAULT_ENDPOINT.to_owned() + "/" => {
                format!(
                    "{base} at {}",
                    self.cfg.endpoint.as_str().trim_end_matches('/')
                )
            }
            _ => base.to_owned(),
        }
    }
}

/// `<endpoint>/storage/v1/<segments…>?<query>`, each segment encoded whole
/// (object names keep their `/` as `%2F`, as the JSON API wants).
pub(crate) fn api_url(endpoint: &Url, segments: &[&str], query: &[(&str, &str)]) -> Url {
    let mut u = endpoint.clone();
    if let Ok(mut p) = u.path_segments_mut() {
        p.clear().extend(["storage", "v1"]).extend(segments);
    }
    if !query.is_empty() {
        u.query_pairs_mut().extend_pairs(query);
    }
    u
}

/// The first `n` bytes of a body; the rest is not read.
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

/// Reads a body, refusing more than `limit` bytes.
async fn read_bounded(resp: &mut reqwest::Response, limit: u64) -> Result<Vec<u8>, Failure> {
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

#[async_trait]
impl Connection for GcsConnection {
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
    fn object_names_are_one_encoded_segment() {
        let e = Url::parse("https://storage.googleapis.com").unwrap();
        let u = api_url(
            &e,
            &["b", "my-bucket", "o", "weird name ü 'q'/data.csv"],
            &[("alt", "media")],
        );
        assert_eq!(
            u.as_str(),
            "https://storage.googleapis.com/storage/v1/b/my-bucket/o/weird%20name%20%C3%BC%20'q'%2Fdata.csv?alt=media"
        );
        let u = api_url(&e, &["b"], &[("project", "p"), ("prefix", "a&b")]);
        assert_eq!(
            u.as_str(),
            "https://storage.googleapis.com/storage/v1/b?project=p&prefix=a%26b"
        );
    }
}
