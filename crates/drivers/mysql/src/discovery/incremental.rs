//! Incremental re-discovery for MySQL and MariaDB.
//!
//! `information_schema` keeps no row versions, and its times are unreliable
//! for this: `CREATE_TIME` has one-second resolution (a change in the same
//! second as the last discovery would go unseen) and is NULL for MariaDB's
//! views, and `UPDATE_TIME` moves with every write to the data. So a table's
//! print is a hash of its definition as discovery reads it, computed by the
//! server: per table the column count and two CRC32 aggregates over every
//! column's name, position, types, nullability, default, extra and comment
//! (one grouped `COLUMNS` query), the primary key's columns (`STATISTICS`),
//! a view's definition (`VIEWS`), MariaDB's JSON checks (`CHECK_CONSTRAINTS`),
//! and the header the table listing returns (kind, engine, comment, options).
//!
//! What this saves is the column rows' transfer and the client's work: the
//! server still walks the data dictionary for the grouped `COLUMNS` query,
//! as it does for the full listing. Columns and keys are then read for the
//! changed tables only (none when nothing changed).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use matih_connector_core::{
    stable_hash, CatalogDelta, CatalogFingerprint, ConnectorError, Depth, DiscoveryRequest,
    RelationName, RelationPrint, Table,
};
use mysql_async::Value;

use super::{discover_with, json_checks_query, Cells, TableList, Where};
use crate::connection::MysqlConnection;

/// The fingerprint format; bump when the print changes meaning.
const FORMAT: &str = "mysql/1";

/// More changed tables than this are filtered on arrival, not in SQL (two
/// bound values per table).
const MAX_PUSHED_PAIRS: usize = 500;

/// One column's definition as the server spells it, NULLs distinguished.
const COLUMN_TEXT: &str = "CONCAT_WS(0x1f, COLUMN_NAME, ORDINAL_POSITION, COLUMN_TYPE, DATA_TYPE, \
     IS_NULLABLE, IFNULL(COLUMN_DEFAULT, 0x00), EXTRA, COLUMN_COMMENT, \
     IFNULL(NUMERIC_PRECISION, 0x00), IFNULL(NUMERIC_SCALE, 0x00))";

fn column_prints_query(req: &DiscoveryRequest, only: Option<&str>) -> (String, Vec<Value>) {
    let mut w = Where::default();
    w.tables("TABLE_SCHEMA", "TABLE_NAME", req, only);
    (
        format!(
            "SELECT TABLE_SCHEMA, TABLE_NAME, COUNT(*), SUM(CRC32({COLUMN_TEXT})), \
             BIT_XOR(CRC32(CONCAT(ORDINAL_POSITION, 0x1d, {COLUMN_TEXT}))) \
             FROM information_schema.COLUMNS{} GROUP BY TABLE_SCHEMA, TABLE_NAME",
            w.sql
        ),
        w.params,
    )
}

fn key_prints_query(req: &DiscoveryRequest, only: Option<&str>) -> (String, Vec<Value>) {
    let mut w = Where::default();
    w.and("INDEX_NAME = 'PRIMARY'");
    w.tables("TABLE_SCHEMA", "TABLE_NAME", req, only);
    (
        format!(
            "SELECT TABLE_SCHEMA, TABLE_NAME, COUNT(*), \
             SUM(CRC32(CONCAT_WS(0x1f, COLUMN_NAME, SEQ_IN_INDEX))) \
             FROM information_schema.STATISTICS{} GROUP BY TABLE_SCHEMA, TABLE_NAME",
            w.sql
        ),
        w.params,
    )
}

fn view_prints_query(req: &DiscoveryRequest, only: Option<&str>) -> (String, Vec<Value>) {
    let mut w = Where::default();
    w.tables("TABLE_SCHEMA", "TABLE_NAME", req, only);
    (
        format!(
            "SELECT TABLE_SCHEMA, TABLE_NAME, MD5(VIEW_DEFINITION) FROM information_schema.VIEWS{}",
            w.sql
        ),
        w.params,
    )
}

