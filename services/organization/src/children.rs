//! What teams and projects share: they belong to one organization, have a
//! slug unique among the organization's live ones, a name and a
//! description, and are soft-deleted and restored the same way. Their
//! events differ, so each operation hands back the row and lets the caller
//! write its own event before committing, or takes the event to write.

use serde::{Deserialize, Serialize};
use tenantry_kit::db::now_micros;
use tenantry_kit::error::{Error, Result};
use tenantry_kit::id::new_id;
use tenantry_kit::names::{OrganizationName, ProjectName, TeamName};
use tenantry_kit::page_token::page_size;

use crate::access::{Caller, Object};
use crate::error::Error as Refusal;
use crate::quota::Metric;
use crate::store::{ChildRow, Children, OrganizationRow};
use crate::validate::{self, check_etag};
use crate::{Core, NAME, NewRow, change, changed, not_found, slug_suffix, target};
use tenantry_kit::permission::Permission;
use tenantry_kit::write::Write;
use tenantry_proto::tenantry::events::v1 as events;

/// What a create of a team or project came to.
#[derive(Debug)]
pub(crate) enum Created {
    /// A new row, its write still open: the caller adds its event and
    /// commits.
    New { write: Write, row: ChildRow },
    /// The row an earlier call with the same request id made; nothing was
    /// written.
    Replayed { row: ChildRow },
}

impl Created {
    /// The row, new or replayed.
    pub(crate) fn row(&self) -> &ChildRow {
        match self {
            Created::New { row, .. } | Created::Replayed { row } => row,
        }
    }
}

impl Children {
    /// The create RPC, the key of its idempotent requests.
    fn method(self) -> &'static str {
        match self {
            Children::Teams => "CreateTeam",
            Children::Projects => "CreateProject",
        }
    }

    /// The singular noun, for messages.
    pub fn noun(self) -> &'static str {
        match self {
            Children::Teams => "team",
            Children::Projects => "project",
        }
    }

    fn object(self, id: &str) -> Object<'_> {
        match self {
            Children::Teams => Object::Team(id),
            Children::Projects => Object::Project(id),
        }
    }

    fn create_permission(self) -> Permission {
        match self {
            Children::Teams => Permission::ORGANIZATION_TEAMS_CREATE,
            Children::Projects => Permission::PROJECT_CREATE,
        }
    }

    /// What reading one takes: teams are visible to whoever can read their
    /// organization, projects to whoever was given them (external users
    /// included).
    fn read_permission(self) -> Permission {
        match self {
            Children::Teams => Permission::ORGANIZATION_READ,
            Children::Projects => Permission::PROJECT_READ,
        }
    }

    fn manage_permission(self) -> Permission {
        match self {
            Children::Teams => Permission::TEAM_MANAGE,
            Children::Projects => Permission::PROJECT_MANAGE,
        }
    }

    /// What deleting (and restoring) one takes.
    pub fn delete_permission(self) -> Permission {
        match self {
            Children::Teams => Permission::TEAM_MANAGE,
            Children::Projects => Permission::PROJECT_DELETE,
        }
    }

    fn metric(self) -> Metric {
        match self {
            Children::Teams => Metric::Teams,
            Children::Projects => Metric::Projects,
        }
    }
}

/// The client's fields of a new team or project.
#[derive(Debug, Clone, Default)]
pub struct NewChild {
    pub slug: String,
    pub display_name: String,
    pub description: String,
    pub team_id: Option<String>,
}

impl NewChild {
    /// Checks the fields, naming each bad one under `prefix` (`team`,
    /// `project`, or `records[3]` for an import).
    pub(crate) fn check(&self, prefix: &str) -> Result<()> {
        validate::display_name(&format!("{prefix}.display_name"), &self.display_name)?;
        validate::description(&format!("{prefix}.description"), &self.description)?;
        if !self.slug.is_empty() {
            validate::short_slug(&format!("{prefix}.slug"), &self.slug)?;
        }
        Ok(())
    }

