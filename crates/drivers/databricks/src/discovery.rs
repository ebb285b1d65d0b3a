//! Discovery through the Unity Catalog REST API: one paged schema listing of
//! the catalog, then one paged table listing per matching schema (columns,
//! constraints and properties included in the same answers). No SQL, so
//! discovery never starts a stopped warehouse. Unity Catalog takes no name
//! patterns, so include/exclude filters are applied to the listings here; a
//! schema filter still saves the table calls of every schema it excludes.

use futures_util::StreamExt as _;
use matih_connector_core::{
    Catalog, Column, ConnectorError, Depth, DiscoveryRequest, ErrorCode, Schema, Table, TableKind,
};
use serde_json::Value;

use crate::connection::DatabricksConnection;
use crate::types;

const SYSTEM_SCHEMA: &str = "information_schema";
/// Unity Catalog's maximum page size for table listings with columns.
const TABLE_PAGE: &str = "50";
const SCHEMA_PAGE: &str = "1000";
/// Pages per listing before giving up (50 000 tables in one schema).
const MAX_PAGES: usize = 1000;
/// Schemas whose tables are listed at the same time.
const SCHEMA_CONCURRENCY: usize = 4;

pub(crate) async fn probe(
    conn: &mut DatabricksConnection,
    _req: &DiscoveryRequest,
) -> Result<(), ConnectorError> {
    if let Some(schema) = conn.cfg.schema.clone() {
        let full = format!("{}.{schema}", conn.cfg.catalog);
        let url = conn.cfg.url("/api/2.1/unity-catalog/schemas", &[&full]);
        conn.get(url, conn.cfg.timeouts.query(), "GET schema")
            .await
            .map_err(|e| e.with_context("schema", &schema))?;
    }
    let mut url = conn.cfg.url("/api/2.1/unity-catalog/schemas", &[]);
    url.query_pairs_mut()
        .append_pair("catalog_name", &conn.cfg.catalog)
        .append_pair("max_results", "1");
    conn.get(url, conn.cfg.timeouts.query(), "GET schemas")
        .await
        .map(|_| ())
}

/// Follows `next_page_token` until the listing ends.
async fn list_all(
    conn: &DatabricksConnection,
    path: &str,
    query: &[(&str, &str)],
    key: &str,
    what: &str,
) -> Result<Vec<Value>, ConnectorError> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let mut url = conn.cfg.url(path, &[]);
        {
            let mut q = url.query_pairs_mut();
            for (k, v) in query {
                q.append_pair(k, v);
            }
            if let Some(t) = &token {
                q.append_pair("page_token", t);
            }
        }
        let v = conn.get(url, conn.cfg.timeouts.query(), what).await?;
        if let Some(items) = v.get(key).and_then(Value::as_array) {
            out.extend(items.iter().cloned());
        }
        match v
            .get("next_page_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
        {
            Some(t) if token.as_deref() != Some(t) => token = Some(t.to_owned()),
            _ => return Ok(out),
        }
    }
    Err(ConnectorError::new(
        ErrorCode::Unsupported,
        format!("{what}: more than {MAX_PAGES} pages; narrow the schema filter"),
    ))
}

fn s<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn table_kind(t: &str) -> TableKind {
    match t {
        "VIEW" => TableKind::View,
        "MATERIALIZED_VIEW" => TableKind::MaterializedView,
        "EXTERNAL" | "EXTERNAL_SHALLOW_CLONE" | "FOREIGN" => TableKind::External,
        _ => TableKind::Table,
    }
}

/// Spark's statistics properties, present after `ANALYZE TABLE … COMPUTE
/// STATISTICS`; Unity Catalog keeps no other row or size estimate.
fn stat(props: Option<&Value>, key: &str) -> Option<u64> {
    props?.get(key)?.as_str()?.trim().parse().ok()
}

