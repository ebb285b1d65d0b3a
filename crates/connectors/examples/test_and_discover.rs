//! Test a connector and discover its catalog as an embedding service does: one
//! registry with the drivers this build's features enable, an egress policy of
//! the embedder's own, and timeouts tighter than the defaults.
//!
//! ```text
//! cargo run -p matih-connectors --no-default-features --features postgres \
//!     --example test_and_discover -- spec.json
//! ```
//!
//! `spec.json` is the API's create body (`type`, `host`, `port`, `database`,
//! `sslMode`, `sslCaPem`, `credentials`, …). Exit status 1 when the test or the
//! discovery fails, with the error's stable code on standard error.

use std::process::ExitCode;

use matih_connectors::core::{
    prepare, run_prepared_test, ConnectorError, ConnectorSpec, Depth, DiscoveryRequest,
    EgressPolicy, ErrorCode, TestOptions, Timeouts,
};

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Decide by the stable code, never by the message's text.
            let advice = match e.code() {
                ErrorCode::AuthenticationFailed | ErrorCode::PermissionDenied => {
                    "fix the credentials or the grants"
                }
                ErrorCode::EgressDenied => "the egress policy refuses this address",
                _ if e.is_retryable() => "transient: retry later",
                _ => e.code().hint(),
            };
            eprintln!("{}: {} ({advice})", e.code(), e.message());
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), ConnectorError> {
    let path = std::env::args()
        .nth(1)
        .ok_or_else(|| ConnectorError::invalid_config("spec", "usage: test_and_discover SPEC"))?;
    let text = std::fs::read_to_string(&path)
        .map_err(|e| ConnectorError::invalid_config("spec", format!("reading {path}: {e}")))?;
    let spec = ConnectorSpec::from_json(&text)?;

    // One registry for the process: built once, shared by every request.
    let registry = matih_connectors::registry();
    println!(
        "drivers in this build: {:?}",
        matih_connectors::enabled_drivers()
    );
    let driver = registry.get(&spec.connector_type)?;

    let mut cfg = spec.config();
    cfg.timeouts = Timeouts {
        connect_ms: 5_000,
        query_ms: 15_000,
    };
    // Only loopback and the private ranges; link-local and cloud metadata
    // addresses stay denied by default.
    let egress = EgressPolicy::from_lists("127.0.0.0/8,10.0.0.0/8,::1/128", "")?;

    let opts = TestOptions {
        egress: egress.clone(),
        ..Default::default()
    };
    // Checked and parsed once, before any I/O; the test and the connection
    // below reuse it.
    let prepared = prepare(&*driver, &cfg, &spec.credentials)?;
    let report = run_prepared_test(&prepared, &opts).await;
    for step in &report.steps {
        println!(
            "step {:<13} {:>5} ms {}",
            step.name.as_str(),
            step.latency_ms,
            step.error_code.map_or("ok", |c| c.as_str())
        );
    }
    if !report.success {
        let code = report.error_code.unwrap_or(ErrorCode::Internal);
        return Err(ConnectorError::new(code, report.message));
    }
    println!(
        "test passed: {}",
        report.server_version.as_deref().unwrap_or("?")
    );

    let mut conn = prepared.open(&egress).await?;
    let request = DiscoveryRequest {
        depth: Depth::Tables,
        ..Default::default()
    };
    let discovered = conn.discover(&request).await;
    // Close even when discovery failed; its own failure matters less.
    let _ = conn.close().await;
    let catalog = discovered?;
    println!(
        "catalog: {} schemas, {} tables",
        catalog.schemas.len(),
        catalog.table_count()
    );
    for schema in &catalog.schemas {
        for table in &schema.tables {
            println!(
                "  {}.{} rows~{}",
                schema.name,
                table.name,
                table
                    .estimated_rows
                    .map_or_else(|| "?".to_owned(), |n| n.to_string())
            );
        }
    }
    Ok(())
}
