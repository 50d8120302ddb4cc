//! Organization trees and workspaces: the `OrganizationService` (less its
//! ownership-transfer RPCs, in [`crate::ownership`]) and the
//! `WorkspaceService`.
//!
//! The rules of the tree: a root belongs to a workspace; every other
//! organization has one live parent in the same tree; a tree is at most ten
//! levels deep; a subtree moves only within its tree, never under itself;
//! departments exist only where the nearest organization above allows them.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use tenantry_kit::db::now_micros;
use tenantry_kit::error::{Code, Error, Result};
use tenantry_kit::id::{new_id, parse_name};
use tenantry_kit::page_token::page_size;
use tenantry_proto::tenantry::events::v1 as events;
use tenantry_proto::tenantry::organization::v1 as pb;
use tonic::{Request, Response, Status};

use crate::access::{Caller, Object};
use crate::projects::project_to_proto;
use crate::quota::Metric;
use crate::store::{OrganizationFilter, OrganizationRow, WorkspaceRow};
use crate::validate::{self, MAX_DEPTH, check_etag, etag};
use crate::{
    Core, NAME, ProjectVisibility, change, not_found, precondition, slug_suffix, target, timestamp,
};
use tenantry_kit::db::Savepoint;
use tenantry_kit::permission::Permission;
use tenantry_kit::write::Write;

const KIND: &str = "organization";

/// The `OrganizationService` handler.
#[derive(Debug, Clone)]
pub struct OrganizationApi(pub Core);

/// The `WorkspaceService` handler.
#[derive(Debug, Clone)]
pub struct WorkspaceApi(pub Core);

/// The organization as clients see it.
pub fn organization_to_proto(row: &OrganizationRow) -> pb::Organization {
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
        name: format!("organizations/{}", row.id),
        slug: row.slug.clone(),
        display_name: row.display_name.clone(),
        kind: kind as i32,
        parent: row
            .parent_id
            .as_ref()
            .map(|p| format!("organizations/{p}"))
            .unwrap_or_default(),
        root: format!("organizations/{}", row.root_id),
        workspace: format!("workspaces/{}", row.workspace_id),
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
        owner: format!("users/{}", row.owner_id),
        created_by: row.created_by.clone(),
        create_time: Some(timestamp(row.created_at_us)),
        update_time: Some(timestamp(row.updated_at_us)),
        delete_time: row.deleted_at_us.map(timestamp),
        purge_time: row.purge_at_us.map(timestamp),
        etag: etag(row.version),
    }
}

fn workspace_to_proto(row: &WorkspaceRow) -> pb::Workspace {
    pb::Workspace {
        name: format!("workspaces/{}", row.id),
        display_name: row.display_name.clone(),
        billing_mode: billing_mode_from_str(&row.billing_mode) as i32,
        created_by: row.created_by.clone(),
        create_time: Some(timestamp(row.created_at_us)),
        update_time: Some(timestamp(row.updated_at_us)),
        etag: etag(row.version),
    }
}

fn billing_mode_from_str(mode: &str) -> pb::BillingMode {
    match mode {
        "single" => pb::BillingMode::Single,
        "assigned" => pb::BillingMode::Assigned,
        "pooled" => pb::BillingMode::Pooled,
        _ => pb::BillingMode::Unspecified,
    }
}

fn billing_mode_to_str(mode: pb::BillingMode) -> Option<&'static str> {
    match mode {
        pb::BillingMode::Single => Some("single"),
        pb::BillingMode::Assigned => Some("assigned"),
        pb::BillingMode::Pooled => Some("pooled"),
        pb::BillingMode::Unspecified => None,
    }
}

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

/// The id in `organizations/{id}`.
pub(crate) fn organization_id(field: &str, name: &str) -> Result<String> {
    Ok(parse_name(field, "organizations/{}", name)?[0].to_string())
}

fn user_id(field: &str, name: &str) -> Result<String> {
    Ok(parse_name(field, "users/{}", name)?[0].to_string())
}

fn too_deep() -> Error {
    precondition(
        "TREE_TOO_DEEP",
        format!("an organization tree is at most {MAX_DEPTH} levels deep"),
    )
    .with_metadata("max_depth", MAX_DEPTH)
}

fn concurrent_update() -> Error {
    Error::new(
        Code::Aborted,
        "CONCURRENT_UPDATE",
        "the object changed during the request; read it again and retry",
    )
    .with_domain(NAME)
}

fn slug_taken(slug: &str) -> Error {
    Error::new(Code::AlreadyExists, "SLUG_TAKEN", "the slug is in use")
        .with_domain(NAME)
        .with_metadata("slug", slug)
        .with_violation("slug", "is in use")
}

/// A cursor of the organization listing: the last id returned (or scanned).
#[derive(Serialize, Deserialize)]
struct After(String);

/// A cursor of `ListMyOrganizations`: the last (sort key, id) returned.
#[derive(Serialize, Deserialize)]
struct AfterName(String, String);

