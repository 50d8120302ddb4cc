//! `check`, `check-bulk`, `lookup-resources`, `lookup-subjects`: the
//! questions internal services ask, from the command line.
//!
//! Objects are written `type:id` and subjects `type:id` or
//! `type:id#relation`, as in zed.

use std::io::BufRead as _;

use clap::Args;
use futures::TryStreamExt as _;
use tenantry_client::Client;
use tenantry_client::pb::authz::v1 as authz;

use super::exit::{DENIED, Exit, invalid};
use super::output::{self, Format};

/// `tenantry check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The resource, `type:id` (such as `project:0190…`).
    resource: String,
    /// The permission, such as `project.read`.
    permission: String,
    /// The subject, `type:id` or `type:id#relation` (such as `user:0190…`).
    subject: String,
    /// Print how the answer was reached.
    #[arg(long)]
    explain: bool,
    #[command(flatten)]
    consistency: ConsistencyArg,
}

/// `--consistency`: how fresh the answer must be.
#[derive(Debug, Args)]
pub struct ConsistencyArg {
    /// `minimize-latency` (the default, never older than this context's
    /// writes), `full` (every acknowledged write), or a consistency token
    /// (at least as fresh as it).
    #[arg(long, value_name = "MODE|TOKEN")]
    consistency: Option<String>,
}

impl ConsistencyArg {
    fn to_proto(&self) -> Option<authz::Consistency> {
        use authz::consistency::Requirement;
        let requirement = match self.consistency.as_deref()? {
            "minimize-latency" => Requirement::MinimizeLatency(true),
            "full" | "fully-consistent" => Requirement::FullyConsistent(true),
            token => Requirement::AtLeastAsFresh(authz::ZedToken {
                token: token.to_string(),
            }),
        };
        Some(authz::Consistency {
            requirement: Some(requirement),
        })
    }
}

/// Parses `type:id`.
pub fn object(text: &str) -> anyhow::Result<authz::ObjectReference> {
    match text.split_once(':') {
        Some((object_type, object_id)) if !object_type.is_empty() && !object_id.is_empty() => {
            Ok(authz::ObjectReference {
                object_type: object_type.into(),
                object_id: object_id.into(),
            })
        }
        _ => Err(invalid(format!("`{text}` is not an object: write type:id"))),
    }
}

/// Parses `type:id` or `type:id#relation`.
pub fn subject(text: &str) -> anyhow::Result<authz::SubjectReference> {
    let (object_text, relation) = text.split_once('#').unwrap_or((text, ""));
    Ok(authz::SubjectReference {
        object: Some(object(object_text)?),
        optional_relation: relation.into(),
    })
}

/// Writes a subject back as `type:id[#relation]`.
pub fn subject_text(subject: &Option<authz::SubjectReference>) -> String {
    let Some(subject) = subject else {
        return String::new();
    };
    let mut text = object_text(&subject.object);
    if !subject.optional_relation.is_empty() {
        text.push('#');
        text.push_str(&subject.optional_relation);
    }
    text
}

/// Writes an object back as `type:id`.
pub fn object_text(object: &Option<authz::ObjectReference>) -> String {
    object
        .as_ref()
        .map(|o| format!("{}:{}", o.object_type, o.object_id))
        .unwrap_or_default()
}

fn allowed(permissionship: i32) -> bool {
    permissionship == authz::Permissionship::Allowed as i32
}

/// Asks one check; exit code 1 when denied.
pub async fn check(format: Format, client: &Client, args: CheckArgs) -> anyhow::Result<()> {
    let response = client
        .authorization()
        .check_permission(authz::CheckPermissionRequest {
            consistency: args.consistency.to_proto(),
            resource: Some(object(&args.resource)?),
            permission: args.permission,
            subject: Some(subject(&args.subject)?),
            with_tracing: args.explain,
        })
        .await
        .map_err(tenantry_client::Error::from)?
        .into_inner();
    let is_allowed = allowed(response.permissionship);
    match format {
        Format::Table => {
            println!("{}", if is_allowed { "allowed" } else { "denied" });
            if let Some(trace) = &response.debug_trace {
                print_trace(trace, 0);
            }
        }
        _ => output::print(format, &output::json(&response), &[]),
    }
    if is_allowed {
        Ok(())
    } else {
        Err(Exit(DENIED).into())
    }
}

fn print_trace(trace: &authz::PermissionTrace, depth: usize) {
    let verdict = if allowed(trace.permissionship) {
        "✓"
    } else {
        "⨯"
    };
    let source = authz::permission_trace::Source::try_from(trace.source)
        .map(|s| s.as_str_name().trim_start_matches("SOURCE_").to_lowercase())
        .unwrap_or_default();
    println!(
        "{}{verdict} {} {} {} [{source}] {}",
        "  ".repeat(depth + 1),
        object_text(&trace.resource),
        trace.permission,
        subject_text(&trace.subject),
        trace.explanation,
    );
    for sub in &trace.sub_traces {
        print_trace(sub, depth + 1);
    }
}

/// `tenantry check-bulk`.
#[derive(Debug, Args)]
pub struct CheckBulkArgs {
    /// A file of `RESOURCE PERMISSION SUBJECT` lines (a line starting with `#` is a comment;
    /// `-` reads stdin).
    file: String,
    #[command(flatten)]
    consistency: ConsistencyArg,
}

