//! Catalog discovery over the `sys.*` catalog views: one query each for
//! schemas, relations (with statistics), columns and primary keys, whatever
//! the number of tables. Every SQL text the driver sends lives here.
//!
//! Catalog mapping: the configured database is the catalog; its schemas are
//! schemas. Filters are pushed down as `LIKE @Pn ESCAPE '\'` over bind
//! parameters (only placeholders are generated, never values), then matched
//! exactly again in memory, because SQL Server's LIKE follows the column's
//! collation (usually case-insensitive) while our globs are case-sensitive.
//! Metadata visibility limits every catalog view to objects the login has
//! some permission on, so no further privilege checks are needed.

use std::collections::HashMap;

use matih_connector_core::{
    glob_to_like, Catalog, Column, ConnectorError, Depth, DiscoveryRequest, ErrorCode, NameFilter,
    Schema, Table, TableKind,
};
use tiberius::{Row, ToSql};

use crate::connection::SqlServerConnection;
use crate::errors::parse_error;
use crate::types::{native_name, normalize, ColumnType};

pub(crate) const VERSION_SQL: &str =
    "SELECT CAST(@@VERSION AS nvarchar(4000)), CAST(SERVERPROPERTY('Edition') AS nvarchar(256))";

/// `Microsoft SQL Server 2022 (RTM-CU12) (KB…) - 16.0.4125.3 (X64)` plus the
/// edition: the first line of `@@VERSION` holds the product and build.
pub(crate) fn format_version(full: &str, edition: Option<&str>) -> String {
    let first = full.lines().next().unwrap_or_default().trim();
    match edition {
        Some(e) if !e.is_empty() && !first.contains(e) => format!("{first}; {e}"),
        _ => first.to_owned(),
    }
}

const SYSTEM_SCHEMA: &str =
    "(s.name IN (N'sys', N'INFORMATION_SCHEMA', N'guest') OR s.schema_id >= 16384)";

const SCHEMAS_SQL: &str = "SELECT s.name, CAST(ep.value AS nvarchar(4000))
FROM sys.schemas s
LEFT JOIN sys.extended_properties ep
  ON ep.class = 3 AND ep.major_id = s.schema_id AND ep.minor_id = 0 AND ep.name = N'MS_Description'
WHERE ";

const RELATIONS_SQL: &str = "SELECT s.name, o.object_id, o.name, RTRIM(o.type),
  CASE WHEN o.type = 'V' AND EXISTS (SELECT 1 FROM sys.indexes vi WHERE vi.object_id = o.object_id AND vi.index_id = 1) THEN 1 ELSE 0 END,
  CASE WHEN EXISTS (SELECT 1 FROM sys.indexes pi JOIN sys.partition_schemes ps ON ps.data_space_id = pi.data_space_id
                    WHERE pi.object_id = o.object_id AND pi.index_id IN (0, 1)) THEN 1 ELSE 0 END,
  CAST(ep.value AS nvarchar(4000)), ";

const STATS_COLUMNS: &str = "st.row_count, st.used_pages
FROM sys.objects o
JOIN sys.schemas s ON s.schema_id = o.schema_id
LEFT JOIN sys.extended_properties ep
  ON ep.class = 1 AND ep.major_id = o.object_id AND ep.minor_id = 0 AND ep.name = N'MS_Description'
LEFT JOIN (
  SELECT p.object_id,
    CAST(SUM(CASE WHEN p.index_id IN (0, 1) THEN p.rows ELSE 0 END) AS bigint) AS row_count,
    CAST(SUM(au.used_pages) AS bigint) AS used_pages
  FROM sys.partitions p
  LEFT JOIN (SELECT a.container_id, a.type, SUM(a.used_pages) AS used_pages
             FROM sys.allocation_units a GROUP BY a.container_id, a.type) au
    ON (au.type IN (1, 3) AND au.container_id = p.hobt_id) OR (au.type = 2 AND au.container_id = p.partition_id)
  GROUP BY p.object_id) st ON st.object_id = o.object_id
WHERE ";

const NO_STATS_COLUMNS: &str = "CAST(NULL AS bigint), CAST(NULL AS bigint)
FROM sys.objects o
JOIN sys.schemas s ON s.schema_id = o.schema_id
LEFT JOIN sys.extended_properties ep
  ON ep.class = 1 AND ep.major_id = o.object_id AND ep.minor_id = 0 AND ep.name = N'MS_Description'
