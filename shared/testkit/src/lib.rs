//! The test sandbox: what every integration test in `tests/` builds on.
//!
//! - [`TestDatabase`]: a private database per test. SQLite in a temporary
//!   directory always; Postgres (a fresh schema in the database named by
//!   `TENANTRY_TEST_DATABASE_URL`) when that variable is set. [`storages`]
//!   lists the backends a test should run on, so one test body covers both.
//! - [`nats_url`]: the NATS server named by `TENANTRY_TEST_NATS_URL`, and
//!   [`NatsServer`] for tests that stop and restart a server of their own.
//! - [`Sandbox`]: a Tenantry server started in-process on free ports with the
//!   chosen services, storage and bus; shut down explicitly.
//! - [`ServerProcess`] and [`PostgresServer`]: the program and a database
//!   server as processes of the test's own.
//! - [`clients`], [`people`] and [`check`]: the gRPC clients, the sign-up
//!   and the permission checks every test module starts from.

mod nats;
mod postgres;
mod process;
mod sandbox;
mod storage;

pub mod check;
pub mod clients;
pub mod otlp;
pub mod people;
pub mod smtp;
pub mod standin;
pub mod usage;

pub use nats::{NatsServer, nats_url};
pub use postgres::PostgresServer;
pub use process::{ServerProcess, free_addr, http_get};
pub use sandbox::{Bus, EventTap, Sandbox, SandboxBuilder, Stopped};
pub use storage::{APP_ROLE, Storage, TestDatabase, storages};

/// The environment variable naming a Postgres database for tests.
pub const DATABASE_URL_VAR: &str = "TENANTRY_TEST_DATABASE_URL";

/// The environment variable naming a NATS server for tests.
pub const NATS_URL_VAR: &str = "TENANTRY_TEST_NATS_URL";

/// A name no other test uses: for NATS namespaces, consumers and schemas.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

/// Polls `probe` every 25 ms until it yields `Some`, for what the contracts
/// say arrives later (the audit log, billing's counters, a mail): never to
/// wait out a read that should see a write at once. Panics after 15 s,
/// naming `what`.
pub async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..600 {
        if let Some(value) = probe().await {
            return value;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("{what} did not happen within 15 s");
}

/// The last segment of a resource name (`organizations/{id}` → the id).
pub fn last_id(name: &str) -> String {
    name.rsplit('/').next().unwrap_or(name).to_string()
}

/// Now, in seconds since the Unix epoch.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs() as i64
}

/// A request carrying `token` as its bearer credential.
pub fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("a valid header"),
    );
    request
}
