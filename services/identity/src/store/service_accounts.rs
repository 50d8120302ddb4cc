//! Service accounts and their credentials.

use sqlx::Row;
use sqlx::any::AnyRow;
use tenantry_kit::error::{Result, db_error};

use super::*;

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
}
