//! The organization service's rows and the SQL that reads and writes them.
//! Every query that takes an object id from a client also takes the
//! organization it must belong to: an id of another tenant finds nothing.

use std::collections::BTreeMap;

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use tenantry_kit::db::Database;
use tenantry_kit::error::{Result, db_error};

pub type Tx = Transaction<'static, Any>;

/// The organization service's idempotent creates.
const REQUESTS: tenantry_kit::request::Requests =
    tenantry_kit::request::Requests::new("org_requests");

/// A workspace row.
#[derive(Debug, Clone)]
pub struct WorkspaceRow {
    pub id: String,
    pub display_name: String,
    pub billing_mode: String,
    pub created_by: String,
    pub created_at_us: i64,
    pub updated_at_us: i64,
    pub version: i64,
}

const WORKSPACE_COLUMNS: &str =
    "id, display_name, billing_mode, created_by, created_at_us, updated_at_us, version";

fn workspace_from_row(row: &AnyRow) -> std::result::Result<WorkspaceRow, sqlx::Error> {
    Ok(WorkspaceRow {
        id: row.try_get(0)?,
        display_name: row.try_get(1)?,
        billing_mode: row.try_get(2)?,
        created_by: row.try_get(3)?,
        created_at_us: row.try_get(4)?,
        updated_at_us: row.try_get(5)?,
        version: row.try_get(6)?,
    })
}

/// An organization row.
#[derive(Debug, Clone, PartialEq)]
pub struct OrganizationRow {
    pub id: String,
    pub slug: String,
    pub display_name: String,
    /// `organization` or `department`.
    pub kind: String,
    pub parent_id: Option<String>,
    pub root_id: String,
    pub workspace_id: String,
    /// `/root/…/id/`: the ids from the root down to this organization.
    pub path: String,
    pub depth: i64,
    pub inherit_access: bool,
    pub departments_enabled: bool,
    pub require_mfa: bool,
    /// Whether members see only the projects granted to them.
    pub projects_granted_only: bool,
    pub allowed_email_domains: Vec<String>,
    pub metadata: BTreeMap<String, String>,
    /// `active` or `deactivated`.
    pub state: String,
    pub owner_id: String,
    pub created_by: String,
    pub created_at_us: i64,
    pub updated_at_us: i64,
    pub deleted_at_us: Option<i64>,
    pub purge_at_us: Option<i64>,
    /// The organization whose forced delete took this one along.
    pub deleted_with: Option<String>,
    pub version: i64,
}

impl OrganizationRow {
    /// The ids of the ancestors, root first, without this organization.
    pub fn ancestor_ids(&self) -> Vec<&str> {
        let ids: Vec<&str> = self.path.split('/').filter(|s| !s.is_empty()).collect();
        ids[..ids.len().saturating_sub(1)].to_vec()
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted_at_us.is_some()
    }
}

const ORGANIZATION_COLUMNS: &str = "id, slug, display_name, kind, parent_id, root_id, \
    workspace_id, path, depth, inherit_access, departments_enabled, require_mfa, \
    allowed_email_domains, metadata, state, owner_id, created_by, created_at_us, updated_at_us, \
    deleted_at_us, purge_at_us, deleted_with, version, projects_granted_only";

fn organization_from_row(row: &AnyRow) -> std::result::Result<OrganizationRow, sqlx::Error> {
    let json = |i: usize| -> std::result::Result<String, sqlx::Error> { row.try_get(i) };
    Ok(OrganizationRow {
        id: row.try_get(0)?,
        slug: row.try_get(1)?,
        display_name: row.try_get(2)?,
        kind: row.try_get(3)?,
        parent_id: row.try_get(4)?,
        root_id: row.try_get(5)?,
        workspace_id: row.try_get(6)?,
        path: row.try_get(7)?,
        depth: row.try_get(8)?,
        inherit_access: row.try_get::<i64, _>(9)? != 0,
        departments_enabled: row.try_get::<i64, _>(10)? != 0,
        require_mfa: row.try_get::<i64, _>(11)? != 0,
        allowed_email_domains: serde_json::from_str(&json(12)?)
            .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        metadata: serde_json::from_str(&json(13)?).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        state: row.try_get(14)?,
        owner_id: row.try_get(15)?,
        created_by: row.try_get(16)?,
        created_at_us: row.try_get(17)?,
        updated_at_us: row.try_get(18)?,
        deleted_at_us: row.try_get(19)?,
        purge_at_us: row.try_get(20)?,
        deleted_with: row.try_get(21)?,
        version: row.try_get(22)?,
        projects_granted_only: row.try_get::<i64, _>(23)? != 0,
    })
}

/// A team or project row (they share their shape; projects add a team).
#[derive(Debug, Clone, PartialEq)]
pub struct ChildRow {
    pub id: String,
    pub organization_id: String,
    /// The owning team, for projects.
    pub team_id: Option<String>,
    pub slug: String,
    pub display_name: String,
    pub description: String,
    pub created_by: String,
    pub created_at_us: i64,
    pub updated_at_us: i64,
    pub deleted_at_us: Option<i64>,
    pub purge_at_us: Option<i64>,
    pub deleted_with: Option<String>,
    pub version: i64,
}

