//! File-set discovery shared by the object-store drivers: the schemas a
//! driver lists (buckets, containers) become catalog schemas, each top-level
//! prefix (and each object at the root) a [`TableKind::FileSet`] table. Per
//! file set one bounded listing gives object count, size and formats, and a
//! few ranged reads give the columns. The per-file-set calls run a few at a
//! time, and only when statistics or columns are asked for.
//!
//! A driver implements [`ObjectStore`] with its own listing pages and
//! reading calls; [`probe`] and [`discover_store`] list the schemas, page
//! through the listings and bound them, and [`discover`] describes the
//! schemas a driver lists itself.

use std::collections::BTreeMap;
use std::future::Future;

use futures_util::stream::{self, StreamExt};
use serde_json::json;

use super::{
    add_csv, add_jsonl, merge_columns, parquet_columns, parquet_footer_len, parquet_metadata,
    Fields, Format, PARQUET_FIRST_READ, PARQUET_MAX_FOOTER, PARQUET_TAIL,
};
use crate::{
    metadata, Catalog, ConnectionConfig, ConnectorError, Depth, DiscoveryRequest, ErrorCode,
    NameFilter, Schema, Table, TableKind,
};

/// How many file sets are described at the same time.
const CONCURRENCY: usize = 4;
/// Schemas (buckets, containers) listed at the most.
const MAX_SCHEMAS: usize = 10_000;
/// File sets listed per schema at the most.
const MAX_FILE_SETS: usize = 10_000;

/// One page of a listing and the token (marker) of the next page, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page<T> {
    /// What the page lists.
    pub items: Vec<T>,
    /// The next page's token; `None` on the last page.
    pub next: Option<String>,
}

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

/// The file-set settings every object-store driver reads from metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileSetSettings {
    /// `maxObjectsPerTable`: objects listed per file set at the most (for
    /// counts, sizes and formats), 1 to 1 000 000, by default 10 000.
    pub max_objects: u64,
    /// `sampleBytes`: bytes read from the start of one CSV, TSV or JSON-lines
    /// file, 1 KiB to 64 MiB, by default 1 MiB.
    pub sample_bytes: u64,
    /// `sampleFiles`: files read per file set for columns, 1 to 100, by
    /// default 3.
    pub sample_files: u64,
}

impl FileSetSettings {
    /// Reads the three settings, without I/O.
    pub fn parse(cfg: &ConnectionConfig) -> Result<Self, ConnectorError> {
        Ok(FileSetSettings {
            max_objects: metadata::u64_in(cfg, "maxObjectsPerTable", 1, 1_000_000)?
                .unwrap_or(10_000),
            sample_bytes: metadata::u64_in(cfg, "sampleBytes", 1024, 64 << 20)?.unwrap_or(1 << 20),
            sample_files: metadata::u64_in(cfg, "sampleFiles", 1, 100)?.unwrap_or(3),
        })
    }
}

/// The listing and reading calls of one object store: one page per call,
/// the paging and its bounds are core's.
pub trait ObjectStore: Sync {
    /// The table property that names a file set made of one root object
    /// (`key`, `object`, `blob`), also the error context of its reads.
    const OBJECT: &'static str;

    /// The connector's file-set settings.
    fn settings(&self) -> &FileSetSettings;

    /// The one schema (bucket, container) the connector names, if it names
    /// one: then no schema is listed.
    fn configured_schema(&self) -> Option<&str>;

    /// One page of the schemas the credentials can list, after `token`;
    /// `prefix` narrows the listing where the store can (it may be ignored:
    /// the filter is applied again).
    fn schemas_page(
        &self,
        prefix: Option<&str>,
        token: Option<String>,
    ) -> impl Future<Output = Result<Page<String>, ConnectorError>> + Send;

    /// The cheapest authorized call on one schema (the access probe).
    fn check_schema(&self, schema: &str)
        -> impl Future<Output = Result<(), ConnectorError>> + Send;

    /// One page of the delimited listing at the root of `schema` (top-level
    /// prefixes and root objects), after `token`, `prefix` narrowing it when
    /// the table filter allows.
    fn root_page(
        &self,
        schema: &str,
        prefix: Option<&str>,
        token: Option<String>,
    ) -> impl Future<Output = Result<Page<FileSet>, ConnectorError>> + Send;

    /// One page of `(name, size)` of the objects under `prefix`, after
    /// `token`, asking for at most `max` of them.
    fn objects_page(
        &self,
        schema: &str,
        prefix: &str,
        max: usize,
        token: Option<String>,
    ) -> impl Future<Output = Result<Page<(String, u64)>, ConnectorError>> + Send;

