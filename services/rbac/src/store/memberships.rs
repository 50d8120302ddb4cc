//! Memberships.

use tenantry_kit::error::Result;
use tenantry_kit::row::{JsonText, json};

use super::*;

/// A membership row.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct MembershipRow {
    pub organization_id: String,
    pub user_id: String,
    #[sqlx(try_from = "JsonText")]
    pub roles: Vec<String>,
    pub invitation_id: Option<String>,
    pub created_at_us: i64,
    pub updated_at_us: i64,
    pub version: i64,
}

/// The columns of a membership row.
macro_rules! membership_columns {
    () => {
        "organization_id, user_id, roles, invitation_id, created_at_us, updated_at_us, version"
    };
}
pub(super) use membership_columns;

/// An organization's memberships in user order, after a user.
const MEMBERSHIPS_OF_ORGANIZATION: &str = concat!(
    "SELECT ",
    membership_columns!(),
    " FROM rbac_memberships
     WHERE organization_id = $1 AND user_id > $2 ORDER BY user_id LIMIT $3"
);

/// A user's memberships in organization order, after an organization.
const MEMBERSHIPS_OF_USER: &str = concat!(
    "SELECT ",
    membership_columns!(),
    " FROM rbac_memberships
     WHERE user_id = $1 AND organization_id > $2 ORDER BY organization_id LIMIT $3"
);

/// The membership of `user_id` in `organization_id`, read through `e`
/// (the pool, or a transaction).
async fn membership_on<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(
    e: E,
    organization_id: &str,
    user_id: &str,
) -> Result<Option<MembershipRow>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        membership_columns!(),
        " FROM rbac_memberships WHERE organization_id = $1 AND user_id = $2"
    ))
    .bind(organization_id)
    .bind(user_id)
    .fetch_optional(e)
    .await?)
}

impl Store {
    pub async fn membership(
        &self,
        organization_id: &str,
        user_id: &str,
    ) -> Result<Option<MembershipRow>> {
        membership_on(self.db.pool(), organization_id, user_id).await
    }

    /// The membership, read in `tx`.
    pub async fn membership_in(
        &self,
        tx: &mut Tx,
        organization_id: &str,
        user_id: &str,
    ) -> Result<Option<MembershipRow>> {
        membership_on(&mut **tx, organization_id, user_id).await
    }

    /// Members of an organization after `after_user`, by user id.
    pub async fn memberships(
        &self,
        organization_id: &str,
        after_user: &str,
        limit: i64,
    ) -> Result<Vec<MembershipRow>> {
        self.keyset_page(
            MEMBERSHIPS_OF_ORGANIZATION,
            (organization_id, after_user),
            limit,
        )
        .await
    }

    /// The organizations where a user is a member or holds a project grant.
    pub async fn user_presence(&self, user_id: &str) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT organization_id FROM rbac_memberships WHERE user_id = $1
             UNION SELECT organization_id FROM rbac_project_grants
             WHERE subject_type = 'user' AND subject_id = $1",
        )
        .bind(user_id)
        .fetch_all(self.db.pool())
        .await?)
    }

    /// A user's memberships after `after_org`, by organization id.
    pub async fn user_memberships(
        &self,
        user_id: &str,
        after_org: &str,
        limit: i64,
    ) -> Result<Vec<MembershipRow>> {
        self.keyset_page(MEMBERSHIPS_OF_USER, (user_id, after_org), limit)
            .await
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
        .bind(json(&m.roles))
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
        Ok(
            sqlx::query_scalar("SELECT user_id FROM rbac_memberships WHERE organization_id = $1")
                .bind(organization_id)
                .fetch_all(&mut **tx)
                .await?,
        )
    }

    /// How many members of an organization hold a role.
    pub async fn role_holders(
        &self,
        tx: &mut Tx,
        organization_id: &str,
        role: &str,
    ) -> Result<Vec<MembershipRow>> {
        let rows: Vec<MembershipRow> = sqlx::query_as(concat!(
            "SELECT ",
            membership_columns!(),
            " FROM rbac_memberships WHERE organization_id = $1"
        ))
        .bind(organization_id)
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
