//! `tenantry roles`: the roles usable in an organization (built-in and
//! custom), and custom roles made of catalog permissions. Custom roles are
//! a plan feature: on a plan without it the server refuses them
//! (`FEATURE_NOT_INCLUDED`).

use clap::{Subcommand, ValueEnum};
use futures::TryStreamExt as _;
use tenantry_client::pb::rbac::v1 as rbac;
use tenantry_client::{Client, Error};

use super::{OrgArg, print_list, print_one};
use crate::cli::remote::output::Format;

/// Which roles to list.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Kind {
    /// The roles every organization has.
    BuiltIn,
    /// The organization's own roles.
    Custom,
}

/// What `tenantry roles` does.
#[derive(Debug, Subcommand)]
pub enum RolesCommand {
    /// The roles of an organization: built-in first, then custom ones.
    List {
        #[command(flatten)]
        organization: OrgArg,
        /// Only built-in or only custom roles.
        #[arg(long, value_enum)]
        kind: Option<Kind>,
    },
    /// One role (`roles/admin`, `organizations/{org}/roles/{id}`).
    Get { role: String },
    /// Create a custom role.
    Create {
        #[command(flatten)]
        organization: OrgArg,
        /// Its display name, unique in the organization.
        display_name: String,
        /// A permission it grants (repeatable), such as `project.read`.
        #[arg(long = "permission", required = true)]
        permissions: Vec<String>,
        /// What the role is for.
        #[arg(long)]
        description: Option<String>,
    },
    /// Delete a custom role (`organizations/{org}/roles/{id}`).
    Delete {
        role: String,
        /// Give its members and grants this role instead, in the same
        /// change.
        #[arg(long)]
        reassign_to: Option<String>,
    },
}

const ROLE_COLUMNS: &[&str] = &[
    "name",
    "displayName",
    "builtIn",
    "memberCount",
    "permissions",
];

/// Runs a roles command.
pub async fn roles(format: Format, client: &Client, command: RolesCommand) -> anyhow::Result<()> {
    let mut roles = client.roles();
    match command {
        RolesCommand::List { organization, kind } => {
            let kind = match kind {
                None => rbac::list_roles_request::RoleKind::Unspecified,
                Some(Kind::BuiltIn) => rbac::list_roles_request::RoleKind::BuiltIn,
                Some(Kind::Custom) => rbac::list_roles_request::RoleKind::Custom,
            };
            let items: Vec<_> = client
                .list_roles(rbac::ListRolesRequest {
                    parent: organization.name(),
                    kind: kind as i32,
                    ..Default::default()
                })
                .try_collect()
                .await?;
            print_list(format, &items, ROLE_COLUMNS);
        }
        RolesCommand::Get { role } => {
            let response = roles
                .get_role(rbac::GetRoleRequest { name: role })
                .await
                .map_err(Error::from)?
                .into_inner();
            print_one(format, &response.role.unwrap_or_default(), ROLE_COLUMNS);
        }
        RolesCommand::Create {
            organization,
            display_name,
            permissions,
            description,
        } => {
            let response = roles
                .create_role(rbac::CreateRoleRequest {
                    parent: organization.name(),
                    role: Some(rbac::Role {
                        display_name,
                        permissions,
                        description: description.unwrap_or_default(),
                        ..Default::default()
                    }),
                    ..Default::default()
                })
                .await
                .map_err(Error::from)?
                .into_inner();
            print_one(format, &response.role.unwrap_or_default(), ROLE_COLUMNS);
        }
        RolesCommand::Delete { role, reassign_to } => {
            roles
                .delete_role(rbac::DeleteRoleRequest {
                    name: role.clone(),
                    reassign_to: reassign_to.unwrap_or_default(),
                    ..Default::default()
                })
                .await
                .map_err(Error::from)?;
            eprintln!("deleted {role}");
        }
    }
    Ok(())
}
