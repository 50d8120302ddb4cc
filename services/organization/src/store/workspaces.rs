//! Workspaces: the billing groups of trees.

use tenantry_kit::error::Result;

use super::*;

/// A workspace row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WorkspaceRow {
    pub id: String,
    pub display_name: String,
    pub billing_mode: String,
    pub created_by: String,
    pub created_at_us: i64,
    pub updated_at_us: i64,
    pub version: i64,
}

/// The columns of a workspace row.
macro_rules! workspace_columns {
    () => {
        "id, display_name, billing_mode, created_by, created_at_us, updated_at_us, version"
    };
}

/// The start of a workspace listing, `$1` to `$2`; `$3` is the creator and
/// `$4` the limit.
macro_rules! workspace_listing {
    () => {
        concat!(
            "SELECT ",
            workspace_columns!(),
            " FROM org_workspaces WHERE id > $1 AND ($2 = '' OR billing_mode = $2)"
        )
    };
}

impl Store {
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
        let query = match ids {
            None => sqlx::query_as(concat!(
                workspace_listing!(),
                " AND $3 = $3 ORDER BY id LIMIT $4"
            )),
            Some([]) => sqlx::query_as(concat!(
                workspace_listing!(),
                " AND created_by = $3 ORDER BY id LIMIT $4"
            )),
            Some(ids) => {
                // Dynamic only in its placeholder list, built from a count.
                let sql = format!(
                    concat!(
                        workspace_listing!(),
                        " AND (created_by = $3 OR id IN ({})) ORDER BY id LIMIT $4"
                    ),
                    placeholders(5, ids.len())
                );
                sqlx::query_as(sqlx::AssertSqlSafe(sql))
            }
        };
        let mut query = query
            .bind(after_id)
            .bind(billing_mode)
            .bind(created_by)
            .bind(limit);
        for id in ids.unwrap_or_default() {
            query = query.bind(id);
        }
        Ok(query.fetch_all(self.db.pool()).await?)
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
        Ok(sqlx::query_scalar(
            "SELECT id FROM org_organizations WHERE workspace_id = $1 AND parent_id IS NULL
             ORDER BY id LIMIT 1000",
        )
        .bind(workspace_id)
        .fetch_all(self.db.pool())
        .await?)
    }
}

async fn workspace_row<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(
    e: E,
    id: &str,
) -> Result<Option<WorkspaceRow>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        workspace_columns!(),
        " FROM org_workspaces WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(e)
    .await?)
}