    /// The row of a new team or project `id` of an organization, before
    /// its slug is known to be free (an empty slug is derived from the
    /// name).
    pub(crate) fn into_row(
        self,
        kind: Children,
        organization_id: &str,
        id: String,
        created_by: String,
        now_us: i64,
    ) -> ChildRow {
        ChildRow {
            id,
            organization_id: organization_id.to_string(),
            team_id: self.team_id,
            slug: if self.slug.is_empty() {
                validate::slug_from(&self.display_name, kind.noun(), 1)
            } else {
                self.slug
            },
            display_name: self.display_name,
            description: self.description,
            created_by,
            created_at_us: now_us,
            updated_at_us: now_us,
            deleted_at_us: None,
            purge_at_us: None,
            deleted_with: None,
            version: 1,
        }
    }
}

/// A cursor of team and project listings.
#[derive(Serialize, Deserialize)]
struct After(String);

/// The ids in a team or project name.
pub fn child_ids(kind: Children, field: &str, name: &str) -> Result<(String, String)> {
    Ok(match kind {
        Children::Teams => {
            let name = TeamName::parse(field, name)?;
            (name.organization, name.id)
        }
        Children::Projects => {
            let name = ProjectName::parse(field, name)?;
            (name.organization, name.id)
        }
    })
}

/// What an update changed in a team or project, for its event (a team has
/// no owning team, so never a `team` change).
pub(crate) fn child_changes(before: &ChildRow, after: &ChildRow) -> Vec<events::FieldChange> {
    changed([
        change("slug", &before.slug, &after.slug),
        change("display_name", &before.display_name, &after.display_name),
        change("description", &before.description, &after.description),
        change(
            "team",
            before.team_id.as_deref().unwrap_or_default(),
            after.team_id.as_deref().unwrap_or_default(),
        ),
    ])
}

impl Core {
    /// Checks `permission` on a team or project. Once soft-deleted it is gone
    /// from the authorization index, so what counts then is the right to
    /// create one in its organization.
    async fn authorize_child(
        &self,
        caller: &Caller,
        kind: Children,
        row: &ChildRow,
        permission: Permission,
    ) -> Result<()> {
        if row.deleted_at_us.is_some() {
            return self
                .authorize(
                    caller,
                    Object::Organization(&row.organization_id),
                    kind.create_permission(),
                    Permission::ORGANIZATION_READ,
                    kind.noun(),
                )
                .await;
        }
        let object = match kind {
            // Team reads are organization reads, or `team.read` on the team
            // itself (what a team-scoped API key carries).
            Children::Teams if permission == Permission::ORGANIZATION_READ => {
                let answers = self
                    .access
                    .check_all(
                        caller,
                        &[
                            (
                                Object::Organization(&row.organization_id),
                                Permission::ORGANIZATION_READ,
                            ),
                            (Object::Team(&row.id), Permission::TEAM_READ),
                        ],
                    )
                    .await?;
                return match answers.contains(&true) {
                    true => Ok(()),
                    false => Err(not_found(kind.noun())),
                };
            }
            _ => kind.object(&row.id),
        };
        let read = match object {
            Object::Organization(_) => Permission::ORGANIZATION_READ,
            _ => kind.read_permission(),
        };
        if permission == read {
            return self
                .authorize(caller, object, permission, read, kind.noun())
                .await;
        }
        // Writes: denied but readable is PERMISSION_DENIED, unreadable is
        // NOT_FOUND.
        let answers = self
            .access
            .check_all(
                caller,
                &[
                    (object, permission),
                    (
                        kind.object(&row.id),
                        match kind {
                            Children::Teams => Permission::TEAM_READ,
                            Children::Projects => Permission::PROJECT_READ,
                        },
                    ),
                    (
                        Object::Organization(&row.organization_id),
                        Permission::ORGANIZATION_READ,
                    ),
                ],
            )
            .await?;
        match (answers[0], answers[1] || answers[2]) {
            (true, _) => Ok(()),
            (false, true) => Err(Error::permission_denied(permission).with_domain(NAME)),
            (false, false) => Err(not_found(kind.noun())),
        }
    }

