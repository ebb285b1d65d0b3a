//! `matih-connectors`: test a connector or discover its catalog from a spec file.
//!
//! The spec file is the API's create body (`type`, `host`, `port`, `database`,
//! `schema`, `sslEnabled`, `sslMode`, `sslCaPem`, `credentials`, `metadata`);
//! `-` reads standard input. Results go to standard output as JSON; progress and
//! logs go to standard error.

use std::io::Read;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, Parser, Subcommand, ValueEnum};
use matih_connector_core::{
    open, run_test, ConnectorError, ConnectorSpec, Depth, DiscoveryRequest, EgressPolicy,
    NameFilter, TestOptions,
};

#[derive(Parser)]
#[command(
    name = "matih-connectors",
    version,
    about = "Test MATIH connectors and discover their catalogs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the step-wise connectivity test and print its report as JSON.
    /// Exit status: 0 when the test passes, 1 when it fails, 2 on a bad spec.
    Test(TestArgs),
    /// Discover the catalog and print it as JSON.
    /// Exit status: 0 on success, 1 when discovery fails, 2 on a bad spec.
    Discover(DiscoverArgs),
    /// List the drivers compiled into this build with their descriptors.
    Drivers,
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
    runtime.block_on(async {
        match cli.command {
            Command::Test(args) => cmd_test(args).await,
            Command::Discover(args) => cmd_discover(args).await,
            Command::Drivers => cmd_drivers(),
        }
    })
}

fn print_json(value: &impl serde::Serialize) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(e) => eprintln!("error: cannot render JSON: {e}"),
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

async fn cmd_test(args: TestArgs) -> ExitCode {
    let (spec, egress) = match load(&args.common) {
        Ok(v) => v,
        Err(e) => return bad_input(e),
    };
    let driver = match matih_connectors::registry().get(&spec.connector_type) {
        Ok(d) => d,
        Err(e) => return bad_input(BadInput(e)),
    };
    // A spec that cannot pass validation is a bad spec (status 2), not a
    // failed test; the report would only say the same thing at step one.
    let cfg = spec.config();
    if let Err(e) = cfg
        .validate_common()
        .and_then(|_| driver.validate(&cfg, &spec.credentials))
    {
        return bad_input(BadInput(e));
    }
    eprintln!("testing {} connector …", spec.connector_type);
    let opts = TestOptions {
        egress,
        discovery: args.filters.request(),
    };
    let report = run_test(&*driver, &cfg, &spec.credentials, &opts).await;
    for step in &report.steps {
        eprintln!(
            "  {:<15} {:>6} ms  {}",
            step.name.as_str(),
            step.latency_ms,
            if step.success {
                "ok".to_owned()
            } else {
                format!("{:?}", step.error_code)
            }
        );
    }
    print_json(&report);
    if report.success {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

async fn cmd_discover(args: DiscoverArgs) -> ExitCode {
    let (spec, egress) = match load(&args.common) {
        Ok(v) => v,
        Err(e) => return bad_input(e),
    };
    let driver = match matih_connectors::registry().get(&spec.connector_type) {
        Ok(d) => d,
        Err(e) => return bad_input(BadInput(e)),
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

    let cfg = spec.config();
    if let Err(e) = cfg
        .validate_common()
        .and_then(|_| driver.validate(&cfg, &spec.credentials))
    {
        return bad_input(BadInput(e));
    }
    let started = Instant::now();
    eprintln!("connecting to {} …", spec.connector_type);
    let mut conn = match open(&*driver, &cfg, &spec.credentials, &egress).await {
        Ok(c) => c,
        Err(e) => return failed(&e),
    };
    eprintln!(
        "connected in {} ms; discovering …",
        started.elapsed().as_millis()
    );
    let discovered = matih_connector_core::with_timeout(
        cfg.timeouts.query() * 10,
        "discovery",
        conn.discover(&req),
    )
    .await;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), conn.close()).await;
    match discovered {
        Ok(catalog) => {
            eprintln!(
                "discovered {} schemas, {} tables, {} columns in {} ms",
                catalog.schemas.len(),
                catalog.table_count(),
                catalog.column_count(),
                started.elapsed().as_millis()
            );
            print_json(&catalog);
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

fn cmd_drivers() -> ExitCode {
    let registry = matih_connectors::registry();
    let descriptors: Vec<_> = registry.descriptors().collect();
    print_json(&descriptors);
    ExitCode::SUCCESS
}
