//! What registering a schema would change on a server that already has
//! some registered types: a type to create, a type to update (and how), or
//! nothing. `RegisterResourceType` only ever adds permissions and grantors
//! and never moves a type, so a plan says what it keeps that the file left
//! out, and refuses a changed parent before anything is sent.

use std::fmt;

use tenantry_proto::tenantry::authz::v1 as pb;

use crate::convert::{Grant, Shape, to_proto};
use crate::validate::Schema;

/// The plan for a whole file, parents first.
#[derive(Debug, Clone)]
pub struct Plan {
    pub steps: Vec<Step>,
    /// Types registered on the server that the file does not list: left
    /// alone.
    pub unlisted: Vec<String>,
}

/// One type of the file.
#[derive(Debug, Clone)]
pub struct Step {
    pub name: String,
    pub action: Action,
    /// The registration to send (with the server's etag for an update, so
    /// a concurrent change is refused rather than overwritten).
    pub request: pb::ResourceType,
    /// What the server keeps that the file leaves out.
    pub kept: Vec<String>,
}

/// What happens to one type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Create,
    Update(Vec<Change>),
    Unchanged,
}

/// One difference between the file and the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    DisplayName { from: String, to: String },
    Description { from: String, to: String },
    AddPermission(String),
    PermissionDescription { permission: String, to: String },
    AddGrant { permission: String, grant: Grant },
}

/// Why a file cannot be applied to this server at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Conflict {
    #[error(
        "`{name}` is registered under `{registered}`; the file puts it under `{file}`, and a registered type keeps its parent type"
    )]
    ParentChanged {
        name: String,
        registered: String,
        file: String,
    },
    #[error("`{0}` is a built-in type of this server")]
    BuiltIn(String),
}

impl Plan {
    /// Compares `schema` with the server's types (`ListResourceTypes`,
    /// built-in ones included).
    pub fn new(schema: &Schema, existing: &[pb::ResourceType]) -> Result<Plan, Vec<Conflict>> {
        let name_of = |t: &pb::ResourceType| {
            t.name
                .strip_prefix("resourceTypes/")
                .unwrap_or(&t.name)
                .to_string()
        };
        let mut conflicts = Vec::new();
        let mut steps = Vec::new();
        for definition in &schema.definitions {
            let mut request = to_proto(definition);
            let found = existing.iter().find(|t| name_of(t) == definition.name);
            let Some(current) = found else {
                steps.push(Step {
                    name: definition.name.clone(),
                    action: Action::Create,
                    request,
                    kept: Vec::new(),
                });
                continue;
            };
            if current.built_in {
                conflicts.push(Conflict::BuiltIn(definition.name.clone()));
                continue;
            }
            let (now, wanted) = (Shape::of_proto(current), Shape::of_definition(definition));
            if now.parent != wanted.parent {
                conflicts.push(Conflict::ParentChanged {
                    name: definition.name.clone(),
                    registered: now.parent,
                    file: wanted.parent,
                });
                continue;
            }
            let changes = differences(&now, &wanted);
            request.etag = current.etag.clone();
            steps.push(Step {
                name: definition.name.clone(),
                action: match changes.is_empty() {
                    true => Action::Unchanged,
                    false => Action::Update(changes),
                },
                request,
                kept: kept(&now, &wanted),
            });
        }
        if !conflicts.is_empty() {
            return Err(conflicts);
        }
        let unlisted = existing
            .iter()
            .filter(|t| !t.built_in)
            .map(name_of)
            .filter(|name| schema.definition(name).is_none())
            .collect();
        Ok(Plan { steps, unlisted })
    }

    /// Whether applying would send anything.
    pub fn has_changes(&self) -> bool {
        self.steps.iter().any(|s| s.action != Action::Unchanged)
    }

    /// The registrations to send, parents first.
    pub fn to_send(&self) -> impl Iterator<Item = &Step> {
        self.steps.iter().filter(|s| s.action != Action::Unchanged)
    }
}

fn differences(now: &Shape, wanted: &Shape) -> Vec<Change> {
    let mut changes = Vec::new();
    if now.display_name != wanted.display_name {
        changes.push(Change::DisplayName {
            from: now.display_name.clone(),
            to: wanted.display_name.clone(),
        });
    }
    if now.description != wanted.description {
        changes.push(Change::Description {
            from: now.description.clone(),
            to: wanted.description.clone(),
        });
    }
    for (name, permission) in &wanted.permissions {
        let Some(registered) = now.permissions.get(name) else {
            changes.push(Change::AddPermission(name.clone()));
            continue;
        };
        if registered.description != permission.description {
            changes.push(Change::PermissionDescription {
                permission: name.clone(),
                to: permission.description.clone(),
            });
        }
        for grant in permission.granted_by.difference(&registered.granted_by) {
            changes.push(Change::AddGrant {
                permission: name.clone(),
                grant: grant.clone(),
            });
        }
    }
    changes
}

fn kept(now: &Shape, wanted: &Shape) -> Vec<String> {
    let mut kept = Vec::new();
    for (name, registered) in &now.permissions {
        match wanted.permissions.get(name) {
            None => kept.push(format!("permission {name}")),
            Some(permission) => {
                for grant in registered.granted_by.difference(&permission.granted_by) {
                    kept.push(format!("{name} granted by {grant}"));
                }
            }
        }
    }
    kept
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for step in &self.steps {
            match &step.action {
                Action::Create => {
                    writeln!(f, "+ {} (create)", step.name)?;
                    for p in &step.request.permissions {
                        writeln!(f, "    + permission {}", p.name)?;
                    }
                }
                Action::Update(changes) => {
                    writeln!(f, "~ {} (update)", step.name)?;
                    for change in changes {
                        writeln!(f, "    {change}")?;
                    }
                }
                Action::Unchanged => writeln!(f, "= {} (no changes)", step.name)?,
            }
            for kept in &step.kept {
                writeln!(
                    f,
                    "    ! {kept} is registered but not in the file: kept (registration never takes one away)"
                )?;
            }
        }
        for name in &self.unlisted {
            writeln!(f, "? {name} is registered but not in the file: left alone")?;
        }
        match self.has_changes() {
            true => {
                let count = self.to_send().count();
                write!(
                    f,
                    "{count} type{} to register",
                    if count == 1 { "" } else { "s" }
                )
            }
            false => write!(f, "no changes"),
        }
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::DisplayName { from, to } => write!(f, "~ display_name: {from:?} -> {to:?}"),
            Change::Description { from, to } => write!(f, "~ description: {from:?} -> {to:?}"),
            Change::AddPermission(name) => write!(f, "+ permission {name}"),
            Change::PermissionDescription { permission, to } => {
                write!(f, "~ {permission} description -> {to:?}")
            }
            Change::AddGrant { permission, grant } => {
                write!(f, "+ {permission} granted by {grant}")
            }
        }
    }
}

#[cfg(test)]
mod tests;
