//! `tenantry audit list|tail|export|verify`.

use std::io::Write as _;
use std::time::Duration;

use clap::{Args, Subcommand};
use futures::{StreamExt as _, TryStreamExt as _};
use tenantry_client::pb::audit::v1 as audit;
use tenantry_client::{Client, Error};

use super::{OrgArg, output};
use crate::cli::remote::exit::{ERROR, Exit};
use crate::cli::remote::output::Format;

/// What `tenantry audit` does.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Events of an organization, newest first.
    List {
        #[command(flatten)]
        filter: FilterArgs,
        /// At most this many events.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Print events as they arrive (`-f` keeps following).
    Tail {
        #[command(flatten)]
        filter: FilterArgs,
        /// Keep printing new events until interrupted.
        #[arg(long, short = 'f')]
        follow: bool,
        /// How often to look for new events, in milliseconds.
        #[arg(long, default_value_t = 1000)]
        interval_ms: u64,
    },
    /// The organization's whole log, as JSON lines or CSV, to stdout.
    Export {
        #[command(flatten)]
        filter: FilterArgs,
        /// `jsonl` or `csv`.
        #[arg(long, default_value = "jsonl")]
        format: String,
    },
    /// Check the log's hash chain; exit code 2 when it is broken.
    Verify(OrgArg),
}

/// Which events.
#[derive(Debug, Args)]
pub struct FilterArgs {
    #[command(flatten)]
    organization: OrgArg,
    /// Only this action, such as `organization.project.created`.
    #[arg(long)]
    action: Option<String>,
    /// Only actions starting with this, such as `rbac.`.
    #[arg(long)]
    action_prefix: Option<String>,
    /// Only this actor (its id).
    #[arg(long)]
    actor: Option<String>,
    /// Only events about this target type.
    #[arg(long)]
    target_type: Option<String>,
    /// Only events about this target id.
    #[arg(long)]
    target_id: Option<String>,
}

impl FilterArgs {
    fn filter(&self) -> audit::AuditEventFilter {
        audit::AuditEventFilter {
            action: self.action.clone().unwrap_or_default(),
            action_prefix: self.action_prefix.clone().unwrap_or_default(),
            actor_id: self.actor.clone().unwrap_or_default(),
            target_type: self.target_type.clone().unwrap_or_default(),
            target_id: self.target_id.clone().unwrap_or_default(),
            ..Default::default()
        }
    }

    fn request(&self) -> audit::ListAuditEventsRequest {
        audit::ListAuditEventsRequest {
            parent: self.organization.name(),
            filter: Some(self.filter()),
            ..Default::default()
        }
    }
}

const COLUMNS: &[&str] = &["sequence", "occurredAt", "action", "actor.id", "outcome"];

/// Runs an audit command.
pub async fn audit(format: Format, client: &Client, command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::List { filter, limit } => {
            let events: Vec<audit::AuditEvent> = client
                .list_audit_events(filter.request())
                .take(limit)
                .try_collect()
                .await?;
            let values = events.iter().map(output::json).collect();
            output::print(format, &serde_json::Value::Array(values), COLUMNS);
        }
        AuditCommand::Tail {
            filter,
            follow,
            interval_ms,
        } => {
            tail(
                format,
                client,
                &filter,
                follow,
                Duration::from_millis(interval_ms.max(100)),
            )
            .await?;
        }
        AuditCommand::Export {
            filter,
            format: kind,
        } => {
            let export_format = match kind.as_str() {
                "jsonl" => audit::ExportFormat::Jsonl,
                "csv" => audit::ExportFormat::Csv,
                other => {
                    return Err(super::super::exit::invalid(format!(
                        "export format `{other}`: use jsonl or csv"
                    )));
                }
            };
            let mut stream = client
                .audit()
                .export_audit_events(audit::ExportAuditEventsRequest {
                    parent: filter.organization.name(),
                    filter: Some(filter.filter()),
                    format: export_format as i32,
                })
                .await
                .map_err(Error::from)?
                .into_inner();
            let mut out = std::io::stdout().lock();
            while let Some(chunk) = stream.message().await.map_err(Error::from)? {
                out.write_all(&chunk.data)?;
            }
        }
        AuditCommand::Verify(organization) => {
            let response = client
                .audit()
                .verify_chain(audit::VerifyChainRequest {
                    organization: organization.name(),
                    ..Default::default()
                })
                .await
                .map_err(Error::from)?
                .into_inner();
            output::print(
                format,
                &output::json(&response),
                &["ok", "verifiedCount", "brokenSequence", "reason"],
            );
            if !response.ok {
                return Err(Exit(ERROR).into());
            }
        }
    }
    Ok(())
}

/// Prints the newest events, oldest first, then (following) every newer
/// one as it appears: the log only grows, so its sequence numbers tell
/// what was already shown.
async fn tail(
    format: Format,
    client: &Client,
    filter: &FilterArgs,
    follow: bool,
    interval: Duration,
) -> anyhow::Result<()> {
    let mut shown: i64 = -1;
    let mut first = true;
    loop {
        let mut fresh: Vec<audit::AuditEvent> = Vec::new();
        let mut stream = client.list_audit_events(filter.request());
        while let Some(event) = stream.try_next().await? {
            if event.sequence <= shown || (first && fresh.len() >= 10) {
                break;
            }
            fresh.push(event);
        }
        for event in fresh.iter().rev() {
            output::print_item(format, &output::json(event), COLUMNS);
            shown = shown.max(event.sequence);
        }
        first = false;
        if !follow {
            return Ok(());
        }
        tokio::time::sleep(interval).await;
    }
}
