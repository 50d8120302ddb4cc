//! `relationships read|write|delete|import|export` and `watch`.
//!
//! A relationship is written `resource#relation@subject`, as zed writes
//! it: `deployment:web-1#parent@project:0190…`. Files hold one per line
//! (`#` at the start of a line is a comment). An import writes in batches
//! with TOUCH, so running it again is harmless, and `--start-line` resumes
//! a long one where its progress line on stderr says it stopped.

use std::io::Write as _;

use clap::{Args, Subcommand};
use futures::TryStreamExt as _;
use tenantry_client::Client;
use tenantry_client::pb::authz::v1 as authz;

use super::authz::{object, object_text, read_lines, subject, subject_text};
use super::exit::invalid;
use super::output::{self, Format};

use authz::relationship_update::Operation;

/// What `tenantry relationships` does.
#[derive(Debug, Subcommand)]
pub enum RelationshipsCommand {
    /// Print the relationships a filter selects.
    Read(FilterArgs),
    /// Write relationships (`resource#relation@subject`, several allowed).
    Write {
        /// The relationships.
        #[arg(required = true)]
        relationships: Vec<String>,
        /// Fail when one exists already, instead of keeping it.
        #[arg(long)]
        create: bool,
    },
    /// Delete relationships (`resource#relation@subject`, several allowed).
    Delete {
        /// The relationships.
        #[arg(required = true)]
        relationships: Vec<String>,
    },
    /// Write every relationship of a file (`-` for stdin), in batches.
    Import {
        /// The file, one `resource#relation@subject` per line.
        file: String,
        /// Relationships per write.
        #[arg(long, default_value_t = 500)]
        batch_size: usize,
        /// Skip the lines before this one (to resume an import).
        #[arg(long, default_value_t = 1)]
        start_line: usize,
    },
    /// Print the relationships a filter selects, one per line, in the form
    /// `import` reads.
    Export(FilterArgs),
}

/// Which relationships.
#[derive(Debug, Args)]
pub struct FilterArgs {
    /// `type` or `type:id` of the resources.
    resource: Option<String>,
    /// Only this relation.
    #[arg(long)]
    relation: Option<String>,
    /// Only this subject: `type`, `type:id` or `type:id#relation`.
    #[arg(long)]
    subject: Option<String>,
    /// Only in this organization (`organizations/{id}`).
    #[arg(long)]
    organization: Option<String>,
}

impl FilterArgs {
    fn request(&self) -> anyhow::Result<authz::ReadRelationshipsRequest> {
        let (resource_type, resource_id) = match &self.resource {
            Some(text) => text
                .split_once(':')
                .map_or((text.clone(), String::new()), |(t, i)| (t.into(), i.into())),
            None => Default::default(),
        };
        let subject_filter = self.subject.as_deref().map(|text| {
            let (object, relation) = match text.split_once('#') {
                Some((object, relation)) => (object, Some(relation)),
                None => (text, None),
            };
            let (subject_type, subject_id) = object.split_once(':').unwrap_or((object, ""));
            authz::SubjectFilter {
                subject_type: subject_type.into(),
                optional_subject_id: subject_id.into(),
                optional_relation: relation
                    .map(|r| authz::subject_filter::RelationFilter { relation: r.into() }),
            }
        });
        if resource_type.is_empty() && subject_filter.is_none() {
            return Err(invalid("name a resource type, or a subject with --subject"));
        }
        Ok(authz::ReadRelationshipsRequest {
            relationship_filter: Some(authz::RelationshipFilter {
                resource_type,
                optional_resource_id: resource_id,
                optional_relation: self.relation.clone().unwrap_or_default(),
                optional_subject_filter: subject_filter,
            }),
            organization: self.organization.clone().unwrap_or_default(),
            ..Default::default()
        })
    }
}

/// Parses `resource#relation@subject`.
pub fn parse(text: &str) -> anyhow::Result<authz::Relationship> {
    let bad = || {
        invalid(format!(
            "`{text}` is not a relationship: write resource#relation@subject"
        ))
    };
    let (resource, rest) = text.split_once('#').ok_or_else(bad)?;
    let (relation, subject_text) = rest.split_once('@').ok_or_else(bad)?;
    if relation.is_empty() {
        return Err(bad());
    }
    Ok(authz::Relationship {
        resource: Some(object(resource)?),
        relation: relation.into(),
        subject: Some(subject(subject_text)?),
    })
}

/// Writes a relationship as `resource#relation@subject`.
pub fn text(relationship: &authz::Relationship) -> String {
    format!(
        "{}#{}@{}",
        object_text(&relationship.resource),
        relationship.relation,
        subject_text(&relationship.subject)
    )
}

fn updates(
    texts: &[String],
    operation: Operation,
) -> anyhow::Result<Vec<authz::RelationshipUpdate>> {
    texts
        .iter()
        .map(|t| {
            Ok(authz::RelationshipUpdate {
                operation: operation as i32,
                relationship: Some(parse(t)?),
            })
        })
        .collect()
}

