//! The everyday objects: organizations (with a tree view), projects,
//! teams, members and their roles, invitations, API keys; and in
//! submodules the audit log, service accounts, custom roles, and plans,
//! subscriptions, usage and limits. Each command is one call of the contract (or a listing streamed
//! over every page); objects are named by id or by resource name.

use clap::{Args, Subcommand};
use futures::TryStreamExt as _;
use tenantry_client::pb::identity::v1 as identity;
use tenantry_client::pb::{organization::v1 as org, rbac::v1 as rbac};
use tenantry_client::{Client, Error};

use super::output::{self, Format};

mod audit_log;
mod billing;
mod roles;
mod service_accounts;

pub use audit_log::{AuditCommand, audit};
pub use billing::{
    LimitsArgs, PlansCommand, SubscriptionCommand, UsageArgs, limits, plans, subscription, usage,
};
pub use roles::{RolesCommand, roles};
pub use service_accounts::{ServiceAccountsCommand, service_accounts};

const ORG_COLUMNS: &[&str] = &["name", "slug", "displayName", "kind", "state"];

/// `organizations/{id}` from an id or a name.
fn org_name(text: &str) -> String {
    named("organizations/", text)
}

fn named(prefix: &str, text: &str) -> String {
    if text.starts_with(prefix) {
        text.to_string()
    } else {
        format!("{prefix}{text}")
    }
}

/// Which organization a command is about.
#[derive(Debug, Args)]
pub struct OrgArg {
    /// The organization (id or `organizations/{id}`).
    #[arg(long, short = 'O', env = "TENANTRY_ORGANIZATION")]
    organization: String,
}

impl OrgArg {
    fn name(&self) -> String {
        org_name(&self.organization)
    }
}

fn print_list<M: prost::Message + prost::Name>(format: Format, items: &[M], columns: &[&str]) {
    let values = items.iter().map(output::json).collect();
    output::print(format, &serde_json::Value::Array(values), columns);
}

fn print_one<M: prost::Message + prost::Name>(format: Format, item: &M, columns: &[&str]) {
    output::print(format, &output::json(item), columns);
}

/// What `tenantry organizations` does.
#[derive(Debug, Subcommand)]
pub enum OrganizationsCommand {
    /// The organizations you belong to.
    List,
    /// One organization.
    Get { organization: String },
    /// Create an organization (a root, or a child with --parent).
    Create {
        /// Its display name.
        display_name: String,
        /// Its slug (derived from the name when absent).
        #[arg(long)]
        slug: Option<String>,
        /// The parent organization, for a child.
        #[arg(long)]
        parent: Option<String>,
    },
    /// Delete an organization (soft: `undelete` brings it back).
    Delete {
        organization: String,
        /// Delete its children, teams and projects too.
        #[arg(long)]
        force: bool,
    },
    /// Your organizations and everything below them, as a tree.
    Tree,
}

/// Runs an organizations command.
pub async fn organizations(
    format: Format,
    client: &Client,
    command: OrganizationsCommand,
) -> anyhow::Result<()> {
    let mut orgs = client.organizations();
    match command {
        OrganizationsCommand::List => {
            let mine: Vec<org::MyOrganization> = client
                .list_my_organizations(Default::default())
                .try_collect()
                .await?;
            let rows: Vec<_> = mine
                .iter()
                .map(|m| {
                    let mut value = output::json(&m.organization.clone().unwrap_or_default());
                    value["roles"] = m.roles.clone().into();
                    value
                })
                .collect();
            output::print(
                format,
                &serde_json::Value::Array(rows),
                &["name", "slug", "displayName", "roles"],
            );
        }
        OrganizationsCommand::Get { organization } => {
            let response = orgs
                .get_organization(org::GetOrganizationRequest {
                    name: org_name(&organization),
                })
                .await
                .map_err(Error::from)?
                .into_inner();
            print_one(
                format,
                &response.organization.unwrap_or_default(),
                ORG_COLUMNS,
            );
        }
        OrganizationsCommand::Create {
            display_name,
            slug,
            parent,
        } => {
            let response = orgs
                .create_organization(org::CreateOrganizationRequest {
                    organization: Some(org::Organization {
                        display_name,
                        slug: slug.unwrap_or_default(),
                        parent: parent.as_deref().map(org_name).unwrap_or_default(),
                        ..Default::default()
                    }),
                    ..Default::default()
                })
                .await
                .map_err(Error::from)?
                .into_inner();
            print_one(
                format,
                &response.organization.unwrap_or_default(),
                ORG_COLUMNS,
            );
        }
        OrganizationsCommand::Delete {
            organization,
            force,
        } => {
            orgs.delete_organization(org::DeleteOrganizationRequest {
                name: org_name(&organization),
                force,
                ..Default::default()
            })
            .await
            .map_err(Error::from)?;
            eprintln!("deleted {}", org_name(&organization));
        }
        OrganizationsCommand::Tree => tree(format, client).await?,
    }
    Ok(())
}

