//! Memberships.

use sqlx::Row;
use sqlx::any::AnyRow;
use tenantry_kit::error::{Result, db_error};

use super::*;

/// A membership row.
#[derive(Debug, Clone, PartialEq)]
pub struct MembershipRow {
    pub organization_id: String,
    pub user_id: String,
    pub roles: Vec<String>,
    pub invitation_id: Option<String>,
    pub created_at_us: i64,
    pub updated_at_us: i64,
    pub version: i64,
}

pub(super) const MEMBERSHIP_COLUMNS: &str =
    "organization_id, user_id, roles, invitation_id, created_at_us, updated_at_us, version";

pub(super) fn membership_from_row(row: &AnyRow) -> std::result::Result<MembershipRow, sqlx::Error> {
    Ok(MembershipRow {
        organization_id: row.try_get(0)?,
        user_id: row.try_get(1)?,
        roles: decode(&row.try_get::<String, _>(2)?)?,
        invitation_id: row.try_get(3)?,
        created_at_us: row.try_get(4)?,
        updated_at_us: row.try_get(5)?,
        version: row.try_get(6)?,
    })
}

impl Store {
    pub async fn membership(
        &self,
        organization_id: &str,
        user_id: &str,
    ) -> Result<Option<MembershipRow>> {
        let sql = format!(
            "SELECT {MEMBERSHIP_COLUMNS} FROM rbac_memberships
             WHERE organization_id = $1 AND user_id = $2"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(organization_id)
            .bind(user_id)
            .try_map(|row: AnyRow| membership_from_row(&row))
            .fetch_optional(self.db.pool())
            .await
            .map_err(db_error)
    }

    pub async fn membership_in(
        &self,
        tx: &mut Tx,
        organization_id: &str,
        user_id: &str,
    ) -> Result<Option<MembershipRow>> {
        let sql = format!(
            "SELECT {MEMBERSHIP_COLUMNS} FROM rbac_memberships
             WHERE organization_id = $1 AND user_id = $2"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(organization_id)
            .bind(user_id)
            .try_map(|row: AnyRow| membership_from_row(&row))
            .fetch_optional(&mut **tx)
            .await
            .map_err(db_error)
    }

    /// Members of an organization after `after_user`, by user id.
    pub async fn memberships(
        &self,
        organization_id: &str,
        after_user: &str,
        limit: i64,
    ) -> Result<Vec<MembershipRow>> {
        let sql = format!(
            "SELECT {MEMBERSHIP_COLUMNS} FROM rbac_memberships
             WHERE organization_id = $1 AND user_id > $2 ORDER BY user_id LIMIT {limit}"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(organization_id)
            .bind(after_user)
            .try_map(|row: AnyRow| membership_from_row(&row))
            .fetch_all(self.db.pool())
            .await
            .map_err(db_error)
    }

    /// The organizations where a user is a member or holds a project grant.
    pub async fn user_presence(&self, user_id: &str) -> Result<Vec<String>> {
        sqlx::query_scalar(
            "SELECT organization_id FROM rbac_memberships WHERE user_id = $1
             UNION SELECT organization_id FROM rbac_project_grants
             WHERE subject_type = 'user' AND subject_id = $1",
        )
        .bind(user_id)
        .fetch_all(self.db.pool())
        .await
        .map_err(db_error)
    }

    /// A user's memberships after `after_org`, by organization id.
    pub async fn user_memberships(
        &self,
        user_id: &str,
        after_org: &str,
        limit: i64,
    ) -> Result<Vec<MembershipRow>> {
        let sql = format!(
            "SELECT {MEMBERSHIP_COLUMNS} FROM rbac_memberships
             WHERE user_id = $1 AND organization_id > $2 ORDER BY organization_id LIMIT {limit}"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(user_id)
            .bind(after_org)
            .try_map(|row: AnyRow| membership_from_row(&row))
            .fetch_all(self.db.pool())
            .await
            .map_err(db_error)
    }

    pub async fn upsert_membership(&self, tx: &mut Tx, m: &MembershipRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO rbac_memberships (organization_id, user_id, roles, invitation_id,
                created_at_us, updated_at_us, version)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (organization_id, user_id) DO UPDATE SET roles = $3,
                updated_at_us = $6, version = $7",
        )
        .bind(&m.organization_id)
        .bind(&m.user_id)
        .bind(serde_json::to_string(&m.roles).expect("strings serialize"))
        .bind(&m.invitation_id)
        .bind(m.created_at_us)
        .bind(m.updated_at_us)
        .bind(m.version)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    pub async fn delete_membership(
        &self,
        tx: &mut Tx,
        organization_id: &str,
        user_id: &str,
    ) -> Result<bool> {
        let done =
            sqlx::query("DELETE FROM rbac_memberships WHERE organization_id = $1 AND user_id = $2")
                .bind(organization_id)
                .bind(user_id)
                .execute(&mut **tx)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The user ids of an organization's members, inside a transaction.
    pub async fn memberships_in(&self, tx: &mut Tx, organization_id: &str) -> Result<Vec<String>> {
        sqlx::query("SELECT user_id FROM rbac_memberships WHERE organization_id = $1")
            .bind(organization_id)
            .try_map(|row: AnyRow| row.try_get(0))
            .fetch_all(&mut **tx)
            .await
            .map_err(db_error)
    }

    /// How many members of an organization hold a role.
    pub async fn role_holders(
        &self,
        tx: &mut Tx,
        organization_id: &str,
        role: &str,
    ) -> Result<Vec<MembershipRow>> {
        let sql =
            format!("SELECT {MEMBERSHIP_COLUMNS} FROM rbac_memberships WHERE organization_id = $1");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(organization_id)
            .try_map(|row: AnyRow| membership_from_row(&row))
            .fetch_all(&mut **tx)
            .await?;
        Ok(rows
            .into_iter()
            .filter(|m| m.roles.iter().any(|r| r == role))
            .collect())
    }
}

impl Store {
    /// Whether a member of `organization` has the account with `email`.
    pub async fn member_with_email(&self, organization: &str, email: &str) -> Result<bool> {
        Ok(sqlx::query(
            "SELECT 1 FROM rbac_memberships m JOIN rbac_users u ON u.id = m.user_id
             WHERE m.organization_id = $1 AND lower(u.email) = $2",
        )
        .bind(organization)
        .bind(email)
        .fetch_optional(self.db.pool())
        .await?
        .is_some())
    }
}
