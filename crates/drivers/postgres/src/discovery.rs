//! Catalog discovery: a fixed number of set-based catalog queries, whatever the
//! number of relations: schemas, relations (with statistics), primary keys,
//! user-defined types and columns. Every SQL text the driver sends lives here.
//!
//! Filters are pushed into SQL as `LIKE ANY($n::text[])` over bind parameters;
//! nothing from the request or the configuration is ever spliced into SQL.

use std::collections::HashMap;
use std::future::Future;

use futures_util::TryStreamExt;
use matih_connector_core::{
    with_timeout, Catalog, Column, ConnectorError, Depth, DiscoveryRequest, ErrorCode, Schema,
    Table, TableKind,
};
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use crate::connection::PgConnection;
use crate::errors::parse_error;
use crate::types::{TypeMapper, UserType};

// Parameters shared by every query below, in this order:
// $1 schema include, $2 schema exclude (LIKE patterns), $3 include system schemas,
// $4 table include, $5 table exclude.
//
// A schema is listed when the user has USAGE on it; a relation when the user
// may SELECT it or at least one of its columns.
macro_rules! schema_filter {
    () => {
        r"has_schema_privilege(n.oid, 'USAGE')
  AND (cardinality($1::text[]) = 0 OR n.nspname LIKE ANY($1::text[]))
  AND NOT (n.nspname LIKE ANY($2::text[]))
  AND ($3::bool OR (n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
       AND n.nspname NOT LIKE 'pg\_temp\_%' AND n.nspname NOT LIKE 'pg\_toast\_temp\_%'))"
    };
}

macro_rules! relation_filter {
    () => {
        r"
  AND c.relkind IN ('r', 'v', 'm', 'p', 'f')
  AND (cardinality($4::text[]) = 0 OR c.relname LIKE ANY($4::text[]))
  AND NOT (c.relname LIKE ANY($5::text[]))
  AND has_any_column_privilege(c.oid, 'SELECT')"
    };
}

const SCHEMAS_SQL: &str = concat!(
    r"SELECT n.nspname, d.description
FROM pg_namespace n
LEFT JOIN pg_description d
  ON d.objoid = n.oid AND d.classoid = 'pg_namespace'::regclass AND d.objsubid = 0
WHERE ",
    schema_filter!()
);

/// Relations with statistics. Sizes come from `relpages` (kept by VACUUM,
/// ANALYZE and CREATE INDEX) of the relation, its TOAST table and all their
/// indexes, times the block size: set-based and cheap, unlike calling
/// pg_total_relation_size once per relation, which stats every file.
const RELATIONS_STATS_SQL: &str = concat!(
    r"WITH ix AS (
  SELECT i.indrelid, sum(ic.relpages)::int8 AS pages
  FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
  GROUP BY i.indrelid
)
SELECT c.oid, n.nspname, c.relname, c.relkind, c.relnatts, d.description,
  inh.inhparent, p.relname AS parent_name, pn.nspname AS parent_schema,
  CASE WHEN c.relispartition THEN pg_get_expr(c.relpartbound, c.oid) END AS bound,
  c.reltuples,
  (c.relpages::int8 + coalesce(t.relpages, 0) + coalesce(ix.pages, 0) + coalesce(tix.pages, 0))
    * current_setting('block_size')::int8 AS size_bytes
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_description d ON d.objoid = c.oid AND d.classoid = 'pg_class'::regclass AND d.objsubid = 0
LEFT JOIN pg_inherits inh ON c.relispartition AND inh.inhrelid = c.oid
LEFT JOIN pg_class p ON p.oid = inh.inhparent
LEFT JOIN pg_namespace pn ON pn.oid = p.relnamespace
LEFT JOIN pg_class t ON t.oid = c.reltoastrelid
LEFT JOIN ix ON ix.indrelid = c.oid
LEFT JOIN ix tix ON tix.indrelid = c.reltoastrelid
WHERE ",
    schema_filter!(),
    relation_filter!()
);

