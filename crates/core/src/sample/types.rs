//! Column types of sampled files: text values of CSV cells, JSON values of
//! JSON lines, and Parquet schema types (physical + logical) → normalized.

use crate::DataType;
use chrono::{DateTime, NaiveDate, NaiveDateTime};
use parquet::basic::{ConvertedType, LogicalType, TimeUnit, Type as Physical};
use parquet::schema::types::Type as ParquetType;
use serde_json::Value;

/// What the values of one CSV column or JSON field looked like.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Inferred {
    /// Only empty cells / nulls seen.
    Nothing,
    /// `true`/`false` only.
    Boolean,
    /// Integers only.
    Int64,
    /// Numbers.
    Float64,
    /// ISO 8601 dates.
    Date,
    /// ISO 8601 timestamps without offset.
    Timestamp,
    /// ISO 8601 timestamps with offset.
    TimestampTz,
    /// Any other text.
    String,
    /// JSON only.
    Object,
    /// JSON only: element type.
    Array(Box<Inferred>),
    /// JSON values of different kinds.
    Mixed,
}

impl Inferred {
    /// The least type holding both.
    pub fn merge(self, other: Inferred) -> Inferred {
        use Inferred as I;
        match (self, other) {
            (a, b) if a == b => a,
            (I::Nothing, x) | (x, I::Nothing) => x,
            (I::Int64, I::Float64) | (I::Float64, I::Int64) => I::Float64,
            (I::Date, I::Timestamp) | (I::Timestamp, I::Date) => I::Timestamp,
            (I::Array(a), I::Array(b)) => I::Array(Box::new(a.merge(*b))),
            (I::Mixed, _) | (_, I::Mixed) => I::Mixed,
            (I::Object, _) | (_, I::Object) | (I::Array(_), _) | (_, I::Array(_)) => I::Mixed,
            // Text that is not uniformly one kind stays text.
            _ => I::String,
        }
    }

    /// The normalized type for what was seen.
    pub fn data_type(&self) -> DataType {
        match self {
            Inferred::Nothing => DataType::Unknown,
            Inferred::Boolean => DataType::Boolean,
            Inferred::Int64 => DataType::Int64,
            Inferred::Float64 => DataType::Float64,
            Inferred::Date => DataType::Date,
            Inferred::Timestamp => DataType::Timestamp,
            Inferred::TimestampTz => DataType::TimestampTz,
            Inferred::String => DataType::String,
            Inferred::Object => DataType::Struct,
            Inferred::Array(inner) => DataType::array(match inner.data_type() {
                DataType::Unknown if **inner == Inferred::Mixed => DataType::Json,
                t => t,
            }),
            Inferred::Mixed => DataType::Json,
        }
    }

    /// The name shown as the native type: what the sample looked like.
    pub fn native(&self, json: bool) -> String {
        match self {
            Inferred::Nothing => "null".into(),
            Inferred::Boolean => "boolean".into(),
            Inferred::Int64 => "integer".into(),
            Inferred::Float64 => "number".into(),
            Inferred::Date => "date".into(),
            Inferred::Timestamp => "timestamp".into(),
            Inferred::TimestampTz => "timestamp with offset".into(),
            Inferred::String => "string".into(),
            Inferred::Object => "object".into(),
            Inferred::Array(inner) => format!("array<{}>", inner.native(json)),
            Inferred::Mixed => if json { "mixed" } else { "string" }.into(),
        }
    }
}

/// A temporal type recognized in text: ISO dates and timestamps.
fn temporal(s: &str) -> Option<Inferred> {
    if s.len() < 8 || s.len() > 40 || !s.as_bytes()[0].is_ascii_digit() {
        return None;
    }
    if NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok() {
        return Some(Inferred::Date);
    }
    if DateTime::parse_from_rfc3339(s).is_ok() {
        return Some(Inferred::TimestampTz);
    }
    for f in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if NaiveDateTime::parse_from_str(s, f).is_ok() {
            return Some(Inferred::Timestamp);
        }
    }
    None
}

