//! Read the catalog model: discover one table and print its columns with the
//! source's native type beside the normalized [`DataType`] every driver maps
//! into, so code downstream (a query planner, a pipeline) never parses a
//! vendor's type names itself.
//!
//! ```text
//! cargo run -p matih-connectors --no-default-features --features postgres \
//!     --example print_columns -- spec.json sales customers
//! ```

use std::process::ExitCode;

use matih_connectors::core::{
    open, ConnectorError, ConnectorSpec, DataType, Depth, DiscoveryRequest, EgressPolicy,
    NameFilter,
};

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}: {}", e.code(), e.message());
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), ConnectorError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [path, schema, table] = args.as_slice() else {
        return Err(ConnectorError::invalid_config(
            "args",
            "usage: print_columns SPEC SCHEMA TABLE",
        ));
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConnectorError::invalid_config("spec", format!("reading {path}: {e}")))?;
    let spec = ConnectorSpec::from_json(&text)?;
    let driver = matih_connectors::registry().get(&spec.connector_type)?;

    // Filters are pushed down to the source: only this table's columns travel.
    let only = |name: &str| NameFilter {
        include: vec![name.to_owned()],
        exclude: vec![],
    };
    let request = DiscoveryRequest {
        depth: Depth::Columns,
        schemas: only(schema),
        tables: only(table),
        ..Default::default()
    };
    let mut conn = open(
        &*driver,
        &spec.config(),
        &spec.credentials,
        &EgressPolicy::default(),
    )
    .await?;
    let discovered = conn.discover(&request).await;
    let _ = conn.close().await;
    let catalog = discovered?;

    let Some(t) = catalog.schema(schema).and_then(|s| s.table(table)) else {
        return Err(ConnectorError::new(
            matih_connectors::core::ErrorCode::DatabaseNotFound,
            format!("no table {schema}.{table}"),
        ));
    };
    println!(
        "{schema}.{table} ({:?}, ~{} rows, primary key {:?})",
        t.kind,
        t.estimated_rows
            .map_or_else(|| "?".to_owned(), |n| n.to_string()),
        t.primary_key
    );
    println!(
        "{:<4} {:<20} {:<28} {:<16} NULL",
        "#", "COLUMN", "NATIVE", "NORMALIZED"
    );
    for c in &t.columns {
        println!(
            "{:<4} {:<20} {:<28} {:<16} {}",
            c.ordinal,
            c.name,
            c.native_type,
            c.data_type.to_string(),
            if c.nullable { "yes" } else { "no" }
        );
        // The normalized type is an enum to match on, not a string to parse.
        if let DataType::Decimal {
            precision: Some(p),
            scale: Some(s),
        } = &c.data_type
        {
            println!("     exact decimal: {p} digits, {s} after the point");
        }
    }
    Ok(())
}
