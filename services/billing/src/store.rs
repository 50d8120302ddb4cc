//! The billing service's rows and the SQL that reads and writes them. Reads
//! take any executor (the pool, or a transaction when the read decides a
//! write); writes take the transaction they belong to.

use std::collections::{BTreeMap, HashMap};

use sqlx::any::AnyRow;
use sqlx::{Any, Executor, Row, Transaction};
use tenantry_kit::db::{Database, now_micros};
use tenantry_kit::error::{Result, db_error};

use crate::catalog::{Limits, Plan, PlanBody};

pub type Tx = Transaction<'static, Any>;

/// `$first, $first+1, …` for `count` values.
fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("billing rows serialize")
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> std::result::Result<T, sqlx::Error> {
    serde_json::from_str(text).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

/// The service's database.
#[derive(Debug, Clone)]
pub struct Store {
    db: Database,
}

impl Store {
    pub fn new(db: Database) -> Store {
        Store { db }
    }

    pub fn pool(&self) -> &sqlx::AnyPool {
        self.db.pool()
    }

    /// Whether the database holds each query to the request's tenants
    /// (Postgres row-level security; see `tenantry_kit::tenancy`).
    pub fn has_row_security(&self) -> bool {
        self.db.has_row_security()
    }

    pub async fn begin(&self) -> Result<Tx> {
        self.db.begin().await
    }
}

// The organization tree.

/// A node of the organization tree, as billing mirrors it.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeRow {
    pub id: String,
    pub parent_id: Option<String>,
    pub root_id: String,
    pub workspace_id: String,
    /// `/root/…/id/`.
    pub path: String,
    /// Whether this node itself was soft-deleted (its subtree no longer
    /// counts above it).
    pub deleted: bool,
}

impl NodeRow {
    /// The ids from this node up to the root.
    pub fn upward(&self) -> Vec<&str> {
        self.path
            .split('/')
            .filter(|s| !s.is_empty())
            .rev()
            .collect()
    }
}

const NODE_COLUMNS: &str = "id, parent_id, root_id, workspace_id, path, deleted";

fn node_from_row(row: &AnyRow) -> std::result::Result<NodeRow, sqlx::Error> {
    Ok(NodeRow {
        id: row.try_get(0)?,
        parent_id: row.try_get(1)?,
        root_id: row.try_get(2)?,
        workspace_id: row.try_get(3)?,
        path: row.try_get(4)?,
        deleted: row.try_get::<i64, _>(5)? != 0,
    })
}

pub async fn node<'e, E: Executor<'e, Database = Any>>(e: E, id: &str) -> Result<Option<NodeRow>> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {NODE_COLUMNS} FROM billing_nodes WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(e)
    .await?
    .map(|row| node_from_row(&row))
    .transpose()
    .map_err(db_error)
}

/// The nodes among `ids` that exist.
pub async fn nodes<'e, E: Executor<'e, Database = Any>>(
    e: E,
    ids: &[&str],
) -> Result<HashMap<String, NodeRow>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let sql = format!(
        "SELECT {NODE_COLUMNS} FROM billing_nodes WHERE id IN ({})",
        placeholders(1, ids.len())
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for id in ids {
        query = query.bind(*id);
    }
    let rows = query.fetch_all(e).await?;
    rows.iter()
        .map(|row| node_from_row(row).map(|n| (n.id.clone(), n)))
        .collect::<std::result::Result<_, _>>()
        .map_err(db_error)
}

/// Inserts a node unless it is known already.
pub async fn insert_node(tx: &mut Tx, node: &NodeRow) -> Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO billing_nodes (id, parent_id, root_id, workspace_id, path, deleted)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
    )
    .bind(&node.id)
    .bind(&node.parent_id)
    .bind(&node.root_id)
    .bind(&node.workspace_id)
    .bind(&node.path)
    .bind(node.deleted as i64)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

