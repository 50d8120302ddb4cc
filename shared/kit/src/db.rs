//! Database pools for SQLite (embedded default) and Postgres (production),
//! and per-service embedded migrations.
//!
//! Services write their queries once, against `sqlx::Any`, with `$1`-style
//! placeholders (both backends accept them) and portable types: ids as TEXT,
//! times as BIGINT microseconds since the epoch, blobs as BLOB/BYTEA. DDL
//! differs between backends, so each migration carries both spellings.
//!
//! Migrations are tracked per service in `tenantry_migrations`, so services
//! sharing one database (the all-in-one binary) never collide, and a
//! database holding only some services' tables is fine.

use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyPool, Executor, Row, Transaction};

use crate::config::DatabaseConfig;
use crate::error::{Result, db_error};

/// Which database a pool talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite, in a file of the data directory.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// A pool of connections to the service's database.
#[derive(Clone)]
pub struct Database {
    /// Reads.
    pool: AnyPool,
    /// Transactions and other writes: on SQLite, the one connection that
    /// writes.
    writer: AnyPool,
    backend: Backend,
    /// The URL it was opened with (a secret: it may carry a password).
    url: std::sync::Arc<str>,
    /// Postgres session-level advisory locks this process holds while it
    /// runs (outbox relays' leadership), all on one connection of their
    /// own: held there, they take nothing from the pools.
    leases: std::sync::Arc<tokio::sync::Mutex<Leases>>,
}

/// The connection holding the process's leases, and how many times it was
/// replaced (a lease taken on an earlier one is gone).
#[derive(Default)]
struct Leases {
    session: Option<sqlx::AnyConnection>,
    generation: u64,
    /// Closed with the database: no lease is taken any more.
    closed: bool,
}

