//! Set-based catalog discovery: a fixed number of plain `information_schema`
//! queries (at most five, whatever the number of databases and tables), each
//! with the request's name filters pushed down as bound `LIKE` patterns.
//!
//! No query joins `information_schema` views with each other: the server
//! answers every view by walking the data dictionary (MariaDB: opening each
//! table's definition), and joins multiply that work. Rows are stitched
//! together here instead.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};

use matih_connector_core::{
    Catalog, Column, ConnectorError, Depth, DiscoveryRequest, ErrorCode, Interner, NameFilter,
    Schema, Table, TableKind,
};
use mysql_async::Value;

use crate::connection::{text, unsigned, MysqlConnection};
use crate::types::{data_type_of, normalize, normalize_default, DefaultStyle, NativeType};

mod incremental;
pub(crate) use incremental::discover_changed;

/// The servers' own databases, left out unless `include_system` is set.
const SYSTEM_SCHEMAS: [&str; 4] = ["information_schema", "mysql", "performance_schema", "sys"];

/// A name column compared byte for byte: `information_schema` columns use a
/// case-insensitive collation, but name filters are case-sensitive globs.
/// Converting to utf8mb4 first keeps patterns with characters outside
/// utf8mb3 comparable.
fn exact(column: &str) -> String {
    format!("CONVERT({column} USING utf8mb4) COLLATE utf8mb4_bin")
}

/// `CHAR(92)` is a backslash: spelled this way the escape character is the
/// same whether or not the server runs with NO_BACKSLASH_ESCAPES, and
/// `glob_to_like` escapes with a backslash.
const ESCAPE: &str = "ESCAPE CHAR(92 USING utf8mb4)";

/// A `WHERE` clause under construction: SQL text with placeholders only, and
/// the values bound to them.
#[derive(Default)]
struct Where {
    sql: String,
    params: Vec<Value>,
}

impl Where {
    fn and(&mut self, condition: &str) {
        self.sql.push_str(if self.sql.is_empty() {
            " WHERE "
        } else {
            " AND "
        });
        self.sql.push_str(condition);
    }

    /// `(col LIKE ? OR col LIKE ?)` for the includes, `NOT (col LIKE ?)` for
    /// each exclude.
    fn names(&mut self, column: &str, filter: &NameFilter) {
        let col = exact(column);
        if let Some(name) = single_literal(filter) {
            // An equality on the bare column lets the server look the one
            // database or table up instead of listing them all. It compares
            // without regard to case; the exact comparison is left to this
            // side, which checks every name it lists against the filter
            // anyway: evaluated per row it cost the server ~6% of the
            // column listing (2.5–3 ms of 43 ms on 30,000 columns).
            self.and(&format!("{column} = ?"));
            self.params.push(Value::from(name));
        } else if !filter.include.is_empty() {
            let alternatives: Vec<String> = filter
                .include
                .iter()
                .map(|_| format!("{col} LIKE ? {ESCAPE}"))
                .collect();
            self.and(&format!("({})", alternatives.join(" OR ")));
            self.params
                .extend(filter.include_like().into_iter().map(Value::from));
        }
        for pattern in filter.exclude_like() {
            self.and(&format!("NOT ({col} LIKE ? {ESCAPE})"));
            self.params.push(Value::from(pattern));
        }
    }

    /// The database conditions every query shares.
    fn schemas(&mut self, column: &str, req: &DiscoveryRequest, only: Option<&str>) {
        // One database named, not a system one: naming it already leaves
        // the system databases out.
        let named = single_literal(&req.schemas)
            .is_some_and(|name| !SYSTEM_SCHEMAS.iter().any(|s| s.eq_ignore_ascii_case(&name)));
        if !req.include_system && !named {
            let names: Vec<String> = SYSTEM_SCHEMAS.iter().map(|n| format!("'{n}'")).collect();
            self.and(&format!("{} NOT IN ({})", exact(column), names.join(", ")));
        }
        if let Some(name) = only {
            self.and(&format!("{} = ?", exact(column)));
            self.params.push(Value::from(name));
        }
        self.names(column, &req.schemas);
    }

    fn tables(
        &mut self,
        schema_column: &str,
        table_column: &str,
        req: &DiscoveryRequest,
        only: Option<&str>,
    ) {
        self.schemas(schema_column, req, only);
        self.names(table_column, &req.tables);
    }
}

/// Tables a follow-up query is about, by database. MariaDB and MySQL
/// evaluate a condition on the database and table names alone before they
/// open a table for an `information_schema` view, so naming the tables
/// keeps the server from opening the others (on MariaDB, STATISTICS and
/// CHECK_CONSTRAINTS open every table they consider).
#[derive(Default)]
struct TableList {
    by_schema: BTreeMap<String, Vec<String>>,
    len: usize,
}

/// Above this many names the list is not sent: the statement's placeholders
/// are bounded (65,535), and the query then considers every table.
const TABLE_LIST_MAX: usize = 20_000;

impl From<HashSet<(String, String)>> for TableList {
    fn from(tables: HashSet<(String, String)>) -> Self {
        let mut list = TableList {
            by_schema: BTreeMap::new(),
            len: tables.len(),
        };
        for (schema, table) in tables {
            list.by_schema.entry(schema).or_default().push(table);
        }
        // In order, so the same tables make the same statement, which the
        // connection's statement cache then prepares once.
        for names in list.by_schema.values_mut() {
            names.sort_unstable();
        }
        list
    }
}

