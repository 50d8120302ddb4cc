//! A Tenantry server started in the test process, and a tap on its bus.

use std::net::SocketAddr;
use std::time::Duration;

use tenantry::config::Config;
use tenantry::server::RunningServer;
use tenantry::services::ServiceKind;
use tenantry_kit::config::{LogConfig, LogFormat};

use crate::{Storage, TestDatabase, unique_name};

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
                ..LogConfig::default()
            },
            ..Config::default()
        };
        config.outbox.poll_interval_ms = 50;
        // Tests run side by side against one PostgreSQL (100 connections),
        // and a test's sandbox lives as long as the test: two writing and
        // two reading (and one holding the relays' leadership) keep a
        // sandbox at five.
        config.database.max_connections = 4;
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

    /// The environment of a process that runs beside this sandbox as
    /// another Deployment of the same installation would: the same database
    /// (and NATS stream), the internal key the sandbox was configured with
    /// (if any), and this sandbox as the address of each of `peers`.
    pub fn environment_beside(
        &self,
        internal_key: Option<&str>,
        peers: &[ServiceKind],
    ) -> Vec<(&'static str, String)> {
        let mut environment = vec![("DATABASE_URL", self.database.url.clone())];
        if let Some((url, namespace)) = self.nats() {
            environment.push(("NATS_URL", url.to_string()));
            environment.push(("TENANTRY_NATS_NAMESPACE", namespace.to_string()));
        }
        if let Some(key) = internal_key {
            environment.push(("TENANTRY_INTERNAL_KEY", key.to_string()));
        }
        let address = format!("http://{}", self.server.grpc_addr);
        for peer in peers {
            let variable = match peer {
                ServiceKind::Identity => "TENANTRY_PEERS__IDENTITY",
                ServiceKind::Organization => "TENANTRY_PEERS__ORGANIZATION",
                ServiceKind::Rbac => "TENANTRY_PEERS__RBAC",
                ServiceKind::Billing => "TENANTRY_PEERS__BILLING",
                ServiceKind::Audit => "TENANTRY_PEERS__AUDIT",
                ServiceKind::Gateway => continue,
            };
            environment.push((variable, address.clone()));
        }
        environment
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
pub(crate) fn mail_token_in(dir: &std::path::Path, to: &str, kind: &str) -> Option<String> {
    mails_in(dir, kind)
        .into_iter()
        .rev()
        .find_map(|(recipient, token)| (recipient == to).then_some(token))
}

/// Every mail of `kind` in a development mail directory, oldest first:
/// (recipient, token).
pub(crate) fn mails_in(dir: &std::path::Path, kind: &str) -> Vec<(String, String)> {
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
