//! Starting and stopping a Tenantry process: storage, bus, the chosen
//! services on one gRPC port, health and reflection, the HTTP side, and a
//! graceful shutdown that drains calls before it flushes the outboxes.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use std::sync::Arc;

use tenantry_kit::auth::{AuthLayer, GrpcJwksSource, JwksCache, JwksSource};
use tenantry_kit::bus;
use tenantry_kit::consistency::ConsistencyLayer;
use tenantry_kit::db::Database;
use tenantry_kit::net::{Cidr, ClientAddressLayer};
use tenantry_kit::outbox::Outbox;
use tenantry_kit::page_token::PageTokens;
use tenantry_kit::peer::{LocalServer, PeerDirectory};
use tenantry_kit::service::{GrpcRoutes, Peers, ServiceContext};
use tenantry_kit::startup::retry_unreachable;
use tenantry_kit::telemetry::{self, GrpcTelemetryLayer};
use tenantry_kit::tenancy::TenancyLayer;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic_health::ServingStatus;

use crate::config::Config;
use crate::handover;
use crate::late::{self, Late};
use crate::secrets;
use crate::services::ServiceKind;

/// A started process. Dropping it does not stop it: call
/// [`shutdown`](Self::shutdown).
#[derive(Debug)]
pub struct RunningServer {
    /// The bound gRPC address (the real port when 0 was asked).
    pub grpc_addr: SocketAddr,
    /// The bound HTTP address.
    pub http_addr: SocketAddr,
    /// The full names of the gRPC services mounted.
    pub grpc_services: Vec<&'static str>,
    stop: CancellationToken,
    done: JoinHandle<anyhow::Result<()>>,
}

impl RunningServer {
    /// Begins a graceful shutdown and waits for it to finish.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.stop.cancel();
        self.wait().await
    }

    /// A token that begins the shutdown when cancelled (for signal handlers).
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Waits until the process has shut down.
    pub async fn wait(self) -> anyhow::Result<()> {
        self.done.await.context("the server task panicked")?
    }
}

/// Applies every selected service's migrations (and the shared outbox and
/// bus tables) to the configured database.
pub async fn migrate(config: &Config, services: &[ServiceKind]) -> anyhow::Result<()> {
    let db = connect_database(config).await?;
    migrate_database(&db, config, services).await?;
    db.close().await;
    Ok(())
}

/// Grants the platform administrator role to an existing user.
pub async fn bootstrap_admin(
    config: &Config,
    email: &str,
) -> anyhow::Result<tenantry_identity::store::UserRow> {
    let db = connect_database(config).await?;
    migrate_database(&db, config, &[ServiceKind::Identity]).await?;
    let result = tenantry_identity::admin::grant_platform_admin(&db, email).await;
    db.close().await;
    // The message for what the operator got wrong (no such user); the
    // cause too for what failed underneath.
    result.map_err(|error| match error.code() {
        tenantry_kit::error::Code::Internal | tenantry_kit::error::Code::Unavailable => {
            anyhow::anyhow!("{error}")
        }
        _ => anyhow::anyhow!("{}", error.message()),
    })
}

async fn connect_database(config: &Config) -> anyhow::Result<Database> {
    if config.database_url.is_none() {
        std::fs::create_dir_all(&config.data_dir).with_context(|| {
            format!(
                "cannot create the data directory `data_dir` = {}",
                config.data_dir.display()
            )
        })?;
    }
    let db = Database::connect(&config.effective_database_url(), &config.database).await?;
    if db.role_bypasses_row_security().await? {
        // Row-level security is the second wall between tenants; a role
        // that passes through it leaves the queries' filters alone.
        let message = "the database role is a superuser or has BYPASSRLS, so \
                       row-level security does not hold between tenants; \
                       connect as a role without them (see deploy/README.md)";
        if config.mode == crate::config::Mode::Production {
            db.close().await;
            anyhow::bail!("invalid configuration: {message}");
        }
        tracing::warn!("{message}");
    }
    Ok(db)
}