impl TableList {
    fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Where {
    /// `((schema = ? AND table IN (?, …)) OR …)` for a list that is not too
    /// long; nothing otherwise (the other conditions still decide). Names
    /// compare as the server stores them: they came from the server.
    fn among(&mut self, schema_column: &str, table_column: &str, list: &TableList) {
        if list.is_empty() || list.len > TABLE_LIST_MAX {
            return;
        }
        let mut alternatives = Vec::with_capacity(list.by_schema.len());
        for (schema, tables) in &list.by_schema {
            let marks = vec!["?"; tables.len()].join(", ");
            alternatives.push(format!(
                "({schema_column} = ? AND {table_column} IN ({marks}))"
            ));
            self.params.push(Value::from(schema.as_str()));
            self.params
                .extend(tables.iter().map(|t| Value::from(t.as_str())));
        }
        self.and(&format!("({})", alternatives.join(" OR ")));
    }
}

/// The one name a filter includes, when it includes one glob without a
/// wildcard.
fn single_literal(filter: &NameFilter) -> Option<String> {
    match filter.include.as_slice() {
        [single] => glob_literal(single),
        _ => None,
    }
}

/// The name a glob stands for when it has no wildcard.
fn glob_literal(glob: &str) -> Option<String> {
    let mut out = String::with_capacity(glob.len());
    let mut chars = glob.chars();
    while let Some(c) = chars.next() {
        match c {
            '*' | '?' => return None,
            '\\' => out.push(chars.next().unwrap_or('\\')),
            c => out.push(c),
        }
    }
    Some(out)
}

fn schemas_query(
    req: &DiscoveryRequest,
    only: Option<&str>,
    limit_one: bool,
) -> (String, Vec<Value>) {
    let mut w = Where::default();
    w.schemas("SCHEMA_NAME", req, only);
    let limit = if limit_one { " LIMIT 1" } else { "" };
    (
        format!(
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA{}{limit}",
            w.sql
        ),
        w.params,
    )
}

fn tables_query(req: &DiscoveryRequest, only: Option<&str>) -> (String, Vec<Value>) {
    let mut w = Where::default();
    w.tables("TABLE_SCHEMA", "TABLE_NAME", req, only);
    // The statistics columns make MariaDB open every table (not only its
    // definition); leave them out when they are not wanted.
    let stats = if req.statistics {
        ", TABLE_ROWS, DATA_LENGTH, INDEX_LENGTH"
    } else {
        ""
    };
    (
        format!(
            "SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE, ENGINE, TABLE_COMMENT, CREATE_OPTIONS{stats} \
             FROM information_schema.TABLES{}",
            w.sql
        ),
        w.params,
    )
}

/// Positions in a `columns_query` row.
mod col {
    pub(super) const SCHEMA: usize = 0;
    pub(super) const TABLE: usize = 1;
    pub(super) const NAME: usize = 2;
    pub(super) const ORDINAL: usize = 3;
    pub(super) const DEFAULT: usize = 4;
    pub(super) const NULLABLE: usize = 5;
    pub(super) const TYPE: usize = 6;
    pub(super) const COMMENT: usize = 7;
}

/// The optional columns of a `COLUMNS` listing; they follow the fixed ones,
/// in this order.
#[derive(Clone, Copy, Debug)]
struct Listing {
    /// `EXTRA`, where defaults are bare values and it tells an expression.
    extra: bool,
    /// `COLUMN_KEY`, when the key query is limited to the tables it marks.
    /// It costs the server ~10% more on the listing (measured on the
    /// 2,000-table benchmark, 45 vs 50 ms), so it is left out where the
    /// table listing limits the key query instead.
    key: bool,
}

impl Listing {
    fn extra_at(self) -> Option<usize> {
        self.extra.then_some(8)
    }

    fn key_at(self) -> Option<usize> {
        self.key.then_some(8 + usize::from(self.extra))
    }
}

/// Each column the server sends costs it time per row (the views are
/// materialized row by row), so the listing asks for what discovery keeps:
/// `DATA_TYPE`, `NUMERIC_PRECISION` and `NUMERIC_SCALE` are spelled out in
/// `COLUMN_TYPE`, and `EXTRA` and `COLUMN_KEY` are read only where needed.
fn columns_query(
    req: &DiscoveryRequest,
    only: Option<&str>,
    listing: Listing,
) -> (String, Vec<Value>) {
    let mut w = Where::default();
    w.tables("TABLE_SCHEMA", "TABLE_NAME", req, only);
    let extra = if listing.extra { ", EXTRA" } else { "" };
    let key = if listing.key { ", COLUMN_KEY" } else { "" };
    (
        format!(
            "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, ORDINAL_POSITION, COLUMN_DEFAULT, \
             IS_NULLABLE, COLUMN_TYPE, COLUMN_COMMENT{extra}{key} \
             FROM information_schema.COLUMNS{}",
            w.sql
        ),
        w.params,
    )
}

fn primary_keys_query(
    req: &DiscoveryRequest,
    only: Option<&str>,
    among: &TableList,
) -> (String, Vec<Value>) {
    let mut w = Where::default();
    w.and("INDEX_NAME = 'PRIMARY'");
    w.tables("TABLE_SCHEMA", "TABLE_NAME", req, only);
    w.among("TABLE_SCHEMA", "TABLE_NAME", among);
    (
        format!(
            "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, SEQ_IN_INDEX \
             FROM information_schema.STATISTICS{}",
            w.sql
        ),
        w.params,
    )
}

/// MariaDB's JSON columns: `longtext` with an automatic column-level
/// `CHECK (json_valid(col))` named after the column.
fn json_checks_query(
    req: &DiscoveryRequest,
    only: Option<&str>,
    among: &TableList,
) -> (String, Vec<Value>) {
    let mut w = Where::default();
    w.and("LEVEL = 'Column'");
    // `_` matches itself too; the exact clause is checked on our side.
    w.and("CHECK_CLAUSE LIKE 'json_valid(%'");
    w.tables("CONSTRAINT_SCHEMA", "TABLE_NAME", req, only);
    w.among("CONSTRAINT_SCHEMA", "TABLE_NAME", among);
    (
        format!(
            "SELECT CONSTRAINT_SCHEMA, TABLE_NAME, CONSTRAINT_NAME, CHECK_CLAUSE \
             FROM information_schema.CHECK_CONSTRAINTS{}",
            w.sql
        ),
        w.params,
    )
}

fn table_kind(table_type: &str, create_options: &str) -> TableKind {
    match table_type {
        "VIEW" => TableKind::View,
        "SYSTEM VIEW" => TableKind::SystemView,
        _ if create_options.to_ascii_lowercase().contains("partitioned") => TableKind::Partitioned,
        _ => TableKind::Table,
    }
}

/// Column values by position, with protocol errors instead of panics.
struct Cells(Vec<Value>);

impl Cells {
    fn text(&self, i: usize) -> Option<String> {
        self.0.get(i).and_then(text)
    }

