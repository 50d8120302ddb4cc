//! The organization service's rows and the SQL that reads and writes them.
//! Every query that takes an object id from a client also takes the
//! organization it must belong to: an id of another tenant finds nothing.
//!
//! One file per kind of row (its type, its mapping and its queries); this
//! one holds the store itself, idempotent requests and the helpers the
//! others share.

use sqlx::{Any, Transaction};
use tenantry_kit::db::Database;
use tenantry_kit::error::Result;

pub type Tx = Transaction<'static, Any>;

/// The organization service's idempotent creates.
const REQUESTS: tenantry_kit::request::Requests =
    tenantry_kit::request::Requests::new("org_requests");

mod children;
mod environments;
mod organizations;
mod transfers;
mod workspaces;

pub use children::{ChildRow, Children};
pub use environments::EnvironmentRow;
pub use organizations::{OrganizationFilter, OrganizationRow};
pub use transfers::TransferRow;
pub use workspaces::WorkspaceRow;

/// Escapes `%`, `_` and `\` for a LIKE pattern with `ESCAPE '\'`.
fn like_prefix(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 1);
    for c in prefix.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// The organization service's tables.
#[derive(Debug, Clone)]
pub struct Store {
    db: Database,
}

impl Store {
    pub fn new(db: Database) -> Self {
        Store { db }
    }

    pub async fn begin(&self) -> Result<Tx> {
        self.db.begin().await
    }

    /// Whether the database holds each query to the request's tenants
    /// (Postgres row-level security; see `tenantry_kit::tenancy`).
    pub fn has_row_security(&self) -> bool {
        self.db.has_row_security()
    }

    /// The roots of the trees holding these organizations (unknown ids have
    /// none). Tenant lookups: run in the system scope.
    pub async fn roots_of(&self, ids: &[&str]) -> Result<Vec<String>> {
        let mut roots = Vec::new();
        for chunk in ids.chunks(500) {
            // Dynamic only in its placeholder list, built from a count.
            let sql = format!(
                "SELECT DISTINCT root_id FROM org_organizations WHERE 1 = 1{}",
                in_list("id", chunk.len(), 1)
            );
            let mut query = sqlx::query_scalar(sqlx::AssertSqlSafe(sql));
            for id in chunk {
                query = query.bind(*id);
            }
            let chunk_roots: Vec<String> = query.fetch_all(self.db.pool()).await?;
            roots.extend(chunk_roots);
        }
        Ok(roots)
    }

    // Idempotent requests.

    /// The resource a request id already created, if any.
    pub async fn replayed(
        &self,
        tx: &mut Tx,
        caller: &str,
        method: &str,
        request_id: &str,
    ) -> Result<Option<String>> {
        REQUESTS
            .replayed(&mut **tx, caller, method, request_id)
            .await
    }

    /// [`replayed`](Self::replayed) outside a write: a plain read, which
    /// takes no write lock.
    pub async fn replayed_now(
        &self,
        caller: &str,
        method: &str,
        request_id: &str,
    ) -> Result<Option<String>> {
        REQUESTS
            .replayed(self.db.pool(), caller, method, request_id)
            .await
    }

    /// Records that a request id created `resource_id`.
    pub async fn remember_request(
        &self,
        tx: &mut Tx,
        caller: &str,
        method: &str,
        request_id: &str,
        resource_id: &str,
    ) -> Result<()> {
        REQUESTS
            .remember(tx, caller, method, request_id, resource_id)
            .await
    }
}

/// ` AND column IN ($first, …)` for `count` values: the one piece of SQL
/// built at run time, from a count and a fixed column name, never from values.
fn in_list(column: &str, count: usize, first: usize) -> String {
    format!(" AND {column} IN ({})", placeholders(first, count))
}

/// `$first, …` for `count` values.
fn placeholders(first: usize, count: usize) -> String {
    let placeholders: Vec<String> = (first..first + count).map(|i| format!("${i}")).collect();
    placeholders.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_prefixes_escape_wildcards() {
        assert_eq!(like_prefix("Ac%_\\"), "ac\\%\\_\\\\%");
        assert_eq!(like_prefix(""), "%");
    }
}
