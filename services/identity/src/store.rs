//! The identity service's tables, behind one struct so handlers read as
//! domain logic. Every write that changes state takes the caller's
//! transaction, so the change and its outbox event commit together.

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use tenantry_kit::db::Database;
use tenantry_kit::error::{Result, db_error};

/// A transaction on the service's database.
pub type Tx = Transaction<'static, Any>;

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

/// A session row.
#[derive(Debug, Clone)]
pub struct SessionRow {
    pub id: String,
    pub user_id: String,
    pub active_organization_id: Option<String>,
    pub requested_organization_id: Option<String>,
    pub mfa: bool,
    pub mfa_pending: bool,
    pub user_agent: String,
    pub client_address: String,
    pub created_at_us: i64,
    pub last_seen_at_us: i64,
    pub expires_at_us: i64,
    pub revoked_at_us: Option<i64>,
}

const SESSION_COLUMNS: &str = "id, user_id, active_organization_id, requested_organization_id, \
    mfa, mfa_pending, user_agent, client_address, created_at_us, last_seen_at_us, \
    expires_at_us, revoked_at_us";

fn session_from_row(row: &AnyRow) -> std::result::Result<SessionRow, sqlx::Error> {
    Ok(SessionRow {
        id: row.try_get(0)?,
        user_id: row.try_get(1)?,
        active_organization_id: row.try_get(2)?,
        requested_organization_id: row.try_get(3)?,
        mfa: row.try_get::<i64, _>(4)? != 0,
        mfa_pending: row.try_get::<i64, _>(5)? != 0,
        user_agent: row.try_get(6)?,
        client_address: row.try_get(7)?,
        created_at_us: row.try_get(8)?,
        last_seen_at_us: row.try_get(9)?,
        expires_at_us: row.try_get(10)?,
        revoked_at_us: row.try_get(11)?,
    })
}

/// A refresh token row.
#[derive(Debug, Clone)]
pub struct RefreshRow {
    pub session_id: String,
    pub expires_at_us: i64,
    pub rotated_at_us: Option<i64>,
}

/// A single-use token row.
#[derive(Debug, Clone)]
pub struct OneTimeRow {
    pub user_id: String,
    pub purpose: String,
    pub payload: String,
    pub attempts: i64,
    pub expires_at_us: i64,
    pub used_at_us: Option<i64>,
}

/// A single-use token to store (only its hash).
#[derive(Debug, Clone, Copy)]
pub struct NewOneTime<'a> {
    pub token_hash: &'a str,
    pub user_id: &'a str,
    pub purpose: &'a str,
    pub payload: &'a str,
    pub now_us: i64,
    pub expires_at_us: i64,
}

/// A sign-up waiting for its address to be proved.
#[derive(Debug, Clone)]
pub struct PendingSignUp {
    pub email: String,
    pub display_name: String,
    pub password_hash: String,
    /// Empty for the default name.
    pub organization_name: String,
    pub created_at_us: i64,
    pub expires_at_us: i64,
}

/// The identity tables.
#[derive(Debug, Clone)]
pub struct Store {
    db: Database,
}

impl Store {
    pub fn new(db: Database) -> Self {
        Store { db }
    }

    pub fn db(&self) -> &Database {
        &self.db
    }

    /// Deletes a user that never completed sign-up, with their single-use
    /// tokens (the only rows that can reference them yet).
    pub async fn delete_new_user(&self, tx: &mut Tx, id: &str) -> Result<()> {
        for sql in [
            "DELETE FROM identity_one_time_tokens WHERE user_id = $1",
            "DELETE FROM identity_users WHERE id = $1",
        ] {
            sqlx::query(sql).bind(id).execute(&mut **tx).await?;
        }
        Ok(())
    }

    pub async fn begin(&self) -> Result<Tx> {
        self.db.begin().await
    }

    // Sign-ups waiting for their address to be proved.

