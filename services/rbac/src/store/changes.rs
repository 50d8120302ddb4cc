//! The change log the index follows, and the snapshot a replica loads.

use sqlx::Row;
use sqlx::any::AnyRow;
use tenantry_kit::error::{Result, db_error};

use super::grants::{GRANT_COLUMNS, grant_from_row};
use super::memberships::membership_columns;
use super::roles::{ROLE_COLUMNS, role_from_row};
use super::team_members::{TEAM_MEMBER_COLUMNS, team_member_from_row};
use super::*;

impl Store {
    /// Appends `changes` as the next revision, inside the caller's
    /// transaction, and returns it. The UPDATE holds the counter's row lock
    /// until commit: revisions commit in order.
    pub async fn log(&self, tx: &mut Tx, changes: &[Change]) -> Result<i64> {
        let revision: i64 =
            sqlx::query("UPDATE rbac_revision SET value = value + 1 WHERE id = 1 RETURNING value")
                .fetch_one(&mut **tx)
                .await?
                .try_get(0)?;
        for (position, change) in changes.iter().enumerate() {
            sqlx::query(
                "INSERT INTO rbac_changes (revision, position, change) VALUES ($1, $2, $3)",
            )
            .bind(revision)
            .bind(position as i64)
            .bind(serde_json::to_string(change).expect("changes serialize"))
            .execute(&mut **tx)
            .await?;
        }
        if self.shared() {
            // Delivered at commit to every replica listening: they apply the
            // revision now instead of at their next poll.
            sqlx::query("SELECT pg_notify(current_schema() || '_rbac_changes', '')")
                .execute(&mut **tx)
                .await?;
        }
        Ok(revision)
    }

    /// Whether several replicas can share this store (Postgres): only
    /// then do replicas register, heartbeat and wait for each other.
    pub fn shared(&self) -> bool {
        self.db.backend() == tenantry_kit::db::Backend::Postgres
    }

    /// The database, for a dedicated listening connection.
    pub fn database(&self) -> &tenantry_kit::db::Database {
        &self.db
    }

