//! Teams and projects: the children of an organization.

use tenantry_kit::error::Result;

use super::*;

/// A team or project row (they share their shape; projects add a team).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
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

/// The columns of a team row, read as a [`ChildRow`] (no owning team).
macro_rules! team_columns {
    () => {
        "id, organization_id, NULL AS team_id, slug, display_name, description, created_by, \
         created_at_us, updated_at_us, deleted_at_us, purge_at_us, deleted_with, version"
    };
}

/// The columns of a project row.
macro_rules! project_columns {
    () => {
        "id, organization_id, team_id, slug, display_name, description, created_by, \
         created_at_us, updated_at_us, deleted_at_us, purge_at_us, deleted_with, version"
    };
}

/// The conditions of a team or project listing, `$1` to `$4`, after the
/// table's name.
macro_rules! children_filter {
    () => {
        " WHERE organization_id = $1 AND id > $2
           AND ($3 = '%' OR LOWER(display_name) LIKE $3 ESCAPE '\\' OR slug LIKE $3 ESCAPE '\\')
           AND ($4 = 1 OR deleted_at_us IS NULL)"
    };
}

/// Whether a slug is taken by another live row, after the table's name.
macro_rules! slug_taken {
    () => {
        " WHERE organization_id = $1 AND slug = $2 AND id <> $3 AND deleted_at_us IS NULL"
    };
}

/// The rows past their purge time, after the table's name.
macro_rules! expired {
    () => {
        " WHERE deleted_at_us IS NOT NULL AND purge_at_us <= $1 ORDER BY purge_at_us LIMIT $2"
    };
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
        let sql = match kind {
            Children::Teams => concat!(
                "SELECT ",
                team_columns!(),
                " FROM org_teams WHERE organization_id = $1 AND id = $2"
            ),
            Children::Projects => concat!(
                "SELECT ",
                project_columns!(),
                " FROM org_projects WHERE organization_id = $1 AND id = $2"
            ),
        };
        Ok(sqlx::query_as(sql)
            .bind(organization_id)
            .bind(id)
            .fetch_optional(self.db.pool())
            .await?)
    }

    /// Teams or projects by id, of any organization, in no particular
    /// order, read inside a write transaction (deleted ones too).
    pub async fn children_by_id_in(
        &self,
        tx: &mut Tx,
        kind: Children,
        ids: &[&str],
    ) -> Result<Vec<ChildRow>> {
        let select = match kind {
            Children::Teams => concat!("SELECT ", team_columns!(), " FROM org_teams WHERE 1 = 1"),
            Children::Projects => concat!(
                "SELECT ",
                project_columns!(),
                " FROM org_projects WHERE 1 = 1"
            ),
        };
        let mut rows = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            // Dynamic only in its placeholder list, built from a count.
            let sql = format!("{select}{}", in_list("id", chunk.len(), 1));
            let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql));
            for id in chunk {
                query = query.bind(*id);
            }
            let chunk_rows: Vec<ChildRow> = query.fetch_all(&mut **tx).await?;
            rows.extend(chunk_rows);
        }
        Ok(rows)
    }

    /// Live teams or projects of every organization after `after_id`, by
    /// id: a page of an export.
    pub async fn live_children_after(
        &self,
        kind: Children,
        after_id: &str,
        limit: i64,
    ) -> Result<Vec<ChildRow>> {
        let sql = match kind {
            Children::Teams => concat!(
                "SELECT ",
                team_columns!(),
                " FROM org_teams WHERE deleted_at_us IS NULL AND id > $1 ORDER BY id LIMIT $2"
            ),
            Children::Projects => concat!(
                "SELECT ",
                project_columns!(),
                " FROM org_projects WHERE deleted_at_us IS NULL AND id > $1 ORDER BY id LIMIT $2"
            ),
        };
        Ok(sqlx::query_as(sql)
            .bind(after_id)
            .bind(limit)
            .fetch_all(self.db.pool())
            .await?)
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
        let query = match kind {
            Children::Teams => sqlx::query_as(concat!(
                "SELECT ",
                team_columns!(),
                " FROM org_teams",
                children_filter!(),
                " ORDER BY id LIMIT $5"
            )),
            Children::Projects => sqlx::query_as(concat!(
                "SELECT ",
                project_columns!(),
                " FROM org_projects",
                children_filter!(),
                " AND ($6 = '' OR team_id = $6) ORDER BY id LIMIT $5"
            )),
        };
        let mut query = query
            .bind(organization_id)
            .bind(after_id)
            .bind(like_prefix(name_prefix))
            .bind(i64::from(show_deleted))
            .bind(limit);
        if kind == Children::Projects {
            query = query.bind(team_id.unwrap_or_default());
        }
        Ok(query.fetch_all(self.db.pool()).await?)
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
        let sql = match kind {
            Children::Teams => concat!("SELECT 1 FROM org_teams", slug_taken!()),
            Children::Projects => concat!("SELECT 1 FROM org_projects", slug_taken!()),
        };
        Ok(sqlx::query(sql)
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
        let sql = match kind {
            Children::Teams => {
                "UPDATE org_teams SET slug = $3, display_name = $4, description = $5,
                    updated_at_us = $6, deleted_at_us = $7, purge_at_us = $8, version = $9,
                    deleted_with = NULL
                 WHERE id = $1 AND version = $2"
            }
            Children::Projects => {
                "UPDATE org_projects SET slug = $3, display_name = $4, description = $5,
                    team_id = $10, updated_at_us = $6, deleted_at_us = $7, purge_at_us = $8,
                    version = $9, deleted_with = NULL
                 WHERE id = $1 AND version = $2"
            }
        };
        let mut query = sqlx::query(sql)
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
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM org_projects WHERE team_id = $1 AND deleted_at_us IS NULL",
        )
        .bind(team_id)
        .fetch_one(&mut **tx)
        .await?)
    }

    /// Soft-deleted teams or projects whose purge time has passed, as
    /// (organization, id).
    pub async fn expired_children(
        &self,
        kind: Children,
        now_us: i64,
        limit: i64,
    ) -> Result<Vec<(String, String)>> {
        let sql = match kind {
            Children::Teams => concat!("SELECT organization_id, id FROM org_teams", expired!()),
            Children::Projects => {
                concat!("SELECT organization_id, id FROM org_projects", expired!())
            }
        };
        Ok(sqlx::query_as(sql)
            .bind(now_us)
            .bind(limit)
            .fetch_all(self.db.pool())
            .await?)
    }

    /// Soft-deleted organizations whose purge time has passed, deepest
    /// first, as (id, root).
    pub async fn expired_organizations(
        &self,
        now_us: i64,
        limit: i64,
    ) -> Result<Vec<(String, String)>> {
        Ok(sqlx::query_as(
            "SELECT id, root_id FROM org_organizations
             WHERE deleted_at_us IS NOT NULL AND purge_at_us <= $1
             ORDER BY depth DESC, purge_at_us LIMIT $2",
        )
        .bind(now_us)
        .bind(limit)
        .fetch_all(self.db.pool())
        .await?)
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
        let remaining: i64 = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM org_organizations WHERE parent_id = $1)
                  + (SELECT COUNT(*) FROM org_teams WHERE organization_id = $1)
                  + (SELECT COUNT(*) FROM org_projects WHERE organization_id = $1)",
        )
        .bind(id)
        .fetch_one(&mut **tx)
        .await?;
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
