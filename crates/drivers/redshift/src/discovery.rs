//! Catalog discovery through the Data API: a fixed number of statements
//! (schemas, relations, statistics, columns, primary keys, comments),
//! whatever the number of tables. Every SQL text the driver sends lives here.
//!
//! Catalog mapping: the configured database is the catalog, its schemas are
//! schemas. The SQL sticks to what Redshift's leader node and PostgreSQL both
//! run (`pg_namespace`, `information_schema`, `pg_description`); where they
//! differ the engine is detected from `version()`: statistics come from
//! `SVV_TABLE_INFO` on Redshift and from `pg_class` elsewhere, primary keys
//! from `information_schema` on Redshift and `pg_constraint` elsewhere.
//!
//! Filters are pushed down as `LIKE :name` with the patterns bound as named
//! Data API parameters (only placeholder names are generated), then matched
//! exactly again in memory.

use std::collections::HashMap;

use matih_connector_core::{
    glob_to_like, Catalog, Column, ConnectorError, Depth, DiscoveryRequest, ErrorCode, NameFilter,
    Schema, Table, TableKind,
};

use crate::connection::{RedshiftConnection, Value};
use crate::types::{native_name, normalize};

/// `PostgreSQL 8.0.2 on i686-pc-linux-gnu, … Redshift 1.0.77467`: the
/// Redshift build is what matters; other engines are reported as they are.
pub(crate) fn format_version(full: &str) -> String {
    match full.find("Redshift ") {
        Some(i) => format!("Amazon {}", full[i..].trim()),
        None => full.trim().to_owned(),
    }
}

/// Schemas that are the system's: every `pg_*` (users cannot create them)
/// plus the standard and Redshift history ones.
fn not_system(col: &str) -> String {
    format!("left({col}, 3) <> 'pg_' AND {col} NOT IN ('information_schema', 'catalog_history')")
}

/// `pg_catalog` has oid 11 in PostgreSQL and Redshift alike.
const PG_CLASS_OID: &str =
    "(SELECT oid FROM pg_class WHERE relname = 'pg_class' AND relnamespace = 11)";

/// The request's filters as named parameters and per-column clauses.
struct Filters {
    schemas: NameFilter,
    tables: NameFilter,
    include_system: bool,
    schema_params: Vec<(String, String)>,
    table_params: Vec<(String, String)>,
}

impl Filters {
    fn new(req: &DiscoveryRequest, configured_schema: Option<&str>) -> Filters {
        let mut schemas = req.schemas.clone();
        if schemas.include.is_empty() {
            if let Some(s) = configured_schema {
                schemas.include.push(glob_literal(s));
            }
        }
        let schema_params = params("s", &schemas);
        let table_params = params("t", &req.tables);
        Filters {
            schemas,
            tables: req.tables.clone(),
            include_system: req.include_system,
            schema_params,
            table_params,
        }
    }

    fn schema_clause(&self, col: &str) -> String {
        let mut c = if self.include_system {
            String::from("TRUE")
        } else {
            not_system(col)
        };
        c.push_str(&like_clause(col, "s", &self.schemas));
        c
    }

    fn table_clause(&self, col: &str) -> String {
        let mut c = String::from("TRUE");
        c.push_str(&like_clause(col, "t", &self.tables));
        c
    }

    fn both(&self) -> Vec<(String, String)> {
        self.schema_params
            .iter()
            .chain(&self.table_params)
            .cloned()
            .collect()
    }
}

/// Parameter values, named `<prefix>i<n>` / `<prefix>x<n>`. Empty patterns
/// are not sent (the Data API takes no empty values); the in-memory match
/// still applies them.
fn params(prefix: &str, f: &NameFilter) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (kind, list) in [("i", &f.include), ("x", &f.exclude)] {
        for (n, p) in list.iter().enumerate().filter(|(_, p)| !p.is_empty()) {
            out.push((format!("{prefix}{kind}{n}"), glob_to_like(p)));
        }
    }
    out
}

