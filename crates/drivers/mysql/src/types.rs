//! MySQL and MariaDB column types → the normalized type system, and the
//! normalization of column defaults, which the two servers report differently.

use matih_connector_core::DataType;

/// What `information_schema.COLUMNS` says about a column's type.
#[derive(Clone, Copy, Debug)]
pub(crate) struct NativeType<'a> {
    /// `DATA_TYPE`: the bare type name, e.g. `int`, `varchar`, `longtext`.
    pub data_type: &'a str,
    /// `COLUMN_TYPE`: the full type, e.g. `int(10) unsigned`, `tinyint(1)`,
    /// `enum('a','b')`, `decimal(10,2)`.
    pub column_type: &'a str,
    pub numeric_precision: Option<u64>,
    pub numeric_scale: Option<u64>,
}

/// Maps a column's native type. `json_checked` is true for a MariaDB `JSON`
/// column: MariaDB stores it as `longtext` with a `json_valid()` CHECK
/// constraint, which is how discovery recognizes it.
pub(crate) fn normalize(t: NativeType<'_>, json_checked: bool) -> DataType {
    let data_type = lowercase(t.data_type.trim());
    let column_type = lowercase(t.column_type.trim());
    let unsigned = column_type.split_whitespace().any(|w| w == "unsigned");
    match &*data_type {
        // BOOL and BOOLEAN are tinyint(1). MySQL 8 dropped display widths from
        // COLUMN_TYPE except for this one, so it still marks a boolean.
        "tinyint" if !unsigned && column_type.starts_with("tinyint(1)") => DataType::Boolean,
        "tinyint" if unsigned => DataType::Int16,
        "tinyint" => DataType::Int8,
        "smallint" if unsigned => DataType::Int32,
        "smallint" => DataType::Int16,
        // 24 bits, so even the unsigned range fits an int32.
        "mediumint" => DataType::Int32,
        "int" | "integer" if unsigned => DataType::Int64,
        "int" | "integer" => DataType::Int32,
        // Up to 18446744073709551615: no signed 64-bit type holds it.
        "bigint" if unsigned => DataType::decimal(20, 0),
        "bigint" => DataType::Int64,
        "float" => DataType::Float32,
        "double" | "double precision" | "real" => DataType::Float64,
        "decimal" | "numeric" | "dec" | "fixed" => decimal(t),
        "bit" => match type_args(&column_type)
            .first()
            .and_then(|a| a.parse::<u32>().ok())
        {
            None | Some(1) => DataType::Boolean,
            Some(_) => DataType::Binary,
        },
        "year" => DataType::Int16,
        "date" => DataType::Date,
        "time" => DataType::Time,
        "datetime" => DataType::Timestamp,
        // Stored as UTC and converted to the session time zone: an instant.
        "timestamp" => DataType::TimestampTz,
        "longtext" if json_checked => DataType::Json,
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" | "long"
        | "long varchar" | "nchar" | "nvarchar" => DataType::String,
        "enum" | "set" => DataType::String,
        // MariaDB's address types have a canonical text form.
        "inet4" | "inet6" => DataType::String,
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob"
        | "long varbinary" => DataType::Binary,
        "json" => DataType::Json,
        // MariaDB 10.7+.
        "uuid" => DataType::Uuid,
        // Spatial values travel as an SRID followed by WKB.
        "geometry" | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring"
        | "multipolygon" | "geometrycollection" | "geomcollection" => DataType::Binary,
        // MariaDB 11.7+ and MySQL 9: fixed-length float32 vectors.
        "vector" => DataType::array(DataType::Float32),
        _ => DataType::Unknown,
    }
}

/// `DATA_TYPE` read off `COLUMN_TYPE`: the word before the arguments or
/// attributes (`int(10) unsigned` → `int`, `enum('a')` → `enum`). Both
/// servers build `COLUMN_TYPE` from the type's name this way.
pub(crate) fn data_type_of(column_type: &str) -> &str {
    let t = column_type.trim_start();
    let end = t.find(['(', ' ']).unwrap_or(t.len());
    &t[..end]
}

