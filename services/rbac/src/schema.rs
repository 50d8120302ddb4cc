//! The rbac service's tables, in both SQL dialects.
//!
//! Two kinds of tables: the **state** (memberships, roles, team members,
//! project grants, and the mirror of the organization tree the index
//! needs), and the **change log** (`rbac_changes`), the ordered stream of
//! [`Change`](crate::engine::Change)s every replica's index follows. Each
//! write transaction takes the next revision from `rbac_revision` under its
//! row lock, so revisions commit in order and a follower never skips one.
//! Row 2 of `rbac_revision` is the compaction floor: every revision up to it
//! has left the log.

use tenantry_kit::db::Migration;

const V1: &str = "
CREATE TABLE rbac_revision (
    id BIGINT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO rbac_revision (id, value) VALUES (1, 0);
INSERT INTO rbac_revision (id, value) VALUES (2, 0);
CREATE TABLE rbac_changes (
    revision BIGINT NOT NULL,
    position BIGINT NOT NULL,
    change TEXT NOT NULL,
    PRIMARY KEY (revision, position)
);
CREATE TABLE rbac_nodes (
    object_type TEXT NOT NULL,
    id TEXT NOT NULL,
    parent_id TEXT,
    organization_id TEXT NOT NULL,
    inherit BIGINT NOT NULL,
    live BIGINT NOT NULL,
    PRIMARY KEY (object_type, id)
);
CREATE TABLE rbac_memberships (
    organization_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    roles TEXT NOT NULL,
    invitation_id TEXT,
    created_at_us BIGINT NOT NULL,
    updated_at_us BIGINT NOT NULL,
    version BIGINT NOT NULL,
    PRIMARY KEY (organization_id, user_id)
);
CREATE INDEX rbac_memberships_user ON rbac_memberships (user_id, organization_id);
CREATE TABLE rbac_roles (
    id TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL,
    display_name TEXT NOT NULL,
    description TEXT NOT NULL,
    permissions TEXT NOT NULL,
    created_at_us BIGINT NOT NULL,
    updated_at_us BIGINT NOT NULL,
    version BIGINT NOT NULL
);
CREATE UNIQUE INDEX rbac_roles_name ON rbac_roles (organization_id, display_name);
CREATE TABLE rbac_team_members (
    team_id TEXT NOT NULL,
    organization_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    lead BIGINT NOT NULL,
    created_at_us BIGINT NOT NULL,
    updated_at_us BIGINT NOT NULL,
    version BIGINT NOT NULL,
    PRIMARY KEY (team_id, user_id)
);
CREATE TABLE rbac_project_grants (
    id TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL,
    project_id TEXT NOT NULL,
    subject_type TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    level TEXT NOT NULL,
    created_at_us BIGINT NOT NULL,
    updated_at_us BIGINT NOT NULL,
    version BIGINT NOT NULL
);
CREATE UNIQUE INDEX rbac_project_grants_subject ON rbac_project_grants (project_id, subject_type, subject_id);
CREATE TABLE rbac_users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL,
    display_name TEXT NOT NULL,
    email_verified BIGINT NOT NULL,
    deleted BIGINT NOT NULL
);
CREATE TABLE rbac_invitations (
    id TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL,
    organization_name TEXT NOT NULL,
    email TEXT NOT NULL,
    roles TEXT NOT NULL,
    teams TEXT NOT NULL,
    state TEXT NOT NULL,
    token_hash TEXT NOT NULL,
    inviter_id TEXT NOT NULL,
    expires_at_us BIGINT NOT NULL,
    lifetime_us BIGINT NOT NULL,
    send_count BIGINT NOT NULL,
    last_sent_at_us BIGINT NOT NULL,
    accepted_by TEXT,
    closed_at_us BIGINT,
    created_at_us BIGINT NOT NULL,
    updated_at_us BIGINT NOT NULL,
    version BIGINT NOT NULL
);
CREATE UNIQUE INDEX rbac_invitations_pending ON rbac_invitations (organization_id, email) WHERE state = 'pending';
CREATE UNIQUE INDEX rbac_invitations_token ON rbac_invitations (token_hash);
CREATE INDEX rbac_invitations_organization ON rbac_invitations (organization_id, id);
CREATE TABLE rbac_resource_types (
    name TEXT PRIMARY KEY,
    definition TEXT NOT NULL,
    registered_by TEXT NOT NULL,
    created_at_us BIGINT NOT NULL,
    updated_at_us BIGINT NOT NULL,
    version BIGINT NOT NULL
);
CREATE INDEX rbac_nodes_parent ON rbac_nodes (parent_id);
CREATE TABLE rbac_requests (
    caller TEXT NOT NULL,
    method TEXT NOT NULL,
    request_id TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    PRIMARY KEY (caller, method, request_id)
);
";

