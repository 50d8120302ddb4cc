//! The commands that call a Tenantry deployment through its public gRPC
//! contracts (with `tenantry-client`), as `zed` and `fga` do: contexts and
//! sign-in, the everyday objects, authorization checks and relationships,
//! the audit log, service accounts, roles, and plans, subscriptions, usage
//! and limits. Each command group is a module; every command prints
//! in the global `--output` format and ends with an exit code from
//! [`exit`].

mod authz;
mod bulk;
mod context;
mod exit;
mod login;
mod objects;
mod output;
mod relationships;

use std::sync::{Arc, Mutex};

use clap::{Args, Subcommand};
use tenantry_client::{Client, Credentials, Session};

use context::{Context, Contexts, Credential};
pub use exit::Exit;
use output::Format;

/// Flags every remote command takes.
#[derive(Debug, Args)]
pub struct Globals {
    /// How to print answers.
    #[arg(
        long,
        short = 'o',
        global = true,
        value_enum,
        default_value_t,
        env = "TENANTRY_OUTPUT"
    )]
    output: Format,
    /// The context to use instead of the current one.
    #[arg(long, global = true, env = "TENANTRY_CONTEXT", value_name = "NAME")]
    context: Option<String>,
    /// The gRPC endpoint, instead of the context's.
    #[arg(long, global = true, env = "TENANTRY_ENDPOINT", value_name = "URL")]
    endpoint: Option<String>,
    /// An API key to call with, instead of the context's credential.
    #[arg(
        long,
        global = true,
        env = "TENANTRY_API_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    api_key: Option<String>,
    /// An access token to call with, instead of the context's credential.
    #[arg(
        long,
        global = true,
        env = "TENANTRY_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
}

/// The remote commands, flattened into the top-level command list.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Named endpoints and credentials (like `zed context`).
    #[command(subcommand)]
    Context(context_cmd::ContextCommand),
    /// Sign in and store the session in the current context.
    Login(login::LoginArgs),
    /// End the stored session and forget it.
    Logout,
    /// May SUBJECT do PERMISSION on RESOURCE? Exit code 0 allowed, 1 denied,
    /// 2 and above errors.
    Check(authz::CheckArgs),
    /// Many checks from a file (`RESOURCE PERMISSION SUBJECT` per line, `-`
    /// for stdin). Exit code 0 when all are allowed, 1 when any is denied.
    CheckBulk(authz::CheckBulkArgs),
    /// The resources of a type that a subject holds a permission on.
    LookupResources(authz::LookupResourcesArgs),
    /// The subjects of a type that hold a permission on a resource.
    LookupSubjects(authz::LookupSubjectsArgs),
    /// Read, write, delete, import and export relationships.
    #[command(subcommand, alias = "rel")]
    Relationships(relationships::RelationshipsCommand),
    /// Follow relationship changes as they happen.
    Watch(relationships::WatchArgs),
    /// Organizations.
    #[command(subcommand, alias = "org", alias = "orgs")]
    Organizations(objects::OrganizationsCommand),
    /// Projects and their environments.
    #[command(subcommand, alias = "project")]
    Projects(objects::ProjectsCommand),
    /// Teams.
    #[command(subcommand, alias = "team")]
    Teams(objects::TeamsCommand),
    /// Members of an organization and their roles.
    #[command(subcommand, alias = "member")]
    Members(objects::MembersCommand),
    /// Invitations into an organization.
    #[command(subcommand, alias = "invitation")]
    Invitations(objects::InvitationsCommand),
    /// API keys of an organization.
    #[command(subcommand, alias = "api-key")]
    ApiKeys(objects::ApiKeysCommand),
    /// The audit log.
    #[command(subcommand)]
    Audit(objects::AuditCommand),
    /// Service accounts and their client credentials (platform
    /// administrators).
    #[command(subcommand, alias = "service-account", alias = "sa")]
    ServiceAccounts(objects::ServiceAccountsCommand),
    /// Roles of an organization, and custom roles.
    #[command(subcommand, alias = "role")]
    Roles(objects::RolesCommand),
    /// The plan catalog.
    #[command(subcommand, alias = "plan")]
    Plans(objects::PlansCommand),
    /// A root organization's subscription.
    #[command(subcommand)]
    Subscription(objects::SubscriptionCommand),
    /// An organization's usage per metric in the current billing period.
    Usage(objects::UsageArgs),
    /// The limits that apply to an organization, per metric, and where each
    /// comes from.
    Limits(objects::LimitsArgs),
    /// Import users, organizations, teams, projects, memberships, team
    /// members and project grants from a file of records (platform
    /// administrators).
    Import(bulk::ImportArgs),
    /// Export every record of the deployment, in an order `import` takes
    /// (platform administrators).
    Export(bulk::ExportArgs),
    /// Print a shell completion script: `tenantry completions bash >
    /// /etc/bash_completion.d/tenantry`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