/// One CSV cell. Empty cells are nulls.
pub fn infer_text(cell: &str) -> Inferred {
    let s = cell.trim();
    if s.is_empty() {
        return Inferred::Nothing;
    }
    if s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("false") {
        return Inferred::Boolean;
    }
    // Leading zeros (zip codes, ids) are text, not numbers.
    let digits = s.trim_start_matches(['-', '+']);
    let leading_zero = digits.len() > 1 && digits.starts_with('0') && !digits.starts_with("0.");
    if !leading_zero {
        if s.parse::<i64>().is_ok() {
            return Inferred::Int64;
        }
        if s.parse::<f64>().is_ok_and(f64::is_finite) && s.chars().any(|c| c.is_ascii_digit()) {
            return Inferred::Float64;
        }
    }
    temporal(s).unwrap_or(Inferred::String)
}

/// One JSON value. Strings holding ISO dates or timestamps count as such.
pub fn infer_json(v: &Value) -> Inferred {
    match v {
        Value::Null => Inferred::Nothing,
        Value::Bool(_) => Inferred::Boolean,
        Value::Number(n) if n.is_i64() => Inferred::Int64,
        Value::Number(_) => Inferred::Float64,
        Value::String(s) => temporal(s).unwrap_or(Inferred::String),
        Value::Object(_) => Inferred::Object,
        Value::Array(items) => Inferred::Array(Box::new(
            items
                .iter()
                .take(100)
                .map(infer_json)
                .fold(Inferred::Nothing, Inferred::merge),
        )),
    }
}

/// A Parquet field's native spelling and normalized type.
pub fn parquet_type(t: &ParquetType) -> (String, DataType) {
    let info = t.get_basic_info();
    let logical = info.logical_type_ref().cloned();
    let converted = info.converted_type();
    if t.is_group() {
        return match (&logical, converted) {
            (Some(LogicalType::List), _) | (_, ConvertedType::LIST) => {
                let inner = list_element(t).map(parquet_type);
                match inner {
                    Some((n, d)) => (format!("LIST<{n}>"), DataType::array(d)),
                    None => ("LIST".into(), DataType::array(DataType::Unknown)),
                }
            }
            (Some(LogicalType::Map), _)
            | (_, ConvertedType::MAP | ConvertedType::MAP_KEY_VALUE) => {
                ("MAP".into(), DataType::Map)
            }
            _ => ("GROUP".into(), DataType::Struct),
        };
    }
    let physical = t.get_physical_type();
    let pname = physical.to_string();
    let ty = match (&logical, physical) {
        (Some(LogicalType::String | LogicalType::Enum | LogicalType::Json), _) => match logical {
            Some(LogicalType::Json) => DataType::Json,
            _ => DataType::String,
        },
        (Some(LogicalType::Uuid), _) => DataType::Uuid,
        (Some(LogicalType::Decimal { scale, precision }), _) => {
            DataType::decimal((*precision).max(0) as u32, *scale)
        }
        (Some(LogicalType::Date), _) => DataType::Date,
        (Some(LogicalType::Time { .. }), _) => DataType::Time,
        (
            Some(LogicalType::Timestamp {
                is_adjusted_to_u_t_c,
                ..
            }),
            _,
        ) => {
            if *is_adjusted_to_u_t_c {
                DataType::TimestampTz
            } else {
                DataType::Timestamp
            }
        }
        (
            Some(LogicalType::Integer {
                bit_width,
                is_signed,
            }),
            _,
        ) => match (bit_width, is_signed) {
            (8, true) => DataType::Int8,
            (16, true) | (8, false) => DataType::Int16,
            (32, true) | (16, false) => DataType::Int32,
            _ => DataType::Int64,
        },
        (Some(LogicalType::Float16), _) => DataType::Float32,
        (Some(LogicalType::Bson), _) => DataType::Binary,
        _ => match converted {
            ConvertedType::UTF8 | ConvertedType::ENUM => DataType::String,
            ConvertedType::JSON => DataType::Json,
            ConvertedType::DECIMAL => {
                DataType::decimal(t.get_precision().max(0) as u32, t.get_scale())
            }
            ConvertedType::DATE => DataType::Date,
            ConvertedType::TIME_MILLIS | ConvertedType::TIME_MICROS => DataType::Time,
            ConvertedType::TIMESTAMP_MILLIS | ConvertedType::TIMESTAMP_MICROS => {
                DataType::TimestampTz
            }
            ConvertedType::INTERVAL => DataType::Interval,
            ConvertedType::INT_8 => DataType::Int8,
            ConvertedType::INT_16 | ConvertedType::UINT_8 => DataType::Int16,
            ConvertedType::INT_32 | ConvertedType::UINT_16 => DataType::Int32,
            ConvertedType::INT_64 | ConvertedType::UINT_32 | ConvertedType::UINT_64 => {
                DataType::Int64
            }
            _ => match physical {
                Physical::BOOLEAN => DataType::Boolean,
                Physical::INT32 => DataType::Int32,
                Physical::INT64 => DataType::Int64,
                // Legacy Impala/Hive timestamps.
                Physical::INT96 => DataType::Timestamp,
                Physical::FLOAT => DataType::Float32,
                Physical::DOUBLE => DataType::Float64,
                Physical::BYTE_ARRAY | Physical::FIXED_LEN_BYTE_ARRAY => DataType::Binary,
            },
        },
    };
    let native = match &logical {
        Some(l) => format!("{pname} ({})", logical_name(l)),
        None if converted != ConvertedType::NONE => format!("{pname} ({converted})"),
        None => pname,
    };
    (native, ty)
}