/// Teams or projects: the two tables of [`ChildRow`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Children {
    Teams,
    Projects,
}

impl Children {
    fn table(self) -> &'static str {
        match self {
            Children::Teams => "org_teams",
            Children::Projects => "org_projects",
        }
    }

    fn columns(self) -> &'static str {
        match self {
            Children::Teams => {
                "id, organization_id, NULL, slug, display_name, description, \
                created_by, created_at_us, updated_at_us, deleted_at_us, purge_at_us, \
                deleted_with, version"
            }
            Children::Projects => {
                "id, organization_id, team_id, slug, display_name, \
                description, created_by, created_at_us, updated_at_us, deleted_at_us, \
                purge_at_us, deleted_with, version"
            }
        }
    }
}

fn child_from_row(row: &AnyRow) -> std::result::Result<ChildRow, sqlx::Error> {
    Ok(ChildRow {
        id: row.try_get(0)?,
        organization_id: row.try_get(1)?,
        team_id: row.try_get(2)?,
        slug: row.try_get(3)?,
        display_name: row.try_get(4)?,
        description: row.try_get(5)?,
        created_by: row.try_get(6)?,
        created_at_us: row.try_get(7)?,
        updated_at_us: row.try_get(8)?,
        deleted_at_us: row.try_get(9)?,
        purge_at_us: row.try_get(10)?,
        deleted_with: row.try_get(11)?,
        version: row.try_get(12)?,
    })
}

/// An environment row.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvironmentRow {
    pub id: String,
    pub project_id: String,
    pub slug: String,
    pub display_name: String,
    pub created_at_us: i64,
    pub updated_at_us: i64,
    pub version: i64,
}

const ENVIRONMENT_COLUMNS: &str =
    "id, project_id, slug, display_name, created_at_us, updated_at_us, version";

fn environment_from_row(row: &AnyRow) -> std::result::Result<EnvironmentRow, sqlx::Error> {
    Ok(EnvironmentRow {
        id: row.try_get(0)?,
        project_id: row.try_get(1)?,
        slug: row.try_get(2)?,
        display_name: row.try_get(3)?,
        created_at_us: row.try_get(4)?,
        updated_at_us: row.try_get(5)?,
        version: row.try_get(6)?,
    })
}

/// An ownership transfer row.
#[derive(Debug, Clone, PartialEq)]
pub struct TransferRow {
    pub id: String,
    pub organization_id: String,
    pub from_user_id: String,
    pub to_user_id: String,
    pub token_hash: String,
    /// `pending`, `accepted`, `cancelled` or `declined`; a pending transfer
    /// past its expiry reads as expired.
    pub state: String,
    pub created_at_us: i64,
    pub expires_at_us: i64,
    pub ended_at_us: Option<i64>,
}

const TRANSFER_COLUMNS: &str = "id, organization_id, from_user_id, to_user_id, token_hash, state, \
    created_at_us, expires_at_us, ended_at_us";

fn transfer_from_row(row: &AnyRow) -> std::result::Result<TransferRow, sqlx::Error> {
    Ok(TransferRow {
        id: row.try_get(0)?,
        organization_id: row.try_get(1)?,
        from_user_id: row.try_get(2)?,
        to_user_id: row.try_get(3)?,
        token_hash: row.try_get(4)?,
        state: row.try_get(5)?,
        created_at_us: row.try_get(6)?,
        expires_at_us: row.try_get(7)?,
        ended_at_us: row.try_get(8)?,
    })
}

/// Filters of an organization listing.
#[derive(Debug, Clone, Default)]
pub struct OrganizationFilter {
    /// Only these roots' trees (`None`: every tree).
    pub roots: Option<Vec<String>>,
    pub parent_id: Option<String>,
    pub workspace_id: Option<String>,
    pub kind: Option<&'static str>,
    pub state: Option<&'static str>,
    pub name_prefix: String,
    pub show_deleted: bool,
}

/// Escapes `%`, `_` and `\` for a LIKE pattern with `ESCAPE '\'`.
fn like_prefix(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 1);
    for c in prefix.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// The organization service's tables.
#[derive(Debug, Clone)]
pub struct Store {
    db: Database,
}

impl Store {
    pub fn new(db: Database) -> Self {
        Store { db }
    }

    pub async fn begin(&self) -> Result<Tx> {
        self.db.begin().await
    }

    /// Whether the database holds each query to the request's tenants
    /// (Postgres row-level security; see `tenantry_kit::tenancy`).
    pub fn has_row_security(&self) -> bool {
        self.db.has_row_security()
    }

