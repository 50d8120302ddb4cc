//! Users: accounts, their credentials' state, and the administrators' listing.

use sqlx::Row;
use sqlx::any::AnyRow;
use tenantry_kit::error::{Result, db_error};

use super::*;

/// A user row.
#[derive(Debug, Clone)]
pub struct UserRow {
    pub id: String,
    pub email: String,
    pub display_name: String,
    pub password_hash: String,
    pub email_verified_at_us: Option<i64>,
    pub pending_email: Option<String>,
    pub state: String,
    pub deleted_at_us: Option<i64>,
    pub platform_admin: bool,
    pub totp_secret: Option<String>,
    pub totp_enabled_at_us: Option<i64>,
    pub totp_last_step: Option<i64>,
    pub pending_totp_secret: Option<String>,
    pub pending_totp_expires_at_us: Option<i64>,
    pub last_login_at_us: Option<i64>,
    pub last_organization_id: Option<String>,
    pub password_changed_at_us: i64,
    pub created_at_us: i64,
    pub updated_at_us: i64,
    pub version: i64,
    /// Unused recovery codes.
    pub recovery_codes_remaining: i64,
}

impl UserRow {
    /// Whether the user may sign in: not disabled, not deleted.
    pub fn is_active(&self) -> bool {
        self.state == "active" && self.deleted_at_us.is_none()
    }

    /// Whether TOTP is on.
    pub fn mfa_enabled(&self) -> bool {
        self.totp_enabled_at_us.is_some()
    }
}

const USER_COLUMNS: &str = "id, email, display_name, password_hash, email_verified_at_us, \
    pending_email, state, deleted_at_us, platform_admin, totp_secret, totp_enabled_at_us, \
    totp_last_step, pending_totp_secret, pending_totp_expires_at_us, last_login_at_us, \
    last_organization_id, password_changed_at_us, created_at_us, updated_at_us, version, \
    (SELECT COUNT(*) FROM identity_recovery_codes r \
     WHERE r.user_id = identity_users.id AND r.used_at_us IS NULL)";

fn user_from_row(row: &AnyRow) -> std::result::Result<UserRow, sqlx::Error> {
    Ok(UserRow {
        id: row.try_get(0)?,
        email: row.try_get(1)?,
        display_name: row.try_get(2)?,
        password_hash: row.try_get(3)?,
        email_verified_at_us: row.try_get(4)?,
        pending_email: row.try_get(5)?,
        state: row.try_get(6)?,
        deleted_at_us: row.try_get(7)?,
        platform_admin: row.try_get::<i64, _>(8)? != 0,
        totp_secret: row.try_get(9)?,
        totp_enabled_at_us: row.try_get(10)?,
        totp_last_step: row.try_get(11)?,
        pending_totp_secret: row.try_get(12)?,
        pending_totp_expires_at_us: row.try_get(13)?,
        last_login_at_us: row.try_get(14)?,
        last_organization_id: row.try_get(15)?,
        password_changed_at_us: row.try_get(16)?,
        created_at_us: row.try_get(17)?,
        updated_at_us: row.try_get(18)?,
        version: row.try_get(19)?,
        recovery_codes_remaining: row.try_get(20)?,
    })
}

