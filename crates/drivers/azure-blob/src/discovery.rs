//! Discovery: containers → schemas, top-level prefixes (and root blobs) →
//! file sets. Per account one container listing (filtered by prefix); per
//! container one delimited blob listing finds the file sets; per file set one
//! listing (bounded by `maxObjectsPerTable`) gives blob count, size and
//! formats, and a few ranged reads give the columns. The Blob service has no
//! call that summarizes several prefixes at once; the per-file-set calls run
//! a few at a time, and only when statistics or columns are asked for.

use std::collections::BTreeMap;

use futures_util::stream::{self, StreamExt};
use matih_connector_core::{
    Catalog, ConnectorError, Depth, DiscoveryRequest, ErrorCode, NameFilter, Schema, Table,
    TableKind,
};
use serde_json::json;

use crate::connection::AzureConnection;
use crate::errors::{xml_elements, xml_text};
use matih_connector_core::sample::{
    add_csv, add_jsonl, merge_columns, parquet_columns, parquet_footer_len, parquet_metadata,
    Fields, Format, PARQUET_FIRST_READ, PARQUET_MAX_FOOTER, PARQUET_TAIL,
};

const MAX_BUCKETS: usize = 10_000;
const MAX_TABLES_PER_BUCKET: usize = 10_000;
const CONCURRENCY: usize = 4;
const PAGE: &str = "5000";

/// A file set: a top-level prefix, or one object at the bucket's root.
#[derive(Clone, Debug)]
enum Entry {
    Prefix(String),
    Object { name: String, size: u64 },
}

impl Entry {
    fn name(&self) -> &str {
        match self {
            Entry::Prefix(p) => p.strip_suffix('/').unwrap_or(p),
            Entry::Object { name, .. } => name,
        }
    }
}

/// The literal start shared by every name the filter includes, for the
/// listing's `prefix` parameter: only with exactly one include pattern.
fn literal_prefix(filter: &NameFilter) -> Option<String> {
    let [pattern] = filter.include.as_slice() else {
        return None;
    };
    let mut out = String::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '*' | '?' => break,
            '\\' => match chars.next() {
                Some(n) => out.push(n),
                None => break,
            },
            c => out.push(c),
        }
    }
    (!out.is_empty()).then_some(out)
}

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
    let conn: &AzureConnection = conn;
    let mut catalog = Catalog::default();
    for bucket in buckets(conn, &req.schemas).await? {
        let mut schema = Schema {
            name: bucket.clone(),
            comment: None,
            tables: Vec::new(),
        };
        if req.depth >= Depth::Tables {
            let entries = top_level(conn, &bucket, &req.tables).await?;
            let results: Vec<Result<Table, ConnectorError>> = stream::iter(entries)
                .map(|e| table(conn, &bucket, e, req))
                .buffered(CONCURRENCY)
                .collect()
                .await;
            for t in results {
                schema.tables.push(t?);
            }
        }
        catalog.schemas.push(schema);
    }
    catalog.sort();
    Ok(catalog)
}

/// One delimited listing of the container's root.
async fn top_level(
    conn: &AzureConnection,
    container: &str,
    filter: &NameFilter,
) -> Result<Vec<Entry>, ConnectorError> {
    let prefix = literal_prefix(filter);
    let mut out = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let mut q: Vec<(&str, &str)> = vec![
            ("restype", "container"),
            ("comp", "list"),
            ("delimiter", "/"),
            ("maxresults", PAGE),
        ];
        if let Some(p) = &prefix {
            q.push(("prefix", p));
        }
        if let Some(m) = &marker {
            q.push(("marker", m));
        }
        let url = conn.url(&[container], &q);
        let doc = conn
            .get_text(url, &format!("listing blobs of {container}"))
            .await
            .map_err(|e| e.with_context("container", container))?;
        out.extend(
            xml_elements(&doc, "BlobPrefix")
                .into_iter()
                .filter_map(|p| xml_text(p, "Name"))
                .map(Entry::Prefix),
        );
        out.extend(
            blobs(&doc)
                .into_iter()
                // Zero-byte "folder" placeholders are not data.
                .filter(|(n, _)| !n.ends_with('/'))
                .map(|(name, size)| Entry::Object { name, size }),
        );
        marker = next_marker(&doc);
        if marker.is_none() || out.len() >= MAX_TABLES_PER_BUCKET {
            break;
        }
    }
    out.truncate(MAX_TABLES_PER_BUCKET);
    out.retain(|e| filter.matches(e.name()));
    Ok(out)
}

