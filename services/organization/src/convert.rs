//! Proto conversions of the organization service, in one place (see
//! STYLE.md): how its rows (organizations, workspaces, ownership transfers,
//! teams, projects and environments) become the resources clients see. The
//! handlers call these; the checks that decide which error a caller gets
//! stay in the handlers.

use tenantry_kit::names::{
    EnvironmentName, OrganizationName, OwnershipTransferName, ProjectName, TeamName, UserName,
    WorkspaceName,
};
use tenantry_proto::tenantry::organization::v1 as pb;

use crate::store::{ChildRow, EnvironmentRow, OrganizationRow, TransferRow, WorkspaceRow};
use crate::timestamp;
use crate::validate::etag;

/// The organization as clients see it.
pub(crate) fn organization_to_proto(row: &OrganizationRow) -> pb::Organization {
    let kind = if row.kind == "department" {
        pb::OrganizationKind::Department
    } else {
        pb::OrganizationKind::Organization
    };
    let state = if row.state == "deactivated" {
        pb::OrganizationState::Deactivated
    } else {
        pb::OrganizationState::Active
    };
    pb::Organization {
        name: OrganizationName::new(&row.id).to_string(),
        slug: row.slug.clone(),
        display_name: row.display_name.clone(),
        kind: kind as i32,
        parent: row
            .parent_id
            .as_ref()
            .map(|p| OrganizationName::new(p).to_string())
            .unwrap_or_default(),
        root: OrganizationName::new(&row.root_id).to_string(),
        workspace: WorkspaceName::new(&row.workspace_id).to_string(),
        depth: row.depth as i32,
        inherit_access: Some(row.inherit_access),
        settings: Some(pb::OrganizationSettings {
            departments_enabled: Some(row.departments_enabled),
            require_mfa: row.require_mfa,
            allowed_email_domains: row.allowed_email_domains.clone(),
            project_visibility: if row.projects_granted_only {
                pb::ProjectVisibility::Granted
            } else {
                pb::ProjectVisibility::AllMembers
            } as i32,
        }),
        metadata: row.metadata.clone().into_iter().collect(),
        state: state as i32,
        owner: UserName::new(&row.owner_id).to_string(),
        created_by: row.created_by.clone(),
        create_time: Some(timestamp(row.created_at_us)),
        update_time: Some(timestamp(row.updated_at_us)),
        delete_time: row.deleted_at_us.map(timestamp),
        purge_time: row.purge_at_us.map(timestamp),
        etag: etag(row.version),
    }
}

/// The workspace as clients see it.
pub(crate) fn workspace_to_proto(row: &WorkspaceRow) -> pb::Workspace {
    pb::Workspace {
        name: WorkspaceName::new(&row.id).to_string(),
        display_name: row.display_name.clone(),
        billing_mode: billing_mode_from_str(&row.billing_mode) as i32,
        created_by: row.created_by.clone(),
        create_time: Some(timestamp(row.created_at_us)),
        update_time: Some(timestamp(row.updated_at_us)),
        etag: etag(row.version),
    }
}

/// A stored billing mode as the proto enum.
fn billing_mode_from_str(mode: &str) -> pb::BillingMode {
    match mode {
        "single" => pb::BillingMode::Single,
        "assigned" => pb::BillingMode::Assigned,
        "pooled" => pb::BillingMode::Pooled,
        _ => pb::BillingMode::Unspecified,
    }
}

/// The stored text of a requested billing mode; `None` for unspecified.
pub(crate) fn billing_mode_to_str(mode: pb::BillingMode) -> Option<&'static str> {
    match mode {
        pb::BillingMode::Single => Some("single"),
        pb::BillingMode::Assigned => Some("assigned"),
        pb::BillingMode::Pooled => Some("pooled"),
        pb::BillingMode::Unspecified => None,
    }
}

/// The ownership transfer as clients see it at `now_us` (a pending one
/// past its expiry shows as expired).
pub(crate) fn transfer_to_proto(row: &TransferRow, now_us: i64) -> pb::OwnershipTransfer {
    let state = match row.state.as_str() {
        "pending" if row.expires_at_us <= now_us => pb::OwnershipTransferState::Expired,
        "pending" => pb::OwnershipTransferState::Pending,
        "accepted" => pb::OwnershipTransferState::Accepted,
        "cancelled" => pb::OwnershipTransferState::Cancelled,
        "declined" => pb::OwnershipTransferState::Declined,
        _ => pb::OwnershipTransferState::Unspecified,
    };
    pb::OwnershipTransfer {
        name: OwnershipTransferName::new(&row.organization_id, &row.id).to_string(),
        from_owner: UserName::new(&row.from_user_id).to_string(),
        to_owner: UserName::new(&row.to_user_id).to_string(),
        state: state as i32,
        create_time: Some(timestamp(row.created_at_us)),
        expire_time: Some(timestamp(row.expires_at_us)),
        end_time: row.ended_at_us.map(timestamp),
    }
}

/// The team as clients see it.
pub(crate) fn team_to_proto(row: &ChildRow) -> pb::Team {
    pb::Team {
        name: TeamName::new(&row.organization_id, &row.id).to_string(),
        slug: row.slug.clone(),
        display_name: row.display_name.clone(),
        description: row.description.clone(),
        created_by: row.created_by.clone(),
        create_time: Some(timestamp(row.created_at_us)),
        update_time: Some(timestamp(row.updated_at_us)),
        delete_time: row.deleted_at_us.map(timestamp),
        purge_time: row.purge_at_us.map(timestamp),
        etag: etag(row.version),
    }
}

/// The project as clients see it.
pub(crate) fn project_to_proto(row: &ChildRow) -> pb::Project {
    pb::Project {
        name: ProjectName::new(&row.organization_id, &row.id).to_string(),
        slug: row.slug.clone(),
        display_name: row.display_name.clone(),
        description: row.description.clone(),
        team: row
            .team_id
            .as_ref()
            .map(|t| TeamName::new(&row.organization_id, t).to_string())
            .unwrap_or_default(),
        created_by: row.created_by.clone(),
        create_time: Some(timestamp(row.created_at_us)),
        update_time: Some(timestamp(row.updated_at_us)),
        delete_time: row.deleted_at_us.map(timestamp),
        purge_time: row.purge_at_us.map(timestamp),
        etag: etag(row.version),
    }
}

/// The environment of a project of `organization_id` as clients see it.
pub(crate) fn environment_to_proto(organization_id: &str, row: &EnvironmentRow) -> pb::Environment {
    pb::Environment {
        name: EnvironmentName::new(organization_id, &row.project_id, &row.id).to_string(),
        slug: row.slug.clone(),
        display_name: row.display_name.clone(),
        create_time: Some(timestamp(row.created_at_us)),
        update_time: Some(timestamp(row.updated_at_us)),
        etag: etag(row.version),
    }
}
