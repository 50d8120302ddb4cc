//! The mirror of the organization tree (and registered types' objects).

use tenantry_kit::error::Result;
use tenantry_kit::row::Bit;

use super::*;

/// A mirrored node of the organization tree.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct NodeRow {
    pub object_type: String,
    pub id: String,
    pub parent_id: Option<String>,
    /// The organization the node is (organizations) or belongs to.
    pub organization_id: String,
    #[sqlx(try_from = "Bit")]
    pub inherit: bool,
    #[sqlx(try_from = "Bit")]
    pub live: bool,
}

/// The parent links [`Store::parent_links`] reads, before the page's end.
macro_rules! parent_links_where {
    () => {
        "SELECT object_type, id, parent_id FROM rbac_nodes
         WHERE parent_id IS NOT NULL AND ($1 = '' OR object_type = $1) AND ($2 = '' OR id = $2)
           AND ($3 = '' OR parent_id = $3)
           AND (object_type > $4 OR (object_type = $4 AND id > $5))"
    };
}

impl Store {
    /// Mirrors a node, with its tree's root: an organization's parent's, or
    /// anything else's organization's (a root organization is its own).
    pub async fn upsert_node(&self, tx: &mut Tx, node: &NodeRow) -> Result<()> {
        let above = match node.object_type.as_str() {
            "organization" => node.parent_id.as_deref(),
            _ => Some(node.organization_id.as_str()),
        };
        sqlx::query(
            "INSERT INTO rbac_nodes (object_type, id, parent_id, organization_id, inherit, live, root_id)
             VALUES ($1, $2, $3, $4, $5, $6, COALESCE((SELECT o.root_id FROM rbac_nodes o
                 WHERE o.object_type = 'organization' AND o.id = $7), $2))
             ON CONFLICT (object_type, id) DO UPDATE SET parent_id = $3, organization_id = $4,
                inherit = $5, live = $6",
        )
        .bind(&node.object_type)
        .bind(&node.id)
        .bind(&node.parent_id)
        .bind(&node.organization_id)
        .bind(i64::from(node.inherit))
        .bind(i64::from(node.live))
        .bind(above)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Sets whether an organization's members see only the projects
    /// granted to them; whether that changed anything.
    pub async fn set_projects_granted_only(
        &self,
        tx: &mut Tx,
        organization: &str,
        granted_only: bool,
    ) -> Result<bool> {
        let flag = i64::from(granted_only);
        let done = sqlx::query(
            "UPDATE rbac_nodes SET projects_granted_only = $2
             WHERE object_type = 'organization' AND id = $1 AND projects_granted_only <> $2",
        )
        .bind(organization)
        .bind(flag)
        .execute(&mut **tx)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn node(&self, tx: &mut Tx, object_type: &str, id: &str) -> Result<Option<NodeRow>> {
        Ok(sqlx::query_as(
            "SELECT object_type, id, parent_id, organization_id, inherit, live FROM rbac_nodes
             WHERE object_type = $1 AND id = $2",
        )
        .bind(object_type)
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?)
    }

    /// Parent links matching a filter, as (type, id, parent id): by the
    /// object's type and optional id, and/or by the parent's id.
    /// `organizations`, when given, keeps only links of objects that
    /// belong to one of them (an empty list matches nothing); `after`, a
    /// (type, id) from a previous page, starts after it.
    pub async fn parent_links(
        &self,
        object_type: &str,
        object_id: &str,
        parent_id: &str,
        organizations: Option<&[String]>,
        after: Option<(&str, &str)>,
        limit: i64,
    ) -> Result<Vec<(String, String, String)>> {
        let (after_type, after_id) = after.unwrap_or_default();
        let query = match organizations {
            None => sqlx::query_as(concat!(
                parent_links_where!(),
                " ORDER BY object_type, id LIMIT $6"
            )),
            Some([]) => return Ok(Vec::new()),
            // Dynamic only by the count of placeholders: the ids are bound.
            Some(ids) => sqlx::query_as(sqlx::AssertSqlSafe(format!(
                concat!(
                    parent_links_where!(),
                    " AND organization_id IN ({}) ORDER BY object_type, id LIMIT $6"
                ),
                (0..ids.len())
                    .map(|i| format!("${}", i + 7))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        };
        let mut query = query
            .bind(object_type)
            .bind(object_id)
            .bind(parent_id)
            .bind(after_type)
            .bind(after_id)
            .bind(limit);
        for id in organizations.unwrap_or_default() {
            query = query.bind(id.as_str());
        }
        Ok(query.fetch_all(self.db.pool()).await?)
    }

    /// How many custom roles, in any organization, list a permission of
    /// `object_type` (permissions are `<type>.<action>`, stored as a JSON
    /// array of strings).
    pub async fn roles_naming_type(&self, object_type: &str) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM rbac_roles WHERE permissions LIKE $1")
                .bind(format!("%\"{object_type}.%"))
                .fetch_one(self.db.pool())
                .await?,
        )
    }

    /// How many objects of a type exist.
    pub async fn count_nodes(&self, object_type: &str) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM rbac_nodes WHERE object_type = $1")
                .bind(object_type)
                .fetch_one(self.db.pool())
                .await?,
        )
    }

    pub async fn upsert_type(
        &self,
        tx: &mut Tx,
        name: &str,
        definition: &str,
        registered_by: &str,
        now_us: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO rbac_resource_types (name, definition, registered_by, created_at_us, updated_at_us, version)
             VALUES ($1, $2, $3, $4, $4, 1)
             ON CONFLICT (name) DO UPDATE SET definition = $2, updated_at_us = $4,
                version = rbac_resource_types.version + 1",
        )
        .bind(name)
        .bind(definition)
        .bind(registered_by)
        .bind(now_us)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// A registered type: (definition JSON, registered by, created, updated,
    /// version).
    pub async fn resource_type(
        &self,
        name: &str,
    ) -> Result<Option<(String, String, i64, i64, i64)>> {
        Ok(sqlx::query_as(
            "SELECT definition, registered_by, created_at_us, updated_at_us, version
             FROM rbac_resource_types WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(self.db.pool())
        .await?)
    }

    pub async fn delete_type(&self, tx: &mut Tx, name: &str) -> Result<()> {
        sqlx::query("DELETE FROM rbac_resource_types WHERE name = $1")
            .bind(name)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    pub async fn delete_node(&self, tx: &mut Tx, object_type: &str, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM rbac_nodes WHERE object_type = $1 AND id = $2")
            .bind(object_type)
            .bind(id)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}
