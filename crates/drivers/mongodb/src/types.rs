//! BSON types → normalized types, and the merge of the types a field shows
//! across sampled documents.

use matih_connector_core::DataType;
use mongodb::bson::{spec::BinarySubtype, Bson};

/// What one field held across the sample: the BSON type aliases seen (as
/// `$type` spells them) and, for arrays, what their elements held.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Observed {
    pub kinds: Vec<&'static str>,
    pub elements: Option<Box<Observed>>,
}

/// The `$type` alias of a BSON value (uuid for binary subtype 4).
pub(crate) fn bson_alias(v: &Bson) -> &'static str {
    match v {
        Bson::Double(_) => "double",
        Bson::String(_) => "string",
        Bson::Document(_) => "object",
        Bson::Array(_) => "array",
        Bson::Binary(b) if b.subtype == BinarySubtype::Uuid => "uuid",
        Bson::Binary(_) => "binData",
        Bson::Undefined => "undefined",
        Bson::ObjectId(_) => "objectId",
        Bson::Boolean(_) => "bool",
        Bson::DateTime(_) => "date",
        Bson::Null => "null",
        Bson::RegularExpression(_) => "regex",
        Bson::DbPointer(_) => "dbPointer",
        Bson::JavaScriptCode(_) => "javascript",
        Bson::Symbol(_) => "symbol",
        Bson::JavaScriptCodeWithScope(_) => "javascriptWithScope",
        Bson::Int32(_) => "int",
        Bson::Timestamp(_) => "timestamp",
        Bson::Int64(_) => "long",
        Bson::Decimal128(_) => "decimal",
        Bson::MinKey => "minKey",
        Bson::MaxKey => "maxKey",
    }
}

impl Observed {
    pub fn add(&mut self, v: &Bson) {
        let alias = bson_alias(v);
        if !self.kinds.contains(&alias) {
            self.kinds.push(alias);
        }
        if let Bson::Array(items) = v {
            let el = self.elements.get_or_insert_with(Default::default);
            for item in items {
                el.add(item);
            }
        }
    }

    /// The native type spelled for the catalog: one alias, `array<…>`, or the
    /// aliases seen joined with `|` when they disagree.
    pub fn native(&self) -> String {
        let kinds: Vec<&str> = self
            .kinds
            .iter()
            .copied()
            .filter(|k| *k != "null")
            .collect();
        match kinds.as_slice() {
            [] => "null".to_owned(),
            ["array"] => match &self.elements {
                Some(e) if !e.kinds.is_empty() => format!("array<{}>", e.native()),
                _ => "array".to_owned(),
            },
            [one] => (*one).to_owned(),
            many => {
                // Sorted: the sample's order is random, the catalog's must not be.
                let mut sorted = many.to_vec();
                sorted.sort_unstable();
                sorted.join("|")
            }
        }
    }

    pub fn data_type(&self) -> DataType {
        let kinds: Vec<&str> = self
            .kinds
            .iter()
            .copied()
            .filter(|k| *k != "null")
            .collect();
        match kinds.as_slice() {
            [] => DataType::Unknown,
            ["array"] => DataType::array(match &self.elements {
                Some(e) => e.data_type(),
                None => DataType::Unknown,
            }),
            [one] => scalar(one),
            many => {
                // Numbers that disagree only in width widen; anything else is mixed.
                if many.iter().all(|k| matches!(*k, "int" | "long")) {
                    DataType::Int64
                } else if many.iter().all(|k| matches!(*k, "int" | "long" | "double")) {
                    DataType::Float64
                } else {
                    DataType::Json
                }
            }
        }
    }

    pub fn saw_null(&self) -> bool {
        self.kinds.contains(&"null") || self.kinds.contains(&"undefined")
    }
}