    /// Stores a pending sign-up under the hash of its mailed token, and
    /// forgets the address's expired ones.
    pub async fn insert_pending_sign_up(
        &self,
        tx: &mut Tx,
        token_hash: &str,
        sign_up: &PendingSignUp,
    ) -> Result<()> {
        sqlx::query(
            "DELETE FROM identity_pending_sign_ups WHERE email = $1 AND expires_at_us <= $2",
        )
        .bind(&sign_up.email)
        .bind(sign_up.created_at_us)
        .execute(&mut **tx)
        .await?;
        sqlx::query(
            "INSERT INTO identity_pending_sign_ups (token_hash, email, display_name,
                password_hash, organization_name, created_at_us, expires_at_us)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(token_hash)
        .bind(&sign_up.email)
        .bind(&sign_up.display_name)
        .bind(&sign_up.password_hash)
        .bind(&sign_up.organization_name)
        .bind(sign_up.created_at_us)
        .bind(sign_up.expires_at_us)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Takes the unused, unexpired pending sign-up with this token hash:
    /// marks it used and returns it. `None` for any other token.
    pub async fn take_pending_sign_up(
        &self,
        tx: &mut Tx,
        token_hash: &str,
        now_us: i64,
    ) -> Result<Option<PendingSignUp>> {
        let taken = sqlx::query(
            "UPDATE identity_pending_sign_ups SET used_at_us = $2
             WHERE token_hash = $1 AND used_at_us IS NULL AND expires_at_us > $2",
        )
        .bind(token_hash)
        .bind(now_us)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if taken != 1 {
            return Ok(None);
        }
        let row = sqlx::query(
            "SELECT email, display_name, password_hash, organization_name, created_at_us,
                    expires_at_us
             FROM identity_pending_sign_ups WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_one(&mut **tx)
        .await?;
        let read = || -> std::result::Result<PendingSignUp, sqlx::Error> {
            Ok(PendingSignUp {
                email: row.try_get(0)?,
                display_name: row.try_get(1)?,
                password_hash: row.try_get(2)?,
                organization_name: row.try_get(3)?,
                created_at_us: row.try_get(4)?,
                expires_at_us: row.try_get(5)?,
            })
        };
        read().map(Some).map_err(db_error)
    }

    /// Makes a taken pending sign-up usable again: its account could not be
    /// completed.
    pub async fn release_pending_sign_up(&self, tx: &mut Tx, token_hash: &str) -> Result<()> {
        sqlx::query("UPDATE identity_pending_sign_ups SET used_at_us = NULL WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Forgets every other pending sign-up of an address that now has its
    /// account: their links stop working.
    pub async fn close_pending_sign_ups(&self, tx: &mut Tx, email: &str) -> Result<()> {
        sqlx::query(
            "DELETE FROM identity_pending_sign_ups WHERE email = $1 AND used_at_us IS NULL",
        )
        .bind(email)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    // Users.

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

    // Sessions.

    pub async fn insert_session(&self, tx: &mut Tx, session: &SessionRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO identity_sessions (id, user_id, active_organization_id,
                requested_organization_id, mfa, mfa_pending, user_agent, client_address,
                created_at_us, last_seen_at_us, expires_at_us)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&session.id)
        .bind(&session.user_id)
        .bind(&session.active_organization_id)
        .bind(&session.requested_organization_id)
        .bind(i64::from(session.mfa))
        .bind(i64::from(session.mfa_pending))
        .bind(&session.user_agent)
        .bind(&session.client_address)
        .bind(session.created_at_us)
        .bind(session.last_seen_at_us)
        .bind(session.expires_at_us)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    pub async fn session(&self, tx: &mut Tx, id: &str) -> Result<Option<SessionRow>> {
        let sql = format!("SELECT {SESSION_COLUMNS} FROM identity_sessions WHERE id = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?
            .map(|row| session_from_row(&row))
            .transpose()
            .map_err(db_error)
    }

    /// The user's sessions that are neither revoked nor expired, newest first.
    pub async fn live_sessions(&self, user_id: &str, now_us: i64) -> Result<Vec<SessionRow>> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM identity_sessions
             WHERE user_id = $1 AND revoked_at_us IS NULL AND expires_at_us > $2
             ORDER BY created_at_us DESC, id DESC"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(user_id)
            .bind(now_us)
            .fetch_all(self.db.pool())
            .await?
            .iter()
            .map(session_from_row)
            .collect::<std::result::Result<_, _>>()
            .map_err(db_error)
    }

    pub async fn touch_session(
        &self,
        tx: &mut Tx,
        id: &str,
        now_us: i64,
        client_address: &str,
        user_agent: &str,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE identity_sessions SET last_seen_at_us = $2, client_address = $3, user_agent = $4
             WHERE id = $1",
        )
        .bind(id)
        .bind(now_us)
        .bind(client_address)
        .bind(user_agent)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    pub async fn set_session_organization(
        &self,
        tx: &mut Tx,
        id: &str,
        organization: Option<&str>,
        mfa: bool,
        mfa_pending: bool,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE identity_sessions SET active_organization_id = $2, mfa = $3, mfa_pending = $4
             WHERE id = $1",
        )
        .bind(id)
        .bind(organization)
        .bind(i64::from(mfa))
        .bind(i64::from(mfa_pending))
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Revokes one session. Returns whether it was live.
    pub async fn revoke_session(&self, tx: &mut Tx, id: &str, reason: &str) -> Result<bool> {
        let revoked = sqlx::query(
            "UPDATE identity_sessions SET revoked_at_us = $2, revoke_reason = $3
             WHERE id = $1 AND revoked_at_us IS NULL",
        )
        .bind(id)
        .bind(tenantry_kit::db::now_micros())
        .bind(reason)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        Ok(revoked == 1)
    }

    /// The ids of a user's sessions that have not been revoked.
    pub async fn live_session_ids(&self, tx: &mut Tx, user_id: &str) -> Result<Vec<String>> {
        sqlx::query("SELECT id FROM identity_sessions WHERE user_id = $1 AND revoked_at_us IS NULL")
            .bind(user_id)
            .fetch_all(&mut **tx)
            .await?
            .iter()
            .map(|row| row.try_get(0))
            .collect::<std::result::Result<_, _>>()
            .map_err(db_error)
    }

    /// Whether a session is neither revoked nor expired: a plain read, for
    /// the per-call check, which must not take the write lock.
    pub async fn session_is_live(&self, id: &str, now_us: i64) -> Result<bool> {
        Ok(sqlx::query(
            "SELECT 1 FROM identity_sessions WHERE id = $1 AND revoked_at_us IS NULL AND expires_at_us > $2",
        )
        .bind(id)
        .bind(now_us)
        .fetch_optional(self.db.pool())
        .await?
        .is_some())
    }

    // Refresh tokens.

    pub async fn insert_refresh(
        &self,
        tx: &mut Tx,
        token_hash: &str,
        session_id: &str,
        now_us: i64,
        expires_at_us: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO identity_refresh_tokens (token_hash, session_id, created_at_us, expires_at_us)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(token_hash)
        .bind(session_id)
        .bind(now_us)
        .bind(expires_at_us)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    pub async fn refresh(&self, tx: &mut Tx, token_hash: &str) -> Result<Option<RefreshRow>> {
        sqlx::query(
            "SELECT session_id, expires_at_us, rotated_at_us FROM identity_refresh_tokens
             WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&mut **tx)
        .await?
        .map(|row| {
            Ok(RefreshRow {
                session_id: row.try_get(0)?,
                expires_at_us: row.try_get(1)?,
                rotated_at_us: row.try_get(2)?,
            })
        })
        .transpose()
        .map_err(db_error)
    }

    /// Marks a refresh token used. Returns false when another request used
    /// it first (a concurrent replay).
    pub async fn rotate_refresh(&self, tx: &mut Tx, token_hash: &str, now_us: i64) -> Result<bool> {
        let rows = sqlx::query(
            "UPDATE identity_refresh_tokens SET rotated_at_us = $2
             WHERE token_hash = $1 AND rotated_at_us IS NULL",
        )
        .bind(token_hash)
        .bind(now_us)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        Ok(rows == 1)
    }

    // Single-use tokens.

    pub async fn insert_one_time(&self, tx: &mut Tx, token: &NewOneTime<'_>) -> Result<()> {
        sqlx::query(
            "INSERT INTO identity_one_time_tokens
                (token_hash, user_id, purpose, payload, created_at_us, expires_at_us)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(token.token_hash)
        .bind(token.user_id)
        .bind(token.purpose)
        .bind(token.payload)
        .bind(token.now_us)
        .bind(token.expires_at_us)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    pub async fn one_time(&self, tx: &mut Tx, token_hash: &str) -> Result<Option<OneTimeRow>> {
        sqlx::query(
            "SELECT user_id, purpose, payload, attempts, expires_at_us, used_at_us
             FROM identity_one_time_tokens WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&mut **tx)
        .await?
        .map(|row| {
            Ok(OneTimeRow {
                user_id: row.try_get(0)?,
                purpose: row.try_get(1)?,
                payload: row.try_get(2)?,
                attempts: row.try_get(3)?,
                expires_at_us: row.try_get(4)?,
                used_at_us: row.try_get(5)?,
            })
        })
        .transpose()
        .map_err(db_error)
    }

    /// Consumes a single-use token. Returns false if it was already used.
    pub async fn use_one_time(&self, tx: &mut Tx, token_hash: &str, now_us: i64) -> Result<bool> {
        let rows = sqlx::query(
            "UPDATE identity_one_time_tokens SET used_at_us = $2
             WHERE token_hash = $1 AND used_at_us IS NULL",
        )
        .bind(token_hash)
        .bind(now_us)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        Ok(rows == 1)
    }

    /// Counts a failed attempt against a token (MFA step).
    pub async fn fail_one_time(&self, token_hash: &str) -> Result<()> {
        sqlx::query(
            "UPDATE identity_one_time_tokens SET attempts = attempts + 1 WHERE token_hash = $1",
        )
        .bind(token_hash)
        .execute(self.db.pool())
        .await?;
        Ok(())
    }

    /// Invalidates a user's unused tokens of one purpose (a new reset link
    /// supersedes older ones).
    pub async fn expire_one_time(
        &self,
        tx: &mut Tx,
        user_id: &str,
        purpose: &str,
        now_us: i64,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE identity_one_time_tokens SET used_at_us = $3
             WHERE user_id = $1 AND purpose = $2 AND used_at_us IS NULL",
        )
        .bind(user_id)
        .bind(purpose)
        .bind(now_us)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    // Recovery codes.

    pub async fn replace_recovery_codes(
        &self,
        tx: &mut Tx,
        user_id: &str,
        hashes: &[String],
    ) -> Result<()> {
        sqlx::query("DELETE FROM identity_recovery_codes WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut **tx)
            .await?;
        for hash in hashes {
            sqlx::query("INSERT INTO identity_recovery_codes (user_id, code_hash) VALUES ($1, $2)")
                .bind(user_id)
                .bind(hash)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// Uses a recovery code. Returns false when it is unknown or used.
    pub async fn use_recovery_code(&self, tx: &mut Tx, user_id: &str, hash: &str) -> Result<bool> {
        let rows = sqlx::query(
            "UPDATE identity_recovery_codes SET used_at_us = $3
             WHERE user_id = $1 AND code_hash = $2 AND used_at_us IS NULL",
        )
        .bind(user_id)
        .bind(hash)
        .bind(tenantry_kit::db::now_micros())
        .execute(&mut **tx)
        .await?
        .rows_affected();
        Ok(rows == 1)
    }

    // Login throttling.

    /// The time until which `key` is blocked, if any.
    pub async fn throttle(&self, key: &str) -> Result<Option<(i64, i64)>> {
        sqlx::query("SELECT failures, blocked_until_us FROM identity_login_throttle WHERE throttle_key = $1")
            .bind(key)
            .fetch_optional(self.db.pool())
            .await?
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .transpose()
            .map_err(db_error)
    }

    pub async fn set_throttle(
        &self,
        key: &str,
        failures: i64,
        blocked_until_us: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO identity_login_throttle (throttle_key, failures, blocked_until_us, updated_at_us)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (throttle_key) DO UPDATE
             SET failures = excluded.failures, blocked_until_us = excluded.blocked_until_us,
                 updated_at_us = excluded.updated_at_us",
        )
        .bind(key)
        .bind(failures)
        .bind(blocked_until_us)
        .bind(tenantry_kit::db::now_micros())
        .execute(self.db.pool())
        .await?;
        Ok(())
    }

    pub async fn clear_throttle(&self, key: &str) -> Result<()> {
        sqlx::query("DELETE FROM identity_login_throttle WHERE throttle_key = $1")
            .bind(key)
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    // Signing keys.

    /// Every key, newest first: (kid, seed hex, created, retired).
    pub async fn signing_keys(&self) -> Result<Vec<(String, String, i64, Option<i64>)>> {
        sqlx::query(
            "SELECT kid, seed_hex, created_at_us, retired_at_us FROM identity_signing_keys
             ORDER BY created_at_us DESC, kid DESC",
        )
        .fetch_all(self.db.pool())
        .await?
        .iter()
        .map(|row| {
            Ok((
                row.try_get(0)?,
                row.try_get(1)?,
                row.try_get(2)?,
                row.try_get(3)?,
            ))
        })
        .collect::<std::result::Result<_, sqlx::Error>>()
        .map_err(db_error)
    }

    pub async fn insert_signing_key(&self, kid: &str, seed_hex: &str, now_us: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO identity_signing_keys (kid, seed_hex, created_at_us) VALUES ($1, $2, $3)",
        )
        .bind(kid)
        .bind(seed_hex)
        .bind(now_us)
        .execute(self.db.pool())
        .await?;
        Ok(())
    }
}

/// A service account row.
#[derive(Debug, Clone)]
pub struct ServiceAccountRow {
    pub id: String,
    pub display_name: String,
    pub description: String,
    pub created_by: String,
    pub created_at_us: i64,
    pub updated_at_us: i64,
    /// The client's id for the create, for replays.
    pub request_id: Option<String>,
    /// When one of its credentials was last used.
    pub last_used_at_us: Option<i64>,
}

/// A service account credential row (the secret only as a hash).
#[derive(Debug, Clone)]
pub struct CredentialRow {
    pub id: String,
    pub service_account_id: String,
    pub client_id: String,
    pub secret_hash: String,
    pub created_at_us: i64,
    pub expires_at_us: Option<i64>,
    pub last_used_at_us: Option<i64>,
    pub display_name: String,
    /// The platform administrator who made it (a user id).
    pub created_by: String,
    /// The client's id for the create, for replays.
    pub request_id: Option<String>,
}

const SERVICE_ACCOUNT_COLUMNS: &str = "id, display_name, description, created_by, created_at_us, \
    updated_at_us, request_id, (SELECT MAX(c.last_used_at_us) FROM \
    identity_service_account_credentials c WHERE c.service_account_id = \
    identity_service_accounts.id)";
const CREDENTIAL_COLUMNS: &str = "id, service_account_id, client_id, secret_hash, created_at_us, \
    expires_at_us, last_used_at_us, display_name, created_by, request_id";

fn service_account_from_row(row: &AnyRow) -> std::result::Result<ServiceAccountRow, sqlx::Error> {
    Ok(ServiceAccountRow {
        id: row.try_get(0)?,
        display_name: row.try_get(1)?,
        description: row.try_get(2)?,
        created_by: row.try_get(3)?,
        created_at_us: row.try_get(4)?,
        updated_at_us: row.try_get(5)?,
        request_id: row.try_get(6)?,
        last_used_at_us: row.try_get(7)?,
    })
}

fn credential_from_row(row: &AnyRow) -> std::result::Result<CredentialRow, sqlx::Error> {
    Ok(CredentialRow {
        id: row.try_get(0)?,
        service_account_id: row.try_get(1)?,
        client_id: row.try_get(2)?,
        secret_hash: row.try_get(3)?,
        created_at_us: row.try_get(4)?,
        expires_at_us: row.try_get(5)?,
        last_used_at_us: row.try_get(6)?,
        display_name: row.try_get(7)?,
        created_by: row.try_get(8)?,
        request_id: row.try_get(9)?,
    })
}

impl Store {
    // Service accounts.

    pub async fn insert_service_account(
        &self,
        tx: &mut Tx,
        account: &ServiceAccountRow,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO identity_service_accounts
                (id, display_name, description, permissions, organizations, created_by,
                 created_at_us, updated_at_us, request_id)
             VALUES ($1, $2, $3, '[]', '[]', $4, $5, $6, $7)",
        )
        .bind(&account.id)
        .bind(&account.display_name)
        .bind(&account.description)
        .bind(&account.created_by)
        .bind(account.created_at_us)
        .bind(account.updated_at_us)
        .bind(&account.request_id)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    pub async fn service_account(&self, id: &str) -> Result<Option<ServiceAccountRow>> {
        let sql = format!(
            "SELECT {SERVICE_ACCOUNT_COLUMNS} FROM identity_service_accounts WHERE id = $1"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(self.db.pool())
            .await?
            .map(|row| service_account_from_row(&row))
            .transpose()
            .map_err(db_error)
    }

    /// The account `created_by` made with `request_id`, if any.
    pub async fn service_account_by_request(
        &self,
        created_by: &str,
        request_id: &str,
    ) -> Result<Option<ServiceAccountRow>> {
        let sql = format!(
            "SELECT {SERVICE_ACCOUNT_COLUMNS} FROM identity_service_accounts
             WHERE created_by = $1 AND request_id = $2"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(created_by)
            .bind(request_id)
            .fetch_optional(self.db.pool())
            .await?
            .map(|row| service_account_from_row(&row))
            .transpose()
            .map_err(db_error)
    }

    /// The credential of an account made with `request_id`, if any.
    pub async fn credential_by_request(
        &self,
        service_account_id: &str,
        request_id: &str,
    ) -> Result<Option<CredentialRow>> {
        let sql = format!(
            "SELECT {CREDENTIAL_COLUMNS} FROM identity_service_account_credentials
             WHERE service_account_id = $1 AND request_id = $2"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(service_account_id)
            .bind(request_id)
            .fetch_optional(self.db.pool())
            .await?
            .map(|row| credential_from_row(&row))
            .transpose()
            .map_err(db_error)
    }

    /// Service accounts after `after_id` in id order (ids are time-ordered).
    pub async fn service_accounts(
        &self,
        after_id: &str,
        limit: i64,
    ) -> Result<Vec<ServiceAccountRow>> {
        let sql = format!(
            "SELECT {SERVICE_ACCOUNT_COLUMNS} FROM identity_service_accounts
             WHERE id > $1 ORDER BY id LIMIT $2"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(after_id)
            .bind(limit)
            .fetch_all(self.db.pool())
            .await?
            .iter()
            .map(service_account_from_row)
            .collect::<std::result::Result<_, _>>()
            .map_err(db_error)
    }

    /// Deletes an account and its credentials. Returns whether it existed.
    pub async fn delete_service_account(&self, tx: &mut Tx, id: &str) -> Result<bool> {
        sqlx::query(
            "DELETE FROM identity_service_account_credentials WHERE service_account_id = $1",
        )
        .bind(id)
        .execute(&mut **tx)
        .await?;
        let rows = sqlx::query("DELETE FROM identity_service_accounts WHERE id = $1")
            .bind(id)
            .execute(&mut **tx)
            .await?
            .rows_affected();
        Ok(rows == 1)
    }

    pub async fn insert_credential(&self, tx: &mut Tx, credential: &CredentialRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO identity_service_account_credentials
                (id, service_account_id, client_id, secret_hash, created_at_us, expires_at_us,
                 display_name, created_by, request_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&credential.id)
        .bind(&credential.service_account_id)
        .bind(&credential.client_id)
        .bind(&credential.secret_hash)
        .bind(credential.created_at_us)
        .bind(credential.expires_at_us)
        .bind(&credential.display_name)
        .bind(&credential.created_by)
        .bind(&credential.request_id)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    pub async fn credential_by_client_id(&self, client_id: &str) -> Result<Option<CredentialRow>> {
        let sql = format!(
            "SELECT {CREDENTIAL_COLUMNS} FROM identity_service_account_credentials WHERE client_id = $1"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(client_id)
            .fetch_optional(self.db.pool())
            .await?
            .map(|row| credential_from_row(&row))
            .transpose()
            .map_err(db_error)
    }

    pub async fn credentials(&self, service_account_id: &str) -> Result<Vec<CredentialRow>> {
        let sql = format!(
            "SELECT {CREDENTIAL_COLUMNS} FROM identity_service_account_credentials
             WHERE service_account_id = $1 ORDER BY id"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(service_account_id)
            .fetch_all(self.db.pool())
            .await?
            .iter()
            .map(credential_from_row)
            .collect::<std::result::Result<_, _>>()
            .map_err(db_error)
    }

    pub async fn delete_credential(
        &self,
        tx: &mut Tx,
        service_account_id: &str,
        id: &str,
    ) -> Result<bool> {
        let rows = sqlx::query(
            "DELETE FROM identity_service_account_credentials WHERE id = $1 AND service_account_id = $2",
        )
        .bind(id)
        .bind(service_account_id)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        Ok(rows == 1)
    }

    pub async fn touch_credential(&self, id: &str, now_us: i64) -> Result<()> {
        sqlx::query(
            "UPDATE identity_service_account_credentials SET last_used_at_us = $2 WHERE id = $1",
        )
        .bind(id)
        .bind(now_us)
        .execute(self.db.pool())
        .await?;
        Ok(())
    }

    // Users, administration.

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

/// An API key row (the secret only as a hash).
#[derive(Debug, Clone)]
pub struct ApiKeyRow {
    pub id: String,
    pub key_id: String,
    pub organization_id: String,
    pub team_id: Option<String>,
    pub project_id: Option<String>,
    pub display_name: String,
    pub permissions: Vec<String>,
    pub secret_hash: String,
    pub created_by: String,
    pub expires_at_us: Option<i64>,
    pub last_used_at_us: Option<i64>,
    pub revoked_at_us: Option<i64>,
    pub created_at_us: i64,
    pub request_id: Option<String>,
}

const API_KEY_COLUMNS: &str = "id, key_id, organization_id, team_id, display_name, permissions, \
    secret_hash, created_by, expires_at_us, last_used_at_us, revoked_at_us, created_at_us, request_id, \
    project_id";

fn api_key_from_row(row: &AnyRow) -> std::result::Result<ApiKeyRow, sqlx::Error> {
    let permissions: String = row.try_get(5)?;
    Ok(ApiKeyRow {
        id: row.try_get(0)?,
        key_id: row.try_get(1)?,
        organization_id: row.try_get(2)?,
        team_id: row.try_get(3)?,
        display_name: row.try_get(4)?,
        permissions: serde_json::from_str(&permissions)
            .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        secret_hash: row.try_get(6)?,
        created_by: row.try_get(7)?,
        expires_at_us: row.try_get(8)?,
        last_used_at_us: row.try_get(9)?,
        revoked_at_us: row.try_get(10)?,
        created_at_us: row.try_get(11)?,
        request_id: row.try_get(12)?,
        project_id: row.try_get(13)?,
    })
}

impl Store {
    // API keys.

    pub async fn insert_api_key(&self, tx: &mut Tx, key: &ApiKeyRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO identity_api_keys (id, key_id, organization_id, team_id, display_name,
                permissions, secret_hash, created_by, expires_at_us, created_at_us, request_id,
                project_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&key.id)
        .bind(&key.key_id)
        .bind(&key.organization_id)
        .bind(&key.team_id)
        .bind(&key.display_name)
        .bind(serde_json::to_string(&key.permissions).expect("strings serialize"))
        .bind(&key.secret_hash)
        .bind(&key.created_by)
        .bind(key.expires_at_us)
        .bind(key.created_at_us)
        .bind(&key.request_id)
        .bind(&key.project_id)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// A key by its id, within an organization (another tenant's key is
    /// simply not found).
    pub async fn api_key(&self, organization_id: &str, id: &str) -> Result<Option<ApiKeyRow>> {
        let sql = format!(
            "SELECT {API_KEY_COLUMNS} FROM identity_api_keys WHERE id = $1 AND organization_id = $2"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(organization_id)
            .fetch_optional(self.db.pool())
            .await?
            .map(|row| api_key_from_row(&row))
            .transpose()
            .map_err(db_error)
    }

    pub async fn api_key_by_key_id(&self, key_id: &str) -> Result<Option<ApiKeyRow>> {
        let sql = format!("SELECT {API_KEY_COLUMNS} FROM identity_api_keys WHERE key_id = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(key_id)
            .fetch_optional(self.db.pool())
            .await?
            .map(|row| api_key_from_row(&row))
            .transpose()
            .map_err(db_error)
    }

    pub async fn api_key_by_request_id(
        &self,
        organization_id: &str,
        request_id: &str,
    ) -> Result<Option<ApiKeyRow>> {
        let sql = format!(
            "SELECT {API_KEY_COLUMNS} FROM identity_api_keys WHERE organization_id = $1 AND request_id = $2"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(organization_id)
            .bind(request_id)
            .fetch_optional(self.db.pool())
            .await?
            .map(|row| api_key_from_row(&row))
            .transpose()
            .map_err(db_error)
    }

    /// An organization's keys after `after_id`, in id order.
    pub async fn api_keys(
        &self,
        organization_id: &str,
        after_id: &str,
        limit: i64,
    ) -> Result<Vec<ApiKeyRow>> {
        let sql = format!(
            "SELECT {API_KEY_COLUMNS} FROM identity_api_keys
             WHERE organization_id = $1 AND id > $2 ORDER BY id LIMIT $3"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(organization_id)
            .bind(after_id)
            .bind(limit)
            .fetch_all(self.db.pool())
            .await?
            .iter()
            .map(api_key_from_row)
            .collect::<std::result::Result<_, _>>()
            .map_err(db_error)
    }

    pub async fn revoke_api_key(&self, tx: &mut Tx, id: &str, now_us: i64) -> Result<bool> {
        let rows = sqlx::query(
            "UPDATE identity_api_keys SET revoked_at_us = $2 WHERE id = $1 AND revoked_at_us IS NULL",
        )
        .bind(id)
        .bind(now_us)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        Ok(rows == 1)
    }

    pub async fn touch_api_key(&self, id: &str, now_us: i64) -> Result<()> {
        sqlx::query("UPDATE identity_api_keys SET last_used_at_us = $2 WHERE id = $1")
            .bind(id)
            .bind(now_us)
            .execute(self.db.pool())
            .await?;
        Ok(())
    }
}
