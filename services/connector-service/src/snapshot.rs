//! A snapshot's catalog as the store keeps it. Its JSON text is written
//! straight into a zlib compressor, so the whole text (45 MB at 400k columns)
//! never exists, and it is read back through a decompressing reader, so no
//! reader holds it either: a page of `/schemas` or the previous catalog of a
//! re-discovery is parsed as the bytes come out. Snapshots written before
//! migration 8 hold the JSON text and stay readable as they are.

use std::io::{BufReader, BufWriter, Read};

use flate2::Compression;
use serde::de::value::SeqDeserializer;
use serde::de::{
    DeserializeOwned, DeserializeSeed, Deserializer, Error as _, IgnoredAny, MapAccess, SeqAccess,
    Visitor,
};
use serde::{Deserialize, Serialize};

/// Buffer between `serde_json`'s many small writes (or reads) and the
/// (de)compressor, which costs a call per write.
const BUFFER: usize = 64 * 1024;

/// zlib's level 1: the catalog's JSON still shrinks about tenfold (names and
/// types repeat), at several times the speed of the default level.
const LEVEL: u32 = 1;

/// A stored catalog.
#[derive(Clone, PartialEq, Eq)]
pub enum StoredCatalog {
    /// The JSON text (`catalog_encoding` NULL: written before migration 8).
    Text(String),
    /// The JSON text in the zlib format, RFC 1950 (`catalog_encoding` `zlib`).
    Zlib(Vec<u8>),
}

/// An empty text (what is left where a catalog was taken).
impl Default for StoredCatalog {
    fn default() -> Self {
        StoredCatalog::Text(String::new())
    }
}

impl std::fmt::Debug for StoredCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoredCatalog::Text(t) => write!(f, "Text({} bytes)", t.len()),
            StoredCatalog::Zlib(b) => write!(f, "Zlib({} bytes)", b.len()),
        }
    }
}

impl StoredCatalog {
    /// The `catalog_encoding` of [`StoredCatalog::Zlib`].
    pub const ZLIB: &'static str = "zlib";

    /// `value` as JSON, serialized straight into the compressor.
    pub fn compress<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<StoredCatalog> {
        let z = flate2::write::ZlibEncoder::new(Vec::new(), Compression::new(LEVEL));
        let mut w = BufWriter::with_capacity(BUFFER, z);
        serde_json::to_writer(&mut w, value)?;
        let z = w
            .into_inner()
            .map_err(|e| serde_json::Error::io(e.into_error()))?;
        let mut bytes = z.finish().map_err(serde_json::Error::io)?;
        bytes.shrink_to_fit();
        Ok(StoredCatalog::Zlib(bytes))
    }

    /// From the stored columns: the encoding marker, the text and the bytes.
    pub fn from_columns(
        encoding: Option<&str>,
        text: String,
        bytes: Option<Vec<u8>>,
    ) -> Result<StoredCatalog, String> {
        match (encoding, bytes) {
            (None, _) => Ok(StoredCatalog::Text(text)),
            (Some(StoredCatalog::ZLIB), Some(b)) => Ok(StoredCatalog::Zlib(b)),
            (Some(StoredCatalog::ZLIB), None) => Err("a zlib catalog without its bytes".into()),
            (Some(other), _) => Err(format!(
                "catalog encoding {other:?} is unknown (written by a newer version?)"
            )),
        }
    }

