//! The identity service's tables. Its SQL is written once for both
//! dialects (portable types only); each migration's comment says why it
//! exists, as in every service's `schema.rs`.

use tenantry_kit::db::Migration;

/// The migrations, in order.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "users, sessions, tokens, keys, api keys, service accounts",
        sqlite: V1,
        postgres: V1,
    },
    Migration {
        version: 2,
        description: "api keys scoped to a project",
        sqlite: V2,
        postgres: V2,
    },
    Migration {
        version: 3,
        description: "sign-ups waiting for their address to be proved",
        sqlite: V3,
        postgres: V3,
    },
    Migration {
        version: 4,
        description: "idempotent service account and credential creates; credential names",
        sqlite: V4,
        postgres: V4,
    },
    Migration {
        version: 5,
        description: "row-level security: an API key shows in its organization's requests",
        // SQLite has no row-level security; the queries' filters stand alone.
        sqlite: "SELECT 1;",
        postgres: V5_POSTGRES,
    },
];

const V1: &str = "-- Identity tables, in SQL that SQLite and Postgres both accept. Ids are
-- canonical UUID text, times are microseconds since the epoch, flags are 0/1
-- BIGINTs (portable through sqlx::Any).

CREATE TABLE identity_users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    email_verified_at_us BIGINT,
    pending_email TEXT,
    state TEXT NOT NULL,
    deleted_at_us BIGINT,
    platform_admin BIGINT NOT NULL DEFAULT 0,
    totp_secret TEXT,
    totp_enabled_at_us BIGINT,
    totp_last_step BIGINT,
    pending_totp_secret TEXT,
    pending_totp_expires_at_us BIGINT,
    last_login_at_us BIGINT,
    last_organization_id TEXT,
    password_changed_at_us BIGINT NOT NULL,
    created_at_us BIGINT NOT NULL,
    updated_at_us BIGINT NOT NULL,
    version BIGINT NOT NULL
);

CREATE TABLE identity_sessions (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES identity_users (id),
    active_organization_id TEXT,
    requested_organization_id TEXT,
    mfa BIGINT NOT NULL,
    mfa_pending BIGINT NOT NULL,
    user_agent TEXT NOT NULL,
    client_address TEXT NOT NULL,
    created_at_us BIGINT NOT NULL,
    last_seen_at_us BIGINT NOT NULL,
    expires_at_us BIGINT NOT NULL,
    revoked_at_us BIGINT,
    revoke_reason TEXT
);
CREATE INDEX identity_sessions_user ON identity_sessions (user_id);

-- Refresh tokens rotate: each use marks the token rotated and issues the
-- next one. Presenting a rotated token again revokes the whole session.
CREATE TABLE identity_refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES identity_sessions (id),
    created_at_us BIGINT NOT NULL,
    expires_at_us BIGINT NOT NULL,
    rotated_at_us BIGINT
);
CREATE INDEX identity_refresh_tokens_session ON identity_refresh_tokens (session_id);

-- Single-use tokens: email verification, password reset, MFA login step.
CREATE TABLE identity_one_time_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES identity_users (id),
    purpose TEXT NOT NULL,
    payload TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    created_at_us BIGINT NOT NULL,
    expires_at_us BIGINT NOT NULL,
    used_at_us BIGINT
);
CREATE INDEX identity_one_time_tokens_user ON identity_one_time_tokens (user_id, purpose);

CREATE TABLE identity_recovery_codes (
    user_id TEXT NOT NULL REFERENCES identity_users (id),
    code_hash TEXT NOT NULL,
    used_at_us BIGINT,
    PRIMARY KEY (user_id, code_hash)
);

-- Ed25519 signing keys. The newest unretired key signs; every key not yet
-- expired is published in the JWKS so tokens it signed still verify.
CREATE TABLE identity_signing_keys (
    kid TEXT PRIMARY KEY,
    seed_hex TEXT NOT NULL,
    created_at_us BIGINT NOT NULL,
    retired_at_us BIGINT
);

