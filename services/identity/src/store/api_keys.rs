//! API keys (the secret only as a hash).

use sqlx::Row;
use sqlx::any::AnyRow;
use tenantry_kit::error::{Result, db_error};

use super::*;

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