pub async fn set_node_deleted(tx: &mut Tx, id: &str, deleted: bool) -> Result<()> {
    sqlx::query("UPDATE billing_nodes SET deleted = $2 WHERE id = $1")
        .bind(id)
        .bind(deleted as i64)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Re-roots the subtree under `old_path` at `new_path` and gives its top
/// the new parent.
pub async fn move_subtree(
    tx: &mut Tx,
    id: &str,
    new_parent: &str,
    old_path: &str,
    new_path: &str,
) -> Result<()> {
    sqlx::query(
        "UPDATE billing_nodes SET path = $2 || SUBSTR(path, CAST($3 AS INTEGER)) WHERE path LIKE $1 || '%'",
    )
    .bind(old_path)
    .bind(new_path)
    .bind(old_path.len() as i64 + 1)
    .execute(&mut **tx)
    .await?;
    sqlx::query("UPDATE billing_nodes SET parent_id = $2 WHERE id = $1")
        .bind(id)
        .bind(new_parent)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Forgets a purged organization: its node, counters, items and limits.
pub async fn purge_node(tx: &mut Tx, id: &str) -> Result<()> {
    for sql in [
        "DELETE FROM billing_nodes WHERE id = $1",
        "DELETE FROM billing_usage WHERE scope_id = $1",
        "DELETE FROM billing_items WHERE organization_id = $1",
        "DELETE FROM billing_limits WHERE organization_id = $1",
    ] {
        sqlx::query(sql).bind(id).execute(&mut **tx).await?;
    }
    Ok(())
}

/// The live root organizations of a workspace.
pub async fn workspace_roots<'e, E: Executor<'e, Database = Any>>(
    e: E,
    workspace_id: &str,
) -> Result<Vec<String>> {
    sqlx::query(
        "SELECT id FROM billing_nodes WHERE workspace_id = $1 AND parent_id IS NULL AND deleted = 0 ORDER BY id LIMIT 1000",
    )
    .bind(workspace_id)
    .fetch_all(e)
    .await?
    .iter()
    .map(|row| row.try_get(0))
    .collect::<std::result::Result<_, _>>()
    .map_err(db_error)
}

/// A workspace's billing mode (`single`, `assigned`, `pooled`).
pub async fn workspace_mode<'e, E: Executor<'e, Database = Any>>(
    e: E,
    workspace_id: &str,
) -> Result<Option<String>> {
    sqlx::query("SELECT billing_mode FROM billing_workspaces WHERE id = $1")
        .bind(workspace_id)
        .fetch_optional(e)
        .await?
        .map(|row| row.try_get(0))
        .transpose()
        .map_err(db_error)
}

pub async fn insert_workspace(tx: &mut Tx, workspace_id: &str, mode: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO billing_workspaces (id, billing_mode) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
    )
    .bind(workspace_id)
    .bind(mode)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

// Counters.

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

// Reservations.

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
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(metric)
        .bind(period_us)
        .bind(now_micros());
    for scope in scopes.iter().chain(scopes).chain(organizations) {
        query = query.bind(*scope);
    }
    let mut readings = Readings::default();
    for row in query.fetch_all(e).await? {
        let kind: i32 = row.try_get(0)?;
        let id: String = row.try_get(1)?;
        let a: i64 = row.try_get(2)?;
        match kind {
            0 => {
                readings.counters.insert(id, (a, row.try_get(3)?));
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
    sqlx::query("SELECT metric, period_us, subtree FROM billing_usage WHERE scope_id = $1")
        .bind(scope)
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
        .collect::<std::result::Result<_, sqlx::Error>>()
        .map_err(db_error)
}

// Items: what allocation counters count.

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

// Limits set on organizations.

/// A limit set on an organization.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitRow {
    pub organization_id: String,
    pub metric: String,
    pub value: i64,
    pub set_by: String,
    pub updated_at_us: i64,
}

fn limit_from_row(row: &AnyRow) -> std::result::Result<LimitRow, sqlx::Error> {
    Ok(LimitRow {
        organization_id: row.try_get(0)?,
        metric: row.try_get(1)?,
        value: row.try_get(2)?,
        set_by: row.try_get(3)?,
        updated_at_us: row.try_get(4)?,
    })
}

pub async fn limit(tx: &mut Tx, organization_id: &str, metric: &str) -> Result<Option<LimitRow>> {
    sqlx::query(
        "SELECT organization_id, metric, value, set_by, updated_at_us FROM billing_limits
         WHERE organization_id = $1 AND metric = $2",
    )
    .bind(organization_id)
    .bind(metric)
    .fetch_optional(&mut **tx)
    .await?
    .map(|row| limit_from_row(&row))
    .transpose()
    .map_err(db_error)
}

pub async fn set_limit(tx: &mut Tx, limit: &LimitRow) -> Result<()> {
    sqlx::query(
        "INSERT INTO billing_limits (organization_id, metric, value, set_by, updated_at_us) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (organization_id, metric)
         DO UPDATE SET value = excluded.value, set_by = excluded.set_by, updated_at_us = excluded.updated_at_us",
    )
    .bind(&limit.organization_id)
    .bind(&limit.metric)
    .bind(limit.value)
    .bind(&limit.set_by)
    .bind(limit.updated_at_us)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn clear_limit(tx: &mut Tx, organization_id: &str, metric: &str) -> Result<()> {
    sqlx::query("DELETE FROM billing_limits WHERE organization_id = $1 AND metric = $2")
        .bind(organization_id)
        .bind(metric)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

// Custom plans.

const PLAN_COLUMNS: &str = "id, body, offered_to, archived, created_at_us, updated_at_us, version";

fn plan_from_row(row: &AnyRow) -> std::result::Result<Plan, sqlx::Error> {
    let body: String = row.try_get(1)?;
    Ok(Plan {
        id: row.try_get(0)?,
        tier: tenantry_proto::tenantry::billing::v1::PlanTier::Custom,
        body: from_json::<PlanBody>(&body)?,
        offered_to: row.try_get(2)?,
        archived: row.try_get::<i64, _>(3)? != 0,
        created_at_us: row.try_get(4)?,
        updated_at_us: row.try_get(5)?,
        version: row.try_get(6)?,
    })
}

pub async fn custom_plan<'e, E: Executor<'e, Database = Any>>(
    e: E,
    id: &str,
) -> Result<Option<Plan>> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {PLAN_COLUMNS} FROM billing_plans WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(e)
    .await?
    .map(|row| plan_from_row(&row))
    .transpose()
    .map_err(db_error)
}

/// Every custom plan, by display name then id.
pub async fn custom_plans<'e, E: Executor<'e, Database = Any>>(e: E) -> Result<Vec<Plan>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {PLAN_COLUMNS} FROM billing_plans"
    )))
    .fetch_all(e)
    .await?;
    let mut plans = rows
        .iter()
        .map(plan_from_row)
        .collect::<std::result::Result<Vec<_>, _>>()?;
    plans.sort_by(|a, b| {
        (a.body.display_name.as_str(), a.id.as_str())
            .cmp(&(b.body.display_name.as_str(), b.id.as_str()))
    });
    Ok(plans)
}