    fn name(&self, i: usize, what: &str) -> Result<String, ConnectorError> {
        self.text(i).ok_or_else(|| self.null_name(what))
    }

    fn unsigned(&self, i: usize) -> Option<u64> {
        self.0.get(i).and_then(unsigned)
    }

    /// The raw bytes of a text cell (`None` for NULL and numbers).
    fn bytes(&self, i: usize) -> Option<&[u8]> {
        match self.0.get(i) {
            Some(Value::Bytes(b)) => Some(b),
            _ => None,
        }
    }

    /// A text cell, borrowed when its bytes are UTF-8.
    fn str(&self, i: usize) -> Option<Cow<'_, str>> {
        match self.0.get(i)? {
            Value::Bytes(b) => Some(String::from_utf8_lossy(b)),
            v => text(v).map(Cow::Owned),
        }
    }

    /// Like [`Cells::text`], moving the cell's bytes out instead of copying.
    fn take_text(&mut self, i: usize) -> Option<String> {
        match self.0.get_mut(i).map(|v| std::mem::replace(v, Value::NULL)) {
            Some(Value::Bytes(b)) => Some(
                String::from_utf8(b)
                    .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
            ),
            Some(v) => text(&v),
            None => None,
        }
    }

    fn take_name(&mut self, i: usize, what: &str) -> Result<String, ConnectorError> {
        self.take_text(i).ok_or_else(|| self.null_name(what))
    }

    fn null_name(&self, what: &str) -> ConnectorError {
        ConnectorError::new(
            ErrorCode::ProtocolError,
            format!("{what}: a name column was NULL"),
        )
    }
}

/// The cheapest query that proves discovery under `req` would work: one
/// database name under the same filters. A login that sees no database at all
/// and holds no privilege beyond USAGE is PERMISSION_DENIED: discovery would
/// only ever return nothing.
pub(crate) async fn probe(
    conn: &mut MysqlConnection,
    req: &DiscoveryRequest,
) -> Result<(), ConnectorError> {
    let only = conn.schema.clone();
    let (sql, params) = schemas_query(req, only.as_deref(), true);
    if !conn
        .rows("listing databases", &sql, params)
        .await?
        .is_empty()
    {
        return Ok(());
    }
    let visible = DiscoveryRequest {
        include_system: req.include_system,
        ..Default::default()
    };
    let (sql, params) = schemas_query(&visible, None, true);
    if !conn
        .rows("listing databases", &sql, params)
        .await?
        .is_empty()
    {
        // Databases exist, the filters match none of them: an empty catalog is
        // the right answer, not a failure.
        return Ok(());
    }
    let privileges = conn
        .rows(
            "reading privileges",
            "SELECT 1 FROM information_schema.USER_PRIVILEGES WHERE PRIVILEGE_TYPE <> 'USAGE' \
             UNION ALL SELECT 1 FROM information_schema.SCHEMA_PRIVILEGES \
             UNION ALL SELECT 1 FROM information_schema.TABLE_PRIVILEGES LIMIT 1",
            Vec::new(),
        )
        .await?;
    if privileges.is_empty() {
        return Err(ConnectorError::new(
            ErrorCode::PermissionDenied,
            "the user holds no privilege on any database, so discovery can see nothing: grant \
             SELECT (or SHOW VIEW) on the databases to discover",
        )
        .with_retryable(false));
    }
    Ok(())
}

pub(crate) async fn discover(
    conn: &mut MysqlConnection,
    req: &DiscoveryRequest,
) -> Result<Catalog, ConnectorError> {
    discover_with(conn, req, None).await
}

/// A table by (database, name).
type Key = (String, String);

/// Discovery; given an incremental pass, the tables' prints are taken once
/// they are listed and columns and keys are read for the changed ones only.
///
/// A full discovery lists the columns first (see [`full_discovery`]). An
/// incremental pass lists the tables first, as it needs their prints to
/// know which tables' columns to read.
async fn discover_with(
    conn: &mut MysqlConnection,
    req: &DiscoveryRequest,
    pass: Option<&mut incremental::Pass<'_>>,
) -> Result<Catalog, ConnectorError> {
    let only = conn.schema.clone();
    let only = only.as_deref();

    // A full discovery opens (or takes) the second session while the
    // databases are listed.
    let full = req.depth == Depth::Columns && pass.is_none();
    let opening = full.then(|| conn.take_side());
    let (sql, params) = schemas_query(req, only, false);
    let (listed, side) = tokio::join!(conn.rows("listing databases", &sql, params), async {
        match opening {
            Some(open) => Some(open.await),
            None => None,
        }
    });
    let mut side = match side {
        Some(Ok(side)) => side,
        Some(Err(e)) => {
            conn.put_side(Err(e));
            None
        }
        None => None,
    };
    let result = async {
        let mut schemas: BTreeMap<String, Schema> = BTreeMap::new();
        for row in listed? {
            let name = Cells(row).name(0, "listing databases")?;
            if req.schemas.matches(&name) {
                schemas.insert(
                    name.clone(),
                    Schema {
                        name,
                        comment: None,
                        tables: Vec::new(),
                    },
                );
            }
        }
        if req.depth == Depth::Schemas || schemas.is_empty() {
            return Ok(finish(schemas, HashMap::new()));
        }
        if full {
            return full_discovery(conn, side.as_deref_mut(), req, only, schemas).await;
        }
        changed_discovery(conn, req, only, schemas, pass).await
    }
    .await;
    if let Some(side) = side {
        conn.put_side(Ok(Some(side)));
    }
    result
}

