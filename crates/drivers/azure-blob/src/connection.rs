//! Request authorization (Shared Key signing, SAS, Entra ID bearer tokens
//! from the core `TokenSource`) and the Azure Blob connection, whose requests
//! go through the core's pinned HTTP client.

use std::sync::{Arc, Mutex};

use base64::Engine;
use matih_connector_core::http::header::{
    HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, SERVER,
};
use matih_connector_core::http::{
    ClientAuthMethod, ClientCredentials, HttpAuth, HttpClient, HttpOptions, HttpRequest,
    TokenSource, Url,
};
use matih_connector_core::{with_timeout, ConnectContext, ConnectorError, ErrorCode, SecretString};

use crate::config::{Auth, AzureConfig, API_VERSION, STORAGE_SCOPE};
use crate::errors::{refine, token_error};

/// Listing pages are read only this far.
const MAX_LIST_BYTES: u64 = 32 << 20;

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
    client: HttpClient,
    /// Entra ID tokens for a service principal; `None` for the other modes.
    token: HttpAuth,
    /// `Server` and `x-ms-version` of the latest response.
    seen: Mutex<(Option<String>, Option<String>)>,
}

impl AzureConnection {
    pub(crate) async fn open(
        cfg: AzureConfig,
        ctx: &ConnectContext,
    ) -> Result<AzureConnection, ConnectorError> {
        // Same-origin redirects only, every hop egress-checked.
        let opts = HttpOptions::new(cfg.tls, cfg.ca_pem.as_deref())
            .max_body_bytes(MAX_LIST_BYTES)
            .refine(refine);
        let client = ctx.http_client(&opts)?;
        let token = match &cfg.auth {
            Auth::ServicePrincipal {
                client_id,
                client_secret,
                token_url,
            } => HttpAuth::Token(Arc::new(TokenSource::client_credentials(
                token_url.clone(),
                ClientCredentials {
                    client_id: client_id.clone(),
                    client_secret: client_secret.clone(),
                    scope: Some(STORAGE_SCOPE.to_owned()),
                    method: ClientAuthMethod::Post,
                },
            ))),
            _ => HttpAuth::None,
        };
        // A service principal's token is fetched now: bad secrets fail at connect.
        token.authorize(&client).await.map_err(token_error)?;
        let conn = AzureConnection {
            cfg,
            client,
            token,
            seen: Mutex::new((None, None)),
        };
        with_timeout(
            ctx.timeouts.connect(),
            "checking access",
            conn.check_access(None),
        )
        .await?;
        Ok(conn)
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

    /// A GET with the authorization the configuration calls for.
    async fn request(
        &self,
        mut url: Url,
        extra: &[(&'static str, String)],
    ) -> Result<HttpRequest, ConnectorError> {
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
        let mut req = self.client.get(url.clone());
        for (k, v) in &ms {
            let v = HeaderValue::from_str(v)
                .map_err(|_| ConnectorError::internal("invalid header value"))?;
            req = req.header(HeaderName::from_static(k), v);
        }
        if let Auth::SharedKey(key) = &self.cfg.auth {
            let signed = shared_key_header(
                &self.cfg.account,
                key,
                &string_to_sign(&self.cfg.account, &url, &ms),
            )?;
            req = req.secret_header(AUTHORIZATION, &SecretString::new(signed))?;
        }
        self.token.apply(req).await.map_err(token_error)
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
        String::from_utf8(body).map_err(|_| {
            ConnectorError::new(
                ErrorCode::ProtocolError,
                format!("{what}: unexpected response: the listing is not UTF-8"),
            )
            .with_retryable(false)
        })
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
        let req = self.request(url, &extra).await?.what(what).limit(limit);
        let mut resp = req.send().await?;
        self.remember(resp.headers());
        if !resp.status().is_success() {
            return Err(resp.error().await);
        }
        if range.is_some() {
            // A server that ignores the range is cut off at its length.
            Ok(resp.prefix(limit as usize).await)
        } else {
            resp.bytes().await
        }
    }

    /// "Azure Blob Storage REST API <x-ms-version>", with the `Server`
    /// header (Azure's own, or an emulator's such as `Azurite-Blob/3.35.0`).
    pub(crate) fn version(&self) -> String {
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
