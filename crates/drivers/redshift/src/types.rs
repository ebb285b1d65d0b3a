//! Redshift (and PostgreSQL, behind the fake) type names as
//! `information_schema.columns` spells them → the normalized types.

use matih_connector_core::DataType;

/// The normalized type of a column. `udt` is the underlying type name, used
/// for arrays (`_int4`) and user-defined types.
pub(crate) fn normalize(
    data_type: &str,
    udt: &str,
    precision: Option<i64>,
    scale: Option<i64>,
) -> DataType {
    let dt = data_type.to_ascii_lowercase();
    if dt == "array" {
        let inner = udt.strip_prefix('_').unwrap_or(udt);
        return DataType::array(normalize(inner, inner, None, None));
    }
    match dt.as_str() {
        "boolean" | "bool" => DataType::Boolean,
        "smallint" | "int2" => DataType::Int16,
        "integer" | "int" | "int4" => DataType::Int32,
        "bigint" | "int8" => DataType::Int64,
        "real" | "float4" => DataType::Float32,
        "double precision" | "float8" | "float" => DataType::Float64,
        "numeric" | "decimal" => DataType::Decimal {
            precision: precision.map(|p| p as u32),
            scale: scale.map(|s| s as i32),
        },
        "character varying" | "varchar" | "character" | "char" | "bpchar" | "text" | "name"
        | "citext" | "nvarchar" | "nchar" => DataType::String,
        "bytea" | "varbyte" | "binary varying" | "varbinary" => DataType::Binary,
        "date" => DataType::Date,
        "time without time zone" | "time with time zone" | "time" | "timetz" => DataType::Time,
        "timestamp without time zone" | "timestamp" => DataType::Timestamp,
        "timestamp with time zone" | "timestamptz" => DataType::TimestampTz,
        "uuid" => DataType::Uuid,
        "json" | "jsonb" | "super" => DataType::Json,
        d if d.starts_with("interval") => DataType::Interval,
        "user-defined" => match udt {
            "citext" => DataType::String,
            _ => DataType::Unknown,
        },
        // geometry, geography, hllsketch, money, network and range types…
        _ => DataType::Unknown,
    }
}