-- Login throttling per account and per client address.
CREATE TABLE identity_login_throttle (
    throttle_key TEXT PRIMARY KEY,
    failures BIGINT NOT NULL,
    blocked_until_us BIGINT NOT NULL,
    updated_at_us BIGINT NOT NULL
);

CREATE TABLE identity_api_keys (
    id TEXT PRIMARY KEY,
    key_id TEXT NOT NULL UNIQUE,
    organization_id TEXT NOT NULL,
    team_id TEXT,
    display_name TEXT NOT NULL,
    permissions TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    created_by TEXT NOT NULL,
    expires_at_us BIGINT,
    last_used_at_us BIGINT,
    revoked_at_us BIGINT,
    created_at_us BIGINT NOT NULL,
    request_id TEXT
);
CREATE INDEX identity_api_keys_organization ON identity_api_keys (organization_id);

CREATE TABLE identity_service_accounts (
    id TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    description TEXT NOT NULL,
    permissions TEXT NOT NULL,
    organizations TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at_us BIGINT NOT NULL,
    updated_at_us BIGINT NOT NULL
);

CREATE TABLE identity_service_account_credentials (
    id TEXT PRIMARY KEY,
    service_account_id TEXT NOT NULL REFERENCES identity_service_accounts (id),
    client_id TEXT NOT NULL UNIQUE,
    secret_hash TEXT NOT NULL,
    created_at_us BIGINT NOT NULL,
    expires_at_us BIGINT,
    last_used_at_us BIGINT
);
";

const V2: &str = "-- An API key may be scoped to one project of its organization.
ALTER TABLE identity_api_keys ADD COLUMN project_id TEXT;
";

const V3: &str = "-- Sign-ups waiting for the mailbox to be proved. Nothing else exists for
-- them: the account is created from this row when the mailed link is used,
-- so an address nobody proved holds no account, and another sign-up for it
-- is simply another row (whichever link is used first wins).
CREATE TABLE identity_pending_sign_ups (
    token_hash TEXT PRIMARY KEY,
    email TEXT NOT NULL,
    display_name TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    organization_name TEXT NOT NULL,
    created_at_us BIGINT NOT NULL,
    expires_at_us BIGINT NOT NULL,
    used_at_us BIGINT
);
CREATE INDEX identity_pending_sign_ups_email ON identity_pending_sign_ups (email);
";

const V4: &str = "-- Idempotent creates (the client's request_id, unique per creator or per
-- account), and what a credential is called and who made it.
ALTER TABLE identity_service_accounts ADD COLUMN request_id TEXT;
ALTER TABLE identity_service_account_credentials ADD COLUMN request_id TEXT;
ALTER TABLE identity_service_account_credentials ADD COLUMN display_name TEXT NOT NULL DEFAULT '';
ALTER TABLE identity_service_account_credentials ADD COLUMN created_by TEXT NOT NULL DEFAULT '';
CREATE UNIQUE INDEX identity_service_accounts_request
    ON identity_service_accounts (created_by, request_id);
CREATE UNIQUE INDEX identity_service_account_credentials_request
    ON identity_service_account_credentials (service_account_id, request_id);
";

const V5_POSTGRES: &str = "-- Row-level security (see tenantry_kit::tenancy): an API key shows when its
-- organization is in the request's scope. A request enters the organization
-- once it has authorized a manager there; an exchange finds the key by its
-- id in the system scope (the secret names the tenant) and then enters its
-- organization. The system scope ('*') is tested first. Postgres only:
-- SQLite has no row-level security.
ALTER TABLE identity_api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE identity_api_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY identity_api_keys_tenant ON identity_api_keys
    USING (current_setting('tenantry.scope', true) = '*'
           OR organization_id = ANY (string_to_array(current_setting('tenantry.scope', true), ',')));
";