WHERE ";

const RELATION_KINDS: &str = "o.type IN ('U', 'V', 'ET')";

const COLUMNS_SQL: &str = "SELECT c.object_id, c.name, t.name, TYPE_NAME(t.system_type_id),
  CAST(c.max_length AS int), CAST(c.precision AS int), CAST(c.scale AS int), CAST(c.is_nullable AS int),
  dc.definition, CAST(ep.value AS nvarchar(4000))
FROM sys.columns c
JOIN sys.objects o ON o.object_id = c.object_id
JOIN sys.schemas s ON s.schema_id = o.schema_id
JOIN sys.types t ON t.user_type_id = c.user_type_id
LEFT JOIN sys.default_constraints dc ON dc.object_id = c.default_object_id
LEFT JOIN sys.extended_properties ep
  ON ep.class = 1 AND ep.major_id = c.object_id AND ep.minor_id = c.column_id AND ep.name = N'MS_Description'
WHERE ";

const PRIMARY_KEYS_SQL: &str = "SELECT i.object_id, c.name
FROM sys.indexes i
JOIN sys.index_columns ic ON ic.object_id = i.object_id AND ic.index_id = i.index_id
JOIN sys.columns c ON c.object_id = ic.object_id AND c.column_id = ic.column_id
JOIN sys.objects o ON o.object_id = i.object_id
JOIN sys.schemas s ON s.schema_id = o.schema_id
WHERE i.is_primary_key = 1 AND ic.key_ordinal > 0 AND ";

/// SQL Server's page size: `used_pages × 8192` is the allocated size in use.
const PAGE_BYTES: u64 = 8192;

/// The request's filters as a WHERE fragment over bind parameters.
struct Filters {
    params: Vec<String>,
    schema_clause: String,
    table_clause: String,
    schemas: NameFilter,
    tables: NameFilter,
}

impl Filters {
    fn new(req: &DiscoveryRequest, configured_schema: Option<&str>) -> Self {
        let mut schemas = req.schemas.clone();
        if schemas.include.is_empty() {
            if let Some(s) = configured_schema {
                schemas.include.push(glob_literal(s));
            }
        }
        let mut params = Vec::new();
        let mut schema_clause = if req.include_system {
            String::from("1 = 1")
        } else {
            format!("NOT {SYSTEM_SCHEMA}")
        };
        push_like(&mut schema_clause, &mut params, "s.name", &schemas);
        let mut table_clause = if req.include_system {
            String::from("1 = 1")
        } else {
            String::from("o.is_ms_shipped = 0")
        };
        push_like(&mut table_clause, &mut params, "o.name", &req.tables);
        Filters {
            params,
            schema_clause,
            table_clause,
            schemas,
            tables: req.tables.clone(),
        }
    }

    fn bind(&self) -> Vec<&dyn ToSql> {
        self.params.iter().map(|p| p as &dyn ToSql).collect()
    }

    fn relations_where(&self) -> String {
        format!(
            "{RELATION_KINDS} AND {} AND {}",
            self.schema_clause, self.table_clause
        )
    }
}

/// Appends `AND (col LIKE @Pn …) AND NOT (col LIKE @Pm …)` for a filter.
fn push_like(clause: &mut String, params: &mut Vec<String>, column: &str, filter: &NameFilter) {
    let mut group = |patterns: &[String], negate: bool, params: &mut Vec<String>| {
        if patterns.is_empty() {
            return;
        }
        let parts: Vec<String> = patterns
            .iter()
            .map(|p| {
                params.push(tsql_like(&glob_to_like(p)));
                format!("{column} LIKE @P{} ESCAPE '\\'", params.len())
            })
            .collect();
        clause.push_str(if negate { " AND NOT (" } else { " AND (" });
        clause.push_str(&parts.join(" OR "));
        clause.push(')');
    };
    group(&filter.include, false, params);
    group(&filter.exclude, true, params);
}

/// T-SQL LIKE also treats `[` as a character-class opener.
fn tsql_like(like: &str) -> String {
    like.replace('[', "\\[")
}

/// A name as a glob matching only itself.
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

fn text(row: &Row, idx: usize, what: &str) -> Result<Option<String>, ConnectorError> {
    row.try_get::<&str, _>(idx)
        .map(|v| v.map(str::to_owned))
        .map_err(|e| parse_error(e, what))
}