pub async fn save_plan(tx: &mut Tx, plan: &Plan) -> Result<()> {
    sqlx::query(
        "INSERT INTO billing_plans (id, body, offered_to, archived, created_at_us, updated_at_us, version)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (id) DO UPDATE SET body = excluded.body, archived = excluded.archived,
             updated_at_us = excluded.updated_at_us, version = excluded.version",
    )
    .bind(&plan.id)
    .bind(json(&plan.body))
    .bind(&plan.offered_to)
    .bind(plan.archived as i64)
    .bind(plan.created_at_us)
    .bind(plan.updated_at_us)
    .bind(plan.version)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

// Billing accounts.

/// A billing account.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountRow {
    pub id: String,
    pub workspace_id: String,
    pub display_name: String,
    pub currency_code: String,
    pub organization_id: Option<String>,
    pub billing_email: String,
    pub billing_address: String,
    pub tax_id: String,
    pub provider: String,
    pub provider_customer_id: String,
    /// `active`, `past_due` or `closed`.
    pub state: String,
    pub created_at_us: i64,
    pub updated_at_us: i64,
    pub version: i64,
}

const ACCOUNT_COLUMNS: &str = "id, workspace_id, display_name, currency_code, organization_id, billing_email, billing_address, tax_id, provider, provider_customer_id, state, created_at_us, updated_at_us, version";