fn like_clause(col: &str, prefix: &str, f: &NameFilter) -> String {
    let mut out = String::new();
    for (kind, list, negate) in [("i", &f.include, false), ("x", &f.exclude, true)] {
        let parts: Vec<String> = list
            .iter()
            .enumerate()
            .filter(|(_, p)| !p.is_empty())
            .map(|(n, _)| format!("{col} LIKE :{prefix}{kind}{n}"))
            .collect();
        if !parts.is_empty() {
            out.push_str(if negate { " AND NOT (" } else { " AND (" });
            out.push_str(&parts.join(" OR "));
            out.push(')');
        }
    }
    out
}

fn glob_literal(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if matches!(c, '*' | '?' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn cell(row: &[Value], i: usize) -> Option<String> {
    row.get(i).and_then(Value::text)
}

fn required(row: &[Value], i: usize, what: &str) -> Result<String, ConnectorError> {
    cell(row, i).ok_or_else(|| {
        ConnectorError::new(
            ErrorCode::ProtocolError,
            format!("{what}: unexpected NULL in column {i}"),
        )
    })
}

async fn list_schemas(
    conn: &RedshiftConnection,
    f: &Filters,
) -> Result<Vec<Schema>, ConnectorError> {
    const WHAT: &str = "listing schemas";
    let sql = format!(
        "SELECT n.nspname FROM pg_namespace n WHERE has_schema_privilege(n.nspname, 'USAGE') AND {} ORDER BY 1",
        f.schema_clause("n.nspname")
    );
    let rows = conn.run(WHAT, &sql, &f.schema_params).await?;
    let mut out = Vec::new();
    for row in &rows {
        let name = required(row, 0, WHAT)?;
        if f.schemas.matches(&name) {
            out.push(Schema {
                name,
                comment: None,
                tables: Vec::new(),
            });
        }
    }
    Ok(out)
}

/// The access probe: the configured schema must be visible, and the schema
/// listing under the request's filters must run.
pub(crate) async fn probe(
    conn: &mut RedshiftConnection,
    req: &DiscoveryRequest,
) -> Result<(), ConnectorError> {
    let configured = conn.cfg.schema.clone();
    let schemas = list_schemas(conn, &Filters::new(req, configured.as_deref())).await?;
    if let Some(s) = configured {
        if !schemas.iter().any(|x| x.name == s) {
            return Err(ConnectorError::new(
                ErrorCode::DatabaseNotFound,
                format!("schema {s:?} does not exist or lacks USAGE for this user"),
            )
            .with_context("schema", s));
        }
    }
    Ok(())
}

pub(crate) async fn discover(
    conn: &mut RedshiftConnection,
    req: &DiscoveryRequest,
) -> Result<Catalog, ConnectorError> {
    let configured = conn.cfg.schema.clone();
    let f = Filters::new(req, configured.as_deref());
    let mut schemas = list_schemas(conn, &f).await?;
    if req.depth == Depth::Schemas || schemas.is_empty() {
        let mut c = Catalog { schemas };
        c.sort();
        return Ok(c);
    }
    let schema_index: HashMap<String, usize> = schemas
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.clone(), i))
        .collect();
    let mut tables: HashMap<(String, String), (usize, usize)> = HashMap::new();

    const REL: &str = "listing tables";
    let sql = format!(
        "SELECT t.table_schema, t.table_name, t.table_type FROM information_schema.tables t WHERE {} AND {}",
        f.schema_clause("t.table_schema"),
        f.table_clause("t.table_name")
    );
    for row in conn.run(REL, &sql, &f.both()).await? {
        let schema = required(&row, 0, REL)?;
        let name = required(&row, 1, REL)?;
        let Some(&si) = schema_index.get(&schema) else {
            continue;
        };
        if !f.tables.matches(&name) {
            continue;
        }
        let kind = match cell(&row, 2).as_deref() {
            Some("VIEW") => TableKind::View,
            Some("FOREIGN TABLE" | "EXTERNAL TABLE") => TableKind::External,
            _ => TableKind::Table,
        };
        schemas[si].tables.push(Table::new(name.clone(), kind));
        tables.insert((schema, name), (si, schemas[si].tables.len() - 1));
    }

    if !tables.is_empty() && req.statistics {
        const STATS: &str = "reading table statistics";
        // SVV_TABLE_INFO's size is in 1 MB blocks; PostgreSQL's in bytes.
        let (sql, unit) = if conn.is_redshift() {
            (
                format!(
                    "SELECT \"schema\", \"table\", tbl_rows, size FROM svv_table_info WHERE {} AND {}",
                    f.schema_clause("\"schema\""),
                    f.table_clause("\"table\"")
                ),
                1024 * 1024,
            )
        } else {
            (
                format!(
                    "SELECT n.nspname, c.relname, c.reltuples::bigint, pg_total_relation_size(c.oid) \
                     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE c.relkind IN ('r', 'p', 'm') AND {} AND {}",
                    f.schema_clause("n.nspname"),
                    f.table_clause("c.relname")
                ),
                1,
            )
        };
        for row in conn.run(STATS, &sql, &f.both()).await? {
            let key = (required(&row, 0, STATS)?, required(&row, 1, STATS)?);
            let Some(&(si, ti)) = tables.get(&key) else {
                continue;
            };
            let t = &mut schemas[si].tables[ti];
            if t.kind == TableKind::View {
                continue;
            }
            // PostgreSQL reports -1 rows for a table never analyzed.
            t.estimated_rows = row
                .get(2)
                .and_then(Value::int)
                .filter(|r| *r >= 0)
                .map(|r| r as u64);
            t.size_bytes = row
                .get(3)
                .and_then(Value::int)
                .filter(|s| *s >= 0)
                .map(|s| s as u64 * unit);
        }
    }

    if !tables.is_empty() {
        const PK: &str = "listing primary keys";
        let sql = if conn.is_redshift() {
            format!(
                "SELECT kcu.table_schema, kcu.table_name, kcu.column_name \
                 FROM information_schema.table_constraints tc \
                 JOIN information_schema.key_column_usage kcu \
                   ON kcu.constraint_schema = tc.constraint_schema AND kcu.constraint_name = tc.constraint_name \
                  AND kcu.table_schema = tc.table_schema AND kcu.table_name = tc.table_name \
                 WHERE tc.constraint_type = 'PRIMARY KEY' AND {} AND {} \
                 ORDER BY 1, 2, kcu.ordinal_position",
                f.schema_clause("tc.table_schema"),
                f.table_clause("tc.table_name")
            )
        } else {
            format!(
                "SELECT n.nspname, c.relname, a.attname \
                 FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = ANY (con.conkey) \
                 WHERE con.contype = 'p' AND {} AND {} \
                 ORDER BY 1, 2, array_position(con.conkey, a.attnum)",
                f.schema_clause("n.nspname"),
                f.table_clause("c.relname")
            )
        };
        for row in conn.run(PK, &sql, &f.both()).await? {
            let key = (required(&row, 0, PK)?, required(&row, 1, PK)?);
            if let Some(&(si, ti)) = tables.get(&key) {
                schemas[si].tables[ti]
                    .primary_key
                    .push(required(&row, 2, PK)?);
            }
        }
    }

    // Comments: table comments always, column comments with the columns.
    let mut column_comments: HashMap<(String, String, i64), String> = HashMap::new();
    if !tables.is_empty() {
        const COMMENTS: &str = "reading comments";
        let sql = format!(
            "SELECT n.nspname, c.relname, d.objsubid, d.description \
             FROM pg_description d JOIN pg_class c ON c.oid = d.objoid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE d.classoid = {PG_CLASS_OID} AND c.relkind IN ('r', 'v', 'm', 'p', 'f') {} AND {} AND {}",
            if req.depth == Depth::Columns { "" } else { "AND d.objsubid = 0" },
            f.schema_clause("n.nspname"),
            f.table_clause("c.relname")
        );
        for row in conn.run(COMMENTS, &sql, &f.both()).await? {
            let (schema, table) = (required(&row, 0, COMMENTS)?, required(&row, 1, COMMENTS)?);
            let sub = row.get(2).and_then(Value::int).unwrap_or(0);
            let Some(text) = cell(&row, 3) else { continue };
            if sub == 0 {
                if let Some(&(si, ti)) = tables.get(&(schema, table)) {
                    schemas[si].tables[ti].comment = Some(text);
                }
            } else {
                column_comments.insert((schema, table, sub), text);
            }
        }
    }

    if req.depth == Depth::Columns && !tables.is_empty() {
        const COL: &str = "listing columns";
        let sql = format!(
            "SELECT c.table_schema, c.table_name, c.column_name, c.ordinal_position, c.data_type, c.udt_name, \
               c.character_maximum_length, c.numeric_precision, c.numeric_scale, c.datetime_precision, \
               c.is_nullable, c.column_default \
             FROM information_schema.columns c WHERE {} AND {} ORDER BY 1, 2, 4",
            f.schema_clause("c.table_schema"),
            f.table_clause("c.table_name")
        );
        for row in conn.run(COL, &sql, &f.both()).await? {
            let schema = required(&row, 0, COL)?;
            let table = required(&row, 1, COL)?;
            let key = (schema, table);
            let Some(&(si, ti)) = tables.get(&key) else {
                continue;
            };
            let position = row.get(3).and_then(Value::int).unwrap_or(0);
            let data_type = required(&row, 4, COL)?;
            let udt = cell(&row, 5).unwrap_or_default();
            let len = row.get(6).and_then(Value::int);
            let precision = row.get(7).and_then(Value::int);
            let scale = row.get(8).and_then(Value::int);
            let dt_precision = row.get(9).and_then(Value::int);
            let t = &mut schemas[si].tables[ti];
            // ordinal_position is the attribute number: dropped columns leave gaps.
            let ordinal = t.columns.len() as u32 + 1;
            t.columns.push(Column {
                name: required(&row, 2, COL)?.into(),
                ordinal,
                native_type: native_name(&data_type, &udt, len, precision, scale, dt_precision)
                    .into(),
                data_type: normalize(&data_type, &udt, precision, scale),
                nullable: row.get(10).map(Value::truthy).unwrap_or(true),
                default: cell(&row, 11),
                comment: column_comments.remove(&(key.0.clone(), key.1.clone(), position)),
            });
        }
    }

    let mut c = Catalog { schemas };
    c.sort();
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_named_parameters() {
        let req = DiscoveryRequest {
            schemas: NameFilter {
                include: vec!["sales*".into(), "o'brien".into()],
                exclude: vec!["tmp_*".into()],
            },
            tables: NameFilter {
                include: vec![],
                exclude: vec!["a%b".into(), "".into()],
            },
            ..Default::default()
        };
        let f = Filters::new(&req, None);
        assert_eq!(
            f.schema_params,
            vec![
                ("si0".into(), "sales%".into()),
                ("si1".into(), "o'brien".into()),
                ("sx0".into(), "tmp\\_%".into())
            ]
        );
        assert_eq!(
            f.table_params,
            vec![("tx0".to_string(), "a\\%b".to_string())]
        );
        let s = f.schema_clause("n.nspname");
        assert!(
            s.contains(
                "AND (n.nspname LIKE :si0 OR n.nspname LIKE :si1) AND NOT (n.nspname LIKE :sx0)"
            ),
            "{s}"
        );
        assert!(!s.contains("brien"));
        assert_eq!(
            f.table_clause("c.relname"),
            "TRUE AND NOT (c.relname LIKE :tx0)"
        );
    }

    #[test]
    fn configured_schema_and_system_schemas() {
        let f = Filters::new(&DiscoveryRequest::default(), Some("a*b"));
        assert_eq!(
            f.schema_params,
            vec![("si0".to_string(), "a*b".to_string())]
        );
        assert!(f.schemas.matches("a*b") && !f.schemas.matches("axb"));
        assert!(f.schema_clause("x").starts_with("left(x, 3) <> 'pg_'"));
        let f = Filters::new(
            &DiscoveryRequest {
                include_system: true,
                ..Default::default()
            },
            None,
        );
        assert_eq!(f.schema_clause("x"), "TRUE");
    }

    #[test]
    fn versions() {
        assert_eq!(
            format_version("PostgreSQL 8.0.2 on i686-pc-linux-gnu, compiled by GCC gcc (GCC) 3.4.2 20041017 (Red Hat 3.4.2-6.fc3), Redshift 1.0.77467"),
            "Amazon Redshift 1.0.77467"
        );
        assert_eq!(
            format_version("PostgreSQL 15.8 (Debian)"),
            "PostgreSQL 15.8 (Debian)"
        );
    }
}
