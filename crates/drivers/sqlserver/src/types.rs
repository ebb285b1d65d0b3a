//! SQL Server type names → the normalized types, and the type's spelling as
//! a DDL author would write it (`nvarchar(50)`, `decimal(10,2)`).

use matih_connector_core::DataType;

/// A column's type facts as `sys.columns`/`sys.types` report them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ColumnType<'a> {
    /// The system type's name (an alias type's base type).
    pub base: &'a str,
    /// Bytes; -1 for `max`.
    pub max_length: i32,
    pub precision: i32,
    pub scale: i32,
}

/// The normalized type.
pub(crate) fn normalize(t: &ColumnType<'_>) -> DataType {
    match t.base.to_ascii_lowercase().as_str() {
        "bit" => DataType::Boolean,
        // tinyint is unsigned 0..255: int16 holds every value.
        "tinyint" | "smallint" => DataType::Int16,
        "int" => DataType::Int32,
        "bigint" => DataType::Int64,
        "real" => DataType::Float32,
        "float" => {
            // float(n): n ≤ 24 is stored as real; sys.columns reports precision 24 or 53.
            if t.precision > 0 && t.precision <= 24 {
                DataType::Float32
            } else {
                DataType::Float64
            }
        }
        "decimal" | "numeric" => DataType::Decimal {
            precision: Some(t.precision.max(0) as u32),
            scale: Some(t.scale),
        },
        "money" => DataType::decimal(19, 4),
        "smallmoney" => DataType::decimal(10, 4),
        "char" | "varchar" | "nchar" | "nvarchar" | "text" | "ntext" | "sysname" | "xml" => {
            DataType::String
        }
        "binary" | "varbinary" | "image" | "timestamp" | "rowversion" => DataType::Binary,
        "date" => DataType::Date,
        "time" => DataType::Time,
        "datetime" | "datetime2" | "smalldatetime" => DataType::Timestamp,
        "datetimeoffset" => DataType::TimestampTz,
        "uniqueidentifier" => DataType::Uuid,
        "json" => DataType::Json,
        // sql_variant, hierarchyid, geometry, geography, vector…
        _ => DataType::Unknown,
    }
}

