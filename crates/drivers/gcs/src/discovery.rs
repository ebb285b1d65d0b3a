//! Discovery: buckets → schemas, top-level prefixes (and root objects) →
//! file sets. Per project one bucket listing (filtered by prefix); per bucket
//! one delimited object listing finds the file sets; per file set one listing
//! (bounded by `maxObjectsPerTable`) gives object count, size and formats,
//! and a few ranged media downloads give the columns. The JSON API has no
//! call that summarizes several prefixes at once; the per-file-set calls run
//! a few at a time, and only when statistics or columns are asked for. What
//! is not GCS's own (file sets, statistics, sampling) is core's
//! `sample::file_sets`; this module lists and reads.

use matih_connector_core::sample::file_sets::{FileSet, FileSetSettings, ObjectStore, Page};
use matih_connector_core::ConnectorError;
use serde_json::Value;

use crate::connection::GcsConnection;

const PAGE: usize = 1000;

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

/// `(name, size)` of a listing page's `items`.
fn items(page: &Value) -> Vec<(String, u64)> {
    page.get("items")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|o| Some((o.get("name")?.as_str()?.to_owned(), size_of(o))))
                .collect()
        })
        .unwrap_or_default()
}

impl ObjectStore for GcsConnection {
    const OBJECT: &'static str = "object";

    fn settings(&self) -> &FileSetSettings {
        &self.cfg.files
    }

    fn configured_schema(&self) -> Option<&str> {
        self.cfg.bucket.as_deref()
    }

    async fn schemas_page(
        &self,
        prefix: Option<&str>,
        token: Option<String>,
    ) -> Result<Page<String>, ConnectorError> {
        let project = self.cfg.project.clone().unwrap_or_default();
        let page = PAGE.to_string();
        let mut q: Vec<(&str, &str)> = vec![
            ("project", &project),
            ("maxResults", &page),
            ("fields", "items/name,nextPageToken"),
        ];
        if let Some(p) = prefix {
            q.push(("prefix", p));
        }
        if let Some(t) = &token {
            q.push(("pageToken", t));
        }
        let url = self.url(&["b"], &q);
        let page = self
            .get_json(url, &format!("listing buckets of project {project}"))
            .await
            .map_err(|e| e.with_context("project", &project))?;
        Ok(Page {
            items: items(&page).into_iter().map(|(n, _)| n).collect(),
            next: next_token(&page),
        })
    }

    async fn check_schema(&self, bucket: &str) -> Result<(), ConnectorError> {
        self.check_access(Some(bucket)).await
    }

    async fn root_page(
        &self,
        bucket: &str,
        prefix: Option<&str>,
        token: Option<String>,
    ) -> Result<Page<FileSet>, ConnectorError> {
        let page = PAGE.to_string();
        let mut q: Vec<(&str, &str)> = vec![
            ("delimiter", "/"),
            ("maxResults", &page),
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
        let mut out: Vec<FileSet> = page
            .get("prefixes")
            .and_then(Value::as_array)
            .map(|p| {
                p.iter()
                    .filter_map(Value::as_str)
                    .map(|p| FileSet::Prefix(p.to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        out.extend(
            items(&page)
                .into_iter()
                .map(|(name, size)| FileSet::Object { name, size }),
        );
        Ok(Page {
            items: out,
            next: next_token(&page),
        })
    }

    async fn objects_page(
        &self,
        bucket: &str,
        prefix: &str,
        max: usize,
        token: Option<String>,
    ) -> Result<Page<(String, u64)>, ConnectorError> {
        let n = max.min(PAGE).to_string();
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
        Ok(Page {
            items: items(&page),
            next: next_token(&page),
        })
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
