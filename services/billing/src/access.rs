//! Who may do what, and organizations billing has not heard of yet.
//!
//! Permissions are asked of rbac with the caller's own token
//! (`billing.read`, `billing.manage`): owners and the finance role hold
//! them, admins and members do not. What the caller may not even read is
//! NOT_FOUND, so nothing about another tenant leaks.
//!
//! The tree comes from the organization service's events, which can trail
//! a request by a moment (an organization created a millisecond ago, and a
//! project created in it now). An organization billing has not seen yet is
//! read from the organization service, with the caller's token, and added.

use tenantry_kit::access::Caller;
use tenantry_kit::error::{Error, Result};
use tenantry_kit::names::{OrganizationName, WorkspaceName};
use tenantry_proto::tenantry::organization::v1 as org_pb;

use crate::error::Error as Refusal;
use crate::store::{self, NodeRow};
use crate::{Core, NAME, not_found};
use tenantry_kit::permission::Permission;
use tenantry_kit::tenancy;

/// What a caller wants to do with billing data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Read,
    Manage,
}

impl Need {
    fn permission(self) -> Permission {
        match self {
            Need::Read => Permission::BILLING_READ,
            Need::Manage => Permission::BILLING_MANAGE,
        }
    }
}

impl Core {
    /// Succeeds when the caller holds `need` on one of `organizations`:
    /// NOT_FOUND (as `kind`) when they may read none of them,
    /// PERMISSION_DENIED when they may read one but not do this. Tenantry's
    /// own services may do anything.
    pub(crate) async fn authorize(
        &self,
        caller: &Caller,
        organizations: &[&str],
        need: Need,
        kind: &str,
    ) -> Result<()> {
        self.enter_workspaces_of(organizations).await?;
        if caller.is_internal() {
            return Ok(());
        }
        let permission = need.permission();
        let checks: Vec<_> = organizations
            .iter()
            .flat_map(|id| {
                [
                    (("organization", *id), permission),
                    (("organization", *id), Permission::ORGANIZATION_READ),
                ]
            })
            .collect();
        let answers = self.checker.check_all(caller, &checks).await?;
        if answers.iter().step_by(2).any(|allowed| *allowed) {
            Ok(())
        } else if answers.iter().skip(1).step_by(2).any(|readable| *readable) {
            Err(Error::permission_denied(permission).with_domain(NAME))
        } else {
            Err(not_found(kind))
        }
    }

    /// Succeeds when the caller may read `organization` at all (quota
    /// answers go to whoever creates things there, on their behalf).
    pub(crate) async fn authorize_reader(&self, caller: &Caller, organization: &str) -> Result<()> {
        self.enter_workspaces_of(&[organization]).await?;
        if caller.is_internal() {
            return Ok(());
        }
        let allowed = self
            .checker
            .check_all(
                caller,
                &[(
                    ("organization", organization),
                    Permission::ORGANIZATION_READ,
                )],
            )
            .await?;
        if allowed[0] {
            Ok(())
        } else {
            Err(not_found("organization"))
        }
    }

    /// Puts the workspaces holding these organizations (billing's tenants)
    /// into the request's scope (see `tenantry_kit::tenancy`): looked up in
    /// every tenant, since which workspace holds an organization is what is
    /// asked. Organizations billing has not heard of add nothing.
    async fn enter_workspaces_of(&self, organizations: &[&str]) -> Result<()> {
        if !self.store.has_row_security() {
            return Ok(());
        }
        for id in organizations {
            if let Some(node) = tenancy::system(store::node(self.store.pool(), id)).await? {
                tenancy::enter(&node.workspace_id);
            }
        }
        Ok(())
    }

    /// Succeeds for platform administrators (and Tenantry's services).
    pub(crate) async fn require_platform_admin(&self, caller: &Caller) -> Result<()> {
        if caller.is_internal()
            || (caller.is_user()
                && store::PLATFORM_ADMINS
                    .contains(self.store.pool(), caller.id())
                    .await?)
        {
            Ok(())
        } else {
            Err(Error::permission_denied("platform.admin").with_domain(NAME))
        }
    }

    /// Whether the caller is a platform administrator.
    pub(crate) async fn is_platform_admin(&self, caller: &Caller) -> Result<bool> {
        Ok(self.require_platform_admin(caller).await.is_ok())
    }

