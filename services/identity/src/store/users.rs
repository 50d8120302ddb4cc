//! Users: accounts, their credentials' state, and the administrators' listing.

use tenantry_kit::error::Result;
use tenantry_kit::row::Bit;

use super::*;

/// A user row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    pub id: String,
    pub email: String,
    pub display_name: String,
    pub password_hash: String,
    pub email_verified_at_us: Option<i64>,
    pub pending_email: Option<String>,
    pub state: String,
    pub deleted_at_us: Option<i64>,
    #[sqlx(try_from = "Bit")]
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

/// The columns of a user row; the unused recovery codes are counted.
macro_rules! user_columns {
    () => {
        "id, email, display_name, password_hash, email_verified_at_us, pending_email, state, \
         deleted_at_us, platform_admin, totp_secret, totp_enabled_at_us, totp_last_step, \
         pending_totp_secret, pending_totp_expires_at_us, last_login_at_us, \
         last_organization_id, password_changed_at_us, created_at_us, updated_at_us, version, \
         (SELECT COUNT(*) FROM identity_recovery_codes r \
          WHERE r.user_id = identity_users.id AND r.used_at_us IS NULL) \
         AS recovery_codes_remaining"
    };
}

/// The statement of an edit of a user, for [`Store::update_user`]: the
/// assignments `$set`, with the version bumped and the edit's time stamped.
/// The user's id is `$1` and the time `$2`, so the assignments' own values
/// start at `$3`.
macro_rules! user_update {
    ($set:literal) => {
        concat!(
            "UPDATE identity_users SET ",
            $set,
            ", version = version + 1, updated_at_us = $2 WHERE id = $1"
        )
    };
}
pub(crate) use user_update;

/// Rows per multi-row statement, and values per `IN (…)` list: well under
/// both backends' limits on bound parameters.
const BATCH: usize = 500;

impl Store {
    pub async fn insert_user(&self, tx: &mut Tx, user: &UserRow) -> Result<()> {
        self.insert_users(tx, std::slice::from_ref(user)).await
    }

    /// Inserts new users, many to a statement (an import's).
    pub async fn insert_users(&self, tx: &mut Tx, users: &[UserRow]) -> Result<()> {
        for chunk in users.chunks(BATCH) {
            let sql = format!(
                "INSERT INTO identity_users (id, email, display_name, password_hash, state,
                    platform_admin, password_changed_at_us, created_at_us, updated_at_us,
                    version, email_verified_at_us)
                 VALUES {}",
                tenantry_kit::db::values(tenantry_kit::db::Backend::of(tx), chunk.len(), 11)
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for user in chunk {
                query = query
                    .bind(&user.id)
                    .bind(&user.email)
                    .bind(&user.display_name)
                    .bind(&user.password_hash)
                    .bind(&user.state)
                    .bind(i64::from(user.platform_admin))
                    .bind(user.password_changed_at_us)
                    .bind(user.created_at_us)
                    .bind(user.updated_at_us)
                    .bind(user.version)
                    .bind(user.email_verified_at_us);
            }
            query.execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// The (id, email) of every user, deleted or not, with one of `ids`
    /// or one of `emails`.
    pub async fn users_with_ids_or_emails(
        &self,
        tx: &mut Tx,
        ids: &[&str],
        emails: &[&str],
    ) -> Result<Vec<(String, String)>> {
        let mut found = Vec::new();
        for (column, values) in [("id", ids), ("email", emails)] {
            for chunk in values.chunks(BATCH) {
                let list =
                    tenantry_kit::db::values(tenantry_kit::db::Backend::of(tx), 1, chunk.len());
                let sql = format!("SELECT id, email FROM identity_users WHERE {column} IN {list}");
                let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql));
                for value in chunk {
                    query = query.bind(*value);
                }
                found.extend(query.fetch_all(&mut **tx).await?);
            }
        }
        Ok(found)
    }

    pub async fn user_by_id(&self, id: &str) -> Result<Option<UserRow>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            user_columns!(),
            " FROM identity_users WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.db.pool())
        .await?)
    }

    pub async fn user_by_id_for_update(&self, tx: &mut Tx, id: &str) -> Result<Option<UserRow>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            user_columns!(),
            " FROM identity_users WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?)
    }

    pub async fn user_by_email(&self, email: &str) -> Result<Option<UserRow>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            user_columns!(),
            " FROM identity_users WHERE email = $1"
        ))
        .bind(email)
        .fetch_optional(self.db.pool())
        .await?)
    }

    /// Runs an edit of a user made with [`user_update!`], which bumps its
    /// version and stamps the time. `bind` adds the values of the edit's own
    /// assignments (`$3…`) in order.
    pub async fn update_user<'q>(
        &self,
        tx: &mut Tx,
        id: &'q str,
        statement: &'static str,
        bind: impl FnOnce(
            sqlx::query::Query<'q, Any, sqlx::any::AnyArguments>,
        ) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments>,
    ) -> Result<()> {
        let query = sqlx::query(statement)
            .bind(id)
            .bind(tenantry_kit::db::now_micros());
        bind(query).execute(&mut **tx).await?;
        Ok(())
    }

    /// Records that the user proved their mailbox at `now_us`.
    pub async fn set_email_verified(&self, tx: &mut Tx, id: &str, now_us: i64) -> Result<()> {
        let statement = user_update!("email_verified_at_us = $3");
        self.update_user(tx, id, statement, |q| q.bind(now_us))
            .await
    }

    /// Every stored TOTP secret, enrolled or pending: (user id, secret,
    /// pending secret), as stored (sealed, or in clear from before sealing).
    pub async fn totp_secrets(&self) -> Result<Vec<(String, Option<String>, Option<String>)>> {
        Ok(sqlx::query_as(
            "SELECT id, totp_secret, pending_totp_secret FROM identity_users
             WHERE totp_secret IS NOT NULL OR pending_totp_secret IS NOT NULL",
        )
        .fetch_all(self.db.pool())
        .await?)
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
        .execute(self.db.writer())
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
        let pattern = format!(
            "{}%",
            email_prefix.replace('\\', "").replace(['%', '_'], "")
        );
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            user_columns!(),
            " FROM identity_users
             WHERE id > $1 AND email LIKE $2 AND ($3 = 1 OR deleted_at_us IS NULL)
             ORDER BY id LIMIT $4"
        ))
        .bind(after_id)
        .bind(pattern)
        .bind(i64::from(show_deleted))
        .bind(limit)
        .fetch_all(self.db.pool())
        .await?)
    }
}