fn account_from_row(row: &AnyRow) -> std::result::Result<AccountRow, sqlx::Error> {
    Ok(AccountRow {
        id: row.try_get(0)?,
        workspace_id: row.try_get(1)?,
        display_name: row.try_get(2)?,
        currency_code: row.try_get(3)?,
        organization_id: row.try_get(4)?,
        billing_email: row.try_get(5)?,
        billing_address: row.try_get(6)?,
        tax_id: row.try_get(7)?,
        provider: row.try_get(8)?,
        provider_customer_id: row.try_get(9)?,
        state: row.try_get(10)?,
        created_at_us: row.try_get(11)?,
        updated_at_us: row.try_get(12)?,
        version: row.try_get(13)?,
    })
}

/// An account by id, only within `workspace_id`.
pub async fn account<'e, E: Executor<'e, Database = Any>>(
    e: E,
    workspace_id: &str,
    id: &str,
) -> Result<Option<AccountRow>> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {ACCOUNT_COLUMNS} FROM billing_accounts WHERE id = $1 AND workspace_id = $2"
    )))
    .bind(id)
    .bind(workspace_id)
    .fetch_optional(e)
    .await?
    .map(|row| account_from_row(&row))
    .transpose()
    .map_err(db_error)
}

/// The account a provider knows by `customer_id`.
pub async fn account_by_customer(
    tx: &mut Tx,
    provider: &str,
    customer_id: &str,
) -> Result<Option<AccountRow>> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {ACCOUNT_COLUMNS} FROM billing_accounts WHERE provider = $1 AND provider_customer_id = $2"
    )))
    .bind(provider)
    .bind(customer_id)
    .fetch_optional(&mut **tx)
    .await?
    .map(|row| account_from_row(&row))
    .transpose()
    .map_err(db_error)
}

/// An account by id alone, for provider events that name it in metadata.
pub async fn account_by_id(tx: &mut Tx, id: &str) -> Result<Option<AccountRow>> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {ACCOUNT_COLUMNS} FROM billing_accounts WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?
    .map(|row| account_from_row(&row))
    .transpose()
    .map_err(db_error)
}

/// A workspace's accounts, oldest first, after a (created, id) cursor.
pub async fn accounts<'e, E: Executor<'e, Database = Any>>(
    e: E,
    workspace_id: &str,
    after: (i64, &str),
    show_closed: bool,
    limit: i64,
) -> Result<Vec<AccountRow>> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {ACCOUNT_COLUMNS} FROM billing_accounts WHERE workspace_id = $1
           AND (created_at_us > $2 OR (created_at_us = $2 AND id > $3))
           AND ($4 = 1 OR state <> 'closed')
         ORDER BY created_at_us, id LIMIT $5"
    )))
    .bind(workspace_id)
    .bind(after.0)
    .bind(after.1)
    .bind(show_closed as i64)
    .bind(limit)
    .fetch_all(e)
    .await?
    .iter()
    .map(account_from_row)
    .collect::<std::result::Result<_, _>>()
    .map_err(db_error)
}

pub async fn save_account(tx: &mut Tx, account: &AccountRow) -> Result<()> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO billing_accounts ({ACCOUNT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
         ON CONFLICT (id) DO UPDATE SET display_name = excluded.display_name, billing_email = excluded.billing_email,
             billing_address = excluded.billing_address, tax_id = excluded.tax_id, provider = excluded.provider,
             provider_customer_id = excluded.provider_customer_id, state = excluded.state,
             updated_at_us = excluded.updated_at_us, version = excluded.version"
    )))
    .bind(&account.id)
    .bind(&account.workspace_id)
    .bind(&account.display_name)
    .bind(&account.currency_code)
    .bind(&account.organization_id)
    .bind(&account.billing_email)
    .bind(&account.billing_address)
    .bind(&account.tax_id)
    .bind(&account.provider)
    .bind(&account.provider_customer_id)
    .bind(&account.state)
    .bind(account.created_at_us)
    .bind(account.updated_at_us)
    .bind(account.version)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

// Subscriptions.

/// A root organization's subscription.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionRow {
    pub organization_id: String,
    pub workspace_id: String,
    pub plan_id: String,
    pub billing_account_id: Option<String>,
    /// `trialing`, `active`, `past_due` or `canceled`, as last stored; see
    /// `subscriptions::state_at` for the state at a given time.
    pub state: String,
    pub extra_seats: i64,
    pub limit_overrides: Limits,
    pub feature_overrides: BTreeMap<String, bool>,
    pub trial_end_us: Option<i64>,
    /// When a cancellation at the end of the period takes effect.
    pub cancel_at_us: Option<i64>,
    pub canceled_at_us: Option<i64>,
    pub provider_subscription_id: String,
    pub created_at_us: i64,
    pub updated_at_us: i64,
    pub version: i64,
}

