//! Usage records.

use tenantry_kit::error::Result;

use super::*;

/// One recorded amount of metered usage.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct UsageRecordRow {
    pub id: String,
    pub organization_id: String,
    pub metric: String,
    pub quantity: i64,
    pub idempotency_key: String,
    pub usage_at_us: i64,
    pub period_us: i64,
    pub recorded_by: String,
    pub created_at_us: i64,
}

/// The columns of a usage record row.
macro_rules! record_columns {
    () => {
        "id, organization_id, metric, quantity, idempotency_key, usage_at_us, period_us, \
         recorded_by, created_at_us"
    };
}

pub async fn record_by_key(
    tx: &mut Tx,
    organization_id: &str,
    key: &str,
) -> Result<Option<UsageRecordRow>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        record_columns!(),
        " FROM billing_usage_records WHERE organization_id = $1 AND idempotency_key = $2"
    ))
    .bind(organization_id)
    .bind(key)
    .fetch_optional(&mut **tx)
    .await?)
}

/// Inserts a record; false when its idempotency key was taken meanwhile.
pub async fn insert_record(tx: &mut Tx, r: &UsageRecordRow) -> Result<bool> {
    let inserted = sqlx::query(concat!(
        "INSERT INTO billing_usage_records (",
        record_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (organization_id, idempotency_key) DO NOTHING"
    ))
    .bind(&r.id)
    .bind(&r.organization_id)
    .bind(&r.metric)
    .bind(r.quantity)
    .bind(&r.idempotency_key)
    .bind(r.usage_at_us)
    .bind(r.period_us)
    .bind(&r.recorded_by)
    .bind(r.created_at_us)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// A filter of usage records.
#[derive(Debug, Clone, Default)]
pub struct RecordFilter {
    pub metric: Option<String>,
    pub start_us: Option<i64>,
    pub end_us: Option<i64>,
}

/// An organization's records, newest first, before a (usage time, id)
/// cursor.
pub async fn records<'e, E: Executor<'e, Database = Any>>(
    e: E,
    organization_id: &str,
    filter: &RecordFilter,
    before: (i64, &str),
    limit: i64,
) -> Result<Vec<UsageRecordRow>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        record_columns!(),
        " FROM billing_usage_records WHERE organization_id = $1
           AND ($2 = '' OR metric = $2) AND usage_at_us >= $3 AND usage_at_us < $4
           AND (usage_at_us < $5 OR (usage_at_us = $5 AND id < $6))
         ORDER BY usage_at_us DESC, id DESC LIMIT $7"
    ))
    .bind(organization_id)
    .bind(filter.metric.clone().unwrap_or_default())
    .bind(filter.start_us.unwrap_or(i64::MIN))
    .bind(filter.end_us.unwrap_or(i64::MAX))
    .bind(before.0)
    .bind(before.1)
    .bind(limit)
    .fetch_all(e)
    .await?)
}
