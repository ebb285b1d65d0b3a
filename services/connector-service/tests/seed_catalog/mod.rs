//! The catalogs that tests/fixtures/postgres/seed.sql and
//! tests/fixtures/mysql/seed.sql create, written down from the seed SQL, as the
//! service's API must show them after a discovery: every schema, every table and
//! view with its kind and primary key (key order), every column in ordinal order
//! with its native type (as the server spells it: PostgreSQL's `format_type`,
//! MariaDB 10.11's `COLUMN_TYPE`), normalized type (wire form) and nullability.
//!
//! Change these together with the seeds (and the drivers' own fixture tests,
//! which assert the same seeds through the driver API).

#![allow(dead_code)]

/// name, native type, normalized type, nullable — in ordinal order.
pub type Col = (&'static str, &'static str, &'static str, bool);

pub struct SeedTable {
    pub name: &'static str,
    /// `type` on the wire: TABLE, VIEW, MATERIALIZED_VIEW, PARTITIONED.
    pub kind: &'static str,
    pub primary_key: &'static [&'static str],
    pub columns: &'static [Col],
}

pub struct SeedSchema {
    pub name: &'static str,
    pub tables: &'static [SeedTable],
}

const N: bool = true;
const NN: bool = false;

// ---------------------------------------------------------------------------
// PostgreSQL 15: database matih_seed
// ---------------------------------------------------------------------------

const PG_EVENTS_COLUMNS: &[Col] = &[
    ("id", "bigint", "int64", NN),
    ("happened_at", "date", "date", NN),
    ("payload", "jsonb", "json", N),
];