const SUBSCRIPTION_COLUMNS: &str = "organization_id, workspace_id, plan_id, billing_account_id, state, extra_seats, limit_overrides, feature_overrides, trial_end_us, cancel_at_us, canceled_at_us, provider_subscription_id, created_at_us, updated_at_us, version";

fn subscription_from_row(row: &AnyRow) -> std::result::Result<SubscriptionRow, sqlx::Error> {
    let overrides: String = row.try_get(6)?;
    let features: String = row.try_get(7)?;
    Ok(SubscriptionRow {
        organization_id: row.try_get(0)?,
        workspace_id: row.try_get(1)?,
        plan_id: row.try_get(2)?,
        billing_account_id: row.try_get(3)?,
        state: row.try_get(4)?,
        extra_seats: row.try_get(5)?,
        limit_overrides: from_json(&overrides)?,
        feature_overrides: from_json(&features)?,
        trial_end_us: row.try_get(8)?,
        cancel_at_us: row.try_get(9)?,
        canceled_at_us: row.try_get(10)?,
        provider_subscription_id: row.try_get(11)?,
        created_at_us: row.try_get(12)?,
        updated_at_us: row.try_get(13)?,
        version: row.try_get(14)?,
    })
}

pub async fn subscription<'e, E: Executor<'e, Database = Any>>(
    e: E,
    organization_id: &str,
) -> Result<Option<SubscriptionRow>> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {SUBSCRIPTION_COLUMNS} FROM billing_subscriptions WHERE organization_id = $1"
    )))
    .bind(organization_id)
    .fetch_optional(e)
    .await?
    .map(|row| subscription_from_row(&row))
    .transpose()
    .map_err(db_error)
}

/// The subscriptions matching `column = value` (`workspace_id`,
/// `billing_account_id` or `provider_subscription_id`).
pub async fn subscriptions_by<'e, E: Executor<'e, Database = Any>>(
    e: E,
    column: SubscriptionKey,
    value: &str,
) -> Result<Vec<SubscriptionRow>> {
    let column = match column {
        SubscriptionKey::Workspace => "workspace_id",
        SubscriptionKey::Account => "billing_account_id",
        SubscriptionKey::ProviderId => "provider_subscription_id",
    };
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {SUBSCRIPTION_COLUMNS} FROM billing_subscriptions WHERE {column} = $1 ORDER BY organization_id"
    )))
    .bind(value)
    .fetch_all(e)
    .await?
    .iter()
    .map(subscription_from_row)
    .collect::<std::result::Result<_, _>>()
    .map_err(db_error)
}

/// What subscriptions can be looked up by.
#[derive(Debug, Clone, Copy)]
pub enum SubscriptionKey {
    Workspace,
    Account,
    ProviderId,
}

pub async fn save_subscription(tx: &mut Tx, s: &SubscriptionRow) -> Result<()> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO billing_subscriptions ({SUBSCRIPTION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
         ON CONFLICT (organization_id) DO UPDATE SET plan_id = excluded.plan_id,
             billing_account_id = excluded.billing_account_id, state = excluded.state,
             extra_seats = excluded.extra_seats, limit_overrides = excluded.limit_overrides,
             feature_overrides = excluded.feature_overrides, trial_end_us = excluded.trial_end_us,
             cancel_at_us = excluded.cancel_at_us, canceled_at_us = excluded.canceled_at_us,
             provider_subscription_id = excluded.provider_subscription_id,
             created_at_us = excluded.created_at_us, updated_at_us = excluded.updated_at_us,
             version = excluded.version"
    )))
    .bind(&s.organization_id)
    .bind(&s.workspace_id)
    .bind(&s.plan_id)
    .bind(&s.billing_account_id)
    .bind(&s.state)
    .bind(s.extra_seats)
    .bind(json(&s.limit_overrides))
    .bind(json(&s.feature_overrides))
    .bind(s.trial_end_us)
    .bind(s.cancel_at_us)
    .bind(s.canceled_at_us)
    .bind(&s.provider_subscription_id)
    .bind(s.created_at_us)
    .bind(s.updated_at_us)
    .bind(s.version)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Subscriptions whose stored state a time-driven change has overtaken: a
