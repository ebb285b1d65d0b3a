//! Set-based discovery: datasets from `datasets.list` (paged), then per
//! dataset a bounded number of INFORMATION_SCHEMA queries through
//! `jobs.query` with the table filters as bound parameters: TABLES,
//! TABLE_OPTIONS (descriptions), KEY_COLUMN_USAGE + TABLE_CONSTRAINTS
//! (primary keys), `__TABLES__` (rows and bytes), COLUMNS and
//! COLUMN_FIELD_PATHS (column descriptions). Never one call per table.
//!
//! Dataset names cannot be query parameters (they sit in FROM), so they are
//! quoted as identifiers after a check that refuses anything that could
//! leave the quotes; every other value travels as a parameter.

use std::collections::BTreeMap;

use matih_connector_core::{
    Catalog, Column, ConnectorError, Depth, DiscoveryRequest, ErrorCode, NameFilter, Schema, Table,
    TableKind,
};
use serde_json::Value;

use crate::connection::{BqConnection, QueryParam};
use crate::types::normalize;

/// Datasets per `datasets.list` page (the API's maximum is 1000).
const DATASET_PAGE: &str = "1000";
/// Dataset pages followed at most.
const MAX_DATASET_PAGES: usize = 100;

/// A glob as an anchored RE2 pattern: RE2 (GoogleSQL's REGEXP_CONTAINS) and
/// DuckDB agree on it, while LIKE's escape character differs between them.
pub(crate) fn glob_to_regex(glob: &str) -> String {
    let mut out = String::from("^");
    let mut chars = glob.chars();
    while let Some(c) = chars.next() {
        match c {
            '*' => out.push_str(".*"),
            '?' => out.push('.'),
            '\\' => push_literal(&mut out, chars.next().unwrap_or('\\')),
            c => push_literal(&mut out, c),
        }
    }
    out.push('$');
    out
}

fn push_literal(out: &mut String, c: char) {
    if c.is_ascii_punctuation() {
        out.push('\\');
    }
    out.push(c);
}

/// The WHERE clause filtering `column` by the request's table patterns,
/// with its parameters.
fn table_filter(column: &str, f: &NameFilter) -> (String, Vec<QueryParam>) {
    let sql = format!(
        "(ARRAY_LENGTH(@inc) = 0 OR EXISTS (SELECT 1 FROM UNNEST(@inc) AS p WHERE REGEXP_CONTAINS({column}, p))) \
         AND NOT EXISTS (SELECT 1 FROM UNNEST(@exc) AS p WHERE REGEXP_CONTAINS({column}, p))"
    );
    let params = vec![
        QueryParam::Strings("inc", f.include.iter().map(|g| glob_to_regex(g)).collect()),
        QueryParam::Strings("exc", f.exclude.iter().map(|g| glob_to_regex(g)).collect()),
    ];
    (sql, params)
}

/// `` `project`.`dataset` `` for FROM clauses. Backticks, backslashes and
/// control characters cannot appear in BigQuery ids; a name holding one is
/// refused rather than escaped.
pub(crate) fn quoted_dataset(project: &str, dataset: &str) -> Result<String, ConnectorError> {
    let bad = |s: &str| s.is_empty() || s.chars().any(|c| c == '`' || c == '\\' || c.is_control());
    if bad(project) || bad(dataset) {
        return Err(ConnectorError::new(
            ErrorCode::InvalidConfiguration,
            format!("dataset name {dataset:?} cannot be quoted as a GoogleSQL identifier"),
        )
        .with_context("dataset", dataset));
    }
    Ok(format!("`{project}`.`{dataset}`"))
}

fn table_kind(table_type: &str) -> TableKind {
    match table_type {
        "VIEW" => TableKind::View,
        "MATERIALIZED VIEW" | "MATERIALIZED_VIEW" => TableKind::MaterializedView,
        "EXTERNAL" => TableKind::External,
        // BASE TABLE, CLONE, SNAPSHOT: stored tables.
        _ => TableKind::Table,
    }
}

/// TABLE_OPTIONS values are GoogleSQL literals: `"text"` for strings.
fn option_string(v: &str) -> String {
    serde_json::from_str::<String>(v).unwrap_or_else(|_| v.trim_matches('"').to_owned())
}

