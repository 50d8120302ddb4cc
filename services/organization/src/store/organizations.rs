//! Organizations: the trees, their listing and their lifecycle rows.

use std::collections::BTreeMap;

use tenantry_kit::error::Result;
use tenantry_kit::row::{Bit, JsonText, json};

use sqlx::any::AnyArguments;
use sqlx::query::QueryAs;

use super::*;

/// An organization row.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
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
    #[sqlx(try_from = "Bit")]
    pub inherit_access: bool,
    #[sqlx(try_from = "Bit")]
    pub departments_enabled: bool,
    #[sqlx(try_from = "Bit")]
    pub require_mfa: bool,
    /// Whether members see only the projects granted to them.
    #[sqlx(try_from = "Bit")]
    pub projects_granted_only: bool,
    #[sqlx(try_from = "JsonText")]
    pub allowed_email_domains: Vec<String>,
    #[sqlx(try_from = "JsonText")]
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

/// The columns of an organization row.
macro_rules! organization_columns {
    () => {
        "id, slug, display_name, kind, parent_id, root_id, workspace_id, path, depth, \
         inherit_access, departments_enabled, require_mfa, allowed_email_domains, metadata, \
         state, owner_id, created_by, created_at_us, updated_at_us, deleted_at_us, purge_at_us, \
         deleted_with, version, projects_granted_only"
    };
}

/// The conditions of an organization listing, `$1` to `$7`.
macro_rules! organization_filter {
    () => {
        " FROM org_organizations WHERE id > $1
           AND ($2 = '' OR parent_id = $2)
           AND ($3 = '' OR workspace_id = $3)
           AND ($4 = '' OR kind = $4)
           AND ($5 = '' OR state = $5)
           AND ($6 = '%' OR LOWER(display_name) LIKE $6 ESCAPE '\\' OR slug LIKE $6 ESCAPE '\\')
           AND ($7 = 1 OR deleted_at_us IS NULL)"
    };
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

/// Binds an organization's settings and standing, the run of columns its
/// insert and its update share: inherit_access, departments_enabled,
/// require_mfa, allowed_email_domains, metadata, state, owner_id.
fn bind_settings<'q>(
    query: sqlx::query::Query<'q, Any, AnyArguments>,
    org: &'q OrganizationRow,
) -> sqlx::query::Query<'q, Any, AnyArguments> {
    query
        .bind(i64::from(org.inherit_access))
        .bind(i64::from(org.departments_enabled))
        .bind(i64::from(org.require_mfa))
        .bind(json(&org.allowed_email_domains))
        .bind(json(&org.metadata))
        .bind(&org.state)
        .bind(&org.owner_id)
}

impl Store {
    pub async fn insert_organization(&self, tx: &mut Tx, org: &OrganizationRow) -> Result<()> {
        let query = sqlx::query(
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
        .bind(org.depth);
        bind_settings(query, org)
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
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            organization_columns!(),
            " FROM org_organizations WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.db.pool())
        .await?)
    }

