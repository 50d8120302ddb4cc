//! The change log the index follows, and the snapshot a replica loads.

use tenantry_kit::error::Result;
use tenantry_kit::row::{Bit, JsonText, decode_error, json};

use super::grants::grant_columns;
use super::memberships::membership_columns;
use super::roles::role_columns;
use super::team_members::team_member_columns;
use super::*;

/// A logged change, with its revision.
#[derive(sqlx::FromRow)]
struct LoggedChange {
    revision: i64,
    #[sqlx(try_from = "JsonText")]
    change: Change,
}

impl TryFrom<JsonText> for Change {
    type Error = sqlx::Error;

    fn try_from(text: JsonText) -> std::result::Result<Change, sqlx::Error> {
        text.parse()
    }
}

/// A node as the snapshot reads it.
#[derive(sqlx::FromRow)]
struct SnapshotNode {
    object_type: String,
    id: String,
    parent_id: Option<String>,
    #[sqlx(try_from = "Bit")]
    inherit: bool,
    #[sqlx(try_from = "Bit")]
    live: bool,
    #[sqlx(try_from = "Bit")]
    projects_granted_only: bool,
}

/// An API key as the snapshot reads it.
#[derive(sqlx::FromRow)]
struct ApiKeyRow {
    id: String,
    organization_id: String,
    owner_id: String,
    #[sqlx(flatten, try_from = "ScopeColumns")]
    scope: KeyScope,
    #[sqlx(try_from = "JsonText")]
    permissions: Vec<String>,
}

/// The two columns naming an API key's scope.
#[derive(sqlx::FromRow)]
struct ScopeColumns {
    scope_type: String,
    scope_id: String,
}

impl TryFrom<ScopeColumns> for KeyScope {
    type Error = sqlx::Error;

    fn try_from(columns: ScopeColumns) -> std::result::Result<KeyScope, sqlx::Error> {
        let ScopeColumns {
            scope_type,
            scope_id: id,
        } = columns;
        match scope_type.as_str() {
            "organization" => Ok(KeyScope::Organization(id)),
            "team" => Ok(KeyScope::Team(id)),
            "project" => Ok(KeyScope::Project(id)),
            other => Err(decode_error(format!("unknown api key scope `{other}`"))),
        }
    }
}

