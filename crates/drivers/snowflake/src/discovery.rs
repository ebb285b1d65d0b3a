//! Discovery from the database's INFORMATION_SCHEMA: at most five statements
//! per discovery (schemata, tables, views, columns, primary keys), filters
//! bound as `LIKE` parameters, never concatenated.

use std::collections::{BTreeMap, HashMap};

use matih_connector_core::{
    Catalog, Column, ConnectorError, Depth, DiscoveryRequest, ErrorCode, NameFilter, Schema, Table,
    TableKind,
};

use crate::connection::{Rows, SnowflakeConnection};
use crate::types;

const SYSTEM_SCHEMA: &str = "INFORMATION_SCHEMA";

/// Appends `AND (col LIKE ? …) AND col NOT LIKE ? …` for a filter, binding
/// the patterns. `col` is one of this module's constant column names.
fn push_filter(sql: &mut String, binds: &mut Vec<String>, col: &str, f: &NameFilter) {
    let inc = f.include_like();
    if !inc.is_empty() {
        let ors: Vec<String> = inc
            .iter()
            .map(|_| format!("{col} LIKE ? ESCAPE '\\\\'"))
            .collect();
        sql.push_str(&format!(" AND ({})", ors.join(" OR ")));
        binds.extend(inc);
    }
    for p in f.exclude_like() {
        sql.push_str(&format!(" AND {col} NOT LIKE ? ESCAPE '\\\\'"));
        binds.push(p);
    }
}

fn schema_clause(req: &DiscoveryRequest, col: &str, binds: &mut Vec<String>) -> String {
    let mut sql = String::from(" WHERE 1 = 1");
    if !req.include_system {
        sql.push_str(&format!(" AND {col} <> ?"));
        binds.push(SYSTEM_SCHEMA.into());
    }
    push_filter(&mut sql, binds, col, &req.schemas);
    sql
}

/// A configured schema as Snowflake stores it: `"Quoted"` keeps its case,
/// a plain identifier is upper-cased, anything else is taken literally.
pub(crate) fn stored_name(name: &str) -> String {
    let t = name.trim();
    if t.len() >= 2 && t.starts_with('"') && t.ends_with('"') {
        return t[1..t.len() - 1].replace("\"\"", "\"");
    }
    let plain = t
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
    if plain {
        t.to_ascii_uppercase()
    } else {
        t.to_owned()
    }
}

pub(crate) async fn probe(
    conn: &mut SnowflakeConnection,
    req: &DiscoveryRequest,
) -> Result<(), ConnectorError> {
    if let Some(schema) = conn.cfg.schema.clone() {
        let name = stored_name(&schema);
        let r = conn
            .query(
                "SELECT COUNT(*) FROM INFORMATION_SCHEMA.SCHEMATA WHERE SCHEMA_NAME = ?",
                std::slice::from_ref(&name),
            )
            .await?;
        let n: u64 = r
            .rows
            .first()
            .and_then(|r| r.first().cloned().flatten())
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if n == 0 {
            return Err(ConnectorError::new(
                ErrorCode::DatabaseNotFound,
                format!(
                    "schema {name:?} does not exist in database {:?} or is not authorized",
                    conn.database
                ),
            )
            .with_context("schema", name));
        }
    }
    let mut binds = Vec::new();
    let sql = format!(
        "SELECT SCHEMA_NAME FROM INFORMATION_SCHEMA.SCHEMATA{} LIMIT 1",
        schema_clause(req, "SCHEMA_NAME", &mut binds)
    );
    conn.query(&sql, &binds).await.map(|_| ())
}

fn text(r: &[Option<String>], i: usize) -> Option<String> {
    r.get(i).cloned().flatten()
}

fn num<T: std::str::FromStr>(r: &[Option<String>], i: usize) -> Option<T> {
    // Some emulators render integers as `12.0`; read the integer part.
    text(r, i).and_then(|s| s.split('.').next().unwrap_or("").parse().ok())
}

fn table_kind(t: &str) -> TableKind {
    match t.trim().to_ascii_uppercase().as_str() {
        "VIEW" => TableKind::View,
        "MATERIALIZED VIEW" => TableKind::MaterializedView,
        "EXTERNAL TABLE" => TableKind::External,
        _ => TableKind::Table,
    }
}

