-- Row-level security (see tenantry_kit::tenancy): an API key shows when its
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
