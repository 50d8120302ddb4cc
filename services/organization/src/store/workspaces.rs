//! Workspaces: the billing groups of trees.

use sqlx::Row;
use sqlx::any::AnyRow;
use tenantry_kit::error::{Result, db_error};

use super::*;

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
