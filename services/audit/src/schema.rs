//! The audit service's tables, in both SQL dialects.
//!
//! - `audit_events` is the log: one row per domain event, in its scope's
//!   (organization's, or `instance`'s) hash chain at `sequence`. Rows are
//!   only ever inserted (and, past retention, deleted from the front).
//! - `audit_targets` indexes events by the objects they are about.
//! - `audit_heads` holds each chain's last sequence and hash; taking its
//!   row lock serializes appends to one chain.
//! - `audit_checkpoints` are signed statements of chain heads.
//! - `audit_retention` is each tree's retention from its plan (billing's
//!   events); `audit_platform_admins` who may read across organizations
//!   (identity's events).
//!
//! Indexes serve the filtered, newest-first pages: every filter column is
//! indexed together with `(scope, sequence)`, so a page walks one index
//! backwards from its cursor.

use tenantry_kit::db::Migration;

const V1: &str = "
CREATE TABLE audit_events (
    id TEXT PRIMARY KEY,
    scope TEXT NOT NULL,
    root_id TEXT NOT NULL,
    sequence BIGINT NOT NULL,
    occurred_at_us BIGINT NOT NULL,
    ingested_at_us BIGINT NOT NULL,
    actor_kind BIGINT NOT NULL,
    actor_id TEXT NOT NULL,
    actor_name TEXT NOT NULL,
    action TEXT NOT NULL,
    source TEXT NOT NULL,
    targets TEXT NOT NULL,
    outcome BIGINT NOT NULL,
    client_address TEXT NOT NULL,
    user_agent TEXT NOT NULL,
    request_id TEXT NOT NULL,
    trace_id TEXT NOT NULL,
    changes TEXT NOT NULL,
    metadata TEXT NOT NULL,
    metadata_truncated BIGINT NOT NULL,
    previous_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE UNIQUE INDEX audit_events_chain ON audit_events (scope, sequence);
CREATE INDEX audit_events_action ON audit_events (scope, action, sequence);
CREATE INDEX audit_events_actor ON audit_events (scope, actor_id, sequence);
CREATE INDEX audit_events_request ON audit_events (scope, request_id, sequence);
CREATE INDEX audit_events_time ON audit_events (scope, occurred_at_us, sequence);
CREATE INDEX audit_events_everywhere ON audit_events (occurred_at_us, id);
CREATE TABLE audit_targets (
    event_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    sequence BIGINT NOT NULL,
    target_type TEXT NOT NULL,
    target_id TEXT NOT NULL,
    PRIMARY KEY (event_id, target_type, target_id)
);
CREATE INDEX audit_targets_object ON audit_targets (scope, target_id, sequence);
CREATE TABLE audit_heads (
    scope TEXT PRIMARY KEY,
    sequence BIGINT NOT NULL,
    hash TEXT NOT NULL
);
CREATE TABLE audit_checkpoints (
    id TEXT PRIMARY KEY,
    scope TEXT NOT NULL,
    sequence BIGINT NOT NULL,
    head_hash TEXT NOT NULL,
    created_at_us BIGINT NOT NULL,
    signed_payload TEXT NOT NULL,
    signature TEXT NOT NULL,
    key_id TEXT NOT NULL,
    public_key TEXT NOT NULL,
    retention_cut BIGINT NOT NULL
);
CREATE INDEX audit_checkpoints_scope ON audit_checkpoints (scope, sequence);
CREATE TABLE audit_retention (
    root_id TEXT PRIMARY KEY,
    days BIGINT
);
CREATE TABLE audit_platform_admins (
    user_id TEXT PRIMARY KEY
);
";

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "the audit log, its chains' heads, checkpoints, retention and platform administrators",
        sqlite: V1,
        postgres: V1,
    },
    Migration {
        version: 2,
        description: "row-level security: a request reads the chains in its scope",
        // SQLite has no row-level security; the queries' filters stand alone.
        sqlite: "SELECT 1;",
        postgres: V2_POSTGRES,
    },
];

/// The tenant policies (see `tenantry_kit::tenancy`): a chain's events,
/// targets, head and checkpoints show when its organization (or the
/// instance) is in scope; a tree's retention when its root is. Reads are
/// entered per chain once authorized, the ingest and the background jobs
/// work in the system scope (`*`, tested first).
const V2_POSTGRES: &str = "
DO $$
DECLARE t TEXT;
BEGIN
    FOREACH t IN ARRAY ARRAY['audit_events', 'audit_targets', 'audit_heads', 'audit_checkpoints'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format($p$CREATE POLICY %I ON %I
            USING (current_setting('tenantry.scope', true) = '*'
                   OR scope = ANY (string_to_array(current_setting('tenantry.scope', true), ',')))$p$,
            t || '_tenant', t);
    END LOOP;
END $$;

ALTER TABLE audit_retention ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_retention FORCE ROW LEVEL SECURITY;
CREATE POLICY audit_retention_tenant ON audit_retention
    USING (current_setting('tenantry.scope', true) = '*'
           OR root_id = ANY (string_to_array(current_setting('tenantry.scope', true), ',')));
";
