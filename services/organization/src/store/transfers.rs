//! Ownership transfers of an organization.

use sqlx::Row;
use sqlx::any::AnyRow;
use tenantry_kit::error::{Result, db_error};

use super::*;

/// An ownership transfer row.
#[derive(Debug, Clone, PartialEq)]
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

const TRANSFER_COLUMNS: &str = "id, organization_id, from_user_id, to_user_id, token_hash, state, \
    created_at_us, expires_at_us, ended_at_us";

fn transfer_from_row(row: &AnyRow) -> std::result::Result<TransferRow, sqlx::Error> {
    Ok(TransferRow {
        id: row.try_get(0)?,
        organization_id: row.try_get(1)?,
        from_user_id: row.try_get(2)?,
        to_user_id: row.try_get(3)?,
        token_hash: row.try_get(4)?,
        state: row.try_get(5)?,
        created_at_us: row.try_get(6)?,
        expires_at_us: row.try_get(7)?,
        ended_at_us: row.try_get(8)?,
    })
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
        let sql = format!(
            "SELECT {TRANSFER_COLUMNS} FROM org_ownership_transfers
             WHERE organization_id = $1 AND id = $2"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(organization_id)
            .bind(id)
            .try_map(|row: AnyRow| transfer_from_row(&row))
            .fetch_optional(&mut **tx)
            .await
            .map_err(db_error)
    }

    /// The pending transfers of an organization.
    pub async fn pending_transfers(
        &self,
        tx: &mut Tx,
        organization_id: &str,
    ) -> Result<Vec<TransferRow>> {
        let sql = format!(
            "SELECT {TRANSFER_COLUMNS} FROM org_ownership_transfers
             WHERE organization_id = $1 AND state = 'pending'"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(organization_id)
            .try_map(|row: AnyRow| transfer_from_row(&row))
            .fetch_all(&mut **tx)
            .await
            .map_err(db_error)
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
