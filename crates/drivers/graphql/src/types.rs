//! GraphQL type references → normalized types.
//!
//! | GraphQL | normalized |
//! |---|---|
//! | `Int` | int32 |
//! | `Float` | float64 |
//! | `String`, `ID` | string |
//! | `Boolean` | boolean |
//! | enum | string |
//! | custom scalar `DateTime`, `Timestamp`, `Instant`, `ZonedDateTime`, `OffsetDateTime`, `timestamptz` | timestamp_tz |
//! | custom scalar `LocalDateTime`, `NaiveDateTime`, `timestamp` | timestamp |
//! | custom scalar `Date`, `LocalDate`, `NaiveDate` | date |
//! | custom scalar `Time`, `LocalTime` | time |
//! | custom scalar `JSON`, `JSONObject`, `JSONString`, `jsonb` | json |
//! | custom scalar `UUID`, `uuid` | uuid |
//! | custom scalar `Long`, `BigInt`, `Int64`, `bigint` | int64 |
//! | custom scalar `BigDecimal`, `Decimal`, `numeric` | decimal |
//! | other custom scalars | unknown |
//! | object, interface, union | struct |
//! | `[T]` | `array<T>` |
//! | `T!` | T, not nullable |

use matih_connector_core::DataType;
use serde::Deserialize;

/// A type reference as introspection returns it (`kind`, `name`, `ofType`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TypeRef {
    pub kind: String,
    pub name: Option<String>,
    pub of_type: Option<Box<TypeRef>>,
}

/// How GraphQL spells the type (`[String!]!`).
pub(crate) fn native(t: &TypeRef) -> String {
    match (t.kind.as_str(), &t.of_type) {
        ("NON_NULL", Some(inner)) => format!("{}!", native(inner)),
        ("LIST", Some(inner)) => format!("[{}]", native(inner)),
        _ => t.name.clone().unwrap_or_else(|| "?".to_owned()),
    }
}

/// The normalized type and whether the outermost level accepts null.
pub(crate) fn map(t: &TypeRef) -> (DataType, bool) {
    match (t.kind.as_str(), &t.of_type) {
        ("NON_NULL", Some(inner)) => (map(inner).0, false),
        ("LIST", Some(inner)) => (DataType::array(map(inner).0), true),
        ("SCALAR", _) => (scalar(t.name.as_deref().unwrap_or("")), true),
        ("ENUM", _) => (DataType::String, true),
        ("OBJECT" | "INTERFACE" | "UNION", _) => (DataType::Struct, true),
        _ => (DataType::Unknown, true),
    }
}

/// Built-in scalars by the spec; custom ones by the names common servers
/// (graphql-scalars, Hasura, Spring, async-graphql, Juniper) give them.
pub(crate) fn scalar(name: &str) -> DataType {
    match name {
        "Int" => return DataType::Int32,
        "Float" => return DataType::Float64,
        "String" | "ID" => return DataType::String,
        "Boolean" => return DataType::Boolean,
        // Hasura's (PostgreSQL's) `timestamp` has no zone; graphql-scalars'
        // `Timestamp` is an instant.
        "timestamp" => return DataType::Timestamp,
        _ => {}
    }
    match name.to_ascii_lowercase().as_str() {
        "datetime" | "datetimeutc" | "timestamp" | "timestamptz" | "instant" | "zoneddatetime"
        | "offsetdatetime" | "datetimetz" => DataType::TimestampTz,
        "localdatetime" | "naivedatetime" => DataType::Timestamp,
        "date" | "localdate" | "naivedate" => DataType::Date,
        "time" | "localtime" | "naivetime" | "timetz" => DataType::Time,
        "json" | "jsonobject" | "jsonstring" | "jsonb" | "jsonvalue" => DataType::Json,
        "uuid" => DataType::Uuid,
        "long" | "bigint" | "int64" | "i64" => DataType::Int64,
        "short" | "int16" | "smallint" => DataType::Int16,
        "bigdecimal" | "decimal" | "numeric" => DataType::Decimal {
            precision: None,
            scale: None,
        },
        "byte" | "bytes" | "base64" | "bytea" => DataType::Binary,
        "url" | "uri" | "emailaddress" | "email" | "char" | "string" => DataType::String,
        _ => DataType::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(v: serde_json::Value) -> TypeRef {
        serde_json::from_value(v).unwrap()
    }

    fn named(kind: &str, name: &str) -> serde_json::Value {
        json!({"kind": kind, "name": name, "ofType": null})
    }

    #[test]
    fn scalars() {
        let cases = [
            ("Int", "int32"),
            ("Float", "float64"),
            ("String", "string"),
            ("ID", "string"),
            ("Boolean", "boolean"),
            ("DateTime", "timestamp_tz"),
            ("Instant", "timestamp_tz"),
            ("timestamptz", "timestamp_tz"),
            ("timestamp", "timestamp"),
            ("LocalDateTime", "timestamp"),
            ("Date", "date"),
            ("LocalTime", "time"),
            ("JSON", "json"),
            ("JSONObject", "json"),
            ("jsonb", "json"),
            ("UUID", "uuid"),
            ("Long", "int64"),
            ("BigInt", "int64"),
            ("BigDecimal", "decimal"),
            ("numeric", "decimal"),
            ("Upload", "unknown"),
            ("Money", "unknown"),
        ];
        for (name, want) in cases {
            assert_eq!(scalar(name).to_string(), want, "{name}");
        }
    }

    #[test]
    fn wrappers() {
        let non_null_list_of_non_null = t(json!({"kind": "NON_NULL", "name": null, "ofType":
            {"kind": "LIST", "name": null, "ofType": {"kind": "NON_NULL", "name": null, "ofType": named("SCALAR", "String")}}}));
        assert_eq!(native(&non_null_list_of_non_null), "[String!]!");
        assert_eq!(
            map(&non_null_list_of_non_null),
            (DataType::array(DataType::String), false)
        );

        let nullable_int = t(named("SCALAR", "Int"));
        assert_eq!(
            (native(&nullable_int), map(&nullable_int)),
            ("Int".to_owned(), (DataType::Int32, true))
        );

        let required_enum =
            t(json!({"kind": "NON_NULL", "name": null, "ofType": named("ENUM", "Status")}));
        assert_eq!(map(&required_enum), (DataType::String, false));
        assert_eq!(native(&required_enum), "Status!");

        let object = t(named("OBJECT", "Address"));
        assert_eq!(map(&object), (DataType::Struct, true));
        let list_of_union =
            t(json!({"kind": "LIST", "name": null, "ofType": named("UNION", "SearchResult")}));
        assert_eq!(
            map(&list_of_union),
            (DataType::array(DataType::Struct), true)
        );
        let nested = t(
            json!({"kind": "LIST", "name": null, "ofType": {"kind": "LIST", "name": null, "ofType": named("SCALAR", "Float")}}),
        );
        assert_eq!(map(&nested).0.to_string(), "array<array<float64>>");
    }
}
