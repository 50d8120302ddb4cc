//! Teams and projects: the children of an organization.

use sqlx::Row;
use sqlx::any::AnyRow;
use tenantry_kit::error::{Result, db_error};

use super::*;

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

impl Store {
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
}
