//! Custom roles.

use sqlx::Row;
use sqlx::any::AnyRow;
use tenantry_kit::error::{Result, db_error};

use super::*;

/// A custom role row.
#[derive(Debug, Clone, PartialEq)]
pub struct RoleRow {
    pub id: String,
    pub organization_id: String,
    pub display_name: String,
    pub description: String,
    pub permissions: Vec<String>,
    pub created_at_us: i64,
    pub updated_at_us: i64,
    pub version: i64,
}

impl RoleRow {
    /// The role's resource name, as memberships name it.
    pub fn name(&self) -> String {
        format!("organizations/{}/roles/{}", self.organization_id, self.id)
    }
}

pub(super) const ROLE_COLUMNS: &str = "id, organization_id, display_name, description, permissions, \
    created_at_us, updated_at_us, version";

pub(super) fn role_from_row(row: &AnyRow) -> std::result::Result<RoleRow, sqlx::Error> {
    Ok(RoleRow {
        id: row.try_get(0)?,
        organization_id: row.try_get(1)?,
        display_name: row.try_get(2)?,
        description: row.try_get(3)?,
        permissions: decode(&row.try_get::<String, _>(4)?)?,
        created_at_us: row.try_get(5)?,
        updated_at_us: row.try_get(6)?,
        version: row.try_get(7)?,
    })
}

impl Store {
    pub async fn role(&self, organization_id: &str, id: &str) -> Result<Option<RoleRow>> {
        let sql =
            format!("SELECT {ROLE_COLUMNS} FROM rbac_roles WHERE organization_id = $1 AND id = $2");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(organization_id)
            .bind(id)
            .try_map(|row: AnyRow| role_from_row(&row))
            .fetch_optional(self.db.pool())
            .await
            .map_err(db_error)
    }

    pub async fn roles(&self, organization_id: &str) -> Result<Vec<RoleRow>> {
        let sql =
            format!("SELECT {ROLE_COLUMNS} FROM rbac_roles WHERE organization_id = $1 ORDER BY id");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(organization_id)
            .try_map(|row: AnyRow| role_from_row(&row))
            .fetch_all(self.db.pool())
            .await
            .map_err(db_error)
    }

    pub async fn upsert_role(&self, tx: &mut Tx, role: &RoleRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO rbac_roles (id, organization_id, display_name, description, permissions,
                created_at_us, updated_at_us, version)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (id) DO UPDATE SET display_name = $3, description = $4, permissions = $5,
                updated_at_us = $7, version = $8",
        )
        .bind(&role.id)
        .bind(&role.organization_id)
        .bind(&role.display_name)
        .bind(&role.description)
        .bind(serde_json::to_string(&role.permissions).expect("strings serialize"))
        .bind(role.created_at_us)
        .bind(role.updated_at_us)
        .bind(role.version)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    pub async fn delete_role(&self, tx: &mut Tx, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM rbac_roles WHERE id = $1")
            .bind(id)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// An organization's custom roles, inside a transaction.
    pub async fn roles_in(&self, tx: &mut Tx, organization_id: &str) -> Result<Vec<RoleRow>> {
        let sql = format!("SELECT {ROLE_COLUMNS} FROM rbac_roles WHERE organization_id = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(organization_id)
            .try_map(|row: AnyRow| role_from_row(&row))
            .fetch_all(&mut **tx)
            .await
            .map_err(db_error)
    }
}
