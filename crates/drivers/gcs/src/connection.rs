//! The GCS connection: JSON API calls through the core's pinned HTTP client
//! (egress resolver, TLS, bounded bodies), authorized by a bearer token or a
//! service account's JWT bearer grant (core `TokenSource`).

use matih_connector_core::google::{self, ApiClient};
use matih_connector_core::http::header::{HeaderValue, RANGE};
use matih_connector_core::http::Url;
use matih_connector_core::{with_timeout, ConnectContext, ConnectorError};
use serde_json::Value;

use crate::config::{GcsConfig, READ_SCOPE};
use crate::errors::refine;

/// JSON listing pages are read only this far.
const MAX_JSON_BYTES: u64 = 32 << 20;

pub(crate) struct GcsConnection {
    pub(crate) cfg: GcsConfig,
    api: ApiClient,
}

impl GcsConnection {
    pub(crate) async fn open(
        cfg: GcsConfig,
        ctx: &ConnectContext,
    ) -> Result<GcsConnection, ConnectorError> {
        let api = ApiClient::open(
            ctx,
            cfg.tls,
            cfg.ca_pem.as_deref(),
            MAX_JSON_BYTES,
            refine,
            &cfg.auth,
            READ_SCOPE,
        )
        .await?;
        let conn = GcsConnection { cfg, api };
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

    /// GETs a JSON document within the size and time limits.
    pub(crate) async fn get_json(&self, url: Url, what: &str) -> Result<Value, ConnectorError> {
        self.api.json(self.api.get(url), what).await
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
        let limit = end - start + 1;
        let range = HeaderValue::from_str(&format!("bytes={start}-{end}"))
            .map_err(|_| ConnectorError::internal("a Range header value"))?;
        let req = self
            .api
            .get(url)
            .what(what)
            .limit(limit)
            .header(RANGE, range);
        // A server that ignores Range is cut off at the range's length.
        let mut bytes = self.api.send(req).await?.prefix(limit as usize).await;
        bytes.truncate(limit as usize);
        Ok(bytes)
    }

    /// "Google Cloud Storage JSON API v1", with the `Server` header when the
    /// endpoint is not Google's own (an emulator, a proxy).
    pub(crate) fn version(&self) -> String {
        let base = "Google Cloud Storage JSON API v1";
        match &self.api.server() {
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
    google::api_url(endpoint, &["storage", "v1"], segments, query)
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
