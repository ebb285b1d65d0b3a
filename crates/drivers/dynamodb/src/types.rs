//! DynamoDB attribute types → normalized types, and the inference that merges
//! what a bounded scan saw into one column per attribute.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_dynamodb::types::AttributeValue;
use matih_connector_core::DataType;

/// The DynamoDB type descriptor of one value (`S`, `N`, `B`, `BOOL`, `NULL`,
/// `M`, `L`, `SS`, `NS`, `BS`), with `N` split by whether the number is an
/// integer that fits 64 bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Seen {
    S,
    NInt,
    NDec,
    B,
    Bool,
    Null,
    M,
    L,
    Ss,
    NsInt,
    NsDec,
    Bs,
}

impl Seen {
    pub fn descriptor(self) -> &'static str {
        match self {
            Seen::S => "S",
            Seen::NInt | Seen::NDec => "N",
            Seen::B => "B",
            Seen::Bool => "BOOL",
            Seen::Null => "NULL",
            Seen::M => "M",
            Seen::L => "L",
            Seen::Ss => "SS",
            Seen::NsInt | Seen::NsDec => "NS",
            Seen::Bs => "BS",
        }
    }
}

fn is_int(n: &str) -> bool {
    n.trim().parse::<i64>().is_ok()
}

/// A DynamoDB number: decimal, up to 38 significant digits.
fn number() -> DataType {
    DataType::Decimal {
        precision: Some(38),
        scale: None,
    }
}

pub(crate) fn seen(v: &AttributeValue) -> Option<Seen> {
    Some(match v {
        AttributeValue::S(_) => Seen::S,
        AttributeValue::N(n) if is_int(n) => Seen::NInt,
        AttributeValue::N(_) => Seen::NDec,
        AttributeValue::B(_) => Seen::B,
        AttributeValue::Bool(_) => Seen::Bool,
        AttributeValue::Null(_) => Seen::Null,
        AttributeValue::M(_) => Seen::M,
        AttributeValue::L(_) => Seen::L,
        AttributeValue::Ss(_) => Seen::Ss,
        AttributeValue::Ns(ns) if ns.iter().all(|n| is_int(n)) => Seen::NsInt,
        AttributeValue::Ns(_) => Seen::NsDec,
        AttributeValue::Bs(_) => Seen::Bs,
        _ => return None,
    })
}

/// A key attribute's declared type (`AttributeDefinitions`): S, N or B.
pub(crate) fn declared(scalar: &str) -> (String, DataType) {
    match scalar {
        "S" => ("S".into(), DataType::String),
        "N" => ("N".into(), number()),
        "B" => ("B".into(), DataType::Binary),
        other => (other.to_owned(), DataType::Unknown),
    }
}

/// What a scan saw of one attribute.
#[derive(Debug, Default)]
pub(crate) struct Observed {
    pub types: BTreeSet<Seen>,
    /// Items holding the attribute.
    pub present: usize,
    /// Element types seen inside lists.
    pub list_elements: BTreeSet<Seen>,
}

impl Observed {
    pub fn add(&mut self, v: &AttributeValue) {
        self.present += 1;
        if let Some(s) = seen(v) {
            self.types.insert(s);
        }
        if let AttributeValue::L(items) = v {
            self.list_elements.extend(items.iter().filter_map(seen));
        }
    }

    /// The native type (descriptors joined with `|` when values disagree) and
    /// the normalized type. NULL values only add nullability.
    pub fn resolve(&self) -> (String, DataType) {
        let non_null: BTreeSet<Seen> = self
            .types
            .iter()
            .copied()
            .filter(|t| *t != Seen::Null)
            .collect();
        let descriptors: BTreeSet<&str> = non_null.iter().map(|t| t.descriptor()).collect();
        let native = if descriptors.is_empty() {
            "NULL".to_owned()
        } else {
            descriptors.into_iter().collect::<Vec<_>>().join("|")
        };
        (native, merge(&non_null, &self.list_elements))
    }
}

fn scalar_type(t: Seen) -> DataType {
    match t {
        Seen::S => DataType::String,
        Seen::NInt => DataType::Int64,
        Seen::NDec => number(),
        Seen::B => DataType::Binary,
        Seen::Bool => DataType::Boolean,
        Seen::Null => DataType::Unknown,
        Seen::M => DataType::Struct,
        Seen::L => DataType::array(DataType::Unknown),
        Seen::Ss => DataType::array(DataType::String),
        Seen::NsInt => DataType::array(DataType::Int64),
        Seen::NsDec => DataType::array(number()),
        Seen::Bs => DataType::array(DataType::Binary),
    }
}