/// Walks down from each of the caller's organizations; the table shows
/// the tree by indentation.
async fn tree(format: Format, client: &Client) -> anyhow::Result<()> {
    let mine: Vec<org::MyOrganization> = client
        .list_my_organizations(Default::default())
        .try_collect()
        .await?;
    let mut rows = Vec::new();
    let mut stack: Vec<(org::Organization, usize)> = mine
        .into_iter()
        .filter_map(|m| m.organization)
        .map(|o| (o, 0))
        .rev()
        .collect();
    let mut seen = std::collections::HashSet::new();
    while let Some((organization, depth)) = stack.pop() {
        if !seen.insert(organization.name.clone()) {
            continue;
        }
        let children: Vec<org::Organization> = client
            .list_organizations(org::ListOrganizationsRequest {
                parent: organization.name.clone(),
                ..Default::default()
            })
            .try_collect()
            .await?;
        let mut value = output::json(&organization);
        value["tree"] = format!("{}{}", "  ".repeat(depth), organization.display_name).into();
        rows.push(value);
        stack.extend(children.into_iter().rev().map(|c| (c, depth + 1)));
    }
    output::print(
        format,
        &serde_json::Value::Array(rows),
        &["tree", "name", "kind"],
    );
    Ok(())
}

/// What `tenantry projects` does.
#[derive(Debug, Subcommand)]
pub enum ProjectsCommand {
    /// The projects of an organization.
    List(OrgArg),
    /// Create a project.
    Create {
        #[command(flatten)]
        organization: OrgArg,
        /// Its display name.
        display_name: String,
        /// Its slug.
        #[arg(long)]
        slug: Option<String>,
    },
    /// Delete a project (`organizations/{org}/projects/{id}`).
    Delete { project: String },
    /// The environments of a project.
    Environments { project: String },
}

const PROJECT_COLUMNS: &[&str] = &["name", "slug", "displayName", "team"];

/// Runs a projects command.
pub async fn projects(
    format: Format,
    client: &Client,
    command: ProjectsCommand,
) -> anyhow::Result<()> {
    match command {
        ProjectsCommand::List(organization) => {
            let items: Vec<_> = client
                .list_projects(org::ListProjectsRequest {
                    parent: organization.name(),
                    ..Default::default()
                })
                .try_collect()
                .await?;
            print_list(format, &items, PROJECT_COLUMNS);
        }
        ProjectsCommand::Create {
            organization,
            display_name,
            slug,
        } => {
            let response = client
                .projects()
                .create_project(org::CreateProjectRequest {
                    parent: organization.name(),
                    project: Some(org::Project {
                        display_name,
                        slug: slug.unwrap_or_default(),
                        ..Default::default()
                    }),
                    ..Default::default()
                })
                .await
                .map_err(Error::from)?
                .into_inner();
            print_one(
                format,
                &response.project.unwrap_or_default(),
                PROJECT_COLUMNS,
            );
        }
        ProjectsCommand::Delete { project } => {
            client
                .projects()
                .delete_project(org::DeleteProjectRequest {
                    name: project.clone(),
                    ..Default::default()
                })
                .await
                .map_err(Error::from)?;
            eprintln!("deleted {project}");
        }
        ProjectsCommand::Environments { project } => {
            let items: Vec<_> = client
                .list_environments(org::ListEnvironmentsRequest {
                    parent: project,
                    ..Default::default()
                })
                .try_collect()
                .await?;
            print_list(format, &items, &["name", "slug", "displayName"]);
        }
    }
    Ok(())
}

/// What `tenantry teams` does.
#[derive(Debug, Subcommand)]
pub enum TeamsCommand {
    /// The teams of an organization.
    List(OrgArg),
    /// Create a team.
    Create {
        #[command(flatten)]
        organization: OrgArg,
        /// Its display name.
        display_name: String,
        /// Its slug.
        #[arg(long)]
        slug: Option<String>,
    },
    /// Delete a team (`organizations/{org}/teams/{id}`).
    Delete { team: String },
}

