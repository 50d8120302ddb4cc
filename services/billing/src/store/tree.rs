//! The organization tree, as billing mirrors it.

use tenantry_kit::error::Result;
use tenantry_kit::row::Bit;

use super::*;

/// A node of the organization tree, as billing mirrors it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct NodeRow {
    pub id: String,
    pub parent_id: Option<String>,
    pub root_id: String,
    pub workspace_id: String,
    /// `/root/…/id/`.
    pub path: String,
    /// Whether this node itself was soft-deleted (its subtree no longer
    /// counts above it).
    #[sqlx(try_from = "Bit")]
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

/// The columns of a node row.
macro_rules! node_columns {
    () => {
        "id, parent_id, root_id, workspace_id, path, deleted"
    };
}

pub async fn node<'e, E: Executor<'e, Database = Any>>(e: E, id: &str) -> Result<Option<NodeRow>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        node_columns!(),
        " FROM billing_nodes WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(e)
    .await?)
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
        concat!(
            "SELECT ",
            node_columns!(),
            " FROM billing_nodes WHERE id IN ({})"
        ),
        placeholders(1, ids.len())
    );
    // Safe: the only text added is a placeholder list built from a count.
    let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql));
    for id in ids {
        query = query.bind(*id);
    }
    let rows: Vec<NodeRow> = query.fetch_all(e).await?;
    Ok(rows.into_iter().map(|n| (n.id.clone(), n)).collect())
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
    Ok(sqlx::query_scalar(
        "SELECT id FROM billing_nodes WHERE workspace_id = $1 AND parent_id IS NULL AND deleted = 0 ORDER BY id LIMIT 1000",
    )
    .bind(workspace_id)
    .fetch_all(e)
    .await?)
}

/// A workspace's billing mode (`single`, `assigned`, `pooled`).
pub async fn workspace_mode<'e, E: Executor<'e, Database = Any>>(
    e: E,
    workspace_id: &str,
) -> Result<Option<String>> {
    Ok(
        sqlx::query_scalar("SELECT billing_mode FROM billing_workspaces WHERE id = $1")
            .bind(workspace_id)
            .fetch_optional(e)
            .await?,
    )
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
