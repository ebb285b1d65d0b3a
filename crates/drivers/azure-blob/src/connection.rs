//! The HTTP client (core TLS, pinned addresses, bounded bodies), request
//! authorization (Shared Key signing, SAS, Entra ID bearer tokens) and the
//! Azure Blob connection.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use matih_connector_core::{
    async_trait, resolve_host, tls, with_timeout, Catalog, ConnectContext, Connection,
    ConnectorError, DiscoveryRequest, ErrorCode, SecretString, SslMode,
};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, SERVER};
use url::Url;

use crate::config::{host_of, Auth, AzureConfig, API_VERSION, STORAGE_SCOPE};
use crate::errors::{parse_error, Failure};

/// Listing pages are read only this far.
const MAX_LIST_BYTES: u64 = 32 << 20;
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

/// The Shared Key string-to-sign of a GET without body (Blob service,
/// version 2009-09-19 and later): twelve standard header slots (all empty:
/// the date and range travel as `x-ms-` headers), the canonicalized `x-ms-`
/// headers, and the canonicalized resource (`/<account><encoded path>` then
/// each query parameter, lowercased and sorted, as `\nname:value`).
pub(crate) fn string_to_sign(account: &str, url: &Url, ms_headers: &[(&str, String)]) -> String {
    let mut s = String::from("GET\n");
    s.push_str(&"\n".repeat(11));
    let mut headers: Vec<(String, String)> = ms_headers
        .iter()
        .map(|(k, v)| {
            (
                k.to_ascii_lowercase(),
                v.split_whitespace().collect::<Vec<_>>().join(" "),
            )
        })
        .collect();
    headers.sort();
    for (k, v) in headers {
        s.push_str(&format!("{k}:{v}\n"));
    }
    s.push_str(&format!("/{account}{}", url.path()));
    let mut params: Vec<(String, Vec<String>)> = Vec::new();
    for (k, v) in url.query_pairs() {
        let k = k.to_ascii_lowercase();
        match params.iter_mut().find(|(n, _)| *n == k) {
            Some((_, vals)) => vals.push(v.into_owned()),
            None => params.push((k, vec![v.into_owned()])),
        }
    }
    params.sort();
    for (k, mut vals) in params {
        vals.sort();
        s.push_str(&format!("\n{k}:{}", vals.join(",")));
    }
    s
}

/// `SharedKey <account>:<base64 HMAC-SHA256 of the string-to-sign>`.
pub(crate) fn shared_key_header(
    account: &str,
    key: &SecretString,
    to_sign: &str,
) -> Result<String, ConnectorError> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(key.expose().trim())
        .map_err(|_| {
            ConnectorError::invalid_config("credentials", "credentials.accountKey is not base64")
        })?;
    let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &raw);
    let sig = ring::hmac::sign(&k, to_sign.as_bytes());
    Ok(format!(
        "SharedKey {account}:{}",
        base64::engine::general_purpose::STANDARD.encode(sig.as_ref())
    ))
}

/// `<base><segments…>?<query>`: a blob name's `/`s stay path separators and
/// every part is percent-encoded; the account root of a path-style endpoint
/// has no trailing slash.
pub(crate) fn blob_url(base: &Url, segments: &[&str], query: &[(&str, &str)]) -> Url {
    let mut u = base.clone();
    if let Ok(mut p) = u.path_segments_mut() {
        p.pop_if_empty();
        for s in segments {
            p.extend(s.split('/'));
        }
    }
    if segments.is_empty() && u.path() != "/" {
        let p = u.path().trim_end_matches('/').to_owned();
        u.set_path(&p);
    }
    if !query.is_empty() {
        u.query_pairs_mut().extend_pairs(query);
    }
    u
}

pub(crate) struct AzureConnection {
    pub(crate) cfg: AzureConfig,
    client: reqwest::Client,
    bearer: Option<SecretString>,
    /// `Server` and `x-ms-version` of the latest response.
    seen: Mutex<(Option<String>, Option<String>)>,
}

