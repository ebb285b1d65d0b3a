//! Catalog discovery: a fixed number of set-based catalog queries, whatever the
//! number of relations. Every SQL text the driver sends lives here.
//!
//! 1. Schemas, filtered by name and USAGE privilege.
//! 2. Pipelined on the one connection, so the server runs each while the
//!    client decodes the previous one: relations (with statistics), columns,
//!    column defaults, comments, primary keys and user-defined types.
//! 3. The spelling (`format_type`) of each distinct column type.
//!
//! Filters are pushed into SQL as `LIKE ANY($n::text[])` over bind parameters;
//! nothing from the request or the configuration is ever spliced into SQL.

use std::hash::{BuildHasherDefault, Hasher};

use futures_util::TryStreamExt;
use matih_connector_core::{
    with_timeout, Catalog, Column, ConnectorError, DataType, Depth, DiscoveryRequest, ErrorCode,
    Interner, RelationName, Schema, SharedStr, Table, TableKind,
};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Row;

use crate::connection::PgConnection;
use crate::errors::parse_error;
use crate::types::{TypeMapper, UserType};

mod incremental;
pub(crate) use incremental::discover_changed;

/// Maps keyed by catalog oids and small integers, hashed with a
/// multiply-rotate hash: hundreds of thousands of lookups per discovery, on
/// keys the server assigns (no flooding concern that SipHash would answer).
type HashMap<K, V> = std::collections::HashMap<K, V, BuildHasherDefault<OidHasher>>;

#[derive(Default)]
struct OidHasher(u64);

impl Hasher for OidHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.add(u64::from(*b));
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }
    fn write_i32(&mut self, n: i32) {
        self.add(n as u32 as u64);
    }
    fn write_i16(&mut self, n: i16) {
        self.add(n as u16 as u64);
    }
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

