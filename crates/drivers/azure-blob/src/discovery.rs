//! Discovery: containers → schemas, top-level prefixes (and root blobs) →
//! file sets. Per account one container listing (filtered by prefix); per
//! container one delimited blob listing finds the file sets; per file set one
//! listing (bounded by `maxObjectsPerTable`) gives blob count, size and
//! formats, and a few ranged reads give the columns. The Blob service has no
//! call that summarizes several prefixes at once; the per-file-set calls run
//! a few at a time, and only when statistics or columns are asked for. What
//! is not the store's own (file sets, statistics, sampling) is core's
//! `sample::file_sets`; this module lists and reads.

use matih_connector_core::sample::file_sets::{
    self, literal_prefix, FileSet, ObjectStore, SampleLimits,
};
use matih_connector_core::{Catalog, ConnectorError, DiscoveryRequest, NameFilter};

use crate::connection::AzureConnection;
use crate::errors::{xml_elements, xml_text};

const MAX_BUCKETS: usize = 10_000;
const MAX_TABLES_PER_BUCKET: usize = 10_000;
const PAGE: &str = "5000";

/// The `<NextMarker>` of a listing page, when there is another page.
fn next_marker(doc: &str) -> Option<String> {
    // Only the page's own marker: it follows the last element.
    let tail = &doc[doc
        .rfind("</Blobs>")
        .or_else(|| doc.rfind("</Containers>"))
        .unwrap_or(0)..];
    xml_text(tail, "NextMarker").filter(|m| !m.is_empty())
}

/// `(name, size)` of each `<Blob>` of a listing page.
fn blobs(doc: &str) -> Vec<(String, u64)> {
    xml_elements(doc, "Blob")
        .into_iter()
        .filter_map(|b| {
            let name = xml_text(b, "Name")?;
            let size = xml_text(b, "Content-Length")
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0);
            Some((name, size))
        })
        .collect()
}

pub(crate) async fn probe(
    conn: &mut AzureConnection,
    req: &DiscoveryRequest,
) -> Result<(), ConnectorError> {
    let buckets = buckets(conn, &req.schemas).await?;
    match buckets.first() {
        Some(b) => conn.check_access(Some(b)).await,
        None => Ok(()),
    }
}

async fn buckets(
    conn: &AzureConnection,
    filter: &NameFilter,
) -> Result<Vec<String>, ConnectorError> {
    if let Some(c) = &conn.cfg.container {
        return Ok(if filter.matches(c) {
            vec![c.clone()]
        } else {
            Vec::new()
        });
    }
    let prefix = literal_prefix(filter);
    let mut out = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let mut q: Vec<(&str, &str)> = vec![("comp", "list"), ("maxresults", PAGE)];
        if let Some(p) = &prefix {
            q.push(("prefix", p));
        }
        if let Some(m) = &marker {
            q.push(("marker", m));
        }
        let url = conn.url(&[], &q);
        let doc = conn
            .get_text(
                url,
                &format!("listing containers of account {}", conn.cfg.account),
            )
            .await?;
        out.extend(
            xml_elements(&doc, "Container")
                .into_iter()
                .filter_map(|c| xml_text(c, "Name")),
        );
        marker = next_marker(&doc);
        if marker.is_none() || out.len() >= MAX_BUCKETS {
            break;
        }
    }
    out.retain(|b| filter.matches(b));
    out.sort();
    Ok(out)
}

pub(crate) async fn discover(
    conn: &mut AzureConnection,
    req: &DiscoveryRequest,
) -> Result<Catalog, ConnectorError> {
    let containers = buckets(conn, &req.schemas).await?;
    file_sets::discover(&*conn, containers, req).await
}

impl ObjectStore for AzureConnection {
    const OBJECT: &'static str = "blob";

    fn sample_limits(&self) -> SampleLimits {
        SampleLimits {
            files: self.cfg.sample_files as usize,
            head_bytes: self.cfg.sample_bytes,
        }
    }

    async fn root(
        &self,
        container: &str,
        prefix: Option<&str>,
    ) -> Result<Vec<FileSet>, ConnectorError> {
        let mut out = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let mut q: Vec<(&str, &str)> = vec![
                ("restype", "container"),
                ("comp", "list"),
                ("delimiter", "/"),
                ("maxresults", PAGE),
            ];
            if let Some(p) = prefix {
                q.push(("prefix", p));
            }
            if let Some(m) = &marker {
                q.push(("marker", m));
            }
            let url = self.url(&[container], &q);
            let doc = self
                .get_text(url, &format!("listing blobs of {container}"))
                .await
                .map_err(|e| e.with_context("container", container))?;
            out.extend(
                xml_elements(&doc, "BlobPrefix")
                    .into_iter()
                    .filter_map(|p| xml_text(p, "Name"))
                    .map(FileSet::Prefix),
            );
            out.extend(
                blobs(&doc)
                    .into_iter()
                    // Zero-byte "folder" placeholders are not data.
                    .filter(|(n, _)| !n.ends_with('/'))
                    .map(|(name, size)| FileSet::Object { name, size }),
            );
            marker = next_marker(&doc);
            if marker.is_none() || out.len() >= MAX_TABLES_PER_BUCKET {
                break;
            }
        }
        out.truncate(MAX_TABLES_PER_BUCKET);
        Ok(out)
    }

    async fn objects(
        &self,
        container: &str,
        prefix: &str,
    ) -> Result<(Vec<(String, u64)>, bool), ConnectorError> {
        let max = self.cfg.max_objects as usize;
        let mut out = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let n = (max - out.len()).min(5000).to_string();
            let mut q: Vec<(&str, &str)> = vec![
                ("restype", "container"),
                ("comp", "list"),
                ("prefix", prefix),
                ("maxresults", &n),
            ];
            if let Some(m) = &marker {
                q.push(("marker", m));
            }
            let url = self.url(&[container], &q);
            let doc = self
                .get_text(url, &format!("listing blobs of {container}/{prefix}"))
                .await
                .map_err(|e| e.with_context("container", container))?;
            out.extend(blobs(&doc).into_iter().filter(|(k, _)| !k.ends_with('/')));
            marker = next_marker(&doc);
            if marker.is_none() {
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
        container: &str,
        key: &str,
        start: u64,
        end: u64,
    ) -> Result<Vec<u8>, ConnectorError> {
        AzureConnection::read_range(self, container, key, start, end).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_pages() {
        let doc = "<?xml version=\"1.0\" encoding=\"utf-8\"?><EnumerationResults ServiceEndpoint=\"http://127.0.0.1:10000/devstoreaccount1\" ContainerName=\"c\"><Prefix/><Delimiter>/</Delimiter><Blobs><Blob><Name>readme.json</Name><Properties><Content-Length>32</Content-Length></Properties></Blob><BlobPrefix><Name>orders/</Name></BlobPrefix></Blobs><NextMarker>2!80!abc</NextMarker></EnumerationResults>";
        assert_eq!(blobs(doc), vec![("readme.json".to_owned(), 32)]);
        assert_eq!(next_marker(doc).as_deref(), Some("2!80!abc"));
        assert_eq!(
            next_marker("<EnumerationResults><Blobs></Blobs><NextMarker /></EnumerationResults>"),
            None
        );
    }
}
