//! Discovery: the region is one schema; ListTables pages (no server-side name
//! filter exists, so table filters apply here), then per table DescribeTable
//! (key schema, item count, size) and, at column depth, one Scan page of at
//! most `sample_size` items for attribute types. DynamoDB has no call that
//! describes several tables at once; the per-table calls run a few at a time.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, KeyType, TableDescription};
use futures_util::stream::{self, StreamExt};
use matih_connector_core::{
    with_timeout, Catalog, Column, ConnectorError, DataType, Depth, DiscoveryRequest, Schema,
    Table, TableKind,
};
use serde_json::json;

use crate::connection::DynamoConnection;
use crate::types::{declared, observe, Observed};
use matih_connector_core::aws::{from_sdk, parse_error};

/// Tables listed at most; ListTables returns 100 per page.
const MAX_TABLES: usize = 10_000;
/// Items one sample scan reads at most, whatever the request says.
const MAX_SAMPLE: u32 = 1_000;
/// DescribeTable/Scan calls in flight at once.
const CONCURRENCY: usize = 4;

pub(crate) async fn probe(
    conn: &mut DynamoConnection,
    req: &DiscoveryRequest,
) -> Result<(), ConnectorError> {
    if !req.schemas.matches(&conn.cfg.schema) {
        return Ok(());
    }
    let what = "ListTables";
    with_timeout(conn.cfg.aws.timeouts.query(), what, async {
        conn.client
            .list_tables()
            .limit(1)
            .send()
            .await
            .map_err(|e| parse_error(from_sdk(e), what))
    })
    .await
    .map(|_| ())
}

async fn list_tables(conn: &DynamoConnection) -> Result<Vec<String>, ConnectorError> {
    let mut names = Vec::new();
    let mut start: Option<String> = None;
    loop {
        let what = "ListTables";
        let page = with_timeout(conn.cfg.aws.timeouts.query(), what, async {
            conn.client
                .list_tables()
                .set_exclusive_start_table_name(start.clone())
                .send()
                .await
                .map_err(|e| parse_error(from_sdk(e), what))
        })
        .await?;
        names.extend(page.table_names().iter().cloned());
        start = page.last_evaluated_table_name().map(str::to_owned);
        if start.is_none() || names.len() >= MAX_TABLES {
            break;
        }
    }
    names.truncate(MAX_TABLES);
    Ok(names)
}

