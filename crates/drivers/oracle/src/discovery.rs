//! Catalog discovery over the `ALL_*` dictionary views: one query each for
//! schemas, relations (with `NUM_ROWS` and comments), segment sizes, columns
//! (with comments) and primary keys, whatever the number of tables. Every
//! SQL text the driver sends lives here.
//!
//! Catalog mapping: the database (service) is the catalog; Oracle users that
//! own objects are schemas. Filters are pushed down as `LIKE :n ESCAPE '\'`
//! with positional binds (only placeholders are generated), then matched
//! exactly again in memory. `ALL_*` views show only what the login may
//! access. Sizes come from `DBA_SEGMENTS` when the login may read it (SELECT
//! ANY DICTIONARY or SELECT_CATALOG_ROLE), else from `USER_SEGMENTS` for its
//! own schema; other schemas' sizes stay unknown.

use std::collections::HashMap;

use matih_connector_core::{
    glob_to_like, Catalog, Column, ConnectorError, Depth, DiscoveryRequest, ErrorCode, NameFilter,
    Schema, Table, TableKind,
};

use crate::connection::{OracleConnection, TextRow};
use crate::types::{native_name, normalize, OraType};

/// Positional binds and the clauses that use them, numbered in the order
/// they appear in one statement.
struct Binds {
    values: Vec<String>,
}

impl Binds {
    fn new() -> Binds {
        Binds { values: Vec::new() }
    }

    /// `AND (col LIKE :n ESCAPE '\' OR …) AND NOT (…)` for a filter.
    fn clause(&mut self, col: &str, f: &NameFilter) -> String {
        let mut out = String::new();
        for (list, negate) in [(&f.include, false), (&f.exclude, true)] {
            if list.is_empty() {
                continue;
            }
            let parts: Vec<String> = list
                .iter()
                .map(|p| {
                    self.values.push(glob_to_like(p));
                    format!("{col} LIKE :{} ESCAPE '\\'", self.values.len())
                })
                .collect();
            out.push_str(if negate { " AND NOT (" } else { " AND (" });
            out.push_str(&parts.join(" OR "));
            out.push(')');
        }
        out
    }
}

struct Filters {
    schemas: NameFilter,
    tables: NameFilter,
    include_system: bool,
}

impl Filters {
    fn new(req: &DiscoveryRequest, configured_schema: Option<&str>) -> Filters {
        let mut schemas = req.schemas.clone();
        if schemas.include.is_empty() {
            if let Some(s) = configured_schema {
                schemas.include.push(glob_literal(s));
            }
        }
        Filters {
            schemas,
            tables: req.tables.clone(),
            include_system: req.include_system,
        }
    }

