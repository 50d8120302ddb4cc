//! Sign-in sessions and their refresh tokens.

use tenantry_kit::error::Result;
use tenantry_kit::row::Bit;

use super::*;

/// A session row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionRow {
    pub id: String,
    pub user_id: String,
    pub active_organization_id: Option<String>,
    pub requested_organization_id: Option<String>,
    #[sqlx(try_from = "Bit")]
    pub mfa: bool,
    #[sqlx(try_from = "Bit")]
    pub mfa_pending: bool,
    pub user_agent: String,
    pub client_address: String,
    pub created_at_us: i64,
    pub last_seen_at_us: i64,
    pub expires_at_us: i64,
    pub revoked_at_us: Option<i64>,
}

/// The columns of a session row.
macro_rules! session_columns {
    () => {
        "id, user_id, active_organization_id, requested_organization_id, mfa, mfa_pending, \
         user_agent, client_address, created_at_us, last_seen_at_us, expires_at_us, revoked_at_us"
    };
}

/// A refresh token row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RefreshRow {
    pub session_id: String,
    pub expires_at_us: i64,
    pub rotated_at_us: Option<i64>,
}

impl Store {
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
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            session_columns!(),
            " FROM identity_sessions WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?)
    }

    /// The user's sessions that are neither revoked nor expired, newest first.
    pub async fn live_sessions(&self, user_id: &str, now_us: i64) -> Result<Vec<SessionRow>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            session_columns!(),
            " FROM identity_sessions
             WHERE user_id = $1 AND revoked_at_us IS NULL AND expires_at_us > $2
             ORDER BY created_at_us DESC, id DESC"
        ))
        .bind(user_id)
        .bind(now_us)
        .fetch_all(self.db.pool())
        .await?)
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
        Ok(sqlx::query_scalar(
            "SELECT id FROM identity_sessions WHERE user_id = $1 AND revoked_at_us IS NULL",
        )
        .bind(user_id)
        .fetch_all(&mut **tx)
        .await?)
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
        let statement = "SELECT session_id, expires_at_us, rotated_at_us
             FROM identity_refresh_tokens WHERE token_hash = $1";
        by_token_hash(tx, statement, token_hash).await
    }

    /// Marks a refresh token used. Returns false when another request used
    /// it first (a concurrent replay).
    pub async fn rotate_refresh(&self, tx: &mut Tx, token_hash: &str, now_us: i64) -> Result<bool> {
        let statement = "UPDATE identity_refresh_tokens SET rotated_at_us = $2
             WHERE token_hash = $1 AND rotated_at_us IS NULL";
        use_once(tx, statement, token_hash, now_us).await
    }
}
