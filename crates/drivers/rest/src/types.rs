//! JSON values → normalized types, and the merge of types seen across records.
//!
//! | JSON value | normalized | native type |
//! |---|---|---|
//! | `true`/`false` | boolean | `boolean` |
//! | integer within i64 | int64 | `integer` |
//! | integer beyond i64 | decimal(20,0) | `integer` |
//! | other number | float64 | `number` |
//! | `"2024-05-01"` | date | `string (date)` |
//! | `"2024-05-01T10:00:00Z"` / `+02:00` | timestamp_tz | `string (date-time)` |
//! | `"2024-05-01T10:00:00"` | timestamp | `string (date-time)` |
//! | `"0b5e…-…"` (8-4-4-4-12 hex) | uuid | `string (uuid)` |
//! | other string | string | `string` |
//! | object | struct | `object` |
//! | array | `array<T>` of its merged elements | `array` |
//! | null, or only nulls | unknown | `null` |
//! | different kinds across records | json | `mixed` |

use matih_connector_core::{Column, DataType};
use serde_json::Value;

/// Beyond this nesting an array's element type is not looked into.
const MAX_DEPTH: usize = 16;

/// The normalized type of one JSON value; `None` for `null`.
pub(crate) fn infer(v: &Value) -> Option<DataType> {
    infer_at(v, 0)
}

fn infer_at(v: &Value, depth: usize) -> Option<DataType> {
    Some(match v {
        Value::Null => return None,
        Value::Bool(_) => DataType::Boolean,
        Value::Number(n) if n.is_i64() => DataType::Int64,
        Value::Number(n) if n.is_u64() => DataType::decimal(20, 0),
        Value::Number(_) => DataType::Float64,
        Value::String(s) => string_type(s),
        Value::Object(_) => DataType::Struct,
        Value::Array(items) => {
            if depth >= MAX_DEPTH {
                return Some(DataType::array(DataType::Json));
            }
            let inner = items
                .iter()
                .filter_map(|i| infer_at(i, depth + 1))
                .reduce(merge)
                .unwrap_or(DataType::Unknown);
            DataType::array(inner)
        }
    })
}

/// ISO dates, timestamps and UUIDs are recognised; everything else is a string.
pub(crate) fn string_type(s: &str) -> DataType {
    let b = s.as_bytes();
    if b.len() == 10 && chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok() {
        return DataType::Date;
    }
    if b.len() >= 19 && b.len() <= 40 && b[4] == b'-' && matches!(b[10], b'T' | b't' | b' ') {
        if chrono::DateTime::parse_from_rfc3339(s).is_ok() {
            return DataType::TimestampTz;
        }
        if chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").is_ok()
            || chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").is_ok()
        {
            return DataType::Timestamp;
        }
    }
    if is_uuid(b) {
        return DataType::Uuid;
    }
    DataType::String
}

