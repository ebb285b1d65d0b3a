//! Discovery: buckets → schemas, top-level prefixes (and root objects) →
//! file sets. Per bucket one delimited listing finds the file sets; per file
//! set one listing (bounded by `maxObjectsPerTable`) gives object count, size
//! and formats, and a few ranged GETs give the columns. S3 has no call that
//! summarizes several prefixes at once; the per-file-set calls run a few at a
//! time, and only when statistics or columns are asked for. What
//! is not the store's own (file sets, statistics, sampling) is core's
//! `sample::file_sets`; this module lists and reads.

use matih_connector_core::sample::file_sets::{FileSet, FileSetSettings, ObjectStore, Page};
use matih_connector_core::{with_timeout, ConnectorError, ErrorCode};

use crate::connection::S3Connection;
use matih_connector_core::aws::{from_sdk, parse_error};

impl ObjectStore for S3Connection {
    const OBJECT: &'static str = "key";

    fn settings(&self) -> &FileSetSettings {
        &self.cfg.files
    }

    fn configured_schema(&self) -> Option<&str> {
        self.cfg.bucket.as_deref()
    }

    /// ListBuckets: the prefix is not sent (the filter does the work).
    async fn schemas_page(
        &self,
        _prefix: Option<&str>,
        token: Option<String>,
    ) -> Result<Page<String>, ConnectorError> {
        let what = "ListBuckets";
        let page = with_timeout(self.cfg.aws.timeouts.query(), what, async {
            self.client
                .list_buckets()
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| parse_error(from_sdk(e), what))
        })
        .await?;
        Ok(Page {
            items: page
                .buckets()
                .iter()
                .filter_map(|b| b.name())
                .map(str::to_owned)
                .collect(),
            next: page.continuation_token().map(str::to_owned),
        })
    }

    async fn check_schema(&self, bucket: &str) -> Result<(), ConnectorError> {
        let what = format!("ListObjectsV2 {bucket}");
        with_timeout(
            self.cfg.aws.timeouts.query(),
            &what,
            self.check_access(Some(bucket)),
        )
        .await
    }

    async fn root_page(
        &self,
        bucket: &str,
        prefix: Option<&str>,
        token: Option<String>,
    ) -> Result<Page<FileSet>, ConnectorError> {
        let what = format!("ListObjectsV2 {bucket}");
        let page = with_timeout(self.cfg.aws.timeouts.query(), &what, async {
            self.client
                .list_objects_v2()
                .bucket(bucket)
                .delimiter("/")
                .set_prefix(prefix.map(str::to_owned))
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| parse_error(from_sdk(e), &what).with_context("bucket", bucket))
        })
        .await?;
        let mut out: Vec<FileSet> = page
            .common_prefixes()
            .iter()
            .filter_map(|p| p.prefix())
            .map(|p| FileSet::Prefix(p.to_owned()))
            .collect();
        out.extend(
            page.contents()
                .iter()
                .filter_map(|o| Some((o.key()?, o.size().unwrap_or(0))))
                .map(|(k, s)| FileSet::Object {
                    name: k.to_owned(),
                    size: s.max(0) as u64,
                }),
        );
        Ok(Page {
            items: out,
            next: page.next_continuation_token().map(str::to_owned),
        })
    }

    async fn objects_page(
        &self,
        bucket: &str,
        prefix: &str,
        max: usize,
        token: Option<String>,
    ) -> Result<Page<(String, u64)>, ConnectorError> {
        let what = format!("ListObjectsV2 {bucket}/{prefix}");
        let page = with_timeout(self.cfg.aws.timeouts.query(), &what, async {
            self.client
                .list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .max_keys(max.min(1000) as i32)
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| parse_error(from_sdk(e), &what).with_context("bucket", bucket))
        })
        .await?;
        Ok(Page {
            items: page
                .contents()
                .iter()
                .filter_map(|o| Some((o.key()?.to_owned(), o.size().unwrap_or(0).max(0) as u64)))
                .collect(),
            next: page.next_continuation_token().map(str::to_owned),
        })
    }

    async fn read_range(
        &self,
        bucket: &str,
        key: &str,
        start: u64,
        end: u64,
    ) -> Result<Vec<u8>, ConnectorError> {
        // Bounded by the query time limit.
        let what = format!("GetObject {bucket}/{key}");
        with_timeout(self.cfg.aws.timeouts.query(), &what, async {
            let out = self
                .client
                .get_object()
                .bucket(bucket)
                .key(key)
                .range(format!("bytes={start}-{end}"))
                .send()
                .await
                .map_err(|e| parse_error(from_sdk(e), &what).with_context("bucket", bucket))?;
            let body = out.body.collect().await.map_err(|e| {
                ConnectorError::new(
                    ErrorCode::ConnectionClosed,
                    format!("{what}: reading the body: {e}"),
                )
                .with_source(e)
            })?;
            let mut bytes = body.into_bytes().to_vec();
            // A server that ignores Range sends everything: keep what was asked.
            bytes.truncate((end - start + 1) as usize);
            Ok(bytes)
        })
        .await
    }
}