async fn migrate_database(
    db: &Database,
    config: &Config,
    services: &[ServiceKind],
) -> anyhow::Result<()> {
    Outbox::migrate(db).await?;
    if config.nats_url.is_none() {
        bus::LocalBus::migrate(db).await?;
    }
    for kind in services {
        let (name, migrations) = match kind {
            ServiceKind::Identity => (tenantry_identity::NAME, tenantry_identity::MIGRATIONS),
            ServiceKind::Organization => (
                tenantry_organization::NAME,
                tenantry_organization::MIGRATIONS,
            ),
            ServiceKind::Rbac => (tenantry_rbac::NAME, tenantry_rbac::MIGRATIONS),
            ServiceKind::Billing => (tenantry_billing::NAME, tenantry_billing::MIGRATIONS),
            ServiceKind::Audit => (tenantry_audit::NAME, tenantry_audit::MIGRATIONS),
            ServiceKind::Gateway => continue,
        };
        db.migrate(name, migrations).await?;
    }
    Ok(())
}

/// Starts the selected services and returns once they accept calls.
pub async fn start(config: Config, services: &[ServiceKind]) -> anyhow::Result<RunningServer> {
    start_until(config, services, CancellationToken::new()).await
}

/// As [`start`], stopping when `stop` is cancelled, also while it still
/// waits for the database or the bus.
///
/// The ports are bound and health answers from the first moment: NOT_SERVING
/// (`/readyz` 503), every other call UNAVAILABLE, while the database and the
/// bus are retried with back-off. SERVING follows once the services are
/// mounted, identity's keys are loaded and every peer the services call
/// answers.
pub async fn start_until(
    config: Config,
    services: &[ServiceKind],
    stop: CancellationToken,
) -> anyhow::Result<RunningServer> {
    let telemetry = telemetry::init(&config.log)?;
    telemetry::record_build_info(env!("CARGO_PKG_VERSION"), env!("TENANTRY_COMMIT"));
    // Bind both ports before anything else, so a port in use fails the
    // start cleanly.
    let grpc_listener = bind("grpc_addr", config.grpc_addr).await?;
    let http_listener = bind("http_addr", config.http_addr).await?;
    let grpc_addr = grpc_listener.local_addr()?;
    let http_addr = http_listener.local_addr()?;

    let background = CancellationToken::new();
    let tasks = TaskTracker::new();
    let peers = resolve_peers(&config, services, grpc_addr);
    // The services of this process call each other through this process's
    // own server, mounted once it is built.
    let local_server = LocalServer::default();
    let peer_directory = PeerDirectory {
        urls: peers.clone(),
        local: match config.peers.in_process {
            true => services.iter().filter_map(|s| s.as_peer()).collect(),
            false => Vec::new(),
        },
        server: local_server.clone(),
    };
    // The gateway keeps nothing: a process running only the gateway opens
    // no database and no bus, so the edge holds none of their credentials.
    let keeps_state = services.iter().any(|s| *s != ServiceKind::Gateway);
    let internal_key = match keeps_state {
        true => Some(secrets::internal_key(&config)?),
        false => None,
    };
    // Only the gateway (which reports what it refused) and the audit
    // service (which records it) hold the edge key.
    let edge_key =
        match services.contains(&ServiceKind::Gateway) || services.contains(&ServiceKind::Audit) {
            true => Some(secrets::edge_key(&config)?),
            false => None,
        };

    // Every call is authenticated here, whichever service it is for; the
    // keys come straight from identity once it is built when it runs in
    // this process, and are fetched from it otherwise.
    let own_keys = Arc::new(OwnKeys::default());
    let jwks_source: Arc<dyn JwksSource> = if services.contains(&ServiceKind::Identity) {
        own_keys.clone()
    } else {
        Arc::new(GrpcJwksSource::connect_lazy(&peers.identity)?)
    };
    let jwks = Arc::new(JwksCache::new(jwks_source, config.auth.jwks_options()));
    let mut auth_layer = AuthLayer::new(jwks.clone(), config.auth.expectations())
        .with_public_methods(public_methods())
        .with_mfa_pending_methods(tenantry_identity::MFA_ENROLLMENT_METHODS.iter().copied());
    if let Some(key) = &internal_key {
        auth_layer = auth_layer.with_internal_key(key.clone());
    }
    if let Some(key) = edge_key
        .as_ref()
        .filter(|_| services.contains(&ServiceKind::Audit))
    {
        auth_layer = auth_layer.with_edge_key(key.clone());
    }

    // Serve from now on; the services' routes are mounted below.
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_service_status("", ServingStatus::NotServing)
        .await;
    let readiness = tenantry_gateway::Readiness::default();
    let http_routes = Late::new(late::http_starting);
    // Until the services are built, a server of health alone answers on
    // the gRPC port (any other method: UNAVAILABLE, retry); then the port's
    // connections go to the services' server.
    let (handover, starting_incoming, serving_incoming) =
        handover::accept(grpc_listener, stop.clone());
    let starting_stop = stop.child_token();
    let starting_routes = tonic::service::Routes::new(health_service.clone())
        .into_axum_router()
        .fallback(|| async { late::grpc_starting() });
    let starting = tokio::spawn(
        tonic::transport::Server::builder()
            .layer(GrpcTelemetryLayer)
            .add_routes(tonic::service::Routes::from(starting_routes))
            .serve_with_incoming_shutdown(
                starting_incoming,
                starting_stop.clone().cancelled_owned(),
            ),
    );
    let http_router =
        tenantry_gateway::ops_router(telemetry.clone(), readiness.clone(), jwks.clone())
            .fallback_service(http_routes.clone());
    // As on the gRPC port: the gateway's answers (gRPC passthrough above
    // all) are several small writes.
    let http_listener = axum::serve::ListenerExt::tap_io(http_listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let http_server = axum::serve(
        http_listener,
        http_router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(stop.clone().cancelled_owned());
    let http = tokio::spawn(async move { http_server.await });

    let mounted = async {
        let storage = match keeps_state {
            true => Some(connect_storage(&config, services, &stop).await?),
            false => None,
        };
        let ctx = match &storage {
            Some((db, bus)) => Some(ServiceContext {
                data_dir: config.data_dir.clone(),
                auth: config.auth.clone(),
                peers: peer_directory.clone(),
                db: db.clone(),
                bus: bus.clone(),
                outbox: config.outbox.clone(),
                page_tokens: PageTokens::new(secrets::page_token_key(&config)?),
                internal_key: internal_key
                    .clone()
                    .context("a process with storage has the internal key")?,
                // Only identity keeps reversible secrets: no other process
                // needs (or generates) the sealing keys.
                sealer: match services.contains(&ServiceKind::Identity) {
                    true => Some(Arc::new(secrets::sealer(&config)?)),
                    false => None,
                },
                shutdown: background.clone(),
                stopping: stop.clone(),
                tasks: tasks.clone(),
            }),
            None => None,
        };
        if let Some((db, _)) = &storage {
            tasks.spawn(
                db.clone()
                    .report_pool(Duration::from_secs(10), background.clone()),
            );
        }
        let service_ctx = || {
            ctx.as_ref()
                .context("storage is open for every service but the gateway")
        };

        let mut routes = GrpcRoutes::default();
        for kind in services {
            match kind {
                ServiceKind::Identity => {
                    let identity =
                        tenantry_identity::build(service_ctx()?, &config.identity).await?;
                    identity.register(&mut routes);
                    own_keys.set(identity.jwks_source());
                }
                ServiceKind::Organization => {
                    tenantry_organization::build(service_ctx()?, &config.organization)
                        .await?
                        .register(&mut routes)
                }
                ServiceKind::Rbac => tenantry_rbac::build(service_ctx()?, &config.rbac)
                    .await?
                    .register(&mut routes),
                ServiceKind::Billing => tenantry_billing::build(service_ctx()?, &config.billing)
                    .await?
                    .register(&mut routes),
                ServiceKind::Audit => tenantry_audit::build(service_ctx()?, &config.audit)
                    .await?
                    .register(&mut routes),
                // The gateway has no gRPC side; its HTTP routes are mounted below.
                ServiceKind::Gateway => {}
            }
        }
        let (routes, grpc_services) = routes.into_routes();
        if services.contains(&ServiceKind::Identity) {
            // In-process keys cost nothing to read: have them before serving.
            jwks.refresh().await?;
        }
        tasks.spawn(jwks.clone().run_refresher(background.clone()));

        for name in &grpc_services {
            health
                .set_service_status(*name, ServingStatus::NotServing)
                .await;
        }
        let routes = routes
            .add_service(health_service)
            .add_service(reflection(&grpc_services).build_v1()?)
            .add_service(reflection(&grpc_services).build_v1alpha()?);
        // Calls from the network and in-process calls between this
        // process's services pass the same layers, in the same order.
        let layers = tower::ServiceBuilder::new()
            .layer(GrpcTelemetryLayer)
            .layer(ClientAddressLayer::new(trusted_proxies(&config, services)?))
            .layer(auth_layer)
            .layer(ConsistencyLayer::default())
            .layer(TenancyLayer);
        local_server.mount(layers.service(routes.clone()));
        let grpc = tokio::spawn(
            tonic::transport::Server::builder()
                .layer(layers)
                .add_routes(routes)
                .serve_with_incoming_shutdown(serving_incoming, stop.clone().cancelled_owned()),
        );
        handover.hand_over();
        starting_stop.cancel();
        http_routes.mount(if services.contains(&ServiceKind::Gateway) {
            let gateway = tenantry_gateway::Gateway::build(
                &config.gateway,
                tenantry_gateway::Deps {
                    peers: peers.clone(),
                    jwks: jwks.clone(),
                    expectations: config.auth.expectations(),
                    public_methods: public_methods(),
                    edge_key: edge_key.clone(),
                    stop: background.clone(),
                    tasks: tasks.clone(),
                },
            )
            .await?;
            let api = tenantry_gateway::api_router(gateway);
            match config.console.enabled {
                // The console calls the services as the signed-in user,
                // through the same channels and layers as any client.
                true => tenantry_console::router(
                    &config.console,
                    tenantry_console::Deps {
                        key: secrets::shared_key(
                            &config,
                            "console_key",
                            config.console.key.as_deref(),
                        )?,
                        peers: peer_directory.clone(),
                    },
                )?
                .merge(api),
                false => api,
            }
        } else {
            axum::Router::new()
        });
        anyhow::Ok((storage, grpc_services, grpc))
    }
    .await;
    let (storage, grpc_services, grpc) = match mounted {
        Ok(mounted) => mounted,
        Err(error) => {
            stop.cancel();
            background.cancel();
            let _ = tokio::join!(starting, http);
            return Err(error);
        }
    };

    // SERVING is a promise that valid tokens pass and that the peers the
    // services call answer: it waits for identity's keys (at once when
    // identity runs here; otherwise the refresher fetches them, backing off
    // while identity is not up yet) and for every peer in another process.
    let serving = Serving {
        health: health.clone(),
        readiness: readiness.clone(),
        names: grpc_services.clone(),
    };
    let remote = remote_peers(&peers, services, grpc_addr);
    if remote.is_empty() && !jwks.current().is_empty() {
        serving.announce().await;
    } else {
        let (jwks, stop) = (jwks.clone(), stop.clone());
        tasks.spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = async {
                    jwks.wait_for_keys().await;
                    wait_for_peers(&remote).await;
                } => serving.announce().await,
            }
        });
    }

    let enabled: Vec<&str> = services.iter().map(|s| s.name()).collect();
    tracing::info!(
        services = %enabled.join(","),
        %grpc_addr,
        %http_addr,
        database = ?storage.as_ref().map(|(db, _)| db.backend()),
        bus = storage.as_ref().map_or("none", |(_, bus)| bus.kind()),
        "tenantry is serving"
    );

    let grace = Duration::from_secs(config.shutdown_grace_secs);
    let reported = grpc_services.clone();
    let stop_signal = stop.clone();
    let done = tokio::spawn(async move {
        stop_signal.cancelled().await;
        tracing::info!("shutting down: draining in-flight calls");
        readiness.set(false);
        for name in grpc_services.iter().chain([&""]) {
            health
                .set_service_status(*name, ServingStatus::NotServing)
                .await;
        }
        // The servers stopped accepting when `stop` fired; give in-flight
        // calls the grace period to finish.
        let drained = tokio::time::timeout(grace, async {
            let grpc = grpc.await;
            let http = http.await;
            (grpc, http)
        })
        .await;
        match drained {
            Ok((grpc, http)) => {
                grpc.context("grpc server task")?.context("grpc server")?;
                http.context("http server task")?.context("http server")?;
            }
            Err(_) => tracing::warn!(
                grace_secs = grace.as_secs(),
                "calls still running after the grace period"
            ),
        }
        // Only now stop the background work, so the relays publish what the
        // last calls wrote.
        background.cancel();
        tasks.close();
        if tokio::time::timeout(grace, tasks.wait()).await.is_err() {
            tracing::warn!(
                "background tasks did not stop in time; unpublished events stay in the outbox"
            );
        }
        if let Some((db, _)) = storage {
            db.close().await;
        }
        telemetry.shutdown();
        tracing::info!("tenantry stopped");
        Ok(())
    });

    Ok(RunningServer {
        grpc_addr,
        http_addr,
        grpc_services: reported,
        stop,
        done,
    })
}

