-- Identity tables, in SQL that SQLite and Postgres both accept. Ids are
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