    /// The organization, read inside a write transaction.
    pub async fn organization_in(&self, tx: &mut Tx, id: &str) -> Result<Option<OrganizationRow>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            organization_columns!(),
            " FROM org_organizations WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?)
    }

    /// Organizations by id, in no particular order.
    pub async fn organizations_by_id(&self, ids: &[&str]) -> Result<Vec<OrganizationRow>> {
        let mut connection = self.db.pool().acquire().await?;
        organizations_by_id_on(&mut connection, ids).await
    }

    /// Organizations by id, in no particular order, read inside a write
    /// transaction (deleted ones too).
    pub async fn organizations_by_id_in(
        &self,
        tx: &mut Tx,
        ids: &[&str],
    ) -> Result<Vec<OrganizationRow>> {
        organizations_by_id_on(tx, ids).await
    }

    /// Live organizations of every tree after `(depth, id)`, by depth then
    /// id (parents before their children): a page of an export.
    pub async fn live_organizations_after(
        &self,
        after: (i64, &str),
        limit: i64,
    ) -> Result<Vec<OrganizationRow>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            organization_columns!(),
            " FROM org_organizations
             WHERE deleted_at_us IS NULL AND (depth > $1 OR (depth = $1 AND id > $2))
             ORDER BY depth, id LIMIT $3"
        ))
        .bind(after.0)
        .bind(after.1)
        .bind(limit)
        .fetch_all(self.db.pool())
        .await?)
    }

    /// Organizations matching `filter` after `after_id`, oldest first.
    pub async fn organizations(
        &self,
        filter: &OrganizationFilter,
        after_id: &str,
        limit: i64,
    ) -> Result<Vec<OrganizationRow>> {
        let Some(roots) = filter.roots.as_deref() else {
            return Ok(bind_filter(
                sqlx::query_as(concat!(
                    "SELECT ",
                    organization_columns!(),
                    organization_filter!(),
                    " ORDER BY id LIMIT $8"
                )),
                filter,
                after_id,
                limit,
            )
            .fetch_all(self.db.pool())
            .await?);
        };
        if roots.is_empty() {
            return Ok(Vec::new());
        }
        // Dynamic only in its placeholder list, built from a count.
        let sql = format!(
            concat!(
                "SELECT ",
                organization_columns!(),
                organization_filter!(),
                "{} ORDER BY id LIMIT $8"
            ),
            in_list("root_id", roots.len(), 9)
        );
        let mut query = bind_filter(
            sqlx::query_as(sqlx::AssertSqlSafe(sql)),
            filter,
            after_id,
            limit,
        );
        for root in roots {
            query = query.bind(root);
        }
        Ok(query.fetch_all(self.db.pool()).await?)
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
        let query = sqlx::query(
            "UPDATE org_organizations SET slug = $2, display_name = $3, inherit_access = $4,
                departments_enabled = $5, require_mfa = $6, allowed_email_domains = $7,
                metadata = $8, state = $9, owner_id = $10, updated_at_us = $11,
                deleted_at_us = $12, purge_at_us = $13, deleted_with = $14, version = $15,
                projects_granted_only = $16
             WHERE id = $1",
        )
        .bind(&org.id)
        .bind(&org.slug)
        .bind(&org.display_name);
        bind_settings(query, org)
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
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            organization_columns!(),
            " FROM org_organizations WHERE path LIKE $1 AND id <> $2 ORDER BY depth, id"
        ))
        .bind(format!("{}%", org.path))
        .bind(&org.id)
        .fetch_all(&mut **tx)
        .await?)
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
        Ok(sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM org_organizations WHERE parent_id = $1 AND deleted_at_us IS NULL)
                  + (SELECT COUNT(*) FROM org_teams WHERE organization_id = $1 AND deleted_at_us IS NULL)
                  + (SELECT COUNT(*) FROM org_projects WHERE organization_id = $1 AND deleted_at_us IS NULL)",
        )
        .bind(organization_id)
        .fetch_one(&mut **tx)
        .await?)
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
        /// The forced delete of one kind of child.
        macro_rules! cascade_delete {
            ($table:literal) => {
                concat!(
                    "UPDATE ",
                    $table,
                    " SET deleted_at_us = $2, purge_at_us = $3, deleted_with = $4,
                        version = version + 1
                     WHERE organization_id = $1 AND deleted_at_us IS NULL"
                )
            };
        }
        for sql in [
            cascade_delete!("org_teams"),
            cascade_delete!("org_projects"),
        ] {
            for id in organization_ids {
                sqlx::query(sql)
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
        /// The restore of one kind of child.
        macro_rules! cascade_restore {
            ($table:literal) => {
                concat!(
                    "UPDATE ",
                    $table,
                    " SET deleted_at_us = NULL, purge_at_us = NULL,
                        deleted_with = NULL, version = version + 1
                     WHERE organization_id = $1 AND deleted_with = $2"
                )
            };
        }
        for sql in [
            cascade_restore!("org_teams"),
            cascade_restore!("org_projects"),
        ] {
            for id in organization_ids {
                sqlx::query(sql)
                    .bind(id)
                    .bind(cause)
                    .execute(&mut **tx)
                    .await?;
            }
        }
        Ok(())
    }
}

/// Binds `$1` to `$8` of an organization listing.
fn bind_filter<'q>(
    query: QueryAs<'q, Any, OrganizationRow, AnyArguments>,
    filter: &OrganizationFilter,
    after_id: &'q str,
    limit: i64,
) -> QueryAs<'q, Any, OrganizationRow, AnyArguments> {
    query
        .bind(after_id)
        .bind(filter.parent_id.clone().unwrap_or_default())
        .bind(filter.workspace_id.clone().unwrap_or_default())
        .bind(filter.kind.unwrap_or_default())
        .bind(filter.state.unwrap_or_default())
        .bind(like_prefix(&filter.name_prefix))
        .bind(i64::from(filter.show_deleted))
        .bind(limit)
}

/// Organizations by id, read on `connection` (the pool's, or a write's).
async fn organizations_by_id_on(
    connection: &mut sqlx::AnyConnection,
    ids: &[&str],
) -> Result<Vec<OrganizationRow>> {
    let mut rows = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        // Dynamic only in its placeholder list, built from a count.
        let sql = format!(
            concat!(
                "SELECT ",
                organization_columns!(),
                " FROM org_organizations WHERE 1 = 1{}"
            ),
            in_list("id", chunk.len(), 1)
        );
        let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql));
        for id in chunk {
            query = query.bind(*id);
        }
        let chunk_rows: Vec<OrganizationRow> = query.fetch_all(&mut *connection).await?;
        rows.extend(chunk_rows);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

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