/// Every table's columns, keys and JSON checks. The column listing goes
/// first: turning its rows into columns is most of this side's work, and it
/// runs while the server answers the other queries.
///
/// With a second session the server answers on both at once (one thread
/// each): the columns, then the JSON checks, on this one; the table listing,
/// then the primary keys of the base tables it listed, on the other.
/// Without one the table listing and the key and JSON-check queries follow
/// the column listing on this session.
async fn full_discovery(
    conn: &mut MysqlConnection,
    side: Option<&mut MysqlConnection>,
    req: &DiscoveryRequest,
    only: Option<&str>,
    schemas: BTreeMap<String, Schema>,
) -> Result<Catalog, ConnectorError> {
    let style = conn.default_style().await?;
    let mariadb = conn.is_mariadb().await?;
    let extra = style == DefaultStyle::Value;
    let Some(side) = side else {
        let listing = Listing { extra, key: true };
        let (sql, params) = columns_query(req, only, listing);
        let column_rows = conn.rows("listing columns", &sql, params).await?;
        let follow = FollowUps::of(&column_rows, &|_| true, mariadb, listing);
        let server = async {
            let tables = list_tables(conn, req, only, &schemas).await?;
            let answers = follow.run(conn, req, only).await?;
            Ok::<_, ConnectorError>((tables, answers))
        };
        let (listed, built) = tokio::join!(
            server,
            build_columns(column_rows, &|_| true, style, mariadb, listing)
        );
        let (mut tables, answers) = listed?;
        attach(&mut tables, built?, answers, &|_| true);
        return Ok(finish(schemas, tables));
    };
    let listing = Listing { extra, key: false };
    let (sql, params) = columns_query(req, only, listing);
    let all = |_: &Key| true;
    let columns = async {
        // Each row becomes a column as it arrives (its cells' memory is
        // reused for the next), while the other session's answers come in.
        let mut builder = ColumnsBuilder::new(&all, style, mariadb, listing);
        conn.each_row("listing columns", &sql, params, |row| builder.push(row))
            .await?;
        let built = builder.finish();
        let longtext: HashSet<Key> = built.longtext.iter().map(|(k, _)| k.clone()).collect();
        let json = if longtext.is_empty() {
            HashSet::new()
        } else {
            json_columns(conn, req, only, &TableList::from(longtext)).await?
        };
        Ok::<_, ConnectorError>((json, built))
    };
    let tables = async {
        let tables = list_tables(side, req, only, &schemas).await?;
        let keys = primary_keys(side, req, only, &keyable(&tables)).await?;
        Ok::<_, ConnectorError>((tables, keys))
    };
    let (columns, tables) = tokio::join!(columns, tables);
    let (json, built) = columns?;
    let (mut tables, keys) = tables?;
    attach(&mut tables, built, (json, keys), &|_| true);
    Ok(finish(schemas, tables))
}

/// The tables the key query names when the table listing limits it: the
/// base tables (views have no keys; a base table without one costs the
/// server an open, less than waiting for `COLUMN_KEY` to name the others).
/// No list when it would leave out less than a tenth of the relations: the
/// server parses a name about as fast as it opens a table for this query
/// (13 ms for 2,010 relations unlisted, 15 ms with the 2,000 base tables
/// named, server CPU on the benchmark).
fn keyable(tables: &HashMap<Key, Table>) -> TableList {
    let base: HashSet<Key> = tables
        .iter()
        .filter(|(_, t)| matches!(t.kind, TableKind::Table | TableKind::Partitioned))
        .map(|(k, _)| k.clone())
        .collect();
    if base.len() * 10 > tables.len() * 9 {
        return TableList::default();
    }
    TableList::from(base)
}

/// Depth `tables`, and an incremental pass: the table listing first, then
/// (an incremental pass) the tables whose prints changed, then their
/// columns, keys and JSON checks.
async fn changed_discovery(
    conn: &mut MysqlConnection,
    req: &DiscoveryRequest,
    only: Option<&str>,
    schemas: BTreeMap<String, Schema>,
    mut pass: Option<&mut incremental::Pass<'_>>,
) -> Result<Catalog, ConnectorError> {
    let mut tables = list_tables(conn, req, only, &schemas).await?;
    if req.depth == Depth::Tables || tables.is_empty() {
        return Ok(finish(schemas, tables));
    }
    let changed = match pass.as_mut() {
        Some(pass) => Some(pass.select(conn, req, only, &tables).await?),
        None => None,
    };
    let wanted = |key: &Key| changed.as_ref().is_none_or(|c| c.contains(key));
    if changed.as_ref().is_some_and(|c| c.is_empty()) {
        return Ok(finish(schemas, tables));
    }

    let style = conn.default_style().await?;
    let mariadb = conn.is_mariadb().await?;
    let listing = Listing {
        extra: style == DefaultStyle::Value,
        key: true,
    };
    let (sql, params) = incremental::restrict(columns_query(req, only, listing), changed.as_ref());
    let column_rows = conn.rows("listing columns", &sql, params).await?;
    // The follow-up queries go out before the rows are turned into columns:
    // the server answers them while this side does that work.
    let follow = FollowUps::of(
        &column_rows,
        &|key| tables.contains_key(key) && wanted(key),
        mariadb,
        listing,
    );
    let (answers, built) = tokio::join!(
        follow.run(conn, req, only),
        build_columns(column_rows, &wanted, style, mariadb, listing)
    );
    attach(&mut tables, built?, answers?, &wanted);
    Ok(finish(schemas, tables))
}