/// One schema change, in both SQL dialects.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Strictly increasing per service, starting at 1.
    pub version: i64,
    /// A short description, recorded with the version.
    pub description: &'static str,
    /// The change for SQLite.
    pub sqlite: &'static str,
    /// The change for Postgres.
    pub postgres: &'static str,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the URL: it may carry a password.
        f.debug_struct("Database")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl Database {
    /// Connects to `url` (`sqlite://…` or `postgres://…`) and checks the
    /// connection once, so a wrong or unreachable URL fails at start with
    /// the (password-redacted) URL in the message.
    pub async fn connect(url: &str, config: &DatabaseConfig) -> anyhow::Result<Database> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            anyhow::bail!(
                "invalid configuration: `database_url` must start with sqlite: or postgres:, got `{}`",
                redact_url(url)
            );
        };
        crate::telemetry::spans::set_database_system(match backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgresql",
        });
        let options: AnyConnectOptions = url
            .parse()
            .map_err(|e| anyhow::anyhow!("invalid `database_url` {}: {e}", redact_url(url)))?;
        // Writers get a pool of their own: a writer waiting for its turn
        // holds no connection, and a write that reads through the reading
        // pool while its transaction is open always finds a reader (reads
        // never wait on writers), where one shared pool could be held
        // entirely by transactions each waiting for a connection to read.
        let (writers, readers) = match backend {
            // SQLite writes one at a time: one writing connection, and
            // readers (read-only, beside the writer in WAL mode).
            Backend::Sqlite => (1, config.max_connections.clamp(2, 5) - 1),
            Backend::Postgres => {
                let writers = (config.max_connections / 2).max(1);
                (
                    writers,
                    config.max_connections.saturating_sub(writers).max(1),
                )
            }
        };
        // The writer first: on SQLite it creates the file and turns on WAL.
        let writer = pool_options(backend, config, writers, Access::ReadWrite)
            .connect_with(options.clone())
            .await
            .map_err(|e| unreachable(url, e))?;
        let pool = pool_options(backend, config, readers, Access::ReadOnly)
            .connect_with(options)
            .await
            .map_err(|e| unreachable(url, e))?;
        Ok(Database {
            pool,
            writer,
            backend,
            url: url.into(),
            leases: Default::default(),
        })
    }

    /// The URL the pool connects to, for a dedicated connection such as a
    /// Postgres `LISTEN`. It may carry a password: never log it.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The pool to read with, outside a transaction. Writes go through
    /// [`begin`](Self::begin) or [`writer`](Self::writer) (on SQLite these
    /// connections are read-only).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The pool for a write outside a transaction (one statement that
    /// commits on its own). On SQLite that is the one writing connection,
    /// which writers take in turn.
    pub fn writer(&self) -> &AnyPool {
        &self.writer
    }

    /// Publishes the pool's state every `every` until `stop`:
    /// `tenantry_db_pool_connections{state="idle"|"in_use"|"max"}`. A pool
    /// with no idle connection and `in_use` at `max` makes calls wait
    /// (`database.acquire_timeout_secs`, then UNAVAILABLE).
    pub async fn report_pool(
        self,
        every: std::time::Duration,
        stop: tokio_util::sync::CancellationToken,
    ) {
        // The readers and the writers together.
        let pools = [&self.pool, &self.writer];
        let max: u32 = pools
            .iter()
            .map(|p| p.options().get_max_connections())
            .sum();
        loop {
            let size: u32 = pools.iter().map(|p| p.size()).sum();
            let idle = pools.iter().map(|p| p.num_idle() as u32).sum::<u32>();
            metrics::gauge!("tenantry_db_pool_connections", "state" => "idle").set(f64::from(idle));
            metrics::gauge!("tenantry_db_pool_connections", "state" => "in_use")
                .set(f64::from(size.saturating_sub(idle)));
            metrics::gauge!("tenantry_db_pool_connections", "state" => "max").set(f64::from(max));
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
        }
    }

    /// Whether the connected role passes through Postgres row-level
    /// security (a superuser, or `BYPASSRLS`), so the tenant policies would
    /// not hold. SQLite has no row-level security to pass: false.
    pub async fn role_bypasses_row_security(&self) -> Result<bool> {
        if self.backend == Backend::Sqlite {
            return Ok(false);
        }
        let bypasses: bool = sqlx::query(
            "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user",
        )
        .fetch_one(&self.pool)
        .await?
        .try_get(0)?;
        Ok(bypasses)
    }

    /// Whether row-level security holds each query to the tenants in its
    /// task's scope (Postgres; see [`crate::tenancy`]). Where it does not,
    /// entering tenants is wasted work.
    pub fn has_row_security(&self) -> bool {
        self.backend == Backend::Postgres
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Begins a read-write transaction. On SQLite it waits its turn for the
    /// writing connection, then takes the write lock at once (`BEGIN
    /// IMMEDIATE`), so a writer of another process sharing the file queues
    /// on the busy timeout instead of deadlocking on a lock upgrade.
    pub async fn begin(&self) -> Result<Transaction<'static, Any>> {
        match self.backend {
            Backend::Sqlite => self.writer.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.writer.begin().await,
        }
        .map_err(db_error)
    }

    /// Applies `service`'s pending migrations, each in its own transaction.
    /// On Postgres an advisory lock serializes replicas migrating at once.
    pub async fn migrate(&self, service: &str, migrations: &[Migration]) -> anyhow::Result<()> {
        let mut conn = self.writer.acquire().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_lock(hashtext(current_schema()), $1)")
                .bind(advisory_key(&["migrations"]))
                .execute(&mut *conn)
                .await?;
        }
        let result = self.migrate_locked(&mut conn, service, migrations).await;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_unlock(hashtext(current_schema()), $1)")
                .bind(advisory_key(&["migrations"]))
                .execute(&mut *conn)
                .await?;
        }
        result
    }

    async fn migrate_locked(
        &self,
        conn: &mut sqlx::AnyConnection,
        service: &str,
        migrations: &[Migration],
    ) -> anyhow::Result<()> {
        conn.execute(
            "CREATE TABLE IF NOT EXISTS tenantry_migrations (
                service TEXT NOT NULL,
                version BIGINT NOT NULL,
                description TEXT NOT NULL,
                applied_at_us BIGINT NOT NULL,
                PRIMARY KEY (service, version)
            )",
        )
        .await?;
        let applied: i64 = sqlx::query(
            "SELECT COALESCE(MAX(version), 0) FROM tenantry_migrations WHERE service = $1",
        )
        .bind(service)
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?;
        let mut previous = 0;
        for migration in migrations {
            anyhow::ensure!(
                migration.version > previous,
                "{service} migrations must have increasing versions"
            );
            previous = migration.version;
            if migration.version <= applied {
                continue;
            }
            let sql = match self.backend {
                Backend::Sqlite => migration.sqlite,
                Backend::Postgres => migration.postgres,
            };
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            sqlx::raw_sql(sql).execute(&mut *tx).await.map_err(|e| {
                anyhow::anyhow!(
                    "{service} migration {} ({}) failed: {e}",
                    migration.version,
                    migration.description
                )
            })?;
            sqlx::query(
                "INSERT INTO tenantry_migrations (service, version, description, applied_at_us)
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(service)
            .bind(migration.version)
            .bind(migration.description)
            .bind(now_micros())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            tracing::info!(service, version = migration.version, "applied migration");
        }
        Ok(())
    }

    /// Takes the Postgres session-level advisory lock `key` (in this
    /// schema) for as long as the process runs, unless another session
    /// holds it: the lease's generation when taken, for
    /// [`holds_lease`](Self::holds_lease).
    pub async fn try_lease(&self, key: i32) -> Option<u64> {
        use sqlx::Connection as _;
        let mut leases = self.leases.lock().await;
        if leases.closed {
            return None;
        }
        if leases.session.is_none() {
            leases.session = sqlx::AnyConnection::connect(&self.url).await.ok();
        }
        let session = leases.session.as_mut()?;
        let locked = sqlx::query("SELECT pg_try_advisory_lock(hashtext(current_schema()), $1)")
            .bind(key)
            .fetch_one(session)
            .await
            .and_then(|row| row.try_get::<bool, _>(0));
        match locked {
            Ok(true) => Some(leases.generation),
            Ok(false) => None,
            Err(_) => {
                drop_session(&mut leases);
                None
            }
        }
    }

    /// Whether a lease taken at `generation` still holds: false once the
    /// leases' connection was dropped.
    pub async fn holds_lease(&self, generation: u64) -> bool {
        let leases = self.leases.lock().await;
        leases.session.is_some() && leases.generation == generation
    }

    /// Gives every lease up (its connection may be gone with the database):
    /// holders learn it from [`holds_lease`](Self::holds_lease).
    pub async fn drop_leases(&self) {
        drop_session(&mut *self.leases.lock().await);
    }

    /// Gives the leases up and closes the pools, waiting for connections in
    /// use to come back.
    pub async fn close(&self) {
        {
            let mut leases = self.leases.lock().await;
            leases.closed = true;
            drop_session(&mut leases);
        }
        self.pool.close().await;
        self.writer.close().await;
    }

    /// Whether the database answers a trivial query within `timeout`.
    pub async fn is_healthy(&self, timeout: Duration) -> bool {
        matches!(
            tokio::time::timeout(timeout, sqlx::query("SELECT 1").execute(&self.pool)).await,
            Ok(Ok(_))
        )
    }
}