impl Core {
    /// A live or deleted organization, or NOT_FOUND.
    pub(crate) async fn organization(&self, id: &str) -> Result<OrganizationRow> {
        self.store
            .organization(id)
            .await?
            .ok_or_else(|| not_found(KIND))
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
            return Err(precondition(
                "ORGANIZATION_DELETED",
                "the organization is deleted; undelete it first",
            ));
        }
        Ok(org)
    }

    /// Whether departments may be created under `parent`: the nearest
    /// organization of kind `organization` at or above it decides.
    async fn departments_allowed(&self, parent: &OrganizationRow) -> Result<bool> {
        if parent.kind == "organization" {
            return Ok(parent.departments_enabled);
        }
        let ancestors = self
            .store
            .organizations_by_id(&parent.ancestor_ids())
            .await?;
        let by_id: HashMap<&str, &OrganizationRow> =
            ancestors.iter().map(|a| (a.id.as_str(), a)).collect();
        for id in parent.ancestor_ids().iter().rev() {
            if let Some(ancestor) = by_id.get(id)
                && ancestor.kind == "organization"
            {
                return Ok(ancestor.departments_enabled);
            }
        }
        Ok(true)
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
        let roots = self.store.workspace_roots(&ws.id).await?;
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

    /// Creates an organization with the given new `id`. A child's quota
    /// unit is reserved under `id` before anything is written; the caller
    /// releases it when this fails ([`create_organization_or_release`]).
    async fn create_organization(
        &self,
        caller: &Caller,
        id: String,
        input: pb::Organization,
        request_id: &str,
    ) -> Result<OrganizationRow> {
        validate::request_id(request_id)?;
        let caller_name = caller.resource_name();
        if let Some(id) = self
            .replay(&caller_name, "CreateOrganization", request_id)
            .await?
        {
            return self.organization(&id).await;
        }

        // Who owns it: the calling user, or the user a service names.
        let owner_id = if input.owner.is_empty() {
            if !caller.is_user() {
                return Err(Error::invalid_field(
                    "organization.owner",
                    "is required when the caller is not a user",
                ));
            }
            caller.id().to_string()
        } else {
            let owner = user_id("organization.owner", &input.owner)?;
            if caller.is_user() && owner != caller.id() {
                return Err(Error::invalid_field(
                    "organization.owner",
                    "must be the calling user; ownership changes through TransferOwnership",
                ));
            }
            owner
        };
        validate::display_name("organization.display_name", &input.display_name)?;
        let explicit_slug = !input.slug.is_empty();
        if explicit_slug {
            validate::organization_slug("organization.slug", &input.slug)?;
        }
        let kind = match input.kind() {
            pb::OrganizationKind::Department => "department",
            _ => "organization",
        };
        let settings = input.settings.clone().unwrap_or_default();
        let domains = validate::email_domains(
            "organization.settings.allowed_email_domains",
            &settings.allowed_email_domains,
        )?;
        let metadata: BTreeMap<String, String> = input.metadata.clone().into_iter().collect();
        validate::metadata("organization.metadata", &metadata)?;
        let granted_only = projects_granted_only(&settings)?;

        let now = now_micros();
        let mut new_workspace = None;
        let (parent, workspace_id, root_id, path, depth) = if input.parent.is_empty() {
            if kind == "department" {
                return Err(Error::invalid_field(
                    "organization.kind",
                    "a root is always an organization",
                ));
            }
            if !(caller.is_user() || caller.is_internal()) {
                return Err(Error::permission_denied("organization.create").with_domain(NAME));
            }
            let workspace_id = if input.workspace.is_empty() {
                let ws = WorkspaceRow {
                    id: new_id().to_string(),
                    display_name: input.display_name.clone(),
                    billing_mode: "single".into(),
                    created_by: format!("users/{owner_id}"),
                    created_at_us: now,
                    updated_at_us: now,
                    version: 1,
                };
                let ws_id = ws.id.clone();
                new_workspace = Some(ws);
                ws_id
            } else {
                let ws_id =
                    parse_name("organization.workspace", "workspaces/{}", &input.workspace)?[0]
                        .to_string();
                let ws = self
                    .store
                    .workspace(&ws_id)
                    .await?
                    .ok_or_else(|| not_found("workspace"))?;
                if !self
                    .workspace_allows(caller, &ws, Permission::BILLING_MANAGE)
                    .await?
                {
                    return Err(not_found("workspace"));
                }
                ws_id
            };
            (None, workspace_id, id.clone(), format!("/{id}/"), 1)
        } else {
            if !input.workspace.is_empty() {
                return Err(Error::invalid_field(
                    "organization.workspace",
                    "only a root picks its workspace; children share their root's",
                ));
            }
            let parent_id = organization_id("organization.parent", &input.parent)?;
            let permission = if kind == "department" {
                Permission::ORGANIZATION_DEPARTMENTS_CREATE
            } else {
                Permission::ORGANIZATION_SUBORGANIZATIONS_CREATE
            };
            let parent = self
                .live_organization(caller, &parent_id, permission)
                .await?;
            if parent.depth + 1 > MAX_DEPTH {
                return Err(too_deep());
            }
            if kind == "department" && !self.departments_allowed(&parent).await? {
                return Err(precondition(
                    "DEPARTMENTS_DISABLED",
                    "the organization has departments switched off",
                ));
            }
            if let Err(error) = self
                .quotas
                .ensure(caller, &parent.id, Metric::SubOrganizations, &id)
                .await
            {
                self.record_denied(caller, &parent, permission, &error)
                    .await;
                return Err(error);
            }
            let path = format!("{}{id}/", parent.path);
            (
                Some(parent.clone()),
                parent.workspace_id.clone(),
                parent.root_id.clone(),
                path,
                parent.depth + 1,
            )
        };

        let mut row = OrganizationRow {
            id: id.clone(),
            slug: if explicit_slug {
                input.slug.clone()
            } else {
                validate::slug_from(&input.display_name, "org", 3)
            },
            display_name: input.display_name.clone(),
            kind: kind.into(),
            parent_id: parent.as_ref().map(|p| p.id.clone()),
            root_id,
            workspace_id,
            path,
            depth,
            inherit_access: parent.is_none() || input.inherit_access.unwrap_or(true),
            departments_enabled: settings.departments_enabled.unwrap_or(true),
            require_mfa: settings.require_mfa,
            // Unset: a child sees as its parent does, a root as the
            // installation says.
            projects_granted_only: match (granted_only, &parent) {
                (Some(granted_only), _) => granted_only,
                (None, Some(parent)) => parent.projects_granted_only,
                (None, None) => self.options.project_visibility == ProjectVisibility::Granted,
            },
            allowed_email_domains: domains,
            metadata,
            state: "active".into(),
            owner_id: owner_id.clone(),
            created_by: caller_name.clone(),
            created_at_us: now,
            updated_at_us: now,
            deleted_at_us: None,
            purge_at_us: None,
            deleted_with: None,
            version: 1,
        };

        let mut tx = self.begin().await?;
        // A concurrent replay may have won the race since the first look.
        if let Some(existing) = self
            .store
            .replayed(&mut tx, &caller_name, "CreateOrganization", request_id)
            .await?
        {
            drop(tx);
            return self.organization(&existing).await;
        }
        if self
            .store
            .organization_slug_taken(&mut tx, &row.slug, "")
            .await?
        {
            if explicit_slug {
                return Err(slug_taken(&row.slug));
            }
            row.slug = format!("{}-{}", row.slug, slug_suffix());
        }
        if let Some(ws) = &new_workspace {
            self.store.insert_workspace(&mut tx, ws).await?;
            self.emit(
                &mut tx,
                caller,
                "workspace.created",
                ("workspace", &ws.id),
                (&row.id, &row.root_id),
                &events::WorkspaceCreated {
                    workspace_id: ws.id.clone(),
                    display_name: ws.display_name.clone(),
                    billing_mode: event_billing_mode(&ws.billing_mode),
                },
                Vec::new(),
                vec![target("workspace", &ws.id, &ws.display_name)],
            )
            .await?;
        }
        // Two creates with one name at once both find the slug free: the
        // loser of the unique index takes a suffix instead of failing.
        let base = row.slug.clone();
        for attempt in 0.. {
            let savepoint = Savepoint::set(&mut tx).await?;
            match self.store.insert_organization(&mut tx, &row).await {
                Ok(()) => {
                    savepoint.release(&mut tx).await?;
                    break;
                }
                Err(e) if e.code() == Code::AlreadyExists && !explicit_slug && attempt < 3 => {
                    savepoint.undo(&mut tx).await?;
                    row.slug = format!("{base}-{}", slug_suffix());
                }
                Err(e) if e.code() == Code::AlreadyExists => return Err(slug_taken(&row.slug)),
                Err(e) => return Err(e),
            }
        }
        self.store
            .remember_request(
                &mut tx,
                &caller_name,
                "CreateOrganization",
                request_id,
                &row.id,
            )
            .await?;
        self.emit(
            &mut tx,
            caller,
            "organization.created",
            (KIND, &row.id),
            (&row.id, &row.root_id),
            &events::OrganizationCreated {
                organization_id: row.id.clone(),
                parent_id: row.parent_id.clone().unwrap_or_default(),
                root_id: row.root_id.clone(),
                workspace_id: row.workspace_id.clone(),
                kind: event_kind(&row.kind),
                depth: row.depth as i32,
                slug: row.slug.clone(),
                display_name: row.display_name.clone(),
                inherit_access: row.inherit_access,
                owner_user_id: row.owner_id.clone(),
                projects_granted_only: row.projects_granted_only,
            },
            Vec::new(),
            vec![target(KIND, &row.id, &row.display_name)],
        )
        .await?;
        self.commit(tx).await?;
        Ok(row)
    }

    /// [`create_organization`](Self::create_organization), giving back the
    /// sub-organization unit it reserved when it fails after reserving.
    async fn create_organization_or_release(
        &self,
        caller: &Caller,
        input: pb::Organization,
        request_id: &str,
    ) -> Result<OrganizationRow> {
        let id = new_id().to_string();
        let parent = (!input.parent.is_empty())
            .then(|| organization_id("organization.parent", &input.parent).ok())
            .flatten();
        let created = self
            .create_organization(caller, id.clone(), input, request_id)
            .await;
        if created.is_err()
            && let Some(parent) = parent
        {
            self.quotas
                .release(caller, &parent, Metric::SubOrganizations, &id)
                .await;
        }
        created
    }

    /// The resource a replayed request id created, looked up outside any
    /// transaction (the write path checks again inside its own).
    pub(crate) async fn replay(
        &self,
        caller: &str,
        method: &str,
        request_id: &str,
    ) -> Result<Option<String>> {
        if request_id.is_empty() {
            return Ok(None);
        }
        let mut tx = self.begin().await?;
        let found = self
            .store
            .replayed(&mut tx, caller, method, request_id)
            .await?;
        drop(tx);
        Ok(found)
    }

    async fn list_organizations(
        &self,
        caller: &Caller,
        request: &pb::ListOrganizationsRequest,
    ) -> Result<(Vec<OrganizationRow>, String)> {
        let size = page_size(request.page_size, 50, 1000)? as usize;
        let query = format!(
            "organizations|{}|{}|{}|{}|{}|{}",
            request.parent,
            request.kind,
            request.name_prefix,
            request.show_deleted,
            request.workspace,
            request.state
        );
        let after: String = self
            .page_tokens
            .decode::<After>(query.as_bytes(), &request.page_token)?
            .map(|a| a.0)
            .unwrap_or_default();
        let mut filter = OrganizationFilter {
            kind: match request.kind() {
                pb::OrganizationKind::Organization => Some("organization"),
                pb::OrganizationKind::Department => Some("department"),
                pb::OrganizationKind::Unspecified => None,
            },
            state: match request.state() {
                pb::OrganizationState::Active => Some("active"),
                pb::OrganizationState::Deactivated => Some("deactivated"),
                pb::OrganizationState::Unspecified => None,
            },
            name_prefix: request.name_prefix.clone(),
            show_deleted: request.show_deleted,
            ..OrganizationFilter::default()
        };
        if !request.workspace.is_empty() {
            filter.workspace_id =
                Some(parse_name("workspace", "workspaces/{}", &request.workspace)?[0].to_string());
        }
        if !request.parent.is_empty() {
            let parent = organization_id("parent", &request.parent)?;
            self.readable_organization(caller, &parent).await?;
            filter.parent_id = Some(parent);
        } else if !caller.is_internal() {
            // Only the trees the caller belongs to can hold what they may
            // read; scanning every tree of the deployment would not scale.
            filter.roots = Some(self.member_roots(caller).await?);
        }

        let mut found = Vec::new();
        let mut cursor = after;
        // Bounded work per call: a page may come back short, with a token
        // to continue, rather than scan without end.
        for _ in 0..10 {
            let batch = self
                .store
                .organizations(&filter, &cursor, (size + 1).max(100) as i64)
                .await?;
            let exhausted = batch.len() < (size + 1).max(100);
            let readable = if caller.is_internal() {
                vec![true; batch.len()]
            } else {
                let checks: Vec<(Object<'_>, Permission)> = batch
                    .iter()
                    .map(|o| (Object::Organization(&o.id), Permission::ORGANIZATION_READ))
                    .collect();
                self.access.check_all(caller, &checks).await?
            };
            for (org, ok) in batch.into_iter().zip(readable) {
                if found.len() == size {
                    let next = self.page_tokens.encode(query.as_bytes(), &After(cursor));
                    return Ok((found, next));
                }
                cursor = org.id.clone();
                if ok {
                    found.push(org);
                }
            }
            if exhausted {
                return Ok((found, String::new()));
            }
        }
        let next = self.page_tokens.encode(query.as_bytes(), &After(cursor));
        Ok((found, next))
    }

    /// The roots of the trees the caller is a member in (for an API key or
    /// service account token: the tree of its organization).
    async fn member_roots(&self, caller: &Caller) -> Result<Vec<String>> {
        let ids: Vec<String> = if caller.is_user() {
            self.access
                .my_memberships(caller)
                .await?
                .into_iter()
                .map(|(id, _)| id)
                .collect()
        } else {
            caller.principal.organization.iter().cloned().collect()
        };
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let rows = self.store.organizations_by_id(&refs).await?;
        let roots: BTreeSet<String> = rows.into_iter().map(|r| r.root_id).collect();
        Ok(roots.into_iter().collect())
    }

    async fn update_organization(
        &self,
        caller: &Caller,
        input: pb::Organization,
        mask: Option<prost_types::FieldMask>,
    ) -> Result<OrganizationRow> {
        let id = organization_id("organization.name", &input.name)?;
        let paths = validate::update_mask(
            mask.as_ref(),
            &[
                "display_name",
                "slug",
                "inherit_access",
                "metadata",
                "settings",
                "settings.departments_enabled",
                "settings.require_mfa",
                "settings.allowed_email_domains",
                "settings.project_visibility",
            ],
        )?;
        let current = self
            .live_organization(caller, &id, Permission::ORGANIZATION_SETTINGS_MANAGE)
            .await?;
        check_etag(&input.etag, current.version)?;
        let mut next = current.clone();
        let settings = input.settings.clone().unwrap_or_default();
        let mut changes = Vec::new();
        let mut changed_fields = Vec::new();
        for path in paths {
            let expanded: &[&str] = if path == "settings" {
                &[
                    "settings.departments_enabled",
                    "settings.require_mfa",
                    "settings.allowed_email_domains",
                    "settings.project_visibility",
                ]
            } else {
                std::slice::from_ref(&path)
            };
            for &field in expanded {
                match field {
                    "display_name" => {
                        validate::display_name("organization.display_name", &input.display_name)?;
                        next.display_name = input.display_name.clone();
                    }
                    "slug" => {
                        validate::organization_slug("organization.slug", &input.slug)?;
                        next.slug = input.slug.clone();
                    }
                    "inherit_access" => {
                        let inherit = input.inherit_access.unwrap_or(true);
                        if current.parent_id.is_none() && !inherit {
                            return Err(Error::invalid_field(
                                "organization.inherit_access",
                                "a root has no ancestors to inherit from",
                            ));
                        }
                        next.inherit_access = inherit;
                    }
                    "metadata" => {
                        let metadata: BTreeMap<String, String> =
                            input.metadata.clone().into_iter().collect();
                        validate::metadata("organization.metadata", &metadata)?;
                        next.metadata = metadata;
                    }
                    "settings.departments_enabled" => {
                        next.departments_enabled = settings.departments_enabled.unwrap_or(true);
                    }
                    "settings.require_mfa" => next.require_mfa = settings.require_mfa,
                    "settings.project_visibility" => {
                        next.projects_granted_only = match projects_granted_only(&settings)? {
                            Some(granted_only) => granted_only,
                            // Unset is reset to the default: the parent's
                            // setting, or the installation's for a root.
                            None => {
                                self.default_granted_only(current.parent_id.as_deref())
                                    .await?
                            }
                        };
                    }
                    _ => {
                        next.allowed_email_domains = validate::email_domains(
                            "organization.settings.allowed_email_domains",
                            &settings.allowed_email_domains,
                        )?;
                    }
                }
                if let Some(c) = field_change(field, &current, &next) {
                    changed_fields.push(field.to_string());
                    changes.push(c);
                }
            }
        }
        next.updated_at_us = now_micros();
        next.version = current.version + 1;

        let mut tx = self.begin().await?;
        self.ensure_unchanged(&mut tx, &current).await?;
        if next.slug != current.slug
            && self
                .store
                .organization_slug_taken(&mut tx, &next.slug, &id)
                .await?
        {
            return Err(slug_taken(&next.slug));
        }
        self.store.update_organization(&mut tx, &next).await?;
        self.emit(
            &mut tx,
            caller,
            "organization.updated",
            (KIND, &id),
            (&id, &next.root_id),
            &events::OrganizationUpdated {
                organization_id: id.clone(),
                slug: next.slug.clone(),
                display_name: next.display_name.clone(),
                inherit_access: next.inherit_access,
                require_mfa: next.require_mfa,
                departments_enabled: next.departments_enabled,
                allowed_email_domains: next.allowed_email_domains.clone(),
                changed_fields,
                projects_granted_only: next.projects_granted_only,
            },
            changes,
            vec![target(KIND, &id, &next.display_name)],
        )
        .await?;
        self.commit(tx).await?;
        Ok(next)
    }

    /// Whether members see only their granted projects when nothing says
    /// otherwise: as the parent does, or as the installation says for a
    /// root.
    async fn default_granted_only(&self, parent: Option<&str>) -> Result<bool> {
        match parent {
            Some(parent) => Ok(self.organization(parent).await?.projects_granted_only),
            None => Ok(self.options.project_visibility == ProjectVisibility::Granted),
        }
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
            return Err(concurrent_update());
        }
        Ok(now)
    }

    async fn delete_organization(
        &self,
        caller: &Caller,
        name: &str,
        given_etag: &str,
        force: bool,
    ) -> Result<OrganizationRow> {
        let id = organization_id("name", name)?;
        let current = self
            .live_organization(caller, &id, Permission::ORGANIZATION_DELETE)
            .await?;
        check_etag(given_etag, current.version)?;
        let now = now_micros();
        let purge_at = self.purge_at(now);
        let mut tx = self.begin().await?;
        self.ensure_unchanged(&mut tx, &current).await?;
        let mut cascaded = Vec::new();
        if self.store.live_children(&mut tx, &id).await? > 0 {
            if !force {
                return Err(precondition(
                    "ORGANIZATION_NOT_EMPTY",
                    "the organization has live child organizations, teams or projects; delete them first or set force",
                ));
            }
            for mut child in self.store.descendants(&mut tx, &current).await? {
                if child.is_deleted() {
                    continue;
                }
                child.deleted_at_us = Some(now);
                child.purge_at_us = Some(purge_at);
                child.deleted_with = Some(id.clone());
                child.version += 1;
                child.updated_at_us = now;
                self.store.update_organization(&mut tx, &child).await?;
                cascaded.push(child.id);
            }
        }
        let mut scope = cascaded.clone();
        scope.push(id.clone());
        self.store
            .cascade_delete_children(&mut tx, &scope, &id, now, purge_at)
            .await?;
        let mut next = current.clone();
        next.deleted_at_us = Some(now);
        next.purge_at_us = Some(purge_at);
        next.deleted_with = None;
        next.updated_at_us = now;
        next.version += 1;
        self.store.update_organization(&mut tx, &next).await?;
        self.emit(
            &mut tx,
            caller,
            "organization.deleted",
            (KIND, &id),
            (&id, &next.root_id),
            &events::OrganizationDeleted {
                organization_id: id.clone(),
                parent_id: next.parent_id.clone().unwrap_or_default(),
                kind: event_kind(&next.kind),
                display_name: next.display_name.clone(),
                cascaded_organization_ids: cascaded,
                purge_time: Some(timestamp(purge_at)),
            },
            Vec::new(),
            vec![target(KIND, &id, &next.display_name)],
        )
        .await?;
        self.commit(tx).await?;
        Ok(next)
    }

    async fn undelete_organization(
        &self,
        caller: &Caller,
        name: &str,
        given_etag: &str,
    ) -> Result<OrganizationRow> {
        let id = organization_id("name", name)?;
        let current = self.organization(&id).await?;
        self.authorize_organization(caller, &current, Permission::ORGANIZATION_DELETE)
            .await?;
        check_etag(given_etag, current.version)?;
        if !current.is_deleted() {
            return Err(precondition(
                "ORGANIZATION_NOT_DELETED",
                "the organization is not deleted",
            ));
        }
        if current.deleted_with.is_some() {
            return Err(precondition(
                "DELETED_WITH_ANCESTOR",
                "the organization was deleted along with an ancestor; undelete that one",
            ));
        }
        if let Some(parent) = &current.parent_id
            && self.organization(parent).await?.is_deleted()
        {
            return Err(precondition(
                "PARENT_DELETED",
                "the parent organization is deleted; undelete it first",
            ));
        }
        let now = now_micros();
        let mut tx = self.begin().await?;
        self.ensure_unchanged(&mut tx, &current).await?;
        if self
            .store
            .organization_slug_taken(&mut tx, &current.slug, &id)
            .await?
        {
            return Err(slug_taken(&current.slug));
        }
        let mut restored = Vec::new();
        for mut child in self.store.descendants(&mut tx, &current).await? {
            if child.deleted_with.as_deref() != Some(id.as_str()) {
                continue;
            }
            if self
                .store
                .organization_slug_taken(&mut tx, &child.slug, &child.id)
                .await?
            {
                return Err(slug_taken(&child.slug));
            }
            child.deleted_at_us = None;
            child.purge_at_us = None;
            child.deleted_with = None;
            child.version += 1;
            child.updated_at_us = now;
            self.store.update_organization(&mut tx, &child).await?;
            restored.push(child.id);
        }
        let mut scope = restored.clone();
        scope.push(id.clone());
        self.store
            .cascade_restore_children(&mut tx, &scope, &id)
            .await?;
        let mut next = current.clone();
        next.deleted_at_us = None;
        next.purge_at_us = None;
        next.updated_at_us = now;
        next.version += 1;
        self.store.update_organization(&mut tx, &next).await?;
        self.emit(
            &mut tx,
            caller,
            "organization.undeleted",
            (KIND, &id),
            (&id, &next.root_id),
            &events::OrganizationUndeleted {
                organization_id: id.clone(),
                parent_id: next.parent_id.clone().unwrap_or_default(),
                cascaded_organization_ids: restored,
            },
            Vec::new(),
            vec![target(KIND, &id, &next.display_name)],
        )
        .await?;
        self.commit(tx).await?;
        Ok(next)
    }

    async fn move_organization(
        &self,
        caller: &Caller,
        request: &pb::MoveOrganizationRequest,
    ) -> Result<OrganizationRow> {
        let id = organization_id("name", &request.name)?;
        let new_parent_id = organization_id("new_parent", &request.new_parent)?;
        let org = self
            .live_organization(caller, &id, Permission::ORGANIZATION_SETTINGS_MANAGE)
            .await?;
        check_etag(&request.etag, org.version)?;
        let permission = if org.kind == "department" {
            Permission::ORGANIZATION_DEPARTMENTS_CREATE
        } else {
            Permission::ORGANIZATION_SUBORGANIZATIONS_CREATE
        };
        let new_parent = self
            .live_organization(caller, &new_parent_id, permission)
            .await?;
        if org.parent_id.is_none() {
            return Err(precondition(
                "ROOT_CANNOT_MOVE",
                "a root organization cannot be moved",
            ));
        }
        if new_parent.root_id != org.root_id {
            return Err(precondition(
                "CROSS_TREE_MOVE",
                "an organization moves only within its own tree",
            ));
        }
        if new_parent.path.starts_with(&org.path) {
            return Err(precondition(
                "MOVE_CYCLE",
                "an organization cannot move under itself or one of its descendants",
            ));
        }
        if org.parent_id.as_deref() == Some(new_parent_id.as_str()) {
            return Ok(org);
        }
        if org.kind == "department" && !self.departments_allowed(&new_parent).await? {
            return Err(precondition(
                "DEPARTMENTS_DISABLED",
                "the new parent has departments switched off",
            ));
        }
        let now = now_micros();
        let mut tx = self.begin().await?;
        let org = self.ensure_unchanged(&mut tx, &org).await?;
        let new_parent = self.ensure_unchanged(&mut tx, &new_parent).await?;
        let subtree = self.store.descendants(&mut tx, &org).await?;
        let height = subtree.iter().map(|d| d.depth).max().unwrap_or(org.depth) - org.depth;
        let new_depth = new_parent.depth + 1;
        if new_depth + height > MAX_DEPTH {
            return Err(too_deep());
        }
        let new_path = format!("{}{}/", new_parent.path, org.id);
        self.store
            .move_subtree(&mut tx, &org, &new_parent.id, &new_path, now)
            .await?;
        self.emit(
            &mut tx,
            caller,
            "organization.moved",
            (KIND, &id),
            (&id, &org.root_id),
            &events::OrganizationMoved {
                organization_id: id.clone(),
                old_parent_id: org.parent_id.clone().unwrap_or_default(),
                new_parent_id: new_parent.id.clone(),
                root_id: org.root_id.clone(),
                old_depth: org.depth as i32,
                new_depth: new_depth as i32,
                subtree_size: subtree.len() as i32 + 1,
            },
            vec![change(
                "parent",
                org.parent_id.as_deref().unwrap_or_default(),
                &new_parent.id,
            )],
            vec![
                target(KIND, &id, &org.display_name),
                target(KIND, &new_parent.id, &new_parent.display_name),
            ],
        )
        .await?;
        self.commit(tx).await?;
        self.organization(&id).await
    }

    async fn set_state(
        &self,
        caller: &Caller,
        name: &str,
        given_etag: &str,
        deactivate: Option<&str>,
    ) -> Result<OrganizationRow> {
        let id = organization_id("name", name)?;
        if let Some(reason) = deactivate
            && reason.chars().count() > 1000
        {
            return Err(Error::invalid_field(
                "reason",
                "must be at most 1000 characters",
            ));
        }
        let current = self
            .live_organization(caller, &id, Permission::ORGANIZATION_DEACTIVATE)
            .await?;
        check_etag(given_etag, current.version)?;
        let state = if deactivate.is_some() {
            "deactivated"
        } else {
            "active"
        };
        if current.state == state {
            return Ok(current);
        }
        let mut next = current.clone();
        next.state = state.into();
        next.updated_at_us = now_micros();
        next.version += 1;
        let mut tx = self.begin().await?;
        self.ensure_unchanged(&mut tx, &current).await?;
        self.store.update_organization(&mut tx, &next).await?;
        let changes = vec![change("state", &current.state, state)];
        let targets = vec![target(KIND, &id, &next.display_name)];
        match deactivate {
            Some(reason) => {
                self.emit(
                    &mut tx,
                    caller,
                    "organization.deactivated",
                    (KIND, &id),
                    (&id, &next.root_id),
                    &events::OrganizationDeactivated {
                        organization_id: id.clone(),
                        reason: reason.to_string(),
                    },
                    changes,
                    targets,
                )
                .await?
            }
            None => {
                self.emit(
                    &mut tx,
                    caller,
                    "organization.reactivated",
                    (KIND, &id),
                    (&id, &next.root_id),
                    &events::OrganizationReactivated {
                        organization_id: id.clone(),
                    },
                    changes,
                    targets,
                )
                .await?
            }
        }
        self.commit(tx).await?;
        Ok(next)
    }

    async fn ancestry(&self, caller: &Caller, name: &str) -> Result<Vec<OrganizationRow>> {
        let id = organization_id("name", name)?;
        let org = self.readable_organization(caller, &id).await?;
        let ids = org.ancestor_ids();
        let rows = self.store.organizations_by_id(&ids).await?;
        let mut by_id: HashMap<String, OrganizationRow> =
            rows.into_iter().map(|r| (r.id.clone(), r)).collect();
        let ordered: Vec<OrganizationRow> = ids.iter().filter_map(|id| by_id.remove(*id)).collect();
        if caller.is_internal() {
            return Ok(ordered);
        }
        // Breadcrumbs show only what the caller could open.
        let checks: Vec<(Object<'_>, Permission)> = ordered
            .iter()
            .map(|o| (Object::Organization(&o.id), Permission::ORGANIZATION_READ))
            .collect();
        let readable = self.access.check_all(caller, &checks).await?;
        Ok(ordered
            .into_iter()
            .zip(readable)
            .filter_map(|(o, ok)| ok.then_some(o))
            .collect())
    }

    async fn my_organizations(
        &self,
        caller: &Caller,
        request: &pb::ListMyOrganizationsRequest,
    ) -> Result<(Vec<pb::MyOrganization>, String)> {
        if !caller.is_user() {
            return Err(precondition(
                "USER_REQUIRED",
                "only a signed-in user has organizations of their own",
            ));
        }
        let size = page_size(request.page_size, 50, 1000)? as usize;
        let query = format!("my|{}|{}", caller.id(), request.name_prefix);
        let after = self
            .page_tokens
            .decode::<AfterName>(query.as_bytes(), &request.page_token)?;
        let memberships = self.access.my_memberships(caller).await?;
        let ids: Vec<&str> = memberships.iter().map(|(id, _)| id.as_str()).collect();
        let roles: HashMap<&str, &Vec<String>> =
            memberships.iter().map(|(id, r)| (id.as_str(), r)).collect();
        let prefix = request.name_prefix.to_lowercase();
        let mut rows: Vec<(String, OrganizationRow)> = self
            .store
            .organizations_by_id(&ids)
            .await?
            .into_iter()
            .filter(|o| !o.is_deleted())
            .filter(|o| {
                prefix.is_empty()
                    || o.display_name.to_lowercase().starts_with(&prefix)
                    || o.slug.starts_with(&prefix)
            })
            .map(|o| (o.display_name.to_lowercase(), o))
            .collect();
        rows.sort_by(|a, b| (&a.0, &a.1.id).cmp(&(&b.0, &b.1.id)));
        let start = match &after {
            Some(AfterName(key, id)) => rows
                .iter()
                .position(|(k, o)| (k, &o.id) > (key, id))
                .unwrap_or(rows.len()),
            None => 0,
        };
        let page: Vec<&(String, OrganizationRow)> = rows[start..].iter().take(size).collect();
        let next = if start + page.len() < rows.len() {
            let (key, last) = page.last().expect("a non-empty page");
            self.page_tokens
                .encode(query.as_bytes(), &AfterName(key.clone(), last.id.clone()))
        } else {
            String::new()
        };
        let organizations = page
            .into_iter()
            .map(|(_, o)| pb::MyOrganization {
                organization: Some(organization_to_proto(o)),
                roles: roles
                    .get(o.id.as_str())
                    .map(|r| (*r).clone())
                    .unwrap_or_default(),
                owner: o.owner_id == caller.id(),
            })
            .collect();
        Ok((organizations, next))
    }
}

/// The project visibility a request sets: `None` when unset; a value the
/// contract does not define is refused.
fn projects_granted_only(settings: &pb::OrganizationSettings) -> Result<Option<bool>> {
    match pb::ProjectVisibility::try_from(settings.project_visibility) {
        Ok(pb::ProjectVisibility::Unspecified) => Ok(None),
        Ok(pb::ProjectVisibility::AllMembers) => Ok(Some(false)),
        Ok(pb::ProjectVisibility::Granted) => Ok(Some(true)),
        Err(_) => Err(Error::invalid_field(
            "organization.settings.project_visibility",
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

#[tonic::async_trait]
impl pb::organization_service_server::OrganizationService for OrganizationApi {
    async fn create_organization(
        &self,
        request: Request<pb::CreateOrganizationRequest>,
    ) -> Result<Response<pb::CreateOrganizationResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let request = request.into_inner();
        let organization = request
            .organization
            .ok_or_else(|| Error::invalid_field("organization", "is required"))?;
        let row = self
            .0
            .create_organization_or_release(&caller, organization, &request.request_id)
            .await?;
        let default_project = match request.with_default_project {
            true => self.0.create_default_project(&caller, &row).await?,
            false => None,
        };
        Ok(Response::new(pb::CreateOrganizationResponse {
            organization: Some(organization_to_proto(&row)),
            default_project: default_project.map(|(project, _)| project_to_proto(&project)),
        }))
    }

    async fn get_organization(
        &self,
        request: Request<pb::GetOrganizationRequest>,
    ) -> Result<Response<pb::GetOrganizationResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let id = organization_id("name", &request.get_ref().name)?;
        let row = self.0.readable_organization(&caller, &id).await?;
        Ok(Response::new(pb::GetOrganizationResponse {
            organization: Some(organization_to_proto(&row)),
        }))
    }

    async fn list_organizations(
        &self,
        request: Request<pb::ListOrganizationsRequest>,
    ) -> Result<Response<pb::ListOrganizationsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let (rows, next_page_token) = self
            .0
            .list_organizations(&caller, request.get_ref())
            .await?;
        Ok(Response::new(pb::ListOrganizationsResponse {
            organizations: rows.iter().map(organization_to_proto).collect(),
            next_page_token,
        }))
    }

    async fn update_organization(
        &self,
        request: Request<pb::UpdateOrganizationRequest>,
    ) -> Result<Response<pb::UpdateOrganizationResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let request = request.into_inner();
        let organization = request
            .organization
            .ok_or_else(|| Error::invalid_field("organization", "is required"))?;
        let row = self
            .0
            .update_organization(&caller, organization, request.update_mask)
            .await?;
        Ok(Response::new(pb::UpdateOrganizationResponse {
            organization: Some(organization_to_proto(&row)),
        }))
    }

    async fn delete_organization(
        &self,
        request: Request<pb::DeleteOrganizationRequest>,
    ) -> Result<Response<pb::DeleteOrganizationResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let r = request.get_ref();
        let row = self
            .0
            .delete_organization(&caller, &r.name, &r.etag, r.force)
            .await?;
        Ok(Response::new(pb::DeleteOrganizationResponse {
            organization: Some(organization_to_proto(&row)),
        }))
    }

    async fn undelete_organization(
        &self,
        request: Request<pb::UndeleteOrganizationRequest>,
    ) -> Result<Response<pb::UndeleteOrganizationResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let r = request.get_ref();
        let row = self
            .0
            .undelete_organization(&caller, &r.name, &r.etag)
            .await?;
        Ok(Response::new(pb::UndeleteOrganizationResponse {
            organization: Some(organization_to_proto(&row)),
        }))
    }

    async fn move_organization(
        &self,
        request: Request<pb::MoveOrganizationRequest>,
    ) -> Result<Response<pb::MoveOrganizationResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let row = self.0.move_organization(&caller, request.get_ref()).await?;
        Ok(Response::new(pb::MoveOrganizationResponse {
            organization: Some(organization_to_proto(&row)),
        }))
    }

    async fn deactivate_organization(
        &self,
        request: Request<pb::DeactivateOrganizationRequest>,
    ) -> Result<Response<pb::DeactivateOrganizationResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let r = request.get_ref();
        let row = self
            .0
            .set_state(&caller, &r.name, &r.etag, Some(&r.reason))
            .await?;
        Ok(Response::new(pb::DeactivateOrganizationResponse {
            organization: Some(organization_to_proto(&row)),
        }))
    }

    async fn reactivate_organization(
        &self,
        request: Request<pb::ReactivateOrganizationRequest>,
    ) -> Result<Response<pb::ReactivateOrganizationResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let r = request.get_ref();
        let row = self.0.set_state(&caller, &r.name, &r.etag, None).await?;
        Ok(Response::new(pb::ReactivateOrganizationResponse {
            organization: Some(organization_to_proto(&row)),
        }))
    }

    async fn get_organization_ancestry(
        &self,
        request: Request<pb::GetOrganizationAncestryRequest>,
    ) -> Result<Response<pb::GetOrganizationAncestryResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let rows = self.0.ancestry(&caller, &request.get_ref().name).await?;
        Ok(Response::new(pb::GetOrganizationAncestryResponse {
            ancestors: rows.iter().map(organization_to_proto).collect(),
        }))
    }

    async fn list_my_organizations(
        &self,
        request: Request<pb::ListMyOrganizationsRequest>,
    ) -> Result<Response<pb::ListMyOrganizationsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let (organizations, next_page_token) =
            self.0.my_organizations(&caller, request.get_ref()).await?;
        Ok(Response::new(pb::ListMyOrganizationsResponse {
            organizations,
            next_page_token,
        }))
    }

    async fn transfer_ownership(
        &self,
        request: Request<pb::TransferOwnershipRequest>,
    ) -> Result<Response<pb::TransferOwnershipResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let transfer = self.0.start_transfer(&caller, request.get_ref()).await?;
        Ok(Response::new(pb::TransferOwnershipResponse {
            ownership_transfer: Some(transfer),
        }))
    }

    async fn get_ownership_transfer(
        &self,
        request: Request<pb::GetOwnershipTransferRequest>,
    ) -> Result<Response<pb::GetOwnershipTransferResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let transfer = self
            .0
            .get_transfer(&caller, &request.get_ref().name)
            .await?;
        Ok(Response::new(pb::GetOwnershipTransferResponse {
            ownership_transfer: Some(transfer),
        }))
    }

    async fn accept_ownership_transfer(
        &self,
        request: Request<pb::AcceptOwnershipTransferRequest>,
    ) -> Result<Response<pb::AcceptOwnershipTransferResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let r = request.get_ref();
        let (transfer, org) = self.0.accept_transfer(&caller, &r.name, &r.token).await?;
        Ok(Response::new(pb::AcceptOwnershipTransferResponse {
            ownership_transfer: Some(transfer),
            organization: Some(organization_to_proto(&org)),
        }))
    }

    async fn cancel_ownership_transfer(
        &self,
        request: Request<pb::CancelOwnershipTransferRequest>,
    ) -> Result<Response<pb::CancelOwnershipTransferResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let transfer = self
            .0
            .end_transfer(
                &caller,
                &request.get_ref().name,
                crate::ownership::Ending::Cancel,
            )
            .await?;
        Ok(Response::new(pb::CancelOwnershipTransferResponse {
            ownership_transfer: Some(transfer),
        }))
    }

    async fn decline_ownership_transfer(
        &self,
        request: Request<pb::DeclineOwnershipTransferRequest>,
    ) -> Result<Response<pb::DeclineOwnershipTransferResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let transfer = self
            .0
            .end_transfer(
                &caller,
                &request.get_ref().name,
                crate::ownership::Ending::Decline,
            )
            .await?;
        Ok(Response::new(pb::DeclineOwnershipTransferResponse {
            ownership_transfer: Some(transfer),
        }))
    }
}

