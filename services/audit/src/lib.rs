//! The audit service: the tamper-evident audit log of every change in every service: ingest from the bus, search, export, chain verification, retention.
//!
//! The contract is served in full; its RPCs answer UNIMPLEMENTED until the
//! service's own issue (#7) lands. The crate already has the shape every
//! service keeps: [`Options`] → [`build`] → [`Service::register`], an outbox
//! whose relay runs from the start, and its own migrations.

use serde::{Deserialize, Serialize};
use tenantry_kit::configure_server;
use tenantry_kit::db::Migration;
use tenantry_kit::outbox::Outbox;
use tenantry_kit::service::{GrpcRoutes, ServiceContext};
use tenantry_proto::tenantry::audit::v1 as audit_pb;

/// The service's name: the source of its events and the key of its
/// migrations.
pub const NAME: &str = "audit";

/// The service's tables, in both SQL dialects.
pub const MIGRATIONS: &[Migration] = &[];

/// Options of the audit service (the `[audit]` table of the config file).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Options {}

/// The running audit service.
#[derive(Debug, Clone)]
pub struct Service {
    outbox: Outbox,
}

/// Builds the service and starts its background work (the outbox relay).
pub async fn build(ctx: &ServiceContext, _options: &Options) -> anyhow::Result<Service> {
    let outbox = Outbox::new(NAME);
    ctx.spawn_relay(&outbox);
    Ok(Service { outbox })
}

impl Service {
    /// Mounts the service's gRPC servers.
    pub fn register(&self, routes: &mut GrpcRoutes) {
        routes.add(configure_server!(
            audit_pb::audit_service_server::AuditServiceServer::new(AuditApi)
        ));
    }

    /// The service's outbox.
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }
}

/// The `AuditService` handler.
#[derive(Debug, Clone)]
struct AuditApi;

#[tonic::async_trait]
impl audit_pb::audit_service_server::AuditService for AuditApi {}