mod context_cmd;

/// Runs a remote command; `command_line` builds the whole CLI (for
/// completions).
pub async fn run(
    globals: Globals,
    command: Command,
    command_line: fn() -> clap::Command,
) -> anyhow::Result<()> {
    let result = dispatch(&globals, command, command_line).await;
    match result {
        Ok(()) => Ok(()),
        Err(error) => {
            let code = exit::report(&error);
            Err(Exit(code).into())
        }
    }
}

async fn dispatch(
    globals: &Globals,
    command: Command,
    command_line: fn() -> clap::Command,
) -> anyhow::Result<()> {
    match command {
        Command::Completions { shell } => {
            let mut command = command_line();
            clap_complete::generate(shell, &mut command, "tenantry", &mut std::io::stdout());
            Ok(())
        }
        Command::Context(command) => context_cmd::run(globals, command),
        Command::Login(args) => login::login(globals, args).await,
        Command::Logout => login::logout(globals).await,
        command => {
            let connection = Connection::open(globals)?;
            let result = remote(globals.output, &connection.client, command).await;
            connection.remember();
            result
        }
    }
}

async fn remote(format: Format, client: &Client, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Check(args) => authz::check(format, client, args).await,
        Command::CheckBulk(args) => authz::check_bulk(format, client, args).await,
        Command::LookupResources(args) => authz::lookup_resources(format, client, args).await,
        Command::LookupSubjects(args) => authz::lookup_subjects(format, client, args).await,
        Command::Relationships(command) => relationships::run(format, client, command).await,
        Command::Watch(args) => relationships::watch(format, client, args).await,
        Command::Organizations(command) => objects::organizations(format, client, command).await,
        Command::Projects(command) => objects::projects(format, client, command).await,
        Command::Teams(command) => objects::teams(format, client, command).await,
        Command::Members(command) => objects::members(format, client, command).await,
        Command::Invitations(command) => objects::invitations(format, client, command).await,
        Command::ApiKeys(command) => objects::api_keys(format, client, command).await,
        Command::Audit(command) => objects::audit(format, client, command).await,
        Command::ServiceAccounts(command) => {
            objects::service_accounts(format, client, command).await
        }
        Command::Roles(command) => objects::roles(format, client, command).await,
        Command::Plans(command) => objects::plans(format, client, command).await,
        Command::Subscription(command) => objects::subscription(format, client, command).await,
        Command::Usage(args) => objects::usage(format, client, args).await,
        Command::Import(args) => bulk::import(format, client, args).await,
        Command::Export(args) => bulk::export(client, args).await,
        Command::Limits(args) => objects::limits(format, client, args).await,
        Command::Context(_) | Command::Login(_) | Command::Logout | Command::Completions { .. } => {
            unreachable!("handled without a connection")
        }
    }
}

/// A client of the chosen context, and what to store back into it after
/// the command: a refreshed session, the newest consistency token.
struct Connection {
    client: Client,
    context_name: Option<String>,
    refreshed: Arc<Mutex<Option<Session>>>,
}