/// The migrations, oldest first.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "revision counter and change log, tree mirror, users, memberships, roles, team members, project grants, invitations",
        sqlite: V1,
        postgres: V1,
    },
    Migration {
        version: 2,
        description: "the inviter's display name on invitations",
        sqlite: V2,
        postgres: V2,
    },
    Migration {
        version: 3,
        description: "the replicas following the change log, for writes to wait for",
        sqlite: V3,
        postgres: V3,
    },
    Migration {
        version: 4,
        description: "users who hold nothing: disabled or deleted",
        sqlite: V4,
        postgres: V4,
    },
    Migration {
        version: 5,
        description: "api keys, checked against their owner's current access",
        sqlite: V5,
        postgres: V5,
    },
    Migration {
        version: 6,
        description: "ended sessions whose access tokens may still be presented",
        sqlite: V6,
        postgres: V6,
    },
    Migration {
        version: 7,
        description: "invitations to projects, and external invitations",
        sqlite: V7,
        postgres: V7,
    },
    Migration {
        version: 8,
        description: "organizations whose members see only the projects granted to them",
        sqlite: V8,
        postgres: V8,
    },
    Migration {
        version: 9,
        description: "each mirrored node's tree root, for row-level security",
        sqlite: V9,
        postgres: V9,
    },
    Migration {
        version: 10,
        description: "row-level security: each tenant table shows the trees in the request's scope",
        // SQLite has no row-level security; the queries' filters stand alone.
        sqlite: "SELECT 1;",
        postgres: V10_POSTGRES,
    },
];

/// The root of each node's tree: an organization's from its parent chain,
/// anything else's from its organization. New nodes take theirs when they
/// are mirrored (`Store::upsert_node`); trees never change roots (a move
/// stays inside its tree).
const V9: &str = "ALTER TABLE rbac_nodes ADD COLUMN root_id TEXT NOT NULL DEFAULT '';
WITH RECURSIVE up (id, root) AS (
    SELECT id, id FROM rbac_nodes WHERE object_type = 'organization' AND parent_id IS NULL
    UNION ALL
    SELECT n.id, up.root FROM rbac_nodes n JOIN up ON n.parent_id = up.id
    WHERE n.object_type = 'organization'
)
UPDATE rbac_nodes SET root_id = COALESCE((SELECT root FROM up WHERE up.id = rbac_nodes.id), id)
WHERE object_type = 'organization';
UPDATE rbac_nodes SET root_id = COALESCE((SELECT o.root_id FROM rbac_nodes o
    WHERE o.object_type = 'organization' AND o.id = rbac_nodes.organization_id), '')
WHERE object_type <> 'organization';
CREATE INDEX rbac_nodes_root ON rbac_nodes (root_id, object_type, id);";

