//! Discovery: buckets → schemas, top-level prefixes (and root objects) →
//! file sets. Per project one bucket listing (filtered by prefix); per bucket
//! one delimited object listing finds the file sets; per file set one listing
//! (bounded by `maxObjectsPerTable`) gives object count, size and formats,
//! and a few ranged media downloads give the columns. The JSON API has no
//! call that summarizes several prefixes at once; the per-file-set calls run
//! a few at a time, and only when statistics or columns are asked for.

use std::collections::BTreeMap;

use futures_util::stream::{self, StreamExt};
use matih_connector_core::{
    Catalog, ConnectorError, Depth, DiscoveryRequest, ErrorCode, NameFilter, Schema, Table,
    TableKind,
};
use serde_json::{json, Value};

use crate::connection::GcsConnection;
use matih_connector_core::sample::{
    add_csv, add_jsonl, merge_columns, parquet_columns, parquet_footer_len, parquet_metadata,
    Fields, Format, PARQUET_FIRST_READ, PARQUET_MAX_FOOTER, PARQUET_TAIL,
};

const MAX_BUCKETS: usize = 10_000;
const MAX_TABLES_PER_BUCKET: usize = 10_000;
const CONCURRENCY: usize = 4;
const PAGE: &str = "1000";

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
    let conn: &GcsConnection = conn;
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

/// One delimited listing of the bucket's root.
async fn top_level(
    conn: &GcsConnection,
    bucket: &str,
    filter: &NameFilter,
) -> Result<Vec<Entry>, ConnectorError> {
    let prefix = literal_prefix(filter);
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut q: Vec<(&str, &str)> = vec![
            ("delimiter", "/"),
            ("maxResults", PAGE),
            ("fields", "items(name,size),prefixes,nextPageToken"),
        ];
        if let Some(p) = &prefix {
            q.push(("prefix", p));
        }
        if let Some(t) = &token {
            q.push(("pageToken", t));
        }
        let url = conn.url(&["b", bucket, "o"], &q);
        let page = conn
            .get_json(url, &format!("listing objects of {bucket}"))
            .await
            .map_err(|e| e.with_context("bucket", bucket))?;
        if let Some(p) = page.get("prefixes").and_then(Value::as_array) {
            out.extend(
                p.iter()
                    .filter_map(Value::as_str)
                    .map(|p| Entry::Prefix(p.to_owned())),
            );
        }
        if let Some(items) = page.get("items").and_then(Value::as_array) {
            out.extend(
                items
                    .iter()
                    .filter_map(|o| Some((o.get("name")?.as_str()?, size_of(o))))
                    // Zero-byte "folder" placeholders are not data.
                    .filter(|(n, _)| !n.ends_with('/'))
                    .map(|(n, size)| Entry::Object {
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
    out.retain(|e| filter.matches(e.name()));
    Ok(out)
}

/// Objects under a prefix, at most `maxObjectsPerTable`; true when more exist.
async fn objects(
    conn: &GcsConnection,
    bucket: &str,
    prefix: &str,
) -> Result<(Vec<(String, u64)>, bool), ConnectorError> {
    let max = conn.cfg.max_objects as usize;
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
        let url = conn.url(&["b", bucket, "o"], &q);
        let page = conn
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

async fn table(
    conn: &GcsConnection,
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
            t.properties.insert("object".into(), json!(name));
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
    conn: &GcsConnection,
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
                let meta = parquet_metadata(&tail).map_err(|e| e.with_context("object", key))?;
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
    fn sizes_and_entries() {
        assert_eq!(size_of(&json!({"size": "123"})), 123);
        assert_eq!(size_of(&json!({"size": 7})), 7);
        assert_eq!(size_of(&json!({})), 0);
        assert_eq!(Entry::Prefix("orders/".into()).name(), "orders");
        assert_eq!(next_token(&json!({"nextPageToken": ""})), None);
    }
}