impl OidHasher {
    fn add(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

/// Schemas the user may use, filtered by name. $1 include, $2 exclude (LIKE
/// patterns), $3 include the system schemas.
const SCHEMAS_SQL: &str = r"SELECT n.oid, n.nspname, d.description
FROM pg_namespace n
LEFT JOIN pg_description d
  ON d.objoid = n.oid AND d.classoid = 'pg_namespace'::regclass AND d.objsubid = 0
WHERE has_schema_privilege(n.oid, 'USAGE')
  AND (cardinality($1::text[]) = 0 OR n.nspname LIKE ANY($1::text[]))
  AND NOT (n.nspname LIKE ANY($2::text[]))
  AND ($3::bool OR (n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
       AND n.nspname NOT LIKE 'pg\_temp\_%' AND n.nspname NOT LIKE 'pg\_toast\_temp\_%'))";

// The relations in scope, shared by the pipelined queries: $1 the listed
// schemas' oids, $2 table include, $3 table exclude (LIKE patterns). Only the
// relations query checks privileges (once per relation); the others' rows for
// relations it did not list are dropped on arrival.
macro_rules! scope {
    () => {
        r"c.relnamespace = ANY($1::oid[])
  AND c.relkind IN ('r', 'v', 'm', 'p', 'f')
  AND (cardinality($2::text[]) = 0 OR c.relname LIKE ANY($2::text[]))
  AND NOT (c.relname LIKE ANY($3::text[]))"
    };
}

// Detail queries of an incremental discovery cover the new and changed
// relations only, and the listing of relations may too: $4 their oids, NULL
// in a full discovery.
macro_rules! only {
    () => {
        r"
  AND ($4::oid[] IS NULL OR c.oid = ANY($4::oid[]))"
    };
}

// Relations the user may SELECT, or SELECT at least one column of. The
// cheap cases come first and short-circuit the per-relation ACL checks: a
// superuser (evaluated once), the owner or a member of the owning role, then
// table privilege, then column privileges (which walk every column).
macro_rules! readable {
    () => {
        r"
  AND ((SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
       OR pg_has_role(c.relowner, 'USAGE')
       OR has_table_privilege(c.oid, 'SELECT')
       OR has_any_column_privilege(c.oid, 'SELECT'))"
    };
}

/// Relations with statistics. A relation's size is computed in memory from
/// its `relpages` and PAGES_SQL (see there).
const RELATIONS_STATS_SQL: &str = concat!(
    r"SELECT c.oid, c.relnamespace, c.relname, c.relkind,
  inh.inhparent, p.relname AS parent_name, pn.nspname AS parent_schema,
  CASE WHEN c.relispartition THEN pg_get_expr(c.relpartbound, c.oid) END AS bound,
  c.reltuples, c.relpages, c.reltoastrelid
FROM pg_class c
LEFT JOIN pg_inherits inh ON c.relispartition AND inh.inhrelid = c.oid
LEFT JOIN pg_class p ON p.oid = inh.inhparent
LEFT JOIN pg_namespace pn ON pn.oid = p.relnamespace
WHERE ",
    scope!(),
    only!(),
    readable!()
);

/// Pages that belong to a relation besides its own: its indexes' (keyed by
/// the relation), and its TOAST table's and the TOAST index's (keyed by the
/// TOAST table). Size = (relpages + pages[oid] + pages[reltoastrelid]) ×
/// block_size: what pg_total_relation_size measures minus the free-space and
/// visibility maps, from two scans instead of stat calls on every file.
const PAGES_SQL: &str = r"SELECT i.indrelid, ic.relpages
FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
UNION ALL
SELECT t.oid, t.relpages FROM pg_class t WHERE t.relkind = 't' AND t.relpages > 0";

/// PAGES_SQL for the relations $1 only (an incremental discovery that lists
/// a few relations again): their indexes, their TOAST tables and those
/// tables' indexes, found through the indexes on `pg_index.indrelid` and
/// `pg_class.oid` instead of a scan of every index.
const PAGES_OF_SQL: &str = r"WITH r AS (
  SELECT c.oid FROM pg_class c WHERE c.oid = ANY($1::oid[])
  UNION ALL
  SELECT c.reltoastrelid FROM pg_class c WHERE c.oid = ANY($1::oid[]) AND c.reltoastrelid <> 0
)
SELECT i.indrelid, ic.relpages
FROM r JOIN pg_index i ON i.indrelid = r.oid JOIN pg_class ic ON ic.oid = i.indexrelid
UNION ALL
SELECT t.oid, t.relpages FROM r JOIN pg_class t ON t.oid = r.oid
WHERE t.relkind = 't' AND t.relpages > 0";

const BLOCK_SIZE_SQL: &str = "SELECT current_setting('block_size')::int8";

const RELATIONS_SQL: &str = concat!(
    r"SELECT c.oid, c.relnamespace, c.relname, c.relkind,
  inh.inhparent, p.relname AS parent_name, pn.nspname AS parent_schema,
  CASE WHEN c.relispartition THEN pg_get_expr(c.relpartbound, c.oid) END AS bound
FROM pg_class c
LEFT JOIN pg_inherits inh ON c.relispartition AND inh.inhrelid = c.oid
LEFT JOIN pg_class p ON p.oid = inh.inhparent
LEFT JOIN pg_namespace pn ON pn.oid = p.relnamespace
WHERE ",
    scope!(),
    only!(),
    readable!()
);

/// Every column in scope, unordered (grouped by relation in memory, cheaper
/// than a server-side sort). Types come back as (oid, typmod): a catalog has
/// few distinct pairs, spelled once each by TYPE_NAMES_SQL rather than once
/// per column.
const COLUMNS_SQL: &str = concat!(
    r"SELECT a.attrelid, c.relnatts, a.attnum, a.attname, a.atttypid, a.atttypmod,
  a.attnotnull, a.attidentity
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
WHERE a.attnum > 0 AND NOT a.attisdropped AND ",
    scope!(),
    only!()
);

const TYPE_NAMES_SQL: &str = r"SELECT t.oid, t.typmod, format_type(t.oid, t.typmod)
FROM unnest($1::oid[], $2::int4[]) AS t(oid, typmod)";

/// Column defaults. Given no relation, pg_get_expr does not open one (a lock
/// and a relcache entry each). Only expressions that reference columns
/// (generated columns; their node trees hold a `{VAR`) need theirs.
const DEFAULTS_SQL: &str = concat!(
    r"SELECT ad.adrelid, ad.adnum,
  pg_get_expr(ad.adbin, CASE WHEN ad.adbin::text LIKE '%{VAR %' THEN ad.adrelid ELSE 0::oid END)
FROM pg_attrdef ad
JOIN pg_class c ON c.oid = ad.adrelid
WHERE ",
    scope!(),
    only!()
);

/// Comments on relations (objsubid 0) and, when $5, on their columns.
const COMMENTS_SQL: &str = concat!(
    r"SELECT d.objoid, d.objsubid, d.description
FROM pg_description d
JOIN pg_class c ON c.oid = d.objoid
WHERE d.classoid = 'pg_class'::regclass AND (d.objsubid = 0 OR $5::bool) AND ",
    scope!(),
    only!()
);

/// Primary keys as column numbers, resolved against the columns in memory.
const PRIMARY_KEYS_SQL: &str = concat!(
    r"SELECT con.conrelid, con.conkey
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid
WHERE con.contype = 'p' AND ",
    scope!(),
    only!()
);

/// Primary keys with column names, for discovery without columns.
const PRIMARY_KEY_NAMES_SQL: &str = concat!(
    r"SELECT con.conrelid, array_agg(a.attname::text ORDER BY k.ord)
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid
CROSS JOIN LATERAL unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
WHERE con.contype = 'p' AND ",
    scope!(),
    only!(),
    r"
GROUP BY con.conrelid"
);

// What the type mapper needs of a user type, minus row types and arrays of
// row types (one of each per table: thousands in a large catalog, mapped
// without a row).
macro_rules! user_types {
    () => {
        r"SELECT t.oid, t.typtype, t.typname,
  CASE WHEN t.typcategory = 'A' THEN t.typelem ELSE 0::oid END,
  t.typbasetype,
  CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) END
FROM pg_type t
LEFT JOIN pg_type e ON e.oid = t.typelem
WHERE t.oid >= 16384 AND t.typtype <> 'c' AND (e.oid IS NULL OR e.typtype <> 'c')"
    };
}

/// Types created in the database.
const USER_TYPES_SQL: &str = user_types!();

/// The user types the columns of the relations $1 use, with the element and
/// base types they map through (an incremental discovery reading a few
/// relations: not every type of the database).
const USER_TYPES_OF_SQL: &str = concat!(
    r"WITH RECURSIVE used(oid) AS (
  SELECT a.atttypid FROM pg_attribute a
  WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND a.atttypid >= 16384
  UNION
  SELECT x.oid FROM used u JOIN pg_type t ON t.oid = u.oid
  CROSS JOIN LATERAL (VALUES (t.typelem), (t.typbasetype)) AS x(oid)
  WHERE x.oid >= 16384
)
",
    user_types!(),
    r"
  AND t.oid IN (SELECT oid FROM used)"
);

