//! `tenantry context set|list|use|remove|show`.

use clap::Subcommand;
use serde_json::json;

use super::Globals;
use super::context::{Context, Contexts, Credential};
use super::exit::invalid;
use super::output;

/// What `tenantry context` does.
#[derive(Debug, Subcommand)]
pub enum ContextCommand {
    /// Create or replace a context, and make it current.
    Set {
        /// The context's name.
        name: String,
        /// The gRPC endpoint, such as http://127.0.0.1:50051.
        #[arg(long, value_name = "URL")]
        endpoint: String,
        /// Call with this API key.
        #[arg(long, value_name = "KEY", conflicts_with = "token")]
        api_key: Option<String>,
        /// Call with this access token.
        #[arg(long, value_name = "TOKEN")]
        token: Option<String>,
    },
    /// List the contexts (the current one is marked).
    List,
    /// Make a context the current one.
    Use {
        /// The context's name.
        name: String,
    },
    /// Delete a context and its stored credential.
    Remove {
        /// The context's name.
        name: String,
    },
    /// Show a context (the current one by default), without its secrets.
    Show {
        /// The context's name.
        name: Option<String>,
    },
}

/// Runs a context command.
pub fn run(globals: &Globals, command: ContextCommand) -> anyhow::Result<()> {
    let mut contexts = Contexts::load()?;
    match command {
        ContextCommand::Set {
            name,
            endpoint,
            api_key,
            token,
        } => {
            if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                return Err(invalid(format!(
                    "the endpoint must start with http:// or https://, not `{endpoint}`"
                )));
            }
            let credential = match (api_key, token) {
                (Some(secret), _) => Some(Credential::ApiKey { secret }),
                (None, Some(token)) => Some(Credential::Token { token }),
                (None, None) => None,
            };
            contexts.contexts.insert(
                name.clone(),
                Context {
                    endpoint,
                    credential,
                    consistency_token: None,
                },
            );
            contexts.current = Some(name.clone());
            contexts.save()?;
            eprintln!("context `{name}` set and in use");
        }
        ContextCommand::List => {
            let rows: Vec<_> = contexts
                .contexts
                .iter()
                .map(|(name, context)| describe(name, context, &contexts))
                .collect();
            output::print(
                globals.output,
                &serde_json::Value::Array(rows),
                &["current", "name", "endpoint", "credential"],
            );
        }
        ContextCommand::Use { name } => {
            contexts
                .pick(Some(&name))
                .map_err(|e| invalid(format!("{e:#}")))?;
            contexts.current = Some(name.clone());
            contexts.save()?;
            eprintln!("context `{name}` in use");
        }
        ContextCommand::Remove { name } => {
            if contexts.contexts.remove(&name).is_none() {
                return Err(invalid(format!("no context named `{name}`")));
            }
            if contexts.current.as_deref() == Some(name.as_str()) {
                contexts.current = None;
            }
            contexts.save()?;
            eprintln!("context `{name}` removed");
        }
        ContextCommand::Show { name } => {
            let (name, context) = contexts
                .pick(name.as_deref())
                .map_err(|e| invalid(format!("{e:#}")))?;
            let row = describe(&name, &context, &contexts);
            output::print(globals.output, &row, &["name", "endpoint", "credential"]);
        }
    }
    Ok(())
}

fn describe(name: &str, context: &Context, contexts: &Contexts) -> serde_json::Value {
    let current = contexts.current.as_deref() == Some(name);
    json!({
        "current": if current { "*" } else { "" },
        "name": name,
        "endpoint": context.endpoint,
        "credential": context.credential.as_ref().map_or("none".to_string(), Credential::describe),
    })
}