async fn write(client: &Client, updates: Vec<authz::RelationshipUpdate>) -> anyhow::Result<String> {
    let response = client
        .authorization()
        .write_relationships(authz::WriteRelationshipsRequest {
            updates,
            optional_preconditions: Vec::new(),
        })
        .await
        .map_err(tenantry_client::Error::from)?
        .into_inner();
    Ok(response.written_at.map(|t| t.token).unwrap_or_default())
}

/// Runs a relationships command.
pub async fn run(
    format: Format,
    client: &Client,
    command: RelationshipsCommand,
) -> anyhow::Result<()> {
    match command {
        RelationshipsCommand::Read(filter) => {
            let relationships: Vec<authz::Relationship> = client
                .read_relationships(filter.request()?)
                .try_collect()
                .await?;
            let rows: Vec<_> = relationships
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "resource": object_text(&r.resource),
                        "relation": r.relation,
                        "subject": subject_text(&r.subject),
                    })
                })
                .collect();
            output::print(
                format,
                &serde_json::Value::Array(rows),
                &["resource", "relation", "subject"],
            );
        }
        RelationshipsCommand::Write {
            relationships,
            create,
        } => {
            let operation = if create {
                Operation::Create
            } else {
                Operation::Touch
            };
            let token = write(client, updates(&relationships, operation)?).await?;
            eprintln!("written at {token}");
        }
        RelationshipsCommand::Delete { relationships } => {
            let token = write(client, updates(&relationships, Operation::Delete)?).await?;
            eprintln!("deleted at {token}");
        }
        RelationshipsCommand::Import {
            file,
            batch_size,
            start_line,
        } => {
            import(client, &file, batch_size.max(1), start_line).await?;
        }
        RelationshipsCommand::Export(filter) => {
            let mut stream = client.read_relationships(filter.request()?);
            let mut out = std::io::stdout().lock();
            while let Some(relationship) = stream.try_next().await? {
                writeln!(out, "{}", text(&relationship))?;
            }
        }
    }
    Ok(())
}

/// Imports a file in batches, each one write; reports after each batch the
/// line to resume from should the next one fail.
async fn import(
    client: &Client,
    file: &str,
    batch_size: usize,
    start_line: usize,
) -> anyhow::Result<()> {
    let lines: Vec<(usize, String)> = read_lines(file)?
        .into_iter()
        .filter(|(number, _)| *number >= start_line)
        .collect();
    // Every line is checked before anything is written.
    let mut parsed = Vec::with_capacity(lines.len());
    for (number, line) in &lines {
        let relationship = parse(line).map_err(|e| invalid(format!("{file}:{number}: {e}")))?;
        parsed.push((*number, relationship));
    }
    let mut written = 0;
    for batch in parsed.chunks(batch_size) {
        let updates = batch
            .iter()
            .map(|(_, r)| authz::RelationshipUpdate {
                operation: Operation::Touch as i32,
                relationship: Some(r.clone()),
            })
            .collect();
        let first = batch.first().map_or(start_line, |(n, _)| *n);
        if let Err(error) = write(client, updates).await {
            eprintln!("import stopped: resume with --start-line {first}");
            return Err(error);
        }
        written += batch.len();
        let last = batch.last().map_or(first, |(n, _)| *n);
        eprintln!("imported {written} relationships, through line {last}");
    }
    Ok(())
}

/// `tenantry watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Only changes of these resource types.
    #[arg(long = "type", value_name = "TYPE")]
    types: Vec<String>,
    /// Only changes in this organization (`organizations/{id}`).
    #[arg(long)]
    organization: Option<String>,
    /// Start after this consistency token instead of now.
    #[arg(long, value_name = "TOKEN")]
    from: Option<String>,
}

/// Prints each change as it happens, until interrupted or the stream ends.
pub async fn watch(format: Format, client: &Client, args: WatchArgs) -> anyhow::Result<()> {
    let mut stream = client
        .authorization()
        .watch(authz::WatchRequest {
            optional_object_types: args.types,
            optional_start_cursor: args.from.map(|token| authz::ZedToken { token }),
            organization: args.organization.unwrap_or_default(),
        })
        .await
        .map_err(tenantry_client::Error::from)?
        .into_inner();
    while let Some(response) = stream
        .message()
        .await
        .map_err(tenantry_client::Error::from)?
    {
        let through = response
            .changes_through
            .as_ref()
            .map(|t| t.token.clone())
            .unwrap_or_default();
        for update in &response.updates {
            let operation = Operation::try_from(update.operation)
                .map(|o| {
                    o.as_str_name()
                        .trim_start_matches("OPERATION_")
                        .to_lowercase()
                })
                .unwrap_or_default();
            let relationship = update.relationship.as_ref().map(text).unwrap_or_default();
            let row = serde_json::json!({"operation": operation, "relationship": relationship, "changesThrough": through});
            output::print_item(
                format,
                &row,
                &["operation", "relationship", "changesThrough"],
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relationships_round_trip_through_their_text() {
        for line in [
            "deployment:web-1#parent@project:p1",
            "project:p1#viewer@team:t1#member",
        ] {
            assert_eq!(text(&parse(line).unwrap()), line);
        }
        for bad in [
            "deployment:web-1",
            "deployment:web-1#@project:p1",
            "x#parent@y",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
