//! `tenantry schema`: registered resource types as code. `validate` and
//! `test` work offline (no server, no port: `test` runs the authorization
//! engine in this process); `diff` and `apply` compare a file with a server
//! and register what differs. The work is `tenantry_schema`'s; this file
//! reads files, talks to the server and prints.
//!
//! Exit codes: 0 fine; 1 a test failed or the server refused; 2 a usage
//! error (clap); 3 a file is malformed or invalid.

use std::fmt;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use tenantry_proto::tenantry::authz::v1 as pb;
use tenantry_proto::tenantry::identity::v1 as identity;
use tenantry_schema::plan::Plan;
use tenantry_schema::{Diagnostics, Schema, Suite};
use tonic::transport::Channel;

/// `tenantry schema …`.
#[derive(Debug, Subcommand)]
pub(super) enum SchemaCommand {
    /// Check a schema file offline: YAML shape, names, parents and grantors,
    /// with the engine's own rules. Problems are printed as FILE:LINE:COL.
    Validate {
        /// The schema file (YAML).
        file: PathBuf,
    },
    /// Run test files offline: register the schema's types, write the
    /// relationships and check every assertion against the authorization
    /// engine in this process. Failing assertions are printed with what was
    /// expected and what came; the exit code is 1 when any fails.
    Test {
        /// Test files (YAML), each naming its schema file.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Show what `apply` would change on a server.
    Diff {
        /// The schema file (YAML).
        file: PathBuf,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Register the file's types on a server: creates new types and adds
    /// permissions and grantors to changed ones (a registration never takes
    /// one away). Running it again changes nothing. Needs a service account.
    Apply {
        /// The schema file (YAML).
        file: PathBuf,
        #[command(flatten)]
        server: ServerArgs,
        /// Print the plan and have the server validate it, registering
        /// nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Where the server is and who calls it.
#[derive(Debug, Args)]
pub(super) struct ServerArgs {
    /// The gRPC endpoint of the rbac service (or of a process running it).
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:50051")]
    endpoint: String,
    /// An access token (a service account's, to apply).
    #[arg(
        long,
        env = "TENANTRY_TOKEN",
        hide_env_values = true,
        conflicts_with = "client_id"
    )]
    token: Option<String>,
    /// A service account's client id, exchanged with its secret for a token.
    #[arg(long, env = "TENANTRY_CLIENT_ID", requires = "client_secret")]
    client_id: Option<String>,
    /// The client secret of `--client-id`.
    #[arg(long, env = "TENANTRY_CLIENT_SECRET", hide_env_values = true)]
    client_secret: Option<String>,
}

/// An exit code whose reason is already printed.
#[derive(Debug)]
pub(crate) struct Exit(pub u8);

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "exit code {}", self.0)
    }
}

impl std::error::Error for Exit {}

const FAILED: u8 = 1;
const INVALID: u8 = 3;

pub(super) async fn run(command: SchemaCommand) -> anyhow::Result<()> {
    match command {
        SchemaCommand::Validate { file } => {
            let schema = load_schema(&file)?;
            let permissions: usize = schema.definitions.iter().map(|d| d.permissions.len()).sum();
            println!(
                "{}: valid ({} types, {permissions} permissions)",
                file.display(),
                schema.definitions.len()
            );
            Ok(())
        }
        SchemaCommand::Test { files } => test(&files),
        SchemaCommand::Diff { file, server } => {
            let schema = load_schema(&file)?;
            let plan = plan(&schema, &server).await?;
            println!("{plan}");
            Ok(())
        }
        SchemaCommand::Apply {
            file,
            server,
            dry_run,
        } => apply(&file, &server, dry_run).await,
    }
}

/// Reads a file, or says why not (an invalid file's exit code).
fn read(file: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(file).map_err(|error| {
        eprintln!("{}: cannot read: {error}", file.display());
        Exit(INVALID).into()
    })
}

fn invalid(diagnostics: Diagnostics) -> anyhow::Error {
    eprintln!("{diagnostics}");
    Exit(INVALID).into()
}

fn load_schema(file: &Path) -> anyhow::Result<Schema> {
    Schema::load(file, &read(file)?).map_err(invalid)
}

