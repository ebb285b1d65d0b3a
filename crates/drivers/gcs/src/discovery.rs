//! Discovery: buckets → schemas, top-level prefixes (and root objects) →
//! file sets. Per project one bucket listing (filtered by prefix); per bucket
//! one delimited object listing finds the file sets; per file set one listing
//! (bounded by `maxObjectsPerTable`) gives object count, size and formats,
//! and a few ranged media downloads give the columns. The JSON API has no
//! call that summarizes several prefixes at once; the per-file-set calls run
//! a few at a time, and only when statistics or columns are asked for. What
//! is not GCS's own (file sets, statistics, sampling) is core's
//! `sample::file_sets`; this module lists and reads.

use matih_connector_core::sample::file_sets::{
    self, literal_prefix, FileSet, ObjectStore, SampleLimits,
};
use matih_connector_core::{Catalog, ConnectorError, DiscoveryRequest, NameFilter};
use serde_json::Value;

use crate::connection::GcsConnection;

const MAX_BUCKETS: usize = 10_000;
const MAX_TABLES_PER_BUCKET: usize = 10_000;
const PAGE: &str = "1000";

/// An object's size: the JSON API sends it as a decimal string.
fn size_of(item: &Value) -> u64 {
    match item.get("size") {
        Some(Value::String(s)) => s.parse().unwrap_or(0),
        Some(Value::Number(n)) => n.as_u64().unwrap_or(0),
        _ => 0,
    }
}

fn next_token(page: &Value) -> Option<String> {
    page.get("nextPageToken")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
}

pub(crate) async fn probe(
    conn: &mut GcsConnection,
    req: &DiscoveryRequest,
) -> Result<(), ConnectorError> {
    let buckets = buckets(conn, &req.schemas).await?;
    match buckets.first() {
        Some(b) => conn.check_access(Some(b)).await,
        None => Ok(()),
    }
}

async fn buckets(conn: &GcsConnection, filter: &NameFilter) -> Result<Vec<String>, ConnectorError> {
    if let Some(b) = &conn.cfg.bucket {
        return Ok(if filter.matches(b) {
            vec![b.clone()]
        } else {
            Vec::new()
        });
    }
    let project = conn.cfg.project.clone().unwrap_or_default();
    let prefix = literal_prefix(filter);
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut q: Vec<(&str, &str)> = vec![
            ("project", &project),
            ("maxResults", PAGE),
            ("fields", "items/name,nextPageToken"),
        ];
        if let Some(p) = &prefix {
            q.push(("prefix", p));
        }
        if let Some(t) = &token {
            q.push(("pageToken", t));
        }
        let url = conn.url(&["b"], &q);
        let page = conn
            .get_json(url, &format!("listing buckets of project {project}"))
            .await
            .map_err(|e| e.with_context("project", &project))?;
        if let Some(items) = page.get("items").and_then(Value::as_array) {
            out.extend(
                items
                    .iter()
                    .filter_map(|b| b.get("name")?.as_str())
                    .map(str::to_owned),
            );
        }
        token = next_token(&page);
        if token.is_none() || out.len() >= MAX_BUCKETS {
            break;
        }
    }
    out.retain(|b| filter.matches(b));
    out.sort();
    Ok(out)
}

pub(crate) async fn discover(
    conn: &mut GcsConnection,
    req: &DiscoveryRequest,
) -> Result<Catalog, ConnectorError> {
    let buckets = buckets(conn, &req.schemas).await?;
    file_sets::discover(&*conn, buckets, req).await
}

impl ObjectStore for GcsConnection {
    const OBJECT: &'static str = "object";

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
            let mut q: Vec<(&str, &str)> = vec![
                ("delimiter", "/"),
                ("maxResults", PAGE),
                ("fields", "items(name,size),prefixes,nextPageToken"),
            ];
            if let Some(p) = prefix {
                q.push(("prefix", p));
            }
            if let Some(t) = &token {
                q.push(("pageToken", t));
            }
            let url = self.url(&["b", bucket, "o"], &q);
            let page = self
                .get_json(url, &format!("listing objects of {bucket}"))
                .await
                .map_err(|e| e.with_context("bucket", bucket))?;
            if let Some(p) = page.get("prefixes").and_then(Value::as_array) {
                out.extend(
                    p.iter()
                        .filter_map(Value::as_str)
                        .map(|p| FileSet::Prefix(p.to_owned())),
                );
            }
            if let Some(items) = page.get("items").and_then(Value::as_array) {
                out.extend(
                    items
                        .iter()
                        .filter_map(|o| Some((o.get("name")?.as_str()?, size_of(o))))
                        // Zero-byte "folder" placeholders are not data.
                        .filter(|(n, _)| !n.ends_with('/'))
                        .map(|(n, size)| FileSet::Object {
                            name: n.to_owned(),
                            size,
                        }),
                );
            }
            token = next_token(&page);
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
            let n = (max - out.len()).min(1000).to_string();
            let mut q: Vec<(&str, &str)> = vec![
                ("prefix", prefix),
                ("maxResults", &n),
                ("fields", "items(name,size),nextPageToken"),
            ];
            if let Some(t) = &token {
                q.push(("pageToken", t));
            }
            let url = self.url(&["b", bucket, "o"], &q);
            let page = self
                .get_json(url, &format!("listing objects of {bucket}/{prefix}"))
                .await
                .map_err(|e| e.with_context("bucket", bucket))?;
            if let Some(items) = page.get("items").and_then(Value::as_array) {
                out.extend(
                    items
                        .iter()
                        .filter_map(|o| Some((o.get("name")?.as_str()?.to_owned(), size_of(o))))
                        .filter(|(k, _)| !k.ends_with('/')),
                );
            }
            token = next_token(&page);
            if token.is_none() {
                return Ok((out, false));
            }
            if out.len() >= max {
                out.truncate(max);
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
        GcsConnection::read_range(self, bucket, key, start, end).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sizes_and_tokens() {
        assert_eq!(size_of(&json!({"size": "123"})), 123);
        assert_eq!(size_of(&json!({"size": 7})), 7);
        assert_eq!(size_of(&json!({})), 0);
        assert_eq!(next_token(&json!({"nextPageToken": ""})), None);
    }
}