fn logical_name(l: &LogicalType) -> String {
    let unit = |u: &TimeUnit| match u {
        TimeUnit::MILLIS => "ms",
        TimeUnit::MICROS => "us",
        TimeUnit::NANOS => "ns",
    };
    match l {
        LogicalType::String => "STRING".into(),
        LogicalType::Enum => "ENUM".into(),
        LogicalType::Json => "JSON".into(),
        LogicalType::Uuid => "UUID".into(),
        LogicalType::Date => "DATE".into(),
        LogicalType::Decimal { scale, precision } => format!("DECIMAL({precision},{scale})"),
        LogicalType::Time {
            is_adjusted_to_u_t_c,
            unit: u,
        } => {
            format!("TIME({}, utc={is_adjusted_to_u_t_c})", unit(u))
        }
        LogicalType::Timestamp {
            is_adjusted_to_u_t_c,
            unit: u,
        } => {
            format!("TIMESTAMP({}, utc={is_adjusted_to_u_t_c})", unit(u))
        }
        LogicalType::Integer {
            bit_width,
            is_signed,
        } => {
            format!("{}INT{bit_width}", if *is_signed { "" } else { "U" })
        }
        other => format!("{other:?}").to_ascii_uppercase(),
    }
}

/// The element of a LIST group: `list (repeated group) → element`, or the
/// legacy two-level form where the repeated field is the element.
fn list_element(t: &ParquetType) -> Option<&ParquetType> {
    let repeated = t.get_fields().first()?;
    if repeated.is_group() && repeated.get_fields().len() == 1 {
        repeated.get_fields().first().map(|f| f.as_ref())
    } else {
        Some(repeated.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn csv_cells() {
        let cases = [
            ("", Inferred::Nothing),
            ("true", Inferred::Boolean),
            ("FALSE", Inferred::Boolean),
            ("42", Inferred::Int64),
            ("-7", Inferred::Int64),
            ("007", Inferred::String),
            ("0", Inferred::Int64),
            ("0.5", Inferred::Float64),
            ("1e3", Inferred::Float64),
            ("NaN", Inferred::String),
            ("inf", Inferred::String),
            ("2024-01-03", Inferred::Date),
            ("2024-01-03T10:00:00Z", Inferred::TimestampTz),
            ("2024-01-03T10:00:00+02:00", Inferred::TimestampTz),
            ("2024-01-03 10:00:00", Inferred::Timestamp),
            ("2024-01-03T10:00:00.123", Inferred::Timestamp),
            ("Ada", Inferred::String),
            ("12345678901234567890", Inferred::Float64),
        ];
        for (cell, want) in cases {
            assert_eq!(infer_text(cell), want, "{cell:?}");
        }
    }

    #[test]
    fn merging() {
        use Inferred as I;
        let cases = [
            (I::Int64, I::Float64, I::Float64),
            (I::Nothing, I::Date, I::Date),
            (I::Date, I::Timestamp, I::Timestamp),
            (I::Int64, I::String, I::String),
            (I::Boolean, I::Int64, I::String),
            (I::Object, I::Int64, I::Mixed),
            (
                I::Array(Box::new(I::Int64)),
                I::Array(Box::new(I::Float64)),
                I::Array(Box::new(I::Float64)),
            ),
        ];
        for (a, b, want) in cases {
            assert_eq!(a.clone().merge(b.clone()), want, "{a:?} + {b:?}");
        }
    }

    #[test]
    fn json_values() {
        let cases = [
            (json!(null), DataType::Unknown),
            (json!(true), DataType::Boolean),
            (json!(1), DataType::Int64),
            (json!(1.5), DataType::Float64),
            (json!("x"), DataType::String),
            (json!("2024-03-01T12:00:00Z"), DataType::TimestampTz),
            (json!({"a": 1}), DataType::Struct),
            (json!(["a", "b"]), DataType::array(DataType::String)),
            (json!([1, 2.5]), DataType::array(DataType::Float64)),
            (json!([1, "a"]), DataType::array(DataType::String)),
            (json!([{"a": 1}, 2]), DataType::array(DataType::Json)),
            (json!([]), DataType::array(DataType::Unknown)),
        ];
        for (v, want) in cases {
            assert_eq!(infer_json(&v).data_type(), want, "{v}");
        }
    }

    #[test]
    fn parquet_schema_types() {
        use parquet::schema::parser::parse_message_type;
        let schema = parse_message_type(
            "message m {
                required int32 a;
                optional int64 b (INTEGER(64,true));
                optional binary s (STRING);
                optional binary raw;
                optional boolean flag;
                optional float f;
                optional double d;
                optional int32 day (DATE);
                optional int64 ts (TIMESTAMP(MICROS,true));
                optional int64 local_ts (TIMESTAMP(MILLIS,false));
                optional int64 t (TIME(MICROS,false));
                optional fixed_len_byte_array(16) price (DECIMAL(20,2));
                optional int32 small (INTEGER(16,true));
                optional int32 u8 (INTEGER(8,false));
                optional fixed_len_byte_array(16) id (UUID);
                optional binary doc (JSON);
                optional int96 legacy;
                optional group tags (LIST) { repeated group list { optional binary element (STRING); } }
                optional group attrs (MAP) { repeated group key_value { required binary key (STRING); optional int32 value; } }
                optional group address { optional binary city (STRING); }
            }",
        )
        .unwrap();
        let got: Vec<(String, String)> = schema
            .get_fields()
            .iter()
            .map(|f| {
                let (_, t) = parquet_type(f);
                (f.name().to_owned(), t.to_string())
            })
            .collect();
        let want = [
            ("a", "int32"),
            ("b", "int64"),
            ("s", "string"),
            ("raw", "binary"),
            ("flag", "boolean"),
            ("f", "float32"),
            ("d", "float64"),
            ("day", "date"),
            ("ts", "timestamp_tz"),
            ("local_ts", "timestamp"),
            ("t", "time"),
            ("price", "decimal(20,2)"),
            ("small", "int16"),
            ("u8", "int16"),
            ("id", "uuid"),
            ("doc", "json"),
            ("legacy", "timestamp"),
            ("tags", "array<string>"),
            ("attrs", "map"),
            ("address", "struct"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(got, want);
        let (native, _) = parquet_type(&schema.get_fields()[8]);
        assert_eq!(native, "INT64 (TIMESTAMP(us, utc=true))");
    }
}