/// The normalized type of a single BSON type alias.
pub(crate) fn scalar(alias: &str) -> DataType {
    match alias {
        "double" => DataType::Float64,
        "string" | "symbol" | "javascript" | "regex" => DataType::String,
        "object" | "javascriptWithScope" | "dbPointer" => DataType::Struct,
        "array" => DataType::array(DataType::Unknown),
        "binData" => DataType::Binary,
        "uuid" => DataType::Uuid,
        // ObjectIds are 12 bytes shown as 24 hex digits; as text they join and sort.
        "objectId" => DataType::String,
        "bool" => DataType::Boolean,
        "date" => DataType::TimestampTz,
        "int" => DataType::Int32,
        "long" => DataType::Int64,
        // A Decimal128 holds 34 significant digits with a floating exponent.
        "decimal" => DataType::Decimal {
            precision: Some(34),
            scale: None,
        },
        // Replication timestamps: seconds and an ordinal, not a wall-clock time.
        "timestamp" => DataType::Int64,
        _ => DataType::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::{doc, oid::ObjectId, Binary, DateTime, Decimal128};

    #[test]
    fn scalar_table() {
        let cases: Vec<(Bson, &str, DataType)> = vec![
            (Bson::Int32(1), "int", DataType::Int32),
            (Bson::Int64(1), "long", DataType::Int64),
            (Bson::Double(1.5), "double", DataType::Float64),
            (
                Bson::Decimal128(Decimal128::from_bytes([0; 16])),
                "decimal",
                DataType::Decimal {
                    precision: Some(34),
                    scale: None,
                },
            ),
            (Bson::String("a".into()), "string", DataType::String),
            (Bson::Boolean(true), "bool", DataType::Boolean),
            (
                Bson::DateTime(DateTime::from_millis(0)),
                "date",
                DataType::TimestampTz,
            ),
            (
                Bson::ObjectId(ObjectId::new()),
                "objectId",
                DataType::String,
            ),
            (
                Bson::Binary(Binary {
                    subtype: BinarySubtype::Generic,
                    bytes: vec![1],
                }),
                "binData",
                DataType::Binary,
            ),
            (
                Bson::Binary(Binary {
                    subtype: BinarySubtype::Uuid,
                    bytes: vec![0; 16],
                }),
                "uuid",
                DataType::Uuid,
            ),
            (Bson::Document(doc! {"a": 1}), "object", DataType::Struct),
            (Bson::Null, "null", DataType::Unknown),
            (
                Bson::Timestamp(mongodb::bson::Timestamp {
                    time: 1,
                    increment: 2,
                }),
                "timestamp",
                DataType::Int64,
            ),
        ];
        for (v, native, ty) in cases {
            let mut o = Observed::default();
            o.add(&v);
            assert_eq!(o.native(), native, "{v:?}");
            assert_eq!(o.data_type(), ty, "{v:?}");
        }
    }

    #[test]
    fn merges_across_documents() {
        let mut o = Observed::default();
        o.add(&Bson::Int32(1));
        o.add(&Bson::Int64(2));
        assert_eq!(
            (o.data_type(), o.native().as_str()),
            (DataType::Int64, "int|long")
        );
        o.add(&Bson::Double(1.0));
        assert_eq!(o.data_type(), DataType::Float64);
        o.add(&Bson::String("x".into()));
        assert_eq!(o.data_type(), DataType::Json);
        o.add(&Bson::Null);
        assert!(o.saw_null());

        let mut a = Observed::default();
        a.add(&Bson::Array(vec![Bson::String("x".into())]));
        a.add(&Bson::Array(vec![]));
        assert_eq!(
            (a.data_type(), a.native().as_str()),
            (DataType::array(DataType::String), "array<string>")
        );
        let mut e = Observed::default();
        e.add(&Bson::Array(vec![]));
        assert_eq!(
            (e.data_type(), e.native().as_str()),
            (DataType::array(DataType::Unknown), "array")
        );
        let mut d = Observed::default();
        d.add(&Bson::Array(vec![Bson::Document(doc! {"sku": "A"})]));
        assert_eq!(d.data_type(), DataType::array(DataType::Struct));
    }
}