impl Core {
    async fn create_workspace(
        &self,
        caller: &Caller,
        input: pb::Workspace,
        request_id: &str,
    ) -> Result<WorkspaceRow> {
        validate::request_id(request_id)?;
        if !(caller.is_user() || caller.is_internal()) {
            return Err(Error::permission_denied("workspace.create").with_domain(NAME));
        }
        validate::display_name("workspace.display_name", &input.display_name)?;
        let mode = billing_mode_to_str(input.billing_mode()).ok_or_else(|| {
            Error::invalid_field(
                "workspace.billing_mode",
                "must be SINGLE, ASSIGNED or POOLED",
            )
        })?;
        let caller_name = caller.resource_name();
        let load = |id: String| async move {
            self.store
                .workspace(&id)
                .await?
                .ok_or_else(|| not_found("workspace"))
        };
        if let Some(id) = self
            .replay(&caller_name, "CreateWorkspace", request_id)
            .await?
        {
            return load(id).await;
        }
        let now = now_micros();
        let row = WorkspaceRow {
            id: new_id().to_string(),
            display_name: input.display_name.clone(),
            billing_mode: mode.into(),
            created_by: caller_name.clone(),
            created_at_us: now,
            updated_at_us: now,
            version: 1,
        };
        let mut tx = self.begin().await?;
        if let Some(id) = self
            .store
            .replayed(&mut tx, &caller_name, "CreateWorkspace", request_id)
            .await?
        {
            drop(tx);
            return load(id).await;
        }
        self.store.insert_workspace(&mut tx, &row).await?;
        self.store
            .remember_request(
                &mut tx,
                &caller_name,
                "CreateWorkspace",
                request_id,
                &row.id,
            )
            .await?;
        let mut event = tenantry_kit::outbox::NewEvent::new(
            "workspace.created",
            "workspace",
            row.id.clone(),
            caller.actor(),
            &events::WorkspaceCreated {
                workspace_id: row.id.clone(),
                display_name: row.display_name.clone(),
                billing_mode: event_billing_mode(&row.billing_mode),
            },
        )
        .with_request(caller.request.clone());
        event.targets = vec![target("workspace", &row.id, &row.display_name)];
        tx.emit(event).await?;
        self.commit(tx).await?;
        Ok(row)
    }

