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

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;
use tenantry::config::Config;
use tenantry::server::RunningServer;
use tenantry::services::ServiceKind;
use tenantry_kit::config::{DatabaseConfig, LogConfig, LogFormat};
use tenantry_kit::db::Database;

pub mod smtp;
pub mod standin;

/// The environment variable naming a Postgres database for tests.
pub const DATABASE_URL_VAR: &str = "TENANTRY_TEST_DATABASE_URL";
/// The environment variable naming a NATS server for tests.
pub const NATS_URL_VAR: &str = "TENANTRY_TEST_NATS_URL";

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

/// The NATS server for tests, when `TENANTRY_TEST_NATS_URL` is set.
pub fn nats_url() -> Option<String> {
    std::env::var(NATS_URL_VAR).ok().filter(|v| !v.is_empty())
}

/// A name no other test uses: for NATS namespaces, consumers and schemas.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
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

/// Which bus a sandbox uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bus {
    /// The local bus, durable in the sandbox's database.
    Local,
    /// NATS JetStream at this URL, in a namespace of the sandbox's own.
    Nats(String),
}

/// Builds a [`Sandbox`].
pub struct SandboxBuilder {
    services: Vec<ServiceKind>,
    storage: Storage,
    bus: Bus,
    configure: Vec<ConfigChange>,
    resume: Option<Stopped>,
}

/// What a stopped sandbox leaves behind: its database (and data directory)
/// and its NATS namespace, for a new server to start from.
#[derive(Debug)]
pub struct Stopped {
    database: TestDatabase,
    nats: Option<(String, String)>,
}

/// A change a test makes to the sandbox's configuration.
type ConfigChange = Box<dyn FnOnce(&mut Config) + Send>;

impl std::fmt::Debug for SandboxBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxBuilder")
            .field("services", &self.services)
            .field("storage", &self.storage)
            .field("bus", &self.bus)
            .finish()
    }
}

impl SandboxBuilder {
    /// Runs only these services.
    pub fn services(mut self, services: &[ServiceKind]) -> Self {
        self.services = services.to_vec();
        self
    }

    /// Stores data on `storage`.
    pub fn storage(mut self, storage: Storage) -> Self {
        self.storage = storage;
        self
    }

    /// Uses `bus`.
    pub fn bus(mut self, bus: Bus) -> Self {
        self.bus = bus;
        self
    }

    /// Starts from what a stopped sandbox left (its database, data
    /// directory and bus), as a restarted deployment would.
    pub fn resume(mut self, stopped: Stopped) -> Self {
        self.resume = Some(stopped);
        self
    }

    /// Adjusts the configuration before the server starts.
    pub fn configure(mut self, change: impl FnOnce(&mut Config) + Send + 'static) -> Self {
        self.configure.push(Box::new(change));
        self
    }

    /// Starts the server and returns once it accepts calls.
    pub async fn start(self) -> anyhow::Result<Sandbox> {
        let (database, resumed_nats) = match self.resume {
            Some(stopped) => (stopped.database, stopped.nats),
            None => (TestDatabase::new(self.storage).await?, None),
        };
        let mut config = Config {
            data_dir: database.dir(),
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            database_url: Some(database.url.clone()),
            log: LogConfig {
                format: LogFormat::Text,
                level: std::env::var("TENANTRY_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            },
            ..Config::default()
        };
        config.outbox.poll_interval_ms = 50;
        // Cheap password hashing, for tests only: the defaults cost tens of
        // milliseconds per hash by design.
        config.identity.password.memory_kib = 1024;
        config.identity.password.iterations = 1;
        // Tests sign people up in one step (the development setting); the
        // default, where the mailed link creates the account, has tests of
        // its own that turn it back on.
        config.identity.verify_before_sign_in = false;
        for change in self.configure {
            change(&mut config);
        }
        if let Some((url, namespace)) = resumed_nats {
            config.nats_url = Some(url);
            config.nats_namespace = namespace;
        } else if let Bus::Nats(url) = &self.bus {
            config.nats_url = Some(url.clone());
            config.nats_namespace = unique_name("t");
        }
        config.validate()?;
        let nats = config
            .nats_url
            .clone()
            .map(|url| (url, config.nats_namespace.clone()));
        let server = tenantry::server::start(config, &self.services).await?;
        Ok(Sandbox {
            server,
            database,
            nats,
        })
    }
}

/// A Tenantry server running in the test process.
#[derive(Debug)]
pub struct Sandbox {
    /// The running server.
    pub server: RunningServer,
    /// Its database.
    pub database: TestDatabase,
    /// The NATS server and namespace, when the sandbox uses NATS.
    nats: Option<(String, String)>,
}

/// A durable consumer of every event a sandbox publishes, for tests that
/// check what each change put on the bus.
pub struct EventTap {
    subscription: Box<dyn tenantry_kit::bus::Subscription>,
    /// Every event received so far, in order.
    pub seen: Vec<tenantry_proto::tenantry::events::v1::Event>,
}

impl std::fmt::Debug for EventTap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventTap")
            .field("seen", &self.seen.len())
            .finish()
    }
}

