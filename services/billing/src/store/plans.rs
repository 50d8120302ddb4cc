//! Custom plans.

use sqlx::Row;
use sqlx::any::AnyRow;
use tenantry_kit::error::{Result, db_error};

use super::*;

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