/// The table listing under the request's filters, for the databases listed.
async fn list_tables(
    conn: &mut MysqlConnection,
    req: &DiscoveryRequest,
    only: Option<&str>,
    schemas: &BTreeMap<String, Schema>,
) -> Result<HashMap<Key, Table>, ConnectorError> {
    let (sql, params) = tables_query(req, only);
    let mut tables: HashMap<Key, Table> = HashMap::new();
    for row in conn.rows("listing tables", &sql, params).await? {
        let c = Cells(row);
        let schema = c.name(0, "listing tables")?;
        let name = c.name(1, "listing tables")?;
        if !schemas.contains_key(&schema) || !req.tables.matches(&name) {
            continue;
        }
        let table_type = c.text(2).unwrap_or_default();
        let kind = table_kind(&table_type, &c.text(5).unwrap_or_default());
        let mut t = Table::new(name.clone(), kind);
        // A view's TABLE_COMMENT is the word VIEW, not a comment.
        t.comment = c
            .text(4)
            .filter(|s| !s.is_empty() && kind != TableKind::View);
        if let Some(engine) = c.text(3) {
            t.properties.insert("engine".into(), engine.into());
        }
        if !matches!(table_type.as_str(), "BASE TABLE" | "VIEW" | "SYSTEM VIEW") {
            // SEQUENCE, SYSTEM VERSIONED, TEMPORARY…
            t.properties
                .insert("tableType".into(), table_type.clone().into());
        }
        if req.statistics && matches!(kind, TableKind::Table | TableKind::Partitioned) {
            // InnoDB's TABLE_ROWS is an estimate from sampled pages; MyISAM's is exact.
            t.estimated_rows = c.unsigned(6);
            t.size_bytes = match (c.unsigned(7), c.unsigned(8)) {
                (None, None) => None,
                (d, i) => Some(d.unwrap_or(0) + i.unwrap_or(0)),
            };
        }
        tables.insert((schema, name), t);
    }
    Ok(tables)
}

/// Columns by table as the listing gave them, and the MariaDB `longtext`
/// columns among them that may be JSON (table, column index).
struct BuiltColumns {
    columns: HashMap<Key, Vec<Column>>,
    longtext: Vec<(Key, usize)>,
}

/// Gives each listed table its columns, marks MariaDB JSON columns and sets
/// primary keys. Columns of a table the listing left out (filtered, or
/// created in between) are dropped.
fn attach(
    tables: &mut HashMap<Key, Table>,
    built: BuiltColumns,
    (json, keys): FollowUpAnswers,
    wanted: &dyn Fn(&Key) -> bool,
) {
    for (key, columns) in built.columns {
        if let Some(t) = tables.get_mut(&key).filter(|_| wanted(&key)) {
            t.columns = columns;
        }
    }
    for (key, i) in built.longtext {
        if let Some(col) = tables.get_mut(&key).and_then(|t| t.columns.get_mut(i)) {
            if json.contains(&(key.0.clone(), key.1.clone(), col.name.to_string())) {
                col.data_type = normalize(
                    NativeType {
                        data_type: "longtext",
                        column_type: &col.native_type,
                        numeric_precision: None,
                        numeric_scale: None,
                    },
                    true,
                );
            }
        }
    }
    for (key, mut columns) in keys {
        if !wanted(&key) {
            continue;
        }
        if let Some(t) = tables.get_mut(&key) {
            columns.sort();
            t.primary_key = columns.into_iter().map(|(_, c)| c).collect();
        }
    }
}

/// Rows between two yields while columns are built: the queries running
/// beside it advance in between (about a millisecond of work).
const ROWS_PER_YIELD: usize = 512;

/// Turns the `COLUMNS` rows into columns, yielding now and then so the
/// queries running beside it advance.
async fn build_columns(
    rows: Vec<Vec<Value>>,
    wanted: &(dyn Fn(&Key) -> bool + Sync),
    style: DefaultStyle,
    mariadb: bool,
    listing: Listing,
) -> Result<BuiltColumns, ConnectorError> {
    let mut builder = ColumnsBuilder::new(wanted, style, mariadb, listing);
    for (n, row) in rows.into_iter().enumerate() {
        if n % ROWS_PER_YIELD == ROWS_PER_YIELD - 1 {
            tokio::task::yield_now().await;
        }
        builder.push(row)?;
    }
    Ok(builder.finish())
}

/// Turns `COLUMNS` rows into columns by table, one row at a time. Rows come
/// table by table: the table's entry is found once per run of its rows, and
/// each name's bytes move into the catalog without a copy.
struct ColumnsBuilder<'a> {
    out: BuiltColumns,
    /// The table of the current run of rows, and whether it is wanted.
    current: Option<(Key, bool)>,
    /// Its columns so far.
    list: Vec<Column>,
    wanted: &'a (dyn Fn(&Key) -> bool + Sync),
    style: DefaultStyle,
    mariadb: bool,
    listing: Listing,
    /// One copy of each column name and type spelling.
    names: Interner,
}