impl EventTap {
    /// Reads events until one of `event_type` arrives (returning it), or
    /// fails after `timeout`.
    pub async fn expect(
        &mut self,
        event_type: &str,
        timeout: Duration,
    ) -> anyhow::Result<tenantry_proto::tenantry::events::v1::Event> {
        self.expect_about(event_type, "", timeout).await
    }

    /// Like [`expect`](Self::expect), for an event about one aggregate (any
    /// aggregate when `aggregate_id` is empty).
    pub async fn expect_about(
        &mut self,
        event_type: &str,
        aggregate_id: &str,
        timeout: Duration,
    ) -> anyhow::Result<tenantry_proto::tenantry::events::v1::Event> {
        use prost::Message as _;
        let wanted = |e: &tenantry_proto::tenantry::events::v1::Event| {
            e.r#type == event_type && (aggregate_id.is_empty() || e.aggregate_id == aggregate_id)
        };
        if let Some(seen) = self.seen.iter().find(|e| wanted(e)) {
            return Ok(seen.clone());
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let delivery = tokio::time::timeout_at(deadline, self.subscription.next())
                .await
                .map_err(|_| anyhow::anyhow!("no `{event_type}` event within {timeout:?}"))??;
            let event = tenantry_proto::tenantry::events::v1::Event::decode(
                delivery.message.payload.clone(),
            )?;
            delivery.ack().await?;
            self.seen.push(event.clone());
            if wanted(&event) {
                return Ok(event);
            }
        }
    }
}

impl Sandbox {
    /// A builder: every service, SQLite, local bus.
    pub fn builder() -> SandboxBuilder {
        SandboxBuilder {
            services: ServiceKind::ALL.to_vec(),
            storage: Storage::Sqlite,
            bus: Bus::Local,
            configure: Vec::new(),
            resume: None,
        }
    }

    /// A gRPC channel to the server.
    pub async fn channel(&self) -> anyhow::Result<tonic::transport::Channel> {
        Ok(
            tonic::transport::Endpoint::from_shared(format!("http://{}", self.server.grpc_addr))?
                .connect_timeout(Duration::from_secs(5))
                .connect()
                .await?,
        )
    }

