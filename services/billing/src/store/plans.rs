//! Custom plans.

use tenantry_kit::error::Result;
use tenantry_kit::row::{Bit, JsonText};
use tenantry_proto::tenantry::billing::v1::PlanTier;

use super::*;

/// A custom plan as stored: its body as JSON text, and no tier, since
/// every stored plan is custom.
#[derive(Debug, sqlx::FromRow)]
struct PlanRow {
    id: String,
    #[sqlx(try_from = "JsonText")]
    body: PlanBody,
    offered_to: Option<String>,
    #[sqlx(try_from = "Bit")]
    archived: bool,
    created_at_us: i64,
    updated_at_us: i64,
    version: i64,
}

impl From<PlanRow> for Plan {
    fn from(row: PlanRow) -> Plan {
        Plan {
            id: row.id,
            tier: PlanTier::Custom,
            body: row.body,
            offered_to: row.offered_to,
            archived: row.archived,
            created_at_us: row.created_at_us,
            updated_at_us: row.updated_at_us,
            version: row.version,
        }
    }
}

impl TryFrom<JsonText> for PlanBody {
    type Error = sqlx::Error;

    fn try_from(text: JsonText) -> std::result::Result<PlanBody, sqlx::Error> {
        text.parse()
    }
}

/// The columns of a plan row.
macro_rules! plan_columns {
    () => {
        "id, body, offered_to, archived, created_at_us, updated_at_us, version"
    };
}

pub async fn custom_plan<'e, E: Executor<'e, Database = Any>>(
    e: E,
    id: &str,
) -> Result<Option<Plan>> {
    let row: Option<PlanRow> = sqlx::query_as(concat!(
        "SELECT ",
        plan_columns!(),
        " FROM billing_plans WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(e)
    .await?;
    Ok(row.map(Plan::from))
}

/// Every custom plan, by display name then id.
pub async fn custom_plans<'e, E: Executor<'e, Database = Any>>(e: E) -> Result<Vec<Plan>> {
    let rows: Vec<PlanRow> =
        sqlx::query_as(concat!("SELECT ", plan_columns!(), " FROM billing_plans"))
            .fetch_all(e)
            .await?;
    let mut plans: Vec<Plan> = rows.into_iter().map(Plan::from).collect();
    plans.sort_by(|a, b| {
        (a.body.display_name.as_str(), a.id.as_str())
            .cmp(&(b.body.display_name.as_str(), b.id.as_str()))
    });
    Ok(plans)
}

pub async fn save_plan(tx: &mut Tx, plan: &Plan) -> Result<()> {
    sqlx::query(concat!(
        "INSERT INTO billing_plans (",
        plan_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (id) DO UPDATE SET body = excluded.body, archived = excluded.archived,
             updated_at_us = excluded.updated_at_us, version = excluded.version"
    ))
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
