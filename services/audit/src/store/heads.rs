//! Chain heads: the last sequence and hash of each chain.

use sqlx::{Any, Executor};
use tenantry_kit::error::Result;

use super::Tx;
use crate::record::GENESIS;

/// The head (sequence, hash) of a chain, locked for this transaction: the
/// row's update makes concurrent appenders of the same chain wait.
pub async fn lock_head(tx: &mut Tx, scope: &str) -> Result<(i64, Vec<u8>)> {
    sqlx::query("INSERT INTO audit_heads (scope, sequence, hash) VALUES ($1, 0, $2) ON CONFLICT (scope) DO NOTHING")
        .bind(scope)
        .bind(hex::encode(GENESIS))
        .execute(&mut **tx)
        .await?;
    let (sequence, hash): (i64, String) = sqlx::query_as(
        "UPDATE audit_heads SET sequence = sequence WHERE scope = $1 RETURNING sequence, hash",
    )
    .bind(scope)
    .fetch_one(&mut **tx)
    .await?;
    Ok((
        sequence,
        hex::decode(hash).unwrap_or_else(|_| GENESIS.to_vec()),
    ))
}

/// A chain's head sequence and hash (0 and the genesis hash when empty).
pub async fn head<'e, E: Executor<'e, Database = Any>>(e: E, scope: &str) -> Result<(i64, String)> {
    let head = sqlx::query_as("SELECT sequence, hash FROM audit_heads WHERE scope = $1")
        .bind(scope)
        .fetch_optional(e)
        .await?;
    Ok(head.unwrap_or_else(|| (0, hex::encode(GENESIS))))
}

/// The chains whose head is past their newest checkpoint: (scope, head
/// sequence, head hash).
pub async fn unchecked_heads<'e, E: Executor<'e, Database = Any>>(
    e: E,
    limit: i64,
) -> Result<Vec<(String, i64, String)>> {
    Ok(sqlx::query_as(
        "SELECT h.scope, h.sequence, h.hash FROM audit_heads h
         WHERE h.sequence > COALESCE((SELECT MAX(c.sequence) FROM audit_checkpoints c WHERE c.scope = h.scope), 0)
         ORDER BY h.scope LIMIT $1",
    )
    .bind(limit)
    .fetch_all(e)
    .await?)
}