    /// The stored encoding marker (`None`: JSON text).
    pub fn encoding(&self) -> Option<&'static str> {
        match self {
            StoredCatalog::Text(_) => None,
            StoredCatalog::Zlib(_) => Some(StoredCatalog::ZLIB),
        }
    }

    /// The stored text (empty when the catalog is compressed).
    pub fn text(&self) -> &str {
        match self {
            StoredCatalog::Text(t) => t,
            StoredCatalog::Zlib(_) => "",
        }
    }

    /// The stored bytes (none when the catalog is text).
    pub fn bytes(&self) -> Option<&[u8]> {
        match self {
            StoredCatalog::Text(_) => None,
            StoredCatalog::Zlib(b) => Some(b),
        }
    }

    /// Parses the whole catalog (or any shape of it) as the bytes come out
    /// of the decompressor.
    pub fn parse<T: DeserializeOwned>(&self) -> serde_json::Result<T> {
        self.parse_seed(std::marker::PhantomData::<T>)
    }

    /// Parses through `seed`, which decides what of the catalog is built.
    pub fn parse_seed<S, V>(&self, seed: S) -> serde_json::Result<V>
    where
        S: for<'de> DeserializeSeed<'de, Value = V>,
    {
        match self {
            StoredCatalog::Text(t) => {
                let mut de = serde_json::Deserializer::from_str(t);
                let v = seed.deserialize(&mut de)?;
                de.end()?;
                Ok(v)
            }
            StoredCatalog::Zlib(b) => {
                let mut de = serde_json::Deserializer::from_reader(self::reader(b));
                let v = seed.deserialize(&mut de)?;
                de.end()?;
                Ok(v)
            }
        }
    }
}

/// The JSON text out of zlib bytes, buffered for `serde_json`'s byte reads.
fn reader(bytes: &[u8]) -> impl Read + '_ {
    BufReader::with_capacity(BUFFER, flate2::bufread::ZlibDecoder::new(bytes))
}

/// What a walk over a stored catalog does with each schema's tables: they
/// are read in stored order, one at a time, and nothing of the catalog is
/// built but what the walker keeps.
pub trait SchemaWalker {
    /// Reads the tables of the schema `name` from `tables` (each element is
    /// one table), to their end.
    fn schema<'de, A: SeqAccess<'de>>(&mut self, name: &str, tables: A) -> Result<(), A::Error>;
}

/// The seed that walks a stored catalog (`{"schemas": [...]}`) with `W`.
/// A schema's name must come before its tables, as the catalog's own
/// serialization writes them.
pub struct Walk<'a, W>(pub &'a mut W);

impl<W> std::fmt::Debug for Walk<'_, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Walk")
    }
}

impl<'de, W: SchemaWalker> DeserializeSeed<'de> for Walk<'_, W> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, W: SchemaWalker> Visitor<'de> for Walk<'_, W> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a catalog")
    }
    fn visit_map<M: MapAccess<'de>>(self, mut m: M) -> Result<(), M::Error> {
        #[derive(Deserialize)]
        #[serde(field_identifier, rename_all = "camelCase")]
        enum Field {
            Schemas,
            #[serde(other)]
            Other,
        }
        while let Some(k) = m.next_key::<Field>()? {
            match k {
                Field::Schemas => m.next_value_seed(Schemas(&mut *self.0))?,
                Field::Other => {
                    m.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

struct Schemas<'a, W>(&'a mut W);

impl<'de, W: SchemaWalker> DeserializeSeed<'de> for Schemas<'_, W> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, W: SchemaWalker> Visitor<'de> for Schemas<'_, W> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a list of schemas")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(OneSchema(&mut *self.0))?.is_some() {}
        Ok(())
    }
}

struct OneSchema<'a, W>(&'a mut W);

impl<'de, W: SchemaWalker> DeserializeSeed<'de> for OneSchema<'_, W> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, W: SchemaWalker> Visitor<'de> for OneSchema<'_, W> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a schema")
    }
    fn visit_map<M: MapAccess<'de>>(self, mut m: M) -> Result<(), M::Error> {
        #[derive(Deserialize)]
        #[serde(field_identifier, rename_all = "camelCase")]
        enum Field {
            Name,
            Tables,
            #[serde(other)]
            Other,
        }
        let mut name: Option<String> = None;
        let mut walked = false;
        while let Some(k) = m.next_key::<Field>()? {
            match k {
                Field::Name => name = Some(m.next_value()?),
                Field::Tables => {
                    let Some(name) = &name else {
                        return Err(M::Error::custom("a schema's tables come before its name"));
                    };
                    m.next_value_seed(SchemaTables(&mut *self.0, name))?;
                    walked = true;
                }
                Field::Other => {
                    m.next_value::<IgnoredAny>()?;
                }
            }
        }
        let name = name.ok_or_else(|| M::Error::missing_field("name"))?;
        if !walked {
            // A schema stored without tables: walked as one with none.
            let none = SeqDeserializer::<_, M::Error>::new(std::iter::empty::<()>());
            self.0.schema(&name, none)?;
        }
        Ok(())
    }
}

