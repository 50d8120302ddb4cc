//! Organization trees and workspaces: the `OrganizationService` (less its
//! ownership-transfer RPCs, in [`crate::ownership`]) and the
//! `WorkspaceService`.
//!
//! The rules of the tree: a root belongs to a workspace; every other
//! organization has one live parent in the same tree; a tree is at most ten
//! levels deep; a subtree moves only within its tree, never under itself;
//! departments exist only where the nearest organization above allows them.
//!
//! One file per flow: `tree` (create, move, ancestry), `lifecycle` (update,
//! delete, undelete, deactivate), `listing`, `workspaces`, and `handlers`
//! (the RPCs); this one holds the errors and access helpers they share
//! (the conversions are in `crate::convert`).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use tenantry_kit::db::now_micros;
use tenantry_kit::error::{Error, Result};
use tenantry_kit::id::new_id;
use tenantry_kit::page_token::page_size;
use tenantry_kit::tenancy;
use tenantry_proto::tenantry::events::v1 as events;
use tenantry_proto::tenantry::organization::v1 as pb;
use tonic::{Request, Response, Status};

use crate::access::{Caller, Object};
use crate::error::Error as Refusal;
use crate::quota::Metric;
use crate::store::{OrganizationFilter, OrganizationRow, WorkspaceRow};
use crate::validate::{self, MAX_DEPTH, check_etag};
use crate::{
    Core, NAME, NewRow, ProjectVisibility, change, not_found, slug_suffix, target, timestamp,
};
use tenantry_kit::permission::Permission;
use tenantry_kit::write::Write;

const KIND: &str = "organization";

/// The `OrganizationService` handler.
#[derive(Debug, Clone)]
pub struct OrganizationApi(pub Core);

/// The `WorkspaceService` handler.
#[derive(Debug, Clone)]
pub struct WorkspaceApi(pub Core);

fn event_billing_mode(mode: &str) -> i32 {
    match mode {
        "single" => events::WorkspaceBillingMode::Single as i32,
        "assigned" => events::WorkspaceBillingMode::Assigned as i32,
        "pooled" => events::WorkspaceBillingMode::Pooled as i32,
        _ => events::WorkspaceBillingMode::Unspecified as i32,
    }
}

fn event_kind(kind: &str) -> i32 {
    if kind == "department" {
        events::OrganizationKind::Department as i32
    } else {
        events::OrganizationKind::Organization as i32
    }
}

/// A cursor of the organization listing: the last id returned (or scanned).
#[derive(Serialize, Deserialize)]
struct After(String);

/// A cursor of `ListMyOrganizations`: the last (sort key, id) returned.
#[derive(Serialize, Deserialize)]
struct AfterName(String, String);

mod handlers;
mod lifecycle;
mod listing;
mod tree;
mod workspaces;

pub(crate) use tree::{NewOrganization, departments_allowed_under, root_workspace};

impl Core {
    /// A live or deleted organization, or NOT_FOUND. Its row says which
    /// tree the request is in, so it is read in every tenant (one query,
    /// not a root lookup and a read) and its tree then joins the scope.
    pub(crate) async fn organization(&self, id: &str) -> Result<OrganizationRow> {
        let org = tenancy::system(self.store.organization(id))
            .await?
            .ok_or_else(|| not_found(KIND))?;
        tenancy::enter(&org.root_id);
        Ok(org)
    }

    /// The object permissions on an organization are checked against: the
    /// organization itself, or, once it is soft-deleted (and so gone from
    /// the authorization index), its parent. A deleted root answers to its
    /// owner alone.
    async fn authorize_organization(
        &self,
        caller: &Caller,
        org: &OrganizationRow,
        permission: Permission,
    ) -> Result<()> {
        if !org.is_deleted() {
            let answer = self
                .authorize(
                    caller,
                    Object::Organization(&org.id),
                    permission,
                    Permission::ORGANIZATION_READ,
                    KIND,
                )
                .await;
            if let Err(error) = &answer {
                self.record_denied(caller, org, permission, error).await;
            }
            return answer;
        }
        match &org.parent_id {
            Some(parent) => {
                self.authorize(
                    caller,
                    Object::Organization(parent),
                    permission,
                    Permission::ORGANIZATION_READ,
                    KIND,
                )
                .await
            }
            None if caller.is_user() && caller.id() == org.owner_id => Ok(()),
            None => Err(not_found(KIND)),
        }
    }

