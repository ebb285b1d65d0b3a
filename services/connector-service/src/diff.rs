//! The difference between two discovered catalogs: tables added and removed,
//! columns added, removed and with a changed type. The diff route shows it;
//! a re-discovery that finds one queues a `SCHEMA_CHANGED` notice with it.

use std::collections::BTreeMap;

use matih_connector_core::{Catalog, Table};
use serde::Serialize;
use utoipa::ToSchema;

pub fn kind_name(t: &Table) -> String {
    serde_json::to_value(t.kind)
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
    let index = |c: &Catalog| -> BTreeMap<(String, String), Table> {
        c.schemas
            .iter()
            .flat_map(|s| {
                s.tables
                    .iter()
                    .map(move |t| ((s.name.clone(), t.name.clone()), t.clone()))
            })
            .collect()
    };
    let (a, b) = (index(old), index(new));
    let tref = |(s, t): &(String, String), table: &Table| TableRef {
        schema: s.clone(),
        table: t.clone(),
        kind: kind_name(table),
    };
    let mut added = Vec::new();
    let mut removed = Vec::new();
    let mut cols_added = Vec::new();
    let mut cols_removed = Vec::new();
    let mut changed = Vec::new();
    for (k, t) in &b {
        match a.get(k) {
            None => added.push(tref(k, t)),
            Some(old_t) => {
                for c in &t.columns {
                    match old_t.column(&c.name) {
                        None => cols_added.push(ColumnChange {
                            schema: k.0.clone(),
                            table: k.1.clone(),
                            column: c.name.to_string(),
                            data_type: Some(column_type(c)),
                            from_type: None,
                            to_type: None,
                        }),
                        Some(oc)
                            if oc.native_type != c.native_type || oc.data_type != c.data_type =>
                        {
                            changed.push(ColumnChange {
                                schema: k.0.clone(),
                                table: k.1.clone(),
                                column: c.name.to_string(),
                                data_type: None,
                                from_type: Some(column_type(oc)),
                                to_type: Some(column_type(c)),
                            })
                        }
                        Some(_) => {}
                    }
                }
                for oc in &old_t.columns {
                    if t.column(&oc.name).is_none() {
                        cols_removed.push(ColumnChange {
                            schema: k.0.clone(),
                            table: k.1.clone(),
                            column: oc.name.to_string(),
                            data_type: Some(column_type(oc)),
                            from_type: None,
                            to_type: None,
                        });
                    }
                }
            }
        }
    }
    for (k, t) in &a {
        if !b.contains_key(k) {
            removed.push(tref(k, t));
        }
    }
    Changes {
        tables_added: added,
        tables_removed: removed,
        columns_added: cols_added,
        columns_removed: cols_removed,
        columns_type_changed: changed,
    }
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