fn column(c: &Value) -> (i64, Column) {
    let type_text = s(c, "type_text").unwrap_or_default();
    let type_name = s(c, "type_name").unwrap_or_default();
    let precision = c
        .get("type_precision")
        .and_then(Value::as_u64)
        .map(|p| p as u32);
    let scale = c
        .get("type_scale")
        .and_then(Value::as_i64)
        .map(|p| p as i32);
    // Column defaults live in the Spark type JSON's metadata.
    let default = s(c, "type_json")
        .and_then(|j| serde_json::from_str::<Value>(j).ok())
        .and_then(|j| {
            j.pointer("/metadata/CURRENT_DEFAULT")
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
    let data_type = types::normalize(type_text, type_name, precision, scale);
    let native = if type_text.is_empty() {
        type_name.to_owned()
    } else {
        type_text.to_owned()
    };
    (
        c.get("position")
            .and_then(Value::as_i64)
            .unwrap_or(i64::MAX),
        Column {
            name: s(c, "name").unwrap_or_default().to_owned().into(),
            ordinal: 0,
            native_type: native.into(),
            data_type,
            nullable: c.get("nullable").and_then(Value::as_bool).unwrap_or(true),
            default,
            comment: s(c, "comment").map(str::to_owned),
        },
    )
}

fn table(t: &Value, req: &DiscoveryRequest) -> Table {
    let tt = s(t, "table_type").unwrap_or("MANAGED");
    let kind = table_kind(tt);
    let mut table = Table::new(s(t, "name").unwrap_or_default(), kind);
    table.comment = s(t, "comment").map(str::to_owned);
    let props = t.get("properties");
    if req.statistics && !matches!(kind, TableKind::View) {
        table.estimated_rows = stat(props, "spark.sql.statistics.numRows");
        table.size_bytes = stat(props, "spark.sql.statistics.totalSize");
    }
    table
        .properties
        .insert("tableType".into(), Value::String(tt.to_owned()));
    if let Some(f) = s(t, "data_source_format") {
        table
            .properties
            .insert("dataSourceFormat".into(), Value::String(f.to_owned()));
    }
    if let Some(cons) = t.get("table_constraints").and_then(Value::as_array) {
        for c in cons {
            if let Some(cols) = c
                .pointer("/primary_key_constraint/child_columns")
                .and_then(Value::as_array)
            {
                table.primary_key = cols
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect();
            }
        }
    }
    if req.depth == Depth::Columns {
        let mut cols: Vec<(i64, Column)> = t
            .get("columns")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(column).collect())
            .unwrap_or_default();
        cols.sort_by_key(|(p, _)| *p);
        table.columns = cols
            .into_iter()
            .enumerate()
            .map(|(i, (_, mut c))| {
                c.ordinal = i as u32 + 1;
                c
            })
            .collect();
    }
    table
}

pub(crate) async fn discover(
    conn: &mut DatabricksConnection,
    req: &DiscoveryRequest,
) -> Result<Catalog, ConnectorError> {
    let catalog_name = conn.cfg.catalog.clone();
    let schemas = list_all(
        conn,
        "/api/2.1/unity-catalog/schemas",
        &[
            ("catalog_name", &catalog_name),
            ("max_results", SCHEMA_PAGE),
        ],
        "schemas",
        "GET schemas",
    )
    .await?;
    let mut out = Vec::new();
    for sv in &schemas {
        let Some(name) = s(sv, "name") else { continue };
        if (!req.include_system && name.eq_ignore_ascii_case(SYSTEM_SCHEMA))
            || !req.schemas.matches(name)
        {
            continue;
        }
        out.push(Schema {
            name: name.to_owned(),
            comment: s(sv, "comment").map(str::to_owned),
            tables: Vec::new(),
        });
    }
    if req.depth == Depth::Schemas {
        let mut c = Catalog { schemas: out };
        c.sort();
        return Ok(c);
    }
    let omit_columns = if req.depth == Depth::Columns {
        "false"
    } else {
        "true"
    };
    // A few schemas at a time: the listings are independent, and a catalog
    // with hundreds of schemas should not pay their latencies in sequence.
    let conn_ref: &DatabricksConnection = conn;
    let names: Vec<String> = out.iter().map(|s| s.name.clone()).collect();
    let listings: Vec<Result<Vec<Value>, ConnectorError>> =
        futures_util::stream::iter(names.into_iter().map(|schema_name| {
            let catalog_name = catalog_name.clone();
            async move {
                list_all(
                    conn_ref,
                    "/api/2.1/unity-catalog/tables",
                    &[
                        ("catalog_name", &catalog_name),
                        ("schema_name", &schema_name),
                        ("max_results", TABLE_PAGE),
                        ("omit_columns", omit_columns),
                    ],
                    "tables",
                    "GET tables",
                )
                .await
                .map_err(|e| e.with_context("schema", &schema_name))
            }
        }))
        .buffered(SCHEMA_CONCURRENCY)
        .collect()
        .await;
    for (schema, tables) in out.iter_mut().zip(listings) {
        for t in &tables? {
            let Some(name) = s(t, "name") else { continue };
            if req.tables.matches(name) {
                schema.tables.push(table(t, req));
            }
        }
    }
    let mut c = Catalog { schemas: out };
    c.sort();
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use matih_connector_core::DataType;
    use serde_json::json;

    /// A TableInfo as Unity Catalog documents it.
    #[test]
    fn table_info_maps_to_a_table() {
        let t = json!({
            "name": "orders", "catalog_name": "main", "schema_name": "sales", "table_type": "MANAGED",
            "data_source_format": "DELTA", "comment": "all orders",
            "properties": {"spark.sql.statistics.numRows": "42", "spark.sql.statistics.totalSize": "4096"},
            "table_constraints": [{"primary_key_constraint": {"name": "orders_pk", "child_columns": ["id", "line"]}}],
            "columns": [
                {"name": "line", "type_text": "int", "type_name": "INT", "position": 1, "nullable": false},
                {"name": "id", "type_text": "bigint", "type_name": "LONG", "position": 0, "nullable": false, "comment": "key"},
                {"name": "amount", "type_text": "decimal(12,2)", "type_name": "DECIMAL", "type_precision": 12, "type_scale": 2, "position": 2,
                 "type_json": "{\"name\":\"amount\",\"type\":\"decimal(12,2)\",\"nullable\":true,\"metadata\":{\"CURRENT_DEFAULT\":\"0\"}}"}
            ]
        });
        let tb = table(&t, &DiscoveryRequest::default());
        assert_eq!(tb.kind, TableKind::Table);
        assert_eq!(tb.estimated_rows, Some(42));
        assert_eq!(tb.size_bytes, Some(4096));
        assert_eq!(tb.primary_key, vec!["id", "line"]);
        let names: Vec<_> = tb
            .columns
            .iter()
            .map(|c| (c.ordinal, c.name.as_str()))
            .collect();
        assert_eq!(names, vec![(1, "id"), (2, "line"), (3, "amount")]);
        assert_eq!(tb.columns[2].default.as_deref(), Some("0"));
        assert_eq!(tb.columns[2].data_type, DataType::decimal(12, 2));
        assert_eq!(tb.properties["dataSourceFormat"], "DELTA");
        let no_stats = table(
            &t,
            &DiscoveryRequest {
                statistics: false,
                ..Default::default()
            },
        );
        assert_eq!(no_stats.estimated_rows, None);
        let shallow = table(&t, &DiscoveryRequest::default().with_depth(Depth::Tables));
        assert!(shallow.columns.is_empty());
    }

    #[test]
    fn table_types() {
        assert_eq!(table_kind("VIEW"), TableKind::View);
        assert_eq!(table_kind("MATERIALIZED_VIEW"), TableKind::MaterializedView);
        assert_eq!(table_kind("EXTERNAL"), TableKind::External);
        assert_eq!(table_kind("FOREIGN"), TableKind::External);
        assert_eq!(table_kind("STREAMING_TABLE"), TableKind::Table);
        assert_eq!(table_kind("MANAGED"), TableKind::Table);
    }
}
