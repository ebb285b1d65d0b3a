//! Discovery: buckets → schemas, top-level prefixes (and root objects) →
//! file sets. Per bucket one delimited listing finds the file sets; per file
//! set one listing (bounded by `maxObjectsPerTable`) gives object count, size
//! and formats, and a few ranged GETs give the columns. S3 has no call that
//! summarizes several prefixes at once; the per-file-set calls run a few at a
//! time, and only when statistics or columns are asked for.

use std::collections::BTreeMap;

use futures_util::stream::{self, StreamExt};
use matih_connector_core::{
    with_timeout, Catalog, ConnectorError, Depth, DiscoveryRequest, ErrorCode, NameFilter, Schema,
    Table, TableKind,
};
use serde_json::json;

use crate::connection::S3Connection;
use matih_connector_core::aws::{from_sdk, parse_error};
use matih_connector_core::sample::{
    add_csv, add_jsonl, merge_columns, parquet_columns, parquet_footer_len, parquet_metadata,
    Fields, Format, PARQUET_FIRST_READ, PARQUET_MAX_FOOTER, PARQUET_TAIL,
};

const MAX_BUCKETS: usize = 10_000;
const MAX_TABLES_PER_BUCKET: usize = 10_000;
const CONCURRENCY: usize = 4;

/// A file set: a top-level prefix, or one object at the bucket's root.
#[derive(Clone, Debug)]
enum Entry {
    Prefix(String),
    Object { key: String, size: u64 },
}

impl Entry {
    fn name(&self) -> &str {
        match self {
            Entry::Prefix(p) => p.strip_suffix('/').unwrap_or(p),
            Entry::Object { key, .. } => key,
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
    let conn: &S3Connection = conn;
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
    conn: &S3Connection,
    bucket: &str,
    filter: &NameFilter,
) -> Result<Vec<Entry>, ConnectorError> {
    let prefix = literal_prefix(filter);
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let what = format!("ListObjectsV2 {bucket}");
        let page = with_timeout(conn.cfg.aws.timeouts.query(), &what, async {
            conn.client
                .list_objects_v2()
                .bucket(bucket)
                .delimiter("/")
                .set_prefix(prefix.clone())
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
                .map(|p| Entry::Prefix(p.to_owned())),
        );
        out.extend(
            page.contents()
                .iter()
                .filter_map(|o| Some((o.key()?, o.size().unwrap_or(0))))
                // Zero-byte "folder" markers are not data.
                .filter(|(k, _)| !k.ends_with('/'))
                .map(|(k, s)| Entry::Object {
                    key: k.to_owned(),
                    size: s.max(0) as u64,
                }),
        );
        token = page.next_continuation_token().map(str::to_owned);
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
    conn: &S3Connection,
    bucket: &str,
    prefix: &str,
) -> Result<(Vec<(String, u64)>, bool), ConnectorError> {
    let max = conn.cfg.max_objects as usize;
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let what = format!("ListObjectsV2 {bucket}/{prefix}");
        let page = with_timeout(conn.cfg.aws.timeouts.query(), &what, async {
            conn.client
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
                .filter_map(|o| Some((o.key()?.to_owned(), o.size().unwrap_or(0).max(0) as u64)))
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

/// Bytes `start..=end` of an object, bounded by the query time limit.
async fn read_range(
    conn: &S3Connection,
    bucket: &str,
    key: &str,
    start: u64,
    end: u64,
) -> Result<Vec<u8>, ConnectorError> {
    let what = format!("GetObject {bucket}/{key}");
    with_timeout(conn.cfg.aws.timeouts.query(), &what, async {
        let out = conn
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

async fn table(
    conn: &S3Connection,
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
        Entry::Object { key, size } => {
            t.properties.insert("key".into(), json!(key));
            (vec![(key.clone(), *size)], false)
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
        match sample(
            conn,
            bucket,
            &candidates,
            &mut format,
            req.sample_size as usize,
            &mut t,
        )
        .await
        {
            Ok(()) => {}
            // A file set the keys may list but not read, or a file that is
            // not what its name says, still gets listed.
            Err(e) => {
                t.properties.insert(
                    "sampleError".into(),
                    json!({"code": e.code(), "message": e.message()}),
                );
            }
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
    conn: &S3Connection,
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
                let head = read_range(conn, bucket, key, 0, size.min(4096) - 1).await?;
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
                let bytes = read_range(conn, bucket, key, 0, n - 1).await?;
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
                let mut tail = read_range(conn, bucket, key, size - first, size - 1).await?;
                let need = parquet_footer_len(&tail)? + PARQUET_TAIL as u64;
                if need > size || need > PARQUET_MAX_FOOTER {
                    return Err(ConnectorError::new(
                        ErrorCode::ProtocolError,
                        format!("{key}: Parquet footer of {need} bytes is not read (limit {PARQUET_MAX_FOOTER})"),
                    ));
                }
                if need > first {
                    tail = read_range(conn, bucket, key, size - need, size - 1).await?;
                }
                let meta = parquet_metadata(&tail).map_err(|e| e.with_context("key", key))?;
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
        assert_eq!(literal_prefix(&f(&["orders"])).as_deref(), Some("orders"));
        assert_eq!(literal_prefix(&f(&["a\\*b*"])).as_deref(), Some("a*b"));
        assert_eq!(literal_prefix(&f(&["*x"])), None);
        assert_eq!(literal_prefix(&f(&["a*", "b*"])), None);
        assert_eq!(literal_prefix(&f(&[])), None);
    }

    #[test]
    fn entry_names() {
        assert_eq!(Entry::Prefix("orders/".into()).name(), "orders");
        assert_eq!(
            Entry::Object {
                key: "readme.json".into(),
                size: 1
            }
            .name(),
            "readme.json"
        );
    }
}
