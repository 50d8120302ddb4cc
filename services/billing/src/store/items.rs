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

/// Items per statement: well under both backends' limits on bound
/// parameters.
const ITEMS: usize = 500;

/// The items of `metric` among `item_ids` that exist, by id.
pub async fn items_of(
    tx: &mut Tx,
    metric: &str,
    item_ids: &[&str],
) -> Result<std::collections::HashMap<String, ItemRow>> {
    let mut found = std::collections::HashMap::with_capacity(item_ids.len());
    for chunk in item_ids.chunks(ITEMS) {
        let sql = format!(
            "SELECT item_id, organization_id, live, version FROM billing_items
             WHERE metric = $1 AND item_id IN ({})",
            placeholders(2, chunk.len())
        );
        let mut query =
            sqlx::query_as::<_, (String, String, i64, i64)>(sqlx::AssertSqlSafe(sql)).bind(metric);
        for id in chunk {
            query = query.bind(*id);
        }
        for (id, organization_id, live, version) in query.fetch_all(&mut **tx).await? {
            let row = ItemRow {
                organization_id,
                live: live != 0,
                version,
            };
            found.insert(id, row);
        }
    }
    Ok(found)
}

/// [`put_item`] for many items of `metric`, many to a statement.
pub async fn put_items(tx: &mut Tx, metric: &str, items: &[(&str, &ItemRow)]) -> Result<()> {
    for chunk in items.chunks(ITEMS) {
        let sql = format!(
            "INSERT INTO billing_items (metric, item_id, organization_id, live, version)
             VALUES {}
             ON CONFLICT (metric, item_id) DO UPDATE SET live = excluded.live,
                version = excluded.version",
            tenantry_kit::db::values(tenantry_kit::db::Backend::of(tx), chunk.len(), 5)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (id, item) in chunk {
            query = query
                .bind(metric)
                .bind(*id)
                .bind(&item.organization_id)
                .bind(item.live as i64)
                .bind(item.version);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}
