//! `matih-connectors`: test a connector or discover its catalog from a spec file.
//!
//! The spec file is the API's create body (`type`, `host`, `port`, `database`,
//! `schema`, `sslEnabled`, `sslMode`, `sslCaPem`, `credentials`, `metadata`);
//! `-` reads standard input. Results go to standard output as JSON (or, for
//! `discover --output table`, as a table); progress and logs go to standard
//! error, progress lines naming each step's wire code and message
//! (`connect  9 ms  PERMISSION_DENIED  …`). `--quiet` leaves progress out.
//! `--custom-types FILE` adds the custom connector types (Airbyte sources,
//! Singer taps) of a TOML file of `[custom_types.NAME]` tables.

use std::io::Read;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, Parser, Subcommand, ValueEnum};
use matih_connector_core::{
    prepare, run_prepared_test, Catalog, ConnectorError, ConnectorSpec, Depth, DiscoveryRequest,
    EgressPolicy, NameFilter, StepReport, TestOptions,
};

#[derive(Parser)]
#[command(
    name = "matih-connectors",
    version,
    about = "Test MATIH connectors and discover their catalogs"
)]
struct Cli {
    /// No progress lines on standard error; results and errors only.
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the step-wise connectivity test and print its report as JSON.
    /// Exit status: 0 when the test passes, 1 when it fails, 2 on a bad spec.
    Test(TestArgs),
    /// Discover the catalog and print it as JSON (or a table, `--output table`).
    /// Exit status: 0 on success, 1 when discovery fails, 2 on a bad spec.
    Discover(DiscoverArgs),
    /// List the drivers compiled into this build (and the custom types of
    /// `--custom-types`) with their descriptors.
    Drivers(DriversArgs),
}

#[derive(Args)]
struct DriversArgs {
    #[command(flatten)]
    custom: CustomTypesArg,
}

#[derive(Args)]
struct CustomTypesArg {
    /// Custom connector types: a TOML file of `[custom_types.NAME]` tables
    /// (protocol, command, env, timeout_secs, max_output_bytes), the same
    /// tables as the service's configuration.
    #[arg(long = "custom-types", value_name = "FILE")]
    custom_types: Option<std::path::PathBuf>,
}

impl CustomTypesArg {
    /// Every compiled driver plus the file's custom types.
    fn registry(&self) -> Result<matih_connectors::Registry, BadInput> {
        let mut registry = matih_connectors::registry();
        if let Some(path) = &self.custom_types {
            let text = std::fs::read_to_string(path).map_err(|e| {
                BadInput(ConnectorError::invalid_config(
                    "custom_types",
                    format!("cannot read {}: {e}", path.display()),
                ))
            })?;
            matih_connectors::install_custom_types(&mut registry, &[&text]).map_err(BadInput)?;
        }
        Ok(registry)
    }
}

#[derive(Args)]
struct Common {
    /// Connector spec (JSON, the API's create body); `-` reads standard input.
    #[arg(long, value_name = "FILE")]
    spec: String,
    /// CIDR networks that may be reached (repeatable); when given, nothing else may.
    #[arg(long = "egress-allow", value_name = "CIDR")]
    egress_allow: Vec<String>,
    /// CIDR networks that may not be reached (repeatable), on top of the default
    /// denial of link-local and cloud metadata addresses.
    #[arg(long = "egress-deny", value_name = "CIDR")]
    egress_deny: Vec<String>,
    #[command(flatten)]
    custom: CustomTypesArg,
}

#[derive(Args)]
struct TestArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    filters: Filters,
}

#[derive(Args)]
struct Filters {
    /// Only schemas matching this glob (`*`, `?`; repeatable).
    #[arg(long = "include-schema", value_name = "PATTERN")]
    include_schema: Vec<String>,
    /// Leave out schemas matching this glob (repeatable).
    #[arg(long = "exclude-schema", value_name = "PATTERN")]
    exclude_schema: Vec<String>,
    /// Only tables matching this glob (repeatable).
    #[arg(long = "include-table", value_name = "PATTERN")]
    include_table: Vec<String>,
    /// Leave out tables matching this glob (repeatable).
    #[arg(long = "exclude-table", value_name = "PATTERN")]
    exclude_table: Vec<String>,
}

#[derive(Args)]
struct DiscoverArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    filters: Filters,
    /// How deep to go.
    #[arg(long, value_enum, default_value_t = DepthArg::Columns)]
    depth: DepthArg,
    /// Skip row estimates and sizes.
    #[arg(long)]
    no_statistics: bool,
    /// Documents, objects or messages sampled per table where fields are inferred.
    #[arg(long, default_value_t = 100)]
    sample_size: u32,
    /// Include the source's system schemas.
    #[arg(long)]
    include_system: bool,
    /// `json` (the catalog model) or `table` (schemas, tables, row estimates,
    /// sizes, column counts; for people).
    #[arg(long, value_enum, default_value_t = OutputArg::Json)]
    output: OutputArg,
}

