//! The GCS connection: JSON API calls through the core's pinned HTTP client
//! (egress resolver, TLS, bounded bodies), authorized by a bearer token or a
//! service account's JWT bearer grant (core `TokenSource`).

use std::sync::{Arc, Mutex};

use matih_connector_core::http::header::{HeaderMap, HeaderValue, RANGE, SERVER};
use matih_connector_core::http::{HttpAuth, HttpClient, HttpOptions, Url};
use matih_connector_core::{with_timeout, ConnectContext, ConnectorError};
use serde_json::Value;

use crate::config::{Auth, GcsConfig, READ_SCOPE};
use crate::errors::refine;
use matih_connector_core::google::json_error;

/// JSON listing pages are read only this far.
const MAX_JSON_BYTES: u64 = 32 << 20;

pub(crate) struct GcsConnection {
    pub(crate) cfg: GcsConfig,
    client: HttpClient,
    auth: HttpAuth,
    /// The latest `Server` header, for the server version.
    server: Mutex<Option<String>>,
}

impl GcsConnection {
    pub(crate) async fn open(
        cfg: GcsConfig,
        ctx: &ConnectContext,
    ) -> Result<GcsConnection, ConnectorError> {
        // Same-origin redirects only, every hop egress-checked.
        let opts = HttpOptions::new(cfg.tls, cfg.ca_pem.as_deref())
            .max_body_bytes(MAX_JSON_BYTES)
            .refine(refine);
        let client = ctx.http_client(&opts)?;
        let auth = match &cfg.auth {
            Auth::Anonymous => HttpAuth::None,
            Auth::AccessToken(t) => HttpAuth::Bearer(t.clone()),
            Auth::ServiceAccount(sa) => HttpAuth::Token(Arc::new(sa.token_source(READ_SCOPE)?)),
        };
        // A service account's token is fetched now: bad keys fail at connect.
        auth.authorize(&client).await?;
        let conn = GcsConnection {
            cfg,
            client,
            auth,
            server: Mutex::new(None),
        };
        // The cheapest authorized call proves endpoint, TLS and credentials,
        // and that the bucket (or project) exists.
        let what = "checking access";
        with_timeout(ctx.timeouts.connect(), what, conn.check_access(None)).await?;
        Ok(conn)
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
        serde_json::from_slice(&body).map_err(|e| json_error(e, what))
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
        let mut req = self.client.get(url).what(what).limit(limit);
        if let Some((s, e)) = range {
            let v = HeaderValue::from_str(&format!("bytes={s}-{e}"))
                .map_err(|_| ConnectorError::internal("a Range header value"))?;
            req = req.header(RANGE, v);
        }
        let mut resp = self.auth.apply(req).await?.send().await?;
        self.remember_server(resp.headers());
        if !resp.status().is_success() {
            return Err(resp.error().await);
        }
        if range.is_some() {
            // A server that ignores Range is cut off at the range's length.
            Ok(resp.prefix(limit as usize).await)
        } else {
            resp.bytes().await
        }
    }

    /// "Google Cloud Storage JSON API v1", with the `Server` header when the
    /// endpoint is not Google's own (an emulator, a proxy).
    pub(crate) fn version(&self) -> String {
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