/// Opens the database (and applies migrations when `auto_migrate`) and the
/// bus, retrying with back-off while either is unreachable.
async fn connect_storage(
    config: &Config,
    services: &[ServiceKind],
    stop: &CancellationToken,
) -> anyhow::Result<(Database, Arc<dyn bus::EventBus>)> {
    let db = retry_unreachable("database", stop, || connect_database(config)).await?;
    if config.auto_migrate {
        migrate_database(&db, config, services).await?;
    }
    let bus = retry_unreachable("bus", stop, || {
        bus::connect(
            config.nats_url.as_deref(),
            &config.nats_namespace,
            Duration::from_millis(config.nats_ack_wait_ms),
            &db,
        )
    })
    .await?;
    Ok((db, bus))
}

/// Identity's keys when identity runs in this process, handed over once it
/// is built (an error before: the refresher retries).
#[derive(Default)]
struct OwnKeys(std::sync::OnceLock<Arc<dyn JwksSource>>);

#[async_trait::async_trait]
impl JwksSource for OwnKeys {
    async fn fetch(&self) -> anyhow::Result<Vec<tenantry_kit::auth::JwkKey>> {
        match self.0.get() {
            Some(source) => source.fetch().await,
            None => anyhow::bail!("identity is starting"),
        }
    }
}

