-- An API key may be scoped to one project of its organization.
ALTER TABLE identity_api_keys ADD COLUMN project_id TEXT;