/// The datasets discovery covers: the configured one, else every dataset of
/// the project matching the schema filter.
pub(crate) async fn datasets(
    conn: &BqConnection,
    filter: &NameFilter,
) -> Result<Vec<String>, ConnectorError> {
    if let Some(d) = &conn.cfg.dataset {
        return Ok(if filter.matches(d) {
            vec![d.clone()]
        } else {
            Vec::new()
        });
    }
    let project = conn.cfg.project.clone();
    let what = format!("listing datasets of project {project}");
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..MAX_DATASET_PAGES {
        let mut q = vec![("maxResults", DATASET_PAGE)];
        if let Some(t) = token.as_deref() {
            q.push(("pageToken", t));
        }
        let url = conn.url(&["projects", &project, "datasets"], &q);
        let page = conn
            .get_json(url, &what)
            .await
            .map_err(|e| e.with_context("project", &project))?;
        for d in page
            .get("datasets")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(id) = d
                .pointer("/datasetReference/datasetId")
                .and_then(Value::as_str)
            {
                if filter.matches(id) {
                    out.push(id.to_owned());
                }
            }
        }
        token = page
            .get("nextPageToken")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(str::to_owned);
        if token.is_none() {
            out.sort();
            return Ok(out);
        }
    }
    Err(ConnectorError::new(
        ErrorCode::ProtocolError,
        format!("{what}: more than {MAX_DATASET_PAGES} pages of datasets"),
    ))
}

