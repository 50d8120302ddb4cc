//! The organization tree, as billing mirrors it.

use sqlx::Row;
use sqlx::any::AnyRow;
use tenantry_kit::error::{Result, db_error};

use super::*;

/// A node of the organization tree, as billing mirrors it.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeRow {
    pub id: String,
    pub parent_id: Option<String>,
    pub root_id: String,
    pub workspace_id: String,
    /// `/root/…/id/`.
    pub path: String,
    /// Whether this node itself was soft-deleted (its subtree no longer
    /// counts above it).
    pub deleted: bool,
}

impl NodeRow {
    /// The ids from this node up to the root.
    pub fn upward(&self) -> Vec<&str> {
        self.path
            .split('/')
            .filter(|s| !s.is_empty())
            .rev()
            .collect()
    }
}

const NODE_COLUMNS: &str = "id, parent_id, root_id, workspace_id, path, deleted";

fn node_from_row(row: &AnyRow) -> std::result::Result<NodeRow, sqlx::Error> {
    Ok(NodeRow {
        id: row.try_get(0)?,
        parent_id: row.try_get(1)?,
        root_id: row.try_get(2)?,
        workspace_id: row.try_get(3)?,
        path: row.try_get(4)?,
        deleted: row.try_get::<i64, _>(5)? != 0,
    })
}

pub async fn node<'e, E: Executor<'e, Database = Any>>(e: E, id: &str) -> Result<Option<NodeRow>> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {NODE_COLUMNS} FROM billing_nodes WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(e)
    .await?
    .map(|row| node_from_row(&row))
    .transpose()
    .map_err(db_error)
}

/// The nodes among `ids` that exist.
pub async fn nodes<'e, E: Executor<'e, Database = Any>>(
    e: E,
    ids: &[&str],
) -> Result<HashMap<String, NodeRow>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let sql = format!(
        "SELECT {NODE_COLUMNS} FROM billing_nodes WHERE id IN ({})",
        placeholders(1, ids.len())
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for id in ids {
        query = query.bind(*id);
    }
    let rows = query.fetch_all(e).await?;
    rows.iter()
        .map(|row| node_from_row(row).map(|n| (n.id.clone(), n)))
        .collect::<std::result::Result<_, _>>()
        .map_err(db_error)
}

/// Inserts a node unless it is known already.
pub async fn insert_node(tx: &mut Tx, node: &NodeRow) -> Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO billing_nodes (id, parent_id, root_id, workspace_id, path, deleted)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
    )
    .bind(&node.id)
    .bind(&node.parent_id)
    .bind(&node.root_id)
    .bind(&node.workspace_id)
    .bind(&node.path)
    .bind(node.deleted as i64)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

pub async fn set_node_deleted(tx: &mut Tx, id: &str, deleted: bool) -> Result<()> {
    sqlx::query("UPDATE billing_nodes SET deleted = $2 WHERE id = $1")
        .bind(id)
        .bind(deleted as i64)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Re-roots the subtree under `old_path` at `new_path` and gives its top
/// the new parent.
pub async fn move_subtree(
    tx: &mut Tx,
    id: &str,
    new_parent: &str,
    old_path: &str,
    new_path: &str,
) -> Result<()> {
    sqlx::query(
        "UPDATE billing_nodes SET path = $2 || SUBSTR(path, CAST($3 AS INTEGER)) WHERE path LIKE $1 || '%'",
    )
    .bind(old_path)
    .bind(new_path)
    .bind(old_path.len() as i64 + 1)
    .execute(&mut **tx)
    .await?;
    sqlx::query("UPDATE billing_nodes SET parent_id = $2 WHERE id = $1")
        .bind(id)
        .bind(new_parent)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Forgets a purged organization: its node, counters, items and limits.
pub async fn purge_node(tx: &mut Tx, id: &str) -> Result<()> {
    for sql in [
        "DELETE FROM billing_nodes WHERE id = $1",
        "DELETE FROM billing_usage WHERE scope_id = $1",
        "DELETE FROM billing_items WHERE organization_id = $1",
        "DELETE FROM billing_limits WHERE organization_id = $1",
    ] {
        sqlx::query(sql).bind(id).execute(&mut **tx).await?;
    }
    Ok(())
}

/// The live root organizations of a workspace.
pub async fn workspace_roots<'e, E: Executor<'e, Database = Any>>(
    e: E,
    workspace_id: &str,
) -> Result<Vec<String>> {
    sqlx::query(
        "SELECT id FROM billing_nodes WHERE workspace_id = $1 AND parent_id IS NULL AND deleted = 0 ORDER BY id LIMIT 1000",
    )
    .bind(workspace_id)
    .fetch_all(e)
    .await?
    .iter()
    .map(|row| row.try_get(0))
    .collect::<std::result::Result<_, _>>()
    .map_err(db_error)
}

/// A workspace's billing mode (`single`, `assigned`, `pooled`).
pub async fn workspace_mode<'e, E: Executor<'e, Database = Any>>(
    e: E,
    workspace_id: &str,
) -> Result<Option<String>> {
    sqlx::query("SELECT billing_mode FROM billing_workspaces WHERE id = $1")
        .bind(workspace_id)
        .fetch_optional(e)
        .await?
        .map(|row| row.try_get(0))
        .transpose()
        .map_err(db_error)
}

pub async fn insert_workspace(tx: &mut Tx, workspace_id: &str, mode: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO billing_workspaces (id, billing_mode) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
    )
    .bind(workspace_id)
    .bind(mode)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
