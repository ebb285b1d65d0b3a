//! Incremental discovery: a cheap per-relation fingerprint of the catalog, and
//! the delta a re-discovery against an earlier fingerprint returns.
//!
//! A driver that can fingerprint its catalog answers
//! [`crate::Connection::discover_changed`] with every schema, the header
//! (name, kind, statistics, properties) of the relations it listed again and
//! the detail (columns, primary key, comment) of the relations that are new or
//! changed since the fingerprint; unchanged relations keep the detail of the
//! previous catalog, and relations it did not list at all (nothing about them
//! changed, statistics included) are carried whole ([`CatalogDelta::apply`]).
//! A source without a fingerprint, or a fingerprint
//! taken by another driver or under another request, gets a full discovery,
//! transparently: the delta then says `full`.
//!
//! ```
//! # use matih_connector_core::{Catalog, CatalogDelta};
//! let previous = Catalog::default();
//! let delta = CatalogDelta::full(Catalog::default());
//! let now = delta.apply(previous);
//! assert_eq!(now.table_count(), 0);
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::{Catalog, DiscoveryRequest, Table};

/// A relation by name: the schema and the table as the source spells them.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RelationName {
    /// The schema (database, dataset…).
    pub schema: String,
    /// The table, view…
    pub table: String,
}

impl RelationName {
    /// `schema.table` as a value.
    pub fn new(schema: impl Into<String>, table: impl Into<String>) -> Self {
        RelationName {
            schema: schema.into(),
            table: table.into(),
        }
    }
}

/// One relation's print: its name and whatever the driver compares to decide
/// whether its definition changed (opaque outside the driver).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RelationPrint {
    /// The schema the relation was in.
    pub schema: String,
    /// The relation's name.
    pub table: String,
    /// The driver's print of its definition.
    pub print: String,
}

/// A catalog's fingerprint: one print per relation, keyed by the driver's
/// stable identity for it (PostgreSQL: the oid; MySQL: the name), plus a
/// source-wide watermark. Taken by one driver under one request: another
/// driver's, another format's or another request's is not compared, the next
/// discovery is then full.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CatalogFingerprint {
    /// The driver and the version of its fingerprint format (`postgres/1`).
    pub format: String,
    /// The request the fingerprint was taken under.
    pub request: DiscoveryRequest,
    /// A source-wide marker (PostgreSQL: the transaction horizon), opaque.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark: Option<String>,
    /// Prints by the driver's key for each relation.
    pub relations: BTreeMap<String, RelationPrint>,
}

impl CatalogFingerprint {
    /// `previous` when it was taken in `format` under `req`: the only
    /// fingerprints a driver compares with.
    pub fn usable<'a>(
        previous: Option<&'a CatalogFingerprint>,
        format: &str,
        req: &DiscoveryRequest,
    ) -> Option<&'a CatalogFingerprint> {
        previous.filter(|p| p.format == format && p.request == *req)
    }
}

/// What a re-discovery found. `catalog` holds every schema in scope and the
/// relations the driver listed again, with fresh headers (kind, statistics,
/// properties); the relations in `changed` (new or with a changed definition)
/// also carry their detail (columns, primary key, comment). The listed
/// relations' other detail is the previous catalog's, and a relation of the
/// previous catalog that is neither listed nor `removed` is unchanged, header
/// included: [`CatalogDelta::apply`] puts both back.
#[derive(Clone, Debug, PartialEq)]
pub struct CatalogDelta {
    /// Pass to the next re-discovery; `None` when the source offers none.
    pub fingerprint: Option<CatalogFingerprint>,
    /// True when this was a full discovery: `catalog` is complete.
    pub full: bool,
    /// The catalog now: complete when `full`, else every schema, the
    /// relations listed again, and detail for `changed` only.
    pub catalog: Catalog,
    /// New relations and relations whose definition changed.
    pub changed: BTreeSet<RelationName>,
    /// Relations of the fingerprint that are gone (dropped, renamed away, or
    /// out of the source's scope).
    pub removed: BTreeSet<RelationName>,
}

impl CatalogDelta {
    /// A full discovery's result as a delta (sources without a fingerprint).
    pub fn full(catalog: Catalog) -> Self {
        CatalogDelta {
            fingerprint: None,
            full: true,
            catalog,
            changed: BTreeSet::new(),
            removed: BTreeSet::new(),
        }
    }

    /// The complete catalog: this delta's catalog with the detail of every
    /// unchanged relation it lists, and every unchanged relation it does not
    /// list, taken from `previous` (the catalog discovered with the
    /// fingerprint this delta was computed against). A relation carried
    /// whole lands in its schema when the delta lists that schema.
    pub fn apply(self, previous: Catalog) -> Catalog {
        let mut catalog = self.catalog;
        if self.full {
            return catalog;
        }
        let mut old: HashMap<String, Vec<Table>> = previous
            .schemas
            .into_iter()
            .map(|s| (s.name, s.tables))
            .collect();
        // Changed and removed names by schema, looked up without building a
        // name per relation.
        let by_schema = |set: &BTreeSet<RelationName>| {
            let mut m: HashMap<String, HashSet<String>> = HashMap::new();
            for n in set {
                m.entry(n.schema.clone())
                    .or_default()
                    .insert(n.table.clone());
            }
            m
        };
        let (changed, removed) = (by_schema(&self.changed), by_schema(&self.removed));
        let empty = HashSet::new();
        for schema in &mut catalog.schemas {
            let changed = changed.get(&schema.name).unwrap_or(&empty);
            let removed = removed.get(&schema.name).unwrap_or(&empty);
            let Some(prev_tables) = old.remove(&schema.name) else {
                continue;
            };
            let listed: HashMap<String, usize> = schema
                .tables
                .iter()
                .enumerate()
                .map(|(i, t)| (t.name.clone(), i))
                .collect();
            let mut carried = Vec::new();
            for prev in prev_tables {
                if changed.contains(&prev.name) {
                    continue;
                }
                match listed.get(&prev.name) {
                    Some(&i) => {
                        let table = &mut schema.tables[i];
                        table.columns = prev.columns;
                        table.primary_key = prev.primary_key;
                        table.comment = prev.comment;
                    }
                    None if !removed.contains(&prev.name) => carried.push(prev),
                    None => {}
                }
            }
            if !carried.is_empty() {
                if schema.tables.is_empty() {
                    schema.tables = carried;
                } else {
                    schema.tables.append(&mut carried);
                }
                // Linear on the previous catalog's order, which is sorted.
                schema.tables.sort_by(|a, b| a.name.cmp(&b.name));
            }
        }
        catalog
    }
}