/// Blobs under a prefix, at most `maxObjectsPerTable`; true when more exist.
async fn objects(
    conn: &AzureConnection,
    container: &str,
    prefix: &str,
) -> Result<(Vec<(String, u64)>, bool), ConnectorError> {
    let max = conn.cfg.max_objects as usize;
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
        let url = conn.url(&[container], &q);
        let doc = conn
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

async fn table(
    conn: &AzureConnection,
    bucket: &str,
    entry: Entry,
    req: &DiscoveryRequest,
) -> Result<Table, ConnectorError> {
    let mut t = Table::new(entry.name(), TableKind::FileSet);
    let (objs, truncated) = match &entry {
        Entry::Prefix(p) => {
            t.properties.insert("prefix".into(), json!(p));
            if !req.statistics && req.depth < Depth::Columns {
                return Ok(t);
            }
            objects(conn, bucket, p).await?
        }
        Entry::Object { name, size } => {
            t.properties.insert("blob".into(), json!(name));
            (vec![(name.clone(), *size)], false)
        }
    };
    if req.statistics {
        t.size_bytes = Some(objs.iter().map(|(_, s)| s).sum());
        t.properties.insert("objectCount".into(), json!(objs.len()));
        if truncated {
            // Counts and size cover the first maxObjectsPerTable objects only.
            t.properties.insert("listingTruncated".into(), json!(true));
        }
    }
    let mut counts: BTreeMap<Format, usize> = BTreeMap::new();
    for (k, _) in &objs {
        if let Some(f) = Format::from_key(k) {
            *counts.entry(f).or_default() += 1;
        }
    }
    let mut format = counts
        .iter()
        .max_by_key(|(f, n)| (**n, std::cmp::Reverse(**f)))
        .map(|(f, _)| *f);
    if counts.len() > 1 {
        let m: BTreeMap<&str, usize> = counts.iter().map(|(f, n)| (f.name(), *n)).collect();
        t.properties.insert("formats".into(), json!(m));
    }
    if req.depth >= Depth::Columns && req.sample_size > 0 {
        let candidates: Vec<&(String, u64)> = objs
            .iter()
            .filter(|(k, s)| *s > 0 && (format.is_none() || Format::from_key(k) == format))
            .take(conn.cfg.sample_files as usize)
            .collect();
        if let Err(e) = sample(
            conn,
            bucket,
            &candidates,
            &mut format,
            req.sample_size as usize,
            &mut t,
        )
        .await
        {
            // A file set the credentials may list but not read, or a file that
            // is not what its name says, still gets listed.
            t.properties.insert(
                "sampleError".into(),
                json!({"code": e.code(), "message": e.message()}),
            );
        }
    }
    t.properties.insert(
        "format".into(),
        json!(format.map(Format::name).unwrap_or("unknown")),
    );
    Ok(t)
}

/// Reads the candidates' samples into the table's columns.
async fn sample(
    conn: &AzureConnection,
    bucket: &str,
    candidates: &[&(String, u64)],
    format: &mut Option<Format>,
    max_rows: usize,
    t: &mut Table,
) -> Result<(), ConnectorError> {
    let head_len = conn.cfg.sample_bytes;
    let mut fields: Option<Fields> = None;
    let mut rows = 0usize;
    let mut files = 0usize;
    let mut parquet_rows: i64 = 0;
    for (key, size) in candidates {
        let (key, size) = (key.as_str(), *size);
        let fmt = match *format {
            Some(f) => f,
            None => {
                let head = conn.read_range(bucket, key, 0, size.min(4096) - 1).await?;
                match Format::sniff(&head) {
                    Some(f) => {
                        *format = Some(f);
                        f
                    }
                    None => return Ok(()),
                }
            }
        };
        files += 1;
        match fmt {
            Format::Csv | Format::Tsv | Format::Jsonl => {
                let n = size.min(head_len);
                let bytes = conn.read_range(bucket, key, 0, n - 1).await?;
                let cut = size > head_len;
                let f = fields.get_or_insert_with(|| Fields::new(fmt == Format::Jsonl));
                rows += match fmt {
                    Format::Jsonl => add_jsonl(f, &bytes, cut, max_rows - rows),
                    Format::Tsv => add_csv(f, &bytes, '\t', cut, max_rows - rows),
                    _ => add_csv(f, &bytes, ',', cut, max_rows - rows),
                };
                if rows >= max_rows {
                    break;
                }
            }
            Format::Parquet => {
                let first = size.min(PARQUET_FIRST_READ);
                let mut tail = conn.read_range(bucket, key, size - first, size - 1).await?;
                let need = parquet_footer_len(&tail)? + PARQUET_TAIL as u64;
                if need > size || need > PARQUET_MAX_FOOTER {
                    return Err(ConnectorError::new(
                        ErrorCode::ProtocolError,
                        format!("{key}: Parquet footer of {need} bytes is not read (limit {PARQUET_MAX_FOOTER})"),
                    ));
                }
                if need > first {
                    tail = conn.read_range(bucket, key, size - need, size - 1).await?;
                }
                let meta = parquet_metadata(&tail).map_err(|e| e.with_context("blob", key))?;
                parquet_rows += meta.file_metadata().num_rows();
                let cols = parquet_columns(&meta);
                if t.columns.is_empty() {
                    t.columns = cols;
                } else {
                    merge_columns(&mut t.columns, cols);
                }
            }
        }
    }
    if let Some(f) = fields {
        t.columns = f.columns();
        t.properties
            .insert("sampledRecords".into(), json!(f.records));
    }
    if *format == Some(Format::Parquet) && files > 0 {
        t.properties
            .insert("rowsInSampledFiles".into(), json!(parquet_rows));
    }
    t.properties.insert("sampledFiles".into(), json!(files));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_prefixes_for_pushdown() {
        let f = |inc: &[&str]| NameFilter {
            include: inc.iter().map(|s| s.to_string()).collect(),
            exclude: vec![],
        };
        assert_eq!(literal_prefix(&f(&["ord*"])).as_deref(), Some("ord"));
        assert_eq!(literal_prefix(&f(&["a\\*b*"])).as_deref(), Some("a*b"));
        assert_eq!(literal_prefix(&f(&["*x"])), None);
        assert_eq!(literal_prefix(&f(&["a*", "b*"])), None);
    }

    #[test]
    fn listing_pages() {
        let doc = "<?xml version=\"1.0\" encoding=\"utf-8\"?><EnumerationResults ServiceEndpoint=\"http://127.0.0.1:10000/devstoreaccount1\" ContainerName=\"c\"><Prefix/><Delimiter>/</Delimiter><Blobs><Blob><Name>readme.json</Name><Properties><Content-Length>32</Content-Length></Properties></Blob><BlobPrefix><Name>orders/</Name></BlobPrefix></Blobs><NextMarker>2!80!abc</NextMarker></EnumerationResults>";
        assert_eq!(blobs(doc), vec![("readme.json".to_owned(), 32)]);
        assert_eq!(next_marker(doc).as_deref(), Some("2!80!abc"));
        assert_eq!(
            next_marker("<EnumerationResults><Blobs></Blobs><NextMarker /></EnumerationResults>"),
            None
        );
        assert_eq!(Entry::Prefix("orders/".into()).name(), "orders");
    }
}
