//! The `tenantry` command line: run any subset of Tenantry's services, or
//! apply migrations. It lives in the library so that a test can start the very
//! same program as a separate process (`tenantry-tests`' `tenantry-process`).

use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::{Config, Overrides};
use crate::services::{self, ServiceKind};
use clap::{Args, Parser, Subcommand};

mod config;
mod remote;
mod schema;
mod serve;

/// Tenantry: organizations, memberships, authorization, billing and audit for
/// multi-tenant software, as gRPC services.
///
/// Configuration comes from built-in defaults, then the TOML file given with
/// --config, then TENANTRY_* environment variables (`__` separates nested
/// keys: TENANTRY_LOG__LEVEL=debug; DATABASE_URL and NATS_URL are read too),
/// then these flags. Every key has a variable: `tenantry config explain`
/// lists them all with their types, defaults and meanings, and `tenantry
/// config check` validates a configuration without starting. With no
/// configuration at all, `tenantry serve` keeps its data in ./.tenantry
/// (SQLite), uses the in-process bus, serves gRPC on 127.0.0.1:50051 and
/// HTTP on 127.0.0.1:8080.
#[derive(Debug, Parser)]
#[command(name = "tenantry", version, propagate_version = true)]
struct Cli {
    /// A TOML configuration file.
    #[arg(long, global = true, env = "TENANTRY_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    #[command(flatten)]
    remote: remote::Globals,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the selected services (all by default) until SIGTERM or SIGINT.
    ///
    /// On a signal the process stops accepting calls, reports NOT_SERVING,
    /// lets in-flight calls finish, then flushes the outbox relays.
    Serve(serve::ServeArgs),
    /// Apply the selected services' database migrations, then exit.
    Migrate {
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Instance administration.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Every configuration key explained, and a configuration checked
    /// without starting.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Registered resource types as code: validate and test schema files
    /// offline, diff and apply them against a server.
    #[command(subcommand)]
    Schema(schema::SchemaCommand),
    #[command(flatten)]
    Remote(remote::Command),
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Make an existing user a platform administrator (the first one, before
    /// any administrator can do it over the API). Runs against the database.
    Bootstrap {
        #[command(flatten)]
        common: CommonArgs,
        /// The user's email address.
        #[arg(long)]
        email: String,
    },
}

#[derive(Debug, Args)]
struct CommonArgs {
    /// Comma-separated services: identity, organization, rbac, billing, audit,
    /// gateway. Default: all.
    #[arg(long, env = "TENANTRY_SERVICES", value_name = "LIST", value_parser = parse_services)]
    services: Option<ServiceList>,
    /// Data directory for the embedded database and generated secrets.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Database URL: postgres://… (production) or sqlite:… (default: SQLite in
    /// the data directory).
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
    /// NATS URL (nats://…) for the JetStream event bus (default: in-process bus).
    #[arg(long, value_name = "URL")]
    nats_url: Option<String>,
}

/// A parsed `--services` list. A newtype, because clap reads a bare
/// `Option<Vec<_>>` as a repeated flag of single items.
#[derive(Debug, Clone)]
struct ServiceList(Vec<ServiceKind>);

fn parse_services(list: &str) -> Result<ServiceList, String> {
    services::parse_list(list).map(ServiceList)
}

impl CommonArgs {
    fn overrides(&self) -> Overrides {
        Overrides {
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone(),
            nats_url: self.nats_url.clone(),
            ..Overrides::default()
        }
    }

    fn services(&self) -> Vec<ServiceKind> {
        self.services
            .clone()
            .map(|list| list.0)
            .unwrap_or_else(|| ServiceKind::ALL.to_vec())
    }
}

/// Parses the command line and runs it; the process's exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        // A remote command printed its error in words already.
        Err(error) if error.is::<remote::Exit>() => ExitCode::from(
            error
                .downcast_ref::<remote::Exit>()
                .map_or(2, |exit| exit.0),
        ),
        // A command that printed its own report, with its own exit code.
        Err(error) if error.is::<schema::Exit>() => ExitCode::from(
            error
                .downcast_ref::<schema::Exit>()
                .map_or(1, |exit| exit.0),
        ),
        Err(error) => {
            // Logging may not be set up yet (bad configuration), so the
            // reason goes to stderr as well.
            tracing::error!(error = format!("{error:#}"), "tenantry failed");
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve::run(cli.config.as_deref(), args).await,
        Command::Schema(command) => schema::run(command).await,
        Command::Config(command) => config::run(cli.config.as_deref(), command),
        Command::Remote(command) => {
            remote::run(cli.remote, command, <Cli as clap::CommandFactory>::command).await
        }
        Command::Admin(AdminCommand::Bootstrap { common, email }) => {
            let config = Config::load(cli.config.as_deref(), &common.overrides())?;
            tenantry_kit::telemetry::init(&config.log)?;
            let user = crate::server::bootstrap_admin(&config, &email).await?;
            println!(
                "users/{} ({}) is a platform administrator",
                user.id, user.email
            );
            Ok(())
        }
        Command::Migrate { common } => {
            let config = Config::load(cli.config.as_deref(), &common.overrides())?;
            tenantry_kit::telemetry::init(&config.log)?;
            crate::server::migrate(&config, &common.services()).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
    }
}