fn drop_session(leases: &mut Leases) {
    leases.session = None;
    leases.generation += 1;
}

/// Whether a pool's connections may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    ReadOnly,
    ReadWrite,
}

/// The options of a pool of `size` connections on `backend`.
fn pool_options(
    backend: Backend,
    config: &DatabaseConfig,
    size: u32,
    access: Access,
) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(config.acquire_timeout())
        // On Postgres, setting the tenant scope on each acquire tests
        // the connection as the default ping would: a broken one fails
        // the hook and is replaced.
        .test_before_acquire(backend == Backend::Sqlite)
        .after_connect(move |conn, _meta| {
            // Read here, in the acquiring task (sqlx runs the hooks in
            // the caller's future, not a task of its own).
            let scope = crate::tenancy::setting();
            Box::pin(async move {
                match backend {
                    // WAL lets readers run beside the writer; the busy
                    // timeout queues writers of other processes sharing
                    // the file instead of failing them. A reader that
                    // tries to write fails at once, so a write that
                    // bypasses the writer's queue shows in every test.
                    Backend::Sqlite => {
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000; \
                             PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;",
                        )
                        .await?;
                        if access == Access::ReadOnly {
                            conn.execute("PRAGMA query_only = ON;").await?;
                        }
                    }
                    Backend::Postgres => set_scope(conn, scope).await?,
                }
                Ok(())
            })
        })
        .before_acquire(move |conn, _meta| {
            // SQLite has no row-level security: nothing to read or set.
            let scope = (backend == Backend::Postgres).then(crate::tenancy::setting);
            Box::pin(async move {
                if let Some(scope) = scope {
                    set_scope(conn, scope).await?;
                }
                Ok(true)
            })
        })
}