/// Limits a detail query to the changed tables, when they are few enough to
/// bind; otherwise rows are filtered on arrival.
pub(super) fn restrict(
    (mut sql, mut params): (String, Vec<Value>),
    changed: Option<&HashSet<(String, String)>>,
) -> (String, Vec<Value>) {
    let Some(changed) = changed.filter(|c| !c.is_empty() && c.len() <= MAX_PUSHED_PAIRS) else {
        return (sql, params);
    };
    // Every detail query's conditions come from `Where`, the only WHERE.
    sql.push_str(if sql.contains(" WHERE ") {
        " AND "
    } else {
        " WHERE "
    });
    let mut sorted: Vec<&(String, String)> = changed.iter().collect();
    sorted.sort();
    let pairs: Vec<&str> = sorted.iter().map(|_| "(?, ?)").collect();
    sql.push_str(&format!(
        "(TABLE_SCHEMA, TABLE_NAME) IN ({})",
        pairs.join(", ")
    ));
    for (schema, table) in sorted {
        params.push(Value::from(schema.as_str()));
        params.push(Value::from(table.as_str()));
    }
    (sql, params)
}

fn key_of(schema: &str, table: &str) -> String {
    format!("{schema}\u{1f}{table}")
}

/// The state of one incremental discovery: the previous prints in, the new
/// prints and the changed tables out.
pub(super) struct Pass<'a> {
    previous: Option<&'a CatalogFingerprint>,
    prints: BTreeMap<String, RelationPrint>,
    changed: BTreeSet<RelationName>,
}

impl Pass<'_> {
    /// Takes every listed table's print and returns the tables whose print
    /// is new or differs from the previous one.
    pub(super) async fn select(
        &mut self,
        conn: &mut MysqlConnection,
        req: &DiscoveryRequest,
        only: Option<&str>,
        tables: &HashMap<(String, String), Table>,
    ) -> Result<HashSet<(String, String)>, ConnectorError> {
        let mut parts: HashMap<(String, String), Vec<String>> = HashMap::new();
        let queries = [
            ("reading column prints", column_prints_query(req, only)),
            ("reading primary key prints", key_prints_query(req, only)),
            ("reading view definitions", view_prints_query(req, only)),
        ];
        for (what, (sql, params)) in queries {
            for row in conn.rows(what, &sql, params).await? {
                let width = row.len();
                let c = Cells(row);
                let key = (c.name(0, what)?, c.name(1, what)?);
                let part = (2..width)
                    .map(|i| c.text(i).unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join(",");
                parts.entry(key).or_default().push(format!("{what}:{part}"));
            }
        }
        if conn.is_mariadb().await? {
            const WHAT: &str = "reading JSON checks";
            let (sql, params) = json_checks_query(req, only, &TableList::default());
            let mut checks: Vec<((String, String), String)> = Vec::new();
            for row in conn.rows(WHAT, &sql, params).await? {
                let c = Cells(row);
                let key = (c.name(0, WHAT)?, c.name(1, WHAT)?);
                let check = format!(
                    "{}={}",
                    c.text(2).unwrap_or_default(),
                    c.text(3).unwrap_or_default()
                );
                checks.push((key, check));
            }
            checks.sort();
            for (key, check) in checks {
                parts
                    .entry(key)
                    .or_default()
                    .push(format!("{WHAT}:{check}"));
            }
        }

        let mut changed = HashSet::new();
        for ((schema, name), table) in tables {
            let header = serde_header(table);
            let mut items = vec![header];
            if let Some(p) = parts.remove(&(schema.clone(), name.clone())) {
                items.extend(p);
            }
            let print = stable_hash(items.iter().map(String::as_str));
            let key = key_of(schema, name);
            let same = self
                .previous
                .and_then(|p| p.relations.get(&key))
                .is_some_and(|old| old.print == print);
            if !same {
                changed.insert((schema.clone(), name.clone()));
                self.changed
                    .insert(RelationName::new(schema.as_str(), name.as_str()));
            }
            self.prints.insert(
                key,
                RelationPrint {
                    schema: schema.clone(),
                    table: name.clone(),
                    print,
                },
            );
        }
        Ok(changed)
    }
}