    async fn readable_workspace(
        &self,
        caller: &Caller,
        name: &str,
        permission: Permission,
    ) -> Result<WorkspaceRow> {
        let id = parse_name("name", "workspaces/{}", name)?[0].to_string();
        let ws = self
            .store
            .workspace(&id)
            .await?
            .ok_or_else(|| not_found("workspace"))?;
        if self.workspace_allows(caller, &ws, permission).await? {
            Ok(ws)
        } else if permission != Permission::ORGANIZATION_READ
            && self
                .workspace_allows(caller, &ws, Permission::ORGANIZATION_READ)
                .await?
        {
            Err(Error::permission_denied(permission).with_domain(NAME))
        } else {
            Err(not_found("workspace"))
        }
    }
}

/// A cursor of the workspace listing.
#[derive(Serialize, Deserialize)]
struct AfterWorkspace(String);

#[tonic::async_trait]
impl pb::workspace_service_server::WorkspaceService for WorkspaceApi {
    async fn create_workspace(
        &self,
        request: Request<pb::CreateWorkspaceRequest>,
    ) -> Result<Response<pb::CreateWorkspaceResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let request = request.into_inner();
        let workspace = request
            .workspace
            .ok_or_else(|| Error::invalid_field("workspace", "is required"))?;
        let row = self
            .0
            .create_workspace(&caller, workspace, &request.request_id)
            .await?;
        Ok(Response::new(pb::CreateWorkspaceResponse {
            workspace: Some(workspace_to_proto(&row)),
        }))
    }

    async fn get_workspace(
        &self,
        request: Request<pb::GetWorkspaceRequest>,
    ) -> Result<Response<pb::GetWorkspaceResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let row = self
            .0
            .readable_workspace(
                &caller,
                &request.get_ref().name,
                Permission::ORGANIZATION_READ,
            )
            .await?;
        Ok(Response::new(pb::GetWorkspaceResponse {
            workspace: Some(workspace_to_proto(&row)),
        }))
    }

    async fn list_workspaces(
        &self,
        request: Request<pb::ListWorkspacesRequest>,
    ) -> Result<Response<pb::ListWorkspacesResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let core = &self.0;
        let r = request.get_ref();
        let size = page_size(r.page_size, 50, 1000)? as usize;
        let query = format!("workspaces|{}|{}", caller.resource_name(), r.billing_mode);
        let after = core
            .page_tokens
            .decode::<AfterWorkspace>(query.as_bytes(), &r.page_token)?
            .map(|a| a.0)
            .unwrap_or_default();
        let mode = billing_mode_to_str(r.billing_mode()).unwrap_or_default();
        // The workspaces of the trees the caller belongs to, and those the
        // caller created.
        let ids = if caller.is_internal() {
            None
        } else {
            let roots = core.member_roots(&caller).await?;
            let refs: Vec<&str> = roots.iter().map(String::as_str).collect();
            let rows = core.store.organizations_by_id(&refs).await?;
            let ws: BTreeSet<String> = rows.into_iter().map(|r| r.workspace_id).collect();
            Some(ws.into_iter().collect::<Vec<_>>())
        };
        let mut rows = core
            .store
            .workspaces(
                ids.as_deref(),
                &caller.resource_name(),
                mode,
                &after,
                size as i64 + 1,
            )
            .await?;
        let more = rows.len() > size;
        rows.truncate(size);
        let next_page_token = match (more, rows.last()) {
            (true, Some(last)) => core
                .page_tokens
                .encode(query.as_bytes(), &AfterWorkspace(last.id.clone())),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListWorkspacesResponse {
            workspaces: rows.iter().map(workspace_to_proto).collect(),
            next_page_token,
        }))
    }

    async fn update_workspace(
        &self,
        request: Request<pb::UpdateWorkspaceRequest>,
    ) -> Result<Response<pb::UpdateWorkspaceResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let core = &self.0;
        let request = request.into_inner();
        let input = request
            .workspace
            .ok_or_else(|| Error::invalid_field("workspace", "is required"))?;
        if request
            .update_mask
            .as_ref()
            .is_some_and(|m| m.paths.iter().any(|p| p == "billing_mode"))
        {
            return Err(Error::new(
                Code::InvalidArgument,
                "BILLING_MODE_IMMUTABLE",
                "a workspace's billing mode is fixed at creation",
            )
            .with_domain(NAME)
            .with_violation("update_mask", "`billing_mode` cannot change")
            .into());
        }
        validate::update_mask(request.update_mask.as_ref(), &["display_name"])?;
        validate::display_name("workspace.display_name", &input.display_name)?;
        let current = core
            .readable_workspace(&caller, &input.name, Permission::BILLING_MANAGE)
            .await?;
        check_etag(&input.etag, current.version)?;
        let mut next = current.clone();
        next.display_name = input.display_name.clone();
        next.updated_at_us = now_micros();
        next.version += 1;
        let mut tx = core.begin().await?;
        match core.store.workspace_in(&mut tx, &current.id).await? {
            Some(now) if now.version == current.version => {}
            _ => return Err(concurrent_update().into()),
        }
        core.store.update_workspace(&mut tx, &next).await?;
        let mut event = tenantry_kit::outbox::NewEvent::new(
            "workspace.updated",
            "workspace",
            next.id.clone(),
            caller.actor(),
            &events::WorkspaceUpdated {
                workspace_id: next.id.clone(),
                display_name: next.display_name.clone(),
                changed_fields: vec!["display_name".into()],
            },
        )
        .with_request(caller.request.clone())
        .with_changes(vec![change(
            "display_name",
            &current.display_name,
            &next.display_name,
        )]);
        event.targets = vec![target("workspace", &next.id, &next.display_name)];
        tx.emit(event).await?;
        core.commit(tx).await?;
        Ok(Response::new(pb::UpdateWorkspaceResponse {
            workspace: Some(workspace_to_proto(&next)),
        }))
    }
}