fn int(row: &Row, idx: usize, what: &str) -> Result<Option<i32>, ConnectorError> {
    row.try_get::<i32, _>(idx).map_err(|e| parse_error(e, what))
}

fn big(row: &Row, idx: usize, what: &str) -> Result<Option<i64>, ConnectorError> {
    row.try_get::<i64, _>(idx).map_err(|e| parse_error(e, what))
}

fn required<T>(v: Option<T>, what: &str) -> Result<T, ConnectorError> {
    v.ok_or_else(|| {
        ConnectorError::new(ErrorCode::ProtocolError, format!("{what}: unexpected NULL"))
    })
}

/// The access probe: the configured schema must exist, and the schema listing
/// under the request's filters must run.
pub(crate) async fn probe(
    conn: &mut SqlServerConnection,
    req: &DiscoveryRequest,
    configured_schema: Option<&str>,
) -> Result<(), ConnectorError> {
    let schemas = list_schemas(conn, &Filters::new(req, configured_schema)).await?;
    if let Some(s) = configured_schema {
        if !schemas.iter().any(|x| x.name == s) {
            return Err(ConnectorError::new(
                ErrorCode::DatabaseNotFound,
                format!("schema {s:?} does not exist or is not visible to this login"),
            )
            .with_context("schema", s));
        }
    }
    Ok(())
}

async fn list_schemas(
    conn: &mut SqlServerConnection,
    f: &Filters,
) -> Result<Vec<Schema>, ConnectorError> {
    const WHAT: &str = "listing schemas";
    let sql = format!("{SCHEMAS_SQL}{}", f.schema_clause);
    let rows = conn.rows(WHAT, &sql, &f.bind()).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let name = required(text(row, 0, WHAT)?, WHAT)?;
        if f.schemas.matches(&name) {
            out.push(Schema {
                name,
                comment: text(row, 1, WHAT)?,
                tables: Vec::new(),
            });
        }
    }
    Ok(out)
}

