//! Events: appending a sealed record to its chain, and reading a chain.

use sqlx::{Any, Executor};
use tenantry_kit::error::Result;

use super::Tx;
use crate::record::AuditRecord;

/// The root of an organization's tree, as its latest event in the log
/// says; `None` when the log holds none of its events.
pub async fn root_of(tx: &mut Tx, organization: &str) -> Result<Option<String>> {
    Ok(sqlx::query_scalar(
        "SELECT root_id FROM audit_events WHERE scope = $1 ORDER BY sequence DESC LIMIT 1",
    )
    .bind(organization)
    .fetch_optional(&mut **tx)
    .await?)
}

/// Rows per multi-row statement: 22 columns each, well under both
/// backends' limits on bound parameters.
const ROWS: usize = 400;

/// Appends sealed records (rows and targets) in a few multi-row
/// statements; each chain's head moves to its last record.
pub async fn append(tx: &mut Tx, records: &[AuditRecord]) -> Result<()> {
    for chunk in records.chunks(ROWS) {
        let sql = format!(
            concat!(
                "INSERT INTO audit_events (",
                record_columns!(),
                ") VALUES {}"
            ),
            tenantry_kit::db::values(tenantry_kit::db::Backend::of(tx), chunk.len(), 22)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for r in chunk {
            query = query
                .bind(&r.id)
                .bind(&r.scope)
                .bind(&r.root)
                .bind(r.sequence)
                .bind(r.occurred_at_us)
                .bind(r.ingested_at_us)
                .bind(i64::from(r.actor_kind))
                .bind(&r.actor_id)
                .bind(&r.actor_name)
                .bind(&r.action)
                .bind(&r.source)
                .bind(&r.targets)
                .bind(i64::from(r.outcome))
                .bind(&r.client_address)
                .bind(&r.user_agent)
                .bind(&r.request_id)
                .bind(&r.trace_id)
                .bind(&r.changes)
                .bind(&r.metadata)
                .bind(r.metadata_truncated as i64)
                .bind(&r.previous_hash)
                .bind(&r.hash);
        }
        query.execute(&mut **tx).await?;
    }
    let targets: Vec<(&AuditRecord, crate::record::StoredTarget)> = records
        .iter()
        .flat_map(|r| r.target_list().into_iter().map(move |t| (r, t)))
        .collect();
    for chunk in targets.chunks(ROWS) {
        let sql = format!(
            "INSERT INTO audit_targets (event_id, scope, sequence, target_type, target_id)
             VALUES {} ON CONFLICT (event_id, target_type, target_id) DO NOTHING",
            tenantry_kit::db::values(tenantry_kit::db::Backend::of(tx), chunk.len(), 5)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (r, target) in chunk {
            query = query
                .bind(&r.id)
                .bind(&r.scope)
                .bind(r.sequence)
                .bind(&target.kind)
                .bind(&target.id);
        }
        query.execute(&mut **tx).await?;
    }
    // Records come chain by chain: each chain's last one is its head.
    for (i, r) in records.iter().enumerate() {
        if records.get(i + 1).is_some_and(|next| next.scope == r.scope) {
            continue;
        }
        sqlx::query("UPDATE audit_heads SET sequence = $2, hash = $3 WHERE scope = $1")
            .bind(&r.scope)
            .bind(r.sequence)
            .bind(&r.hash)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// One event by id, in `scope` (any scope when `None`).
pub async fn event<'e, E: Executor<'e, Database = Any>>(
    e: E,
    scope: Option<&str>,
    id: &str,
) -> Result<Option<AuditRecord>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        record_columns!(),
        " FROM audit_events WHERE id = $1 AND ($2 = '' OR scope = $2)"
    ))
    .bind(id)
    .bind(scope.unwrap_or_default())
    .fetch_optional(e)
    .await?)
}

/// The events of a chain from `first` to `last` sequence, at most `limit`.
pub async fn chain<'e, E: Executor<'e, Database = Any>>(
    e: E,
    scope: &str,
    first: i64,
    last: i64,
    limit: i64,
) -> Result<Vec<AuditRecord>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        record_columns!(),
        " FROM audit_events WHERE scope = $1 AND sequence >= $2 AND sequence <= $3 \
         ORDER BY sequence LIMIT $4"
    ))
    .bind(scope)
    .bind(first)
    .bind(last)
    .bind(limit)
    .fetch_all(e)
    .await?)
}

/// The oldest sequence still kept in a chain, if any.
pub async fn first_kept<'e, E: Executor<'e, Database = Any>>(
    e: E,
    scope: &str,
) -> Result<Option<i64>> {
    Ok(
        sqlx::query_scalar("SELECT MIN(sequence) FROM audit_events WHERE scope = $1")
            .bind(scope)
            .fetch_one(e)
            .await?,
    )
}