    /// An organization the caller may read, or NOT_FOUND.
    pub(crate) async fn readable_organization(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<OrganizationRow> {
        let org = self.organization(id).await?;
        self.authorize_organization(caller, &org, Permission::ORGANIZATION_READ)
            .await?;
        Ok(org)
    }

    /// A live organization the caller holds `permission` on.
    pub(crate) async fn live_organization(
        &self,
        caller: &Caller,
        id: &str,
        permission: Permission,
    ) -> Result<OrganizationRow> {
        let org = self.organization(id).await?;
        self.authorize_organization(caller, &org, permission)
            .await?;
        if org.is_deleted() {
            return Err(Refusal::OrganizationDeleted.into());
        }
        Ok(org)
    }

    /// Whether the caller may act on a workspace with `permission`: its
    /// creator may, and so may whoever holds `permission` on one of its
    /// roots.
    async fn workspace_allows(
        &self,
        caller: &Caller,
        ws: &WorkspaceRow,
        permission: Permission,
    ) -> Result<bool> {
        if caller.is_internal() || ws.created_by == caller.resource_name() {
            return Ok(true);
        }
        // Which tenants a workspace holds is what is being decided here.
        let roots = tenancy::system(self.store.workspace_roots(&ws.id)).await?;
        let checks: Vec<(Object<'_>, Permission)> = roots
            .iter()
            .map(|r| (Object::Organization(r), permission))
            .collect();
        Ok(self
            .access
            .check_all(caller, &checks)
            .await?
            .into_iter()
            .any(|a| a))
    }

    /// The resource a replayed request id created, looked up outside any
    /// transaction (the write path checks again inside its own).
    pub(crate) async fn replay(
        &self,
        caller: &str,
        method: &str,
        request_id: &str,
    ) -> Result<Option<String>> {
        self.store.replayed_now(caller, method, request_id).await
    }

    /// ABORTED unless the row still has the version it was read at.
    pub(crate) async fn ensure_unchanged(
        &self,
        tx: &mut Write,
        read: &OrganizationRow,
    ) -> Result<OrganizationRow> {
        let now = self
            .store
            .organization_in(tx, &read.id)
            .await?
            .ok_or_else(|| not_found(KIND))?;
        if now.version != read.version {
            return Err(Refusal::ConcurrentUpdate.into());
        }
        Ok(now)
    }
}

/// The project visibility a request sets: `None` when unset; a value the
/// contract does not define is refused, naming the field under `prefix`.
fn projects_granted_only(
    prefix: &str,
    settings: &pb::OrganizationSettings,
) -> Result<Option<bool>> {
    match pb::ProjectVisibility::try_from(settings.project_visibility) {
        Ok(pb::ProjectVisibility::Unspecified) => Ok(None),
        Ok(pb::ProjectVisibility::AllMembers) => Ok(Some(false)),
        Ok(pb::ProjectVisibility::Granted) => Ok(Some(true)),
        Err(_) => Err(Error::invalid_field(
            format!("{prefix}.settings.project_visibility"),
            "must be ALL_MEMBERS or GRANTED",
        )),
    }
}

fn visibility_name(granted_only: bool) -> &'static str {
    if granted_only {
        pb::ProjectVisibility::Granted.as_str_name()
    } else {
        pb::ProjectVisibility::AllMembers.as_str_name()
    }
}

/// The before/after of one field of an organization, when it changed.
fn field_change(
    field: &str,
    before: &OrganizationRow,
    after: &OrganizationRow,
) -> Option<events::FieldChange> {
    let value = |o: &OrganizationRow| -> String {
        match field {
            "display_name" => o.display_name.clone(),
            "slug" => o.slug.clone(),
            "inherit_access" => o.inherit_access.to_string(),
            "metadata" => serde_json::to_string(&o.metadata).unwrap_or_default(),
            "settings.departments_enabled" => o.departments_enabled.to_string(),
            "settings.require_mfa" => o.require_mfa.to_string(),
            "settings.project_visibility" => visibility_name(o.projects_granted_only).to_string(),
            _ => o.allowed_email_domains.join(","),
        }
    };
    let (b, a) = (value(before), value(after));
    (b != a).then(|| change(field, b, a))
}
