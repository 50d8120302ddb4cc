//! Limits set on organizations.

use sqlx::Row;
use sqlx::any::AnyRow;
use tenantry_kit::error::{Result, db_error};

use super::*;

/// A limit set on an organization.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitRow {
    pub organization_id: String,
    pub metric: String,
    pub value: i64,
    pub set_by: String,
    pub updated_at_us: i64,
}

fn limit_from_row(row: &AnyRow) -> std::result::Result<LimitRow, sqlx::Error> {
    Ok(LimitRow {
        organization_id: row.try_get(0)?,
        metric: row.try_get(1)?,
        value: row.try_get(2)?,
        set_by: row.try_get(3)?,
        updated_at_us: row.try_get(4)?,
    })
}

pub async fn limit(tx: &mut Tx, organization_id: &str, metric: &str) -> Result<Option<LimitRow>> {
    sqlx::query(
        "SELECT organization_id, metric, value, set_by, updated_at_us FROM billing_limits
         WHERE organization_id = $1 AND metric = $2",
    )
    .bind(organization_id)
    .bind(metric)
    .fetch_optional(&mut **tx)
    .await?
    .map(|row| limit_from_row(&row))
    .transpose()
    .map_err(db_error)
}

pub async fn set_limit(tx: &mut Tx, limit: &LimitRow) -> Result<()> {
    sqlx::query(
        "INSERT INTO billing_limits (organization_id, metric, value, set_by, updated_at_us) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (organization_id, metric)
         DO UPDATE SET value = excluded.value, set_by = excluded.set_by, updated_at_us = excluded.updated_at_us",
    )
    .bind(&limit.organization_id)
    .bind(&limit.metric)
    .bind(limit.value)
    .bind(&limit.set_by)
    .bind(limit.updated_at_us)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn clear_limit(tx: &mut Tx, organization_id: &str, metric: &str) -> Result<()> {
    sqlx::query("DELETE FROM billing_limits WHERE organization_id = $1 AND metric = $2")
        .bind(organization_id)
        .bind(metric)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