/// Every schema of the database: the seed's four and `public` (where the
/// citext and hstore extensions live; no tables).
pub const POSTGRES: &[SeedSchema] = &[
    SeedSchema {
        name: "Analytics 2024",
        tables: &[
            SeedTable {
                name: "客户",
                kind: "TABLE",
                primary_key: &["编号"],
                columns: &[
                    ("编号", "integer", "int32", NN),
                    ("名字", "text", "string", NN),
                ],
            },
            SeedTable {
                name: "daily metrics",
                kind: "TABLE",
                primary_key: &["day"],
                columns: &[
                    ("day", "date", "date", NN),
                    ("visits", "bigint", "int64", NN),
                ],
            },
        ],
    },
    SeedSchema {
        name: "odd%_schema",
        tables: &[SeedTable {
            name: "odd_table%",
            kind: "TABLE",
            primary_key: &[],
            columns: &[("x", "integer", "int32", N)],
        }],
    },
    SeedSchema {
        name: "public",
        tables: &[],
    },
    SeedSchema {
        name: "sales",
        tables: &[
            SeedTable {
                name: "customers",
                kind: "TABLE",
                primary_key: &["id"],
                columns: &[
                    ("id", "bigint", "int64", NN),
                    ("name", "character varying(200)", "string", NN),
                    // Domain over text.
                    ("email", "sales.email", "string", N),
                    ("ci_login", "citext", "string", N),
                    ("created_at", "timestamp with time zone", "timestamp_tz", NN),
                    // Composite type.
                    ("address", "sales.address", "struct", N),
                    ("attributes", "hstore", "map", N),
                ],
            },
            SeedTable {
                name: "all_types",
                kind: "TABLE",
                primary_key: &["id"],
                // c_dropped is dropped: the columns after it close the gap.
                columns: &[
                    ("id", "integer", "int32", NN),
                    ("c_bool", "boolean", "boolean", N),
                    ("c_int2", "smallint", "int16", N),
                    ("c_int4", "integer", "int32", NN),
                    ("c_int8", "bigint", "int64", N),
                    ("c_float4", "real", "float32", N),
                    ("c_float8", "double precision", "float64", N),
                    ("c_numeric", "numeric", "decimal", N),
                    ("c_num_10_2", "numeric(10,2)", "decimal(10,2)", N),
                    ("c_num_38_0", "numeric(38,0)", "decimal(38,0)", N),
                    ("c_money", "money", "decimal", N),
                    ("c_text", "text", "string", N),
                    ("c_varchar", "character varying(40)", "string", N),
                    ("c_varchar_nl", "character varying", "string", N),
                    ("c_char", "character(3)", "string", N),
                    ("c_name", "name", "string", N),
                    ("c_bytea", "bytea", "binary", N),
                    ("c_date", "date", "date", N),
                    ("c_time", "time without time zone", "time", N),
                    ("c_timetz", "time with time zone", "time", N),
                    ("c_ts", "timestamp without time zone", "timestamp", N),
                    ("c_ts3", "timestamp(3) without time zone", "timestamp", N),
                    ("c_tstz", "timestamp with time zone", "timestamp_tz", N),
                    ("c_interval", "interval", "interval", N),
                    ("c_uuid", "uuid", "uuid", N),
                    ("c_json", "json", "json", N),
                    ("c_jsonb", "jsonb", "json", N),
                    ("c_int_arr", "integer[]", "array<int32>", N),
                    // PostgreSQL does not record array dimensions.
                    ("c_text_2d", "text[]", "array<string>", N),
                    ("c_enum", "sales.order_status", "string", N),
                    // Domain over numeric(12, 2).
                    ("c_domain", "sales.positive_amount", "decimal(12,2)", N),
                    ("c_inet", "inet", "string", N),
                    ("c_cidr", "cidr", "string", N),
                    ("c_macaddr", "macaddr", "string", N),
                    ("c_bit", "bit(8)", "string", N),
                    ("c_varbit", "bit varying(16)", "string", N),
                    ("c_xml", "xml", "string", N),
                    ("c_point", "point", "string", N),
                    ("c_tsvector", "tsvector", "string", N),
                    ("c_oid", "oid", "int64", N),
                    ("c_int4range", "int4range", "string", N),
                    ("c_tstzrange", "tstzrange", "string", N),
                    ("c_enum_arr", "sales.order_status[]", "array<string>", N),
                    // serial: integer NOT NULL with a sequence default.
                    ("c_serial", "integer", "int32", NN),
                    ("c_generated", "integer", "int32", N),
                ],
            },
            SeedTable {
                name: "Order Items",
                kind: "TABLE",
                // Key order, not column order.
                primary_key: &["order_id", "line no"],
                columns: &[
                    ("line no", "integer", "int32", NN),
                    ("order_id", "bigint", "int64", NN),
                    ("select", "text", "string", N),
                    ("user", "text", "string", N),
                    ("table", "integer", "int32", N),
                    ("quantity", "integer", "int32", NN),
                ],
            },
            SeedTable {
                name: "MixedCase",
                kind: "TABLE",
                primary_key: &[],
                columns: &[
                    ("CamelColumn", "text", "string", N),
                    ("lower_column", "integer", "int32", N),
                ],
            },
            SeedTable {
                name: "quote\"d\\name",
                kind: "TABLE",
                primary_key: &[],
                columns: &[("col\"umn", "integer", "int32", N)],
            },
            SeedTable {
                name: "events",
                kind: "PARTITIONED",
                primary_key: &["id", "happened_at"],
                columns: PG_EVENTS_COLUMNS,
            },
            SeedTable {
                name: "events_2024_01",
                kind: "TABLE",
                primary_key: &["id", "happened_at"],
                columns: PG_EVENTS_COLUMNS,
            },
            SeedTable {
                name: "events_2024_02",
                kind: "TABLE",
                primary_key: &["id", "happened_at"],
                columns: PG_EVENTS_COLUMNS,
            },
            // View columns are never NOT NULL in PostgreSQL's catalog.
            SeedTable {
                name: "paid_orders",
                kind: "VIEW",
                primary_key: &[],
                // sum(integer) is bigint.
                columns: &[
                    ("order_id", "bigint", "int64", N),
                    ("quantity", "bigint", "int64", N),
                ],
            },
            SeedTable {
                name: "customer_counts",
                kind: "MATERIALIZED_VIEW",
                primary_key: &[],
                // date_trunc of a timestamptz is a timestamptz; count(*) is bigint.
                columns: &[
                    ("day", "timestamp with time zone", "timestamp_tz", N),
                    ("customers", "bigint", "int64", N),
                ],
            },
        ],
    },
    SeedSchema {
        name: "ventes_été",
        tables: &[SeedTable {
            name: "commandes_été",
            kind: "TABLE",
            primary_key: &["numéro"],
            columns: &[
                ("numéro", "integer", "int32", NN),
                ("montant", "numeric(10,2)", "decimal(10,2)", N),
            ],
        }],
    },
];

// ---------------------------------------------------------------------------
// MariaDB 10.11: the seed's four databases
// ---------------------------------------------------------------------------

const ID_INT: &[Col] = &[("id", "int(11)", "int32", NN)];

