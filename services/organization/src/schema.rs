//! The organization service's tables, in both SQL dialects.
//!
//! Conventions (as in every service): ids are TEXT UUIDs, times BIGINT
//! microseconds, flags BIGINT 0/1, lists and maps JSON text. Uniqueness of
//! slugs holds among live rows only (partial indexes), so a soft-deleted
//! object gives its slug back and undeleting it can find the slug taken.
//!
//! The tree is stored twice over on purpose: `parent_id` is the link, and
//! `path` (`/root/…/self/`) is the materialized path that makes "the
//! subtree of X" one indexed prefix scan and a move one UPDATE.

use tenantry_kit::db::Migration;

const V1_SQLITE: &str = "
CREATE TABLE org_workspaces (
    id TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    billing_mode TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at_us BIGINT NOT NULL,
    updated_at_us BIGINT NOT NULL,
    version BIGINT NOT NULL
);
CREATE TABLE org_organizations (
    id TEXT PRIMARY KEY,
    slug TEXT NOT NULL,
    display_name TEXT NOT NULL,
    kind TEXT NOT NULL,
    parent_id TEXT REFERENCES org_organizations (id),
    root_id TEXT NOT NULL,
    workspace_id TEXT NOT NULL REFERENCES org_workspaces (id),
    path TEXT NOT NULL,
    depth BIGINT NOT NULL,
    inherit_access BIGINT NOT NULL,
    departments_enabled BIGINT NOT NULL,
    require_mfa BIGINT NOT NULL,
    allowed_email_domains TEXT NOT NULL,
    metadata TEXT NOT NULL,
    state TEXT NOT NULL,
    owner_id TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at_us BIGINT NOT NULL,
    updated_at_us BIGINT NOT NULL,
    deleted_at_us BIGINT,
    purge_at_us BIGINT,
    deleted_with TEXT,
    version BIGINT NOT NULL
);
CREATE UNIQUE INDEX org_organizations_slug ON org_organizations (slug) WHERE deleted_at_us IS NULL;
CREATE INDEX org_organizations_parent ON org_organizations (parent_id, id);
CREATE INDEX org_organizations_root ON org_organizations (root_id, id);
CREATE INDEX org_organizations_path ON org_organizations (path);
CREATE INDEX org_organizations_workspace ON org_organizations (workspace_id, id);
CREATE TABLE org_teams (
    id TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES org_organizations (id),
    slug TEXT NOT NULL,
    display_name TEXT NOT NULL,
    description TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at_us BIGINT NOT NULL,
    updated_at_us BIGINT NOT NULL,
    deleted_at_us BIGINT,
    purge_at_us BIGINT,
    deleted_with TEXT,
    version BIGINT NOT NULL
);
CREATE UNIQUE INDEX org_teams_slug ON org_teams (organization_id, slug) WHERE deleted_at_us IS NULL;
CREATE INDEX org_teams_organization ON org_teams (organization_id, id);
CREATE TABLE org_projects (
    id TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES org_organizations (id),
    team_id TEXT REFERENCES org_teams (id),
    slug TEXT NOT NULL,
    display_name TEXT NOT NULL,
    description TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at_us BIGINT NOT NULL,
    updated_at_us BIGINT NOT NULL,
    deleted_at_us BIGINT,
    purge_at_us BIGINT,
    deleted_with TEXT,
    version BIGINT NOT NULL
);
CREATE UNIQUE INDEX org_projects_slug ON org_projects (organization_id, slug) WHERE deleted_at_us IS NULL;
CREATE INDEX org_projects_organization ON org_projects (organization_id, id);
CREATE TABLE org_environments (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES org_projects (id) ON DELETE CASCADE,
    slug TEXT NOT NULL,
    display_name TEXT NOT NULL,
    created_at_us BIGINT NOT NULL,
    updated_at_us BIGINT NOT NULL,
    version BIGINT NOT NULL
);
CREATE UNIQUE INDEX org_environments_slug ON org_environments (project_id, slug);
CREATE TABLE org_ownership_transfers (
    id TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES org_organizations (id),
    from_user_id TEXT NOT NULL,
    to_user_id TEXT NOT NULL,
    token_hash TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at_us BIGINT NOT NULL,
    expires_at_us BIGINT NOT NULL,
    ended_at_us BIGINT
);
CREATE INDEX org_ownership_transfers_organization ON org_ownership_transfers (organization_id, state);
CREATE TABLE org_requests (
    caller TEXT NOT NULL,
    method TEXT NOT NULL,
    request_id TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    created_at_us BIGINT NOT NULL,
    PRIMARY KEY (caller, method, request_id)
);
";

/// The migrations, oldest first.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "workspaces, organization trees, teams, projects, environments, ownership transfers, idempotent requests",
        sqlite: V1_SQLITE,
        // The same statements are valid Postgres: nothing above is
        // SQLite-specific (partial unique indexes exist in both).
        postgres: V1_SQLITE,
    },
    Migration {
        version: 2,
        description: "project visibility: whether members see only the projects granted to them",
        sqlite: V2,
        postgres: V2,
    },
    Migration {
        version: 3,
        description: "row-level security: each tenant table shows the trees in the request's scope",
        // SQLite has no row-level security; the queries' filters stand alone.
        sqlite: "SELECT 1;",
        postgres: V3_POSTGRES,
    },
];

/// Organizations that existed before the setting keep what their members
/// saw: every project. New ones take the configured default.
const V2: &str =
    "ALTER TABLE org_organizations ADD COLUMN projects_granted_only BIGINT NOT NULL DEFAULT 0;";

/// The tenant policies (see `tenantry_kit::tenancy`). An organization shows
/// when its tree's root is in scope; a team, project or ownership transfer
/// when its organization is in a tree in scope, an environment when its
/// project is. The system scope (`*`) is tested first, so work for every
/// tenant never runs a subquery. Each subquery names the roots itself, so
/// it reads the scope's trees through `org_organizations_root` instead of
/// scanning every organization (the referenced table's own policy, an OR
/// with the system scope, could use no index). `FORCE` holds the tables'
/// owner to the policies too.
const V3_POSTGRES: &str = "
ALTER TABLE org_organizations ENABLE ROW LEVEL SECURITY;
ALTER TABLE org_organizations FORCE ROW LEVEL SECURITY;
CREATE POLICY org_organizations_tenant ON org_organizations
    USING (current_setting('tenantry.scope', true) = '*'
           OR root_id = ANY (string_to_array(current_setting('tenantry.scope', true), ',')));

DO $$
DECLARE t TEXT;
BEGIN
    FOREACH t IN ARRAY ARRAY['org_teams', 'org_projects', 'org_ownership_transfers'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format($p$CREATE POLICY %I ON %I
            USING (current_setting('tenantry.scope', true) = '*'
                   OR organization_id IN (SELECT id FROM org_organizations
                       WHERE root_id = ANY (string_to_array(current_setting('tenantry.scope', true), ','))))$p$,
            t || '_tenant', t);
    END LOOP;
END $$;

ALTER TABLE org_environments ENABLE ROW LEVEL SECURITY;
ALTER TABLE org_environments FORCE ROW LEVEL SECURITY;
CREATE POLICY org_environments_tenant ON org_environments
    USING (current_setting('tenantry.scope', true) = '*'
           OR project_id IN (SELECT p.id FROM org_projects p
               JOIN org_organizations o ON o.id = p.organization_id
               WHERE o.root_id = ANY (string_to_array(current_setting('tenantry.scope', true), ','))));
";