const SCHEMA_ACCESS_SQL: &str =
    "SELECT has_schema_privilege(n.oid, 'USAGE') FROM pg_namespace n WHERE n.nspname = $1";

/// The request's name filters as LIKE patterns.
struct Filters {
    schema_include: Vec<String>,
    schema_exclude: Vec<String>,
    include_system: bool,
    table_include: Vec<String>,
    table_exclude: Vec<String>,
}

impl Filters {
    /// The configured schema is the connector's default schema, not a scope:
    /// discovery covers every usable schema unless the request filters them.
    fn new(req: &DiscoveryRequest) -> Self {
        Filters {
            schema_include: req.schemas.include_like(),
            schema_exclude: req.schemas.exclude_like(),
            include_system: req.include_system,
            table_include: req.tables.include_like(),
            table_exclude: req.tables.exclude_like(),
        }
    }

    fn schema_params(&self) -> [(&(dyn ToSql + Sync), Type); 3] {
        [
            (&self.schema_include, Type::TEXT_ARRAY),
            (&self.schema_exclude, Type::TEXT_ARRAY),
            (&self.include_system, Type::BOOL),
        ]
    }
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

/// Runs one catalog query to completion under the query time limit, handing
/// each row to `each`.
async fn query_rows(
    conn: &PgConnection,
    what: &'static str,
    sql: &str,
    params: &[(&(dyn ToSql + Sync), Type)],
    each: impl FnMut(Row) -> Result<(), ConnectorError>,
) -> Result<(), ConnectorError> {
    with_timeout(
        conn.query_timeout(),
        what,
        stream_rows(conn, what, sql, params, each),
    )
    .await
}

/// Runs one catalog query to completion, handing each row to `each`; the
/// caller bounds it. Parameters carry their types, so a query is one round
/// trip (no separate prepare).
async fn stream_rows(
    conn: &PgConnection,
    what: &'static str,
    sql: &str,
    params: &[(&(dyn ToSql + Sync), Type)],
    mut each: impl FnMut(Row) -> Result<(), ConnectorError>,
) -> Result<(), ConnectorError> {
    {
        let stream = conn
            .client()
            .query_typed_raw(sql, params.iter().map(|(p, t)| (*p, t.clone())))
            .await
            .map_err(|e| parse_error(e, what))?;
        futures_util::pin_mut!(stream);
        while let Some(row) = stream.try_next().await.map_err(|e| parse_error(e, what))? {
            each(row)?;
        }
        Ok(())
    }
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
        const WHAT: &str = "checking the configured schema";
        stream_rows(
            conn,
            WHAT,
            SCHEMA_ACCESS_SQL,
            &[(&schema, Type::TEXT)],
            |row| {
                usable = Some(get::<bool>(&row, 0, WHAT)?);
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
    let filters = Filters::new(req);
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
    /// `relpages` and `reltoastrelid`, for the size.
    pages: Option<(i32, u32)>,
    table: Table,
}

/// One relation's columns as they arrive, with each column's (attnum, type
/// oid, typmod) until the types are spelled.
#[derive(Default)]
struct RelColumns {
    columns: Vec<Column>,
    types: Vec<(i16, u32, i32)>,
}

struct ColumnsResult {
    by_rel: HashMap<u32, RelColumns>,
    identity: Vec<(u32, i16, u8)>,
    type_pairs: HashMap<(u32, i32), (SharedStr, DataType)>,
}

pub(crate) async fn discover(
    conn: &PgConnection,
    req: &DiscoveryRequest,
) -> Result<Catalog, ConnectorError> {
    discover_scoped(conn, req, None, None, None, false)
        .await
        .map(|(c, _)| c)
}

/// A relation a discovery listed: its oid and its name.
pub(crate) struct Listed {
    pub oid: u32,
    pub name: RelationName,
}

/// The schemas in scope, by oid.
pub(crate) struct Schemas {
    schemas: Vec<Schema>,
    index: HashMap<u32, usize>,
}

/// Lists the schemas in scope (the caller bounds it: an incremental
/// discovery sends it in one pipeline with its summary).
pub(crate) async fn list_schemas(
    conn: &PgConnection,
    req: &DiscoveryRequest,
) -> Result<Schemas, ConnectorError> {
    let filters = Filters::new(req);
    let mut out = Schemas {
        schemas: Vec::new(),
        index: HashMap::default(),
    };
    const SCH: &str = "listing schemas";
    stream_rows(conn, SCH, SCHEMAS_SQL, &filters.schema_params(), |row| {
        out.index.insert(get(&row, 0, SCH)?, out.schemas.len());
        out.schemas.push(Schema {
            name: get(&row, 1, SCH)?,
            comment: get(&row, 2, SCH)?,
            tables: Vec::new(),
        });
        Ok(())
    })
    .await?;
    Ok(out)
}

/// Discovery with the detail (columns, defaults, comments, primary keys)
/// limited to the relations in `only` when given, and the listing of
/// relations (header and statistics) limited to those in `headers` when
/// given; the relations listed are returned by oid when `list`. Every schema
/// in scope is listed either way (`listed`: already).
pub(crate) async fn discover_scoped(
    conn: &PgConnection,
    req: &DiscoveryRequest,
    listed: Option<Schemas>,
    only: Option<&Vec<u32>>,
    headers: Option<&Vec<u32>>,
    list: bool,
) -> Result<(Catalog, Vec<Listed>), ConnectorError> {
    let filters = Filters::new(req);

    let Schemas {
        mut schemas,
        index: schema_index,
    } = match listed {
        Some(s) => s,
        None => {
            with_timeout(
                conn.query_timeout(),
                "listing schemas",
                list_schemas(conn, req),
            )
            .await?
        }
    };
    if req.depth == Depth::Schemas || schemas.is_empty() {
        let mut catalog = Catalog { schemas };
        catalog.sort();
        return Ok((catalog, Vec::new()));
    }

    let with_columns = req.depth >= Depth::Columns;
    // No relation to read in detail (an incremental discovery that found no
    // change): the detail queries are not sent at all.
    let any_detail = only.is_none_or(|o| !o.is_empty());
    let namespaces: Vec<u32> = schema_index.keys().copied().collect();
    let scope: [(&(dyn ToSql + Sync), Type); 3] = [
        (&namespaces, Type::OID_ARRAY),
        (&filters.table_include, Type::TEXT_ARRAY),
        (&filters.table_exclude, Type::TEXT_ARRAY),
    ];
    let detail: [(&(dyn ToSql + Sync), Type); 4] = [
        scope[0].clone(),
        scope[1].clone(),
        scope[2].clone(),
        (&only, Type::OID_ARRAY),
    ];
    let listing: [(&(dyn ToSql + Sync), Type); 4] = [
        scope[0].clone(),
        scope[1].clone(),
        scope[2].clone(),
        (&headers, Type::OID_ARRAY),
    ];
    let comment_params: [(&(dyn ToSql + Sync), Type); 5] = [
        scope[0].clone(),
        scope[1].clone(),
        scope[2].clone(),
        (&only, Type::OID_ARRAY),
        (&with_columns, Type::BOOL),
    ];

    let relations = async {
        let mut slots: Vec<Slot> = Vec::new();
        let mut oids: Vec<u32> = Vec::new();
        let sql = if req.statistics {
            RELATIONS_STATS_SQL
        } else {
            RELATIONS_SQL
        };
        const REL: &str = "listing relations";
        if headers.is_some_and(|h| h.is_empty()) {
            return Ok((slots, oids));
        }
        stream_rows(conn, REL, sql, &listing, |row| {
            let Some(&schema) = schema_index.get(&get::<u32>(&row, 1, REL)?) else {
                return Ok(());
            };
            let relkind: i8 = get(&row, 3, REL)?;
            let mut table = Table::new(get::<String>(&row, 2, REL)?, table_kind(relkind));
            let parent: Option<u32> = get(&row, 4, REL)?;
            if let Some(parent_name) = get::<Option<String>>(&row, 5, REL)? {
                table
                    .properties
                    .insert("partitionOf".into(), parent_name.into());
                let parent_schema: Option<&str> = get(&row, 6, REL)?;
                if parent_schema.is_some_and(|p| p != schemas[schema].name) {
                    table
                        .properties
                        .insert("partitionOfSchema".into(), parent_schema.into());
                }
                if let Some(bound) = get::<Option<String>>(&row, 7, REL)? {
                    table
                        .properties
                        .insert("partitionBound".into(), bound.into());
                }
            }
            let mut pages = None;
            if req.statistics && set_statistics(&mut table, relkind as u8, get(&row, 8, REL)?) {
                pages = Some((get(&row, 9, REL)?, get(&row, 10, REL)?));
            }
            oids.push(get(&row, 0, REL)?);
            slots.push(Slot {
                schema,
                parent,
                pages,
                table,
            });
            Ok(())
        })
        .await?;
        Ok::<_, ConnectorError>((slots, oids))
    };

    let columns = async {
        let mut result = ColumnsResult {
            by_rel: HashMap::default(),
            identity: Vec::new(),
            type_pairs: HashMap::default(),
        };
        // Column names repeat across tables (`id`, `created_at`): one copy each.
        let mut names = Interner::default();
        if !with_columns || !any_detail {
            return Ok(result);
        }
        const COL: &str = "listing columns";
        // Consecutive rows usually belong to one relation: remember the last.
        let mut last: Option<(u32, RelColumns)> = None;
        stream_rows(conn, COL, COLUMNS_SQL, &detail, |row| {
            let oid: u32 = get(&row, 0, COL)?;
            if last.as_ref().is_none_or(|(o, _)| *o != oid) {
                if let Some((o, rc)) = last.take() {
                    result.by_rel.insert(o, rc);
                }
                let rc = result.by_rel.remove(&oid).unwrap_or_else(|| {
                    let n = get::<i16>(&row, 1, COL).unwrap_or(0).max(0) as usize;
                    RelColumns {
                        columns: Vec::with_capacity(n),
                        types: Vec::with_capacity(n),
                    }
                });
                last = Some((oid, rc));
            }
            let Some((_, rc)) = last.as_mut() else {
                return Ok(());
            };
            let attnum: i16 = get(&row, 2, COL)?;
            let type_oid: u32 = get(&row, 4, COL)?;
            let typmod: i32 = get(&row, 5, COL)?;
            result
                .type_pairs
                .entry((type_oid, typmod))
                .or_insert((SharedStr::default(), DataType::Unknown));
            let ident = get::<i8>(&row, 7, COL)? as u8;
            if ident != 0 {
                result.identity.push((oid, attnum, ident));
            }
            rc.types.push((attnum, type_oid, typmod));
            rc.columns.push(Column {
                name: names.intern(get(&row, 3, COL)?),
                ordinal: attnum.max(0) as u32,
                native_type: SharedStr::default(),
                data_type: DataType::Unknown,
                nullable: !get::<bool>(&row, 6, COL)?,
                default: None,
                comment: None,
            });
            Ok(())
        })
        .await?;
        if let Some((o, rc)) = last.take() {
            result.by_rel.insert(o, rc);
        }
        Ok(result)
    };

    let user_types = async {
        let mut user = std::collections::HashMap::new();
        if !with_columns || !any_detail {
            return Ok(user);
        }
        const TY: &str = "listing types";
        let of: [(&(dyn ToSql + Sync), Type); 1] = [(&only, Type::OID_ARRAY)];
        let (sql, params): (&str, &[(&(dyn ToSql + Sync), Type)]) = match only {
            Some(_) => (USER_TYPES_OF_SQL, &of),
            None => (USER_TYPES_SQL, &[]),
        };
        stream_rows(conn, TY, sql, params, |row| {
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
        Ok(user)
    };

    let defaults = async {
        let mut out: Vec<(u32, i16, Option<String>)> = Vec::new();
        if !with_columns || !any_detail {
            return Ok(out);
        }
        const DEF: &str = "listing column defaults";
        stream_rows(conn, DEF, DEFAULTS_SQL, &detail, |row| {
            out.push((get(&row, 0, DEF)?, get(&row, 1, DEF)?, get(&row, 2, DEF)?));
            Ok(())
        })
        .await?;
        Ok(out)
    };

    let comments = async {
        let mut out: Vec<(u32, i32, Option<String>)> = Vec::new();
        const COM: &str = "listing comments";
        if !any_detail {
            return Ok(out);
        }
        stream_rows(conn, COM, COMMENTS_SQL, &comment_params, |row| {
            out.push((get(&row, 0, COM)?, get(&row, 1, COM)?, get(&row, 2, COM)?));
            Ok(())
        })
        .await?;
        Ok(out)
    };

    let primary_keys = async {
        let mut by_num: Vec<(u32, Vec<i16>)> = Vec::new();
        let mut by_name: Vec<(u32, Vec<String>)> = Vec::new();
        const PK: &str = "listing primary keys";
        if !any_detail {
        } else if with_columns {
            stream_rows(conn, PK, PRIMARY_KEYS_SQL, &detail, |row| {
                by_num.push((get(&row, 0, PK)?, get(&row, 1, PK)?));
                Ok(())
            })
            .await?;
        } else {
            stream_rows(conn, PK, PRIMARY_KEY_NAMES_SQL, &detail, |row| {
                by_name.push((get(&row, 0, PK)?, get(&row, 1, PK)?));
                Ok(())
            })
            .await?;
        }
        Ok((by_num, by_name))
    };

    let pages = async {
        let mut by_owner: HashMap<u32, i64> = HashMap::default();
        let mut block_size = 8192;
        if !req.statistics || headers.is_some_and(|h| h.is_empty()) {
            return Ok((by_owner, block_size));
        }
        const PG: &str = "reading relation sizes";
        stream_rows(conn, PG, BLOCK_SIZE_SQL, &[], |row| {
            block_size = get(&row, 0, PG)?;
            Ok(())
        })
        .await?;
        let of: [(&(dyn ToSql + Sync), Type); 1] = [(&headers, Type::OID_ARRAY)];
        let (sql, params): (&str, &[(&(dyn ToSql + Sync), Type)]) = match headers {
            Some(_) => (PAGES_OF_SQL, &of),
            None => (PAGES_SQL, &[]),
        };
        stream_rows(conn, PG, sql, params, |row| {
            let pages = i64::from(get::<i32>(&row, 1, PG)?.max(0));
            *by_owner.entry(get(&row, 0, PG)?).or_default() += pages;
            Ok(())
        })
        .await?;
        Ok((by_owner, block_size))
    };

    let (
        (mut slots, oids),
        columns,
        user_types,
        defaults,
        comments,
        (pk_nums, pk_names),
        (pages_by_owner, block_size),
    ) = with_timeout(
        conn.query_timeout(),
        "discovering relations and columns",
        async {
            tokio::try_join!(
                relations,
                columns,
                user_types,
                defaults,
                comments,
                primary_keys,
                pages
            )
        },
    )
    .await?;
    for (slot, oid) in slots.iter_mut().zip(&oids) {
        if let Some((relpages, toast)) = slot.pages {
            let extra = |o: u32| {
                if o == 0 {
                    0
                } else {
                    pages_by_owner.get(&o).copied().unwrap_or(0)
                }
            };
            let total = i64::from(relpages.max(0)) + extra(*oid) + extra(toast);
            slot.table.size_bytes = Some((total * block_size).max(0) as u64);
        }
    }
    drop(pages_by_owner);
    let by_oid: HashMap<u32, usize> = oids.iter().enumerate().map(|(i, oid)| (*oid, i)).collect();
    drop(oids);

    if with_columns {
        let ColumnsResult {
            mut by_rel,
            identity,
            mut type_pairs,
        } = columns;
        let mut mapper = TypeMapper::new(user_types);
        let (pair_oids, pair_mods): (Vec<u32>, Vec<i32>) = type_pairs.keys().copied().unzip();
        const TN: &str = "spelling column types";
        let params: [(&(dyn ToSql + Sync), Type); 2] = [
            (&pair_oids, Type::OID_ARRAY),
            (&pair_mods, Type::INT4_ARRAY),
        ];
        if !pair_oids.is_empty() {
            query_rows(conn, TN, TYPE_NAMES_SQL, &params, |row| {
                let key: (u32, i32) = (get(&row, 0, TN)?, get(&row, 1, TN)?);
                let native: &str = get(&row, 2, TN)?;
                let data_type = mapper.map(key.0, native);
                type_pairs.insert(key, (native.into(), data_type));
                Ok(())
            })
            .await?;
        }

        for (oid, &i) in &by_oid {
            // Columns of relations the relations query did not list stay behind.
            let Some(RelColumns {
                mut columns,
                mut types,
            }) = by_rel.remove(oid)
            else {
                continue;
            };
            columns.sort_unstable_by_key(|c| c.ordinal);
            types.sort_unstable_by_key(|t| t.0);
            for (c, (_, type_oid, typmod)) in columns.iter_mut().zip(&types) {
                if let Some((native, data_type)) = type_pairs.get(&(*type_oid, *typmod)) {
                    c.native_type = native.clone();
                    c.data_type = data_type.clone();
                }
            }
            slots[i].table.columns = columns;
        }
        drop(by_rel);

        for (oid, attnum, kind) in identity {
            if let Some(c) = column_mut(&mut slots, &by_oid, oid, attnum) {
                c.default = Some(
                    if kind == b'a' {
                        "GENERATED ALWAYS AS IDENTITY"
                    } else {
                        "GENERATED BY DEFAULT AS IDENTITY"
                    }
                    .to_owned(),
                );
            }
        }
        for (oid, attnum, expr) in defaults {
            if let Some(c) = column_mut(&mut slots, &by_oid, oid, attnum) {
                c.default = expr;
            }
        }
    }

    for (oid, subid, text) in comments {
        if subid == 0 {
            if let Some(&i) = by_oid.get(&oid) {
                slots[i].table.comment = text;
            }
        } else if let Some(c) = i16::try_from(subid)
            .ok()
            .and_then(|a| column_mut(&mut slots, &by_oid, oid, a))
        {
            c.comment = text;
        }
    }

    for (oid, key) in pk_nums {
        let Some(&i) = by_oid.get(&oid) else { continue };
        let cols = &slots[i].table.columns;
        let names = key
            .iter()
            .filter_map(|a| find_attnum(cols, *a).map(|j| cols[j].name.to_string()))
            .collect();
        slots[i].table.primary_key = names;
    }
    for (oid, names) in pk_names {
        if let Some(&i) = by_oid.get(&oid) {
            slots[i].table.primary_key = names;
        }
    }

    // attnum counts dropped columns; ordinals do not.
    for slot in &mut slots {
        for (i, c) in slot.table.columns.iter_mut().enumerate() {
            c.ordinal = i as u32 + 1;
        }
    }

    if req.statistics {
        roll_up_partitions(&mut slots, &by_oid);
    }
    let mut listed = Vec::new();
    if list {
        listed.reserve(by_oid.len());
        for (&oid, &i) in &by_oid {
            let slot = &slots[i];
            listed.push(Listed {
                oid,
                name: RelationName::new(schemas[slot.schema].name.as_str(), &*slot.table.name),
            });
        }
    }
    drop(by_oid);

    for slot in slots {
        schemas[slot.schema].tables.push(slot.table);
    }
    let mut catalog = Catalog { schemas };
    catalog.sort();
    Ok((catalog, listed))
}

/// Columns are sorted by attnum (their ordinal until renumbering) by then.
fn find_attnum(cols: &[Column], attnum: i16) -> Option<usize> {
    cols.binary_search_by_key(&(attnum.max(0) as u32), |c| c.ordinal)
        .ok()
}

fn column_mut<'a>(
    slots: &'a mut [Slot],
    by_oid: &HashMap<u32, usize>,
    oid: u32,
    attnum: i16,
) -> Option<&'a mut Column> {
    let cols = &mut slots[*by_oid.get(&oid)?].table.columns;
    let j = find_attnum(cols, attnum)?;
    Some(&mut cols[j])
}

/// `reltuples` is -1 until the first VACUUM or ANALYZE (PostgreSQL 14+); the
/// page counts are as fresh as that too, so both stay unknown until then.
/// Returns whether the relation gets a size.
fn set_statistics(table: &mut Table, relkind: u8, reltuples: Option<f32>) -> bool {
    match relkind {
        b'r' | b'm' => match reltuples.filter(|r| *r >= 0.0) {
            Some(rows) => {
                table.estimated_rows = Some(rows.round() as u64);
                true
            }
            None => false,
        },
        // Views and foreign tables hold no data here; partitioned parents get
        // their partitions' totals afterwards.
        _ => false,
    }
}

/// A partitioned table's rows and size are the sums over the leaf partitions
/// listed in the same discovery.
fn roll_up_partitions(slots: &mut [Slot], by_oid: &HashMap<u32, usize>) {
    let mut totals: HashMap<usize, (u64, u64)> = HashMap::default();
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
    fn never_analyzed_relations_have_no_statistics() {
        let mut t = Table::new("t", TableKind::Table);
        assert!(!set_statistics(&mut t, b'r', Some(-1.0)));
        assert_eq!(t.estimated_rows, None);
        assert!(set_statistics(&mut t, b'r', Some(41.6)));
        assert_eq!(t.estimated_rows, Some(42));
        let mut v = Table::new("v", TableKind::View);
        assert!(!set_statistics(&mut v, b'v', Some(0.0)));
        assert_eq!(v.estimated_rows, None);
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
                pages: None,
                table,
            }
        };
        let mut slots = vec![
            mk("root", TableKind::Partitioned, None, None, None),
            mk("mid", TableKind::Partitioned, Some(1), None, None),
            mk("leaf1", TableKind::Table, Some(2), Some(10), Some(100)),
            mk("leaf2", TableKind::Table, Some(1), Some(5), Some(50)),
        ];
        let by_oid: HashMap<u32, usize> = [(1, 0), (2, 1), (3, 2), (4, 3)].into_iter().collect();
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
    fn filters_are_bind_parameters() {
        assert!(SCHEMAS_SQL.contains("LIKE ANY($1::text[])"));
        for sql in [
            RELATIONS_SQL,
            RELATIONS_STATS_SQL,
            COLUMNS_SQL,
            DEFAULTS_SQL,
            COMMENTS_SQL,
            PRIMARY_KEYS_SQL,
            PRIMARY_KEY_NAMES_SQL,
        ] {
            assert!(sql.contains("c.oid = ANY($4::oid[])"), "{sql}");
        }
        for sql in [
            RELATIONS_SQL,
            RELATIONS_STATS_SQL,
            COLUMNS_SQL,
            DEFAULTS_SQL,
            COMMENTS_SQL,
            PRIMARY_KEYS_SQL,
            PRIMARY_KEY_NAMES_SQL,
        ] {
            assert!(sql.contains("c.relnamespace = ANY($1::oid[])"), "{sql}");
            assert!(sql.contains("c.relname LIKE ANY($2::text[])"), "{sql}");
        }
        assert!(USER_TYPES_SQL.contains(&format!("t.oid >= {FIRST_NORMAL_OID}")));
        assert!(USER_TYPES_OF_SQL.contains(&format!("a.atttypid >= {FIRST_NORMAL_OID}")));
        assert!(USER_TYPES_OF_SQL.contains(&format!("x.oid >= {FIRST_NORMAL_OID}")));
    }
}
