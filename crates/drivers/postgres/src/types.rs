//! PostgreSQL types → the normalized [`DataType`]s.
//!
//! Built-in types (oid below 16384) are mapped from `format_type`'s text, which
//! carries the type modifier (`numeric(10,2)`). Types created in the database
//! (enums, domains, ranges, extension types, composites) are mapped through the
//! facts [`UserType`] holds about them.

use std::collections::HashMap;

use matih_connector_core::DataType;

/// Objects with an oid below this were created by initdb (FirstNormalObjectId).
pub(crate) const FIRST_NORMAL_OID: u32 = 16384;

/// What discovery learned about a type created in the database.
#[derive(Clone, Debug)]
pub(crate) struct UserType {
    /// `pg_type.typtype`: b base, d domain, e enum, r range, m multirange, p pseudo.
    pub typtype: u8,
    pub name: String,
    /// Element type of an array type, else 0.
    pub elem: u32,
    /// Base type of a domain, else 0.
    pub base: u32,
    /// `format_type(base, typmod)` of a domain's base type.
    pub base_native: Option<String>,
}

/// Maps column types, remembering each (type, spelling) it has seen so a large
/// catalog maps each distinct type once.
#[derive(Debug, Default)]
pub(crate) struct TypeMapper {
    user: HashMap<u32, UserType>,
    seen: HashMap<u32, HashMap<String, DataType>>,
}

impl TypeMapper {
    pub fn new(user: HashMap<u32, UserType>) -> Self {
        TypeMapper {
            user,
            seen: HashMap::new(),
        }
    }

    pub fn map(&mut self, oid: u32, native: &str) -> DataType {
        if let Some(t) = self.seen.get(&oid).and_then(|m| m.get(native)) {
            return t.clone();
        }
        let t = self.resolve(oid, native, 0);
        self.seen
            .entry(oid)
            .or_default()
            .insert(native.to_owned(), t.clone());
        t
    }

    fn resolve(&self, oid: u32, native: &str, depth: u32) -> DataType {
        // Domains over domains over arrays…: bounded in case of a catalog cycle.
        if depth > 16 {
            return DataType::Unknown;
        }
        if oid < FIRST_NORMAL_OID {
            return map_builtin(native);
        }
        let Some(t) = self.user.get(&oid) else {
            // Not in the user-type listing: a composite (row) type or an array of one.
            return if native.ends_with("[]") {
                DataType::array(DataType::Struct)
            } else {
                DataType::Struct
            };
        };
        if t.elem != 0 {
            let inner = native.strip_suffix("[]").unwrap_or(native);
            return DataType::array(self.resolve(t.elem, inner, depth + 1));
        }
        match t.typtype {
            b'e' => DataType::String,
            b'd' => self.resolve(t.base, t.base_native.as_deref().unwrap_or(""), depth + 1),
            b'r' | b'm' => DataType::String,
            b'b' => map_extension(&t.name),
            _ => DataType::Unknown,
        }
    }
}

/// Types that extensions commonly add, by name.
fn map_extension(name: &str) -> DataType {
    match name {
        "citext" | "ltree" | "lquery" | "ltxtquery" | "isbn" | "isbn13" | "ean13" | "issn"
        | "upc" => DataType::String,
        "hstore" => DataType::Map,
        "vector" | "halfvec" => DataType::array(DataType::Float32),
        // PostGIS values are (E)WKB on the wire: nothing in the normalized system fits.
        _ => DataType::Unknown,
    }
}

/// Maps a built-in type from its `format_type` spelling.
pub(crate) fn map_builtin(native: &str) -> DataType {
    if let Some(inner) = native.strip_suffix("[]") {
        return DataType::array(map_builtin(inner));
    }
    let (base, args) = split_modifier(native);
    match base.as_str() {
        "boolean" => DataType::Boolean,
        "smallint" => DataType::Int16,
        "integer" => DataType::Int32,
        "bigint" => DataType::Int64,
        "real" => DataType::Float32,
        "double precision" => DataType::Float64,
        "numeric" => {
            let mut parts = args.as_deref().unwrap_or("").split(',');
            let precision = parts.next().and_then(|p| p.trim().parse().ok());
            let scale = parts.next().and_then(|s| s.trim().parse().ok());
            DataType::Decimal {
                precision,
                scale: scale.or(precision.map(|_| 0)),
            }
        }
        // Fixed-point cents whose text form follows lc_monetary.
        "money" => DataType::Decimal {
            precision: None,
            scale: None,
        },
        "text" | "character varying" | "character" | "bpchar" | "\"char\"" | "name" => {
            DataType::String
        }
        "bytea" => DataType::Binary,
        "date" => DataType::Date,
        // The normalized system has no time-with-offset; the native type keeps it.
        "time without time zone" | "time with time zone" => DataType::Time,
        "timestamp without time zone" => DataType::Timestamp,
        "timestamp with time zone" => DataType::TimestampTz,
        b if b.starts_with("interval") => DataType::Interval,
        "uuid" => DataType::Uuid,
        "json" | "jsonb" => DataType::Json,
        "inet" | "cidr" | "macaddr" | "macaddr8" | "bit" | "bit varying" | "xml" | "tsvector"
        | "tsquery" | "pg_lsn" | "txid_snapshot" | "pg_snapshot" | "jsonpath" => DataType::String,
        // Geometric types have a fixed text form, e.g. (1,2) for a point.
        "point" | "line" | "lseg" | "box" | "path" | "polygon" | "circle" => DataType::String,
        "int4range" | "int8range" | "numrange" | "tsrange" | "tstzrange" | "daterange"
        | "int4multirange" | "int8multirange" | "nummultirange" | "tsmultirange"
        | "tstzmultirange" | "datemultirange" => DataType::String,
        "oid" | "xid" | "cid" => DataType::Int64,
        "xid8" => DataType::decimal(20, 0),
        "regclass" | "regtype" | "regproc" | "regprocedure" | "regoper" | "regoperator"
        | "regconfig" | "regdictionary" | "regnamespace" | "regrole" | "regcollation" => {
            DataType::String
        }
        _ => DataType::Unknown,
    }
}

