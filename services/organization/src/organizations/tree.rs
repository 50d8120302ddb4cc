//! The shape of the tree: creating organizations and departments under a
//! parent (depth, department rules, plan limits), moving a subtree within
//! its tree, and reading an organization's ancestry.

use super::*;
use tenantry_kit::names::{OrganizationName, UserName, WorkspaceName};

impl Core {
    /// Whether departments may be created under `parent`: the nearest
    /// organization of kind `organization` at or above it decides.
    pub(super) async fn departments_allowed(&self, parent: &OrganizationRow) -> Result<bool> {
        if parent.kind == "organization" {
            return Ok(parent.departments_enabled);
        }
        let ancestors = self
            .store
            .organizations_by_id(&parent.ancestor_ids())
            .await?;
        let by_id: HashMap<&str, &OrganizationRow> =
            ancestors.iter().map(|a| (a.id.as_str(), a)).collect();
        Ok(departments_allowed_under(parent, |id| {
            by_id.get(id).copied()
        }))
    }

    /// Creates an organization with the given new `id`. A child's quota
    /// unit is reserved under `id` before anything is written; the caller
    /// releases it when this fails ([`create_organization_or_release`]).
    pub(super) async fn create_organization(
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
            let owner = UserName::parse("organization.owner", &input.owner)?.id;
            if caller.is_user() && owner != caller.id() {
                return Err(Error::invalid_field(
                    "organization.owner",
                    "must be the calling user; ownership changes through TransferOwnership",
                ));
            }
            owner
        };
        let fields = NewOrganization::parse("organization", &input)?;
        let kind = fields.kind;

