//! Discovery: buckets → schemas, top-level prefixes (and root objects) →
//! file sets. Per bucket one delimited listing finds the file sets; per file
//! set one listing (bounded by `maxObjectsPerTable`) gives object count, size
//! and formats, and a few ranged GETs give the columns. S3 has no call that
//! summarizes several prefixes at once; the per-file-set calls run a few at a
//! time, and only when statistics or columns are asked for. What
//! is not the store's own (file sets, statistics, sampling) is core's
//! `sample::file_sets`; this module lists and reads.

use matih_connector_core::sample::file_sets::{self, FileSet, ObjectStore, SampleLimits};
use matih_connector_core::{
    with_timeout, Catalog, ConnectorError, DiscoveryRequest, ErrorCode, NameFilter,
};

use crate::connection::S3Connection;
use matih_connector_core::aws::{from_sdk, parse_error};

const MAX_BUCKETS: usize = 10_000;
const MAX_TABLES_PER_BUCKET: usize = 10_000;

pub(crate) async fn probe(
    conn: &mut S3Connection,
    req: &DiscoveryRequest,
) -> Result<(), ConnectorError> {
    let buckets = buckets(conn, &req.schemas).await?;
    match buckets.first() {
        Some(b) => {
            let what = format!("ListObjectsV2 {b}");
            with_timeout(
                conn.cfg.aws.timeouts.query(),
                &what,
                conn.check_access(Some(b)),
            )
            .await
        }
        None => Ok(()),
    }
}

async fn buckets(conn: &S3Connection, filter: &NameFilter) -> Result<Vec<String>, ConnectorError> {
    if let Some(b) = &conn.cfg.bucket {
        return Ok(if filter.matches(b) {
            vec![b.clone()]
        } else {
            Vec::new()
        });
    }
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let what = "ListBuckets";
        let page = with_timeout(conn.cfg.aws.timeouts.query(), what, async {
            conn.client
                .list_buckets()
                .set_continuation_token(token.clone())
                .send()
                .await
                .map_err(|e| parse_error(from_sdk(e), what))
        })
        .await?;
        out.extend(
            page.buckets()
                .iter()
                .filter_map(|b| b.name())
                .map(str::to_owned),
        );
        token = page.continuation_token().map(str::to_owned);
        if token.is_none() || out.len() >= MAX_BUCKETS {
            break;
        }
    }
    out.retain(|b| filter.matches(b));
    out.sort();
    Ok(out)
}

pub(crate) async fn discover(
    conn: &mut S3Connection,
    req: &DiscoveryRequest,
) -> Result<Catalog, ConnectorError> {
    let buckets = buckets(conn, &req.schemas).await?;
    file_sets::discover(&*conn, buckets, req).await
}

impl ObjectStore for S3Connection {
    const OBJECT: &'static str = "key";

    fn sample_limits(&self) -> SampleLimits {
        SampleLimits {
            files: self.cfg.sample_files as usize,
            head_bytes: self.cfg.sample_bytes,
        }
    }

    async fn root(
        &self,
        bucket: &str,
        prefix: Option<&str>,
    ) -> Result<Vec<FileSet>, ConnectorError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let what = format!("ListObjectsV2 {bucket}");
            let page = with_timeout(self.cfg.aws.timeouts.query(), &what, async {
                self.client
                    .list_objects_v2()
                    .bucket(bucket)
                    .delimiter("/")
                    .set_prefix(prefix.map(str::to_owned))
                    .set_continuation_token(token.clone())
                    .send()
                    .await
                    .map_err(|e| parse_error(from_sdk(e), &what).with_context("bucket", bucket))
            })
            .await?;
            out.extend(
                page.common_prefixes()
                    .iter()
                    .filter_map(|p| p.prefix())
                    .map(|p| FileSet::Prefix(p.to_owned())),
            );
            out.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| Some((o.key()?, o.size().unwrap_or(0))))
                    // Zero-byte "folder" markers are not data.
                    .filter(|(k, _)| !k.ends_with('/'))
                    .map(|(k, s)| FileSet::Object {
                        name: k.to_owned(),
                        size: s.max(0) as u64,
                    }),
            );
            token = page.next_continuation_token().map(str::to_owned);
            if token.is_none() || out.len() >= MAX_TABLES_PER_BUCKET {
                break;
            }
        }
        out.truncate(MAX_TABLES_PER_BUCKET);
        Ok(out)
    }

    async fn objects(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> Result<(Vec<(String, u64)>, bool), ConnectorError> {
        let max = self.cfg.max_objects as usize;
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let what = format!("ListObjectsV2 {bucket}/{prefix}");
            let page = with_timeout(self.cfg.aws.timeouts.query(), &what, async {
                self.client
                    .list_objects_v2()
                    .bucket(bucket)
                    .prefix(prefix)
                    .max_keys((max - out.len()).min(1000) as i32)
                    .set_continuation_token(token.clone())
                    .send()
                    .await
                    .map_err(|e| parse_error(from_sdk(e), &what).with_context("bucket", bucket))
            })
            .await?;
            out.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| {
                        Some((o.key()?.to_owned(), o.size().unwrap_or(0).max(0) as u64))
                    })
                    .filter(|(k, _)| !k.ends_with('/')),
            );
            token = page.next_continuation_token().map(str::to_owned);
            if token.is_none() {
                return Ok((out, false));
            }
            if out.len() >= max {
                return Ok((out, true));
            }
        }
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
