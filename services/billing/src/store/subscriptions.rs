//! Subscriptions.

use sqlx::Row;
use sqlx::any::AnyRow;
use tenantry_kit::error::{Result, db_error};

use super::*;

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
