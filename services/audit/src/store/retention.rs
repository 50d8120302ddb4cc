//! Retention: how long a tree's events are kept, and the purge of a
//! chain's oldest events.

use sqlx::{Any, Executor};
use tenantry_kit::error::Result;

use super::Tx;

/// Sets a tree's retention (None: keep forever).
pub async fn set_retention(tx: &mut Tx, root_id: &str, days: Option<i64>) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit_retention (root_id, days) VALUES ($1, $2)
         ON CONFLICT (root_id) DO UPDATE SET days = excluded.days",
    )
    .bind(root_id)
    .bind(days)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Every chain with a retention: (scope, days), by the scope's root.
pub async fn retained_scopes<'e, E: Executor<'e, Database = Any>>(
    e: E,
) -> Result<Vec<(String, i64)>> {
    Ok(sqlx::query_as(
        "SELECT h.scope, r.days FROM audit_heads h
         JOIN audit_events e ON e.scope = h.scope AND e.sequence = h.sequence
         JOIN audit_retention r ON r.root_id = e.root_id
         WHERE r.days IS NOT NULL",
    )
    .fetch_all(e)
    .await?)
}

/// The last sequence of a chain's prefix ingested before `cutoff_us`: the
/// events a purge at that time removes.
pub async fn purgeable_through<'e, E: Executor<'e, Database = Any>>(
    e: E,
    scope: &str,
    cutoff_us: i64,
) -> Result<Option<i64>> {
    Ok(sqlx::query_scalar(
        "SELECT MAX(sequence) FROM audit_events WHERE scope = $1 AND ingested_at_us < $2
           AND sequence < COALESCE((SELECT MIN(sequence) FROM audit_events WHERE scope = $1 AND ingested_at_us >= $2), 9223372036854775807)",
    )
    .bind(scope)
    .bind(cutoff_us)
    .fetch_one(e)
    .await?)
}

/// Deletes a chain's events through `sequence`; returns how many.
pub async fn purge(tx: &mut Tx, scope: &str, sequence: i64) -> Result<i64> {
    sqlx::query("DELETE FROM audit_targets WHERE scope = $1 AND sequence <= $2")
        .bind(scope)
        .bind(sequence)
        .execute(&mut **tx)
        .await?;
    let deleted = sqlx::query("DELETE FROM audit_events WHERE scope = $1 AND sequence <= $2")
        .bind(scope)
        .bind(sequence)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    Ok(deleted as i64)
}