pub const MARIADB: &[SeedSchema] = &[
    SeedSchema {
        name: "matih_seed",
        tables: &[
            SeedTable {
                name: "all_types",
                kind: "TABLE",
                primary_key: &["id"],
                columns: &[
                    // Unsigned types widen so every value fits.
                    ("id", "int(10) unsigned", "int64", NN),
                    ("c_bool", "tinyint(1)", "boolean", NN),
                    ("c_tinyint", "tinyint(4)", "int8", N),
                    ("c_tinyint_u", "tinyint(3) unsigned", "int16", N),
                    ("c_smallint", "smallint(6)", "int16", N),
                    ("c_smallint_u", "smallint(5) unsigned", "int32", N),
                    ("c_mediumint", "mediumint(9)", "int32", N),
                    ("c_mediumint_u", "mediumint(8) unsigned", "int32", N),
                    ("c_int", "int(11)", "int32", N),
                    ("c_int_u", "int(10) unsigned", "int64", N),
                    ("c_bigint", "bigint(20)", "int64", N),
                    ("c_bigint_u", "bigint(20) unsigned", "decimal(20,0)", N),
                    ("c_decimal", "decimal(10,2)", "decimal(10,2)", NN),
                    ("c_decimal_38", "decimal(38,0)", "decimal(38,0)", N),
                    ("c_float", "float", "float32", N),
                    ("c_double", "double", "float64", N),
                    ("c_bit1", "bit(1)", "boolean", N),
                    ("c_bit8", "bit(8)", "binary", N),
                    ("c_char", "char(3)", "string", N),
                    ("c_varchar", "varchar(255)", "string", N),
                    ("c_tinytext", "tinytext", "string", N),
                    ("c_text", "text", "string", N),
                    ("c_mediumtext", "mediumtext", "string", N),
                    ("c_longtext", "longtext", "string", N),
                    ("c_binary", "binary(16)", "binary", N),
                    ("c_varbinary", "varbinary(64)", "binary", N),
                    ("c_tinyblob", "tinyblob", "binary", N),
                    ("c_blob", "blob", "binary", N),
                    ("c_mediumblob", "mediumblob", "binary", N),
                    ("c_longblob", "longblob", "binary", N),
                    ("c_enum", "enum('small','medium','large')", "string", NN),
                    ("c_set", "set('a','b','c')", "string", N),
                    // MariaDB's JSON is longtext with a json_valid() check.
                    ("c_json", "longtext", "json", N),
                    ("c_date", "date", "date", N),
                    ("c_time", "time", "time", N),
                    ("c_datetime", "datetime(6)", "timestamp", N),
                    ("c_timestamp", "timestamp", "timestamp_tz", N),
                    ("c_year", "year(4)", "int16", N),
                    ("c_geometry", "geometry", "binary", N),
                    ("c_point", "point", "binary", N),
                    // Added by the MariaDB-only ALTER, after the others.
                    ("c_uuid", "uuid", "uuid", N),
                    ("c_inet6", "inet6", "string", N),
                ],
            },
            SeedTable {
                name: "order",
                kind: "TABLE",
                primary_key: &["select"],
                columns: &[
                    ("select", "int(11)", "int32", NN),
                    ("user", "varchar(40)", "string", NN),
                    ("from", "date", "date", N),
                    ("group", "decimal(5,2)", "decimal(5,2)", N),
                ],
            },
            SeedTable {
                name: "select",
                kind: "TABLE",
                primary_key: &["key"],
                columns: &[
                    ("key", "varchar(10)", "string", NN),
                    ("value", "text", "string", N),
                ],
            },
            SeedTable {
                name: "order_items",
                kind: "TABLE",
                primary_key: &["order_id", "line_no"],
                columns: &[
                    ("line_no", "smallint(5) unsigned", "int32", NN),
                    ("order_id", "int(11)", "int32", NN),
                    ("sku", "varchar(32)", "string", NN),
                    ("qty", "int(11)", "int32", NN),
                    ("price", "decimal(10,2)", "decimal(10,2)", NN),
                ],
            },
            SeedTable {
                name: "no_pk_log",
                kind: "TABLE",
                // A unique key is not a primary key.
                primary_key: &[],
                columns: &[
                    ("at", "datetime(6)", "timestamp", NN),
                    ("message", "text", "string", N),
                    ("level", "enum('info','warn','error')", "string", N),
                ],
            },
            SeedTable {
                name: "defaults_demo",
                kind: "TABLE",
                primary_key: &["id"],
                columns: &[
                    ("id", "int(11)", "int32", NN),
                    ("d_string", "varchar(20)", "string", N),
                    ("d_null", "varchar(10)", "string", N),
                    ("d_null_text", "varchar(10)", "string", N),
                    ("d_empty", "varchar(10)", "string", N),
                    ("d_quote", "varchar(10)", "string", N),
                    ("d_backslash", "varchar(10)", "string", N),
                    ("d_int", "int(11)", "int32", N),
                    ("d_decimal", "decimal(5,2)", "decimal(5,2)", N),
                    ("d_now", "timestamp", "timestamp_tz", N),
                    ("d_expr", "int(11)", "int32", N),
                    ("d_datetime", "datetime", "timestamp", N),
                    ("d_bit", "bit(1)", "boolean", N),
                    ("d_enum", "enum('x','y')", "string", N),
                    ("d_none", "int(11)", "int32", NN),
                ],
            },
            SeedTable {
                name: "MixedCase",
                kind: "TABLE",
                primary_key: &["Id"],
                columns: &[
                    ("Id", "int(11)", "int32", NN),
                    ("CamelCol", "varchar(10)", "string", N),
                    ("lower", "varchar(10)", "string", N),
                ],
            },
            SeedTable {
                name: "with space",
                kind: "TABLE",
                primary_key: &["col with space"],
                columns: &[
                    ("col with space", "int(11)", "int32", NN),
                    ("other col", "varchar(5)", "string", N),
                ],
            },
            SeedTable {
                name: "back`tick",
                kind: "TABLE",
                primary_key: &["a`b"],
                columns: &[("a`b", "int(11)", "int32", NN)],
            },
            SeedTable {
                name: "quote'and\"double",
                kind: "TABLE",
                primary_key: &[],
                columns: &[
                    ("it's", "varchar(10)", "string", N),
                    ("say \"hi\"", "varchar(10)", "string", N),
                ],
            },
            SeedTable {
                name: "ünïcödé_表",
                kind: "TABLE",
                primary_key: &["prénom"],
                columns: &[
                    ("prénom", "varchar(50)", "string", NN),
                    ("名前", "varchar(50)", "string", N),
                ],
            },
            SeedTable {
                name: "rate%_2024",
                kind: "TABLE",
                primary_key: &["id"],
                columns: ID_INT,
            },
            SeedTable {
                name: "rateX_2024",
                kind: "TABLE",
                primary_key: &["id"],
                columns: ID_INT,
            },
            SeedTable {
                name: "events_partitioned",
                kind: "PARTITIONED",
                primary_key: &["id", "created"],
                columns: &[
                    ("id", "bigint(20)", "int64", NN),
                    ("created", "date", "date", NN),
                    ("payload", "varchar(100)", "string", N),
                ],
            },
            // A view column keeps its source's NOT NULL (the left side of a LEFT
            // JOIN included); COUNT() is never NULL, SUM() may be.
            SeedTable {
                name: "order_summary",
                kind: "VIEW",
                primary_key: &[],
                columns: &[
                    ("order_no", "int(11)", "int32", NN),
                    ("customer", "varchar(40)", "string", NN),
                    ("lines", "bigint(21)", "int64", NN),
                    // SUM of int(11) * decimal(10,2): 42 digits, 2 decimals.
                    ("total", "decimal(42,2)", "decimal(42,2)", N),
                ],
            },
            SeedTable {
                name: "v all types",
                kind: "VIEW",
                primary_key: &[],
                columns: &[
                    ("id", "int(10) unsigned", "int64", NN),
                    ("c_varchar", "varchar(255)", "string", N),
                ],
            },
        ],
    },
    SeedSchema {
        name: "Sales Data",
        tables: &[
            SeedTable {
                name: "Q1 Revenue",
                kind: "TABLE",
                primary_key: &["Region Name", "Booked At"],
                columns: &[
                    ("Region Name", "varchar(40)", "string", NN),
                    ("Amount", "decimal(12,2)", "decimal(12,2)", NN),
                    ("Booked At", "datetime", "timestamp", NN),
                ],
            },
            SeedTable {
                name: "customers",
                kind: "TABLE",
                primary_key: &["id"],
                columns: &[
                    ("id", "bigint(20) unsigned", "decimal(20,0)", NN),
                    ("email", "varchar(255)", "string", NN),
                    ("Full Name", "varchar(100)", "string", N),
                ],
            },
            SeedTable {
                name: "Top Customers",
                kind: "VIEW",
                primary_key: &[],
                columns: &[
                    ("id", "bigint(20) unsigned", "decimal(20,0)", NN),
                    ("email", "varchar(255)", "string", NN),
                ],
            },
        ],
    },
    SeedSchema {
        name: "données_été",
        tables: &[SeedTable {
            name: "clients_été",
            kind: "TABLE",
            primary_key: &["id"],
            columns: &[
                ("id", "int(11)", "int32", NN),
                ("ville", "varchar(60)", "string", N),
            ],
        }],
    },
    SeedSchema {
        name: "odd%_db",
        tables: &[SeedTable {
            name: "t",
            kind: "TABLE",
            primary_key: &["id"],
            columns: ID_INT,
        }],
    },
];
