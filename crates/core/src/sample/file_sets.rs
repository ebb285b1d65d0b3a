//! File-set discovery shared by the object-store drivers: the schemas a
//! driver lists (buckets, containers) become catalog schemas, each top-level
//! prefix (and each object at the root) a [`TableKind::FileSet`] table. Per
//! file set one bounded listing gives object count, size and formats, and a
//! few ranged reads give the columns. The per-file-set calls run a few at a
//! time, and only when statistics or columns are asked for.
//!
//! A driver implements [`ObjectStore`] with its own listing and reading calls
//! and hands its schemas to [`discover`].

use std::collections::BTreeMap;
use std::future::Future;

use futures_util::stream::{self, StreamExt};
use serde_json::json;

use super::{
    add_csv, add_jsonl, merge_columns, parquet_columns, parquet_footer_len, parquet_metadata,
    Fields, Format, PARQUET_FIRST_READ, PARQUET_MAX_FOOTER, PARQUET_TAIL,
};
use crate::{
    Catalog, ConnectorError, Depth, DiscoveryRequest, ErrorCode, NameFilter, Schema, Table,
    TableKind,
};

/// How many file sets are described at the same time.
const CONCURRENCY: usize = 4;

/// A file set found at a schema's root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileSet {
    /// A top-level prefix, with its trailing `/` (`orders/`).
    Prefix(String),
    /// One object at the root.
    Object {
        /// The object's name (key).
        name: String,
        /// Its size in bytes.
        size: u64,
    },
}

impl FileSet {
    /// The table name: the prefix without its `/`, or the object's name.
    pub fn name(&self) -> &str {
        match self {
            FileSet::Prefix(p) => p.strip_suffix('/').unwrap_or(p),
            FileSet::Object { name, .. } => name,
        }
    }
}

/// The literal start shared by every name the filter includes, for a
/// listing's `prefix` parameter: only with exactly one include pattern.
pub fn literal_prefix(filter: &NameFilter) -> Option<String> {
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

/// Bounds of a file set's sample, from the driver's settings.
#[derive(Clone, Copy, Debug)]
pub struct SampleLimits {
    /// Files read per file set at the most.
    pub files: usize,
    /// Bytes read from the start of a CSV, TSV or JSON-lines file.
    pub head_bytes: u64,
}

/// The listing and reading calls of one object store.
pub trait ObjectStore: Sync {
    /// The table property that names a file set made of one root object
    /// (`key`, `object`, `blob`), also the error context of its reads.
    const OBJECT: &'static str;

    /// Sample bounds.
    fn sample_limits(&self) -> SampleLimits;

    /// The file sets at the root of `schema` (one delimited listing, bounded
    /// by the driver), `prefix` narrowing the listing when the table filter
    /// allows. Zero-byte "folder" placeholders are not file sets.
    fn root(
        &self,
        schema: &str,
        prefix: Option<&str>,
    ) -> impl Future<Output = Result<Vec<FileSet>, ConnectorError>> + Send;

    /// `(name, size)` of the objects under `prefix`, bounded by the driver's
    /// `maxObjectsPerTable`; true when more exist.
    fn objects(
        &self,
        schema: &str,
        prefix: &str,
    ) -> impl Future<Output = Result<(Vec<(String, u64)>, bool), ConnectorError>> + Send;

    /// Bytes `start..=end` of an object.
    fn read_range(
        &self,
        schema: &str,
        key: &str,
        start: u64,
        end: u64,
    ) -> impl Future<Output = Result<Vec<u8>, ConnectorError>> + Send;
}

/// The catalog of `schemas` (already listed and filtered by the driver): at
/// [`Depth::Tables`] and deeper their file sets, with statistics and sampled
/// columns as the request asks.
pub async fn discover<S: ObjectStore>(
    store: &S,
    schemas: Vec<String>,
    req: &DiscoveryRequest,
) -> Result<Catalog, ConnectorError> {
    let mut catalog = Catalog::default();
    for name in schemas {
        let mut schema = Schema {
            name: name.clone(),
            comment: None,
            tables: Vec::new(),
        };
        if req.depth >= Depth::Tables {
            let prefix = literal_prefix(&req.tables);
            let mut sets = store.root(&name, prefix.as_deref()).await?;
            sets.retain(|e| req.tables.matches(e.name()));
            let results: Vec<Result<Table, ConnectorError>> = stream::iter(sets)
                .map(|e| table(store, &name, e, req))
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

async fn table<S: ObjectStore>(
    store: &S,
    schema: &str,
    set: FileSet,
    req: &DiscoveryRequest,
) -> Result<Table, ConnectorError> {
    let mut t = Table::new(set.name(), TableKind::FileSet);
    let (objs, truncated) = match &set {
        FileSet::Prefix(p) => {
            t.properties.insert("prefix".into(), json!(p));
            if !req.statistics && req.depth < Depth::Columns {
                return Ok(t);
            }
            store.objects(schema, p).await?
        }
        FileSet::Object { name, size } => {
            t.properties.insert(S::OBJECT.into(), json!(name));
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
        let limits = store.sample_limits();
        let candidates: Vec<&(String, u64)> = objs
            .iter()
            .filter(|(k, s)| *s > 0 && (format.is_none() || Format::from_key(k) == format))
            .take(limits.files)
            .collect();
        if let Err(e) = sample(
            store,
            schema,
            &candidates,
            &mut format,
            req.sample_size as usize,
            limits.head_bytes,
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
async fn sample<S: ObjectStore>(
    store: &S,
    schema: &str,
    candidates: &[&(String, u64)],
    format: &mut Option<Format>,
    max_rows: usize,
    head_len: u64,
    t: &mut Table,
) -> Result<(), ConnectorError> {
    let mut fields: Option<Fields> = None;
    let mut rows = 0usize;
    let mut files = 0usize;
    let mut parquet_rows: i64 = 0;
    for (key, size) in candidates {
        let (key, size) = (key.as_str(), *size);
        let fmt = match *format {
            Some(f) => f,
            None => {
                let head = store.read_range(schema, key, 0, size.min(4096) - 1).await?;
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
                let bytes = store.read_range(schema, key, 0, n - 1).await?;
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
                let mut tail = store
                    .read_range(schema, key, size - first, size - 1)
                    .await?;
                let need = parquet_footer_len(&tail)? + PARQUET_TAIL as u64;
                if need > size || need > PARQUET_MAX_FOOTER {
                    return Err(ConnectorError::new(
                        ErrorCode::ProtocolError,
                        format!("{key}: Parquet footer of {need} bytes is not read (limit {PARQUET_MAX_FOOTER})"),
                    ));
                }
                if need > first {
                    tail = store.read_range(schema, key, size - need, size - 1).await?;
                }
                let meta = parquet_metadata(&tail).map_err(|e| e.with_context(S::OBJECT, key))?;
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
    fn file_set_names() {
        assert_eq!(FileSet::Prefix("orders/".into()).name(), "orders");
        let object = FileSet::Object {
            name: "readme.json".into(),
            size: 1,
        };
        assert_eq!(object.name(), "readme.json");
    }
}