    /// Bytes `start..=end` of an object.
    fn read_range(
        &self,
        schema: &str,
        key: &str,
        start: u64,
        end: u64,
    ) -> impl Future<Output = Result<Vec<u8>, ConnectorError>> + Send;
}

/// The schemas the filter includes, sorted: the configured one, or those
/// listed (at most 10 000 before filtering).
pub async fn schemas<S: ObjectStore>(
    store: &S,
    filter: &NameFilter,
) -> Result<Vec<String>, ConnectorError> {
    if let Some(s) = store.configured_schema() {
        return Ok(if filter.matches(s) {
            vec![s.to_owned()]
        } else {
            Vec::new()
        });
    }
    let prefix = literal_prefix(filter);
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = store.schemas_page(prefix.as_deref(), token.take()).await?;
        out.extend(page.items);
        token = page.next;
        if token.is_none() || out.len() >= MAX_SCHEMAS {
            break;
        }
    }
    out.retain(|b| filter.matches(b));
    out.sort();
    Ok(out)
}

/// The access probe: the schema listing discovery would make, then
/// [`ObjectStore::check_schema`] on the first schema it finds.
pub async fn probe<S: ObjectStore>(
    store: &S,
    req: &DiscoveryRequest,
) -> Result<(), ConnectorError> {
    match schemas(store, &req.schemas).await?.first() {
        Some(s) => store.check_schema(s).await,
        None => Ok(()),
    }
}

/// The catalog of the store: its [`schemas`], then [`discover`].
pub async fn discover_store<S: ObjectStore>(
    store: &S,
    req: &DiscoveryRequest,
) -> Result<Catalog, ConnectorError> {
    let schemas = schemas(store, &req.schemas).await?;
    discover(store, schemas, req).await
}

/// The file sets at the root of `schema` (at most 10 000). Zero-byte
/// "folder" placeholders are not data.
async fn root<S: ObjectStore>(
    store: &S,
    schema: &str,
    prefix: Option<&str>,
) -> Result<Vec<FileSet>, ConnectorError> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = store.root_page(schema, prefix, token.take()).await?;
        out.extend(
            page.items
                .into_iter()
                .filter(|f| !matches!(f, FileSet::Object { name, .. } if name.ends_with('/'))),
        );
        token = page.next;
        if token.is_none() || out.len() >= MAX_FILE_SETS {
            break;
        }
    }
    out.truncate(MAX_FILE_SETS);
    Ok(out)
}