    /// The base URL of the HTTP side.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.server.http_addr)
    }

    /// The single-use token in the newest mail of `kind` (such as
    /// `verify_email` or `reset_password`) sent to `to`, read from the
    /// development mail directory.
    pub fn mail_token(&self, to: &str, kind: &str) -> Option<String> {
        mail_token_in(&self.database.dir().join("mail"), to, kind)
    }

    /// Taps the sandbox's bus: a new durable consumer of every event from
    /// now on (and of what is still retained).
    pub async fn event_tap(&self) -> anyhow::Result<EventTap> {
        let db = self.database.connect().await?;
        let bus = match &self.nats {
            Some((url, namespace)) => {
                tenantry_kit::bus::connect(Some(url), namespace, Duration::from_secs(2), &db)
                    .await?
            }
            None => tenantry_kit::bus::connect(None, "", Duration::from_secs(2), &db).await?,
        };
        let subscription = bus
            .subscribe(
                &unique_name("tap"),
                &[format!("{}.>", tenantry_kit::bus::SUBJECT_PREFIX)],
            )
            .await?;
        Ok(EventTap {
            subscription,
            seen: Vec::new(),
        })
    }

    /// The NATS URL and namespace the sandbox uses, for another process
    /// that must share its bus.
    pub fn nats(&self) -> Option<(&str, &str)> {
        self.nats
            .as_ref()
            .map(|(url, namespace)| (url.as_str(), namespace.as_str()))
    }

    /// Shuts the server down gracefully.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.server.shutdown().await
    }

    /// Shuts the server down gracefully and keeps its database and bus for
    /// [`SandboxBuilder::resume`].
    pub async fn stop(self) -> anyhow::Result<Stopped> {
        self.server.shutdown().await?;
        Ok(Stopped {
            database: self.database,
            nats: self.nats,
        })
    }
}

/// The single-use token in the newest mail of `kind` to `to` in a
/// development mail directory.
fn mail_token_in(dir: &std::path::Path, to: &str, kind: &str) -> Option<String> {
    mails_in(dir, kind)
        .into_iter()
        .rev()
        .find_map(|(recipient, token)| (recipient == to).then_some(token))
}

/// Every mail of `kind` in a development mail directory, oldest first:
/// (recipient, token).
fn mails_in(dir: &std::path::Path, kind: &str) -> Vec<(String, String)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.to_string_lossy().contains(kind))
        .collect();
    files.sort();
    files
        .iter()
        .filter_map(|path| {
            let text = std::fs::read_to_string(path).ok()?;
            let to = text.lines().find_map(|line| line.strip_prefix("To: "))?;
            let token = text.lines().find_map(|line| line.strip_prefix("token: "))?;
            Some((to.to_string(), token.to_string()))
        })
        .collect()
}

/// The `tenantry` program running as a separate process, started by a test
/// with the same command line and environment a deployment would give it.
/// Killed when dropped.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    /// Where it serves gRPC.
    pub grpc_addr: SocketAddr,
    /// Where it serves HTTP (`/readyz`, `/metrics`).
    pub http_addr: SocketAddr,
    data_dir: TempDir,
}

impl ServerProcess {
    /// Runs `binary serve --services <services>` on free ports with a data
    /// directory of its own and `envs` added to the environment, and waits
    /// until `/readyz` answers 200.
    pub async fn start(
        binary: &str,
        services: &str,
        envs: &[(&str, String)],
    ) -> anyhow::Result<ServerProcess> {
        Self::start_on(binary, services, free_addr()?, free_addr()?, envs).await
    }

    /// As [`start`](Self::start), on the given addresses: for a set of
    /// processes that must know each other's addresses before they start.
    pub async fn start_on(
        binary: &str,
        services: &str,
        grpc_addr: SocketAddr,
        http_addr: SocketAddr,
        envs: &[(&str, String)],
    ) -> anyhow::Result<ServerProcess> {
        let mut process = Self::spawn_on(binary, services, grpc_addr, http_addr, envs)?;
        process.wait_ready().await?;
        Ok(process)
    }