/// A stable 64-bit FNV-1a hash of `parts`, each followed by a separator, as
/// hex: prints must compare equal across processes and releases, which the
/// standard library's hasher does not promise.
pub fn stable_hash<'a>(parts: impl IntoIterator<Item = &'a str>) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.bytes().chain(std::iter::once(0x1f)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Column, DataType, Schema, TableKind};

    fn table(name: &str, cols: &[&str], rows: Option<u64>) -> Table {
        let mut t = Table::new(name, TableKind::Table);
        t.estimated_rows = rows;
        t.comment = Some(format!("about {name}"));
        t.primary_key = cols
            .first()
            .map(|c| vec![c.to_string()])
            .unwrap_or_default();
        t.columns = cols
            .iter()
            .enumerate()
            .map(|(i, c)| Column {
                name: (*c).into(),
                ordinal: i as u32 + 1,
                native_type: "integer".into(),
                data_type: DataType::Int32,
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
    fn apply_keeps_unchanged_detail_takes_fresh_headers_and_changed_detail() {
        let previous = catalog(vec![
            table("a", &["x", "y"], Some(1)),
            table("b", &["z"], Some(2)),
            table("gone", &["q"], None),
        ]);
        // Headers only for the unchanged `a`, full detail for the changed `b`
        // and the new `c`; `gone` is not listed any more.
        let mut a = Table::new("a", TableKind::Table);
        a.estimated_rows = Some(10);
        let delta = CatalogDelta {
            fingerprint: None,
            full: false,
            catalog: catalog(vec![
                a,
                table("b", &["z", "w"], Some(2)),
                table("c", &["k"], None),
            ]),
            changed: [RelationName::new("s", "b"), RelationName::new("s", "c")].into(),
            removed: [RelationName::new("s", "gone")].into(),
        };
        let now = delta.apply(previous);
        let mut want_a = table("a", &["x", "y"], Some(10));
        want_a.estimated_rows = Some(10);
        assert_eq!(
            now,
            catalog(vec![
                want_a,
                table("b", &["z", "w"], Some(2)),
                table("c", &["k"], None)
            ])
        );
    }

    #[test]
    fn apply_carries_unlisted_relations_whole_unless_removed() {
        let previous = Catalog {
            schemas: vec![
                Schema {
                    name: "s".into(),
                    comment: None,
                    tables: vec![
                        table("a", &["x"], Some(1)),
                        table("b", &["y"], Some(2)),
                        table("gone", &["q"], None),
                    ],
                },
                Schema {
                    name: "dropped".into(),
                    comment: None,
                    tables: vec![table("t", &["z"], None)],
                },
            ],
        };
        // Only `c` (new) is listed; `a` and `b` are unchanged, `gone` is
        // removed, and the schema `dropped` is no longer listed.
        let mut now = catalog(vec![table("c", &["k"], None)]);
        now.schemas[0].comment = Some("fresh".into());
        let delta = CatalogDelta {
            fingerprint: None,
            full: false,
            catalog: now,
            changed: [RelationName::new("s", "c")].into(),
            removed: [RelationName::new("s", "gone")].into(),
        };
        let mut want = catalog(vec![
            table("a", &["x"], Some(1)),
            table("b", &["y"], Some(2)),
            table("c", &["k"], None),
        ]);
        want.schemas[0].comment = Some("fresh".into());
        assert_eq!(delta.apply(previous), want);
    }

    #[test]
    fn a_full_delta_replaces_the_previous_catalog() {
        let previous = catalog(vec![table("a", &["x"], None)]);
        let now = CatalogDelta::full(Catalog::default()).apply(previous);
        assert_eq!(now, Catalog::default());
    }

    #[test]
    fn fingerprints_from_another_driver_or_request_are_not_usable() {
        let req = DiscoveryRequest::default();
        let fp = CatalogFingerprint {
            format: "postgres/1".into(),
            request: req.clone(),
            watermark: None,
            relations: BTreeMap::new(),
        };
        assert!(CatalogFingerprint::usable(Some(&fp), "postgres/1", &req).is_some());
        assert!(CatalogFingerprint::usable(Some(&fp), "mysql/1", &req).is_none());
        let other = DiscoveryRequest {
            statistics: false,
            ..req.clone()
        };
        assert!(CatalogFingerprint::usable(Some(&fp), "postgres/1", &other).is_none());
        assert!(CatalogFingerprint::usable(None, "postgres/1", &req).is_none());
    }

    #[test]
    fn stable_hash_is_fixed_and_separates_parts() {
        assert_eq!(stable_hash([]), "cbf29ce484222325");
        assert_ne!(stable_hash(["ab", "c"]), stable_hash(["a", "bc"]));
        assert_eq!(stable_hash(["x", "y"]), stable_hash(["x", "y"]));
    }
}