/// Runs a teams command.
pub async fn teams(format: Format, client: &Client, command: TeamsCommand) -> anyhow::Result<()> {
    let columns = &["name", "slug", "displayName"];
    match command {
        TeamsCommand::List(organization) => {
            let items: Vec<_> = client
                .list_teams(org::ListTeamsRequest {
                    parent: organization.name(),
                    ..Default::default()
                })
                .try_collect()
                .await?;
            print_list(format, &items, columns);
        }
        TeamsCommand::Create {
            organization,
            display_name,
            slug,
        } => {
            let response = client
                .teams()
                .create_team(org::CreateTeamRequest {
                    parent: organization.name(),
                    team: Some(org::Team {
                        display_name,
                        slug: slug.unwrap_or_default(),
                        ..Default::default()
                    }),
                    ..Default::default()
                })
                .await
                .map_err(Error::from)?
                .into_inner();
            print_one(format, &response.team.unwrap_or_default(), columns);
        }
        TeamsCommand::Delete { team } => {
            client
                .teams()
                .delete_team(org::DeleteTeamRequest {
                    name: team.clone(),
                    ..Default::default()
                })
                .await
                .map_err(Error::from)?;
            eprintln!("deleted {team}");
        }
    }
    Ok(())
}

/// What `tenantry members` does.
#[derive(Debug, Subcommand)]
pub enum MembersCommand {
    /// The members of an organization.
    List(OrgArg),
    /// Make a user a member, with roles.
    Add {
        #[command(flatten)]
        organization: OrgArg,
        /// The user (id or `users/{id}`).
        user: String,
        /// A role such as `roles/member` (repeatable).
        #[arg(long = "role", default_value = tenantry_kit::names::BuiltInRole::Member.name())]
        roles: Vec<String>,
    },
    /// Replace a membership's roles.
    SetRole {
        /// The membership (`organizations/{org}/memberships/{id}`).
        membership: String,
        /// The roles (repeatable).
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
    },
    /// End a membership.
    Remove { membership: String },
}

const MEMBER_COLUMNS: &[&str] = &["name", "user", "roles", "external"];

/// Runs a members command.
pub async fn members(
    format: Format,
    client: &Client,
    command: MembersCommand,
) -> anyhow::Result<()> {
    let mut memberships = client.memberships();
    match command {
        MembersCommand::List(organization) => {
            let items: Vec<_> = client
                .list_memberships(rbac::ListMembershipsRequest {
                    parent: organization.name(),
                    ..Default::default()
                })
                .try_collect()
                .await?;
            print_list(format, &items, MEMBER_COLUMNS);
        }
        MembersCommand::Add {
            organization,
            user,
            roles,
        } => {
            let response = memberships
                .create_membership(rbac::CreateMembershipRequest {
                    parent: organization.name(),
                    membership: Some(rbac::Membership {
                        user: named("users/", &user),
                        roles,
                        ..Default::default()
                    }),
                    ..Default::default()
                })
                .await
                .map_err(Error::from)?
                .into_inner();
            print_one(
                format,
                &response.membership.unwrap_or_default(),
                MEMBER_COLUMNS,
            );
        }
        MembersCommand::SetRole { membership, roles } => {
            let response = memberships
                .update_membership(rbac::UpdateMembershipRequest {
                    membership: Some(rbac::Membership {
                        name: membership,
                        roles,
                        ..Default::default()
                    }),
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec!["roles".into()],
                    }),
                })
                .await
                .map_err(Error::from)?
                .into_inner();
            print_one(
                format,
                &response.membership.unwrap_or_default(),
                MEMBER_COLUMNS,
            );
        }
        MembersCommand::Remove { membership } => {
            memberships
                .delete_membership(rbac::DeleteMembershipRequest {
                    name: membership.clone(),
                    ..Default::default()
                })
                .await
                .map_err(Error::from)?;
            eprintln!("removed {membership}");
        }
    }
    Ok(())
}

/// What `tenantry invitations` does.
#[derive(Debug, Subcommand)]
pub enum InvitationsCommand {
    /// The invitations of an organization.
    List(OrgArg),
    /// Invite an email address, with roles.
    Create {
        #[command(flatten)]
        organization: OrgArg,
        /// The address to invite.
        email: String,
        /// A role (repeatable).
        #[arg(long = "role", default_value = tenantry_kit::names::BuiltInRole::Member.name())]
        roles: Vec<String>,
    },
    /// Send an invitation's mail again.
    Resend { invitation: String },
    /// Withdraw an invitation.
    Revoke { invitation: String },
    /// Accept an invitation with the token from its mail.
    Accept {
        /// The token from the invitation mail.
        #[arg(value_name = "TOKEN")]
        invitation_token: String,
    },
}