/// The start-up error of a database that cannot be reached.
fn unreachable(url: &str, error: sqlx::Error) -> crate::startup::Unreachable {
    crate::startup::Unreachable(format!(
        "cannot connect to the database at {}: {error}",
        redact_url(url)
    ))
}

/// Gives a Postgres connection the tenant scope of the task acquiring it
/// (see [`crate::tenancy`]): session-wide, so it holds for the statements
/// and transactions run on it until it is next acquired.
async fn set_scope(conn: &mut sqlx::AnyConnection, scope: String) -> sqlx::Result<()> {
    sqlx::query("SELECT set_config($1, $2, false)")
        .bind(crate::tenancy::SETTING)
        .bind(scope)
        .execute(conn)
        .await?;
    Ok(())
}

/// A savepoint in a transaction, for one statement that may fail (an
/// insert a unique index may refuse): undoing it keeps the transaction
/// usable, where Postgres would otherwise abort the whole transaction, so
/// the caller can try again with another value.
#[derive(Debug)]
pub struct Savepoint;

impl Savepoint {
    /// Marks the point.
    pub async fn set(tx: &mut Transaction<'static, Any>) -> Result<Savepoint> {
        sqlx::query("SAVEPOINT tenantry_attempt")
            .execute(&mut **tx)
            .await?;
        Ok(Savepoint)
    }

    /// Keeps what was done since the point.
    pub async fn release(self, tx: &mut Transaction<'static, Any>) -> Result<()> {
        sqlx::query("RELEASE SAVEPOINT tenantry_attempt")
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Undoes what was done since the point.
    pub async fn undo(self, tx: &mut Transaction<'static, Any>) -> Result<()> {
        sqlx::query("ROLLBACK TO SAVEPOINT tenantry_attempt")
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}

/// The key of the Postgres advisory lock named by `parts`, a stable
/// (FNV-1a) hash so that every replica takes the same lock.
///
/// Advisory locks belong to the whole database, while installations (and
/// test runs) may share one database in schemas of their own. So every lock
/// is taken with two keys, `(hashtext(current_schema()), advisory_key(…))`:
/// installations never wait on each other, and a session lock one of them
/// holds for as long as it runs (the outbox relay's leadership) cannot keep
/// another's from ever being taken.
pub fn advisory_key(parts: &[&str]) -> i32 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in parts.join("\0").bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    // Fold to the 32 bits of the lock's second key.
    ((hash >> 32) ^ hash) as u32 as i32
}

/// A protobuf timestamp from microseconds since the Unix epoch (how every
/// table stores time).
pub fn timestamp(us: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: us.div_euclid(1_000_000),
        nanos: (us.rem_euclid(1_000_000) * 1000) as i32,
    }
}

/// Microseconds since the Unix epoch: how times are stored.
pub fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// Whether a URL carries a password.
pub fn has_password(url: &str) -> bool {
    redact_url(url) != url
}

/// A URL with its password replaced by `***`, for messages and logs.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_string();
    };
    match userinfo.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

impl Backend {
    /// The backend of an open connection.
    pub fn of(connection: &sqlx::AnyConnection) -> Backend {
        if connection.backend_name() == "PostgreSQL" {
            Backend::Postgres
        } else {
            Backend::Sqlite
        }
    }
}