pub(crate) async fn discover(
    conn: &mut SnowflakeConnection,
    req: &DiscoveryRequest,
) -> Result<Catalog, ConnectorError> {
    let mut schemas: BTreeMap<String, Schema> = BTreeMap::new();
    let mut binds = Vec::new();
    let sql = format!(
        "SELECT SCHEMA_NAME, COMMENT FROM INFORMATION_SCHEMA.SCHEMATA{} ORDER BY SCHEMA_NAME",
        schema_clause(req, "SCHEMA_NAME", &mut binds)
    );
    let r = conn.query(&sql, &binds).await?;
    let (cn, cc) = (r.col("SCHEMA_NAME")?, r.col("COMMENT")?);
    for row in &r.rows {
        let Some(name) = text(row, cn) else { continue };
        if !req.schemas.matches(&name) {
            continue;
        }
        schemas.insert(
            name.clone(),
            Schema {
                name,
                comment: text(row, cc),
                tables: Vec::new(),
            },
        );
    }
    if req.depth == Depth::Schemas || schemas.is_empty() {
        return Ok(Catalog {
            schemas: schemas.into_values().collect(),
        });
    }

    // Tables and views. Snowflake lists views in TABLES too; some emulators
    // only in VIEWS, so both are read and merged.
    let mut tables: BTreeMap<(String, String), Table> = BTreeMap::new();
    let mut binds = Vec::new();
    let mut sql = format!(
        "SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE, ROW_COUNT, BYTES, COMMENT FROM INFORMATION_SCHEMA.TABLES{}",
        schema_clause(req, "TABLE_SCHEMA", &mut binds)
    );
    push_filter(&mut sql, &mut binds, "TABLE_NAME", &req.tables);
    let r = conn.query(&sql, &binds).await?;
    let idx = [
        r.col("TABLE_SCHEMA")?,
        r.col("TABLE_NAME")?,
        r.col("TABLE_TYPE")?,
        r.col("ROW_COUNT")?,
        r.col("BYTES")?,
        r.col("COMMENT")?,
    ];
    for row in &r.rows {
        let (Some(s), Some(n)) = (text(row, idx[0]), text(row, idx[1])) else {
            continue;
        };
        let kind = table_kind(&text(row, idx[2]).unwrap_or_default());
        let mut t = Table::new(n.clone(), kind);
        if req.statistics && matches!(kind, TableKind::Table | TableKind::MaterializedView) {
            t.estimated_rows = num(row, idx[3]);
            t.size_bytes = num(row, idx[4]);
        }
        t.comment = text(row, idx[5]);
        if let Some(tt) = text(row, idx[2]) {
            t.properties
                .insert("tableType".into(), serde_json::Value::String(tt));
        }
        tables.insert((s, n), t);
    }
    let mut binds = Vec::new();
    let mut sql = format!(
        "SELECT TABLE_SCHEMA, TABLE_NAME, COMMENT FROM INFORMATION_SCHEMA.VIEWS{}",
        schema_clause(req, "TABLE_SCHEMA", &mut binds)
    );
    push_filter(&mut sql, &mut binds, "TABLE_NAME", &req.tables);
    let r = conn.query(&sql, &binds).await?;
    let (vs, vn, vc) = (
        r.col("TABLE_SCHEMA")?,
        r.col("TABLE_NAME")?,
        r.col("COMMENT")?,
    );
    for row in &r.rows {
        let (Some(s), Some(n)) = (text(row, vs), text(row, vn)) else {
            continue;
        };
        tables.entry((s, n.clone())).or_insert_with(|| {
            let mut t = Table::new(n, TableKind::View);
            t.comment = text(row, vc);
            t.properties
                .insert("tableType".into(), serde_json::Value::String("VIEW".into()));
            t
        });
    }
    tables.retain(|(s, n), _| schemas.contains_key(s) && req.tables.matches(n));

    if !tables.is_empty() {
        for ((s, n), cols) in primary_keys(conn).await? {
            if let Some(t) = tables.get_mut(&(s, n)) {
                t.primary_key = cols;
            }
        }
    }

    if req.depth == Depth::Columns && !tables.is_empty() {
        let mut binds = Vec::new();
        let mut sql = format!(
            "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, ORDINAL_POSITION, DATA_TYPE, NUMERIC_PRECISION, \
             NUMERIC_SCALE, CHARACTER_MAXIMUM_LENGTH, IS_NULLABLE, COLUMN_DEFAULT, COMMENT \
             FROM INFORMATION_SCHEMA.COLUMNS{}",
            schema_clause(req, "TABLE_SCHEMA", &mut binds)
        );
        push_filter(&mut sql, &mut binds, "TABLE_NAME", &req.tables);
        sql.push_str(" ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION");
        let r = conn.query(&sql, &binds).await?;
        let c: Vec<usize> = [
            "TABLE_SCHEMA",
            "TABLE_NAME",
            "COLUMN_NAME",
            "ORDINAL_POSITION",
            "DATA_TYPE",
            "NUMERIC_PRECISION",
            "NUMERIC_SCALE",
            "CHARACTER_MAXIMUM_LENGTH",
            "IS_NULLABLE",
            "COLUMN_DEFAULT",
            "COMMENT",
        ]
        .iter()
        .map(|n| r.col(n))
        .collect::<Result<_, _>>()?;
        let mut by_table: HashMap<(String, String), Vec<(u32, Column)>> = HashMap::new();
        for row in &r.rows {
            let (Some(s), Some(t), Some(name)) =
                (text(row, c[0]), text(row, c[1]), text(row, c[2]))
            else {
                continue;
            };
            let dt = text(row, c[4]).unwrap_or_default();
            let (p, sc, len) = (
                num::<u32>(row, c[5]),
                num::<u32>(row, c[6]),
                num::<u64>(row, c[7]),
            );
            let col = Column {
                name: name.into(),
                ordinal: 0,
                native_type: types::native_type(&dt, p, sc, len).into(),
                data_type: types::normalize(&dt, p, sc),
                nullable: !text(row, c[8]).is_some_and(|v| v.eq_ignore_ascii_case("NO")),
                default: text(row, c[9]),
                comment: text(row, c[10]),
            };
            by_table
                .entry((s, t))
                .or_default()
                .push((num(row, c[3]).unwrap_or(u32::MAX), col));
        }
        for (key, mut cols) in by_table {
            if let Some(t) = tables.get_mut(&key) {
                cols.sort_by_key(|(o, _)| *o);
                // Ordinals are renumbered 1..n: the catalog promises a dense
                // sequence whatever the source's positions.
                t.columns = cols
                    .into_iter()
                    .enumerate()
                    .map(|(i, (_, mut col))| {
                        col.ordinal = i as u32 + 1;
                        col
                    })
                    .collect();
            }
        }
    }

    for ((s, _), t) in tables {
        if let Some(schema) = schemas.get_mut(&s) {
            schema.tables.push(t);
        }
    }
    let mut catalog = Catalog {
        schemas: schemas.into_values().collect(),
    };
    catalog.sort();
    Ok(catalog)
}

