//! Discovery: databases → schemas, collections and views → tables, fields
//! inferred from a bounded `$sample`.
//!
//! Calls per discovery: one listDatabases, one listCollections per database,
//! and per collection one `$collStats` (statistics) and one `$sample`
//! (columns), at most four collections at a time, each bounded by the query
//! timeout (maxTimeMS on the server, a deadline on the client).

use std::collections::BTreeMap;

use futures_util::{StreamExt, TryStreamExt};
use matih_connector_core::{
    with_timeout, Catalog, Column, ConnectorError, Depth, DiscoveryRequest, Schema, Table,
    TableKind,
};
use mongodb::bson::{doc, Bson, Document, RawDocumentBuf};

use crate::connection::MongoConnection;
use crate::errors::parse_error;
use crate::types::Observed;

const SYSTEM_DATABASES: &[&str] = &["admin", "local", "config"];
const MAX_SAMPLE: u32 = 10_000;
/// Bytes of sampled documents kept per collection; the rest of the sample is
/// not read.
const MAX_SAMPLE_BYTES: usize = 16 * 1024 * 1024;
const PARALLEL: usize = 4;

async fn schema_names(
    conn: &MongoConnection,
    req: &DiscoveryRequest,
) -> Result<Vec<String>, ConnectorError> {
    let names = match &conn.opts.database {
        Some(db) => vec![db.clone()],
        None => conn.database_names(None).await?,
    };
    let mut names: Vec<String> = names
        .into_iter()
        .filter(|n| req.include_system || !SYSTEM_DATABASES.contains(&n.as_str()))
        .filter(|n| req.schemas.matches(n))
        .collect();
    names.sort();
    Ok(names)
}

pub(crate) async fn probe(
    conn: &MongoConnection,
    req: &DiscoveryRequest,
) -> Result<(), ConnectorError> {
    let names = schema_names(conn, req).await?;
    if let Some(db) = names.first() {
        conn.command(
            db,
            doc! {"listCollections": 1, "nameOnly": true, "authorizedCollections": true},
            "listing collections",
        )
        .await?;
    }
    Ok(())
}

struct Listed {
    name: String,
    kind: TableKind,
    view_on: Option<String>,
}