    /// A team or project the caller holds `permission` on; another
    /// organization's id, or one the caller cannot read, is NOT_FOUND.
    pub(crate) async fn child(
        &self,
        caller: &Caller,
        kind: Children,
        name: &str,
        field: &str,
        permission: Option<Permission>,
    ) -> Result<ChildRow> {
        let (organization_id, id) = child_ids(kind, field, name)?;
        self.enter_tenants_of(&[&organization_id]).await?;
        let row = self
            .store
            .child(kind, &organization_id, &id)
            .await?
            .ok_or_else(|| not_found(kind.noun()))?;
        let permission = permission.unwrap_or(kind.read_permission());
        self.authorize_child(caller, kind, &row, permission).await?;
        Ok(row)
    }

    /// Validates and inserts a team or project in an open transaction, after
    /// the permission and quota checks; or, when `request_id` was a replay,
    /// answers the earlier row.
    pub(crate) async fn create_child(
        &self,
        caller: &Caller,
        kind: Children,
        parent: &OrganizationName,
        input: NewChild,
        request_id: &str,
    ) -> Result<(Created, OrganizationRow)> {
        validate::request_id(request_id)?;
        let organization_id = &parent.id;
        input.check(kind.noun())?;
        let org = self
            .live_organization(caller, organization_id, kind.create_permission())
            .await?;
        self.create_child_in(caller, kind, org, input, request_id)
            .await
    }

    /// [`create_child`](Self::create_child) in an organization the caller
    /// is known to be allowed to create it in, with valid input.
    pub(crate) async fn create_child_in(
        &self,
        caller: &Caller,
        kind: Children,
        org: OrganizationRow,
        input: NewChild,
        request_id: &str,
    ) -> Result<(Created, OrganizationRow)> {
        let organization_id = org.id.clone();
        // A retry of a create that happened answers what it made, before
        // anything is reserved: at the plan's limit, the quota would refuse
        // the very object the retry asks about. The write checks again
        // (two retries may race); this look takes no lock.
        if let Some(id) = self
            .replay(&caller.resource_name(), kind.method(), request_id)
            .await?
        {
            return Ok((self.replayed_child(kind, &organization_id, &id).await?, org));
        }
        if let Some(team) = &input.team_id {
            self.live_team(&organization_id, team).await?;
        }
        let id = new_id().to_string();
        if let Err(error) = self
            .quotas
            .ensure(caller, &organization_id, kind.metric(), &id)
            .await
        {
            self.record_denied(caller, &org, kind.create_permission(), &error)
                .await;
            return Err(error);
        }
        let inserted = self
            .insert_child(
                caller,
                kind,
                &organization_id,
                id.clone(),
                input,
                request_id,
            )
            .await;
        match inserted {
            Ok(created) => Ok((created, org)),
            Err(error) => {
                self.quotas
                    .release(caller, &organization_id, kind.metric(), &id)
                    .await;
                Err(error)
            }
        }
    }

    /// The insert behind [`create_child`](Self::create_child), once the
    /// quota holds a unit for `id`.
    async fn insert_child(
        &self,
        caller: &Caller,
        kind: Children,
        organization_id: &str,
        id: String,
        input: NewChild,
        request_id: &str,
    ) -> Result<Created> {
        let method = kind.method();
        let caller_name = caller.resource_name();
        let explicit_slug = !input.slug.is_empty();
        let mut row = input.into_row(kind, organization_id, id, caller_name.clone(), now_micros());
        let mut tx = self.begin().await?;
        if let Some(id) = self
            .store
            .replayed(&mut tx, &caller_name, method, request_id)
            .await?
        {
            drop(tx);
            return self.replayed_child(kind, &row.organization_id, &id).await;
        }
        self.insert_new_child(&mut tx, kind, &mut row, explicit_slug, "slug")
            .await?;
        self.store
            .remember_request(&mut tx, &caller_name, method, request_id, &row.id)
            .await?;
        Ok(Created::New { write: tx, row })
    }