const RELATIONS_SQL: &str = concat!(
    r"SELECT c.oid, n.nspname, c.relname, c.relkind, c.relnatts, d.description,
  inh.inhparent, p.relname AS parent_name, pn.nspname AS parent_schema,
  CASE WHEN c.relispartition THEN pg_get_expr(c.relpartbound, c.oid) END AS bound
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_description d ON d.objoid = c.oid AND d.classoid = 'pg_class'::regclass AND d.objsubid = 0
LEFT JOIN pg_inherits inh ON c.relispartition AND inh.inhrelid = c.oid
LEFT JOIN pg_class p ON p.oid = inh.inhparent
LEFT JOIN pg_namespace pn ON pn.oid = p.relnamespace
WHERE ",
    schema_filter!(),
    relation_filter!()
);

const PRIMARY_KEYS_SQL: &str = concat!(
    r"SELECT con.conrelid, array_agg(a.attname::text ORDER BY k.ord)
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN LATERAL unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
WHERE con.contype = 'p' AND ",
    schema_filter!(),
    relation_filter!(),
    "
GROUP BY con.conrelid"
);

/// Types created in the database, minus row types and arrays of row types
/// (one of each per table: thousands in a large catalog, mapped without a row).
const USER_TYPES_SQL: &str = r"SELECT t.oid, t.typtype, t.typname,
  CASE WHEN t.typcategory = 'A' THEN t.typelem ELSE 0::oid END,
  t.typbasetype,
  CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) END
FROM pg_type t
LEFT JOIN pg_type e ON e.oid = t.typelem
WHERE t.oid >= 16384 AND t.typtype <> 'c' AND (e.oid IS NULL OR e.typtype <> 'c')";

/// Every column of every listed relation, unordered: rows are grouped by
/// relation in memory, which is cheaper than making the server sort.
const COLUMNS_SQL: &str = concat!(
    r"SELECT a.attrelid, a.attnum, a.attname, a.atttypid, format_type(a.atttypid, a.atttypmod),
  a.attnotnull,
  CASE a.attidentity
    WHEN 'a' THEN 'GENERATED ALWAYS AS IDENTITY'
    WHEN 'd' THEN 'GENERATED BY DEFAULT AS IDENTITY'
    ELSE pg_get_expr(ad.adbin, ad.adrelid)
  END,
  d.description
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
LEFT JOIN pg_description d
  ON d.objoid = a.attrelid AND d.classoid = 'pg_class'::regclass AND d.objsubid = a.attnum
WHERE a.attnum > 0 AND NOT a.attisdropped AND ",
    schema_filter!(),
    relation_filter!()
);

const SCHEMA_ACCESS_SQL: &str =
    "SELECT has_schema_privilege(n.oid, 'USAGE') FROM pg_namespace n WHERE n.nspname = $1";

/// The filters as bind parameters.
struct Filters {
    schema_include: Vec<String>,
    schema_exclude: Vec<String>,
    include_system: bool,
    table_include: Vec<String>,
    table_exclude: Vec<String>,
}

impl Filters {
    /// A configured schema scopes discovery when the request names no schema.
    fn new(req: &DiscoveryRequest, configured_schema: Option<&str>) -> Self {
        let mut schema_include = req.schemas.include_like();
        if schema_include.is_empty() {
            if let Some(s) = configured_schema {
                schema_include.push(like_literal(s));
            }
        }
        Filters {
            schema_include,
            schema_exclude: req.schemas.exclude_like(),
            include_system: req.include_system,
            table_include: req.tables.include_like(),
            table_exclude: req.tables.exclude_like(),
        }
    }

    fn schema_params(&self) -> [&(dyn ToSql + Sync); 3] {
        [
            &self.schema_include,
            &self.schema_exclude,
            &self.include_system,
        ]
    }

    fn all_params(&self) -> [&(dyn ToSql + Sync); 5] {
        [
            &self.schema_include,
            &self.schema_exclude,
            &self.include_system,
            &self.table_include,
            &self.table_exclude,
        ]
    }
}

