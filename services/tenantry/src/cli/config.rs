//! `tenantry config`: what every key means, and whether a configuration
//! would start, without starting it.

use std::path::{Path, PathBuf};

use clap::Subcommand;

use super::CommonArgs;
use super::schema::Exit;
use crate::config::Config;

#[derive(Debug, Subcommand)]
pub(super) enum ConfigCommand {
    /// Every configuration key: its type, default, environment variable and
    /// meaning, as a Markdown table (the one the README shows).
    Explain {
        /// Only keys starting with this (`identity.`, `peers`).
        prefix: Option<String>,
    },
    /// Load a configuration as `serve` would (file, then TENANTRY_*
    /// variables, then flags) and report every problem at once, the
    /// production-mode rules for the chosen services included. Prints `ok`
    /// and exits 0 when it would start; exits 1 otherwise.
    Check {
        /// The TOML file to check (default: --config / TENANTRY_CONFIG).
        file: Option<PathBuf>,
        #[command(flatten)]
        common: CommonArgs,
    },
}

pub(super) fn run(config_file: Option<&Path>, command: ConfigCommand) -> anyhow::Result<()> {
    match command {
        ConfigCommand::Explain { prefix } => {
            print!("{}", crate::explain::markdown(prefix.as_deref()));
            Ok(())
        }
        ConfigCommand::Check { file, common } => {
            let file = file.as_deref().or(config_file);
            let problems = problems(file, &common);
            if problems.is_empty() {
                println!("ok");
                return Ok(());
            }
            let count = problems.len();
            println!("{count} problem{}:", if count == 1 { "" } else { "s" });
            for problem in problems {
                println!("  - {problem}");
            }
            Err(Exit(1).into())
        }
    }
}

/// Every problem `serve` would stop at with this file, environment and
/// flags. A value that does not parse hides the checks that need the whole
/// configuration, so those come only once everything parses.
fn problems(file: Option<&Path>, common: &CommonArgs) -> Vec<String> {
    let overrides = common.overrides();
    let config: Config = match tenantry_kit::config::load(file, &overrides) {
        Ok(config) => config,
        Err(error) => return vec![format!("{error:#}")],
    };
    let password_on_command_line = overrides
        .database_url
        .as_deref()
        .is_some_and(tenantry_kit::db::has_password);
    let mut problems = config.problems();
    problems.extend(
        config
            .production_problems(&common.services(), password_on_command_line)
            .into_iter()
            .map(|problem| format!("production mode: {problem}")),
    );
    problems
}
