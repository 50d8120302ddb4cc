//! Service accounts and their credentials.

use tenantry_kit::error::Result;

use super::*;

/// A service account row.
#[derive(Debug, Clone, sqlx::FromRow)]
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
#[derive(Debug, Clone, sqlx::FromRow)]
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

/// The columns of a service account row; its last use is its credentials'
/// latest.
macro_rules! service_account_columns {
    () => {
        "id, display_name, description, created_by, created_at_us, updated_at_us, request_id, \
         (SELECT MAX(c.last_used_at_us) FROM identity_service_account_credentials c \
          WHERE c.service_account_id = identity_service_accounts.id) AS last_used_at_us"
    };
}

/// The columns of a credential row.
macro_rules! credential_columns {
    () => {
        "id, service_account_id, client_id, secret_hash, created_at_us, expires_at_us, \
         last_used_at_us, display_name, created_by, request_id"
    };
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
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            service_account_columns!(),
            " FROM identity_service_accounts WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.db.pool())
        .await?)
    }

    /// The account `created_by` made with `request_id`, if any.
    pub async fn service_account_by_request(
        &self,
        created_by: &str,
        request_id: &str,
    ) -> Result<Option<ServiceAccountRow>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            service_account_columns!(),
            " FROM identity_service_accounts
             WHERE created_by = $1 AND request_id = $2"
        ))
        .bind(created_by)
        .bind(request_id)
        .fetch_optional(self.db.pool())
        .await?)
    }

    /// The credential of an account made with `request_id`, if any.
    pub async fn credential_by_request(
        &self,
        service_account_id: &str,
        request_id: &str,
    ) -> Result<Option<CredentialRow>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            credential_columns!(),
            " FROM identity_service_account_credentials
             WHERE service_account_id = $1 AND request_id = $2"
        ))
        .bind(service_account_id)
        .bind(request_id)
        .fetch_optional(self.db.pool())
        .await?)
    }

    /// Service accounts after `after_id` in id order (ids are time-ordered).
    pub async fn service_accounts(
        &self,
        after_id: &str,
        limit: i64,
    ) -> Result<Vec<ServiceAccountRow>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            service_account_columns!(),
            " FROM identity_service_accounts
             WHERE id > $1 ORDER BY id LIMIT $2"
        ))
        .bind(after_id)
        .bind(limit)
        .fetch_all(self.db.pool())
        .await?)
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
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            credential_columns!(),
            " FROM identity_service_account_credentials WHERE client_id = $1"
        ))
        .bind(client_id)
        .fetch_optional(self.db.pool())
        .await?)
    }

    pub async fn credentials(&self, service_account_id: &str) -> Result<Vec<CredentialRow>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            credential_columns!(),
            " FROM identity_service_account_credentials
             WHERE service_account_id = $1 ORDER BY id"
        ))
        .bind(service_account_id)
        .fetch_all(self.db.pool())
        .await?)
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
        .execute(self.db.writer())
        .await?;
        Ok(())
    }
}
