//! Usage counters, per organization subtree and pool.

use tenantry_kit::error::Result;

use super::*;

/// Adds to several scopes' counters of a metric in a period, in one
/// statement: (scope, own, subtree) each.
pub async fn add_counters(
    tx: &mut Tx,
    metric: &str,
    period_us: i64,
    deltas: &[(&str, i64, i64)],
) -> Result<()> {
    if deltas.is_empty() {
        return Ok(());
    }
    let values: Vec<String> = (0..deltas.len())
        .map(|i| format!("(${}, $1, $2, ${}, ${})", 3 * i + 3, 3 * i + 4, 3 * i + 5))
        .collect();
    let sql = format!(
        "INSERT INTO billing_usage (scope_id, metric, period_us, own, subtree) VALUES {}
         ON CONFLICT (scope_id, metric, period_us)
         DO UPDATE SET own = billing_usage.own + excluded.own, subtree = billing_usage.subtree + excluded.subtree",
        values.join(", ")
    );
    // Safe: the only text added is a list of placeholder tuples built from
    // a count.
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(metric)
        .bind(period_us);
    for (scope, own, subtree) in deltas {
        query = query.bind(*scope).bind(*own).bind(*subtree);
    }
    query.execute(&mut **tx).await?;
    Ok(())
}

/// The (own, subtree) counts of `scopes` for a metric and period; scopes
/// with no row count zero.
pub async fn counters<'e, E: Executor<'e, Database = Any>>(
    e: E,
    scopes: &[&str],
    metric: &str,
    period_us: i64,
) -> Result<HashMap<String, (i64, i64)>> {
    Ok(readings(e, scopes, &[], metric, period_us).await?.counters)
}

/// What a quota check reads of a metric: the counters of some scopes and
/// the limits set on some organizations.
#[derive(Debug, Clone, Default)]
pub struct Readings {
    /// (own, subtree) by scope; scopes without a row count zero.
    pub counters: HashMap<String, (i64, i64)>,
    /// The limit set on each organization that has one.
    pub limits: HashMap<String, i64>,
    /// Live reservations per scope (allocation metrics only).
    pub reserved: HashMap<String, i64>,
    /// Live reservations made at the first scope itself.
    pub reserved_own: i64,
}