        let now = now_micros();
        let mut new_workspace = None;
        let (parent, workspace_id) = if input.parent.is_empty() {
            if !(caller.is_user() || caller.is_internal()) {
                return Err(Error::permission_denied("organization.create").with_domain(NAME));
            }
            let workspace_id = if input.workspace.is_empty() {
                let ws = root_workspace(&fields.display_name, &owner_id, now);
                let ws_id = ws.id.clone();
                new_workspace = Some(ws);
                ws_id
            } else {
                let ws_id = WorkspaceName::parse("organization.workspace", &input.workspace)?.id;
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
            (None, workspace_id)
        } else {
            if !input.workspace.is_empty() {
                return Err(Error::invalid_field(
                    "organization.workspace",
                    "only a root picks its workspace; children share their root's",
                ));
            }
            let parent_id = OrganizationName::parse("organization.parent", &input.parent)?.id;
            let permission = if kind == "department" {
                Permission::ORGANIZATION_DEPARTMENTS_CREATE
            } else {
                Permission::ORGANIZATION_SUBORGANIZATIONS_CREATE
            };
            let parent = self
                .live_organization(caller, &parent_id, permission)
                .await?;
            if parent.depth + 1 > MAX_DEPTH {
                return Err(Refusal::TreeTooDeep { max: MAX_DEPTH }.into());
            }
            if kind == "department" && !self.departments_allowed(&parent).await? {
                return Err(Refusal::DepartmentsDisabled {
                    holder: "organization",
                }
                .into());
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
            let workspace_id = parent.workspace_id.clone();
            (Some(parent), workspace_id)
        };

        let explicit_slug = fields.slug.is_some();
        let mut row = self.new_organization_row(
            id,
            fields,
            parent.as_ref(),
            workspace_id,
            owner_id,
            caller_name.clone(),
            now,
        );

        // A new root starts a tree: the request's scope takes it in, so the
        // write can see (and the policy admit) its first row.
        tenancy::enter(&row.root_id);
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
        self.insert_new_organization(
            &mut tx,
            caller,
            &mut row,
            explicit_slug,
            new_workspace.as_ref(),
            "slug",
        )
        .await?;
        self.store
            .remember_request(
                &mut tx,
                &caller_name,
                "CreateOrganization",
                request_id,
                &row.id,
            )
            .await?;
        self.commit(tx).await?;
        Ok(row)
    }

    /// [`create_organization`](Self::create_organization), giving back the
    /// sub-organization unit it reserved when it fails after reserving.
    pub(super) async fn create_organization_or_release(
        &self,
        caller: &Caller,
        input: pb::Organization,
        request_id: &str,
    ) -> Result<OrganizationRow> {
        let id = new_id().to_string();
        let parent = (!input.parent.is_empty())
            .then(|| OrganizationName::parse("organization.parent", &input.parent).ok())
            .flatten()
            .map(|name| name.id);
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

    /// Whether members see only their granted projects when nothing says
    /// otherwise: as the parent does, or as the installation says for a
    /// root.
    pub(super) async fn default_granted_only(&self, parent: Option<&str>) -> Result<bool> {
        match parent {
            Some(parent) => Ok(self.organization(parent).await?.projects_granted_only),
            None => Ok(self.options.project_visibility == ProjectVisibility::Granted),
        }
    }

    pub(super) async fn move_organization(
        &self,
        caller: &Caller,
        request: &pb::MoveOrganizationRequest,
    ) -> Result<OrganizationRow> {
        let id = OrganizationName::parse("name", &request.name)?.id;
        let new_parent_id = OrganizationName::parse("new_parent", &request.new_parent)?.id;
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
            return Err(Refusal::RootCannotMove.into());
        }
        if new_parent.root_id != org.root_id {
            return Err(Refusal::CrossTreeMove.into());
        }
        if new_parent.path.starts_with(&org.path) {
            return Err(Refusal::MoveCycle.into());
        }
        if org.parent_id.as_deref() == Some(new_parent_id.as_str()) {
            return Ok(org);
        }
        if org.kind == "department" && !self.departments_allowed(&new_parent).await? {
            return Err(Refusal::DepartmentsDisabled {
                holder: "new parent",
            }
            .into());
        }
        let now = now_micros();
        let mut tx = self.begin().await?;
        let org = self.ensure_unchanged(&mut tx, &org).await?;
        let new_parent = self.ensure_unchanged(&mut tx, &new_parent).await?;
        let subtree = self.store.descendants(&mut tx, &org).await?;
        let height = subtree.iter().map(|d| d.depth).max().unwrap_or(org.depth) - org.depth;
        let new_depth = new_parent.depth + 1;
        if new_depth + height > MAX_DEPTH {
            return Err(Refusal::TreeTooDeep { max: MAX_DEPTH }.into());
        }
        let new_path = format!("{}{}/", new_parent.path, org.id);
        self.store
            .move_subtree(&mut tx, &org, &new_parent.id, &new_path, now)
            .await?;
        self.emit(
            &mut tx,
            caller,
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

    pub(super) async fn ancestry(
        &self,
        caller: &Caller,
        name: &str,
    ) -> Result<Vec<OrganizationRow>> {
        let id = OrganizationName::parse("name", name)?.id;
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
}

/// The client's fields of a new organization, checked: what creating one
/// (`CreateOrganization`, or an import) takes from the request, beside
/// its id, parent, owner and workspace.
#[derive(Debug, Clone)]
pub(crate) struct NewOrganization {
    pub display_name: String,
    /// The slug the client chose; `None` derives one from the name.
    pub slug: Option<String>,
    /// `organization` or `department`.
    pub kind: &'static str,
    /// As asked; a root always inherits (it has nothing to inherit from).
    pub inherit_access: bool,
    pub departments_enabled: bool,
    pub require_mfa: bool,
    pub allowed_email_domains: Vec<String>,
    pub metadata: BTreeMap<String, String>,
    /// `None` when the request leaves project visibility unset.
    pub projects_granted_only: Option<bool>,
}

impl NewOrganization {
    /// Checks the fields of `input`, naming each bad one under `prefix`
    /// (`organization` for `CreateOrganization`, `records[3]` for an
    /// import). A root must be of kind organization.
    pub(crate) fn parse(prefix: &str, input: &pb::Organization) -> Result<NewOrganization> {
        validate::display_name(&format!("{prefix}.display_name"), &input.display_name)?;
        let explicit_slug = !input.slug.is_empty();
        if explicit_slug {
            validate::organization_slug(&format!("{prefix}.slug"), &input.slug)?;
        }
        let kind = match input.kind() {
            pb::OrganizationKind::Department => "department",
            _ => "organization",
        };
        let settings = input.settings.clone().unwrap_or_default();
        let allowed_email_domains = validate::email_domains(
            &format!("{prefix}.settings.allowed_email_domains"),
            &settings.allowed_email_domains,
        )?;
        let metadata: BTreeMap<String, String> = input.metadata.clone().into_iter().collect();
        validate::metadata(&format!("{prefix}.metadata"), &metadata)?;
        let projects_granted_only = projects_granted_only(prefix, &settings)?;
        if input.parent.is_empty() && kind == "department" {
            return Err(Error::invalid_field(
                format!("{prefix}.kind"),
                "a root is always an organization",
            ));
        }
        Ok(NewOrganization {
            display_name: input.display_name.clone(),
            slug: explicit_slug.then(|| input.slug.clone()),
            kind,
            inherit_access: input.inherit_access.unwrap_or(true),
            departments_enabled: settings.departments_enabled.unwrap_or(true),
            require_mfa: settings.require_mfa,
            allowed_email_domains,
            metadata,
            projects_granted_only,
        })
    }
}

/// The SINGLE workspace a new root gets when it names none, billed to its
/// owner.
pub(crate) fn root_workspace(display_name: &str, owner_id: &str, now_us: i64) -> WorkspaceRow {
    WorkspaceRow {
        id: new_id().to_string(),
        display_name: display_name.to_string(),
        billing_mode: "single".into(),
        created_by: UserName::new(owner_id).to_string(),
        created_at_us: now_us,
        updated_at_us: now_us,
        version: 1,
    }
}

/// Whether departments may be created under `parent`: the nearest
/// organization of kind `organization` at or above it decides (none: they
/// may). `ancestor` finds a row of `parent`'s ancestors by id.
pub(crate) fn departments_allowed_under<'a>(
    parent: &'a OrganizationRow,
    ancestor: impl Fn(&str) -> Option<&'a OrganizationRow>,
) -> bool {
    if parent.kind == "organization" {
        return parent.departments_enabled;
    }
    for id in parent.ancestor_ids().iter().rev() {
        if let Some(ancestor) = ancestor(id)
            && ancestor.kind == "organization"
        {
            return ancestor.departments_enabled;
        }
    }
    true
}

impl Core {
    /// The row of a new organization `id` under `parent` (a root when
    /// `None`), before its slug is known to be free.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new_organization_row(
        &self,
        id: String,
        fields: NewOrganization,
        parent: Option<&OrganizationRow>,
        workspace_id: String,
        owner_id: String,
        created_by: String,
        now_us: i64,
    ) -> OrganizationRow {
        let (root_id, path, depth) = match parent {
            Some(parent) => (
                parent.root_id.clone(),
                format!("{}{id}/", parent.path),
                parent.depth + 1,
            ),
            None => (id.clone(), format!("/{id}/"), 1),
        };
        OrganizationRow {
            slug: fields
                .slug
                .unwrap_or_else(|| validate::slug_from(&fields.display_name, "org", 3)),
            display_name: fields.display_name,
            kind: fields.kind.into(),
            parent_id: parent.map(|p| p.id.clone()),
            root_id,
            workspace_id,
            path,
            depth,
            inherit_access: parent.is_none() || fields.inherit_access,
            departments_enabled: fields.departments_enabled,
            require_mfa: fields.require_mfa,
            // Unset: a child sees as its parent does, a root as the
            // installation says.
            projects_granted_only: match (fields.projects_granted_only, parent) {
                (Some(granted_only), _) => granted_only,
                (None, Some(parent)) => parent.projects_granted_only,
                (None, None) => self.options.project_visibility == ProjectVisibility::Granted,
            },
            allowed_email_domains: fields.allowed_email_domains,
            metadata: fields.metadata,
            state: "active".into(),
            owner_id,
            created_by,
            created_at_us: now_us,
            updated_at_us: now_us,
            deleted_at_us: None,
            purge_at_us: None,
            deleted_with: None,
            version: 1,
            id,
        }
    }

    /// Writes a new organization in `tx` with its events: its new workspace
    /// first when it has one (`workspace.created`), then the row, its slug
    /// made free when derived (a suffix) or refused when chosen
    /// (`SLUG_TAKEN`, its violation naming `slug_field`), then
    /// `organization.created`.
    pub(crate) async fn insert_new_organization(
        &self,
        tx: &mut Write,
        caller: &Caller,
        row: &mut OrganizationRow,
        explicit_slug: bool,
        new_workspace: Option<&WorkspaceRow>,
        slug_field: &str,
    ) -> Result<()> {
        let slug_taken = |slug: &str| {
            Refusal::SlugTaken {
                slug: slug.to_string(),
            }
            .into_kit(slug_field)
        };
        if self
            .store
            .organization_slug_taken(tx, &row.slug, "")
            .await?
        {
            if explicit_slug {
                return Err(slug_taken(&row.slug));
            }
            row.slug = format!("{}-{}", row.slug, slug_suffix());
        }
        if let Some(ws) = new_workspace {
            self.store.insert_workspace(tx, ws).await?;
            self.emit(
                tx,
                caller,
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
        if !self
            .insert_with_free_slug(tx, NewRow::Organization(&mut *row), explicit_slug)
            .await?
        {
            return Err(slug_taken(&row.slug));
        }
        self.emit(
            tx,
            caller,
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
        Ok(())
    }
}