impl Connection {
    fn open(globals: &Globals) -> anyhow::Result<Connection> {
        let (context_name, context) = resolve(globals)?;
        let refreshed: Arc<Mutex<Option<Session>>> = Arc::default();
        let client = build(&context, refreshed.clone())?;
        Ok(Connection {
            client,
            context_name,
            refreshed,
        })
    }

    /// Stores a rotated refresh token (the old one no longer works) and the
    /// newest consistency token in the context.
    fn remember(&self) {
        let Some(name) = &self.context_name else {
            return;
        };
        let refreshed = self.refreshed.lock().map(|s| s.clone()).unwrap_or_default();
        let token = self.client.consistency_token();
        if refreshed.is_none() && token.is_none() {
            return;
        }
        let Ok(mut contexts) = Contexts::load() else {
            return;
        };
        let Some(context) = contexts.contexts.get_mut(name) else {
            return;
        };
        if let (Some(session), Some(Credential::Session { email, .. })) =
            (refreshed, context.credential.clone())
        {
            context.credential = Some(login::stored_session(email, &session));
        }
        if token.is_some() {
            context.consistency_token = token;
        }
        if let Err(error) = contexts.save() {
            eprintln!("warning: cannot update the context: {error:#}");
        }
    }
}

/// The context to use, with the global flags applied over it. A context
/// is optional when `--endpoint` is given.
fn resolve(globals: &Globals) -> anyhow::Result<(Option<String>, Context)> {
    let contexts = Contexts::load()?;
    let picked = match (&globals.endpoint, contexts.pick(globals.context.as_deref())) {
        (_, Ok((name, context))) => Some((name, context)),
        (Some(_), Err(_)) => None,
        (None, Err(error)) => return Err(exit::invalid(format!("{error:#}"))),
    };
    let (name, mut context) = match picked {
        Some((name, context)) => (Some(name), context),
        None => (None, Context::default()),
    };
    if let Some(endpoint) = &globals.endpoint {
        context.endpoint = endpoint.clone();
        // Another deployment's tokens mean nothing there.
        if name.is_some() {
            context.consistency_token = None;
        }
    }
    if let Some(secret) = &globals.api_key {
        context.credential = Some(Credential::ApiKey {
            secret: secret.clone(),
        });
    } else if let Some(token) = &globals.token {
        context.credential = Some(Credential::Token {
            token: token.clone(),
        });
    }
    Ok((name, context))
}

fn build(context: &Context, refreshed: Arc<Mutex<Option<Session>>>) -> anyhow::Result<Client> {
    let mut builder = Client::builder(context.endpoint.clone())
        .credentials(credentials(context.credential.as_ref()))
        .on_session_refresh(move |session| {
            if let Ok(mut slot) = refreshed.lock() {
                *slot = Some(session.clone());
            }
        });
    if let Some(token) = &context.consistency_token {
        builder = builder.consistency_token(token.clone());
    }
    builder.build().map_err(|e| exit::invalid(e.to_string()))
}

fn credentials(credential: Option<&Credential>) -> Credentials {
    match credential {
        None => Credentials::None,
        Some(Credential::ApiKey { secret }) => Credentials::ApiKey(secret.clone()),
        Some(Credential::Token { token }) => Credentials::AccessToken(token.clone()),
        Some(Credential::Session {
            access_token,
            refresh_token,
            expire_time,
            ..
        }) => Credentials::Session(Session {
            access_token: access_token.clone(),
            refresh_token: refresh_token.clone(),
            expire_time: expire_time
                .map(|s| std::time::UNIX_EPOCH + std::time::Duration::from_secs(s)),
        }),
        Some(Credential::ClientCredentials {
            client_id,
            client_secret,
            organization,
        }) => Credentials::ClientCredentials {
            client_id: client_id.clone(),
            client_secret: client_secret.clone(),
            organization: organization.clone(),
        },
    }
}