/// The tenant policies (see `tenantry_kit::tenancy`): a node shows when its
/// tree's root is in scope; memberships, roles, team members, project
/// grants, invitations and API keys when their organization's node is in a
/// tree in scope (the subquery names the roots, so it reads them through
/// `rbac_nodes_root` rather than scanning every node).
/// Users, sessions, registered types and the change log belong to no
/// tenant. The system scope (`*`) is tested first.
const V10_POSTGRES: &str = "
ALTER TABLE rbac_nodes ENABLE ROW LEVEL SECURITY;
ALTER TABLE rbac_nodes FORCE ROW LEVEL SECURITY;
CREATE POLICY rbac_nodes_tenant ON rbac_nodes
    USING (current_setting('tenantry.scope', true) = '*'
           OR root_id = ANY (string_to_array(current_setting('tenantry.scope', true), ',')));
DO $$
DECLARE t TEXT;
BEGIN
    FOREACH t IN ARRAY ARRAY['rbac_memberships', 'rbac_roles', 'rbac_team_members',
                             'rbac_project_grants', 'rbac_invitations', 'rbac_api_keys'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format($p$CREATE POLICY %I ON %I
            USING (current_setting('tenantry.scope', true) = '*'
                   OR organization_id IN (SELECT id FROM rbac_nodes
                       WHERE root_id = ANY (string_to_array(current_setting('tenantry.scope', true), ','))
                         AND object_type = 'organization'))$p$,
            t || '_tenant', t);
    END LOOP;
END $$;
";

/// Organizations mirrored before project visibility existed keep every
/// project visible to their members, as the organization service's own
/// migration does.
const V8: &str =
    "ALTER TABLE rbac_nodes ADD COLUMN projects_granted_only BIGINT NOT NULL DEFAULT 0;";

/// The project grants an invitation gives (JSON `[[project, level], …]`),
/// and whether it makes the invitee an external user instead of a member.
const V7: &str = "ALTER TABLE rbac_invitations ADD COLUMN projects TEXT NOT NULL DEFAULT '[]';
ALTER TABLE rbac_invitations ADD COLUMN external BIGINT NOT NULL DEFAULT 0;";

/// Sessions that ended while access tokens issued for them may still be
/// presented (`until_us`: when the last expires); rows past it are
/// deleted as new ones arrive.
const V6: &str = "CREATE TABLE rbac_ended_sessions (
    session_id TEXT PRIMARY KEY,
    ended_at_us BIGINT NOT NULL,
    until_us BIGINT NOT NULL
);";

/// The live API keys identity announced: whose, where (`scope_type` is
/// organization, team or project), which permissions (a JSON array). A
/// revoked key's row is deleted.
const V5: &str = "CREATE TABLE rbac_api_keys (
    id TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL,
    owner_id TEXT NOT NULL,
    scope_type TEXT NOT NULL,
    scope_id TEXT NOT NULL,
    permissions TEXT NOT NULL
);";

/// A user disabled or deleted in identity holds nothing here; a row lives
/// while either flag is set, and the index loads the set from it.
const V4: &str = "CREATE TABLE rbac_inactive_users (
    user_id TEXT PRIMARY KEY,
    disabled BIGINT NOT NULL,
    deleted BIGINT NOT NULL
);";

/// Every replica of the index registers here and reports the revision it
/// has applied; a write waits until every live replica has applied it
/// (`live::LiveIndex::await_replicas`). `seen_at_us` is the database's
/// clock at the replica's last heartbeat; `fence` a revision a replica
/// that fell behind must reach before it answers again.
const V3: &str = "CREATE TABLE rbac_replicas (
    id TEXT PRIMARY KEY,
    applied BIGINT NOT NULL,
    seen_at_us BIGINT NOT NULL,
    fence BIGINT NOT NULL DEFAULT 0
);";

/// The inviter's name, copied from identity when the invitation is made
/// (as the organization's name is), for the invitee's preview.
const V2: &str = "ALTER TABLE rbac_invitations ADD COLUMN inviter_name TEXT NOT NULL DEFAULT '';";