/// `s` in ASCII lower case, copied only when it has an upper-case letter
/// (the servers spell their type names in lower case: this runs per column).
fn lowercase(s: &str) -> std::borrow::Cow<'_, str> {
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(s.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

fn decimal(t: NativeType<'_>) -> DataType {
    let args = type_args(t.column_type);
    let precision = t
        .numeric_precision
        .and_then(|p| u32::try_from(p).ok())
        .or_else(|| args.first().and_then(|a| a.parse().ok()));
    let scale = t
        .numeric_scale
        .and_then(|s| i32::try_from(s).ok())
        .or_else(|| args.get(1).and_then(|a| a.parse().ok()));
    match (precision, scale) {
        // DECIMAL alone means DECIMAL(10,0).
        (None, None) => DataType::decimal(10, 0),
        (p, s) => DataType::Decimal {
            precision: p,
            scale: s.or(Some(0)),
        },
    }
}

/// The comma-separated arguments of `name(a,b) …`, trimmed.
fn type_args(column_type: &str) -> Vec<&str> {
    let Some(open) = column_type.find('(') else {
        return Vec::new();
    };
    let Some(close) = column_type[open..].find(')') else {
        return Vec::new();
    };
    column_type[open + 1..open + close]
        .split(',')
        .map(str::trim)
        .collect()
}

/// How a server spells `COLUMN_DEFAULT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DefaultStyle {
    /// MariaDB 10.2.7 and later: an SQL expression. String and temporal
    /// literals are quoted (`'it''s'`), numbers and functions are bare
    /// (`42`, `current_timestamp()`), an explicit `DEFAULT NULL` is the text
    /// `NULL`, and no default at all is SQL NULL.
    Expression,
    /// MySQL (and MariaDB before 10.2.7): the bare value (`it's`), with
    /// `EXTRA` saying `DEFAULT_GENERATED` for expressions (MySQL 8.0.13+);
    /// both `DEFAULT NULL` and no default are SQL NULL.
    Value,
}

/// Normalizes a default to one form on both servers: an SQL expression as
/// MariaDB spells it (string and temporal literals single-quoted with `''`
/// and `\\` escapes; numbers, bit literals and functions bare), and `None`
/// both for no default and for `DEFAULT NULL`.
pub(crate) fn normalize_default(
    raw: Option<&str>,
    style: DefaultStyle,
    data_type: &str,
    extra: &str,
) -> Option<String> {
    let raw = raw?;
    match style {
        DefaultStyle::Expression => {
            if raw.eq_ignore_ascii_case("NULL") {
                None
            } else {
                Some(raw.to_owned())
            }
        }
        DefaultStyle::Value => {
            let data_type = data_type.to_ascii_lowercase();
            let expression = extra.to_ascii_uppercase().contains("DEFAULT_GENERATED")
                || (is_temporal(&data_type)
                    && raw.to_ascii_uppercase().starts_with("CURRENT_TIMESTAMP"));
            if expression || is_numeric(&data_type) {
                Some(raw.to_owned())
            } else {
                Some(quote_literal(raw))
            }
        }
    }
}

fn is_numeric(data_type: &str) -> bool {
    matches!(
        data_type,
        "tinyint"
            | "smallint"
            | "mediumint"
            | "int"
            | "integer"
            | "bigint"
            | "decimal"
            | "numeric"
            | "float"
            | "double"
            | "real"
            | "bit"
            | "year"
    )
}

fn is_temporal(data_type: &str) -> bool {
    matches!(data_type, "timestamp" | "datetime" | "date" | "time")
}