impl<'a> ColumnsBuilder<'a> {
    fn new(
        wanted: &'a (dyn Fn(&Key) -> bool + Sync),
        style: DefaultStyle,
        mariadb: bool,
        listing: Listing,
    ) -> Self {
        ColumnsBuilder {
            out: BuiltColumns {
                columns: HashMap::new(),
                longtext: Vec::new(),
            },
            current: None,
            list: Vec::new(),
            wanted,
            style,
            mariadb,
            listing,
            names: Interner::default(),
        }
    }

    fn push(&mut self, row: Vec<Value>) -> Result<(), ConnectorError> {
        let mut c = Cells(row);
        let same = match (&self.current, c.bytes(col::SCHEMA), c.bytes(col::TABLE)) {
            (Some(((s, t), _)), Some(schema), Some(table)) => {
                s.as_bytes() == schema && t.as_bytes() == table
            }
            _ => false,
        };
        if !same {
            let key = (
                c.take_name(col::SCHEMA, "listing columns")?,
                c.take_name(col::TABLE, "listing columns")?,
            );
            self.flush();
            let keep = (self.wanted)(&key);
            self.current = Some((key, keep));
        }
        let Some((key, true)) = &self.current else {
            return Ok(());
        };
        // Names and type spellings repeat from table to table: each column
        // shares one copy of each, read straight off the row's bytes.
        let name = match c.str(col::NAME) {
            Some(name) => self.names.intern(&name),
            None => return Err(c.null_name("listing columns")),
        };
        let comment = c.take_text(col::COMMENT).filter(|s| !s.is_empty());
        let column_type = c.str(col::TYPE).unwrap_or_default();
        let data_type = data_type_of(&column_type);
        let data = normalize(
            NativeType {
                data_type,
                column_type: &column_type,
                numeric_precision: None,
                numeric_scale: None,
            },
            false,
        );
        if self.mariadb && data_type.eq_ignore_ascii_case("longtext") {
            let before = self.out.columns.get(key).map_or(0, Vec::len);
            self.out
                .longtext
                .push((key.clone(), before + self.list.len()));
        }
        let default = normalize_default(
            c.str(col::DEFAULT).as_deref(),
            self.style,
            data_type,
            &self
                .listing
                .extra_at()
                .and_then(|i| c.str(i))
                .unwrap_or_default(),
        );
        self.list.push(Column {
            ordinal: c
                .unsigned(col::ORDINAL)
                .and_then(|o| u32::try_from(o).ok())
                .unwrap_or(0),
            data_type: data,
            nullable: c
                .bytes(col::NULLABLE)
                .is_some_and(|n| n.eq_ignore_ascii_case(b"YES")),
            default,
            comment,
            native_type: self.names.intern(&column_type),
            name,
        });
        Ok(())
    }

    /// Files the current run's columns under its table.
    fn flush(&mut self) {
        if let Some((done, true)) = self.current.take() {
            self.out
                .columns
                .entry(done)
                .or_default()
                .append(&mut self.list);
        }
    }

    fn finish(mut self) -> BuiltColumns {
        self.flush();
        self.out
    }
}

/// The queries that follow the column listing, and the tables each concerns.
struct FollowUps {
    /// Tables with a key column: COLUMN_KEY says which tables have one, but
    /// only STATISTICS tells a declared PRIMARY KEY (and its column order)
    /// from a UNIQUE NOT NULL key the server promotes.
    keyed: HashSet<Key>,
    /// MariaDB tables with a `longtext` column, which may be JSON.
    longtext: HashSet<Key>,
}

impl FollowUps {
    /// Reads the tables the follow-ups concern off the raw `COLUMNS` rows.
    fn of(
        rows: &[Vec<Value>],
        listed: &dyn Fn(&Key) -> bool,
        mariadb: bool,
        listing: Listing,
    ) -> FollowUps {
        let mut out = FollowUps {
            keyed: HashSet::new(),
            longtext: HashSet::new(),
        };
        // The run of rows of one table: its raw names, and its key when listed.
        let mut current: Option<(&[u8], &[u8], Option<Key>)> = None;
        for row in rows {
            let (Some(Value::Bytes(schema)), Some(Value::Bytes(table))) =
                (row.get(col::SCHEMA), row.get(col::TABLE))
            else {
                continue;
            };
            let primary = matches!(listing.key_at().and_then(|i| row.get(i)),
                Some(Value::Bytes(k)) if k == b"PRI");
            let longtext = mariadb
                && matches!(row.get(col::TYPE), Some(Value::Bytes(t))
                    if data_type_of(&String::from_utf8_lossy(t)).eq_ignore_ascii_case("longtext"));
            if !primary && !longtext {
                continue;
            }
            if !matches!(current, Some((s, t, _)) if s == &schema[..] && t == &table[..]) {
                let name = (
                    String::from_utf8_lossy(schema).into_owned(),
                    String::from_utf8_lossy(table).into_owned(),
                );
                current = Some((schema, table, listed(&name).then_some(name)));
            }
            let Some((_, _, Some(name))) = &current else {
                continue;
            };
            if primary && !out.keyed.contains(name) {
                out.keyed.insert(name.clone());
            }
            if longtext && !out.longtext.contains(name) {
                out.longtext.insert(name.clone());
            }
        }
        out
    }

    /// The JSON columns and the primary keys (column order, name) by table.
    async fn run(
        self,
        conn: &mut MysqlConnection,
        req: &DiscoveryRequest,
        only: Option<&str>,
    ) -> Result<FollowUpAnswers, ConnectorError> {
        let json = if self.longtext.is_empty() {
            HashSet::new()
        } else {
            json_columns(conn, req, only, &TableList::from(self.longtext)).await?
        };
        if self.keyed.is_empty() {
            return Ok((json, HashMap::new()));
        }
        let keys = primary_keys(conn, req, only, &TableList::from(self.keyed)).await?;
        Ok((json, keys))
    }
}

