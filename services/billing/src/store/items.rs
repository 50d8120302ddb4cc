//! Items: what allocation counters count.

use tenantry_kit::error::Result;
use tenantry_kit::row::Bit;

use super::*;

/// Where an item counts, and whether it does.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ItemRow {
    /// The organization the item was first seen in, where it stays.
    pub organization_id: String,
    /// Whether the item counts.
    #[sqlx(try_from = "Bit")]
    pub live: bool,
    /// The position, in the item's own event history, of the last event
    /// that set `live` (0: none of its own events yet).
    pub version: i64,
}

/// An item's organization and whether it counts.
pub async fn item(tx: &mut Tx, metric: &str, item_id: &str) -> Result<Option<ItemRow>> {
    Ok(sqlx::query_as(
        "SELECT organization_id, live, version FROM billing_items WHERE metric = $1 AND item_id = $2",
    )
    .bind(metric)
    .bind(item_id)
    .fetch_optional(&mut **tx)
    .await?)
}

/// How many live items of each metric an organization holds: (metric,
/// count).
pub async fn live_items(tx: &mut Tx, organization_id: &str) -> Result<Vec<(String, i64)>> {
    Ok(sqlx::query_as(
        "SELECT metric, COUNT(*) FROM billing_items WHERE organization_id = $1 AND live = 1 GROUP BY metric",
    )
    .bind(organization_id)
    .fetch_all(&mut **tx)
    .await?)
}

pub async fn put_item(
    tx: &mut Tx,
    metric: &str,
    item_id: &str,
    organization_id: &str,
    (live, version): (bool, i64),
) -> Result<()> {
    sqlx::query(
        "INSERT INTO billing_items (metric, item_id, organization_id, live, version)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (metric, item_id) DO UPDATE SET live = excluded.live, version = excluded.version",
    )
    .bind(metric)
    .bind(item_id)
    .bind(organization_id)
    .bind(live as i64)
    .bind(version)
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
