-- Idempotent creates (the client's request_id, unique per creator or per
-- account), and what a credential is called and who made it.
ALTER TABLE identity_service_accounts ADD COLUMN request_id TEXT;
ALTER TABLE identity_service_account_credentials ADD COLUMN request_id TEXT;
ALTER TABLE identity_service_account_credentials ADD COLUMN display_name TEXT NOT NULL DEFAULT '';
ALTER TABLE identity_service_account_credentials ADD COLUMN created_by TEXT NOT NULL DEFAULT '';
CREATE UNIQUE INDEX identity_service_accounts_request
    ON identity_service_accounts (created_by, request_id);
CREATE UNIQUE INDEX identity_service_account_credentials_request
    ON identity_service_account_credentials (service_account_id, request_id);
