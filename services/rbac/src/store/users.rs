//! Users, as identity's events describe them: who is inactive, ended sessions and live API keys.

use tenantry_kit::error::Result;
use tenantry_kit::row::{Bit, json};

use super::*;

impl Store {
    pub async fn upsert_user(&self, tx: &mut Tx, user: &UserRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO rbac_users (id, email, display_name, email_verified, deleted)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (id) DO UPDATE SET email = $2, display_name = $3, email_verified = $4,
                deleted = $5",
        )
        .bind(&user.id)
        .bind(&user.email)
        .bind(&user.display_name)
        .bind(i64::from(user.email_verified))
        .bind(i64::from(user.deleted))
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Records an API key identity announced (again: the same key twice is
    /// one row).
    pub async fn upsert_api_key(&self, tx: &mut Tx, key: &Change) -> Result<()> {
        let Change::ApiKey {
            id,
            organization,
            owner,
            scope,
            permissions,
        } = key
        else {
            return Ok(());
        };
        let (scope_type, scope_id) = match scope {
            KeyScope::Organization(id) => ("organization", id),
            KeyScope::Team(id) => ("team", id),
            KeyScope::Project(id) => ("project", id),
        };
        sqlx::query(
            "INSERT INTO rbac_api_keys (id, organization_id, owner_id, scope_type, scope_id, permissions)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (id) DO UPDATE SET organization_id = $2, owner_id = $3, scope_type = $4,
                 scope_id = $5, permissions = $6",
        )
        .bind(id)
        .bind(organization)
        .bind(owner)
        .bind(scope_type)
        .bind(scope_id)
        .bind(json(permissions))
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Records an ended session (and forgets those whose tokens have all
    /// expired).
    pub async fn end_session(
        &self,
        tx: &mut Tx,
        id: &str,
        at_us: i64,
        until_us: i64,
    ) -> Result<()> {
        sqlx::query("DELETE FROM rbac_ended_sessions WHERE until_us <= $1")
            .bind(at_us)
            .execute(&mut **tx)
            .await?;
        sqlx::query(
            "INSERT INTO rbac_ended_sessions (session_id, ended_at_us, until_us) VALUES ($1, $2, $3)
             ON CONFLICT (session_id) DO NOTHING",
        )
        .bind(id)
        .bind(at_us)
        .bind(until_us)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Forgets a revoked API key.
    pub async fn delete_api_key(&self, tx: &mut Tx, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM rbac_api_keys WHERE id = $1")
            .bind(id)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Sets one reason for a user to hold nothing (`disabled` or
    /// `deleted`); returns whether the user is active afterwards.
    pub async fn set_inactive(
        &self,
        tx: &mut Tx,
        user_id: &str,
        reason: InactiveReason,
        on: bool,
    ) -> Result<bool> {
        let current: InactiveFlags =
            sqlx::query_as("SELECT disabled, deleted FROM rbac_inactive_users WHERE user_id = $1")
                .bind(user_id)
                .fetch_optional(&mut **tx)
                .await?
                .unwrap_or_default();
        let (disabled, deleted) = match reason {
            InactiveReason::Disabled => (on, current.deleted),
            InactiveReason::Deleted => (current.disabled, on),
        };
        if disabled || deleted {
            sqlx::query(
                "INSERT INTO rbac_inactive_users (user_id, disabled, deleted) VALUES ($1, $2, $3)
                 ON CONFLICT (user_id) DO UPDATE SET disabled = $2, deleted = $3",
            )
            .bind(user_id)
            .bind(i64::from(disabled))
            .bind(i64::from(deleted))
            .execute(&mut **tx)
            .await?;
        } else {
            sqlx::query("DELETE FROM rbac_inactive_users WHERE user_id = $1")
                .bind(user_id)
                .execute(&mut **tx)
                .await?;
        }
        Ok(!(disabled || deleted))
    }

    pub async fn user(&self, id: &str) -> Result<Option<UserRow>> {
        user_row(self.db.pool(), id).await
    }

    /// As [`user`](Self::user), inside `tx`: on SQLite a transaction holds
    /// the write lock, and asking the pool for another connection meanwhile
    /// can wait on writers that wait for this one (a stall until someone's
    /// timeout, seen as 2 s per concurrent email verification).
    pub async fn user_in(&self, tx: &mut Tx, id: &str) -> Result<Option<UserRow>> {
        user_row(&mut **tx, id).await
    }
}

pub(super) async fn user_row<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(
    e: E,
    id: &str,
) -> Result<Option<UserRow>> {
    Ok(sqlx::query_as(
        "SELECT id, email, display_name, email_verified, deleted FROM rbac_users WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(e)
    .await?)
}

/// Why a user holds nothing, as stored (no row: neither).
#[derive(Debug, Default, sqlx::FromRow)]
struct InactiveFlags {
    #[sqlx(try_from = "Bit")]
    disabled: bool,
    #[sqlx(try_from = "Bit")]
    deleted: bool,
}

/// Why a user holds nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InactiveReason {
    Disabled,
    Deleted,
}

/// A user as rbac knows them (from identity's events).
#[derive(Debug, Clone, PartialEq, Default, sqlx::FromRow)]
pub struct UserRow {
    pub id: String,
    pub email: String,
    pub display_name: String,
    #[sqlx(try_from = "Bit")]
    pub email_verified: bool,
    #[sqlx(try_from = "Bit")]
    pub deleted: bool,
}