/// Primary key columns (position in the key, name) by table, among the
/// tables named.
async fn primary_keys(
    conn: &mut MysqlConnection,
    req: &DiscoveryRequest,
    only: Option<&str>,
    among: &TableList,
) -> Result<HashMap<Key, Vec<(u64, String)>>, ConnectorError> {
    let mut keys: HashMap<Key, Vec<(u64, String)>> = HashMap::new();
    let (sql, params) = primary_keys_query(req, only, among);
    for row in conn.rows("listing primary keys", &sql, params).await? {
        let mut c = Cells(row);
        let key = (
            c.take_name(0, "listing primary keys")?,
            c.take_name(1, "listing primary keys")?,
        );
        let column = c.take_name(2, "listing primary keys")?;
        keys.entry(key)
            .or_default()
            .push((c.unsigned(3).unwrap_or(0), column));
    }
    Ok(keys)
}

/// MariaDB JSON columns (database, table, column), and primary key columns
/// (position in the key, name) by table.
type FollowUpAnswers = (
    HashSet<(String, String, String)>,
    HashMap<Key, Vec<(u64, String)>>,
);

/// (database, table, column) of every MariaDB JSON column under the
/// filters, among the tables named.
async fn json_columns(
    conn: &mut MysqlConnection,
    req: &DiscoveryRequest,
    only: Option<&str>,
    among: &TableList,
) -> Result<HashSet<(String, String, String)>, ConnectorError> {
    let (sql, params) = json_checks_query(req, only, among);
    let mut out = HashSet::new();
    for row in conn.rows("listing JSON checks", &sql, params).await? {
        let c = Cells(row);
        let (Some(schema), Some(table), Some(name), Some(clause)) =
            (c.text(0), c.text(1), c.text(2), c.text(3))
        else {
            continue;
        };
        // The automatic constraint is exactly json_valid(`col`), backticks doubled.
        if clause == format!("json_valid(`{}`)", name.replace('`', "``")) {
            out.insert((schema, table, name));
        }
    }
    Ok(out)
}

