//! Sign-ups waiting for their address to be proved.

use tenantry_kit::error::Result;

use super::*;

/// A sign-up waiting for its address to be proved.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PendingSignUp {
    pub email: String,
    pub display_name: String,
    pub password_hash: String,
    /// Empty for the default name.
    pub organization_name: String,
    pub created_at_us: i64,
    pub expires_at_us: i64,
}

impl Store {
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
        Ok(Some(
            sqlx::query_as(
                "SELECT email, display_name, password_hash, organization_name, created_at_us,
                        expires_at_us
                 FROM identity_pending_sign_ups WHERE token_hash = $1",
            )
            .bind(token_hash)
            .fetch_one(&mut **tx)
            .await?,
        ))
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
}
