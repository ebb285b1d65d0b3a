//! The catalog model every driver discovers into, and the normalized type system.

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Deref;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What a discovery found: schemas, their tables, their columns.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Catalog {
    /// The schemas found (databases, datasets, buckets…), each with its tables.
    #[serde(deserialize_with = "exact")]
    pub schemas: Vec<Schema>,
}

impl Catalog {
    /// The schema named `name`, if discovered.
    pub fn schema(&self, name: &str) -> Option<&Schema> {
        self.schemas.iter().find(|s| s.name == name)
    }

    /// Tables over all schemas.
    pub fn table_count(&self) -> usize {
        self.schemas.iter().map(|s| s.tables.len()).sum()
    }

    /// Columns over all tables of all schemas.
    pub fn column_count(&self) -> usize {
        self.schemas
            .iter()
            .flat_map(|s| &s.tables)
            .map(|t| t.columns.len())
            .sum()
    }

    /// Sorts schemas and tables by name and columns by ordinal, so output is stable.
    pub fn sort(&mut self) {
        self.schemas.sort_by(|a, b| a.name.cmp(&b.name));
        for s in &mut self.schemas {
            s.tables.sort_by(|a, b| a.name.cmp(&b.name));
            for t in &mut s.tables {
                t.columns.sort_by_key(|c| c.ordinal);
            }
        }
    }
}

/// A schema (or database, dataset, bucket, keyspace: the source's first level) and its tables.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Schema {
    /// The name as the source spells it.
    pub name: String,
    /// The source's comment, when it keeps one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Tables, views, collections… in this schema (empty at [`crate::Depth::Schemas`]).
    #[serde(deserialize_with = "exact")]
    pub tables: Vec<Table>,
}

impl Schema {
    /// The table named `name`, if discovered.
    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.name == name)
    }
}

/// What kind of object a table is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum TableKind {
    /// A base table.
    Table,
    /// A view.
    View,
    /// A materialized view.
    MaterializedView,
    /// A partitioned table's parent; its partitions are reported as tables too.
    Partitioned,
    /// A foreign or external table whose data lives elsewhere.
    External,
    /// A document collection (MongoDB, DynamoDB).
    Collection,
    /// A streaming topic (Kafka).
    Topic,
    /// Files under a prefix read as one table (object stores).
    FileSet,
    /// A REST endpoint.
    Endpoint,
    /// A GraphQL object type.
    GraphqlType,
    /// A view of the source's own system catalog.
    SystemView,
}

/// A table, view, collection, topic, file set… Row counts and sizes are the
/// source's own estimates, absent when it keeps none.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Table {
    /// The name as the source spells it.
    pub name: String,
    /// What kind of object it is (`type` on the wire).
    #[serde(rename = "type")]
    pub kind: TableKind,
    /// The source's row estimate, when it keeps one.
    pub estimated_rows: Option<u64>,
    /// The source's size estimate in bytes, when it keeps one.
    pub size_bytes: Option<u64>,
    /// Primary key column names in key order; empty when there is none.
    #[serde(default, deserialize_with = "exact")]
    pub primary_key: Vec<String>,
    /// The source's comment, when it keeps one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Source-specific facts (partition parent, file format, partitions…).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, serde_json::Value>,
    /// Columns in ordinal order (empty below [`crate::Depth::Columns`]).
    #[serde(default, deserialize_with = "exact")]
    pub columns: Vec<Column>,
}

impl Table {
    /// A table with a name and a kind and nothing else known yet.
    pub fn new(name: impl Into<String>, kind: TableKind) -> Self {
        Table {
            name: name.into(),
            kind,
            estimated_rows: None,
            size_bytes: None,
            primary_key: Vec::new(),
            comment: None,
            properties: BTreeMap::new(),
            columns: Vec::new(),
        }
    }

    /// The column named `name`, if discovered.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// A list read back from JSON, holding no more room than its elements.
/// Read element by element, a vector doubles as it grows: the 20 columns of
/// a table would keep room for 32, and a catalog of 400k columns over 60%
/// more memory than it needs.
fn exact<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    let mut v = Vec::<T>::deserialize(d)?;
    v.shrink_to_fit();
    Ok(v)
}

/// A column (or field) of a table, with its native and normalized types.
///
/// Names and native types repeat across a catalog (`id`, `integer`, …):
/// they are [`SharedStr`]s, so a driver can hand every column the same
/// allocation and a catalog of 400k columns holds each spelling once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Column {
    /// The name as the source spells it.
    pub name: SharedStr,
    /// 1-based position.
    pub ordinal: u32,
    /// The type as the source spells it, e.g. `character varying(40)`.
    pub native_type: SharedStr,
    /// The normalized type, e.g. `string`.
    pub data_type: DataType,
    /// Whether the column may hold nulls (inferred fields: whether one was seen missing).
    pub nullable: bool,
    /// The default expression as the source spells it.
    pub default: Option<String>,
    /// The source's comment, when it keeps one.
    pub comment: Option<String>,
}

