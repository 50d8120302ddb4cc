//! The rbac tables: state rows, and the change log the index follows.

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use tenantry_kit::db::Database;
use tenantry_kit::error::{Result, db_error};

use crate::engine::{AccessLevel, Change, GrantSubject, KeyScope};

pub type Tx = Transaction<'static, Any>;

/// A membership row.
#[derive(Debug, Clone, PartialEq)]
pub struct MembershipRow {
    pub organization_id: String,
    pub user_id: String,
    pub roles: Vec<String>,
    pub invitation_id: Option<String>,
    pub created_at_us: i64,
    pub updated_at_us: i64,
    pub version: i64,
}

const MEMBERSHIP_COLUMNS: &str =
    "organization_id, user_id, roles, invitation_id, created_at_us, updated_at_us, version";

fn decode<T: serde::de::DeserializeOwned>(text: &str) -> std::result::Result<T, sqlx::Error> {
    serde_json::from_str(text).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

fn membership_from_row(row: &AnyRow) -> std::result::Result<MembershipRow, sqlx::Error> {
    Ok(MembershipRow {
        organization_id: row.try_get(0)?,
        user_id: row.try_get(1)?,
        roles: decode(&row.try_get::<String, _>(2)?)?,
        invitation_id: row.try_get(3)?,
        created_at_us: row.try_get(4)?,
        updated_at_us: row.try_get(5)?,
        version: row.try_get(6)?,
    })
}

/// A custom role row.
#[derive(Debug, Clone, PartialEq)]
pub struct RoleRow {
    pub id: String,
    pub organization_id: String,
    pub display_name: String,
    pub description: String,
    pub permissions: Vec<String>,
    pub created_at_us: i64,
    pub updated_at_us: i64,
    pub version: i64,
}

impl RoleRow {
    /// The role's resource name, as memberships name it.
    pub fn name(&self) -> String {
        format!("organizations/{}/roles/{}", self.organization_id, self.id)
    }
}

const ROLE_COLUMNS: &str = "id, organization_id, display_name, description, permissions, \
    created_at_us, updated_at_us, version";

fn role_from_row(row: &AnyRow) -> std::result::Result<RoleRow, sqlx::Error> {
    Ok(RoleRow {
        id: row.try_get(0)?,
        organization_id: row.try_get(1)?,
        display_name: row.try_get(2)?,
        description: row.try_get(3)?,
        permissions: decode(&row.try_get::<String, _>(4)?)?,
        created_at_us: row.try_get(5)?,
        updated_at_us: row.try_get(6)?,
        version: row.try_get(7)?,
    })
}

/// A team member row.
#[derive(Debug, Clone, PartialEq)]
pub struct TeamMemberRow {
    pub team_id: String,
    pub organization_id: String,
    pub user_id: String,
    pub lead: bool,
    pub created_at_us: i64,
    pub updated_at_us: i64,
    pub version: i64,
}

const TEAM_MEMBER_COLUMNS: &str =
    "team_id, organization_id, user_id, lead, created_at_us, updated_at_us, version";

fn team_member_from_row(row: &AnyRow) -> std::result::Result<TeamMemberRow, sqlx::Error> {
    Ok(TeamMemberRow {
        team_id: row.try_get(0)?,
        organization_id: row.try_get(1)?,
        user_id: row.try_get(2)?,
        lead: row.try_get::<i64, _>(3)? != 0,
        created_at_us: row.try_get(4)?,
        updated_at_us: row.try_get(5)?,
        version: row.try_get(6)?,
    })
}

/// A project grant row.
#[derive(Debug, Clone, PartialEq)]
pub struct GrantRow {
    pub id: String,
    pub organization_id: String,
    pub project_id: String,
    pub subject: GrantSubject,
    pub level: AccessLevel,
    pub created_at_us: i64,
    pub updated_at_us: i64,
    pub version: i64,
}

const GRANT_COLUMNS: &str = "id, organization_id, project_id, subject_type, subject_id, level, \
    created_at_us, updated_at_us, version";

pub fn level_name(level: AccessLevel) -> &'static str {
    match level {
        AccessLevel::Viewer => "viewer",
        AccessLevel::Contributor => "contributor",
        AccessLevel::Admin => "admin",
    }
}