/// The native spelling: user-declared name plus the length, precision or
/// scale the base type takes.
pub(crate) fn native_name(declared: &str, t: &ColumnType<'_>) -> String {
    if !declared.eq_ignore_ascii_case(t.base) {
        // Alias types are declared by name, without arguments.
        return declared.to_owned();
    }
    let len = |chars_per_byte: i32| {
        if t.max_length == -1 {
            "max".to_owned()
        } else {
            (t.max_length / chars_per_byte).to_string()
        }
    };
    match t.base.to_ascii_lowercase().as_str() {
        "char" | "varchar" | "binary" | "varbinary" => format!("{declared}({})", len(1)),
        "nchar" | "nvarchar" => format!("{declared}({})", len(2)),
        "decimal" | "numeric" => format!("{declared}({},{})", t.precision, t.scale),
        "datetime2" | "time" | "datetimeoffset" => format!("{declared}({})", t.scale),
        "float" => format!("{declared}({})", t.precision),
        _ => declared.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ct(base: &str, max_length: i32, precision: i32, scale: i32) -> ColumnType<'_> {
        ColumnType {
            base,
            max_length,
            precision,
            scale,
        }
    }

    #[test]
    fn type_table() {
        let cases: &[(&str, ColumnType<'_>, &str, DataType)] = &[
            ("bit", ct("bit", 1, 1, 0), "bit", DataType::Boolean),
            (
                "tinyint",
                ct("tinyint", 1, 3, 0),
                "tinyint",
                DataType::Int16,
            ),
            (
                "smallint",
                ct("smallint", 2, 5, 0),
                "smallint",
                DataType::Int16,
            ),
            ("int", ct("int", 4, 10, 0), "int", DataType::Int32),
            ("bigint", ct("bigint", 8, 19, 0), "bigint", DataType::Int64),
            ("real", ct("real", 4, 24, 0), "real", DataType::Float32),
            (
                "float",
                ct("float", 8, 53, 0),
                "float(53)",
                DataType::Float64,
            ),
            (
                "float",
                ct("float", 4, 24, 0),
                "float(24)",
                DataType::Float32,
            ),
            (
                "decimal",
                ct("decimal", 9, 10, 2),
                "decimal(10,2)",
                DataType::decimal(10, 2),
            ),
            (
                "numeric",
                ct("numeric", 17, 38, 0),
                "numeric(38,0)",
                DataType::decimal(38, 0),
            ),
            (
                "money",
                ct("money", 8, 19, 4),
                "money",
                DataType::decimal(19, 4),
            ),
            (
                "smallmoney",
                ct("smallmoney", 4, 10, 4),
                "smallmoney",
                DataType::decimal(10, 4),
            ),
            (
                "varchar",
                ct("varchar", 50, 0, 0),
                "varchar(50)",
                DataType::String,
            ),
            (
                "varchar",
                ct("varchar", -1, 0, 0),
                "varchar(max)",
                DataType::String,
            ),
            (
                "nvarchar",
                ct("nvarchar", 100, 0, 0),
                "nvarchar(50)",
                DataType::String,
            ),
            (
                "nvarchar",
                ct("nvarchar", -1, 0, 0),
                "nvarchar(max)",
                DataType::String,
            ),
            (
                "nchar",
                ct("nchar", 20, 0, 0),
                "nchar(10)",
                DataType::String,
            ),
            ("text", ct("text", 16, 0, 0), "text", DataType::String),
            ("xml", ct("xml", -1, 0, 0), "xml", DataType::String),
            (
                "varbinary",
                ct("varbinary", -1, 0, 0),
                "varbinary(max)",
                DataType::Binary,
            ),
            (
                "binary",
                ct("binary", 16, 0, 0),
                "binary(16)",
                DataType::Binary,
            ),
            ("image", ct("image", 16, 0, 0), "image", DataType::Binary),
            (
                "rowversion",
                ct("timestamp", 8, 0, 0),
                "rowversion",
                DataType::Binary,
            ),
            ("date", ct("date", 3, 10, 0), "date", DataType::Date),
            ("time", ct("time", 5, 16, 7), "time(7)", DataType::Time),
            (
                "datetime",
                ct("datetime", 8, 23, 3),
                "datetime",
                DataType::Timestamp,
            ),
            (
                "datetime2",
                ct("datetime2", 8, 27, 7),
                "datetime2(7)",
                DataType::Timestamp,
            ),
            (
                "smalldatetime",
                ct("smalldatetime", 4, 16, 0),
                "smalldatetime",
                DataType::Timestamp,
            ),
            (
                "datetimeoffset",
                ct("datetimeoffset", 10, 34, 7),
                "datetimeoffset(7)",
                DataType::TimestampTz,
            ),
            (
                "uniqueidentifier",
                ct("uniqueidentifier", 16, 0, 0),
                "uniqueidentifier",
                DataType::Uuid,
            ),
            ("json", ct("json", -1, 0, 0), "json", DataType::Json),
            (
                "sql_variant",
                ct("sql_variant", 8016, 0, 0),
                "sql_variant",
                DataType::Unknown,
            ),
            (
                "geography",
                ct("geography", -1, 0, 0),
                "geography",
                DataType::Unknown,
            ),
            (
                "hierarchyid",
                ct("hierarchyid", 892, 0, 0),
                "hierarchyid",
                DataType::Unknown,
            ),
            // An alias type keeps its declared name and maps by its base type.
            ("Phone", ct("varchar", 20, 0, 0), "Phone", DataType::String),
            (
                "sysname",
                ct("nvarchar", 256, 0, 0),
                "sysname",
                DataType::String,
            ),
        ];
        for (declared, t, native, want) in cases {
            assert_eq!(normalize(t), *want, "{declared}");
            assert_eq!(native_name(declared, t), *native, "{declared}");
        }
    }
}
