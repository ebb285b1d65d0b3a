//! JSON Schema (what both protocols describe streams with) to the normalized
//! type system, and stream schemas to columns in the order the connector
//! declared them.

use std::fmt;

use matih_connector_core::{Column, DataType};
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

/// A JSON object's members in document order (serde_json's map sorts them
/// unless a crate-wide feature says otherwise; column order matters).
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Ordered(pub Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Ordered;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Value>()? {
                    out.push((k, v));
                }
                Ok(Ordered(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// A stream's JSON schema: only what columns need.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct StreamSchema {
    #[serde(default)]
    pub properties: Ordered,
}

impl StreamSchema {
    /// One column per top-level property, in declaration order. A column is
    /// nullable when its type admits `null` (or names no type at all).
    pub fn columns(&self) -> Vec<Column> {
        self.properties
            .0
            .iter()
            .enumerate()
            .map(|(i, (name, schema))| {
                let t = json_type(schema);
                Column {
                    name: name.clone().into(),
                    ordinal: i as u32 + 1,
                    native_type: t.native.into(),
                    data_type: t.data_type,
                    nullable: t.nullable,
                    default: None,
                    comment: schema
                        .get("description")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                }
            })
            .collect()
    }
}

/// What one property's schema says.
#[derive(Debug, PartialEq)]
pub(crate) struct JsonType {
    /// The schema's type as the connector spelled it, e.g. `string(date-time)`
    /// or `integer|null`.
    pub native: String,
    pub data_type: DataType,
    pub nullable: bool,
}

/// Maps one property schema. `type` may be a name or a list with `null`;
/// `anyOf`/`oneOf` alternatives are merged the same way. Airbyte's
/// `airbyte_type` refines timestamps and integers.
pub(crate) fn json_type(schema: &Value) -> JsonType {
    let mut names: Vec<String> = Vec::new();
    collect_types(schema, &mut names, 0);
    let nullable = names.is_empty() || names.iter().any(|n| n == "null");
    let non_null: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|n| *n != "null")
        .collect();
    let format = schema.get("format").and_then(Value::as_str);
    let airbyte = schema.get("airbyte_type").and_then(Value::as_str);
    let data_type = match non_null.as_slice() {
        [] => DataType::Unknown,
        [one] => scalar(one, format, airbyte, schema),
        // A number that may be an integer is still a number.
        [a, b] if (*a == "integer" && *b == "number") || (*a == "number" && *b == "integer") => {
            DataType::Float64
        }
        _ => DataType::Json,
    };
    let mut native = if names.is_empty() {
        String::from("any")
    } else {
        names.join("|")
    };
    if let Some(f) = format {
        native = format!("{native}({f})");
    }
    if let Some(a) = airbyte {
        native = format!("{native}[{a}]");
    }
    JsonType {
        native,
        data_type,
        nullable,
    }
}

fn collect_types(schema: &Value, out: &mut Vec<String>, depth: usize) {
    if depth > 8 {
        return;
    }
    let mut push = |n: &str| {
        if !out.iter().any(|x| x == n) {
            out.push(n.to_owned());
        }
    };
    match schema.get("type") {
        Some(Value::String(s)) => push(s),
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).for_each(push),
        _ => {}
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(Value::Array(alts)) = schema.get(key) {
            for alt in alts {
                collect_types(alt, out, depth + 1);
            }
        }
    }
}