    /// Inserts a new team or project in `tx`: a derived slug that a live
    /// sibling holds takes a suffix, a chosen one is refused (`SLUG_TAKEN`,
    /// its violation naming `slug_field`).
    pub(crate) async fn insert_new_child(
        &self,
        tx: &mut Write,
        kind: Children,
        row: &mut ChildRow,
        explicit_slug: bool,
        slug_field: &str,
    ) -> Result<()> {
        let slug_taken = |slug: &str| {
            Refusal::ChildSlugTaken {
                slug: slug.to_string(),
            }
            .into_kit(slug_field)
        };
        if self
            .store
            .child_slug_taken(tx, kind, &row.organization_id, &row.slug, "")
            .await?
        {
            if explicit_slug {
                return Err(slug_taken(&row.slug));
            }
            row.slug = format!("{}-{}", row.slug, slug_suffix());
        }
        if !self
            .insert_with_free_slug(tx, NewRow::Child(kind, &mut *row), explicit_slug)
            .await?
        {
            return Err(slug_taken(&row.slug));
        }
        Ok(())
    }

    /// What an earlier create with the same request id made.
    async fn replayed_child(
        &self,
        kind: Children,
        organization_id: &str,
        id: &str,
    ) -> Result<Created> {
        let row = self
            .store
            .child(kind, organization_id, id)
            .await?
            .ok_or_else(|| not_found(kind.noun()))?;
        Ok(Created::Replayed { row })
    }

    /// A live team of the organization, or FAILED_PRECONDITION.
    pub(crate) async fn live_team(&self, organization_id: &str, team_id: &str) -> Result<ChildRow> {
        match self
            .store
            .child(Children::Teams, organization_id, team_id)
            .await?
        {
            Some(team) if team.deleted_at_us.is_none() => Ok(team),
            _ => Err(Error::invalid_field(
                "project.team",
                "must be a live team of the same organization",
            )),
        }
    }