/// The type as the DDL would spell it: `character varying(256)`,
/// `numeric(18,2)`, `timestamp(3) without time zone`; arrays and
/// user-defined types by their underlying name.
pub(crate) fn native_name(
    data_type: &str,
    udt: &str,
    len: Option<i64>,
    precision: Option<i64>,
    scale: Option<i64>,
    dt_precision: Option<i64>,
) -> String {
    let dt = data_type.to_ascii_lowercase();
    match dt.as_str() {
        "array" => format!("{}[]", udt.strip_prefix('_').unwrap_or(udt)),
        "user-defined" => udt.to_owned(),
        "character varying" | "character" | "varchar" | "char" | "bit" | "bit varying" => match len
        {
            Some(n) => format!("{data_type}({n})"),
            None => data_type.to_owned(),
        },
        "numeric" | "decimal" => match (precision, scale) {
            (Some(p), Some(s)) => format!("{data_type}({p},{s})"),
            _ => data_type.to_owned(),
        },
        "timestamp without time zone"
        | "timestamp with time zone"
        | "time without time zone"
        | "time with time zone" => {
            match dt_precision {
                // 6 is the default: spelled out only when it differs.
                Some(p) if p != 6 => {
                    let (head, tail) = data_type.split_once(' ').unwrap_or((data_type, ""));
                    format!("{head}({p}) {tail}")
                }
                _ => data_type.to_owned(),
            }
        }
        _ => data_type.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_table() {
        // (data_type, udt_name, length, precision, scale, datetime precision, native, normalized)
        type Case<'a> = (
            &'a str,
            &'a str,
            Option<i64>,
            Option<i64>,
            Option<i64>,
            Option<i64>,
            &'a str,
            DataType,
        );
        let cases: &[Case<'_>] = &[
            (
                "boolean",
                "bool",
                None,
                None,
                None,
                None,
                "boolean",
                DataType::Boolean,
            ),
            (
                "smallint",
                "int2",
                None,
                Some(16),
                Some(0),
                None,
                "smallint",
                DataType::Int16,
            ),
            (
                "integer",
                "int4",
                None,
                Some(32),
                Some(0),
                None,
                "integer",
                DataType::Int32,
            ),
            (
                "bigint",
                "int8",
                None,
                Some(64),
                Some(0),
                None,
                "bigint",
                DataType::Int64,
            ),
            (
                "real",
                "float4",
                None,
                Some(24),
                None,
                None,
                "real",
                DataType::Float32,
            ),
            (
                "double precision",
                "float8",
                None,
                Some(53),
                None,
                None,
                "double precision",
                DataType::Float64,
            ),
            (
                "numeric",
                "numeric",
                None,
                Some(18),
                Some(2),
                None,
                "numeric(18,2)",
                DataType::decimal(18, 2),
            ),
            (
                "numeric",
                "numeric",
                None,
                None,
                None,
                None,
                "numeric",
                DataType::Decimal {
                    precision: None,
                    scale: None,
                },
            ),
            (
                "character varying",
                "varchar",
                Some(256),
                None,
                None,
                None,
                "character varying(256)",
                DataType::String,
            ),
            (
                "character varying",
                "varchar",
                None,
                None,
                None,
                None,
                "character varying",
                DataType::String,
            ),
            (
                "character",
                "bpchar",
                Some(3),
                None,
                None,
                None,
                "character(3)",
                DataType::String,
            ),
            (
                "text",
                "text",
                None,
                None,
                None,
                None,
                "text",
                DataType::String,
            ),
            (
                "date",
                "date",
                None,
                None,
                None,
                Some(0),
                "date",
                DataType::Date,
            ),
            (
                "time without time zone",
                "time",
                None,
                None,
                None,
                Some(6),
                "time without time zone",
                DataType::Time,
            ),
            (
                "time with time zone",
                "timetz",
                None,
                None,
                None,
                Some(6),
                "time with time zone",
                DataType::Time,
            ),
            (
                "timestamp without time zone",
                "timestamp",
                None,
                None,
                None,
                Some(6),
                "timestamp without time zone",
                DataType::Timestamp,
            ),
            (
                "timestamp without time zone",
                "timestamp",
                None,
                None,
                None,
                Some(3),
                "timestamp(3) without time zone",
                DataType::Timestamp,
            ),
            (
                "timestamp with time zone",
                "timestamptz",
                None,
                None,
                None,
                Some(6),
                "timestamp with time zone",
                DataType::TimestampTz,
            ),
            (
                "interval",
                "interval",
                None,
                None,
                None,
                Some(6),
                "interval",
                DataType::Interval,
            ),
            (
                "interval year to month",
                "interval",
                None,
                None,
                None,
                None,
                "interval year to month",
                DataType::Interval,
            ),
            (
                "super",
                "super",
                None,
                None,
                None,
                None,
                "super",
                DataType::Json,
            ),
            (
                "jsonb",
                "jsonb",
                None,
                None,
                None,
                None,
                "jsonb",
                DataType::Json,
            ),
            (
                "uuid",
                "uuid",
                None,
                None,
                None,
                None,
                "uuid",
                DataType::Uuid,
            ),
            (
                "bytea",
                "bytea",
                None,
                None,
                None,
                None,
                "bytea",
                DataType::Binary,
            ),
            (
                "binary varying",
                "varbyte",
                Some(64),
                None,
                None,
                None,
                "binary varying",
                DataType::Binary,
            ),
            (
                "geometry",
                "geometry",
                None,
                None,
                None,
                None,
                "geometry",
                DataType::Unknown,
            ),
            (
                "hllsketch",
                "hllsketch",
                None,
                None,
                None,
                None,
                "hllsketch",
                DataType::Unknown,
            ),
            (
                "ARRAY",
                "_int4",
                None,
                None,
                None,
                None,
                "int4[]",
                DataType::array(DataType::Int32),
            ),
            (
                "ARRAY",
                "_text",
                None,
                None,
                None,
                None,
                "text[]",
                DataType::array(DataType::String),
            ),
            (
                "USER-DEFINED",
                "citext",
                None,
                None,
                None,
                None,
                "citext",
                DataType::String,
            ),
            (
                "USER-DEFINED",
                "hstore",
                None,
                None,
                None,
                None,
                "hstore",
                DataType::Unknown,
            ),
        ];
        for (dt, udt, len, p, s, dtp, native, want) in cases {
            assert_eq!(normalize(dt, udt, *p, *s), *want, "{dt} {udt}");
            assert_eq!(
                native_name(dt, udt, *len, *p, *s, *dtp),
                *native,
                "{dt} {udt}"
            );
        }
    }
}
