//! Custom roles.

use tenantry_kit::error::Result;
use tenantry_kit::names::CustomRoleName;
use tenantry_kit::row::{JsonText, json};

use super::*;

/// A custom role row.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct RoleRow {
    pub id: String,
    pub organization_id: String,
    pub display_name: String,
    pub description: String,
    #[sqlx(try_from = "JsonText")]
    pub permissions: Vec<String>,
    pub created_at_us: i64,
    pub updated_at_us: i64,
    pub version: i64,
}

impl RoleRow {
    /// The role's resource name, as memberships name it.
    pub fn name(&self) -> String {
        CustomRoleName::new(&self.organization_id, &self.id).to_string()
    }
}

/// The columns of a role row.
macro_rules! role_columns {
    () => {
        "id, organization_id, display_name, description, permissions, created_at_us, \
         updated_at_us, version"
    };
}
pub(super) use role_columns;

impl Store {
    pub async fn role(&self, organization_id: &str, id: &str) -> Result<Option<RoleRow>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            role_columns!(),
            " FROM rbac_roles WHERE organization_id = $1 AND id = $2"
        ))
        .bind(organization_id)
        .bind(id)
        .fetch_optional(self.db.pool())
        .await?)
    }

    pub async fn roles(&self, organization_id: &str) -> Result<Vec<RoleRow>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            role_columns!(),
            " FROM rbac_roles WHERE organization_id = $1 ORDER BY id"
        ))
        .bind(organization_id)
        .fetch_all(self.db.pool())
        .await?)
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
        .bind(json(&role.permissions))
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
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            role_columns!(),
            " FROM rbac_roles WHERE organization_id = $1"
        ))
        .bind(organization_id)
        .fetch_all(&mut **tx)
        .await?)
    }
}