pub(crate) async fn discover(
    conn: &mut DynamoConnection,
    req: &DiscoveryRequest,
) -> Result<Catalog, ConnectorError> {
    let name = conn.cfg.schema.clone();
    if !req.schemas.matches(&name) {
        return Ok(Catalog::default());
    }
    let mut schema = Schema {
        name,
        comment: None,
        tables: Vec::new(),
    };
    if req.depth >= Depth::Tables {
        let names: Vec<String> = list_tables(conn)
            .await?
            .into_iter()
            .filter(|t| req.tables.matches(t))
            .collect();
        let conn: &DynamoConnection = conn;
        let results: Vec<Result<Table, ConnectorError>> = stream::iter(names)
            .map(|t| describe(conn, t, req))
            .buffered(CONCURRENCY)
            .collect()
            .await;
        for r in results {
            match r {
                Ok(t) => schema.tables.push(t),
                // Dropped between ListTables and DescribeTable.
                Err(e) if e.code() == matih_connector_core::ErrorCode::DatabaseNotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    let mut catalog = Catalog {
        schemas: vec![schema],
    };
    catalog.sort();
    Ok(catalog)
}

async fn describe(
    conn: &DynamoConnection,
    name: String,
    req: &DiscoveryRequest,
) -> Result<Table, ConnectorError> {
    let timeout = conn.cfg.aws.timeouts.query();
    let what = format!("DescribeTable {name}");
    let desc = with_timeout(timeout, &what, async {
        conn.client
            .describe_table()
            .table_name(&name)
            .send()
            .await
            .map_err(|e| parse_error(from_sdk(e), &what).with_context("table", &name))
    })
    .await?
    .table
    .ok_or_else(|| {
        ConnectorError::new(
            matih_connector_core::ErrorCode::ProtocolError,
            format!("{what}: no table in the answer"),
        )
    })?;

    let mut table = table_from(&name, &desc, req.statistics);
    if req.depth >= Depth::Columns {
        let sample = req.sample_size.min(MAX_SAMPLE);
        let items = if sample == 0 {
            Vec::new()
        } else {
            let what = format!("Scan {name}");
            with_timeout(timeout, &what, async {
                conn.client
                    .scan()
                    .table_name(&name)
                    .limit(sample as i32)
                    .send()
                    .await
                    .map_err(|e| parse_error(from_sdk(e), &what).with_context("table", &name))
            })
            .await?
            .items
            .unwrap_or_default()
        };
        table
            .properties
            .insert("sampledItems".into(), json!(items.len()));
        table.columns = columns(&desc, &items);
    }
    Ok(table)
}

/// The key attributes in key-schema order: hash, then range.
fn key_names(desc: &TableDescription) -> Vec<String> {
    let mut keys: Vec<(u8, String)> = desc
        .key_schema()
        .iter()
        .map(|k| {
            let rank = if *k.key_type() == KeyType::Hash { 0 } else { 1 };
            (rank, k.attribute_name().to_owned())
        })
        .collect();
    keys.sort();
    keys.into_iter().map(|(_, n)| n).collect()
}

fn table_from(name: &str, desc: &TableDescription, statistics: bool) -> Table {
    let mut t = Table::new(name, TableKind::Table);
    t.primary_key = key_names(desc);
    if statistics {
        // DescribeTable's figures are refreshed about every six hours.
        t.estimated_rows = desc.item_count().and_then(|n| u64::try_from(n).ok());
        t.size_bytes = desc.table_size_bytes().and_then(|n| u64::try_from(n).ok());
    }
    let p = &mut t.properties;
    if let Some(s) = desc.table_status() {
        p.insert("tableStatus".into(), json!(s.as_str()));
    }
    if let Some(arn) = desc.table_arn() {
        p.insert("tableArn".into(), json!(arn));
    }
    if let Some(m) = desc.billing_mode_summary().and_then(|b| b.billing_mode()) {
        p.insert("billingMode".into(), json!(m.as_str()));
    }
    let gsi: Vec<&str> = desc
        .global_secondary_indexes()
        .iter()
        .filter_map(|i| i.index_name())
        .collect();
    if !gsi.is_empty() {
        p.insert("globalSecondaryIndexes".into(), json!(gsi));
    }
    let lsi: Vec<&str> = desc
        .local_secondary_indexes()
        .iter()
        .filter_map(|i| i.index_name())
        .collect();
    if !lsi.is_empty() {
        p.insert("localSecondaryIndexes".into(), json!(lsi));
    }
    t
}

/// Key attributes first (declared types, refined to int64 when every sampled
/// number is an integer), then every other sampled attribute by name,
/// nullable when some sampled item lacks it or holds NULL.
fn columns(desc: &TableDescription, items: &[HashMap<String, AttributeValue>]) -> Vec<Column> {
    let (mut observed, total) = observe(items.iter());
    let declared_types: HashMap<&str, &str> = desc
        .attribute_definitions()
        .iter()
        .map(|d| (d.attribute_name(), d.attribute_type().as_str()))
        .collect();
    let mut out = Vec::new();
    let mut push = |name: String, native: String, data_type: DataType, nullable: bool| {
        out.push(Column {
            ordinal: out.len() as u32 + 1,
            name: name.into(),
            native_type: native.into(),
            data_type,
            nullable,
            default: None,
            comment: None,
        });
    };
    for key in key_names(desc) {
        let (native, mut ty) = declared(declared_types.get(key.as_str()).copied().unwrap_or("S"));
        if let Some(o) = observed.remove(&key) {
            if native == "N" && o.present > 0 && o.resolve().1 == DataType::Int64 {
                ty = DataType::Int64;
            }
        }
        push(key, native, ty, false);
    }
    for (name, o) in observed {
        let (native, ty) = o.resolve();
        let nullable = nullable(&o, total);
        push(name, native, ty, nullable);
    }
    out
}

fn nullable(o: &Observed, total: usize) -> bool {
    o.present < total || o.types.contains(&crate::types::Seen::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::types::{AttributeDefinition, KeySchemaElement, ScalarAttributeType};

    fn desc() -> TableDescription {
        TableDescription::builder()
            .table_name("orders")
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("sk")
                    .key_type(KeyType::Range)
                    .build()
                    .unwrap(),
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("pk")
                    .key_type(KeyType::Hash)
                    .build()
                    .unwrap(),
            )
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("pk")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .unwrap(),
            )
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("sk")
                    .attribute_type(ScalarAttributeType::N)
                    .build()
                    .unwrap(),
            )
            .item_count(3)
            .table_size_bytes(0)
            .build()
    }

    #[test]
    fn keys_first_then_attributes_with_nullability() {
        let item = |pk: &str, sk: &str, extra: Option<AttributeValue>| {
            let mut m = HashMap::from([
                ("pk".to_owned(), AttributeValue::S(pk.into())),
                ("sk".to_owned(), AttributeValue::N(sk.into())),
                ("always".to_owned(), AttributeValue::Bool(true)),
            ]);
            if let Some(v) = extra {
                m.insert("sometimes".into(), v);
            }
            m
        };
        let items = vec![
            item("a", "1", Some(AttributeValue::S("x".into()))),
            item("b", "2", None),
        ];
        let cols = columns(&desc(), &items);
        let got: Vec<(&str, &str, String, bool)> = cols
            .iter()
            .map(|c| {
                (
                    c.name.as_str(),
                    c.native_type.as_str(),
                    c.data_type.to_string(),
                    c.nullable,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("pk", "S", "string".to_owned(), false),
                ("sk", "N", "int64".to_owned(), false),
                ("always", "BOOL", "boolean".to_owned(), false),
                ("sometimes", "S", "string".to_owned(), true),
            ]
        );
        let t = table_from("orders", &desc(), true);
        assert_eq!(t.primary_key, vec!["pk", "sk"]);
        assert_eq!(t.estimated_rows, Some(3));
        assert_eq!(table_from("orders", &desc(), false).estimated_rows, None);
        // Without samples the keys keep their declared types.
        let cols = columns(&desc(), &[]);
        assert_eq!(
            cols[1].data_type,
            DataType::Decimal {
                precision: Some(38),
                scale: None
            }
        );
    }
}