    /// A live organization billing knows, read from the organization
    /// service (with the caller's token) when billing has not heard of it
    /// yet; NOT_FOUND when it does not exist or was deleted.
    pub(crate) async fn node(&self, caller: &Caller, organization_id: &str) -> Result<NodeRow> {
        let mut missing = Vec::new();
        let mut id = organization_id.to_string();
        // Walk up until a known node (or the root), then add the missing
        // ones top-down so each has its parent's path.
        let mut known = loop {
            // Which workspace holds the organization is what this finds
            // out: looked up in every tenant, the workspace then joins the
            // request's scope.
            if let Some(node) = tenancy::system(store::node(self.store.pool(), &id)).await? {
                tenancy::enter(&node.workspace_id);
                break Some(node);
            }
            let organization = self.fetch_organization(caller, &id).await?;
            let parent = organization.parent.clone();
            missing.push(organization);
            if parent.is_empty() || missing.len() > 10 {
                break None;
            }
            id = parent.trim_start_matches("organizations/").to_string();
        };
        for organization in missing.into_iter().rev() {
            known = Some(
                self.add_fetched(caller, known.as_ref(), &organization)
                    .await?,
            );
        }
        match known {
            Some(node) if !node.deleted => Ok(node),
            _ => Err(not_found("organization")),
        }
    }

    async fn fetch_organization(&self, caller: &Caller, id: &str) -> Result<org_pb::Organization> {
        let mut client = org_pb::organization_service_client::OrganizationServiceClient::new(
            self.organization.clone(),
        );
        let request = caller.on_behalf(org_pb::GetOrganizationRequest {
            name: OrganizationName::new(id).to_string(),
        });
        match client.get_organization(request).await {
            Ok(response) => response
                .into_inner()
                .organization
                .ok_or_else(|| not_found("organization")),
            Err(status) if status.code() == tonic::Code::NotFound => Err(not_found("organization")),
            Err(status) => Err(Refusal::DependencyUnavailable {
                what: "the organization service",
                status,
            }
            .into()),
        }
    }

    async fn add_fetched(
        &self,
        caller: &Caller,
        parent: Option<&NodeRow>,
        organization: &org_pb::Organization,
    ) -> Result<NodeRow> {
        let id = organization.name.trim_start_matches("organizations/");
        let workspace_id = organization.workspace.trim_start_matches("workspaces/");
        // The organization service says which workspace the node is in.
        tenancy::enter(workspace_id);
        // The workspace's mode, when its event is in flight too. A caller
        // who may not read the workspace leaves it to the event (until
        // then the tree counts as SINGLE, the default mode).
        if store::workspace_mode(self.store.pool(), workspace_id)
            .await?
            .is_none()
            && let Ok(mode) = self.fetch_workspace_mode(caller, workspace_id).await
        {
            let mut tx = self.store.begin().await?;
            store::insert_workspace(&mut tx, workspace_id, mode).await?;
            tx.commit().await?;
        }
        let node = NodeRow {
            id: id.to_string(),
            parent_id: parent.map(|p| p.id.clone()),
            root_id: organization
                .root
                .trim_start_matches("organizations/")
                .to_string(),
            workspace_id: workspace_id.to_string(),
            path: format!("{}{id}/", parent.map(|p| p.path.as_str()).unwrap_or("/")),
            deleted: false,
        };
        let mut tx = self.begin().await?;
        // Only the transaction that adds the node counts its owner's seat
        // and starts a root on the FREE plan: the event consumer may be
        // learning the same node at this moment.
        if crate::ledger::add_node(&mut tx, &node).await? {
            crate::ledger::owner_seat(&mut tx, id, organization.owner.trim_start_matches("users/"))
                .await?;
            if organization.parent.is_empty() {
                self.start_on_free(&mut tx, &node).await?;
            }
        }
        self.commit(tx).await?;
        Ok(store::node(self.store.pool(), id).await?.unwrap_or(node))
    }

    async fn fetch_workspace_mode(&self, caller: &Caller, id: &str) -> Result<&'static str> {
        let mut client = org_pb::workspace_service_client::WorkspaceServiceClient::new(
            self.organization.clone(),
        );
        let request = caller.on_behalf(org_pb::GetWorkspaceRequest {
            name: WorkspaceName::new(id).to_string(),
        });
        match client.get_workspace(request).await {
            Ok(response) => Ok(mode_name(
                response
                    .into_inner()
                    .workspace
                    .unwrap_or_default()
                    .billing_mode(),
            )),
            Err(status) if status.code() == tonic::Code::NotFound => Err(not_found("workspace")),
            Err(status) => Err(Refusal::DependencyUnavailable {
                what: "the organization service",
                status,
            }
            .into()),
        }
    }
}

/// A workspace billing mode as stored.
pub(crate) fn mode_name(mode: org_pb::BillingMode) -> &'static str {
    match mode {
        org_pb::BillingMode::Assigned => "assigned",
        org_pb::BillingMode::Pooled => "pooled",
        _ => "single",
    }
}