/// Primary keys of the current database: `SHOW PRIMARY KEYS IN DATABASE`, or
/// where a source lacks that scope (fakesnow answers 009999), `IN ACCOUNT`
/// filtered to the current database. Key columns come back in key order.
async fn primary_keys(
    conn: &mut SnowflakeConnection,
) -> Result<HashMap<(String, String), Vec<String>>, ConnectorError> {
    let r: Rows = match conn.query("SHOW PRIMARY KEYS IN DATABASE", &[]).await {
        Ok(r) => r,
        Err(e) if matches!(e.code(), ErrorCode::SourceError) => {
            tracing::debug!(error = %e, "SHOW PRIMARY KEYS IN DATABASE failed; trying IN ACCOUNT");
            conn.query("SHOW PRIMARY KEYS IN ACCOUNT", &[]).await?
        }
        Err(e) => return Err(e),
    };
    let (d, s, t, c, k) = (
        r.col("database_name")?,
        r.col("schema_name")?,
        r.col("table_name")?,
        r.col("column_name")?,
        r.col("key_sequence")?,
    );
    let mut keys: HashMap<(String, String), Vec<(u32, String)>> = HashMap::new();
    for row in &r.rows {
        if text(row, d).as_deref() != Some(conn.database.as_str()) {
            continue;
        }
        let (Some(s), Some(t), Some(c)) = (text(row, s), text(row, t), text(row, c)) else {
            continue;
        };
        keys.entry((s, t))
            .or_default()
            .push((num(row, k).unwrap_or(0), c));
    }
    Ok(keys
        .into_iter()
        .map(|(k, mut v)| {
            v.sort_by_key(|(seq, _)| *seq);
            (k, v.into_iter().map(|(_, c)| c).collect())
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_become_bound_like_clauses() {
        let req = DiscoveryRequest {
            schemas: NameFilter {
                include: vec!["sales_*".into(), "x'; DROP".into()],
                exclude: vec!["tmp?".into()],
            },
            ..Default::default()
        };
        let mut binds = Vec::new();
        let sql = schema_clause(&req, "SCHEMA_NAME", &mut binds);
        assert_eq!(
            sql,
            " WHERE 1 = 1 AND SCHEMA_NAME <> ? AND (SCHEMA_NAME LIKE ? ESCAPE '\\\\' OR SCHEMA_NAME LIKE ? ESCAPE '\\\\') AND SCHEMA_NAME NOT LIKE ? ESCAPE '\\\\'"
        );
        assert_eq!(
            binds,
            vec!["INFORMATION_SCHEMA", "sales\\_%", "x'; DROP", "tmp_"]
        );
        assert!(!sql.contains("DROP"));
    }

    #[test]
    fn configured_names_resolve_like_snowflake() {
        assert_eq!(stored_name("public"), "PUBLIC");
        assert_eq!(stored_name("\"Mixed Case\""), "Mixed Case");
        assert_eq!(stored_name("\"a\"\"b\""), "a\"b");
        assert_eq!(stored_name("客户"), "客户");
    }

    #[test]
    fn table_types() {
        assert_eq!(table_kind("BASE TABLE"), TableKind::Table);
        assert_eq!(table_kind("VIEW"), TableKind::View);
        assert_eq!(table_kind("MATERIALIZED VIEW"), TableKind::MaterializedView);
        assert_eq!(table_kind("EXTERNAL TABLE"), TableKind::External);
        assert_eq!(table_kind("TEMPORARY TABLE"), TableKind::Table);
    }
}