/// A name matched literally by `LIKE … ESCAPE '\'`.
fn like_literal(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    for c in name.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn table_kind(relkind: i8) -> TableKind {
    match relkind as u8 {
        b'v' => TableKind::View,
        b'm' => TableKind::MaterializedView,
        b'p' => TableKind::Partitioned,
        b'f' => TableKind::External,
        _ => TableKind::Table,
    }
}

/// Runs one catalog query to completion, handing each row to `each`, under the
/// query time limit.
async fn stream_rows(
    conn: &PgConnection,
    what: &'static str,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    mut each: impl FnMut(Row) -> Result<(), ConnectorError>,
) -> Result<(), ConnectorError> {
    bounded(conn, what, async {
        let client = conn.client();
        let stmt = client
            .prepare(sql)
            .await
            .map_err(|e| parse_error(e, what))?;
        let stream = client
            .query_raw(&stmt, params.iter().copied())
            .await
            .map_err(|e| parse_error(e, what))?;
        futures_util::pin_mut!(stream);
        while let Some(row) = stream.try_next().await.map_err(|e| parse_error(e, what))? {
            each(row)?;
        }
        Ok(())
    })
    .await
}

async fn bounded<T>(
    conn: &PgConnection,
    what: &'static str,
    fut: impl Future<Output = Result<T, ConnectorError>>,
) -> Result<T, ConnectorError> {
    with_timeout(conn.query_timeout(), what, fut).await
}

fn get<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a Row,
    idx: usize,
    what: &'static str,
) -> Result<T, ConnectorError> {
    row.try_get(idx).map_err(|e| {
        ConnectorError::new(
            ErrorCode::ProtocolError,
            format!("{what}: column {idx}: {e}"),
        )
        .with_source(e)
    })
}

/// The access probe: the configured schema must exist and be usable, and the
/// schema listing under the request's filters must run.
pub(crate) async fn probe(
    conn: &PgConnection,
    req: &DiscoveryRequest,
    configured_schema: Option<&str>,
) -> Result<(), ConnectorError> {
    if let Some(schema) = configured_schema {
        let mut usable = None;
        stream_rows(
            conn,
            "checking the configured schema",
            SCHEMA_ACCESS_SQL,
            &[&schema],
            |row| {
                usable = Some(get::<bool>(&row, 0, "checking the configured schema")?);
                Ok(())
            },
        )
        .await?;
        match usable {
            None => {
                return Err(ConnectorError::new(
                    ErrorCode::DatabaseNotFound,
                    format!("schema {schema:?} does not exist"),
                )
                .with_context("schema", schema))
            }
            Some(false) => {
                return Err(ConnectorError::new(
                    ErrorCode::PermissionDenied,
                    format!("no USAGE privilege on schema {schema:?}"),
                )
                .with_context("schema", schema))
            }
            Some(true) => {}
        }
    }
    let filters = Filters::new(req, configured_schema);
    stream_rows(
        conn,
        "listing schemas",
        SCHEMAS_SQL,
        &filters.schema_params(),
        |_| Ok(()),
    )
    .await
}

/// A relation while discovery assembles it.
struct Slot {
    schema: usize,
    parent: Option<u32>,
    table: Table,
}