#[derive(Clone, Copy, PartialEq, ValueEnum)]
enum OutputArg {
    Json,
    Table,
}

#[derive(Clone, Copy, ValueEnum)]
enum DepthArg {
    Schemas,
    Tables,
    Columns,
}

impl Filters {
    fn request(&self) -> DiscoveryRequest {
        DiscoveryRequest {
            schemas: NameFilter {
                include: self.include_schema.clone(),
                exclude: self.exclude_schema.clone(),
            },
            tables: NameFilter {
                include: self.include_table.clone(),
                exclude: self.exclude_table.clone(),
            },
            ..Default::default()
        }
    }
}

/// A failure before anything ran: exit status 2.
struct BadInput(ConnectorError);

fn main() -> ExitCode {
    matih_connector_core::tls::install_default_provider();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MATIH_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let progress = Progress { quiet: cli.quiet };
    runtime.block_on(async {
        match cli.command {
            Command::Test(args) => cmd_test(args, progress).await,
            Command::Discover(args) => cmd_discover(args, progress).await,
            Command::Drivers(args) => cmd_drivers(args),
        }
    })
}

/// Progress lines on standard error, unless `--quiet`.
#[derive(Clone, Copy)]
struct Progress {
    quiet: bool,
}

impl Progress {
    fn line(self, text: impl std::fmt::Display) {
        if !self.quiet {
            eprintln!("{text}");
        }
    }
}

/// One step of a connectivity test as a progress line: its wire code and
/// message when it failed (`connect  9 ms  PERMISSION_DENIED  Access denied …`).
fn step_line(step: &StepReport) -> String {
    let outcome = if step.success {
        "ok".to_owned()
    } else {
        let code = step.error_code.map_or("FAILED", |c| c.as_str());
        match step.message.as_deref() {
            Some(m) => format!("{code}  {}", one_line(m)),
            None => code.to_owned(),
        }
    };
    format!(
        "  {:<15} {:>6} ms  {outcome}",
        step.name.as_str(),
        step.latency_ms
    )
}

/// A message on one line: a source's multi-line answer would break the layout.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Streams the JSON to standard output: a catalog of 400k columns is never
/// held a second time as text.
fn print_json(value: &impl serde::Serialize) {
    use std::io::Write;
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
    let written = serde_json::to_writer_pretty(&mut out, value)
        .map_err(std::io::Error::from)
        .and_then(|()| writeln!(out))
        .and_then(|()| out.flush());
    if let Err(e) = written {
        eprintln!("error: cannot write JSON: {e}");
    }
}

fn error_json(err: &ConnectorError) -> serde_json::Value {
    serde_json::json!({
        "errorCode": err.code(),
        "message": err.report_message(),
        "retryable": err.is_retryable(),
        "context": err.context().iter().map(|(k, v)| (k.to_string(), serde_json::Value::String(v.clone()))).collect::<serde_json::Map<_, _>>(),
    })
}

fn bad_input(err: BadInput) -> ExitCode {
    eprintln!("error: {}", err.0.report_message());
    print_json(&error_json(&err.0));
    ExitCode::from(2)
}

fn load(common: &Common) -> Result<(ConnectorSpec, EgressPolicy), BadInput> {
    let text = if common.spec == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).map_err(|e| {
            BadInput(ConnectorError::invalid_config(
                "spec",
                format!("cannot read standard input: {e}"),
            ))
        })?;
        s
    } else {
        std::fs::read_to_string(&common.spec).map_err(|e| {
            BadInput(ConnectorError::invalid_config(
                "spec",
                format!("cannot read {}: {e}", common.spec),
            ))
        })?
    };
    let spec = ConnectorSpec::from_json(&text).map_err(BadInput)?;
    let egress = EgressPolicy::from_lists(
        &common.egress_allow.join(","),
        &common.egress_deny.join(","),
    )
    .map_err(BadInput)?;
    Ok((spec, egress))
}

