//! The identity service's tables. Its SQL is written once for both
//! dialects (portable types only), so each migration is one file under
//! `migrations/`, named here with its version and description, like every
//! service's `schema.rs`.

use tenantry_kit::db::Migration;

/// The migrations, in order.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "users, sessions, tokens, keys, api keys, service accounts",
        sqlite: include_str!("../migrations/0001_identity.sql"),
        postgres: include_str!("../migrations/0001_identity.sql"),
    },
    Migration {
        version: 2,
        description: "api keys scoped to a project",
        sqlite: include_str!("../migrations/0002_api_key_projects.sql"),
        postgres: include_str!("../migrations/0002_api_key_projects.sql"),
    },
    Migration {
        version: 3,
        description: "sign-ups waiting for their address to be proved",
        sqlite: include_str!("../migrations/0003_pending_sign_ups.sql"),
        postgres: include_str!("../migrations/0003_pending_sign_ups.sql"),
    },
    Migration {
        version: 4,
        description: "idempotent service account and credential creates; credential names",
        sqlite: include_str!("../migrations/0004_service_account_requests.sql"),
        postgres: include_str!("../migrations/0004_service_account_requests.sql"),
    },
    Migration {
        version: 5,
        description: "row-level security: an API key shows in its organization's requests",
        // SQLite has no row-level security; the queries' filters stand alone.
        sqlite: "SELECT 1;",
        postgres: include_str!("../migrations/0005_api_key_row_security.postgres.sql"),
    },
];
