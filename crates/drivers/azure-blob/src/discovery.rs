//! Discovery: containers → schemas, top-level prefixes (and root blobs) →
//! file sets. Per account one container listing (filtered by prefix); per
//! container one delimited blob listing finds the file sets; per file set one
//! listing (bounded by `maxObjectsPerTable`) gives blob count, size and
//! formats, and a few ranged reads give the columns. The Blob service has no
//! call that summarizes several prefixes at once; the per-file-set calls run
//! a few at a time, and only when statistics or columns are asked for. What
//! is not the store's own (file sets, statistics, sampling) is core's
//! `sample::file_sets`; this module lists and reads.

use matih_connector_core::sample::file_sets::{FileSet, FileSetSettings, ObjectStore, Page};
use matih_connector_core::ConnectorError;

use crate::connection::AzureConnection;
use crate::errors::{xml_elements, xml_text};

const PAGE: usize = 5000;

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

impl ObjectStore for AzureConnection {
    const OBJECT: &'static str = "blob";

    fn settings(&self) -> &FileSetSettings {
        &self.cfg.files
    }

    fn configured_schema(&self) -> Option<&str> {
        self.cfg.container.as_deref()
    }

    async fn schemas_page(
        &self,
        prefix: Option<&str>,
        marker: Option<String>,
    ) -> Result<Page<String>, ConnectorError> {
        let page = PAGE.to_string();
        let mut q: Vec<(&str, &str)> = vec![("comp", "list"), ("maxresults", &page)];
        if let Some(p) = prefix {
            q.push(("prefix", p));
        }
        if let Some(m) = &marker {
            q.push(("marker", m));
        }
        let url = self.url(&[], &q);
        let doc = self
            .get_text(
                url,
                &format!("listing containers of account {}", self.cfg.account),
            )
            .await?;
        Ok(Page {
            items: xml_elements(&doc, "Container")
                .into_iter()
                .filter_map(|c| xml_text(c, "Name"))
                .collect(),
            next: next_marker(&doc),
        })
    }

    async fn check_schema(&self, container: &str) -> Result<(), ConnectorError> {
        self.check_access(Some(container)).await
    }

    async fn root_page(
        &self,
        container: &str,
        prefix: Option<&str>,
        marker: Option<String>,
    ) -> Result<Page<FileSet>, ConnectorError> {
        let page = PAGE.to_string();
        let mut q: Vec<(&str, &str)> = vec![
            ("restype", "container"),
            ("comp", "list"),
            ("delimiter", "/"),
            ("maxresults", &page),
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
        let mut out: Vec<FileSet> = xml_elements(&doc, "BlobPrefix")
            .into_iter()
            .filter_map(|p| xml_text(p, "Name"))
            .map(FileSet::Prefix)
            .collect();
        out.extend(
            blobs(&doc)
                .into_iter()
                .map(|(name, size)| FileSet::Object { name, size }),
        );
        Ok(Page {
            items: out,
            next: next_marker(&doc),
        })
    }

    async fn objects_page(
        &self,
        container: &str,
        prefix: &str,
        max: usize,
        marker: Option<String>,
    ) -> Result<Page<(String, u64)>, ConnectorError> {
        let n = max.min(PAGE).to_string();
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
        Ok(Page {
            items: blobs(&doc),
            next: next_marker(&doc),
        })
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