/// trial that ended, or a cancellation at period end that came due.
pub async fn due_subscriptions<'e, E: Executor<'e, Database = Any>>(
    e: E,
    now_us: i64,
) -> Result<Vec<SubscriptionRow>> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {SUBSCRIPTION_COLUMNS} FROM billing_subscriptions
         WHERE (state = 'trialing' AND trial_end_us <= $1)
            OR (state <> 'canceled' AND cancel_at_us <= $1)
         LIMIT 500"
    )))
    .bind(now_us)
    .fetch_all(e)
    .await?
    .iter()
    .map(subscription_from_row)
    .collect::<std::result::Result<_, _>>()
    .map_err(db_error)
}

// Usage records.

/// One recorded amount of metered usage.
#[derive(Debug, Clone, PartialEq)]
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

const RECORD_COLUMNS: &str = "id, organization_id, metric, quantity, idempotency_key, usage_at_us, period_us, recorded_by, created_at_us";

fn record_from_row(row: &AnyRow) -> std::result::Result<UsageRecordRow, sqlx::Error> {
    Ok(UsageRecordRow {
        id: row.try_get(0)?,
        organization_id: row.try_get(1)?,
        metric: row.try_get(2)?,
        quantity: row.try_get(3)?,
        idempotency_key: row.try_get(4)?,
        usage_at_us: row.try_get(5)?,
        period_us: row.try_get(6)?,
        recorded_by: row.try_get(7)?,
        created_at_us: row.try_get(8)?,
    })
}

pub async fn record_by_key(
    tx: &mut Tx,
    organization_id: &str,
    key: &str,
) -> Result<Option<UsageRecordRow>> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {RECORD_COLUMNS} FROM billing_usage_records WHERE organization_id = $1 AND idempotency_key = $2"
    )))
    .bind(organization_id)
    .bind(key)
    .fetch_optional(&mut **tx)
    .await?
    .map(|row| record_from_row(&row))
    .transpose()
    .map_err(db_error)
}

/// Inserts a record; false when its idempotency key was taken meanwhile.
pub async fn insert_record(tx: &mut Tx, r: &UsageRecordRow) -> Result<bool> {
    let inserted = sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO billing_usage_records ({RECORD_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (organization_id, idempotency_key) DO NOTHING"
    )))
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
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {RECORD_COLUMNS} FROM billing_usage_records WHERE organization_id = $1
           AND ($2 = '' OR metric = $2) AND usage_at_us >= $3 AND usage_at_us < $4
           AND (usage_at_us < $5 OR (usage_at_us = $5 AND id < $6))
         ORDER BY usage_at_us DESC, id DESC LIMIT $7"
    )))
    .bind(organization_id)
    .bind(filter.metric.clone().unwrap_or_default())
    .bind(filter.start_us.unwrap_or(i64::MIN))
    .bind(filter.end_us.unwrap_or(i64::MAX))
    .bind(before.0)
    .bind(before.1)
    .bind(limit)
    .fetch_all(e)
    .await?
    .iter()
    .map(record_from_row)
    .collect::<std::result::Result<_, _>>()
    .map_err(db_error)
}

// Provider events, platform administrators, request ids.

/// Remembers a provider event id; false when it was seen before.
pub async fn claim_provider_event(
    tx: &mut Tx,
    provider: &str,
    event_id: &str,
    event_type: &str,
    applied: bool,
) -> Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO billing_provider_events (provider, event_id, event_type, applied, received_at_us)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (provider, event_id) DO NOTHING",
    )
    .bind(provider)
    .bind(event_id)
    .bind(event_type)
    .bind(applied as i64)
    .bind(tenantry_kit::db::now_micros())
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// Billing's copy of the platform administrators.
pub const PLATFORM_ADMINS: tenantry_kit::admins::PlatformAdmins =
    tenantry_kit::admins::PlatformAdmins::new("billing_platform_admins");

/// Billing's idempotent creates.
pub const REQUESTS: tenantry_kit::request::Requests =
    tenantry_kit::request::Requests::new("billing_requests");
