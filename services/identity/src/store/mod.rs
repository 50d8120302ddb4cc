//! The identity service's tables, behind one struct so handlers read as
//! domain logic. Every write that changes state takes the caller's
//! transaction, so the change and its outbox event commit together.
//!
//! One file per kind of row (its type, its mapping and its queries); this
//! one holds the store itself and what the others share.

use sqlx::{Any, Transaction};
use tenantry_kit::db::Database;
use tenantry_kit::error::Result;

/// A transaction on the service's database.
pub type Tx = Transaction<'static, Any>;

mod api_keys;
mod service_accounts;
mod sessions;
mod sign_ups;
mod tokens;
mod users;

pub use api_keys::ApiKeyRow;
pub use service_accounts::{CredentialRow, ServiceAccountRow};
pub use sessions::{RefreshRow, SessionRow};
pub use sign_ups::PendingSignUp;
pub use tokens::{NewOneTime, OneTimeRow};
pub use users::UserRow;
pub(crate) use users::user_update;

/// The row of a token (refresh or single-use) whose hash is `$1` in
/// `statement`, read in `tx`.
async fn by_token_hash<R>(
    tx: &mut Tx,
    statement: &'static str,
    token_hash: &str,
) -> Result<Option<R>>
where
    R: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
{
    Ok(sqlx::query_as(statement)
        .bind(token_hash)
        .fetch_optional(&mut **tx)
        .await?)
}

/// Uses a token once: `statement` stamps the time `$2` on the token whose
/// hash is `$1` unless it was used. False when another request used it
/// first (a concurrent replay).
async fn use_once(
    tx: &mut Tx,
    statement: &'static str,
    token_hash: &str,
    now_us: i64,
) -> Result<bool> {
    let rows = sqlx::query(statement)
        .bind(token_hash)
        .bind(now_us)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    Ok(rows == 1)
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

    // Login throttling.

    /// The time until which `key` is blocked, if any.
    pub async fn throttle(&self, key: &str) -> Result<Option<(i64, i64)>> {
        Ok(sqlx::query_as(
            "SELECT failures, blocked_until_us FROM identity_login_throttle WHERE throttle_key = $1",
        )
        .bind(key)
        .fetch_optional(self.db.pool())
        .await?)
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
        .execute(self.db.writer())
        .await?;
        Ok(())
    }

    pub async fn clear_throttle(&self, key: &str) -> Result<()> {
        sqlx::query("DELETE FROM identity_login_throttle WHERE throttle_key = $1")
            .bind(key)
            .execute(self.db.writer())
            .await?;
        Ok(())
    }

    // Signing keys.

    /// Every key, newest first: (kid, seed hex, created, retired).
    pub async fn signing_keys(&self) -> Result<Vec<(String, String, i64, Option<i64>)>> {
        Ok(sqlx::query_as(
            "SELECT kid, seed_hex, created_at_us, retired_at_us FROM identity_signing_keys
             ORDER BY created_at_us DESC, kid DESC",
        )
        .fetch_all(self.db.pool())
        .await?)
    }

    pub async fn insert_signing_key(&self, kid: &str, seed_hex: &str, now_us: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO identity_signing_keys (kid, seed_hex, created_at_us) VALUES ($1, $2, $3)",
        )
        .bind(kid)
        .bind(seed_hex)
        .bind(now_us)
        .execute(self.db.writer())
        .await?;
        Ok(())
    }
}