struct SchemaTables<'a, W>(&'a mut W, &'a str);

impl<'de, W: SchemaWalker> DeserializeSeed<'de> for SchemaTables<'_, W> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, W: SchemaWalker> Visitor<'de> for SchemaTables<'_, W> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a list of tables")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        self.0.schema(self.1, seq)
    }
}

#[cfg(test)]
mod tests {
    use matih_connector_core::{Catalog, Column, DataType, Schema, Table, TableKind};

    use super::*;

    fn catalog() -> Catalog {
        let mut t = Table::new("T \"été\" 1", TableKind::View);
        t.estimated_rows = Some(7);
        t.comment = Some("a \u{2028} comment".into());
        t.properties
            .insert("partitionOf".into(), serde_json::json!({"a": [1, null]}));
        t.columns = vec![Column {
            name: "id".into(),
            ordinal: 1,
            native_type: "numeric(10,2)".into(),
            data_type: DataType::decimal(10, 2),
            nullable: false,
            default: Some("0".into()),
            comment: None,
        }];
        Catalog {
            schemas: vec![
                Schema {
                    name: "s".into(),
                    comment: Some("c".into()),
                    tables: vec![t, Table::new("u", TableKind::Table)],
                },
                Schema {
                    name: "empty".into(),
                    comment: None,
                    tables: vec![],
                },
            ],
        }
    }

