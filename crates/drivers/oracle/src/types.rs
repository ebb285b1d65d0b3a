//! Oracle type names as `ALL_TAB_COLUMNS` spells them → the normalized types.

use matih_connector_core::DataType;

/// A column's type facts from `ALL_TAB_COLUMNS`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct OraType<'a> {
    pub data_type: &'a str,
    pub data_length: Option<i64>,
    pub char_length: Option<i64>,
    /// `C` when the length counts characters, `B` when bytes.
    pub char_used: Option<&'a str>,
    pub precision: Option<i64>,
    pub scale: Option<i64>,
}

pub(crate) fn normalize(t: &OraType<'_>) -> DataType {
    let dt = t.data_type.to_ascii_uppercase();
    if dt.starts_with("TIMESTAMP") {
        return if dt.contains("TIME ZONE") {
            DataType::TimestampTz
        } else {
            DataType::Timestamp
        };
    }
    if dt.starts_with("INTERVAL") {
        return DataType::Interval;
    }
    match dt.as_str() {
        "NUMBER" => match (t.precision, t.scale) {
            (None, None) => DataType::Decimal {
                precision: None,
                scale: None,
            },
            // NUMBER(*,0) and INTEGER: up to 38 digits.
            (None, Some(0)) => DataType::decimal(38, 0),
            (Some(p), Some(0)) if p <= 4 => DataType::Int16,
            (Some(p), Some(0)) if p <= 9 => DataType::Int32,
            (Some(p), Some(0)) if p <= 18 => DataType::Int64,
            (p, s) => DataType::Decimal {
                precision: Some(p.unwrap_or(38) as u32),
                scale: s.map(|s| s as i32),
            },
        },
        // FLOAT(b) precision is binary digits: up to 126, i.e. a double or more.
        "FLOAT" => match t.precision {
            Some(p) if p <= 24 => DataType::Float32,
            _ => DataType::Float64,
        },
        "BINARY_FLOAT" => DataType::Float32,
        "BINARY_DOUBLE" => DataType::Float64,
        "VARCHAR2" | "NVARCHAR2" | "CHAR" | "NCHAR" | "CLOB" | "NCLOB" | "LONG" | "ROWID"
        | "UROWID" | "XMLTYPE" => DataType::String,
        "RAW" | "LONG RAW" | "BLOB" | "BFILE" => DataType::Binary,
        // Oracle's DATE carries a time of day to the second.
        "DATE" => DataType::Timestamp,
        "JSON" => DataType::Json,
        "BOOLEAN" => DataType::Boolean,
        // SDO_GEOMETRY, VECTOR, object and collection types…
        _ => DataType::Unknown,
    }
}