fn test(files: &[PathBuf]) -> anyhow::Result<()> {
    let (mut passed, mut failed, mut broken) = (0, 0, false);
    for file in files {
        let outcome = Suite::parse(file, &read(file)?).and_then(|suite| {
            let text = std::fs::read_to_string(&suite.schema).map_err(|e| {
                Diagnostics(vec![tenantry_schema::Diagnostic {
                    file: suite.file.clone(),
                    pos: suite.schema_pos,
                    message: format!("cannot read {}: {e}", suite.schema.display()),
                }])
            })?;
            let schema = Schema::load(&suite.schema, &text)?;
            tenantry_schema::run::run(&suite, &schema)
        });
        match outcome {
            Ok(outcome) => {
                for failure in &outcome.failures {
                    println!("{failure}");
                }
                println!(
                    "{}: {} passed, {} failed",
                    file.display(),
                    outcome.passed,
                    outcome.failures.len()
                );
                passed += outcome.passed;
                failed += outcome.failures.len();
            }
            Err(diagnostics) => {
                eprintln!("{diagnostics}");
                broken = true;
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    match (broken, failed) {
        (true, _) => Err(Exit(INVALID).into()),
        (false, 0) => Ok(()),
        (false, _) => Err(Exit(FAILED).into()),
    }
}

async fn apply(file: &Path, server: &ServerArgs, dry_run: bool) -> anyhow::Result<()> {
    let schema = load_schema(file)?;
    let (mut client, token) = connect(server).await?;
    let plan = plan_with(&schema, &mut client, &token).await?;
    println!("{plan}");
    let created: Vec<&str> = plan
        .to_send()
        .filter(|s| s.action == tenantry_schema::plan::Action::Create)
        .map(|s| s.name.as_str())
        .collect();
    for step in plan.to_send() {
        // The server can only check a type whose parent it knows; under a
        // parent that a dry run does not register, the offline validation
        // (the same engine rules) is what there is.
        if dry_run && created.contains(&step.request.parent_type.as_str()) {
            continue;
        }
        let request = pb::RegisterResourceTypeRequest {
            resource_type: Some(step.request.clone()),
            validate_only: dry_run,
        };
        let answer = client
            .register_resource_type(authorized(request, &token)?)
            .await
            .map_err(|status| refused(&format!("registering `{}`", step.name), &status))?
            .into_inner();
        if !dry_run {
            let at = answer.written_at.map(|t| t.token).unwrap_or_default();
            println!("registered {} (at {at})", step.name);
        }
    }
    if dry_run && plan.has_changes() {
        println!("dry run: the server accepts the plan; nothing was registered");
    }
    Ok(())
}

async fn plan(schema: &Schema, server: &ServerArgs) -> anyhow::Result<Plan> {
    let (mut client, token) = connect(server).await?;
    plan_with(schema, &mut client, &token).await
}

type Client = pb::schema_service_client::SchemaServiceClient<Channel>;

async fn plan_with(schema: &Schema, client: &mut Client, token: &str) -> anyhow::Result<Plan> {
    let mut existing = Vec::new();
    let mut page_token = String::new();
    loop {
        let request = pb::ListResourceTypesRequest {
            page_size: 1000,
            page_token,
        };
        let page = client
            .list_resource_types(authorized(request, token)?)
            .await
            .map_err(|status| refused("listing the server's types", &status))?
            .into_inner();
        existing.extend(page.resource_types);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    Plan::new(schema, &existing).map_err(|conflicts| {
        for conflict in conflicts {
            eprintln!("error: {conflict}");
        }
        Exit(FAILED).into()
    })
}

/// A channel to the server and the token to call it with.
async fn connect(server: &ServerArgs) -> anyhow::Result<(Client, String)> {
    let channel = tonic::transport::Endpoint::from_shared(server.endpoint.clone())
        .map_err(|_| anyhow::anyhow!("`--endpoint` {} is not a URL", server.endpoint))?
        .connect()
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach {}: {e}", server.endpoint))?;
    let token = match (&server.token, &server.client_id, &server.client_secret) {
        (Some(token), _, _) => token.clone(),
        (None, Some(client_id), Some(client_secret)) => {
            let mut accounts =
                identity::service_account_service_client::ServiceAccountServiceClient::new(
                    channel.clone(),
                );
            accounts
                .issue_service_account_token(identity::IssueServiceAccountTokenRequest {
                    client_id: client_id.clone(),
                    client_secret: client_secret.clone(),
                    organization: String::new(),
                })
                .await
                .map_err(|status| refused("exchanging the client credentials", &status))?
                .into_inner()
                .access_token
        }
        _ => anyhow::bail!(
            "no credentials: pass --token (TENANTRY_TOKEN) or --client-id and --client-secret (TENANTRY_CLIENT_ID, TENANTRY_CLIENT_SECRET) of a service account"
        ),
    };
    Ok((Client::new(channel), token))
}

fn authorized<T>(message: T, token: &str) -> anyhow::Result<tonic::Request<T>> {
    let mut request = tonic::Request::new(message);
    let value = format!("Bearer {token}")
        .parse()
        .map_err(|_| anyhow::anyhow!("the token is not valid header text"))?;
    request.metadata_mut().insert("authorization", value);
    Ok(request)
}

/// The server's refusal as the user reads it: what was being done, the
/// code, the message and the stable reason.
fn refused(doing: &str, status: &tonic::Status) -> anyhow::Error {
    let reason = tonic_types::StatusExt::get_details_error_info(status)
        .map(|info| format!(" ({})", info.reason))
        .unwrap_or_default();
    eprintln!(
        "error: {doing}: {:?}: {}{reason}",
        status.code(),
        status.message()
    );
    Exit(FAILED).into()
}