/// An immutable string whose clones share one allocation (an `Arc<str>`).
/// It reads, compares, prints and serializes as the text it holds, so JSON
/// is the same as a `String`'s.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SharedStr(Arc<str>);

impl SharedStr {
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Deref for SharedStr {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for SharedStr {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for SharedStr {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<&str> for SharedStr {
    fn from(s: &str) -> Self {
        SharedStr(s.into())
    }
}

impl From<String> for SharedStr {
    fn from(s: String) -> Self {
        SharedStr(s.into())
    }
}

impl From<&String> for SharedStr {
    fn from(s: &String) -> Self {
        SharedStr(s.as_str().into())
    }
}

impl From<Arc<str>> for SharedStr {
    fn from(s: Arc<str>) -> Self {
        SharedStr(s)
    }
}

impl From<SharedStr> for String {
    fn from(s: SharedStr) -> Self {
        s.0.as_ref().to_owned()
    }
}

impl PartialEq<str> for SharedStr {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for SharedStr {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl PartialEq<String> for SharedStr {
    fn eq(&self, other: &String) -> bool {
        &*self.0 == other.as_str()
    }
}

impl PartialEq<SharedStr> for str {
    fn eq(&self, other: &SharedStr) -> bool {
        self == &*other.0
    }
}

impl PartialEq<SharedStr> for &str {
    fn eq(&self, other: &SharedStr) -> bool {
        *self == &*other.0
    }
}

impl PartialEq<SharedStr> for String {
    fn eq(&self, other: &SharedStr) -> bool {
        self.as_str() == &*other.0
    }
}

impl fmt::Debug for SharedStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for SharedStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for SharedStr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SharedStr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl serde::de::Visitor<'_> for Visit {
            type Value = SharedStr;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<SharedStr, E> {
                Ok(PARSE_INTERNER.with(|i| match &mut *i.borrow_mut() {
                    Some(names) => names.intern(v),
                    None => v.into(),
                }))
            }
        }
        d.deserialize_str(Visit)
    }
}

thread_local! {
    /// The interner of an [`Interned`] deserialization running on this thread.
    static PARSE_INTERNER: std::cell::RefCell<Option<Interner>> =
        const { std::cell::RefCell::new(None) };
}

/// `T` deserialized with every [`SharedStr`] in it interned: a catalog read
/// back from JSON holds each column name and native type once, as the
/// driver that discovered it did, instead of one allocation per column
/// (at 400k columns, some 20 MB).
///
/// ```
/// use matih_connector_core::{Catalog, Interned};
/// let text = r#"{"schemas":[{"name":"s","tables":[]}]}"#;
/// let Interned(catalog) = serde_json::from_str::<Interned<Catalog>>(text).unwrap();
/// assert_eq!(catalog.schemas[0].name, "s");
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Interned<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Interned<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        /// Ends this thread's interning however the deserialization ends.
        struct Done(bool);
        impl Drop for Done {
            fn drop(&mut self) {
                if self.0 {
                    PARSE_INTERNER.with(|i| i.borrow_mut().take());
                }
            }
        }
        // An `Interned` inside another one shares the outer interner.
        let started = PARSE_INTERNER.with(|i| {
            let mut i = i.borrow_mut();
            let fresh = i.is_none();
            if fresh {
                *i = Some(Interner::default());
            }
            fresh
        });
        let _done = Done(started);
        T::deserialize(d).map(Interned)
    }
}

/// Hands out one [`SharedStr`] per distinct text: a driver that reads a
/// column's name or type row by row keeps a single copy of each spelling.
#[derive(Debug, Default)]
pub struct Interner(std::collections::HashSet<SharedStr>);

impl Interner {
    /// The shared copy of `text`, made on first sight.
    pub fn intern(&mut self, text: &str) -> SharedStr {
        if let Some(s) = self.0.get(text) {
            return s.clone();
        }
        let s = SharedStr::from(text);
        self.0.insert(s.clone());
        s
    }
}

/// The small, closed, normalized type system every driver maps into.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DataType {
    /// `boolean`.
    Boolean,
    /// `int8`: 8-bit signed integer.
    Int8,
    /// `int16`: 16-bit signed integer.
    Int16,
    /// `int32`: 32-bit signed integer.
    Int32,
    /// `int64`: 64-bit signed integer.
    Int64,
    /// `float32`: single precision.
    Float32,
    /// `float64`: double precision.
    Float64,
    /// Precision and scale when the source fixes them.
    Decimal {
        /// Total digits.
        precision: Option<u32>,
        /// Digits after the decimal point (negative: rounding left of it).
        scale: Option<i32>,
    },
    /// `string`: text of any length.
    String,
    /// `binary`: bytes.
    Binary,
    /// `date`: a calendar date.
    Date,
    /// `time`: a time of day.
    Time,
    /// Without time zone.
    Timestamp,
    /// With time zone (an instant).
    TimestampTz,
    /// `interval`: a duration.
    Interval,
    /// `uuid`.
    Uuid,
    /// `json`: a JSON document.
    Json,
    /// `array<T>`: a list of one element type.
    Array(Box<DataType>),
    /// `struct`: a nested record.
    Struct,
    /// `map`: keys to values.
    Map,
    /// `unknown`: a native type with no normalized counterpart.
    Unknown,
}

