//! Billing accounts.

use tenantry_kit::error::Result;

use super::*;

/// A billing account.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
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

/// The columns of an account row.
macro_rules! account_columns {
    () => {
        "id, workspace_id, display_name, currency_code, organization_id, billing_email, \
         billing_address, tax_id, provider, provider_customer_id, state, created_at_us, \
         updated_at_us, version"
    };
}

/// An account by id, only within `workspace_id`.
pub async fn account<'e, E: Executor<'e, Database = Any>>(
    e: E,
    workspace_id: &str,
    id: &str,
) -> Result<Option<AccountRow>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        account_columns!(),
        " FROM billing_accounts WHERE id = $1 AND workspace_id = $2"
    ))
    .bind(id)
    .bind(workspace_id)
    .fetch_optional(e)
    .await?)
}

/// The account a provider knows by `customer_id`.
pub async fn account_by_customer(
    tx: &mut Tx,
    provider: &str,
    customer_id: &str,
) -> Result<Option<AccountRow>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        account_columns!(),
        " FROM billing_accounts WHERE provider = $1 AND provider_customer_id = $2"
    ))
    .bind(provider)
    .bind(customer_id)
    .fetch_optional(&mut **tx)
    .await?)
}

/// An account by id alone, for provider events that name it in metadata.
pub async fn account_by_id(tx: &mut Tx, id: &str) -> Result<Option<AccountRow>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        account_columns!(),
        " FROM billing_accounts WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?)
}

/// A workspace's accounts, oldest first, after a (created, id) cursor.
pub async fn accounts<'e, E: Executor<'e, Database = Any>>(
    e: E,
    workspace_id: &str,
    after: (i64, &str),
    show_closed: bool,
    limit: i64,
) -> Result<Vec<AccountRow>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        account_columns!(),
        " FROM billing_accounts WHERE workspace_id = $1
           AND (created_at_us > $2 OR (created_at_us = $2 AND id > $3))
           AND ($4 = 1 OR state <> 'closed')
         ORDER BY created_at_us, id LIMIT $5"
    ))
    .bind(workspace_id)
    .bind(after.0)
    .bind(after.1)
    .bind(show_closed as i64)
    .bind(limit)
    .fetch_all(e)
    .await?)
}

pub async fn save_account(tx: &mut Tx, account: &AccountRow) -> Result<()> {
    sqlx::query(concat!(
        "INSERT INTO billing_accounts (",
        account_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
         ON CONFLICT (id) DO UPDATE SET display_name = excluded.display_name, billing_email = excluded.billing_email,
             billing_address = excluded.billing_address, tax_id = excluded.tax_id, provider = excluded.provider,
             provider_customer_id = excluded.provider_customer_id, state = excluded.state,
             updated_at_us = excluded.updated_at_us, version = excluded.version"
    ))
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