impl AzureConnection {
    pub(crate) async fn open(
        cfg: AzureConfig,
        ctx: &ConnectContext,
    ) -> Result<AzureConnection, ConnectorError> {
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
        if let Auth::ServicePrincipal { token_url, .. } = &cfg.auth {
            // Checked even when it is an IP literal, which reqwest would
            // connect to without asking any resolver.
            let host = host_of(token_url).unwrap_or_default();
            let port = token_url.port_or_known_default().unwrap_or(443);
            let addrs = resolve_host(&host, port, ctx.timeouts, &ctx.egress)
                .await
                .map_err(|e| e.with_context("tokenUrl", token_url.as_str()))?;
            pinned.push((host.to_ascii_lowercase(), addrs));
        }
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .no_proxy()
            .dns_resolver(Arc::new(PinnedResolver { pinned }))
            .connect_timeout(ctx.timeouts.connect())
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(4)
            .user_agent(concat!("matih-connectors/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| parse_error(Failure::Http(e), "building the HTTP client"))?;
        let mut conn = AzureConnection {
            cfg,
            client,
            bearer: None,
            seen: Mutex::new((None, None)),
        };
        if let Auth::ServicePrincipal {
            client_id,
            client_secret,
            token_url,
        } = &conn.cfg.auth
        {
            conn.bearer = Some(
                conn.fetch_token(client_id, client_secret, token_url)
                    .await?,
            );
        }
        with_timeout(
            ctx.timeouts.connect(),
            "checking access",
            conn.check_access(None),
        )
        .await?;
        Ok(conn)
    }

    async fn fetch_token(
        &self,
        id: &SecretString,
        secret: &SecretString,
        url: &Url,
    ) -> Result<SecretString, ConnectorError> {
        let what = format!("POST {url}");
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", id.expose()),
            ("client_secret", secret.expose()),
            ("scope", STORAGE_SCOPE),
        ];
        let req = self
            .client
            .post(url.clone())
            .form(&form)
            .timeout(self.cfg.timeouts.connect());
        let fut = async {
            let mut resp = req
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
            let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
                parse_error(
                    Failure::Malformed(format!("token response is not JSON: {e}")),
                    &what,
                )
            })?;
            match v.get("access_token").and_then(|t| t.as_str()) {
                Some(t) if !t.is_empty() => Ok(SecretString::new(t)),
                _ => Err(parse_error(
                    Failure::Malformed("no access_token".into()),
                    &what,
                )),
            }
        };
        with_timeout(self.cfg.timeouts.connect(), &what, fut).await
    }

    /// One listing of one blob of `container` (or the configured one);
    /// without any container, one container of the account.
    pub(crate) async fn check_access(&self, container: Option<&str>) -> Result<(), ConnectorError> {
        match container
            .map(str::to_owned)
            .or_else(|| self.cfg.container.clone())
        {
            Some(c) => {
                let url = self.url(
                    &[&c],
                    &[
                        ("restype", "container"),
                        ("comp", "list"),
                        ("maxresults", "1"),
                    ],
                );
                self.get_text(url, &format!("listing blobs of {c}"))
                    .await
                    .map_err(|e| e.with_context("container", c))?;
            }
            None => {
                let url = self.url(&[], &[("comp", "list"), ("maxresults", "1")]);
                self.get_text(
                    url,
                    &format!("listing containers of account {}", self.cfg.account),
                )
                .await?;
            }
        }
        Ok(())
    }

    /// `<base><segments…>?<query>`; a blob name's `/`s stay path separators
    /// and every segment is percent-encoded.
    pub(crate) fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        blob_url(&self.cfg.base, segments, query)
    }

    /// Adds the authorization the configuration calls for.
    fn request(
        &self,
        mut url: Url,
        extra: &[(&'static str, String)],
    ) -> Result<reqwest::RequestBuilder, ConnectorError> {
        if let Auth::Sas(pairs) = &self.cfg.auth {
            let mut q = url.query_pairs_mut();
            for (k, v) in pairs {
                q.append_pair(k, v.expose());
            }
        }
        let date = chrono::Utc::now()
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        let mut ms: Vec<(&str, String)> = vec![
            ("x-ms-date", date),
            ("x-ms-version", API_VERSION.to_owned()),
        ];
        ms.extend(extra.iter().cloned());
        let mut headers = HeaderMap::new();
        for (k, v) in &ms {
            let v = HeaderValue::from_str(v)
                .map_err(|_| ConnectorError::internal("invalid header value"))?;
            headers.insert(HeaderName::from_static(k), v);
        }
        let auth = match &self.cfg.auth {
            Auth::SharedKey(key) => Some(shared_key_header(
                &self.cfg.account,
                key,
                &string_to_sign(&self.cfg.account, &url, &ms),
            )?),
            Auth::ServicePrincipal { .. } => self
                .bearer
                .as_ref()
                .map(|t| format!("Bearer {}", t.expose())),
            Auth::Sas(_) | Auth::Anonymous => None,
        };
        if let Some(a) = auth {
            let mut v = HeaderValue::from_str(&a).map_err(|_| {
                ConnectorError::invalid_config(
                    "credentials",
                    "the credentials hold characters a header cannot carry",
                )
            })?;
            v.set_sensitive(true);
            headers.insert(AUTHORIZATION, v);
        }
        Ok(self
            .client
            .get(url)
            .headers(headers)
            .timeout(self.cfg.timeouts.query()))
    }

    fn remember(&self, headers: &HeaderMap) {
        let get = |h: &str| {
            headers
                .get(h)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(|v| v.chars().take(120).collect::<String>())
        };
        if let Ok(mut s) = self.seen.lock() {
            if let Some(v) = get(SERVER.as_str()) {
                s.0 = Some(v);
            }
            if let Some(v) = get("x-ms-version") {
                s.1 = Some(v);
            }
        }
    }

    /// A listing's XML text, within the size and time limits.
    pub(crate) async fn get_text(&self, url: Url, what: &str) -> Result<String, ConnectorError> {
        let body = self.get(url, None, MAX_LIST_BYTES, what).await?;
        String::from_utf8(body)
            .map_err(|_| parse_error(Failure::Malformed("the listing is not UTF-8".into()), what))
    }

    /// Bytes `start..=end` of a blob.
    pub(crate) async fn read_range(
        &self,
        container: &str,
        name: &str,
        start: u64,
        end: u64,
    ) -> Result<Vec<u8>, ConnectorError> {
        let url = self.url(&[container, name], &[]);
        let what = format!("reading {container}/{name}");
        let mut bytes = self
            .get(url, Some((start, end)), end - start + 1, &what)
            .await?;
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
        let extra: Vec<(&'static str, String)> = match range {
            Some((s, e)) => vec![("x-ms-range", format!("bytes={s}-{e}"))],
            None => vec![],
        };
        let req = self.request(url, &extra)?;
        let fut = async {
            let mut resp = req
                .send()
                .await
                .map_err(|e| parse_error(Failure::Http(e), what))?;
            self.remember(resp.headers());
            let status = resp.status().as_u16();
            if !(200..300).contains(&status) {
                let error_code = resp
                    .headers()
                    .get("x-ms-error-code")
                    .and_then(|v| v.to_str().ok())
                    .map(|v| v.chars().take(100).collect());
                let body = read_prefix(&mut resp, ERROR_BODY_BYTES).await;
                return Err(parse_error(
                    Failure::Status {
                        status,
                        error_code,
                        body,
                    },
                    what,
                ));
            }
            if range.is_some() {
                Ok(read_prefix(&mut resp, limit as usize).await)
            } else {
                read_bounded(&mut resp, limit)
                    .await
                    .map_err(|f| parse_error(f, what))
            }
        };
        with_timeout(
            self.cfg.timeouts.query() + Duration::from_millis(250),
            what,
            fut,
        )
        .await
    }

    /// "Azure Blob Storage REST API <x-ms-version>", with the `Server`
    /// header (Azure's own, or an emulator's such as `Azurite-Blob/3.35.0`).
    fn version(&self) -> String {
        let (server, version) = self.seen.lock().map(|s| s.clone()).unwrap_or_default();
        let mut v = format!(
            "Azure Blob Storage REST API {}",
            version.as_deref().unwrap_or(API_VERSION)
        );
        if let Some(s) = server {
            v.push_str(&format!(" ({s})"));
        }
        v
    }
}

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
impl Connection for AzureConnection {
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

    /// The example of Microsoft's "Authorize with Shared Key" page, reduced
    /// to a GET: headers sorted and lowercased, query parameters sorted,
    /// decoded, multi-valued ones joined.
    #[test]
    fn urls_path_style_and_virtual_hosted() {
        let emu = Url::parse("http://127.0.0.1:10000/devstoreaccount1/").unwrap();
        assert_eq!(
            blob_url(&emu, &[], &[("comp", "list")]).as_str(),
            "http://127.0.0.1:10000/devstoreaccount1?comp=list"
        );
        assert_eq!(
            blob_url(&emu, &["c", "weird name ü 'q'/data.csv"], &[]).as_str(),
            "http://127.0.0.1:10000/devstoreaccount1/c/weird%20name%20%C3%BC%20'q'/data.csv"
        );
        let azure = Url::parse("https://acme.blob.core.windows.net/").unwrap();
        assert_eq!(
            blob_url(&azure, &[], &[("comp", "list")]).as_str(),
            "https://acme.blob.core.windows.net/?comp=list"
        );
        assert_eq!(
            blob_url(
                &azure,
                &["c"],
                &[("restype", "container"), ("comp", "list")]
            )
            .as_str(),
            "https://acme.blob.core.windows.net/c?restype=container&comp=list"
        );
    }

    #[test]
    fn string_to_sign_follows_the_documented_layout() {
        let url = Url::parse("http://127.0.0.1:10000/devstoreaccount1/mycontainer?restype=container&comp=list&prefix=a%20b&include=metadata&include=snapshots").unwrap();
        let s = string_to_sign(
            "devstoreaccount1",
            &url,
            &[
                ("x-ms-version", "2023-11-03".into()),
                ("x-ms-date", "Fri, 26 Jun 2015 23:39:12 GMT".into()),
            ],
        );
        let want = "GET\n\n\n\n\n\n\n\n\n\n\n\n\
                    x-ms-date:Fri, 26 Jun 2015 23:39:12 GMT\nx-ms-version:2023-11-03\n\
                    /devstoreaccount1/devstoreaccount1/mycontainer\ncomp:list\ninclude:metadata,snapshots\nprefix:a b\nrestype:container";
        assert_eq!(s, want);
        // Known HMAC (computed with Python's hmac module): the emulator's
        // published key over a fixed string.
        let key = SecretString::new("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==");
        let h = shared_key_header("devstoreaccount1", &key, "abc").unwrap();
        assert_eq!(
            h,
            "SharedKey devstoreaccount1:SIcX91U20N3KMshjCxCtQlOGY5e+vjvvAoYG97vklcc="
        );
    }
}
