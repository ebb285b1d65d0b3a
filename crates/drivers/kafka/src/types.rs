//! Message payloads → columns: JSON objects give their top-level fields,
//! anything else a single binary `value` column.

use std::collections::BTreeMap;

use matih_connector_core::{Column, DataType};
use serde_json::Value;

/// What one field held across the sampled messages (JSON type names).
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Observed {
    kinds: Vec<&'static str>,
    elements: Option<Box<Observed>>,
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

impl Observed {
    pub fn add(&mut self, v: &Value) {
        let k = json_kind(v);
        if !self.kinds.contains(&k) {
            self.kinds.push(k);
        }
        if let Value::Array(items) = v {
            let el = self.elements.get_or_insert_with(Default::default);
            for i in items {
                el.add(i);
            }
        }
    }

    fn non_null(&self) -> Vec<&'static str> {
        let mut k: Vec<&'static str> = self
            .kinds
            .iter()
            .copied()
            .filter(|k| *k != "null")
            .collect();
        k.sort_unstable();
        k
    }

    pub fn native(&self) -> String {
        match self.non_null().as_slice() {
            [] => "null".into(),
            ["array"] => match &self.elements {
                Some(e) if !e.kinds.is_empty() => format!("array<{}>", e.native()),
                _ => "array".into(),
            },
            [one] => (*one).into(),
            many => many.join("|"),
        }
    }

    pub fn data_type(&self) -> DataType {
        match self.non_null().as_slice() {
            [] => DataType::Unknown,
            ["boolean"] => DataType::Boolean,
            ["integer"] => DataType::Int64,
            ["number"] | ["integer", "number"] => DataType::Float64,
            ["string"] => DataType::String,
            ["object"] => DataType::Struct,
            ["array"] => DataType::array(
                self.elements
                    .as_ref()
                    .map(|e| e.data_type())
                    .unwrap_or(DataType::Unknown),
            ),
            _ => DataType::Json,
        }
    }

    pub fn saw_null(&self) -> bool {
        self.kinds.contains(&"null")
    }
}

/// Columns for sampled payloads (None for a message without a value). JSON
/// objects only → their fields, in order of first appearance (keys of one
/// message in sorted order), nullable when
/// absent from some message or null; otherwise one `value` column.
pub(crate) fn infer_columns(payloads: &[Option<Vec<u8>>]) -> Vec<Column> {
    let mut objects = Vec::with_capacity(payloads.len());
    for p in payloads {
        match p.as_deref().map(serde_json::from_slice::<Value>) {
            Some(Ok(Value::Object(o))) => objects.push(o),
            _ => {
                return vec![Column {
                    name: "value".into(),
                    ordinal: 1,
                    native_type: "bytes".into(),
                    data_type: DataType::Binary,
                    nullable: true,
                    default: None,
                    comment: None,
                }]
            }
        }
    }
    let mut order: Vec<String> = Vec::new();
    let mut seen: BTreeMap<String, (Observed, usize)> = BTreeMap::new();
    for o in &objects {
        // Sorted here: serde_json keeps insertion order when another crate in
        // the build enables `preserve_order`, and the catalog must not depend
        // on which crates are linked.
        let mut fields: Vec<(&String, &Value)> = o.iter().collect();
        fields.sort_by(|a, b| a.0.cmp(b.0));
        for (k, v) in fields {
            let e = seen.entry(k.clone()).or_insert_with(|| {
                order.push(k.clone());
                (Observed::default(), 0)
            });
            e.0.add(v);
            e.1 += 1;
        }
    }
    order
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let (obs, n) = &seen[name];
            Column {
                name: name.clone().into(),
                ordinal: i as u32 + 1,
                native_type: obs.native().into(),
                data_type: obs.data_type(),
                nullable: *n < objects.len() || obs.saw_null(),
                default: None,
                comment: None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Option<Vec<u8>> {
        Some(s.as_bytes().to_vec())
    }

    #[test]
    fn json_type_table() {
        let cases = [
            ("true", "boolean", DataType::Boolean),
            ("1", "integer", DataType::Int64),
            ("1.5", "number", DataType::Float64),
            ("\"x\"", "string", DataType::String),
            ("{\"a\":1}", "object", DataType::Struct),
            ("[1,2]", "array<integer>", DataType::array(DataType::Int64)),
            ("[]", "array", DataType::array(DataType::Unknown)),
            ("null", "null", DataType::Unknown),
        ];
        for (json, native, ty) in cases {
            let mut o = Observed::default();
            o.add(&serde_json::from_str(json).unwrap());
            assert_eq!(
                (o.native(), o.data_type()),
                (native.to_owned(), ty),
                "{json}"
            );
        }
    }

    #[test]
    fn columns_from_messages() {
        let cols = infer_columns(&[
            p(r#"{"id":1,"total":9.5,"tag":"a"}"#),
            p(r#"{"id":2,"total":3,"note":null}"#),
        ]);
        let got: Vec<_> = cols
            .iter()
            .map(|c| {
                (
                    c.name.as_str(),
                    c.native_type.as_str(),
                    c.data_type.clone(),
                    c.nullable,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("id", "integer", DataType::Int64, false),
                ("tag", "string", DataType::String, true),
                ("total", "integer|number", DataType::Float64, false),
                ("note", "null", DataType::Unknown, true),
            ]
        );
        for odd in [
            vec![p("not json")],
            vec![p("[1]")],
            vec![None],
            vec![p("{\"a\":1}"), p("42")],
        ] {
            let cols = infer_columns(&odd);
            assert_eq!(
                (cols.len(), cols[0].name.as_str(), &cols[0].data_type),
                (1, "value", &DataType::Binary)
            );
        }
        assert!(infer_columns(&[]).is_empty());
    }
}
