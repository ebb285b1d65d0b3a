//! BigQuery types → the normalized type system.
//!
//! Two spellings reach us: GoogleSQL's as INFORMATION_SCHEMA.COLUMNS writes
//! them (`INT64`, `NUMERIC(10, 2)`, `STRING(40)`, `ARRAY<STRUCT<a INT64>>`,
//! `RANGE<DATE>`) and the REST API's legacy names in table schemas
//! (`INTEGER`, `FLOAT`, `BOOLEAN`, `RECORD`). Both map the same way; REPEATED
//! columns reach us as `ARRAY<…>`.

use matih_connector_core::DataType;

/// Maps one type as the source spells it.
pub(crate) fn normalize(native: &str) -> DataType {
    let t = native.trim();
    let upper = t.to_ascii_uppercase();
    if let Some(inner) = strip_wrapper(&upper, "ARRAY") {
        // The inner type keeps its original spelling (field names).
        let start = t.find('<').map(|i| i + 1).unwrap_or(0);
        let inner_native = &t[start..start + inner.len()];
        return DataType::array(normalize(inner_native));
    }
    if strip_wrapper(&upper, "STRUCT").is_some() {
        return DataType::Struct;
    }
    // RANGE<DATE|DATETIME|TIMESTAMP> has no normalized counterpart.
    if strip_wrapper(&upper, "RANGE").is_some() {
        return DataType::Unknown;
    }
    let (base, params) = match upper.find('(') {
        Some(i) => (upper[..i].trim(), parse_params(&upper[i..])),
        None => (upper.as_str(), Vec::new()),
    };
    match base {
        "INT64" | "INTEGER" | "INT" | "SMALLINT" | "BIGINT" | "TINYINT" | "BYTEINT" => {
            DataType::Int64
        }
        "FLOAT64" | "FLOAT" => DataType::Float64,
        "NUMERIC" | "DECIMAL" => match params.as_slice() {
            [p, s] => DataType::decimal(*p, *s as i32),
            [p] => DataType::decimal(*p, 0),
            _ => DataType::decimal(38, 9),
        },
        "BIGNUMERIC" | "BIGDECIMAL" => match params.as_slice() {
            [p, s] => DataType::decimal(*p, *s as i32),
            [p] => DataType::decimal(*p, 0),
            // 76.76 digits: the declared precision is fractional; 38 after
            // the point is what the type guarantees.
            _ => DataType::decimal(76, 38),
        },
        "BOOL" | "BOOLEAN" => DataType::Boolean,
        "STRING" => DataType::String,
        "BYTES" => DataType::Binary,
        "DATE" => DataType::Date,
        "TIME" => DataType::Time,
        "DATETIME" => DataType::Timestamp,
        "TIMESTAMP" => DataType::TimestampTz,
        "INTERVAL" => DataType::Interval,
        "JSON" => DataType::Json,
        "RECORD" => DataType::Struct,
        // WKT/GeoJSON values with no normalized counterpart.
        "GEOGRAPHY" => DataType::Unknown,
        _ => DataType::Unknown,
    }
}

/// `NAME<…>` → the text between the outer angle brackets.
fn strip_wrapper<'a>(upper: &'a str, name: &str) -> Option<&'a str> {
    let rest = upper.strip_prefix(name)?.trim_start();
    let inner = rest.strip_prefix('<')?.strip_suffix('>')?;
    Some(inner)
}

fn parse_params(s: &str) -> Vec<u32> {
    s.trim_start_matches('(')
        .trim_end_matches(')')
        .split(',')
        .filter_map(|p| p.trim().parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_table() {
        let cases: &[(&str, &str)] = &[
            ("INT64", "int64"),
            ("INTEGER", "int64"),
            ("FLOAT64", "float64"),
            ("FLOAT", "float64"),
            ("NUMERIC", "decimal(38,9)"),
            ("NUMERIC(10, 2)", "decimal(10,2)"),
            ("NUMERIC(12)", "decimal(12,0)"),
            ("BIGNUMERIC", "decimal(76,38)"),
            ("BIGNUMERIC(40, 5)", "decimal(40,5)"),
            ("BOOL", "boolean"),
            ("BOOLEAN", "boolean"),
            ("STRING", "string"),
            ("STRING(40)", "string"),
            ("BYTES", "binary"),
            ("BYTES(16)", "binary"),
            ("DATE", "date"),
            ("TIME", "time"),
            ("DATETIME", "timestamp"),
            ("TIMESTAMP", "timestamp_tz"),
            ("INTERVAL", "interval"),
            ("JSON", "json"),
            ("GEOGRAPHY", "unknown"),
            ("RANGE<DATE>", "unknown"),
            ("RECORD", "struct"),
            ("STRUCT<a INT64, b STRING>", "struct"),
            ("ARRAY<INT64>", "array<int64>"),
            ("ARRAY<STRUCT<a INT64, b ARRAY<STRING>>>", "array<struct>"),
            ("array<numeric(5, 1)>", "array<decimal(5,1)>"),
            ("SOMETHING_NEW", "unknown"),
        ];
        for (native, want) in cases {
            assert_eq!(normalize(native).to_string(), *want, "{native}");
        }
    }
}
