//! The billing service's rows and the SQL that reads and writes them. Reads
//! take any executor (the pool, or a transaction when the read decides a
//! write); writes take the transaction they belong to.
//!
//! One file per kind of row (its type, mapped by column name with
//! `#[derive(sqlx::FromRow)]`, its columns and its queries); this one holds
//! the store itself and the helpers the others share. Every query is a
//! `&'static str` but those with a placeholder list, which is built from a
//! count, never from values.

use std::collections::{BTreeMap, HashMap};

use sqlx::{Any, Executor, Transaction};
use tenantry_kit::db::{Database, now_micros};
use tenantry_kit::error::Result;
use tenantry_kit::row::json;

use crate::catalog::{Limits, Plan, PlanBody};

pub type Tx = Transaction<'static, Any>;

/// `$first, $first+1, …` for `count` values.
fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
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

mod accounts;
mod counters;
mod items;
mod limits;
mod plans;
mod reservations;
mod subscriptions;
mod tree;
mod usage_records;

pub use accounts::*;
pub use counters::*;
pub use items::*;
pub use limits::*;
pub use plans::*;
pub use reservations::*;
pub use subscriptions::*;
pub use tree::*;
pub use usage_records::*;

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

/// Records whether a claimed provider event changed anything.
pub async fn set_provider_event_applied(
    tx: &mut Tx,
    provider: &str,
    event_id: &str,
    applied: bool,
) -> Result<()> {
    sqlx::query(
        "UPDATE billing_provider_events SET applied = $3 WHERE provider = $1 AND event_id = $2",
    )
    .bind(provider)
    .bind(event_id)
    .bind(applied as i64)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Billing's copy of the platform administrators.
pub const PLATFORM_ADMINS: tenantry_kit::admins::PlatformAdmins =
    tenantry_kit::admins::PlatformAdmins::new("billing_platform_admins");

/// Billing's idempotent creates.
pub const REQUESTS: tenantry_kit::request::Requests =
    tenantry_kit::request::Requests::new("billing_requests");