fn is_uuid(b: &[u8]) -> bool {
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// The type that holds both: numbers widen, string flavours fall back to
/// string, arrays merge their elements, anything else is json.
pub(crate) fn merge(a: DataType, b: DataType) -> DataType {
    use DataType as T;
    match (a, b) {
        (a, b) if a == b => a,
        (T::Unknown, x) | (x, T::Unknown) => x,
        (T::Int64, T::Float64) | (T::Float64, T::Int64) => T::Float64,
        (T::Int64, d @ T::Decimal { .. }) | (d @ T::Decimal { .. }, T::Int64) => d,
        (T::Float64, T::Decimal { .. }) | (T::Decimal { .. }, T::Float64) => T::Float64,
        (T::Timestamp, T::TimestampTz) | (T::TimestampTz, T::Timestamp) => T::String,
        (x, y) if is_stringish(&x) && is_stringish(&y) => T::String,
        (T::Array(x), T::Array(y)) => T::array(merge(*x, *y)),
        _ => T::Json,
    }
}

fn is_stringish(t: &DataType) -> bool {
    matches!(
        t,
        DataType::String
            | DataType::Date
            | DataType::Timestamp
            | DataType::TimestampTz
            | DataType::Uuid
    )
}

/// How the JSON spells a normalized type (JSON Schema's type and format).
pub(crate) fn native_name(t: &DataType) -> String {
    match t {
        DataType::Boolean => "boolean".into(),
        DataType::Int64 | DataType::Decimal { scale: Some(0), .. } => "integer".into(),
        DataType::Float64 => "number".into(),
        DataType::Date => "string (date)".into(),
        DataType::Timestamp | DataType::TimestampTz => "string (date-time)".into(),
        DataType::Uuid => "string (uuid)".into(),
        DataType::String => "string".into(),
        DataType::Struct => "object".into(),
        DataType::Array(inner) => format!("array<{}>", native_name(inner)),
        DataType::Unknown => "null".into(),
        _ => "mixed".into(),
    }
}

/// Columns from a set of records: one per top-level key, in order of first
/// appearance; nullable when a record lacks the key or holds null. A record
/// that is not an object contributes a column named `value`.
pub(crate) fn columns_from_records(records: &[Value]) -> Vec<Column> {
    struct Acc {
        name: String,
        ty: Option<DataType>,
        seen: usize,
        nulls: bool,
    }
    let mut cols: Vec<Acc> = Vec::new();
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut observe = |name: &str, v: &Value, cols: &mut Vec<Acc>| {
        let i = *index.entry(name.to_owned()).or_insert_with(|| {
            cols.push(Acc {
                name: name.to_owned(),
                ty: None,
                seen: 0,
                nulls: false,
            });
            cols.len() - 1
        });
        let c = &mut cols[i];
        c.seen += 1;
        match infer(v) {
            None => c.nulls = true,
            Some(t) => {
                c.ty = Some(match c.ty.take() {
                    Some(old) => merge(old, t),
                    None => t,
                })
            }
        }
    };
    for r in records {
        match r {
            Value::Object(o) => {
                for (k, v) in o {
                    observe(k, v, &mut cols);
                }
            }
            other => observe("value", other, &mut cols),
        }
    }
    let total = records.len();
    cols.into_iter()
        .enumerate()
        .map(|(i, c)| {
            let ty = c.ty.unwrap_or(DataType::Unknown);
            Column {
                name: c.name.into(),
                ordinal: i as u32 + 1,
                native_type: native_name(&ty).into(),
                data_type: ty,
                nullable: c.nulls || c.seen < total,
                default: None,
                comment: None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_infer_to_types() {
        let cases = [
            (json!(true), "boolean"),
            (json!(42), "int64"),
            (json!(-7), "int64"),
            (json!(18446744073709551615u64), "decimal(20,0)"),
            (json!(1.5), "float64"),
            (json!("hello"), "string"),
            (json!("2024-05-01"), "date"),
            (json!("2024-02-30"), "string"),
            (json!("2024-05-01T10:00:00Z"), "timestamp_tz"),
            (json!("2024-05-01T10:00:00.123+02:00"), "timestamp_tz"),
            (json!("2024-05-01T10:00:00"), "timestamp"),
            (json!("2024-05-01 10:00:00.5"), "timestamp"),
            (json!("6f1c2a8e-3b7d-4e2f-9a10-1c2d3e4f5a6b"), "uuid"),
            (json!("6f1c2a8e-3b7d-4e2f-9a10-1c2d3e4f5a6"), "string"),
            (json!({"a": 1}), "struct"),
            (json!([1, 2, 3]), "array<int64>"),
            (json!([1, 2.5]), "array<float64>"),
            (json!([1, "x"]), "array<json>"),
            (json!([]), "array<unknown>"),
            (json!([[1], [2, null]]), "array<array<int64>>"),
            (json!(["2024-01-01", "text"]), "array<string>"),
        ];
        for (v, want) in cases {
            assert_eq!(infer(&v).unwrap().to_string(), want, "{v}");
        }
        assert_eq!(infer(&Value::Null), None);
    }

    #[test]
    fn merging() {
        use DataType as T;
        assert_eq!(merge(T::Int64, T::Float64), T::Float64);
        assert_eq!(merge(T::Date, T::String), T::String);
        assert_eq!(merge(T::Uuid, T::Uuid), T::Uuid);
        assert_eq!(merge(T::Int64, T::String), T::Json);
        assert_eq!(merge(T::Struct, T::array(T::Int64)), T::Json);
        assert_eq!(merge(T::Unknown, T::Boolean), T::Boolean);
        assert_eq!(merge(T::Timestamp, T::TimestampTz), T::String);
    }

    #[test]
    fn columns_across_records() {
        let records = vec![
            json!({"id": 1, "name": "a", "score": 1, "tags": ["x"], "when": "2024-01-01T00:00:00Z"}),
            json!({"id": 2, "name": null, "score": 2.5, "extra": {"k": 1}}),
            json!({"id": 3, "name": "c", "score": 3, "tags": [], "mixed": 1}),
            json!({"id": 4, "name": "d", "score": 4, "mixed": "one"}),
        ];
        let cols = columns_from_records(&records);
        let by = |n: &str| cols.iter().find(|c| c.name == n).unwrap();
        let mut names: Vec<_> = cols.iter().map(|c| c.name.as_str()).collect();
        names.sort();
        assert_eq!(
            names,
            ["extra", "id", "mixed", "name", "score", "tags", "when"]
        );
        assert_eq!(
            (by("id").data_type.to_string(), by("id").nullable),
            ("int64".into(), false)
        );
        assert_eq!(by("id").native_type, "integer");
        assert_eq!(
            (by("name").data_type.to_string(), by("name").nullable),
            ("string".into(), true)
        );
        assert_eq!(
            (by("score").data_type.to_string(), by("score").nullable),
            ("float64".into(), false)
        );
        assert_eq!(
            (by("tags").data_type.to_string(), by("tags").nullable),
            ("array<string>".into(), true)
        );
        assert_eq!(by("when").data_type, DataType::TimestampTz);
        assert_eq!(by("extra").data_type, DataType::Struct);
        assert_eq!(
            (
                by("mixed").data_type.to_string(),
                by("mixed").native_type.as_str()
            ),
            ("json".into(), "mixed")
        );
        for (i, c) in cols.iter().enumerate() {
            assert_eq!(c.ordinal as usize, i + 1);
        }
        let scalars = columns_from_records(&[json!(1), json!(2)]);
        assert_eq!(scalars.len(), 1);
        assert_eq!(scalars[0].name, "value");
    }
}