pub(crate) async fn discover(
    conn: &mut SqlServerConnection,
    req: &DiscoveryRequest,
    configured_schema: Option<&str>,
) -> Result<Catalog, ConnectorError> {
    let f = Filters::new(req, configured_schema);
    let mut schemas = list_schemas(conn, &f).await?;
    if req.depth == Depth::Schemas || schemas.is_empty() {
        let mut c = Catalog { schemas };
        c.sort();
        return Ok(c);
    }

    const REL: &str = "listing tables";
    let sql = format!(
        "{RELATIONS_SQL}{}{}",
        if req.statistics {
            STATS_COLUMNS
        } else {
            NO_STATS_COLUMNS
        },
        f.relations_where()
    );
    let rows = conn.rows(REL, &sql, &f.bind()).await?;
    let index: HashMap<String, usize> = schemas
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.clone(), i))
        .collect();
    // object_id → (schema index, table index)
    let mut tables: HashMap<i32, (usize, usize)> = HashMap::new();
    for row in &rows {
        let schema = required(text(row, 0, REL)?, REL)?;
        let Some(&si) = index.get(&schema) else {
            continue;
        };
        let name = required(text(row, 2, REL)?, REL)?;
        if !f.tables.matches(&name) {
            continue;
        }
        let object_id = required(int(row, 1, REL)?, REL)?;
        let ty = required(text(row, 3, REL)?, REL)?;
        let indexed_view = int(row, 4, REL)? == Some(1);
        let partitioned = int(row, 5, REL)? == Some(1);
        let kind = match (ty.as_str(), indexed_view, partitioned) {
            ("V", true, _) => TableKind::MaterializedView,
            ("V", false, _) => TableKind::View,
            ("ET", _, _) => TableKind::External,
            (_, _, true) => TableKind::Partitioned,
            _ => TableKind::Table,
        };
        let mut t = Table::new(name, kind);
        t.comment = text(row, 6, REL)?;
        if req.statistics && kind != TableKind::View && kind != TableKind::External {
            t.estimated_rows = big(row, 7, REL)?.map(|r| r.max(0) as u64);
            t.size_bytes = big(row, 8, REL)?.map(|p| p.max(0) as u64 * PAGE_BYTES);
        }
        let s = &mut schemas[si];
        s.tables.push(t);
        tables.insert(object_id, (si, s.tables.len() - 1));
    }

    if req.depth == Depth::Columns && !tables.is_empty() {
        const COL: &str = "listing columns";
        let sql = format!(
            "{COLUMNS_SQL}{} ORDER BY c.object_id, c.column_id",
            f.relations_where()
        );
        let rows = conn.rows(COL, &sql, &f.bind()).await?;
        for row in &rows {
            let object_id = required(int(row, 0, COL)?, COL)?;
            let Some(&(si, ti)) = tables.get(&object_id) else {
                continue;
            };
            let name = required(text(row, 1, COL)?, COL)?;
            let declared = required(text(row, 2, COL)?, COL)?;
            let base = text(row, 3, COL)?.unwrap_or_else(|| declared.clone());
            let ct = ColumnType {
                base: &base,
                max_length: int(row, 4, COL)?.unwrap_or(0),
                precision: int(row, 5, COL)?.unwrap_or(0),
                scale: int(row, 6, COL)?.unwrap_or(0),
            };
            let t = &mut schemas[si].tables[ti];
            // column_id has gaps after dropped columns: ordinals are renumbered.
            let ordinal = t.columns.len() as u32 + 1;
            t.columns.push(Column {
                name: name.into(),
                ordinal,
                native_type: native_name(&declared, &ct).into(),
                data_type: normalize(&ct),
                nullable: int(row, 7, COL)? != Some(0),
                default: text(row, 8, COL)?,
                comment: text(row, 9, COL)?,
            });
        }
    }

    if req.depth >= Depth::Tables && !tables.is_empty() {
        const PK: &str = "listing primary keys";
        let sql = format!(
            "{PRIMARY_KEYS_SQL}{} AND {} ORDER BY i.object_id, ic.key_ordinal",
            f.schema_clause, f.table_clause
        );
        let rows = conn.rows(PK, &sql, &f.bind()).await?;
        for row in &rows {
            let object_id = required(int(row, 0, PK)?, PK)?;
            let Some(&(si, ti)) = tables.get(&object_id) else {
                continue;
            };
            schemas[si].tables[ti]
                .primary_key
                .push(required(text(row, 1, PK)?, PK)?);
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
    fn filters_bind_values_and_generate_only_placeholders() {
        let req = DiscoveryRequest {
            schemas: NameFilter {
                include: vec!["sales*".into(), "o'brien".into()],
                exclude: vec!["[tmp]*".into()],
            },
            tables: NameFilter {
                include: vec![],
                exclude: vec!["a_b".into()],
            },
            ..Default::default()
        };
        let f = Filters::new(&req, None);
        assert_eq!(f.params, vec!["sales%", "o'brien", "\\[tmp]%", "a\\_b"]);
        assert!(f
            .schema_clause
            .contains("s.name LIKE @P1 ESCAPE '\\' OR s.name LIKE @P2 ESCAPE '\\'"));
        assert!(f
            .schema_clause
            .contains("AND NOT (s.name LIKE @P3 ESCAPE '\\')"));
        assert!(f
            .table_clause
            .contains("AND NOT (o.name LIKE @P4 ESCAPE '\\')"));
        assert!(!f.schema_clause.contains("brien") && !f.table_clause.contains("a_b"));
    }

    #[test]
    fn configured_schema_scopes_when_no_include() {
        let f = Filters::new(&DiscoveryRequest::default(), Some("we*ird"));
        assert_eq!(f.params, vec!["we*ird"]);
        assert!(f.schemas.matches("we*ird") && !f.schemas.matches("weXird"));
        let req = DiscoveryRequest {
            include_system: true,
            ..Default::default()
        };
        let f = Filters::new(&req, None);
        assert!(f.params.is_empty() && f.schema_clause == "1 = 1" && f.table_clause == "1 = 1");
    }

    #[test]
    fn version_line() {
        let full = "Microsoft SQL Server 2022 (RTM-CU12) (KB5033663) - 16.0.4125.3 (X64) \n\tJan 10 2024 \n\tCopyright (C) 2022 Microsoft Corporation\n\tDeveloper Edition (64-bit) on Linux";
        assert_eq!(
            format_version(full, Some("Developer Edition (64-bit)")),
            "Microsoft SQL Server 2022 (RTM-CU12) (KB5033663) - 16.0.4125.3 (X64); Developer Edition (64-bit)"
        );
        assert_eq!(format_version("X", None), "X");
    }
}
