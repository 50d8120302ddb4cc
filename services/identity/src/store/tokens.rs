//! Single-use tokens (verification, reset, invitation links) and recovery codes.

use tenantry_kit::error::Result;

use super::*;

/// A single-use token row.
#[derive(Debug, Clone, sqlx::FromRow)]
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

impl Store {
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
        let statement = "SELECT user_id, purpose, payload, attempts, expires_at_us, used_at_us
             FROM identity_one_time_tokens WHERE token_hash = $1";
        by_token_hash(tx, statement, token_hash).await
    }

    /// Consumes a single-use token. Returns false if it was already used.
    pub async fn use_one_time(&self, tx: &mut Tx, token_hash: &str, now_us: i64) -> Result<bool> {
        let statement = "UPDATE identity_one_time_tokens SET used_at_us = $2
             WHERE token_hash = $1 AND used_at_us IS NULL";
        use_once(tx, statement, token_hash, now_us).await
    }

    /// Counts a failed attempt against a token (MFA step).
    pub async fn fail_one_time(&self, token_hash: &str) -> Result<()> {
        sqlx::query(
            "UPDATE identity_one_time_tokens SET attempts = attempts + 1 WHERE token_hash = $1",
        )
        .bind(token_hash)
        .execute(self.db.writer())
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
}