impl DataType {
    /// `decimal(precision,scale)` with both known.
    pub fn decimal(precision: u32, scale: i32) -> DataType {
        DataType::Decimal {
            precision: Some(precision),
            scale: Some(scale),
        }
    }

    /// `array<inner>`.
    pub fn array(inner: DataType) -> DataType {
        DataType::Array(Box::new(inner))
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataType::Boolean => f.write_str("boolean"),
            DataType::Int8 => f.write_str("int8"),
            DataType::Int16 => f.write_str("int16"),
            DataType::Int32 => f.write_str("int32"),
            DataType::Int64 => f.write_str("int64"),
            DataType::Float32 => f.write_str("float32"),
            DataType::Float64 => f.write_str("float64"),
            DataType::Decimal {
                precision: Some(p),
                scale: Some(s),
            } => write!(f, "decimal({p},{s})"),
            DataType::Decimal {
                precision: Some(p),
                scale: None,
            } => write!(f, "decimal({p})"),
            DataType::Decimal { .. } => f.write_str("decimal"),
            DataType::String => f.write_str("string"),
            DataType::Binary => f.write_str("binary"),
            DataType::Date => f.write_str("date"),
            DataType::Time => f.write_str("time"),
            DataType::Timestamp => f.write_str("timestamp"),
            DataType::TimestampTz => f.write_str("timestamp_tz"),
            DataType::Interval => f.write_str("interval"),
            DataType::Uuid => f.write_str("uuid"),
            DataType::Json => f.write_str("json"),
            DataType::Array(inner) => write!(f, "array<{inner}>"),
            DataType::Struct => f.write_str("struct"),
            DataType::Map => f.write_str("map"),
            DataType::Unknown => f.write_str("unknown"),
        }
    }
}

impl FromStr for DataType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if let Some(inner) = s.strip_prefix("array<").and_then(|r| r.strip_suffix('>')) {
            return Ok(DataType::array(inner.parse()?));
        }
        if let Some(args) = s.strip_prefix("decimal(").and_then(|r| r.strip_suffix(')')) {
            let mut parts = args.split(',');
            let p = parts.next().and_then(|p| p.trim().parse().ok());
            let sc = parts.next().and_then(|p| p.trim().parse().ok());
            if p.is_none() {
                return Err(format!("invalid decimal type {s:?}"));
            }
            return Ok(DataType::Decimal {
                precision: p,
                scale: sc,
            });
        }
        Ok(match s {
            "boolean" => DataType::Boolean,
            "int8" => DataType::Int8,
            "int16" => DataType::Int16,
            "int32" => DataType::Int32,
            "int64" => DataType::Int64,
            "float32" => DataType::Float32,
            "float64" => DataType::Float64,
            "decimal" => DataType::Decimal {
                precision: None,
                scale: None,
            },
            "string" => DataType::String,
            "binary" => DataType::Binary,
            "date" => DataType::Date,
            "time" => DataType::Time,
            "timestamp" => DataType::Timestamp,
            "timestamp_tz" => DataType::TimestampTz,
            "interval" => DataType::Interval,
            "uuid" => DataType::Uuid,
            "json" => DataType::Json,
            "struct" => DataType::Struct,
            "map" => DataType::Map,
            "unknown" => DataType::Unknown,
            other => return Err(format!("unknown data type {other:?}")),
        })
    }
}