const INVITATION_COLUMNS: &[&str] = &["name", "email", "roles", "state", "expireTime"];

/// Runs an invitations command.
pub async fn invitations(
    format: Format,
    client: &Client,
    command: InvitationsCommand,
) -> anyhow::Result<()> {
    let mut invitations = client.invitations();
    let invitation = match command {
        InvitationsCommand::List(organization) => {
            let items: Vec<_> = client
                .list_invitations(rbac::ListInvitationsRequest {
                    parent: organization.name(),
                    ..Default::default()
                })
                .try_collect()
                .await?;
            print_list(format, &items, INVITATION_COLUMNS);
            return Ok(());
        }
        InvitationsCommand::Create {
            organization,
            email,
            roles,
        } => {
            invitations
                .create_invitation(rbac::CreateInvitationRequest {
                    parent: organization.name(),
                    invitation: Some(rbac::Invitation {
                        email,
                        roles,
                        ..Default::default()
                    }),
                    ..Default::default()
                })
                .await
                .map_err(Error::from)?
                .into_inner()
                .invitation
        }
        InvitationsCommand::Resend { invitation } => {
            invitations
                .resend_invitation(rbac::ResendInvitationRequest {
                    name: invitation,
                    ..Default::default()
                })
                .await
                .map_err(Error::from)?
                .into_inner()
                .invitation
        }
        InvitationsCommand::Revoke { invitation } => {
            invitations
                .revoke_invitation(rbac::RevokeInvitationRequest {
                    name: invitation,
                    ..Default::default()
                })
                .await
                .map_err(Error::from)?
                .into_inner()
                .invitation
        }
        InvitationsCommand::Accept { invitation_token } => {
            let response = invitations
                .accept_invitation(rbac::AcceptInvitationRequest {
                    token: invitation_token,
                })
                .await
                .map_err(Error::from)?
                .into_inner();
            print_one(format, &response, &["membership.name", "membership.roles"]);
            return Ok(());
        }
    };
    print_one(format, &invitation.unwrap_or_default(), INVITATION_COLUMNS);
    Ok(())
}

/// What `tenantry api-keys` does.
#[derive(Debug, Subcommand)]
pub enum ApiKeysCommand {
    /// The API keys of an organization.
    List(OrgArg),
    /// Create a key; its secret is printed once.
    Create {
        #[command(flatten)]
        organization: OrgArg,
        /// A label for the key.
        display_name: String,
        /// A permission the key may use (repeatable), such as `project.read`.
        #[arg(long = "permission", required = true)]
        permissions: Vec<String>,
        /// Only for this team (`organizations/{org}/teams/{id}`).
        #[arg(long)]
        team: Option<String>,
    },
    /// Revoke a key (`organizations/{org}/apiKeys/{id}`).
    Revoke { api_key: String },
}

const KEY_COLUMNS: &[&str] = &["name", "displayName", "prefix", "permissions", "state"];

/// Runs an API keys command.
pub async fn api_keys(
    format: Format,
    client: &Client,
    command: ApiKeysCommand,
) -> anyhow::Result<()> {
    match command {
        ApiKeysCommand::List(organization) => {
            let items: Vec<_> = client
                .list_api_keys(identity::ListApiKeysRequest {
                    parent: organization.name(),
                    ..Default::default()
                })
                .try_collect()
                .await?;
            print_list(format, &items, KEY_COLUMNS);
        }
        ApiKeysCommand::Create {
            organization,
            display_name,
            permissions,
            team,
        } => {
            let response = client
                .api_keys()
                .create_api_key(identity::CreateApiKeyRequest {
                    parent: organization.name(),
                    api_key: Some(identity::ApiKey {
                        display_name,
                        permissions,
                        team: team.unwrap_or_default(),
                        ..Default::default()
                    }),
                    ..Default::default()
                })
                .await
                .map_err(Error::from)?
                .into_inner();
            print_one(format, &response, &["apiKey.name", "secret"]);
            eprintln!("store the secret now: it is not shown again");
        }
        ApiKeysCommand::Revoke { api_key } => {
            client
                .api_keys()
                .revoke_api_key(identity::RevokeApiKeyRequest {
                    name: api_key.clone(),
                })
                .await
                .map_err(Error::from)?;
            eprintln!("revoked {api_key}");
        }
    }
    Ok(())
}