pub(crate) async fn discover(
    conn: &PgConnection,
    req: &DiscoveryRequest,
    configured_schema: Option<&str>,
) -> Result<Catalog, ConnectorError> {
    let filters = Filters::new(req, configured_schema);

    let mut schemas: Vec<Schema> = Vec::new();
    let mut schema_index: HashMap<String, usize> = HashMap::new();
    stream_rows(
        conn,
        "listing schemas",
        SCHEMAS_SQL,
        &filters.schema_params(),
        |row| {
            let name: String = get(&row, 0, "listing schemas")?;
            schema_index.insert(name.clone(), schemas.len());
            schemas.push(Schema {
                name,
                comment: get(&row, 1, "listing schemas")?,
                tables: Vec::new(),
            });
            Ok(())
        },
    )
    .await?;
    if req.depth == Depth::Schemas {
        let mut catalog = Catalog { schemas };
        catalog.sort();
        return Ok(catalog);
    }

    let with_columns = req.depth >= Depth::Columns;
    let mut slots: Vec<Slot> = Vec::new();
    let mut by_oid: HashMap<u32, usize> = HashMap::new();
    let sql = if req.statistics {
        RELATIONS_STATS_SQL
    } else {
        RELATIONS_SQL
    };
    const REL: &str = "listing relations";
    stream_rows(conn, REL, sql, &filters.all_params(), |row| {
        let oid: u32 = get(&row, 0, REL)?;
        let schema_name: &str = get(&row, 1, REL)?;
        // A schema created between the two queries is skipped, not an error.
        let Some(&schema) = schema_index.get(schema_name) else {
            return Ok(());
        };
        let relkind: i8 = get(&row, 3, REL)?;
        let mut table = Table::new(get::<String>(&row, 2, REL)?, table_kind(relkind));
        if with_columns {
            table
                .columns
                .reserve_exact(get::<i16>(&row, 4, REL)?.max(0) as usize);
        }
        table.comment = get(&row, 5, REL)?;
        let parent: Option<u32> = get(&row, 6, REL)?;
        if let Some(parent_name) = get::<Option<String>>(&row, 7, REL)? {
            table
                .properties
                .insert("partitionOf".into(), parent_name.into());
            let parent_schema: Option<&str> = get(&row, 8, REL)?;
            if parent_schema.is_some_and(|p| p != schema_name) {
                table
                    .properties
                    .insert("partitionOfSchema".into(), parent_schema.into());
            }
            if let Some(bound) = get::<Option<String>>(&row, 9, REL)? {
                table
                    .properties
                    .insert("partitionBound".into(), bound.into());
            }
        }
        if req.statistics {
            set_statistics(
                &mut table,
                relkind as u8,
                get(&row, 10, REL)?,
                get(&row, 11, REL)?,
            );
        }
        by_oid.insert(oid, slots.len());
        slots.push(Slot {
            schema,
            parent,
            table,
        });
        Ok(())
    })
    .await?;

    const PK: &str = "listing primary keys";
    stream_rows(conn, PK, PRIMARY_KEYS_SQL, &filters.all_params(), |row| {
        let oid: u32 = get(&row, 0, PK)?;
        if let Some(&i) = by_oid.get(&oid) {
            slots[i].table.primary_key = get(&row, 1, PK)?;
        }
        Ok(())
    })
    .await?;

    if with_columns {
        const TY: &str = "listing types";
        let mut user = HashMap::new();
        stream_rows(conn, TY, USER_TYPES_SQL, &[], |row| {
            let typtype: i8 = get(&row, 1, TY)?;
            user.insert(
                get::<u32>(&row, 0, TY)?,
                UserType {
                    typtype: typtype as u8,
                    name: get(&row, 2, TY)?,
                    elem: get(&row, 3, TY)?,
                    base: get(&row, 4, TY)?,
                    base_native: get(&row, 5, TY)?,
                },
            );
            Ok(())
        })
        .await?;
        let mut mapper = TypeMapper::new(user);

        const COL: &str = "listing columns";
        stream_rows(conn, COL, COLUMNS_SQL, &filters.all_params(), |row| {
            let oid: u32 = get(&row, 0, COL)?;
            let Some(&i) = by_oid.get(&oid) else {
                return Ok(());
            };
            let attnum: i16 = get(&row, 1, COL)?;
            let type_oid: u32 = get(&row, 3, COL)?;
            let native: &str = get(&row, 4, COL)?;
            let data_type = mapper.map(type_oid, native);
            slots[i].table.columns.push(Column {
                name: get(&row, 2, COL)?,
                ordinal: attnum.max(0) as u32,
                native_type: native.to_owned(),
                data_type,
                nullable: !get::<bool>(&row, 5, COL)?,
                default: get(&row, 6, COL)?,
                comment: get(&row, 7, COL)?,
            });
            Ok(())
        })
        .await?;
        for slot in &mut slots {
            let cols = &mut slot.table.columns;
            cols.sort_by_key(|c| c.ordinal);
            // attnum counts dropped columns; ordinals do not.
            for (i, c) in cols.iter_mut().enumerate() {
                c.ordinal = i as u32 + 1;
            }
        }
    }

    if req.statistics {
        roll_up_partitions(&mut slots, &by_oid);
    }
    drop(by_oid);

    for slot in slots {
        schemas[slot.schema].tables.push(slot.table);
    }
    let mut catalog = Catalog { schemas };
    catalog.sort();
    Ok(catalog)
}

/// `reltuples` is -1 until the first VACUUM or ANALYZE (PostgreSQL 14+); the
/// page counts are as fresh as that too, so both stay unknown until then.
fn set_statistics(table: &mut Table, relkind: u8, reltuples: Option<f32>, size: Option<i64>) {
    match relkind {
        b'r' | b'm' => {
            if let Some(rows) = reltuples.filter(|r| *r >= 0.0) {
                table.estimated_rows = Some(rows.round() as u64);
                table.size_bytes = size.map(|s| s.max(0) as u64);
            }
        }
        // Views and foreign tables hold no data here; partitioned parents get
        // their partitions' totals afterwards.
        _ => {}
    }
}

