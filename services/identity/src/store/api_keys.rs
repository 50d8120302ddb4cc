//! API keys (the secret only as a hash).

use tenantry_kit::error::Result;
use tenantry_kit::row::{JsonText, json};

use super::*;

/// An API key row (the secret only as a hash).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiKeyRow {
    pub id: String,
    pub key_id: String,
    pub organization_id: String,
    pub team_id: Option<String>,
    pub project_id: Option<String>,
    pub display_name: String,
    #[sqlx(try_from = "JsonText")]
    pub permissions: Vec<String>,
    pub secret_hash: String,
    pub created_by: String,
    pub expires_at_us: Option<i64>,
    pub last_used_at_us: Option<i64>,
    pub revoked_at_us: Option<i64>,
    pub created_at_us: i64,
    pub request_id: Option<String>,
}

/// The columns of an API key row.
macro_rules! api_key_columns {
    () => {
        "id, key_id, organization_id, team_id, project_id, display_name, permissions, \
         secret_hash, created_by, expires_at_us, last_used_at_us, revoked_at_us, created_at_us, \
         request_id"
    };
}

impl Store {
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
        .bind(json(&key.permissions))
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
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            api_key_columns!(),
            " FROM identity_api_keys WHERE id = $1 AND organization_id = $2"
        ))
        .bind(id)
        .bind(organization_id)
        .fetch_optional(self.db.pool())
        .await?)
    }

    pub async fn api_key_by_key_id(&self, key_id: &str) -> Result<Option<ApiKeyRow>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            api_key_columns!(),
            " FROM identity_api_keys WHERE key_id = $1"
        ))
        .bind(key_id)
        .fetch_optional(self.db.pool())
        .await?)
    }

    pub async fn api_key_by_request_id(
        &self,
        organization_id: &str,
        request_id: &str,
    ) -> Result<Option<ApiKeyRow>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            api_key_columns!(),
            " FROM identity_api_keys WHERE organization_id = $1 AND request_id = $2"
        ))
        .bind(organization_id)
        .bind(request_id)
        .fetch_optional(self.db.pool())
        .await?)
    }

    /// An organization's keys after `after_id`, in id order.
    pub async fn api_keys(
        &self,
        organization_id: &str,
        after_id: &str,
        limit: i64,
    ) -> Result<Vec<ApiKeyRow>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            api_key_columns!(),
            " FROM identity_api_keys
             WHERE organization_id = $1 AND id > $2 ORDER BY id LIMIT $3"
        ))
        .bind(organization_id)
        .bind(after_id)
        .bind(limit)
        .fetch_all(self.db.pool())
        .await?)
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
            .execute(self.db.writer())
            .await?;
        Ok(())
    }
}
