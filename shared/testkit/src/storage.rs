//! A private database per test, on SQLite or Postgres.

use std::path::PathBuf;

use tempfile::TempDir;
use tenantry_kit::config::DatabaseConfig;
use tenantry_kit::db::Database;

use crate::{DATABASE_URL_VAR, unique_name};

/// A storage backend under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// SQLite in a temporary directory.
    Sqlite,
    /// A fresh schema in the Postgres database of `TENANTRY_TEST_DATABASE_URL`.
    Postgres,
}

/// The storages a test runs on: SQLite always, Postgres when configured.
pub fn storages() -> Vec<Storage> {
    let mut storages = vec![Storage::Sqlite];
    if postgres_url().is_some() {
        storages.push(Storage::Postgres);
    }
    storages
}

fn postgres_url() -> Option<String> {
    std::env::var(DATABASE_URL_VAR)
        .ok()
        .filter(|v| !v.is_empty())
}

/// A database of its own for one test.
#[derive(Debug)]
pub struct TestDatabase {
    /// The backend.
    pub storage: Storage,
    /// The URL a server or pool connects with.
    pub url: String,
    /// The URL the database's operator connects with (on Postgres, a
    /// superuser, whom row-level security lets through).
    operator_url: String,
    dir: TempDir,
}

impl TestDatabase {
    /// Creates an empty database on `storage`.
    pub async fn new(storage: Storage) -> anyhow::Result<TestDatabase> {
        let dir = tempfile::tempdir()?;
        let (url, operator_url) = match storage {
            Storage::Sqlite => {
                let url = tenantry_kit::config::sqlite_url(dir.path());
                (url.clone(), url)
            }
            Storage::Postgres => {
                let base = postgres_url()
                    .ok_or_else(|| anyhow::anyhow!("{DATABASE_URL_VAR} is not set"))?;
                let schema = unique_name("test");
                let admin = Database::connect(&base, &small_pool()).await?;
                create_app_role(&admin).await?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "CREATE SCHEMA {schema} AUTHORIZATION {APP_ROLE}"
                )))
                .execute(admin.pool())
                .await?;
                admin.close().await;
                let separator = if base.contains('?') { '&' } else { '?' };
                // Every connection of the test's pools lands in its schema,
                // as the role that owns it.
                let in_schema = format!("{separator}options=-c%20search_path%3D{schema}");
                (
                    format!("{}{in_schema}", with_user(&base, APP_ROLE)),
                    format!("{base}{in_schema}"),
                )
            }
        };
        Ok(TestDatabase {
            storage,
            url,
            operator_url,
            dir,
        })
    }

    /// The URL of [`connect_as_operator`](Self::connect_as_operator).
    pub fn operator_url(&self) -> &str {
        &self.operator_url
    }

    /// A pool that sees every tenant's rows, for a test that inspects or
    /// changes what the database holds behind the services' backs.
    pub async fn connect_as_operator(&self) -> anyhow::Result<Database> {
        Database::connect(&self.operator_url, &DatabaseConfig::default()).await
    }

    /// A pool on the test database.
    pub async fn connect(&self) -> anyhow::Result<Database> {
        Database::connect(&self.url, &DatabaseConfig::default()).await
    }

    /// A directory that lives as long as the database.
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

/// The role tests' servers connect as on Postgres: as a deployment should,
/// neither a superuser nor `BYPASSRLS`, so row-level security holds in every
/// test as it does in production.
pub const APP_ROLE: &str = "tenantry_app";

/// Creates [`APP_ROLE`] unless it exists (tests create it at once: the
/// loser of the race finds it made).
async fn create_app_role(admin: &Database) -> anyhow::Result<()> {
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DO $$ BEGIN
             IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
                 CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS;
             END IF;
         EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
         END $$"
    )))
    .execute(admin.pool())
    .await?;
    Ok(())
}

/// `url` with its user replaced by `user` (and no password: the test
/// server trusts local connections).
fn with_user(url: &str, user: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let host = rest.split_once('@').map_or(rest, |(_, host)| host);
    format!("{scheme}://{user}@{host}")
}

fn small_pool() -> DatabaseConfig {
    DatabaseConfig {
        max_connections: 2,
        ..DatabaseConfig::default()
    }
}
