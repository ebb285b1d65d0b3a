//! `matih-connector-service`: serve the API (default) or mint a development token.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use matih_connector_service::app::{app, AppState};
use matih_connector_service::auth::{load_or_create_hs256_secret, mint_hs256, Role};
use matih_connector_service::config::{Config, CONFIG_HELP};
use uuid::Uuid;

#[derive(Parser, Debug)]
#[command(name = "matih-connector-service", version, about = "MATIH connector service: REST API for tenant connectors",
    after_long_help = format!("{CONFIG_HELP}\n{}\n{}", matih_connector_service::health::config::HEALTH_HELP, matih_connector_service::limits::LIMITS_HELP), after_help = "Run with --help for the configuration variables.")]
struct Cli {
    /// TOML configuration file (also MATIH_CONFIG).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the API (the default).
    Serve,
    /// Print a development token signed with the HS256 secret the service uses.
    MintToken {
        #[arg(long, value_enum, default_value = "platform-admin")]
        role: RoleArg,
        /// Tenant id, for tenant-admin tokens.
        #[arg(long)]
        tenant: Option<Uuid>,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: i64,
        #[arg(long, default_value = "dev")]
        sub: String,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum RoleArg {
    PlatformAdmin,
    TenantAdmin,
}

fn main() -> anyhow::Result<()> {
    // Before any thread exists: it may start the binary again in place.
    matih_connector_service::malloc::limit_arenas();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?
        .block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Config::load(cli.config.as_deref())?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::MintToken {
            role,
            tenant,
            ttl,
            sub,
        } => {
            let role = match role {
                RoleArg::PlatformAdmin => Role::PlatformAdmin,
                RoleArg::TenantAdmin => Role::TenantAdmin,
            };
            anyhow::ensure!(
                role == Role::PlatformAdmin || tenant.is_some(),
                "a tenant-admin token needs --tenant <id>"
            );
            std::fs::create_dir_all(&config.data_dir)?;
            let secret =
                load_or_create_hs256_secret(config.jwt_secret.as_deref(), &config.data_dir)?;
            println!("{}", mint_hs256(&secret, role, tenant, &sub, ttl));
            Ok(())
        }
        Command::Serve => serve(config).await,
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&config.log).unwrap_or_else(|_| "info".into()),
        )
        .init();
    let state = AppState::from_config(&config).await?;
    // Start-up reconciliation before serving, then periodically, on every
    // store: slot counts from rows, orphan secrets removed.
    matih_connector_service::reconcile::run_logged(&state).await;
    let reconciler = matih_connector_service::reconcile::spawn(
        state.clone(),
        std::time::Duration::from_secs(config.reconcile_interval_secs),
    );
    let health = matih_connector_service::health::start(&state, &config.health)?;
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    tracing::info!(
        listen = %listener.local_addr()?,
        metadata_store = %config.database_url_redacted(),
        secret_store = state.secrets.kind(),
        drivers = ?state.registry.types().map(|t| t.as_str().to_owned()).collect::<Vec<_>>(),
        "matih-connector-service listening"
    );
    let egress = &state.settings.egress;
    if egress.profile == matih_connector_core::EgressProfile::Embedded {
        tracing::warn!(
            egress_profile = egress.profile.as_str(),
            "egress profile embedded: connectors may reach loopback and private networks \
             (set MATIH_EGRESS_PROFILE=production on a shared deployment)"
        );
    } else {
        tracing::info!(egress_profile = egress.profile.as_str(), "egress profile");
    }
    let limits = state.settings.limits.clone();
    matih_connector_service::server::serve(listener, app(state), &limits, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    if let Some(h) = health {
        h.stop();
    }
    reconciler.abort();
    Ok(())
}
