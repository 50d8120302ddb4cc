//! The billing service's tables, in both SQL dialects.
//!
//! Conventions (as in every service): ids are TEXT UUIDs, times BIGINT
//! microseconds, flags BIGINT 0/1, structured values JSON text.
//!
//! - `billing_workspaces` and `billing_nodes` mirror the organization tree
//!   from the organization service's events: parent links, the materialized
//!   `path` (`/root/…/self/`) and which node was soft-deleted.
//! - `billing_usage` holds the counters: per scope (an organization id, or
//!   `workspace:<id>` for a workspace's shared pool), metric and period
//!   (0 for allocation metrics, the month's start for metered ones), the
//!   scope's `own` count and its `subtree` count. Every change updates the
//!   node and its ancestors in one transaction, so a quota check reads the
//!   counters it needs instead of summing a subtree.
//! - `billing_items` remembers what each allocation counter counts (a
//!   project, a membership, a pending invitation…), so a redelivered or
//!   out-of-order event never counts twice.

use tenantry_kit::db::Migration;

const V1: &str = "
CREATE TABLE billing_workspaces (
    id TEXT PRIMARY KEY,
    billing_mode TEXT NOT NULL
);
CREATE TABLE billing_nodes (
    id TEXT PRIMARY KEY,
    parent_id TEXT,
    root_id TEXT NOT NULL,
    workspace_id TEXT NOT NULL,
    path TEXT NOT NULL,
    deleted BIGINT NOT NULL
);
CREATE INDEX billing_nodes_path ON billing_nodes (path);
CREATE INDEX billing_nodes_workspace ON billing_nodes (workspace_id, parent_id);
CREATE TABLE billing_usage (
    scope_id TEXT NOT NULL,
    metric TEXT NOT NULL,
    period_us BIGINT NOT NULL,
    own BIGINT NOT NULL,
    subtree BIGINT NOT NULL,
    PRIMARY KEY (scope_id, metric, period_us)
);
CREATE TABLE billing_items (
    metric TEXT NOT NULL,
    item_id TEXT NOT NULL,
    organization_id TEXT NOT NULL,
    live BIGINT NOT NULL,
    PRIMARY KEY (metric, item_id)
);
CREATE INDEX billing_items_organization ON billing_items (organization_id);
CREATE TABLE billing_limits (
    organization_id TEXT NOT NULL,
    metric TEXT NOT NULL,
    value BIGINT NOT NULL,
    set_by TEXT NOT NULL,
    updated_at_us BIGINT NOT NULL,
    PRIMARY KEY (organization_id, metric)
);
CREATE TABLE billing_plans (
    id TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    offered_to TEXT,
    archived BIGINT NOT NULL,
    created_at_us BIGINT NOT NULL,
    updated_at_us BIGINT NOT NULL,
    version BIGINT NOT NULL
);
CREATE TABLE billing_accounts (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    display_name TEXT NOT NULL,
    currency_code TEXT NOT NULL,
    organization_id TEXT,
    billing_email TEXT NOT NULL,
    billing_address TEXT NOT NULL,
    tax_id TEXT NOT NULL,
    provider TEXT NOT NULL,
    provider_customer_id TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at_us BIGINT NOT NULL,
    updated_at_us BIGINT NOT NULL,
    version BIGINT NOT NULL
);
CREATE INDEX billing_accounts_workspace ON billing_accounts (workspace_id, created_at_us, id);
CREATE UNIQUE INDEX billing_accounts_assigned ON billing_accounts (organization_id) WHERE organization_id IS NOT NULL;
CREATE TABLE billing_subscriptions (
    organization_id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    plan_id TEXT NOT NULL,
    billing_account_id TEXT,
    state TEXT NOT NULL,
    extra_seats BIGINT NOT NULL,
    limit_overrides TEXT NOT NULL,
    feature_overrides TEXT NOT NULL,
    trial_end_us BIGINT,
    cancel_at_us BIGINT,
    canceled_at_us BIGINT,
    provider_subscription_id TEXT NOT NULL,
    created_at_us BIGINT NOT NULL,
    updated_at_us BIGINT NOT NULL,
    version BIGINT NOT NULL
);
CREATE INDEX billing_subscriptions_workspace ON billing_subscriptions (workspace_id);
CREATE INDEX billing_subscriptions_account ON billing_subscriptions (billing_account_id);
CREATE TABLE billing_usage_records (
    id TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL,
    metric TEXT NOT NULL,
    quantity BIGINT NOT NULL,
    idempotency_key TEXT NOT NULL,
    usage_at_us BIGINT NOT NULL,
    period_us BIGINT NOT NULL,
    recorded_by TEXT NOT NULL,
    created_at_us BIGINT NOT NULL
);
CREATE UNIQUE INDEX billing_usage_records_key ON billing_usage_records (organization_id, idempotency_key);
CREATE INDEX billing_usage_records_time ON billing_usage_records (organization_id, usage_at_us, id);
CREATE TABLE billing_provider_events (
    provider TEXT NOT NULL,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    applied BIGINT NOT NULL,
    received_at_us BIGINT NOT NULL,
    PRIMARY KEY (provider, event_id)
);
CREATE TABLE billing_platform_admins (
    user_id TEXT PRIMARY KEY
);
CREATE TABLE billing_requests (
    caller TEXT NOT NULL,
    method TEXT NOT NULL,
    request_id TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    created_at_us BIGINT NOT NULL,
    PRIMARY KEY (caller, method, request_id)
);
";

