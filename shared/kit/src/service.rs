//! What a service crate receives from the process hosting it, and how it
//! mounts its gRPC servers.
//!
//! A service crate follows one shape: `Options` (serde) → `build(&ServiceContext,
//! &Options)` → a value holding its state → `register(&mut GrpcRoutes)`. The
//! binary decides which services run; a service never knows whether it shares
//! the process with others.

use std::convert::Infallible;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::body::Body;
use tonic::server::NamedService;

use crate::bus::EventBus;
use crate::config::OutboxConfig;
use crate::db::Database;
use crate::follow::Followers;
use crate::index::IndexSink;
use crate::outbox::Outbox;
use crate::page_token::PageTokens;
use crate::peer::{Peer, PeerChannel, PeerDirectory};

/// Largest gRPC message a service accepts or sends (4 MiB, tonic's default
/// for decoding, set explicitly so every service agrees).
pub const MAX_MESSAGE_SIZE: usize = 4 * 1024 * 1024;

/// Where the other services answer, as `http://host:port`. In the
/// all-in-one process every entry is the process's own gRPC address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Peers {
    /// The identity service.
    pub identity: String,
    /// The organization service.
    pub organization: String,
    /// The rbac (membership and authorization) service.
    pub rbac: String,
    /// The billing service.
    pub billing: String,
    /// The audit service.
    pub audit: String,
}

/// Shared resources handed to every service.
#[derive(Clone)]
pub struct ServiceContext {
    /// The data directory (embedded database, generated secrets, dev mail).
    pub data_dir: std::path::PathBuf,
    /// How access tokens are issued and verified.
    pub auth: crate::auth::AuthConfig,
    /// Where the other services answer, and which run in this process.
    pub peers: PeerDirectory,
    /// The database holding the service's tables.
    pub db: Database,
    /// The event bus.
    pub bus: Arc<dyn EventBus>,
    /// Outbox relay settings.
    pub outbox: OutboxConfig,
    /// Signs and checks page tokens.
    pub page_tokens: PageTokens,
    /// Proves this process to the other services for calls made as itself.
    pub internal_key: crate::auth::InternalKey,
    /// Seals reversible secrets at rest (TOTP secrets): set when this
    /// process runs identity, the only service that keeps any.
    pub sealer: Option<std::sync::Arc<crate::seal::Sealer>>,
    /// Cancelled once in-flight calls have drained, to stop background
    /// work (relays flush, consumers stop).
    pub shutdown: CancellationToken,
    /// Cancelled the moment a shutdown begins: long-lived streams end then,
    /// so they do not hold the drain up.
    pub stopping: CancellationToken,
    /// Background tasks the process waits for at shutdown.
    pub tasks: TaskTracker,
}

impl std::fmt::Debug for ServiceContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceContext")
            .field("db", &self.db.backend())
            .field("bus", &self.bus.kind())
            .finish()
    }
}

impl ServiceContext {
    /// A channel to `peer`: in-process when it runs in this process, over
    /// the network otherwise.
    pub fn channel(&self, peer: Peer) -> anyhow::Result<PeerChannel> {
        self.peers.channel(peer)
    }

    /// The outbox of `service`: its relay runs as a background task (and
    /// flushes what is pending when the process shuts down), and what it
    /// commits goes to the followers (billing, audit) as well, retried in
    /// the background until shutdown.
    pub fn outbox(&self, service: &'static str) -> anyhow::Result<Outbox> {
        let followers = Followers::new(
            |peer| self.peers.channel(peer),
            self.internal_key.clone(),
            service,
        )?;
        self.tasks
            .spawn(followers.clone().run_retries(self.shutdown.clone()));
        let outbox = Outbox::new(service).with_followers(followers);
        let relay = outbox.relay(self.db.clone(), self.bus.clone(), self.outbox.clone());
        self.tasks.spawn(relay.run(self.shutdown.clone()));
        Ok(outbox)
    }

    /// The delivery of `service`'s writes to the authorization index (for
    /// services whose events the index follows), retrying in the background
    /// until shutdown.
    pub fn index_sink(&self, service: &'static str) -> anyhow::Result<Arc<IndexSink>> {
        let sink = Arc::new(IndexSink::new(
            self.peers.channel(Peer::Rbac)?,
            self.internal_key.clone(),
            service,
        ));
        self.tasks
            .spawn(sink.clone().run_retries(self.shutdown.clone()));
        Ok(sink)
    }
}

/// The gRPC services a process serves, collected before the server starts.
#[derive(Default)]
pub struct GrpcRoutes {
    routes: tonic::service::RoutesBuilder,
    names: Vec<&'static str>,
}

impl std::fmt::Debug for GrpcRoutes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcRoutes")
            .field("names", &self.names)
            .finish()
    }
}

impl GrpcRoutes {
    /// Mounts a generated tonic server. Its full name (such as
    /// `tenantry.organization.v1.OrganizationService`) is reported by health
    /// and reflection.
    pub fn add<S>(&mut self, service: S) -> &mut Self
    where
        S: tower::Service<http::Request<Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Response: axum::response::IntoResponse,
        S::Future: Send + 'static,
    {
        self.names.push(S::NAME);
        self.routes.add_service(service);
        self
    }

    /// The full names of the mounted services.
    pub fn names(&self) -> &[&'static str] {
        &self.names
    }

    /// The routes, for the server.
    pub fn into_routes(self) -> (tonic::service::Routes, Vec<&'static str>) {
        (self.routes.routes(), self.names)
    }
}

/// Applies the message-size limits and compression every Tenantry server
/// uses. Service crates call it on each generated server before mounting it.
#[macro_export]
macro_rules! configure_server {
    ($server:expr) => {
        $server
            .max_decoding_message_size($crate::service::MAX_MESSAGE_SIZE)
            .max_encoding_message_size($crate::service::MAX_MESSAGE_SIZE)
            .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
            .send_compressed(tonic::codec::CompressionEncoding::Gzip)
    };
}