async fn list_collections(
    conn: &MongoConnection,
    db: &str,
    req: &DiscoveryRequest,
) -> Result<Vec<Listed>, ConnectorError> {
    let what = format!("listing collections of {db:?}");
    let database = conn.client.database(db);
    let docs: Vec<Document> = with_timeout(conn.opts.query_timeout, &what, async {
        let cursor = database
            .run_cursor_command(
                doc! {"listCollections": 1, "nameOnly": false, "authorizedCollections": true},
            )
            .await
            .map_err(|e| parse_error(e, &what))?;
        cursor
            .try_collect()
            .await
            .map_err(|e| parse_error(e, &what))
    })
    .await?;
    let mut out = Vec::new();
    for d in docs {
        let Ok(name) = d.get_str("name") else {
            continue;
        };
        if !req.include_system && name.starts_with("system.") {
            continue;
        }
        if !req.tables.matches(name) {
            continue;
        }
        let view_on = d
            .get_document("options")
            .ok()
            .and_then(|o| o.get_str("viewOn").ok())
            .map(str::to_owned);
        let kind = if d.get_str("type") == Ok("view") || view_on.is_some() {
            TableKind::View
        } else {
            TableKind::Collection
        };
        out.push(Listed {
            name: name.to_owned(),
            kind,
            view_on,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

fn as_u64(v: Option<&Bson>) -> Option<u64> {
    match v? {
        Bson::Int32(n) => u64::try_from(*n).ok(),
        Bson::Int64(n) => u64::try_from(*n).ok(),
        Bson::Double(f) if *f >= 0.0 => Some(*f as u64),
        _ => None,
    }
}

/// Document count and bytes from `$collStats` storageStats: `count`, and
/// `storageSize` (bytes allocated on disk, compressed) or, where a server
/// reports none, `size` (uncompressed BSON). Falls back to
/// estimatedDocumentCount (collection metadata) when `$collStats` is refused.
async fn statistics(
    conn: &MongoConnection,
    db: &str,
    coll: &str,
) -> Result<(Option<u64>, Option<u64>), ConnectorError> {
    let limit = conn.opts.query_timeout;
    let c = conn.client.database(db).collection::<Document>(coll);
    let what = format!("reading statistics of {db}.{coll}");
    let pipeline = vec![doc! {"$collStats": {"storageStats": {}}}];
    let stats: Result<Vec<Document>, ConnectorError> = with_timeout(limit, &what, async {
        let cursor = c
            .aggregate(pipeline)
            .max_time(limit)
            .await
            .map_err(|e| parse_error(e, &what))?;
        cursor
            .take(1)
            .try_collect()
            .await
            .map_err(|e| parse_error(e, &what))
    })
    .await;
    if let Ok(docs) = stats {
        if let Some(s) = docs
            .first()
            .and_then(|d| d.get_document("storageStats").ok())
        {
            let size = as_u64(s.get("storageSize"))
                .filter(|n| *n > 0)
                .or(as_u64(s.get("size")));
            return Ok((as_u64(s.get("count")), size));
        }
    }
    let count = with_timeout(limit, &what, async {
        c.estimated_document_count()
            .max_time(limit)
            .await
            .map_err(|e| parse_error(e, &what))
    })
    .await?;
    Ok((Some(count), None))
}

/// Columns from a `$sample` of at most `size` documents and
/// [`MAX_SAMPLE_BYTES`], in order of first appearance with `_id` first.
async fn sample_columns(
    conn: &MongoConnection,
    db: &str,
    coll: &str,
    size: u32,
) -> Result<(Vec<Column>, usize), ConnectorError> {
    let limit = conn.opts.query_timeout;
    let c = conn.client.database(db).collection::<Document>(coll);
    let what = format!("sampling {db}.{coll}");
    let size = size.min(MAX_SAMPLE);
    let docs: Vec<Document> = with_timeout(limit, &what, async {
        let mut cursor = c
            .aggregate(vec![doc! {"$sample": {"size": size as i32}}])
            .max_time(limit)
            .batch_size(size.min(1000))
            .await
            .map_err(|e| parse_error(e, &what))?
            .with_type::<RawDocumentBuf>();
        let mut out = Vec::new();
        let mut bytes = 0usize;
        while let Some(raw) = cursor.next().await {
            let raw = raw.map_err(|e| parse_error(e, &what))?;
            bytes += raw.as_bytes().len();
            let d = raw.to_document().map_err(|e| {
                ConnectorError::new(
                    matih_connector_core::ErrorCode::ProtocolError,
                    format!("{what}: {e}"),
                )
            })?;
            out.push(d);
            if bytes >= MAX_SAMPLE_BYTES || out.len() >= size as usize {
                break;
            }
        }
        Ok(out)
    })
    .await?;
    Ok((infer_columns(&docs), docs.len()))
}

/// Top-level fields of sampled documents as columns: nullable when a
/// document lacks the field or holds null there.
pub(crate) fn infer_columns(docs: &[Document]) -> Vec<Column> {
    let mut order: Vec<String> = Vec::new();
    let mut seen: BTreeMap<String, (Observed, usize)> = BTreeMap::new();
    for d in docs {
        for (k, v) in d {
            let entry = seen.entry(k.clone()).or_insert_with(|| {
                order.push(k.clone());
                (Observed::default(), 0)
            });
            entry.0.add(v);
            entry.1 += 1;
        }
    }
    if let Some(pos) = order.iter().position(|k| k == "_id") {
        let id = order.remove(pos);
        order.insert(0, id);
    }
    order
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let (obs, present) = &seen[name];
            Column {
                name: name.clone().into(),
                ordinal: i as u32 + 1,
                native_type: obs.native().into(),
                data_type: obs.data_type(),
                nullable: *present < docs.len() || obs.saw_null(),
                default: None,
                comment: None,
            }
        })
        .collect()
}

async fn describe(
    conn: &MongoConnection,
    db: &str,
    listed: Listed,
    req: &DiscoveryRequest,
) -> Result<Table, ConnectorError> {
    let mut t = Table::new(listed.name.clone(), listed.kind);
    if let Some(v) = &listed.view_on {
        t.properties
            .insert("viewOn".into(), serde_json::Value::String(v.clone()));
    }
    if req.statistics && listed.kind == TableKind::Collection {
        let (rows, size) = statistics(conn, db, &listed.name).await?;
        t.estimated_rows = rows;
        t.size_bytes = size;
    }
    if req.depth >= Depth::Columns && req.sample_size > 0 {
        let (columns, n) = sample_columns(conn, db, &listed.name, req.sample_size).await?;
        t.properties
            .insert("sampledDocuments".into(), serde_json::Value::from(n as u64));
        t.columns = columns;
    }
    if t.columns.is_empty() || t.column("_id").is_some() {
        // Every MongoDB document has a unique `_id`, views excepted.
        if listed.kind == TableKind::Collection {
            t.primary_key = vec!["_id".into()];
        }
    }
    Ok(t)
}

pub(crate) async fn discover(
    conn: &MongoConnection,
    req: &DiscoveryRequest,
) -> Result<Catalog, ConnectorError> {
    let mut catalog = Catalog::default();
    for db in schema_names(conn, req).await? {
        let mut schema = Schema {
            name: db.clone(),
            comment: None,
            tables: Vec::new(),
        };
        if req.depth >= Depth::Tables {
            let listed = list_collections(conn, &db, req).await?;
            let tables: Vec<Result<Table, ConnectorError>> = futures_util::stream::iter(listed)
                .map(|l| describe(conn, &db, l, req))
                .buffered(PARALLEL)
                .collect()
                .await;
            schema.tables = tables.into_iter().collect::<Result<_, _>>()?;
        }
        catalog.schemas.push(schema);
    }
    catalog.sort();
    Ok(catalog)
}

#[cfg(test)]
mod tests {
    use super::*;
    use matih_connector_core::DataType;

    #[test]
    fn columns_from_documents() {
        let docs = vec![
            doc! {"name": "a", "_id": 1, "n": 1, "tags": ["x"]},
            doc! {"_id": 2, "n": mongodb::bson::Bson::Int64(2), "extra": mongodb::bson::Bson::Null},
        ];
        let cols = infer_columns(&docs);
        let names: Vec<_> = cols.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["_id", "name", "n", "tags", "extra"]);
        assert_eq!(
            cols.iter().map(|c| c.ordinal).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5]
        );
        assert!(!cols[0].nullable);
        assert!(cols[1].nullable, "missing in the second document");
        assert_eq!(
            (cols[2].data_type.clone(), cols[2].nullable),
            (DataType::Int64, false)
        );
        assert_eq!(cols[3].data_type, DataType::array(DataType::String));
        assert_eq!(
            (cols[4].data_type.clone(), cols[4].native_type.as_str()),
            (DataType::Unknown, "null")
        );
        assert!(infer_columns(&[]).is_empty());
    }
}