/// Runs a query whose view may be missing (an emulator) or not granted;
/// those failures leave the facts it would add out instead of failing
/// discovery. Transport, time and authentication failures still fail.
async fn optional(
    conn: &BqConnection,
    sql: &str,
    params: &[QueryParam],
    what: &str,
) -> Result<Option<Vec<Vec<Option<String>>>>, ConnectorError> {
    match conn.query(sql, params, what).await {
        Ok(rows) => Ok(Some(rows)),
        Err(e)
            if matches!(
                e.code(),
                ErrorCode::SourceError
                    | ErrorCode::DatabaseNotFound
                    | ErrorCode::PermissionDenied
                    | ErrorCode::Unsupported
                    | ErrorCode::InvalidConfiguration
            ) =>
        {
            tracing::debug!(error = %e, "{what}: left out");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

fn cell(row: &[Option<String>], i: usize) -> Option<&str> {
    row.get(i).and_then(|c| c.as_deref())
}

/// One dataset's tables (and columns when asked).
async fn dataset_tables(
    conn: &BqConnection,
    dataset: &str,
    req: &DiscoveryRequest,
) -> Result<Vec<Table>, ConnectorError> {
    let from = quoted_dataset(&conn.cfg.project, dataset)?;
    let ctx = |e: ConnectorError| e.with_context("dataset", dataset);
    let (filter, params) = table_filter("table_name", &req.tables);
    let sql = format!(
        "SELECT table_name, table_type FROM {from}.INFORMATION_SCHEMA.TABLES WHERE {filter} ORDER BY table_name"
    );
    let rows = conn
        .query(&sql, &params, &format!("listing tables of {dataset}"))
        .await
        .map_err(ctx)?;
    let mut tables: BTreeMap<String, Table> = BTreeMap::new();
    for r in &rows {
        let Some(name) = cell(r, 0) else { continue };
        // The pushed-down filter is the first cut; the core's matcher is the
        // authority.
        if !req.tables.matches(name) {
            continue;
        }
        let ty = cell(r, 1).unwrap_or("BASE TABLE");
        let mut t = Table::new(name, table_kind(ty));
        t.properties
            .insert("tableType".into(), Value::String(ty.to_owned()));
        tables.insert(name.to_owned(), t);
    }
    if tables.is_empty() {
        return Ok(Vec::new());
    }

    let sql = format!(
        "SELECT table_name, option_value FROM {from}.INFORMATION_SCHEMA.TABLE_OPTIONS \
         WHERE option_name = 'description' AND {filter}"
    );
    if let Some(rows) = optional(conn, &sql, &params, "reading table descriptions").await? {
        for r in &rows {
            if let (Some(t), Some(v)) = (cell(r, 0).and_then(|n| tables.get_mut(n)), cell(r, 1)) {
                t.comment = Some(option_string(v));
            }
        }
    }

    let (kfilter, kparams) = table_filter("k.table_name", &req.tables);
    let sql = format!(
        "SELECT k.table_name, k.column_name FROM {from}.INFORMATION_SCHEMA.KEY_COLUMN_USAGE AS k \
         JOIN {from}.INFORMATION_SCHEMA.TABLE_CONSTRAINTS AS c \
         ON c.constraint_name = k.constraint_name AND c.table_name = k.table_name \
         WHERE c.constraint_type = 'PRIMARY KEY' AND {kfilter} \
         ORDER BY k.table_name, k.ordinal_position"
    );
    if let Some(rows) = optional(conn, &sql, &kparams, "reading primary keys").await? {
        for r in &rows {
            if let (Some(t), Some(c)) = (cell(r, 0).and_then(|n| tables.get_mut(n)), cell(r, 1)) {
                t.primary_key.push(c.to_owned());
            }
        }
    }

    if req.statistics {
        let (sfilter, sparams) = table_filter("table_id", &req.tables);
        let sql = format!(
            "SELECT table_id, row_count, size_bytes FROM {from}.__TABLES__ WHERE {sfilter}"
        );
        if let Some(rows) = optional(conn, &sql, &sparams, "reading table statistics").await? {
            for r in &rows {
                if let Some(t) = cell(r, 0).and_then(|n| tables.get_mut(n)) {
                    t.estimated_rows = cell(r, 1).and_then(|v| v.parse().ok());
                    t.size_bytes = cell(r, 2).and_then(|v| v.parse().ok());
                }
            }
        }
    }

    if req.depth >= Depth::Columns {
        let sql = format!(
            "SELECT table_name, column_name, ordinal_position, is_nullable, data_type \
             FROM {from}.INFORMATION_SCHEMA.COLUMNS WHERE {filter} \
             ORDER BY table_name, ordinal_position"
        );
        let rows = conn
            .query(&sql, &params, &format!("reading columns of {dataset}"))
            .await
            .map_err(ctx)?;
        for r in &rows {
            let (Some(t), Some(name)) = (cell(r, 0).and_then(|n| tables.get_mut(n)), cell(r, 1))
            else {
                continue;
            };
            let native = cell(r, 4).unwrap_or("").to_owned();
            t.columns.push(Column {
                name: name.to_owned().into(),
                ordinal: cell(r, 2)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(t.columns.len() as u32 + 1),
                data_type: normalize(&native),
                native_type: native.into(),
                nullable: !cell(r, 3).is_some_and(|v| v.eq_ignore_ascii_case("NO")),
                default: None,
                comment: None,
            });
        }
        // Top-level column descriptions: the field path of a top-level
        // column is its name.
        let sql = format!(
            "SELECT table_name, field_path, description FROM {from}.INFORMATION_SCHEMA.COLUMN_FIELD_PATHS \
             WHERE description IS NOT NULL AND {filter}"
        );
        if let Some(rows) = optional(conn, &sql, &params, "reading column descriptions").await? {
            for r in &rows {
                let (Some(t), Some(path), Some(d)) = (
                    cell(r, 0).and_then(|n| tables.get_mut(n)),
                    cell(r, 1),
                    cell(r, 2),
                ) else {
                    continue;
                };
                if let Some(c) = t.columns.iter_mut().find(|c| c.name == path) {
                    c.comment = Some(d.to_owned());
                }
            }
        }
    }
    Ok(tables.into_values().collect())
}

pub(crate) async fn discover(
    conn: &BqConnection,
    req: &DiscoveryRequest,
) -> Result<Catalog, ConnectorError> {
    let mut catalog = Catalog::default();
    for d in datasets(conn, &req.schemas).await? {
        let tables = if req.depth >= Depth::Tables {
            dataset_tables(conn, &d, req).await?
        } else {
            Vec::new()
        };
        catalog.schemas.push(Schema {
            name: d,
            comment: None,
            tables,
        });
    }
    catalog.sort();
    Ok(catalog)
}

/// Access to the dataset list (or the configured dataset), and at table
/// depth one INFORMATION_SCHEMA.TABLES query on the first matching dataset,
/// which proves jobs can run.
pub(crate) async fn probe(
    conn: &BqConnection,
    req: &DiscoveryRequest,
) -> Result<(), ConnectorError> {
    conn.check_access().await?;
    if req.depth < Depth::Tables {
        return Ok(());
    }
    if let Some(d) = datasets(conn, &req.schemas).await?.first() {
        let from = quoted_dataset(&conn.cfg.project, d)?;
        let sql = format!("SELECT table_name FROM {from}.INFORMATION_SCHEMA.TABLES LIMIT 1");
        conn.query(&sql, &[], &format!("listing tables of {d}"))
            .await
            .map_err(|e| e.with_context("dataset", d))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_become_anchored_regexes() {
        assert_eq!(glob_to_regex("sales_*"), "^sales\\_.*$");
        assert_eq!(glob_to_regex("Order-Items"), "^Order\\-Items$");
        assert_eq!(glob_to_regex("a?c"), "^a.c$");
        assert_eq!(glob_to_regex("x\\*"), "^x\\*$");
        assert_eq!(glob_to_regex("ünï(.)"), "^ünï\\(\\.\\)$");
    }

    #[test]
    fn identifiers_are_quoted_or_refused() {
        assert_eq!(quoted_dataset("p-1", "sales").unwrap(), "`p-1`.`sales`");
        for bad in ["a`b", "a\\b", "a\nb", ""] {
            assert!(quoted_dataset("p", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn kinds_and_options() {
        assert_eq!(table_kind("BASE TABLE"), TableKind::Table);
        assert_eq!(table_kind("VIEW"), TableKind::View);
        assert_eq!(table_kind("MATERIALIZED VIEW"), TableKind::MaterializedView);
        assert_eq!(table_kind("EXTERNAL"), TableKind::External);
        assert_eq!(table_kind("SNAPSHOT"), TableKind::Table);
        assert_eq!(option_string("\"All \\\"orders\\\"\""), "All \"orders\"");
        assert_eq!(option_string("plain"), "plain");
    }
}