    /// Starts the process without waiting for it: a process is ready only
    /// once the peers it calls answer, so processes that call each other
    /// are all spawned before any is awaited (as Kubernetes starts pods).
    pub fn spawn_on(
        binary: &str,
        services: &str,
        grpc_addr: SocketAddr,
        http_addr: SocketAddr,
        envs: &[(&str, String)],
    ) -> anyhow::Result<ServerProcess> {
        let dir = tempfile::tempdir()?;
        // Logs go to stdout: shown when TENANTRY_TEST_LOG asks for them.
        let logs = match std::env::var_os("TENANTRY_TEST_LOG") {
            Some(_) => Stdio::inherit(),
            None => Stdio::null(),
        };
        let child = Command::new(binary)
            .args(["serve", "--services", services])
            .arg("--grpc-addr")
            .arg(grpc_addr.to_string())
            .arg("--http-addr")
            .arg(http_addr.to_string())
            .arg("--data-dir")
            .arg(dir.path())
            .env(
                "TENANTRY_LOG__LEVEL",
                std::env::var("TENANTRY_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            // One-step sign-up, as in the sandbox; `envs` may turn it back.
            .env("TENANTRY_IDENTITY__VERIFY_BEFORE_SIGN_IN", "false")
            .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(logs)
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot start {binary}: {e}"))?;
        Ok(ServerProcess {
            child,
            grpc_addr,
            http_addr,
            data_dir: dir,
        })
    }

    /// The token in the newest mail of `kind` this process sent to `to`
    /// (development mail directory), as [`Sandbox::mail_token`].
    pub fn mail_token(&self, to: &str, kind: &str) -> Option<String> {
        mail_token_in(&self.data_dir.path().join("mail"), to, kind)
    }

    /// Every mail of `kind` this process sent, oldest first: (recipient,
    /// token). One read of the directory, for loaders that send thousands.
    pub fn mails(&self, kind: &str) -> Vec<(String, String)> {
        mails_in(&self.data_dir.path().join("mail"), kind)
    }

    /// Waits until `/readyz` answers 200 (at most 10 s).
    pub async fn wait_ready(&mut self) -> anyhow::Result<()> {
        for _ in 0..400 {
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!("the process exited at start: {status}");
            }
            if self.is_ready().await {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        anyhow::bail!("the process did not become ready on {}", self.http_addr)
    }

    /// Waits until the process answers on its HTTP port (`/healthz`): it
    /// is up, ready or not.
    pub async fn wait_up(&mut self) -> anyhow::Result<()> {
        for _ in 0..400 {
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!("the process exited at start: {status}");
            }
            if matches!(http_get(self.http_addr, "/healthz").await, Ok((200, _))) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        anyhow::bail!("the process did not answer on {}", self.http_addr)
    }

    /// Whether `/readyz` answers 200 now.
    pub async fn is_ready(&self) -> bool {
        matches!(http_get(self.http_addr, "/readyz").await, Ok((200, _)))
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The gRPC URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process at once (SIGKILL), as a crash would.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the process as Kubernetes does (SIGTERM) and waits for it to
    /// exit; a graceful shutdown exits 0.
    pub fn terminate(mut self) -> anyhow::Result<std::process::ExitStatus> {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        anyhow::ensure!(sent.success(), "kill -TERM failed: {sent}");
        Ok(self.child.wait()?)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback address for a server a test starts as a process of its
/// own. Not asked of the kernel (port 0): that hands out ports from the
/// ephemeral range, where every other test's listeners and outgoing
/// connections also take theirs, so one could take the port before the
/// process binds it. These come from below that range (20000–31999), each
/// port once per test run, and are checked free when handed out.
pub fn free_addr() -> anyhow::Result<SocketAddr> {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const COUNT: u32 = 12_000;
    // Where this run starts: concurrent test processes start apart.
    static NEXT: std::sync::OnceLock<AtomicU32> = std::sync::OnceLock::new();
    let next = NEXT.get_or_init(|| AtomicU32::new(uuid::Uuid::new_v4().as_u128() as u32 % COUNT));
    for _ in 0..COUNT {
        let port = FIRST + next.fetch_add(1, Ordering::Relaxed) % COUNT;
        let addr = SocketAddr::from(([127, 0, 0, 1], port as u16));
        if std::net::TcpListener::bind(addr).is_ok() {
            return Ok(addr);
        }
    }
    anyhow::bail!("no free port from {FIRST} to {}", FIRST + COUNT - 1)
}

/// A `nats-server` process of the test's own, which the test may stop and
/// restart on the same port and storage directory.
#[derive(Debug)]
pub struct NatsServer {
    port: u16,
    dir: TempDir,
    child: Option<Child>,
}

impl NatsServer {
    /// Starts a JetStream-enabled server on a free port.
    pub async fn start() -> anyhow::Result<NatsServer> {
        let port = free_addr()?.port();
        let mut server = NatsServer {
            port,
            dir: tempfile::tempdir()?,
            child: None,
        };
        server.resume().await?;
        Ok(server)
    }

    /// The server's URL.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Stops the server (kill -9: as abrupt as a crash).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again with the same port and storage.
    pub async fn resume(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(self.child.is_none(), "already running");
        let binary = [
            "/usr/sbin/nats-server",
            "/usr/bin/nats-server",
            "/usr/local/bin/nats-server",
        ]
        .into_iter()
        .find(|path| std::path::Path::new(path).exists())
        .unwrap_or("nats-server");
        let child = Command::new(binary)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot start {binary}: {e}"))?;
        self.child = Some(child);
        // Ready when the port accepts connections.
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        anyhow::bail!("nats-server did not start on port {}", self.port)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A plain HTTP/1.1 GET, enough for the operational endpoints: returns the
/// status code and the body.
pub async fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let response = String::from_utf8_lossy(&response).to_string();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("not an HTTP response: {response}"))?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// A PostgreSQL server of the test's own (a fresh cluster in a temporary
/// directory, run as the `postgres` user), which the test may stop and
/// start again: for outage tests that must not disturb the shared server.
#[derive(Debug)]
pub struct PostgresServer {
    port: u16,
    dir: TempDir,
    bin: PathBuf,
}

impl PostgresServer {
    /// Whether a local PostgreSQL installation can run one.
    pub fn available() -> bool {
        Self::bin_dir().is_some()
    }

    fn bin_dir() -> Option<PathBuf> {
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(Result::ok)
            .map(|entry| entry.path().join("bin"))
            .filter(|bin| bin.join("initdb").exists())
            .collect();
        versions.sort();
        versions.pop()
    }

    /// Initializes and starts a cluster on a free port.
    pub async fn start() -> anyhow::Result<PostgresServer> {
        let bin = Self::bin_dir().ok_or_else(|| anyhow::anyhow!("no PostgreSQL installation"))?;
        let dir = tempfile::tempdir()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        Self::as_postgres(&format!("chown postgres {}", dir.path().display()), false)?;
        Self::as_postgres(
            &format!(
                "{} -D {}/data -A trust -U postgres --no-sync -E UTF8",
                bin.join("initdb").display(),
                dir.path().display()
            ),
            true,
        )?;
        let server = PostgresServer { port, dir, bin };
        server.resume().await?;
        Ok(server)
    }

    fn as_postgres(command: &str, as_postgres: bool) -> anyhow::Result<()> {
        let status = if as_postgres {
            Command::new("su")
                .args(["postgres", "-s", "/bin/sh", "-c", command])
                .stdout(Stdio::null())
                .status()?
        } else {
            Command::new("sh").args(["-c", command]).status()?
        };
        anyhow::ensure!(status.success(), "`{command}` failed");
        Ok(())
    }

    /// The URL of its `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server at once, as a crash would.
    pub fn stop(&self) -> anyhow::Result<()> {
        Self::as_postgres(
            &format!(
                "{} -D {}/data -m immediate stop",
                self.bin.join("pg_ctl").display(),
                self.dir.path().display()
            ),
            true,
        )
    }

    /// Starts the server (again) and waits until it accepts connections.
    pub async fn resume(&self) -> anyhow::Result<()> {
        Self::as_postgres(
            &format!(
                "{} -D {dir}/data -l {dir}/log -o '-p {port} -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off' start",
                self.bin.join("pg_ctl").display(),
                dir = self.dir.path().display(),
                port = self.port
            ),
            true,
        )?;
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        anyhow::bail!("postgres did not start on port {}", self.port)
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}