fn grant_from_row(row: &AnyRow) -> std::result::Result<GrantRow, sqlx::Error> {
    let subject_type: String = row.try_get(3)?;
    let subject_id: String = row.try_get(4)?;
    let subject = match subject_type.as_str() {
        "user" => GrantSubject::User(subject_id),
        "team" => GrantSubject::Team(subject_id),
        _ => GrantSubject::Role(subject_id),
    };
    let level = match row.try_get::<String, _>(5)?.as_str() {
        "viewer" => AccessLevel::Viewer,
        "contributor" => AccessLevel::Contributor,
        _ => AccessLevel::Admin,
    };
    Ok(GrantRow {
        id: row.try_get(0)?,
        organization_id: row.try_get(1)?,
        project_id: row.try_get(2)?,
        subject,
        level,
        created_at_us: row.try_get(6)?,
        updated_at_us: row.try_get(7)?,
        version: row.try_get(8)?,
    })
}

fn subject_parts(subject: &GrantSubject) -> (&'static str, &str) {
    match subject {
        GrantSubject::User(id) => ("user", id),
        GrantSubject::Team(id) => ("team", id),
        GrantSubject::Role(name) => ("role", name),
    }
}

/// A mirrored node of the organization tree.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeRow {
    pub object_type: String,
    pub id: String,
    pub parent_id: Option<String>,
    /// The organization the node is (organizations) or belongs to.
    pub organization_id: String,
    pub inherit: bool,
    pub live: bool,
}

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

    pub async fn begin(&self) -> Result<Tx> {
        self.db.begin().await
    }

    // The change log.

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
        let sql = format!("SELECT {MEMBERSHIP_COLUMNS} FROM rbac_memberships");
        for m in sqlx::query(sqlx::AssertSqlSafe(sql))
            .try_map(|row: AnyRow| membership_from_row(&row))
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
        sqlx::query("SELECT resource_id FROM rbac_requests WHERE caller = $1 AND method = $2 AND request_id = $3")
            .bind(caller)
            .bind(method)
            .bind(request_id)
            .try_map(|row: AnyRow| row.try_get(0))
            .fetch_optional(self.db.pool())
            .await
            .map_err(db_error)
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

    // The tree mirror.

    /// Mirrors a node, with its tree's root: an organization's parent's, or
    /// anything else's organization's (a root organization is its own).
    pub async fn upsert_node(&self, tx: &mut Tx, node: &NodeRow) -> Result<()> {
        let above = match node.object_type.as_str() {
            "organization" => node.parent_id.as_deref(),
            _ => Some(node.organization_id.as_str()),
        };
        sqlx::query(
            "INSERT INTO rbac_nodes (object_type, id, parent_id, organization_id, inherit, live, root_id)
             VALUES ($1, $2, $3, $4, $5, $6, COALESCE((SELECT o.root_id FROM rbac_nodes o
                 WHERE o.object_type = 'organization' AND o.id = $7), $2))
             ON CONFLICT (object_type, id) DO UPDATE SET parent_id = $3, organization_id = $4,
                inherit = $5, live = $6",
        )
        .bind(&node.object_type)
        .bind(&node.id)
        .bind(&node.parent_id)
        .bind(&node.organization_id)
        .bind(i64::from(node.inherit))
        .bind(i64::from(node.live))
        .bind(above)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Sets whether an organization's members see only the projects
    /// granted to them; whether that changed anything.
    pub async fn set_projects_granted_only(
        &self,
        tx: &mut Tx,
        organization: &str,
        granted_only: bool,
    ) -> Result<bool> {
        let flag = i64::from(granted_only);
        let done = sqlx::query(
            "UPDATE rbac_nodes SET projects_granted_only = $2
             WHERE object_type = 'organization' AND id = $1 AND projects_granted_only <> $2",
        )
        .bind(organization)
        .bind(flag)
        .execute(&mut **tx)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn node(&self, tx: &mut Tx, object_type: &str, id: &str) -> Result<Option<NodeRow>> {
        sqlx::query(
            "SELECT object_type, id, parent_id, organization_id, inherit, live FROM rbac_nodes
             WHERE object_type = $1 AND id = $2",
        )
        .bind(object_type)
        .bind(id)
        .try_map(|row: AnyRow| {
            Ok(NodeRow {
                object_type: row.try_get(0)?,
                id: row.try_get(1)?,
                parent_id: row.try_get(2)?,
                organization_id: row.try_get(3)?,
                inherit: row.try_get::<i64, _>(4)? != 0,
                live: row.try_get::<i64, _>(5)? != 0,
            })
        })
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_error)
    }

    /// Parent links matching a filter, as (type, id, parent id): by the
    /// object's type and optional id, and/or by the parent's id.
    /// `organizations`, when given, keeps only links of objects that
    /// belong to one of them (an empty list matches nothing); `after`, a
    /// (type, id) from a previous page, starts after it.
    pub async fn parent_links(
        &self,
        object_type: &str,
        object_id: &str,
        parent_id: &str,
        organizations: Option<&[String]>,
        after: Option<(&str, &str)>,
        limit: i64,
    ) -> Result<Vec<(String, String, String)>> {
        let scope = match organizations {
            None => String::new(),
            Some([]) => return Ok(Vec::new()),
            Some(ids) => format!(
                " AND organization_id IN ({})",
                (0..ids.len())
                    .map(|i| format!("${}", i + 6))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let (after_type, after_id) = after.unwrap_or_default();
        let sql = format!(
            "SELECT object_type, id, parent_id FROM rbac_nodes
             WHERE parent_id IS NOT NULL AND ($1 = '' OR object_type = $1) AND ($2 = '' OR id = $2)
               AND ($3 = '' OR parent_id = $3)
               AND (object_type > $4 OR (object_type = $4 AND id > $5)){scope}
             ORDER BY object_type, id LIMIT {limit}"
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(object_type)
            .bind(object_id)
            .bind(parent_id)
            .bind(after_type)
            .bind(after_id);
        for id in organizations.unwrap_or_default() {
            query = query.bind(id.as_str());
        }
        query
            .try_map(|row: AnyRow| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
            .fetch_all(self.db.pool())
            .await
            .map_err(db_error)
    }

    /// How many custom roles, in any organization, list a permission of
    /// `object_type` (permissions are `<type>.<action>`, stored as a JSON
    /// array of strings).
    pub async fn roles_naming_type(&self, object_type: &str) -> Result<i64> {
        sqlx::query("SELECT COUNT(*) FROM rbac_roles WHERE permissions LIKE $1")
            .bind(format!("%\"{object_type}.%"))
            .fetch_one(self.db.pool())
            .await?
            .try_get(0)
            .map_err(db_error)
    }

    /// How many objects of a type exist.
    pub async fn count_nodes(&self, object_type: &str) -> Result<i64> {
        sqlx::query("SELECT COUNT(*) FROM rbac_nodes WHERE object_type = $1")
            .bind(object_type)
            .fetch_one(self.db.pool())
            .await?
            .try_get(0)
            .map_err(db_error)
    }

    pub async fn upsert_type(
        &self,
        tx: &mut Tx,
        name: &str,
        definition: &str,
        registered_by: &str,
        now_us: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO rbac_resource_types (name, definition, registered_by, created_at_us, updated_at_us, version)
             VALUES ($1, $2, $3, $4, $4, 1)
             ON CONFLICT (name) DO UPDATE SET definition = $2, updated_at_us = $4,
                version = rbac_resource_types.version + 1",
        )
        .bind(name)
        .bind(definition)
        .bind(registered_by)
        .bind(now_us)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// A registered type: (definition JSON, registered by, created, updated,
    /// version).
    pub async fn resource_type(
        &self,
        name: &str,
    ) -> Result<Option<(String, String, i64, i64, i64)>> {
        sqlx::query(
            "SELECT definition, registered_by, created_at_us, updated_at_us, version
             FROM rbac_resource_types WHERE name = $1",
        )
        .bind(name)
        .try_map(|row: AnyRow| {
            Ok((
                row.try_get(0)?,
                row.try_get(1)?,
                row.try_get(2)?,
                row.try_get(3)?,
                row.try_get(4)?,
            ))
        })
        .fetch_optional(self.db.pool())
        .await
        .map_err(db_error)
    }

    pub async fn delete_type(&self, tx: &mut Tx, name: &str) -> Result<()> {
        sqlx::query("DELETE FROM rbac_resource_types WHERE name = $1")
            .bind(name)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    pub async fn delete_node(&self, tx: &mut Tx, object_type: &str, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM rbac_nodes WHERE object_type = $1 AND id = $2")
            .bind(object_type)
            .bind(id)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    // Memberships.

    pub async fn membership(
        &self,
        organization_id: &str,
        user_id: &str,
    ) -> Result<Option<MembershipRow>> {
        let sql = format!(
            "SELECT {MEMBERSHIP_COLUMNS} FROM rbac_memberships
             WHERE organization_id = $1 AND user_id = $2"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(organization_id)
            .bind(user_id)
            .try_map(|row: AnyRow| membership_from_row(&row))
            .fetch_optional(self.db.pool())
            .await
            .map_err(db_error)
    }

    pub async fn membership_in(
        &self,
        tx: &mut Tx,
        organization_id: &str,
        user_id: &str,
    ) -> Result<Option<MembershipRow>> {
        let sql = format!(
            "SELECT {MEMBERSHIP_COLUMNS} FROM rbac_memberships
             WHERE organization_id = $1 AND user_id = $2"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(organization_id)
            .bind(user_id)
            .try_map(|row: AnyRow| membership_from_row(&row))
            .fetch_optional(&mut **tx)
            .await
            .map_err(db_error)
    }

    /// Members of an organization after `after_user`, by user id.
    pub async fn memberships(
        &self,
        organization_id: &str,
        after_user: &str,
        limit: i64,
    ) -> Result<Vec<MembershipRow>> {
        let sql = format!(
            "SELECT {MEMBERSHIP_COLUMNS} FROM rbac_memberships
             WHERE organization_id = $1 AND user_id > $2 ORDER BY user_id LIMIT {limit}"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(organization_id)
            .bind(after_user)
            .try_map(|row: AnyRow| membership_from_row(&row))
            .fetch_all(self.db.pool())
            .await
            .map_err(db_error)
    }

    /// The organizations where a user is a member or holds a project grant.
    pub async fn user_presence(&self, user_id: &str) -> Result<Vec<String>> {
        sqlx::query_scalar(
            "SELECT organization_id FROM rbac_memberships WHERE user_id = $1
             UNION SELECT organization_id FROM rbac_project_grants
             WHERE subject_type = 'user' AND subject_id = $1",
        )
        .bind(user_id)
        .fetch_all(self.db.pool())
        .await
        .map_err(db_error)
    }

    /// A user's memberships after `after_org`, by organization id.
    pub async fn user_memberships(
        &self,
        user_id: &str,
        after_org: &str,
        limit: i64,
    ) -> Result<Vec<MembershipRow>> {
        let sql = format!(
            "SELECT {MEMBERSHIP_COLUMNS} FROM rbac_memberships
             WHERE user_id = $1 AND organization_id > $2 ORDER BY organization_id LIMIT {limit}"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(user_id)
            .bind(after_org)
            .try_map(|row: AnyRow| membership_from_row(&row))
            .fetch_all(self.db.pool())
            .await
            .map_err(db_error)
    }

    pub async fn upsert_membership(&self, tx: &mut Tx, m: &MembershipRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO rbac_memberships (organization_id, user_id, roles, invitation_id,
                created_at_us, updated_at_us, version)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (organization_id, user_id) DO UPDATE SET roles = $3,
                updated_at_us = $6, version = $7",
        )
        .bind(&m.organization_id)
        .bind(&m.user_id)
        .bind(serde_json::to_string(&m.roles).expect("strings serialize"))
        .bind(&m.invitation_id)
        .bind(m.created_at_us)
        .bind(m.updated_at_us)
        .bind(m.version)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    pub async fn delete_membership(
        &self,
        tx: &mut Tx,
        organization_id: &str,
        user_id: &str,
    ) -> Result<bool> {
        let done =
            sqlx::query("DELETE FROM rbac_memberships WHERE organization_id = $1 AND user_id = $2")
                .bind(organization_id)
                .bind(user_id)
                .execute(&mut **tx)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The user ids of an organization's members, inside a transaction.
    pub async fn memberships_in(&self, tx: &mut Tx, organization_id: &str) -> Result<Vec<String>> {
        sqlx::query("SELECT user_id FROM rbac_memberships WHERE organization_id = $1")
            .bind(organization_id)
            .try_map(|row: AnyRow| row.try_get(0))
            .fetch_all(&mut **tx)
            .await
            .map_err(db_error)
    }

    /// An organization's custom roles, inside a transaction.
    pub async fn roles_in(&self, tx: &mut Tx, organization_id: &str) -> Result<Vec<RoleRow>> {
        let sql = format!("SELECT {ROLE_COLUMNS} FROM rbac_roles WHERE organization_id = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(organization_id)
            .try_map(|row: AnyRow| role_from_row(&row))
            .fetch_all(&mut **tx)
            .await
            .map_err(db_error)
    }

    /// How many members of an organization hold a role.
    pub async fn role_holders(
        &self,
        tx: &mut Tx,
        organization_id: &str,
        role: &str,
    ) -> Result<Vec<MembershipRow>> {
        let sql =
            format!("SELECT {MEMBERSHIP_COLUMNS} FROM rbac_memberships WHERE organization_id = $1");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(organization_id)
            .try_map(|row: AnyRow| membership_from_row(&row))
            .fetch_all(&mut **tx)
            .await?;
        Ok(rows
            .into_iter()
            .filter(|m| m.roles.iter().any(|r| r == role))
            .collect())
    }

    // Roles.

    pub async fn role(&self, organization_id: &str, id: &str) -> Result<Option<RoleRow>> {
        let sql =
            format!("SELECT {ROLE_COLUMNS} FROM rbac_roles WHERE organization_id = $1 AND id = $2");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(organization_id)
            .bind(id)
            .try_map(|row: AnyRow| role_from_row(&row))
            .fetch_optional(self.db.pool())
            .await
            .map_err(db_error)
    }

    pub async fn roles(&self, organization_id: &str) -> Result<Vec<RoleRow>> {
        let sql =
            format!("SELECT {ROLE_COLUMNS} FROM rbac_roles WHERE organization_id = $1 ORDER BY id");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(organization_id)
            .try_map(|row: AnyRow| role_from_row(&row))
            .fetch_all(self.db.pool())
            .await
            .map_err(db_error)
    }

    pub async fn upsert_role(&self, tx: &mut Tx, role: &RoleRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO rbac_roles (id, organization_id, display_name, description, permissions,
                created_at_us, updated_at_us, version)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (id) DO UPDATE SET display_name = $3, description = $4, permissions = $5,
                updated_at_us = $7, version = $8",
        )
        .bind(&role.id)
        .bind(&role.organization_id)
        .bind(&role.display_name)
        .bind(&role.description)
        .bind(serde_json::to_string(&role.permissions).expect("strings serialize"))
        .bind(role.created_at_us)
        .bind(role.updated_at_us)
        .bind(role.version)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    pub async fn delete_role(&self, tx: &mut Tx, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM rbac_roles WHERE id = $1")
            .bind(id)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    // Team members.

    pub async fn team_member(&self, team_id: &str, user_id: &str) -> Result<Option<TeamMemberRow>> {
        let sql = format!(
            "SELECT {TEAM_MEMBER_COLUMNS} FROM rbac_team_members WHERE team_id = $1 AND user_id = $2"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(team_id)
            .bind(user_id)
            .try_map(|row: AnyRow| team_member_from_row(&row))
            .fetch_optional(self.db.pool())
            .await
            .map_err(db_error)
    }

    pub async fn team_members(
        &self,
        team_id: &str,
        after_user: &str,
        limit: i64,
    ) -> Result<Vec<TeamMemberRow>> {
        let sql = format!(
            "SELECT {TEAM_MEMBER_COLUMNS} FROM rbac_team_members WHERE team_id = $1 AND user_id > $2
             ORDER BY user_id LIMIT {limit}"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(team_id)
            .bind(after_user)
            .try_map(|row: AnyRow| team_member_from_row(&row))
            .fetch_all(self.db.pool())
            .await
            .map_err(db_error)
    }

    /// The teams of an organization a user is in.
    pub async fn user_teams(
        &self,
        tx: &mut Tx,
        organization_id: &str,
        user_id: &str,
    ) -> Result<Vec<String>> {
        sqlx::query(
            "SELECT team_id FROM rbac_team_members WHERE organization_id = $1 AND user_id = $2",
        )
        .bind(organization_id)
        .bind(user_id)
        .try_map(|row: AnyRow| row.try_get(0))
        .fetch_all(&mut **tx)
        .await
        .map_err(db_error)
    }

    pub async fn upsert_team_member(&self, tx: &mut Tx, m: &TeamMemberRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO rbac_team_members (team_id, organization_id, user_id, lead, created_at_us,
                updated_at_us, version)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (team_id, user_id) DO UPDATE SET lead = $4, updated_at_us = $6, version = $7",
        )
        .bind(&m.team_id)
        .bind(&m.organization_id)
        .bind(&m.user_id)
        .bind(i64::from(m.lead))
        .bind(m.created_at_us)
        .bind(m.updated_at_us)
        .bind(m.version)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    pub async fn delete_team_member(
        &self,
        tx: &mut Tx,
        team_id: &str,
        user_id: &str,
    ) -> Result<bool> {
        let done = sqlx::query("DELETE FROM rbac_team_members WHERE team_id = $1 AND user_id = $2")
            .bind(team_id)
            .bind(user_id)
            .execute(&mut **tx)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    // Project grants.

    pub async fn grant(&self, project_id: &str, id: &str) -> Result<Option<GrantRow>> {
        let sql = format!(
            "SELECT {GRANT_COLUMNS} FROM rbac_project_grants WHERE project_id = $1 AND id = $2"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(project_id)
            .bind(id)
            .try_map(|row: AnyRow| grant_from_row(&row))
            .fetch_optional(self.db.pool())
            .await
            .map_err(db_error)
    }

    pub async fn grants(
        &self,
        project_id: &str,
        after_id: &str,
        limit: i64,
    ) -> Result<Vec<GrantRow>> {
        let sql = format!(
            "SELECT {GRANT_COLUMNS} FROM rbac_project_grants WHERE project_id = $1 AND id > $2
             ORDER BY id LIMIT {limit}"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(project_id)
            .bind(after_id)
            .try_map(|row: AnyRow| grant_from_row(&row))
            .fetch_all(self.db.pool())
            .await
            .map_err(db_error)
    }

    /// Grants naming a subject (a user, team or role), in any project.
    pub async fn grants_to(&self, tx: &mut Tx, subject: &GrantSubject) -> Result<Vec<GrantRow>> {
        let (kind, id) = subject_parts(subject);
        let sql = format!(
            "SELECT {GRANT_COLUMNS} FROM rbac_project_grants WHERE subject_type = $1 AND subject_id = $2"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(kind)
            .bind(id)
            .try_map(|row: AnyRow| grant_from_row(&row))
            .fetch_all(&mut **tx)
            .await
            .map_err(db_error)
    }

    pub async fn insert_grant(&self, tx: &mut Tx, g: &GrantRow) -> Result<()> {
        let (kind, id) = subject_parts(&g.subject);
        sqlx::query(
            "INSERT INTO rbac_project_grants (id, organization_id, project_id, subject_type,
                subject_id, level, created_at_us, updated_at_us, version)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&g.id)
        .bind(&g.organization_id)
        .bind(&g.project_id)
        .bind(kind)
        .bind(id)
        .bind(level_name(g.level))
        .bind(g.created_at_us)
        .bind(g.updated_at_us)
        .bind(g.version)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    pub async fn update_grant_level(&self, tx: &mut Tx, g: &GrantRow) -> Result<()> {
        sqlx::query("UPDATE rbac_project_grants SET level = $2, updated_at_us = $3, version = $4 WHERE id = $1")
            .bind(&g.id)
            .bind(level_name(g.level))
            .bind(g.updated_at_us)
            .bind(g.version)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    pub async fn delete_grant(&self, tx: &mut Tx, id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM rbac_project_grants WHERE id = $1")
            .bind(id)
            .execute(&mut **tx)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Every grant in an organization.
    pub async fn grants_in_organization(
        &self,
        tx: &mut Tx,
        organization_id: &str,
    ) -> Result<Vec<GrantRow>> {
        let sql = format!(
            "SELECT {GRANT_COLUMNS} FROM rbac_project_grants WHERE organization_id = $1 ORDER BY id"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(organization_id)
            .try_map(|row: AnyRow| grant_from_row(&row))
            .fetch_all(&mut **tx)
            .await
            .map_err(db_error)
    }

    /// Grants of one project, to remove them with it.
    pub async fn project_grants_in(&self, tx: &mut Tx, project_id: &str) -> Result<Vec<GrantRow>> {
        let sql = format!("SELECT {GRANT_COLUMNS} FROM rbac_project_grants WHERE project_id = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(project_id)
            .try_map(|row: AnyRow| grant_from_row(&row))
            .fetch_all(&mut **tx)
            .await
            .map_err(db_error)
    }

    /// Members of one team, to remove them with it.
    pub async fn team_members_in(&self, tx: &mut Tx, team_id: &str) -> Result<Vec<TeamMemberRow>> {
        let sql = format!("SELECT {TEAM_MEMBER_COLUMNS} FROM rbac_team_members WHERE team_id = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(team_id)
            .try_map(|row: AnyRow| team_member_from_row(&row))
            .fetch_all(&mut **tx)
            .await
            .map_err(db_error)
    }

    // Users, as identity's events describe them.

    pub async fn upsert_user(&self, tx: &mut Tx, user: &UserRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO rbac_users (id, email, display_name, email_verified, deleted)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (id) DO UPDATE SET email = $2, display_name = $3, email_verified = $4,
                deleted = $5",
        )
        .bind(&user.id)
        .bind(&user.email)
        .bind(&user.display_name)
        .bind(i64::from(user.email_verified))
        .bind(i64::from(user.deleted))
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Records an API key identity announced (again: the same key twice is
    /// one row).
    pub async fn upsert_api_key(&self, tx: &mut Tx, key: &Change) -> Result<()> {
        let Change::ApiKey {
            id,
            organization,
            owner,
            scope,
            permissions,
        } = key
        else {
            return Ok(());
        };
        let (scope_type, scope_id) = match scope {
            KeyScope::Organization(id) => ("organization", id),
            KeyScope::Team(id) => ("team", id),
            KeyScope::Project(id) => ("project", id),
        };
        sqlx::query(
            "INSERT INTO rbac_api_keys (id, organization_id, owner_id, scope_type, scope_id, permissions)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (id) DO UPDATE SET organization_id = $2, owner_id = $3, scope_type = $4,
                 scope_id = $5, permissions = $6",
        )
        .bind(id)
        .bind(organization)
        .bind(owner)
        .bind(scope_type)
        .bind(scope_id)
        .bind(serde_json::to_string(permissions).expect("strings serialize"))
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Records an ended session (and forgets those whose tokens have all
    /// expired).
    pub async fn end_session(
        &self,
        tx: &mut Tx,
        id: &str,
        at_us: i64,
        until_us: i64,
    ) -> Result<()> {
        sqlx::query("DELETE FROM rbac_ended_sessions WHERE until_us <= $1")
            .bind(at_us)
            .execute(&mut **tx)
            .await?;
        sqlx::query(
            "INSERT INTO rbac_ended_sessions (session_id, ended_at_us, until_us) VALUES ($1, $2, $3)
             ON CONFLICT (session_id) DO NOTHING",
        )
        .bind(id)
        .bind(at_us)
        .bind(until_us)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Forgets a revoked API key.
    pub async fn delete_api_key(&self, tx: &mut Tx, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM rbac_api_keys WHERE id = $1")
            .bind(id)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Sets one reason for a user to hold nothing (`disabled` or
    /// `deleted`); returns whether the user is active afterwards.
    pub async fn set_inactive(
        &self,
        tx: &mut Tx,
        user_id: &str,
        reason: InactiveReason,
        on: bool,
    ) -> Result<bool> {
        let current =
            sqlx::query("SELECT disabled, deleted FROM rbac_inactive_users WHERE user_id = $1")
                .bind(user_id)
                .fetch_optional(&mut **tx)
                .await?
                .map(|row| -> std::result::Result<(bool, bool), sqlx::Error> {
                    Ok((
                        row.try_get::<i64, _>(0)? != 0,
                        row.try_get::<i64, _>(1)? != 0,
                    ))
                })
                .transpose()?
                .unwrap_or((false, false));
        let (disabled, deleted) = match reason {
            InactiveReason::Disabled => (on, current.1),
            InactiveReason::Deleted => (current.0, on),
        };
        if disabled || deleted {
            sqlx::query(
                "INSERT INTO rbac_inactive_users (user_id, disabled, deleted) VALUES ($1, $2, $3)
                 ON CONFLICT (user_id) DO UPDATE SET disabled = $2, deleted = $3",
            )
            .bind(user_id)
            .bind(i64::from(disabled))
            .bind(i64::from(deleted))
            .execute(&mut **tx)
            .await?;
        } else {
            sqlx::query("DELETE FROM rbac_inactive_users WHERE user_id = $1")
                .bind(user_id)
                .execute(&mut **tx)
                .await?;
        }
        Ok(!(disabled || deleted))
    }

    pub async fn user(&self, id: &str) -> Result<Option<UserRow>> {
        user_row(self.db.pool(), id).await
    }

    /// As [`user`](Self::user), inside `tx`: on SQLite a transaction holds
    /// the write lock, and asking the pool for another connection meanwhile
    /// can wait on writers that wait for this one (a stall until someone's
    /// timeout, seen as 2 s per concurrent email verification).
    pub async fn user_in(&self, tx: &mut Tx, id: &str) -> Result<Option<UserRow>> {
        user_row(&mut **tx, id).await
    }
}

impl Store {
    /// Whether a member of `organization` has the account with `email`.
    pub async fn member_with_email(&self, organization: &str, email: &str) -> Result<bool> {
        Ok(sqlx::query(
            "SELECT 1 FROM rbac_memberships m JOIN rbac_users u ON u.id = m.user_id
             WHERE m.organization_id = $1 AND lower(u.email) = $2",
        )
        .bind(organization)
        .bind(email)
        .fetch_optional(self.db.pool())
        .await?
        .is_some())
    }
}

async fn user_row<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(
    e: E,
    id: &str,
) -> Result<Option<UserRow>> {
    sqlx::query(
        "SELECT id, email, display_name, email_verified, deleted FROM rbac_users WHERE id = $1",
    )
    .bind(id)
    .try_map(|row: AnyRow| {
        Ok(UserRow {
            id: row.try_get(0)?,
            email: row.try_get(1)?,
            display_name: row.try_get(2)?,
            email_verified: row.try_get::<i64, _>(3)? != 0,
            deleted: row.try_get::<i64, _>(4)? != 0,
        })
    })
    .fetch_optional(e)
    .await
    .map_err(db_error)
}

/// Why a user holds nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InactiveReason {
    Disabled,
    Deleted,
}

/// A user as rbac knows them (from identity's events).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UserRow {
    pub id: String,
    pub email: String,
    pub display_name: String,
    pub email_verified: bool,
    pub deleted: bool,
}

/// A key's scope from its stored type and id.
fn key_scope(scope_type: &str, id: String) -> std::result::Result<KeyScope, sqlx::Error> {
    match scope_type {
        "organization" => Ok(KeyScope::Organization(id)),
        "team" => Ok(KeyScope::Team(id)),
        "project" => Ok(KeyScope::Project(id)),
        other => Err(sqlx::Error::Decode(
            format!("unknown api key scope `{other}`").into(),
        )),
    }
}