/// What the table listing says of a table's definition (not its statistics).
fn serde_header(t: &Table) -> String {
    let mut s = format!("{:?}|{}", t.kind, t.comment.as_deref().unwrap_or(""));
    for (k, v) in &t.properties {
        s.push_str(&format!("|{k}={v}"));
    }
    s
}

/// Re-discovers against `previous`: full when it is missing or was taken
/// under another request, else columns and keys for the changed tables only.
pub(crate) async fn discover_changed(
    conn: &mut MysqlConnection,
    req: &DiscoveryRequest,
    previous: Option<&CatalogFingerprint>,
) -> Result<CatalogDelta, ConnectorError> {
    if req.depth < Depth::Columns {
        return super::discover(conn, req).await.map(CatalogDelta::full);
    }
    let previous = CatalogFingerprint::usable(previous, FORMAT, req);
    let mut pass = Pass {
        previous,
        prints: BTreeMap::new(),
        changed: BTreeSet::new(),
    };
    let catalog = discover_with(conn, req, Some(&mut pass)).await?;
    let full = previous.is_none();
    let removed = match previous {
        Some(prev) => prev
            .relations
            .iter()
            .filter(|(key, _)| !pass.prints.contains_key(*key))
            .map(|(_, old)| RelationName::new(old.schema.as_str(), old.table.as_str()))
            .collect(),
        None => BTreeSet::new(),
    };
    Ok(CatalogDelta {
        fingerprint: Some(CatalogFingerprint {
            format: FORMAT.into(),
            request: req.clone(),
            watermark: None,
            relations: pass.prints,
        }),
        full,
        catalog,
        changed: if full { BTreeSet::new() } else { pass.changed },
        removed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detail_queries_are_limited_to_changed_tables_with_bound_pairs() {
        let req = DiscoveryRequest::default();
        let changed: HashSet<(String, String)> = [
            ("s".to_owned(), "b".to_owned()),
            ("s".to_owned(), "a".to_owned()),
        ]
        .into();
        let (sql, params) = restrict(
            super::super::columns_query(&req, None, super::super::tests::KEYED),
            Some(&changed),
        );
        assert!(
            sql.ends_with(" AND (TABLE_SCHEMA, TABLE_NAME) IN ((?, ?), (?, ?))"),
            "{sql}"
        );
        assert_eq!(
            params,
            vec![
                Value::from("s"),
                Value::from("a"),
                Value::from("s"),
                Value::from("b")
            ]
        );
        let all = DiscoveryRequest {
            include_system: true,
            ..Default::default()
        };
        let (sql, _) = restrict(
            super::super::columns_query(&all, None, super::super::tests::KEYED),
            Some(&changed),
        );
        assert!(sql.contains("COLUMNS WHERE (TABLE_SCHEMA"), "{sql}");
        let unrestricted = super::super::columns_query(&req, None, super::super::tests::KEYED);
        assert_eq!(restrict(unrestricted.clone(), None), unrestricted);
    }

    #[test]
    fn print_queries_group_one_view_each_with_bound_filters() {
        let req = DiscoveryRequest {
            tables: matih_connector_core::NameFilter {
                include: vec!["o*".into()],
                exclude: vec![],
            },
            ..Default::default()
        };
        for (sql, params) in [
            column_prints_query(&req, None),
            key_prints_query(&req, None),
            view_prints_query(&req, None),
        ] {
            assert_eq!(sql.matches("information_schema.").count(), 1, "{sql}");
            assert!(!sql.to_ascii_uppercase().contains(" JOIN "), "{sql}");
            assert_eq!(sql.matches('?').count(), params.len(), "{sql}");
            assert!(params.contains(&Value::from("o%")), "{sql}");
        }
    }
}