impl OwnKeys {
    fn set(&self, source: Arc<dyn JwksSource>) {
        let _ = self.0.set(source);
    }
}

/// Turns health and `/readyz` to SERVING for every mounted service.
struct Serving {
    health: tonic_health::server::HealthReporter,
    readiness: tenantry_gateway::Readiness,
    names: Vec<&'static str>,
}

impl Serving {
    async fn announce(self) {
        for name in self.names.iter().chain([&""]) {
            self.health
                .set_service_status(*name, ServingStatus::Serving)
                .await;
        }
        self.readiness.set(true);
        tracing::info!("serving: keys loaded and every peer answers");
    }
}

/// The peers in other processes that the services of this one call.
fn remote_peers(
    peers: &Peers,
    services: &[ServiceKind],
    grpc_addr: SocketAddr,
) -> Vec<(ServiceKind, String)> {
    let mut needed: Vec<ServiceKind> = services
        .iter()
        .flat_map(|kind| kind.peers())
        .copied()
        .filter(|peer| !services.contains(peer))
        .collect();
    needed.sort();
    needed.dedup();
    needed
        .into_iter()
        .map(|kind| (kind, peer_url(peers, kind).to_string()))
        .filter(|(_, url)| *url != own_url(grpc_addr))
        .collect()
}

