//! Limits set on organizations.

use tenantry_kit::error::Result;

use super::*;

/// A limit set on an organization.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct LimitRow {
    pub organization_id: String,
    pub metric: String,
    pub value: i64,
    pub set_by: String,
    pub updated_at_us: i64,
}

/// The columns of a limit row.
macro_rules! limit_columns {
    () => {
        "organization_id, metric, value, set_by, updated_at_us"
    };
}

pub async fn limit(tx: &mut Tx, organization_id: &str, metric: &str) -> Result<Option<LimitRow>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        limit_columns!(),
        " FROM billing_limits WHERE organization_id = $1 AND metric = $2"
    ))
    .bind(organization_id)
    .bind(metric)
    .fetch_optional(&mut **tx)
    .await?)
}

pub async fn set_limit(tx: &mut Tx, limit: &LimitRow) -> Result<()> {
    sqlx::query(concat!(
        "INSERT INTO billing_limits (",
        limit_columns!(),
        ") VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (organization_id, metric)
         DO UPDATE SET value = excluded.value, set_by = excluded.set_by, updated_at_us = excluded.updated_at_us"
    ))
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