impl Store {
    pub async fn insert_user(&self, tx: &mut Tx, user: &UserRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO identity_users (id, email, display_name, password_hash, state,
                platform_admin, password_changed_at_us, created_at_us, updated_at_us, version,
                email_verified_at_us)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1, $10)",
        )
        .bind(&user.id)
        .bind(&user.email)
        .bind(&user.display_name)
        .bind(&user.password_hash)
        .bind(&user.state)
        .bind(i64::from(user.platform_admin))
        .bind(user.password_changed_at_us)
        .bind(user.created_at_us)
        .bind(user.updated_at_us)
        .bind(user.email_verified_at_us)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    pub async fn user_by_id(&self, id: &str) -> Result<Option<UserRow>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM identity_users WHERE id = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(self.db.pool())
            .await?
            .map(|row| user_from_row(&row))
            .transpose()
            .map_err(db_error)
    }

    pub async fn user_by_id_for_update(&self, tx: &mut Tx, id: &str) -> Result<Option<UserRow>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM identity_users WHERE id = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?
            .map(|row| user_from_row(&row))
            .transpose()
            .map_err(db_error)
    }

    pub async fn user_by_email(&self, email: &str) -> Result<Option<UserRow>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM identity_users WHERE email = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(email)
            .fetch_optional(self.db.pool())
            .await?
            .map(|row| user_from_row(&row))
            .transpose()
            .map_err(db_error)
    }

    /// Applies `set` (a SQL assignment list over `$2…`) to a user and bumps
    /// its version. `bind` adds the values for `$2…` in order.
    pub async fn update_user<'q>(
        &self,
        tx: &mut Tx,
        id: &'q str,
        set: &'static str,
        bind: impl FnOnce(
            sqlx::query::Query<'q, Any, sqlx::any::AnyArguments>,
        ) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments>,
    ) -> Result<()> {
        let sql = format!(
            "UPDATE identity_users SET {set}, version = version + 1, updated_at_us = {now}
             WHERE id = $1",
            now = tenantry_kit::db::now_micros()
        );
        let query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id);
        bind(query).execute(&mut **tx).await?;
        Ok(())
    }

    /// Every stored TOTP secret, enrolled or pending: (user id, secret,
    /// pending secret), as stored (sealed, or in clear from before sealing).
    pub async fn totp_secrets(&self) -> Result<Vec<(String, Option<String>, Option<String>)>> {
        sqlx::query(
            "SELECT id, totp_secret, pending_totp_secret FROM identity_users
             WHERE totp_secret IS NOT NULL OR pending_totp_secret IS NOT NULL",
        )
        .fetch_all(self.db.pool())
        .await?
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
        .collect::<std::result::Result<_, sqlx::Error>>()
        .map_err(db_error)
    }

    /// Replaces a user's stored TOTP secrets if they are still `before`
    /// (a concurrent enrollment wins). Not an edit of the user: the version
    /// stays.
    pub async fn reseal_totp_secrets(
        &self,
        id: &str,
        before: (Option<&str>, Option<&str>),
        after: (Option<&str>, Option<&str>),
    ) -> Result<()> {
        sqlx::query(
            "UPDATE identity_users SET totp_secret = $4, pending_totp_secret = $5
             WHERE id = $1 AND totp_secret IS NOT DISTINCT FROM $2
               AND pending_totp_secret IS NOT DISTINCT FROM $3",
        )
        .bind(id)
        .bind(before.0)
        .bind(before.1)
        .bind(after.0)
        .bind(after.1)
        .execute(self.db.pool())
        .await?;
        Ok(())
    }

    /// Records a sign-in time. Not an edit of the user: the version (etag)
    /// stays.
    pub async fn record_login(&self, tx: &mut Tx, id: &str, now_us: i64) -> Result<()> {
        sqlx::query("UPDATE identity_users SET last_login_at_us = $2 WHERE id = $1")
            .bind(id)
            .bind(now_us)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}

impl Store {
    /// Users after `after_id` in id order, optionally filtered.
    pub async fn users(
        &self,
        after_id: &str,
        limit: i64,
        email_prefix: &str,
        show_deleted: bool,
    ) -> Result<Vec<UserRow>> {
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM identity_users
             WHERE id > $1 AND email LIKE $2 AND ($3 = 1 OR deleted_at_us IS NULL)
             ORDER BY id LIMIT $4"
        );
        let pattern = format!(
            "{}%",
            email_prefix.replace('\\', "").replace(['%', '_'], "")
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(after_id)
            .bind(pattern)
            .bind(i64::from(show_deleted))
            .bind(limit)
            .fetch_all(self.db.pool())
            .await?
            .iter()
            .map(user_from_row)
            .collect::<std::result::Result<_, _>>()
            .map_err(db_error)
    }
}