fn peer_url(peers: &Peers, kind: ServiceKind) -> &str {
    match kind {
        ServiceKind::Identity => &peers.identity,
        ServiceKind::Organization => &peers.organization,
        ServiceKind::Rbac => &peers.rbac,
        ServiceKind::Billing => &peers.billing,
        ServiceKind::Audit => &peers.audit,
        ServiceKind::Gateway => "",
    }
}

/// Waits until every peer answers a health check (whatever its status: a
/// peer that is itself starting is reachable, and waiting for its SERVING
/// would deadlock two services that call each other).
async fn wait_for_peers(peers: &[(ServiceKind, String)]) {
    for (kind, url) in peers {
        let mut wait = tenantry_kit::startup::FIRST_BACKOFF;
        while !answers(url).await {
            tracing::warn!(peer = kind.name(), "peer does not answer yet; not serving");
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(tenantry_kit::startup::MAX_BACKOFF);
        }
    }
}

async fn answers(url: &str) -> bool {
    let Ok(endpoint) = tonic::transport::Endpoint::from_shared(url.to_string()) else {
        return false;
    };
    let Ok(channel) = endpoint
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(2))
        .connect()
        .await
    else {
        return false;
    };
    let answer = tonic_health::pb::health_client::HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await;
    match answer {
        Ok(_) => true,
        Err(status) => status.code() != tonic::Code::Unavailable,
    }
}

