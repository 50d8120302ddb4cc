//! What a bulk import reads and writes many rows at a time, and the pages
//! an export reads.

use std::collections::HashSet;

use tenantry_kit::db::{Backend, values};
use tenantry_kit::error::Result;
use tenantry_kit::row::json;

use super::grants::grant_columns;
use super::memberships::membership_columns;
use super::team_members::team_member_columns;
use super::*;

/// Ids per `IN (…)` list and rows per multi-row `INSERT`: well under both
/// backends' limits on bound parameters.
const CHUNK: usize = 500;

impl Store {
    /// Those of `users` that rbac has heard of from identity. Counted
    /// first: on SQLite every row read crosses to sqlx's worker thread and
    /// back, and in an import all of them are known but for a mistake.
    pub async fn known_users(&self, tx: &mut Tx, users: &[&str]) -> Result<HashSet<String>> {
        // One count per chunk of ids.
        let counts: Vec<(i64,)> = self
            .rows_in(tx, "SELECT COUNT(*) FROM rbac_users WHERE id IN", users)
            .await?;
        if counts.iter().map(|(count,)| count).sum::<i64>() == users.len() as i64 {
            return Ok(users.iter().map(|id| id.to_string()).collect());
        }
        let rows: Vec<(String,)> = self
            .rows_in(tx, "SELECT id FROM rbac_users WHERE id IN", users)
            .await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    /// Those of the (organization, user) `pairs` that are memberships.
    pub async fn existing_memberships(
        &self,
        tx: &mut Tx,
        pairs: &[(&str, &str)],
    ) -> Result<HashSet<(String, String)>> {
        self.pairs_in(
            tx,
            "SELECT organization_id, user_id FROM rbac_memberships \
             WHERE (organization_id, user_id) IN",
            pairs,
        )
        .await
    }

    /// Those of the (team, user) `pairs` that are team members.
    pub async fn existing_team_members(
        &self,
        tx: &mut Tx,
        pairs: &[(&str, &str)],
    ) -> Result<HashSet<(String, String)>> {
        self.pairs_in(
            tx,
            "SELECT team_id, user_id FROM rbac_team_members WHERE (team_id, user_id) IN",
            pairs,
        )
        .await
    }

    /// The pairs `select` (ending in `(a, b) IN`) finds among `pairs`: only
    /// those that exist come back, so a batch of new rows reads none.
    async fn pairs_in(
        &self,
        tx: &mut Tx,
        select: &str,
        pairs: &[(&str, &str)],
    ) -> Result<HashSet<(String, String)>> {
        let mut found = HashSet::new();
        for chunk in pairs.chunks(CHUNK) {
            let sql = format!(
                "{select} (VALUES {})",
                values(Backend::of(tx), chunk.len(), 2)
            );
            let mut query = sqlx::query_as::<_, (String, String)>(sqlx::AssertSqlSafe(sql));
            for (a, b) in chunk {
                query = query.bind(*a).bind(*b);
            }
            found.extend(query.fetch_all(&mut **tx).await?);
        }
        Ok(found)
    }

    /// Every grant on `projects`.
    pub async fn grants_on(&self, tx: &mut Tx, projects: &[&str]) -> Result<Vec<GrantRow>> {
        self.rows_in(
            tx,
            concat!(
                "SELECT ",
                grant_columns!(),
                " FROM rbac_project_grants WHERE project_id IN"
            ),
            projects,
        )
        .await
    }

    /// Inserts new memberships, many to a statement.
    pub async fn insert_memberships(&self, tx: &mut Tx, rows: &[MembershipRow]) -> Result<()> {
        for chunk in rows.chunks(CHUNK) {
            let sql = format!(
                concat!(
                    "INSERT INTO rbac_memberships (",
                    membership_columns!(),
                    ") VALUES {}"
                ),
                values(Backend::of(tx), chunk.len(), 7)
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for m in chunk {
                query = query
                    .bind(&m.organization_id)
                    .bind(&m.user_id)
                    .bind(json(&m.roles))
                    .bind(&m.invitation_id)
                    .bind(m.created_at_us)
                    .bind(m.updated_at_us)
                    .bind(m.version);
            }
            query.execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// Inserts new team members, many to a statement.
    pub async fn insert_team_members(&self, tx: &mut Tx, rows: &[TeamMemberRow]) -> Result<()> {
        for chunk in rows.chunks(CHUNK) {
            let sql = format!(
                concat!(
                    "INSERT INTO rbac_team_members (",
                    team_member_columns!(),
                    ") VALUES {}"
                ),
                values(Backend::of(tx), chunk.len(), 7)
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for m in chunk {
                query = query
                    .bind(&m.team_id)
                    .bind(&m.organization_id)
                    .bind(&m.user_id)
                    .bind(i64::from(m.lead))
                    .bind(m.created_at_us)
                    .bind(m.updated_at_us)
                    .bind(m.version);
            }
            query.execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// Memberships after (`organization`, `user`), in that order.
    pub async fn memberships_after(
        &self,
        after: (&str, &str),
        limit: i64,
    ) -> Result<Vec<MembershipRow>> {
        self.keyset_page(
            concat!(
                "SELECT ",
                membership_columns!(),
                " FROM rbac_memberships
                 WHERE organization_id > $1 OR (organization_id = $1 AND user_id > $2)
                 ORDER BY organization_id, user_id LIMIT $3"
            ),
            after,
            limit,
        )
        .await
    }

    /// Team members after (`team`, `user`), in that order.
    pub async fn team_members_after(
        &self,
        after: (&str, &str),
        limit: i64,
    ) -> Result<Vec<TeamMemberRow>> {
        self.keyset_page(
            concat!(
                "SELECT ",
                team_member_columns!(),
                " FROM rbac_team_members
                 WHERE team_id > $1 OR (team_id = $1 AND user_id > $2)
                 ORDER BY team_id, user_id LIMIT $3"
            ),
            after,
            limit,
        )
        .await
    }

    /// Project grants after the grant `after`, in id order.
    pub async fn grants_after(&self, after: &str, limit: i64) -> Result<Vec<GrantRow>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            grant_columns!(),
            " FROM rbac_project_grants WHERE id > $1 ORDER BY id LIMIT $2"
        ))
        .bind(after)
        .bind(limit)
        .fetch_all(self.db.pool())
        .await?)
    }

    /// The rows `select` (ending in `IN`) finds for `ids`.
    async fn rows_in<R>(&self, tx: &mut Tx, select: &str, ids: &[&str]) -> Result<Vec<R>>
    where
        R: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
    {
        let mut found = Vec::new();
        for chunk in ids.chunks(CHUNK) {
            let sql = format!("{select} {}", values(Backend::of(tx), 1, chunk.len()));
            let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql));
            for id in chunk {
                query = query.bind(*id);
            }
            found.extend(query.fetch_all(&mut **tx).await?);
        }
        Ok(found)
    }
}
