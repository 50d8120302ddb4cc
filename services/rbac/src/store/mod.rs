//! The rbac tables: state rows, and the change log the index follows.
//!
//! One file per kind of row (its type, its mapping and its queries); this
//! one holds the store itself and what the others share.

use sqlx::{Any, Transaction};
use tenantry_kit::db::Database;
use tenantry_kit::error::Result;

use crate::engine::{AccessLevel, Change, GrantSubject, KeyScope};

pub type Tx = Transaction<'static, Any>;

mod changes;
mod grants;
mod memberships;
mod records;
mod roles;
mod team_members;
mod tree;
mod users;

pub use grants::{GrantRow, level_name};
pub use memberships::MembershipRow;
pub use roles::RoleRow;
pub use team_members::TeamMemberRow;
pub use tree::NodeRow;
pub use users::{InactiveReason, UserRow};

/// The rbac tables.
#[derive(Debug, Clone)]
pub struct Store {
    db: Database,
}

impl Store {
    pub fn new(db: Database) -> Self {
        Store { db }
    }

    pub fn db(&self) -> &Database {
        &self.db
    }

    /// A page of rows in key order: `statement` selects the rows of key
    /// `$1` after the cursor `$2`, at most `$3` of them.
    async fn keyset_page<R>(
        &self,
        statement: &'static str,
        (key, after): (&str, &str),
        limit: i64,
    ) -> Result<Vec<R>>
    where
        R: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
    {
        Ok(sqlx::query_as(statement)
            .bind(key)
            .bind(after)
            .bind(limit)
            .fetch_all(self.db.pool())
            .await?)
    }

    pub async fn begin(&self) -> Result<Tx> {
        self.db.begin().await
    }

    // Idempotent requests.

    /// The resource a request id created, if it was seen before.
    pub async fn replayed(
        &self,
        caller: &str,
        method: &str,
        request_id: &str,
    ) -> Result<Option<String>> {
        if request_id.is_empty() {
            return Ok(None);
        }
        Ok(sqlx::query_scalar("SELECT resource_id FROM rbac_requests WHERE caller = $1 AND method = $2 AND request_id = $3")
            .bind(caller)
            .bind(method)
            .bind(request_id)
            .fetch_optional(self.db.pool())
            .await?)
    }

    /// Records what a request id created.
    pub async fn remember(
        &self,
        tx: &mut Tx,
        caller: &str,
        method: &str,
        request_id: &str,
        resource_id: &str,
    ) -> Result<()> {
        if request_id.is_empty() {
            return Ok(());
        }
        sqlx::query("INSERT INTO rbac_requests (caller, method, request_id, resource_id) VALUES ($1, $2, $3, $4)")
            .bind(caller)
            .bind(method)
            .bind(request_id)
            .bind(resource_id)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}