/// Quotes a value the way MariaDB quotes literal defaults.
fn quote_literal(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t<'a>(data_type: &'a str, column_type: &'a str) -> NativeType<'a> {
        NativeType {
            data_type,
            column_type,
            numeric_precision: None,
            numeric_scale: None,
        }
    }

    #[test]
    fn native_types_map_to_normalized_types() {
        let cases: &[(&str, &str, &str)] = &[
            // DATA_TYPE, COLUMN_TYPE (as MariaDB 10.11 or MySQL 8 print them), expected
            ("tinyint", "tinyint(1)", "boolean"),
            ("tinyint", "tinyint(4)", "int8"),
            ("tinyint", "tinyint", "int8"),
            ("tinyint", "tinyint(3) unsigned", "int16"),
            ("tinyint", "tinyint unsigned", "int16"),
            ("tinyint", "tinyint(1) unsigned", "int16"),
            ("smallint", "smallint(6)", "int16"),
            ("smallint", "smallint(5) unsigned", "int32"),
            ("mediumint", "mediumint(9)", "int32"),
            ("mediumint", "mediumint(8) unsigned", "int32"),
            ("int", "int(11)", "int32"),
            ("int", "int", "int32"),
            ("int", "int(10) unsigned", "int64"),
            ("int", "int(10) unsigned zerofill", "int64"),
            ("bigint", "bigint(20)", "int64"),
            ("bigint", "bigint(20) unsigned", "decimal(20,0)"),
            ("bigint", "bigint unsigned", "decimal(20,0)"),
            ("float", "float", "float32"),
            ("float", "float(7,3)", "float32"),
            ("double", "double", "float64"),
            ("double", "double(10,2)", "float64"),
            ("decimal", "decimal(10,2)", "decimal(10,2)"),
            ("decimal", "decimal(38,0)", "decimal(38,0)"),
            ("decimal", "decimal(65,30) unsigned", "decimal(65,30)"),
            ("bit", "bit(1)", "boolean"),
            ("bit", "bit(8)", "binary"),
            ("bit", "bit(64)", "binary"),
            ("char", "char(3)", "string"),
            ("varchar", "varchar(255)", "string"),
            ("tinytext", "tinytext", "string"),
            ("text", "text", "string"),
            ("mediumtext", "mediumtext", "string"),
            ("longtext", "longtext", "string"),
            ("binary", "binary(16)", "binary"),
            ("varbinary", "varbinary(64)", "binary"),
            ("tinyblob", "tinyblob", "binary"),
            ("blob", "blob", "binary"),
            ("mediumblob", "mediumblob", "binary"),
            ("longblob", "longblob", "binary"),
            ("enum", "enum('small','medium','large')", "string"),
            ("set", "set('a','b','c')", "string"),
            ("date", "date", "date"),
            ("time", "time", "time"),
            ("time", "time(3)", "time"),
            ("datetime", "datetime(6)", "timestamp"),
            ("datetime", "datetime", "timestamp"),
            ("timestamp", "timestamp", "timestamp_tz"),
            ("timestamp", "timestamp(6)", "timestamp_tz"),
            ("year", "year(4)", "int16"),
            ("year", "year", "int16"),
            ("json", "json", "json"),
            ("uuid", "uuid", "uuid"),
            ("inet6", "inet6", "string"),
            ("inet4", "inet4", "string"),
            ("geometry", "geometry", "binary"),
            ("point", "point", "binary"),
            ("polygon", "polygon", "binary"),
            ("geomcollection", "geomcollection", "binary"),
            ("vector", "vector(3)", "array<float32>"),
            ("INT", "INT(11)", "int32"),
            ("some_future_type", "some_future_type", "unknown"),
        ];
        for (data_type, column_type, want) in cases {
            let got = normalize(t(data_type, column_type), false);
            assert_eq!(got.to_string(), *want, "{data_type} / {column_type}");
            // Discovery reads DATA_TYPE off COLUMN_TYPE and leaves the numeric
            // precision and scale to it: the same type either way.
            assert_eq!(data_type_of(column_type), *data_type, "{column_type}");
            let derived = normalize(t(data_type_of(column_type), column_type), false);
            assert_eq!(derived, got, "{column_type}");
        }
    }

    #[test]
    fn mariadb_json_is_longtext_with_a_json_valid_check() {
        assert_eq!(normalize(t("longtext", "longtext"), true), DataType::Json);
        assert_eq!(
            normalize(t("longtext", "longtext"), false),
            DataType::String
        );
        // A json_valid() check on another type does not make it json.
        assert_eq!(
            normalize(t("varchar", "varchar(100)"), true),
            DataType::String
        );
    }

    #[test]
    fn decimal_uses_numeric_precision_and_scale() {
        let n = NativeType {
            data_type: "decimal",
            column_type: "decimal(12,4)",
            numeric_precision: Some(12),
            numeric_scale: Some(4),
        };
        assert_eq!(normalize(n, false), DataType::decimal(12, 4));
        assert_eq!(
            normalize(t("decimal", "decimal"), false),
            DataType::decimal(10, 0)
        );
    }

    #[test]
    fn mariadb_defaults_are_kept_as_expressions() {
        use DefaultStyle::Expression as E;
        let cases: &[(Option<&str>, &str, Option<&str>)] = &[
            (None, "int", None),
            (Some("NULL"), "varchar", None),
            (Some("'NULL'"), "varchar", Some("'NULL'")),
            (Some("'hello'"), "varchar", Some("'hello'")),
            (Some("''"), "varchar", Some("''")),
            (Some("'it''s'"), "varchar", Some("'it''s'")),
            (Some("42"), "int", Some("42")),
            (Some("-1.50"), "decimal", Some("-1.50")),
            (
                Some("current_timestamp()"),
                "timestamp",
                Some("current_timestamp()"),
            ),
            (Some("(1 + 1)"), "int", Some("(1 + 1)")),
            (Some("b'1'"), "bit", Some("b'1'")),
        ];
        for (raw, data_type, want) in cases {
            assert_eq!(
                normalize_default(*raw, E, data_type, "").as_deref(),
                *want,
                "{raw:?}"
            );
        }
    }

    #[test]
    fn mysql_defaults_are_quoted_like_mariadb() {
        use DefaultStyle::Value as V;
        let cases: &[(Option<&str>, &str, &str, Option<&str>)] = &[
            (None, "varchar", "", None),
            (Some("NULL"), "varchar", "", Some("'NULL'")),
            (Some("hello"), "varchar", "", Some("'hello'")),
            (Some(""), "varchar", "", Some("''")),
            (Some("it's"), "varchar", "", Some("'it''s'")),
            (Some("a\\b"), "varchar", "", Some("'a\\\\b'")),
            (Some("42"), "int", "", Some("42")),
            (Some("-1.50"), "decimal", "", Some("-1.50")),
            (
                Some("2024-01-01 00:00:00"),
                "datetime",
                "",
                Some("'2024-01-01 00:00:00'"),
            ),
            (
                Some("CURRENT_TIMESTAMP"),
                "timestamp",
                "DEFAULT_GENERATED",
                Some("CURRENT_TIMESTAMP"),
            ),
            // MySQL 5.7 has no DEFAULT_GENERATED marker.
            (
                Some("CURRENT_TIMESTAMP(6)"),
                "datetime",
                "",
                Some("CURRENT_TIMESTAMP(6)"),
            ),
            (Some("(1 + 1)"), "int", "DEFAULT_GENERATED", Some("(1 + 1)")),
            (
                Some("uuid()"),
                "varchar",
                "DEFAULT_GENERATED",
                Some("uuid()"),
            ),
            (Some("b'1'"), "bit", "", Some("b'1'")),
            (Some("medium"), "enum", "", Some("'medium'")),
        ];
        for (raw, data_type, extra, want) in cases {
            assert_eq!(
                normalize_default(*raw, V, data_type, extra).as_deref(),
                *want,
                "{raw:?}"
            );
        }
    }
}