/// The type as DDL spells it: `VARCHAR2(40 CHAR)`, `NUMBER(10,2)`, `RAW(16)`.
pub(crate) fn native_name(t: &OraType<'_>) -> String {
    let dt = t.data_type;
    match dt.to_ascii_uppercase().as_str() {
        "VARCHAR2" | "CHAR" => match (t.char_used, t.char_length, t.data_length) {
            (Some("C"), Some(n), _) => format!("{dt}({n} CHAR)"),
            (_, _, Some(n)) => format!("{dt}({n})"),
            _ => dt.to_owned(),
        },
        "NVARCHAR2" | "NCHAR" => match t.char_length {
            Some(n) => format!("{dt}({n})"),
            None => dt.to_owned(),
        },
        "RAW" => match t.data_length {
            Some(n) => format!("{dt}({n})"),
            None => dt.to_owned(),
        },
        "NUMBER" => match (t.precision, t.scale) {
            (None, None) => dt.to_owned(),
            (None, Some(s)) => format!("{dt}(*,{s})"),
            (Some(p), Some(0)) => format!("{dt}({p})"),
            (Some(p), Some(s)) => format!("{dt}({p},{s})"),
            (Some(p), None) => format!("{dt}({p})"),
        },
        "FLOAT" => match t.precision {
            Some(p) => format!("{dt}({p})"),
            None => dt.to_owned(),
        },
        _ => dt.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t<'a>(
        dt: &'a str,
        len: Option<i64>,
        chars: Option<i64>,
        used: Option<&'a str>,
        p: Option<i64>,
        s: Option<i64>,
    ) -> OraType<'a> {
        OraType {
            data_type: dt,
            data_length: len,
            char_length: chars,
            char_used: used,
            precision: p,
            scale: s,
        }
    }

    #[test]
    fn type_table() {
        let cases: &[(OraType<'_>, &str, DataType)] = &[
            (
                t("NUMBER", Some(22), None, None, None, None),
                "NUMBER",
                DataType::Decimal {
                    precision: None,
                    scale: None,
                },
            ),
            (
                t("NUMBER", Some(22), None, None, None, Some(0)),
                "NUMBER(*,0)",
                DataType::decimal(38, 0),
            ),
            (
                t("NUMBER", Some(22), None, None, Some(3), Some(0)),
                "NUMBER(3)",
                DataType::Int16,
            ),
            (
                t("NUMBER", Some(22), None, None, Some(9), Some(0)),
                "NUMBER(9)",
                DataType::Int32,
            ),
            (
                t("NUMBER", Some(22), None, None, Some(18), Some(0)),
                "NUMBER(18)",
                DataType::Int64,
            ),
            (
                t("NUMBER", Some(22), None, None, Some(19), Some(0)),
                "NUMBER(19)",
                DataType::decimal(19, 0),
            ),
            (
                t("NUMBER", Some(22), None, None, Some(10), Some(2)),
                "NUMBER(10,2)",
                DataType::decimal(10, 2),
            ),
            (
                t("NUMBER", Some(22), None, None, Some(5), Some(-2)),
                "NUMBER(5,-2)",
                DataType::decimal(5, -2),
            ),
            (
                t("FLOAT", Some(22), None, None, Some(126), None),
                "FLOAT(126)",
                DataType::Float64,
            ),
            (
                t("FLOAT", Some(22), None, None, Some(20), None),
                "FLOAT(20)",
                DataType::Float32,
            ),
            (
                t("BINARY_FLOAT", Some(4), None, None, None, None),
                "BINARY_FLOAT",
                DataType::Float32,
            ),
            (
                t("BINARY_DOUBLE", Some(8), None, None, None, None),
                "BINARY_DOUBLE",
                DataType::Float64,
            ),
            (
                t("VARCHAR2", Some(160), Some(40), Some("C"), None, None),
                "VARCHAR2(40 CHAR)",
                DataType::String,
            ),
            (
                t("VARCHAR2", Some(40), Some(40), Some("B"), None, None),
                "VARCHAR2(40)",
                DataType::String,
            ),
            (
                t("NVARCHAR2", Some(80), Some(40), Some("C"), None, None),
                "NVARCHAR2(40)",
                DataType::String,
            ),
            (
                t("CHAR", Some(3), Some(3), Some("B"), None, None),
                "CHAR(3)",
                DataType::String,
            ),
            (
                t("CLOB", Some(4000), None, None, None, None),
                "CLOB",
                DataType::String,
            ),
            (
                t("NCLOB", Some(4000), None, None, None, None),
                "NCLOB",
                DataType::String,
            ),
            (
                t("LONG", Some(0), None, None, None, None),
                "LONG",
                DataType::String,
            ),
            (
                t("RAW", Some(16), None, None, None, None),
                "RAW(16)",
                DataType::Binary,
            ),
            (
                t("BLOB", Some(4000), None, None, None, None),
                "BLOB",
                DataType::Binary,
            ),
            (
                t("DATE", Some(7), None, None, None, None),
                "DATE",
                DataType::Timestamp,
            ),
            (
                t("TIMESTAMP(6)", Some(11), None, None, None, Some(6)),
                "TIMESTAMP(6)",
                DataType::Timestamp,
            ),
            (
                t(
                    "TIMESTAMP(3) WITH TIME ZONE",
                    Some(13),
                    None,
                    None,
                    None,
                    Some(3),
                ),
                "TIMESTAMP(3) WITH TIME ZONE",
                DataType::TimestampTz,
            ),
            (
                t(
                    "TIMESTAMP(6) WITH LOCAL TIME ZONE",
                    Some(11),
                    None,
                    None,
                    None,
                    Some(6),
                ),
                "TIMESTAMP(6) WITH LOCAL TIME ZONE",
                DataType::TimestampTz,
            ),
            (
                t(
                    "INTERVAL YEAR(2) TO MONTH",
                    Some(5),
                    None,
                    None,
                    Some(2),
                    Some(0),
                ),
                "INTERVAL YEAR(2) TO MONTH",
                DataType::Interval,
            ),
            (
                t(
                    "INTERVAL DAY(2) TO SECOND(6)",
                    Some(11),
                    None,
                    None,
                    Some(2),
                    Some(6),
                ),
                "INTERVAL DAY(2) TO SECOND(6)",
                DataType::Interval,
            ),
            (
                t("JSON", Some(8200), None, None, None, None),
                "JSON",
                DataType::Json,
            ),
            (
                t("BOOLEAN", Some(1), None, None, None, None),
                "BOOLEAN",
                DataType::Boolean,
            ),
            (
                t("ROWID", Some(10), None, None, None, None),
                "ROWID",
                DataType::String,
            ),
            (
                t("XMLTYPE", Some(2000), None, None, None, None),
                "XMLTYPE",
                DataType::String,
            ),
            (
                t("SDO_GEOMETRY", Some(1), None, None, None, None),
                "SDO_GEOMETRY",
                DataType::Unknown,
            ),
        ];
        for (ty, native, want) in cases {
            assert_eq!(normalize(ty), *want, "{}", ty.data_type);
            assert_eq!(native_name(ty), *native, "{}", ty.data_type);
        }
    }
}