async fn cmd_test(args: TestArgs, progress: Progress) -> ExitCode {
    let (spec, egress) = match load(&args.common) {
        Ok(v) => v,
        Err(e) => return bad_input(e),
    };
    let driver = match args
        .common
        .custom
        .registry()
        .and_then(|r| r.get(&spec.connector_type).map_err(BadInput))
    {
        Ok(d) => d,
        Err(e) => return bad_input(e),
    };
    // A spec that cannot pass validation is a bad spec (status 2), not a
    // failed test; the report would only say the same thing at step one.
    let prepared = match prepare(&*driver, &spec.config(), &spec.credentials) {
        Ok(p) => p,
        Err(e) => return bad_input(BadInput(e)),
    };
    progress.line(format_args!("testing {} connector …", spec.connector_type));
    let opts = TestOptions {
        egress,
        discovery: args.filters.request(),
    };
    let report = run_prepared_test(&prepared, &opts).await;
    for step in &report.steps {
        progress.line(step_line(step));
    }
    print_json(&report);
    if report.success {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

async fn cmd_discover(args: DiscoverArgs, progress: Progress) -> ExitCode {
    let (spec, egress) = match load(&args.common) {
        Ok(v) => v,
        Err(e) => return bad_input(e),
    };
    let driver = match args
        .common
        .custom
        .registry()
        .and_then(|r| r.get(&spec.connector_type).map_err(BadInput))
    {
        Ok(d) => d,
        Err(e) => return bad_input(e),
    };
    let mut req = args.filters.request();
    req.depth = match args.depth {
        DepthArg::Schemas => Depth::Schemas,
        DepthArg::Tables => Depth::Tables,
        DepthArg::Columns => Depth::Columns,
    };
    req.statistics = !args.no_statistics;
    req.sample_size = args.sample_size;
    req.include_system = args.include_system;

    let prepared = match prepare(&*driver, &spec.config(), &spec.credentials) {
        Ok(p) => p,
        Err(e) => return bad_input(BadInput(e)),
    };
    let started = Instant::now();
    progress.line(format_args!("connecting to {} …", spec.connector_type));
    let mut conn = match prepared.open(&egress).await {
        Ok(c) => c,
        Err(e) => return failed(&e),
    };
    progress.line(format_args!(
        "connected in {} ms; discovering …",
        started.elapsed().as_millis()
    ));
    let discovered = matih_connector_core::with_timeout(
        prepared.timeouts().query() * 10,
        "discovery",
        conn.discover(&req),
    )
    .await;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), conn.close()).await;
    match discovered {
        Ok(catalog) => {
            progress.line(format_args!(
                "discovered {} schemas, {} tables, {} columns in {} ms",
                catalog.schemas.len(),
                catalog.table_count(),
                catalog.column_count(),
                started.elapsed().as_millis()
            ));
            match args.output {
                OutputArg::Json => print_json(&catalog),
                OutputArg::Table => print!("{}", catalog_table(&catalog)),
            }
            ExitCode::SUCCESS
        }
        Err(e) => failed(&e),
    }
}

fn failed(e: &ConnectorError) -> ExitCode {
    eprintln!("error: {}", e.report_message());
    print_json(&error_json(e));
    ExitCode::from(1)
}

fn cmd_drivers(args: DriversArgs) -> ExitCode {
    let registry = match args.custom.registry() {
        Ok(r) => r,
        Err(e) => return bad_input(e),
    };
    let descriptors: Vec<_> = registry.descriptors().collect();
    print_json(&descriptors);
    ExitCode::SUCCESS
}

/// The catalog as a table for people: one row per table (or per schema without
/// tables), with row estimates, sizes and column counts; `-` where unknown.
fn catalog_table(catalog: &Catalog) -> String {
    let mut rows = vec![[
        "SCHEMA".to_owned(),
        "TABLE".to_owned(),
        "KIND".to_owned(),
        "ROWS (EST.)".to_owned(),
        "SIZE".to_owned(),
        "COLUMNS".to_owned(),
    ]];
    let dash = || "-".to_owned();
    for schema in &catalog.schemas {
        if schema.tables.is_empty() {
            rows.push([schema.name.clone(), dash(), dash(), dash(), dash(), dash()]);
        }
        for t in &schema.tables {
            rows.push([
                schema.name.clone(),
                t.name.clone(),
                serde_json::to_value(t.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_else(dash),
                t.estimated_rows.map_or_else(dash, |n| n.to_string()),
                t.size_bytes.map_or_else(dash, human_size),
                if t.columns.is_empty() {
                    dash()
                } else {
                    t.columns.len().to_string()
                },
            ]);
        }
    }
    let mut widths = [0usize; 6];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .enumerate()
            // Numbers right-aligned, names left-aligned.
            .map(|(i, (cell, w))| {
                if i >= 3 {
                    format!("{cell:>w$}")
                } else {
                    format!("{cell:<w$}")
                }
            })
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// Bytes in binary units: `812 B`, `96.0 KiB`, `1.5 GiB`.
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_in_binary_units() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1024), "1.0 KiB");
        assert_eq!(human_size(98_304), "96.0 KiB");
        assert_eq!(human_size(3 * 1024 * 1024 * 1024 / 2), "1.5 GiB");
    }

    #[test]
    fn failed_step_line_has_the_wire_code_and_one_line_message() {
        let step = StepReport {
            name: matih_connector_core::Step::Connect,
            success: false,
            latency_ms: 9,
            error_code: Some(matih_connector_core::ErrorCode::PermissionDenied),
            message: Some("Access denied for user 'reader'@'%'\n to database 'db'".into()),
        };
        assert_eq!(
            step_line(&step),
            "  connect              9 ms  PERMISSION_DENIED  Access denied for user 'reader'@'%' to database 'db'"
        );
    }
}