    /// Lists teams or projects of an organization the caller may read.
    pub(crate) async fn list_children(
        &self,
        caller: &Caller,
        kind: Children,
        parent: &str,
        query: ListQuery<'_>,
    ) -> Result<(Vec<ChildRow>, String)> {
        let organization_id = OrganizationName::parse("parent", parent)?.id;
        self.enter_tenants_of(&[&organization_id]).await?;
        let size = page_size(query.page_size, 50, 1000)? as usize;
        let fingerprint = format!(
            "{}|{}|{}|{}|{}",
            kind.noun(),
            organization_id,
            query.name_prefix,
            query.team.unwrap_or_default(),
            query.show_deleted
        );
        let mut cursor = self
            .page_tokens
            .decode::<After>(fingerprint.as_bytes(), query.page_token)?
            .map(|a| a.0)
            .unwrap_or_default();
        // Whoever can read the organization sees its teams and, through
        // their roles, usually its projects; an external user sees only the
        // projects granted to them, so the organization itself may be
        // unreadable to them.
        let org_readable = self
            .access
            .check(
                caller,
                Object::Organization(&organization_id),
                Permission::ORGANIZATION_READ,
            )
            .await?
            || caller.is_internal();
        if kind == Children::Teams && !org_readable {
            return Err(not_found("organization"));
        }
        let mut found = Vec::new();
        for _ in 0..10 {
            let want = (size + 1).max(100);
            let batch = self
                .store
                .children(
                    kind,
                    &organization_id,
                    query.name_prefix,
                    query.team,
                    query.show_deleted,
                    &cursor,
                    want as i64,
                )
                .await?;
            let exhausted = batch.len() < want;
            let readable = match kind {
                Children::Teams => vec![true; batch.len()],
                Children::Projects if caller.is_internal() => vec![true; batch.len()],
                Children::Projects => {
                    let checks: Vec<(Object<'_>, Permission)> = batch
                        .iter()
                        .map(|p| {
                            if p.deleted_at_us.is_some() {
                                (
                                    Object::Organization(&p.organization_id),
                                    Permission::PROJECT_CREATE,
                                )
                            } else {
                                (Object::Project(&p.id), Permission::PROJECT_READ)
                            }
                        })
                        .collect();
                    self.access.check_all(caller, &checks).await?
                }
            };
            for (row, ok) in batch.into_iter().zip(readable) {
                if found.len() == size {
                    let next = self
                        .page_tokens
                        .encode(fingerprint.as_bytes(), &After(cursor));
                    return Ok((found, next));
                }
                cursor = row.id.clone();
                if ok {
                    found.push(row);
                }
            }
            if exhausted {
                if found.is_empty() && !org_readable && query.page_token.is_empty() {
                    // Nothing readable and no right to the organization: as
                    // if it did not exist.
                    return Err(not_found("organization"));
                }
                return Ok((found, String::new()));
            }
        }
        let next = self
            .page_tokens
            .encode(fingerprint.as_bytes(), &After(cursor));
        Ok((found, next))
    }

    /// Applies an update mask to a team or project, writes the event
    /// `payload` makes of the row as updated and the changed fields, and
    /// commits.
    pub(crate) async fn update_child<M: tenantry_proto::EventType>(
        &self,
        caller: &Caller,
        kind: Children,
        input: NewChildUpdate<'_>,
        payload: impl FnOnce(&ChildRow, Vec<String>) -> M,
    ) -> Result<ChildRow> {
        let noun = kind.noun();
        let allowed: &[&str] = match kind {
            Children::Teams => &["slug", "display_name", "description"],
            Children::Projects => &["slug", "display_name", "description", "team"],
        };
        let paths = validate::update_mask(input.mask, allowed)?;
        let current = self
            .child(
                caller,
                kind,
                input.name,
                &format!("{noun}.name"),
                Some(kind.manage_permission()),
            )
            .await?;
        if current.deleted_at_us.is_some() {
            return Err(Refusal::Deleted { noun }.into());
        }
        check_etag(input.etag, current.version)?;
        let mut next = current.clone();
        for path in &paths {
            match *path {
                "slug" => {
                    validate::short_slug(&format!("{noun}.slug"), input.fields.slug.as_str())?;
                    next.slug = input.fields.slug.clone();
                }
                "display_name" => {
                    validate::display_name(
                        &format!("{noun}.display_name"),
                        &input.fields.display_name,
                    )?;
                    next.display_name = input.fields.display_name.clone();
                }
                "description" => {
                    validate::description(
                        &format!("{noun}.description"),
                        &input.fields.description,
                    )?;
                    next.description = input.fields.description.clone();
                }
                _ => {
                    if let Some(team) = &input.fields.team_id {
                        self.live_team(&current.organization_id, team).await?;
                    }
                    next.team_id = input.fields.team_id.clone();
                }
            }
        }
        next.updated_at_us = now_micros();
        next.version += 1;
        let mut tx = self.begin().await?;
        self.write_child(&mut tx, kind, &current, &next, next.slug != current.slug)
            .await?;
        let changed = paths.iter().map(|p| p.to_string()).collect();
        let changes = child_changes(&current, &next);
        self.child_event(
            &mut tx,
            caller,
            kind,
            &next,
            &payload(&next, changed),
            changes,
        )
        .await?;
        self.commit(tx).await?;
        Ok(next)
    }

    /// Soft-deletes (`delete = true`) or restores a team or project, writes
    /// the event `payload` makes of the row, and commits.
    pub(crate) async fn set_child_deleted<M: tenantry_proto::EventType>(
        &self,
        caller: &Caller,
        kind: Children,
        name: &str,
        etag: &str,
        delete: bool,
        payload: impl FnOnce(&ChildRow) -> M,
    ) -> Result<ChildRow> {
        let noun = kind.noun();
        let current = self
            .child(caller, kind, name, "name", Some(kind.delete_permission()))
            .await?;
        check_etag(etag, current.version)?;
        if current.deleted_at_us.is_some() == delete {
            return Err(match delete {
                true => Refusal::AlreadyDeleted { noun },
                false => Refusal::NotDeleted { noun },
            }
            .into());
        }
        if !delete && current.deleted_with.is_some() {
            return Err(Refusal::DeletedWithOrganization { noun }.into());
        }
        let org = self.organization(&current.organization_id).await?;
        if !delete && org.is_deleted() {
            return Err(Refusal::OrganizationDeleted.into());
        }
        let now = now_micros();
        let mut next = current.clone();
        next.deleted_at_us = delete.then_some(now);
        next.purge_at_us = delete.then(|| self.purge_at(now));
        next.updated_at_us = now;
        next.version += 1;
        let mut tx = self.begin().await?;
        if delete
            && kind == Children::Teams
            && self.store.projects_of_team(&mut tx, &current.id).await? > 0
        {
            return Err(Refusal::TeamOwnsProjects.into());
        }
        // A restored row takes its slug back, unless a live one took it.
        self.write_child(&mut tx, kind, &current, &next, !delete)
            .await?;
        self.child_event(&mut tx, caller, kind, &next, &payload(&next), Vec::new())
            .await?;
        self.commit(tx).await?;
        Ok(next)
    }

    /// Writes `next` over `current`, as read at its version: ABORTED when
    /// the row changed since, ALREADY_EXISTS when `check_slug` and a live
    /// sibling holds `next`'s slug.
    async fn write_child(
        &self,
        tx: &mut Write,
        kind: Children,
        current: &ChildRow,
        next: &ChildRow,
        check_slug: bool,
    ) -> Result<()> {
        if check_slug
            && self
                .store
                .child_slug_taken(tx, kind, &current.organization_id, &next.slug, &current.id)
                .await?
        {
            return Err(Refusal::ChildSlugTaken {
                slug: next.slug.clone(),
            }
            .into());
        }
        if !self
            .store
            .update_child(tx, kind, next, current.version)
            .await?
        {
            return Err(Refusal::ConcurrentUpdate.into());
        }
        Ok(())
    }

    /// Writes the event of a change to a team or project, with the row as
    /// the event's object and target.
    pub(crate) async fn child_event<M: tenantry_proto::EventType>(
        &self,
        tx: &mut Write,
        caller: &Caller,
        kind: Children,
        row: &ChildRow,
        payload: &M,
        changes: Vec<events::FieldChange>,
    ) -> Result<()> {
        let noun = kind.noun();
        let org = self.organization(&row.organization_id).await?;
        self.emit(
            tx,
            caller,
            (noun, &row.id),
            (&row.organization_id, &org.root_id),
            payload,
            changes,
            vec![target(noun, &row.id, &row.display_name)],
        )
        .await
    }
}

/// The filters of a team or project listing.
#[derive(Debug, Clone, Copy)]
pub struct ListQuery<'a> {
    pub page_size: i32,
    pub page_token: &'a str,
    pub name_prefix: &'a str,
    pub team: Option<&'a str>,
    pub show_deleted: bool,
}

/// An update of a team or project: its name, etag, mask and new values.
#[derive(Debug, Clone, Copy)]
pub struct NewChildUpdate<'a> {
    pub name: &'a str,
    pub etag: &'a str,
    pub mask: Option<&'a prost_types::FieldMask>,
    pub fields: &'a NewChild,
}
