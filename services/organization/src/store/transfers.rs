//! Ownership transfers of an organization.

use tenantry_kit::error::Result;

use super::*;

/// An ownership transfer row.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct TransferRow {
    pub id: String,
    pub organization_id: String,
    pub from_user_id: String,
    pub to_user_id: String,
    pub token_hash: String,
    /// `pending`, `accepted`, `cancelled` or `declined`; a pending transfer
    /// past its expiry reads as expired.
    pub state: String,
    pub created_at_us: i64,
    pub expires_at_us: i64,
    pub ended_at_us: Option<i64>,
}

/// The columns of an ownership transfer row.
macro_rules! transfer_columns {
    () => {
        "id, organization_id, from_user_id, to_user_id, token_hash, state, created_at_us, \
         expires_at_us, ended_at_us"
    };
}

impl Store {
    pub async fn insert_transfer(&self, tx: &mut Tx, transfer: &TransferRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO org_ownership_transfers (id, organization_id, from_user_id, to_user_id,
                token_hash, state, created_at_us, expires_at_us)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&transfer.id)
        .bind(&transfer.organization_id)
        .bind(&transfer.from_user_id)
        .bind(&transfer.to_user_id)
        .bind(&transfer.token_hash)
        .bind(&transfer.state)
        .bind(transfer.created_at_us)
        .bind(transfer.expires_at_us)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    pub async fn transfer(
        &self,
        tx: &mut Tx,
        organization_id: &str,
        id: &str,
    ) -> Result<Option<TransferRow>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            transfer_columns!(),
            " FROM org_ownership_transfers WHERE organization_id = $1 AND id = $2"
        ))
        .bind(organization_id)
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?)
    }

    /// The pending transfers of an organization.
    pub async fn pending_transfers(
        &self,
        tx: &mut Tx,
        organization_id: &str,
    ) -> Result<Vec<TransferRow>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            transfer_columns!(),
            " FROM org_ownership_transfers WHERE organization_id = $1 AND state = 'pending'"
        ))
        .bind(organization_id)
        .fetch_all(&mut **tx)
        .await?)
    }

    /// Ends a pending transfer; `false` when it was no longer pending.
    pub async fn end_transfer(
        &self,
        tx: &mut Tx,
        id: &str,
        state: &str,
        now_us: i64,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE org_ownership_transfers SET state = $2, ended_at_us = $3
             WHERE id = $1 AND state = 'pending'",
        )
        .bind(id)
        .bind(state)
        .bind(now_us)
        .execute(&mut **tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