/// Quota reservations: what a create holds between its quota check and the
/// moment its event is counted. One row per reservation and one per scope
/// whose usage it adds to (the organization, its ancestors, the plan's
/// root or pool), so a reading sums them in the same statement as the
/// counters.
const V2: &str = "
CREATE TABLE billing_reservations (
    id TEXT NOT NULL,
    metric TEXT NOT NULL,
    organization_id TEXT NOT NULL,
    delta BIGINT NOT NULL,
    expires_at_us BIGINT NOT NULL,
    PRIMARY KEY (metric, id)
);
CREATE INDEX billing_reservations_expiry ON billing_reservations (expires_at_us);
CREATE TABLE billing_reservation_scopes (
    id TEXT NOT NULL,
    metric TEXT NOT NULL,
    scope_id TEXT NOT NULL,
    delta BIGINT NOT NULL,
    expires_at_us BIGINT NOT NULL,
    PRIMARY KEY (metric, id, scope_id)
);
CREATE INDEX billing_reservation_scopes_scope ON billing_reservation_scopes (scope_id, metric);
";

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "plans, accounts, subscriptions, limits, the organization tree, usage counters and records, provider events",
        sqlite: V1,
        postgres: V1,
    },
    Migration {
        version: 2,
        description: "quota reservations",
        sqlite: V2,
        postgres: V2,
    },
    Migration {
        version: 3,
        description: "row-level security: each tenant table shows the workspaces in the request's scope",
        // SQLite has no row-level security; the queries' filters stand alone.
        sqlite: "SELECT 1;",
        postgres: V3_POSTGRES,
    },
    Migration {
        version: 4,
        description: "items remember the last of their own events applied, so an older one arriving late changes nothing",
        sqlite: "ALTER TABLE billing_items ADD COLUMN version BIGINT NOT NULL DEFAULT 0;",
        postgres: "ALTER TABLE billing_items ADD COLUMN version BIGINT NOT NULL DEFAULT 0;",
    },
];

/// The tenant policies (see `tenantry_kit::tenancy`). Billing's tenant is a
/// workspace (its roots share accounts and, pooled, limits): workspaces,
/// mirrored nodes, subscriptions and accounts show when their workspace is
/// in scope; items, limits, usage records and reservations when their
/// organization's node is in a workspace in scope (the subquery names the
/// workspaces, so it reads them through `billing_nodes_workspace`). Usage counters and reservation scopes are
/// keyed by organization or pool and hold numbers only; they have no
/// policy. The system scope (`*`) is tested first.
const V3_POSTGRES: &str = "
DO $$
DECLARE t TEXT;
BEGIN
    FOREACH t IN ARRAY ARRAY['billing_nodes', 'billing_subscriptions', 'billing_accounts'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format($p$CREATE POLICY %I ON %I
            USING (current_setting('tenantry.scope', true) = '*'
                   OR workspace_id = ANY (string_to_array(current_setting('tenantry.scope', true), ',')))$p$,
            t || '_tenant', t);
    END LOOP;
    FOREACH t IN ARRAY ARRAY['billing_items', 'billing_limits', 'billing_usage_records',
                             'billing_reservations'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format($p$CREATE POLICY %I ON %I
            USING (current_setting('tenantry.scope', true) = '*'
                   OR organization_id IN (SELECT id FROM billing_nodes
                       WHERE workspace_id = ANY (string_to_array(current_setting('tenantry.scope', true), ','))))$p$,
            t || '_tenant', t);
    END LOOP;
END $$;
ALTER TABLE billing_workspaces ENABLE ROW LEVEL SECURITY;
ALTER TABLE billing_workspaces FORCE ROW LEVEL SECURITY;
CREATE POLICY billing_workspaces_tenant ON billing_workspaces
    USING (current_setting('tenantry.scope', true) = '*'
           OR id = ANY (string_to_array(current_setting('tenantry.scope', true), ',')));
";
