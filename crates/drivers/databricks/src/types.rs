//! Unity Catalog column types (`type_name`, with `type_text` for nested
//! types) → normalized types.

use matih_connector_core::DataType;

/// Maps a type from its Unity Catalog `type_text` (`decimal(12,2)`,
/// `array<string>`, `map<string,int>`); `type_name` (the enum: `LONG`,
/// `STRING`…) is the fallback when the text is missing.
pub(crate) fn normalize(
    type_text: &str,
    type_name: &str,
    precision: Option<u32>,
    scale: Option<i32>,
) -> DataType {
    let text = type_text.trim().to_ascii_lowercase();
    if !text.is_empty() {
        return from_text(&text, precision, scale);
    }
    from_text(&type_name.trim().to_ascii_lowercase(), precision, scale)
}

fn from_text(t: &str, precision: Option<u32>, scale: Option<i32>) -> DataType {
    let base = t.split(['(', '<', ' ']).next().unwrap_or(t).trim();
    match base {
        "boolean" => DataType::Boolean,
        "byte" | "tinyint" => DataType::Int8,
        "short" | "smallint" => DataType::Int16,
        "int" | "integer" => DataType::Int32,
        "long" | "bigint" => DataType::Int64,
        "float" | "real" => DataType::Float32,
        "double" => DataType::Float64,
        "decimal" | "numeric" | "dec" => {
            let args = t
                .strip_prefix(base)
                .unwrap_or("")
                .trim()
                .trim_start_matches('(')
                .trim_end_matches(')');
            let mut it = args.split(',').map(|s| s.trim().parse::<i64>().ok());
            let p = it.next().flatten().map(|p| p as u32).or(precision);
            let s = it.next().flatten().map(|s| s as i32).or(scale);
            match (p, s) {
                (Some(p), s) => DataType::Decimal {
                    precision: Some(p),
                    scale: Some(s.unwrap_or(0)),
                },
                // Spark's bare DECIMAL is DECIMAL(10,0).
                (None, _) => DataType::decimal(10, 0),
            }
        }
        "string" | "varchar" | "char" => DataType::String,
        "binary" => DataType::Binary,
        "date" => DataType::Date,
        "timestamp" => DataType::TimestampTz,
        "timestamp_ntz" => DataType::Timestamp,
        "interval" => DataType::Interval,
        "variant" => DataType::Json,
        "array" => {
            let inner = t
                .strip_prefix("array<")
                .and_then(|r| r.strip_suffix('>'))
                .unwrap_or("");
            if inner.is_empty() {
                DataType::array(DataType::Unknown)
            } else {
                DataType::array(from_text(inner, None, None))
            }
        }
        "struct" => DataType::Struct,
        "map" => DataType::Map,
        _ => DataType::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unity_catalog_types_map() {
        let cases: &[(&str, &str, DataType)] = &[
            ("boolean", "BOOLEAN", DataType::Boolean),
            ("tinyint", "BYTE", DataType::Int8),
            ("smallint", "SHORT", DataType::Int16),
            ("int", "INT", DataType::Int32),
            ("bigint", "LONG", DataType::Int64),
            ("float", "FLOAT", DataType::Float32),
            ("double", "DOUBLE", DataType::Float64),
            ("decimal(12,2)", "DECIMAL", DataType::decimal(12, 2)),
            ("decimal(38,0)", "DECIMAL", DataType::decimal(38, 0)),
            ("string", "STRING", DataType::String),
            ("varchar(100)", "STRING", DataType::String),
            ("char(2)", "CHAR", DataType::String),
            ("binary", "BINARY", DataType::Binary),
            ("date", "DATE", DataType::Date),
            // Databricks TIMESTAMP is an instant (session time zone); _NTZ is wall-clock.
            ("timestamp", "TIMESTAMP", DataType::TimestampTz),
            ("timestamp_ntz", "TIMESTAMP_NTZ", DataType::Timestamp),
            ("interval day to second", "INTERVAL", DataType::Interval),
            ("variant", "VARIANT", DataType::Json),
            ("array<string>", "ARRAY", DataType::array(DataType::String)),
            (
                "array<array<int>>",
                "ARRAY",
                DataType::array(DataType::array(DataType::Int32)),
            ),
            ("map<string,int>", "MAP", DataType::Map),
            ("struct<a:int,b:string>", "STRUCT", DataType::Struct),
            ("geography(4326)", "GEOGRAPHY", DataType::Unknown),
            ("", "LONG", DataType::Int64),
        ];
        for (text, name, want) in cases {
            assert_eq!(normalize(text, name, None, None), *want, "{text} / {name}");
        }
        assert_eq!(
            normalize("", "DECIMAL", Some(9), Some(3)),
            DataType::decimal(9, 3)
        );
    }
}
