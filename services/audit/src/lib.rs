//! The audit service: the append-only, tamper-evident activity log of every
//! change in every service.
//!
//! - [`ingest`]: every domain event from the bus, once, into its
//!   organization's hash chain ([`record`] makes and hashes the rows).
//! - [`edge`]: what the gateway refused over a rate limit, reported by it
//!   and recorded like every other event.
//! - [`api`]: search (`ListAuditEvents`, `GetAuditEvent`), streaming export,
//!   `VerifyChain` and checkpoints, with access by `audit.read`.
//! - [`chain`]: verification, signed Ed25519 checkpoints of chain heads, and
//!   retention by plan that keeps a checkpoint at each cut.
//! - [`store`]: the rows and their SQL; [`schema`]: the migrations;
//!   `names`: the log's resource names.

pub mod api;
pub mod chain;
mod convert;
pub mod edge;
pub mod feed;
pub mod ingest;
mod names;
pub mod record;
pub mod schema;
pub mod store;

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tenantry_kit::access::Checker;
use tenantry_kit::configure_server;
use tenantry_kit::db::{Database, Migration};
use tenantry_kit::outbox::Outbox;
use tenantry_kit::page_token::PageTokens;
use tenantry_kit::peer::Peer;
use tenantry_kit::service::{GrpcRoutes, ServiceContext};
use tenantry_proto::tenantry::audit::v1 as audit_pb;
use tenantry_proto::tenantry::events::v1 as events;

/// The service's name: the source of its events and the key of its
/// migrations.
pub const NAME: &str = "audit";

/// The service's tables, in both SQL dialects.
pub const MIGRATIONS: &[Migration] = schema::MIGRATIONS;

/// Options of the audit service (the `[audit]` table of the config file).
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Options {
    /// The Ed25519 seed that signs checkpoints, 64 hex digits. Replicas must
    /// share it. Default: generated once into the data directory
    /// (`audit_checkpoint.key`).
    pub checkpoint_key: Option<String>,
    /// How often the head of every chain that moved is signed, in seconds.
    /// Default: 3600.
    pub checkpoint_interval_secs: u64,
    /// How often events past their plan's retention are purged, in seconds.
    /// Default: 3600.
    pub retention_interval_secs: u64,
    /// The most bytes of an event's `metadata` (its payload's JSON form);
    /// a larger one is cut, with a marker. Default: 16384.
    pub max_metadata_bytes: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            checkpoint_key: None,
            checkpoint_interval_secs: 3600,
            retention_interval_secs: 3600,
            max_metadata_bytes: 16 * 1024,
        }
    }
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field(
                "checkpoint_key",
                &self.checkpoint_key.as_ref().map(|_| "<redacted>"),
            )
            .field("checkpoint_interval_secs", &self.checkpoint_interval_secs)
            .field("retention_interval_secs", &self.retention_interval_secs)
            .field("max_metadata_bytes", &self.max_metadata_bytes)
            .finish()
    }
}

impl Options {
    /// Checks the values, naming the key.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.checkpoint_interval_secs >= 1 && self.retention_interval_secs >= 1,
            "invalid configuration: `audit.checkpoint_interval_secs` and `audit.retention_interval_secs` must be at least 1"
        );
        anyhow::ensure!(
            (1024..=1024 * 1024).contains(&self.max_metadata_bytes),
            "invalid configuration: `audit.max_metadata_bytes` must be from 1024 to 1048576"
        );
        if let Some(key) = &self.checkpoint_key {
            decode_seed(key).map_err(|e| {
                anyhow::anyhow!("invalid configuration: `audit.checkpoint_key` {e}")
            })?;
        }
        Ok(())
    }
}

fn decode_seed(text: &str) -> anyhow::Result<[u8; 32]> {
    let wrong = || anyhow::anyhow!("must be 64 hex digits (32 bytes)");
    let bytes = hex::decode(text.trim()).map_err(|_| wrong())?;
    bytes.try_into().map_err(|_| wrong())
}

/// The checkpoint seed: configured, or generated once into the data
/// directory.
fn checkpoint_seed(options: &Options, data_dir: &Path) -> anyhow::Result<[u8; 32]> {
    if let Some(key) = &options.checkpoint_key {
        return decode_seed(key);
    }
    let path = data_dir.join("audit_checkpoint.key");
    if let Ok(text) = std::fs::read_to_string(&path) {
        return decode_seed(&text)
            .map_err(|e| anyhow::anyhow!("{} is corrupt: {e}", path.display()));
    }
    std::fs::create_dir_all(data_dir)?;
    let seed: [u8; 32] = rand::random();
    let mut file = {
        let mut open = std::fs::OpenOptions::new();
        open.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o600);
        open.open(&path)?
    };
    std::io::Write::write_all(&mut file, hex::encode(seed).as_bytes())?;
    Ok(seed)
}

/// What every part of the service shares.
#[derive(Clone)]
pub struct Core {
    db: Database,
    checker: Checker,
    outbox: Outbox,
    page_tokens: PageTokens,
    descriptors: prost_reflect::DescriptorPool,
    signer: Arc<chain::Signer>,
    options: Arc<Options>,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("signer", &self.signer)
            .finish_non_exhaustive()
    }
}

/// The running audit service.
#[derive(Debug, Clone)]
pub struct Service {
    core: Core,
}

/// Builds the service and starts its background work: the outbox relay,
/// ingest, checkpoints and retention.
pub async fn build(ctx: &ServiceContext, options: &Options) -> anyhow::Result<Service> {
    options.validate()?;
    let outbox = ctx.outbox(NAME)?;
    let core = Core {
        db: ctx.db.clone(),
        checker: Checker::new(ctx.channel(Peer::Rbac)?, NAME),
        outbox,
        page_tokens: ctx.page_tokens.clone(),
        descriptors: prost_reflect::DescriptorPool::decode(tenantry_proto::FILE_DESCRIPTOR_SET)?,
        signer: Arc::new(chain::Signer::new(checkpoint_seed(options, &ctx.data_dir)?)),
        options: Arc::new(options.clone()),
    };
    ingest::spawn(ctx, core.clone());
    chain::spawn(
        ctx,
        core.clone(),
        std::time::Duration::from_secs(options.checkpoint_interval_secs),
        std::time::Duration::from_secs(options.retention_interval_secs),
    );
    Ok(Service { core })
}

impl Service {
    /// Mounts the service's gRPC servers.
    pub fn register(&self, routes: &mut GrpcRoutes) {
        routes.add(configure_server!(
            audit_pb::audit_service_server::AuditServiceServer::new(api::AuditApi(
                self.core.clone()
            ))
        ));
        routes.add(configure_server!(
            audit_pb::edge_report_service_server::EdgeReportServiceServer::new(
                edge::EdgeReportApi(self.core.clone())
            )
        ));
        routes.add(configure_server!(
            audit_pb::audit_feed_service_server::AuditFeedServiceServer::new(feed::AuditFeedApi(
                self.core.clone()
            ))
        ));
    }

    /// The service's outbox.
    pub fn outbox(&self) -> &Outbox {
        &self.core.outbox
    }
}

/// The actor of what the audit service does on its own.
pub(crate) fn system_actor() -> events::Actor {
    events::Actor {
        kind: events::actor::Kind::System as i32,
        id: NAME.into(),
        display_name: String::new(),
    }
}
