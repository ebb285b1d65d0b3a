//! Snowflake types (as `INFORMATION_SCHEMA.COLUMNS.DATA_TYPE` spells them) →
//! normalized types.

use matih_connector_core::DataType;

/// The native spelling: `DATA_TYPE` with its length or precision and scale.
pub(crate) fn native_type(
    data_type: &str,
    precision: Option<u32>,
    scale: Option<u32>,
    char_len: Option<u64>,
) -> String {
    let upper = data_type.trim().to_ascii_uppercase();
    match upper.as_str() {
        "NUMBER" | "DECIMAL" | "NUMERIC" => match (precision, scale) {
            (Some(p), Some(s)) => format!("{upper}({p},{s})"),
            (Some(p), None) => format!("{upper}({p})"),
            _ => upper,
        },
        "TEXT" | "VARCHAR" | "CHAR" | "CHARACTER" | "STRING" | "BINARY" | "VARBINARY" => {
            match char_len {
                Some(n) => format!("{upper}({n})"),
                None => upper,
            }
        }
        _ => data_type.trim().to_owned(),
    }
}

/// Maps a Snowflake type. NUMBER with scale 0 is an integer only while it fits
/// in 64 bits (precision ≤ 18); `INT` is `NUMBER(38,0)` in Snowflake and stays
/// a decimal, since values beyond i64 are legal in it.
pub(crate) fn normalize(data_type: &str, precision: Option<u32>, scale: Option<u32>) -> DataType {
    let upper = data_type.trim().to_ascii_uppercase();
    let base = upper.split('(').next().unwrap_or(&upper).trim();
    match base {
        "NUMBER" | "DECIMAL" | "NUMERIC" => {
            let s = scale.unwrap_or(0);
            match precision {
                Some(p) if s == 0 && p <= 18 => DataType::Int64,
                Some(p) => DataType::decimal(p, s as i32),
                None if s == 0 => DataType::Decimal {
                    precision: Some(38),
                    scale: Some(0),
                },
                None => DataType::Decimal {
                    precision: None,
                    scale: Some(s as i32),
                },
            }
        }
        "FLOAT" | "FLOAT4" | "FLOAT8" | "DOUBLE" | "DOUBLE PRECISION" | "REAL" => DataType::Float64,
        "TEXT" | "VARCHAR" | "CHAR" | "CHARACTER" | "STRING" | "NCHAR" | "NVARCHAR" => {
            DataType::String
        }
        "BINARY" | "VARBINARY" | "BLOB" => DataType::Binary,
        "BOOLEAN" => DataType::Boolean,
        "DATE" => DataType::Date,
        "TIME" => DataType::Time,
        "TIMESTAMP_NTZ" | "DATETIME" | "TIMESTAMP" => DataType::Timestamp,
        "TIMESTAMP_LTZ" | "TIMESTAMP_TZ" | "TIMESTAMP WITH TIME ZONE" | "TIMESTAMPTZ" => {
            DataType::TimestampTz
        }
        "VARIANT" | "OBJECT" | "JSON" => DataType::Json,
        "ARRAY" => DataType::array(DataType::Json),
        "MAP" => DataType::Map,
        "VECTOR" => {
            if upper.contains("FLOAT") {
                DataType::array(DataType::Float32)
            } else {
                DataType::array(DataType::Int32)
            }
        }
        // What DuckDB-backed emulators report where Snowflake says NUMBER.
        "BIGINT" => DataType::Int64,
        "INTEGER" | "INT" => DataType::Int32,
        "SMALLINT" => DataType::Int16,
        "TINYINT" => DataType::Int8,
        "UUID" => DataType::Uuid,
        "INTERVAL" => DataType::Interval,
        // GEOGRAPHY, GEOMETRY, FILE and anything new.
        _ => DataType::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DATA_TYPE, precision, scale, length, native spelling, normalized.
    type Case = (
        &'static str,
        Option<u32>,
        Option<u32>,
        Option<u64>,
        &'static str,
        DataType,
    );

    #[test]
    fn snowflake_types_map() {
        let cases: &[Case] = &[
            (
                "NUMBER",
                Some(38),
                Some(0),
                None,
                "NUMBER(38,0)",
                DataType::decimal(38, 0),
            ),
            (
                "NUMBER",
                Some(10),
                Some(0),
                None,
                "NUMBER(10,0)",
                DataType::Int64,
            ),
            (
                "NUMBER",
                Some(18),
                Some(0),
                None,
                "NUMBER(18,0)",
                DataType::Int64,
            ),
            (
                "NUMBER",
                Some(12),
                Some(2),
                None,
                "NUMBER(12,2)",
                DataType::decimal(12, 2),
            ),
            ("FLOAT", None, None, None, "FLOAT", DataType::Float64),
            (
                "TEXT",
                None,
                None,
                Some(16_777_216),
                "TEXT(16777216)",
                DataType::String,
            ),
            ("TEXT", None, None, Some(20), "TEXT(20)", DataType::String),
            (
                "BINARY",
                None,
                None,
                Some(8_388_608),
                "BINARY(8388608)",
                DataType::Binary,
            ),
            ("BOOLEAN", None, None, None, "BOOLEAN", DataType::Boolean),
            ("DATE", None, None, None, "DATE", DataType::Date),
            ("TIME", None, Some(9), None, "TIME", DataType::Time),
            (
                "TIMESTAMP_NTZ",
                None,
                Some(9),
                None,
                "TIMESTAMP_NTZ",
                DataType::Timestamp,
            ),
            (
                "TIMESTAMP_LTZ",
                None,
                Some(9),
                None,
                "TIMESTAMP_LTZ",
                DataType::TimestampTz,
            ),
            (
                "TIMESTAMP_TZ",
                None,
                Some(9),
                None,
                "TIMESTAMP_TZ",
                DataType::TimestampTz,
            ),
            ("VARIANT", None, None, None, "VARIANT", DataType::Json),
            ("OBJECT", None, None, None, "OBJECT", DataType::Json),
            (
                "ARRAY",
                None,
                None,
                None,
                "ARRAY",
                DataType::array(DataType::Json),
            ),
            ("MAP", None, None, None, "MAP", DataType::Map),
            (
                "VECTOR(FLOAT, 256)",
                None,
                None,
                None,
                "VECTOR(FLOAT, 256)",
                DataType::array(DataType::Float32),
            ),
            (
                "VECTOR(INT, 16)",
                None,
                None,
                None,
                "VECTOR(INT, 16)",
                DataType::array(DataType::Int32),
            ),
            (
                "GEOGRAPHY",
                None,
                None,
                None,
                "GEOGRAPHY",
                DataType::Unknown,
            ),
            ("GEOMETRY", None, None, None, "GEOMETRY", DataType::Unknown),
            // DuckDB spellings fakesnow passes through.
            (
                "INTEGER",
                Some(32),
                Some(0),
                None,
                "INTEGER",
                DataType::Int32,
            ),
            ("SMALLINT", None, None, None, "SMALLINT", DataType::Int16),
            ("UUID", None, None, None, "UUID", DataType::Uuid),
            (
                "TIMESTAMP WITH TIME ZONE",
                None,
                None,
                None,
                "TIMESTAMP WITH TIME ZONE",
                DataType::TimestampTz,
            ),
        ];
        for (dt, p, s, len, native, want) in cases {
            assert_eq!(native_type(dt, *p, *s, *len), *native, "{dt}");
            assert_eq!(normalize(dt, *p, *s), *want, "{dt}");
        }
    }
}