/// Asks every check of a file in one call; exit code 1 when any is denied.
pub async fn check_bulk(
    format: Format,
    client: &Client,
    args: CheckBulkArgs,
) -> anyhow::Result<()> {
    let mut items = Vec::new();
    for (number, line) in read_lines(&args.file)? {
        let words: Vec<&str> = line.split_whitespace().collect();
        let [resource, permission, subject_text] = words[..] else {
            return Err(invalid(format!(
                "{}:{number}: expected RESOURCE PERMISSION SUBJECT",
                args.file
            )));
        };
        items.push(authz::CheckBulkPermissionsRequestItem {
            resource: Some(object(resource)?),
            permission: permission.into(),
            subject: Some(subject(subject_text)?),
        });
    }
    let response = client
        .authorization()
        .check_bulk_permissions(authz::CheckBulkPermissionsRequest {
            consistency: args.consistency.to_proto(),
            items,
        })
        .await
        .map_err(tenantry_client::Error::from)?
        .into_inner();
    let mut all_allowed = true;
    let mut rows = Vec::new();
    for pair in &response.pairs {
        use authz::check_bulk_permissions_pair::Response;
        let answer = match &pair.response {
            Some(Response::Item(item)) if allowed(item.permissionship) => "allowed".to_string(),
            Some(Response::Item(_)) => "denied".to_string(),
            Some(Response::Error(status)) => format!("error: {}", status.message),
            None => "error: no answer".to_string(),
        };
        all_allowed &= answer == "allowed";
        let request = pair.request.clone().unwrap_or_default();
        rows.push(serde_json::json!({
            "resource": object_text(&request.resource),
            "permission": request.permission,
            "subject": subject_text(&request.subject),
            "answer": answer,
        }));
    }
    output::print(
        format,
        &serde_json::Value::Array(rows),
        &["resource", "permission", "subject", "answer"],
    );
    if all_allowed {
        Ok(())
    } else {
        Err(Exit(DENIED).into())
    }
}

/// The meaningful lines of a file (or stdin for `-`), with their numbers.
pub fn read_lines(file: &str) -> anyhow::Result<Vec<(usize, String)>> {
    let reader: Box<dyn std::io::BufRead> = if file == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let opened =
            std::fs::File::open(file).map_err(|e| invalid(format!("cannot read {file}: {e}")))?;
        Box::new(std::io::BufReader::new(opened))
    };
    let mut lines = Vec::new();
    for (index, line) in reader.lines().enumerate() {
        let line = line?;
        // `#` starts a comment only at the start of a line: it also
        // separates a subject's relation.
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        lines.push((index + 1, line.to_string()));
    }
    Ok(lines)
}

/// `tenantry lookup-resources`.
#[derive(Debug, Args)]
pub struct LookupResourcesArgs {
    /// The resource type, such as `project`.
    resource_type: String,
    /// The permission, such as `project.read`.
    permission: String,
    /// The subject, `type:id[#relation]`.
    subject: String,
    /// Only resources in this organization (`organizations/{id}`).
    #[arg(long)]
    organization: Option<String>,
    #[command(flatten)]
    consistency: ConsistencyArg,
}

/// Lists every resource id the subject holds the permission on.
pub async fn lookup_resources(
    format: Format,
    client: &Client,
    args: LookupResourcesArgs,
) -> anyhow::Result<()> {
    let ids: Vec<String> = client
        .lookup_resources(authz::LookupResourcesRequest {
            consistency: args.consistency.to_proto(),
            resource_type: args.resource_type.clone(),
            permission: args.permission,
            subject: Some(subject(&args.subject)?),
            organization: args.organization.unwrap_or_default(),
            ..Default::default()
        })
        .try_collect()
        .await?;
    let rows: Vec<_> = ids
        .iter()
        .map(|id| serde_json::json!({"resource": format!("{}:{id}", args.resource_type)}))
        .collect();
    output::print(format, &serde_json::Value::Array(rows), &["resource"]);
    Ok(())
}

/// `tenantry lookup-subjects`.
#[derive(Debug, Args)]
pub struct LookupSubjectsArgs {
    /// The resource, `type:id`.
    resource: String,
    /// The permission.
    permission: String,
    /// The subject type, such as `user`.
    subject_type: String,
    #[command(flatten)]
    consistency: ConsistencyArg,
}

/// Lists every subject of a type holding the permission on the resource.
pub async fn lookup_subjects(
    format: Format,
    client: &Client,
    args: LookupSubjectsArgs,
) -> anyhow::Result<()> {
    let subjects: Vec<authz::ResolvedSubject> = client
        .lookup_subjects(authz::LookupSubjectsRequest {
            consistency: args.consistency.to_proto(),
            resource: Some(object(&args.resource)?),
            permission: args.permission,
            subject_type: args.subject_type.clone(),
            ..Default::default()
        })
        .try_collect()
        .await?;
    let rows: Vec<_> = subjects
        .iter()
        .map(|s| serde_json::json!({"subject": format!("{}:{}", args.subject_type, s.subject_id), "external": s.external}))
        .collect();
    output::print(
        format,
        &serde_json::Value::Array(rows),
        &["subject", "external"],
    );
    Ok(())
}