    #[test]
    fn compressed_and_text_catalogs_parse_to_the_same_catalog() {
        let c = catalog();
        let z = StoredCatalog::compress(&c).unwrap();
        assert_eq!(z.encoding(), Some("zlib"));
        assert_eq!(z.text(), "");
        let text = serde_json::to_string(&c).unwrap();
        // The compressed bytes are the text in the zlib format, so any zlib
        // reader gets the JSON back.
        let mut out = String::new();
        flate2::read::ZlibDecoder::new(z.bytes().unwrap())
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, text);
        let t = StoredCatalog::from_columns(None, text, None).unwrap();
        assert_eq!(t.encoding(), None);
        assert_eq!(z.parse::<Catalog>().unwrap(), c);
        assert_eq!(t.parse::<Catalog>().unwrap(), c);
        // What a store reads back: the marker picks the column.
        let back =
            StoredCatalog::from_columns(Some("zlib"), String::new(), z.bytes().map(<[u8]>::to_vec))
                .unwrap();
        assert_eq!(back, z);
    }

    #[test]
    fn unknown_or_incomplete_encodings_are_refused() {
        let e =
            StoredCatalog::from_columns(Some("zstd"), String::new(), Some(vec![1])).unwrap_err();
        assert!(e.contains("\"zstd\" is unknown"), "{e}");
        assert!(StoredCatalog::from_columns(Some("zlib"), String::new(), None).is_err());
        let broken = StoredCatalog::Zlib(b"not zlib".to_vec());
        assert!(broken.parse::<Catalog>().is_err());
        let cut = match StoredCatalog::compress(&catalog()).unwrap() {
            StoredCatalog::Zlib(b) => StoredCatalog::Zlib(b[..b.len() / 2].to_vec()),
            StoredCatalog::Text(_) => unreachable!(),
        };
        assert!(cut.parse::<Catalog>().is_err(), "a truncated catalog");
    }

    /// The bench's largest catalog: 21,001 relations and 404,001 columns
    /// (20,000 tables of 20 columns, 1,000 views of 4, one marker table),
    /// names and types interned as a driver reads them.
    fn bench_sized() -> Catalog {
        let mut names = matih_connector_core::Interner::default();
        let types = [
            ("integer", DataType::Int32),
            ("bigint", DataType::Int64),
            ("text", DataType::String),
            ("character varying(40)", DataType::String),
            ("numeric(12,2)", DataType::decimal(12, 2)),
            ("timestamp with time zone", DataType::TimestampTz),
            ("boolean", DataType::Boolean),
            ("jsonb", DataType::Json),
        ];
        let table = |names: &mut matih_connector_core::Interner, name: String, kind, n: u32| {
            let mut t = Table::new(name, kind);
            t.estimated_rows = Some(u64::from(n) * 1000);
            t.size_bytes = Some(8192);
            t.primary_key = vec!["c1".into()];
            t.columns = (1..=n)
                .map(|i| {
                    let (native, data_type) = &types[i as usize % types.len()];
                    Column {
                        name: names.intern(&format!("c{i}")),
                        ordinal: i,
                        native_type: names.intern(native),
                        data_type: data_type.clone(),
                        nullable: i != 1,
                        default: (i == 1).then(|| format!("nextval('{}_seq'::regclass)", t.name)),
                        comment: None,
                    }
                })
                .collect();
            t
        };
        let mut c = Catalog::default();
        for s in 0..4 {
            let mut schema = Schema {
                name: format!("bench_{s}"),
                comment: None,
                tables: Vec::new(),
            };
            for i in (s..20_000).step_by(4) {
                let t = table(&mut names, format!("t_{i:05}"), TableKind::Table, 20);
                schema.tables.push(t);
            }
            for i in (s..1_000).step_by(4) {
                let v = table(&mut names, format!("v_{i:04}"), TableKind::View, 4);
                schema.tables.push(v);
            }
            c.schemas.push(schema);
        }
        c.schemas.push(Schema {
            name: "public".into(),
            comment: None,
            tables: vec![table(
                &mut names,
                "matih_bench_marker".into(),
                TableKind::Table,
                1,
            )],
        });
        c.sort();
        c
    }

    #[test]
    fn a_bench_sized_catalog_round_trips_compressed_a_tenth_of_its_text() {
        let c = bench_sized();
        assert_eq!((c.table_count(), c.column_count()), (21_001, 404_001));
        let z = StoredCatalog::compress(&c).unwrap();
        let text_len = serde_json::to_vec(&c).unwrap().len();
        let z_len = z.bytes().unwrap().len();
        assert!(z_len * 10 < text_len, "{z_len} compressed of {text_len}");
        let matih_connector_core::Interned(back) = z
            .parse::<matih_connector_core::Interned<Catalog>>()
            .unwrap();
        assert_eq!(back, c);
    }

    /// Records what a walk sees.
    #[derive(Default)]
    struct Names(Vec<(String, Vec<String>)>);

    impl SchemaWalker for Names {
        fn schema<'de, A: SeqAccess<'de>>(
            &mut self,
            name: &str,
            mut tables: A,
        ) -> Result<(), A::Error> {
            #[derive(Deserialize)]
            struct Named {
                name: String,
            }
            let mut names = Vec::new();
            while let Some(t) = tables.next_element::<Named>()? {
                names.push(t.name);
            }
            self.0.push((name.to_owned(), names));
            Ok(())
        }
    }

    #[test]
    fn a_walk_sees_every_schema_in_order_with_its_tables() {
        for stored in [
            StoredCatalog::compress(&catalog()).unwrap(),
            StoredCatalog::Text(serde_json::to_string(&catalog()).unwrap()),
            // Written by hand: no `tables`, unknown fields.
            StoredCatalog::Text(
                r#"{"x":1,"schemas":[{"name":"s","comment":null,"tables":[{"name":"T \"été\" 1"},{"name":"u"}]},{"name":"empty","y":[]}]}"#
                    .into(),
            ),
        ] {
            let mut seen = Names::default();
            stored.parse_seed(Walk(&mut seen)).unwrap();
            assert_eq!(
                seen.0,
                [
                    ("s".to_owned(), vec!["T \"été\" 1".to_owned(), "u".to_owned()]),
                    ("empty".to_owned(), vec![])
                ]
            );
        }
        let backwards = StoredCatalog::Text(r#"{"schemas":[{"tables":[],"name":"s"}]}"#.into());
        let e = backwards
            .parse_seed(Walk(&mut Names::default()))
            .unwrap_err();
        assert!(e.to_string().contains("tables come before its name"), "{e}");
    }
}