fn scalar(name: &str, format: Option<&str>, airbyte: Option<&str>, schema: &Value) -> DataType {
    match (name, airbyte, format) {
        (_, Some("timestamp_without_timezone"), _) => DataType::Timestamp,
        (_, Some("timestamp_with_timezone"), _) => DataType::TimestampTz,
        (_, Some("time_without_timezone" | "time_with_timezone"), _) => DataType::Time,
        ("string", _, Some("date-time")) => DataType::TimestampTz,
        ("string", _, Some("date")) => DataType::Date,
        ("string", _, Some("time")) => DataType::Time,
        ("string", _, Some("uuid")) => DataType::Uuid,
        ("string", _, Some("duration")) => DataType::Interval,
        ("string", _, Some("binary" | "byte" | "base64")) => DataType::Binary,
        ("string", _, _) => DataType::String,
        ("integer", _, _) => DataType::Int64,
        ("number", Some("integer" | "big_integer"), _) => DataType::Int64,
        ("number", _, _) => DataType::Float64,
        ("boolean", _, _) => DataType::Boolean,
        ("object", _, _) => DataType::Struct,
        ("array", _, _) => match schema.get("items") {
            Some(items) if items.is_object() => DataType::array(json_type(items).data_type),
            _ => DataType::array(DataType::Unknown),
        },
        _ => DataType::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_schema_types_map_to_normalized_types() {
        let cases = [
            (json!({"type": "string"}), DataType::String, false, "string"),
            (
                json!({"type": ["string", "null"]}),
                DataType::String,
                true,
                "string|null",
            ),
            (
                json!({"type": ["integer"]}),
                DataType::Int64,
                false,
                "integer",
            ),
            (
                json!({"type": ["null", "number"]}),
                DataType::Float64,
                true,
                "null|number",
            ),
            (
                json!({"type": "boolean"}),
                DataType::Boolean,
                false,
                "boolean",
            ),
            (
                json!({"type": "string", "format": "date-time"}),
                DataType::TimestampTz,
                false,
                "string(date-time)",
            ),
            (
                json!({"type": ["null", "string"], "format": "date-time", "airbyte_type": "timestamp_without_timezone"}),
                DataType::Timestamp,
                true,
                "null|string(date-time)[timestamp_without_timezone]",
            ),
            (
                json!({"type": "string", "format": "date"}),
                DataType::Date,
                false,
                "string(date)",
            ),
            (
                json!({"type": "string", "format": "time"}),
                DataType::Time,
                false,
                "string(time)",
            ),
            (
                json!({"type": "string", "format": "uuid"}),
                DataType::Uuid,
                false,
                "string(uuid)",
            ),
            (
                json!({"type": "number", "airbyte_type": "integer"}),
                DataType::Int64,
                false,
                "number[integer]",
            ),
            (
                json!({"type": ["object", "null"], "properties": {}}),
                DataType::Struct,
                true,
                "object|null",
            ),
            (
                json!({"type": "array", "items": {"type": "integer"}}),
                DataType::array(DataType::Int64),
                false,
                "array",
            ),
            (
                json!({"type": "array"}),
                DataType::array(DataType::Unknown),
                false,
                "array",
            ),
            (
                json!({"anyOf": [{"type": "string"}, {"type": "null"}]}),
                DataType::String,
                true,
                "string|null",
            ),
            (
                json!({"type": ["integer", "number"]}),
                DataType::Float64,
                false,
                "integer|number",
            ),
            (
                json!({"type": ["string", "integer"]}),
                DataType::Json,
                false,
                "string|integer",
            ),
            (json!({}), DataType::Unknown, true, "any"),
        ];
        for (schema, dt, nullable, native) in cases {
            let t = json_type(&schema);
            assert_eq!(t.data_type, dt, "{schema}");
            assert_eq!(t.nullable, nullable, "{schema}");
            assert_eq!(t.native, native, "{schema}");
        }
    }

    #[test]
    fn columns_keep_declaration_order() {
        let s: StreamSchema = serde_json::from_str(
            r#"{"properties": {"zeta": {"type": "integer"}, "alpha": {"type": ["string", "null"], "description": "first name"}}}"#,
        )
        .unwrap();
        let cols = s.columns();
        assert_eq!(cols[0].name, "zeta");
        assert_eq!(cols[0].ordinal, 1);
        assert_eq!(cols[1].name, "alpha");
        assert_eq!(cols[1].ordinal, 2);
        assert_eq!(cols[1].comment.as_deref(), Some("first name"));
    }
}