/// `rows` groups of `columns` placeholders, for a multi-row `VALUES` list
/// that is the statement's only parameters: `$1, $2, …` on Postgres, and on
/// SQLite anonymous `?`, which SQLite binds by position (it looks each
/// named or numbered one up in a list, which makes a statement of
/// thousands of parameters quadratic to bind).
pub fn values(backend: Backend, rows: usize, columns: usize) -> String {
    let mut out = String::with_capacity(rows * columns * 5);
    for row in 0..rows {
        if row > 0 {
            out.push_str(", ");
        }
        out.push('(');
        for column in 0..columns {
            if column > 0 {
                out.push_str(", ");
            }
            match backend {
                Backend::Postgres => out.push_str(&format!("${}", row * columns + column + 1)),
                Backend::Sqlite => out.push('?'),
            }
        }
        out.push(')');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_appear_in_redacted_urls() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/tenantry"),
            "postgres://app:***@db:5432/tenantry"
        );
        assert_eq!(redact_url("postgres://db/x"), "postgres://db/x");
        assert_eq!(
            redact_url("sqlite://.tenantry/t.db"),
            "sqlite://.tenantry/t.db"
        );
    }

    #[test]
    fn values_number_rows_then_columns_on_postgres_and_are_anonymous_on_sqlite() {
        assert_eq!(values(Backend::Postgres, 2, 2), "($1, $2), ($3, $4)");
        assert_eq!(values(Backend::Postgres, 1, 3), "($1, $2, $3)");
        assert_eq!(values(Backend::Sqlite, 2, 2), "(?, ?), (?, ?)");
    }

    /// SQLite with the fewest connections: one reader, one writer, and a
    /// short wait for either.
    async fn tight_sqlite(dir: &std::path::Path) -> Database {
        let config = DatabaseConfig {
            max_connections: 1,
            acquire_timeout_secs: 1,
        };
        let db = Database::connect(&crate::config::sqlite_url(dir), &config)
            .await
            .unwrap();
        sqlx::query("CREATE TABLE t (id TEXT PRIMARY KEY)")
            .execute(db.writer())
            .await
            .unwrap();
        db
    }

    async fn count(db: &Database) -> i64 {
        sqlx::query("SELECT COUNT(*) FROM t")
            .fetch_one(db.pool())
            .await
            .unwrap()
            .try_get(0)
            .unwrap()
    }

    #[tokio::test]
    async fn on_sqlite_a_write_reads_beside_its_open_transaction_while_writers_queue() {
        let dir = tempfile::tempdir().unwrap();
        let db = tight_sqlite(dir.path()).await;
        let mut tx = db.begin().await.unwrap();
        sqlx::query("INSERT INTO t (id) VALUES ('a')")
            .execute(&mut *tx)
            .await
            .unwrap();
        // Writers waiting for their turn hold no connection...
        let queued: Vec<_> = (0..4)
            .map(|i| {
                let db = db.clone();
                tokio::spawn(async move {
                    let mut tx = db.begin().await.unwrap();
                    sqlx::query("INSERT INTO t (id) VALUES ($1)")
                        .bind(format!("q{i}"))
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                    tx.commit().await.unwrap();
                })
            })
            .collect();
        tokio::task::yield_now().await;
        // ...so the open transaction still reads through the pool (it sees
        // what is committed, not its own insert).
        assert_eq!(count(&db).await, 0);
        tx.commit().await.unwrap();
        for writer in queued {
            writer.await.unwrap();
        }
        assert_eq!(count(&db).await, 5);
    }

    #[tokio::test]
    async fn on_sqlite_the_reading_pool_refuses_writes() {
        let dir = tempfile::tempdir().unwrap();
        let db = tight_sqlite(dir.path()).await;
        let refused = sqlx::query("INSERT INTO t (id) VALUES ('a')")
            .execute(db.pool())
            .await;
        assert!(refused.is_err(), "{refused:?}");
        assert_eq!(count(&db).await, 0);
        sqlx::query("INSERT INTO t (id) VALUES ('a')")
            .execute(db.writer())
            .await
            .unwrap();
        assert_eq!(count(&db).await, 1);
    }
}
