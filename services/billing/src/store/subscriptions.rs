//! Subscriptions.

use tenantry_kit::error::Result;
use tenantry_kit::row::JsonText;

use super::*;

/// A root organization's subscription.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct SubscriptionRow {
    pub organization_id: String,
    pub workspace_id: String,
    pub plan_id: String,
    pub billing_account_id: Option<String>,
    /// `trialing`, `active`, `past_due` or `canceled`, as last stored; see
    /// `subscriptions::state_at` for the state at a given time.
    pub state: String,
    pub extra_seats: i64,
    #[sqlx(try_from = "JsonText")]
    pub limit_overrides: Limits,
    #[sqlx(try_from = "JsonText")]
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

impl TryFrom<JsonText> for Limits {
    type Error = sqlx::Error;

    fn try_from(text: JsonText) -> std::result::Result<Limits, sqlx::Error> {
        text.parse()
    }
}

/// The columns of a subscription row.
macro_rules! subscription_columns {
    () => {
        "organization_id, workspace_id, plan_id, billing_account_id, state, extra_seats, \
         limit_overrides, feature_overrides, trial_end_us, cancel_at_us, canceled_at_us, \
         provider_subscription_id, created_at_us, updated_at_us, version"
    };
}

pub async fn subscription<'e, E: Executor<'e, Database = Any>>(
    e: E,
    organization_id: &str,
) -> Result<Option<SubscriptionRow>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        subscription_columns!(),
        " FROM billing_subscriptions WHERE organization_id = $1"
    ))
    .bind(organization_id)
    .fetch_optional(e)
    .await?)
}

/// The subscriptions whose `key` is `value`, by organization id.
pub async fn subscriptions_by<'e, E: Executor<'e, Database = Any>>(
    e: E,
    key: SubscriptionKey,
    value: &str,
) -> Result<Vec<SubscriptionRow>> {
    let sql = match key {
        SubscriptionKey::Workspace => concat!(
            "SELECT ",
            subscription_columns!(),
            " FROM billing_subscriptions WHERE workspace_id = $1 ORDER BY organization_id"
        ),
        SubscriptionKey::Account => concat!(
            "SELECT ",
            subscription_columns!(),
            " FROM billing_subscriptions WHERE billing_account_id = $1 ORDER BY organization_id"
        ),
        SubscriptionKey::ProviderId => concat!(
            "SELECT ",
            subscription_columns!(),
            " FROM billing_subscriptions WHERE provider_subscription_id = $1 ORDER BY organization_id"
        ),
    };
    Ok(sqlx::query_as(sql).bind(value).fetch_all(e).await?)
}

/// What subscriptions can be looked up by.
#[derive(Debug, Clone, Copy)]
pub enum SubscriptionKey {
    /// `workspace_id`.
    Workspace,
    /// `billing_account_id`.
    Account,
    /// `provider_subscription_id`.
    ProviderId,
}

pub async fn save_subscription(tx: &mut Tx, s: &SubscriptionRow) -> Result<()> {
    sqlx::query(concat!(
        "INSERT INTO billing_subscriptions (",
        subscription_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
         ON CONFLICT (organization_id) DO UPDATE SET plan_id = excluded.plan_id,
             billing_account_id = excluded.billing_account_id, state = excluded.state,
             extra_seats = excluded.extra_seats, limit_overrides = excluded.limit_overrides,
             feature_overrides = excluded.feature_overrides, trial_end_us = excluded.trial_end_us,
             cancel_at_us = excluded.cancel_at_us, canceled_at_us = excluded.canceled_at_us,
             provider_subscription_id = excluded.provider_subscription_id,
             created_at_us = excluded.created_at_us, updated_at_us = excluded.updated_at_us,
             version = excluded.version"
    ))
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
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        subscription_columns!(),
        " FROM billing_subscriptions
         WHERE (state = 'trialing' AND trial_end_us <= $1)
            OR (state <> 'canceled' AND cancel_at_us <= $1)
         LIMIT 500"
    ))
    .bind(now_us)
    .fetch_all(e)
    .await?)
}