/// A partitioned table's rows and size are the sums over the leaf partitions
/// listed in the same discovery.
fn roll_up_partitions(slots: &mut [Slot], by_oid: &HashMap<u32, usize>) {
    let mut totals: HashMap<usize, (u64, u64)> = HashMap::new();
    for slot in slots.iter() {
        if slot.table.kind == TableKind::Partitioned || slot.parent.is_none() {
            continue;
        }
        let rows = slot.table.estimated_rows.unwrap_or(0);
        let size = slot.table.size_bytes.unwrap_or(0);
        let mut parent = slot.parent;
        // Partition trees are shallow; the bound guards against a cycle.
        for _ in 0..64 {
            let Some(idx) = parent.and_then(|p| by_oid.get(&p).copied()) else {
                break;
            };
            let t = totals.entry(idx).or_default();
            t.0 += rows;
            t.1 += size;
            parent = slots[idx].parent;
        }
    }
    for (idx, (rows, size)) in totals {
        let t = &mut slots[idx].table;
        if t.kind == TableKind::Partitioned {
            t.estimated_rows = Some(rows);
            t.size_bytes = Some(size);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::FIRST_NORMAL_OID;

    #[test]
    fn relkinds_map_to_table_kinds() {
        let cases = [
            (b'r', TableKind::Table),
            (b'v', TableKind::View),
            (b'm', TableKind::MaterializedView),
            (b'p', TableKind::Partitioned),
            (b'f', TableKind::External),
        ];
        for (k, want) in cases {
            assert_eq!(table_kind(k as i8), want, "{}", k as char);
        }
    }

    #[test]
    fn like_literal_escapes_metacharacters() {
        assert_eq!(like_literal("a_b%c\\d"), "a\\_b\\%c\\\\d");
        assert_eq!(like_literal("ventes_été"), "ventes\\_été");
    }

    #[test]
    fn never_analyzed_relations_have_no_statistics() {
        let mut t = Table::new("t", TableKind::Table);
        set_statistics(&mut t, b'r', Some(-1.0), Some(8192));
        assert_eq!((t.estimated_rows, t.size_bytes), (None, None));
        set_statistics(&mut t, b'r', Some(41.6), Some(16384));
        assert_eq!((t.estimated_rows, t.size_bytes), (Some(42), Some(16384)));
        let mut v = Table::new("v", TableKind::View);
        set_statistics(&mut v, b'v', Some(0.0), Some(0));
        assert_eq!((v.estimated_rows, v.size_bytes), (None, None));
    }

    #[test]
    fn partition_totals_roll_up_to_every_ancestor() {
        let mk = |name: &str, kind, parent, rows, size| {
            let mut table = Table::new(name, kind);
            table.estimated_rows = rows;
            table.size_bytes = size;
            Slot {
                schema: 0,
                parent,
                table,
            }
        };
        let mut slots = vec![
            mk("root", TableKind::Partitioned, None, None, None),
            mk("mid", TableKind::Partitioned, Some(1), None, None),
            mk("leaf1", TableKind::Table, Some(2), Some(10), Some(100)),
            mk("leaf2", TableKind::Table, Some(1), Some(5), Some(50)),
        ];
        let by_oid = HashMap::from([(1, 0), (2, 1), (3, 2), (4, 3)]);
        roll_up_partitions(&mut slots, &by_oid);
        assert_eq!(
            (slots[0].table.estimated_rows, slots[0].table.size_bytes),
            (Some(15), Some(150))
        );
        assert_eq!(
            (slots[1].table.estimated_rows, slots[1].table.size_bytes),
            (Some(10), Some(100))
        );
    }

    #[test]
    fn sql_never_takes_names_from_input() {
        // The only placeholders are bind parameters.
        for sql in [
            SCHEMAS_SQL,
            RELATIONS_SQL,
            RELATIONS_STATS_SQL,
            PRIMARY_KEYS_SQL,
            COLUMNS_SQL,
        ] {
            assert!(sql.contains("LIKE ANY($1::text[])"));
            assert!(!sql.contains('{'));
        }
        assert!(USER_TYPES_SQL.contains(&format!("t.oid >= {FIRST_NORMAL_OID}")));
    }
}
