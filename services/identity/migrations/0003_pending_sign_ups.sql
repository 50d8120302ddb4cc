-- Sign-ups waiting for the mailbox to be proved. Nothing else exists for
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