    /// The roots of the trees holding these organizations (unknown ids have
    /// none). Tenant lookups: run in the system scope.
    pub async fn roots_of(&self, ids: &[&str]) -> Result<Vec<String>> {
        let mut roots = Vec::new();
        for chunk in ids.chunks(500) {
            let sql = format!(
                "SELECT DISTINCT root_id FROM org_organizations WHERE 1 = 1{}",
                in_list("id", chunk.len(), 1)
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for id in chunk {
                query = query.bind(*id);
            }
            roots.extend(
                query
                    .try_map(|row: AnyRow| row.try_get::<String, _>(0))
                    .fetch_all(self.db.pool())
                    .await?,
            );
        }
        Ok(roots)
    }

    // Idempotent requests.

    /// The resource a request id already created, if any.
    pub async fn replayed(
        &self,
        tx: &mut Tx,
        caller: &str,
        method: &str,
        request_id: &str,
    ) -> Result<Option<String>> {
        REQUESTS
            .replayed(&mut **tx, caller, method, request_id)
            .await
    }

    /// [`replayed`](Self::replayed) outside a write: a plain read, which
    /// takes no write lock.
    pub async fn replayed_now(
        &self,
        caller: &str,
        method: &str,
        request_id: &str,
    ) -> Result<Option<String>> {
        REQUESTS
            .replayed(self.db.pool(), caller, method, request_id)
            .await
    }

    /// Records that a request id created `resource_id`.
    pub async fn remember_request(
        &self,
        tx: &mut Tx,
        caller: &str,
        method: &str,
        request_id: &str,
        resource_id: &str,
    ) -> Result<()> {
        REQUESTS
            .remember(tx, caller, method, request_id, resource_id)
            .await
    }

    // Workspaces.

    pub async fn insert_workspace(&self, tx: &mut Tx, workspace: &WorkspaceRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO org_workspaces (id, display_name, billing_mode, created_by, created_at_us,
                updated_at_us, version)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&workspace.id)
        .bind(&workspace.display_name)
        .bind(&workspace.billing_mode)
        .bind(&workspace.created_by)
        .bind(workspace.created_at_us)
        .bind(workspace.updated_at_us)
        .bind(workspace.version)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    pub async fn workspace(&self, id: &str) -> Result<Option<WorkspaceRow>> {
        workspace_row(self.db.pool(), id).await
    }

    /// As [`workspace`](Self::workspace), inside `tx`: on SQLite the
    /// transaction holds the write lock, and waiting for another pool
    /// connection meanwhile can wait on writers that wait for it.
    pub async fn workspace_in(&self, tx: &mut Tx, id: &str) -> Result<Option<WorkspaceRow>> {
        workspace_row(&mut **tx, id).await
    }

    /// Workspaces after `after_id`, oldest first: those created by
    /// `created_by` or listed in `ids` (every workspace when `ids` is
    /// `None`).
    pub async fn workspaces(
        &self,
        ids: Option<&[String]>,
        created_by: &str,
        billing_mode: &str,
        after_id: &str,
        limit: i64,
    ) -> Result<Vec<WorkspaceRow>> {
        let mut sql = format!(
            "SELECT {WORKSPACE_COLUMNS} FROM org_workspaces
             WHERE id > $1 AND ($2 = '' OR billing_mode = $2)"
        );
        if let Some(ids) = ids {
            let placeholders: Vec<String> = (4..4 + ids.len()).map(|i| format!("${i}")).collect();
            if ids.is_empty() {
                sql.push_str(" AND created_by = $3");
            } else {
                sql.push_str(&format!(
                    " AND (created_by = $3 OR id IN ({}))",
                    placeholders.join(", ")
                ));
            }
        } else {
            sql.push_str(" AND $3 = $3");
        }
        sql.push_str(" ORDER BY id LIMIT ");
        sql.push_str(&limit.to_string());
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(after_id)
            .bind(billing_mode)
            .bind(created_by);
        for id in ids.unwrap_or_default() {
            query = query.bind(id);
        }
        query
            .try_map(|row: AnyRow| workspace_from_row(&row))
            .fetch_all(self.db.pool())
            .await
            .map_err(db_error)
    }

    pub async fn update_workspace(&self, tx: &mut Tx, workspace: &WorkspaceRow) -> Result<()> {
        sqlx::query(
            "UPDATE org_workspaces SET display_name = $2, updated_at_us = $3, version = $4
             WHERE id = $1",
        )
        .bind(&workspace.id)
        .bind(&workspace.display_name)
        .bind(workspace.updated_at_us)
        .bind(workspace.version)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// The roots of a workspace.
    pub async fn workspace_roots(&self, workspace_id: &str) -> Result<Vec<String>> {
        sqlx::query(
            "SELECT id FROM org_organizations WHERE workspace_id = $1 AND parent_id IS NULL
             ORDER BY id LIMIT 1000",
        )
        .bind(workspace_id)
        .try_map(|row: AnyRow| row.try_get(0))
        .fetch_all(self.db.pool())
        .await
        .map_err(db_error)
    }

    // Organizations.

    pub async fn insert_organization(&self, tx: &mut Tx, org: &OrganizationRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO org_organizations (id, slug, display_name, kind, parent_id, root_id,
                workspace_id, path, depth, inherit_access, departments_enabled, require_mfa,
                allowed_email_domains, metadata, state, owner_id, created_by, created_at_us,
                updated_at_us, version, projects_granted_only)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
                $18, $19, $20, $21)",
        )
        .bind(&org.id)
        .bind(&org.slug)
        .bind(&org.display_name)
        .bind(&org.kind)
        .bind(&org.parent_id)
        .bind(&org.root_id)
        .bind(&org.workspace_id)
        .bind(&org.path)
        .bind(org.depth)
        .bind(i64::from(org.inherit_access))
        .bind(i64::from(org.departments_enabled))
        .bind(i64::from(org.require_mfa))
        .bind(serde_json::to_string(&org.allowed_email_domains).expect("strings serialize"))
        .bind(serde_json::to_string(&org.metadata).expect("strings serialize"))
        .bind(&org.state)
        .bind(&org.owner_id)
        .bind(&org.created_by)
        .bind(org.created_at_us)
        .bind(org.updated_at_us)
        .bind(org.version)
        .bind(i64::from(org.projects_granted_only))
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    pub async fn organization(&self, id: &str) -> Result<Option<OrganizationRow>> {
        let sql = format!("SELECT {ORGANIZATION_COLUMNS} FROM org_organizations WHERE id = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .try_map(|row: AnyRow| organization_from_row(&row))
            .fetch_optional(self.db.pool())
            .await
            .map_err(db_error)
    }

    /// The organization, read inside a write transaction.
    pub async fn organization_in(&self, tx: &mut Tx, id: &str) -> Result<Option<OrganizationRow>> {
        let sql = format!("SELECT {ORGANIZATION_COLUMNS} FROM org_organizations WHERE id = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .try_map(|row: AnyRow| organization_from_row(&row))
            .fetch_optional(&mut **tx)
            .await
            .map_err(db_error)
    }

    /// Organizations by id, in no particular order.
    pub async fn organizations_by_id(&self, ids: &[&str]) -> Result<Vec<OrganizationRow>> {
        let mut rows = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let sql = format!(
                "SELECT {ORGANIZATION_COLUMNS} FROM org_organizations WHERE 1 = 1{}",
                in_list("id", chunk.len(), 1)
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for id in chunk {
                query = query.bind(*id);
            }
            rows.extend(
                query
                    .try_map(|row: AnyRow| organization_from_row(&row))
                    .fetch_all(self.db.pool())
                    .await?,
            );
        }
        Ok(rows)
    }

    /// Organizations matching `filter` after `after_id`, oldest first.
    pub async fn organizations(
        &self,
        filter: &OrganizationFilter,
        after_id: &str,
        limit: i64,
    ) -> Result<Vec<OrganizationRow>> {
        let mut sql = format!(
            "SELECT {ORGANIZATION_COLUMNS} FROM org_organizations WHERE id > $1
               AND ($2 = '' OR parent_id = $2)
               AND ($3 = '' OR workspace_id = $3)
               AND ($4 = '' OR kind = $4)
               AND ($5 = '' OR state = $5)
               AND ($6 = '%' OR LOWER(display_name) LIKE $6 ESCAPE '\\' OR slug LIKE $6 ESCAPE '\\')
               AND ($7 = 1 OR deleted_at_us IS NULL)"
        );
        let roots = filter.roots.as_deref().unwrap_or_default();
        if filter.roots.is_some() {
            if roots.is_empty() {
                return Ok(Vec::new());
            }
            sql.push_str(&in_list("root_id", roots.len(), 8));
        }
        sql.push_str(" ORDER BY id LIMIT ");
        sql.push_str(&limit.to_string());
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(after_id)
            .bind(filter.parent_id.clone().unwrap_or_default())
            .bind(filter.workspace_id.clone().unwrap_or_default())
            .bind(filter.kind.unwrap_or_default())
            .bind(filter.state.unwrap_or_default())
            .bind(like_prefix(&filter.name_prefix))
            .bind(i64::from(filter.show_deleted));
        for root in roots {
            query = query.bind(root);
        }
        query
            .try_map(|row: AnyRow| organization_from_row(&row))
            .fetch_all(self.db.pool())
            .await
            .map_err(db_error)
    }

    /// Whether `slug` belongs to a live organization other than `except`.
    pub async fn organization_slug_taken(
        &self,
        tx: &mut Tx,
        slug: &str,
        except: &str,
    ) -> Result<bool> {
        Ok(sqlx::query(
            "SELECT 1 FROM org_organizations WHERE slug = $1 AND id <> $2 AND deleted_at_us IS NULL",
        )
        .bind(slug)
        .bind(except)
        .fetch_optional(&mut **tx)
        .await?
        .is_some())
    }

    /// Writes the mutable fields of an organization and bumps its version.
    pub async fn update_organization(&self, tx: &mut Tx, org: &OrganizationRow) -> Result<()> {
        sqlx::query(
            "UPDATE org_organizations SET slug = $2, display_name = $3, inherit_access = $4,
                departments_enabled = $5, require_mfa = $6, allowed_email_domains = $7,
                metadata = $8, state = $9, owner_id = $10, updated_at_us = $11,
                deleted_at_us = $12, purge_at_us = $13, deleted_with = $14, version = $15,
                projects_granted_only = $16
             WHERE id = $1",
        )
        .bind(&org.id)
        .bind(&org.slug)
        .bind(&org.display_name)
        .bind(i64::from(org.inherit_access))
        .bind(i64::from(org.departments_enabled))
        .bind(i64::from(org.require_mfa))
        .bind(serde_json::to_string(&org.allowed_email_domains).expect("strings serialize"))
        .bind(serde_json::to_string(&org.metadata).expect("strings serialize"))
        .bind(&org.state)
        .bind(&org.owner_id)
        .bind(org.updated_at_us)
        .bind(org.deleted_at_us)
        .bind(org.purge_at_us)
        .bind(&org.deleted_with)
        .bind(org.version)
        .bind(i64::from(org.projects_granted_only))
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// The organizations strictly below `org` (every depth).
    pub async fn descendants(
        &self,
        tx: &mut Tx,
        org: &OrganizationRow,
    ) -> Result<Vec<OrganizationRow>> {
        let sql = format!(
            "SELECT {ORGANIZATION_COLUMNS} FROM org_organizations
             WHERE path LIKE $1 AND id <> $2 ORDER BY depth, id"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(format!("{}%", org.path))
            .bind(&org.id)
            .try_map(|row: AnyRow| organization_from_row(&row))
            .fetch_all(&mut **tx)
            .await
            .map_err(db_error)
    }

    /// Moves the subtree at `old_path` to `new_path`, shifting depths by
    /// `delta`, and links its top to `new_parent_id`.
    pub async fn move_subtree(
        &self,
        tx: &mut Tx,
        org: &OrganizationRow,
        new_parent_id: &str,
        new_path: &str,
        now_us: i64,
    ) -> Result<()> {
        let delta = new_path.matches('/').count() as i64 - org.path.matches('/').count() as i64;
        sqlx::query(
            "UPDATE org_organizations
             SET path = $2 || SUBSTR(path, CAST($3 AS INTEGER)), depth = depth + $4
             WHERE path LIKE $1",
        )
        .bind(format!("{}%", org.path))
        .bind(new_path)
        .bind(org.path.len() as i64 + 1)
        .bind(delta)
        .execute(&mut **tx)
        .await?;
        sqlx::query(
            "UPDATE org_organizations SET parent_id = $2, updated_at_us = $3, version = version + 1
             WHERE id = $1",
        )
        .bind(&org.id)
        .bind(new_parent_id)
        .bind(now_us)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// How many live organizations, teams and projects sit directly under
    /// an organization.
    pub async fn live_children(&self, tx: &mut Tx, organization_id: &str) -> Result<i64> {
        sqlx::query(
            "SELECT (SELECT COUNT(*) FROM org_organizations WHERE parent_id = $1 AND deleted_at_us IS NULL)
                  + (SELECT COUNT(*) FROM org_teams WHERE organization_id = $1 AND deleted_at_us IS NULL)
                  + (SELECT COUNT(*) FROM org_projects WHERE organization_id = $1 AND deleted_at_us IS NULL)",
        )
        .bind(organization_id)
        .fetch_one(&mut **tx)
        .await?
        .try_get(0)
        .map_err(db_error)
    }

    /// Soft-deletes the live teams and projects of `organization_ids` as
    /// part of `cause`'s forced delete.
    pub async fn cascade_delete_children(
        &self,
        tx: &mut Tx,
        organization_ids: &[String],
        cause: &str,
        deleted_at_us: i64,
        purge_at_us: i64,
    ) -> Result<()> {
        for table in ["org_teams", "org_projects"] {
            for id in organization_ids {
                let sql = format!(
                    "UPDATE {table} SET deleted_at_us = $2, purge_at_us = $3, deleted_with = $4,
                        version = version + 1
                     WHERE organization_id = $1 AND deleted_at_us IS NULL"
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(id)
                    .bind(deleted_at_us)
                    .bind(purge_at_us)
                    .bind(cause)
                    .execute(&mut **tx)
                    .await?;
            }
        }
        Ok(())
    }

    /// Restores the teams and projects `cause`'s forced delete took along.
    pub async fn cascade_restore_children(
        &self,
        tx: &mut Tx,
        organization_ids: &[String],
        cause: &str,
    ) -> Result<()> {
        for table in ["org_teams", "org_projects"] {
            for id in organization_ids {
                let sql = format!(
                    "UPDATE {table} SET deleted_at_us = NULL, purge_at_us = NULL,
                        deleted_with = NULL, version = version + 1
                     WHERE organization_id = $1 AND deleted_with = $2"
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(id)
                    .bind(cause)
                    .execute(&mut **tx)
                    .await?;
            }
        }
        Ok(())
    }

    // Teams and projects.

    pub async fn insert_child(&self, tx: &mut Tx, kind: Children, row: &ChildRow) -> Result<()> {
        let query = match kind {
            Children::Teams => sqlx::query(
                "INSERT INTO org_teams (id, organization_id, slug, display_name, description,
                    created_by, created_at_us, updated_at_us, version)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(&row.id)
            .bind(&row.organization_id),
            Children::Projects => sqlx::query(
                "INSERT INTO org_projects (id, organization_id, slug, display_name, description,
                    created_by, created_at_us, updated_at_us, version, team_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(&row.id)
            .bind(&row.organization_id),
        };
        let mut query = query
            .bind(&row.slug)
            .bind(&row.display_name)
            .bind(&row.description)
            .bind(&row.created_by)
            .bind(row.created_at_us)
            .bind(row.updated_at_us)
            .bind(row.version);
        if kind == Children::Projects {
            query = query.bind(&row.team_id);
        }
        query.execute(&mut **tx).await?;
        Ok(())
    }

    /// A team or project of an organization; another organization's id
    /// finds nothing.
    pub async fn child(
        &self,
        kind: Children,
        organization_id: &str,
        id: &str,
    ) -> Result<Option<ChildRow>> {
        let sql = format!(
            "SELECT {} FROM {} WHERE organization_id = $1 AND id = $2",
            kind.columns(),
            kind.table()
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(organization_id)
            .bind(id)
            .try_map(|row: AnyRow| child_from_row(&row))
            .fetch_optional(self.db.pool())
            .await
            .map_err(db_error)
    }

    /// Teams or projects of an organization after `after_id`, oldest first;
    /// projects can be limited to one owning team.
    #[allow(clippy::too_many_arguments)]
    pub async fn children(
        &self,
        kind: Children,
        organization_id: &str,
        name_prefix: &str,
        team_id: Option<&str>,
        show_deleted: bool,
        after_id: &str,
        limit: i64,
    ) -> Result<Vec<ChildRow>> {
        let team = match kind {
            Children::Teams => "",
            Children::Projects => "AND ($5 = '' OR team_id = $5)",
        };
        let sql = format!(
            "SELECT {} FROM {} WHERE organization_id = $1 AND id > $2
               AND ($3 = '%' OR LOWER(display_name) LIKE $3 ESCAPE '\\' OR slug LIKE $3 ESCAPE '\\')
               AND ($4 = 1 OR deleted_at_us IS NULL) {team}
             ORDER BY id LIMIT {limit}",
            kind.columns(),
            kind.table()
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(organization_id)
            .bind(after_id)
            .bind(like_prefix(name_prefix))
            .bind(i64::from(show_deleted));
        if kind == Children::Projects {
            query = query.bind(team_id.unwrap_or_default());
        }
        query
            .try_map(|row: AnyRow| child_from_row(&row))
            .fetch_all(self.db.pool())
            .await
            .map_err(db_error)
    }

    /// Whether `slug` belongs to another live team or project of the
    /// organization.
    pub async fn child_slug_taken(
        &self,
        tx: &mut Tx,
        kind: Children,
        organization_id: &str,
        slug: &str,
        except: &str,
    ) -> Result<bool> {
        let sql = format!(
            "SELECT 1 FROM {} WHERE organization_id = $1 AND slug = $2 AND id <> $3
               AND deleted_at_us IS NULL",
            kind.table()
        );
        Ok(sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(organization_id)
            .bind(slug)
            .bind(except)
            .fetch_optional(&mut **tx)
            .await?
            .is_some())
    }

    /// Writes a team's or project's mutable fields; `false` when the row
    /// changed since `expected_version` was read.
    pub async fn update_child(
        &self,
        tx: &mut Tx,
        kind: Children,
        row: &ChildRow,
        expected_version: i64,
    ) -> Result<bool> {
        let team = match kind {
            Children::Teams => "",
            Children::Projects => "team_id = $10,",
        };
        let sql = format!(
            "UPDATE {} SET slug = $3, display_name = $4, description = $5, {team}
                updated_at_us = $6, deleted_at_us = $7, purge_at_us = $8, version = $9,
                deleted_with = NULL
             WHERE id = $1 AND version = $2",
            kind.table()
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&row.id)
            .bind(expected_version)
            .bind(&row.slug)
            .bind(&row.display_name)
            .bind(&row.description)
            .bind(row.updated_at_us)
            .bind(row.deleted_at_us)
            .bind(row.purge_at_us)
            .bind(row.version);
        if kind == Children::Projects {
            query = query.bind(&row.team_id);
        }
        let done = query.execute(&mut **tx).await?;
        Ok(done.rows_affected() == 1)
    }

    /// Live projects owned by a team.
    pub async fn projects_of_team(&self, tx: &mut Tx, team_id: &str) -> Result<i64> {
        sqlx::query(
            "SELECT COUNT(*) FROM org_projects WHERE team_id = $1 AND deleted_at_us IS NULL",
        )
        .bind(team_id)
        .fetch_one(&mut **tx)
        .await?
        .try_get(0)
        .map_err(db_error)
    }

    /// Soft-deleted teams or projects whose purge time has passed, as
    /// (organization, id).
    pub async fn expired_children(
        &self,
        kind: Children,
        now_us: i64,
        limit: i64,
    ) -> Result<Vec<(String, String)>> {
        let sql = format!(
            "SELECT organization_id, id FROM {} WHERE deleted_at_us IS NOT NULL AND purge_at_us <= $1
             ORDER BY purge_at_us LIMIT {limit}",
            kind.table()
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now_us)
            .try_map(|row: AnyRow| Ok((row.try_get(0)?, row.try_get(1)?)))
            .fetch_all(self.db.pool())
            .await
            .map_err(db_error)
    }

    /// Soft-deleted organizations whose purge time has passed, deepest
    /// first, as (id, root).
    pub async fn expired_organizations(
        &self,
        now_us: i64,
        limit: i64,
    ) -> Result<Vec<(String, String)>> {
        let sql = format!(
            "SELECT id, root_id FROM org_organizations
             WHERE deleted_at_us IS NOT NULL AND purge_at_us <= $1
             ORDER BY depth DESC, purge_at_us LIMIT {limit}"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now_us)
            .try_map(|row: AnyRow| Ok((row.try_get(0)?, row.try_get(1)?)))
            .fetch_all(self.db.pool())
            .await
            .map_err(db_error)
    }

    /// Deletes a team for good; soft-deleted projects it owned keep no owner.
    pub async fn purge_team(&self, tx: &mut Tx, id: &str) -> Result<()> {
        sqlx::query("UPDATE org_projects SET team_id = NULL WHERE team_id = $1")
            .bind(id)
            .execute(&mut **tx)
            .await?;
        sqlx::query("DELETE FROM org_teams WHERE id = $1")
            .bind(id)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Deletes an organization for good, unless anything is still under it
    /// (then `false`).
    pub async fn purge_organization(&self, tx: &mut Tx, id: &str) -> Result<bool> {
        let remaining: i64 = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM org_organizations WHERE parent_id = $1)
                  + (SELECT COUNT(*) FROM org_teams WHERE organization_id = $1)
                  + (SELECT COUNT(*) FROM org_projects WHERE organization_id = $1)",
        )
        .bind(id)
        .fetch_one(&mut **tx)
        .await?
        .try_get(0)?;
        if remaining > 0 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM org_ownership_transfers WHERE organization_id = $1")
            .bind(id)
            .execute(&mut **tx)
            .await?;
        let deleted = sqlx::query(
            "DELETE FROM org_organizations WHERE id = $1 AND deleted_at_us IS NOT NULL",
        )
        .bind(id)
        .execute(&mut **tx)
        .await?;
        Ok(deleted.rows_affected() == 1)
    }

    /// Deletes a project and its environments for good.
    pub async fn purge_project(&self, tx: &mut Tx, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM org_environments WHERE project_id = $1")
            .bind(id)
            .execute(&mut **tx)
            .await?;
        sqlx::query("DELETE FROM org_projects WHERE id = $1")
            .bind(id)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    // Environments.

    pub async fn insert_environment(&self, tx: &mut Tx, env: &EnvironmentRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO org_environments (id, project_id, slug, display_name, created_at_us,
                updated_at_us, version)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&env.id)
        .bind(&env.project_id)
        .bind(&env.slug)
        .bind(&env.display_name)
        .bind(env.created_at_us)
        .bind(env.updated_at_us)
        .bind(env.version)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    pub async fn environment(&self, project_id: &str, id: &str) -> Result<Option<EnvironmentRow>> {
        let sql = format!(
            "SELECT {ENVIRONMENT_COLUMNS} FROM org_environments WHERE project_id = $1 AND id = $2"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(project_id)
            .bind(id)
            .try_map(|row: AnyRow| environment_from_row(&row))
            .fetch_optional(self.db.pool())
            .await
            .map_err(db_error)
    }

    /// Environments of a project after `after_id`, oldest first.
    pub async fn environments(
        &self,
        project_id: &str,
        after_id: &str,
        limit: i64,
    ) -> Result<Vec<EnvironmentRow>> {
        let sql = format!(
            "SELECT {ENVIRONMENT_COLUMNS} FROM org_environments WHERE project_id = $1 AND id > $2
             ORDER BY id LIMIT {limit}"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(project_id)
            .bind(after_id)
            .try_map(|row: AnyRow| environment_from_row(&row))
            .fetch_all(self.db.pool())
            .await
            .map_err(db_error)
    }

    /// Writes an environment's names; `false` when it changed since
    /// `expected_version`.
    pub async fn update_environment(
        &self,
        tx: &mut Tx,
        env: &EnvironmentRow,
        expected_version: i64,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE org_environments SET slug = $3, display_name = $4, updated_at_us = $5,
                version = $6
             WHERE id = $1 AND version = $2",
        )
        .bind(&env.id)
        .bind(expected_version)
        .bind(&env.slug)
        .bind(&env.display_name)
        .bind(env.updated_at_us)
        .bind(env.version)
        .execute(&mut **tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Deletes an environment; `false` when it changed since
    /// `expected_version` (or is gone).
    pub async fn delete_environment(
        &self,
        tx: &mut Tx,
        id: &str,
        expected_version: Option<i64>,
    ) -> Result<bool> {
        let done =
            sqlx::query("DELETE FROM org_environments WHERE id = $1 AND ($2 < 0 OR version = $2)")
                .bind(id)
                .bind(expected_version.unwrap_or(-1))
                .execute(&mut **tx)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    // Ownership transfers.

    pub async fn insert_transfer(&self, tx: &mut Tx, transfer: &TransferRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO org_ownership_transfers (id, organization_id, from_user_id, to_user_id,
                token_hash, state, created_at_us, expires_at_us)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&transfer.id)
        .bind(&transfer.organization_id)
        .bind(&transfer.from_user_id)
        .bind(&transfer.to_user_id)
        .bind(&transfer.token_hash)
        .bind(&transfer.state)
        .bind(transfer.created_at_us)
        .bind(transfer.expires_at_us)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    pub async fn transfer(
        &self,
        tx: &mut Tx,
        organization_id: &str,
        id: &str,
    ) -> Result<Option<TransferRow>> {
        let sql = format!(
            "SELECT {TRANSFER_COLUMNS} FROM org_ownership_transfers
             WHERE organization_id = $1 AND id = $2"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(organization_id)
            .bind(id)
            .try_map(|row: AnyRow| transfer_from_row(&row))
            .fetch_optional(&mut **tx)
            .await
            .map_err(db_error)
    }

    /// The pending transfers of an organization.
    pub async fn pending_transfers(
        &self,
        tx: &mut Tx,
        organization_id: &str,
    ) -> Result<Vec<TransferRow>> {
        let sql = format!(
            "SELECT {TRANSFER_COLUMNS} FROM org_ownership_transfers
             WHERE organization_id = $1 AND state = 'pending'"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(organization_id)
            .try_map(|row: AnyRow| transfer_from_row(&row))
            .fetch_all(&mut **tx)
            .await
            .map_err(db_error)
    }

    /// Ends a pending transfer; `false` when it was no longer pending.
    pub async fn end_transfer(
        &self,
        tx: &mut Tx,
        id: &str,
        state: &str,
        now_us: i64,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE org_ownership_transfers SET state = $2, ended_at_us = $3
             WHERE id = $1 AND state = 'pending'",
        )
        .bind(id)
        .bind(state)
        .bind(now_us)
        .execute(&mut **tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

/// ` AND column IN ($first, …)` for `count` values.
fn in_list(column: &str, count: usize, first: usize) -> String {
    let placeholders: Vec<String> = (first..first + count).map(|i| format!("${i}")).collect();
    format!(" AND {column} IN ({})", placeholders.join(", "))
}

async fn workspace_row<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(
    e: E,
    id: &str,
) -> Result<Option<WorkspaceRow>> {
    let sql = format!("SELECT {WORKSPACE_COLUMNS} FROM org_workspaces WHERE id = $1");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .try_map(|row: AnyRow| workspace_from_row(&row))
        .fetch_optional(e)
        .await
        .map_err(db_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_prefixes_escape_wildcards() {
        assert_eq!(like_prefix("Ac%_\\"), "ac\\%\\_\\\\%");
        assert_eq!(like_prefix(""), "%");
    }

    #[test]
    fn ancestors_come_from_the_path() {
        let org = OrganizationRow {
            path: "/r/a/b/".into(),
            ..sample()
        };
        assert_eq!(org.ancestor_ids(), vec!["r", "a"]);
        let root = OrganizationRow {
            path: "/r/".into(),
            ..sample()
        };
        assert!(root.ancestor_ids().is_empty());
    }

    fn sample() -> OrganizationRow {
        OrganizationRow {
            id: String::new(),
            slug: String::new(),
            display_name: String::new(),
            kind: String::new(),
            parent_id: None,
            root_id: String::new(),
            workspace_id: String::new(),
            path: String::new(),
            depth: 1,
            inherit_access: true,
            departments_enabled: true,
            require_mfa: false,
            projects_granted_only: false,
            allowed_email_domains: Vec::new(),
            metadata: BTreeMap::new(),
            state: String::new(),
            owner_id: String::new(),
            created_by: String::new(),
            created_at_us: 0,
            updated_at_us: 0,
            deleted_at_us: None,
            purge_at_us: None,
            deleted_with: None,
            version: 1,
        }
    }
}