    /// Registers (or refreshes) replica `id` at `applied`; returns the fence
    /// other replicas set on it, if any.
    pub async fn heartbeat(&self, id: &str, applied: i64) -> Result<i64> {
        let fence: Option<i64> = sqlx::query(
            "UPDATE rbac_replicas SET applied = GREATEST(applied, $2), seen_at_us = (EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::BIGINT
             WHERE id = $1 RETURNING fence",
        )
        .bind(id)
        .bind(applied)
        .fetch_optional(self.db.pool())
        .await?
        .map(|row| row.try_get(0))
        .transpose()?;
        if let Some(fence) = fence {
            return Ok(fence);
        }
        sqlx::query(
            "INSERT INTO rbac_replicas (id, applied, seen_at_us, fence)
             VALUES ($1, $2, (EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::BIGINT, 0)
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(applied)
        .execute(self.db.pool())
        .await?;
        Ok(0)
    }

    /// Records that replica `id` has applied `revision`.
    pub async fn report_applied(&self, id: &str, revision: i64) -> Result<()> {
        sqlx::query("UPDATE rbac_replicas SET applied = $2 WHERE id = $1 AND applied < $2")
            .bind(id)
            .bind(revision)
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    /// The other replicas alive within `lease` (by the database's clock)
    /// that have not applied `revision`: (id, applied, last seen); a
    /// replica still loading has applied -1.
    pub async fn lagging_replicas(
        &self,
        me: &str,
        revision: i64,
        lease: std::time::Duration,
    ) -> Result<Vec<(String, i64, i64)>> {
        sqlx::query(
            "SELECT id, applied, seen_at_us FROM rbac_replicas
             WHERE id <> $1 AND applied < $2
               AND seen_at_us > (EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::BIGINT - $3",
        )
        .bind(me)
        .bind(revision)
        .bind(lease.as_micros() as i64)
        .fetch_all(self.db.pool())
        .await?
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
        .collect::<std::result::Result<_, sqlx::Error>>()
        .map_err(db_error)
    }

    /// Requires replica `id` to reach `revision` before it answers again;
    /// returns the database's clock when the fence was set.
    pub async fn fence(&self, id: &str, revision: i64) -> Result<i64> {
        sqlx::query(
            "UPDATE rbac_replicas SET fence = GREATEST(fence, $2) WHERE id = $1
             RETURNING (EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::BIGINT",
        )
        .bind(id)
        .bind(revision)
        .fetch_optional(self.db.pool())
        .await?
        .map_or(Ok(0), |row| row.try_get(0))
        .map_err(db_error)
    }

    /// When replica `id` last heartbeated (database clock), if registered.
    pub async fn replica_seen(&self, id: &str) -> Result<Option<i64>> {
        sqlx::query("SELECT seen_at_us FROM rbac_replicas WHERE id = $1")
            .bind(id)
            .fetch_optional(self.db.pool())
            .await?
            .map(|row| row.try_get(0))
            .transpose()
            .map_err(db_error)
    }

    /// Forgets replicas not seen for `age`.
    pub async fn forget_replicas(&self, age: std::time::Duration) -> Result<u64> {
        Ok(sqlx::query(
            "DELETE FROM rbac_replicas WHERE seen_at_us < (EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::BIGINT - $1",
        )
        .bind(age.as_micros() as i64)
        .execute(self.db.pool())
        .await?
        .rows_affected())
    }

    /// The newest committed revision.
    pub async fn head(&self) -> Result<i64> {
        sqlx::query("SELECT value FROM rbac_revision WHERE id = 1")
            .fetch_one(self.db.pool())
            .await?
            .try_get(0)
            .map_err(db_error)
    }

    /// Whether `consumer` has claimed (and so applied) the event `id`.
    pub async fn event_applied(&self, consumer: &str, id: &str) -> Result<bool> {
        Ok(sqlx::query(
            "SELECT 1 FROM tenantry_consumed_events WHERE consumer = $1 AND event_id = $2",
        )
        .bind(consumer)
        .bind(id)
        .fetch_optional(self.db.pool())
        .await?
        .is_some())
    }

    /// The compaction floor: revisions up to it are no longer in the log.
    pub async fn floor(&self) -> Result<i64> {
        sqlx::query("SELECT value FROM rbac_revision WHERE id = 2")
            .fetch_one(self.db.pool())
            .await?
            .try_get(0)
            .map_err(db_error)
    }

    /// Drops revisions up to `floor` from the log (and raises the floor).
    pub async fn compact(&self, floor: i64) -> Result<u64> {
        let mut tx = self.begin().await?;
        let raised = sqlx::query("UPDATE rbac_revision SET value = $1 WHERE id = 2 AND value < $1")
            .bind(floor)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if raised == 0 {
            return Ok(0);
        }
        let deleted = sqlx::query("DELETE FROM rbac_changes WHERE revision <= $1")
            .bind(floor)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(deleted)
    }

    /// Every change of one revision.
    pub async fn changes_of(&self, revision: i64) -> Result<Vec<Change>> {
        let rows =
            sqlx::query("SELECT change FROM rbac_changes WHERE revision = $1 ORDER BY position")
                .bind(revision)
                .fetch_all(self.db.pool())
                .await?;
        rows.iter()
            .map(|row| decode(&row.try_get::<String, _>(0)?))
            .collect::<std::result::Result<_, sqlx::Error>>()
            .map_err(db_error)
    }

    /// Changes after `revision`, in order, at most `limit` rows.
    pub async fn changes_after(&self, revision: i64, limit: i64) -> Result<Vec<(i64, Change)>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT revision, change FROM rbac_changes WHERE revision > $1
             ORDER BY revision, position LIMIT {limit}"
        )))
        .bind(revision)
        .fetch_all(self.db.pool())
        .await?;
        rows.iter()
            .map(|row| {
                let revision: i64 = row.try_get(0)?;
                let change: String = row.try_get(1)?;
                Ok((revision, decode(&change)?))
            })
            .collect::<std::result::Result<_, sqlx::Error>>()
            .map_err(db_error)
    }

    /// Everything the index needs, and the revision it reflects, read in one
    /// transaction (a consistent snapshot).
    pub async fn snapshot(&self) -> Result<(i64, Vec<Change>)> {
        let mut tx = self.db.pool().begin().await?;
        let head: i64 = sqlx::query("SELECT value FROM rbac_revision WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        let mut changes = Vec::new();
        // Types first: nodes of registered types need them.
        for row in
            sqlx::query("SELECT definition FROM rbac_resource_types ORDER BY created_at_us, name")
                .fetch_all(&mut *tx)
                .await?
        {
            let definition: String = row.try_get(0)?;
            changes.push(Change::RegisterType {
                definition: decode(&definition)?,
            });
        }
        for row in sqlx::query(
            "SELECT object_type, id, parent_id, inherit, live, projects_granted_only FROM rbac_nodes
             ORDER BY object_type, id",
        )
        .fetch_all(&mut *tx)
        .await?
        {
            let object_type: String = row.try_get(0)?;
            let id: String = row.try_get(1)?;
            let live = row.try_get::<i64, _>(4)? != 0;
            changes.push(Change::Node {
                object_type: object_type.clone(),
                id: id.clone(),
                parent: row.try_get(2)?,
                inherit: row.try_get::<i64, _>(3)? != 0,
            });
            if row.try_get::<i64, _>(5)? != 0 {
                changes.push(Change::ProjectVisibility {
                    organization: id.clone(),
                    granted_only: true,
                });
            }
            if !live {
                changes.push(Change::Live {
                    object_type,
                    id,
                    live,
                });
            }
        }
        for row in sqlx::query("SELECT user_id FROM rbac_inactive_users ORDER BY user_id")
            .fetch_all(&mut *tx)
            .await?
        {
            changes.push(Change::UserActive {
                user: row.try_get(0)?,
                active: false,
            });
        }
        let now = tenantry_kit::db::now_micros();
        for row in sqlx::query(
            "SELECT session_id, until_us FROM rbac_ended_sessions WHERE until_us > $1
             ORDER BY session_id",
        )
        .bind(now)
        .fetch_all(&mut *tx)
        .await?
        {
            changes.push(Change::SessionEnded {
                id: row.try_get(0)?,
                at_us: now,
                until_us: row.try_get(1)?,
            });
        }
        for row in sqlx::query(
            "SELECT id, organization_id, owner_id, scope_type, scope_id, permissions
             FROM rbac_api_keys ORDER BY id",
        )
        .fetch_all(&mut *tx)
        .await?
        {
            let scope_type: String = row.try_get(3)?;
            let scope_id: String = row.try_get(4)?;
            let permissions: String = row.try_get(5)?;
            changes.push(Change::ApiKey {
                id: row.try_get(0)?,
                organization: row.try_get(1)?,
                owner: row.try_get(2)?,
                scope: key_scope(&scope_type, scope_id)?,
                permissions: decode(&permissions)?,
            });
        }
        let sql = format!("SELECT {ROLE_COLUMNS} FROM rbac_roles");
        for role in sqlx::query(sqlx::AssertSqlSafe(sql))
            .try_map(|row: AnyRow| role_from_row(&row))
            .fetch_all(&mut *tx)
            .await?
        {
            changes.push(Change::Role {
                name: role.name(),
                permissions: role.permissions,
            });
        }
        for m in sqlx::query_as::<_, MembershipRow>(concat!(
            "SELECT ",
            membership_columns!(),
            " FROM rbac_memberships"
        ))
        .fetch_all(&mut *tx)
        .await?
        {
            changes.push(Change::Membership {
                organization: m.organization_id,
                user: m.user_id,
                roles: m.roles,
            });
        }
        let sql = format!("SELECT {TEAM_MEMBER_COLUMNS} FROM rbac_team_members");
        for m in sqlx::query(sqlx::AssertSqlSafe(sql))
            .try_map(|row: AnyRow| team_member_from_row(&row))
            .fetch_all(&mut *tx)
            .await?
        {
            changes.push(Change::TeamMember {
                team: m.team_id,
                user: m.user_id,
                lead: Some(m.lead),
            });
        }
        let sql = format!("SELECT {GRANT_COLUMNS} FROM rbac_project_grants");
        for g in sqlx::query(sqlx::AssertSqlSafe(sql))
            .try_map(|row: AnyRow| grant_from_row(&row))
            .fetch_all(&mut *tx)
            .await?
        {
            changes.push(Change::ProjectGrant {
                project: g.project_id,
                subject: g.subject,
                level: Some(g.level),
            });
        }
        tx.commit().await?;
        Ok((head, changes))
    }
}