/// `(name, size)` of the objects under `prefix`, at most
/// `maxObjectsPerTable`; true when more exist.
async fn objects<S: ObjectStore>(
    store: &S,
    schema: &str,
    prefix: &str,
) -> Result<(Vec<(String, u64)>, bool), ConnectorError> {
    let max = store.settings().max_objects as usize;
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = store
            .objects_page(schema, prefix, max - out.len(), token.take())
            .await?;
        out.extend(page.items.into_iter().filter(|(k, _)| !k.ends_with('/')));
        token = page.next;
        if token.is_none() {
            return Ok((out, false));
        }
        if out.len() >= max {
            out.truncate(max);
            return Ok((out, true));
        }
    }
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
            let mut sets = root(store, &name, prefix.as_deref()).await?;
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
            objects(store, schema, p).await?
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
        let settings = *store.settings();
        let candidates: Vec<&(String, u64)> = objs
            .iter()
            .filter(|(k, s)| *s > 0 && (format.is_none() || Format::from_key(k) == format))
            .take(settings.sample_files as usize)
            .collect();
        if let Err(e) = sample(
            store,
            schema,
            &candidates,
            &mut format,
            req.sample_size as usize,
            settings.sample_bytes,
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

    /// A store whose listings come in pages of two, with folder placeholders
    /// among the objects; it records which schema was checked.
    struct Paged {
        configured: Option<&'static str>,
        settings: FileSetSettings,
        checked: std::sync::Mutex<Vec<String>>,
    }

    fn page<T: Clone>(all: &[T], token: Option<String>, max: usize) -> Page<T> {
        let at: usize = token.map_or(0, |t| t.parse().unwrap());
        let end = (at + max.min(2)).min(all.len());
        Page {
            items: all[at..end].to_vec(),
            next: (end < all.len()).then(|| end.to_string()),
        }
    }

    impl ObjectStore for Paged {
        const OBJECT: &'static str = "object";

        fn settings(&self) -> &FileSetSettings {
            &self.settings
        }

        fn configured_schema(&self) -> Option<&str> {
            self.configured
        }

        async fn schemas_page(
            &self,
            _prefix: Option<&str>,
            token: Option<String>,
        ) -> Result<Page<String>, ConnectorError> {
            let all: Vec<String> = ["zeta", "alpha", "orders-eu", "orders-us", "beta"]
                .map(String::from)
                .to_vec();
            Ok(page(&all, token, 2))
        }

        async fn check_schema(&self, schema: &str) -> Result<(), ConnectorError> {
            self.checked.lock().unwrap().push(schema.to_owned());
            Ok(())
        }

        async fn root_page(
            &self,
            _schema: &str,
            _prefix: Option<&str>,
            token: Option<String>,
        ) -> Result<Page<FileSet>, ConnectorError> {
            let obj = |n: &str| FileSet::Object {
                name: n.into(),
                size: 0,
            };
            let all = vec![
                FileSet::Prefix("orders/".into()),
                obj("folder/"),
                obj("readme.json"),
                FileSet::Prefix("users/".into()),
            ];
            Ok(page(&all, token, 2))
        }

        async fn objects_page(
            &self,
            _schema: &str,
            _prefix: &str,
            max: usize,
            token: Option<String>,
        ) -> Result<Page<(String, u64)>, ConnectorError> {
            let all: Vec<(String, u64)> =
                ["orders/", "orders/a.csv", "orders/b.csv", "orders/c.csv"]
                    .iter()
                    .map(|k| (k.to_string(), 10))
                    .collect();
            Ok(page(&all, token, max))
        }

        async fn read_range(
            &self,
            _schema: &str,
            _key: &str,
            _start: u64,
            _end: u64,
        ) -> Result<Vec<u8>, ConnectorError> {
            Ok(Vec::new())
        }
    }

    fn settings(max_objects: u64) -> FileSetSettings {
        FileSetSettings {
            max_objects,
            ..FileSetSettings::parse(&ConnectionConfig::default()).unwrap()
        }
    }

    #[test]
    fn settings_defaults_and_bounds() {
        let cfg = |v: serde_json::Value| ConnectionConfig {
            metadata: serde_json::from_value(v).unwrap(),
            ..Default::default()
        };
        let d = FileSetSettings::parse(&cfg(json!({}))).unwrap();
        assert_eq!(
            (d.max_objects, d.sample_bytes, d.sample_files),
            (10_000, 1 << 20, 3)
        );
        let s = FileSetSettings::parse(&cfg(
            json!({"maxObjectsPerTable": 5, "sampleBytes": "2048", "sampleFiles": 1}),
        ))
        .unwrap();
        assert_eq!(
            (s.max_objects, s.sample_bytes, s.sample_files),
            (5, 2048, 1)
        );
        for bad in [
            json!({"maxObjectsPerTable": 0}),
            json!({"sampleBytes": 10}),
            json!({"sampleFiles": 101}),
        ] {
            let e = FileSetSettings::parse(&cfg(bad.clone())).unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidConfiguration, "{bad}");
        }
    }

    #[tokio::test]
    async fn listings_are_paged_filtered_and_bounded() {
        let store = Paged {
            configured: None,
            settings: settings(2),
            checked: Default::default(),
        };
        let orders = NameFilter {
            include: vec!["orders-*".into()],
            exclude: vec![],
        };
        assert_eq!(
            schemas(&store, &orders).await.unwrap(),
            vec!["orders-eu", "orders-us"]
        );
        let all = schemas(&store, &NameFilter::default()).await.unwrap();
        assert_eq!(all, vec!["alpha", "beta", "orders-eu", "orders-us", "zeta"]);
        let req = DiscoveryRequest {
            schemas: orders,
            ..Default::default()
        };
        probe(&store, &req).await.unwrap();
        assert_eq!(*store.checked.lock().unwrap(), vec!["orders-eu"]);
        // The folder placeholder is no file set.
        let sets = root(&store, "s", None).await.unwrap();
        assert_eq!(
            sets.iter().map(FileSet::name).collect::<Vec<_>>(),
            vec!["orders", "readme.json", "users"]
        );
        // Bounded by maxObjectsPerTable, and said so.
        let (objs, truncated) = objects(&store, "s", "orders/").await.unwrap();
        assert_eq!(objs.len(), 2);
        assert!(truncated);
        assert!(objs.iter().all(|(k, _)| !k.ends_with('/')));
        let store = Paged {
            configured: Some("only"),
            settings: settings(10),
            checked: Default::default(),
        };
        assert_eq!(
            schemas(&store, &NameFilter::default()).await.unwrap(),
            vec!["only"]
        );
        assert!(schemas(&store, &req.schemas).await.unwrap().is_empty());
        probe(&store, &req).await.unwrap();
        assert!(store.checked.lock().unwrap().is_empty());
        let (objs, truncated) = objects(&store, "s", "orders/").await.unwrap();
        assert_eq!(objs.len(), 3);
        assert!(!truncated);
    }
}