/// One normalized type for the types seen: integers widen to decimals when
/// any value has a fraction; anything else mixed becomes `json`, which can
/// carry every DynamoDB value.
fn merge(types: &BTreeSet<Seen>, list_elements: &BTreeSet<Seen>) -> DataType {
    let v: Vec<Seen> = types.iter().copied().collect();
    match v.as_slice() {
        [] => DataType::Unknown,
        [Seen::L] => {
            let inner: BTreeSet<Seen> = list_elements
                .iter()
                .copied()
                .filter(|t| *t != Seen::Null)
                .collect();
            match merge(&inner, &BTreeSet::new()) {
                DataType::Json => DataType::array(DataType::Json),
                t => DataType::array(t),
            }
        }
        [one] => scalar_type(*one),
        [Seen::NInt, Seen::NDec] => number(),
        [Seen::NsInt, Seen::NsDec] => DataType::array(number()),
        _ => DataType::Json,
    }
}

/// Every attribute of the sampled items, by name.
pub(crate) fn observe<'a>(
    items: impl IntoIterator<Item = &'a std::collections::HashMap<String, AttributeValue>>,
) -> (BTreeMap<String, Observed>, usize) {
    let mut out: BTreeMap<String, Observed> = BTreeMap::new();
    let mut n = 0;
    for item in items {
        n += 1;
        for (k, v) in item {
            out.entry(k.clone()).or_default().add(v);
        }
    }
    (out, n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_types::Blob;
    use std::collections::HashMap;

    fn s(x: &str) -> AttributeValue {
        AttributeValue::S(x.into())
    }
    fn n(x: &str) -> AttributeValue {
        AttributeValue::N(x.into())
    }

    #[test]
    fn single_types_map() {
        let cases: Vec<(Vec<AttributeValue>, &str, DataType)> = vec![
            (vec![s("a")], "S", DataType::String),
            (vec![n("1"), n("-20")], "N", DataType::Int64),
            (
                vec![n("1.5")],
                "N",
                DataType::Decimal {
                    precision: Some(38),
                    scale: None,
                },
            ),
            (
                vec![n("1"), n("2.25")],
                "N",
                DataType::Decimal {
                    precision: Some(38),
                    scale: None,
                },
            ),
            (
                vec![n("99999999999999999999")],
                "N",
                DataType::Decimal {
                    precision: Some(38),
                    scale: None,
                },
            ),
            (
                vec![AttributeValue::B(Blob::new(vec![1u8]))],
                "B",
                DataType::Binary,
            ),
            (vec![AttributeValue::Bool(true)], "BOOL", DataType::Boolean),
            (vec![AttributeValue::Null(true)], "NULL", DataType::Unknown),
            (
                vec![AttributeValue::M(HashMap::new())],
                "M",
                DataType::Struct,
            ),
            (
                vec![AttributeValue::L(vec![s("x"), s("y")])],
                "L",
                DataType::array(DataType::String),
            ),
            (
                vec![AttributeValue::L(vec![n("1"), s("y")])],
                "L",
                DataType::array(DataType::Json),
            ),
            (
                vec![AttributeValue::L(vec![])],
                "L",
                DataType::array(DataType::Unknown),
            ),
            (
                vec![AttributeValue::Ss(vec!["a".into()])],
                "SS",
                DataType::array(DataType::String),
            ),
            (
                vec![AttributeValue::Ns(vec!["1".into()])],
                "NS",
                DataType::array(DataType::Int64),
            ),
            (
                vec![AttributeValue::Ns(vec!["1.5".into()])],
                "NS",
                DataType::array(DataType::Decimal {
                    precision: Some(38),
                    scale: None,
                }),
            ),
            (
                vec![AttributeValue::Bs(vec![Blob::new(vec![0u8])])],
                "BS",
                DataType::array(DataType::Binary),
            ),
            (vec![s("a"), n("1")], "N|S", DataType::Json),
            (
                vec![s("a"), AttributeValue::Null(true)],
                "S",
                DataType::String,
            ),
        ];
        for (values, native, want) in cases {
            let mut o = Observed::default();
            for v in &values {
                o.add(v);
            }
            assert_eq!(o.resolve(), (native.to_owned(), want.clone()), "{values:?}");
        }
    }

    #[test]
    fn declared_key_types() {
        assert_eq!(declared("S").1, DataType::String);
        assert_eq!(
            declared("N").1,
            DataType::Decimal {
                precision: Some(38),
                scale: None
            }
        );
        assert_eq!(declared("B").1, DataType::Binary);
    }

    #[test]
    fn observe_counts_presence() {
        let a: HashMap<String, AttributeValue> =
            [("k".to_owned(), s("1")), ("x".to_owned(), n("1"))].into();
        let b: HashMap<String, AttributeValue> = [("k".to_owned(), s("2"))].into();
        let (obs, total) = observe([&a, &b]);
        assert_eq!(total, 2);
        assert_eq!(obs["k"].present, 2);
        assert_eq!(obs["x"].present, 1);
    }
}