    /// The schema and table conditions of one statement, with its binds.
    fn conditions(&self, owner: &str, table: Option<&str>) -> (String, Vec<String>) {
        let mut b = Binds::new();
        let mut sql = if self.include_system {
            String::from("1 = 1")
        } else {
            // ORACLE_MAINTAINED (12c+) marks SYS, SYSTEM, XDB, MDSYS and the rest.
            format!("{owner} IN (SELECT username FROM all_users WHERE oracle_maintained = 'N')")
        };
        sql.push_str(&b.clause(owner, &self.schemas));
        if let Some(t) = table {
            sql.push_str(&b.clause(t, &self.tables));
        }
        (sql, b.values)
    }
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

fn text(row: &TextRow, i: usize) -> Option<String> {
    row.get(i).cloned().flatten()
}

fn number(row: &TextRow, i: usize) -> Option<i64> {
    text(row, i)
        .and_then(|s| s.trim().parse::<f64>().ok())
        .map(|f| f as i64)
}

fn required(row: &TextRow, i: usize, what: &str) -> Result<String, ConnectorError> {
    text(row, i).ok_or_else(|| {
        ConnectorError::new(
            ErrorCode::ProtocolError,
            format!("{what}: unexpected NULL in column {i}"),
        )
    })
}

async fn list_schemas(conn: &OracleConnection, f: &Filters) -> Result<Vec<Schema>, ConnectorError> {
    const WHAT: &str = "listing schemas";
    let (cond, binds) = f.conditions("u.username", None);
    let sql = format!("SELECT u.username FROM all_users u WHERE {cond} ORDER BY u.username");
    let mut out = Vec::new();
    for row in conn.rows(WHAT, sql, binds).await? {
        let name = required(&row, 0, WHAT)?;
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

pub(crate) async fn probe(
    conn: &OracleConnection,
    req: &DiscoveryRequest,
    configured_schema: Option<&str>,
) -> Result<(), ConnectorError> {
    let schemas = list_schemas(conn, &Filters::new(req, configured_schema)).await?;
    if let Some(s) = configured_schema {
        if !schemas.iter().any(|x| x.name == s) {
            return Err(ConnectorError::new(
                ErrorCode::DatabaseNotFound,
                format!(
                    "schema (user) {s:?} does not exist; Oracle names are upper case unless quoted"
                ),
            )
            .with_context("schema", s));
        }
    }
    Ok(())
}

pub(crate) async fn discover(
    conn: &OracleConnection,
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
    let index: HashMap<String, usize> = schemas
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.clone(), i))
        .collect();
    let mut tables: HashMap<(String, String), (usize, usize)> = HashMap::new();

    const REL: &str = "listing tables";
    let (cond, binds) = f.conditions("o.owner", Some("o.object_name"));
    // A materialized view is also a TABLE object (its container): listed once.
    let sql = format!(
        "SELECT o.owner, o.object_name, o.object_type, t.num_rows, c.comments, t.partitioned,
           CASE WHEN x.table_name IS NOT NULL THEN 'Y' ELSE 'N' END
         FROM all_objects o
         LEFT JOIN all_tables t ON o.object_type = 'TABLE' AND t.owner = o.owner AND t.table_name = o.object_name
         LEFT JOIN all_external_tables x ON x.owner = o.owner AND x.table_name = o.object_name
         LEFT JOIN all_tab_comments c ON c.owner = o.owner AND c.table_name = o.object_name
         WHERE o.object_type IN ('TABLE', 'VIEW', 'MATERIALIZED VIEW')
           AND o.secondary = 'N' AND o.object_name NOT LIKE 'BIN$%'
           AND NOT (o.object_type = 'TABLE' AND EXISTS
                    (SELECT 1 FROM all_mviews m WHERE m.owner = o.owner AND m.mview_name = o.object_name))
           AND (t.iot_type IS NULL OR t.iot_type <> 'IOT_OVERFLOW')
           AND {cond}"
    );
    let mut mview_rows: Vec<(String, String)> = Vec::new();
    for row in conn.rows(REL, sql, binds).await? {
        let owner = required(&row, 0, REL)?;
        let name = required(&row, 1, REL)?;
        let Some(&si) = index.get(&owner) else {
            continue;
        };
        if !f.tables.matches(&name) {
            continue;
        }
        let kind = match (
            text(&row, 2).as_deref(),
            text(&row, 5).as_deref(),
            text(&row, 6).as_deref(),
        ) {
            (Some("VIEW"), _, _) => TableKind::View,
            (Some("MATERIALIZED VIEW"), _, _) => TableKind::MaterializedView,
            (_, _, Some("Y")) => TableKind::External,
            (_, Some("YES"), _) => TableKind::Partitioned,
            _ => TableKind::Table,
        };
        let mut t = Table::new(name.clone(), kind);
        t.comment = text(&row, 4);
        if req.statistics && matches!(kind, TableKind::Table | TableKind::Partitioned) {
            t.estimated_rows = number(&row, 3).filter(|n| *n >= 0).map(|n| n as u64);
        }
        if kind == TableKind::MaterializedView {
            mview_rows.push((owner.clone(), name.clone()));
        }
        schemas[si].tables.push(t);
        tables.insert((owner, name), (si, schemas[si].tables.len() - 1));
    }

    if req.statistics && !tables.is_empty() {
        // The materialized view's container table holds its rows.
        if !mview_rows.is_empty() {
            const MV: &str = "reading materialized view statistics";
            let (cond, binds) = f.conditions("t.owner", Some("t.table_name"));
            let sql = format!(
                "SELECT t.owner, t.table_name, t.num_rows FROM all_tables t
                 JOIN all_mviews m ON m.owner = t.owner AND m.mview_name = t.table_name WHERE {cond}"
            );
            for row in conn.rows(MV, sql, binds).await? {
                let key = (required(&row, 0, MV)?, required(&row, 1, MV)?);
                if let Some(&(si, ti)) = tables.get(&key) {
                    schemas[si].tables[ti].estimated_rows =
                        number(&row, 2).filter(|n| *n >= 0).map(|n| n as u64);
                }
            }
        }
        const SEG: &str = "reading segment sizes";
        let (cond, binds) = f.conditions("s.owner", Some("s.segment_name"));
        let dba = format!(
            "SELECT s.owner, s.segment_name, SUM(s.bytes) FROM dba_segments s
             WHERE s.segment_type LIKE 'TABLE%' AND {cond} GROUP BY s.owner, s.segment_name"
        );
        let sizes = match conn.rows(SEG, dba, binds).await {
            Ok(rows) => rows,
            // ORA-00942: no access to DBA_SEGMENTS; the login's own segments then.
            Err(e) if e.code() == ErrorCode::PermissionDenied => {
                let (cond, binds) = f.conditions("USER", Some("s.segment_name"));
                let sql = format!(
                    "SELECT USER, s.segment_name, SUM(s.bytes) FROM user_segments s
                     WHERE s.segment_type LIKE 'TABLE%' AND {cond} GROUP BY s.segment_name"
                );
                conn.rows(SEG, sql, binds).await?
            }
            Err(e) => return Err(e),
        };
        for row in sizes {
            let key = (required(&row, 0, SEG)?, required(&row, 1, SEG)?);
            if let Some(&(si, ti)) = tables.get(&key) {
                let t = &mut schemas[si].tables[ti];
                if t.kind != TableKind::View {
                    t.size_bytes = number(&row, 2).filter(|n| *n >= 0).map(|n| n as u64);
                }
            }
        }
    }

    if !tables.is_empty() {
        const PK: &str = "listing primary keys";
        let (cond, binds) = f.conditions("c.owner", Some("c.table_name"));
        let sql = format!(
            "SELECT c.owner, c.table_name, cc.column_name
             FROM all_constraints c
             JOIN all_cons_columns cc ON cc.owner = c.owner AND cc.constraint_name = c.constraint_name AND cc.table_name = c.table_name
             WHERE c.constraint_type = 'P' AND {cond}
             ORDER BY c.owner, c.table_name, cc.position"
        );
        for row in conn.rows(PK, sql, binds).await? {
            let key = (required(&row, 0, PK)?, required(&row, 1, PK)?);
            if let Some(&(si, ti)) = tables.get(&key) {
                schemas[si].tables[ti]
                    .primary_key
                    .push(required(&row, 2, PK)?);
            }
        }
    }

    if req.depth == Depth::Columns && !tables.is_empty() {
        const COL: &str = "listing columns";
        let (cond, binds) = f.conditions("c.owner", Some("c.table_name"));
        let sql = format!(
            "SELECT c.owner, c.table_name, c.column_name, c.data_type, c.data_length, c.char_length, c.char_used,
               c.data_precision, c.data_scale, c.nullable, c.data_default, cm.comments
             FROM all_tab_columns c
             LEFT JOIN all_col_comments cm ON cm.owner = c.owner AND cm.table_name = c.table_name AND cm.column_name = c.column_name
             WHERE {cond}
             ORDER BY c.owner, c.table_name, c.column_id"
        );
        for row in conn.rows(COL, sql, binds).await? {
            let key = (required(&row, 0, COL)?, required(&row, 1, COL)?);
            let Some(&(si, ti)) = tables.get(&key) else {
                continue;
            };
            let data_type = required(&row, 3, COL)?;
            let char_used = text(&row, 6);
            let ty = OraType {
                data_type: &data_type,
                data_length: number(&row, 4),
                char_length: number(&row, 5).filter(|n| *n > 0),
                char_used: char_used.as_deref(),
                precision: number(&row, 7),
                scale: number(&row, 8),
            };
            let t = &mut schemas[si].tables[ti];
            let ordinal = t.columns.len() as u32 + 1;
            t.columns.push(Column {
                name: required(&row, 2, COL)?.into(),
                ordinal,
                native_type: native_name(&ty).into(),
                data_type: normalize(&ty),
                nullable: text(&row, 9).as_deref() != Some("N"),
                // DATA_DEFAULT is a LONG holding the expression's text, often with a trailing newline.
                default: text(&row, 10)
                    .map(|d| d.trim().to_owned())
                    .filter(|d| !d.is_empty()),
                comment: text(&row, 11),
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
    fn binds_are_positional_and_values_never_spliced() {
        let req = DiscoveryRequest {
            schemas: NameFilter {
                include: vec!["SALES*".into(), "O'BRIEN".into()],
                exclude: vec![],
            },
            tables: NameFilter {
                include: vec![],
                exclude: vec!["TMP_*".into()],
            },
            ..Default::default()
        };
        let f = Filters::new(&req, None);
        let (sql, binds) = f.conditions("o.owner", Some("o.object_name"));
        assert_eq!(binds, vec!["SALES%", "O'BRIEN", "TMP\\_%"]);
        assert!(sql.starts_with(
            "o.owner IN (SELECT username FROM all_users WHERE oracle_maintained = 'N')"
        ));
        assert!(
            sql.contains("AND (o.owner LIKE :1 ESCAPE '\\' OR o.owner LIKE :2 ESCAPE '\\')"),
            "{sql}"
        );
        assert!(
            sql.ends_with("AND NOT (o.object_name LIKE :3 ESCAPE '\\')"),
            "{sql}"
        );
        assert!(!sql.contains("BRIEN"));
        let (sql, binds) = f.conditions("u.username", None);
        assert_eq!(binds.len(), 2);
        assert!(!sql.contains(":3"));
    }

    #[test]
    fn configured_schema_and_system_users() {
        let f = Filters::new(&DiscoveryRequest::default(), Some("HR_*"));
        let (_, binds) = f.conditions("u.username", None);
        assert_eq!(binds, vec!["HR\\_*".to_string()]);
        assert!(f.schemas.matches("HR_*") && !f.schemas.matches("HR_X"));
        let f = Filters::new(
            &DiscoveryRequest {
                include_system: true,
                ..Default::default()
            },
            None,
        );
        assert_eq!(f.conditions("u.username", None).0, "1 = 1");
    }
}
