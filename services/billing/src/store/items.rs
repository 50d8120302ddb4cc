//! Items: what allocation counters count.

use sqlx::Row;
use tenantry_kit::error::{Result, db_error};

use super::*;

/// An item's organization and whether it counts.
pub async fn item(tx: &mut Tx, metric: &str, item_id: &str) -> Result<Option<(String, bool)>> {
    sqlx::query(
        "SELECT organization_id, live FROM billing_items WHERE metric = $1 AND item_id = $2",
    )
    .bind(metric)
    .bind(item_id)
    .fetch_optional(&mut **tx)
    .await?
    .map(|row| Ok((row.try_get(0)?, row.try_get::<i64, _>(1)? != 0)))
    .transpose()
    .map_err(db_error)
}

pub async fn put_item(
    tx: &mut Tx,
    metric: &str,
    item_id: &str,
    organization_id: &str,
    live: bool,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO billing_items (metric, item_id, organization_id, live) VALUES ($1, $2, $3, $4)
         ON CONFLICT (metric, item_id) DO UPDATE SET live = excluded.live",
    )
    .bind(metric)
    .bind(item_id)
    .bind(organization_id)
    .bind(live as i64)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn delete_item(tx: &mut Tx, metric: &str, item_id: &str) -> Result<()> {
    sqlx::query("DELETE FROM billing_items WHERE metric = $1 AND item_id = $2")
        .bind(metric)
        .bind(item_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