impl Store {
    /// Appends `changes` as the next revision, inside the caller's
    /// transaction, and returns it. The UPDATE holds the counter's row lock
    /// until commit: revisions commit in order.
    pub async fn log(&self, tx: &mut Tx, changes: &[Change]) -> Result<i64> {
        let revision: i64 = sqlx::query_scalar(
            "UPDATE rbac_revision SET value = value + 1 WHERE id = 1 RETURNING value",
        )
        .fetch_one(&mut **tx)
        .await?;
        // Many to a statement: an import's revision holds a thousand.
        for (chunk_index, chunk) in changes.chunks(500).enumerate() {
            let sql = format!(
                "INSERT INTO rbac_changes (revision, position, change) VALUES {}",
                tenantry_kit::db::values(tenantry_kit::db::Backend::of(tx), chunk.len(), 3)
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (i, change) in chunk.iter().enumerate() {
                query = query
                    .bind(revision)
                    .bind((chunk_index * 500 + i) as i64)
                    .bind(json(change));
            }
            query.execute(&mut **tx).await?;
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
        let fence: Option<i64> = sqlx::query_scalar(
            "UPDATE rbac_replicas SET applied = GREATEST(applied, $2), seen_at_us = (EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::BIGINT
             WHERE id = $1 RETURNING fence",
        )
        .bind(id)
        .bind(applied)
        .fetch_optional(self.db.writer())
        .await?;
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
        .execute(self.db.writer())
        .await?;
        Ok(0)
    }

    /// Records that replica `id` has applied `revision`.
    pub async fn report_applied(&self, id: &str, revision: i64) -> Result<()> {
        sqlx::query("UPDATE rbac_replicas SET applied = $2 WHERE id = $1 AND applied < $2")
            .bind(id)
            .bind(revision)
            .execute(self.db.writer())
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
        Ok(sqlx::query_as(
            "SELECT id, applied, seen_at_us FROM rbac_replicas
             WHERE id <> $1 AND applied < $2
               AND seen_at_us > (EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::BIGINT - $3",
        )
        .bind(me)
        .bind(revision)
        .bind(lease.as_micros() as i64)
        .fetch_all(self.db.pool())
        .await?)
    }

    /// Requires replica `id` to reach `revision` before it answers again;
    /// returns the database's clock when the fence was set.
    pub async fn fence(&self, id: &str, revision: i64) -> Result<i64> {
        let set_at: Option<i64> = sqlx::query_scalar(
            "UPDATE rbac_replicas SET fence = GREATEST(fence, $2) WHERE id = $1
             RETURNING (EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::BIGINT",
        )
        .bind(id)
        .bind(revision)
        .fetch_optional(self.db.writer())
        .await?;
        Ok(set_at.unwrap_or(0))
    }

    /// When replica `id` last heartbeated (database clock), if registered.
    pub async fn replica_seen(&self, id: &str) -> Result<Option<i64>> {
        Ok(
            sqlx::query_scalar("SELECT seen_at_us FROM rbac_replicas WHERE id = $1")
                .bind(id)
                .fetch_optional(self.db.pool())
                .await?,
        )
    }

    /// Forgets replicas not seen for `age`.
    pub async fn forget_replicas(&self, age: std::time::Duration) -> Result<u64> {
        Ok(sqlx::query(
            "DELETE FROM rbac_replicas WHERE seen_at_us < (EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::BIGINT - $1",
        )
        .bind(age.as_micros() as i64)
        .execute(self.db.writer())
        .await?
        .rows_affected())
    }

    /// The newest committed revision.
    pub async fn head(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT value FROM rbac_revision WHERE id = 1")
                .fetch_one(self.db.pool())
                .await?,
        )
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
        Ok(
            sqlx::query_scalar("SELECT value FROM rbac_revision WHERE id = 2")
                .fetch_one(self.db.pool())
                .await?,
        )
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
        let texts: Vec<JsonText> = sqlx::query_scalar(
            "SELECT change FROM rbac_changes WHERE revision = $1 ORDER BY position",
        )
        .bind(revision)
        .fetch_all(self.db.pool())
        .await?;
        Ok(texts
            .into_iter()
            .map(Change::try_from)
            .collect::<std::result::Result<_, sqlx::Error>>()?)
    }

    /// Changes after `revision`, in order, at most `limit` rows.
    pub async fn changes_after(&self, revision: i64, limit: i64) -> Result<Vec<(i64, Change)>> {
        let rows: Vec<LoggedChange> = sqlx::query_as(
            "SELECT revision, change FROM rbac_changes WHERE revision > $1
             ORDER BY revision, position LIMIT $2",
        )
        .bind(revision)
        .bind(limit)
        .fetch_all(self.db.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| (row.revision, row.change))
            .collect())
    }

    /// Everything the index needs, and the revision it reflects, read in one
    /// transaction (a consistent snapshot).
    pub async fn snapshot(&self) -> Result<(i64, Vec<Change>)> {
        let mut tx = self.db.pool().begin().await?;
        let head: i64 = sqlx::query_scalar("SELECT value FROM rbac_revision WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?;
        let mut changes = Vec::new();
        // Types first: nodes of registered types need them.
        for definition in sqlx::query_scalar::<_, JsonText>(
            "SELECT definition FROM rbac_resource_types ORDER BY created_at_us, name",
        )
        .fetch_all(&mut *tx)
        .await?
        {
            changes.push(Change::RegisterType {
                definition: definition.parse()?,
            });
        }
        for node in sqlx::query_as::<_, SnapshotNode>(
            "SELECT object_type, id, parent_id, inherit, live, projects_granted_only FROM rbac_nodes
             ORDER BY object_type, id",
        )
        .fetch_all(&mut *tx)
        .await?
        {
            changes.push(Change::Node {
                object_type: node.object_type.clone(),
                id: node.id.clone(),
                parent: node.parent_id,
                inherit: node.inherit,
            });
            if node.projects_granted_only {
                changes.push(Change::ProjectVisibility {
                    organization: node.id.clone(),
                    granted_only: true,
                });
            }
            if !node.live {
                changes.push(Change::Live {
                    object_type: node.object_type,
                    id: node.id,
                    live: node.live,
                });
            }
        }
        for user in sqlx::query_scalar::<_, String>(
            "SELECT user_id FROM rbac_inactive_users ORDER BY user_id",
        )
        .fetch_all(&mut *tx)
        .await?
        {
            changes.push(Change::UserActive {
                user,
                active: false,
            });
        }
        let now = tenantry_kit::db::now_micros();
        for (id, until_us) in sqlx::query_as::<_, (String, i64)>(
            "SELECT session_id, until_us FROM rbac_ended_sessions WHERE until_us > $1
             ORDER BY session_id",
        )
        .bind(now)
        .fetch_all(&mut *tx)
        .await?
        {
            changes.push(Change::SessionEnded {
                id,
                at_us: now,
                until_us,
            });
        }
        for key in sqlx::query_as::<_, ApiKeyRow>(
            "SELECT id, organization_id, owner_id, scope_type, scope_id, permissions
             FROM rbac_api_keys ORDER BY id",
        )
        .fetch_all(&mut *tx)
        .await?
        {
            changes.push(Change::ApiKey {
                id: key.id,
                organization: key.organization_id,
                owner: key.owner_id,
                scope: key.scope,
                permissions: key.permissions,
            });
        }
        for role in
            sqlx::query_as::<_, RoleRow>(concat!("SELECT ", role_columns!(), " FROM rbac_roles"))
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
        for m in sqlx::query_as::<_, TeamMemberRow>(concat!(
            "SELECT ",
            team_member_columns!(),
            " FROM rbac_team_members"
        ))
        .fetch_all(&mut *tx)
        .await?
        {
            changes.push(Change::TeamMember {
                team: m.team_id,
                user: m.user_id,
                lead: Some(m.lead),
            });
        }
        for g in sqlx::query_as::<_, GrantRow>(concat!(
            "SELECT ",
            grant_columns!(),
            " FROM rbac_project_grants"
        ))
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
