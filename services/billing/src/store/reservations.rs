//! Quota reservations: what a create holds between its check and its count.

use tenantry_kit::error::Result;

use super::*;

/// Serializes reservations of one metric under one plan scope (a tree, or
/// a pool): the check and the insert of a reservation must not interleave
/// with another's. SQLite's writers are serialized already.
pub async fn lock_quota(tx: &mut Tx, scope: &str, metric: &str) -> Result<()> {
    advisory_lock(tx, &[scope, metric]).await
}

/// Serializes what is counted at one organization: an item arriving for an
/// organization billing is learning at the same moment must be counted by
/// exactly one of the two transactions, and under READ COMMITTED each
/// would miss the other's uncommitted row.
pub async fn lock_organization(tx: &mut Tx, organization_id: &str) -> Result<()> {
    advisory_lock(tx, &["organization", organization_id]).await
}

/// A transaction-scoped lock on the name made of `parts` (Postgres; a
/// no-op on SQLite, whose writers are serialized already).
async fn advisory_lock(tx: &mut Tx, parts: &[&str]) -> Result<()> {
    if !is_postgres(tx) {
        return Ok(());
    }
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext(current_schema()), $1)")
        .bind(tenantry_kit::db::advisory_key(parts))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

fn is_postgres(tx: &mut Tx) -> bool {
    tx.backend_name() == "PostgreSQL"
}

/// Whether a live reservation `id` of `metric` exists.
pub async fn reservation_exists(tx: &mut Tx, metric: &str, id: &str) -> Result<bool> {
    Ok(sqlx::query(
        "SELECT 1 FROM billing_reservations WHERE metric = $1 AND id = $2 AND expires_at_us > $3",
    )
    .bind(metric)
    .bind(id)
    .bind(now_micros())
    .fetch_optional(&mut **tx)
    .await?
    .is_some())
}

