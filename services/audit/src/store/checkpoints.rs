//! Signed checkpoints of chain heads.

use sqlx::{Any, Executor};
use tenantry_kit::error::Result;
use tenantry_kit::row::Bit;

use super::Tx;

/// A signed checkpoint as stored.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct CheckpointRow {
    pub id: String,
    pub scope: String,
    pub sequence: i64,
    pub head_hash: String,
    pub created_at_us: i64,
    pub signed_payload: String,
    pub signature: String,
    pub key_id: String,
    pub public_key: String,
    #[sqlx(try_from = "Bit")]
    pub retention_cut: bool,
}

/// The columns of a checkpoint row.
macro_rules! checkpoint_columns {
    () => {
        "id, scope, sequence, head_hash, created_at_us, signed_payload, signature, key_id, \
         public_key, retention_cut"
    };
}

pub async fn insert_checkpoint(tx: &mut Tx, c: &CheckpointRow) -> Result<()> {
    sqlx::query(concat!(
        "INSERT INTO audit_checkpoints (",
        checkpoint_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    ))
    .bind(&c.id)
    .bind(&c.scope)
    .bind(c.sequence)
    .bind(&c.head_hash)
    .bind(c.created_at_us)
    .bind(&c.signed_payload)
    .bind(&c.signature)
    .bind(&c.key_id)
    .bind(&c.public_key)
    .bind(c.retention_cut as i64)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A chain's checkpoints, newest first, below `before` sequence... by
/// (sequence, id) descending.
pub async fn checkpoints<'e, E: Executor<'e, Database = Any>>(
    e: E,
    scope: &str,
    before: (i64, &str),
    limit: i64,
) -> Result<Vec<CheckpointRow>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        checkpoint_columns!(),
        " FROM audit_checkpoints WHERE scope = $1
           AND (sequence < $2 OR (sequence = $2 AND id < $3))
         ORDER BY sequence DESC, id DESC LIMIT $4"
    ))
    .bind(scope)
    .bind(before.0)
    .bind(before.1)
    .bind(limit)
    .fetch_all(e)
    .await?)
}

pub async fn checkpoint<'e, E: Executor<'e, Database = Any>>(
    e: E,
    scope: &str,
    id: &str,
) -> Result<Option<CheckpointRow>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        checkpoint_columns!(),
        " FROM audit_checkpoints WHERE scope = $1 AND id = $2"
    ))
    .bind(scope)
    .bind(id)
    .fetch_optional(e)
    .await?)
}

/// The newest retention-cut checkpoint of a chain, if events were purged.
pub async fn last_cut<'e, E: Executor<'e, Database = Any>>(
    e: E,
    scope: &str,
) -> Result<Option<CheckpointRow>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        checkpoint_columns!(),
        " FROM audit_checkpoints WHERE scope = $1 AND retention_cut = 1
         ORDER BY sequence DESC LIMIT 1"
    ))
    .bind(scope)
    .fetch_optional(e)
    .await?)
}
