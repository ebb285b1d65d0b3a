//! The difference between two discovered catalogs: tables added and removed,
//! columns added, removed and with a changed type. The diff route shows it;
//! a re-discovery that finds one queues a `SCHEMA_CHANGED` notice with it.

use std::collections::BTreeMap;

use matih_connector_core::{Catalog, Table, TableKind};
use serde::Serialize;
use utoipa::ToSchema;

/// A table kind as the API spells it (`TABLE`, `MATERIALIZED_VIEW`, …).
pub fn kind_name(kind: TableKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

#[derive(Debug, Default, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TableRef {
    pub schema: String,
    pub table: String,
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ColumnChange {
    pub schema: String,
    pub table: String,
    pub column: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_type: Option<String>,
}

/// Tables and columns added, removed, or with a changed type.
#[derive(Debug, Default, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Changes {
    pub tables_added: Vec<TableRef>,
    pub tables_removed: Vec<TableRef>,
    pub columns_added: Vec<ColumnChange>,
    pub columns_removed: Vec<ColumnChange>,
    /// Columns whose native or normalized type changed.
    pub columns_type_changed: Vec<ColumnChange>,
}

fn column_type(c: &matih_connector_core::Column) -> String {
    c.native_type.to_string()
}

pub fn diff_catalogs(old: &Catalog, new: &Catalog) -> Changes {
    diff_where(old, new, |_, _| true)
}

/// [`diff_catalogs`], comparing the columns of a table found in both only
/// where `detail(schema, table)` says they may differ (an incremental
/// discovery knows which relations it read again; the others kept the
/// previous catalog's columns). Tables are compared by reference: neither
/// catalog is copied.
pub fn diff_where(old: &Catalog, new: &Catalog, detail: impl Fn(&str, &str) -> bool) -> Changes {
    fn index(c: &Catalog) -> BTreeMap<(&str, &str), &Table> {
        c.schemas
            .iter()
            .flat_map(|s| {
                s.tables
                    .iter()
                    .map(move |t| ((s.name.as_str(), t.name.as_str()), t))
            })
            .collect()
    }
    let (a, b) = (index(old), index(new));
    let tref = |(s, t): &(&str, &str), table: &Table| TableRef {
        schema: (*s).to_owned(),
        table: (*t).to_owned(),
        kind: kind_name(table.kind),
    };
    let change = |(s, t): &(&str, &str), column: &str| ColumnChange {
        schema: (*s).to_owned(),
        table: (*t).to_owned(),
        column: column.to_owned(),
        data_type: None,
        from_type: None,
        to_type: None,
    };
    let mut out = Changes::default();
    for (k, t) in &b {
        let Some(old_t) = a.get(k) else {
            out.tables_added.push(tref(k, t));
            continue;
        };
        if !detail(k.0, k.1) {
            continue;
        }
        for c in &t.columns {
            match old_t.column(&c.name) {
                None => out.columns_added.push(ColumnChange {
                    data_type: Some(column_type(c)),
                    ..change(k, &c.name)
                }),
                Some(oc) if oc.native_type != c.native_type || oc.data_type != c.data_type => {
                    out.columns_type_changed.push(ColumnChange {
                        from_type: Some(column_type(oc)),
                        to_type: Some(column_type(c)),
                        ..change(k, &c.name)
                    })
                }
                Some(_) => {}
            }
        }
        for oc in &old_t.columns {
            if t.column(&oc.name).is_none() {
                out.columns_removed.push(ColumnChange {
                    data_type: Some(column_type(oc)),
                    ..change(k, &oc.name)
                });
            }
        }
    }
    for (k, t) in &a {
        if !b.contains_key(k) {
            out.tables_removed.push(tref(k, t));
        }
    }
    out
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.tables_added.is_empty()
            && self.tables_removed.is_empty()
            && self.columns_added.is_empty()
            && self.columns_removed.is_empty()
            && self.columns_type_changed.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use matih_connector_core::{Column, DataType, Schema, TableKind};

    use super::*;

    fn table(name: &str, cols: &[(&str, &str)]) -> Table {
        let mut t = Table::new(name, TableKind::Table);
        t.columns = cols
            .iter()
            .enumerate()
            .map(|(i, (n, ty))| Column {
                name: (*n).into(),
                ordinal: i as u32 + 1,
                native_type: (*ty).into(),
                data_type: DataType::Unknown,
                nullable: true,
                default: None,
                comment: None,
            })
            .collect();
        t
    }

    fn catalog(tables: Vec<Table>) -> Catalog {
        Catalog {
            schemas: vec![Schema {
                name: "s".into(),
                comment: None,
                tables,
            }],
        }
    }

    #[test]
    fn columns_are_compared_only_where_the_detail_may_differ() {
        let old = catalog(vec![
            table("kept", &[("id", "integer")]),
            table("changed", &[("id", "integer"), ("gone", "text")]),
            table("dropped", &[]),
        ]);
        let new = catalog(vec![
            table("added", &[]),
            table("changed", &[("id", "bigint"), ("new", "text")]),
            table("kept", &[("id", "integer")]),
        ]);
        let full = diff_catalogs(&old, &new);
        // Without the columns of the relation that was not read again, as an
        // incremental discovery's shape of the previous catalog has it.
        let mut shape = old.clone();
        shape.schemas[0].tables[0].columns.clear();
        let partial = diff_where(&shape, &new, |_, t| t == "changed");
        for ch in [&full, &partial] {
            let names = |v: &[ColumnChange]| v.iter().map(|c| c.column.clone()).collect::<Vec<_>>();
            assert_eq!(ch.tables_added.len(), 1);
            assert_eq!(ch.tables_added[0].table, "added");
            assert_eq!(ch.tables_removed[0].table, "dropped");
            assert_eq!(names(&ch.columns_added), ["new"]);
            assert_eq!(names(&ch.columns_removed), ["gone"]);
            assert_eq!(names(&ch.columns_type_changed), ["id"]);
            assert_eq!(
                ch.columns_type_changed[0].from_type.as_deref(),
                Some("integer")
            );
        }
    }
}