fn trusted_proxies(config: &Config, services: &[ServiceKind]) -> anyhow::Result<Vec<Cidr>> {
    config
        .effective_trusted_proxies(services)
        .iter()
        .map(|p| Cidr::parse(p).map_err(anyhow::Error::msg))
        .collect()
}

/// Every gRPC method callable without credentials (sign-in, sign-up,
/// recovery, key exchange, invitation previews, provider webhooks), by full
/// path.
fn public_methods() -> Vec<String> {
    tenantry_identity::PUBLIC_METHODS
        .iter()
        .chain(tenantry_rbac::PUBLIC_METHODS)
        .chain(tenantry_billing::PUBLIC_METHODS)
        .map(|m| m.to_string())
        .collect()
}

/// Where each service answers: this process for the services it runs, the
/// `[peers]` table for the others (this process when unset, with a warning).
fn resolve_peers(config: &Config, services: &[ServiceKind], grpc_addr: SocketAddr) -> Peers {
    let own = own_url(grpc_addr);
    let pick = |kind: ServiceKind, configured: &Option<String>| -> String {
        if services.contains(&kind) {
            return own.clone();
        }
        match configured {
            Some(url) => url.clone(),
            None => {
                tracing::warn!(
                    service = kind.name(),
                    "peers.{} is not set; assuming this process",
                    kind.name()
                );
                own.clone()
            }
        }
    };
    Peers {
        identity: pick(ServiceKind::Identity, &config.peers.identity),
        organization: pick(ServiceKind::Organization, &config.peers.organization),
        rbac: pick(ServiceKind::Rbac, &config.peers.rbac),
        billing: pick(ServiceKind::Billing, &config.peers.billing),
        audit: pick(ServiceKind::Audit, &config.peers.audit),
    }
}

/// This process's gRPC URL, for the services it runs itself.
fn own_url(grpc_addr: SocketAddr) -> String {
    let ip = if grpc_addr.ip().is_unspecified() {
        std::net::IpAddr::from([127, 0, 0, 1])
    } else {
        grpc_addr.ip()
    };
    format!("http://{}", SocketAddr::new(ip, grpc_addr.port()))
}

fn reflection(services: &[&'static str]) -> tonic_reflection::server::Builder<'static> {
    let mut builder = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(tenantry_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .with_service_name("grpc.health.v1.Health")
        .with_service_name("grpc.reflection.v1.ServerReflection")
        .with_service_name("grpc.reflection.v1alpha.ServerReflection");
    for name in services {
        builder = builder.with_service_name(*name);
    }
    builder
}

async fn bind(key: &str, addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|error| {
        if error.kind() == std::io::ErrorKind::AddrInUse {
            anyhow::anyhow!("cannot listen on `{key}` = {addr}: the address is already in use")
        } else {
            anyhow::anyhow!("cannot listen on `{key}` = {addr}: {error}")
        }
    })
}