/// Splits `timestamp(3) with time zone` into `timestamp with time zone` and `3`.
fn split_modifier(native: &str) -> (String, Option<String>) {
    match (native.find('('), native.find(')')) {
        (Some(open), Some(close)) if close > open => {
            let base = format!("{}{}", &native[..open], &native[close + 1..]);
            (base, Some(native[open + 1..close].to_owned()))
        }
        _ => (native.to_owned(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_types() {
        use DataType as T;
        let cases: &[(&str, DataType)] = &[
            ("boolean", T::Boolean),
            ("smallint", T::Int16),
            ("integer", T::Int32),
            ("bigint", T::Int64),
            ("real", T::Float32),
            ("double precision", T::Float64),
            (
                "numeric",
                T::Decimal {
                    precision: None,
                    scale: None,
                },
            ),
            ("numeric(10,2)", T::decimal(10, 2)),
            ("numeric(38,0)", T::decimal(38, 0)),
            ("numeric(5)", T::decimal(5, 0)),
            (
                "money",
                T::Decimal {
                    precision: None,
                    scale: None,
                },
            ),
            ("text", T::String),
            ("character varying(40)", T::String),
            ("character varying", T::String),
            ("character(3)", T::String),
            ("\"char\"", T::String),
            ("name", T::String),
            ("bytea", T::Binary),
            ("date", T::Date),
            ("time without time zone", T::Time),
            ("time(3) without time zone", T::Time),
            ("time with time zone", T::Time),
            ("timestamp without time zone", T::Timestamp),
            ("timestamp(3) without time zone", T::Timestamp),
            ("timestamp with time zone", T::TimestampTz),
            ("timestamp(6) with time zone", T::TimestampTz),
            ("interval", T::Interval),
            ("interval year to month", T::Interval),
            ("interval(3)", T::Interval),
            ("uuid", T::Uuid),
            ("json", T::Json),
            ("jsonb", T::Json),
            ("integer[]", T::array(T::Int32)),
            ("text[]", T::array(T::String)),
            ("numeric(10,2)[]", T::array(T::decimal(10, 2))),
            ("inet", T::String),
            ("cidr", T::String),
            ("macaddr", T::String),
            ("macaddr8", T::String),
            ("bit(8)", T::String),
            ("bit varying(16)", T::String),
            ("xml", T::String),
            ("point", T::String),
            ("polygon", T::String),
            ("tsvector", T::String),
            ("tsquery", T::String),
            ("oid", T::Int64),
            ("regclass", T::String),
            ("int4range", T::String),
            ("tstzrange", T::String),
            ("datemultirange", T::String),
            ("pg_lsn", T::String),
            ("xid8", T::decimal(20, 0)),
            ("anyelement", T::Unknown),
        ];
        for (native, want) in cases {
            assert_eq!(&map_builtin(native), want, "{native}");
        }
    }

    #[test]
    fn user_types_enums_domains_arrays_composites() {
        let mk =
            |typtype: u8, name: &str, elem: u32, base: u32, base_native: Option<&str>| UserType {
                typtype,
                name: name.into(),
                elem,
                base,
                base_native: base_native.map(str::to_owned),
            };
        let user = HashMap::from([
            (20000, mk(b'e', "order_status", 0, 0, None)),
            (20001, mk(b'b', "_order_status", 20000, 0, None)),
            (
                20002,
                mk(b'd', "positive_amount", 0, 1700, Some("numeric(12,2)")),
            ),
            (20003, mk(b'd', "email", 0, 25, Some("text"))),
            (
                20004,
                mk(b'd', "strict_email", 0, 20003, Some("sales.email")),
            ),
            (20005, mk(b'b', "citext", 0, 0, None)),
            (20006, mk(b'b', "hstore", 0, 0, None)),
            (20007, mk(b'b', "geometry", 0, 0, None)),
            (20008, mk(b'r', "floatrange", 0, 0, None)),
            (20009, mk(b'd', "int_list", 0, 1007, Some("integer[]"))),
            (20010, mk(b'b', "_citext", 20005, 0, None)),
        ]);
        let mut m = TypeMapper::new(user);
        let cases = [
            (20000, "sales.order_status", DataType::String),
            (
                20001,
                "sales.order_status[]",
                DataType::array(DataType::String),
            ),
            (20002, "sales.positive_amount", DataType::decimal(12, 2)),
            (20004, "strict_email", DataType::String),
            (20005, "citext", DataType::String),
            (20010, "citext[]", DataType::array(DataType::String)),
            (20006, "hstore", DataType::Map),
            (20007, "geometry", DataType::Unknown),
            (20008, "floatrange", DataType::String),
            (20009, "int_list", DataType::array(DataType::Int32)),
            (30000, "sales.address", DataType::Struct),
            (30001, "sales.address[]", DataType::array(DataType::Struct)),
            (23, "integer", DataType::Int32),
        ];
        for (oid, native, want) in cases {
            assert_eq!(m.map(oid, native), want, "{native}");
            // Cached answers are the same answers.
            assert_eq!(m.map(oid, native), want, "{native} (cached)");
        }
    }
}