/// Holds `delta` of `metric` under `id` in every one of `scopes` until
/// `expires_at_us` (replacing a lapsed reservation of the same id).
pub async fn reserve(
    tx: &mut Tx,
    id: &str,
    metric: &str,
    organization_id: &str,
    delta: i64,
    scopes: &[&str],
    expires_at_us: i64,
) -> Result<()> {
    settle(tx, metric, id).await?;
    sqlx::query(
        "INSERT INTO billing_reservations (id, metric, organization_id, delta, expires_at_us)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(metric)
    .bind(organization_id)
    .bind(delta)
    .bind(expires_at_us)
    .execute(&mut **tx)
    .await?;
    for scope in scopes {
        sqlx::query(
            "INSERT INTO billing_reservation_scopes (id, metric, scope_id, delta, expires_at_us)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (metric, id, scope_id) DO NOTHING",
        )
        .bind(id)
        .bind(metric)
        .bind(*scope)
        .bind(delta)
        .bind(expires_at_us)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Ends the reservation `id` of `metric`: its item is counted now, or the
/// create it was for failed. Returns whether one existed.
pub async fn settle(tx: &mut Tx, metric: &str, id: &str) -> Result<bool> {
    sqlx::query("DELETE FROM billing_reservation_scopes WHERE metric = $1 AND id = $2")
        .bind(metric)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(
        sqlx::query("DELETE FROM billing_reservations WHERE metric = $1 AND id = $2")
            .bind(metric)
            .bind(id)
            .execute(&mut **tx)
            .await?
            .rows_affected()
            > 0,
    )
}

/// [`settle`] for many ids of `metric`, a few statements for all.
pub async fn settle_all(tx: &mut Tx, metric: &str, ids: &[&str]) -> Result<()> {
    for chunk in ids.chunks(500) {
        for table in ["billing_reservation_scopes", "billing_reservations"] {
            let sql = format!(
                "DELETE FROM {table} WHERE metric = $1 AND id IN ({})",
                placeholders(2, chunk.len())
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(metric);
            for id in chunk {
                query = query.bind(*id);
            }
            query.execute(&mut **tx).await?;
        }
    }
    Ok(())
}

/// Releases the reservation `id` of `metric` made in `organization_id`
/// (a failed create). Returns whether there was one.
pub async fn release(tx: &mut Tx, metric: &str, id: &str, organization_id: &str) -> Result<bool> {
    let owned = sqlx::query(
        "SELECT 1 FROM billing_reservations WHERE metric = $1 AND id = $2 AND organization_id = $3",
    )
    .bind(metric)
    .bind(id)
    .bind(organization_id)
    .fetch_optional(&mut **tx)
    .await?
    .is_some();
    if !owned {
        return Ok(false);
    }
    settle(tx, metric, id).await
}

/// Drops reservations that lapsed before `now_us`.
pub async fn drop_lapsed_reservations(tx: &mut Tx, now_us: i64) -> Result<u64> {
    sqlx::query("DELETE FROM billing_reservation_scopes WHERE expires_at_us <= $1")
        .bind(now_us)
        .execute(&mut **tx)
        .await?;
    Ok(
        sqlx::query("DELETE FROM billing_reservations WHERE expires_at_us <= $1")
            .bind(now_us)
            .execute(&mut **tx)
            .await?
            .rows_affected(),
    )
}

/// The counters of `scopes` and the limits set on `organizations`, for a
/// metric and period, in one statement.
pub async fn readings<'e, E: Executor<'e, Database = Any>>(
    e: E,
    scopes: &[&str],
    organizations: &[&str],
    metric: &str,
    period_us: i64,
) -> Result<Readings> {
    if scopes.is_empty() {
        return Ok(Readings::default());
    }
    // Counters, live reservations and limits in one statement: a consumer
    // that counts an item and settles its reservation in one transaction
    // is seen either before or after, never half-way.
    let first_reserved = 4 + scopes.len();
    let first_org = first_reserved + scopes.len();
    let sql = format!(
        "SELECT 0, scope_id, own, subtree FROM billing_usage WHERE metric = $1 AND period_us = $2 AND scope_id IN ({})
 UNION ALL SELECT 2, scope_id, CAST(SUM(delta) AS BIGINT), 0 FROM billing_reservation_scopes WHERE metric = $1 AND $2 = 0 AND expires_at_us > $3 AND scope_id IN ({}) GROUP BY scope_id
 UNION ALL SELECT 3, organization_id, CAST(SUM(delta) AS BIGINT), 0 FROM billing_reservations WHERE metric = $1 AND $2 = 0 AND expires_at_us > $3 AND organization_id = $4 GROUP BY organization_id
{}",
        placeholders(4, scopes.len()),
        placeholders(first_reserved, scopes.len()),
        if organizations.is_empty() {
            String::new()
        } else {
            format!(
                " UNION ALL SELECT 1, organization_id, value, 0 FROM billing_limits WHERE metric = $1 AND organization_id IN ({})",
                placeholders(first_org, organizations.len())
            )
        }
    );
    // Safe: the only text added is placeholder lists built from counts.
    let mut query = sqlx::query_as::<_, (i32, String, i64, i64)>(sqlx::AssertSqlSafe(sql))
        .bind(metric)
        .bind(period_us)
        .bind(now_micros());
    for scope in scopes.iter().chain(scopes).chain(organizations) {
        query = query.bind(*scope);
    }
    let mut readings = Readings::default();
    for (kind, id, a, b) in query.fetch_all(e).await? {
        match kind {
            0 => {
                readings.counters.insert(id, (a, b));
            }
            2 => {
                readings.reserved.insert(id, a);
            }
            3 => readings.reserved_own = a,
            _ => {
                readings.limits.insert(id, a);
            }
        }
    }
    Ok(readings)
}

/// Every counter of a scope: (metric, period, subtree).
pub async fn scope_counters(tx: &mut Tx, scope: &str) -> Result<Vec<(String, i64, i64)>> {
    Ok(
        sqlx::query_as("SELECT metric, period_us, subtree FROM billing_usage WHERE scope_id = $1")
            .bind(scope)
            .fetch_all(&mut **tx)
            .await?,
    )
}