fn finish(
    mut schemas: BTreeMap<String, Schema>,
    tables: HashMap<(String, String), Table>,
) -> Catalog {
    for ((schema, _), table) in tables {
        if let Some(s) = schemas.get_mut(&schema) {
            s.tables.push(table);
        }
    }
    let mut catalog = Catalog {
        schemas: schemas.into_values().collect(),
    };
    catalog.sort();
    catalog
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The listing the key query is limited by, without `EXTRA`.
    pub(super) const KEYED: Listing = Listing {
        extra: false,
        key: true,
    };

    fn req(schemas: &[&str], exclude_tables: &[&str]) -> DiscoveryRequest {
        DiscoveryRequest {
            schemas: NameFilter {
                include: schemas.iter().map(|s| s.to_string()).collect(),
                exclude: vec![],
            },
            tables: NameFilter {
                include: vec![],
                exclude: exclude_tables.iter().map(|s| s.to_string()).collect(),
            },
            ..Default::default()
        }
    }

    #[test]
    fn filters_become_placeholders_and_bound_values() {
        let hostile = "x' OR 1=1 -- `";
        let (sql, params) = tables_query(&req(&["sales_*", hostile], &["tmp?"]), None);
        assert!(!sql.contains("OR 1=1"), "{sql}");
        assert!(!sql.contains("sales"), "{sql}");
        assert_eq!(sql.matches('?').count(), params.len());
        assert_eq!(
            params,
            vec![
                Value::from("sales\\_%"),
                Value::from(hostile),
                Value::from("tmp_")
            ]
        );
        assert!(sql.contains(
            "(CONVERT(TABLE_SCHEMA USING utf8mb4) COLLATE utf8mb4_bin LIKE ? ESCAPE CHAR(92 USING utf8mb4) OR \
             CONVERT(TABLE_SCHEMA USING utf8mb4) COLLATE utf8mb4_bin LIKE ? ESCAPE CHAR(92 USING utf8mb4))"
        ), "{sql}");
        assert!(
            sql.contains("NOT (CONVERT(TABLE_NAME USING utf8mb4) COLLATE utf8mb4_bin LIKE ?"),
            "{sql}"
        );
        assert!(sql.contains("NOT IN ('information_schema', 'mysql', 'performance_schema', 'sys')"));
        assert!(sql.contains(", TABLE_ROWS, DATA_LENGTH, INDEX_LENGTH"));
    }

    #[test]
    fn system_schemas_and_statistics_follow_the_request() {
        let mut r = DiscoveryRequest {
            include_system: true,
            statistics: false,
            ..Default::default()
        };
        let (sql, params) = tables_query(&r, None);
        assert!(!sql.contains("WHERE"), "{sql}");
        assert!(params.is_empty());
        assert!(!sql.contains("TABLE_ROWS"));
        r.include_system = false;
        let (sql, params) = schemas_query(&r, Some("shop"), true);
        assert!(sql.ends_with("= ? LIMIT 1"), "{sql}");
        assert_eq!(params, vec![Value::from("shop")]);
    }

    #[test]
    fn no_query_joins_information_schema_views() {
        let r = req(&["a"], &["b"]);
        for (sql, _) in [
            schemas_query(&r, None, false),
            tables_query(&r, None),
            columns_query(
                &r,
                None,
                Listing {
                    extra: true,
                    key: true,
                },
            ),
            primary_keys_query(&r, None, &TableList::default()),
            json_checks_query(&r, None, &TableList::default()),
        ] {
            assert_eq!(sql.matches("information_schema.").count(), 1, "{sql}");
            assert!(!sql.to_ascii_uppercase().contains(" JOIN "), "{sql}");
        }
    }

    #[test]
    fn optional_listing_columns_are_where_they_are_read() {
        for extra in [false, true] {
            for key in [false, true] {
                let listing = Listing { extra, key };
                let (sql, _) = columns_query(&DiscoveryRequest::default(), None, listing);
                let select = sql
                    .strip_prefix("SELECT ")
                    .and_then(|s| s.split(" FROM ").next())
                    .unwrap();
                let names: Vec<&str> = select.split(", ").map(str::trim).collect();
                let at = |name: &str| names.iter().position(|n| *n == name);
                assert_eq!(at("EXTRA"), listing.extra_at(), "{sql}");
                assert_eq!(at("COLUMN_KEY"), listing.key_at(), "{sql}");
                assert_eq!(at("COLUMN_TYPE"), Some(col::TYPE), "{sql}");
                assert_eq!(at("COLUMN_COMMENT"), Some(col::COMMENT), "{sql}");
                assert_eq!(names.len(), 8 + usize::from(extra) + usize::from(key));
            }
        }
    }

    #[test]
    fn a_single_literal_include_is_also_an_equality() {
        assert_eq!(glob_literal("matih_bench").as_deref(), Some("matih_bench"));
        assert_eq!(glob_literal("a\\*b").as_deref(), Some("a*b"));
        assert_eq!(glob_literal("sales_*"), None);
        assert_eq!(glob_literal("a?"), None);
        // One database named: the equality alone (this side checks names
        // exactly), and no system-database clause.
        let (sql, params) = columns_query(&req(&["Sales Data"], &[]), None, KEYED);
        assert!(sql.ends_with(" WHERE TABLE_SCHEMA = ?"), "{sql}");
        assert_eq!(params, vec![Value::from("Sales Data")]);
        // A system database named still gets the system clause, so
        // `include_system` keeps deciding.
        let (sql, _) = columns_query(&req(&["MySQL"], &[]), None, KEYED);
        assert!(
            sql.contains("NOT IN ('information_schema', 'mysql'"),
            "{sql}"
        );
        assert!(sql.ends_with(" AND TABLE_SCHEMA = ?"), "{sql}");
        let (sql, _) = columns_query(&req(&["a", "b"], &[]), None, KEYED);
        assert!(!sql.contains("TABLE_SCHEMA = ?"), "{sql}");
        assert!(sql.contains("CONVERT(TABLE_SCHEMA"), "{sql}");
    }

    #[test]
    fn follow_up_queries_name_their_tables_as_bound_values() {
        let list = TableList::from(HashSet::from([
            ("a".to_owned(), "t1".to_owned()),
            ("a".to_owned(), "t2".to_owned()),
            ("b".to_owned(), "x' OR 1=1 --".to_owned()),
        ]));
        let r = req(&[], &[]);
        let (sql, params) = primary_keys_query(&r, None, &list);
        assert!(
            sql.ends_with(
                " AND ((TABLE_SCHEMA = ? AND TABLE_NAME IN (?, ?)) OR \
                 (TABLE_SCHEMA = ? AND TABLE_NAME IN (?)))"
            ),
            "{sql}"
        );
        assert!(!sql.contains("OR 1=1"), "{sql}");
        assert_eq!(sql.matches('?').count(), params.len());
        let mut names: Vec<Value> = params[params.len() - 5..].to_vec();
        names.sort_by_key(|v| format!("{v:?}"));
        let mut want = vec![
            Value::from("a"),
            Value::from("t1"),
            Value::from("t2"),
            Value::from("b"),
            Value::from("x' OR 1=1 --"),
        ];
        want.sort_by_key(|v| format!("{v:?}"));
        assert_eq!(names, want);
        let (sql, _) = json_checks_query(&r, None, &list);
        assert!(
            sql.contains("(CONSTRAINT_SCHEMA = ? AND TABLE_NAME IN (?, ?))"),
            "{sql}"
        );
        // No list, or one too long for a statement: the filters alone decide.
        let (plain, plain_params) = primary_keys_query(&r, None, &TableList::default());
        assert!(!plain.contains(" IN (?"), "{plain}");
        let many = TableList::from(
            (0..=TABLE_LIST_MAX)
                .map(|i| ("a".to_owned(), format!("t{i}")))
                .collect::<HashSet<_>>(),
        );
        assert_eq!(primary_keys_query(&r, None, &many), (plain, plain_params));
    }

    #[test]
    fn the_key_query_names_base_tables_when_that_leaves_many_out() {
        let relations = |tables: usize, views: usize| -> HashMap<Key, Table> {
            (0..tables)
                .map(|i| (format!("t{i}"), TableKind::Table))
                .chain((0..views).map(|i| (format!("v{i}"), TableKind::View)))
                .map(|(n, k)| (("s".to_owned(), n.clone()), Table::new(n, k)))
                .collect()
        };
        assert!(keyable(&relations(95, 5)).is_empty());
        assert!(keyable(&relations(0, 0)).is_empty());
        let list = keyable(&relations(80, 20));
        assert_eq!(list.len, 80);
        assert!(list.by_schema["s"].iter().all(|t| t.starts_with('t')));
    }

    #[test]
    fn table_kinds() {
        assert_eq!(table_kind("BASE TABLE", ""), TableKind::Table);
        assert_eq!(
            table_kind("BASE TABLE", "partitioned"),
            TableKind::Partitioned
        );
        assert_eq!(
            table_kind("BASE TABLE", "row_format=DYNAMIC partitioned"),
            TableKind::Partitioned
        );
        assert_eq!(table_kind("VIEW", ""), TableKind::View);
        assert_eq!(table_kind("SYSTEM VIEW", ""), TableKind::SystemView);
        assert_eq!(table_kind("SEQUENCE", ""), TableKind::Table);
        assert_eq!(table_kind("SYSTEM VERSIONED", ""), TableKind::Table);
    }
}