impl Serialize for DataType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DataType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_types_round_trip_through_text() {
        let all = [
            DataType::Boolean,
            DataType::Int8,
            DataType::Int16,
            DataType::Int32,
            DataType::Int64,
            DataType::Float32,
            DataType::Float64,
            DataType::decimal(10, 2),
            DataType::Decimal {
                precision: Some(20),
                scale: None,
            },
            DataType::Decimal {
                precision: None,
                scale: None,
            },
            DataType::String,
            DataType::Binary,
            DataType::Date,
            DataType::Time,
            DataType::Timestamp,
            DataType::TimestampTz,
            DataType::Interval,
            DataType::Uuid,
            DataType::Json,
            DataType::array(DataType::array(DataType::Int32)),
            DataType::Struct,
            DataType::Map,
            DataType::Unknown,
        ];
        for t in all {
            let text = t.to_string();
            assert_eq!(text.parse::<DataType>().unwrap(), t, "{text}");
        }
        assert_eq!(DataType::decimal(10, 2).to_string(), "decimal(10,2)");
        assert_eq!(
            DataType::array(DataType::String).to_string(),
            "array<string>"
        );
        assert!("varchar".parse::<DataType>().is_err());
    }

    #[test]
    fn shared_strings_serialize_as_strings_and_intern_once() {
        let c = Column {
            name: "id".into(),
            ordinal: 1,
            native_type: "character varying(40)".into(),
            data_type: DataType::String,
            nullable: true,
            default: Some("'x'::text".into()),
            comment: Some("é \"quoted\"".into()),
        };
        let text = serde_json::to_string(&c).unwrap();
        assert_eq!(
            text,
            r#"{"name":"id","ordinal":1,"nativeType":"character varying(40)","dataType":"string","nullable":true,"default":"'x'::text","comment":"é \"quoted\""}"#
        );
        let back: Column = serde_json::from_str(&text).unwrap();
        assert_eq!(back, c);
        assert_eq!(c.name, "id");
        assert_eq!("id", c.name);
        assert_eq!(format!("{} {:?}", c.name, c.name), "id \"id\"");

        let mut names = Interner::default();
        let (a, b) = (names.intern("id"), names.intern("id"));
        assert!(Arc::ptr_eq(&a.0, &b.0));
        assert_ne!(names.intern("name"), a);
    }

    #[test]
    fn catalogs_read_back_intern_their_names_and_keep_no_spare_room() {
        let column = |name: &str, ordinal| Column {
            name: name.into(),
            ordinal,
            native_type: "integer".into(),
            data_type: DataType::Int32,
            nullable: true,
            default: None,
            comment: None,
        };
        let mut t = Table::new("t", TableKind::Table);
        t.primary_key = vec!["id".into()];
        t.columns = (1..=5)
            .map(|i| column(if i % 2 == 0 { "id" } else { "x" }, i))
            .collect();
        let c = Catalog {
            schemas: vec![Schema {
                name: "s".into(),
                comment: None,
                tables: vec![t.clone(), t],
            }],
        };
        let text = serde_json::to_string(&c).unwrap();
        let Interned(back) = serde_json::from_str::<Interned<Catalog>>(&text).unwrap();
        assert_eq!(back, c);
        let cols = |i: usize| &back.schemas[0].tables[i].columns;
        assert!(Arc::ptr_eq(
            &cols(0)[0].native_type.0,
            &cols(1)[4].native_type.0
        ));
        assert!(Arc::ptr_eq(&cols(0)[1].name.0, &cols(1)[3].name.0));
        assert_eq!(cols(0).capacity(), 5);
        assert_eq!(back.schemas[0].tables.capacity(), 2);
        assert_eq!(back.schemas[0].tables[0].primary_key.capacity(), 1);
        // Outside `Interned`, each text is its own allocation, and the
        // interner is gone once the deserialization has ended (or failed).
        assert!(serde_json::from_str::<Interned<Catalog>>("{\"schemas\":[1]}").is_err());
        let plain: Catalog = serde_json::from_str(&text).unwrap();
        let cols = &plain.schemas[0].tables[0].columns;
        assert!(!Arc::ptr_eq(&cols[0].native_type.0, &cols[2].native_type.0));
    }

    #[test]
    fn table_serializes_in_the_cli_shape() {
        let mut t = Table::new("orders", TableKind::Table);
        t.primary_key = vec!["id".into()];
        t.columns.push(Column {
            name: "id".into(),
            ordinal: 1,
            native_type: "integer".into(),
            data_type: DataType::Int32,
            nullable: false,
            default: None,
            comment: None,
        });
        let v = serde_json::to_value(&t).unwrap();
        assert_eq!(v["type"], "TABLE");
        assert_eq!(v["estimatedRows"], serde_json::Value::Null);
        assert_eq!(v["primaryKey"][0], "id");
        assert_eq!(v["columns"][0]["dataType"], "int32");
        assert_eq!(v["columns"][0]["nativeType"], "integer");
    }
}
